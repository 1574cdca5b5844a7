"""Routes a stack adds to another stack's route table (issue 14): the peering route back.

On AWS a stack may add an AWS::EC2::Route to a route table of another stack (imported, or
named by its id), typically the route back through a VPC peering connection the stack made.
The model mirrors that table as foreign (testbed.model.lab_view.ForeignRouteTable: its
routes, then the ones this stack adds); its subnets are already in the lab's plan, so the
routes the stack adds go into those subnets' routes when the stack joins the lab, and leave
with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from testbed.model.lab_view import FOREIGN_TABLES
from testbed.model.types import StackModel
from testbed.plan.network import NetworkPlan, RoutePlan, _route_plan


def foreign_table_routes(model: StackModel, qualifier: str) -> dict[str, tuple[RoutePlan, ...]]:
    """Plan subnet name (another stack's) -> the routes this stack adds to its route table,
    their targets named as in the lab plan."""

    def lab_name(name: str | None) -> str | None:
        if name is None:
            return name
        return model.plan_name(name) if name in model.foreign else qualifier + name

    out: dict[str, tuple[RoutePlan, ...]] = {}
    for key, mirrored in model.extras.get(FOREIGN_TABLES, {}).items():
        added = model.route_tables[key].routes[mirrored.copied :]
        routes = tuple(
            replace(plan, target=lab_name(plan.target))
            if plan.kind in ("vpce", "nat", "pcx")
            else plan
            for plan in (_route_plan(r, model) for r in added)
        )
        if routes:
            for subnet in mirrored.subnets:
                out[subnet] = out.get(subnet, ()) + routes
    return out


def with_foreign_table_routes(plan: NetworkPlan, model: StackModel, qualifier: str) -> NetworkPlan:
    """`plan` (the lab's, the stack added) with the routes the stack adds to other stacks'
    route tables."""
    added = foreign_table_routes(model, qualifier)
    if not added:
        return plan
    subnets = tuple(
        replace(s, routes=(*s.routes, *added[s.name])) if s.name in added else s
        for s in plan.subnets
    )
    return replace(plan, subnets=subnets)


def without_routes_into(plan: NetworkPlan, owned: Callable[[str | None], bool]) -> NetworkPlan:
    """`plan` without the peering routes of the remaining subnets into VPCs that go."""
    subnets = tuple(
        replace(s, routes=tuple(r for r in s.routes if not (r.kind == "pcx" and owned(r.target))))
        for s in plan.subnets
    )
    return replace(plan, subnets=subnets)
