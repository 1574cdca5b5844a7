"""Routes the lab accepts without packets (IPv6, transit gateways, peering), GetAZs with no
argument, and a VPC's IPv6 attributes: what real templates use beside their IPv4 network."""

from __future__ import annotations

import pytest

from testbed.errors import BadInput
from testbed.model import load_model_text

BASE = """
Resources:
  VPC: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  RT: {Type: AWS::EC2::RouteTable, Properties: {VpcId: !Ref VPC}}
"""


def load(extra: str):
    return load_model_text(BASE + extra, filename="t.yaml")


def test_an_ipv6_route_is_accepted_and_reported_not_emulated():
    model = load(
        """
  EIGW: {Type: AWS::EC2::EgressOnlyInternetGateway, Properties: {VpcId: !Ref VPC}}
  R6:
    Type: AWS::EC2::Route
    Properties: {RouteTableId: !Ref RT, DestinationIpv6CidrBlock: "::/0",
                 EgressOnlyInternetGatewayId: !Ref EIGW}
"""
    )
    route = model.inert["R6"]
    assert route.kind == "not-emulated"
    assert "IPv6 routes" in route.note
    assert [r.logical_id for r in model.route_tables["RT"].routes] == ["RT.local"]


def test_a_route_to_a_transit_gateway_is_not_emulated():
    model = load(
        """
  R:
    Type: AWS::EC2::Route
    Properties: {RouteTableId: !Ref RT, DestinationCidrBlock: 10.1.0.0/16,
                 TransitGatewayId: tgw-0123456789abcdef0}
"""
    )
    assert "transit gateways" in model.inert["R"].note
    assert len(model.route_tables["RT"].routes) == 1


def test_a_route_without_destination_says_so():
    with pytest.raises(BadInput, match="the route has no destination"):
        load(
            """
  IGW: {Type: AWS::EC2::InternetGateway}
  R: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref RT, GatewayId: !Ref IGW}}
"""
        )


def test_instance_route_targets_are_still_refused():
    with pytest.raises(BadInput, match="instance targets"):
        load(
            """
  R:
    Type: AWS::EC2::Route
    Properties: {RouteTableId: !Ref RT, DestinationCidrBlock: 0.0.0.0/0, InstanceId: i-1}
"""
        )


def test_getazs_with_nothing_is_the_stack_region_and_ipv6_blocks_can_be_carved():
    model = load(
        """
  Sub:
    Type: AWS::EC2::Subnet
    Properties:
      VpcId: !Ref VPC
      CidrBlock: 10.0.1.0/24
      AvailabilityZone: !Select [1, Fn::GetAZs: ]
Outputs:
  V6: {Value: !Select [1, !Cidr [!Select [0, !GetAtt VPC.Ipv6CidrBlocks], 4, 64]]}
  Assoc: {Value: !Select [0, !GetAtt VPC.CidrBlockAssociations]}
"""
    )
    assert model.subnets["Sub"].az == "us-east-1b"
    assert model.outputs["V6"] == "2001:db8:0:1::/64"  # RFC 3849: documentation only
    assert model.outputs["Assoc"].startswith("vpc-cidr-assoc-")


def test_a_route_to_a_gateway_endpoint_is_not_emulated():
    model = load(
        """
  S3:
    Type: AWS::EC2::VPCEndpoint
    Properties: {VpcId: !Ref VPC, ServiceName: com.amazonaws.us-east-1.s3}
  R:
    Type: AWS::EC2::Route
    Properties: {RouteTableId: !Ref RT, DestinationCidrBlock: 10.9.0.0/16, VpcEndpointId: !Ref S3}
"""
    )
    assert "an endpoint to AWS services" in model.inert["R"].note
