"""The JSON documents the CLI prints and the console's /api serves: one source of truth.

`testbed status [LAB] --json`, `testbed targets LAB --json` and `testbed events LAB --json`
print what these functions return; the console (testbed.console) serves the same documents
at /api/labs, /api/labs/LAB/status, /targets and /events."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict
from typing import Any

from testbed import naming
from testbed.errors import BadInput, TestbedError
from testbed.lab.api import Lab
from testbed.lab.classic_health import instance_health
from testbed.lab.events import read_events
from testbed.lab.owner import Owner
from testbed.lab.state import holder_alive, list_labs, read_state
from testbed.messages import TargetDescription

# States of a lab that ended and whose folder was kept (TESTBED_KEEP_LAB_DIR=1).
ENDED_STATES = ("DELETE_COMPLETE", "ROLLBACK_COMPLETE")
# Hosts that are the lab's own machinery, not instances or clients of the template.
MACHINERY_KINDS = ("dns", "lb-node", "natgw")
HOST_KEYS = ("name", "kind", "ip", "public_ip", "az", "subnet", "role", "interfaces")


def owner_summary(state: dict[str, Any]) -> dict[str, Any] | None:
    """The lab's owner as status shows it: pid, command line, alive."""
    owner = Owner.from_dict(state.get("owner"))
    if owner is None:
        return None
    return {
        "pid": owner.pid,
        "command": owner.command,
        "cmdline": owner.cmdline,
        "alive": owner.alive(),
    }


def host_summary(h: dict[str, Any]) -> dict[str, Any]:
    """One host as status --json shows it: every host has a kind (instance, client, lb-node,
    dns, natgw); machinery: the lab runs it for a resource that is not a host on AWS (the
    resolver, LB nodes, NAT gateways); lab_made / default_role: why the lab added the host
    or chose its role (None: the template said so)."""
    out = {k: h.get(k) for k in HOST_KEYS}
    out["interfaces"] = out["interfaces"] or []
    out["machinery"] = h.get("kind") in MACHINERY_KINDS
    out["lab_made"] = h.get("lab_made")
    out["default_role"] = h.get("default_role")
    return out


def groups_summary(name: str, state: dict[str, Any]) -> list[dict[str, Any]]:
    """The lab's Auto Scaling groups as status shows them (asked from its holder)."""
    if not state.get("auto_scaling_groups"):
        return []
    try:
        groups = Lab(name).asg()
    except TestbedError:
        return []  # the holder is going away: nothing to show
    return [
        {
            "logical_id": g.get("LogicalId"),
            "name": g["AutoScalingGroupName"],
            "min": g["MinSize"],
            "desired": g["DesiredCapacity"],
            "max": g["MaxSize"],
            "in_service": sum(
                1 for i in g.get("Instances", []) if i.get("LifecycleState") == "InService"
            ),
            "instances": len(
                [i for i in g.get("Instances", []) if i.get("LifecycleState") != "Terminated"]
            ),
        }
        for g in groups
    ]


def lab_summary(name: str, state: dict[str, Any] | None) -> dict[str, Any]:
    """`testbed status NAME --json`: one lab (its state as read from its folder)."""
    state = state or {}
    alive = holder_alive(state)
    shown = state.get("state", "UNKNOWN")
    if not alive and shown not in ENDED_STATES:
        shown = "DEAD (testbed clean)"
    return {
        "name": name,
        "pid": state.get("pid"),
        "alive": alive,
        "state": shown,
        "reason": state.get("reason"),
        "owner": owner_summary(state),
        "datapath": state.get("datapath"),
        # Who steers the GWLBs' traffic (None: the lab has no GWLB) and why not the switch.
        "gwlb_datapath": state.get("gwlb_datapath"),
        "gwlb_datapath_reason": state.get("gwlb_datapath_reason") or "",
        "template": state.get("template"),
        "created": state.get("created"),
        "outputs": state.get("outputs", {}),
        "hosts": [host_summary(h) for h in state.get("hosts", [])],
        "limitations": state.get("limitations", []),
        "controller": state.get("controller"),
        "prefix": state.get("prefix"),
        "lab_dir": state.get("lab_dir"),
        "auto_scaling_groups": groups_summary(name, state) if alive else [],
    }


def status_document(name: str) -> dict[str, Any]:
    """`testbed status NAME --json`; BadInput if there is no such lab."""
    naming.validate_lab_name(name)
    state = read_state(naming.lab_dir(name))
    if state is None:
        raise BadInput(f"no lab named {name!r}", hint="testbed status lists the labs")
    return lab_summary(name, state)


def labs_document() -> list[dict[str, Any]]:
    """`testbed status --json`: every lab of this machine."""
    return [lab_summary(name, state) for name, state in list_labs()]


def targets_json(
    rows: Sequence[TargetDescription], classic: Collection[str], only: str | None = None
) -> dict[str, Any]:
    """What `testbed targets --json` prints: `classic` are the lab's classic load balancers
    (those to show), `only` the one asked for."""
    if only is not None and only in classic:
        return {"InstanceStates": instance_health(rows, only)}
    out: dict[str, Any] = {
        "TargetHealthDescriptions": [r for r in rows if r["LoadBalancer"] not in classic]
    }
    if classic:
        out["ClassicLoadBalancers"] = {
            lb: {"InstanceStates": instance_health(rows, lb)} for lb in sorted(classic)
        }
    return out


def classic_names(lab: Lab) -> list[str]:
    """The lab's classic load balancers (logical ids)."""
    return [lb["name"] for lb in lab.state.get("load_balancers", []) if lb.get("type") == "classic"]


def balanced_lab(name: str) -> Lab:
    """The running lab `name`; BadInput if it has no load balancer."""
    lab = Lab.attach(name)
    if not lab.state.get("load_balancers"):
        raise BadInput(f"lab {name} has no load balancer")
    return lab


def target_selection(lab: Lab, asked: str | None, lb: str | None) -> tuple[str | None, list[str]]:
    """(the classic load balancer asked for or None, the classic load balancers to show) of
    `testbed targets LAB [GROUP] [--lb LB]`."""
    classic = classic_names(lab)
    if lb and lb in classic and asked not in (None, lb):
        raise BadInput(
            f"{lb} is a classic load balancer: its instances are the group {lb}",
            hint=f"testbed targets {lab.name} {lb}",
        )
    clb = asked if asked in classic else lb if lb in classic else None
    # What to show of the classic load balancers: the one asked for, or every one unless a
    # target group or another load balancer was asked for.
    shown = [clb] if clb else [] if (asked or lb) else classic
    return clb, shown


def target_rows(
    lab: Lab, asked: str | None, lb: str | None, clb: str | None
) -> list[TargetDescription]:
    """The describe-target-health rows `testbed targets` shows (BadInput: no such group)."""
    if clb:
        return lab.targets(clb, clb)
    rows = lab.targets(asked, lb)
    if asked and not rows:
        classic = classic_names(lab)
        raise BadInput(
            f"no target group {asked!r} in lab {lab.name} (or it has no targets)",
            hint=f"classic load balancers: {', '.join(classic)}" if classic else None,
        )
    return rows


def targets_document(name: str, asked: str | None = None, lb: str | None = None) -> dict[str, Any]:
    """`testbed targets NAME [GROUP] [--lb LB] --json`."""
    lab = balanced_lab(name)
    clb, shown = target_selection(lab, asked, lb)
    return targets_json(target_rows(lab, asked, lb, clb), shown, clb)


def events_document(name: str, since: float = 0.0) -> list[dict[str, Any]]:
    """`testbed events NAME --json` (one object per line there; a list here): the lab's
    stack events, faults and scaling activities at or after `since`."""
    naming.validate_lab_name(name)
    if not naming.lab_dir(name).exists():
        raise BadInput(f"no lab named {name!r}", hint="testbed status lists the labs")
    return [asdict(ev) for ev in read_events(naming.lab_dir(name)) if ev.time >= since]
