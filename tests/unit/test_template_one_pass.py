"""Every error of a template in one run: parameter problems do not hide resource problems,
and a bad parameter value is not followed by errors about the things that read it."""

from __future__ import annotations

from testbed.errors import TemplateErrors

THREE_PROBLEMS = """\
Parameters:
  Env: {Type: String, AllowedValues: [dev, prod], Default: test}
Resources:
  VPC:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.0.0.0/16, Tags: [{Key: env, Value: !Ref Env}]}
  Queue:
    Type: AWS::EC2::Bogus
  Subnet:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref Other, CidrBlock: 10.0.1.0/24, Colour: red}
  Other:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.1.0.0/16}
"""


def test_bad_parameter_unknown_type_and_unknown_property_in_one_report(fails):
    err = fails(THREE_PROBLEMS, "t.yaml:2: Env: bad value from Default")
    assert isinstance(err, TemplateErrors)
    shown = [str(e) for e in err.errors]
    assert len(shown) == 3, shown
    assert any("t.yaml:8: Queue: unknown resource type AWS::EC2::Bogus" in s for s in shown)
    assert any("Subnet:" in s and "Colour" in s for s in shown), shown
    # The VPC that reads Env is skipped: no second error about Env.
    assert not any("VPC:" in s for s in shown), shown


def test_bad_parameter_is_not_followed_by_missing_name_errors(fails):
    text = """\
        Parameters:
          Env: {Type: Number, Default: abc}
        Conditions:
          IsProd: !Equals [!Ref Env, prod]
        Resources:
          VPC:
            Type: AWS::EC2::VPC
            Condition: IsProd
            Properties: {CidrBlock: !Sub '10.${Env}.0.0/16'}
          Other:
            Type: AWS::EC2::VPC
            Properties: {CidrBlock: !Sub '10.${Env}.0.0/16'}
        Outputs:
          Out: {Value: !Ref Env}
    """
    err = fails(text, "t.yaml:2: Env: bad value from Default: 'abc' is not a number")
    assert not isinstance(err, TemplateErrors), str(err)
    assert "is not a parameter" not in str(err)


def test_parameter_declaration_errors_poison_too(fails):
    text = """\
        Parameters:
          Env: {Type: Strng, Default: x}
        Resources:
          VPC:
            Type: AWS::EC2::VPC
            Properties: {CidrBlock: !Ref Env}
          Bad:
            Type: AWS::EC2::Nope
    """
    err = fails(text, "unknown parameter type 'Strng'", "unknown resource type AWS::EC2::Nope")
    assert len(err.errors) == 2


def test_rule_reading_a_bad_parameter_is_skipped(fails):
    text = """\
        Parameters:
          Env: {Type: Number, Default: abc}
        Rules:
          Check:
            Assertions:
              - Assert: !Contains [[1, 2], !Ref Env]
        Resources:
          VPC:
            Type: AWS::EC2::VPC
            Properties: {CidrBlock: 10.0.0.0/16}
    """
    err = fails(text, "'abc' is not a number")
    assert not isinstance(err, TemplateErrors)


def test_resources_using_a_malformed_resource_are_not_blamed(fails):
    text = """\
        Resources:
          VPC:
            Type: AWS::EC2::VPCC
          Subnet:
            Type: AWS::EC2::Subnet
            Properties: {VpcId: !Ref VPC, CidrBlock: 10.0.1.0/24}
    """
    err = fails(text, "unknown resource type AWS::EC2::VPCC")
    assert not isinstance(err, TemplateErrors), str(err)


def test_dependency_loop_is_reported_with_the_other_errors(fails):
    text = """\
        Parameters:
          Env: {Type: Number, Default: abc}
        Resources:
          A:
            Type: AWS::EC2::VPC
            DependsOn: B
            Properties: {CidrBlock: 10.0.0.0/16}
          B:
            Type: AWS::EC2::VPC
            DependsOn: A
            Properties: {CidrBlock: 10.1.0.0/16}
    """
    err = fails(text, "'abc' is not a number", "in a loop")
    assert len(err.errors) == 2


def test_condition_names_may_use_ampersand_and_underscore_as_on_aws(load, fails):
    text = """\
        Conditions:
          A&B_C: !Equals [a, a]
        Resources:
          VPC:
            Type: AWS::EC2::VPC
            Condition: A&B_C
            Properties: {CidrBlock: 10.0.0.0/16}
    """
    assert "VPC" in load(text).vpcs
    assert "VPC" in load(text.replace("A&B_C", "Use-Key")).vpcs
    fails(
        text.replace("A&B_C", "A.B"), "condition names may contain only letters, digits, &, _ and -"
    )
