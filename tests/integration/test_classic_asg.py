"""An Auto Scaling group with LoadBalancerNames on a real lab (issue 13): its instances are
registered with the Classic Load Balancer, InService there, and serve through it; a scale-in
deregisters the leaving ones before they go.

tests/classic_data.py's asg_template(): a CLB (HTTP 80, HTTP:80/health every 5 s, draining
off) without Instances of its own, a group of two http-backend instances over two AZs.
"""

from __future__ import annotations

from typing import Any

import pytest

from testbed.lab.api import Lab, random_name
from testbed.lab.teardown import leftovers
from testbed.traffic import run_load
from tests.classic_data import DETECT_S, GROUP, LB, asg_template

pytestmark = pytest.mark.integration
LAB_NAME = random_name("ce")
AZS = {"us-east-1a", "us-east-1b"}
READY_S = 60.0  # launch, role ready, two health checks 5 s apart, with slack


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    path = tmp_path_factory.mktemp("clbasg") / "clb-asg.yaml"
    path.write_text(asg_template(desired=2))
    with Lab.up(str(path), name=LAB_NAME) as lab:
        wait_registered(lab, 2, READY_S)
        yield lab


def wait_registered(lab: Lab, n: int, timeout: float = DETECT_S) -> list[dict[str, Any]]:
    """Wait until the group has exactly n instances (but Terminated ones), all InService and
    Healthy, and the CLB exactly those, all InService (describe-instance-health); the
    group's instances."""

    def settled() -> tuple[list[dict[str, Any]]] | None:
        # A Terminated instance stays in the description for a while (60 s), as on AWS.
        instances = [
            i for i in lab.asg_group(GROUP)["Instances"] if i["LifecycleState"] != "Terminated"
        ]
        if len(instances) != n or any(
            (i["LifecycleState"], i["HealthStatus"]) != ("InService", "Healthy") for i in instances
        ):
            return None
        clb = {r["InstanceId"]: r["State"] for r in lab.instance_health(LB)}
        if clb != dict.fromkeys((i["InstanceId"] for i in instances), "InService"):
            return None
        return (instances,)  # a tuple: true even for an empty group

    def last() -> Any:
        return (
            [
                (i["InstanceId"], i["LifecycleState"], i["HealthStatus"])
                for i in lab.asg_group(GROUP)["Instances"]
            ],
            [(r["InstanceId"], r["State"], r["ReasonCode"]) for r in lab.instance_health(LB)],
        )

    found = lab.wait_for(
        settled, timeout, f"{GROUP}'s {n} instances InService in {LB}", 0.2, last=last
    )
    return found[0]


def dns_url(lab: Lab) -> str:
    return f"http://{lab.outputs['DnsName']}/"


def test_group_instances_are_registered_with_the_clb_and_serve(lab):
    instances = wait_registered(lab, 2)
    assert {i["AvailabilityZone"] for i in instances} == AZS
    assert all(i["InstanceId"].startswith("i-") for i in instances)
    described = lab.asg_group(GROUP)
    # The lab names load balancers as it names target groups (TargetGroupARNs): logical ids.
    assert described["LoadBalancerNames"] == [LB]
    assert described["TargetGroupARNs"] == []
    rows = {r["InstanceId"]: r for r in lab.instance_health(LB)}
    assert {r["Host"] for r in rows.values()} == {i["Host"] for i in instances}
    assert {r["AvailabilityZone"] for r in rows.values()} == AZS
    # Through the CLB's name (both nodes): each node reaches its AZ's instance.
    df = run_load(lab, "Client1", dns_url(lab), requests=60, concurrency=6)
    assert df["error"].isna().all(), df[df["error"].notna()].head()
    assert (df["status"] == 200).all()
    assert set(df["backend"]) == {i["Host"] for i in instances}


def test_scale_in_deregisters_the_leaving_instance(lab):
    before = wait_registered(lab, 2)
    lab.scale(GROUP, desired=1)
    [kept] = wait_registered(lab, 1, READY_S)
    [gone] = [i for i in before if i["InstanceId"] != kept["InstanceId"]]
    assert [r["InstanceId"] for r in lab.instance_health(LB)] == [kept["InstanceId"]]
    assert gone["Host"] not in {h.name for h in lab.hosts}
    # The node of the emptied AZ has no instance left (cross-zone off): only the other
    # node answers, so the requests go to the node in the kept instance's AZ.
    node = next(
        n
        for x in lab.state["load_balancers"]
        if x["name"] == LB
        for n in x["nodes"]
        if n["az"] == kept["AvailabilityZone"]
    )
    df = run_load(lab, "Client1", f"http://{node['public_ip']}/", requests=30, concurrency=3)
    assert df["error"].isna().all()
    assert set(df["backend"]) == {kept["Host"]}
    ended = [
        a
        for a in lab.activities(GROUP)
        if gone["InstanceId"] in a["Description"] and a["Description"].startswith("Terminating")
    ]
    assert ended, lab.activities(GROUP)
    assert ended[0]["StatusCode"] == "Successful"
    # Deregistered from the CLB (draining off: removed at once) before it was terminated.
    events = lab.events()
    removed = [
        e.time
        for e in events
        if e.logical_id == f"{gone['Host']}:80" and e.status == "TARGET_REMOVED"
    ]
    terminated = [
        e.time
        for e in events
        if e.logical_id == GROUP
        and e.reason == f"Terminating EC2 instance: {gone['InstanceId']}: Successful"
    ]
    assert removed, [(e.logical_id, e.status, e.reason) for e in events[-12:]]
    assert terminated, [(e.logical_id, e.status, e.reason) for e in events[-12:]]
    assert removed[0] <= terminated[0]


def test_teardown_leaves_nothing(lab):
    lab.down()
    assert not any(leftovers(lab.name).values()), leftovers(lab.name)
