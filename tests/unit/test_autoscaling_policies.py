"""Scaling policies: target tracking, step, simple (fake clock, fake metrics)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from testbed.autoscaling.alarms import ALARM, OK, AlarmState
from testbed.autoscaling.metricstore import MetricStore
from testbed.autoscaling.policies import (
    DesiredChange,
    GroupView,
    PolicyRuntime,
    find_step,
    largest,
    percent_change,
    predefined_metric,
)
from testbed.autoscaling.timescale import TimeScale
from testbed.model.autoscaling_types import Alarm, MetricSpec, ScalingPolicy, StepAdjustment

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC).timestamp()
ONE = TimeScale(1.0)
DIMS = {"AutoScalingGroupName": "web-asg"}
CPU = MetricSpec("AWS/EC2", "CPUUtilization", tuple(DIMS.items()))


def group(desired: int = 2, warmup: int = 0, lo: int = 1, hi: int = 10) -> GroupView:
    ids = tuple(f"i-{n:017x}" for n in range(desired))
    return GroupView(
        name="WebGroup",
        group_name="web-asg",
        min=lo,
        max=hi,
        desired=desired,
        in_service=desired,
        capacity_in_warmup=warmup,
        instances=ids,
    )


def cpu_minutes(store: MetricStore, values: list[float], start: float = T0) -> float:
    for i, v in enumerate(values):
        store.add("AWS/EC2", "CPUUtilization", DIMS, start + i * 60 + 5, v)
    return start + len(values) * 60 + 1


def tt(target: float = 50.0, **kw: object) -> PolicyRuntime:
    model = ScalingPolicy(
        logical_id="CpuTarget",
        group="WebGroup",
        policy_type="TargetTrackingScaling",
        target_value=target,
        predefined_metric="ASGAverageCPUUtilization",
        **kw,  # type: ignore[arg-type]
    )
    return PolicyRuntime(model, "web-asg")


# --- percent rounding and steps ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("capacity", "percent", "magnitude", "change"),
    [
        (10, 127, None, 12),  # 12.7 rounds down
        (3, 25, None, 1),  # 0.75 becomes 1
        (3, -25, None, -1),  # -0.75 becomes -1
        (10, -67, None, -6),  # -6.7 rounds up (toward zero)
        (4, 25, 2, 2),  # 1, but at least MinAdjustmentMagnitude
        (4, -25, 2, -2),
        (40, 25, 2, 10),
        (4, 0, 2, 0),
    ],
)
def test_percent_change(capacity: int, percent: float, magnitude: int | None, change: int) -> None:
    assert percent_change(capacity, percent, magnitude) == change


STEPS = ScalingPolicy(
    logical_id="Steps",
    group="WebGroup",
    policy_type="StepScaling",
    step_adjustments=(
        StepAdjustment(None, -10.0, -2),
        StepAdjustment(-10.0, 0.0, -1),
        StepAdjustment(0.0, 10.0, 1),
        StepAdjustment(10.0, 20.0, 2),
        StepAdjustment(20.0, None, 4),
    ),
)


@pytest.mark.parametrize(
    ("breach", "adjustment"),
    [
        (0.0, 1),  # above: lower bound inclusive
        (9.99, 1),
        (10.0, 2),  # upper bound exclusive above the threshold
        (19.0, 2),
        (20.0, 4),
        (1000.0, 4),
        (-0.5, -1),
        (-9.99, -1),
        (-10.0, -2),  # below the threshold the upper bound is inclusive, the lower exclusive
        (-10.5, -2),
        (-1000.0, -2),
    ],
)
def test_step_bounds(breach: float, adjustment: int) -> None:
    assert find_step(STEPS, breach) == adjustment


# --- target tracking ----------------------------------------------------------------------------


def test_target_tracking_alarms_like_aws() -> None:
    policy = tt()
    high, low = policy.alarms()
    assert high.name.startswith("TargetTracking-web-asg-AlarmHigh-")
    assert low.name.startswith("TargetTracking-web-asg-AlarmLow-")
    assert len(high.name.rsplit("AlarmHigh-", 1)[1]) == 36  # a uuid
    assert (high.model.evaluation_periods, high.model.datapoints_to_alarm) == (3, 3)
    assert high.model.threshold == 50.0
    assert high.model.comparison == "GreaterThanThreshold"
    assert (low.model.evaluation_periods, low.model.datapoints_to_alarm) == (15, 15)
    assert low.model.threshold == 45.0
    assert low.model.comparison == "LessThanThreshold"
    assert high.model.metric.dimensions == CPU.dimensions
    assert high.model.metric.metric_name == "CPUUtilization"
    assert high.model.metric.statistic == "Average"
    # Stable names: a second runtime of the same policy makes the same alarms.
    assert tt().alarms()[0].name == high.name
    assert len(tt(disable_scale_in=True).alarms()) == 1


def test_target_tracking_scales_out_proportionally() -> None:
    store = MetricStore()
    policy = tt()
    now = cpu_minutes(store, [80.0, 85.0, 100.0])
    change = policy.decide(group(2), store, {}, now, ONE)
    assert change is not None
    # ceil(2 * 100 / 50) = 4
    assert change.desired == 4
    assert change.group == "WebGroup"
    assert change.policy == "CpuTarget"
    assert change.honour_cooldown is False
    high = policy.alarms()[0]
    assert high.state == ALARM
    assert change.cause == (
        f"At 2026-12-06T10:03:01Z a monitor alarm {high.name} in state ALARM triggered policy "
        "CpuTarget changing the desired capacity from 2 to 4."
    )
    # The same minute again: nothing more.
    assert policy.decide(group(4, warmup=2), store, {}, now + 1, ONE) is None


def test_target_tracking_repeats_each_minute_counting_warm_up() -> None:
    store = MetricStore()
    policy = tt()
    now = cpu_minutes(store, [80.0, 80.0, 80.0])
    first = policy.decide(group(4), store, {}, now, ONE)
    assert first is not None
    assert first.desired == 7  # ceil(4 * 80 / 50)
    # One minute on, still 80 % over the 4 warmed-up instances: the 3 warming ones already
    # make up the capacity wanted -> no new activity.
    now = cpu_minutes(store, [80.0], start=T0 + 180)
    warming = GroupView("WebGroup", "web-asg", 1, 10, 7, 7, 3, tuple(f"i-{n}" for n in range(7)))
    assert policy.decide(warming, store, {}, now, ONE) is None
    # The metric rises further: the difference is added.
    now = cpu_minutes(store, [120.0], start=T0 + 240)
    more = policy.decide(warming, store, {}, now, ONE)
    assert more is not None
    assert more.desired == 10  # ceil(4 * 120 / 50) = 10


def test_target_tracking_respects_max() -> None:
    store = MetricStore()
    now = cpu_minutes(store, [100.0, 100.0, 500.0])
    change = tt().decide(group(2, hi=5), store, {}, now, ONE)
    assert change is not None
    assert change.desired == 5


def test_target_tracking_scales_in_gradually() -> None:
    store = MetricStore()
    policy = tt()
    now = cpu_minutes(store, [10.0] * 15)
    change = policy.decide(group(20, hi=30), store, {}, now, ONE)
    assert change is not None
    assert policy.alarms()[1].state == ALARM
    # Proportional would be ceil(20 * 10 / 50) = 4; at most 10 % (2 instances) go at once.
    assert change.desired == 18
    assert "AlarmLow" in change.cause
    # Next minute, still low: another step down.
    now = cpu_minutes(store, [10.0], start=T0 + 15 * 60)
    again = policy.decide(group(18, hi=30), store, {}, now, ONE)
    assert again is not None
    assert again.desired == 17  # floor(1.8) = 1 -> at least one


def test_target_tracking_scale_in_waits_for_warm_up_and_min() -> None:
    store = MetricStore()
    now = cpu_minutes(store, [10.0] * 15)
    assert tt().decide(group(4, warmup=1), store, {}, now, ONE) is None
    assert tt().decide(group(2, lo=2), store, {}, now, ONE) is None
    assert tt(disable_scale_in=True).decide(group(4), store, {}, now, ONE) is None


def test_target_tracking_under_a_time_scale() -> None:
    store = MetricStore()
    policy = tt()
    scale = TimeScale(10.0)
    for i in range(18):  # 18 lab seconds = 3 AWS minutes
        store.add("AWS/EC2", "CPUUtilization", DIMS, T0 + i, 75.0)
    change = policy.decide(group(2), store, {}, T0 + 18, scale)
    assert change is not None
    assert change.desired == 3


def test_alb_request_count_per_target_metric() -> None:
    model = ScalingPolicy(
        logical_id="Requests",
        group="WebGroup",
        policy_type="TargetTrackingScaling",
        target_value=100.0,
        predefined_metric="ALBRequestCountPerTarget",
        resource_target=("Alb", "WebTg"),
    )
    spec = predefined_metric(model, "web-asg", {"WebTg": "targetgroup/web/0123456789abcdef"})
    assert spec.namespace == "AWS/ApplicationELB"
    assert spec.metric_name == "RequestCountPerTarget"
    assert spec.statistic == "Sum"
    assert spec.dimensions == (("TargetGroup", "targetgroup/web/0123456789abcdef"),)
    policy = PolicyRuntime(model, "web-asg", {"WebTg": "targetgroup/web/0123456789abcdef"})
    store = MetricStore()
    for i in range(180):  # 5 requests per target per second for 3 minutes: 300 per minute
        store.add(
            "AWS/ApplicationELB",
            "RequestCountPerTarget",
            {"TargetGroup": spec.dimensions[0][1]},
            T0 + i,
            5.0,
        )
    change = policy.decide(group(2), store, {}, T0 + 181, ONE)
    assert change is not None
    assert change.desired == 6  # ceil(2 * 300 / 100)


def test_network_in_metric_and_predictive() -> None:
    model = ScalingPolicy(
        logical_id="Net",
        group="WebGroup",
        policy_type="TargetTrackingScaling",
        target_value=1000.0,
        predefined_metric="ASGAverageNetworkIn",
    )
    assert predefined_metric(model, "web-asg", {}).metric_name == "NetworkIn"
    predictive = ScalingPolicy(logical_id="P", group="WebGroup", policy_type="PredictiveScaling")
    runtime = PolicyRuntime(predictive, "web-asg")
    assert runtime.alarms() == []
    assert runtime.decide(group(2), MetricStore(), {}, T0, ONE) is None


# --- step scaling -------------------------------------------------------------------------------


def cw_alarm(actions: tuple[str, ...], threshold: float = 50.0, **kw: object) -> AlarmState:
    return AlarmState(
        Alarm(
            logical_id="HighCpu",
            name="web-HighCpu",
            metric=CPU,
            period_s=60.0,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            threshold=threshold,
            comparison="GreaterThanOrEqualToThreshold",
            alarm_actions=actions,
            **kw,  # type: ignore[arg-type]
        )
    )


def test_step_scaling_picks_the_step_and_repeats_each_period() -> None:
    store = MetricStore()
    alarm = cw_alarm(("Steps",))
    policy = PolicyRuntime(STEPS, "web-asg")
    now = cpu_minutes(store, [65.0])  # breach 15 -> +2
    alarm.evaluate(store, now, ONE)
    change = policy.decide(group(2), store, {"HighCpu": alarm}, now, ONE)
    assert change is not None
    assert change.desired == 4
    assert change.honour_cooldown is False
    assert change.cause.endswith(
        "a monitor alarm web-HighCpu in state ALARM triggered policy Steps changing the "
        "desired capacity from 2 to 4."
    )
    # Same period: not invoked again.
    assert policy.decide(group(4), store, {"HighCpu": alarm}, now + 5, ONE) is None
    # Next period, same step, the 2 new ones warming up: already covered.
    now = cpu_minutes(store, [65.0], start=T0 + 60)
    alarm.evaluate(store, now, ONE)
    assert policy.decide(group(4, warmup=2), store, {"HighCpu": alarm}, now, ONE) is None
    # A higher step: the difference.
    now = cpu_minutes(store, [90.0], start=T0 + 120)
    alarm.evaluate(store, now, ONE)
    bigger = policy.decide(group(4, warmup=2), store, {"HighCpu": alarm}, now, ONE)
    assert bigger is not None
    assert bigger.desired == 6  # 2 warmed + 4


def test_step_scaling_ignores_alarms_not_naming_it_and_disabled_actions() -> None:
    store = MetricStore()
    now = cpu_minutes(store, [90.0])
    other = cw_alarm(("SomethingElse",))
    disabled = cw_alarm(("Steps",), actions_enabled=False)
    for a in (other, disabled):
        a.evaluate(store, now, ONE)
    policy = PolicyRuntime(STEPS, "web-asg")
    assert policy.decide(group(2), store, {"A": other, "B": disabled}, now, ONE) is None


def test_step_scale_in_with_percent_and_ok_action() -> None:
    model = ScalingPolicy(
        logical_id="In",
        group="WebGroup",
        policy_type="StepScaling",
        adjustment_type="PercentChangeInCapacity",
        step_adjustments=(StepAdjustment(None, None, -30),),
        min_adjustment_magnitude=2,
    )
    store = MetricStore()
    low = AlarmState(
        Alarm(
            logical_id="LowCpu",
            name="web-LowCpu",
            metric=CPU,
            period_s=60.0,
            evaluation_periods=2,
            datapoints_to_alarm=2,
            threshold=20.0,
            comparison="LessThanThreshold",
            alarm_actions=("In",),
        )
    )
    now = cpu_minutes(store, [5.0, 5.0])
    low.evaluate(store, now, ONE)
    policy = PolicyRuntime(model, "web-asg")
    change = policy.decide(group(10), store, {"LowCpu": low}, now, ONE)
    assert change is not None
    assert change.desired == 7  # -30 % of 10
    # Scale in waits while instances warm up.
    policy2 = PolicyRuntime(model, "web-asg")
    assert policy2.decide(group(10, warmup=1), store, {"LowCpu": low}, now, ONE) is None
    # 30 % of 4 is 1.2 -> 1, MinAdjustmentMagnitude makes it 2.
    policy3 = PolicyRuntime(model, "web-asg")
    small = policy3.decide(group(4), store, {"LowCpu": low}, now, ONE)
    assert small is not None
    assert small.desired == 2


# --- simple scaling -----------------------------------------------------------------------------


def test_simple_scaling_honours_cooldown() -> None:
    model = ScalingPolicy(
        logical_id="AddOne",
        group="WebGroup",
        policy_type="SimpleScaling",
        scaling_adjustment=1,
        cooldown_s=120.0,
    )
    store = MetricStore()
    alarm = cw_alarm(("AddOne",))
    policy = PolicyRuntime(model, "web-asg", name="stack-AddOne-1ABC")
    now = cpu_minutes(store, [70.0])
    alarm.evaluate(store, now, ONE)
    change = policy.decide(group(2, warmup=2), store, {"HighCpu": alarm}, now, ONE)
    assert change is not None
    assert change.desired == 3  # simple scaling starts from the desired capacity
    assert change.honour_cooldown is True
    assert change.cooldown_s == 120.0
    assert "triggered policy stack-AddOne-1ABC" in change.cause
    # Still ALARM a period later: invoked again; the group's cooldown decides.
    now = cpu_minutes(store, [70.0], start=T0 + 60)
    alarm.evaluate(store, now, ONE)
    again = policy.decide(group(3), store, {"HighCpu": alarm}, now, ONE)
    assert again is not None
    assert again.desired == 4
    # OK: no more.
    now = cpu_minutes(store, [10.0], start=T0 + 120)
    assert alarm.evaluate(store, now, ONE) == OK
    assert policy.decide(group(4), store, {"HighCpu": alarm}, now, ONE) is None


def test_exact_capacity() -> None:
    model = ScalingPolicy(
        logical_id="Five",
        group="WebGroup",
        policy_type="SimpleScaling",
        adjustment_type="ExactCapacity",
        scaling_adjustment=5,
    )
    store = MetricStore()
    alarm = cw_alarm(("Five",))
    now = cpu_minutes(store, [70.0])
    alarm.evaluate(store, now, ONE)
    change = PolicyRuntime(model, "web-asg").decide(group(2), store, {"H": alarm}, now, ONE)
    assert change is not None
    assert change.desired == 5
    # Already 5: nothing to do.
    assert PolicyRuntime(model, "web-asg").decide(group(5), store, {"H": alarm}, now, ONE) is None


def test_service_evaluating_the_alarms_first_sees_the_transition() -> None:
    # The service evaluates every alarm (its events), then asks the policy: same outcome.
    store = MetricStore()
    policy = tt()
    now = cpu_minutes(store, [90.0, 90.0, 90.0])
    high = policy.alarms()[0]
    assert high.evaluate(store, now, ONE) == ALARM
    change = policy.decide(group(2), store, {}, now, ONE)
    assert change is not None
    assert change.desired == 4


def test_several_policies_at_once_the_largest_capacity_wins() -> None:
    a = DesiredChange("WebGroup", 3, "a", "A", False)
    b = DesiredChange("WebGroup", 5, "b", "B", False)
    c = DesiredChange("Other", 1, "c", "C", True)
    assert largest([a, b, c]) == [b, c]
