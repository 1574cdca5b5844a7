"""Template -> model for Auto Scaling (launch templates and configurations, groups, lifecycle
hooks, scaling policies, scheduled actions) and CloudWatch alarms; Metadata.Lab.TimeScale."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

import pytest

from testbed.errors import BadInput, TemplateErrors
from testbed.model import catalog, cron
from testbed.model.autoscaling_types import LAUNCHING, TERMINATING, StepAdjustment
from testbed.model.types import IgnoredProperty

BASE = """\
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.0.0.0/16}
  Other:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.1.0.0/16}
  SubA:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24, AvailabilityZone: us-east-1a}
  SubB:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.2.0/24, AvailabilityZone: us-east-1b}
  OtherSub:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref Other, CidrBlock: 10.1.1.0/24, AvailabilityZone: us-east-1a}
  Sg:
    Type: AWS::EC2::SecurityGroup
    Properties: {GroupDescription: web, VpcId: !Ref Vpc}
  Alb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties: {Subnets: [!Ref SubA, !Ref SubB], Scheme: internal}
  Tg:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties: {VpcId: !Ref Vpc, Port: 8080, Protocol: HTTP}
  OtherTg:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties: {VpcId: !Ref Other, Port: 80, Protocol: HTTP}
  Listener:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref Alb
      Port: 80
      Protocol: HTTP
      DefaultActions: [{Type: forward, TargetGroupArn: !Ref Tg}]
  Lt:
    Type: AWS::EC2::LaunchTemplate
    Properties:
      LaunchTemplateName: web
      LaunchTemplateData:
        ImageId: ami-12345678
        InstanceType: t3.micro
        KeyName: my-key
        SecurityGroupIds: [!Ref Sg]
        UserData: !Base64 "#!/bin/bash\\necho hi\\n"
"""

GROUP = """\
Asg:
  Type: AWS::AutoScaling::AutoScalingGroup
  Properties:
    MinSize: "1"
    MaxSize: "4"
    VPCZoneIdentifier: [!Ref SubA, !Ref SubB]
    LaunchTemplate: {LaunchTemplateId: !Ref Lt, Version: !GetAtt Lt.LatestVersionNumber}
    TargetGroupARNs: [!Ref Tg]
"""


def stack(*extra: str, group: str | None = GROUP) -> str:
    parts = [BASE] + [textwrap.indent(textwrap.dedent(e), "  ") for e in (group, *extra) if e]
    return "".join(p if p.endswith("\n") else p + "\n" for p in parts)


def errors_of(text: str, load) -> list[str]:
    with pytest.raises(BadInput) as info:
        load(text)
    found = info.value.errors if isinstance(info.value, TemplateErrors) else [info.value]
    return [str(e) for e in found]


# --- Groups and launch specs ---------------------------------------------------------------


def test_a_group_gets_aws_defaults_and_its_launch_templates_settings(load):
    model = load(stack(), stack_name="lab")
    group = model.auto_scaling_groups["Asg"]
    assert (group.min_size, group.max_size, group.desired) == (1, 4, 1)  # desired: MinSize
    assert group.subnets == ("SubA", "SubB")
    assert group.azs == ("us-east-1a", "us-east-1b")
    assert group.target_groups == ("Tg",)
    assert group.security_groups == ("Sg",)
    assert group.health_check_type == "EC2"
    assert group.health_check_grace_s == 0
    assert group.cooldown_s == 300
    assert group.termination_policies == ("Default",)
    assert group.name.startswith("lab-Asg-")
    assert group.arn.startswith("arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:")
    assert group.arn.endswith(f":autoScalingGroupName/{group.name}")
    launch = group.launch
    assert (launch.logical_id, launch.kind, launch.version) == ("Lt", "launch-template", 1)
    assert launch.name == "web"
    assert launch.launch_template_id.startswith("lt-")
    assert len(launch.launch_template_id) == 20
    assert launch.image_id == "ami-12345678"
    assert launch.user_data == "#!/bin/bash\necho hi\n"
    assert IgnoredProperty("Lt", "LaunchTemplateData.KeyName (no meaning in the lab)") in (
        model.ignored
    )


def test_a_target_group_gives_the_groups_instances_the_http_backend_role(load):
    model = load(stack())
    role = model.auto_scaling_groups["Asg"].launch.role
    assert role is not None
    assert role.name == "http-backend"
    assert role.args["Port"] == 8080
    assert "Tg (HTTP 8080)" in model.default_roles["Asg"]


def test_the_launch_templates_own_role_is_kept(load):
    text = stack().replace(
        "  Lt:\n    Type: AWS::EC2::LaunchTemplate\n",
        "  Lt:\n    Type: AWS::EC2::LaunchTemplate\n    Metadata: {Lab: {Role: none}}\n",
    )
    model = load(text)
    assert model.auto_scaling_groups["Asg"].launch.role.name == "none"
    assert "Asg" not in model.default_roles


@pytest.mark.parametrize("version", ['"$Latest"', '"$Default"', '"1"', "1"])
def test_launch_template_versions(load, version):
    group = GROUP.replace("!GetAtt Lt.LatestVersionNumber", version)
    assert load(stack(group=group)).auto_scaling_groups["Asg"].launch.version == 1


def test_a_launch_template_by_name(load):
    group = GROUP.replace("LaunchTemplateId: !Ref Lt", "LaunchTemplateName: web")
    group += "  DependsOn: Lt\n"
    assert load(stack(group=group)).auto_scaling_groups["Asg"].launch.name == "web"


def test_a_version_the_template_does_not_create_is_an_error(fails, line_with):
    group = GROUP.replace("!GetAtt Lt.LatestVersionNumber", '"2"')
    text = stack(group=group)
    fails(
        text,
        "has no such version",
        "creates version 1",
        line=line_with(text, "LaunchTemplate: {"),
        logical_id="Asg",
    )


def test_a_launch_template_without_version_is_an_error(fails):
    group = GROUP.replace(", Version: !GetAtt Lt.LatestVersionNumber", "")
    fails(stack(group=group), "needs a Version", "LatestVersionNumber")


def test_launch_template_refs_and_attributes(load):
    model = load(
        stack(
            group=None,
        )
        + textwrap.dedent(
            """\
            Outputs:
              Id: {Value: !Ref Lt}
              Latest: {Value: !GetAtt Lt.LatestVersionNumber}
              Default: {Value: !GetAtt Lt.DefaultVersionNumber}
            """
        )
    )
    assert model.outputs["Id"].startswith("lt-")
    assert model.outputs["Latest"] == model.outputs["Default"] == "1"


def test_a_launch_configuration_in_the_default_vpc(load):
    text = """\
    Resources:
      WebSg:
        Type: AWS::EC2::SecurityGroup
        Properties: {GroupDescription: web, GroupName: websg}
      Config:
        Type: AWS::AutoScaling::LaunchConfiguration
        Metadata: {Lab: {Role: http-backend, RoleArgs: {Port: 80}}}
        Properties:
          ImageId: ami-12345678
          InstanceType: t3.micro
          SecurityGroups: [websg]
          AssociatePublicIpAddress: true
      Group:
        Type: AWS::AutoScaling::AutoScalingGroup
        DependsOn: WebSg
        Properties:
          MinSize: 2
          MaxSize: 2
          AvailabilityZones: [us-east-1a, us-east-1b]
          LaunchConfigurationName: !Ref Config
          HealthCheckType: EC2
          Tags: [{Key: Name, Value: web, PropagateAtLaunch: true}]
    Outputs:
      Name: {Value: !Ref Config}
    """
    model = load(text, stack_name="lab")
    group = model.auto_scaling_groups["Group"]
    assert group.subnets == ("DefaultSubnet1a", "DefaultSubnet1b")
    assert group.launch.kind == "launch-configuration"
    assert group.launch.role.name == "http-backend"
    assert group.launch.associate_public_ip is True
    assert group.security_groups == ("WebSg",)
    assert group.tags[0].propagate_at_launch
    assert model.outputs["Name"].startswith("lab-Config-")


def test_network_interfaces_of_a_launch_template(load):
    text = stack(group=GROUP).replace(
        "        SecurityGroupIds: [!Ref Sg]\n",
        "        NetworkInterfaces:\n"
        "          - {DeviceIndex: 0, Groups: [!Ref Sg], AssociatePublicIpAddress: false,"
        " SubnetId: !Ref SubA, DeleteOnTermination: true}\n",
    )
    model = load(text)
    launch = model.auto_scaling_groups["Asg"].launch
    assert launch.security_groups == ("Sg",)
    assert launch.associate_public_ip is False
    assert any("NetworkInterfaces[0].SubnetId" in i.property for i in model.ignored)


def test_a_fixed_address_in_a_launch_template_is_an_error(fails):
    text = stack().replace(
        "        SecurityGroupIds: [!Ref Sg]\n",
        "        NetworkInterfaces: [{DeviceIndex: 0, PrivateIpAddress: 10.0.1.10}]\n",
    )
    fails(text, "PrivateIpAddress would give every instance", logical_id="Lt")


def test_no_launch_group_defaults_to_the_vpcs_default_security_group(load):
    text = stack().replace("        SecurityGroupIds: [!Ref Sg]\n", "")
    assert load(text).auto_scaling_groups["Asg"].security_groups == ("Vpc.default",)


def test_mixed_instances_policy_uses_its_launch_template(load):
    group = GROUP.replace(
        "    LaunchTemplate: {LaunchTemplateId: !Ref Lt, Version: !GetAtt Lt.LatestVersionNumber}",
        "    MixedInstancesPolicy:\n"
        "      InstancesDistribution: {OnDemandBaseCapacity: 1}\n"
        "      LaunchTemplate:\n"
        "        LaunchTemplateSpecification: {LaunchTemplateId: !Ref Lt, Version: $Latest}\n"
        "        Overrides: [{InstanceType: t3.small}]",
    )
    model = load(stack(group=group))
    assert model.auto_scaling_groups["Asg"].launch.logical_id == "Lt"
    assert any("Overrides" in i.property for i in model.ignored)


def test_group_settings(load):
    group = GROUP + textwrap.indent(
        textwrap.dedent(
            """\
            DesiredCapacity: 3
            HealthCheckType: ELB
            HealthCheckGracePeriod: "90"
            Cooldown: "120"
            DefaultInstanceWarmup: 30
            TerminationPolicies: [OldestInstance, ClosestToNextInstanceHour]
            NewInstancesProtectedFromScaleIn: true
            MaxInstanceLifetime: 86400
            MetricsCollection: [{Granularity: 1Minute}]
            NotificationConfigurations: [{TopicARN: arn:aws:sns:us-east-1:1:t}]
            LifecycleHookSpecificationList:
              - LifecycleHookName: warm
                LifecycleTransition: autoscaling:EC2_INSTANCE_LAUNCHING
                HeartbeatTimeout: 60
                DefaultResult: CONTINUE
            """
        ),
        "    ",
    )
    model = load(stack(group=group))
    g = model.auto_scaling_groups["Asg"]
    assert g.desired == 3
    assert g.health_check_type == "ELB"
    assert (g.health_check_grace_s, g.cooldown_s, g.default_instance_warmup_s) == (90, 120, 30)
    assert g.termination_policies == ("OldestInstance", "ClosestToNextInstanceHour", "Default")
    assert g.new_instances_protected
    assert g.max_instance_lifetime_s == 86400
    hook = g.lifecycle_hooks[0]
    assert (hook.name, hook.transition, hook.heartbeat_timeout_s, hook.default_result) == (
        "warm",
        LAUNCHING,
        60,
        "CONTINUE",
    )
    assert any(i.property.startswith("MetricsCollection") for i in model.ignored)


def test_a_joined_subnet_list_is_accepted(load):
    group = GROUP.replace("[!Ref SubA, !Ref SubB]", "!Join [',', [!Ref SubA, !Ref SubB]]")
    assert load(stack(group=group)).auto_scaling_groups["Asg"].subnets == ("SubA", "SubB")


# --- Group errors --------------------------------------------------------------------------


def test_min_size_above_max_size(fails, line_with):
    group = GROUP.replace('MinSize: "1"', 'MinSize: "5"')
    text = stack(group=group)
    fails(text, "MinSize 5 is greater than MaxSize 4", line=line_with(text, "MinSize"))


def test_desired_outside_min_and_max(fails, line_with):
    group = GROUP + "    DesiredCapacity: 9\n"
    text = stack(group=group)
    fails(
        text,
        "DesiredCapacity 9 must be between MinSize 1 and MaxSize 4",
        line=line_with(text, "DesiredCapacity"),
        logical_id="Asg",
    )


def test_subnets_of_several_vpcs(fails, line_with):
    group = GROUP.replace("[!Ref SubA, !Ref SubB]", "[!Ref SubA, !Ref OtherSub]")
    text = stack(group=group)
    fails(text, "several VPCs", line=line_with(text, "VPCZoneIdentifier"))


def test_a_target_group_of_another_vpc(fails, line_with):
    group = GROUP.replace("[!Ref Tg]", "[!Ref OtherTg]")
    text = stack(group=group)
    fails(text, "target group OtherTg is in Other", line=line_with(text, "TargetGroupARNs"))


def test_a_group_without_subnets(fails):
    group = GROUP.replace("    VPCZoneIdentifier: [!Ref SubA, !Ref SubB]\n", "")
    fails(stack(group=group), "the group has no subnets")


def test_every_group_problem_in_one_pass(load):
    group = (
        GROUP.replace("[!Ref Tg]", "[!Ref OtherTg]")
        + "    TerminationPolicies: [OldestInstanse]\n"
        + "    HealthCheckType: EBS\n"
    )
    found = errors_of(stack(group=group), load)
    assert len(found) == 3, found
    assert any("did you mean OldestInstance?" in e for e in found)
    assert any("HealthCheckType must be one of EC2, ELB" in e for e in found)


def test_two_launch_sources_are_an_error(fails):
    group = GROUP + "    LaunchConfigurationName: cfg\n"
    fails(stack(group=group), "one of LaunchTemplate, LaunchConfigurationName")


# --- Lifecycle hooks -----------------------------------------------------------------------


HOOK = """\
Hook:
  Type: AWS::AutoScaling::LifecycleHook
  Properties:
    AutoScalingGroupName: !Ref Asg
    LifecycleTransition: autoscaling:EC2_INSTANCE_TERMINATING
    LifecycleHookName: drain
    NotificationTargetARN: arn:aws:sns:us-east-1:123456789012:t
"""


def test_a_lifecycle_hook_joins_its_group(load):
    model = load(stack(HOOK))
    hooks = model.auto_scaling_groups["Asg"].lifecycle_hooks
    assert len(hooks) == 1
    assert (hooks[0].name, hooks[0].transition, hooks[0].logical_id) == (
        "drain",
        TERMINATING,
        "Hook",
    )
    assert hooks[0].heartbeat_timeout_s == 3600
    assert hooks[0].default_result == "ABANDON"


def test_lifecycle_hook_problems(load):
    hook = HOOK.replace("TERMINATING", "TERMINATED") + "    HeartbeatTimeout: 10\n"
    found = errors_of(stack(hook), load)
    assert any("LifecycleTransition must be one of" in e for e in found), found
    assert any("HeartbeatTimeout must be from 30 to 7200" in e for e in found), found


def test_a_hook_on_another_stacks_group_is_not_emulated(load):
    text = """\
    Parameters:
      GroupName: {Type: String, Default: their-group}
    Resources:
      Hook:
        Type: AWS::AutoScaling::LifecycleHook
        Properties:
          AutoScalingGroupName: !Ref GroupName
          LifecycleTransition: autoscaling:EC2_INSTANCE_TERMINATING
    """
    model = load(text)
    assert model.inert["Hook"].kind == "not-emulated"
    assert "their-group" in model.inert["Hook"].note


# --- Scaling policies ----------------------------------------------------------------------


def policy(body: str, name: str = "Policy") -> str:
    return f"{name}:\n  Type: AWS::AutoScaling::ScalingPolicy\n  Properties:\n" + textwrap.indent(
        "AutoScalingGroupName: !Ref Asg\n" + textwrap.dedent(body), "    "
    )


LABEL = "!Join ['/', [!GetAtt Alb.LoadBalancerFullName, !GetAtt Tg.TargetGroupFullName]]"
REQUESTS = f"""\
PolicyType: TargetTrackingScaling
TargetTrackingConfiguration:
  TargetValue: 50
  PredefinedMetricSpecification:
    PredefinedMetricType: ALBRequestCountPerTarget
    ResourceLabel: {LABEL}
"""


def test_target_tracking_on_requests_per_target(load):
    model = load(stack(policy(REQUESTS)) + "Outputs:\n  Arn: {Value: !Ref Policy}\n")
    found = model.scaling_policies["Policy"]
    assert found.policy_type == "TargetTrackingScaling"
    assert found.target_value == 50
    assert found.predefined_metric == "ALBRequestCountPerTarget"
    assert found.resource_target == ("Alb", "Tg")
    assert found.resource_label.startswith("app/")
    assert "/targetgroup/" in found.resource_label
    group = model.auto_scaling_groups["Asg"].name
    assert model.outputs["Arn"] == found.arn
    assert found.arn.startswith("arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:")
    assert found.arn.endswith(f":autoScalingGroupName/{group}:policyName/{found.name}")


def test_requests_per_target_needs_a_resource_label(fails):
    body = REQUESTS.replace(f"    ResourceLabel: {LABEL}\n", "")
    fails(stack(policy(body)), "ALBRequestCountPerTarget needs a ResourceLabel")


def test_a_resource_label_naming_nothing(fails):
    body = REQUESTS.replace(LABEL, "app/x/1/targetgroup/y/2")
    fails(stack(policy(body)), "names no application load balancer and target group")


def test_the_labels_target_group_must_be_the_groups(fails):
    text = stack(policy(REQUESTS)).replace("TargetGroupARNs: [!Ref Tg]", "TargetGroupARNs: []")
    fails(text, "which group Asg does not register its instances in")


def test_target_value_must_be_positive(fails):
    fails(stack(policy(REQUESTS.replace("TargetValue: 50", "TargetValue: 0"))), "more than 0")


def test_target_tracking_on_cpu_and_on_a_customized_metric(load):
    cpu = """\
    PolicyType: TargetTrackingScaling
    EstimatedInstanceWarmup: 60
    TargetTrackingConfiguration:
      TargetValue: 40
      DisableScaleIn: true
      PredefinedMetricSpecification: {PredefinedMetricType: ASGAverageCPUUtilization}
    """
    custom = """\
    PolicyType: TargetTrackingScaling
    TargetTrackingConfiguration:
      TargetValue: 1000
      CustomizedMetricSpecification:
        Namespace: AWS/EC2
        MetricName: NetworkIn
        Dimensions: [{Name: AutoScalingGroupName, Value: !Ref Asg}]
        Statistic: Average
    """
    model = load(stack(policy(cpu, "Cpu"), policy(custom, "Net")))
    assert model.scaling_policies["Cpu"].disable_scale_in
    assert model.scaling_policies["Cpu"].estimated_instance_warmup_s == 60
    metric = model.scaling_policies["Net"].customized_metric
    assert (metric.namespace, metric.metric_name, metric.statistic) == (
        "AWS/EC2",
        "NetworkIn",
        "Average",
    )
    assert metric.dimensions == (("AutoScalingGroupName", model.auto_scaling_groups["Asg"].name),)


def test_a_customized_metric_the_lab_does_not_have(fails):
    body = """\
    PolicyType: TargetTrackingScaling
    TargetTrackingConfiguration:
      TargetValue: 10
      CustomizedMetricSpecification:
        Namespace: AWS/SQS
        MetricName: ApproximateNumberOfMessagesVisible
        Statistic: Average
    """
    fails(stack(policy(body)), "the lab has no metrics in namespace AWS/SQS", logical_id="Policy")


def test_metric_math_is_not_emulated(fails):
    body = """\
    PolicyType: TargetTrackingScaling
    TargetTrackingConfiguration:
      TargetValue: 10
      CustomizedMetricSpecification: {Metrics: [{Id: m1}]}
    """
    fails(stack(policy(body)), "metric math is not emulated")


STEPS = """\
PolicyType: StepScaling
AdjustmentType: ChangeInCapacity
MetricAggregationType: Maximum
StepAdjustments:
  - {MetricIntervalLowerBound: 0, MetricIntervalUpperBound: 10, ScalingAdjustment: 1}
  - {MetricIntervalLowerBound: 10, ScalingAdjustment: 3}
"""


def test_step_scaling(load):
    found = load(stack(policy(STEPS))).scaling_policies["Policy"]
    assert found.step_adjustments == (StepAdjustment(0, 10, 1), StepAdjustment(10, None, 3))
    assert found.metric_aggregation == "Maximum"


@pytest.mark.parametrize(
    ("second", "message"),
    [("MetricIntervalLowerBound: 5", "overlap"), ("MetricIntervalLowerBound: 20", "gap")],
)
def test_steps_that_overlap_or_leave_a_gap(fails, second, message):
    body = STEPS.replace("MetricIntervalLowerBound: 10", second)
    fails(stack(policy(body)), f"StepAdjustments {'have a gap' if message == 'gap' else 'overlap'}")


def test_simple_scaling_and_its_rules(load):
    body = (
        "AdjustmentType: PercentChangeInCapacity\nScalingAdjustment: 50\n"
        "MinAdjustmentMagnitude: 2\nCooldown: '60'\n"
    )
    found = load(stack(policy(body))).scaling_policies["Policy"]
    assert (found.policy_type, found.scaling_adjustment, found.cooldown_s) == (
        "SimpleScaling",
        50,
        60,
    )
    found_errors = errors_of(stack(policy("ScalingAdjustment: 1\n")), load)
    assert any("needs an AdjustmentType" in e for e in found_errors)
    found_errors = errors_of(stack(policy(REQUESTS + "Cooldown: 60\n")), load)
    assert any(
        "Cooldown is not valid for a TargetTrackingScaling policy" in e for e in found_errors
    )


def test_predictive_scaling_is_kept_as_not_emulated(load):
    body = (
        "PolicyType: PredictiveScaling\n"
        "PredictiveScalingConfiguration: {MetricSpecifications: []}\n"
    )
    model = load(stack(policy(body)))
    assert model.scaling_policies["Policy"].emulated is False
    assert any("predictive" in i.property for i in model.ignored)


def test_a_policy_of_a_group_not_in_the_stack(fails):
    text = """\
    Resources:
      Policy:
        Type: AWS::AutoScaling::ScalingPolicy
        Properties:
          AutoScalingGroupName: my-group
          AdjustmentType: ChangeInCapacity
          ScalingAdjustment: 1
    """
    fails(text, "AutoScalingGroupName 'my-group' is not the id of a resource of this stack")


# --- Alarms --------------------------------------------------------------------------------


def alarm(body: str, name: str = "Alarm") -> str:
    return f"{name}:\n  Type: AWS::CloudWatch::Alarm\n  Properties:\n" + textwrap.indent(
        textwrap.dedent(body), "    "
    )


CPU_ALARM = """\
Namespace: AWS/EC2
MetricName: CPUUtilization
Dimensions: [{Name: AutoScalingGroupName, Value: !Ref Asg}]
Statistic: Average
Period: 60
EvaluationPeriods: 3
Threshold: 70
ComparisonOperator: GreaterThanOrEqualToThreshold
AlarmActions: [!Ref Policy, arn:aws:sns:us-east-1:123456789012:ops]
"""


def test_an_alarm_on_a_lab_metric_runs_its_policy(load):
    model = load(stack(policy(STEPS), alarm(CPU_ALARM)), stack_name="lab")
    found = model.alarms["Alarm"]
    assert found.alarm_actions == ("Policy",)
    assert found.other_actions == ("arn:aws:sns:us-east-1:123456789012:ops",)
    assert found.datapoints_to_alarm == 3  # EvaluationPeriods when not given
    assert found.treat_missing == "missing"
    assert found.name.startswith("lab-Alarm-")
    assert found.metric.dimensions == (
        ("AutoScalingGroupName", model.auto_scaling_groups["Asg"].name),
    )


def test_an_alarm_on_load_balancer_metrics(load):
    body = """\
    Namespace: AWS/ApplicationELB
    MetricName: TargetResponseTime
    Dimensions:
      - {Name: LoadBalancer, Value: !GetAtt Alb.LoadBalancerFullName}
      - {Name: TargetGroup, Value: !GetAtt Tg.TargetGroupFullName}
    ExtendedStatistic: p99
    Period: 10
    EvaluationPeriods: 6
    DatapointsToAlarm: 4
    Threshold: 0.5
    ComparisonOperator: GreaterThanThreshold
    TreatMissingData: notBreaching
    AlarmName: slow
    """
    found = load(stack(alarm(body))).alarms["Alarm"]
    assert found.name == "slow"
    assert found.metric.statistic == "p99"
    assert [d[0] for d in found.metric.dimensions] == ["LoadBalancer", "TargetGroup"]
    assert (found.period_s, found.datapoints_to_alarm, found.treat_missing) == (
        10,
        4,
        "notBreaching",
    )


def test_alarm_problems_in_one_pass(load):
    body = (
        CPU_ALARM.replace("Period: 60", "Period: 45").replace(
            "Statistic: Average", "Statistic: Mean"
        )
        + "DatapointsToAlarm: 5\n"
    )
    found = errors_of(stack(policy(STEPS), alarm(body)), load)
    assert any("Period must be 10, 30 or a multiple of 60" in e for e in found), found
    assert any("Statistic must be one of Average" in e for e in found), found
    assert any("DatapointsToAlarm must be from 1 to EvaluationPeriods (3)" in e for e in found)


def test_a_target_tracking_policy_cannot_be_an_alarm_action(fails):
    fails(stack(policy(REQUESTS), alarm(CPU_ALARM)), "only step and simple scaling policies")


def test_an_alarm_on_a_metric_the_lab_lacks_cannot_drive_a_policy(fails, line_with):
    body = CPU_ALARM.replace("MetricName: CPUUtilization", "MetricName: StatusCheckFailed")
    text = stack(policy(STEPS), alarm(body))
    fails(
        text,
        "the lab has no metric StatusCheckFailed in AWS/EC2",
        "Policy would never run",
        line=line_with(text, "StatusCheckFailed"),
        logical_id="Alarm",
    )


def test_a_dimension_naming_nothing_of_the_stack(fails):
    body = CPU_ALARM.replace("Value: !Ref Asg", "Value: some-group")
    fails(stack(policy(STEPS), alarm(body)), "AutoScalingGroupName 'some-group' is no Auto")


def test_a_notification_alarm_on_another_service_is_not_emulated(load):
    body = """\
    Namespace: AWS/RDS
    MetricName: CPUUtilization
    Statistic: Average
    Period: 300
    EvaluationPeriods: 1
    Threshold: 90
    ComparisonOperator: GreaterThanThreshold
    AlarmActions: [arn:aws:sns:us-east-1:123456789012:ops]
    """
    model = load(stack(alarm(body)) + "Outputs:\n  Arn: {Value: !GetAtt Alarm.Arn}\n")
    assert "Alarm" not in model.alarms
    assert model.inert["Alarm"].kind == "not-emulated"
    assert "AWS/RDS" in model.inert["Alarm"].note
    assert model.outputs["Arn"].startswith("arn:aws:cloudwatch:us-east-1:123456789012:alarm:")


# --- Scheduled actions ---------------------------------------------------------------------


def scheduled(body: str, name: str = "Night") -> str:
    return f"{name}:\n  Type: AWS::AutoScaling::ScheduledAction\n  Properties:\n" + textwrap.indent(
        "AutoScalingGroupName: !Ref Asg\n" + textwrap.dedent(body), "    "
    )


def test_a_scheduled_action(load):
    body = (
        'Recurrence: "30 22 * * MON-FRI"\nMinSize: 0\nDesiredCapacity: 0\n'
        'StartTime: "2026-12-06T10:00:00Z"\nEndTime: "2027-01-01T00:00:00Z"\n'
        "TimeZone: Europe/Paris\n"
    )
    found = load(stack(scheduled(body))).scheduled_actions["Night"]
    assert found.recurrence == "30 22 * * MON-FRI"
    assert (found.min_size, found.max_size, found.desired) == (0, None, 0)
    assert found.start_time == datetime(2026, 12, 6, 10, tzinfo=UTC).timestamp()
    assert found.time_zone == "Europe/Paris"
    assert found.name


def test_scheduled_action_problems(load):
    body = 'Recurrence: "0 25 * *"\nStartTime: yesterday\nTimeZone: Europe/Pariss\n'
    found = errors_of(stack(scheduled(body)), load)
    assert any("at least one of MinSize, MaxSize and DesiredCapacity" in e for e in found)
    assert any("has 4 fields" in e for e in found), found
    assert any("StartTime must be a time such as" in e for e in found)
    assert any("Europe/Paris" in e and "TimeZone" in e for e in found)


def test_a_cron_value_out_of_range(fails, line_with):
    text = stack(scheduled('Recurrence: "0 25 * * *"\nDesiredCapacity: 1\n'))
    fails(text, "'25' in the hour field", "0-23", line=line_with(text, "Recurrence"))


def test_cron_matches_like_unix_cron():
    weekdays = cron.parse("*/15 9-17 * * MON-FRI")
    assert weekdays.matches(datetime(2026, 12, 7, 9, 45))  # a Monday
    assert not weekdays.matches(datetime(2026, 12, 6, 9, 45))  # a Sunday
    assert not weekdays.matches(datetime(2026, 12, 7, 9, 50))
    either = cron.parse("0 0 1 * 0")  # the 1st or a Sunday
    assert either.matches(datetime(2026, 12, 6, 0, 0))
    assert either.matches(datetime(2026, 12, 1, 0, 0))
    assert cron.parse("0 0 * JAN,jul 7").weekdays == frozenset({0})
    with pytest.raises(BadInput, match="step"):
        cron.parse("*/0 * * * *")


# --- Lab options, catalog ------------------------------------------------------------------


def test_time_scale(load, fails):
    text = "Metadata:\n  Lab: {TimeScale: 10}\n" + BASE
    assert load(text).lab.time_scale == 10
    assert load(BASE).lab.time_scale == 1
    fails("Metadata:\n  Lab: {TimeScale: 0}\n" + BASE, "TimeScale must be a number more than 0")
    fails("Metadata:\n  Lab: {TimeScale: fast}\n" + BASE, "TimeScale")


@pytest.mark.parametrize(
    "name",
    [
        "AWS::EC2::LaunchTemplate",
        "AWS::AutoScaling::LaunchConfiguration",
        "AWS::AutoScaling::AutoScalingGroup",
        "AWS::AutoScaling::LifecycleHook",
        "AWS::AutoScaling::ScalingPolicy",
        "AWS::AutoScaling::ScheduledAction",
        "AWS::CloudWatch::Alarm",
    ],
)
def test_auto_scaling_types_are_emulated(name):
    assert catalog.support(name).support == catalog.EMULATED


def test_application_auto_scaling_stays_inert():
    assert catalog.support("AWS::ApplicationAutoScaling::ScalingPolicy").support == catalog.INERT


# --- An AWS sample's Auto Scaling part ------------------------------------------------------

# The Auto Scaling resources of AWS's AutoScaling/AutoScalingMultiAZWithNotifications.yaml
# (aws-cloudformation-templates), unchanged but for the parameters naming another stack's VPC
# (here the base template's) and the HTTPS listener (the lab's are HTTP).
AWS_SAMPLE = """\
Topic:
  Type: AWS::SNS::Topic
LaunchTemplate:
  Type: AWS::EC2::LaunchTemplate
  Metadata:
    AWS::CloudFormation::Init:
      config:
        packages: {yum: {httpd: []}}
        services: {sysvinit: {httpd: {enabled: true, ensureRunning: true}}}
  Properties:
    LaunchTemplateName: !Sub ${AWS::StackName}-LaunchTemplate
    LaunchTemplateData:
      ImageId: ami-12345678
      InstanceType: t3.micro
      SecurityGroupIds: [!Ref Sg]
      KeyName: my-key
      BlockDeviceMappings: [{DeviceName: /dev/sda1, Ebs: {VolumeSize: 32}}]
      UserData: !Base64
        Fn::Sub: |
          #!/bin/bash
          /opt/aws/bin/cfn-init -v --stack ${AWS::StackName} --resource LaunchTemplate
          /opt/aws/bin/cfn-signal -e $? --stack ${AWS::StackName} --resource WebServerGroup
      TagSpecifications:
        - ResourceType: instance
          Tags: [{Key: Name, Value: !Sub "${AWS::StackName}-Instance"}]
WebServerGroup:
  Type: AWS::AutoScaling::AutoScalingGroup
  CreationPolicy: {ResourceSignal: {Timeout: PT5M, Count: 1}}
  UpdatePolicy:
    AutoScalingRollingUpdate: {MinInstancesInService: 1, MaxBatchSize: 1, PauseTime: PT5M}
  Properties:
    AvailabilityZones: [us-east-1a, us-east-1b]
    LaunchTemplate:
      LaunchTemplateId: !Ref LaunchTemplate
      Version: !GetAtt LaunchTemplate.LatestVersionNumber
    MinSize: "1"
    MaxSize: "3"
    TargetGroupARNs: [!Ref Tg]
    NotificationConfigurations:
      - TopicARN: !Ref Topic
        NotificationTypes: [autoscaling:EC2_INSTANCE_LAUNCH]
    HealthCheckType: ELB
    VPCZoneIdentifier: [!Ref SubA, !Ref SubB]
WebServerScaleUpPolicy:
  Type: AWS::AutoScaling::ScalingPolicy
  Properties:
    AdjustmentType: ChangeInCapacity
    AutoScalingGroupName: !Ref WebServerGroup
    Cooldown: "60"
    ScalingAdjustment: 1
WebServerScaleDownPolicy:
  Type: AWS::AutoScaling::ScalingPolicy
  Properties:
    AdjustmentType: ChangeInCapacity
    AutoScalingGroupName: !Ref WebServerGroup
    Cooldown: "60"
    ScalingAdjustment: -1
CPUAlarmHigh:
  Type: AWS::CloudWatch::Alarm
  Properties:
    AlarmDescription: Scale-up if CPU > 90% for 10 minutes
    MetricName: CPUUtilization
    Namespace: AWS/EC2
    Statistic: Average
    Period: 300
    EvaluationPeriods: 2
    Threshold: 90
    AlarmActions: [!Ref WebServerScaleUpPolicy]
    Dimensions: [{Name: AutoScalingGroupName, Value: !Ref WebServerGroup}]
    ComparisonOperator: GreaterThanThreshold
CPUAlarmLow:
  Type: AWS::CloudWatch::Alarm
  Properties:
    AlarmDescription: Scale-down if CPU < 70% for 10 minutes
    MetricName: CPUUtilization
    Namespace: AWS/EC2
    Statistic: Average
    Period: 300
    EvaluationPeriods: 2
    Threshold: 70
    AlarmActions: [!Ref WebServerScaleDownPolicy]
    Dimensions: [{Name: AutoScalingGroupName, Value: !Ref WebServerGroup}]
    ComparisonOperator: LessThanThreshold
"""


def test_an_aws_samples_auto_scaling_part(load):
    model = load(stack(AWS_SAMPLE, group=None), stack_name="sample")
    group = model.auto_scaling_groups["WebServerGroup"]
    assert (group.min_size, group.desired, group.max_size) == (1, 1, 3)
    assert group.subnets == ("SubA", "SubB")
    assert group.launch.name == "sample-LaunchTemplate"
    assert group.launch.instance_tags == (("Name", "sample-Instance"),)
    assert group.launch.role.name == "http-backend"  # a target of Tg, no lab role given
    assert "cfn-signal" in group.launch.user_data
    assert "LaunchTemplate" in model.cfn_init
    assert model.signal_policies["WebServerGroup"].count == 1
    up, down = (
        model.scaling_policies[p] for p in ("WebServerScaleUpPolicy", "WebServerScaleDownPolicy")
    )
    assert (up.scaling_adjustment, down.scaling_adjustment, up.cooldown_s) == (1, -1, 60)
    assert model.alarms["CPUAlarmHigh"].alarm_actions == ("WebServerScaleUpPolicy",)
    assert model.alarms["CPUAlarmLow"].comparison == "LessThanThreshold"
    ignored = {i.property for i in model.ignored if i.logical_id == "WebServerGroup"}
    assert "UpdatePolicy" in ignored
    assert any(p.startswith("NotificationConfigurations") for p in ignored)


def test_refs_and_attributes_of_groups_hooks_and_scheduled_actions(load):
    outputs = """\
    Outputs:
      Group: {Value: !Ref Asg}
      GroupName: {Value: !GetAtt Asg.AutoScalingGroupName}
      GroupArn: {Value: !GetAtt Asg.AutoScalingGroupARN}
      Hook: {Value: !Ref Hook}
      Night: {Value: !Ref Night}
      PolicyName: {Value: !GetAtt Policy.PolicyName}
    """
    text = stack(
        HOOK, scheduled('Recurrence: "0 22 * * *"\nDesiredCapacity: 1\n'), policy(STEPS)
    ) + textwrap.dedent(outputs)
    model = load(text, stack_name="lab")
    group = model.auto_scaling_groups["Asg"]
    assert model.outputs["Group"] == model.outputs["GroupName"] == group.name
    assert model.outputs["GroupArn"] == group.arn
    assert model.outputs["Hook"] == "drain"
    assert model.outputs["Night"] == model.scheduled_actions["Night"].name
    assert model.outputs["PolicyName"] == model.scaling_policies["Policy"].name
