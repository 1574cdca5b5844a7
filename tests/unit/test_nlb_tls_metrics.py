"""AWS/NetworkELB metrics of an NLB's TLS listeners (issue 16): HAProxy's `show stat` rows of
the nodes -> NewFlowCount_TLS, ActiveFlowCount_TLS, ProcessedBytes_TLS,
ClientTLSNegotiationErrorCount, TargetTLSNegotiationErrorCount, and the load balancer's
NewFlowCount / ActiveFlowCount / ProcessedBytes with the TLS flows in them (as AWS counts
them). No root, no lab."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from testbed.alb import stats
from testbed.metrics import sources
from testbed.model import load_model_text
from testbed.plan.network import build_plan

TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "nlb-tls.yaml"

# HAProxy 2.6's `show stat` header, the fields these metrics read among its own (the SSL
# module's ssl_* columns come after the proxy's, as 2.6 prints them).
HEADER = "# pxname,svname,scur,stot,bin,bout,econ,conn_tot,connect,ssl_sess,ssl_failed_handshake,\n"


def node(*rows: str) -> list[dict[str, str]]:
    return stats.parse_stat(HEADER + "".join(f"{r},\n" for r in rows))


# Node 1: Tls took 5 connections (one failed its handshake: TLS 1.0 against the policy),
# 2 open; Reencrypt 3, its group's target failed 2 handshakes. Node 2: Tls took 1.
NODE_1 = node(
    "Tls,FRONTEND,2,4,1000,3000,,5,,4,1",
    "Reencrypt,FRONTEND,0,3,200,400,,3,,3,0",
    "tg_WebTcp,Web1-80,2,4,700,2000,0,,4,0,0",
    "tg_WebTcp,BACKEND,2,4,700,2000,0,,4,0,0",
    "tg_WebTls,Web2-443,0,3,100,300,0,,5,0,2",
    "tg_WebTls,BACKEND,0,3,100,300,0,,5,0,2",
)
NODE_2 = node("Tls,FRONTEND,0,1,10,20,,1,,1,0", "Other,FRONTEND,9,9,9,9,,9,,9,9")


def test_tls_metrics_from_the_nodes_frontends_and_servers():
    got = {
        m: (v, unit, kind)
        for m, _tg, _t, v, unit, kind in stats.nlb_tls_metrics(
            [NODE_1, NODE_2], ["Tls", "Reencrypt"]
        )
    }
    assert got == {
        "NewFlowCount_TLS": (9.0, "Count", "counter"),
        "ActiveFlowCount_TLS": (2.0, "Count", "gauge"),
        "ProcessedBytes_TLS": (4630.0, "Bytes", "counter"),
        "ClientTLSNegotiationErrorCount": (1.0, "Count", "counter"),
        # Servers only: the BACKEND row sums the same attempts.
        "TargetTLSNegotiationErrorCount": (2.0, "Count", "counter"),
    }


def test_no_node_answering_gives_zeros():
    assert {v for _m, _g, _t, v, _u, _k in stats.nlb_tls_metrics([], ["Tls"])} == {0.0}


def test_the_nlb_source_adds_tls_flows_to_the_load_balancer_totals(tmp_path, monkeypatch):
    plan = build_plan(
        load_model_text(TEMPLATE.read_text(), filename="nlb-tls.yaml", stack_name="t"), "t"
    )
    lb = plan.load_balancers[0]
    switch = {
        "new_flows": [{"lb": lb.name, "tg": "WebTcp", "target": "10.0.0.5:80", "count": 10}],
        "processed_bytes": {lb.name: 50_000},
        "active_flows": [{"lb": lb.name, "ip": "10.0.0.5", "port": 80, "count": 3}],
        "time": 0.0,
    }
    asked: list[list[Path]] = []

    def read_nodes(sockets):
        asked.append(list(sockets))
        return [NODE_1, NODE_2]

    monkeypatch.setattr(sources.asks, "controller_nlb_stats", lambda _sock: switch)
    monkeypatch.setattr(sources, "target_rows", lambda _lab: [])
    monkeypatch.setattr(sources.stats, "read_nodes", read_nodes)
    source = sources.NlbSource(SimpleNamespace(dir=tmp_path), plan)
    got = {(s.metric, s.target_group): s for s in source.snapshot() if s.load_balancer == lb.name}
    # Each node's stats socket is read.
    assert len(asked) == 1
    assert len(asked[0]) == len(lb.nodes)
    assert got[("NewFlowCount_TLS", "")].value == 9  # Tls 5 + 1, Reencrypt 3 (not "Other")
    assert got[("ClientTLSNegotiationErrorCount", "")].value == 1
    assert got[("TargetTLSNegotiationErrorCount", "")].value == 2
    assert got[("NewFlowCount", "")].value == 10 + 9
    assert got[("ActiveFlowCount", "")].value == 3 + 2
    assert got[("ProcessedBytes", "")].value == 50_000 + 4630
    assert got[("ActiveFlowCount_TLS", "")].kind == "gauge"
    assert got[("NewFlowCount", "WebTcp")].value == 10  # per group: the switches' flows


def test_an_nlb_without_tls_listeners_reads_no_haproxy(tmp_path):
    nlb = TEMPLATE.parent / "nlb.yaml"
    plan = build_plan(load_model_text(nlb.read_text(), filename="nlb.yaml", stack_name="t"), "t")
    assert any(lb.type == "network" for lb in plan.load_balancers)
    assert sources.NlbSource(SimpleNamespace(dir=tmp_path), plan).tls == {}
