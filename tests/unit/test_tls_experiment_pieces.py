"""Pieces of the tls experiment that need no lab: its stack, parsing, summary and plot."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from testbed.alb.config import node_files, render
from testbed.experiments import tls
from testbed.model import load_model_text
from testbed.plan.network import build_plan
from testbed.results import parse_params


def test_generated_stack_has_http_and_https_to_the_same_target():
    plan = build_plan(load_model_text(tls.stack_yaml(), filename="stack.yaml", stack_name="x"), "x")
    lb = plan.load_balancers[0]
    by_port = {x.port: x for x in lb.listeners}
    assert set(by_port) == {tls.HTTP_PORT, tls.HTTPS_PORT}
    assert by_port[tls.HTTP_PORT].protocol == "HTTP"
    https = by_port[tls.HTTPS_PORT]
    assert https.protocol == "HTTPS"
    assert https.ssl_policy == tls.POLICY
    (cert,) = plan.certificates
    assert https.certificates == (cert.arn,)
    assert cert.names[0] == tls.DOMAIN
    assert cert.names[1] == lb.dns_name.lower()  # the load client verifies it by that name
    for listener in by_port.values():
        assert listener.default_actions[0]["target_groups"] == [["BenchTargets", 1]]
    assert [t.host for t in lb.target_group("BenchTargets").targets] == ["BenchA1"]
    assert plan.host("Bench").az == lb.nodes[0].az
    text = render(lb, lb.nodes[0], node_files(Path("/tmp/x"), "n"))
    assert f":{tls.HTTPS_PORT} ssl crt " in text
    assert "ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.3" in text


def test_parameters_are_bounded():
    params = parse_params(tls, {})
    assert params["seconds"] * params["repeats"] * len(tls.CASES) <= 60
    assert params["verified_requests"] <= 1000
    assert parse_params(tls, {"seconds": "1", "repeats": "1"})["repeats"] == 1


def test_negotiated_reads_curl_verbose():
    text = (
        "* ALPN: server accepted http/1.1\n"
        "* SSL connection using TLSv1.3 / TLS_AES_128_GCM_SHA256\n"
    )
    assert tls.negotiated(text) == {"protocol": "TLSv1.3", "cipher": "TLS_AES_128_GCM_SHA256"}
    assert tls.negotiated("nothing") == {}


def test_haproxy_ticks_counts_only_that_configuration(tmp_path):
    assert tls.haproxy_ticks(tmp_path / "haproxy.cfg") == 0.0


def _runs() -> pd.DataFrame:
    rows = []
    numbers = {
        "http-keepalive": (10000, 20, 100, 4.0),
        "https-keepalive": (8000, 30, 120, 4.0),
        "http-new": (2000, 80, 400, 12.0),
        "https-new": (500, 900, 1600, 20.0),
    }
    for rep in range(2):
        for case, (rate, haproxy, machine, packets) in numbers.items():
            rows.append(
                {
                    "case": case,
                    "repeat": rep,
                    "requests_per_second": rate + rep,
                    "haproxy_cpu_us_per_request": haproxy,
                    "ovs_cpu_us_per_request": packets * 10,
                    "cpu_us_per_request": machine,
                    "fabric_packets_per_request": packets,
                    "p50_ms": 1.0,
                }
            )
    return pd.DataFrame(rows)


def test_summary_has_the_ratios_and_the_nlb_line():
    table = pd.DataFrame(tls.summarise(_runs())).set_index("metric")
    assert table.loc["requests_per_second_keepalive", "https_over_http"] == round(
        8000.5 / 10000.5, 4
    )
    assert table.loc["requests_per_second_new", "https"] == 500.5
    assert table.loc["haproxy_cpu_us_per_request_new", "https_over_http"] == 900 / 80
    assert table.loc["fabric_packets_per_request_keepalive", "https_over_http"] == 1.0
    assert math.isnan(table.loc["nlb_tls_vs_tcp", "https_over_http"])
    assert "NLB TLS listeners not yet" in table.loc["nlb_tls_vs_tcp", "note"]


def test_bounds_says_it_with_the_run_numbers():
    text = tls.bounds(pd.DataFrame(tls.summarise(_runs())))
    assert "doubles the packets" in text
    assert "x11.25 per new connection (900 vs 80 CPU-us" in text


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
