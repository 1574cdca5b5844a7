"""The lab's HTTP access log format: one line per request, space-separated, quoted text fields.

    2026-11-26T15:04:05.123456Z WebA1 198.51.100.10:43210 10.0.0.4:80 GET "/api/x?a=1"
        200 312 0.412 "198.51.100.10" "curl/7.88.1"
(one line in the file; wrapped here)

Fields, in order:
  time        request completion, ISO 8601 UTC with microseconds
  server      who logged it: instance logical id (backend) or LB node (ALB, CLB)
  client      client address:port as the server saw it
  local       server address:port the request arrived on
  method      HTTP method
  path        request target (path and query), quoted
  status      HTTP status sent (0 if the connection closed before an answer)
  bytes       response bytes sent (head + body)
  duration_ms time from request received to response sent, milliseconds
  xff         X-Forwarded-For as received, quoted ("-" when absent)
  user_agent  quoted ("-" when absent)
Quotes and backslashes inside quoted fields are escaped with a backslash.

A Classic Load Balancer's TCP listeners log one line per connection, when it ends, in the
same format: method TCP, path "-", status 0, bytes = bytes sent to the client, duration_ms =
the connection's whole time, xff and user_agent "-" (see is_connection):

    2026-11-26T15:04:09.000321Z MyCLB-1a 198.51.100.10:43211 10.0.0.20:81 TCP "-" 0 12 5003
        "-" "-"
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

TCP_METHOD = "TCP"  # the method field of a TCP connection's line
FIELDS = (
    "time",
    "server",
    "client",
    "local",
    "method",
    "path",
    "status",
    "bytes",
    "duration_ms",
    "xff",
    "user_agent",
)
_LINE = re.compile(
    r'^(\S+) (\S+) (\S+) (\S+) (\S+) "((?:[^"\\]|\\.)*)" (\d+) (\d+) ([\d.]+) '
    r'"((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)"$'
)


@dataclass(frozen=True)
class AccessRecord:
    time: str
    server: str
    client: str
    local: str
    method: str
    path: str
    status: int
    bytes: int
    duration_ms: float
    xff: str
    user_agent: str


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def timestamp(epoch: float | None = None) -> str:
    """ISO 8601 UTC with microseconds, as the log writes it."""
    epoch = time.time() if epoch is None else epoch
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))
        + f".{int((epoch % 1) * 1_000_000):06d}Z"
    )


def format_line(
    server: str,
    client: str,
    local: str,
    method: str,
    path: str,
    status: int,
    nbytes: int,
    duration_ms: float,
    xff: str | None,
    user_agent: str | None,
    epoch: float | None = None,
) -> str:
    """One access-log line (without the newline)."""
    return (
        f'{timestamp(epoch)} {server} {client} {local} {method} "{_quote(path)}" '
        f'{status} {nbytes} {duration_ms:.3f} "{_quote(xff or "-")}" '
        f'"{_quote(user_agent or "-")}"'
    )


def is_connection(record: AccessRecord) -> bool:
    """Whether a line is a TCP connection's (a CLB's TCP listener), not an HTTP request's."""
    return record.method == TCP_METHOD


def parse_line(line: str) -> AccessRecord | None:
    """Parse one line; None if it is not in the lab's format."""
    m = _LINE.match(line.rstrip("\n"))
    if not m:
        return None
    g = m.groups()
    return AccessRecord(
        g[0],
        g[1],
        g[2],
        g[3],
        g[4],
        _unquote(g[5]),
        int(g[6]),
        int(g[7]),
        float(g[8]),
        _unquote(g[9]),
        _unquote(g[10]),
    )
