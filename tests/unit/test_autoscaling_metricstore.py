"""MetricStore: CloudWatch statistics of the lab's observations (fake times)."""

from __future__ import annotations

import pytest

from testbed.autoscaling.metricstore import MetricStore, aggregate
from testbed.autoscaling.timescale import TimeScale
from testbed.model.autoscaling_types import MetricSpec

GROUP = (("AutoScalingGroupName", "web"),)


def cpu(statistic: str = "Average") -> MetricSpec:
    return MetricSpec("AWS/EC2", "CPUUtilization", GROUP, statistic)


def test_statistics_of_a_gauge() -> None:
    store = MetricStore()
    for t, v in [(0, 10.0), (1, 20.0), (2, 60.0), (3, 30.0)]:
        store.add("AWS/EC2", "CPUUtilization", dict(GROUP), t, v)
    assert store.statistic(cpu("Average"), 0, 4) == 30.0
    assert store.statistic(cpu("Sum"), 0, 4) == 120.0
    assert store.statistic(cpu("Minimum"), 0, 4) == 10.0
    assert store.statistic(cpu("Maximum"), 0, 4) == 60.0
    assert store.statistic(cpu("SampleCount"), 0, 4) == 4.0
    assert store.statistic(cpu("p50"), 0, 4) == 20.0
    assert store.statistic(cpu("p99.9"), 0, 4) == 60.0
    # [start, end): the observation at 4 belongs to the next period.
    assert store.statistic(cpu("Average"), 1, 3) == 40.0
    assert store.statistic(cpu("Average"), 10, 20) is None


def test_dimensions_match_exactly() -> None:
    store = MetricStore()
    store.add("AWS/EC2", "CPUUtilization", {"InstanceId": "i-1"}, 0, 90.0)
    store.add("AWS/EC2", "CPUUtilization", dict(GROUP), 0, 10.0)
    assert store.statistic(cpu(), 0, 1) == 10.0
    per_instance = MetricSpec("AWS/EC2", "CPUUtilization", (("InstanceId", "i-1"),))
    assert store.statistic(per_instance, 0, 1) == 90.0
    assert len(store.series()) == 2


def test_counts_are_summed_per_instance_before_the_average() -> None:
    # ASGAverageNetworkIn: the average over the group's instances of each one's Sum.
    store = MetricStore()
    for t in range(6):
        store.add("AWS/EC2", "NetworkIn", dict(GROUP), t, 100.0, source="i-a")
        store.add("AWS/EC2", "NetworkIn", dict(GROUP), t, 300.0, source="i-b")
    spec = MetricSpec("AWS/EC2", "NetworkIn", GROUP, "Average")
    assert store.statistic(spec, 0, 6) == (600.0 + 1800.0) / 2
    assert store.statistic(MetricSpec("AWS/EC2", "NetworkIn", GROUP, "Sum"), 0, 6) == 2400.0
    assert store.statistic(MetricSpec("AWS/EC2", "NetworkIn", GROUP, "Maximum"), 0, 6) == 1800.0


def test_request_count_per_target_sum_over_a_scaled_minute() -> None:
    scale = TimeScale(10.0)
    store = MetricStore()
    dims = {"TargetGroup": "targetgroup/tg/0123456789abcdef"}
    for t in range(12):  # one lab second per tick: 6 ticks in one AWS minute
        store.add("AWS/ApplicationELB", "RequestCountPerTarget", dims, t, 5.0)
    spec = MetricSpec("AWS/ApplicationELB", "RequestCountPerTarget", tuple(dims.items()), "Sum")
    assert store.statistic(spec, 0, scale.s(60)) == 30.0
    # Average of a count per dimension set is the period's sum too (one source).
    avg = MetricSpec("AWS/ApplicationELB", "RequestCountPerTarget", tuple(dims.items()))
    assert store.statistic(avg, 6, 12) == 30.0


def test_prune_and_latest() -> None:
    store = MetricStore()
    for t in range(10):
        store.add("AWS/EC2", "CPUUtilization", dict(GROUP), t, float(t))
    store.prune(before=8)
    assert store.statistic(cpu("SampleCount"), 0, 100) == 2.0
    assert store.latest(cpu()) == (9, 9.0)
    store.prune(before=100)
    assert store.series() == []
    assert store.latest(cpu()) is None


def test_unknown_statistic() -> None:
    with pytest.raises(ValueError, match="unknown statistic"):
        aggregate("Median", [1.0])
    with pytest.raises(ValueError, match="unknown statistic"):
        aggregate("p200", [1.0])


def test_timescale() -> None:
    assert TimeScale().s(60) == 60
    assert TimeScale(10).s(300) == 30
    assert TimeScale(4).aws(15) == 60
    assert "10x" in TimeScale(10).describe()
    with pytest.raises(ValueError, match="must be > 0"):
        TimeScale(0)


def test_a_late_observation_is_kept_in_time_order() -> None:
    store = MetricStore()
    store.add("AWS/EC2", "CPUUtilization", dict(GROUP), 5, 50.0)
    store.add("AWS/EC2", "CPUUtilization", dict(GROUP), 1, 10.0)
    assert store.statistic(cpu(), 0, 2) == 10.0
    assert store.latest(cpu()) == (5, 50.0)
