"""Pieces the load balancer experiments share (private to testbed.experiments): node
addresses, the lab's target health transitions and fault injections as TARGET_EVENT_COLUMNS
rows, and when a transition happened.

The generated stacks are in testbed.experiments.stacks; target health comes from the Lab API
(lab.targets, lab.wait_healthy, lab.target_events).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from testbed.errors import LabError
from testbed.experiments.stacks import LB, TARGET_GROUP
from testbed.lab.api import Lab
from testbed.messages import TargetEvent
from testbed.schemas import TARGET_EVENT_COLUMNS
from testbed.traffic import run_load
from testbed.waiting import WaitTimeout

FAULT_STATES = {"FAULT_INJECTED": "fault-injected", "FAULT_CLEARED": "fault-cleared"}


@contextmanager
def background_load(
    lab: Lab, url: str, params: Mapping[str, Any], duration: float, name: str
) -> Iterator[dict[str, Any]]:
    """Client1's open-loop load on `url` (params' rate and request_timeout, for up to
    `duration` s; it stops by itself) in a thread of its own while the block injects its
    faults. After the block the thread is joined and ["rows"] holds what run_load returned
    (an exception it raised is raised here)."""
    out: dict[str, Any] = {}

    def load() -> None:
        try:
            out["rows"] = run_load(
                lab,
                "Client1",
                url,
                requests=int(params["rate"] * duration) + 1,
                rate=params["rate"],
                duration=duration,
                concurrency=max(50, int(params["rate"] * params["request_timeout"] * 2)),
                timeout=params["request_timeout"],
            )
        except Exception as exc:  # re-raised in the caller's thread
            out["error"] = exc

    thread = threading.Thread(target=load, name=name)
    thread.start()
    try:
        yield out
    finally:
        thread.join()
    if "error" in out:
        raise out["error"]


def node_addresses(lab: Lab, lb: str = LB) -> dict[str, str]:
    """Public address of each node of `lb`, by AZ (where internet clients connect)."""
    for entry in lab.state.get("load_balancers", []):
        if entry["name"] == lb:
            return {n["az"]: n["public_ip"] for n in entry["nodes"]}
    raise LabError(f"lab {lab.name} has no load balancer {lb}")


def fault_events(lab: Lab, port: int, tg: str = TARGET_GROUP, lb: str = LB) -> list[TargetEvent]:
    """The lab's fault injections and repairs as target events ("fault-injected" /
    "fault-cleared"), keyed like the target's health events so testbed.analysis pairs them."""
    rows: list[TargetEvent] = []
    for ev in lab.events():
        state = FAULT_STATES.get(ev.status)
        if ev.resource_type == "Lab::Fault" and state:
            rows.append(
                {
                    "time": ev.time,
                    "load_balancer": lb,
                    "target_group": tg,
                    "target": f"{ev.logical_id}:{port}",
                    "old": "",
                    "new": state,
                    "reason": ev.reason,
                }
            )
    return rows


def event_time(
    lab: Lab,
    target: str,
    state: str,
    since: float,
    timeout: float,
) -> float | None:
    """Time of `target`'s first transition to `state` at or after `since`; None if it did
    not happen within `timeout` s (the experiment reports it missing, it goes on)."""
    try:
        return float(lab.wait_target_event(target, state, since, timeout)["time"])
    except WaitTimeout:
        return None


def write_events_csv(rows: Sequence[Mapping[str, object]], path: Path) -> pd.DataFrame:
    """target_events.csv (TARGET_EVENT_COLUMNS of target events, by time); the DataFrame
    written."""
    df = pd.DataFrame(rows, columns=list(TARGET_EVENT_COLUMNS))
    df = df.sort_values("time", kind="stable", ignore_index=True)
    df.to_csv(path, index=False)
    return df
