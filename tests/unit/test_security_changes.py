"""Live updates of security: group rules and ACL entries change in a running lab (the
controller reloads them), which ports carry which groups and which subnets an ACL covers
need down/up."""

from __future__ import annotations

from testbed.messages import CONTROLLER_OPS
from testbed.plan.changes import plan_changes, security_changes
from tests.security_fixture import acl, entry, group, secured, tcp

WEB = group("Web", ingress=(tcp(80), tcp(22, cidr="10.0.3.0/24")))
NACL = acl("PrivAcl", ("PrivA",), entry(100, False), entry(100, True))


def test_a_removed_rule_and_changed_acl_entries_are_live():
    old = secured((WEB,), {"WebA2": ("Web",)}, (NACL,))
    fewer = group("Web", ingress=(tcp(80),))
    stricter = acl("PrivAcl", ("PrivA",), entry(100, False, 6, ports=(80, 80)), entry(100, True))
    new = secured((fewer,), {"WebA2": ("Web",)}, (stricter,))
    live, other, reload = plan_changes(old, new)
    assert other == []
    assert reload == []
    assert live
    assert security_changes(live) == live
    assert any(c.startswith("security_groups.Web.ingress") for c in live)
    assert any(c.startswith("network_acls.PrivAcl.entries") for c in live)


def test_membership_and_associations_need_down_and_up():
    old = secured((WEB,), {"WebA2": ("Web",)}, (NACL,))
    moved = secured((WEB,), {"WebB2": ("Web",)}, (NACL,))
    live, other, _ = plan_changes(old, moved)
    assert any(c.startswith("hosts.") for c in other)
    wider = acl("PrivAcl", ("PrivA", "PrivB"), entry(100, False), entry(100, True))
    live, other, _ = plan_changes(old, secured((WEB,), {"WebA2": ("Web",)}, (wider,)))
    assert other
    assert not security_changes(live)


def test_nothing_changed_nothing_to_do():
    plan = secured((WEB,), {"WebA2": ("Web",)}, (NACL,))
    assert plan_changes(plan, plan) == ([], [], [])


def test_the_controller_answers_reload_security():
    assert "reload_security" in CONTROLLER_OPS
