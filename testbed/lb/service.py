"""The load-balancer side of a lab's holder: target registry, health reports, controller sync.

Health checkers (one per node, in the node's namespace) ask what to check and report results
over the holder's socket; the CLI registers and deregisters targets. Every change of the
registry is pushed to the controller (NLB, GWLB flows) and to the HAProxy of the ALB and CLB
nodes (testbed.alb.runtime) as a new snapshot of target states, written to the lab's event
log and to target-events.jsonl (testbed.schemas.TARGET_EVENT_COLUMNS).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any, cast

from testbed import asks, rpc
from testbed.alb.runtime import AlbRuntime
from testbed.errors import BadInput
from testbed.lab import certs
from testbed.lab.events import EventLog
from testbed.lb.registry import DRAINING, UNHEALTHY, TargetRegistry
from testbed.messages import (
    HealthChecksReply,
    HolderRequest,
    RegisterReply,
    RegisterRequest,
    Reply,
    TargetsReply,
)
from testbed.naming import CONTROLLER_SOCK
from testbed.plan.balancers import (
    LoadBalancerPlan,
    TargetGroupPlan,
    TargetPlan,
    alb_node_targets,
)
from testbed.plan.network import HostPlan, NetworkPlan

TARGET_EVENTS = "target-events.jsonl"
TICK_S = 0.2


class LbService:
    """Owns the target registry of a running lab."""

    def __init__(self, lab_dir: Path, plan: NetworkPlan, events: EventLog) -> None:
        self.lab_dir = Path(lab_dir)
        self.plan = plan
        self.lbs: list[LoadBalancerPlan] = list(plan.load_balancers)
        self.events = events
        self.registry = TargetRegistry(self.lbs)
        self.lock = threading.RLock()
        self.published = 0  # registry events already written out
        self.dirty = True
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True, name="lb-service")
        self.controller_sock = str(self.lab_dir / CONTROLLER_SOCK)
        self.alb: AlbRuntime | None = None
        if any(lb.runs_haproxy for lb in self.lbs):  # ALB, CLB, NLB TLS listeners
            self.alb = AlbRuntime(self.lab_dir, self.lbs)

    def start(self) -> None:
        with self.lock:
            self._publish()
        self.thread.start()

    def close(self) -> None:
        self.stop.set()

    def push_all(self) -> bool:
        """Send every target state to the controller now, changed or not (a restarted
        controller knows only the template's); True if it took them."""
        with self.lock:
            self.dirty = True
            self._publish()
            return not self.dirty

    # ---- requests (from the holder's socket) -------------------------------------------
    def handle(self, request: dict[str, Any]) -> Reply | None:
        """The reply to a load-balancer request, or None if the op is not ours."""
        # JSON from the socket, read as the holder's requests (testbed.messages): a field
        # missing is a KeyError, which the caller gets as the error.
        req = cast(HolderRequest, request)
        with self.lock:
            if req["op"] == "health_checks":
                checks = self.registry.checks_for(req["az"], req["lb"])
                return HealthChecksReply(ok=True, checks=checks)
            if req["op"] == "health_report":
                for r in req["results"]:
                    self.registry.report(
                        r["lb"], r["tg"], r["key"], bool(r["ok"]), str(r.get("detail", ""))
                    )
                self._publish()
                return Reply(ok=True)
            if req["op"] == "targets":
                rows = self.registry.describe(req.get("lb"), req.get("tg"))
                return TargetsReply(ok=True, targets=rows)
            if req["op"] in ("register", "deregister"):
                try:
                    return self._change(req)
                except BadInput as exc:
                    return Reply(ok=False, error=exc.format(), bad_input=True)
        return None

    def _change(self, req: RegisterRequest) -> RegisterReply:
        lb, tg = self._locate(req.get("lb"), req["tg"])
        if lb.target_group(tg).target_type == "alb":
            targets = self._alb_targets(lb, tg, req["target"], req.get("port"), req["op"])
        else:
            targets = (self._target(lb, tg, req["target"], req.get("port")),)
        for target in targets:
            if req["op"] == "register":
                self.registry.register(lb.name, tg, target)
            else:
                self.registry.deregister(lb.name, tg, target.key)
        self._publish()
        return RegisterReply(
            ok=True,
            target=", ".join(t.key for t in targets),
            load_balancer=lb.name,
            target_group=tg,
        )

    def _alb_targets(
        self, lb: LoadBalancerPlan, tg_name: str, text: str, port: int | None, op: str
    ) -> tuple[TargetPlan, ...]:
        """An alb group's target by the ALB's name: one target per ALB node. A group takes
        one ALB (AWS): registering a second while one is in it is refused."""
        tg = lb.target_group(tg_name)
        albs = {x.name: x for x in self.lbs if x.type == "application"}
        alb = albs.get(text)
        if alb is None:
            raise BadInput(
                f"target group {tg_name} takes an Application Load Balancer: {text!r} is no "
                "ALB of this lab",
                hint=f"ALBs: {', '.join(sorted(albs)) or 'none'}",
            )
        if port not in (None, tg.port) or tg.port not in {x.port for x in alb.listeners}:
            raise BadInput(
                f"ALB {text} must be registered on port {tg.port}, the group's, with a "
                f"listener there (its listeners: "
                f"{', '.join(str(x.port) for x in alb.listeners) or 'none'})"
            )
        if op == "register":
            group = self.registry.group(lb.name, tg_name)
            other = sorted(
                {h.target.id for h in group.targets.values() if h.state != DRAINING} - {text}
            )
            if other:
                raise BadInput(
                    f"target group {tg_name} already has ALB {other[0]}: an alb target group "
                    "takes one Application Load Balancer",
                    hint=f"deregister {other[0]} first",
                )
        return alb_node_targets(alb.name, ((n.host, n.ip, n.az) for n in alb.nodes), tg.port)

    def _locate(self, lb_name: str | None, tg: str) -> tuple[LoadBalancerPlan, str]:
        behind = [
            lb
            for lb in self.lbs
            if any(g.name == tg for g in lb.target_groups)
            and (lb_name is None or lb.name == lb_name)
        ]
        if not behind:
            known = sorted({g.name for lb in self.lbs for g in lb.target_groups})
            raise BadInput(
                f"no target group {tg!r} in use by a load balancer of this lab",
                hint=f"target groups: {', '.join(known) or 'none'}",
            )
        if len(behind) > 1:
            raise BadInput(
                f"target group {tg} is behind several load balancers: "
                f"{', '.join(lb.name for lb in behind)}",
                hint="name one with --lb",
            )
        return behind[0], tg

    def _target(
        self, lb: LoadBalancerPlan, tg_name: str, text: str, port: int | None
    ) -> TargetPlan:
        """A TargetPlan from an instance name or an IP address (of a host in the VPC)."""
        tg = lb.target_group(tg_name)
        port = port or tg.port
        by_name = {h.name: h for h in self.plan.hosts if h.kind == "instance"}
        if tg.target_type == "instance":
            host = by_name.get(text)
            if host is None:
                raise BadInput(
                    f"{text!r} is not an instance of this lab (target group "
                    f"{tg_name} takes instance targets)",
                    hint=f"instances: {', '.join(sorted(by_name))}",
                )
            return instance_target(host, port)
        if text in by_name:
            text = by_name[text].ip  # an instance's address, named by the instance
        try:
            ip = IPv4Address(text)
        except ValueError:
            raise BadInput(
                f"target group {tg_name} takes IP targets: {text!r} is neither an IPv4 "
                "address nor an instance of this lab",
                hint=f"instances: {', '.join(sorted(by_name))}",
            ) from None
        subnet = next((s for s in self.plan.subnets if ip in IPv4Network(s.cidr)), None)
        if subnet is None:
            raise BadInput(f"{ip} is not in a subnet of this lab's VPC")
        host = next((h for h in self.plan.hosts if h.ip == str(ip)), None)
        # Keyed as the plan keys a template's IP targets: by the instance holding the
        # address, else by the address (testbed.plan.balancers).
        instance = host.name if host and host.kind == "instance" else None
        return TargetPlan(
            f"{instance or ip}:{port}",
            str(ip),
            str(ip),
            port,
            subnet.az,
            host.name if host else None,
        )

    # ---- Auto Scaling (testbed.autoscaling.service) ------------------------------------
    def set_plan(self, plan: NetworkPlan) -> None:
        """The lab's plan with launched or terminated instances: `register` by name finds
        them (the load balancers themselves do not change)."""
        with self.lock:
            self.plan = plan

    def lbs_using(self, tg: str) -> list[str]:
        """The load balancers that use target group `tg` (none: it is attached to none)."""
        return [lb.name for lb in self.lbs if any(g.name == tg for g in lb.target_groups)]

    def register_host(self, tg: str, host: HostPlan) -> list[str]:
        """Register instance `host` in target group `tg` of every load balancer that uses it,
        as Auto Scaling does with a group's TargetGroupARNs (ip target groups take its
        address). Returns the registry keys; a host already registered is left as it is."""
        keys = []
        with self.lock:
            for lb in self.lbs:
                group = next((g for g in lb.target_groups if g.name == tg), None)
                if group is None:
                    continue
                target = (
                    instance_target(host, group.port)
                    if group.target_type == "instance"
                    else TargetPlan(
                        f"{host.ip}:{group.port}", host.ip, host.ip, group.port, host.az, host.name
                    )
                )
                current = self.registry.group(lb.name, tg).targets.get(target.key)
                if current is None or current.state == DRAINING:
                    self.registry.register(lb.name, tg, target)
                keys.append(target.key)
            self._publish()
        return keys

    def deregister_host(self, tg: str, host: str) -> list[str]:
        """Start draining every target of `host` in `tg` (all load balancers); their keys."""
        keys = []
        with self.lock:
            for lb in self.lbs:
                if not any(g.name == tg for g in lb.target_groups):
                    continue
                for key, health in list(self.registry.group(lb.name, tg).targets.items()):
                    if health.target.host == host and health.state != DRAINING:
                        self.registry.deregister(lb.name, tg, key)
                        keys.append(key)
            self._publish()
        return keys

    def drain_host(self, host: str) -> float:
        """Deregister every target of instance `host` in every group (a template update
        replaces or removes it); returns the longest deregistration delay of those groups
        (0: it was no target), the time the caller waits for host_states(host) to empty."""
        longest = 0.0
        with self.lock:
            for (lb, tg), group in self.registry.groups.items():
                for key, health in list(group.targets.items()):
                    if health.target.host == host and health.state != DRAINING:
                        self.registry.deregister(lb, tg, key)
                        longest = max(longest, group.tg.deregistration_delay_s)
            self._publish()
        return longest

    def forget_host(self, host: str, why: str) -> list[str]:
        """Every target of instance `host` leaves its group at once (a rolled-back update's
        instance: it was never the stack's); returns their keys."""
        keys = []
        with self.lock:
            for (lb, tg), group in list(self.registry.groups.items()):
                for key, health in list(group.targets.items()):
                    if health.target.host == host:
                        self.registry.forget(lb, tg, key, why)
                        keys.append(key)
            self._publish()
        return keys

    def register_template_targets(self, host: str, plan: NetworkPlan) -> list[str]:
        """Register the targets `plan`'s target groups name on instance `host` (its
        successor after a replacement, or the old one back after a rollback) in the groups
        the registry has; returns their keys."""
        keys = []
        with self.lock:
            for lb in plan.load_balancers:
                for tg in lb.target_groups:
                    if (lb.name, tg.name) not in self.registry.groups:
                        continue
                    group = self.registry.group(lb.name, tg.name)
                    for t in tg.targets:
                        if t.host != host:
                            continue
                        current = group.targets.get(t.key)
                        if current is None or current.state == DRAINING:
                            self.registry.register(lb.name, tg.name, t)
                        keys.append(f"{tg.name}/{t.key}")
            self._publish()
        return keys

    def target_states(self) -> dict[tuple[str, str], list[str]]:
        """{(load balancer, target group): the state of each of its targets}."""
        with self.lock:
            return {
                key: [h.state for h in group.targets.values()]
                for key, group in self.registry.groups.items()
            }

    def host_states(self, host: str, tg: str | None = None) -> dict[tuple[str, str], str]:
        """{(load balancer, target group): state} of `host`'s targets (of `tg` only if
        given); a target that left its group (drained) is missing."""
        with self.lock:
            return {
                (lb, name): health.state
                for (lb, name), group in self.registry.groups.items()
                if tg is None or name == tg
                for health in group.targets.values()
                if health.target.host == host
            }

    # ---- background: drain timers, publishing ------------------------------------------
    def _loop(self) -> None:
        while not self.stop.wait(TICK_S):
            with self.lock:
                for lb, tg, target in self.registry.tick():
                    if self._terminates_on_deregistration(lb, tg):
                        self._terminate(lb, target)
                self._publish()

    def _publish(self) -> None:
        """Tell the controller, then write the new events out (with `applied`: when the
        switches had the change, i.e. when traffic moved; `time` is when the registry
        decided), end flows of targets that turned unhealthy."""
        snapshot = self.registry.snapshot()
        if self.alb is not None:
            self.alb.sync(snapshot)  # only what changed; retried on the next tick if need be
        new = self.registry.events[self.published :]
        if not new and not self.dirty:
            return
        # The controller steers NLB and GWLB traffic; ALB and CLB nodes route in HAProxy.
        proxied = self._proxied_names()
        fabric = {lb: groups for lb, groups in snapshot.items() if lb not in proxied}
        try:
            asks.controller_set_targets(self.controller_sock, fabric)
            self.dirty = False
        except (rpc.RpcUnavailable, rpc.RpcRefused, OSError):
            # The controller is down (or failed to take them): try again next tick.
            self.dirty = True
            return
        self.published = len(self.registry.events)
        now = time.time()
        with open(self.lab_dir / TARGET_EVENTS, "a") as f:
            for ev in new:
                row = asdict(ev)
                row["applied"] = now
                f.write(json.dumps(row) + "\n")
        for ev in new:
            status = f"TARGET_{(ev.new or 'removed').upper()}"
            self.events.emit(
                ev.target,
                "Lab::TargetHealth",
                status,
                f"{ev.load_balancer}/{ev.target_group}: {ev.old or '-'} -> "
                f"{ev.new or 'removed'} ({ev.reason})",
            )
        for ev in new:
            if ev.new == UNHEALTHY:
                lb = next(x for x in self.lbs if x.name == ev.load_balancer)
                tg = lb.target_group(ev.target_group)
                if (
                    tg.attributes.get(
                        "target_health_state.unhealthy.connection_termination.enabled", "true"
                    )
                    == "true"
                    and lb.type == "network"
                ):
                    self._terminate(
                        ev.load_balancer, self._runtime_target(lb.name, tg.name, ev.target)
                    )

    def _proxied_names(self) -> set[str]:
        """The load balancers whose nodes run HAProxy (ALB, CLB): not the controller's."""
        return {lb.name for lb in self.lbs if lb.proxied}

    # ---- template updates (ALB, CLB) ---------------------------------------------------
    def update(self, plan: NetworkPlan, reload: list[str]) -> list[str]:
        """Take a new plan whose changes are ALB rules, actions, target groups, targets or
        attributes, or CLB listener policies, instances and settings, only
        (testbed.plan.changes): the registry follows the template's target lists (targets
        registered at run time stay), then the load balancers in `reload` get a new
        haproxy.cfg and a seamless reload. Returns what was done, for the events."""
        done: list[str] = []
        with self.lock:
            if self.alb is not None:
                # A certificate the new plan names (or names anew) exists before a node's
                # file naming it is checked (the holder issues them again when it publishes).
                certs.issue_all(self.lab_dir, plan)
                # Every node's new file is checked before anything changes (LabError).
                for name in reload:
                    self.alb.validate(
                        next(x for x in plan.load_balancers if x.name == name),
                        self.registry.snapshot(),
                    )
            old = {(lb.name, tg.name): tg for lb in self.lbs for tg in lb.target_groups}
            for text in self.registry.set_plans(list(plan.load_balancers)):
                done.append(text)
            for lb in plan.load_balancers:
                for tg in lb.target_groups:
                    before = old.get((lb.name, tg.name))
                    if before is None:
                        continue  # a new group starts with its template targets
                    done += self._follow_template(lb, before, tg)
            self.plan = plan
            self.lbs = list(plan.load_balancers)
            if self.alb is not None:
                # The lock stays held through the reloads (about 0.5 s a node): no state
                # push may race them.
                self.alb.set_lbs(self.lbs)
                for name in reload:
                    nodes = self.alb.reload(name, self.registry.snapshot())
                    done.append(
                        f"{name}: HAProxy reloaded on {', '.join(nodes)} "
                        "(established connections kept)"
                    )
            self._publish()
        return done

    def _follow_template(
        self, lb: LoadBalancerPlan, before: TargetGroupPlan, after: TargetGroupPlan
    ) -> list[str]:
        """Register the template's new targets, deregister the ones it dropped."""
        done = []
        group = self.registry.group(lb.name, after.name)
        old_keys = {t.key for t in before.targets}
        new_keys = {t.key for t in after.targets}
        for t in after.targets:
            current = group.targets.get(t.key)
            if t.key not in old_keys and (current is None or current.state == DRAINING):
                self.registry.register(lb.name, after.name, t)
                done.append(f"{after.name}: registered {t.key}")
        for key in sorted(old_keys - new_keys):
            current = group.targets.get(key)
            if current is not None and current.state != DRAINING:
                self.registry.deregister(lb.name, after.name, key)
                done.append(f"{after.name}: deregistering {key}")
        return done

    def _terminates_on_deregistration(self, lb_name: str, tg_name: str) -> bool:
        """AWS keeps a drained target's connections unless the target group asks to close
        them when the delay ends (deregistration_delay.connection_termination.enabled)."""
        lb = next(x for x in self.lbs if x.name == lb_name)
        value = lb.target_group(tg_name).attributes.get(
            "deregistration_delay.connection_termination.enabled", "false"
        )
        return lb.type == "network" and str(value).lower() == "true"

    def _runtime_target(self, lb: str, tg: str, key: str) -> TargetPlan | None:
        health = self.registry.groups[(lb, tg)].targets.get(key)
        return health.target if health else None

    def _terminate(self, lb: str, target: TargetPlan | None) -> None:
        """End the established flows of a target (the controller flushes conntrack)."""
        if target is None:
            return
        try:
            asks.controller_terminate(self.controller_sock, lb, target.ip, target.port)
        except (rpc.RpcUnavailable, rpc.RpcRefused, OSError) as exc:
            self.events.emit(
                target.key, "Lab::TargetHealth", "FLOWS_TERMINATE_FAILED", f"{lb}: {exc}"
            )
            return
        self.events.emit(
            target.key,
            "Lab::TargetHealth",
            "FLOWS_TERMINATED",
            f"{lb}: established connections to {target.ip}:{target.port} ended",
        )


def instance_target(host: HostPlan, port: int) -> TargetPlan:
    """An instance target: keyed by the host's name (what `testbed register` takes), its Id
    the instance's EC2 id (a launched instance's i-..., "i-" + name for template ones)."""
    return TargetPlan(
        f"{host.name}:{port}",
        host.instance_id or f"i-{host.name}",
        host.ip,
        port,
        host.az,
        host.name,
    )
