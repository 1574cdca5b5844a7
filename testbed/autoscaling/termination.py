"""Which instance a scale-in terminates: EC2 Auto Scaling's termination policies.

AWS's order (user guide, "Configure termination policies"):
1. Balance first: among the Availability Zones that have at least one instance not protected
   from scale in, keep those with the most instances (all of the group's counted instances,
   protected ones too); only their unprotected instances are candidates.
2. The group's TerminationPolicies in order; each keeps the candidates it prefers, and the next
   one only breaks ties. "Default" = oldest launch template / configuration, then closest to the
   next billing hour.
3. Still a tie: AWS picks at random; the lab picks the lowest instance id so runs repeat.

Instances whose health is Unhealthy never get here: they are replaced, not chosen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from testbed.autoscaling.lifecycle import (
    HEALTHY,
    IN_SERVICE,
    LAUNCH_CONFIGURATION,
    LAUNCH_TEMPLATE,
    InstanceRecord,
)
from testbed.model.autoscaling_types import LaunchSpec

BILLING_HOUR_S = 3600.0

# The policies the lab applies; others (AllocationStrategy, custom Lambda) keep every candidate.
KNOWN = (
    "Default",
    "OldestInstance",
    "NewestInstance",
    "OldestLaunchTemplate",
    "OldestLaunchConfiguration",
    "ClosestToNextInstanceHour",
)

Rule = Callable[[Sequence[InstanceRecord]], list[InstanceRecord]]


def choose(
    counted: Sequence[InstanceRecord],
    policies: Sequence[str],
    current: LaunchSpec,
    now: float,
    hour_s: float = BILLING_HOUR_S,
) -> InstanceRecord | None:
    """The instance to terminate among `counted` (the instances the group's capacity counts:
    unprotected InService ones are the candidates), or None when none can go.

    hour_s: the billing hour in the lab's seconds (AWS's 3600 s through the time scale)."""
    candidates = [r for r in counted if _candidate(r)]
    if not candidates:
        return None
    candidates = balance_first(counted, candidates)
    for name in policies:
        if len(candidates) == 1:
            break
        for rule in _rules(name, current, now, hour_s):
            candidates = rule(candidates)
    return min(candidates, key=lambda r: r.instance_id)


def balance_first(
    counted: Sequence[InstanceRecord], candidates: Sequence[InstanceRecord]
) -> list[InstanceRecord]:
    """The candidates in the AZ(s) with the most instances among AZs that have a candidate."""
    per_az = Counter(r.az for r in counted)
    most = max(per_az[r.az] for r in candidates)
    return [r for r in candidates if per_az[r.az] == most]


def _candidate(record: InstanceRecord) -> bool:
    return (
        record.lifecycle == IN_SERVICE
        and not record.protected_from_scale_in
        and record.health == HEALTHY
        and record.replace_cause is None
    )


def _rules(name: str, current: LaunchSpec, now: float, hour_s: float) -> list[Rule]:
    if name == "Default":
        oldest = oldest_template if current.kind == LAUNCH_TEMPLATE else oldest_configuration
        return [
            lambda rs: oldest(rs, current),
            lambda rs: closest_to_hour(rs, now, hour_s),
        ]
    if name == "OldestInstance":
        return [lambda rs: _keep_min(rs, lambda r: r.launched_at)]
    if name == "NewestInstance":
        return [lambda rs: _keep_min(rs, lambda r: -r.launched_at)]
    if name == "OldestLaunchTemplate":
        return [lambda rs: oldest_template(rs, current)]
    if name == "OldestLaunchConfiguration":
        return [lambda rs: oldest_configuration(rs, current)]
    if name == "ClosestToNextInstanceHour":
        return [lambda rs: closest_to_hour(rs, now, hour_s)]
    return []


def oldest_template(records: Sequence[InstanceRecord], current: LaunchSpec) -> list[InstanceRecord]:
    """AWS's order for a launch-template group: instances launched from a launch configuration,
    then from another launch template, then from the oldest version of the current one."""

    def age(r: InstanceRecord) -> tuple[int, int]:
        if r.launch_kind == LAUNCH_CONFIGURATION:
            return (0, 0)
        if r.launch_spec != current.logical_id:
            return (1, 0)
        return (2, r.launch_version)

    return _keep_min(records, age)


def oldest_configuration(
    records: Sequence[InstanceRecord], current: LaunchSpec
) -> list[InstanceRecord]:
    """Instances of a launch configuration the group no longer uses go first (the lab knows no
    configuration's creation time; any other one is older than the current)."""
    return _keep_min(
        records,
        lambda r: (
            0
            if r.launch_kind == LAUNCH_CONFIGURATION and r.launch_spec != current.logical_id
            else 1
        ),
    )


def closest_to_hour(
    records: Sequence[InstanceRecord], now: float, hour_s: float
) -> list[InstanceRecord]:
    """The instances with the least time left in their current billing hour (from launch)."""
    return _keep_min(records, lambda r: hour_s - ((now - r.launched_at) % hour_s))


def _keep_min(
    records: Sequence[InstanceRecord], key: Callable[[InstanceRecord], Any]
) -> list[InstanceRecord]:
    keys = [key(r) for r in records]
    best = min(keys)
    return [r for r, k in zip(records, keys) if k == best]
