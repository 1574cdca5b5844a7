"""ELBv2 listeners: ports and protocols per LB type, idle timeouts, and their actions."""

from __future__ import annotations

import re

import pytest

from testbed.model.elbv2_types import Action, elbv2_sections
from tests.unit.elbv2_data import ALB, GWLB, NLB, lb_with, listener, stack, target_group


def listeners(model):
    return elbv2_sections(model)["listeners"]


@pytest.mark.parametrize(
    ("protocol", "tg_protocol", "idle"),
    [
        ("TCP", "TCP", (350, None)),
        ("TCP", "TCP_UDP", (350, None)),
        ("UDP", "UDP", (None, 120)),
        ("UDP", "TCP_UDP", (None, 120)),
        ("TCP_UDP", "TCP_UDP", (350, 120)),
    ],
)
def test_nlb_listeners(load, protocol, tg_protocol, idle):
    model = load(
        stack(NLB, target_group("TG", tg_protocol, 80), listener("L", "NLB", protocol, 80))
    )
    found = listeners(model)["L"]
    assert (found.lb_id, found.port, found.protocol) == ("NLB", 80, protocol)
    assert found.default_actions == (Action("forward", None, (("TG", 1),)),)
    assert (found.tcp_idle_timeout_s, found.udp_idle_timeout_s) == idle


def test_tcp_idle_timeout_attribute(load, fails):
    actions = (
        "[{Type: forward, TargetGroupArn: !Ref TG}]\n    ListenerAttributes: "
        "[{Key: tcp.idle_timeout.seconds, Value: %s}]"
    )
    text = stack(
        NLB, target_group("TG", "TCP", 80), listener("L", "NLB", "TCP", 80, actions=actions % "600")
    )
    found = listeners(load(text))["L"]
    assert found.tcp_idle_timeout_s == 600
    assert found.attributes["tcp.idle_timeout.seconds"] == "600"
    fails(
        text.replace("Value: 600", "Value: 59"),
        "attribute tcp.idle_timeout.seconds must be from 60 to 6000, not 59",
        logical_id="L",
    )
    udp = stack(
        NLB, target_group("TG", "UDP", 80), listener("L", "NLB", "UDP", 80, actions=actions % "600")
    )
    fails(udp, "unknown UDP listener attribute 'tcp.idle_timeout.seconds'", logical_id="L")


def test_alb_listener_takes_the_idle_timeout_of_its_lb(load):
    alb = lb_with(
        "ALB",
        "{Subnets: [!Ref PubA, !Ref PubB], LoadBalancerAttributes: "
        "[{Key: idle_timeout.timeout_seconds, Value: 90}]}",
    )
    model = load(stack(alb, target_group("TG", "HTTP", 80), listener("L", "ALB", "HTTP", 80)))
    assert (listeners(model)["L"].tcp_idle_timeout_s, listeners(model)["L"].udp_idle_timeout_s) == (
        90,
        None,
    )


def test_gwlb_listener_has_no_port_or_protocol(load):
    model = load(stack(GWLB, target_group("TG", "GENEVE", 6081), listener("L", "GWLB", None, None)))
    found = listeners(model)["L"]
    assert (found.port, found.protocol, found.tcp_idle_timeout_s, found.udp_idle_timeout_s) == (
        None,
        None,
        350,
        120,
    )


def test_listener_arn(load):
    text = stack(NLB, target_group("TG", "TCP", 80), listener("L", "NLB", "TCP", 80))
    text += "Outputs:\n  Ref: {Value: !Ref L}\n  Arn: {Value: !GetAtt L.ListenerArn}\n"
    model = load(text)
    lb = elbv2_sections(model)["load_balancers"]["NLB"]
    arn = listeners(model)["L"].arn
    assert re.fullmatch(
        re.escape(lb.arn.replace(":loadbalancer/", ":listener/")) + r"/[0-9a-f]{16}", arn
    )
    assert model.outputs["Ref"] == model.outputs["Arn"] == arn


@pytest.mark.parametrize(
    ("lb", "protocol", "port", "message", "at"),
    [
        (
            "NLB",
            "HTTP",
            80,
            "Protocol of a listener of network load balancers must be one of TCP, UDP, "
            "TCP_UDP, TLS, not 'HTTP'",
            "Protocol: HTTP",
        ),
        (
            "ALB",
            "HTTPS",
            443,
            "an HTTPS listener needs a certificate: Certificates is missing",
            "L:",
        ),
        ("ALB", "TCP", 80, "must be one of HTTP, HTTPS, not 'TCP'", "Protocol: TCP"),
        (
            "NLB",
            None,
            80,
            "required property Protocol is missing (network load balancer listeners "
            "need Port and Protocol)",
            "L:",
        ),
        ("ALB", "HTTP", None, "required property Port is missing", "L:"),
        ("NLB", "TCP", 65536, "Port must be from 1 to 65535, not 65536", "Port: 65536"),
        (
            "GWLB",
            "TCP",
            None,
            "a gateway load balancer's listener has no Protocol: it takes every IP packet",
            "Protocol: TCP",
        ),
        ("GWLB", None, 80, "a gateway load balancer's listener has no Port", "Port: 80"),
    ],
)
def test_port_and_protocol_errors(fails, line_with, lb, protocol, port, message, at):
    tg = {"NLB": ("TCP", 80), "ALB": ("HTTP", 80), "GWLB": ("GENEVE", 6081)}[lb]
    text = stack(
        {"NLB": NLB, "ALB": ALB, "GWLB": GWLB}[lb],
        target_group("TG", *tg),
        listener("L", lb, protocol, port),
    )
    fails(text, message, logical_id="L", line=line_with(text, "  L:" if at == "L:" else at))


def test_unsupported_tls_properties(fails):
    text = stack(NLB, target_group("TG", "TCP", 80), listener("L", "NLB", "TCP", 80))
    text += "      SslPolicy: ELBSecurityPolicy-2016-08\n"
    fails(
        text,
        "SslPolicy is only for HTTPS and TLS listeners, not TCP ones",
        logical_id="L",
        line=len(text.splitlines()),
    )


def test_two_listeners_on_one_port(fails, load, line_with):
    text = stack(
        NLB,
        target_group("TG", "TCP_UDP", 80),
        listener("L1", "NLB", "TCP", 80),
        listener("L2", "NLB", "UDP", 80),
    )
    fails(
        text,
        "load balancer NLB already listens on port 80 (TCP, listener L1)",
        "use one TCP_UDP listener for TCP and UDP on one port",
        logical_id="L2",
        line=len(text.splitlines()) - 1,
    )
    same = stack(
        NLB,
        target_group("TG", "TCP", 80),
        listener("L1", "NLB", "TCP", 80),
        listener("L2", "NLB", "TCP", 80),
    )
    fails(same, "already listens on port 80", "give each listener its own port", logical_id="L2")
    apart = stack(
        NLB,
        target_group("TG", "TCP_UDP", 80),
        listener("L1", "NLB", "TCP", 80),
        listener("L2", "NLB", "UDP", 81),
    )
    assert set(listeners(load(apart))) == {"L1", "L2"}


def test_gateway_lb_takes_one_listener(fails):
    text = stack(
        GWLB,
        target_group("TG", "GENEVE", 6081),
        listener("L1", "GWLB", None, None),
        listener("L2", "GWLB", None, None),
    )
    fails(text, "gateway load balancer GWLB already has listener L1; it takes one", logical_id="L2")


# --- Who may forward to which target group -------------------------------------------------


@pytest.mark.parametrize(
    ("lb", "protocol", "port", "tg_protocol", "message"),
    [
        (
            "NLB",
            "TCP",
            80,
            "UDP",
            "NLB is a network load balancer and its TCP listener forwards to "
            "TCP or TCP_UDP target groups; TG is UDP",
        ),
        ("NLB", "UDP", 80, "TCP", "its UDP listener forwards to UDP or TCP_UDP target groups"),
        ("NLB", "TCP_UDP", 80, "TCP", "its TCP_UDP listener forwards to TCP_UDP target groups"),
        ("NLB", "TCP", 80, "HTTP", "TG is HTTP"),
        ("NLB", "TCP", 80, "GENEVE", "TG is GENEVE"),
        (
            "ALB",
            "HTTP",
            80,
            "TCP",
            "ALB is an application load balancer and its HTTP listener "
            "forwards to HTTP or HTTPS target groups; TG is TCP",
        ),
        (
            "GWLB",
            None,
            None,
            "TCP",
            "GWLB is a gateway load balancer and its listener forwards to "
            "GENEVE target groups; TG is TCP",
        ),
    ],
)
def test_target_group_protocol_must_suit_the_listener(
    fails, line_with, lb, protocol, port, tg_protocol, message
):
    tg_port = 6081 if tg_protocol == "GENEVE" else 80
    text = stack(
        {"NLB": NLB, "ALB": ALB, "GWLB": GWLB}[lb],
        target_group("TG", tg_protocol, tg_port),
        listener("L", lb, protocol, port),
    )
    fails(text, message, logical_id="L", line=line_with(text, "DefaultActions:"))


def test_target_group_in_another_vpc(fails):
    other_tg = target_group("TG", "TCP", 80, targets="[{Id: !Ref OtherWeb}]").replace(
        "VpcId: !Ref VPC", "VpcId: !Ref Other"
    )
    text = stack(NLB, other_tg, listener("L", "NLB", "TCP", 80))
    fails(
        text,
        "target group TG is in Other but load balancer NLB is in VPC; they must be in one VPC",
        logical_id="L",
    )


def test_target_group_serves_one_load_balancer(fails):
    second = lb_with("NLB2", "{Type: network, Subnets: [!Ref PubA]}")
    text = stack(
        NLB,
        second,
        target_group("TG", "TCP", 80),
        listener("L1", "NLB", "TCP", 80),
        listener("L2", "NLB2", "TCP", 80),
    )
    fails(
        text,
        "target group TG is already used by load balancer NLB; a target group serves "
        "one load balancer",
        "give each load balancer its own target group",
        logical_id="L2",
    )


# --- Actions -------------------------------------------------------------------------------


def alb_with(actions: str, *extra: str) -> str:
    return stack(
        ALB,
        target_group("TG", "HTTP", 80),
        target_group("TG2", "HTTP", 8080),
        *extra,
        listener("L", "ALB", "HTTP", 80, actions=actions),
    )


def action_of(load, actions: str) -> Action:
    return listeners(load(alb_with(actions)))["L"].default_actions[0]


def test_weighted_forward_with_group_stickiness(load):
    action = action_of(
        load,
        """
      - Type: forward
        ForwardConfig:
          TargetGroups:
            - {TargetGroupArn: !Ref TG, Weight: 80}
            - {TargetGroupArn: !Ref TG2, Weight: 20}
          TargetGroupStickinessConfig: {Enabled: true, DurationSeconds: 300}""",
    )
    assert action == Action("forward", None, (("TG", 80), ("TG2", 20)), 300)


def test_forward_config_details(load):
    action = action_of(
        load,
        "[{Type: forward, Order: 1, TargetGroupArn: !Ref TG, ForwardConfig: "
        "{TargetGroups: [{TargetGroupArn: !Ref TG}], "
        "TargetGroupStickinessConfig: {Enabled: false}}}]",
    )
    assert action == Action("forward", 1, (("TG", 1),), None)


def test_redirect_keeps_templates_and_fills_defaults(load):
    action = action_of(
        load,
        "[{Type: redirect, RedirectConfig: {Protocol: HTTPS, Port: '443', StatusCode: HTTP_301}}]",
    )
    assert action.type == "redirect"
    assert action.target_groups == ()
    assert dict(action.redirect) == {
        "Protocol": "HTTPS",
        "Port": "443",
        "Host": "#{host}",
        "Path": "/#{path}",
        "Query": "#{query}",
        "StatusCode": "HTTP_301",
    }
    moved = action_of(
        load,
        "[{Type: redirect, RedirectConfig: {Path: '/new/#{path}', "
        "Query: 'from=#{host}', StatusCode: HTTP_302}}]",
    )
    assert moved.redirect["Path"] == "/new/#{path}"
    assert moved.redirect["Port"] == "#{port}"


def test_fixed_response(load):
    action = action_of(
        load,
        "[{Type: fixed-response, FixedResponseConfig: {StatusCode: '503', MessageBody: down}}]",
    )
    assert dict(action.fixed_response) == {
        "StatusCode": "503",
        "ContentType": "text/plain",
        "MessageBody": "down",
    }


@pytest.mark.parametrize(
    ("actions", "message"),
    [
        ("[]", "DefaultActions is empty; it needs one action"),
        (
            "[{Type: forward, TargetGroupArn: !Ref TG}, {Type: forward, TargetGroupArn: !Ref TG2}]",
            "DefaultActions holds 2 actions, but a listener or rule has at most one terminal "
            "action",
        ),
        ("[{Type: authenticate-oidc}]", "authentication actions are not supported in the lab"),
        (
            "[{Type: forward, TargetGroupArn: !Ref TG, AuthenticateOidcConfig: {}}]",
            "AuthenticateOidcConfig: authentication actions are not supported in the lab",
        ),
        ("[{Type: foward, TargetGroupArn: !Ref TG}]", "did you mean forward?"),
        (
            "[{Type: forward}]",
            "DefaultActions[0]: a forward action needs TargetGroupArn or "
            "ForwardConfig.TargetGroups",
        ),
        (
            "[{Type: forward, TargetGroupArn: !Ref ALB}]",
            "TargetGroupArn refers to ALB, which is an AWS::ElasticLoadBalancingV2::LoadBalancer",
        ),
        (
            "[{Type: forward, Order: 0, TargetGroupArn: !Ref TG}]",
            "DefaultActions[0].Order must be from 1 to 50000, not 0",
        ),
        (
            "[{Type: forward, TargetGroupArn: !Ref TG, RedirectConfig: {StatusCode: HTTP_301}}]",
            "DefaultActions[0].RedirectConfig does not belong to a forward action",
        ),
        (
            "[{Type: redirect, TargetGroupArn: !Ref TG}]",
            "DefaultActions[0].TargetGroupArn does not belong to a redirect action",
        ),
        (
            "[{Type: forward, TargetGroupArn: !Ref TG, ForwardConfig: {TargetGroups: "
            "[{TargetGroupArn: !Ref TG2}]}}]",
            "with both TargetGroupArn and ForwardConfig, ForwardConfig must hold only that same",
        ),
        (
            "[{Type: forward, ForwardConfig: {TargetGroups: []}}]",
            "ForwardConfig.TargetGroups holds 0 target groups; a forward action takes 1 to 5",
        ),
        (
            "[{Type: forward, ForwardConfig: {TargetGroups: [{TargetGroupArn: !Ref TG, Weight: "
            "1000}]}}]",
            "ForwardConfig.TargetGroups[0].Weight must be from 0 to 999, not 1000",
        ),
        (
            "[{Type: forward, ForwardConfig: {TargetGroups: [{TargetGroupArn: !Ref TG}, "
            "{TargetGroupArn: !Ref TG}]}}]",
            "ForwardConfig.TargetGroups lists TG twice",
        ),
        (
            "[{Type: forward, ForwardConfig: {TargetGroups: [{TargetGroupArn: !Ref TG}], "
            "TargetGroupStickinessConfig: {Enabled: true}}}]",
            "TargetGroupStickinessConfig.DurationSeconds is needed when group stickiness is "
            "enabled",
        ),
        (
            "[{Type: forward, ForwardConfig: {TargetGroups: [{TargetGroupArn: !Ref TG}], "
            "TargetGroupStickinessConfig: {Enabled: true, DurationSeconds: 604801}}}]",
            "DurationSeconds must be from 1 to 604800",
        ),
        (
            "[{Type: forward, ForwardConfig: {TargetGroups: [{Weight: 1}]}}]",
            "required property DefaultActions[0].ForwardConfig.TargetGroups[0].TargetGroupArn",
        ),
        ("[{Type: redirect}]", "DefaultActions[0]: a redirect action needs RedirectConfig"),
        (
            "[{Type: redirect, RedirectConfig: {Host: example.com}}]",
            "required property DefaultActions[0].RedirectConfig.StatusCode is missing",
        ),
        (
            "[{Type: redirect, RedirectConfig: {StatusCode: HTTP_301}}]",
            "DefaultActions[0].RedirectConfig sends the client back to the same URL",
        ),
        (
            "[{Type: redirect, RedirectConfig: {Host: x.example, StatusCode: HTTP_307}}]",
            "StatusCode must be one of HTTP_301, HTTP_302, not 'HTTP_307'",
        ),
        (
            "[{Type: redirect, RedirectConfig: {Host: '#{hostname}', StatusCode: HTTP_301}}]",
            "RedirectConfig.Host: unknown placeholder #{hostname}",
        ),
        (
            "[{Type: redirect, RedirectConfig: {Port: eighty, StatusCode: HTTP_301}}]",
            "RedirectConfig.Port must be a port number or #{port}",
        ),
        (
            "[{Type: redirect, RedirectConfig: {Protocol: FTP, StatusCode: HTTP_301}}]",
            "RedirectConfig.Protocol must be one of HTTP, HTTPS, #{protocol}",
        ),
        (
            "[{Type: redirect, RedirectConfig: {Path: new, StatusCode: HTTP_301}}]",
            "RedirectConfig.Path must start with /",
        ),
        (
            "[{Type: redirect, RedirectConfig: {Path: /x, Query: '?a=1', StatusCode: HTTP_301}}]",
            "RedirectConfig.Query is written without the leading ?",
        ),
        (
            "[{Type: fixed-response, FixedResponseConfig: {StatusCode: '302'}}]",
            "FixedResponseConfig.StatusCode must be a 2XX, 4XX or 5XX code, not '302'",
        ),
        (
            "[{Type: fixed-response, FixedResponseConfig: {StatusCode: '200', ContentType: "
            "text/xml}}]",
            "ContentType must be one of text/plain, text/css, text/html",
        ),
        (
            "[{Type: fixed-response, FixedResponseConfig: {StatusCode: '200', MessageBody: '"
            + "x" * 1025
            + "'}}]",
            "MessageBody has more than 1024 characters",
        ),
    ],
)
def test_action_errors(fails, actions, message):
    text = alb_with(actions)
    fails(text, message, logical_id="L", line=len(text.splitlines()))


def test_more_than_five_weighted_groups(fails):
    groups = [target_group(f"G{i}", "HTTP", 80 + i) for i in range(6)]
    refs = ", ".join(f"{{TargetGroupArn: !Ref G{i}}}" for i in range(6))
    text = stack(
        ALB,
        *groups,
        listener(
            "L",
            "ALB",
            "HTTP",
            80,
            actions=(f"[{{Type: forward, ForwardConfig: {{TargetGroups: [{refs}]}}}}]"),
        ),
    )
    fails(text, "holds 6 target groups; a forward action takes 1 to 5", logical_id="L")


@pytest.mark.parametrize(
    ("actions", "message"),
    [
        (
            "[{Type: redirect, RedirectConfig: {Host: x.example, StatusCode: HTTP_301}}]",
            "DefaultActions[0]: redirect actions are only for application load balancers; NLB is a "
            "network load balancer",
        ),
        (
            "[{Type: fixed-response, FixedResponseConfig: {StatusCode: '200'}}]",
            "fixed-response actions are only for application load balancers",
        ),
        (
            "[{Type: forward, ForwardConfig: {TargetGroups: [{TargetGroupArn: !Ref TG}, "
            "{TargetGroupArn: !Ref TG2}]}}]",
            "a network load balancer forwards to exactly one target group, without weights or "
            "group "
            "stickiness",
        ),
        (
            "[{Type: forward, ForwardConfig: {TargetGroups: [{TargetGroupArn: !Ref TG}], "
            "TargetGroupStickinessConfig: {Enabled: true, DurationSeconds: 60}}}]",
            "exactly one target group, without weights or group stickiness",
        ),
    ],
)
def test_nlb_actions(fails, actions, message):
    text = stack(
        NLB,
        target_group("TG", "TCP", 80),
        target_group("TG2", "TCP", 81),
        listener("L", "NLB", "TCP", 80, actions=actions),
    )
    fails(text, message, logical_id="L", line=len(text.splitlines()))
