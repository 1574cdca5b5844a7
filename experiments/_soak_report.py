"""The soak's results (private to testbed.experiments.soak): what a run collected, the
windows of expected errors, the files, the summary table and the figure.

summary.csv has one row per measurement: phase (nlb, alb or end), metric, value, unit, goal,
met, detail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from testbed.analysis import error_kind
from testbed.analysis.plots import soak_timeline
from testbed.analysis.soak import EXPECTED, UNEXPECTED, classify_failures, rss_growth
from testbed.experiments._nlb import write_events_csv
from testbed.experiments._soak_schedule import EVENT_COLUMNS, KINDS, REPAIR
from testbed.experiments._soak_stack import Phase
from testbed.probes.footprint import flow_difference

RSS_GROWTH_GOAL = 0.10
MIB = 1024.0


@dataclass
class Recorder:
    """Everything a run collects; the load loop, the sampler and the schedule threads
    append to it (list appends are atomic)."""

    chunks: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    failures: list[pd.DataFrame] = field(default_factory=list)  # failed requests per chunk
    rates: list[pd.DataFrame] = field(default_factory=list)  # per second: requests, failed
    phases: list[dict[str, Any]] = field(default_factory=list)  # one per phase that ran
    phase: str = ""  # the phase running now (samples name it)


def windows(events: pd.DataFrame, grace: float) -> pd.DataFrame:
    """The windows of expected errors: each stop or refuse, from the fault until the load
    balancer acted on the unhealthy state (or the repair, if it never did) plus grace."""
    rows = []
    for e in events.to_dict("records"):
        if e["kind"] not in REPAIR:
            continue
        acted = e.get("applied")
        if acted is None or pd.isna(acted):
            acted = e["repair"]
        rows.append(
            {
                "phase": e["phase"],
                "event": e["event"],
                "kind": e["kind"],
                "target": e["target"],
                "start": float(e["action"]),
                "end": float(acted) + grace,
            }
        )
    return pd.DataFrame(rows, columns=["phase", "event", "kind", "target", "start", "end"])


def write_results(
    results: Any,
    rec: Recorder,
    phases: list[Phase],
    baseline: dict[str, Any],
    end: dict[str, Any],
    target_events: list[Any],
    params: dict[str, Any],
) -> dict[str, Any]:
    """Every file of the run, the printed summary table; the summary for meta.json."""
    t_start = float(results.meta["start"])
    events = pd.DataFrame(rec.events, columns=list(EVENT_COLUMNS))
    events = events.sort_values("action", ignore_index=True)
    events.to_csv(results.file("events.csv"), index=False)
    write_events_csv(target_events, results.file("target_events.csv"))
    failures = (
        pd.concat(rec.failures, ignore_index=True)
        if rec.failures
        else pd.DataFrame(columns=["phase", "start", "latency_ms", "backend", "error", "status"])
    )
    failures = classify_failures(failures, windows(events, float(params["grace"])))
    failures.to_csv(results.file("errors.csv"), index=False)
    pd.DataFrame(rec.chunks).to_csv(results.file("chunks.csv"), index=False)
    samples = pd.DataFrame(
        rec.samples, columns=["time", "phase", "chunk", "what", "process", "pid", "value"]
    )
    samples.to_csv(results.file("samples.csv"), index=False)
    rates = per_second(rec, failures)
    rates.to_csv(results.file("rates.csv"), index=False)

    rows: list[dict[str, Any]] = []
    for phase in phases:
        _phase_rows(rows, phase, rec, events, failures, samples, params)
    _end_rows(rows, baseline, end)
    summary = pd.DataFrame(rows)
    summary.to_csv(results.file("summary.csv"), index=False)
    _figure(results, rec, samples, rates, events, t_start)
    met = bool(summary["met"].all())
    with pd.option_context("display.max_colwidth", 100, "display.width", 250):
        print("\n" + summary.to_string(index=False))
    print(f"\nall goals met: {met}", flush=True)
    return {"goals_met": met, "summary": summary.to_dict(orient="records")}


def per_second(rec: Recorder, failures: pd.DataFrame) -> pd.DataFrame:
    """Per phase and second: requests started, and the failures among them by class."""
    columns = ["phase", "second", "requests", EXPECTED, UNEXPECTED]
    if not rec.rates:
        return pd.DataFrame(columns=columns)
    counts = pd.concat(rec.rates).groupby(["phase", "second"], as_index=False)["requests"].sum()
    for column in (EXPECTED, UNEXPECTED):
        mine = failures[failures["class"] == column]
        seconds = mine["start"].astype(float).floordiv(1.0)
        per = mine.assign(second=seconds).groupby(["phase", "second"]).size().rename(column)
        counts = counts.merge(per.reset_index(), on=["phase", "second"], how="left")
        counts[column] = counts[column].fillna(0).astype(int)
    return pd.DataFrame(counts[columns])


def _figure(
    results: Any,
    rec: Recorder,
    samples: pd.DataFrame,
    rates: pd.DataFrame,
    events: pd.DataFrame,
    t_start: float,
) -> None:
    rss = samples[samples["what"] == "rss_kib"]
    soak_timeline(
        pd.DataFrame(
            {
                "t": rss["time"].astype(float) - t_start,
                "process": rss["process"],
                "rss_mib": rss["value"].astype(float) / MIB,
            }
        ),
        rates.assign(t=rates["second"].astype(float) - t_start),
        results.file("soak.png"),
        phases=[(p["phase"], p["start"] - t_start, p["end"] - t_start) for p in rec.phases],
        faults=[float(a) - t_start for a in events.loc[events["kind"].isin(REPAIR), "action"]],
        title="soak: RSS of the lab's processes (top); requests and failed ones per second",
    )


def _row(
    rows: list[dict[str, Any]],
    phase: str,
    metric: str,
    value: Any,
    unit: str,
    goal: str = "reported",
    met: bool = True,
    detail: str = "",
) -> None:
    rows.append(
        {
            "phase": phase,
            "metric": metric,
            "value": value,
            "unit": unit,
            "goal": goal,
            "met": bool(met),
            "detail": detail,
        }
    )


def _phase_rows(
    rows: list[dict[str, Any]],
    phase: Phase,
    rec: Recorder,
    events: pd.DataFrame,
    failures: pd.DataFrame,
    samples: pd.DataFrame,
    params: dict[str, Any],
) -> None:
    info = next((p for p in rec.phases if p["phase"] == phase.name), None)
    if info is None:
        _row(rows, phase.name, phase.unit, 0, phase.unit, "run", False, "the phase did not end")
        return
    seconds = max(1e-9, info["end"] - info["start"])
    _row(
        rows,
        phase.name,
        phase.unit,
        info["done"],
        phase.unit,
        f">= {info['wanted']:,} within {params['max_seconds']:g} s",
        info["done"] >= info["wanted"],
        f"{info['chunks']} chunks in {seconds:.0f} s ({info['done'] / seconds:,.0f}/s)"
        + ("" if info["done"] >= info["wanted"] else "; the count was NOT reached in time"),
    )
    mine = failures[failures["phase"] == phase.name]
    expected = mine[mine["class"] == EXPECTED]
    unexpected = mine[mine["class"] == UNEXPECTED]
    by_fault = expected["window"].map(dict(zip(events["event"], events["kind"])))
    _row(
        rows,
        phase.name,
        "errors_expected",
        len(expected),
        phase.unit,
        detail=_counts(error_kind(expected))
        + (f" (by fault: {_counts(by_fault)})" if len(expected) else ""),
    )
    _row(
        rows,
        phase.name,
        "errors_unexpected",
        len(unexpected),
        phase.unit,
        "0",
        len(unexpected) == 0,
        _counts(error_kind(unexpected)),
    )
    mine_events = events[events["phase"] == phase.name]
    for kind in KINDS:
        of_kind = mine_events[mine_events["kind"] == kind]
        troubles = of_kind[of_kind["error"].fillna("").astype(str) != ""]
        _row(
            rows,
            phase.name,
            f"events_{kind}",
            len(of_kind),
            "events",
            "> 0, each completed",
            len(of_kind) > 0 and troubles.empty,
            "; ".join(f"{t}: {e}" for t, e in zip(troubles["target"], troubles["error"])),
        )
    _rss_rows(rows, phase, samples)


def _rss_rows(rows: list[dict[str, Any]], phase: Phase, samples: pd.DataFrame) -> None:
    """RSS growth per process after the warm-up (the phase's first half: from its middle to
    its end; testbed.analysis.soak); a phase of fewer than three chunks has no warm-up: its
    growth is only reported."""
    boundary = samples[
        (samples["what"] == "rss_kib") & (samples["phase"] == phase.name) & (samples["chunk"] >= 0)
    ].rename(columns={"value": "rss_kib"})
    warmed = boundary["chunk"].nunique() >= 4
    for g in rss_growth(boundary).to_dict("records"):
        growth = float(g["growth"])
        notes = []
        if g["process"] == "ovs-vswitchd":
            notes.append("the machine's: other labs count too")
        if " " in str(g["pids"]):
            notes.append(f"pids {g['pids']}")
        if not warmed:
            notes.append("too few chunks (fewer than 3) for a warm-up")
        _row(
            rows,
            phase.name,
            f"rss_growth {g['process']}",
            round(growth * 100, 2),
            "%",
            f"<= {RSS_GROWTH_GOAL:.0%}" if warmed else "reported",
            growth <= RSS_GROWTH_GOAL or not warmed,
            f"start {g['start_mib']:.1f} MiB, middle {g['middle_mib']:.1f}, "
            f"end {g['end_mib']:.1f} ({g['growth_from_start']:+.1%} from start)"
            + "".join(f"; {n}" for n in notes),
        )


def _counts(values: pd.Series) -> str:
    return ", ".join(f"{k} {v}" for k, v in values.value_counts().items())


def _end_rows(rows: list[dict[str, Any]], baseline: dict[str, Any], end: dict[str, Any]) -> None:
    before = sum(baseline["conntrack"].values())
    right_after = f"{end['conntrack_at_end']} right after the load"
    _row(
        rows,
        "end",
        "conntrack_entries",
        end["conntrack_settled"],
        "entries",
        f"<= baseline {before} (lab's zones)",
        end["settled"],
        f"{right_after}, at the baseline after {end['settle_s']:.0f} s"
        if end["settled"]
        else f"{right_after}, still above the baseline after {end['settle_s']:.0f} s",
    )
    flows_before = sum(sum(c.values()) for c in baseline["flows"].values())
    flows_after = sum(sum(c.values()) for c in end["flows"].values())
    changed = flow_difference(baseline["flows"], end["flows"])
    _row(
        rows,
        "end",
        "flows",
        flows_after,
        "flows",
        f"= baseline {flows_before} (lab's bridges), none different",
        changed == 0 and flows_after == flows_before,
        f"{changed} flows differ from the baseline (added or removed)",
    )
