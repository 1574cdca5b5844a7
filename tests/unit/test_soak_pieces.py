"""Pure pieces of the soak experiment: error windows and classes, memory growth checkpoints,
flow table comparison, the per-second table and the figure."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from testbed.analysis.plots import soak_timeline
from testbed.analysis.soak import EXPECTED, UNEXPECTED, checkpoints, classify_failures, rss_growth
from testbed.experiments._soak_report import Recorder, per_second, windows
from testbed.experiments._soak_stack import PHASES, stack_yaml
from testbed.model import load_model_text
from testbed.probes.footprint import flow_difference


def failure(phase: str, start: float, latency_ms: float, backend: str = "", **extra) -> dict:
    return {
        "phase": phase,
        "start": start,
        "latency_ms": latency_ms,
        "backend": backend,
        "error": extra.get("error", "refused"),
        "status": extra.get("status", ""),
    }


WINDOWS = pd.DataFrame(
    [
        {"phase": "nlb", "event": "nlb-0-stop", "kind": "stop", "target": "NlbB1"}
        | {"start": 100.0, "end": 110.0},
        {"phase": "nlb", "event": "nlb-0-refuse", "kind": "refuse", "target": "NlbA2"}
        | {"start": 120.0, "end": 130.0},
    ]
)


def test_a_failure_in_a_window_with_no_or_the_victims_backend_is_expected():
    rows = pd.DataFrame(
        [
            failure("nlb", 101.0, 5.0),  # inside, backend unknown
            failure("nlb", 99.0, 2000.0, backend="NlbB1"),  # in flight at the fault
            failure("nlb", 109.9, 1.0, backend="NlbA2"),  # inside, but another target
            failure("nlb", 111.0, 1.0),  # after the window
            failure("nlb", 98.0, 100.0),  # ended before it
            failure("alb", 101.0, 1.0),  # another phase
            failure("nlb", 125.0, 1.0, backend=None),  # NaN backend (read from a CSV)
        ]
    )
    out = classify_failures(rows, WINDOWS)
    assert out["class"].tolist() == [
        EXPECTED,
        EXPECTED,
        UNEXPECTED,
        UNEXPECTED,
        UNEXPECTED,
        UNEXPECTED,
        EXPECTED,
    ]
    assert out["window"].tolist() == [
        "nlb-0-stop",
        "nlb-0-stop",
        "",
        "",
        "",
        "",
        "nlb-0-refuse",
    ]


def test_no_failures_classify_to_an_empty_frame():
    empty = pd.DataFrame(columns=["phase", "start", "latency_ms", "backend", "error", "status"])
    out = classify_failures(empty, WINDOWS)
    assert out.empty
    assert {"class", "window"} <= set(out.columns)


def test_windows_run_from_the_fault_to_the_applied_state_plus_grace():
    events = pd.DataFrame(
        [
            {"phase": "nlb", "event": "d", "kind": "deregister", "target": "NlbA1"}
            | {"action": 1.0, "applied": None, "repair": 5.0},
            {"phase": "nlb", "event": "s", "kind": "stop", "target": "NlbB1"}
            | {"action": 10.0, "applied": 19.5, "repair": 25.0},
            # Never marked unhealthy: the window lasts until the repair.
            {"phase": "nlb", "event": "r", "kind": "refuse", "target": "NlbA2"}
            | {"action": 30.0, "applied": float("nan"), "repair": 60.0},
        ]
    )
    out = windows(events, grace=1.0)
    assert out["event"].tolist() == ["s", "r"]  # a deregistration allows no error
    assert out["start"].tolist() == [10.0, 30.0]
    assert out["end"].tolist() == [20.5, 61.0]


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], (1, 6, 10)),  # warm-up chunk 1 left out
        ([0, 1, 2, 3], (1, 2, 3)),
        ([0, 1, 2], (0, 1, 2)),  # too few chunks for a warm-up: from before the load
        ([0], (0, 0, 0)),
    ],
)
def test_checkpoints_start_after_the_warm_up(chunks, expected):
    assert checkpoints(chunks) == expected


def test_rss_growth_per_process_and_replaced_pids():
    rows = []
    for chunk in range(5):
        rows.append({"chunk": chunk, "process": "holder", "pid": 7, "rss_kib": 1000 + chunk * 10})
        # the controller was replaced after chunk 2 (a new pid)
        pid = 8 if chunk < 3 else 9
        rows.append({"chunk": chunk, "process": "controller", "pid": pid, "rss_kib": 2048})
    out = rss_growth(pd.DataFrame(rows)).set_index("process")
    # start after chunk 1 (1010 KiB), middle after 3 (the warm-up's end), end after 4 (1040)
    assert out.loc["holder", "start_mib"] == pytest.approx(1010 / 1024)
    assert out.loc["holder", "middle_mib"] == pytest.approx(1030 / 1024)
    assert out.loc["holder", "growth"] == pytest.approx(1040 / 1030 - 1)  # after the warm-up
    assert out.loc["holder", "growth_from_start"] == pytest.approx(1040 / 1010 - 1)
    assert out.loc["controller", "growth"] == 0
    assert out.loc["controller", "pids"] == "8 9"


def test_flow_difference_counts_added_and_removed_flows():
    before = {"br0": Counter({"a": 1, "b": 2}), "br1": Counter({"c": 1})}
    assert flow_difference(before, before) == 0
    after = {"br0": Counter({"a": 1, "b": 1, "d": 1}), "br1": Counter({"c": 1})}
    assert flow_difference(before, after) == 2  # one b gone, d new
    assert flow_difference(before, {"br0": before["br0"]}) == 1  # a bridge's flows gone


def test_per_second_counts_requests_and_failures_by_class():
    rec = Recorder()
    rec.rates.append(pd.DataFrame({"second": [10.0, 11.0], "requests": [100, 90], "phase": "nlb"}))
    rec.rates.append(pd.DataFrame({"second": [11.0, 12.0], "requests": [5, 80], "phase": "nlb"}))
    failures = pd.DataFrame(
        {
            "phase": ["nlb", "nlb", "nlb"],
            "start": [10.2, 10.7, 12.1],
            "class": [EXPECTED, UNEXPECTED, EXPECTED],
        }
    )
    out = per_second(rec, failures).set_index("second")
    assert out["requests"].tolist() == [100, 95, 80]
    assert out[EXPECTED].tolist() == [1, 0, 1]
    assert out[UNEXPECTED].tolist() == [1, 0, 0]


def test_the_stack_is_a_valid_template_with_both_load_balancers():
    text = stack_yaml(interval=5, delay=7)
    model = load_model_text(text, filename="stack.yaml", stack_name="sk0000")
    for phase in PHASES.values():
        assert model.resource_types[phase.lb] == "AWS::ElasticLoadBalancingV2::LoadBalancer"
        assert model.resource_types[phase.tg] == "AWS::ElasticLoadBalancingV2::TargetGroup"
        assert set(phase.targets) <= set(model.instances)
    assert {"Client1", "Client2"} <= set(model.internet_clients)
    assert "timeout_seconds, Value: '7'" in text


def test_soak_timeline_draws_a_png(tmp_path):
    rss = pd.DataFrame(
        {"t": [0, 5, 10, 0, 5, 10], "process": ["a"] * 3 + ["b"] * 3}
        | {"rss_mib": [10, 10.5, 10.4, 300, 300, 301]}
    )
    rates = pd.DataFrame(
        {"t": [0, 1, 2], "requests": [100, 120, 90], EXPECTED: [0, 3, 0], UNEXPECTED: [0, 0, 1]}
    )
    path = soak_timeline(rss, rates, tmp_path / "s.png", phases=[("nlb", 0, 10)], faults=[1.0])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
