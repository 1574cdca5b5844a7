"""The GWLB node's view of the switch datapath (issue 15): parsing real ovs-ofctl / ovs-appctl
output, counters kept across flow replacement, and the node's status and flow rows built from
reads of the switch."""

from __future__ import annotations

import json
import time

import pytest

from testbed.gwlb import node as node_module
from testbed.gwlb import switch_view
from testbed.gwlb.node import node_config, switch_datapath
from testbed.gwlb.steering import TargetState
from testbed.gwlb.switch_node import SwitchNode, switch_zones
from testbed.gwlb.switch_view import (
    Accumulator,
    CtEntry,
    FlowStat,
    SwitchRead,
    field_value,
    learned_pairs,
    loads,
    parse_conntrack,
    parse_flows,
    switch_counters,
)
from tests.unit import switch_view_data as data
from tests.unit.test_gwlb_pieces import lb_dict

FW1, FW2 = "10.0.1.4", "10.0.1.5"  # 0x0a000104, 0x0a000105 in the samples


def test_flows_of_every_gwlb_table_are_parsed():
    flows = parse_flows(data.FLOWS)
    assert [f.table for f in flows] == [60] + [61] * 5 + [66] * 4 + [67] * 2 + [68] * 2
    ct = flows[0]
    assert (ct.priority, ct.packets, ct.bytes, ct.duration_s, ct.cookie) == (
        100,
        41,
        2844,
        30.937,
        0,
    )
    assert ct.match == {"ip": "", "reg6": "0x1"}
    assert ct.actions == "ct(table=61,zone=4001)"
    rehash = flows[1]
    assert rehash.match["ct_state"] == "+est+trk"
    assert field_value(rehash.match["ct_label"]) == (0xA00F105, 0xFFFFFFFF)
    commit = flows[7]
    assert commit.match == {"ip": "", "reg1": "0xa000105", "reg7": "0x1"}
    assert commit.actions.startswith("ct(commit,zone=4001,exec(")
    assert flows[-1].match == {"tun_src": "10.0.1.5"}


def test_flags_between_the_counters_and_the_match_are_not_match_fields():
    (f,) = parse_flows(
        " cookie=0x6, duration=0.047s, table=67, n_packets=0, n_bytes=0, reset_counts "
        "priority=100,reg1=0xa000105 actions=drop"
    )
    assert (f.cookie, f.priority, f.match) == (6, 100, {"reg1": "0xa000105"})


def test_field_values_with_masks_and_prefixes():
    assert field_value("0x1") == (1, None)
    assert field_value("10.0.1.0/24") == (0x0A000100, 0xFFFFFF00)
    assert field_value("10.0.1.4") == (0x0A000104, None)


def test_counters_per_appliance_and_endpoint_from_the_tables():
    acc = Accumulator()
    acc.update(parse_flows(data.FLOWS))
    c = switch_counters(acc.totals())
    assert c.packets_in == {1: 41}
    assert c.bytes_in == {1: 2844}
    assert c.states == {"rehash": 0, "known": 33, "new": 8, "other": 0}
    fw2 = c.appliances[FW2]
    assert (fw2.new_flows, fw2.tx_packets, fw2.tx_bytes, fw2.rx_packets) == (8, 41, 2844, 0)
    assert c.appliances[FW1].new_flows == 0
    assert c.appliances["10.0.241.5"].rehashed_out == 0  # the prio-300 flow of its label


def test_a_flow_replaced_by_an_add_keeps_its_counters_and_a_deleted_one_is_banked():
    acc = Accumulator()
    acc.update(parse_flows(data.TX_BEFORE))
    # ovs-ofctl add-flow of the same match: duration restarts, counters stay (42)
    acc.update(parse_flows(data.TX_AFTER_ADD))
    assert switch_counters(acc.totals()).appliances[FW2].tx_packets == 42
    assert acc.replaced == 0
    # del-flows then add-flow (another cookie): counters start again; the old 42 are kept
    acc.update(parse_flows(data.TX_AFTER_REPLACE))
    assert switch_counters(acc.totals()).appliances[FW2].tx_packets == 42 + 2
    assert acc.replaced == 1
    # the flow gone (appliance removed): what it counted stays
    acc.update([], tables=[67])
    assert switch_counters(acc.totals()).appliances[FW2].tx_packets == 44
    # a table not polled this time keeps its flows as they were
    acc.update(parse_flows(data.TX_AFTER_REPLACE), tables=[67])
    acc.update([], tables=[60])
    assert switch_counters(acc.totals()).appliances[FW2].tx_packets == 46


def test_conntrack_entries_name_the_appliance_and_the_cookie():
    entries = parse_conntrack(data.CONNTRACK_S)
    assert len(entries) == 8
    icmp = entries[0]
    assert (icmp.proto, icmp.src, icmp.dst, icmp.sport, icmp.icmp_id) == (
        1,
        "10.249.1.10",
        "10.249.1.20",
        None,
        11137,
    )
    assert (icmp.zone, icmp.appliance_ip, icmp.cookie) == (4001, FW2, 0x80010001)
    assert icmp.endpoint_number == 1
    assert icmp.timeout == 17
    assert icmp.reply_seen() is True
    tcp = [e for e in entries if e.proto == 6]
    assert {(e.dport, e.state) for e in tcp} == {
        (9000, "ESTABLISHED"),
        (9000, "TIME_WAIT"),
        (9002, "TIME_WAIT"),  # refused (RST): TIME_WAIT tells nothing by itself
    }
    established = [e for e in tcp if e.state == "ESTABLISHED"]
    assert len(established) == 3
    assert all(e.reply_seen() for e in established)
    assert all(e.reply_seen() is None for e in tcp if e.state == "TIME_WAIT")
    udp = {e.dport: e for e in entries if e.proto == 17}
    assert udp[9000].reply_seen() is True  # echoed: 30 s timeout
    assert udp[9001].reply_seen() is False  # nobody answered: 60 s
    # -m: per-direction TCP states; no timeouts without -s
    verbose = parse_conntrack(data.CONNTRACK_M)
    assert [e.state for e in verbose if e.sport == 45208] == ["FIN_WAIT_2"]
    assert verbose[0].timeout is None
    assert verbose[0].reply_seen() is None


def test_learned_pairs_of_2_and_3_tuple_stickiness():
    pairs = learned_pairs(parse_flows(data.LEARNED))
    assert [(p.src, p.dst, p.proto) for p in pairs] == [
        ("10.249.1.10", "10.249.1.20", None),
        ("10.249.1.20", "10.249.1.10", None),
        ("10.249.1.10", "10.249.1.20", 17),
    ]
    assert {(p.appliance_ip, p.cookie) for p in pairs} == {(FW1, 0x80010007)}
    assert loads("load:0x1->NXM_NX_REG5[],set_field:0x8->reg2") == {"reg5": 1, "reg2": 8}


# ---- the node in switch mode ----------------------------------------------------------------


def plan(tunnel_port: int | None = 64000) -> dict:
    lb = lb_dict()
    lb["target_groups"][0]["stickiness"] = "5-tuple"
    lb["zone_dnat"], lb["zone_snat"] = 4001, 4002
    node = {
        "host": "GWLB-1a",
        "az": "us-east-1a",
        "subnet": "S",
        "ip": "10.0.0.5",
        "public_ip": None,
    }
    if tunnel_port is not None:
        node["tunnel_port"] = tunnel_port
    lb["nodes"] = [node]
    return {
        "load_balancers": [lb],
        "hosts": [{"name": "GWLB-1a", "switch": "tb-x-az1"}],
        "endpoints": [
            {"name": "EndpointA", "gwlb": "GWLB", "ip": "10.0.2.4", "node_host": "GWLB-1a"},
            {"name": "EndpointB", "gwlb": "GWLB", "ip": "10.0.3.4", "node_host": "GWLB-1b"},
        ],
    }


def test_the_plan_says_which_datapath_the_node_has():
    assert switch_datapath(plan(), "GWLB-1a", "GWLB") == ("tb-x-az1", 64000)
    assert switch_datapath(plan(None), "GWLB-1a", "GWLB") is None  # tunnel_port left out
    config = node_config(plan(), "GWLB-1a", "GWLB")
    assert [(e.name, e.number, e.served) for e in config.endpoints] == [
        ("EndpointA", 1, True),
        ("EndpointB", 2, False),
    ]
    assert switch_zones(config, (4001, 4002)) == (4001,)


class FakeSwitch:
    """Answers the node's reads with the samples (what read_switch would return)."""

    def __init__(self) -> None:
        self.flows = parse_flows(data.FLOWS)
        self.conntrack = parse_conntrack(data.CONNTRACK_S)
        self.calls: list[tuple] = []

    def __call__(self, bridge: str, tables, zones) -> SwitchRead:
        self.calls.append((bridge, tuple(tables), tuple(zones)))
        flows = [f for f in self.flows if f.table in tables]
        ct = [e for e in self.conntrack if e.zone in zones]
        return SwitchRead(flows, tuple(tables), ct, time.time(), 0.01)


def switch_node(p: dict | None = None) -> tuple[SwitchNode, FakeSwitch]:
    p = p or plan()
    fake = FakeSwitch()
    # the samples' zone and addresses: conntrack zone 4001, appliances 10.0.1.4/.5
    config = node_config(p, "GWLB-1a", "GWLB")
    n = SwitchNode("GWLB-1a", "10.0.0.5", "us-east-1a", config, "tb-x-az1", 64000, reader=fake)
    n.pending = [
        TargetState("i-Fw1:6081", FW1, "us-east-1a", "healthy"),
        TargetState("i-Fw2:6081", FW2, "us-east-1a", "healthy"),
    ]
    n.apply_targets()
    return n, fake


def test_switch_node_status_counts_what_the_switch_counted():
    n, fake = switch_node()
    n.read_counters()
    status = n.status()
    assert fake.calls == [("tb-x-az1", (60, 61, 66, 67, 68), ())]  # counters: no conntrack
    assert (status["datapath"], status["bridge"], status["tunnel_port"]) == (
        "switch",
        "tb-x-az1",
        64000,
    )
    assert (status["packets_in"], status["bytes_in"], status["new_flows"]) == (41, 2844, 8)
    assert status["process_packets"] == 0
    by_key = {a["key"]: a for a in status["appliances"]}
    assert by_key["i-Fw2:6081"]["tx_packets"] == 41
    assert by_key["i-Fw2:6081"]["new_flows"] == 8
    assert by_key["i-Fw1:6081"]["new_flows"] == 0
    assert by_key["i-Fw2:6081"]["fwd_packets"] is None
    json.dumps(status)  # the status file and /status


def test_switch_node_flow_rows_come_from_conntrack_labels():
    n, fake = switch_node()
    rows = n.flow_rows()
    assert fake.calls[-1] == ("tb-x-az1", (), (4001,))
    assert len(rows) == 8
    assert {r["appliance"] for r in rows} == {"i-Fw2:6081"}
    assert {r["endpoint"] for r in rows} == {"EndpointA"}
    assert {r["cookie"] for r in rows} == {0x80010001}
    (held,) = n.flow_rows(end="10.249.1.10:45196")
    assert {held["a"], held["b"]} == {"10.249.1.10:45196", "10.249.1.20:9000"}
    assert (held["proto"], held["state"], held["established"]) == (6, "ESTABLISHED", True)
    assert held["fwd_packets"] is None
    assert held["age_s"] >= 0
    refused = n.flow_rows(end="10.249.1.20:9002")
    assert [r["established"] for r in refused] == [False]
    icmp = [r for r in rows if r["proto"] == 1]
    assert icmp[0]["a"] == "10.249.1.10"  # no ports in a portless key
    assert n.status()["flows"] == 8
    assert n.status()["appliances"][1]["flows"] == 8
    with pytest.raises(ValueError, match="bad port"):
        n.flow_rows(end="10.0.4.4:x")


def test_switch_node_keeps_rows_of_its_own_endpoints_and_forgets_gone_flows():
    n, fake = switch_node()
    other = CtEntry(6, "1.1.1.1", "2.2.2.2", 1, 2, 4001, (0x80020003 << 32) | 0x0A000104)
    fake.conntrack.append(other)  # EndpointB's: GWLB-1b's flow in the same zone
    assert len(n.flow_rows()) == 8
    fake.conntrack = fake.conntrack[:2]
    n.flows_read_at = 0.0
    assert len(n.flow_rows()) == 2
    assert n.expired == 6


def test_state_flows_with_a_label_of_a_choice_are_not_rehashes():
    """The controller's flow for every flow conntrack knows a choice of matches the label's
    top bit; only a failed appliance's flow matches an address (mask 0xffffffff)."""
    chosen, failed = parse_flows(
        " cookie=0x0, duration=1.0s, table=61, n_packets=7, n_bytes=700, priority=200,"
        "ct_state=+trk,ct_label=0x8000000000000000/0x8000000000000000 actions=resubmit(,63)\n"
        " cookie=0x0, duration=1.0s, table=61, n_packets=2, n_bytes=200, priority=300,"
        "ct_state=+trk,ct_label=0xa000104/0xffffffff,reg6=0x1 actions=resubmit(,62)"
    )
    c = switch_counters([(chosen, 7, 700), (failed, 2, 200)])
    assert c.states == {"known": 7, "rehash": 2}
    assert {ip: a.rehashed_out for ip, a in c.appliances.items()} == {FW1: 2}


def test_switch_node_logs_flows_the_switch_rehashed():
    n, fake = switch_node()
    n.read_counters()
    moved = FlowStat(
        61, 300, {"ct_state": "+est+trk", "ct_label": "0xa000104/0xffffffff"}, "", 0, 1.0, 3, 300
    )
    fake.flows.append(moved)
    n.read_counters()
    status = n.status()
    assert {a["key"]: a["rehashed_out"] for a in status["appliances"]}["i-Fw1:6081"] == 3
    assert any("rebalance: 3 flows of i-Fw1:6081 rehashed" in e for e in status["events"])


def test_sticky_switch_node_rows_are_the_learned_pairs():
    p = plan()
    p["load_balancers"][0]["target_groups"][0]["stickiness"] = "source_ip_dest_ip"
    n, fake = switch_node(p)
    fake.flows += parse_flows(data.LEARNED)
    rows = n.flow_rows()
    assert fake.calls[-1] == ("tb-x-az1", (65,), ())
    assert [(r["proto"], r["a"], r["b"]) for r in rows] == [
        (None, "10.249.1.10", "10.249.1.20"),  # both orientations: one flow
        (17, "10.249.1.10", "10.249.1.20"),
    ]
    assert {r["appliance"] for r in rows} == {"i-Fw1:6081"}


def test_node_main_picks_the_switch_datapath(tmp_path, monkeypatch):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan()))
    made = {}

    class Stop(Exception):
        pass

    def fake_run(self) -> None:
        made["node"] = self
        raise Stop

    monkeypatch.setattr("testbed.gwlb.switch_node.SwitchNode.run", fake_run)
    monkeypatch.setattr(node_module.admin, "serve", lambda *a, **k: None)
    monkeypatch.setattr(node_module, "poll_targets", lambda node, holder: None)
    with pytest.raises(Stop):
        node_module.main(
            [
                "--host",
                "GWLB-1a",
                "--lb",
                "GWLB",
                "--az",
                "us-east-1a",
                "--ip",
                "10.0.0.5",
                "--plan",
                str(path),
                "--holder",
                str(tmp_path / "holder.sock"),
                "--no-health-checks",
            ]
        )
    assert isinstance(made["node"], SwitchNode)
    assert (made["node"].bridge, made["node"].tunnel_port) == ("tb-x-az1", 64000)


def test_switch_node_reads_counters_when_asked_and_not_more_often_than_it_must():
    n, fake = switch_node()
    n.status()  # the status file's writer: as last read
    assert fake.calls == []
    assert n.status(fresh=True)["packets_in"] == 41  # /status: read now
    n.status(fresh=True)  # again at once: the read is recent enough
    assert len(fake.calls) == 1
    n.counters_read_at -= 1.0
    n.status(fresh=True)
    assert len(fake.calls) == 2


def test_the_tables_read_are_the_controllers():
    from testbed.controllers import flows, gwlb

    assert (
        switch_view.TABLE_GWLB_CT,
        switch_view.TABLE_GWLB_STATE,
        switch_view.TABLE_GWLB_STICKY,
        switch_view.TABLE_GWLB_COMMIT,
        switch_view.TABLE_GWLB_TX,
        switch_view.TABLE_GWLB_RX,
    ) == (
        flows.TABLE_GWLB_CT,
        flows.TABLE_GWLB_STATE,
        flows.TABLE_GWLB_STICKY,
        flows.TABLE_GWLB_COMMIT,
        flows.TABLE_GWLB_TX,
        flows.TABLE_GWLB_RX,
    )
    assert (switch_view.COMMIT_NEW, switch_view.COMMIT_REHASH) == (gwlb.KIND_NEW, gwlb.KIND_REHASH)
    assert switch_view.COOKIE_FLAG == gwlb.COOKIE_FLAG
    assert gwlb.flow_cookie(3, 7) >> 16 & 0x7FFF == 3  # CtEntry.endpoint_number reads it so
