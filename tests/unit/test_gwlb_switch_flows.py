"""GWLB steering in the switch (issue 15, testbed.controllers.gwlb) on the fake fabric: the
templates/gwlb.yaml lab with its two GWLB nodes given GENEVE ports (NodePlan.tunnel_port), as
the switch datapath plans them. Packets to an endpoint leave on the node's tunnel port to an
appliance ("tunnel:<appliance>") with AWS's options; what the appliance sends back enters on
that port and is routed on from the endpoint. Also: the os-ken wire form of every new message
(tun_metadata fields, learn, resubmit, ct exec, the TLV map), and that a plan without tunnel
ports gets exactly the flows it always had."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from testbed.controllers import nx_fields
from testbed.controllers.flows import (
    GWLB_LEARN_COOKIE_TAG,
    TABLE_CLASSIFY,
    TABLE_GWLB_PICK,
    TABLE_GWLB_RX,
    TABLE_GWLB_SLOT,
    TABLE_GWLB_STATE,
    TABLE_GWLB_STICKY,
    Ct,
    Learn,
    Move,
    Resubmit,
    SetField,
    is_learned_cookie,
)
from testbed.controllers.forwarding import Forwarding
from testbed.controllers.gwlb import (
    COOKIE_FLAG,
    GWLB_SELECT_GROUP,
    SELECT_BUCKETS,
    GwlbLogic,
    endpoint_id,
    flow_cookie,
    tunnel_nodes,
)
from testbed.controllers.nlb import RuntimeTarget
from testbed.controllers.ofadapter import (
    OFPGC_ADD_OR_MOD,
    FlowSync,
    fingerprint,
    flow_mod,
    group_mod,
)
from testbed.controllers.security import SecurityLogic
from testbed.gwlb.node import node_config
from testbed.model import load_model
from testbed.packets import geneve
from testbed.plan.balancers import GENEVE_OFPORT_BASE
from testbed.plan.network import NetworkPlan, build_plan
from tests.fake_openflow import FakeFabric, ip_packet
from tests.unit.test_ofadapter import Switch, serialized, wire

TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "gwlb.yaml"
WEB_A, WEB_A_PUBLIC = "10.0.4.4", "203.0.113.10"
FW_A = {"FwA1": "10.0.0.4", "FwA2": "10.0.0.5"}
FW_B = {"FwB1": "10.0.1.4", "FwB2": "10.0.1.5"}
AZ = {"FwA1": "us-east-1a", "FwA2": "us-east-1a", "FwB1": "us-east-1b", "FwB2": "us-east-1b"}
ALL_FW = {**FW_A, **FW_B}


def gwlb_plan(
    tunnels: bool = True,
    stickiness: str = "5-tuple",
    on_unhealthy: str = "no_rebalance",
    on_deregistration: str = "no_rebalance",
    cross_zone: bool = False,
) -> NetworkPlan:
    """templates/gwlb.yaml's lab; its GWLB nodes with tunnel ports 64000, 64001 (tunnels)."""
    plan = build_plan(load_model(str(TEMPLATE), stack_name="gwlb"), "gwlb")
    lbs = []
    for lb in plan.load_balancers:
        if lb.type == "gateway":
            nodes = tuple(
                replace(n, tunnel_port=GENEVE_OFPORT_BASE + k if tunnels else None)
                for k, n in enumerate(lb.nodes)
            )
            tgs = tuple(
                replace(
                    tg,
                    stickiness=stickiness,
                    cross_zone="true" if cross_zone else tg.cross_zone,
                    attributes={
                        **tg.attributes,
                        "target_failover.on_unhealthy": on_unhealthy,
                        "target_failover.on_deregistration": on_deregistration,
                    },
                )
                for tg in lb.target_groups
            )
            lb = replace(lb, nodes=nodes, target_groups=tgs)
        lbs.append(lb)
    datapath = "switch" if tunnels else "node"
    return replace(plan, load_balancers=tuple(lbs), gwlb_datapath=datapath)


class Lab:
    """Forwarding, GWLB and security logic together, as the controller app combines them."""

    def __init__(self, plan: NetworkPlan) -> None:
        self.plan = plan
        self.forwarding = Forwarding(plan)
        self.gwlb = GwlbLogic(plan)
        self.security = SecurityLogic(plan)
        self.fabric = FakeFabric(plan, self)

    def flows_for(self, dpid: int) -> list:
        return (
            self.forwarding.flows_for(dpid)
            + self.gwlb.flows_for(dpid)
            + self.security.flows_for(dpid)
        )

    def groups_for(self, dpid: int) -> list:
        return self.gwlb.groups_for(dpid)

    def states(self, **states: str) -> None:
        """Appliance states (healthy unless named; state "gone": not listed), reprogrammed."""
        targets = [
            RuntimeTarget(f"{name}:6081", ip, 6081, AZ[name], states.get(name, "healthy"))
            for name, ip in ALL_FW.items()
            if states.get(name) != "gone"
        ]
        self.gwlb.set_targets("GWLB", "Appliances", targets)
        self.fabric.reprogram()


def lab(**kw: Any) -> Lab:
    out = Lab(gwlb_plan(**kw))
    out.states()
    return out


def to_web(lab: Lab, sport: int, proto: int = 6, client: str = "Client1", **extra: Any):
    """A packet from an internet client to WebA's public address (through EndpointA)."""
    pkt = ip_packet(lab.plan, client, WEB_A_PUBLIC, proto=proto, **extra)
    pkt["tcp_src" if proto == 6 else "udp_src"] = sport
    if proto == 17:
        pkt["udp_dst"] = 9000
    return pkt


def from_web(lab: Lab, dport: int, client_ip: str = "198.51.100.10", **extra: Any):
    """WebA's TCP answer to a client's port (its default route: EndpointA)."""
    pkt = ip_packet(lab.plan, "WebA", client_ip, tcp_src=80, tcp_dst=dport, **extra)
    pkt["tcp_flags_nxm"] = extra.get("tcp_flags_nxm", 0x12)
    return pkt


def tunnelled(result) -> tuple[str, dict]:
    """(appliance address, packet) of the one delivery of a result, which must be to a
    tunnel."""
    assert len(result.delivered) == 1, result.delivered
    where, pkt = result.delivered[0]
    assert where.startswith("tunnel:"), where
    return where.removeprefix("tunnel:"), pkt


def appliance_of(lab: Lab, sport: int, **kw: Any) -> str:
    return tunnelled(lab.fabric.send("Client1", to_web(lab, sport, **kw)))[0]


def endpoint_a_id(plan: NetworkPlan) -> int:
    return endpoint_id(next(e for e in plan.endpoints if e.name == "EndpointA"))


# ---- the path --------------------------------------------------------------------------------
def test_a_packet_through_the_endpoint_leaves_in_geneve_to_an_appliance_of_the_nodes_az():
    lab_ = lab()
    seen = set()
    for sport in range(40000, 40040):
        ip, pkt = tunnelled(lab_.fabric.send("Client1", to_web(lab_, sport)))
        seen.add(ip)
        # The unchanged packet (routed to the endpoint by the gateway's ingress route).
        assert (pkt["ipv4_src"], pkt["ipv4_dst"], pkt["tcp_src"]) == ("198.51.100.10", WEB_A, sport)
        assert pkt["eth_dst"] == "02:00:0a:00:02:04"  # EndpointA's MAC
        # AWS's options: the endpoint id (as the node datapath sends it), attachment 0, the
        # flow cookie (top bit set, endpoint number, slot); VNI 0.
        assert pkt["tun_metadata0"] == endpoint_a_id(lab_.plan)
        assert pkt["tun_metadata1"] == 0
        assert pkt["tunnel_id"] == 0
        cookie = pkt["tun_metadata2"]
        assert cookie & COOKIE_FLAG
        assert cookie >> 16 & 0x7FFF == 1
        assert cookie == flow_cookie(1, pkt["reg0"])
    assert seen == set(FW_A.values())  # both appliances of AZ a, never AZ b's


def test_the_endpoint_id_is_the_one_the_node_datapath_sends():
    plan = gwlb_plan()
    config = node_config(json.loads(plan.to_json()), "GWLB-1a", "GWLB")
    ids = {e.name: e.id for e in config.endpoints}
    assert {e.name: endpoint_id(e) for e in plan.endpoints} == ids
    assert geneve.endpoint_ip(ids["EndpointA"]) == "10.0.2.4"


def test_the_reply_goes_to_the_same_appliance_with_the_same_cookie_as_an_established_flow():
    lab_ = lab()
    for sport in range(41000, 41020):
        ip, pkt = tunnelled(lab_.fabric.send("Client1", to_web(lab_, sport)))
        reply = lab_.fabric.send("WebA", from_web(lab_, sport))
        back_ip, back = tunnelled(reply)
        assert (back_ip, back["tun_metadata2"]) == (ip, pkt["tun_metadata2"])
        assert (back["ipv4_src"], back["ipv4_dst"]) == (WEB_A, "198.51.100.10")
        # Established: the label decided, no hash.
        dpid = lab_.plan.switch("tb-gwlb-az1").dpid
        assert (dpid, TABLE_GWLB_STATE) in reply.hops
        assert (dpid, TABLE_GWLB_PICK) not in reply.hops


def test_back_from_the_appliance_it_is_routed_on_from_the_endpoint():
    lab_ = lab()
    ip, pkt = tunnelled(lab_.fabric.send("Client1", to_web(lab_, 42000)))
    inner = {k: v for k, v in pkt.items() if not k.startswith(("tun", "reg", "ct_"))}
    inner.pop("metadata", None)
    # Inbound: the endpoint subnet's table (local route) to WebA.
    res = lab_.fabric.send_tunnel(
        "GWLB-1a", inner, ip, endpoint_a_id(lab_.plan), pkt["tun_metadata2"]
    )
    assert res.hosts == ["WebA"]
    assert (res.delivered[0][1]["ipv4_src"], res.delivered[0][1]["tcp_src"]) == (
        "198.51.100.10",
        42000,
    )
    dpid = lab_.plan.switch("tb-gwlb-az1").dpid
    assert (dpid, TABLE_GWLB_RX) in res.hops  # counted per appliance
    # Outbound (WebA's answer): the endpoint subnet's table sends it to the internet gateway
    # (WebA's own would send it to the endpoint again), which gives it WebA's public address.
    ip2, out = tunnelled(lab_.fabric.send("WebA", from_web(lab_, 42000)))
    assert ip2 == ip
    inner = {k: v for k, v in out.items() if not k.startswith(("tun", "reg", "ct_"))}
    res = lab_.fabric.send_tunnel("GWLB-1a", inner, ip, endpoint_a_id(lab_.plan))
    assert res.hosts == ["Client1"]
    assert res.delivered[0][1]["ipv4_src"] == WEB_A_PUBLIC


def test_the_return_flow_speaks_from_the_endpoint_and_only_for_the_nodes_endpoints():
    lab_ = lab()
    plan = lab_.plan
    ret = [
        f
        for f in lab_.forwarding.flows_for(plan.switch("tb-gwlb-az1").dpid)
        if f.table == TABLE_CLASSIFY and dict(f.match).get("in_port") == GENEVE_OFPORT_BASE
    ]
    assert len(ret) == 1
    assert dict(ret[0].match)["tun_metadata0"] == endpoint_a_id(plan)
    assert SetField("eth_src", "02:00:0a:00:02:04") in ret[0].actions
    assert SetField("eth_dst", plan.router_mac) in ret[0].actions
    # An unknown endpoint id on the tunnel port, or EndpointB's at node A: dropped.
    pkt = ip_packet(plan, "Client1", WEB_A)
    b_id = endpoint_id(next(e for e in plan.endpoints if e.name == "EndpointB"))
    assert lab_.fabric.send_tunnel("GWLB-1a", pkt, "10.0.0.4", b_id).delivered == []
    assert lab_.fabric.send_tunnel("GWLB-1a", pkt, "10.0.0.4", 12345).delivered == []
    # The node port no longer speaks for the endpoint: the node is not in the data path.
    spoof = {**pkt, "eth_src": "02:00:0a:00:02:04"}
    assert lab_.fabric.send("GWLB-1a", spoof).delivered == []


def test_node_b_steers_endpoint_b_over_its_az():
    lab_ = lab()
    seen = set()
    for sport in range(43000, 43030):
        pkt = ip_packet(lab_.plan, "Client1", "203.0.113.11", tcp_src=sport)
        ip, out = tunnelled(lab_.fabric.send("Client1", pkt))
        seen.add(ip)
        assert out["tun_metadata0"] == endpoint_id(lab_.plan.endpoints[1])
        assert out["tun_metadata2"] >> 16 & 0x7FFF == 2
    assert seen == set(FW_B.values())


def test_cross_zone_spreads_over_every_az():
    lab_ = lab(cross_zone=True)
    seen = {appliance_of(lab_, sport) for sport in range(44000, 44060)}
    assert seen == set(ALL_FW.values())


def test_the_node_port_may_send_geneve_from_any_switch_steered_node():
    """OVS routes every node's GENEVE out of the first node's port (one ovs/route)."""
    for tunnels, wanted in ((True, ["FwB1"]), (False, [])):
        lab_ = Lab(gwlb_plan(tunnels=tunnels))
        pkt = ip_packet(lab_.plan, "GWLB-1a", "10.0.1.4", proto=17, udp_dst=6081)
        assert lab_.fabric.send("GWLB-1a", pkt).hosts == ["FwB1"]  # from its own address
        pkt["ipv4_src"] = "10.0.1.6"  # GWLB-1b's address
        assert lab_.fabric.send("GWLB-1a", pkt).hosts == wanted
        pkt["ipv4_src"] = "10.0.1.7"  # anyone else's: never
        assert lab_.fabric.send("GWLB-1a", pkt).hosts == []


# ---- health and failover -----------------------------------------------------------------
def test_an_unhealthy_appliance_gets_no_new_flows():
    lab_ = lab()
    lab_.states(FwA1="unhealthy")
    assert {appliance_of(lab_, sport) for sport in range(45000, 45040)} == {FW_A["FwA2"]}
    lab_.states(FwA1="draining")
    assert {appliance_of(lab_, sport) for sport in range(45100, 45140)} == {FW_A["FwA2"]}


def test_fail_open_when_none_is_healthy_and_drop_when_none_is_registered():
    lab_ = lab()
    lab_.states(FwA1="unhealthy", FwA2="initial")
    seen = {appliance_of(lab_, sport) for sport in range(46000, 46040)}
    assert seen == set(FW_A.values())  # every registered one in scope
    lab_.states(FwA1="gone", FwA2="gone")
    assert lab_.fabric.send("Client1", to_web(lab_, 46100)).delivered == []


def _flow_on(lab_: Lab, name: str, first: int) -> int:
    """A client port whose new flow goes to appliance `name`."""
    for sport in range(first, first + 200):
        if appliance_of(lab_, sport) == ALL_FW[name]:
            return sport
    raise AssertionError(f"no flow hashed to {name}")


@pytest.mark.parametrize(
    ("mode", "state", "kw"),
    [
        ("rebalance", "unhealthy", "on_unhealthy"),
        ("no_rebalance", "unhealthy", "on_unhealthy"),
        ("rebalance", "gone", "on_deregistration"),
        ("no_rebalance", "gone", "on_deregistration"),
    ],
)
def test_target_failover_moves_an_existing_flow_only_in_rebalance_mode(mode, state, kw):
    lab_ = lab(**{kw: mode})
    sport = _flow_on(lab_, "FwA1", 47000)
    other = _flow_on(lab_, "FwA2", 47300)
    lab_.states(FwA1=state)
    ack = {"tcp_flags_nxm": 0x10}
    moved = appliance_of(lab_, sport, **ack)
    assert moved == (FW_A["FwA2"] if mode == "rebalance" else FW_A["FwA1"])
    # The reply follows, and so do later packets (the entry's label was committed again).
    assert tunnelled(lab_.fabric.send("WebA", from_web(lab_, sport)))[0] == moved
    assert appliance_of(lab_, sport, **ack) == moved
    # A flow on a healthy appliance never moves.
    assert appliance_of(lab_, other, **ack) == FW_A["FwA2"]


def test_unhealthy_in_the_other_mode_does_not_rebalance():
    # on_deregistration rebalance says nothing about unhealthy appliances.
    lab_ = lab(on_deregistration="rebalance")
    sport = _flow_on(lab_, "FwA1", 47600)
    lab_.states(FwA1="unhealthy")
    assert appliance_of(lab_, sport, tcp_flags_nxm=0x10) == FW_A["FwA1"]


def test_no_rebalance_when_nothing_is_healthy_to_move_to():
    lab_ = lab(on_unhealthy="rebalance")
    sport = _flow_on(lab_, "FwA1", 47800)
    lab_.states(FwA1="unhealthy", FwA2="unhealthy")  # fail open: flows stay
    assert appliance_of(lab_, sport, tcp_flags_nxm=0x10) == FW_A["FwA1"]


# ---- stickiness --------------------------------------------------------------------------------
def test_five_tuple_spreads_the_ports_of_one_pair():
    lab_ = lab()
    assert len({appliance_of(lab_, sport) for sport in range(48000, 48030)}) == 2


@pytest.mark.parametrize("stickiness", ["source_ip_dest_ip", "source_ip_dest_ip_proto"])
def test_two_and_three_tuple_choose_by_the_address_pair(stickiness):
    lab_ = lab(stickiness=stickiness)
    tcp = {appliance_of(lab_, sport) for sport in range(49000, 49030)}
    assert len(tcp) == 1
    udp = {appliance_of(lab_, sport, proto=17) for sport in range(49000, 49030)}
    assert len(udp) == 1
    # Replies too, from any port.
    assert {
        tunnelled(lab_.fabric.send("WebA", from_web(lab_, p)))[0] for p in (49001, 49017)
    } == tcp
    # The pair was learned, both ways, into the switch's own table (cookie: the tag).
    switch = lab_.fabric.switches[lab_.plan.switch("tb-gwlb-az1").dpid]
    learned = switch.learned_flows(TABLE_GWLB_STICKY)
    assert learned
    assert all(is_learned_cookie(cookie) for _f, cookie in learned)
    pairs = {(dict(f.match)["ipv4_src"], dict(f.match)["ipv4_dst"]) for f, _c in learned}
    assert ("198.51.100.10", WEB_A) in pairs
    assert (WEB_A, "198.51.100.10") in pairs
    protos = {dict(f.match).get("ip_proto") for f, _c in learned}
    assert protos == ({6, 17} if stickiness == "source_ip_dest_ip_proto" else {None})
    # Every packet of the pair passes its learned flow (which keeps it from idling out),
    # established ones included.
    est = lab_.fabric.send("Client1", to_web(lab_, 49001, tcp_flags_nxm=0x10))
    assert (switch.dpid, TABLE_GWLB_PICK) not in est.hops
    assert (switch.dpid, TABLE_GWLB_STICKY) in est.hops


def test_a_learned_pair_keeps_its_appliance_when_it_drains_or_fails_without_rebalance():
    lab_ = lab(stickiness="source_ip_dest_ip")
    first = appliance_of(lab_, 50000)
    name = next(k for k, v in FW_A.items() if v == first)
    for state in ("draining", "unhealthy"):
        lab_.states(**{name: state})
        # A new connection of the pair is part of the pair's flow: it stays.
        assert appliance_of(lab_, 50100 if state == "draining" else 50200) == first


def test_a_learned_pair_moves_in_rebalance_mode():
    lab_ = lab(stickiness="source_ip_dest_ip", on_unhealthy="rebalance")
    first = appliance_of(lab_, 50300)
    name = next(k for k, v in FW_A.items() if v == first)
    lab_.states(**{name: "unhealthy"})
    other = next(v for v in FW_A.values() if v != first)
    assert appliance_of(lab_, 50300, tcp_flags_nxm=0x10) == other  # the open connection
    assert appliance_of(lab_, 50400) == other  # and the pair's new ones
    lab_.states()  # healthy again: the pair stays where it went (relearned)
    assert appliance_of(lab_, 50500) == other


# ---- without tunnel ports: nothing changes ---------------------------------------------------
def test_a_plan_without_tunnel_ports_gets_no_gwlb_flows_and_the_old_return_path():
    plan = gwlb_plan(tunnels=False)
    assert tunnel_nodes(plan) == {}
    gw = GwlbLogic(plan)
    assert all(gw.flows_for(s.dpid) == [] and not gw.has_tunnel(s.dpid) for s in plan.switches)
    base = build_plan(load_model(str(TEMPLATE), stack_name="gwlb"), "gwlb")
    fw, old = Forwarding(plan), Forwarding(base)
    for s in plan.switches:
        assert fw.flows_for(s.dpid) == old.flows_for(s.dpid)
    fabric = FakeFabric(plan, fw)
    assert fabric.send("Client1", ip_packet(plan, "Client1", WEB_A_PUBLIC)).hosts == ["GWLB-1a"]


def test_only_the_node_switches_have_gwlb_flows():
    lab_ = lab()
    have = {s.name for s in lab_.plan.switches if lab_.gwlb.flows_for(s.dpid)}
    assert have == {"tb-gwlb-az1", "tb-gwlb-az2"}
    assert {s.name for s in lab_.plan.switches if lab_.gwlb.has_tunnel(s.dpid)} == have


def test_plan_reload_keeps_the_appliance_states():
    lab_ = lab()
    lab_.states(FwA1="unhealthy")
    lab_.gwlb.set_plan(lab_.plan)
    assert {appliance_of(lab_, sport) for sport in range(51000, 51020)} == {FW_A["FwA2"]}


# ---- os-ken: the wire ------------------------------------------------------------------------
def _all_flows(plan: NetworkPlan) -> list:
    gw = GwlbLogic(plan)
    gw.set_targets(
        "GWLB",
        "Appliances",
        [RuntimeTarget(f"{n}:6081", ip, 6081, AZ[n], "healthy") for n, ip in ALL_FW.items()],
    )
    gw.set_targets(
        "GWLB",
        "Appliances",
        [RuntimeTarget("FwA1:6081", "10.0.0.4", 6081, AZ["FwA1"], "unhealthy")],
    )
    fw = Forwarding(plan)
    return [f for s in plan.switches for f in gw.flows_for(s.dpid) + fw.flows_for(s.dpid)]


@pytest.mark.parametrize("stickiness", ["5-tuple", "source_ip_dest_ip_proto"])
def test_every_gwlb_flow_serializes_with_os_ken_and_parses_back(stickiness):
    plan = gwlb_plan(stickiness=stickiness, on_unhealthy="rebalance", on_deregistration="rebalance")
    flows = _all_flows(plan)
    kinds = set()
    for f in flows:
        back = wire(flow_mod(Switch(), f))
        assert (back.table_id, back.priority) == (f.table, f.priority)
        assert dict(back.match.items()) == {
            k: (v.lower() if isinstance(v, str) else v) for k, v in f.match
        }
        actions = [a for inst in back.instructions for a in getattr(inst, "actions", [])]
        assert len(actions) == len(f.actions), f
        for plain, parsed in zip(f.actions, actions):
            kinds.add(type(plain).__name__)
            _same_action(plain, parsed)
    wanted = {"Resubmit", "Ct", "Move", "SetField", "Output", "Multipath"}
    if stickiness != "5-tuple":
        wanted.add("Learn")
    assert wanted <= kinds


def _same_action(plain: Any, parsed: Any) -> None:
    parser = Switch().ofproto_parser
    if isinstance(plain, Resubmit):
        assert isinstance(parsed, parser.NXActionResubmitTable)
        assert (parsed.table_id, parsed.in_port) == (plain.table, 0xFFF8)
    elif isinstance(plain, Learn):
        assert isinstance(parsed, parser.NXActionLearn)
        assert (parsed.table_id, parsed.priority, parsed.idle_timeout, parsed.cookie) == (
            plain.table,
            plain.priority,
            plain.idle_timeout,
            plain.cookie,
        )
        assert parsed.cookie >> 48 == GWLB_LEARN_COOKIE_TAG
        names = [(type(s).__name__, s.src, s.dst, s.n_bits) for s in parsed.specs]
        assert ("NXFlowSpecMatch", ("ipv4_dst_nxm", 0), ("ipv4_src_nxm", 0), 32) in names or (
            "NXFlowSpecMatch",
            ("ipv4_src_nxm", 0),
            ("ipv4_src_nxm", 0),
            32,
        ) in names
        assert ("NXFlowSpecLoad", ("reg1", 0), ("reg1", 0), 32) in names
        assert ("NXFlowSpecLoad", 1, ("reg5", 0), 32) in names
        assert len(parsed.specs) == len(plain.specs)
    elif isinstance(plain, Ct) and plain.actions:
        assert isinstance(parsed, parser.NXActionCT)
        assert parsed.flags == 1
        assert parsed.zone_ofs_nbits == plain.zone
        moves = [(m.src_field, m.dst_field, m.n_bits, m.src_ofs, m.dst_ofs) for m in parsed.actions]
        assert moves == [("reg1", "ct_label", 32, 0, 0), ("reg2", "ct_label", 32, 0, 32)]
    elif isinstance(plain, SetField):
        assert isinstance(parsed, parser.OFPActionSetField)
        value = plain.value.lower() if isinstance(plain.value, str) else plain.value
        assert (parsed.key, parsed.value) == (plain.field, value)
    elif isinstance(plain, Move):
        assert isinstance(parsed, parser.NXActionRegMove)
        assert (parsed.src_field, parsed.dst_field, parsed.n_bits) == (
            plain.src,
            plain.dst,
            plain.n_bits,
        )
        assert (parsed.src_ofs, parsed.dst_ofs) == (plain.src_ofs, plain.dst_ofs)


def test_no_flow_sets_a_tunnel_metadata_field_to_zero():
    # OVS reports set_field:0->tun_metadata<n> with a zero-length field header in its flow
    # statistics; os-ken's parser asserts on it and drops that whole reply part (seen in a
    # lab: the controller's takeover then missed the rest of table 63).
    flows = _all_flows(gwlb_plan())
    sets = [
        a
        for f in flows
        for a in f.actions
        if isinstance(a, SetField) and a.field.startswith("tun_metadata")
    ]
    assert sets
    assert all(a.value != 0 for a in sets)


def test_tun_metadata_goes_on_the_wire_as_ovs_reads_it():
    # set_field tun_metadata0 as the spike saw OVS accept it: NXM_1 field 40, 8 bytes.
    parser = Switch().ofproto_parser
    buf = bytearray()
    parser.OFPActionSetField(tun_metadata0=0x767063650AD70107).serialize(buf, 0)
    assert bytes(buf).hex() == "0019001000015008767063650ad70107"
    buf = bytearray()
    parser.OFPActionSetField(tun_metadata2=5).serialize(buf, 0)
    assert bytes(buf)[4:8].hex() == "00015404"  # field 42, 4 bytes


def test_the_tlv_map_message_maps_aws_options_to_tun_metadata():
    data = serialized(nx_fields.tlv_map_message(Switch()))
    # Experimenter header: Nicira, NXT_TLV_TABLE_MOD; ADD; then (class, type, len, index).
    assert data[8:16].hex() == "0000232000000018"
    assert data[16:24].hex() == "0000000000000000"
    maps = [data[i : i + 8].hex() for i in range(24, len(data), 8)]
    assert maps == ["0108010800000000", "0108020800010000", "0108030400020000"]


def test_already_mapped_is_recognised():
    parser = Switch().ofproto_parser
    err = parser.OFPErrorMsg(Switch(), data=b"")
    err.type, err.exp_type, err.experimenter = 0xFFFF, 20, 0x2320
    assert nx_fields.is_already_mapped(err)
    err.exp_type = 21
    assert not nx_fields.is_already_mapped(err)


def test_flow_sync_never_deletes_what_the_switch_learned():
    plan = gwlb_plan(stickiness="source_ip_dest_ip")
    flows = _all_flows(plan)
    sync = FlowSync()
    learned = GWLB_LEARN_COOKIE_TAG << 48 | 7
    stale = 0x1234
    sync.take_over(1, [(learned, TABLE_GWLB_STICKY), (stale, 3)])
    msgs = sync.messages(Switch(1), flows[:3])
    deletes = [m.cookie for m in msgs if m.command == Switch().ofproto.OFPFC_DELETE]
    assert deletes == [stale]
    assert not any(is_learned_cookie(fingerprint(f)) for f in flows)


@pytest.mark.parametrize("stickiness", ["source_ip_dest_ip", "source_ip_dest_ip_proto"])
def test_the_pair_hash_alone_ignores_ports_and_direction(stickiness):
    # Fresh labs (nothing learned yet): the first packet of the pair picks by the pair only.
    picks = {appliance_of(lab(stickiness=stickiness), sport) for sport in range(52000, 52010)}
    assert len(picks) == 1
    for port in (52000, 52005):
        fresh = lab(stickiness=stickiness)
        first = from_web(fresh, port, tcp_flags_nxm=2)  # WebA opens the flow
        assert {tunnelled(fresh.fabric.send("WebA", first))[0]} == picks


# ---- the app: TLV map at takeover, errors ----------------------------------------------------
class RecordingSwitch(Switch):
    """A datapath that keeps what the app sends it."""

    def __init__(self, dpid: int) -> None:
        super().__init__(dpid)
        self.sent: list = []
        self.xid = 0

    def send_msg(self, msg: Any) -> None:
        self.sent.append(msg)

    def set_xid(self, msg: Any) -> None:
        self.xid += 1
        msg.set_xid(self.xid)


def app_for(plan: NetworkPlan):
    import threading

    from testbed.controllers.lab_app import LabApp
    from testbed.controllers.nlb import NlbLogic

    app = LabApp.__new__(LabApp)  # no OSKenApp machinery
    app.plan = plan
    app.forwarding, app.security = Forwarding(plan), SecurityLogic(plan)
    app.nlb, app.gwlb = NlbLogic(plan, table_size=61), GwlbLogic(plan)
    app.lock = threading.RLock()
    app.sync = FlowSync()
    app.datapaths, app.takeovers, app.errors = {}, {}, []
    app.pending_barrier, app.barrier_events = {}, {}
    app.awaiting_targets = False
    return app


@pytest.mark.parametrize("tunnels", [True, False])
def test_takeover_sends_the_tlv_map_before_any_flow_to_a_switch_with_a_tunnel_port(tunnels):
    plan = gwlb_plan(tunnels=tunnels)
    app = app_for(plan)
    for s in plan.switches:
        dp = RecordingSwitch(s.dpid)
        app.datapaths[s.dpid] = dp
        app.take_over(dp, [])
        experimenters = [
            i for i, m in enumerate(dp.sent) if isinstance(m, dp.ofproto_parser.OFPExperimenter)
        ]
        has_tunnel = tunnels and s.name in ("tb-gwlb-az1", "tb-gwlb-az2")
        assert experimenters == ([0] if has_tunnel else [])
        mods = [m for m in dp.sent if isinstance(m, dp.ofproto_parser.OFPFlowMod)]
        assert mods
        gwlb_mods = [m for m in mods if m.table_id == TABLE_GWLB_STATE]
        assert bool(gwlb_mods) == has_tunnel


def test_already_mapped_is_no_error_and_other_nicira_errors_are_recorded():
    from types import SimpleNamespace

    app = app_for(gwlb_plan())
    dp = RecordingSwitch(17)

    def error(exp_type: int) -> Any:
        msg = dp.ofproto_parser.OFPErrorMsg(dp, data=b"\x04\x04")
        msg.type, msg.exp_type, msg.experimenter = 0xFFFF, exp_type, 0x2320
        return SimpleNamespace(msg=msg)

    app.on_error(error(nx_fields.NXTTMFC_ALREADY_MAPPED))
    assert app.errors == []
    app.on_error(error(21))  # NXTTMFC_DUP_ENTRY: the option is mapped to another field
    assert [(e["type"], e["code"]) for e in app.errors] == [(0xFFFF, 21)]


# ---- 5-tuple TCP: the select group (dp_hash: no upcall per connection) -----------------------
def _group_packets(lab_: Lab, switch: str = "tb-gwlb-az1") -> int:
    fake = lab_.fabric.switches[lab_.plan.switch(switch).dpid]
    return sum(fake.bucket_packets.values())


def test_five_tuple_tcp_picks_by_the_select_group_and_udp_by_multipath():
    lab_ = lab()
    appliance_of(lab_, 53000)
    assert _group_packets(lab_) == 1
    appliance_of(lab_, 53000, proto=17)
    assert _group_packets(lab_) == 1  # UDP: multipath (dp_hash leaves UDP ports out)
    # 2-/3-tuple stickiness: no group at all.
    pair = lab(stickiness="source_ip_dest_ip")
    assert all(pair.gwlb.groups_for(s.dpid) == [] for s in pair.plan.switches)
    appliance_of(pair, 53000)
    assert _group_packets(pair) == 0


def test_both_directions_of_a_tcp_connection_meet_one_appliance_through_the_group():
    # Fresh labs (nothing tracked): each direction's first packet picks by the group alone.
    for port in range(53100, 53120):
        out = appliance_of(lab(), port)
        fresh = lab()
        back = tunnelled(fresh.fabric.send("WebA", from_web(fresh, port, tcp_flags_nxm=2)))
        assert back[0] == out
        assert _group_packets(fresh) == 1


def test_a_bucket_is_a_slot_and_the_cookie_stays_slot_derived():
    lab_ = lab()
    switch = lab_.plan.switch("tb-gwlb-az1")
    (group,) = lab_.gwlb.groups_for(switch.dpid)
    assert group.group_id == GWLB_SELECT_GROUP
    assert len(group.buckets) == SELECT_BUCKETS
    assert {b[0] for b in group.buckets} == {
        SetField("reg0", slot) for slot in range(lab_.gwlb.size)
    }
    assert all(b[1] == Resubmit(TABLE_GWLB_SLOT) for b in group.buckets)
    _where, pkt = tunnelled(lab_.fabric.send("Client1", to_web(lab_, 53200)))
    fake = lab_.fabric.switches[switch.dpid]
    ((_gid, bucket),) = fake.bucket_packets
    number = next(i for i, e in enumerate(lab_.plan.endpoints, 1) if e.name == "EndpointA")
    assert pkt["tun_metadata2"] == flow_cookie(number, bucket % lab_.gwlb.size)


def test_the_group_is_sent_once_before_the_flows_and_again_only_when_it_changes():
    plan = gwlb_plan()
    gw = GwlbLogic(plan)
    dpid = plan.switch("tb-gwlb-az1").dpid
    sync, dp = FlowSync(), Switch(dpid)
    parser = dp.ofproto_parser
    sync.take_over(dpid, [])
    first = sync.messages(dp, gw.flows_for(dpid), gw.groups_for(dpid))
    assert isinstance(first[0], parser.OFPGroupMod)  # before any flow that names it
    assert sum(isinstance(m, parser.OFPGroupMod) for m in first) == 1
    assert first[0].command == OFPGC_ADD_OR_MOD
    assert first[0].group_id == GWLB_SELECT_GROUP
    # Appliance states change table 64, never the group.
    gw.set_targets(
        "GWLB",
        "Appliances",
        [
            RuntimeTarget(f"{n}:6081", ip, 6081, AZ[n], "unhealthy" if n == "FwA1" else "healthy")
            for n, ip in ALL_FW.items()
        ],
    )
    again = sync.messages(dp, gw.flows_for(dpid), gw.groups_for(dpid))
    assert again
    assert not any(isinstance(m, parser.OFPGroupMod) for m in again)
    assert sync.messages(dp, gw.flows_for(dpid), gw.groups_for(dpid)) == []
    # Another table size changes the buckets: modified in place (add-or-modify).
    small = GwlbLogic(plan, table_size=61)
    changed = sync.messages(dp, small.flows_for(dpid), small.groups_for(dpid))
    assert [m.command for m in changed if isinstance(m, parser.OFPGroupMod)] == [OFPGC_ADD_OR_MOD]
    # A new takeover (controller restart) sends it once more: the switch's groups are not read.
    sync.take_over(dpid, [])
    assert any(
        isinstance(m, parser.OFPGroupMod)
        for m in sync.messages(dp, small.flows_for(dpid), small.groups_for(dpid))
    )
    # 2-tuple stickiness: no group; deleted after the flows that named it.
    pair = GwlbLogic(gwlb_plan(stickiness="source_ip_dest_ip"))
    last = sync.messages(dp, pair.flows_for(dpid), pair.groups_for(dpid))
    assert isinstance(last[-1], parser.OFPGroupMod)
    assert last[-1].command == dp.ofproto.OFPGC_DELETE
    assert not any(isinstance(m, parser.OFPGroupMod) for m in last[:-1])


def test_the_group_mod_goes_on_the_wire_as_openflow_reads_it():
    import struct

    plan = gwlb_plan()
    dp = Switch()
    (group,) = GwlbLogic(plan).groups_for(plan.switch("tb-gwlb-az1").dpid)
    data = serialized(group_mod(dp, group))
    command, kind, group_id = struct.unpack_from("!HBxI", data, 8)
    assert (command, kind, group_id) == (OFPGC_ADD_OR_MOD, dp.ofproto.OFPGT_SELECT, group.group_id)
    offset, buckets = 16, []
    while offset < len(data):
        bucket = dp.ofproto_parser.OFPBucket.parser(data, offset)
        buckets.append(bucket)
        offset += bucket.len
    assert len(buckets) == SELECT_BUCKETS
    assert {b.weight for b in buckets} == {1}
    for plain, parsed in zip(group.buckets, buckets):
        assert len(parsed.actions) == 2
        for a, p in zip(plain, parsed.actions):
            _same_action(a, p)
