"""Certificates on a real lab: the lab's CA issues the template's certificate, and a lab host
verifies a TLS server (another host, serving that certificate) with curl, openssl, Python's
ssl and requests, without -k and without the machine's trust store knowing the lab's CA.

`testbed cert` shows the certificate (subject, names, issuer, validity) and exports the CA.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from testbed.lab import certs
from testbed.lab.api import Lab
from testbed.lab.programs import listening_ports
from tests.assertions import run_cli
from tests.lab_tls import curl_pinned, lab_of_text

pytestmark = pytest.mark.integration

TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Description: Two hosts and a certificate (tests/integration/test_certs.py).
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.40.0.0/16, EnableDnsSupport: true, EnableDnsHostnames: true}
  Subnet:
    Type: AWS::EC2::Subnet
    Properties:
      VpcId: !Ref Vpc
      CidrBlock: 10.40.1.0/24
      AvailabilityZone: !Select [0, !GetAZs ""]
  Group:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: TLS from the VPC
      VpcId: !Ref Vpc
      SecurityGroupIngress:
        - {IpProtocol: tcp, FromPort: 8443, ToPort: 8443, CidrIp: 10.40.0.0/16}
  Server:
    Type: AWS::EC2::Instance
    Metadata: {Lab: {Role: none}}
    Properties: {SubnetId: !Ref Subnet, SecurityGroupIds: [!Ref Group]}
  Client:
    Type: AWS::EC2::Instance
    Metadata: {Lab: {Role: none}}
    Properties: {SubnetId: !Ref Subnet, SecurityGroupIds: [!Ref Group]}
  Zone:
    Type: AWS::Route53::HostedZone
    Properties:
      Name: example.test
      VPCs: [{VPCId: !Ref Vpc, VPCRegion: !Ref "AWS::Region"}]
  WwwRecord:
    Type: AWS::Route53::RecordSet
    Properties:
      HostedZoneId: !Ref Zone
      Name: www.example.test
      Type: A
      TTL: "60"
      ResourceRecords: [!GetAtt Server.PrivateIp]
  SiteCertificate:
    Type: AWS::CertificateManager::Certificate
    Properties:
      DomainName: www.example.test
      SubjectAlternativeNames: ["*.api.example.test"]
      ValidationMethod: DNS
      DomainValidationOptions: [{DomainName: www.example.test, HostedZoneId: !Ref Zone}]
Outputs:
  CertArn:
    Value: !Ref SiteCertificate
"""

# A small HTTPS server: the certificate file holds the certificate, its chain and the key.
SERVER = textwrap.dedent("""\
    import http.server, ssl, sys
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[1])
    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"tls ok\\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 8443), Hello)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()
""")

# A client with nothing but Python's defaults (SSL_CERT_FILE from the host's environment).
PY_CLIENT = textwrap.dedent("""\
    import socket, ssl, sys
    ip, name = sys.argv[1], sys.argv[2]
    context = ssl.create_default_context()
    with socket.create_connection((ip, 8443), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=name) as tls:
            tls.sendall(f"GET / HTTP/1.0\\r\\nHost: {name}\\r\\n\\r\\n".encode())
            reply = b""
            while chunk := tls.recv(4096):
                reply += chunk
            print(reply.decode().split("\\r\\n\\r\\n", 1)[1], end="")
""")

CURL_BAD_CERT = (51, 60)  # peer certificate cannot be authenticated / name mismatch


@pytest.fixture(scope="module")
def cert_lab(tmp_path_factory):
    with lab_of_text(tmp_path_factory, TEMPLATE, "certs.yaml") as lab:
        server = lab.host("Server")
        pem = certs.pem_path(lab.dir, lab.outputs["CertArn"])
        proc = server.popen(
            [sys.executable, "-c", SERVER, str(pem)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            lab.wait_for(
                lambda: 8443 in listening_ports(proc.pid) or proc.poll() is not None,
                20,
                "the TLS server on Server:8443",
            )
            if proc.poll() is not None:
                raise AssertionError(f"the TLS server ended: {proc.stderr.read().decode()}")
            yield lab
        finally:
            proc.terminate()
            proc.wait(10)


def _curl(lab: Lab, name: str, *extra: str) -> tuple[int, str, str]:
    """curl in Client to https://NAME:8443/, the name pinned to Server."""
    ip = lab.host("Server").ip
    url = f"https://{name}:8443/"
    return curl_pinned(lab, "Client", ip, url, "-S", *extra, name=name, ports=(8443,), max_time=10)


def test_the_lab_ca_and_the_certificate_are_issued(cert_lab):
    arn = cert_lab.outputs["CertArn"]
    (planned,) = cert_lab.plan.certificates
    assert planned.arn == arn
    assert planned.source == "template"
    info = certs.read(certs.pem_path(cert_lab.dir, arn))
    assert info.names == ("www.example.test", "*.api.example.test")
    assert certs.ca_path(cert_lab.dir).is_file()
    created = [
        e for e in cert_lab.events() if e.logical_id == "SiteCertificate" and "COMPLETE" in e.status
    ]
    assert created, "no CREATE_COMPLETE for SiteCertificate"
    assert "issued by the lab's CA for www.example.test" in created[-1].reason


@pytest.mark.parametrize("name", ["www.example.test", "v1.api.example.test"])
def test_curl_in_a_lab_host_verifies_the_certificate(cert_lab, name):
    code, out, err = _curl(cert_lab, name)
    assert code == 0, err
    assert out == "tls ok\n"


def test_curl_refuses_a_name_the_certificate_does_not_cover(cert_lab):
    code, _out, err = _curl(cert_lab, "other.example.test")
    assert code in CURL_BAD_CERT, (code, err)


def test_the_machine_trust_store_does_not_know_the_lab_ca(cert_lab):
    code, _out, err = _curl(
        cert_lab, "www.example.test", "--cacert", "/etc/ssl/certs/ca-certificates.crt"
    )
    assert code in CURL_BAD_CERT, (code, err)


def test_openssl_verifies_the_chain(cert_lab):
    ip = cert_lab.host("Server").ip
    done = cert_lab.host("Client").run(
        "openssl s_client -connect "
        f"{ip}:8443 -servername www.example.test -verify_return_error "
        "-verify_hostname www.example.test -brief </dev/null"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Verification: OK" in done.stdout + done.stderr


def test_python_in_a_lab_host_verifies_the_certificate(cert_lab):
    ip = cert_lab.host("Server").ip
    done = cert_lab.host("Client").run([sys.executable, "-c", PY_CLIENT, ip, "www.example.test"])
    assert done.returncode == 0, done.stderr
    assert done.stdout == "tls ok\n"


def test_requests_resolves_and_verifies_through_the_lab(cert_lab):
    """The name comes from the lab's resolver (the Route53 record), the trust from
    REQUESTS_CA_BUNDLE."""
    code = "import requests; print(requests.get('https://www.example.test:8443/', timeout=10).text)"
    done = cert_lab.host("Client").run([sys.executable, "-c", code])
    assert done.returncode == 0, done.stderr
    assert done.stdout == "tls ok\n\n"


def test_testbed_cert_shows_the_certificate_and_exports_the_ca(cert_lab):
    arn = cert_lab.outputs["CertArn"]
    shown = run_cli("cert", cert_lab.name)
    assert shown.returncode == 0, shown.stderr
    for text in (
        "SiteCertificate (template)",
        f"arn      {arn}",
        "subject  CN=www.example.test",
        "names    www.example.test, *.api.example.test",
        "issuer   CN=ELB Lab Server CA 1",
        "CA  CN=ELB Lab Root CA",
    ):
        assert text in shown.stdout, shown.stdout
    one = run_cli("cert", cert_lab.name, "SiteCertificate", "--json")
    assert one.returncode == 0, one.stderr
    (entry,) = json.loads(one.stdout)["certificates"]
    assert entry["arn"] == arn
    assert entry["names"] == ["www.example.test", "*.api.example.test"]
    assert entry["not_after"] > entry["not_before"]
    ca = run_cli("cert", cert_lab.name, "--ca")
    assert ca.returncode == 0, ca.stderr
    assert ca.stdout == certs.ca_path(cert_lab.dir).read_text()
    # The exported CA is all a client outside the lab's hosts needs: verify the file with it.
    exported = Path(cert_lab.dir) / "exported-ca.pem"
    exported.write_text(ca.stdout)
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(exported), "-untrusted"]
        + [str(certs.pem_path(cert_lab.dir, arn))] * 2,
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_testbed_cert_of_an_unknown_certificate_is_bad_input(cert_lab):
    done = run_cli("cert", cert_lab.name, "NoSuchCert")
    assert done.returncode == 2
    assert "has no certificate 'NoSuchCert' (its certificates: SiteCertificate)" in done.stderr
