"""Typed requests to a lab's holder and controller: one function per op.

testbed.rpc carries plain JSON objects; each function here sends its op's request
(testbed.messages) and returns the reply typed. A reply with "ok": false raises
rpc.RpcRefused, so a returned reply always has its fields; nobody listening raises
rpc.RpcUnavailable (OSError for other socket trouble).

    rows = asks.holder_targets(str(lab.dir / HOLDER_SOCK), lb="MyNLB")["targets"]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from testbed import rpc
from testbed.messages import (
    ActivateRequest,
    AlarmsDescribeRequest,
    AlarmsReply,
    AsgActivitiesReply,
    AsgActivitiesRequest,
    AsgDescribeReply,
    AsgDescribeRequest,
    ControllerStatusReply,
    HealthCheckResult,
    HealthChecksReply,
    HealthChecksRequest,
    HealthReportRequest,
    NlbStatsReply,
    NlbStatsRequest,
    ReloadPlanRequest,
    ReloadSecurityRequest,
    Reply,
    SetTargetsRequest,
    StatsReply,
    StatsRequest,
    StatusRequest,
    TargetSnapshot,
    TargetsReply,
    TargetsRequest,
    TerminateReply,
    TerminateRequest,
)

R = TypeVar("R", bound=Reply)


def ask(path: str, request: Mapping[str, Any], reply_type: type[R], timeout: float) -> R:
    """Send `request`; its reply as `reply_type` (RpcRefused when not ok).

    The reply is JSON from the peer: its shape is the peer's promise (testbed.messages);
    nothing but "ok" is checked at run time."""
    reply = rpc.call(path, request, timeout=timeout)
    if not reply.get("ok"):
        raise rpc.RpcRefused(reply)
    return cast(R, reply)


# ---- the holder (LAB_DIR/holder.sock) ----------------------------------------------------
def holder_targets(
    path: str, lb: str | None = None, tg: str | None = None, timeout: float = 10.0
) -> TargetsReply:
    """Target health rows, like `aws elbv2 describe-target-health`."""
    return ask(path, TargetsRequest(op="targets", lb=lb, tg=tg), TargetsReply, timeout)


def holder_health_checks(path: str, lb: str, az: str, timeout: float = 10.0) -> HealthChecksReply:
    """What the health checker of `lb`'s node in `az` checks."""
    request = HealthChecksRequest(op="health_checks", lb=lb, az=az)
    return ask(path, request, HealthChecksReply, timeout)


def holder_health_report(
    path: str, results: list[HealthCheckResult], timeout: float = 10.0
) -> Reply:
    """Health check results for the registry."""
    request = HealthReportRequest(op="health_report", results=results)
    return ask(path, request, Reply, timeout)


def holder_asg_describe(
    path: str, group: str | None = None, timeout: float = 10.0
) -> AsgDescribeReply:
    """Auto Scaling groups and their instances, like describe-auto-scaling-groups."""
    return ask(path, AsgDescribeRequest(op="asg_describe", group=group), AsgDescribeReply, timeout)


def holder_asg_activities(
    path: str, group: str, limit: int | None = None, timeout: float = 10.0
) -> AsgActivitiesReply:
    """A group's scaling activities, newest first (describe-scaling-activities)."""
    request = AsgActivitiesRequest(op="asg_activities", group=group, limit=limit)
    return ask(path, request, AsgActivitiesReply, timeout)


def holder_alarms(path: str, timeout: float = 10.0) -> AlarmsReply:
    """The lab's CloudWatch alarms (target tracking's included), like describe-alarms."""
    return ask(path, AlarmsDescribeRequest(op="alarms_describe"), AlarmsReply, timeout)


# ---- the controller (LAB_DIR/controller.sock) -------------------------------------------
def controller_status(path: str, timeout: float = 5.0) -> ControllerStatusReply:
    """Connected and programmed switches, OpenFlow errors, packet-ins."""
    return ask(path, StatusRequest(op="status"), ControllerStatusReply, timeout)


def controller_stats(
    path: str, flows: bool = True, tables: tuple[int, ...] | None = None, timeout: float = 10.0
) -> StatsReply:
    """Port (and flow) counters of every switch, asked for now."""
    request = StatsRequest(op="stats", flows=flows, tables=list(tables or ()))
    return ask(path, request, StatsReply, timeout)


def controller_nlb_stats(path: str, timeout: float = 15.0) -> NlbStatsReply:
    """NLB counters: new flows per target, processed bytes, active flows."""
    return ask(path, NlbStatsRequest(op="nlb_stats"), NlbStatsReply, timeout)


def controller_set_targets(path: str, targets: TargetSnapshot, timeout: float = 10.0) -> Reply:
    """New target states of the NLB and GWLB groups; returns once the switches have them."""
    return ask(path, SetTargetsRequest(op="set_targets", targets=targets), Reply, timeout)


def controller_activate(path: str, await_targets: bool, timeout: float = 10.0) -> Reply:
    """Make the standby on `path` the lab's controller (it waits for the target states if
    `await_targets`)."""
    request = ActivateRequest(op="activate", await_targets=await_targets)
    return ask(path, request, Reply, timeout)


def controller_reload_security(path: str, timeout: float = 10.0) -> Reply:
    """The controller on `path` reprograms security groups and ACLs from the plan file;
    returns once the switches have them."""
    return ask(path, ReloadSecurityRequest(op="reload_security"), Reply, timeout)


def controller_reload_plan(path: str, timeout: float = 10.0) -> Reply:
    """The controller on `path` takes the plan file as it is now (hosts launched or
    terminated): returns once every switch has acknowledged its new flows."""
    return ask(path, ReloadPlanRequest(op="reload_plan"), Reply, timeout)


def controller_terminate(
    path: str, lb: str, ip: str, port: int, timeout: float = 10.0
) -> TerminateReply:
    """End the established flows of `lb` to ip:port."""
    request = TerminateRequest(op="terminate", lb=lb, ip=ip, port=port)
    return ask(path, request, TerminateReply, timeout)
