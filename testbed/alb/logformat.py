"""The lab's access-log line (testbed.accesslog) as HAProxy log-format strings.

HTTP listeners (ALB, CLB) write one line at the end of each request: completion time, node,
client, local address, method, "target", status (0 when no answer was sent), bytes, duration
in ms, "X-Forwarded-For as received", "User-Agent".

TCP listeners (CLB) write one line when each connection ends: completion time, node, client,
local address, TCP "-" 0, bytes sent to the client, the connection's whole duration in ms,
"-" "-". (`option dontlognull`: a connection that carried no data is not logged.)

`{node}` is filled in with the node's host name (str.format: braces are doubled).
"""

from __future__ import annotations

_TIME = "%[date,utime(%Y-%m-%dT%H:%M:%S)].%[date_us,add(1000000),regsub(^1,)]Z "
HTTP_LOG_FORMAT = (
    _TIME + '{node} %ci:%cp %fi:%fp %HM \\"%{{+E}}HU\\" %[var(txn.st,0)] %B %Ta '
    '\\"%{{+E}}[var(txn.xff,-)]\\" \\"%{{+E}}[var(txn.ua,-)]\\"'
)
TCP_LOG_FORMAT = _TIME + '{node} %ci:%cp %fi:%fp TCP \\"-\\" 0 %B %Tt \\"-\\" \\"-\\"'


def log_format_line(fmt: str, node: str) -> str:
    """The `log-format` line of a frontend."""
    return '    log-format "' + fmt.format(node=node) + '"'
