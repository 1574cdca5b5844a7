"""Live updates of security: group rules, ACL entries, which groups a port carries and
which subnets an ACL covers change in a running lab (the controller reloads them); a change
that moves a port's conntrack zone (a port without groups getting some) needs down/up."""

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


def test_memberships_and_associations_are_live_unless_a_zone_moves():
    old = secured((WEB,), {"WebA2": ("Web",), "WebB2": ("Web",)}, (NACL,))
    regrouped = secured((WEB, group("Api")), {"WebA2": ("Web",), "WebB2": ("Api",)}, (NACL,))
    live, other, _ = plan_changes(old, regrouped)
    assert other == []
    assert any(c.startswith("memberships.WebB2.groups") for c in live), live
    wider = acl("PrivAcl", ("PrivA", "PrivB"), entry(100, False), entry(100, True))
    live, other, _ = plan_changes(
        old, secured((WEB,), {"WebA2": ("Web",), "WebB2": ("Web",)}, (wider,))
    )
    assert other == []
    assert any(c.startswith("network_acls.PrivAcl.subnets") for c in live), live
    assert any(c.startswith("acl_of_subnet.PrivB") for c in live), live
    assert security_changes(live) == live
    # A port that had no groups (its own zone is new): the zones move, down and up.
    moved = secured((WEB,), {"WebA2": ("Web",), "WebA1": ("Web",)}, (NACL,))
    _live, other, _ = plan_changes(old, moved)
    assert any(c.startswith("hosts.") for c in other), other


def test_nothing_changed_nothing_to_do():
    plan = secured((WEB,), {"WebA2": ("Web",)}, (NACL,))
    assert plan_changes(plan, plan) == ([], [], [])


def test_the_controller_answers_reload_security():
    assert "reload_security" in CONTROLLER_OPS
