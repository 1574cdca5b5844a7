"""Hosts added while a lab across servers runs (issue 18): an Auto Scaling group whose AZs are
on two harness servers launches each instance on its AZ's server (its shell, links to the
AZ's bridge there, cgroup, SNMP agent, role, and the server's metadata process told about
it); it answers through the ALB and reads its own instance id from 169.254.169.254; scaled
in, nothing of it is left on its server; a template update adds an instance on a server.

templates/autoscaling.yaml without its target-tracking policy, DesiredCapacity 1.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from testbed import naming
from testbed.cluster.demo import state_dir_for_servers
from testbed.cluster.harness import ServerHarness
from testbed.experiments._nlb import node_addresses
from testbed.lab.api import Lab, random_name
from testbed.traffic import run_load
from tests.asg_data import GROUP, LB, variant, wait_capacity
from tests.harness_support import require_harness
from tests.integration.test_imds_servers import server_state

pytestmark = pytest.mark.integration
PREFIX = (os.environ.get("TESTBED_NAME_PREFIX") or "c").lower()[:1]
IMDS = "http://169.254.169.254/latest/meta-data"
READY_S = 60.0
EXTRA = """  WebExtra:
    Type: AWS::EC2::Instance
    Metadata:
      Lab: {Role: http-backend}
    Properties:
      ImageId: ami-0123456789abcdef0
      InstanceType: t3.micro
      SubnetId: !Ref PublicSubnetB
      SecurityGroupIds: [!Ref WebSecurityGroup]
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    require_harness()
    tmp = tmp_path_factory.mktemp("launch")
    template = variant(tmp, "asg.yaml", policy=False)
    with pytest.MonkeyPatch.context() as mp:
        moved = state_dir_for_servers()
        if moved:
            mp.setenv("TESTBED_STATE_DIR", moved)
        with ServerHarness(PREFIX, count=2) as h:
            s1, s2 = h.servers[:2]
            with Lab.up(
                template,
                params={"DesiredCapacity": 1, "MinSize": 1},
                name=random_name("a"),
                servers={"us-east-1a": s1.name, "us-east-1b": s2.name},
                ssh_config=str(h.ssh_config),
            ) as lab:
                wait_capacity(lab, 1, READY_S)
                lab.harness = h  # type: ignore[attr-defined]
                lab.template = template  # type: ignore[attr-defined]
                yield lab
            for server in (s1, s2):  # the lab is down: nothing of it on either server
                assert server_state(server, lab.name) == "", server.name


def _servers(lab: Lab) -> dict[str, str]:
    return {h.name: h.info.get("server") for h in Lab.attach(lab.name).hosts}


def test_scale_out_and_in_on_the_azs_servers(lab):
    h = lab.harness
    by_az = {"us-east-1a": h.servers[0].name, "us-east-1b": h.servers[1].name}
    (first,) = wait_capacity(lab, 1)
    started = time.monotonic()
    lab.scale(GROUP, desired=2)
    ready = wait_capacity(lab, 2, READY_S)
    in_service_s = time.monotonic() - started
    placed = _servers(lab)
    for inst in ready:
        assert placed[inst["Host"]] == by_az[inst["AvailabilityZone"]], (inst, placed)
    (new,) = [i for i in ready if i["InstanceId"] != first["InstanceId"]]
    # Through the ALB: both instances answer.
    url = f"http://{min(node_addresses(lab, LB).values())}/"
    df = run_load(lab, "Client1", url, requests=40, concurrency=4)
    assert int(df["error"].notna().sum()) == 0
    assert set(df["backend"]) == {i["Host"] for i in ready}
    # Its own id from the metadata process of its server.
    got = lab.host(new["Host"]).run(["curl", "-s", "-m", "5", f"{IMDS}/instance-id"], timeout=20)
    assert got.stdout == new["InstanceId"], got
    print(f"scale-out to InService on server {placed[new['Host']]}: {in_service_s:.1f} s")
    # Scale in: the newest goes (AWS's default after AZ balance), nothing of it left there.
    lab.scale(GROUP, desired=1)
    (kept,) = wait_capacity(lab, 1, READY_S)
    gone = next(i for i in ready if i["InstanceId"] != kept["InstanceId"])
    server = next(s for s in h.servers if s.name == placed[gone["Host"]])
    left = server_state(server, lab.name)
    ns = naming.netns_name(lab.name, gone["Host"])
    assert ns not in left, left
    assert f"/{gone['Host']}" not in left, left
    assert gone["Host"] not in _servers(lab)


def test_an_update_adds_an_instance_on_a_server(lab, tmp_path):
    h = lab.harness
    text = Path(lab.template).read_text()
    template = tmp_path / "extra.yaml"
    template.write_text(text.replace("  Client1:\n", EXTRA + "  Client1:\n", 1))
    lab.update(str(template), params={"DesiredCapacity": 1, "MinSize": 1})
    assert _servers(lab)["WebExtra"] == h.servers[1].name
    answer = lab.host("WebExtra").run(["curl", "-s", "-m", "5", f"{IMDS}/instance-id"])
    assert answer.stdout.startswith("i-"), answer
    # And removed again by the template without it: nothing of it on the server.
    lab.update(lab.template, params={"DesiredCapacity": 1, "MinSize": 1})
    assert "WebExtra" not in _servers(lab)
    left = server_state(h.servers[1], lab.name)
    assert naming.netns_name(lab.name, "WebExtra") not in left, left


INTO = """AWSTemplateFormatVersion: "2010-09-09"
Resources:
  App:
    Type: AWS::EC2::Instance
    Metadata: {Lab: {Role: http-backend}}
    Properties:
      InstanceType: t3.micro
      SubnetId: subnet-PublicSubnetB
"""


def test_a_stack_added_into_the_lab_puts_its_host_on_its_azs_server(lab, tmp_path):
    """`testbed up T --into LAB`: the new stack's instance goes on its AZ's server; deleting
    the stack leaves nothing of it there."""
    h = lab.harness
    template = tmp_path / "into.yaml"
    template.write_text(INTO)
    before = set(_servers(lab))
    lab.create_stack(str(template), name="app")
    placed = _servers(lab)
    (app,) = set(placed) - before
    assert placed[app] == h.servers[1].name, placed
    answer = lab.host(app).run(["curl", "-s", "-m", "5", f"{IMDS}/instance-id"])
    assert answer.stdout.startswith("i-"), answer
    lab.delete_stack("app")
    assert app not in _servers(lab)
    left = server_state(h.servers[1], lab.name)
    assert naming.netns_name(lab.name, app) not in left, left
