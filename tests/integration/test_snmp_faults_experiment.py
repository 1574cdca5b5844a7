"""The snmp_faults experiment, small, on a real lab: one target's interface SET down and up
by SNMP under load; every signal the experiment times is there, in the order an instance
with one interface allows (the linkDown can only arrive once the link is back, so after the
SET up), and the summary names what came first.

The gaps themselves are the experiment's business (`testbed run snmp_faults`)."""

from __future__ import annotations

import pandas as pd
import pytest

from testbed.experiments import snmp_faults
from testbed.results import ResultsDir, parse_params

pytestmark = pytest.mark.integration


def test_snmp_faults_experiment_smoke(tmp_path):
    params = parse_params(
        snmp_faults,
        {"targets_per_az": "1", "victims": "1", "warmup": "2", "hold": "5", "tail": "3"},
    )
    results = ResultsDir("snmp_faults", params, out=tmp_path, template=snmp_faults.TEMPLATE)
    out = snmp_faults.run(params, results)
    path = results.finish(summary=out)
    summary = pd.read_csv(path / "summary.csv")
    assert len(summary) == 1, summary
    row = summary.iloc[0]
    # The health checks saw it go down and come back; the first request error came after
    # the SET down (a failed request, not a timing artefact).
    assert row["unhealthy_s"] > 0, summary
    assert row["first_error_s"] >= 0, summary
    assert row["healthy_after_up_s"] >= 0, summary
    # The linkDown was made while the link was down and received only after the SET up.
    timeline = pd.read_csv(path / "timeline.csv").set_index("signal")["after_set_s"]
    assert timeline["linkDown made (agent)"] >= 0, timeline
    assert timeline["linkDown received"] > timeline["set up"], timeline
    assert timeline["linkUp received"] >= timeline["set up"], timeline
    assert row["first_signal"] in ("request error", "health checks"), summary
    traps = pd.read_csv(path / "traps.csv")
    assert {"linkDown", "linkUp"} <= set(traps["trap"]), traps
