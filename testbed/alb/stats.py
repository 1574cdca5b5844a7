"""AWS/ApplicationELB metrics from HAProxy's `show stat` on every node, plus target health.

What each metric is made of (summed over the nodes; per target group = its tg_ backend):
  RequestCount                 frontends' req_tot (per LB); backends' req_tot (per group)
  TargetResponseTime           backends' rtime (average over the last 1024 requests), s
  HTTPCode_Target_nXX_Count    servers' hrsp_nxx: answers that came from targets
  HTTPCode_ELB_nXX_Count       frontends' hrsp_nxx minus the targets' (HAProxy's own 5xx,
                               redirects, fixed responses: AWS counts those as the LB's)
  HTTP_Redirect_Count, HTTP_Fixed_Response_Count   the action backends' req_tot
  ActiveConnectionCount        client connections (frontend scur) + connections to targets
  NewConnectionCount           client connections (frontend conn_tot) + connects to targets
  ProcessedBytes               frontends' bytes in + out
  HealthyHostCount, UnHealthyHostCount   from the holder's target registry
A reload starts a new worker with fresh counters: the collector skips that period.

AWS/ELB metrics of a Classic Load Balancer (`classic_metrics`; per load balancer, as AWS's
LoadBalancerName dimension), from its listeners' frontends and `ls_` backends:
  RequestCount                 HTTP listeners: the requests their backends took (req_tot,
                               the CLB's own 503s too; not the frontends': a connection that
                               sent nothing counts there); TCP listeners: the connections
                               made to instances (servers' stot)
  Latency                      HTTP: backends' rtime (request sent -> response headers); TCP:
                               backends' ctime (connection to the instance); weighted, s
  HTTPCode_Backend_nXX         servers' hrsp_nxx of HTTP listeners (answers of instances)
  HTTPCode_ELB_4XX, _5XX       frontends' hrsp_nxx minus the instances' (the CLB's own, e.g.
                               503 with no healthy instance)
  BackendConnectionErrors      servers' econ (connections to instances that failed)
  SurgeQueueLength             backends' qcur: requests or connections waiting for an instance
  EstimatedProcessedBytes      frontends' bytes in + out
  HealthyHostCount, UnHealthyHostCount   from the holder's target registry (the CLB's group)

AWS/NetworkELB metrics of an NLB's TLS listeners (`nlb_tls_metrics`; per load balancer), from
their frontends on the nodes (testbed.alb.nlb_tls) and the servers of their tg_ backends; the
switches do not see these connections (they reach the node's host), so testbed.metrics adds
the first three to the NLB's NewFlowCount, ActiveFlowCount and ProcessedBytes as AWS does:
  NewFlowCount_TLS             frontends' conn_tot: client connections, a handshake that
                               failed too
  ActiveFlowCount_TLS          frontends' scur
  ProcessedBytes_TLS           frontends' bytes in + out (TLS records; AWS adds TCP/IP
                               headers)
  ClientTLSNegotiationErrorCount   frontends' ssl_failed_handshake (HAProxy's SSL module)
  TargetTLSNegotiationErrorCount   servers' ssl_failed_handshake: TLS to the targets of a TLS
                               group that failed (each attempt)
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from testbed.alb.runtime import CliUnavailable, cli
from testbed.messages import TargetDescription

NAMESPACE = "AWS/ApplicationELB"
CLASSIC_NAMESPACE = "AWS/ELB"
CODES = ("2xx", "3xx", "4xx", "5xx")
Metric = tuple[str, str, str, float, str, str]  # metric, target group, target, value, unit, kind


def parse_stat(text: str) -> list[dict[str, str]]:
    """`show stat` CSV -> one dict per proxy/server row."""
    text = text.lstrip("# ")
    return [row for row in csv.DictReader(io.StringIO(text)) if row.get("pxname")]


def read_nodes(sockets: Iterable[Path | str]) -> list[list[dict[str, str]]]:
    """`show stat` rows of each node whose stats socket answers (a node being restarted is
    left out: its counters are missing this time)."""
    nodes = []
    for sock in sockets:
        try:
            nodes.append(parse_stat(cli(sock, "show stat")))
        except CliUnavailable:
            continue
    return nodes


def _n(row: dict[str, str], field: str) -> float:
    try:
        return float(row.get(field) or 0)
    except ValueError:
        return 0.0


def metrics(
    lb: str, nodes: list[list[dict[str, str]]]
) -> list[tuple[str, str, str, float, str, str]]:
    """(metric, target group, target, value, unit, kind) of one ALB from its nodes' rows."""
    out: list[tuple[str, str, str, float, str, str]] = []
    lb_total: dict[str, float] = {}
    tg_total: dict[tuple[str, str], float] = {}
    srv_total: dict[tuple[str, str, str], float] = {}
    rtimes: dict[str, list[tuple[float, float]]] = {}

    def add(store: dict, key: Any, value: float) -> None:
        store[key] = store.get(key, 0.0) + value

    for rows in nodes:
        for row in rows:
            px, sv = row["pxname"], row["svname"]
            if sv == "FRONTEND":
                add(lb_total, "RequestCount", _n(row, "req_tot"))
                add(lb_total, "ActiveConnectionCount", _n(row, "scur"))
                add(lb_total, "NewConnectionCount", _n(row, "conn_tot"))
                add(lb_total, "ProcessedBytes", _n(row, "bin") + _n(row, "bout"))
                for code in CODES:
                    add(lb_total, f"fe_{code}", _n(row, f"hrsp_{code}"))
            elif px.startswith("tg_") and sv == "BACKEND":
                tg = px[3:]
                add(tg_total, ("RequestCount", tg), _n(row, "req_tot"))
                rtimes.setdefault(tg, []).append((_n(row, "rtime"), _n(row, "req_tot")))
            elif px.startswith("tg_"):
                tg = px[3:]
                for code in CODES:
                    value = _n(row, f"hrsp_{code}")
                    name = f"HTTPCode_Target_{code.upper()}_Count"
                    add(tg_total, (name, tg), value)
                    add(srv_total, (name, tg, sv), value)
                    add(lb_total, f"srv_{code}", value)
                add(
                    lb_total,
                    "ActiveConnectionCount",
                    _n(row, "used_conn_cur") + _n(row, "idle_conn_cur") + _n(row, "safe_conn_cur"),
                )
                add(lb_total, "NewConnectionCount", _n(row, "connect"))
            elif px.startswith("redirect_") and sv == "BACKEND":
                add(lb_total, "HTTP_Redirect_Count", _n(row, "req_tot"))
            elif px.startswith("fixed_") and sv == "BACKEND":
                add(lb_total, "HTTP_Fixed_Response_Count", _n(row, "req_tot"))
    for metric, unit, kind in (
        ("RequestCount", "Count", "counter"),
        ("ActiveConnectionCount", "Count", "gauge"),
        ("NewConnectionCount", "Count", "counter"),
        ("ProcessedBytes", "Bytes", "counter"),
        ("HTTP_Redirect_Count", "Count", "counter"),
        ("HTTP_Fixed_Response_Count", "Count", "counter"),
    ):
        out.append((metric, "", "", lb_total.get(metric, 0.0), unit, kind))
    for code in CODES:
        target = lb_total.get(f"srv_{code}", 0.0)
        out.append((f"HTTPCode_Target_{code.upper()}_Count", "", "", target, "Count", "counter"))
        out.append(
            (
                f"HTTPCode_ELB_{code.upper()}_Count",
                "",
                "",
                max(0.0, lb_total.get(f"fe_{code}", 0.0) - target),
                "Count",
                "counter",
            )
        )
    for (metric, tg), value in sorted(tg_total.items()):
        out.append((metric, tg, "", value, "Count", "counter"))
    for (metric, tg, srv), value in sorted(srv_total.items()):
        out.append((metric, tg, srv, value, "Count", "counter"))
    all_rt: list[tuple[float, float]] = []
    for tg, pairs in sorted(rtimes.items()):
        out.append(("TargetResponseTime", tg, "", _weighted(pairs) / 1000, "Seconds", "gauge"))
        all_rt += pairs
    out.append(("TargetResponseTime", "", "", _weighted(all_rt) / 1000, "Seconds", "gauge"))
    return out


def classic_metrics(nodes: list[list[dict[str, str]]], protocols: dict[str, str]) -> list[Metric]:
    """(metric, "", "", value, unit, kind) of one CLB from its nodes' rows; protocols:
    {listener name: HTTP | HTTPS | TCP | SSL} (HTTPS listeners count requests as HTTP ones
    do, SSL ones connections as TCP ones do)."""
    total: dict[str, float] = {}
    latency: list[tuple[float, float]] = []

    def add(key: str, value: float) -> None:
        total[key] = total.get(key, 0.0) + value

    for rows in nodes:
        for row in rows:
            px, sv = row["pxname"], row["svname"]
            listener = px.removeprefix("ls_") if px.startswith("ls_") else px
            http = protocols.get(listener, "TCP").upper() in ("HTTP", "HTTPS")
            if sv == "FRONTEND" and listener in protocols and not px.startswith("ls_"):
                add("EstimatedProcessedBytes", _n(row, "bin") + _n(row, "bout"))
                if http:
                    for code in ("4xx", "5xx"):
                        add(f"fe_{code}", _n(row, f"hrsp_{code}"))
            elif not px.startswith("ls_"):
                continue
            elif sv == "BACKEND":
                add("SurgeQueueLength", _n(row, "qcur"))
                if http:
                    add("RequestCount", _n(row, "req_tot"))
                    latency.append((_n(row, "rtime"), _n(row, "req_tot")))
                else:
                    latency.append((_n(row, "ctime"), _n(row, "stot")))
            else:
                add("BackendConnectionErrors", _n(row, "econ"))
                if http:
                    for code in CODES:
                        add(f"srv_{code}", _n(row, f"hrsp_{code}"))
                else:
                    add("RequestCount", _n(row, "stot"))
    total["Latency"] = _weighted(latency) / 1000
    out: list[Metric] = [
        (metric, "", "", total.get(metric, 0.0), unit, kind)
        for metric, unit, kind in (
            ("RequestCount", "Count", "counter"),
            ("Latency", "Seconds", "gauge"),
            ("BackendConnectionErrors", "Count", "counter"),
            ("SurgeQueueLength", "Count", "gauge"),
            ("EstimatedProcessedBytes", "Bytes", "counter"),
        )
    ]
    for code in CODES:
        value = total.get(f"srv_{code}", 0.0)
        out.append((f"HTTPCode_Backend_{code.upper()}", "", "", value, "Count", "counter"))
    for code in ("4xx", "5xx"):
        own = max(0.0, total.get(f"fe_{code}", 0.0) - total.get(f"srv_{code}", 0.0))
        out.append((f"HTTPCode_ELB_{code.upper()}", "", "", own, "Count", "counter"))
    return out


NLB_TLS_METRICS = (
    ("NewFlowCount_TLS", "Count", "counter"),
    ("ActiveFlowCount_TLS", "Count", "gauge"),
    ("ProcessedBytes_TLS", "Bytes", "counter"),
    ("ClientTLSNegotiationErrorCount", "Count", "counter"),
    ("TargetTLSNegotiationErrorCount", "Count", "counter"),
)


def nlb_tls_metrics(nodes: list[list[dict[str, str]]], frontends: Iterable[str]) -> list[Metric]:
    """(metric, "", "", value, unit, kind) of one NLB's TLS listeners from its nodes' rows;
    frontends: the TLS listeners' names (their frontends)."""
    names = set(frontends)
    total = dict.fromkeys((m for m, _u, _k in NLB_TLS_METRICS), 0.0)
    for rows in nodes:
        for row in rows:
            px, sv = row["pxname"], row["svname"]
            if sv == "FRONTEND" and px in names:
                total["NewFlowCount_TLS"] += _n(row, "conn_tot")
                total["ActiveFlowCount_TLS"] += _n(row, "scur")
                total["ProcessedBytes_TLS"] += _n(row, "bin") + _n(row, "bout")
                total["ClientTLSNegotiationErrorCount"] += _n(row, "ssl_failed_handshake")
            elif px.startswith("tg_") and sv not in ("FRONTEND", "BACKEND"):
                total["TargetTLSNegotiationErrorCount"] += _n(row, "ssl_failed_handshake")
    return [(metric, "", "", total[metric], unit, kind) for metric, unit, kind in NLB_TLS_METRICS]


def _weighted(pairs: list[tuple[float, float]]) -> float:
    """Average of per-node averages, weighted by how many requests each node served."""
    total = sum(n for _v, n in pairs)
    return sum(v * n for v, n in pairs) / total if total else 0.0


def health_counts(rows: list[TargetDescription], lb: str) -> dict[str, tuple[int, int]]:
    """{target group: (healthy, unhealthy)} from describe-target-health rows."""
    out: dict[str, tuple[int, int]] = {}
    for r in rows:
        if r["LoadBalancer"] != lb:
            continue
        ok, bad = out.get(r["TargetGroup"], (0, 0))
        state = r["TargetHealth"]["State"]
        out[r["TargetGroup"]] = (ok + (state == "healthy"), bad + (state == "unhealthy"))
    return out
