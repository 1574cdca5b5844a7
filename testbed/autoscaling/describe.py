"""describe-auto-scaling-groups for one group of the lab: AWS's fields and names (JSON-able),
plus what only a lab has (LogicalId; each instance's Host and Subnet)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from testbed.autoscaling.activities import timestamp
from testbed.autoscaling.lifecycle import LAUNCH_CONFIGURATION, InstanceRecord
from testbed.model.autoscaling_types import LaunchSpec

if TYPE_CHECKING:
    from testbed.autoscaling.group import GroupRuntime

# What describe says of an instance whose launch spec names no InstanceType.
DEFAULT_INSTANCE_TYPE = "t3.micro"


def describe_group(group: GroupRuntime) -> dict[str, Any]:
    """The group as describe-auto-scaling-groups prints it (JSON-able), plus the lab's
    LogicalId and each instance's Host and Subnet."""
    m = group.model
    out: dict[str, Any] = {
        "AutoScalingGroupName": m.name,
        "AutoScalingGroupARN": m.arn,
        "LogicalId": m.logical_id,
        **_launch_field(group.launch_spec),
        "MinSize": group.min_size,
        "MaxSize": group.max_size,
        "DesiredCapacity": group.desired,
        "DefaultCooldown": int(m.cooldown_s),
        "AvailabilityZones": group.azs(),
        "LoadBalancerNames": list(m.load_balancer_names),
        "TargetGroupARNs": list(m.target_groups),
        "HealthCheckType": m.health_check_type,
        "HealthCheckGracePeriod": int(m.health_check_grace_s),
        "Instances": [_describe_instance(group, r) for r in group.instances.values()],
        "VPCZoneIdentifier": ",".join(m.subnets),
        "TerminationPolicies": list(m.termination_policies),
        "NewInstancesProtectedFromScaleIn": m.new_instances_protected,
        "SuspendedProcesses": [],
        "EnabledMetrics": [],
        "Tags": [
            {
                "Key": t.key,
                "Value": t.value,
                "PropagateAtLaunch": t.propagate_at_launch,
                "ResourceId": m.name,
                "ResourceType": "auto-scaling-group",
            }
            for t in m.tags
        ],
    }
    if group.created_at is not None:
        out["CreatedTime"] = timestamp(group.created_at)
    if m.max_instance_lifetime_s:
        out["MaxInstanceLifetime"] = int(m.max_instance_lifetime_s)
    if m.default_instance_warmup_s is not None:
        out["DefaultInstanceWarmup"] = int(m.default_instance_warmup_s)
    return out


def _describe_instance(group: GroupRuntime, rec: InstanceRecord) -> dict[str, Any]:
    spec = LaunchSpec(rec.launch_spec, rec.launch_kind, rec.launch_version, None, None, None)
    if rec.launch_spec == group.launch_spec.logical_id:
        spec = dataclasses.replace(group.launch_spec, version=rec.launch_version)
    out: dict[str, Any] = {
        "InstanceId": rec.instance_id,
        "InstanceType": group.launch_spec.instance_type or DEFAULT_INSTANCE_TYPE,
        "AvailabilityZone": rec.az,
        "LifecycleState": rec.lifecycle,
        "HealthStatus": rec.health,
        **_launch_field(spec),
        "ProtectedFromScaleIn": rec.protected_from_scale_in,
        "Host": rec.host,
        "Subnet": rec.subnet,
    }
    if rec.hook is not None:
        out["LifecycleHook"] = rec.hook
    return out


def _launch_field(spec: LaunchSpec) -> dict[str, Any]:
    if spec.kind == LAUNCH_CONFIGURATION:
        return {"LaunchConfigurationName": spec.name or spec.logical_id}
    template: dict[str, Any] = {
        "LaunchTemplateName": spec.name or spec.logical_id,
        "Version": str(spec.version),
    }
    if spec.launch_template_id:
        template = {"LaunchTemplateId": spec.launch_template_id, **template}
    return {"LaunchTemplate": template}
