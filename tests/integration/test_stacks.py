"""Several stacks in one lab (issue 14, docs/design/stacks.md "Done when"): exports and
imports with AWS's refused delete, VPC peering, overlapping VPCs, AWS's distributed GWLB
architecture as two stacks, bad imports and a failed create that leave the lab as it was.

Through the Lab API (create_stack, stacks, delete_stack) and the CLI (up --into, down
--stack) on real labs. Deleting the lab's last stack is the lab's down: delete_stack returns
once the holder has ended, the folder kept with its events (Lab.up's exit removes it).
A stack added to a lab names its hosts S.LogicalId; the lab's first stack keeps bare ids and
its stack name is the lab's name; its events carry stack "" (testbed.lab.events.Event.stack).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from testbed import naming
from testbed.cli import main
from testbed.errors import BadInput, LabError
from testbed.gwlb.observe import firewall_packets, wait_appliances_healthy, wait_status_after
from testbed.lab import system
from testbed.lab.api import Lab
from testbed.lab.events import Event
from testbed.lab.services.trapd import EVENT_TYPE as TRAP_EVENT_TYPE
from testbed.lab.state import holder_alive, read_state
from testbed.paths import TEMPLATES

NOT_YET = pytest.mark.skip(reason="several stacks in one lab: issue 14 in progress")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a real lab)"),
]

EXPORT = str(TEMPLATES / "two-stacks-export.yaml")
IMPORT = str(TEMPLATES / "two-stacks-import.yaml")
PEER_A = str(TEMPLATES / "peering-a.yaml")
PEER_B = str(TEMPLATES / "peering-b.yaml")
APPLIANCE = str(TEMPLATES / "gwlb-appliance.yaml")
SPOKE = str(TEMPLATES / "gwlb-spoke.yaml")
SIGNALS = str(Path(__file__).with_name("templates") / "signals.yaml")
STACK_TYPE = "AWS::CloudFormation::Stack"
# Counters and ages change between two dumps of the same flow.
VOLATILE = re.compile(r"(duration|n_packets|n_bytes|idle_age|hard_age)=[^,]*, ?")


# ---- helpers ---------------------------------------------------------------------------------


def curl(lab: Lab, host: str, url: str, timeout: int = 3) -> dict | None:
    """The JSON an http-backend answers to `host` (None if nothing answered)."""
    proc = lab.host(host).run(["curl", "-s", "-m", str(timeout), url], timeout=timeout + 5)
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    return json.loads(proc.stdout)


def served_by(lab: Lab, host: str, url: str) -> str | None:
    """Which instance answered `host`'s request for `url` (None if none did)."""
    body = curl(lab, host, url)
    return body["instance"] if body else None


def ping(lab: Lab, host: str, ip: str) -> bool:
    return lab.host(host).run(["ping", "-c", "2", "-W", "1", ip], timeout=10).returncode == 0


def stack_key(lab: Lab, stack: str) -> str:
    """Event.stack of a stack: "" for the lab's first stack (named after the lab)."""
    return "" if stack == lab.name else stack


def resource_events(events: list[Event], key: str, status: str) -> list[str]:
    """Logical ids of one stack's resources with `status`, in the order they happened."""
    return [
        e.logical_id
        for e in events
        if e.stack == key and e.status == status and e.resource_type != STACK_TYPE
    ]


def assert_deleted_in_reverse(lab: Lab, stack: str, deleted: list[Event]) -> None:
    """`deleted` (what delete_stack streamed) is the stack's DELETE_IN_PROGRESS, then each
    resource's DELETE_IN_PROGRESS and DELETE_COMPLETE in reverse creation order, then the
    stack's DELETE_COMPLETE."""
    key = stack_key(lab, stack)
    created = resource_events(lab.events(), key, "CREATE_COMPLETE")
    # Not the SNMP notifications the lab received meanwhile (agents say nsNotifyShutdown as
    # their hosts stop): they are the lab's events, not the stack's.
    mine = [e for e in deleted if e.stack == key and e.resource_type != TRAP_EVENT_TYPE]
    assert (mine[0].logical_id, mine[0].resource_type, mine[0].status) == (
        stack,
        STACK_TYPE,
        "DELETE_IN_PROGRESS",
    )
    assert (mine[-1].logical_id, mine[-1].resource_type, mine[-1].status) == (
        stack,
        STACK_TYPE,
        "DELETE_COMPLETE",
    )
    assert resource_events(mine, key, "DELETE_COMPLETE") == list(reversed(created))
    for lid in created:  # each resource: in progress, then complete, nothing in between
        statuses = [e.status for e in mine if e.logical_id == lid]
        assert statuses == ["DELETE_IN_PROGRESS", "DELETE_COMPLETE"], (lid, statuses)
    assert not any(e.status == "DELETE_FAILED" for e in mine)


def lab_flows(lab: Lab) -> dict[str, list[str]]:
    """Every OpenFlow flow and group of the lab's bridges, without counters."""
    bridges = system.run(["ovs-vsctl", "list-br"]).stdout.split()
    out = {}
    for br in bridges:
        if not br.startswith(naming.prefix(lab.name)):
            continue
        for what in ("dump-flows", "dump-groups"):
            text = system.run(["ovs-ofctl", "-O", "OpenFlow13", what, br]).stdout
            out[f"{br} {what}"] = sorted(
                VOLATILE.sub("", line).strip() for line in text.splitlines()[1:]
            )
    return out


def snapshot(lab: Lab) -> tuple[dict, dict, list[dict]]:
    """What must not change when an operation is refused or rolled back: state.json (its
    hosts, outputs, stacks), the flows and the stacks view. Not the controller's standby:
    the holder's supervisor starts it on its own schedule, whatever the test does."""
    state = {k: v for k, v in lab.state.items() if k not in ("updated",)}
    if "controller" in state:
        state["controller"] = {k: v for k, v in state["controller"].items() if k != "standby_pid"}
    return state, lab_flows(lab), lab.stacks()


def cli(*argv: str) -> int:
    return main(list(argv))


# ---- two stacks: export, import, refused delete -----------------------------------------


def test_export_import_and_refused_delete():
    with Lab.up(EXPORT) as lab:
        net = lab.name
        vpc, subnet = lab.outputs["VpcId"], lab.outputs["PublicSubnet"]
        app = lab.create_stack(IMPORT, {"NetworkStack": net, "VpcId": vpc}, name="app")
        assert app["status"] == "CREATE_COMPLETE"
        assert app["outputs"]["AppSubnet"] == subnet  # the import resolved to A's subnet

        stacks = {s["name"]: s for s in lab.stacks()}
        assert list(stacks) == [net, "app"]
        exports = stacks[net]["exports"]
        assert exports[f"{net}-VpcId"] == {"value": vpc, "imported_by": []}
        assert exports[f"{net}-PublicSubnet"] == {"value": subnet, "imported_by": ["app"]}
        assert exports[f"{net}-WebSecurityGroup"]["imported_by"] == ["app"]

        # B's instance is in A's subnet: both ways, by private address, and from the internet.
        app_ip, web_ip = app["outputs"]["AppPrivateIp"], lab.outputs["WebPrivateIp"]
        assert lab.host("app.App").info["subnet"] == lab.host("Web").info["subnet"]
        assert served_by(lab, "Web", f"http://{app_ip}/") == "app.App"
        assert served_by(lab, "app.App", f"http://{web_ip}/") == "Web"
        assert served_by(lab, "Client1", f"http://{app['outputs']['AppPublicIp']}/") == "app.App"

        # The exporter cannot go while app imports: AWS's text, exit 2, nothing changes.
        before = snapshot(lab)
        with pytest.raises(BadInput) as refused:
            lab.delete_stack(net)
        assert re.fullmatch(
            rf"Export {net}-(PublicSubnet|WebSecurityGroup) cannot be deleted as it is in use"
            r" by app",
            refused.value.message,
        )
        assert cli("down", net, "--stack", net) == 2
        assert snapshot(lab) == before
        assert {s["name"]: s["status"] for s in lab.stacks()} == {
            net: "CREATE_COMPLETE",
            "app": "CREATE_COMPLETE",
        }
        assert not any(e.status == "DELETE_FAILED" for e in lab.events())
        assert served_by(lab, "Web", f"http://{app_ip}/") == "app.App"

        # The importer first, then the exporter: each in reverse creation order.
        deleted: list[Event] = []
        lab.delete_stack("app", on_event=deleted.append)
        assert_deleted_in_reverse(lab, "app", deleted)
        assert [s["name"] for s in lab.stacks()] == [net]
        assert "app.App" not in {h.name for h in lab.hosts}
        assert served_by(lab, "Client1", f"http://{lab.outputs['WebPublicIp']}/") == "Web"

        keep = read_state(lab.dir)
        deleted = []
        lab.delete_stack(net, on_event=deleted.append)
        assert_deleted_in_reverse(lab, net, deleted)
        # The lab's last stack is gone: so is the lab (its holder ended).
        assert not holder_alive(keep)


def test_down_deletes_every_stack_newest_first():
    """testbed down LAB: every stack, newest first (an importer is always newer than its
    exporter, so the refusal never applies), each with its DELETE events, then the lab."""
    with Lab.up(EXPORT, keep_dir=True) as lab:  # the folder stays: its events are read after
        net = lab.name
        vpc = lab.outputs["VpcId"]
        lab.create_stack(IMPORT, {"NetworkStack": net, "VpcId": vpc}, name="app")
        lab.create_stack(IMPORT, {"NetworkStack": net, "VpcId": vpc}, name="app2")
        assert cli("down", net) == 0
        assert not holder_alive(read_state(lab.dir))
        events = lab.events()
        stacks = [
            e.logical_id
            for e in events
            if e.resource_type == STACK_TYPE and e.status == "DELETE_COMPLETE"
        ]
        assert stacks == ["app2", "app", net]
        app = [e.logical_id for e in events if e.stack == "app" and e.status == "DELETE_COMPLETE"]
        assert app == ["App", "AppSecurityGroup", "app"]
        # The lab's first stack last, with its resources' events as delete_stack gives them.
        down = next(i for i, e in enumerate(events) if e.status == "DELETE_IN_PROGRESS")
        assert_deleted_in_reverse(lab, net, events[down:])


# ---- bad input: nothing changes ------------------------------------------------------------


def test_bad_imports(tmp_path):
    with Lab.up(EXPORT) as lab:
        net = lab.name
        vpc = lab.outputs["VpcId"]
        before = snapshot(lab)

        with pytest.raises(BadInput) as missing:
            lab.create_stack(IMPORT, {"NetworkStack": "nobody", "VpcId": vpc}, name="app")
        assert re.search(
            r"No export named nobody-(PublicSubnet|WebSecurityGroup) found\.",
            missing.value.message,
        )

        duplicate = tmp_path / "duplicate.yaml"
        duplicate.write_text(
            "Resources:\n"
            "  VPC:\n"
            "    Type: AWS::EC2::VPC\n"
            "    Properties: {CidrBlock: 10.9.0.0/16}\n"
            "Outputs:\n"
            "  VpcId:\n"
            "    Value: !Ref VPC\n"
            f"    Export: {{Name: {net}-VpcId}}\n"
        )
        with pytest.raises(BadInput) as dup:
            lab.create_stack(str(duplicate), name="dup")
        assert f"Export with name {net}-VpcId is already exported by stack {net}" in (
            dup.value.message
        )

        with pytest.raises(BadInput, match="is not a VPC of this lab"):
            lab.create_stack(IMPORT, {"NetworkStack": net, "VpcId": "vpc-Nope"}, name="app")

        with pytest.raises(BadInput, match=r"bad stack name"):
            lab.create_stack(IMPORT, {"NetworkStack": net, "VpcId": vpc}, name="1app")
        with pytest.raises(BadInput, match=rf"Stack \[{net}\] already exists"):
            lab.create_stack(IMPORT, {"NetworkStack": net, "VpcId": vpc}, name=net)

        argv = ["up", IMPORT, "--into", net, "--stack-name", "app", "-p", "NetworkStack=nobody"]
        assert cli(*argv, "-p", f"VpcId={vpc}") == 2
        assert snapshot(lab) == before
        assert not any(e.stack for e in lab.events())  # no event of any added stack


def test_failed_create_into():
    """A stack whose instance signals failure rolls back to nothing; the lab's other stack is
    untouched: state, flows, hosts, and it still serves.

    Its instance has no subnet: the stack makes a default VPC, with a subnet in each of the
    region's AZs, and the lab gains the bridges of the AZs it had none of (az2, az3). They
    are the lab's AZs, not the stack's resources: they stay when it goes (as an AWS region's
    AZs do); the bridges the lab had keep their flows exactly."""
    with Lab.up(EXPORT) as lab:
        before = snapshot(lab)
        with pytest.raises(LabError, match="received a failure signal"):
            lab.create_stack(SIGNALS, {"Outcome": "failure"}, name="bad")
        events = [e for e in lab.events() if e.stack == "bad"]
        statuses = [(e.logical_id, e.status) for e in events if e.resource_type == STACK_TYPE]
        assert statuses == [
            ("bad", "CREATE_IN_PROGRESS"),
            ("bad", "ROLLBACK_IN_PROGRESS"),
            ("bad", "ROLLBACK_COMPLETE"),
        ]
        assert any(e.status == "CREATE_FAILED" for e in events)
        # As on AWS the stack stays listed, ROLLBACK_COMPLETE, until it is deleted.
        state, flows, stacks = snapshot(lab)
        assert [(s["name"], s["status"]) for s in stacks] == [
            (lab.name, "CREATE_COMPLETE"),
            ("bad", "ROLLBACK_COMPLETE"),
        ]
        assert {k: v for k, v in flows.items() if k in before[1]} == before[1]
        assert {k.split()[0] for k in flows} - {k.split()[0] for k in before[1]} == {
            f"{naming.prefix(lab.name)}az2",
            f"{naming.prefix(lab.name)}az3",
        }
        assert list(state["hosts"]) == before[0]["hosts"]
        assert not any(h.name.startswith("bad.") for h in lab.hosts)
        assert served_by(lab, "Client1", f"http://{lab.outputs['WebPublicIp']}/") == "Web"
        lab.delete_stack("bad")
        state, flows, stacks = snapshot(lab)
        assert (state, stacks) == (before[0], before[2])
        assert {k: v for k, v in flows.items() if k in before[1]} == before[1]


# ---- peering and overlapping VPCs ----------------------------------------------------------


def test_peering():
    """10.0.0.0/16 (the lab's first stack) and 10.1.0.0/16 (b) peered, routes both ways; a
    third VPC with A's CIDR stays isolated; c (10.2.0.0/16, peered with A only) is not
    reached from b through A: peering is not transitive."""
    with Lab.up(PEER_A) as lab:
        a = lab.name
        b = lab.create_stack(PEER_B, {"PeerStack": a}, name="b")
        assert b["outputs"]["PeeringConnectionId"].startswith("pcx-")
        a_ip, b_ip = lab.outputs["WebPrivateIp"], b["outputs"]["WebPrivateIp"]
        assert (a_ip.startswith("10.0."), b_ip.startswith("10.1.")) == (True, True)
        assert served_by(lab, "Web", f"http://{b_ip}/") == "b.Web"
        assert served_by(lab, "b.Web", f"http://{a_ip}/") == "Web"
        assert ping(lab, "Web", b_ip)
        assert ping(lab, "b.Web", a_ip)
        # The server sees the peer's private address: no NAT on a peering connection.
        assert curl(lab, "b.Web", f"http://{a_ip}/")["client"]["ip"] == b_ip
        # b's VPC has its AmazonProvidedDNS (10.1.0.2) on the lab's running resolver.
        for host, name, ip in (("b.Web", "web.lab", a_ip), ("Web", "b.web.lab", b_ip)):
            found = lab.host(host).run(["getent", "hosts", name], timeout=10)
            assert found.stdout.split()[:2] == [ip, name], (host, found.stdout, found.stderr)

        # Same CIDR as A, nothing routes to it: b's 10.0.x.y is A's, never this one's.
        twin = lab.create_stack(PEER_A, {}, name="twin")
        assert twin["outputs"]["WebPrivateIp"] == a_ip
        for _ in range(5):
            assert served_by(lab, "b.Web", f"http://{a_ip}/") == "Web"
        assert served_by(lab, "twin.Web", f"http://{b_ip}/") is None
        assert served_by(lab, "twin.Web", f"http://{a_ip}/") == "twin.Web"

        # No transit: c (10.2/16) peers with A; b's route to 10.2/16 through pcx b-A is
        # useless, as on AWS.
        c = lab.create_stack(PEER_A, {"VpcCidr": "10.2.0.0/16"}, name="c")
        lab.create_stack(
            PEER_B, {"PeerStack": "c", "VpcCidr": "10.3.0.0/16"}, name="cpeer"
        )  # an unrelated pair, to have a 10.2 <-> 10.3 peering in the lab as well
        c_ip = c["outputs"]["WebPrivateIp"]
        transit = lab.create_stack(
            PEER_B,
            {"PeerStack": a, "VpcCidr": "10.4.0.0/16", "ExtraRouteCidr": "10.2.0.0/16"},
            name="transit",
        )
        assert transit["status"] == "CREATE_COMPLETE"
        assert served_by(lab, "transit.Web", f"http://{a_ip}/") == "Web"
        assert served_by(lab, "transit.Web", f"http://{c_ip}/") is None
        assert served_by(lab, "cpeer.Web", f"http://{c_ip}/") == "c.Web"

        # Peering overlapping VPCs is refused, as on AWS (exact text: design §5.7, to confirm).
        with pytest.raises(BadInput, match=r"(?i)overlapping CIDR"):
            lab.create_stack(PEER_B, {"PeerStack": a, "VpcCidr": "10.0.0.0/16"}, name="ovl")


def test_overlapping_vpcs():
    """The same template twice: two VPCs with 10.0.0.0/16 and the same private addresses;
    each reaches its own backend, the internet reaches each by its own public address."""
    with Lab.up(EXPORT) as lab:
        other = lab.create_stack(EXPORT, {}, name="other")
        ip = lab.outputs["WebPrivateIp"]
        assert other["outputs"]["WebPrivateIp"] == ip
        assert other["outputs"]["WebPublicIp"] != lab.outputs["WebPublicIp"]
        assert lab.host("Web").info["ip"] == lab.host("other.Web").info["ip"]
        for _ in range(5):
            assert served_by(lab, "Web", f"http://{ip}/") == "Web"
            assert served_by(lab, "other.Web", f"http://{ip}/") == "other.Web"
        assert served_by(lab, "Client1", f"http://{lab.outputs['WebPublicIp']}/") == "Web"
        public = other["outputs"]["WebPublicIp"]
        assert served_by(lab, "Client1", f"http://{public}/") == "other.Web"
        assert served_by(lab, "other.Client1", f"http://{public}/") == "other.Web"
        # Each VPC's 10.0.0.2 is its address space's resolver (LabDNS, LabDNS-1).
        for host in ("Web", "other.Web"):
            found = lab.host(host).run(["getent", "hosts", "other.web.lab"], timeout=10)
            assert found.stdout.split()[:2] == [ip, "other.web.lab"], (host, found.stderr)
        # The resolver of the second address space goes with the last VPC in it.
        lab.delete_stack("other")
        assert {h.name for h in lab.hosts} >= {"LabDNS", "Web"}
        assert "LabDNS-1" not in {h.name for h in lab.hosts}
        found = lab.host("Web").run(["getent", "hosts", "web.lab"], timeout=10)
        assert found.stdout.split()[:2] == [ip, "web.lab"]


# ---- AWS's distributed GWLB architecture ------------------------------------------------


def test_gwlb_distributed_two_stacks():
    """Appliance stack (GWLB + endpoint service, 10.0.0.0/16) and a spoke stack in another
    VPC with the same CIDR: internet -> spoke web servers goes through the spoke's GWLB
    endpoints and the appliances, both ways; the appliances see the spoke's addresses and
    drop what their rules say."""

    def counted(lab: Lab, hosts: list[str], counter: str) -> int:
        # Appliances write their counters every second: read them once written after now.
        wait_status_after(lab, hosts, time.time(), timeout=10)
        return firewall_packets(lab, hosts, counter)

    with Lab.up(APPLIANCE) as lab:
        by_node = {"GWLB-1a": ["FwA1", "FwA2"], "GWLB-1b": ["FwB1", "FwB2"]}
        wait_appliances_healthy(lab, "Appliances", by_node, 40)
        spoke = lab.create_stack(SPOKE, {"ApplianceStack": lab.name}, name="spoke")
        assert spoke["status"] == "CREATE_COMPLETE"
        exports = lab.stack(lab.name)["exports"]
        assert exports[f"{lab.name}-ServiceName"]["imported_by"] == ["spoke"]

        firewalls = [h for hosts in by_node.values() for h in hosts]
        inspected = counted(lab, firewalls, "inspected")
        for az in ("A", "B"):
            url = f"http://{spoke['outputs'][f'Web{az}PublicIp']}/"
            body = curl(lab, "spoke.Client1", url)
            assert body is not None
            assert body["instance"] == f"spoke.Web{az}"
            assert body["client"]["ip"] == "198.51.100.10"  # the GWLB preserves addresses
        assert counted(lab, firewalls, "inspected") - inspected >= 8

        # The appliances' rules apply to the spoke's traffic: Client2 and port 23 dropped.
        dropped = counted(lab, firewalls, "dropped")
        url = f"http://{spoke['outputs']['WebAPublicIp']}/"
        assert curl(lab, "spoke.Client2", url) is None
        telnet = lab.host("spoke.Client1").run(
            ["curl", "-s", "-m", "2", f"telnet://{spoke['outputs']['WebAPublicIp']}:23"],
            timeout=10,
        )
        assert telnet.returncode != 0
        assert counted(lab, firewalls, "dropped") > dropped

        # Egress is inspected too: a spoke instance reaching the internet.
        inspected = counted(lab, firewalls, "inspected")
        assert ping(lab, "spoke.WebA", "198.51.100.10")
        assert counted(lab, firewalls, "inspected") > inspected

        # The appliance stack cannot go while the spoke's endpoints use its service.
        with pytest.raises(BadInput, match=rf"Export {lab.name}-ServiceName cannot be deleted"):
            lab.delete_stack(lab.name)
        deleted: list[Event] = []
        lab.delete_stack("spoke", on_event=deleted.append)
        assert_deleted_in_reverse(lab, "spoke", deleted)
