"""Roles on real labs: http-backend identity and faults, load client, health checks,
iperf3/wrk wrappers, switch-port metrics."""

from __future__ import annotations

import json
import sys
import threading
import time

import pytest

from testbed import accesslog
from testbed.metrics.collector import collect
from testbed.metrics.sources import HostPortSource
from testbed.plan.network import NetworkPlan
from testbed.traffic import iperf3, run_load, wrk

pytestmark = pytest.mark.integration


def health(lab, src: str, ip: str, matcher: str = "200-399") -> dict:
    proc = lab.host(src).run(
        [
            sys.executable,
            "-m",
            "testbed.health.checks",
            ip,
            "80",
            "--http",
            "/health",
            "--matcher",
            matcher,
            "--timeout",
            "2",
        ]
    )
    return json.loads(proc.stdout)


def test_backend_reports_the_clients_real_address(default_lab):
    df = run_load(default_lab, "Client1", "http://203.0.113.10/", requests=20, concurrency=4)
    assert set(df["backend"]) == {"WebA1"}
    assert set(df["seen_ip"]) == {"198.51.100.10"}
    assert set(df["backend_az"]) == {"us-east-1a"}
    df = run_load(default_lab, "WebA2", "http://10.0.3.4/", requests=10)
    assert set(df["backend"]) == {"WebB2"}
    assert set(df["seen_ip"]) == {"10.0.1.4"}


def test_fault_500_turns_the_http_health_check_unhealthy(default_lab):
    web = default_lab.host("WebB1")
    assert health(default_lab, "WebB2", web.ip)["ok"] is True
    web.fault("500")
    try:
        res = health(default_lab, "WebB2", web.ip)
        assert res["ok"] is False
        assert "500" in res["detail"]
        assert health(default_lab, "WebB2", web.ip, matcher="500")["ok"] is True
    finally:
        web.fault("clear")
    assert health(default_lab, "WebB2", web.ip)["ok"] is True
    events = [e for e in default_lab.events() if e.resource_type == "Lab::Fault"]
    assert [e.status for e in events[-2:]] == ["FAULT_INJECTED", "FAULT_CLEARED"]


def test_load_rows_add_up_and_match_the_access_logs(default_lab):
    log = default_lab.dir / "hosts" / "WebB2" / "access.log"
    before = len(log.read_text().splitlines()) if log.exists() else 0
    df = run_load(default_lab, "WebA2", "http://10.0.3.4/count", requests=137, concurrency=7)
    assert len(df) == 137
    assert df["seq"].tolist() == list(range(137))
    assert (df["status"] == 200).all()
    assert df["error"].isna().all()
    time.sleep(1.5)  # the backend flushes its log every second
    lines = log.read_text().splitlines()[before:]
    records = [accesslog.parse_line(line) for line in lines if "/count" in line]
    assert len(records) == 137
    assert all(r.client.startswith("10.0.1.4:") for r in records)
    tcp = run_load(default_lab, "WebA2", "tcp://10.0.3.4:9000", requests=25, rate=50)
    udp = run_load(default_lab, "WebA2", "udp://10.0.3.4:9000", requests=25)
    assert len(tcp) == 25
    assert set(tcp["backend"]) == {"WebB2"}
    assert len(udp) == 25
    assert set(udp["backend"]) == {"WebB2"}


def test_stop_and_start_the_backend(default_lab):
    web = default_lab.host("WebA2")
    web.fault("stop")
    try:
        df = run_load(default_lab, "WebB2", "http://10.0.1.4/", requests=3)
        assert set(df["error"]) == {"refused"}
    finally:
        web.fault("start")
    df = run_load(default_lab, "WebB2", "http://10.0.1.4/", requests=3)
    assert (df["status"] == 200).all()


def test_iperf3_and_port_metrics_agree(default_lab):
    plan = NetworkPlan.from_json((default_lab.dir / "plan.json").read_text())
    source = HostPortSource(default_lab, plan)
    result: dict = {}

    def traffic() -> None:
        time.sleep(0.5)
        result.update(iperf3(default_lab, server="WebB2", client="WebA2", seconds=2))

    t = threading.Thread(target=traffic)
    t.start()
    rows = collect([source], duration=4, interval=1)
    t.join()
    received = sum(
        r["value"] for r in rows if r["target"] == "WebB2" and r["metric"] == "ReceivedBytes"
    )
    assert result["bits_per_second"] > 10e6
    # per-second rates over 1 s periods sum to the bytes that crossed WebB2's port
    assert received >= result["bytes"]


def test_wrk_wrapper(default_lab):
    res = wrk(default_lab, "Client1", "http://203.0.113.11/", seconds=1, connections=4)
    assert res["requests_per_second"] > 100
    assert res["errors"] == 0
