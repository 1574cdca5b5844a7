"""A Classic Load Balancer's instance health as `aws elb describe-instance-health` shows it.

The registry (testbed.lb.registry) keeps one target group per CLB (named after the CLB's
logical id) with the ELBv2 states; a CLB reports them in its own words:

  initial, no check yet   OutOfService  ELB       Instance registration is still in progress.
  initial, checked        OutOfService  Instance  ... not passed the configured HealthyThreshold ...
  healthy                 InService     N/A       N/A
  unhealthy               OutOfService  Instance  ... failed at least the UnhealthyThreshold ...
  draining                InService     N/A       Instance deregistration currently in progress.
  unused                  OutOfService  ELB       ... Availability Zone ... not configured ...

A CLB never fails open: only InService instances take new connections (testbed.alb.config).
Here in the lab layer so that the Lab API (testbed.lab.api) shows it; testbed.lb.classic_health
re-exports it beside the registry.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

IN_SERVICE, OUT_OF_SERVICE = "InService", "OutOfService"
REGISTERING = "Instance registration is still in progress."
NOT_YET_HEALTHY = (
    "Instance has not passed the configured HealthyThreshold number of health checks consecutively."
)
FAILED = (
    "Instance has failed at least the UnhealthyThreshold number of health checks consecutively."
)
DEREGISTERING = "Instance deregistration currently in progress."
NOT_IN_ZONE = (
    "Instance is in the EC2 Availability Zone for which LoadBalancer is not configured to "
    "route traffic to."
)


def instance_state(state: str, checked: bool) -> tuple[str, str, str]:
    """(State, ReasonCode, Description) of one registry state; `checked`: a health check
    result has come in since the instance was registered."""
    if state == "healthy":
        return IN_SERVICE, "N/A", "N/A"
    if state == "draining":
        return IN_SERVICE, "N/A", DEREGISTERING
    if state == "unhealthy":
        return OUT_OF_SERVICE, "Instance", FAILED
    if state == "unused":
        return OUT_OF_SERVICE, "ELB", NOT_IN_ZONE
    if checked:
        return OUT_OF_SERVICE, "Instance", NOT_YET_HEALTHY
    return OUT_OF_SERVICE, "ELB", REGISTERING


def instance_health(rows: Iterable[Any], lb: str) -> list[dict[str, Any]]:
    """InstanceStates of CLB `lb` from the holder's target rows (TargetDescription dicts of
    the CLB's implicit group): InstanceId, State, ReasonCode, Description, plus the lab's
    Host, AvailabilityZone and LastCheck."""
    out = []
    for row in rows:
        if row.get("LoadBalancer") != lb:
            continue
        detail = str(row.get("LastCheck") or "")
        state, code, description = instance_state(row["TargetHealth"]["State"], bool(detail))
        out.append(
            {
                "InstanceId": row["Target"]["Id"],
                "State": state,
                "ReasonCode": code,
                "Description": description,
                "Host": row.get("Host"),
                "AvailabilityZone": row["Target"].get("AvailabilityZone"),
                "LastCheck": detail,
            }
        )
    return sorted(out, key=lambda r: r["InstanceId"])
