"""What the Auto Scaling and CloudWatch families share: collecting every problem of one
resource, checking nested keys against AWS's schema, numbers written as text, names and ARNs
made like CloudFormation and AWS make them."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from testbed.errors import BadInput, TemplateErrors
from testbed.model import schemas
from testbed.model.resources.base import ResourceContext
from testbed.model.resources.inert import generated_name, uuid_of
from testbed.model.types import IgnoredProperty
from testbed.template.intrinsics import ACCOUNT_ID, as_text
from testbed.template.nodes import describe, did_you_mean, line_of

AUTO_SCALING_GROUP = "AWS::AutoScaling::AutoScalingGroup"
LAUNCH_TEMPLATE = "AWS::EC2::LaunchTemplate"
LAUNCH_CONFIGURATION = "AWS::AutoScaling::LaunchConfiguration"
SCALING_POLICY = "AWS::AutoScaling::ScalingPolicy"
SCHEDULED_ACTION = "AWS::AutoScaling::ScheduledAction"
LIFECYCLE_HOOK = "AWS::AutoScaling::LifecycleHook"
ALARM = "AWS::CloudWatch::Alarm"


class Problems:
    """Every problem of one resource, raised together (the author fixes them in one pass)."""

    def __init__(self, ctx: ResourceContext) -> None:
        self.ctx = ctx
        self.found: list[BadInput] = []

    def add(self, message: str, line: int | None = None, hint: str | None = None) -> None:
        self.found.append(self.ctx.fail(message, line=line, hint=hint))

    def add_error(self, err: BadInput, line: int | None = None) -> None:
        """An error raised without (or with) a location, placed at `line` when it has none."""
        for one in err.errors if isinstance(err, TemplateErrors) else [err]:
            self.add(one.message, one.line or line, one.hint)

    def raise_if_any(self) -> None:
        if len(self.found) == 1:
            raise self.found[0]
        if self.found:
            raise TemplateErrors(list(self.found))


def definition_keys(type_name: str, definition: str) -> tuple[str, ...]:
    """The keys AWS's schema allows in one nested definition of a type."""
    found = schemas.schema(type_name) or {}
    props = found.get("definitions", {}).get(definition, {}).get("properties", {})
    return tuple(props)


def check_mapping(
    problems: Problems, value: Any, where: str, line: int | None, known: Iterable[str]
) -> dict[str, Any] | None:
    """`value` as a mapping whose keys are all in `known` (problems reported), or None when
    it is not a mapping."""
    if not isinstance(value, dict):
        problems.add(f"{where} must be a mapping, not {describe(value)}", line)
        return None
    allowed = tuple(known)
    for key in value:
        if key not in allowed:
            problems.add(
                f"unknown key {where}.{key}",
                line_of(value, key, line),
                did_you_mean(str(key), allowed) or f"the keys are: {', '.join(allowed)}",
            )
    return value


def number(
    problems: Problems,
    value: Any,
    where: str,
    line: int | None,
    *,
    low: float | None = None,
    high: float | None = None,
    whole: bool = False,
) -> float | None:
    """A number given as a number or text (AWS takes "300"); None and a problem if wrong."""
    text = as_text(value)
    try:
        found = float(text) if text is not None and not isinstance(value, bool) else math.nan
    except ValueError:
        found = math.nan
    kind = "a whole number" if whole else "a number"
    if not math.isfinite(found) or (whole and not found.is_integer()):
        problems.add(f"{where} must be {kind}, not {_shown(value)}", line)
        return None
    if (low is not None and found < low) or (high is not None and found > high):
        bounds = (
            f"from {_fmt(low)} to {_fmt(high)}"
            if low is not None and high is not None
            else f"at least {_fmt(low)}"
            if low is not None
            else f"at most {_fmt(high)}"
        )
        problems.add(f"{where} must be {bounds}, not {_fmt(found)}", line)
        return None
    return found


def whole(
    problems: Problems, value: Any, where: str, line: int | None, **bounds: Any
) -> int | None:
    found = number(problems, value, where, line, whole=True, **bounds)
    return None if found is None else int(found)


def choice(
    problems: Problems, value: Any, where: str, line: int | None, allowed: Iterable[str]
) -> str | None:
    """One of `allowed` (case as AWS writes them); None and a did-you-mean problem if not."""
    options = tuple(allowed)
    if isinstance(value, str) and value in options:
        return value
    hint = did_you_mean(value, options) if isinstance(value, str) else None
    problems.add(
        f"{where} must be one of {', '.join(options)}, not {_shown(value)}",
        line,
        hint,
    )
    return None


def boolean(problems: Problems, value: Any, where: str, line: int | None) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    problems.add(f"{where} must be true or false, not {_shown(value)}", line)
    return False


def ignore(ctx: ResourceContext, what: str, why: str | None = None) -> None:
    """A property accepted without meaning in the lab, listed with the reason."""
    ctx.state.ignored.append(IgnoredProperty(ctx.logical_id, f"{what} ({why})" if why else what))


def name_of(ctx: ResourceContext, prop: str, limit: int = 255) -> str:
    """The name property's value, or the one CloudFormation makes (STACK-LID-SUFFIX)."""
    given = ctx.props.get(prop)
    if isinstance(given, str) and given:
        return given
    return generated_name(ctx.state, ctx.logical_id, limit)


def autoscaling_arn(ctx: ResourceContext, kind: str, tail: str) -> str:
    """arn:aws:autoscaling:REGION:ACCOUNT:KIND:UUID:TAIL (groups, policies, ...)."""
    uuid = uuid_of(ctx.state, ctx.logical_id, kind)
    return f"arn:aws:autoscaling:{ctx.state.region}:{ACCOUNT_ID}:{kind}:{uuid}:{tail}"


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return describe(value)
