"""Auto Scaling running in a lab's holder: a thread that measures, decides and carries out.

Every tick (1 s of AWS's time divided by the time scale, at least every 0.2 s):
  1. sample the lab (testbed.autoscaling.sampling) into the metric store;
  2. evaluate alarms (state changes become events), policies and scheduled actions: each
     may set a group's desired capacity;
  3. tell each group what happened to its instances: role ready (running), EC2 health (host
     and role alive), ELB health (unhealthy in a target group after the grace period),
     draining over (no target left in its groups);
  4. step each group and carry its actions out: Launch (the plan gets the hosts, the
     launcher builds them, one batch per tick), Register / Deregister (the load balancers'
     registry), Terminate (the launcher removes the host exactly).
Scaling activities become stack events as they change. The holder's RPC threads ask through
handle() (asg_describe, asg_activities, asg_set_capacity, asg_complete_lifecycle,
alarms_describe); one lock keeps them and the tick apart. Launching and terminating run
outside the lock, in the tick's thread only, so plans are published one at a time.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from testbed.autoscaling import sampling
from testbed.autoscaling.activities import iso
from testbed.autoscaling.alarms import AlarmState
from testbed.autoscaling.group import (
    EC2,
    ELB,
    HEALTHY,
    IN_SERVICE,
    TERMINATED,
    Deregister,
    GroupRuntime,
    InstanceRecord,
    Launch,
    Register,
    Terminate,
)
from testbed.autoscaling.metricstore import MetricStore
from testbed.autoscaling.policies import PolicyRuntime, largest
from testbed.autoscaling.schedule import ScheduledRuntime
from testbed.autoscaling.timescale import TimeScale
from testbed.autoscaling.wiring import lab_sampler, tg_dimension
from testbed.errors import BadInput, LabError
from testbed.messages import (
    AlarmsReply,
    AsgActivitiesReply,
    AsgDescribeReply,
    AsgGroupReply,
    HolderRequest,
    Reply,
)
from testbed.model.autoscaling_types import AutoScalingGroup
from testbed.model.elbv2_types import elbv2_sections
from testbed.model.types import StackModel
from testbed.plan.instances import launch_host, with_host
from testbed.plan.network import HostPlan, NetworkPlan
from testbed.waiting import wait_for

GROUP_TYPE = "AWS::AutoScaling::AutoScalingGroup"
ALARM_TYPE = "AWS::CloudWatch::Alarm"
SCHEDULE_TYPE = "AWS::AutoScaling::ScheduledAction"
MIN_TICK_S = 0.2
MAX_TICK_S = 1.0
CREATE_TIMEOUT_S = 300.0  # the initial instances' launch + health checks, in the lab's time
KEEP_METRICS_AWS_S = 3 * 3600.0  # the longest look-back an alarm or policy takes
CHANGES = ("asg_set_capacity", "asg_complete_lifecycle")  # ops that wake the tick


class Launcher(Protocol):
    """testbed.lab.instances.InstanceLauncher, as the service uses it."""

    def launch_many(self, hosts: list[HostPlan]) -> list[Any]: ...
    def role_ready(self, name: str) -> bool: ...
    def alive(self, name: str) -> bool: ...
    def terminate(self, name: str) -> None: ...


class Targets(Protocol):
    """testbed.lb.service.LbService, as the service uses it."""

    def register_host(self, tg: str, host: HostPlan) -> list[str]: ...
    def deregister_host(self, tg: str, host: str) -> list[str]: ...
    def host_states(self, host: str, tg: str | None = None) -> dict[tuple[str, str], str]: ...
    def lbs_using(self, tg: str) -> list[str]: ...


Emit = Callable[[str, str, str, str], None]  # (logical id, type, status, reason)


@dataclass
class _Pending:
    """An instance launched whose role is not ready yet."""

    group: str
    host: str


@dataclass
class AutoScalingService:
    lab: str
    model: StackModel
    launcher: Launcher
    targets: Targets | None
    emit: Emit
    get_plan: Callable[[], NetworkPlan]
    sampler: sampling.Sampler | None = None
    clock: Callable[[], float] = time.time
    scale: TimeScale = field(init=False)
    groups: dict[str, GroupRuntime] = field(init=False)
    alarms: dict[str, AlarmState] = field(init=False)
    policies: dict[str, PolicyRuntime] = field(init=False)
    schedules: dict[str, ScheduledRuntime] = field(init=False)

    def __post_init__(self) -> None:
        self.scale = TimeScale(self.model.lab.time_scale)
        self.store = MetricStore()
        self.lock = threading.RLock()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        subnets = self.model.subnets
        self.groups = {
            lid: GroupRuntime(
                g, self.scale, self.lab, {s: subnets[s].az for s in g.subnets if s in subnets}
            )
            for lid, g in self.model.auto_scaling_groups.items()
        }
        self.alarms = {lid: AlarmState(a) for lid, a in self.model.alarms.items()}
        dims = target_group_dimensions(self.model)
        self.policies = {
            lid: PolicyRuntime(p, self.model.auto_scaling_groups[p.group].name, dims)
            for lid, p in self.model.scaling_policies.items()
            if p.emulated and p.group in self.model.auto_scaling_groups
        }
        self.schedules = {
            lid: ScheduledRuntime(s) for lid, s in self.model.scheduled_actions.items()
        }
        self.pending: dict[str, _Pending] = {}  # instance id -> launched, role not ready
        self.draining: dict[str, _Pending] = {}  # instance id -> deregistered, draining
        self.reported: dict[tuple[str, str], str] = {}  # (group, activity id) -> status
        self.last_tick = self.clock()
        self.errors: list[str] = []  # what failed in the tick itself (holder.log)

    # ---- the thread ---------------------------------------------------------------------
    @property
    def tick_s(self) -> float:
        return min(MAX_TICK_S, max(MIN_TICK_S, self.scale.s(1.0) * 5))

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True, name="autoscaling")
        self.thread.start()

    def close(self) -> None:
        """Stop ticking (the teardown removes the instances with the lab)."""
        self.stopping.set()
        self.wake.set()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout=30)

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.tick()
            except Exception as exc:  # one bad tick must not end Auto Scaling
                self._failed_tick(exc)
            self.wake.wait(self.tick_s)
            self.wake.clear()

    def _failed_tick(self, exc: Exception) -> None:
        """Kept (errors) and written once per distinct error to stderr: the holder's log."""
        text = f"{type(exc).__name__}: {exc}"
        if text not in self.errors:
            print(f"autoscaling tick failed: {text}", file=sys.stderr, flush=True)
            traceback.print_exc(file=sys.stderr)
        self.errors.append(text)
        del self.errors[:-20]

    # ---- one tick -----------------------------------------------------------------------
    def tick(self) -> None:
        now = self.clock()
        if self.sampler is not None:
            with self.lock:
                refs = self._sampled_instances(now)
            for dp in self.sampler.sample(now, refs):
                with self.lock:
                    self.store.add(
                        dp.namespace, dp.metric, dict(dp.dimensions), now, dp.value, dp.source
                    )
        with self.lock:
            self._evaluate(now)
            self._feedback(now)
            actions = [a for g in self.groups.values() for a in g.step(now)]
            self._report_activities()
        if actions:
            self._carry_out(actions)
            with self.lock:
                self._report_activities()
        self.store.prune(now - self.scale.s(KEEP_METRICS_AWS_S))
        self.last_tick = now

    def _sampled_instances(self, now: float) -> list[sampling.InstanceRef]:
        refs = []
        for g in self.groups.values():
            # Only a group with DefaultInstanceWarmup keeps warming instances out of its
            # aggregated metrics (AWS's rule); without it every running instance counts.
            warming = set(g.in_warmup(now)) if g.model.default_instance_warmup_s else set()
            refs += [
                sampling.InstanceRef(r.host, r.instance_id, g.model.name, r.instance_id in warming)
                for r in _records(g)
                if r.running and r.lifecycle != TERMINATED
            ]
        return refs

    def _evaluate(self, now: float) -> None:
        """Alarms, then the policies that read them, then scheduled actions."""
        for lid, alarm in self.alarms.items():
            self._evaluate_alarm(lid, alarm, now)
        for policy in self.policies.values():
            for alarm in policy.alarms():
                self._evaluate_alarm(alarm.name, alarm, now)
        changes = []
        for policy in self.policies.values():
            # Each policy sees its group with its own EstimatedInstanceWarmup.
            view = self.groups[policy.model.group].view(
                now, policy.model.estimated_instance_warmup_s
            )
            change = policy.decide(view, self.store, self.alarms, now, self.scale)
            if change is not None:
                changes.append(change)
        # Several policies acting on one group at once: AWS runs the largest capacity.
        for change in largest(changes):
            try:
                self.groups[change.group].set_capacity(
                    desired=change.desired,
                    cause=change.cause,
                    now=now,
                    honour_cooldown=change.honour_cooldown,
                    cooldown_s=change.cooldown_s,
                )
            except BadInput:
                continue  # outside min/max as the group is now: the policy clamps next time
        for lid, schedule in self.schedules.items():
            if not schedule.due(self.last_tick, now):
                continue
            action = schedule.model
            target = self.groups.get(action.group)
            if target is None:
                continue
            try:
                target.set_capacity(
                    desired=action.desired,
                    min=action.min_size,
                    max=action.max_size,
                    cause=scheduled_cause(now, lid),
                    now=now,
                )
                text = "ran: " + describe_bounds(action.min_size, action.max_size, action.desired)
            except BadInput as exc:
                text = f"failed: {exc}"
            self.emit(lid, SCHEDULE_TYPE, "SCHEDULED_ACTION", text)

    def _evaluate_alarm(self, name: str, alarm: AlarmState, now: float) -> None:
        """Evaluate one alarm; a change of state is an event (actions run in the policies)."""
        old = alarm.state
        new = alarm.evaluate(self.store, now, self.scale)
        if new is not None:
            self.emit(name, ALARM_TYPE, "ALARM_STATE", f"{old} -> {new}: {alarm.reason}")

    def _feedback(self, now: float) -> None:
        """What the group learns about its instances since the last tick."""
        for iid, p in list(self.pending.items()):
            if self.launcher.role_ready(p.host):
                del self.pending[iid]
                self.groups[p.group].running(iid)
        for iid, p in list(self.draining.items()):
            if self.targets is None or not self.targets.host_states(p.host):
                del self.draining[iid]
                self.groups[p.group].drained(iid)
        for g in self.groups.values():
            for r in _records(g):
                if r.lifecycle != IN_SERVICE or r.health != HEALTHY:
                    continue
                problem = self._health_problem(g.model, r)
                if problem:
                    # The group holds ELB verdicts back during the grace period (EC2 not).
                    g.health(r.instance_id, False, problem)

    def _health_problem(self, group: AutoScalingGroup, r: InstanceRecord) -> str | None:
        """EC2 (the host or its role process is gone), ELB (HealthCheckType ELB and the
        instance unhealthy in one of the group's target groups), else None."""
        if not self.launcher.alive(r.host):
            return EC2
        if group.health_check_type != "ELB" or self.targets is None:
            return None
        for tg in group.attached_target_groups:
            if "unhealthy" in self.targets.host_states(r.host, tg).values():
                return ELB
        return None

    # ---- carrying actions out (outside the lock) ---------------------------------------
    def _carry_out(self, actions: list[Any]) -> None:
        launches = [a for a in actions if isinstance(a, Launch)]
        if launches:
            self._launch(launches)
        for a in actions:
            if isinstance(a, Register):
                self._register(a)
            elif isinstance(a, Deregister):
                self._deregister(a)
            elif isinstance(a, Terminate):
                self._terminate(a)

    def _launch(self, launches: list[Launch]) -> None:
        """One plan for the whole batch (addresses, ports), then the launcher builds them."""
        plan = self.get_plan()
        hosts: list[HostPlan] = []
        batch: list[Launch] = []
        for a in launches:
            try:
                host = launch_host(plan, self.model, a.group, a.subnet, a.host, a.instance_id)
            except LabError as exc:
                with self.lock:
                    self.groups[a.group].launched(a.instance_id, False, str(exc))
                continue
            plan = with_host(plan, host)
            hosts.append(host)
            batch.append(a)
        if not hosts:
            return
        try:
            results: list[Any] = self.launcher.launch_many(hosts)
        except LabError as exc:
            results = [exc] * len(hosts)
        with self.lock:
            for a, result in zip(batch, results, strict=True):
                if isinstance(result, Exception):
                    self.groups[a.group].launched(a.instance_id, False, str(result))
                else:
                    self.groups[a.group].launched(a.instance_id, True)
                    self.pending[a.instance_id] = _Pending(a.group, a.host)

    def _host_of(self, group: str, instance_id: str) -> str:
        record = self.groups[group].instance(instance_id)
        if record is None:
            raise LabError(f"group {group} has no instance {instance_id}")
        return record.host

    def _register(self, a: Register) -> None:
        group = self.groups[a.group]
        name = self._host_of(a.group, a.instance_id)
        if self.targets is None:
            return
        host = next((h for h in self.get_plan().hosts if h.name == name), None)
        if host is None:
            return
        for tg in group.model.attached_target_groups:
            if self.targets.lbs_using(tg):
                self.targets.register_host(tg, host)

    def _deregister(self, a: Deregister) -> None:
        group = self.groups[a.group]
        name = self._host_of(a.group, a.instance_id)
        if self.targets is not None:
            for tg in group.model.attached_target_groups:
                if self.targets.lbs_using(tg):
                    self.targets.deregister_host(tg, name)
        with self.lock:
            # Drained once the registry lists none of its targets (the next ticks check).
            self.draining[a.instance_id] = _Pending(a.group, name)

    def _terminate(self, a: Terminate) -> None:
        name = self._host_of(a.group, a.instance_id)
        with self.lock:
            self.pending.pop(a.instance_id, None)
        try:
            self.launcher.terminate(name)
        except LabError as exc:
            self.errors.append(f"terminate {name}: {exc}")
        with self.lock:
            self.groups[a.group].terminated(a.instance_id)
        if self.sampler is not None:
            self.sampler.forget(name)

    def _report_activities(self) -> None:
        """Each activity's new status as an event of its group."""
        for lid, g in self.groups.items():
            for act in reversed(g.activities):  # oldest first
                key = (lid, act.activity_id)
                if self.reported.get(key) == act.status_code:
                    continue
                self.reported[key] = act.status_code
                text = f"{act.description}: {act.status_code}"
                if act.status_message:
                    text += f" ({act.status_message})"
                self.emit(lid, GROUP_TYPE, "SCALING_ACTIVITY", text)

    # ---- creation -----------------------------------------------------------------------
    def wait_created(self, lids: list[str], timeout: float | None = None) -> None:
        """Wait until each group in `lids` has its desired instances InService, then its
        CREATE_COMPLETE; CREATE_FAILED and LabError when one cannot launch them."""
        timeout = timeout or CREATE_TIMEOUT_S
        for lid in lids:
            group = self.groups[lid]

            def done(lid: str = lid, group: GroupRuntime = group) -> bool:
                with self.lock:
                    failed = [a for a in group.activities if a.status_code == "Failed"]
                    if failed:
                        reason = failed[0].status_message or failed[0].description
                        self.emit(lid, GROUP_TYPE, "CREATE_FAILED", reason)
                        raise LabError(f"Auto Scaling group {lid}: {reason}")
                    return len(group.in_service()) >= group.desired

            try:
                wait_for(done, timeout, f"group {lid} to have its instances InService")
            except LabError:
                raise
            except Exception as exc:
                self.emit(lid, GROUP_TYPE, "CREATE_FAILED", str(exc))
                raise LabError(f"Auto Scaling group {lid}: {exc}") from exc
            with self.lock:
                self.emit(lid, GROUP_TYPE, "CREATE_COMPLETE", in_service_text(group))

    # ---- requests from the holder's socket ------------------------------------------------
    def handle(self, request: dict[str, Any]) -> Reply:
        req = cast(HolderRequest, request)
        try:
            with self.lock:
                return self._answer(req)
        except BadInput as exc:
            return Reply(ok=False, error=exc.format(), bad_input=True)
        finally:
            if request.get("op") in CHANGES:
                self.wake.set()  # a change is carried out at once, not at the next tick

    def _answer(self, req: HolderRequest) -> Reply:
        # The request's fields as JSON gave them (testbed.messages names them per op).
        r = cast(dict[str, Any], req)
        op = r["op"]
        if op == "asg_describe":
            groups = [self.find(r["group"])] if r.get("group") else list(self.groups.values())
            return AsgDescribeReply(
                ok=True, groups=[self._describe(g) for g in groups], time_scale=self.scale.factor
            )
        if op == "asg_activities":
            acts = self.find(r["group"]).describe_activities()
            limit = r.get("limit")
            return AsgActivitiesReply(ok=True, activities=acts[: int(limit)] if limit else acts)
        if op == "asg_set_capacity":
            group = self.find(r["group"])
            if r.get("desired") is None and r.get("min") is None and r.get("max") is None:
                raise BadInput("nothing to change: give --desired, --min or --max")
            changed = group.set_capacity(
                desired=r.get("desired"),
                min=r.get("min"),
                max=r.get("max"),
                now=self.clock(),
                honour_cooldown=bool(r.get("honour_cooldown")),
            )
            if not changed:
                raise BadInput(
                    f"Scaling activity in progress or cooldown of group {group.model.name} "
                    "has not ended: the change was not made (--honor-cooldown)"
                )
            return AsgGroupReply(ok=True, group=self._describe(group))
        if op == "asg_complete_lifecycle":
            group = self.find(r["group"])
            iid = self._instance_id(group, r["instance"])
            group.complete_lifecycle(r["hook"], iid, r.get("result") or "CONTINUE")
            return Reply(ok=True)
        if op == "alarms_describe":
            return AlarmsReply(ok=True, alarms=self.describe_alarms())
        return Reply(ok=False, error=f"unknown request {op!r}")

    def find(self, name: str) -> GroupRuntime:
        """A group by logical id or AutoScalingGroupName (BadInput naming the known ones)."""
        for lid, g in self.groups.items():
            if name in (lid, g.model.name):
                return g
        known = ", ".join(f"{lid} ({g.model.name})" for lid, g in self.groups.items())
        raise BadInput(f"no Auto Scaling group {name!r} in lab {self.lab}", hint=f"groups: {known}")

    def _instance_id(self, group: GroupRuntime, text: str) -> str:
        for r in _records(group):
            if text in (r.instance_id, r.host):
                return r.instance_id
        known = ", ".join(f"{r.instance_id} ({r.host})" for r in _records(group))
        raise BadInput(
            f"no instance {text!r} in group {group.model.logical_id}",
            hint=f"instances: {known or 'none'}",
        )

    def _describe(self, group: GroupRuntime) -> dict[str, Any]:
        out = dict(group.describe())
        out["TimeScale"] = self.scale.factor
        return out

    def describe_alarms(self) -> list[dict[str, Any]]:
        """The template's alarms, then target tracking's (as describe-alarms lists them)."""
        rows = [a.describe() for a in self.alarms.values()]
        for policy in self.policies.values():
            rows += [a.describe() for a in policy.alarms()]
        return rows

    def snapshot(self) -> dict[str, Any]:
        """Groups and alarms at once (status, metrics)."""
        with self.lock:
            return {
                "groups": [self._describe(g) for g in self.groups.values()],
                "alarms": self.describe_alarms(),
            }


def target_group_dimensions(model: StackModel) -> dict[str, str]:
    """{target group logical id: its CloudWatch TargetGroup dimension}."""
    tgs = elbv2_sections(model)["target_groups"]
    return {lid: tg_dimension(tg.arn) for lid, tg in tgs.items()}


def in_service_text(group: GroupRuntime) -> str:
    """The group's CREATE_COMPLETE reason: "2 instances InService in us-east-1a, ..."."""
    rows = group.in_service()
    azs = sorted({r.az for r in rows})
    noun = "instance" if len(rows) == 1 else "instances"
    return f"{len(rows)} {noun} InService" + (f" in {', '.join(azs)}" if azs else "")


def scheduled_cause(now: float, lid: str) -> str:
    return f"At {iso(now)} a scheduled action update of AutoScalingGroup constraints ({lid})"


def describe_bounds(min_size: int | None, max_size: int | None, desired: int | None) -> str:
    parts = [
        f"{k} {v}"
        for k, v in (("min", min_size), ("max", max_size), ("desired", desired))
        if v is not None
    ]
    return ", ".join(parts) or "nothing to change"


def autoscaling_service(
    lab: str,
    lab_dir: Path,
    model: StackModel,
    launcher: Launcher,
    targets: Targets | None,
    events: Any,
    get_plan: Callable[[], NetworkPlan],
) -> AutoScalingService:
    """The service wired to the lab's real readers (cgroups, controller, HAProxy)."""
    return AutoScalingService(
        lab,
        model,
        launcher,
        targets,
        events.emit,
        get_plan,
        sampler=lab_sampler(lab, lab_dir, model, get_plan, targets),
    )


def _records(group: GroupRuntime) -> list[InstanceRecord]:
    """The group's instances (Terminated ones for a while), in launch order."""
    return list(group.instances.values())
