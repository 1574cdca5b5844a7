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
from tests.restore import restoring

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
    since = time.time()
    with restoring(default_lab, faulted=["WebB1"]):
        web.fault("500")
        res = health(default_lab, "WebB2", web.ip)
        assert res["ok"] is False
        assert "500" in res["detail"]
        assert health(default_lab, "WebB2", web.ip, matcher="500")["ok"] is True
        web.fault("clear")
        assert health(default_lab, "WebB2", web.ip)["ok"] is True
    events = [
        e.status
        for e in default_lab.events()
        if e.resource_type == "Lab::Fault" and e.logical_id == "WebB1" and e.time >= since
    ]
    assert events[:2] == ["FAULT_INJECTED", "FAULT_CLEARED"]  # (then the restore's clear)


def test_load_rows_add_up_and_match_the_access_logs(default_lab):
    log = default_lab.dir / "hosts" / "WebB2" / "access.log"
    before = len(log.read_text().splitlines()) if log.exists() else 0
    df = run_load(default_lab, "WebA2", "http://10.0.3.4/count", requests=137, concurrency=7)
    assert len(df) == 137
    assert df["seq"].tolist() == list(range(137))
    assert (df["status"] == 200).all()
    assert df["error"].isna().all()

    def counted() -> list:
        lines = log.read_text().splitlines()[before:]
        return [accesslog.parse_line(line) for line in lines if "/count" in line]

    # The backend flushes its log every second: wait until the 137th line is there.
    records = default_lab.wait_for(
        lambda: len(counted()) >= 137 and counted(), 10, "137 lines", last=lambda: len(counted())
    )
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
    with restoring(default_lab, faulted=["WebA2"]):  # started again if the test fails
        web.fault("stop")
        df = run_load(default_lab, "WebB2", "http://10.0.1.4/", requests=3)
        assert set(df["error"]) == {"refused"}
        web.fault("start")  # returns once the backend listens
        df = run_load(default_lab, "WebB2", "http://10.0.1.4/", requests=3)
        assert (df["status"] == 200).all()


def test_iperf3_and_port_metrics_agree(default_lab):
    plan = NetworkPlan.from_json((default_lab.dir / "plan.json").read_text())
    source = HostPortSource(default_lab, plan)
    first_sample = threading.Event()
    result: dict = {}

    class Marked:
        """The source, telling the traffic when the collector has its starting sample."""

        def snapshot(self):
            samples = source.snapshot()
            first_sample.set()
            return samples

    def traffic() -> None:
        if first_sample.wait(timeout=30):
            result.update(iperf3(default_lab, server="WebB2", client="WebA2", seconds=2))

    t = threading.Thread(target=traffic)
    t.start()
    try:
        # Long enough for iperf3's setup and its 2 s on a busy machine.
        rows = collect([Marked()], duration=6, interval=1)
    finally:
        first_sample.set()
        t.join()
    periods = sorted(
        (r["time"], r["value"])
        for r in rows
        if r["target"] == "WebB2" and r["metric"] == "ReceivedBytes"
    )
    # Each row is a rate over its period, which ends where the next one starts (a period
    # is longer than the 1 s interval when a sample came late); the last one is 1 s.
    ends = [t for t, _v in periods[1:]] + [periods[-1][0] + 1.0]
    received = sum(v * (end - t) for (t, v), end in zip(periods, ends))
    assert result["bits_per_second"] > 10e6
    # The rates add up to at least the payload iperf3 counted (frames carry headers too).
    assert received >= result["bytes"], (received, result["bytes"], periods)


def test_wrk_wrapper(default_lab):
    res = wrk(default_lab, "Client1", "http://203.0.113.11/", seconds=1, connections=4)
    assert res["requests_per_second"] > 100
    assert res["errors"] == 0
