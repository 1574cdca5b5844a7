"""ALB HTTPS on a real lab (issue 16): certificates of the lab CA chosen by SNI, verified by
clients on the internet without -k; the HTTP->HTTPS redirect; SslPolicy (a TLS 1.0 client
refused under ELBSecurityPolicy-TLS13-1-2-2021-06); X-Forwarded-Proto/Port; HTTP/2 by ALPN;
an HTTPS target group reached over TLS and checked over HTTPS; bad input exit 2.

templates/alb-https.yaml; requests go from the internet client to a node's public address
(curl --resolve pins the name there, so SNI and the certificate check use the real name).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.assertions import run_cli
from tests.lab_tls import curl_pinned, healthy_lab, node_public_ip, s_client

pytestmark = pytest.mark.integration
TEMPLATE = "templates/alb-https.yaml"
CLIENT = "Client"
NAME = "www.example.test"


@pytest.fixture(scope="module")
def lab():
    with healthy_lab(TEMPLATE, "WebTargets", "SecureTargets") as lab:
        yield lab


def node_ip(lab) -> str:
    return node_public_ip(lab, "Alb")


def curl(lab, url: str, *extra: str, name: str = "www.example.test") -> tuple[int, str, str]:
    """curl in the client, the name pinned to a node: (exit code, stdout, stderr)."""
    return curl_pinned(lab, CLIENT, node_ip(lab), url, *extra, name=name)


def test_https_verified_with_the_default_certificate(lab):
    code, out, err = curl(lab, "https://www.example.test/hello")
    assert code == 0, err  # verified: the client trusts the lab CA, no -k
    body = json.loads(out)
    assert body["instance"] == "Web1"
    assert body["forwarded"]["x-forwarded-proto"] == "https"
    assert body["forwarded"]["x-forwarded-port"] == "443"
    # routing.http.x_amzn_tls_version_and_cipher_suite.enabled: what the client negotiated.
    assert body["forwarded"]["x-amzn-tls-version"] == "TLSv1.3"
    # The policy's first TLS 1.3 suite: the server's order wins.
    assert body["forwarded"]["x-amzn-tls-cipher-suite"] == "TLS_AES_128_GCM_SHA256"


def test_sni_chooses_the_listener_certificate(lab):
    def subject_of(name: str) -> str:
        code, _out, err = curl(lab, f"https://{name}/", "-v", "-o", "/dev/null", name=name)
        assert code == 0, err
        return next(line for line in err.splitlines() if "subject:" in line)

    assert "api.example.test" in subject_of("api.example.test")
    assert "api.example.test" in subject_of("x.api.example.test")  # the wildcard SAN
    assert "www.example.test" in subject_of("www.example.test")


def test_a_name_no_certificate_covers_fails_verification(lab):
    """The default certificate answers; it does not cover the name, so the client refuses it
    (curl exit 60), as with AWS."""
    code, _out, err = curl(lab, "https://shop.example.test/", name="shop.example.test")
    assert code == 60, err
    code, _out, err = curl(lab, "https://shop.example.test/", "-k", name="shop.example.test")
    assert code == 0, err


def test_http_redirects_to_https(lab):
    code, out, err = curl(
        lab,
        "http://www.example.test/a/b?x=1",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{redirect_url}",
    )
    assert code == 0, err
    assert out == "301 https://www.example.test:443/a/b?x=1"
    code, out, err = curl(lab, "http://www.example.test/a/b?x=1", "-L")
    assert code == 0, err
    assert json.loads(out)["path"] == "/a/b?x=1"


def test_http2_by_alpn(lab):
    code, out, err = curl(
        lab, "https://www.example.test/", "--http2", "-o", "/dev/null", "-w", "%{http_version}"
    )
    assert code == 0, err
    assert out == "2"


def test_tls10_client_refused_under_a_tls12_policy(lab):
    ip = node_ip(lab)
    old = s_client(lab, CLIENT, ip, 443, NAME, "-tls1", "-cipher DEFAULT@SECLEVEL=0")
    assert "New, (NONE), Cipher is (NONE)" in old, old  # no TLS 1.0 session
    new = s_client(lab, CLIENT, ip, 443, NAME, "-tls1_2")
    assert "New, TLSv1.2, Cipher is ECDHE-RSA-AES128-GCM-SHA256" in new, new
    assert "Verify return code: 0 (ok)" in new, new


def test_https_targets_and_health_checks(lab):
    # Healthy: checked over HTTPS (the group's protocol, the checks' default).
    assert list(lab.target_states("SecureTargets").values()) == ["healthy"]
    assert lab.plan.load_balancers[0].target_group("SecureTargets").health.protocol == "HTTPS"
    code, out, err = curl(lab, "https://www.example.test/secure/x")
    assert code == 0, err
    body = json.loads(out)
    assert body["instance"] == "Secure1"
    assert body["tls"]["version"].startswith("TLSv1.")  # the ALB reached it over TLS


def test_update_changes_the_policy_live(lab):
    """`testbed update` to ELBSecurityPolicy-2016-08: the nodes reload and take TLS 1.0;
    an update back to the template's policy refuses it again (the lab's plan follows a
    load-balancer-only update, so the second one is a change too)."""

    def tls10_ok() -> bool:
        said = s_client(lab, CLIENT, node_ip(lab), 443, NAME, "-tls1", "-cipher DEFAULT@SECLEVEL=0")
        return "New, TLSv1.0, Cipher is " in said

    assert not tls10_ok()
    reply = lab.update(TEMPLATE, {"SslPolicy": "ELBSecurityPolicy-2016-08"})
    assert reply["changes"] == [
        "load_balancers.Alb.listeners.HttpsListener.ssl_policy: "
        "'ELBSecurityPolicy-TLS13-1-2-2021-06' -> 'ELBSecurityPolicy-2016-08'"
    ]
    lab.wait_for(tls10_ok, 30, "TLS 1.0 taken under ELBSecurityPolicy-2016-08", interval=0.5)
    reply = lab.update(TEMPLATE, {"SslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06"})
    assert reply["changes"] == [
        "load_balancers.Alb.listeners.HttpsListener.ssl_policy: "
        "'ELBSecurityPolicy-2016-08' -> 'ELBSecurityPolicy-TLS13-1-2-2021-06'"
    ]
    lab.wait_for(lambda: not tls10_ok(), 30, "TLS 1.0 refused again", interval=0.5)


def test_a_listener_certificate_added_by_update_is_served(lab, tmp_path):
    """`testbed update` with a new certificate and a ListenerCertificate adding it to the
    HTTPS listener: live (the lab issues it, the nodes reload) and SNI picks it; the update
    back removes it (the default certificate answers that name again)."""
    shop = "shop.example.test"
    text = Path(TEMPLATE).read_text()
    added = text.replace(
        "  SecureRule:\n",
        "  ShopCertificate:\n"
        "    Type: AWS::CertificateManager::Certificate\n"
        f"    Properties: {{DomainName: {shop}, ValidationMethod: DNS}}\n"
        "  ShopCertificates:\n"
        "    Type: AWS::ElasticLoadBalancingV2::ListenerCertificate\n"
        "    Properties:\n"
        "      ListenerArn: !Ref HttpsListener\n"
        "      Certificates: [{CertificateArn: !Ref ShopCertificate}]\n"
        "  SecureRule:\n",
    )
    assert added != text
    path = tmp_path / "alb-https-shop.yaml"
    path.write_text(added)

    def verified() -> bool:
        code, _out, _err = curl(lab, f"https://{shop}/", "-o", "/dev/null", name=shop)
        return code == 0

    assert not verified()  # the default certificate (www) does not cover the name
    reply = lab.update(str(path))
    assert any(".HttpsListener.certificates" in c for c in reply["changes"]), reply
    lab.wait_for(verified, 30, f"{shop} verified with its new certificate", interval=0.5)
    code, _out, err = curl(lab, f"https://{shop}/", "-v", "-o", "/dev/null", name=shop)
    assert code == 0, err
    assert shop in next(line for line in err.splitlines() if "subject:" in line)
    lab.update(TEMPLATE)
    lab.wait_for(lambda: not verified(), 30, f"{shop} no longer served", interval=0.5)


def test_testbed_cli_shells_trust_the_lab_ca(lab, tmp_path):
    """`testbed cli`: a host's shell verifies the ALB's certificate without -k, as `testbed
    exec` does (SSL_CERT_FILE and CURL_CA_BUNDLE at the lab's trust bundle)."""
    script = tmp_path / "cmds"
    script.write_text(
        f"{CLIENT} curl -s -m 5 -o /dev/null -w 'code=%{{http_code}}\\n' --resolve "
        f"www.example.test:443:{node_ip(lab)} https://www.example.test/\n"
        f"{CLIENT} echo trust=$SSL_CERT_FILE\n"
    )
    proc = run_cli("cli", lab.name, "--script", str(script), timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert "code=200" in out, out
    assert "trust=/" in out, out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("      Certificates: [{CertificateArn: !Ref WwwCertificate}]\n", ""),
            "needs a certificate",
        ),
        (
            (
                "Default: ELBSecurityPolicy-TLS13-1-2-2021-06",
                "Default: ELBSecurityPolicy-TLS13-1-2-2099-01",
            ),
            "unknown security policy",
        ),
    ],
)
def test_bad_input_exit_2(tmp_path, change, message):
    text = Path(TEMPLATE).read_text()
    assert change[0] in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(*change))
    proc = run_cli("validate", str(bad))
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "HttpsListener" in proc.stderr
