"""The soak's schedule (private to testbed.experiments.soak): targets deregistered and
registered again, stopped and refusing, in cycles while a phase's load runs.

A cycle: `spacing` s, then a deregistration and a stop start (on two targets); once the
stopped target's unhealthy state is in force (or it was repaired without), `spacing` s
more and a third target refuses connections. The two faults never overlap, so every
expected error belongs to one of them; the deregistration (no error expected) runs beside.
The victims rotate over the phase's targets from cycle to cycle. An event that started
always completes: a failed target is repaired, a deregistered one registered again.

Each event is a row: phase, event (id), cycle, kind, target, action (when it was asked
for), detected (draining / unhealthy event), applied (when the load balancer had the
unhealthy state), removed (end of the deregistration delay), repair (registered again,
backend started or fault cleared), healthy (healthy again), error ("" if all went well).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from testbed.errors import BadInput, LabError
from testbed.experiments._soak_stack import Phase
from testbed.lab.api import Lab
from testbed.waiting import WaitTimeout

KINDS = ("deregister", "stop", "refuse")
REPAIR = {"stop": "start", "refuse": "clear"}  # the faults and what undoes them
EVENT_COLUMNS = (
    "phase",
    "event",
    "cycle",
    "kind",
    "target",
    "action",
    "detected",
    "applied",
    "removed",
    "repair",
    "healthy",
    "error",
)


def run_schedule(
    lab: Lab,
    phase: Phase,
    params: dict[str, Any],
    load_done: threading.Event,
    events: list[dict[str, Any]],
) -> None:
    """Cycles (params["cycles"], 0: no limit) until `load_done` is set; rows into `events`."""
    cycle = 0
    while not params["cycles"] or cycle < params["cycles"]:
        workers: list[threading.Thread] = []
        fault_over: threading.Event | None = None  # the previous fault's window closed
        for i, kind in enumerate(KINDS):
            if kind in REPAIR and fault_over is not None:
                fault_over.wait()
            if load_done.wait(params["spacing"]):  # spaces the events; ends with the load
                break
            window_closed = threading.Event()
            worker = threading.Thread(
                target=_event,
                args=(lab, phase, params, events, kind, cycle, window_closed),
                kwargs={"victim": phase.targets[(cycle + i) % len(phase.targets)]},
                name=f"{phase.name}-{cycle}-{kind}",
            )
            worker.start()
            workers.append(worker)
            if kind in REPAIR:
                fault_over = window_closed
        for worker in workers:
            worker.join()
        if load_done.is_set():
            return
        cycle += 1


def _event(
    lab: Lab,
    phase: Phase,
    params: dict[str, Any],
    events: list[dict[str, Any]],
    kind: str,
    cycle: int,
    window_closed: threading.Event,
    victim: str,
) -> None:
    """One event; what went wrong is recorded in its row (the run goes on)."""
    row: dict[str, Any] = dict.fromkeys(EVENT_COLUMNS)
    row.update(
        phase=phase.name,
        event=f"{phase.name}-{cycle}-{kind}",
        cycle=cycle,
        kind=kind,
        target=victim,
        action=time.time(),
        error="",
    )
    try:
        ACTIONS[kind](lab, phase, params, row, window_closed.set)
    except (LabError, BadInput) as exc:
        row["error"] = (row["error"] + "; " if row["error"] else "") + str(exc)[:300]
    finally:
        window_closed.set()
        events.append(row)
    if row["error"]:
        print(f"  {row['event']} on {victim}: {row['error']}", flush=True)


def _health_wait(params: dict[str, Any]) -> float:
    """How long a health transition may take: three intervals and slack."""
    return 3 * float(params["interval"]) + 15.0


def _deregister(
    lab: Lab,
    phase: Phase,
    params: dict[str, Any],
    row: dict[str, Any],
    _window_closed: Callable[[], None],
) -> None:
    """Deregister, wait for the end of the delay, register again, wait until healthy."""
    key = phase.key(row["target"])
    lab.deregister(phase.tg, row["target"])
    row["detected"] = lab.wait_target_event(key, "draining", row["action"] - 1.0, 15.0)["time"]
    removed = lab.wait_target_event(key, "", row["action"], float(params["delay"]) + 15.0)
    row["removed"] = removed["time"]
    row["repair"] = time.time()
    lab.register(phase.tg, row["target"])
    healthy = lab.wait_target_event(key, "healthy", row["repair"], _health_wait(params))
    row["healthy"] = healthy["time"]


def _fault(
    lab: Lab,
    phase: Phase,
    params: dict[str, Any],
    row: dict[str, Any],
    window_closed: Callable[[], None],
) -> None:
    """stop or refuse: until marked unhealthy, `down_for` s more, then repaired."""
    key = phase.key(row["target"])
    host = lab.host(row["target"])
    host.fault(row["kind"])
    try:
        event = lab.wait_target_event(key, "unhealthy", row["action"], _health_wait(params))
        row["detected"] = event["time"]
        row["applied"] = event.get("applied", event["time"])
        window_closed()
        time.sleep(params["down_for"])  # spaces the schedule: the target stays failed
    except WaitTimeout as exc:
        row["error"] = f"never marked unhealthy: {exc}"[:300]
    finally:
        host.fault(REPAIR[row["kind"]])
        row["repair"] = time.time()
    healthy = lab.wait_target_event(key, "healthy", row["repair"], _health_wait(params))
    row["healthy"] = healthy["time"]


ACTIONS = {"deregister": _deregister, "stop": _fault, "refuse": _fault}
