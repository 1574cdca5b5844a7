"""Templates for the ELBv2 model tests: a two-AZ VPC to put load balancers in, and snippets."""

from __future__ import annotations

import textwrap

# Public subnets PubA (10.0.0.0/24, us-east-1a) and PubB (10.0.1.0/24, us-east-1b), private
# subnets PrivA (10.0.2.0/24, a) and PrivB (10.0.3.0/24, b), an instance in each private
# subnet, and a second VPC (Other) with one subnet. Tests append resources below.
BASE = textwrap.dedent("""\
    Resources:
      VPC:
        Type: AWS::EC2::VPC
        Properties: {CidrBlock: 10.0.0.0/16}
      Gateway: {Type: AWS::EC2::InternetGateway}
      Attach:
        Type: AWS::EC2::VPCGatewayAttachment
        Properties: {VpcId: !Ref VPC, InternetGatewayId: !Ref Gateway}
      PublicTable:
        Type: AWS::EC2::RouteTable
        Properties: {VpcId: !Ref VPC}
      Default:
        Type: AWS::EC2::Route
        DependsOn: Attach
        Properties: {RouteTableId: !Ref PublicTable, DestinationCidrBlock: 0.0.0.0/0,
                     GatewayId: !Ref Gateway}
      PrivateTable:
        Type: AWS::EC2::RouteTable
        Properties: {VpcId: !Ref VPC}
      PubA:
        Type: AWS::EC2::Subnet
        Properties: {VpcId: !Ref VPC, CidrBlock: 10.0.0.0/24, AvailabilityZone: us-east-1a}
      PubB:
        Type: AWS::EC2::Subnet
        Properties: {VpcId: !Ref VPC, CidrBlock: 10.0.1.0/24, AvailabilityZone: us-east-1b}
      PrivA:
        Type: AWS::EC2::Subnet
        Properties: {VpcId: !Ref VPC, CidrBlock: 10.0.2.0/24, AvailabilityZone: us-east-1a}
      PrivB:
        Type: AWS::EC2::Subnet
        Properties: {VpcId: !Ref VPC, CidrBlock: 10.0.3.0/24, AvailabilityZone: us-east-1b}
      PubAAssoc:
        Type: AWS::EC2::SubnetRouteTableAssociation
        Properties: {SubnetId: !Ref PubA, RouteTableId: !Ref PublicTable}
      PubBAssoc:
        Type: AWS::EC2::SubnetRouteTableAssociation
        Properties: {SubnetId: !Ref PubB, RouteTableId: !Ref PublicTable}
      PrivAAssoc:
        Type: AWS::EC2::SubnetRouteTableAssociation
        Properties: {SubnetId: !Ref PrivA, RouteTableId: !Ref PrivateTable}
      PrivBAssoc:
        Type: AWS::EC2::SubnetRouteTableAssociation
        Properties: {SubnetId: !Ref PrivB, RouteTableId: !Ref PrivateTable}
      WebA:
        Type: AWS::EC2::Instance
        Properties: {SubnetId: !Ref PrivA}
      WebB:
        Type: AWS::EC2::Instance
        Properties: {SubnetId: !Ref PrivB}
      Other:
        Type: AWS::EC2::VPC
        Properties: {CidrBlock: 10.1.0.0/16}
      OtherNet:
        Type: AWS::EC2::Subnet
        Properties: {VpcId: !Ref Other, CidrBlock: 10.1.0.0/24, AvailabilityZone: us-east-1a}
      OtherWeb:
        Type: AWS::EC2::Instance
        Properties: {SubnetId: !Ref OtherNet}
""")

NLB = """\
NLB:
  Type: AWS::ElasticLoadBalancingV2::LoadBalancer
  Properties: {Type: network, Subnets: [!Ref PubA, !Ref PubB]}
"""
ALB = """\
ALB:
  Type: AWS::ElasticLoadBalancingV2::LoadBalancer
  Properties: {Subnets: [!Ref PubA, !Ref PubB]}
"""
GWLB = """\
GWLB:
  Type: AWS::ElasticLoadBalancingV2::LoadBalancer
  Properties: {Type: gateway, Subnets: [!Ref PrivA, !Ref PrivB]}
"""


def stack(*parts: str) -> str:
    """BASE plus resources written at column 0 (each part dedented, then indented)."""
    return BASE + "".join(textwrap.indent(textwrap.dedent(p), "  ") for p in parts)


def target_group(
    name: str,
    protocol: str,
    port: int,
    extra: str = "",
    targets: str = "[{Id: !Ref WebA}, {Id: !Ref WebB}]",
) -> str:
    """A target group in VPC with the two web instances (extra: more property lines)."""
    lines = [
        f"{name}:",
        "  Type: AWS::ElasticLoadBalancingV2::TargetGroup",
        "  Properties:",
        f"    Protocol: {protocol}",
        f"    Port: {port}",
        "    VpcId: !Ref VPC",
        f"    Targets: {targets}",
    ]
    lines += [f"    {line}" for line in textwrap.dedent(extra).splitlines() if line.strip()]
    return "\n".join(lines) + "\n"


def listener(
    name: str,
    lb: str,
    protocol: str | None,
    port: int | None,
    tg: str = "TG",
    actions: str | None = None,
) -> str:
    """A listener of `lb` forwarding to `tg` (or with the given DefaultActions text)."""
    lines = [
        f"{name}:",
        "  Type: AWS::ElasticLoadBalancingV2::Listener",
        "  Properties:",
        f"    LoadBalancerArn: !Ref {lb}",
    ]
    if protocol is not None:
        lines.append(f"    Protocol: {protocol}")
    if port is not None:
        lines.append(f"    Port: {port}")
    lines.append(
        "    DefaultActions: " + (actions or f"[{{Type: forward, TargetGroupArn: !Ref {tg}}}]")
    )
    return "\n".join(lines) + "\n"


def lb_with(name: str, props: str) -> str:
    """A load balancer with a flow-style Properties mapping."""
    return f"{name}:\n  Type: AWS::ElasticLoadBalancingV2::LoadBalancer\n  Properties: {props}\n"
