"""Packets built by hand for the GWLB tests."""

from __future__ import annotations

import socket
import struct


def ipv4(
    src: str, dst: str, proto: int = 6, sport: int = 40000, dport: int = 80, frag: int = 0
) -> bytes:
    """An IPv4 header (20 bytes) and the first 4 bytes of an L4 header (the ports)."""
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        24,
        1,
        frag,
        64,
        proto,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    return header + struct.pack("!HH", sport, dport)


def tcp(src: str, dst: str, sport: int, dport: int, flags: int, frag: int = 0) -> bytes:
    """An IPv4 TCP segment without payload: 20-byte IPv4 and TCP headers (flags: 0x02 SYN,
    0x10 ACK, 0x12 SYN-ACK)."""
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        40,
        1,
        frag,
        64,
        6,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    return header + struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 65535, 0, 0)
