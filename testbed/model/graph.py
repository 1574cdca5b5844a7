"""The dependency graph of a stack: references checked, edges collected, loops explained.

Every reference must name something that exists and is created; each one between resources
becomes an edge. Reading an attribute that is final only after routing (an instance's public
IP) adds edges to every routing resource, so the reader is created after all of them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from testbed.errors import BadInput
from testbed.model.declarations import Declaration, ResourceDeclaration
from testbed.template.conditions import ConditionTable
from testbed.template.nodes import did_you_mean
from testbed.template.references import Reference, depends_on, find_references

SECURITY_GROUP = "AWS::EC2::SecurityGroup"  # (group_refs is a resource module: above us)
Edges = dict[str, dict[str, Reference]]  # owner -> {target: the first reference to it}


@dataclass(frozen=True)
class Names:
    """What a logical id in a reference can stand for."""

    resources: Mapping[str, ResourceDeclaration]  # well-formed resource declarations
    declared: frozenset[str]  # every key of Resources, including malformed ones
    params: Mapping[str, Any]
    pseudo: Mapping[str, Any]


def unknown_attribute(
    logical_id: str, type_name: str, attribute: str, known: Iterable[str]
) -> BadInput:
    """The error for Fn::GetAtt of an attribute the resource type does not have."""
    names = sorted(known)
    return BadInput(
        f"{logical_id} ({type_name}) has no attribute {attribute!r}; its "
        f"attributes: {', '.join(names) or 'none'}",
        hint=did_you_mean(attribute, names),
    )


def _shown(ref: Reference) -> str:
    return {
        "Ref": f"Ref {ref.target}",
        "Fn::GetAtt": f"Fn::GetAtt {ref.target}.{ref.attribute}",
        "Fn::Sub": f"${{{ref.target}}} in Fn::Sub",
        "DependsOn": f"DependsOn {ref.target}",
    }.get(ref.via, ref.target)


def _missing(ref: Reference, owner: str, names: Names, what: str) -> BadInput | None:
    if ref.target in names.declared:
        return None  # a resource with its own (already reported) problem
    if ref.target in names.params:
        return BadInput(
            f"{what}: {ref.target} is a parameter, not a resource", line=ref.line, logical_id=owner
        )
    only_resources = ref.via in ("DependsOn", "Fn::GetAtt")
    choices = list(names.resources) if only_resources else [*names.params, *names.resources]
    hint = did_you_mean(ref.target, choices)
    if ref.via == "Fn::Sub" and hint is None:
        hint = f"write ${{!{ref.target}}} for a literal ${{{ref.target}}}"
    kind = "resource" if only_resources else "parameter or resource"
    return BadInput(
        f"{what}: there is no {kind} named {ref.target!r}",
        line=ref.line,
        logical_id=owner,
        hint=hint,
    )


def check_reference(ref: Reference, owner: str, names: Names) -> BadInput | None:
    """Why a reference is wrong (dangling, not created, bad attribute), or None if fine."""
    what = _shown(ref)
    if ref.target.startswith("AWS::"):
        if ref.target in names.pseudo and ref.via in ("Ref", "Fn::Sub"):
            return None
        return BadInput(
            f"{what}: unknown pseudo parameter",
            line=ref.line,
            logical_id=owner,
            hint=did_you_mean(ref.target, names.pseudo),
        )
    if ref.target in names.params and ref.via in ("Ref", "Fn::Sub") and ref.attribute is None:
        return None
    decl = names.resources.get(ref.target)
    if decl is None:
        return _missing(ref, owner, names, what)
    if not decl.enabled:
        return BadInput(
            f"{what}: {ref.target} is not created because its condition {decl.condition} is false",
            line=ref.line,
            logical_id=owner,
            hint=f"guard the reference with Fn::If [{decl.condition}, ...] or give "
            f"{owner} the same Condition",
        )
    resource_type = decl.resource_type
    if ref.attribute is not None and ref.attribute not in resource_type.attributes:
        err = unknown_attribute(
            ref.target, resource_type.name, ref.attribute, resource_type.attributes
        )
        return BadInput(f"{what}: {err.message}", line=ref.line, logical_id=owner, hint=err.hint)
    return None


def _references(decl: Declaration, conditions: ConditionTable) -> list[Reference]:
    refs: list[Reference] = []
    for key in ("Properties", "Metadata", "Value"):
        if key in decl.raw:
            refs.extend(find_references(decl.raw[key], conditions, line=decl.raw.line_of(key)))
    if "DependsOn" in decl.raw:
        refs.extend(
            depends_on(decl.raw["DependsOn"], decl.raw.line_of("DependsOn"), decl.logical_id)
        )
    return refs


def dependencies(
    declarations: Iterable[Declaration],
    names: Names,
    conditions: ConditionTable,
    report: Callable[[BadInput], None],
) -> Edges:
    """Check every reference of the created resources and outputs; edges between resources.

    Problems go to `report`, so that all of them are found in one pass.
    """
    by_type: dict[str, list[str]] = {}
    for resource in names.resources.values():
        if resource.enabled:
            by_type.setdefault(resource.resource_type.name, []).append(resource.logical_id)
    edges: Edges = {}
    for decl in declarations:
        if not decl.enabled:
            continue
        owner = decl.logical_id
        # Outputs are resolved after every resource: their references need checking only.
        own = edges.setdefault(owner, {}) if isinstance(decl, ResourceDeclaration) else {}
        try:
            refs = _references(decl, conditions)
        except BadInput as err:
            report(err)
            continue
        for ref in refs:
            problem = check_reference(ref, owner, names)
            if problem is not None:
                report(problem)
                continue
            target = names.resources.get(ref.target)
            if target is None:
                continue
            own.setdefault(ref.target, ref)
            waits = target.resource_type.attribute_waits_for.get(ref.attribute or "", ())
            for type_name in waits:
                for other in by_type.get(type_name, ()):
                    if other != owner:
                        reason = f"reads {ref.target}.{ref.attribute}, known once routing is done"
                        own.setdefault(other, Reference(other, None, ref.line, reason))
    return edges


def check_lab_metadata(
    lab: Any, names: Names, conditions: ConditionTable, report: Callable[[BadInput], None]
) -> None:
    """Check the references in the template's Metadata.Lab (resolved after all resources)."""
    for ref in find_references(lab, conditions):
        err = check_reference(ref, "Metadata", names)
        if err is not None:
            report(err)


def cycle_error(
    cycle: list[str], edges: Edges, resources: Mapping[str, ResourceDeclaration]
) -> BadInput:
    """The error for a dependency loop, with each step and its line."""
    steps = []
    for a, b in itertools.pairwise(cycle):
        ref = edges[a][b]
        where = f" on line {ref.line}" if ref.line else ""
        steps.append(f"{a} uses {b} ({ref.via}{where})")
    first = edges[cycle[0]][cycle[1]]
    advice = "Remove one of these references or DependsOn"
    if all(resources[lid].resource_type.name == SECURITY_GROUP for lid in cycle):
        # AWS's own answer to groups whose embedded rules name each other (or themselves).
        advice = (
            "Security groups whose embedded rules name each other (or themselves) form a "
            "loop: move those rules into standalone AWS::EC2::SecurityGroupIngress / "
            "SecurityGroupEgress resources"
        )
    return BadInput(
        f"resources depend on each other in a loop: {' -> '.join(cycle)}",
        line=first.line or resources[cycle[0]].line,
        logical_id=cycle[0],
        hint="; ".join(steps) + ". " + advice,
    )
