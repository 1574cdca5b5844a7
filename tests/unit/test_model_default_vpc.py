"""The default VPC: made when a template uses it, first in the creation order."""

from __future__ import annotations

from ipaddress import IPv4Network

import pytest

from testbed.model.elbv2_types import elbv2_sections
from testbed.model.resources.default_vpc import default_ids
from tests.unit.elbv2_data import stack
from tests.unit.sg_stub import security_groups  # noqa: F401  (a fixture)

DEFAULT_IDS = [
    "DefaultVpc",
    "DefaultInternetGateway",
    "DefaultSubnet1a",
    "DefaultSubnet1b",
    "DefaultSubnet1c",
    "DefaultRouteTable",
]
LONE_INSTANCE = """\
Resources:
  Web:
    Type: AWS::EC2::Instance
    Properties: {InstanceType: t3.micro}
"""


def test_an_instance_without_subnet_makes_the_default_vpc(load):
    model = load(LONE_INSTANCE)
    # The default VPC has an internet gateway: the lab adds its internet client last.
    assert list(model.creation_order) == [*DEFAULT_IDS, "Web", "Internet1"]
    vpc = model.vpcs["DefaultVpc"]
    assert (vpc.cidr, vpc.is_default) == (IPv4Network("172.31.0.0/16"), True)
    assert [
        (s.logical_id, s.az, str(s.cidr), s.map_public_ip, s.public, s.route_table_id)
        for s in model.subnets.values()
    ] == [
        ("DefaultSubnet1a", "us-east-1a", "172.31.0.0/20", True, True, "DefaultRouteTable"),
        ("DefaultSubnet1b", "us-east-1b", "172.31.16.0/20", True, True, "DefaultRouteTable"),
        ("DefaultSubnet1c", "us-east-1c", "172.31.32.0/20", True, True, "DefaultRouteTable"),
    ]
    assert model.internet_gateways["DefaultInternetGateway"].vpc_id == "DefaultVpc"
    routes = model.route_tables["DefaultRouteTable"].routes
    assert [(str(r.destination), r.target_kind, r.target_id) for r in routes] == [
        ("172.31.0.0/16", "local", "DefaultVpc"),
        ("0.0.0.0/0", "igw", "DefaultInternetGateway"),
    ]
    assert model.resource_types["DefaultVpc"] == "AWS::EC2::VPC"
    assert model.resource_types["DefaultSubnet1b"] == "AWS::EC2::Subnet"
    web = model.instances["Web"]
    # The first AZ, a public address (default subnets map them), the VPC's default group.
    assert (web.subnet_id, str(web.private_ip), str(web.public_ip)) == (
        "DefaultSubnet1a",
        "172.31.0.4",
        "203.0.113.10",
    )
    assert web.security_groups == ("DefaultVpc.default",)


def test_availability_zone_picks_the_default_subnet(load):
    text = LONE_INSTANCE.replace("InstanceType: t3.micro", "AvailabilityZone: us-east-1c")
    text += (
        "  Side:\n    Type: AWS::EC2::Instance\n"
        "    Properties: {NetworkInterfaces: [{DeviceIndex: 0, Description: x}],\n"
        "                 AvailabilityZone: us-east-1b}\n"
    )
    model = load(text)
    assert model.instances["Web"].subnet_id == "DefaultSubnet1c"
    assert model.instances["Side"].subnet_id == "DefaultSubnet1b"


def test_an_az_without_default_subnet(fails):
    text = LONE_INSTANCE.replace("InstanceType: t3.micro", "AvailabilityZone: us-east-1d")
    fails(
        text,
        "the default VPC has no subnet in us-east-1d: its default subnets are in us-east-1a, "
        "us-east-1b, us-east-1c",
        logical_id="Web",
        line=4,
    )


def test_other_regions_name_their_default_subnets(load):
    model = load(LONE_INSTANCE, region="eu-west-2")
    assert list(model.creation_order[:6]) == default_ids("eu-west-2")
    assert model.instances["Web"].subnet_id == "DefaultSubnet2a"
    assert model.subnets["DefaultSubnet2c"].az == "eu-west-2c"


def test_the_default_vpc_is_used_beside_the_template_vpcs(load):
    # As on AWS: no subnet means the default VPC, even when the template has VPCs.
    model = load(stack("Lost: {Type: AWS::EC2::Instance}\n"))
    assert model.instances["Lost"].subnet_id == "DefaultSubnet1a"
    assert model.creation_order[0] == "DefaultVpc"
    assert model.instances["WebA"].subnet_id == "PrivA"


def test_templates_that_do_not_use_it_get_none(load, default_text):
    model = load(default_text)
    assert "DefaultVpc" not in model.vpcs
    assert not set(DEFAULT_IDS) & set(model.creation_order)


def test_a_subnet_hidden_by_a_condition_still_puts_the_default_vpc_first(load):
    text = stack(
        "Maybe:\n  Type: AWS::EC2::Instance\n"
        "  Properties: {SubnetId: !If [Never, !Ref PubA, !Ref AWS::NoValue]}\n"
    )
    text = "Conditions:\n  Never: !Equals [a, b]\n" + text
    model = load(text)
    assert model.instances["Maybe"].subnet_id == "DefaultSubnet1a"
    assert list(model.creation_order[:6]) == DEFAULT_IDS


@pytest.mark.usefixtures("security_groups")
def test_a_security_group_without_vpc_makes_it(load):
    text = "Resources:\n  Sg: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: x}}\n"
    model = load(text)
    assert model.vpcs["DefaultVpc"].is_default
    assert list(model.creation_order) == [*DEFAULT_IDS, "Sg", "Internet1"]


def test_load_balancer_in_the_listed_azs(load):
    text = stack(
        "LB:\n  Type: AWS::ElasticLoadBalancingV2::LoadBalancer\n"
        "  Properties: {AvailabilityZones: [us-east-1c, us-east-1a]}\n"
    )
    lb = elbv2_sections(load(text))["load_balancers"]["LB"]
    assert (lb.type, lb.vpc_id, lb.subnets) == (
        "application",
        "DefaultVpc",
        ("DefaultSubnet1c", "DefaultSubnet1a"),
    )
    assert [str(n.public_ip) for n in lb.nodes] == ["203.0.113.10", "203.0.113.11"]


@pytest.mark.parametrize(
    ("props", "message"),
    [
        (
            "{AvailabilityZones: [us-east-1a], Subnets: [!Ref PubA, !Ref PubB]}",
            "AvailabilityZones picks default VPC subnets; give it or Subnets, not both",
        ),
        (
            "{AvailabilityZones: [us-east-1a]}",
            "an application load balancer needs subnets in at least two availability zones",
        ),
        ("{AvailabilityZones: []}", "AvailabilityZones is empty"),
        (
            "{Type: network, AvailabilityZones: [us-east-1z]}",
            "the default VPC has no subnet in us-east-1z",
        ),
    ],
)
def test_load_balancer_default_vpc_errors(fails, props, message):
    text = stack(f"LB:\n  Type: AWS::ElasticLoadBalancingV2::LoadBalancer\n  Properties: {props}\n")
    fails(text, message, logical_id="LB")


def test_a_template_resource_named_like_the_default_vpc(fails):
    text = LONE_INSTANCE + "  DefaultSubnet1b: {Type: AWS::EC2::InternetGateway}\n"
    fails(
        text,
        "Web uses the default VPC, which the lab makes with the logical ids DefaultVpc, "
        "DefaultInternetGateway, DefaultSubnet1a",
        "the template already uses DefaultSubnet1b",
        logical_id="Web",
    )


def test_a_template_vpc_overlapping_the_default_vpc(fails):
    text = LONE_INSTANCE + "  Mine: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 172.31.0.0/16}}\n"
    fails(
        text,
        "VPC CIDR block 172.31.0.0/16 overlaps the default VPC's 172.31.0.0/16, which the lab "
        "makes because Web uses it",
        logical_id="Mine",
        line=5,
    )


def test_default_subnets_and_template_subnets_share_one_region(fails):
    text = stack("Lost: {Type: AWS::EC2::Instance}\n").replace("us-east-1", "eu-west-1")
    fails(text, "all AZs of a stack must be in one region", "DefaultSubnet1a")
