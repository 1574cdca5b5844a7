"""Failover timing from a target-event log (TARGET_EVENT_COLUMNS) and request rows.

Definitions (all times epoch seconds; durations in seconds):
- fault time F: given, else the first event whose `new` is "fault-injected" (for the target
  if one is given), else meta.json "fault_time".
- target: given, else the target of that fault event, else the first target that turned
  "unhealthy" at or after F.
- detection time = D - F, where D is the target's first transition to "unhealthy" at or after
  F (AWS: about interval x unhealthy threshold, plus up to one timeout).
- repair time R: given, else the first "fault-cleared" event of the target after F, else
  meta.json "repair_time"; none when the fault is never repaired.
- recovery time = H - R, where H is the target's first transition to "healthy" after both D
  and R (AWS: about interval x healthy threshold). NaN without R or H.
- client-visible error window = E_last - E_first, the start times of the first and the last
  failed request (testbed.analysis.stats.failed) that started at or after F, whichever
  client and target; `errors_until` = E_last - F is how long after the fault clients still
  saw errors.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from testbed.analysis.stats import failed
from testbed.errors import BadInput

FAULT_INJECTED = "fault-injected"
FAULT_CLEARED = "fault-cleared"
UNHEALTHY = "unhealthy"
HEALTHY = "healthy"


@dataclass(frozen=True)
class Failover:
    """When a fault happened, was detected, repaired and recovered, and the errors it caused."""

    target: str | None
    fault_time: float
    detected_time: float | None = None
    repair_time: float | None = None
    recovered_time: float | None = None
    first_error_time: float | None = None
    last_error_time: float | None = None
    failed_requests: int = 0

    @property
    def detection_s(self) -> float:
        """Fault to the target's transition to unhealthy (NaN if never)."""
        return _minus(self.detected_time, self.fault_time)

    @property
    def recovery_s(self) -> float:
        """Repair to the target's transition back to healthy (NaN if either is missing)."""
        return _minus(self.recovered_time, self.repair_time)

    @property
    def error_window_s(self) -> float:
        """First to last failed request after the fault, by start time (NaN if none)."""
        return _minus(self.last_error_time, self.first_error_time)

    @property
    def errors_until_s(self) -> float:
        """Fault to the start of the last failed request (NaN if none)."""
        return _minus(self.last_error_time, self.fault_time)

    def to_dict(self) -> dict[str, Any]:
        """The times (epoch) and the durations (s) in one flat dict."""
        return {
            **asdict(self),
            "detection_s": self.detection_s,
            "recovery_s": self.recovery_s,
            "error_window_s": self.error_window_s,
            "errors_until_s": self.errors_until_s,
        }


def _minus(a: float | None, b: float | None) -> float:
    return float("nan") if a is None or b is None else float(a - b)


def _new_state(events: pd.DataFrame) -> pd.Series:
    return events["new"].astype(str).str.strip().str.lower()


def _first(
    events: pd.DataFrame, state: str, after: float, target: str | None = None
) -> pd.Series | None:
    """The earliest event entering `state` at or after `after`, of `target` if given."""
    mask = (_new_state(events) == state) & (events["time"] >= after)
    if target is not None:
        mask &= events["target"].astype(str) == target
    hits = events[mask].sort_values("time", kind="stable")
    return None if hits.empty else hits.iloc[0]


def _meta_time(meta: dict[str, Any] | None, key: str) -> float | None:
    value = (meta or {}).get(key)
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadInput(f'meta.json "{key}" must be epoch seconds, got {value!r}') from None
    return None if math.isnan(number) else number


def find_fault(
    events: pd.DataFrame | None, meta: dict[str, Any] | None = None, target: str | None = None
) -> tuple[float, str | None] | None:
    """(fault time, target) from a "fault-injected" event or meta.json "fault_time", or None."""
    if events is not None and not events.empty:
        hit = _first(events, FAULT_INJECTED, -math.inf, target)
        if hit is not None:
            return float(hit["time"]), (None if pd.isna(hit["target"]) else str(hit["target"]))
    when = _meta_time(meta, "fault_time")
    return None if when is None else (when, target)


def failover_times(
    events: pd.DataFrame,
    requests: pd.DataFrame | None = None,
    *,
    fault_time: float | None = None,
    repair_time: float | None = None,
    target: str | None = None,
    meta: dict[str, Any] | None = None,
) -> Failover:
    """Detection, recovery and client error window of one fault (definitions: module doc)."""
    if fault_time is None:
        found = find_fault(events, meta, target)
        if found is None:
            raise BadInput(
                "no fault time: no 'fault-injected' event and no meta.json \"fault_time\"",
                hint="pass fault_time=<epoch seconds>",
            )
        fault_time, target = found[0], target or found[1]
    if target is None:
        first_down = _first(events, UNHEALTHY, fault_time)
        target = None if first_down is None else str(first_down["target"])
    detected = _first(events, UNHEALTHY, fault_time, target) if target else None
    detected_time = None if detected is None else float(detected["time"])
    if repair_time is None:
        cleared = _first(events, FAULT_CLEARED, fault_time, target)
        repair_time = (
            float(cleared["time"]) if cleared is not None else _meta_time(meta, "repair_time")
        )
    recovered_time = None
    if target and repair_time is not None:
        since = max(t for t in (detected_time, repair_time, fault_time) if t is not None)
        healthy = _first(events, HEALTHY, since, target)
        recovered_time = None if healthy is None else float(healthy["time"])
    first_error = last_error = None
    count = 0
    if requests is not None and not requests.empty:
        errors = requests[failed(requests) & (requests["start"] >= fault_time)]
        count = len(errors)
        if count:
            first_error, last_error = float(errors["start"].min()), float(errors["start"].max())
    return Failover(
        target=target,
        fault_time=float(fault_time),
        detected_time=detected_time,
        repair_time=repair_time,
        recovered_time=recovered_time,
        first_error_time=first_error,
        last_error_time=last_error,
        failed_requests=count,
    )
