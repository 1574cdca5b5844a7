"""AWS::AutoScaling::AutoScalingGroup and AWS::AutoScaling::LifecycleHook.

A group becomes an AutoScalingGroup (testbed.model.autoscaling_types) in
state.auto_scaling_groups: its sizes, the subnets it launches into (VPCZoneIdentifier, or the
default VPC's subnets of AvailabilityZones), the launch spec version it uses, the target
groups it registers its instances in, health checks, termination policies and lifecycle
hooks. A standalone LifecycleHook is added to its group (groups are frozen: replaced).
Launch templates and configurations are in launch_specs.py; policies, scheduled actions in
scaling_policies.py; alarms in cloudwatch.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from testbed.errors import BadInput
from testbed.model.autoscaling_types import (
    DEFAULT_COOLDOWN_S,
    DEFAULT_HEARTBEAT_S,
    LAUNCHING,
    TERMINATING,
    AutoScalingGroup,
    GroupTag,
    LaunchSpec,
    LifecycleHookSpec,
)
from testbed.model.elb_defaults import CLASSIC
from testbed.model.elbv2_types import EXTRAS_KEY as ELBV2
from testbed.model.resources import default_vpc, group_refs, inert
from testbed.model.resources.base import ResourceContext, ResourceType, find_built, prop
from testbed.model.resources.registry import register
from testbed.model.resources.scaling_common import (
    AUTO_SCALING_GROUP,
    LAUNCH_TEMPLATE,
    LIFECYCLE_HOOK,
    Problems,
    autoscaling_arn,
    boolean,
    check_mapping,
    choice,
    definition_keys,
    ignore,
    name_of,
    whole,
)
from testbed.model.state import BuildState
from testbed.template.intrinsics import as_text
from testbed.template.nodes import describe, line_of

SUBNET = "AWS::EC2::Subnet"
TARGET_GROUP = "AWS::ElasticLoadBalancingV2::TargetGroup"
CLASSIC_LB = "AWS::ElasticLoadBalancing::LoadBalancer"
TERMINATION_POLICIES = (
    "Default",
    "AllocationStrategy",
    "OldestLaunchTemplate",
    "OldestLaunchConfiguration",
    "ClosestToNextInstanceHour",
    "NewestInstance",
    "OldestInstance",
)
HEALTH_CHECK_TYPES = ("EC2", "ELB")
HOOK_RESULTS = ("CONTINUE", "ABANDON")
TRANSITIONS = (LAUNCHING, TERMINATING)
LATEST_ALIASES = ("$Latest", "$Default")
# Properties accepted without meaning in the lab, with the reason listed.
WITHOUT_MEANING = {
    "NotificationConfigurations": "no notifications are sent in the lab",
    "NotificationConfiguration": "no notifications are sent in the lab",
    "MetricsCollection": "the lab always collects the group's metrics",
    "CapacityRebalance": "there are no Spot instances in the lab",
    "ServiceLinkedRoleARN": "the lab has no IAM",
    "PlacementGroup": "placement has no meaning in the lab",
    "Context": "reserved for AWS",
    "DesiredCapacityType": "the lab counts instances ('units')",
    "InstanceMaintenancePolicy": "instance refreshes come with stack updates (issue 14)",
    "DeletionProtection": "the lab deletes a group with its lab",
    "SkipZonalShiftValidation": "zonal shifts are not emulated",
    "AvailabilityZoneDistribution": "the lab launches into the AZ with fewest instances",
    "AvailabilityZoneImpairmentPolicy": "zonal shifts are not emulated",
    "CapacityReservationSpecification": "capacity reservations have no meaning in the lab",
    "InstanceLifecyclePolicy": "instance retention is not emulated",
}


def _build_group(ctx: ResourceContext) -> None:
    problems = Problems(ctx)
    props, state, lid = ctx.props, ctx.state, ctx.logical_id
    sizes = _sizes(ctx, problems)
    subnets = _subnets(ctx, problems)
    vpc = state.subnets[subnets[0]].vpc_id if subnets else None
    launch = _launch_spec(ctx, problems)
    groups: tuple[str, ...] = ()
    if launch is not None and vpc is not None:
        groups = _security_groups(ctx, problems, launch, vpc)
        launch = replace(launch, security_groups=groups, security_group_names=())
    target_groups = _target_groups(ctx, problems, vpc)
    classic = _classic(ctx, problems, vpc)
    hooks = tuple(_hook_list(ctx, problems))
    for key, why in WITHOUT_MEANING.items():
        if key in props:
            ignore(ctx, key, why)
    if "AvailabilityZones" in props and "VPCZoneIdentifier" in props:
        ignore(ctx, "AvailabilityZones", "VPCZoneIdentifier's subnets decide the AZs")
    health = "EC2"
    if "HealthCheckType" in props:
        health = (
            choice(
                problems,
                props["HealthCheckType"],
                "HealthCheckType",
                ctx.line("HealthCheckType"),
                HEALTH_CHECK_TYPES,
            )
            or health
        )
    policies = _termination_policies(ctx, problems)
    lifetime = None
    if "MaxInstanceLifetime" in props and props["MaxInstanceLifetime"] != 0:
        value = props["MaxInstanceLifetime"]
        if not 86400 <= value <= 31536000:
            problems.add(
                f"MaxInstanceLifetime must be 0 or from 86400 (1 day) to 31536000 (365 days), "
                f"not {value}",
                ctx.line("MaxInstanceLifetime"),
            )
        lifetime = float(value)
    tags = _tags(ctx, problems)
    problems.raise_if_any()
    assert sizes is not None
    assert launch is not None
    min_size, max_size, desired = sizes
    name = name_of(ctx, "AutoScalingGroupName")
    state.auto_scaling_groups[lid] = AutoScalingGroup(
        lid,
        name,
        min_size,
        max_size,
        desired,
        tuple(subnets),
        tuple(state.subnets[s].az for s in subnets),
        launch,
        security_groups=groups,
        target_groups=target_groups,
        load_balancer_names=classic,
        health_check_type=health,
        health_check_grace_s=float(props.get("HealthCheckGracePeriod", 0)),
        cooldown_s=float(props.get("Cooldown", DEFAULT_COOLDOWN_S)),
        default_instance_warmup_s=(
            float(props["DefaultInstanceWarmup"]) if "DefaultInstanceWarmup" in props else None
        ),
        termination_policies=policies,
        lifecycle_hooks=hooks,
        tags=tags,
        source=ctx.source,
        arn=autoscaling_arn(ctx, "autoScalingGroup", f"autoScalingGroupName/{name}"),
        new_instances_protected=bool(props.get("NewInstancesProtectedFromScaleIn", False)),
        max_instance_lifetime_s=lifetime,
    )


def _sizes(ctx: ResourceContext, problems: Problems) -> tuple[int, int, int] | None:
    props = ctx.props
    min_size, max_size = props["MinSize"], props["MaxSize"]
    bad = False
    for key in ("MinSize", "MaxSize", "DesiredCapacity", "HealthCheckGracePeriod", "Cooldown"):
        if key in props and props[key] < 0:
            problems.add(f"{key} must be 0 or more, not {props[key]}", ctx.line(key))
            bad = True
    if min_size > max_size:
        problems.add(
            f"MinSize {min_size} is greater than MaxSize {max_size}",
            ctx.line("MinSize"),
            "AWS: the max bound must be greater than or equal to the min bound",
        )
        return None
    desired = props.get("DesiredCapacity", min_size)
    if not min_size <= desired <= max_size:
        problems.add(
            f"DesiredCapacity {desired} must be between MinSize {min_size} and MaxSize {max_size}",
            ctx.line("DesiredCapacity"),
        )
        return None
    return None if bad else (min_size, max_size, desired)


def _subnets(ctx: ResourceContext, problems: Problems) -> list[str]:
    """The group's subnets (logical ids, each once, all in one VPC), in the template's order."""
    props, state = ctx.props, ctx.state
    if "VPCZoneIdentifier" in props:
        line = ctx.line("VPCZoneIdentifier")
        value = props["VPCZoneIdentifier"]
        if isinstance(value, str):  # "subnet-a,subnet-b" (a joined list): AWS takes it
            items: list[Any] = [part.strip() for part in value.split(",") if part.strip()]
        elif isinstance(value, list):
            items = value
        else:
            problems.add(
                f"VPCZoneIdentifier must be a list of subnet ids, not {describe(value)}", line
            )
            return []
        found: list[str] = []
        for index, item in enumerate(items):
            text = as_text(item)
            at = line_of(value, index, line) if isinstance(value, list) else line
            where = f"VPCZoneIdentifier[{index}]"
            try:
                if text is None:
                    raise ctx.fail(f"{where} must be a subnet id, not {describe(item)}", line=at)
                found.append(
                    find_built(
                        ctx,
                        text,
                        SUBNET,
                        "subnet",
                        state.subnets,
                        where,
                        at,
                        "use !Ref <a subnet of this template>",
                    )
                )
            except BadInput as err:
                problems.add_error(err, at)
        found = list(dict.fromkeys(found))
        vpcs = list(dict.fromkeys(state.subnets[s].vpc_id for s in found))
        if len(vpcs) > 1:
            problems.add(
                f"the group's subnets are in several VPCs ({', '.join(vpcs)}); an Auto "
                "Scaling group launches into one VPC",
                line,
            )
            return []
        if not found and not problems.found:
            problems.add("VPCZoneIdentifier lists no subnet", line)
        return found
    if "AvailabilityZones" in props:
        line = ctx.line("AvailabilityZones")
        azs = props["AvailabilityZones"]
        names = [as_text(az) for az in azs]
        if any(n is None for n in names):
            problems.add("AvailabilityZones must be a list of AZ names", line)
            return []
        if not names:
            problems.add("AvailabilityZones lists no AZ", line)
            return []
        try:
            return default_vpc.default_subnets(
                state, ctx.logical_id, [n for n in dict.fromkeys(names) if n]
            )
        except BadInput as err:
            problems.add_error(err, line)
            return []
    problems.add(
        "the group has no subnets: give VPCZoneIdentifier (subnets) or AvailabilityZones "
        "(the default VPC's subnets of those AZs)",
        ctx.line(),
    )
    return []


def _launch_spec(ctx: ResourceContext, problems: Problems) -> LaunchSpec | None:
    props = ctx.props
    given = [
        k
        for k in ("LaunchTemplate", "LaunchConfigurationName", "MixedInstancesPolicy")
        if k in props
    ]
    if len(given) != 1:
        problems.add(
            "give the group one of LaunchTemplate, LaunchConfigurationName or "
            "MixedInstancesPolicy" + (f", not {' and '.join(given)}" if given else ""),
            ctx.line(given[1] if len(given) > 1 else None),
        )
        return None
    key = given[0]
    line = ctx.line(key)
    if key == "LaunchConfigurationName":
        name = props[key]
        for specs in ctx.state.launch_specs.values():
            spec = specs.get(1)
            if spec and spec.kind == "launch-configuration" and spec.name == name:
                return spec
        problems.add(
            f"LaunchConfigurationName {name!r} is not a launch configuration of this stack",
            line,
            "use !Ref <an AWS::AutoScaling::LaunchConfiguration>",
        )
        return None
    if key == "MixedInstancesPolicy":
        return _mixed(ctx, problems, props[key], line)
    return _template_version(ctx, problems, props[key], "LaunchTemplate", line)


def _mixed(
    ctx: ResourceContext, problems: Problems, value: Any, line: int | None
) -> LaunchSpec | None:
    policy = check_mapping(
        problems, value, "MixedInstancesPolicy", line, ("LaunchTemplate", "InstancesDistribution")
    )
    if policy is None:
        return None
    if "InstancesDistribution" in policy:
        ignore(
            ctx,
            "MixedInstancesPolicy.InstancesDistribution",
            "On-Demand and Spot are alike in the lab",
        )
    at = line_of(policy, "LaunchTemplate", line)
    lt = check_mapping(
        problems,
        policy.get("LaunchTemplate"),
        "MixedInstancesPolicy.LaunchTemplate",
        at,
        ("LaunchTemplateSpecification", "Overrides"),
    )
    if lt is None:
        return None
    if "Overrides" in lt:
        ignore(
            ctx,
            "MixedInstancesPolicy.LaunchTemplate.Overrides",
            "instance types have no meaning in the lab: every instance is launched from the "
            "LaunchTemplateSpecification",
        )
    if "LaunchTemplateSpecification" not in lt:
        problems.add("MixedInstancesPolicy.LaunchTemplate needs a LaunchTemplateSpecification", at)
        return None
    return _template_version(
        ctx,
        problems,
        lt["LaunchTemplateSpecification"],
        "MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification",
        line_of(lt, "LaunchTemplateSpecification", at),
    )


def _template_version(
    ctx: ResourceContext, problems: Problems, value: Any, where: str, line: int | None
) -> LaunchSpec | None:
    """The launch spec of a {LaunchTemplateId | LaunchTemplateName, Version} mapping."""
    known = definition_keys(AUTO_SCALING_GROUP, "LaunchTemplateSpecification") or (
        "LaunchTemplateId",
        "LaunchTemplateName",
        "Version",
    )
    spec_map = check_mapping(problems, value, where, line, known)
    if spec_map is None:
        return None
    keys = [k for k in ("LaunchTemplateId", "LaunchTemplateName") if k in spec_map]
    if len(keys) != 1:
        problems.add(f"{where} needs one of LaunchTemplateId and LaunchTemplateName", line)
        return None
    text = as_text(spec_map[keys[0]])
    at = line_of(spec_map, keys[0], line)
    specs = ctx.state.launch_specs
    found: str | None = None
    if keys[0] == "LaunchTemplateId":
        target = ctx.state.physical_ids.get(text or "")
        if target is not None and ctx.state.types.get(target) == LAUNCH_TEMPLATE:
            found = target
    else:
        found = next(
            (
                lid
                for lid, s in specs.items()
                if s[1].kind == "launch-template" and s[1].name == text
            ),
            None,
        )
    if found is None or found not in specs:
        problems.add(
            f"{where}.{keys[0]} {text!r} is not a launch template of this stack",
            at,
            "use LaunchTemplateId: !Ref <an AWS::EC2::LaunchTemplate>",
        )
        return None
    if "Version" not in spec_map:
        problems.add(
            f"{where} needs a Version",
            line,
            f"add Version: !GetAtt {found}.LatestVersionNumber",
        )
        return None
    version = as_text(spec_map["Version"])
    versions = specs[found]
    if version in LATEST_ALIASES:
        return versions[max(versions)]
    if version is not None and version.isdigit() and int(version) in versions:
        return versions[int(version)]
    problems.add(
        f"{where}.Version {version!r}: launch template {found} has no such version; the "
        f"template creates version {', '.join(str(v) for v in sorted(versions))} "
        "(later versions come with stack updates)",
        line_of(spec_map, "Version", line),
        f"use !GetAtt {found}.LatestVersionNumber, $Latest or $Default",
    )
    return None


def _security_groups(
    ctx: ResourceContext, problems: Problems, launch: LaunchSpec, vpc: str
) -> tuple[str, ...]:
    """The launch spec's groups (names found in the group's VPC), else the VPC's default."""
    line = ctx.line("LaunchTemplate") or ctx.line("LaunchConfigurationName")
    groups = list(launch.security_groups)
    try:
        if launch.security_group_names and not ctx.state.vpcs[vpc].is_default:
            raise ctx.fail(
                f"launch spec {launch.logical_id} names security groups "
                f"({', '.join(launch.security_group_names)}), which works only in the default "
                f"VPC, and the group launches into {vpc}",
                line=line,
                hint="give group ids: !Ref <a security group>",
            )
        for name in launch.security_group_names:
            groups.append(
                group_refs.find_group_by_name(ctx, name, vpc, f"{launch.logical_id}'s group", line)
            )
        return group_refs.groups_or_default(
            ctx, groups, vpc, f"Auto Scaling group {ctx.logical_id}", line
        )
    except BadInput as err:
        problems.add_error(err, line)
        return ()


def _target_groups(ctx: ResourceContext, problems: Problems, vpc: str | None) -> tuple[str, ...]:
    if "TargetGroupARNs" not in ctx.props:
        return ()
    value, line = ctx.props["TargetGroupARNs"], ctx.line("TargetGroupARNs")
    groups = ctx.state.extras.get(ELBV2, {}).get("target_groups", {})
    found: list[str] = []
    for index, item in enumerate(value):
        where, at = f"TargetGroupARNs[{index}]", line_of(value, index, line)
        try:
            text = as_text(item)
            if text is None:
                raise ctx.fail(f"{where} must be a target group ARN, not {describe(item)}", line=at)
            lid = find_built(
                ctx,
                text,
                TARGET_GROUP,
                "target group",
                groups,
                where,
                at,
                "use !Ref <an AWS::ElasticLoadBalancingV2::TargetGroup>",
            )
        except BadInput as err:
            problems.add_error(err, at)
            continue
        tg = groups[lid]
        if vpc is not None and tg.vpc_id != vpc:
            problems.add(
                f"target group {lid} is in {tg.vpc_id}, but the group's subnets are in {vpc}",
                at,
                "register the group in a target group of its own VPC",
            )
        if tg.target_type != "instance":
            problems.add(
                f"target group {lid} has TargetType {tg.target_type}; an Auto Scaling group "
                "registers instances (TargetType instance)",
                at,
            )
        found.append(lid)
    return tuple(dict.fromkeys(found))


def _classic(ctx: ResourceContext, problems: Problems, vpc: str | None) -> tuple[str, ...]:
    """LoadBalancerNames: logical ids of classic load balancers of this stack in the group's
    VPC; the group's instances join their implicit target groups (keyed by those ids)."""
    if "LoadBalancerNames" not in ctx.props:
        return ()
    value, line = ctx.props["LoadBalancerNames"], ctx.line("LoadBalancerNames")
    lbs = ctx.state.extras.get(ELBV2, {}).get("load_balancers", {})
    classic = {lid: lb for lid, lb in lbs.items() if lb.type == CLASSIC}
    found: list[str] = []
    for index, item in enumerate(value):
        where, at = f"LoadBalancerNames[{index}]", line_of(value, index, line)
        try:
            text = as_text(item)
            if text is None:
                raise ctx.fail(
                    f"{where} must be a load balancer name, not {describe(item)}", line=at
                )
            lid = find_built(
                ctx,
                text,
                CLASSIC_LB,
                "classic load balancer",
                classic,
                where,
                at,
                "the lab attaches a group only to a classic load balancer of its own stack: "
                "use !Ref <an AWS::ElasticLoadBalancing::LoadBalancer of this template>",
            )
        except BadInput as err:
            problems.add_error(err, at)
            continue
        if vpc is not None and classic[lid].vpc_id != vpc:
            problems.add(
                f"load balancer {lid} is in {classic[lid].vpc_id}, but the group's subnets are "
                f"in {vpc}",
                at,
                "attach the group to a load balancer of its own VPC",
            )
            continue
        found.append(lid)
    return tuple(dict.fromkeys(found))


def _termination_policies(ctx: ResourceContext, problems: Problems) -> tuple[str, ...]:
    if "TerminationPolicies" not in ctx.props:
        return ("Default",)
    value, line = ctx.props["TerminationPolicies"], ctx.line("TerminationPolicies")
    found = []
    for index, item in enumerate(value):
        at = line_of(value, index, line)
        text = as_text(item)
        if text is not None and text.startswith("arn:aws:lambda:"):
            problems.add("custom termination policies (Lambda functions) do not run in the lab", at)
            continue
        picked = choice(
            problems,
            text if text is not None else item,
            f"TerminationPolicies[{index}]",
            at,
            TERMINATION_POLICIES,
        )
        if picked:
            found.append(picked)
    if "Default" not in found:
        found.append("Default")  # AWS's tie-breaker after the listed ones
    return tuple(dict.fromkeys(found))


def _tags(ctx: ResourceContext, problems: Problems) -> tuple[GroupTag, ...]:
    if "Tags" not in ctx.props:
        return ()
    value, line = ctx.props["Tags"], ctx.line("Tags")
    tags = []
    for index, item in enumerate(value):
        where, at = f"Tags[{index}]", line_of(value, index, line)
        tag = check_mapping(problems, item, where, at, ("Key", "Value", "PropagateAtLaunch"))
        if tag is None:
            continue
        missing = [k for k in ("Key", "Value", "PropagateAtLaunch") if k not in tag]
        if missing:
            problems.add(f"{where} needs {' and '.join(missing)}", at)
            continue
        propagate = boolean(problems, tag["PropagateAtLaunch"], f"{where}.PropagateAtLaunch", at)
        tags.append(GroupTag(str(as_text(tag["Key"])), str(as_text(tag["Value"]) or ""), propagate))
    return tuple(tags)


# --- Lifecycle hooks -----------------------------------------------------------------------


def _hook_list(ctx: ResourceContext, problems: Problems) -> list[LifecycleHookSpec]:
    if "LifecycleHookSpecificationList" not in ctx.props:
        return []
    value = ctx.props["LifecycleHookSpecificationList"]
    line = ctx.line("LifecycleHookSpecificationList")
    known = definition_keys(AUTO_SCALING_GROUP, "LifecycleHookSpecification")
    hooks: list[LifecycleHookSpec] = []
    for index, item in enumerate(value):
        where, at = f"LifecycleHookSpecificationList[{index}]", line_of(value, index, line)
        spec = check_mapping(problems, item, where, at, known)
        if spec is None:
            continue
        if "LifecycleHookName" not in spec:
            problems.add(f"{where} needs a LifecycleHookName", at)
            continue
        hook = _hook(ctx, problems, spec, str(as_text(spec["LifecycleHookName"])), where, at)
        if hook is None:
            continue
        if any(h.name == hook.name for h in hooks):
            problems.add(f"{where}: the group already has a lifecycle hook {hook.name!r}", at)
            continue
        hooks.append(hook)
    return hooks


def _hook(
    ctx: ResourceContext,
    problems: Problems,
    spec: dict[str, Any],
    name: str,
    where: str,
    line: int | None,
    logical_id: str | None = None,
) -> LifecycleHookSpec | None:
    """One hook from its keys (a list entry, or a LifecycleHook's properties)."""
    before = len(problems.found)
    transition = None
    if "LifecycleTransition" not in spec:
        problems.add(f"{where} needs a LifecycleTransition", line)
    else:
        transition = choice(
            problems,
            spec["LifecycleTransition"],
            f"{where}.LifecycleTransition".lstrip("."),
            line_of(spec, "LifecycleTransition", line),
            TRANSITIONS,
        )
    timeout = DEFAULT_HEARTBEAT_S
    if "HeartbeatTimeout" in spec:
        found = whole(
            problems,
            spec["HeartbeatTimeout"],
            f"{where}.HeartbeatTimeout".lstrip("."),
            line_of(spec, "HeartbeatTimeout", line),
            low=30,
            high=7200,
        )
        timeout = float(found) if found is not None else timeout
    result = "ABANDON"
    if "DefaultResult" in spec:
        result = (
            choice(
                problems,
                spec["DefaultResult"],
                f"{where}.DefaultResult".lstrip("."),
                line_of(spec, "DefaultResult", line),
                HOOK_RESULTS,
            )
            or result
        )
    for key in ("NotificationTargetARN", "RoleARN", "NotificationMetadata"):
        if key in spec:
            ignore(ctx, f"{where}.{key}".lstrip("."), "no notifications are sent in the lab")
    if len(problems.found) > before or transition is None:
        return None
    return LifecycleHookSpec(name, transition, timeout, result, logical_id, ctx.source)


def _build_hook(ctx: ResourceContext) -> None:
    problems = Problems(ctx)
    group_id = _hook_group(ctx, problems)
    name = name_of(ctx, "LifecycleHookName")
    hook = _hook(ctx, problems, ctx.props, name, "", ctx.line(), ctx.logical_id)
    group = ctx.state.auto_scaling_groups.get(group_id or "")
    if (
        group is not None
        and hook is not None
        and any(h.name == name for h in group.lifecycle_hooks)
    ):
        problems.add(
            f"group {group_id} already has a lifecycle hook named {name!r}",
            ctx.line("LifecycleHookName"),
        )
    problems.raise_if_any()
    if group_id is None:
        # A hook on a group of another stack (its name a parameter): valid on AWS, and
        # nothing in this lab for it to hold.
        inert.record(
            ctx,
            f"not emulated: group {ctx.props['AutoScalingGroupName']!r} is not in this stack, "
            "so the hook holds no instance in the lab",
            kind="not-emulated",
        )
        return
    if group is None or hook is None:
        return  # its group failed: reported there
    ctx.state.auto_scaling_groups[group_id] = replace(
        group, lifecycle_hooks=(*group.lifecycle_hooks, hook)
    )


def _hook_group(ctx: ResourceContext, problems: Problems) -> str | None:
    """The logical id of the hook's group; None for a name that no resource of this stack
    has (a group of another stack)."""
    text = ctx.props["AutoScalingGroupName"]
    state = ctx.state
    if state.physical_ids.get(text) is None and text not in state.types:
        return None
    try:
        return find_built(
            ctx,
            text,
            AUTO_SCALING_GROUP,
            "Auto Scaling group",
            state.auto_scaling_groups,
            "AutoScalingGroupName",
            ctx.line("AutoScalingGroupName"),
            "use !Ref <an Auto Scaling group>",
        )
    except BadInput as err:
        problems.add_error(err)
        return None


def _hook_name(state: BuildState, logical_id: str) -> str:
    if logical_id in state.inert:
        return state.inert[logical_id].ref
    for group in state.auto_scaling_groups.values():
        for hook in group.lifecycle_hooks:
            if hook.logical_id == logical_id:
                return hook.name
    return logical_id


def _group(state: BuildState, logical_id: str) -> AutoScalingGroup:
    return state.auto_scaling_groups[logical_id]


register(
    ResourceType(
        AUTO_SCALING_GROUP,
        _build_group,
        properties={
            "AutoScalingGroupName": prop("string"),
            "MinSize": prop("integer", required=True),
            "MaxSize": prop("integer", required=True),
            "DesiredCapacity": prop("integer"),
            "VPCZoneIdentifier": prop("any"),
            "AvailabilityZones": prop("list"),
            "LaunchTemplate": prop("map"),
            "LaunchConfigurationName": prop("string"),
            "MixedInstancesPolicy": prop("map"),
            "TargetGroupARNs": prop("list"),
            "LoadBalancerNames": prop("list"),
            "HealthCheckType": prop("string"),
            "HealthCheckGracePeriod": prop("integer"),
            "Cooldown": prop("integer"),
            "DefaultInstanceWarmup": prop("integer"),
            "TerminationPolicies": prop("list"),
            "LifecycleHookSpecificationList": prop("list"),
            "Tags": prop("list"),
            "NewInstancesProtectedFromScaleIn": prop("boolean"),
            "MaxInstanceLifetime": prop("integer"),
            **dict.fromkeys(WITHOUT_MEANING, prop("any")),
        },
        unsupported={
            "InstanceId": "a group made from a running instance is not emulated; give a "
            "LaunchTemplate",
            "AvailabilityZoneIds": "AvailabilityZoneIds is not supported by the lab; use "
            "AvailabilityZones or VPCZoneIdentifier",
            "TrafficSources": "TrafficSources is not supported by the lab yet; use TargetGroupARNs",
        },
        ref_value=lambda s, lid: _group(s, lid).name,
        attributes={
            "AutoScalingGroupName": lambda s, lid: _group(s, lid).name,
            "AutoScalingGroupARN": lambda s, lid: _group(s, lid).arn,
            "MinSize": lambda s, lid: str(_group(s, lid).min_size),
            "MaxSize": lambda s, lid: str(_group(s, lid).max_size),
            "DesiredCapacity": lambda s, lid: str(_group(s, lid).desired),
            "AvailabilityZones": lambda s, lid: list(dict.fromkeys(_group(s, lid).azs)),
            "VPCZoneIdentifier": lambda s, lid: [
                s.physical("subnet-", x) for x in _group(s, lid).subnets
            ],
        },
    )
)

register(
    ResourceType(
        LIFECYCLE_HOOK,
        _build_hook,
        properties={
            "AutoScalingGroupName": prop("string", required=True),
            "LifecycleTransition": prop("string", required=True),
            "LifecycleHookName": prop("string"),
            "HeartbeatTimeout": prop("any"),
            "DefaultResult": prop("string"),
            "NotificationTargetARN": prop("any"),
            "RoleARN": prop("any"),
            "NotificationMetadata": prop("any"),
        },
        ref_value=_hook_name,
    )
)
