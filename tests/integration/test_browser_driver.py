"""The headless browser driver (tests/browser.py) against a tiny page served on 127.0.0.1 by
aiohttp: no lab. What the console's page tests rely on: open, eval, wait_for, screenshots that
decode, JavaScript errors seen, and no chromium process left behind."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest
from aiohttp import web

from testbed import vendor_js
from testbed.lab import procs
from tests.browser import (
    Browser,
    BrowserError,
    BrowserTimeout,
    png_size,
    require_browser,
    serving,
)


@pytest.fixture(autouse=True, scope="module")
def browser_here() -> None:
    require_browser()  # skipped with the reason without chromium (CI=true: failed)


PAGE = """<!doctype html>
<html><head><title>driver test</title><script src="/missing.js"></script></head>
<body><div id="hosts"></div>
<script>
  // Hosts appear after the page loaded, the way the console fills its drawing from the API.
  fetch("/api/hosts").then(r => r.json()).then(names => {
    for (const n of names) {
      const d = document.createElement("div");
      d.dataset.host = n; d.textContent = n;
      document.getElementById("hosts").appendChild(d);
    }
  });
</script></body></html>
"""
HOSTS = ["i-a1", "i-a2", "i-b1", "i-b2", "nlb-a"]


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """The page and its API on 127.0.0.1, a free port, served from a thread."""
    app = web.Application()
    app.router.add_get("/", _index)
    app.router.add_get("/api/hosts", _hosts)
    app.router.add_get("/vendor.html", _vendor_page)
    for name, path in vendor_js.VENDOR_FILES.items():
        if path.is_file():
            app.router.add_get(f"/vendor/{name}", _file(path))
    with serving(app) as url:
        yield url


async def _index(_request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html")


def _file(path):
    async def serve(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(path)

    return serve


async def _vendor_page(_request: web.Request) -> web.Response:
    scripts = "".join(f'<script src="/vendor/{n}"></script>' for n in vendor_js.VENDOR_FILES)
    return web.Response(
        text=f"<!doctype html><html><head>{scripts}</head></html>", content_type="text/html"
    )


async def _hosts(_request: web.Request) -> web.Response:
    return web.json_response(HOSTS)


def _closed_port() -> int:
    """A port nothing listens on (just freed by the kernel)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _gone(pid: int, pgid: int) -> None:
    assert procs.group_running(pgid) == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_open_eval_wait_screenshot_and_errors(site, tmp_path):
    with Browser(width=1000, height=700) as b:
        pid, pgid = b.proc.pid, b.pgid
        assert procs.group_running(pgid)
        b.open(site + "/")
        assert b.eval("document.title") == "driver test"
        assert b.eval("({a: [1, 2], b: null})") == {"a": [1, 2], "b": None}
        count = b.wait_for(
            "document.querySelectorAll('[data-host]').length >= 5 && "
            "document.querySelectorAll('[data-host]').length",
            timeout=10,
        )
        assert count == len(HOSTS)
        assert (
            b.eval("[...document.querySelectorAll('[data-host]')].map(e => e.dataset.host)")
            == HOSTS
        )
        assert 0 < b.load_time_ms() < 10_000

        shot = b.screenshot(tmp_path / "shots" / "page.png")
        data = shot.read_bytes()
        assert png_size(data) == (1000, 700)

        # The script that does not exist is an error the page tests can see.
        assert any("missing.js" in e for e in b.console_errors())

        with pytest.raises(BrowserError, match="ReferenceError"):
            b.eval("notDefinedAnywhere()")
        before = len(b.console_errors())
        b.eval("setTimeout(() => { throw new Error('thrown later') }, 0); 1")
        b.eval("console.error('said', 42); 1")
        errors = b.wait_for_errors(before + 2)
        assert any("thrown later" in e for e in errors)
        assert any("console.error: said 42" in e for e in errors)

        with pytest.raises(BrowserTimeout, match="was not true"):
            b.wait_for("document.querySelectorAll('[data-host]').length > 99", timeout=0.3)
    _gone(pid, pgid)


def test_an_exception_inside_still_ends_the_browser(site):
    seen: list[int] = []

    def failing_test() -> None:
        with Browser() as b:
            seen.extend([b.proc.pid, b.pgid])
            b.open(site + "/")
            raise RuntimeError("the test failed")

    with pytest.raises(RuntimeError, match="the test failed"):
        failing_test()
    _gone(*seen)


def test_a_page_that_cannot_be_reached_is_an_error(site):
    with Browser() as b:
        with pytest.raises(BrowserError, match="ERR_CONNECTION_REFUSED"):
            b.open(f"http://127.0.0.1:{_closed_port()}/")
        b.open(site + "/")
        assert b.eval("document.title") == "driver test"


def test_the_consoles_javascript_libraries_load_from_the_machine(site):
    """d3 and Chart.js as Debian installs them (testbed.vendor_js) run in the browser."""
    missing = vendor_js.missing_vendor_files()
    if missing and os.environ.get("CI", "").strip().lower() not in ("true", "1", "yes"):
        pytest.skip(vendor_js.missing_message(missing))
    assert not missing, vendor_js.missing_message(missing)  # CI: scripts/provision ran
    with Browser() as b:
        b.open(site + "/vendor.html")
        assert b.eval("d3.version").startswith("3.")
        assert b.eval("Chart.version").startswith("3.")
        assert b.console_errors() == []
