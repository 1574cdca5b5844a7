"""testbed targets | register | deregister: target groups of a running lab's load balancers,
and the instances of its classic load balancers (a CLB's instances are the target group named
after it, shown as `aws elb describe-instance-health` shows them)."""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Sequence
from typing import Any

from testbed.cli.common import subcommand, table
from testbed.errors import BadInput
from testbed.lab.classic_health import instance_health
from testbed.lab.views import (
    balanced_lab,
    target_rows,
    target_selection,
    targets_json,
)
from testbed.messages import TargetDescription

JSON_HELP = """\
JSON: {"TargetHealthDescriptions": [...]} as `aws elbv2 describe-target-health` prints it;
for one classic load balancer (testbed targets LAB MyCLB --json), {"InstanceStates": [...]}
as `aws elb describe-instance-health` prints it; a lab with classic load balancers adds
"ClassicLoadBalancers": {"MyCLB": {"InstanceStates": [...]}, ...} beside the ELBv2 groups'
TargetHealthDescriptions (which then leave the CLBs' instances out). The lab adds fields of
its own to each entry (Host, AvailabilityZone, LastCheck; Since, Key, ...)."""


def register(sub: Any) -> None:
    p = subcommand(
        sub,
        "targets",
        cmd_targets,
        "target health, like aws elbv2 describe-target-health (classic load balancers: "
        "aws elb describe-instance-health)",
        epilog="examples:\n  testbed targets nlb\n  testbed targets nlb WebTargets --json\n"
        "  testbed targets nlb --watch 1      refresh every second (Ctrl-C to stop)\n"
        "  testbed targets clb MyCLB          one classic load balancer's instances\n"
        "  testbed targets clb MyCLB --json   {InstanceStates: [...]}\n\n"
        "Target groups of ELBv2 load balancers come first, one row per target; then each\n"
        "classic load balancer, one row per instance: State InService or OutOfService,\n"
        "ReasonCode (ELB, Instance or N/A) and Description as AWS words them, with the\n"
        "instance's AZ and what its last health check said.\n\n" + JSON_HELP,
    )
    p.add_argument("name", help="lab name")
    p.add_argument(
        "target_group",
        nargs="?",
        help="only this target group, or this classic load balancer (by logical id)",
    )
    p.add_argument("--lb", help="only this load balancer")
    p.add_argument("--json", action="store_true", help="JSON (see below)")
    p.add_argument("--watch", type=float, metavar="SECONDS", help="print again every SECONDS")

    for name, func, text in (
        ("register", cmd_register, "register a target with a target group (at run time)"),
        (
            "deregister",
            cmd_deregister,
            "deregister a target: it drains for the deregistration delay, then leaves",
        ),
    ):
        p = subcommand(
            sub,
            name,
            func,
            text,
            epilog=f"examples:\n  testbed {name} nlb WebTargets WebA1\n"
            f"  testbed {name} nlb WebTargets WebA1:8080\n"
            f"  testbed {name} nlb IpTargets 10.0.1.20:80\n"
            f"  testbed {name} clb MyCLB WebA1        a classic load balancer's instance\n"
            f"  testbed {name} nlb-to-alb AlbTargets Alb   an ALB behind an NLB (all its nodes)\n\n"
            "TARGET is an instance's logical id (instance target groups) or an address in\n"
            "the VPC (ip target groups), with :PORT (default: the target group's port); an\n"
            "alb target group's is the ALB's logical id (one ALB per group, on the group's\n"
            "port): each of its nodes becomes a target of the NLB.\n"
            "A classic load balancer's instances are the target group named after it (its\n"
            "logical id), as `aws elb register-instances-with-load-balancer` /\n"
            "`deregister-instances-from-load-balancer` change them; deregistering drains for\n"
            "its ConnectionDrainingPolicy timeout (at once when draining is off).",
        )
        p.add_argument("name", help="lab name")
        p.add_argument("target_group", help="target group logical id, or a classic load balancer's")
        p.add_argument("target", help="INSTANCE[:PORT], IP[:PORT] or ALB")
        p.add_argument("--lb", help="the load balancer, if the group is behind several")


_balanced_lab = balanced_lab


def _last_check(row: TargetDescription, now: float) -> str:
    """What a draining target has left, or what its last health check said."""
    until = row.get("DrainUntil")
    return f"{until - now:.0f}s left" if until else row.get("LastCheck") or ""


def targets_text(rows: Sequence[TargetDescription], classic: Collection[str], now: float) -> str:
    """ELBv2 target groups' rows, then each classic load balancer's instances."""
    blocks = []
    elbv2 = [r for r in rows if r["LoadBalancer"] not in classic]
    if elbv2 or not classic:
        blocks.append(
            table(
                [
                    (
                        r["LoadBalancer"],
                        r["TargetGroup"],
                        # An ALB behind an NLB: the ALB, and the node this row is about.
                        f"{r['Target']['Id']} ({r['AlbNode']})"
                        if r.get("AlbNode")
                        else r["Target"]["Id"],
                        r["Target"]["Port"],
                        r["Target"]["AvailabilityZone"] or "-",
                        r["TargetHealth"]["State"],
                        r["TargetHealth"].get("Reason", ""),
                        f"{now - r['Since']:.0f}s",
                        _last_check(r, now),
                    )
                    for r in elbv2
                ],
                [
                    "LB",
                    "TARGET GROUP",
                    "TARGET",
                    "PORT",
                    "AZ",
                    "STATE",
                    "REASON",
                    "SINCE",
                    "LAST CHECK",
                ],
            )
        )
    for lb in sorted(classic):
        states = instance_health(rows, lb)
        draining = {r["Target"]["Id"]: r.get("DrainUntil") for r in rows if r["LoadBalancer"] == lb}
        head = f"{lb} (classic load balancer): instance health"
        if not states:
            blocks.append(f"{head}\n(no instances registered)")
            continue
        body = table(
            [
                (
                    s["InstanceId"],
                    s["State"],
                    s["ReasonCode"],
                    s["Description"],
                    s["AvailabilityZone"] or "-",
                    _clb_last_check(s, draining.get(s["InstanceId"]), now),
                )
                for s in states
            ],
            ["INSTANCE", "STATE", "REASON CODE", "DESCRIPTION", "AZ", "LAST CHECK"],
        )
        blocks.append(f"{head}\n{body}")
    return "\n\n".join(blocks)


def _clb_last_check(state: dict[str, Any], drain_until: float | None, now: float) -> str:
    return f"{drain_until - now:.0f}s left" if drain_until else state["LastCheck"]


def cmd_targets(args: Any) -> int:
    lab = _balanced_lab(args.name)
    asked = args.target_group
    clb, shown = target_selection(lab, asked, args.lb)
    while True:
        rows = target_rows(lab, asked, args.lb, clb)
        if args.json:
            print(json.dumps(targets_json(rows, shown, clb), indent=1))
        else:
            print(targets_text(rows, shown, time.time()))
        if not args.watch:
            return 0
        time.sleep(args.watch)
        print()


def _change(op: str, args: Any) -> int:
    target, _, port = args.target.partition(":")
    if port and not port.isdigit():
        raise BadInput(f"bad port in {args.target!r}")
    lab = _balanced_lab(args.name)
    change = lab.register if op == "register" else lab.deregister
    reply = change(args.target_group, target, int(port) if port else None, args.lb)
    verb = "registered with" if op == "register" else "deregistering from"
    print(f"{reply['target']} {verb} {reply['load_balancer']}/{reply['target_group']}")
    return 0


def cmd_register(args: Any) -> int:
    return _change("register", args)


def cmd_deregister(args: Any) -> int:
    return _change("deregister", args)
