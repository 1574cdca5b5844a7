"""Parameters: types, constraints, defaults and --param overrides."""

from __future__ import annotations

import pytest

from testbed.errors import TemplateErrors

RESOURCES = """
Resources:
  VPC:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.0.0.0/16}
"""


def template(declaration: str) -> str:
    """A template with parameter P declared as `declaration` (a flow mapping)."""
    return f"Parameters:\n  P: {declaration}\n{RESOURCES}"


VALID = [
    ("{Type: String, Default: abc}", None, "abc"),
    ("{Type: String}", "given", "given"),
    ("{Type: String, Default: abc}", "override", "override"),
    ("{Type: Number, Default: 5}", None, "5"),
    ("{Type: Number, Default: 2.5, MinValue: 1, MaxValue: 3}", None, "2.5"),
    ("{Type: Number, MinValue: 0, MaxValue: 10}", "10", "10"),
    ("{Type: CommaDelimitedList, Default: 'a, b ,c'}", None, ["a", "b", "c"]),
    ("{Type: CommaDelimitedList, Default: ''}", None, []),
    ("{Type: CommaDelimitedList, Default: [x, y]}", None, ["x", "y"]),
    ("{Type: 'List<Number>', Default: '1,2'}", None, ["1", "2"]),
    ("{Type: 'List<Number>'}", "3, 4", ["3", "4"]),
    ("{Type: 'AWS::EC2::AvailabilityZone::Name', Default: us-east-1b}", None, "us-east-1b"),
    (
        "{Type: 'List<AWS::EC2::AvailabilityZone::Name>', Default: 'us-east-1a,us-east-1b'}",
        None,
        ["us-east-1a", "us-east-1b"],
    ),
    ("{Type: 'AWS::EC2::KeyPair::KeyName', Default: my-key}", None, "my-key"),
    ("{Type: String, AllowedValues: [a, b], Default: b}", None, "b"),
    ("{Type: Number, AllowedValues: [1, 2]}", "2.0", "2.0"),
    ("{Type: String, AllowedPattern: '[a-z]+', Default: abc}", None, "abc"),
    ("{Type: String, MinLength: 2, MaxLength: 3, Default: ab}", None, "ab"),
    (
        "{Type: String, Default: x, NoEcho: true, Description: d, ConstraintDescription: c}",
        None,
        "x",
    ),
    ("{Type: String, Default: true}", None, "true"),
]


@pytest.mark.parametrize(("declaration", "given", "expected"), VALID)
def test_parameter_values(load, declaration, given, expected):
    params = {"P": given} if given is not None else None
    model = load(template(declaration), params=params)
    value = model.parameters["P"]
    assert (list(value) if isinstance(value, tuple) else value) == expected


INVALID = [
    ("{Type: String}", None, ["no Default and no value", "--param P=VALUE"]),
    ("{Type: Strin, Default: x}", None, ["unknown parameter type 'Strin'", "did you mean String"]),
    ("{Default: x}", None, ["parameter has no Type"]),
    (
        "{Type: String, Defualt: x}",
        None,
        ["unknown parameter attribute 'Defualt'", "did you mean Default?"],
    ),
    ("{Type: Number, Default: abc}", None, ["'abc' is not a number"]),
    ("{Type: Number, Default: 5, MinValue: 6}", None, ["less than MinValue 6"]),
    ("{Type: Number, Default: 5, MaxValue: 4}", None, ["more than MaxValue 4"]),
    ("{Type: Number, Default: 1}", "nan", ["is not a number"]),
    ("{Type: 'List<Number>', Default: '1,x'}", None, ["'x' is not a number"]),
    ("{Type: String, Default: c, AllowedValues: [a, b]}", None, ["not one of the AllowedValues"]),
    (
        "{Type: String, Default: ABC, AllowedPattern: '[a-z]+'}",
        None,
        ["does not match AllowedPattern"],
    ),
    (
        "{Type: String, Default: abcd, AllowedPattern: 'abc'}",
        None,
        ["does not match"],
    ),  # the pattern must match the whole value, as in AWS
    ("{Type: String, Default: a, MinLength: 2}", None, ["shorter than MinLength 2"]),
    ("{Type: String, Default: abcd, MaxLength: 3}", None, ["longer than MaxLength 3"]),
    (
        "{Type: String, Default: ABC, AllowedPattern: '[a-z]+', "
        "ConstraintDescription: use lowercase letters}",
        None,
        ["bad value from Default 'ABC': use lowercase letters"],
    ),
    (
        "{Type: String, Default: a, AllowedPattern: '[a-'}",
        None,
        ["AllowedPattern is not a valid regular expression"],
    ),
    ("{Type: String, Default: a, MinLength: x}", None, ["MinLength must be a number"]),
    ("{Type: String, Default: a, AllowedValues: []}", None, ["AllowedValues must be"]),
    ("{Type: String, Default: [a, b]}", None, ["Default must be a single value"]),
    (
        "{Type: 'AWS::SSM::Parameter::Value<String>', Default: x}",
        None,
        ["no Systems Manager parameter store", "'x' has no value here", "--param P=VALUE"],
    ),
    (
        "{Type: 'AWS::EC2::AvailabilityZone::Name', Default: useast1}",
        None,
        ["not an availability zone name"],
    ),
    ("{Type: String, Default: x}", "", None),  # empty text is a value, not an error
    ("[not, a, mapping]", None, ["a parameter must be a mapping"]),
]


@pytest.mark.parametrize(("declaration", "given", "fragments"), INVALID)
def test_parameter_errors(load, fails, declaration, given, fragments):
    params = {"P": given} if given is not None else None
    if fragments is None:
        assert load(template(declaration), params=params).parameters["P"] == given
        return
    fails(template(declaration), *fragments, logical_id="P", line=2, params=params)


def test_bad_user_value_names_param_and_constraint(fails):
    fails(
        template("{Type: Number, Default: 1, MaxValue: 10}"),
        "bad value from --param: 11 is more than MaxValue 10",
        logical_id="P",
        params={"P": "11"},
    )


def test_unknown_user_parameter_is_an_error_with_suggestion(fails):
    err = fails(
        template("{Type: String, Default: x}"),
        "unknown parameter 'p'",
        "did you mean P?",
        params={"p": "y"},
    )
    assert err.logical_id == "p"


def test_several_parameter_errors_are_reported_together(fails):
    text = "Parameters:\n  A: {Type: Number, Default: x}\n  B: {Type: String}\n" + RESOURCES
    err = fails(text, "t.yaml:2: A:", "t.yaml:3: B:")
    assert isinstance(err, TemplateErrors)
    assert len(err.errors) == 2


def test_parameter_name_must_be_alphanumeric(fails):
    fails(
        "Parameters:\n  my-param: {Type: String, Default: x}\n" + RESOURCES,
        "only letters and digits",
        line=2,
    )


def test_parameters_feed_properties(load):
    text = """
        Parameters:
          Cidr: {Type: String, Default: 10.1.0.0/16}
        Resources:
          VPC:
            Type: AWS::EC2::VPC
            Properties: {CidrBlock: !Ref Cidr}
    """
    assert str(load(text).vpcs["VPC"].cidr) == "10.1.0.0/16"
    assert str(load(text, params={"Cidr": "10.9.0.0/16"}).vpcs["VPC"].cidr) == "10.9.0.0/16"


def test_parameter_and_resource_names_must_differ(fails):
    text = "Parameters:\n  VPC: {Type: String, Default: x}\n" + RESOURCES
    fails(text, "same name", logical_id="VPC", line=5)
