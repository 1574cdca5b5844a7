"""CloudWatch alarm evaluation: M of N, TreatMissingData, reasons (fake clock)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from testbed.autoscaling.alarms import ALARM, INSUFFICIENT_DATA, OK, AlarmState
from testbed.autoscaling.metricstore import MetricStore
from testbed.autoscaling.timescale import TimeScale
from testbed.model.autoscaling_types import Alarm, MetricSpec

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC).timestamp()
SPEC = MetricSpec("AWS/EC2", "CPUUtilization", (("AutoScalingGroupName", "web"),))
ONE = TimeScale(1.0)


def alarm(n: int = 3, m: int | None = None, treat: str = "missing", **kw: object) -> AlarmState:
    model = Alarm(
        logical_id="HighCpu",
        name="web-HighCpu",
        metric=SPEC,
        period_s=60.0,
        evaluation_periods=n,
        datapoints_to_alarm=m or n,
        threshold=float(kw.pop("threshold", 50.0)),  # type: ignore[arg-type]
        comparison=str(kw.pop("comparison", "GreaterThanThreshold")),
        treat_missing=treat,
        alarm_actions=("ScaleOut",),
    )
    return AlarmState(model)


def feed(store: MetricStore, values: list[float | None], start: float = T0) -> float:
    """One observation per minute from start (None: none that minute); the time right after
    the last minute (when all of them are complete periods)."""
    for i, v in enumerate(values):
        if v is not None:
            store.add(
                "AWS/EC2", "CPUUtilization", {"AutoScalingGroupName": "web"}, start + i * 60 + 5, v
            )
    return start + len(values) * 60 + 1


def test_three_of_three_alarm_then_ok_with_cloudwatch_words() -> None:
    store = MetricStore()
    a = alarm()
    now = feed(store, [81.2, 75.0, 90.1])
    assert a.evaluate(store, now, ONE) == ALARM
    assert a.state == ALARM
    assert a.since == now
    assert a.reason == (
        "Threshold Crossed: 3 out of the last 3 datapoints [90.1 (06/12/26 10:02:00), "
        "75.0 (06/12/26 10:01:00), 81.2 (06/12/26 10:00:00)] were greater than the threshold "
        "(50.0) (minimum 3 datapoints for INSUFFICIENT_DATA -> ALARM transition)."
    )
    # Same time again: no change.
    assert a.evaluate(store, now, ONE) is None
    now = feed(store, [20.0], start=T0 + 180)
    assert a.evaluate(store, now, ONE) == OK
    assert a.reason.startswith(
        "Threshold Crossed: 1 out of the last 3 datapoints [20.0 (06/12/26 10:03:00)] was not "
        "greater than the threshold (50.0)"
    )
    assert a.reason.endswith("(minimum 1 datapoint for ALARM -> OK transition).")


def test_m_of_n() -> None:
    store = MetricStore()
    a = alarm(n=5, m=2)
    now = feed(store, [60.0, 10.0, 10.0, 70.0, 10.0])
    assert a.evaluate(store, now, ONE) == ALARM
    assert "2 out of the last 5 datapoints" in a.reason
    b = alarm(n=5, m=3)
    assert b.evaluate(store, now, ONE) == OK


def test_only_complete_periods_count() -> None:
    store = MetricStore()
    a = alarm(n=1)
    feed(store, [10.0, 99.0])
    # Half way through the second minute: its high value is not a datapoint yet.
    assert a.evaluate(store, T0 + 90, ONE) == OK
    assert a.evaluate(store, T0 + 121, ONE) == ALARM


def test_time_scale_shortens_periods() -> None:
    store = MetricStore()
    a = alarm(n=3)
    scale = TimeScale(10.0)  # 60 s periods become 6 s
    for i in range(18):
        store.add("AWS/EC2", "CPUUtilization", {"AutoScalingGroupName": "web"}, T0 + i, 80.0)
    assert a.evaluate(store, T0 + 18, scale) == ALARM
    assert a.datapoints[-1] == (T0 + 12, 80.0)


def test_no_data_at_all_per_treatment() -> None:
    store = MetricStore()
    now = T0 + 600
    missing = alarm(treat="missing")
    missing.state = OK
    assert missing.evaluate(store, now, ONE) == INSUFFICIENT_DATA
    assert missing.reason == "Insufficient Data: 3 datapoints were unknown."
    ignore = alarm(treat="ignore")
    ignore.state = ALARM
    assert ignore.evaluate(store, now, ONE) is None
    assert ignore.state == ALARM
    breaching = alarm(treat="breaching")
    assert breaching.evaluate(store, now, ONE) == ALARM
    assert "treated as [Breaching]" in breaching.reason
    not_breaching = alarm(treat="notBreaching")
    assert not_breaching.evaluate(store, now, ONE) == OK
    assert "treated as [NonBreaching]" in not_breaching.reason


@pytest.mark.parametrize(
    ("values", "treat", "start", "expected"),
    [
        # CloudWatch's examples (3 of 3, evaluation range of 5): X breaching, 0 not, - missing.
        ([10, None, 90, None, 90], "missing", OK, OK),
        ([10, None, 90, None, 90], "breaching", OK, OK),
        ([10, None, 90, None, 90], "notBreaching", ALARM, OK),
        ([None, None, None, None, 10], "missing", ALARM, OK),
        ([None, None, None, None, 10], "ignore", ALARM, OK),
        ([None, None, None, None, 10], "breaching", OK, OK),
        ([None, None, 90, None, None], "missing", OK, ALARM),
        ([None, None, 90, None, None], "ignore", OK, OK),
        ([None, None, 90, None, None], "ignore", ALARM, ALARM),
        ([None, None, 90, None, None], "breaching", OK, ALARM),
        ([None, None, 90, None, None], "notBreaching", ALARM, OK),
        ([10, 90, 90, None, 90], "missing", OK, ALARM),
    ],
)
def test_missing_datapoints(
    values: list[float | None], treat: str, start: str, expected: str
) -> None:
    store = MetricStore()
    a = alarm(treat=treat)
    a.state = start
    now = feed(store, values)
    a.evaluate(store, now, ONE)
    assert a.state == expected


def test_real_datapoints_further_back_are_used_before_treatment() -> None:
    # 3 real datapoints within the range of 5 -> the missing ones play no part.
    store = MetricStore()
    a = alarm(treat="breaching")
    now = feed(store, [90, None, 90, None, 90])
    assert a.evaluate(store, now, ONE) == ALARM
    assert "3 out of the last 3 datapoints" in a.reason


@pytest.mark.parametrize(
    ("comparison", "value", "breaching"),
    [
        ("GreaterThanOrEqualToThreshold", 50.0, True),
        ("GreaterThanThreshold", 50.0, False),
        ("LessThanThreshold", 49.9, True),
        ("LessThanOrEqualToThreshold", 50.0, True),
        ("LessThanThreshold", 50.0, False),
    ],
)
def test_comparisons(comparison: str, value: float, breaching: bool) -> None:
    store = MetricStore()
    a = alarm(n=1, comparison=comparison)
    now = feed(store, [value])
    assert a.evaluate(store, now, ONE) == (ALARM if breaching else OK)


def test_describe_like_describe_alarms() -> None:
    store = MetricStore()
    a = alarm()
    now = feed(store, [81.0, 82.0, 83.0])
    a.evaluate(store, now, ONE)
    d = a.describe()
    assert d["AlarmName"] == "web-HighCpu"
    assert d["StateValue"] == "ALARM"
    assert d["StateUpdatedTimestamp"] == "2026-12-06T10:03:01Z"
    assert d["Namespace"] == "AWS/EC2"
    assert d["MetricName"] == "CPUUtilization"
    assert d["Dimensions"] == [{"Name": "AutoScalingGroupName", "Value": "web"}]
    assert d["Statistic"] == "Average"
    assert d["Period"] == 60
    assert d["Threshold"] == 50.0
    assert d["ComparisonOperator"] == "GreaterThanThreshold"
    assert d["EvaluationPeriods"] == 3
    assert d["DatapointsToAlarm"] == 3
    assert d["AlarmActions"] == ["ScaleOut"]
    assert d["RecentDatapoints"][-1] == {"Timestamp": "2026-12-06T10:02:00Z", "Value": 83.0}


def test_percentile_alarm_and_extended_statistic() -> None:
    store = MetricStore()
    spec = MetricSpec("AWS/EC2", "CPUUtilization", SPEC.dimensions, "p90")
    model = Alarm(
        logical_id="P90",
        name="web-p90",
        metric=spec,
        period_s=60.0,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        threshold=80.0,
        comparison="GreaterThanThreshold",
    )
    a = AlarmState(model)
    for i in range(10):  # one of ten samples high: p90 is the 9th smallest
        store.add("AWS/EC2", "CPUUtilization", {"AutoScalingGroupName": "web"}, T0 + i, 10.0)
    store.add("AWS/EC2", "CPUUtilization", {"AutoScalingGroupName": "web"}, T0 + 20, 99.0)
    assert a.evaluate(store, T0 + 61, ONE) == OK
    d = a.describe()
    assert d["ExtendedStatistic"] == "p90"
    assert "Statistic" not in d


def test_ignore_with_enough_datapoints_evaluates_them() -> None:
    store = MetricStore()
    a = alarm(treat="ignore")
    now = feed(store, [90, None, 90, 90])
    assert a.evaluate(store, now, ONE) == ALARM
