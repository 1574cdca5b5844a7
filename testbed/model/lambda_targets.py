"""Where the lab runs each Lambda function an Application Load Balancer invokes (issue 17).

On AWS the load balancer invokes the function through Lambda's API: no packet of the VPC is
involved. The lab has no such API, so each function named by a lambda target group that an
ALB uses becomes a lab host of its own, running the lambda-runtime role: it sits in the
subnet of the ALB's first node (the first AZ the ALB is in), takes the lowest free address
there once the whole template is built (so it never shifts an instance's or a node's
address), and the group's one target becomes that host's runtime port. A function no ALB
reaches gets no host (AWS would never run it either).
"""

from __future__ import annotations

from dataclasses import replace

from testbed.errors import BadInput
from testbed.model.elbv2_types import EXTRAS_KEY as ELBV2_KEY
from testbed.model.resources.elbv2.target_group import users
from testbed.model.resources.lambda_function import functions
from testbed.model.state import BuildState


def place(state: BuildState) -> list[BadInput]:
    """Give each invoked function its host's subnet and address, and each lambda target
    group its target's address; the problems found (a subnet without a free address)."""
    sections = state.extras.get(ELBV2_KEY) or {}
    groups = sections.get("target_groups") or {}
    lbs = sections.get("load_balancers") or {}
    problems: list[BadInput] = []
    fns = functions(state) if groups else {}
    for tg_id, tg in sorted(groups.items()):
        if tg.target_type != "lambda" or tg.function is None:
            continue
        albs = users(state, tg_id)
        if not albs:
            continue
        fn = fns[tg.function]
        if fn.private_ip is None:
            node = lbs[sorted(albs)[0]].nodes[0]
            try:
                ip = state.addresses.private(node.subnet_id, f"lambda:{fn.logical_id}", None)
            except BadInput as err:
                problems.append(
                    BadInput(
                        f"no address for the lab host of function {fn.logical_id}: {err.message}",
                        logical_id=tg_id,
                        line=tg.source.line if tg.source else None,
                    )
                )
                continue
            fn = replace(fn, subnet_id=node.subnet_id, private_ip=ip)
        fns[fn.logical_id] = replace(fn, target_groups=(*fn.target_groups, tg_id))
        az = state.subnets[fn.subnet_id].az if fn.subnet_id else None
        vpc = state.subnets[fn.subnet_id].vpc_id if fn.subnet_id else ""
        groups[tg_id] = replace(
            tg,
            vpc_id=vpc,
            targets=tuple(replace(t, ip=fn.private_ip, az=az) for t in tg.targets),
        )
    return problems
