"""The tls experiment, small, on a real lab: HTTPS verified against the lab CA, every case
carries traffic without errors, HAProxy's CPU is charged, the summary has its shape.

The ratios themselves are the experiment's business (`testbed run tls`): a one-second run on
a shared machine says little about them."""

from __future__ import annotations

import pandas as pd
import pytest

from testbed.experiments import tls
from testbed.results import ResultsDir, parse_params

pytestmark = pytest.mark.integration


def test_tls_experiment_smoke(tmp_path):
    params = parse_params(
        tls, {"seconds": "1", "repeats": "1", "connections": "4", "verified_requests": "50"}
    )
    results = ResultsDir("tls", params, out=tmp_path, template=tls.TEMPLATE)
    out = tls.run(params, results)
    path = results.finish(summary=out["summary"])
    assert out["tls"]["protocol"] == "TLSv1.3"  # the policy allows 1.2 and 1.3; curl takes 1.3
    assert out["tls"]["load_client_ok"] == 50  # every one verified against the lab CA
    runs = pd.read_csv(path / "runs.csv")
    assert list(runs["case"]) == list(tls.CASES)
    assert (runs["errors"] == 0).all(), runs
    assert (runs["non_2xx"] == 0).all(), runs
    assert (runs["requests"] > 0).all(), runs
    assert (runs["haproxy_cpu_us_per_request"] > 0).all(), runs
    table = pd.read_csv(path / "summary.csv").set_index("metric")
    assert {"requests_per_second_keepalive", "requests_per_second_new"} <= set(table.index)
    assert "NLB TLS listeners not yet" in table.loc["nlb_tls_vs_tcp", "note"]
    # A new TLS connection per request costs HAProxy more than a new plain one, by far.
    assert table.loc["haproxy_cpu_us_per_request_new", "https_over_http"] > 1.5
    assert (path / "tls.png").stat().st_size > 0
    assert (path / "meta.json").exists()
