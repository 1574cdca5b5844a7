"""One Auto Scaling group's decisions: which instances to launch and terminate, and when.

Pure logic on a clock the caller gives (`now`, epoch seconds). The runtime (service) calls
`step(now)` every tick, carries out the actions it returns (launch a host, register it with the
group's target groups, deregister it, remove the host) and reports back what happened
(`launched`, `running`, `health`, `drained`, `terminated`, `complete_lifecycle`).

AWS's behaviour reproduced (EC2 Auto Scaling user guide):
- Capacity: the group keeps DesiredCapacity instances (Pending* and InService ones count;
  Terminating ones, Unhealthy ones and ones being replaced do not), within [MinSize, MaxSize].
- Launches go to the AZ with the fewest instances (ties: the template's subnet order).
- Lifecycle: Pending -> (Pending:Wait on each LAUNCHING hook) -> Pending:Proceed -> InService
  (registered with the target groups); Terminating (deregistered, draining) -> (Terminating:Wait
  on each TERMINATING hook) -> Terminating:Proceed -> Terminated. A hook waits until
  complete_lifecycle or its heartbeat timeout (then its DefaultResult); ABANDON on launch
  terminates the new instance and its launch activity is Cancelled.
- Scale in: termination policies after AZ balance (testbed.autoscaling.termination).
- Replacement launches first: an Unhealthy instance (and a rebalancing victim) stops counting,
  so the group launches its replacement; the old one is terminated once the group has its
  desired number of InService instances again (or the replacement's launch failed). The issue
  asks for this order (AWS's health replacement terminates first; its rebalancing launches
  first). Replacements may take the group above MaxSize by 10 % (at least one instance), as
  AWS allows while rebalancing; past that, one old instance goes first to make room.
- Rebalance: when the AZs differ by more than one instance and nothing is launching or
  terminating, one instance of the biggest AZ is replaced by one in the smallest (one pair at a
  time, until balanced).
- MaxInstanceLifetime: one instance at a time is terminated, then replaced, once in service
  that long.
- A scale-in only picks InService instances: one still Pending is terminated once InService.
- Failed launches: the activity Failed with the launcher's error; the next try after
  LAUNCH_RETRY_S (AWS's seconds, scaled), as AWS pauses between tries.
- Health check grace period (HealthCheckGracePeriod, scaled): counted from the instance's
  InService time, as the user guide describes it; it holds back ELB and custom health
  failures only: an EC2 failure (the host or its role is gone) marks the instance Unhealthy at
  once, as AWS does for a stopped or terminated instance.
- Cooldown: only after a change made with honour_cooldown (simple scaling policies,
  set-desired-capacity --honor-cooldown); it starts when that change's activities finished.
"""

from __future__ import annotations

import builtins
import math
from typing import Any

from testbed.autoscaling import activities as words
from testbed.autoscaling import termination
from testbed.autoscaling.activities import Activity
from testbed.autoscaling.describe import describe_group
from testbed.autoscaling.lifecycle import (
    ABANDON,
    CONTINUE,
    EC2,
    ELB,
    HEALTHY,
    IN_SERVICE,
    PENDING,
    PENDING_PROCEED,
    PENDING_STATES,
    PENDING_WAIT,
    TERMINATED,
    TERMINATING_PROCEED,
    TERMINATING_STATE,
    TERMINATING_STATES,
    TERMINATING_WAIT,
    UNHEALTHY,
    Action,
    Deregister,
    InstanceRecord,
    Launch,
    Register,
    Terminate,
)
from testbed.autoscaling.policies import GroupView
from testbed.autoscaling.timescale import TimeScale
from testbed.errors import BadInput
from testbed.model.autoscaling_types import (
    LAUNCHING,
    TERMINATING,
    AutoScalingGroup,
    LaunchSpec,
    LifecycleHookSpec,
)

# AWS's seconds (scaled at run time): how long a Terminated instance stays in describe(), and
# the pause before a failed launch is tried again (AWS backs off too; it does not spin).
TERMINATED_KEPT_S = 60.0
LAUNCH_RETRY_S = 10.0


class GroupRuntime:
    """The decisions of one AWS::AutoScaling::AutoScalingGroup in a running lab."""

    def __init__(
        self,
        model: AutoScalingGroup,
        scale: TimeScale,
        lab: str,
        subnet_azs: dict[str, str] | None = None,
    ) -> None:
        """subnet_azs: each subnet's AZ; default: model.azs, parallel to model.subnets."""
        self.model = model
        self.scale = scale
        self.lab = lab
        self.min_size = model.min_size
        self.max_size = model.max_size
        self.desired = model.desired
        self.launch_spec: LaunchSpec = model.launch
        # In launch order; Terminated ones stay a while (TERMINATED_KEPT_S) as in AWS.
        self.instances: dict[str, InstanceRecord] = {}
        # Oldest first; describe_activities() lists them newest first, as AWS does.
        self.activities: list[Activity] = []
        self._activities: dict[str, Activity] = {}
        self._subnet_az = subnet_azs or _parallel_azs(model)
        self._n = 0
        self._activity_n = 0
        self._now = 0.0
        self.created_at: float | None = None  # the first step's time
        self._change_cause: str | None = None
        self._retry_launch_at = -math.inf
        self._launch_failed = False
        self._cooldown_until = -math.inf
        # A change that honours cooldowns arms one (lab seconds); step() then follows that
        # change's activities and starts the cooldown when the last of them ended.
        self._cooldown_armed: float | None = None
        self._cooldown_running: float | None = None
        self._cooldown_activities: list[Activity] = []

    # -- user and policy requests ------------------------------------------------------------

    def set_capacity(
        self,
        desired: int | None = None,
        min: int | None = None,
        max: int | None = None,
        *,
        cause: str | None = None,
        now: float,
        honour_cooldown: bool = False,
        cooldown_s: float | None = None,
    ) -> bool:
        """Change the desired capacity and/or the bounds (set-desired-capacity,
        update-auto-scaling-group). A min/max change alone clamps the desired capacity into
        the new bounds, as AWS does.

        cause: the change's words (a policy's or scheduled action's); None or "": a user's.
        honour_cooldown: refuse (return False) during a cooldown, and start one (cooldown_s in
        AWS seconds; None: the group's Cooldown) when the change's activities end.
        Raises BadInput with AWS's message when the values do not fit."""
        self._now = now
        if honour_cooldown and self.in_cooldown(now):
            return False
        new_min = self.min_size if min is None else min
        new_max = self.max_size if max is None else max
        self._check(desired, min, max, new_min, new_max)
        new_desired = desired
        if new_desired is None:
            new_desired = builtins.min(builtins.max(self.desired, new_min), new_max)
        old = self.desired
        if not cause:
            if min is None and max is None:
                cause = words.user_set_desired(now, old, new_desired)
            else:
                cause = words.user_update(now, new_min, new_max, new_desired, old)
        self.min_size, self.max_size, self.desired = new_min, new_max, new_desired
        if new_desired != old:
            self._change_cause = cause
        if honour_cooldown:
            self._cooldown_armed = self.scale.s(
                self.model.cooldown_s if cooldown_s is None else cooldown_s
            )
        return True

    def _check(
        self, desired: int | None, min: int | None, max: int | None, new_min: int, new_max: int
    ) -> None:
        who = self.model.logical_id
        if new_min > new_max:
            raise BadInput(
                f"Max bound, {new_max}, must be greater than or equal to min bound, {new_min}",
                logical_id=who,
            )
        if desired is None:
            return
        if min is not None or max is not None:
            if not new_min <= desired <= new_max:
                raise BadInput(
                    f"Desired capacity:{desired} must be between the specified min size:"
                    f"{new_min} and max size:{new_max}",
                    logical_id=who,
                )
            return
        if desired > new_max:
            raise BadInput(
                f"New SetDesiredCapacity value {desired} is above max value {new_max} for "
                "the AutoScalingGroup.",
                logical_id=who,
            )
        if desired < new_min:
            raise BadInput(
                f"New SetDesiredCapacity value {desired} is below min value {new_min} for "
                "the AutoScalingGroup.",
                logical_id=who,
            )

    def use_launch(self, spec: LaunchSpec) -> None:
        """Launch new instances from `spec` (a new launch template version); the ones running
        keep theirs (OldestLaunchTemplate terminates them first)."""
        self.launch_spec = spec

    def set_protected(self, instance_id: str, protected: bool) -> None:
        """Instance scale-in protection (set-instance-protection)."""
        self._record(instance_id).protected_from_scale_in = protected

    # -- runtime feedback ---------------------------------------------------------------------

    def launched(
        self, instance_id: str, ok: bool, error: str = "", now: float | None = None
    ) -> None:
        """The host of a Launch was built (ok) or not: a failed one is gone, nothing to undo.
        now (here and in health, terminated): when it happened; None: the last step's time."""
        rec = self.instances.get(instance_id)
        if rec is None or ok:
            return
        now = self._now if now is None else now
        del self.instances[instance_id]
        self._launch_failed = True
        self._retry_launch_at = now + self.scale.s(LAUNCH_RETRY_S)
        self._activity(rec.launch_activity).finish(words.FAILED, now, error)

    def running(self, instance_id: str) -> None:
        """The instance's host is up and its role answers (or it has none)."""
        rec = self.instances.get(instance_id)
        if rec is not None:
            rec.running = True

    def health(
        self, instance_id: str, healthy: bool, reason: str = "", now: float | None = None
    ) -> None:
        """A health check's verdict. reason: starts with "ELB" or "EC2" for those checks;
        other words are a custom check's. Unhealthy is final (AWS never turns an instance
        Healthy again: it replaces it)."""
        rec = self.instances.get(instance_id)
        if rec is None or healthy or rec.health == UNHEALTHY:
            return
        if rec.lifecycle in TERMINATING_STATES or rec.lifecycle == TERMINATED:
            return
        now = self._now if now is None else now
        kind = EC2 if reason.startswith(EC2) else ELB if reason.startswith(ELB) else ""
        if kind != EC2 and self._in_grace(rec, now):
            return
        rec.health = UNHEALTHY
        rec.health_reason = kind or reason
        rec.replace_cause = _health_cause(kind, now)

    def drained(self, instance_id: str) -> None:
        """Its deregistration delay ended in every target group."""
        rec = self.instances.get(instance_id)
        if rec is not None:
            rec.drained = True
            rec.draining = False

    def terminated(self, instance_id: str, now: float | None = None) -> None:
        """Its host is removed."""
        rec = self.instances.get(instance_id)
        if rec is None or rec.lifecycle == TERMINATED:
            return
        now = self._now if now is None else now
        rec.lifecycle = TERMINATED
        rec.terminated_at = now
        rec.hook = rec.hook_deadline = None
        if rec.terminate_activity is not None:
            self._activity(rec.terminate_activity).finish(words.SUCCESSFUL, now)
        elif rec.launch_activity is not None:
            # A launch a hook abandoned: its activity ends Cancelled with the host gone.
            self._activity(rec.launch_activity).finish(words.CANCELLED, now)

    def complete_lifecycle(self, hook: str, instance_id: str, result: str) -> None:
        """complete-lifecycle-action: CONTINUE or ABANDON the wait of `hook` on the instance.
        Raises BadInput (AWS's words) when the instance does not wait on that hook."""
        if result not in (CONTINUE, ABANDON):
            raise BadInput(
                f"Invalid LifecycleActionResult {result!r}: use CONTINUE or ABANDON",
                logical_id=self.model.logical_id,
            )
        rec = self.instances.get(instance_id)
        if rec is None or rec.hook != hook:
            raise BadInput(
                f"No active Lifecycle Action found with instance ID {instance_id}",
                logical_id=self.model.logical_id,
                hint=self._waiting_hint(),
            )
        rec.hook_result = result

    # -- the decisions ------------------------------------------------------------------------

    def step(self, now: float) -> list[Action]:
        """Everything the group does at `now`, in the order the runtime must do it."""
        self._now = now
        actions: list[Action] = []
        first_new = len(self.activities)
        if self.created_at is None:
            self.created_at = now
            if self.desired and self._change_cause is None:
                self._change_cause = words.user_created(now, self.desired)
        self._forget_terminated(now)
        self._advance_pending(now, actions)
        self._retire_expired(now, actions)
        self._reconcile(now, actions)
        self._terminate_replaced(now, actions)
        self._rebalance(now, actions)
        self._advance_terminating(now, actions)
        self._cooldown_progress(now, self.activities[first_new:])
        return actions

    def _advance_pending(self, now: float, actions: list[Action]) -> None:
        for rec in list(self.instances.values()):
            if rec.lifecycle == PENDING and rec.running:
                rec.hooks_left = [h.name for h in self._hooks(LAUNCHING)]
                rec.lifecycle = PENDING_WAIT
                self._next_hook(rec, now, actions)
            elif rec.lifecycle == PENDING_WAIT and rec.hook is not None:
                result = self._hook_outcome(rec, now)
                if result is None:
                    continue
                if result[0] == ABANDON:
                    self._abandon_launch(rec, now, result[1], actions)
                else:
                    self._next_hook(rec, now, actions)

    def _next_hook(self, rec: InstanceRecord, now: float, actions: list[Action]) -> None:
        """Wait on the next hook of the transition, or go on to the next state."""
        rec.hook_result = None
        if rec.hooks_left:
            spec = self._hook(rec.hooks_left.pop(0))
            rec.hook = spec.name
            rec.hook_deadline = now + self.scale.s(spec.heartbeat_timeout_s)
            activity = self._activity(
                rec.terminate_activity
                if rec.lifecycle in TERMINATING_STATES
                else rec.launch_activity
            )
            activity.update(words.MID_LIFECYCLE, 30)
            return
        rec.hook = rec.hook_deadline = None
        if rec.lifecycle in PENDING_STATES:
            rec.lifecycle = PENDING_PROCEED
            self._to_in_service(rec, now, actions)
        else:
            self._proceed_terminating(rec, actions)

    def _hook_outcome(self, rec: InstanceRecord, now: float) -> tuple[str, str] | None:
        """(result, why) once the hook's wait is over, else None."""
        if rec.hook_result is not None:
            return rec.hook_result, f"Lifecycle Action Completed with {rec.hook_result} Result"
        if rec.hook_deadline is not None and now >= rec.hook_deadline:
            assert rec.hook is not None
            return self._hook(rec.hook).default_result, "Heartbeat Timeout"
        return None

    def _to_in_service(self, rec: InstanceRecord, now: float, actions: list[Action]) -> None:
        rec.lifecycle = IN_SERVICE
        rec.in_service_at = now
        if self._attached():
            actions.append(Register(self.model.logical_id, rec.instance_id))
        self._activity(rec.launch_activity).finish(words.SUCCESSFUL, now)

    def _abandon_launch(
        self, rec: InstanceRecord, now: float, why: str, actions: list[Action]
    ) -> None:
        assert rec.hook is not None
        assert rec.launch_activity is not None
        token = words.lifecycle_token(self.lab, rec.instance_id, rec.hook)
        # Cancelled once the host is gone (terminated()), with the hook's words until then.
        self._activity(rec.launch_activity).update(
            words.IN_PROGRESS, 50, words.abandoned(token, why)
        )
        rec.hook = rec.hook_deadline = None
        rec.hooks_left = []
        rec.lifecycle = TERMINATING_PROCEED
        self._launch_failed = True
        actions.append(Terminate(self.model.logical_id, rec.instance_id, rec.launch_activity))

    def _advance_terminating(self, now: float, actions: list[Action]) -> None:
        for rec in list(self.instances.values()):
            if rec.lifecycle == TERMINATING_STATE and rec.drained:
                rec.hooks_left = [h.name for h in self._hooks(TERMINATING)]
                rec.lifecycle = TERMINATING_WAIT
                self._next_hook(rec, now, actions)
            elif rec.lifecycle == TERMINATING_WAIT and rec.hook is not None:
                result = self._hook_outcome(rec, now)
                if result is None:
                    continue
                if result[0] == ABANDON:
                    rec.hooks_left = []  # ABANDON skips the other hooks; it still terminates
                self._next_hook(rec, now, actions)

    def _proceed_terminating(self, rec: InstanceRecord, actions: list[Action]) -> None:
        rec.lifecycle = TERMINATING_PROCEED
        assert rec.terminate_activity is not None
        self._activity(rec.terminate_activity).update(words.IN_PROGRESS, 50)
        actions.append(Terminate(self.model.logical_id, rec.instance_id, rec.terminate_activity))

    def _begin_termination(
        self, rec: InstanceRecord, now: float, cause: str, actions: list[Action]
    ) -> None:
        activity = self._new_activity(words.terminating(rec.instance_id), cause, now)
        activity.instance_id = rec.instance_id
        rec.terminate_activity = activity.activity_id
        rec.lifecycle = TERMINATING_STATE
        rec.hook = rec.hook_deadline = None
        if self._attached() and rec.in_service_at is not None:
            actions.append(Deregister(self.model.logical_id, rec.instance_id))
            rec.draining = True
            activity.update(words.WAITING_FOR_DRAINING, 20)
        else:
            rec.drained = True  # never registered: nothing to drain

    def _terminate_replaced(self, now: float, actions: list[Action]) -> None:
        """Unhealthy instances and rebalancing victims go once their replacements serve (or
        their launch failed). When the group may not launch more (MaxSize and its margin), one
        goes first to make room: terminate before launch, the only way left."""
        doomed = self._doomed()
        failed, self._launch_failed = self._launch_failed, False
        if not doomed:
            return
        counted = self._counted()
        serving = len([r for r in counted if r.lifecycle == IN_SERVICE])
        coming = any(r.lifecycle in PENDING_STATES for r in counted)
        replaced = serving >= self.desired or failed
        blocked = not coming and len(counted) < self.desired
        for rec in doomed:
            # A broken host (EC2) or a launch that never served has nothing to keep serving.
            if replaced or blocked or rec.health_reason == EC2 or rec.lifecycle != IN_SERVICE:
                assert rec.replace_cause is not None
                self._begin_termination(rec, now, rec.replace_cause, actions)
                blocked = False

    def _retire_expired(self, now: float, actions: list[Action]) -> None:
        """MaxInstanceLifetime: an instance in service that long is terminated and replaced,
        one at a time while nothing else is launching or terminating (AWS's default order:
        terminate, then launch)."""
        lifetime = self.model.max_instance_lifetime_s
        if not lifetime:
            return
        live = [r for r in self.instances.values() if r.lifecycle != TERMINATED]
        if any(r.lifecycle != IN_SERVICE or r.replace_cause is not None for r in live):
            return
        expired = [
            r
            for r in self._counted()
            if r.in_service_at is not None
            and not r.protected_from_scale_in
            and now - r.in_service_at >= self.scale.s(lifetime)
        ]
        if expired:
            oldest = builtins.min(expired, key=lambda r: (r.in_service_at, r.instance_id))
            self._begin_termination(oldest, now, words.stopped_for_lifetime(now), actions)

    def _doomed(self) -> list[InstanceRecord]:
        """Instances that still run but are to be replaced."""
        return [
            r
            for r in self.instances.values()
            if r.replace_cause is not None and r.lifecycle in (*PENDING_STATES, IN_SERVICE)
        ]

    def _room(self, have: int) -> int:
        """How many more instances may launch: replacements may take the group above MaxSize
        by 10 % (at least one), as AWS allows while it replaces or rebalances."""
        margin = builtins.max(1, math.ceil(self.max_size * 0.1))
        return builtins.max(0, self.max_size + margin - have - len(self._doomed()))

    def _reconcile(self, now: float, actions: list[Action]) -> None:
        counted = self._counted()
        have = len(counted)
        # The change's words go with the activities it causes; kept while they wait.
        prefix = self._change_cause
        if have == self.desired:
            self._change_cause = None
        elif have < self.desired:
            if now < self._retry_launch_at:
                return
            self._change_cause = None
            for _ in range(builtins.min(self.desired - have, self._room(have))):
                cause = words.joined(prefix, words.started_for_capacity(now, have, self.desired))
                counted.append(self._launch(counted, now, cause, actions))
        elif have > self.desired:
            for _ in range(have - self.desired):
                victim = termination.choose(
                    counted,
                    self.model.termination_policies,
                    self.launch_spec,
                    now,
                    self.scale.s(termination.BILLING_HOUR_S),
                )
                if victim is None:
                    break  # the rest are pending or protected: decided again next step
                self._change_cause = None
                cause = words.joined(prefix, words.stopped_for_capacity(now, have, self.desired))
                self._begin_termination(victim, now, cause, actions)
                counted.remove(victim)

    def _launch(
        self, counted: list[InstanceRecord], now: float, cause: str, actions: list[Action]
    ) -> InstanceRecord:
        self._n += 1
        iid = words.instance_id(self.lab, self.model.logical_id, self._n)
        subnet = self._pick_subnet(counted)
        rec = InstanceRecord(
            instance_id=iid,
            host=f"{self.model.logical_id}-{self._n}",
            az=self._subnet_az[subnet],
            subnet=subnet,
            launch_spec=self.launch_spec.logical_id,
            launch_version=self.launch_spec.version,
            launch_kind=self.launch_spec.kind,
            launched_at=now,
            protected_from_scale_in=self.model.new_instances_protected,
        )
        activity = self._new_activity(words.launching(iid), cause, now)
        activity.instance_id = iid
        activity.update(words.PRE_IN_SERVICE, 20)
        rec.launch_activity = activity.activity_id
        self.instances[iid] = rec
        actions.append(
            Launch(self.model.logical_id, subnet, rec.az, iid, rec.host, activity.activity_id)
        )
        return rec

    def _pick_subnet(self, counted: list[InstanceRecord]) -> str:
        """The subnet of the AZ with the fewest counted instances (ties: template order), and
        within that AZ the subnet with the fewest."""
        per_az = {self._subnet_az[s]: 0 for s in self.model.subnets}
        per_subnet = dict.fromkeys(self.model.subnets, 0)
        for rec in counted:
            per_az[rec.az] = per_az.get(rec.az, 0) + 1
            per_subnet[rec.subnet] = per_subnet.get(rec.subnet, 0) + 1
        order = list(per_az)
        az = min(order, key=lambda a: (per_az[a], order.index(a)))
        subnets = [s for s in self.model.subnets if self._subnet_az[s] == az]
        return min(subnets, key=lambda s: (per_subnet[s], subnets.index(s)))

    def _rebalance(self, now: float, actions: list[Action]) -> None:
        """AZRebalance: one instance of the biggest AZ replaced by one in the smallest, while
        the group is otherwise at rest (AWS launches first, then terminates)."""
        if any(
            r.lifecycle != IN_SERVICE or r.replace_cause is not None
            for r in self.instances.values()
            if r.lifecycle != TERMINATED
        ):
            return
        counted = self._counted()
        if len(counted) != self.desired or not counted:
            return
        per_az = {self._subnet_az[s]: 0 for s in self.model.subnets}
        for rec in counted:
            per_az[rec.az] = per_az.get(rec.az, 0) + 1
        if max(per_az.values()) - min(per_az.values()) <= 1:
            return
        victim = termination.choose(
            counted,
            self.model.termination_policies,
            self.launch_spec,
            now,
            self.scale.s(termination.BILLING_HOUR_S),
        )
        # Protected instances can leave no candidate in the big AZ: moving one from a
        # middle AZ would not balance anything, only churn.
        if victim is None or per_az[victim.az] - min(per_az.values()) <= 1:
            return
        victim.replace_cause = words.stopped_for_rebalance(now)
        counted.remove(victim)
        cause = words.started_for_rebalance(now)
        self._launch(counted, now, cause, actions)

    # -- cooldown and warm-up --------------------------------------------------------------------

    def in_cooldown(self, now: float) -> bool:
        """A cooldown runs: the activities of a change that honours cooldowns are not done, or
        they ended less than its cooldown ago."""
        return (
            self._cooldown_armed is not None
            or self._cooldown_running is not None
            or now < self._cooldown_until
        )

    def _cooldown_progress(self, now: float, started: list[Activity]) -> None:
        """started: the activities this step began (the armed change's, when one is armed)."""
        if self._cooldown_armed is not None:
            self._cooldown_running, self._cooldown_armed = self._cooldown_armed, None
            self._cooldown_activities = [a for a in started if not a.done]
        if self._cooldown_running is None:
            return
        if all(a.done for a in self._cooldown_activities):
            ended = [a.end_time for a in self._cooldown_activities if a.end_time is not None]
            self._cooldown_until = builtins.max(ended, default=now) + self._cooldown_running
            self._cooldown_running = None
            self._cooldown_activities = []

    def capacity_in_warmup(self, now: float, warmup_s: float | None = None) -> int:
        """Counted instances still warming up: Pending ones, and InService ones for less than
        the warm-up (AWS seconds: a policy's EstimatedInstanceWarmup; None: the group's
        DefaultInstanceWarmup, else its Cooldown, AWS's fallback). Policies leave them out of
        the capacity a scale-out starts from, and their metrics out of the group's."""
        return len(self.in_warmup(now, warmup_s))

    def in_warmup(self, now: float, warmup_s: float | None = None) -> list[str]:
        """Ids of the instances capacity_in_warmup counts."""
        if warmup_s is None:
            warmup_s = self.model.default_instance_warmup_s
        if warmup_s is None:
            warmup_s = self.model.cooldown_s
        span = self.scale.s(warmup_s)
        return [
            r.instance_id
            for r in self._counted()
            if r.in_service_at is None or now - r.in_service_at < span
        ]

    def view(self, now: float, warmup_s: float | None = None) -> GroupView:
        """What the group's policies decide from (testbed.autoscaling.policies)."""
        return GroupView(
            name=self.model.logical_id,
            group_name=self.model.name,
            min=self.min_size,
            max=self.max_size,
            desired=self.desired,
            in_service=len(self.in_service()),
            capacity_in_warmup=self.capacity_in_warmup(now, warmup_s),
            instances=tuple(r.instance_id for r in self._counted()),
        )

    # -- views --------------------------------------------------------------------------------

    def instance(self, instance_id: str) -> InstanceRecord | None:
        return self.instances.get(instance_id)

    def azs(self) -> list[str]:
        """The group's Availability Zones (sorted, as describe lists them)."""
        return sorted(set(self._subnet_az.values()))

    def in_service(self) -> list[InstanceRecord]:
        return [r for r in self.instances.values() if r.lifecycle == IN_SERVICE]

    def capacity(self) -> int:
        """What the group counts against its desired capacity."""
        return len(self._counted())

    def counts(self) -> dict[str, int]:
        """The group metrics CloudWatch publishes (AWS/AutoScaling)."""
        live = [r for r in self.instances.values() if r.lifecycle != TERMINATED]
        return {
            "GroupMinSize": self.min_size,
            "GroupMaxSize": self.max_size,
            "GroupDesiredCapacity": self.desired,
            "GroupInServiceInstances": len([r for r in live if r.lifecycle == IN_SERVICE]),
            "GroupPendingInstances": len([r for r in live if r.lifecycle in PENDING_STATES]),
            "GroupStandbyInstances": 0,
            "GroupTerminatingInstances": len(
                [r for r in live if r.lifecycle in TERMINATING_STATES]
            ),
            "GroupTotalInstances": len(live),
        }

    def describe(self) -> dict[str, Any]:
        """The group as describe-auto-scaling-groups prints it (JSON-able), plus the lab's
        LogicalId and each instance's Host and Subnet."""
        return describe_group(self)

    def describe_activities(self) -> list[dict[str, Any]]:
        """describe-scaling-activities: newest first."""
        return [a.describe() for a in reversed(self.activities)]

    # -- helpers ------------------------------------------------------------------------------

    def _counted(self) -> list[InstanceRecord]:
        return [
            r
            for r in self.instances.values()
            if r.lifecycle in (*PENDING_STATES, IN_SERVICE)
            and r.health == HEALTHY
            and r.replace_cause is None
        ]

    def _attached(self) -> bool:
        return bool(self.model.target_groups or self.model.load_balancer_names)

    def _in_grace(self, rec: InstanceRecord, now: float) -> bool:
        if rec.in_service_at is None:
            return True  # not in service yet: the grace period has not even started
        return now - rec.in_service_at < self.scale.s(self.model.health_check_grace_s)

    def _hooks(self, transition: str) -> list[LifecycleHookSpec]:
        return [h for h in self.model.lifecycle_hooks if h.transition == transition]

    def _hook(self, name: str) -> LifecycleHookSpec:
        return next(h for h in self.model.lifecycle_hooks if h.name == name)

    def _waiting_hint(self) -> str:
        waiting = [f"{r.instance_id} ({r.hook})" for r in self.instances.values() if r.hook]
        if not waiting:
            return "no instance of the group waits on a lifecycle hook"
        return "waiting: " + ", ".join(waiting)

    def _record(self, instance_id: str) -> InstanceRecord:
        rec = self.instances.get(instance_id)
        if rec is None:
            raise BadInput(
                f"The instance ID {instance_id} is not part of Auto Scaling group "
                f"{self.model.name}",
                logical_id=self.model.logical_id,
            )
        return rec

    def _new_activity(self, description: str, cause: str, now: float) -> Activity:
        self._activity_n += 1
        activity = Activity(
            activity_id=words.activity_id(self.lab, self.model.logical_id, self._activity_n),
            group_name=self.model.name,
            description=description,
            cause=cause,
            start_time=now,
        )
        self.activities.append(activity)
        self._activities[activity.activity_id] = activity
        return activity

    def _activity(self, activity_id: str | None) -> Activity:
        assert activity_id is not None
        return self._activities[activity_id]

    def _forget_terminated(self, now: float) -> None:
        keep = self.scale.s(TERMINATED_KEPT_S)
        for iid, rec in list(self.instances.items()):
            if rec.terminated_at is not None and now - rec.terminated_at >= keep:
                del self.instances[iid]


def _parallel_azs(model: AutoScalingGroup) -> dict[str, str]:
    if len(model.azs) == len(model.subnets):
        return dict(zip(model.subnets, model.azs))
    if len(model.azs) == 1:
        return dict.fromkeys(model.subnets, model.azs[0])
    # Unknown: each subnet its own zone (the runtime passes subnet_azs when it knows better).
    return {s: s for s in model.subnets}


def _health_cause(reason: str, now: float) -> str:
    if reason == ELB:
        return words.stopped_for_elb_health(now)
    if reason == EC2:
        return words.stopped_for_ec2_health(now)
    return words.stopped_for_user_health(now)
