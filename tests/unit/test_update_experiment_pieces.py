"""The update experiment's pieces without a lab: its templates (each step's is a valid stack
that changes what the step says) and the analysis of its requests and updates."""

from __future__ import annotations

import pandas as pd
import pytest

from testbed.analysis import update as analysis
from testbed.errors import BadInput
from testbed.experiments import _update_stack as stack
from testbed.experiments import update
from testbed.model import load_model
from testbed.plan.network import build_plan
from testbed.results import parse_params


def plan_of(tmp_path, template, name="t.yaml"):
    path = tmp_path / name
    path.write_text(stack.dump(template))
    return build_plan(load_model(str(path), {}, stack_name="upd"), "upd")


def test_every_step_is_a_valid_stack_that_changes_what_it_says(tmp_path):
    base = stack.base_template()
    before = plan_of(tmp_path, base)
    alb = next(x for x in before.load_balancers if x.name == stack.ALB)
    assert {t.host for t in alb.target_group(stack.ALB_GROUP).targets} == set(stack.FIRST_TARGETS)
    for step in stack.STEPS:
        changed = step.apply(base)
        assert changed != base, step.name
        plan_of(tmp_path, changed, f"{step.name}.yaml")  # valid: no TemplateErrors
    assert base == stack.base_template()  # steps change copies
    after = plan_of(tmp_path, stack.BY_NAME["nlb_new_az"].apply(base), "az.yaml")
    nlb = next(x for x in after.load_balancers if x.name == stack.NLB)
    assert len(nlb.nodes) == 2
    replaced = plan_of(tmp_path, stack.BY_NAME["replace"].apply(base), "r.yaml")
    assert replaced.host(stack.REPLACED).ip == stack.NEW_ADDRESS


def test_params_are_checked():
    params = parse_params(update, {"steps": "alb_rule,nope"})
    with pytest.raises(BadInput, match="nope"):
        update._checked(params)
    params = parse_params(update, {"lbs": "clb"})
    with pytest.raises(BadInput, match="clb"):
        update._checked(params)
    steps, lbs = update._checked(parse_params(update, {"steps": "failing", "lbs": "nlb"}))
    assert [s.name for s in steps] == ["failing"]
    assert lbs == [stack.NLB]


def requests() -> pd.DataFrame:
    """Two load balancers, a request every 0.5 s from t=100 for 10 s; two ALB requests
    fail at 104.0 and 104.5 (one a timeout, one a 502)."""
    rows = []
    for lb in ("MyALB", "MyNLB"):
        for i in range(20):
            start = 100.0 + i * 0.5
            bad = lb == "MyALB" and start in (104.0, 104.5)
            rows.append(
                {
                    "lb": lb,
                    "start": start,
                    "latency_ms": 20.0,
                    "status": 502 if bad and start == 104.5 else 200,
                    "error": "timeout" if bad and start == 104.0 else "",
                    "backend": "WebA1",
                }
            )
    df = pd.DataFrame(rows)
    df.loc[df["error"] == "", "error"] = None
    return df


def steps() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"step": "a", "start": 101.0, "end": 102.0, "outcome": "UPDATE_COMPLETE",
             "expected": "UPDATE_COMPLETE"},
            {"step": "b", "start": 103.9, "end": 104.2, "outcome": "UPDATE_COMPLETE",
             "expected": "UPDATE_COMPLETE"},
            {"step": "c", "start": 106.0, "end": 106.0, "outcome": analysis.SKIPPED,
             "expected": "UPDATE_COMPLETE"},
        ]
    )  # fmt: skip


def test_timeline_counts_per_second_and_load_balancer():
    line = analysis.timeline(requests(), t0=100.0)
    assert list(line.columns) == analysis.TIMELINE_COLUMNS
    alb = line[line["lb"] == "MyALB"]
    at4 = alb[alb["t"] == 4.0].iloc[0]
    assert at4["failed"] == 2
    assert at4["ok"] == 0
    assert alb["total"].sum() == 20
    assert line[line["lb"] == "MyNLB"]["failed"].sum() == 0


def test_step_summary_blames_the_update_the_failures_happened_during():
    table = analysis.step_summary(steps(), requests(), 0.5, ["MyALB", "MyNLB"]).set_index("step")
    assert table.loc["a", "failed"] == 0
    assert bool(table.loc["a", "ok"])
    # b: 103.9 to 104.7 with the grace: both ALB failures, none on the NLB.
    assert table.loc["b", "failed"] == 2
    assert table.loc["b", "failed_MyALB"] == 2
    assert table.loc["b", "failed_MyNLB"] == 0
    assert table.loc["b", "errors"] in ("timeout 1, http-502 1", "http-502 1, timeout 1")
    assert not table.loc["b", "ok"]
    assert table.loc["c", "duration_s"] == 0
    assert not table.loc["c", "ok"]  # skipped is not what AWS does


def test_in_flight_counts_requests_that_overlap_the_window():
    rows = pd.DataFrame({"start": [9.0, 9.5, 10.5, 12.1], "latency_ms": [500.0, 1000.0, 1, 1]})
    assert analysis.in_flight(rows, 10.0, 12.0).tolist() == [False, True, True, False]


def test_drains_pairs_draining_with_the_next_transition():
    events = pd.DataFrame(
        [
            {"time": 10.0, "load_balancer": "L", "target_group": "G", "target": "W:80",
             "old": "healthy", "new": "draining"},
            {"time": 15.5, "load_balancer": "L", "target_group": "G", "target": "W:80",
             "old": "draining", "new": "removed"},
            {"time": 11.0, "load_balancer": "L", "target_group": "H", "target": "W:80",
             "old": "healthy", "new": "draining"},
        ]
    )  # fmt: skip
    assert analysis.drains(events, 9.0, 20.0) == "L/G W:80 5.5 s; L/H W:80 ?"
    assert analysis.drains(events, 12.0, 20.0) == "-"


def test_figure_is_written(tmp_path):
    line = analysis.timeline(requests(), 100.0)
    table = analysis.step_summary(steps(), requests(), 0.5, ["MyALB", "MyNLB"])
    path = analysis.update_figure(line, table, tmp_path / "u.png", 100.0, ["MyALB", "MyNLB"])
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_a_rollback_that_leaves_another_lab_is_not_ok():
    table = steps().assign(lab_identical=["", "", ""])
    table.loc[0, "lab_identical"] = "differs: registered targets"
    summary = analysis.step_summary(table, requests(), 0.5, ["MyALB"]).set_index("step")
    assert not summary.loc["a", "ok"]
    assert analysis._label(table.iloc[0]) == " a (lab differs)"
