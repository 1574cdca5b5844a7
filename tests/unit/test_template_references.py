"""References between resources: creation order, DependsOn, dangling references, loops."""

from __future__ import annotations

import textwrap

import pytest

from testbed.errors import TemplateErrors
from testbed.template.references import creation_order, find_cycle

# Declared children-first on purpose: the creation order must put parents first anyway.
CHAIN = textwrap.dedent("""\
    Resources:
      Table:
        Type: AWS::EC2::RouteTable
        Properties: {VpcId: !Ref VPC}
      Gateway:
        Type: AWS::EC2::InternetGateway
      VPC:
        Type: AWS::EC2::VPC
        Properties: {CidrBlock: 10.0.0.0/16}
      Other:
        Type: AWS::EC2::InternetGateway
""")


def test_dependencies_come_first_and_ties_keep_declaration_order(load):
    assert load(CHAIN).creation_order == ("Gateway", "VPC", "Table", "Other")


def test_depends_on_string_and_list(load):
    text = CHAIN.replace(
        "Type: AWS::EC2::InternetGateway\n  VPC",
        "Type: AWS::EC2::InternetGateway\n    DependsOn: Other\n  VPC",
    )
    assert load(text).creation_order == ("VPC", "Table", "Other", "Gateway")
    text = CHAIN.replace(
        "Type: AWS::EC2::InternetGateway\n  VPC",
        "Type: AWS::EC2::InternetGateway\n    DependsOn: [Other, Table]\n  VPC",
    )
    assert load(text).creation_order == ("VPC", "Table", "Other", "Gateway")


def test_getatt_and_sub_are_dependencies(load):
    text = textwrap.dedent("""\
        Resources:
          A:
            Type: AWS::EC2::InternetGateway
            Properties:
              Tags: [{Key: k, Value: !Sub "${C.CidrBlock}"}]
          B:
            Type: AWS::EC2::InternetGateway
            Properties:
              Tags: [{Key: k, Value: !GetAtt A.InternetGatewayId}]
          C:
            Type: AWS::EC2::VPC
            Properties: {CidrBlock: 10.0.0.0/16}
    """)
    assert load(text).creation_order == ("C", "A", "B")


def test_untaken_if_branch_is_not_a_dependency(load):
    text = textwrap.dedent("""\
        Conditions:
          Never: !Equals [a, b]
        Resources:
          A:
            Type: AWS::EC2::InternetGateway
            Properties:
              Tags: [{Key: k, Value: !If [Never, !Ref B, plain]}]
          B:
            Type: AWS::EC2::InternetGateway
    """)
    assert load(text).creation_order == ("A", "B")
    assert load(text.replace("Never, !Ref B, plain", "Never, plain, !Ref B")).creation_order == (
        "B",
        "A",
    )


DANGLING = [
    (
        "VpcId: !Ref VPCC",
        "Ref VPCC: there is no parameter or resource named 'VPCC'",
        "did you mean VPC?",
    ),
    ("VpcId: !GetAtt Nope.VpcId", "Fn::GetAtt Nope.VpcId: there is no resource named 'Nope'", None),
    (
        "VpcId: !Sub 'vpc-${Vpc}'",
        "${Vpc} in Fn::Sub: there is no parameter or resource",
        "did you mean VPC?",
    ),
]


@pytest.mark.parametrize(("prop", "message", "hint"), DANGLING)
def test_dangling_references_name_ids_and_line(fails, prop, message, hint):
    text = CHAIN.replace("Properties: {VpcId: !Ref VPC}", f"Properties: {{{prop}}}")
    err = fails(text, message, logical_id="Table", line=4)
    if hint:
        assert hint in str(err)


def test_dangling_depends_on(fails):
    text = CHAIN.replace(
        "Type: AWS::EC2::InternetGateway\n  VPC",
        "Type: AWS::EC2::InternetGateway\n    DependsOn: [Other, Tabel]\n  VPC",
    )
    fails(
        text,
        "DependsOn Tabel: there is no resource named 'Tabel'",
        "did you mean Table?",
        logical_id="Gateway",
        line=7,
    )


def test_depends_on_must_be_names(fails):
    text = CHAIN.replace(
        "Type: AWS::EC2::InternetGateway\n  VPC",
        "Type: AWS::EC2::InternetGateway\n    DependsOn: {A: 1}\n  VPC",
    )
    fails(text, "DependsOn must be a logical id or a list", logical_id="Gateway", line=7)


def test_several_dangling_references_are_reported_together(fails):
    text = CHAIN.replace("{VpcId: !Ref VPC}", "{VpcId: !Ref X1}").replace(
        "Type: AWS::EC2::InternetGateway\n  VPC",
        "Type: AWS::EC2::InternetGateway\n    DependsOn: X2\n  VPC",
    )
    err = fails(text, "'X1'", "X2")
    assert isinstance(err, TemplateErrors)
    assert [(e.logical_id, e.line) for e in err.errors] == [("Table", 4), ("Gateway", 7)]


def test_cycle_names_the_path_and_the_line(fails):
    text = CHAIN.replace("Type: AWS::EC2::VPC\n", "Type: AWS::EC2::VPC\n    DependsOn: Table\n")
    err = fails(
        text,
        "resources depend on each other in a loop: Table -> VPC -> Table",
        logical_id="Table",
        line=4,
    )
    assert "Table uses VPC (Ref on line 4)" in str(err)
    assert "VPC uses Table (DependsOn on line 9)" in str(err)


def test_self_reference_is_a_cycle(fails):
    text = CHAIN.replace(
        "Type: AWS::EC2::InternetGateway\n  VPC",
        "Type: AWS::EC2::InternetGateway\n    DependsOn: Gateway\n  VPC",
    )
    fails(text, "loop: Gateway -> Gateway", logical_id="Gateway", line=7)


def test_three_step_cycle(fails):
    text = textwrap.dedent("""\
        Resources:
          A: {Type: AWS::EC2::InternetGateway, DependsOn: B}
          B: {Type: AWS::EC2::InternetGateway, DependsOn: C}
          C: {Type: AWS::EC2::InternetGateway, DependsOn: A}
          D: {Type: AWS::EC2::InternetGateway}
    """)
    fails(text, "loop: A -> B -> C -> A", logical_id="A", line=2)


def test_reading_a_public_ip_waits_for_the_routing(load):
    text = textwrap.dedent("""\
        Resources:
          Peer:
            Type: Lab::Internet::Client
            Properties:
              UserData: !Sub "curl http://${Web.PublicIp}/"
          VPC:
            Type: AWS::EC2::VPC
            Properties: {CidrBlock: 10.0.0.0/16}
          Subnet:
            Type: AWS::EC2::Subnet
            Properties: {VpcId: !Ref VPC, CidrBlock: 10.0.0.0/24, MapPublicIpOnLaunch: true}
          Web:
            Type: AWS::EC2::Instance
            Properties: {SubnetId: !Ref Subnet}
          Gateway: {Type: AWS::EC2::InternetGateway}
          Attach:
            Type: AWS::EC2::VPCGatewayAttachment
            Properties: {VpcId: !Ref VPC, InternetGatewayId: !Ref Gateway}
          Table:
            Type: AWS::EC2::RouteTable
            Properties: {VpcId: !Ref VPC}
          Default:
            Type: AWS::EC2::Route
            Properties: {RouteTableId: !Ref Table, DestinationCidrBlock: 0.0.0.0/0,
                         GatewayId: !Ref Gateway}
          Assoc:
            Type: AWS::EC2::SubnetRouteTableAssociation
            Properties: {SubnetId: !Ref Subnet, RouteTableId: !Ref Table}
    """)
    model = load(text)
    order = model.creation_order
    assert order.index("Peer") > max(order.index(x) for x in ("Attach", "Default", "Assoc"))
    assert model.internet_clients["Peer"].user_data == "curl http://203.0.113.10/"


def test_graph_helpers():
    deps = {"b": {"a"}, "c": {"b"}, "d": set()}
    assert creation_order(["c", "b", "a", "d"], deps) == ["a", "b", "c", "d"]
    assert find_cycle(["c", "b", "a", "d"], deps) == []
    loop = {"a": {"b"}, "b": {"a"}}
    assert creation_order(["a", "b"], loop) is None
    assert find_cycle(["a", "b"], loop) == ["a", "b", "a"]
