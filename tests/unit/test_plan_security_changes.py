"""Which template changes a running lab takes live: security groups and NACLs do."""

from __future__ import annotations

from dataclasses import replace

from testbed.plan.changes import plan_changes, security_changes
from testbed.plan.network import (
    NaclEntryPlan,
    NaclPlan,
    SecurityGroupPlan,
    SgRulePlan,
    build_plan,
)
from tests.handmade import two_az_model


def _plan():
    plan = build_plan(two_az_model(), "secchg")
    web = SecurityGroupPlan(
        "Web", "sg-1", plan.vpcs[0].name, ingress=(SgRulePlan(6, 80, 80, "0.0.0.0/0"),)
    )
    hosts = tuple(replace(h, groups=("Web",)) if h.kind == "instance" else h for h in plan.hosts)
    return replace(plan, hosts=hosts, security_groups=(web,))


def test_rule_membership_and_nacl_changes_are_live_and_named():
    old = _plan()
    group = old.security_groups[0]
    more = replace(group, ingress=(*group.ingress, SgRulePlan(17, 9000, 9000, "10.0.0.0/16")))
    first = next(h for h in old.hosts if h.kind == "instance")
    hosts = tuple(replace(h, groups=()) if h.name == first.name else h for h in old.hosts)
    acl = NaclPlan(
        "Strict",
        old.vpcs[0].name,
        (old.subnets[0].name,),
        (NaclEntryPlan(100, False, 6, "10.0.0.0/16", True, (80, 80)),),
    )
    subnets = (replace(old.subnets[0], nacl="Strict"), *old.subnets[1:])
    new = replace(old, security_groups=(more,), hosts=hosts, network_acls=(acl,), subnets=subnets)
    assert plan_changes(old, new) == ([], [], [])
    found = security_changes(old, new)
    assert any(c.startswith("security_groups.Web.ingress") for c in found), found
    assert any(c.startswith(f"hosts.{first.name}.groups") for c in found), found
    assert any(c.startswith("network_acls") for c in found), found
    assert any(c.startswith(f"subnets.{old.subnets[0].name}.nacl") for c in found), found


def test_a_new_host_still_needs_down_and_up():
    old = _plan()
    extra = replace(old.hosts[0], name="Extra", ip="10.0.0.99")
    new = replace(old, hosts=(*old.hosts, extra))
    _live, other, _reload = plan_changes(old, new)
    assert any("Extra" in c for c in other)
    assert security_changes(old, old) == []
