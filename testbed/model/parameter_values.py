"""Parameter values that name lab things (VPC, subnet, security group and instance ids) checked
against this lab, and the lab's substitutes for values it cannot have, as LabValues.

A lab has only what its templates create: an id given as a parameter value is valid when it is
the physical id of a resource of this stack of the right type, or a value another stack of the
lab exports. The physical ids of these types are their prefix and logical id, so they are known
before anything is built; checking here, before the resources, lets a wrong id be reported as
the parameter's fault (and the resources that use it be skipped) instead of as theirs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from testbed.errors import BadInput
from testbed.model.declarations import ResourceDeclaration
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


def check_ids(
    checks: Iterable[IdCheck],
    resources: Iterable[ResourceDeclaration],
    imports: Mapping[str, Any],
    qualifier: str = "",
) -> list[BadInput]:
    """An error for each id parameter value that names nothing of this lab."""
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
            if value in ids or value in exported:
                continue
            made = ", ".join(sorted(ids)) or "none"
            errors.append(
                BadInput(
                    f"{value} is not a {kind.what} of this lab; a lab has only what its "
                    "templates create",
                    line=check.line,
                    logical_id=check.parameter,
                    hint=f"give the id of a {kind.what} this stack creates ({made}) or one "
                    "another stack of the lab exports",
                )
            )
            break
    return errors
