"""A node's haproxy.cfg run for real on the loopback, without root and without a lab.

`LocalAlb` takes an ALB's plan, moves the node to 127.0.0.1 and a free port, gives every
instance a small HTTP server on 127.0.0.1 (answering JSON: who it is and the headers it got),
points the targets at those servers, renders the node's configuration with
testbed.alb.config and runs HAProxy on it (master-worker, like the lab's node). Requests made
from 127.0.0.2 stand for a second client (source-ip rules).
"""

from __future__ import annotations

import http.client
import http.server
import json
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from testbed.alb.config import NodeFiles, render
from testbed.alb.node import log_filter
from testbed.alb.runtime import CliUnavailable, cli
from testbed.plan.balancers import ConditionPlan, LoadBalancerPlan
from testbed.waiting import WaitTimeout, wait_for

HAVE_HAPROXY = shutil.which("haproxy") is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Identity(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # head and body are two writes: no 40 ms delayed ACK

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        status = 200
        if "status=" in self.path:
            status = int(self.path.split("status=")[1].split("&")[0])
        if "delay_ms=" in self.path:
            # A slow target is what the request asks for: the delay is the subject.
            time.sleep(int(self.path.split("delay_ms=")[1].split("&")[0]) / 1000)
        body = json.dumps(
            {
                "instance": self.server.name,
                "path": self.path,
                "method": self.command,
                "headers": {k.lower(): v for k, v in self.headers.items()},
            }
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # any method, in any case ("put" too)
            return self._answer
        raise AttributeError(name)

    def log_message(self, *args: Any) -> None:
        pass


class Backend:
    def __init__(self, name: str) -> None:
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Identity)
        self.server.daemon_threads = True
        self.server.name = name
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class LocalAlb:
    """One node of `lb` on 127.0.0.1, its targets on local servers, HAProxy running."""

    def __init__(
        self,
        lb: LoadBalancerPlan,
        tmp: Path,
        node_index: int = 0,
        source_ip_as: str = "127.0.0.2/32",
    ) -> None:
        self.tmp = Path(tmp)
        names = sorted({t.host or t.id for tg in lb.target_groups for t in tg.targets})
        self.backends = {name: Backend(name) for name in names}
        self.port = free_port()
        node = replace(lb.nodes[node_index], ip="127.0.0.1")
        listeners = tuple(
            replace(
                lis,
                port=self.port,
                rules=tuple(
                    replace(
                        r,
                        conditions=tuple(
                            ConditionPlan(c.field, (source_ip_as,)) if c.field == "source-ip" else c
                            for c in r.conditions
                        ),
                    )
                    for r in lis.rules
                ),
            )
            for lis in lb.listeners
        )
        groups = tuple(
            replace(
                tg,
                targets=tuple(
                    replace(t, ip="127.0.0.1", port=self.backends[t.host or t.id].port)
                    for t in tg.targets
                ),
            )
            for tg in lb.target_groups
        )
        self.lb = replace(
            lb,
            nodes=tuple(
                replace(n, ip="127.0.0.1") if i == node_index else n for i, n in enumerate(lb.nodes)
            ),
            listeners=listeners,
            target_groups=groups,
        )
        self.node = node
        self.files = NodeFiles(
            self.tmp,
            self.tmp / "haproxy.cfg",
            self.tmp / "haproxy.sock",
            self.tmp / "master.sock",
            self.tmp / "access.log",
            self.tmp / "haproxy.log",
        )
        self.proc: subprocess.Popen | None = None

    def start(self, targets: dict[str, list[dict[str, Any]]] | None = None) -> LocalAlb:
        self.files.config.write_text(render(self.lb, self.node, self.files, targets))
        self.log = open(self.files.access_log, "ab")  # noqa: SIM115 (closed by stop())
        errors = open(self.files.haproxy_log, "ab")  # noqa: SIM115 (closed below)
        # As on a lab's node: request lines through the node's grep into access.log.
        self.grep = subprocess.Popen(
            log_filter(self.node.host), stdin=subprocess.PIPE, stdout=self.log, stderr=errors
        )
        self.proc = subprocess.Popen(
            [
                "haproxy",
                "-W",
                "-db",
                "-f",
                str(self.files.config),
                "-S",
                str(self.files.master_socket),
            ],
            stdout=self.grep.stdin,
            stderr=errors,
            cwd=self.tmp,
        )
        self.grep.stdin.close()
        errors.close()

        def serving() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"HAProxy exited ({self.proc.returncode}): "
                    + self.files.haproxy_log.read_text()
                )
            try:
                cli(self.files.stats_socket, "show info")
                cli(self.files.master_socket, "show proc")  # the master re-executed itself
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except (CliUnavailable, OSError):
                return False

        try:
            wait_for(serving, 10, "HAProxy to serve")
        except WaitTimeout as exc:
            raise RuntimeError(f"{exc}: {self.files.haproxy_log.read_text()}") from exc
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        if self.proc is not None:
            self.grep.wait(timeout=10)
        self.log.close()
        for b in self.backends.values():
            b.close()

    def __enter__(self) -> LocalAlb:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def request(
        self,
        path: str,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        source: str = "127.0.0.1",
        conn: http.client.HTTPConnection | None = None,
    ) -> tuple[int, dict[str, str], str]:
        """One request (on `conn` if given, else a new connection from `source`)."""
        own = conn is None
        if own:
            conn = http.client.HTTPConnection(
                "127.0.0.1", self.port, timeout=10, source_address=(source, 0)
            )
        try:
            conn.putrequest(
                method, path, skip_host="Host" in (headers or {}), skip_accept_encoding=True
            )
            for k, v in (headers or {}).items():
                conn.putheader(k, v)
            conn.endheaders()
            resp = conn.getresponse()
            body = resp.read().decode()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
        finally:
            if own:
                conn.close()

    def instance(self, path: str, **kw: Any) -> str | None:
        _status, _h, body = self.request(path, **kw)
        try:
            return json.loads(body)["instance"]
        except (ValueError, KeyError):
            return None
