"""ALB listener rules: priorities, the six condition types in both forms, AWS's limits."""

from __future__ import annotations

import re
import textwrap

import pytest

from testbed.model.elbv2_types import Action, Condition, elbv2_sections
from tests.unit.elbv2_data import ALB, NLB, listener, stack, target_group

FORWARD = "[{Type: forward, TargetGroupArn: !Ref Api}]"


def alb(*rules: str) -> str:
    """An ALB with an HTTP:80 listener (default: Web) and the given rules."""
    return stack(
        ALB,
        target_group("Web", "HTTP", 80),
        target_group("Api", "HTTP", 8080),
        listener("L", "ALB", "HTTP", 80, tg="Web"),
        *rules,
    )


def rule(
    name: str, priority: int | str, conditions: str, actions: str = FORWARD, listener_id: str = "L"
) -> str:
    """A listener rule; `conditions` is flow style or a block list (one item per line)."""
    if "\n" in conditions:
        conditions = "\n" + textwrap.indent(textwrap.dedent(conditions).strip("\n"), "      ")
    return (
        f"{name}:\n  Type: AWS::ElasticLoadBalancingV2::ListenerRule\n  Properties:\n"
        f"    ListenerArn: !Ref {listener_id}\n    Priority: {priority}\n"
        f"    Actions: {actions}\n    Conditions: {conditions}\n"
    )


def rules(model):
    return elbv2_sections(model)["listener_rules"]


def test_rule_with_every_condition_type(load):
    conditions = """
        - Field: path-pattern
          PathPatternConfig: {Values: ["/api/*"]}
        - Field: host-header
          Values: ["*.example.com"]
        - Field: http-header
          HttpHeaderConfig: {HttpHeaderName: X-Env, Values: [blue]}
        - Field: query-string
          QueryStringConfig: {Values: [{Key: v, Value: "2"}]}
        - Field: source-ip
          SourceIpConfig: {Values: [198.51.100.0/24]}"""
    model = load(alb(rule("R", 10, conditions)))
    found = rules(model)["R"]
    assert (found.listener_id, found.priority) == ("L", 10)
    assert found.conditions == (
        Condition("path-pattern", ("/api/*",)),
        Condition("host-header", ("*.example.com",)),
        Condition("http-header", ("blue",), "X-Env"),
        Condition("query-string", ("v=2",), None, (("v", "2"),)),
        Condition("source-ip", ("198.51.100.0/24",)),
    )
    assert found.actions == (Action("forward", None, (("Api", 1),)),)
    listener_arn = elbv2_sections(model)["listeners"]["L"].arn
    assert re.fullmatch(
        re.escape(listener_arn.replace(":listener/", ":listener-rule/")) + r"/[0-9a-f]{16}",
        found.arn,
    )


def test_method_and_query_without_key(load):
    conditions = (
        "[{Field: http-request-method, HttpRequestMethodConfig: {Values: [GET, HEAD]}},"
        " {Field: query-string, QueryStringConfig: {Values: [{Value: debug}]}}]"
    )
    found = rules(load(alb(rule("R", 1, conditions))))["R"]
    assert found.conditions == (
        Condition("http-request-method", ("GET", "HEAD")),
        Condition("query-string", ("debug",), None, ((None, "debug"),)),
    )


def test_several_http_header_and_query_conditions_are_allowed(load):
    conditions = (
        "[{Field: http-header, HttpHeaderConfig: {HttpHeaderName: A, Values: [x]}}, "
        "{Field: http-header, HttpHeaderConfig: {HttpHeaderName: B, Values: [y]}}, "
        "{Field: query-string, QueryStringConfig: {Values: [{Key: a, Value: b}]}}, "
        "{Field: query-string, QueryStringConfig: {Values: [{Key: c, Value: d}]}}]"
    )
    assert len(rules(load(alb(rule("R", 1, conditions))))["R"].conditions) == 4


def test_rule_actions_may_redirect_or_answer(load):
    model = load(
        alb(
            rule(
                "Moved",
                1,
                "[{Field: path-pattern, Values: [/old/*]}]",
                "[{Type: redirect, RedirectConfig: {Path: '/new/#{path}', StatusCode: HTTP_301}}]",
            ),
            rule(
                "Down",
                2,
                "[{Field: path-pattern, Values: [/admin]}]",
                "[{Type: fixed-response, FixedResponseConfig: {StatusCode: '503'}}]",
            ),
        )
    )
    assert rules(model)["Moved"].actions[0].redirect["Path"] == "/new/#{path}"
    assert rules(model)["Down"].actions[0].fixed_response["StatusCode"] == "503"


def test_get_att_and_ref(load):
    text = alb(rule("R", 1, "[{Field: path-pattern, Values: [/x]}]"))
    text += (
        "Outputs:\n  Ref: {Value: !Ref R}\n  Arn: {Value: !GetAtt R.RuleArn}\n"
        "  Default: {Value: !GetAtt R.IsDefault}\n"
    )
    model = load(text)
    assert model.outputs["Ref"] == model.outputs["Arn"] == rules(model)["R"].arn
    assert model.outputs["Default"] == "false"


def test_priorities_are_unique_per_listener(fails, load):
    path = "[{Field: path-pattern, Values: [/a]}]"
    text = alb(rule("R1", 5, path), rule("R2", 5, path))
    fails(
        text,
        "rule R1 of listener L already has priority 5",
        logical_id="R2",
        line=len(text.splitlines()) - 2,
    )
    second = listener("L2", "ALB", "HTTP", 81, tg="Web")
    assert set(
        rules(load(alb(rule("R1", 5, path), second, rule("R2", 5, path, listener_id="L2"))))
    ) == {"R1", "R2"}


@pytest.mark.parametrize(
    ("priority", "message"),
    [
        (0, "Priority must be from 1 to 50000, not 0"),
        (50001, "Priority must be from 1 to 50000, not 50001"),
        ("high", "Priority must be a whole number, not 'high'"),
    ],
)
def test_priority_range(fails, line_with, priority, message):
    text = alb(rule("R", priority, "[{Field: path-pattern, Values: [/a]}]"))
    fails(text, message, logical_id="R", line=line_with(text, f"Priority: {priority}"))


def test_rules_are_only_for_albs(fails):
    text = stack(
        NLB,
        target_group("TG", "TCP", 80),
        listener("L", "NLB", "TCP", 80),
        rule("R", 1, "[{Field: path-pattern, Values: [/a]}]", "[]"),
    )
    fails(
        text,
        "listener rules are only for application load balancers; listener L belongs to "
        "network load balancer NLB",
        logical_id="R",
    )


@pytest.mark.parametrize(
    ("conditions", "message"),
    [
        ("[]", "Conditions is empty; a rule needs at least one condition"),
        ("[{Field: path_pattern, Values: [/a]}]", "did you mean path-pattern?"),
        ("[{Values: [/a]}]", "required property Conditions[0].Field is missing"),
        ("[{Field: path-pattern}]", "Conditions[0]: the path-pattern condition has no values"),
        (
            "[{Field: path-pattern, PathPatternConfig: {Values: []}}]",
            "the path-pattern condition has no values",
        ),
        (
            "[{Field: path-pattern, Values: [/a, /b]}]",
            "Conditions[0].Values takes one value; write PathPatternConfig for several",
        ),
        (
            "[{Field: path-pattern, Values: [/a], PathPatternConfig: {Values: [/b]}}]",
            "give the values in Values or in PathPatternConfig, not both",
        ),
        (
            "[{Field: http-header, Values: [x]}]",
            "a http-header condition takes its values in HttpHeaderConfig",
        ),
        (
            "[{Field: path-pattern, HostHeaderConfig: {Values: [a.example]}}]",
            "Conditions[0].HostHeaderConfig does not belong to a path-pattern condition",
        ),
        (
            "[{Field: path-pattern, Values: [/a]}, {Field: path-pattern, Values: [/b]}]",
            "Conditions[1]: a rule takes one path-pattern condition, and Conditions[0] is one "
            "already",
        ),
        (
            "[{Field: source-ip, SourceIpConfig: {Values: [10.0.0.0/8]}}, "
            "{Field: source-ip, SourceIpConfig: {Values: [10.1.0.0/16]}}]",
            "a rule takes one source-ip condition",
        ),
        (
            "[{Field: path-pattern, PathPatternConfig: {Values: [/a, /b, /c]}}, "
            "{Field: host-header, HostHeaderConfig: {Values: [a.example, b.example, c.example]}}]",
            "the rule's conditions hold more than 5 values in all",
        ),
        (
            "[{Field: query-string, QueryStringConfig: {Values: [{Key: a, Value: '1'}, "
            "{Key: b, Value: '2'}, {Key: c, Value: '3'}]}}, {Field: query-string, "
            "QueryStringConfig: "
            "{Values: [{Key: d, Value: '4'}, {Key: e, Value: '5'}, {Key: f, Value: '6'}]}}]",
            "more than 5 values in all",
        ),
        (
            "[{Field: path-pattern, PathPatternConfig: {Values: ['/*/*/*', '/??/*']}}]",
            "use more than 5 wildcards (* and ?) in all",
        ),
        ("[{Field: path-pattern, Values: ['/" + "a" * 128 + "']}]", "has more than 128 characters"),
        (
            "[{Field: path-pattern, Values: ['/a b']}]",
            "path-pattern value '/a b' may only hold letters, digits, _ - . $ / ~",
        ),
        (
            "[{Field: host-header, Values: [example]}]",
            "host-header value 'example' needs at least one '.'",
        ),
        (
            "[{Field: host-header, Values: [example.c0m]}]",
            "may only have letters after its last '.'",
        ),
        ("[{Field: host-header, Values: [ex_ample.com]}]", "may only hold letters, digits, - ."),
        (
            "[{Field: http-request-method, HttpRequestMethodConfig: {Values: [get]}}]",
            "http-request-method value 'get' may only hold capital letters, - and _ (no wildcards)",
        ),
        (
            "[{Field: http-request-method, HttpRequestMethodConfig: {Values: ['G*']}}]",
            "(no wildcards)",
        ),
        (
            "[{Field: http-header, HttpHeaderConfig: {HttpHeaderName: 'X Env', Values: [a]}}]",
            "HttpHeaderName 'X Env' is not a header name",
        ),
        (
            "[{Field: http-header, HttpHeaderConfig: {HttpHeaderName: Host, Values: [a]}}]",
            "match the Host header with a host-header condition",
        ),
        (
            "[{Field: http-header, HttpHeaderConfig: {Values: [a]}}]",
            "required property Conditions[0].HttpHeaderConfig.HttpHeaderName is missing",
        ),
        (
            "[{Field: query-string, QueryStringConfig: {Values: [{Key: a}]}}]",
            "required property Conditions[0].QueryStringConfig.Values[0].Value is missing",
        ),
        (
            "[{Field: query-string, QueryStringConfig: {Values: [a]}}]",
            "QueryStringConfig.Values[0] must be a mapping",
        ),
        (
            "[{Field: query-string, QueryStringConfig: {Values: [{Key: 'a b', Value: c}]}}]",
            "QueryStringConfig.Values[0].Key 'a b' may only hold printable ASCII characters "
            "without "
            "blanks",
        ),
        (
            "[{Field: source-ip, SourceIpConfig: {Values: [10.0.0.1/8]}}]",
            "'10.0.0.1/8' is not an IPv4 CIDR block",
        ),
        (
            "[{Field: source-ip, SourceIpConfig: {Values: ['10.*']}}]",
            "(wildcards are not allowed here)",
        ),
        (
            "[{Field: source-ip, SourceIpConfig: {Values: ['2001:db8::/32']}}]",
            "IPv6 source addresses are not supported in the lab",
        ),
        ("[{Field: path-pattern, Values: /a}]", "Conditions[0].Values must be a list"),
        ("[path-pattern]", "Conditions[0] must be a mapping"),
    ],
)
def test_condition_errors(fails, line_with, conditions, message):
    text = alb(rule("R", 1, conditions))
    fails(text, message, logical_id="R", line=line_with(text, "Conditions:"))


def test_condition_error_points_at_its_condition(fails, line_with):
    conditions = """
        - Field: path-pattern
          Values: [/a]
        - Field: host-header
          HostHeaderConfig:
            Values: [nodot]"""
    text = alb(rule("R", 1, conditions))
    fails(
        text,
        "Conditions[1]: host-header value 'nodot' needs at least one '.'",
        logical_id="R",
        line=line_with(text, "Values: [nodot]"),
    )


def test_rule_actions_are_checked_like_listener_actions(fails):
    text = alb(
        rule(
            "R",
            1,
            "[{Field: path-pattern, Values: [/a]}]",
            "[{Type: forward, ForwardConfig: {TargetGroups: [{TargetGroupArn: !Ref Api, "
            "Weight: -1}]}}]",
        )
    )
    fails(
        text,
        "Actions[0].ForwardConfig.TargetGroups[0].Weight must be from 0 to 999",
        logical_id="R",
    )
    wrong = stack(
        ALB,
        target_group("Web", "HTTP", 80),
        target_group("Tcp", "TCP", 80),
        listener("L", "ALB", "HTTP", 80, tg="Web"),
        rule(
            "R",
            1,
            "[{Field: path-pattern, Values: [/a]}]",
            "[{Type: forward, TargetGroupArn: !Ref Tcp}]",
        ),
    )
    fails(wrong, "forwards to HTTP or HTTPS target groups; Tcp is TCP", logical_id="R")


@pytest.mark.parametrize("missing", ["ListenerArn", "Priority", "Conditions", "Actions"])
def test_required_rule_properties(fails, missing):
    text = alb(rule("R", 1, "[{Field: path-pattern, Values: [/a]}]"))
    text = (
        "\n".join(line for line in text.splitlines() if not line.strip().startswith(f"{missing}:"))
        + "\n"
    )
    fails(text, f"required property {missing} is missing", logical_id="R")
