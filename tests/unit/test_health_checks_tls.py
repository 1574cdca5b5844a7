"""SSL and HTTPS health checks (a Classic Load Balancer's HealthCheck Target kinds), and the
CLB's HTTP check (matcher "200"), against real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from testbed.errors import BadInput
from testbed.health.checks import check, http_check, ssl_check, tcp_check
from testbed.lb.health_checker import Checker

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(scope="module")
def server_tls(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server context with a self-signed certificate for another name (checks accept it)."""
    folder: Path = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "backend.invalid")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


@asynccontextmanager
async def serving(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """A server on a free 127.0.0.1 port (yielded) running `handler` per connection."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=tls)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def answering(status: int) -> Handler:
    """An HTTP server that answers every request with `status`."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    return handler


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accepts, reads, never answers."""
    try:
        await reader.read()
    finally:
        writer.close()


async def greeting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Says a line on connect (as http-backend's TCP listener does), then closes."""
    writer.write(b'{"instance": "WebA1"}\n')
    await writer.drain()
    writer.close()


async def free_port() -> int:
    """A port nobody listens on (a server opened and closed)."""
    async with serving(silent) as port:
        return port


def test_ssl_check_passes_on_a_handshake_with_any_certificate(server_tls):
    async def go():
        async with serving(silent, server_tls) as port:
            return await ssl_check("127.0.0.1", port, 2)

    res = asyncio.run(go())
    assert res.ok, res.detail
    assert res.detail == "handshake"


def test_ssl_check_fails_on_plain_tcp_silence_and_refusal():
    async def go():
        async with (
            serving(greeting) as plain,
            serving(answering(200)) as http,
            serving(silent) as mute,
        ):
            return (
                await ssl_check("127.0.0.1", plain, 2),
                # A plain HTTP server waits for the end of a request head that never comes.
                await ssl_check("127.0.0.1", http, 0.3),
                await ssl_check("127.0.0.1", mute, 0.3),
                await ssl_check("127.0.0.1", await free_port(), 2),
                # The same plain server passes a TCP check: SSL asks more.
                await tcp_check("127.0.0.1", plain, 2),
            )

    plain, http, mute, refused, tcp = asyncio.run(go())
    assert not plain.ok
    assert plain.detail.startswith("tls handshake failed"), plain.detail
    assert (http.ok, http.detail) == (False, "timeout")
    assert (mute.ok, mute.detail) == (False, "timeout")
    assert (refused.ok, refused.detail) == (False, "refused")
    assert tcp.ok


def test_https_check_takes_only_200_with_the_clb_matcher(server_tls):
    async def go():
        async with (
            serving(answering(200), server_tls) as ok,
            serving(answering(302), server_tls) as moved,
            serving(answering(200)) as plain,
            serving(greeting) as chatty,
        ):
            return (
                await http_check("127.0.0.1", ok, "/health", 2, "200", tls=True),
                await http_check("127.0.0.1", moved, "/health", 2, "200", tls=True),
                await http_check("127.0.0.1", plain, "/health", 0.3, "200", tls=True),
                await http_check("127.0.0.1", chatty, "/health", 2, "200", tls=True),
            )

    ok, moved, plain, chatty = asyncio.run(go())
    assert (ok.ok, ok.detail) == (True, "200")
    assert (moved.ok, moved.detail) == (False, "status 302 not in 200")
    assert (plain.ok, plain.detail) == (False, "timeout")
    assert not chatty.ok
    assert chatty.detail.startswith("tls handshake failed"), chatty.detail


def test_clb_http_check_fails_on_any_answer_but_200():
    async def go():
        results = {}
        for status in (200, 204, 301, 404, 503):
            async with serving(answering(status)) as port:
                results[status] = await check("HTTP", "127.0.0.1", port, 2, "/", "200")
        async with serving(silent) as mute:
            results[0] = await check("HTTP", "127.0.0.1", mute, 0.3, "/", "200")
        return results

    results = asyncio.run(go())
    assert [s for s, r in results.items() if r.ok] == [200]
    assert results[0].detail == "timeout"
    assert results[503].detail == "status 503 not in 200"


def test_check_dispatch_and_unknown_protocol(server_tls):
    async def go():
        async with serving(answering(200), server_tls) as port:
            return [
                await check(p, "127.0.0.1", port, 2, "/", "200")
                for p in ("TCP", "SSL", "HTTPS", "HTTP")
            ]

    tcp, tls, https, http = asyncio.run(go())
    assert [tcp.ok, tls.ok, https.ok] == [True, True, True]
    assert not http.ok  # plain HTTP to a TLS port: not an HTTP answer
    with pytest.raises(BadInput, match="TCP, HTTP, SSL or HTTPS"):
        asyncio.run(check("UDP", "127.0.0.1", 1, 1))


def test_checker_runs_ssl_and_https_checks(server_tls):
    """The node's health checker dispatches on the group's protocol (SSL, HTTPS)."""

    async def go():
        checker = Checker("MyCLB", "us-east-1a", "127.0.0.1", "/nonexistent.sock")
        async with (
            serving(answering(200), server_tls) as tls_port,
            serving(greeting) as plain_port,
        ):
            for name, protocol, port in (
                ("tls-ssl", "SSL", tls_port),
                ("tls-https", "HTTPS", tls_port),
                ("plain-ssl", "SSL", plain_port),
                ("plain-https", "HTTPS", plain_port),
            ):
                key = ("MyCLB", "MyCLB", name)
                checker.plan[key] = {
                    "lb": "MyCLB",
                    "tg": "MyCLB",
                    "key": name,
                    "ip": "127.0.0.1",
                    "port": port,
                    "protocol": protocol,
                    "path": "/index.html" if protocol == "HTTPS" else "/",
                    "matcher": "200",
                    "interval_s": 5.0,
                    "timeout_s": 2.0,
                }
                await checker.check(key)
        return {r["key"]: (r["ok"], r["detail"]) for r in checker.results}

    results = asyncio.run(go())
    assert results["tls-ssl"] == (True, "handshake")
    assert results["tls-https"] == (True, "200")
    assert not results["plain-ssl"][0]
    assert not results["plain-https"][0]
    assert results["plain-https"][1].startswith("tls handshake failed")
