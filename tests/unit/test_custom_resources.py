"""Custom resources: refused, unless Metadata.Lab.Attributes gives what they would return."""

from __future__ import annotations

from tests.unit.test_model_resources import BASE_LINES, with_resources

AMI = """\
AmiInfo:
  Type: Custom::AMIInfo
  Metadata:
    Lab: {Attributes: {Id: ami-0abcdef1234567890, Tags: [a, b]}, PhysicalId: ami-info}
  Properties: {ServiceToken: arn:aws:lambda:us-east-1:123456789012:function:f, Region: x}
Web:
  Type: AWS::EC2::Instance
  Properties: {SubnetId: !Ref Subnet, ImageId: !GetAtt AmiInfo.Id}
"""


def test_custom_resource_without_attributes_is_refused(fails):
    text = with_resources(
        "Fn:\n  Type: Custom::RouteTableLambda\n  Properties: {ServiceToken: arn:x}\n"
        "Other:\n  Type: AWS::CloudFormation::CustomResource\n  Properties: {ServiceToken: x}\n"
    )
    err = fails(
        text,
        "Custom::RouteTableLambda: Lambda-backed custom resources cannot run in the lab",
        "Metadata: {Lab: {Attributes:",
        logical_id="Fn",
        line=BASE_LINES + 2,
    )
    assert "Other: AWS::CloudFormation::CustomResource: Lambda-backed" in str(err)


def test_custom_resource_with_attributes(load):
    text = with_resources(AMI) + "Outputs:\n  Ref: {Value: !Ref AmiInfo}\n"
    model = load(text)
    custom = model.inert["AmiInfo"]
    assert custom.kind == "custom"
    assert custom.ref == "ami-info"
    assert model.outputs["Ref"] == "ami-info"
    assert dict(custom.attributes) == {"Id": "ami-0abcdef1234567890", "Tags": ["a", "b"]}
    assert "not emulated" in custom.note


def test_default_physical_id_is_generated(load):
    model = load(with_resources(AMI.replace(", PhysicalId: ami-info", "")))
    assert model.inert["AmiInfo"].ref.startswith("default-AmiInfo-")


def test_unknown_attribute_lists_the_given_ones(fails):
    text = with_resources(AMI) + "Outputs:\n  X: {Value: !GetAtt AmiInfo.ImageId}\n"
    fails(text, "AmiInfo has no attribute 'ImageId'", "the attributes given: Id, Tags")


def test_service_token_is_required_as_on_aws(fails):
    text = with_resources(
        AMI.replace("ServiceToken: arn:aws:lambda:us-east-1:123456789012:function:f, ", "")
    )
    fails(text, "required property ServiceToken is missing", logical_id="AmiInfo")


def test_lab_keys_of_a_custom_resource_are_checked(fails):
    text = with_resources(AMI.replace("PhysicalId:", "PhysicalID:"))
    fails(text, "unknown key Metadata.Lab.PhysicalID", "did you mean PhysicalId?")


def test_attributes_must_be_a_mapping(fails):
    text = with_resources(
        AMI.replace("{Attributes: {Id: ami-0abcdef1234567890, Tags: [a, b]}", "{Attributes: [1]")
    )
    fails(text, "Metadata.Lab.Attributes must be a mapping", logical_id="AmiInfo")


def test_other_types_still_refuse_metadata_lab(fails):
    text = with_resources("Q:\n  Type: AWS::SQS::Queue\n  Metadata: {Lab: {Attributes: {}}}\n")
    fails(text, "Metadata.Lab is only for hosts", logical_id="Q")
