"""AWS's ALB <-> Lambda formats, as pure functions (testbed.roles.lambda_runtime uses them).

The event (what the function gets for one request):
  requestContext.elb.targetGroupArn  the target group that invoked it
  httpMethod, path                   as sent (the path is not URL-decoded)
  queryStringParameters              {name: value}: the last value of a repeated name; names
                                     and values stay URL-encoded, as AWS passes them
  headers                            {lower-case name: value}: the last value of a repeated one
  multiValueQueryStringParameters,   instead of the two above when the group's
  multiValueHeaders                  lambda.multi_value_headers.enabled is true: every value
  body, isBase64Encoded              the body as text, or base64 when it is binary (a
                                     Content-Encoding, a non-text Content-Type, or not UTF-8)

The result (what the function returns): a JSON object with statusCode (required: 100-599),
statusDescription ("200 OK": its reason phrase is the response's), headers ({name: value}) or,
with multi-value headers enabled, multiValueHeaders ({name: [values]}; headers when it has
none), body (text; base64 when isBase64Encoded is true). Anything else is an invalid response:
the load balancer answers 502, as for an unhandled exception in the function; a result over
1 MB is 502 too; a function that runs past its Timeout gets 504 (the lab's choice for what
AWS's troubleshooting guide lists among Lambda errors; see README).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

MAX_RESULT_BYTES = 1024 * 1024  # AWS: the response JSON of a function is at most 1 MB
MAX_REQUEST_BODY = 1024 * 1024  # AWS: the request body sent to a function is at most 1 MB
TEXT_TYPES = (
    "text/",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/x-www-form-urlencoded",
    "application/ld+json",
    "application/xhtml+xml",
)
# Hop-by-hop and framing headers the runtime sets itself.
FRAMING = ("content-length", "transfer-encoding", "connection", "keep-alive")
# Error reasons (AWS's access log names them error_reason; the lab says them in a header).
UNHANDLED = "LambdaUnhandled"
INVALID = "LambdaInvalidResponse"
TOO_LARGE = "LambdaResponseTooLarge"
TIMEOUT = "LambdaTimeout"


class InvalidResponse(ValueError):
    """A function result the load balancer cannot turn into an HTTP response (502)."""


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


def _split_query(query: str) -> list[tuple[str, str]]:
    pairs = []
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((name, value))
    return pairs


def _is_text(headers: list[tuple[str, str]], body: bytes) -> bool:
    if any(name.lower() == "content-encoding" for name, _ in headers):
        return False
    ctype = next((v for n, v in reversed(headers) if n.lower() == "content-type"), "")
    if ctype and not ctype.lower().startswith(TEXT_TYPES):
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def request_event(
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    group_arn: str,
    multi_value: bool,
) -> dict[str, Any]:
    """The ALB event of one request (`target`: the request line's path and query)."""
    path, _, query = target.partition("?")
    event: dict[str, Any] = {
        "requestContext": {"elb": {"targetGroupArn": group_arn}},
        "httpMethod": method,
        "path": path,
    }
    pairs = _split_query(query)
    lowered = [(name.lower(), value) for name, value in headers]
    if multi_value:
        event["multiValueQueryStringParameters"] = _many(pairs)
        event["multiValueHeaders"] = _many(lowered)
    else:
        event["queryStringParameters"] = dict(pairs)  # a repeated name: its last value
        event["headers"] = dict(lowered)
    if not body:
        event["body"], event["isBase64Encoded"] = "", False
    elif _is_text(headers, body):
        event["body"], event["isBase64Encoded"] = body.decode("utf-8"), False
    else:
        event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode("ascii"), True
    return event


def _many(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        out.setdefault(name, []).append(value)
    return out


def _text(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (str, int, float)):
        return str(value)
    raise InvalidResponse(f"{where} must be text, not {type(value).__name__}")


def _headers(result: dict[str, Any], multi_value: bool) -> list[tuple[str, str]]:
    many = result.get("multiValueHeaders") if multi_value else None
    if many is not None:
        if not isinstance(many, dict):
            raise InvalidResponse("multiValueHeaders must be an object of lists")
        out = []
        for name, values in many.items():
            if not isinstance(values, list):
                raise InvalidResponse(f"multiValueHeaders.{name} must be a list")
            out += [(str(name), _text(v, f"multiValueHeaders.{name}")) for v in values]
        return out
    single = result.get("headers")
    if single is None:
        return []
    if not isinstance(single, dict):
        raise InvalidResponse("headers must be an object")
    return [(str(name), _text(value, f"headers.{name}")) for name, value in single.items()]


def http_response(result: Any, multi_value: bool) -> Response:
    """The HTTP response of a function's result; InvalidResponse when AWS would give 502."""
    if not isinstance(result, dict):
        raise InvalidResponse(f"the result is {type(result).__name__}, not an object")
    code = result.get("statusCode")
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    if not isinstance(code, int) or isinstance(code, bool) or not 100 <= code <= 599:
        raise InvalidResponse(f"statusCode {code!r} is not an HTTP status code")
    description = result.get("statusDescription")
    reason = _reason(code)
    if isinstance(description, str) and description.strip():
        first, _, rest = description.strip().partition(" ")
        reason = rest if first == str(code) and rest else description.strip()
    body = result.get("body")
    if body is None:
        body = ""
    if not isinstance(body, str):
        raise InvalidResponse(f"body must be text, not {type(body).__name__}")
    if result.get("isBase64Encoded") in (True, "true"):
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidResponse("isBase64Encoded is true but body is not base64") from None
    else:
        data = body.encode("utf-8")
    headers = [(n, v) for n, v in _headers(result, multi_value) if n.lower() not in FRAMING]
    return Response(code, reason, tuple(headers), data)


def _reason(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


def error_response(status: int, why: str) -> Response:
    """The load balancer's own answer for a function that failed (502, 504, 413)."""
    phrase = _reason(status)
    page = (
        f"<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {phrase}</h1></center>\r\n</body>\r\n</html>\r\n"
    )
    return Response(
        status,
        phrase,
        (("Content-Type", "text/html"), ("X-Lab-Error-Reason", why)),
        page.encode(),
    )


def decode_result(line: bytes) -> Any:
    """A worker's JSON result line; InvalidResponse when it is not JSON."""
    try:
        return json.loads(line)
    except ValueError:
        raise InvalidResponse("the result is not JSON") from None
