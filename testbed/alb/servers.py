"""Which servers a proxy node's HAProxy backends hold, and which of them take requests.

Shared by the load balancers whose nodes run HAProxy (testbed.plan.balancers.PROXY_TYPES, and
an NLB's TLS listeners: as the ALB's, for the groups they forward to):

  ALB  one backend per target group, `tg_<TargetGroup>`, servers at each target's port;
       healthy targets take requests, and when none is healthy every registered one does
       (AWS fails open)
  CLB  one backend per listener, `ls_<Listener>`, servers at the listener's InstancePort;
       only healthy (InService) instances take new connections: a CLB never fails open

A server is named after its target's key (testbed.alb.patterns.server_name). The holder keeps
the states (testbed.lb.registry); testbed.alb.config writes them into haproxy.cfg at start and
testbed.alb.runtime applies their changes through HAProxy's runtime API.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from testbed.alb.patterns import server_name
from testbed.messages import RuntimeTargetInfo
from testbed.model.elb_defaults import CLASSIC, NETWORK
from testbed.plan.balancers import ListenerPlan, LoadBalancerPlan, NodePlan, TargetGroupPlan

IN_SERVICE = ("healthy", "initial", "unhealthy")  # registered and not leaving
# A server's runtime state: "ready" takes requests, "maint" none (in-flight ones finish).
READY, MAINT = "ready", "maint"
Key = tuple[str, str]  # (backend, server)
Server = tuple[str, int, str]  # (ip, port, state)


def backend_name(tg: str) -> str:
    """The ALB backend of target group `tg`."""
    return f"tg_{tg}"


def listener_backend(listener: str) -> str:
    """The CLB backend of listener `listener` ("MyCLB-80" -> "ls_MyCLB-80")."""
    return f"ls_{listener}"


def in_scope(lb: LoadBalancerPlan, node: NodePlan, tg: TargetGroupPlan, az: str | None) -> bool:
    """Whether a target in `az` is in the node's backend for `tg` (cross-zone scope)."""
    enabled = {n.az for n in lb.nodes}
    if az != "all" and az not in enabled:
        return False  # Target.NotInUse
    return lb.cross_zone_for(tg) or az in (node.az, "all")


def template_targets(tg: TargetGroupPlan) -> list[RuntimeTargetInfo]:
    """The group's template targets as registry snapshot rows, all still `initial`."""
    return [
        RuntimeTargetInfo(key=t.key, ip=t.ip, port=t.port, az=t.az, state="initial")
        for t in tg.targets
    ]


def server_states(
    lb: LoadBalancerPlan, node: NodePlan, tg: TargetGroupPlan, targets: list[RuntimeTargetInfo]
) -> dict[str, tuple[str, int, str]]:
    """{server name: (ip, port, ready|maint)} of the node's backend for `tg`.

    `targets`: the group's registered targets with their states (registry snapshot rows).
    Healthy targets in scope take requests; when none is healthy, every registered one in
    scope does on an ALB (AWS fails open), none on a CLB. Initial, unhealthy and draining
    targets get none otherwise; draining ones stay as servers so that in-flight requests
    finish.
    """
    scope = [t for t in targets if in_scope(lb, node, tg, t.get("az")) and t["state"] != "unused"]
    serving = [t for t in scope if t["state"] in IN_SERVICE]
    healthy = [t for t in serving if t["state"] == "healthy"]
    live = {t["key"] for t in (healthy if healthy or lb.type == CLASSIC else serving)}
    return {
        server_name(t["key"]): (t["ip"], int(t["port"]), READY if t["key"] in live else MAINT)
        for t in sorted(scope, key=lambda t: t["key"])
    }


def listener_group(lb: LoadBalancerPlan, listener: ListenerPlan) -> TargetGroupPlan | None:
    """The instances behind a CLB listener (the CLB's one group), None if it has none."""
    return next((tg for tg in lb.target_groups if tg.name == listener.target_group), None)


def instance_port(listener: ListenerPlan, tg: TargetGroupPlan) -> int:
    """Where a CLB listener sends its connections on each instance."""
    return listener.instance_port or tg.port


def node_servers(
    lb: LoadBalancerPlan, node: NodePlan, groups: Mapping[str, list[RuntimeTargetInfo]]
) -> dict[Key, Server]:
    """{(backend, server): (ip, port, state)} of every backend of the node.

    groups: {target group: registry snapshot rows}; a group missing there has the
    template's targets, all `initial`."""
    out: dict[Key, Server] = {}
    if lb.type == CLASSIC:
        for listener in lb.listeners:
            tg = listener_group(lb, listener)
            if tg is None:
                continue
            rows = groups[tg.name] if tg.name in groups else template_targets(tg)
            port = instance_port(listener, tg)
            for name, (ip, _port, state) in server_states(lb, node, tg, rows).items():
                out[(listener_backend(listener.name), name)] = (ip, port, state)
        return out
    # An NLB's HAProxy holds only the groups of its node listeners (testbed.alb.nlb_tls).
    used = {lis.target_group for lis in lb.node_listeners} if lb.type == NETWORK else None
    for tg in lb.target_groups:
        if used is not None and tg.name not in used:
            continue
        rows = groups[tg.name] if tg.name in groups else template_targets(tg)
        for name, server in server_states(lb, node, tg, rows).items():
            out[(backend_name(tg.name), name)] = server
    return out


def cookie_backends(lb: LoadBalancerPlan) -> set[str]:
    """The backends whose servers carry a dynamic stickiness cookie (AWSALB, AWSELB): a server
    added at run time needs `enable dynamic-cookie backend` to get its value."""
    if lb.type == CLASSIC:
        return {listener_backend(lis.name) for lis in lb.listeners if lis.sticky == "lb_cookie"}
    return {
        backend_name(tg.name)
        for tg in lb.target_groups
        if tg.attributes.get("stickiness.enabled") == "true"
        and tg.attributes.get("stickiness.type", "lb_cookie") == "lb_cookie"
    }


def proxy_backends(lb: LoadBalancerPlan) -> set[str]:
    """The CLB backends whose servers get a PROXY protocol v1 header (`send-proxy`)."""
    if lb.type != CLASSIC:
        return set()
    return {listener_backend(lis.name) for lis in lb.listeners if lis.proxy_protocol}


def proxy_v2_backends(lb: LoadBalancerPlan) -> set[str]:
    """The NLB backends whose servers get a PROXY protocol v2 header (`send-proxy-v2`): the
    groups with proxy_protocol_v2.enabled."""
    if lb.type != NETWORK:
        return set()
    return {backend_name(tg.name) for tg in lb.target_groups if tg.proxy_protocol_v2}


def cookie_key(lb: LoadBalancerPlan) -> str:
    """The secret of the dynamic stickiness cookies: the same on every node, so either node
    honours a cookie the other set."""
    return hashlib.sha256(f"{lb.name}|{lb.dns_name}".encode()).hexdigest()[:24]
