"""Security groups in the model: groups, rules, standalone rules, default groups, and the
groups of instances and load balancers."""

from __future__ import annotations

import textwrap
from ipaddress import IPv4Network

import pytest

from testbed.errors import TemplateErrors
from testbed.model.elbv2_types import elbv2_sections
from testbed.model.types import ALL_PROTOCOLS, IgnoredProperty, SecurityGroupRule
from tests.unit.elbv2_data import stack
from tests.unit.network_data import TWO_VPCS, appended

BASE = TWO_VPCS
BASE_LINES = len(BASE.splitlines())


def with_resources(extra: str) -> str:
    return appended(BASE, extra)


def group_with(rules: str, key: str = "SecurityGroupIngress", name: str = "Web") -> str:
    """A group in VPC whose `key` is the YAML list `rules` (one flow mapping per line)."""
    items = "\n".join(f"      - {line}" for line in textwrap.dedent(rules).strip().splitlines())
    return with_resources(
        f"{name}:\n  Type: AWS::EC2::SecurityGroup\n  Properties:\n"
        f"    GroupDescription: web servers\n    VpcId: !Ref VPC\n    {key}:\n{items}\n"
    )


def only_rule(model, key: str = "ingress", name: str = "Web") -> SecurityGroupRule:
    rules = getattr(model.security_groups[name], key)
    assert len(rules) == 1, rules
    return rules[0]


ALL_OUT = SecurityGroupRule(ALL_PROTOCOLS, None, None, cidr=IPv4Network("0.0.0.0/0"))


# --- The group itself --------------------------------------------------------------------------


def test_a_group_with_its_ids_name_and_rules(load):
    text = group_with("{IpProtocol: tcp, FromPort: 80, ToPort: 80, CidrIp: 0.0.0.0/0}") + (
        "Outputs:\n"
        "  Ref: {Value: !Ref Web}\n"
        "  GroupId: {Value: !GetAtt Web.GroupId}\n"
        "  VpcId: {Value: !GetAtt Web.VpcId}\n"
    )
    model = load(text)
    group = model.security_groups["Web"]
    assert (group.group_id, group.vpc_id, group.description, group.is_default) == (
        "sg-Web",
        "VPC",
        "web servers",
        False,
    )
    assert group.name.startswith("default-Web-")  # stack name, logical id, a fixed suffix
    assert group.source.line == BASE_LINES + 1
    assert dict(model.outputs) == {"Ref": "sg-Web", "GroupId": "sg-Web", "VpcId": "vpc-VPC"}
    rule = only_rule(model)
    assert (rule.protocol, rule.from_port, rule.to_port, rule.cidr, rule.group) == (
        6,
        80,
        80,
        IPv4Network("0.0.0.0/0"),
        None,
    )
    assert rule.emulated
    assert rule.defined_by is None
    assert rule.source.line == BASE_LINES + 7


def test_group_name_is_kept(load):
    text = with_resources("""\
        Web:
          Type: AWS::EC2::SecurityGroup
          Properties: {GroupDescription: web, GroupName: web-servers, VpcId: !Ref VPC,
                       Tags: [{Key: Name, Value: web}]}
    """)
    assert load(text).security_groups["Web"].name == "web-servers"


@pytest.mark.parametrize(
    ("props", "message", "line_offset"),
    [
        ("{VpcId: !Ref VPC}", "required property GroupDescription is missing", 3),
        (
            "{GroupDescription: x, GroupName: sg-web, VpcId: !Ref VPC}",
            "must not start with 'sg-'",
            3,
        ),
        (
            "{GroupDescription: x, GroupName: default, VpcId: !Ref VPC}",
            "the VPC's default group",
            3,
        ),
        ("{GroupDescription: 'caf\u00e9 <web>', VpcId: !Ref VPC}", "characters AWS refuses", 3),
        ("{GroupDescription: x, GroupName: '', VpcId: !Ref VPC}", "GroupName is empty", 3),
    ],
)
def test_bad_group_properties(fails, props, message, line_offset):
    text = with_resources(f"Web:\n  Type: AWS::EC2::SecurityGroup\n  Properties: {props}\n")
    fails(text, message, logical_id="Web", line=BASE_LINES + line_offset)


def test_group_names_are_unique_per_vpc(load, fails):
    groups = """\
        First:
          Type: AWS::EC2::SecurityGroup
          Properties: {GroupDescription: x, GroupName: web, VpcId: !Ref VPC}
        Second:
          Type: AWS::EC2::SecurityGroup
          Properties: {GroupDescription: x, GroupName: web, VpcId: !Ref %s}
    """
    fails(
        with_resources(groups % "VPC"),
        "GroupName 'web' is already used by First in VPC",
        logical_id="Second",
        line=BASE_LINES + 6,
    )
    model = load(with_resources(groups % "Other"))
    assert {g.name for g in model.security_groups.values()} >= {"web"}


def test_a_group_without_vpc_goes_to_the_default_vpc(load):
    text = with_resources(
        "Web:\n  Type: AWS::EC2::SecurityGroup\n  Properties: {GroupDescription: x}\n"
    )
    model = load(text)
    assert model.security_groups["Web"].vpc_id == "DefaultVpc"
    assert model.vpcs["DefaultVpc"].is_default


# --- Protocols and ports -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "number"),
    [
        ("tcp", 6),
        ("TCP", 6),
        ("'6'", 6),
        ("6", 6),
        ("udp", 17),
        ("Udp", 17),
        ("'17'", 17),
    ],
)
def test_tcp_and_udp_in_every_spelling(load, protocol, number):
    rule = only_rule(
        load(
            group_with(
                f"{{IpProtocol: {protocol}, FromPort: '1024', ToPort: 65535, CidrIp: 10.0.0.0/16}}"
            )
        )
    )
    assert (rule.protocol, rule.from_port, rule.to_port) == (number, 1024, 65535)


@pytest.mark.parametrize("protocol", ["-1", "'-1'", "50", "'50'"])
def test_protocols_without_ports_ignore_the_ports(load, protocol):
    text = group_with(f"{{IpProtocol: {protocol}, FromPort: 9, ToPort: 2, CidrIp: 10.0.0.0/16}}")
    rule = only_rule(load(text))
    assert rule.protocol == (ALL_PROTOCOLS if "-1" in protocol else 50)
    assert (rule.from_port, rule.to_port) == (None, None)


@pytest.mark.parametrize(
    ("ports", "expected"),
    [
        ("FromPort: -1, ToPort: -1", (-1, -1)),
        ("FromPort: 8, ToPort: -1", (8, -1)),
        ("FromPort: '3', ToPort: '4'", (3, 4)),
    ],
)
def test_icmp_type_and_code(load, ports, expected):
    rule = only_rule(load(group_with(f"{{IpProtocol: ICMP, {ports}, CidrIp: 10.0.0.0/16}}")))
    assert (rule.protocol, rule.from_port, rule.to_port) == (1, *expected)


def test_icmpv6_ports_are_optional(load):
    rule = only_rule(load(group_with("{IpProtocol: icmpv6, CidrIp: 10.0.0.0/16}")))
    assert (rule.protocol, rule.from_port, rule.to_port) == (58, None, None)


@pytest.mark.parametrize(
    ("protocol", "hint"),
    [
        ("tcpp", "did you mean tcp?"),
        ("all", "use -1 for every protocol"),
        ("300", None),
        ("gre", None),
        ("-2", None),
    ],
)
def test_protocols_aws_refuses(fails, protocol, hint):
    err = fails(
        group_with(f"{{IpProtocol: {protocol}, FromPort: 1, ToPort: 2, CidrIp: 10.0.0.0/16}}"),
        "SecurityGroupIngress[0].IpProtocol must be tcp, udp, icmp, icmpv6, -1",
        logical_id="Web",
        line=BASE_LINES + 7,
    )
    if hint:
        assert err.hint == hint


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            "{IpProtocol: tcp, FromPort: 0, ToPort: 70000, CidrIp: 0.0.0.0/0}",
            "ToPort 70000 is not a tcp port",
        ),
        (
            "{IpProtocol: udp, FromPort: -1, ToPort: -1, CidrIp: 0.0.0.0/0}",
            "FromPort -1 is not a udp port",
        ),
        (
            "{IpProtocol: tcp, FromPort: 90, ToPort: 80, CidrIp: 0.0.0.0/0}",
            "FromPort 90 is greater than ToPort 80",
        ),
        (
            "{IpProtocol: tcp, FromPort: 80, CidrIp: 0.0.0.0/0}",
            "a tcp rule needs FromPort and ToPort; ToPort is missing",
        ),
        ("{IpProtocol: tcp, CidrIp: 0.0.0.0/0}", "FromPort is missing"),
        ("{IpProtocol: icmp, CidrIp: 0.0.0.0/0}", "an icmp rule needs FromPort and ToPort"),
        (
            "{IpProtocol: icmp, FromPort: -1, ToPort: 3, CidrIp: 0.0.0.0/0}",
            "ToPort (the code) must be -1",
        ),
        (
            "{IpProtocol: icmp, FromPort: 256, ToPort: -1, CidrIp: 0.0.0.0/0}",
            "is the icmp type: -1 (all) or 0 to 255",
        ),
        (
            "{IpProtocol: tcp, FromPort: http, ToPort: 80, CidrIp: 0.0.0.0/0}",
            "FromPort must be a whole number",
        ),
    ],
)
def test_bad_ports(fails, rule, message):
    fails(group_with(rule), message, logical_id="Web", line=BASE_LINES + 7)


def test_a_port_error_points_at_its_line(fails):
    text = with_resources("""\
        Web:
          Type: AWS::EC2::SecurityGroup
          Properties:
            GroupDescription: x
            VpcId: !Ref VPC
            SecurityGroupIngress:
              - IpProtocol: tcp
                FromPort: 80
                ToPort: 80000
                CidrIp: 0.0.0.0/0
    """)
    fails(text, "ToPort 80000", line=BASE_LINES + 9)


# --- Peers ---------------------------------------------------------------------------------------


def test_a_rule_needs_exactly_one_peer(fails):
    fails(
        group_with("{IpProtocol: tcp, FromPort: 80, ToPort: 80}"),
        "the rule has no source; give exactly one of CidrIp, CidrIpv6, SourceSecurityGroupId",
        line=BASE_LINES + 7,
    )
    fails(
        group_with("{IpProtocol: tcp, FromPort: 80, ToPort: 80}", key="SecurityGroupEgress"),
        "the rule has no destination; give exactly one of CidrIp, CidrIpv6, "
        "DestinationSecurityGroupId",
    )
    fails(
        group_with(
            "{IpProtocol: tcp, FromPort: 80, ToPort: 80, CidrIp: 0.0.0.0/0, CidrIpv6: '::/0'}"
        ),
        "a rule has exactly one peer, not CidrIp and CidrIpv6",
    )


def test_peer_kinds_of_each_direction(fails):
    fails(
        group_with("{IpProtocol: -1, SourceSecurityGroupId: sg-x}", key="SecurityGroupEgress"),
        "unknown property SecurityGroupEgress[0].SourceSecurityGroupId",
        "did you mean DestinationSecurityGroupId?",
    )


def test_ipv6_and_prefix_list_peers_are_kept_but_not_emulated(load):
    text = group_with("""\
        {IpProtocol: tcp, FromPort: 443, ToPort: 443, CidrIpv6: '::/0'}
        {IpProtocol: tcp, FromPort: 443, ToPort: 443, SourcePrefixListId: pl-123}
        {IpProtocol: tcp, FromPort: 22, ToPort: 22, CidrIp: 10.0.0.0/16, SourceSecurityGroupOwnerId: 1}
    """)  # noqa: E501
    model = load(text)
    ipv6, prefix, plain = model.security_groups["Web"].ingress
    assert not ipv6.emulated
    assert not prefix.emulated
    assert plain.emulated
    assert ipv6.cidr is None
    assert ipv6.group is None
    ignored = [i for i in model.ignored if i.logical_id == "Web"]
    assert ignored == [
        IgnoredProperty("Web", "SecurityGroupIngress[0].CidrIpv6"),
        IgnoredProperty("Web", "SecurityGroupIngress[1].SourcePrefixListId"),
        IgnoredProperty("Web", "SecurityGroupIngress[2].SourceSecurityGroupOwnerId"),
    ]


def test_a_cidr_with_host_bits_is_masked_as_ec2_does(load):
    # EC2 keeps the network of a rule's block (an AWS sample's SSHLocation default is
    # 192.168.1.0/0); VPC and subnet blocks stay strict.
    model = load(group_with("{IpProtocol: tcp, FromPort: 22, ToPort: 22, CidrIp: 10.0.0.5/16}"))
    (rule,) = model.security_groups["Web"].ingress
    assert rule.cidr == IPv4Network("10.0.0.0/16")


def test_a_rule_cidr_that_is_no_block_is_refused(fails):
    fails(
        group_with("{IpProtocol: tcp, FromPort: 22, ToPort: 22, CidrIp: 10.0.0/x}"),
        "is not an IPv4 CIDR block such as 10.0.0.0/16",
    )


def test_group_to_group_rules(load):
    text = with_resources("""\
        Lb:
          Type: AWS::EC2::SecurityGroup
          Properties: {GroupDescription: lb, VpcId: !Ref VPC}
        Web:
          Type: AWS::EC2::SecurityGroup
          Properties:
            GroupDescription: web
            VpcId: !Ref VPC
            SecurityGroupIngress:
              - {IpProtocol: tcp, FromPort: 80, ToPort: 80, SourceSecurityGroupId: !Ref Lb}
              - {IpProtocol: tcp, FromPort: 81, ToPort: 81,
                 SourceSecurityGroupId: !GetAtt Lb.GroupId}
              - {IpProtocol: -1, SourceSecurityGroupId: !GetAtt VPC.DefaultSecurityGroup}
            SecurityGroupEgress:
              - {IpProtocol: tcp, FromPort: 5432, ToPort: 5432, DestinationSecurityGroupId: !Ref Lb}
    """)
    web = load(text).security_groups["Web"]
    assert [r.group for r in web.ingress] == ["Lb", "Lb", "VPC.default"]
    assert [(r.group, r.from_port) for r in web.egress] == [("Lb", 5432)]


def test_a_peer_group_of_another_vpc_is_refused(fails):
    text = with_resources("""\
        Far:
          Type: AWS::EC2::SecurityGroup
          Properties: {GroupDescription: far, VpcId: !Ref Other}
        Web:
          Type: AWS::EC2::SecurityGroup
          Properties:
            GroupDescription: web
            VpcId: !Ref VPC
            SecurityGroupIngress:
              - {IpProtocol: tcp, FromPort: 80, ToPort: 80, SourceSecurityGroupId: !Ref Far}
    """)
    fails(
        text,
        "SecurityGroupIngress[0].SourceSecurityGroupId: group Far is in Other, but Web is in VPC",
        logical_id="Web",
        line=BASE_LINES + 10,
    )


def test_a_peer_that_is_not_a_group(fails):
    text = group_with("{IpProtocol: -1, SourceSecurityGroupId: !Ref A}")
    fails(text, "refers to A, which is an AWS::EC2::Subnet, not an AWS::EC2::SecurityGroup")
    fails(
        group_with("{IpProtocol: -1, SourceSecurityGroupId: sg-nothere}"),
        "'sg-nothere' is not the id of a security group of this stack",
    )


def test_source_group_names_need_the_default_vpc(fails):
    fails(
        group_with("{IpProtocol: -1, SourceSecurityGroupName: default}"),
        "only works in the default VPC; Web is in VPC",
        "SourceSecurityGroupId",
    )


def test_groups_naming_each_other_in_embedded_rules_are_a_loop(fails):
    text = with_resources("""\
        Lb:
          Type: AWS::EC2::SecurityGroup
          Properties:
            GroupDescription: lb
            VpcId: !Ref VPC
            SecurityGroupEgress: [{IpProtocol: -1, DestinationSecurityGroupId: !Ref Web}]
        Web:
          Type: AWS::EC2::SecurityGroup
          Properties:
            GroupDescription: web
            VpcId: !Ref VPC
            SecurityGroupIngress: [{IpProtocol: -1, SourceSecurityGroupId: !Ref Lb}]
    """)
    err = fails(text, "resources depend on each other in a loop: Lb -> Web -> Lb")
    assert "standalone AWS::EC2::SecurityGroupIngress" in err.hint


def test_a_group_naming_itself_in_an_embedded_rule_is_a_loop(fails):
    err = fails(
        group_with("{IpProtocol: -1, SourceSecurityGroupId: !Ref Web}"),
        "loop: Web -> Web",
    )
    assert "standalone" in err.hint


# --- Egress --------------------------------------------------------------------------------------


def test_no_embedded_egress_means_all_egress(load):
    model = load(group_with("{IpProtocol: tcp, FromPort: 80, ToPort: 80, CidrIp: 0.0.0.0/0}"))
    assert model.security_groups["Web"].egress == (ALL_OUT,)


def test_embedded_egress_replaces_all_egress(load):
    model = load(
        group_with(
            "{IpProtocol: '-1', CidrIp: 127.0.0.1/32}",
            key="SecurityGroupEgress",
        )
    )
    rule = only_rule(model, "egress")
    assert (rule.protocol, rule.cidr) == (ALL_PROTOCOLS, IPv4Network("127.0.0.1/32"))


def test_an_empty_egress_list_keeps_all_egress(load):
    text = with_resources("""\
        Web:
          Type: AWS::EC2::SecurityGroup
          Properties: {GroupDescription: x, VpcId: !Ref VPC, SecurityGroupEgress: []}
    """)
    assert load(text).security_groups["Web"].egress == (ALL_OUT,)


# --- Standalone rules ----------------------------------------------------------------------------


STANDALONE = """\
    Web:
      Type: AWS::EC2::SecurityGroup
      Properties: {GroupDescription: web, VpcId: !Ref VPC%s}
    Lb:
      Type: AWS::EC2::SecurityGroup
      Properties: {GroupDescription: lb, VpcId: !Ref VPC}
    FromLb:
      Type: AWS::EC2::SecurityGroupIngress
      Properties: {GroupId: !Ref Web, IpProtocol: tcp, FromPort: '80', ToPort: '80',
                   SourceSecurityGroupId: !Ref Lb, Description: from the LB}
    FromPeers:
      Type: AWS::EC2::SecurityGroupIngress
      Properties: {GroupId: !GetAtt Web.GroupId, IpProtocol: -1, SourceSecurityGroupId: !Ref Web}
    ToDb:
      Type: AWS::EC2::SecurityGroupEgress
      Properties: {GroupId: !Ref Web, IpProtocol: tcp, FromPort: 5432, ToPort: 5432,
                   CidrIp: 10.0.9.0/24}
"""


def test_standalone_rules_join_their_group(load):
    web = load(with_resources(STANDALONE % "")).security_groups["Web"]
    assert [(r.group, r.from_port, r.defined_by, r.description) for r in web.ingress] == [
        ("Lb", 80, "FromLb", "from the LB"),
        ("Web", None, "FromPeers", ""),
    ]
    # The implicit allow-all egress stays: EC2 only adds the standalone rule.
    assert web.egress[0] == ALL_OUT
    assert (web.egress[1].cidr, web.egress[1].defined_by) == (IPv4Network("10.0.9.0/24"), "ToDb")


def test_standalone_egress_adds_to_embedded_egress(load):
    extra = (
        ", SecurityGroupEgress: [{IpProtocol: udp, FromPort: 53, ToPort: 53, CidrIp: 10.0.0.2/32}]"
    )
    web = load(with_resources(STANDALONE % extra)).security_groups["Web"]
    assert [(r.protocol, r.defined_by) for r in web.egress] == [(17, None), (6, "ToDb")]


def test_standalone_rules_on_the_default_group(load):
    text = with_resources("""\
        Ssh:
          Type: AWS::EC2::SecurityGroupIngress
          Properties: {GroupId: !GetAtt VPC.DefaultSecurityGroup, IpProtocol: tcp,
                       FromPort: 22, ToPort: 22, CidrIp: 198.51.100.0/24}
    """)
    default = load(text).security_groups["VPC.default"]
    assert [r.defined_by for r in default.ingress] == [None, "Ssh"]


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ("{IpProtocol: -1, CidrIp: 10.0.0.0/16}", "name the group the rule adds to with GroupId"),
        (
            "{GroupId: !Ref Web, GroupName: web, IpProtocol: -1, CidrIp: 10.0.0.0/16}",
            "with GroupId, not both",
        ),
        (
            "{GroupId: !Ref Web, IpProtocol: tcp, FromPort: 80, ToPort: 80}",
            "the rule has no source",
        ),
        (
            "{GroupName: web, IpProtocol: -1, CidrIp: 10.0.0.0/16}",
            "default VPC, which this stack does not have",
        ),
        (
            "{GroupId: sg-elsewhere, IpProtocol: -1, CidrIp: 10.0.0.0/16}",
            "GroupId 'sg-elsewhere' is not the id",
        ),
        (
            "{GroupId: !Ref Web, IpProtocol: tcp, FromPort: 1, ToPort: 0, CidrIp: 10.0.0.0/16}",
            "FromPort 1 is greater",
        ),
    ],
)
def test_bad_standalone_ingress(fails, props, message):
    text = with_resources(
        "Web:\n  Type: AWS::EC2::SecurityGroup\n"
        "  Properties: {GroupDescription: w, VpcId: !Ref VPC}\n"
        f"Rule:\n  Type: AWS::EC2::SecurityGroupIngress\n  Properties: {props}\n"
    )
    fails(text, message, logical_id="Rule")


def test_standalone_egress_needs_group_id(fails):
    text = with_resources(
        "Rule:\n  Type: AWS::EC2::SecurityGroupEgress\n"
        "  Properties: {IpProtocol: -1, CidrIp: 10.0.0.0/16}\n"
    )
    fails(text, "required property GroupId is missing", logical_id="Rule", line=BASE_LINES + 3)


def test_standalone_rule_with_peer_of_another_vpc(fails):
    text = with_resources("""\
        Web:
          Type: AWS::EC2::SecurityGroup
          Properties: {GroupDescription: w, VpcId: !Ref VPC}
        Far:
          Type: AWS::EC2::SecurityGroup
          Properties: {GroupDescription: f, VpcId: !Ref Other}
        Rule:
          Type: AWS::EC2::SecurityGroupIngress
          Properties: {GroupId: !Ref Web, IpProtocol: -1, SourceSecurityGroupId: !Ref Far}
    """)
    fails(text, "group Far is in Other, but Web is in VPC", logical_id="Rule")


# --- Default groups ------------------------------------------------------------------------------


def test_every_vpc_has_a_default_group(load):
    text = BASE + "Outputs:\n  Default: {Value: !GetAtt VPC.DefaultSecurityGroup}\n"
    model = load(text)
    assert set(model.security_groups) == {"VPC.default", "Other.default"}
    group = model.security_groups["VPC.default"]
    assert (group.group_id, group.name, group.vpc_id, group.is_default) == (
        "sg-VPC.default",
        "default",
        "VPC",
        True,
    )
    assert group.ingress == (SecurityGroupRule(ALL_PROTOCOLS, None, None, group="VPC.default"),)
    assert group.egress == (ALL_OUT,)
    assert model.outputs["Default"] == "sg-VPC.default"


def test_default_network_acl_attribute(load):
    text = BASE + "Outputs:\n  Acl: {Value: !GetAtt VPC.DefaultNetworkAcl}\n"
    assert load(text).outputs["Acl"] == "acl-VPC.default"


# --- Instances -----------------------------------------------------------------------------------


def test_instance_groups(load):
    text = with_resources(STANDALONE % "") + textwrap.indent(
        textwrap.dedent("""\
            Web1:
              Type: AWS::EC2::Instance
              Properties:
                SubnetId: !Ref A
                SecurityGroupIds: [!Ref Web, !GetAtt Lb.GroupId, !Ref Web]
            Plain:
              Type: AWS::EC2::Instance
              Properties: {SubnetId: !Ref B}
            Defaulted:
              Type: AWS::EC2::Instance
              Properties:
                SubnetId: !Ref B
                SecurityGroupIds: [!GetAtt VPC.DefaultSecurityGroup, !Ref Web]
            Far:
              Type: AWS::EC2::Instance
              Properties: {SubnetId: !Ref OtherNet, SecurityGroupIds: []}
        """),
        "  ",
    )
    instances = load(text).instances
    assert instances["Web1"].security_groups == ("Web", "Lb")
    assert instances["Plain"].security_groups == ("VPC.default",)
    assert instances["Defaulted"].security_groups == ("VPC.default", "Web")
    assert instances["Far"].security_groups == ("Other.default",)


def test_instance_group_of_another_vpc(fails):
    text = with_resources("""\
        Web:
          Type: AWS::EC2::SecurityGroup
          Properties: {GroupDescription: w, VpcId: !Ref VPC}
        Far:
          Type: AWS::EC2::Instance
          Properties:
            SubnetId: !Ref OtherNet
            SecurityGroupIds: [!Ref Web]
    """)
    fails(
        text,
        "security group Web is in VPC, but instance Far is in Other",
        logical_id="Far",
        line=BASE_LINES + 8,
    )


@pytest.mark.parametrize(
    ("props", "message", "hint"),
    [
        ("SecurityGroupIds: [sg-0123456789abcdef0]", "'sg-0123456789abcdef0' is not the id", None),
        ("SecurityGroupIds: [Web]", "'Web' is not the id of a security group", "write !Ref Web"),
        ("SecurityGroupIds: [web-servers]", "is not the id", "takes group ids (sg-...), not names"),
        ("SecurityGroupIds: sg-1", "SecurityGroupIds must be a list", None),
        (
            "SecurityGroups: [web-servers]",
            "only for the default VPC, and I is in VPC",
            "SecurityGroupIds",
        ),
    ],
)
def test_bad_instance_groups(fails, props, message, hint):
    text = with_resources(
        "Web:\n  Type: AWS::EC2::SecurityGroup\n"
        "  Properties: {GroupDescription: w, GroupName: web-servers, VpcId: !Ref VPC}\n"
        f"I:\n  Type: AWS::EC2::Instance\n  Properties:\n    SubnetId: !Ref A\n    {props}\n"
    )
    err = fails(text, message, logical_id="I", line=BASE_LINES + 8)
    if hint:
        assert hint in err.hint


def test_instance_with_network_interfaces_takes_groups_there(fails):
    text = with_resources("""\
        I:
          Type: AWS::EC2::Instance
          Properties:
            SecurityGroupIds: [!GetAtt VPC.DefaultSecurityGroup]
            NetworkInterfaces: [{DeviceIndex: 0, SubnetId: !Ref A}]
    """)
    fails(text, "GroupSet", "not in SecurityGroupIds", logical_id="I", line=BASE_LINES + 4)


# --- The default VPC (made by the lab for a template that names no VPC) -------------------


DEFAULT_VPC = textwrap.dedent("""\
    Resources:
      Lb:
        Type: AWS::EC2::SecurityGroup
        Properties: {GroupDescription: lb, GroupName: lb-group}
      Web:
        Type: AWS::EC2::SecurityGroup
        DependsOn: Lb
        Properties:
          GroupDescription: web
          SecurityGroupIngress:
            - {IpProtocol: tcp, FromPort: 80, ToPort: 80, SourceSecurityGroupName: lb-group}
            - {IpProtocol: tcp, FromPort: 22, ToPort: 22, SourceSecurityGroupName: default}
""")


def test_groups_without_vpc_go_to_the_default_vpc(load):
    model = load(DEFAULT_VPC)
    assert model.security_groups["Web"].vpc_id == "DefaultVpc"
    assert [r.group for r in model.security_groups["Web"].ingress] == ["Lb", "DefaultVpc.default"]


def test_instance_group_names_in_the_default_vpc(load, fails):
    instance = textwrap.indent(
        textwrap.dedent("""\
            I:
              Type: AWS::EC2::Instance
              Properties:
                AvailabilityZone: us-east-1a
                SecurityGroups: [lb-group, !Ref Web, default]
        """),
        "  ",
    )
    model = load(DEFAULT_VPC + instance)
    assert model.instances["I"].security_groups == ("Lb", "Web", "DefaultVpc.default")
    err = fails(
        DEFAULT_VPC + instance.replace("lb-group,", "lb-grup,"),
        "SecurityGroups[0] 'lb-grup' is not the name of a security group of the default VPC",
        logical_id="I",
    )
    assert err.hint == "did you mean lb-group?"


def test_standalone_ingress_by_group_name_in_the_default_vpc(load):
    rule = textwrap.indent(
        textwrap.dedent("""\
            Rule:
              Type: AWS::EC2::SecurityGroupIngress
              DependsOn: Lb
              Properties: {GroupName: lb-group, IpProtocol: tcp, FromPort: 443, ToPort: 443,
                           CidrIp: 0.0.0.0/0}
        """),
        "  ",
    )
    lb = load(DEFAULT_VPC + rule).security_groups["Lb"]
    assert [(r.from_port, r.defined_by) for r in lb.ingress] == [(443, "Rule")]


# --- Load balancers ------------------------------------------------------------------------------


LB_GROUPS = """\
  LbGroup:
    Type: AWS::EC2::SecurityGroup
    Properties: {GroupDescription: lb, VpcId: !Ref VPC}
  FarGroup:
    Type: AWS::EC2::SecurityGroup
    Properties: {GroupDescription: far, VpcId: !Ref Other}
  Lb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties: %s
"""


def lb_groups(load, props: str):
    model = load(stack(LB_GROUPS % props))
    return elbv2_sections(model)["load_balancers"]["Lb"].security_groups


def test_load_balancer_groups(load):
    both = "[!Ref PubA, !Ref PubB]"
    assert lb_groups(load, f"{{Subnets: {both}, SecurityGroups: [!Ref LbGroup]}}") == ("LbGroup",)
    assert lb_groups(load, f"{{Subnets: {both}}}") == ("VPC.default",)
    assert lb_groups(load, f"{{Type: network, Subnets: {both}}}") is None
    assert lb_groups(load, f"{{Type: network, Subnets: {both}, SecurityGroups: []}}") is None
    assert lb_groups(
        load, f"{{Type: network, Subnets: {both}, SecurityGroups: [!GetAtt LbGroup.GroupId]}}"
    ) == ("LbGroup",)
    assert lb_groups(load, "{Type: gateway, Subnets: [!Ref PrivA]}") is None


def test_bad_load_balancer_groups(fails):
    fails(
        stack(LB_GROUPS % "{Type: gateway, Subnets: [!Ref PrivA], SecurityGroups: [!Ref LbGroup]}"),
        "a gateway load balancer has no security groups",
        logical_id="Lb",
    )
    fails(
        stack(LB_GROUPS % "{Subnets: [!Ref PubA, !Ref PubB], SecurityGroups: [!Ref FarGroup]}"),
        "security group FarGroup is in Other, but load balancer Lb is in VPC",
        logical_id="Lb",
    )


# --- Every error in one pass ---------------------------------------------------------------------


def test_every_rule_error_is_reported_at_once(fails):
    text = group_with("""\
        {IpProtocol: tcpp, FromPort: 80, ToPort: 80, CidrIp: 0.0.0.0/0}
        {IpProtocol: tcp, FromPort: 80, ToPort: 99999, CidrIp: 0.0.0.0/0}
        {IpProtocol: tcp, FromPort: 80, ToPort: 80}
    """)
    err = fails(text, "IpProtocol must be", "ToPort 99999", "the rule has no source")
    assert isinstance(err, TemplateErrors)
    assert [e.line for e in err.errors] == [BASE_LINES + 7, BASE_LINES + 8, BASE_LINES + 9]


def test_errors_of_several_groups_are_reported_at_once(fails):
    text = with_resources("""\
        One:
          Type: AWS::EC2::SecurityGroup
          Properties: {GroupDescription: x, GroupName: sg-one, VpcId: !Ref VPC}
        Two:
          Type: AWS::EC2::SecurityGroup
          Properties:
            GroupDescription: y
            VpcId: !Ref VPC
            SecurityGroupIngress: [{IpProtocol: all, CidrIp: 0.0.0.0/0}]
    """)
    err = fails(text, "must not start with 'sg-'", "IpProtocol must be")
    assert {e.logical_id for e in err.errors} == {"One", "Two"}
