"""What the console shows of a lab, read from the lab (LiveData) the way the CLI reads it.

Every document here is built by the functions the CLI calls (testbed.lab.views, the metric
sources, the Lab API), so /api/labs/LAB/status is `testbed status LAB --json`, and so on."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from testbed import naming
from testbed.errors import BadInput
from testbed.lab import views
from testbed.lab.api import TARGET_EVENTS_FILE, Lab
from testbed.lab.events import EVENTS
from testbed.lab.faults import apply_fault
from testbed.lab.state import holder_alive, list_labs, read_state
from testbed.metrics.snmp_metrics import collect_snmp
from testbed.metrics.sources import SOURCES, Source
from testbed.probes.flows import check_client, lab_flows


class UnknownLab(BadInput):
    """No lab of that name (the API answers 404)."""


class LiveData:
    """The labs of this machine (only `only`, if given), read when asked."""

    def __init__(self, only: str | None = None) -> None:
        self.only = naming.validate_lab_name(only) if only else None

    # ---- which labs ----------------------------------------------------------------------
    def labs(self) -> list[dict[str, Any]]:
        """The lab picker: name, state, alive, hosts (count) of each running lab."""
        out = []
        for name, state in list_labs():
            if self.only and name != self.only:
                continue
            out.append(
                {
                    "name": name,
                    "state": (state or {}).get("state", "UNKNOWN"),
                    "alive": holder_alive(state),
                    "hosts": len((state or {}).get("hosts", [])),
                    "template": (state or {}).get("template"),
                }
            )
        return out

    def check(self, name: str) -> str:
        """`name` if the console serves such a lab; BadInput (bad name) or UnknownLab."""
        naming.validate_lab_name(name)
        if (self.only and name != self.only) or read_state(naming.lab_dir(name)) is None:
            raise UnknownLab(
                f"no lab named {name!r}", hint="testbed status (GET /api/labs) lists the labs"
            )
        return name

    def lab_dir(self, name: str) -> Path:
        return naming.lab_dir(name)

    # ---- the CLI's documents -------------------------------------------------------------
    def status(self, name: str) -> dict[str, Any]:
        """`testbed status NAME --json`."""
        return views.status_document(name)

    def targets(self, name: str, tg: str | None = None, lb: str | None = None) -> dict[str, Any]:
        """`testbed targets NAME [TG] [--lb LB] --json` ({} for a lab without LB)."""
        if not read_state(naming.lab_dir(name)) or not Lab(name).state.get("load_balancers"):
            return {"TargetHealthDescriptions": []}
        return views.targets_document(name, tg, lb)

    def events(self, name: str, since: float = 0.0) -> list[dict[str, Any]]:
        """`testbed events NAME --json` as a list."""
        return views.events_document(name, since)

    def asg(self, name: str) -> list[dict[str, Any]]:
        """describe-auto-scaling-groups of the lab (empty without groups)."""
        state = read_state(naming.lab_dir(name)) or {}
        if not state.get("auto_scaling_groups") or not holder_alive(state):
            return []
        return Lab(name).asg()

    def topology(self, name: str) -> dict[str, Any]:
        """What the drawing needs beyond status: subnets (AZ, CIDR, public, route table),
        security groups and NACLs, which groups each host has, load balancers, the IGW."""
        plan = Lab(name).plan
        return {
            "vpcs": [asdict(v) for v in plan.vpcs],
            "subnets": [asdict(s) for s in plan.subnets],
            "security_groups": [asdict(g) for g in plan.security_groups],
            "network_acls": [asdict(n) for n in plan.network_acls],
            "host_groups": {h.name: list(h.groups or ()) for h in plan.hosts},
            "host_asg": {h.name: h.asg for h in plan.hosts if h.asg},
            "load_balancers": [{"name": lb.name, "type": lb.type} for lb in plan.load_balancers],
            "has_internet_gateway": plan.has_internet_gateway,
            "igw_routes": [asdict(r) for r in plan.igw_routes],
        }

    def flows(self, name: str, client: str | None = None) -> list[dict[str, Any]]:
        """`testbed flows NAME [--client IP] --json`: NLB flows -> target, GWLB flows ->
        appliance."""
        if client is not None:
            check_client(client)  # BadInput before anything is asked of the lab
        return lab_flows(Lab.attach(name), client)

    def sources(self, name: str) -> list[Source]:
        """The metric sources `testbed metrics` samples (its default set)."""
        lab = Lab.attach(name)
        plan = lab.plan
        return [make(lab, plan) for make in SOURCES.values()]

    def snmp_rates(self, name: str, window: float) -> list[dict[str, Any]]:
        """Every agent's interface rates over the next `window` s (`testbed metrics --source
        snmp`): Lab/Host SnmpInOctets / SnmpOutOctets rows per host and interface."""
        return collect_snmp(name, window, 1.0)

    def event_files(self, name: str) -> dict[str, Path]:
        """The files the live stream follows: stack events and target health transitions."""
        d = naming.lab_dir(name)
        return {"event": d / EVENTS, "health": d / TARGET_EVENTS_FILE}

    # ---- actions (only with --allow-actions) ---------------------------------------------
    def fault(self, name: str, host: str, kind: str, value: str | None) -> dict[str, Any]:
        """`testbed fault NAME HOST KIND [VALUE]` (a FAULT_INJECTED/CLEARED event)."""
        return apply_fault(Lab.attach(name), host, kind, value)

    def register(self, name: str, op: str, tg: str, target: str, port: int | None, lb: str | None):
        """`testbed register|deregister NAME TG TARGET[:PORT] [--lb LB]`."""
        lab = views.balanced_lab(name)
        change = lab.register if op == "register" else lab.deregister
        return dict(change(tg, target, port, lb))

    def scale(
        self, name: str, group: str, desired: int | None, min: int | None, max: int | None
    ) -> dict[str, Any]:
        """`testbed scale NAME GROUP --desired N [--min] [--max]` (set-desired-capacity)."""
        return Lab.attach(name).scale(group, desired, min, max)


def read_new_lines(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """JSON lines appended to `path` since byte `offset`, and the new offset (a line still
    being written is left for next time; a file that shrank is read again from the start)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return [], 0
    if size < offset:
        offset = 0
    if size == offset:
        return [], offset
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(size - offset)
    end = data.rfind(b"\n") + 1
    rows = []
    for line in data[:end].splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows, offset + end
