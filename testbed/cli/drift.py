"""testbed drift: how a running lab differs from its template, like AWS's detect-stack-drift."""

from __future__ import annotations

import json
from typing import Any

from testbed.cli.common import subcommand, table
from testbed.errors import BadInput
from testbed.lab import drift
from testbed.lab.api import Lab

EXIT_DRIFTED = 3

EPILOG = f"""\
examples:
  testbed drift alb                      one row per checked resource, then the differences
  testbed drift alb --json               AWS's JSON (see below)
  testbed drift web --stack extra        a stack added with `testbed up T --into web`
  testbed drift alb --status MODIFIED,DELETED
  testbed drift alb || echo "exit $?"    3 when drifted

What is compared (as on AWS, only what the template sets):
  AWS::ElasticLoadBalancingV2::TargetGroup   its Targets (Id, Port) against the targets
      registered now (testbed register / deregister, the Lab API): a target deregistered
      by hand is REMOVE /Targets/N, one registered by hand ADD; a draining target counts
      as gone. A group whose template lists no Targets (Auto Scaling fills it) is not
      compared: IN_SYNC.
  AWS::ElasticLoadBalancing::LoadBalancer   its Instances, the same way (/Instances/N;
      testbed register / deregister LAB MyCLB INSTANCE).
  AWS::EC2::Instance   DELETED when its host is gone; MODIFIED (/Metadata/Lab/Role/State)
      when its role no longer runs (testbed fault LAB HOST stop) or no longer listens on
      its ports (testbed fault LAB HOST refuse).
  AWS::ElasticLoadBalancingV2::ListenerRule   the Conditions every ALB node's HAProxy runs
      (changed by hand through its runtime API: `add acl`, `del acl`, `clear acl` on
      hosts/NODE/haproxy.sock) against the haproxy.cfg written from the template:
      /Conditions/N/PathPatternConfig/Values/M and so on; the lab adds "Nodes" (which
      nodes run the difference). A haproxy.cfg edited and reloaded by hand shows when it
      drops or adds a rule's conditions or values, not when it rewrites a pattern in place.
NOT_CHECKED (listed, never drift): every other type - VPCs, subnets, routes, security
groups (the controller does not report the rules it runs), load balancers, listeners and
their default actions, NLB/GWLB flows, a classic load balancer's listeners, Auto Scaling,
lab types.
Faults that keep a role listening (500, delay, hang) are not drift.

JSON: describe-stack-drift-detection-status's fields (StackId, StackDriftDetectionId,
StackDriftStatus IN_SYNC | DRIFTED, DetectionStatus, DriftedStackResourceCount,
Timestamp) and StackResourceDrifts as describe-stack-resource-drifts gives them
(LogicalResourceId, PhysicalResourceId, ResourceType, ExpectedProperties,
ActualProperties, PropertyDifferences [{{PropertyPath, ExpectedValue, ActualValue,
DifferenceType ADD | REMOVE | NOT_EQUAL}}], StackResourceDriftStatus, Timestamp). Unlike
AWS, NOT_CHECKED resources are listed too, with the lab's "Reason".

exit status: 0 IN_SYNC, {EXIT_DRIFTED} DRIFTED (the idea of terraform plan -detailed-exitcode,
whose 2 is testbed's bad input), 1 when the lab could not be read, 2 on bad input (no such
lab or stack)."""


def register(sub: Any) -> None:
    p = subcommand(
        sub,
        "drift",
        cmd_drift,
        "compare a running lab with its template, like aws cloudformation detect-stack-drift",
        epilog=EPILOG,
    )
    p.add_argument("name", help="lab name")
    p.add_argument("--stack", help="one of the lab's stacks (default: the lab's first)")
    p.add_argument(
        "--status",
        help="only resources in these states, comma-separated (IN_SYNC, MODIFIED, DELETED, "
        "NOT_CHECKED), like --stack-resource-drift-status-filters",
    )
    p.add_argument("--json", action="store_true", help="JSON (see below)")


def cmd_drift(args: Any) -> int:
    wanted = _statuses(args.status)
    report = Lab(args.name).drift(args.stack)
    if wanted is not None:
        report["StackResourceDrifts"] = [
            r for r in report["StackResourceDrifts"] if r["StackResourceDriftStatus"] in wanted
        ]
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report))
    return EXIT_DRIFTED if report["StackDriftStatus"] == drift.DRIFTED else 0


def _statuses(text: str | None) -> set[str] | None:
    if not text:
        return None
    wanted = {s.strip().upper() for s in text.split(",") if s.strip()}
    unknown = wanted - set(drift.STATUSES)
    if unknown:
        raise BadInput(
            f"unknown drift status {', '.join(sorted(unknown))}",
            hint=f"use {', '.join(drift.STATUSES)}",
        )
    return wanted


def render(report: dict[str, Any]) -> str:
    """The text form: a summary line, one row per checked resource, the differences, and
    the NOT_CHECKED resources in one line."""
    rows = report["StackResourceDrifts"]
    checked = [r for r in rows if r["StackResourceDriftStatus"] != drift.NOT_CHECKED]
    skipped = [r for r in rows if r["StackResourceDriftStatus"] == drift.NOT_CHECKED]
    out = [
        f"Stack {report['StackName']}: {report['StackDriftStatus']} "
        f"({report['DriftedStackResourceCount']} drifted, checked at {report['Timestamp']})"
    ]
    if checked:
        out += [
            "",
            table(
                [
                    (
                        r["LogicalResourceId"],
                        r["ResourceType"],
                        r["StackResourceDriftStatus"],
                        r.get("Reason") or "",
                    )
                    for r in checked
                ],
                ["RESOURCE", "TYPE", "DRIFT", "NOTE"],
            ),
        ]
    diffs = [
        (
            r["LogicalResourceId"],
            d["PropertyPath"],
            d["DifferenceType"],
            d["ExpectedValue"],
            d["ActualValue"] + (f"  (on {', '.join(d['Nodes'])})" if d.get("Nodes") else ""),
        )
        for r in checked
        for d in r["PropertyDifferences"]
    ]
    if diffs:
        out += ["", table(diffs, ["RESOURCE", "PROPERTY", "DIFFERENCE", "EXPECTED", "ACTUAL"])]
    if skipped:
        out += [
            "",
            f"NOT_CHECKED ({len(skipped)}): " + ", ".join(r["LogicalResourceId"] for r in skipped),
        ]
    return "\n".join(out)
