"""Role `load-client`, and the load generator behind `testbed load`.

Drives N requests (HTTP), connections (TCP) or datagram exchanges (UDP) at a rate R, or as
fast as C workers can, to a name or address, and writes one row per request in the layout
testbed.schemas.REQUEST_COLUMNS: when it started, how long it took, status or error, which
backend answered and which client address/port that backend saw. Runs inside a lab host;
names are resolved for every new connection, so DNS round robin spreads clients as AWS does.
Always bounded: it stops after N requests or D seconds, whichever comes first. https://
targets are HTTP over TLS, verified by name against the trusted CAs (OpenSSL's defaults, so
SSL_CERT_FILE: lab hosts trust the lab CA that way); a failed handshake or verification is
the error "tls".

    python -m testbed.roles.load_client --target http://203.0.113.10/ -n 1000 -c 20 --out r.csv
    python -m testbed.roles.load_client --target https://www.example.test/ -n 100 --keepalive
    python -m testbed.roles.load_client --target tcp://10.0.0.4:9000 -n 200 --rate 50
    python -m testbed.roles.load_client --target udp://10.0.0.4:9000 -n 100
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import errno
import json
import os
import random
import socket
import ssl
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from testbed.schemas import REQUEST_COLUMNS

DEFAULT_PORTS = {"http": 80, "https": 443, "tcp": 9000, "udp": 9000}
HTTP_PROTOS = ("http", "https")
MAX_DURATION = 3600.0  # a hard stop, whatever the arguments


class Target:
    """Where to send load: proto, host (name or address), port, path."""

    def __init__(self, text: str, proto: str | None = None) -> None:
        if "://" not in text:
            text = f"{proto or 'http'}://{text}"
        url = urlsplit(text)
        self.proto = (proto or url.scheme).lower()
        if self.proto not in DEFAULT_PORTS:
            raise ValueError(f"unknown protocol {self.proto!r} (http, https, tcp or udp)")
        if not url.hostname:
            raise ValueError(f"no host in target {text!r}")
        self.host = url.hostname
        self.port = url.port or DEFAULT_PORTS[self.proto]
        self.path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        self.text = f"{self.host}:{self.port}"


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):  # handshake refused, or the certificate not verified
        return "tls"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, (ConnectionResetError, asyncio.IncompleteReadError, BrokenPipeError)):
        return "reset"
    if isinstance(exc, socket.gaierror):
        return "dns"
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable"
    return f"error:{type(exc).__name__}"


class LoopClock:
    """The load client's schedule: monotonic seconds, and sleeping on the event loop. A
    parameter of LoadClient so that unit tests run a schedule on a fake clock."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class LoadClient:
    """Generates the load and collects one row per request."""

    def __init__(
        self,
        target: Target,
        client: str,
        timeout: float,
        keepalive: bool,
        hold: float,
        resolve_once: bool,
        headers: list[str],
        clock: LoopClock | None = None,
    ) -> None:
        self.clock = clock or LoopClock()
        self.target = target
        self.client = client
        self.timeout = timeout
        self.keepalive = keepalive
        self.hold = hold
        self.resolve_once = resolve_once
        self.headers = headers
        self.rows: list[dict[str, Any]] = []
        self._resolved: str | None = None
        # One context for every connection (as a browser has): the default verification,
        # by the target's name, against OpenSSL's default trust (SSL_CERT_FILE).
        self._tls = ssl.create_default_context() if target.proto == "https" else None

    async def address(self) -> str:
        if self._resolved and self.resolve_once:
            return self._resolved
        infos = await asyncio.get_running_loop().getaddrinfo(
            self.target.host,
            self.target.port,
            family=socket.AF_INET,
            type=socket.SOCK_DGRAM if self.target.proto == "udp" else socket.SOCK_STREAM,
        )
        # Like most clients, take any of the records: spreads clients over LB nodes.
        resolved = self._resolved = str(random.choice(infos)[4][0])  # AF_INET: (host, port)
        return resolved

    def row(self, seq: int, start: float, t0: float, **fields: Any) -> dict[str, Any]:
        r = {
            "client": self.client,
            "target": self.target.text,
            "proto": self.target.proto,
            "seq": seq,
            "start": round(start, 6),
            "latency_ms": round((time.monotonic() - t0) * 1000, 3),
            "status": "",
            "error": "",
            "backend": "",
            "backend_ip": "",
            "backend_az": "",
            "seen_ip": "",
            "seen_port": "",
            "bytes": 0,
        }
        r.update(fields)
        return r

    @staticmethod
    def identity(body: bytes) -> dict[str, Any]:
        try:
            data = json.loads(body)
        except ValueError:
            return {}
        if not isinstance(data, dict):
            return {}
        client = data.get("client") or {}
        return {
            "backend": data.get("instance", ""),
            "backend_ip": data.get("ip", ""),
            "backend_az": data.get("az") or "",
            "seen_ip": client.get("ip", ""),
            "seen_port": client.get("port", ""),
        }

    # ---- one exchange per protocol ------------------------------------------------------
    async def http(self, seq: int, conn: list | None) -> dict[str, Any]:
        start, t0 = time.time(), time.monotonic()
        try:
            return await asyncio.wait_for(self._http(seq, start, t0, conn), self.timeout)
        except Exception as exc:
            if conn:
                self._close(conn)
            return self.row(seq, start, t0, error=_error_kind(exc))

    async def _http(self, seq: int, start: float, t0: float, conn: list | None) -> dict:
        if conn and conn[0] is not None:
            reader, writer = conn
        else:
            reader, writer = await asyncio.open_connection(
                await self.address(),
                self.target.port,
                ssl=self._tls,
                server_hostname=self.target.host if self._tls else None,
            )
            if conn is not None:
                conn[:] = [reader, writer]
        extra = "".join(f"{h}\r\n" for h in self.headers)
        writer.write(
            (
                f"GET {self.target.path} HTTP/1.1\r\nHost: {self.target.host}\r\n"
                f"User-Agent: elb-lab-load/1\r\n{extra}Connection: "
                f"{'keep-alive' if conn is not None else 'close'}\r\n\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        length = 0
        closing = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "connection" and value.strip().lower() == "close":
                closing = True
        body = await reader.readexactly(length) if length else b""
        if conn is None or closing:
            writer.close()
            if conn is not None:
                conn[:] = [None, None]
        return self.row(
            seq, start, t0, status=status, bytes=len(head) + len(body), **self.identity(body)
        )

    def _close(self, conn: list) -> None:
        if conn[1] is not None:
            conn[1].close()
        conn[:] = [None, None]

    async def tcp(self, seq: int) -> dict[str, Any]:
        start, t0 = time.time(), time.monotonic()
        writer = None
        # Known once the identity line arrived: a held flow that breaks later still names
        # its backend (draining experiments need to know whose connections broke).
        fields: dict[str, Any] = {}
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(await self.address(), self.target.port), self.timeout
            )
            line = await asyncio.wait_for(reader.readline(), self.timeout)
            if not line:
                raise ConnectionResetError("closed before the identity line")
            fields = self.identity(line)
            # A long-lived flow: a line a second, each echoed, until `hold` seconds pass.
            deadline = self.clock.now() + self.hold
            while self.clock.now() < deadline:
                writer.write(b"ping\n")
                echo = await asyncio.wait_for(reader.readline(), self.timeout)
                if not echo:
                    raise ConnectionResetError("closed while held")
                # Holding the flow is the point: the pause is the flow's own pace.
                await self.clock.sleep(min(1.0, max(0.0, deadline - self.clock.now())))
            return self.row(seq, start, t0, status=0, bytes=len(line), **fields)
        except Exception as exc:
            return self.row(seq, start, t0, error=_error_kind(exc), **fields)
        finally:
            if writer is not None:
                writer.close()

    async def udp(self, seq: int) -> dict[str, Any]:
        start, t0 = time.time(), time.monotonic()
        loop = asyncio.get_running_loop()
        answer: asyncio.Future = loop.create_future()

        class Proto(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                if not answer.done():
                    answer.set_result(data)

            def error_received(self, exc: Exception) -> None:
                if not answer.done():
                    answer.set_exception(exc)

        transport = None
        try:
            # A new socket per exchange: a new source port, so a new flow for the NLB.
            transport, _ = await loop.create_datagram_endpoint(
                Proto, remote_addr=(await self.address(), self.target.port)
            )
            transport.sendto(f"seq {seq}".encode())
            data = await asyncio.wait_for(answer, self.timeout)
            return self.row(seq, start, t0, status=0, bytes=len(data), **self.identity(data))
        except Exception as exc:
            return self.row(seq, start, t0, error=_error_kind(exc))
        finally:
            if transport is not None:
                transport.close()

    async def one(self, seq: int, conn: list | None = None) -> None:
        proto = self.target.proto
        if proto in HTTP_PROTOS:
            row = await self.http(seq, conn)
        elif proto == "tcp":
            row = await self.tcp(seq)
        else:
            row = await self.udp(seq)
        self.rows.append(row)

    # ---- scheduling ---------------------------------------------------------------------
    async def run(
        self, n: int, rate: float | None, concurrency: int, duration: float | None, progress: bool
    ) -> None:
        stop_at = self.clock.now() + min(duration or MAX_DURATION, MAX_DURATION)
        reporter = asyncio.get_running_loop().create_task(self._progress(n)) if progress else None
        try:
            if rate:
                await self._open_loop(n, rate, concurrency, stop_at)
            else:
                await self._closed_loop(n, concurrency, stop_at)
        finally:
            if reporter:
                reporter.cancel()

    async def _open_loop(self, n: int, rate: float, cap: int, stop_at: float) -> None:
        """Start request i at i/rate seconds, with at most `cap` in flight."""
        slots = asyncio.Semaphore(cap)
        tasks = []
        t0 = self.clock.now()
        for seq in range(n):
            wait = t0 + seq / rate - self.clock.now()
            if wait > 0:
                await self.clock.sleep(wait)  # the open loop's pace
            if self.clock.now() >= stop_at:
                break
            await slots.acquire()

            async def go(s: int = seq) -> None:
                try:
                    await self.one(s)
                finally:
                    slots.release()

            tasks.append(asyncio.get_running_loop().create_task(go()))
        await asyncio.gather(*tasks)

    async def _closed_loop(self, n: int, workers: int, stop_at: float) -> None:
        """`workers` loops, each sending its next request when the last one is done."""
        counter = iter(range(n))

        async def worker() -> None:
            conn = [None, None] if self.keepalive and self.target.proto in HTTP_PROTOS else None
            for seq in counter:
                if self.clock.now() >= stop_at:
                    return
                await self.one(seq, conn)
            if conn:
                self._close(conn)

        await asyncio.gather(*(worker() for _ in range(max(1, min(workers, n)))))

    async def _progress(self, n: int) -> None:
        t0 = time.monotonic()
        while True:
            await asyncio.sleep(2)
            done = len(self.rows)
            errors = sum(1 for r in self.rows if r["error"])
            print(
                f"  {done}/{n} done, {errors} errors, {done / (time.monotonic() - t0):.0f}/s",
                file=sys.stderr,
                flush=True,
            )


def summary(rows: list[dict[str, Any]], wall_s: float) -> dict[str, Any]:
    """Counts, rate and latency percentiles of a run (printed at the end)."""
    ok = [r for r in rows if not r["error"]]
    lat = sorted(r["latency_ms"] for r in ok)

    def pct(p: float) -> float | None:
        return round(lat[min(len(lat) - 1, int(p / 100 * len(lat)))], 3) if lat else None

    errors: dict[str, int] = {}
    for r in rows:
        if r["error"]:
            errors[r["error"]] = errors.get(r["error"], 0) + 1
    backends: dict[str, int] = {}
    statuses: dict[str, int] = {}
    for r in ok:
        backends[r["backend"] or "?"] = backends.get(r["backend"] or "?", 0) + 1
        statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
    return {
        "requests": len(rows),
        "ok": len(ok),
        "errors": errors,
        "statuses": statuses,
        "per_second": round(len(rows) / wall_s, 1) if wall_s > 0 else None,
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "backends": backends,
        "wall_s": round(wall_s, 3),
    }


def write_csv(rows: list[dict[str, Any]], path: str | None) -> None:
    out = open(path, "w", newline="") if path else sys.stdout  # noqa: SIM115 (or stdout)
    try:
        w = csv.DictWriter(out, fieldnames=REQUEST_COLUMNS)
        w.writeheader()
        for r in sorted(rows, key=lambda r: r["seq"]):
            w.writerow(r)
    finally:
        if path:
            out.close()


def main(args: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--target",
        required=True,
        help="http[s]://NAME[:PORT]/path, tcp://NAME:PORT, udp://NAME:PORT or NAME",
    )
    ap.add_argument("--proto", choices=sorted(DEFAULT_PORTS), help="overrides the URL scheme")
    ap.add_argument("-n", "--requests", type=int, default=100, help="how many (default 100)")
    ap.add_argument("--rate", type=float, help="requests per second (open loop)")
    ap.add_argument(
        "-c",
        "--concurrency",
        type=int,
        default=10,
        help="workers (closed loop) or the in-flight cap with --rate (default 10)",
    )
    ap.add_argument("--duration", type=float, help="stop after this many seconds")
    ap.add_argument("--timeout", type=float, default=5.0, help="per request, seconds")
    ap.add_argument("--keepalive", action="store_true", help="HTTP: reuse connections")
    ap.add_argument(
        "--hold",
        type=float,
        default=0.0,
        help="TCP: keep each connection this long, one echoed line a second",
    )
    ap.add_argument(
        "--resolve-once",
        action="store_true",
        help="resolve the name once instead of for every connection",
    )
    ap.add_argument("--header", action="append", default=[], help="extra HTTP header line")
    ap.add_argument(
        "--client",
        default=os.environ.get("TESTBED_HOST", socket.gethostname()),
        help="this host's name in the rows",
    )
    ap.add_argument("--out", help="CSV file (default: standard output)")
    ap.add_argument("--summary", help="write the JSON summary to this file too")
    ap.add_argument("--start-delay", type=float, default=0.0, help="wait before starting")
    ap.add_argument("--progress", action="store_true", help="progress lines on stderr")
    a = ap.parse_args(args)
    if a.requests < 1 or (a.rate is not None and a.rate <= 0) or a.concurrency < 1:
        ap.error("--requests, --rate and --concurrency must be positive")
    try:
        target = Target(a.target, a.proto)
    except ValueError as exc:
        ap.error(str(exc))
    client = LoadClient(target, a.client, a.timeout, a.keepalive, a.hold, a.resolve_once, a.header)
    time.sleep(a.start_delay)
    t0 = time.monotonic()
    asyncio.run(client.run(a.requests, a.rate, a.concurrency, a.duration, a.progress))
    result = summary(client.rows, time.monotonic() - t0)
    write_csv(client.rows, a.out)
    text = json.dumps(result)
    print(text, file=sys.stderr)
    if a.summary:
        Path(a.summary).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
