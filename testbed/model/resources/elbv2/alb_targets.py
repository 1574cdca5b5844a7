"""Checks of alb target groups (an ALB behind a network load balancer) that need every
listener built: the ALB must listen on the group's port, and only TCP listeners of network
load balancers may forward to the group. Run once the stack is built (testbed.model.build)."""

from __future__ import annotations

from testbed.errors import BadInput
from testbed.model.elbv2_types import EXTRAS_KEY
from testbed.model.resources.elbv2.common import family
from testbed.model.resources.elbv2.target_group import users
from testbed.model.state import BuildState


def alb_target_errors(state: BuildState) -> list[BadInput]:
    """Every problem of every alb target group (none for stacks without one)."""
    if EXTRAS_KEY not in state.extras:
        return []  # no ELB resource (family() would add empty sections to the model)
    sections = family(state)
    lbs, listeners = sections["load_balancers"], sections["listeners"]
    errors: list[BadInput] = []
    for tg in sections["target_groups"].values():
        if tg.target_type != "alb":
            continue
        line = tg.source.line if tg.source else None
        for target in tg.targets:
            ports = sorted(
                lis.port for lis in listeners.values() if lis.lb_id == target.load_balancer
            )
            if tg.port not in ports:
                errors.append(
                    BadInput(
                        f"ALB {target.load_balancer} has no listener on port {tg.port}, the "
                        "port of this alb target group (AWS: the group's port must be an ALB "
                        "listener's)",
                        line=line,
                        logical_id=tg.logical_id,
                        hint=f"its listeners' ports: {', '.join(map(str, ports)) or 'none'}",
                    )
                )
        for lb_id in users(state, tg.logical_id):
            lb = lbs[lb_id]
            if lb.type != "network":
                errors.append(
                    BadInput(
                        f"{lb.type} load balancer {lb_id} forwards to this alb target group; "
                        "only a network load balancer's TCP listeners can",
                        line=line,
                        logical_id=tg.logical_id,
                    )
                )
        for lis in listeners.values():
            forwards = any(
                tg_id == tg.logical_id for a in lis.default_actions for tg_id, _ in a.target_groups
            )
            if forwards and lbs[lis.lb_id].type == "network" and lis.protocol != "TCP":
                errors.append(
                    BadInput(
                        f"listener {lis.logical_id} ({lis.protocol}) forwards to this alb "
                        "target group; only TCP listeners can",
                        line=lis.source.line if lis.source else line,
                        logical_id=tg.logical_id,
                    )
                )
    return errors
