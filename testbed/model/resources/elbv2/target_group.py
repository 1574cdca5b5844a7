"""AWS::ElasticLoadBalancingV2::TargetGroup: protocol, port, targets, health check, attributes.

The protocol decides which load balancer type may use the group (HTTP: application; TCP, UDP,
TCP_UDP, TLS: network; GENEVE: gateway) and so which defaults and attributes apply; listeners and
rules check that they forward to groups of their type.
"""

from __future__ import annotations

import re

from testbed.errors import BadInput
from testbed.model.elb_defaults import (
    APPLICATION,
    DEFAULTS,
    GATEWAY,
    GENEVE_PORT,
    NETWORK,
    lb_type_of_protocol,
    preserve_client_ip_default,
)
from testbed.model.elbv2_types import TargetGroup
from testbed.model.resources.base import ResourceContext, ResourceType, prop, ref
from testbed.model.resources.ec2 import VPC
from testbed.model.resources.elbv2 import health_check, lambda_group
from testbed.model.resources.elbv2.attributes import read_attributes
from testbed.model.resources.elbv2.common import (
    LISTENER,
    LISTENER_RULE,
    NOT_IN_LAB,
    TARGET_GROUP,
    arn,
    check_name,
    choice,
    digest,
    family,
    in_range,
    unique_name,
)
from testbed.model.resources.elbv2.targets import read_targets
from testbed.model.resources.registry import register
from testbed.model.state import BuildState
from testbed.model.types import frozen_map

PROTOCOLS = ("TCP", "UDP", "TCP_UDP", "TLS", "HTTP", "HTTPS", "GENEVE")
RESERVED_COOKIES = ("AWSALB", "AWSALBAPP", "AWSALBTG")
COOKIE_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}$")  # an HTTP token


def _target_type(ctx: ResourceContext) -> str:
    target_type = ctx.props.get("TargetType", "instance")
    return choice(
        ctx, target_type, ("instance", "ip", "lambda", "alb"), "TargetType", ctx.line("TargetType")
    )


def _protocol_and_port(ctx: ResourceContext) -> tuple[str, int]:
    for key in ("Protocol", "Port", "VpcId"):
        if key not in ctx.props:
            raise ctx.fail(
                f"required property {key} is missing (instance and ip target "
                "groups need Protocol, Port and VpcId)"
            )
    protocol = ctx.props["Protocol"]
    choice(ctx, protocol, PROTOCOLS, "Protocol", ctx.line("Protocol"))
    port = in_range(ctx, ctx.props["Port"], 1, 65535, "Port", ctx.line("Port"))
    if protocol == "GENEVE" and port != GENEVE_PORT:
        raise ctx.fail(
            f"a GENEVE target group must use port {GENEVE_PORT}, not {port}", prop="Port"
        )
    return protocol, port


def _check_versions(ctx: ResourceContext, protocol: str) -> None:
    version = ctx.props.get("ProtocolVersion")
    if version is not None:
        if protocol not in ("HTTP", "HTTPS"):
            raise ctx.fail(
                f"ProtocolVersion is only for HTTP and HTTPS target groups, not {protocol}",
                prop="ProtocolVersion",
            )
        if version in ("HTTP2", "GRPC"):
            raise ctx.fail(
                f"ProtocolVersion {version} is {NOT_IN_LAB}",
                prop="ProtocolVersion",
                hint="use HTTP1 (the default)",
            )
        choice(ctx, version, ("HTTP1",), "ProtocolVersion", ctx.line("ProtocolVersion"))
    address_type = ctx.props.get("IpAddressType", "ipv4")
    if address_type == "ipv6":
        raise ctx.fail(f"IPv6 target groups are {NOT_IN_LAB}", prop="IpAddressType")
    choice(ctx, address_type, ("ipv4",), "IpAddressType", ctx.line("IpAddressType"))


class _AttributeRules:
    """The rules that tie a target group's attributes together, per LB type."""

    def __init__(
        self,
        ctx: ResourceContext,
        protocol: str,
        attrs: dict[str, str],
        lines: dict[str, int | None],
    ) -> None:
        self.ctx, self.protocol, self.attrs, self.lines = ctx, protocol, attrs, lines

    def fail(self, key: str, message: str, hint: str | None = None) -> BadInput:
        """An error at the attribute's line (the list's when the default is at fault)."""
        line = self.lines.get(key, self.ctx.line("TargetGroupAttributes"))
        return self.ctx.fail(message, line=line, hint=hint)

    def check(self, lb_type: str, target_type: str) -> None:
        """Check every rule of `lb_type`; fills preserve_client_ip.enabled's default."""
        attrs = self.attrs
        allowed = DEFAULTS[lb_type].stickiness_types
        if attrs["stickiness.type"] not in allowed:
            raise self.fail(
                "stickiness.type",
                f"stickiness.type of a {self.protocol} target "
                f"group must be one of {', '.join(allowed)}, not "
                f"{attrs['stickiness.type']!r}",
            )
        if lb_type == NETWORK:
            self.network(target_type)
        elif lb_type == APPLICATION:
            self.application()
        else:
            self.gateway()

    def network(self, target_type: str) -> None:
        attrs, key = self.attrs, "preserve_client_ip.enabled"
        if target_type == "alb":
            self.alb()
        if key not in self.lines:
            attrs[key] = str(preserve_client_ip_default(self.protocol, target_type)).lower()
        elif attrs[key] == "false" and self.protocol in ("UDP", "TCP_UDP"):
            raise self.fail(
                key,
                f"client IP preservation cannot be turned off for {self.protocol} target groups",
            )
        if attrs["proxy_protocol_v2.enabled"] == "true" and self.protocol in ("UDP", "TCP_UDP"):
            # AWS: proxy protocol v2 is for TCP and TLS target groups only.
            raise self.fail(
                "proxy_protocol_v2.enabled",
                f"proxy protocol v2 is for TCP and TLS target groups, not {self.protocol} ones",
            )
        if (
            attrs["target_health_state.unhealthy.connection_termination.enabled"] == "true"
            and attrs["target_health_state.unhealthy.draining_interval_seconds"] != "0"
        ):
            raise self.fail(
                "target_health_state.unhealthy.draining_interval_seconds",
                "a draining interval needs target_health_state.unhealthy."
                "connection_termination.enabled false",
            )

    def alb(self) -> None:
        """An alb group: the lab always keeps the client's address (AWS's default for alb
        groups), and AWS takes no proxy protocol header to an ALB."""
        key = "preserve_client_ip.enabled"
        if self.attrs.get(key) == "false" and key in self.lines:
            raise self.fail(
                key,
                f"client IP preservation cannot be turned off for alb target groups "
                f"({NOT_IN_LAB}): the ALB sees each client's address",
                hint="leave preserve_client_ip.enabled out",
            )
        if self.attrs["proxy_protocol_v2.enabled"] == "true":
            raise self.fail(
                "proxy_protocol_v2.enabled",
                "proxy protocol v2 is not for alb target groups: an ALB takes no proxy "
                "protocol header",
            )

    def application(self) -> None:
        attrs = self.attrs
        slow_start = int(attrs["slow_start.duration_seconds"])
        if 0 < slow_start < 30:
            raise self.fail(
                "slow_start.duration_seconds",
                f"slow_start.duration_seconds must be 0 (off) or from 30 to 900, not {slow_start}",
            )
        if (
            attrs["load_balancing.algorithm.anomaly_mitigation"] == "on"
            and attrs["load_balancing.algorithm.type"] != "weighted_random"
        ):
            raise self.fail(
                "load_balancing.algorithm.anomaly_mitigation",
                "anomaly mitigation needs load_balancing.algorithm.type weighted_random",
            )
        key = "stickiness.app_cookie.cookie_name"
        cookie = attrs[key]
        if cookie and not COOKIE_NAME.match(cookie):
            raise self.fail(key, f"cookie name {cookie!r} has characters a cookie name cannot have")
        if cookie.upper().startswith(RESERVED_COOKIES):
            raise self.fail(
                key,
                f"cookie name {cookie!r} is reserved: names starting AWSALB, "
                "AWSALBAPP or AWSALBTG belong to the load balancer",
            )
        if (
            attrs["stickiness.enabled"] == "true"
            and attrs["stickiness.type"] == "app_cookie"
            and not cookie
        ):
            raise self.fail(
                "stickiness.type",
                "app_cookie stickiness needs "
                "stickiness.app_cookie.cookie_name, the application's cookie",
            )

    def gateway(self) -> None:
        on_dereg = self.attrs["target_failover.on_deregistration"]
        on_unhealthy = self.attrs["target_failover.on_unhealthy"]
        if on_dereg != on_unhealthy:
            key = (
                "target_failover.on_unhealthy"
                if "target_failover.on_unhealthy" in self.lines
                else "target_failover.on_deregistration"
            )
            raise self.fail(
                key,
                f"target_failover.on_deregistration ({on_dereg}) and "
                f"target_failover.on_unhealthy ({on_unhealthy}) must be the "
                "same",
                hint="set both to rebalance or both to no_rebalance",
            )


def _build(ctx: ResourceContext) -> None:
    state, lid, props = ctx.state, ctx.logical_id, ctx.props
    target_type = _target_type(ctx)
    if target_type == "lambda":
        name = check_name(ctx, "target group")
        unique_name(ctx, name, "target_groups", "target group")
        family(state)["target_groups"][lid] = lambda_group.build(ctx, name)
        return
    protocol, port = _protocol_and_port(ctx)
    _check_versions(ctx, protocol)
    if target_type == "alb" and protocol != "TCP":
        raise ctx.fail(
            f"a target group of TargetType alb must use Protocol TCP, not {protocol} "
            "(AWS: an ALB behind a network load balancer takes TCP)",
            prop="Protocol",
        )
    lb_type = lb_type_of_protocol(protocol)
    name = check_name(ctx, "target group")
    unique_name(ctx, name, "target_groups", "target group")
    check = health_check.health_check(ctx, lb_type, protocol, target_type)
    vpc_id = props["VpcId"]
    targets = read_targets(ctx, target_type, protocol, port, vpc_id)
    attrs, lines = read_attributes(
        ctx,
        "TargetGroupAttributes",
        DEFAULTS[lb_type].tg_attributes,
        f"{protocol} target group",
        "tg_attributes",
    )
    _AttributeRules(ctx, protocol, attrs, lines).check(lb_type, target_type)
    sticky = attrs["stickiness.enabled"] == "true"
    sticky_type = attrs["stickiness.type"] if sticky else None
    duration = None
    if lb_type == APPLICATION and sticky:
        cookie = "lb_cookie" if sticky_type == "lb_cookie" else "app_cookie"
        duration = int(attrs[f"stickiness.{cookie}.duration_seconds"])
    preserve = {APPLICATION: False, GATEWAY: True}.get(
        lb_type, attrs.get("preserve_client_ip.enabled") == "true"
    )
    tag = digest(state, lid, "arn")[:16]
    family(state)["target_groups"][lid] = TargetGroup(
        logical_id=lid,
        name=name,
        protocol=protocol,
        port=port,
        target_type=target_type,
        vpc_id=vpc_id,
        targets=targets,
        health_check=check,
        attributes=frozen_map(attrs),
        deregistration_delay_s=int(attrs["deregistration_delay.timeout_seconds"]),
        preserve_client_ip=preserve,
        stickiness_enabled=sticky,
        stickiness_type=sticky_type,
        cross_zone=attrs.get(
            "load_balancing.cross_zone.enabled", "use_load_balancer_configuration"
        ),
        algorithm=attrs.get("load_balancing.algorithm.type"),
        arn=arn(state, f"targetgroup/{name}/{tag}"),
        source=ctx.source,
        lb_type=lb_type,
        stickiness_duration_s=duration,
        target_failover=attrs.get("target_failover.on_deregistration"),
    )


def users(state: BuildState, tg_id: str) -> list[str]:
    """The load balancers whose listeners or rules forward to a target group."""
    sections = family(state)
    found: list[str] = []
    for listener in sections["listeners"].values():
        actions = list(listener.default_actions)
        actions += [
            a
            for rule in sections["listener_rules"].values()
            if rule.listener_id == listener.logical_id
            for a in rule.actions
        ]
        if (
            any(tg == tg_id for a in actions for tg, _ in a.target_groups)
            and listener.lb_id not in found
        ):
            found.append(listener.lb_id)
    return found


def _tg(state: BuildState, lid: str) -> TargetGroup:
    return family(state)["target_groups"][lid]


register(
    ResourceType(
        TARGET_GROUP,
        _build,
        properties={
            "Name": prop("string"),
            "Protocol": prop("string"),
            "Port": prop("integer"),
            "ProtocolVersion": prop("string"),
            "TargetType": prop("string"),
            "VpcId": ref(VPC),
            "Targets": prop("list"),
            "TargetGroupAttributes": prop("list"),
            "IpAddressType": prop("string"),
            **health_check.PROPERTIES,
        },
        ref_value=lambda s, lid: _tg(s, lid).arn,
        attributes={
            "TargetGroupArn": lambda s, lid: _tg(s, lid).arn,
            "TargetGroupName": lambda s, lid: _tg(s, lid).name,
            "TargetGroupFullName": lambda s, lid: _tg(s, lid).arn.split(":", 5)[5],
            "LoadBalancerArns": lambda s, lid: [
                family(s)["load_balancers"][lb].arn for lb in users(s, lid)
            ],
        },
        attribute_waits_for={"LoadBalancerArns": (LISTENER, LISTENER_RULE)},
    )
)
