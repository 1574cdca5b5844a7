"""The autoscale experiment's pure parts: load schedule, step numbers from made-up frames,
the figure, the template copy with its time scale; and the backend's cpu_ms burner."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from testbed.analysis import autoscale as numbers
from testbed.errors import BadInput
from testbed.experiments import autoscale
from testbed.roles.http_backend import burn_cpu

T0 = 1_000_000.0


def test_schedule_phases_follow_each_other():
    phases = autoscale.schedule("low:10:30, high:100:60,low:10:20")
    assert [(p.name, p.rate, p.start, p.end) for p in phases] == [
        ("low", 10.0, 0.0, 30.0),
        ("high", 100.0, 30.0, 90.0),
        ("low", 10.0, 90.0, 110.0),
    ]
    assert [(p.name, d) for p, d in autoscale.steps(phases)] == [("high", "up"), ("low", "down")]


@pytest.mark.parametrize("bad", ["", "low:10", "low:x:3", "low:10:0", "low:-1:5", "a:1000:1000"])
def test_schedule_refuses_bad_phases(bad):
    with pytest.raises(BadInput):
        autoscale.schedule(bad)


def _samples(rows):
    """rows: (seconds after T0, desired, in_service hosts, all hosts)."""
    return pd.DataFrame(
        [
            {
                "time": T0 + t,
                "desired": desired,
                "in_service": len(ins),
                "in_service_hosts": ";".join(ins),
                "hosts": ";".join(every),
            }
            for t, desired, ins, every in rows
        ]
    )


def _requests(rows):
    """rows: (seconds after T0, backend, error)."""
    return pd.DataFrame(
        [
            {
                "start": T0 + t,
                "latency_ms": 10.0 * (i + 1),
                "status": 0 if err else 200,
                "error": err or None,
                "backend": None if err else backend,
            }
            for i, (t, backend, err) in enumerate(rows)
        ]
    )


SAMPLES = _samples(
    [
        (0, 2, ["W-1", "W-2"], ["W-1", "W-2"]),
        (10, 2, ["W-1", "W-2"], ["W-1", "W-2"]),
        (12, 4, ["W-1", "W-2"], ["W-1", "W-2", "W-3", "W-4"]),
        (15, 4, ["W-1", "W-2", "W-3"], ["W-1", "W-2", "W-3", "W-4"]),
        (16, 4, ["W-1", "W-2", "W-3", "W-4"], ["W-1", "W-2", "W-3", "W-4"]),
        (30, 1, ["W-1", "W-2", "W-3", "W-4"], ["W-1", "W-2", "W-3", "W-4"]),
        (34, 1, ["W-1"], ["W-1", "W-2", "W-3", "W-4"]),
        (38, 1, ["W-1"], ["W-1"]),
        (50, 1, ["W-1"], ["W-1"]),
        (53, 1, [], ["W-1", "W-5"]),
        (57, 1, ["W-5"], ["W-1", "W-5"]),
        (60, 1, ["W-5"], ["W-5"]),
    ]
)
REQUESTS = _requests(
    [
        (1, "W-1", ""),
        (11, "W-2", ""),
        (15.5, "W-3", ""),
        (31, "W-4", ""),
        (32, "", "reset"),
        (51, "", "refused"),
    ]
)


def test_step_up_numbers():
    assert numbers.capacity_after_step(SAMPLES, T0 + 10) == 5.0
    # W-3 answered the request started at 15.5 after 30 ms.
    assert numbers.traffic_after_step(SAMPLES, REQUESTS, T0 + 10) == pytest.approx(5.53)
    assert numbers.settled_after_step(SAMPLES, T0 + 10, T0 + 30) == 6.0


def test_step_down_and_failures():
    assert numbers.scale_in_after_step(SAMPLES, T0 + 30) == 4.0
    assert numbers.failed_between(REQUESTS, T0 + 30, T0 + 50) == 1
    assert math.isnan(numbers.scale_in_after_step(SAMPLES, T0 + 60))


# Held flows: one fine, one reset while its instance W-2 was InService (moved), one that went
# unanswered from 36 s, when W-2 had left service (it ended with its instance).
HELD = pd.DataFrame(
    [
        {"start": T0, "latency_ms": 60_000.0, "status": 0, "error": None, "backend": "W-1"},
        {"start": T0, "latency_ms": 20_000.0, "status": 0, "error": "reset", "backend": "W-2"},
        {"start": T0, "latency_ms": 39_000.0, "status": 0, "error": "timeout", "backend": "W-2"},
    ]
)


def test_flows_moved_only_while_their_instance_served():
    assert numbers.flows_moved(HELD, SAMPLES, timeout=3.0) == 1


def test_variant_defaults_fill_what_was_left_empty():
    params = autoscale.with_defaults({"variant": "nlb", "schedule": "", "target": 0.0})
    assert params["target"] == 20.0
    assert autoscale.schedule(params["schedule"])[1].name == "high"
    mine = autoscale.with_defaults({"variant": "alb", "schedule": "a:1:1", "target": 5.0})
    assert (mine["schedule"], mine["target"]) == ("a:1:1", 5.0)


def test_replacement_of_a_killed_instance():
    got = numbers.replacement(SAMPLES, "W-1", T0 + 50)
    assert got == {"replaced_s": 7.0, "terminated_s": 10.0}


def test_step_table_and_summary():
    phases = autoscale.schedule("low:5:10,high:50:20,low:5:30")
    table = autoscale.step_table(phases, SAMPLES, REQUESTS, T0)
    assert list(table["direction"]) == ["up", "down"]
    assert table.loc[0, "capacity_in_service_s"] == 5.0
    assert table.loc[1, "scale_in_s"] == 4.0
    assert list(table["failed"]) == [0, 2]
    summary = autoscale.summarize(
        table, {"replaced_s": 7.0}, HELD, REQUESTS, T0 + 50, SAMPLES, timeout=3.0
    )
    assert summary["scale_out_in_service_s"] == 5.0
    assert summary["scale_in_s"] == 4.0
    assert summary["failed_during_scale_in"] == 2
    assert summary["failed_before_kill"] == 1
    assert summary["flows_moved_during_scale_out"] == 1
    assert summary["held_flows_broken"] == 2
    assert summary["replaced_s"] == 7.0


def test_sample_row_from_a_group_description():
    group = {
        "DesiredCapacity": 3,
        "Instances": [
            {"Host": "W-2", "LifecycleState": "InService", "HealthStatus": "Healthy"},
            {"Host": "W-1", "LifecycleState": "InService", "HealthStatus": "Unhealthy"},
            {"Host": "W-3", "LifecycleState": "Pending", "HealthStatus": "Healthy"},
        ],
    }
    row = autoscale.sample_row(group, T0)
    assert row == {
        "time": T0,
        "desired": 3,
        "in_service": 2,
        "healthy": 1,
        "in_service_hosts": "W-1;W-2",
        "hosts": "W-1;W-2;W-3",
    }


def test_per_second_and_figure(tmp_path):
    seconds = numbers.per_second(REQUESTS, T0)
    assert list(seconds["t"]) == [1, 11, 15, 31, 32, 51]
    assert int(seconds["failed"].sum()) == 2
    offered = numbers.offered_steps([("low", 5, 10), ("high", 50, 20)])
    assert list(offered["t"]) == [0, 10, 30]
    acts = pd.DataFrame([{"time": T0 + 12, "description": "Launching 2 instances"}])
    path = numbers.timeline(SAMPLES, REQUESTS, offered, acts, T0, tmp_path / "a.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("variant", ["alb", "nlb"])
def test_template_copy_sets_the_time_scale(variant):
    text = autoscale.stack_text(variant, 30)
    assert "    TimeScale: 30\n" in text
    assert "TimeScale: 10\n" not in text


def test_activity_times():
    assert autoscale._epoch("2026-01-01T00:00:00Z") == 1767225600.0
    assert autoscale._epoch(12.5) == 12.5
    assert math.isnan(autoscale._epoch(None))


def test_backend_burns_the_cpu_it_is_asked_for():
    assert burn_cpu(0.02) >= 0.02


def test_bench_template_has_no_policy_and_the_time_scale():
    from testbed.experiments import bench_asg

    text = bench_asg.template_text(50, 20)
    assert "ScalingPolicy" not in text
    assert "    TimeScale: 20\n" in text
    assert "  Client1:\n" in text
