"""Conditions: the condition functions, conditional resources and outputs, Fn::If."""

from __future__ import annotations

import textwrap

import pytest

TEMPLATE = """\
Parameters:
  Env: {{Type: String, Default: prod}}
  Size: {{Type: Number, Default: 3}}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
  IsDev: !Equals [dev, !Ref Env]
  Test: {condition}
Resources:
  VPC:
    Type: AWS::EC2::VPC
    Properties: {{CidrBlock: 10.0.0.0/16}}
  Extra:
    Type: AWS::EC2::InternetGateway
    Condition: Test
Outputs:
  Shown:
    Condition: Test
    Value: shown
"""

CONDITIONS = [
    ("!Equals [a, a]", True),
    ("!Equals [a, b]", False),
    ("!Equals [!Ref Size, 3]", True),  # text comparison: "3" equals 3
    ("!Equals [!Ref Env, !Sub '${Env}']", True),
    ("!Equals [[a, b], [a, b]]", True),
    ("!Equals [true, 'true']", True),
    ("!Equals [!Ref AWS::Region, us-east-1]", True),
    ("!Equals [!FindInMap [M, a, b], x]", True),
    ("!And [!Condition IsProd, !Equals [1, 1]]", True),
    ("!And [!Condition IsProd, !Condition IsDev]", False),
    ("!And [!Condition IsProd, !Condition IsProd, !Condition IsDev]", False),
    ("!Or [!Condition IsProd, !Condition IsDev]", True),
    ("!Or [!Condition IsDev, !Equals [a, b]]", False),
    ("!Not [!Condition IsDev]", True),
    ("!Not [!Equals [a, a]]", False),
    ("!Condition IsProd", True),
    ("{Condition: IsDev}", False),
    ("!Not [!Or [!Condition IsDev, !And [!Condition IsProd, !Equals [x, y]]]]", True),
]


def with_mapping(text: str) -> str:
    return text.replace("Conditions:", "Mappings:\n  M: {a: {b: x}}\nConditions:")


@pytest.mark.parametrize(("condition", "expected"), CONDITIONS)
def test_condition_functions(load, condition, expected):
    model = load(with_mapping(TEMPLATE.format(condition=condition)))
    assert ("Extra" in model.internet_gateways) is expected
    assert ("Extra" in model.resource_types) is expected
    assert ("Extra" in model.creation_order) is expected
    assert ("Shown" in model.outputs) is expected


def test_parameter_override_flips_conditions(load):
    text = TEMPLATE.format(condition="!Condition IsDev")
    assert "Extra" not in load(text).internet_gateways
    assert "Extra" in load(text, params={"Env": "dev"}).internet_gateways


CONDITION_ERRORS = [
    ("!Equals [a]", ["Fn::Equals expects a list of 2"]),
    ("!Not [!Condition IsProd, !Condition IsDev]", ["Fn::Not expects a list of 1"]),
    ("!And [!Condition IsProd]", ["Fn::And expects a list of 2 to 10"]),
    ("!Condition Nope", ["unknown condition 'Nope'"]),
    ("!Condition IsPord", ["did you mean IsProd?"]),
    ("!Condition Test", ["loop: Test -> Test"]),
    ("!Ref Env", ["a condition must be one of"]),
    ("true", ["a condition must be one of"]),
    ("!Equals [!Ref VPC, x]", ["VPC is a resource", "only parameters"]),
    ("!Equals [!Ref Nope, x]", ["'Nope'"]),
    ("!Equals [!Ref AWS::NoValue, x]", ["cannot compare AWS::NoValue"]),
]


@pytest.mark.parametrize(("condition", "fragments"), CONDITION_ERRORS)
def test_condition_errors(fails, condition, fragments):
    fails(TEMPLATE.format(condition=condition), *fragments, logical_id="Test", line=7)


def test_conditions_in_a_loop_name_the_loop(fails):
    text = TEMPLATE.format(condition="!Condition Other").replace(
        "Resources:", "  Other: !Not [!Condition Test]\nResources:"
    )
    err = fails(text, "conditions refer to each other in a loop: Test -> Other -> Test")
    assert str(err).count("loop") == 1  # reported once, not once per condition


def test_unknown_resource_condition(fails):
    text = TEMPLATE.format(condition="!Condition IsProd").replace(
        "    Condition: Test\nOutputs", "    Condition: Tset\nOutputs"
    )
    fails(text, "unknown condition 'Tset'", "did you mean Test?", logical_id="Extra", line=14)


def test_if_picks_a_branch_and_no_value_removes_the_property(load):
    text = """
        Parameters:
          Public: {Type: String, Default: "no", AllowedValues: ["yes", "no"]}
        Conditions:
          IsPublic: !Equals [!Ref Public, "yes"]
        Resources:
          VPC:
            Type: AWS::EC2::VPC
            Properties: {CidrBlock: 10.0.0.0/16}
          Subnet:
            Type: AWS::EC2::Subnet
            Properties:
              VpcId: !Ref VPC
              CidrBlock: !If [IsPublic, 10.0.1.0/24, 10.0.2.0/24]
              MapPublicIpOnLaunch: !If [IsPublic, true, !Ref AWS::NoValue]
    """
    subnet = load(text).subnets["Subnet"]
    assert str(subnet.cidr) == "10.0.2.0/24"
    assert subnet.map_public_ip is False
    subnet = load(text, params={"Public": "yes"}).subnets["Subnet"]
    assert str(subnet.cidr) == "10.0.1.0/24"
    assert subnet.map_public_ip is True


def test_reference_to_a_resource_that_is_not_created(fails, load):
    text = textwrap.dedent("""\
        Conditions:
          Never: !Equals [a, b]
        Resources:
          VPC:
            Type: AWS::EC2::VPC
            Condition: Never
            Properties: {CidrBlock: 10.0.0.0/16}
          Table:
            Type: AWS::EC2::RouteTable
            Properties: {VpcId: !Ref VPC}
    """)
    fails(
        text, "VPC is not created because its condition Never is false", logical_id="Table", line=10
    )
    # Guarded by the same condition, or by Fn::If, the reference is fine.
    guarded = text.replace("Properties: {VpcId", "Condition: Never\n    Properties: {VpcId")
    assert "Table" not in load(guarded).route_tables
    if_guarded = text.replace(
        "Properties: {VpcId: !Ref VPC}", "Properties: {VpcId: !If [Never, !Ref VPC, vpc-x]}"
    )
    fails(if_guarded, "VpcId 'vpc-x' is not the id of a resource")
