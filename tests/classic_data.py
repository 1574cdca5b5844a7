"""Classic Load Balancer stacks for the lab tests (tests/integration/test_classic_*.py).

clb_template(): one lab, four CLBs over the same http-backend instances, each showing what
one CLB setting does (a CLB has one health check, one cross-zone and one draining setting):

  MyCLB     both AZs, cross-zone off (the default), HTTP:80/health, draining 8 s, access log;
            listeners 80 HTTP, 81 HTTP + AWSELB cookie, 82 HTTP + app cookie, 8080 TCP.
            Instances WebA1, WebA2 (AZ a), WebB1 (AZ b).
  ZoneCLB   both AZs, CrossZone true, TCP:80, draining off (the default); listeners 80 HTTP
            and 8080 TCP, a ProxyProtocolPolicyType policy on instance port 80 (only the TCP
            listener sends the PROXY header). Instances WebA1, WebB1 (a test registers WebB2).
  PathCLB   AZ a only, HTTP:80/health?status=404 (a path that answers 404: never InService),
            listener 80 HTTP. Instances WebA1, and WebB2 whose AZ the CLB does not enable.
  SslCLB    AZ b only, SSL:80 (nothing serves TLS: never InService), listener 80 TCP.
            Instance WebB1.

asg_template(): an Auto Scaling group whose LoadBalancerNames name a CLB.
ERRORS_TEMPLATE: one template with several bad CLBs, each error on a known line.
"""

from __future__ import annotations

from typing import Any

import yaml

from testbed.experiments.stacks import ref, two_az_vpc

LB = "MyCLB"
LB_NAME = "lab-clb"  # MyCLB's LoadBalancerName: its Ref, and the start of its DNS name
ZONE_LB = "ZoneCLB"
PATH_LB = "PathCLB"
SSL_LB = "SslCLB"
CLB_GROUP = "ClbSecurityGroup"
INSTANCES = ("WebA1", "WebA2", "WebB1", "WebB2")
MEMBERS = {
    LB: ["WebA1", "WebA2", "WebB1"],
    ZONE_LB: ["WebA1", "WebB1"],
    PATH_LB: ["WebA1", "WebB2"],
    SSL_LB: ["WebB1"],
}
# Listener ports of MyCLB.
HTTP_PORT, LB_COOKIE_PORT, APP_COOKIE_PORT, TCP_PORT = 80, 81, 82, 8080
APP_COOKIE = "SESSIONID"
DRAIN_S = 8  # MyCLB's ConnectionDrainingPolicy.Timeout
INTERVAL_S, TIMEOUT_S, THRESHOLD = 5, 2, 2  # every CLB's HealthCheck here
# Detection: THRESHOLD checks INTERVAL_S apart, plus scheduling slack on a busy machine.
DETECT_S = INTERVAL_S * THRESHOLD + 8
CLIENT_IP = "198.51.100.10"  # Client1
CLIENT2_IP = "198.51.100.11"  # Client2
LISTENER_PORTS = (HTTP_PORT, LB_COOKIE_PORT, APP_COOKIE_PORT, TCP_PORT)


def _health(target: str) -> dict[str, Any]:
    return {
        "Target": target,
        "Interval": str(INTERVAL_S),
        "Timeout": str(TIMEOUT_S),
        "HealthyThreshold": str(THRESHOLD),
        "UnhealthyThreshold": str(THRESHOLD),
    }


def _listener(port: int, protocol: str, instance_port: int = 80, **more: Any) -> dict[str, Any]:
    return {
        "LoadBalancerPort": str(port),
        "InstancePort": str(instance_port),
        "Protocol": protocol,
        "InstanceProtocol": protocol,
        **more,
    }


def _clb(subnets: list[str], members: list[str], **props: Any) -> dict[str, Any]:
    return {
        "Type": "AWS::ElasticLoadBalancing::LoadBalancer",
        "Properties": {
            "Scheme": "internet-facing",
            "Subnets": [ref(s) for s in subnets],
            "SecurityGroups": [ref(CLB_GROUP)],
            "Instances": [ref(m) for m in members],
            **props,
        },
    }


def clb_group() -> dict[str, Any]:
    """The CLBs' security group: every listener port from anywhere (without one, a CLB in a
    VPC is in the VPC's default group, which admits only its own members)."""
    return {
        "Type": "AWS::EC2::SecurityGroup",
        "Properties": {
            "GroupDescription": "CLB listeners from anywhere",
            "VpcId": ref("VPC"),
            "SecurityGroupIngress": [
                {"IpProtocol": "tcp", "FromPort": p, "ToPort": p, "CidrIp": "0.0.0.0/0"}
                for p in LISTENER_PORTS
            ],
        },
    }


def clb_template() -> str:
    """The four-CLB stack (YAML) described in this module's docstring."""
    res = two_az_vpc()
    for name in INSTANCES:
        res[name] = {
            "Type": "AWS::EC2::Instance",
            "Metadata": {"Lab": {"Role": "http-backend"}},
            "Properties": {
                "SubnetId": ref(f"PrivateSubnet{name[-2]}"),
                "SecurityGroupIds": [ref("InstanceSecurityGroup")],
            },
        }
    res[CLB_GROUP] = clb_group()
    res[LB] = _clb(
        ["PublicSubnetA", "PublicSubnetB"],
        MEMBERS[LB],
        LoadBalancerName=LB_NAME,
        Listeners=[
            _listener(HTTP_PORT, "HTTP"),
            _listener(LB_COOKIE_PORT, "HTTP", PolicyNames=["LbSticky"]),
            _listener(APP_COOKIE_PORT, "HTTP", PolicyNames=["AppSticky"]),
            _listener(TCP_PORT, "TCP"),
        ],
        HealthCheck=_health("HTTP:80/health"),
        ConnectionDrainingPolicy={"Enabled": True, "Timeout": DRAIN_S},
        LBCookieStickinessPolicy=[{"PolicyName": "LbSticky", "CookieExpirationPeriod": "300"}],
        AppCookieStickinessPolicy=[{"PolicyName": "AppSticky", "CookieName": APP_COOKIE}],
        AccessLoggingPolicy={"Enabled": True, "S3BucketName": "lab-clb-logs", "EmitInterval": 5},
    )
    res[ZONE_LB] = _clb(
        ["PublicSubnetA", "PublicSubnetB"],
        MEMBERS[ZONE_LB],
        CrossZone=True,
        Listeners=[_listener(HTTP_PORT, "HTTP"), _listener(TCP_PORT, "TCP")],
        HealthCheck=_health("TCP:80"),
        Policies=[
            {
                "PolicyName": "EnableProxyProtocol",
                "PolicyType": "ProxyProtocolPolicyType",
                "Attributes": [{"Name": "ProxyProtocol", "Value": "true"}],
                "InstancePorts": ["80"],
            }
        ],
    )
    res[PATH_LB] = _clb(
        ["PublicSubnetA"],
        MEMBERS[PATH_LB],
        Listeners=[_listener(HTTP_PORT, "HTTP")],
        HealthCheck=_health("HTTP:80/health?status=404"),
    )
    res[SSL_LB] = _clb(
        ["PublicSubnetB"],
        MEMBERS[SSL_LB],
        Listeners=[_listener(HTTP_PORT, "TCP")],
        HealthCheck=_health("SSL:80"),
    )
    res["Client1"] = {"Type": "Lab::Internet::Client"}
    res["Client2"] = {"Type": "Lab::Internet::Client"}
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "Classic Load Balancer test stack (tests/classic_data.py)",
        "Resources": res,
        "Outputs": {
            "DnsName": {"Value": {"Fn::GetAtt": [LB, "DNSName"]}},
            "ClbName": {"Value": ref(LB)},
            "ZoneDnsName": {"Value": {"Fn::GetAtt": [ZONE_LB, "DNSName"]}},
        },
    }
    return yaml.safe_dump(template, sort_keys=False, width=100, default_flow_style=None)


# ---- Auto Scaling ---------------------------------------------------------------------------
GROUP = "WebGroup"


def asg_template(desired: int = 2) -> str:
    """A CLB (HTTP 80, HTTP:80/health, draining off) in front of an Auto Scaling group that
    names it in LoadBalancerNames (no Instances of its own): the group's instances are its
    only ones."""
    res = two_az_vpc()
    res[CLB_GROUP] = clb_group()
    res[LB] = _clb(
        ["PublicSubnetA", "PublicSubnetB"],
        [],
        Listeners=[_listener(HTTP_PORT, "HTTP")],
        HealthCheck=_health("HTTP:80/health"),
    )
    del res[LB]["Properties"]["Instances"]
    res["WebLaunchTemplate"] = {
        "Type": "AWS::EC2::LaunchTemplate",
        "Metadata": {"Lab": {"Role": "http-backend"}},
        "Properties": {
            "LaunchTemplateData": {
                "ImageId": "ami-0123456789abcdef0",
                "InstanceType": "t3.micro",
                "SecurityGroupIds": [ref("InstanceSecurityGroup")],
            }
        },
    }
    res[GROUP] = {
        "Type": "AWS::AutoScaling::AutoScalingGroup",
        "Properties": {
            "MinSize": "0",
            "MaxSize": "4",
            "DesiredCapacity": str(desired),
            "VPCZoneIdentifier": [ref("PrivateSubnetA"), ref("PrivateSubnetB")],
            "LaunchTemplate": {
                "LaunchTemplateId": ref("WebLaunchTemplate"),
                "Version": {"Fn::GetAtt": ["WebLaunchTemplate", "LatestVersionNumber"]},
            },
            "LoadBalancerNames": [ref(LB)],
            "HealthCheckType": "ELB",
            "HealthCheckGracePeriod": 60,
        },
    }
    res["Client1"] = {"Type": "Lab::Internet::Client"}
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "CLB + Auto Scaling test stack (tests/classic_data.py)",
        "Resources": res,
        "Outputs": {"DnsName": {"Value": {"Fn::GetAtt": [LB, "DNSName"]}}},
    }
    return yaml.safe_dump(template, sort_keys=False, width=100, default_flow_style=None)


# ---- bad input ------------------------------------------------------------------------------
# Each CLB below but GoodCLB has one mistake (all are internal: the subnet has no route to
# the internet); `testbed validate` and `up` must report them all in one run, each as
# FILE:LINE: RESOURCE: message. ERRORS says where each one is.
ERRORS_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Description: Classic Load Balancers with one mistake each (tests/classic_data.py)
Resources:
  VPC:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.0.0.0/16}
  SubnetA:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref VPC, CidrBlock: 10.0.0.0/24, AvailabilityZone: us-east-1a}
  Web:
    Type: AWS::EC2::Instance
    Properties: {SubnetId: !Ref SubnetA}
  GoodCLB:
    Type: AWS::ElasticLoadBalancing::LoadBalancer
    Properties:
      Scheme: internal
      Subnets: [!Ref SubnetA]
      Instances: [!Ref Web]
      Listeners:
        - {LoadBalancerPort: 80, InstancePort: 80, Protocol: HTTP}
      HealthCheck: {Target: "HTTP:80/health", Interval: 5, Timeout: 2,
                    HealthyThreshold: 2, UnhealthyThreshold: 2}
  PortCLB:
    Type: AWS::ElasticLoadBalancing::LoadBalancer
    Properties:
      Scheme: internal
      Subnets: [!Ref SubnetA]
      Listeners:
        - LoadBalancerPort: 80
          InstancePort: 70000
          Protocol: HTTP
  ZeroPortCLB:
    Type: AWS::ElasticLoadBalancing::LoadBalancer
    Properties:
      Scheme: internal
      Subnets: [!Ref SubnetA]
      Listeners:
        - LoadBalancerPort: 80
          InstancePort: 0
          Protocol: TCP
  DuplicateCLB:
    Type: AWS::ElasticLoadBalancing::LoadBalancer
    Properties:
      Scheme: internal
      Subnets: [!Ref SubnetA]
      Listeners:
        - LoadBalancerPort: 80
          InstancePort: 80
          Protocol: HTTP
        - LoadBalancerPort: 80
          InstancePort: 8080
          Protocol: TCP
  TargetCLB:
    Type: AWS::ElasticLoadBalancing::LoadBalancer
    Properties:
      Scheme: internal
      Subnets: [!Ref SubnetA]
      Listeners:
        - {LoadBalancerPort: 80, InstancePort: 80, Protocol: HTTP}
      HealthCheck:
        Target: HTTP80/health
        Interval: 5
        Timeout: 2
        HealthyThreshold: 2
        UnhealthyThreshold: 2
  BothCLB:
    Type: AWS::ElasticLoadBalancing::LoadBalancer
    Properties:
      Scheme: internal
      Subnets: [!Ref SubnetA]
      AvailabilityZones: [us-east-1a]
      Listeners:
        - {LoadBalancerPort: 80, InstancePort: 80, Protocol: HTTP}
  HttpsCLB:
    Type: AWS::ElasticLoadBalancing::LoadBalancer
    Properties:
      Scheme: internal
      Subnets: [!Ref SubnetA]
      Listeners:
        - LoadBalancerPort: 443
          InstancePort: 80
          Protocol: HTTPS
"""
# (resource, text of the line the error names (or any of several), words of the message)
ERRORS = (
    ("PortCLB", ("InstancePort: 70000",), ("InstancePort", "70000")),
    ("ZeroPortCLB", ("InstancePort: 0",), ("InstancePort",)),
    ("DuplicateCLB", ("- LoadBalancerPort: 80",), ("LoadBalancerPort", "80")),
    ("TargetCLB", ("Target: HTTP80/health",), ("Target", "HTTP80/health")),
    ("BothCLB", ("Subnets:", "AvailabilityZones:"), ("Subnets", "AvailabilityZones")),
    ("HttpsCLB", ("- LoadBalancerPort: 443",), ("HTTPS", "SSLCertificateId")),
)


def error_lines(resource: str, texts: tuple[str, ...], text: str = ERRORS_TEMPLATE) -> set[int]:
    """Lines (1-based) of ERRORS_TEMPLATE where an error of `resource` may point: for each
    of `texts`, its last occurrence inside the resource's block (the second listener's port
    of DuplicateCLB)."""
    lines = text.splitlines()
    start = lines.index(f"  {resource}:")
    end = next(
        (
            i
            for i in range(start + 1, len(lines))
            if lines[i].startswith("  ") and lines[i][2] != " "
        ),
        len(lines),
    )
    found = set()
    for needle in texts:
        hits = [i + 1 for i in range(start, end) if needle in lines[i]]
        assert hits, (resource, needle)
        found.add(hits[-1])
    return found
