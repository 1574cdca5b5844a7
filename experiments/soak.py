"""Soak: a million TCP connections through an NLB, then a million HTTP requests through an ALB,
while targets are deregistered, registered again, stopped and made to fail their health
checks on a schedule; failed requests split into those AWS's semantics expect and the
others, and what the lab holds on the machine (process memory, conntrack entries, flows).

One lab from a generated stack (stack.yaml in the results; testbed.experiments._soak_stack):
an internet-facing NLB (TCP:9000, cross-zone on) and an internet-facing ALB (HTTP:80), each
over four http-backend targets of its own in two AZs, and two internet clients.

Load, per phase (nlb, then alb): chunks of `chunk` requests, each split between Client1
through the AZ-a node and Client2 through the AZ-b node at once (testbed.traffic.run_load:
a new TCP connection per NLB request, a new one per HTTP request unless alb_keepalive),
until the phase's count is reached or max_seconds have passed. A client never uses both
nodes: with client IP preservation and cross-zone, one source port used towards two nodes
at once reaches a target as one socket, and AWS's NLB breaks such connections too (its
troubleshooting guide says so); that is the client's doing, not what a soak measures.

Schedule, per phase (testbed.experiments._soak_schedule): in cycles while the load runs, a
target is deregistered (it drains, leaves after the delay, is registered again), another
stopped (fault stop; started again `down_for` s after it was marked unhealthy), then a third
refuses connections, so that its health checks fail (fault refuse; cleared likewise).

AWS lets requests fail only to a stopped or refusing target, from the fault until the load
balancer acts on its unhealthy state (the target event's `applied` time), plus `grace`:
requests in flight to it, sent to it before detection, and the NLB's established flows to it
reset by the connection termination on unhealthy targets. Such a failure (its backend that
target, or unknown) is "expected"; every other failure is "unexpected" (goal 0).

Sampled before the load, after every chunk and every `sample_s` (testbed.probes.footprint):
RSS of the holder, the controller and its standby, each HAProxy (master and worker) and
ovs-vswitchd (the machine's: other labs' flows and connections count too); conntrack
entries in the lab's zones; flows in its bridges. Memory growth counts after the warm-up,
the first half of a phase (until the schedule's events have met the full load, the working
sets grow: ovs-vswitchd's conntrack tables, malloc's arenas; RSS is a high-water mark), from
the phase's middle to its end (goal <= 10 %); the growth from the end of its first chunk is
reported too. Conntrack entries and flows must be back at their baseline (before any load)
at the end.

Writes summary.csv (phase, metric, value, unit, goal, met, detail), chunks.csv, events.csv
(the schedule), target_events.csv, errors.csv (every failed request with its class and
window), samples.csv, rates.csv (per second: requests, expected and unexpected failures)
and soak.png (RSS over time, requests and failures per second).
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd

from testbed.analysis import error_kind, failed
from testbed.errors import BadInput, LabError
from testbed.experiments._soak_report import Recorder, write_results
from testbed.experiments._soak_schedule import run_schedule
from testbed.experiments._soak_stack import CLIENTS, PHASES, Phase, node_ips, stack_yaml
from testbed.lab.api import Lab, random_name
from testbed.probes.footprint import bridge_flows, conntrack_entries, process_rss
from testbed.traffic import run_load
from testbed.waiting import WaitTimeout

TEMPLATE = "stack.yaml (generated into the results directory)"
PARAMS = {
    "nlb_connections": (1_000_000, "TCP connections through the NLB (at least)"),
    "alb_requests": (1_000_000, "HTTP requests through the ALB (at least)"),
    "chunk": (100_000, "requests per chunk (split between the two clients)"),
    "concurrency": (100, "requests in flight per client"),
    "rate": (0.0, "requests per second per phase (0: as fast as the clients go)"),
    "alb_keepalive": (False, "HTTP keep-alive from the clients to the ALB"),
    "timeout": (5.0, "per request, seconds"),
    "max_seconds": (2400.0, "bound per phase: its load stops then, count reached or not"),
    "phases": (["nlb", "alb"], "phases to run, in order"),
    "interval": (5, "health check interval, seconds (thresholds 2 and 2)"),
    "delay": (5, "deregistration delay, seconds"),
    "spacing": (10.0, "seconds before each event of the schedule (more than grace)"),
    "down_for": (5.0, "seconds a failed target stays failed once marked unhealthy"),
    "cycles": (0, "schedule cycles per phase (0: as many as its load lasts)"),
    "grace": (1.0, "seconds after the load balancer acted on an unhealthy target"),
    "sample_s": (5.0, "seconds between two samples of memory, conntrack and flows"),
    "settle_timeout": (180.0, "seconds to wait for conntrack entries to return to baseline"),
    "seed": (None, "recorded for re-runs"),
}


def run(params: dict[str, Any], results: Any) -> dict[str, Any]:
    """The soak (see the module doc); the summary for meta.json."""
    phases = [_phase(name) for name in params["phases"]]
    if params["chunk"] < len(CLIENTS) or params["concurrency"] < 1:
        raise BadInput(f"chunk must be at least {len(CLIENTS)} and concurrency at least 1")
    if params["spacing"] <= params["grace"]:
        raise BadInput("spacing must be longer than grace (the windows of two faults overlap)")
    template = results.file("stack.yaml")
    template.write_text(stack_yaml(int(params["interval"]), int(params["delay"])))
    rec = Recorder()
    with Lab.up(str(template), name=random_name("sk")) as lab:
        everyone = [t for p in phases for t in p.targets]
        healthy_s = lab.wait_healthy(targets=everyone, timeout=120)
        print(f"lab {lab.name}: every target healthy after {healthy_s:.1f} s", flush=True)
        baseline = {"conntrack": conntrack_entries(lab), "flows": bridge_flows(lab)}
        _sample(lab, rec, chunk=0)
        stop_sampling = threading.Event()
        sampler = threading.Thread(
            target=_sample_every, args=(lab, rec, params["sample_s"], stop_sampling), daemon=True
        )
        sampler.start()
        try:
            for phase in phases:
                _run_phase(lab, phase, params, rec)
        finally:
            stop_sampling.set()
            sampler.join()
        end = _settle(lab, baseline, everyone, params)
        target_events = lab.target_events()
        lab_name = lab.name
    results.write_meta(template=str(template), lab=lab_name)
    return write_results(results, rec, phases, baseline, end, target_events, params)


def _phase(name: str) -> Phase:
    if name not in PHASES:
        raise BadInput(f"unknown phase {name!r}", hint=f"phases: {', '.join(PHASES)}")
    return PHASES[name]


# ---- samples ---------------------------------------------------------------------------------
def _sample(lab: Lab, rec: Recorder, chunk: int = -1) -> None:
    """One sample of memory, conntrack entries and flows; chunk >= 0: taken after that
    chunk of the current phase (0: before its load), -1: a periodic one."""
    base = {"time": time.time(), "phase": rec.phase, "chunk": chunk}
    for row in process_rss(lab):
        what = {"what": "rss_kib", "process": row["process"], "pid": row["pid"]}
        rec.samples.append({**base, **what, "value": row["rss_kib"]})
    entries = sum(conntrack_entries(lab).values())
    rec.samples.append({**base, "what": "conntrack", "process": "", "pid": 0, "value": entries})
    flows = sum(sum(c.values()) for c in bridge_flows(lab).values())
    rec.samples.append({**base, "what": "flows", "process": "", "pid": 0, "value": flows})


def _sample_every(lab: Lab, rec: Recorder, every: float, stop: threading.Event) -> None:
    while not stop.wait(every):
        try:
            _sample(lab, rec)
        except (OSError, LabError, BadInput) as exc:  # a lost sample does not end the run
            print(f"  sample failed: {exc}", flush=True)


# ---- load ------------------------------------------------------------------------------------
def _run_phase(lab: Lab, phase: Phase, params: dict[str, Any], rec: Recorder) -> None:
    """Chunks of load until the count is reached or max_seconds pass, the schedule beside."""
    wanted = int(params[phase.count_param])
    urls = [phase.url(ip) for ip in node_ips(lab.state, phase.lb)]
    rec.phase = phase.name
    started = time.time()
    deadline = started + float(params["max_seconds"])
    _sample(lab, rec, chunk=0)
    print(
        f"phase {phase.name}: {wanted:,} {phase.unit} through {phase.lb} "
        f"({', '.join(urls)}), at most {params['max_seconds']:g} s",
        flush=True,
    )
    load_done = threading.Event()
    schedule = threading.Thread(
        target=run_schedule,
        args=(lab, phase, params, load_done, rec.events),
        name=f"schedule-{phase.name}",
    )
    schedule.start()
    done = number = 0
    try:
        while done < wanted and time.time() < deadline - 1.0:
            number += 1
            size = min(int(params["chunk"]), wanted - done)
            done += _run_chunk(lab, phase, params, rec, urls, number, size, deadline)
            _sample(lab, rec, chunk=number)
    finally:
        load_done.set()
        schedule.join()
    rec.phases.append(
        {
            "phase": phase.name,
            "start": started,
            "end": time.time(),
            "done": done,
            "wanted": wanted,
            "chunks": number,
        }
    )
    # Whatever the schedule left failed or unregistered is back before the next phase.
    lab.wait_healthy(phase.tg, phase.targets, timeout=120)


def _run_chunk(
    lab: Lab,
    phase: Phase,
    params: dict[str, Any],
    rec: Recorder,
    urls: list[str],
    number: int,
    size: int,
    deadline: float,
) -> int:
    """One chunk: both clients at once, each through its node; the requests done."""
    shares = [size // len(CLIENTS) + (i < size % len(CLIENTS)) for i in range(len(CLIENTS))]
    settings: dict[str, Any] = {
        "concurrency": int(params["concurrency"]),
        "timeout": float(params["timeout"]),
        "duration": max(1.0, deadline - time.time()),
    }
    if params["rate"]:
        settings["rate"] = float(params["rate"]) / len(CLIENTS)
    if not phase.network and params["alb_keepalive"]:
        settings["keepalive"] = True
    t0 = time.time()
    with ThreadPoolExecutor(len(CLIENTS)) as pool:
        futures = [
            pool.submit(run_load, lab, client, url, requests=n, **settings)
            for client, url, n in zip(CLIENTS, urls, shares)
        ]
        rows = pd.concat([f.result() for f in futures], ignore_index=True)
    seconds = time.time() - t0
    bad = failed(rows)
    rec.failures.append(rows[bad].assign(phase=phase.name, chunk=number))
    rec.rates.append(
        pd.DataFrame({"second": rows["start"].astype(float).floordiv(1.0), "n": 1})
        .groupby("second", as_index=False)
        .agg(requests=("n", "sum"))
        .assign(phase=phase.name)
    )
    errors = ", ".join(f"{k} {v}" for k, v in error_kind(rows[bad]).value_counts().items())
    rec.chunks.append(
        {
            "phase": phase.name,
            "chunk": number,
            "start": t0,
            "seconds": round(seconds, 3),
            "requests": len(rows),
            "ok": int((~bad).sum()),
            "failed": int(bad.sum()),
            "per_second": round(len(rows) / seconds, 1) if seconds else math.nan,
            "errors": errors or "-",
            "backends": ", ".join(
                f"{k} {v}" for k, v in rows["backend"].fillna("?").value_counts().items()
            ),
            "conntrack_entries": sum(conntrack_entries(lab).values()),
        }
    )
    print(
        f"  {phase.name} chunk {number}: {len(rows):,} {phase.unit} in {seconds:.1f} s "
        f"({len(rows) / seconds:,.0f}/s), {int(bad.sum())} failed"
        + (f" ({errors})" if errors else ""),
        flush=True,
    )
    return len(rows)


# ---- the end ---------------------------------------------------------------------------------
def _settle(
    lab: Lab, baseline: dict[str, Any], everyone: list[str], params: dict[str, Any]
) -> dict[str, Any]:
    """Conntrack entries and flows after the run: the flows once every target is healthy
    (and registered) again; the entries when back at their baseline, or after
    settle_timeout (the sweeper of OVS's userspace conntrack takes tens of seconds)."""
    lab.wait_healthy(targets=everyone, timeout=120)
    flows = bridge_flows(lab)
    before = sum(baseline["conntrack"].values())
    at_end = sum(conntrack_entries(lab).values())
    t0 = time.monotonic()
    try:
        lab.wait_for(
            lambda: sum(conntrack_entries(lab).values()) <= before,
            params["settle_timeout"],
            "conntrack entries back to their baseline",
            interval=1.0,
        )
        settled = True
    except WaitTimeout:
        settled = False
    return {
        "flows": flows,
        "conntrack_at_end": at_end,
        "conntrack_settled": sum(conntrack_entries(lab).values()),
        "settled": settled,
        "settle_s": time.monotonic() - t0,
    }
