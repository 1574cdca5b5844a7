"""The update experiment, briefly, on a real lab (about 90 s): updates that AWS performs
without interruption (targets, a new AZ, a listener rule, an instance replaced) fail no
request, and the failing update is rolled back to the same lab.

It runs the module's own run() (what `testbed run update -p ...` runs) into a temporary
results directory with a short schedule and checks the files it writes.
"""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from testbed.experiments import update
from testbed.results import ResultsDir, parse_params

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a real lab)"),
]

SMOOTH = ("alb_targets", "nlb_new_az", "alb_rule", "replace")  # AWS: no interruption
STEPS = (*SMOOTH, "failing")
RATE = 20.0


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("update")
    given = {
        "steps": ",".join(STEPS),
        "phase": "7",
        "settle": "3",
        "tail": "3",
        "rate": str(RATE),
    }
    params = parse_params(update, given)
    results = ResultsDir("update", params, out=out, template=update.TEMPLATE)
    summary = update.run(params, results)
    path = results.finish(summary=summary)
    return path, json.loads((path / "meta.json").read_text())


def failures(run, step: dict) -> str:
    """The failed requests of an update, per load balancer: how many, when (seconds after
    the update's start), which error: what a failed assertion needs to say."""
    rows = pd.read_csv(run[0] / "requests.csv")
    rows = rows[(rows["start"] >= step["start"] - 5) & (rows["start"] <= step["end"] + 5)]
    bad = rows[rows["error"].notna() | (pd.to_numeric(rows["status"], errors="coerce") >= 500)]
    return "; ".join(
        f"{lb}: {len(g)} from +{g['start'].min() - step['start']:.2f} s to "
        f"+{g['start'].max() - step['start']:.2f} s, {sorted(set(g['error'].astype(str)))}"
        for lb, g in bad.groupby("lb")
    )


def test_files(run):
    path, meta = run
    for name in (
        "stack.yaml",
        "requests.csv",
        "timeline.csv",
        "events.csv",
        "target_events.csv",
        "summary.csv",
    ):
        assert (path / name).stat().st_size > 0, name
    assert (path / "update.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for i, step in enumerate(STEPS, 1):
        assert (path / f"step_{i:02d}_{step}.yaml").exists()
    assert meta["summary"]["updates"] == len(STEPS)


def test_updates_without_interruption_fail_no_request(run):
    summary = pd.read_csv(run[0] / "summary.csv").set_index("step")
    for step in SMOOTH:
        row = summary.loc[step].to_dict()
        assert row["outcome"] == "UPDATE_COMPLETE", (step, row["reason"])
        assert row["requests"] > 0, step
        assert row["failed"] == 0, (step, row["errors"], failures(run, row))
    # The replaced instance's targets drained (5 s) before it went.
    drained = str(summary.loc["replace", "drained"])
    assert "MyALB/AlbTargets WebB1:80" in drained, drained
    line = pd.read_csv(run[0] / "timeline.csv")
    assert set(line["lb"]) == {"MyALB", "MyNLB"}
    assert line["failed"].sum() == 0
    # The open loop kept its pace: every whole second in the middle of the run carried load.
    for lb, mine in line.groupby("lb"):
        middle = mine[(mine["t"] >= 1) & (mine["t"] <= mine["t"].max() - 1)]
        assert (middle["total"] >= RATE * 0.5).all(), (lb, middle["total"].tolist())


def test_failing_update_is_rolled_back_to_the_same_lab(run):
    summary = pd.read_csv(run[0] / "summary.csv", keep_default_na=False).set_index("step")
    row = summary.loc["failing"].to_dict()
    assert row["outcome"] == "UPDATE_ROLLBACK_COMPLETE", row["reason"]
    assert row["lab_identical"] == "yes"
    assert int(row["failed"]) == 0, row["errors"]
    assert bool(row["ok"])
    events = pd.read_csv(run[0] / "events.csv", keep_default_na=False)
    mine = events[events["step"] == "failing"]
    stack = mine[mine["resource_type"] == "AWS::CloudFormation::Stack"]["status"].tolist()
    assert "UPDATE_ROLLBACK_IN_PROGRESS" in stack
    assert stack[-1] == "UPDATE_ROLLBACK_COMPLETE"
    # The next step (none here) would build on the template before it: the lab ran the
    # last good template all along.
    assert "WebA3" in mine["logical_id"].tolist()
