"""Change sets (testbed plan): what AWS's describe-change-set would say for an update.

Each property case cites the CloudFormation template reference page whose "Update requires"
line it follows (under https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/).
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from testbed.cli import plan as plan_cli
from testbed.errors import BadInput
from testbed.lab.stack_source import RunningTemplate
from testbed.model.changeset import (
    ChangeSet,
    ResourceChange,
    check_plan_base,
    plan_document,
    render,
    template_digest,
)
from testbed.model.changeset_diff import StackTemplate, compute_change_set
from tests.unit.changeset_data import BASE


def edit(old: str, new: str, text: str = BASE) -> str:
    """The template with one exact piece of text replaced."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def plan(
    new_text: str,
    new_params: dict[str, Any] | None = None,
    old_params: dict[str, Any] | None = None,
) -> ChangeSet:
    return compute_change_set(
        StackTemplate(BASE, "base.yaml", old_params or {}),
        StackTemplate(new_text, "new.yaml", new_params or {}),
        stack_name="lab",
    )


# (resource, old text, new text, property, RequiresRecreation, Replacement, lab replaces)
PROPERTY_CASES = [
    # aws-resource-ec2-vpc.html: EnableDnsHostnames "No interruption"
    (
        "VPC",
        "EnableDnsHostnames: true}",
        "EnableDnsHostnames: false}",
        "EnableDnsHostnames",
        "Never",
        "False",
        False,
    ),
    # aws-resource-ec2-vpc.html: InstanceTenancy "Replacement" default->dedicated, "No
    # interruption" dedicated->default: conditional
    (
        "VPC",
        "EnableDnsHostnames: true}",
        "EnableDnsHostnames: true, InstanceTenancy: default}",
        "InstanceTenancy",
        "Conditionally",
        "Conditional",
        True,
    ),
    # aws-resource-ec2-subnet.html: CidrBlock, AvailabilityZone "Replacement";
    # MapPublicIpOnLaunch "No interruption"
    (
        "SubnetA",
        "CidrBlock: 10.0.1.0/24",
        "CidrBlock: 10.0.5.0/24",
        "CidrBlock",
        "Always",
        "True",
        True,
    ),
    (
        "SubnetB",
        "AvailabilityZone: us-east-1b",
        "AvailabilityZone: us-east-1c",
        "AvailabilityZone",
        "Always",
        "True",
        True,
    ),
    (
        "SubnetB",
        "us-east-1b\n      MapPublicIpOnLaunch: true",
        "us-east-1b\n      MapPublicIpOnLaunch: false",
        "MapPublicIpOnLaunch",
        "Never",
        "False",
        False,
    ),
    # aws-resource-ec2-securitygroup.html: GroupDescription "Replacement", SecurityGroupIngress
    # "No interruption"
    (
        "WebSG",
        "GroupDescription: web",
        "GroupDescription: web servers",
        "GroupDescription",
        "Always",
        "True",
        True,
    ),
    (
        "WebSG",
        "FromPort: 80, ToPort: 80, CidrIp",
        "FromPort: 8080, ToPort: 8080, CidrIp",
        "SecurityGroupIngress",
        "Never",
        "False",
        False,
    ),
    # aws-resource-ec2-securitygroupingress.html: FromPort/ToPort "Replacement", Description
    # "No interruption"
    ("SshIn", "FromPort: 22", "FromPort: 21", "FromPort", "Always", "True", True),
    (
        "SshIn",
        "CidrIp: 10.0.0.0/16",
        "CidrIp: 10.0.0.0/16\n      Description: ssh",
        "Description",
        "Never",
        "False",
        False,
    ),
    # aws-resource-ec2-route.html: DestinationCidrBlock "Replacement", GatewayId "No
    # interruption"
    ("Extra", "198.51.100.0/24", "198.51.101.0/24", "DestinationCidrBlock", "Always", "True", True),
    # aws-resource-ec2-instance.html: SubnetId, ImageId, PrivateIpAddress "Replacement";
    # InstanceType, UserData "Some interruptions" (EBS-backed); SecurityGroupIds "No
    # interruption" in a VPC. AWS's change set says Conditionally for the latter three.
    (
        "Web1",
        "SubnetId: !Ref SubnetA\n",
        "SubnetId: !Ref SubnetB\n",
        "SubnetId",
        "Always",
        "True",
        True,
    ),
    (
        "Web1",
        "ImageId: ami-12345678\n      Security",
        "ImageId: ami-87654321\n      Security",
        "ImageId",
        "Always",
        "True",
        True,
    ),
    (
        "Web2",
        "PrivateIpAddress: 10.0.2.10",
        "PrivateIpAddress: 10.0.2.11",
        "PrivateIpAddress",
        "Always",
        "True",
        True,
    ),
    (
        "Web1",
        "InstanceType: t3.micro\n      ImageId",
        "InstanceType: t3.small\n      ImageId",
        "InstanceType",
        "Conditionally",
        "Conditional",
        False,
    ),
    (
        "Web1",
        "SecurityGroupIds: [!Ref WebSG]\n      Tags",
        "SecurityGroupIds: [!Ref WebSG, !GetAtt VPC.DefaultSecurityGroup]\n      Tags",
        "SecurityGroupIds",
        "Conditionally",
        "Conditional",
        False,
    ),
    (
        "Web2",
        "InstanceType: t3.micro, PrivateIpAddress",
        "InstanceType: t3.micro, UserData: !Base64 'echo hi', PrivateIpAddress",
        "UserData",
        "Conditionally",
        "Conditional",
        False,
    ),
    # aws-resource-ec2-networkinterface.html: PrivateIpAddress "Replacement", SourceDestCheck
    # "No interruption"
    (
        "Eni",
        "GroupSet: [!Ref WebSG]}",
        "GroupSet: [!Ref WebSG], PrivateIpAddress: 10.0.1.50}",
        "PrivateIpAddress",
        "Always",
        "True",
        True,
    ),
    (
        "Eni",
        "GroupSet: [!Ref WebSG]}",
        "GroupSet: [!Ref WebSG], SourceDestCheck: false}",
        "SourceDestCheck",
        "Never",
        "False",
        False,
    ),
    # aws-resource-ec2-natgateway.html: SubnetId "Replacement"
    (
        "Nat",
        "SubnetId: !Ref SubnetA, Alloc",
        "SubnetId: !Ref SubnetB, Alloc",
        "SubnetId",
        "Always",
        "True",
        True,
    ),
    # aws-resource-ec2-networkaclentry.html: RuleNumber "Replacement", PortRange "No
    # interruption"
    ("AclIn", "RuleNumber: 100", "RuleNumber: 110", "RuleNumber", "Always", "True", True),
    (
        "AclIn",
        "PortRange: {From: 80, To: 80}",
        "PortRange: {From: 443, To: 443}",
        "PortRange",
        "Never",
        "False",
        False,
    ),
    # aws-resource-elasticloadbalancingv2-loadbalancer.html: Scheme "Replacement",
    # LoadBalancerAttributes "No interruption"
    ("ALB", "Scheme: internet-facing", "Scheme: internal", "Scheme", "Always", "True", True),
    (
        "ALB",
        "Type: application\n",
        "Type: application\n      LoadBalancerAttributes: "
        "[{Key: idle_timeout.timeout_seconds, Value: '120'}]\n",
        "LoadBalancerAttributes",
        "Never",
        "False",
        False,
    ),
    # aws-resource-elasticloadbalancingv2-targetgroup.html: health-check settings "No
    # interruption", Name "Replacement"
    (
        "TG",
        "HealthCheckPath: /\n",
        "HealthCheckPath: /health\n",
        "HealthCheckPath",
        "Never",
        "False",
        False,
    ),
    (
        "TG",
        "Protocol: HTTP\n      Health",
        "Protocol: HTTP\n      Name: web\n      Health",
        "Name",
        "Always",
        "True",
        True,
    ),
    # aws-resource-elasticloadbalancingv2-listener.html: Port, DefaultActions "No interruption"
    ("Listener", "Port: 80\n", "Port: 8080\n", "Port", "Never", "False", False),
    # aws-resource-elasticloadbalancingv2-listenerrule.html: Priority, Conditions "No
    # interruption"
    ("Rule", "Priority: 10", "Priority: 20", "Priority", "Never", "False", False),
    ("Rule", "Values: [/api/*]", "Values: [/v2/*]", "Conditions", "Never", "False", False),
    # aws-resource-elasticloadbalancing-loadbalancer.html: Scheme "Replacement"; HealthCheck
    # "Replacement if you ... are adding one or removing it, otherwise No interruption"
    (
        "CLB",
        'Interval: "10"',
        'Interval: "20"',
        "HealthCheck",
        "Conditionally",
        "Conditional",
        False,
    ),
    (
        "CLB",
        "Instances: [!Ref Web1]",
        "Instances: [!Ref Web1]\n      Scheme: internal",
        "Scheme",
        "Always",
        "True",
        True,
    ),
    # aws-resource-ec2-launchtemplate.html: LaunchTemplateData "No interruption" (a new
    # version)
    (
        "LT",
        "InstanceType: t3.micro\n        ImageId",
        "InstanceType: t3.small\n        ImageId",
        "LaunchTemplateData",
        "Never",
        "False",
        False,
    ),
    # aws-resource-autoscaling-autoscalinggroup.html: MaxSize "No interruption";
    # VPCZoneIdentifier replaces only under AutoScalingReplacingUpdate WillReplace
    ("ASG", 'MaxSize: "3"', 'MaxSize: "4"', "MaxSize", "Never", "False", False),
    (
        "ASG",
        "VPCZoneIdentifier: [!Ref SubnetA, !Ref SubnetB]",
        "VPCZoneIdentifier: [!Ref SubnetA]",
        "VPCZoneIdentifier",
        "Conditionally",
        "Conditional",
        False,
    ),
    # aws-resource-autoscaling-scalingpolicy.html: ScalingAdjustment "No interruption"
    (
        "Policy",
        "ScalingAdjustment: 1",
        "ScalingAdjustment: 2",
        "ScalingAdjustment",
        "Never",
        "False",
        False,
    ),
    # aws-resource-cloudwatch-alarm.html: Threshold "No interruption", AlarmName "Replacement"
    ("Alarm", "Threshold: 70", "Threshold: 80", "Threshold", "Never", "False", False),
    (
        "Alarm",
        "Threshold: 70",
        "Threshold: 70\n      AlarmName: cpu",
        "AlarmName",
        "Always",
        "True",
        True,
    ),
    # aws-resource-route53-recordset.html: Name "Replacement" (the schema says updatable: the
    # reference wins), TTL "No interruption"
    ("Record", "Name: www.example.com.", "Name: web.example.com.", "Name", "Always", "True", True),
    ("Record", 'TTL: "60"', 'TTL: "300"', "TTL", "Never", "False", False),
]


@pytest.mark.parametrize(
    ("resource", "old", "new", "prop", "recreation", "replacement", "lab_replaces"),
    PROPERTY_CASES,
    ids=[f"{c[0]}.{c[3]}" for c in PROPERTY_CASES],
)
def test_property_change_matches_aws(
    resource: str,
    old: str,
    new: str,
    prop: str,
    recreation: str,
    replacement: str,
    lab_replaces: bool,
) -> None:
    change = plan(edit(old, new)).change(resource)
    assert change is not None
    assert change.action == "Modify"
    detail = next(d for d in change.details if d.name == prop)
    assert (detail.requires_recreation, detail.evaluation, detail.change_source) == (
        recreation,
        "Static",
        "DirectModification",
    )
    assert change.replacement == replacement
    assert change.lab_replacement is lab_replaces
    assert change.scope == ("Properties",)


def test_at_least_25_property_cases() -> None:
    assert len(PROPERTY_CASES) >= 25


def test_no_change_is_an_empty_change_set() -> None:
    assert not plan(BASE)
    # A parameter given with its default value, 80 as "80": still nothing.
    assert not plan(BASE, {"Port": "80", "Env": "dev"})
    assert plan(BASE).to_dict()["Status"] == "FAILED"
    assert "no changes" in render(plan(BASE))


def test_add_and_remove() -> None:
    new = edit(
        "  Web2:\n",
        "  Web3:\n    Type: AWS::EC2::Instance\n    Properties: {SubnetId: !Ref SubnetB}\n"
        "  Web2:\n",
    )
    start = new.index("  Rule:\n")
    new = new[:start] + new[new.index("  CLB:\n") :]
    change_set = plan(new)
    assert change_set.change("Web3") == ResourceChange("Add", "Web3", "AWS::EC2::Instance")
    removed = change_set.change("Rule")
    assert removed is not None
    assert removed.action == "Remove"
    assert removed.resource_type == "AWS::ElasticLoadBalancingV2::ListenerRule"
    assert [c.action for c in change_set.changes] == ["Add", "Remove"]


def test_a_condition_turning_true_adds_the_resource() -> None:
    new = edit(
        "  Web2:\n",
        "  Spare:\n    Type: AWS::EC2::Instance\n    Condition: IsProd\n"
        "    Properties: {SubnetId: !Ref SubnetB}\n  Web2:\n",
    )
    assert plan(new).change("Spare") is None  # Env dev: not created
    extra = plan(new, {"Env": "prod"}).change("Spare")
    assert extra is not None
    assert extra.action == "Add"


def test_parameter_change_is_a_parameter_reference() -> None:
    change_set = plan(BASE, {"Port": "8080"})
    tg = change_set.change("TG")
    assert tg is not None
    port = next(d for d in tg.details if d.name == "Port")
    assert (port.change_source, port.causing_entity, port.evaluation) == (
        "ParameterReference",
        "Port",
        "Static",
    )
    # aws-resource-elasticloadbalancingv2-targetgroup.html: Port "Replacement".
    assert tg.replacement == "True"
    assert tg.lab_replacement


def test_parameter_read_through_a_condition() -> None:
    tg = plan(BASE, {"Env": "prod"}).change("TG")
    assert tg is not None
    (detail,) = tg.details
    assert (detail.name, detail.change_source, detail.causing_entity) == (
        "HealthCheckIntervalSeconds",
        "ParameterReference",
        "Env",
    )
    assert tg.replacement == "False"


def test_ref_to_a_replaced_resource_is_dynamic() -> None:
    # Port replaces TG: what refers to TG is only known once the new one exists.
    change_set = plan(BASE, {"Port": "8080"})
    listener = change_set.change("Listener")
    assert listener is not None
    (detail,) = listener.details
    assert (detail.name, detail.evaluation, detail.change_source, detail.causing_entity) == (
        "DefaultActions",
        "Dynamic",
        "ResourceReference",
        "TG",
    )
    assert listener.replacement == "False"
    asg = change_set.change("ASG")
    assert asg is not None
    assert [d.name for d in asg.details] == ["TargetGroupARNs"]


def test_replacement_cascades_as_conditional() -> None:
    # A new GroupDescription replaces WebSG; SshIn's GroupId is create-only: Always + Dynamic
    # gives Conditional (AWS's rule), and the lab replaces it as the id does change.
    change_set = plan(edit("GroupDescription: web", "GroupDescription: web servers"))
    ssh = change_set.change("SshIn")
    assert ssh is not None
    (detail,) = ssh.details
    assert (detail.name, detail.requires_recreation, detail.evaluation) == (
        "GroupId",
        "Always",
        "Dynamic",
    )
    assert ssh.replacement == "Conditional"
    assert ssh.lab_replacement
    # Web1's SecurityGroupIds: Conditionally, no interruption in a VPC.
    web1 = change_set.change("Web1")
    assert web1 is not None
    assert web1.replacement == "Conditional"
    assert not web1.lab_replacement


def test_getatt_of_a_modified_resource_is_dynamic() -> None:
    # Web1 replaced: the record reading its PrivateIp gets a ResourceAttribute detail.
    record = plan(edit("SubnetId: !Ref SubnetA\n", "SubnetId: !Ref SubnetB\n")).change("Record")
    assert record is not None
    (detail,) = record.details
    assert (detail.change_source, detail.causing_entity, detail.evaluation) == (
        "ResourceAttribute",
        "Web1.PrivateIp",
        "Dynamic",
    )


def test_metadata_only_change() -> None:
    web1 = plan(edit("Metadata: {Note: first}", "Metadata: {Note: second}")).change("Web1")
    assert web1 is not None
    assert web1.scope == ("Metadata",)
    assert web1.replacement == "False"
    (detail,) = web1.details
    assert detail.to_dict()["Target"] == {"Attribute": "Metadata"}


def test_tags_change_has_scope_tags() -> None:
    web1 = plan(edit("Value: web1", "Value: web-1")).change("Web1")
    assert web1 is not None
    assert web1.scope == ("Tags",)
    assert web1.replacement == "False"


def test_update_policy_change() -> None:
    asg = plan(
        edit(
            "  ASG:\n    Type: AWS::AutoScaling::AutoScalingGroup\n",
            "  ASG:\n    Type: AWS::AutoScaling::AutoScalingGroup\n    UpdatePolicy:\n"
            "      AutoScalingReplacingUpdate: {WillReplace: true}\n",
        )
    ).change("ASG")
    assert asg is not None
    assert asg.scope == ("UpdatePolicy",)
    assert asg.replacement == "False"


def test_will_replace_makes_the_lab_replace_the_group() -> None:
    new = edit(
        "  ASG:\n    Type: AWS::AutoScaling::AutoScalingGroup\n",
        "  ASG:\n    Type: AWS::AutoScaling::AutoScalingGroup\n    UpdatePolicy:\n"
        "      AutoScalingReplacingUpdate: {WillReplace: true}\n",
    )
    old_with_policy = new
    change_set = compute_change_set(
        StackTemplate(old_with_policy, "old.yaml"),
        StackTemplate(
            edit(
                "VPCZoneIdentifier: [!Ref SubnetA, !Ref SubnetB]",
                "VPCZoneIdentifier: [!Ref SubnetA]",
                new,
            ),
            "new.yaml",
        ),
    )
    asg = change_set.change("ASG")
    assert asg is not None
    assert asg.replacement == "Conditional"
    assert asg.lab_replacement


def test_type_change_is_refused() -> None:
    new = edit(
        "  Eip:\n    Type: AWS::EC2::EIP\n    Properties: {Domain: vpc}\n",
        "  Eip:\n    Type: AWS::EC2::InternetGateway\n",
    )
    new = edit("AllocationId: !GetAtt Eip.AllocationId", "ConnectivityType: private", new)
    with pytest.raises(BadInput, match=r"Update of resource type is not permitted.*\[Eip\]"):
        plan(new)


def test_a_bad_new_template_reports_file_and_line() -> None:
    with pytest.raises(BadInput) as err:
        plan(edit("Priority: 10", "Priority: 10\n      Bogus: 1"))
    assert err.value.file == "new.yaml"
    assert err.value.line is not None


def test_to_dict_uses_aws_field_names() -> None:
    data = plan(edit("Priority: 10", "Priority: 20")).to_dict()
    assert data["Status"] == "CREATE_COMPLETE"
    (change,) = data["Changes"]
    assert change == {
        "Type": "Resource",
        "ResourceChange": {
            "Action": "Modify",
            "LogicalResourceId": "Rule",
            "ResourceType": "AWS::ElasticLoadBalancingV2::ListenerRule",
            "Replacement": "False",
            "Scope": ["Properties"],
            "Details": [
                {
                    "Target": {
                        "Attribute": "Properties",
                        "Name": "Priority",
                        "RequiresRecreation": "Never",
                    },
                    "Evaluation": "Static",
                    "ChangeSource": "DirectModification",
                    "LabOutcome": "NoInterruption",
                }
            ],
            "LabReplacement": False,
        },
    }
    json.dumps(data)


def test_render_shows_rows_and_details() -> None:
    text = render(plan(BASE, {"Port": "8080"}))
    assert "Modify  TG" in text
    assert "Properties.Port" in text
    assert "replaced" in text
    assert "0 to add, " in text


def test_saved_plan_is_refused_once_the_lab_changed() -> None:
    change_set = plan(BASE, {"Port": "8080"})
    base = template_digest(BASE, {})
    document = plan_document(
        change_set,
        lab="web",
        base_digest=base,
        template="/t/new.yaml",
        template_text=BASE,
        params={"Port": "8080"},
    )
    check_plan_base(document, lab="web", current_digest=base)  # unchanged: accepted
    with pytest.raises(BadInput, match="changed since this plan was made"):
        check_plan_base(document, lab="web", current_digest=template_digest(BASE, {"Port": "81"}))
    with pytest.raises(BadInput, match="made for lab 'web'"):
        check_plan_base(document, lab="other", current_digest=base)
    with pytest.raises(BadInput, match="not a plan file"):
        check_plan_base({"Changes": []}, lab="web", current_digest=base)


def test_cli_plan_prints_and_saves(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        plan_cli,
        "running_template",
        lambda name, stack=None: RunningTemplate("/t/base.yaml", BASE, {}),
    )
    new = tmp_path / "new.yaml"
    new.write_text(edit("Priority: 10", "Priority: 20"))
    out = tmp_path / "plan.json"
    args = SimpleNamespace(
        name="web",
        template=str(new),
        params=[("Port", "80")],
        json=False,
        out=str(out),
        stack=None,
    )
    assert plan_cli.cmd_plan(args) == 0
    assert "Modify  Rule" in capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert saved["BaseDigest"] == template_digest(BASE, {})
    assert saved["ChangeSet"]["Changes"][0]["ResourceChange"]["LogicalResourceId"] == "Rule"
