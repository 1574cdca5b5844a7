"""The poller: many agents at once (asyncio), every interval, for a duration; rows to CSV.

Runs inside a lab host (the "vantage", see testbed.snmp.vantage), started as

    python -m testbed.snmp.poller SPEC.json

SPEC holds the agents (host, ip, credentials), the objects, interval, duration, timeout,
retries and the output files. Writes one row per object instance per poll
(testbed.schemas.SNMP_COLUMNS) to `out`, one row per poll of an agent to `polls_out`, and one
JSON progress line per second on stdout. An agent that stops answering gives rows with
error "timeout" and the poller carries on; SIGTERM/SIGINT end it early, with every row so
far written. `mode: get | walk` asks once instead and writes the rows as JSON lines.
"""

from __future__ import annotations

import asyncio
import csv
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from testbed.schemas import SNMP_COLUMNS
from testbed.snmp import mibs
from testbed.snmp.client import Agent, Credentials, PollResult

POLL_COLUMNS = ("time", "host", "latency_ms", "rows", "error")


@dataclass
class Tally:
    """Running counts for progress lines and the final summary."""

    agents: int = 0
    polls: int = 0
    rows: int = 0
    values: int = 0  # rows with a value (no error)
    timeouts: int = 0
    errors: int = 0
    answering: dict[str, bool] = field(default_factory=dict)

    def add(self, host: str, result: PollResult) -> None:
        self.polls += 1
        self.rows += len(result.rows)
        self.values += sum(1 for r in result.rows if not r["error"])
        self.timeouts += sum(1 for r in result.rows if r["error"] == "timeout")
        self.errors += sum(1 for r in result.rows if r["error"] and r["error"] != "timeout")
        self.answering[host] = not result.error

    def as_dict(self) -> dict[str, Any]:
        return {
            "time": round(time.time(), 3),
            "agents": self.agents,
            "polls": self.polls,
            "rows": self.rows,
            "values": self.values,
            "timeouts": self.timeouts,
            "errors": self.errors,
            "answering": sum(self.answering.values()),
        }


def make_agents(engine: Any, spec: dict[str, Any]) -> list[Agent]:
    """Agent objects for the spec's agents."""
    return [
        Agent(
            engine,
            a["host"],
            a["ip"],
            Credentials(**a["credentials"]),
            timeout=float(spec.get("timeout", 1.0)),
            retries=int(spec.get("retries", 1)),
        )
        for a in spec["agents"]
    ]


class Writer:
    """Appends rows to the CSV files, flushed after every poll so partial runs keep data."""

    def __init__(self, out: Path, polls_out: Path | None) -> None:
        self.files: list[IO[str]] = []
        self.rows = self._open(out, SNMP_COLUMNS)
        self.polls = self._open(polls_out, POLL_COLUMNS) if polls_out else None

    def _open(self, path: Path, columns: tuple[str, ...]) -> csv.DictWriter[str]:
        handle = open(path, "w", newline="")  # noqa: SIM115 (closed with the poller)
        self.files.append(handle)
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        return writer

    def write(self, host: str, started: float, result: PollResult) -> None:
        self.rows.writerows(result.rows)
        if self.polls is not None:
            self.polls.writerow(
                {
                    "time": round(started, 6),
                    "host": host,
                    "latency_ms": round(result.latency * 1000, 3),
                    "rows": len(result.rows),
                    "error": result.error,
                }
            )
        for handle in self.files:
            handle.flush()

    def close(self) -> None:
        for handle in self.files:
            handle.close()


async def _poll_agent(
    agent: Agent,
    targets: list[mibs.Target],
    start: float,
    end: float,
    interval: float,
    stop: asyncio.Event,
    writer: Writer,
    tally: Tally,
) -> None:
    """Poll one agent at start, start + interval, ... until end (or stop)."""
    tick = 0
    while not stop.is_set():
        due = start + tick * interval
        now = time.time()
        if due >= end or now >= end:
            return
        if due > now:
            try:
                await asyncio.wait_for(stop.wait(), due - now)
                return
            except TimeoutError:
                pass
        started = time.time()
        result = await agent.poll(targets)
        writer.write(agent.host, started, result)
        tally.add(agent.host, result)
        # The next tick still ahead: a slow poll skips ticks rather than bunching up.
        tick = max(tick + 1, int((time.time() - start) / interval) + 1) if interval else tick


async def _report(tally: Tally, stop: asyncio.Event, every: float) -> None:
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), every)
        except TimeoutError:
            print(json.dumps(tally.as_dict()), flush=True)


async def run_poll(spec: dict[str, Any]) -> dict[str, Any]:
    """Poll every agent of `spec` until its duration ends (or SIGTERM); the final tally."""
    from pysnmp.hlapi.v3arch.asyncio import SnmpEngine

    targets = [mibs.resolve(o) for o in spec["objects"]]
    engine = SnmpEngine()
    agents = make_agents(engine, spec)
    tally = Tally(agents=len(agents))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    writer = Writer(Path(spec["out"]), Path(spec["polls_out"]) if spec.get("polls_out") else None)
    start = float(spec.get("start") or time.time())
    reporter = asyncio.create_task(_report(tally, stop, float(spec.get("progress_every", 1.0))))
    try:
        # Agents are spread over the interval: the same load without a burst every tick.
        interval = float(spec["interval"])
        end = start + float(spec["duration"])
        spread = interval / max(1, len(agents))
        await asyncio.gather(
            *(
                _poll_agent(a, targets, start + i * spread, end, interval, stop, writer, tally)
                for i, a in enumerate(agents)
            )
        )
    finally:
        stop.set()
        await reporter
        writer.close()
        engine.close_dispatcher()
    return tally.as_dict()


async def run_once(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """GET, walk or SET (spec['mode']) the spec's objects on its single agent; the rows."""
    from pysnmp.hlapi.v3arch.asyncio import SnmpEngine

    engine = SnmpEngine()
    agent = make_agents(engine, spec)[0]
    targets = [mibs.resolve(o) for o in spec["objects"]]
    try:
        if spec["mode"] == "set":
            (target,) = targets
            oid = target.oid + ((0,) if target.request == "scalar" else ())
            return [await agent.set(oid, spec["type"], spec["value"])]
        if spec["mode"] == "get":
            return await agent.get(targets)
        rows = []
        for target in targets:
            rows += await agent.walk(target)
        return rows
    finally:
        engine.close_dispatcher()


def main(argv: list[str] | None = None) -> int:
    """Entry point: python -m testbed.snmp.poller SPEC.json."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m testbed.snmp.poller SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(args[0]).read_text())
    if spec.get("mode", "poll") == "poll":
        final = asyncio.run(run_poll(spec))
        print(json.dumps(dict(final, done=True)), flush=True)
        return 0
    rows = asyncio.run(run_once(spec))
    with open(spec["out"], "w") as handle:
        for r in rows:
            handle.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
