"""A target group's HealthCheck* properties and Matcher, with AWS's defaults and ranges."""

from __future__ import annotations

import re

from testbed.model.elb_defaults import APPLICATION, DEFAULTS, health_check_timeout_default
from testbed.model.elbv2_types import HealthCheck
from testbed.model.resources.base import ResourceContext, prop
from testbed.model.resources.elbv2.common import NOT_IN_LAB, choice, in_range, nested

PROPERTIES = {
    "HealthCheckEnabled": prop("boolean"),
    "HealthCheckProtocol": prop("string"),
    "HealthCheckPort": prop("string"),
    "HealthCheckPath": prop("string"),
    "HealthCheckIntervalSeconds": prop("integer"),
    "HealthCheckTimeoutSeconds": prop("integer"),
    "HealthyThresholdCount": prop("integer"),
    "UnhealthyThresholdCount": prop("integer"),
    "Matcher": prop("map"),
}
MATCHER = re.compile(r"^\d{3}(-\d{3})?(,\d{3}(-\d{3})?)*$")
MAX_PATH = 1024
HTTP_PROTOCOLS = ("HTTP", "HTTPS")


def _protocol(ctx: ResourceContext, lb_type: str, tg_protocol: str | None, target_type: str) -> str:
    # An ALB target group's checks default to its own protocol (HTTP or HTTPS), as on AWS;
    # an NLB's alb target group checks its ALB by HTTP (or HTTPS), never by TCP.
    default = DEFAULTS[lb_type].health_check.protocol
    if lb_type == APPLICATION and tg_protocol in HTTP_PROTOCOLS:
        default = tg_protocol
    if target_type == "alb":
        default = "HTTP"
    protocol = ctx.props.get("HealthCheckProtocol", default)
    allowed = (
        HTTP_PROTOCOLS
        if lb_type == APPLICATION or target_type == "alb"
        else ("TCP", "HTTP", "HTTPS")
    )
    choice(ctx, protocol, allowed, "HealthCheckProtocol", ctx.line("HealthCheckProtocol"))
    return protocol


def _port(ctx: ResourceContext, lb_type: str) -> int | None:
    if "HealthCheckPort" not in ctx.props:
        return DEFAULTS[lb_type].health_check.port
    text = ctx.props["HealthCheckPort"].strip()
    if text == "traffic-port":
        return None
    if not re.fullmatch(r"\d{1,5}", text):
        raise ctx.fail(
            f"HealthCheckPort must be traffic-port or a port number, not {text!r}",
            prop="HealthCheckPort",
        )
    return in_range(ctx, int(text), 1, 65535, "HealthCheckPort", ctx.line("HealthCheckPort"))


def matcher_of(ctx: ResourceContext, lb_type: str, protocol: str) -> str:
    defaults = DEFAULTS[lb_type].health_check
    if "Matcher" not in ctx.props:
        return defaults.matcher
    if protocol not in HTTP_PROTOCOLS:
        raise ctx.fail(
            f"Matcher is only for HTTP and HTTPS health checks, not {protocol} ones",
            prop="Matcher",
            hint="leave Matcher out or use HealthCheckProtocol: HTTP",
        )
    values, lines = nested(
        ctx,
        ctx.props["Matcher"],
        "Matcher",
        ctx.line("Matcher"),
        {"HttpCode": prop("string")},
        unsupported={"GrpcCode": f"gRPC health checks are {NOT_IN_LAB}"},
    )
    if "HttpCode" not in values:
        raise ctx.fail('Matcher needs HttpCode, such as "200" or "200-299"', prop="Matcher")
    code, line = values["HttpCode"].replace(" ", ""), lines["HttpCode"]
    low, high = defaults.matcher_codes
    if not MATCHER.match(code):
        raise ctx.fail(
            f'Matcher.HttpCode {code!r} is not a list of HTTP codes: write "200", '
            '"200,302" or "200-299"',
            line=line,
        )
    for part in code.split(","):
        first, _, last = part.partition("-")
        if not (low <= int(first) <= high and low <= int(last or first) <= high):
            raise ctx.fail(
                f"Matcher.HttpCode {part} is outside {low}-{high}, the codes "
                f"health checks of {lb_type} target groups accept",
                line=line,
            )
        if last and int(last) < int(first):
            raise ctx.fail(f"Matcher.HttpCode range {part} runs backwards", line=line)
    return code


def path_of(ctx: ResourceContext, lb_type: str, protocol: str) -> str:
    if "HealthCheckPath" not in ctx.props:
        return DEFAULTS[lb_type].health_check.path
    path = ctx.props["HealthCheckPath"]
    if protocol not in HTTP_PROTOCOLS:
        raise ctx.fail(
            f"HealthCheckPath is only for HTTP and HTTPS health checks, not {protocol} ones",
            prop="HealthCheckPath",
        )
    if not path.startswith("/") or len(path) > MAX_PATH:
        raise ctx.fail(
            f"HealthCheckPath must start with / and have at most {MAX_PATH} "
            f"characters, not {path[:40]!r}",
            prop="HealthCheckPath",
        )
    return path


def health_check(
    ctx: ResourceContext,
    lb_type: str,
    tg_protocol: str | None = None,
    target_type: str = "instance",
) -> HealthCheck:
    """The health check of a target group whose protocol (tg_protocol) belongs to `lb_type`."""
    props, defaults = ctx.props, DEFAULTS[lb_type].health_check
    if props.get("HealthCheckEnabled") is False:
        raise ctx.fail(
            "health checks of instance and ip target groups are always enabled",
            prop="HealthCheckEnabled",
            hint="leave HealthCheckEnabled out",
        )
    protocol = _protocol(ctx, lb_type, tg_protocol, target_type)

    def number(key: str, default: int, low: int, high: int) -> int:
        return in_range(ctx, props.get(key, default), low, high, key, ctx.line(key))

    interval = number("HealthCheckIntervalSeconds", defaults.interval_s, 5, 300)
    timeout_default = health_check_timeout_default(lb_type, protocol)
    timeout = number("HealthCheckTimeoutSeconds", timeout_default, 2, 120)
    if timeout >= interval:
        given = (
            ""
            if "HealthCheckTimeoutSeconds" in props
            else f" (the default for {protocol} checks of {lb_type} target groups)"
        )
        raise ctx.fail(
            f"HealthCheckTimeoutSeconds {timeout}{given} must be smaller than "
            f"HealthCheckIntervalSeconds {interval}",
            prop="HealthCheckTimeoutSeconds" if given == "" else "HealthCheckIntervalSeconds",
            hint=f"set HealthCheckTimeoutSeconds below {interval}",
        )
    return HealthCheck(
        enabled=True,
        protocol=protocol,
        port=_port(ctx, lb_type),
        path=path_of(ctx, lb_type, protocol),
        interval_s=interval,
        timeout_s=timeout,
        healthy_threshold=number("HealthyThresholdCount", defaults.healthy_threshold, 2, 10),
        unhealthy_threshold=number("UnhealthyThresholdCount", defaults.unhealthy_threshold, 2, 10),
        matcher=matcher_of(ctx, lb_type, protocol),
    )
