"""The Auto Scaling service's readers in a real lab: cgroups, the controller, HAProxy, the
target registry (the service itself only sees testbed.autoscaling.sampling.Readers)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from testbed import asks
from testbed.alb import stats
from testbed.alb.config import node_files
from testbed.autoscaling.sampling import LbRef, Readers, Sampler
from testbed.lab import cgroups
from testbed.lab.port_counters import host_ports, port_hosts
from testbed.messages import PortStats
from testbed.model.elbv2_types import elbv2_sections
from testbed.model.types import StackModel
from testbed.naming import CONTROLLER_SOCK
from testbed.plan.network import NetworkPlan


def lb_dimension(arn: str) -> str:
    """CloudWatch's LoadBalancer dimension of an ARN: "app/NAME/ID" (net/..., gwy/...); a
    Classic Load Balancer's LoadBalancerName ("NAME")."""
    return arn.split(":loadbalancer/", 1)[-1]


def tg_dimension(arn: str) -> str:
    """CloudWatch's TargetGroup dimension of an ARN: "targetgroup/NAME/ID"."""
    return arn.split(":", 5)[-1]


def lb_refs(model: StackModel, plan: NetworkPlan) -> list[LbRef]:
    """Every load balancer of the plan with its CloudWatch dimension values."""
    elb = elbv2_sections(model)
    lbs, tgs = elb["load_balancers"], elb["target_groups"]
    refs = []
    for lb in plan.load_balancers:
        if lb.name not in lbs:
            continue
        refs.append(
            LbRef(
                lb.name,
                lb.type,
                # A Classic Load Balancer's arn ends in loadbalancer/NAME: its LoadBalancerName.
                lb_dimension(lbs[lb.name].arn),
                {
                    tg.name: tg_dimension(tgs[tg.name].arn)
                    for tg in lb.target_groups
                    if tg.name in tgs
                },
                {lis.name: lis.protocol or "TCP" for lis in lb.listeners}
                if lb.type == "classic"
                else {},
            )
        )
    return refs


def lab_sampler(
    lab: str,
    lab_dir: Path,
    model: StackModel,
    get_plan: Callable[[], NetworkPlan],
    targets: Any,
) -> Sampler:
    """A Sampler reading lab `lab` (targets: the holder's LbService, or None)."""
    sock = str(Path(lab_dir) / CONTROLLER_SOCK)
    plan = get_plan()
    sockets = {
        lb.name: [node_files(Path(lab_dir), n.host).stats_socket for n in lb.nodes]
        for lb in plan.load_balancers
        if lb.proxied  # HAProxy nodes: ALB, CLB
    }

    def ports() -> Mapping[str, PortStats]:
        reply = asks.controller_stats(sock, flows=False, timeout=5.0)
        return host_ports(reply, port_hosts(get_plan()))

    def states() -> Mapping[tuple[str, str], list[str]]:
        return targets.target_states() if targets is not None else {}

    readers = Readers(
        cpu_seconds=lambda host: cgroups.cpu_usage_s(lab, host),
        ports=ports,
        alb_rows=lambda lb: stats.read_nodes(sockets.get(lb, [])),
        target_states=states,
    )
    return Sampler(readers, lb_refs(model, plan))
