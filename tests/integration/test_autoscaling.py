"""Auto Scaling on a real lab: a group keeps its DesiredCapacity across AZs, replaces an
instance the ALB finds unhealthy, scales out and in (`testbed scale`) without a failed
request, holds instances in lifecycle hooks, and leaves nothing behind at teardown.

templates/autoscaling.yaml without its target-tracking policy (only the tests change the
capacity here), TimeScale 10: health checks every second, grace period 6 s, deregistration
delay 3 s.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from testbed.errors import BadInput
from testbed.experiments._nlb import node_addresses
from testbed.lab.api import Lab, random_name
from testbed.lab.teardown import leftovers
from testbed.traffic import run_load
from tests.asg_data import (
    GROUP,
    LB,
    TG,
    activities,
    group,
    healthy_in_service,
    instances,
    variant,
    wait_capacity,
)

pytestmark = pytest.mark.integration
AZS = {"us-east-1a", "us-east-1b"}
# Launch, role ready, two health checks a lab second apart, with scheduling slack.
READY_S = 60.0


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    template = variant(tmp_path_factory.mktemp("asg"), "asg.yaml", policy=False)
    with Lab.up(template, name=random_name("as")) as lab:
        wait_capacity(lab, 2, READY_S)
        yield lab


def url(lab: Lab) -> str:
    return f"http://{min(node_addresses(lab, LB).values())}/"


def test_group_keeps_desired_capacity_across_azs(lab):
    desc = group(lab)
    assert (desc["MinSize"], desc["DesiredCapacity"], desc["MaxSize"]) == (1, 2, 6)
    ready = wait_capacity(lab, 2)
    assert {i["AvailabilityZone"] for i in ready} == AZS
    assert all(i["InstanceId"].startswith("i-") and len(i["InstanceId"]) == 19 for i in ready)
    # Requests through the ALB reach both instances, each answering with its host name.
    df = run_load(lab, "Client1", url(lab), requests=60, concurrency=6)
    assert int(df["error"].notna().sum()) == 0
    assert set(df["backend"]) == {i["Host"] for i in ready}


def test_an_instance_whose_backend_stopped_is_replaced(lab):
    before = wait_capacity(lab, 2)
    victim = before[0]
    lab.host(victim["Host"]).fault("stop")
    # ELB health type: the target turns unhealthy, the group launches a replacement, then
    # terminates the victim (AWS's order), and keeps 2 across both AZs.

    def replaced() -> tuple[list] | None:
        every = instances(lab)
        if victim["InstanceId"] in {i["InstanceId"] for i in every}:
            return None
        ready = healthy_in_service(lab)
        return (ready,) if len(every) == 2 and len(ready) == 2 else None

    [after] = lab.wait_for(
        replaced,
        READY_S,
        f"{victim['InstanceId']} replaced",
        interval=0.2,
        last=lambda: [
            (i["InstanceId"], i["LifecycleState"], i["HealthStatus"]) for i in instances(lab)
        ],
    )
    assert len(after) == 2
    assert {i["AvailabilityZone"] for i in after} == AZS
    assert victim["Host"] not in {i["Host"] for i in after}
    terminations = [
        a
        for a in activities(lab)
        if victim["InstanceId"] in a["Description"] and a["Description"].startswith("Terminating")
    ]
    assert terminations, activities(lab)
    assert terminations[0]["StatusCode"] == "Successful"
    assert "health" in terminations[0]["Cause"].lower()
    # The host is gone from the lab, not only from the group.
    assert victim["Host"] not in {h.name for h in lab.hosts}


def test_scale_out_and_in_without_a_failed_request(lab):
    lab.scale(GROUP, desired=4)
    four = wait_capacity(lab, 4, READY_S)
    assert {i["AvailabilityZone"] for i in four} == AZS
    assert sorted(i["AvailabilityZone"] for i in four).count("us-east-1a") == 2
    df = run_load(lab, "Client1", url(lab), requests=200, concurrency=10)
    assert set(df["backend"]) == {i["Host"] for i in four}
    # Scale in under a steady load: every request is answered (the ALB stops sending to the
    # leaving instances, in-flight ones finish while they drain, then they are terminated).
    out: dict = {}
    load = threading.Thread(
        target=lambda: out.update(
            df=run_load(
                lab, "Client1", url(lab), requests=600, rate=40, duration=15, concurrency=40
            )
        )
    )
    load.start()
    try:
        lab.scale(GROUP, desired=1)
        one = wait_capacity(lab, 1, READY_S)
    finally:
        load.join()
    df = out["df"]
    assert len(df) >= 500
    assert int(df["error"].notna().sum()) == 0, df[df["error"].notna()].head()
    assert int((df["status"] >= 500).sum()) == 0
    gone = {i["Host"] for i in four} - {i["Host"] for i in one}
    assert len(gone) == 3
    assert not gone & {h.name for h in lab.hosts}


def test_scale_outside_min_max_is_refused(lab):
    with pytest.raises(BadInput, match="above max value 6"):
        lab.scale(GROUP, desired=9)
    proc = subprocess.run(
        [sys.executable, "-m", "testbed.cli", "scale", lab.name, GROUP, "--desired", "9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "New SetDesiredCapacity value 9 is above max value 6" in proc.stderr
    assert group(lab)["DesiredCapacity"] == 1


def test_teardown_after_launches_and_terminations_leaves_nothing(lab):
    lab.scale(GROUP, desired=3)
    wait_capacity(lab, 3, READY_S)
    lab.down()
    assert not any(leftovers(lab.name).values()), leftovers(lab.name)


# ---- lifecycle hooks -------------------------------------------------------------------------
HOOKS = """\
      LifecycleHookSpecificationList:
        - LifecycleHookName: hold-launch
          LifecycleTransition: autoscaling:EC2_INSTANCE_LAUNCHING
          HeartbeatTimeout: 3600
          DefaultResult: ABANDON
        - LifecycleHookName: slow-termination
          LifecycleTransition: autoscaling:EC2_INSTANCE_TERMINATING
          HeartbeatTimeout: 30
          DefaultResult: CONTINUE
"""


@pytest.fixture(scope="module")
def hooked(tmp_path_factory):
    """A group with a launching hook (held for 6 lab minutes) and a terminating hook (times
    out after 3 lab seconds), starting empty: a held launch would hold the stack's creation."""
    template = variant(
        tmp_path_factory.mktemp("hooks"), "hooks.yaml", policy=False, group_props=HOOKS
    )
    with Lab.up(
        template, name=random_name("ash"), params={"MinSize": "0", "DesiredCapacity": "0"}
    ) as lab:
        yield lab


def test_launching_hook_holds_until_complete_lifecycle(hooked):
    hooked.scale(GROUP, desired=1)
    waiting = hooked.wait_for(
        lambda: instances(hooked, "Pending:Wait"), READY_S, "an instance in Pending:Wait"
    )[0]
    # Held: not registered with the ALB, however long it waits (the hook's 360 lab seconds).
    assert all(row["Target"]["Id"] != waiting["InstanceId"] for row in hooked.targets(TG))
    hooked.complete_lifecycle(GROUP, "hold-launch", waiting["InstanceId"], "CONTINUE")
    ready = wait_capacity(hooked, 1, READY_S)
    assert ready[0]["InstanceId"] == waiting["InstanceId"]


def test_terminating_hook_times_out_with_its_default_result(hooked):
    [one] = wait_capacity(hooked, 1, READY_S)
    hooked.scale(GROUP, desired=0)
    hooked.wait_for(
        lambda: instances(hooked, "Terminating:Wait"), READY_S, "an instance in Terminating:Wait"
    )
    # No complete-lifecycle call: after the heartbeat timeout (3 lab s) CONTINUE terminates it.
    wait_capacity(hooked, 0, READY_S)
    assert one["Host"] not in {h.name for h in hooked.hosts}
    ended = [a for a in activities(hooked) if one["InstanceId"] in a["Description"]]
    assert any(a["StatusCode"] == "Successful" for a in ended), ended
