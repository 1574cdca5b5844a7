"""testbed targets | register | deregister: target groups of a running lab's load balancers."""

from __future__ import annotations

import json
import time
from typing import Any

from testbed.cli.common import subcommand, table
from testbed.errors import BadInput
from testbed.lab.api import Lab
from testbed.messages import TargetDescription


def register(sub: Any) -> None:
    p = subcommand(
        sub,
        "targets",
        cmd_targets,
        "target health, like aws elbv2 describe-target-health",
        epilog="examples:\n  testbed targets nlb\n  testbed targets nlb WebTargets --json\n"
        "  testbed targets nlb --watch 1      refresh every second (Ctrl-C to stop)",
    )
    p.add_argument("name", help="lab name")
    p.add_argument("target_group", nargs="?", help="only this target group")
    p.add_argument("--lb", help="only this load balancer")
    p.add_argument(
        "--json",
        action="store_true",
        help="JSON: {TargetHealthDescriptions: [...]} as the AWS CLI prints it",
    )
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
            f"  testbed {name} nlb IpTargets 10.0.1.20:80\n\n"
            "TARGET is an instance's logical id (instance target groups) or an address in\n"
            "the VPC (ip target groups), with :PORT (default: the target group's port).",
        )
        p.add_argument("name", help="lab name")
        p.add_argument("target_group", help="target group logical id")
        p.add_argument("target", help="INSTANCE[:PORT] or IP[:PORT]")
        p.add_argument("--lb", help="the load balancer, if the group is behind several")


def _balanced_lab(name: str) -> Lab:
    lab = Lab.attach(name)
    if not lab.state.get("load_balancers"):
        raise BadInput(f"lab {name} has no load balancer")
    return lab


def _last_check(row: TargetDescription, now: float) -> str:
    """What a draining target has left, or what its last health check said."""
    until = row.get("DrainUntil")
    return f"{until - now:.0f}s left" if until else row.get("LastCheck") or ""


def cmd_targets(args: Any) -> int:
    lab = _balanced_lab(args.name)
    while True:
        rows = lab.targets(args.target_group, args.lb)
        if args.target_group and not rows:
            raise BadInput(
                f"no target group {args.target_group!r} in lab {args.name} (or it has no targets)"
            )
        if args.json:
            print(json.dumps({"TargetHealthDescriptions": rows}, indent=1))
        else:
            now = time.time()
            print(
                table(
                    [
                        (
                            r["LoadBalancer"],
                            r["TargetGroup"],
                            r["Target"]["Id"],
                            r["Target"]["Port"],
                            r["Target"]["AvailabilityZone"] or "-",
                            r["TargetHealth"]["State"],
                            r["TargetHealth"].get("Reason", ""),
                            f"{now - r['Since']:.0f}s",
                            _last_check(r, now),
                        )
                        for r in rows
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
