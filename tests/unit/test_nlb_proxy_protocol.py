"""NLB proxy protocol v2 (issue 16): the model (TCP and TLS groups take proxy_protocol_v2.enabled,
UDP and TCP_UDP ones are refused), the plan (LoadBalancerPlan.node_listeners: TLS listeners and
TCP listeners to proxy protocol groups; the node's ports), the switches (such a TCP listener's
port reaches the node's host), haproxy.cfg (`send-proxy-v2`), template updates (live on a
TLS-only group, down/up when a TCP listener would move), and the node's HAProxy on the loopback
sending a v2 header to the http-backend role, which reads it on its HTTP, TCP and HTTPS ports
(on HTTPS before the handshake), also for a server added through the runtime API."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from testbed.alb.config import node_files, render
from testbed.alb.runtime import NodeRuntime
from testbed.alb.servers import proxy_v2_backends
from testbed.errors import BadInput
from testbed.lab import certs
from testbed.lb.service import LbService
from testbed.messages import RuntimeTargetInfo
from testbed.model import load_model_text
from testbed.plan.changes import plan_changes
from testbed.plan.network import NetworkPlan, build_plan
from testbed.roles import proxy_protocol as pp
from testbed.waiting import wait_for
from tests.fake_openflow import FakeFabric, ip_packet
from tests.haproxy_local import HAVE_HAPROXY
from tests.unit.test_backend_and_load import accepts, free_ports
from tests.unit.test_nlb_tls import Fabric

TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "nlb-proxy-protocol.yaml"
needs_haproxy = pytest.mark.skipif(not HAVE_HAPROXY, reason="haproxy is not installed")
ON = '- {Key: proxy_protocol_v2.enabled, Value: "true"}'


def model(text: str | None = None, **params: str):
    return load_model_text(
        text or TEMPLATE.read_text(), filename="pp.yaml", params=params, stack_name="t"
    )


def plan(text: str | None = None, **params: str) -> NetworkPlan:
    return build_plan(model(text, **params), "t")


def without_proxy_protocol() -> str:
    text = TEMPLATE.read_text()
    assert ON in text
    return text.replace(ON, '- {Key: proxy_protocol_v2.enabled, Value: "false"}')


# ---- model -----------------------------------------------------------------------------------
def test_tcp_and_tls_groups_take_it():
    groups = {tg.name: tg for tg in plan().load_balancers[0].target_groups}
    assert groups["WebPp"].proxy_protocol_v2
    assert groups["WebTlsPp"].proxy_protocol_v2
    assert not groups["WebPlain"].proxy_protocol_v2
    off = plan(ProxyProtocol="false").load_balancers[0].target_group("WebTlsPp")
    assert not off.proxy_protocol_v2


@pytest.mark.parametrize("protocol", ["UDP", "TCP_UDP"])
def test_udp_groups_are_refused_at_the_attribute_line(protocol):
    text = TEMPLATE.read_text()
    bad = (
        "  Dns:\n    Type: AWS::ElasticLoadBalancingV2::TargetGroup\n    Properties:\n"
        f"      Protocol: {protocol}\n      Port: 53\n      VpcId: !Ref Vpc\n"
        "      TargetGroupAttributes:\n"
        '        - {Key: proxy_protocol_v2.enabled, Value: "true"}\n\n'
    )
    text = text.replace("  Tcp:\n", bad + "  Tcp:\n")
    line = text.splitlines().index("      Port: 53") + 4  # the attribute's (1-based)
    with pytest.raises(BadInput) as info:
        model(text)
    message = str(info.value)
    assert f"proxy protocol v2 is for TCP and TLS target groups, not {protocol} ones" in message
    assert f"pp.yaml:{line}: Dns: " in message, message


# ---- plan --------------------------------------------------------------------------------------
def test_node_listeners_are_tls_and_tcp_to_proxy_protocol_groups():
    p = plan()
    lb = p.load_balancers[0]
    assert [lis.name for lis in lb.node_listeners] == ["Tcp", "Tls", "Reencrypt"]
    assert [lis.name for lis in lb.tls_listeners] == ["Tls", "Reencrypt"]
    assert lb.runs_haproxy
    nodes = [h for h in p.hosts if h.kind == "lb-node"]
    assert all(h.role_args["ports"] == [80, 443, 8443] for h in nodes)  # not 81: the switches
    assert proxy_v2_backends(lb) == {"tg_WebPp", "tg_WebTlsPp"}
    off = plan(without_proxy_protocol(), ProxyProtocol="false").load_balancers[0]
    assert [lis.name for lis in off.node_listeners] == ["Tls", "Reencrypt"]
    assert proxy_v2_backends(off) == set()


def test_the_tcp_listeners_port_reaches_the_node_host():
    p = plan()
    fabric = FakeFabric(p, Fabric(p))
    node = p.load_balancers[0].nodes[0]
    for port, where in ((80, {node.host}), (443, {node.host}), (81, {"Web1", "Web2"})):
        pkt = ip_packet(p, "Client1", node.public_ip or node.ip)
        pkt["tcp_src"], pkt["tcp_dst"], pkt["tcp_flags_nxm"] = 41000 + port, port, 0x02
        res = fabric.send("Client1", pkt)
        assert len(res.delivered) == 1, (port, res)
        assert res.hosts[0] in where, (port, res)


# ---- haproxy.cfg -------------------------------------------------------------------------------
def test_config_sends_proxy_v2_to_proxy_protocol_groups():
    p = plan()
    lb = p.load_balancers[0]
    node = lb.nodes[0]
    text = render(lb, node, node_files(Path("/run/lab"), node.host))
    tcp = text[text.index("frontend Tcp") :].split("\n\n")[0]
    assert f"    bind {node.ip}:80\n" in tcp  # plain TCP, no ssl
    assert "    default_backend tg_WebPp" in tcp
    assert "frontend Plain" not in text
    assert "tg_WebPlain" not in text
    assert "    server Web1_80 10.19.1.4:80 send-proxy-v2\n" in text
    assert "    server Web1_443 10.19.1.4:443 ssl verify none send-proxy-v2\n" in text
    off = plan(ProxyProtocol="false").load_balancers[0]
    assert "    server Web1_443 10.19.1.4:443 ssl verify none\n" in render(
        off, off.nodes[0], node_files(Path("/run/lab"), node.host)
    )


# ---- updates -----------------------------------------------------------------------------------
def test_a_tls_only_group_changes_live_with_a_reload():
    live, other, reload = plan_changes(plan(), plan(ProxyProtocol="false"))
    assert live == [
        "load_balancers.Nlb.target_groups.WebTlsPp.attributes.proxy_protocol_v2.enabled: "
        "'true' -> 'false'"
    ]
    assert (other, reload) == ([], ["Nlb"])


def test_a_tcp_listener_moving_needs_down_and_up():
    text = TEMPLATE.read_text().replace(ON, '- {Key: proxy_protocol_v2.enabled, Value: "false"}')
    _live, other, _reload = plan_changes(plan(), plan(text))
    assert other == [
        "load_balancers.Nlb.listeners.Tcp: moves to the switches (proxy protocol v2 of its "
        "target group turned off)",
        "hosts.Nlb-1a.role_args.ports: [80, 443, 8443] -> [443, 8443]",
        "hosts.Nlb-1b.role_args.ports: [80, 443, 8443] -> [443, 8443]",
    ]
    _live, other, _reload = plan_changes(plan(text), plan())
    assert other[0] == (
        "load_balancers.Nlb.listeners.Tcp: moves to the node's HAProxy (proxy protocol v2 of "
        "its target group turned on)"
    )


# ---- the role reads the header -----------------------------------------------------------------
def start_role(tmp_path: Path) -> tuple[subprocess.Popen, dict[str, int]]:
    cert = certs.issue_host_cert(tmp_path, "T1", ["127.0.0.1"])
    port, tcp, https, admin = free_ports(4)
    argv = [sys.executable, "-m", "testbed.roles.http_backend", "--id", "T1", "--bind"]
    argv += ["127.0.0.1", "--port", str(port), "--tcp-port", str(tcp), "--udp-port", "0"]
    argv += ["--admin-port", str(admin), "--https-port", str(https), "--cert", str(cert)]
    proc = subprocess.Popen(argv)
    wait_for(lambda: proc.poll() is not None or accepts(https), 10, "the backend to start")
    assert proc.poll() is None
    return proc, {"port": port, "tcp": tcp, "https": https}


def answer(s: socket.socket) -> dict:
    """The JSON body of one request's answer (by its Content-Length: the role lingers before
    it closes)."""
    s.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += s.recv(65536)
    return json.loads(body)


def https_get(port: int, header: bytes = b"") -> dict:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(header)
        with ctx.wrap_socket(raw) as s:
            return answer(s)


def test_role_reads_a_header_before_tls(tmp_path):
    proc, ports = start_role(tmp_path)
    try:
        v2 = pp.v2_header("192.0.2.10", "10.19.1.5", 51000, 8443)
        proxy = https_get(ports["https"], v2)["proxy"]
        assert (proxy["version"], proxy["source_ip"], proxy["source_port"]) == (
            2,
            "192.0.2.10",
            51000,
        )
        assert (proxy["destination_ip"], proxy["destination_port"]) == ("10.19.1.5", 8443)
        v1 = pp.v1_header("192.0.2.11", "10.19.1.5", 51001, 443)
        assert https_get(ports["https"], v1)["proxy"]["source_ip"] == "192.0.2.11"
        local = pp.v2_header(None, None, local=True)
        assert https_get(ports["https"], local)["proxy"]["command"] == "LOCAL"
        assert https_get(ports["https"])["proxy"] is None  # no header: TLS as before
        # A malformed header: the connection is closed, the listener goes on.
        with socket.create_connection(("127.0.0.1", ports["https"]), timeout=5) as raw:
            raw.sendall(pp.V2_SIGNATURE + bytes([0x31, 0x11, 0, 0]))
            assert raw.recv(100) == b""
        assert https_get(ports["https"])["tls"]["version"]
    finally:
        proc.terminate()
        proc.wait(5)


# ---- HAProxy on the loopback -------------------------------------------------------------------
def _get(port: int, tls: bool) -> dict:
    if tls:
        return https_get(port)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        return answer(s)


@needs_haproxy
def test_node_haproxy_sends_v2_headers_the_role_reads():
    """The node's haproxy.cfg on the loopback (node 127.0.0.1, listeners on free ports), the
    http-backend role as the targets: TCP:80 and TLS:443 to its HTTP port, TLS:8443 to its
    HTTPS port; then a server added at run time (the role's TCP port) gets the header too."""
    p = plan()
    lab_dir = Path(tempfile.mkdtemp(prefix="pp", dir="/tmp"))  # a stats socket path < 108
    certs.issue_all(lab_dir, p)
    proc, ports = start_role(lab_dir)
    lb = p.load_balancers[0]
    fronts = dict(zip(("Tcp", "Tls", "Reencrypt"), free_ports(3)))
    web, tls_group = lb.target_group("WebPp"), lb.target_group("WebTlsPp")
    lb = replace(
        lb,
        listeners=tuple(replace(x, port=fronts.get(x.name, x.port)) for x in lb.listeners),
        target_groups=(
            replace(web, targets=(replace(web.targets[0], ip="127.0.0.1", port=ports["port"]),)),
            replace(
                tls_group,
                targets=(replace(tls_group.targets[0], ip="127.0.0.1", port=ports["https"]),),
            ),
        ),
    )
    node = replace(lb.nodes[0], ip="127.0.0.1")
    files = node_files(lab_dir, node.host)
    files.dir.mkdir(parents=True)
    files.config.write_text(render(lb, node, files))
    haproxy = subprocess.Popen(["haproxy", "-db", "-f", str(files.config)])
    try:
        wait_for(
            lambda: haproxy.poll() is not None or accepts(fronts["Reencrypt"]),
            10,
            "HAProxy to listen",
        )
        assert haproxy.poll() is None
        for name, tls in (("Tcp", False), ("Tls", True), ("Reencrypt", True)):
            body = _get(fronts[name], tls)
            proxy = body["proxy"]
            assert proxy is not None, (name, body)
            assert (proxy["version"], proxy["command"], proxy["protocol"]) == (2, "PROXY", "TCP4")
            assert proxy["source_ip"] == "127.0.0.1"
            assert proxy["source_port"] > 0
            assert (proxy["destination_ip"], proxy["destination_port"]) == (
                "127.0.0.1",
                fronts[name],
            ), name
            assert bool(body["tls"]) == (name == "Reencrypt")
        # A target registered at run time: `add server ... send-proxy-v2` (the role's TCP
        # port, which says who it is in one line after reading the header).
        runtime = NodeRuntime(lb, node, files)
        rows = {
            "WebPp": [
                RuntimeTargetInfo(
                    key=f"127.0.0.1:{ports['tcp']}",
                    ip="127.0.0.1",
                    port=ports["tcp"],
                    az=node.az,
                    state="healthy",
                ),
                RuntimeTargetInfo(
                    key=web.targets[0].key,
                    ip="127.0.0.1",
                    port=ports["port"],
                    az=node.az,
                    state="draining",
                ),
            ]
        }
        desired = runtime.desired({lb.name: rows})
        assert len(desired) == 3, desired
        sent = runtime.sync(desired)
        assert any(s.startswith("add tg_WebPp/") for s in sent), sent
        with socket.create_connection(("127.0.0.1", fronts["Tcp"]), timeout=5) as s:
            line = json.loads(s.makefile().readline())
        assert line["proxy"]["destination_port"] == fronts["Tcp"], line
    finally:
        haproxy.terminate()
        haproxy.wait(10)
        proc.terminate()
        proc.wait(5)
        shutil.rmtree(lab_dir, ignore_errors=True)


def test_a_preserving_group_gets_the_client_address_and_the_header():
    """preserve_client_ip.enabled on a proxy protocol group (ip targets: off by default): its
    TCP listener runs on the node, which connects from the client's address and still sends
    the header (AWS: both)."""
    text = TEMPLATE.read_text().replace(
        ON, ON + '\n        - {Key: preserve_client_ip.enabled, Value: "true"}', 1
    )
    p = plan(text)
    lb = p.load_balancers[0]
    assert [tg.name for tg in lb.transparent_groups] == ["WebPp"]
    node = lb.nodes[0]
    cfg = render(lb, node, node_files(Path("/run/lab"), node.host))
    backend = cfg[cfg.index("\nbackend tg_WebPp") :].split("\n\n")[0]
    assert "source 0.0.0.0 usesrc clientip" in backend
    assert "send-proxy-v2" in backend
    assert not any(h.source_dest_check for h in p.hosts if h.kind == "lb-node")


def test_ip_targets_are_named_by_instance_or_address_alike():
    """`testbed register/deregister` of an ip group: an instance's name or its address give
    the key the plan gives the template's targets (Web1:80), so either finds them."""
    p = plan()
    lb = p.load_balancers[0]
    web1 = p.host("Web1")
    assert "Web1:80" in {t.key for t in lb.target_group("WebPp").targets}
    service = SimpleNamespace(plan=p)
    for text in ("Web1", web1.ip):
        target = LbService._target(service, lb, "WebPp", text, None)  # type: ignore[arg-type]
        assert (target.key, target.ip, target.port) == ("Web1:80", web1.ip, 80)
    with pytest.raises(BadInput, match="neither an IPv4 address nor an instance"):
        LbService._target(service, lb, "WebPp", "Nope", None)  # type: ignore[arg-type]
