"""The GWLB datapath decision (switch | node) and what the switch datapath makes (pure)."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest

from testbed.lab import gwlb_switch
from testbed.lab.procs import start_time
from testbed.plan.balancers import GENEVE_OFPORT_BASE
from testbed.plan.gwlb_datapath import (
    AUTO,
    NODE,
    SWITCH,
    MachineFacts,
    OvsRoute,
    TunnelRoute,
    appliance_links,
    carried,
    decide,
    for_datapath,
    gwlb_nodes,
    parse_routes,
    plumbing,
)
from testbed.plan.network import NetworkPlan
from tests.unit.plan_golden import plan_of

NOTE = "OVS 3.1.0 userspace, geneve + TLV class 0x0108"
ROUTES = """Route Table:
Cached: 127.0.0.1/32 dev lo SRC 127.0.0.1 local
Cached: 192.0.2.2/32 dev eth0 SRC 192.0.2.2 local
Cached: ::1/128 dev lo SRC ::1 local
Cached: 192.0.2.0/24 dev eth0 SRC 192.0.2.2
Cached: 0.0.0.0/0 dev eth0 GW 192.0.2.1 SRC 192.0.2.2
Cached: fd00::/64 dev eth0 SRC fd00::2
User: 10.215.2.0/24 MARK 21 dev spk15-g0 GW 10.215.4.1 SRC 10.215.4.5
"""


@pytest.fixture(scope="module")
def gwlb() -> NetworkPlan:
    return plan_of("templates/gwlb.yaml")  # lab "lab": two GWLB nodes, four appliances


def facts(**kw) -> MachineFacts:
    base = MachineFacts(True, NOTE, "user", {"192.0.2.2": "eth0"}, parse_routes(ROUTES))
    return replace(base, **kw)


def test_auto_is_switch_where_nothing_is_in_the_way(gwlb):
    decision = decide(gwlb, AUTO, facts())
    assert (decision.datapath, decision.reason, decision.refused) == (SWITCH, "", False)
    plan = for_datapath(gwlb, decision)
    assert plan.gwlb_datapath == SWITCH
    nodes = [n for _, n in gwlb_nodes(plan)]
    assert [(n.host, n.tunnel_port) for n in nodes] == [
        ("GWLB-1a", GENEVE_OFPORT_BASE),
        ("GWLB-1b", GENEVE_OFPORT_BASE + 1),
    ]
    # plan.json carries them, and reads back the same.
    assert NetworkPlan.from_json(plan.to_json()) == plan
    assert '"tunnel_port": 64001' in plan.to_json()


def test_node_plan_is_the_plan_as_built(gwlb):
    for wanted in (NODE, AUTO):
        decision = decide(gwlb, wanted, facts(capable=wanted == NODE))
        assert decision.datapath == NODE
        plan = for_datapath(gwlb, decision)
        assert [n.tunnel_port for _, n in gwlb_nodes(plan)] == [None, None]
    assert for_datapath(gwlb, decide(gwlb, NODE, facts())).to_json() == gwlb.to_json()
    assert "tunnel_port" not in gwlb.to_json()
    assert "gwlb_datapath" not in gwlb.to_json()


def test_missing_capability_falls_back_or_refuses(gwlb):
    missing = facts(capable=False, capability_note="OVS 2.9 has no geneve interface type")
    auto = decide(gwlb, AUTO, missing)
    assert auto.datapath == NODE
    assert "no geneve interface type" in auto.reason
    plan = for_datapath(gwlb, auto)
    assert plan.gwlb_datapath_reason == auto.reason
    assert NetworkPlan.from_json(plan.to_json()).gwlb_datapath_reason == auto.reason
    switch = decide(gwlb, SWITCH, missing)
    assert switch.refused
    assert switch.datapath == NODE


def test_kernel_datapath_is_not_built(gwlb):
    decision = decide(gwlb, AUTO, facts(datapath="kernel"))
    assert decision.datapath == NODE
    assert "kernel" in decision.reason


def test_another_labs_node_address_blocks(gwlb):
    taken = facts(root_addresses={"10.0.1.6": "tb-other-v11", "192.0.2.2": "eth0"})
    decision = decide(gwlb, AUTO, taken)
    assert decision.datapath == NODE
    assert "10.0.1.6 is already on tb-other-v11" in decision.reason
    assert "(lab other)" in decision.reason
    # The lab's own veth (its plumbing made again) is no obstacle.
    own = facts(root_addresses={"10.0.0.6": "tb-lab-v10"})
    assert decide(gwlb, AUTO, own).datapath == SWITCH


def test_another_labs_route_blocks(gwlb):
    wider = OvsRoute("10.0.0.0/8", "tb-other-v10", user=True, gateway="10.0.0.1")
    decision = decide(gwlb, AUTO, facts(routes=(*parse_routes(ROUTES), wider)))
    assert decision.datapath == NODE
    assert "10.0.0.0/16 (the appliances' VPC) meets 10.0.0.0/8 dev tb-other-v10" in decision.reason
    # A kernel route more specific than the VPC, to an appliance, would take its tunnels.
    kernel = OvsRoute("10.0.1.0/24", "docker0", user=False)
    assert decide(gwlb, AUTO, facts(routes=(kernel,))).datapath == NODE
    # ... one that reaches no appliance, or a wider one (the default route), does not.
    elsewhere = OvsRoute("10.0.9.0/24", "docker0", user=False)
    assert decide(gwlb, AUTO, facts(routes=(elsewhere,))).datapath == SWITCH
    mine = OvsRoute("10.0.0.0/16", "tb-lab-v10", user=True)
    assert decide(gwlb, AUTO, facts(routes=(mine,))).datapath == SWITCH


def test_a_lab_without_gwlb_stays_as_it_is():
    nlb = plan_of("templates/nlb.yaml")
    for wanted in (AUTO, SWITCH, NODE):
        decision = decide(nlb, wanted, facts(capable=False))
        assert (decision.datapath, decision.reason, decision.refused) == (NODE, "", False)
    assert plumbing(for_datapath(nlb, decide(nlb, AUTO, facts()))).tunnels == ()


def test_unknown_choice():
    with pytest.raises(ValueError, match="unknown GWLB datapath"):
        decide(plan_of("templates/gwlb.yaml"), "fast", facts())


def test_plumbing_of_the_switch_datapath(gwlb):
    plan = for_datapath(gwlb, decide(gwlb, AUTO, facts()))
    made = plumbing(plan)
    assert [
        (t.port, t.ofport, t.bridge, t.veth, t.ip, t.prefixlen, t.mac) for t in made.tunnels
    ] == [
        ("tb-lab-g0", 64000, "tb-lab-az1", "tb-lab-v10", "10.0.0.6", 24, "02:00:0a:00:00:06"),
        ("tb-lab-g1", 64001, "tb-lab-az2", "tb-lab-v11", "10.0.1.6", 24, "02:00:0a:00:01:06"),
    ]
    # One route for the VPC holding the appliances, through the first node's veth.
    assert made.routes == (
        TunnelRoute("10.0.0.0/16", "tb-lab-v10", "10.0.0.1", "tb-lab-az1", plan.router_mac),
    )
    assert made.mtu_veths == ("tb-lab-v1", "tb-lab-v2", "tb-lab-v3", "tb-lab-v4")
    assert made.mtu_host_ends[0] == ("tb-lab-FwA1", "eth0")
    assert len(made.mtu_host_ends) == 4
    assert plumbing(gwlb).tunnels == ()  # the node datapath makes nothing
    assert plumbing(gwlb).mtu_veths == ()
    # An appliance launched while the lab runs takes the MTU too.
    launched = replace(plan.host("FwA1"), name="FwA9", netns="tb-lab-FwA9", veth="tb-lab-v99")
    assert appliance_links(plan, launched) == (["tb-lab-v99"], [("tb-lab-FwA9", "eth0")])
    assert appliance_links(gwlb, launched) == ([], [])
    assert appliance_links(plan, plan.host("WebA")) == ([], [])


def test_parse_routes():
    routes = parse_routes(ROUTES)
    assert [r.prefix for r in routes] == [
        "127.0.0.1/32",
        "192.0.2.2/32",
        "192.0.2.0/24",
        "0.0.0.0/0",
        "10.215.2.0/24",
    ]
    user = routes[-1]
    assert (user.user, user.dev, user.gateway, user.local) == (
        True,
        "spk15-g0",
        "10.215.4.1",
        False,
    )
    assert routes[0].local
    assert routes[3].gateway == "192.0.2.1"


def test_tunnel_neighbours_are_set_again(monkeypatch):
    now = [0.0]
    calls: list[tuple] = []
    warnings: list[str] = []
    route = TunnelRoute("10.0.0.0/16", "tb-x-v10", "10.0.0.1", "tb-x-az1", "02:00:00:00:00:fe")

    def set_neighbours(routes):
        calls.append(routes)
        if now[0] > 700:
            raise gwlb_switch.LabError("ovs-appctl failed")

    monkeypatch.setattr(gwlb_switch, "set_neighbours", set_neighbours)
    keeper = gwlb_switch.TunnelNeighbours((route,), warnings.append, 300.0, lambda: now[0])
    keeper.step()
    assert calls == []
    now[0] = 300.0
    keeper.step()
    keeper.step()
    assert calls == [(route,)]
    now[0] = 599.0
    keeper.step()
    assert len(calls) == 1
    now[0] = 701.0
    keeper.step()
    assert warnings == ["tunnel neighbours not set again: ovs-appctl failed"]
    now[0] = 702.0
    keeper.step()
    assert len(calls) == 2  # a failure is tried again soon, not in 5 minutes
    now[0] = 706.5
    keeper.step()
    assert len(calls) == 3


def test_an_update_keeps_the_running_datapath(gwlb):
    running = for_datapath(gwlb, decide(gwlb, AUTO, facts()))
    # A template update's plan is built afresh (node datapath, no tunnel ports).
    assert carried(running, gwlb) == running
    # A node the update adds has no GENEVE port: its node process carries its traffic.
    (lb,) = gwlb.load_balancers
    added = replace(lb.nodes[1], host="GWLB-1c", az="us-east-1c")
    grown = replace(gwlb, load_balancers=(replace(lb, nodes=(*lb.nodes, added)),))
    ports = [n.tunnel_port for _, n in gwlb_nodes(carried(running, grown))]
    assert ports == [64000, 64001, None]
    fallback = for_datapath(gwlb, decide(gwlb, AUTO, facts(capable=False)))
    assert carried(fallback, gwlb) == fallback


def test_claims_of_running_labs_count_as_made(tmp_path, monkeypatch, gwlb):
    """A lab that decided switch (its claim) blocks another before its plumbing exists; a
    dead lab's claim does not (what it made, if anything, is on the machine)."""
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path))
    claim = {"addresses": {"10.0.0.6": "tb-first-v10"}, "routes": [["10.0.0.0/16", "tb-first-v10"]]}
    for name, pid in (("first", os.getpid()), ("dead", 2**22 + 1)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "lab.json").write_text(
            json.dumps({"pid": pid, "pid_start": start_time(os.getpid())})
        )
        (tmp_path / name / gwlb_switch.CLAIM_FILE).write_text(json.dumps(claim))
    seen = gwlb_switch.with_claims(facts(), "lab")
    assert seen.root_addresses["10.0.0.6"] == "tb-first-v10"
    assert OvsRoute("10.0.0.0/16", "tb-first-v10", user=True) in seen.routes
    decision = decide(gwlb, AUTO, seen)
    assert decision.datapath == NODE
    assert "(lab first)" in decision.reason
    assert gwlb_switch.with_claims(facts(), "first") == facts()  # its own claim
