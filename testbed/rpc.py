"""A tiny request/response protocol over a Unix socket: one JSON object per line each way.

The lab's holder process and its controller both serve it; the CLI and the holder call it.
Requests and replies are plain JSON objects here; testbed.messages gives each op its shape
and testbed.asks sends them typed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import socketserver
import threading
from collections.abc import Callable, Mapping
from typing import Any

from testbed.waiting import WaitTimeout, wait_for

# The request as it came (JSON: checked by the handler), the reply (any JSON object, e.g. a
# TypedDict of testbed.messages).
Handler = Callable[[dict[str, Any]], Mapping[str, Any]]


class RpcUnavailable(Exception):
    """Nobody answers on the socket (the process is gone or not started yet)."""


class RpcRefused(Exception):
    """The server answered "ok": false (its "error" is the message)."""

    def __init__(self, reply: Mapping[str, Any]) -> None:
        super().__init__(reply.get("error") or "refused")
        self.reply = reply
        self.bad_input = bool(reply.get("bad_input"))  # the request's fault, not the server's


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog is 5: a burst of callers (health checkers, nodes, the
    # CLI) would find it full, and connect() on a full Unix socket fails at once (EAGAIN).
    request_queue_size = 256


class RpcServer:
    """Serves `handler` on a Unix socket from a background thread."""

    def __init__(self, path: str, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        if os.path.exists(path):
            os.unlink(path)  # a stale socket of a process of this same lab that died
        outer = self

        class _Request(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                for line in self.rfile:
                    try:
                        reply = outer.handler(json.loads(line))
                    except Exception as exc:  # report to the caller, keep serving
                        reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                    self.wfile.write((json.dumps(reply, default=str) + "\n").encode())
                    self.wfile.flush()

        self.server = _Server(path, _Request)
        self.thread = threading.Thread(
            target=self.server.serve_forever, daemon=True, name=f"rpc:{os.path.basename(path)}"
        )

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def call(path: str, request: Mapping[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Send one request and return the reply; RpcUnavailable if nobody listens."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            _connect(sock, path, timeout)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise RpcUnavailable(str(exc)) from exc
        sock.sendall((json.dumps(request) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise RpcUnavailable("connection closed before a reply")
            buf += chunk
        return json.loads(buf)
    finally:
        sock.close()


def _connect(sock: socket.socket, path: str, timeout: float) -> None:
    """Connect, waiting while the server's backlog is full (a Unix socket says EAGAIN then,
    where TCP would wait): the server is there, just busy."""

    def connected() -> bool:
        try:
            sock.connect(path)
        except BlockingIOError:
            return False
        return True

    try:
        wait_for(connected, timeout, f"room in the backlog of {path}", interval=0.005)
    except WaitTimeout as exc:
        raise BlockingIOError(errno.EAGAIN, str(exc)) from None
