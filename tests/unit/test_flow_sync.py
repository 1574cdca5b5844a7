"""Flow-mods as os-ken's real OpenFlow 1.3 parser builds and reads them, and FlowSync's takeover
of a switch that kept its flows: only the difference is sent, a flow that stays is untouched."""

from __future__ import annotations

from dataclasses import replace

import pytest
from os_ken.ofproto import ofproto_parser, ofproto_v1_3, ofproto_v1_3_parser

from testbed.controllers.flows import TABLE_CLASSIFY, Move, Output, flow
from testbed.controllers.forwarding import Forwarding
from testbed.controllers.nlb import NlbLogic
from testbed.controllers.ofadapter import FlowSync, delete_cookie, fingerprint, flow_mod
from tests.nlb_fixture import nlb_plan


class Datapath:
    """What the adapter needs of an os-ken Datapath: its id, OpenFlow 1.3 and its parser."""

    ofproto = ofproto_v1_3
    ofproto_parser = ofproto_v1_3_parser

    def __init__(self, dpid: int) -> None:
        self.id = dpid


def wire(msg):
    """The message as the switch gets it: serialized, then parsed back by os-ken."""
    msg.xid = 0
    msg.serialize()
    version, msg_type, length, xid = ofproto_parser.header(msg.buf)
    return ofproto_parser.msg(msg.datapath, version, msg_type, length, xid, bytes(msg.buf))


class SwitchTable:
    """An OpenFlow 1.3 flow table as far as FlowSync relies on it: ADD replaces the entry of
    the same table, priority and match; DELETE with a full cookie mask removes the entries
    of its table that carry the cookie."""

    def __init__(self) -> None:
        self.entries: dict[tuple, int] = {}  # (table, priority, match) -> cookie

    def apply(self, msgs) -> None:
        ofp = ofproto_v1_3
        for msg in msgs:
            mod = wire(msg)
            if mod.command == ofp.OFPFC_ADD:
                key = (mod.table_id, mod.priority, repr(sorted(mod.match.items())))
                self.entries[key] = mod.cookie
            elif mod.command == ofp.OFPFC_DELETE:
                assert mod.cookie_mask == 0xFFFF_FFFF_FFFF_FFFF
                self.entries = {
                    k: c
                    for k, c in self.entries.items()
                    if not (k[0] == mod.table_id and c == mod.cookie)
                }
            else:  # pragma: no cover - FlowSync sends nothing else
                raise AssertionError(f"unexpected flow-mod {mod}")

    def report(self) -> list[tuple[int, int]]:
        """(cookie, table) of each entry, as flow statistics give them."""
        return [(cookie, key[0]) for key, cookie in self.entries.items()]


def desired(plan, nlb: NlbLogic, dpid: int):
    return Forwarding(plan).flows_for(dpid) + nlb.flows_for(dpid)


@pytest.fixture
def plan():
    return nlb_plan()


@pytest.fixture
def dpid(plan):
    return next(s.dpid for s in plan.switches if s.role == "az")


def test_every_flow_mod_serializes_and_reads_back(plan):
    nlb = NlbLogic(plan)
    for switch in plan.switches:
        dp = Datapath(switch.dpid)
        for f in desired(plan, nlb, switch.dpid):
            mod = wire(flow_mod(dp, f))
            assert (mod.cookie, mod.table_id, mod.priority) == (fingerprint(f), f.table, f.priority)
            assert dict(mod.match.items()).keys() == dict(f.match).keys()
        gone = wire(delete_cookie(dp, 5, 1234))
        assert (gone.table_id, gone.cookie, gone.command) == (5, 1234, ofproto_v1_3.OFPFC_DELETE)


def test_arp_responder_actions_on_the_wire(plan, dpid):
    arp = next(f for f in Forwarding(plan).flows_for(dpid) if f.table == 5 and f.priority == 100)
    actions = wire(flow_mod(Datapath(dpid), arp)).instructions[0].actions
    moves = [(a.src_field, a.dst_field, a.n_bits) for a in actions if hasattr(a, "src_field")]
    assert moves == [(a.src, a.dst, a.n_bits) for a in arp.actions if isinstance(a, Move)]
    assert actions[-1].port == ofproto_v1_3.OFPP_IN_PORT


def test_fingerprint_names_the_whole_flow():
    a = flow(TABLE_CLASSIFY, 10, {"in_port": 1}, [Output(2)])
    assert fingerprint(a) == fingerprint(flow(TABLE_CLASSIFY, 10, {"in_port": 1}, [Output(2)]))
    others = [
        flow(TABLE_CLASSIFY, 10, {"in_port": 1}, [Output(3)]),
        flow(TABLE_CLASSIFY, 11, {"in_port": 1}, [Output(2)]),
        flow(TABLE_CLASSIFY, 10, {"in_port": 2}, [Output(2)]),
        replace(a, goto=20),
        replace(a, idle_timeout=5),
    ]
    assert len({fingerprint(a), *map(fingerprint, others)}) == 1 + len(others)
    assert all(0 < fingerprint(f) < 0xFFFF_FFFF_FFFF_FFFF for f in [a, *others])


def test_a_switch_that_kept_its_flows_gets_no_flow_mod(plan, dpid):
    dp, switch = Datapath(dpid), SwitchTable()
    first = FlowSync()
    first.take_over(dpid, switch.report())  # a new bridge: empty
    switch.apply(first.messages(dp, desired(plan, NlbLogic(plan), dpid)))
    assert len(switch.entries) == len(desired(plan, NlbLogic(plan), dpid))
    # The controller dies; a new one reads the switch and wants what it holds.
    second = FlowSync()
    second.take_over(dpid, switch.report())
    assert second.messages(dp, desired(plan, NlbLogic(plan), dpid)) == []


def test_takeover_sends_only_the_difference(plan, dpid):
    dp, switch = Datapath(dpid), SwitchTable()
    sync = FlowSync()
    sync.take_over(dpid, [])
    switch.apply(sync.messages(dp, desired(plan, NlbLogic(plan), dpid)))
    before = dict(switch.entries)
    switch.entries[(0, 1, "a flow nobody named")] = 0  # foreign entries do not stay
    # Meanwhile the targets were checked, one is unhealthy: the Maglev tables differ.
    nlb = NlbLogic(plan)
    first, *rest = nlb.targets[("NLB", "TgTcp")]
    checked = [replace(first, state="unhealthy")] + [replace(t, state="healthy") for t in rest]
    nlb.set_targets("NLB", "TgTcp", checked)
    want = desired(plan, nlb, dpid)
    taker = FlowSync()
    taker.take_over(dpid, switch.report())
    msgs = taker.messages(dp, want)
    switch.apply(msgs)
    assert sorted(switch.entries.values()) == sorted(fingerprint(f) for f in want)
    kept = {k: c for k, c in before.items() if switch.entries.get(k) == c}
    adds = [m for m in msgs if m.command == ofproto_v1_3.OFPFC_ADD]
    assert len(kept) + len(adds) == len(want)  # every flow that stayed was left alone
    assert 0 < len(adds) < len(want) // 2


def test_unknown_switch_is_not_programmed_blindly(plan, dpid):
    with pytest.raises(KeyError):
        FlowSync().messages(Datapath(dpid), desired(plan, NlbLogic(plan), dpid))
