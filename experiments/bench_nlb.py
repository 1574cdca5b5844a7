"""NLB cost and quality: throughput, new connections/s, RTT, balance, disruption; vs direct.

One lab, measured in one run so the ratios hold on a shared machine: a client, an internal
NLB and the targets share the client's AZ switch, so "direct" (client -> target) and "via
the NLB" (client -> node address -> target) cross the same switches. Listeners:
  80   -> every target (balance over >= 10,000 new connections, cross-zone on)
  8080 -> one target (new connections/s with wrk, HTTP Connection: close, vs the same target)
  5201 -> one target (iperf3 throughput vs the same target)
  9000 -> every target (long-lived TCP flows; one target is made unhealthy: do the others'
          flows move?)
Writes summary.csv (one row per metric: via NLB, direct, ratio, target), the raw runs,
requests.csv of the balance run, and bench_nlb.png.
"""

from __future__ import annotations

import statistics
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testbed import rpc
from testbed.analysis.stats import coefficient_of_variation
from testbed.lab.api import Lab, random_name
from testbed.messages import TerminateRequest
from testbed.naming import CONTROLLER_SOCK
from testbed.probes.echo import echo_rtt
from testbed.probes.rtt import rtt_probe
from testbed.results import ResultsDir
from testbed.traffic import established_from, iperf3, run_load, wrk

if TYPE_CHECKING:  # pandas is imported where the data is (the CLI starts faster)
    import pandas as pd

TEMPLATE = "generated (see stack.yaml in the results)"
PARAMS = {
    "targets_per_az": (3, "targets in each of the two AZs"),
    "balance_flows": (10000, "new connections for the balance measurement"),
    "seconds": (5.0, "length of each iperf3 / wrk run"),
    "repeats": (3, "runs per throughput / connection-rate case (alternating)"),
    "rtt_samples": (400, "echo round trips (and half as many handshakes) per RTT measurement"),
    "held_flows": (60, "long-lived flows for the disruption measurement"),
    "seed": (None, "recorded for re-runs"),
}
TARGETS_GOALS = {
    "throughput": 0.90,
    "new_connections": 0.80,
    "rtt_added": 0.10,
    "balance_cov": 0.05,
    "moved_flows": 0,
}


def stack_yaml(per_az: int) -> str:
    """An internal NLB over two AZs with `per_az` http-backend targets in each."""
    lines = [
        'AWSTemplateFormatVersion: "2010-09-09"',
        "Description: bench_nlb stack (generated)",
        "Resources:",
        "  VPC: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}",
        "  SubA: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref VPC, "
        "AvailabilityZone: us-east-1a, CidrBlock: 10.0.0.0/24}}",
        "  SubB: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref VPC, "
        "AvailabilityZone: us-east-1b, CidrBlock: 10.0.1.0/24}}",
        "  Client: {Type: AWS::EC2::Instance, Metadata: {Lab: {Role: none}}, "
        "Properties: {SubnetId: !Ref SubA}}",
        # The targets take anything from inside the VPC (the NLB's health checks come from
        # its nodes, which are in no group: AWS's default group would refuse them).
        "  Inside: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: inside, "
        "VpcId: !Ref VPC, SecurityGroupIngress: [{IpProtocol: '-1', CidrIp: 10.0.0.0/16}]}}",
    ]
    names = []
    for az, subnet in (("A", "SubA"), ("B", "SubB")):
        for i in range(1, per_az + 1):
            name = f"Web{az}{i}"
            names.append(name)
            lines.append(
                f"  {name}: {{Type: AWS::EC2::Instance, Metadata: {{Lab: {{Role: "
                f"http-backend}}}}, Properties: {{SubnetId: !Ref {subnet}, "
                f"SecurityGroupIds: [!Ref Inside]}}}}"
            )
    lines += [
        "  NLB: {Type: AWS::ElasticLoadBalancingV2::LoadBalancer, Properties: "
        "{Type: network, Scheme: internal, Subnets: [!Ref SubA, !Ref SubB], "
        "LoadBalancerAttributes: [{Key: load_balancing.cross_zone.enabled, "
        "Value: 'true'}]}}"
    ]
    every = ", ".join(f"{{Id: !Ref {n}}}" for n in names)
    groups = (
        ("All80", "TCP", 80, every, 80),
        ("One80", "TCP", 80, "{Id: !Ref WebA1}", 8080),
        ("Iperf", "TCP", 5201, "{Id: !Ref WebA1}", 5201),
        ("Echo", "TCP", 9000, every, 9000),
    )
    for tg, proto, port, targets, listen in groups:
        lines.append(
            f"  {tg}: {{Type: AWS::ElasticLoadBalancingV2::TargetGroup, Properties: "
            f"{{Protocol: {proto}, Port: {port}, VpcId: !Ref VPC, "
            f"HealthCheckPort: '80', HealthCheckIntervalSeconds: 5, "
            f"HealthCheckTimeoutSeconds: 4, HealthyThresholdCount: 2, "
            f"UnhealthyThresholdCount: 2, Targets: [{targets}]}}}}"
        )
        lines.append(
            f"  L{listen}: {{Type: AWS::ElasticLoadBalancingV2::Listener, Properties:"
            f" {{LoadBalancerArn: !Ref NLB, Protocol: {proto}, Port: {listen}, "
            f"DefaultActions: [{{Type: forward, TargetGroupArn: !Ref {tg}}}]}}}}"
        )
    return "\n".join(lines) + "\n"


def run(params: dict[str, Any], results: ResultsDir) -> dict[str, Any]:
    import pandas as pd

    template = results.file("stack.yaml")
    template.write_text(stack_yaml(params["targets_per_az"]))
    rows: list[dict[str, Any]] = []
    raw: list[dict[str, Any]] = []
    with Lab.up(str(template), name=random_name("bn")) as lab:
        # A target still in its initial health checks takes no new flows: a phase started
        # before every target is healthy measures the wrong set (the balance most of all).
        took = lab.wait_healthy()
        print(f"every target healthy after {took:.1f} s", flush=True)
        state = lab.state
        node = next(n for n in state["load_balancers"][0]["nodes"] if n["az"] == "us-east-1a")
        vip, target = node["ip"], lab.host("WebA1").ip
        print(f"NLB node {vip} (us-east-1a); direct target WebA1 {target}", flush=True)
        _throughput(lab, vip, target, params, rows, raw)
        _connections(lab, vip, target, params, rows, raw)
        _rtt(lab, vip, target, params, rows, raw)
        _balance(lab, vip, params, rows, results)
        _disruption(lab, vip, params, rows)
    pd.DataFrame(raw).to_csv(results.file("runs.csv"), index=False)
    summary = pd.DataFrame(rows)
    summary.to_csv(results.file("summary.csv"), index=False)
    print("\n" + summary.to_string(index=False))
    _plot(summary, results.file("bench_nlb.png"))
    results.write_meta(goals=TARGETS_GOALS)
    return {"summary": summary.to_dict(orient="records")}


def _row(
    metric: str,
    via: float,
    direct: float | None,
    ratio: float | None,
    goal: str,
    ok: bool,
    unit: str,
) -> dict[str, Any]:
    return {
        "metric": metric,
        "via_nlb": round(via, 4),
        "direct": None if direct is None else round(direct, 4),
        "ratio": None if ratio is None else round(ratio, 4),
        "unit": unit,
        "goal": goal,
        "met": ok,
    }


def _alternate(
    lab: Lab, target: str, repeats: int, measure: Callable[[str, int], float]
) -> tuple[float, float]:
    """Medians (via the NLB, direct) of `measure(path, repeat)` run `repeats` times on each
    path, alternating so that both see the same machine; the NLB's connections to the
    target are forgotten before each direct run (see _flush_nlb_flows)."""
    via: list[float] = []
    direct: list[float] = []
    for rep in range(repeats):
        _flush_nlb_flows(lab, target)
        direct.append(measure("direct", rep))
        via.append(measure("nlb", rep))
    return statistics.median(via), statistics.median(direct)


def _throughput(
    lab: Lab,
    vip: str,
    target: str,
    params: dict[str, Any],
    rows: list[dict[str, Any]],
    raw: list[dict[str, Any]],
) -> None:
    def measure(kind: str, rep: int) -> float:
        addr = target if kind == "direct" else vip
        res = iperf3(
            lab, server="WebA1", client="Client", target_ip=addr, seconds=params["seconds"]
        )
        raw.append({"test": "iperf3", "path": kind, "repeat": rep, "value": res["bits_per_second"]})
        print(f"  iperf3 {kind:6s} {res['bits_per_second'] / 1e9:6.2f} Gbit/s", flush=True)
        return float(res["bits_per_second"])

    v, d = _alternate(lab, target, params["repeats"], measure)
    rows.append(
        _row(
            "throughput",
            v / 1e9,
            d / 1e9,
            v / d,
            ">= 0.90 of direct",
            v / d >= TARGETS_GOALS["throughput"],
            "Gbit/s",
        )
    )


def _connections(
    lab: Lab,
    vip: str,
    target: str,
    params: dict[str, Any],
    rows: list[dict[str, Any]],
    raw: list[dict[str, Any]],
) -> None:
    def measure(kind: str, rep: int) -> float:
        url = f"http://{target}/" if kind == "direct" else f"http://{vip}:8080/"
        res = wrk(lab, "Client", url, seconds=params["seconds"], connections=50, keepalive=False)
        raw.append(
            {
                "test": "wrk-new-connections",
                "path": kind,
                "repeat": rep,
                "value": res["requests_per_second"],
                "errors": res["errors"],
            }
        )
        print(
            f"  new conn {kind:6s} {res['requests_per_second']:8.0f}/s (errors {res['errors']})",
            flush=True,
        )
        return float(res["requests_per_second"])

    v, d = _alternate(lab, target, params["repeats"], measure)
    rows.append(
        _row(
            "new_connections",
            v,
            d,
            v / d,
            ">= 0.80 of direct",
            v / d >= TARGETS_GOALS["new_connections"],
            "conn/s",
        )
    )


def _rtt(
    lab: Lab,
    vip: str,
    target: str,
    params: dict[str, Any],
    rows: list[dict[str, Any]],
    raw: list[dict[str, Any]],
) -> None:
    """RTT of an established flow (echo round trips) and of connection set-up (handshake,
    timed on the wire), via the NLB and straight to the same target."""
    medians = {}
    for kind, addr in (("direct", target), ("nlb", vip)):
        res = echo_rtt(lab, "Client", f"{addr}:9000", samples=params["rtt_samples"])
        samples = sorted(res["rtt_us"])
        medians[kind] = statistics.median(samples) / 1000
        raw.append(
            {
                "test": "established-rtt",
                "path": kind,
                "repeat": 0,
                "value": medians[kind],
                "p90": samples[int(0.9 * len(samples))] / 1000,
                "p99": samples[int(0.99 * len(samples))] / 1000,
                "samples": len(samples),
                "backend": res["backend"],
            }
        )
        print(f"  established rtt {kind:6s} p50 {medians[kind]:.3f} ms", flush=True)
    added = medians["nlb"] / medians["direct"] - 1
    rows.append(
        _row(
            "rtt_added",
            medians["nlb"],
            medians["direct"],
            added,
            "<= 10 % added",
            added <= TARGETS_GOALS["rtt_added"],
            "ms (p50, established flow)",
        )
    )
    _flush_nlb_flows(lab, target)
    hs = rtt_probe(
        lab, "Client", via=f"{vip}:8080", direct=f"{target}:80", samples=params["rtt_samples"] // 2
    )
    raw.append(
        {
            "test": "handshake-rtt",
            "path": "nlb",
            "repeat": 0,
            "value": hs.via.p50_ms,
            "p90": hs.via.p90_ms,
            "p99": hs.via.p99_ms,
        }
    )
    raw.append(
        {
            "test": "handshake-rtt",
            "path": "direct",
            "repeat": 0,
            "value": hs.direct.p50_ms,
            "p90": hs.direct.p90_ms,
            "p99": hs.direct.p99_ms,
        }
    )
    print(
        f"  handshake rtt nlb p50 {hs.via.p50_ms:.3f} ms, direct {hs.direct.p50_ms:.3f} ms",
        flush=True,
    )
    rows.append(
        _row(
            "handshake_rtt",
            hs.via.p50_ms,
            hs.direct.p50_ms,
            hs.via.p50_ms / hs.direct.p50_ms - 1,
            "reported (flow set-up)",
            True,
            "ms (p50, SYN to SYN-ACK)",
        )
    )


def _flush_nlb_flows(lab: Lab, target: str) -> None:
    """Forget the NLB's connections to `target`: with the client address preserved, a
    direct connection reusing a port of a recent NLB connection is the same 4-tuple at the
    target, and conntrack would take its answers for the NLB connection's."""
    lb = lab.state["load_balancers"][0]["name"]
    for port in (80, 9000, 5201):
        # A port without connections is fine: the reply is not looked at.
        request = TerminateRequest(op="terminate", lb=lb, ip=target, port=port)
        rpc.call(str(lab.dir / CONTROLLER_SOCK), request)


def _balance(
    lab: Lab, vip: str, params: dict[str, Any], rows: list[dict[str, Any]], results: ResultsDir
) -> None:
    df = run_load(
        lab,
        "Client",
        f"http://{vip}/",
        requests=params["balance_flows"],
        concurrency=20,
        out=results.file("requests.csv"),
        timeout=10,
    )
    counts = df[df["error"].isna()].groupby("backend").size()
    cov = float(coefficient_of_variation(counts))
    shares = ", ".join(f"{k} {v}" for k, v in counts.items())
    print(f"  balance over {len(df)} connections: CoV {cov:.3%} ({shares})", flush=True)
    rows.append(
        _row(
            "balance_cov",
            cov,
            None,
            None,
            "<= 5 %",
            cov <= TARGETS_GOALS["balance_cov"],
            "CoV of connections per target",
        )
    )


def _disruption(lab: Lab, vip: str, params: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Hold flows on every target, fail one target: how many flows of the others break?"""
    hold_s = 25.0
    result: dict[str, Any] = {}

    def hold() -> None:
        result["df"] = run_load(
            lab,
            "Client",
            f"tcp://{vip}:9000",
            requests=params["held_flows"],
            concurrency=params["held_flows"],
            hold=hold_s,
            timeout=5,
        )

    t = threading.Thread(target=hold)
    t.start()
    targets = [lab.host(name) for name in lab.target_states()]
    client_ip = lab.host("Client").ip

    def held() -> int:
        return established_from(targets, 9000, client_ip)

    lab.wait_for(
        lambda: held() >= params["held_flows"], 15, "every held flow established", last=held
    )
    victim = "WebB1"
    lab.host(victim).fault("refuse")  # health checks fail; its established flows stay
    t.join()
    lab.host(victim).fault("clear")
    df = result["df"]
    survivors = df[df["backend"] != victim]
    moved = int(survivors["error"].notna().sum())
    print(
        f"  disruption: {len(survivors)} flows on surviving targets, {moved} broke while "
        f"{victim} turned unhealthy",
        flush=True,
    )
    rows.append(
        _row(
            "moved_flows",
            moved,
            None,
            None,
            "0 surviving flows moved",
            moved == TARGETS_GOALS["moved_flows"],
            "flows",
        )
    )


def _plot(summary: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = summary.dropna(subset=["direct"])
    fig, ax = plt.subplots(figsize=(7, 4))
    ratios = pairs["via_nlb"] / pairs["direct"]
    ax.bar(pairs["metric"], ratios, color=["tab:green" if m else "tab:red" for m in pairs["met"]])
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_ylabel("via NLB / direct")
    ax.set_title("NLB vs direct, same switches, one run")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
