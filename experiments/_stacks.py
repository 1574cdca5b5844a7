"""The network part that the generated experiment stacks share.

Experiments write their own templates (so a run can be repeated from its results directory
alone); they all stand on the same two-AZ VPC, built here once.
"""

from __future__ import annotations

from typing import Any

AZ_LETTERS = ("A", "B")


def ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def az(index: int) -> dict[str, Any]:
    """The region's index-th availability zone, as a template says it."""
    return {"Fn::Select": [index, {"Fn::GetAZs": ""}]}


def two_az_vpc() -> dict[str, Any]:
    """Resources of a 10.0.0.0/16 VPC over two AZs: PublicSubnetA/B (10.0.0.0/24,
    10.0.2.0/24) routed to an internet gateway, PrivateSubnetA/B (10.0.1.0/24, 10.0.3.0/24)
    with the local route only."""
    res: dict[str, Any] = {
        "VPC": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16"}},
        "InternetGateway": {"Type": "AWS::EC2::InternetGateway"},
        "GatewayAttachment": {"Type": "AWS::EC2::VPCGatewayAttachment", "Properties": {
            "VpcId": ref("VPC"), "InternetGatewayId": ref("InternetGateway")}},
        "PublicRouteTable": {"Type": "AWS::EC2::RouteTable",
                             "Properties": {"VpcId": ref("VPC")}},
        "DefaultPublicRoute": {"Type": "AWS::EC2::Route", "DependsOn": "GatewayAttachment",
                               "Properties": {"RouteTableId": ref("PublicRouteTable"),
                                              "DestinationCidrBlock": "0.0.0.0/0",
                                              "GatewayId": ref("InternetGateway")}},
        "PrivateRouteTable": {"Type": "AWS::EC2::RouteTable",
                              "Properties": {"VpcId": ref("VPC")}},
    }
    for i, letter in enumerate(AZ_LETTERS):
        for j, kind in enumerate(("Public", "Private")):
            subnet = f"{kind}Subnet{letter}"
            res[subnet] = {"Type": "AWS::EC2::Subnet", "Properties": {
                "VpcId": ref("VPC"), "AvailabilityZone": az(i),
                "CidrBlock": f"10.0.{2 * i + j}.0/24"}}
            res[f"{subnet}RouteTable"] = {
                "Type": "AWS::EC2::SubnetRouteTableAssociation",
                "Properties": {"SubnetId": ref(subnet),
                               "RouteTableId": ref(f"{kind}RouteTable")}}
    return res
