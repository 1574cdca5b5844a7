"""testbed asg | scale | alarms: Auto Scaling groups and CloudWatch alarms of a running lab."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from testbed.cli.common import subcommand, table
from testbed.errors import BadInput
from testbed.lab.api import Lab

ASG_EPILOG = """\
examples:
  testbed asg web                         every group: capacity, then each instance
  testbed asg web WebGroup --json         describe-auto-scaling-groups as JSON
  testbed asg web WebGroup --watch 1      refresh every second (Ctrl-C to stop)
  testbed asg web WebGroup activities     scaling activities, newest first
  testbed asg web WebGroup activities --limit 5 --json
  testbed asg web WebGroup complete-lifecycle --hook Launching --instance WebGroup-3

GROUP is the group's logical id or its AutoScalingGroupName. Instances are lab hosts named
GROUP-1, GROUP-2, ... (testbed exec takes them); INSTANCE is that name or the i-... id.
Lifecycle: Pending -> (Pending:Wait) -> InService -> Terminating (draining) -> Terminated."""

SCALE_EPILOG = """\
examples:
  testbed scale web WebGroup --desired 4     set-desired-capacity
  testbed scale web WebGroup --desired 1     scale in: instances drain, then terminate
  testbed scale web WebGroup --min 2 --max 8 --desired 3

A desired capacity outside MinSize..MaxSize is refused with AWS's message (exit 2).
--honor-cooldown refuses the change while the group's cooldown runs, as the AWS option."""

ALARMS_EPILOG = """\
examples:
  testbed alarms web                 state, reason and last datapoints of every alarm
  testbed alarms web --watch 2       refresh every 2 seconds
  testbed alarms web --json          describe-alarms' MetricAlarms as JSON

Target tracking policies make their own alarms (TargetTracking-...-AlarmHigh/-AlarmLow),
listed here like the template's. Periods run at the lab's time scale."""

ACTIONS = ("activities", "complete-lifecycle")


def register(sub: Any) -> None:
    p = subcommand(
        sub,
        "asg",
        cmd_asg,
        "Auto Scaling groups: capacity, instances, activities (describe-auto-scaling-groups)",
        epilog=ASG_EPILOG,
    )
    p.add_argument("name", help="lab name")
    p.add_argument("group", nargs="?", help="only this group (logical id or name)")
    p.add_argument(
        "action",
        nargs="?",
        choices=ACTIONS,
        help="activities: the group's scaling activities; complete-lifecycle: let an "
        "instance waiting in a lifecycle hook go on",
    )
    p.add_argument("--json", action="store_true", help="JSON as the AWS CLI prints it")
    p.add_argument(
        "--watch",
        type=float,
        nargs="?",
        const=2.0,
        metavar="SECONDS",
        help="print again every SECONDS (2 when not given)",
    )
    p.add_argument("--limit", type=int, help="activities: only the newest N")
    p.add_argument("--hook", help="complete-lifecycle: the lifecycle hook's name")
    p.add_argument("--instance", help="complete-lifecycle: instance id (i-...) or host name")
    p.add_argument(
        "--result",
        choices=("CONTINUE", "ABANDON"),
        default="CONTINUE",
        help="complete-lifecycle: CONTINUE (default) or ABANDON",
    )

    p = subcommand(
        sub,
        "scale",
        cmd_scale,
        "set a group's desired capacity (and min/max), like set-desired-capacity",
        epilog=SCALE_EPILOG,
    )
    p.add_argument("name", help="lab name")
    p.add_argument("group", help="the group's logical id or name")
    p.add_argument("--desired", type=int, help="DesiredCapacity")
    p.add_argument("--min", type=int, help="MinSize")
    p.add_argument("--max", type=int, help="MaxSize")
    p.add_argument(
        "--honor-cooldown",
        action="store_true",
        help="refuse while the group's cooldown runs (AWS's --honor-cooldown)",
    )

    p = subcommand(
        sub,
        "alarms",
        cmd_alarms,
        "CloudWatch alarms: state, reason, recent datapoints (describe-alarms)",
        epilog=ALARMS_EPILOG,
    )
    p.add_argument("name", help="lab name")
    p.add_argument("--json", action="store_true", help="JSON: {MetricAlarms: [...]}")
    p.add_argument(
        "--watch",
        type=float,
        nargs="?",
        const=2.0,
        metavar="SECONDS",
        help="print again every SECONDS (2 when not given)",
    )


def _watching(args: Any, show: Callable[[], None]) -> int:
    while True:
        show()
        if not args.watch:
            return 0
        time.sleep(args.watch)
        print()


# ---- rendering (pure: tested without a lab) ----------------------------------------------
def launch_text(instance: dict[str, Any]) -> str:
    """An instance's launch template and version (or launch configuration)."""
    lt = instance.get("LaunchTemplate")
    if lt:
        return f"{lt.get('LaunchTemplateName', '?')} v{lt.get('Version', '?')}"
    return instance.get("LaunchConfigurationName") or "-"


def groups_text(groups: list[dict[str, Any]]) -> str:
    """One line per group (min/desired/max, InService), then a table of its instances."""
    blocks = []
    for g in groups:
        instances = g.get("Instances", [])
        in_service = sum(1 for i in instances if i.get("LifecycleState") == "InService")
        scale = g.get("TimeScale", 1)
        head = (
            f"{g.get('LogicalId', '')} ({g['AutoScalingGroupName']}): min {g['MinSize']}, "
            f"desired {g['DesiredCapacity']}, max {g['MaxSize']}; {in_service} InService"
            + (f"; time scale {scale:g}" if scale != 1 else "")
            + "".join(
                f"; {what} {', '.join(g[key])}"
                for key, what in (
                    ("TargetGroupARNs", "target groups"),
                    ("LoadBalancerNames", "classic load balancers"),
                )
                if g.get(key)
            )
        )
        rows = [
            (
                i["InstanceId"],
                i.get("Host", "-"),
                i.get("AvailabilityZone", "-"),
                i.get("LifecycleState", "-"),
                i.get("HealthStatus", "-"),
                launch_text(i),
            )
            for i in instances
        ]
        body = (
            table(rows, ["INSTANCE", "HOST", "AZ", "LIFECYCLE", "HEALTH", "LAUNCHED FROM"])
            if rows
            else "(no instances)"
        )
        blocks.append(head + "\n" + body)
    return "\n\n".join(blocks) if blocks else "no Auto Scaling groups"


def activities_text(activities: list[dict[str, Any]]) -> str:
    rows = [
        (
            a.get("StartTime", ""),
            a.get("EndTime", "-"),
            a.get("StatusCode", ""),
            a.get("Description", ""),
        )
        for a in activities
    ]
    causes = [f"  {a.get('Description', '')}\n    cause: {a.get('Cause', '')}" for a in activities]
    if not rows:
        return "no activities"
    return table(rows, ["START", "END", "STATUS", "DESCRIPTION"]) + "\n\n" + "\n".join(causes)


def alarms_text(alarms: list[dict[str, Any]]) -> str:
    if not alarms:
        return "no alarms"
    rows = []
    for a in alarms:
        points = [p.get("Value") for p in a.get("RecentDatapoints", [])]
        shown = " ".join("-" if v is None else f"{v:g}" for v in points[-5:])
        rows.append(
            (
                a["AlarmName"],
                a["StateValue"],
                f"{a.get('Namespace', '')} {a.get('MetricName', '')}",
                f"{_operator(a.get('ComparisonOperator', ''))} {a.get('Threshold', 0):g}",
                shown or "-",
            )
        )
    reasons = [f"  {a['AlarmName']}: {a.get('StateReason', '')}" for a in alarms]
    return (
        table(rows, ["ALARM", "STATE", "METRIC", "THRESHOLD", "LAST DATAPOINTS"])
        + "\n\n"
        + "\n".join(reasons)
    )


def _operator(comparison: str) -> str:
    return {
        "GreaterThanOrEqualToThreshold": ">=",
        "GreaterThanThreshold": ">",
        "LessThanThreshold": "<",
        "LessThanOrEqualToThreshold": "<=",
    }.get(comparison, comparison)


# ---- commands ----------------------------------------------------------------------------
def cmd_asg(args: Any) -> int:
    lab = Lab.attach(args.name)
    if args.action == "complete-lifecycle":
        if not args.group or not args.hook or not args.instance:
            raise BadInput("complete-lifecycle needs GROUP, --hook and --instance")
        lab.complete_lifecycle(args.group, args.hook, args.instance, args.result)
        print(f"{args.instance}: lifecycle action {args.hook} completed with {args.result}")
        return 0
    if args.action == "activities":
        if not args.group:
            raise BadInput("activities needs GROUP (testbed asg NAME GROUP activities)")

        def show_activities() -> None:
            acts = lab.activities(args.group, args.limit)
            if args.json:
                print(json.dumps({"Activities": acts}, indent=1))
            else:
                print(activities_text(acts))

        return _watching(args, show_activities)

    def show_groups() -> None:
        groups = lab.asg(args.group)
        if args.json:
            print(json.dumps({"AutoScalingGroups": groups}, indent=1))
        else:
            print(groups_text(groups))

    return _watching(args, show_groups)


def cmd_scale(args: Any) -> int:
    if args.desired is None and args.min is None and args.max is None:
        raise BadInput("nothing to change: give --desired, --min or --max")
    lab = Lab.attach(args.name)
    group = lab.scale(args.group, args.desired, args.min, args.max, args.honor_cooldown)
    print(
        f"{group['AutoScalingGroupName']}: min {group['MinSize']}, desired "
        f"{group['DesiredCapacity']}, max {group['MaxSize']}"
        f"\n  testbed asg {args.name} {args.group} --watch 1    to follow it"
    )
    return 0


def cmd_alarms(args: Any) -> int:
    lab = Lab.attach(args.name)

    def show() -> None:
        alarms = lab.alarms()
        if args.json:
            print(json.dumps({"MetricAlarms": alarms}, indent=1))
        else:
            print(alarms_text(alarms))

    return _watching(args, show)
