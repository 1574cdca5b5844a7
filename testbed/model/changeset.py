"""A change set: what updating a stack to a new template would do, as CloudFormation's
describe-change-set says it.

    change_set = compute_change_set(old, new)        # testbed.model.changeset_diff
    print(render(change_set))                        # a table
    json.dumps(change_set.to_dict())                 # AWS's field names

One ResourceChange per logical id: Add, Modify or Remove; a Modify has its Replacement (True,
False or Conditional, from its details' RequiresRecreation and Evaluation, as AWS computes it)
and one ChangeDetail per changed property (Target Attribute/Name/RequiresRecreation,
Evaluation, ChangeSource, CausingEntity).

Two keys are the lab's, not AWS's: a detail's LabOutcome (what the documented update behaviour
gives in the lab: Replacement, SomeInterruptions or NoInterruption; it settles AWS's
"Conditionally") and a resource's LabReplacement (whether `testbed update` replaces it).

A saved plan (plan_document) records a digest of the template and parameters the lab ran when
the plan was made; check_plan_base refuses a plan made against a lab that changed since.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from testbed.errors import BadInput

ADD, MODIFY, REMOVE = "Add", "Modify", "Remove"
STATIC, DYNAMIC = "Static", "Dynamic"
DIRECT = "DirectModification"
PARAMETER = "ParameterReference"
RESOURCE_REF = "ResourceReference"
RESOURCE_ATTRIBUTE = "ResourceAttribute"
PROPERTIES, METADATA, TAGS = "Properties", "Metadata", "Tags"
# AWS's text for a change set that changes nothing (its Status is then FAILED).
NO_CHANGES = (
    "The submitted information didn't contain changes. Submit different information to "
    "create a change set."
)
PLAN_FORMAT = "elb-lab-plan/1"


@dataclass(frozen=True)
class ChangeDetail:
    """One changed field of a modified resource (AWS's ResourceChangeDetail)."""

    attribute: str  # Properties, Metadata, Tags, CreationPolicy, UpdatePolicy, ...
    name: str | None  # the property, for Attribute Properties
    requires_recreation: str | None  # Never, Conditionally, Always (Properties only)
    evaluation: str = STATIC
    change_source: str = DIRECT
    causing_entity: str | None = None
    lab_outcome: str = "NoInterruption"

    def to_dict(self) -> dict[str, Any]:
        target: dict[str, Any] = {"Attribute": self.attribute}
        if self.name is not None:
            target["Name"] = self.name
        if self.requires_recreation is not None:
            target["RequiresRecreation"] = self.requires_recreation
        out: dict[str, Any] = {
            "Target": target,
            "Evaluation": self.evaluation,
            "ChangeSource": self.change_source,
        }
        if self.causing_entity is not None:
            out["CausingEntity"] = self.causing_entity
        out["LabOutcome"] = self.lab_outcome
        return out


@dataclass(frozen=True)
class ResourceChange:
    """What happens to one logical id (AWS's ResourceChange)."""

    action: str
    logical_id: str
    resource_type: str
    replacement: str | None = None  # True, False, Conditional (Modify only)
    scope: tuple[str, ...] = ()
    details: tuple[ChangeDetail, ...] = ()
    lab_replacement: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Action": self.action,
            "LogicalResourceId": self.logical_id,
            "ResourceType": self.resource_type,
        }
        if self.action == MODIFY:
            out["Replacement"] = self.replacement
            out["Scope"] = list(self.scope)
            out["Details"] = [d.to_dict() for d in self.details]
            out["LabReplacement"] = self.lab_replacement
        return out


@dataclass(frozen=True)
class ChangeSet:
    """Every resource change of one update, in the order the update would make them."""

    stack_name: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    changes: tuple[ResourceChange, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.changes)

    def change(self, logical_id: str) -> ResourceChange | None:
        """The change of one logical id, or None when it does not change."""
        return next((c for c in self.changes if c.logical_id == logical_id), None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "StackName": self.stack_name,
            "Parameters": [
                {"ParameterKey": k, "ParameterValue": _text(v)}
                for k, v in sorted(self.parameters.items())
            ],
            "Changes": [{"Type": "Resource", "ResourceChange": c.to_dict()} for c in self.changes],
        }
        if self.changes:
            out.update(Status="CREATE_COMPLETE", ExecutionStatus="AVAILABLE")
        else:
            out.update(Status="FAILED", ExecutionStatus="UNAVAILABLE", StatusReason=NO_CHANGES)
        return out


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(_text(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render(change_set: ChangeSet) -> str:
    """The change set as a table: one line per resource, one indented line per detail."""
    if not change_set.changes:
        return f"stack {change_set.stack_name}: no changes ({NO_CHANGES})"
    headers = ("ACTION", "LOGICAL ID", "TYPE", "REPLACEMENT", "IN THE LAB")
    rows: list[tuple[str, ...]] = []
    for c in change_set.changes:
        lab = ""
        if c.action == MODIFY:
            lab = "replaced" if c.lab_replacement else _least_disruptive(c)
        rows.append((c.action, c.logical_id, c.resource_type, c.replacement or "", lab))
        for d in c.details:
            target = f"{d.attribute}.{d.name}" if d.name else d.attribute
            cause = f" ({d.causing_entity})" if d.causing_entity else ""
            rows.append(
                (
                    "",
                    f"  {target}",
                    f"{d.requires_recreation or '-'} {d.evaluation} {d.change_source}{cause}",
                    "",
                    d.lab_outcome,
                )
            )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    counts = {a: sum(c.action == a for c in change_set.changes) for a in (ADD, MODIFY, REMOVE)}
    replaced = sum(c.lab_replacement for c in change_set.changes)
    lines.append(
        f"\n{counts[ADD]} to add, {counts[MODIFY]} to modify ({replaced} replaced), "
        f"{counts[REMOVE]} to remove"
    )
    return "\n".join(lines)


def _least_disruptive(change: ResourceChange) -> str:
    outcomes = {d.lab_outcome for d in change.details}
    return "interrupted" if "SomeInterruptions" in outcomes else "in place"


def template_digest(text: str, params: Mapping[str, Any]) -> str:
    """sha256 of a template's text and its parameter values: what a stack was built from."""
    blob = json.dumps({"template": text, "params": {k: _text(v) for k, v in params.items()}})
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


def plan_document(
    change_set: ChangeSet,
    *,
    lab: str,
    base_digest: str,
    template: str,
    template_text: str,
    params: Mapping[str, Any],
) -> dict[str, Any]:
    """What `testbed plan --out FILE` saves: the change set, the new template and parameters,
    and the digest of what the lab ran when the plan was made."""
    return {
        "Format": PLAN_FORMAT,
        "Lab": lab,
        "BaseDigest": base_digest,
        "Template": template,
        "TemplateBody": template_text,
        "TemplateParameters": {k: _text(v) for k, v in params.items()},
        "ChangeSet": change_set.to_dict(),
    }


def check_plan_base(plan: Mapping[str, Any], *, lab: str, current_digest: str) -> None:
    """BadInput unless `plan` is a saved plan of lab `lab` made against what it runs now."""
    if not isinstance(plan, Mapping) or plan.get("Format") != PLAN_FORMAT:
        raise BadInput(
            "this is not a plan file of testbed plan",
            hint=f"make one with testbed plan {lab} TEMPLATE --out FILE",
        )
    if plan.get("Lab") != lab:
        raise BadInput(
            f"this plan was made for lab {plan.get('Lab')!r}, not {lab!r}",
            hint=f"make a plan of this lab with testbed plan {lab} TEMPLATE --out FILE",
        )
    if plan.get("BaseDigest") != current_digest:
        raise BadInput(
            f"lab {lab} changed since this plan was made (its template or parameters differ)",
            hint=f"make the plan again: testbed plan {lab} TEMPLATE --out FILE",
        )
