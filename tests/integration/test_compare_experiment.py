"""The compare experiment's quick variant on a real lab (about 80 s): the differences between
a CLB, an ALB and an NLB that it exists to show must come out of it.

It runs the module's own run() (what `testbed run compare -p quick=true` runs) into a
temporary results directory and checks the tables it writes; the numbers whose size depends
on the machine (requests/s, Mbit/s) are only checked for being there.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from testbed.experiments import compare
from testbed.results import ResultsDir, parse_params

# A benchmark's ratios and failover/drain timings: measured on a quiet machine.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.serial]

CLIENT = "198.51.100.10"  # Client1, the first internet client
# The checker's loop, the registry's tick and a busy 2-CPU machine (load clients, four
# HAProxy nodes, OVS) may add this much lab time to AWS's interval x threshold.
SCHEDULING_S = 1.5


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    params = parse_params(compare, {"quick": "true"})
    results = ResultsDir("compare", params, out=out, template=compare.TEMPLATE)
    summary = compare.run(params, results)
    path = results.finish(summary=summary)
    return path, json.loads((path / "meta.json").read_text())


def table(run, name: str, index: str | list[str]) -> pd.DataFrame:
    return pd.read_csv(run[0] / name).set_index(index)


def test_what_the_backend_sees_of_an_internet_client(run):
    seen = pd.read_csv(run[0] / "seen.csv")
    rows = seen[seen["client"] == "Client1"].set_index("path")
    # Layer 7 proxies: the node connects, the client is in X-Forwarded-For.
    for path in ("clb-http", "alb"):
        assert rows.loc[path, "seen_as"] == "lb node"
        assert rows.loc[path, "x_forwarded_for"] == CLIENT
        assert rows.loc[path, "x_forwarded_proto"] == "http"
    # CLB TCP: the node's address and nothing else; with the proxy protocol, a PROXY v1 line.
    assert rows.loc["clb-tcp", "client_ip_from"] == "nowhere"
    assert rows.loc["clb-proxy", "seen_as"] == "lb node"
    assert rows.loc["clb-proxy", "proxy_source"] == CLIENT
    assert rows.loc["clb-proxy", "proxy_header"].startswith("v1 TCP4 198.51.100.10:")
    # NLB: the client's own address.
    assert rows.loc["nlb", "seen_ip"] == CLIENT
    assert rows.loc["nlb", "client_ip_from"] == "TCP peer"
    sticky = table(run, "sticky.csv", "path")
    assert sticky.loc["clb-http", "cookies_set"] == "AWSELB"
    assert sticky.loc["alb", "cookies_set"].split(";")[0] == "AWSALB"
    assert sticky["sticky"].all()


def test_benches_count_twice_the_packets_through_a_proxy(run):
    bench = table(run, "bench_summary.csv", ["mode", "path"])
    assert (bench["errors"] == 0).all()
    assert (bench["requests_per_second"] > 0).all()
    for path in ("clb-http", "clb-tcp", "alb"):
        assert 0.45 <= bench.loc[("keep-alive", path), "packet_bound"] <= 0.55
    # The NLB rewrites addresses in the switch: as many packets as direct.
    assert 0.9 <= bench.loc[("keep-alive", "nlb"), "packet_bound"] <= 1.1
    flows = table(run, "flow_summary.csv", ["tool", "path"])
    assert (flows["mbps"] > 0).all()
    assert set(flows.loc["iperf3"].index) == {"direct", "clb-tcp", "nlb"}


def test_cross_zone_defaults(run):
    zones = table(run, "zones.csv", "lb")
    assert (zones["failed"] == 0).all()
    # CLB and NLB: off (no node leaves its AZ); ALB: on (half the connections, sd 3 pp).
    assert zones.loc["ClassicLB", "off_zone_share"] == 0
    assert zones.loc["MyNLB", "off_zone_share"] == 0
    assert abs(zones.loc["MyALB", "off_zone_share"] - 0.5) < 0.12
    shares = table(run, "shares.csv", ["lb", "backend"])
    assert shares.loc[("ClassicLB", "WebA1"), "share_pct"] == 50.0  # the AZ-a node's half


def test_draining_cut_without_the_policy_completed_with_a_delay(run):
    drain = table(run, "draining.csv", "lb")
    assert drain.loc["ClassicLB", "long_request"] == "cut"  # leastconn: half on the victim
    assert drain.loc["DrainCLB", "long_request"] == "completed"
    assert drain.loc["MyALB", "long_request"] == "completed"  # round robin: a quarter
    for lb in ("DrainCLB", "MyALB", "MyNLB"):
        assert drain.loc[lb, "held_cut"] == 0
        # AWS's 300 s, scaled: removed after the delay, not before.
        assert drain.loc[lb, "delay_aws_s"] >= 300 * 0.99
    for lb in ("ClassicLB", "DrainCLB", "MyALB"):
        assert drain.loc[lb, "new_to_victim_after_deregistration"] == 0
    assert (drain["new_failed"] == 0).all()


def test_failover_with_default_health_checks(run):
    scale = run[1]["time_scale"]
    fo = table(run, "failover.csv", "path")
    for path, row in fo.iterrows():
        assert not math.isnan(row["detection_lab_s"]), path
        assert row["detection_lab_s"] <= row["aws_detection_max_s"] / scale + SCHEDULING_S, path
        assert row["failed_after_detection"] <= 2, path  # in flight as it left service
    # CLB: 10 checks to come back, ALB and NLB 5.
    assert fo.loc["clb-http", "recovery_lab_s"] > fo.loc["alb", "recovery_lab_s"] + 60 / scale
    assert fo.loc["clb-http", "recovery_aws_s"] >= 270 * 0.95
    summary = table(run, "summary.csv", "path")
    assert set(summary.index) == {p["path"] for p in compare.PATHS}
    for figure in (
        "keepalive_rps",
        "latency",
        "new_connections",
        "long_flow",
        "cross_zone",
        "failover",
        "draining",
    ):
        assert (run[0] / f"{figure}.png").stat().st_size > 0
