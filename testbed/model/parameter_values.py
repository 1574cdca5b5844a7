"""Parameter values that name lab things (VPC, subnet, security group and instance ids) checked
against this lab, and the lab's substitutes for values it cannot have, as LabValues.

A lab has only what its templates create: an id given as a parameter value is valid when it is
the physical id of a resource of this stack or of another stack of the lab of the right type,
or a value another stack of the lab exports. The physical ids of these types are their prefix
and logical id, so they are known before anything is built; checking here, before the
resources, lets a wrong id be reported as the parameter's fault (and the resources that use
it be skipped) instead of as theirs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from testbed.errors import BadInput
from testbed.model.declarations import ResourceDeclaration
from testbed.model.lab_view import LabView
from testbed.model.types import LabValue
from testbed.template.aws_parameters import ID_KINDS
from testbed.template.parameters import IdCheck, LabSubstitute


def lab_values(substitutes: Iterable[LabSubstitute]) -> list[LabValue]:
    """The substitutes of the Parameters section as the model's LabValues."""
    return [LabValue(s.parameter, s.value, s.lab_value, s.note) for s in substitutes]


def _exported(imports: Mapping[str, Any]) -> set[str]:
    found: set[str] = set()
    for value in imports.values():
        items = value if isinstance(value, list) else [value]
        found.update(str(item) for item in items)
    return found


def _foreign(lab: LabView | None, value: str, resource_type: str | None) -> bool:
    res = lab.resources.get(value) if lab is not None else None
    return res is not None and res.type == resource_type


def _stacks(lab: LabView) -> set[str]:
    return {res.stack for res in lab.resources.values()}


def check_ids(
    checks: Iterable[IdCheck],
    resources: Iterable[ResourceDeclaration],
    imports: Mapping[str, Any],
    qualifier: str = "",
    lab: LabView | None = None,
) -> list[BadInput]:
    """An error for each id parameter value that names nothing of this lab (lab: its other
    stacks, whose resources of the parameter's type it may name, exported or not, as on
    AWS an id parameter may name any resource of the account)."""
    own: dict[str, dict[str, str]] = {}  # resource type -> physical id -> logical id
    for decl in resources:
        if decl.enabled and decl.resource_type.ref_value is None:
            own.setdefault(decl.resource_type.name, {})[
                decl.resource_type.physical_id(decl.logical_id, qualifier)
            ] = decl.logical_id
    exported = _exported(imports)
    errors: list[BadInput] = []
    for check in checks:
        kind = ID_KINDS[check.type_name]
        ids = own.get(kind.resource_type or "", {})
        for value in check.values:
            if value in ids or value in exported or _foreign(lab, value, kind.resource_type):
                continue
            made = ", ".join(sorted(ids)) or "none"
            stacks = sorted(set(lab.exporters.values()) | _stacks(lab)) if lab else []
            errors.append(
                BadInput(
                    f"{value} is not a {kind.what} of this lab"
                    + (f" (its stacks: {', '.join(stacks)})" if stacks else "")
                    + "; a lab has only what its templates create",
                    line=check.line,
                    logical_id=check.parameter,
                    hint=f"give the id of a {kind.what} this stack creates ({made}) or one "
                    "of another stack of the lab",
                )
            )
            break
    return errors
