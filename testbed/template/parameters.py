"""The Parameters section: declared types and constraints, values from `--param K=V`.

Values keep CloudFormation's shape: `Ref` to a parameter gives a string (Number parameters
too, as in AWS) or a list of strings for list types. Checks happen once, here, so the rest of
the engine can trust every parameter value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from testbed.errors import BadInput
from testbed.template.nodes import LDict, describe, did_you_mean, line_of

LOGICAL_ID = re.compile(r"^[A-Za-z0-9]+$")
AZ_NAME = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+[a-z]$")

ATTRIBUTES = (
    "Type",
    "Default",
    "AllowedValues",
    "AllowedPattern",
    "MinValue",
    "MaxValue",
    "MinLength",
    "MaxLength",
    "Description",
    "ConstraintDescription",
    "NoEcho",
)
BASIC_TYPES = ("String", "Number", "CommaDelimitedList", "List<Number>")


@dataclass(frozen=True)
class ParameterSpec:
    """One declared parameter, its attributes checked for shape."""

    name: str
    type: str
    line: int | None
    attributes: Mapping[str, Any]

    @property
    def is_list(self) -> bool:
        return self.type in ("CommaDelimitedList", "List<Number>") or self.type.startswith("List<")

    @property
    def is_number(self) -> bool:
        return self.type in ("Number", "List<Number>")


def _as_text(value: Any) -> str | None:
    """A scalar as CloudFormation would read it, or None for lists and mappings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    return None


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _check_type(name: str, type_name: Any, line: int | None) -> str:
    if not isinstance(type_name, str):
        raise BadInput(
            f"parameter Type must be a string, not {describe(type_name)}",
            line=line,
            logical_id=name,
        )
    if type_name in BASIC_TYPES:
        return type_name
    if type_name.startswith("AWS::SSM::Parameter::"):
        raise BadInput(
            f"parameter type {type_name} is not supported: the lab has no "
            "Systems Manager parameter store",
            line=line,
            logical_id=name,
            hint="use Type: String with a Default",
        )
    inner = type_name[5:-1] if type_name.startswith("List<") and type_name.endswith(">") else None
    if type_name.startswith("AWS::") or (inner and inner.startswith("AWS::")):
        # AWS-specific types (AvailabilityZone names, key pairs, image ids) are plain text here.
        return type_name
    hint = did_you_mean(type_name, (*BASIC_TYPES, "AWS::EC2::AvailabilityZone::Name"))
    raise BadInput(
        f"unknown parameter type {type_name!r}; use one of "
        f"{', '.join(BASIC_TYPES)} or an AWS-specific type",
        line=line,
        logical_id=name,
        hint=hint,
    )


def _spec(name: str, decl: Any, line: int | None) -> ParameterSpec:
    if not LOGICAL_ID.match(name):
        raise BadInput(
            "parameter names may contain only letters and digits", line=line, logical_id=name
        )
    if not isinstance(decl, LDict):
        raise BadInput(
            f"a parameter must be a mapping with at least Type, not {describe(decl)}",
            line=line,
            logical_id=name,
        )
    for key in decl:
        if key not in ATTRIBUTES:
            raise BadInput(
                f"unknown parameter attribute {key!r}",
                line=decl.line_of(key),
                logical_id=name,
                hint=did_you_mean(key, ATTRIBUTES),
            )
    if "Type" not in decl:
        raise BadInput(
            "parameter has no Type",
            line=line,
            logical_id=name,
            hint="add Type: String (or Number, CommaDelimitedList, List<Number>)",
        )
    type_name = _check_type(name, decl["Type"], decl.line_of("Type"))
    for key in ("MinValue", "MaxValue", "MinLength", "MaxLength"):
        if key in decl:
            number = _number(_as_text(decl[key]))
            if number is None or (key.endswith("Length") and not float(number).is_integer()):
                raise BadInput(
                    f"{key} must be a number, not {decl[key]!r}",
                    line=decl.line_of(key),
                    logical_id=name,
                )
    if "AllowedValues" in decl:
        allowed = decl["AllowedValues"]
        if (
            not isinstance(allowed, list)
            or not allowed
            or any(_as_text(v) is None for v in allowed)
        ):
            raise BadInput(
                "AllowedValues must be a non-empty list of values",
                line=decl.line_of("AllowedValues"),
                logical_id=name,
            )
    if "AllowedPattern" in decl:
        pattern = decl["AllowedPattern"]
        if not isinstance(pattern, str):
            raise BadInput(
                "AllowedPattern must be a string (a regular expression)",
                line=decl.line_of("AllowedPattern"),
                logical_id=name,
            )
        try:
            re.compile(pattern)
        except (re.error, OverflowError, RecursionError) as err:
            raise BadInput(
                f"AllowedPattern is not a valid regular expression: {err}",
                line=decl.line_of("AllowedPattern"),
                logical_id=name,
            ) from None
    for key in ("Description", "ConstraintDescription"):
        if key in decl and _as_text(decl[key]) is None:
            raise BadInput(f"{key} must be text", line=decl.line_of(key), logical_id=name)
    return ParameterSpec(name, type_name, line, decl)


def _limit(attrs: Mapping[str, Any], key: str) -> float:
    """A MinValue/MaxValue/MinLength/MaxLength attribute (_spec checked that it is a
    number)."""
    number = _number(_as_text(attrs[key]))
    if number is None:
        raise ValueError(f"{key} {attrs[key]!r} is not a number")
    return number


def _violation(spec: ParameterSpec, item: str) -> str | None:
    """What is wrong with one (list item) value, or None when it satisfies every constraint."""
    attrs = spec.attributes
    if spec.is_number:
        number = _number(item)
        if number is None:
            return f"{item!r} is not a number"
        if "MinValue" in attrs and number < _limit(attrs, "MinValue"):
            return f"{item} is less than MinValue {attrs['MinValue']}"
        if "MaxValue" in attrs and number > _limit(attrs, "MaxValue"):
            return f"{item} is more than MaxValue {attrs['MaxValue']}"
    if "MinLength" in attrs and len(item) < _limit(attrs, "MinLength"):
        return f"{item!r} is shorter than MinLength {attrs['MinLength']}"
    if "MaxLength" in attrs and len(item) > _limit(attrs, "MaxLength"):
        return f"{item!r} is longer than MaxLength {attrs['MaxLength']}"
    if "AllowedPattern" in attrs and not re.fullmatch(attrs["AllowedPattern"], item):
        return f"{item!r} does not match AllowedPattern {attrs['AllowedPattern']}"
    if "AllowedValues" in attrs:
        allowed = [_as_text(v) for v in attrs["AllowedValues"]]
        same = item in allowed or (
            spec.is_number
            and _number(item) is not None
            and any(_number(a) == _number(item) for a in allowed if a is not None)
        )
        if not same:
            return f"{item!r} is not one of the AllowedValues: {', '.join(map(str, allowed))}"
    if (
        spec.type.endswith("AvailabilityZone::Name")
        or spec.type.endswith("AvailabilityZone::Name>")
    ) and not AZ_NAME.match(item):
        return f"{item!r} is not an availability zone name such as us-east-1a"
    return None


def _value(spec: ParameterSpec, raw: str, from_user: bool) -> str | list[str]:
    items = [part.strip() for part in raw.split(",")] if spec.is_list else [raw]
    if spec.is_list and raw.strip() == "":
        items = []
    for item in items:
        problem = _violation(spec, item)
        if problem:
            where = "--param" if from_user else "Default"
            constraint = spec.attributes.get("ConstraintDescription")
            message = f"bad value from {where}: {problem}"
            if constraint is not None:
                message = f"bad value from {where} {item!r}: {_as_text(constraint)}"
            line = spec.line if from_user else line_of(spec.attributes, "Default", spec.line)
            raise BadInput(message, line=line, logical_id=spec.name)
    return items if spec.is_list else raw


def _default_text(spec: ParameterSpec) -> str:
    default = spec.attributes["Default"]
    if isinstance(default, list) and spec.is_list:
        parts = [text for text in map(_as_text, default) if text is not None]
        if len(parts) == len(default):  # every item a scalar
            return ",".join(parts)
    text = _as_text(default)
    if text is None:
        raise BadInput(
            f"Default must be a single value, not {describe(default)}",
            line=line_of(spec.attributes, "Default", spec.line),
            logical_id=spec.name,
        )
    return text


def resolve_parameters(
    section: Any, given: Mapping[str, Any] | None, *, section_line: int | None = None
) -> tuple[dict[str, str | list[str]], list[BadInput]]:
    """Check the Parameters section against the given values: (values by name, errors)."""
    values: dict[str, str | list[str]] = {}
    errors: list[BadInput] = []
    given = dict(given or {})
    if section is None:
        section = LDict(line=section_line)
    if not isinstance(section, LDict):
        errors.append(
            BadInput(f"Parameters must be a mapping, not {describe(section)}", line=section_line)
        )
        section = LDict(line=section_line)
    for name, value in given.items():
        if name not in section:
            known = ", ".join(section) or "none"
            errors.append(
                BadInput(
                    f"unknown parameter {name!r} given with --param (the template's parameters: "
                    f"{known})",
                    logical_id=str(name),
                    hint=did_you_mean(str(name), section),
                )
            )
        elif _as_text(value) is None and not isinstance(value, list):
            errors.append(
                BadInput(f"the value of parameter {name} must be text", logical_id=str(name))
            )
    for name, decl in section.items():
        try:
            spec = _spec(name, decl, section.line_of(name))
            if name in given:
                raw = given[name]
                text = ",".join(map(str, raw)) if isinstance(raw, list) else _as_text(raw)
                if text is None:
                    continue
                values[name] = _value(spec, text, from_user=True)
            elif "Default" in decl:
                values[name] = _value(spec, _default_text(spec), from_user=False)
            else:
                raise BadInput(
                    "parameter has no Default and no value was given",
                    line=spec.line,
                    logical_id=name,
                    hint=f"give it with --param {name}=VALUE or add a Default",
                )
        except BadInput as err:
            errors.append(err)
    return values, errors
