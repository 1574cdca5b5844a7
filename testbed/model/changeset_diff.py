"""Compute a change set from the template a stack runs and a new one (see changeset.py).

    change_set = compute_change_set(
        StackTemplate(old_text, "old.yaml", {"Env": "dev"}),
        StackTemplate(new_text, "new.yaml", {"Env": "prod"}),
        stack_name="alb",
    )

Design: the comparison runs on *symbolically resolved* templates. The new template is first
validated like `testbed up` does (load_model_text: file:line errors, exit 2). Then each side's
Properties and resource attributes are resolved with the template layer (parameters with their
defaults, mappings, conditions, Fn::Sub/Join/Select/If/...) against a resource view that
answers Ref and Fn::GetAtt with tokens (⟦Ref Web⟧, ⟦GetAtt Web.PrivateIp⟧) instead of
values. Parameters are thus evaluated (a changed parameter changes the resolved value) while
what only a running stack knows (physical ids, attributes) stays a name, the same on both
sides. Per property:

- resolved values differ -> Static; DirectModification when the property's text changed,
  ParameterReference (CausingEntity: the parameter) when only a parameter it reads changed;
- values equal but holding a token of a resource that is replaced (Ref) or modified (GetAtt)
  -> Dynamic, ResourceReference / ResourceAttribute (CausingEntity: Web / Web.PrivateIp);
  resources are visited in creation order, so replacement cascades as on AWS
  (Always + Dynamic -> Replacement Conditional).

A property that cannot be resolved symbolically (e.g. Fn::Select [1, !GetAtt X.List]) falls back
to its raw tree, with the references it names deciding ParameterReference/Dynamic. The model's
own build is not reused: it keeps no per-resource resolved properties, and its values (lab
physical ids, addresses) are exactly what a change set must not compare.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from testbed.errors import BadInput
from testbed.model import load_model_text, schemas
from testbed.model import update_behaviour as behaviour
from testbed.model.changeset import (
    ADD,
    DIRECT,
    DYNAMIC,
    METADATA,
    MODIFY,
    PARAMETER,
    PROPERTIES,
    REMOVE,
    RESOURCE_ATTRIBUTE,
    RESOURCE_REF,
    STATIC,
    TAGS,
    ChangeDetail,
    ChangeSet,
    ResourceChange,
)
from testbed.model.lab_view import LabView
from testbed.template import transforms
from testbed.template.conditions import ConditionTable
from testbed.template.intrinsics import Scope, as_text, pseudo_parameters, resolve
from testbed.template.nodes import LDict
from testbed.template.parameters import resolve_parameters
from testbed.template.references import creation_order, depends_on, find_references
from testbed.template.sections import check_mappings
from testbed.template.yaml_loader import load_text

# Resource attributes compared besides Properties, in AWS's Scope order.
POLICY_ATTRIBUTES = ("CreationPolicy", "UpdatePolicy", "DeletionPolicy", "UpdateReplacePolicy")
TOKEN = re.compile(r"⟦(Ref|GetAtt) ([A-Za-z0-9]+)(?:\.([^⟧]+))?⟧")
_UNRESOLVED = object()


@dataclass(frozen=True)
class StackTemplate:
    """A template text, the file name its errors name, and its parameter values."""

    text: str
    filename: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class _Resource:
    logical_id: str
    type_name: str
    raw: LDict
    # Resolved (symbolically) Properties and attributes; _UNRESOLVED where that failed.
    values: dict[str, Any]
    needs: set[str]


@dataclass
class _Side:
    doc: LDict
    params: dict[str, Any]
    conditions: ConditionTable
    resources: dict[str, _Resource]  # enabled ones, declaration order
    order: list[str]


class _Symbols:
    """A resource view that names what only a running stack knows."""

    def __init__(self, types: Mapping[str, str]) -> None:
        self.types = types

    def ref(self, logical_id: str) -> str:
        return f"⟦Ref {logical_id}⟧"

    def get_att(self, logical_id: str, attribute: str) -> Any:
        token = f"⟦GetAtt {logical_id}.{attribute}⟧"
        found = (schemas.schema(self.types.get(logical_id, "")) or {}).get("properties", {})
        if found.get(attribute, {}).get("type") == "array":
            return [token]  # so that Fn::Select [0, ...] and Fn::Join still resolve
        return token


def _read(template: StackTemplate, stack_name: str, region: str, imports: Mapping) -> _Side:
    doc = load_text(template.text, template.filename)
    doc = transforms.apply(doc, template.filename, dict(template.params), region)
    parameters = resolve_parameters(
        doc.get("Parameters"),
        dict(template.params),
        section_line=doc.line_of("Parameters"),
        region=region,
    )
    mappings, _ = check_mappings(doc.get("Mappings"), doc.line_of("Mappings"))
    section = doc.get("Resources")
    section = section if isinstance(section, LDict) else LDict()
    types = {lid: str(d.get("Type")) for lid, d in section.items() if isinstance(d, LDict)}
    scope = Scope(
        parameters.values,
        pseudo_parameters(stack_name, region),
        mappings,
        region,
        resource_names=frozenset(section),
        imports=dict(imports),
        transforms=tuple(transforms.names(doc)),
    )
    conditions = ConditionTable(
        doc.get("Conditions"), scope, section_line=doc.line_of("Conditions")
    )
    scope.conditions = conditions
    enabled: dict[str, LDict] = {}
    for lid, decl in section.items():
        if not isinstance(decl, LDict):
            continue
        name = decl.get("Condition")
        if isinstance(name, str) and not conditions.value(name):
            scope.disabled = {**scope.disabled, lid: name}
        else:
            enabled[lid] = decl
    scope.resources = _Symbols(types)
    resources = {}
    for lid, decl in enabled.items():
        values = {}
        for key in ("Properties", METADATA, *POLICY_ATTRIBUTES):
            if key in decl:
                values[key] = _resolve(decl[key], scope, lid)
        needs = {r.target for r in _references(decl, conditions) if r.target in enabled}
        resources[lid] = _Resource(lid, types[lid], decl, values, needs - {lid})
    order = creation_order(list(resources), {k: r.needs for k, r in resources.items()})
    return _Side(doc, dict(parameters.values), conditions, resources, order or list(resources))


def _resolve(raw: Any, scope: Scope, owner: str) -> Any:
    try:
        return resolve(raw, scope, owner=owner)
    except (BadInput, RecursionError):
        return _UNRESOLVED


def _references(decl: LDict, conditions: ConditionTable | None) -> Iterator[Any]:
    for key in ("Properties", METADATA):
        if key in decl:
            yield from find_references(decl[key], conditions)
    if "DependsOn" in decl:
        with contextlib.suppress(BadInput):  # reported by the validation
            yield from depends_on(decl["DependsOn"], None, "")


def canonical(value: Any) -> Any:
    """A value as CloudFormation compares it: scalars as text (80 == "80")."""
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if value is None:
        return None
    text = as_text(value)
    return text if text is not None else repr(value)


def _tokens(value: Any) -> Iterator[tuple[str, str, str | None]]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _tokens(item)
    elif isinstance(value, list):
        for item in value:
            yield from _tokens(item)
    elif isinstance(value, str):
        for match in TOKEN.finditer(value):
            yield match.group(1), match.group(2), match.group(3)


def _inputs(raw: Any, side: _Side) -> list[str]:
    """Every name a raw value reads: Ref/Sub/GetAtt targets, in both branches of Fn::If, and
    the parameters of the conditions those Fn::If test."""
    found = [r.target for r in find_references(raw, None)]
    seen: set[str] = set()
    pending = list(_if_conditions(raw))
    section = side.doc.get("Conditions")
    while pending:
        name = pending.pop()
        if name in seen or not isinstance(section, Mapping) or name not in section:
            continue
        seen.add(name)
        found += [r.target for r in find_references(section[name], None)]
        pending += list(_if_conditions(section[name]))
    return list(dict.fromkeys(found))


def _if_conditions(raw: Any) -> Iterator[str]:
    if isinstance(raw, dict):
        for key, item in raw.items():
            if key == "Fn::If" and isinstance(item, list) and item and isinstance(item[0], str):
                yield item[0]
            if key == "Condition" and isinstance(item, str):
                yield item
            yield from _if_conditions(item)
    elif isinstance(raw, list):
        for item in raw:
            yield from _if_conditions(item)


@dataclass
class _Differ:
    old: _Side
    new: _Side
    changed_params: set[str]
    replaced: dict[str, bool] = field(default_factory=dict)  # AWS may replace -> lab replaces
    modified: set[str] = field(default_factory=set)

    def resource(self, lid: str) -> ResourceChange | None:
        old, new = self.old.resources[lid], self.new.resources[lid]
        details: list[ChangeDetail] = []
        old_props = old.values.get("Properties") or {}
        new_props = new.values.get("Properties") or {}
        raw_old = old.raw.get("Properties") or {}
        raw_new = new.raw.get("Properties") or {}
        if old_props is _UNRESOLVED or new_props is _UNRESOLVED:
            old_props, new_props = raw_old, raw_new
        for prop in dict.fromkeys([*new_props, *old_props]):
            details += self._details(
                new,
                PROPERTIES,
                prop,
                (old_props.get(prop), new_props.get(prop)),
                (raw_old.get(prop), raw_new.get(prop)),
            )
        for key in (METADATA, *POLICY_ATTRIBUTES):
            old_value, new_value = old.values.get(key), new.values.get(key)
            if old_value is _UNRESOLVED or new_value is _UNRESOLVED:
                old_value, new_value = old.raw.get(key), new.raw.get(key)
            details += self._details(
                new, key, None, (old_value, new_value), (old.raw.get(key), new.raw.get(key))
            )
        if not details:
            return None
        replacement = _replacement(details)
        lab_replaces = any(d.lab_outcome == behaviour.REPLACEMENT for d in details)
        self.modified.add(lid)
        if replacement != "False":
            self.replaced[lid] = lab_replaces
        scope = tuple(dict.fromkeys(d.attribute for d in details))
        return ResourceChange(
            MODIFY, lid, new.type_name, replacement, scope, tuple(details), lab_replaces
        )

    def _details(
        self,
        resource: _Resource,
        attribute: str,
        prop: str | None,
        values: tuple[Any, Any],
        raws: tuple[Any, Any],
    ) -> list[ChangeDetail]:
        type_name = resource.type_name
        target = TAGS if attribute == PROPERTIES and prop == TAGS else attribute
        name = prop if target == PROPERTIES else None
        recreation = (
            behaviour.requires_recreation(type_name, str(prop)) if target == PROPERTIES else None
        )
        if canonical(values[0]) != canonical(values[1]):
            params = [n for n in _inputs(raws[1], self.new) if n in self.changed_params]
            if canonical(raws[0]) == canonical(raws[1]) and params:
                source, cause = PARAMETER, params[0]
            else:
                source, cause = DIRECT, None
            outcome = _outcome(type_name, prop, recreation, values, resource.raw)
            return [ChangeDetail(target, name, recreation, STATIC, source, cause, outcome)]
        details = []
        for kind, lid, attr in self._dynamic_causes(values[1], raws[1]):
            lab_changes = self.replaced.get(lid, False)
            outcome = (
                _outcome(type_name, prop, recreation, values, resource.raw)
                if lab_changes
                else behaviour.NO_INTERRUPTION
            )
            source, cause = (
                (RESOURCE_REF, lid) if kind == "Ref" else (RESOURCE_ATTRIBUTE, f"{lid}.{attr}")
            )
            details.append(ChangeDetail(target, name, recreation, DYNAMIC, source, cause, outcome))
        return details

    def _dynamic_causes(self, value: Any, raw: Any) -> list[tuple[str, str, str | None]]:
        if value is raw:  # unresolved: the references the raw value names
            found = [
                ("GetAtt" if r.attribute else "Ref", r.target, r.attribute)
                for r in find_references(raw, self.new.conditions)
            ]
        else:
            found = list(_tokens(value))
        causes = []
        for kind, lid, attr in dict.fromkeys(found):
            if (kind == "Ref" and lid in self.replaced) or (
                kind == "GetAtt" and lid in self.modified
            ):
                causes.append((kind, lid, attr))
        return causes


def _outcome(
    type_name: str, prop: str | None, recreation: str | None, values: tuple[Any, Any], raw: LDict
) -> str:
    if recreation == behaviour.ALWAYS:
        return behaviour.REPLACEMENT
    if recreation == behaviour.CONDITIONALLY and prop is not None:
        return behaviour.conditional_outcome(type_name, prop, values[0], values[1], raw)
    return behaviour.NO_INTERRUPTION


def _replacement(details: list[ChangeDetail]) -> str:
    """AWS's rule: Always + Static -> True; Always + Dynamic or Conditionally -> Conditional."""
    props = [d for d in details if d.requires_recreation is not None]
    if any(d.requires_recreation == behaviour.ALWAYS and d.evaluation == STATIC for d in props):
        return "True"
    if any(d.requires_recreation in (behaviour.ALWAYS, behaviour.CONDITIONALLY) for d in props):
        return "Conditional"
    return "False"


def compute_change_set(
    old: StackTemplate,
    new: StackTemplate,
    *,
    stack_name: str = "default",
    region: str = "us-east-1",
    imports: Mapping[str, Any] | None = None,
    lab: LabView | None = None,
    qualifier: str = "",
) -> ChangeSet:
    """The change set of updating a stack built from `old` to `new`.

    The new template is validated first (BadInput/TemplateErrors naming file and line; in
    the lab `lab` shows, as stack `qualifier`, for a stack added to a lab); changing a
    logical id's Type is refused, as AWS refuses it."""
    imports = dict(imports or {})
    if lab is not None:
        imports = {**dict(lab.exports), **imports}
    load_model_text(
        new.text,
        filename=new.filename,
        params=new.params,
        stack_name=stack_name,
        region=region,
        qualifier=qualifier,
        lab=lab,
    )
    old_side = _read(old, stack_name, region, imports)
    new_side = _read(new, stack_name, region, imports)
    retyped = sorted(
        lid
        for lid, r in new_side.resources.items()
        if lid in old_side.resources and old_side.resources[lid].type_name != r.type_name
    )
    if retyped:
        raise BadInput(
            "Update of resource type is not permitted. The new template modifies resource "
            f"type of the following resources: [{', '.join(retyped)}]",
            file=new.filename,
            hint="give the resource of the new type another logical id (AWS then adds it "
            "and removes the old one)",
        )
    changed = {
        k
        for k in {*old_side.params, *new_side.params}
        if canonical(old_side.params.get(k)) != canonical(new_side.params.get(k))
    }
    differ = _Differ(old_side, new_side, changed)
    changes: list[ResourceChange] = []
    for lid in new_side.order:
        if lid not in old_side.resources:
            changes.append(ResourceChange(ADD, lid, new_side.resources[lid].type_name))
            continue
        change = differ.resource(lid)
        if change is not None:
            changes.append(change)
    for lid in reversed(old_side.order):
        if lid not in new_side.resources:
            changes.append(ResourceChange(REMOVE, lid, old_side.resources[lid].type_name))
    return ChangeSet(stack_name, dict(new.params), tuple(changes))
