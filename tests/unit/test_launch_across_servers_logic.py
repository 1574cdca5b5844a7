"""Hosts added to a running lab across servers (issue 18): where a launched host goes, the
metadata process's add/remove protocol, what the server-side removal does. No lab here."""

from __future__ import annotations

import dataclasses

import pytest

from testbed.errors import BadInput, LabError
from testbed.lab.imds import remote
from testbed.lab.imds.metadata import InstanceMetadata
from testbed.model import load_model
from testbed.paths import REPO
from testbed.plan.network import build_plan
from testbed.plan.placement import place, place_launched
from testbed.topologies.cluster import LabServers, ServerAccess, remove_hosts_script

TWO = {"us-east-1a": "srv1", "us-east-1b": "srv2"}


def _plan():
    model = load_model(str(REPO / "templates" / "nlb.yaml"), {}, stack_name="u1")
    return build_plan(model, "u1")


def _instance(plan, az: str):
    return next(h for h in plan.hosts if h.kind == "instance" and h.az == az)


def test_a_launched_host_goes_on_its_switchs_server():
    plan = _plan()
    p = place(plan, TWO)
    a, b = _instance(plan, "us-east-1a"), _instance(plan, "us-east-1b")
    new_a = dataclasses.replace(a, name="asg-1")
    new_b = dataclasses.replace(b, name="asg-2")
    assert place_launched(p, [new_a, new_b]) == {"asg-1": "srv1", "asg-2": "srv2"}


def test_a_host_on_a_bridge_without_server_is_refused_naming_the_servers():
    plan = _plan()
    p = place(plan, TWO)
    host = dataclasses.replace(_instance(plan, "us-east-1a"), name="x1", switch="u1-az9")
    with pytest.raises(BadInput) as err:
        place_launched(p, [host])
    assert "u1-az9" in str(err.value)
    assert "us-east-1a=srv1" in str(err.value)
    assert "docs/scaling.md" in (err.value.hint or "")


def test_lab_servers_place_and_unplace(tmp_path):
    plan = _plan()
    p = place(plan, TWO)
    access = {
        "localhost": ServerAccess("localhost", "10.0.0.1"),
        "srv1": ServerAccess("srv1", "10.0.0.11"),
        "srv2": ServerAccess("srv2", "10.0.0.12"),
    }
    servers = LabServers(p, access, "10.0.0.1", "vxlan")
    host = dataclasses.replace(_instance(plan, "us-east-1b"), name="asg-9")
    where = servers.place_hosts([host])
    assert where["asg-9"] is not None
    assert where["asg-9"].name == "srv2"
    servers.save(tmp_path)
    again = LabServers.from_json((tmp_path / "servers.json").read_text())
    assert again.server_of("asg-9").name == "srv2"  # type: ignore[union-attr]
    servers.unplace_hosts(["asg-9"])
    assert servers.server_of("asg-9") is None
    assert "asg-9" not in servers.placement.nodes


def _md(host: str) -> InstanceMetadata:
    plan = _plan()
    model = load_model(str(REPO / "templates" / "nlb.yaml"), {}, stack_name="u1")
    from testbed.lab.imds.metadata import instance_metadata

    h = _instance(plan, "us-east-1a")
    return dataclasses.replace(instance_metadata(model, plan, h), host=host)


def test_the_stdin_protocol_round_trips():
    md = _md("asg-1")
    op, netns, got = remote.parse_request(remote.add_line("tb-u1-asg-1", md))
    assert (op, netns, got) == ("add", "tb-u1-asg-1", md)
    assert remote.parse_request(remote.remove_line("asg-1")) == ("remove", "asg-1", None)
    with pytest.raises(ValueError, match="unknown request"):
        remote.parse_request('{"op":"reboot"}')
    assert remote.read_answer(remote.answer("add", "asg-1"), "asg-1") is None
    assert remote.read_answer(remote.answer("remove", "asg-1"), "asg-1") is None
    assert remote.read_answer(remote.answer("add", "asg-1", "no netns"), "asg-1") == "no netns"
    assert "unexpected" in (remote.read_answer("ready 0", "asg-1") or "")


class _Server:
    """What handle() uses of MetadataServer."""

    def __init__(self) -> None:
        self.served: dict[str, str] = {}

    def add(self, netns: str, md: InstanceMetadata) -> None:
        if netns == "gone":
            raise LabError("no such namespace")
        self.served[md.host] = netns

    def remove(self, host: str) -> bool:
        return self.served.pop(host, None) is not None


def test_the_server_side_handles_add_and_remove():
    server = _Server()
    md = _md("asg-1")
    assert remote.handle(server, remote.add_line("ns1", md)) == "added asg-1"
    assert server.served == {"asg-1": "ns1"}
    assert remote.handle(server, remote.remove_line("asg-1")) == "removed asg-1"
    assert server.served == {}
    assert remote.handle(server, remote.add_line("gone", md)).startswith("error asg-1: ")
    assert remote.handle(server, "not json").startswith("error ?: bad request")


def test_the_server_side_removal_is_exact():
    script = remove_hosts_script("u1", [("asg-1", "tb-u1-asg-1", ["u1-asg1-v0"])])
    assert "ip netns pids tb-u1-asg-1" in script
    assert "ip link del dev u1-asg1-v0" in script
    assert "ip netns delete tb-u1-asg-1" in script
    assert "/asg-1" in script
    assert "rmdir" in script
    assert "mn -c" not in script
    assert "del-br" not in script


def test_an_update_adds_no_host_on_an_auto_scaling_instances_link():
    """A host the update adds took the host link (and port) of an instance Auto Scaling had
    launched: making it deleted the instance's veth (found across servers, issue 18)."""
    from testbed.plan.update_hosts import rebase_hosts

    plan = _plan()
    x = _instance(plan, "us-east-1b")
    running = dataclasses.replace(plan, hosts=tuple(h for h in plan.hosts if h.name != x.name))
    launched = dataclasses.replace(x, name="asg-1", asg="WebGroup")
    diff = rebase_hosts(running, plan, held=[launched])
    (added,) = diff.added
    assert added.name == x.name
    assert added.veth != launched.veth
    assert (added.switch, added.port) != (launched.switch, launched.port)
    # Without the launched instance, the link was the same (what happened before).
    (before,) = rebase_hosts(running, plan).added
    assert before.veth == launched.veth


def test_a_stack_needing_a_new_az_is_refused_across_servers_naming_what_to_pass():
    from testbed.stack.lab_stacks_ops import refuse_across_servers

    plan = _plan()
    p = place(plan, TWO)
    core = next(s for s in plan.switches if s.role == "core")
    az = next(s for s in plan.switches if s.role == "az")
    new_sw = dataclasses.replace(az, name="u1-az9", az="us-east-1c")
    link = next(x for x in plan.links if az.name in (x.a, x.b))
    host = dataclasses.replace(_instance(plan, "us-east-1a"), name="App", switch="u1-az9")
    with pytest.raises(BadInput) as err:
        refuse_across_servers(p, "app", [(new_sw, link)], [host])
    assert "availability zone us-east-1c" in str(err.value)
    assert "runs across servers (us-east-1a=srv1,us-east-1b=srv2)" in str(err.value)
    assert "--servers us-east-1a=srv1,us-east-1b=srv2,us-east-1c=HOST" in (err.value.hint or "")
    # Hosts in the lab's AZs only: accepted (they go on their AZ's server).
    refuse_across_servers(p, "app", [], [dataclasses.replace(host, switch=az.name)])
    assert core.name in p.nodes
