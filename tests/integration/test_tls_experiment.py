"""The tls experiment, small, on a real lab: each TLS listener (the ALB's HTTPS, the NLB's
TLS) verified against the lab CA, every case carries traffic without errors, HAProxy's CPU is
charged where it is on the path, the summary has its shape with the NLB rows.

The ratios themselves are the experiment's business (`testbed run tls`): a one-second run on
a shared machine says little about them."""

from __future__ import annotations

import math

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
    for lb in (tls.LB, tls.NLB):
        verified = out["tls"][lb]
        # The policy allows 1.2 and 1.3; curl takes 1.3, verified by name (no -k).
        assert verified["protocol"] == "TLSv1.3", (lb, verified)
        assert verified["load_client_ok"] == 50, (lb, verified)  # verified by the DNS name
        assert verified["target"] == "BenchA1", (lb, verified)
        assert not verified["target_got_tls"], (lb, verified)  # TLS ended on the node
    runs = pd.read_csv(path / "runs.csv")
    assert list(runs["case"]) == list(tls.CASES)
    assert (runs["errors"] == 0).all(), runs
    assert (runs["non_2xx"] == 0).all(), runs
    assert (runs["requests"] > 0).all(), runs
    by_case = runs.set_index("case")
    proxied = [
        c for c, (lb, scheme, _, _) in tls.CASES.items() if lb == tls.LB or scheme == "https"
    ]
    assert (by_case.loc[proxied, "haproxy_cpu_us_per_request"] > 0).all(), runs
    # The NLB's TLS listener is its node's HAProxy: the node sends into the fabric. Its TCP
    # listener is the switch alone: the node host sends nothing for it.
    nlb_packets = by_case["fabric_packets_per_request"]
    assert nlb_packets["nlb-tls-keepalive"] > nlb_packets["nlb-tcp-keepalive"] * 1.5, runs
    table = pd.read_csv(path / "summary.csv").set_index("metric")
    assert {"requests_per_second_keepalive", "requests_per_second_new"} <= set(table.index)
    for metric in (
        "nlb_requests_per_second_keepalive",
        "nlb_requests_per_second_new",
        "nlb_path_cpu_us_per_request_keepalive",
        "nlb_path_cpu_us_per_request_new",
    ):
        ratio = table.loc[metric, "https_over_http"]
        assert math.isfinite(ratio), (metric, table.loc[metric])
        assert ratio > 0, (metric, table.loc[metric])
    assert table.loc["nlb_requests_per_second_keepalive", "https"] > 0
    # A new TLS connection per request costs HAProxy more than a new plain one, by far.
    assert table.loc["haproxy_cpu_us_per_request_new", "https_over_http"] > 1.5
    # The NLB's TLS path costs more CPU per new connection than its switch-only TCP path.
    assert table.loc["nlb_path_cpu_us_per_request_new", "https_over_http"] > 1.5
    assert (path / "tls.png").stat().st_size > 0
    assert (path / "meta.json").exists()
