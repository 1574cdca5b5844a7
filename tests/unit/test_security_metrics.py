"""testbed metrics' security source: drop counters per port, group and ACL from flow stats
as the controller reports them (masked match values as lists)."""

from __future__ import annotations

from testbed.controllers.security import STAT_TABLES, SecurityLogic
from testbed.metrics.sources import SOURCES, SecurityDropSource
from tests.security_fixture import acl, entry, group, secured, tcp


def stats_of(plan, counts):
    """A StatsReply holding every flow of STAT_TABLES; counts: predicate -> packets."""
    logic = SecurityLogic(plan)
    switches = {}
    for s in plan.switches:
        flows = []
        for f in logic.flows_for(s.dpid):
            if f.table not in STAT_TABLES:
                continue
            match = {k: list(v) if isinstance(v, tuple) else v for k, v in f.match}
            packets = sum(n for pred, n in counts if pred(s.dpid, f))
            flows.append(
                {
                    "table": f.table,
                    "priority": f.priority,
                    "cookie": 1,
                    "match": match,
                    "packets": packets,
                    "bytes": 100 * packets,
                }
            )
        switches[str(s.dpid)] = {"ports": [], "flows": flows}
    return {"ok": True, "time": 0.0, "switches": switches, "missing": []}


def source_for(plan):
    return SecurityDropSource(None, plan)  # type: ignore[arg-type]  # (no lab: samples only)


def test_drops_per_port_group_and_acl():
    web = group("Web", ingress=(tcp(80),))
    ops = group("Ops", ingress=(tcp(22, cidr="10.0.3.0/24"),))
    nacl = acl("PrivAcl", ("PrivB",), entry(100, False, 6, "10.0.0.0/16", False, (23, 23)))
    plan = secured((web, ops), {"WebA2": ("Web", "Ops"), "WebB1": ("Web",)}, (nacl,))
    logic = SecurityLogic(plan)

    az_b = plan.switch(plan.host("WebB2").switch).dpid

    def deny_of(kind, name, only=None):
        return lambda dpid, f: (
            only in (None, dpid)
            and not f.actions
            and f.goto is None
            and logic.drop_owner(dpid, f.table, f.priority, dict(f.match)) == (kind, name)
        )

    stats = stats_of(
        plan,
        [
            (deny_of("sg-ingress", "WebA2"), 5),
            (deny_of("sg-egress", "WebB1"), 2),
            (deny_of("nacl-in", "PrivAcl", only=az_b), 7),  # ACL entries are on every switch
        ],
    )
    got = {(s.metric, s.target_group, s.target): s.value for s in source_for(plan).samples(stats)}
    assert got[("PortDrops", "ingress", "WebA2")] == 5
    assert got[("PortDrops", "egress", "WebA2")] == 0
    assert got[("PortDrops", "egress", "WebB1")] == 2
    # WebA2's drops count for both its groups; WebB1's for Web.
    assert got[("SecurityGroupDrops", "ingress", "Web")] == 5
    assert got[("SecurityGroupDrops", "ingress", "Ops")] == 5
    assert got[("SecurityGroupDrops", "egress", "Web")] == 2
    assert got[("SecurityGroupDrops", "egress", "Ops")] == 0
    # Both the explicit deny (rule 100) and the implicit one are the ACL's.
    assert got[("NetworkAclDrops", "in", "PrivAcl")] == 7 * 2
    assert got[("NetworkAclDrops", "out", "PrivAcl")] == 0
    assert {s.namespace for s in source_for(plan).samples(stats)} == {"Lab/Security"}


def test_registered_and_quiet_without_groups_or_acls():
    assert SOURCES["security"] is SecurityDropSource
    src = source_for(secured())
    assert src.snapshot() == []  # asks nothing of a lab that filters nothing
