"""A lab made of files only (state, plan, events; its holder: this process) for the console's
tests: no root, no network. extra_hosts adds that many instances (a 100-host lab)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from testbed import naming
from testbed.lab.events import EventLog
from testbed.lab.procs import start_time
from testbed.lab.state import write_state
from testbed.plan.network import build_plan
from testbed.stack.holder import host_listing
from tests.handmade import two_az_model

LAB = "cons"


def target_row(host: str, state: str, reason: str = "") -> dict[str, Any]:
    health = {"State": state, **({"Reason": reason} if reason else {})}
    return {
        "LoadBalancer": "MyNLB",
        "TargetGroup": "WebTargets",
        "Target": {"Id": f"i-{host}", "Port": 80, "AvailabilityZone": "us-east-1a"},
        "TargetHealth": health,
        "Host": host,
        "Since": 1.0,
    }


def make_lab(root: Path, extra_hosts: int = 0) -> Path:
    """A lab whose holder is this process (alive), made of its files only."""
    plan = build_plan(two_az_model(), LAB, zone_base=0)
    d = root / LAB
    d.mkdir(parents=True)
    (d / naming.PLAN_FILE).write_text(plan.to_json())
    hosts = host_listing(plan)
    for i in range(extra_hosts):
        hosts.append(
            {"name": f"Web{i:03d}", "kind": "instance", "ip": f"10.0.1.{i + 10}",
             "az": "us-east-1a" if i % 2 else "us-east-1b", "subnet": "PrivA" if i % 2 else "PrivB",
             "role": "http-backend", "interfaces": []}
        )  # fmt: skip
    write_state(
        d,
        {
            "name": LAB,
            "state": "CREATE_COMPLETE",
            "pid": os.getpid(),
            "pid_start": start_time(os.getpid()),
            "datapath": "netdev",
            "hosts": hosts,
            "load_balancers": [{"name": "MyNLB", "type": "network"}],
        },
    )
    EventLog(d).emit("WebA1", "AWS::EC2::Instance", "CREATE_COMPLETE")
    return d
