"""Typed shapes of what the lab's processes tell each other over testbed.rpc and in files.

The holder serves the CLI, the Lab API, health checkers and GWLB nodes; the controller serves
the holder and the metrics. Each request is a JSON object with an "op"; each reply has "ok"
(and "error" when not ok). These TypedDicts name the fields both sides rely on, so that a
change of one side is a type error on the other; testbed.asks sends each request and types
its reply.

  holder      status, down, update, controller_restarts, targets, register, deregister
              (the CLI, the Lab API, metrics, GWLB nodes), health_checks, health_report
              (health checkers)
  controller  status, stats, nlb_stats (metrics), set_targets, terminate, activate (the
              holder)
  files       request.json (LabRequest: what the holder is to build), the lab state's
              owner and controller entries, target-events.jsonl (TargetEvent)
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict, get_args, get_type_hints

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
    Key: NotRequired[str]  # the registry's key, e.g. "WebA1:80" or "WebGroup-1:80"
    Host: NotRequired[str | None]  # the lab host of an instance target
    AlbNode: NotRequired[str]  # an alb target (an ALB behind an NLB): the ALB node's host


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


# ---- the lab's launch (LAB_DIR/request.json: testbed.lab.api.start_lab -> the holder) --
class OwnerInfo(TypedDict):
    """The process a lab belongs to (testbed.lab.owner.Owner), in the request and state."""

    pid: int
    start_time: int  # clock ticks since boot: a reused pid is not the owner
    cmdline: str
    command: str  # the command line, short


class LabRequest(TypedDict):
    """What the holder is to build (start_lab writes every field; a test may write less)."""

    name: str
    template: str  # absolute path
    params: NotRequired[dict[str, str]]
    datapath: NotRequired[str | None]  # auto | user | kernel; the template's when None
    region: NotRequired[str | None]  # us-east-1 when None
    owner: NotRequired[OwnerInfo | None]  # None: the lab stays until `testbed down`
    keep_dir: NotRequired[bool]  # keep the lab's folder when the holder ends the lab itself
    gwlb_datapath: NotRequired[str | None]  # auto | switch | node (testbed.plan.gwlb_datapath)
    servers: NotRequired[dict[str, str] | None]  # AZ -> server: a lab across servers (issue 18)
    ssh_config: NotRequired[str | None]  # the ssh config that reaches those servers
    tunnel_rate: NotRequired[int | None]  # bits/s of each tunnel between servers (tbf)


class ControllerInfo(TypedDict):
    """The lab state's `controller` entry (the holder, then its supervisor, write it)."""

    pid: int | None
    port: int | None  # its OpenFlow port
    log: str
    restarts: int  # how many times the holder replaced a dead controller
    standby_pid: int | None  # the controller kept ready beside it


# ---- requests both servers answer --------------------------------------------------------
class StatusRequest(TypedDict):
    op: Literal["status"]


# ---- holder: the lab ---------------------------------------------------------------------
class HolderStatusReply(Reply):
    state: dict[str, Any]  # the lab's state.json (testbed.lab.state), as JSON


class DownRequest(TypedDict):
    op: Literal["down"]
    reason: NotRequired[str | None]  # for the DELETE_IN_PROGRESS event ("User Initiated")


class UpdateRequest(TypedDict):
    op: Literal["update"]
    template: str  # absolute path of the new template
    params: dict[str, str]
    # `testbed update --plan FILE`: the saved plan's template text (the file may have
    # changed since) and the digest of what the lab ran when the plan was made.
    template_text: NotRequired[str]
    base_digest: NotRequired[str]
    stack: NotRequired[str]  # a stack of the lab other than its first (`--stack S`)


class UpdateReply(Reply):
    changes: list[str]  # what differs from the running lab (testbed.plan.changes)
    done: list[str]  # what was applied, as told in the events


# ---- holder: the controller's supervision (testbed.stack.supervisor) --------------------
class CreateStackRequest(TypedDict):
    """Add a stack to the running lab (`testbed up T --into LAB --stack-name S`)."""

    op: Literal["create_stack"]
    name: str  # the stack name (checked by the caller: naming.validate_stack_name)
    template: str  # absolute path
    params: dict[str, str]


class DeleteStackRequest(TypedDict):
    """Delete one stack of the lab (`testbed down LAB --stack S`)."""

    op: Literal["delete_stack"]
    name: str


class StacksRequest(TypedDict):
    op: Literal["stacks"]


class StacksReply(Reply):
    stacks: list[dict[str, Any]]  # state.json's "stacks" (testbed.stack.stacks.StackRecord)


class ControllerRestartsRequest(TypedDict):
    op: Literal["controller_restarts"]
    enabled: bool  # False pauses the restarts of a dead controller; True allows them again


class ControllerRestartsReply(Reply):
    enabled: bool  # whether the holder restarts a controller that died
    controller_running: bool


# ---- holder: target registration and health ----------------------------------------------
class TargetsRequest(TypedDict):
    op: Literal["targets"]
    lb: NotRequired[str | None]  # every load balancer when missing or None
    tg: NotRequired[str | None]  # every target group when missing or None


class RegisterRequest(TypedDict):
    op: Literal["register", "deregister"]
    tg: str
    lb: str | None  # needed only when the group is behind several load balancers
    target: str  # an instance name, or an IP address for ip target groups
    port: int | None  # the group's port when None


class RegisterReply(Reply):
    target: str  # registry key, e.g. "WebA1:80"
    load_balancer: str
    target_group: str


class HealthChecksRequest(TypedDict):
    """A load balancer node's health checker asks what to check."""

    op: Literal["health_checks"]
    lb: str
    az: str  # the node's AZ: it checks the targets there


class HealthCheckSpec(TypedDict):
    """One target to check and how (the target group's health check settings)."""

    lb: str
    tg: str
    key: str  # registry key, e.g. "WebA1:80"
    ip: str
    port: int
    protocol: str  # TCP | HTTP | SSL | HTTPS (CLB: SSL is a TLS handshake)
    path: str | None
    matcher: str | None  # HTTP codes, e.g. "200-399"
    interval_s: float
    timeout_s: float
    # More request headers of an HTTP check: a Lambda target's group (LAMBDA_GROUP_HEADER),
    # which its runtime needs to build the health check's event. Absent: none.
    headers: NotRequired[dict[str, str]]


class HealthChecksReply(Reply):
    checks: list[HealthCheckSpec]


class HealthCheckResult(TypedDict):
    lb: str
    tg: str
    key: str
    ok: bool
    detail: str  # "timeout", "status 500", ...
    latency_ms: float
    time: float


class HealthReportRequest(TypedDict):
    op: Literal["health_report"]
    results: list[HealthCheckResult]


# ---- holder: Auto Scaling (testbed.autoscaling.service) ---------------------------------
# Groups, activities and alarms are shaped like the AWS CLI's describe-auto-scaling-groups,
# describe-scaling-activities and describe-alarms (their keys: AutoScalingGroupName, ...).
class AsgDescribeRequest(TypedDict):
    op: Literal["asg_describe"]
    group: NotRequired[str | None]  # logical id or group name; every group when None


class AsgDescribeReply(Reply):
    groups: list[dict[str, Any]]  # AutoScalingGroups entries (Instances with Host)
    time_scale: float  # Metadata.Lab.TimeScale


class AsgActivitiesRequest(TypedDict):
    op: Literal["asg_activities"]
    group: str
    limit: NotRequired[int | None]  # the newest N (every activity when None)


class AsgActivitiesReply(Reply):
    activities: list[dict[str, Any]]  # newest first, like describe-scaling-activities


class AsgSetCapacityRequest(TypedDict):
    """set-desired-capacity (and MinSize / MaxSize, as update-auto-scaling-group)."""

    op: Literal["asg_set_capacity"]
    group: str
    desired: int | None
    min: NotRequired[int | None]
    max: NotRequired[int | None]
    honour_cooldown: NotRequired[bool]


class AsgGroupReply(Reply):
    group: dict[str, Any]  # the group after the change (an AutoScalingGroups entry)


class AsgCompleteLifecycleRequest(TypedDict):
    op: Literal["asg_complete_lifecycle"]
    group: str
    hook: str
    instance: str  # instance id (i-...) or its lab host name
    result: str  # CONTINUE | ABANDON


class AlarmsDescribeRequest(TypedDict):
    op: Literal["alarms_describe"]


class AlarmsReply(Reply):
    alarms: list[dict[str, Any]]  # MetricAlarms entries (plus the lab's last datapoints)


HolderRequest = (
    StatusRequest
    | DownRequest
    | UpdateRequest
    | CreateStackRequest
    | DeleteStackRequest
    | StacksRequest
    | ControllerRestartsRequest
    | TargetsRequest
    | RegisterRequest
    | HealthChecksRequest
    | HealthReportRequest
    | AsgDescribeRequest
    | AsgActivitiesRequest
    | AsgSetCapacityRequest
    | AsgCompleteLifecycleRequest
    | AlarmsDescribeRequest
)


# ---- controller --------------------------------------------------------------------------
class OpenFlowError(TypedDict):
    """An OFPT_ERROR a switch sent."""

    dpid: int
    type: int
    code: int
    data: str  # the start of the offending message, hex
    time: float


class Takeover(TypedDict):
    """What taking a connected switch over found in it and changed."""

    found: int  # flows it held when it connected
    added: NotRequired[int]  # flow-mods that added a flow (once programmed)
    deleted: NotRequired[int]  # ... that deleted one


class ControllerStatusReply(Reply):
    pid: int
    switches: list[int]  # connected dpids
    ready: list[int]  # dpids whose flows are acknowledged (barrier)
    expected: list[int]  # every dpid of the plan
    errors: list[OpenFlowError]
    packet_ins: int
    uptime: float
    awaiting_targets: bool  # it programs nothing before the holder's set_targets
    takeovers: dict[str, Takeover]  # by dpid (decimal text)


class StatsRequest(TypedDict):
    op: Literal["stats"]
    flows: bool  # flow counters too (port counters always)
    tables: list[int]  # flows of these tables only; every table when empty


class PortStats(TypedDict):
    port: int
    rx_packets: int
    tx_packets: int
    rx_bytes: int
    tx_bytes: int
    rx_dropped: int
    tx_dropped: int


class FlowStats(TypedDict):
    table: int
    priority: int
    cookie: int
    match: dict[str, Any]  # OXM field -> value ([value, mask] when masked)
    packets: int
    bytes: int


class SwitchStats(TypedDict):
    ports: list[PortStats]
    flows: list[FlowStats]


class StatsReply(Reply):
    time: float
    switches: dict[str, SwitchStats]  # by dpid (decimal text: JSON keys are strings)
    missing: list[str]  # "dpid/kind" parts that did not answer in time


class NlbStatsRequest(TypedDict):
    op: Literal["nlb_stats"]


class NewFlowCount(TypedDict):
    lb: str
    tg: str
    target: str
    count: int  # since the controller started


class ActiveFlowCount(TypedDict):
    lb: str
    ip: str
    port: int
    count: int  # established flows to that target now


class NlbCounterSnapshot(TypedDict):
    new_flows: list[NewFlowCount]
    processed_bytes: dict[str, int]  # by load balancer


class NlbStatsReply(Reply, NlbCounterSnapshot):
    time: float
    active_flows: list[ActiveFlowCount]


class SetTargetsRequest(TypedDict):
    op: Literal["set_targets"]
    targets: TargetSnapshot  # the NLB and GWLB target groups (ALBs route in HAProxy)


class TerminateRequest(TypedDict):
    """End the established flows of a target (its conntrack entries)."""

    op: Literal["terminate"]
    lb: str
    ip: str
    port: int


class TerminateReply(Reply):
    flushed: int  # conntrack entries removed


class ActivateRequest(TypedDict):
    """A standby becomes the lab's controller (testbed.stack.supervisor)."""

    op: Literal["activate"]
    await_targets: bool  # program nothing before the holder's set_targets


class ReloadSecurityRequest(TypedDict):
    """Security groups or network ACL entries changed (a live update): the controller reads
    them from the plan file again and reprograms their flows; established flows stay."""

    op: Literal["reload_security"]


class ReloadPlanRequest(TypedDict):
    """The plan file changed while the lab runs (Auto Scaling launched or terminated an
    instance): the controller reads it again; forwarding, security and the NLBs take the new
    plan (NLB target states stay) and every switch is reprogrammed before the reply."""

    op: Literal["reload_plan"]


ControllerRequest = (
    StatusRequest
    | StatsRequest
    | NlbStatsRequest
    | SetTargetsRequest
    | TerminateRequest
    | ActivateRequest
    | ReloadSecurityRequest
    | ReloadPlanRequest
)


def _ops(requests: object) -> frozenset[str]:
    """The ops of a union of request types (each one's "op" Literal)."""
    return frozenset(
        op for request in get_args(requests) for op in get_args(get_type_hints(request)["op"])
    )


# What each server answers: anything else is refused before a field is read.
HOLDER_OPS = _ops(HolderRequest)
CONTROLLER_OPS = _ops(ControllerRequest)
