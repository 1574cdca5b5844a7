"""The controller's reload_plan on a real lab: a host added to the plan file gets its flows on
its switch once the op returns, and taking it out again leaves the switches exactly as they
were (the controller's part of launching and terminating an instance; the launcher's part,
the host itself, is tests/integration/test_instance_launch.py)."""

from __future__ import annotations

import os
import re
import time

import pytest

from testbed import asks, naming
from testbed.lab import system
from testbed.lab.api import Lab, random_name
from testbed.model import load_model
from testbed.paths import TEMPLATES
from testbed.plan.instances import launch_host, with_host
from testbed.plan.network import NetworkPlan
from tests.asg_fixture import group_model

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a real lab)"),
]

# Counters and ages change between two dumps of the same flow.
VOLATILE = re.compile(r"(duration|n_packets|n_bytes|idle_age|hard_age)=[^,]*, ?")


def flows(lab: str, bridge: str) -> list[str]:
    out = system.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", bridge]).stdout
    return sorted(VOLATILE.sub("", line).strip() for line in out.splitlines()[1:])


def for_port(lines: list[str], port: int) -> list[str]:
    return [x for x in lines if re.search(rf"(in_port={port}\b|output:{port}\b)", x)]


def publish(lab: Lab, plan: NetworkPlan) -> None:
    """What the holder does: write the plan file atomically, then ask the controller."""
    tmp = lab.dir / (naming.PLAN_FILE + ".tmp")
    tmp.write_text(plan.to_json())
    os.replace(tmp, lab.dir / naming.PLAN_FILE)
    asks.controller_reload_plan(str(lab.dir / naming.CONTROLLER_SOCK))


@pytest.mark.serial  # a 1 s bound on reload_plan: measured on a quiet machine
def test_a_host_added_and_removed_in_the_plan_file():
    template = str(TEMPLATES / "default.yaml")
    with Lab.up(template, name=random_name("p")) as lab:
        plan = lab.plan
        web = next(h for h in plan.hosts if h.kind == "instance" and h.groups)
        model = group_model(
            subnets=(web.subnet,),
            model=load_model(template),
            security_groups=web.groups,
        )
        host = launch_host(plan, model, "Web", web.subnet, "Web-1", "i-0000000000000001")
        before = flows(lab.name, host.switch)
        assert for_port(before, host.port) == []
        start = time.monotonic()
        publish(lab, with_host(plan, host))
        took = time.monotonic() - start
        print(f"reload_plan with one more host: {took:.3f} s")
        assert took < 1.0  # a launch's share of the 1 s budget to a registered instance
        grown = flows(lab.name, host.switch)
        assert for_port(grown, host.port), "\n".join(grown)
        assert any(host.ip in x for x in grown)
        publish(lab, plan)
        assert flows(lab.name, host.switch) == before
        assert asks.controller_status(str(lab.dir / naming.CONTROLLER_SOCK))["errors"] == []
