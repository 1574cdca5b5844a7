"""The lab's one metadata server: an asyncio loop in one thread of the holder, listening on
169.254.169.254 inside each instance's network namespace.

listen_in() makes a listening socket inside a namespace: a short-lived thread setns()s into
the namespace (/run/netns/<name>), creates, binds and listens, and ends (a thread that could
not return to the holder's namespace is gone with it, so no other work ever runs in the wrong
namespace). A socket belongs to the namespace it was created in for its whole life, so the
loop serves every instance from the holder's own namespace. The address is on the instance's
loopback (testbed.topologies.host_config), so only that instance reaches its socket. The
socket listens on IMDS_PORT, not 80: the instance's own web server binds 0.0.0.0:80, which
Linux refuses beside a listener on 169.254.169.254:80; an nftables rule of the instance sends
169.254.169.254:80 there (the client still sees port 80).

A socket holds its namespace (and so the instance's interfaces) alive: remove() closes an
instance's listener and its open connections before its namespace is deleted.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import socket
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from testbed.errors import LabError
from testbed.lab.imds.metadata import InstanceMetadata, Node, metadata_tree
from testbed.lab.imds.protocol import (
    Response,
    TokenStore,
    answer,
    error,
    keep_alive,
    parse_head,
)
from testbed.topologies.host_config import IMDS_ADDRESS, IMDS_PORT

ADDRESS = IMDS_ADDRESS
PORT = IMDS_PORT  # inside each instance; its port 80 is redirected here (host_config)
CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"
IDLE_S = 30.0  # an idle kept-alive connection is closed after this long
MAX_BODY = 64 * 1024
CALL_TIMEOUT_S = 10.0

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


def listen_here(address: str, port: int) -> socket.socket:
    """A non-blocking listening socket on address:port in this thread's namespace."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def listen_in(netns: str, address: str = ADDRESS, port: int = PORT) -> socket.socket:
    """A listening socket on address:port inside named namespace `netns`."""
    result: dict[str, Any] = {}

    def inside() -> None:
        try:
            own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
            try:
                target = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY)
                try:
                    _setns(target)
                finally:
                    os.close(target)
                try:
                    result["sock"] = listen_here(address, port)
                finally:
                    _setns(own)  # on failure this thread ends here, in the other namespace
            finally:
                os.close(own)
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=inside, name=f"imds-ns:{netns}")
    thread.start()
    thread.join()
    if "error" in result:
        if "sock" in result:
            result["sock"].close()
        exc = result["error"]
        raise LabError(f"no metadata service in {netns}: {address}:{port}: {exc}") from exc
    sock: socket.socket = result["sock"]
    return sock


@dataclass
class _Instance:
    metadata: InstanceMetadata
    tree: Mapping[str, Node]
    tokens: TokenStore = field(default_factory=TokenStore)
    server: asyncio.AbstractServer | None = None
    connections: set[asyncio.StreamWriter] = field(default_factory=set)
    requests: int = 0


class MetadataServer:
    """One loop, one listening socket per instance (add / remove while it runs)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="imds", daemon=True)
        self.instances: dict[str, _Instance] = {}
        self.started = False
        self.closed = False
        self.lock = threading.Lock()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> None:
        """Start the loop's thread (once; launches call it from several threads)."""
        with self.lock:
            if not self.started:
                self.thread.start()
                self.started = True

    def _call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(CALL_TIMEOUT_S)

    # ---- instances ------------------------------------------------------------------------
    def add(self, netns: str, metadata: InstanceMetadata) -> None:
        """Serve `metadata` inside namespace `netns` (replacing what it served before)."""
        self.serve_socket(metadata, listen_in(netns))

    def serve_socket(self, metadata: InstanceMetadata, sock: socket.socket) -> None:
        """Serve `metadata` on listening socket `sock` (closed on failure)."""
        try:
            self.start()
            if self.closed:
                raise LabError(f"the metadata service is closed: {metadata.host} is not served")
            self._call(self._serve(metadata, sock))
        except BaseException:
            sock.close()
            raise

    def remove(self, host: str) -> bool:
        """Stop serving host `host`: its listener and connections closed. False: it had none."""
        if not self.started or self.closed:
            return False
        return bool(self._call(self._close(host)))

    def hosts(self) -> list[str]:
        return sorted(self.instances)

    def requests(self, host: str) -> int:
        inst = self.instances.get(host)
        return inst.requests if inst else 0

    def close(self) -> None:
        """Every listener and connection closed, the loop stopped (for good)."""
        with self.lock:
            if not self.started or self.closed:
                return
            self.closed = True
        try:
            for host in list(self.instances):
                self._call(self._close(host))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(CALL_TIMEOUT_S)

    # ---- in the loop ----------------------------------------------------------------------
    async def _serve(self, metadata: InstanceMetadata, sock: socket.socket) -> None:
        await self._close(metadata.host)
        inst = _Instance(metadata, metadata_tree(metadata))

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._handle(inst, reader, writer)

        inst.server = await asyncio.start_server(handle, sock=sock)
        self.instances[metadata.host] = inst

    async def _close(self, host: str) -> bool:
        inst = self.instances.pop(host, None)
        if inst is None:
            return False
        if inst.server is not None:
            inst.server.close()
        for writer in list(inst.connections):
            writer.transport.abort()
        return True

    async def _handle(
        self, inst: _Instance, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        inst.connections.add(writer)
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_S)
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    break
                except (TimeoutError, ConnectionError):
                    break
                try:
                    request, version, length = parse_head(head)
                    if length > MAX_BODY:
                        raise ValueError("body too large")
                    if length:
                        await reader.readexactly(length)  # a token PUT's body: unused
                except (ValueError, asyncio.IncompleteReadError):
                    writer.write(_bytes(error(400), keep=False))
                    break
                inst.requests += 1
                response = answer(request, inst.tree, inst.tokens, time.time())
                keep = keep_alive(version, request.headers)
                writer.write(_bytes(response, keep))
                await writer.drain()
                if not keep:
                    break
        except ConnectionError:
            pass
        finally:
            inst.connections.discard(writer)
            writer.close()


def _bytes(response: Response, keep: bool) -> bytes:
    return response.head(keep) + response.body
