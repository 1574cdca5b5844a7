"""What the ELBv2 resource types share: their extras sections, names, ARNs, value checks."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from testbed.model.elb_defaults import CLASSIC
from testbed.model.elbv2_types import EXTRAS_KEY, SECTIONS
from testbed.model.resources.base import Prop, ResourceContext, check_properties

# Re-exported: the ELBv2 modules read values with them (they live in base for group_refs).
from testbed.model.resources.base import convert as convert
from testbed.model.resources.base import text_list as text_list
from testbed.model.state import BuildState
from testbed.template.intrinsics import ACCOUNT_ID, as_text
from testbed.template.nodes import LDict, describe, did_you_mean, line_of

LOAD_BALANCER = "AWS::ElasticLoadBalancingV2::LoadBalancer"
TARGET_GROUP = "AWS::ElasticLoadBalancingV2::TargetGroup"
LISTENER = "AWS::ElasticLoadBalancingV2::Listener"
LISTENER_RULE = "AWS::ElasticLoadBalancingV2::ListenerRule"

NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?$")
MAX_NAME = 32
NOT_IN_LAB = "not supported in the lab"
NOT_YET = "not supported by the lab yet"


def family(state: BuildState) -> dict[str, dict[str, Any]]:
    """The ELBv2 sections of the stack being built (created on first use)."""
    sections = state.extras.setdefault(EXTRAS_KEY, {})
    for name in SECTIONS:
        sections.setdefault(name, {})
    return sections


def digest(state: BuildState, logical_id: str, purpose: str) -> str:
    """Hex digits that stand in for AWS's random ids: the same for the same stack and id."""
    text = f"{state.stack_name}/{logical_id}/{purpose}"
    return hashlib.sha256(text.encode()).hexdigest()


def default_name(state: BuildState, logical_id: str) -> str:
    """A name like CloudFormation gives: stack and logical id, shortened to 32 characters."""
    whole = f"{state.stack_name}-{logical_id}"
    if len(whole) <= MAX_NAME and not whole.lower().startswith("internal-"):
        return whole
    tag = digest(state, logical_id, "name")[:7].upper()
    stack = state.stack_name[:10].rstrip("-")
    if stack.lower() == "internal":  # AWS keeps names starting "internal-" for internal LBs
        stack = "lab"
    return f"{stack}-{logical_id[:12]}-{tag}"


def check_name(ctx: ResourceContext, what: str) -> str:
    """The Name property checked against AWS's rules, or the default name."""
    if "Name" not in ctx.props:
        return default_name(ctx.state, ctx.logical_id)
    name = ctx.props["Name"]
    if not NAME_RE.match(name):
        raise ctx.fail(
            f"Name {name!r} is not a valid {what} name: use 1-{MAX_NAME} letters, "
            "digits and hyphens, not starting or ending with a hyphen",
            prop="Name",
        )
    if name.lower().startswith("internal-"):
        raise ctx.fail(
            f"Name {name!r} must not start with 'internal-' (AWS keeps that for the "
            "DNS names of internal load balancers)",
            prop="Name",
        )
    return name


def unique_name(ctx: ResourceContext, name: str, section: str, what: str) -> None:
    """AWS names are unique per account and region: two of this stack must differ."""
    for other in family(ctx.state)[section].values():
        if getattr(other, "lb_type", None) == CLASSIC:
            continue  # a classic load balancer's implicit group: its name is the CLB's
        if other.name.lower() == name.lower():
            raise ctx.fail(
                f"{what} name {name!r} is already used by {other.logical_id}",
                prop="Name",
                hint="give each one its own Name, or leave Name out",
            )


def a_load_balancer(lb_type: str) -> str:
    """'an application load balancer', 'a network load balancer', ... for messages."""
    return f"{'an' if lb_type[0] in 'aeiou' else 'a'} {lb_type} load balancer"


def arn(state: BuildState, resource: str) -> str:
    """An Elastic Load Balancing ARN in the stack's region."""
    return f"arn:aws:elasticloadbalancing:{state.region}:{ACCOUNT_ID}:{resource}"


# --- Nested values ----------------------------------------------------------------------


def mapping(ctx: ResourceContext, value: Any, where: str, line: int | None) -> LDict:
    """`value` as a mapping, or a located error."""
    if not isinstance(value, dict):
        raise ctx.fail(f"{where} must be a mapping, not {describe(value)}", line=line)
    return value if isinstance(value, LDict) else LDict(value, line=line)


def items(ctx: ResourceContext, prop: str) -> list[tuple[Any, int | None, str]]:
    """The items of a list property with their lines and names (Targets[0], ...)."""
    values = ctx.props[prop]
    at = ctx.line(prop)
    return [
        (item, line_of(values, index, at), f"{prop}[{index}]") for index, item in enumerate(values)
    ]


def nested(
    ctx: ResourceContext,
    value: Any,
    where: str,
    line: int | None,
    properties: Mapping[str, Prop],
    *,
    ignored: frozenset[str] = frozenset(),
    unsupported: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], dict[str, int | None]]:
    """A mapping inside a property, checked like the properties of a resource."""
    values = mapping(ctx, value, where, line)
    return check_properties(
        ctx.logical_id,
        values,
        properties,
        ignored,
        unsupported or {},
        ctx.state,
        path=f"{where}.",
        line=line,
    )


def choice(
    ctx: ResourceContext, value: str, allowed: tuple[str, ...], where: str, line: int | None
) -> str:
    """`value` if it is one of `allowed` (exact case, as AWS wants), else a located error."""
    if value in allowed:
        return value
    hint = did_you_mean(value, allowed)
    raise ctx.fail(
        f"{where} must be one of {', '.join(allowed)}, not {value!r}", line=line, hint=hint
    )


def in_range(
    ctx: ResourceContext, value: int, low: int, high: int, where: str, line: int | None
) -> int:
    """`value` if low <= value <= high, else a located error."""
    if not low <= value <= high:
        raise ctx.fail(f"{where} must be from {low} to {high}, not {value}", line=line)
    return value


def key_values(
    ctx: ResourceContext,
    prop: str,
    known: Mapping[str, str],
    what: str,
) -> tuple[dict[str, str], dict[str, int | None]]:
    """An attribute list [{Key, Value}] as {key: text} with lines; unknown keys rejected."""
    if prop not in ctx.props:
        return {}, {}
    found: dict[str, str] = {}
    lines: dict[str, int | None] = {}
    for item, line, where in items(ctx, prop):
        entry, entry_lines = nested(
            ctx, item, where, line, {"Key": Prop("string", True), "Value": Prop("any", True)}
        )
        key = entry["Key"]
        at = entry_lines.get("Key", line)
        value = as_text(entry["Value"])
        if value is None:
            raise ctx.fail(
                f"{where}.Value must be text, not {describe(entry['Value'])}",
                line=entry_lines.get("Value", line),
            )
        if key not in known:
            listing = (
                f"the attributes are: {', '.join(sorted(known))}"
                if known
                else f"the lab knows no attributes of a {what}"
            )
            raise ctx.fail(
                f"unknown {what} attribute {key!r}",
                line=at,
                hint=did_you_mean(key, known, cutoff=0.7) or listing,
            )
        if key in found:
            raise ctx.fail(f"attribute {key} is given twice (first on line {lines[key]})", line=at)
        found[key], lines[key] = value, at
    return found, lines


def flag(ctx: ResourceContext, value: str, where: str, line: int | None) -> bool:
    """An attribute value 'true' or 'false'."""
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ctx.fail(f"{where} must be true or false, not {value!r}", line=line)


def whole(
    ctx: ResourceContext, value: str, where: str, line: int | None, low: int, high: int
) -> int:
    """An attribute value that is a whole number from low to high."""
    if not re.fullmatch(r"\s*\d{1,9}\s*", value):
        raise ctx.fail(
            f"{where} must be a whole number from {low} to {high}, not {value!r}", line=line
        )
    return in_range(ctx, int(value), low, high, where, line)
