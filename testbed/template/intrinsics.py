"""Intrinsic functions: Ref, Fn::GetAtt, Fn::Sub, Fn::Join, ... evaluated against a Scope.

`resolve` walks a raw template value and returns the same shape with every function replaced
by its result. Containers keep their line numbers (LDict/LList) so that the model builder can
still point at the line of a property after resolution. `AWS::NoValue` removes the property or
list item it stands for, as in CloudFormation.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import TYPE_CHECKING, Any, Protocol

from testbed.errors import BadInput
from testbed.template.nodes import LDict, LList, describe, did_you_mean, line_of

if TYPE_CHECKING:
    from testbed.template.conditions import ConditionTable

ACCOUNT_ID = "123456789012"
REGION_NAME = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
CONDITION_FUNCTIONS = ("Fn::Equals", "Fn::And", "Fn::Or", "Fn::Not")
LANGUAGE_EXTENSIONS = "AWS::LanguageExtensions"
UNSUPPORTED = {
    "Fn::Transform": "transforms (macros) are not supported",
    "Fn::ForEach": "Fn::ForEach needs the LanguageExtensions transform, which is not supported",
}
# Functions of the AWS::LanguageExtensions transform: refused unless the template declares it.
NEEDS_LANGUAGE_EXTENSIONS = ("Fn::Length", "Fn::ToJsonString")
# Functions of the Rules section only (testbed.template.rules evaluates them).
RULE_FUNCTIONS = (
    "Fn::Contains",
    "Fn::EachMemberEquals",
    "Fn::EachMemberIn",
    "Fn::RefAll",
    "Fn::ValueOf",
    "Fn::ValueOfAll",
)
# Sub variables: ${Name}, ${Res.Attr}, ${AWS::Region}; ${!Text} is the literal ${Text}.
SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class _NoValue:
    """The result of Ref AWS::NoValue: the surrounding property or list item disappears."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Any = _NoValue()


class _Poisoned:
    """The value of a parameter whose own value is wrong (that error is reported once): what
    reads it is skipped with no second error."""

    def __repr__(self) -> str:
        return "a bad parameter value"


POISONED: Any = _Poisoned()


class FollowUp(BadInput):
    """An error that only echoes one already reported (a read of a bad parameter): collectors
    of errors drop it, and the resource, condition or output that raised it is skipped."""


class Base64Text(str):
    """The base64 text Fn::Base64 returns; `.plain` keeps the text it encodes (for UserData)."""

    plain: str

    def __new__(cls, plain: str) -> Base64Text:
        encoded = super().__new__(cls, base64.b64encode(plain.encode()).decode("ascii"))
        encoded.plain = plain
        return encoded


class ResourceView(Protocol):
    """What intrinsics may ask about resources while the model is being built."""

    def ref(self, logical_id: str) -> str:
        """The Ref value (physical id) of a declared, enabled resource."""

    def get_att(self, logical_id: str, attribute: str) -> Any:
        """An attribute of an already built resource; raises BadInput when it has none."""


@dataclass
class Scope:
    """The names an intrinsic can see."""

    params: Mapping[str, Any]
    pseudo: Mapping[str, Any]
    mappings: Mapping[str, Any]
    region: str
    resource_names: frozenset[str] = frozenset()
    # Resources whose Condition is false: referring to them is an error that says why.
    disabled: Mapping[str, str] = field(default_factory=dict)
    conditions: ConditionTable | None = None
    resources: ResourceView | None = None  # None: parameters only (the Conditions section)
    # Exports of the lab's other stacks (Fn::ImportValue) and the template's transforms.
    imports: Mapping[str, Any] = field(default_factory=dict)
    transforms: tuple[str, ...] = ()
    # The export names Fn::ImportValue read (StackModel.imported: another stack's export in
    # use cannot be deleted).
    imported: set[str] = field(default_factory=set)


def pseudo_parameters(stack_name: str, region: str) -> dict[str, Any]:
    """The AWS:: pseudo parameters of a stack, with lab values where AWS would invent some."""
    stack_uuid = uuid.uuid5(uuid.NAMESPACE_URL, f"elb-lab/{region}/{stack_name}")
    return {
        "AWS::AccountId": ACCOUNT_ID,
        "AWS::NotificationARNs": [],
        "AWS::NoValue": NO_VALUE,
        "AWS::Partition": "aws",
        "AWS::Region": region,
        "AWS::StackId": f"arn:aws:cloudformation:{region}:{ACCOUNT_ID}:stack/"
        f"{stack_name}/{stack_uuid}",
        "AWS::StackName": stack_name,
        "AWS::URLSuffix": "amazonaws.com",
    }


def as_text(value: Any) -> str | None:
    """A scalar as text (numbers and booleans the way CloudFormation prints them), else None."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    return None


def function_key(value: Any, owner: str | None, line: int | None) -> str | None:
    """The intrinsic function a mapping stands for (Ref or Fn::X), or None for plain data."""
    if not isinstance(value, dict):
        return None
    special = [k for k in value if k == "Ref" or str(k).startswith("Fn::")]
    if not special:
        return None
    if len(value) > 1:
        others = ", ".join(repr(k) for k in value if k != special[0])
        raise BadInput(
            f"{special[0]} must be the only key of its mapping (also found {others})",
            line=line_of(value, special[0], line),
            logical_id=owner,
        )
    return special[0]


def sub_pieces(template: str) -> list[tuple[bool, str]]:
    """Split a Fn::Sub string into (is_variable, text) pieces; ${!X} becomes literal ${X}."""
    pieces: list[tuple[bool, str]] = []
    pos = 0
    for match in SUB_VARIABLE.finditer(template):
        if match.start() > pos:
            pieces.append((False, template[pos : match.start()]))
        inner = match.group(1)
        if inner.startswith("!"):
            pieces.append((False, "${" + inner[1:] + "}"))
        else:
            pieces.append((True, inner.strip()))
        pos = match.end()
    if pos < len(template):
        pieces.append((False, template[pos:]))
    return pieces


class _Call:
    """One intrinsic function call: its name, owner and line, for error messages."""

    def __init__(self, name: str, scope: Scope, owner: str | None, line: int | None) -> None:
        self.name, self.scope, self.owner, self.line = name, scope, owner, line

    def fail(self, message: str, hint: str | None = None) -> BadInput:
        return BadInput(f"{self.name}: {message}", line=self.line, logical_id=self.owner, hint=hint)

    def resolve(self, value: Any) -> Any:
        return resolve(value, self.scope, owner=self.owner, line=self.line)

    def args(self, raw: Any, count: int | tuple[int, int], shape: str) -> list[Any]:
        low, high = (count, count) if isinstance(count, int) else count
        if not isinstance(raw, list) or not low <= len(raw) <= high:
            raise self.fail(
                f"expects {shape}, got {describe(raw)}"
                + (f" of {len(raw)} items" if isinstance(raw, list) else "")
            )
        return list(raw)

    def text(self, value: Any, what: str) -> str:
        text = as_text(value)
        if text is None:
            raise self.fail(f"{what} must be text, not {describe(value)}")
        return text

    def integer(self, value: Any, what: str) -> int:
        if isinstance(value, bool):
            raise self.fail(f"{what} must be a whole number, not {value!r}")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,18}\s*", value):
            return int(value)
        raise self.fail(f"{what} must be a whole number, not {value!r}")


def _ref(call: _Call, raw: Any) -> Any:
    scope = call.scope
    if not isinstance(raw, str):
        raise call.fail(f"needs the name of a parameter or resource, not {describe(raw)}")
    if raw in scope.pseudo:
        value = scope.pseudo[raw]
        return list(value) if isinstance(value, list) else value
    if raw in scope.params:
        value = scope.params[raw]
        if value is POISONED:
            raise FollowUp(
                f"parameter {raw} has a bad value", line=call.line, logical_id=call.owner
            )
        return list(value) if isinstance(value, list) else value
    return _resource_ref(call, raw)


def _resource_ref(call: _Call, name: str) -> str:
    scope = call.scope
    if name in scope.disabled:
        raise call.fail(
            f"{name} is not created because its condition {scope.disabled[name]} is false",
            hint=f"guard this reference with Fn::If [{scope.disabled[name]}, ...]",
        )
    if name in scope.resource_names:
        if scope.resources is None:
            raise call.fail(
                f"{name} is a resource; only parameters, pseudo parameters and "
                "mappings can be used here"
            )
        return scope.resources.ref(name)
    choices = list(scope.params) + list(scope.pseudo) + sorted(scope.resource_names)
    raise call.fail(
        f"{name!r} is not a parameter, pseudo parameter or resource of this template",
        hint=did_you_mean(name, choices),
    )


def _get_att(call: _Call, raw: Any) -> Any:
    scope = call.scope
    if isinstance(raw, str):
        resource, _, attribute = raw.partition(".")
        parts: list[Any] = [resource, attribute]
    else:
        parts = call.args(raw, 2, "[LogicalId, AttributeName]")
    resource, attribute = parts[0], call.resolve(parts[1])
    if not isinstance(resource, str) or not isinstance(attribute, str) or not attribute:
        raise call.fail("expects a resource logical id and an attribute name (Resource.Attr)")
    _resource_ref(call, resource)  # the same existence checks and messages as Ref
    assert scope.resources is not None  # _resource_ref refused resources where there are none
    try:
        return scope.resources.get_att(resource, attribute)
    except BadInput as err:
        raise BadInput(
            err.message,
            line=err.line or call.line,
            logical_id=err.logical_id or call.owner,
            hint=err.hint,
        ) from None


def _sub(call: _Call, raw: Any) -> str:
    if isinstance(raw, list):
        template, variables = call.args(raw, 2, "a string or [string, {Name: value}]")
        if not isinstance(variables, dict):
            raise call.fail(f"the variables must be a mapping, not {describe(variables)}")
    else:
        template, variables = raw, {}
    if not isinstance(template, str):
        raise call.fail(f"the template must be a string, not {describe(template)}")
    out: list[str] = []
    for is_variable, text in sub_pieces(template):
        if not is_variable:
            out.append(text)
            continue
        if not text:
            raise call.fail("empty ${} in the string", hint="write ${!} for a literal ${}")
        if text in variables:
            value = call.resolve(variables[text])
        elif "." in text and not text.startswith("AWS::"):
            resource, _, attribute = text.partition(".")
            value = _get_att(call, [resource, attribute])
        else:
            try:
                value = _ref(call, text)
            except FollowUp:
                raise
            except BadInput as err:
                hint = err.hint or f"write ${{!{text}}} for a literal ${{{text}}}"
                raise BadInput(
                    err.message, line=err.line, logical_id=err.logical_id, hint=hint
                ) from None
        if value is NO_VALUE:
            raise call.fail(f"${{{text}}} is AWS::NoValue, which has no text")
        piece = as_text(value)
        if piece is None:
            raise call.fail(
                f"${{{text}}} is {describe(value)}, not text",
                hint="use Fn::Join to turn a list into text",
            )
        out.append(piece)
    return "".join(out)


def _join(call: _Call, raw: Any) -> str:
    delimiter, items = call.args(call.resolve(raw), 2, "[delimiter, [values]]")
    delimiter = call.text(delimiter, "the delimiter")
    if not isinstance(items, list):
        raise call.fail(f"the values to join must be a list, not {describe(items)}")
    return delimiter.join(call.text(item, "every value to join") for item in items)


def _select(call: _Call, raw: Any) -> Any:
    index, items = call.args(call.resolve(raw), 2, "[index, [values]]")
    index = call.integer(index, "the index")
    if not isinstance(items, list):
        raise call.fail(f"the values to select from must be a list, not {describe(items)}")
    if not 0 <= index < len(items):
        raise call.fail(
            f"index {index} is out of range for a list of {len(items)} item(s)",
            hint=f"use an index from 0 to {len(items) - 1}" if items else None,
        )
    return items[index]


def _split(call: _Call, raw: Any) -> list[str]:
    delimiter, source = call.args(call.resolve(raw), 2, "[delimiter, string]")
    delimiter = call.text(delimiter, "the delimiter")
    if not delimiter:
        raise call.fail("the delimiter must not be empty")
    return call.text(source, "the string to split").split(delimiter)


def _if(call: _Call, raw: Any) -> Any:
    name, when_true, when_false = call.args(
        raw, 3, "[ConditionName, value if true, value if false]"
    )
    if not isinstance(name, str):
        raise call.fail(f"the condition must be a condition name, not {describe(name)}")
    if call.scope.conditions is None:
        raise call.fail("conditions cannot be used here")
    chosen = call.scope.conditions.value(name, owner=call.owner, line=call.line)
    return call.resolve(when_true if chosen else when_false)


def _base64(call: _Call, raw: Any) -> Base64Text:
    return Base64Text(call.text(call.resolve(raw), "the value to encode"))


def _get_azs(call: _Call, raw: Any) -> list[str]:
    value = call.resolve(raw)
    # `Fn::GetAZs:` with nothing after it is the stack's region, as '' is.
    region = "" if value is None else call.text(value, "the region")
    region = region or call.scope.region
    if not REGION_NAME.match(region):
        raise call.fail(f"{region!r} is not a region name such as us-east-1")
    return region_azs(region)


def region_azs(region: str) -> list[str]:
    """The AZs of a region as the lab sees them (Fn::GetAZs, the default VPC's subnets).

    Three AZs per region, like most AWS regions; the lab makes one segment per AZ used.
    """
    return [region + letter for letter in "abc"]


def _cidr(call: _Call, raw: Any) -> list[str]:
    block, count, bits = call.args(call.resolve(raw), 3, "[ipBlock, count, cidrBits]")
    block = call.text(block, "ipBlock")
    try:
        # IPv6 blocks too, as AWS (templates carve a VPC's IPv6 block for their subnets).
        network: IPv4Network | IPv6Network = ip_network(block)
    except ValueError:
        try:
            hint = f"did you mean {ip_network(block, strict=False)}?"
        except ValueError:
            hint = None
        raise call.fail(f"{block!r} is not an IP network such as 10.0.0.0/16", hint=hint) from None
    count = call.integer(count, "count")
    bits = call.integer(bits, "cidrBits")
    if not 1 <= count <= 256:
        raise call.fail(f"count must be from 1 to 256, not {count}")
    width = network.max_prefixlen
    host_bits = width - network.prefixlen
    if not 0 <= bits <= host_bits:
        raise call.fail(
            f"cidrBits must be from 0 to {host_bits} for a /{network.prefixlen} block, not {bits}"
        )
    new_prefix = width - bits
    available = 1 << (new_prefix - network.prefixlen)
    if count > available:
        raise call.fail(f"{network} holds only {available} /{new_prefix} block(s), not {count}")
    size = 1 << bits
    start = int(network.network_address)
    return [str(ip_network((start + i * size, new_prefix))) for i in range(count)]


def _find_in_map(call: _Call, raw: Any) -> Any:
    args = call.args(call.resolve(raw), (3, 4), "[MapName, TopLevelKey, SecondLevelKey]")
    default_given = len(args) == 4
    if default_given and not (isinstance(args[3], dict) and set(args[3]) == {"DefaultValue"}):
        raise call.fail("the fourth argument must be {DefaultValue: value}")
    names = [call.text(arg, "every key") for arg in args[:3]]
    mappings = call.scope.mappings
    if names[0] not in mappings:
        raise call.fail(
            f"no mapping named {names[0]!r} in Mappings", hint=did_you_mean(names[0], mappings)
        )
    level: Any = mappings[names[0]]
    for depth, key in enumerate(names[1:], start=1):
        if key not in level:
            if default_given:
                return args[3]["DefaultValue"]
            where = " > ".join(names[:depth])
            raise call.fail(
                f"mapping {where} has no key {key!r}",
                hint=did_you_mean(key, level) or f"keys: {', '.join(level)}",
            )
        level = level[key]
    return level


def _import_value(call: _Call, raw: Any) -> Any:
    name = call.text(call.resolve(raw), "the export name")
    if name not in call.scope.imports:
        raise call.fail(
            f"No export named {name} found.",  # AWS's text
            hint="`testbed stacks LAB` lists the lab's exports; create the exporting stack "
            "first (testbed up ... --into LAB)",
        )
    call.scope.imported.add(name)
    value = call.scope.imports[name]
    return list(value) if isinstance(value, list) else value


def _length(call: _Call, raw: Any) -> int:
    value = call.resolve(raw)
    if not isinstance(value, list):
        raise call.fail(f"expects a list or a function that gives one, not {describe(value)}")
    return len(value)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, str) else value


def _to_json_string(call: _Call, raw: Any) -> str:
    value = call.resolve(raw)
    if not isinstance(value, (dict, list)):
        raise call.fail(f"expects a mapping or a list, not {describe(value)}")
    # Compact, as AWS gives it: {"key":"value"}.
    return json.dumps(_plain(value), separators=(",", ":"))


def _rule_only(call: _Call, raw: Any) -> Any:
    raise call.fail("this function can be used only in the Rules section")


def _condition_only(call: _Call, raw: Any) -> Any:
    raise call.fail(
        "condition functions can be used only in the Conditions section",
        hint="declare a condition there and use Fn::If [ConditionName, a, b]",
    )


FUNCTIONS: dict[str, Callable[[_Call, Any], Any]] = {
    "Ref": _ref,
    "Fn::GetAtt": _get_att,
    "Fn::Sub": _sub,
    "Fn::Join": _join,
    "Fn::Select": _select,
    "Fn::Split": _split,
    "Fn::If": _if,
    "Fn::Base64": _base64,
    "Fn::GetAZs": _get_azs,
    "Fn::Cidr": _cidr,
    "Fn::FindInMap": _find_in_map,
    "Fn::ImportValue": _import_value,
    "Fn::Length": _length,
    "Fn::ToJsonString": _to_json_string,
    **dict.fromkeys(CONDITION_FUNCTIONS, _condition_only),
    **dict.fromkeys(RULE_FUNCTIONS, _rule_only),
}


def call_function(name: str, raw: Any, scope: Scope, *, owner: str | None, line: int | None) -> Any:
    """Evaluate one intrinsic function `name` with its raw (unresolved) argument."""
    call = _Call(name, scope, owner, line)
    if name in UNSUPPORTED:
        raise BadInput(f"{name} is not supported: {UNSUPPORTED[name]}", line=line, logical_id=owner)
    if name in NEEDS_LANGUAGE_EXTENSIONS and LANGUAGE_EXTENSIONS not in scope.transforms:
        raise BadInput(
            f"{name} is not supported here: it needs the {LANGUAGE_EXTENSIONS} transform",
            line=line,
            logical_id=owner,
            hint=f"add Transform: {LANGUAGE_EXTENSIONS} to the template",
        )
    if name not in FUNCTIONS:
        raise BadInput(
            f"unknown intrinsic function {name}",
            line=line,
            logical_id=owner,
            hint=did_you_mean(name, FUNCTIONS),
        )
    return FUNCTIONS[name](call, raw)


def resolve(value: Any, scope: Scope, *, owner: str | None, line: int | None = None) -> Any:
    """Evaluate every intrinsic function in `value`; NO_VALUE when the whole value vanishes."""
    if isinstance(value, dict):
        name = function_key(value, owner, line)
        if name is not None:
            return call_function(
                name, value[name], scope, owner=owner, line=line_of(value, name, line)
            )
        result = LDict(line=getattr(value, "line", None) or line)
        for key, item in value.items():
            item_line = line_of(value, key, line)
            resolved = resolve(item, scope, owner=owner, line=item_line)
            if resolved is not NO_VALUE:
                result[key] = resolved
                if item_line is not None:
                    result.lines[key] = item_line
        return result
    if isinstance(value, list):
        items = LList(line=getattr(value, "line", None) or line)
        for index, item in enumerate(value):
            item_line = line_of(value, index, line)
            resolved = resolve(item, scope, owner=owner, line=item_line)
            if resolved is not NO_VALUE:
                items.append(resolved)
                items.lines.append(item_line)
        return items
    return value
