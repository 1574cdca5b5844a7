"""The table of resource types the engine knows, filled by the family modules.

Types a family module registers are emulated. Other types are made on first lookup by the
fallbacks (inert.py: AWS types the catalog marks inert; custom.py: Custom::*), and kept here
so that every built resource's type is in REGISTRY.
"""

from __future__ import annotations

from collections.abc import Callable

from testbed.model.resources.base import ResourceType

REGISTRY: dict[str, ResourceType] = {}
_REGISTERED: set[str] = set()
# Each gets a type name and returns its ResourceType, or None when it does not handle it.
_FALLBACKS: list[Callable[[str], ResourceType | None]] = []


def register(resource_type: ResourceType) -> ResourceType:
    """Add a resource type; each type name can be registered once."""
    if resource_type.name in _REGISTERED:
        raise ValueError(f"resource type {resource_type.name} is registered twice")
    REGISTRY[resource_type.name] = resource_type
    _REGISTERED.add(resource_type.name)
    return resource_type


def registered() -> frozenset[str]:
    """The names of the emulated types (those a family module registered)."""
    return frozenset(_REGISTERED)


def add_fallback(make: Callable[[str], ResourceType | None]) -> None:
    """A maker of types not registered (inert, custom), asked in the order added."""
    _FALLBACKS.append(make)


def lookup(type_name: str) -> ResourceType | None:
    """The resource type of that name (registered, or made by a fallback), or None."""
    found = REGISTRY.get(type_name)
    if found is not None:
        return found
    for make in _FALLBACKS:
        made = make(type_name)
        if made is not None:
            REGISTRY[type_name] = made
            return made
    return None
