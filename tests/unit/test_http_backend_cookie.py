"""The http-backend's `set_cookie` query parameter (the application's session cookie that a
CLB's AppCookieStickinessPolicy follows), on loopback."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from tests.unit.test_backend_and_load import backend  # noqa: F401 (a fixture)


def get(url: str) -> tuple[int, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


def test_set_cookie_sets_the_named_cookie(backend):  # noqa: F811
    base = f"http://127.0.0.1:{backend['port']}"
    status, headers = get(f"{base}/?set_cookie=SESSIONID=s1")
    assert status == 200
    assert headers["Set-Cookie"] == "SESSIONID=s1; Path=/"
    assert "Set-Cookie" not in get(f"{base}/")[1]
    # Also on the health path, with a status: the parameter shapes any answer.
    status, headers = get(f"{base}/health?set_cookie=a=&status=503")
    assert (status, headers["Set-Cookie"]) == (503, "a=; Path=/")


@pytest.mark.parametrize("bad", ["SESSIONID", "=x", "a=b;c", "a=b%0d%0aX-Evil:%201", "a%20b=c"])
def test_a_cookie_that_could_inject_headers_is_refused(backend, bad):  # noqa: F811
    status, headers = get(f"http://127.0.0.1:{backend['port']}/?set_cookie={bad}")
    assert status == 400
    assert "Set-Cookie" not in headers
