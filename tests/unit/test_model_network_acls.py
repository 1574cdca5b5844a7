"""Network ACLs in the model: NetworkAcl, NetworkAclEntry, SubnetNetworkAclAssociation."""

from __future__ import annotations

import textwrap
from ipaddress import IPv4Network

import pytest

from testbed.errors import TemplateErrors
from testbed.model.types import ALL_PROTOCOLS, IgnoredProperty
from tests.unit.network_data import TWO_VPCS, appended

# VPC with subnets A and B, a second VPC Other with OtherNet, and a NACL Acl in VPC.
BASE = appended(
    TWO_VPCS,
    """\
    Acl:
      Type: AWS::EC2::NetworkAcl
      Properties: {VpcId: !Ref VPC, Tags: [{Key: Name, Value: private}]}
    """,
)
BASE_LINES = len(BASE.splitlines())


def with_resources(extra: str) -> str:
    return appended(BASE, extra)


def entry(name: str, props: str) -> str:
    """A NetworkAclEntry of Acl with flow-style properties (NetworkAclId added)."""
    return (
        f"{name}:\n  Type: AWS::EC2::NetworkAclEntry\n"
        f"  Properties: {{NetworkAclId: !Ref Acl, {props}}}\n"
    )


def one_entry(props: str) -> str:
    return with_resources(entry("E", props))


def test_entries_in_every_spelling_sorted_by_rule_number(load):
    text = with_resources(
        entry(
            "InWeb",
            "RuleNumber: '200', Protocol: '6', RuleAction: allow, Egress: 'false', "
            "CidrBlock: 0.0.0.0/0, PortRange: {From: '80', To: '80'}",
        )
        + entry(
            "InReplies",
            "RuleNumber: 100, Protocol: 6, RuleAction: allow, CidrBlock: 0.0.0.0/0, "
            "PortRange: {From: 1024, To: 65535}",
        )
        + entry(
            "OutAll",
            "RuleNumber: 100, Protocol: -1, RuleAction: allow, Egress: true, "
            "CidrBlock: 0.0.0.0/0, PortRange: {From: 5, To: 1}",
        )
        + entry(
            "InPing",
            "RuleNumber: 90, Protocol: '1', RuleAction: deny, CidrBlock: 10.9.0.0/16, "
            "Icmp: {Type: 8, Code: -1}",
        )
        + entry(
            "InUdp",
            "RuleNumber: 300, Protocol: 17, RuleAction: allow, CidrBlock: 10.0.0.0/16, "
            "PortRange: {From: 53, To: 53}",
        )
        + entry(
            "InEsp", "RuleNumber: 400, Protocol: '50', RuleAction: allow, CidrBlock: 10.0.0.0/16"
        )
    )
    acl = load(text).network_acls["Acl"]
    assert (acl.vpc_id, acl.subnets) == ("VPC", ())
    assert [(e.logical_id, e.rule_number, e.egress) for e in acl.entries] == [
        ("InPing", 90, False),
        ("InReplies", 100, False),
        ("OutAll", 100, True),
        ("InWeb", 200, False),
        ("InUdp", 300, False),
        ("InEsp", 400, False),
    ]
    by_id = {e.logical_id: e for e in acl.entries}
    web = by_id["InWeb"]
    assert (web.protocol, web.cidr, web.allow, web.ports, web.icmp) == (
        6,
        IPv4Network("0.0.0.0/0"),
        True,
        (80, 80),
        None,
    )
    assert (by_id["OutAll"].protocol, by_id["OutAll"].ports) == (ALL_PROTOCOLS, None)
    assert (by_id["InPing"].allow, by_id["InPing"].icmp, by_id["InPing"].ports) == (
        False,
        (8, -1),
        None,
    )
    assert by_id["InUdp"].ports == (53, 53)
    assert (by_id["InEsp"].protocol, by_id["InEsp"].ports) == (50, None)
    assert by_id["InWeb"].source.line == BASE_LINES + 1


def test_ids_and_attributes(load):
    text = with_resources("""\
        Assoc:
          Type: AWS::EC2::SubnetNetworkAclAssociation
          Properties: {SubnetId: !Ref A, NetworkAclId: !Ref Acl}
    """) + (
        "Outputs:\n"
        "  Ref: {Value: !Ref Acl}\n"
        "  Id: {Value: !GetAtt Acl.Id}\n"
        "  Assoc: {Value: !GetAtt Assoc.AssociationId}\n"
        "  Default: {Value: !GetAtt VPC.DefaultNetworkAcl}\n"
    )
    model = load(text)
    assert dict(model.outputs) == {
        "Ref": "acl-Acl",
        "Id": "acl-Acl",
        "Assoc": "aclassoc-Assoc",
        "Default": "acl-VPC.default",
    }
    assert model.network_acls["Acl"].subnets == ("A",)


def test_a_nacl_without_entries_denies_everything(load):
    # Nothing to program beyond the implicit final deny: an empty entry list.
    assert load(BASE).network_acls["Acl"].entries == ()


def test_subnets_of_a_nacl_in_association_order(load):
    text = with_resources("""\
        AssocB:
          Type: AWS::EC2::SubnetNetworkAclAssociation
          Properties: {SubnetId: !Ref B, NetworkAclId: !Ref Acl}
        AssocA:
          Type: AWS::EC2::SubnetNetworkAclAssociation
          Properties: {SubnetId: !Ref A, NetworkAclId: !GetAtt Acl.Id}
    """)
    assert load(text).network_acls["Acl"].subnets == ("B", "A")


def test_associating_the_default_nacl_means_no_nacl(load, fails):
    assoc = """\
        ToDefault:
          Type: AWS::EC2::SubnetNetworkAclAssociation
          Properties: {SubnetId: !Ref A, NetworkAclId: !GetAtt VPC.DefaultNetworkAcl}
    """
    model = load(with_resources(assoc))
    assert model.network_acls["Acl"].subnets == ()
    again = """\
        ToAcl:
          Type: AWS::EC2::SubnetNetworkAclAssociation
          DependsOn: ToDefault
          Properties: {SubnetId: !Ref A, NetworkAclId: !Ref Acl}
    """
    fails(
        with_resources(textwrap.dedent(assoc) + textwrap.dedent(again)),
        "subnet A is already associated with network ACL VPC.default by ToDefault; a subnet "
        "has one network ACL",
        logical_id="ToAcl",
        line=BASE_LINES + 7,
    )


def test_ipv6_entries_are_listed_as_ignored_but_keep_their_number(load, fails):
    v6 = entry("V6", "RuleNumber: 101, Protocol: -1, RuleAction: allow, Ipv6CidrBlock: '::/0'")
    model = load(with_resources(v6))
    assert model.network_acls["Acl"].entries == ()
    assert IgnoredProperty("V6", "Ipv6CidrBlock") in model.ignored
    v4 = entry("V4", "RuleNumber: 101, Protocol: -1, RuleAction: allow, CidrBlock: 0.0.0.0/0")
    fails(with_resources(v6 + v4), "Acl already has ingress rule number 101: V6", logical_id="V4")


OPEN = "RuleAction: allow, CidrBlock: 0.0.0.0/0"  # the rest of a valid entry


@pytest.mark.parametrize(
    ("props", "message", "hint"),
    [
        (f"RuleNumber: 0, Protocol: -1, {OPEN}", "RuleNumber must be from 1 to 32766, not 0", None),
        (f"RuleNumber: 32767, Protocol: -1, {OPEN}", "not 32767", None),
        (f"RuleNumber: one, Protocol: -1, {OPEN}", "RuleNumber must be a whole number", None),
        (f"RuleNumber: 1, Protocol: tcp, {OPEN}", "must be a protocol number", "write 6 for tcp"),
        (f"RuleNumber: 1, Protocol: all, {OPEN}", "not 'all'", "write -1 for all"),
        (f"RuleNumber: 1, Protocol: 300, {OPEN}", "not '300'", None),
        (
            "RuleNumber: 1, Protocol: -1, RuleAction: Allow, CidrBlock: 0.0.0.0/0",
            "RuleAction must be allow or deny, not 'Allow'",
            "did you mean allow?",
        ),
        ("RuleNumber: 1, Protocol: -1, RuleAction: permit, CidrBlock: 0.0.0.0/0", "'permit'", None),
        (
            f"RuleNumber: 1, Protocol: 6, {OPEN}",
            "a tcp entry needs a PortRange",
            "PortRange: {From: 1024, To: 65535}",
        ),
        (
            f"RuleNumber: 1, Protocol: 17, {OPEN}, PortRange: {{From: 9, To: 1}}",
            "PortRange.From 9 is greater than PortRange.To 1",
            None,
        ),
        (
            f"RuleNumber: 1, Protocol: 6, {OPEN}, PortRange: {{From: 1, To: 70000}}",
            "PortRange.To 70000 is not a port",
            None,
        ),
        (
            f"RuleNumber: 1, Protocol: 6, {OPEN}, PortRange: {{From: 1}}",
            "required property PortRange.To is missing",
            None,
        ),
        (f"RuleNumber: 1, Protocol: 1, {OPEN}", "an icmp entry (Protocol 1) needs Icmp", None),
        (
            f"RuleNumber: 1, Protocol: 1, {OPEN}, Icmp: {{Type: 300}}",
            "Icmp.Type must be -1 (all) or 0 to 255, not 300",
            None,
        ),
        (
            "RuleNumber: 1, Protocol: -1, RuleAction: allow",
            "give the entry's addresses in CidrBlock",
            "CidrBlock: 0.0.0.0/0",
        ),
        (
            f"RuleNumber: 1, Protocol: -1, {OPEN}, Ipv6CidrBlock: '::/0'",
            "in CidrBlock, not both",
            None,
        ),
        (
            "RuleNumber: 1, Protocol: -1, RuleAction: allow, CidrBlock: 10.0.0.1/16",
            "has host bits set",
            None,
        ),
        (f"RuleNumber: 1, Protocol: -1, {OPEN}, Egress: maybe", "must be true or false", None),
    ],
)
def test_bad_entries(fails, props, message, hint):
    err = fails(one_entry(props), message, logical_id="E")
    if hint:
        assert hint in (err.hint or ""), err.hint


def test_an_entry_error_points_at_the_property(fails):
    text = with_resources("""\
        E:
          Type: AWS::EC2::NetworkAclEntry
          Properties:
            NetworkAclId: !Ref Acl
            RuleNumber: 40000
            Protocol: -1
            RuleAction: allow
            CidrBlock: 0.0.0.0/0
    """)
    fails(text, "RuleNumber must be from 1 to 32766", line=BASE_LINES + 5)


def test_rule_numbers_are_unique_per_direction(load, fails):
    first = entry("First", "RuleNumber: 100, Protocol: -1, RuleAction: allow, CidrBlock: 0.0.0.0/0")
    same = entry("Same", "RuleNumber: '100', Protocol: -1, RuleAction: deny, CidrBlock: 10.0.0.0/8")
    out = entry(
        "Out",
        "RuleNumber: 100, Protocol: -1, RuleAction: allow, Egress: true, CidrBlock: 0.0.0.0/0",
    )
    err = fails(
        with_resources(first + same),
        f"Acl already has ingress rule number 100: First (line {BASE_LINES + 3}); a rule "
        "number is used once per direction",
        logical_id="Same",
        line=BASE_LINES + 6,
    )
    assert not isinstance(err, TemplateErrors)
    assert len(load(with_resources(first + out)).network_acls["Acl"].entries) == 2


def test_entries_of_the_default_nacl_are_not_supported(fails):
    text = with_resources("""\
        E:
          Type: AWS::EC2::NetworkAclEntry
          Properties: {NetworkAclId: !GetAtt VPC.DefaultNetworkAcl, RuleNumber: 1,
                       Protocol: -1, RuleAction: deny, CidrBlock: 10.9.0.0/16}
    """)
    fails(text, "default network ACL are not supported by the lab yet", logical_id="E")


@pytest.mark.parametrize(
    ("acl", "message"),
    [
        ("acl-Nope", "NetworkAclId 'acl-Nope' is not the id of a network ACL of this stack"),
        ("Acl", "'Acl' is not the id"),
        ("!Ref A", "refers to A, which is an AWS::EC2::Subnet, not an AWS::EC2::NetworkAcl"),
    ],
)
def test_entries_name_a_nacl_of_the_stack(fails, acl, message):
    text = with_resources(
        "E:\n  Type: AWS::EC2::NetworkAclEntry\n"
        f"  Properties: {{NetworkAclId: {acl}, RuleNumber: 1, Protocol: -1, RuleAction: allow,"
        " CidrBlock: 0.0.0.0/0}\n"
    )
    err = fails(text, message, logical_id="E", line=BASE_LINES + 3)
    if acl == "Acl":
        assert err.hint == "write !Ref Acl to use that network ACL"


def test_a_subnet_has_one_nacl(fails):
    text = with_resources("""\
        Second:
          Type: AWS::EC2::NetworkAcl
          Properties: {VpcId: !Ref VPC}
        One:
          Type: AWS::EC2::SubnetNetworkAclAssociation
          Properties: {SubnetId: !Ref A, NetworkAclId: !Ref Acl}
        Two:
          Type: AWS::EC2::SubnetNetworkAclAssociation
          Properties: {SubnetId: !Ref A, NetworkAclId: !Ref Second}
    """)
    fails(
        text,
        "subnet A is already associated with network ACL Acl by One",
        logical_id="Two",
        line=BASE_LINES + 9,
    )


def test_a_nacl_of_another_vpc_is_refused(fails):
    text = with_resources("""\
        Assoc:
          Type: AWS::EC2::SubnetNetworkAclAssociation
          Properties: {SubnetId: !Ref OtherNet, NetworkAclId: !Ref Acl}
    """)
    err = fails(
        text,
        "subnet OtherNet is in Other but network ACL Acl belongs to VPC",
        logical_id="Assoc",
        line=BASE_LINES + 3,
    )
    assert "a network ACL of its VPC" in err.hint


def test_a_nacl_needs_a_vpc(fails):
    text = with_resources("Bare:\n  Type: AWS::EC2::NetworkAcl\n  Properties: {}\n")
    fails(text, "required property VpcId is missing", logical_id="Bare")


def test_errors_of_several_entries_are_reported_at_once(fails):
    text = with_resources(
        entry("One", "RuleNumber: 0, Protocol: -1, RuleAction: allow, CidrBlock: 0.0.0.0/0")
        + entry("Two", "RuleNumber: 1, Protocol: tcp, RuleAction: allow, CidrBlock: 0.0.0.0/0")
    )
    err = fails(text, "RuleNumber must be from 1", "Protocol must be a protocol number")
    assert {e.logical_id for e in err.errors} == {"One", "Two"}
