"""ALB HTTPS (issue 16): the model of HTTPS listeners, ListenerCertificate and HTTPS target
groups; the haproxy.cfg they give (testbed.alb.tls, testbed.alb.config); and that config run
by HAProxy on the loopback: certificates chosen by SNI, the policy's TLS versions, ALPN."""

from __future__ import annotations

import socket
import ssl
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from testbed.alb import tls
from testbed.alb.config import node_files, render
from testbed.lab import certs
from testbed.model.elbv2_types import elbv2_sections
from testbed.plan.network import build_plan
from testbed.waiting import wait_for
from tests.haproxy_local import HAVE_HAPROXY, free_port
from tests.tls_local import node_haproxy, template_fails, template_model

TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "alb-https.yaml"
needs_haproxy = pytest.mark.skipif(not HAVE_HAPROXY, reason="haproxy is not installed")


def model(text: str | None = None, **params: str):
    return template_model(TEMPLATE, text, **params)


def alb(**params: str):
    return build_plan(model(**params), "t").load_balancers[0]


def fails(change: tuple[str, str], *fragments: str) -> None:
    template_fails(TEMPLATE, change, *fragments)


# ---- model ---------------------------------------------------------------------------------
def test_https_listener_certificates_in_order_and_policy():
    m = model()
    listeners = elbv2_sections(m)["listeners"]
    https, http = listeners["HttpsListener"], listeners["HttpListener"]
    assert https.protocol == "HTTPS"
    # The default (Www) first, then the ListenerCertificate's.
    assert https.certificates == (m.outputs["WwwCertificateArn"], m.outputs["ApiCertificateArn"])
    assert https.ssl_policy == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert (http.certificates, http.ssl_policy) == ((), None)
    groups = elbv2_sections(m)["target_groups"]
    assert groups["SecureTargets"].protocol == "HTTPS"
    assert groups["SecureTargets"].health_check.protocol == "HTTPS"  # the group's, by default
    assert groups["WebTargets"].health_check.protocol == "HTTP"


def test_default_policy_is_2016_08():
    text = TEMPLATE.read_text().replace("      SslPolicy: !Ref SslPolicy\n", "")
    listener = elbv2_sections(model(text))["listeners"]["HttpsListener"]
    assert listener.ssl_policy == "ELBSecurityPolicy-2016-08"


def test_plan_json_has_tls_fields_only_for_tls_listeners():
    plan = build_plan(model(), "t")
    text = plan.to_json()
    assert text.count('"ssl_policy"') == 1
    assert text.count('"certificates"') == 2
    again = type(plan).from_json(text)
    assert again.load_balancers[0].listeners == plan.load_balancers[0].listeners


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("      Certificates: [{CertificateArn: !Ref WwwCertificate}]\n", ""),
            "an HTTPS listener needs a certificate: Certificates is missing",
        ),
        (
            ("Default: ELBSecurityPolicy-TLS13-1-2-2021-06", "Default: ELBSecurityPolicy-TLS13"),
            "SslPolicy: unknown security policy 'ELBSecurityPolicy-TLS13'",
        ),
        (
            ("Default: ELBSecurityPolicy-TLS13-1-2-2021-06", "Default: ELBSample-OpenSSLDefault"),
            "unknown security policy",  # a CLB-only policy
        ),
        (
            (
                "[{CertificateArn: !Ref WwwCertificate}]",
                "[{CertificateArn: !Ref WwwCertificate}, {CertificateArn: !Ref ApiCertificate}]",
            ),
            "takes exactly one certificate",
        ),
        (
            ("[{CertificateArn: !Ref WwwCertificate}]", "[{CertificateArn: not-an-arn}]"),
            "is not a certificate ARN",
        ),
        (
            (
                "[{CertificateArn: !Ref WwwCertificate}]",
                "[{CertificateArn: 'arn:aws:acm:eu-west-1:123456789012:certificate/abc-1'}]",
            ),
            "is an ACM certificate of eu-west-1",
        ),
        (
            (
                "      Protocol: HTTP\n      Port: 80\n",
                "      Protocol: HTTP\n      Port: 80\n"
                "      SslPolicy: ELBSecurityPolicy-2016-08\n",
            ),
            "SslPolicy is only for HTTPS and TLS listeners, not HTTP ones",
        ),
        (
            (
                "ListenerArn: !Ref HttpsListener\n      Certificates: [{CertificateArn: !Ref Api",
                "ListenerArn: !Ref HttpListener\n      Certificates: [{CertificateArn: !Ref Api",
            ),
            "only HTTPS and TLS listeners take certificates",
        ),
    ],
)
def test_bad_https_listeners(change, message):
    fails(change, message)


# ---- haproxy.cfg ---------------------------------------------------------------------------
def frontend(text: str, name: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(f"frontend {name}")
    out = []
    for line in lines[start + 1 :]:
        if not line.startswith("    "):
            break
        out.append(line.strip())
    return out


def config(lb, lab_dir: Path = Path("/run/lab")) -> str:
    node = lb.nodes[0]
    return render(lb, node, node_files(lab_dir, node.host))


def test_bind_line_certificates_policy_alpn():
    lb = alb()
    listener = next(x for x in lb.listeners if x.name == "HttpsListener")
    bind = frontend(config(lb), "HttpsListener")[0]
    crts = [str(certs.pem_path(Path("/run/lab"), arn)) for arn in listener.certificates]
    assert bind.startswith(f"bind {lb.nodes[0].ip}:443 ssl crt {crts[0]} crt {crts[1]} ")
    assert "ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.3" in bind
    assert "ciphersuites TLS_AES_128_GCM_SHA256:" in bind
    assert bind.endswith("alpn h2,http/1.1")
    assert "@SECLEVEL=0" not in bind
    old = frontend(
        config(alb(SslPolicy="ELBSecurityPolicy-2016-08", Http2="false")), "HttpsListener"
    )
    assert "ssl-min-ver TLSv1.0" in old[0]
    assert ":@SECLEVEL=0" in old[0]
    assert "ciphersuites" not in old[0]
    assert old[0].endswith("alpn http/1.1")


def test_forwarded_headers_redirect_and_https_servers():
    text = config(alb())
    https = frontend(text, "HttpsListener")
    assert "http-request set-header X-Forwarded-Proto https" in https
    assert "http-request set-header X-Forwarded-Port 443" in https
    assert "http-request del-header [^A-Za-z0-9-] -m reg" in https  # drop_invalid_header_fields
    assert "http-request set-header X-Amzn-Tls-Version %[ssl_fc_protocol]" in https
    assert "http-request set-header X-Amzn-Tls-Cipher-Suite %[ssl_fc_cipher]" in https
    http = frontend(text, "HttpListener")
    assert "http-request set-header X-Forwarded-Proto http" in http
    assert not any("X-Amzn-Tls" in line for line in http)
    assert 'location "https://%[req.hdr(host),field(1,:)]:443/%[path,regsub(^/,)]"' in text
    assert "server Secure1_443 10.16.2.4:443 ssl verify none" in text
    assert "server Web1_80 10.16.1.4:80\n" in text
    assert tls.https_backends(alb()) == {"tg_SecureTargets"}


# ---- HAProxy on the loopback ---------------------------------------------------------------
def handshake(port: int, name: str | None, ca: Path, version: ssl.TLSVersion | None = None):
    """(subject CN, TLS version, ALPN) of a verified handshake with 127.0.0.1:port."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = False  # the names are checked below (the address is 127.0.0.1)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=name) as s,
    ):
        cert = s.getpeercert()
        cn = dict(x[0] for x in cert["subject"])["commonName"]
        return cn, s.version(), s.selected_alpn_protocol()


@needs_haproxy
@pytest.mark.parametrize(
    "policy", ["ELBSecurityPolicy-TLS13-1-2-2021-06", "ELBSecurityPolicy-2016-08"]
)
def test_haproxy_serves_sni_and_policy(tmp_path, policy):
    plan = build_plan(model(SslPolicy=policy), "t")
    certs.issue_all(tmp_path, plan)
    lb = plan.load_balancers[0]
    port = free_port()
    https = next(x for x in lb.listeners if x.name == "HttpsListener")
    lb = replace(lb, listeners=(replace(https, port=port, rules=()),))
    node = replace(lb.nodes[0], ip="127.0.0.1")
    with node_haproxy(lb, node, tmp_path, port, stats_socket=False):
        ca = certs.ca_path(tmp_path)
        assert handshake(port, "api.example.test", ca)[0] == "api.example.test"
        assert handshake(port, "v1.api.example.test", ca)[0] == "api.example.test"  # wildcard
        assert handshake(port, "www.example.test", ca)[0] == "www.example.test"
        assert handshake(port, "other.test", ca)[0] == "www.example.test"  # the default
        assert handshake(port, None, ca)[0] == "www.example.test"  # no SNI: the default
        _cn, version, alpn = handshake(port, "www.example.test", ca)
        assert alpn == "h2"
        assert version == ("TLSv1.3" if "TLS13" in policy else "TLSv1.2")
        if "TLS13" in policy:
            with pytest.raises(ssl.SSLError):
                handshake(port, "www.example.test", ca, ssl.TLSVersion.TLSv1)
        else:
            assert handshake(port, "www.example.test", ca, ssl.TLSVersion.TLSv1)[1] == "TLSv1"


def test_https_targets_get_an_https_backend():
    """An http-backend target of an HTTPS group serves HTTPS on the group's port, whether the
    template names the role (Secure1) or the lab gives it (no Metadata)."""
    plan = build_plan(model(), "t")
    args = {h.name: dict(h.role_args) for h in plan.hosts}
    assert args["Secure1"] == {"HttpsPort": 443}
    assert args["Web1"] == {}
    text = TEMPLATE.read_text().replace(
        "  Secure1:\n    Type: AWS::EC2::Instance\n    Metadata: {Lab: {Role: http-backend}}\n",
        "  Secure1:\n    Type: AWS::EC2::Instance\n",
    )
    plan = build_plan(model(text), "t")
    secure = next(h for h in plan.hosts if h.name == "Secure1")
    assert secure.role == "http-backend"
    assert dict(secure.role_args)["HttpsPort"] == 443


def test_http_backend_serves_https_and_passes_https_checks(tmp_path):
    """http-backend --https-port: the same answers over TLS (a lab-CA certificate for its
    address, verified here), `tls` saying what the client got; an HTTPS health check passes."""
    import asyncio
    import json
    import sys
    import urllib.request

    from testbed.health.checks import check
    from tests.unit.test_backend_and_load import accepts, free_ports

    cert = certs.issue_host_cert(tmp_path, "T1", ["127.0.0.1"])
    port, https, admin = free_ports(3)
    argv = [sys.executable, "-m", "testbed.roles.http_backend", "--id", "T1", "--bind"]
    argv += ["127.0.0.1", "--port", str(port), "--tcp-port", "0", "--udp-port", "0"]
    argv += ["--admin-port", str(admin), "--https-port", str(https), "--cert", str(cert)]
    proc = subprocess.Popen(argv)
    try:
        wait_for(lambda: proc.poll() is not None or accepts(https), 10, "the backend to start")
        ctx = ssl.create_default_context(cafile=str(certs.ca_path(tmp_path)))
        with urllib.request.urlopen(f"https://127.0.0.1:{https}/x", context=ctx) as resp:
            body = json.loads(resp.read())
        assert body["instance"] == "T1"
        assert body["tls"]["version"] == "TLSv1.3"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/x") as resp:
            assert json.loads(resp.read())["tls"] is None
        result = asyncio.run(check("HTTPS", "127.0.0.1", https, 5, "/health", "200"))
        assert (result.ok, result.detail) == (True, "200")
        plain = asyncio.run(check("HTTPS", "127.0.0.1", port, 5, "/health", "200"))
        assert not plain.ok  # TLS to a plain HTTP port fails the check
    finally:
        proc.terminate()
        proc.wait(5)


def test_policy_and_certificate_changes_are_live():
    """A new SslPolicy, another certificate list, a new ListenerCertificate and a certificate
    reissued for other names: all live, the nodes reload (the load balancer service issues
    the new certificates before they do)."""
    from testbed.plan.changes import plan_changes

    old = build_plan(model(), "t")
    new = build_plan(model(SslPolicy="ELBSecurityPolicy-2016-08"), "t")
    live, other, reload = plan_changes(old, new)
    assert live == [
        "load_balancers.Alb.listeners.HttpsListener.ssl_policy: "
        "'ELBSecurityPolicy-TLS13-1-2-2021-06' -> 'ELBSecurityPolicy-2016-08'"
    ]
    assert other == []
    assert "Alb" in reload
    # The two certificates swapped: the default one is api's now.
    text = (
        TEMPLATE.read_text()
        .replace("!Ref WwwCertificate}]", "!Ref SWAP}]")
        .replace("!Ref ApiCertificate}]", "!Ref WwwCertificate}]")
        .replace("!Ref SWAP}]", "!Ref ApiCertificate}]")
    )
    live, other, reload = plan_changes(old, build_plan(model(text), "t"))
    assert other == []
    assert "load_balancers.Alb.listeners.HttpsListener.certificates[0]" in [
        c.split(":")[0] for c in live
    ]
    assert reload == ["Alb"]
    # A third certificate added by a new ListenerCertificate.
    added = TEMPLATE.read_text().replace(
        "  SecureRule:\n",
        "  ShopCertificate:\n"
        "    Type: AWS::CertificateManager::Certificate\n"
        "    Properties: {DomainName: shop.example.test}\n"
        "  ShopCertificates:\n"
        "    Type: AWS::ElasticLoadBalancingV2::ListenerCertificate\n"
        "    Properties:\n"
        "      ListenerArn: !Ref HttpsListener\n"
        "      Certificates: [{CertificateArn: !Ref ShopCertificate}]\n"
        "  SecureRule:\n",
    )
    new = build_plan(model(added), "t")
    live, other, reload = plan_changes(old, new)
    assert other == []
    assert reload == ["Alb"]
    listener = "load_balancers.Alb.listeners.HttpsListener.certificates"
    assert any(c.startswith(listener) for c in live)
    shop = next(c.arn for c in new.certificates if "shop.example.test" in c.names)
    assert f"certificates.{shop}: added" in live
    # The same certificate for other names (same ARN): the nodes reload to read it.
    renamed = TEMPLATE.read_text().replace(
        "DomainName: www.example.test,", "DomainName: www2.example.test,"
    )
    live, other, reload = plan_changes(old, build_plan(model(renamed), "t"))
    assert other == []
    assert reload == ["Alb"]
    assert any(c.startswith("load_balancers.Alb.certificates: ") for c in live), live
