"""Classic Load Balancer HTTPS and SSL listeners on a real lab (issue 16), from
templates/classic-https.yaml: a certificate given as an ARN (the lab issues one for the load
balancer's DNS name from its CA), HTTPS:443 -> HTTP (ELBSecurityPolicy-TLS-1-2-2017-01),
HTTPS:4443 -> HTTP (a custom policy: TLS 1.2, two AES-256 ciphers), SSL:8443 -> TCP (the
default policy, the PROXY protocol to the instance), and end to end HTTPS:9443 -> HTTPS:443,
SSL:9444 -> SSL:443 (the http-backend instances serve HTTPS on 443; `tls` in their answer says
what the node negotiated with them).

Every request is made by the internet client with curl, by the load balancer's DNS name,
verifying the certificate against the lab CA (no -k). Bad input: `testbed validate`, exit 2.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from testbed.lab import certs
from testbed.lab.api import Lab
from tests.assertions import run_cli

pytestmark = pytest.mark.integration

TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "classic-https.yaml"
LB = "SecureCLB"
CLIENT = "Client1"
UP_S = 60  # both instances InService: two 5 s checks, plus a busy machine's slack
# curl: ask for TLS 1.0 only (and the ciphers OpenSSL 3 keeps for it at security level 0).
TLS10_ONLY = ["--tlsv1.0", "--tls-max", "1.0", "--ciphers", "DEFAULT:@SECLEVEL=0"]


@pytest.fixture(scope="module")
def lab():
    with Lab.up(str(TEMPLATE)) as lab:
        lab.wait_in_service(LB, 2, UP_S)
        yield lab


def curl(lab: Lab, url: str, *extra: str) -> subprocess.CompletedProcess:
    return lab.host(CLIENT).run(["curl", "-sS", "-v", "--max-time", "10", *extra, url], timeout=30)


def seen(lab: Lab, port: int, *extra: str) -> dict[str, Any]:
    """What the instance that answered saw (its JSON), through listener `port` by name."""
    done = curl(lab, f"https://{lab.outputs['ClbDnsName']}:{port}/", *extra)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def negotiated(done: subprocess.CompletedProcess) -> tuple[str, str]:
    """(TLS version, cipher) from curl -v."""
    found = re.search(r"SSL connection using (\S+) / (\S+)", done.stderr)
    assert found, done.stderr
    return found.group(1), found.group(2)


def client_ip(lab: Lab) -> str:
    return lab.host(CLIENT).ip


def test_the_certificate_is_for_the_load_balancers_name(lab):
    dns = lab.outputs["ClbDnsName"]
    (planned,) = lab.plan.certificates
    assert planned.source == "inferred"
    assert planned.names == (dns.lower(),)
    info = certs.read(certs.pem_path(lab.dir, planned.arn))
    assert info.names == (dns.lower(),)


def test_https_listener_ends_tls_and_forwards_https(lab):
    got = seen(lab, 443)
    assert got["instance"] in ("WebA", "WebB")
    assert got["forwarded"] == {
        "x-forwarded-for": client_ip(lab),
        "x-forwarded-proto": "https",
        "x-forwarded-port": "443",
    }
    assert got["proxy"] is None  # an HTTPS listener adds headers, not a PROXY line
    assert got["tls"] is None  # TLS ended at the node: plain HTTP to the instance
    done = curl(lab, f"https://{lab.outputs['ClbDnsName']}/")
    assert negotiated(done)[0] == "TLSv1.2"  # the policy's only version (a CLB has no 1.3)


def test_a_tls10_client_is_refused_by_tls12_policy_and_served_by_the_default(lab):
    dns = lab.outputs["ClbDnsName"]
    refused = curl(lab, f"https://{dns}:443/", *TLS10_ONLY)
    assert refused.returncode != 0, refused.stdout
    # The SSL listener has the default policy (ELBSecurityPolicy-2016-08): TLS 1.0 is in it.
    got = seen(lab, 8443, *TLS10_ONLY)
    assert got["instance"] in ("WebA", "WebB")
    assert negotiated(curl(lab, f"https://{dns}:8443/", *TLS10_ONLY))[0] == "TLSv1"


def test_ssl_listener_sends_the_proxy_line_and_no_headers(lab):
    got = seen(lab, 8443)
    proxy = got["proxy"]
    assert (proxy["version"], proxy["protocol"]) == (1, "TCP4")
    assert proxy["source_ip"] == client_ip(lab)
    assert proxy["destination_port"] == 8443
    assert got["forwarded"] == {}  # layer 4: the request reaches the instance as sent


def test_end_to_end_listeners_speak_tls_to_the_instances(lab):
    got = seen(lab, 9443)
    assert got["instance"] in ("WebA", "WebB")
    assert got["tls"] is not None  # the node re-encrypted (its certificate not checked)
    assert got["forwarded"]["x-forwarded-proto"] == "https"
    assert got["forwarded"]["x-forwarded-port"] == "9443"
    got = seen(lab, 9444)
    assert got["tls"] is not None
    assert got["forwarded"] == {}  # SSL: layer 4, the request as the client sent it
    assert got["proxy"] is None  # no PROXY line on back-end SSL


def test_the_https_health_check_passes_over_tls(lab):
    # The template's HealthCheck is HTTPS:443/health: both instances went InService (the
    # fixture waited for it), and the checks reached the instances' HTTPS server.
    rows = {r["Host"]: r for r in lab.instance_health(LB)}
    assert {h: r["State"] for h, r in rows.items()} == {"WebA": "InService", "WebB": "InService"}


def test_custom_policy_decides_the_cipher(lab):
    dns = lab.outputs["ClbDnsName"]
    done = curl(lab, f"https://{dns}:4443/")
    assert done.returncode == 0, done.stderr
    assert negotiated(done) == ("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384")  # the RSA one
    # A client offering only a cipher the policy leaves out is refused.
    other = curl(lab, f"https://{dns}:4443/", "--tls-max", "1.2", "--ciphers", "AES128-SHA")
    assert other.returncode != 0, other.stdout


def test_bad_tls_listeners_exit_2_with_every_error(tmp_path):
    bad = TEMPLATE.read_text()
    bad = bad.replace(
        "          SSLCertificateId: !Ref CertificateArn\n          PolicyNames: [Tls12Only]\n",
        "          PolicyNames: [Tls12Only]\n",
    )
    bad = bad.replace("ELBSecurityPolicy-TLS-1-2-2017-01}", "ELBSecurityPolicy-TLS13-1-2-2021-06}")
    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    done = run_cli("validate", str(path), timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = bad.splitlines()
    cert_line = next(i for i, x in enumerate(lines, 1) if 'LoadBalancerPort: "443"' in x)
    policy_line = next(i for i, x in enumerate(lines, 1) if "TLS13-1-2-2021-06" in x)
    err = done.stderr
    assert f"bad.yaml:{cert_line}:" in err, err
    assert "an HTTPS listener needs SSLCertificateId" in err, err
    assert f"bad.yaml:{policy_line}:" in err, err
    assert "is a policy of application and network load balancers" in err, err
