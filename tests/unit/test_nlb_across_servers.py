"""NLB flows of a lab across servers (issue 18; testbed.controllers.nlb._across_servers)."""

from __future__ import annotations

from testbed.controllers.flows import TABLE_CLASSIFY, TABLE_ROUTE, TABLE_STEER, Output
from testbed.controllers.nlb import TABLE_REPLY_SNAT, NlbLogic
from testbed.model import load_model
from testbed.plan.network import build_plan


def logic(remote: bool) -> tuple:
    plan = build_plan(load_model("templates/nlb.yaml"), "m")
    azs = frozenset(s.name for s in plan.switches if s.role == "az")
    return plan, NlbLogic(plan, remote=azs if remote else frozenset())


def test_one_machine_flows_are_unchanged_without_remote_switches():
    plan, one = logic(remote=False)
    _, across = logic(remote=True)
    for sw in plan.switches:
        before = set(one.flows_for(sw.dpid))
        after = set(across.flows_for(sw.dpid))
        assert before <= after  # only additions across servers


def test_the_core_translates_back_replies_coming_up_from_another_servers_targets():
    plan, nlb = logic(remote=True)
    core = next(s for s in plan.switches if s.role == "core")
    flows = nlb.flows_for(core.dpid)
    classify = [f for f in flows if f.table == TABLE_CLASSIFY and f.priority == 310]
    steer = [f for f in flows if f.table == TABLE_STEER]
    targets = {t.ip for lb in plan.load_balancers for tg in lb.target_groups for t in tg.targets}
    assert {dict(f.match)["ipv4_src"] for f in classify} == targets
    # From the trunk of the target's AZ, tagged with the target's subnet, then conntrack.
    for f in classify:
        m = dict(f.match)
        host = next(h for h in plan.hosts if h.ip == m["ipv4_src"])
        trunk = next(x for x in plan.links if x.a == host.switch and x.b == core.name)
        assert m["in_port"] == trunk.b_port
        assert f.goto == TABLE_STEER
        assert f.metadata is not None
    assert {dict(f.match)["ipv4_src"] for f in steer} == targets
    assert any(f.table == TABLE_REPLY_SNAT and f.priority == 100 for f in flows)


def test_a_remote_targets_switch_sends_untranslated_replies_up_but_routes_local_ones():
    plan, nlb = logic(remote=True)
    az1 = next(s for s in plan.switches if s.role == "az")
    flows = nlb.flows_for(az1.dpid)
    up = [f for f in flows if f.table == TABLE_REPLY_SNAT and f.priority == 50]
    assert up
    assert all(f.actions == (Output(1),) for f in up)
    local = [f for f in flows if f.table == TABLE_REPLY_SNAT and f.priority == 60]
    here = {h.ip for h in plan.hosts if h.switch == az1.name}
    assert {dict(f.match)["ipv4_dst"] for f in local} == here
    assert all(f.goto == TABLE_ROUTE for f in local)


def test_a_remote_switch_translates_replies_routed_down_to_its_clients():
    """A VPC client's connection is committed on its own server: a reply from a target on
    another server that the core could not translate is routed down and translated there."""
    plan, nlb = logic(remote=True)
    az1, az2 = [s for s in plan.switches if s.role == "az"]
    flows = nlb.flows_for(az2.dpid)
    down = [f for f in flows if f.table == TABLE_CLASSIFY and f.priority == 310]
    others = {
        t.ip
        for lb in plan.load_balancers
        for tg in lb.target_groups
        for t in tg.targets
        if next(h for h in plan.hosts if h.ip == t.ip).switch == az1.name
    }
    assert {dict(f.match)["ipv4_src"] for f in down} == others
    assert {dict(f.match)["in_port"] for f in down} == {1}  # its uplink
    assert all(f.goto == TABLE_STEER for f in down)
