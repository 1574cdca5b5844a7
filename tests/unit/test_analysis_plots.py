"""testbed.analysis.plots: every figure is written as a real PNG, without a display."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.analysis import plots
from testbed.analysis.counters import counter_rates
from testbed.analysis.load import load_results
from testbed.analysis.stats import latency_percentiles, requests_per_second, target_share
from testbed.schemas import REQUEST_COLUMNS
from tests.unit.analysis_data import (
    assert_png,
    cross_zone_requests,
    full_results,
    write_csv,
    write_meta,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def loaded(tmp_path):
    return load_results(full_results(tmp_path / "run"))


def test_share_bars_with_expected_values(tmp_path):
    write_meta(tmp_path)
    write_csv(tmp_path / "requests.csv", REQUEST_COLUMNS, cross_zone_requests())
    requests = load_results(tmp_path).requests
    shares = target_share(requests)
    expected = {"WebA1": 0.25, "WebA2": 0.25} | {f"WebB{i}": 0.0625 for i in range(1, 9)}
    path = plots.share_bars(shares, tmp_path / "fig" / "share.png", expected=expected)
    assert path == tmp_path / "fig" / "share.png"
    assert_png(path)
    assert_png(
        plots.share_bars(
            target_share(requests, by="client"), tmp_path / "by.png", by="client", expected=0.1
        )
    )


def test_latency_figures(loaded, tmp_path):
    requests = loaded.requests
    assert_png(plots.latency_cdf(requests, tmp_path / "cdf.png"))
    assert_png(plots.latency_cdf(requests, tmp_path / "cdf_all.png", by="client", only_ok=False))
    table = latency_percentiles(requests)
    assert_png(plots.percentile_bars(table, tmp_path / "pct.png"))


def test_rate_lines_and_failover_timeline(loaded, tmp_path):
    rates = counter_rates(loaded.snmp)
    assert_png(plots.rate_lines(rates, tmp_path / "snmp.png", by=["host", "object", "index"]))
    rps = requests_per_second(loaded.requests, bin_s=0.5)
    assert_png(plots.rate_lines(rps, tmp_path / "rps.png", y="rps"))
    assert_png(
        plots.failover_timeline(loaded.requests, loaded.target_events, tmp_path / "failover.png"),
        min_width=800,
    )


def test_no_pyplot_and_no_display_needed(tmp_path):
    # A fresh interpreter with a GUI backend requested and no display: plots must still be
    # written, and pyplot (global figure state, backend selection) never imported.
    code = (
        "import sys, pandas as pd\n"
        "from testbed.analysis import plots\n"
        "df = pd.DataFrame({'t': [0, 1, 2], 'rate': [1.0, 3.0, 2.0]})\n"
        f"plots.rate_lines(df, {str(tmp_path / 'r.png')!r})\n"
        "print('pyplot' if 'matplotlib.pyplot' in sys.modules else 'no pyplot')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"} | {"MPLBACKEND": "TkAgg"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "no pyplot"
    assert_png(tmp_path / "r.png")
