"""Security group cost: a target behind a 50-rule group vs the same target unfiltered.

One lab, measured in one run so the ratios hold on a shared machine. One subnet: a client
and two identical http-backend targets share one AZ switch, so both paths cross the same
switch and differ only by the security-group checks on the target's port:
  Filtered  in group Sg50: 49 rules that do not match the client's traffic (other sources,
            other ports, other protocols) and, last, the one that allows the client;
  Open      Metadata {Lab: {Unfiltered: true}}: the lab programs no security group check on
            its port (a benchmark baseline: AWS has no such thing). The client is
            unfiltered too, so its own egress check does not weigh on either path.
Measured alternately (Open, then Filtered, `repeats` times): iperf3 throughput and new TCP
connections/s (wrk, HTTP Connection: close). Goals (issue 10): both ratios >= 0.90.
Writes summary.csv (metric, with groups, without, ratio, goal, met), runs.csv and
bench_sg.png.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testbed.errors import LabError
from testbed.lab.api import Lab, random_name
from testbed.results import ResultsDir
from testbed.traffic import iperf3, wrk

if TYPE_CHECKING:  # pandas is imported where the data is (the CLI starts faster)
    import pandas as pd

TEMPLATE = "generated (see stack.yaml in the results)"
PARAMS = {
    "rules": (50, "rules in the target's group (rules - 1 do not match the client)"),
    "seconds": (5.0, "length of each iperf3 / wrk run"),
    "repeats": (3, "runs per case (alternating)"),
    "connections": (50, "wrk connections for the new-connections measurement"),
    "seed": (None, "recorded for re-runs"),
}
GOALS = {"throughput": 0.90, "new_connections": 0.90}

SUBNET = "10.0.0.0/24"
CLIENT_IP = "10.0.0.10"
ADDRESSES = {"Client": CLIENT_IP, "Filtered": "10.0.0.20", "Open": "10.0.0.30"}
GROUP = "Sg50"


def filler_rules(count: int) -> list[dict[str, Any]]:
    """`count` ingress rules that none of the client's traffic (TCP from CLIENT_IP to 80 or
    5201) matches: other sources on any TCP port, the client's subnet on other ports, UDP
    and ICMP. A realistic mix: each kind of match the data plane has to check."""
    rules: list[dict[str, Any]] = []
    for i in range(count):
        kind = i % 4
        if kind == 0:  # another source, every TCP port
            rule = {"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535}
            rule["CidrIp"] = f"172.16.{i}.0/24"
        elif kind == 1:  # the client's subnet, a port range that misses 80 and 5201
            rule = {"IpProtocol": "tcp", "FromPort": 10000 + 10 * i, "ToPort": 10005 + 10 * i}
            rule["CidrIp"] = SUBNET
        elif kind == 2:  # UDP from the client's subnet
            rule = {"IpProtocol": "udp", "FromPort": 20000 + i, "ToPort": 20000 + i}
            rule["CidrIp"] = SUBNET
        else:  # ICMP from elsewhere
            rule = {"IpProtocol": "icmp", "FromPort": 8, "ToPort": -1}
            rule["CidrIp"] = f"192.168.{i}.0/24"
        rules.append(rule)
    return rules


def group_rules(total: int) -> list[dict[str, Any]]:
    """The group's ingress rules: total - 1 fillers, then the one allowing the client."""
    if total < 1:
        raise ValueError("the group needs at least the rule that allows the client")
    allow = {"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535, "CidrIp": f"{CLIENT_IP}/32"}
    return [*filler_rules(total - 1), allow]


def stack_yaml(rules: int) -> str:
    """One VPC, one subnet, the client and both targets; the group with `rules` rules."""
    lines = [
        'AWSTemplateFormatVersion: "2010-09-09"',
        "Description: bench_sg stack (generated)",
        "Resources:",
        "  VPC: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}",
        "  Sub: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref VPC, "
        f"AvailabilityZone: us-east-1a, CidrBlock: {SUBNET}}}}}",
        f"  {GROUP}:",
        "    Type: AWS::EC2::SecurityGroup",
        "    Properties:",
        "      GroupDescription: bench_sg target group",
        "      VpcId: !Ref VPC",
        "      SecurityGroupIngress:",
        *(f"        - {json.dumps(r)}" for r in group_rules(rules)),  # JSON is YAML
    ]
    hosts = (
        ("Client", "{Role: none, Unfiltered: true}", None),
        ("Filtered", "{Role: http-backend}", GROUP),
        ("Open", "{Role: http-backend, Unfiltered: true}", None),
    )
    for name, lab, group in hosts:
        groups = f", SecurityGroupIds: [!Ref {group}]" if group else ""
        lines.append(
            f"  {name}: {{Type: AWS::EC2::Instance, Metadata: {{Lab: {lab}}}, Properties: "
            f"{{SubnetId: !Ref Sub, PrivateIpAddress: {ADDRESSES[name]}{groups}}}}}"
        )
    return "\n".join(lines) + "\n"


def check_plan(lab: Lab, rules: int) -> None:
    """Measure only what the benchmark means: the target filtered by the group's `rules`
    rules, the baseline and the client not filtered at all."""
    plan = lab.plan
    filtered, open_, client = (plan.host(n) for n in ("Filtered", "Open", "Client"))
    problems = []
    if filtered.groups != (GROUP,):
        problems.append(f"Filtered has groups {filtered.groups}, not ({GROUP},)")
    else:
        got = len(plan.security_group(GROUP).ingress)
        if got != rules:
            problems.append(f"{GROUP} has {got} ingress rules in the plan, not {rules}")
    for host in (open_, client):
        if host.groups is not None:
            problems.append(
                f"{host.name} is filtered by {host.groups}: Metadata.Lab.Unfiltered was not applied"
            )
    if problems:
        raise LabError("bench_sg cannot compare: " + "; ".join(problems))


def run(params: dict[str, Any], results: ResultsDir) -> dict[str, Any]:
    import pandas as pd

    template = results.file("stack.yaml")
    template.write_text(stack_yaml(params["rules"]))
    rows: list[dict[str, Any]] = []
    raw: list[dict[str, Any]] = []
    with Lab.up(str(template), name=random_name("bs")) as lab:
        check_plan(lab, params["rules"])
        print(
            f"Filtered {ADDRESSES['Filtered']} behind {params['rules']} rules, "
            f"Open {ADDRESSES['Open']} unfiltered, from Client {CLIENT_IP}",
            flush=True,
        )
        _throughput(lab, params, rows, raw)
        _connections(lab, params, rows, raw)
    pd.DataFrame(raw).to_csv(results.file("runs.csv"), index=False)
    summary = pd.DataFrame(rows)
    summary.to_csv(results.file("summary.csv"), index=False)
    print("\n" + summary.to_string(index=False))
    _plot(summary, results.file("bench_sg.png"))
    results.write_meta(goals=GOALS)
    return {"summary": summary.to_dict(orient="records")}


def alternate(repeats: int, measure: Callable[[str, int], float]) -> tuple[float, float]:
    """Medians (with groups, without) of `measure(target, repeat)`, alternating the two
    targets so that both see the same machine."""
    grouped: list[float] = []
    bare: list[float] = []
    for rep in range(repeats):
        bare.append(measure("Open", rep))
        grouped.append(measure("Filtered", rep))
    return statistics.median(grouped), statistics.median(bare)


def _row(metric: str, grouped: float, bare: float, unit: str) -> dict[str, Any]:
    ratio = grouped / bare if bare else 0.0
    return {
        "metric": metric,
        "with_groups": round(grouped, 4),
        "without_groups": round(bare, 4),
        "ratio": round(ratio, 4),
        "unit": unit,
        "goal": f">= {GOALS[metric]:.2f} of unfiltered",
        "met": ratio >= GOALS[metric],
    }


def _throughput(
    lab: Lab, params: dict[str, Any], rows: list[dict[str, Any]], raw: list[dict[str, Any]]
) -> None:
    def measure(target: str, rep: int) -> float:
        res = iperf3(lab, server=target, client="Client", seconds=params["seconds"])
        bps = float(res["bits_per_second"])
        raw.append({"test": "iperf3", "target": target, "repeat": rep, "value": bps})
        print(f"  iperf3 {target:8s} {bps / 1e9:6.2f} Gbit/s", flush=True)
        return bps

    grouped, bare = alternate(params["repeats"], measure)
    rows.append(_row("throughput", grouped / 1e9, bare / 1e9, "Gbit/s"))


def _connections(
    lab: Lab, params: dict[str, Any], rows: list[dict[str, Any]], raw: list[dict[str, Any]]
) -> None:
    def measure(target: str, rep: int) -> float:
        res = wrk(
            lab,
            "Client",
            f"http://{ADDRESSES[target]}/",
            seconds=params["seconds"],
            connections=params["connections"],
            keepalive=False,
        )
        rate = float(res["requests_per_second"])
        raw.append(
            {
                "test": "wrk-new-connections",
                "target": target,
                "repeat": rep,
                "value": rate,
                "errors": res["errors"],
            }
        )
        print(f"  new conn {target:8s} {rate:8.0f}/s (errors {res['errors']})", flush=True)
        return rate

    grouped, bare = alternate(params["repeats"], measure)
    rows.append(_row("new_connections", grouped, bare, "conn/s"))


def _plot(summary: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    colors = ["tab:green" if m else "tab:red" for m in summary["met"]]
    ax.bar(summary["metric"], summary["ratio"], color=colors)
    ax.axhline(0.90, color="black", linestyle="--", linewidth=0.8, label="goal 0.90")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_ylabel("50-rule group / unfiltered")
    ax.set_title("Security group cost, same switch, one run")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
