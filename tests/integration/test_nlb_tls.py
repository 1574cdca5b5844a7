"""NLB TLS listeners on a real lab (issue 16): TLS ended on the NLB node with a certificate of
the lab CA (verified by the internet client, no -k) and the listener's SslPolicy; ALPN by the
AlpnPolicy; plain TCP to the targets (TCP group) or TLS again (TLS group); the TCP listener
beside them keeps the switches' data path (the target sees the client); bad input exit 2.

templates/nlb-tls.yaml; curl --resolve pins www.example.test to a node's public address.
Client addresses behind a TLS listener as AWS documents them: WebTcp (instance targets,
client IP preservation on by default) sees the client's address, through either node (the
node's HAProxy connects from it; the switches bring the replies back to the node); WebTls
(preservation turned off) sees the node's address.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.alb.config import node_files
from testbed.alb.runtime import cli, parse_servers_state
from testbed.alb.servers import MAINT, READY
from testbed.metrics.sources import NlbSource
from testbed.waiting import wait_for
from tests.assertions import run_cli
from tests.lab_tls import curl_pinned, healthy_lab, s_client

pytestmark = pytest.mark.integration
TEMPLATE = "templates/nlb-tls.yaml"
CLIENT = "Client1"
NAME = "www.example.test"


@pytest.fixture(scope="module")
def lab():
    with healthy_lab(TEMPLATE, "WebTcp", "WebTls") as lab:
        yield lab


def node(lab, index: int = 0) -> dict:
    lb = next(x for x in lab.state["load_balancers"] if x["name"] == "Nlb")
    return lb["nodes"][index]


def curl(lab, url: str, *extra: str, name: str = NAME, index: int = 0) -> tuple[int, str, str]:
    ip = node(lab, index)["public_ip"]
    return curl_pinned(lab, CLIENT, ip, url, *extra, name=name, ports=(80, 443, 8443))


def handshake(lab, *options: str) -> str:
    """openssl s_client's account of a handshake with the Tls listener of the first node."""
    return s_client(lab, CLIENT, node(lab)["public_ip"], 443, NAME, *options)


def test_tls_listener_verified_plain_tcp_to_targets(lab):
    # HTTP/1.1: the listener offers h2 first (HTTP2Preferred) and the NLB passes bytes on;
    # the target speaks HTTP/1.1 only (curl's default h2 gets an empty reply, as on AWS).
    code, out, err = curl(lab, f"https://{NAME}/hello", "--http1.1")
    assert code == 0, err  # verified against the lab CA
    body = json.loads(out)
    assert body["instance"] == "Web1"  # cross-zone off: the node's own AZ
    assert not body["tls"]  # plain to the target
    # Instance targets keep the client's address behind a TLS listener, as on AWS.
    assert body["client"]["ip"] == lab.host(CLIENT).ip


def test_client_address_through_the_other_node(lab):
    """The node of the other AZ (its own switch, its own target): the same, and the node
    answers many connections in a row (each reply found its way back to it)."""
    for _ in range(5):
        code, out, err = curl(lab, f"https://{NAME}/hello", "--http1.1", index=1)
        assert code == 0, err
        body = json.loads(out)
        assert (body["instance"], body["client"]["ip"]) == ("Web2", lab.host(CLIENT).ip)


def test_tls_group_is_reencrypted(lab):
    code, out, err = curl(lab, f"https://{NAME}:8443/hello", "--http1.1")
    assert code == 0, err
    body = json.loads(out)
    assert body["tls"], body  # the target got TLS from the node
    # preserve_client_ip.enabled false on WebTls: the node's private address.
    assert body["client"]["ip"] == node(lab)["ip"]


def test_alpn_http2_preferred(lab):
    # h2 is what the node answers by ALPN (HTTP2Preferred); the NLB does not speak HTTP, so
    # the target (HTTP/1.1 only) would not understand an HTTP/2 request: the answer counts.
    out = handshake(lab, "-alpn h2,http/1.1")
    assert "ALPN protocol: h2" in out, out
    assert "Verify return code: 0 (ok)" in out, out


def test_tcp_listener_keeps_the_switch_path(lab):
    code, out, err = curl(lab, f"http://{NAME}/hello")
    assert code == 0, err
    body = json.loads(out)
    # Instance targets behind the switches' TCP path see the client's (public) address.
    assert body["client"]["ip"] != node(lab)["ip"]


def test_alpn_policy_update_is_live(lab):
    def alpn() -> str:
        out = handshake(lab, "-alpn h2,http/1.1")
        return next((x for x in out.splitlines() if "ALPN protocol" in x), "no ALPN")

    reply = lab.update(TEMPLATE, {"AlpnPolicy": "HTTP1Only"})
    assert reply["changes"] == [
        "load_balancers.Nlb.listeners.Tls.alpn_policy: 'HTTP2Preferred' -> 'HTTP1Only'"
    ]
    lab.wait_for(lambda: "http/1.1" in alpn(), 30, "ALPN http/1.1 after the update", interval=0.5)
    lab.update(TEMPLATE, {"AlpnPolicy": "HTTP2Preferred"})
    lab.wait_for(lambda: "h2" in alpn(), 30, "ALPN h2 again", interval=0.5)


def tls_totals(lab) -> dict[str, float]:
    """The NLB's own AWS/NetworkELB values (no group, no target) of this moment."""
    lb = next(x.name for x in lab.plan.load_balancers if x.type == "network")
    return {
        s.metric: s.value
        for s in NlbSource(lab, lab.plan).snapshot()
        if s.load_balancer == lb and not s.target_group and not s.target
    }


def tls_traffic(lab) -> int:
    """Three verified TLS connections and one TLS 1.0 handshake, which the listener's TLS 1.2+
    policy refuses; how many connections succeeded."""
    done = sum(curl(lab, f"https://{NAME}/hello", "--http1.1")[0] == 0 for _ in range(3))
    old = handshake(lab, "-tls1")
    assert "Cipher is (NONE)" in old, old  # no TLS 1.0 session
    return done


def test_tls_metrics_count_connections_and_failed_handshakes(lab):
    """NewFlowCount_TLS and the NLB's NewFlowCount count TLS connections (the switches do not
    see them: they come from the node's HAProxy); a TLS 1.0 client against the listener's
    TLS 1.2+ policy is a ClientTLSNegotiationErrorCount."""
    before = tls_totals(lab)
    done = tls_traffic(lab)
    assert done == 3

    def grew(metric: str, by: float) -> bool:
        return tls_totals(lab)[metric] - before[metric] >= by

    lab.wait_for(lambda: grew("NewFlowCount_TLS", done), 10, "NewFlowCount_TLS", interval=0.2)
    lab.wait_for(lambda: grew("NewFlowCount", done), 10, "NewFlowCount with TLS", interval=0.2)
    lab.wait_for(
        lambda: grew("ClientTLSNegotiationErrorCount", 1), 10, "a failed handshake", interval=0.2
    )
    after = tls_totals(lab)
    assert after["ProcessedBytes_TLS"] > before["ProcessedBytes_TLS"]
    assert after["ProcessedBytes"] - before["ProcessedBytes"] >= (
        after["ProcessedBytes_TLS"] - before["ProcessedBytes_TLS"]
    )


def test_testbed_metrics_shows_the_tls_metrics(lab):
    """`testbed metrics` during TLS traffic: its table shows the TLS metrics (it shows the
    metrics that were not 0)."""
    argv = [sys.executable, "-m", "testbed.cli", "metrics", lab.name, "--source", "nlb"]
    proc = subprocess.Popen(
        [*argv, "--duration", "6"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen = ""
    while not seen.endswith("."):  # the first period is done: what follows is counted
        char = proc.stderr.read(1)
        assert char, seen
        seen += char
    tls_traffic(lab)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    for metric in ("NewFlowCount_TLS", "ClientTLSNegotiationErrorCount", "ProcessedBytes_TLS"):
        assert f" {metric} " in out, out


SHOP = "shop.example.test"


def shop_verified(lab) -> bool:
    code, _out, _err = curl(lab, f"https://{SHOP}/hello", "--http1.1", "-o", "/dev/null", name=SHOP)
    return code == 0


def test_a_listener_certificate_added_by_update_is_served(lab, tmp_path):
    """`testbed update` with a new certificate and a ListenerCertificate adding it to the TLS
    listener: live (the lab issues it, the node's HAProxy reloads) and SNI picks it; the
    update back removes it."""
    text = Path(TEMPLATE).read_text()
    added = text.replace(
        "  Reencrypt:\n",
        "  ShopCertificate:\n"
        "    Type: AWS::CertificateManager::Certificate\n"
        f"    Properties: {{DomainName: {SHOP}, ValidationMethod: DNS}}\n"
        "  ShopCertificates:\n"
        "    Type: AWS::ElasticLoadBalancingV2::ListenerCertificate\n"
        "    Properties:\n"
        "      ListenerArn: !Ref Tls\n"
        "      Certificates: [{CertificateArn: !Ref ShopCertificate}]\n"
        "  Reencrypt:\n",
    )
    assert added != text
    path = tmp_path / "nlb-tls-shop.yaml"
    path.write_text(added)
    assert not shop_verified(lab)  # the default certificate (www) does not cover the name
    reply = lab.update(str(path))
    assert any(".Tls.certificates" in c for c in reply["changes"]), reply
    lab.wait_for(lambda: shop_verified(lab), 30, f"{SHOP} verified", interval=0.5)
    code, _out, err = curl(
        lab, f"https://{SHOP}/hello", "--http1.1", "-v", "-o", "/dev/null", name=SHOP
    )
    assert code == 0, err
    assert SHOP in next(line for line in err.splitlines() if "subject:" in line)
    lab.update(TEMPLATE)
    lab.wait_for(lambda: not shop_verified(lab), 30, f"{SHOP} no longer served", interval=0.5)


def test_a_certificate_reissued_for_more_names_is_served(lab, tmp_path):
    """The listener's certificate (same ARN) with one more name: the lab issues it again
    and the node's HAProxy reloads to read it, though no listener changed."""
    text = Path(TEMPLATE).read_text()
    more = text.replace(
        "{DomainName: www.example.test, ValidationMethod: DNS}",
        f"{{DomainName: www.example.test, SubjectAlternativeNames: [{SHOP}], "
        "ValidationMethod: DNS}",
    )
    assert more != text
    path = tmp_path / "nlb-tls-more.yaml"
    path.write_text(more)
    assert not shop_verified(lab)
    reply = lab.update(str(path))
    assert any(c.startswith("load_balancers.Nlb.certificates: ") for c in reply["changes"]), reply
    lab.wait_for(lambda: shop_verified(lab), 30, f"{SHOP} verified", interval=0.5)
    lab.update(TEMPLATE)
    lab.wait_for(lambda: not shop_verified(lab), 30, f"{SHOP} no longer covered", interval=0.5)


def test_target_states_reach_the_nodes_haproxy(lab):
    """A deregistered (draining) target takes no new TLS connections on the node's HAProxy:
    the holder pushes target states to NLB nodes with TLS listeners as to ALB nodes."""
    files = node_files(lab.dir, node(lab)["host"])

    def admin_state(name: str) -> str:
        servers = parse_servers_state(cli(files.stats_socket, "show servers state"))
        return servers[("tg_WebTcp", name)][2]

    assert admin_state("Web1_80") == READY
    lab.deregister("WebTcp", "Web1")
    wait_for(lambda: admin_state("Web1_80") == MAINT, 30, "Web1 in maintenance on the node")
    # The node's AZ has no other target (cross-zone off): the TLS connection is closed.
    code, _out, _err = curl(lab, f"https://{NAME}/hello", "--http1.1")
    assert code != 0


def test_bad_input_exit_2(tmp_path):
    text = Path(TEMPLATE).read_text()
    text = text.replace("AlpnPolicy: [!Ref AlpnPolicy]", "AlpnPolicy: [HTTP3]")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    proc = run_cli("validate", str(bad))
    assert proc.returncode == 2
    assert "AlpnPolicy must be one of" in proc.stderr
