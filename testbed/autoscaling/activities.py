"""Scaling activities of an Auto Scaling group, worded as describe-scaling-activities words them.

An activity is one instance launched or terminated. Its Cause is the change that led to it (a
user's set-desired-capacity, a policy's alarm, a scheduled action: worded by whoever changed the
desired capacity) followed by why this instance in particular, e.g.

  "At 2026-12-06T10:00:00Z a user request explicitly set group desired capacity changing the
  desired capacity from 2 to 4. At 2026-12-06T10:00:05Z an instance was started in response to
  a difference between desired and actual capacity, increasing the capacity from 2 to 4."

Times are the lab's clock (epoch seconds); ids are deterministic (uuid-shaped) so two runs of
one lab tell the same story.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# StatusCode values (AWS's ScalingActivityStatusCode, the ones a lab reaches).
PRE_IN_SERVICE = "PreInService"
MID_LIFECYCLE = "MidLifecycleAction"
WAITING_FOR_DRAINING = "WaitingForELBConnectionDraining"
IN_PROGRESS = "InProgress"
SUCCESSFUL = "Successful"
FAILED = "Failed"
CANCELLED = "Cancelled"
FINISHED = (SUCCESSFUL, FAILED, CANCELLED)

# Any fixed namespace works: it only has to be the same in every run.
_NAMESPACE = uuid.UUID("6f1c9a52-4d0e-5b7a-9c3e-2a8b1d4e7f60")


@dataclass
class Activity:
    """One scaling activity (a row of describe-scaling-activities)."""

    activity_id: str
    group_name: str
    description: str
    cause: str
    start_time: float
    status_code: str = IN_PROGRESS
    status_message: str = ""
    progress: int = 0
    end_time: float | None = None
    instance_id: str | None = None

    @property
    def done(self) -> bool:
        return self.status_code in FINISHED

    def update(self, status: str, progress: int, message: str = "") -> None:
        """A new status on the way (progress never goes back, as AWS's does not)."""
        self.status_code = status
        self.progress = max(self.progress, progress)
        if message:
            self.status_message = message

    def finish(self, status: str, now: float, message: str = "") -> None:
        """The end: Successful, Failed or Cancelled at `now` (a second call changes nothing)."""
        if self.done:
            return
        self.status_code = status
        self.end_time = now
        if status == SUCCESSFUL:
            self.progress = 100
        if message:
            self.status_message = message

    def describe(self) -> dict[str, Any]:
        """The activity as describe-scaling-activities prints it (JSON-able)."""
        out: dict[str, Any] = {
            "ActivityId": self.activity_id,
            "AutoScalingGroupName": self.group_name,
            "Description": self.description,
            "Cause": self.cause,
            "StartTime": timestamp(self.start_time),
            "StatusCode": self.status_code,
            "Progress": self.progress,
        }
        if self.end_time is not None:
            out["EndTime"] = timestamp(self.end_time)
        if self.status_message:
            out["StatusMessage"] = self.status_message
        if self.instance_id:
            out["Details"] = f'{{"InstanceId":"{self.instance_id}"}}'
        return out


def iso(t: float) -> str:
    """AWS's time in a Cause: 2026-12-06T10:00:00Z (whole seconds, UTC)."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def timestamp(t: float) -> str:
    """AWS's StartTime / EndTime: 2026-12-06T10:00:00.123Z (milliseconds, UTC)."""
    moment = datetime.fromtimestamp(t, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def activity_id(lab: str, group: str, n: int) -> str:
    """The n-th activity's id of `group` (logical id) in `lab`: uuid-shaped, the same each run."""
    return str(uuid.uuid5(_NAMESPACE, f"{lab}/{group}/activity/{n}"))


def lifecycle_token(lab: str, instance_id: str, hook: str) -> str:
    """The LifecycleActionToken of a hook's wait on an instance (deterministic)."""
    return str(uuid.uuid5(_NAMESPACE, f"{lab}/{instance_id}/hook/{hook}"))


def instance_id(lab: str, group: str, n: int) -> str:
    """The EC2 id of the n-th instance `group` (logical id) launches in `lab`: "i-" and 17 hex
    digits, as EC2's are, derived from the three so every run of a lab has the same ids."""
    digest = hashlib.sha256(f"{lab}/{group}/{n}".encode()).hexdigest()
    return "i-" + digest[:17]


# Descriptions -------------------------------------------------------------------------------


def launching(instance: str) -> str:
    return f"Launching a new EC2 instance: {instance}"


def launch_failed() -> str:
    # AWS drops the id from a failed launch's Description: there was no instance.
    return "Launching a new EC2 instance.  Status Reason: launch failed"


def terminating(instance: str) -> str:
    return f"Terminating EC2 instance: {instance}"


# Causes: what changed the desired capacity ------------------------------------------------


def user_set_desired(now: float, old: int, new: int) -> str:
    """set-desired-capacity (testbed scale NAME GROUP --desired N)."""
    return (
        f"At {iso(now)} a user request explicitly set group desired capacity changing the "
        f"desired capacity from {old} to {new}."
    )


def user_created(now: float, desired: int) -> str:
    """The group's creation (the stack's CREATE): its first instances."""
    return (
        f"At {iso(now)} a user request created an AutoScalingGroup changing the desired "
        f"capacity from 0 to {desired}."
    )


def scheduled_update(now: float, min_size: int, max_size: int, desired: int, old: int) -> str:
    """A scheduled action that changed the group (the runtime words it: it knows the action)."""
    return (
        f"At {iso(now)} a scheduled action update of AutoScalingGroup constraints to min: "
        f"{min_size}, max: {max_size}, desired: {desired} changing the desired capacity from "
        f"{old} to {desired}."
    )


def user_update(now: float, min_size: int, max_size: int, desired: int, old: int) -> str:
    """update-auto-scaling-group with new bounds (testbed scale ... --min / --max)."""
    return (
        f"At {iso(now)} a user request update of AutoScalingGroup constraints to min: "
        f"{min_size}, max: {max_size}, desired: {desired} changing the desired capacity from "
        f"{old} to {desired}."
    )


# Causes: why this instance ----------------------------------------------------------------


def started_for_capacity(now: float, old: int, new: int) -> str:
    return (
        f"At {iso(now)} an instance was started in response to a difference between desired "
        f"and actual capacity, increasing the capacity from {old} to {new}."
    )


def stopped_for_capacity(now: float, old: int, new: int) -> str:
    return (
        f"At {iso(now)} an instance was taken out of service in response to a difference "
        f"between desired and actual capacity, shrinking the capacity from {old} to {new}."
    )


# AZ rebalancing: no AWS page in reach quotes these causes; the words are those of AWS's
# activity histories as remembered ("to aid in balancing the group's zones").
def started_for_rebalance(now: float) -> str:
    return f"At {iso(now)} an instance was launched to aid in balancing the group's zones."


def stopped_for_rebalance(now: float) -> str:
    return (
        f"At {iso(now)} an instance was taken out of service to aid in balancing the group's zones."
    )


def stopped_for_lifetime(now: float) -> str:
    # Like the rebalancing words: no AWS page in reach quotes this cause.
    return (
        f"At {iso(now)} an instance was taken out of service in response to the maximum "
        f"instance lifetime of the group being reached."
    )


def stopped_for_elb_health(now: float) -> str:
    return (
        f"At {iso(now)} an instance was taken out of service in response to an ELB system "
        f"health check failure."
    )


def stopped_for_ec2_health(now: float) -> str:
    return (
        f"At {iso(now)} an instance was taken out of service in response to an EC2 health "
        f"check indicating it has been terminated or stopped."
    )


def stopped_for_user_health(now: float) -> str:
    return f"At {iso(now)} an instance was taken out of service in response to a user health-check."


def abandoned(token: str, why: str) -> str:
    """StatusMessage of a launch a LAUNCHING hook abandoned (why: "Lifecycle Action Completed
    with ABANDON Result" or "Heartbeat Timeout")."""
    return (
        f"Instance failed to complete user's Lifecycle Action: Lifecycle Action with token "
        f"{token} was abandoned: {why}"
    )


def joined(prefix: str | None, cause: str) -> str:
    """The desired-capacity change's cause, then this instance's."""
    return f"{prefix} {cause}" if prefix else cause
