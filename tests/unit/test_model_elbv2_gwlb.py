"""GWLB endpoints: endpoint services, endpoints, routes through them, gateway route tables."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network

import pytest

from testbed.model.elbv2_types import EndpointService, GwlbEndpoint, elbv2_sections
from testbed.model.types import Route
from tests.unit.elbv2_data import GWLB, NLB, listener, stack, target_group

APPLIANCES = target_group("Appliances", "GENEVE", 6081)
SERVICE = """\
Service:
  Type: AWS::EC2::VPCEndpointService
  Properties: {GatewayLoadBalancerArns: [!Ref GWLB], AcceptanceRequired: false}
"""
ENDPOINT = """\
Endpoint:
  Type: AWS::EC2::VPCEndpoint
  Properties:
    VpcEndpointType: GatewayLoadBalancer
    ServiceName: !Sub "com.amazonaws.vpce.${AWS::Region}.${Service}"
    VpcId: !Ref VPC
    SubnetIds: [!Ref PubA]
"""
# The inspection design: the app subnet's default route leads to the endpoint (in a public
# subnet); the internet gateway's ingress route table sends the app subnet's traffic back
# through the endpoint.
APP = """\
AppNet:
  Type: AWS::EC2::Subnet
  Properties: {VpcId: !Ref VPC, CidrBlock: 10.0.4.0/24, AvailabilityZone: us-east-1a,
               MapPublicIpOnLaunch: true}
AppTable:
  Type: AWS::EC2::RouteTable
  Properties: {VpcId: !Ref VPC}
AppDefault:
  Type: AWS::EC2::Route
  Properties: {RouteTableId: !Ref AppTable, DestinationCidrBlock: 0.0.0.0/0,
               VpcEndpointId: !Ref Endpoint}
AppAssoc:
  Type: AWS::EC2::SubnetRouteTableAssociation
  Properties: {SubnetId: !Ref AppNet, RouteTableId: !Ref AppTable}
IngressTable:
  Type: AWS::EC2::RouteTable
  Properties: {VpcId: !Ref VPC}
IngressToApp:
  Type: AWS::EC2::Route
  Properties: {RouteTableId: !Ref IngressTable, DestinationCidrBlock: 10.0.4.0/24,
               VpcEndpointId: !Ref Endpoint}
IngressAssoc:
  Type: AWS::EC2::GatewayRouteTableAssociation
  Properties: {GatewayId: !Ref Gateway, RouteTableId: !Ref IngressTable}
App:
  Type: AWS::EC2::Instance
  Properties: {SubnetId: !Ref AppNet}
"""


def gwlb_stack(*extra: str) -> str:
    return stack(
        GWLB,
        APPLIANCES,
        listener("GL", "GWLB", None, None, tg="Appliances"),
        SERVICE,
        ENDPOINT,
        *extra,
    )


def test_endpoint_service_and_endpoint(load):
    text = gwlb_stack() + (
        "Outputs:\n  Id: {Value: !GetAtt Service.ServiceId}\n"
        "  Ref: {Value: !Ref Service}\n  Vpce: {Value: !Ref Endpoint}\n"
        "  VpceId: {Value: !GetAtt Endpoint.Id}\n"
    )
    model = load(text)
    sections = elbv2_sections(model)
    service = sections["endpoint_services"]["Service"]
    assert re.fullmatch(
        r"com\.amazonaws\.vpce\.us-east-1\.vpce-svc-[0-9a-f]{17}", service.service_name
    )
    assert service == EndpointService(
        "Service",
        "GWLB",
        service.service_name,
        service.service_name.rsplit(".", 1)[1],
        service.source,
    )
    assert model.outputs["Id"] == model.outputs["Ref"] == service.physical_id
    assert sections["endpoints"]["Endpoint"] == GwlbEndpoint(
        "Endpoint",
        "Service",
        "GWLB",
        "VPC",
        "PubA",
        "us-east-1a",
        IPv4Address("10.0.0.4"),
        "vpce-Endpoint",
        sections["endpoints"]["Endpoint"].source,
    )
    assert model.outputs["Vpce"] == model.outputs["VpceId"] == "vpce-Endpoint"


def test_service_names_are_deterministic(load):
    def name(**kwargs):
        model = load(gwlb_stack(), **kwargs)
        return elbv2_sections(model)["endpoint_services"]["Service"].service_name

    assert name() == name()
    assert name() != name(stack_name="other")
    assert name(region="eu-west-1").startswith("com.amazonaws.vpce.eu-west-1.vpce-svc-")


def test_inspection_routes(load):
    model = load(gwlb_stack(APP))
    app_routes = model.route_tables["AppTable"].routes
    assert app_routes[1] == Route(
        "AppDefault", "AppTable", IPv4Network("0.0.0.0/0"), "vpce", "Endpoint", app_routes[1].source
    )
    ingress = model.route_tables["IngressTable"].routes[1]
    assert (ingress.destination, ingress.target_kind, ingress.target_id) == (
        IPv4Network("10.0.4.0/24"),
        "vpce",
        "Endpoint",
    )
    assert dict(elbv2_sections(model)["gateway_route_tables"]) == {"Gateway": "IngressTable"}
    # Traffic of the app subnet leaves through the endpoint's public subnet: it is public.
    assert model.subnets["AppNet"].public
    assert str(model.instances["App"].public_ip) == "203.0.113.10"


def test_default_route_to_an_endpoint_in_a_private_subnet_is_private(fails, load):
    text = gwlb_stack(APP).replace("SubnetIds: [!Ref PubA]", "SubnetIds: [!Ref PrivA]")
    model = load(text)
    assert not model.subnets["AppNet"].public
    assert model.instances["App"].public_ip is None
    text += "Outputs:\n  Ip: {Value: !GetAtt App.PublicIp}\n"
    fails(
        text,
        "App has no public IP address: route table AppTable of subnet AppNet sends "
        "0.0.0.0/0 to GWLB endpoint Endpoint, and route table PrivateTable of subnet "
        "PrivA has no 0.0.0.0/0 route",
        logical_id="Ip",
    )


def test_endpoint_address_is_the_lowest_free(load):
    text = gwlb_stack("Later:\n  Type: AWS::EC2::Instance\n  Properties: {SubnetId: !Ref PubA}\n")
    model = load(text)
    assert str(elbv2_sections(model)["endpoints"]["Endpoint"].ip) == "10.0.0.4"
    assert str(model.instances["Later"].private_ip) == "10.0.0.5"


@pytest.mark.parametrize(
    ("new", "kind"),
    [("VpcEndpointType: Interface", "Interface"), ("PrivateDnsEnabled: false", "Gateway")],
)
def test_interface_and_gateway_endpoints_are_inert(load, new, kind):
    # They reach AWS services, which are not in the lab: accepted with no packets.
    text = gwlb_stack().replace("VpcEndpointType: GatewayLoadBalancer", new)
    model = load(text)
    assert "Endpoint" not in elbv2_sections(model)["endpoints"]
    inert = model.inert["Endpoint"]
    assert inert.ref == "vpce-Endpoint"
    assert inert.note.startswith(f"not emulated: {kind} endpoints")


# --- Errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'ServiceName: !Sub "com.amazonaws.vpce.${AWS::Region}.${Service}"',
            "ServiceName: com.amazonaws.us-east-1.s3",
            "ServiceName 'com.amazonaws.us-east-1.s3' is not the name of an endpoint service of "
            "this lab",
        ),
        (
            "SubnetIds: [!Ref PubA]",
            "SubnetIds: [!Ref PubA, !Ref PubB]",
            "a GatewayLoadBalancer endpoint takes exactly one subnet, not 2",
        ),
        ("SubnetIds: [!Ref PubA]", "PrivateDnsEnabled: false", "takes exactly one subnet, not 0"),
        (
            "SubnetIds: [!Ref PubA]",
            "SubnetIds: [!Ref OtherNet]",
            "subnet OtherNet is in Other, not in VpcId VPC",
        ),
        (
            "SubnetIds: [!Ref PubA]",
            "SubnetIds: [!Ref PubA]\n      RouteTableIds: [!Ref PublicTable]",
            "RouteTableIds is for gateway endpoints",
        ),
    ],
)
def test_endpoint_errors(fails, line_with, old, new, message):
    text = gwlb_stack()
    assert old in text
    text = text.replace(old, new)
    # Each error points at the changed line, or at the resource when a property is missing.
    changed = new.splitlines()[-1].strip()
    at = "  Endpoint:" if changed == "PrivateDnsEnabled: false" else changed
    fails(text, message, logical_id="Endpoint", line=line_with(text, at))


def test_endpoint_needs_a_gwlb_node_in_its_az(fails):
    text = gwlb_stack().replace("Subnets: [!Ref PrivA, !Ref PrivB]", "Subnets: [!Ref PrivB]")
    fails(
        text,
        "endpoint service Service is not available in us-east-1a: gateway load "
        "balancer GWLB has nodes in us-east-1b",
        logical_id="Endpoint",
    )


def test_service_name_of_a_service_created_later(fails, load):
    # A literal name: nothing makes the service come before the endpoint.
    model = load(stack(GWLB, SERVICE))
    name = elbv2_sections(model)["endpoint_services"]["Service"].service_name
    text = stack(GWLB, ENDPOINT, SERVICE).replace(
        '!Sub "com.amazonaws.vpce.${AWS::Region}.${Service}"', name
    )
    fails(
        text,
        "ServiceName names endpoint service Service before it is created",
        'write ServiceName: !Sub "com.amazonaws.vpce.${AWS::Region}.${Service}"',
        logical_id="Endpoint",
    )


@pytest.mark.parametrize(
    ("props", "message"),
    [
        (
            "{GatewayLoadBalancerArns: [!Ref NLB]}",
            "GatewayLoadBalancerArns[0]: NLB is a network load balancer; an endpoint service here "
            "fronts a gateway load balancer",
        ),
        (
            "{GatewayLoadBalancerArns: [!Ref GWLB, !Ref GWLB]}",
            "the lab supports exactly one gateway load balancer per endpoint service, not 2",
        ),
        ("{}", "the endpoint service needs GatewayLoadBalancerArns"),
        (
            "{NetworkLoadBalancerArns: [!Ref NLB]}",
            "NetworkLoadBalancerArns: interface endpoint services (PrivateLink) are not supported",
        ),
        ("{GatewayLoadBalancerArns: [!Ref VPC]}", "refers to VPC, which is an AWS::EC2::VPC"),
    ],
)
def test_endpoint_service_errors(fails, props, message):
    text = stack(GWLB, NLB, f"Svc:\n  Type: AWS::EC2::VPCEndpointService\n  Properties: {props}\n")
    lines = len(text.splitlines())
    fails(text, message, logical_id="Svc", line=lines - 2 if props == "{}" else lines)


def test_route_with_two_targets(fails):
    route = (
        "Both:\n  Type: AWS::EC2::Route\n  Properties: {RouteTableId: !Ref PrivateTable, "
        "DestinationCidrBlock: 0.0.0.0/0,\n    GatewayId: !Ref Gateway, VpcEndpointId: "
        "!Ref Endpoint}\n"
    )
    fails(
        gwlb_stack(route),
        "a route has one target, not GatewayId and VpcEndpointId",
        logical_id="Both",
    )


def test_route_to_an_endpoint_of_another_vpc(fails):
    route = (
        "OtherTable:\n  Type: AWS::EC2::RouteTable\n  Properties: {VpcId: !Ref Other}\n"
        "Cross:\n  Type: AWS::EC2::Route\n  Properties: {RouteTableId: !Ref OtherTable, "
        "DestinationCidrBlock: 0.0.0.0/0, VpcEndpointId: !Ref Endpoint}\n"
    )
    text = gwlb_stack(route)
    fails(
        text,
        "GWLB endpoint Endpoint is in VPC but route table OtherTable belongs to Other",
        logical_id="Cross",
        line=len(text.splitlines()),
    )


def test_gateway_route_table_only_routes_subnets_to_endpoints(fails, line_with):
    to_igw = (
        "Back:\n  Type: AWS::EC2::Route\n  Properties: {RouteTableId: !Ref IngressTable,"
        " DestinationCidrBlock: 10.0.9.0/24, GatewayId: !Ref Gateway}\n"
    )
    text = gwlb_stack(APP, to_igw)
    fails(
        text,
        "route table IngressTable is the ingress route table of internet gateway "
        "Gateway (associated by IngressAssoc): its routes may only lead to GWLB "
        "endpoints, not to an internet gateway (10.0.9.0/24 -> Gateway)",
        logical_id="Back",
        line=len(text.splitlines()),
    )
    wide = gwlb_stack(
        APP.replace("DestinationCidrBlock: 10.0.4.0/24", "DestinationCidrBlock: 10.0.4.0/25")
    )
    fails(
        wide,
        "a route there must have the exact CIDR block of a subnet of VPC as "
        "destination, not 10.0.4.0/25",
        "10.0.4.0/24",
        logical_id="IngressToApp",
        line=line_with(wide, "DestinationCidrBlock: 10.0.4.0/25") + 1,
    )


def test_gateway_association_errors(fails):
    second = (
        "Again:\n  Type: AWS::EC2::GatewayRouteTableAssociation\n"
        "  Properties: {GatewayId: !Ref Gateway, RouteTableId: !Ref PrivateTable}\n"
    )
    fails(
        gwlb_stack(APP, second),
        "internet gateway Gateway already has ingress route table "
        "IngressTable (associated by IngressAssoc)",
        logical_id="Again",
    )
    other = (
        "OtherTable:\n  Type: AWS::EC2::RouteTable\n  Properties: {VpcId: !Ref Other}\n"
        "Wrong:\n  Type: AWS::EC2::GatewayRouteTableAssociation\n"
        "  Properties: {GatewayId: !Ref Gateway, RouteTableId: !Ref OtherTable}\n"
    )
    text = stack(other)
    fails(
        text,
        "internet gateway Gateway is attached to VPC, but route table OtherTable belongs to Other",
        logical_id="Wrong",
        line=len(text.splitlines()) - 2,
    )
