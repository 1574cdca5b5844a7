"""ALB rule conditions: the six fields, their *Config forms and the legacy Values form, and
AWS's limits (values per rule, wildcards, characters, lengths)."""

from __future__ import annotations

import re
from ipaddress import IPv4Network
from typing import Any

from testbed.model.elbv2_types import Condition
from testbed.model.resources.base import ResourceContext, prop
from testbed.model.resources.elbv2.common import NOT_IN_LAB, choice, items, nested, text_list
from testbed.template.nodes import line_of

CONFIGS = {
    "path-pattern": "PathPatternConfig",
    "host-header": "HostHeaderConfig",
    "http-header": "HttpHeaderConfig",
    "http-request-method": "HttpRequestMethodConfig",
    "query-string": "QueryStringConfig",
    "source-ip": "SourceIpConfig",
}
ONCE_PER_RULE = ("path-pattern", "host-header", "http-request-method", "source-ip")
LEGACY_FIELDS = ("path-pattern", "host-header")  # the only ones AWS takes in plain Values
MAX_VALUES = 5  # per rule, all conditions together
MAX_WILDCARDS = 5  # per rule
MAX_LENGTH = 128
CONDITION_PROPERTIES = {
    "Field": prop("string", required=True),
    "Values": prop("list"),
    **{config: prop("map") for config in CONFIGS.values()},
}

HOST = re.compile(r"^[A-Za-z0-9.*?-]+$")
PATH = re.compile(r"^[A-Za-z0-9_\-.$/~\"'@:+&*?]+$")
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,40}$")
PRINTABLE = re.compile(r"^[\x20-\x7e]+$")
QUERY = re.compile(r"^[\x21-\x7e]+$")  # as it appears in a URL: no blanks
METHOD = re.compile(r"^[A-Z_-]{1,40}$")
ALLOWED_TEXT = {
    "host-header": "letters, digits, - . and the wildcards * ?",
    "path-pattern": "letters, digits, _ - . $ / ~ \" ' @ : + & and the wildcards * ?",
    "http-header": "printable ASCII characters",
    "query-string": "printable ASCII characters without blanks",
    "http-request-method": "capital letters, - and _ (no wildcards)",
}


def _bad_value(field: str, value: str) -> str | None:
    """Why `value` cannot be a pattern of a `field` condition, or None."""
    if not value:
        return "is empty"
    if len(value) > MAX_LENGTH:
        return f"has more than {MAX_LENGTH} characters"
    pattern = {
        "host-header": HOST,
        "path-pattern": PATH,
        "http-header": PRINTABLE,
        "query-string": QUERY,
        "http-request-method": METHOD,
    }[field]
    if not pattern.match(value):
        return f"may only hold {ALLOWED_TEXT[field]}"
    if field == "host-header":
        if "." not in value:
            return "needs at least one '.'"
        if not value.rsplit(".", 1)[1].isalpha():
            return "may only have letters after its last '.'"
    return None


def _source_ip(ctx: ResourceContext, value: str, where: str, line: int | None) -> str:
    if ":" in value:
        raise ctx.fail(f"{where}: IPv6 source addresses are {NOT_IN_LAB}", line=line)
    try:
        return str(IPv4Network(value.strip()))
    except ValueError:
        raise ctx.fail(
            f"{where}: {value!r} is not an IPv4 CIDR block such as 10.0.0.0/16 "
            "(wildcards are not allowed here)",
            line=line,
        ) from None


class _Rule:
    """Counts what a rule's conditions use, against AWS's per-rule limits."""

    def __init__(self, ctx: ResourceContext) -> None:
        self.ctx = ctx
        self.values = 0
        self.wildcards = 0
        self.fields: dict[str, str] = {}

    def add(self, field: str, patterns: list[str], where: str, line: int | None) -> None:
        if field in ONCE_PER_RULE and field in self.fields:
            raise self.ctx.fail(
                f"{where}: a rule takes one {field} condition, and "
                f"{self.fields[field]} is one already",
                line=line,
                hint=f"put every value into the one {field} condition",
            )
        self.fields.setdefault(field, where)
        self.values += len(patterns)
        if self.values > MAX_VALUES:
            raise self.ctx.fail(
                f"{where}: the rule's conditions hold more than {MAX_VALUES} "
                "values in all (AWS's limit per rule)",
                line=line,
                hint="split the rule in two",
            )
        self.wildcards += sum(p.count("*") + p.count("?") for p in patterns)
        if self.wildcards > MAX_WILDCARDS:
            raise self.ctx.fail(
                f"{where}: the rule's conditions use more than "
                f"{MAX_WILDCARDS} wildcards (* and ?) in all",
                line=line,
            )


def _config(
    ctx: ResourceContext, field: str, raw: Any, where: str, line: int | None
) -> tuple[list[str], str | None, tuple[tuple[str | None, str], ...], int | None]:
    """(values, header name, query pairs, line of the values) of a *Config mapping."""
    properties: dict[str, Any] = {"Values": prop("list", required=True)}
    if field == "http-header":
        properties["HttpHeaderName"] = prop("string", required=True)
    values, lines = nested(ctx, raw, where, line, properties)
    at = lines["Values"]
    if field != "query-string":
        name = values.get("HttpHeaderName")
        if name is not None:
            if not HEADER_NAME.match(name):
                raise ctx.fail(
                    f"{where}.HttpHeaderName {name!r} is not a header name (1-40 "
                    "letters, digits and !#$%&'*+-.^_`|~)",
                    line=lines["HttpHeaderName"],
                )
            if name.lower() == "host":
                raise ctx.fail(
                    f"{where}: match the Host header with a host-header condition",
                    line=lines["HttpHeaderName"],
                )
        return text_list(ctx, values["Values"], f"{where}.Values", at), name, (), at
    pairs: list[tuple[str | None, str]] = []
    for index, entry in enumerate(values["Values"]):
        item_line = line_of(values["Values"], index, at)
        pair, _ = nested(
            ctx,
            entry,
            f"{where}.Values[{index}]",
            item_line,
            {"Key": prop("string"), "Value": prop("string", required=True)},
        )
        key = pair.get("Key")
        if key is not None and (problem := _bad_value(field, key)):
            raise ctx.fail(f"{where}.Values[{index}].Key {key!r} {problem}", line=item_line)
        pairs.append((key, pair["Value"]))
    return [value for _, value in pairs], None, tuple(pairs), at


def _condition(
    ctx: ResourceContext, rule: _Rule, raw: Any, where: str, line: int | None
) -> Condition:
    values, lines = nested(ctx, raw, where, line, CONDITION_PROPERTIES)
    field = choice(ctx, values["Field"], tuple(CONFIGS), f"{where}.Field", lines["Field"])
    for config in CONFIGS.values():
        if config in values and config != CONFIGS[field]:
            raise ctx.fail(
                f"{where}.{config} does not belong to a {field} condition",
                line=lines[config],
                hint=f"write {CONFIGS[field]}",
            )
    config = CONFIGS[field]
    key: str | None = None
    pairs: tuple[tuple[str | None, str], ...] = ()
    if "Values" in values:
        if config in values:
            raise ctx.fail(
                f"{where}: give the values in Values or in {config}, not both", line=lines["Values"]
            )
        if field not in LEGACY_FIELDS:
            raise ctx.fail(
                f"{where}: a {field} condition takes its values in {config}", line=lines["Values"]
            )
        patterns = text_list(ctx, values["Values"], f"{where}.Values", lines["Values"])
        if len(patterns) > 1:
            raise ctx.fail(
                f"{where}.Values takes one value; write {config} for several", line=lines["Values"]
            )
        at = lines["Values"]
    elif config in values:
        patterns, key, pairs, at = _config(
            ctx, field, values[config], f"{where}.{config}", lines[config]
        )
    else:
        raise ctx.fail(
            f"{where}: the {field} condition has no values",
            line=line,
            hint=f"add {config}: {{Values: [...]}}",
        )
    if not patterns:
        raise ctx.fail(f"{where}: the {field} condition has no values", line=at)
    if field == "source-ip":
        patterns = [_source_ip(ctx, p, where, at) for p in patterns]
    else:
        for pattern in patterns:
            problem = _bad_value(field, pattern)
            if problem:
                raise ctx.fail(f"{where}: {field} value {pattern[:40]!r} {problem}", line=at)
    rule.add(field, patterns, where, at)
    shown = [f"{k}={v}" if k is not None else v for k, v in pairs] if pairs else patterns
    return Condition(field, tuple(shown), key, pairs)


def read_conditions(ctx: ResourceContext) -> tuple[Condition, ...]:
    """The Conditions of a listener rule, checked against AWS's limits."""
    rule = _Rule(ctx)
    conditions = tuple(
        _condition(ctx, rule, item, where, line) for item, line, where in items(ctx, "Conditions")
    )
    if not conditions:
        raise ctx.fail(
            "Conditions is empty; a rule needs at least one condition (the "
            "listener's DefaultActions cover everything else)",
            prop="Conditions",
        )
    return conditions
