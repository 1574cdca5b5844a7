"""AWS::AutoScaling::ScalingPolicy and AWS::AutoScaling::ScheduledAction.

A policy becomes a ScalingPolicy in state.scaling_policies, checked as AWS checks it:
target tracking on a predefined metric (ALBRequestCountPerTarget needs a ResourceLabel naming
an ALB and a target group of this stack, attached to the group) or on a customized metric the
lab has; step scaling with steps that neither overlap nor leave gaps; simple scaling.
Predictive scaling is kept with emulated False (it forecasts from days of history the lab
does not have). A scheduled action becomes a ScheduledAction (its cron checked here,
testbed.model.cron).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from testbed.errors import BadInput
from testbed.model import cron
from testbed.model.autoscaling_types import (
    PREDEFINED_METRICS,
    MetricSpec,
    ScalingPolicy,
    ScheduledAction,
    StepAdjustment,
)
from testbed.model.elbv2_types import EXTRAS_KEY as ELBV2
from testbed.model.resources.base import ResourceContext, ResourceType, prop, ref
from testbed.model.resources.cloudwatch import STATISTICS, lab_dimensions
from testbed.model.resources.inert import generated_name
from testbed.model.resources.registry import register
from testbed.model.resources.scaling_common import (
    AUTO_SCALING_GROUP,
    SCALING_POLICY,
    SCHEDULED_ACTION,
    Problems,
    autoscaling_arn,
    boolean,
    check_mapping,
    choice,
    definition_keys,
    ignore,
    number,
    whole,
)
from testbed.model.state import BuildState
from testbed.template.intrinsics import as_text
from testbed.template.nodes import describe, did_you_mean, line_of

POLICY_TYPES = ("TargetTrackingScaling", "StepScaling", "SimpleScaling", "PredictiveScaling")
ADJUSTMENT_TYPES = ("ChangeInCapacity", "ExactCapacity", "PercentChangeInCapacity")
AGGREGATIONS = ("Average", "Minimum", "Maximum")
TARGET_TRACKING_PERIOD_S = 60


def _build_policy(ctx: ResourceContext) -> None:
    problems = Problems(ctx)
    props, state, lid = ctx.props, ctx.state, ctx.logical_id
    group_id = props["AutoScalingGroupName"]
    group = state.auto_scaling_groups[group_id]
    policy_type = "SimpleScaling"
    if "PolicyType" in props:
        policy_type = (
            choice(
                problems, props["PolicyType"], "PolicyType", ctx.line("PolicyType"), POLICY_TYPES
            )
            or policy_type
        )
    fields: dict[str, Any] = {}
    only = {
        "ScalingAdjustment": ("SimpleScaling",),
        "Cooldown": ("SimpleScaling",),
        "StepAdjustments": ("StepScaling",),
        "MetricAggregationType": ("StepScaling",),
        "AdjustmentType": ("SimpleScaling", "StepScaling"),
        "MinAdjustmentMagnitude": ("SimpleScaling", "StepScaling"),
        "EstimatedInstanceWarmup": ("StepScaling", "TargetTrackingScaling"),
        "TargetTrackingConfiguration": ("TargetTrackingScaling",),
        "PredictiveScalingConfiguration": ("PredictiveScaling",),
    }
    for key, types in only.items():
        if key in props and policy_type not in types:
            problems.add(
                f"{key} is not valid for a {policy_type} policy (only {' and '.join(types)})",
                ctx.line(key),
            )
    if policy_type in ("SimpleScaling", "StepScaling"):
        fields.update(_adjustments(ctx, problems, policy_type))
    elif policy_type == "TargetTrackingScaling":
        fields.update(_target_tracking(ctx, problems, group))
    elif policy_type == "PredictiveScaling":
        if "PredictiveScalingConfiguration" not in props:
            problems.add(
                "a PredictiveScaling policy needs a PredictiveScalingConfiguration", ctx.line()
            )
        fields["emulated"] = False
        ignore(
            ctx,
            "PredictiveScalingConfiguration",
            "not emulated: predictive scaling forecasts from days of history the lab has not",
        )
    if "Cooldown" in props:
        fields["cooldown_s"] = float(props["Cooldown"])
    if "EstimatedInstanceWarmup" in props:
        fields["estimated_instance_warmup_s"] = float(props["EstimatedInstanceWarmup"])
    for key in ("Cooldown", "EstimatedInstanceWarmup"):
        if key in props and props[key] < 0:
            problems.add(f"{key} must be 0 or more, not {props[key]}", ctx.line(key))
    problems.raise_if_any()
    name = generated_name(state, lid)
    state.scaling_policies[lid] = ScalingPolicy(
        lid,
        group_id,
        policy_type,
        source=ctx.source,
        name=name,
        arn=autoscaling_arn(
            ctx, "scalingPolicy", f"autoScalingGroupName/{group.name}:policyName/{name}"
        ),
        **fields,
    )


def _adjustments(ctx: ResourceContext, problems: Problems, policy_type: str) -> dict[str, Any]:
    props = ctx.props
    fields: dict[str, Any] = {}
    if "AdjustmentType" not in props:
        problems.add(
            f"a {policy_type} policy needs an AdjustmentType ({', '.join(ADJUSTMENT_TYPES)})",
            ctx.line(),
        )
    else:
        fields["adjustment_type"] = (
            choice(
                problems,
                props["AdjustmentType"],
                "AdjustmentType",
                ctx.line("AdjustmentType"),
                ADJUSTMENT_TYPES,
            )
            or "ChangeInCapacity"
        )
    if "MinAdjustmentMagnitude" in props:
        if fields.get("adjustment_type") != "PercentChangeInCapacity":
            problems.add(
                "MinAdjustmentMagnitude is only for AdjustmentType PercentChangeInCapacity",
                ctx.line("MinAdjustmentMagnitude"),
            )
        fields["min_adjustment_magnitude"] = props["MinAdjustmentMagnitude"]
    if policy_type == "SimpleScaling":
        if "ScalingAdjustment" not in props:
            problems.add("a SimpleScaling policy needs a ScalingAdjustment", ctx.line())
        else:
            fields["scaling_adjustment"] = props["ScalingAdjustment"]
        return fields
    if "MetricAggregationType" in props:
        fields["metric_aggregation"] = (
            choice(
                problems,
                props["MetricAggregationType"],
                "MetricAggregationType",
                ctx.line("MetricAggregationType"),
                AGGREGATIONS,
            )
            or "Average"
        )
    if "StepAdjustments" not in props or not props["StepAdjustments"]:
        problems.add("a StepScaling policy needs StepAdjustments", ctx.line("StepAdjustments"))
        return fields
    fields["step_adjustments"] = _steps(
        problems, props["StepAdjustments"], ctx.line("StepAdjustments")
    )
    return fields


def _steps(problems: Problems, value: list[Any], line: int | None) -> tuple[StepAdjustment, ...]:
    """The steps, checked with AWS's rules: no overlap, no gap, one open end each way."""
    keys = ("MetricIntervalLowerBound", "MetricIntervalUpperBound", "ScalingAdjustment")
    steps: list[StepAdjustment] = []
    before = len(problems.found)
    for index, item in enumerate(value):
        where, at = f"StepAdjustments[{index}]", line_of(value, index, line)
        step = check_mapping(problems, item, where, at, keys)
        if step is None:
            continue
        if "ScalingAdjustment" not in step:
            problems.add(f"{where} needs a ScalingAdjustment", at)
            continue
        bounds = [
            number(problems, step[k], f"{where}.{k}", line_of(step, k, at)) if k in step else None
            for k in keys[:2]
        ]
        adjustment = whole(problems, step["ScalingAdjustment"], f"{where}.ScalingAdjustment", at)
        lower, upper = bounds
        if lower is not None and upper is not None and lower >= upper:
            problems.add(
                f"{where}: the lower bound {lower:g} is not below the upper bound {upper:g}", at
            )
        steps.append(StepAdjustment(lower, upper, float(adjustment or 0)))
    if len(problems.found) > before:
        return ()
    ordered = sorted(steps, key=lambda s: float("-inf") if s.lower is None else s.lower)
    if sum(s.lower is None for s in steps) > 1 or sum(s.upper is None for s in steps) > 1:
        problems.add(
            "StepAdjustments: only one step may have no lower bound and one no upper bound",
            line,
        )
        return ()
    for first, second in itertools.pairwise(ordered):
        if first.upper is None or (second.lower is not None and first.upper > second.lower):
            problems.add(
                f"StepAdjustments overlap: the step from {_bound(first.lower)} to "
                f"{_bound(first.upper)} and the one from {_bound(second.lower)}",
                line,
            )
            return ()
        if second.lower is None or first.upper < second.lower:
            problems.add(
                f"StepAdjustments have a gap between {_bound(first.upper)} and "
                f"{_bound(second.lower)}: the steps must cover the range without gaps",
                line,
            )
            return ()
    return tuple(ordered)


def _bound(value: float | None) -> str:
    return "infinity" if value is None else f"{value:g}"


def _target_tracking(ctx: ResourceContext, problems: Problems, group: Any) -> dict[str, Any]:
    where, line = "TargetTrackingConfiguration", ctx.line("TargetTrackingConfiguration")
    if "TargetTrackingConfiguration" not in ctx.props:
        problems.add(
            "a TargetTrackingScaling policy needs a TargetTrackingConfiguration", ctx.line()
        )
        return {}
    known = definition_keys(SCALING_POLICY, "TargetTrackingConfiguration")
    config = check_mapping(problems, ctx.props[where], where, line, known)
    if config is None:
        return {}
    fields: dict[str, Any] = {}
    if "TargetValue" not in config:
        problems.add(f"{where} needs a TargetValue", line)
    else:
        target = number(
            problems,
            config["TargetValue"],
            f"{where}.TargetValue",
            line_of(config, "TargetValue", line),
        )
        if target is not None and target <= 0:
            problems.add(
                f"{where}.TargetValue must be more than 0, not {target:g}",
                line_of(config, "TargetValue", line),
            )
        fields["target_value"] = target
    if "DisableScaleIn" in config:
        fields["disable_scale_in"] = boolean(
            problems,
            config["DisableScaleIn"],
            f"{where}.DisableScaleIn",
            line_of(config, "DisableScaleIn", line),
        )
    given = [
        k for k in ("PredefinedMetricSpecification", "CustomizedMetricSpecification") if k in config
    ]
    if len(given) != 1:
        problems.add(
            f"{where} needs one of PredefinedMetricSpecification and "
            "CustomizedMetricSpecification" + (", not both" if given else ""),
            line,
        )
        return fields
    at = line_of(config, given[0], line)
    if given[0] == "PredefinedMetricSpecification":
        fields.update(
            _predefined(ctx, problems, config[given[0]], f"{where}.{given[0]}", at, group)
        )
    else:
        fields["customized_metric"] = _customized(
            ctx, problems, config[given[0]], f"{where}.{given[0]}", at
        )
    return fields


def _predefined(
    ctx: ResourceContext, problems: Problems, value: Any, where: str, line: int | None, group: Any
) -> dict[str, Any]:
    spec = check_mapping(problems, value, where, line, ("PredefinedMetricType", "ResourceLabel"))
    if spec is None:
        return {}
    if "PredefinedMetricType" not in spec:
        problems.add(f"{where} needs a PredefinedMetricType", line)
        return {}
    metric = choice(
        problems,
        spec["PredefinedMetricType"],
        f"{where}.PredefinedMetricType",
        line_of(spec, "PredefinedMetricType", line),
        PREDEFINED_METRICS,
    )
    if metric is None:
        return {}
    fields: dict[str, Any] = {"predefined_metric": metric}
    label = as_text(spec.get("ResourceLabel")) if "ResourceLabel" in spec else None
    at = line_of(spec, "ResourceLabel", line)
    if metric != "ALBRequestCountPerTarget":
        if label is not None:
            ignore(ctx, f"{where}.ResourceLabel", f"{metric} needs no resource label")
        return fields
    if not label:
        problems.add(
            f"{where}: ALBRequestCountPerTarget needs a ResourceLabel "
            "(app/LB-NAME/ID/targetgroup/TG-NAME/ID)",
            line,
            "ResourceLabel: !Join ['/', [!GetAtt LB.LoadBalancerFullName, "
            "!GetAtt TG.TargetGroupFullName]]",
        )
        return fields
    target = _resource_label(ctx.state, label)
    if target is None:
        problems.add(
            f"{where}.ResourceLabel {label!r} names no application load balancer and target "
            "group of this stack",
            at,
            "build it from !GetAtt <ALB>.LoadBalancerFullName and !GetAtt "
            "<target group>.TargetGroupFullName joined with /",
        )
        return fields
    if target[1] not in group.target_groups:
        problems.add(
            f"{where}.ResourceLabel names target group {target[1]}, which group "
            f"{group.logical_id} does not register its instances in (TargetGroupARNs)",
            at,
        )
    fields["resource_label"] = label
    fields["resource_target"] = target
    return fields


def _resource_label(state: BuildState, label: str) -> tuple[str, str] | None:
    """(load balancer, target group) logical ids of app/LB/ID/targetgroup/TG/ID."""
    sections = state.extras.get(ELBV2, {})
    for lb in sections.get("load_balancers", {}).values():
        lb_name = lb.arn.split(":loadbalancer/", 1)[1]
        if lb.type != "application" or not label.startswith(lb_name + "/"):
            continue
        for tg in sections.get("target_groups", {}).values():
            if label == f"{lb_name}/{tg.arn.split(':', 5)[5]}":
                return lb.logical_id, tg.logical_id
    return None


def _customized(
    ctx: ResourceContext, problems: Problems, value: Any, where: str, line: int | None
) -> MetricSpec | None:
    known = definition_keys(SCALING_POLICY, "CustomizedMetricSpecification")
    spec = check_mapping(problems, value, where, line, known)
    if spec is None:
        return None
    if "Metrics" in spec:
        problems.add(
            f"{where}.Metrics: metric math is not emulated", line_of(spec, "Metrics", line)
        )
        return None
    missing = [k for k in ("MetricName", "Namespace", "Statistic") if k not in spec]
    if missing:
        problems.add(f"{where} needs {', '.join(missing)}", line)
        return None
    statistic = choice(
        problems,
        spec["Statistic"],
        f"{where}.Statistic",
        line_of(spec, "Statistic", line),
        STATISTICS,
    )
    if "Period" in spec and as_text(spec["Period"]) != str(TARGET_TRACKING_PERIOD_S):
        ignore(ctx, f"{where}.Period", "the lab tracks targets on 60 s datapoints")
    namespace, metric = str(as_text(spec["Namespace"])), str(as_text(spec["MetricName"]))
    dims, not_lab = lab_dimensions(
        ctx,
        problems,
        namespace,
        metric,
        spec.get("Dimensions"),
        f"{where}.Dimensions",
        line_of(spec, "Dimensions", line),
    )
    if not_lab is not None:
        problems.add(f"{where}: {not_lab}", line_of(spec, "MetricName", line))
        return None
    unit = as_text(spec["Unit"]) if "Unit" in spec else None
    return MetricSpec(namespace, metric, dims, statistic or "Average", unit)


register(
    ResourceType(
        SCALING_POLICY,
        _build_policy,
        properties={
            "AutoScalingGroupName": ref(AUTO_SCALING_GROUP, required=True),
            "PolicyType": prop("string"),
            "AdjustmentType": prop("string"),
            "ScalingAdjustment": prop("integer"),
            "StepAdjustments": prop("list"),
            "Cooldown": prop("integer"),
            "EstimatedInstanceWarmup": prop("integer"),
            "MetricAggregationType": prop("string"),
            "MinAdjustmentMagnitude": prop("integer"),
            "TargetTrackingConfiguration": prop("map"),
            "PredictiveScalingConfiguration": prop("any"),
        },
        ref_value=lambda s, lid: s.scaling_policies[lid].arn,
        attributes={
            "Arn": lambda s, lid: s.scaling_policies[lid].arn,
            "PolicyName": lambda s, lid: s.scaling_policies[lid].name,
        },
    )
)


# --- Scheduled actions ---------------------------------------------------------------------


def _time(problems: Problems, value: Any, where: str, line: int | None) -> float | None:
    """Epoch seconds of an ISO 8601 time (UTC unless it says otherwise)."""
    text = as_text(value)
    try:
        if text is None:
            raise ValueError
        found = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        problems.add(
            f"{where} must be a time such as 2026-12-06T10:00:00Z (ISO 8601, UTC), "
            f"not {text if text is not None else describe(value)!r}",
            line,
        )
        return None
    if found.tzinfo is None:
        found = found.replace(tzinfo=UTC)
    return found.timestamp()


def _build_scheduled(ctx: ResourceContext) -> None:
    problems = Problems(ctx)
    props = ctx.props
    sizes = {k: props.get(k) for k in ("MinSize", "MaxSize", "DesiredCapacity")}
    if all(v is None for v in sizes.values()):
        problems.add(
            "a scheduled action needs at least one of MinSize, MaxSize and DesiredCapacity",
            ctx.line(),
        )
    for key, size in sizes.items():
        if size is not None and size < 0:
            problems.add(f"{key} must be 0 or more, not {size}", ctx.line(key))
    low, high, desired = sizes["MinSize"], sizes["MaxSize"], sizes["DesiredCapacity"]
    if low is not None and high is not None and low > high:
        problems.add(f"MinSize {low} is greater than MaxSize {high}", ctx.line("MinSize"))
    elif desired is not None and (
        (low is not None and desired < low) or (high is not None and desired > high)
    ):
        problems.add(
            f"DesiredCapacity {desired} must be between the action's MinSize and MaxSize",
            ctx.line("DesiredCapacity"),
        )
    recurrence = props.get("Recurrence")
    if recurrence is not None:
        try:
            cron.parse(recurrence)
        except BadInput as err:
            problems.add_error(err, ctx.line("Recurrence"))
    start = (
        _time(problems, props["StartTime"], "StartTime", ctx.line("StartTime"))
        if "StartTime" in props
        else None
    )
    end = (
        _time(problems, props["EndTime"], "EndTime", ctx.line("EndTime"))
        if "EndTime" in props
        else None
    )
    if recurrence is None and start is None:
        problems.add("a scheduled action needs a Recurrence (cron) or a StartTime", ctx.line())
    if start is not None and end is not None and end <= start:
        problems.add("EndTime must be after StartTime", ctx.line("EndTime"))
    zone = props.get("TimeZone", "UTC")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.add(
            f"TimeZone {zone!r} is not an IANA time zone name such as Europe/Paris",
            ctx.line("TimeZone"),
            did_you_mean(zone, sorted(available_timezones())),
        )
    problems.raise_if_any()
    ctx.state.scheduled_actions[ctx.logical_id] = ScheduledAction(
        ctx.logical_id,
        props["AutoScalingGroupName"],
        recurrence,
        start,
        end,
        low,
        high,
        desired,
        zone,
        ctx.source,
        name=generated_name(ctx.state, ctx.logical_id),
    )


register(
    ResourceType(
        SCHEDULED_ACTION,
        _build_scheduled,
        properties={
            "AutoScalingGroupName": ref(AUTO_SCALING_GROUP, required=True),
            "MinSize": prop("integer"),
            "MaxSize": prop("integer"),
            "DesiredCapacity": prop("integer"),
            "Recurrence": prop("string"),
            "StartTime": prop("string"),
            "EndTime": prop("string"),
            "TimeZone": prop("string"),
        },
        ref_value=lambda s, lid: s.scheduled_actions[lid].name,
        attributes={"ScheduledActionName": lambda s, lid: s.scheduled_actions[lid].name},
    )
)
