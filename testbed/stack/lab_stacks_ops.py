"""The holder's ops on a lab's stacks (issue 14, docs/design/stacks.md §3.2, §3.3):
create_stack adds a stack to the running lab, delete_stack removes one.

A new stack's model sees the rest of the lab (LabStacks.view: imports, foreign ids), its
plan is merged into the lab's (testbed.plan.merge.add_stack) and its hosts are launched
with the calls Auto Scaling uses (InstanceLauncher: one plan publication, prepare, one OVS
transaction, services, role, UserData). A failure rolls the stack back: its hosts go, the
plan is the lab's again, the stack stays listed as ROLLBACK_COMPLETE, as on AWS. The other
stacks are not touched.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any, Protocol

from testbed.errors import BadInput, LabError, TestbedError
from testbed.lab.builder import STACK_TYPE
from testbed.lab.events import Event, EventLog
from testbed.model import StackModel, load_model
from testbed.plan import merge
from testbed.plan.network import HostPlan, LinkPlan, NetworkPlan, SwitchPlan
from testbed.plan.placement import FRONT_END, Placement, place_launched
from testbed.stack import live_switches
from testbed.stack.stack_signals import StackSignals
from testbed.stack.stacks import LabStacks, StackRecord, qualifier_of
from testbed.waiting import wait_for

# How long a new instance's role may take to listen on its ports (as LabBuilder waits).
ROLE_READY_TIMEOUT = 20.0

# Resource types whose live addition a running lab does not take yet.
NOT_YET_SECTIONS = {
    "auto_scaling_groups": "Auto Scaling groups",
    "alarms": "CloudWatch alarms",
}


class HostLauncher(Protocol):
    """What create/delete need of testbed.lab.instances.InstanceLauncher."""

    def launch_many(self, hosts: list[HostPlan]) -> list[Any]: ...

    def terminate_many(self, names: list[str]) -> None: ...

    def role_ready(self, name: str) -> bool: ...


class StackOps:
    """create_stack / delete_stack of one lab; the holder gives it its plan and launcher."""

    def __init__(
        self,
        lab: str,
        region: str,
        stacks: LabStacks,
        events: EventLog,
        get_plan: Callable[[], NetworkPlan],
        publish: Callable[[NetworkPlan], None],
        launcher: Callable[[], HostLauncher],
        save: Callable[[], None],
        has_lb_service: bool = False,
        add_switches: Callable[[list[tuple[SwitchPlan, LinkPlan]]], None] | None = None,
        placement: Callable[[], Placement | None] | None = None,
    ) -> None:
        self.lab, self.region, self.stacks, self.events = lab, region, stacks, events
        self.get_plan, self.publish, self.launcher, self.save = get_plan, publish, launcher, save
        self.has_lb_service = has_lb_service
        # Makes new bridges in the running lab and waits until they are programmed
        # (testbed.stack.live_switches); None: a stack that needs one is refused "not yet".
        self.add_switches = add_switches
        # A lab across servers (issue 18): where its nodes run (None: this machine only).
        self.placement = placement

    # ---- create -----------------------------------------------------------------------------
    def create(self, name: str, template: str, params: dict[str, str]) -> StackRecord:
        """Add stack `name`; BadInput (nothing changed) for bad input, LabError once rolled
        back (the stack then stays listed, ROLLBACK_COMPLETE)."""
        if name in self.stacks:
            raise BadInput(f"Stack [{name}] already exists")
        qualifier = qualifier_of(name, first=not len(self.stacks))
        plan = self.get_plan()
        vpc_spaces = {v.name: v.space for v in plan.vpcs}
        model = load_model(
            template,
            params,
            stack_name=name,
            region=self.region,
            qualifier=qualifier,
            lab=self.stacks.view(vpc_spaces=vpc_spaces),
        )
        self.refuse_not_yet(model, name)
        merged = merge.add_stack(plan, model, self.lab, plan.zone_base, qualifier)
        bridges = live_switches.new_switches(plan, merged)
        if bridges and self.add_switches is None:
            raise BadInput(
                f"not yet: stack {name} needs a new bridge "
                f"({', '.join(sw.name for sw, _ in bridges)}); a stack added to this lab must "
                "use the AZs and internet segment the lab already has (issue 14)",
                hint=f"testbed status {self.lab} lists the lab's switches and their AZs",
            )
        changed = [
            h.name
            for h in plan.hosts
            if any(n.name == h.name and n != h for n in merged.hosts) and h.kind not in ("dns",)
        ]
        if changed:
            raise LabError(f"adding stack {name} would change running hosts: {changed}")
        old_names = {h.name for h in plan.hosts}
        new_hosts = [h for h in merged.hosts if h.name not in old_names]
        placed = self.placement() if self.placement is not None else None
        if placed is not None:
            refuse_across_servers(placed, name, bridges, new_hosts)
        now = time.time()
        rec = StackRecord(
            name=name,
            qualifier=qualifier,
            template=template,
            params=dict(params),
            model=model,
            status="CREATE_IN_PROGRESS",
            created=now,
            template_text=_text(template),
            hosts=tuple(h.name for h in new_hosts),
        )
        self.stacks.add(rec)
        key = rec.event_key
        self.events.emit(name, STACK_TYPE, "CREATE_IN_PROGRESS", "User Initiated", stack=key)
        self.save()
        launched: list[str] = []
        signals = self._signals(rec)
        current: tuple[str, str] | None = None  # the resource being created
        begun: list[tuple[str, str]] = []  # every resource whose creation began
        try:
            signals.prepare()
            # Everything but the new hosts first (VPCs, subnets, groups, routes, resolver
            # addresses); then the launcher publishes the hosts with their ports' flows.
            base = replace(merged, hosts=tuple(h for h in merged.hosts if h.name in old_names))
            self.publish(base)
            if bridges and self.add_switches is not None:
                self.add_switches(bridges)  # known to the controller: published above
            launcher = self.launcher()
            # The resolver of a new address space (the lab's, LabDNS-1, ...: a VPC that
            # overlaps the lab's has its base + 2 there), before the hosts that use it.
            resolvers = [h for h in new_hosts if h.kind == "dns"]
            for h, result in zip(resolvers, launcher.launch_many(resolvers), strict=True):
                if isinstance(result, Exception):
                    raise result
                launched.append(h.name)
            waiter = signals.waiter(
                lambda lid, status, reason: self.events.emit(
                    lid, model.resource_types.get(lid, ""), status, reason, stack=key
                )
            )
            by_name = {h.name: h for h in new_hosts}
            for lid in model.creation_order:
                if lid in model.foreign:
                    continue
                rtype = model.resource_types.get(lid, "")
                self.events.emit(lid, rtype, "CREATE_IN_PROGRESS", stack=key)
                current = (lid, rtype)
                begun.append(current)
                host = by_name.get(qualifier + lid)
                if host is not None:
                    result = launcher.launch_many([host])[0]
                    if isinstance(result, Exception):
                        raise result
                    launched.append(host.name)
                    # Complete when its role answers, as the lab's first stack's instances.
                    wait_for(
                        functools.partial(launcher.role_ready, host.name),
                        ROLE_READY_TIMEOUT,
                        f"{host.name}'s role to listen on its ports",
                    )
                current = None
                policy = model.signal_policies.get(lid)
                if policy is not None:  # complete once its signals arrive (waiter below)
                    waiting = waiter.begin(qualifier + lid, policy)
                    self.events.emit(lid, rtype, "CREATE_IN_PROGRESS", waiting, stack=key)
                    continue
                self.events.emit(lid, rtype, "CREATE_COMPLETE", stack=key)
            waiter.wait()  # CREATE_COMPLETE or CREATE_FAILED of each that waits
        except (Exception, KeyboardInterrupt) as exc:
            reason = str(exc) if isinstance(exc, TestbedError) else f"{type(exc).__name__}: {exc}"
            if current is not None:
                self.events.emit(*current, "CREATE_FAILED", reason, stack=key)
            signals.remove()
            self._roll_back(rec, plan, launched, reason, begun)
            raise LabError(f"stack {name} was rolled back: {reason}") from exc
        rec.status = "CREATE_COMPLETE"
        rec.outputs = dict(model.outputs)
        self.events.emit(name, STACK_TYPE, "CREATE_COMPLETE", stack=key)
        self.save()
        return rec

    def _signals(self, rec: StackRecord) -> StackSignals:
        # The lab's folder is where its events are (EventLog(lab_dir)).
        return StackSignals(self.events.path.parent, rec.name, rec.qualifier, rec.model)

    def refuse_not_yet(self, model: StackModel, name: str) -> None:
        what = [text for section, text in NOT_YET_SECTIONS.items() if getattr(model, section)]
        if any(t.startswith("AWS::ElasticLoadBalancing") for t in model.resource_types.values()):
            what.append("load balancers")
        if what:
            raise BadInput(
                f"not yet: stack {name} has {', '.join(what)}, which a stack added to a "
                "running lab cannot have yet (issue 14)",
                hint="put them in the lab's first stack (testbed up T)",
            )

    def _roll_back(
        self,
        rec: StackRecord,
        plan: NetworkPlan,
        launched: list[str],
        reason: str,
        begun: list[tuple[str, str]],
    ) -> None:
        """Remove what the create made. As AWS reports a rollback: each resource whose
        creation began (the failed one too) gets DELETE_IN_PROGRESS, newest first; they go
        together (hosts terminated, the lab's plan published again), then each gets
        DELETE_COMPLETE in the same order."""
        key = rec.event_key
        self.events.emit(rec.name, STACK_TYPE, "ROLLBACK_IN_PROGRESS", reason, stack=key)
        rec.status, rec.reason = "ROLLBACK_IN_PROGRESS", reason
        self.save()
        for lid, rtype in reversed(begun):
            self.events.emit(lid, rtype, "DELETE_IN_PROGRESS", stack=key)
        try:
            if launched:
                self.launcher().terminate_many(launched)
            self.publish(plan)
            rec.status = "ROLLBACK_COMPLETE"
        except Exception as exc:
            rec.status, rec.reason = "ROLLBACK_FAILED", f"{type(exc).__name__}: {exc}"
        done = "DELETE_COMPLETE" if rec.status == "ROLLBACK_COMPLETE" else "DELETE_FAILED"
        for lid, rtype in reversed(begun):
            self.events.emit(lid, rtype, done, stack=key)
        self.events.emit(rec.name, STACK_TYPE, rec.status, stack=key)
        self.save()

    # ---- delete -----------------------------------------------------------------------------
    def delete(self, name: str, reason: str = "User Initiated") -> None:
        """Delete stack `name`: its resources in reverse creation order; BadInput with AWS's
        text while another stack imports one of its exports (its status stays)."""
        rec = self.stacks.get(name)
        key = rec.event_key
        refusal = self.stacks.delete_refusal(name)
        if refusal is not None:
            self.events.emit(name, STACK_TYPE, rec.status, refusal, stack=key)
            raise BadInput(refusal)
        if not rec.qualifier:
            # Its hosts are the builder's (not the launcher's), and the lab's core, internet
            # and resolver are built with it. Deleting it as the lab's last stack is the
            # lab's down (the holder does that, not this).
            others = [r.name for r in self.stacks if r is not rec]
            raise BadInput(
                f"not yet: stack {name} is the lab's first stack; it can be deleted once it is "
                f"the lab's last (other stacks: {', '.join(others)}) (issue 14)",
                hint=f"delete the other stacks first (testbed down {self.lab} --stack S), or "
                f"the whole lab (testbed down {self.lab})",
            )
        # A stack that rolled back has no resources left (AWS then reports only the stack's
        # own DELETE events).
        rolled_back = rec.status == "ROLLBACK_COMPLETE"
        self.events.emit(name, STACK_TYPE, "DELETE_IN_PROGRESS", reason, stack=key)
        rec.status = "DELETE_IN_PROGRESS"
        self.save()
        model = rec.model
        hosts = set() if rolled_back else set(rec.hosts)
        launcher = self.launcher() if hosts else None
        for lid in reversed(model.creation_order):
            if lid in model.foreign or rolled_back:
                continue
            rtype = model.resource_types.get(lid, "")
            self.events.emit(lid, rtype, "DELETE_IN_PROGRESS", stack=key)
            host = rec.qualifier + lid
            if launcher is not None and host in hosts:
                launcher.terminate_many([host])
            self.events.emit(lid, rtype, "DELETE_COMPLETE", stack=key)
        # A resolver of an address space no VPC is in any more goes (one the lab launched).
        kept = {h.name for h in merge.remove_stack(self.get_plan(), rec.qualifier).hosts}
        names: list[str] = getattr(self.launcher() if hosts else None, "names", list)()
        stale = [
            h.name
            for h in self.get_plan().hosts
            if h.kind == "dns" and h.name not in kept and h.name in names
        ]
        if stale:
            self.launcher().terminate_many(stale)
        self.publish(merge.remove_stack(self.get_plan(), rec.qualifier))
        self._signals(rec).remove()
        rec.status = "DELETE_COMPLETE"
        self.events.emit(name, STACK_TYPE, "DELETE_COMPLETE", stack=key)
        self.stacks.remove(name)
        self.save()


def live_resources(events: Iterable[Event], key: str) -> list[tuple[str, str]]:
    """(logical id, type) of the resources stack `key` has, in the order they were created,
    read from its events: each resource whose last CREATE_COMPLETE is not followed by its
    DELETE_COMPLETE (an update may delete one, or create it again). What `down` reports
    deleting, in reverse, for the lab's first stack: the builder's creation order (its
    controller included, which is one of the lab's resources) is what its events say."""
    created: dict[str, str] = {}
    for ev in events:
        if ev.stack != key or ev.resource_type == STACK_TYPE:
            continue
        if ev.status == "CREATE_COMPLETE":
            created.pop(ev.logical_id, None)  # created again: it goes at its new place
            created[ev.logical_id] = ev.resource_type
        elif ev.status == "DELETE_COMPLETE":
            created.pop(ev.logical_id, None)
    return list(created.items())


def _text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None


def refuse_across_servers(
    placed: Placement,
    name: str,
    bridges: list[tuple[SwitchPlan, LinkPlan]],
    hosts: list[HostPlan],
) -> None:
    """A stack added to a lab across servers: its hosts go on the servers of their AZs
    (testbed.lab.instances places them). BadInput, before anything is made, when it needs a
    bridge the lab does not have (a new AZ has no server: `up --into` takes none), or a host
    cannot be placed."""
    if bridges:
        azs = sorted({sw.az for sw, _ in bridges if sw.az})
        given = ",".join(f"{az}={s}" for az, s in sorted(placed.servers.items()) if az != FRONT_END)
        lab_azs = ", ".join(az for az in sorted(placed.servers) if az != FRONT_END)
        what = f"availability zone {', '.join(azs)}" if azs else "a new network segment"
        raise BadInput(
            f"not yet: stack {name} needs new bridge(s) "
            f"{', '.join(sw.name for sw, _ in bridges)} ({what}) in lab {placed.lab}, which "
            f"runs across servers ({given}): a bridge added while the lab runs has no server",
            hint=f"put the stack's subnets in the lab's AZs ({lab_azs}); or make the lab again "
            f"with a server for each AZ: testbed up TEMPLATE --servers {given}"
            + "".join(f",{az}=HOST" for az in azs),
        )
    place_launched(placed, hosts)
