"""SNMP poller throughput: one pysnmp poller, many net-snmp agents, over the lab network.

A generated stack holds `agents` instances running snmpd (over two AZs) and one instance
without an agent, "Manager", where the poller runs. For each poll interval the poller asks
every agent for `objects` for `duration` seconds (interval 0: each agent is polled again as
soon as it answered, which measures the poller's ceiling). Writes bench_snmp.csv (one row
per interval: objects/s, polls/s, per-poll latency percentiles, timeouts), the raw rows and
polls of each run, and bench_snmp.png.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testbed.lab.api import random_name, start_lab, stop_lab
from testbed.results import ResultsDir
from testbed.snmp import manager

if TYPE_CHECKING:  # pandas is imported where the data is (the CLI starts faster)
    import pandas as pd

PARAMS = {
    "agents": (20, "instances running an SNMP agent"),
    "duration": (15.0, "seconds of polling per interval"),
    "intervals": ([1.0, 0.2, 0.0], "poll intervals in seconds (0: back to back)"),
    "objects": (
        "sysUpTime,ifHCInOctets,ifHCOutOctets,ifInOctets,ifOutOctets,ifInErrors,ifOutErrors",
        "objects polled on every agent (comma-separated)",
    ),
    "seed": (None, "recorded for re-runs (the benchmark itself is deterministic)"),
}


def generated_template(agents: int) -> str:
    """A VPC over two AZs with `agents` instances (snmpd) and a Manager instance without."""
    lines = [
        'AWSTemplateFormatVersion: "2010-09-09"',
        f"Description: bench_snmp stack with {agents} SNMP agents",
        "Resources:",
        "  VPC: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.30.0.0/16}}",
    ]
    for i, az in enumerate("ab"):
        lines.append(
            f"  Sub{i}: {{Type: AWS::EC2::Subnet, Properties: {{VpcId: !Ref VPC, "
            f"AvailabilityZone: us-east-1{az}, CidrBlock: 10.30.{i}.0/24}}}}"
        )
    lines.append(
        "  Manager: {Type: AWS::EC2::Instance, Metadata: {Lab: {Snmp: false}}, "
        "Properties: {SubnetId: !Ref Sub0}}"
    )
    for k in range(agents):
        lines.append(
            f"  Agent{k}: {{Type: AWS::EC2::Instance, Properties: {{SubnetId: !Ref Sub{k % 2}}}}}"
        )
    return "\n".join(lines) + "\n"


def _count_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def run(params: dict[str, Any], results: ResultsDir) -> dict[str, Any]:
    import pandas as pd

    template = results.file("stack.yaml")
    template.write_text(generated_template(params["agents"]))
    objects = [o.strip() for o in params["objects"].split(",") if o.strip()]
    name = random_name("bs")
    runs = []
    try:
        t0 = time.monotonic()
        start_lab(str(template), name=name)
        print(
            f"  lab {name} up in {time.monotonic() - t0:.1f} s with {params['agents']} agents",
            flush=True,
        )
        for interval in params["intervals"]:
            out = results.file(f"rows-{interval:g}s.csv")
            summary = manager.monitor(
                name,
                out,
                objects=objects,
                interval=interval,
                duration=params["duration"],
                vantage_host="Manager",
            )
            polls = _count_rows(out.with_name(out.stem + ".polls.csv"))
            lat = summary.latency_ms
            row = {
                "interval_s": interval,
                "agents": summary.agents,
                "objects_per_s": summary.objects_per_s,
                "polls_per_s": round(len(polls) / summary.seconds, 1),
                "values": summary.values,
                "timeouts": summary.timeouts,
                "errors": summary.errors,
                "latency_p50_ms": lat["p50"],
                "latency_p95_ms": lat["p95"],
                "latency_p99_ms": lat["p99"],
                "seconds": summary.seconds,
            }
            runs.append(row)
            print(
                f"  interval {interval:g} s: {row['objects_per_s']:.0f} objects/s, "
                f"{row['polls_per_s']:.0f} polls/s, latency p50 {lat['p50']:.1f} ms "
                f"p95 {lat['p95']:.1f} ms, {summary.timeouts} timeouts",
                flush=True,
            )
    finally:
        stop_lab(name)
    df = pd.DataFrame(runs)
    df.to_csv(results.file("bench_snmp.csv"), index=False)
    print("\n" + df.to_string(index=False))
    _plot(df, results)
    best = max(runs, key=lambda r: r["objects_per_s"])
    return {
        "agents": params["agents"],
        "objects": objects,
        "runs": runs,
        "max_objects_per_s": best["objects_per_s"],
    }


def _plot(df: pd.DataFrame, results: ResultsDir) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    labels = [f"{i:g} s" if i else "back to back" for i in df["interval_s"]]
    ax1.bar(labels, df["objects_per_s"])
    ax1.set_xlabel("poll interval")
    ax1.set_ylabel("objects/s (all agents)")
    ax1.set_title(f"poller throughput, {int(df['agents'].iloc[0])} agents")
    for interval, label in zip(df["interval_s"], labels, strict=True):
        polls = pd.read_csv(results.file(f"rows-{interval:g}s.polls.csv"))
        latency = polls.loc[polls["error"].isna(), "latency_ms"].sort_values()
        if len(latency):
            ax2.plot(
                latency.values, [i / len(latency) for i in range(1, len(latency) + 1)], label=label
            )
    ax2.set_xscale("log")
    ax2.set_xlabel("latency of one poll of one agent (ms)")
    ax2.set_ylabel("fraction of polls")
    ax2.set_title("per-poll latency (CDF)")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(results.file("bench_snmp.png"), dpi=100)
    plt.close(fig)
