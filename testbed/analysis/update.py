"""Analysis of the update experiment: requests per second per load balancer, what each update
cost (requests in flight while it ran that failed, by kind), and the figure with every
update's start and end marked.

Inputs are the load client's rows (REQUEST_COLUMNS plus `lb`) and one row per update (step,
lb, what, start, end, outcome, expected, reason) with epoch times; `t0` is the time axis's 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from testbed.analysis.stats import error_kind, failed, requests_per_second

if TYPE_CHECKING:
    from matplotlib.axes import Axes

SKIPPED = "skipped"  # the lab refused the update: nothing changed
OUTCOME_COLOURS = {  # how an update's span is shaded
    "UPDATE_COMPLETE": "tab:green",
    "UPDATE_ROLLBACK_COMPLETE": "tab:orange",
    SKIPPED: "grey",
}
TIMELINE_COLUMNS = ["t", "lb", "ok", "failed", "total"]


def timeline(requests: pd.DataFrame, t0: float, bin_s: float = 1.0) -> pd.DataFrame:
    """Requests started per second per load balancer: t (bin start, seconds since t0), lb,
    ok, failed, total."""
    if requests.empty:
        return pd.DataFrame(columns=TIMELINE_COLUMNS)
    rate = requests_per_second(requests.assign(t=requests["start"] - t0), bin_s=bin_s, by="lb")
    return rate[TIMELINE_COLUMNS].reset_index(drop=True)


def in_flight(requests: pd.DataFrame, start: float, end: float) -> pd.Series:
    """True for each request that was in flight at some time in [start, end]: it started
    before `end` and ended (start + latency; a request without a latency: start) after
    `start`."""
    latency = pd.to_numeric(requests["latency_ms"], errors="coerce").fillna(0.0) / 1000.0
    ends = requests["start"] + latency
    return ((requests["start"] <= end) & (ends >= start)).astype(bool)


def _kinds(rows: pd.DataFrame) -> str:
    counts = error_kind(rows).value_counts()
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "-"


def drains(target_events: pd.DataFrame, start: float, end: float) -> str:
    """Targets that began draining in [start, end], each with how long it drained (until
    its next transition; "?" if none was seen): "MyALB/AlbTargets WebB1:80 5.1 s; ..."."""
    if target_events.empty:
        return "-"
    ordered = target_events.sort_values("time", kind="stable")
    out = []
    for _, ev in ordered[ordered["new"] == "draining"].iterrows():
        if not start <= ev["time"] <= end:
            continue
        same = ordered[
            (ordered["load_balancer"] == ev["load_balancer"])
            & (ordered["target_group"] == ev["target_group"])
            & (ordered["target"] == ev["target"])
            & (ordered["time"] > ev["time"])
        ]
        took = f"{same['time'].iloc[0] - ev['time']:.1f} s" if len(same) else "?"
        out.append(f"{ev['load_balancer']}/{ev['target_group']} {ev['target']} {took}")
    return "; ".join(out) or "-"


def step_summary(
    steps: pd.DataFrame,
    requests: pd.DataFrame,
    grace_s: float,
    lbs: list[str],
    target_events: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per update: the step's own columns, duration_s, and the requests in flight
    from its start to `grace_s` after its end (requests, failed, failed_<lb> per load
    balancer, errors by kind), the targets it drained (drains); ok is True when the outcome
    is the expected one, no request failed and (a rolled-back update) the lab is as before
    (the step's lab_identical, when it has one, does not start with "differs")."""
    rows = []
    for _, step in steps.iterrows():
        during = requests[in_flight(requests, step["start"], step["end"] + grace_s)]
        bad = during[failed(during)]
        row = {
            **step.to_dict(),
            "duration_s": step["end"] - step["start"],
            "requests": len(during),
            "failed": len(bad),
        }
        for lb in lbs:
            row[f"failed_{lb}"] = int((bad["lb"] == lb).sum())
        row["errors"] = _kinds(bad)
        row["drained"] = (
            drains(target_events, step["start"], step["end"]) if target_events is not None else "-"
        )
        row["ok"] = bool(
            step["outcome"] == step["expected"] and len(bad) == 0 and not _differs(step)
        )
        rows.append(row)
    return pd.DataFrame(rows)


def _differs(step: pd.Series) -> bool:
    """Whether a rolled-back update left a lab other than the one before it."""
    return str(step.get("lab_identical", "") or "").startswith("differs")


SHORT = {"UPDATE_COMPLETE": "", "UPDATE_ROLLBACK_COMPLETE": "rolled back", SKIPPED: "skipped"}


def _label(step: pd.Series) -> str:
    """The step's name, its outcome in short, and what AWS would do when that differs."""
    outcome, expected = str(step["outcome"]), str(step["expected"])
    said = SHORT.get(outcome, outcome.lower())
    if outcome not in (SKIPPED, expected):
        said = f"{said or 'complete'}; AWS: {SHORT.get(expected) or 'complete'}"
    if _differs(step):
        said = f"{said}; lab differs" if said else "lab differs"
    return f" {step['step']}" + (f" ({said})" if said else "")


def _mark(ax: Axes, step: pd.Series, t0: float, top: float) -> None:
    outcome = str(step["outcome"])
    expected = outcome in (SKIPPED, str(step["expected"])) and not _differs(step)
    colour = OUTCOME_COLOURS.get(outcome, "tab:red") if expected else "tab:red"
    start, end = step["start"] - t0, step["end"] - t0
    if outcome == SKIPPED:
        ax.axvline(start, color=colour, linestyle=":", linewidth=1)
    else:
        ax.axvspan(start, max(end, start + 0.2), color=colour, alpha=0.25, linewidth=0)
        ax.axvline(start, color=colour, linewidth=0.8)
        ax.axvline(end, color=colour, linewidth=0.8, linestyle="--")
    ax.text(
        start,
        top,
        _label(step),
        rotation=90,
        va="top",
        ha="right",
        fontsize="x-small",
        color=colour,
        clip_on=True,  # a long label must not resize the figure
    )


def update_figure(
    line: pd.DataFrame,
    steps: pd.DataFrame,
    path: str | Path,
    t0: float,
    lbs: list[str],
    title: str = "requests per second while the stack is updated",
) -> Path:
    """One panel per load balancer: ok and failed requests per second over time; each
    update's span shaded by its outcome (green: UPDATE_COMPLETE, orange: rolled back; a
    dotted line: skipped, the lab refused it) and labelled at its start."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 3.2 * max(1, len(lbs)) + 0.6), layout="constrained")
    FigureCanvasAgg(fig)  # raster canvas, no display (as testbed.analysis.plots)
    axes = fig.subplots(max(1, len(lbs)), 1, sharex=True, squeeze=False)[:, 0]
    for ax, lb in zip(axes, lbs):
        mine = line[line["lb"] == lb].sort_values("t")
        top = max(1.0, float(mine["total"].max()) if len(mine) else 1.0) * 1.05
        ax.step(mine["t"], mine["ok"], where="post", color="tab:green", label="ok")
        ax.step(mine["t"], mine["failed"], where="post", color="tab:red", label="failed")
        for _, step in steps.iterrows():
            _mark(ax, step, t0, top * 2.4)
        ax.set_ylim(0, top * 2.45)  # the labels stand above the lines
        ax.set_ylabel(f"{lb}: requests/s")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize="small")
    axes[-1].set_xlabel("seconds since the load started")
    axes[0].set_title(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, format="png")
    return path
