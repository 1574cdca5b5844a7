"""The http-backend role, the load client and health checks, on loopback (no root needed)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from testbed import accesslog
from testbed.errors import BadInput
from testbed.health.checks import http_check, matches, parse_matcher, tcp_check
from testbed.roles.load_client import LoadClient, Target, summary
from testbed.traffic import parse_wrk
from testbed.waiting import wait_for


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """`n` distinct TCP ports nobody uses right now (held together while chosen, so the
    kernel cannot hand out the same one twice)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def start_backend(tmp_path: Path) -> tuple[subprocess.Popen, dict]:
    """An http-backend on loopback ports; retried when a chosen port was taken meanwhile
    (by another test's client, say) before the backend could bind it."""
    log = tmp_path / "access.log"
    errors = tmp_path / "backend.err"
    for _attempt in range(3):
        port, tcp, admin = free_ports(3)
        ports = {"port": port, "tcp": tcp, "udp": tcp, "admin": admin, "log": log}
        argv = [sys.executable, "-m", "testbed.roles.http_backend", "--id", "T1"]
        argv += ["--ip", "127.0.0.1", "--az", "us-east-1a", "--bind", "127.0.0.1"]
        argv += ["--port", str(port), "--tcp-port", str(tcp), "--udp-port", str(tcp)]
        argv += ["--admin-port", str(admin), "--access-log", str(log)]
        with open(errors, "wb") as err:
            proc = subprocess.Popen(argv, stderr=err)
        wait_for(
            lambda p=proc, a=admin: p.poll() is not None or accepts(a), 10, "the backend to start"
        )
        if proc.poll() is None:
            return proc, ports
        if "address already in use" not in errors.read_text():
            break
    raise AssertionError(f"the backend exited ({proc.returncode}): {errors.read_text()}")


@pytest.fixture
def backend(tmp_path):
    proc, ports = start_backend(tmp_path)
    try:
        yield ports
    finally:
        proc.terminate()
        proc.wait(5)


def accepts(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port right now."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def admin(b, query: str) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{b['admin']}/faults?{query}", method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def status_of(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status


def load(target: str, *args: str) -> tuple[list[dict], dict]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "testbed.roles.load_client",
            "--target",
            target,
            "--client",
            "C",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    return rows, json.loads(proc.stderr.strip().splitlines()[-1])


def test_identity_keepalive_pipelining_and_query_shaping(backend):
    with socket.create_connection(("127.0.0.1", backend["port"])) as s:
        s.sendall(
            b"GET /a HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n"
            b"GET /b?status=503&size=600 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        data = b""
        while data.count(b"HTTP/1.1") < 2 or (not data.rstrip().endswith(b"}") and len(data) < 900):
            data += s.recv(65536)
        first, second = data.split(b"HTTP/1.1 ")[1:3]
        assert first.startswith(b"200")
        assert second.startswith(b"503")
        body = json.loads(first.split(b"\r\n\r\n", 1)[1])
        assert body["instance"] == "T1"
        assert body["path"] == "/a"
        assert body["client"]["ip"] == "127.0.0.1"
        assert body["client"]["port"] == s.getsockname()[1]
        assert body["forwarded"] == {"x-forwarded-for": "1.2.3.4"}
        assert len(second.split(b"\r\n\r\n", 1)[1]) == 600


def test_faults_status_delay_refuse_clear(backend):
    url = f"http://127.0.0.1:{backend['port']}/health"
    assert admin(backend, "status=500")["status"] == 500
    with pytest.raises(urllib.error.HTTPError) as err:
        status_of(url)
    assert err.value.code == 500
    err.value.close()
    admin(backend, "clear")
    assert admin(backend, "delay_ms=300")["delay_ms"] == 300
    assert status_of(url + "?delayed=1") == 200
    # The backend's own record of how long it held the answer (logged once flushed).
    delayed = wait_for(
        lambda: [r for r in log_records(backend) if r.path == "/health?delayed=1"],
        10,
        "the delayed request in the access log",
    )
    assert delayed[0].duration_ms >= 300
    admin(backend, "clear&refuse=1")
    with pytest.raises(urllib.error.URLError):
        status_of(url)
    # "cleared" comes back once the listeners accept again: no wait needed.
    assert admin(backend, "clear")["refuse"] is False
    assert status_of(url) == 200


def log_records(backend) -> list:
    """The backend's access log as parsed records (what it has flushed so far)."""
    log = Path(backend["log"])
    lines = log.read_text().splitlines() if log.exists() else []
    return [accesslog.parse_line(line) for line in lines]


def test_hang_makes_requests_time_out(backend):
    admin(backend, "hang=1")
    rows, summ = load(f"http://127.0.0.1:{backend['port']}/", "-n", "3", "--timeout", "0.5")
    assert [r["error"] for r in rows] == ["timeout"] * 3
    assert summ["ok"] == 0


def test_load_rows_add_up_http_tcp_udp(backend):
    rows, summ = load(f"http://127.0.0.1:{backend['port']}/", "-n", "57", "-c", "5")
    assert len(rows) == 57 == summ["requests"] == summ["ok"]
    assert sorted(int(r["seq"]) for r in rows) == list(range(57))
    assert {r["backend"] for r in rows} == {"T1"}
    assert {r["status"] for r in rows} == {"200"}
    assert all(r["seen_ip"] == "127.0.0.1" for r in rows)
    rows, summ = load(f"tcp://127.0.0.1:{backend['tcp']}", "-n", "20", "--rate", "200")
    assert len(rows) == 20
    assert all(r["backend"] == "T1" and not r["error"] for r in rows)
    rows, summ = load(f"udp://127.0.0.1:{backend['udp']}", "-n", "15")
    assert len(rows) == 15
    assert all(r["backend"] == "T1" for r in rows)
    assert len({r["seen_port"] for r in rows}) == 15  # a new flow (source port) each time


class FakeLoopClock:
    """The load client's clock (LoopClock) on a fake timeline: sleeping moves it."""

    def __init__(self) -> None:
        self.time = 0.0

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)  # the tasks ready now run now, as during a real sleep
        self.time += seconds


def scheduled(n, rate=None, concurrency=1, duration=None, takes=0.0) -> list[tuple[int, float]]:
    """(seq, start) of each request the load client starts, on a fake clock; each request
    takes `takes` fake seconds."""
    clock = FakeLoopClock()
    client = LoadClient(Target("http://x/"), "C", 5.0, False, 0.0, False, [], clock=clock)
    started: list[tuple[int, float]] = []

    async def one(seq: int, conn=None) -> None:
        started.append((seq, clock.now()))
        await clock.sleep(takes)

    client.one = one  # type: ignore[method-assign]
    asyncio.run(client.run(n, rate, concurrency, duration, progress=False))
    return started


def test_open_loop_starts_request_i_at_i_over_rate():
    started = scheduled(21, rate=20, concurrency=5)
    assert [seq for seq, _t in started] == list(range(21))
    assert [t for _seq, t in started] == pytest.approx([i / 20 for i in range(21)])


def test_duration_bounds_the_open_and_the_closed_loop():
    # 1,000,000 asked at 50/s for 1 s: the 50 that start before the end, no more.
    assert len(scheduled(1_000_000, rate=50, concurrency=10, duration=1)) == 50
    # One worker, 0.25 s a request: starts at 0, 0.25, 0.5, 0.75; not at 1.0.
    assert [t for _s, t in scheduled(100, duration=1, takes=0.25)] == [0, 0.25, 0.5, 0.75]
    assert len(scheduled(7, takes=0.25)) == 7  # no duration: every request


def test_rate_gives_every_request_a_row(backend):
    rows, summ = load(f"http://127.0.0.1:{backend['port']}/", "-n", "21", "--rate", "200")
    assert sorted(int(r["seq"]) for r in rows) == list(range(21))
    assert summ["ok"] == 21


def test_refused_and_duration_bound(backend):
    port = free_port()
    rows, summ = load(f"http://127.0.0.1:{port}/", "-n", "4")
    assert summ["errors"] == {"refused": 4}
    # A million at 50/s would take 5.5 hours: --duration ends it (else load() times out).
    rows, _ = load(
        f"http://127.0.0.1:{backend['port']}/", "-n", "1000000", "--rate", "50", "--duration", "1"
    )
    assert 0 < len(rows) <= 51


def test_access_log_lines_follow_the_documented_format(backend):
    load(f"http://127.0.0.1:{backend['port']}/x?y=1", "-n", "10", "-c", "1")
    # The backend flushes its log every second: wait for the tenth line.
    records = wait_for(
        lambda: len(log_records(backend)) >= 10 and log_records(backend),
        10,
        "10 lines in the access log",
        last=lambda: len(log_records(backend)),
    )
    assert len(records) == 10
    assert all(records)
    assert records[0].server == "T1"
    assert records[0].path == "/x?y=1"
    assert records[0].status == 200
    assert records[0].user_agent == "elb-lab-load/1"


def test_access_log_round_trip_and_escaping():
    line = accesslog.format_line(
        "W", "1.2.3.4:5", "10.0.0.4:80", "GET", '/a"b\\c', 200, 10, 1.5, None, 'ua "x"', epoch=0.5
    )
    rec = accesslog.parse_line(line)
    assert rec.path == '/a"b\\c'
    assert rec.user_agent == 'ua "x"'
    assert rec.xff == "-"
    assert rec.time == "1970-01-01T00:00:00.500000Z"
    assert accesslog.parse_line("garbage") is None


async def _checks(b):
    ok = await http_check("127.0.0.1", b["port"], "/health", 2, "200-399")
    tcp = await tcp_check("127.0.0.1", b["tcp"], 2)
    return ok, tcp


def test_health_checks_follow_faults(backend):
    ok, tcp = asyncio.run(_checks(backend))
    assert ok.ok
    assert ok.detail == "200"
    assert tcp.ok
    admin(backend, "status=500")
    bad = asyncio.run(http_check("127.0.0.1", backend["port"], "/health", 2, "200-399"))
    assert not bad.ok
    assert "500" in bad.detail
    admin(backend, "clear&hang=1")
    hung = asyncio.run(http_check("127.0.0.1", backend["port"], "/health", 0.3))
    assert not hung.ok
    assert hung.detail == "timeout"
    refused = asyncio.run(tcp_check("127.0.0.1", free_port(), 1))
    assert not refused.ok
    assert refused.detail == "refused"


def test_matcher_parsing():
    assert parse_matcher("200") == [(200, 200)]
    assert parse_matcher("200,302") == [(200, 200), (302, 302)]
    r = parse_matcher("200-299")
    assert matches(250, r)
    assert not matches(300, r)
    for bad in ("abc", "99", "300-200", "200-700"):
        with pytest.raises(BadInput):
            parse_matcher(bad)


def test_target_parsing_and_summary():
    t = Target("http://web.example:8080/p?q=1")
    assert (t.proto, t.host, t.port, t.path) == ("http", "web.example", 8080, "/p?q=1")
    assert Target("10.0.0.4", "udp").port == 9000
    assert Target("tcp://10.0.0.4:7").proto == "tcp"
    with pytest.raises(ValueError, match="unknown protocol"):
        Target("ftp://x")
    rows = [
        {"error": "", "latency_ms": float(i), "backend": "A" if i % 2 else "B", "status": 200}
        for i in range(1, 101)
    ] + [{"error": "timeout", "latency_ms": 9.0, "backend": "", "status": ""}]
    s = summary(rows, 2.0)
    assert s["requests"] == 101
    assert s["ok"] == 100
    assert s["errors"] == {"timeout": 1}
    assert s["p50_ms"] == 51.0
    assert s["p99_ms"] == 100.0
    assert s["backends"] == {"A": 50, "B": 50}
    assert s["per_second"] == 50.5


def test_parse_wrk_output():
    text = """Running 3s test @ http://10.0.1.4/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.65ms    1.12ms  20.12ms   88.60%
  Latency Distribution
     50%    4.50ms
     75%    5.00ms
     90%    5.80ms
     99%    1.20s
  33153 requests in 3.00s, 10.40MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
Requests/sec:  11048.70
Transfer/sec:      3.47MB
"""
    r = parse_wrk(text)
    assert r["requests_per_second"] == 11048.70
    assert r["requests"] == 33153
    assert r["p50_ms"] == 4.5
    assert r["p99_ms"] == 1200.0
    assert r["errors"] == 3
    with pytest.raises(ValueError, match="no Requests/sec"):
        parse_wrk("nothing")


def test_metric_rates_counters_gauges_and_resets():
    from testbed.metrics.collector import rates
    from testbed.metrics.sources import Sample

    def s(metric, value, kind="counter"):
        return Sample("Lab/Host", metric, "", "", "H", value, "Bytes", kind)

    rows = rates(
        [s("A", 100), s("B", 500)],
        [s("A", 300), s("B", 10), s("G", 7, "gauge"), s("New", 5)],
        2.0,
        1000.0,
    )
    by = {r["metric"]: r for r in rows}
    assert by["A"]["value"] == 100.0
    assert by["A"]["unit"] == "Bytes/Second"
    assert "B" not in by  # went down: a restart, no rate
    assert by["G"]["value"] == 7
    assert by["G"]["unit"] == "Bytes"
    assert "New" not in by
    assert by["A"]["time"] == 1000.0


def test_snmp_rates_become_metric_rows():
    from testbed.metrics.snmp_metrics import rates_to_metrics

    rows = rates_to_metrics(
        [
            {
                "time": "10.0",
                "host": "WebA1",
                "object": "IF-MIB::ifHCInOctets",
                "index": "2",
                "value": "1500.5",
                "type": "rate",
                "error": "",
            },
            {
                "time": "10.0",
                "host": "WebA1",
                "object": "IF-MIB::ifHCOutOctets",
                "index": "2",
                "value": "",
                "type": "rate",
                "error": "agent-restart",
            },
            {
                "time": "10.0",
                "host": "WebA1",
                "object": "SNMPv2-MIB::sysUpTime",
                "index": "0",
                "value": "1",
                "type": "rate",
                "error": "",
            },
        ]
    )
    assert rows == [
        {
            "time": 10.0,
            "namespace": "Lab/Host",
            "metric": "SnmpInOctets",
            "load_balancer": "",
            "target_group": "",
            "target": "WebA1/if2",
            "value": 1500.5,
            "unit": "Bytes/Second",
        }
    ]
