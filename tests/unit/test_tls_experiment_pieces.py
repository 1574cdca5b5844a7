"""Pieces of the tls experiment that need no lab: its stack, parsing, summary and plot."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
import pytest

from testbed.alb.config import node_files, render
from testbed.experiments import tls
from testbed.model import load_model_text
from testbed.plan.network import build_plan
from testbed.results import parse_params


def _plan():
    return build_plan(load_model_text(tls.stack_yaml(), filename="stack.yaml", stack_name="x"), "x")


def test_generated_stack_has_http_and_https_to_the_same_target():
    plan = _plan()
    lb = next(x for x in plan.load_balancers if x.name == tls.LB)
    by_port = {x.port: x for x in lb.listeners}
    assert set(by_port) == {tls.HTTP_PORT, tls.HTTPS_PORT}
    assert by_port[tls.HTTP_PORT].protocol == "HTTP"
    https = by_port[tls.HTTPS_PORT]
    assert https.protocol == "HTTPS"
    assert https.ssl_policy == tls.POLICY
    cert = next(c for c in plan.certificates if c.names[0] == tls.DOMAIN)
    assert https.certificates == (cert.arn,)
    assert cert.names[1] == lb.dns_name.lower()  # the load client verifies it by that name
    for listener in by_port.values():
        assert listener.default_actions[0]["target_groups"] == [["BenchTargets", 1]]
    assert [t.host for t in lb.target_group("BenchTargets").targets] == ["BenchA1"]
    assert plan.host("Bench").az == lb.nodes[0].az
    text = render(lb, lb.nodes[0], node_files(Path("/tmp/x"), "n"))
    assert f":{tls.HTTPS_PORT} ssl crt " in text
    assert "ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.3" in text


def test_generated_stack_has_an_nlb_with_tcp_and_tls_to_the_same_target():
    plan = _plan()
    nlb = next(x for x in plan.load_balancers if x.name == tls.NLB)
    assert nlb.type == "network"
    assert sorted(n.az for n in nlb.nodes) == sorted(
        n.az for n in next(x for x in plan.load_balancers if x.name == tls.LB).nodes
    )
    by_port = {x.port: x for x in nlb.listeners}
    assert set(by_port) == {tls.NLB_TCP_PORT, tls.NLB_TLS_PORT}
    assert by_port[tls.NLB_TCP_PORT].protocol == "TCP"
    listener = by_port[tls.NLB_TLS_PORT]
    assert listener.protocol == "TLS"
    assert listener.ssl_policy == tls.POLICY
    cert = next(c for c in plan.certificates if c.names[0] == tls.NLB_DOMAIN)
    assert listener.certificates == (cert.arn,)
    assert cert.names[1] == nlb.dns_name.lower()
    for x in by_port.values():
        assert x.default_actions[0]["target_groups"] == [["NlbTargets", 1]]
    group = nlb.target_group("NlbTargets")
    assert group.protocol == "TCP"
    assert [t.host for t in group.targets] == ["BenchA1"]  # an instance target
    # Only the TLS listener is HAProxy's on the node; the TCP one is the switches'.
    text = render(nlb, nlb.nodes[0], node_files(Path("/tmp/x"), "n"))
    assert f":{tls.NLB_TLS_PORT} ssl crt " in text
    assert f":{tls.NLB_TCP_PORT} " not in text
    assert "ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.3" in text


def test_every_case_goes_to_a_listener_of_its_load_balancer():
    plan = _plan()
    ports = {lb.name: {x.port: x.protocol for x in lb.listeners} for lb in plan.load_balancers}
    for case, (lb, scheme, port, keepalive) in tls.CASES.items():
        assert ports[lb][port] in (("HTTPS", "TLS") if scheme == "https" else ("HTTP", "TCP"))
        assert keepalive == case.endswith("keepalive")
    for encrypted, plain in tls.PAIRS.values():
        for kind in ("keepalive", "new"):
            assert {f"{encrypted}-{kind}", f"{plain}-{kind}"} <= set(tls.CASES)


def test_parameters_are_bounded():
    params = parse_params(tls, {})
    assert params["seconds"] * params["repeats"] * len(tls.CASES) <= 80
    assert params["verified_requests"] <= 1000
    assert parse_params(tls, {"seconds": "1", "repeats": "1"})["repeats"] == 1


def test_negotiated_reads_curl_verbose():
    text = (
        "* ALPN: server accepted http/1.1\n"
        "* SSL connection using TLSv1.3 / TLS_AES_128_GCM_SHA256\n"
    )
    assert tls.negotiated(text) == {"protocol": "TLSv1.3", "cipher": "TLS_AES_128_GCM_SHA256"}
    assert tls.negotiated("nothing") == {}


def test_answered_reads_the_backend_reply():
    assert tls.answered('{"instance": "BenchA1", "tls": null}') == {
        "target": "BenchA1",
        "target_got_tls": False,
    }
    assert tls.answered('{"instance": "BenchA1", "tls": {"version": "TLSv1.3"}}')["target_got_tls"]
    assert tls.answered("<html>") == {}


def test_haproxy_ticks_counts_only_that_configuration(tmp_path):
    assert tls.haproxy_ticks(tmp_path / "haproxy.cfg") == 0.0


def test_path_cpu_is_the_switch_plus_the_node_haproxy():
    # ovs-vswitchd busy 0.5 of a CPU at 10,000 requests/s: 50 CPU-us per request.
    row = {"requests_per_second": 10000.0, "ovs_cpu": 0.5, "haproxy_cpu_us_per_request": 0.0}
    assert tls.path_cpu(row) == {"ovs_cpu_us_per_request": 50.0, "path_cpu_us_per_request": 50.0}
    row.update(haproxy_cpu_us_per_request=30.0)
    assert tls.path_cpu(row)["path_cpu_us_per_request"] == 80.0
    row.update(requests_per_second=0.0)
    assert math.isnan(tls.path_cpu(row)["ovs_cpu_us_per_request"])


# case: requests/s, HAProxy, ovs-vswitchd, machine CPU-us per request, packets per request
NUMBERS = {
    "http-keepalive": (10000, 20, 40, 100, 4.0),
    "https-keepalive": (8000, 30, 40, 120, 4.0),
    "nlb-tcp-keepalive": (20000, 0, 20, 50, 2.0),
    "nlb-tls-keepalive": (9000, 25, 40, 110, 4.0),
    "http-new": (2000, 80, 120, 400, 12.0),
    "https-new": (500, 900, 200, 1600, 20.0),
    "nlb-tcp-new": (4000, 0, 100, 300, 10.0),
    "nlb-tls-new": (400, 800, 220, 1700, 26.0),
}


def _runs() -> pd.DataFrame:
    rows = []
    for rep in range(2):
        for case, (rate, haproxy, ovs, machine, packets) in NUMBERS.items():
            rows.append(
                {
                    "case": case,
                    "repeat": rep,
                    "requests_per_second": rate + rep,
                    "haproxy_cpu_us_per_request": haproxy,
                    "ovs_cpu_us_per_request": ovs,
                    "path_cpu_us_per_request": haproxy + ovs,
                    "cpu_us_per_request": machine,
                    "fabric_packets_per_request": packets,
                    "p50_ms": 1.0,
                }
            )
    return pd.DataFrame(rows)


def test_summary_has_the_alb_ratios():
    table = pd.DataFrame(tls.summarise(_runs())).set_index("metric")
    assert table.loc["requests_per_second_keepalive", "https_over_http"] == round(
        8000.5 / 10000.5, 4
    )
    assert table.loc["requests_per_second_new", "https"] == 500.5
    assert table.loc["haproxy_cpu_us_per_request_new", "https_over_http"] == 900 / 80
    assert table.loc["path_cpu_us_per_request_new", "https_over_http"] == 1100 / 200
    assert table.loc["fabric_packets_per_request_keepalive", "https_over_http"] == 1.0
    assert table.loc["haproxy_share_of_machine_cpu_new_https", "https"] == round(900 / 1600, 4)
    assert "nlb_tls_vs_tcp" not in table.index  # measured now: the nlb_* rows


def test_summary_has_the_nlb_tls_over_tcp_rows():
    table = pd.DataFrame(tls.summarise(_runs())).set_index("metric")
    keepalive = table.loc["nlb_requests_per_second_keepalive"]
    assert (keepalive["https"], keepalive["http"]) == (9000.5, 20000.5)
    assert keepalive["https_over_http"] == round(9000.5 / 20000.5, 4)
    assert table.loc["nlb_requests_per_second_new", "https_over_http"] == round(400.5 / 4000.5, 4)
    # CPU per request of each path: the TCP listener's is the switch's alone.
    path = table.loc["nlb_path_cpu_us_per_request_new"]
    assert (path["https"], path["http"], path["https_over_http"]) == (1020, 100, 10.2)
    assert table.loc["nlb_path_cpu_us_per_request_keepalive", "https_over_http"] == 65 / 20
    assert table.loc["nlb_fabric_packets_per_request_keepalive", "https_over_http"] == 2.0
    # No HAProxy on the TCP path: no ratio rather than an infinite one.
    assert math.isnan(table.loc["nlb_haproxy_cpu_us_per_request_new", "https_over_http"])
    assert table.loc["nlb_haproxy_cpu_us_per_request_new", "https"] == 800
    assert "NLB's TLS and TCP listeners" in table.loc["nlb_requests_per_second_new", "note"]
    assert "ALB's HTTPS and HTTP" in table.loc["requests_per_second_new", "note"]
    assert not any(m.startswith("nlb_haproxy_share") for m in table.index)


def test_summary_fails_loudly_without_a_case():
    runs = _runs()
    with pytest.raises(KeyError, match="nlb-tls-new"):
        tls.summarise(runs[runs["case"] != "nlb-tls-new"])


def test_bounds_says_it_with_the_run_numbers():
    text = tls.bounds(pd.DataFrame(tls.summarise(_runs())))
    assert "the switch twice" in text
    assert "x11.25 per new connection (900 vs 80 CPU-us" in text
    nlb = text.splitlines()[1]
    assert nlb.startswith("The NLB's TCP listener is the switch alone")
    assert "no process (2.0 packets per kept-alive request" in nlb
    assert "adds a proxy hop" in nlb
    assert "(4.0 per kept-alive request)" in nlb
    assert "HAProxy 800 CPU-us per new connection" in nlb
    assert "1020 vs 100 per new connection" in nlb
    assert f"x{400.5 / 4000.5:.2f} of new TCP connections/s" in nlb


def test_plot_writes_a_png(tmp_path):
    path = tmp_path / "tls.png"
    tls._plot(_runs(), path)
    assert path.stat().st_size > 0
    assert os.path.getsize(path) > 1000


def test_load_client_speaks_https_verified_against_the_lab_ca(tmp_path):
    """The load client's https:// targets: verified by name against SSL_CERT_FILE (how lab
    hosts trust the lab CA), kept alive or not; without that trust every request is "tls"."""
    import json
    import subprocess
    import sys

    from testbed.lab import certs
    from testbed.waiting import wait_for
    from tests.unit.test_backend_and_load import accepts, free_ports

    pem = certs.issue_host_cert(tmp_path, "T1", ["localhost", "127.0.0.1"])
    port, https, tcp, admin = free_ports(4)
    argv = [sys.executable, "-m", "testbed.roles.http_backend", "--id", "T1"]
    argv += ["--ip", "127.0.0.1", "--az", "us-east-1a", "--bind", "127.0.0.1"]
    argv += ["--port", str(port), "--https-port", str(https), "--cert", str(pem)]
    argv += ["--tcp-port", str(tcp), "--udp-port", str(tcp), "--admin-port", str(admin)]
    argv += ["--access-log", str(tmp_path / "access.log")]
    backend = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: backend.poll() is not None or accepts(https), 10, "the backend")
        assert backend.poll() is None

        def load(env: dict[str, str], *args: str) -> dict:
            argv = [sys.executable, "-m", "testbed.roles.load_client", "--client", "C"]
            argv += ["--target", f"https://localhost:{https}/", "-n", "20", "-c", "2", *args]
            proc = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=60,
                env={**os.environ, **env},
            )
            assert proc.returncode == 0, proc.stderr
            return json.loads(proc.stderr.strip().splitlines()[-1])

        trusted = {"SSL_CERT_FILE": str(certs.trust_bundle(tmp_path))}
        for args in ((), ("--keepalive",)):
            result = load(trusted, *args)
            assert result["ok"] == 20, result
            assert result["statuses"] == {"200": 20}, result
            assert result["backends"] == {"T1": 20}
        untrusted = load({"SSL_CERT_FILE": str(tmp_path / "none.pem")})
        assert untrusted["errors"] == {"tls": 20}, untrusted
    finally:
        backend.terminate()
        backend.wait(5)
