"""Analysis of a soak run (testbed.experiments.soak): which failed requests AWS's semantics
expect, and how the memory of the lab's processes grew after the warm-up.

The warm-up is the first half of a phase: a process's working set (ovs-vswitchd's conntrack
tables and malloc arenas, HAProxy's pools) grows until the schedule's events have met the
full load, then stays; its RSS is a high-water mark (freed memory is not given back). A
leak grows in the second half too: growth counts from the middle to the end. The growth
from the first chunk's end is reported beside it.

    failures = classify_failures(failures, windows)   # adds `class` and `window`
    growth = rss_growth(samples)                       # one row per process

A window is the part of the run in which AWS lets requests to one target fail: from the
moment its backend was stopped (or stopped listening) until the load balancer acted on its
unhealthy state, plus a grace. A failed request is expected when it overlapped a window of
its phase and its backend is that window's target or unknown (a request that never reached
a backend cannot name one); every other failure is unexpected.
"""

from __future__ import annotations

import pandas as pd

EXPECTED = "expected"
UNEXPECTED = "unexpected"
WINDOW_COLUMNS = ("phase", "event", "kind", "target", "start", "end")
MIB = 1024.0


def classify_failures(failures: pd.DataFrame, windows: pd.DataFrame) -> pd.DataFrame:
    """`failures` (request rows with a `phase` column) with two more columns: `window`, the
    first window (its `event` id) each one falls in ("" if none), and `class`, EXPECTED
    when it falls in one, UNEXPECTED otherwise."""
    out = failures.copy()
    window = pd.Series("", index=out.index, dtype=object)
    if len(out):
        start = out["start"].astype(float)
        end = start + out["latency_ms"].astype(float) / 1000.0
        backend = out["backend"].fillna("").astype(str)
        for w in windows.to_dict("records"):
            hit = (
                (out["phase"] == w["phase"])
                & (start <= float(w["end"]))
                & (end >= float(w["start"]))
                & backend.isin(["", str(w["target"])])
                & (window == "")
            )
            window[hit] = str(w["event"])
    out["window"] = window
    out["class"] = window.map(lambda w: EXPECTED if w else UNEXPECTED)
    return out


def checkpoints(chunks: list[int]) -> tuple[int, int, int]:
    """(start, middle, end) sample points of a phase from the chunk numbers sampled (0 =
    before its load, n = after its n-th chunk): start after the first chunk when there are
    at least three chunks, else before the load; the middle ends the warm-up."""
    ordered = sorted(set(chunks))
    if not ordered:
        raise ValueError("no samples")
    start = 1 if len(ordered) >= 4 and 1 in ordered else ordered[0]
    end = ordered[-1]
    after = [c for c in ordered if start <= c <= end]
    middle = after[len(after) // 2]
    return start, middle, end


def rss_growth(samples: pd.DataFrame) -> pd.DataFrame:
    """Per process, from one phase's samples taken between chunks (columns chunk, process,
    pid, rss_kib): start, middle and end RSS in MiB (see checkpoints), growth after the
    warm-up (middle to end, a fraction), growth from start to end, and the pids seen (a
    process replaced meanwhile, e.g. a restarted controller, has several)."""
    rows = []
    if samples.empty:
        return pd.DataFrame(
            columns=[
                "process",
                "start_mib",
                "middle_mib",
                "end_mib",
                "growth",
                "growth_from_start",
                "pids",
            ]
        )
    start, middle, end = checkpoints(samples["chunk"].astype(int).tolist())
    for process, group in samples.groupby("process", sort=True):
        by_chunk = group.groupby("chunk")["rss_kib"].max() / MIB
        at = {
            c: float(by_chunk[c]) if c in by_chunk.index else float("nan")
            for c in (start, middle, end)
        }
        rows.append(
            {
                "process": process,
                "start_mib": at[start],
                "middle_mib": at[middle],
                "end_mib": at[end],
                "growth": at[end] / at[middle] - 1.0 if at[middle] else float("nan"),
                "growth_from_start": at[end] / at[start] - 1.0 if at[start] else float("nan"),
                "pids": " ".join(str(p) for p in sorted(set(group["pid"].astype(int)))),
            }
        )
    return pd.DataFrame(rows)
