"""PNG figures of results: shares, latency, rates over time, failover timelines.

Figures are drawn with matplotlib's object API (Figure + Agg canvas) and never through
pyplot, so no display, no global figure state and no backend choice are involved: this works
on a headless machine, in threads and next to any other matplotlib user. Each function
writes one PNG and returns its path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # matplotlib costs 0.3 s to import: only figures pay for it
    from matplotlib.figure import Figure

from testbed.analysis.stats import failed, requests_per_second

DPI = 100
EVENT_STYLE = {  # transition -> (colour, line style)
    "fault-injected": ("red", "-"),
    "fault-cleared": ("tab:blue", "-"),
    "unhealthy": ("tab:orange", "--"),
    "healthy": ("tab:green", "--"),
    "draining": ("tab:purple", "--"),
    "removed": ("black", ":"),
}


def _figure(width: float = 8.0, height: float = 4.5) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # attach the raster canvas explicitly: PNG output, no screen
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def _label(key: object) -> str:
    return " / ".join(map(str, key)) if isinstance(key, tuple) else str(key)


def share_bars(
    shares: pd.DataFrame,
    path: str | Path,
    *,
    by: str | None = None,
    column: str = "backend",
    expected: float | Mapping[str, float] | None = None,
    title: str = "share of requests per target",
) -> Path:
    """Bars of each target's share (a target_share table), grouped by `by` if given.

    `expected` draws what AWS would do: one line for a single value (e.g. 0.1), or a marker
    per target for a mapping (e.g. 0.25 in AZ-a, 0.0625 in AZ-b with cross-zone off).
    """
    table = (
        shares.pivot_table(index=column, columns=by, values="share", aggfunc="sum")
        if by
        else shares.set_index(column)[["share"]]
    )
    fig = _figure(max(6.0, 0.6 * len(table) + 2))
    ax = fig.add_subplot()
    positions = np.arange(len(table))
    width = 0.8 / max(1, table.shape[1])
    for i, name in enumerate(table.columns):
        label = None if by is None else f"{by}={_label(name)}"
        ax.bar(
            positions + (i - (table.shape[1] - 1) / 2) * width,
            table[name].fillna(0) * 100,
            width,
            label=label,
        )
    if isinstance(expected, Mapping):
        wanted = [expected.get(t, np.nan) * 100 for t in table.index]
        ax.scatter(positions, wanted, marker="_", s=800, color="black", zorder=3, label="expected")
    elif expected is not None:
        ax.axhline(expected * 100, color="black", linestyle="--", label="expected")
    ax.set_xticks(positions, [str(t) for t in table.index], rotation=45, ha="right")
    ax.set_ylabel("share of requests (%)")
    ax.set_title(title)
    if by is not None or expected is not None:
        ax.legend()
    return _save(fig, path)


def latency_cdf(
    requests: pd.DataFrame,
    path: str | Path,
    *,
    by: str | None = None,
    only_ok: bool = True,
    title: str = "latency CDF",
) -> Path:
    """Empirical CDF of latency_ms, one line per group; log x axis when it spans 100x."""
    rows = requests[requests["latency_ms"].notna()]
    if only_ok:
        rows = rows[~failed(rows)]
    fig = _figure()
    ax = fig.add_subplot()
    groups = rows.groupby(by, dropna=False) if by else [("all", rows)]
    for key, frame in groups:
        values = np.sort(frame["latency_ms"].to_numpy(dtype=float))
        if values.size:
            ax.step(
                values, np.arange(1, values.size + 1) / values.size, where="post", label=_label(key)
            )
    positive = rows["latency_ms"][rows["latency_ms"] > 0]
    if len(positive) and positive.max() / positive.min() >= 100:
        ax.set_xscale("log")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("fraction of requests")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    if by:
        ax.legend()
    return _save(fig, path)


def percentile_bars(
    percentiles: pd.DataFrame,
    path: str | Path,
    *,
    by: str | None = None,
    title: str = "latency percentiles",
) -> Path:
    """Bars of the p<q> and max columns of a latency_percentiles table, per group."""
    columns = [c for c in percentiles.columns if c.startswith("p") and c[1:2].isdigit()]
    columns += ["max"] if "max" in percentiles else []
    labels = percentiles[by].map(str).tolist() if by else ["all"] * len(percentiles)
    fig = _figure()
    ax = fig.add_subplot()
    positions = np.arange(len(columns))
    width = 0.8 / max(1, len(percentiles))
    for i, (label, (_, row)) in enumerate(zip(labels, percentiles.iterrows())):
        ax.bar(
            positions + (i - (len(percentiles) - 1) / 2) * width,
            row[columns].to_numpy(dtype=float),
            width,
            label=label,
        )
    ax.set_xticks(positions, columns)
    ax.set_ylabel("latency (ms)")
    ax.set_title(title)
    if by:
        ax.legend()
    return _save(fig, path)


def rate_lines(
    frame: pd.DataFrame,
    path: str | Path,
    *,
    x: str = "t",
    y: str = "rate",
    by: str | Sequence[str] | None = None,
    ylabel: str = "per second",
    title: str = "rate over time",
    max_lines: int = 10,
) -> Path:
    """Lines of y over x, one per group; the `max_lines` groups with the largest mean y."""
    fig = _figure()
    ax = fig.add_subplot()
    if by:
        groups = list(frame.groupby(by if isinstance(by, str) else list(by), dropna=False))
        groups.sort(key=lambda kv: -np.nan_to_num(kv[1][y].mean(), nan=-np.inf))
        groups = groups[:max_lines]
    else:
        groups = [("all", frame)]
    for key, group in groups:
        group = group.sort_values(x)
        ax.plot(group[x], group[y], marker=".", label=_label(key))
    ax.set_xlabel("seconds since start" if x == "t" else x)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if by:
        ax.legend(fontsize="small")
    return _save(fig, path)


def failover_timeline(
    requests: pd.DataFrame,
    events: pd.DataFrame | None,
    path: str | Path,
    *,
    bin_s: float = 1.0,
    title: str = "requests and target health over time",
) -> Path:
    """Ok and failed requests per bin (by `t`), with a vertical line per target event."""
    rate = requests_per_second(requests, bin_s=bin_s)
    fig = _figure(10, 4.5)
    ax = fig.add_subplot()
    ax.step(rate["t"], rate["ok"] / bin_s, where="post", color="tab:green", label="ok")
    ax.step(rate["t"], rate["failed"] / bin_s, where="post", color="tab:red", label="failed")
    if events is not None and not events.empty:
        top = max(1.0, float((rate["total"] / bin_s).max()) if len(rate) else 1.0)
        for _, event in events.sort_values("t").iterrows():
            state = str(event["new"]).strip().lower()
            colour, style = EVENT_STYLE.get(state, ("grey", ":"))
            ax.axvline(event["t"], color=colour, linestyle=style, linewidth=1)
            ax.text(
                event["t"],
                top,
                f" {event['target']}: {state}",
                rotation=90,
                va="top",
                ha="right",
                fontsize="x-small",
                color=colour,
            )
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("requests per second")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    return _save(fig, path)


def connection_spans(
    requests: pd.DataFrame,
    path: str | Path,
    *,
    by: str = "backend",
    events: pd.DataFrame | None = None,
    marks: Mapping[str, float] | None = None,
    stalled: str | None = None,
    title: str = "connections over time",
) -> Path:
    """A horizontal line per connection from its start to its end (start + latency), coloured
    by `by`; failed connections end in a cross. With `stalled` (a column of times on the
    same axis), a connection is drawn dotted from that time on: it no longer got answers.
    Target events (with `t`) and `marks` ({label: t}) are drawn as vertical lines. Times are
    `t` (seconds since the run's start) when present, else seconds since the first one."""
    start = requests["t"] if "t" in requests else requests["start"] - requests["start"].min()
    end = start.astype(float) + requests["latency_ms"] / 1000.0
    cut = requests[stalled].astype(float).clip(upper=end) if stalled else end
    rows = requests.assign(
        _t0=start.astype(float),
        _t1=end,
        _cut=cut.fillna(end),
        _group=requests[by].fillna("?").astype(str),
        _failed=failed(requests),
    )
    rows = rows.sort_values(["_group", "_t0"], kind="stable", ignore_index=True)
    fig = _figure(10, max(4.0, min(12.0, 2.0 + 0.12 * len(rows))))
    ax = fig.add_subplot()
    colours = {g: f"C{i % 10}" for i, g in enumerate(sorted(rows["_group"].unique()))}
    for group, frame in rows.groupby("_group", sort=True):
        ax.hlines(
            frame.index, frame["_t0"], frame["_cut"], colors=colours[group], label=f"{by}={group}"
        )
        hung = frame[frame["_cut"] < frame["_t1"]]
        ax.hlines(hung.index, hung["_cut"], hung["_t1"], colors=colours[group], linestyles="dotted")
        bad = frame[frame["_failed"]]
        ax.scatter(bad["_t1"], bad.index, marker="x", color="red", zorder=3)
    if len(rows) and rows["_failed"].any():
        ax.scatter([], [], marker="x", color="red", label="ended with an error")
    for label, when in (marks or {}).items():
        ax.axvline(when, color="black", linestyle="--", linewidth=1)
        ax.text(when, len(rows), f" {label}", rotation=90, va="top", ha="right", fontsize="x-small")
    if events is not None and not events.empty:
        for _, event in events.sort_values("t").iterrows():
            state = str(event["new"]).strip().lower()
            state = "removed" if state in ("", "nan") else state
            colour, style = EVENT_STYLE.get(state, ("grey", ":"))
            ax.axvline(event["t"], color=colour, linestyle=style, linewidth=1)
            ax.text(
                event["t"],
                0,
                f" {event['target']}: {state}",
                rotation=90,
                va="bottom",
                ha="right",
                fontsize="x-small",
                color=colour,
            )
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("connection")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="x")
    ax.legend(loc="upper left", fontsize="small")
    return _save(fig, path)


def soak_timeline(
    rss: pd.DataFrame,
    rates: pd.DataFrame,
    path: str | Path,
    *,
    phases: Sequence[tuple[str, float, float]] = (),
    faults: Sequence[float] = (),
    title: str = "memory and errors over a soak",
) -> Path:
    """Two panels over time. Top: each process's RSS as a percentage of its first sample
    (rss: t, process, rss_mib; the legend gives that first value), so that a few MiB of
    growth in a small process shows beside a large one. Bottom, per second (rates: t,
    requests, expected, unexpected): requests and the failed ones by class, on a log axis
    (a few failures among thousands stay visible). Phases ((name, t0, t1)) are shaded,
    faults (times) drawn as thin red lines."""
    fig = _figure(11, 7.5)
    top, bottom = fig.subplots(2, 1, sharex=True)
    for process, group in rss.groupby("process", sort=True):
        group = group.sort_values("t")
        first = float(group["rss_mib"].iloc[0])
        top.plot(
            group["t"],
            100.0 * group["rss_mib"] / first,
            label=f"{process} ({first:.0f} MiB)",
            linewidth=1.2,
        )
    top.set_ylabel("RSS, % of its first sample")
    top.set_title(title)
    top.grid(alpha=0.3)
    if not rss.empty:
        top.legend(fontsize="x-small", ncol=2, loc="upper left")
    rates = rates.sort_values("t")
    bottom.plot(rates["t"], rates["requests"], color="tab:grey", linewidth=0.6, label="requests")
    for column, colour in (("expected", "tab:orange"), ("unexpected", "tab:red")):
        shown = rates[rates[column] > 0]
        bottom.scatter(shown["t"], shown[column], s=8, color=colour, label=f"failed, {column}")
    bottom.set_yscale("symlog", linthresh=1.0)
    bottom.set_ylabel("per second")
    bottom.set_xlabel("seconds since start")
    bottom.grid(alpha=0.3)
    for when in faults:
        bottom.axvline(when, color="red", linewidth=0.5, alpha=0.5)
    for i, (name, t0, t1) in enumerate(phases):
        for ax in (top, bottom):
            ax.axvspan(t0, t1, color=f"C{i % 10}", alpha=0.06)
        bottom.text(
            (t0 + t1) / 2,
            0.02,
            name,
            transform=bottom.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize="small",
        )
    bottom.legend(fontsize="x-small", loc="upper left")
    return _save(fig, path)
