"""Intrinsic functions and pseudo parameters, evaluated as an output Value."""

from __future__ import annotations

import base64

import pytest

from testbed.errors import BadInput
from testbed.template.intrinsics import sub_pieces

VALUES = [
    # Ref: parameters (Number stays text, as in AWS), lists, pseudo parameters, resources
    ("!Ref Env", "prod"),
    ("!Ref Count", "3"),
    ("!Ref Zones", ["a", "b", "c"]),
    ("!Ref VPC", "vpc-VPC"),
    ("!Ref Subnet", "subnet-Subnet"),
    ("!Ref AWS::StackName", "default"),
    ("!Ref AWS::Region", "us-east-1"),
    ("!Ref AWS::AccountId", "123456789012"),
    ("!Ref AWS::Partition", "aws"),
    ("!Ref AWS::URLSuffix", "amazonaws.com"),
    ("!Ref AWS::NotificationARNs", []),
    ("{Ref: Env}", "prod"),
    # GetAtt, both forms
    ("!GetAtt VPC.CidrBlock", "10.0.0.0/16"),
    ("!GetAtt [Subnet, AvailabilityZone]", "us-east-1b"),
    ("{'Fn::GetAtt': [Subnet, VpcId]}", "vpc-VPC"),
    ("!GetAtt Subnet.SubnetId", "subnet-Subnet"),
    # Sub
    ("!Sub '${Env}-${AWS::Region}'", "prod-us-east-1"),
    ("!Sub '${VPC}/${Subnet.CidrBlock}'", "vpc-VPC/10.0.1.0/24"),
    ("!Sub '${!Literal} ${ Env }'", "${Literal} prod"),
    ("!Sub ['${A}-${Env}', {A: !Ref Count}]", "3-prod"),
    ("!Sub ['${Env}', {Env: shadowed}]", "shadowed"),
    ("!Sub 'no variables'", "no variables"),
    ("!Sub '$(hostname) $HOME'", "$(hostname) $HOME"),
    # Join, Select, Split
    ("!Join ['-', [a, 1, true]]", "a-1-true"),
    ("!Join ['', []]", ""),
    ("!Join [',', !Ref Zones]", "a,b,c"),
    ("!Select [1, [x, y, z]]", "y"),
    ("!Select ['2', !Ref Zones]", "c"),
    ("!Select [0, !Split ['/', 10.0.0.0/16]]", "10.0.0.0"),
    ("!Split [',', 'a,,b']", ["a", "", "b"]),
    # If, with AWS::NoValue removing list items
    ("!If [IsProd, yes-prod, not-prod]", "yes-prod"),
    ("!If [IsDev, yes-dev, not-dev]", "not-dev"),
    ("[a, !If [IsDev, b, !Ref AWS::NoValue], c]", ["a", "c"]),
    ("{K: !If [IsDev, v, !Ref AWS::NoValue], L: 1}", {"L": 1}),
    # Base64
    ("!Base64 hello", base64.b64encode(b"hello").decode()),
    # GetAZs
    ("!GetAZs ''", ["us-east-1a", "us-east-1b", "us-east-1c"]),
    ("{'Fn::GetAZs': !Ref AWS::Region}", ["us-east-1a", "us-east-1b", "us-east-1c"]),
    ("!GetAZs eu-west-1", ["eu-west-1a", "eu-west-1b", "eu-west-1c"]),
    # Cidr: count blocks of 2**cidrBits addresses, from the start of the block
    ("!Cidr [10.0.0.0/16, 3, 8]", ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"]),
    (
        "!Cidr [10.0.0.0/24, 4, 6]",
        ["10.0.0.0/26", "10.0.0.64/26", "10.0.0.128/26", "10.0.0.192/26"],
    ),
    ("!Cidr [!GetAtt VPC.CidrBlock, 2, 12]", ["10.0.0.0/20", "10.0.16.0/20"]),
    ("!Cidr [192.168.0.0/24, '1', '0']", ["192.168.0.0/32"]),
    ("!Select [255, !Cidr [10.0.0.0/16, 256, 8]]", "10.0.255.0/24"),
    # FindInMap, with intrinsic keys and a default
    ("!FindInMap [RegionMap, !Ref AWS::Region, Ami]", "ami-1"),
    ("!FindInMap [RegionMap, eu-west-1, Ami]", "ami-2"),
    ("!FindInMap [RegionMap, us-east-1, Sizes]", [1, 2]),
    ("!FindInMap [RegionMap, ap-south-1, Ami, {DefaultValue: none}]", "none"),
    # Nested
    ("!Join [':', [!Select [0, !GetAZs ''], !Sub '${Env}']]", "us-east-1a:prod"),
]


@pytest.mark.parametrize(("expr", "expected"), VALUES)
def test_intrinsic_values(evaluate, expr, expected):
    assert evaluate(expr) == expected


def test_pseudo_parameters_follow_stack_name_and_region(evaluate):
    assert evaluate("!Ref AWS::StackName", stack_name="lab-1") == "lab-1"
    assert evaluate("!Sub '${AWS::Region}'", region="eu-west-1") == "eu-west-1"
    stack_id = evaluate("!Ref AWS::StackId", stack_name="s1")
    assert stack_id.startswith("arn:aws:cloudformation:us-east-1:123456789012:stack/s1/")
    # The same stack gets the same id every time: results must be reproducible.
    assert evaluate("!Ref AWS::StackId", stack_name="s1") == stack_id


def test_parameter_override_reaches_intrinsics(evaluate):
    assert evaluate("!Sub '${Env}'", params={"Env": "dev"}) == "dev"
    assert evaluate("!If [IsProd, p, d]", params={"Env": "dev"}) == "d"


ERRORS = [
    ("!Select [3, [a, b, c]]", ["Fn::Select", "index 3 is out of range", "3 item"]),
    ("!Select [-1, [a]]", ["out of range"]),
    ("!Select [x, [a]]", ["index must be a whole number"]),
    ("!Select [0, notalist]", ["must be a list"]),
    ("!Select [0]", ["expects [index, [values]]"]),
    ("!Join [',', a]", ["values to join must be a list"]),
    ("!Join [',', [[a]]]", ["must be text"]),
    ("!Split ['', abc]", ["delimiter must not be empty"]),
    ("!Ref Nope", ["'Nope'", "no parameter or resource"]),
    ("!Ref Evn", ["did you mean Env?"]),
    ("!Ref [Env]", ["Ref: needs the name"]),
    ("!Ref AWS::Regoin", ["unknown pseudo parameter", "did you mean AWS::Region?"]),
    ("!GetAtt VPC.Cidr", ["has no attribute 'Cidr'", "CidrBlock"]),
    ("!GetAtt Nope.Attr", ["no resource named 'Nope'"]),
    ("!GetAtt Env.Attr", ["Env is a parameter, not a resource"]),
    ("!GetAtt VPC", ["Resource.Attr"]),
    ("!Sub '${Missing}'", ["${Missing}", "${!Missing}"]),
    ("!Sub '${Zones}'", ["is a list, not text"]),
    ("!Sub '${}'", ["empty ${}"]),
    ("!Sub [a, b]", ["variables must be a mapping"]),
    ("!Sub [1, {}]", ["template must be a string"]),
    ("!If [Nope, a, b]", ["unknown condition 'Nope'"]),
    ("!If [IsProd, a]", ["expects [ConditionName"]),
    ("!GetAZs mars-1", ["not a region name"]),
    ("!Cidr [10.0.0.1/16, 2, 8]", ["not an IP network", "did you mean 10.0.0.0/16?"]),
    ("!Cidr [10.0.0.0/24, 2, 9]", ["cidrBits must be from 0 to 8"]),
    ("!Cidr [10.0.0.0/24, 5, 6]", ["holds only 4 /26 block"]),
    ("!Cidr [10.0.0.0/16, 0, 8]", ["count must be from 1 to 256"]),
    ("!Cidr [10.0.0.0/16, 2.5, 8]", ["count must be a whole number"]),
    ("!FindInMap [Nope, a, b]", ["no mapping named 'Nope'"]),
    (
        "!FindInMap [RegionMap, us-east-2, Ami]",
        ["has no key 'us-east-2'", "did you mean us-east-1?"],
    ),
    ("!FindInMap [RegionMap, us-east-1, Amy]", ["RegionMap > us-east-1 has no key 'Amy'"]),
    ("!Equals [a, a]", ["only in the Conditions section"]),
    ("{'Fn::Bogus': 1}", ["unknown intrinsic function Fn::Bogus"]),
    ("{'Fn::Joins': [',', [a]]}", ["did you mean Fn::Join?"]),
    ("{'Fn::ImportValue': x}", ["No export named x found.", "--into LAB"]),
    ("{Ref: Env, Other: 1}", ["must be the only key"]),
    ("!Ref AWS::NoValue", ["Value is empty"]),
]


@pytest.mark.parametrize(("expr", "fragments"), ERRORS)
def test_intrinsic_errors_are_clear(evaluate, expr, fragments):
    with pytest.raises(BadInput) as info:
        evaluate(expr)
    shown = str(info.value)
    for fragment in fragments:
        assert fragment in shown, shown
    # Every error is located: the file, the output's line and the output's name.
    assert shown.startswith("t.yaml:21: Result: "), shown


def test_sub_pieces():
    assert sub_pieces("a${B}c${!D}${ E.F }") == [
        (False, "a"),
        (True, "B"),
        (False, "c"),
        (False, "${D}"),
        (True, "E.F"),
    ]


def test_no_value_removes_a_property(load):
    model = load("""
        Conditions:
          Never: !Equals [a, b]
        Resources:
          VPC:
            Type: AWS::EC2::VPC
            Properties:
              CidrBlock: 10.0.0.0/16
              EnableDnsSupport: !If [Never, true, !Ref AWS::NoValue]
              Bogus: !Ref AWS::NoValue
    """)
    assert str(model.vpcs["VPC"].cidr) == "10.0.0.0/16"
