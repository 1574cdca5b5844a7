"""Who refers to whom: references found in raw template values, and the creation order.

A reference is a Ref, a Fn::GetAtt, a ${Name} or ${Res.Attr} inside Fn::Sub, or a DependsOn
entry. Only the taken branch of Fn::If counts (conditions are known before resources), which
is what lets `!If [HasX, !Ref X, !Ref AWS::NoValue]` name a resource that is not created.
"""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from testbed.errors import BadInput
from testbed.template.conditions import ConditionTable
from testbed.template.intrinsics import function_key, sub_pieces
from testbed.template.nodes import line_of


@dataclass(frozen=True)
class Reference:
    """One use of another logical id; attribute is set for Fn::GetAtt and ${Res.Attr}."""

    target: str
    attribute: str | None
    line: int | None
    via: str


def _safe_key(value: dict, line: int | None) -> str | None:
    try:
        return function_key(value, None, line)
    except BadInput:
        return None  # reported when the value is resolved


def find_references(
    value: Any, conditions: ConditionTable | None, *, line: int | None = None
) -> Iterator[Reference]:
    """Every reference to a logical id or pseudo parameter inside a raw value."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield from find_references(item, conditions, line=line_of(value, index, line))
        return
    if not isinstance(value, dict):
        return
    name = _safe_key(value, line)
    if name is None:
        for key, item in value.items():
            yield from find_references(item, conditions, line=line_of(value, key, line))
        return
    arg = value[name]
    at = line_of(value, name, line)
    if name == "Ref":
        if isinstance(arg, str):
            yield Reference(arg, None, at, "Ref")
    elif name == "Fn::GetAtt":
        yield from _get_att_references(arg, conditions, at)
    elif name == "Fn::Sub":
        yield from _sub_references(arg, conditions, at)
    elif name == "Fn::If" and isinstance(arg, list) and len(arg) == 3:
        branches = [arg[1], arg[2]]
        if isinstance(arg[0], str) and conditions is not None:
            with contextlib.suppress(BadInput):  # the condition's own error is reported elsewhere
                branches = [arg[1] if conditions.value(arg[0]) else arg[2]]
        for branch in branches:
            yield from find_references(branch, conditions, line=at)
    else:
        yield from find_references(arg, conditions, line=at)


def _get_att_references(
    arg: Any, conditions: ConditionTable | None, line: int | None
) -> Iterator[Reference]:
    if isinstance(arg, str) and "." in arg:
        resource, _, attribute = arg.partition(".")
        yield Reference(resource, attribute, line, "Fn::GetAtt")
    elif isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str):
        named = arg[1] if isinstance(arg[1], str) else None
        yield Reference(arg[0], named, line, "Fn::GetAtt")
        yield from find_references(arg[1], conditions, line=line)


def _sub_references(
    arg: Any, conditions: ConditionTable | None, line: int | None
) -> Iterator[Reference]:
    template, variables = arg, {}
    if isinstance(arg, list) and len(arg) == 2:
        template, variables = arg
        if isinstance(variables, dict):
            yield from find_references(variables, conditions, line=line)
        else:
            variables = {}
    if not isinstance(template, str):
        return
    for is_variable, text in sub_pieces(template):
        if not is_variable or not text or text in variables:
            continue
        if text.startswith("AWS::"):
            yield Reference(text, None, line, "Fn::Sub")
            continue
        resource, dot, attribute = text.partition(".")
        yield Reference(resource, attribute if dot else None, line, "Fn::Sub")


def depends_on(raw: Any, line: int | None, owner: str) -> list[Reference]:
    """The DependsOn attribute (a name or a list of names) as references."""
    names = [raw] if isinstance(raw, str) else raw
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BadInput(
            "DependsOn must be a logical id or a list of logical ids", line=line, logical_id=owner
        )
    return [Reference(n, None, line_of(raw, i, line), "DependsOn") for i, n in enumerate(names)]


def find_cycle(nodes: Sequence[str], deps: Mapping[str, set[str]]) -> list[str]:
    """A dependency loop among `nodes` as [a, b, ..., a], or [] if there is none."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        # Only nodes of `nodes` (a dependency on anything else is reported elsewhere).
        for nxt in sorted((d for d in deps.get(node, ()) if d in order), key=order.__getitem__):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return []

    order = {n: i for i, n in enumerate(nodes)}
    for node in nodes:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def creation_order(nodes: Sequence[str], deps: Mapping[str, set[str]]) -> list[str] | None:
    """Dependencies first, ties broken by declaration order; None when there is a loop."""
    position = {n: i for i, n in enumerate(nodes)}
    waiting = {n: {d for d in deps.get(n, ()) if d in position} for n in nodes}
    users: dict[str, list[str]] = {n: [] for n in nodes}
    for node, needs in waiting.items():
        for need in needs:
            users[need].append(node)
    ready = [position[n] for n in nodes if not waiting[n]]
    heapq.heapify(ready)
    result: list[str] = []
    while ready:
        node = nodes[heapq.heappop(ready)]
        result.append(node)
        for user in users[node]:
            waiting[user].discard(node)
            if not waiting[user]:
                heapq.heappush(ready, position[user])
    return result if len(result) == len(nodes) else None
