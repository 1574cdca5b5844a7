"""The console's HTTP server (aiohttp.web): the page, /vendor/ (Debian's d3 and Chart.js),
the JSON API and one server-sent-events stream per lab.

API (GET unless said; errors are JSON {"error": ..., "hint": ...} with a 4xx status):
  /api/labs                               the labs served (name, state, alive, hosts)
  /api/labs/LAB/status                    = testbed status LAB --json
  /api/labs/LAB/targets[?tg=&lb=]         = testbed targets LAB [TG] [--lb LB] --json
  /api/labs/LAB/events[?since=EPOCH]      = testbed events LAB --json (as a list)
  /api/labs/LAB/metrics[?minutes=N]       rows of testbed metrics (METRIC_COLUMNS), last N min
  /api/labs/LAB/flows[?client=IP]         = testbed flows LAB [--client IP] --json
  /api/labs/LAB/topology                  subnets, route tables, security groups, ...
  /api/labs/LAB/asg                       the lab's Auto Scaling groups and instances
  /api/labs/LAB/stream                    text/event-stream: event, health, metrics
  POST /api/labs/LAB/actions/{fault,register,deregister,scale}   only with --allow-actions
  /api/replay                             with --results DIR: the experiment's timeline
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from testbed.console.data import LiveData, UnknownLab, read_new_lines
from testbed.console.replay import read_results
from testbed.errors import BadInput, TestbedError
from testbed.metrics.collector import rates
from testbed.vendor_js import VENDOR_FILES

STATIC = resources.files("testbed.console") / "static"
# How often the stream looks at the lab's event files, and samples its metrics (s).
POLL_INTERVAL = 0.25
METRIC_INTERVAL = 1.0
# Metric rows kept per lab (what /metrics?minutes=N can give back).
KEEP_SECONDS = 15 * 60
# With --snmp: the agents are polled in windows of this many seconds (rows come per window).
SNMP_WINDOW = 10.0
KEEPALIVE = 15.0  # an SSE comment this often, so proxies and browsers keep the stream
ACTIONS = ("fault", "register", "deregister", "scale")
CLOSE = "close"  # what a stream gets when the server stops

DATA_KEY: web.AppKey[LiveData] = web.AppKey("data", LiveData)
FEEDS_KEY: web.AppKey[dict[str, LabFeed]] = web.AppKey("feeds", dict)
OPTIONS_KEY: web.AppKey[dict[str, Any]] = web.AppKey("options", dict)


def error(status: int, message: str, hint: str | None = None) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if hint:
        body["hint"] = hint
    return web.json_response(body, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Callable) -> web.StreamResponse:
    """Every failure of an /api/ request as JSON: 404 unknown lab or path, 400 bad input,
    405 wrong method, 502 the lab did not answer; 403 for anything but GET without
    --allow-actions (nothing can change a lab then)."""
    if request.method not in ("GET", "HEAD") and not request.app[OPTIONS_KEY]["allow_actions"]:
        return error(
            403,
            "actions are off: this console is read-only",
            hint="start it with testbed console --allow-actions",
        )
    try:
        return await handler(request)
    except UnknownLab as exc:
        return error(404, exc.message, exc.hint)
    except BadInput as exc:
        return error(400, exc.message, exc.hint)
    except TestbedError as exc:
        return error(502, str(exc))
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.status < 400:
            raise
        return error(exc.status, exc.reason)


class LabFeed:
    """One producer per lab, shared by every client of its stream: follows the lab's event
    files (stat, then read what was appended) and samples its metrics, and keeps the last
    KEEP_SECONDS of metric rows. Runs while someone listens."""

    def __init__(self, data: LiveData, name: str, snmp: bool = False) -> None:
        self.data = data
        self.name = name
        self.snmp = snmp
        self.snmp_task: asyncio.Task[None] | None = None
        self.queues: set[asyncio.Queue[tuple[str, Any]]] = set()
        self.metrics: deque[dict[str, Any]] = deque()
        self.task: asyncio.Task[None] | None = None
        self.sources: list[Any] | None = None
        self.last: list[Any] = []
        self.last_t = 0.0

    def subscribe(self) -> asyncio.Queue[tuple[str, Any]]:
        q: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=1000)
        self.queues.add(q)
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done():
            self.task = loop.create_task(self.run())
        if self.snmp and (self.snmp_task is None or self.snmp_task.done()):
            self.snmp_task = loop.create_task(self.run_snmp())
        return q

    def unsubscribe(self, q: asyncio.Queue[tuple[str, Any]]) -> None:
        self.queues.discard(q)
        if not self.queues:
            for task in (self.task, self.snmp_task):
                if task is not None:
                    task.cancel()
            self.task = self.snmp_task = None

    def publish(self, kind: str, payload: Any) -> None:
        for q in self.queues:
            with contextlib.suppress(asyncio.QueueFull):  # a client that stopped reading
                q.put_nowait((kind, payload))

    def recent(self, minutes: float) -> list[dict[str, Any]]:
        since = time.time() - minutes * 60
        return [r for r in self.metrics if r["time"] >= since]

    def sample(self) -> list[dict[str, Any]]:
        """One period's metric rows (in a thread: the sources ask the lab's processes)."""
        if self.sources is None:
            self.sources = self.data.sources(self.name)
        now = time.time()
        current: list[Any] = []
        for src in self.sources:
            with contextlib.suppress(TestbedError, OSError, KeyError, ValueError):
                current.extend(src.snapshot())
        rows = rates(self.last, current, now - self.last_t, self.last_t) if self.last else []
        self.last, self.last_t = current, now
        return rows

    def keep(self, rows: list[dict[str, Any]]) -> None:
        """Keep and publish metric rows."""
        if not rows:
            return
        self.metrics.extend(rows)
        cutoff = time.time() - KEEP_SECONDS
        while self.metrics and self.metrics[0]["time"] < cutoff:
            self.metrics.popleft()
        self.publish("metrics", rows)

    async def run_snmp(self) -> None:
        """SNMP interface rates, one window after the other (the lab's pollers run in its
        hosts for each window; a lab without agents gives up at once)."""
        while True:
            try:
                rows = await asyncio.to_thread(self.data.snmp_rates, self.name, SNMP_WINDOW)
            except TestbedError as exc:
                self.publish("notice", {"snmp": str(exc)})
                return
            self.keep(rows)

    async def run(self) -> None:
        files = self.data.event_files(self.name)
        # Start at the end of each file: what happened before is in /events.
        offsets = {kind: read_new_lines(path, 0)[1] for kind, path in files.items()}
        next_sample = 0.0
        while True:
            for kind, path in files.items():
                rows, offsets[kind] = read_new_lines(path, offsets[kind])
                for row in rows:
                    self.publish(kind, row)
            if time.monotonic() >= next_sample:
                next_sample = time.monotonic() + METRIC_INTERVAL
                try:
                    rows = await asyncio.to_thread(self.sample)
                except TestbedError:
                    rows = []  # the lab is going away
                self.keep(rows)
            await asyncio.sleep(POLL_INTERVAL)


def feed(request: web.Request, name: str) -> LabFeed:
    feeds = request.app[FEEDS_KEY]
    if name not in feeds:
        feeds[name] = LabFeed(request.app[DATA_KEY], name, request.app[OPTIONS_KEY]["snmp"])
    return feeds[name]


def lab_of(request: web.Request) -> str:
    return request.app[DATA_KEY].check(request.match_info["lab"])


async def blocking(func: Callable[..., Any], *args: Any) -> Any:
    """Run a call that reads files or asks the lab's processes off the event loop."""
    return await asyncio.to_thread(func, *args)


# ---- handlers -------------------------------------------------------------------------------
async def index(request: web.Request) -> web.StreamResponse:
    return web.Response(
        text=(STATIC / "index.html").read_text(encoding="utf-8"), content_type="text/html"
    )


async def static_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    types = {"app.js": "application/javascript", "app.css": "text/css"}
    if name not in types:
        raise web.HTTPNotFound()
    return web.Response(text=(STATIC / name).read_text(encoding="utf-8"), content_type=types[name])


async def vendor(request: web.Request) -> web.StreamResponse:
    path = VENDOR_FILES.get(request.match_info["name"])
    if path is None or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Content-Type": "application/javascript"})


async def config(request: web.Request) -> web.StreamResponse:
    """What the page needs to know of the server: actions allowed, replay or live."""
    opts = request.app[OPTIONS_KEY]
    return web.json_response(
        {
            "allow_actions": opts["allow_actions"],
            "replay": opts["results"] is not None,
            "only": request.app[DATA_KEY].only,
            "metric_interval": METRIC_INTERVAL,
        }
    )


async def labs(request: web.Request) -> web.StreamResponse:
    return web.json_response(await blocking(request.app[DATA_KEY].labs))


async def status(request: web.Request) -> web.StreamResponse:
    name = lab_of(request)
    return web.json_response(await blocking(request.app[DATA_KEY].status, name))


async def targets(request: web.Request) -> web.StreamResponse:
    name = lab_of(request)
    q = request.query
    return web.json_response(
        await blocking(request.app[DATA_KEY].targets, name, q.get("tg"), q.get("lb"))
    )


def number(request: web.Request, key: str, default: float, low: float, high: float) -> float:
    """A numeric query parameter in [low, high]; BadInput otherwise."""
    raw = request.query.get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadInput(f"{key}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise BadInput(f"{key}={raw} is outside {low:g}..{high:g}")
    return value


async def events(request: web.Request) -> web.StreamResponse:
    name = lab_of(request)
    since = number(request, "since", 0.0, 0.0, 1e12)
    return web.json_response(await blocking(request.app[DATA_KEY].events, name, since))


async def metrics(request: web.Request) -> web.StreamResponse:
    name = lab_of(request)
    minutes = number(request, "minutes", 5.0, 0.0, KEEP_SECONDS / 60)
    f = feed(request, name)
    return web.json_response({"interval": METRIC_INTERVAL, "rows": f.recent(minutes)})


async def flows(request: web.Request) -> web.StreamResponse:
    name = lab_of(request)
    client = request.query.get("client") or None
    return web.json_response(await blocking(request.app[DATA_KEY].flows, name, client))


async def topology(request: web.Request) -> web.StreamResponse:
    name = lab_of(request)
    return web.json_response(await blocking(request.app[DATA_KEY].topology, name))


async def asg(request: web.Request) -> web.StreamResponse:
    name = lab_of(request)
    return web.json_response(await blocking(request.app[DATA_KEY].asg, name))


async def stream(request: web.Request) -> web.StreamResponse:
    name = lab_of(request)
    f = feed(request, name)
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await resp.prepare(request)
    q = f.subscribe()
    try:
        await resp.write(b": connected\n\n")
        while True:
            try:
                kind, payload = await asyncio.wait_for(q.get(), KEEPALIVE)
            except TimeoutError:
                await resp.write(b": keepalive\n\n")
                continue
            if kind == CLOSE:
                break
            await resp.write(f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        f.unsubscribe(q)
    return resp


async def action(request: web.Request) -> web.StreamResponse:
    if not request.app[OPTIONS_KEY]["allow_actions"]:
        return error(
            403,
            "actions are off: this console is read-only",
            hint="start it with testbed console --allow-actions",
        )
    name = lab_of(request)
    kind = request.match_info["action"]
    if kind not in ACTIONS:
        return error(404, f"no action {kind!r}", hint=f"actions: {', '.join(ACTIONS)}")
    try:
        body = await request.json()
    except ValueError:
        raise BadInput("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadInput("the body must be a JSON object")
    data = request.app[DATA_KEY]
    if kind == "fault":
        host, fault = text(body, "host"), text(body, "kind")
        value = body.get("value")
        result = await blocking(
            data.fault, name, host, fault, None if value is None else str(value)
        )
    elif kind in ("register", "deregister"):
        port = integer(body, "port")
        result = await blocking(
            data.register, name, kind, text(body, "target_group"), text(body, "target"),
            port, body.get("lb"),
        )  # fmt: skip
    else:
        result = await blocking(
            data.scale, name, text(body, "group"), integer(body, "desired"),
            integer(body, "min"), integer(body, "max"),
        )  # fmt: skip
    return web.json_response({"action": kind, "result": result})


def text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise BadInput(f"{key!r} is required (a string)")
    return value


def integer(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadInput(f"{key!r} must be a non-negative integer")
    return value


async def replay(request: web.Request) -> web.StreamResponse:
    results = request.app[OPTIONS_KEY]["results"]
    if results is None:
        return error(404, "no results folder", hint="testbed console --results DIR")
    return web.json_response(await blocking(read_results, results))


async def not_found(request: web.Request) -> web.StreamResponse:
    return error(404, f"no such API path {request.path}")


def make_app(
    data: LiveData | None = None,
    allow_actions: bool = False,
    results: Path | None = None,
    snmp: bool = False,
) -> web.Application:
    """The console application (served by `testbed console`, tested with aiohttp's client)."""
    app = web.Application(middlewares=[json_errors])
    app[DATA_KEY] = data or LiveData()
    app[FEEDS_KEY] = {}
    app[OPTIONS_KEY] = {"allow_actions": allow_actions, "results": results, "snmp": snmp}
    r = app.router
    r.add_get("/", index)
    r.add_get("/static/{name}", static_file)
    r.add_get("/vendor/{name}", vendor)
    r.add_get("/api/config", config)
    r.add_get("/api/labs", labs)
    r.add_get("/api/replay", replay)
    for path, handler in (
        ("status", status),
        ("targets", targets),
        ("events", events),
        ("metrics", metrics),
        ("flows", flows),
        ("topology", topology),
        ("asg", asg),
        ("stream", stream),
    ):
        r.add_get(f"/api/labs/{{lab}}/{path}", handler)
    r.add_post("/api/labs/{lab}/actions/{action}", action)
    r.add_route("*", "/api/{tail:.*}", not_found)

    async def stop_feeds(app: web.Application) -> None:
        # End every open stream (else the server waits for them when it stops).
        for f in app[FEEDS_KEY].values():
            f.publish(CLOSE, None)
            for task in (f.task, f.snmp_task):
                if task is not None:
                    task.cancel()

    app.on_shutdown.append(stop_feeds)
    return app
