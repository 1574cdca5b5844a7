"""Read a template (YAML or JSON) into LDict/LList trees that keep line numbers.

CloudFormation's YAML short forms (`!Ref X`, `!GetAtt A.B`, `!Sub ...`) become the long forms
(`{"Ref": "X"}`, `{"Fn::GetAtt": ["A", "B"]}`) right here, so nothing downstream needs to know
which syntax the author used. Duplicate keys are errors: YAML would silently keep the last one,
which hides exactly the kind of copy-paste mistake a template author needs to hear about.
"""

from __future__ import annotations

import bisect
import json
import json.decoder
import json.scanner
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from testbed.errors import BadInput
from testbed.template.nodes import LDict, LList, did_you_mean

# Short form tag -> long form key.
SHORT_FORMS: dict[str, str] = {
    "!Ref": "Ref",
    "!Condition": "Condition",
    "!Sub": "Fn::Sub",
    "!GetAtt": "Fn::GetAtt",
    "!Join": "Fn::Join",
    "!Select": "Fn::Select",
    "!Split": "Fn::Split",
    "!If": "Fn::If",
    "!Base64": "Fn::Base64",
    "!GetAZs": "Fn::GetAZs",
    "!Cidr": "Fn::Cidr",
    "!FindInMap": "Fn::FindInMap",
    "!Equals": "Fn::Equals",
    "!And": "Fn::And",
    "!Or": "Fn::Or",
    "!Not": "Fn::Not",
    "!ImportValue": "Fn::ImportValue",
    "!Transform": "Fn::Transform",
    # AWS::LanguageExtensions
    "!Length": "Fn::Length",
    "!ToJsonString": "Fn::ToJsonString",
    # The Rules section
    "!Contains": "Fn::Contains",
    "!EachMemberEquals": "Fn::EachMemberEquals",
    "!EachMemberIn": "Fn::EachMemberIn",
    "!RefAll": "Fn::RefAll",
    "!ValueOf": "Fn::ValueOf",
    "!ValueOfAll": "Fn::ValueOfAll",
}

_MERGE_TAG = "tag:yaml.org,2002:merge"
_STD_PREFIX = "tag:yaml.org,2002:"
# Plain scalars YAML 1.1 reads as something other than their text (Yes -> true, 010 -> 8):
# CloudFormation reads parameter attributes as text, so the written text is kept beside them.
_NOT_TEXT_TAGS = (_STD_PREFIX + "bool", _STD_PREFIX + "int", _STD_PREFIX + "float")


# libyaml's parser is ~10x faster than the pure-Python one; the constructors are the same
# (the type checker sees SafeLoader: a base chosen at run time is no type).
if TYPE_CHECKING:
    _BaseLoader = yaml.SafeLoader
else:
    _BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class TemplateLoader(_BaseLoader):
    """SafeLoader that builds LDict/LList and understands CloudFormation short forms."""


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _construct_mapping(loader: TemplateLoader, node: Node) -> LDict:
    if not isinstance(node, MappingNode):
        raise ConstructorError(None, None, "expected a mapping here", node.start_mark)
    first_seen: dict[str, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:
            continue
        if not isinstance(key_node, ScalarNode):
            raise ConstructorError(
                None,
                None,
                "a mapping key must be plain text, not a list or mapping",
                key_node.start_mark,
            )
        key = key_node.value
        if key in first_seen:
            raise ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first given on line {first_seen[key]}); "
                "keep only one of them",
                key_node.start_mark,
            )
        first_seen[key] = _line(key_node)
    # Merge keys (<<: *anchor) are expanded here; explicit keys after a merge override it.
    loader.flatten_mapping(node)
    result = LDict(line=_line(node))
    for key_node, value_node in node.value:
        if not isinstance(key_node, ScalarNode):
            raise ConstructorError(
                None,
                None,
                "a mapping key must be plain text, not a list or mapping",
                key_node.start_mark,
            )
        key = str(key_node.value)
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = _line(key_node)
        if _not_text(value_node):
            result.texts[key] = value_node.value
    return result


def _not_text(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag in _NOT_TEXT_TAGS


def _construct_sequence(loader: TemplateLoader, node: Node) -> LList:
    if not isinstance(node, SequenceNode):
        raise ConstructorError(None, None, "expected a list here", node.start_mark)
    result = LList(line=_line(node))
    for index, item in enumerate(node.value):
        result.append(loader.construct_object(item, deep=True))
        result.lines.append(_line(item))
        if _not_text(item):
            result.texts[index] = item.value
    return result


def _construct_text(loader: TemplateLoader, node: ScalarNode) -> str:
    # Dates such as 2010-09-09 stay text: CloudFormation has no date type.
    return str(loader.construct_scalar(node))


def _unsupported_standard_tag(loader: TemplateLoader, node: Node) -> Any:
    name = "!!" + node.tag[len(_STD_PREFIX) :]
    raise ConstructorError(
        None, None, f"the YAML tag {name} is not supported in templates", node.start_mark
    )


def _construct_unknown_tag(loader: TemplateLoader, node: Node) -> Any:
    tag = node.tag
    shown = "!!" + tag[len(_STD_PREFIX) :] if tag.startswith(_STD_PREFIX) else tag
    hint = did_you_mean(shown, SHORT_FORMS) if shown.startswith("!") else None
    message = f"unknown tag {shown}"
    if hint:
        message += f"; {hint}"
    raise ConstructorError(None, None, message, node.start_mark)


def _short_form(long_key: str) -> Callable[[TemplateLoader, Node], LDict]:
    def construct(loader: TemplateLoader, node: Node) -> LDict:
        value: Any
        if isinstance(node, ScalarNode):
            value = str(loader.construct_scalar(node))
            if long_key == "Fn::GetAtt":
                # !GetAtt Res.Attr.Maybe.Dotted: the logical id never contains a dot.
                resource, dot, attribute = value.partition(".")
                if dot:
                    value = LList([resource, attribute], line=_line(node))
                    value.lines = [_line(node), _line(node)]
        elif isinstance(node, SequenceNode):
            value = _construct_sequence(loader, node)
        else:
            value = _construct_mapping(loader, node)
        result = LDict({long_key: value}, line=_line(node))
        result.lines[long_key] = _line(node)
        return result

    return construct


TemplateLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
TemplateLoader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)
TemplateLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_text)
for _tag in ("binary", "set", "omap", "pairs"):
    TemplateLoader.add_constructor(_STD_PREFIX + _tag, _unsupported_standard_tag)
TemplateLoader.add_constructor(None, _construct_unknown_tag)
for _short, _long in SHORT_FORMS.items():
    TemplateLoader.add_constructor(_short, _short_form(_long))


def _yaml_error(err: yaml.YAMLError, filename: str, text: str) -> BadInput:
    line = None
    hint = None
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    position = getattr(err, "position", None)  # ReaderError (bad characters) has one
    if mark is not None:
        line = mark.line + 1
    elif isinstance(position, int):
        line = text.count("\n", 0, position) + 1
    problem = getattr(err, "problem", None)
    context = getattr(err, "context", None)
    if problem:
        message = f"{problem}"
        if context:
            message += f" ({context})"
    else:
        message = str(err).splitlines()[0] if str(err) else "cannot parse"
    if isinstance(err, ConstructorError):
        # Our own constructors word their messages for template authors already.
        return BadInput(message, file=filename, line=line)
    lines = text.splitlines()
    if line is not None and 0 < line <= len(lines) and "\t" in lines[line - 1]:
        hint = "YAML does not allow tabs for indentation; indent with spaces"
    return BadInput(f"YAML syntax error: {message}", file=filename, line=line, hint=hint)


class _LineIndex:
    """Maps character offsets to 1-based lines in O(log n)."""

    def __init__(self, text: str) -> None:
        self.newlines = [i for i, ch in enumerate(text) if ch == "\n"]

    def line(self, offset: int) -> int:
        return bisect.bisect_left(self.newlines, offset) + 1


def _load_json(text: str, filename: str) -> Any:
    """Parse JSON with the standard decoder, recording where each object and array starts."""
    index = _LineIndex(text)
    decoder = json.JSONDecoder()

    def parse_object(
        s_and_end, strict, scan_once, object_hook, object_pairs_hook, memo=None, *args
    ):
        s, end = s_and_end
        starts: list[int] = []

        def recording_scan(string: str, idx: int) -> Any:
            starts.append(idx)
            return scan_once(string, idx)

        # JSONObject, JSONArray, py_make_scanner and the decoder's parse_object,
        # parse_array, scan_once are the pure-Python decoder's internals: stable since
        # Python 3.1, but not in typeshed's stubs (hence the attr-defined ignores).
        pairs, new_end = json.decoder.JSONObject(  # type: ignore[attr-defined]
            (s, end), strict, recording_scan, None, list, memo
        )
        result = LDict(line=index.line(end - 1))
        for (key, value), start in zip(pairs, starts, strict=True):
            if key in result:
                raise BadInput(
                    f"duplicate key {key!r} (first given on line {result.lines[key]}); "
                    "keep only one of them",
                    file=filename,
                    line=index.line(start),
                )
            result[key] = value
            result.lines[key] = index.line(start)
        return result, new_end

    def parse_array(s_and_end, scan_once, *args):
        s, end = s_and_end
        starts: list[int] = []

        def recording_scan(string: str, idx: int) -> Any:
            starts.append(idx)
            return scan_once(string, idx)

        values, new_end = json.decoder.JSONArray(  # type: ignore[attr-defined]
            (s, end), recording_scan
        )
        result = LList(values, line=index.line(end - 1))
        result.lines = [index.line(start) for start in starts[: len(values)]]
        return result, new_end

    decoder.parse_object = parse_object  # type: ignore[attr-defined]  # internals, see above
    decoder.parse_array = parse_array  # type: ignore[attr-defined]
    # The C scanner ignores parse_object/parse_array; the pure-Python one calls them.
    decoder.scan_once = json.scanner.py_make_scanner(decoder)  # type: ignore[attr-defined]
    return decoder.decode(text)


def _parse(text: str, filename: str) -> Any:
    if filename.lower().endswith(".json"):
        # A .json file is read as JSON: YAML would accept some invalid JSON ({"a": }).
        try:
            return _load_json(text, filename)
        except json.JSONDecodeError as err:
            raise BadInput(
                f"JSON syntax error: {err.msg}", file=filename, line=err.lineno
            ) from None
    try:
        return yaml.load(text, Loader=TemplateLoader)  # TemplateLoader is a SafeLoader
    except yaml.YAMLError as err:
        yaml_failure = _yaml_error(err, filename, text)
    if not text.lstrip().startswith("{"):
        raise yaml_failure
    # JSON with tabs (or other things YAML 1.1 rejects) is still valid JSON.
    try:
        return _load_json(text, filename)
    except json.JSONDecodeError:
        raise yaml_failure from None


# YAML aliases can make a small file stand for an enormous tree ("billion laughs"); every
# later phase walks the expanded tree, so refuse templates that expand beyond this.
MAX_EXPANDED_NODES = 1_000_000


def _expanded_size(value: Any, memo: dict[int, int]) -> int:
    """Number of nodes `value` stands for once aliases are expanded (shared parts counted once
    per use, computed once per object)."""
    if not isinstance(value, (dict, list)):
        return 1
    key = id(value)
    if key not in memo:
        items = value.values() if isinstance(value, dict) else value
        memo[key] = 1 + sum(_expanded_size(item, memo) for item in items)
    return memo[key]


def load_text(text: str, filename: str) -> LDict:
    """Parse template text (YAML or JSON) into an LDict; raise BadInput on any syntax error."""
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        document = _parse(text, filename)
    except RecursionError:
        raise BadInput("the template is nested too deeply to read", file=filename) from None
    try:
        too_big = _expanded_size(document, {}) > MAX_EXPANDED_NODES
    except RecursionError:
        too_big = True
    if too_big:
        raise BadInput(
            "the template is too large or nested too deeply once its YAML aliases are expanded",
            file=filename,
        )
    if document is None:
        raise BadInput(
            "the template is empty",
            file=filename,
            line=1,
            hint="a template needs at least a Resources section",
        )
    if not isinstance(document, LDict):
        raise BadInput(
            "a template must be a mapping of sections (Resources, Parameters, ...)",
            file=filename,
            line=1,
        )
    return document
