"""AWS's own resource provider schemas, as cfn-lint ships them: the lab's source of truth for
"is this an AWS type / property at all", the required properties and the GetAtt names.

    props = properties("AWS::IAM::Role")        # {"RoleName": {...}, ...}
    getatt_names("AWS::IAM::Role")              # ("Arn", "RoleId")

The schemas are read from cfn-lint's package data (no network): lazily, once per type.
cfn-lint 1.x keys its regions with hyphens (us-east-1); a region it does not know falls back
to us-east-1, whose schemas are the widest.
"""

from __future__ import annotations

from functools import cache
from typing import Any

DEFAULT_REGION = "us-east-1"


@cache
def _manager() -> Any:
    # Imported here: loading cfn-lint costs about 0.3 s, and most commands never need it.
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    return PROVIDER_SCHEMA_MANAGER


@cache
def _regions() -> frozenset[str]:
    from cfnlint.helpers import REGIONS

    return frozenset(REGIONS)


def _region(region: str) -> str:
    return region if region in _regions() else DEFAULT_REGION


@cache
def aws_types(region: str = DEFAULT_REGION) -> frozenset[str]:
    """Every resource type AWS documents for the region (SAM's AWS::Serverless::* included)."""
    return frozenset(_manager().get_resource_types(_region(region)))


def is_aws_type(type_name: str, region: str = DEFAULT_REGION) -> bool:
    """True for a real AWS resource type (never for Custom::* or Lab::*)."""
    return type_name in aws_types(region)


@cache
def schema(type_name: str, region: str = DEFAULT_REGION) -> dict[str, Any] | None:
    """The provider schema of an AWS type (a dict as AWS publishes it), or None."""
    if not is_aws_type(type_name, region):
        return None
    from cfnlint.schema import ResourceNotFoundError

    try:
        found: dict[str, Any] = _manager().get_resource_schema(_region(region), type_name).schema
    except ResourceNotFoundError:
        return None
    return found


def properties(type_name: str, region: str = DEFAULT_REGION) -> dict[str, Any]:
    """Property name -> its schema, without the read-only ones (those are GetAtt values)."""
    found = schema(type_name, region) or {}
    read_only = set(_paths(found.get("readOnlyProperties", ())))
    return {k: v for k, v in found.get("properties", {}).items() if k not in read_only}


def required(type_name: str, region: str = DEFAULT_REGION) -> tuple[str, ...]:
    """The properties a template must give."""
    return tuple((schema(type_name, region) or {}).get("required", ()))


def create_only(type_name: str, region: str = DEFAULT_REGION) -> tuple[str, ...]:
    """Properties whose change forces a replacement (top-level names)."""
    found = schema(type_name, region) or {}
    paths = _paths(found.get("createOnlyProperties", ()))
    return tuple(dict.fromkeys(p.split(".")[0] for p in paths))


@cache
def getatt_names(type_name: str, region: str = DEFAULT_REGION) -> tuple[str, ...]:
    """The GetAtt attribute names of a type (its readOnlyProperties, dotted: Endpoint.Address)."""
    if not is_aws_type(type_name, region):
        return ()
    atts = _manager().get_type_getatts(type_name, _region(region))
    return tuple(str(name) for name in atts)


def _paths(pointers: Any) -> list[str]:
    """JSON pointers "/properties/Endpoint/Address" -> "Endpoint.Address"."""
    result = []
    for pointer in pointers:
        if isinstance(pointer, str) and pointer.startswith("/properties/"):
            result.append(pointer[len("/properties/") :].replace("/", "."))
    return result
