"""The table of resource types the engine knows, filled by the family modules."""

from __future__ import annotations

from testbed.model.resources.base import ResourceType

REGISTRY: dict[str, ResourceType] = {}


def register(resource_type: ResourceType) -> ResourceType:
    """Add a resource type; each type name can be registered once."""
    if resource_type.name in REGISTRY:
        raise ValueError(f"resource type {resource_type.name} is registered twice")
    REGISTRY[resource_type.name] = resource_type
    return resource_type


def lookup(type_name: str) -> ResourceType | None:
    """The registered resource type of that name, or None."""
    return REGISTRY.get(type_name)
