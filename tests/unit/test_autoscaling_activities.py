"""Scaling activities: AWS's wording, deterministic ids, listing order (fake clock)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from testbed.autoscaling import activities as words
from testbed.autoscaling.activities import Activity
from testbed.autoscaling.group import GroupRuntime, Launch
from testbed.autoscaling.timescale import TimeScale
from testbed.model.autoscaling_types import AutoScalingGroup, LaunchSpec

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC).timestamp()
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def group(desired: int = 2) -> GroupRuntime:
    model = AutoScalingGroup(
        logical_id="Web",
        name="stack-Web-1ABC",
        min_size=1,
        max_size=6,
        desired=desired,
        subnets=("SubA", "SubB"),
        azs=("us-east-1a", "us-east-1b"),
        launch=LaunchSpec("WebLT", "launch-template", 1, None, None, None),
    )
    return GroupRuntime(model, TimeScale(1.0), "lab1")


def test_times_as_aws_prints_them() -> None:
    assert words.iso(T0 + 0.9) == "2026-12-06T10:00:00Z"
    assert words.timestamp(T0 + 0.25) == "2026-12-06T10:00:00.250Z"


def test_ids_are_uuid_shaped_and_deterministic() -> None:
    a = words.activity_id("lab1", "Web", 1)
    assert UUID.fullmatch(a)
    assert a == words.activity_id("lab1", "Web", 1)
    assert a != words.activity_id("lab1", "Web", 2)
    assert a != words.activity_id("lab2", "Web", 1)
    assert UUID.fullmatch(words.lifecycle_token("lab1", "i-0123456789abcdef0", "warm"))
    assert re.fullmatch(r"i-[0-9a-f]{17}", words.instance_id("lab1", "Web", 1))


def test_user_scale_out_cause_as_aws_words_it() -> None:
    g = group(desired=2)
    g.step(T0)  # the template's two instances
    for a in g.step(T0):
        assert not isinstance(a, Launch)
    g.set_capacity(desired=4, now=T0)
    launches = [a for a in g.step(T0 + 5) if isinstance(a, Launch)]
    assert len(launches) == 2
    newest = g.describe_activities()[0]
    assert newest["Description"] == f"Launching a new EC2 instance: {launches[1].instance_id}"
    assert newest["Cause"] == (
        "At 2026-12-06T10:00:00Z a user request explicitly set group desired capacity changing "
        "the desired capacity from 2 to 4. At 2026-12-06T10:00:05Z an instance was started in "
        "response to a difference between desired and actual capacity, increasing the "
        "capacity from 2 to 4."
    )
    assert newest["StatusCode"] == "PreInService"
    assert newest["AutoScalingGroupName"] == "stack-Web-1ABC"
    assert newest["StartTime"] == "2026-12-06T10:00:05.000Z"
    assert "EndTime" not in newest
    assert newest["Details"] == f'{{"InstanceId":"{launches[1].instance_id}"}}'


def test_first_launches_are_the_groups_creation_and_listing_is_newest_first() -> None:
    g = group(desired=2)
    launches = [a for a in g.step(T0) if isinstance(a, Launch)]
    listed = g.describe_activities()
    assert [a["ActivityId"] for a in listed] == [a.activity_id for a in reversed(launches)]
    assert listed[0]["Cause"] == (
        "At 2026-12-06T10:00:00Z a user request created an AutoScalingGroup changing the "
        "desired capacity from 0 to 2. At 2026-12-06T10:00:00Z an instance was started in "
        "response to a difference between desired and actual capacity, increasing the "
        "capacity from 0 to 2."
    )
    # The runtime's own list is oldest first (it reverses it for describe-scaling-activities).
    assert [a.activity_id for a in g.activities] == [a.activity_id for a in launches]


def test_policy_cause_is_kept_verbatim() -> None:
    g = group(desired=1)
    g.step(T0)
    policy = (
        "At 2026-12-06T10:00:00Z a monitor alarm TargetTracking-web-AlarmHigh-1 in state ALARM "
        "triggered policy P changing the desired capacity from 1 to 2."
    )
    g.set_capacity(desired=2, cause=policy, now=T0 + 1)
    g.step(T0 + 1)
    assert g.activities[-1].cause.startswith(policy + " At 2026-12-06T10:00:01Z an instance")


def test_scale_in_cause() -> None:
    assert words.stopped_for_capacity(T0, 4, 2) == (
        "At 2026-12-06T10:00:00Z an instance was taken out of service in response to a "
        "difference between desired and actual capacity, shrinking the capacity from 4 to 2."
    )
    assert words.terminating("i-1") == "Terminating EC2 instance: i-1"


def test_finish_is_final_and_progress_never_goes_back() -> None:
    a = Activity("id", "g", "d", "c", T0)
    a.update(words.MID_LIFECYCLE, 30)
    a.update(words.IN_PROGRESS, 20)
    assert a.progress == 30
    a.finish(words.SUCCESSFUL, T0 + 1)
    a.finish(words.FAILED, T0 + 2, "late")
    assert (a.status_code, a.end_time, a.progress, a.status_message) == (
        words.SUCCESSFUL,
        T0 + 1,
        100,
        "",
    )
    out = a.describe()
    assert out["EndTime"] == "2026-12-06T10:00:01.000Z"
    assert "StatusMessage" not in out


def test_scheduled_update_words() -> None:
    assert words.scheduled_update(T0, 1, 5, 3, 2) == (
        "At 2026-12-06T10:00:00Z a scheduled action update of AutoScalingGroup constraints to "
        "min: 1, max: 5, desired: 3 changing the desired capacity from 2 to 3."
    )
