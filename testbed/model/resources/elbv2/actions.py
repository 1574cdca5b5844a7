"""Listener and rule actions: forward (weighted, with group stickiness), redirect, fixed-response.

A forward action is also where a target group meets a load balancer, so the rules about which
groups an LB may use are checked here: the LB type the group's protocol serves, the listener
protocol, the VPC, and one load balancer per target group.
"""

from __future__ import annotations

import re
from typing import Any

from testbed.model.elb_defaults import APPLICATION
from testbed.model.elbv2_types import Action, LoadBalancer
from testbed.model.resources.base import ResourceContext, prop, ref
from testbed.model.resources.elbv2.common import (
    NOT_IN_LAB,
    TARGET_GROUP,
    a_load_balancer,
    choice,
    family,
    in_range,
    items,
    nested,
)
from testbed.model.resources.elbv2.target_group import users
from testbed.model.types import frozen_map
from testbed.template.nodes import line_of

TYPES = ("forward", "redirect", "fixed-response")
CONFIG_OF = {
    "forward": "ForwardConfig",
    "redirect": "RedirectConfig",
    "fixed-response": "FixedResponseConfig",
}
NO_AUTH = f"authentication actions are {NOT_IN_LAB}"
ACTION_PROPERTIES = {
    "Type": prop("string", required=True),
    "Order": prop("integer"),
    "TargetGroupArn": ref(TARGET_GROUP),
    "ForwardConfig": prop("map"),
    "RedirectConfig": prop("map"),
    "FixedResponseConfig": prop("map"),
}
ACTION_UNSUPPORTED = {
    "AuthenticateOidcConfig": NO_AUTH,
    "AuthenticateCognitoConfig": NO_AUTH,
    "JwtValidationConfig": NO_AUTH,
}
MAX_WEIGHTED_GROUPS = 5
MAX_WEIGHT = 999
MAX_DURATION = 604800
# Which target group protocols a listener protocol can forward to (NLB, ALB, GWLB).
LISTENER_TO_TG = {
    "TCP": ("TCP", "TCP_UDP"),
    "UDP": ("UDP", "TCP_UDP"),
    "TCP_UDP": ("TCP_UDP",),
    "TLS": ("TCP", "TLS"),  # NLB TLS: decrypt to plain TCP, or re-encrypt
    "HTTP": ("HTTP", "HTTPS"),
    "HTTPS": ("HTTP", "HTTPS"),
    None: ("GENEVE",),
}
REDIRECT_KEYS = ("Protocol", "Port", "Host", "Path", "Query", "StatusCode")
REDIRECT_DEFAULTS = {
    "Protocol": "#{protocol}",
    "Port": "#{port}",
    "Host": "#{host}",
    "Path": "/#{path}",
    "Query": "#{query}",
}
PLACEHOLDER = re.compile(r"#\{([^}]*)\}")
PLACEHOLDERS = ("host", "path", "port", "protocol", "query")
CONTENT_TYPES = (
    "text/plain",
    "text/css",
    "text/html",
    "application/javascript",
    "application/json",
)
MAX_BODY = 1024


class _Reader:
    """Reads the actions of one listener or rule on load balancer `lb`."""

    def __init__(self, ctx: ResourceContext, lb: LoadBalancer, protocol: str | None) -> None:
        self.ctx, self.lb, self.protocol = ctx, lb, protocol

    def target_group(self, tg_id: str, line: int | None) -> None:
        """Whether this LB (listener protocol) may forward to a target group."""
        ctx, lb = self.ctx, self.lb
        tg = family(ctx.state)["target_groups"][tg_id]
        allowed = LISTENER_TO_TG[self.protocol]
        if tg.target_type == "lambda" and lb.type != APPLICATION:
            raise ctx.fail(
                f"{lb.logical_id} is {a_load_balancer(lb.type)}; only an application load "
                f"balancer can forward to lambda target group {tg_id}",
                line=line,
            )
        if tg.protocol not in allowed:
            listener = f"its {self.protocol} listener" if self.protocol else "its listener"
            raise ctx.fail(
                f"{lb.logical_id} is {a_load_balancer(lb.type)} and {listener} "
                f"forwards to {' or '.join(allowed)} target groups; {tg_id} is "
                f"{tg.protocol}",
                line=line,
            )
        # A function is in no VPC: the ALB invokes it (testbed.model.lambda_targets).
        if tg.target_type != "lambda" and tg.vpc_id != lb.vpc_id:
            raise ctx.fail(
                f"target group {tg_id} is in {tg.vpc_id} but load balancer "
                f"{lb.logical_id} is in {lb.vpc_id}; they must be in one VPC",
                line=line,
            )
        others = [other for other in users(ctx.state, tg_id) if other != lb.logical_id]
        if others:
            raise ctx.fail(
                f"target group {tg_id} is already used by load balancer "
                f"{others[0]}; a target group serves one load balancer",
                line=line,
                hint="give each load balancer its own target group",
            )

    def forward(
        self, values: dict[str, Any], lines: dict[str, int | None], where: str
    ) -> tuple[tuple[tuple[str, int], ...], int | None]:
        """(target groups with weights, group stickiness seconds) of a forward action."""
        ctx = self.ctx
        groups: list[tuple[str, int]] = []
        sticky: int | None = None
        if "ForwardConfig" in values:
            groups, sticky = self.forward_config(
                values["ForwardConfig"], f"{where}.ForwardConfig", lines["ForwardConfig"]
            )
        if "TargetGroupArn" in values:
            single = values["TargetGroupArn"]
            if groups and [g for g, _ in groups] != [single]:
                raise ctx.fail(
                    f"{where}: with both TargetGroupArn and ForwardConfig, "
                    "ForwardConfig must hold only that same target group",
                    line=lines["ForwardConfig"],
                )
            groups = groups or [(single, 1)]
            self.target_group(single, lines["TargetGroupArn"])
        if not groups:
            raise ctx.fail(
                f"{where}: a forward action needs TargetGroupArn or ForwardConfig.TargetGroups",
                line=lines.get("Type"),
            )
        if self.lb.type != APPLICATION and (len(groups) > 1 or sticky is not None):
            raise ctx.fail(
                f"{where}: {a_load_balancer(self.lb.type)} forwards to exactly one "
                "target group, without weights or group stickiness",
                line=lines.get("ForwardConfig", lines.get("Type")),
            )
        return tuple(groups), sticky

    def forward_config(
        self, raw: Any, where: str, line: int | None
    ) -> tuple[list[tuple[str, int]], int | None]:
        ctx = self.ctx
        values, lines = nested(
            ctx,
            raw,
            where,
            line,
            {
                "TargetGroups": prop("list", required=True),
                "TargetGroupStickinessConfig": prop("map"),
            },
        )
        entries = values["TargetGroups"]
        if not 1 <= len(entries) <= MAX_WEIGHTED_GROUPS:
            raise ctx.fail(
                f"{where}.TargetGroups holds {len(entries)} target groups; a "
                f"forward action takes 1 to {MAX_WEIGHTED_GROUPS}",
                line=lines["TargetGroups"],
            )
        groups: list[tuple[str, int]] = []
        for index, entry in enumerate(entries):
            at = line_of(entries, index, lines["TargetGroups"])
            item, item_lines = nested(
                ctx,
                entry,
                f"{where}.TargetGroups[{index}]",
                at,
                {"TargetGroupArn": ref(TARGET_GROUP, required=True), "Weight": prop("integer")},
            )
            tg_id = item["TargetGroupArn"]
            if tg_id in (g for g, _ in groups):
                raise ctx.fail(f"{where}.TargetGroups lists {tg_id} twice", line=at)
            weight = in_range(
                ctx,
                item.get("Weight", 1),
                0,
                MAX_WEIGHT,
                f"{where}.TargetGroups[{index}].Weight",
                item_lines.get("Weight", at),
            )
            self.target_group(tg_id, item_lines["TargetGroupArn"])
            groups.append((tg_id, weight))
        sticky = None
        if "TargetGroupStickinessConfig" in values:
            sticky = self.group_stickiness(
                values["TargetGroupStickinessConfig"],
                f"{where}.TargetGroupStickinessConfig",
                lines["TargetGroupStickinessConfig"],
            )
        return groups, sticky

    def group_stickiness(self, raw: Any, where: str, line: int | None) -> int | None:
        ctx = self.ctx
        values, lines = nested(
            ctx, raw, where, line, {"Enabled": prop("boolean"), "DurationSeconds": prop("integer")}
        )
        if not values.get("Enabled", False):
            return None
        if "DurationSeconds" not in values:
            raise ctx.fail(
                f"{where}.DurationSeconds is needed when group stickiness is enabled",
                line=line,
                hint=f"1 to {MAX_DURATION} seconds",
            )
        return in_range(
            ctx,
            values["DurationSeconds"],
            1,
            MAX_DURATION,
            f"{where}.DurationSeconds",
            lines["DurationSeconds"],
        )

    def redirect(self, raw: Any, where: str, line: int | None) -> dict[str, str]:
        ctx = self.ctx
        values, lines = nested(
            ctx,
            raw,
            where,
            line,
            {key: prop("string", required=key == "StatusCode") for key in REDIRECT_KEYS},
        )
        for key, text in values.items():
            for name in PLACEHOLDER.findall(text):
                if name not in PLACEHOLDERS:
                    raise ctx.fail(
                        f"{where}.{key}: unknown placeholder #{{{name}}}",
                        line=lines[key],
                        hint="the placeholders are " + ", ".join(f"#{{{p}}}" for p in PLACEHOLDERS),
                    )
        choice(
            ctx,
            values["StatusCode"],
            ("HTTP_301", "HTTP_302"),
            f"{where}.StatusCode",
            lines["StatusCode"],
        )
        if "Protocol" in values:
            choice(
                ctx,
                values["Protocol"],
                ("HTTP", "HTTPS", "#{protocol}"),
                f"{where}.Protocol",
                lines["Protocol"],
            )
        port = values.get("Port", "#{port}")
        if port != "#{port}":
            if not re.fullmatch(r"\d{1,5}", port):
                raise ctx.fail(
                    f"{where}.Port must be a port number or #{{port}}, not {port!r}",
                    line=lines["Port"],
                )
            in_range(ctx, int(port), 1, 65535, f"{where}.Port", lines["Port"])
        if not values.get("Path", "/").startswith("/"):
            raise ctx.fail(f"{where}.Path must start with /", line=lines["Path"])
        if values.get("Query", "").startswith("?"):
            raise ctx.fail(f"{where}.Query is written without the leading ?", line=lines["Query"])
        for key in ("Host", "Path", "Query"):
            if len(values.get(key, "")) > 128:
                raise ctx.fail(f"{where}.{key} has more than 128 characters", line=lines[key])
        result = {**REDIRECT_DEFAULTS, **values}
        if all(result[k] == REDIRECT_DEFAULTS[k] for k in ("Protocol", "Port", "Host", "Path")):
            raise ctx.fail(
                f"{where} sends the client back to the same URL: change at least "
                "one of Protocol, Port, Host or Path",
                line=line,
            )
        return result

    def fixed_response(self, raw: Any, where: str, line: int | None) -> dict[str, str]:
        ctx = self.ctx
        values, lines = nested(
            ctx,
            raw,
            where,
            line,
            {
                "StatusCode": prop("string", required=True),
                "ContentType": prop("string"),
                "MessageBody": prop("string"),
            },
        )
        if not re.fullmatch(r"[245]\d\d", values["StatusCode"]):
            raise ctx.fail(
                f"{where}.StatusCode must be a 2XX, 4XX or 5XX code, not {values['StatusCode']!r}",
                line=lines["StatusCode"],
            )
        if "ContentType" in values:
            choice(
                ctx,
                values["ContentType"],
                CONTENT_TYPES,
                f"{where}.ContentType",
                lines["ContentType"],
            )
        if len(values.get("MessageBody", "")) > MAX_BODY:
            raise ctx.fail(
                f"{where}.MessageBody has more than {MAX_BODY} characters",
                line=lines["MessageBody"],
            )
        # AWS sends no Content-Type without one; the lab's proxy needs one, so plain text.
        return {"ContentType": "text/plain", "MessageBody": "", **values}

    def action(self, raw: Any, where: str, line: int | None) -> Action:
        ctx = self.ctx
        values, lines = nested(
            ctx, raw, where, line, ACTION_PROPERTIES, unsupported=ACTION_UNSUPPORTED
        )
        kind = values["Type"]
        if kind.startswith("authenticate-"):
            raise ctx.fail(f"{where}: {NO_AUTH}", line=lines["Type"])
        choice(ctx, kind, TYPES, f"{where}.Type", lines["Type"])
        if kind != "forward" and self.lb.type != APPLICATION:
            raise ctx.fail(
                f"{where}: {kind} actions are only for application load balancers; "
                f"{self.lb.logical_id} is {a_load_balancer(self.lb.type)}",
                line=lines["Type"],
            )
        for key in ("TargetGroupArn", *CONFIG_OF.values()):
            if (
                key in values
                and key != CONFIG_OF[kind]
                and not (kind == "forward" and key == "TargetGroupArn")
            ):
                raise ctx.fail(f"{where}.{key} does not belong to a {kind} action", line=lines[key])
        order = None
        if "Order" in values:
            order = in_range(ctx, values["Order"], 1, 50000, f"{where}.Order", lines["Order"])
        if kind == "forward":
            groups, sticky = self.forward(values, lines, where)
            return Action(kind, order, groups, sticky)
        config = CONFIG_OF[kind]
        if config not in values:
            raise ctx.fail(f"{where}: a {kind} action needs {config}", line=lines["Type"])
        if kind == "redirect":
            return Action(
                kind,
                order,
                redirect=frozen_map(
                    self.redirect(values[config], f"{where}.{config}", lines[config])
                ),
            )
        return Action(
            kind,
            order,
            fixed_response=frozen_map(
                self.fixed_response(values[config], f"{where}.{config}", lines[config])
            ),
        )


def read_actions(
    ctx: ResourceContext, prop_name: str, lb: LoadBalancer, protocol: str | None
) -> tuple[Action, ...]:
    """The actions of a listener (DefaultActions) or rule (Actions), checked."""
    reader = _Reader(ctx, lb, protocol)
    actions = [reader.action(item, where, line) for item, line, where in items(ctx, prop_name)]
    if not actions:
        raise ctx.fail(f"{prop_name} is empty; it needs one action", prop=prop_name)
    if len(actions) > 1:
        raise ctx.fail(
            f"{prop_name} holds {len(actions)} actions, but a listener or rule has "
            "at most one terminal action (forward, redirect or fixed-response)",
            prop=prop_name,
            hint="authentication actions, which may precede them, are not supported in the lab",
        )
    return tuple(actions)
