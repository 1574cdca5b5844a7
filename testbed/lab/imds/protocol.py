"""One request to an instance's metadata service, answered as EC2's IMDS answers it (pure).

IMDSv2: PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds (1 to 21600) returns
a session token (and its TTL in the same header); a GET that carries it in
X-aws-ec2-metadata-token is answered while it is valid, and 401 once it has expired or was
never issued to this instance (tokens are per instance). IMDSv1: a GET without a token is
answered too (HttpTokens "optional", AWS's default for the templates that use it). A PUT that
came through a proxy (X-Forwarded-For) is refused (403), as AWS does. Only GET, HEAD and
the token's PUT are allowed (405 otherwise).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from testbed.lab.imds.metadata import Node, listing, lookup

TOKEN_PATH = "/latest/api/token"
TOKEN_HEADER = "x-aws-ec2-metadata-token"
TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds"
MAX_TTL_S = 21600
MAX_TOKENS = 1000  # per instance; the oldest go first (a loop asking for tokens must not grow)
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
}
# What IMDS says with an error status (its own page, text/html).
_ERROR_PAGE = """<?xml version="1.0" encoding="iso-8859-1"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
\t"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title>{code} - {reason}</title>
 </head>
 <body>
  <h1>{code} - {reason}</h1>
 </body>
</html>
"""


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query string
    headers: Mapping[str, str]  # names in lower case


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def reason(self) -> str:
        return REASONS.get(self.status, "Error")

    def head(self, keep_alive: bool) -> bytes:
        """Status line and headers (with Content-Length and Connection)."""
        lines = [f"HTTP/1.1 {self.status} {self.reason}"]
        lines += [f"{k}: {v}" for k, v in self.headers]
        lines.append(f"Content-Length: {len(self.body)}")
        lines.append("Connection: " + ("keep-alive" if keep_alive else "close"))
        lines.append("Server: EC2ws")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()


def error(status: int, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    page = _ERROR_PAGE.format(code=status, reason=REASONS.get(status, "Error"))
    return Response(status, page.encode(), (("Content-Type", "text/html"), *headers))


@dataclass
class TokenStore:
    """The IMDSv2 session tokens one instance was given: token -> when it expires."""

    tokens: dict[str, float] = field(default_factory=dict)

    def issue(self, ttl_s: int, now: float) -> str:
        self._forget_expired(now)
        while len(self.tokens) >= MAX_TOKENS:
            del self.tokens[next(iter(self.tokens))]
        # AWS's tokens are base64 text of about this length.
        token = base64.b64encode(secrets.token_bytes(42)).decode()
        self.tokens[token] = now + ttl_s
        return token

    def remaining(self, token: str, now: float) -> int | None:
        """Whole seconds the token has left; None: expired or never issued here."""
        expires = self.tokens.get(token)
        if expires is None or expires <= now:
            self.tokens.pop(token, None)
            return None
        return max(1, int(expires - now))

    def _forget_expired(self, now: float) -> None:
        for token in [t for t, expires in self.tokens.items() if expires <= now]:
            del self.tokens[token]


def answer(request: Request, tree: Mapping[str, Node], tokens: TokenStore, now: float) -> Response:
    """The answer to one request of the instance whose tree and tokens these are."""
    path = _normal(request.path)
    if request.method == "PUT":
        if path != TOKEN_PATH:
            return error(405, (("Allow", "GET, HEAD"),))
        return _issue(request, tokens, now)
    if request.method not in ("GET", "HEAD"):
        return error(405, (("Allow", "GET, HEAD, PUT"),))
    extra: tuple[tuple[str, str], ...] = ()
    token = request.headers.get(TOKEN_HEADER)
    if token is not None:
        left = tokens.remaining(token.strip(), now)
        if left is None:
            return error(401)
        extra = (("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", str(left)),)
    if path == TOKEN_PATH:
        return error(405, (("Allow", "PUT"),))
    node = lookup(tree, path)
    if node is None:
        return error(404, extra)
    if isinstance(node, Mapping):
        body, kind = listing(node, path).encode(), "text/plain"
    elif isinstance(node, bytes):
        body, kind = node, "application/octet-stream"
    else:
        body, kind = node.encode(), "text/plain"
    if request.method == "HEAD":
        body = b""
    return Response(200, body, (("Content-Type", kind), ("Accept-Ranges", "none"), *extra))


def _issue(request: Request, tokens: TokenStore, now: float) -> Response:
    if "x-forwarded-for" in request.headers:
        return error(403)
    raw = request.headers.get(TTL_HEADER)
    try:
        ttl = int(raw.strip()) if raw is not None else 0
    except ValueError:
        ttl = 0
    if not 1 <= ttl <= MAX_TTL_S:
        return error(400)
    token = tokens.issue(ttl, now)
    return Response(
        200,
        token.encode(),
        (("Content-Type", "text/plain"), ("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", str(ttl))),
    )


def _normal(path: str) -> str:
    """The path without its query, a trailing slash kept off the token's path."""
    path = path.split("?", 1)[0].split("#", 1)[0] or "/"
    return path.rstrip("/") if path.rstrip("/") == TOKEN_PATH else path


def parse_head(data: bytes) -> tuple[Request, str, int]:
    """A request's head (up to the empty line): the Request, its HTTP version and its
    Content-Length. ValueError when it is not HTTP."""
    text = data.decode("latin-1")
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise ValueError(f"not an HTTP request line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"bad header line {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    return Request(parts[0].upper(), parts[1], headers), parts[2], length


def keep_alive(version: str, headers: Mapping[str, str]) -> bool:
    """Does the client keep the connection (HTTP/1.1 unless it says close)?"""
    connection = headers.get("connection", "").lower()
    if version == "HTTP/1.0":
        return connection == "keep-alive"
    return connection != "close"
