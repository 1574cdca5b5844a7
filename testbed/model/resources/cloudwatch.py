"""AWS::CloudWatch::Alarm, and which CloudWatch metrics the lab has.

An alarm on a metric the lab samples (autoscaling_types.LAB_METRICS, with dimensions naming
resources of this stack) becomes an Alarm in state.alarms: the lab evaluates it as CloudWatch
does and runs the scaling policies among its actions (other actions, SNS topics for example,
are kept as text and only reported). An alarm on anything else (another namespace, metric
math, anomaly detection) cannot change state in the lab: it is refused when one of its actions
is a scaling policy of the stack (the policy could never run), else accepted as not emulated
so that the rest of a real template comes up.
"""

from __future__ import annotations

import re
from typing import Any

from testbed.model.autoscaling_types import (
    LAB_DIMENSIONS,
    LAB_METRICS,
    Alarm,
    MetricSpec,
)
from testbed.model.elbv2_types import EXTRAS_KEY as ELBV2
from testbed.model.resources import inert
from testbed.model.resources.base import ResourceContext, ResourceType, prop
from testbed.model.resources.registry import register
from testbed.model.resources.scaling_common import (
    ALARM,
    SCALING_POLICY,
    Problems,
    check_mapping,
    choice,
    ignore,
    name_of,
    number,
)
from testbed.model.state import BuildState
from testbed.template.intrinsics import ACCOUNT_ID, as_text
from testbed.template.nodes import describe, did_you_mean, line_of

COMPARISONS = (
    "GreaterThanOrEqualToThreshold",
    "GreaterThanThreshold",
    "LessThanThreshold",
    "LessThanOrEqualToThreshold",
)
ANOMALY_COMPARISONS = (
    "LessThanLowerOrGreaterThanUpperThreshold",
    "LessThanLowerThreshold",
    "GreaterThanUpperThreshold",
)
STATISTICS = ("Average", "Sum", "Minimum", "Maximum", "SampleCount")
PERCENTILE = re.compile(r"^p(100(\.0+)?|\d{1,2}(\.\d{1,2})?)$")
TREAT_MISSING = ("missing", "breaching", "notBreaching", "ignore")
INSTANCE = "AWS::EC2::Instance"
# The load balancer type whose metrics a namespace carries (the prefix of its full name).
LB_PREFIX = {"AWS/ApplicationELB": "app/", "AWS/NetworkELB": "net/"}
MAX_EVALUATION_S = 86400  # AWS: Period x EvaluationPeriods is at most one day
NEWER_KEYS = ("EvaluationCriteria", "EvaluationInterval", "EvaluationWindow", "ThresholdMetricId")


def lab_dimensions(
    ctx: ResourceContext,
    problems: Problems,
    namespace: str,
    metric: str,
    value: Any,
    where: str,
    line: int | None,
) -> tuple[tuple[tuple[str, str], ...], str | None]:
    """(dimensions sorted by name, why the lab has no such metric or None).

    Shape problems (not a list of {Name, Value}) are reported; a metric the lab does not
    have is only described, the caller decides whether that is an error."""
    pairs: list[tuple[str, str]] = []
    if value is not None:
        if not isinstance(value, list):
            problems.add(f"{where} must be a list of {{Name, Value}}, not {describe(value)}", line)
            return (), None
        for index, item in enumerate(value):
            at = line_of(value, index, line)
            entry = check_mapping(problems, item, f"{where}[{index}]", at, ("Name", "Value"))
            if entry is None:
                continue
            if "Name" not in entry or "Value" not in entry:
                problems.add(f"{where}[{index}] needs Name and Value", at)
                continue
            pairs.append((str(as_text(entry["Name"])), str(as_text(entry["Value"]))))
    dims = tuple(sorted(pairs))
    if namespace not in LAB_METRICS:
        return dims, (
            f"the lab has no metrics in namespace {namespace} (it has {', '.join(LAB_METRICS)})"
        )
    if metric not in LAB_METRICS[namespace]:
        hint = did_you_mean(metric, LAB_METRICS[namespace])
        return dims, (
            f"the lab has no metric {metric} in {namespace}"
            + (f" ({hint})" if hint else f" (it has {', '.join(sorted(LAB_METRICS[namespace]))})")
        )
    for name, text in dims:
        if name not in LAB_DIMENSIONS[namespace]:
            return dims, (
                f"the lab's {namespace} metrics have no dimension {name} (they have "
                f"{', '.join(sorted(LAB_DIMENSIONS[namespace]))})"
            )
        missing = _unknown_value(ctx.state, namespace, name, text)
        if missing:
            return dims, missing
    return dims, None


def _unknown_value(state: BuildState, namespace: str, name: str, value: str) -> str | None:
    """Why a dimension value names nothing of this stack, or None when it does."""
    sections = state.extras.get(ELBV2, {})
    if name == "InstanceId":
        lid = state.physical_ids.get(value)
        if lid is not None and state.types.get(lid) == INSTANCE:
            return None
        return f"InstanceId {value!r} is no instance of this stack (use !Ref <an instance>)"
    if name == "AutoScalingGroupName":
        if any(g.name == value for g in state.auto_scaling_groups.values()):
            return None
        return (
            f"AutoScalingGroupName {value!r} is no Auto Scaling group of this stack "
            "(use !Ref <a group>)"
        )
    if name == "LoadBalancerName":
        classic = [
            lb.name for lb in sections.get("load_balancers", {}).values() if lb.type == "classic"
        ]
        if value in classic:
            return None
        return (
            f"LoadBalancerName {value!r} is no classic load balancer of this stack "
            "(use !Ref <load balancer>)"
        )
    if name == "LoadBalancer":
        prefix = LB_PREFIX[namespace]
        names = [
            lb.arn.split(":loadbalancer/", 1)[1]
            for lb in sections.get("load_balancers", {}).values()
        ]
        if value in names and value.startswith(prefix):
            return None
        return (
            f"LoadBalancer {value!r} is no {prefix[:-1]} load balancer of this stack "
            "(use !GetAtt <load balancer>.LoadBalancerFullName)"
        )
    names = [tg.arn.split(":", 5)[5] for tg in sections.get("target_groups", {}).values()]
    if value in names:
        return None
    return (
        f"TargetGroup {value!r} is no target group of this stack "
        "(use !GetAtt <target group>.TargetGroupFullName)"
    )


def _statistic(ctx: ResourceContext, problems: Problems) -> str:
    props = ctx.props
    given = [k for k in ("Statistic", "ExtendedStatistic") if k in props]
    if len(given) != 1:
        problems.add(
            "give the alarm one of Statistic and ExtendedStatistic"
            + (", not both" if given else ""),
            ctx.line(given[-1] if given else None),
        )
        return "Average"
    if given[0] == "Statistic":
        return (
            choice(problems, props["Statistic"], "Statistic", ctx.line("Statistic"), STATISTICS)
            or "Average"
        )
    text = props["ExtendedStatistic"]
    if not PERCENTILE.match(text):
        problems.add(
            f"ExtendedStatistic {text!r}: the lab computes percentiles such as p90 or p99.9",
            ctx.line("ExtendedStatistic"),
        )
    return text


def _actions(
    ctx: ResourceContext, problems: Problems, key: str
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(logical ids of this stack's scaling policies, other actions as text)."""
    if key not in ctx.props:
        return (), ()
    value, line = ctx.props[key], ctx.line(key)
    policies: list[str] = []
    others: list[str] = []
    state = ctx.state
    for index, item in enumerate(value):
        at = line_of(value, index, line)
        text = as_text(item)
        if text is None:
            problems.add(f"{key}[{index}] must be an ARN, not {describe(item)}", at)
            continue
        lid = state.physical_ids.get(text)
        if lid is None or state.types.get(lid) != SCALING_POLICY:
            others.append(text)
            continue
        policy = state.scaling_policies.get(lid)
        if policy is not None and policy.policy_type in (
            "TargetTrackingScaling",
            "PredictiveScaling",
        ):
            problems.add(
                f"{key}[{index}] is {lid}, a {policy.policy_type} policy: only step and "
                "simple scaling policies can be alarm actions (a target tracking policy "
                "makes its own alarms)",
                at,
            )
            continue
        policies.append(lid)
    return tuple(dict.fromkeys(policies)), tuple(dict.fromkeys(others))


def _build_alarm(ctx: ResourceContext) -> None:
    problems = Problems(ctx)
    props = ctx.props
    comparison = props.get("ComparisonOperator")
    not_lab: str | None = None
    if comparison in ANOMALY_COMPARISONS:
        not_lab = "anomaly detection alarms are not emulated"
    elif comparison is None:
        problems.add("the alarm needs a ComparisonOperator", ctx.line())
    else:
        choice(
            problems, comparison, "ComparisonOperator", ctx.line("ComparisonOperator"), COMPARISONS
        )
    periods = props["EvaluationPeriods"]
    if periods < 1:
        problems.add(
            f"EvaluationPeriods must be at least 1, not {periods}", ctx.line("EvaluationPeriods")
        )
    datapoints = props.get("DatapointsToAlarm", periods)
    if not 1 <= datapoints <= max(periods, 1):
        problems.add(
            f"DatapointsToAlarm must be from 1 to EvaluationPeriods ({periods}), not {datapoints}",
            ctx.line("DatapointsToAlarm"),
        )
    treat = "missing"
    if "TreatMissingData" in props:
        treat = (
            choice(
                problems,
                props["TreatMissingData"],
                "TreatMissingData",
                ctx.line("TreatMissingData"),
                TREAT_MISSING,
            )
            or treat
        )
    scaling, others = _actions(ctx, problems, "AlarmActions")
    ok_scaling, ok_others = _actions(ctx, problems, "OKActions")
    insufficient, insufficient_others = _actions(ctx, problems, "InsufficientDataActions")
    if "Metrics" in props:
        not_lab = not_lab or "metric math (Metrics) is not emulated"
    else:
        for key in ("MetricName", "Namespace"):
            if key not in props:
                problems.add(f"the alarm needs a {key} (or Metrics)", ctx.line())
    period = 60.0
    if "Metrics" not in props:
        if "Period" not in props:
            problems.add(
                "the alarm needs a Period (seconds: 10, 30 or a multiple of 60)", ctx.line()
            )
        else:
            period = float(props["Period"])
            if period not in (10, 30) and (period <= 0 or period % 60):
                problems.add(
                    f"Period must be 10, 30 or a multiple of 60, not {props['Period']}",
                    ctx.line("Period"),
                )
            elif period * periods > MAX_EVALUATION_S:
                problems.add(
                    f"Period x EvaluationPeriods is {int(period * periods)} s; AWS allows at "
                    "most one day (86400 s)",
                    ctx.line("EvaluationPeriods"),
                )
    statistic = _statistic(ctx, problems) if "Metrics" not in props else "Average"
    threshold = 0.0
    if "Threshold" in props:
        found = number(problems, props["Threshold"], "Threshold", ctx.line("Threshold"))
        threshold = found if found is not None else 0.0
    elif not_lab is None and "ThresholdMetricId" not in props:
        problems.add("the alarm needs a Threshold", ctx.line())
    for key in NEWER_KEYS:
        if key in props:
            not_lab = not_lab or f"{key} is not emulated"
    dims: tuple[tuple[str, str], ...] = ()
    if not_lab is None and "MetricName" in props and "Namespace" in props:
        dims, not_lab = lab_dimensions(
            ctx,
            problems,
            props["Namespace"],
            props["MetricName"],
            props.get("Dimensions"),
            "Dimensions",
            ctx.line("Dimensions"),
        )
    acting = scaling + ok_scaling + insufficient
    if not_lab is not None and acting:
        problems.add(
            f"{not_lab}; the alarm would never change state, so scaling policy "
            f"{acting[0]} would never run",
            ctx.line("MetricName") if "MetricName" in props else ctx.line(),
            "alarm on a metric the lab has: AWS/EC2 CPUUtilization or NetworkIn/Out by "
            "AutoScalingGroupName, AWS/ApplicationELB RequestCountPerTarget by TargetGroup, ...",
        )
    problems.raise_if_any()
    if "ActionConfiguration" in props:
        ignore(ctx, "ActionConfiguration", "the lab runs scaling policies, nothing else")
    if "EvaluateLowSampleCountPercentile" in props:
        ignore(ctx, "EvaluateLowSampleCountPercentile", "percentiles are always evaluated")
    if not_lab is not None:
        inert.record(
            ctx, f"not emulated: {not_lab}; the alarm stays INSUFFICIENT_DATA", kind="not-emulated"
        )
        return
    ctx.state.alarms[ctx.logical_id] = Alarm(
        ctx.logical_id,
        name_of(ctx, "AlarmName"),
        MetricSpec(
            props["Namespace"],
            props["MetricName"],
            dims,
            statistic,
            props.get("Unit"),
        ),
        period,
        periods,
        datapoints,
        threshold,
        str(comparison),
        treat,
        scaling,
        ok_scaling,
        insufficient,
        others + ok_others + insufficient_others,
        props.get("ActionsEnabled", True),
        ctx.source,
        description=props.get("AlarmDescription", ""),
    )


def _alarm_name(state: BuildState, lid: str) -> str:
    if lid in state.alarms:
        return state.alarms[lid].name
    return state.inert[lid].ref


def alarm_arn(state: BuildState, lid: str) -> str:
    return f"arn:aws:cloudwatch:{state.region}:{ACCOUNT_ID}:alarm:{_alarm_name(state, lid)}"


register(
    ResourceType(
        ALARM,
        _build_alarm,
        properties={
            "AlarmName": prop("string"),
            "AlarmDescription": prop("string"),
            "ActionsEnabled": prop("boolean"),
            "AlarmActions": prop("list"),
            "OKActions": prop("list"),
            "InsufficientDataActions": prop("list"),
            "ComparisonOperator": prop("string"),
            "EvaluationPeriods": prop("integer", required=True),
            "DatapointsToAlarm": prop("integer"),
            "Threshold": prop("any"),
            "Statistic": prop("string"),
            "ExtendedStatistic": prop("string"),
            "Period": prop("integer"),
            "MetricName": prop("string"),
            "Namespace": prop("string"),
            "Dimensions": prop("list"),
            "Unit": prop("string"),
            "TreatMissingData": prop("string"),
            "Metrics": prop("any"),
            "ActionConfiguration": prop("any"),
            "EvaluateLowSampleCountPercentile": prop("any"),
            **dict.fromkeys(NEWER_KEYS, prop("any")),
        },
        ref_value=_alarm_name,
        attributes={"Arn": alarm_arn},
    )
)
