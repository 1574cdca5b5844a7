"""An ALB with a Lambda target on a real lab (issue 17): the function runs in a lab host of its
own (kind "lambda", the lambda-runtime role) behind the ALB's real HAProxy; requests from the
internet client get AWS's ALB event to the function and its result back as the response:
headers, multi-value headers and query parameters (lambda.multi_value_headers.enabled on
/fn/*, off on /single/*), a base64 body both ways, the group's ARN in the event, the function's
environment; a timeout is 504, a bad result or an exception 502; the default action still
reaches the instance.

templates/alb-lambda.yaml; curl in the internet client to a node's public address.
"""

from __future__ import annotations

import base64
import json
import subprocess

import pytest

from testbed.lab.api import Lab

pytestmark = pytest.mark.integration
TEMPLATE = "templates/alb-lambda.yaml"
CLIENT = "Client"


@pytest.fixture(scope="module")
def lab():
    with Lab.up(TEMPLATE) as lab:
        lab.wait_healthy("WebTargets", timeout=60)
        lab.wait_healthy("MultiTargets", timeout=30)
        lab.wait_healthy("SingleTargets", timeout=30)
        yield lab


def node_ip(lab) -> str:
    lb = next(x for x in lab.state["load_balancers"] if x["name"] == "Alb")
    return lb["nodes"][0]["public_ip"]


def curl(lab, path: str, *extra: str) -> tuple[int, dict[str, list[str]], bytes]:
    """(status, {lower-case header: values}, body) of one request from the client."""
    argv = ["curl", "-s", "-m", "10", "-D", "/dev/stderr", "-o", "-", *extra]
    client = lab.host(CLIENT)
    proc = subprocess.run(
        client.argv([*argv, f"http://{node_ip(lab)}{path}"]), capture_output=True, timeout=20
    )
    assert proc.returncode == 0, proc.stderr
    head = proc.stderr.decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers: dict[str, list[str]] = {}
    for line in head[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
    return status, headers, proc.stdout


def test_the_function_has_a_lab_host_of_its_own(lab):
    host = next(h for h in lab.plan.hosts if h.name == "Echo")
    assert host.kind == "lambda"
    assert host.role == "lambda-runtime"
    assert host.subnet == "SubnetA"


def test_event_and_result_with_multi_value_headers(lab):
    status, headers, body = curl(
        lab, "/fn/echo?a=1&a=2&q=x%20y", "-H", "X-Multi: one", "-H", "X-Multi: two"
    )
    assert status == 201
    answer = json.loads(body)
    event = answer["event"]
    assert answer["greeting"] == "hello from lambda"  # Environment.Variables
    assert event["httpMethod"] == "GET"
    assert event["path"] == "/fn/echo"
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "q": ["x%20y"]}
    assert event["multiValueHeaders"]["x-multi"] == ["one", "two"]
    assert "x-forwarded-for" in event["multiValueHeaders"]
    assert "headers" not in event
    assert "queryStringParameters" not in event
    assert "x-lab-lambda-group" not in event["multiValueHeaders"]
    assert event["requestContext"]["elb"]["targetGroupArn"] == lab.outputs["MultiTargetsArn"]
    assert event["isBase64Encoded"] is False
    assert headers["x-fn"] == ["one", "two"]  # the result's multiValueHeaders


def test_single_value_headers_without_the_attribute(lab):
    status, headers, body = curl(lab, "/single/echo?a=1&a=2", "-H", "X-Multi: one")
    assert status == 201
    event = json.loads(body)["event"]
    assert event["queryStringParameters"] == {"a": "2"}  # the last value, as AWS
    assert event["headers"]["x-multi"] == "one"
    assert "multiValueHeaders" not in event
    assert event["requestContext"]["elb"]["targetGroupArn"] == lab.outputs["SingleTargetsArn"]
    assert headers["x-fn"] == ["single"]  # the result's headers


def test_base64_bodies_both_ways(lab):
    status, _headers, body = curl(
        lab,
        "/fn/echo",
        "-X",
        "POST",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        "\x01\x02binary",
    )
    assert status == 201
    event = json.loads(body)["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\x01\x02binary"
    status, headers, body = curl(lab, "/fn/bytes")
    assert status == 200
    assert body == bytes(range(256))
    assert headers["content-type"] == ["application/octet-stream"]
    status, _headers, body = curl(
        lab, "/fn/echo", "-X", "POST", "-H", "Content-Type: text/plain", "--data", "hello"
    )
    event = json.loads(body)["event"]
    assert (event["body"], event["isBase64Encoded"]) == ("hello", False)


def test_timeout_is_504_and_bad_results_502(lab):
    status, headers, _body = curl(lab, "/fn/slow")
    assert status == 504
    assert headers["x-lab-error-reason"] == ["LambdaTimeout"]
    status, headers, _body = curl(lab, "/fn/bad")
    assert status == 502
    assert headers["x-lab-error-reason"] == ["LambdaInvalidResponse"]
    status, headers, _body = curl(lab, "/fn/crash")
    assert status == 502
    assert headers["x-lab-error-reason"] == ["LambdaUnhandled"]
    status, _headers, _body = curl(lab, "/fn/echo")  # a new worker after the killed one
    assert status == 201


def test_health_checks_invoke_the_function(lab):
    """SingleTargets has HealthCheckEnabled: the ALB's checks are events too (GET of
    HealthCheckPath, ELB-HealthChecker/2.0, the group's ARN); the function prints them."""
    log = lab.dir / "hosts" / "Echo" / "role.log"

    def seen() -> dict | None:
        for line in log.read_text().splitlines():
            if line.startswith("health check event: "):
                return json.loads(line.removeprefix("health check event: "))
        return None

    event = lab.wait_for(seen, timeout=15, what="a health check event in Echo's role.log")
    assert event["httpMethod"] == "GET"
    assert event["path"] == "/single/health"
    assert event["headers"]["user-agent"] == "ELB-HealthChecker/2.0"
    assert event["requestContext"]["elb"]["targetGroupArn"] == lab.outputs["SingleTargetsArn"]
    assert (event["body"], event["isBase64Encoded"]) == ("", False)


def test_default_action_reaches_the_instance(lab):
    status, _headers, body = curl(lab, "/other")
    assert status == 200
    assert json.loads(body)["instance"] == "Web1"
