"""An Auto Scaling instance's lifecycle as the group keeps it: AWS's states, the record of
one instance, and the actions the group asks the runtime to carry out.

Launch: build the host (testbed.lab.instances), then report launched() and running().
Register / Deregister: with every load balancer using the group's target groups (drained()
once the deregistration delay ended). Terminate: remove the host, then terminated().
"""

from __future__ import annotations

from dataclasses import dataclass, field

LAUNCH_TEMPLATE = "launch-template"
LAUNCH_CONFIGURATION = "launch-configuration"

PENDING = "Pending"
PENDING_WAIT = "Pending:Wait"
PENDING_PROCEED = "Pending:Proceed"
IN_SERVICE = "InService"
TERMINATING_STATE = "Terminating"
TERMINATING_WAIT = "Terminating:Wait"
TERMINATING_PROCEED = "Terminating:Proceed"
TERMINATED = "Terminated"
PENDING_STATES = (PENDING, PENDING_WAIT, PENDING_PROCEED)
TERMINATING_STATES = (TERMINATING_STATE, TERMINATING_WAIT, TERMINATING_PROCEED)

HEALTHY = "Healthy"
UNHEALTHY = "Unhealthy"
# health() reasons the group words as AWS does; any other text is a user's (custom) check.
ELB = "ELB"
EC2 = "EC2"

CONTINUE = "CONTINUE"
ABANDON = "ABANDON"


@dataclass
class InstanceRecord:
    """One instance of the group as Auto Scaling sees it."""

    instance_id: str
    host: str
    az: str
    subnet: str
    launch_spec: str  # the LaunchSpec's logical id
    launch_version: int
    lifecycle: str = PENDING
    health: str = HEALTHY
    launched_at: float = 0.0
    in_service_at: float | None = None
    hook: str | None = None  # the lifecycle hook it waits on
    hook_deadline: float | None = None
    protected_from_scale_in: bool = False
    draining: bool = False
    # The group's bookkeeping (not AWS fields).
    launch_kind: str = LAUNCH_TEMPLATE
    launch_activity: str | None = None
    terminate_activity: str | None = None
    running: bool = False  # the runtime said: host up, role ready
    drained: bool = False
    hook_result: str | None = None
    hooks_left: list[str] = field(default_factory=list)
    replace_cause: str | None = None  # set: terminate it once its replacement is in service
    health_reason: str = ""
    terminated_at: float | None = None


@dataclass(frozen=True)
class Launch:
    group: str
    subnet: str
    az: str
    instance_id: str
    host: str
    activity_id: str


@dataclass(frozen=True)
class Register:
    group: str
    instance_id: str


@dataclass(frozen=True)
class Deregister:
    group: str
    instance_id: str


@dataclass(frozen=True)
class Terminate:
    group: str
    instance_id: str
    activity_id: str


Action = Launch | Register | Deregister | Terminate
