"""The bench_flows experiment, small, on a real lab: flows held through an NLB are one
conntrack entry each in the NLB's zone and every held flow still answers.

How many a machine holds, and what each costs, is the experiment's business
(`testbed run bench_flows`, docs/scaling.md)."""

from __future__ import annotations

import pandas as pd
import pytest

from testbed.experiments import bench_flows
from testbed.results import ResultsDir, parse_params

pytestmark = pytest.mark.integration


def test_bench_flows_experiment_smoke(tmp_path):
    params = parse_params(bench_flows, {"sizes": "40,400", "targets_per_az": "1"})
    results = ResultsDir("bench_flows", params, out=tmp_path, template=bench_flows.TEMPLATE)
    out = bench_flows.run(params, results)
    path = results.finish(summary=out)
    steps = pd.read_csv(path / "steps.csv")
    assert list(steps["flows"]) == [40, 400], steps
    # Every flow opened, is one entry of the NLB's zone, and answered while held.
    assert (steps["opened"] == steps["flows"]).all(), steps
    assert (steps["entries"] == steps["flows"]).all(), steps
    assert (steps["answered"] == steps["flows"]).all(), steps
    assert (steps["lost"] == 0).all(), steps
    assert steps["closed"].all(), steps  # every flow finished closing through the NLB
    assert (steps["left_after_flush"] == 0).all(), steps  # each step starts from an empty zone
    summary = pd.read_csv(path / "summary.csv").iloc[0]
    assert summary["largest_held"] == 400
    assert summary["conntrack_limit"] > 0
    assert (path / "bench_flows.png").stat().st_size > 0
