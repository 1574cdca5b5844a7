"""The console's API (testbed.console.server) with aiohttp's test client, on a lab made of
files (state, plan, events: no root, no network): it serves what the CLI prints, refuses
what it must, and is fast enough for a 100-host lab."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from testbed.cli import main
from testbed.console import server
from testbed.console.data import LiveData, read_new_lines
from testbed.console.replay import read_results
from testbed.console.server import make_app
from testbed.lab.api import TARGET_EVENTS_FILE, Lab
from testbed.lab.events import EventLog
from tests.console_fake import LAB, make_lab, target_row


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path / "state"))
    rows = [target_row("WebA1", "healthy"), target_row("WebB1", "unhealthy", "Target.Timeout")]
    monkeypatch.setattr(Lab, "targets", lambda self, tg=None, lb=None: rows)
    return make_lab(tmp_path / "state")


def with_client(test: Callable[[TestClient], Awaitable[None]], **options: Any) -> None:
    async def run() -> None:
        async with TestClient(TestServer(make_app(LiveData(), **options))) as client:
            await test(client)

    asyncio.run(run())


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_the_api_serves_what_the_cli_prints(lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = cli_json(capsys, "status", LAB, "--json")
    every = cli_json(capsys, "status", "--json")
    targets = cli_json(capsys, "targets", LAB, "--json")
    capsys.readouterr()
    assert main(["events", LAB, "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    async def test(client: TestClient) -> None:
        for path, want in (
            (f"/api/labs/{LAB}/status", status),
            (f"/api/labs/{LAB}/targets", targets),
            (f"/api/labs/{LAB}/events", events),
        ):
            r = await client.get(path)
            assert r.status == 200, path
            assert await r.json() == want, path
        r = await client.get("/api/labs")
        assert [lab["name"] for lab in await r.json()] == [s["name"] for s in every]

    with_client(test)
    assert {h["name"] for h in status["hosts"]} >= {"WebA1", "WebB1"}


def test_bad_requests_get_json_errors(lab: Path) -> None:
    async def test(client: TestClient) -> None:
        for path, code in (
            ("/api/labs/nosuch/status", 404),
            ("/api/labs/BAD_NAME/status", 400),
            (f"/api/labs/{LAB}/events?since=yesterday", 400),
            (f"/api/labs/{LAB}/metrics?minutes=-1", 400),
            (f"/api/labs/{LAB}/flows?client=not-an-ip", 400),
            (f"/api/labs/{LAB}/nothing", 404),
            ("/api/nothing", 404),
        ):
            r = await client.get(path)
            assert r.status == code, path
            assert "error" in await r.json(), path
        r = await client.get(f"/api/labs/{LAB}/flows?client=198.51.100.10")
        assert await r.json() == []  # its plan has no load balancer

    with_client(test)


def test_one_lab_only_hides_the_others(lab: Path) -> None:
    make_lab(lab.parent / "other")  # another state root: not seen

    async def run() -> None:
        app = make_app(LiveData(LAB))
        async with TestClient(TestServer(app)) as client:
            assert [x["name"] for x in await (await client.get("/api/labs")).json()] == [LAB]

    asyncio.run(run())


def test_without_allow_actions_every_post_is_refused(lab: Path) -> None:
    called: list[Any] = []

    async def test(client: TestClient) -> None:
        for path in (
            f"/api/labs/{LAB}/actions/fault",
            f"/api/labs/{LAB}/actions/scale",
            f"/api/labs/{LAB}/status",
            "/api/labs",
        ):
            r = await client.post(path, json={"host": "WebA1", "kind": "stop"})
            assert r.status == 403, path
            assert "read-only" in (await r.json())["error"]
        r = await client.get("/api/config")
        assert (await r.json())["allow_actions"] is False
        page = await (await client.get("/")).text()
        assert "actions-panel" in page  # removed by the page when actions are off

    with_client(test)
    assert not called


def test_with_allow_actions_the_cli_functions_are_called(
    lab: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    called: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        LiveData, "fault", lambda self, *a: called.append(("fault", *a)) or {"stopped": True}
    )
    monkeypatch.setattr(
        LiveData, "register", lambda self, *a: called.append(("reg", *a)) or {"target": "x"}
    )
    monkeypatch.setattr(LiveData, "scale", lambda self, *a: called.append(("scale", *a)) or {})

    async def test(client: TestClient) -> None:
        base = f"/api/labs/{LAB}/actions"
        r = await client.post(f"{base}/fault", json={"host": "WebA1", "kind": "stop"})
        assert r.status == 200
        assert (await r.json())["result"] == {"stopped": True}
        r = await client.post(
            f"{base}/deregister", json={"target_group": "WebTargets", "target": "WebA1"}
        )
        assert r.status == 200
        r = await client.post(f"{base}/scale", json={"group": "G", "desired": 3})
        assert r.status == 200
        for body, code in (
            ({"kind": "stop"}, 400),  # no host
            ([1, 2], 400),
            ({"group": "G", "desired": -1}, 400),
        ):
            kind = "scale" if isinstance(body, dict) and "group" in body else "fault"
            r = await client.post(f"{base}/{kind}", json=body)
            assert r.status == code
            assert "error" in await r.json()
        r = await client.post(f"{base}/reboot", json={})
        assert r.status == 404
        r = await client.post("/api/labs/nosuch/actions/fault", json={})
        assert r.status == 404

    with_client(test, allow_actions=True)
    assert called == [
        ("fault", LAB, "WebA1", "stop", None),
        ("reg", LAB, "deregister", "WebTargets", "WebA1", None, None),
        ("scale", LAB, "G", 3, None, None),
    ]


def test_an_unknown_fault_is_refused_as_the_cli_refuses_it(lab: Path) -> None:
    async def test(client: TestClient) -> None:
        r = await client.post(
            f"/api/labs/{LAB}/actions/fault", json={"host": "WebA1", "kind": "explode"}
        )
        assert r.status == 400
        assert "unknown fault" in (await r.json())["error"]

    with_client(test, allow_actions=True)


def test_the_stream_sends_new_events_and_health_transitions(
    lab: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server, "POLL_INTERVAL", 0.05)
    monkeypatch.setattr(LiveData, "sources", lambda self, name: [])

    async def test(client: TestClient) -> None:
        resp = await client.get(f"/api/labs/{LAB}/stream")
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        assert await resp.content.readline() == b": connected\n"
        await resp.content.readline()
        EventLog(lab).emit("WebA1", "Lab::Fault", "FAULT_INJECTED", "stop")
        with open(lab / TARGET_EVENTS_FILE, "a") as f:
            f.write(json.dumps({"time": time.time(), "target": "WebA1:80", "new": "unhealthy"}))
            f.write("\n")
        seen: dict[str, Any] = {}
        while len(seen) < 2:
            line = (await asyncio.wait_for(resp.content.readline(), 5)).decode()
            if line.startswith("event: "):
                kind = line[7:].strip()
                seen[kind] = json.loads((await resp.content.readline()).decode()[6:])
        assert seen["event"]["status"] == "FAULT_INJECTED"
        assert seen["health"]["new"] == "unhealthy"
        resp.close()

    with_client(test)


def test_read_new_lines_leaves_a_half_written_line(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    assert read_new_lines(path, 0) == ([], 0)
    path.write_text('{"a": 1}\n{"b"')
    rows, offset = read_new_lines(path, 0)
    assert rows == [{"a": 1}]
    assert offset == 9
    with open(path, "a") as f:
        f.write(": 2}\n")
    assert read_new_lines(path, offset)[0] == [{"b": 2}]


def test_the_page_and_its_libraries_are_served_locally(lab: Path) -> None:
    async def test(client: TestClient) -> None:
        page = await (await client.get("/")).text()
        assert "/vendor/d3.js" in page
        assert "/vendor/chart.js" in page
        assert "http" not in page
        for path in ("/static/app.js", "/static/app.css"):
            assert (await client.get(path)).status == 200
        assert (await client.get("/static/../server.py")).status == 404
        from testbed.vendor_js import missing_vendor_files

        if not missing_vendor_files():
            r = await client.get("/vendor/d3.js")
            assert r.status == 200
            assert "d3" in (await r.text())[:2000]

    with_client(test)


def test_a_100_host_lab_loads_in_under_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Everything the page asks for on load, from the real server, for 100 hosts."""
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path))
    rows = [target_row(f"Web{i:03d}", "healthy") for i in range(100)]
    monkeypatch.setattr(Lab, "targets", lambda self, tg=None, lb=None: rows)
    make_lab(tmp_path, extra_hosts=100)
    took: list[float] = []

    async def test(client: TestClient) -> None:
        start = time.perf_counter()
        paths = ["/", "/static/app.js", "/static/app.css", "/vendor/d3.js", "/vendor/chart.js"]
        paths += ["/api/config", "/api/labs"]
        paths += [f"/api/labs/{LAB}/{p}" for p in ("status", "topology", "targets", "events")]
        for r in await asyncio.gather(*(client.get(p) for p in paths)):
            await r.read()
        took.append(time.perf_counter() - start)
        status = await (await client.get(f"/api/labs/{LAB}/status")).json()
        assert len(status["hosts"]) >= 100
        topology = await (await client.get(f"/api/labs/{LAB}/topology")).json()
        assert {s["name"] for s in topology["subnets"]} == {"PubA", "PrivA", "PubB", "PrivB"}
        assert topology["has_internet_gateway"] is True

    with_client(test)
    print(f"page load (server side, 100 hosts): {took[0] * 1000:.0f} ms")
    assert took[0] < 1.0


def test_replay_reads_an_experiments_timeline(tmp_path: Path) -> None:
    (tmp_path / "meta.json").write_text('{"experiment": "failover", "detection_s": NaN}')
    (tmp_path / "metrics.csv").write_text(
        "time,namespace,metric,load_balancer,target_group,target,value,unit\n"
        "12.0,AWS/NetworkELB,NewFlowCount,MyNLB,,,5,Count/Second\n"
        "10.0,AWS/NetworkELB,NewFlowCount,MyNLB,,,3,Count/Second\n"
    )
    (tmp_path / "target_events.csv").write_text(
        "time,load_balancer,target_group,target,old,new,reason\n"
        "11.0,MyNLB,WebTargets,WebA1:80,healthy,unhealthy,Target.Timeout\n"
    )
    got = read_results(tmp_path)
    assert [r["value"] for r in got["metrics"]] == [3.0, 5.0]
    assert got["health"][0]["new"] == "unhealthy"
    assert (got["start"], got["end"]) == (10.0, 12.0)
    assert got["meta"] == {"experiment": "failover", "detection_s": None}  # JSON has no NaN

    async def test(client: TestClient) -> None:
        r = await client.get("/api/replay")
        assert (await r.json())["start"] == 10.0
        assert (await (await client.get("/api/config")).json())["replay"] is True

    with_client(test, results=tmp_path)


def test_console_help_teaches_and_bad_options_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit):
        main(["console", "--help"])
    out = capsys.readouterr().out
    assert "--allow-actions" in out
    assert "examples:" in out
    assert main(["console", "--results", str(tmp_path / "none")]) == 2
    assert main(["console", "--port", "0"]) == 2


def test_with_snmp_the_stream_sends_interface_rates(
    lab: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    row = {
        "time": time.time(),
        "namespace": "Lab/Host",
        "metric": "SnmpInOctets",
        "load_balancer": "",
        "target_group": "",
        "target": "WebA1/if2",
        "value": 120.0,
        "unit": "Bytes/Second",
    }
    windows: list[float] = []

    def rates(self: LiveData, name: str, window: float) -> list[dict[str, Any]]:
        windows.append(window)
        time.sleep(0.05)
        return [row]

    monkeypatch.setattr(LiveData, "snmp_rates", rates)
    monkeypatch.setattr(LiveData, "sources", lambda self, name: [])

    async def test(client: TestClient) -> None:
        resp = await client.get(f"/api/labs/{LAB}/stream")
        while True:
            line = (await asyncio.wait_for(resp.content.readline(), 5)).decode()
            if line == "event: metrics\n":
                break
        assert json.loads((await resp.content.readline()).decode()[6:]) == [row]
        got = await (await client.get(f"/api/labs/{LAB}/metrics?minutes=1")).json()
        assert row in got["rows"]
        resp.close()

    with_client(test, snmp=True)
    assert windows[0] == server.SNMP_WINDOW
