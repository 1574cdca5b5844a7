"""The catalog (emulated / inert / refused) and AWS's schemas behind it."""

from __future__ import annotations

import pytest

from testbed.model import catalog, schemas
from testbed.model.resources import lookup
from testbed.model.resources.registry import registered


def test_schemas_know_aws_types_and_not_typos():
    assert schemas.is_aws_type("AWS::IAM::Role")
    assert schemas.is_aws_type("AWS::Serverless::Function")
    assert not schemas.is_aws_type("AWS::IAM::Rol")
    assert not schemas.is_aws_type("Custom::Thing")
    assert not schemas.is_aws_type("Lab::Internet::Client")


def test_schema_properties_required_and_getatts():
    assert "AssumeRolePolicyDocument" in schemas.properties("AWS::IAM::Role")
    # Read-only properties are GetAtt values, not properties a template sets.
    assert "Arn" not in schemas.properties("AWS::IAM::Role")
    assert schemas.required("AWS::IAM::Role") == ("AssumeRolePolicyDocument",)
    assert set(schemas.getatt_names("AWS::IAM::Role")) == {"Arn", "RoleId"}
    assert "BucketName" in schemas.create_only("AWS::S3::Bucket")
    assert schemas.schema("AWS::Nope::Nope") is None
    assert schemas.getatt_names("AWS::Nope::Nope") == ()


def test_an_unknown_region_uses_the_default_schemas():
    assert schemas.properties("AWS::IAM::Role", "xx-nowhere-1") == schemas.properties(
        "AWS::IAM::Role"
    )


def test_registered_types_are_emulated():
    assert "AWS::EC2::VPC" in registered()
    for name in registered():
        found = catalog.support(name)
        assert found is not None, name
        assert found.support == catalog.EMULATED, name


@pytest.mark.parametrize(
    "name",
    [
        "AWS::IAM::Role",
        "AWS::IAM::InstanceProfile",
        "AWS::IAM::ManagedPolicy",
        "AWS::Logs::LogGroup",
        "AWS::SNS::Topic",
        "AWS::SQS::Queue",
        "AWS::S3::Bucket",
        "AWS::KMS::Key",
        "AWS::CertificateManager::Account",
        "AWS::SSM::Parameter",
        "AWS::SecretsManager::Secret",
        "AWS::EC2::KeyPair",
        "AWS::Events::Rule",
        "AWS::CloudWatch::Dashboard",
        "AWS::EC2::VPCEndpointServicePermissions",
        "AWS::CloudFormation::WaitConditionHandle",
        "AWS::Lambda::Permission",
    ],
)
def test_control_plane_types_are_inert(name):
    assert catalog.is_inert(name)
    made = lookup(name)
    assert made is not None
    assert made.name == name
    assert name not in registered()  # made on demand, not emulated


def test_lambda_functions_are_emulated():
    """Issue 17: a function runs as the target of an ALB (testbed.model.lambda_targets)."""
    assert catalog.support("AWS::Lambda::Function").support == catalog.EMULATED


@pytest.mark.parametrize(
    ("name", "note"),
    [
        ("AWS::AutoScaling::WarmPool", "warm pools"),
        ("AWS::ECS::Service", "containers do not run"),
        ("AWS::EFS::FileSystem", "file systems"),
        ("AWS::RDS::DBInstance", "databases"),
        ("AWS::EC2::VPCCidrBlock", "address ranges"),
        ("AWS::Redshift::Cluster", "no model of this type"),  # AWS's, not in the table
    ],
)
def test_not_emulated_types_are_accepted_and_say_what_is_missing(name, note):
    found = catalog.support(name)
    assert found is not None
    assert found.support == catalog.NOT_EMULATED
    assert note in found.note
    assert catalog.is_inert(name)  # built like an inert type: Ref and GetAtt resolve
    made = lookup(name)
    assert made is not None
    assert name not in registered()


@pytest.mark.parametrize(
    ("name", "note"),
    [
        ("AWS::CloudFormation::Stack", "nested stacks are not supported"),
        ("AWS::CloudFormation::Macro", "macros"),
        ("AWS::CloudFormation::CustomResource", "Lambda-backed custom resources"),
        ("Custom::AMIInfo", "Lambda-backed custom resources"),
    ],
)
def test_refused_types_say_why(name, note):
    found = catalog.support(name)
    assert found is not None
    assert found.support == catalog.REFUSED
    assert note in found.note
    if not catalog.is_custom(name):
        assert lookup(name) is None


def test_typos_are_no_type_at_all():
    assert catalog.support("AWS::IAM::Rolle") is None
    assert lookup("AWS::IAM::Rolle") is None


def test_table_entries_name_real_aws_types_or_services():
    # A misspelt entry would silently never match.
    types = schemas.aws_types()
    for key in catalog.TABLE:
        if key.endswith("::"):
            assert any(t.startswith(key) for t in types), key
        else:
            assert key in types, key
