"""A TLS listener's certificates against the names that lead to its load balancer
(testbed.model.certificate_names, issue 16): none covered is an error naming the listener's
line, the certificates and the names; some not covered is a warning; no Route53 name, or a
certificate the lab infers from an ARN, is nothing to check. No root, no lab."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.cli import main
from testbed.errors import BadInput
from testbed.model import load_model_text
from testbed.model.certificate_names import covers, name_errors, name_warnings
from tests.unit.conftest import line_with

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
ALB = (TEMPLATES / "alb-https.yaml").read_text()
CLB = (TEMPLATES / "classic-https.yaml").read_text()
NLB = (TEMPLATES / "nlb-tls.yaml").read_text()

# alb-https.yaml: www.example.test and api.example.test lead to the ALB; WwwCertificate is
# the HTTPS listener's default certificate, ApiCertificate (api, *.api) its ListenerCertificate.
WWW = ("DomainName: www.example.test, Valid", "DomainName: shop.example.test, Valid")
API = (
    'DomainName: api.example.test\n      SubjectAlternativeNames: ["*.api.example.test"]',
    'DomainName: api.other.test\n      SubjectAlternativeNames: ["*.example.test.other"]',
)


def model(text: str, filename: str = "alb-https.yaml"):
    return load_model_text(text, filename=filename, stack_name="t")


def changed(text: str, *changes: tuple[str, str]) -> str:
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize(
    ("pattern", "name", "match"),
    [
        ("www.example.test", "www.example.test", True),
        ("WWW.Example.Test", "www.example.test.", True),
        ("www.example.test", "api.example.test", False),
        ("*.example.test", "www.example.test", True),
        ("*.example.test", "example.test", False),  # a wildcard is one label, not none
        ("*.example.test", "a.b.example.test", False),  # ... nor two
        ("*.api.example.test", "v1.api.example.test", True),
        ("*.api.example.test", "api.example.test", False),
        ("example.test", "www.example.test", False),
        ("*.example.test", ".example.test", False),
    ],
)
def test_names_match_as_tls_clients_match_them(pattern, name, match):
    assert covers(pattern, name) is match


def test_the_example_template_covers_every_name():
    m = model(ALB)
    assert name_errors(m) == []
    assert name_warnings(m) == []


def test_a_certificate_for_other_names_is_an_error_naming_listener_certificate_and_names():
    text = changed(ALB, WWW, API)
    with pytest.raises(BadInput) as info:
        model(text)
    err = info.value
    assert err.logical_id == "HttpsListener"
    assert err.line == line_with(text, "HttpsListener:")
    shown = str(err)
    assert shown.startswith(f"alb-https.yaml:{err.line}: HttpsListener: "), shown
    for words in (
        "WwwCertificate (shop.example.test)",
        "ApiCertificate (api.other.test, *.example.test.other)",
        "cover none of the names that lead to load balancer Alb "
        "(www.example.test, api.example.test)",
        "ListenerCertificate",  # the hint
    ):
        assert words in shown, shown


def test_some_names_not_covered_is_a_warning_not_an_error():
    m = model(changed(ALB, WWW))  # api.example.test is still covered by ApiCertificate
    assert name_errors(m) == []
    ((resource, text),) = name_warnings(m)
    assert resource == "HttpsListener"
    line = line_with(ALB, "HttpsListener:")
    assert text == (
        f"warning: listener HttpsListener (alb-https.yaml:{line}): certificates WwwCertificate "
        "(shop.example.test), ApiCertificate (api.example.test, *.api.example.test) do not "
        "cover www.example.test, which leads to load balancer Alb: clients that use it fail "
        "to verify it"
    )


def test_a_wildcard_certificate_covers_records_one_label_down():
    text = changed(
        ALB,
        ("DomainName: www.example.test, Valid", "DomainName: '*.example.test', Valid"),
        API,
    )
    m = model(text)
    assert name_errors(m) == []
    assert name_warnings(m) == []


def test_names_followed_through_a_chain_of_records():
    chain = (
        "\n  ShopRecord:\n    Type: AWS::Route53::RecordSet\n    Properties:\n"
        "      HostedZoneId: !Ref Zone\n      Name: shop.example.test\n      Type: CNAME\n"
        "      TTL: 60\n      ResourceRecords: [www.example.test]\n"
    )
    text = changed(ALB, ("\n  Client:\n", chain + "\n  Client:\n"))
    ((_, warning),) = name_warnings(model(text))
    assert "do not cover shop.example.test, which leads" in warning, warning


def test_no_record_leading_to_the_load_balancer_is_nothing_to_check():
    start, end = ALB.index("  WwwRecord:"), ALB.index("  Client:")
    text = changed(ALB[:start] + ALB[end:], WWW, API)
    m = model(text)
    assert name_errors(m) == []
    assert name_warnings(m) == []


def test_a_certificate_given_by_its_arn_is_issued_for_the_names_and_not_checked():
    arn = "arn:aws:acm:us-east-1:123456789012:certificate/0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
    text = changed(
        ALB,
        WWW,
        API,
        (
            "Certificates: [{CertificateArn: !Ref WwwCertificate}]",
            f"Certificates: [{{CertificateArn: {arn}}}]",
        ),
    )
    m = model(text)
    assert name_errors(m) == []
    assert name_warnings(m) == []


def test_an_nlb_tls_listener_is_checked_too():
    text = changed(
        NLB,
        ("{DomainName: www.example.test, Valid", "{DomainName: elsewhere.test, Valid"),
    )
    with pytest.raises(BadInput) as info:
        model(text, "nlb-tls.yaml")
    shown = str(info.value)
    assert "certificate WwwCertificate (elsewhere.test) covers none" in shown, shown


CLB_NAMES = """
  ShopCertificate:
    Type: AWS::CertificateManager::Certificate
    Properties: {DomainName: other.test}
  Zone:
    Type: AWS::Route53::HostedZone
    Properties: {Name: shop.test}
  ShopRecord:
    Type: AWS::Route53::RecordSet
    Properties:
      HostedZoneId: !Ref Zone
      Name: www.shop.test
      Type: A
      AliasTarget:
        DNSName: !GetAtt SecureCLB.DNSName
        HostedZoneId: !GetAtt SecureCLB.CanonicalHostedZoneNameID
"""


def clb_text() -> str:
    first = (
        "          Protocol: HTTPS\n          InstanceProtocol: HTTP\n"
        "          SSLCertificateId: !Ref CertificateArn"
    )
    return changed(
        CLB,
        (first, first.replace("!Ref CertificateArn", "!Ref ShopCertificate")),
        ("\n  Client1:\n", CLB_NAMES + "\n  Client1:\n"),
    )


def test_a_clb_listener_is_named_by_its_port_under_its_load_balancer():
    text = clb_text()
    with pytest.raises(BadInput) as info:
        model(text, "classic-https.yaml")
    err = info.value
    assert err.logical_id == "SecureCLB"
    assert err.line == line_with(text, '- LoadBalancerPort: "443"')
    shown = str(err)
    assert (
        "the HTTPS listener on port 443: certificate ShopCertificate (other.test) covers none "
        "of the names that lead to load balancer SecureCLB (www.shop.test)"
    ) in shown, shown
    assert "SSLCertificateId" in shown, shown  # the hint


def test_validate_exits_2_with_the_error_and_prints_the_warning(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(changed(ALB, WWW, API))
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:{line_with(ALB, 'HttpsListener:')}: HttpsListener: certificates" in err, err
    partial = tmp_path / "partial.yaml"
    partial.write_text(changed(ALB, WWW))
    assert main(["validate", str(partial)]) == 0
    out = capsys.readouterr().out
    assert "warning: listener HttpsListener" in out, out
    assert "do not cover www.example.test" in out, out
