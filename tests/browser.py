"""A headless Chromium for integration tests: Debian's `chromium`, driven over the DevTools
protocol (CDP) with aiohttp's websocket client (no browser download, no new dependency).

    from tests.browser import Browser, browser_available
    reason = browser_available()              # None when a browser can run, else why not
    require_browser()                         # pytest: skip with that reason (CI=true: fail)
    with Browser(width=1400, height=900) as b:
        b.open("http://127.0.0.1:8480/")      # navigates, returns after the load event
        b.eval("document.title")              # the JSON value; BrowserError on a JS exception
        b.wait_for("document.querySelectorAll('[data-host]').length > 3", timeout=10)
        b.screenshot(path)                    # a PNG of the viewport; returns the path
        b.console_errors()                    # uncaught exceptions, console.error, error logs
        b.wait_for_errors(n)                  # console_errors() once it holds n of them
        b.load_time_ms()                      # loadEventEnd - startTime of the last open

The browser runs in its own process group with a throw-away profile directory; leaving the
`with` block (normally or by an exception) closes it, kills whatever of its group is left (by
that group's id: never by name) and waits until none of its processes is alive. Background
networking (updates, metrics, safe browsing) is turned off: the browser only talks to the pages
it is sent to.

The DevTools protocol runs on a thread of its own (an asyncio loop), so events such as console
errors are recorded while the test does other things.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from testbed import vendor_js
from testbed.lab import procs

T = TypeVar("T")

START_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 30.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class BrowserError(RuntimeError):
    """The browser could not start, a command failed, or the page's JavaScript threw."""


class BrowserTimeout(BrowserError):
    """What was waited for did not happen in time."""


def browser_available() -> str | None:
    """None when a headless browser can be started here, else the reason to skip."""
    if vendor_js.chromium_path() is None:
        return "chromium is not installed (apt-get install chromium, or run scripts/provision)"
    return None


def require_browser() -> None:
    """Skip the calling test (or module fixture) with the reason when no browser can run;
    under CI=true fail instead: scripts/provision installs chromium, so a CI machine without
    it is broken."""
    import pytest  # only where tests call this

    reason = browser_available()
    if reason is None:
        return
    if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        pytest.fail(f"CI: {reason}")
    pytest.skip(reason)


def _flags(width: int, height: int, profile: Path) -> list[str]:
    flags = [
        "--headless=new",
        "--remote-debugging-port=0",  # any free port: written to DevToolsActivePort
        "--remote-debugging-address=127.0.0.1",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        "--hide-scrollbars",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        # Nothing but the pages it is sent to: no updates, sync, metrics or lookups.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--no-pings",
        "--metrics-recording-only",
        "--disable-features=Translate,MediaRouter,OptimizationHints",
        "about:blank",
    ]
    if os.geteuid() == 0:
        flags.insert(0, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    return flags


class Browser:
    """One headless Chromium with one page (see the module's docstring)."""

    def __init__(self, width: int = 1400, height: int = 900) -> None:
        self.width = width
        self.height = height
        self.proc: subprocess.Popen[bytes] | None = None
        self.pgid: int | None = None
        self._profile: Path | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict]] = {}
        self._session: str | None = None
        self._load_waiters: list[asyncio.Future[None]] = []
        self._errors: list[str] = []
        self._errors_seen = threading.Condition()
        self._closed_reason: str | None = None

    # --- the context manager ---------------------------------------------------------------

    def __enter__(self) -> Browser:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        chromium = vendor_js.chromium_path()
        if chromium is None:
            raise BrowserError(browser_available() or "no chromium")
        self._profile = Path(tempfile.mkdtemp(prefix="tb-browser-"))
        env = dict(os.environ)
        env["XDG_CONFIG_HOME"] = str(self._profile / "config")
        env["XDG_CACHE_HOME"] = str(self._profile / "cache")
        log = (self._profile / "chromium.log").open("wb")
        try:
            self.proc = subprocess.Popen(
                [chromium, *_flags(self.width, self.height, self._profile / "profile")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group: ended as one, by its id
            )
        finally:
            log.close()
        self.pgid = self.proc.pid
        browser_ws = self._devtools_url()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="browser-cdp", daemon=True
        )
        self._thread.start()
        self._run(self._connect(browser_ws))

    def _devtools_url(self) -> str:
        """The browser's websocket, from the DevToolsActivePort file it writes once listening."""
        assert self.proc is not None
        assert self._profile is not None
        active = self._profile / "profile" / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrowserError(
                    f"chromium exited with {self.proc.returncode} before listening:\n"
                    + self._log_tail()
                )
            lines = active.read_text().split("\n") if active.exists() else []
            if len(lines) >= 2 and lines[0].strip().isdigit() and lines[1].strip():
                return f"ws://127.0.0.1:{lines[0].strip()}{lines[1].strip()}"
            time.sleep(0.02)
        raise BrowserTimeout(
            f"chromium wrote no {active.name} in {START_TIMEOUT_S:.0f} s:\n" + self._log_tail()
        )

    def _log_tail(self, lines: int = 20) -> str:
        if self._profile is None:
            return ""
        try:
            text = (self._profile / "chromium.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        """End the browser and its whole process group, and remove its profile (idempotent)."""
        if self._loop is not None and self._loop.is_running():
            with contextlib.suppress(Exception):
                self._run(self._disconnect(), timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=10)
        if self._loop is not None and not self._loop.is_running():
            self._loop.close()
        self._loop = None
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)  # Browser.close asked it to exit
            self._kill_group()
            self.proc = None
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None

    def _kill_group(self) -> None:
        assert self.proc is not None
        assert self.pgid is not None
        if self.proc.poll() is None or procs.group_running(self.pgid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while procs.group_running(self.pgid) and time.monotonic() < deadline:
            time.sleep(0.02)
        left = procs.group_running(self.pgid)
        if left:
            raise BrowserError(f"chromium processes {left} (group {self.pgid}) did not end")

    # --- the protocol ----------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = COMMAND_TIMEOUT_S + 5) -> T:
        if self._loop is None:
            coro.close()
            raise BrowserError("the browser is not running")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise BrowserTimeout(f"no answer from the browser in {timeout:.0f} s") from None

    async def _connect(self, url: str) -> None:
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(url, max_msg_size=0, autoping=True)
        self._reader = asyncio.get_running_loop().create_task(self._read())
        target = await self._send("Target.createTarget", {"url": "about:blank"})
        attached = await self._send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        self._session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            await self._send(f"{domain}.enable")
        await self._send(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False},
        )

    async def _disconnect(self) -> None:
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._send("Browser.close", session=False), 5)
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._http is not None:
            await self._http.close()

    async def _send(self, method: str, params: dict | None = None, session: bool = True) -> dict:
        """One CDP command (to the page's session unless session=False); its result."""
        if self._ws is None or self._ws.closed:
            raise BrowserError(f"{method}: the connection to the browser is closed")
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session and self._session is not None:
            message["sessionId"] = self._session
        answer: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
        self._pending[ident] = answer
        try:
            await self._ws.send_str(json.dumps(message))
            reply = await asyncio.wait_for(answer, COMMAND_TIMEOUT_S)
        finally:
            self._pending.pop(ident, None)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error'].get('message', reply['error'])}")
        result: dict = reply.get("result", {})
        return result

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for msg in self._ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if "id" in data:
                    waiting = self._pending.get(data["id"])
                    if waiting is not None and not waiting.done():
                        waiting.set_result(data)
                else:
                    self._event(data.get("method", ""), data.get("params", {}))
        finally:
            self._closed_reason = "the browser closed the connection"
            for waiting in self._pending.values():
                if not waiting.done():
                    waiting.set_exception(BrowserError(self._closed_reason))

    def _event(self, method: str, params: dict) -> None:
        error = None
        if method == "Page.loadEventFired":
            for waiter in self._load_waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._load_waiters.clear()
        elif method == "Runtime.exceptionThrown":
            error = _exception_text(params.get("exceptionDetails", {}))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            error = "console.error: " + " ".join(_remote_text(a) for a in params.get("args", []))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            if str(entry.get("url", "")).endswith("/favicon.ico"):
                return  # the browser's own request, not the page's (a page without an icon)
            where = f" ({entry['url']})" if entry.get("url") else ""
            error = f"{entry.get('source', 'log')}: {entry.get('text', '')}{where}"
        if error is not None:
            with self._errors_seen:
                self._errors.append(error)
                self._errors_seen.notify_all()

    async def _navigate(self, url: str, timeout: float) -> None:
        loaded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._load_waiters.append(loaded)
        result = await self._send("Page.navigate", {"url": url})
        if result.get("errorText"):
            loaded.cancel()
            raise BrowserError(f"opening {url}: {result['errorText']}")
        try:
            await asyncio.wait_for(loaded, timeout)
        except TimeoutError:
            raise BrowserTimeout(f"{url} fired no load event in {timeout:.0f} s") from None

    async def _evaluate(self, expression: str) -> Any:
        result = await self._send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {_exception_text(result['exceptionDetails'])}")
        return result.get("result", {}).get("value")

    # --- what tests call -------------------------------------------------------------------

    def open(self, url: str, timeout: float = 30.0) -> None:
        """Navigate to url and return once its load event fired."""
        self._run(self._navigate(url, timeout), timeout=timeout + 5)

    def eval(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression (promises are awaited); BrowserError with
        the exception's text if it throws."""
        return self._run(self._evaluate(expression))

    def wait_for(self, expression: str, timeout: float = 10.0, interval: float = 0.05) -> Any:
        """Evaluate expression until it is truthy and return that value. Exceptions while
        waiting count as not yet (the page may still be building); BrowserTimeout after
        timeout seconds, with the last value or exception."""
        deadline = time.monotonic() + timeout
        last: str = "no evaluation"
        while True:
            try:
                value = self.eval(expression)
            except BrowserTimeout:
                raise
            except BrowserError as e:
                last = f"exception: {e}"
            else:
                if value:
                    return value
                last = f"value: {value!r}"
            if time.monotonic() >= deadline:
                raise BrowserTimeout(f"{expression} was not true in {timeout} s ({last})")
            time.sleep(interval)

    def screenshot(self, path: str | Path) -> Path:
        """A PNG of the viewport written to path (parents made); the path."""
        result = self._run(self._send("Page.captureScreenshot", {"format": "png"}))
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(result["data"]))
        return out

    def console_errors(self) -> list[str]:
        """Uncaught exceptions, console.error calls and error log entries (failed loads) seen
        since the browser started, oldest first. A missing /favicon.ico is not one: the
        browser asks for it on its own, at times, whatever the page says."""
        with self._errors_seen:
            return list(self._errors)

    def wait_for_errors(self, count: int, timeout: float = 10.0) -> list[str]:
        """console_errors() once it holds at least count errors (they arrive as events, a
        moment after what caused them); BrowserTimeout if it does not in time."""
        with self._errors_seen:
            if not self._errors_seen.wait_for(lambda: len(self._errors) >= count, timeout):
                raise BrowserTimeout(
                    f"{len(self._errors)} errors after {timeout} s, not {count}: {self._errors}"
                )
            return list(self._errors)

    def load_time_ms(self) -> float:
        """Navigation timing of the last open: loadEventEnd - startTime, in milliseconds."""
        value = self.eval(
            "(() => { const n = performance.getEntriesByType('navigation')[0];"
            " return n ? n.loadEventEnd - n.startTime : null; })()"
        )
        if value is None:
            raise BrowserError("no navigation timing: nothing was opened")
        return float(value)


def _remote_text(obj: dict) -> str:
    if "value" in obj:
        value = obj["value"]
        return value if isinstance(value, str) else json.dumps(value)
    return str(obj.get("description") or obj.get("unserializableValue") or obj.get("type"))


def _exception_text(details: dict) -> str:
    exception = details.get("exception") or {}
    text = exception.get("description") or details.get("text") or "exception"
    line = details.get("lineNumber")
    url = details.get("url")
    where = f" at {url}:{line + 1}" if url and line is not None else ""
    return f"{text.splitlines()[0]}{where}"


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG from its IHDR chunk; ValueError if data is not a PNG."""
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@contextlib.contextmanager
def serving(app: web.Application) -> Iterator[str]:
    """`app` on a free port of 127.0.0.1, served from a thread of this process; its URL.
    The pages a test drives (the console, a test page) are served this way."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
