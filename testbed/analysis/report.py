"""A short report of one results directory: the tables that apply, a PNG per figure.

What is reported depends on the files present: request rows give shares, balance, latency and
errors; target events give failover times; SNMP samples give counter rates; metric rows give
per-metric summaries. Figures and the report's tables (as CSV) go to <results>/report/.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from testbed.analysis import plots
from testbed.analysis.counters import counter_rates, rate_summary
from testbed.analysis.failover import UNHEALTHY, failover_times, find_fault
from testbed.analysis.load import OTHER, Results, load_results
from testbed.analysis.stats import (
    balance,
    error_rates,
    expected_share,
    failed,
    latency_percentiles,
    requests_per_second,
    target_share,
)
from testbed.errors import BadInput

MAX_ROWS = 20  # rows of a table printed; the report's CSV has them all
MAX_METRIC_FIGURES = 6
POLLER_RATE_TYPE = "rate"  # `type` of the rate rows testbed.snmp writes


@dataclass
class Report:
    """The tables (title -> DataFrame), figures and notes made for one results directory."""

    results: Results
    out: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        """The report as plain text: run header, each table (shortened), notes, figures."""
        lines = [f"results: {self.results.path}", _run_line(self.results), ""]
        for title, table in self.tables.items():
            lines.append(f"== {title}")
            shown = table.head(MAX_ROWS)
            lines.append(shown.to_string(index=False, float_format=_fmt, na_rep="-"))
            if len(table) > MAX_ROWS:
                lines.append(f"... {len(table) - MAX_ROWS} more rows in {self.out}")
            lines.append("")
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"figure: {p}" for p in self.figures]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: path, run facts, every table as records, figures, notes."""
        meta = self.results.meta
        return _jsonable(
            {
                "results": str(self.results.path),
                "out": str(self.out),
                "run": {
                    k: meta.get(k)
                    for k in (
                        "experiment",
                        "params",
                        "template",
                        "seed",
                        "git_commit",
                        "datapath",
                        "kernel",
                        "start",
                        "end",
                    )
                },
                "tables": {t: df.to_dict(orient="records") for t, df in self.tables.items()},
                "figures": [str(p) for p in self.figures],
                "notes": self.notes,
            }
        )


def report(path: str | Path, out: str | Path | None = None, *, bin_s: float = 1.0) -> Report:
    """Load `path`, compute the tables that apply, write figures and tables into `out`."""
    results = load_results(path)
    rep = Report(results=results, out=Path(out) if out else results.path / "report")
    rep.tables["tables"] = pd.DataFrame(
        [
            (name, results.kinds[name], len(df), len(df.columns))
            for name, df in results.tables.items()
        ],
        columns=["table", "layout", "rows", "columns"],
    )
    if not results.tables:
        rep.notes.append("no CSV tables in this results directory")
    for name, df in results.of_kind(OTHER).items():
        # An experiment's own small tables (e.g. summary.csv) are worth showing as they are.
        if 0 < len(df) <= MAX_ROWS:
            rep.tables[f"{name}.csv"] = df
    requests = results.requests
    if requests is not None and len(requests):
        _requests_section(rep, requests, bin_s)
    events = results.target_events
    if events is not None and len(events):
        _events_section(rep, events, requests, bin_s)
    samples = results.snmp
    if samples is not None and len(samples):
        _snmp_section(rep, samples)
    metrics = results.metrics
    if metrics is not None and len(metrics):
        _metrics_section(rep, metrics)
    computed = [t for t in rep.tables if t != "tables" and not t.endswith(".csv")]
    if rep.figures or computed:
        rep.out.mkdir(parents=True, exist_ok=True)
        for title, table in rep.tables.items():
            if not title.endswith(".csv"):  # not the results' own tables again
                table.to_csv(rep.out / f"{_slug(title)}.csv", index=False)
    return rep


def _requests_section(rep: Report, requests: pd.DataFrame, bin_s: float) -> None:
    bad = failed(requests)
    span = requests["start"].max() - requests["start"].min()
    rep.tables["requests summary"] = pd.DataFrame(
        [
            {
                "requests": len(requests),
                "ok": int((~bad).sum()),
                "failed": int(bad.sum()),
                "failed_rate": bad.mean(),
                "duration_s": span,
                "mean_rps": len(requests) / span if span > 0 else math.nan,
            }
        ]
    )
    zones = requests.dropna(subset=["backend"]).groupby("backend")["backend_az"].first()
    share_by = rep.results.meta.get("share_by")
    if isinstance(share_by, str) and share_by in requests:
        # Phases of one run (e.g. cross-zone off, then on) expect different shares: one
        # share table, balance and figure per phase.
        for value, rows in requests.groupby(share_by, sort=True):
            _share_section(
                rep,
                rows,
                zones,
                _expected_share(rep.results, zones, str(value)),
                f" ({share_by}={value})",
                f"share_{_slug(f'{share_by}_{value}')}",
            )
    else:
        _share_section(rep, requests, zones, _expected_share(rep.results, zones), "", "share")
    by = "proto" if requests["proto"].nunique() > 1 else None
    latency = latency_percentiles(requests, by=by)
    if latency["count"].sum() > 0:
        rep.tables["latency (ms), successful requests"] = latency
        rep.figures.append(plots.latency_cdf(requests, rep.out / "latency_cdf.png", by=by))
        rep.figures.append(
            plots.percentile_bars(latency, rep.out / "latency_percentiles.png", by=by)
        )
    if bad.any():
        rep.tables["errors"] = error_rates(requests)
    if "t" in requests:
        rate = requests_per_second(requests, bin_s=bin_s)
        rep.figures.append(
            plots.rate_lines(
                rate,
                rep.out / "request_rate.png",
                y="rps",
                ylabel="requests per second",
                title="requests started per second",
            )
        )


def _share_section(
    rep: Report,
    requests: pd.DataFrame,
    zones: pd.Series,
    expected: float | dict[str, float] | None,
    suffix: str,
    figure: str,
) -> None:
    """Share per target, balance and the share figure of some requests."""
    # Targets that should have had a share but got nothing count as 0 in the spread.
    shares = target_share(requests, targets=list(expected) if isinstance(expected, dict) else None)
    if not len(shares):
        return
    shares.insert(1, "az", shares["backend"].map(zones))
    if expected is not None:
        shares["expected"] = (
            shares["backend"].map(expected) if isinstance(expected, dict) else expected
        )
    rep.tables[f"share per target{suffix}"] = shares
    rep.tables[f"balance{suffix}"] = balance(shares)
    rep.figures.append(
        plots.share_bars(
            shares,
            rep.out / f"{figure}.png",
            expected=expected,
            title=f"share of requests per target{suffix}",
        )
    )


def _expected_share(
    results: Results, zones: pd.Series, group: str | None = None
) -> float | dict[str, float] | None:
    """meta.json "expected_share" (number or {target: share}, or with meta "share_by" one of
    those per group value); else from params.cross_zone."""
    given = results.meta.get("expected_share")
    if group is not None:
        given = given.get(group) if isinstance(given, dict) else None
    if isinstance(given, (int, float)) and not isinstance(given, bool):
        return float(given)
    if isinstance(given, dict):
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in given.values()):
            return None  # per-group values read without share_by: nothing to compare
        return {str(k): float(v) for k, v in given.items()}
    cross_zone = (results.meta.get("params") or {}).get("cross_zone")
    if isinstance(cross_zone, bool) and zones.notna().all() and len(zones):
        by_az: dict[str, list[str]] = {}
        for target, az in zones.items():
            by_az.setdefault(str(az), []).append(str(target))
        return expected_share(by_az, cross_zone)
    return None


def _events_section(
    rep: Report, events: pd.DataFrame, requests: pd.DataFrame | None, bin_s: float
) -> None:
    start = rep.results.start or 0.0
    shown = events.sort_values("time", kind="stable")
    columns = [
        c
        for c in ("t", "load_balancer", "target_group", "target", "old", "new", "reason")
        if c in shown
    ]
    rep.tables["target events"] = shown[columns]
    has_down = (events["new"].astype(str).str.strip().str.lower() == UNHEALTHY).any()
    if find_fault(events, rep.results.meta) is None and not has_down:
        return
    try:
        fo = failover_times(events, requests, meta=rep.results.meta)
    except BadInput as exc:
        rep.notes.append(f"failover not computed: {exc.message}")
        return
    rep.tables["failover (s; times since start)"] = pd.DataFrame(
        [
            {
                "target": fo.target,
                "fault_t": fo.fault_time - start,
                "detection_s": fo.detection_s,
                "repair_t": math.nan if fo.repair_time is None else fo.repair_time - start,
                "recovery_s": fo.recovery_s,
                "failed_requests": fo.failed_requests,
                "error_window_s": fo.error_window_s,
                "errors_until_s": fo.errors_until_s,
            }
        ]
    )
    if requests is not None and len(requests) and "t" in requests and "t" in events:
        rep.figures.append(
            plots.failover_timeline(requests, events, rep.out / "failover.png", bin_s=bin_s)
        )


def _snmp_section(rep: Report, samples: pd.DataFrame) -> None:
    keys = ["host", "object", "index"]
    derived = samples["type"].astype(str).str.strip().str.lower() == POLLER_RATE_TYPE
    if derived.any():
        # The poller's own rate rows know about agent restarts (sysUpTime) and prefer the
        # 64-bit twin of a counter: use them rather than recomputing from raw samples.
        given = samples[derived]
        rates = given.assign(rate=pd.to_numeric(given["value"], errors="coerce"))
        title = "SNMP rates from the poller (per second)"
    else:
        rates = counter_rates(samples, keys)
        title = "SNMP counter rates (per second)"
    if rates.empty:
        rep.notes.append("SNMP samples hold no counter with two samples: no rates")
        return
    summary = rate_summary(rates, keys).sort_values("mean_rate", ascending=False, ignore_index=True)
    rep.tables[title] = summary
    if "t" in rates:
        rep.figures.append(
            plots.rate_lines(rates, rep.out / "snmp_rates.png", by=keys, title="SNMP counter rates")
        )


def _metrics_section(rep: Report, metrics: pd.DataFrame) -> None:
    grouped = metrics.groupby(["namespace", "metric", "unit"], dropna=False)["value"]
    rep.tables["metrics"] = grouped.agg(["count", "mean", "max", "sum"]).reset_index()
    if "t" not in metrics:
        return
    dims = ["load_balancer", "target_group", "target"]
    names = metrics["metric"].dropna().unique().tolist()
    for name in names[:MAX_METRIC_FIGURES]:
        frame = metrics[metrics["metric"] == name]
        by = [d for d in dims if frame[d].notna().any()] or None
        rep.figures.append(
            plots.rate_lines(
                frame.fillna(dict.fromkeys(dims, "-")),
                rep.out / f"metric_{_slug(name)}.png",
                y="value",
                by=by,
                ylabel=str(frame["unit"].dropna().iloc[0])
                if frame["unit"].notna().any()
                else "value",
                title=str(name),
            )
        )
    if len(names) > MAX_METRIC_FIGURES:
        rep.notes.append(f"figures for the first {MAX_METRIC_FIGURES} of {len(names)} metrics")


def _run_line(results: Results) -> str:
    meta = results.meta
    start, end = meta.get("start"), meta.get("end")
    duration = (
        f"{float(end) - float(start):.1f} s"
        if isinstance(start, (int, float)) and isinstance(end, (int, float))
        else "unknown"
    )
    parts = [
        ("experiment", results.experiment),
        ("commit", meta.get("git_commit")),
        ("datapath", meta.get("datapath")),
        ("seed", meta.get("seed")),
        ("duration", duration),
    ]
    return "  ".join(f"{k}: {v if v is not None else '-'}" for k, v in parts)


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1e3 else f"{value:.4g}"


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")[:60] or "table"


def _jsonable(value: Any) -> Any:
    """Plain JSON values: NaN and pandas NA become null, numpy scalars become Python ones."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return json.loads(json.dumps(value, default=str))
