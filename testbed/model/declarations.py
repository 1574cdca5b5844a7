"""The shape of the Resources and Outputs sections, checked before anything is resolved."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from testbed.errors import BadInput
from testbed.model import catalog, schemas
from testbed.model.resources import ResourceType, custom, lookup
from testbed.model.resources.registry import registered
from testbed.template.conditions import ConditionTable
from testbed.template.nodes import LDict, describe, did_you_mean

LOGICAL_ID = re.compile(r"^[A-Za-z0-9]{1,255}$")
MAX_RESOURCES = 500
RESOURCE_KEYS = ("Type", "Properties", "DependsOn", "Condition", "Metadata")
# Resource attributes about the AWS stack life cycle: accepted, meaningless in the lab.
LIFECYCLE_KEYS = ("DeletionPolicy", "UpdateReplacePolicy", "CreationPolicy", "UpdatePolicy")
OUTPUT_KEYS = ("Value", "Description", "Condition", "Export")


@dataclass
class Declaration:
    """One output (or, as ResourceDeclaration, resource) as written, with its line and whether
    it is created."""

    logical_id: str
    line: int | None
    raw: LDict
    condition: str | None = None
    enabled: bool = True


@dataclass
class ResourceDeclaration(Declaration):
    """A resource: a declaration with a known resource type."""

    resource_type: ResourceType = field(kw_only=True)


def _condition(
    decl: LDict, owner: str, conditions: ConditionTable, errors: list[BadInput]
) -> tuple[str | None, bool]:
    if "Condition" not in decl:
        return None, True
    name = decl["Condition"]
    if not isinstance(name, str):
        errors.append(
            BadInput(
                f"Condition must be a condition name, not {describe(name)}",
                line=decl.line_of("Condition"),
                logical_id=owner,
            )
        )
        return None, True
    try:
        return name, conditions.value(name, owner=owner, line=decl.line_of("Condition"))
    except BadInput as err:
        errors.append(err)
        return name, True


def _type_error(type_name: Any, decl: LDict, logical_id: str) -> BadInput:
    """Why a resource's Type cannot be built: no type, a typo, or an AWS type the lab refuses."""
    line = decl.line_of("Type")
    if not isinstance(type_name, str):
        message = (
            "the resource has no Type"
            if type_name is None
            else f"Type must be a resource type name, not {describe(type_name)}"
        )
        return BadInput(message, line=line, logical_id=logical_id)
    found = catalog.support(type_name)
    if found is not None:  # a real AWS type the catalog refuses
        return BadInput(
            f"{type_name} is an AWS type the lab does not emulate: {found.note}",
            line=line,
            logical_id=logical_id,
        )
    known = sorted(schemas.aws_types() | registered())
    return BadInput(
        f"unknown resource type {type_name}",
        line=line,
        logical_id=logical_id,
        # Type names share their "AWS::" prefix: only near-identical ones help.
        hint=did_you_mean(type_name, known, cutoff=0.85)
        or "see the resource types of AWS's reference (AWS::Service::Type), Custom::* "
        "or Lab::Internet::Client",
    )


def read_resources(
    section: LDict,
    conditions: ConditionTable,
    parameters: Any,
) -> tuple[list[ResourceDeclaration], list[BadInput]]:
    """Every resource declaration, checked for shape; problems are collected."""
    errors: list[BadInput] = []
    result: list[ResourceDeclaration] = []
    if len(section) > MAX_RESOURCES:
        errors.append(
            BadInput(
                f"the template declares {len(section)} resources; the limit is {MAX_RESOURCES}",
                line=section.line,
            )
        )
    for logical_id, decl in section.items():
        line = section.line_of(logical_id)
        if not LOGICAL_ID.match(logical_id):
            errors.append(
                BadInput(
                    "logical ids may contain only letters and digits",
                    line=line,
                    logical_id=logical_id,
                )
            )
            continue
        if isinstance(parameters, dict) and logical_id in parameters:
            errors.append(
                BadInput(
                    "a parameter has the same name; logical ids must be unique "
                    "across Parameters and Resources",
                    line=line,
                    logical_id=logical_id,
                )
            )
            continue
        if not isinstance(decl, LDict):
            errors.append(
                BadInput(
                    f"a resource must be a mapping with a Type, not {describe(decl)}",
                    line=line,
                    logical_id=logical_id,
                )
            )
            continue
        problem = False
        for key in decl:
            if key not in RESOURCE_KEYS and key not in LIFECYCLE_KEYS:
                problem = True
                errors.append(
                    BadInput(
                        f"unknown resource attribute {key!r}",
                        line=decl.line_of(key),
                        logical_id=logical_id,
                        hint=did_you_mean(key, RESOURCE_KEYS + LIFECYCLE_KEYS),
                    )
                )
        type_name = decl.get("Type")
        resource_type = lookup(type_name) if isinstance(type_name, str) else None
        if resource_type is None:
            problem = True
            errors.append(_type_error(type_name, decl, logical_id))
        elif (
            catalog.is_custom(resource_type.name)
            and custom.lab_attributes(decl.get("Metadata")) is None
        ):
            problem = True
            errors.append(
                BadInput(
                    f"{type_name}: {catalog.LAMBDA_CUSTOM}",
                    line=decl.line_of("Type"),
                    logical_id=logical_id,
                    hint=custom.HINT,
                )
            )
        name, enabled = _condition(decl, logical_id, conditions, errors)
        if not problem and resource_type is not None:
            result.append(
                ResourceDeclaration(
                    logical_id, line, decl, name, enabled, resource_type=resource_type
                )
            )
    return result, errors


def read_outputs(
    section: Any,
    conditions: ConditionTable,
) -> tuple[list[Declaration], list[BadInput]]:
    """Every output declaration, checked for shape; problems are collected."""
    errors: list[BadInput] = []
    result: list[Declaration] = []
    if not isinstance(section, LDict):
        return result, errors
    for name, decl in section.items():
        line = section.line_of(name)
        if not LOGICAL_ID.match(name):
            errors.append(
                BadInput(
                    "output names may contain only letters and digits", line=line, logical_id=name
                )
            )
            continue
        if not isinstance(decl, LDict):
            errors.append(
                BadInput(
                    f"an output must be a mapping with a Value, not {describe(decl)}",
                    line=line,
                    logical_id=name,
                )
            )
            continue
        bad_keys = [k for k in decl if k not in OUTPUT_KEYS]
        for key in bad_keys:
            errors.append(
                BadInput(
                    f"unknown output attribute {key!r}",
                    line=decl.line_of(key),
                    logical_id=name,
                    hint=did_you_mean(key, OUTPUT_KEYS),
                )
            )
        if "Value" not in decl:
            errors.append(BadInput("the output has no Value", line=line, logical_id=name))
            continue
        if not isinstance(decl.get("Export", {}), dict):
            errors.append(
                BadInput(
                    "Export must be a mapping such as {Name: ...}",
                    line=decl.line_of("Export"),
                    logical_id=name,
                )
            )
        condition, enabled = _condition(decl, name, conditions, errors)
        if not bad_keys:
            result.append(Declaration(name, line, decl, condition, enabled))
    return result, errors
