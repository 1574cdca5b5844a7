"""The PROXY protocol (v1, v2): the parser against headers built by hand, and the http-backend
role reading headers on its HTTP and TCP listeners, with real sockets on 127.0.0.1.

Each scenario connects from its own loopback source address (127.0.0.N): the backend
remembers, per peer, whether its TCP connections opened with a header."""

from __future__ import annotations

import json
import select
import socket
import struct
from itertools import count

import pytest

from testbed.roles import proxy_protocol as pp
from testbed.roles.http_backend import HEADER_WAIT_S
from testbed.roles.proxy_protocol import ProxyHeader, ProxyHeaderError
from tests.unit.test_backend_and_load import start_backend

V2_SIG = bytes.fromhex("0d0a0d0a000d0a515549540a")
SOURCES = count(2)


# ---- the parser -------------------------------------------------------------------------
def test_v1_tcp4_tcp6_and_unknown():
    header, used = pp.parse(b"PROXY TCP4 192.0.2.10 10.0.1.4 51000 9000\r\nGET / HTTP/1.1")
    assert used == len(b"PROXY TCP4 192.0.2.10 10.0.1.4 51000 9000\r\n")
    assert header == ProxyHeader(1, "PROXY", "TCP4", "192.0.2.10", 51000, "10.0.1.4", 9000)
    header, _ = pp.parse(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n")
    assert (header.protocol, header.source_ip, header.destination_port) == (
        "TCP6",
        "2001:db8::1",
        65535,
    )
    # UNKNOWN: whatever follows up to CRLF is ignored, no addresses.
    header, used = pp.parse(b"PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\nxyz")
    assert header == ProxyHeader(1, "PROXY", "UNKNOWN")
    assert used == len(b"PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\n")
    assert pp.parse(b"PROXY UNKNOWN\r\n") == (ProxyHeader(1, "PROXY", "UNKNOWN"), 15)


def test_v2_bytes_built_by_hand():
    # PROXY, AF_INET/STREAM, 12 address bytes + a 4-byte TLV (type 0x04 NOOP, length 1).
    tlv = bytes([0x04, 0x00, 0x01, 0x00])
    header = (
        V2_SIG
        + bytes([0x21, 0x11])
        + struct.pack("!H", 12 + len(tlv))
        + bytes([192, 0, 2, 10, 10, 0, 1, 4])
        + struct.pack("!HH", 51000, 9000)
        + tlv
    )
    assert pp.v2_header("192.0.2.10", "10.0.1.4", 51000, 9000, tlvs=tlv) == header
    parsed, used = pp.parse(header + b"rest")
    assert used == len(header)
    assert parsed == ProxyHeader(2, "PROXY", "TCP4", "192.0.2.10", 51000, "10.0.1.4", 9000)
    assert parsed.as_dict()["source_port"] == 51000
    # LOCAL: no addresses (the proxy's own connection).
    local = V2_SIG + bytes([0x20, 0x00, 0x00, 0x00])
    assert pp.v2_header(None, None, local=True) == local
    assert pp.parse(local) == (ProxyHeader(2, "LOCAL", "UNSPEC"), 16)
    # IPv6 over DGRAM, and an unspecified family with PROXY: addresses only for the first.
    six = V2_SIG + bytes([0x21, 0x22]) + struct.pack("!H", 36)
    six += socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    six += socket.inet_pton(socket.AF_INET6, "2001:db8::2") + struct.pack("!HH", 1, 2)
    assert pp.parse(six)[0] == ProxyHeader(2, "PROXY", "UDP6", "2001:db8::1", 1, "2001:db8::2", 2)
    unspec = V2_SIG + bytes([0x21, 0x00, 0x00, 0x02, 0xAA, 0xBB])
    assert pp.parse(unspec) == (ProxyHeader(2, "PROXY", "UNSPEC"), 18)


@pytest.mark.parametrize(
    "header",
    [
        b"PROXY TCP4 192.0.2.10 10.0.1.4 51000 9000\r\n",
        b"PROXY UNKNOWN\r\n",
        pp.v2_header("192.0.2.10", "10.0.1.4", 51000, 9000),
        pp.v2_header(None, None, local=True),
    ],
)
def test_every_prefix_asks_for_more(header):
    for cut in range(1, len(header)):
        assert pp.parse(header[:cut]) is None, cut
    assert pp.parse(header)[1] == len(header)


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n\r\n",
        b"POST /x HTTP/1.1\r\n",
        b"PROPFIND / HTTP/1.1\r\n",
        b"PUT",
        b"\r\nGET",
        b"{}",
    ],
)
def test_no_header(data):
    assert pp.parse(data) == (None, 0)


def test_undecided_first_bytes():
    assert pp.detect(b"P") == pp.detect(b"PROX") == pp.detect(b"\r\n\r\n\x00") == "more"


@pytest.mark.parametrize(
    "data",
    [
        b"PROXY TCP4 192.0.2.10 10.0.1.4 51000\r\n",  # a field missing
        b"PROXY TCP5 192.0.2.10 10.0.1.4 51000 9000\r\n",
        b"PROXY TCP4 2001:db8::1 10.0.1.4 51000 9000\r\n",  # not the family's address
        b"PROXY TCP4 192.0.2.10 10.0.1.4 51000 65536\r\n",
        b"PROXY TCP4 192.0.2.10 10.0.1.4 051000 9000\r\n",
        b"PROXY TCP4 192.0.2.10 10.0.1.4 -1 9000\r\n",
        b"PROXY TCP4 192.0.2.10 10.0.1.4 51000 9000\n",  # LF without CR
        b"PROXY " + b"x" * 120,  # no CRLF within 107 bytes
        V2_SIG + bytes([0x31, 0x11, 0x00, 0x0C]) + bytes(12),  # version 3
        V2_SIG + bytes([0x22, 0x11, 0x00, 0x0C]) + bytes(12),  # command 2
        V2_SIG + bytes([0x21, 0x41, 0x00, 0x0C]) + bytes(12),  # family 4
        V2_SIG + bytes([0x21, 0x13, 0x00, 0x0C]) + bytes(12),  # transport 3
        V2_SIG + bytes([0x21, 0x11, 0x00, 0x08]) + bytes(8),  # too short for AF_INET
    ],
)
def test_malformed(data):
    with pytest.raises(ProxyHeaderError):
        pp.parse(data)


# ---- the backend --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    proc, ports = start_backend(tmp_path_factory.mktemp("backend"))
    try:
        yield ports
    finally:
        proc.terminate()
        proc.wait(5)


def connect(port: int) -> socket.socket:
    """A connection to 127.0.0.1:port from a loopback address no other scenario used."""
    s = socket.socket()
    s.settimeout(5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.bind((f"127.0.0.{next(SOURCES)}", 0))
    s.connect(("127.0.0.1", port))
    return s


def read_response(s: socket.socket, buf: bytearray) -> tuple[int, dict]:
    """One HTTP response (status, JSON body) from `s`; what follows it stays in `buf`."""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        assert chunk, "closed before an answer"
        buf += chunk
    head, _, _ = bytes(buf).partition(b"\r\n\r\n")
    length = int(next(v for k, v in _headers(head) if k == "content-length"))
    end = len(head) + 4 + length
    while len(buf) < end:
        buf += s.recv(65536)
    body = bytes(buf[len(head) + 4 : end])
    del buf[:end]
    return int(head.split(b" ")[1]), json.loads(body)


def _headers(head: bytes) -> list[tuple[str, str]]:
    return [
        (k.strip().lower(), v.strip())
        for k, _, v in (line.decode().partition(":") for line in head.split(b"\r\n")[1:])
    ]


def http(path: str = "/", extra: bytes = b"") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n".encode() + extra + b"\r\n"


def closed(s: socket.socket) -> bool:
    """Whether the server closed `s` without answering (EOF or a reset)."""
    try:
        return s.recv(65536) == b""
    except ConnectionResetError:
        return True


V1 = b"PROXY TCP4 198.51.100.7 10.0.1.4 40001 80\r\n"
PROXY_V1 = {
    "version": 1,
    "command": "PROXY",
    "protocol": "TCP4",
    "source_ip": "198.51.100.7",
    "source_port": 40001,
    "destination_ip": "10.0.1.4",
    "destination_port": 80,
}


def test_http_v1_header_reported_and_kept_alive(backend):
    with connect(backend["port"]) as s:
        s.sendall(V1 + http("/a"))
        buf = bytearray()
        status, body = read_response(s, buf)
        assert status == 200
        assert body["proxy"] == PROXY_V1
        # The TCP peer stays the client (here: the load balancer's node).
        assert body["client"] == {"ip": s.getsockname()[0], "port": s.getsockname()[1]}
        # Keep-alive: the next requests on the connection carry what its header said.
        s.sendall(http("/b") + http("/c"))
        for path in ("/b", "/c"):
            status, body = read_response(s, buf)
            assert (status, body["path"], body["proxy"]) == (200, path, PROXY_V1)


def test_http_v1_unknown_and_v2_proxy_and_local(backend):
    v2 = pp.v2_header("203.0.113.9", "10.0.2.5", 55555, 8080, tlvs=bytes([0x04, 0, 1, 0]))
    cases = [
        (b"PROXY UNKNOWN\r\n", {"version": 1, "protocol": "UNKNOWN", "source_ip": None}),
        (
            v2,
            {
                "version": 2,
                "command": "PROXY",
                "protocol": "TCP4",
                "source_ip": "203.0.113.9",
                "source_port": 55555,
                "destination_ip": "10.0.2.5",
                "destination_port": 8080,
            },
        ),
        (pp.v2_header(None, None, local=True), {"version": 2, "command": "LOCAL"}),
    ]
    for header, expected in cases:
        with connect(backend["port"]) as s:
            s.sendall(header + http())
            status, body = read_response(s, bytearray())
            assert status == 200
            assert {k: body["proxy"][k] for k in expected} == expected


def test_http_header_split_across_packets(backend):
    header = pp.v2_header("192.0.2.1", "10.0.1.4", 1234, 80)
    for data in (V1, header):
        with connect(backend["port"]) as s:
            request = data + http()
            for cut in (1, 5, 13, len(data) - 1, len(data) + 3):
                s.sendall(request[:cut])
                request = request[cut:]
            s.sendall(request)
            status, body = read_response(s, bytearray())
            assert status == 200
            assert body["proxy"]["source_ip"] in ("198.51.100.7", "192.0.2.1")


def test_http_without_header_as_before(backend):
    with connect(backend["port"]) as s:
        # "P" alone could start "PROXY ": the server waits for the next bytes, then serves.
        s.sendall(b"P")
        s.sendall(b"OST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi" + http("/q"))
        buf = bytearray()
        for path in ("/p", "/q"):
            status, body = read_response(s, buf)
            assert (status, body["path"], body["proxy"]) == (200, path, None)
        # A header later in the connection is not one: only the first bytes are looked at.
        s.sendall(V1)
        s.sendall(http("/r"))
        status, _ = read_response(s, buf)
        assert status == 400


@pytest.mark.parametrize(
    "header",
    [
        b"PROXY TCP4 198.51.100.7 10.0.1.4 40001\r\n",
        b"PROXY TCP4 999.1.1.1 10.0.1.4 1 2\r\n",
        V2_SIG + bytes([0x31, 0x11, 0x00, 0x0C]) + bytes(12),
    ],
)
def test_malformed_header_closes_the_connection(backend, header):
    for port in (backend["port"], backend["tcp"]):
        with connect(port) as s:
            s.sendall(header + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert closed(s)


def read_line(s: socket.socket) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        chunk = s.recv(1)
        assert chunk, f"closed after {line!r}"
        line += chunk
    return line


def test_tcp_identity_line_after_v1_and_v2_headers(backend):
    for header, version in (
        (V1, 1),
        (pp.v2_header("198.51.100.7", "10.0.1.4", 40001, 80), 2),
    ):
        with connect(backend["tcp"]) as s:
            # The header split, and the first line of the stream right behind it.
            s.sendall(header[:3])
            s.sendall(header[3:] + b"hello\n")
            identity = json.loads(read_line(s))
            assert identity["proxy"] == dict(PROXY_V1, version=version)
            assert identity["client"]["port"] == s.getsockname()[1]
            assert read_line(s) == b"hello\n"  # echoed; the header never is


def test_tcp_without_header_as_before(backend):
    with connect(backend["tcp"]) as s:
        identity = json.loads(read_line(s))
        assert identity["instance"] == "T1"
        assert identity["proxy"] is None
        s.sendall(b"ping\n")
        assert read_line(s) == b"ping\n"


def test_tcp_peer_known_to_send_headers_gets_its_line_after_the_header(backend):
    source = f"127.0.0.{next(SOURCES)}"

    def connect_from() -> socket.socket:
        s = socket.create_connection(("127.0.0.1", backend["tcp"]), 5, (source, 0))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    with connect_from() as s:
        s.sendall(V1)
        assert json.loads(read_line(s))["proxy"]["version"] == 1
    with connect_from() as s:
        # A peer that sent a header: the line waits for this connection's header.
        readable, _, _ = select.select([s], [], [], HEADER_WAIT_S / 4)
        assert not readable, "the identity line came before the header"
        s.sendall(pp.v2_header(None, None, local=True))
        assert json.loads(read_line(s))["proxy"]["command"] == "LOCAL"


def test_tcp_header_after_the_line_gets_a_second_line(backend):
    source = f"127.0.0.{next(SOURCES)}"
    with socket.create_connection(("127.0.0.1", backend["tcp"]), 5, (source, 0)) as s:
        assert json.loads(read_line(s))["proxy"] is None  # a peer not seen yet: no header
    with socket.create_connection(("127.0.0.1", backend["tcp"]), 5, (source, 0)) as s:
        # Known to send none: its line comes at once; a header after it is still read.
        assert json.loads(read_line(s))["proxy"] is None
        s.sendall(V1 + b"x\n")
        assert json.loads(read_line(s))["proxy"] == PROXY_V1
        assert read_line(s) == b"x\n"
