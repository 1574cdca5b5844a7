"""The Parameters section: declared types and constraints, values from `--param K=V`.

Values keep CloudFormation's shape: `Ref` to a parameter gives a string (Number parameters
too, as in AWS) or a list of strings for list types. Checks happen once, here, so the rest of
the engine can trust every parameter value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from testbed.errors import BadInput
from testbed.template.aws_parameters import (
    AZ_TYPE,
    ID_KINDS,
    IMAGE_TYPE,
    KEY_PAIR_TYPE,
    az_problem,
    element_type,
    id_problem,
    is_public_ami_path,
    known_types,
    placeholder_ami,
    value_type,
)
from testbed.template.intrinsics import POISONED
from testbed.template.nodes import LDict, describe, did_you_mean, line_of

LOGICAL_ID = re.compile(r"^[A-Za-z0-9]+$")

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
    def ssm(self) -> bool:
        """An AWS::SSM::Parameter::Value<...> type: the value given is a parameter store name."""
        return value_type(self.type)[0]

    @property
    def value_type(self) -> str:
        """The type of the value (inside AWS::SSM::Parameter::Value<...> for SSM types)."""
        return value_type(self.type)[1]

    @property
    def element(self) -> str:
        """The type of one item (the type itself for single values)."""
        return element_type(self.value_type)

    @property
    def is_list(self) -> bool:
        return self.value_type == "CommaDelimitedList" or self.value_type.startswith("List<")

    @property
    def is_number(self) -> bool:
        return self.element == "Number"


@dataclass(frozen=True)
class LabSubstitute:
    """A parameter value the lab keeps without meaning or replaces (reported at `up`)."""

    parameter: str
    value: str  # what the template or --param gave
    lab_value: str  # what Ref gives in the lab
    note: str


@dataclass(frozen=True)
class IdCheck:
    """Ids a parameter gives that must name things of this lab (checked by the model, which
    knows the resources)."""

    parameter: str
    type_name: str  # the element type, e.g. AWS::EC2::VPC::Id
    values: tuple[str, ...]
    line: int | None


@dataclass
class ParameterValues:
    """The outcome of the Parameters section: values by name (POISONED where the value is
    wrong, so later readers are skipped instead of reporting a missing name), errors, lab
    substitutes and id checks."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: list[BadInput] = field(default_factory=list)
    substitutes: list[LabSubstitute] = field(default_factory=list)
    id_checks: list[IdCheck] = field(default_factory=list)


def _as_text(value: Any) -> str | None:
    """A scalar as CloudFormation would read it, or None for lists and mappings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    return None


def _written(container: Any, key: Any) -> str | None:
    """An attribute value as the author wrote it: YAML 1.1 reads `No` as false and `010` as 8,
    CloudFormation reads the text (the loader remembers it)."""
    texts = getattr(container, "texts", None)
    if texts and key in texts:
        return str(texts[key])
    return _as_text(container[key])


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
    if type_name in known_types():
        return type_name
    looks_aws = "AWS::" in type_name or type_name.startswith("List<")
    raise BadInput(
        f"unknown parameter type {type_name!r}; "
        + (
            "it is not one of AWS's parameter types"
            if looks_aws
            else f"use one of {', '.join(BASIC_TYPES)} or an AWS-specific type"
        ),
        line=line,
        logical_id=name,
        hint=did_you_mean(type_name, sorted(known_types()), cutoff=0.8)
        or did_you_mean(type_name, BASIC_TYPES),
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


def _allowed(spec: ParameterSpec) -> list[str]:
    allowed = spec.attributes["AllowedValues"]
    return [text for i in range(len(allowed)) if (text := _written(allowed, i)) is not None]


def _violation(spec: ParameterSpec, item: str, *, typed: bool = True) -> str | None:
    """What is wrong with one (list item) value, or None when it satisfies every constraint.
    typed=False checks the attributes only (the name given for an SSM type)."""
    attrs = spec.attributes
    if spec.is_number and typed:
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
        allowed = _allowed(spec)
        same = item in allowed or (
            spec.is_number
            and typed
            and _number(item) is not None
            and any(_number(a) == _number(item) for a in allowed)
        )
        if not same:
            return f"{item!r} is not one of the AllowedValues: {', '.join(allowed)}"
    return None


def _type_violation(spec: ParameterSpec, item: str, region: str) -> str | None:
    """What the AWS type of the parameter says is wrong with one item, or None."""
    if spec.element == AZ_TYPE:
        return az_problem(item, region)
    return id_problem(item, spec.element)


def _items(spec: ParameterSpec, raw: str) -> list[str]:
    if not spec.is_list:
        return [raw]
    return [] if raw.strip() == "" else [part.strip() for part in raw.split(",")]


def _bad_value(spec: ParameterSpec, problem: str, item: str, from_user: bool) -> BadInput:
    where = "--param" if from_user else "Default"
    constraint = spec.attributes.get("ConstraintDescription")
    message = f"bad value from {where}: {problem}"
    if constraint is not None:
        message = f"bad value from {where} {item!r}: {_as_text(constraint)}"
    line = spec.line if from_user else line_of(spec.attributes, "Default", spec.line)
    return BadInput(message, line=line, logical_id=spec.name)


def _value(
    spec: ParameterSpec, raw: str, from_user: bool, region: str, out: ParameterValues
) -> str | list[str]:
    if spec.ssm:
        return _ssm_value(spec, raw, from_user, region, out)
    items = _items(spec, raw)
    for item in items:
        problem = _violation(spec, item)
        if problem:
            raise _bad_value(spec, problem, item, from_user)
    _typed_items(spec, items, from_user, region, out)
    return items if spec.is_list else raw


def _typed_items(
    spec: ParameterSpec, items: list[str], from_user: bool, region: str, out: ParameterValues
) -> None:
    """Check items against the parameter's AWS type; note the lab values and id checks."""
    # An empty value is how templates say "none" (with a condition on it); resources that use
    # it anyway report their own error.
    items = [item for item in items if item != ""]
    for item in items:
        problem = _type_violation(spec, item, region)
        if problem:
            # The type's own check (AWS's, not the author's): no ConstraintDescription.
            where = "--param" if from_user else "Default"
            line = spec.line if from_user else line_of(spec.attributes, "Default", spec.line)
            raise BadInput(f"bad value from {where}: {problem}", line=line, logical_id=spec.name)
    text = ",".join(items)
    if spec.element == KEY_PAIR_TYPE and text:
        out.substitutes.append(
            LabSubstitute(spec.name, text, text, "key pairs have no meaning in the lab")
        )
    elif spec.element == IMAGE_TYPE and text and not spec.ssm:
        out.substitutes.append(
            LabSubstitute(
                spec.name, text, text, "AMIs have no meaning in the lab: hosts run the lab's image"
            )
        )
    elif spec.element in ID_KINDS and ID_KINDS[spec.element].resource_type and items:
        out.id_checks.append(IdCheck(spec.name, spec.element, tuple(items), spec.line))


def _ssm_value(
    spec: ParameterSpec, name: str, from_user: bool, region: str, out: ParameterValues
) -> str | list[str]:
    """An SSM Value<...> parameter: `name` is a parameter store name, which the lab has no
    store to read; AMI paths get a placeholder AMI id."""
    problem = _violation(spec, name, typed=False)
    if problem:
        raise _bad_value(spec, problem, name, from_user)
    if spec.element == IMAGE_TYPE or is_public_ami_path(name):
        ami = placeholder_ami(name)
        out.substitutes.append(
            LabSubstitute(
                spec.name,
                name,
                ami,
                "the lab has no Systems Manager parameter store: a placeholder AMI id "
                "stands for this parameter's AMI",
            )
        )
        return [ami] if spec.is_list else ami
    if not from_user:
        raise BadInput(
            f"the lab has no Systems Manager parameter store, so {name!r} has no value here",
            line=line_of(spec.attributes, "Default", spec.line),
            logical_id=spec.name,
            hint=f"give the value itself with --param {spec.name}=VALUE",
        )
    # A --param for a parameter the lab cannot look up is taken as the value itself.
    items = _items(spec, name)
    if spec.is_number:
        for item in items:
            if _number(item) is None:
                raise _bad_value(spec, f"{item!r} is not a number", item, from_user)
    _typed_items(spec, items, from_user, region, out)
    out.substitutes.append(
        LabSubstitute(
            spec.name,
            name,
            name,
            "the lab has no Systems Manager parameter store: the --param value is the value",
        )
    )
    return items if spec.is_list else name


def _default_text(spec: ParameterSpec) -> str:
    default = spec.attributes["Default"]
    if isinstance(default, list) and spec.is_list:
        parts = [text for i in range(len(default)) if (text := _written(default, i)) is not None]
        if len(parts) == len(default):  # every item a scalar
            return ",".join(parts)
    text = _written(spec.attributes, "Default")
    if text is None:
        raise BadInput(
            f"Default must be a single value, not {describe(default)}",
            line=line_of(spec.attributes, "Default", spec.line),
            logical_id=spec.name,
        )
    return text


def resolve_parameters(
    section: Any,
    given: Mapping[str, Any] | None,
    *,
    section_line: int | None = None,
    region: str = "us-east-1",
) -> ParameterValues:
    """Check the Parameters section against the given values (see ParameterValues)."""
    out = ParameterValues()
    given = dict(given or {})
    if section is None:
        section = LDict(line=section_line)
    if not isinstance(section, LDict):
        out.errors.append(
            BadInput(f"Parameters must be a mapping, not {describe(section)}", line=section_line)
        )
        section = LDict(line=section_line)
    for name, value in given.items():
        if name not in section:
            known = ", ".join(section) or "none"
            out.errors.append(
                BadInput(
                    f"unknown parameter {name!r} given with --param (the template's parameters: "
                    f"{known})",
                    logical_id=str(name),
                    hint=did_you_mean(str(name), section),
                )
            )
        elif _as_text(value) is None and not isinstance(value, list):
            out.errors.append(
                BadInput(f"the value of parameter {name} must be text", logical_id=str(name))
            )
    for name, decl in section.items():
        try:
            spec = _spec(name, decl, section.line_of(name))
            if name in given:
                raw = given[name]
                text = ",".join(map(str, raw)) if isinstance(raw, list) else _as_text(raw)
                if text is None:
                    out.values[name] = POISONED  # reported above
                    continue
                out.values[name] = _value(spec, text, True, region, out)
            elif "Default" in decl:
                out.values[name] = _value(spec, _default_text(spec), False, region, out)
            else:
                raise BadInput(
                    "parameter has no Default and no value was given",
                    line=spec.line,
                    logical_id=name,
                    hint=f"give it with --param {name}=VALUE or add a Default",
                )
        except BadInput as err:
            out.errors.append(err)
            if LOGICAL_ID.match(name):
                # Known by name, so that what reads it is skipped, not told it does not exist.
                out.values[name] = POISONED
    return out
