"""AWS/NetworkELB metrics of an NLB's TLS listeners (issue 16): HAProxy's `show stat` rows of
the nodes -> NewFlowCount_TLS, ActiveFlowCount_TLS, ProcessedBytes_TLS,
ClientTLSNegotiationErrorCount, TargetTLSNegotiationErrorCount, and the load balancer's
NewFlowCount / ActiveFlowCount / ProcessedBytes with the TLS flows in them (as AWS counts
them). No root, no lab."""

from __future__ import annotations

import socket
import ssl
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from testbed.alb import stats
from testbed.alb.runtime import cli
from testbed.lab import certs
from testbed.metrics import sources
from testbed.model import load_model_text
from testbed.plan.network import build_plan
from testbed.waiting import wait_for
from tests.haproxy_local import HAVE_HAPROXY, free_port
from tests.tls_local import node_haproxy
from tests.unit.test_nlb_tls import _serve, _talk

needs_haproxy = pytest.mark.skipif(not HAVE_HAPROXY, reason="haproxy is not installed")

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


@needs_haproxy
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1 is deprecated:DeprecationWarning")
def test_haproxy_counts_tls_flows_and_failed_handshakes(tmp_path):
    """The node's HAProxy for real: two TLS connections, a TLS 1.0 client the listener's
    TLS 1.2+ policy refuses, and one through Reencrypt to a target that does not speak TLS;
    its `show stat` gives the metrics."""
    plan = build_plan(
        load_model_text(TEMPLATE.read_text(), filename="nlb-tls.yaml", stack_name="t"), "t"
    )
    certs.issue_all(tmp_path, plan)
    lb = plan.load_balancers[0]
    front, front2, plain_port = free_port(), free_port(), free_port()
    ports = {"Tls": front, "Reencrypt": front2}
    plain = ("127.0.0.1", plain_port)
    lb = replace(
        lb,
        listeners=tuple(replace(lis, port=ports.get(lis.name, lis.port)) for lis in lb.listeners),
        target_groups=tuple(
            replace(tg, targets=tuple(replace(t, ip=plain[0], port=plain[1]) for t in tg.targets))
            for tg in lb.target_groups
        ),
    )
    node = replace(lb.nodes[0], ip="127.0.0.1")
    server = _serve(plain_port)  # plain TCP: the TLS group's handshake with it fails
    try:
        with node_haproxy(lb, node, tmp_path, front) as files:

            def metrics() -> dict[str, float]:
                rows = stats.parse_stat(cli(files.stats_socket, "show stat"))
                names = [lis.name for lis in lb.tls_listeners]
                return {m: v for m, _g, _t, v, _u, _k in stats.nlb_tls_metrics([rows], names)}

            before = metrics()  # the readiness check connected once
            ca = certs.ca_path(tmp_path)
            for _ in range(2):
                assert _talk(front, ca, [])[0] == b"echo:hello"
            old = ssl.create_default_context(cafile=str(ca))
            old.check_hostname = False
            old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1
            old.set_ciphers("DEFAULT:@SECLEVEL=0")
            with pytest.raises(ssl.SSLError), socket.create_connection(("127.0.0.1", front)) as raw:
                old.wrap_socket(raw, server_hostname="www.example.test")
            # The node closes it: it cannot speak TLS with the target.
            assert _talk(front2, ca, [])[0] == b""

            wait_for(
                lambda: metrics()["TargetTLSNegotiationErrorCount"] >= 1, 10, "a target handshake"
            )
            # Every connection has ended: none is active.
            wait_for(lambda: metrics()["ActiveFlowCount_TLS"] == 0, 10, "no active TLS flow")
            after = metrics()
            got = {m: after[m] - before[m] for m in after}
    finally:
        server.shutdown()
        server.server_close()
    assert got["NewFlowCount_TLS"] == 4  # 2 + the refused one on Tls, 1 on Reencrypt
    assert got["ClientTLSNegotiationErrorCount"] == 1
    assert got["ProcessedBytes_TLS"] > 0
