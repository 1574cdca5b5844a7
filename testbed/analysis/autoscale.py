"""Numbers and the figure of an Auto Scaling run: how fast capacity followed the load.

Inputs are two tidy frames on one time axis (epoch seconds):
- samples: one row per second from the group's description: time, desired, in_service
  (instances InService), in_service_hosts and hosts (";"-joined host names: InService ones,
  every one the group still lists);
- requests: the load client's rows (testbed.schemas.REQUEST_COLUMNS).
Load steps are (time, old rate, new rate). Every function is pure: unit-tested on made-up
frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from testbed.analysis.plots import _figure, _save
from testbed.analysis.stats import failed


def _hosts(cell: Any) -> set[str]:
    if not isinstance(cell, str) or not cell:
        return set()
    return set(cell.split(";"))


def _at(samples: pd.DataFrame, t: float) -> pd.Series | None:
    """The last sample taken at or before t (the first one if none was)."""
    if samples.empty:
        return None
    before = samples[samples["time"] <= t]
    return (before if len(before) else samples).iloc[-1 if len(before) else 0]


def capacity_after_step(samples: pd.DataFrame, step_t: float) -> float:
    """Seconds from a load step up until more instances are InService than at the step
    (NaN: never within the samples)."""
    now = _at(samples, step_t)
    if now is None:
        return math.nan
    later = samples[(samples["time"] > step_t) & (samples["in_service"] > now["in_service"])]
    return float(later["time"].iloc[0] - step_t) if len(later) else math.nan


def traffic_after_step(samples: pd.DataFrame, requests: pd.DataFrame, step_t: float) -> float:
    """Seconds from a load step up until an instance that was not InService at the step
    answers a request (the new capacity takes traffic; NaN: never)."""
    now = _at(samples, step_t)
    old = _hosts(now["in_service_hosts"]) if now is not None else set()
    answered = requests[
        (requests["start"] >= step_t) & requests["backend"].notna() & ~failed(requests)
    ]
    new = answered[~answered["backend"].astype(str).isin(old)]
    if new.empty:
        return math.nan
    ends = new["start"] + new["latency_ms"] / 1000.0
    return float(ends.min() - step_t)


def scale_in_after_step(samples: pd.DataFrame, step_t: float) -> float:
    """Seconds from a load step down until fewer instances are InService than at the step."""
    now = _at(samples, step_t)
    if now is None:
        return math.nan
    later = samples[(samples["time"] > step_t) & (samples["in_service"] < now["in_service"])]
    return float(later["time"].iloc[0] - step_t) if len(later) else math.nan


def settled_after_step(samples: pd.DataFrame, step_t: float, end_t: float) -> float:
    """Seconds from a step until InService stopped changing before end_t (NaN: no change)."""
    window = samples[(samples["time"] >= step_t) & (samples["time"] < end_t)]
    if window.empty:
        return math.nan
    changed = window[window["in_service"].diff().fillna(0) != 0]
    return float(changed["time"].iloc[-1] - step_t) if len(changed) else math.nan


def failed_between(requests: pd.DataFrame, start: float, end: float) -> int:
    """Requests started in [start, end) that failed."""
    window = requests[(requests["start"] >= start) & (requests["start"] < end)]
    return int(failed(window).sum())


def replacement(samples: pd.DataFrame, victim: str, kill_t: float) -> dict[str, float]:
    """After `victim` was broken at kill_t: seconds until a host that the group did not list
    at kill_t is InService (replaced_s), and until the group no longer lists the victim
    (terminated_s). NaN: not within the samples."""
    now = _at(samples, kill_t)
    before = _hosts(now["hosts"]) if now is not None else set()
    after = samples[samples["time"] > kill_t]
    replaced = after[after["in_service_hosts"].map(lambda c: bool(_hosts(c) - before))]
    gone = after[after["hosts"].map(lambda c: victim not in _hosts(c))]
    return {
        "replaced_s": float(replaced["time"].iloc[0] - kill_t) if len(replaced) else math.nan,
        "terminated_s": float(gone["time"].iloc[0] - kill_t) if len(gone) else math.nan,
    }


def flows_moved(held: pd.DataFrame, samples: pd.DataFrame, timeout: float) -> int:
    """Long-lived flows that broke while their instance was still InService: the load
    balancer sent them elsewhere (the other target resets them, or they go unanswered until
    the client's `timeout`). A flow whose instance left service (scaled in, replaced) ended
    with its instance, not moved."""
    broken = held[failed(held)]
    moved = 0
    for _, flow in broken.iterrows():
        end = flow["start"] + flow["latency_ms"] / 1000.0
        stalled = str(flow.get("error", "")) == "timeout"
        broke_at = end - timeout if stalled else end
        now = _at(samples, broke_at)
        if now is not None and str(flow["backend"]) in _hosts(now["in_service_hosts"]):
            moved += 1
    return moved


def per_second(requests: pd.DataFrame, start: float) -> pd.DataFrame:
    """Per second since `start`: answered requests (rps), failed ones and p99 latency (ms)."""
    if requests.empty:
        return pd.DataFrame(columns=["t", "rps", "failed", "p99_ms"])
    frame = requests.assign(
        t=((requests["start"] - start) // 1).astype(int), _failed=failed(requests)
    )
    grouped = frame.groupby("t")
    out = pd.DataFrame(
        {
            "rps": grouped.size(),
            "failed": grouped["_failed"].sum().astype(int),
            "p99_ms": grouped["latency_ms"].quantile(0.99),
        }
    ).reset_index()
    return out


def per_target_second(requests: pd.DataFrame, start: float) -> pd.DataFrame:
    """Answered requests per second and per backend: columns t, backend, rps."""
    ok = requests[~failed(requests) & requests["backend"].notna()]
    if ok.empty:
        return pd.DataFrame(columns=["t", "backend", "rps"])
    frame = ok.assign(t=((ok["start"] - start) // 1).astype(int))
    return frame.groupby(["t", "backend"]).size().rename("rps").reset_index()


def timeline(
    samples: pd.DataFrame,
    requests: pd.DataFrame,
    offered: pd.DataFrame,
    activities: pd.DataFrame,
    start: float,
    path: str | Path,
    *,
    title: str = "Auto Scaling under stepped load",
    max_targets: int = 12,
) -> Path:
    """One figure over time (seconds since start), four panels sharing the axis: offered and
    answered load; desired and InService capacity; requests per second per target; p99
    latency. Scaling activities (columns time, description) are vertical lines in every
    panel. offered: columns t, rate (the schedule, as steps)."""
    fig = _figure(11, 10)
    axes = fig.subplots(4, 1, sharex=True)
    load, cap, targets, lat = axes
    seconds = per_second(requests, start)
    load.step(offered["t"], offered["rate"], where="post", color="black", label="offered")
    load.plot(seconds["t"], seconds["rps"], color="tab:green", label="answered")
    if seconds["failed"].sum():
        load.plot(seconds["t"], seconds["failed"], color="tab:red", label="failed")
    load.set_ylabel("requests/s")
    load.legend(loc="upper left", fontsize="small")
    t = samples["time"] - start
    cap.step(t, samples["desired"], where="post", color="tab:blue", label="desired")
    cap.step(t, samples["in_service"], where="post", color="tab:orange", label="InService")
    cap.set_ylabel("instances")
    cap.legend(loc="upper left", fontsize="small")
    per_target = per_target_second(requests, start)
    busiest = per_target.groupby("backend")["rps"].sum().sort_values(ascending=False)
    for backend in busiest.index[:max_targets]:
        rows = per_target[per_target["backend"] == backend]
        targets.plot(rows["t"], rows["rps"], marker=".", markersize=2, label=str(backend))
    targets.set_ylabel("requests/s per target")
    if len(busiest):
        targets.legend(loc="upper left", fontsize="x-small", ncol=4)
    lat.plot(seconds["t"], seconds["p99_ms"], color="tab:purple")
    lat.set_ylabel("p99 latency (ms)")
    lat.set_xlabel("seconds since start")
    for ax in axes:
        ax.grid(alpha=0.3)
        for _, act in activities.iterrows():
            ax.axvline(act["time"] - start, color="grey", linestyle=":", linewidth=1)
    if len(activities):
        top = load.get_ylim()[1]
        for _, act in activities.iterrows():
            load.text(
                act["time"] - start,
                top,
                f" {act['description']}"[:60],
                rotation=90,
                va="top",
                ha="right",
                fontsize="xx-small",
                color="grey",
            )
    fig.suptitle(title)
    return _save(fig, path)


def offered_steps(phases: Sequence[tuple[str, float, float]]) -> pd.DataFrame:
    """The schedule (name, rate, seconds) as steps: t (seconds since start), rate, phase;
    a last row closes the final phase."""
    rows, t = [], 0.0
    for name, rate, seconds in phases:
        rows.append({"t": t, "rate": rate, "phase": name})
        t += seconds
    if phases:
        rows.append({"t": t, "rate": 0.0, "phase": "end"})
    return pd.DataFrame(rows, columns=["t", "rate", "phase"])
