"""NLB proxy protocol v2 on a real lab (issue 16): target groups with proxy_protocol_v2.enabled
get a PROXY v2 header on each connection from the NLB node's HAProxy (a TCP listener to such a
group runs there, not in the switches; a TLS listener's backend sends it, before the TLS
handshake to a TLS group); the http-backend target reads it and reports the client's address
and port and the node's address and listener port under `proxy`; its TCP peer stays the node
(ip targets: preserve_client_ip off). Health checks carry no header and pass. A TCP listener
to a group without it keeps the switches' path. Turning it off on a TLS-only group is live (a
reload); on a TCP listener's group it is refused (down/up); UDP groups: exit 2.

templates/nlb-proxy-protocol.yaml; curl --resolve pins www.example.test to a node's public
address.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from testbed.alb.config import node_files
from testbed.alb.runtime import cli, parse_servers_state
from testbed.alb.servers import MAINT
from testbed.errors import BadInput
from testbed.lab.api import Lab
from testbed.waiting import wait_for
from tests.assertions import run_cli

pytestmark = pytest.mark.integration
TEMPLATE = "templates/nlb-proxy-protocol.yaml"
CLIENT = "Client1"
NAME = "www.example.test"


@pytest.fixture(scope="module")
def lab():
    with Lab.up(TEMPLATE) as lab:
        for tg in ("WebPp", "WebTlsPp", "WebPlain"):
            lab.wait_healthy(tg, timeout=60)  # health checks without a header pass
        yield lab


def node(lab) -> dict:
    lb = next(x for x in lab.state["load_balancers"] if x["name"] == "Nlb")
    return lb["nodes"][0]


def get(lab, url: str) -> dict:
    ip = node(lab)["public_ip"]
    argv = ["curl", "-s", "-m", "5", "--http1.1"]  # hosts trust the lab CA
    for port in (80, 81, 443, 8443):
        argv += ["--resolve", f"{NAME}:{port}:{ip}"]
    proc = lab.host(CLIENT).run([*argv, url], timeout=15)
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    return json.loads(proc.stdout)


def assert_header(lab, body: dict, port: int) -> None:
    n = node(lab)
    proxy = body["proxy"]
    assert proxy is not None, body
    assert (proxy["version"], proxy["command"], proxy["protocol"]) == (2, "PROXY", "TCP4")
    assert proxy["source_ip"] == lab.host(CLIENT).ip  # the client, from the header
    assert proxy["source_port"] > 0
    assert (proxy["destination_ip"], proxy["destination_port"]) == (n["ip"], port)
    assert body["client"]["ip"] == n["ip"]  # the TCP peer: the node (preserve off)


def test_tcp_listener_sends_the_header(lab):
    body = get(lab, f"http://{NAME}/hello")
    assert body["instance"] == "Web1"  # cross-zone off: the node's own AZ
    assert_header(lab, body, 80)


def test_tls_listener_sends_the_header(lab):
    body = get(lab, f"https://{NAME}/hello")
    assert not body["tls"]  # TLS ended on the node; plain TCP after the header
    assert_header(lab, body, 443)


def test_tls_group_gets_the_header_before_the_handshake(lab):
    body = get(lab, f"https://{NAME}:8443/hello")
    assert body["tls"], body  # re-encrypted to the target
    assert_header(lab, body, 8443)


def test_tcp_listener_without_proxy_protocol_keeps_the_switch_path(lab):
    body = get(lab, f"http://{NAME}:81/hello")
    assert body["proxy"] is None
    assert body["client"]["ip"] == node(lab)["ip"]  # ip targets: the switches SNAT


def test_turning_it_off_on_a_tls_only_group_is_live(lab):
    reply = lab.update(TEMPLATE, {"ProxyProtocol": "false"})
    assert (
        "load_balancers.Nlb.target_groups.WebTlsPp.attributes.proxy_protocol_v2.enabled: "
        "'true' -> 'false'"
    ) in reply["changes"], reply
    wait_for(
        lambda: get(lab, f"https://{NAME}:8443/hello")["proxy"] is None,
        30,
        "no header after the reload",
    )
    lab.update(TEMPLATE, {"ProxyProtocol": "true"})
    wait_for(
        lambda: get(lab, f"https://{NAME}:8443/hello")["proxy"] is not None,
        30,
        "the header again",
    )


def test_turning_it_off_on_a_tcp_listeners_group_needs_down_up(lab, tmp_path):
    text = Path(TEMPLATE).read_text()
    old = '- {Key: proxy_protocol_v2.enabled, Value: "true"}'
    assert old in text
    changed = tmp_path / "off.yaml"
    changed.write_text(text.replace(old, '- {Key: proxy_protocol_v2.enabled, Value: "false"}'))
    with pytest.raises(BadInput) as info:
        lab.update(str(changed))
    message = str(info.value)
    assert "load_balancers.Nlb.listeners.Tcp: moves to the switches" in message, message
    assert get(lab, f"http://{NAME}/hello")["proxy"] is not None  # nothing changed


def test_a_target_registered_live_gets_the_header(lab):
    """A server added through the runtime API (`add server ... send-proxy-v2`): Web1's TCP
    identity port (9000), which reads the header too, beside Web1:80 (random balance: a
    connection that lands on 9000 gets the identity line first)."""
    files = node_files(lab.dir, node(lab)["host"])
    web1 = lab.host("Web1").ip
    lab.register("WebPp", web1, port=9000)

    def states() -> dict:
        servers = parse_servers_state(cli(files.stats_socket, "show servers state"))
        return {srv: s[2] for (be, srv), s in servers.items() if be == "tg_WebPp"}

    wait_for(
        lambda: any("9000" in srv and st != MAINT for srv, st in states().items()),
        60,
        "the new server taking connections",
    )
    ip = node(lab)["public_ip"]
    code = (
        "import socket,sys;s=socket.create_connection((sys.argv[1],80),5);"
        "s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n');print(s.makefile().readline().strip())"
    )
    lines: list[dict] = []

    def identity_line() -> bool:
        out = lab.host(CLIENT).run([sys.executable, "-c", code, ip], timeout=15)
        assert out.returncode == 0, out.stderr
        if out.stdout.startswith("{"):
            lines.append(json.loads(out.stdout))
        return bool(lines)

    wait_for(identity_line, 60, "a connection on the added server")
    line = lines[0]
    assert line["proxy"]["source_ip"] == lab.host(CLIENT).ip, line
    assert line["proxy"]["destination_port"] == 80


def test_bad_input_exit_2(tmp_path):
    text = Path(TEMPLATE).read_text()
    udp = (
        "  Dns:\n    Type: AWS::ElasticLoadBalancingV2::TargetGroup\n    Properties:\n"
        "      Protocol: UDP\n      Port: 53\n      VpcId: !Ref Vpc\n"
        "      TargetGroupAttributes:\n"
        '        - {Key: proxy_protocol_v2.enabled, Value: "true"}\n\n'
    )
    text = text.replace("  Tcp:\n", udp + "  Tcp:\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    proc = run_cli("validate", str(bad))
    assert proc.returncode == 2
    assert "proxy protocol v2 is for TCP and TLS target groups, not UDP ones" in proc.stderr
    assert "bad.yaml:" in proc.stderr
