"""LoadBalancerAttributes, TargetGroupAttributes and ListenerAttributes: keys and values.

Which keys a type knows and their defaults come from testbed.model.elb_defaults; this module
says what values each key takes. Rules that tie several attributes together live with the
resource type that has them.
"""

from __future__ import annotations

from collections.abc import Mapping

from testbed.model.elb_defaults import DEFAULTS, LB_TYPES
from testbed.model.resources.base import ResourceContext
from testbed.model.resources.elbv2.common import choice, flag, key_values, whole
from testbed.model.types import IgnoredProperty

FLAG = ("flag",)
SECONDS_WEEK = ("int", 1, 604800)

# key -> ("flag",) | ("int", low, high) | ("choice", values) | ("text",) | ("off-or-int", ...)
RULES: Mapping[str, tuple] = {
    # Load balancers
    "deletion_protection.enabled": FLAG,
    "access_logs.s3.enabled": FLAG,
    "access_logs.s3.bucket": ("text",),
    "access_logs.s3.prefix": ("text",),
    "connection_logs.s3.enabled": FLAG,
    "connection_logs.s3.bucket": ("text",),
    "connection_logs.s3.prefix": ("text",),
    "client_keep_alive.seconds": ("int", 60, 604800),
    "idle_timeout.timeout_seconds": ("int", 1, 4000),
    "load_balancing.cross_zone.enabled": FLAG,  # target groups: see TG_CROSS_ZONE
    "routing.http.desync_mitigation_mode": ("choice", ("monitor", "defensive", "strictest")),
    "routing.http.drop_invalid_header_fields.enabled": FLAG,
    "routing.http.preserve_host_header.enabled": FLAG,
    "routing.http.x_amzn_tls_version_and_cipher_suite.enabled": FLAG,
    "routing.http.xff_client_port.enabled": FLAG,
    "routing.http.xff_header_processing.mode": ("choice", ("append", "preserve", "remove")),
    "routing.http2.enabled": FLAG,
    "waf.fail_open.enabled": FLAG,
    "zonal_shift.config.enabled": FLAG,
    "dns_record.client_routing_policy": (
        "choice",
        (
            "any_availability_zone",
            "availability_zone_affinity",
            "partial_availability_zone_affinity",
        ),
    ),
    # Target groups
    "deregistration_delay.timeout_seconds": ("int", 0, 3600),
    "deregistration_delay.connection_termination.enabled": FLAG,
    "stickiness.enabled": FLAG,
    "lambda.multi_value_headers.enabled": FLAG,
    "stickiness.type": ("text",),  # per LB type: checked by the target group
    "stickiness.lb_cookie.duration_seconds": SECONDS_WEEK,
    "stickiness.app_cookie.cookie_name": ("text",),
    "stickiness.app_cookie.duration_seconds": SECONDS_WEEK,
    "load_balancing.algorithm.type": (
        "choice",
        ("round_robin", "least_outstanding_requests", "weighted_random"),
    ),
    "load_balancing.algorithm.anomaly_mitigation": ("choice", ("on", "off")),
    "slow_start.duration_seconds": ("int", 0, 900),
    "preserve_client_ip.enabled": FLAG,
    "proxy_protocol_v2.enabled": FLAG,
    "target_health_state.unhealthy.connection_termination.enabled": FLAG,
    "target_health_state.unhealthy.draining_interval_seconds": ("int", 0, 360000),
    "target_failover.on_deregistration": ("choice", ("no_rebalance", "rebalance")),
    "target_failover.on_unhealthy": ("choice", ("no_rebalance", "rebalance")),
    "target_group_health.dns_failover.minimum_healthy_targets.count": ("off-or-int", 1, 10000),
    "target_group_health.dns_failover.minimum_healthy_targets.percentage": ("off-or-int", 1, 100),
    "target_group_health.unhealthy_state_routing.minimum_healthy_targets.count": ("int", 1, 10000),
    "target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage": (
        "off-or-int",
        1,
        100,
    ),
    # Listeners
    "tcp.idle_timeout.seconds": ("int", 60, 6000),
}
TG_CROSS_ZONE = ("choice", ("true", "false", "use_load_balancer_configuration"))

# Accepted with their AWS meaning but without effect in the lab: listed in StackModel.ignored.
IGNORED = frozenset(
    {
        "deletion_protection.enabled",
        "access_logs.s3.enabled",
        "access_logs.s3.bucket",
        "access_logs.s3.prefix",
        "connection_logs.s3.enabled",
        "connection_logs.s3.bucket",
        "connection_logs.s3.prefix",
        "routing.http.desync_mitigation_mode",
        "waf.fail_open.enabled",
        "zonal_shift.config.enabled",
        "target_group_health.dns_failover.minimum_healthy_targets.count",
        "target_group_health.dns_failover.minimum_healthy_targets.percentage",
    }
)

LISTENER_ATTRIBUTES: Mapping[str, Mapping[str, str]] = {
    "TCP": {"tcp.idle_timeout.seconds": str(DEFAULTS["network"].tcp_idle_timeout_s)},
    "TCP_UDP": {"tcp.idle_timeout.seconds": str(DEFAULTS["network"].tcp_idle_timeout_s)},
    "UDP": {},
    "TLS": {"tcp.idle_timeout.seconds": str(DEFAULTS["network"].tcp_idle_timeout_s)},
    "HTTP": {},
    "HTTPS": {},
    "GENEVE": {"tcp.idle_timeout.seconds": str(DEFAULTS["gateway"].tcp_idle_timeout_s)},
}

KIND_NAMES = {
    "application": "application (ALB)",
    "network": "network (NLB)",
    "gateway": "gateway (GWLB)",
}


def _value(ctx: ResourceContext, key: str, value: str, rule: tuple, line: int | None) -> str:
    where = f"attribute {key}"
    kind = rule[0]
    if kind == "flag":
        return "true" if flag(ctx, value, where, line) else "false"
    if kind == "int":
        return str(whole(ctx, value, where, line, rule[1], rule[2]))
    if kind == "choice":
        return choice(ctx, value, rule[1], where, line)
    if kind == "off-or-int":
        if value == "off":
            return value
        return str(whole(ctx, value, f"{where} ('off' or a number)", line, rule[1], rule[2]))
    return value


def _owner_hint(key: str, table: str) -> str | None:
    owners = [t for t in LB_TYPES if key in getattr(DEFAULTS[t], table)]
    if not owners:
        return None
    return (
        "it is an attribute of "
        + " and ".join(KIND_NAMES[t] for t in owners)
        + " "
        + ("load balancers" if table == "lb_attributes" else "target groups")
    )


def read_attributes(
    ctx: ResourceContext, prop: str, defaults: Mapping[str, str], what: str, table: str = ""
) -> tuple[dict[str, str], dict[str, int | None]]:
    """Every attribute of `defaults` with the template's values checked in; and their lines.

    `table` ("lb_attributes" / "tg_attributes") lets an error say which type has a key.
    """
    known = dict(defaults)
    if table:
        # Keys of other types are recognised so that the error can say whose they are.
        for lb_type in LB_TYPES:
            for key in getattr(DEFAULTS[lb_type], table):
                known.setdefault(key, "")
    given, lines = key_values(ctx, prop, known, what)
    values = dict(defaults)
    for key, value in given.items():
        if key not in defaults:
            raise ctx.fail(
                f"attribute {key} does not apply to {what}s",
                line=lines[key],
                hint=_owner_hint(key, table) if table else None,
            )
        rule = (
            TG_CROSS_ZONE
            if (table == "tg_attributes" and key == "load_balancing.cross_zone.enabled")
            else RULES[key]
        )
        values[key] = _value(ctx, key, value, rule, lines[key])
        if key in IGNORED:
            ctx.state.ignored.append(IgnoredProperty(ctx.logical_id, f"{prop}.{key}"))
    return values, lines
