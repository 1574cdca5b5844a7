"""A target group of `TargetType: lambda` (issue 17): one AWS::Lambda::Function an ALB invokes.

As on AWS: no Protocol, Port or VpcId (the load balancer invokes the function, no network
path of the VPC is involved); at most one function per group (Targets[0].Id: the function's
ARN, `!GetAtt Fn.Arn`, with or without a version or alias); health checks are off unless
HealthCheckEnabled is true, and then default to every 35 s with a 30 s timeout, 5 healthy
and 2 unhealthy checks, path / and code 200; the one attribute is
lambda.multi_value_headers.enabled (false). Only an Application Load Balancer may forward to
it (testbed.model.resources.elbv2.actions).

In the lab the function runs in a host of its own (testbed.model.lambda_targets places it in
one of the ALB's subnets); the group's one target is that host's runtime port, LAMBDA_PORT.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from testbed.errors import BadInput
from testbed.model.elb_defaults import APPLICATION
from testbed.model.elbv2_types import HealthCheck, Target, TargetGroup
from testbed.model.resources.base import ResourceContext, prop
from testbed.model.resources.elbv2 import health_check as hc
from testbed.model.resources.elbv2.attributes import read_attributes
from testbed.model.resources.elbv2.common import arn, digest, in_range, items, nested
from testbed.model.resources.lambda_function import LambdaFunction, functions
from testbed.model.types import frozen_map

LAMBDA_PORT = 80  # where the lab's lambda-runtime listens on the function's host
# The request header by which an ALB node tells the function's runtime which target group
# invokes it (testbed.alb.config sets it, testbed.roles.lambda_runtime takes it off).
LAMBDA_GROUP_HEADER = "X-Lab-Lambda-Group"
MULTI_VALUE = "lambda.multi_value_headers.enabled"
ATTRIBUTES = frozen_map({MULTI_VALUE: "false"})
NOT_FOR_LAMBDA = ("Protocol", "Port", "VpcId", "ProtocolVersion", "IpAddressType")
NO_HEALTH_PROTOCOL = ("HealthCheckProtocol", "HealthCheckPort")
UNPLACED = IPv4Address("0.0.0.0")  # until testbed.model.lambda_targets gives it a host


def build(ctx: ResourceContext, name: str) -> TargetGroup:
    """The TargetGroup of a lambda target group named `name`."""
    for key in (*NOT_FOR_LAMBDA, *NO_HEALTH_PROTOCOL):
        if key in ctx.props:
            raise ctx.fail(
                f"a lambda target group has no {key} (the load balancer invokes the function "
                "directly)",
                prop=key,
                hint=f"leave {key} out",
            )
    function = _function(ctx)
    attrs, _lines = read_attributes(ctx, "TargetGroupAttributes", ATTRIBUTES, "lambda target group")
    targets: tuple[Target, ...] = ()
    if function is not None:
        targets = (Target(function.arn, UNPLACED, LAMBDA_PORT, None, None),)
    state, lid = ctx.state, ctx.logical_id
    tag = digest(state, lid, "arn")[:16]
    return TargetGroup(
        logical_id=lid,
        name=name,
        protocol="HTTP",
        port=LAMBDA_PORT,
        target_type="lambda",
        vpc_id="",
        targets=targets,
        health_check=_health_check(ctx),
        attributes=frozen_map(attrs),
        deregistration_delay_s=0,
        preserve_client_ip=False,
        stickiness_enabled=False,
        stickiness_type=None,
        cross_zone="true",
        algorithm="round_robin",
        arn=arn(state, f"targetgroup/{name}/{tag}"),
        source=ctx.source,
        lb_type=APPLICATION,
        function=function.logical_id if function is not None else None,
    )


def _function(ctx: ResourceContext) -> LambdaFunction | None:
    """The group's one function (None: no Targets); it must be one the lab can run."""
    if "Targets" not in ctx.props or not ctx.props["Targets"]:
        return None
    found = items(ctx, "Targets")
    if len(found) > 1:
        raise ctx.fail(
            f"a lambda target group has one function, not {len(found)}",
            line=found[1][1],
            hint="give each function its own target group",
        )
    item, line, where = found[0]
    values, lines = nested(
        ctx,
        item,
        where,
        line,
        {"Id": prop("string", required=True), "AvailabilityZone": prop("string")},
    )
    for key in ("Port",):
        if key in item:
            raise ctx.fail(f"{where}.{key}: a function target has no port", line=line)
    text = str(values["Id"]).strip()
    function = _lookup(ctx, text)
    if function is None:
        known = ", ".join(sorted(functions(ctx.state))) or "none"
        raise ctx.fail(
            f"{where}.Id {text!r} is not the ARN of an AWS::Lambda::Function of this template "
            f"(functions: {known})",
            line=lines["Id"],
            hint="write Id: !GetAtt <Function>.Arn",
        )
    if function.why_not is not None:
        raise BadInput(
            f"the lab cannot run this function for target group {ctx.logical_id}: "
            f"{function.why_not}",
            line=function.why_not_line,
            logical_id=function.logical_id,
            hint="give it inline Python: Runtime: python3.12, Handler: index.handler, "
            "Code: {ZipFile: ...}",
        )
    return function


def _lookup(ctx: ResourceContext, text: str) -> LambdaFunction | None:
    """The function an ARN (maybe with :version or :alias) or a name names."""
    for function in functions(ctx.state).values():
        if text in (function.arn, function.name) or text.startswith(function.arn + ":"):
            return function
    return None


def _health_check(ctx: ResourceContext) -> HealthCheck:
    """Off unless HealthCheckEnabled is true; then AWS's defaults for lambda groups."""
    props = ctx.props

    def number(key: str, default: int, low: int, high: int) -> int:
        return in_range(ctx, props.get(key, default), low, high, key, ctx.line(key))

    interval = number("HealthCheckIntervalSeconds", 35, 5, 300)
    timeout = number("HealthCheckTimeoutSeconds", 30, 2, 120)
    if props.get("HealthCheckEnabled") is True and timeout >= interval:
        raise ctx.fail(
            f"HealthCheckTimeoutSeconds {timeout} must be smaller than "
            f"HealthCheckIntervalSeconds {interval}",
            prop="HealthCheckTimeoutSeconds",
        )
    path = hc.path_of(ctx, APPLICATION, "HTTP")
    matcher = hc.matcher_of(ctx, APPLICATION, "HTTP")
    return HealthCheck(
        enabled=props.get("HealthCheckEnabled") is True,
        protocol="HTTP",
        port=None,
        path=path,
        interval_s=interval,
        timeout_s=timeout,
        healthy_threshold=number("HealthyThresholdCount", 5, 2, 10),
        unhealthy_threshold=number("UnhealthyThresholdCount", 2, 2, 10),
        matcher=matcher,
    )
