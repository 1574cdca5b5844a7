"""What TLS costs: ALB HTTPS vs HTTP, NLB TLS vs TCP listener (req/s, handshakes/s, CPU).

One lab from a generated stack (stack.yaml in the results): a VPC client (Bench), one
http-backend target (BenchA1) and two internal load balancers over two AZs forwarding to it:
  - an ALB with HTTP:8080 and HTTPS:8443 (a lab CA certificate for tls.example.test);
  - an NLB (cross-zone on) with TCP:80 and TLS:443 (a lab CA certificate for
    nlb.tls.example.test) to one TCP target group of the same target (instance target).
Both TLS listeners use ELBSecurityPolicy-TLS13-1-2-2021-06. First the client verifies each
TLS listener with curl by its certificate's name against the lab CA (no -k) and records the
protocol and cipher it got; testbed's load client sends `verified_requests` over HTTPS by each
load balancer's DNS name, verifying too. Then wrk from Bench to each load balancer's AZ-a node
(by address), eight cases alternating `repeats` times, `seconds` each:

  http-keepalive      ALB, requests/s over kept-alive connections, plain HTTP
  https-keepalive     the same over TLS (handshakes only when the connections open)
  nlb-tcp-keepalive   NLB TCP listener, kept-alive requests/s (switch flows only)
  nlb-tls-keepalive   NLB TLS listener, the same over TLS (HAProxy on the NLB node)
  http-new            ALB, a new TCP connection per request (Connection: close): connections/s
  https-new           ALB, a new TLS connection per request: full handshakes/s (wrk keeps no
                      session, so none is resumed)
  nlb-tcp-new         NLB TCP listener, new connections/s
  nlb-tls-new         NLB TLS listener, TLS handshakes/s

For each run: the CPU time (user + sys, from /proc) per request of the case's node HAProxy
processes and of ovs-vswitchd (the switch: the userspace datapath forwards every packet) and
their sum, the path's CPU; the machine's CPU time per request and the packets the hosts on the
path sent into the fabric per request. The ratios (HTTPS / HTTP, NLB TLS / NLB TCP) come from
the same run on the same machine, so a shared machine moves both sides alike.

What bounds it: the ALB proxies HTTP and HTTPS alike, so its packets cross the switch twice
(client -> node, node -> target); TLS adds handshake CPU (key exchange and signature) in
HAProxy, plus record encryption per request. The NLB's TCP listener is the switch alone
(packets through it once per direction, no process); its TLS listener adds a proxy hop (the
node's HAProxy: the packets cross the switch twice) plus the TLS handshake CPU.

Writes runs.csv (each wrk run), summary.csv (one row per metric: `https`/`http` are the ALB's
HTTPS and HTTP listeners, or for the nlb_* rows the NLB's TLS and TCP listeners) and tls.png.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testbed.alb.config import node_files
from testbed.experiments.alb import _counters, _usage, os_hz
from testbed.experiments.stacks import INSTANCE_GROUP, LB_GROUP, _ingress, ref, two_az_vpc
from testbed.lab.api import Lab, random_name
from testbed.results import ResultsDir
from testbed.traffic import run_load, wrk

if TYPE_CHECKING:  # pandas is imported where the data is (the CLI starts faster)
    import pandas as pd

TEMPLATE = "stack.yaml (generated into the results directory)"
PARAMS = {
    "seconds": (3.0, "length of each wrk run"),
    "repeats": (3, "wrk runs per case, alternating (medians)"),
    "connections": (10, "wrk connections"),
    "verified_requests": (200, "requests of the load client over verified HTTPS, per LB, first"),
    "seed": (None, "recorded for re-runs"),
}
LB = "TlsALB"
NLB = "TlsNLB"
DOMAIN = "tls.example.test"
NLB_DOMAIN = "nlb.tls.example.test"
HTTP_PORT = 8080
HTTPS_PORT = 8443
NLB_TCP_PORT = 80
NLB_TLS_PORT = 443
POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
# The name each TLS listener's certificate is for, and its DNS-name output.
TLS_NAMES = {LB: (DOMAIN, HTTPS_PORT, "AlbDnsName"), NLB: (NLB_DOMAIN, NLB_TLS_PORT, "NlbDnsName")}
CASES = {
    # case: (load balancer, scheme, port, keep-alive)
    "http-keepalive": (LB, "http", HTTP_PORT, True),
    "https-keepalive": (LB, "https", HTTPS_PORT, True),
    "nlb-tcp-keepalive": (NLB, "http", NLB_TCP_PORT, True),
    "nlb-tls-keepalive": (NLB, "https", NLB_TLS_PORT, True),
    "http-new": (LB, "http", HTTP_PORT, False),
    "https-new": (LB, "https", HTTPS_PORT, False),
    "nlb-tcp-new": (NLB, "http", NLB_TCP_PORT, False),
    "nlb-tls-new": (NLB, "https", NLB_TLS_PORT, False),
}
# Pairs the summary compares: metric prefix -> (encrypted case prefix, plain case prefix).
PAIRS = {"": ("https", "http"), "nlb_": ("nlb-tls", "nlb-tcp")}
PAIR_NOTES = {
    "": "https / http: the ALB's HTTPS and HTTP listeners",
    "nlb_": "https / http: the NLB's TLS and TCP listeners",
}
CAVEAT = (
    "HAProxy CPU is the case's node processes alone; ovs-vswitchd and the machine's busy time "
    "include whatever else runs on the machine (other labs share the switch process)"
)


def stack_yaml() -> str:
    """The experiment's stack (see the module doc)."""
    import yaml

    res = two_az_vpc()
    res[LB_GROUP]["Properties"]["SecurityGroupIngress"].append(_ingress("tcp", HTTPS_PORT))
    res["BenchA1"] = {
        "Type": "AWS::EC2::Instance",
        "Metadata": {"Lab": {"Role": "http-backend"}},
        "Properties": {
            "SubnetId": ref("PrivateSubnetA"),
            "SecurityGroupIds": [ref(INSTANCE_GROUP)],
        },
    }
    res["Bench"] = {
        "Type": "AWS::EC2::Instance",
        "Metadata": {"Lab": {"Role": "none"}},
        "Properties": {"SubnetId": ref("PublicSubnetA"), "SecurityGroupIds": [ref(INSTANCE_GROUP)]},
    }
    for cert, lb in (("TlsCertificate", LB), ("NlbTlsCertificate", NLB)):
        res[cert] = {
            "Type": "AWS::CertificateManager::Certificate",
            "Properties": {
                "DomainName": TLS_NAMES[lb][0],
                # The LB's own name too, so the load client can verify it through lab DNS.
                "SubjectAlternativeNames": [{"Fn::GetAtt": [lb, "DNSName"]}],
                "ValidationMethod": "DNS",
            },
        }
    res[LB] = {
        "Type": "AWS::ElasticLoadBalancingV2::LoadBalancer",
        "Properties": {
            "Type": "application",
            # Internal: its DNS name gives the nodes' VPC addresses, which Bench reaches.
            "Scheme": "internal",
            "Subnets": [ref("PublicSubnetA"), ref("PublicSubnetB")],
            "SecurityGroups": [ref(LB_GROUP)],
        },
    }
    res[NLB] = {
        "Type": "AWS::ElasticLoadBalancingV2::LoadBalancer",
        "Properties": {
            "Type": "network",
            "Scheme": "internal",
            "Subnets": [ref("PublicSubnetA"), ref("PublicSubnetB")],
            # The target is in AZ a: the AZ-b node forwards to it too (the load client goes
            # to both nodes by the DNS name), as the ALB's nodes do.
            "LoadBalancerAttributes": [
                {"Key": "load_balancing.cross_zone.enabled", "Value": "true"}
            ],
        },
    }
    checks = {
        "HealthCheckIntervalSeconds": 5,
        "HealthCheckTimeoutSeconds": 4,
        "HealthyThresholdCount": 2,
        "Targets": [{"Id": ref("BenchA1")}],
    }
    res["BenchTargets"] = {
        "Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
        "Properties": {
            "Protocol": "HTTP",
            "Port": 80,
            "VpcId": ref("VPC"),
            "HealthCheckPath": "/health",
            **checks,
        },
    }
    res["NlbTargets"] = {
        "Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
        "Properties": {"Protocol": "TCP", "Port": 80, "VpcId": ref("VPC"), **checks},
    }
    forward = [{"Type": "forward", "TargetGroupArn": ref("BenchTargets")}]
    nlb_forward = [{"Type": "forward", "TargetGroupArn": ref("NlbTargets")}]
    listeners = (
        ("HttpListener", LB, "HTTP", HTTP_PORT, forward, None),
        ("HttpsListener", LB, "HTTPS", HTTPS_PORT, forward, "TlsCertificate"),
        ("NlbTcpListener", NLB, "TCP", NLB_TCP_PORT, nlb_forward, None),
        ("NlbTlsListener", NLB, "TLS", NLB_TLS_PORT, nlb_forward, "NlbTlsCertificate"),
    )
    for name, lb, protocol, port, actions, certificate in listeners:
        props: dict[str, Any] = {
            "LoadBalancerArn": ref(lb),
            "Protocol": protocol,
            "Port": port,
            "DefaultActions": actions,
        }
        if certificate:
            props["SslPolicy"] = POLICY
            props["Certificates"] = [{"CertificateArn": ref(certificate)}]
        res[name] = {"Type": "AWS::ElasticLoadBalancingV2::Listener", "Properties": props}
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "tls experiment stack (generated by experiments/tls.py)",
        "Resources": res,
        "Outputs": {
            "AlbDnsName": {"Value": {"Fn::GetAtt": [LB, "DNSName"]}},
            "NlbDnsName": {"Value": {"Fn::GetAtt": [NLB, "DNSName"]}},
        },
    }
    return yaml.safe_dump(template, sort_keys=False, width=100, default_flow_style=None)


def run(params: dict[str, Any], results: ResultsDir) -> dict[str, Any]:
    import pandas as pd

    template = results.file("stack.yaml")
    template.write_text(stack_yaml())
    with Lab.up(str(template), name=random_name("tls")) as lab:
        for group in ("BenchTargets", "NlbTargets"):
            healthy_s = lab.wait_healthy(group, targets=["BenchA1"])
            print(f"lab {lab.name}: BenchA1 healthy in {group} after {healthy_s:.1f} s", flush=True)
        nodes = {lb: az_a_node(lab, lb) for lb in (LB, NLB)}
        tls: dict[str, Any] = {}
        for lb, node in nodes.items():
            name, port, output = TLS_NAMES[lb]
            tls[lb] = verify(lab, "Bench", node["ip"], name, port)
            print(f"  verified {name}:{port} ({lb}) against the lab CA: {tls[lb]}", flush=True)
            tls[lb].update(verified_load(lab, "Bench", str(lab.outputs[output]), port, params))
        runs = pd.DataFrame(_bench(lab, params, nodes))
    runs.to_csv(results.file("runs.csv"), index=False)
    summary = pd.DataFrame(summarise(runs))
    summary.to_csv(results.file("summary.csv"), index=False)
    _plot(runs, results.file("tls.png"))
    results.write_meta(template=str(template), policy=POLICY, tls=tls, caveat=CAVEAT)
    print("\n" + summary.to_string(index=False))
    print("\n" + bounds(summary))
    print(f"Caveat: {CAVEAT}")
    return {"summary": summary.to_dict(orient="records"), "tls": tls}


def az_a_node(lab: Lab, lb: str) -> dict[str, Any]:
    """The load balancer's node in the first AZ (where Bench and the target are)."""
    balancer = next(x for x in lab.state["load_balancers"] if x["name"] == lb)
    return dict(next(n for n in balancer["nodes"] if n["az"].endswith("a")))


def verify(lab: Lab, client: str, ip: str, name: str, port: int) -> dict[str, Any]:
    """curl to a TLS listener by its certificate's name, verified against the lab CA that the
    host trusts (no -k); the TLS version and cipher negotiated, and which target answered
    (over plain HTTP or not, as it saw it)."""
    proc = lab.host(client).run(
        [
            "curl",
            "-sS",
            "-v",
            "--http1.1",
            "-w",
            "\n%{http_code}",
            "--max-time",
            "10",
            "--resolve",
            f"{name}:{port}:{ip}",
            f"https://{name}:{port}/",
        ],
        timeout=20,
    )
    body, _, code = proc.stdout.rpartition("\n")
    if proc.returncode != 0 or code.strip() != "200":
        raise RuntimeError(f"{name}:{port} not verified over TLS: {proc.stderr.strip()[-600:]}")
    out: dict[str, Any] = negotiated(proc.stderr)
    if not out:
        raise RuntimeError(f"{name}:{port}: curl said no TLS protocol: {proc.stderr[-600:]}")
    out.update(answered(body))
    return out


def answered(body: str) -> dict[str, Any]:
    """Which target answered and whether it got TLS itself, from http-backend's JSON."""
    import json

    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return {"target": data.get("instance"), "target_got_tls": bool(data.get("tls"))}


def verified_load(
    lab: Lab, client: str, dns_name: str, port: int, params: dict[str, Any]
) -> dict[str, Any]:
    """testbed's load client over HTTPS by a load balancer's DNS name (both nodes), verifying
    the certificate against the lab CA: how many requests succeeded and which errors."""
    url = f"https://{dns_name}:{port}/"
    df = run_load(lab, client, url, requests=params["verified_requests"], concurrency=4)
    errors = df["error"].dropna().astype(str)
    errors = errors[errors != ""]
    ok = len(df) - len(errors)
    print(f"  load client {url}: {ok}/{len(df)} verified requests answered", flush=True)
    if len(errors):
        failed = errors.value_counts().to_dict()
        raise RuntimeError(f"load client over HTTPS: {len(errors)} failed: {failed}")
    return {"load_client_url": url, "load_client_ok": ok}


def negotiated(curl_verbose: str) -> dict[str, str]:
    """Protocol and cipher from curl -v's "SSL connection using TLSv1.3 / CIPHER" line."""
    m = re.search(r"SSL connection using (\S+) / (\S+)", curl_verbose)
    return {"protocol": m.group(1), "cipher": m.group(2)} if m else {}


def haproxy_ticks(config: Path) -> float:
    """CPU ticks (user + sys) of the HAProxy processes (master and workers) that run the
    given configuration file."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if not argv[0].endswith(b"haproxy") or str(config).encode() not in argv:
                continue
            stat = (proc / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        rest = stat[stat.rindex(")") + 2 :].split()
        total += int(rest[11]) + int(rest[12])
    return total


def _bench(
    lab: Lab, params: dict[str, Any], nodes: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    configs = {lb: node_files(lab.dir, node["host"]).config for lb, node in nodes.items()}
    for lb, config in configs.items():
        # Both nodes run HAProxy: the ALB's for every listener, the NLB's for its TLS one.
        if not haproxy_ticks(config) and not Path(config).exists():
            raise RuntimeError(f"no HAProxy configuration {config} for {lb}'s node")
    runs = []
    for rep in range(params["repeats"]):
        for case, (lb, scheme, port, keepalive) in CASES.items():
            node = nodes[lb]
            hosts = ["Bench", node["host"], "BenchA1"]
            url = f"{scheme}://{node['ip']}:{port}/"
            before, ticks0 = _counters(lab, hosts), haproxy_ticks(configs[lb])
            res = wrk(
                lab,
                "Bench",
                url,
                seconds=params["seconds"],
                connections=params["connections"],
                keepalive=keepalive,
            )
            ticks1 = haproxy_ticks(configs[lb])
            requests = int(res.get("requests", 0))
            row = {
                "case": case,
                "lb": lb,
                "repeat": rep,
                "url": url,
                "keepalive": keepalive,
                "requests": requests,
                "requests_per_second": res["requests_per_second"],
                "p50_ms": res.get("p50_ms"),
                "p99_ms": res.get("p99_ms"),
                "errors": res["errors"],
                "non_2xx": res.get("non_2xx", 0),
                "haproxy_cpu_us_per_request": (ticks1 - ticks0) / os_hz() / max(1, requests) * 1e6,
                **_usage(before, _counters(lab, hosts), requests),
            }
            row.update(path_cpu(row))
            runs.append(row)
            print(
                f"  wrk {case:18s} {row['requests_per_second']:8.0f} req/s  "
                f"HAProxy {row['haproxy_cpu_us_per_request']:5.0f}, OVS "
                f"{row['ovs_cpu_us_per_request']:5.0f} CPU-us/request, machine "
                f"{row['cpu_us_per_request']:6.0f} CPU-us/request, "
                f"{row['fabric_packets_per_request']:.1f} packets/request",
                flush=True,
            )
    return runs


def path_cpu(row: dict[str, Any]) -> dict[str, float]:
    """ovs-vswitchd's CPU per request (it forwards every packet of the lab: the userspace
    datapath) from its share of a CPU over the run and the requests/s, and the path's CPU:
    the node's HAProxy (nothing on an NLB TCP listener's path: measured all the same) plus
    the switch."""
    rate = float(row["requests_per_second"])
    ovs = float(row["ovs_cpu"]) / rate * 1e6 if rate else float("nan")
    return {
        "ovs_cpu_us_per_request": ovs,
        "path_cpu_us_per_request": float(row["haproxy_cpu_us_per_request"]) + ovs,
    }


COLUMNS = {
    "requests_per_second": "req/s",
    "path_cpu_us_per_request": "CPU-us",
    "haproxy_cpu_us_per_request": "CPU-us",
    "ovs_cpu_us_per_request": "CPU-us",
    "cpu_us_per_request": "CPU-us",
    "fabric_packets_per_request": "packets",
    "p50_ms": "ms",
}


def summarise(runs: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per measured number (medians over repeats) and the encrypted / plain ratios:
    the ALB's HTTPS / HTTP rows, then the NLB's TLS / TCP rows (metric prefix nlb_)."""
    med = runs.groupby("case")[list(COLUMNS)].median()
    rows: list[dict[str, Any]] = []
    for prefix, (encrypted, plain) in PAIRS.items():
        for kind in ("keepalive", "new"):
            for column, unit in COLUMNS.items():
                https = float(med[column][f"{encrypted}-{kind}"])
                http = float(med[column][f"{plain}-{kind}"])
                rows.append(
                    {
                        "metric": f"{prefix}{column}_{kind}",
                        "https": round(https, 3),
                        "http": round(http, 3),
                        "https_over_http": _ratio(https, http),
                        "unit": unit,
                        "note": PAIR_NOTES[prefix],
                    }
                )
    for kind in ("keepalive", "new"):
        for scheme in ("https", "http"):
            case = f"{scheme}-{kind}"
            share = float(med["haproxy_cpu_us_per_request"][case]) / float(
                med["cpu_us_per_request"][case]
            )
            rows.append(
                {
                    "metric": f"haproxy_share_of_machine_cpu_{kind}_{scheme}",
                    scheme: round(share, 4),
                    "unit": "share",
                    "note": "the rest: OVS, the wrk client (its TLS too), the target, kernel",
                }
            )
    return rows


def _ratio(top: float, bottom: float) -> float:
    """top / bottom; NaN without a bottom (the NLB TCP path runs no HAProxy: 0 CPU-us)."""
    if not bottom or math.isnan(bottom) or math.isnan(top):
        return float("nan")
    return round(top / bottom, 4)


def bounds(summary: pd.DataFrame) -> str:
    """What bounds the numbers, said with this run's own figures."""
    table: dict[str, dict[Any, Any]] = {
        str(r["metric"]): r for r in summary.to_dict(orient="records")
    }

    def cell(metric: str, column: str) -> float:
        return float(table[metric][column])

    new_plain = cell("fabric_packets_per_request_new", "http")
    new_tls = cell("fabric_packets_per_request_new", "https")
    alb = (
        "What bounds it: the ALB proxies, so its packets cross the switch twice (client -> node "
        f"-> target and back: {cell('fabric_packets_per_request_keepalive', 'http'):.1f} packets "
        "per kept-alive request, HTTP and HTTPS alike, where a direct request would send half"
        f"); a new connection adds its handshake packets ({new_plain:.1f} plain, "
        f"{new_tls:.1f} TLS). TLS adds CPU in "
        f"HAProxy: x{cell('haproxy_cpu_us_per_request_keepalive', 'https_over_http'):.2f} per "
        "kept-alive request (record encryption), "
        f"x{cell('haproxy_cpu_us_per_request_new', 'https_over_http'):.2f} per new connection "
        f"({cell('haproxy_cpu_us_per_request_new', 'https'):.0f} vs "
        f"{cell('haproxy_cpu_us_per_request_new', 'http'):.0f} CPU-us: the handshake's key "
        "exchange and signature); the client's side of each handshake and the switch "
        f"(ovs-vswitchd {cell('ovs_cpu_us_per_request_new', 'https'):.0f} CPU-us per TLS "
        f"connection, {cell('ovs_cpu_us_per_request_keepalive', 'https'):.0f} per kept-alive "
        "request) run on the same CPUs, "
        f"so HTTPS handshakes/s are x{cell('requests_per_second_new', 'https_over_http'):.2f} "
        f"of new plain connections/s and kept-alive HTTPS requests/s "
        f"x{cell('requests_per_second_keepalive', 'https_over_http'):.2f} of HTTP's."
    )
    nlb = (
        "The NLB's TCP listener is the switch alone: packets through it once per direction, no "
        f"process ({cell('nlb_fabric_packets_per_request_keepalive', 'http'):.1f} packets per "
        "kept-alive request; ovs-vswitchd "
        f"{cell('nlb_ovs_cpu_us_per_request_keepalive', 'http'):.0f} CPU-us per request, "
        f"{cell('nlb_ovs_cpu_us_per_request_new', 'http'):.0f} per new connection). Its TLS "
        "listener adds a proxy hop, the node's HAProxy, so the packets cross the switch twice "
        f"({cell('nlb_fabric_packets_per_request_keepalive', 'https'):.1f} per kept-alive "
        "request), plus the TLS handshake CPU (HAProxy "
        f"{cell('nlb_haproxy_cpu_us_per_request_new', 'https'):.0f} CPU-us per new "
        f"connection): the path's CPU (HAProxy + ovs-vswitchd) is "
        f"{cell('nlb_path_cpu_us_per_request_keepalive', 'https'):.0f} vs "
        f"{cell('nlb_path_cpu_us_per_request_keepalive', 'http'):.0f} CPU-us per kept-alive "
        f"request and {cell('nlb_path_cpu_us_per_request_new', 'https'):.0f} vs "
        f"{cell('nlb_path_cpu_us_per_request_new', 'http'):.0f} per new connection, so NLB "
        f"TLS handshakes/s are x{cell('nlb_requests_per_second_new', 'https_over_http'):.2f} "
        "of new TCP connections/s and kept-alive requests/s over TLS "
        f"x{cell('nlb_requests_per_second_keepalive', 'https_over_http'):.2f} of TCP's."
    )
    return alb + "\n" + nlb


COLORS = {"http": "tab:blue", "https": "tab:orange", "nlb-tcp": "tab:green", "nlb-tls": "tab:red"}


def _plot(runs: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ["requests_per_second", "haproxy_cpu_us_per_request", "ovs_cpu_us_per_request"]
    med = runs.groupby("case")[columns].median()
    cases = [c for c in CASES if c in med.index]
    colors = [COLORS[c.rsplit("-", 1)[0]] for c in cases]
    fig, (rate, cpu) = plt.subplots(1, 2, figsize=(13, 4.5))
    rate.bar(cases, [med["requests_per_second"][c] for c in cases], color=colors)
    rate.set_ylabel("requests/s (median)")
    rate.set_title("to the same target: ALB HTTP/HTTPS, NLB TCP/TLS")
    haproxy = [med["haproxy_cpu_us_per_request"][c] for c in cases]
    cpu.bar(cases, haproxy, color=colors, label="node HAProxy")
    cpu.bar(
        cases,
        [med["ovs_cpu_us_per_request"][c] for c in cases],
        bottom=haproxy,
        color=colors,
        alpha=0.4,
        hatch="//",
        label="ovs-vswitchd",
    )
    cpu.set_ylabel("CPU-us per request (user + sys)")
    cpu.set_title("the path: node HAProxy (solid) + switch (hatched)")
    cpu.legend()
    for ax in (rate, cpu):
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
