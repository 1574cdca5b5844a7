"""Resource types, one module per family; importing this package registers them all.

To add a family (e.g. elbv2.py): describe each type with base.ResourceType, call
registry.register(...) at import time, and add the module to the import list below.
"""

from __future__ import annotations

from testbed.model.resources import (  # noqa: F401  (registers them)
    acm,
    addresses,
    autoscaling,
    classic_elb,
    cloudwatch,
    custom,
    ec2,
    elbv2,
    gwlbe,
    inert,
    lab,
    lambda_function,
    launch_specs,
    nat_gateways,
    network_acls,
    network_interfaces,
    peering,
    route53,
    scaling_policies,
    security_groups,
)
from testbed.model.resources.base import Prop, ResourceContext, ResourceType, prop, ref
from testbed.model.resources.registry import REGISTRY, lookup, register

__all__ = [
    "REGISTRY",
    "Prop",
    "ResourceContext",
    "ResourceType",
    "lookup",
    "prop",
    "ref",
    "register",
]
