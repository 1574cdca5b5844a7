"""The instance metadata service and the `aws` stand-in on a real lab (templates/imds.yaml):
each instance's http://169.254.169.254/ tells its own id, zone, address and identity document
(IMDSv1 and IMDSv2), beside its own web server on port 80; an instance Auto Scaling launches
gets its own when it launches; UserData waiting with `aws elb describe-instance-health` for
InService reaches its cfn-signal, so the stack completes. Nothing is left afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.lab.api import Lab, random_name
from testbed.lab.imds.server import PORT
from testbed.lab.system import list_links
from tests.assertions import assert_nothing_left, plan_of

pytestmark = pytest.mark.integration
TEMPLATE = str(Path(__file__).parent / "templates" / "imds.yaml")
IMDS = "http://169.254.169.254"


def curl(lab: Lab, host: str, path: str, *options: str) -> str:
    proc = lab.host(host).run(["curl", "-s", "-m", "5", *options, f"{IMDS}{path}"], timeout=15)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_every_instance_asks_its_own_metadata_and_the_clb():
    name = random_name("cf")
    with Lab.up(TEMPLATE, name=name) as lab:
        # CREATE_COMPLETE: both UserData loops saw InService through `aws` and signalled.
        assert lab.state["state"] == "CREATE_COMPLETE"
        web = lab.host("Web1")
        folder = lab.dir / "hosts" / "Web1"
        assert (folder / "instance-id.txt").read_text() == "i-Web1"
        doc = json.loads((folder / "document.json").read_text())  # through an IMDSv2 token
        assert (doc["instanceId"], doc["imageId"], doc["instanceType"]) == (
            "i-Web1",
            "ami-0abcdef1234567890",
            "t3.small",
        )
        assert (doc["privateIp"], doc["availabilityZone"]) == (web.ip, web.info["az"])
        assert doc["accountId"] == "123456789012"
        assert doc["region"] == "us-east-1"
        log = (folder / "user-data.log").read_text()
        assert "state='\"InService\"'" in log  # the CLI's JSON string, quotes and all

        # Asked from outside UserData too: the same answers, IMDSv1 and v2.
        assert curl(lab, "Web1", "/latest/meta-data/local-ipv4") == web.ip
        assert curl(lab, "Web1", "/latest/meta-data/placement/availability-zone") == web.info["az"]
        macs = curl(lab, "Web1", "/latest/meta-data/network/interfaces/macs/")
        assert macs == web.info["mac"] + "/"
        vpc = curl(lab, "Web1", f"/latest/meta-data/network/interfaces/macs/{macs}vpc-id")
        assert vpc.startswith("vpc-")
        token = curl(
            lab,
            "Web1",
            "/latest/api/token",
            "-X",
            "PUT",
            "-H",
            "X-aws-ec2-metadata-token-ttl-seconds: 30",
        )
        assert len(token) > 20
        header = f"X-aws-ec2-metadata-token: {token}"
        assert curl(lab, "Web1", "/latest/meta-data/instance-id", "-H", header) == "i-Web1"
        code = curl(
            lab,
            "Web1",
            "/latest/meta-data/instance-id",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "X-aws-ec2-metadata-token: not-a-token",
        )
        assert code == "401"
        # The instance's own web server keeps port 80 (the CLB checks it); IMDS's socket is
        # only on 169.254.169.254, reached through the instance's redirection.
        served = web.run(
            ["curl", "-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", f"http://{web.ip}/"]
        )
        assert served.stdout == "200"
        assert web.run(["curl", "-s", "-m", "5", f"http://127.0.0.1:{PORT}/"]).returncode != 0

        # The group's instance: its own id (as Auto Scaling and the CLB show it).
        [first] = lab.asg_instances("Fleet")
        assert curl(lab, first["Host"], "/latest/meta-data/instance-id") == first["InstanceId"]
        assert curl(lab, first["Host"], "/latest/meta-data/instance-type") == "c5.large"
        fleet_log = (lab.dir / "hosts" / first["Host"] / "user-data.log").read_text()
        assert "state=InService" in fleet_log  # --output text, /usr/bin/aws in UserData
        states = lab.instance_health("MyCLB")
        assert {s["InstanceId"] for s in states} == {"i-Web1", first["InstanceId"]}

        # One launched while the lab runs gets its own when it launches; the one scaled in
        # loses it with everything else of it.
        lab.scale("Fleet", desired=2)
        group = lab.wait_asg("Fleet", 2, timeout=60)
        [second] = [i for i in group["Instances"] if i["InstanceId"] != first["InstanceId"]]
        assert curl(lab, second["Host"], "/latest/meta-data/instance-id") == second["InstanceId"]
        doc = json.loads(curl(lab, second["Host"], "/latest/dynamic/instance-identity/document"))
        assert doc["instanceId"] == second["InstanceId"]
        veths = {h.name: h.veth for h in plan_of(lab).hosts}
        lab.scale("Fleet", desired=1, min=1)
        left = lab.wait_asg("Fleet", 1, timeout=60)["Instances"]
        gone = {first["Host"], second["Host"]} - {i["Host"] for i in left}
        assert len(gone) == 1
        assert veths[gone.pop()] not in list_links()
    assert_nothing_left(name)
