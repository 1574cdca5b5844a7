"""VPCs, subnets, gateways and routes: CIDR rules, AZs, and which subnets are public."""

from __future__ import annotations

import textwrap

import pytest

VPC = textwrap.dedent("""\
    Resources:
      VPC:
        Type: AWS::EC2::VPC
        Properties: {CidrBlock: 10.0.0.0/16}
""")


def indent(text: str) -> str:
    """Template lines written at resource level, indented under Resources."""
    return textwrap.indent(textwrap.dedent(text), "  ")


def subnets(*specs: tuple[str, str, str]) -> str:
    """VPC plus subnets given as (name, cidr, az)."""
    text = VPC
    for name, cidr, az in specs:
        text += (
            f"  {name}:\n    Type: AWS::EC2::Subnet\n    Properties: "
            f"{{VpcId: !Ref VPC, CidrBlock: {cidr}, AvailabilityZone: {az}}}\n"
        )
    return text


def test_subnets_and_azs(load):
    model = load(
        subnets(
            ("A", "10.0.0.0/24", "us-east-1a"),
            ("B", "10.0.1.0/28", "us-east-1b"),
            ("C", "10.0.255.240/28", "us-east-1a"),
        )
    )
    assert model.azs == ("us-east-1a", "us-east-1b")
    assert str(model.subnets["B"].cidr) == "10.0.1.0/28"
    assert str(model.subnets["B"].router_ip) == "10.0.1.1"
    assert model.subnets["A"].vpc_id == "VPC"


@pytest.mark.parametrize(
    ("cidr", "message"),
    [
        ("10.1.0.0/24", "subnet CIDR block 10.1.0.0/24 is not inside VPC's 10.0.0.0/16"),
        ("10.0.0.0/29", "must be between /16 and /28"),
        ("10.0.0.0/15", "must be between /16 and /28"),
    ],
)
def test_subnet_cidr_rules(fails, cidr, message):
    fails(subnets(("A", cidr, "us-east-1a")), message, logical_id="A", line=7)


def test_overlapping_subnets_name_both(fails):
    text = subnets(("A", "10.0.0.0/24", "us-east-1a"), ("B", "10.0.0.128/25", "us-east-1b"))
    fails(
        text,
        "subnet CIDR block 10.0.0.128/25 overlaps A's 10.0.0.0/24 in VPC",
        logical_id="B",
        line=10,
    )


def test_subnets_of_different_vpcs_may_overlap(load):
    text = subnets(("A", "10.0.0.0/24", "us-east-1a")) + indent("""\
        VPC2:
          Type: AWS::EC2::VPC
          Properties: {CidrBlock: 10.0.0.0/16}
        B:
          Type: AWS::EC2::Subnet
          Properties: {VpcId: !Ref VPC2, CidrBlock: 10.0.0.0/24, AvailabilityZone: us-east-1a}
    """)
    assert set(load(text).subnets) == {"A", "B"}


@pytest.mark.parametrize(
    ("cidr", "message"),
    [
        ("10.0.0.0/29", "VPC CIDR block 10.0.0.0/29 must be between /16 and /28"),
        ("10.0.0.0/8", "must be between /16 and /28"),
        ("198.51.100.0/24", "overlaps 198.51.100.0/24, which the lab uses for the internet"),
        ("203.0.112.0/23", "overlaps 203.0.113.0/24"),
    ],
)
def test_vpc_cidr_rules(fails, cidr, message):
    fails(VPC.replace("10.0.0.0/16", cidr), message, logical_id="VPC", line=4)


def test_az_names_are_checked(fails):
    fails(
        subnets(("A", "10.0.0.0/24", "useast1")),
        "AvailabilityZone 'useast1' is not an availability zone name",
        logical_id="A",
        line=7,
    )


def test_all_azs_in_one_region(fails):
    text = subnets(("A", "10.0.0.0/24", "us-east-1a"), ("B", "10.0.1.0/24", "eu-west-1b"))
    fails(
        text,
        "AvailabilityZone eu-west-1b is in region eu-west-1, but subnet A is in us-east-1",
        logical_id="B",
        line=10,
    )


def test_default_az_is_the_first_of_the_region(load):
    text = VPC + (
        "  A:\n    Type: AWS::EC2::Subnet\n"
        "    Properties: {VpcId: !Ref VPC, CidrBlock: 10.0.0.0/24}\n"
    )
    assert load(text, region="ap-south-1").subnets["A"].az == "ap-south-1a"


ROUTING = VPC + indent("""\
      Net:
        Type: AWS::EC2::Subnet
        Properties: {VpcId: !Ref VPC, CidrBlock: 10.0.0.0/24, AvailabilityZone: us-east-1a}
      Gateway: {Type: AWS::EC2::InternetGateway}
      Attach:
        Type: AWS::EC2::VPCGatewayAttachment
        Properties: {VpcId: !Ref VPC, InternetGatewayId: !Ref Gateway}
      Table:
        Type: AWS::EC2::RouteTable
        Properties: {VpcId: !Ref VPC}
      Default:
        Type: AWS::EC2::Route
        DependsOn: Attach
        Properties: {RouteTableId: !Ref Table, DestinationCidrBlock: 0.0.0.0/0,
                     GatewayId: !Ref Gateway}
      Assoc:
        Type: AWS::EC2::SubnetRouteTableAssociation
        Properties: {SubnetId: !Ref Net, RouteTableId: !Ref Table}
""")
ATTACH = (
    "  Attach:\n    Type: AWS::EC2::VPCGatewayAttachment\n"
    "    Properties: {VpcId: !Ref VPC, InternetGatewayId: !Ref Gateway}\n"
)


def test_subnet_with_default_route_to_attached_igw_is_public(load):
    model = load(ROUTING)
    net = model.subnets["Net"]
    assert net.public
    assert net.route_table_id == "Table"
    table = model.route_tables["Table"]
    assert [
        (r.logical_id, str(r.destination), r.target_kind, r.target_id) for r in table.routes
    ] == [
        ("Table.local", "10.0.0.0/16", "local", "VPC"),
        ("Default", "0.0.0.0/0", "igw", "Gateway"),
    ]
    assert table.default_route().logical_id == "Default"
    assert model.internet_gateways["Gateway"].vpc_id == "VPC"


def test_subnet_without_association_is_private(load):
    model = load(ROUTING.split("  Assoc:")[0])
    assert not model.subnets["Net"].public
    assert model.subnets["Net"].route_table_id is None


def test_table_without_default_route_is_private(load):
    text = ROUTING.replace("DestinationCidrBlock: 0.0.0.0/0", "DestinationCidrBlock: 8.8.8.0/24")
    assert not load(text).subnets["Net"].public


def test_unattached_gateway_in_a_route_is_an_error(fails, load):
    assert ATTACH in ROUTING
    text = ROUTING.replace("    DependsOn: Attach\n", "").replace(ATTACH, "")
    err = fails(
        text,
        "route to 0.0.0.0/0 uses internet gateway Gateway, which is attached to no VPC",
        "attach Gateway to VPC",
        logical_id="Default",
    )
    assert err.line is not None
    # Without the route, an unattached gateway is fine (and attached to nothing).
    unrouted = text.split("  Default:")[0] + "  Assoc:" + text.split("  Assoc:")[1]
    assert load(unrouted).internet_gateways["Gateway"].vpc_id is None


def test_gateway_of_another_vpc_is_an_error(fails):
    text = ROUTING.replace(
        "Properties: {VpcId: !Ref VPC, InternetGatewayId",
        "Properties: {VpcId: !Ref VPC2, InternetGatewayId",
    )
    text += indent("""\
        VPC2:
          Type: AWS::EC2::VPC
          Properties: {CidrBlock: 10.1.0.0/16}
    """)
    fails(text, "attached to VPC2, but route table Table belongs to VPC", logical_id="Default")


def test_gateway_attaches_to_one_vpc_and_vpc_has_one_gateway(fails):
    second = ROUTING + indent("""\
        VPC2:
          Type: AWS::EC2::VPC
          Properties: {CidrBlock: 10.1.0.0/16}
        Attach2:
          Type: AWS::EC2::VPCGatewayAttachment
          Properties: {VpcId: !Ref VPC2, InternetGatewayId: !Ref Gateway}
    """)
    fails(
        second,
        "internet gateway Gateway is already attached to VPC by Attach",
        logical_id="Attach2",
    )
    two = ROUTING + indent("""\
        Gateway2: {Type: AWS::EC2::InternetGateway}
        Attach2:
          Type: AWS::EC2::VPCGatewayAttachment
          Properties: {VpcId: !Ref VPC, InternetGatewayId: !Ref Gateway2}
    """)
    fails(
        two, "VPC already has internet gateway Gateway (attached by Attach)", logical_id="Attach2"
    )


def test_one_association_per_subnet(fails):
    text = ROUTING + indent("""\
        Table2:
          Type: AWS::EC2::RouteTable
          Properties: {VpcId: !Ref VPC}
        Assoc2:
          Type: AWS::EC2::SubnetRouteTableAssociation
          Properties: {SubnetId: !Ref Net, RouteTableId: !Ref Table2}
    """)
    fails(
        text,
        "subnet Net is already associated with route table Table by Assoc",
        logical_id="Assoc2",
    )


def test_association_across_vpcs_is_an_error(fails):
    text = ROUTING.split("  Assoc:")[0] + indent("""\
        VPC2:
          Type: AWS::EC2::VPC
          Properties: {CidrBlock: 10.1.0.0/16}
        Table2:
          Type: AWS::EC2::RouteTable
          Properties: {VpcId: !Ref VPC2}
        Assoc:
          Type: AWS::EC2::SubnetRouteTableAssociation
          Properties: {SubnetId: !Ref Net, RouteTableId: !Ref Table2}
    """)
    fails(text, "subnet Net is in VPC but route table Table2 belongs to VPC2", logical_id="Assoc")


@pytest.mark.parametrize("destination", ["0.0.0.0/0", "10.0.0.0/16"])
def test_duplicate_route_destinations(fails, destination):
    text = ROUTING + indent(f"""\
        Again:
          Type: AWS::EC2::Route
          DependsOn: Attach
          Properties: {{RouteTableId: !Ref Table, DestinationCidrBlock: {destination},
                       GatewayId: !Ref Gateway}}
    """)
    fails(text, f"route table Table already has a route to {destination}", logical_id="Again")


def test_independent_semantic_errors_are_collected(fails):
    text = subnets(("A", "10.1.0.0/24", "us-east-1a"), ("B", "10.0.0.0/29", "us-east-1a"))
    err = fails(text, "t.yaml:7: A:", "t.yaml:10: B:")
    assert len(err.errors) == 2


def test_resource_limit(fails):
    many = "".join(f"  G{i}: {{Type: AWS::EC2::InternetGateway}}\n" for i in range(501))
    fails("Resources:\n" + many, "declares 501 resources; the limit is 500")


def test_logical_ids_are_alphanumeric(fails):
    fails(
        "Resources:\n  my_gw: {Type: AWS::EC2::InternetGateway}\n",
        "logical ids may contain only letters and digits",
        logical_id="my_gw",
        line=2,
    )
