"""ELBv2 load balancers: types, schemes, nodes and their addresses, names, DNS, attributes."""

from __future__ import annotations

import re
from ipaddress import IPv4Address

import pytest

from testbed.model.elb_defaults import DEFAULTS
from testbed.model.elbv2_types import LbNode, elbv2_sections
from testbed.model.types import IgnoredProperty
from tests.unit.elbv2_data import ALB, GWLB, NLB, lb_with, stack


def lbs(model):
    return elbv2_sections(model)["load_balancers"]


def test_nlb_defaults_and_nodes(load):
    lb = lbs(load(stack(NLB)))["NLB"]
    assert (lb.type, lb.scheme, lb.vpc_id, lb.subnets) == (
        "network",
        "internet-facing",
        "VPC",
        ("PubA", "PubB"),
    )
    assert lb.nodes == (
        LbNode(
            "us-east-1a", "PubA", "NLB-1a", IPv4Address("10.0.0.4"), IPv4Address("203.0.113.10")
        ),
        LbNode(
            "us-east-1b", "PubB", "NLB-1b", IPv4Address("10.0.1.4"), IPv4Address("203.0.113.11")
        ),
    )
    assert lb.cross_zone is False
    assert dict(lb.attributes) == dict(DEFAULTS["network"].lb_attributes)
    assert lb.name == "default-NLB"
    assert lb.source.line == len(stack().splitlines()) + 1


def test_alb_is_the_default_type_with_cross_zone_on(load):
    lb = lbs(load(stack(ALB)))["ALB"]
    assert (lb.type, lb.scheme, lb.cross_zone) == ("application", "internet-facing", True)
    assert lb.attributes["idle_timeout.timeout_seconds"] == "60"
    assert lb.attributes["routing.http.xff_header_processing.mode"] == "append"
    assert set(lb.attributes) == set(DEFAULTS["application"].lb_attributes)


def test_gateway_lb_has_no_scheme_and_no_public_addresses(load):
    lb = lbs(load(stack(GWLB)))["GWLB"]
    assert (lb.type, lb.scheme, lb.cross_zone) == ("gateway", None, False)
    assert [(n.name, str(n.private_ip), n.public_ip) for n in lb.nodes] == [
        ("GWLB-1a", "10.0.2.5", None),
        ("GWLB-1b", "10.0.3.5", None),
    ]
    assert set(lb.attributes) == {
        "deletion_protection.enabled",
        "load_balancing.cross_zone.enabled",
    }


def test_internal_lb_nodes_have_no_public_address(load):
    text = stack(lb_with("In", "{Type: network, Scheme: internal, Subnets: [!Ref PrivA]}"))
    lb = lbs(load(text))["In"]
    assert [(str(n.private_ip), n.public_ip) for n in lb.nodes] == [("10.0.2.5", None)]
    assert lb.dns_name.startswith("internal-default-In-")


def test_cross_zone_attribute(load):
    text = stack(
        lb_with(
            "NLB",
            "{Type: network, Subnets: [!Ref PubA], LoadBalancerAttributes: "
            "[{Key: load_balancing.cross_zone.enabled, Value: true}]}",
        )
    )
    lb = lbs(load(text))["NLB"]
    assert lb.cross_zone is True
    assert lb.attributes["load_balancing.cross_zone.enabled"] == "true"


def test_dns_names_and_arns_look_like_aws(load):
    model = load(
        stack(NLB, ALB, lb_with("Inner", "{Scheme: internal, Subnets: [!Ref PrivA, !Ref PrivB]}"))
    )
    found = lbs(model)
    assert re.fullmatch(
        r"default-NLB-[0-9a-f]{16}\.elb\.us-east-1\.amazonaws\.com", found["NLB"].dns_name
    )
    assert re.fullmatch(
        r"default-ALB-\d{10}\.us-east-1\.elb\.amazonaws\.com", found["ALB"].dns_name
    )
    assert re.fullmatch(
        r"internal-default-Inner-\d{10}\.us-east-1\.elb\.amazonaws\.com", found["Inner"].dns_name
    )
    assert re.fullmatch(
        r"arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/"
        r"net/default-NLB/[0-9a-f]{16}",
        found["NLB"].arn,
    )
    assert "/app/default-ALB/" in found["ALB"].arn


def test_dns_names_are_deterministic_per_stack_and_region(load):
    text = stack(NLB)
    first, again = lbs(load(text))["NLB"], lbs(load(text))["NLB"]
    assert (first.dns_name, first.arn) == (again.dns_name, again.arn)
    other = lbs(load(text, stack_name="lab2"))["NLB"]
    assert other.dns_name.startswith("lab2-NLB-")
    assert other.dns_name != first.dns_name
    assert other.nodes == first.nodes  # addresses do not depend on the stack name
    assert ".elb.eu-west-1." in lbs(load(text, region="eu-west-1"))["NLB"].dns_name


def test_get_att_and_ref(load):
    text = stack(NLB) + (
        "Outputs:\n"
        "  Dns: {Value: !GetAtt NLB.DNSName}\n"
        "  Name: {Value: !GetAtt NLB.LoadBalancerName}\n"
        "  Full: {Value: !GetAtt NLB.LoadBalancerFullName}\n"
        "  Arn: {Value: !GetAtt NLB.LoadBalancerArn}\n"
        "  Ref: {Value: !Ref NLB}\n"
        "  Zone: {Value: !GetAtt NLB.CanonicalHostedZoneID}\n"
        "  Private: {Value: !GetAtt NLB.NodePrivateIps}\n"
        "  Public: {Value: !Join [',', !GetAtt NLB.NodePublicIps]}\n"
    )
    model = load(text)
    lb, out = lbs(model)["NLB"], model.outputs
    assert out["Dns"] == lb.dns_name
    assert out["Name"] == "default-NLB"
    assert out["Arn"] == out["Ref"] == lb.arn
    assert out["Full"] == "net/default-NLB/" + lb.arn.rsplit("/", 1)[1]
    assert out["Zone"] == "Z26RNL4JYFTOTI"
    assert out["Private"] == ["10.0.0.4", "10.0.1.4"]
    assert out["Public"] == "203.0.113.10,203.0.113.11"


def test_public_node_addresses_of_an_internal_lb_are_an_error(fails):
    text = stack(lb_with("In", "{Type: network, Scheme: internal, Subnets: [!Ref PrivA]}"))
    text += "Outputs:\n  Ip:\n    Value: !GetAtt In.NodePublicIps\n"
    fails(
        text,
        "In is an internal load balancer: its nodes have no public addresses",
        "use !GetAtt In.NodePrivateIps",
        logical_id="Ip",
        line=len(text.splitlines()),
    )


# --- Addresses -----------------------------------------------------------------------------


def test_node_takes_the_lowest_free_address_in_creation_order(load):
    text = stack(
        "Early:\n  Type: AWS::EC2::Instance\n  Properties: {SubnetId: !Ref PubA}\n",
        NLB,
        "Late:\n  Type: AWS::EC2::Instance\n  Properties: {SubnetId: !Ref PubA}\n",
    )
    model = load(text)
    assert str(lbs(model)["NLB"].nodes[0].private_ip) == "10.0.0.5"
    assert str(model.instances["Early"].private_ip) == "10.0.0.4"
    assert str(model.instances["Late"].private_ip) == "10.0.0.6"


def test_public_addresses_are_shared_with_instances_in_creation_order(load):
    public_nic = (
        "{Type: AWS::EC2::Instance, Properties: {NetworkInterfaces: [{DeviceIndex: 0, "
        "SubnetId: !Ref PubA, AssociatePublicIpAddress: true}]}}"
    )
    text = stack(
        f"Early: {public_nic}\n",
        lb_with("NLB", "{Type: network, Subnets: [!Ref PubB, !Ref PubA]}"),
        f"Late: {public_nic}\n",
    )
    model = load(text)
    nodes = lbs(model)["NLB"].nodes
    assert [(n.name, str(n.public_ip)) for n in nodes] == [
        ("NLB-1b", "203.0.113.11"),
        ("NLB-1a", "203.0.113.12"),
    ]
    assert str(model.instances["Early"].public_ip) == "203.0.113.10"
    assert str(model.instances["Late"].public_ip) == "203.0.113.13"


def test_explicit_node_address_is_honoured_and_set_aside(load):
    # Early is created first but must not take .9, which the NLB asks for literally.
    text = stack(
        "Early:\n  Type: AWS::EC2::Instance\n  Properties: {SubnetId: !Ref PrivA, "
        "PrivateIpAddress: 10.0.2.5}\n",
        "Auto:\n  Type: AWS::EC2::Instance\n  Properties: {SubnetId: !Ref PrivA}\n",
        lb_with(
            "In",
            "{Type: network, Scheme: internal, SubnetMappings: "
            "[{SubnetId: !Ref PrivA, PrivateIPv4Address: 10.0.2.6}, "
            "{SubnetId: !Ref PrivB}]}",
        ),
    )
    model = load(text)
    assert [str(n.private_ip) for n in lbs(model)["In"].nodes] == ["10.0.2.6", "10.0.3.5"]
    assert str(model.instances["Auto"].private_ip) == "10.0.2.7"


@pytest.mark.parametrize(
    ("props", "message"),
    [
        (
            "{Type: network, SubnetMappings: [{SubnetId: !Ref PubA, PrivateIPv4Address: "
            "10.0.0.9}]}",
            "PrivateIPv4Address is only for internal network load balancers; LB is internet-facing",
        ),
        (
            "{Scheme: internal, SubnetMappings: [{SubnetId: !Ref PrivA, PrivateIPv4Address: "
            "10.0.2.9}, {SubnetId: !Ref PrivB}]}",
            "LB is an application load balancer",
        ),
        (
            "{Type: network, Scheme: internal, SubnetMappings: [{SubnetId: !Ref PrivA, "
            "PrivateIPv4Address: 10.0.3.9}]}",
            "address 10.0.3.9 is not inside subnet PrivA",
        ),
        (
            "{Type: network, Scheme: internal, SubnetMappings: [{SubnetId: !Ref PrivA, "
            "PrivateIPv4Address: 10.0.2.1}]}",
            "address 10.0.2.1 is reserved by AWS for the VPC router in subnet PrivA",
        ),
        (
            "{Type: network, SubnetMappings: [{SubnetId: !Ref PubA, AllocationId: eipalloc-1}]}",
            "SubnetMappings[0].AllocationId 'eipalloc-1' is not the allocation id of an "
            "Elastic IP of this stack",
        ),
        (
            "{Type: network, SubnetMappings: [{SubnetID: !Ref PubA}]}",
            "unknown property SubnetMappings[0].SubnetID",
        ),
        (
            "{Type: network, SubnetMappings: [{}]}",
            "required property SubnetMappings[0].SubnetId is missing",
        ),
    ],
)
def test_subnet_mapping_errors(fails, props, message):
    text = stack(lb_with("LB", props))
    fails(text, message, logical_id="LB", line=len(text.splitlines()))


def test_internet_facing_lb_needs_public_subnets(fails, line_with):
    text = stack(lb_with("LB", "{Type: network,\n              Subnets: [!Ref PubA, !Ref PrivB]}"))
    fails(
        text,
        "an internet-facing load balancer needs public subnets, but route table "
        "PrivateTable of subnet PrivB has no 0.0.0.0/0 route to an internet gateway",
        "or make the load balancer internal",
        logical_id="LB",
        line=line_with(text, "Subnets: [!Ref PubA, !Ref PrivB]"),
    )


def test_node_addresses_in_outputs_are_final(load):
    text = stack(
        NLB,
        "Late:\n  Type: AWS::EC2::Instance\n  Properties: {NetworkInterfaces: "
        "[{DeviceIndex: 0, SubnetId: !Ref PubA, AssociatePublicIpAddress: "
        "true}]}\n",
    )
    text += "Outputs:\n  Ips: {Value: !GetAtt NLB.NodePublicIps}\n"
    model = load(text)
    assert model.outputs["Ips"] == ["203.0.113.10", "203.0.113.11"]
    assert str(model.instances["Late"].public_ip) == "203.0.113.12"


# --- Errors --------------------------------------------------------------------------------


def test_explicit_node_address_clash_names_the_holder(fails):
    text = stack(
        "Early:\n  Type: AWS::EC2::Instance\n  Properties: {SubnetId: !Ref PrivA, "
        "PrivateIpAddress: 10.0.2.9}\n",
        lb_with(
            "In",
            "{Type: network, Scheme: internal, SubnetMappings: [{SubnetId: "
            "!Ref PrivA, PrivateIPv4Address: 10.0.2.9}]}",
        ),
    )
    fails(
        text,
        "address 10.0.2.9 is already used by Early",
        "give In-1a and Early different",
        logical_id="In",
        line=len(text.splitlines()),
    )


def test_load_balancer_without_subnets_goes_to_the_default_vpc(load):
    # The template's own VPC does not matter: like AWS, no subnets means the default VPC.
    lb = lbs(load(stack(lb_with("LB", "{Type: network}"))))["LB"]
    assert (lb.vpc_id, lb.subnets) == (
        "DefaultVpc",
        ("DefaultSubnet1a", "DefaultSubnet1b", "DefaultSubnet1c"),
    )


@pytest.mark.parametrize(
    ("props", "message", "hint"),
    [
        (
            "{Type: network, Subnets: [!Ref PubA], SubnetMappings: [{SubnetId: !Ref PubB}]}",
            "in Subnets or in SubnetMappings, not both",
            None,
        ),
        ("{Type: network, Subnets: []}", "Subnets is empty", None),
        (
            "{Type: network, Subnets: [!Ref PubA, !Ref OtherNet]}",
            "subnet OtherNet is in Other but subnet PubA is in VPC; a load balancer's subnets must "
            "be in one VPC",
            None,
        ),
        (
            "{Type: network, Subnets: [!Ref PubA, !Ref PrivA]}",
            "subnets PubA and PrivA are both in us-east-1a; a load balancer takes at most one "
            "subnet "
            "per availability zone",
            None,
        ),
        (
            "{Subnets: [!Ref PubA]}",
            "an application load balancer needs subnets in at least two "
            "availability zones, not only us-east-1a",
            None,
        ),
        (
            "{Type: netwrk, Subnets: [!Ref PubA]}",
            "Type must be one of application, network, gateway, not 'netwrk'",
            "did you mean network?",
        ),
        (
            "{Type: gateway, Scheme: internal, Subnets: [!Ref PrivA]}",
            "a gateway load balancer has no Scheme",
            None,
        ),
        (
            "{Type: network, Scheme: public, Subnets: [!Ref PubA]}",
            "Scheme must be one of internet-facing, internal, not 'public'",
            None,
        ),
        (
            "{Type: network, IpAddressType: dualstack, Subnets: [!Ref PubA]}",
            "IpAddressType dualstack is not supported: the lab is IPv4 only",
            None,
        ),
        (
            "{Type: network, Subnets: [!Ref VPC]}",
            "Subnets[0] refers to VPC, which is an AWS::EC2::VPC, not an AWS::EC2::Subnet",
            None,
        ),
        ("{Type: network, Subnets: !Ref PubA}", "Subnets must be a list", None),
        (
            "{Type: network, Subnets: [!Ref PubA], CustomerOwnedIpv4Pool: x}",
            "CustomerOwnedIpv4Pool: Outposts are not supported in the lab",
            None,
        ),
    ],
)
def test_load_balancer_errors(fails, props, message, hint):
    text = stack(lb_with("LB", props))
    err = fails(text, message, logical_id="LB", line=len(text.splitlines()))
    if hint:
        assert hint in str(err)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("-bad", "is not a valid load balancer name"),
        ("bad-", "is not a valid load balancer name"),
        ("has_underscore", "is not a valid load balancer name"),
        ("a" * 33, "use 1-32 letters, digits and hyphens"),
        ("internal-lb", "must not start with 'internal-'"),
    ],
)
def test_bad_names(fails, name, message):
    text = stack(lb_with("LB", f"{{Type: network, Name: {name}, Subnets: [!Ref PubA]}}"))
    fails(text, message, logical_id="LB", line=len(text.splitlines()))


def test_names_are_unique(fails, load):
    one = lb_with("One", "{Type: network, Name: shared, Subnets: [!Ref PubA]}")
    two = lb_with("Two", "{Type: network, Name: SHARED, Subnets: [!Ref PubB]}")
    text = stack(one, two)
    fails(
        text,
        "load balancer name 'SHARED' is already used by One",
        logical_id="Two",
        line=len(text.splitlines()),
    )
    assert lbs(load(stack(one)))["One"].name == "shared"


def test_default_names_are_short_and_valid(load):
    long_id = "Balancer" + "X" * 40
    text = stack(lb_with(long_id, "{Type: network, Subnets: [!Ref PubA]}"))
    name = lbs(load(text, stack_name="a-rather-long-stack-name"))[long_id].name
    assert len(name) <= 32
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]", name)
    assert name.startswith("a-rather-l-BalancerXXXX-")
    assert lbs(load(text, stack_name="internal"))[long_id].name.startswith("lab-")


# --- Attributes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lb_type", "key", "value", "message", "hint"),
    [
        (
            "network",
            "load_balancing.crosszone.enabled",
            "true",
            "unknown network load balancer attribute 'load_balancing.crosszone.enabled'",
            "did you mean load_balancing.cross_zone.enabled?",
        ),
        (
            "network",
            "idle_timeout.timeout_seconds",
            "60",
            "attribute idle_timeout.timeout_seconds does not apply to network load balancers",
            "it is an attribute of application (ALB) load balancers",
        ),
        (
            "application",
            "load_balancing.cross_zone.enabled",
            "false",
            "an application load balancer always balances across zones",
            "per target group",
        ),
        (
            "application",
            "idle_timeout.timeout_seconds",
            "0",
            "attribute idle_timeout.timeout_seconds must be from 1 to 4000, not 0",
            None,
        ),
        ("application", "idle_timeout.timeout_seconds", "4001", "from 1 to 4000", None),
        ("application", "idle_timeout.timeout_seconds", "soon", "must be a whole number", None),
        (
            "application",
            "routing.http.xff_header_processing.mode",
            "drop",
            "must be one of append, preserve, remove, not 'drop'",
            None,
        ),
        (
            "application",
            "routing.http.drop_invalid_header_fields.enabled",
            "maybe",
            "must be true or false, not 'maybe'",
            None,
        ),
        (
            "gateway",
            "dns_record.client_routing_policy",
            "any_availability_zone",
            "does not apply to gateway load balancers",
            "network (NLB)",
        ),
    ],
)
def test_attribute_errors(fails, lb_type, key, value, message, hint):
    subnets = "[!Ref PubA, !Ref PubB]" if lb_type != "gateway" else "[!Ref PrivA]"
    text = stack(
        lb_with(
            "LB",
            f"{{Type: {lb_type}, Subnets: {subnets},\n"
            f"    LoadBalancerAttributes: [{{Key: {key}, Value: {value}}}]}}",
        )
    )
    err = fails(text, message, logical_id="LB", line=len(text.splitlines()))
    if hint:
        assert hint in str(err)


def test_attribute_list_shape_errors(fails):
    base = "{Type: network, Subnets: [!Ref PubA], LoadBalancerAttributes: %s}"
    fails(
        stack(lb_with("LB", base % "[{Key: deletion_protection.enabled}]")),
        "required property LoadBalancerAttributes[0].Value is missing",
        logical_id="LB",
    )
    fails(stack(lb_with("LB", base % "[x]")), "LoadBalancerAttributes[0] must be a mapping")
    twice = (
        "[{Key: deletion_protection.enabled, Value: 'true'}, "
        "{Key: deletion_protection.enabled, Value: 'false'}]"
    )
    fails(
        stack(lb_with("LB", base % twice)), "attribute deletion_protection.enabled is given twice"
    )


def test_alb_attributes_are_checked_and_normalised(load):
    text = stack(
        lb_with(
            "ALB",
            "{Subnets: [!Ref PubA, !Ref PubB], LoadBalancerAttributes: ["
            "{Key: idle_timeout.timeout_seconds, Value: 120}, "
            "{Key: routing.http.xff_header_processing.mode, Value: remove}, "
            "{Key: routing.http.drop_invalid_header_fields.enabled, "
            "Value: 'True'}, "
            "{Key: deletion_protection.enabled, Value: true}]}",
        )
    )
    model = load(text)
    attrs = lbs(model)["ALB"].attributes
    assert attrs["idle_timeout.timeout_seconds"] == "120"
    assert attrs["routing.http.xff_header_processing.mode"] == "remove"
    assert attrs["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert attrs["routing.http2.enabled"] == "true"  # default filled in
    # Accepted, but without meaning in the lab: listed as ignored.
    assert (
        IgnoredProperty("ALB", "LoadBalancerAttributes.deletion_protection.enabled")
        in model.ignored
    )


def test_security_groups_name_groups_of_the_stack(fails):
    # Groups are enforced now (tests/unit/test_model_security_groups.py): an id the stack
    # does not create cannot be emulated.
    text = stack(lb_with("NLB", "{Type: network, Subnets: [!Ref PubA], SecurityGroups: [sg-1]}"))
    fails(text, "SecurityGroups[0] 'sg-1' is not the id of a security group", logical_id="NLB")
