"""An Auto Scaling group over tests/handmade.py's two-AZ model (built by hand: no template
parser), for the plan and controller tests of launched instances.

Group "Web" launches into PrivA (10.0.1.0/24: WebA2 .4, WebA3 .5) and PrivB (10.0.3.0/24:
WebB2 .4) with security group "WebSg" (tcp 80 from anywhere); "Db" is a group that lets in
tcp 5432 from WebSg's members."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from testbed.model.autoscaling_types import AutoScalingGroup, LaunchSpec
from testbed.model.types import StackModel, frozen_map
from testbed.plan.instances import launch_host, with_host
from testbed.plan.network import NetworkPlan, SecurityGroupPlan, SgRulePlan, build_plan
from tests.handmade import two_az_model

ZONE_BASE = 0x4000
ALL = SgRulePlan(-1, cidr="0.0.0.0/0")
WEB_SG = SecurityGroupPlan("WebSg", "sg-web", "VPC", (SgRulePlan(6, 80, 80, "0.0.0.0/0"),), (ALL,))
DB_SG = SecurityGroupPlan(
    "DbSg", "sg-db", "VPC", (SgRulePlan(6, 5432, 5432, group="WebSg"),), (ALL,)
)


def launch_spec(**changes: Any) -> LaunchSpec:
    spec = LaunchSpec("WebLt", "launch-template", 1, "ami-0", "t3.micro", "#!/bin/sh\necho hi\n")
    return replace(spec, **changes)


def group_model(
    subnets: tuple[str, ...] = ("PrivA", "PrivB"),
    model: StackModel | None = None,
    **changes: Any,
) -> StackModel:
    """The two-AZ model with group "Web" (changes: more AutoScalingGroup fields)."""
    model = model or two_az_model()
    asg = AutoScalingGroup(
        logical_id="Web",
        name="stack-Web-ABC",
        min_size=0,
        max_size=100,
        desired=0,
        subnets=subnets,
        azs=tuple(model.subnets[s].az for s in subnets),
        launch=launch_spec(),
        security_groups=("WebSg",),
    )
    return replace(model, auto_scaling_groups=frozen_map({"Web": replace(asg, **changes)}))


def base_plan(model: StackModel) -> NetworkPlan:
    """The model's plan with the two groups (WebA2 carries DbSg)."""
    plan = build_plan(model, "t", zone_base=ZONE_BASE)
    hosts = tuple(
        replace(h, groups=("DbSg",), sg_zone=ZONE_BASE + 64 + 900) if h.name == "WebA2" else h
        for h in plan.hosts
    )
    return replace(plan, hosts=hosts, security_groups=(WEB_SG, DB_SG))


def launch(
    plan: NetworkPlan, model: StackModel, subnet: str, n: int, group: str = "Web"
) -> NetworkPlan:
    """The plan with instance `group`-n launched into `subnet`."""
    host = launch_host(plan, model, group, subnet, f"{group}-{n}", f"i-{n:017x}")
    return with_host(plan, host)
