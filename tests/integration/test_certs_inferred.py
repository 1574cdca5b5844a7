"""A certificate the template knows only by its ARN (a parameter, as real templates pass an
existing ACM certificate): the lab's CA issues one for the names the lab can infer — the
ALB's DNS name and the Route53 alias pointing at it — reports it at `up`, and a client in the
lab verifies HTTPS through the ALB by either name.
"""

from __future__ import annotations

import json

import pytest

from testbed.lab import certs
from tests.assertions import run_cli
from tests.lab_tls import lab_of_text

pytestmark = pytest.mark.integration

GIVEN = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-0000-4000-8000-00000000c0de"

TEMPLATE = f"""\
AWSTemplateFormatVersion: "2010-09-09"
Description: An internal ALB whose HTTPS listener names a certificate by ARN only.
Parameters:
  CertificateArn:
    Type: String
    Default: {GIVEN}
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties: {{CidrBlock: 10.41.0.0/16}}
  SubnetA:
    Type: AWS::EC2::Subnet
    Properties:
      VpcId: !Ref Vpc
      CidrBlock: 10.41.1.0/24
      AvailabilityZone: !Select [0, !GetAZs ""]
  SubnetB:
    Type: AWS::EC2::Subnet
    Properties:
      VpcId: !Ref Vpc
      CidrBlock: 10.41.2.0/24
      AvailabilityZone: !Select [1, !GetAZs ""]
  Group:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: HTTP and HTTPS from the VPC
      VpcId: !Ref Vpc
      SecurityGroupIngress:
        - {{IpProtocol: tcp, FromPort: 80, ToPort: 80, CidrIp: 10.41.0.0/16}}
        - {{IpProtocol: tcp, FromPort: 443, ToPort: 443, CidrIp: 10.41.0.0/16}}
  Web:
    Type: AWS::EC2::Instance
    Metadata: {{Lab: {{Role: http-backend}}}}
    Properties: {{SubnetId: !Ref SubnetA, SecurityGroupIds: [!Ref Group]}}
  Client:
    Type: AWS::EC2::Instance
    Metadata: {{Lab: {{Role: none}}}}
    Properties: {{SubnetId: !Ref SubnetB, SecurityGroupIds: [!Ref Group]}}
  Alb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties:
      Type: application
      Scheme: internal
      Subnets: [!Ref SubnetA, !Ref SubnetB]
      SecurityGroups: [!Ref Group]
  Targets:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      Protocol: HTTP
      Port: 80
      VpcId: !Ref Vpc
      HealthCheckIntervalSeconds: 5
      HealthCheckTimeoutSeconds: 4
      HealthyThresholdCount: 2
      Targets: [{{Id: !Ref Web}}]
  HttpsListener:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref Alb
      Protocol: HTTPS
      Port: 443
      Certificates: [{{CertificateArn: !Ref CertificateArn}}]
      DefaultActions: [{{Type: forward, TargetGroupArn: !Ref Targets}}]
  Zone:
    Type: AWS::Route53::HostedZone
    Properties:
      Name: shop.test
      VPCs: [{{VPCId: !Ref Vpc, VPCRegion: !Ref "AWS::Region"}}]
  ShopRecord:
    Type: AWS::Route53::RecordSet
    Properties:
      HostedZoneId: !Ref Zone
      Name: www.shop.test
      Type: A
      AliasTarget: {{DNSName: !GetAtt Alb.DNSName, HostedZoneId: !GetAtt Alb.CanonicalHostedZoneID}}
Outputs:
  AlbDnsName:
    Value: !GetAtt Alb.DNSName
"""


@pytest.fixture(scope="module")
def inferred_lab(tmp_path_factory):
    with lab_of_text(tmp_path_factory, TEMPLATE, "inferred.yaml") as lab:
        lab.wait_for(
            lambda: lab.target_states("Targets").get("Web") == "healthy",
            60,
            "Web healthy in Targets",
            last=lambda: lab.target_states("Targets"),
        )
        yield lab


def test_the_certificate_is_issued_for_the_inferred_names_and_reported(inferred_lab):
    dns = inferred_lab.outputs["AlbDnsName"].lower()
    (cert,) = inferred_lab.plan.certificates
    assert cert.arn == GIVEN
    assert cert.source == "inferred"
    assert cert.names == (dns, "www.shop.test")
    assert cert.used_by == ("HttpsListener",)
    assert certs.read(certs.pem_path(inferred_lab.dir, GIVEN)).names == (dns, "www.shop.test")
    (event,) = [e for e in inferred_lab.events() if e.status == "CERTIFICATE_INFERRED"]
    assert event.logical_id == "HttpsListener"
    assert f"issued it for {dns}, www.shop.test" in event.reason
    shown = run_cli("cert", inferred_lab.name, GIVEN, "--json")
    assert shown.returncode == 0, shown.stderr
    (entry,) = json.loads(shown.stdout)["certificates"]
    assert entry["source"] == "inferred"
    assert "names inferred" in entry["note"]


@pytest.mark.parametrize("name", ["www.shop.test", "dns"])
def test_a_lab_client_verifies_https_through_the_alb(inferred_lab, name):
    host = inferred_lab.outputs["AlbDnsName"] if name == "dns" else name
    done = inferred_lab.host("Client").run(
        [
            "curl",
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            f"https://{host}/",
        ]
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "200"
