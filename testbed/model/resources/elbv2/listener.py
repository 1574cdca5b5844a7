"""AWS::ElasticLoadBalancingV2::Listener: the port and protocol a load balancer takes traffic
on, and its default action."""

from __future__ import annotations

from typing import Any

from testbed.model import ssl_policies
from testbed.model.elb_defaults import ALPN_POLICIES, APPLICATION, DEFAULTS, GATEWAY, NETWORK
from testbed.model.elbv2_types import Listener, LoadBalancer
from testbed.model.resources.acm import certificate_arn_problem
from testbed.model.resources.base import ResourceContext, ResourceType, prop, ref
from testbed.model.resources.elbv2.actions import read_actions
from testbed.model.resources.elbv2.attributes import LISTENER_ATTRIBUTES, read_attributes
from testbed.model.resources.elbv2.common import (
    LISTENER,
    LOAD_BALANCER,
    NOT_IN_LAB,
    choice,
    digest,
    family,
    in_range,
    items,
    nested,
)
from testbed.model.resources.registry import register
from testbed.model.state import BuildState
from testbed.model.types import frozen_map

PROTOCOLS = {NETWORK: ("TCP", "UDP", "TCP_UDP", "TLS"), APPLICATION: ("HTTP", "HTTPS")}
SECURE = ("HTTPS", "TLS")


def certificate_arns(ctx: ResourceContext, prop_name: str) -> tuple[str, ...]:
    """The CertificateArn of each item of a Certificates list (Listener, ListenerCertificate)."""
    if not isinstance(ctx.props[prop_name], list):
        raise ctx.fail(f"{prop_name} must be a list of {{CertificateArn: ...}}", prop=prop_name)
    found: list[str] = []
    for item, line, where in items(ctx, prop_name):
        values, lines = nested(ctx, item, where, line, {"CertificateArn": prop("string")})
        arn = values.get("CertificateArn")
        if not arn:
            raise ctx.fail(f"{where} needs CertificateArn", line=line)
        problem = certificate_arn_problem(str(arn), ctx.state.region)
        if problem:
            raise ctx.fail(
                f"{where}.CertificateArn: {problem}",
                line=lines.get("CertificateArn", line),
                hint="use !Ref of an AWS::CertificateManager::Certificate or an "
                "arn:aws:acm:<region>:<account>:certificate/<id>",
            )
        if arn in found:
            raise ctx.fail(f"{where}: certificate {arn} is listed twice", line=line)
        found.append(str(arn))
    return tuple(found)


def _tls(ctx: ResourceContext, lb: LoadBalancer, protocol: str | None) -> dict[str, Any]:
    """certificates and ssl_policy of an HTTPS listener; refusals of TLS-only properties on
    other listeners."""
    props = ctx.props
    if protocol not in SECURE:
        for key in ("Certificates", "SslPolicy", "AlpnPolicy", "MutualAuthentication"):
            if key in props:
                raise ctx.fail(
                    f"{key} is only for HTTPS and TLS listeners, not {protocol or 'gateway'} ones",
                    prop=key,
                    hint=f"leave {key} out, or use Protocol: "
                    f"{'HTTPS' if lb.type == APPLICATION else 'TLS'}",
                )
        return {}
    if "AlpnPolicy" in props and protocol == "HTTPS":
        raise ctx.fail(
            "AlpnPolicy is only for TLS listeners of network load balancers",
            prop="AlpnPolicy",
            hint="leave it out: an ALB offers HTTP/2 by routing.http2.enabled",
        )
    if "MutualAuthentication" in props:
        mode = props["MutualAuthentication"]
        if not (isinstance(mode, dict) and mode.get("Mode", "off") == "off"):
            raise ctx.fail(
                f"mutual TLS authentication is {NOT_IN_LAB}",
                prop="MutualAuthentication",
                hint="leave MutualAuthentication out",
            )
    if "Certificates" not in props:
        raise ctx.fail(
            f"{'an' if protocol == 'HTTPS' else 'a'} {protocol} listener needs a certificate: "
            "Certificates is missing",
            hint="add Certificates: [{CertificateArn: !Ref MyCertificate}]",
        )
    certificates = certificate_arns(ctx, "Certificates")
    if len(certificates) != 1:
        raise ctx.fail(
            f"Certificates of a listener takes exactly one certificate (the default one), "
            f"not {len(certificates)}",
            prop="Certificates",
            hint="add the others with AWS::ElasticLoadBalancingV2::ListenerCertificate",
        )
    name = str(props.get("SslPolicy", ssl_policies.DEFAULT_POLICY))
    found = ssl_policies.POLICIES.get(name)
    if found is None or lb.type not in found.load_balancers:
        raise ctx.fail(
            f"SslPolicy: {ssl_policies.unknown_message(name, lb.type)}",
            prop="SslPolicy",
        )
    tls: dict[str, Any] = {"certificates": certificates, "ssl_policy": name}
    if "AlpnPolicy" in props:
        tls["alpn_policy"] = _alpn(ctx)
    return tls


def _alpn(ctx: ResourceContext) -> str | None:
    """The AlpnPolicy name of a TLS listener (a list of one name); None for "None"."""
    value = ctx.props["AlpnPolicy"]
    names = ", ".join((*ALPN_POLICIES, "None"))
    if not (isinstance(value, list) and len(value) == 1 and isinstance(value[0], str)):
        raise ctx.fail(
            "AlpnPolicy takes a list of one policy name",
            prop="AlpnPolicy",
            hint=f"e.g. AlpnPolicy: [HTTP2Preferred]; the names: {names}",
        )
    choice(ctx, value[0], (*ALPN_POLICIES, "None"), "AlpnPolicy", ctx.line("AlpnPolicy"))
    return None if value[0] == "None" else value[0]


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
    tls = _tls(ctx, lb, protocol)
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
        **tls,
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
            "Certificates": prop("list"),
            "SslPolicy": prop("string"),
            "AlpnPolicy": prop("list"),
            "MutualAuthentication": prop("map"),
        },
        ref_value=_arn,
        attributes={"ListenerArn": _arn},
    )
)
