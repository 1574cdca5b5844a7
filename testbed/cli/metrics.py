"""testbed metrics: CloudWatch-style per-second metrics of a running lab."""

from __future__ import annotations

import csv
import sys
from typing import Any

from testbed.cli.common import subcommand, table
from testbed.errors import BadInput
from testbed.lab.api import Lab
from testbed.metrics.collector import collect
from testbed.metrics.snmp_metrics import collect_snmp
from testbed.metrics.sources import SOURCES
from testbed.schemas import METRIC_COLUMNS


def register(sub: Any) -> None:
    p = subcommand(
        sub,
        "metrics",
        cmd_metrics,
        "per-second metrics of a running lab (CloudWatch style)",
        epilog="examples:\n  testbed metrics default --duration 10\n"
        "  testbed metrics default --duration 30 --out metrics.csv --source ports\n\n"
        f"sources: {', '.join(SOURCES)}, snmp (every host's agent, polled over the lab\n"
        "network; not in the default set). Rows: time, namespace, metric, load_balancer,\n"
        "target_group, target, value, unit (counters become per-second rates).",
    )
    p.add_argument("name", help="lab name")
    p.add_argument("--duration", type=float, default=10.0, help="seconds (default 10)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds per period")
    p.add_argument("--source", action="append", help="only these sources (repeatable)")
    p.add_argument("--out", help="CSV file for every row")


def cmd_metrics(args: Any) -> int:
    if args.duration <= 0 or args.interval <= 0 or args.interval > args.duration:
        raise BadInput("--duration and --interval must be positive, interval <= duration")
    names = args.source or list(SOURCES)
    unknown = [n for n in names if n not in SOURCES and n != "snmp"]
    if unknown:
        raise BadInput(
            f"unknown source(s) {', '.join(unknown)}", hint=f"sources: {', '.join(SOURCES)}"
        )
    lab = Lab.attach(args.name)
    plan = lab.plan
    sources = [SOURCES[n](lab, plan) for n in names if n != "snmp"]
    print(f"collecting {', '.join(names)} for {args.duration:g} s ...", file=sys.stderr, flush=True)
    snmp_rows: list = []
    poller = None
    if "snmp" in names:
        import threading

        poller = threading.Thread(
            target=lambda: snmp_rows.extend(collect_snmp(args.name, args.duration, args.interval))
        )
        poller.start()
    rows = (
        collect(
            sources,
            args.duration,
            args.interval,
            on_rows=lambda r: print(".", end="", file=sys.stderr, flush=True),
        )
        if sources
        else []
    )
    if poller is not None:
        poller.join()
        rows += snmp_rows
    print(file=sys.stderr)
    if args.out:
        with open(args.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
            w.writeheader()
            w.writerows(rows)
    summary: dict[tuple, list[float]] = {}
    for r in rows:
        key = (
            r["namespace"],
            r["metric"],
            r["load_balancer"],
            r["target_group"],
            r["target"],
            r["unit"],
        )
        summary.setdefault(key, []).append(r["value"])
    shown = [
        (*k[:5], round(sum(v) / len(v), 1), max(v), k[5])
        for k, v in sorted(summary.items())
        if max(v) > 0
    ]
    print(
        table(shown, ["NAMESPACE", "METRIC", "LB", "TG", "TARGET", "AVG", "MAX", "UNIT"])
        if shown
        else "every metric stayed at 0"
    )
    if args.out:
        print(f"{len(rows)} rows: {args.out}")
    return 0
