"""Pcap parsing of the probes against pcaps built by hand with scapy: handshakes and their
RTTs, retransmissions, the source addresses of marked connections at a target."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import PcapWriter

from testbed.probes import packets
from testbed.probes.clientip import classify, seen_connections
from testbed.probes.connect import marker, parse_endpoint, payload

CLIENT, NODE, TARGET, VIP = "198.51.100.10", "10.0.0.4", "10.0.1.4", "203.0.113.10"
T0 = Decimal("1795700000.000000000")


def pkt(t: str, src: str, sport: int, dst: str, dport: int, flags: str, data: bytes = b"") -> Ether:
    """One TCP packet at T0 + t seconds."""
    p = Ether() / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags)
    if data:
        p = p / Raw(data)
    p.time = T0 + Decimal(t)
    return p


def write(tmp_path, pkts: list, nano: bool = True):
    path = tmp_path / ("nano.pcap" if nano else "micro.pcap")
    writer = PcapWriter(str(path), nano=nano)
    for p in pkts:
        writer.write(p)
    writer.close()
    return path


def handshake(t_syn: str, t_synack: str, sport: int, dst: str = VIP) -> list:
    return [
        pkt(t_syn, CLIENT, sport, dst, 80, "S"),
        pkt(t_synack, dst, 80, CLIENT, sport, "SA"),
        pkt(t_synack, CLIENT, sport, dst, 80, "A"),
    ]


@pytest.mark.parametrize("nano", [True, False])
def test_known_timestamps_give_known_rtts(tmp_path, nano):
    pcap = write(
        tmp_path,
        [
            *handshake("0.000100", "0.000600", 40001),
            *handshake("0.010000", "0.012250", 40002),
            *handshake("0.020000", "0.020047", 40003, dst=TARGET),
        ],
        nano=nano,
    )
    hands = packets.handshakes(packets.read_segments(pcap))
    assert [h.sport for h in hands] == [40001, 40002, 40003]
    assert [h.rtt_ms for h in hands] == pytest.approx([0.5, 2.25, 0.047], abs=1e-9)
    assert [h.dst for h in hands] == [VIP, VIP, TARGET]
    assert all(h.syns == 1 for h in hands)


def test_nanosecond_timestamps_are_kept_exact(tmp_path):
    pcap = write(tmp_path, handshake("0.000000001", "0.000123457", 40001))
    (h,) = packets.handshakes(packets.read_segments(pcap))
    assert h.synack_time - h.syn_time == Decimal("0.000123456")
    assert h.rtt_ms == pytest.approx(0.123456, abs=1e-12)


def test_a_retransmitted_syn_is_no_sample_and_an_unanswered_one_has_no_answer(tmp_path):
    pcap = write(
        tmp_path,
        [
            pkt("0.0", CLIENT, 40001, VIP, 80, "S"),
            pkt("1.0", CLIENT, 40001, VIP, 80, "S"),  # retransmitted after 1 s
            pkt("1.0004", VIP, 80, CLIENT, 40001, "SA"),
            pkt("2.0", CLIENT, 40002, VIP, 80, "S"),  # never answered
            pkt("3.0", VIP, 80, CLIENT, 40009, "SA"),  # an answer to nothing we saw
        ],
    )
    retx, lost = packets.handshakes(packets.read_segments(pcap))
    assert (retx.syns, retx.rtt_ms) == (2, None)
    assert retx.first_syn_time == T0
    assert retx.syn_time == T0 + 1
    assert retx.synack_time == T0 + Decimal("1.0004")
    assert (lost.sport, lost.synack_time, lost.rtt_ms) == (40002, None, None)


def test_a_reused_four_tuple_gives_two_handshakes(tmp_path):
    pcap = write(tmp_path, [*handshake("0.0", "0.001", 40001), *handshake("5.0", "5.003", 40001)])
    hands = packets.handshakes(packets.read_segments(pcap))
    assert [h.rtt_ms for h in hands] == pytest.approx([1.0, 3.0])


def test_syn_ack_and_rst_are_not_openings(tmp_path):
    pcap = write(
        tmp_path,
        [
            pkt("0", CLIENT, 1, VIP, 80, "S"),
            pkt("0", VIP, 80, CLIENT, 1, "SA"),
            pkt("0", CLIENT, 1, VIP, 80, "R"),
            pkt("0", CLIENT, 2, VIP, 80, "SE"),
        ],
    )
    assert [(s.sport, s.flags) for s in packets.syns(packets.read_segments(pcap))] == [
        (1, 0x02),
        (2, 0x42),
    ]  # SYN with ECE (ECN setup) still opens a connection


def target_capture(token: str, src: str, sports: list[int], hc: int = 0) -> list:
    """What a target's eth0 sees: probe connections (SYN, ACK, marked GET) from `src`, and
    `hc` health-check SYNs from the node."""
    ep = parse_endpoint(f"http://{VIP}/")
    out = []
    for i, sport in enumerate(sports):
        t = f"0.{i + 1:03d}"
        out += [
            pkt(t, src, sport, TARGET, 80, "S"),
            pkt(t, src, sport, TARGET, 80, "A"),
            pkt(t, src, sport, TARGET, 80, "PA", payload(ep, token, seq=2 * i)),
        ]
    out += [pkt(f"0.5{i}", NODE, 61000 + i, TARGET, 80, "S") for i in range(hc)]
    return out


def test_the_marked_connections_show_the_clients_address(tmp_path):
    segs = packets.read_segments(
        write(tmp_path, target_capture("ab12", CLIENT, [50001, 50002], hc=3))
    )
    seen, others = seen_connections(
        segs, "ab12", 4, "Client1", (CLIENT,), {NODE: "MyNLB-1a", VIP: "MyNLB-1a"}
    )
    assert [(s.seq, s.src, s.sport, s.dst, s.dport) for s in seen] == [
        (0, CLIENT, 50001, TARGET, 80),
        (2, CLIENT, 50002, TARGET, 80),
    ]
    assert {(s.kind, s.who) for s in seen} == {("client", "Client1")}
    assert others == Counter({NODE: 3})  # the health checks, apart


def test_behind_snat_the_marked_connections_show_the_node(tmp_path):
    segs = packets.read_segments(write(tmp_path, target_capture("ab12", NODE, [9312, 27745], hc=2)))
    seen, others = seen_connections(segs, "ab12", 4, "Client1", (CLIENT,), {NODE: "MyNLB-1a"})
    assert [(s.src, s.sport, s.kind, s.who) for s in seen] == [
        (NODE, 9312, "lb-node", "MyNLB-1a"),
        (NODE, 27745, "lb-node", "MyNLB-1a"),
    ]
    assert others == Counter({NODE: 2})


def test_another_probes_marker_is_not_ours(tmp_path):
    segs = packets.read_segments(write(tmp_path, target_capture("ffff", CLIENT, [50001])))
    seen, others = seen_connections(segs, "ab12", 4, "Client1", (CLIENT,), {})
    assert seen == []
    assert others == Counter({CLIENT: 1})


def test_markers_do_not_match_inside_each_other():
    seg = packets.Segment(T0, CLIENT, 1, TARGET, 80, 0x18, marker("t", 10).encode())
    assert packets.marked_flows([seg], {marker("t", 1): 1, marker("t", 10): 10}) == {10: seg}


def test_classify():
    nodes = {NODE: "MyNLB-1a", VIP: "MyNLB-1a"}
    assert classify(CLIENT, "Client1", (CLIENT,), nodes) == ("client", "Client1")
    assert classify(NODE, "Client1", (CLIENT,), nodes) == ("lb-node", "MyNLB-1a")
    assert classify("10.9.9.9", "Client1", (CLIENT,), nodes) == ("other", "")
