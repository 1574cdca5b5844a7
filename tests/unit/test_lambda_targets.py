"""Lambda targets (issue 17): the model (AWS::Lambda::Function, TargetType lambda groups, the
function's host placed in the ALB's subnet), the plan (a "lambda" host running
lambda-runtime; the HAProxy backend naming its group), bad input (file:line, exit 2), the
ALB <-> Lambda formats as pure functions, and the runtime with real worker processes
(timeout, exception, bad result, environment, prints)."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.alb import config
from testbed.alb.config import node_files, render
from testbed.errors import BadInput
from testbed.model import load_model, load_model_text, schemas
from testbed.model.elbv2_types import elbv2_sections
from testbed.model.resources import lambda_function
from testbed.model.resources.lambda_function import functions
from testbed.plan.network import build_plan
from testbed.roles import lambda_alb, lambda_runtime
from testbed.roles.lambda_alb import InvalidResponse, http_response, request_event

TEMPLATE = "templates/alb-lambda.yaml"
TEXT = Path(TEMPLATE).read_text()


@pytest.fixture(scope="module")
def model():
    return load_model(TEMPLATE, stack_name="t")


def bad(text: str) -> BadInput:
    with pytest.raises(BadInput) as err:
        load_model_text(text, filename="bad.yaml", stack_name="t")
    return err.value


def line_of(text: str, needle: str, after: str = "") -> int:
    """The line of the first `needle` after the line holding `after`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if after in line)
    return next(i for i, line in enumerate(lines[start:], start + 1) if needle in line)


# ---- model ---------------------------------------------------------------------------------
def test_function_and_groups(model):
    fn = functions(model)["Echo"]
    assert (fn.runtime, fn.handler, fn.timeout_s, fn.memory_mb) == (
        "python3.12",
        "index.handler",
        1,
        128,
    )
    assert dict(fn.environment) == {"GREETING": "hello from lambda"}
    assert fn.arn == f"arn:aws:lambda:us-east-1:123456789012:function:{fn.name}"
    assert fn.name.startswith("t-Echo-")  # CloudFormation's stack-LogicalId-RANDOM
    # Placed after everything else: the lowest free address of the ALB's first subnet.
    assert (fn.subnet_id, str(fn.private_ip)) == ("SubnetA", "10.17.1.6")
    assert fn.target_groups == ("MultiTargets", "SingleTargets")
    groups = elbv2_sections(model)["target_groups"]
    multi, single = groups["MultiTargets"], groups["SingleTargets"]
    assert multi.target_type == "lambda"
    assert multi.vpc_id == "Vpc"
    assert [(t.id, str(t.ip), t.port) for t in multi.targets] == [(fn.arn, "10.17.1.6", 80)]
    assert dict(multi.attributes) == {"lambda.multi_value_headers.enabled": "true"}
    assert single.attributes["lambda.multi_value_headers.enabled"] == "false"
    assert multi.health_check.enabled is False  # AWS: off by default for lambda groups
    assert single.health_check.enabled is True
    assert single.health_check.path == "/single/health"


def test_health_check_defaults_of_a_lambda_group():
    text = TEXT.replace(
        "      HealthCheckIntervalSeconds: 5\n      HealthCheckTimeoutSeconds: 4\n", ""
    )
    text = text.replace("      HealthyThresholdCount: 2\n      Matcher", "      Matcher")
    hc = elbv2_sections(load_model_text(text, filename="x.yaml"))["target_groups"]["SingleTargets"]
    assert (hc.health_check.interval_s, hc.health_check.timeout_s) == (35, 30)
    assert (hc.health_check.healthy_threshold, hc.health_check.unhealthy_threshold) == (5, 2)


def test_an_unused_function_with_s3_code_is_accepted():
    text = TEXT.replace(
        "  EchoPermission:",
        "  Other:\n    Type: AWS::Lambda::Function\n    Properties:\n      Runtime: nodejs20.x\n"
        "      Handler: index.handler\n      Role: arn:aws:iam::123456789012:role/x\n"
        "      Code: {S3Bucket: b, S3Key: k.zip}\n  EchoPermission:",
    )
    model = load_model_text(text, filename="x.yaml")
    assert functions(model)["Other"].private_ip is None  # nothing invokes it: no host


# ---- bad input -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("old", "new", "needle", "words"),
    [
        (
            "        ZipFile: |",
            "        S3Bucket: my-bucket\n        S3Key: fn.zip\n        Unused: |",
            "S3Bucket: my-bucket",
            "S3Bucket/S3Key",
        ),
        ("Runtime: python3.12", "Runtime: nodejs20.x", "Runtime: nodejs20.x", "not python3.x"),
        ("Handler: index.handler", "Handler: app.handler", "Handler: app.handler", "module index"),
    ],
)
def test_a_function_the_lab_cannot_run(old, new, needle, words):
    text = TEXT.replace(old, new, 1)
    if "Unused" in text:
        text = text.replace("        Unused: |", "      Description: |", 1)
    err = bad(text)
    assert words in err.message
    assert err.logical_id == "Echo"
    assert err.line == line_of(text, needle)
    assert err.exit_code == 2
    assert str(err).startswith(f"bad.yaml:{err.line}: Echo:")


def test_two_functions_in_one_group():
    text = TEXT.replace(
        "      Targets: [{Id: !GetAtt Echo.Arn}]\n      TargetGroupAttributes",
        "      Targets: [{Id: !GetAtt Echo.Arn}, {Id: !GetAtt Echo.Arn}]\n"
        "      TargetGroupAttributes",
    )
    err = bad(text)
    assert "one function, not 2" in err.message
    assert err.logical_id == "MultiTargets"


@pytest.mark.parametrize("prop", ["Port: 80", "Protocol: HTTP", "VpcId: !Ref Vpc"])
def test_a_lambda_group_has_no_port_protocol_or_vpc(prop):
    text = TEXT.replace(
        "      TargetType: lambda\n      Targets: [{Id: !GetAtt Echo.Arn}]\n"
        "      TargetGroupAttributes",
        f"      TargetType: lambda\n      {prop}\n      Targets: [{{Id: !GetAtt Echo.Arn}}]\n"
        "      TargetGroupAttributes",
    )
    err = bad(text)
    assert f"a lambda target group has no {prop.split(':')[0]}" in err.message
    assert err.line == line_of(text, prop, after="  MultiTargets:")
    assert err.logical_id == "MultiTargets"


def test_a_lambda_group_behind_an_nlb():
    text = TEXT.replace(
        "  Alb:\n    Type: AWS::ElasticLoadBalancingV2::LoadBalancer\n    Properties:\n",
        "  Nlb:\n    Type: AWS::ElasticLoadBalancingV2::LoadBalancer\n    Properties:\n"
        "      Type: network\n      Subnets: [!Ref SubnetA]\n"
        "  NlbListener:\n    Type: AWS::ElasticLoadBalancingV2::Listener\n    Properties:\n"
        "      LoadBalancerArn: !Ref Nlb\n      Protocol: TCP\n      Port: 80\n"
        "      DefaultActions: [{Type: forward, TargetGroupArn: !Ref Spare}]\n"
        "  Spare:\n    Type: AWS::ElasticLoadBalancingV2::TargetGroup\n    Properties:\n"
        "      TargetType: lambda\n"
        "  Alb:\n    Type: AWS::ElasticLoadBalancingV2::LoadBalancer\n    Properties:\n",
    )
    err = bad(text)
    assert "only an application load balancer can forward to lambda target group" in err.message
    assert err.logical_id == "NlbListener"


def test_a_target_that_is_no_function_of_the_template():
    text = TEXT.replace(
        "      Targets: [{Id: !GetAtt Echo.Arn}]\n      TargetGroupAttributes",
        "      Targets: [{Id: arn:aws:lambda:us-east-1:123456789012:function:elsewhere}]\n"
        "      TargetGroupAttributes",
    )
    err = bad(text)
    assert "is not the ARN of an AWS::Lambda::Function of this template" in err.message


# ---- plan and HAProxy ----------------------------------------------------------------------
def test_the_function_host_and_backend(model):
    plan = build_plan(model, "t")
    host = next(h for h in plan.hosts if h.name == "Echo")
    assert (host.kind, host.role, host.ip, host.subnet, host.groups) == (
        "lambda",
        "lambda-runtime",
        "10.17.1.6",
        "SubnetA",
        None,
    )
    args = host.role_args
    assert args["handler"] == "index.handler"
    assert args["timeout"] == 1
    assert args["port"] == 80
    assert args["groups"]["MultiTargets"]["multi_value"] is True
    assert args["groups"]["SingleTargets"]["multi_value"] is False
    lb = plan.load_balancers[0]
    node = lb.nodes[0]
    text = render(lb, node, node_files(config.Path("/run/elb-testbed/t"), node.host))
    backend = text.split("backend tg_MultiTargets\n", 1)[1].split("\n\n", 1)[0]
    assert "http-request set-header X-Lab-Lambda-Group MultiTargets" in backend
    assert "10.17.1.6:80" in backend


def test_templates_without_functions_have_no_lambda_hosts():
    plan = build_plan(load_model("templates/alb.yaml"), "t")
    assert not [h for h in plan.hosts if h.kind == "lambda"]


# ---- the formats ---------------------------------------------------------------------------
ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/g/1"


def test_event_single_value():
    event = request_event(
        "GET",
        "/p/a%20b?x=1&x=2&y=%2F&flag",
        [("Host", "h"), ("X-A", "1"), ("x-a", "2")],
        b"",
        ARN,
        multi_value=False,
    )
    assert event == {
        "requestContext": {"elb": {"targetGroupArn": ARN}},
        "httpMethod": "GET",
        "path": "/p/a%20b",
        "queryStringParameters": {"x": "2", "y": "%2F", "flag": ""},
        "headers": {"host": "h", "x-a": "2"},
        "body": "",
        "isBase64Encoded": False,
    }


def test_event_multi_value_and_bodies():
    event = request_event(
        "POST", "/p?x=1&x=2", [("X-A", "1"), ("X-A", "2")], b"{}", ARN, multi_value=True
    )
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"]}
    assert event["multiValueHeaders"] == {"x-a": ["1", "2"]}
    assert "headers" not in event
    assert "queryStringParameters" not in event
    assert (event["body"], event["isBase64Encoded"]) == ("{}", False)
    binary = request_event(
        "POST", "/", [("Content-Type", "image/png")], b"\x89PNG", ARN, multi_value=False
    )
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == b"\x89PNG"
    gz = request_event("POST", "/", [("Content-Encoding", "gzip")], b"abc", ARN, False)
    assert gz["isBase64Encoded"] is True
    not_utf8 = request_event("POST", "/", [], b"\xff\xfe", ARN, False)
    assert not_utf8["isBase64Encoded"] is True


def test_response_single_and_multi_value():
    result = {
        "statusCode": 200,
        "statusDescription": "200 Fine",
        "headers": {"Content-Type": "text/plain", "Content-Length": "99"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": "hi",
    }
    single = http_response(result, multi_value=False)
    assert (single.status, single.reason, single.body) == (200, "Fine", b"hi")
    assert single.headers == (("Content-Type", "text/plain"),)  # framing is the runtime's
    multi = http_response(result, multi_value=True)
    assert multi.headers == (("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"))
    only_headers = http_response({"statusCode": 204, "headers": {"X": 1}}, multi_value=True)
    assert (only_headers.reason, only_headers.headers, only_headers.body) == (
        "No Content",
        (("X", "1"),),
        b"",
    )
    raw = http_response(
        {"statusCode": 200, "isBase64Encoded": True, "body": base64.b64encode(b"\0\1").decode()},
        False,
    )
    assert raw.body == b"\0\1"


@pytest.mark.parametrize(
    "result",
    [
        "text",
        None,
        {"body": "no status"},
        {"statusCode": 42},
        {"statusCode": True},
        {"statusCode": 200, "body": {"not": "text"}},
        {"statusCode": 200, "isBase64Encoded": True, "body": "***"},
        {"statusCode": 200, "headers": ["a"]},
        {"statusCode": 200, "headers": {"a": ["list"]}},
        {"statusCode": 200, "multiValueHeaders": {"a": "x"}},
    ],
)
def test_invalid_results(result):
    with pytest.raises(InvalidResponse):
        http_response(result, multi_value=True)


def test_error_pages():
    page = lambda_alb.error_response(504, lambda_alb.TIMEOUT)
    assert (page.status, page.reason) == (504, "Gateway Timeout")
    assert ("X-Lab-Error-Reason", "LambdaTimeout") in page.headers


# ---- the runtime with real workers ---------------------------------------------------------
CODE = """
import json, os, sys, time

STARTS = []

def handler(event, context):
    STARTS.append(1)
    print("a print must not break the protocol")
    path = event["path"]
    if path == "/slow":
        time.sleep(10)
    if path == "/raise":
        raise ValueError("boom")
    if path == "/bad":
        return {"statusCode": "many"}
    if path == "/unserializable":
        return {"statusCode": 200, "body": object()}
    if path == "/big":
        return {"statusCode": 200, "body": "x" * (1024 * 1024 + 10)}
    return {"statusCode": 200, "body": json.dumps({
        "env": os.environ.get("COLOR"), "warm": len(STARTS),
        "name": context.function_name, "left": context.get_remaining_time_in_millis()})}
"""


def runtime_config(tmp_path: Path) -> tuple[dict, Path]:
    cfg = {
        "function": "fn",
        "arn": "arn:aws:lambda:us-east-1:123456789012:function:fn",
        "handler": "index.handler",
        "code": CODE,
        "timeout": 1,
        "memory": 128,
        "environment": {"COLOR": "blue"},
        "port": 0,
        "groups": {"G": {"arn": ARN, "multi_value": False}},
    }
    return cfg, lambda_runtime.write_code(cfg, tmp_path)


def test_runtime_answers_with_real_workers(tmp_path):
    cfg, code_dir = runtime_config(tmp_path)

    async def scenario() -> list:
        function = lambda_runtime.Function(cfg, code_dir)
        out = []
        for path in ("/ok", "/ok", "/raise", "/bad", "/unserializable", "/big", "/slow", "/ok"):
            request = {"method": "GET", "target": path, "headers": [], "body": b"", "keep": True}
            out.append(await lambda_runtime.respond(function, cfg, request))
        function.close()
        return out

    ok, warm, raised, badres, unser, big, slow, after = asyncio.run(scenario())
    first = json.loads(ok.body)
    assert (ok.status, first["env"], first["name"], first["warm"]) == (200, "blue", "fn", 1)
    assert 0 < first["left"] <= 1000
    assert json.loads(warm.body)["warm"] == 2  # the same execution environment, reused
    assert (raised.status, dict(raised.headers)["X-Lab-Error-Reason"]) == (502, "LambdaUnhandled")
    assert (badres.status, dict(badres.headers)["X-Lab-Error-Reason"]) == (
        502,
        "LambdaInvalidResponse",
    )
    assert unser.status == 502
    assert (big.status, dict(big.headers)["X-Lab-Error-Reason"]) == (502, "LambdaResponseTooLarge")
    assert (slow.status, dict(slow.headers)["X-Lab-Error-Reason"]) == (504, "LambdaTimeout")
    assert after.status == 200  # a fresh worker after the killed one
    assert json.loads(after.body)["warm"] == 1


def test_request_over_1_mb_is_413(tmp_path):
    cfg, code_dir = runtime_config(tmp_path)
    request = {"method": "POST", "target": "/", "headers": [], "body": b"x" * (1024 * 1024 + 1)}
    answer = asyncio.run(
        lambda_runtime.respond(lambda_runtime.Function(cfg, code_dir), cfg, request)
    )
    assert answer.status == 413


def test_ignored_function_properties_follow_aws_schema():
    """The written-out list is what cfn-lint's schema has beyond what the lab reads."""
    expected = set(schemas.properties(lambda_function.FUNCTION))
    expected -= set(lambda_function.PROPERTIES) | {"Tags"}
    assert set(lambda_function.IGNORED) == expected


def test_lab_programs_start_without_cfn_lint():
    """Every lab process imports the model through testbed.lab.launch: loading cfn-lint there
    (0.3 s and more per process) slowed every role's start (50 instances: 20 s -> 30 s)."""
    code = (
        "import sys, testbed.roles.http_backend, testbed.alb.node, testbed.lb.health_checker; "
        "print(sorted(m for m in sys.modules if m.startswith('cfnlint')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]", out
