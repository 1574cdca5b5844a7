"""GWLB flow keys (symmetric stickiness) and steering: Maglev choice, fail open, idle
timeouts, target failover (no_rebalance / rebalance) as pure logic."""

from __future__ import annotations

from collections import Counter

import pytest

from testbed.gwlb.flowkey import (
    FIVE_TUPLE,
    STICKINESS,
    THREE_TUPLE,
    TWO_TUPLE,
    describe,
    is_tcp_syn,
    key_function,
)
from testbed.gwlb.steering import REBALANCE, REMOVED, Steering, TargetState
from tests.unit.packet_data import ipv4, tcp

AZ = "us-east-1a"


def reverse(src: str, dst: str, proto: int = 6, sport: int = 40000, dport: int = 80) -> bytes:
    return ipv4(dst, src, proto, dport, sport)


@pytest.mark.parametrize("kind", STICKINESS)
@pytest.mark.parametrize("proto", [6, 17, 1, 47])
def test_keys_are_symmetric(kind, proto):
    fn = key_function(kind)
    for src, dst, sport, dport in [
        ("198.51.100.10", "10.0.1.10", 40000, 80),
        ("10.0.1.10", "10.0.1.9", 80, 80),
        ("10.0.0.1", "10.0.0.1", 5, 6),
    ]:
        key, forward = fn(ipv4(src, dst, proto, sport, dport), 0)
        back, back_forward = fn(reverse(src, dst, proto, sport, dport), 0)
        assert key == back
        if src != dst:  # the two directions are told apart (not when nothing differs)
            assert forward != back_forward


def test_key_fields_per_stickiness():
    p = ipv4("198.51.100.10", "10.0.1.10", 6, 40000, 80)
    assert describe(key_function(FIVE_TUPLE)(p, 0)[0]) == {
        "proto": 6,
        "a": "10.0.1.10:80",
        "b": "198.51.100.10:40000",
    }
    assert describe(key_function(THREE_TUPLE)(p, 0)[0]) == {
        "proto": 6,
        "a": "10.0.1.10",
        "b": "198.51.100.10",
    }
    assert describe(key_function(TWO_TUPLE)(p, 0)[0]) == {
        "proto": None,
        "a": "10.0.1.10",
        "b": "198.51.100.10",
    }
    # other ports, same 3- and 2-tuple keys; other protocol, same 2-tuple key
    q = ipv4("198.51.100.10", "10.0.1.10", 17, 5000, 53)
    assert key_function(FIVE_TUPLE)(p, 0)[0] != key_function(FIVE_TUPLE)(q, 0)[0]
    assert key_function(THREE_TUPLE)(p, 0)[0] != key_function(THREE_TUPLE)(q, 0)[0]
    assert key_function(TWO_TUPLE)(p, 0)[0] == key_function(TWO_TUPLE)(q, 0)[0]


def test_portless_protocols_and_fragments_use_the_3_tuple():
    five = key_function(FIVE_TUPLE)
    icmp = five(ipv4("10.0.0.4", "10.0.1.4", 1, 0x0800, 0x1234), 0)[0]
    assert describe(icmp) == {"proto": 1, "a": "10.0.0.4", "b": "10.0.1.4"}
    first = five(ipv4("10.0.0.4", "10.0.1.4", 17, 1, 2, frag=0x2000), 0)[0]  # MF set
    later = five(ipv4("10.0.0.4", "10.0.1.4", 17, 9, 9, frag=185), 0)[0]  # offset 1480
    assert first == later == key_function(THREE_TUPLE)(ipv4("10.0.0.4", "10.0.1.4", 17), 0)[0]


def test_tcp_syn_detection():
    assert is_tcp_syn(tcp("1.2.3.4", "5.6.7.8", 1000, 80, 0x02), 0)
    assert not is_tcp_syn(tcp("5.6.7.8", "1.2.3.4", 80, 1000, 0x12), 0)  # SYN-ACK
    assert not is_tcp_syn(tcp("1.2.3.4", "5.6.7.8", 1000, 80, 0x10), 0)  # ACK
    assert not is_tcp_syn(tcp("1.2.3.4", "5.6.7.8", 1000, 80, 0x02, frag=0x2000), 0)
    assert not is_tcp_syn(ipv4("1.2.3.4", "5.6.7.8", 17), 0)
    assert not is_tcp_syn(ipv4("1.2.3.4", "5.6.7.8", 6), 0)  # too short to hold the flags
    frame = bytes(12) + b"\x08\x00" + tcp("1.2.3.4", "5.6.7.8", 1000, 80, 0x02)
    assert is_tcp_syn(frame, 14)


def test_key_at_an_offset_inside_a_frame():
    frame = b"\x02\x00\x0a\x00\x00\x04" + bytes(6) + b"\x08\x00" + ipv4("1.2.3.4", "5.6.7.8")
    assert key_function(FIVE_TUPLE)(frame, 14) == key_function(FIVE_TUPLE)(frame[14:], 0)
    with pytest.raises(ValueError, match="unknown GWLB stickiness"):
        key_function("source_ip")


# ---- steering ------------------------------------------------------------------------
def states(**kw: str) -> list[TargetState]:
    """TargetStates of appliances named by keyword: Fw1="healthy" (AZ a), FwB_x (AZ b)."""
    return [
        TargetState(name, f"10.0.2.{i + 4}", "us-east-1b" if name.startswith("FwB") else AZ, state)
        for i, (name, state) in enumerate(kw.items())
    ]


def steering(**kw) -> Steering:
    return Steering(az=AZ, **kw)


def open_flows(s: Steering, n: int, now: float = 0.0, proto: int = 6):
    five = key_function(FIVE_TUPLE)
    flows = []
    for i in range(n):
        key, fwd = five(ipv4("198.51.100.10", "10.0.1.10", proto, 10000 + i, 80), 0)
        flows.append(s.open(key, fwd, proto, "E", now))
    return flows


def test_new_flows_spread_over_healthy_appliances_in_the_az():
    s = steering()
    s.set_targets(states(Fw1="healthy", Fw2="healthy", Fw3="unhealthy", FwB1="healthy"))
    flows = open_flows(s, 900)
    spread = Counter(f.appliance.key for f in flows)
    assert set(spread) == {"Fw1", "Fw2"}  # not the unhealthy one, not the other AZ's
    assert all(350 < n < 550 for n in spread.values())
    assert len({f.cookie for f in flows}) == 900
    assert s.cookies[flows[5].cookie] is flows[5]
    assert s.appliances["Fw1"].flows + s.appliances["Fw2"].flows == 900


def test_a_flow_and_its_reply_get_one_appliance():
    s = steering()
    s.set_targets(states(Fw1="healthy", Fw2="healthy", Fw3="healthy"))
    for kind in STICKINESS:
        fn = key_function(kind)
        for port in range(40000, 40050):
            key, _fwd = fn(ipv4("198.51.100.10", "10.0.1.10", 6, port, 80), 0)
            back, _ = fn(reverse("198.51.100.10", "10.0.1.10", 6, port, 80), 0)
            assert s.pick(key) is s.pick(back)


def test_cross_zone_uses_every_az():
    s = steering(cross_zone=True)
    s.set_targets(states(Fw1="healthy", FwB1="healthy"))
    assert {f.appliance.key for f in open_flows(s, 100)} == {"Fw1", "FwB1"}


def test_fail_open_when_nothing_is_healthy():
    s = steering()
    assert open_flows(s, 1) == [None]  # no appliance at all: the packet is dropped
    s.set_targets(states(Fw1="initial", Fw2="unhealthy", Fw3="draining"))
    assert s.fail_open
    assert {f.appliance.key for f in open_flows(s, 100)} == {"Fw1", "Fw2"}
    s.set_targets(states(Fw1="healthy", Fw2="unhealthy", Fw3="draining"))
    assert not s.fail_open
    assert [a.key for a in s.candidates] == ["Fw1"]


def test_no_rebalance_keeps_flows_on_a_failed_appliance():
    s = steering()
    s.set_targets(states(Fw1="healthy", Fw2="healthy"))
    flows = open_flows(s, 200)
    on_fw2 = [f for f in flows if f.appliance.key == "Fw2"]
    assert on_fw2
    s.set_targets(states(Fw1="healthy", Fw2="unhealthy"))
    assert all(f.appliance.key == "Fw2" for f in on_fw2)  # lost if Fw2 is dead
    assert {f.appliance.key for f in open_flows(s, 50, proto=17)} == {"Fw1"}
    s.set_targets(states(Fw1="healthy"))  # deregistered and drained: gone from the registry
    assert s.appliances["Fw2"].state == REMOVED  # kept while flows still use it
    assert all(f.appliance.key == "Fw2" for f in on_fw2)


def test_rebalance_on_unhealthy_moves_flows_at_once():
    s = steering(on_unhealthy=REBALANCE, on_deregistration=REBALANCE)
    s.set_targets(states(Fw1="healthy", Fw2="healthy", Fw3="healthy"))
    flows = open_flows(s, 300)
    before = {f.key: f.appliance.key for f in flows}
    s.set_targets(states(Fw1="healthy", Fw2="unhealthy", Fw3="healthy"))
    assert {f.appliance.key for f in flows} == {"Fw1", "Fw3"}
    moved = [f for f in flows if before[f.key] == "Fw2"]
    assert moved
    assert s.appliances["Fw2"].flows == 0
    assert s.appliances["Fw2"].rehashed_out == len(moved)
    # flows that were elsewhere stay where they were (consistent hashing, no churn)
    assert all(f.appliance.key == before[f.key] for f in flows if before[f.key] != "Fw2")
    assert any("rebalance" in e for e in s.events)


def test_rebalance_on_deregistration_waits_for_the_drain():
    s = steering(on_unhealthy=REBALANCE, on_deregistration=REBALANCE)
    s.set_targets(states(Fw1="healthy", Fw2="healthy"))
    flows = open_flows(s, 100)
    on_fw2 = [f for f in flows if f.appliance.key == "Fw2"]
    s.set_targets(states(Fw1="healthy", Fw2="draining"))
    assert all(f.appliance.key == "Fw2" for f in on_fw2)  # draining: existing flows stay
    assert {f.appliance.key for f in open_flows(s, 30, proto=17)} == {"Fw1"}
    s.set_targets(states(Fw1="healthy"))  # the deregistration delay is over
    assert all(f.appliance.key == "Fw1" for f in on_fw2)
    assert "Fw2" not in s.appliances  # nothing uses it any more


def test_rebalance_needs_a_healthy_appliance():
    s = steering(on_unhealthy=REBALANCE)
    s.set_targets(states(Fw1="healthy"))
    flows = open_flows(s, 10)
    s.set_targets(states(Fw1="unhealthy"))  # fail open: nowhere better to go
    assert all(f.appliance.key == "Fw1" for f in flows)
    s.set_targets(states(Fw1="unhealthy", Fw2="healthy"))  # scale out
    assert all(f.appliance.key == "Fw2" for f in flows)


def test_idle_timeouts_tcp_350_other_120():
    s = steering()
    s.set_targets(states(Fw1="healthy"))
    tcp = open_flows(s, 3, now=0.0, proto=6)
    five = key_function(FIVE_TUPLE)
    key, fwd = five(ipv4("10.0.1.10", "8.8.8.8", 17, 5353, 53), 0)
    udp = s.open(key, fwd, 17, "E", 0.0)
    tcp[0].last = 200.0  # traffic keeps a flow alive
    assert s.expire(120.0) == 0
    assert s.expire(120.5) == 1
    assert udp.key not in s.flows
    assert udp.cookie not in s.cookies
    assert s.expire(350.5) == 2
    assert list(s.flows) == [tcp[0].key]
    assert s.appliances["Fw1"].flows == 1
    assert s.expire(551.0) == 1
    assert s.expired == 4


def test_unknown_failover_mode_is_refused():
    with pytest.raises(ValueError, match="target_failover"):
        Steering(on_unhealthy="sometimes")
