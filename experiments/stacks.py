"""The network part that the generated experiment stacks share.

Experiments write their own templates (so a run can be repeated from its results directory
alone); they all stand on the same two-AZ VPC, built here once.
"""

from __future__ import annotations

from typing import Any

import yaml

from testbed.results import ResultsDir

AZ_LETTERS = ("A", "B")
LB = "MyNLB"  # the load balancer of nlb_stack
TARGET_GROUP = "WebTargets"  # its target group


def ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def az(index: int) -> dict[str, Any]:
    """The region's index-th availability zone, as a template says it."""
    return {"Fn::Select": [index, {"Fn::GetAZs": ""}]}


INSTANCE_GROUP = "InstanceSecurityGroup"  # every generated instance is in it
LB_GROUP = "LoadBalancerSecurityGroup"  # every generated ALB is in it


def _ingress(protocol: str, port: int | None, cidr: str = "0.0.0.0/0") -> dict[str, Any]:
    rule: dict[str, Any] = {"IpProtocol": protocol, "CidrIp": cidr}
    if port is not None:
        rule.update(FromPort=port, ToPort=port)
    return rule


def security_groups() -> dict[str, Any]:
    """The generated stacks' groups (without one, AWS puts an instance or an ALB in the VPC's
    default group, which admits only its own members): instances take anything from the VPC
    (health checks, load balancer nodes) and HTTP, 8080, echo on 9000 and ping from anywhere
    (an NLB keeps the client's address); ALBs take 80 and 8080 from anywhere."""
    instance_rules = [
        _ingress("-1", None, "10.0.0.0/16"),
        *(_ingress("tcp", p) for p in (80, 8080, 9000)),
        _ingress("udp", 9000),
        {"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "CidrIp": "0.0.0.0/0"},
    ]
    return {
        INSTANCE_GROUP: {
            "Type": "AWS::EC2::SecurityGroup",
            "Properties": {
                "GroupDescription": "Experiment instances",
                "VpcId": ref("VPC"),
                "SecurityGroupIngress": instance_rules,
            },
        },
        LB_GROUP: {
            "Type": "AWS::EC2::SecurityGroup",
            "Properties": {
                "GroupDescription": "Experiment load balancers",
                "VpcId": ref("VPC"),
                "SecurityGroupIngress": [_ingress("tcp", 80), _ingress("tcp", 8080)],
            },
        },
    }


def two_az_vpc() -> dict[str, Any]:
    """Resources of a 10.0.0.0/16 VPC over two AZs: PublicSubnetA/B (10.0.0.0/24,
    10.0.2.0/24) routed to an internet gateway, PrivateSubnetA/B (10.0.1.0/24, 10.0.3.0/24)
    with the local route only; the security groups of security_groups()."""
    res: dict[str, Any] = {
        "VPC": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16"}},
        **security_groups(),
        "InternetGateway": {"Type": "AWS::EC2::InternetGateway"},
        "GatewayAttachment": {
            "Type": "AWS::EC2::VPCGatewayAttachment",
            "Properties": {"VpcId": ref("VPC"), "InternetGatewayId": ref("InternetGateway")},
        },
        "PublicRouteTable": {"Type": "AWS::EC2::RouteTable", "Properties": {"VpcId": ref("VPC")}},
        "DefaultPublicRoute": {
            "Type": "AWS::EC2::Route",
            "DependsOn": "GatewayAttachment",
            "Properties": {
                "RouteTableId": ref("PublicRouteTable"),
                "DestinationCidrBlock": "0.0.0.0/0",
                "GatewayId": ref("InternetGateway"),
            },
        },
        "PrivateRouteTable": {"Type": "AWS::EC2::RouteTable", "Properties": {"VpcId": ref("VPC")}},
    }
    for i, letter in enumerate(AZ_LETTERS):
        for j, kind in enumerate(("Public", "Private")):
            subnet = f"{kind}Subnet{letter}"
            res[subnet] = {
                "Type": "AWS::EC2::Subnet",
                "Properties": {
                    "VpcId": ref("VPC"),
                    "AvailabilityZone": az(i),
                    "CidrBlock": f"10.0.{2 * i + j}.0/24",
                },
            }
            res[f"{subnet}RouteTable"] = {
                "Type": "AWS::EC2::SubnetRouteTableAssociation",
                "Properties": {"SubnetId": ref(subnet), "RouteTableId": ref(f"{kind}RouteTable")},
            }
    return res


def target_names(per_az: tuple[int, int]) -> dict[str, list[str]]:
    """Instance names per AZ letter: {"A": ["WebA1", ...], "B": ["WebB1", ...]}."""
    return {
        letter: [f"Web{letter}{i}" for i in range(1, count + 1)]
        for letter, count in zip(AZ_LETTERS, per_az)
    }


def nlb_stack(
    per_az: tuple[int, int],
    clients: int = 2,
    port: int = 80,
    health: dict[str, Any] | None = None,
    tg_attributes: dict[str, str] | None = None,
    description: str = "NLB experiment stack",
) -> str:
    """A CloudFormation template (YAML): VPC over two AZs, internet-facing NLB with one TCP
    listener on `port`, per_az[i] http-backend instances in AZ i's private subnet, clients.

    The template has a CrossZone parameter ("false" by default, as on AWS); `health` holds
    TargetGroup HealthCheck* properties and thresholds, `tg_attributes` its
    TargetGroupAttributes (e.g. deregistration_delay.timeout_seconds).
    """
    res = two_az_vpc()
    names = target_names(per_az)
    for letter, hosts in names.items():
        for host in hosts:
            res[host] = {
                "Type": "AWS::EC2::Instance",
                "Metadata": {"Lab": {"Role": "http-backend"}},
                "Properties": {
                    "SubnetId": ref(f"PrivateSubnet{letter}"),
                    "SecurityGroupIds": [ref(INSTANCE_GROUP)],
                    "InstanceType": "t3.micro",
                },
            }
    res[LB] = {
        "Type": "AWS::ElasticLoadBalancingV2::LoadBalancer",
        "Properties": {
            "Type": "network",
            "Scheme": "internet-facing",
            "Subnets": [ref(f"PublicSubnet{letter}") for letter in AZ_LETTERS],
            "LoadBalancerAttributes": [
                {"Key": "load_balancing.cross_zone.enabled", "Value": ref("CrossZone")}
            ],
        },
    }
    tg: dict[str, Any] = {
        "Protocol": "TCP",
        "Port": port,
        "VpcId": ref("VPC"),
        "TargetType": "instance",
        **(health or {}),
        "Targets": [{"Id": ref(h)} for hs in names.values() for h in hs],
    }
    if tg_attributes:
        tg["TargetGroupAttributes"] = [
            {"Key": k, "Value": str(v)} for k, v in tg_attributes.items()
        ]
    res[TARGET_GROUP] = {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup", "Properties": tg}
    res["WebListener"] = {
        "Type": "AWS::ElasticLoadBalancingV2::Listener",
        "Properties": {
            "LoadBalancerArn": ref(LB),
            "Protocol": "TCP",
            "Port": port,
            "DefaultActions": [{"Type": "forward", "TargetGroupArn": ref(TARGET_GROUP)}],
        },
    }
    for k in range(1, clients + 1):
        res[f"Client{k}"] = {"Type": "Lab::Internet::Client"}
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": description,
        "Parameters": {
            "CrossZone": {
                "Type": "String",
                "Default": "false",
                "AllowedValues": ["true", "false"],
                "Description": "Cross-zone load balancing of the NLB",
            }
        },
        "Resources": res,
        "Outputs": {"NlbDnsName": {"Value": {"Fn::GetAtt": [LB, "DNSName"]}}},
    }
    return yaml.safe_dump(template, sort_keys=False, width=100, default_flow_style=None)


def write_stack(results: ResultsDir, text: str, name: str = "stack.yaml") -> str:
    """Write a generated template into the results directory; its path as a string."""
    path = results.file(name)
    path.write_text(text)
    return str(path)
