"""How a resource type is declared: its properties, attributes, Ref value and builder.

A family module (ec2.py, lab.py, ...) describes each type with a ResourceType and registers it.
The builder gets a ResourceContext whose properties are already resolved, checked against the
declared kinds and converted (a 'cidr' property arrives as an IPv4Network, a 'ref' property as
the logical id it points at), so builders contain only the semantics of their type.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from testbed.errors import BadInput, TemplateErrors
from testbed.model import lab_view
from testbed.model.state import BuildState
from testbed.model.types import IgnoredProperty, RoleSpec, Source
from testbed.template.intrinsics import Base64Text, as_text
from testbed.template.nodes import LDict, describe, did_you_mean, line_of

KINDS = ("string", "integer", "boolean", "list", "map", "cidr", "ip", "ref", "any")


@dataclass(frozen=True)
class Prop:
    """A property's kind, whether it is required, and for 'ref' the resource types it accepts."""

    kind: str
    required: bool = False
    refs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown property kind {self.kind!r}")
        if (self.kind == "ref") != bool(self.refs):
            raise ValueError("a 'ref' property needs the resource types it accepts")


def prop(kind: str, *, required: bool = False) -> Prop:
    """A property of a simple kind (string, integer, boolean, list, map, cidr, ip, any)."""
    return Prop(kind, required)


def ref(*types: str, required: bool = False) -> Prop:
    """A property holding the Ref value of a resource of one of `types`."""
    return Prop("ref", required, tuple(types))


Attribute = Callable[[BuildState, str], Any]


@dataclass(frozen=True)
class ResourceType:
    """Everything the engine needs to know about one resource type."""

    name: str
    build: Callable[[ResourceContext], None]
    properties: Mapping[str, Prop] = field(default_factory=dict)
    # AWS-only properties accepted without meaning in the lab (listed in StackModel.ignored).
    ignored: frozenset[str] = frozenset()
    # Real AWS properties the lab cannot do (yet): property -> what to tell the author.
    unsupported: Mapping[str, str] = field(default_factory=dict)
    ref_prefix: str = ""  # Ref value = ref_prefix + logical id
    attributes: Mapping[str, Attribute] = field(default_factory=dict)
    # Attributes only final once every resource of the listed types exists (an instance's
    # public address needs the routing): a resource that reads them is created after those.
    attribute_waits_for: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    accepts_role: bool = False  # Metadata.Lab.Role allowed (hosts only)
    # Called for every enabled resource of this type before anything is built, with its raw
    # properties: lets a type set aside literal addresses so allocation never steals them.
    prepare: Callable[[str, Any, BuildState], None] | None = None
    # The Ref value when it is only known once the resource is built (an ARN holds the name
    # a property may set); replaces ref_prefix.
    ref_value: Callable[[BuildState, str], str] | None = None

    def physical_id(self, logical_id: str, qualifier: str = "") -> str:
        """The readable id `Ref` gives for a resource of this type (without ref_value);
        qualifier: the stack's (BuildState.qualifier), "" for a lab's first stack."""
        return self.ref_prefix + qualifier + logical_id


@dataclass
class ResourceContext:
    """One resource being built: its checked properties and where to report problems."""

    logical_id: str
    type: ResourceType
    source: Source
    props: dict[str, Any]
    lines: dict[str, int | None]
    state: BuildState
    role: RoleSpec | None = None
    # The resource's resolved Metadata (custom resources read Metadata.Lab.Attributes).
    metadata: Any = None

    def line(self, prop_name: str | None = None) -> int | None:
        """The line of a property, or of the resource."""
        if prop_name is not None and self.lines.get(prop_name) is not None:
            return self.lines[prop_name]
        return self.source.line

    def fail(
        self,
        message: str,
        *,
        prop: str | None = None,
        hint: str | None = None,
        line: int | None = None,
    ) -> BadInput:
        """A BadInput located at a property of this resource (raise it)."""
        return BadInput(
            message, line=line or self.line(prop), logical_id=self.logical_id, hint=hint
        )

    def relocate(self, err: BadInput, prop: str | None = None) -> BadInput:
        """An error raised without a location, placed at a property of this resource."""
        return self.fail(err.message, prop=prop, hint=err.hint)


_BOOL_TEXT = {"true": True, "false": False}
_KIND_NAMES = {
    "string": "text",
    "cidr": "a CIDR block",
    "ip": "an IPv4 address",
    "ref": "a resource id (write !Ref <LogicalId>)",
}


def coerce(spec: Prop, value: Any, name: str, state: BuildState) -> Any:
    """Check `value` against `spec` and convert it; BadInput (without a location) if wrong."""
    kind = spec.kind
    if value is None:
        raise BadInput(f"{name} has no value")
    if kind == "any":
        return value
    if kind == "list":
        if not isinstance(value, list):
            raise BadInput(f"{name} must be a list, not {describe(value)}")
        return value
    if kind == "map":
        if not isinstance(value, dict):
            raise BadInput(f"{name} must be a mapping, not {describe(value)}")
        return value
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _BOOL_TEXT:
            return _BOOL_TEXT[value.lower()]
        raise BadInput(f"{name} must be true or false, not {value!r}")
    if kind == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,18}\s*", value):
            return int(value)
        raise BadInput(f"{name} must be a whole number, not {value!r}")
    if kind == "string" and isinstance(value, str):
        return value  # keeps Base64Text, whose plain text UserData needs
    text = as_text(value)
    if text is None or (kind != "string" and isinstance(value, bool)):
        raise BadInput(f"{name} must be {_KIND_NAMES[kind]}, not {describe(value)}")
    if kind == "string":
        return text
    if kind == "cidr":
        return _cidr(text, name)
    if kind == "ip":
        try:
            return IPv4Address(text.strip())
        except ValueError:
            raise BadInput(f"{name} {text!r} is not an IPv4 address such as 10.0.0.10") from None
    return _logical_id(spec, text, name, state)


def _cidr(text: str, name: str) -> IPv4Network:
    try:
        return IPv4Network(text.strip())
    except ValueError:
        pass
    try:
        loose = IPv4Network(text.strip(), strict=False)
    except ValueError:
        raise BadInput(
            f"{name} {text!r} is not an IPv4 CIDR block such as 10.0.0.0/16",
            hint="IPv6 is not supported by the lab" if ":" in text else None,
        ) from None
    raise BadInput(f"{name} {text!r} has host bits set", hint=f"did you mean {loose}?")


def _scope(state: BuildState) -> str:
    """What an id must name: "stack" when built alone, "lab" when other stacks are there."""
    return "stack" if state.lab is None else "lab"


def _logical_id(spec: Prop, text: str, name: str, state: BuildState) -> str:
    wanted = " or ".join(spec.refs)
    target = state.physical_ids.get(text)
    if target is None:
        target = lab_view.mirror(state, text, spec.refs)  # another stack's resource
    if target is None:
        hint = None
        if text in state.types:
            hint = f"write !Ref {text} to use that resource"
        raise BadInput(
            f"{name} {text!r} is not the id of a resource of this {_scope(state)}; it must "
            f"refer to an {wanted}",
            hint=hint or f"use !Ref <an {wanted}>",
        )
    if state.types[target] not in spec.refs:
        raise BadInput(
            f"{name} refers to {target}, which is an {state.types[target]}, not an {wanted}"
        )
    if target not in state.built:
        raise BadInput(
            f"{name} names {target} before it is created",
            hint=f"write !Ref {target} so that {target} is created first",
        )
    return target


def convert(ctx: ResourceContext, spec: Prop, value: Any, where: str, line: int | None) -> Any:
    """One value checked and converted like a property of kind `spec`, located."""
    try:
        return coerce(spec, value, where, ctx.state)
    except BadInput as err:
        raise ctx.fail(err.message, line=line, hint=err.hint) from None


def text_list(ctx: ResourceContext, value: Any, where: str, line: int | None) -> list[str]:
    """A list of scalars as text (condition values, group ids, ...)."""
    if not isinstance(value, list):
        raise ctx.fail(f"{where} must be a list, not {describe(value)}", line=line)
    result = []
    for index, item in enumerate(value):
        text = as_text(item)
        if text is None:
            raise ctx.fail(
                f"{where}[{index}] must be text, not {describe(item)}",
                line=line_of(value, index, line),
            )
        result.append(text)
    return result


def find_built(
    ctx: ResourceContext,
    text: str,
    type_name: str,
    what: str,
    built: Iterable[str],
    where: str,
    line: int | None,
    hint: str,
) -> str:
    """The logical id of the resource of type `type_name` whose physical id is `text`, once
    it is built; a located error otherwise (`what` names the kind in words, `hint` is for an
    id this stack does not create)."""
    state = ctx.state
    target = state.physical_ids.get(text)
    if target is None:
        try:
            target = lab_view.mirror(state, text, [type_name])  # another stack's resource
        except BadInput as err:
            raise ctx.fail(err.message, line=line, hint=err.hint) from None
    if target is None:
        raise ctx.fail(
            f"{where} {text!r} is not the id of a {what} of this {_scope(state)}",
            line=line,
            hint=hint,
        )
    if state.types[target] != type_name:
        raise ctx.fail(
            f"{where} refers to {target}, which is an {state.types[target]}, not an {type_name}",
            line=line,
        )
    if target not in built:
        raise ctx.fail(
            f"{where} names {target} before it is created",
            line=line,
            hint=f"write !Ref {target} so that {target} is created first",
        )
    return target


def check_properties(
    owner: str,
    values: LDict,
    properties: Mapping[str, Prop],
    ignored: frozenset[str],
    unsupported: Mapping[str, str],
    state: BuildState,
    *,
    path: str = "",
    line: int | None = None,
) -> tuple[dict[str, Any], dict[str, int | None]]:
    """Check resolved properties against their declaration: (converted values, lines).

    Every problem found is collected; several come back as one TemplateErrors.
    """
    errors: list[BadInput] = []
    converted: dict[str, Any] = {}
    lines: dict[str, int | None] = {}
    known = list(properties) + sorted(ignored) + ["Tags"]
    for key, value in values.items():
        at = line_of(values, key, line)
        shown = f"{path}{key}"
        if key == "Tags" and "Tags" not in properties:  # a type may declare its own Tags
            if not isinstance(value, list) or not all(
                isinstance(t, dict) and "Key" in t for t in value
            ):
                errors.append(
                    BadInput(
                        "Tags must be a list of {Key: ..., Value: ...}", line=at, logical_id=owner
                    )
                )
            continue
        if key in ignored:
            state.ignored.append(IgnoredProperty(owner, shown))
            continue
        if key in unsupported:
            errors.append(BadInput(f"{shown}: {unsupported[key]}", line=at, logical_id=owner))
            continue
        if key not in properties:
            errors.append(
                BadInput(
                    f"unknown property {shown}",
                    line=at,
                    logical_id=owner,
                    hint=did_you_mean(key, known) or f"the properties are: {', '.join(known)}",
                )
            )
            continue
        try:
            converted[key] = coerce(properties[key], value, shown, state)
            lines[key] = at
        except BadInput as err:
            errors.append(BadInput(err.message, line=at, logical_id=owner, hint=err.hint))
    for key, spec in properties.items():
        if spec.required and key not in values:
            errors.append(
                BadInput(
                    f"required property {path}{key} is missing",
                    line=line if line is not None else values.line,
                    logical_id=owner,
                )
            )
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise TemplateErrors(errors)
    return converted, lines


def user_data_text(value: Any) -> str:
    """UserData as the shell script it stands for: Fn::Base64 input, or decoded base64 text."""
    if isinstance(value, Base64Text):
        return value.plain
    text = str(value)
    compact = "".join(text.split())
    if compact and len(compact) % 4 == 0:
        try:
            return base64.b64decode(compact, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            pass
    return text
