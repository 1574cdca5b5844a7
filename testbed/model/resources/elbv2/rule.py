"""AWS::ElasticLoadBalancingV2::ListenerRule: conditions and actions of an ALB listener,
tried by priority (lowest first) before the listener's default action."""

from __future__ import annotations

from testbed.model.elb_defaults import APPLICATION
from testbed.model.elbv2_types import ListenerRule
from testbed.model.resources.base import ResourceContext, ResourceType, prop, ref
from testbed.model.resources.elbv2.actions import read_actions
from testbed.model.resources.elbv2.common import (
    LISTENER,
    LISTENER_RULE,
    digest,
    family,
    in_range,
)
from testbed.model.resources.elbv2.conditions import read_conditions
from testbed.model.resources.registry import register
from testbed.model.state import BuildState

MAX_PRIORITY = 50000


def _build(ctx: ResourceContext) -> None:
    state, lid = ctx.state, ctx.logical_id
    sections = family(state)
    listener = sections["listeners"][ctx.props["ListenerArn"]]
    lb = sections["load_balancers"][listener.lb_id]
    if lb.type != APPLICATION:
        raise ctx.fail(
            f"listener rules are only for application load balancers; listener "
            f"{listener.logical_id} belongs to {lb.type} load balancer "
            f"{lb.logical_id}",
            prop="ListenerArn",
        )
    priority = in_range(
        ctx, ctx.props["Priority"], 1, MAX_PRIORITY, "Priority", ctx.line("Priority")
    )
    for other in sections["listener_rules"].values():
        if other.listener_id == listener.logical_id and other.priority == priority:
            raise ctx.fail(
                f"rule {other.logical_id} of listener {listener.logical_id} already "
                f"has priority {priority}",
                prop="Priority",
                hint="each rule of a listener needs its own priority",
            )
    conditions = read_conditions(ctx)
    actions = read_actions(ctx, "Actions", lb, listener.protocol)
    rule_arn = (
        listener.arn.replace(":listener/", ":listener-rule/") + "/" + digest(state, lid, "arn")[:16]
    )
    sections["listener_rules"][lid] = ListenerRule(
        lid, listener.logical_id, priority, conditions, actions, rule_arn, ctx.source
    )


def _arn(state: BuildState, lid: str) -> str:
    return family(state)["listener_rules"][lid].arn


register(
    ResourceType(
        LISTENER_RULE,
        _build,
        properties={
            "ListenerArn": ref(LISTENER, required=True),
            "Priority": prop("integer", required=True),
            "Conditions": prop("list", required=True),
            "Actions": prop("list", required=True),
        },
        ref_value=_arn,
        attributes={"RuleArn": _arn, "IsDefault": lambda s, lid: "false"},
    )
)
