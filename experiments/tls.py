"""What TLS costs at the ALB: HTTPS against plain HTTP, through the same node to the same target.

One lab from a generated stack (stack.yaml in the results): a VPC client (Bench), an ALB
over two AZs with two listeners forwarding to the same target group (one http-backend,
BenchA1): HTTP:8080 and HTTPS:8443 (a lab CA certificate for tls.example.test, policy
ELBSecurityPolicy-TLS13-1-2-2021-06). First the client verifies the HTTPS listener with curl
against the lab CA (no -k) and records the protocol and cipher it got; testbed's load client
sends `verified_requests` over HTTPS by the ALB's DNS name, verifying too. Then wrk from Bench
to the AZ-a node, four cases alternating `repeats` times, `seconds` each:

  http-keepalive    requests/s over kept-alive connections, plain HTTP
  https-keepalive   the same over TLS (handshakes only when the connections open)
  http-new          a new TCP connection per request (Connection: close): connections/s
  https-new         a new TLS connection per request: full handshakes/s (wrk keeps no
                    session, so none is resumed)

For each run: the CPU time (user + sys, from /proc) of the node's HAProxy processes per
request, the machine's CPU time per request and the packets the hosts on the path sent into
the fabric per request. The ratios (HTTPS / HTTP) come from the same run on the same machine,
so a shared machine moves both sides alike. What bounds it: the proxy doubles the packets
through the switch (client -> node, node -> target) for HTTP and HTTPS alike; TLS adds
handshake CPU (key exchange and signature) in HAProxy, plus record encryption per request.

NLB TLS against TCP: not measured (NLB TLS listeners not yet, issue 16); a row says so.

Writes runs.csv (each wrk run), summary.csv (one row per metric) and tls.png.
"""

from __future__ import annotations

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
    "verified_requests": (200, "requests of the load client over verified HTTPS, first"),
    "seed": (None, "recorded for re-runs"),
}
LB = "TlsALB"
DOMAIN = "tls.example.test"
HTTP_PORT = 8080
HTTPS_PORT = 8443
POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
CASES = {
    # case: (scheme, port, keep-alive)
    "http-keepalive": ("http", HTTP_PORT, True),
    "https-keepalive": ("https", HTTPS_PORT, True),
    "http-new": ("http", HTTP_PORT, False),
    "https-new": ("https", HTTPS_PORT, False),
}
NLB_NOTE = "not measured: NLB TLS listeners not yet (issue 16, NLB TLS)"
CAVEAT = (
    "HAProxy CPU is this node's processes alone; ovs-vswitchd and the machine's busy time "
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
    res["TlsCertificate"] = {
        "Type": "AWS::CertificateManager::Certificate",
        "Properties": {
            "DomainName": DOMAIN,
            # The ALB's own name too, so the load client can verify it through lab DNS.
            "SubjectAlternativeNames": [{"Fn::GetAtt": [LB, "DNSName"]}],
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
    res["BenchTargets"] = {
        "Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
        "Properties": {
            "Protocol": "HTTP",
            "Port": 80,
            "VpcId": ref("VPC"),
            "HealthCheckPath": "/health",
            "HealthCheckIntervalSeconds": 5,
            "HealthCheckTimeoutSeconds": 4,
            "HealthyThresholdCount": 2,
            "Targets": [{"Id": ref("BenchA1")}],
        },
    }
    forward = [{"Type": "forward", "TargetGroupArn": ref("BenchTargets")}]
    res["HttpListener"] = {
        "Type": "AWS::ElasticLoadBalancingV2::Listener",
        "Properties": {
            "LoadBalancerArn": ref(LB),
            "Protocol": "HTTP",
            "Port": HTTP_PORT,
            "DefaultActions": forward,
        },
    }
    res["HttpsListener"] = {
        "Type": "AWS::ElasticLoadBalancingV2::Listener",
        "Properties": {
            "LoadBalancerArn": ref(LB),
            "Protocol": "HTTPS",
            "Port": HTTPS_PORT,
            "SslPolicy": POLICY,
            "Certificates": [{"CertificateArn": ref("TlsCertificate")}],
            "DefaultActions": forward,
        },
    }
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "tls experiment stack (generated by experiments/tls.py)",
        "Resources": res,
        "Outputs": {"AlbDnsName": {"Value": {"Fn::GetAtt": [LB, "DNSName"]}}},
    }
    return yaml.safe_dump(template, sort_keys=False, width=100, default_flow_style=None)


def run(params: dict[str, Any], results: ResultsDir) -> dict[str, Any]:
    import pandas as pd

    template = results.file("stack.yaml")
    template.write_text(stack_yaml())
    with Lab.up(str(template), name=random_name("tls")) as lab:
        healthy_s = lab.wait_healthy(targets=["BenchA1"])
        print(f"lab {lab.name}: BenchA1 healthy after {healthy_s:.1f} s", flush=True)
        node = next(
            n
            for n in next(x for x in lab.state["load_balancers"] if x["name"] == LB)["nodes"]
            if n["az"].endswith("a")
        )
        tls: dict[str, Any] = verify(lab, "Bench", node["ip"])
        print(f"  verified {DOMAIN}:{HTTPS_PORT} against the lab CA: {tls}", flush=True)
        tls.update(verified_load(lab, "Bench", str(lab.outputs["AlbDnsName"]), params))
        runs = pd.DataFrame(_bench(lab, params, node))
    runs.to_csv(results.file("runs.csv"), index=False)
    summary = pd.DataFrame(summarise(runs))
    summary.to_csv(results.file("summary.csv"), index=False)
    _plot(runs, results.file("tls.png"))
    results.write_meta(
        template=str(template), policy=POLICY, tls=tls, nlb_tls=NLB_NOTE, caveat=CAVEAT
    )
    print("\n" + summary.to_string(index=False))
    print("\n" + bounds(summary))
    print(f"NLB TLS vs TCP: {NLB_NOTE}\nCaveat: {CAVEAT}")
    return {"summary": summary.to_dict(orient="records"), "tls": tls}


def verify(lab: Lab, client: str, ip: str) -> dict[str, str]:
    """curl to the HTTPS listener by its certificate's name, verified against the lab CA that
    the host trusts (no -k); the TLS version and cipher negotiated."""
    proc = lab.host(client).run(
        [
            "curl",
            "-sS",
            "-v",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
            "--resolve",
            f"{DOMAIN}:{HTTPS_PORT}:{ip}",
            f"https://{DOMAIN}:{HTTPS_PORT}/",
        ],
        timeout=20,
    )
    if proc.returncode != 0 or proc.stdout.strip() != "200":
        raise RuntimeError(f"HTTPS through the ALB not verified: {proc.stderr.strip()[-600:]}")
    return negotiated(proc.stderr)


def verified_load(lab: Lab, client: str, dns_name: str, params: dict[str, Any]) -> dict[str, Any]:
    """testbed's load client over HTTPS by the ALB's DNS name (both nodes), verifying the
    certificate against the lab CA: how many requests succeeded and which errors."""
    url = f"https://{dns_name}:{HTTPS_PORT}/"
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


def _bench(lab: Lab, params: dict[str, Any], node: dict[str, Any]) -> list[dict[str, Any]]:
    config = node_files(lab.dir, node["host"]).config
    if not haproxy_ticks(config) and not Path(config).exists():
        raise RuntimeError(f"no HAProxy configuration {config} for node {node['host']}")
    hosts = ["Bench", node["host"], "BenchA1"]
    runs = []
    for rep in range(params["repeats"]):
        for case, (scheme, port, keepalive) in CASES.items():
            url = f"{scheme}://{node['ip']}:{port}/"
            before, ticks0 = _counters(lab, hosts), haproxy_ticks(config)
            res = wrk(
                lab,
                "Bench",
                url,
                seconds=params["seconds"],
                connections=params["connections"],
                keepalive=keepalive,
            )
            ticks1 = haproxy_ticks(config)
            requests = int(res.get("requests", 0))
            used = _usage(before, _counters(lab, hosts), requests)
            row = {
                "case": case,
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
                **used,
            }
            # ovs-vswitchd forwards every packet of the lab (userspace datapath): its share.
            row["ovs_cpu_us_per_request"] = (
                used["ovs_cpu"] / row["requests_per_second"] * 1e6
                if row["requests_per_second"]
                else float("nan")
            )
            runs.append(row)
            print(
                f"  wrk {case:16s} {row['requests_per_second']:8.0f} req/s  "
                f"HAProxy {row['haproxy_cpu_us_per_request']:5.0f}, OVS "
                f"{row['ovs_cpu_us_per_request']:5.0f} CPU-us/request, machine "
                f"{row['cpu_us_per_request']:6.0f} CPU-us/request, "
                f"{row['fabric_packets_per_request']:.1f} packets/request",
                flush=True,
            )
    return runs


def summarise(runs: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per measured number (medians over repeats) and the HTTPS / HTTP ratios."""
    columns = [
        "requests_per_second",
        "haproxy_cpu_us_per_request",
        "ovs_cpu_us_per_request",
        "cpu_us_per_request",
        "fabric_packets_per_request",
        "p50_ms",
    ]
    med = runs.groupby("case")[columns].median()
    units = {
        "requests_per_second": "req/s",
        "haproxy_cpu_us_per_request": "CPU-us",
        "ovs_cpu_us_per_request": "CPU-us",
        "cpu_us_per_request": "CPU-us",
        "fabric_packets_per_request": "packets",
        "p50_ms": "ms",
    }
    rows: list[dict[str, Any]] = []
    for kind in ("keepalive", "new"):
        for column in columns:
            https = float(med[column][f"https-{kind}"])
            http = float(med[column][f"http-{kind}"])
            rows.append(
                {
                    "metric": f"{column}_{kind}",
                    "https": round(https, 3),
                    "http": round(http, 3),
                    "https_over_http": round(https / http, 4) if http else float("nan"),
                    "unit": units[column],
                    "note": "",
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
    rows.append(
        {
            "metric": "nlb_tls_vs_tcp",
            "https": float("nan"),
            "http": float("nan"),
            "https_over_http": float("nan"),
            "unit": "",
            "note": NLB_NOTE,
        }
    )
    return rows


def bounds(summary: pd.DataFrame) -> str:
    """What bounds the numbers, said with this run's own figures."""
    table: dict[str, dict[Any, Any]] = {
        str(r["metric"]): r for r in summary.to_dict(orient="records")
    }

    def cell(metric: str, column: str) -> float:
        return float(table[metric][column])

    new_plain = cell("fabric_packets_per_request_new", "http")
    new_tls = cell("fabric_packets_per_request_new", "https")
    return (
        "What bounds it: the proxy doubles the packets through the switch (client -> node -> "
        f"target and back: {cell('fabric_packets_per_request_keepalive', 'http'):.1f} packets "
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


def _plot(runs: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    med = runs.groupby("case")[["requests_per_second", "haproxy_cpu_us_per_request"]].median()
    cases = [c for c in CASES if c in med.index]
    colors = ["tab:blue" if c.startswith("http-") else "tab:orange" for c in cases]
    fig, (rate, cpu) = plt.subplots(1, 2, figsize=(10, 4))
    rate.bar(cases, [med["requests_per_second"][c] for c in cases], color=colors)
    rate.set_ylabel("requests/s (median)")
    rate.set_title("through the same ALB node and target")
    cpu.bar(cases, [med["haproxy_cpu_us_per_request"][c] for c in cases], color=colors)
    cpu.set_ylabel("HAProxy CPU-us per request")
    cpu.set_title("the node's HAProxy (user + sys)")
    for ax in (rate, cpu):
        ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
