"""One health check against one target, by protocol:

  TCP    a TCP connection opens within the timeout
  HTTP   GET path answers within the timeout with a status the matcher accepts
  SSL    a TLS handshake with the port completes within the timeout
  HTTPS  GET path over TLS, as HTTP
TLS checks do not verify the certificate (self-signed, expired or for another name is fine),
as a Classic Load Balancer's and an ELBv2 target group's checks do not.

Pure asyncio; run inside the namespace the check must come from (an LB node), optionally
bound to that node's address, so targets see checks from the node as on AWS.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass

from testbed.errors import BadInput


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str  # "200", "timeout", "refused", "status 500 not in 200-399", ...
    latency_ms: float


def parse_matcher(text: str) -> list[tuple[int, int]]:
    """AWS HttpCode matcher ("200", "200,302", "200-299") as inclusive ranges."""
    ranges = []
    for part in str(text).replace(" ", "").split(","):
        lo, sep, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi) if sep else int(lo)
        except ValueError as exc:
            raise BadInput(
                f"bad HttpCode matcher {text!r}: use e.g. 200, 200,302 or 200-399"
            ) from exc
        if not (100 <= a <= b <= 599):
            raise BadInput(f"bad HttpCode matcher {text!r}: codes are 100-599, low-high")
        ranges.append((a, b))
    return ranges


def matches(status: int, ranges: list[tuple[int, int]]) -> bool:
    return any(a <= status <= b for a, b in ranges)


def insecure_tls() -> ssl.SSLContext:
    """A TLS client context that accepts any certificate (a health check's)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def _connect(
    ip: str, port: int, source_ip: str | None, tls: ssl.SSLContext | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    local = (source_ip, 0) if source_ip else None
    # No SNI: checks go to an address, as the load balancer's do.
    return await asyncio.open_connection(
        ip, port, local_addr=local, ssl=tls, server_hostname="" if tls else None
    )


def _failure(exc: BaseException) -> str:
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(exc, ssl.SSLError):
        return f"tls handshake failed: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, (ConnectionResetError, asyncio.IncompleteReadError)):
        return "reset"
    return f"{type(exc).__name__}: {exc}"


async def tcp_check(
    ip: str, port: int, timeout: float, source_ip: str | None = None
) -> CheckResult:
    """Healthy when a TCP connection opens within `timeout`."""
    t0 = time.monotonic()
    try:
        _reader, writer = await asyncio.wait_for(_connect(ip, port, source_ip), timeout)
        writer.close()
        return CheckResult(True, "connected", (time.monotonic() - t0) * 1000)
    except Exception as exc:
        return CheckResult(False, _failure(exc), (time.monotonic() - t0) * 1000)


async def ssl_check(
    ip: str, port: int, timeout: float, source_ip: str | None = None
) -> CheckResult:
    """Healthy when a TLS handshake with the port completes within `timeout` (any
    certificate)."""
    t0 = time.monotonic()
    try:
        _reader, writer = await asyncio.wait_for(
            _connect(ip, port, source_ip, insecure_tls()), timeout
        )
        writer.close()
        return CheckResult(True, "handshake", (time.monotonic() - t0) * 1000)
    except Exception as exc:
        return CheckResult(False, _failure(exc), (time.monotonic() - t0) * 1000)


async def http_check(
    ip: str,
    port: int,
    path: str,
    timeout: float,
    matcher: str = "200",
    source_ip: str | None = None,
    host: str | None = None,
    tls: bool = False,
    headers: dict[str, str] | None = None,
) -> CheckResult:
    """Healthy when GET path answers within `timeout` with a status the matcher accepts
    (over TLS, any certificate, when `tls`)."""
    ranges = parse_matcher(matcher)
    t0 = time.monotonic()

    async def go() -> int:
        reader, writer = await _connect(ip, port, source_ip, insecure_tls() if tls else None)
        try:
            more = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {host or ip}\r\n"
                f"User-Agent: ELB-HealthChecker/2.0\r\n{more}Connection: close\r\n\r\n".encode()
            )
            line = await reader.readline()
            parts = line.decode("latin-1").split(" ")
            if len(parts) < 2 or not parts[0].startswith("HTTP/"):
                raise ConnectionResetError("not an HTTP answer")
            return int(parts[1])
        finally:
            writer.close()

    try:
        status = await asyncio.wait_for(go(), timeout)
    except Exception as exc:
        return CheckResult(False, _failure(exc), (time.monotonic() - t0) * 1000)
    ok = matches(status, ranges)
    detail = str(status) if ok else f"status {status} not in {matcher}"
    return CheckResult(ok, detail, (time.monotonic() - t0) * 1000)


async def check(
    protocol: str,
    ip: str,
    port: int,
    timeout: float,
    path: str | None = None,
    matcher: str | None = None,
    source_ip: str | None = None,
    headers: dict[str, str] | None = None,
) -> CheckResult:
    """One check of `protocol` (TCP, HTTP, SSL or HTTPS; a health check's settings);
    `headers`: more request headers of an HTTP check."""
    if protocol in ("HTTP", "HTTPS"):
        return await http_check(
            ip,
            port,
            path or "/",
            timeout,
            matcher or "200",
            source_ip,
            tls=protocol == "HTTPS",
            headers=headers,
        )
    if protocol == "SSL":
        return await ssl_check(ip, port, timeout, source_ip)
    if protocol == "TCP":
        return await tcp_check(ip, port, timeout, source_ip)
    raise BadInput(f"unknown health check protocol {protocol!r}: TCP, HTTP, SSL or HTTPS")


def main(argv: list[str] | None = None) -> int:
    """One check from the command line (used inside lab hosts): prints JSON, exit 0 if ok."""
    import argparse
    import json

    ap = argparse.ArgumentParser(description="one health check (TCP, HTTP, SSL or HTTPS)")
    ap.add_argument("ip")
    ap.add_argument("port", type=int)
    ap.add_argument("--http", metavar="PATH", help="HTTP check of PATH (default: TCP)")
    ap.add_argument(
        "--protocol",
        choices=("TCP", "HTTP", "SSL", "HTTPS"),
        help="default: HTTP with --http, else TCP",
    )
    ap.add_argument("--matcher", default="200")
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--source-ip")
    a = ap.parse_args(argv)
    protocol = a.protocol or ("HTTP" if a.http else "TCP")
    res = asyncio.run(
        check(protocol, a.ip, a.port, a.timeout, a.http or "/", a.matcher, a.source_ip)
    )
    print(json.dumps({"ok": res.ok, "detail": res.detail, "latency_ms": round(res.latency_ms, 3)}))
    return 0 if res.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
