"""NLB TLS listeners (issue 16): the model (TLS listeners, AlpnPolicy, TLS target groups), the
plan (node role args, plan.json fields), the switches (a TLS listener's port reaches the node's
host, TCP listeners keep their flows) and the node's haproxy.cfg run by HAProxy on the loopback
(TLS ended with the certificate and policy, ALPN by the AlpnPolicy, plain TCP or TLS to the
targets)."""

from __future__ import annotations

import socket
import socketserver
import ssl
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from testbed.alb import nlb_tls
from testbed.alb.config import node_files, render
from testbed.alb.runtime import AlbRuntime
from testbed.alb.servers import node_servers
from testbed.controllers.forwarding import Forwarding
from testbed.controllers.nlb import NlbLogic
from testbed.controllers.security import SecurityLogic
from testbed.errors import BadInput
from testbed.lab import certs
from testbed.model import load_model_text
from testbed.model.elbv2_types import elbv2_sections
from testbed.plan.changes import plan_changes
from testbed.plan.network import NetworkPlan, build_plan
from tests.fake_openflow import FakeFabric, ip_packet
from tests.haproxy_local import HAVE_HAPROXY, free_port
from tests.tls_local import node_haproxy, template_fails, template_model

TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "nlb-tls.yaml"
needs_haproxy = pytest.mark.skipif(not HAVE_HAPROXY, reason="haproxy is not installed")


def model(text: str | None = None, **params: str):
    return template_model(TEMPLATE, text, **params)


def plan(**params: str) -> NetworkPlan:
    return build_plan(model(**params), "t")


def fails(change: tuple[str, str], *fragments: str) -> None:
    template_fails(TEMPLATE, change, *fragments)


# ---- model ---------------------------------------------------------------------------------
def test_tls_listeners_and_groups():
    m = model()
    listeners = elbv2_sections(m)["listeners"]
    tls, plain, again = listeners["Tls"], listeners["Plain"], listeners["Reencrypt"]
    assert tls.protocol == "TLS"
    assert tls.certificates == (m.outputs["CertificateArn"],)
    assert tls.ssl_policy == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert tls.alpn_policy == "HTTP2Preferred"
    assert tls.tcp_idle_timeout_s == 350  # a TLS listener's flows idle out as TCP ones
    assert (again.ssl_policy, again.alpn_policy) == ("ELBSecurityPolicy-2016-08", None)
    assert (plain.certificates, plain.ssl_policy, plain.alpn_policy) == ((), None, None)
    groups = elbv2_sections(m)["target_groups"]
    assert groups["WebTls"].protocol == "TLS"
    assert groups["WebTls"].health_check.protocol == "TCP"  # the NLB's default check


@pytest.mark.parametrize("name", ["HTTP1Only", "HTTP2Only", "HTTP2Optional", "HTTP2Preferred"])
def test_alpn_policy_names(name):
    tls = elbv2_sections(model(AlpnPolicy=name))["listeners"]["Tls"]
    assert tls.alpn_policy == name


def test_alpn_policy_none_is_no_alpn():
    assert elbv2_sections(model(AlpnPolicy="None"))["listeners"]["Tls"].alpn_policy is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("      AlpnPolicy: [!Ref AlpnPolicy]\n", "      AlpnPolicy: [HTTP3]\n"),
            "AlpnPolicy must be one of HTTP1Only, HTTP2Only, HTTP2Optional, HTTP2Preferred, "
            "None, not 'HTTP3'",
        ),
        (
            ("      AlpnPolicy: [!Ref AlpnPolicy]\n", "      AlpnPolicy: [HTTP1Only, None]\n"),
            "AlpnPolicy takes a list of one policy name",
        ),
        (
            (
                "      Port: 80\n      DefaultActions",
                "      Port: 80\n      AlpnPolicy: [HTTP1Only]\n      DefaultActions",
            ),
            "AlpnPolicy is only for HTTPS and TLS listeners, not TCP ones",
        ),
        (
            (
                "      Certificates: [{CertificateArn: !Ref WwwCertificate}]\n      Default",
                "      Default",
            ),
            "a TLS listener needs a certificate: Certificates is missing",
        ),
        (
            ("      SslPolicy: !Ref SslPolicy\n", "      SslPolicy: ELBSecurityPolicy-Nope\n"),
            "SslPolicy",
        ),
    ],
)
def test_bad_tls_listeners(change, message):
    fails(change, message)


def test_tls_listener_to_a_udp_group_is_refused():
    text = (
        TEMPLATE.read_text()
        .replace(
            "      Protocol: TLS  # the NLB node re-encrypts", "      Protocol: UDP  # was TLS"
        )
        # (a UDP group always preserves the client address: AWS refuses "false" there)
        .replace('        - {Key: preserve_client_ip.enabled, Value: "false"}\n', "")
        .replace("      TargetGroupAttributes:\n", "")
    )
    with pytest.raises(BadInput) as info:
        model(text)
    assert "TLS listener" in str(info.value), str(info.value)
    assert "UDP" in str(info.value), str(info.value)


# ---- plan ------------------------------------------------------------------------------------
def test_plan_nodes_listen_on_tls_ports_only():
    p = plan()
    nodes = [h for h in p.hosts if h.kind == "lb-node"]
    assert nodes
    assert all(h.role == "network-node" for h in nodes)
    assert all(h.role_args["ports"] == [443, 8443] for h in nodes)
    lb = p.load_balancers[0]
    assert [lis.name for lis in lb.tls_listeners] == ["Tls", "Reencrypt"]
    assert lb.runs_haproxy
    assert not lb.proxied
    again = NetworkPlan.from_json(p.to_json())
    assert again.load_balancers[0].tls_listeners == lb.tls_listeners


def test_an_nlb_without_tls_runs_no_haproxy():
    text = TEMPLATE.read_text()
    start = text.index("  Tls:\n")
    end = text.index("  Zone:\n")
    p = build_plan(load_model_text(text[:start] + text[end:], filename="x.yaml"), "t")
    lb = p.load_balancers[0]
    assert not lb.runs_haproxy
    assert all("ports" not in h.role_args for h in p.hosts if h.kind == "lb-node")


# ---- switches ----------------------------------------------------------------------------------
class Fabric:
    """Forwarding, NLB and security group logic together, as the controller app has them."""

    def __init__(self, p: NetworkPlan) -> None:
        self.forwarding = Forwarding(p)
        self.nlb = NlbLogic(p, table_size=61)
        self.security = SecurityLogic(p)

    def flows_for(self, dpid):
        return (
            self.forwarding.flows_for(dpid)
            + self.nlb.flows_for(dpid)
            + self.security.flows_for(dpid)
        )


def test_tls_port_reaches_the_node_host_tcp_port_a_target():
    p = plan()
    fabric = FakeFabric(p, Fabric(p))
    node = p.load_balancers[0].nodes[0]
    targets = {"Web1", "Web2"}
    for port, where in ((443, {node.host}), (8443, {node.host}), (80, targets)):
        pkt = ip_packet(p, "Client1", node.public_ip or node.ip)
        pkt["tcp_src"], pkt["tcp_dst"], pkt["tcp_flags_nxm"] = 41000 + port, port, 0x02
        res = fabric.send("Client1", pkt)
        assert len(res.delivered) == 1, (port, res)
        assert res.hosts[0] in where, (port, res)
    # The node's own connection to a target (HAProxy, from its port range) and the answer.
    web1 = p.host("Web1")
    out = ip_packet(p, node.host, web1.ip)
    out["tcp_src"], out["tcp_dst"], out["tcp_flags_nxm"] = 62000, 80, 0x02
    res = fabric.send(node.host, out)
    assert res.hosts == ["Web1"]
    assert res.delivered[0][1]["ipv4_src"] == node.ip  # not translated
    back = ip_packet(p, "Web1", node.ip)
    back["tcp_src"], back["tcp_dst"], back["tcp_flags_nxm"] = 80, 62000, 0x12
    res = fabric.send("Web1", back)
    assert res.hosts == [node.host]
    assert (res.delivered[0][1]["ipv4_src"], res.delivered[0][1]["tcp_src"]) == (web1.ip, 80)


@pytest.mark.parametrize("target", ["Web1", "Web2"])  # the node's AZ, and the other one's switch
def test_transparent_connection_and_its_replies(target):
    """The node's HAProxy connects from the client's address (WebTcp preserves it): the
    target sees the client; its reply, addressed to the client, goes to the node untranslated,
    while the TCP listener's connections of the same target keep their own path."""
    p = plan()
    fabric = FakeFabric(p, Fabric(p))
    node = p.load_balancers[0].nodes[0]
    web = p.host(target)
    client = p.host("Client1")
    out = ip_packet(p, node.host, web.ip)
    out["ipv4_src"] = client.ip
    out["tcp_src"], out["tcp_dst"], out["tcp_flags_nxm"] = 61555, 80, 0x02
    res = fabric.send(node.host, out)
    assert res.hosts == [target], res
    assert (res.delivered[0][1]["ipv4_src"], res.delivered[0][1]["tcp_src"]) == (client.ip, 61555)
    back = ip_packet(p, target, client.ip)
    back["tcp_src"], back["tcp_dst"], back["tcp_flags_nxm"] = 80, 61555, 0x12
    res = fabric.send(target, back)
    assert res.hosts == [node.host], res  # not to the client
    got = res.delivered[0][1]
    assert (got["ipv4_src"], got["tcp_src"], got["ipv4_dst"]) == (web.ip, 80, client.ip)
    assert got["eth_dst"] == p.host(node.host).mac
    # A reply the node never asked for (no connection from it): routed on as before, not
    # to the node.
    stray = ip_packet(p, target, client.ip)
    stray["tcp_src"], stray["tcp_dst"], stray["tcp_flags_nxm"] = 80, 61556, 0x12
    assert node.host not in fabric.send(target, stray).hosts


def test_tcp_listener_beside_a_transparent_tls_listener():
    """The TCP listener of the same group: the client's SYN to the node's port 80 reaches a
    target from the client, and the target's answer comes back from the node's address."""
    p = plan()
    fabric = FakeFabric(p, Fabric(p))
    node = p.load_balancers[0].nodes[0]
    syn = ip_packet(p, "Client1", node.public_ip or node.ip)
    syn["tcp_src"], syn["tcp_dst"], syn["tcp_flags_nxm"] = 45000, 80, 0x02
    res = fabric.send("Client1", syn)
    target = res.hosts[0]
    assert target in ("Web1", "Web2")
    back = ip_packet(p, target, p.host("Client1").ip)
    back["tcp_src"], back["tcp_dst"], back["tcp_flags_nxm"] = 80, 45000, 0x12
    res = fabric.send(target, back)
    assert res.hosts == ["Client1"], res
    assert res.delivered[0][1]["ipv4_src"] == (node.public_ip or node.ip)


# ---- haproxy.cfg -------------------------------------------------------------------------------
def config(p: NetworkPlan, lab_dir: Path = Path("/run/lab")) -> str:
    lb = p.load_balancers[0]
    return render(lb, lb.nodes[0], node_files(lab_dir, lb.nodes[0].host))


def test_config_has_only_tls_listeners_and_their_groups():
    p = plan()
    text = config(p)
    node = p.load_balancers[0].nodes[0]
    arn = p.load_balancers[0].tls_listeners[0].certificates[0]
    pem = certs.pem_path(Path("/run/lab"), arn)
    assert "frontend Plain" not in text  # the switches carry the TCP listener
    assert f"    bind {node.ip}:443 ssl crt {pem} ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.3" in text
    assert "alpn h2,http/1.1,http/1.0\n" in text
    assert f"    bind {node.ip}:8443 ssl crt {pem} ssl-min-ver TLSv1.0" in text
    reencrypt = text[text.index("frontend Reencrypt") :].split("\n\n")[0]
    assert "alpn" not in reencrypt
    assert "server Web1_80 10.17.1.4:80\n" in text
    assert "server Web1_443 10.17.1.4:443 ssl verify none" in text
    lb = p.load_balancers[0]
    assert set(node_servers(lb, node, {})) == {("tg_WebTcp", "Web1_80"), ("tg_WebTls", "Web1_443")}


@pytest.mark.parametrize(
    ("policy", "offer"),
    [
        ("HTTP1Only", "http/1.1,http/1.0"),
        ("HTTP2Only", "h2"),
        ("HTTP2Optional", "http/1.1,http/1.0,h2"),
        ("HTTP2Preferred", "h2,http/1.1,http/1.0"),
    ],
)
def test_alpn_option(policy, offer):
    tls = plan(AlpnPolicy=policy).load_balancers[0].tls_listeners[0]
    assert nlb_tls.alpn_option(tls) == f"alpn {offer}"


# ---- HAProxy on the loopback -----------------------------------------------------------------
class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data = self.request.recv(1024)
        self.request.sendall(b"echo:" + data)


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def _serve(port: int, context: ssl.SSLContext | None = None) -> _Server:
    server = _Server(("127.0.0.1", port), _Echo)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _talk(port: int, ca: Path, alpn: list[str]) -> tuple[bytes, str | None, str | None]:
    """(answer, TLS version, ALPN) of a verified TLS connection through the node."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = False  # 127.0.0.1; the certificate's chain is verified
    ctx.set_alpn_protocols(alpn)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="www.example.test") as s,
    ):
        s.sendall(b"hello")
        return s.recv(1024), s.version(), s.selected_alpn_protocol()


@needs_haproxy
@pytest.mark.parametrize("alpn_policy", ["HTTP2Preferred", "HTTP2Optional", "None"])
def test_haproxy_ends_tls_and_forwards_tcp_or_tls(tmp_path, alpn_policy):
    p = plan(AlpnPolicy=alpn_policy)
    certs.issue_all(tmp_path, p)
    lb = p.load_balancers[0]
    front, front2, plain_port, tls_port = free_port(), free_port(), free_port(), free_port()
    tcp_group, tls_group = (lb.target_group(n) for n in ("WebTcp", "WebTls"))
    web = tcp_group.targets[0]
    lb = replace(
        lb,
        listeners=tuple(
            replace(lis, port={"Tls": front, "Reencrypt": front2}.get(lis.name, lis.port))
            for lis in lb.listeners
        ),
        target_groups=(
            # (the node's address on the loopback: transparent proxying is the lab's test)
            replace(
                tcp_group,
                targets=(replace(web, ip="127.0.0.1", port=plain_port),),
                preserve_client_ip=False,
            ),
            replace(
                tls_group,
                targets=(replace(tls_group.targets[0], ip="127.0.0.1", port=tls_port),),
            ),
        ),
    )
    node = replace(lb.nodes[0], ip="127.0.0.1")
    backend_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    backend_ctx.load_cert_chain(certs.issue_host_cert(tmp_path, "T1", ["127.0.0.1"]))
    servers = [_serve(plain_port), _serve(tls_port, backend_ctx)]
    try:
        with node_haproxy(lb, node, tmp_path, front2, stats_socket=False):
            ca = certs.ca_path(tmp_path)
            answer, version, alpn = _talk(front, ca, ["h2", "http/1.1"])
            assert answer == b"echo:hello"  # plain TCP to the target
            assert version == "TLSv1.3"
            offered = {"HTTP2Preferred": "h2", "HTTP2Optional": "http/1.1", "None": None}
            assert alpn == offered[alpn_policy]
            answer, version, alpn = _talk(front2, ca, ["h2", "http/1.1"])
            assert answer == b"echo:hello"  # TLS to the target (re-encrypted)
            assert (version, alpn) == ("TLSv1.2", None)  # ELBSecurityPolicy-2016-08, no ALPN
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def test_alb_runtime_keeps_nlb_tls_nodes_in_step(tmp_path):
    """The holder's HAProxy runtime takes an NLB with TLS listeners (target states reach its
    nodes' servers); an NLB without them has no HAProxy."""
    lb = plan().load_balancers[0]
    runtime = AlbRuntime(tmp_path, [lb], log=lambda _text: None)
    assert sorted(runtime.nodes) == sorted(n.host for n in lb.nodes)
    plain = replace(lb, listeners=tuple(x for x in lb.listeners if x.protocol != "TLS"))
    assert AlbRuntime(tmp_path, [plain], log=lambda _text: None).nodes == {}


def test_client_ip_preservation_behind_tls_listeners():
    p = plan()
    lb = p.load_balancers[0]
    # WebTcp (instance targets): preserved, AWS's default; WebTls: turned off in the template.
    assert [tg.name for tg in lb.transparent_groups] == ["WebTcp"]
    assert all("client IP" not in i.property for i in model().ignored)
    nodes = [h for h in p.hosts if h.kind == "lb-node"]
    assert nodes
    assert not any(h.source_dest_check for h in nodes)  # it sends clients' addresses
    text = config(p)
    tcp_backend = text[text.index("\nbackend tg_WebTcp") :].split("\n\n")[0]
    tls_backend = text[text.index("\nbackend tg_WebTls") :].split("\n\n")[0]
    assert "source 0.0.0.0 usesrc clientip" in tcp_backend
    assert "usesrc" not in tls_backend


def test_no_transparent_proxying_without_preservation():
    text = TEMPLATE.read_text().replace(
        "      Targets: [{Id: !Ref Web1}, {Id: !Ref Web2}]\n  WebTls:",
        "      Targets: [{Id: !Ref Web1}, {Id: !Ref Web2}]\n"
        "      TargetGroupAttributes: [{Key: preserve_client_ip.enabled, Value: 'false'}]\n"
        "  WebTls:",
    )
    p = build_plan(model(text), "t")
    assert p.load_balancers[0].transparent_groups == ()
    assert all(h.source_dest_check for h in p.hosts if h.kind == "lb-node")
    assert "usesrc" not in config(p)
    fabric = Fabric(p)
    flows = [f for s in p.switches for f in fabric.nlb.flows_for(s.dpid)]
    assert not any(f.priority == 110 and f.table == 11 for f in flows)


def test_policy_changes_of_tls_listeners_are_live_and_reload():
    old = plan()
    new = plan(SslPolicy="ELBSecurityPolicy-TLS13-1-3-2021-06", AlpnPolicy="HTTP1Only")
    live, other, reload = plan_changes(old, new)
    assert live == [
        "load_balancers.Nlb.listeners.Tls.alpn_policy: 'HTTP2Preferred' -> 'HTTP1Only'",
        "load_balancers.Nlb.listeners.Tls.ssl_policy: 'ELBSecurityPolicy-TLS13-1-2-2021-06' "
        "-> 'ELBSecurityPolicy-TLS13-1-3-2021-06'",
    ]
    assert (other, reload) == ([], ["Nlb"])


def test_certificate_changes_of_tls_listeners_are_live_and_reload():
    """Another certificate list, a new ListenerCertificate and a certificate reissued for
    other names: all live, the nodes' HAProxy reloads (the load balancer service issues the
    new certificates before it does), as an ALB's."""
    old = plan()
    text = TEMPLATE.read_text()
    shop = (
        "  ShopCertificate:\n"
        "    Type: AWS::CertificateManager::Certificate\n"
        "    Properties: {DomainName: shop.example.test, SubjectAlternativeNames: "
        "[www.example.test]}\n"
    )
    # Reencrypt's default certificate is another one (for www.example.test too, the name
    # that leads to the NLB).
    swapped = text.replace("  Reencrypt:\n", shop + "  Reencrypt:\n").replace(
        "      Certificates: [{CertificateArn: !Ref WwwCertificate}]\n"
        "      DefaultActions: [{Type: forward, TargetGroupArn: !Ref WebTls}]",
        "      Certificates: [{CertificateArn: !Ref ShopCertificate}]\n"
        "      DefaultActions: [{Type: forward, TargetGroupArn: !Ref WebTls}]",
    )
    assert swapped.count("!Ref ShopCertificate") == 1
    new = build_plan(model(swapped), "t")
    live, other, reload = plan_changes(old, new)
    assert (other, reload) == ([], ["Nlb"])
    arn = next(c.arn for c in new.certificates if c.names[0] == "shop.example.test")
    assert f"certificates.{arn}: added" in live
    assert any(c.startswith("load_balancers.Nlb.listeners.Reencrypt.certificates[0]") for c in live)
    # A ListenerCertificate added to Tls.
    added = text.replace(
        "  Reencrypt:\n",
        shop + "  ShopCertificates:\n"
        "    Type: AWS::ElasticLoadBalancingV2::ListenerCertificate\n"
        "    Properties:\n"
        "      ListenerArn: !Ref Tls\n"
        "      Certificates: [{CertificateArn: !Ref ShopCertificate}]\n"
        "  Reencrypt:\n",
    )
    live, other, reload = plan_changes(old, build_plan(model(added), "t"))
    assert (other, reload) == ([], ["Nlb"])
    assert any(c.startswith("load_balancers.Nlb.listeners.Tls.certificates") for c in live)
    # The same certificate (same ARN) issued for more names: the nodes reload to read it.
    renamed = text.replace(
        "{DomainName: www.example.test, ValidationMethod: DNS}",
        "{DomainName: www.example.test, SubjectAlternativeNames: [shop.example.test], "
        "ValidationMethod: DNS}",
    )
    assert renamed != text
    live, other, reload = plan_changes(old, build_plan(model(renamed), "t"))
    assert (other, reload) == ([], ["Nlb"])
    assert any(c.startswith("load_balancers.Nlb.certificates: ") for c in live), live
