"""Parameters of AWS's own types: SSM paths, key pairs, AMIs, AZs and ids of lab things."""

from __future__ import annotations

import pytest

from testbed.errors import TemplateErrors
from testbed.template.aws_parameters import placeholder_ami

VPC = """
Resources:
  VPC:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.0.0.0/16}
"""
AL2 = "/aws/service/ami-amazon-linux-latest/amzn2-ami-hvm-x86_64-gp2"


def template(declaration: str, resources: str = VPC) -> str:
    return f"Parameters:\n  P: {declaration}\n{resources}"


def value(model):
    found = model.parameters["P"]
    return list(found) if isinstance(found, tuple) else found


def test_placeholder_ami_is_an_ami_id_and_deterministic():
    ami = placeholder_ami(AL2)
    assert ami == placeholder_ami(AL2) != placeholder_ami(AL2 + "x")
    assert ami.startswith("ami-")
    assert len(ami) == 21
    int(ami[4:], 16)


@pytest.mark.parametrize(
    "type_name",
    [
        "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
        "AWS::SSM::Parameter::Value<String>",
    ],
)
def test_ssm_ami_path_gets_a_placeholder_ami_reported_as_lab_value(load, type_name):
    model = load(template(f"{{Type: '{type_name}', Default: '{AL2}'}}"))
    assert value(model) == placeholder_ami(AL2)
    (lab,) = model.lab_values
    assert (lab.parameter, lab.value, lab.lab_value) == ("P", AL2, placeholder_ami(AL2))
    assert "parameter store" in lab.note


@pytest.mark.parametrize(
    "path",
    [
        "/aws/service/ecs/optimized-ami/amazon-linux-2/recommended/image_id",
        "/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/ebs-gp2/ami-id",
        "/aws/service/debian/release/12/latest/amd64",
        "/aws/service/bottlerocket/aws-ecs-1/x86_64/latest/image_id",
    ],
)
def test_public_ami_families_resolve_for_string_values(load, path):
    model = load(template(f"{{Type: 'AWS::SSM::Parameter::Value<String>', Default: '{path}'}}"))
    assert value(model) == placeholder_ami(path)


def test_ssm_param_given_is_the_parameter_name(load):
    declaration = f"{{Type: 'AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>', Default: '{AL2}'}}"
    model = load(template(declaration), params={"P": "/my/own/ami"})
    assert value(model) == placeholder_ami("/my/own/ami")


def test_private_ssm_path_is_an_error_unless_the_value_is_given(load, fails):
    declaration = "{Type: 'AWS::SSM::Parameter::Value<String>', Default: /app/db/host}"
    fails(
        template(declaration),
        "no Systems Manager parameter store",
        "'/app/db/host' has no value here",
        "--param P=VALUE",
        logical_id="P",
        line=2,
    )
    model = load(template(declaration), params={"P": "db.example.com"})
    assert value(model) == "db.example.com"
    assert model.lab_values[0].lab_value == "db.example.com"


def test_ssm_list_value(load):
    declaration = "{Type: 'AWS::SSM::Parameter::Value<List<AWS::EC2::Image::Id>>', Default: /a/b}"
    assert value(load(template(declaration))) == [placeholder_ami("/a/b")]


def test_ssm_parameter_name_is_kept(load):
    model = load(template("{Type: 'AWS::SSM::Parameter::Name', Default: /x/y}"))
    assert value(model) == "/x/y"
    assert model.lab_values == ()


def test_key_pair_and_image_are_kept_and_reported(load):
    text = (
        "Parameters:\n  Key: {Type: 'AWS::EC2::KeyPair::KeyName'}\n"
        "  Ami: {Type: 'AWS::EC2::Image::Id', Default: ami-0123456789abcdef0}\n" + VPC
    )
    model = load(text, params={"Key": "my-key"})
    assert model.parameters["Key"] == "my-key"
    assert model.parameters["Ami"] == "ami-0123456789abcdef0"
    notes = {lab.parameter: lab for lab in model.lab_values}
    assert notes["Key"].lab_value == "my-key"
    assert "key pairs have no meaning" in notes["Key"].note
    assert notes["Ami"].lab_value == "ami-0123456789abcdef0"


def test_key_pair_without_value_is_asked_for_as_on_aws(fails):
    fails(template("{Type: 'AWS::EC2::KeyPair::KeyName'}"), "--param P=VALUE", logical_id="P")


@pytest.mark.parametrize(
    ("type_name", "bad"),
    [
        ("AWS::EC2::Image::Id", "ubuntu"),
        ("AWS::EC2::VPC::Id", "vpc"),
        ("AWS::EC2::Subnet::Id", "sub-123"),
        ("AWS::EC2::SecurityGroup::Id", "my-group"),
        ("AWS::EC2::Instance::Id", "web"),
        ("AWS::EC2::Volume::Id", "volume1"),
    ],
)
def test_id_formats_are_checked(fails, type_name, bad):
    fails(template(f"{{Type: '{type_name}', Default: {bad}}}"), f"'{bad}' is not a", "id such as")


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ("us-west-2a", "not an availability zone of the stack's region us-east-1"),
        ("us-east-1g", "not an availability zone of the stack's region us-east-1"),
        ("nowhere", "not an availability zone name such as us-east-1a"),
    ],
)
def test_az_must_be_of_the_stacks_region(fails, given, fragment):
    fails(
        template("{Type: 'AWS::EC2::AvailabilityZone::Name', Default: us-east-1a}"),
        fragment,
        params={"P": given},
        logical_id="P",
    )


def test_az_of_another_region_is_fine_for_a_stack_there(load):
    model = load(
        template(
            "{Type: 'List<AWS::EC2::AvailabilityZone::Name>', Default: 'eu-west-1a,eu-west-1f'}"
        ),
        region="eu-west-1",
    )
    assert value(model) == ["eu-west-1a", "eu-west-1f"]


@pytest.mark.parametrize(
    ("type_name", "hint"),
    [
        ("AWS::EC2::VPC::ID", "did you mean AWS::EC2::VPC::Id?"),
        ("List<AWS::EC2::Subnet::Ids>", "did you mean List<AWS::EC2::Subnet::Id>?"),
        ("AWS::SSM::Parameter::Value<AWS::EC2::Image::ID>", "Value<AWS::EC2::Image::Id>?"),
    ],
)
def test_unknown_aws_type_is_an_error_with_suggestion(fails, type_name, hint):
    fails(
        template(f"{{Type: '{type_name}', Default: x}}"),
        "not one of AWS's parameter types",
        hint,
        logical_id="P",
        line=2,
    )


def test_list_of_key_pairs_is_not_an_aws_type(fails):
    fails(
        template("{Type: 'List<AWS::EC2::KeyPair::KeyName>', Default: k}"), "unknown parameter type"
    )


SUBNET_FROM_PARAMETER = """
Resources:
  VPC:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.0.0.0/16}
  Subnet:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref P, CidrBlock: 10.0.1.0/24}
"""


def test_vpc_id_that_the_lab_does_not_have_is_the_parameters_error(fails):
    err = fails(
        template("{Type: 'AWS::EC2::VPC::Id'}", SUBNET_FROM_PARAMETER),
        "vpc-0abc1234 is not a VPC of this lab; a lab has only what its templates create",
        "vpc-VPC",
        params={"P": "vpc-0abc1234"},
        logical_id="P",
        line=2,
    )
    # The subnet that uses it is skipped, not blamed too.
    assert not isinstance(err, TemplateErrors)


def test_vpc_id_of_this_stack_is_accepted(load):
    text = template("{Type: 'AWS::EC2::VPC::Id'}", SUBNET_FROM_PARAMETER)
    text += "    DependsOn: VPC\n"
    model = load(text, params={"P": "vpc-VPC"})
    assert model.subnets["Subnet"].vpc_id == "VPC"


def test_list_of_subnet_ids_checked_item_by_item(fails):
    fails(
        template("{Type: 'List<AWS::EC2::Subnet::Id>'}"),
        "subnet-0bad0bad is not a subnet of this lab",
        params={"P": "subnet-0bad0bad"},
        logical_id="P",
    )


def test_empty_id_means_none_and_is_not_checked(load):
    text = template("{Type: 'AWS::EC2::Subnet::Id', Default: ''}")
    model = load(text)
    assert model.parameters["P"] == ""
    assert model.lab_values == ()
