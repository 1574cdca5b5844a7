"""Every short form CloudFormation knows, and YAML 1.1 scalars kept as their text where
CloudFormation reads text (parameter attributes)."""

from __future__ import annotations

import pytest

from testbed.errors import BadInput
from testbed.template.yaml_loader import load_text

NEW_SHORT_FORMS = [
    ("!ImportValue net-VpcId", {"Fn::ImportValue": "net-VpcId"}),
    ("!ImportValue {'Fn::Sub': '${X}-Id'}", {"Fn::ImportValue": {"Fn::Sub": "${X}-Id"}}),
    ("!Length [a, b]", {"Fn::Length": ["a", "b"]}),
    ("!ToJsonString {a: 1}", {"Fn::ToJsonString": {"a": 1}}),
    ("!Transform {Name: M}", {"Fn::Transform": {"Name": "M"}}),
    ("!Contains [[a], a]", {"Fn::Contains": [["a"], "a"]}),
    ("!EachMemberEquals [[a], a]", {"Fn::EachMemberEquals": [["a"], "a"]}),
    ("!EachMemberIn [[a], [a, b]]", {"Fn::EachMemberIn": [["a"], ["a", "b"]]}),
    ("!RefAll AWS::EC2::VPC::Id", {"Fn::RefAll": "AWS::EC2::VPC::Id"}),
    ("!ValueOf [P, Tags]", {"Fn::ValueOf": ["P", "Tags"]}),
    ("!ValueOfAll [AWS::EC2::VPC::Id, Tags]", {"Fn::ValueOfAll": ["AWS::EC2::VPC::Id", "Tags"]}),
]


@pytest.mark.parametrize(("short", "long"), NEW_SHORT_FORMS)
def test_short_forms_become_long_forms(short, long):
    assert load_text(f"Value: {short}\n", "t.yaml")["Value"] == long


def test_unknown_tag_keeps_its_clear_error():
    with pytest.raises(BadInput) as info:
        load_text("Value: !ImportValues x\n", "t.yaml")
    assert "unknown tag !ImportValues; did you mean !ImportValue?" in str(info.value)


def test_yaml_booleans_and_numbers_remember_their_text():
    doc = load_text("A: Yes\nB: [On, 'No', 010, 1.50]\nC: plain\n", "t.yaml")
    assert doc["A"] is True
    assert doc.texts == {"A": "Yes"}
    assert doc["B"] == [True, "No", 8, 1.5]
    assert doc["B"].texts == {0: "On", 2: "010", 3: "1.50"}


YES_NO = """
Parameters:
  P: {Type: String, AllowedValues: [Yes, No], Default: No}
Conditions:
  IsNo: !Equals [!Ref P, 'No']
Resources:
  VPC:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.0.0.0/16}
Outputs:
  Result: {Value: !If [IsNo, said no, said yes]}
"""


def test_yes_no_parameters_compare_as_written(load):
    model = load(YES_NO)
    assert model.parameters["P"] == "No"
    assert model.outputs["Result"] == "said no"
    assert load(YES_NO, params={"P": "Yes"}).parameters["P"] == "Yes"


def test_yes_no_parameters_refuse_other_spellings(fails):
    fails(YES_NO, "'true' is not one of the AllowedValues: Yes, No", params={"P": "true"})


def test_numbers_written_with_leading_zeros_stay_as_written(load):
    text = "Parameters:\n  P: {Type: String, AllowedValues: ['007', 010], Default: 010}\n"
    text += "Resources:\n  V:\n    Type: AWS::EC2::VPC\n    Properties: {CidrBlock: 10.0.0.0/16}\n"
    assert load(text).parameters["P"] == "010"


def test_list_default_items_keep_their_text(load):
    text = "Parameters:\n  P: {Type: CommaDelimitedList, Default: [On, Off]}\n"
    text += "Resources:\n  V:\n    Type: AWS::EC2::VPC\n    Properties: {CidrBlock: 10.0.0.0/16}\n"
    assert list(load(text).parameters["P"]) == ["On", "Off"]
