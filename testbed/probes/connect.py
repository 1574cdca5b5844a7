"""Real TCP connections from inside a lab host, one JSON line per connection (the probes'
traffic): which local port each used, how long connect() took, what came back.

    python -m testbed.probes.connect --to 10.0.0.4:80 --to 10.0.1.4:80 -n 200
    python -m testbed.probes.connect --to http://203.0.113.10/ -n 10 --mark 1f2e3d4c

Rounds go through the --to endpoints in turn (interleaved), so that every endpoint sees the
same conditions over time. With --mark each connection carries a marker in its first data
bytes (an HTTP GET for http endpoints), which a capture elsewhere uses to recognise it even
after NAT rewrote its addresses and ports. Standard library only: it starts fast in a host.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from testbed.errors import BadInput, LabError

if TYPE_CHECKING:  # this module runs in lab hosts: no Lab API import there
    from testbed.lab.api import LabHost

MAX_CONNECTIONS = 100_000  # a hard bound on one run, whatever the arguments
REPLY_BYTES = 4096
TCP_REPLY_WAIT_S = 0.5


@dataclass(frozen=True)
class Endpoint:
    """Where a probe connects: protocol (http sends a GET, tcp only connects), host, port."""

    proto: str
    host: str
    port: int
    path: str = "/"

    @property
    def text(self) -> str:
        return f"{self.host}:{self.port}"


def parse_endpoint(text: str, default_port: int = 80) -> Endpoint:
    """http://HOST[:PORT]/path, tcp://HOST:PORT, HOST:PORT or HOST; ValueError if malformed."""
    raw = text.strip()
    if "://" not in raw:
        raw = f"{'tcp' if ':' in raw else 'http'}://{raw}"
    try:
        url = urlsplit(raw)
        port = url.port
    except ValueError as exc:
        raise ValueError(f"bad endpoint {text!r}: {exc}") from exc
    proto = url.scheme.lower()
    if proto not in ("http", "tcp"):
        raise ValueError(
            f"bad endpoint {text!r}: use http://HOST[:PORT]/, tcp://HOST:PORT, HOST:PORT or HOST"
        )
    if not url.hostname:
        raise ValueError(f"bad endpoint {text!r}: no host")
    if port == 0:
        raise ValueError(f"bad endpoint {text!r}: port 0")
    return Endpoint(proto, url.hostname, port or default_port, url.path or "/")


def checked_endpoint(text: str, example: str = "10.0.0.4:80") -> Endpoint:
    """parse_endpoint for user input: BadInput (exit 2) instead of ValueError."""
    try:
        return parse_endpoint(text)
    except ValueError as exc:
        raise BadInput(str(exc), hint=f"e.g. {example}") from exc


def marker(token: str, seq: int) -> str:
    """The text that identifies connection `seq` of a probe run (delimited on both ends, so
    that seq 1 never matches inside seq 10)."""
    return f"/elb-probe/{token}/{seq}/"


def payload(ep: Endpoint, token: str, seq: int) -> bytes:
    """First bytes a marked connection sends: a GET for http, a line for tcp."""
    mark = marker(token, seq)
    if ep.proto == "http":
        return (
            f"GET {mark} HTTP/1.0\r\nHost: {ep.host}\r\nUser-Agent: elb-lab-probe/1\r\n\r\n"
        ).encode()
    return f"elb-probe {mark}\n".encode()


def error_kind(exc: BaseException) -> str:
    """A short name for a connection failure."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, socket.gaierror):
        return "dns"
    return f"{type(exc).__name__}: {exc}"


def connect_once(
    ep: Endpoint, index: int, seq: int, timeout: float, token: str | None
) -> dict[str, Any]:
    """One connection; never raises: a failure to open is `error`, a failure after it
    opened (sending the marker, reading the answer) is `reply_error`."""
    rec: dict[str, Any] = {
        "to": index,
        "endpoint": ep.text,
        "seq": seq,
        "peer": "",
        "port": ep.port,
        "local_ip": "",
        "local_port": 0,
        "start": time.time(),
        "connect_ms": None,
        "error": "",
        "reply": "",
        "reply_error": "",
    }
    try:
        peer = socket.getaddrinfo(ep.host, ep.port, socket.AF_INET, socket.SOCK_STREAM)[0][4]
        rec["peer"] = peer[0]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            t0 = time.perf_counter()
            sock.connect(peer)
            rec["connect_ms"] = round((time.perf_counter() - t0) * 1000, 3)
            rec["local_ip"], rec["local_port"] = sock.getsockname()
            if token is not None:
                _exchange(sock, ep, token, seq, timeout, rec)
    except (OSError, ValueError) as exc:
        rec["error"] = error_kind(exc)
    return rec


def _exchange(
    sock: socket.socket, ep: Endpoint, token: str, seq: int, timeout: float, rec: dict[str, Any]
) -> None:
    """Send the marker and read the answer into `rec`."""
    try:
        sock.sendall(payload(ep, token, seq))
        if ep.proto == "tcp":
            # Any server may be behind a tcp endpoint: the marker is on its way, and an
            # answer is only a bonus, not worth the full timeout per connection.
            sock.settimeout(min(timeout, TCP_REPLY_WAIT_S))
        rec["reply"] = _read_reply(sock, ep, marker(token, seq))
    except OSError as exc:
        rec["reply_error"] = error_kind(exc)


def _read_reply(sock: socket.socket, ep: Endpoint, mark: str) -> str:
    """The server's answer: an HTTP response (by its Content-Length: the lab's backend waits
    for the client to close first), or, for tcp, up to the echo of the marker line."""
    data = b""
    try:
        while len(data) < REPLY_BYTES and not _complete(data, ep, mark):
            chunk = sock.recv(REPLY_BYTES - len(data))
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        pass  # what arrived is the answer
    return data.decode("latin-1")


def _complete(data: bytes, ep: Endpoint, mark: str) -> bool:
    if ep.proto == "tcp":
        at = data.find(mark.encode())
        return at >= 0 and b"\n" in data[at:]
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return len(body) >= int(value)
    return False  # no length: read until the server closes


def run_connections(
    host: LabHost,
    endpoints: list[str],
    rounds: int,
    mark: str | None = None,
    gap_s: float = 0.005,
    timeout_s: float = 2.0,
) -> list[dict[str, Any]]:
    """Run this program in lab host `host` (a LabHost); its records, one per connection."""
    argv = [
        sys.executable,
        "-m",
        "testbed.probes.connect",
        "-n",
        str(rounds),
        "--gap",
        str(gap_s),
        "--timeout",
        str(timeout_s),
    ]
    for ep in endpoints:
        argv += ["--to", ep]
    if mark is not None:
        argv += ["--mark", mark]
    # Bounded: every connection ends within its timeout (twice: connect, then the reply).
    limit = rounds * len(endpoints) * (2 * timeout_s + gap_s) + 30
    try:
        proc = host.run(argv, timeout=limit)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"probe connections from {host.name} took over {limit:.0f} s") from exc
    if proc.returncode != 0:
        raise LabError(
            f"probe connections from {host.name} failed ({proc.returncode}): "
            f"{proc.stderr.strip()[-300:]}"
        )
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    """Run the rounds and print one JSON line per connection."""
    p = argparse.ArgumentParser(
        prog="python -m testbed.probes.connect", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--to", action="append", required=True, metavar="ENDPOINT")
    p.add_argument("-n", "--rounds", type=int, default=1, help="connections per endpoint")
    p.add_argument("--mark", metavar="TOKEN", help="send a marker in each connection")
    p.add_argument("--gap", type=float, default=0.005, help="seconds between connections")
    p.add_argument("--timeout", type=float, default=2.0, help="per connection, seconds")
    args = p.parse_args(argv)
    endpoints = [parse_endpoint(t) for t in args.to]
    if not 0 < args.rounds * len(endpoints) <= MAX_CONNECTIONS:
        p.error(f"between 1 and {MAX_CONNECTIONS} connections")
    for seq in range(args.rounds):
        for index, ep in enumerate(endpoints):
            rec = connect_once(ep, index, seq, args.timeout, args.mark)
            print(json.dumps(rec), flush=True)
            time.sleep(args.gap)
    return 0


if __name__ == "__main__":
    sys.exit(main())
