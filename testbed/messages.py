"""Typed shapes of what the lab's processes tell each other over testbed.rpc and in files.

The holder serves the CLI, the Lab API, health checkers and GWLB nodes; the controller serves
the holder and the metrics. Each request is a JSON object with an "op"; each reply has "ok"
(and "error" when not ok). These TypedDicts name the fields both sides rely on, so that a
change of one side is a type error on the other.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

TargetState = Literal["initial", "healthy", "unhealthy", "draining", "unused"]


class Reply(TypedDict):
    """Every reply: ok, and what went wrong when not ok."""

    ok: bool
    error: NotRequired[str]
    bad_input: NotRequired[bool]  # the error is the caller's input (CLI exit code 2)


# ---- target health (holder: op "targets") ----------------------------------------------
class TargetId(TypedDict):
    Id: str  # "i-<instance>" for instance targets, the address for ip targets
    Port: int
    AvailabilityZone: str | None


class TargetHealth(TypedDict):
    State: TargetState
    Reason: NotRequired[str]  # AWS's reason code, e.g. Target.FailedHealthChecks
    Description: NotRequired[str]


class TargetDescription(TypedDict):
    """One row of `testbed targets`, like `aws elbv2 describe-target-health`."""

    LoadBalancer: str
    TargetGroup: str
    Target: TargetId
    Ip: str
    HealthCheckPort: str
    TargetHealth: TargetHealth
    Since: float  # when the target entered its state (epoch s)
    LastCheck: str  # what the last health check said
    DrainUntil: float | None


class TargetsReply(Reply):
    targets: list[TargetDescription]


class TargetEvent(TypedDict):
    """A target's health transition (target-events.jsonl; testbed.schemas columns)."""

    time: float
    load_balancer: str
    target_group: str
    target: str  # registry key, e.g. "WebA1:80"
    old: str
    new: str  # a TargetState, or "" when the target left its group
    reason: str
    applied: NotRequired[float]  # when the switches / HAProxy had the change


# ---- the controller's view of targets (holder -> controller: op "set_targets") ---------
class RuntimeTargetInfo(TypedDict):
    key: str
    ip: str
    port: int
    az: str | None
    state: TargetState


# {load balancer: {target group: [targets]}}
TargetSnapshot = dict[str, dict[str, list[RuntimeTargetInfo]]]


# ---- the controller's supervision (holder: op "controller_restarts") --------------------
class ControllerRestartsReply(Reply):
    enabled: bool  # whether the holder restarts a controller that died
    controller_running: bool
