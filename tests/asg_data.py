"""What the Auto Scaling integration tests share: variants of templates/autoscaling.yaml and
the group facts they wait on (through the Lab API: lab.asg, lab.scale, lab.activities).

Variants are made from the example template's text (its intrinsics are YAML tags, which a
YAML round trip would lose): another time scale, extra group properties (hooks), the
target-tracking policy left out or replaced by other resources.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from testbed.lab.api import Lab
from testbed.paths import TEMPLATES

GROUP = "WebGroup"
TG = "WebTargets"
LB = "WebALB"
_POLICY_START = "  # ResourceLabel is app/"
_CLIENTS = "  Client1:\n"
_GROUP_PROPS_END = "      HealthCheckGracePeriod: 60\n"


def variant(
    tmp: Path,
    name: str,
    *,
    time_scale: float = 10,
    policy: bool = True,
    group_props: str = "",
    resources: str = "",
) -> str:
    """A copy of templates/autoscaling.yaml at `tmp/name`: TimeScale, with or without its
    target-tracking policy, `group_props` appended to WebGroup's Properties (indented 6),
    `resources` added before the clients (indented 2). Its path."""
    text = (TEMPLATES / "autoscaling.yaml").read_text()
    text = text.replace("    TimeScale: 10\n", f"    TimeScale: {time_scale:g}\n", 1)
    if not policy:
        start, end = text.index(_POLICY_START), text.index(_CLIENTS)
        text = text[:start] + text[end:]
    text = text.replace(_GROUP_PROPS_END, _GROUP_PROPS_END + group_props, 1)
    text = text.replace(_CLIENTS, resources + _CLIENTS, 1)
    path = tmp / name
    path.write_text(text)
    return str(path)


def group(lab: Lab, name: str = GROUP) -> dict[str, Any]:
    """The group as describe-auto-scaling-groups shows it."""
    return lab.asg_group(name)


def instances(lab: Lab, state: str | None = None) -> list[dict[str, Any]]:
    """The group's instances (in lifecycle `state` only, when given)."""
    return [i for i in group(lab)["Instances"] if state is None or i["LifecycleState"] == state]


def healthy_in_service(lab: Lab) -> list[dict[str, Any]]:
    """Instances InService and Healthy whose target is healthy in the target group."""
    healthy_ids = {
        row["Target"]["Id"] for row in lab.targets(TG) if row["TargetHealth"]["State"] == "healthy"
    }
    return [
        i
        for i in instances(lab, "InService")
        if i["HealthStatus"] == "Healthy" and i["InstanceId"] in healthy_ids
    ]


def wait_capacity(lab: Lab, n: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Wait until the group has exactly n instances, all InService and healthy in the target
    group (nothing Pending or Terminating left); those instances."""

    def settled() -> tuple[list[dict[str, Any]]] | None:
        every = instances(lab)
        ready = healthy_in_service(lab) if every else []
        # A tuple: true even when the list is empty (n = 0).
        return (ready,) if len(every) == n and len(ready) == n else None

    found = lab.wait_for(
        settled,
        timeout,
        f"{GROUP} to have {n} healthy instances InService and nothing else",
        interval=0.2,
        last=lambda: [
            (i["InstanceId"], i["LifecycleState"], i["HealthStatus"]) for i in instances(lab)
        ],
    )
    return found[0]


def activities(lab: Lab) -> list[dict[str, Any]]:
    return list(lab.activities(GROUP))
