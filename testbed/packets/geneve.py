"""GENEVE (RFC 8926) as the Gateway Load Balancer speaks it: header, option TLVs, payload.

    0                   1                   2                   3
    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
   |Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
   |        Virtual Network Identifier (VNI)       |    Reserved   |
   |          Option Class         |      Type     |R|R|R| Length  |
   |                 Variable-Length Option Data                   |

Opt Len and each option's Length count 4-byte words (the fixed 8 bytes and the option's own
4-byte header excluded). The high bit of an option's Type marks it critical.

What the lab's GWLB carries, as AWS documents it (option class 0x0108, the ELB user guide's
target group page and AWS's gwlbtun tunnel handler): every packet to an appliance has
  type 1, 8 bytes: the GWLB endpoint the flow came in through,
  type 2, 8 bytes: the attachment id (a Transit Gateway attachment; 0 here, none exist),
  type 3, 4 bytes: the flow cookie,
VNI 0, protocol 0x0800 (an IPv4 packet follows, unchanged), O and C bits clear: 32 bytes of
options, 40 bytes of GENEVE header. The appliance sends the packet back with the same options.
AWS's endpoint id is the 64-bit number of its "vpce-<17 hex>" id; the lab's endpoints have no
such number, so the lab carries b"vpce" followed by the endpoint's IPv4 address: unique within
a lab and readable in a hex dump (see endpoint_id()).

Open vSwitch's GENEVE ports speak protocol 0x6558 only (an Ethernet frame follows: 14 bytes
of MAC addresses and EtherType 0x0800 in front of the IPv4 packet), with the same options;
the appliance answers each in the format it came in (see inner_ipv4()).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address

UDP_PORT = 6081
PROTO_IPV4 = 0x0800
PROTO_IPV6 = 0x86DD
PROTO_ETHERNET = 0x6558
AWS_CLASS = 0x0108
TYPE_ENDPOINT_ID = 1
TYPE_ATTACHMENT_ID = 2
TYPE_FLOW_COOKIE = 3
CRITICAL = 0x80  # high bit of an option's type
FIXED_LEN = 8
MAX_OPTIONS_LEN = 0x3F * 4  # Opt Len is 6 bits of 4-byte words
MAX_OPTION_DATA = 0x1F * 4  # an option's Length is 5 bits of 4-byte words
ENDPOINT_TAG = b"vpce"
ETHERNET_LEN = 14  # the inner Ethernet header of protocol 0x6558: two MACs, EtherType
ETHERTYPE_IPV4 = b"\x08\x00"
GWLB_HEADER_LEN = FIXED_LEN + 12 + 12 + 8  # the three AWS options

_FIXED = struct.Struct("!BBHI")  # ver|optlen, O|C|rsvd, protocol, VNI << 8 | reserved
_OPTION = struct.Struct("!HBB")  # class, type, rsvd|length


class GeneveError(ValueError):
    """Bytes that are not a GENEVE header this lab can read."""


@dataclass(frozen=True)
class Option:
    """One option TLV: class, type (high bit: critical) and data (a multiple of 4 bytes)."""

    cls: int
    type: int
    data: bytes

    @property
    def critical(self) -> bool:
        """Whether the option is marked critical."""
        return bool(self.type & CRITICAL)

    def serialize(self) -> bytes:
        """The TLV as bytes."""
        if len(self.data) % 4 or len(self.data) > MAX_OPTION_DATA:
            raise GeneveError(
                f"option data must be 0..{MAX_OPTION_DATA} bytes in 4-byte "
                f"words, not {len(self.data)}"
            )
        return _OPTION.pack(self.cls, self.type, len(self.data) // 4) + self.data


@dataclass(frozen=True)
class Geneve:
    """A GENEVE header: what precedes the tunnelled packet in the UDP payload."""

    vni: int = 0
    protocol: int = PROTO_IPV4
    options: tuple[Option, ...] = ()
    oam: bool = False
    critical: bool = False  # the C bit: some option is critical

    def option(self, cls: int, type_: int) -> Option | None:
        """The first option of that class and type (the critical bit ignored), or None."""
        for opt in self.options:
            if opt.cls == cls and (opt.type & ~CRITICAL) == type_:
                return opt
        return None

    @property
    def endpoint_id(self) -> int | None:
        """The endpoint id option as a number, or None."""
        opt = self.option(AWS_CLASS, TYPE_ENDPOINT_ID)
        return int.from_bytes(opt.data, "big") if opt and len(opt.data) == 8 else None

    @property
    def attachment_id(self) -> int | None:
        """The attachment id option as a number, or None."""
        opt = self.option(AWS_CLASS, TYPE_ATTACHMENT_ID)
        return int.from_bytes(opt.data, "big") if opt and len(opt.data) == 8 else None

    @property
    def flow_cookie(self) -> int | None:
        """The flow cookie option as a number, or None."""
        opt = self.option(AWS_CLASS, TYPE_FLOW_COOKIE)
        return int.from_bytes(opt.data, "big") if opt and len(opt.data) == 4 else None

    @classmethod
    def parser(cls, buf: bytes | memoryview) -> tuple[Geneve, bytes]:
        """(header, tunnelled packet) from a UDP payload (os-ken's naming of parse())."""
        return parse(buf)

    def serialize(self) -> bytes:
        """The header as bytes (prepend it to the tunnelled packet)."""
        body = b"".join(o.serialize() for o in self.options)
        if len(body) > MAX_OPTIONS_LEN:
            raise GeneveError(f"options take {len(body)} bytes, at most {MAX_OPTIONS_LEN} fit")
        if not 0 <= self.vni < 1 << 24:
            raise GeneveError(f"VNI {self.vni} does not fit in 24 bits")
        flags = (0x80 if self.oam else 0) | (0x40 if self.critical else 0)
        return _FIXED.pack(len(body) // 4, flags, self.protocol, self.vni << 8) + body


def header_length(buf: bytes | memoryview) -> int:
    """Length of the GENEVE header at the start of buf (where the tunnelled packet begins).

    The hot paths use this alone: they keep the header bytes as they are."""
    if len(buf) < FIXED_LEN:
        raise GeneveError(f"{len(buf)} bytes are too short for a GENEVE header")
    if buf[0] >> 6:
        raise GeneveError(f"GENEVE version {buf[0] >> 6} (only 0 exists)")
    length = FIXED_LEN + (buf[0] & 0x3F) * 4
    if length > len(buf):
        raise GeneveError(f"options run past the end ({length} > {len(buf)} bytes)")
    return length


def parse(buf: bytes | memoryview) -> tuple[Geneve, bytes]:
    """(header, tunnelled packet) from a UDP payload; GeneveError if it is not GENEVE."""
    end = header_length(buf)
    _first, flags, protocol, vni = _FIXED.unpack_from(buf, 0)
    options = []
    at = FIXED_LEN
    while at < end:
        if at + 4 > end:
            raise GeneveError(f"an option header at byte {at} runs past the options")
        cls, type_, length = _OPTION.unpack_from(buf, at)
        data_end = at + 4 + (length & 0x1F) * 4
        if data_end > end:
            raise GeneveError(f"option {cls:#06x}/{type_} runs past the options")
        options.append(Option(cls, type_, bytes(buf[at + 4 : data_end])))
        at = data_end
    header = Geneve(
        vni >> 8, protocol, tuple(options), oam=bool(flags & 0x80), critical=bool(flags & 0x40)
    )
    return header, bytes(buf[end:])


def inner_ipv4(protocol: int, payload: bytes) -> tuple[bytes, bytes]:
    """(inner Ethernet header or b"", IPv4 packet) of what follows a GENEVE header of that
    protocol: 0x0800 (AWS) or 0x6558 with an Ethernet frame of EtherType IPv4 (Open vSwitch);
    GeneveError for anything else."""
    if protocol == PROTO_IPV4:
        return b"", payload
    if protocol == PROTO_ETHERNET:
        if len(payload) < ETHERNET_LEN or payload[12:14] != ETHERTYPE_IPV4:
            raise GeneveError("the inner Ethernet frame does not carry IPv4")
        return payload[:ETHERNET_LEN], payload[ETHERNET_LEN:]
    raise GeneveError(f"GENEVE protocol {protocol:#06x} (the GWLB carries 0x0800 or 0x6558)")


def endpoint_id(ip: str | IPv4Address) -> int:
    """The 64-bit endpoint id the lab carries for the GWLB endpoint at `ip`."""
    return int.from_bytes(ENDPOINT_TAG + IPv4Address(str(ip)).packed, "big")


def endpoint_ip(value: int) -> str | None:
    """The endpoint address inside an id made by endpoint_id(), else None."""
    raw = value.to_bytes(8, "big")
    return str(IPv4Address(raw[4:])) if raw[:4] == ENDPOINT_TAG else None


def gwlb_header(
    endpoint: int, cookie: int, attachment: int = 0, protocol: int = PROTO_IPV4
) -> Geneve:
    """The header a GWLB node puts on a packet of a flow it sends to an appliance."""
    return Geneve(
        0,
        protocol,
        (
            Option(AWS_CLASS, TYPE_ENDPOINT_ID, endpoint.to_bytes(8, "big")),
            Option(AWS_CLASS, TYPE_ATTACHMENT_ID, attachment.to_bytes(8, "big")),
            Option(AWS_CLASS, TYPE_FLOW_COOKIE, (cookie & 0xFFFFFFFF).to_bytes(4, "big")),
        ),
    )


def gwlb_fields(header: bytes | memoryview) -> tuple[int, int] | None:
    """(endpoint id, flow cookie) of a header laid out as gwlb_header() writes it, else None.

    The node's return path reads these two fields at fixed offsets (no objects per packet);
    anything laid out differently goes through parse()."""
    if len(header) != GWLB_HEADER_LEN or header[0] != 0x08:
        return None
    if header[8:12] != b"\x01\x08\x01\x02" or header[32:36] != b"\x01\x08\x03\x01":
        return None
    return int.from_bytes(header[12:20], "big"), int.from_bytes(header[36:40], "big")
