"""The PROXY protocol, versions 1 and 2 (HAProxy's proxy-protocol.txt), as a receiver reads it.

A proxy that does not preserve the client's address (a Classic Load Balancer's TCP listener
with a ProxyProtocolPolicyType policy, HAProxy's `send-proxy`) opens each connection to the
server with one header naming the connection it relays:

  v1  text, one line of at most 107 bytes:
        PROXY TCP4 192.0.2.10 10.0.1.4 51000 9000\\r\\n     (TCP6: IPv6 addresses)
        PROXY UNKNOWN\\r\\n                                  (anything up to CRLF ignored)
  v2  binary: the 12-byte signature 0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A, a version/command
      byte (0x20 LOCAL, 0x21 PROXY), a family/transport byte (0x11 TCP over IPv4, 0x21 TCP
      over IPv6, 0x12 / 0x22 UDP, 0x31 / 0x32 UNIX, 0x00 unspecified), the length of the rest
      (big-endian 16 bits), then the addresses (IPv4: source, destination, source port,
      destination port: 12 bytes; IPv6: 36; UNIX: 216) and TLVs (skipped here).
A LOCAL command (the proxy's own connection, e.g. a health check), v1 UNKNOWN and an
unspecified v2 family carry no addresses: the receiver uses the connection's own.
Anything that starts like a header and is not a valid one is an error: the receiver closes the
connection, as servers that expect the protocol do.

`detect` looks at the first bytes of a connection only; `parse` consumes one header;
`v1_header` and `v2_header` build them (for tests and clients).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Any, Literal

V1_PREFIX = b"PROXY "
V1_MAX = 107  # the longest v1 line, CRLF included
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED = 16  # signature, version/command, family/transport, length
V2_ADDRESS_BYTES = {0x1: 12, 0x2: 36, 0x3: 216}  # by family: INET, INET6, UNIX
V2_FAMILIES = {0x0: "UNSPEC", 0x1: "INET", 0x2: "INET6", 0x3: "UNIX"}
V2_TRANSPORTS = {0x0: "UNSPEC", 0x1: "STREAM", 0x2: "DGRAM"}

Detected = Literal["none", "more", "v1", "v2"]


class ProxyHeaderError(ValueError):
    """The connection starts like a PROXY header but is not a valid one."""


@dataclass(frozen=True)
class ProxyHeader:
    """What one header carried; the addresses are None when it carried none (v1 UNKNOWN,
    v2 LOCAL, an unspecified or UNIX family)."""

    version: int  # 1 or 2
    command: str  # PROXY | LOCAL (v2 only)
    protocol: str  # TCP4 | TCP6 | UNKNOWN (v1); TCP4 | TCP6 | UDP4 | UDP6 | UNIX | UNSPEC (v2)
    source_ip: str | None = None
    source_port: int | None = None
    destination_ip: str | None = None
    destination_port: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "command": self.command,
            "protocol": self.protocol,
            "source_ip": self.source_ip,
            "source_port": self.source_port,
            "destination_ip": self.destination_ip,
            "destination_port": self.destination_port,
        }


def detect(data: bytes) -> Detected:
    """Whether a connection that starts with `data` opens with a header: "v1", "v2", "none",
    or "more" while `data` is too short to tell (b"P" may be "PROXY " or "POST")."""
    if V1_PREFIX.startswith(data[: len(V1_PREFIX)]):
        return "v1" if len(data) >= len(V1_PREFIX) else "more"
    if V2_SIGNATURE.startswith(data[: len(V2_SIGNATURE)]):
        return "v2" if len(data) >= len(V2_SIGNATURE) else "more"
    return "none"


def parse(data: bytes) -> tuple[ProxyHeader | None, int] | None:
    """The header at the start of `data` and its length in bytes; (None, 0) when `data` does
    not start with one; None while more bytes are needed. ProxyHeaderError if malformed."""
    kind = detect(data)
    if kind == "none":
        return None, 0
    if kind == "more":
        return None
    return _parse_v1(data) if kind == "v1" else _parse_v2(data)


def _parse_v1(data: bytes) -> tuple[ProxyHeader, int] | None:
    newline = data.find(b"\n", 0, V1_MAX)
    if newline < 0:
        if len(data) >= V1_MAX:
            raise ProxyHeaderError(f"v1 header without CRLF in its first {V1_MAX} bytes")
        return None
    if data[newline - 1 : newline] != b"\r":
        raise ProxyHeaderError("v1 header ends with LF alone (CRLF expected)")
    end = newline - 1
    try:
        line = data[:end].decode("ascii")
    except UnicodeDecodeError:
        raise ProxyHeaderError("v1 header is not ASCII") from None
    parts = line.split(" ")
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        return ProxyHeader(1, "PROXY", "UNKNOWN"), end + 2  # the rest of the line is ignored
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError(f"bad v1 header {line!r}: PROXY TCP4|TCP6 SRC DST SPORT DPORT")
    kind = ipaddress.IPv4Address if parts[1] == "TCP4" else ipaddress.IPv6Address
    try:
        src, dst = kind(parts[2]), kind(parts[3])
    except ValueError:
        raise ProxyHeaderError(f"bad {parts[1]} address in v1 header {line!r}") from None
    sport, dport = _port(parts[4], line), _port(parts[5], line)
    return ProxyHeader(1, "PROXY", parts[1], str(src), sport, str(dst), dport), end + 2


def _port(text: str, line: str) -> int:
    # Digits only, no sign, no leading zero (the spec's form), 0-65535.
    if not text.isdigit() or not text.isascii() or (len(text) > 1 and text[0] == "0"):
        raise ProxyHeaderError(f"bad port {text!r} in v1 header {line!r}")
    port = int(text)
    if port > 65535:
        raise ProxyHeaderError(f"port {port} out of range in v1 header {line!r}")
    return port


def _parse_v2(data: bytes) -> tuple[ProxyHeader, int] | None:
    if len(data) < V2_FIXED:
        return None
    ver_cmd, fam, length = data[12], data[13], int.from_bytes(data[14:16], "big")
    if ver_cmd >> 4 != 2:
        raise ProxyHeaderError(f"v2 header with version {ver_cmd >> 4}")
    command = {0x0: "LOCAL", 0x1: "PROXY"}.get(ver_cmd & 0xF)
    if command is None:
        raise ProxyHeaderError(f"v2 header with command {ver_cmd & 0xF}")
    family, transport = V2_FAMILIES.get(fam >> 4), V2_TRANSPORTS.get(fam & 0xF)
    if family is None or transport is None:
        raise ProxyHeaderError(f"v2 header with family/transport 0x{fam:02x}")
    total = V2_FIXED + length
    if len(data) < total:
        return None
    need = V2_ADDRESS_BYTES.get(fam >> 4, 0)
    if length < need:
        raise ProxyHeaderError(f"v2 header: {length} bytes of addresses, {family} needs {need}")
    protocol = _v2_protocol(family, transport)
    if command == "LOCAL" or family in ("UNSPEC", "UNIX"):
        return ProxyHeader(2, command, protocol), total
    block = data[V2_FIXED : V2_FIXED + need]
    size = 4 if family == "INET" else 16
    src = ipaddress.ip_address(block[:size])
    dst = ipaddress.ip_address(block[size : 2 * size])
    sport, dport = struct.unpack("!HH", block[2 * size : 2 * size + 4])
    return ProxyHeader(2, command, protocol, str(src), sport, str(dst), dport), total


def _v2_protocol(family: str, transport: str) -> str:
    if family in ("UNSPEC", "UNIX"):
        return family
    kind = {"STREAM": "TCP", "DGRAM": "UDP"}.get(transport, "UNSPEC")
    return f"{kind}{4 if family == 'INET' else 6}" if kind != "UNSPEC" else "UNSPEC"


def v1_header(src: str | None, dst: str | None, sport: int = 0, dport: int = 0) -> bytes:
    """A v1 header (PROXY UNKNOWN when `src` is None)."""
    if src is None or dst is None:
        return b"PROXY UNKNOWN\r\n"
    family = "TCP4" if ipaddress.ip_address(src).version == 4 else "TCP6"
    return f"PROXY {family} {src} {dst} {sport} {dport}\r\n".encode()


def v2_header(
    src: str | None,
    dst: str | None,
    sport: int = 0,
    dport: int = 0,
    local: bool = False,
    tlvs: bytes = b"",
) -> bytes:
    """A v2 header of a TCP connection (LOCAL, without addresses, when `local` or `src` is
    None), with `tlvs` appended to its address block."""
    if local or src is None or dst is None:
        return V2_SIGNATURE + bytes([0x20, 0x00]) + len(tlvs).to_bytes(2, "big") + tlvs
    a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    fam = 0x11 if a.version == 4 else 0x21
    block = a.packed + b.packed + struct.pack("!HH", sport, dport) + tlvs
    return V2_SIGNATURE + bytes([0x21, fam]) + len(block).to_bytes(2, "big") + block
