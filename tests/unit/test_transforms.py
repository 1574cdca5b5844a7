"""Transforms: SAM through AWS's translator (offline), LanguageExtensions passed, others refused."""

from __future__ import annotations

from testbed.template import transforms
from testbed.template.nodes import LDict

SAM = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Description: a function and a table
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.0.0.0/16}
  Handler:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.12
      Handler: app.handler
      InlineCode: "def handler(event, context): return 1"
      Policies: [AmazonS3ReadOnlyAccess]
  Table:
    Type: AWS::Serverless::SimpleTable
Outputs:
  HandlerArn: {Value: !GetAtt Handler.Arn}
"""


def test_sam_template_is_translated_and_built(load):
    model = load(SAM, region="eu-west-1")
    assert model.transforms == ("AWS::Serverless-2016-10-31",)
    assert dict(model.resource_types) == {
        "Vpc": "AWS::EC2::VPC",
        "Handler": "AWS::Lambda::Function",
        "HandlerRole": "AWS::IAM::Role",
        "Table": "AWS::DynamoDB::Table",
    }
    assert model.outputs["HandlerArn"].startswith(
        "arn:aws:lambda:eu-west-1:123456789012:function:default-Handler-"
    )
    assert model.description == "a function and a table"


def test_managed_policies_become_arns_without_aws(load):
    model = load(SAM)
    assert model.inert["HandlerRole"].type == "AWS::IAM::Role"
    # The role SAM made keeps the policy's ARN (checked through the translated document).
    from testbed.template.yaml_loader import load_text

    doc = transforms.apply(load_text(SAM, "t.yaml"), "t.yaml")
    arns = doc["Resources"]["HandlerRole"]["Properties"]["ManagedPolicyArns"]
    assert "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess" in arns


def test_lines_point_at_the_template(load):
    from testbed.template.yaml_loader import load_text

    doc = transforms.apply(load_text(SAM, "t.yaml"), "t.yaml")
    resources = doc["Resources"]
    assert isinstance(resources, LDict)
    assert resources.line_of("Vpc") == 5  # untouched: its own line
    assert resources.line_of("HandlerRole") == 8  # made from Handler
    assert resources["Vpc"].line_of("Properties") == 7


def test_translator_errors_name_the_file_and_resource(fails, line_with):
    text = SAM.replace('      InlineCode: "def handler(event, context): return 1"\n', "")
    fails(text, "AWS::Serverless-2016-10-31:", "CodeUri", logical_id="Handler", line=8)


def test_serverless_application_repository_is_refused_without_calling_aws(fails):
    app = (
        "  App:\n    Type: AWS::Serverless::Application\n"
        "    Properties:\n      Location: {ApplicationId: arn:aws:serverlessrepo:us-east-1:"
        "123456789012:applications/x, SemanticVersion: 1.0.0}\n"
    )
    text = SAM.replace("Outputs:", app + "Outputs:")
    fails(text, "Serverless Application Repository", logical_id="App", line=17)


def test_serverless_types_without_the_transform_say_so(fails):
    text = SAM.replace("Transform: AWS::Serverless-2016-10-31\n", "")
    fails(text, "add Transform: AWS::Serverless-2016-10-31", logical_id="Handler")


def test_language_extensions_pass_through(load):
    text = (
        "Transform: AWS::LanguageExtensions\n"
        "Resources:\n  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}\n"
    )
    assert load(text).transforms == ("AWS::LanguageExtensions",)


def test_other_transforms_are_refused(fails):
    text = (
        "Transform: [AWS::LanguageExtensions, MyMacro]\n"
        "Resources:\n  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}\n"
    )
    fails(text, "transform MyMacro cannot run in the lab", line=1)


def test_transform_must_be_names(fails):
    fails("Transform: {Name: x}\nResources: {}\n", "Transform must be a transform name", line=1)
