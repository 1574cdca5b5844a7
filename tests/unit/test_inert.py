"""Inert resources: accepted from AWS's schemas, Ref / GetAtt shaped as AWS documents them."""

from __future__ import annotations

import re

import pytest

from testbed.errors import TemplateErrors
from tests.unit.test_model_resources import BASE, BASE_LINES, with_resources

ACCOUNT = "123456789012"
NAME = re.compile(r"^lab-(?P<lid>[A-Za-z0-9]+)-[A-Z0-9]{13}$")  # {stack}-{LogicalId}-{13}


def outputs(load, resources: str, values: dict[str, str], **kwargs):
    text = (
        with_resources(resources)
        + "Outputs:\n"
        + "".join(f"  {name}: {{Value: {value}}}\n" for name, value in values.items())
    )
    model = load(text, stack_name=kwargs.pop("stack_name", "lab"), **kwargs)
    return model, model.outputs


ROLE = """\
Role:
  Type: AWS::IAM::Role
  Properties:
    AssumeRolePolicyDocument: {Version: "2012-10-17", Statement: []}
Profile:
  Type: AWS::IAM::InstanceProfile
  Properties: {Roles: [!Ref Role], Path: /web/}
"""


def test_iam_role_and_instance_profile(load):
    model, out = outputs(
        load,
        ROLE,
        {
            "RoleRef": "!Ref Role",
            "RoleArn": "!GetAtt Role.Arn",
            "RoleId": "!GetAtt Role.RoleId",
            "ProfileArn": "!GetAtt Profile.Arn",
        },
    )
    assert NAME.match(out["RoleRef"]).group("lid") == "Role"
    assert out["RoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/{out['RoleRef']}"
    assert re.fullmatch(r"AROA[A-Z0-9]{17}", out["RoleId"])
    profile = model.inert["Profile"].ref
    assert out["ProfileArn"] == f"arn:aws:iam::{ACCOUNT}:instance-profile/web/{profile}"
    assert model.inert["Role"].note.startswith("not emulated: ")
    assert model.inert["Role"].kind == "inert"


def test_names_are_deterministic_and_given_names_win(load):
    first = outputs(load, ROLE, {"R": "!Ref Role"})[1]["R"]
    again = outputs(load, ROLE, {"R": "!Ref Role"})[1]["R"]
    other_stack = outputs(load, ROLE, {"R": "!Ref Role"}, stack_name="other")[1]["R"]
    assert first == again
    assert other_stack.startswith("other-Role-")
    assert other_stack[-13:] != first[-13:]
    named = ROLE.replace("Properties:\n    Assume", "Properties:\n    RoleName: web\n    Assume")
    out = outputs(load, named, {"R": "!Ref Role", "A": "!GetAtt Role.Arn"})[1]
    assert out == {"R": "web", "A": f"arn:aws:iam::{ACCOUNT}:role/web"}


def test_long_generated_names_fit_the_schema_limit(load):
    stack = "s" * 100
    out = outputs(load, ROLE, {"R": "!Ref Role"}, stack_name=stack)[1]
    assert len(out["R"]) <= 64  # RoleName's maxLength in AWS's schema
    assert re.fullmatch(r"s{10,}-Role-[A-Z0-9]{13}", out["R"])  # the stack part is cut


def test_sns_topic(load):
    out = outputs(
        load,
        "Topic: {Type: AWS::SNS::Topic, Properties: {TopicName: alerts}}\n",
        {"Ref": "!Ref Topic", "Name": "!GetAtt Topic.TopicName", "Arn": "!GetAtt Topic.TopicArn"},
    )[1]
    arn = f"arn:aws:sns:us-east-1:{ACCOUNT}:alerts"
    assert out == {"Ref": arn, "Name": "alerts", "Arn": arn}


def test_sqs_queue(load):
    out = outputs(
        load,
        "Queue: {Type: AWS::SQS::Queue}\n",
        {"Ref": "!Ref Queue", "Arn": "!GetAtt Queue.Arn", "Name": "!GetAtt Queue.QueueName"},
        region="eu-west-1",
    )[1]
    assert NAME.match(out["Name"])
    assert out["Ref"] == f"https://sqs.eu-west-1.amazonaws.com/{ACCOUNT}/{out['Name']}"
    assert out["Arn"] == f"arn:aws:sqs:eu-west-1:{ACCOUNT}:{out['Name']}"


def test_s3_bucket(load):
    out = outputs(
        load,
        "Bucket: {Type: AWS::S3::Bucket}\n",
        {"Ref": "!Ref Bucket", "Arn": "!GetAtt Bucket.Arn", "Dns": "!GetAtt Bucket.DomainName"},
    )[1]
    name = out["Ref"]
    assert re.fullmatch(r"lab-bucket-[a-z0-9]{13}", name)  # bucket names are lower case
    assert out["Arn"] == f"arn:aws:s3:::{name}"
    assert out["Dns"] == f"{name}.s3.amazonaws.com"


def test_log_group_kms_key_and_certificate(load):
    resources = (
        "Logs: {Type: AWS::Logs::LogGroup, Properties: {LogGroupName: /app/web}}\n"
        "Key: {Type: AWS::KMS::Key}\n"
        "Cert: {Type: AWS::CertificateManager::Certificate, Properties: {DomainName: a.example}}\n"
    )
    out = outputs(
        load,
        resources,
        {
            "LogArn": "!GetAtt Logs.Arn",
            "Key": "!Ref Key",
            "KeyArn": "!GetAtt Key.Arn",
            "KeyId": "!GetAtt Key.KeyId",
            "Cert": "!Ref Cert",
        },
    )[1]
    assert out["LogArn"] == f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/app/web:*"
    uuid = "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
    assert re.fullmatch(uuid, out["Key"])
    assert out["KeyArn"] == f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{out['Key']}"
    assert out["KeyId"] == out["Key"]
    assert re.fullmatch(f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/{uuid}", out["Cert"])


def test_getatt_of_a_given_property_returns_its_value(load):
    out = outputs(
        load,
        "P: {Type: AWS::SSM::Parameter, Properties: {Type: String, Value: hello,"
        " Tags: {team: web}}}\n",
        {"V": "!GetAtt P.Value", "Arn": "!GetAtt P.Arn"},
    )[1]
    assert out["V"] == "hello"  # Tags as a mapping: SSM's own Tags shape is accepted
    assert out["Arn"].startswith(f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/lab-P-")


def test_wait_condition_handle_url_names_the_handle(load):
    model, out = outputs(
        load,
        "Handle: {Type: AWS::CloudFormation::WaitConditionHandle}\n"
        "Wait: {Type: AWS::CloudFormation::WaitCondition,"
        " Properties: {Handle: !Ref Handle, Timeout: '300'}}\n",
        {"Url": "!Ref Handle", "Data": "!GetAtt Wait.Data"},
    )
    assert out["Url"].startswith("https://cloudformation-waitcondition-us-east-1.s3.amazonaws.com/")
    assert "/Handle?X-Amz-" in out["Url"]
    assert out["Data"] == "{}"
    wait = model.inert["Wait"]
    assert dict(wait.properties) == {"Handle": out["Url"], "Timeout": "300"}


def test_an_instance_profile_ref_is_an_ignored_instance_property(load):
    model, _ = outputs(
        load,
        ROLE + "Web:\n  Type: AWS::EC2::Instance\n"
        "  Properties: {SubnetId: !Ref Subnet, IamInstanceProfile: !Ref Profile}\n",
        {},
    )
    assert model.inert["Profile"].ref in model.inert["Profile"].attributes["Arn"]
    assert "Web" in model.instances


def test_inert_properties_are_checked_against_the_schema(fails):
    text = with_resources(
        "Role:\n  Type: AWS::IAM::Role\n  Properties:\n    RoleNme: web\n"
        "Queue:\n  Type: AWS::SQS::Queue\n  Properties: {QueueNam: q}\n"
    )
    err = fails(text, "unknown property RoleNme", "did you mean RoleName?", logical_id="Role")
    assert isinstance(err, TemplateErrors)
    shown = str(err)
    assert "required property AssumeRolePolicyDocument is missing" in shown
    assert "unknown property QueueNam" in shown
    assert "did you mean QueueName?" in shown


def test_unknown_getatt_of_an_inert_type_lists_the_schema_attributes(fails):
    text = with_resources(ROLE) + "Outputs:\n  X: {Value: !GetAtt Role.Nope}\n"
    fails(text, "Nope", "Arn", "RoleId")


def test_unknown_and_refused_types_are_all_reported_in_one_pass(fails):
    text = with_resources(
        "A: {Type: AWS::IAM::Rolle}\n"
        "B: {Type: AWS::CloudFormation::Stack}\n"
        "C: {Type: AWS::CloudFormation::Macro}\n"
    )
    err = fails(text, "unknown resource type AWS::IAM::Rolle", "did you mean AWS::IAM::Role?")
    shown = str(err)
    assert f"t.yaml:{BASE_LINES + 2}: B: AWS::CloudFormation::Stack is an AWS type" in shown
    assert "the lab does not emulate: nested stacks are not supported" in shown
    assert "C: AWS::CloudFormation::Macro is an AWS type the lab does not emulate: macros" in shown


def test_not_emulated_types_build_like_inert_ones_and_say_so(load):
    model = load(
        with_resources("Cluster: {Type: AWS::ECS::Cluster}\n")
        + "Outputs:\n  A: {Value: !GetAtt Cluster.Arn}\n"
    )
    cluster = model.inert["Cluster"]
    assert cluster.kind == "not-emulated"
    assert "containers do not run in the lab" in cluster.note
    assert model.outputs["A"].startswith("arn:aws:ecs:us-east-1:123456789012:")


@pytest.mark.parametrize("kind", ["Interface", "Gateway"])
def test_vpc_endpoints_to_aws_services_are_inert(load, kind):
    model = load(
        BASE + f"  S3:\n    Type: AWS::EC2::VPCEndpoint\n    Properties: {{VpcEndpointType: {kind},"
        " VpcId: !Ref VPC, ServiceName: com.amazonaws.us-east-1.s3}\n"
    )
    assert model.inert["S3"].ref == "vpce-S3"


def test_every_inert_type_builds_and_resolves_every_attribute(load):
    # Generic code over AWS's schemas: one resource of each inert type, its required
    # properties given, every GetAtt read.
    from testbed.model import catalog, schemas

    types = sorted(
        t
        for t in schemas.aws_types()
        if (found := catalog.support(t)) is not None
        and found.support == catalog.INERT
        # A wait condition has rules of its own (test_model_signals.py).
        and t != "AWS::CloudFormation::WaitCondition"
    )
    assert len(types) > 100
    resources, values = [], []
    for index, name in enumerate(types):
        required = "".join(f"      {p}: x\n" for p in schemas.required(name))
        resources.append(f"  R{index}:\n    Type: {name}\n")
        if required:
            resources.append("    Properties:\n" + required)
        for attribute in schemas.getatt_names(name):
            values.append(f"  O{index}{re.sub('[^A-Za-z0-9]', '', attribute)}: ")
            values.append(f"{{Value: !GetAtt R{index}.{attribute}}}\n")
    model = load("Resources:\n" + "".join(resources) + "Outputs:\n" + "".join(values))
    assert len(model.inert) == len(types)
    for index, name in enumerate(types):
        built = model.inert[f"R{index}"]
        assert built.type == name
        assert built.ref
        assert set(built.attributes) == set(schemas.getatt_names(name))
