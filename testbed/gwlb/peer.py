"""Play a GWLB node to one appliance: send it GENEVE, collect what comes back.

Used by the appliance's tests and benchmarks, from a lab host next to the appliance:

    python -m testbed.gwlb.peer --bind 10.0.0.5 --to 10.0.0.4 \
        --flow tcp:198.51.100.10:40000:10.0.1.10:80 --flow tcp:198.51.100.10:40001:10.0.1.10:23
    python -m testbed.gwlb.peer --bind 10.0.0.5 --to 10.0.0.4 --bench 5 --flows 64 --size 512

Each flow is sent with its own flow cookie (its index + 1) and an endpoint id naming
--endpoint; the answer (JSON on stdout) says per flow how many packets came back, whether
the GENEVE header came back unchanged and the inner packet's TTL. --bench sends as fast as
it can for that many seconds and reports packets/s and Mbit/s sent and returned. --rtt N
sends the first flow's packet N times, one at a time, each when the previous came back, and
reports the round trip's percentiles: what the appliance adds to a packet's latency.
--ethernet sends what Open vSwitch sends: protocol 0x6558, an Ethernet header in front of the
inner packet (it must come back unchanged too); without it, AWS's protocol 0x0800.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import threading
import time
from typing import Any

from testbed.packets import geneve

PROTOS = {"tcp": 6, "udp": 17, "icmp": 1}
# The inner Ethernet header of --ethernet: destination, source (locally administered), IPv4.
INNER_ETHERNET = bytes.fromhex("0200000a00010200000a00020800")


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def inner_packet(
    proto: int, src: str, sport: int, dst: str, dport: int, size: int = 60, ttl: int = 64
) -> bytes:
    """An IPv4 packet of `size` bytes (TCP: a SYN with an MSS option; UDP: zero payload;
    ICMP: an echo request), checksums right."""
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    if proto == 6:
        l4 = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 6 << 4, 0x02, 64240, 0, 0)
        l4 += b"\x02\x04\x05\xb4"  # MSS 1460 (the appliance clamps it)
    elif proto == 17:
        l4 = struct.pack("!HHHH", sport, dport, 0, 0)
    else:
        l4 = struct.pack("!BBHHH", 8, 0, 0, sport, 1)
    l4 += bytes(max(0, size - 20 - len(l4)))
    if proto == 17:
        l4 = l4[:4] + struct.pack("!H", len(l4)) + l4[6:]
    pseudo = s + d + struct.pack("!BBH", 0, proto, len(l4))
    ck = checksum(l4) if proto == 1 else checksum(pseudo + l4)
    at = {6: 16, 17: 6, 1: 2}.get(proto, 2)
    l4 = l4[:at] + struct.pack("!H", ck) + l4[at + 2 :]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0x4000, ttl, proto, 0, s, d)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + l4


def parse_flow(text: str) -> tuple[int, str, int, str, int]:
    """'tcp:SRC:SPORT:DST:DPORT' -> (proto, src, sport, dst, dport)."""
    try:
        proto, src, sport, dst, dport = text.split(":")
        return PROTOS[proto], src, int(sport), dst, int(dport)
    except (ValueError, KeyError):
        raise ValueError(
            f"flow {text!r}: PROTO:SRC:SPORT:DST:DPORT, PROTO one of {', '.join(PROTOS)}"
        ) from None


def exchange(
    sock: socket.socket, to: str, flows: list[bytes], headers: list[bytes], count: int, wait: float
) -> list[dict[str, Any]]:
    """Send every flow `count` times, then collect answers for `wait` seconds."""
    for _ in range(count):
        for outer, packet in zip(headers, flows):
            sock.sendto(outer + packet, (to, geneve.UDP_PORT))
    results: list[dict[str, Any]] = [
        {"sent": count, "returned": 0, "header_unchanged": True, "ttl": None, "from": None}
        for _ in flows
    ]
    deadline = time.monotonic() + wait
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            data, addr = sock.recvfrom(65535)
        except TimeoutError:
            break
        header, payload = geneve.parse(data)
        _ethernet, inner = geneve.inner_ipv4(header.protocol, payload)
        index = (header.flow_cookie or 0) - 1
        if not 0 <= index < len(flows):
            continue
        r = results[index]
        r["returned"] += 1
        r["header_unchanged"] &= data[: len(headers[index])] == headers[index]
        r["ttl"], r["from"] = inner[8], f"{addr[0]}:{addr[1]}"
        r["same_packet_but_ttl"] = (
            inner[:8] + inner[9:10] + inner[12:]
            == flows[index][:8] + flows[index][9:10] + flows[index][12:]
        )
    return results


def bench(
    sock: socket.socket, to: str, flows: list[bytes], headers: list[bytes], seconds: float
) -> dict[str, Any]:
    """Send as fast as possible for `seconds`; count what comes back meanwhile."""
    got = {"packets": 0, "bytes": 0}
    sent_all = threading.Event()

    def receive() -> None:
        # Until the sender has stopped and 0.2 s passed with nothing more: the stragglers
        # still in the appliance when the sender stopped are counted too.
        sock.settimeout(0.2)
        while True:
            try:
                data = sock.recv(65535)
            except TimeoutError:
                if sent_all.is_set():
                    return
                continue
            got["packets"] += 1
            got["bytes"] += len(data) - len(headers[0])

    datagrams = [h + p for h, p in zip(headers, flows)]
    addr = (to, geneve.UDP_PORT)
    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()
    sent = sent_bytes = 0
    t0 = time.monotonic()
    end = t0 + seconds
    while time.monotonic() < end:
        for d in datagrams:
            try:
                sock.sendto(d, addr)
            except OSError:
                continue  # the socket buffer is full: the appliance is the bottleneck
            sent += 1
            sent_bytes += len(d) - len(headers[0])
    elapsed = time.monotonic() - t0
    sent_all.set()
    receiver.join(timeout=10)
    return {
        "seconds": round(elapsed, 3),
        "sent_packets": sent,
        "sent_pps": round(sent / elapsed),
        "returned_packets": got["packets"],
        "returned_pps": round(got["packets"] / elapsed),
        "returned_mbps": round(got["bytes"] * 8 / elapsed / 1e6, 2),
        "sent_mbps": round(sent_bytes * 8 / elapsed / 1e6, 2),
    }


def round_trips(
    sock: socket.socket, to: str, packet: bytes, header: bytes, count: int
) -> dict[str, Any]:
    """One packet in flight at a time, `count` times: round trip percentiles in us (a packet
    not back within a second is counted lost and sent again)."""
    sock.settimeout(1.0)
    datagram, addr = header + packet, (to, geneve.UDP_PORT)
    samples: list[float] = []
    lost = 0
    for _ in range(count):
        t0 = time.perf_counter()
        sock.sendto(datagram, addr)
        try:
            sock.recv(65535)
        except TimeoutError:
            lost += 1
            continue
        samples.append((time.perf_counter() - t0) * 1e6)
    samples.sort()

    def pct(q: float) -> float | None:
        return round(samples[min(len(samples) - 1, int(q * len(samples)))], 1) if samples else None

    return {"samples": len(samples), "lost": lost, "p50_us": pct(0.5), "p90_us": pct(0.9)}


def main(argv: list[str] | None = None) -> int:
    """Send, collect, print JSON."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--bind", required=True, help="this host's address (GENEVE comes back)")
    ap.add_argument("--to", required=True, help="the appliance's address")
    ap.add_argument("--endpoint", default="10.0.0.100", help="endpoint address in the ids")
    ap.add_argument("--flow", action="append", default=[], help="PROTO:SRC:SPORT:DST:DPORT")
    ap.add_argument("--count", type=int, default=3, help="packets per flow")
    ap.add_argument("--size", type=int, default=60, help="inner packet size in bytes")
    ap.add_argument("--wait", type=float, default=1.0, help="seconds to wait for answers")
    ap.add_argument("--bench", type=float, default=0.0, help="benchmark for this many s")
    ap.add_argument("--flows", type=int, default=16, help="--bench: UDP flows to spread")
    ap.add_argument("--rtt", type=int, default=0, help="round trips of one packet to time")
    ap.add_argument("--ethernet", action="store_true", help="protocol 0x6558 (inner Ethernet)")
    a = ap.parse_args(argv)
    try:
        specs = [parse_flow(f) for f in a.flow]
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if a.rtt and not specs:
        specs = [(17, "198.51.100.10", 20000, "10.0.1.10", 9000)]
    if a.bench and not specs:
        specs = [(17, "198.51.100.10", 20000 + i, "10.0.1.10", 9000) for i in range(a.flows)]
    packets = [inner_packet(p, s, sp, d, dp, a.size) for p, s, sp, d, dp in specs]
    eid = geneve.endpoint_id(a.endpoint)
    protocol, prefix = (
        (geneve.PROTO_ETHERNET, INNER_ETHERNET) if a.ethernet else (geneve.PROTO_IPV4, b"")
    )
    # What precedes each inner packet, and must come back unchanged.
    headers = [
        geneve.gwlb_header(eid, i + 1, protocol=protocol).serialize() + prefix
        for i in range(len(packets))
    ]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.setsockopt(socket.IPPROTO_IP, 10, 0)  # IP_MTU_DISCOVER: fragment, do not refuse
    sock.bind((a.bind, geneve.UDP_PORT))
    if a.rtt:
        out: Any = round_trips(sock, a.to, packets[0], headers[0], a.rtt)
    elif a.bench:
        out = bench(sock, a.to, packets, headers, a.bench)
    else:
        out = exchange(sock, a.to, packets, headers, a.count, a.wait)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
