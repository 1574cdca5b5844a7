"""Turns snapshots from metric sources into per-second rows (testbed.schemas.METRIC_COLUMNS)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from testbed.metrics.sources import Sample, Source
from testbed.schemas import METRIC_COLUMNS


def rates(
    previous: Iterable[Sample], current: Iterable[Sample], elapsed: float, period_start: float
) -> list[dict[str, Any]]:
    """Rows for one period: counters (and rates) as increase per second, gauges as sampled.

    A counter that went down (a restarted source) gives no row for that period."""
    before = {s.key: s for s in previous}
    rows = []
    for s in current:
        if s.kind == "gauge":
            value = s.value
        else:
            old = before.get(s.key)
            if old is None or s.value < old.value or elapsed <= 0:
                continue
            value = (s.value - old.value) / elapsed
        # A "rate" counts a unit-seconds total (CPU time x 100): its rate is the unit itself.
        unit = s.unit if s.kind in ("gauge", "rate") else f"{s.unit}/Second"
        rows.append(
            dict(
                zip(
                    METRIC_COLUMNS,
                    (
                        round(period_start, 3),
                        s.namespace,
                        s.metric,
                        s.load_balancer,
                        s.target_group,
                        s.target,
                        round(value, 3),
                        unit,
                    ),
                )
            )
        )
    return rows


def collect(
    sources: list[Source],
    duration: float,
    interval: float = 1.0,
    on_rows: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict]:
    """Sample every source each `interval` seconds for `duration` seconds."""
    if interval <= 0 or duration <= 0:
        raise ValueError("interval and duration must be positive")
    rows: list[dict[str, Any]] = []
    last_t = time.time()
    last = [s for src in sources for s in src.snapshot()]
    end = time.monotonic() + duration
    next_tick = time.monotonic() + interval
    while time.monotonic() < end:
        time.sleep(max(0.0, next_tick - time.monotonic()))
        next_tick += interval
        now_t = time.time()
        current = [s for src in sources for s in src.snapshot()]
        new = rates(last, current, now_t - last_t, last_t)
        rows.extend(new)
        if on_rows:
            on_rows(new)
        last, last_t = current, now_t
    return rows
