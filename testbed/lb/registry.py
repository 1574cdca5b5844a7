"""Target registration and health states of every target group, as pure logic.

States and transitions follow AWS:
  initial  --healthy_threshold consecutive passes-->  healthy
  initial / healthy  --unhealthy_threshold consecutive failures-->  unhealthy
  unhealthy  --healthy_threshold consecutive passes-->  healthy
  any registered  --deregister-->  draining  --deregistration delay-->  (removed)
  a target in an AZ where the load balancer has no node: unused (Target.NotInUse)
Every change is a TargetEvent (time, lb, tg, target, old -> new, reason). The holder feeds
check results and the clock in; the controller gets `snapshot()`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from testbed.errors import BadInput
from testbed.messages import (
    HealthCheckSpec,
    RuntimeTargetInfo,
    TargetDescription,
    TargetSnapshot,
    TargetState,
)
from testbed.messages import (
    TargetHealth as TargetHealthField,
)
from testbed.model.resources.elbv2.lambda_group import LAMBDA_GROUP_HEADER
from testbed.plan.balancers import LoadBalancerPlan, TargetGroupPlan, TargetPlan

INITIAL: TargetState = "initial"
HEALTHY: TargetState = "healthy"
UNHEALTHY: TargetState = "unhealthy"
DRAINING: TargetState = "draining"
UNUSED: TargetState = "unused"

REASONS = {
    INITIAL: ("Elb.InitialHealthChecking", "Initial health checks in progress"),
    UNUSED: (
        "Target.NotInUse",
        "Target is in an Availability Zone that is not enabled for the load balancer",
    ),
    DRAINING: ("Target.DeregistrationInProgress", "Target deregistration is in progress"),
}


@dataclass
class TargetHealth:
    target: TargetPlan
    state: TargetState
    reason: str = ""
    description: str = ""
    passes: int = 0
    failures: int = 0
    since: float = 0.0
    drain_until: float | None = None
    last_detail: str = ""


@dataclass(frozen=True)
class TargetEvent:
    time: float
    load_balancer: str
    target_group: str
    target: str
    old: str
    new: str
    reason: str


@dataclass
class _Group:
    lb: LoadBalancerPlan
    tg: TargetGroupPlan
    targets: dict[str, TargetHealth] = field(default_factory=dict)


class TargetRegistry:
    """Targets and their states for every (load balancer, target group) pair."""

    def __init__(
        self,
        lbs: list[LoadBalancerPlan],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.groups: dict[tuple[str, str], _Group] = {}
        self.events: list[TargetEvent] = []
        for lb in lbs:
            for tg in lb.target_groups:
                group = _Group(lb, tg)
                self.groups[(lb.name, tg.name)] = group
                for t in tg.targets:
                    self._add(group, t, "registered with the stack")

    def set_plans(self, lbs: list[LoadBalancerPlan]) -> list[str]:
        """New plans after a template update: groups keep their targets and states and take
        the new settings (health check, attributes, delay); a group the load balancer now
        uses starts with its template targets; a group it no longer uses is dropped (its
        targets leave at once, as they get no more traffic). Returns what changed."""
        done = []
        wanted = {(lb.name, tg.name): (lb, tg) for lb in lbs for tg in lb.target_groups}
        for key, (lb, tg) in wanted.items():
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = _Group(lb, tg)
                for t in tg.targets:
                    self._add(group, t, "registered with the stack (update)")
                done.append(f"{tg.name}: now used by {lb.name}")
            else:
                zones_before = {n.az for n in group.lb.nodes}
                group.lb, group.tg = lb, tg
                if {n.az for n in lb.nodes} != zones_before:
                    done += self._rezone(group)
        for key in [k for k in self.groups if k not in wanted]:
            group = self.groups.pop(key)
            for target_key, health in group.targets.items():
                self._event(
                    group,
                    target_key,
                    health.state,
                    "",
                    "target group no longer used by the load balancer",
                )
            done.append(f"{key[1]}: no longer used by {key[0]}")
        return done

    # ---- registration ------------------------------------------------------------------
    def group(self, lb: str, tg: str) -> _Group:
        try:
            return self.groups[(lb, tg)]
        except KeyError:
            known = ", ".join(f"{a}/{b}" for a, b in self.groups) or "none"
            raise BadInput(
                f"no target group {tg!r} behind load balancer {lb!r} (known: {known})"
            ) from None

    def _add(self, group: _Group, t: TargetPlan, why: str) -> TargetHealth:
        enabled = {n.az for n in group.lb.nodes}
        state = INITIAL if (t.az in enabled or t.az == "all") else UNUSED
        if state == INITIAL and not group.tg.health.enabled:
            state = HEALTHY  # no health checks: AWS considers the target healthy
        health = TargetHealth(t, state, *REASONS.get(state, ("", "")), since=self.clock())
        group.targets[t.key] = health
        self._event(group, t.key, "", state, why)
        return health

    def register(self, lb: str, tg: str, target: TargetPlan) -> TargetHealth:
        """Register a target (again): it starts in `initial` unless already in service."""
        group = self.group(lb, tg)
        current = group.targets.get(target.key)
        if current is not None and current.state != DRAINING:
            raise BadInput(f"{target.key} is already registered in {tg} ({current.state})")
        return self._add(group, target, "registered")

    def deregister(self, lb: str, tg: str, key: str) -> TargetHealth:
        """Start draining: no new flows; existing ones until the deregistration delay ends."""
        group = self.group(lb, tg)
        health = group.targets.get(key)
        if health is None or health.state == DRAINING:
            known = ", ".join(k for k, h in group.targets.items() if h.state != DRAINING)
            raise BadInput(f"{key} is not registered in {tg} (registered: {known or 'none'})")
        now = self.clock()
        health.drain_until = now + group.tg.deregistration_delay_s
        self._set(
            group,
            health,
            DRAINING,
            *REASONS[DRAINING],
            f"deregistered; draining for {group.tg.deregistration_delay_s} s",
        )
        return health

    def forget(self, lb: str, tg: str, key: str, why: str) -> None:
        """The target leaves its group at once, without draining (what registered it was
        undone: a rolled-back update's instance)."""
        group = self.group(lb, tg)
        health = group.targets.pop(key, None)
        if health is not None:
            self._event(group, key, health.state, "", why)

    # ---- health checks and time ------------------------------------------------------
    def report(self, lb: str, tg: str, key: str, ok: bool, detail: str) -> None:
        """One health check result for a target."""
        group = self.groups.get((lb, tg))
        health = group.targets.get(key) if group else None
        if group is None or health is None or health.state in (DRAINING, UNUSED):
            return
        hc = group.tg.health
        health.last_detail = detail
        if ok:
            health.passes += 1
            health.failures = 0
            if health.state != HEALTHY and health.passes >= hc.healthy_threshold:
                self._set(
                    group,
                    health,
                    HEALTHY,
                    "",
                    "",
                    f"{health.passes} consecutive health checks passed",
                )
        else:
            health.failures += 1
            health.passes = 0
            if health.state != UNHEALTHY and health.failures >= hc.unhealthy_threshold:
                reason = (
                    "Target.Timeout"
                    if detail == "timeout"
                    else "Target.ResponseCodeMismatch"
                    if detail.startswith("status")
                    else "Target.FailedHealthChecks"
                )
                self._set(
                    group,
                    health,
                    UNHEALTHY,
                    reason,
                    f"Health checks failed: {detail}",
                    f"{health.failures} consecutive health checks failed ({detail})",
                )

    def tick(self) -> list[tuple[str, str, TargetPlan]]:
        """Advance time: draining targets whose delay ended are removed.

        Returns (lb, tg, target) for each removed target (its flows must now end)."""
        now = self.clock()
        removed = []
        for group in self.groups.values():
            for key, health in list(group.targets.items()):
                if (
                    health.state == DRAINING
                    and health.drain_until is not None
                    and now >= health.drain_until
                ):
                    del group.targets[key]
                    self._event(group, key, DRAINING, "", "deregistration delay ended")
                    removed.append((group.lb.name, group.tg.name, health.target))
        return removed

    def _rezone(self, group: _Group) -> list[str]:
        """The load balancer's AZs changed (a subnet added or removed by an update): targets
        in a newly enabled AZ leave `unused` for their initial checks; targets in an AZ it
        left become `unused` (Target.NotInUse), as AWS reports them."""
        enabled = {n.az for n in group.lb.nodes}
        done = []
        for health in group.targets.values():
            inside = health.target.az in enabled or health.target.az == "all"
            if health.state == UNUSED and inside:
                state = INITIAL if group.tg.health.enabled else HEALTHY
                self._set(group, health, state, *REASONS.get(state, ("", "")), "AZ enabled")
                done.append(f"{group.tg.name}: {health.target.key} in use ({health.target.az})")
            elif health.state not in (UNUSED, DRAINING) and not inside:
                self._set(group, health, UNUSED, *REASONS[UNUSED], "AZ no longer enabled")
                done.append(f"{group.tg.name}: {health.target.key} unused ({health.target.az})")
        return done

    def _set(
        self,
        group: _Group,
        health: TargetHealth,
        state: TargetState,
        reason: str,
        description: str,
        why: str,
    ) -> None:
        old = health.state
        health.state, health.reason, health.description = state, reason, description
        health.since = self.clock()
        health.passes = health.failures = 0  # thresholds count from the transition on
        self._event(group, health.target.key, old, state, why)

    def _event(self, group: _Group, key: str, old: str, new: str, why: str) -> None:
        self.events.append(
            TargetEvent(self.clock(), group.lb.name, group.tg.name, key, old, new, why)
        )

    # ---- views ---------------------------------------------------------------------------
    def checks_for(self, node_az: str, lb: str) -> list[HealthCheckSpec]:
        """What a node of `lb` in `node_az` health-checks: the targets in its AZ."""
        out: list[HealthCheckSpec] = []
        for (lb_name, tg_name), group in self.groups.items():
            if lb_name != lb or not group.tg.health.enabled:
                continue
            hc = group.tg.health
            for key, health in group.targets.items():
                t = health.target
                if health.state in (DRAINING, UNUSED) or t.az not in (node_az, "all"):
                    continue
                spec: HealthCheckSpec = {
                    "lb": lb_name,
                    "tg": tg_name,
                    "key": key,
                    "ip": t.ip,
                    "port": hc.port or t.port,
                    "protocol": hc.protocol,
                    "path": hc.path,
                    "matcher": hc.matcher,
                    "interval_s": hc.interval_s,
                    "timeout_s": hc.timeout_s,
                }
                if group.tg.target_type == "lambda":  # the runtime needs the group's ARN
                    spec["headers"] = {LAMBDA_GROUP_HEADER: tg_name}
                out.append(spec)
        return out

    def snapshot(self) -> TargetSnapshot:
        """{lb: {tg: [{key, ip, port, az, state}]}} for the controller."""
        out: TargetSnapshot = {}
        for (lb, tg), group in self.groups.items():
            out.setdefault(lb, {})[tg] = [
                RuntimeTargetInfo(
                    key=k, ip=h.target.ip, port=h.target.port, az=h.target.az, state=h.state
                )
                for k, h in sorted(group.targets.items())
            ]
        return out

    def describe(self, lb: str | None = None, tg: str | None = None) -> list[TargetDescription]:
        """Rows like `aws elbv2 describe-target-health`, plus lb/tg names."""
        rows: list[TargetDescription] = []
        for (lb_name, tg_name), group in sorted(self.groups.items()):
            if (lb and lb != lb_name) or (tg and tg != tg_name):
                continue
            hc = group.tg.health
            for key, h in sorted(group.targets.items()):
                health: TargetHealthField = {"State": h.state}
                if h.reason:
                    health["Reason"] = h.reason
                if h.description:
                    health["Description"] = h.description
                row: TargetDescription = {
                    "LoadBalancer": lb_name,
                    "TargetGroup": tg_name,
                    "Target": {
                        "Id": h.target.id,
                        "Port": h.target.port,
                        "AvailabilityZone": h.target.az,
                    },
                    "Ip": h.target.ip,
                    "HealthCheckPort": str(hc.port or h.target.port),
                    "TargetHealth": health,
                    "Since": h.since,
                    "LastCheck": h.last_detail,
                    "DrainUntil": h.drain_until,
                    "Key": key,
                    "Host": h.target.host,
                }
                if group.tg.target_type == "alb" and h.target.host:
                    row["AlbNode"] = h.target.host  # the ALB node this row is about
                rows.append(row)
        return rows
