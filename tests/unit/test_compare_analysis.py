"""The compare experiment without a lab: its generated stack, its parameters, and every
number of testbed.analysis.compare on made-up answers, runs and requests."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from testbed.analysis import compare as c
from testbed.experiments import _compare_stack as stack
from testbed.experiments import compare
from testbed.model import load_model_text
from testbed.plan.network import build_plan
from testbed.results import parse_params

CLIENT = "198.51.100.10"
NODES = {"10.0.0.5", "10.0.2.5", "203.0.113.10"}


def answer(body: dict | str, **extra: object) -> dict:
    return {"status": 200, "headers": {}, "body": json.dumps(body), "error": "", **extra}


def backend(peer: str, **extra: object) -> dict:
    return {"instance": "WebA1", "ip": "10.0.1.4", "client": {"ip": peer, "port": 40000}, **extra}


# ---- the stack and the parameters ----------------------------------------------------------
def test_generated_stack_keeps_aws_defaults_scaled_by_the_time_scale():
    model = load_model_text(stack.stack_yaml(30), filename="stack.yaml", stack_name="x")
    plan = build_plan(model, "x")
    lbs = {lb.name: lb for lb in plan.load_balancers}
    assert {k: v.type for k, v in lbs.items()} == {
        "ClassicLB": "classic",
        "DrainCLB": "classic",
        "MyALB": "application",
        "MyNLB": "network",
    }
    clb = lbs["ClassicLB"]
    assert not clb.cross_zone
    assert not lbs["MyNLB"].cross_zone
    assert lbs["MyALB"].cross_zone
    listeners = {x.port: x for x in clb.listeners}
    assert (listeners[80].protocol, listeners[80].sticky) == ("HTTP", "lb_cookie")
    assert (listeners[81].protocol, listeners[81].instance_port) == ("TCP", 80)
    assert listeners[81].proxy_protocol is False
    assert listeners[9000].proxy_protocol is True
    group = clb.target_group("ClassicLB")
    # CLB defaults: TCP:<first instance port>, 30 s / 30 = 1 s, 10 up, 2 down, no draining.
    assert (group.health.protocol, group.health.port) == ("TCP", 80)
    assert group.health.interval_s == 1.0
    assert (group.health.healthy_threshold, group.health.unhealthy_threshold) == (10, 2)
    assert group.deregistration_delay_s == 0
    assert [t.host for t in group.targets] == list(stack.BACKENDS)
    assert lbs["DrainCLB"].target_group("DrainCLB").deregistration_delay_s == 10
    alb = lbs["MyALB"].target_group("AlbTargets")
    assert (alb.health.protocol, alb.health.healthy_threshold) == ("HTTP", 5)
    assert alb.deregistration_delay_s == 10
    assert [t.host for t in lbs["MyNLB"].target_group("NlbIperf").targets] == ["WebA1"]
    registered = {t.host for lb in plan.load_balancers for g in lb.target_groups for t in g.targets}
    assert stack.SPARE not in registered


def test_quick_replaces_only_the_defaults():
    params = parse_params(compare, {"quick": "true", "repeats": "2"})
    eff = compare.effective(params)
    assert eff["repeats"] == 2  # given: kept
    assert eff["seconds"] == compare.QUICK["seconds"]
    assert eff["time_scale"] == compare.QUICK["time_scale"]
    assert compare.effective(parse_params(compare, {}))["seconds"] == 3
    # Every quick value names a parameter; the held requests outlast no delay.
    assert set(compare.QUICK) <= set(compare.PARAMS)
    for p in (compare.PARAMS, compare.QUICK):
        scale = p["time_scale"] if p is compare.QUICK else p["time_scale"][0]
        long_ms = p["long_ms"] if p is compare.QUICK else p["long_ms"][0]
        assert long_ms / 1000 < 300 / scale


def test_paths_name_their_load_balancers():
    for p in compare.PATHS:
        assert p["lb"] == "" or p["lb"] in stack.GROUPS
    assert set(compare.BENCH_PATHS) <= set(compare.BY_NAME)
    assert set(compare.FAILOVER_PATHS) <= set(compare.BY_NAME)


# ---- what the backend sees -----------------------------------------------------------------
def test_answers_and_proxy_headers_are_read():
    assert c.parse_answer('{"a": 1}\n') == {"a": 1}
    assert c.parse_answer('{"instance": "WebA1"}\nmore') == {"instance": "WebA1"}
    assert c.parse_answer("not json") == {}
    assert c.proxy_source("PROXY TCP4 198.51.100.10 10.0.0.5 40000 9000") == CLIENT
    assert c.proxy_source({"version": 1, "src": "198.51.100.10", "src_port": 4}) == CLIENT
    assert c.proxy_source({"source": {"ip": CLIENT, "port": 1}}) == CLIENT
    assert c.proxy_source({"header": "PROXY TCP4 198.51.100.10 10.0.0.5 1 2"}) == CLIENT
    assert c.proxy_source(None) == ""
    assert c.proxy_text({"header": "PROXY TCP4 a b 1 2\r\n"}) == "PROXY TCP4 a b 1 2"
    assert c.proxy_text(None) == ""
    # The http-backend's fields (testbed.roles.proxy_protocol.ProxyHeader.as_dict).
    parsed = {
        "version": 1,
        "command": "PROXY",
        "protocol": "TCP4",
        "source_ip": CLIENT,
        "source_port": 40000,
        "destination_ip": "10.0.0.5",
        "destination_port": 9000,
    }
    assert c.proxy_source(parsed) == CLIENT
    assert c.proxy_text(parsed) == "v1 TCP4 198.51.100.10:40000 -> 10.0.0.5:9000"


@pytest.mark.parametrize(
    ("body", "seen", "learns"),
    [
        (backend(CLIENT), "client", "TCP peer"),  # NLB: address preserved
        (
            backend("10.0.0.5", forwarded={"x-forwarded-for": CLIENT, "x-forwarded-proto": "http"}),
            "lb node",
            "X-Forwarded-For",
        ),
        (
            backend("10.0.0.5", proxy="PROXY TCP4 198.51.100.10 203.0.113.10 5 9000"),
            "lb node",
            "PROXY header",
        ),
        (backend("10.0.0.5"), "lb node", "nowhere"),  # CLB TCP without the policy
        (backend("10.9.9.9"), "other", "nowhere"),
    ],
)
def test_seen_row_says_where_the_client_address_is(body, seen, learns):
    row = c.seen_row(
        answer(body), path="p", listener="l", client="Client1", client_ip=CLIENT, node_ips=NODES
    )
    assert (row["seen_as"], row["client_ip_from"]) == (seen, learns)
    assert row["backend"] == "WebA1"


def test_seen_row_of_a_failed_probe():
    row = c.seen_row(
        {"error": "ConnectionRefusedError: x", "body": ""},
        path="p",
        listener="l",
        client="Client1",
        client_ip=CLIENT,
        node_ips=NODES,
    )
    assert row["seen_as"] == ""
    assert row["error"].startswith("ConnectionRefused")


def test_sticky_row():
    def a(instance: str, cookie: str | None) -> dict:
        headers = {"set-cookie": [f"{cookie}=abc; path=/"]} if cookie else {}
        return answer({"instance": instance}, headers=headers)

    row = c.sticky_row(
        [a("WebA1", "AWSELB"), a("WebA1", None), a("WebA1", None)], path="clb", cookie="AWSELB"
    )
    assert (row["cookies_set"], row["backends"], row["sticky"]) == ("AWSELB", 1, True)
    row = c.sticky_row([a("WebA1", None), a("WebB1", None)], path="x", cookie="AWSALB")
    assert (row["cookies_set"], row["backends"], row["sticky"]) == ("", 2, False)


# ---- benches -------------------------------------------------------------------------------
def bench_runs() -> pd.DataFrame:
    rows = []
    for mode, scale in (("keep-alive", 1.0), ("new-connection", 0.25)):
        for rep in range(3):
            for path, rps, packets in (
                ("direct", 10000, 4.0),
                ("alb", 4000 + rep, 8.0),
                ("nlb", 9000, 4.0),
            ):
                rows.append(
                    {
                        "mode": mode,
                        "path": path,
                        "repeat": rep,
                        "requests_per_second": rps * scale,
                        "p50_ms": 1.0 + rep,
                        "p99_ms": 5.0,
                        "errors": 1 if path == "alb" else 0,
                        "fabric_packets_per_request": packets,
                        "cpu_us_per_request": packets * 25.0,
                    }
                )
    return pd.DataFrame(rows)


def test_bench_table_ratios_and_bounds():
    table = c.bench_table(bench_runs(), {"alb": 0.5}).set_index(["mode", "path"])
    alb = table.loc[("keep-alive", "alb")]
    assert alb["requests_per_second"] == 4001  # median of 4000, 4001, 4002
    assert alb["ratio_to_direct"] == pytest.approx(0.4001)
    assert alb["packet_bound"] == 0.5  # 4 packets direct / 8 through the proxy
    assert alb["design_bound"] == 0.5
    assert alb["cpu_bound"] == 0.5  # 100 CPU-us direct / 200 through the proxy
    assert alb["errors"] == 3
    assert alb["runs"] == 3
    assert table.loc[("new-connection", "nlb"), "ratio_to_direct"] == pytest.approx(0.9)
    assert table.loc[("keep-alive", "direct"), "ratio_to_direct"] == 1.0
    assert table.loc[("keep-alive", "nlb"), "design_bound"] == 1.0
    assert table.loc[("keep-alive", "alb"), "p50_ms"] == 2.0


def test_flow_table():
    runs = pd.DataFrame(
        [
            {"tool": "http-download", "path": "direct", "bits_per_second": 1e9},
            {"tool": "http-download", "path": "direct", "bits_per_second": 3e9},
            {"tool": "http-download", "path": "alb", "bits_per_second": 1e9},
            {"tool": "iperf3", "path": "direct", "bits_per_second": 2e9},
            {"tool": "iperf3", "path": "nlb", "bits_per_second": 1.5e9},
        ]
    )
    table = c.flow_table(runs).set_index(["tool", "path"])
    assert table.loc[("http-download", "direct"), "mbps"] == 2000
    assert table.loc[("http-download", "alb"), "ratio_to_direct"] == 0.5
    assert table.loc[("iperf3", "nlb"), "ratio_to_direct"] == 0.75
    assert table.loc[("http-download", "direct"), "runs"] == 2
    assert table.loc[("http-download", "direct"), "min_mbps"] == 1000
    assert table.loc[("http-download", "direct"), "max_mbps"] == 3000


# ---- cross-zone ----------------------------------------------------------------------------
AZ_A, AZ_B = "us-east-1a", "us-east-1b"
TARGETS = {AZ_A: ["WebA1"], AZ_B: ["WebB1", "WebB2", "WebB3"]}


def zone_requests() -> pd.DataFrame:
    rows = []

    def add(lb: str, node_az: str, backend: str, n: int) -> None:
        az = AZ_A if backend.startswith("WebA") else AZ_B
        rows.extend(
            {
                "lb": lb,
                "node_az": node_az,
                "backend": backend,
                "backend_az": az,
                "status": 200,
                "error": None,
            }
            for _ in range(n)
        )

    # Cross-zone off: each node keeps to its AZ (WebA1 gets the AZ-a node's half).
    add("ClassicLB", AZ_A, "WebA1", 300)
    for t in TARGETS[AZ_B]:
        add("ClassicLB", AZ_B, t, 100)
    # On: every target a quarter from each node.
    for node in (AZ_A, AZ_B):
        for t in ("WebA1", *TARGETS[AZ_B]):
            add("MyALB", node, t, 75)
    return pd.DataFrame(rows)


def test_expected_off_zone_share():
    assert c.off_zone_expected(TARGETS, False) == 0.0
    # Node A sends 3/4 away, node B 1/4: half of all connections.
    assert c.off_zone_expected(TARGETS, True) == 0.5
    assert c.off_zone_expected({AZ_A: [], AZ_B: ["x"]}, True) == 0.0


def test_zone_shares_and_summary():
    requests = zone_requests()
    from testbed.analysis.stats import expected_share

    expected = {
        "ClassicLB": expected_share(TARGETS, False),
        "MyALB": expected_share(TARGETS, True),
    }
    shares = c.zone_shares(requests, expected).set_index(["lb", "backend"])
    assert shares.loc[("ClassicLB", "WebA1"), "share_pct"] == 50.0
    assert shares.loc[("ClassicLB", "WebA1"), "expected_pct"] == 50.0
    assert shares.loc[("ClassicLB", "WebB2"), "expected_pct"] == pytest.approx(100 / 6)
    assert shares.loc[("MyALB", "WebA1"), "deviation_pp"] == 0.0
    assert shares.loc[("ClassicLB", "WebA1"), "az"] == AZ_A
    summary = c.zone_summary(requests, shares.reset_index(), TARGETS).set_index("lb")
    assert summary.loc["ClassicLB", "off_zone_share"] == 0.0
    assert summary.loc["ClassicLB", "cross_zone"] == "off"
    assert summary.loc["MyALB", "off_zone_share"] == 0.5
    assert summary.loc["MyALB", "cross_zone"] == "on"
    assert summary.loc["MyALB", "max_dev_pp"] == 0.0
    assert summary.loc["ClassicLB", "failed"] == 0


# ---- failover and draining -----------------------------------------------------------------
def events(*rows: tuple[float, str, str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "time": t,
                "load_balancer": g,
                "target_group": g,
                "target": "WebB1:80",
                "old": "",
                "new": new,
                "reason": "",
            }
            for t, g, new, _ in rows
        ]
    )


def test_failover_table_in_lab_and_aws_seconds():
    ev = events(
        (99.0, "ClassicLB", "unhealthy", ""),  # before the fault: not this one
        (102.1, "ClassicLB", "unhealthy", ""),
        (102.2, "AlbTargets", "unhealthy", ""),
        (115.0, "ClassicLB", "healthy", ""),
        (110.0, "AlbTargets", "healthy", ""),
    )
    requests = pd.DataFrame(
        [
            {"path": "clb-http", "start": 100.5, "status": 200, "error": None},
            {"path": "clb-http", "start": 101.0, "status": 503, "error": None},
            {"path": "clb-http", "start": 101.5, "status": None, "error": "reset"},
            {"path": "clb-http", "start": 103.0, "status": None, "error": "reset"},
            {"path": "alb", "start": 101.0, "status": 502, "error": None},
            {"path": "alb", "start": 99.0, "status": None, "error": "timeout"},  # before
        ]
    )
    table = c.failover_table(
        ev,
        requests,
        groups={"clb-http": "ClassicLB", "alb": "AlbTargets", "nlb": "NlbTargets"},
        target="WebB1:80",
        fault_time=100.0,
        repair_time=105.0,
        time_scale=30,
        aws_detection_s={"clb-http": (30, 60), "alb": (30, 60)},
        aws_recovery_s={"clb-http": (270, 300), "alb": (120, 150)},
    ).set_index("path")
    clb = table.loc["clb-http"]
    assert clb["detection_lab_s"] == pytest.approx(2.1)
    assert clb["detection_aws_s"] == pytest.approx(63.0)
    assert clb["recovery_lab_s"] == pytest.approx(10.0)
    assert clb["recovery_aws_s"] == pytest.approx(300.0)
    assert (clb["aws_detection_min_s"], clb["aws_detection_max_s"]) == (30, 60)
    assert (clb["failed_before_detection"], clb["failed_after_detection"]) == (2, 1)
    assert clb["errors"] == "reset 2, http-503 1"
    assert table.loc["alb", "requests_after_fault"] == 1
    assert table.loc["alb", "recovery_aws_s"] == pytest.approx(150.0)
    assert math.isnan(table.loc["nlb", "detection_lab_s"])  # never left service


def test_draining_table_completed_or_cut():
    rows = []
    for lb, victim_ok in (("ClassicLB", False), ("MyALB", True)):
        rows.append(
            {
                "lb": lb,
                "flow": "held",
                "start": 10.0,
                "backend": "WebA1",
                "status": 200,
                "error": None,
            }
        )
        if victim_ok:
            rows.append(
                {
                    "lb": lb,
                    "flow": "held",
                    "start": 10.0,
                    "backend": "WebA2",
                    "status": 200,
                    "error": None,
                }
            )
        else:
            rows.append(
                {
                    "lb": lb,
                    "flow": "held",
                    "start": 10.0,
                    "backend": None,
                    "status": None,
                    "error": "reset",
                }
            )
        rows.append(
            {
                "lb": lb,
                "flow": "new",
                "start": 10.5,
                "backend": "WebA2",
                "status": 200,
                "error": None,
            }
        )
        rows.append(
            {
                "lb": lb,
                "flow": "new",
                "start": 12.0,
                "backend": "WebA1",
                "status": 200,
                "error": None,
            }
        )
    times = {
        "ClassicLB": {"deregistered": 11.0, "draining": 10.9, "removed": 11.1},
        "MyALB": {"deregistered": 11.0, "draining": 10.9, "removed": 20.9},
    }
    table = c.draining_table(
        pd.DataFrame(rows), times, victim="WebA2", time_scale=30, configured_s={"MyALB": 300.0}
    ).set_index("lb")
    assert table.loc["ClassicLB", "long_request"] == "cut"
    assert table.loc["ClassicLB", "held_cut"] == 1
    assert table.loc["MyALB", "long_request"] == "completed"
    assert table.loc["MyALB", "delay_lab_s"] == pytest.approx(10.0)
    assert table.loc["MyALB", "delay_aws_s"] == pytest.approx(300.0)
    assert table.loc["MyALB", "configured_delay_s"] == 300.0
    assert math.isnan(table.loc["ClassicLB", "configured_delay_s"])
    assert table.loc["MyALB", "new_after_deregistration"] == 1
    assert table.loc["MyALB", "new_to_victim_after_deregistration"] == 0


# ---- the summary and the figures -----------------------------------------------------------
def test_summary_prefers_the_internet_client_and_fills_every_measurement(tmp_path):
    seen = pd.DataFrame(
        [
            c.seen_row(
                answer(backend("10.0.0.99")),
                path="alb",
                listener="HTTP:80",
                client="VpcClient",
                client_ip="10.0.0.99",
                node_ips=NODES,
            ),
            c.seen_row(
                answer(backend("10.0.0.5", forwarded={"x-forwarded-for": CLIENT})),
                path="alb",
                listener="HTTP:80",
                client="Client1",
                client_ip=CLIENT,
                node_ips=NODES,
            ),
            c.seen_row(
                answer(backend("10.0.0.99")),
                path="direct",
                listener="WebA1:80",
                client="VpcClient",
                client_ip="10.0.0.99",
                node_ips=NODES,
            ),
        ]
    )
    bench = c.bench_table(bench_runs(), {"alb": 0.5})
    flows = c.flow_table(
        pd.DataFrame([{"tool": "http-download", "path": "alb", "bits_per_second": 1e9}])
    )
    zones = pd.DataFrame([{"lb": "MyALB", "cross_zone": "on", "off_zone_share": 0.5}])
    failover = pd.DataFrame([{"path": "alb", "detection_aws_s": 61.0, "detection_lab_s": 2.03}])
    drain = pd.DataFrame([{"lb": "MyALB", "long_request": "completed", "delay_aws_s": 300.0}])
    sticky = pd.DataFrame([{"path": "alb", "cookies_set": "AWSALB;AWSALBCORS"}])
    paths = [
        {"path": "direct", "lb": "", "layer": "-"},
        {"path": "alb", "lb": "MyALB", "layer": "7", "zones": True, "draining": True},
    ]
    summary = c.summary_table(
        paths, seen, bench, flows, zones, failover, drain, sticky, internet_client="Client1"
    ).set_index("path")
    alb = summary.loc["alb"]
    assert (alb["backend_sees"], alb["client_ip_from"]) == ("lb node", "X-Forwarded-For")
    assert alb["keepalive_ratio"] == pytest.approx(0.4001)
    assert alb["flow_mbps"] == 1000
    assert (alb["cross_zone"], alb["draining"], alb["sticky_cookie"]) == (
        "on",
        "completed",
        "AWSALB;AWSALBCORS",
    )
    assert alb["detection_aws_s"] == 61.0
    direct = summary.loc["direct"]
    assert direct["backend_sees"] == "client"  # the VPC client's row: no internet one
    assert direct["cross_zone"] == ""
    assert math.isnan(direct["iperf3_mbps"])
    # The figures draw from these tables.
    out = c.bar_figure(
        bench,
        tmp_path / "b.png",
        x="path",
        ys=["requests_per_second"],
        ylabel="r",
        title="t",
        annotate="ratio_to_direct",
        hline=(0.5, "bound"),
    )
    assert out.stat().st_size > 0
    shares = c.zone_shares(zone_requests(), {"ClassicLB": {"WebA1": 0.5}, "MyALB": {}})
    assert c.share_panels(shares, tmp_path / "s.png", title="t").stat().st_size > 0


def test_failover_errors_count_from_the_request_for_the_fault():
    ev = events((102.0, "ClassicLB", "unhealthy", ""))
    requests = pd.DataFrame(
        [
            {"path": "clb-http", "start": 99.5, "status": None, "error": "reset"},
            {"path": "clb-http", "start": 99.0, "status": None, "error": "reset"},
        ]
    )
    common = {
        "groups": {"clb-http": "ClassicLB"},
        "target": "WebB1:80",
        "fault_time": 100.0,
        "repair_time": None,
        "time_scale": 30,
        "aws_detection_s": {},
        "aws_recovery_s": {},
    }
    late = c.failover_table(ev, requests, **common).iloc[0]
    assert late["requests_after_fault"] == 0
    asked = c.failover_table(ev, requests, errors_from=99.4, **common).iloc[0]
    assert (asked["requests_after_fault"], asked["failed_before_detection"]) == (1, 1)
    assert asked["detection_lab_s"] == 2.0  # from the fault, not from the request
    assert math.isnan(asked["recovery_lab_s"])
