"""testbed console on a real lab (templates/nlb.yaml), in a real browser (Debian's chromium,
headless, tests/browser.py): the API serves what the CLI prints; the page draws every host of
`testbed status`; a fault injected from the CLI turns its target unhealthy on the page within
the health-check time + 2 s; the graphs update; the idle stream costs < 5 % of one CPU; without
--allow-actions a POST is refused and the page has no action controls. A screenshot is kept
(the test's tmp_path, and results/console-test/<time>/console.png)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from testbed.cli import main
from testbed.console.data import LiveData
from testbed.console.server import make_app
from testbed.lab.api import Lab
from testbed.paths import TEMPLATES
from testbed.waiting import wait_for
from tests.browser import Browser, browser_available, serving
from tests.console_fake import make_lab, target_row

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
VOLATILE = ("LastCheck",)  # what a target's last health check said: changes every check


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab.up(str(TEMPLATES / "nlb.yaml")) as lab:
        lab.wait_healthy(timeout=60)
        yield lab


@contextmanager
def running_console(lab: Lab, *options: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """`testbed console LAB OPTIONS` as its own process; its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "testbed.cli", "console", lab.name, "--port", str(port), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def answers() -> bool:
            try:
                return bool(get(f"{url}/api/labs"))
            except OSError:
                return proc.poll() is not None  # ended: the assert below says why

        wait_for(answers, 20, "the console to answer")
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        yield url, proc
    finally:
        proc.send_signal(signal.SIGTERM)  # as Ctrl-C (SIGINT may be ignored in a background job)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def console(lab: Lab) -> Iterator[tuple[str, subprocess.Popen]]:
    """The read-only console of the module's lab."""
    with running_console(lab) as found:
        yield found


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def without_volatile(doc: dict[str, Any]) -> dict[str, Any]:
    rows = [
        {k: v for k, v in r.items() if k not in VOLATILE} for r in doc["TargetHealthDescriptions"]
    ]
    return {**doc, "TargetHealthDescriptions": rows}


def test_the_api_serves_what_the_cli_prints(
    lab: Lab, console: tuple[str, subprocess.Popen], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = console
    assert get(f"{url}/api/labs/{lab.name}/status") == cli_json(
        capsys, "status", lab.name, "--json"
    )
    api_targets = get(f"{url}/api/labs/{lab.name}/targets")
    assert without_volatile(api_targets) == without_volatile(
        cli_json(capsys, "targets", lab.name, "--json")
    )
    capsys.readouterr()
    assert main(["events", lab.name, "--json"]) == 0
    cli_events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    api_events = get(f"{url}/api/labs/{lab.name}/events")
    assert api_events[: len(cli_events)] == cli_events  # later events may have come since
    client = "198.51.100.10"
    assert get(f"{url}/api/labs/{lab.name}/flows?client={client}") == cli_json(
        capsys, "flows", lab.name, "--client", client, "--json"
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        get(f"{url}/api/labs/nosuch/status")
    assert err.value.code == 404
    assert "error" in json.loads(err.value.read())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def keep(screenshot: Path) -> Path:
    """A copy where CI and people look for outputs: results/console-test/<time>/."""
    folder = REPO / "results" / "console-test" / time.strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(screenshot, folder / screenshot.name))


@pytest.mark.serial  # idle CPU < 5 % and a 2 s bound: measured on a quiet machine
def test_the_page_shows_the_lab_live(
    lab: Lab, console: tuple[str, subprocess.Popen], tmp_path: Path
) -> None:
    reason = browser_available()
    if reason:
        pytest.skip(reason)
    url, proc = console
    hosts = {h["name"] for h in get(f"{url}/api/labs/{lab.name}/status")["hosts"]}
    group = next(g for lb in lab.plan.load_balancers for g in lb.target_groups)
    # The health-check time: the failed checks that make a target unhealthy, the last one
    # possibly waiting for its timeout.
    health = group.health
    detect_s = health.interval_s * health.unhealthy_threshold + health.timeout_s
    with Browser(1400, 1000) as b:
        b.open(f"{url}/")
        b.wait_for("document.body.dataset.ready === '1'", timeout=10)
        drawn = b.eval("Array.from(document.querySelectorAll('g.host')).map(g => g.dataset.host)")
        assert set(drawn) == hosts
        assert b.eval("document.querySelector('g.host[data-host=\"WebA1\"]').dataset.state") == (
            "healthy"
        )
        # Nothing on a read-only page can change the lab.
        assert b.eval("document.getElementById('actions-panel') === null")
        assert b.eval("document.querySelectorAll('button, form').length") == 0

        # The idle stream (the page connected, the lab quiet): < 5 % of one CPU.
        before, t0 = cpu_seconds(proc.pid), time.monotonic()
        b.wait_for("Number(document.querySelector('[data-chart=health]').dataset.points) > 0")
        time.sleep(10)  # a measurement window, not a wait for a state
        idle = (cpu_seconds(proc.pid) - before) / (time.monotonic() - t0)
        print(f"console CPU with an idle stream: {idle * 100:.2f} % of one CPU")
        assert idle < 0.05

        points = b.eval("Number(document.querySelector('[data-chart=health]').dataset.points)")
        faulted = time.time()
        assert main(["fault", lab.name, "WebA1", "stop"]) == 0
        b.wait_for(
            "document.querySelector('g.host[data-host=\"WebA1\"]').dataset.state === 'unhealthy'",
            timeout=detect_s + 2,
        )
        seen = time.time()
        event = lab.wait_target_event("WebA1:80", "unhealthy", faulted, timeout=2)
        turned, published = event["time"], event.get("applied", event["time"])
        print(
            f"WebA1 unhealthy on the page {seen - faulted:.1f} s after the fault (bound "
            f"{detect_s + 2:g} s), {seen - turned:.2f} s after the lab's health check said so, "
            f"{seen - published:.2f} s after the lab published it"
        )
        assert seen - published <= 2.0  # the console's own part of the delay
        assert (
            b.eval("document.querySelector('tr[data-target=\"WebA1\"]').dataset.state")
            == "unhealthy"
        )
        assert b.eval("document.getElementById('events').textContent").count("FAULT_INJECTED")
        b.wait_for(
            f"Number(document.querySelector('[data-chart=health]').dataset.points) > {points}"
        )
        assert b.console_errors() == []
        shot = b.screenshot(tmp_path / "console.png")
    print(f"screenshot: {shot}, kept as {keep(shot)}")


def test_without_allow_actions_a_post_is_refused(
    lab: Lab, console: tuple[str, subprocess.Popen]
) -> None:
    url, _ = console
    body = json.dumps({"host": "WebB1", "kind": "stop"}).encode()
    request = urllib.request.Request(
        f"{url}/api/labs/{lab.name}/actions/fault",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    assert err.value.code == 403
    assert "read-only" in json.loads(err.value.read())["error"]
    assert lab.target_state("WebTargets", "WebB1") == "healthy"
    assert not [e for e in lab.events() if e.status == "FAULT_INJECTED" and "WebB1" in e.logical_id]


def post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_with_allow_actions_the_page_can_change_the_lab(lab: Lab) -> None:
    """The fault the page sends is the CLI's: applied and written to the lab's events."""
    # WebA1 stopped first, whatever ran before (the page test leaves it stopped; it runs in
    # the serial pass, so this one may come first): the page's fault starts it again.
    main(["fault", lab.name, "WebA1", "stop"])  # exit 2 if it is stopped already: fine
    since = time.time()
    with running_console(lab, "--allow-actions") as (url, _):
        assert get(f"{url}/api/config")["allow_actions"] is True
        code, body = post(
            f"{url}/api/labs/{lab.name}/actions/fault", {"host": "WebA1", "kind": "start"}
        )
        assert code == 200, body
        code, body = post(
            f"{url}/api/labs/{lab.name}/actions/fault", {"host": "Client1", "kind": "stop"}
        )
        assert code == 400
        assert "faults apply to" in body["error"]
    assert [
        e.logical_id for e in lab.events() if e.time >= since and e.status == "FAULT_CLEARED"
    ] == ["WebA1"]
    lab.wait_target_state("WebTargets", "WebA1", "healthy", timeout=30)


@pytest.mark.serial  # a 1 s page-ready bound: measured on a quiet machine
def test_a_100_host_lab_loads_in_under_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real server and page in Chromium on a lab made of files (tests/console_fake.py):
    from navigation to every host drawn and coloured."""
    reason = browser_available()
    if reason:
        pytest.skip(reason)
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path))
    rows = [target_row(f"Web{i:03d}", "healthy" if i % 5 else "unhealthy") for i in range(100)]
    monkeypatch.setattr(Lab, "targets", lambda self, tg=None, lb=None: rows)
    monkeypatch.setattr(LiveData, "sources", lambda self, name: [])
    make_lab(tmp_path, extra_hosts=100)
    ready_ms = []
    with serving(make_app(LiveData())) as url, Browser(1400, 1000) as b:
        # The first load also pays for the browser's own start (its first navigation, its
        # JavaScript engine warming up); the second is the page in a running browser.
        for _ in range(2):
            b.open(f"{url}/")
            b.wait_for("document.body.dataset.ready === '1'", timeout=10)
            ready_ms.append(float(b.eval("document.body.dataset.readyMs")))
            assert b.eval("document.querySelectorAll('g.host').length") >= 100
            assert b.eval("document.querySelectorAll('g.host[data-state=unhealthy]').length") == 20
    print(
        f"100-host lab: page ready (data fetched, drawn, graphs made) {ready_ms[1]:.0f} ms after "
        f"navigation ({ready_ms[0]:.0f} ms in a browser that just started)"
    )
    assert ready_ms[1] < 1000


def test_replay_of_an_experiment_with_the_time_slider(tmp_path: Path) -> None:
    """--results: the health table and the request counts follow the slider."""
    reason = browser_available()
    if reason:
        pytest.skip(reason)
    (tmp_path / "meta.json").write_text('{"experiment": "failover", "detection_s": NaN}')
    (tmp_path / "target_events.csv").write_text(
        "time,load_balancer,target_group,target,old,new,reason\n"
        "100.0,MyNLB,WebTargets,WebA1:80,initial,healthy,2 consecutive health checks passed\n"
        "110.0,MyNLB,WebTargets,WebA1:80,healthy,unhealthy,Target.FailedHealthChecks\n"
    )
    (tmp_path / "requests.csv").write_text(
        "client,target,proto,seq,start,latency_ms,status,error,backend\n"
        + "".join(f"Client1,x,http,{i},{100 + i},1.0,200,,WebA1\n" for i in range(20))
    )
    with serving(make_app(LiveData(), results=tmp_path)) as url, Browser(1200, 900) as b:
        b.open(f"{url}/")
        b.wait_for("document.body.dataset.ready === '1'", timeout=10)
        state = "document.querySelector('tr[data-target=\"WebA1\"]').dataset.state"
        assert b.eval(state) == "unhealthy"  # the slider starts at the end
        b.eval(
            "(() => { const s = document.getElementById('slider'); s.value = 250;"
            " s.dispatchEvent(new Event('input')); })()"
        )  # 100 + 0.25 * 19 s: before the transition at 110
        assert b.eval(state) == "healthy"
        assert b.eval("document.getElementById('flows').textContent").startswith("5 requests")
        assert b.console_errors() == []
