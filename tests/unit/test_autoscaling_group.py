"""One Auto Scaling group's decisions (testbed.autoscaling.group) on a fake clock: capacity
across AZs, lifecycle and hooks, termination policies, replacement, rebalancing, cooldown,
warm-up, AWS's error messages."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from testbed.autoscaling import activities as words
from testbed.autoscaling import termination
from testbed.autoscaling.group import (
    IN_SERVICE,
    PENDING,
    PENDING_WAIT,
    TERMINATED,
    TERMINATED_KEPT_S,
    TERMINATING_PROCEED,
    TERMINATING_STATE,
    TERMINATING_WAIT,
    Action,
    Deregister,
    GroupRuntime,
    Launch,
    Register,
    Terminate,
)
from testbed.autoscaling.timescale import TimeScale
from testbed.errors import BadInput
from testbed.model.autoscaling_types import (
    LAUNCHING,
    TERMINATING,
    AutoScalingGroup,
    LaunchSpec,
    LifecycleHookSpec,
)

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC).timestamp()
ONE = TimeScale(1.0)
AZS = ("us-east-1a", "us-east-1b", "us-east-1c")
SPEC = LaunchSpec("WebLT", "launch-template", 1, "ami-1", "t3.micro", None, name="web-lt")


def model(**kw: object) -> AutoScalingGroup:
    base: dict[str, object] = {
        "logical_id": "Web",
        "name": "stack-Web-1ABC",
        "min_size": 1,
        "max_size": 6,
        "desired": 2,
        "subnets": ("SubA", "SubB", "SubC"),
        "azs": AZS,
        "launch": SPEC,
        "target_groups": ("WebTG",),
    }
    base.update(kw)
    return AutoScalingGroup(**base)  # type: ignore[arg-type]


def runtime(scale: TimeScale = ONE, lab: str = "lab1", **kw: object) -> GroupRuntime:
    return GroupRuntime(model(**kw), scale, lab)


def carry(group: GroupRuntime, actions: list[Action]) -> None:
    """Carry the actions out at once and report success, as a perfect runtime would."""
    for a in actions:
        if isinstance(a, Launch):
            group.launched(a.instance_id, True)
            group.running(a.instance_id)
        elif isinstance(a, Deregister):
            group.drained(a.instance_id)
        elif isinstance(a, Terminate):
            group.terminated(a.instance_id)


def settle(group: GroupRuntime, now: float) -> list[Action]:
    """Step at `now` and carry every action out until the group has nothing left to do;
    every action, in order."""
    done: list[Action] = []
    for _ in range(20):
        actions = group.step(now)
        if not actions:
            return done
        done += actions
        carry(group, actions)
    raise AssertionError("the group never settled")


def live(group: GroupRuntime) -> list[str]:
    return [r.instance_id for r in group.instances.values() if r.lifecycle != TERMINATED]


def per_az(group: GroupRuntime) -> dict[str, int]:
    counts = dict.fromkeys(AZS, 0)
    for r in group.instances.values():
        if r.lifecycle == IN_SERVICE:
            counts[r.az] += 1
    return counts


# -- capacity across AZs ----------------------------------------------------------------------


def test_desired_capacity_spread_over_the_azs_in_template_order() -> None:
    group = runtime(desired=5)
    actions = group.step(T0)
    launches = [a for a in actions if isinstance(a, Launch)]
    assert [a.az for a in launches] == [AZS[0], AZS[1], AZS[2], AZS[0], AZS[1]]
    assert [a.subnet for a in launches] == ["SubA", "SubB", "SubC", "SubA", "SubB"]
    assert [a.host for a in launches] == [f"Web-{n}" for n in range(1, 6)]
    carry(group, actions)
    settle(group, T0)
    assert per_az(group) == {AZS[0]: 2, AZS[1]: 2, AZS[2]: 1}


def test_scale_out_goes_to_the_az_with_fewest_instances() -> None:
    group = runtime(desired=4)
    settle(group, T0)
    assert per_az(group) == {AZS[0]: 2, AZS[1]: 1, AZS[2]: 1}
    group.set_capacity(desired=6, now=T0 + 10)
    launches = [a for a in group.step(T0 + 10) if isinstance(a, Launch)]
    assert [a.az for a in launches] == [AZS[1], AZS[2]]


def test_instance_ids_are_ec2_shaped_deterministic_and_names_never_reused() -> None:
    a, b, other = runtime(desired=3), runtime(desired=3), runtime(desired=3, lab="lab2")
    first = a.step(T0)
    ids = [x.instance_id for x in first if isinstance(x, Launch)]
    assert ids == [x.instance_id for x in b.step(T0) if isinstance(x, Launch)]
    assert ids != [x.instance_id for x in other.step(T0) if isinstance(x, Launch)]
    assert all(re.fullmatch(r"i-[0-9a-f]{17}", i) for i in ids)
    assert len(set(ids)) == 3
    assert ids[0] == words.instance_id("lab1", "Web", 1)
    carry(a, first)
    settle(a, T0)
    a.set_capacity(desired=1, now=T0 + 1)
    settle(a, T0 + 1)
    a.set_capacity(desired=2, now=T0 + 2)
    launch = next(x for x in a.step(T0 + 2) if isinstance(x, Launch))
    assert launch.host == "Web-4"
    assert launch.instance_id == words.instance_id("lab1", "Web", 4)


# -- lifecycle ----------------------------------------------------------------------------------


def test_launch_lifecycle_pending_then_in_service_and_registered() -> None:
    group = runtime(desired=1)
    (launch,) = group.step(T0)
    assert isinstance(launch, Launch)
    iid = launch.instance_id
    assert group.instances[iid].lifecycle == PENDING
    group.launched(iid, True)
    assert group.step(T0 + 1) == []  # host built, role not ready yet
    group.running(iid)
    assert group.step(T0 + 2) == [Register("Web", iid)]
    rec = group.instances[iid]
    assert (rec.lifecycle, rec.in_service_at) == (IN_SERVICE, T0 + 2)
    activity = group.activities[0]
    assert activity.status_code == words.SUCCESSFUL
    assert activity.end_time == T0 + 2
    assert activity.progress == 100


def test_no_target_groups_no_register_and_termination_without_draining() -> None:
    group = runtime(desired=2, target_groups=())
    actions = settle(group, T0)
    assert not [a for a in actions if isinstance(a, Register | Deregister)]
    group.set_capacity(desired=1, now=T0 + 5)
    actions = group.step(T0 + 5)
    assert [type(a) for a in actions] == [Terminate]
    assert group.instances[actions[0].instance_id].lifecycle == TERMINATING_PROCEED


def test_scale_in_deregisters_waits_for_draining_then_terminates() -> None:
    group = runtime(desired=2)
    settle(group, T0)
    group.set_capacity(desired=1, now=T0 + 10)
    (dereg,) = group.step(T0 + 10)
    assert isinstance(dereg, Deregister)
    iid = dereg.instance_id
    rec = group.instances[iid]
    assert (rec.lifecycle, rec.draining) == (TERMINATING_STATE, True)
    activity = group.activities[-1]
    assert activity.description == f"Terminating EC2 instance: {iid}"
    assert activity.status_code == words.WAITING_FOR_DRAINING
    assert group.step(T0 + 20) == []  # still draining
    group.drained(iid)
    (term,) = group.step(T0 + 30)
    assert term == Terminate("Web", iid, activity.activity_id)
    group.terminated(iid)
    assert rec.lifecycle == TERMINATED
    assert activity.status_code == words.SUCCESSFUL
    assert activity.end_time == T0 + 30
    assert group.counts()["GroupTotalInstances"] == 1
    group.step(T0 + 30 + TERMINATED_KEPT_S - 1)
    assert iid in group.instances  # kept a while in describe, like AWS
    group.step(T0 + 30 + TERMINATED_KEPT_S)
    assert iid not in group.instances
    assert group.activities[-1].activity_id == activity.activity_id  # activities stay


def test_failed_launch_is_recorded_and_retried_after_a_pause() -> None:
    group = runtime(desired=1, scale=TimeScale(10.0))
    (launch,) = group.step(T0)
    assert isinstance(launch, Launch)
    group.launched(launch.instance_id, False, "no free address in SubA")
    assert launch.instance_id not in group.instances
    failed = group.activities[0]
    assert (failed.status_code, failed.status_message) == (words.FAILED, "no free address in SubA")
    assert group.step(T0 + 0.5) == []  # AWS pauses before trying again (10 s / 10)
    (again,) = group.step(T0 + 1.0)
    assert isinstance(again, Launch)
    assert again.host == "Web-2"


# -- lifecycle hooks ----------------------------------------------------------------------------


def hook(transition: str = LAUNCHING, result: str = "ABANDON", timeout: float = 60.0):
    name = "warm" if transition == LAUNCHING else "drain-logs"
    return LifecycleHookSpec(name, transition, heartbeat_timeout_s=timeout, default_result=result)


def test_launch_hook_waits_until_complete_lifecycle_continue() -> None:
    group = runtime(desired=1, scale=TimeScale(10.0), lifecycle_hooks=(hook(),))
    (launch,) = group.step(T0)
    assert isinstance(launch, Launch)
    iid = launch.instance_id
    group.launched(iid, True)
    group.running(iid)
    assert group.step(T0 + 1) == []
    rec = group.instances[iid]
    assert (rec.lifecycle, rec.hook, rec.hook_deadline) == (PENDING_WAIT, "warm", T0 + 7)
    assert group.activities[0].status_code == words.MID_LIFECYCLE
    assert group.describe()["Instances"][0]["LifecycleState"] == "Pending:Wait"
    assert group.step(T0 + 5) == []
    group.complete_lifecycle("warm", iid, "CONTINUE")
    assert group.step(T0 + 6) == [Register("Web", iid)]
    assert rec.lifecycle == IN_SERVICE
    assert rec.hook is None


def test_launch_hook_timeout_with_abandon_terminates_and_launches_again() -> None:
    group = runtime(desired=1, scale=TimeScale(10.0), lifecycle_hooks=(hook(),))
    (launch,) = group.step(T0)
    assert isinstance(launch, Launch)
    iid = launch.instance_id
    group.launched(iid, True)
    group.running(iid)
    group.step(T0 + 1)  # Pending:Wait until T0 + 7 (60 s / 10)
    assert group.step(T0 + 6.9) == []
    actions = group.step(T0 + 7)
    assert actions[0] == Terminate("Web", iid, launch.activity_id)
    assert not [a for a in actions if isinstance(a, Register)]
    # The group still wants one instance: it launches another at once.
    assert [a.host for a in actions if isinstance(a, Launch)] == ["Web-2"]
    group.terminated(iid)
    activity = group.activities[0]
    assert activity.status_code == words.CANCELLED
    assert activity.end_time == T0 + 7
    token = words.lifecycle_token("lab1", iid, "warm")
    assert activity.status_message == (
        "Instance failed to complete user's Lifecycle Action: Lifecycle Action with token "
        f"{token} was abandoned: Heartbeat Timeout"
    )


def test_launch_hook_timeout_with_continue_goes_in_service() -> None:
    group = runtime(desired=1, lifecycle_hooks=(hook(result="CONTINUE", timeout=30.0),))
    settle(group, T0)
    (rec,) = group.instances.values()
    assert rec.lifecycle == PENDING_WAIT
    assert group.step(T0 + 30) == [Register("Web", rec.instance_id)]


def test_complete_lifecycle_abandon_and_errors() -> None:
    group = runtime(desired=1, lifecycle_hooks=(hook(),))
    settle(group, T0)
    (rec,) = group.instances.values()
    with pytest.raises(BadInput, match="No active Lifecycle Action found with instance ID"):
        group.complete_lifecycle("other", rec.instance_id, "CONTINUE")
    with pytest.raises(BadInput, match="CONTINUE or ABANDON"):
        group.complete_lifecycle("warm", rec.instance_id, "MAYBE")
    group.complete_lifecycle("warm", rec.instance_id, "ABANDON")
    actions = group.step(T0 + 1)
    assert isinstance(actions[0], Terminate)
    assert "Lifecycle Action Completed with ABANDON Result" in group.activities[0].status_message


def test_terminate_hook_waits_after_draining() -> None:
    group = runtime(desired=2, lifecycle_hooks=(hook(TERMINATING, "CONTINUE", 120.0),))
    settle(group, T0)
    group.set_capacity(desired=1, now=T0 + 1)
    (dereg,) = group.step(T0 + 1)
    assert isinstance(dereg, Deregister)
    iid = dereg.instance_id
    group.drained(iid)
    assert group.step(T0 + 2) == []
    rec = group.instances[iid]
    assert (rec.lifecycle, rec.hook) == (TERMINATING_WAIT, "drain-logs")
    group.complete_lifecycle("drain-logs", iid, "CONTINUE")
    (term,) = group.step(T0 + 3)
    assert isinstance(term, Terminate)
    assert rec.lifecycle == TERMINATING_PROCEED


def test_terminate_hook_timeout_terminates_whatever_the_result() -> None:
    group = runtime(desired=2, target_groups=(), lifecycle_hooks=(hook(TERMINATING, "ABANDON"),))
    settle(group, T0)
    group.set_capacity(desired=1, now=T0 + 1)
    assert group.step(T0 + 1) == []  # Terminating:Wait at once (nothing to drain)
    (term,) = group.step(T0 + 61)
    assert isinstance(term, Terminate)


# -- termination policies ----------------------------------------------------------------------


def one_az_group(policies: tuple[str, ...], n: int = 3, scale: TimeScale = ONE) -> GroupRuntime:
    """n instances in one subnet, launched 100 s apart (Web-1 oldest)."""
    group = runtime(
        scale, desired=1, subnets=("SubA",), azs=(AZS[0],), termination_policies=policies
    )
    for i in range(n):
        group.set_capacity(desired=i + 1, now=T0 + 100 * i)
        settle(group, T0 + 100 * i)
    return group


def scale_in_victim(group: GroupRuntime, now: float) -> str:
    group.set_capacity(desired=group.desired - 1, now=now)
    (dereg,) = group.step(now)
    assert isinstance(dereg, Deregister)
    return group.instances[dereg.instance_id].host


def test_oldest_and_newest_instance_policies() -> None:
    assert scale_in_victim(one_az_group(("OldestInstance",)), T0 + 500) == "Web-1"
    assert scale_in_victim(one_az_group(("NewestInstance",)), T0 + 500) == "Web-3"


def test_default_closest_to_next_instance_hour() -> None:
    # Launched at T0, T0+100, T0+200; at T0+3550 Web-1 has 50 s left in its hour.
    assert scale_in_victim(one_az_group(("Default",)), T0 + 3550) == "Web-1"
    # At T0+3700: Web-1 has 3500 s left, Web-2 a whole hour, Web-3 100 s.
    assert scale_in_victim(one_az_group(("Default",)), T0 + 3700) == "Web-3"


def test_billing_hour_follows_the_time_scale() -> None:
    # Scale 10: the hour is 360 lab seconds; at T0+350 Web-1 has 10 s left.
    group = one_az_group(("ClosestToNextInstanceHour",), scale=TimeScale(10.0))
    assert scale_in_victim(group, T0 + 350) == "Web-1"


def test_oldest_launch_template_goes_first_even_over_the_default_order() -> None:
    group = one_az_group(("OldestLaunchTemplate",), n=2)
    group.use_launch(replace(SPEC, version=2))
    group.set_capacity(desired=3, now=T0 + 300)
    settle(group, T0 + 300)
    versions = {r.host: r.launch_version for r in group.instances.values()}
    assert versions == {"Web-1": 1, "Web-2": 1, "Web-3": 2}
    assert scale_in_victim(group, T0 + 400) in ("Web-1", "Web-2")
    # Default on a launch-template group does the same before the billing hour.
    group = one_az_group(("Default",), n=2)
    group.use_launch(replace(SPEC, version=2))
    group.set_capacity(desired=3, now=T0 + 3590)  # Web-3 would be closest to its hour...
    settle(group, T0 + 3590)
    assert scale_in_victim(group, T0 + 3600 + 3580) != "Web-3"  # ...but it is current


def test_policies_in_order_then_lowest_instance_id() -> None:
    group = one_az_group(("OldestLaunchTemplate", "OldestInstance"))
    assert scale_in_victim(group, T0 + 500) == "Web-1"  # template ties, age decides
    group = one_az_group(("AllocationStrategy",))  # no lab meaning: random -> lowest id
    hosts = {r.instance_id: r.host for r in group.instances.values()}
    assert scale_in_victim(group, T0 + 500) == hosts[min(hosts)]


def test_az_balance_comes_before_the_policies() -> None:
    group = runtime(desired=3, termination_policies=("NewestInstance",))
    settle(group, T0)
    group.set_capacity(desired=4, now=T0 + 100)  # Web-4 in AZ a: a has 2
    settle(group, T0 + 100)
    group.set_capacity(desired=5, now=T0 + 200)  # Web-5 in AZ b: a 2, b 2, c 1
    settle(group, T0 + 200)
    # Newest overall is Web-5 (b), and a and b are tied: the newest of a and b is Web-5.
    assert scale_in_victim(group, T0 + 300) == "Web-5"
    # Now a has 2, b 1, c 1: only AZ a's instances are candidates; the newest there is Web-4.
    assert scale_in_victim(group, T0 + 400) == "Web-4"


def test_protected_instances_are_skipped() -> None:
    group = one_az_group(("OldestInstance",))
    oldest = next(r for r in group.instances.values() if r.host == "Web-1")
    group.set_protected(oldest.instance_id, True)
    assert scale_in_victim(group, T0 + 500) == "Web-2"
    with pytest.raises(BadInput, match="is not part of Auto Scaling group"):
        group.set_protected("i-00000000000000000", True)


def test_new_instances_protected_from_scale_in() -> None:
    group = runtime(desired=2, new_instances_protected=True)
    settle(group, T0)
    group.set_capacity(desired=1, now=T0 + 1)
    assert group.step(T0 + 1) == []  # every instance protected: nothing to terminate
    assert group.capacity() == 2
    assert group.describe()["Instances"][0]["ProtectedFromScaleIn"] is True


def test_choose_ignores_pending_and_unhealthy_instances() -> None:
    group = runtime(desired=2)
    group.step(T0)
    pending = list(group.instances.values())
    assert termination.choose(pending, ("Default",), SPEC, T0) is None


# -- health and replacement ---------------------------------------------------------------------


def test_unhealthy_instance_is_replaced_launch_first() -> None:
    group = runtime(desired=2, health_check_type="ELB")
    settle(group, T0)
    sick = next(iter(group.instances))
    group.health(sick, False, "ELB health check: unhealthy in lb/WebTG")
    assert group.instances[sick].health == "Unhealthy"
    actions = group.step(T0 + 10)
    assert [type(a) for a in actions] == [Launch]  # the replacement first...
    new = actions[0]
    assert isinstance(new, Launch)
    assert new.az == group.instances[sick].az  # ...in the AZ that is now short
    assert group.instances[sick].lifecycle == IN_SERVICE  # the old one still serves
    assert group.describe()["Instances"][0]["HealthStatus"] == "Unhealthy"
    group.launched(new.instance_id, True)
    group.running(new.instance_id)
    actions = group.step(T0 + 20)
    assert actions == [Register("Web", new.instance_id), Deregister("Web", sick)]
    stop = group.activities[-1]
    assert stop.cause == (
        "At 2026-12-06T10:00:00Z an instance was taken out of service in response to an ELB "
        "system health check failure."
    )
    launch = group.activities[-2]
    assert launch.cause == (
        "At 2026-12-06T10:00:10Z an instance was started in response to a difference between "
        "desired and actual capacity, increasing the capacity from 1 to 2."
    )


def test_ec2_failure_terminates_at_once_and_ignores_the_grace_period() -> None:
    group = runtime(desired=1, health_check_grace_s=300.0)
    settle(group, T0)
    (iid,) = group.instances
    group.health(iid, False, "EC2 health check: the host is gone")
    actions = group.step(T0 + 1)
    assert [type(a) for a in actions] == [Launch, Deregister]
    assert "EC2 health check indicating it has been terminated or stopped" in (
        group.activities[-1].cause
    )


def test_grace_period_holds_back_elb_failures() -> None:
    group = runtime(desired=1, health_check_grace_s=300.0, scale=TimeScale(10.0))
    settle(group, T0)
    (iid,) = group.instances
    group.step(T0 + 29)
    group.health(iid, False, "ELB")
    assert group.instances[iid].health == "Healthy"  # 29 s < 300 s / 10
    group.step(T0 + 30)
    group.health(iid, False, "ELB")
    assert group.instances[iid].health == "Unhealthy"
    group.health(iid, True)
    assert group.instances[iid].health == "Unhealthy"  # never back: it is replaced


def test_failed_replacement_launch_lets_the_unhealthy_one_go() -> None:
    group = runtime(desired=1)
    settle(group, T0)
    (sick,) = group.instances
    group.health(sick, False, "a user health-check")
    (launch,) = group.step(T0 + 1)
    assert isinstance(launch, Launch)
    group.launched(launch.instance_id, False, "boom")
    actions = group.step(T0 + 2)
    assert Deregister("Web", sick) in actions
    assert "in response to a user health-check." in group.activities[-1].cause


# -- AZ rebalancing -----------------------------------------------------------------------------


def test_rebalance_launches_in_the_small_az_then_terminates_in_the_big_one() -> None:
    group = runtime(desired=3)
    settle(group, T0)
    # Make AZ a hold 2 and AZ c none (as if c's instance had been moved away).
    rec = next(r for r in group.instances.values() if r.az == AZS[2])
    rec.az, rec.subnet = AZS[0], "SubA"
    actions = group.step(T0 + 10)
    assert [type(a) for a in actions] == [Launch]
    launch = actions[0]
    assert isinstance(launch, Launch)
    assert launch.az == AZS[2]
    assert "to aid in balancing the group's zones" in group.activities[-1].cause
    group.launched(launch.instance_id, True)
    group.running(launch.instance_id)
    actions = group.step(T0 + 20)
    assert actions[0] == Register("Web", launch.instance_id)
    dereg = actions[1]
    assert isinstance(dereg, Deregister)
    assert group.instances[dereg.instance_id].az == AZS[0]
    assert group.activities[-1].cause.endswith(
        "taken out of service to aid in balancing the group's zones."
    )
    settle(group, T0 + 30)
    assert per_az(group) == {AZS[0]: 1, AZS[1]: 1, AZS[2]: 1}


# -- capacity requests ---------------------------------------------------------------------------


def test_set_capacity_outside_bounds_gives_aws_messages() -> None:
    group = runtime(desired=2, min_size=1, max_size=6)
    with pytest.raises(BadInput) as err:
        group.set_capacity(desired=9, now=T0)
    assert err.value.message == (
        "New SetDesiredCapacity value 9 is above max value 6 for the AutoScalingGroup."
    )
    assert err.value.logical_id == "Web"
    with pytest.raises(BadInput, match="New SetDesiredCapacity value 0 is below min value 1"):
        group.set_capacity(desired=0, now=T0)
    with pytest.raises(BadInput, match="Max bound, 2, must be greater than or equal to min"):
        group.set_capacity(min=3, max=2, now=T0)
    with pytest.raises(BadInput, match="Desired capacity:8 must be between the specified min"):
        group.set_capacity(desired=8, max=7, now=T0)
    assert (group.min_size, group.max_size, group.desired) == (1, 6, 2)


def test_bounds_change_clamps_desired() -> None:
    group = runtime(desired=2, min_size=1, max_size=6)
    group.set_capacity(min=3, now=T0)
    assert (group.min_size, group.desired) == (3, 3)
    group.set_capacity(min=0, max=1, now=T0)
    assert (group.max_size, group.desired) == (1, 1)
    launches = [a for a in group.step(T0) if isinstance(a, Launch)]
    assert len(launches) == 1
    assert group.activities[0].cause.startswith(
        "At 2026-12-06T10:00:00Z a user request update of AutoScalingGroup constraints to "
        "min: 0, max: 1, desired: 1 changing the desired capacity from 3 to 1."
    )


def test_cooldown_runs_from_the_end_of_the_activities() -> None:
    group = runtime(desired=1, cooldown_s=300.0, scale=TimeScale(10.0), target_groups=())
    settle(group, T0)
    assert not group.in_cooldown(T0)
    assert group.set_capacity(desired=2, now=T0 + 1, honour_cooldown=True)
    assert group.in_cooldown(T0 + 1)
    (launch,) = group.step(T0 + 1)
    assert isinstance(launch, Launch)
    assert not group.set_capacity(desired=3, now=T0 + 2, honour_cooldown=True)
    assert group.desired == 2
    group.launched(launch.instance_id, True)
    group.running(launch.instance_id)
    group.step(T0 + 5)  # InService at T0 + 5: cooldown until T0 + 35
    assert group.in_cooldown(T0 + 34.9)
    assert not group.in_cooldown(T0 + 35)
    # A user request that does not honour the cooldown goes through during one.
    group.set_capacity(desired=3, now=T0 + 6)
    assert group.desired == 3


def test_cooldown_without_activities_starts_at_once() -> None:
    group = runtime(desired=1, cooldown_s=60.0)
    settle(group, T0)
    group.set_capacity(desired=1, now=T0 + 1, honour_cooldown=True, cooldown_s=30.0)
    group.step(T0 + 1)
    assert group.in_cooldown(T0 + 30)
    assert not group.in_cooldown(T0 + 31)


def test_capacity_in_warmup() -> None:
    group = runtime(desired=2, default_instance_warmup_s=120.0, scale=TimeScale(2.0))
    settle(group, T0)
    group.set_capacity(desired=3, now=T0 + 30)
    group.step(T0 + 30)  # one Pending: warming up too
    assert group.capacity_in_warmup(T0 + 30) == 3
    assert group.capacity_in_warmup(T0 + 60) == 1  # the first two InService for 60 s = 120/2
    assert group.capacity_in_warmup(T0 + 60, warmup_s=200.0) == 3
    view = group.view(T0 + 60)
    assert (view.desired, view.in_service, view.capacity_in_warmup) == (3, 2, 1)
    assert len(view.instances) == 3


def test_counts_and_describe() -> None:
    group = runtime(desired=3, tags=())
    settle(group, T0)
    group.set_capacity(desired=4, now=T0 + 1)
    group.step(T0 + 1)
    assert group.counts() == {
        "GroupMinSize": 1,
        "GroupMaxSize": 6,
        "GroupDesiredCapacity": 4,
        "GroupInServiceInstances": 3,
        "GroupPendingInstances": 1,
        "GroupStandbyInstances": 0,
        "GroupTerminatingInstances": 0,
        "GroupTotalInstances": 4,
    }
    out = json.loads(json.dumps(group.describe()))
    assert out["AutoScalingGroupName"] == "stack-Web-1ABC"
    assert out["CreatedTime"] == "2026-12-06T10:00:00.000Z"
    assert out["DesiredCapacity"] == 4
    assert out["AvailabilityZones"] == list(AZS)
    assert out["LaunchTemplate"] == {"LaunchTemplateName": "web-lt", "Version": "1"}
    first = out["Instances"][0]
    assert first["InstanceId"] == words.instance_id("lab1", "Web", 1)
    assert first["AvailabilityZone"] == AZS[0]
    assert first["LifecycleState"] == "InService"
    assert first["HealthStatus"] == "Healthy"
    assert first["Host"] == "Web-1"
    assert first["LaunchTemplate"] == {"LaunchTemplateName": "web-lt", "Version": "1"}
    config = runtime(launch=LaunchSpec("WebLC", "launch-configuration", 1, None, None, None))
    settle(config, T0)
    assert config.describe()["LaunchConfigurationName"] == "WebLC"
    assert config.describe()["Instances"][0]["LaunchConfigurationName"] == "WebLC"


def test_scale_in_of_pending_instances_waits_and_keeps_the_user_cause() -> None:
    group = runtime(desired=2)
    carry(group, group.step(T0))  # both still Pending until the next step
    group.set_capacity(desired=1, now=T0)
    actions = group.step(T0 + 1)  # InService now; one of them goes
    assert [type(a) for a in actions] == [Register, Register, Deregister]
    assert group.activities[-1].cause == (
        "At 2026-12-06T10:00:00Z a user request explicitly set group desired capacity changing "
        "the desired capacity from 2 to 1. At 2026-12-06T10:00:01Z an instance was taken out "
        "of service in response to a difference between desired and actual capacity, "
        "shrinking the capacity from 2 to 1."
    )


def test_no_rebalance_churn_when_the_big_az_is_protected() -> None:
    group = runtime(desired=3)
    settle(group, T0)
    records = list(group.instances.values())
    moved = next(r for r in records if r.az == AZS[2])
    moved.az, moved.subnet = AZS[0], "SubA"
    for r in records:
        if r.az == AZS[0]:
            group.set_protected(r.instance_id, True)
    assert group.step(T0 + 10) == []  # only AZ b could give one: that balances nothing


def test_cooldown_armed_by_a_request_between_ticks() -> None:
    group = runtime(desired=1, cooldown_s=60.0, target_groups=())
    settle(group, T0)
    group.set_capacity(desired=2, now=T0 + 0.5, honour_cooldown=True)
    (launch,) = group.step(T0 + 1)
    carry(group, [launch])
    assert group.in_cooldown(T0 + 1.5)  # its launch is not InService yet
    group.step(T0 + 2)
    assert group.in_cooldown(T0 + 61.9)
    assert not group.in_cooldown(T0 + 62)


def test_replacements_stay_within_max_plus_ten_percent() -> None:
    group = runtime(desired=4, min_size=4, max_size=4, subnets=("SubA",), azs=(AZS[0],))
    settle(group, T0)
    sick = list(group.instances)[:3]
    for iid in sick:
        group.health(iid, False, "ELB")
    actions = group.step(T0 + 1)
    # One launch (4 + 10 % -> 5 instances at most), the sick ones serve meanwhile.
    assert [type(a) for a in actions] == [Launch]
    carry(group, actions)
    actions = group.step(T0 + 2)
    # The replacement is InService; no room for more: one sick instance goes to make room.
    assert [type(a) for a in actions] == [Register, Deregister]
    carry(group, actions)
    settle(group, T0 + 3)
    assert group.capacity() == 4
    assert not [
        r for r in group.instances.values() if r.health == "Unhealthy" and r.lifecycle != TERMINATED
    ]


def test_max_instance_lifetime_replaces_one_at_a_time() -> None:
    group = runtime(
        desired=2, max_instance_lifetime_s=86400.0, scale=TimeScale(100.0), target_groups=()
    )
    settle(group, T0)
    assert group.step(T0 + 863) == []
    actions = group.step(T0 + 864)  # 86400 s / 100: the oldest goes, a new one comes
    assert [type(a) for a in actions] == [Launch, Terminate]
    assert "maximum instance lifetime" in group.activities[-2].cause
    group.terminated(actions[1].instance_id)
    assert group.step(T0 + 865) == []  # the other old one waits: its replacement is Pending
    carry(group, actions[:1])
    actions = group.step(T0 + 866)  # the new one InService: the second old one goes
    assert [type(a) for a in actions] == [Launch, Terminate]


def test_many_launches_and_terminations_leave_nothing_behind() -> None:
    group = runtime(desired=0, min_size=0, max_size=50)
    now = T0
    for _ in range(10):  # 10 x 50 launches and 50 terminations
        group.set_capacity(desired=50, now=now)
        actions = settle(group, now)
        assert len([a for a in actions if isinstance(a, Launch)]) == 50
        assert sorted(per_az(group).values()) == [16, 17, 17]
        now += 1
        group.set_capacity(desired=0, now=now)
        actions = settle(group, now)
        assert len([a for a in actions if isinstance(a, Terminate)]) == 50
        now += 1
    group.step(now + TERMINATED_KEPT_S)
    assert group.instances == {}
    assert len(group.activities) == 1000
    assert all(a.status_code == words.SUCCESSFUL for a in group.activities)
    hosts = {a.description for a in group.activities}
    assert len(hosts) == 1000  # 500 instances, each launched once and terminated once
