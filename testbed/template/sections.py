"""Top-level template sections and the Mappings section."""

from __future__ import annotations

import re
from typing import Any

from testbed.errors import BadInput
from testbed.template.nodes import LDict, describe, did_you_mean

SECTIONS = (
    "AWSTemplateFormatVersion",
    "Description",
    "Metadata",
    "Parameters",
    "Mappings",
    "Conditions",
    "Resources",
    "Outputs",
    "Transform",
    "Rules",
)
# Transform is applied before the sections are read (testbed.template.transforms).
NOT_SUPPORTED = {
    "Hooks": "the Hooks section is not supported",
}
# Transforms the engine applies itself (its functions are intrinsics here).
BUILT_IN_TRANSFORMS = ("AWS::LanguageExtensions",)
FORMAT_VERSION = "2010-09-09"
MAP_NAME = re.compile(r"^[A-Za-z0-9]+$")


def check_sections(doc: LDict) -> list[BadInput]:
    """Problems with the set of top-level sections and the simple ones among them."""
    errors: list[BadInput] = []
    for key in doc:
        if key == "Transform" and _built_in_transforms(doc[key]):
            continue
        if key in NOT_SUPPORTED:
            errors.append(BadInput(NOT_SUPPORTED[key], line=doc.line_of(key)))
        elif key not in SECTIONS:
            errors.append(
                BadInput(
                    f"unknown template section {key!r}",
                    line=doc.line_of(key),
                    hint=did_you_mean(key, SECTIONS) or f"the sections are: {', '.join(SECTIONS)}",
                )
            )
    version = doc.get("AWSTemplateFormatVersion", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        errors.append(
            BadInput(
                f"AWSTemplateFormatVersion must be {FORMAT_VERSION!r}, not {version!r}",
                line=doc.line_of("AWSTemplateFormatVersion"),
            )
        )
    if not isinstance(doc.get("Description", ""), str):
        errors.append(BadInput("Description must be text", line=doc.line_of("Description")))
    if not isinstance(doc.get("Metadata", {}), dict):
        errors.append(
            BadInput(
                f"Metadata must be a mapping, not {describe(doc['Metadata'])}",
                line=doc.line_of("Metadata"),
            )
        )
    if "Resources" not in doc:
        errors.append(
            BadInput(
                "the template has no Resources section",
                line=1,
                hint="every template needs at least one resource",
            )
        )
    elif not isinstance(doc["Resources"], LDict) or not doc["Resources"]:
        errors.append(
            BadInput(
                "Resources must be a mapping of at least one resource, not "
                f"{describe(doc['Resources'])}",
                line=doc.line_of("Resources"),
            )
        )
    for name in ("Outputs",):
        if name in doc and not isinstance(doc[name], (LDict, type(None))):
            errors.append(
                BadInput(
                    f"{name} must be a mapping, not {describe(doc[name])}", line=doc.line_of(name)
                )
            )
    return errors


def _built_in_transforms(value: Any) -> bool:
    names = [value] if isinstance(value, str) else value
    return isinstance(names, list) and all(n in BUILT_IN_TRANSFORMS for n in names)


def _scalar_or_list(value: Any) -> bool:
    if isinstance(value, list):
        return all(_scalar_or_list(v) and not isinstance(v, list) for v in value)
    return isinstance(value, (str, int, float, bool))


def check_mappings(section: Any, line: int | None) -> tuple[dict[str, Any], list[BadInput]]:
    """The Mappings section as {map: {top key: {second key: value}}}, and its problems."""
    if section is None:
        return {}, []
    if not isinstance(section, LDict):
        return {}, [BadInput(f"Mappings must be a mapping, not {describe(section)}", line=line)]
    errors: list[BadInput] = []
    good: dict[str, Any] = {}
    for name, top in section.items():
        where = section.line_of(name)
        if not MAP_NAME.match(name):
            errors.append(
                BadInput(
                    "mapping names may contain only letters and digits", line=where, logical_id=name
                )
            )
            continue
        if not isinstance(top, LDict) or not top:
            errors.append(
                BadInput(
                    "a mapping must map keys to mappings of values", line=where, logical_id=name
                )
            )
            continue
        problem = None
        for key, second in top.items():
            if not isinstance(second, LDict) or not second:
                problem = BadInput(
                    f"key {key!r} must map to a mapping of values, not {describe(second)}",
                    line=top.line_of(key),
                    logical_id=name,
                )
                break
            for inner, value in second.items():
                if not _scalar_or_list(value):
                    problem = BadInput(
                        f"{key} > {inner} must be a value or a list of values, not "
                        f"{describe(value)} (Mappings cannot hold intrinsic functions)",
                        line=second.line_of(inner),
                        logical_id=name,
                    )
                    break
            if problem:
                break
        if problem:
            errors.append(problem)
        else:
            good[name] = top
    return good, errors
