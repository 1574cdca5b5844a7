"""Fn::ImportValue, Fn::GetAZs of a region, the LanguageExtensions functions, Outputs' Export
and the Rules section."""

from __future__ import annotations

import json
import textwrap

import pytest

from testbed.errors import BadInput, TemplateErrors
from testbed.model import load_model_text
from testbed.model.build import build_model
from testbed.model.lab_view import LabView
from testbed.template.yaml_loader import load_text

VPC = """
Resources:
  VPC:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.0.0.0/16}
"""


def build(text: str, imports=None, **kwargs):
    doc = load_text(textwrap.dedent(text), "t.yaml")
    if imports is not None:  # the lab's other stacks' exports, as build_model's LabView
        kwargs["lab"] = LabView(exports=imports, exporters=dict.fromkeys(imports, "net"))
    return build_model(doc, file="t.yaml", **kwargs)


def output(expr: str, head: str = "", **kwargs):
    text = head + VPC + f"Outputs:\n  Result:\n    Value: {expr}\n"
    return build(text, **kwargs).outputs["Result"]


def test_import_value_reads_the_labs_exports():
    imports = {"net-VpcId": "vpc-Shared", "net-Subnets": ["subnet-A", "subnet-B"]}
    assert output("!ImportValue net-VpcId", imports=imports) == "vpc-Shared"
    assert output(
        "!ImportValue {Fn::Sub: '${AWS::StackName}-Subnets'}", stack_name="net", imports=imports
    ) == ["subnet-A", "subnet-B"]


def test_unknown_import_says_which_export_is_missing():
    with pytest.raises(BadInput) as info:
        output("!ImportValue net-VpcId", imports={"other": "x"})
    shown = str(info.value)
    assert "No export named net-VpcId found." in shown
    assert "create the exporting stack first" in shown


def test_id_parameter_may_name_an_exported_id():
    text = "Parameters:\n  P: {Type: 'AWS::EC2::VPC::Id'}\n" + VPC
    model = build(text, params={"P": "vpc-0123abcd"}, imports={"net-Vpc": "vpc-0123abcd"})
    assert model.parameters["P"] == "vpc-0123abcd"


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("!GetAZs ''", ["us-east-1a", "us-east-1b", "us-east-1c"]),
        ("!GetAZs us-east-1", ["us-east-1a", "us-east-1b", "us-east-1c"]),
        ("!GetAZs eu-west-3", ["eu-west-3a", "eu-west-3b", "eu-west-3c"]),
        ("!GetAZs {Ref: 'AWS::Region'}", ["us-east-1a", "us-east-1b", "us-east-1c"]),
    ],
)
def test_get_azs_of_a_region(expr, expected):
    assert output(expr) == expected


EXTENSIONS = (
    "Transform: AWS::LanguageExtensions\n"
    "Parameters:\n  L: {Type: CommaDelimitedList, Default: 'a,b,c'}\n"
)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("!Length [1, 2, 3]", 3),
        ("!Length {Ref: L}", 3),
        ("{'Fn::Length': !Split ['|', 'a|b']}", 2),
        ("{'Fn::Length': []}", 0),
    ],
)
def test_length(expr, expected):
    assert output(expr, EXTENSIONS) == expected


def test_to_json_string_is_compact_json():
    text = output("!ToJsonString {a: !Ref L, b: {c: 1, d: true}}", EXTENSIONS)
    assert text == '{"a":["a","b","c"],"b":{"c":1,"d":true}}'
    assert json.loads(text)["a"] == ["a", "b", "c"]
    assert output("!ToJsonString [x, 2]", EXTENSIONS) == '["x",2]'


@pytest.mark.parametrize("expr", ["!Length [1]", "!ToJsonString {a: 1}"])
def test_language_extension_functions_need_the_transform(expr):
    with pytest.raises(BadInput) as info:
        output(expr)
    shown = str(info.value)
    assert "is not supported here: it needs the AWS::LanguageExtensions transform" in shown
    assert "add Transform: AWS::LanguageExtensions" in shown


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("!Length abc", "expects a list"),
        ("!ToJsonString abc", "expects a mapping or a list"),
        ("{'Fn::ForEach': [x]}", "Fn::ForEach is not supported"),
    ],
)
def test_language_extension_errors(expr, fragment):
    with pytest.raises(BadInput) as info:
        output(expr, EXTENSIONS)
    assert fragment in str(info.value)


def test_other_transforms_are_still_refused():
    # Transforms are applied when a template is loaded (testbed.template.transforms).
    with pytest.raises(BadInput) as info:
        load_model_text("Transform: [AWS::LanguageExtensions, MyMacro]\n" + VPC, filename="t.yaml")
    assert "transform MyMacro cannot run in the lab" in str(info.value)


EXPORTS = (
    VPC
    + """
Outputs:
  Id:
    Value: !Ref VPC
    Export: {Name: !Sub '${AWS::StackName}-VpcId'}
  Cidr:
    Value: !GetAtt VPC.CidrBlock
    Export: {Name: cidr}
  Plain:
    Value: x
"""
)


def test_exports_are_resolved():
    model = build(EXPORTS, stack_name="net")
    assert dict(model.exports) == {"net-VpcId": "vpc-VPC", "cidr": "10.0.0.0/16"}


@pytest.mark.parametrize(
    ("outputs", "fragments"),
    [
        (
            "  A: {Value: a, Export: {Name: same}}\n  B: {Value: b, Export: {Name: same}}\n",
            ["t.yaml:8: B: export name 'same' is already used by output A"],
        ),
        ("  A: {Value: a, Export: {Name: ''}}\n", ["Name must be non-empty text"]),
        ("  A: {Value: a, Export: {Nmae: x}}\n", ["Export must be a mapping {Name: ...}"]),
        ("  A: {Value: a, Export: {Name: x, Value: y}}\n", ["unknown Export key 'Value'"]),
        (
            "  A: {Value: a, Export: {Name: taken}}\n",
            ["Export with name taken is already exported by stack net"],
        ),
    ],
)
def test_export_errors(outputs, fragments):
    with pytest.raises(BadInput) as info:
        build(VPC + "Outputs:\n" + outputs, imports={"taken": "x"})
    for fragment in fragments:
        assert fragment in str(info.value)


RULES = """\
Parameters:
  Env: {Type: String, Default: dev}
  Size: {Type: String, Default: small}
  Subnets: {Type: CommaDelimitedList, Default: 'a,b'}
Rules:
  ProdIsLarge:
    RuleCondition: !Equals [!Ref Env, prod]
    Assertions:
      - Assert: !Equals [!Ref Size, large]
        AssertDescription: production needs large instances
  KnownSubnets:
    Assertions:
      - Assert: !EachMemberIn [!Ref Subnets, [a, b, c]]
        AssertDescription: subnets must be a, b or c
      - Assert: !Contains [[small, large], !Ref Size]
      - Assert: !Not [!EachMemberEquals [!Ref Subnets, c]]
  NeedsAccount:
    Assertions:
      - Assert: !EachMemberIn [!RefAll 'AWS::EC2::VPC::Id', [vpc-1]]
"""


def test_rules_that_hold_pass():
    assert build(RULES + VPC).parameters["Env"] == "dev"


def test_false_assertions_are_errors_with_their_description():
    with pytest.raises(TemplateErrors) as info:
        build(RULES + VPC, params={"Env": "prod", "Subnets": "a,d", "Size": "medium"})
    shown = [str(e) for e in info.value.errors]
    assert (
        "t.yaml:9: ProdIsLarge: rule ProdIsLarge fails: production needs large instances" in shown
    )
    assert "t.yaml:13: KnownSubnets: rule KnownSubnets fails: subnets must be a, b or c" in shown
    assert any(
        "t.yaml:15: KnownSubnets: rule KnownSubnets fails: its assertion is false" in s
        for s in shown
    )
    assert len(shown) == 3


@pytest.mark.parametrize(
    ("rules", "fragment"),
    [
        ("  R: {Assertions: []}\n", "Assertions must be a non-empty list"),
        ("  R: {Asertions: [{Assert: x}]}\n", "a rule must be a mapping with Assertions"),
        ("  R: {Assertions: [{Assert: !Equals [a, a], Note: x}]}\n", "unknown key 'Note'"),
        ("  R: {Assertions: [{Assert: abc}]}\n", "an assertion must be one of"),
        ("  R: [x]\n", "a rule must be a mapping"),
    ],
)
def test_malformed_rules(rules, fragment):
    with pytest.raises(BadInput) as info:
        build("Rules:\n" + rules + VPC)
    assert fragment in str(info.value)


def test_rule_functions_outside_rules_are_errors():
    with pytest.raises(BadInput) as info:
        output("!Contains [[a], a]")
    assert "only in the Rules section" in str(info.value)
