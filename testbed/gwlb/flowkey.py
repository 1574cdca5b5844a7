"""GWLB flow keys: which tuple of an IPv4 packet picks its appliance, the same both ways.

Stickiness types (target group attribute stickiness.type, as the lab plan names them):
  5-tuple                   protocol, addresses and ports (TCP, UDP, SCTP; other protocols
                            have no ports, so they fall back to the 3-tuple, as on AWS)
  source_ip_dest_ip_proto   3-tuple: protocol and the two addresses
  source_ip_dest_ip         2-tuple: the two addresses
A key is symmetric: the two endpoints are put in a fixed order (the smaller first), so a flow
and its reply have one key and therefore one appliance. Fragments carry no ports after the
first one, so every fragment is keyed by its 3-tuple (all pieces of a datagram stay together).

Keys are bytes: a dict key for the flow table and, through flow_hash(), an input to Maglev.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable

FIVE_TUPLE = "5-tuple"
THREE_TUPLE = "source_ip_dest_ip_proto"
TWO_TUPLE = "source_ip_dest_ip"
STICKINESS = (FIVE_TUPLE, THREE_TUPLE, TWO_TUPLE)
PORT_PROTOCOLS = frozenset((6, 17, 132))  # TCP, UDP, SCTP: ports follow the IP header

# (buffer, offset of the IPv4 header) -> (key, forward): forward is True when the packet goes
# from the endpoint ordered first in the key, so a flow's two directions can be told apart.
KeyFunction = Callable[[bytes, int], tuple[bytes, bool]]


def key_5tuple(buf: bytes, off: int = 0) -> tuple[bytes, bool]:
    """Protocol, addresses and ports (3-tuple for portless protocols and fragments)."""
    proto = buf[off + 9]
    a = buf[off + 12 : off + 16]
    b = buf[off + 16 : off + 20]
    # Fragment offset or more-fragments set: ports are absent or would split the datagram.
    if proto in PORT_PROTOCOLS and not (buf[off + 6] & 0x3F or buf[off + 7]):
        l4 = off + (buf[off] & 0x0F) * 4
        a += buf[l4 : l4 + 2]
        b += buf[l4 + 2 : l4 + 4]
    if a <= b:
        return bytes((proto,)) + a + b, True
    return bytes((proto,)) + b + a, False


def key_3tuple(buf: bytes, off: int = 0) -> tuple[bytes, bool]:
    """Protocol and the two addresses."""
    a = buf[off + 12 : off + 16]
    b = buf[off + 16 : off + 20]
    if a <= b:
        return buf[off + 9 : off + 10] + a + b, True
    return buf[off + 9 : off + 10] + b + a, False


def key_2tuple(buf: bytes, off: int = 0) -> tuple[bytes, bool]:
    """The two addresses."""
    a = buf[off + 12 : off + 16]
    b = buf[off + 16 : off + 20]
    return (a + b, True) if a <= b else (b + a, False)


KEY_FUNCTIONS: dict[str, KeyFunction] = {
    FIVE_TUPLE: key_5tuple,
    THREE_TUPLE: key_3tuple,
    TWO_TUPLE: key_2tuple,
}


def key_function(stickiness: str) -> KeyFunction:
    """The key function of a stickiness type (ValueError for an unknown one)."""
    try:
        return KEY_FUNCTIONS[stickiness]
    except KeyError:
        raise ValueError(
            f"unknown GWLB stickiness {stickiness!r} (known: {', '.join(STICKINESS)})"
        ) from None


def is_tcp_syn(buf: bytes, off: int = 0) -> bool:
    """Whether the IPv4 packet at `off` opens a TCP connection (SYN without ACK)."""
    if buf[off + 9] != 6 or buf[off + 6] & 0x3F or buf[off + 7]:
        return False  # not TCP, or a fragment (no TCP header to read)
    flags_at = off + (buf[off] & 0x0F) * 4 + 13
    return flags_at < len(buf) and buf[flags_at] & 0x12 == 0x02


def flow_hash(key: bytes) -> int:
    """A well-mixed 64-bit hash of a key, the same in every process (Python's hash() of
    bytes is salted per process), used once per new flow."""
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")


def describe(key: bytes) -> dict[str, object]:
    """A key in words: {"proto", "a", "b"} with "ip:port" or "ip" endpoints."""

    def endpoint(raw: bytes) -> str:
        ip = ".".join(str(x) for x in raw[:4])
        return f"{ip}:{int.from_bytes(raw[4:6], 'big')}" if len(raw) == 6 else ip

    if len(key) == 8:  # 2-tuple
        return {"proto": None, "a": endpoint(key[:4]), "b": endpoint(key[4:])}
    half = (len(key) - 1) // 2
    return {"proto": key[0], "a": endpoint(key[1 : 1 + half]), "b": endpoint(key[1 + half :])}


def key_ends(key: bytes) -> tuple[bytes, bytes]:
    """The two endpoints of a key as it holds them: 4 address bytes, or 6 with the port."""
    if len(key) == 8:  # 2-tuple
        return key[:4], key[4:]
    half = (len(key) - 1) // 2
    return key[1 : 1 + half], key[1 + half :]


def endpoint_bytes(text: str) -> bytes:
    """ "ip" or "ip:port" in the layout of key_ends() (ValueError if it is neither)."""
    ip, sep, port = text.partition(":")
    raw = ipaddress.IPv4Address(ip).packed
    if not sep:
        return raw
    if not port.isdigit() or int(port) > 0xFFFF:
        raise ValueError(f"bad port in endpoint {text!r}")
    return raw + int(port).to_bytes(2, "big")
