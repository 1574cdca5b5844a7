"""Certificates: AWS::CertificateManager::Certificate in the model, the plan's certificates
(template and inferred), and the lab CA issuing them (verified with Python's ssl)."""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from testbed.errors import BadInput
from testbed.lab import certs, hostexec
from testbed.model.elbv2_types import EXTRAS_KEY as ELBV2_KEY
from testbed.model.resources.acm import certificate_arn_problem
from testbed.model.types import DnsRecord
from testbed.plan.certificates import INFERRED, TEMPLATE, CertificatePlan, build_certificates
from testbed.plan.network import NetworkPlan, build_plan
from tests.unit.test_model_resources import with_resources

UUID = "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
ARN = re.compile(f"arn:aws:acm:us-east-1:123456789012:certificate/{UUID}")

CERT = """\
Cert:
  Type: AWS::CertificateManager::Certificate
  Properties:
    DomainName: WWW.Example.test.
    SubjectAlternativeNames: [example.test, "*.api.example.test", www.example.test]
    ValidationMethod: DNS
    DomainValidationOptions:
      - {DomainName: example.test, HostedZoneId: Z123}
"""


def _cert_template(props: str) -> str:
    return with_resources(
        "Cert:\n  Type: AWS::CertificateManager::Certificate\n  Properties:\n"
        + "".join(f"    {line}\n" for line in props.splitlines())
    )


# --- model --------------------------------------------------------------------------------


def test_a_certificate_is_emulated_with_its_names_and_an_acm_arn(load):
    text = with_resources(CERT) + (
        "Outputs:\n  Ref: {Value: !Ref Cert}\n  Arn: {Value: !GetAtt Cert.CertificateArn}\n"
    )
    model = load(text)
    arn = model.outputs["Ref"]
    assert ARN.fullmatch(arn)
    assert model.outputs["Arn"] == arn
    cert = model.extras["acm"]["Cert"]
    assert cert.arn == arn
    # DomainName first (lower case, no trailing dot), SANs once each.
    assert cert.names == ("www.example.test", "example.test", "*.api.example.test")
    assert cert.validation_method == "DNS"
    assert cert.key_algorithm == "RSA_2048"
    assert "Cert" not in model.inert
    # The same stack and logical id give the same ARN (an update keeps it).
    assert load(text).outputs["Ref"] == arn


@pytest.mark.parametrize(
    ("props", "fragment", "at"),
    [
        ("DomainName: localhost", "is not a fully qualified domain name", "DomainName"),
        (
            "DomainName: www.*.example.test",
            "wildcard that is not the whole leftmost",
            "DomainName",
        ),
        ("DomainName: bad_name.example.test", "invalid label 'bad_name'", "DomainName"),
        (
            "DomainName: a.example.test\nSubjectAlternativeNames: [b.example.test, '*x.test']",
            "SubjectAlternativeNames[1] '*x.test'",
            "SubjectAlternativeNames",
        ),
        (
            "DomainName: a.example.test\nValidationMethod: PHONE",
            "ValidationMethod must be one of DNS, EMAIL, HTTP, not 'PHONE'",
            "ValidationMethod",
        ),
        (
            "DomainName: a.example.test\nKeyAlgorithm: RSA_1024",
            "KeyAlgorithm must be one of RSA_2048, EC_prime256v1, EC_secp384r1",
            "KeyAlgorithm",
        ),
        (
            "DomainName: a.example.test\nDomainValidationOptions:\n"
            "  - {DomainName: other.test, ValidationDomain: other.test}",
            "DomainValidationOptions[0].DomainName other.test is not one of the certificate's "
            "names (a.example.test)",
            "- {DomainName",
        ),
    ],
)
def test_bad_certificates_are_refused_with_their_line(fails, line_with, props, fragment, at):
    text = _cert_template(props)
    fails(text, fragment, logical_id="Cert", line=line_with(text, at))


def test_a_certificate_without_domain_name_is_refused(fails):
    fails(_cert_template("ValidationMethod: DNS"), "DomainName", logical_id="Cert")


def test_every_bad_certificate_of_a_template_is_reported_in_one_run(load):
    text = with_resources(
        "A:\n  Type: AWS::CertificateManager::Certificate\n  Properties: {DomainName: x}\n"
        "B:\n  Type: AWS::CertificateManager::Certificate\n"
        "  Properties: {DomainName: b.test, ValidationMethod: NONE}\n"
    )
    with pytest.raises(BadInput) as info:
        load(text)
    shown = str(info.value)
    assert "A: DomainName 'x'" in shown, shown
    assert "B: ValidationMethod" in shown, shown


def test_inert_properties_are_accepted_and_listed(load):
    model = load(
        _cert_template(
            "DomainName: a.example.test\nCertificateTransparencyLoggingPreference: DISABLED\n"
            "KeyAlgorithm: EC_prime256v1"
        )
    )
    assert model.extras["acm"]["Cert"].key_algorithm == "EC_prime256v1"
    assert any(
        i.logical_id == "Cert" and "CertificateTransparency" in i.property for i in model.ignored
    )


# --- plan ---------------------------------------------------------------------------------


def test_the_plan_has_the_template_certificates_and_plan_json_keeps_them(load):
    model = load(with_resources(CERT))
    plan = build_plan(model, "lab")
    (cert,) = plan.certificates
    assert cert.source == TEMPLATE
    assert cert.logical_id == "Cert"
    assert cert.names == ("www.example.test", "example.test", "*.api.example.test")
    again = NetworkPlan.from_json(plan.to_json())
    assert again.certificates == plan.certificates


def test_a_plan_without_certificates_writes_no_certificates_key(load):
    plan = build_plan(load(with_resources("")), "lab")
    assert plan.certificates == ()
    assert "certificates" not in json.loads(plan.to_json())
    assert NetworkPlan.from_json(plan.to_json()).certificates == ()


def _model(listeners, lbs, records=(), declared=None):
    extras = {ELBV2_KEY: {"listeners": listeners, "load_balancers": lbs}}
    if declared:
        extras["acm"] = declared
    return SimpleNamespace(extras=extras, dns_records=records, creation_order=())


def test_an_arn_given_as_text_gets_names_inferred_from_its_load_balancers():
    given = "arn:aws:acm:us-east-1:123456789012:certificate/given"
    lb = SimpleNamespace(dns_name="Web-123.us-east-1.elb.amazonaws.com")
    listeners = {
        "Https": SimpleNamespace(logical_id="Https", lb_id="Web", certificates=(given,)),
        "Http": SimpleNamespace(logical_id="Http", lb_id="Web", certificates=()),
    }
    records = (
        DnsRecord("Alias", "www.example.test", "CNAME", ("web-123.us-east-1.elb.amazonaws.com",)),
        DnsRecord("Chain", "shop.example.test", "CNAME", ("www.example.test",)),
        DnsRecord("Other", "other.example.test", "CNAME", ("elsewhere.test",)),
        DnsRecord("Addr", "ip.example.test", "A", ("10.0.0.1",)),
    )
    (cert,) = build_certificates(_model(listeners, {"Web": lb}, records))
    assert cert == CertificatePlan(
        given,
        ("web-123.us-east-1.elb.amazonaws.com", "www.example.test", "shop.example.test"),
        INFERRED,
        used_by=("Https",),
    )


def test_a_template_certificate_used_by_a_listener_is_not_inferred_again(load):
    model = load(with_resources(CERT))
    declared = dict(model.extras["acm"])
    arn = declared["Cert"].arn
    lb = SimpleNamespace(dns_name="web.elb.test")
    listeners = {"L": SimpleNamespace(logical_id="L", lb_id="Web", certificates=(arn,))}
    (cert,) = build_certificates(_model(listeners, {"Web": lb}, declared=declared))
    assert cert.source == TEMPLATE
    assert cert.used_by == ("L",)
    assert cert.names[0] == "www.example.test"


# --- lab CA ---------------------------------------------------------------------------------

ISSUED = CertificatePlan(
    "arn:aws:acm:us-east-1:123456789012:certificate/abc",
    ("www.example.test", "*.api.example.test", "10.0.1.5"),
    TEMPLATE,
    "Cert",
)


@pytest.fixture
def lab_dir(tmp_path: Path) -> Path:
    return tmp_path / "c-lab"


def _serve_once(pem: Path) -> tuple[int, threading.Thread]:
    """A TLS server on 127.0.0.1 with the certificate in `pem` (cert, chain, key), answering
    one handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pem))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"hello")
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return port, thread


def _connect(port: int, name: str, cafile: Path) -> bytes:
    context = ssl.create_default_context(cafile=str(cafile))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        return tls.recv(5)


@pytest.mark.parametrize("name", ["www.example.test", "v1.api.example.test", "10.0.1.5"])
def test_a_client_trusting_only_the_lab_ca_verifies_the_issued_certificate(lab_dir, name):
    paths = certs.issue_all(lab_dir, SimpleNamespace(certificates=(ISSUED,)))
    pem = certs.pem_path(lab_dir, ISSUED.arn)
    assert paths == [certs.ca_path(lab_dir), pem]
    assert pem.stat().st_mode & 0o777 == 0o600
    port, thread = _serve_once(pem)
    # The root only: the server sends the intermediate (the chain is in the PEM).
    assert _connect(port, name, certs.ca_path(lab_dir)) == b"hello"
    thread.join(5)


def test_another_name_fails_verification(lab_dir):
    certs.issue_all(lab_dir, SimpleNamespace(certificates=(ISSUED,)))
    port, thread = _serve_once(certs.pem_path(lab_dir, ISSUED.arn))
    with pytest.raises(ssl.SSLCertVerificationError, match="match"):
        _connect(port, "api.example.test", certs.ca_path(lab_dir))  # *.api covers one label
    thread.join(5)


def test_the_system_trust_store_alone_does_not_trust_the_lab(lab_dir):
    certs.issue_all(lab_dir, SimpleNamespace(certificates=(ISSUED,)))
    port, thread = _serve_once(certs.pem_path(lab_dir, ISSUED.arn))
    context = ssl.create_default_context()
    context.load_default_certs()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(raw, server_hostname="www.example.test")
    thread.join(5)


def test_the_trust_bundle_holds_the_system_cas_and_the_lab_root(lab_dir):
    certs.issue_all(lab_dir, SimpleNamespace(certificates=()))
    bundle = certs.trust_bundle(lab_dir).read_text()
    root = certs.ca_path(lab_dir).read_text()
    assert bundle.endswith(root)
    assert bundle.count("BEGIN CERTIFICATE") > 1  # the machine's CAs too
    info = certs.read(certs.ca_path(lab_dir))
    assert "CN=ELB Lab Root CA" in info.subject
    assert "OU=lab c-lab" in info.subject


def test_what_the_certificate_says(lab_dir):
    ec = CertificatePlan(
        "arn:x:certificate/ec", ("a.example.test",), INFERRED, None, "EC_secp384r1"
    )
    certs.issue_all(lab_dir, SimpleNamespace(certificates=(ISSUED, ec)))
    info = certs.read(certs.pem_path(lab_dir, ISSUED.arn))
    assert info.subject == "CN=www.example.test"
    assert info.names == ("www.example.test", "*.api.example.test", "10.0.1.5")
    assert "CN=ELB Lab Server CA 1" in info.issuer
    assert 394 <= (info.not_after - info.not_before).days <= 396  # 13 months, as ACM's
    assert info.key == "RSA 2048"
    assert certs.read(certs.pem_path(lab_dir, ec.arn)).key == "EC secp384r1"


def test_issuing_again_keeps_a_current_certificate_and_reissues_for_new_names(lab_dir):
    plan = SimpleNamespace(certificates=(ISSUED,))
    certs.issue_all(lab_dir, plan)
    ca = certs.ca_path(lab_dir).read_bytes()
    first = certs.read(certs.pem_path(lab_dir, ISSUED.arn))
    certs.issue_all(lab_dir, plan)
    assert certs.read(certs.pem_path(lab_dir, ISSUED.arn)).serial == first.serial
    renamed = CertificatePlan(ISSUED.arn, ("new.example.test",), TEMPLATE, "Cert")
    certs.issue_all(lab_dir, SimpleNamespace(certificates=(renamed,)))
    again = certs.read(certs.pem_path(lab_dir, ISSUED.arn))
    assert again.names == ("new.example.test",)
    assert again.serial != first.serial
    assert certs.ca_path(lab_dir).read_bytes() == ca  # one CA per lab


def test_host_certificates_for_https_targets(lab_dir):
    path = certs.issue_host_cert(lab_dir, "Secure1", ["10.16.2.10", "secure1.internal"])
    assert path == certs.host_pem_path(lab_dir, "Secure1")
    assert certs.read(path).names == ("secure1.internal", "10.16.2.10")
    port, thread = _serve_once(path)
    assert _connect(port, "10.16.2.10", certs.ca_path(lab_dir)) == b"hello"
    thread.join(5)


def test_pem_paths_are_distinct_file_names_per_arn(lab_dir):
    a = certs.pem_path(lab_dir, "arn:aws:acm:us-east-1:1:certificate/x")
    b = certs.pem_path(lab_dir, "arn:aws:acm:us-west-2:1:certificate/x")
    iam = certs.pem_path(lab_dir, "arn:aws:iam::1:server-certificate/my cert")
    assert a != b
    assert a.parent == iam.parent == lab_dir / "certs" / "issued"
    assert " " not in iam.name
    assert iam.name.startswith("my-cert-")


def test_host_commands_trust_the_lab_ca_once_it_exists(tmp_path, monkeypatch):
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path))
    assert not any("SSL_CERT_FILE" in a for a in hostexec.netns_argv("c1", "Web", ["curl"]))
    certs.ensure_ca(tmp_path / "c1")
    argv = hostexec.netns_argv("c1", "Web", ["curl", "https://x"])
    bundle = str(certs.trust_bundle(tmp_path / "c1"))
    for name in certs.TRUST_VARIABLES:
        assert f"{name}={bundle}" in argv
    assert argv[-2:] == ["curl", "https://x"]


ZONE = """\
Zone:
  Type: AWS::Route53::HostedZone
  Properties: {Name: other.test}
"""


def test_a_validation_zone_that_cannot_hold_the_name_is_refused(fails, line_with):
    text = with_resources(
        ZONE + "Cert:\n  Type: AWS::CertificateManager::Certificate\n  Properties:\n"
        "    DomainName: www.example.test\n    DomainValidationOptions:\n"
        "      - {DomainName: www.example.test, HostedZoneId: !Ref Zone}\n"
    )
    fails(
        text,
        "DomainValidationOptions[0].HostedZoneId is Zone (other.test): www.example.test is "
        "not in that zone",
        logical_id="Cert",
        line=line_with(text, "- {DomainName"),
    )


def test_a_validation_domain_must_be_the_name_or_above_it(fails, load):
    props = (
        "DomainName: '*.shop.example.test'\nDomainValidationOptions:\n"
        "  - {{DomainName: '*.shop.example.test', ValidationDomain: {}}}"
    )
    fails(
        _cert_template(props.format("other.test")),
        "ValidationDomain other.test is not shop.example.test or a domain above it",
        logical_id="Cert",
    )
    model = load(_cert_template(props.format("example.test")))
    assert model.extras["acm"]["Cert"].names == ("*.shop.example.test",)


def test_a_validation_zone_of_the_stack_holding_the_name_is_accepted(load):
    text = with_resources(
        ZONE.replace("other.test", "example.test")
        + "Cert:\n  Type: AWS::CertificateManager::Certificate\n  Properties:\n"
        "    DomainName: www.example.test\n    DomainValidationOptions:\n"
        "      - {DomainName: www.example.test, HostedZoneId: !Ref Zone}\n"
    )
    assert load(text).extras["acm"]["Cert"].names == ("www.example.test",)


@pytest.mark.parametrize(
    ("arn", "problem"),
    [
        ("arn:aws:acm:us-east-1:123456789012:certificate/abc-1", None),
        ("arn:aws:iam::123456789012:server-certificate/site/www", None),
        ("arn:aws:acm:eu-west-1:123456789012:certificate/abc-1", "an ACM certificate of eu-west-1"),
        ("arn:aws:acm:us-east-1:1234:certificate/abc", "is not a certificate ARN"),
        ("my-certificate", "is not a certificate ARN"),
    ],
)
def test_which_certificate_arns_a_listener_may_use(arn, problem):
    found = certificate_arn_problem(arn, "us-east-1")
    if problem is None:
        assert found is None
    else:
        assert problem in found


# --- testbed cert ---------------------------------------------------------------------------


@pytest.fixture
def fake_lab(lab_dir, monkeypatch):
    from testbed.cli import cert as cert_cli

    inferred = CertificatePlan(
        "arn:aws:acm:us-east-1:123456789012:certificate/given",
        ("web.elb.test", "www.shop.test"),
        INFERRED,
        used_by=("Https",),
    )
    plan = SimpleNamespace(certificates=(ISSUED, inferred))
    certs.issue_all(lab_dir, plan)
    lab = SimpleNamespace(name="c-lab", dir=lab_dir, plan=plan)
    monkeypatch.setattr(cert_cli.Lab, "attach", staticmethod(lambda name: lab))
    return lab


def test_testbed_cert_lists_every_certificate_and_the_ca(fake_lab, capsys):
    from testbed.cli import main

    assert main(["cert", "c-lab"]) == 0
    out = capsys.readouterr().out
    assert "Cert (template)" in out
    assert "names    www.example.test, *.api.example.test, 10.0.1.5" in out
    assert "arn:aws:acm:us-east-1:123456789012:certificate/given (inferred)" in out
    assert "note     names inferred" in out
    assert "CA  CN=ELB Lab Root CA" in out


def test_testbed_cert_one_certificate_as_json_and_the_ca(fake_lab, capsys):
    from testbed.cli import main

    assert main(["cert", "c-lab", "given", "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)["certificates"]
    assert entry["names"] == ["web.elb.test", "www.shop.test"]
    assert entry["used_by"] == ["Https"]
    assert main(["cert", "c-lab", "--ca"]) == 0
    assert capsys.readouterr().out == certs.ca_path(fake_lab.dir).read_text()
    assert main(["cert", "c-lab", "--ca", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["subject"].startswith("CN=ELB Lab Root CA,")


def test_testbed_cert_of_an_unknown_certificate_exits_2(fake_lab, capsys):
    from testbed.cli import main

    assert main(["cert", "c-lab", "Nope"]) == 2
    assert "has no certificate 'Nope' (its certificates: Cert, arn:aws:acm:" in (
        capsys.readouterr().err
    )
