"""Applying a template update to a running lab, resource by resource, with rollback (issue 14).

The holder decides what an update changes (testbed.plan.changes for load balancers, security
and routes; testbed.plan.update_hosts for hosts) and refuses what a running lab cannot take
before anything changes. This module then does it as CloudFormation does, in two phases:

1. In the change set's order (creation order): each added resource CREATE_IN_PROGRESS →
   CREATE_COMPLETE, each modified one UPDATE_IN_PROGRESS → UPDATE_COMPLETE. Hosts are
   launched then (testbed.lab.instances, the calls Auto Scaling uses) and must answer (their
   role listens) before the update goes on. A replaced instance: AWS creates the new one
   first; the lab names hosts by logical id, so the old one drains (deregistered from every
   target group, its deregistration delay waited) and goes, then its successor comes on the
   same port, address permitting, and is registered where the template says. Then the load
   balancers take their new target groups, rules and attributes (HAProxy reloads keep
   established connections), and the controller the new plan (routes, security groups).
2. UPDATE_COMPLETE_CLEANUP_IN_PROGRESS: removed resources go, newest first; a removed
   instance drains first, as a deregistered target does.

A failure in phase 1 (a host that cannot be launched, a role that exits or never listens, a
load balancer that rejects its new configuration) is the resource's UPDATE_FAILED (or
CREATE_FAILED), then UPDATE_ROLLBACK_IN_PROGRESS: what was launched goes, what was replaced
comes back (its targets registered again), the load balancers and the controller get the old
plan, UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS, UPDATE_ROLLBACK_COMPLETE: the lab is as
before (its hosts, addresses, ports, flows, registered targets). Phase 2 does not fail the
update (AWS: a cleanup failure leaves the stack UPDATE_COMPLETE), it is reported.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from testbed.errors import LabError, TestbedError
from testbed.lab.builder import STACK_TYPE
from testbed.lab.events import EventLog
from testbed.lab.signals import SignalWaiter, init_file, resource_key, signals_dir
from testbed.model.changeset import ADD, MODIFY, REMOVE, ChangeSet, ResourceChange
from testbed.model.types import ResourceSignalPolicy
from testbed.plan.network import HostPlan, NetworkPlan
from testbed.plan.update_hosts import HostDiff
from testbed.waiting import wait_for

# How long an instance's role may take to listen (as a build waits, testbed.lab.builder).
ROLE_READY_TIMEOUT = 30.0
# Beyond a target group's deregistration delay, how long draining may take to be seen.
DRAIN_MARGIN_S = 15.0
REPLACING = "Requested update requires the creation of a new physical resource; hence creating one."


class Launcher(Protocol):
    """What the update needs of testbed.lab.instances.InstanceLauncher."""

    roles: dict[str, Any]

    def launch_many(self, hosts: list[HostPlan]) -> list[Any]: ...

    def terminate_many(self, names: list[str]) -> None: ...

    def role_ready(self, name: str) -> bool: ...

    def adopt(self, hosts: list[HostPlan]) -> None: ...


class Balancers(Protocol):
    """What the update needs of testbed.lb.service.LbService."""

    def update(self, plan: NetworkPlan, reload: list[str]) -> list[str]: ...

    def drain_host(self, host: str) -> float: ...

    def host_states(self, host: str, tg: str | None = None) -> dict[tuple[str, str], str]: ...

    def register_template_targets(self, host: str, plan: NetworkPlan) -> list[str]: ...

    def forget_host(self, host: str, why: str) -> list[str]: ...


@dataclass
class UpdateWork:
    """One update, decided: the running plan, the plan after it, what happens to hosts."""

    old: NetworkPlan  # as the lab runs (Auto Scaling's hosts included)
    new: NetworkPlan  # after the update (Auto Scaling's hosts kept, removed hosts gone)
    hosts: HostDiff
    lb_changes: bool  # load balancers take a new plan (lb_service.update)
    reload: list[str]  # ALBs / CLBs whose HAProxy reloads
    network_changes: bool  # routes or security: the controller takes the new plan
    change_set: ChangeSet | None = None
    qualifier: str = ""  # host name = qualifier + logical id
    # The new template's CreationPolicy ResourceSignal and cfn-init metadata by logical id:
    # an instance the update creates (or replaces) completes once its signals arrive.
    signal_policies: Mapping[str, ResourceSignalPolicy] = field(default_factory=dict)
    cfn_init: Mapping[str, Any] = field(default_factory=dict)


class UpdateFailed(TestbedError):
    """The update failed and was rolled back (or the rollback failed: `rolled_back`)."""

    def __init__(self, message: str, rolled_back: bool) -> None:
        super().__init__(message)
        self.rolled_back = rolled_back


@dataclass
class _Progress:
    """What phase 1 did so far (what a rollback undoes)."""

    launched: list[str] = field(default_factory=list)
    gone: list[HostPlan] = field(default_factory=list)  # replaced hosts already removed
    balancers_updated: bool = False
    published: bool = False


class UpdateEngine:
    """Applies one UpdateWork to a running lab (the holder gives it its parts)."""

    def __init__(
        self,
        lab: str,
        events: EventLog,
        launcher: Callable[[], Launcher],
        balancers: Balancers | None,
        publish: Callable[[NetworkPlan], None],
        get_plan: Callable[[], NetworkPlan],
        stack_key: str = "",
        stage: Callable[[NetworkPlan], None] | None = None,
        stack_name: str | None = None,
        lab_dir: Path | None = None,
    ) -> None:
        self.lab_dir = lab_dir  # where resource signals arrive (None: no signals)
        self.lab, self.events = lab, events
        self.stack_name = stack_name or lab  # the lab's first stack is named after it
        # Makes a plan the lab's without publishing it (the next launch publishes it).
        self.stage = stage
        self.launcher, self.balancers = launcher, balancers
        self.publish, self.get_plan = publish, get_plan
        self.stack_key = stack_key
        self.done: list[str] = []

    def emit(self, lid: str, rtype: str, status: str, reason: str = "") -> None:
        self.events.emit(lid, rtype, status, reason, stack=self.stack_key)

    # ---- phase 1 ------------------------------------------------------------------------------
    def run(self, work: UpdateWork) -> list[str]:
        """Apply `work`; UpdateFailed once rolled back."""
        progress = _Progress()
        current: ResourceChange | None = None
        try:
            pending: list[ResourceChange] = []
            host_names = self._host_changes(work)
            signalled: dict[str, ResourceChange] = {}
            waiter = self._signal_waiter(work, signalled)
            for change in self._ordered(work):
                current = change
                if change.action == REMOVE:
                    continue
                started = "CREATE_IN_PROGRESS" if change.action == ADD else "UPDATE_IN_PROGRESS"
                name = work.qualifier + change.logical_id
                replaced = name in host_names["replaced"]
                self.emit(
                    change.logical_id, change.resource_type, started, REPLACING if replaced else ""
                )
                if name in host_names["added"] or replaced:
                    self._host(work, name, progress)
                    policy = work.signal_policies.get(change.logical_id)
                    if policy is not None and waiter is not None:
                        # Complete once its signals arrive (all awaited together below).
                        waiting = waiter.begin(name, policy)
                        self.emit(change.logical_id, change.resource_type, started, waiting)
                        signalled[name] = change
                        continue
                    self._complete(change)
                else:
                    pending.append(change)
            current = None
            if waiter is not None and signalled:
                waiter.wait()
            self._check_roles_alive(progress.launched)
            # Hosts the change set does not name (the lab's own, e.g. a default client).
            for name in sorted(host_names["added"] | host_names["replaced"]):
                if name not in progress.launched:
                    self._host(work, name, progress)
            if work.lb_changes and self.balancers is not None:
                progress.balancers_updated = True
                self.done += self.balancers.update(self._with_removed(work), work.reload)
            if work.network_changes or work.hosts.changes or work.lb_changes:
                # A load-balancer-only update is the lab's plan too: the next update is
                # compared with it, status and the nodes read it (before, such an update left
                # the old plan running, and an update back to it found "no changes").
                progress.published = True
                self.publish(self._with_removed(work))
            for change in pending:
                self._complete(change)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, TestbedError) else f"{type(exc).__name__}: {exc}"
            if current is not None:
                failed = "CREATE_FAILED" if current.action == ADD else "UPDATE_FAILED"
                self.emit(current.logical_id, current.resource_type, failed, reason)
            self._roll_back(work, progress, reason)
            raise UpdateFailed(f"update of {self.lab} rolled back: {reason}", True) from exc
        self._cleanup(work)
        return self.done

    def _signal_waiter(
        self, work: UpdateWork, signalled: dict[str, ResourceChange]
    ) -> SignalWaiter | None:
        """Resource signals of the hosts this update creates: their cfn-init metadata
        written and their old signals gone before they start (a replaced instance's
        successor counts its own only); None when none of them waits for signals."""
        if self.lab_dir is None:
            return None
        lab_dir = self.lab_dir
        names = {h.name for h in work.hosts.added} | {n.name for _, n in work.hosts.replaced}
        waits = [lid for lid in work.signal_policies if work.qualifier + lid in names]
        for lid, init in work.cfn_init.items():
            if work.qualifier + lid in names:
                path = init_file(lab_dir, work.qualifier + lid)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(init, indent=1))
        if not waits:
            return None
        for lid in waits:
            shutil.rmtree(
                signals_dir(lab_dir) / resource_key(work.qualifier + lid), ignore_errors=True
            )

        def emit(name: str, status: str, reason: str) -> None:
            change = signalled.get(name)
            if change is None:
                return
            if change.action == MODIFY:  # a replacement's signals: the resource's update
                status = status.replace("CREATE_", "UPDATE_")
            self.emit(change.logical_id, change.resource_type, status, reason)

        return SignalWaiter(lab_dir, emit)

    def _ordered(self, work: UpdateWork) -> list[ResourceChange]:
        return list(work.change_set.changes) if work.change_set is not None else []

    @staticmethod
    def _host_changes(work: UpdateWork) -> dict[str, set[str]]:
        return {
            "added": {h.name for h in work.hosts.added},
            "replaced": {new.name for _, new in work.hosts.replaced},
        }

    def _complete(self, change: ResourceChange) -> None:
        done = "CREATE_COMPLETE" if change.action == ADD else "UPDATE_COMPLETE"
        self.emit(change.logical_id, change.resource_type, done)

    def _host(self, work: UpdateWork, name: str, progress: _Progress) -> None:
        """Launch host `name` (added), or drain and remove its predecessor first (replaced)."""
        old = next((o for o, n in work.hosts.replaced if n.name == name), None)
        new = next(
            (h for h in work.hosts.added if h.name == name),
            next((n for _, n in work.hosts.replaced if n.name == name), None),
        )
        if new is None:
            raise LabError(f"update: no plan for host {name}")
        if old is not None:
            self._drain(old.name)
            launcher = self.launcher()
            launcher.adopt([old])
            launcher.terminate_many([old.name])
            progress.gone.append(old)
            self.done.append(f"{old.name}: old instance drained and removed")
        if new.kind == "lb-node" and self.stage is not None:
            # A subnet added to a load balancer: the node's program reads its load balancer
            # from the plan file its launch publishes.
            self.stage(replace(self.get_plan(), load_balancers=work.new.load_balancers))
        self._launch(new, progress.launched)
        if self.balancers is not None:
            keys = self.balancers.register_template_targets(name, work.new)
            if keys:
                self.done.append(f"{name}: registered {', '.join(keys)}")
        what = "node launched" if new.kind == "lb-node" else "replaced" if old else "launched"
        self.done.append(f"{name}: {what}")

    def _launch(self, host: HostPlan, launched: list[str] | None = None) -> None:
        """Launch `host` (noted in `launched` as soon as it exists) and wait until its role
        listens; LabError when the role exits first or never listens."""
        launcher = self.launcher()
        result = launcher.launch_many([host])[0]
        if isinstance(result, Exception):
            raise result
        if launched is not None:
            launched.append(host.name)
        proc = launcher.roles.get(host.name)

        def ready() -> bool:
            if proc is not None and proc.poll() is not None:
                raise LabError(
                    f"role {host.role} of {host.name} exited with code {proc.returncode} "
                    "before it listened (see testbed logs)"
                )
            return launcher.role_ready(host.name)

        wait_for(ready, ROLE_READY_TIMEOUT, f"{host.name}'s role to listen on its ports")

    def _check_roles_alive(self, names: list[str]) -> None:
        """A role that listened and then exited (a port it could not keep) fails its host
        before the load balancers take it, as a role that never listened does."""
        if not names:
            return
        launcher = self.launcher()
        for name in names:
            proc = launcher.roles.get(name)
            if proc is not None and proc.poll() is not None:
                raise LabError(
                    f"the role of {name} exited with code {proc.returncode} after it "
                    "listened (see testbed logs)"
                )

    def _drain(self, name: str) -> None:
        """Deregister `name`'s targets and wait until their delay ended (none: at once)."""
        if self.balancers is None:
            return
        balancers = self.balancers
        delay = balancers.drain_host(name)
        if delay or balancers.host_states(name):
            wait_for(
                lambda: not balancers.host_states(name),
                delay + DRAIN_MARGIN_S,
                f"{name}'s targets to drain (deregistration delay {delay:g} s)",
                interval=0.2,
            )

    @staticmethod
    def _with_removed(work: UpdateWork) -> NetworkPlan:
        """The new plan with the removed hosts still in it (they go in the cleanup)."""
        names = {h.name for h in work.new.hosts}
        keep = tuple(h for h in work.hosts.removed if h.name not in names)
        return replace(work.new, hosts=(*work.new.hosts, *keep))

    # ---- rollback -----------------------------------------------------------------------------
    def _roll_back(self, work: UpdateWork, progress: _Progress, reason: str) -> None:
        self.emit(self.stack_name, STACK_TYPE, "UPDATE_ROLLBACK_IN_PROGRESS", reason)
        try:
            if progress.launched and self.balancers is not None:
                for name in progress.launched:  # registered by this update: undone at once
                    self.balancers.forget_host(name, "the update that registered it rolled back")
            if progress.launched:
                launcher = self.launcher()
                present = [n for n in progress.launched if n in getattr(launcher, "launched", {})]
                if present:
                    launcher.terminate_many(present)
            if progress.balancers_updated and self.balancers is not None:
                self.balancers.update(work.old, work.reload)
            for old in progress.gone:
                self._launch(old)
                if self.balancers is not None:
                    self.balancers.register_template_targets(old.name, work.old)
            self.publish(work.old)
        except Exception as again:
            text = str(again) if isinstance(again, TestbedError) else repr(again)
            self.emit(self.stack_name, STACK_TYPE, "UPDATE_ROLLBACK_FAILED", text)
            raise UpdateFailed(
                f"update of {self.lab} failed ({reason}) and so did its rollback: {text}", False
            ) from again
        self.emit(self.stack_name, STACK_TYPE, "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")
        self.emit(self.stack_name, STACK_TYPE, "UPDATE_ROLLBACK_COMPLETE")

    # ---- phase 2 ------------------------------------------------------------------------------
    def _cleanup(self, work: UpdateWork) -> None:
        removed = [c for c in self._ordered(work) if c.action == REMOVE]
        replaced_lids = [
            c for c in self._ordered(work) if c.action == MODIFY and self._is_replaced(work, c)
        ]
        if not (removed or replaced_lids or work.hosts.removed):
            return
        self.emit(self.stack_name, STACK_TYPE, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
        for change in replaced_lids:
            # The lab removed the old instance before its successor came (same name).
            self.emit(
                change.logical_id,
                change.resource_type,
                "DELETE_COMPLETE",
                "the old instance was drained and removed before its replacement started",
            )
        by_name = {h.name: h for h in work.hosts.removed}
        for change in reversed(removed):
            self.emit(change.logical_id, change.resource_type, "DELETE_IN_PROGRESS")
            name = work.qualifier + change.logical_id
            try:
                if name in by_name:
                    self._remove_host(by_name.pop(name))
                self.emit(change.logical_id, change.resource_type, "DELETE_COMPLETE")
            except Exception as exc:
                self.emit(change.logical_id, change.resource_type, "DELETE_FAILED", repr(exc))
        for host in by_name.values():  # hosts the change set does not name
            try:
                self._remove_host(host)
            except Exception as exc:
                self.done.append(f"{host.name}: could not be removed: {exc!r}")

    def _is_replaced(self, work: UpdateWork, change: ResourceChange) -> bool:
        return any(n.name == work.qualifier + change.logical_id for _, n in work.hosts.replaced)

    def _remove_host(self, host: HostPlan) -> None:
        self._drain(host.name)
        launcher = self.launcher()
        launcher.adopt([host])
        launcher.terminate_many([host.name])
        self.done.append(f"{host.name}: removed")
