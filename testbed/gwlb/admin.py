"""Small JSON-over-HTTP servers of the GWLB programs: admin/status and health checks.

Each runs in a thread of its own (the data plane keeps the main loop); handlers return a
JSON-able value, or raise ValueError for a 400.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# (method, path) -> handler(query) -> JSON-able answer
Routes = dict[tuple[str, str], Callable[[dict[str, str]], Any]]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(
    host: str,
    port: int,
    routes: Routes,
    fallback: Callable[[str], Any] | None = None,
) -> ThreadingHTTPServer:
    """Start serving `routes` on host:port in a daemon thread; fallback(path) answers any
    other GET (health checks ask for any path)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, method: str) -> None:
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            handler = routes.get((method, url.path))
            try:
                if handler is not None:
                    status, body = 200, handler(query)
                elif method == "GET" and fallback is not None:
                    status, body = 200, fallback(url.path)
                else:
                    known = ", ".join(f"{m} {p}" for m, p in routes)
                    status, body = 404, {"error": f"paths: {known}"}
            except ValueError as exc:
                status, body = 400, {"error": str(exc)}
            data = (json.dumps(body, default=str) + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # http.server's naming
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def log_message(self, format: str, *args: Any) -> None:
            pass  # health checks every few seconds would flood the role log

    server = _Server((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name=f"http:{host}:{port}").start()
    return server


def stop(server: ThreadingHTTPServer | None) -> None:
    """Stop a server and close its listening socket (new connections are refused)."""
    if server is not None:
        server.shutdown()
        server.server_close()
