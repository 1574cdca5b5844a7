"""The frozen model of Auto Scaling and CloudWatch alarms: what the lab's Auto Scaling reads.

Built by testbed.model.resources.autoscaling (AWS::EC2::LaunchTemplate,
AWS::AutoScaling::LaunchConfiguration / AutoScalingGroup / ScalingPolicy / ScheduledAction /
LifecycleHook) and testbed.model.resources.cloudwatch (AWS::CloudWatch::Alarm). Durations are
in seconds as the template gives them (AWS's time); the lab's Metadata.Lab.TimeScale divides
them at run time (testbed.autoscaling.timescale), never here.
"""

from __future__ import annotations

from dataclasses import dataclass

from testbed.model.types import RoleSpec, Source

LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"

# AWS's defaults (AutoScalingGroup, LifecycleHook).
DEFAULT_COOLDOWN_S = 300.0
DEFAULT_HEARTBEAT_S = 3600.0
DEFAULT_TERMINATION = ("Default",)

# The metrics the lab has, by namespace: an alarm or a customized target-tracking metric must
# name one of them (the runtime samples exactly these).
LAB_METRICS: dict[str, frozenset[str]] = {
    "AWS/EC2": frozenset(
        {"CPUUtilization", "NetworkIn", "NetworkOut", "NetworkPacketsIn", "NetworkPacketsOut"}
    ),
    "AWS/AutoScaling": frozenset(
        {
            "GroupDesiredCapacity",
            "GroupInServiceInstances",
            "GroupPendingInstances",
            "GroupTerminatingInstances",
            "GroupTotalInstances",
            "GroupMinSize",
            "GroupMaxSize",
        }
    ),
    "AWS/ApplicationELB": frozenset(
        {
            "RequestCount",
            "RequestCountPerTarget",
            "TargetResponseTime",
            "HTTPCode_Target_2XX_Count",
            "HTTPCode_Target_3XX_Count",
            "HTTPCode_Target_4XX_Count",
            "HTTPCode_Target_5XX_Count",
            "HTTPCode_ELB_5XX_Count",
            "HealthyHostCount",
            "UnHealthyHostCount",
            "ActiveConnectionCount",
            "NewConnectionCount",
        }
    ),
    "AWS/NetworkELB": frozenset(
        {
            "ActiveFlowCount",
            "NewFlowCount",
            "ProcessedBytes",
            "HealthyHostCount",
            "UnHealthyHostCount",
        }
    ),
    # Classic Load Balancers (testbed.autoscaling.sampling).
    "AWS/ELB": frozenset({"RequestCount", "Latency", "HealthyHostCount", "UnHealthyHostCount"}),
}
# The dimensions the lab's metrics carry, by namespace.
LAB_DIMENSIONS: dict[str, frozenset[str]] = {
    "AWS/EC2": frozenset({"InstanceId", "AutoScalingGroupName"}),
    "AWS/AutoScaling": frozenset({"AutoScalingGroupName"}),
    "AWS/ApplicationELB": frozenset({"LoadBalancer", "TargetGroup"}),
    "AWS/NetworkELB": frozenset({"LoadBalancer", "TargetGroup"}),
    "AWS/ELB": frozenset({"LoadBalancerName"}),
}
# Target tracking's predefined metrics: (namespace, metric, statistic, dimension). AWS
# measures ASGAverageNetworkIn/Out as the group's average of each instance's Sum per period,
# and ALBRequestCountPerTarget as the Sum of RequestCountPerTarget of the target group.
PREDEFINED_METRICS: dict[str, tuple[str, str, str, str]] = {
    "ASGAverageCPUUtilization": ("AWS/EC2", "CPUUtilization", "Average", "AutoScalingGroupName"),
    "ASGAverageNetworkIn": ("AWS/EC2", "NetworkIn", "Average", "AutoScalingGroupName"),
    "ASGAverageNetworkOut": ("AWS/EC2", "NetworkOut", "Average", "AutoScalingGroupName"),
    "ALBRequestCountPerTarget": (
        "AWS/ApplicationELB",
        "RequestCountPerTarget",
        "Sum",
        "TargetGroup",
    ),
}


@dataclass(frozen=True)
class LaunchSpec:
    """What an instance of a group is launched from: one version of an AWS::EC2::LaunchTemplate
    or an AWS::AutoScaling::LaunchConfiguration.

    logical_id: the launch template's / configuration's logical id (its cfn-init metadata
    is StackModel.cfn_init[logical_id]; its Metadata.Lab role is `role`).
    kind: "launch-template" | "launch-configuration".
    version: the launch template version the group uses (1 for a configuration).
    security_groups: SecurityGroup logical ids (empty: the group's VPC's default group, chosen
    by the Auto Scaling group, which knows the VPC).
    associate_public_ip: NetworkInterfaces[0].AssociatePublicIpAddress (launch template) or
    AssociatePublicIpAddress (configuration); None: the subnet's MapPublicIpOnLaunch decides.
    """

    logical_id: str
    kind: str
    version: int
    image_id: str | None
    instance_type: str | None
    user_data: str | None
    security_groups: tuple[str, ...] = ()
    role: RoleSpec | None = None
    associate_public_ip: bool | None = None
    source: Source | None = None
    # LaunchTemplateName / LaunchConfigurationName (given, or made like CloudFormation), and
    # a launch template's id (its Ref, lt-...); "" for a configuration.
    name: str = ""
    launch_template_id: str = ""
    # Tags of TagSpecifications with ResourceType instance (launch template only).
    instance_tags: tuple[tuple[str, str], ...] = ()
    # Group names (SecurityGroups of a launch configuration or launch template, default VPC
    # only) left for the Auto Scaling group to find in its VPC; empty once in a group.
    security_group_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class LifecycleHookSpec:
    """A lifecycle hook (LifecycleHookSpecificationList entry or AWS::AutoScaling::LifecycleHook).

    transition: LAUNCHING or TERMINATING; default_result: "CONTINUE" | "ABANDON" (what happens
    when heartbeat_timeout_s passes without `testbed asg ... complete-lifecycle`)."""

    name: str
    transition: str
    heartbeat_timeout_s: float = DEFAULT_HEARTBEAT_S
    default_result: str = "ABANDON"
    logical_id: str | None = None  # set for a standalone AWS::AutoScaling::LifecycleHook
    source: Source | None = None


@dataclass(frozen=True)
class GroupTag:
    key: str
    value: str
    propagate_at_launch: bool


@dataclass(frozen=True)
class AutoScalingGroup:
    """An AWS::AutoScaling::AutoScalingGroup.

    name: AutoScalingGroupName, or the name CloudFormation makes (STACK-LOGICALID-SUFFIX).
    desired: DesiredCapacity, or min_size when the template gives none (AWS's rule).
    subnets: Subnet logical ids the group launches into (VPCZoneIdentifier, or the default
    VPC's subnet of each of AvailabilityZones), in the template's order; azs: their AZs.
    target_groups: logical ids of ELBv2 target groups (TargetGroupARNs); load_balancer_names:
    classic load balancers' logical ids (LoadBalancerNames: their implicit groups).
    security_groups: the groups instances get (the launch spec's, or the VPC default group).
    health_check_grace_s: HealthCheckGracePeriod (CloudFormation's default 0; AWS's console
    uses 300). default_instance_warmup_s: DefaultInstanceWarmup (None: not set).
    termination_policies: in the template's order; "Default" last when not given.
    lifecycle_hooks: LifecycleHookSpecificationList plus standalone LifecycleHooks of the group.
    """

    logical_id: str
    name: str
    min_size: int
    max_size: int
    desired: int
    subnets: tuple[str, ...]
    azs: tuple[str, ...]
    launch: LaunchSpec
    security_groups: tuple[str, ...] = ()
    target_groups: tuple[str, ...] = ()
    load_balancer_names: tuple[str, ...] = ()
    health_check_type: str = "EC2"
    health_check_grace_s: float = 0.0
    cooldown_s: float = DEFAULT_COOLDOWN_S
    default_instance_warmup_s: float | None = None
    termination_policies: tuple[str, ...] = DEFAULT_TERMINATION
    lifecycle_hooks: tuple[LifecycleHookSpec, ...] = ()
    tags: tuple[GroupTag, ...] = ()
    source: Source | None = None
    arn: str = ""
    # NewInstancesProtectedFromScaleIn; MaxInstanceLifetime (seconds; None: unlimited).
    new_instances_protected: bool = False
    max_instance_lifetime_s: float | None = None
    # Hosts of launched instances are named f"{logical_id}-{n}"; the launch spec's role is
    # the one they run (http-backend by default when a load balancer targets the group).

    @property
    def attached_target_groups(self) -> tuple[str, ...]:
        """Every registry group its instances join: the ELBv2 target groups, then the classic
        load balancers (a CLB's instances are the implicit group named after its logical id,
        testbed.model.elb_defaults.CLASSIC)."""
        return tuple(dict.fromkeys((*self.target_groups, *self.load_balancer_names)))


@dataclass(frozen=True)
class MetricSpec:
    """A CloudWatch metric as an alarm or a customized target-tracking policy names it.

    dimensions: (name, value) pairs sorted by name, values resolved to what the lab's metrics
    use (e.g. ("AutoScalingGroupName", group name), ("TargetGroup", "targetgroup/NAME/ID"),
    ("LoadBalancer", "app/NAME/ID")). statistic: Average | Sum | Minimum | Maximum |
    SampleCount | pNN (extended statistics)."""

    namespace: str
    metric_name: str
    dimensions: tuple[tuple[str, str], ...] = ()
    statistic: str = "Average"
    unit: str | None = None


@dataclass(frozen=True)
class StepAdjustment:
    """One step of a StepScaling policy: bounds relative to the alarm threshold (None: open)."""

    lower: float | None
    upper: float | None
    adjustment: float


@dataclass(frozen=True)
class ScalingPolicy:
    """An AWS::AutoScaling::ScalingPolicy of one group.

    policy_type: TargetTrackingScaling | StepScaling | SimpleScaling | PredictiveScaling
    (PredictiveScaling: emulated False, reported "not emulated").
    Target tracking: target_value with predefined_metric (ASGAverageCPUUtilization,
    ASGAverageNetworkIn, ASGAverageNetworkOut, ALBRequestCountPerTarget with resource_label
    "app/LB/ID/targetgroup/TG/ID" resolved to (lb logical id, tg logical id) in
    resource_target) or customized_metric; disable_scale_in.
    Step / simple: adjustment_type ChangeInCapacity | ExactCapacity | PercentChangeInCapacity,
    scaling_adjustment (simple), step_adjustments (step), min_adjustment_magnitude,
    cooldown_s (simple; None: the group's), estimated_instance_warmup_s.
    """

    logical_id: str
    group: str  # the AutoScalingGroup's logical id
    policy_type: str
    emulated: bool = True
    adjustment_type: str = "ChangeInCapacity"
    scaling_adjustment: int | None = None
    step_adjustments: tuple[StepAdjustment, ...] = ()
    metric_aggregation: str = "Average"
    min_adjustment_magnitude: int | None = None
    cooldown_s: float | None = None
    estimated_instance_warmup_s: float | None = None
    target_value: float | None = None
    predefined_metric: str | None = None
    resource_label: str | None = None
    resource_target: tuple[str, str] | None = None  # (lb, tg) logical ids of ResourceLabel
    customized_metric: MetricSpec | None = None
    disable_scale_in: bool = False
    source: Source | None = None
    name: str = ""  # PolicyName (CloudFormation makes it: STACK-LOGICALID-SUFFIX)
    arn: str = ""  # the policy's Ref


@dataclass(frozen=True)
class Alarm:
    """An AWS::CloudWatch::Alarm on a metric the lab has.

    comparison: GreaterThanOrEqualToThreshold | GreaterThanThreshold | LessThanThreshold |
    LessThanOrEqualToThreshold. treat_missing: missing | breaching | notBreaching | ignore.
    alarm_actions / ok_actions / insufficient_actions: logical ids of ScalingPolicies the lab
    runs; other actions (SNS topics, EC2 actions) are kept as text in other_actions and only
    reported."""

    logical_id: str
    name: str
    metric: MetricSpec
    period_s: float
    evaluation_periods: int
    datapoints_to_alarm: int
    threshold: float
    comparison: str
    treat_missing: str = "missing"
    alarm_actions: tuple[str, ...] = ()
    ok_actions: tuple[str, ...] = ()
    insufficient_actions: tuple[str, ...] = ()
    other_actions: tuple[str, ...] = ()
    actions_enabled: bool = True
    source: Source | None = None
    description: str = ""  # AlarmDescription


@dataclass(frozen=True)
class ScheduledAction:
    """An AWS::AutoScaling::ScheduledAction: at each Recurrence (Unix cron, in time_zone, UTC
    by default) within [start_time, end_time], or once at start_time without a recurrence,
    set the group's min / max / desired (None: unchanged). Times are epoch seconds."""

    logical_id: str
    group: str
    recurrence: str | None
    start_time: float | None
    end_time: float | None
    min_size: int | None = None
    max_size: int | None = None
    desired: int | None = None
    time_zone: str = "UTC"
    source: Source | None = None
    name: str = ""  # ScheduledActionName (made like CloudFormation)
