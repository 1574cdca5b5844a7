"""Role `http-backend`: an HTTP/1.1 server (keep-alive) that answers with who it is.

Each reply is JSON naming the instance (logical id, AZ, subnet, address) and what it saw of
the client (source address and port, X-Forwarded-* headers), so load-balancing experiments
can tell which target answered and whether the client's address was preserved.
Run as `python -m testbed.roles.http_backend --id WebA1 --port 80 ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

DEFAULT_PORT = 80


def argv(host, args: dict, host_dir: Path) -> list[str]:
    """Command line that starts this role for `host` (a HostPlan)."""
    cmd = [sys.executable, "-m", "testbed.roles.http_backend", "--id", host.name,
           "--ip", host.ip, "--port", str(args.get("Port", args.get("port", DEFAULT_PORT)))]
    if host.az:
        cmd += ["--az", host.az]
    if host.subnet:
        cmd += ["--subnet", host.subnet]
    return cmd


class HttpIdentity(asyncio.Protocol):
    """Minimal HTTP/1.1 server protocol: parses request heads, answers every request."""

    def __init__(self, identity: dict) -> None:
        self.identity = identity
        self.buffer = b""
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            try:
                method, path, version = lines[0].split(" ", 2)
            except ValueError:
                self._send(400, b'{"error": "bad request"}', close=True)
                return
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length", "0") or 0)
            self.buffer = self.buffer[length:]  # bodies are not used
            close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
            self._answer(method, path, headers, close)
            if close:
                return

    def _answer(self, method: str, path: str, headers: dict, close: bool) -> None:
        peer = self.transport.get_extra_info("peername") or ("", 0)
        body = dict(self.identity, path=path, method=method,
                    client={"ip": peer[0], "port": peer[1]},
                    forwarded={k: headers[k] for k in ("x-forwarded-for", "x-forwarded-proto",
                                                       "x-forwarded-port") if k in headers})
        self._send(200, json.dumps(body).encode() + b"\n", close)

    def _send(self, status: int, body: bytes, close: bool) -> None:
        reason = {200: "OK", 400: "Bad Request"}.get(status, "")
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nServer: elb-lab\r\n"
                f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n").encode()
        self.transport.write(head + body)
        if close:
            self.transport.close()


async def serve(identity: dict, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: HttpIdentity(identity), host, port,
                                      reuse_address=True, backlog=1024)
    async with server:
        await server.serve_forever()


def main(args: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--id", required=True, help="instance logical id")
    ap.add_argument("--ip", default="", help="the instance's address (reported)")
    ap.add_argument("--az", default=None)
    ap.add_argument("--subnet", default=None)
    ap.add_argument("--port", type=int, default=DEFAULT_PORT)
    ap.add_argument("--bind", default="0.0.0.0")
    a = ap.parse_args(args)
    identity = {"instance": a.id, "ip": a.ip, "az": a.az, "subnet": a.subnet}
    try:
        asyncio.run(serve(identity, a.bind, a.port))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
