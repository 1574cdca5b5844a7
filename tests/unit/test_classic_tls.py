"""Classic Load Balancer HTTPS and SSL listeners (issue 16): the model (SSLCertificateId, the
back-end protocols AWS allows, SSLNegotiationPolicyType by reference or by attributes, the
PROXY protocol on SSL listeners), the haproxy.cfg of a node, and HAProxy serving it on the
loopback with a certificate of a lab CA (verified by the client, TLS versions refused or taken
as the policy says). No root, no lab."""

from __future__ import annotations

import http.client
import http.server
import json
import socket
import ssl
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from testbed.alb import stats
from testbed.alb.config import node_files, render
from testbed.lab import certs
from testbed.messages import RuntimeTargetInfo
from testbed.model import load_model_text
from testbed.model.elbv2_types import elbv2_sections
from testbed.model.resources.classic_policies import (
    CustomPolicy,
    custom_policy_text,
    parse_custom_policy,
)
from testbed.plan.changes import plan_changes
from testbed.plan.network import build_plan
from tests.haproxy_local import HAVE_HAPROXY, free_port
from tests.tls_local import node_haproxy
from tests.unit.conftest import FILENAME, line_with
from tests.unit.elbv2_data import stack
from tests.unit.test_alb_config import section
from tests.unit.test_model_classic_elb import clb, errors_of

needs_haproxy = pytest.mark.skipif(not HAVE_HAPROXY, reason="haproxy is not installed")
ARN = "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-4333-8444-555555555555"
IAM_ARN = "arn:aws:iam::123456789012:server-certificate/shop"
TLS12 = "ELBSecurityPolicy-TLS-1-2-2017-01"
DEFAULT = "ELBSecurityPolicy-2016-08"

LISTENERS = f"""\
Subnets: [!Ref PubA, !Ref PubB]
Instances: [!Ref WebA, !Ref WebB]
Listeners:
  - {{LoadBalancerPort: 443, InstancePort: 80, Protocol: HTTPS, SSLCertificateId: {ARN},
     PolicyNames: [Tls12, Sticky]}}
  - {{LoadBalancerPort: 8443, InstancePort: 80, Protocol: ssl, SSLCertificateId: {IAM_ARN}}}
  - {{LoadBalancerPort: 9443, InstancePort: 443, Protocol: HTTPS, InstanceProtocol: HTTPS,
     SSLCertificateId: {ARN}}}
  - {{LoadBalancerPort: 9444, InstancePort: 443, Protocol: SSL, InstanceProtocol: SSL,
     SSLCertificateId: {ARN}}}
  - {{LoadBalancerPort: 4443, InstancePort: 80, Protocol: HTTPS, SSLCertificateId: {ARN}}}
LBCookieStickinessPolicy:
  - {{PolicyName: Sticky}}
Policies:
  - PolicyName: Tls12
    PolicyType: SSLNegotiationPolicyType
    Attributes: [{{Name: Reference-Security-Policy, Value: {TLS12}}}]
  - PolicyName: Custom
    PolicyType: SSLNegotiationPolicyType
    LoadBalancerPorts: [4443]
    Attributes:
      - {{Name: Protocol-TLSv1.2, Value: "true"}}
      - {{Name: Protocol-TLSv1.1, Value: "true"}}
      - {{Name: Protocol-TLSv1, Value: "false"}}
      - {{Name: Server-Defined-Cipher-Order, Value: "false"}}
      - {{Name: ECDHE-RSA-AES128-GCM-SHA256, Value: "true"}}
      - {{Name: AES128-GCM-SHA256, Value: "true"}}
      - {{Name: DES-CBC3-SHA, Value: "true"}}
      - {{Name: EDH-RSA-DES-CBC3-SHA, Value: "false"}}
  - PolicyName: Proxy
    PolicyType: ProxyProtocolPolicyType
    Attributes: [{{Name: ProxyProtocol, Value: "true"}}]
    InstancePorts: [80, 443]
  - PolicyName: BackendAuth
    PolicyType: BackendServerAuthenticationPolicyType
    Attributes: [{{Name: PublicKeyPolicyName, Value: Key}}]
    InstancePorts: [443]
"""


def _model(body: str = LISTENERS):
    return load_model_text(stack(clb(body)), filename=FILENAME)


@pytest.fixture(scope="module")
def model():
    return _model()


@pytest.fixture(scope="module")
def listeners(model):
    return elbv2_sections(model)["listeners"]


# ---- the model -----------------------------------------------------------------------------
def test_https_and_ssl_listeners_with_their_back_ends_and_certificates(listeners):
    got = {
        key: (lis.protocol, lis.instance_protocol, lis.certificates, lis.proxy_protocol)
        for key, lis in listeners.items()
    }
    assert got == {
        # InstanceProtocol left out: TLS ends at the node (HTTPS -> HTTP, SSL -> TCP).
        "CLB-443": ("HTTPS", "HTTP", (ARN,), False),
        "CLB-8443": ("SSL", "TCP", (IAM_ARN,), True),  # PROXY v1 on an SSL listener
        "CLB-9443": ("HTTPS", "HTTPS", (ARN,), False),
        "CLB-9444": ("SSL", "SSL", (ARN,), False),  # AWS: no PROXY on back-end SSL
        "CLB-4443": ("HTTPS", "HTTP", (ARN,), False),
    }
    # Stickiness works on HTTPS listeners (the node sees the cookies).
    assert (listeners["CLB-443"].sticky, listeners["CLB-443"].policy_names) == (
        "lb_cookie",
        ("Tls12", "Sticky"),
    )


def test_ssl_negotiation_policies_by_reference_attributes_or_default(listeners):
    assert listeners["CLB-443"].ssl_policy == TLS12  # PolicyNames: Reference-Security-Policy
    # No policy: AWS's default for HTTPS/SSL listeners.
    assert listeners["CLB-8443"].ssl_policy == DEFAULT
    assert listeners["CLB-9443"].ssl_policy == DEFAULT
    # Attributes (bound by LoadBalancerPorts): versions in order, enabled ciphers the machine
    # has (DES-CBC3-SHA is not in OpenSSL 3 here: reported), the client's cipher order.
    custom = parse_custom_policy(listeners["CLB-4443"].ssl_policy)
    assert custom == CustomPolicy(
        "Custom",
        ("TLSv1.1", "TLSv1.2"),
        ("ECDHE-RSA-AES128-GCM-SHA256", "AES128-GCM-SHA256"),
        server_order=False,
    )
    assert parse_custom_policy(custom_policy_text(custom)) == custom
    assert parse_custom_policy(TLS12) is None
    # HTTP and TCP listeners carry no TLS fields (plans without TLS are unchanged).
    plain = elbv2_sections(
        _model("""\
        Subnets: [!Ref PubA]
        Listeners: [{LoadBalancerPort: 80, InstancePort: 80, Protocol: HTTP}]
        """)
    )["listeners"]["CLB-80"]
    assert (plain.certificates, plain.ssl_policy) == ((), None)


def test_a_template_certificate_by_ref(load):
    body = """\
    Subnets: [!Ref PubA]
    Listeners:
      - {LoadBalancerPort: 443, InstancePort: 80, Protocol: HTTPS, SSLCertificateId: !Ref Cert}
    """
    cert = """\
    Cert:
      Type: AWS::CertificateManager::Certificate
      Properties: {DomainName: shop.example.test, ValidationMethod: DNS}
    """
    model = load(stack(clb(body), cert), stack_name="s")
    (arn,) = elbv2_sections(model)["listeners"]["CLB-443"].certificates
    assert arn.startswith("arn:aws:acm:us-east-1:123456789012:certificate/")
    (planned,) = build_plan(model, "s").certificates
    assert (planned.arn, planned.names, planned.source) == (arn, ("shop.example.test",), "template")
    assert planned.used_by == ("CLB-443",)


def test_what_is_reported_as_ignored(model):
    ignored = [i.property for i in model.ignored if i.logical_id == "CLB"]
    assert any("ciphers DES-CBC3-SHA" in p and "OpenSSL" in p for p in ignored), ignored
    assert any("BackendServerAuthenticationPolicyType" in p for p in ignored), ignored
    assert any(
        "ProxyProtocol on instance port 443" in p and "back-end SSL" in p for p in ignored
    ), ignored
    assert any("ProxyProtocol on instance port 80 for Listeners[0]" in p for p in ignored)


def test_reference_with_other_attributes_keeps_the_reference(load):
    body = f"""\
    Subnets: [!Ref PubA]
    Listeners:
      - {{LoadBalancerPort: 443, InstancePort: 80, Protocol: HTTPS, SSLCertificateId: {ARN},
         PolicyNames: [Described]}}
    Policies:
      - PolicyName: Described
        PolicyType: SSLNegotiationPolicyType
        Attributes:
          - {{Name: Reference-Security-Policy, Value: {TLS12}}}
          - {{Name: Protocol-TLSv1, Value: "true"}}
    """
    model = load(stack(clb(body)))
    assert elbv2_sections(model)["listeners"]["CLB-443"].ssl_policy == TLS12
    ignored = [i.property for i in model.ignored if i.logical_id == "CLB"]
    assert any("Protocol-TLSv1" in p and "Reference-Security-Policy" in p for p in ignored)


def test_tls_errors_all_in_one_run_with_lines(fails):
    body = f"""\
    Subnets: [!Ref PubA]
    Listeners:
      - {{LoadBalancerPort: 443, InstancePort: 80, Protocol: HTTPS}}
      - {{LoadBalancerPort: 444, InstancePort: 80, Protocol: HTTPS, SSLCertificateId: not-an-arn}}
      - {{LoadBalancerPort: 445, InstancePort: 80, Protocol: HTTPS, SSLCertificateId: {ARN},
         PolicyNames: [Modern]}}
      - {{LoadBalancerPort: 446, InstancePort: 80, Protocol: HTTPS, SSLCertificateId: {ARN},
         PolicyNames: [Typo]}}
      - {{LoadBalancerPort: 80, InstancePort: 80, Protocol: HTTP, PolicyNames: [Tls12]}}
      - {{LoadBalancerPort: 447, InstancePort: 80, Protocol: HTTPS, InstanceProtocol: HTTPS,
         SSLCertificateId: {ARN}}}
      - {{LoadBalancerPort: 448, InstancePort: 81, Protocol: SSL, SSLCertificateId: {ARN},
         PolicyNames: [Tls12, NoProtocol]}}
      - {{LoadBalancerPort: 449, InstancePort: 80, Protocol: HTTPS,
         SSLCertificateId: "arn:aws:acm:eu-west-3:123456789012:certificate/other-region"}}
    Policies:
      - PolicyName: Modern
        PolicyType: SSLNegotiationPolicyType
        Attributes:
          - {{Name: Reference-Security-Policy, Value: ELBSecurityPolicy-TLS13-1-2-2021-06}}
      - PolicyName: Typo
        PolicyType: SSLNegotiationPolicyType
        Attributes: [{{Name: Reference-Security-Policy, Value: ELBSecurityPolicy-TLS-1-2-2017-1}}]
      - PolicyName: Tls12
        PolicyType: SSLNegotiationPolicyType
        Attributes: [{{Name: Reference-Security-Policy, Value: {TLS12}}}]
      - PolicyName: NoProtocol
        PolicyType: SSLNegotiationPolicyType
        Attributes:
          - {{Name: Protocol-TLSv1.2, Value: "false"}}
          - {{Name: AES128-GCM-SHA256, Value: "true"}}
      - PolicyName: BadValue
        PolicyType: SSLNegotiationPolicyType
        Attributes:
          - {{Name: Protocol-TLSv1.2, Value: "yes"}}
          - {{Name: Protocol-TLSv9, Value: "true"}}
    """
    text = stack(clb(body))
    shown = errors_of(fails(text, logical_id="CLB"))

    def has(fragment: str, marker: str) -> None:
        line = line_with(text, marker)
        assert any(fragment in s and f"{FILENAME}:{line}:" in s for s in shown), (fragment, shown)

    has("Listeners[0]: an HTTPS listener needs SSLCertificateId", "Port: 443,")
    has("Listeners[1].SSLCertificateId: 'not-an-arn' is not a certificate ARN", "not-an-arn")
    has(
        "Listeners[7].SSLCertificateId: arn:aws:acm:eu-west-3:123456789012:certificate/"
        "other-region is an ACM certificate of eu-west-3",
        "other-region",
    )
    has(
        "ELBSecurityPolicy-TLS13-1-2-2021-06 is a policy of application and network load "
        "balancers, not of classic ones",
        "TLS13-1-2-2021-06",
    )
    has("'ELBSecurityPolicy-TLS-1-2-2017-1' is not a predefined security policy", "2017-1}")
    assert any(f"did you mean {TLS12}?" in s for s in shown), shown
    has(
        "'Tls12' is a SSLNegotiationPolicyType policy, for HTTPS and SSL listeners only", "[Tls12]}"
    )
    has(
        "InstanceProtocol HTTPS to InstancePort 80, which Listeners[2] reaches with HTTP",
        "Port: 447,",
    )
    has("Listeners[6] already uses SSL negotiation policy 'Tls12'", "NoProtocol]")
    has("Policies[3]: the policy enables no protocol", "PolicyName: NoProtocol")
    has("attribute Protocol-TLSv1.2 must be true or false, not 'yes'", '"yes"')
    has("'Protocol-TLSv9' is not a protocol of an SSLNegotiationPolicyType policy", "TLSv9")
    assert len(shown) == 11, shown


# ---- haproxy.cfg ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lb(model):
    return build_plan(model, "t").load_balancers[0]


def cfg(lb, lab_dir: Path = Path("/run/elb-testbed/t")) -> str:
    node = lb.nodes[0]
    return render(lb, node, node_files(lab_dir, node.host))


def bind(text: str, port: int) -> str:
    (line,) = [x for x in section(text, f"frontend CLB-{port}") if x.startswith("bind ")]
    return line


def test_plan_listeners_carry_certificates_and_policies(lb):
    by_port = {lis.port: lis for lis in lb.listeners}
    assert by_port[443].certificates == (ARN,)
    assert (by_port[443].ssl_policy, by_port[8443].ssl_policy) == (TLS12, DEFAULT)
    assert by_port[8443].proxy_protocol


def test_tls_frontends_bind_the_certificate_with_the_policy(lb):
    text = cfg(lb)
    ip = lb.nodes[0].ip
    pem = certs.pem_path(Path("/run/elb-testbed/t"), ARN)
    tls12 = bind(text, 443)
    assert tls12.startswith(f"bind {ip}:443 ssl crt {pem} ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.2")
    assert "ciphers ECDHE-ECDSA-AES128-GCM-SHA256:" in tls12
    assert "SHA:" not in tls12  # no SHA-1 ciphers in TLS-1-2-2017-01
    assert "SECLEVEL" not in tls12
    assert "alpn" not in tls12  # a CLB speaks HTTP/1.1 only
    # The default policy goes down to TLS 1.0: OpenSSL's security level 0 lets it.
    ssl_default = bind(text, 8443)
    assert f"ssl crt {certs.pem_path(Path('/run/elb-testbed/t'), IAM_ARN)}" in ssl_default
    assert "ssl-min-ver TLSv1.0 ssl-max-ver TLSv1.2" in ssl_default
    assert ssl_default.endswith(":@SECLEVEL=0")
    custom = bind(text, 4443)
    assert custom.endswith(
        "ssl-min-ver TLSv1.1 ssl-max-ver TLSv1.2 "
        "ciphers ECDHE-RSA-AES128-GCM-SHA256:AES128-GCM-SHA256:@SECLEVEL=0 prefer-client-ciphers"
    )


def test_modes_headers_and_tls_to_instances(lb):
    text = cfg(lb)
    https = section(text, "frontend CLB-443")
    assert "mode http" in https
    assert "http-request set-header X-Forwarded-Proto https" in https
    assert "http-request set-header X-Forwarded-Port 443" in https
    ssl_front = section(text, "frontend CLB-8443")
    assert "mode tcp" in ssl_front
    assert not any(x.startswith("http-") for x in ssl_front)
    servers = {
        port: [x for x in section(text, f"backend ls_CLB-{port}") if x.startswith("server ")]
        for port in (443, 8443, 9443, 9444)
    }
    assert all(s.endswith(":80 disabled") for s in servers[443])  # plain HTTP, no PROXY
    assert all(s.endswith(":80 send-proxy disabled") for s in servers[8443])
    # HTTPS / SSL to the instance: TLS, certificate not verified, no SNI (as AWS's CLB).
    for port in (9443, 9444):
        assert servers[port]
        assert all(s.endswith(":443 ssl verify none disabled") for s in servers[port])
        assert not any("sni" in s for s in servers[port])


# ---- HAProxy on the loopback ---------------------------------------------------------------
class _Seen(http.server.BaseHTTPRequestHandler):
    """Answers what it saw: the X-Forwarded-* headers."""

    def do_GET(self) -> None:
        body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class _Names:
    """What certs.issue_all takes: a plan's certificates (arn, names, key_algorithm)."""

    def __init__(self, *arns: str) -> None:
        self.certificates = [_Cert(arn) for arn in arns]


class _Cert:
    def __init__(self, arn: str) -> None:
        self.arn, self.names, self.key_algorithm = arn, ("localhost",), "RSA_2048"


@pytest.fixture(scope="module")
def served(lb, tmp_path_factory):
    """The node's listeners on 127.0.0.1 (free ports), one plain HTTP instance behind the
    HTTPS->HTTP and SSL->TCP ones; certificates for `localhost` from a lab CA."""
    lab_dir = tmp_path_factory.mktemp("clb-tls")
    certs.issue_all(lab_dir, _Names(ARN, IAM_ARN))
    backend = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Seen)
    backend.daemon_threads = True
    threading.Thread(target=backend.serve_forever, args=(0.05,), daemon=True).start()
    ports = {lis.port: free_port() for lis in lb.listeners}
    keep = [lis for lis in lb.listeners if lis.port in (443, 4443, 8443)]
    (tg,) = lb.target_groups
    target = replace(tg.targets[0], ip="127.0.0.1", port=backend.server_address[1])
    local = replace(
        lb,
        nodes=(replace(lb.nodes[0], ip="127.0.0.1"),),
        listeners=tuple(
            replace(
                lis,
                port=ports[lis.port],
                instance_port=backend.server_address[1],
                proxy_protocol=False,  # the test's backend speaks plain HTTP
            )
            for lis in keep
        ),
        target_groups=(replace(tg, targets=(target,), port=backend.server_address[1]),),
    )
    rows = {tg.name: [_row(target)]}
    with node_haproxy(local, local.nodes[0], lab_dir, ports[443], rows):
        yield {"ports": ports, "ca": certs.ca_path(lab_dir)}
    backend.shutdown()
    backend.server_close()


def _row(target):
    return RuntimeTargetInfo(
        key=target.key, ip=target.ip, port=target.port, az=target.az, state="healthy"
    )


def _client(ca: Path, version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if version is not None:
        context.minimum_version = context.maximum_version = version
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def _handshake(port: int, context: ssl.SSLContext) -> tuple[str, str]:
    """(TLS version, cipher) of a verified handshake with the listener on `port`."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        cipher = tls.cipher()
        assert cipher is not None
        return str(tls.version()), cipher[0]


@needs_haproxy
def test_https_listener_serves_verified_tls_and_forwards_https(served):
    conn = http.client.HTTPSConnection(
        "localhost", served["ports"][443], timeout=5, context=_client(served["ca"])
    )
    conn.request("GET", "/")
    resp = conn.getresponse()
    seen = json.loads(resp.read())
    conn.close()
    assert resp.status == 200
    assert seen["x-forwarded-proto"] == "https"
    assert seen["x-forwarded-port"] == str(served["ports"][443])
    assert seen["x-forwarded-for"] == "127.0.0.1"


@needs_haproxy
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1 is deprecated:DeprecationWarning")
def test_policies_decide_the_versions_and_ciphers(served):
    ports, ca = served["ports"], served["ca"]
    # ELBSecurityPolicy-TLS-1-2-2017-01: TLS 1.2; a TLS 1.0-only client is refused.
    assert _handshake(ports[443], _client(ca))[0] == "TLSv1.2"  # never 1.3 on a CLB
    with pytest.raises(ssl.SSLError):
        _handshake(ports[443], _client(ca, ssl.TLSVersion.TLSv1))
    # The default policy (SSL listener) takes that TLS 1.0 client.
    assert _handshake(ports[8443], _client(ca, ssl.TLSVersion.TLSv1))[0] == "TLSv1"
    # The custom policy: TLS 1.1-1.2 and its two ciphers only.
    version, cipher = _handshake(ports[4443], _client(ca))
    assert version == "TLSv1.2"
    assert cipher in ("ECDHE-RSA-AES128-GCM-SHA256", "AES128-GCM-SHA256")
    with pytest.raises(ssl.SSLError):
        _handshake(ports[4443], _client(ca, ssl.TLSVersion.TLSv1))


def test_https_listeners_count_requests():
    """classic_metrics: an HTTPS listener's requests and codes count as an HTTP one's, an SSL
    listener's connections as a TCP one's."""

    def rows(name: str, http: bool) -> list[dict[str, str]]:
        base = {"bin": "100", "bout": "200", "qcur": "0", "econ": "0", "rtime": "5"}
        base |= {"ctime": "1", "hrsp_2xx": "0", "hrsp_4xx": "0", "hrsp_5xx": "0"}
        backend = {**base, "pxname": f"ls_{name}", "svname": "BACKEND", "req_tot": "0"}
        server = {**base, "pxname": f"ls_{name}", "svname": "Web_443", "stot": "2"}
        if http:
            backend["req_tot"] = "4"
            server["hrsp_2xx"] = "3"
            server["hrsp_4xx"] = "1"
        front = {**base, "pxname": name, "svname": "FRONTEND"}
        return [front, backend, server]

    nodes = [rows("Https443", True) + rows("Ssl8443", False)]
    got = {
        m: v
        for m, _tg, _t, v, _u, _k in stats.classic_metrics(
            nodes, {"Https443": "HTTPS", "Ssl8443": "SSL"}
        )
    }
    assert got["RequestCount"] == 4 + 2  # HTTPS requests + SSL connections
    assert got["HTTPCode_Backend_2XX"] == 3
    assert got["HTTPCode_Backend_4XX"] == 1


def test_policy_and_certificate_changes_are_live():
    """A CLB listener's SSL negotiation policy and its certificate change live: its nodes
    reload (testbed.plan.changes), as an ALB's."""
    old = build_plan(_model(), "t")
    text = LISTENERS.replace(f"Value: {TLS12}", f"Value: {DEFAULT}").replace(
        f"Protocol: ssl, SSLCertificateId: {IAM_ARN}", f"Protocol: ssl, SSLCertificateId: {ARN}"
    )
    new = build_plan(_model(text), "t")
    live, other, reload = plan_changes(old, new)
    assert other == []
    assert reload == [new.load_balancers[0].name]
    fields = {c.split(":")[0].rsplit(".", 1)[-1].split("[")[0] for c in live}
    assert {"ssl_policy", "certificates"} <= fields, live
