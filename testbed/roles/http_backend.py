"""Role `http-backend`: a web instance that says who it is and what it saw of the client.

Serves, on the host's address:
  HTTP/1.1 (keep-alive, pipelining) on Port (80): every path answers JSON naming the instance
    (logical id, AZ, subnet, address) and the client as seen here (address, port,
    X-Forwarded-For/-Proto/-Port). Query parameters shape one answer: `status=503`,
    `delay_ms=200`, `size=10000` (body padded to that many bytes), `cpu_ms=20` (burn that
    much CPU time in the request, at most MAX_CPU_MS: load for CPU scaling policies; the
    server is single-threaded, so a busy instance queues requests as a saturated one does),
    `set_cookie=NAME=VALUE` (a `Set-Cookie: NAME=VALUE; Path=/` header: the application's
    session cookie that a CLB's AppCookieStickinessPolicy follows).
    HealthPath (/health) answers {"status": "healthy"}.
  HTTPS on HttpsPort (0: off; RoleArgs HttpsPort: 443 for an HTTPS target group): the same
    answers over TLS, with a certificate of the lab's CA for the host's address (--cert, a
    PEM of certificate, chain and key: testbed.lab.certs.issue_host_cert); `tls` in the
    answer says the version and cipher the client got (null over plain HTTP). A PROXY header
    may come before the TLS handshake (an NLB's TLS group with proxy protocol v2: HAProxy's
    `send-proxy-v2` on a TLS server): ProxiedTlsListener reads it off the socket first.
  TCP on TcpPort (9000): one JSON identity line on connect, then echoes every line it gets
    (long-lived flows for NLB draining experiments).
  UDP on UdpPort (9000): answers every datagram with one JSON identity datagram.
PROXY protocol (v1 and v2, testbed.roles.proxy_protocol), detected on every TCP listener
(nothing to configure: neither HTTP, nor TLS, nor the TCP listener's echo can start like a
header): a connection that opens with a header (a Classic Load Balancer's TCP listener with a
ProxyProtocolPolicyType policy, an NLB target group with proxy_protocol_v2.enabled) has it
consumed, never answered, and every answer on that
connection carries `proxy` (version, command, protocol, source/destination address and port)
beside `client`, which stays the TCP peer (the load balancer's node); `proxy` is null without
a header. A malformed header closes the connection. Only a connection's first bytes are
looked at: requests after them cost what they did. The access log's client is the TCP peer
too (the header's source is in the answer, not the log). On the TCP listener the server
speaks first, so it waits for the first bytes before its identity line: up to
FIRST_BYTES_WAIT_S from a peer not seen before, up to HEADER_WAIT_S from a peer that sent
headers, not at all from a peer that did not (its line goes at once, as without PROXY); a
header that comes after the line (a peer that sent none before) is consumed and the identity
line is sent again, with `proxy`.
Faults, set at run time on the admin port (127.0.0.1:8081, reachable only inside the host;
`testbed fault` wraps it): status=CODE (every answer), delay_ms=N, hang (read, never
answer), refuse (stop listening: new connections get a RST, UDP gets port unreachable),
clear. Every HTTP request is logged in the lab's access-log format (testbed.accesslog).

Run: python -m testbed.roles.http_backend --id WebA1 --ip 10.0.0.4 --az us-east-1a ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from testbed import accesslog
from testbed.lab.launch import HTTP_BACKEND_DEFAULTS
from testbed.roles import proxy_protocol

DEFAULTS = HTTP_BACKEND_DEFAULTS
REASONS = {
    200: "OK",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    400: "Bad Request",
    404: "Not Found",
    411: "Length Required",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
MAX_HEAD = 64 * 1024
# Headers a load balancer adds that the answer repeats (under `forwarded`, when present).
FORWARDED = (
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-amzn-tls-version",
    "x-amzn-tls-cipher-suite",
)
MAX_CPU_MS = 1000.0  # one request never holds the CPU longer than this
LINGER_S = 2.0
COOKIE = re.compile(r"[A-Za-z0-9_.-]+=[A-Za-z0-9_.-]*")  # set_cookie: nothing to inject
# TCP listener: how long the identity line waits for a PROXY header. A proxy sends its header
# right after its connect completes, which may be after the connection is accepted here.
FIRST_BYTES_WAIT_S = 0.02  # from a peer not seen yet
HEADER_WAIT_S = 1.0  # from a peer that sent headers (its own health checks close at once)
MAX_PEERS = 4096  # peers remembered (whether they send headers), then forgotten
# HTTPS listener: how long a new connection may stay silent before its first byte (TLS
# ClientHello or PROXY header) and while its PROXY header comes in.
TLS_FIRST_BYTES_S = 10.0


class Faults:
    """What the backend is told to do wrong right now."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.status: int | None = None
        self.delay_ms = 0.0
        self.hang = False
        self.refuse = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "delay_ms": self.delay_ms,
            "hang": self.hang,
            "refuse": self.refuse,
        }


class LogWriter:
    """Buffered access log: a write per request would halve the request rate."""

    def __init__(self, path: str | None) -> None:
        # Open for the life of the server (closed by close()).
        self.file = open(path, "a", buffering=1 << 16) if path else None  # noqa: SIM115

    def write(self, line: str) -> None:
        if self.file:
            self.file.write(line + "\n")

    def flush(self) -> None:
        if self.file:
            self.file.flush()


class Request:
    __slots__ = ("headers", "method", "received", "target", "version")

    def __init__(self, method: str, target: str, version: str, headers: dict[str, str]):
        self.method, self.target, self.version, self.headers = method, target, version, headers
        self.received = time.monotonic()


class HttpConnection(asyncio.Protocol):
    """One HTTP/1.1 connection: parses requests in order, answers each (maybe later)."""

    def __init__(self, server: Backend, handler: Any) -> None:
        self.server = server
        self.handler = handler
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.busy = False  # an answer is pending (delay/hang): keep the order of pipelining
        self.closing = False
        self.linger: asyncio.TimerHandle | None = None
        self.first_bytes = True  # a PROXY header may still open the connection
        self.proxy: dict[str, Any] | None = None  # what the connection's header carried

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream server's transport
        self.server.connections.add(self)
        self.peer = transport.get_extra_info("peername") or ("", 0)
        self.local = transport.get_extra_info("sockname") or ("", 0)

    def tls_info(self) -> dict[str, Any] | None:
        """The TLS version and cipher of this connection; None over plain HTTP."""
        ssl_object = self.transport.get_extra_info("ssl_object") if self.transport else None
        if ssl_object is None:
            return None
        cipher = ssl_object.cipher()
        return {"version": ssl_object.version(), "cipher": cipher[0] if cipher else None}

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.closing = True
        if self.linger is not None:
            self.linger.cancel()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return  # after Connection: close, whatever else arrives is ignored
        self.buffer += data
        if self.first_bytes and not self.take_header():
            return
        if len(self.buffer) > MAX_HEAD and b"\r\n\r\n" not in self.buffer:
            self.reply(None, 400, b'{"error": "request head too large"}', close=True)
            return
        self.process()

    def take_header(self) -> bool:
        """Consume a PROXY header at the start of the connection: True once the connection's
        first bytes are known to be no header or the header is consumed; False while it is
        incomplete, or after a malformed one (the connection is then closed)."""
        try:
            found = proxy_protocol.parse(self.buffer)
        except proxy_protocol.ProxyHeaderError:
            self.closing = True
            if self.transport is not None:
                self.transport.close()
            return False
        if found is None:
            return False
        header, used = found
        self.first_bytes = False
        if header is not None:
            self.proxy = header.as_dict()
            self.buffer = self.buffer[used:]
        return True

    def process(self) -> None:
        while not self.busy and not self.closing:
            req = self.parse_one()
            if req is None:
                return
            self.handler(self, req)

    def parse_one(self) -> Request | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = self.buffer[:end].decode("latin-1")
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            self.buffer = b""
            self.reply(None, 400, b'{"error": "bad request line"}', close=True)
            return None
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self.buffer = b""
            self.reply(None, 411, b'{"error": "chunked bodies are not supported"}', close=True)
            return None
        try:
            length = int(headers.get("content-length", "0") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.buffer = b""
            self.reply(None, 400, b'{"error": "bad content-length"}', close=True)
            return None
        if len(self.buffer) < end + 4 + length:
            return None  # body not complete yet
        self.buffer = self.buffer[end + 4 + length :]
        return Request(parts[0], parts[1], parts[2], headers)

    def wants_close(self, req: Request | None) -> bool:
        if req is None:
            return True
        conn = req.headers.get("connection", "").lower()
        return conn == "close" or (req.version == "HTTP/1.0" and conn != "keep-alive")

    def reply(
        self,
        req: Request | None,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        close: bool = False,
        cookie: str | None = None,
    ) -> None:
        if self.closing or self.transport is None:
            return
        close = close or self.wants_close(req)
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"Server: elb-lab/{self.server.identity['instance']}\r\n"
            + (f"Set-Cookie: {cookie}; Path=/\r\n" if cookie else "")
            + f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
        ).encode()
        self.transport.write(head + body)
        if req is not None and self.server.log:
            self.server.log.write(
                accesslog.format_line(
                    self.server.identity["instance"],
                    f"{self.peer[0]}:{self.peer[1]}",
                    f"{self.local[0]}:{self.local[1]}",
                    req.method,
                    req.target,
                    status,
                    len(head) + len(body),
                    (time.monotonic() - req.received) * 1000,
                    req.headers.get("x-forwarded-for"),
                    req.headers.get("user-agent"),
                )
            )
        self.server.served += 1
        if close:
            self.closing = True
            if req is None or req.version == "HTTP/1.0":
                # HTTP/1.0 clients read until the server closes: close at once.
                self.transport.close()
            else:
                # Lingering close: let the client close first, so TIME_WAIT piles up on the
                # client rather than here, where it would collide with the client's reused
                # ports (SYNs answered late, 1 s retransmits). Close anyway after a while.
                self.linger = asyncio.get_running_loop().call_later(LINGER_S, self.transport.close)

    def eof_received(self) -> bool:
        if self.closing and self.transport is not None:
            self.transport.close()
        return False

    def later(self, delay_s: float, fn: Callable[[], object]) -> None:
        """Answer after a delay without reordering pipelined requests."""
        self.busy = True

        def run() -> None:
            self.busy = False
            fn()
            self.process()

        asyncio.get_running_loop().call_later(delay_s, run)

    def when_done(self, task: asyncio.Future, fn: Any) -> None:
        """Answer once `task` has finished, without reordering pipelined requests."""
        self.busy = True

        def run(_task: asyncio.Future) -> None:
            self.busy = False
            fn()
            self.process()

        task.add_done_callback(run)


def burn_cpu(seconds: float) -> float:
    """Spend `seconds` of this process's CPU time (not wall time: a busy machine does not
    make the instance look busier than asked); returns the CPU time spent."""
    start = time.process_time()
    x = 0
    while time.process_time() - start < seconds:
        for _ in range(1000):  # a few microseconds between clock reads
            x += 1
    return time.process_time() - start


class TcpIdentity(asyncio.Protocol):
    """Raw TCP: an identity line on connect (after a PROXY header, if one comes), then an
    echo of every line."""

    def __init__(self, server: Backend) -> None:
        self.server = server
        self.first_bytes = b""  # the connection's start while it may be a PROXY header
        self.expecting = True  # the first bytes are not known yet
        self.greeted = False
        self.wait: asyncio.TimerHandle | None = None
        self.proxy: dict[str, Any] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream server's transport
        self.server.connections.add(self)
        self.peer = transport.get_extra_info("peername") or ("", 0)
        sends_headers = self.server.proxy_peers.get(self.peer[0])
        if sends_headers is False:
            self.greet()  # a peer that opened without a header before: as without PROXY
            return
        wait = HEADER_WAIT_S if sends_headers else FIRST_BYTES_WAIT_S
        self.wait = asyncio.get_running_loop().call_later(wait, self.no_header_yet)

    def no_header_yet(self) -> None:
        """Nothing came in time: a client waiting for the line (a peer that sent headers
        before no longer does: its next connections get the line at once)."""
        self.wait = None
        self.server.learn_peer(self.peer[0], False)
        self.greet()

    def greet(self) -> None:
        """Send the identity line (once; again after a header that came after it)."""
        if self.greeted:
            return
        self.greeted = True
        line = json.dumps(self.server.describe(self.peer, self.proxy)).encode() + b"\n"
        faults = self.server.faults
        if faults.hang:
            return
        if faults.delay_ms:
            asyncio.get_running_loop().call_later(
                faults.delay_ms / 1000, self.transport.write, line
            )
        else:
            self.transport.write(line)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self.wait is not None:
            self.wait.cancel()

    def data_received(self, data: bytes) -> None:
        if self.expecting:
            self.first_bytes += data
            try:
                found = proxy_protocol.parse(self.first_bytes)
            except proxy_protocol.ProxyHeaderError:
                self.expecting = False
                self.transport.close()
                return
            if found is None:
                return  # a header, not complete yet
            header, used = found
            data, self.first_bytes, self.expecting = self.first_bytes[used:], b"", False
            if self.wait is not None:
                self.wait.cancel()
                self.wait = None
            if header is not None:
                self.server.learn_peer(self.peer[0], True)
                self.proxy = header.as_dict()
                self.greeted = False  # a line sent before the header is sent again, with it
            elif self.peer[0] not in self.server.proxy_peers:
                self.server.learn_peer(self.peer[0], False)
            self.greet()
            if not data:
                return
        if not self.server.faults.hang:
            self.transport.write(data)


class ProxiedTlsListener:
    """The HTTPS listener: accepts plain TCP, reads a PROXY header off the socket when the
    connection opens with one (a TLS record starts with 0x16, a v1 header with "P", a v2 one
    with CR), byte-exact so that the TLS handshake after it is untouched, then runs TLS and
    HTTP on the rest (the connection's answers carry the header as `proxy`). Closed like an
    asyncio server (Backend.close_listeners)."""

    def __init__(self, server: Backend, sock: socket.socket) -> None:
        self.server, self.sock = server, sock
        self.tasks: set[asyncio.Task] = set()
        self.accepting = asyncio.get_running_loop().create_task(self.accept())

    async def accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _peer = await loop.sock_accept(self.sock)
            task = loop.create_task(self.start(conn))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def start(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            header = await asyncio.wait_for(self.read_header(conn), TLS_FIRST_BYTES_S)
            await loop.connect_accepted_socket(
                lambda: self.connection(header), conn, ssl=self.server.tls
            )
        except (OSError, TimeoutError, EOFError, proxy_protocol.ProxyHeaderError):
            conn.close()

    def connection(self, header: proxy_protocol.ProxyHeader | None) -> HttpConnection:
        conn = HttpConnection(self.server, self.server.handle)
        conn.first_bytes = False  # the header, if any, is read already
        conn.proxy = header.as_dict() if header is not None else None
        return conn

    async def read_header(self, conn: socket.socket) -> proxy_protocol.ProxyHeader | None:
        loop = asyncio.get_running_loop()
        readable: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not readable.done():
                readable.set_result(None)

        loop.add_reader(conn.fileno(), ready)
        try:
            await readable
        finally:
            loop.remove_reader(conn.fileno())
        first = conn.recv(1, socket.MSG_PEEK)
        if not first:
            raise EOFError
        if first not in (proxy_protocol.V1_PREFIX[:1], proxy_protocol.V2_SIGNATURE[:1]):
            return None  # TLS (or anything else: the handshake says what it is)
        data = b""
        while True:  # byte-exact reads: no byte of the handshake after the header is taken
            found = proxy_protocol.parse(data)
            if found is not None:
                header, _used = found
                if header is None:
                    raise proxy_protocol.ProxyHeaderError("not a PROXY header")
                return header
            if data.startswith(proxy_protocol.V2_SIGNATURE) and len(data) >= 16:
                want = proxy_protocol.V2_FIXED + int.from_bytes(data[14:16], "big") - len(data)
            elif data.startswith(proxy_protocol.V2_SIGNATURE[:1]):
                want = proxy_protocol.V2_FIXED - len(data)
            else:
                want = 1  # v1: up to its CRLF
            chunk = await loop.sock_recv(conn, want)
            if not chunk:
                raise EOFError
            data += chunk

    def close(self) -> None:
        self.accepting.cancel()
        for task in list(self.tasks):
            task.cancel()
        self.sock.close()


def tls_socket(bind: str, port: int) -> socket.socket:
    """A listening socket for ProxiedTlsListener (what create_server would open)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((bind, port))
        sock.listen(4096)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class UdpIdentity(asyncio.DatagramProtocol):
    """UDP: answers each datagram with one identity datagram."""

    def __init__(self, server: Backend) -> None:
        self.server = server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # a datagram endpoint's

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        faults = self.server.faults
        if faults.hang:
            return
        reply = json.dumps(
            dict(self.server.describe(addr), echo=data[:64].decode("utf-8", "replace"))
        ).encode()
        if faults.delay_ms:
            asyncio.get_running_loop().call_later(
                faults.delay_ms / 1000, self.transport.sendto, reply, addr
            )
        else:
            self.transport.sendto(reply, addr)


class Backend:
    """The listeners of one instance and their shared fault state."""

    def __init__(
        self,
        identity: dict[str, Any],
        bind: str,
        port: int,
        tcp_port: int,
        udp_port: int,
        admin_port: int,
        health_path: str,
        log_path: str | None,
        https_port: int = 0,
        cert: str | None = None,
    ):
        self.identity = identity
        self.https_port = https_port
        self.tls: ssl.SSLContext | None = None
        if https_port:
            if not cert:
                raise SystemExit("http-backend: --https-port needs --cert (a PEM with the key)")
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(cert)
        self.bind, self.port, self.tcp_port, self.udp_port = bind, port, tcp_port, udp_port
        self.admin_port = admin_port
        self.health_path = health_path
        self.faults = Faults()
        self.log = LogWriter(log_path)
        self.connections: set[Any] = set()
        # TCP listener: whether a peer's connections opened with a PROXY header (True) or
        # without (False), so that its identity line waits for a header only when one comes.
        self.proxy_peers: dict[str, bool] = {}
        self.served = 0
        self.started = time.time()
        self.listeners: list[Any] = []

    def describe(
        self, peer: tuple[str, int], proxy: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The identity, the client as seen here (the TCP peer) and what a PROXY header
        carried (None without one)."""
        return dict(self.identity, client={"ip": peer[0], "port": peer[1]}, proxy=proxy)

    def learn_peer(self, ip: str, sends_headers: bool) -> None:
        if len(self.proxy_peers) >= MAX_PEERS and ip not in self.proxy_peers:
            self.proxy_peers.clear()
        self.proxy_peers[ip] = sends_headers

    # ---- HTTP answers -----------------------------------------------------------------
    def handle(self, conn: HttpConnection, req: Request) -> None:
        faults = self.faults
        if faults.hang:
            conn.busy = True  # read, never answer: the client times out
            return
        url = urlsplit(req.target)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        status = faults.status
        delay = faults.delay_ms
        try:
            status = status or int(query.get("status", 200))
            delay += float(query.get("delay_ms", 0))
            size = int(query.get("size", 0))
            cpu_ms = float(query.get("cpu_ms", 0))
            cookie = query.get("set_cookie")
            if cookie is not None and not COOKIE.fullmatch(cookie):
                raise ValueError(cookie)
        except ValueError:
            conn.reply(req, 400, b'{"error": "bad query parameter"}')
            return
        if cpu_ms > 0:
            burn_cpu(min(cpu_ms, MAX_CPU_MS) / 1000)
        if url.path == self.health_path:
            body = json.dumps(
                {
                    "status": "healthy" if status < 400 else "unhealthy",
                    "instance": self.identity["instance"],
                }
            ).encode()
        else:
            fwd = {k: req.headers[k] for k in FORWARDED if k in req.headers}
            body = json.dumps(
                dict(
                    self.describe(conn.peer, conn.proxy),
                    method=req.method,
                    path=req.target,
                    host=req.headers.get("host"),
                    forwarded=fwd,
                    status=status,
                    tls=conn.tls_info(),
                )
            ).encode()
            if size > len(body):
                body += b" " * (size - len(body))

        def answer() -> None:
            conn.reply(req, status, body, cookie=cookie)

        if delay > 0:
            conn.later(delay / 1000, answer)
        else:
            answer()

    def admin(self, conn: HttpConnection, req: Request) -> None:
        url = urlsplit(req.target)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        reopening: asyncio.Future | None = None
        if url.path == "/faults" and req.method == "POST":
            try:
                if "clear" in query:
                    reopening = self.set_refuse(False)  # before forgetting the fault
                    self.faults.clear()
                if "status" in query:
                    self.faults.status = int(query["status"]) or None
                if "delay_ms" in query:
                    self.faults.delay_ms = float(query["delay_ms"])
                if "hang" in query:
                    self.faults.hang = query["hang"] not in ("0", "false")
                if "refuse" in query:
                    reopening = self.set_refuse(query["refuse"] not in ("0", "false")) or reopening
            except ValueError as exc:
                conn.reply(req, 400, json.dumps({"error": str(exc)}).encode())
                return
        elif url.path == "/stats":
            conn.reply(
                req,
                200,
                json.dumps(
                    {
                        "served": self.served,
                        "connections": len(self.connections),
                        "uptime": time.time() - self.started,
                        "faults": self.faults.as_dict(),
                        "identity": self.identity,
                    }
                ).encode(),
            )
            return
        elif url.path != "/faults":
            conn.reply(
                req, 404, b'{"error": "admin paths: GET /faults, POST /faults?..., GET /stats"}'
            )
            return

        def answer() -> None:
            failed = reopening is not None and reopening.exception()
            if failed:
                conn.reply(req, 500, json.dumps({"error": f"listen: {failed}"}).encode())
            else:
                conn.reply(req, 200, json.dumps(self.faults.as_dict()).encode())

        if reopening is not None:
            # Answered once the listeners accept again: a client told "cleared" can connect.
            conn.when_done(reopening, answer)
        else:
            answer()

    # ---- listeners --------------------------------------------------------------------
    async def open_listeners(self) -> None:
        loop = asyncio.get_running_loop()
        self.listeners = [
            await loop.create_server(
                lambda: HttpConnection(self, self.handle),
                self.bind,
                self.port,
                reuse_address=True,
                backlog=4096,
            )
        ]
        if self.https_port and self.tls is not None:
            self.listeners.append(
                ProxiedTlsListener(self, tls_socket(self.bind or "0.0.0.0", self.https_port))
            )
        if self.tcp_port:
            self.listeners.append(
                await loop.create_server(
                    lambda: TcpIdentity(self),
                    self.bind,
                    self.tcp_port,
                    reuse_address=True,
                    backlog=4096,
                )
            )
        if self.udp_port:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: UdpIdentity(self), local_addr=(self.bind, self.udp_port), reuse_port=True
            )
            self.listeners.append(transport)

    def close_listeners(self) -> None:
        for listener in self.listeners:
            listener.close()
        self.listeners = []

    def set_refuse(self, refuse: bool) -> asyncio.Future | None:
        """Close the listeners, or reopen them (the task doing it is returned)."""
        if refuse == self.faults.refuse:
            return None
        self.faults.refuse = refuse
        if refuse:
            self.close_listeners()
            return None
        return asyncio.get_running_loop().create_task(self.open_listeners())

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        await self.open_listeners()
        await loop.create_server(
            lambda: HttpConnection(self, self.admin),
            "127.0.0.1",
            self.admin_port,
            reuse_address=True,
        )
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        async def flush_log() -> None:
            while True:
                await asyncio.sleep(1)
                self.log.flush()

        flusher = loop.create_task(flush_log())
        await stop.wait()
        flusher.cancel()
        self.log.flush()


def main(args: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--id", required=True, help="instance logical id")
    ap.add_argument("--ip", default="", help="the instance's address (reported)")
    ap.add_argument("--az", default=None)
    ap.add_argument("--subnet", default=None)
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=DEFAULTS["Port"])
    ap.add_argument("--tcp-port", type=int, default=DEFAULTS["TcpPort"], help="0: off")
    ap.add_argument("--udp-port", type=int, default=DEFAULTS["UdpPort"], help="0: off")
    ap.add_argument("--admin-port", type=int, default=DEFAULTS["AdminPort"])
    ap.add_argument("--health-path", default=DEFAULTS["HealthPath"])
    ap.add_argument("--access-log", default=None)
    ap.add_argument("--https-port", type=int, default=0, help="0: off")
    ap.add_argument("--cert", default=None, help="PEM: certificate, chain and key (HTTPS)")
    a = ap.parse_args(args)
    identity = {"instance": a.id, "ip": a.ip, "az": a.az, "subnet": a.subnet}
    backend = Backend(
        identity,
        a.bind,
        a.port,
        a.tcp_port,
        a.udp_port,
        a.admin_port,
        a.health_path,
        a.access_log,
        a.https_port,
        a.cert,
    )
    asyncio.run(backend.run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
