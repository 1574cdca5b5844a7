"""Elastic IPs, their associations, NAT gateways and routes to them, NLB SubnetMappings EIPs."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from testbed.model.elbv2_types import elbv2_sections
from testbed.model.types import ElasticIp
from tests.unit.elbv2_data import stack

EIP = "Eip: {Type: AWS::EC2::EIP}\n"
WEB_PUBLIC = "Web: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref PubA}}\n"
NAT = (
    "Nat: {Type: AWS::EC2::NatGateway, Properties: {SubnetId: !Ref PubA, "
    "AllocationId: !GetAtt Eip.AllocationId}}\n"
)
TO_NAT = (
    "ToNat: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref PrivateTable, "
    "DestinationCidrBlock: 0.0.0.0/0, NatGatewayId: !Ref Nat}}\n"
)


def last_line(text: str) -> int:
    return len(text.splitlines())


# --- EIP ---------------------------------------------------------------------------------


def test_eip_takes_addresses_from_the_top_of_the_public_pool(load):
    text = stack(
        EIP,
        "Eip2: {Type: AWS::EC2::EIP, Properties: {Domain: standard, PublicIpv4Pool: amazon}}\n",
    )
    text += (
        "Outputs:\n  Address: {Value: !Ref Eip}\n  Alloc: {Value: !GetAtt Eip.AllocationId}\n"
        "  Public: {Value: !GetAtt Eip2.PublicIp}\n"
    )
    model = load(text)
    assert model.elastic_ips["Eip"] == ElasticIp(
        "Eip", IPv4Address("203.0.113.254"), "eipalloc-Eip", source=model.elastic_ips["Eip"].source
    )
    assert model.outputs == {
        "Address": "203.0.113.254",
        "Alloc": "eipalloc-Eip",
        "Public": "203.0.113.253",
    }
    assert ("Eip2", "PublicIpv4Pool") in [(i.logical_id, i.property) for i in model.ignored]


def test_eips_never_move_automatic_public_addresses(load):
    # The NLB's nodes get .10 and .11 whether or not an EIP is declared before them.
    text = stack(
        EIP,
        "NLB:\n  Type: AWS::ElasticLoadBalancingV2::LoadBalancer\n"
        "  Properties: {Type: network, Subnets: [!Ref PubA, !Ref PubB]}\n",
    )
    nodes = elbv2_sections(load(text))["load_balancers"]["NLB"].nodes
    assert [str(n.public_ip) for n in nodes] == ["203.0.113.10", "203.0.113.11"]


def test_eip_instance_id_gives_the_instance_its_public_address(load):
    # PubA does not map public addresses: the EIP is the instance's public address anyway.
    text = stack(
        WEB_PUBLIC,
        "Eip: {Type: AWS::EC2::EIP, Properties: {InstanceId: !Ref Web}}\n",
    )
    text += "Outputs:\n  Ip: {Value: !GetAtt Web.PublicIp}\n"
    model = load(text)
    assert str(model.instances["Web"].public_ip) == "203.0.113.254"
    assert model.elastic_ips["Eip"].instance_id == "Web"
    assert model.outputs["Ip"] == "203.0.113.254"


def test_reading_an_instance_public_ip_waits_for_its_eip(load):
    # The client is declared before the EIP: it is still created after it.
    text = stack(
        WEB_PUBLIC,
        "C: {Type: Lab::Internet::Client, Properties: {UserData: !Sub 'curl ${Web.PublicIp}'}}\n",
        "Eip: {Type: AWS::EC2::EIP, Properties: {InstanceId: !Ref Web}}\n",
    )
    model = load(text)
    assert model.internet_clients["C"].user_data == "curl 203.0.113.254"
    assert model.creation_order.index("Eip") < model.creation_order.index("C")


def test_eip_replaces_the_automatic_public_address(load):
    text = stack(
        "Web: {Type: AWS::EC2::Instance, Properties: {NetworkInterfaces: [{DeviceIndex: 0, "
        "SubnetId: !Ref PubA, AssociatePublicIpAddress: true}]}}\n",
        "Assoc: {Type: AWS::EC2::EIPAssociation, Properties: {InstanceId: !Ref Web, "
        "AllocationId: !GetAtt Eip.AllocationId}}\n",
        EIP,
    )
    model = load(text)
    assert str(model.instances["Web"].public_ip) == "203.0.113.254"


def test_eip_on_a_private_instance_is_kept(load):
    # AWS associates it; the instance is just unreachable (testbed reach says so).
    text = stack(
        EIP,
        "A: {Type: AWS::EC2::EIPAssociation, Properties: {EIP: !Ref Eip, InstanceId: !Ref WebA}}\n",
    )
    model = load(text)
    assert str(model.instances["WebA"].public_ip) == "203.0.113.254"
    assert not model.subnets["PrivA"].public


def test_association_by_interface_and_its_primary_address(load):
    text = stack(
        EIP,
        "Eni: {Type: AWS::EC2::NetworkInterface, Properties: {SubnetId: !Ref PubA, "
        "PrivateIpAddress: 10.0.0.20, SecondaryPrivateIpAddressCount: 1}}\n",
        "A: {Type: AWS::EC2::EIPAssociation, Properties: {AllocationId: !GetAtt "
        "Eip.AllocationId, NetworkInterfaceId: !Ref Eni, PrivateIpAddress: 10.0.0.20}}\n",
    )
    model = load(text)
    assert str(model.network_interfaces["Eni"].public_ip) == "203.0.113.254"
    assert model.elastic_ips["Eip"].interface_id == "Eni"


@pytest.mark.parametrize(
    ("association", "message"),
    [
        (
            "{AllocationId: !GetAtt Eip.AllocationId}",
            "associate the Elastic IP with an InstanceId or a NetworkInterfaceId",
        ),
        (
            "{AllocationId: !GetAtt Eip.AllocationId, InstanceId: !Ref WebA, "
            "NetworkInterfaceId: !Ref Eni}",
            "with an InstanceId or a NetworkInterfaceId, not both",
        ),
        ("{InstanceId: !Ref WebA}", "the association names no Elastic IP"),
        (
            "{AllocationId: !Ref Eip, InstanceId: !Ref WebA}",
            "AllocationId '203.0.113.254' is not an allocation id (eipalloc-...)",
        ),
        (
            "{AllocationId: eipalloc-nope, InstanceId: !Ref WebA}",
            "AllocationId 'eipalloc-nope' is not the allocation id of an Elastic IP of this stack",
        ),
        (
            "{EIP: !Ref Eip, NetworkInterfaceId: !Ref Eni, PrivateIpAddress: 10.0.2.31}",
            "PrivateIpAddress 10.0.2.31 is a secondary address of network interface Eni",
        ),
        (
            "{EIP: !Ref Eip, NetworkInterfaceId: !Ref Eni, PrivateIpAddress: 10.0.2.99}",
            "PrivateIpAddress 10.0.2.99 is not an address of network interface Eni",
        ),
    ],
)
def test_association_errors(fails, association, message):
    text = stack(
        EIP,
        "Eni: {Type: AWS::EC2::NetworkInterface, Properties: {SubnetId: !Ref PrivA, "
        "PrivateIpAddresses: [{PrivateIpAddress: 10.0.2.30, Primary: true}, "
        "{PrivateIpAddress: 10.0.2.31, Primary: false}]}}\n",
        f"Assoc: {{Type: AWS::EC2::EIPAssociation, Properties: {association}}}\n",
    )
    fails(text, message, logical_id="Assoc", line=last_line(text))


def test_allocation_id_hint_for_a_ref(fails):
    text = stack(EIP, NAT.replace("!GetAtt Eip.AllocationId", "!Ref Eip"))
    fails(text, "!Ref Eip gives its address; use !GetAtt Eip.AllocationId", logical_id="Nat")


def test_eip_associated_twice_names_both(fails):
    text = stack(
        WEB_PUBLIC,
        "Eip: {Type: AWS::EC2::EIP, Properties: {InstanceId: !Ref WebA}}\n",
        "Again: {Type: AWS::EC2::EIPAssociation, Properties: {AllocationId: !GetAtt "
        "Eip.AllocationId, InstanceId: !Ref Web}}\n",
    )
    fails(
        text,
        "Elastic IP Eip (203.0.113.254) is already associated with instance WebA by Eip",
        "an Elastic IP is associated with one thing at a time",
        logical_id="Again",
        line=last_line(text),
    )


def test_eip_of_a_nat_gateway_cannot_go_to_an_instance(fails):
    text = stack(
        EIP,
        NAT,
        "Again: {Type: AWS::EC2::EIPAssociation, Properties: {AllocationId: !GetAtt "
        "Eip.AllocationId, InstanceId: !Ref WebA}}\n",
    )
    fails(text, "already associated with NAT gateway Nat by Nat", logical_id="Again")


def test_instance_with_two_eips(fails):
    text = stack(
        "One: {Type: AWS::EC2::EIP, Properties: {InstanceId: !Ref WebA}}\n",
        "Two: {Type: AWS::EC2::EIP, Properties: {InstanceId: !Ref WebA}}\n",
    )
    fails(
        text,
        "instance WebA already has Elastic IP One (203.0.113.254), associated by One",
        logical_id="Two",
        line=last_line(text),
    )


def test_eip_by_instance_id_needs_an_instance_with_one_interface(fails, line_with):
    text = stack(
        "Web: {Type: AWS::EC2::Instance, Properties: {NetworkInterfaces: [{DeviceIndex: 0, "
        "SubnetId: !Ref PubA}, {DeviceIndex: 1, SubnetId: !Ref PrivA}]}}\n",
        "Eip: {Type: AWS::EC2::EIP, Properties: {InstanceId: !Ref Web}}\n",
    )
    fails(
        text,
        "instance Web has 2 network interfaces, so Elastic IP Eip must be associated with one "
        "of them (NetworkInterfaceId)",
        logical_id="Eip",
        line=last_line(text),
    )


def test_eip_errors_in_one_pass(fails):
    text = stack(
        "Bad: {Type: AWS::EC2::EIP, Properties: {Domain: classic}}\n",
        "Moved: {Type: AWS::EC2::EIP, Properties: {TransferAddress: 203.0.113.5}}\n",
    )
    err = fails(text, "Domain must be vpc or standard, not 'classic'")
    assert "transferring an address from another account" in str(err)


# --- NAT gateways ----------------------------------------------------------------------------


def test_public_nat_gateway_and_route(load):
    model = load(stack(EIP, NAT, TO_NAT) + "Outputs:\n  Id: {Value: !Ref Nat}\n")
    nat = model.nat_gateways["Nat"]
    assert (nat.subnet_id, nat.az, str(nat.private_ip), str(nat.public_ip)) == (
        "PubA",
        "us-east-1a",
        "10.0.0.4",
        "203.0.113.254",
    )
    assert (nat.public, nat.allocation_id) == (True, "eipalloc-Eip")
    assert model.elastic_ips["Eip"].nat_gateway_id == "Nat"
    route = model.route_tables["PrivateTable"].default_route()
    assert (route.target_kind, route.target_id) == ("nat", "Nat")
    assert not model.subnets["PrivA"].public  # a NAT gateway only lets connections out
    assert model.outputs["Id"] == "nat-Nat"


def test_private_nat_gateway(load):
    text = stack(
        "Nat: {Type: AWS::EC2::NatGateway, Properties: {SubnetId: !Ref PrivA, "
        "ConnectivityType: private, PrivateIpAddress: 10.0.2.40, MaxDrainDurationSeconds: 60}}\n"
    )
    nat = load(text).nat_gateways["Nat"]
    assert (str(nat.private_ip), nat.public_ip, nat.public) == ("10.0.2.40", None, False)


def test_why_private_names_the_nat_gateway(fails):
    text = stack(
        EIP,
        NAT,
        TO_NAT,
        "Out: {Type: AWS::EC2::Instance, Properties: {NetworkInterfaces: [{DeviceIndex: 0, "
        "SubnetId: !Ref PrivA, AssociatePublicIpAddress: true}]}}\n",
    )
    fails(
        text,
        "AssociatePublicIpAddress is true but route table PrivateTable of subnet PrivA sends "
        "0.0.0.0/0 to NAT gateway Nat, which only lets connections out",
        logical_id="Out",
    )


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ("{SubnetId: !Ref PubA}", "a public NAT gateway needs an Elastic IP"),
        (
            "{SubnetId: !Ref PubA, ConnectivityType: private, AllocationId: "
            "!GetAtt Eip.AllocationId}",
            "a private NAT gateway has no Elastic IP",
        ),
        (
            "{SubnetId: !Ref PubA, ConnectivityType: Public}",
            "ConnectivityType must be one of public, private, not 'Public'",
        ),
        (
            "{SubnetId: !Ref PubA, AllocationId: !GetAtt Eip.AllocationId, "
            "SecondaryAllocationIds: [x]}",
            "SecondaryAllocationIds: the lab's NAT gateway has one address",
        ),
        (
            "{SubnetId: !Ref PubA, AllocationId: !GetAtt Eip.AllocationId, "
            "PrivateIpAddress: 10.0.2.9}",
            "address 10.0.2.9 is not inside subnet PubA",
        ),
    ],
)
def test_nat_gateway_errors(fails, props, message):
    text = stack(EIP, f"Nat: {{Type: AWS::EC2::NatGateway, Properties: {props}}}\n")
    fails(text, message, logical_id="Nat", line=last_line(text))


def test_public_nat_gateway_needs_a_public_subnet(fails):
    text = stack(EIP, NAT.replace("PubA", "PrivB"))
    fails(
        text,
        "a public NAT gateway must be in a public subnet, but route table PrivateTable of "
        "subnet PrivB has no 0.0.0.0/0 route to an internet gateway",
        "or make it ConnectivityType: private",
        logical_id="Nat",
        line=last_line(text),
    )


def test_route_to_a_nat_gateway_of_another_vpc(fails):
    text = stack(
        EIP,
        NAT,
        "OtherTable: {Type: AWS::EC2::RouteTable, Properties: {VpcId: !Ref Other}}\n",
        "Cross: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref OtherTable, "
        "DestinationCidrBlock: 0.0.0.0/0, NatGatewayId: !Ref Nat}}\n",
    )
    fails(
        text,
        "NAT gateway Nat is in VPC but route table OtherTable belongs to Other",
        logical_id="Cross",
        line=last_line(text),
    )


def test_errors_of_several_resources_come_together(fails):
    text = stack(
        EIP,
        "Nat: {Type: AWS::EC2::NatGateway, Properties: {SubnetId: !Ref PubA}}\n",
        "Twice: {Type: AWS::EC2::EIPAssociation, Properties: {AllocationId: !GetAtt "
        "Eip.AllocationId, InstanceId: !Ref WebA}}\n",
        "Again: {Type: AWS::EC2::EIPAssociation, Properties: {AllocationId: !GetAtt "
        "Eip.AllocationId, InstanceId: !Ref WebB}}\n",
    )
    err = fails(text, "a public NAT gateway needs an Elastic IP")
    assert "Again: Elastic IP Eip (203.0.113.254) is already associated" in str(err)


# --- NLB SubnetMappings AllocationId ---------------------------------------------------------


def nlb(props: str) -> str:
    return f"NLB:\n  Type: AWS::ElasticLoadBalancingV2::LoadBalancer\n  Properties: {props}\n"


def test_nlb_node_gets_the_eip_of_its_mapping(load):
    text = stack(
        EIP,
        nlb(
            "{Type: network, SubnetMappings: [{SubnetId: !Ref PubA, AllocationId: "
            "!GetAtt Eip.AllocationId}, {SubnetId: !Ref PubB}]}"
        ),
    )
    text += "Outputs:\n  Ips: {Value: !GetAtt NLB.NodePublicIps}\n"
    model = load(text)
    nodes = elbv2_sections(model)["load_balancers"]["NLB"].nodes
    assert [str(n.public_ip) for n in nodes] == ["203.0.113.254", "203.0.113.10"]
    assert model.elastic_ips["Eip"].lb_node == "NLB-1a"
    assert model.outputs["Ips"] == ["203.0.113.254", "203.0.113.10"]


@pytest.mark.parametrize(
    ("props", "message"),
    [
        (
            "{Type: network, Scheme: internal, SubnetMappings: [{SubnetId: !Ref PrivA, "
            "AllocationId: !GetAtt Eip.AllocationId}]}",
            "AllocationId (an Elastic IP) is only for internet-facing network load balancers; "
            "NLB is internal",
        ),
        (
            "{SubnetMappings: [{SubnetId: !Ref PubA, AllocationId: !GetAtt Eip.AllocationId}, "
            "{SubnetId: !Ref PubB}]}",
            "NLB is an application load balancer",
        ),
        (
            "{Type: network, SubnetMappings: [{SubnetId: !Ref PubA, AllocationId: "
            "!GetAtt Eip.AllocationId}, {SubnetId: !Ref PubB, AllocationId: "
            "!GetAtt Eip.AllocationId}]}",
            "Elastic IP Eip (203.0.113.254) is already associated with node NLB-1a of NLB",
        ),
    ],
)
def test_nlb_allocation_errors(fails, props, message):
    text = stack(EIP, nlb(props))
    fails(text, message, logical_id="NLB", line=last_line(text))
