"""AWS::ElasticLoadBalancingV2::Listener: the port and protocol a load balancer takes traffic
on, and its default action."""

from __future__ import annotations

from testbed.model.elb_defaults import APPLICATION, DEFAULTS, GATEWAY, NETWORK
from testbed.model.elbv2_types import Listener, LoadBalancer
from testbed.model.resources.base import ResourceContext, ResourceType, prop, ref
from testbed.model.resources.elbv2.actions import read_actions
from testbed.model.resources.elbv2.attributes import LISTENER_ATTRIBUTES, read_attributes
from testbed.model.resources.elbv2.common import (
    LISTENER,
    LOAD_BALANCER,
    NOT_IN_LAB,
    NOT_YET,
    choice,
    digest,
    family,
    in_range,
)
from testbed.model.resources.registry import register
from testbed.model.state import BuildState
from testbed.model.types import frozen_map

PROTOCOLS = {NETWORK: ("TCP", "UDP", "TCP_UDP"), APPLICATION: ("HTTP",)}
NO_TLS = {
    "TLS": f"TLS listeners are {NOT_IN_LAB} (it has no TLS)",
    "HTTPS": f"HTTPS listeners are {NOT_YET}",
}
TLS_ONLY = "only TLS and HTTPS listeners have it, and the lab supports neither yet"


def _port_and_protocol(ctx: ResourceContext, lb: LoadBalancer) -> tuple[int | None, str | None]:
    props = ctx.props
    if lb.type == GATEWAY:
        for key in ("Port", "Protocol"):
            if key in props:
                raise ctx.fail(
                    f"a gateway load balancer's listener has no {key}: it takes every IP packet",
                    prop=key,
                    hint=f"leave {key} out",
                )
        return None, None
    for key in ("Protocol", "Port"):
        if key not in props:
            raise ctx.fail(
                f"required property {key} is missing ({lb.type} load balancer "
                "listeners need Port and Protocol)"
            )
    protocol = props["Protocol"]
    if protocol in NO_TLS:
        raise ctx.fail(
            NO_TLS[protocol], prop="Protocol", hint="use TCP" if protocol == "TLS" else "use HTTP"
        )
    choice(
        ctx,
        protocol,
        PROTOCOLS[lb.type],
        f"Protocol of a listener of {lb.type} load balancers",
        ctx.line("Protocol"),
    )
    return in_range(ctx, props["Port"], 1, 65535, "Port", ctx.line("Port")), protocol


def _check_unique(
    ctx: ResourceContext, lb: LoadBalancer, port: int | None, protocol: str | None
) -> None:
    for other in family(ctx.state)["listeners"].values():
        if other.lb_id != lb.logical_id:
            continue
        if lb.type == GATEWAY:
            raise ctx.fail(
                f"gateway load balancer {lb.logical_id} already has listener "
                f"{other.logical_id}; it takes one",
                prop="LoadBalancerArn",
            )
        if other.port == port:
            # NLB ports are unique across protocols: TCP_UDP is how AWS serves both.
            both = {other.protocol, protocol} == {"TCP", "UDP"}
            raise ctx.fail(
                f"load balancer {lb.logical_id} already listens on port {port} "
                f"({other.protocol}, listener {other.logical_id})",
                prop="Port",
                hint="use one TCP_UDP listener for TCP and UDP on one port"
                if both
                else "give each listener its own port",
            )


def _build(ctx: ResourceContext) -> None:
    state, lid = ctx.state, ctx.logical_id
    lb = family(state)["load_balancers"][ctx.props["LoadBalancerArn"]]
    port, protocol = _port_and_protocol(ctx, lb)
    _check_unique(ctx, lb, port, protocol)
    actions = read_actions(ctx, "DefaultActions", lb, protocol)
    attributes, _ = read_attributes(
        ctx,
        "ListenerAttributes",
        LISTENER_ATTRIBUTES[protocol or "GENEVE"],
        f"{protocol or 'gateway'} listener",
    )
    defaults = DEFAULTS[lb.type]
    tcp_idle: int | None = None
    udp_idle: int | None = None
    if lb.type == APPLICATION:
        tcp_idle = int(lb.attributes["idle_timeout.timeout_seconds"])
    else:
        if protocol != "UDP":
            tcp_idle = int(attributes["tcp.idle_timeout.seconds"])
        if protocol != "TCP":
            udp_idle = defaults.udp_idle_timeout_s
    family(state)["listeners"][lid] = Listener(
        lid,
        lb.logical_id,
        port,
        protocol,
        actions,
        lb.arn.replace(":loadbalancer/", ":listener/") + "/" + digest(state, lid, "arn")[:16],
        tcp_idle,
        udp_idle,
        frozen_map(attributes),
        ctx.source,
    )


def _arn(state: BuildState, lid: str) -> str:
    return family(state)["listeners"][lid].arn


register(
    ResourceType(
        LISTENER,
        _build,
        properties={
            "LoadBalancerArn": ref(LOAD_BALANCER, required=True),
            "Port": prop("integer"),
            "Protocol": prop("string"),
            "DefaultActions": prop("list", required=True),
            "ListenerAttributes": prop("list"),
        },
        unsupported={
            "SslPolicy": TLS_ONLY,
            "Certificates": TLS_ONLY,
            "AlpnPolicy": TLS_ONLY,
            "MutualAuthentication": TLS_ONLY,
        },
        ref_value=_arn,
        attributes={"ListenerArn": _arn},
    )
)
