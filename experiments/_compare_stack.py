"""The compare experiment's stack: a CLB, an ALB and an NLB in front of the same instances.

Private to testbed.experiments.compare (see its module doc for what is measured). Every load
balancer keeps AWS's defaults where the comparison is about them: no HealthCheck* anywhere
(CLB: TCP:80 every 30 s, 10 up / 2 down; ALB: HTTP / every 30 s, 5 / 2; NLB: TCP every 30 s,
5 / 2), no CrossZone on the CLB (off through CloudFormation), no draining on ClassicLB (off
through CloudFormation), AWS's 300 s deregistration delay on the ALB and NLB groups.
Metadata.Lab.TimeScale compresses every one of those times by the same factor.
"""

from __future__ import annotations

from typing import Any

import yaml

from testbed.experiments.stacks import AZ_LETTERS, INSTANCE_GROUP, ref, two_az_vpc
from testbed.model.elb_defaults import CLASSIC_LB_COOKIE

CLB = "ClassicLB"  # the CLB with AWS's defaults (its group has the same name)
DRAIN_CLB = "DrainCLB"  # the same CLB with ConnectionDrainingPolicy Enabled (300 s)
ALB = "MyALB"
ALB_GROUP = "AlbTargets"
NLB = "MyNLB"
NLB_GROUP = "NlbTargets"
NLB_IPERF_GROUP = "NlbIperf"
CLB_GROUP = "CompareLbGroup"  # the CLBs' and the ALB's security group
VPC_CLIENT = "VpcClient"  # a client in the VPC (public subnet A): direct path and benches
INTERNET_CLIENTS = ("Client1", "Client2")
SPARE = "WebB3"  # registered only for the cross-zone phase (AZ-a 1 target, AZ-b 3)
BACKENDS = ("WebA1", "WebA2", "WebB1", "WebB2")  # registered from the start, 2 per AZ
HTTP_PORT = 80
TCP_PORT = 81  # CLB TCP:81 -> TCP:80 (HTTP carried at layer 4), no PROXY header
PROXY_PORT = 9000  # CLB TCP:9000 -> TCP:9000 with the ProxyProtocolPolicyType policy
SOLO = "WebA1"  # the direct path's backend; the benches run with it alone registered
# CLB TCP:5201 -> 5201 and NLB TCP:5201 -> SOLO alone: iperf3 (its control and data
# connections must meet one server) on SOLO; the ALB cannot carry it.
IPERF_PORT = 5201
STICKY_POLICY = "StickyCookie"
STICKY_EXPIRATION_S = 600

# The load balancer groups every experiment target is in, by load balancer.
GROUPS = {CLB: CLB, DRAIN_CLB: DRAIN_CLB, ALB: ALB_GROUP, NLB: NLB_GROUP}
VICTIM_DRAIN = "WebA2"
VICTIM_FAIL = "WebB1"
# The paths (ways to the instances) and what they are; `port` on the AZ-a node's address.
PATHS: list[dict[str, Any]] = [
    {"path": "direct", "lb": "", "lb_type": "none", "layer": "-", "listener": "WebA1:80",
     "port": HTTP_PORT},
    {"path": "clb-http", "lb": CLB, "lb_type": "classic", "layer": "7",
     "listener": "HTTP:80 -> HTTP:80", "port": HTTP_PORT, "zones": True, "draining": True},
    {"path": "clb-tcp", "lb": CLB, "lb_type": "classic", "layer": "4",
     "listener": "TCP:81 -> TCP:80", "port": TCP_PORT},
    {"path": "clb-proxy", "lb": CLB, "lb_type": "classic", "layer": "4",
     "listener": "TCP:9000 -> TCP:9000, ProxyProtocolPolicyType", "port": PROXY_PORT,
     "mode": "tcp"},
    {"path": "clb-drain", "lb": DRAIN_CLB, "lb_type": "classic", "layer": "7",
     "listener": "HTTP:80 -> HTTP:80, ConnectionDrainingPolicy on", "port": HTTP_PORT,
     "draining": True},
    {"path": "alb", "lb": ALB, "lb_type": "application", "layer": "7", "listener": "HTTP:80",
     "port": HTTP_PORT, "zones": True, "draining": True},
    {"path": "nlb", "lb": NLB, "lb_type": "network", "layer": "4", "listener": "TCP:80",
     "port": HTTP_PORT, "zones": True, "draining": True},
]  # fmt: skip
BY_NAME = {p["path"]: p for p in PATHS}
BENCH_PATHS = ("direct", "clb-http", "clb-tcp", "alb", "nlb")
SEEN_PATHS = ("direct", "clb-http", "clb-tcp", "clb-proxy", "alb", "nlb")
FAILOVER_PATHS = ("clb-http", "clb-tcp", "clb-drain", "alb", "nlb")
STICKY = {"clb-http": CLASSIC_LB_COOKIE, "alb": "AWSALB"}


def _instance(letter: str) -> dict[str, Any]:
    return {
        "Type": "AWS::EC2::Instance",
        "Metadata": {"Lab": {"Role": "http-backend"}},
        "Properties": {
            "SubnetId": ref(f"PrivateSubnet{letter}"),
            "SecurityGroupIds": [ref(INSTANCE_GROUP)],
            "InstanceType": "t3.micro",
        },
    }


def _clb_listener(port: int, instance_port: int, protocol: str) -> dict[str, Any]:
    return {
        "LoadBalancerPort": str(port),
        "InstancePort": str(instance_port),
        "Protocol": protocol,
        "InstanceProtocol": protocol,
    }


def _clbs() -> dict[str, Any]:
    subnets = [ref(f"PublicSubnet{letter}") for letter in AZ_LETTERS]
    instances = [ref(i) for i in BACKENDS]
    http = _clb_listener(HTTP_PORT, HTTP_PORT, "HTTP")
    http["PolicyNames"] = [STICKY_POLICY]
    classic = {
        "Type": "AWS::ElasticLoadBalancing::LoadBalancer",
        "Properties": {
            "Scheme": "internet-facing",
            "Subnets": subnets,
            "SecurityGroups": [ref(CLB_GROUP)],
            "Instances": instances,
            # The first listener's instance port is the default health check's: TCP:80.
            "Listeners": [
                http,
                _clb_listener(TCP_PORT, HTTP_PORT, "TCP"),
                _clb_listener(PROXY_PORT, PROXY_PORT, "TCP"),
                _clb_listener(IPERF_PORT, IPERF_PORT, "TCP"),
            ],
            "Policies": [
                {
                    "PolicyName": "EnableProxyProtocol",
                    "PolicyType": "ProxyProtocolPolicyType",
                    "Attributes": [{"Name": "ProxyProtocol", "Value": "true"}],
                    "InstancePorts": [str(PROXY_PORT)],
                }
            ],
            "LBCookieStickinessPolicy": [
                {"PolicyName": STICKY_POLICY, "CookieExpirationPeriod": str(STICKY_EXPIRATION_S)}
            ],
        },
    }
    draining = {
        "Type": "AWS::ElasticLoadBalancing::LoadBalancer",
        "Properties": {
            "Scheme": "internet-facing",
            "Subnets": subnets,
            "SecurityGroups": [ref(CLB_GROUP)],
            "Instances": instances,
            "Listeners": [_clb_listener(HTTP_PORT, HTTP_PORT, "HTTP")],
            # Enabled without a Timeout: AWS's 300 s.
            "ConnectionDrainingPolicy": {"Enabled": True},
        },
    }
    return {CLB: classic, DRAIN_CLB: draining}


def _elbv2() -> dict[str, Any]:
    subnets = [ref(f"PublicSubnet{letter}") for letter in AZ_LETTERS]
    targets = [{"Id": ref(i)} for i in BACKENDS]
    res: dict[str, Any] = {
        ALB: {
            "Type": "AWS::ElasticLoadBalancingV2::LoadBalancer",
            "Properties": {
                "Type": "application",
                "Scheme": "internet-facing",
                "Subnets": subnets,
                "SecurityGroups": [ref(CLB_GROUP)],
            },
        },
        ALB_GROUP: {
            "Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
            "Properties": {
                "Protocol": "HTTP",
                "Port": HTTP_PORT,
                "VpcId": ref("VPC"),
                "Targets": targets,
                # Stickiness is off by default; on here to show the AWSALB cookie (clients
                # without cookies, as every load of this experiment, are not affected).
                "TargetGroupAttributes": [
                    {"Key": "stickiness.enabled", "Value": "true"},
                    {"Key": "stickiness.type", "Value": "lb_cookie"},
                ],
            },
        },
        "AlbHttp": {
            "Type": "AWS::ElasticLoadBalancingV2::Listener",
            "Properties": {
                "LoadBalancerArn": ref(ALB),
                "Protocol": "HTTP",
                "Port": HTTP_PORT,
                "DefaultActions": [{"Type": "forward", "TargetGroupArn": ref(ALB_GROUP)}],
            },
        },
        NLB: {
            "Type": "AWS::ElasticLoadBalancingV2::LoadBalancer",
            "Properties": {"Type": "network", "Scheme": "internet-facing", "Subnets": subnets},
        },
    }
    for group, listener, port, members in (
        (NLB_GROUP, "NlbTcp", HTTP_PORT, targets),
        (NLB_IPERF_GROUP, "NlbIperfTcp", IPERF_PORT, [{"Id": ref(SOLO)}]),
    ):
        res[group] = {
            "Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
            "Properties": {
                "Protocol": "TCP",
                "Port": port,
                "VpcId": ref("VPC"),
                "TargetType": "instance",
                "Targets": members,
            },
        }
        res[listener] = {
            "Type": "AWS::ElasticLoadBalancingV2::Listener",
            "Properties": {
                "LoadBalancerArn": ref(NLB),
                "Protocol": "TCP",
                "Port": port,
                "DefaultActions": [{"Type": "forward", "TargetGroupArn": ref(group)}],
            },
        }
    return res


def stack_yaml(time_scale: float) -> str:
    """The compare stack (module doc), with Metadata.Lab.TimeScale = time_scale."""
    res = two_az_vpc()
    # Instances: HTTP, the TCP echo and iperf3 from anywhere (the NLB keeps the client's
    # address); the VPC (load balancer nodes, health checks) may send anything.
    rules = res[INSTANCE_GROUP]["Properties"]["SecurityGroupIngress"]
    rules.append(
        {"IpProtocol": "tcp", "FromPort": IPERF_PORT, "ToPort": IPERF_PORT, "CidrIp": "0.0.0.0/0"}
    )
    res[CLB_GROUP] = {
        "Type": "AWS::EC2::SecurityGroup",
        "Properties": {
            "GroupDescription": "compare: listeners of the CLBs and the ALB",
            "VpcId": ref("VPC"),
            "SecurityGroupIngress": [
                {"IpProtocol": "tcp", "FromPort": p, "ToPort": p, "CidrIp": "0.0.0.0/0"}
                for p in (HTTP_PORT, TCP_PORT, PROXY_PORT, IPERF_PORT)
            ],
        },
    }
    for name in (*BACKENDS, SPARE):
        res[name] = _instance(name[-2])
    res[VPC_CLIENT] = {
        "Type": "AWS::EC2::Instance",
        "Metadata": {"Lab": {"Role": "none"}},
        "Properties": {"SubnetId": ref("PublicSubnetA"), "SecurityGroupIds": [ref(INSTANCE_GROUP)]},
    }
    res.update(_clbs())
    res.update(_elbv2())
    for client in INTERNET_CLIENTS:
        res[client] = {"Type": "Lab::Internet::Client"}
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "compare experiment stack (generated by experiments/compare.py): a CLB, "
        "an ALB and an NLB with AWS's defaults over the same four instances",
        "Metadata": {
            "Lab": {"TimeScale": int(time_scale) if float(time_scale).is_integer() else time_scale}
        },
        "Resources": res,
        "Outputs": {
            f"{lb}DnsName": {"Value": {"Fn::GetAtt": [lb, "DNSName"]}}
            for lb in (CLB, DRAIN_CLB, ALB, NLB)
        },
    }
    return yaml.safe_dump(template, sort_keys=False, width=100, default_flow_style=None)
