"""The soak experiment, tiny, on a real lab: both phases, one event of each kind in each,
no unexpected error, every summary row present, conntrack and flows back at the baseline.

The load is paced (100 requests/s per phase for 30 s) so that it outlasts the schedule up to
the second fault: a stop is detected within two 5 s health check intervals (plus a check's
timeout), and the refuse starts 2 s after that.
"""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from testbed.experiments import soak
from testbed.results import ResultsDir, parse_params

# A soak (faults on a schedule, resources sampled against a baseline): alone on the machine.
pytestmark = [pytest.mark.integration, pytest.mark.serial]

TINY = {
    "nlb_connections": 3000,
    "alb_requests": 3000,
    "chunk": 1500,
    "rate": 100,
    "cycles": 1,
    "spacing": 2,
    "delay": 2,
    "down_for": 1,
    "sample_s": 2,
}


def test_tiny_soak_has_no_unexpected_error_and_every_row(tmp_path):
    params = parse_params(soak, {k: str(v) for k, v in TINY.items()})
    results = ResultsDir("soak", params, out=tmp_path, template=soak.TEMPLATE)
    summary = soak.run(params, results)
    path = results.finish(summary=summary)

    table = pd.read_csv(path / "summary.csv")
    rows = {(r.phase, r.metric): r for r in table.itertuples()}
    for phase, unit in (("nlb", "connections"), ("alb", "requests")):
        assert rows[(phase, unit)].value == 3000
        assert rows[(phase, unit)].met
        assert rows[(phase, "errors_unexpected")].value == 0
        for kind in ("deregister", "stop", "refuse"):
            row = rows[(phase, f"events_{kind}")]
            assert (row.value, row.met) == (1, True), row.detail
        processes = {m.split(" ", 1)[1] for p, m in rows if p == phase and m.startswith("rss_")}
        for name in ("holder", "controller", "controller-standby", "ovs-vswitchd"):
            assert name in processes
        assert {"haproxy-master SoakALB-1a", "haproxy-worker SoakALB-1b"} <= processes
    # A stopped NLB target refuses the connections hashed to it until it is marked
    # unhealthy: about a quarter of 100/s for 5-14 s. Each of them must be expected.
    assert rows[("nlb", "errors_expected")].value > 0
    assert rows[("end", "conntrack_entries")].met, rows[("end", "conntrack_entries")].detail
    assert rows[("end", "flows")].met, rows[("end", "flows")].detail
    assert summary["goals_met"]

    errors = pd.read_csv(path / "errors.csv")
    assert set(errors["class"]) == {"expected"}
    events = pd.read_csv(path / "events.csv")
    assert len(events) == 6
    faults = events[events["kind"].isin(["stop", "refuse"])]
    assert faults["applied"].notna().all()
    # The faults of a phase never overlap: the refuse starts after the stop was acted on.
    for _, pair in faults.groupby("phase"):
        stop, refuse = pair.set_index("kind").loc[["stop", "refuse"], "action"]
        assert refuse > pair.set_index("kind").loc["stop", "applied"]
        assert refuse > stop
    chunks = pd.read_csv(path / "chunks.csv")
    assert chunks.groupby("phase")["requests"].sum().to_dict() == {"alb": 3000, "nlb": 3000}
    samples = pd.read_csv(path / "samples.csv")
    assert {"rss_kib", "conntrack", "flows"} <= set(samples["what"])
    assert (path / "soak.png").stat().st_size > 10_000
    meta = json.loads((path / "meta.json").read_text())
    # random_name("sk"): $TESTBED_NAME_PREFIX + "sk", cut to 3 characters.
    assert meta["lab"].startswith((os.environ.get("TESTBED_NAME_PREFIX", "") + "sk")[:3])
