"""Load balancers in the network plan: nodes (lab hosts), listeners, target groups, zones.

Built from the model's ELBv2 objects (StackModel.extras["elbv2"]); read by the controller
(flows), the holder (target health) and the lab's DNS. Conntrack zones come from a small
per-lab block so that labs running at once never share a zone (conntrack is machine-wide).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from testbed.model.elbv2_types import elbv2_sections

# Load balancer types whose nodes are proxies (HAProxy, testbed.alb): the ALB and the Classic
# Load Balancer. Their nodes answer on their own addresses; the controller programs no flows.
PROXY_TYPES = ("application", "classic")
NLB_IDLE_TCP_S = 350
NLB_IDLE_UDP_S = 120
ZONES_PER_LB = 2  # DNAT (client -> target) and SNAT (when the client IP is not preserved)
# OpenFlow port of the k-th GWLB node's GENEVE port (k = 0, 1, ... over the lab's GWLB nodes
# in plan order) on its switch, when OVS steers the GWLB's traffic (testbed.plan.gwlb_datapath).
GENEVE_OFPORT_BASE = 64000


@dataclass(frozen=True)
class TargetPlan:
    key: str  # "<id>:<port>", unique within its target group
    id: str  # instance logical id, or the IP for ip targets
    ip: str
    port: int
    az: str | None
    host: str | None  # lab host of an instance target


@dataclass(frozen=True)
class HealthPlan:
    enabled: bool
    protocol: str  # TCP | HTTP | HTTPS
    port: int | None  # None: the traffic port
    path: str
    interval_s: float
    timeout_s: float
    healthy_threshold: int
    unhealthy_threshold: int
    matcher: str


@dataclass(frozen=True)
class TargetGroupPlan:
    name: str
    protocol: str
    port: int
    target_type: str
    targets: tuple[TargetPlan, ...]
    health: HealthPlan
    preserve_client_ip: bool
    stickiness: str  # "5-tuple" | "source_ip" | GWLB/ALB kinds
    cross_zone: str  # "true" | "false" | "use_load_balancer_configuration"
    deregistration_delay_s: float  # in the lab's time (Metadata.Lab.TimeScale applied)
    attributes: dict[str, str] = field(default_factory=dict)

    def target(self, key: str) -> TargetPlan:
        return next(t for t in self.targets if t.key == key)

    @property
    def proxy_protocol_v2(self) -> bool:
        """An NLB group whose targets get a PROXY protocol v2 header on each connection."""
        return self.attributes.get("proxy_protocol_v2.enabled") == "true"


@dataclass(frozen=True)
class NodePlan:
    host: str  # the lab host that carries the node's address
    az: str
    subnet: str
    ip: str
    public_ip: str | None
    # GWLB node whose traffic OVS steers (NetworkPlan.gwlb_datapath "switch"): the OpenFlow
    # port of its GENEVE port on its host's switch. None: no such port (the node datapath,
    # and every node of other load balancer types). Left out of plan.json when None.
    tunnel_port: int | None = None


@dataclass(frozen=True)
class ConditionPlan:
    """One ALB rule condition (testbed.model.elbv2_types.Condition)."""

    field: str  # path-pattern | host-header | http-header | http-request-method |
    #             query-string | source-ip
    values: tuple[str, ...]
    key: str | None = None  # the header name of an http-header condition
    pairs: tuple[tuple[str | None, str], ...] = ()  # query-string: (key or None, value)


@dataclass(frozen=True)
class RulePlan:
    """One ALB listener rule: every condition must match; tried by priority, lowest first."""

    name: str
    priority: int
    conditions: tuple[ConditionPlan, ...]
    actions: tuple[dict[str, Any], ...]  # as ListenerPlan.default_actions


@dataclass(frozen=True)
class ListenerPlan:
    name: str
    port: int | None
    protocol: str | None  # TCP | UDP | TCP_UDP | HTTP | None (gateway)
    target_group: str | None  # the forward target of NLB/GWLB listeners
    default_actions: tuple[dict[str, Any], ...] = ()
    rules: tuple[RulePlan, ...] = ()  # ALB: by priority, lowest first
    # Classic Load Balancer listeners (testbed.model.elbv2_types.Listener has the meaning):
    # the backend's servers are the group's targets at instance_port.
    instance_port: int | None = None
    instance_protocol: str | None = None  # HTTP | TCP
    proxy_protocol: bool = False  # PROXY protocol v1 header to the instance
    sticky: str | None = None  # lb_cookie | app_cookie
    sticky_cookie: str | None = None
    sticky_expiration_s: int | None = None
    idle_timeout_s: int | None = None  # the CLB's ConnectionSettings.IdleTimeout
    # TLS listeners (as testbed.model.elbv2_types.Listener); left out of plan.json at these
    # defaults (LISTENER_DEFAULTS), so plans without TLS are written as before.
    certificates: tuple[str, ...] = ()
    ssl_policy: str | None = None
    alpn_policy: str | None = None


# ListenerPlan fields written to plan.json only when they differ from these defaults.
LISTENER_DEFAULTS: dict[str, Any] = {"certificates": [], "ssl_policy": None, "alpn_policy": None}


def drop_listener_defaults(listener: dict[str, Any]) -> None:
    """Remove the TLS fields at their defaults from a listener's plan.json dict."""
    for key, default in LISTENER_DEFAULTS.items():
        if key in listener and listener[key] in (default, ()):
            del listener[key]


@dataclass(frozen=True)
class LoadBalancerPlan:
    name: str
    type: str  # network | application | gateway
    scheme: str | None
    dns_name: str
    cross_zone: bool
    nodes: tuple[NodePlan, ...]
    listeners: tuple[ListenerPlan, ...]
    target_groups: tuple[TargetGroupPlan, ...]
    index: int  # 1, 2, ... within the lab
    zone_dnat: int  # conntrack zone of the client side (its ct_label: the target)
    zone_snat: int  # of the target side (its ct_label: the node; SNAT when not preserving)
    idle_tcp_s: int = NLB_IDLE_TCP_S
    idle_udp_s: int = NLB_IDLE_UDP_S
    attributes: dict[str, str] = field(default_factory=dict)

    def target_group(self, name: str) -> TargetGroupPlan:
        return next(tg for tg in self.target_groups if tg.name == name)

    @property
    def proxied(self) -> bool:
        """HAProxy nodes (ALB, CLB) rather than flows in the switches (NLB, GWLB)."""
        return self.type in PROXY_TYPES

    @property
    def tls_listeners(self) -> tuple[ListenerPlan, ...]:
        """An NLB's TLS listeners: they end TLS in HAProxy on the node (testbed.alb.nlb_tls);
        the switches carry only its TCP and UDP listeners."""
        if self.type != "network":
            return ()
        return tuple(lis for lis in self.listeners if lis.protocol == "TLS")

    @property
    def node_listeners(self) -> tuple[ListenerPlan, ...]:
        """An NLB's listeners that run in HAProxy on its nodes (testbed.alb.nlb_tls) rather
        than in the switches' flows: its TLS listeners, and its TCP listeners that forward to a
        group with proxy protocol v2 (a header written into the stream needs a process)."""
        if self.type != "network":
            return ()
        groups = {tg.name: tg for tg in self.target_groups}
        return tuple(
            lis
            for lis in self.listeners
            if lis.protocol == "TLS"
            or (
                lis.protocol == "TCP"
                and lis.target_group in groups
                and groups[lis.target_group].proxy_protocol_v2
            )
        )

    @property
    def transparent_groups(self) -> tuple[TargetGroupPlan, ...]:
        """Target groups a node listener (TLS, or TCP with proxy protocol v2) forwards to with
        the client address preserved (preserve_client_ip.enabled: AWS's default for instance
        targets). The node's HAProxy connects to their targets from the client's address
        (transparent proxying), so the node sends from addresses not its own and the switches
        steer the targets' replies back to it (testbed.controllers.nlb)."""
        names = {lis.target_group for lis in self.node_listeners if lis.target_group}
        return tuple(tg for tg in self.target_groups if tg.name in names and tg.preserve_client_ip)

    @property
    def runs_haproxy(self) -> bool:
        """Whether its nodes run HAProxy: ALB and CLB nodes, and NLB nodes with node listeners
        (TLS, or TCP to a proxy protocol v2 group)."""
        return self.proxied or bool(self.node_listeners)

    def node_in(self, az: str) -> NodePlan | None:
        return next((n for n in self.nodes if n.az == az), None)

    def cross_zone_for(self, tg: TargetGroupPlan) -> bool:
        """The target group's override, else the load balancer's setting."""
        if tg.cross_zone in ("true", "false"):
            return tg.cross_zone == "true"
        return self.cross_zone

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LoadBalancerPlan:
        d = dict(d)
        d["nodes"] = tuple(NodePlan(**n) for n in d["nodes"])
        d["listeners"] = tuple(
            ListenerPlan(
                **{
                    **ls,
                    "default_actions": tuple(ls.get("default_actions", ())),
                    "rules": tuple(_rule_from_dict(r) for r in ls.get("rules", ())),
                    "certificates": tuple(ls.get("certificates", ())),
                }
            )
            for ls in d["listeners"]
        )
        tgs = []
        for tg in d["target_groups"]:
            tg = dict(tg)
            tg["targets"] = tuple(TargetPlan(**t) for t in tg["targets"])
            tg["health"] = HealthPlan(**tg["health"])
            tgs.append(TargetGroupPlan(**tg))
        d["target_groups"] = tuple(tgs)
        return cls(**d)


def _rule_from_dict(d: dict[str, Any]) -> RulePlan:
    conditions = tuple(
        ConditionPlan(
            c["field"],
            tuple(c["values"]),
            c.get("key"),
            tuple((k, v) for k, v in c.get("pairs", ())),
        )
        for c in d["conditions"]
    )
    return RulePlan(d["name"], int(d["priority"]), conditions, tuple(d["actions"]))


def stickiness_of(tg: Any) -> str:
    """The hash key a target group's flows use (NLB/GWLB)."""
    kind = (tg.stickiness_type or "").lower() if tg.stickiness_enabled else ""
    if kind in ("source_ip", "source_ip_dest_ip", "source_ip_dest_ip_proto"):
        return kind
    return "5-tuple"


def build_lb_plans(model: Any, zone_base: int) -> tuple[LoadBalancerPlan, ...]:
    """LoadBalancerPlans from the model's ELBv2 objects; zones from zone_base upward.

    Health-check intervals and timeouts and deregistration delays are in the lab's time: the
    template's (AWS's) seconds divided by Metadata.Lab.TimeScale, as Auto Scaling's are."""
    scale = float(getattr(getattr(model, "lab", None), "time_scale", 1.0) or 1.0)
    elb = elbv2_sections(model)
    lbs = elb.get("load_balancers", {})
    tgs = elb.get("target_groups", {})
    listeners = elb.get("listeners", {})
    plans = []
    for index, (lb_id, lb) in enumerate(sorted(lbs.items()), start=1):
        my_listeners = sorted(
            (lis for lis in listeners.values() if lis.lb_id == lb_id),
            key=lambda lis: (lis.port or 0, lis.protocol or ""),
        )
        used_tgs: list[str] = []
        listener_plans = []
        all_rules = elb.get("listener_rules", {}).values()
        for lis in my_listeners:
            forward = next((a for a in lis.default_actions if a.type == "forward"), None)
            tg_name = forward.target_groups[0][0] if forward and forward.target_groups else None
            for a in lis.default_actions:
                for tg_id, _w in a.target_groups:
                    if tg_id not in used_tgs:
                        used_tgs.append(tg_id)
            rules = sorted(
                (r for r in all_rules if r.listener_id == lis.logical_id), key=lambda r: r.priority
            )
            listener_plans.append(
                ListenerPlan(
                    lis.logical_id,
                    lis.port,
                    lis.protocol,
                    tg_name,
                    tuple(_action_dict(a) for a in lis.default_actions),
                    tuple(_rule_plan(r) for r in rules),
                    instance_port=getattr(lis, "instance_port", None),
                    instance_protocol=getattr(lis, "instance_protocol", None),
                    proxy_protocol=bool(getattr(lis, "proxy_protocol", False)),
                    sticky=getattr(lis, "sticky", None),
                    sticky_cookie=getattr(lis, "sticky_cookie", None),
                    sticky_expiration_s=getattr(lis, "sticky_expiration_s", None),
                    idle_timeout_s=lis.tcp_idle_timeout_s if lb.type == "classic" else None,
                    certificates=tuple(getattr(lis, "certificates", ())),
                    ssl_policy=getattr(lis, "ssl_policy", None),
                    alpn_policy=getattr(lis, "alpn_policy", None),
                )
            )
        for rule in all_rules:
            if any(lis.logical_id == rule.listener_id for lis in my_listeners):
                for a in rule.actions:
                    for tg_id, _w in a.target_groups:
                        if tg_id not in used_tgs:
                            used_tgs.append(tg_id)
        idle_tcp = [lis.tcp_idle_timeout_s for lis in my_listeners if lis.tcp_idle_timeout_s]
        idle_udp = [lis.udp_idle_timeout_s for lis in my_listeners if lis.udp_idle_timeout_s]
        plans.append(
            LoadBalancerPlan(
                name=lb_id,
                type=lb.type,
                scheme=lb.scheme,
                dns_name=lb.dns_name,
                cross_zone=bool(lb.cross_zone),
                nodes=tuple(
                    NodePlan(
                        n.name,
                        n.az,
                        n.subnet_id,
                        str(n.private_ip),
                        str(n.public_ip) if n.public_ip else None,
                    )
                    for n in lb.nodes
                ),
                listeners=tuple(listener_plans),
                target_groups=tuple(_tg_plan(tgs[t], scale, lbs) for t in used_tgs),
                index=index,
                zone_dnat=zone_base + ZONES_PER_LB * (index - 1),
                zone_snat=zone_base + ZONES_PER_LB * (index - 1) + 1,
                # One conntrack zone per LB: its timeouts are the longest any listener asks for.
                idle_tcp_s=max(idle_tcp, default=NLB_IDLE_TCP_S),
                idle_udp_s=max(idle_udp, default=NLB_IDLE_UDP_S),
                attributes=dict(lb.attributes),
            )
        )
    return tuple(plans)


def _rule_plan(rule: Any) -> RulePlan:
    return RulePlan(
        rule.logical_id,
        rule.priority,
        tuple(
            ConditionPlan(c.field, tuple(c.values), c.key, tuple(c.pairs)) for c in rule.conditions
        ),
        tuple(_action_dict(a) for a in rule.actions),
    )


def _action_dict(a: Any) -> dict[str, Any]:
    return {
        "type": a.type,
        "order": a.order,
        "target_groups": [list(x) for x in a.target_groups],
        "group_stickiness_s": a.group_stickiness_s,
        "redirect": dict(a.redirect) if a.redirect else None,
        "fixed_response": dict(a.fixed_response) if a.fixed_response else None,
    }


def alb_node_targets(
    alb: str, nodes: Iterable[tuple[str, str, str]], port: int
) -> tuple[TargetPlan, ...]:
    """An alb target (an ALB behind an NLB) as the NLB reaches it: one target per ALB node
    (host, address, AZ): a lab host with an address, like an ip target. Keyed by the node's
    host, its Id the ALB's logical id (what `testbed register` takes)."""
    return tuple(TargetPlan(f"{host}:{port}", alb, ip, port, az, host) for host, ip, az in nodes)


def _tg_plan(tg: Any, scale: float = 1.0, lbs: Any = None) -> TargetGroupPlan:
    hc = tg.health_check
    targets: list[TargetPlan] = []
    for t in tg.targets:
        if getattr(t, "load_balancer", None):
            nodes = lbs[t.load_balancer].nodes
            targets += alb_node_targets(
                t.load_balancer, ((n.name, str(n.private_ip), n.az) for n in nodes), t.port
            )
        else:
            # Keyed by the instance's logical id (what `testbed register` takes), else the IP.
            targets.append(
                TargetPlan(
                    f"{t.instance or t.id}:{t.port}", t.id, str(t.ip), t.port, t.az, t.instance
                )
            )
    return TargetGroupPlan(
        name=tg.logical_id,
        protocol=tg.protocol,
        port=tg.port,
        target_type=tg.target_type,
        targets=tuple(targets),
        health=HealthPlan(
            hc.enabled,
            hc.protocol,
            hc.port,
            hc.path,
            hc.interval_s / scale,
            scaled_timeout(hc.timeout_s, scale),
            hc.healthy_threshold,
            hc.unhealthy_threshold,
            hc.matcher,
        ),
        preserve_client_ip=bool(tg.preserve_client_ip),
        stickiness=stickiness_of(tg),
        cross_zone=str(tg.cross_zone),
        deregistration_delay_s=_seconds(tg.deregistration_delay_s / scale),
        attributes=dict(tg.attributes),
    )


# A health check's answer takes what it takes on a busy machine, whatever the time scale: a
# scaled timeout below this would fail healthy targets (10x of AWS's 5 s is 0.5 s). The
# checker never overlaps two checks of one target, so a timeout above the interval is safe.
TIMEOUT_FLOOR_S = 2.0


def scaled_timeout(timeout_s: float, scale: float) -> float:
    """A health check's timeout in the lab's time: divided by the scale, but never below
    TIMEOUT_FLOOR_S (nor above the template's own timeout)."""
    return _seconds(max(timeout_s / scale, min(timeout_s, TIMEOUT_FLOOR_S)))


def _seconds(value: float) -> float:
    """A duration as an int when it is whole (plans and events read "300", not "300.0")."""
    return int(value) if float(value).is_integer() else value
