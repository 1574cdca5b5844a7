"""What the probes read from a pcap (with scapy): SYNs, handshakes with their RTT, and the
connections that carried a probe's marker.

Timestamps stay exact decimals (scapy's EDecimal, nanoseconds from tcpdump's nano pcaps)
until a difference is taken: a float of an epoch time only resolves ~0.2 µs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

SYN = 0x02
ACK = 0x10
RST = 0x04

FlowKey = tuple[str, int, str, int]  # src, sport, dst, dport


@dataclass(frozen=True)
class Segment:
    """The fields of one IPv4 TCP packet the probes use."""

    time: Decimal
    src: str
    sport: int
    dst: str
    dport: int
    flags: int
    payload: bytes

    @property
    def key(self) -> FlowKey:
        return (self.src, self.sport, self.dst, self.dport)

    @property
    def reverse_key(self) -> FlowKey:
        return (self.dst, self.dport, self.src, self.sport)

    @property
    def is_syn(self) -> bool:
        return self.flags & (SYN | ACK) == SYN

    @property
    def is_synack(self) -> bool:
        return self.flags & (SYN | ACK) == SYN | ACK


@dataclass(frozen=True)
class Handshake:
    """A SYN and the SYN-ACK that answered it (synack_time None: never answered)."""

    src: str
    sport: int
    dst: str
    dport: int
    first_syn_time: Decimal
    syn_time: Decimal  # the last SYN before the answer (the first one unless retransmitted)
    synack_time: Decimal | None
    syns: int  # > 1: the SYN was retransmitted, and which one was answered is ambiguous

    @property
    def key(self) -> FlowKey:
        return (self.src, self.sport, self.dst, self.dport)

    @property
    def rtt_ms(self) -> float | None:
        """SYN -> SYN-ACK in milliseconds; None if unanswered or ambiguous (Karn's rule)."""
        if self.synack_time is None or self.syns != 1:
            return None
        return float((self.synack_time - self.syn_time) * 1000)


def segments(packets: Iterable[Any]) -> list[Segment]:
    """The IPv4 TCP packets among scapy packets, in capture order."""
    from scapy.layers.inet import IP, TCP

    out = []
    for pkt in packets:
        if IP not in pkt or TCP not in pkt:
            continue
        ip, tcp = pkt[IP], pkt[TCP]
        out.append(
            Segment(
                Decimal(str(pkt.time)),
                ip.src,
                int(tcp.sport),
                ip.dst,
                int(tcp.dport),
                int(tcp.flags),
                bytes(tcp.payload),
            )
        )
    return out


def read_segments(pcap: str | Path) -> list[Segment]:
    """The TCP segments of a pcap file."""
    # The layers register themselves with the pcap reader on import: without them every
    # packet would come back as Raw bytes.
    import scapy.layers.inet
    import scapy.layers.l2  # noqa: F401
    from scapy.utils import rdpcap

    return segments(rdpcap(str(pcap)))


def syns(segs: Iterable[Segment]) -> list[Segment]:
    """Connection openings: SYN without ACK."""
    return [s for s in segs if s.is_syn]


def handshakes(segs: Iterable[Segment]) -> list[Handshake]:
    """Every opened connection paired with its SYN-ACK, in the order the SYNs appeared."""
    pending: dict[FlowKey, list[Any]] = {}  # key -> [first SYN time, last SYN time, count]
    done: list[tuple[Decimal, Handshake]] = []
    for s in segs:
        if s.is_syn:
            entry = pending.setdefault(s.key, [s.time, s.time, 0])
            entry[1], entry[2] = s.time, entry[2] + 1
        elif s.is_synack and s.reverse_key in pending:
            first, last, count = pending.pop(s.reverse_key)
            done.append((first, Handshake(*s.reverse_key, first, last, s.time, count)))
    for key, (first, last, count) in pending.items():
        done.append((first, Handshake(*key, first, last, None, count)))
    return [h for _, h in sorted(done, key=lambda pair: pair[0])]


def marked_flows(segs: Iterable[Segment], markers: Mapping[str, int]) -> dict[int, Segment]:
    """For each marker (text -> probe seq), the first segment whose payload carries it."""
    wanted = {m.encode(): seq for m, seq in markers.items()}
    found: dict[int, Segment] = {}
    for s in segs:
        if not s.payload:
            continue
        for mark, seq in wanted.items():
            if seq not in found and mark in s.payload:
                found[seq] = s
    return found


def opening_syn(segs: Iterable[Segment], key: FlowKey, before: Decimal) -> Segment | None:
    """The last SYN of flow `key` at or before `before` (the one that opened the connection
    a later segment belongs to, even if the 4-tuple was used before)."""
    match = None
    for s in segs:
        if s.time > before:
            break
        if s.is_syn and s.key == key:
            match = s
    return match
