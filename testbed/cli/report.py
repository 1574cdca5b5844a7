"""testbed report: tables and PNG figures of one experiment's results directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from testbed.analysis.load import latest, newest_run
from testbed.analysis.report import report
from testbed.cli.common import subcommand
from testbed.errors import BadInput
from testbed.paths import results_root


def register(sub: Any) -> None:
    p = subcommand(
        sub,
        "report",
        run,
        "summarise a results directory: tables and PNG figures",
        epilog="examples:\n  testbed report results/bench_lab/20250101-120000\n"
        "  testbed report bench_lab                  the newest results of bench_lab\n"
        "  testbed report results/bench_lab          the same\n"
        "  testbed report bench_lab --out /tmp/fig   figures somewhere else\n"
        "  testbed report bench_lab --json           machine-readable tables\n\n"
        "Prints the tables that apply to the files present (shares and balance, latency\n"
        "percentiles, errors, failover times, SNMP counter rates, metrics) and writes a\n"
        "PNG per figure plus the tables as CSV into RESULTS_DIR/report/. Exit 2 when the\n"
        "directory has no meta.json or a CSV is malformed.",
    )
    p.add_argument(
        "results",
        metavar="RESULTS_DIR",
        help="a results/<experiment>/<timestamp>/ directory, or an experiment name "
        "(its newest results)",
    )
    p.add_argument("--out", help="directory for figures and tables (default RESULTS_DIR/report)")
    p.add_argument(
        "--bin",
        type=float,
        default=1.0,
        dest="bin_s",
        metavar="SECONDS",
        help="time bin of the rate figures (default 1 s)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


def resolve(target: str) -> Path:
    """A results directory: a run's path, an experiment's folder or name (its newest run)."""
    path = Path(target)
    if path.is_dir():
        # results/<experiment>/ itself: its newest run
        return path if (path / "meta.json").exists() else newest_run(path) or path
    if (results_root() / target / "meta.json").is_file():
        return results_root() / target
    if "/" not in target and target not in (".", ".."):
        return latest(target)
    raise BadInput(
        "no such results directory",
        file=target,
        hint="give results/<experiment>/<timestamp>/ or an experiment name",
    )


def run(args: Any) -> int:
    if args.bin_s <= 0:
        raise BadInput(f"--bin must be positive, got {args.bin_s:g}")
    rep = report(resolve(args.results), out=args.out, bin_s=args.bin_s)
    if args.json:
        print(json.dumps(rep.to_dict(), indent=1))
    else:
        print(rep.text())
    return 0
