"""Auto Scaling benchmarks: one instance launched into a running lab (to registered, to
healthy), a scale-out of many at once, and churn (hundreds of launches and terminations)
that must leave nothing behind.

templates/autoscaling.yaml without its policy, MaxSize `size`, TimeScale `time_scale`.
1. `launches` times: desired +1; seconds from the call to the instance's target registered in
   the ALB's target group (goal <= 1 s) and to healthy (goal <= 1 s + the health checks:
   interval x healthy threshold, scaled), then desired -1.
2. desired 1 -> `size` (goal: all InService and healthy within 20 s for 50).
3. `cycles` x (size -> 0 -> size): the lab's network namespaces, links, OVS ports, cgroups and
   processes after each scale-in equal those of the first (nothing accumulates), and after
   teardown nothing of the lab is left.
Writes launches.csv, scale_out.csv, churn.csv and summary.csv (numbers against the goals).
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

from testbed.lab.api import Lab, random_name
from testbed.lab.teardown import leftovers
from testbed.paths import REPO
from testbed.results import ResultsDir

TEMPLATE = "templates/autoscaling.yaml (policy removed; copied into the results)"
GROUP = "WebGroup"
TG = "WebTargets"
PARAMS = {
    "launches": (5, "single launches timed (1.)"),
    "size": (50, "instances of the scale-out (2.) and of each churn cycle (3.); MaxSize"),
    "cycles": (10, "churn cycles size -> 0 -> size (3.); 0: none"),
    "time_scale": (10.0, "Metadata.Lab.TimeScale"),
    "timeout": (300.0, "longest wait for one step, seconds"),
    "seed": (None, "recorded for re-runs (deterministic)"),
}
POLL_S = 0.02
GOALS = {"registered_s": 1.0, "scale_out_50_s": 20.0}
INTERVAL_S, HEALTHY_THRESHOLD = 10.0, 2  # the template's target group health check


def template_text(size: int, time_scale: float) -> str:
    """templates/autoscaling.yaml without its policy, TimeScale set, MaxSize default size."""
    text = (REPO / "templates" / "autoscaling.yaml").read_text()
    start, end = text.index("  # ResourceLabel is app/"), text.index("  Client1:\n")
    text = text[:start] + text[end:]
    text = text.replace("    TimeScale: 10\n", f"    TimeScale: {time_scale:g}\n", 1)
    return text


def counts(lab: str) -> dict[str, int]:
    """How many of each kind of thing lab `lab` has on the machine now (OVS ports too)."""
    found = leftovers(lab)
    ports = 0
    for bridge in found["bridges"]:
        out = subprocess.run(
            ["ovs-vsctl", "--timeout=10", "list-ports", bridge],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout
        ports += len(out.split())
    return {
        "namespaces": len(found["namespaces"]),
        "links": len(found["links"]),
        "ovs_ports": ports,
        "cgroups": len(found["cgroups"]),
        "processes": len(found["processes"]),
    }


def run(params: dict[str, Any], results: ResultsDir) -> dict[str, Any]:
    import pandas as pd

    size = int(params["size"])
    path = results.file("autoscaling.yaml")
    path.write_text(template_text(size, params["time_scale"]))
    stack = {"MaxSize": str(size), "MinSize": "0", "DesiredCapacity": "1"}
    summary: dict[str, Any] = {"time_scale": params["time_scale"], "size": size}
    with Lab.up(str(path), params=stack, name=random_name("ba")) as lab:
        name = lab.name
        _settle(lab, 1, params["timeout"])
        launches = pd.DataFrame([_one_launch(lab, params) for _ in range(params["launches"])])
        launches.to_csv(results.file("launches.csv"), index=False)
        scale_out = pd.DataFrame([_scale_out(lab, size, params["timeout"])])
        scale_out.to_csv(results.file("scale_out.csv"), index=False)
        churn = pd.DataFrame(_churn(lab, size, params))
        churn.to_csv(results.file("churn.csv"), index=False)
    left = leftovers(name)
    health_s = INTERVAL_S * HEALTHY_THRESHOLD / params["time_scale"]
    if len(launches):
        summary.update(
            registered_median_s=float(launches["registered_s"].median()),
            registered_max_s=float(launches["registered_s"].max()),
            registered_goal_s=GOALS["registered_s"],
            healthy_median_s=float(launches["healthy_s"].median()),
            healthy_max_s=float(launches["healthy_s"].max()),
            healthy_goal_s=GOALS["registered_s"] + health_s,
        )
    summary.update(
        scale_out_in_service_s=float(scale_out["in_service_s"].iloc[0]),
        scale_out_healthy_s=float(scale_out["healthy_s"].iloc[0]),
        scale_out_goal_s=GOALS["scale_out_50_s"] * size / 50,
        launches_and_terminations=int(churn["launched"].sum()) if len(churn) else 0,
        churn_grew=bool(churn["grew"].any()) if len(churn) else False,
        left_after_teardown=sum(len(v) for v in left.values()),
        left_detail={k: v for k, v in left.items() if v},
    )
    pd.DataFrame([summary]).to_csv(results.file("summary.csv"), index=False)
    print("\n" + pd.DataFrame([summary]).T.to_string(header=False))
    return summary


def _group(lab: Lab) -> dict[str, Any]:
    return lab.asg_group(GROUP)


def _target_states(lab: Lab) -> dict[str, str]:
    return {r["Target"]["Id"]: r["TargetHealth"]["State"] for r in lab.targets(TG)}


def _settle(lab: Lab, n: int, timeout: float) -> None:
    """Wait until exactly n instances exist, all InService and healthy in the target group."""

    def settled() -> bool:
        every = _group(lab)["Instances"]
        states = _target_states(lab)
        return len(every) == n and all(
            i["LifecycleState"] == "InService" and states.get(i["InstanceId"]) == "healthy"
            for i in every
        )

    lab.wait_for(settled, timeout, f"{GROUP} settled at {n}", interval=0.1)


def _one_launch(lab: Lab, params: dict[str, Any]) -> dict[str, float]:
    """desired +1: seconds to the new target registered, healthy, the instance InService."""
    before = {i["InstanceId"] for i in _group(lab)["Instances"]}
    n = len(before)
    t0 = time.time()
    lab.scale(GROUP, desired=n + 1)
    seen: dict[str, float] = {}

    def progressed() -> bool:
        now = time.time()
        new = [i for i in _group(lab)["Instances"] if i["InstanceId"] not in before]
        states = _target_states(lab)
        for inst in new:
            state = states.get(inst["InstanceId"])
            if state is not None:
                seen.setdefault("registered_s", now - t0)
            if state == "healthy":
                seen.setdefault("healthy_s", now - t0)
            if inst["LifecycleState"] == "InService":
                seen.setdefault("in_service_s", now - t0)
        return len(seen) == 3

    lab.wait_for(progressed, params["timeout"], "a launched instance healthy", interval=POLL_S)
    print(
        f"  launch: registered {seen['registered_s']:.2f} s, healthy {seen['healthy_s']:.2f} s",
        flush=True,
    )
    lab.scale(GROUP, desired=n)
    _settle(lab, n, params["timeout"])
    return seen


def _scale_out(lab: Lab, size: int, timeout: float) -> dict[str, float]:
    """desired 1 -> size: seconds until all InService, and until all healthy in the ALB."""
    t0 = time.time()
    lab.scale(GROUP, desired=size)
    got: dict[str, float] = {}

    def done() -> bool:
        now = time.time()
        every = _group(lab)["Instances"]
        in_service = [i for i in every if i["LifecycleState"] == "InService"]
        if len(in_service) >= size:
            got.setdefault("in_service_s", now - t0)
        states = _target_states(lab)
        if sum(1 for i in in_service if states.get(i["InstanceId"]) == "healthy") >= size:
            got.setdefault("healthy_s", now - t0)
        return len(got) == 2

    lab.wait_for(done, timeout, f"{size} instances InService and healthy", interval=0.1)
    print(
        f"  1 -> {size}: InService after {got['in_service_s']:.1f} s, "
        f"healthy after {got['healthy_s']:.1f} s",
        flush=True,
    )
    return {"size": size, **got}


def _churn(lab: Lab, size: int, params: dict[str, Any]) -> list[dict[str, Any]]:
    """cycles x (size -> 0 -> size); the lab's counts at each empty point against the first."""
    rows: list[dict[str, Any]] = []
    first: dict[str, int] | None = None
    for cycle in range(1, params["cycles"] + 1):
        t0 = time.time()
        lab.scale(GROUP, desired=0, min=0)
        _settle(lab, 0, params["timeout"])
        t1 = time.time()
        empty = counts(lab.name)
        first = first or empty
        lab.scale(GROUP, desired=size)
        _settle(lab, size, params["timeout"])
        t2 = time.time()
        grew = {k: v - first[k] for k, v in empty.items() if v != first[k]}
        rows.append(
            {
                "cycle": cycle,
                "scale_in_s": t1 - t0,
                "scale_out_s": t2 - t1,
                "launched": size,
                "terminated": size,
                **{f"empty_{k}": v for k, v in empty.items()},
                "grew": bool(grew),
            }
        )
        print(
            f"  cycle {cycle}: {size} -> 0 in {t1 - t0:.1f} s, 0 -> {size} in {t2 - t1:.1f} s"
            + (f"; grew {grew}" if grew else ""),
            flush=True,
        )
    return rows
