"""ELBv2 target groups: protocols, targets, health checks and attributes with AWS's defaults."""

from __future__ import annotations

import re
from ipaddress import IPv4Address

import pytest

from testbed.model.elb_defaults import DEFAULTS
from testbed.model.elbv2_types import HealthCheck, Target, elbv2_sections
from tests.unit.elbv2_data import NLB, listener, stack, target_group


def tgs(model):
    return elbv2_sections(model)["target_groups"]


def test_tcp_target_group_with_instance_targets(load):
    tg = tgs(load(stack(target_group("TG", "TCP", 80))))["TG"]
    assert (tg.protocol, tg.port, tg.target_type, tg.vpc_id, tg.lb_type) == (
        "TCP",
        80,
        "instance",
        "VPC",
        "network",
    )
    assert tg.targets == (
        Target("i-WebA", IPv4Address("10.0.2.4"), 80, "us-east-1a", "WebA"),
        Target("i-WebB", IPv4Address("10.0.3.4"), 80, "us-east-1b", "WebB"),
    )
    assert tg.health_check == HealthCheck(True, "TCP", None, "/", 30, 10, 5, 2, "200-399")
    assert (
        tg.deregistration_delay_s,
        tg.preserve_client_ip,
        tg.stickiness_enabled,
        tg.stickiness_type,
        tg.cross_zone,
        tg.algorithm,
    ) == (300, True, False, None, "use_load_balancer_configuration", None)
    assert set(tg.attributes) == set(DEFAULTS["network"].tg_attributes)
    assert tg.attributes["preserve_client_ip.enabled"] == "true"
    assert tg.name == "default-TG"


@pytest.mark.parametrize(
    ("protocol", "port", "check"),
    [
        ("HTTP", 80, HealthCheck(True, "HTTP", None, "/", 30, 5, 5, 2, "200")),
        ("UDP", 53, HealthCheck(True, "TCP", None, "/", 30, 10, 5, 2, "200-399")),
        ("TCP_UDP", 53, HealthCheck(True, "TCP", None, "/", 30, 10, 5, 2, "200-399")),
        ("GENEVE", 6081, HealthCheck(True, "TCP", 80, "/", 10, 5, 5, 2, "200-399")),
    ],
)
def test_health_check_defaults_per_type(load, protocol, port, check):
    assert tgs(load(stack(target_group("TG", protocol, port))))["TG"].health_check == check


def test_nlb_http_health_check_times_out_after_6_seconds(load):
    tg = tgs(load(stack(target_group("TG", "TCP", 80, "HealthCheckProtocol: HTTP"))))["TG"]
    assert (tg.health_check.protocol, tg.health_check.timeout_s) == ("HTTP", 6)


def test_health_check_settings(load):
    extra = """\
        HealthCheckProtocol: HTTP
        HealthCheckPort: "8080"
        HealthCheckPath: /health
        HealthCheckIntervalSeconds: 5
        HealthCheckTimeoutSeconds: 2
        HealthyThresholdCount: 2
        UnhealthyThresholdCount: 10
        Matcher: {HttpCode: "200,302"}
    """
    check = tgs(load(stack(target_group("TG", "HTTP", 80, extra))))["TG"].health_check
    assert check == HealthCheck(True, "HTTP", 8080, "/health", 5, 2, 2, 10, "200,302")


@pytest.mark.parametrize(
    ("port", "expected"), [("traffic-port", None), ("9000", 9000), (9000, 9000)]
)
def test_health_check_port_forms(load, port, expected):
    text = stack(target_group("TG", "UDP", 9000, f"HealthCheckPort: {port}"))
    assert tgs(load(text))["TG"].health_check.port == expected


@pytest.mark.parametrize(
    ("protocol", "extra", "message"),
    [
        (
            "TCP",
            "HealthCheckIntervalSeconds: 4",
            "HealthCheckIntervalSeconds must be from 5 to 300",
        ),
        (
            "TCP",
            "HealthCheckIntervalSeconds: 301",
            "HealthCheckIntervalSeconds must be from 5 to 300, not 301",
        ),
        ("TCP", "HealthCheckTimeoutSeconds: 1", "HealthCheckTimeoutSeconds must be from 2 to 120"),
        ("TCP", "HealthCheckTimeoutSeconds: 121", "from 2 to 120"),
        (
            "TCP",
            "HealthCheckTimeoutSeconds: 30",
            "HealthCheckTimeoutSeconds 30 must be smaller than HealthCheckIntervalSeconds 30",
        ),
        ("TCP", "HealthyThresholdCount: 1", "HealthyThresholdCount must be from 2 to 10, not 1"),
        ("TCP", "UnhealthyThresholdCount: 11", "UnhealthyThresholdCount must be from 2 to 10"),
        (
            "TCP",
            "HealthCheckEnabled: false",
            "health checks of instance and ip target groups are always enabled",
        ),
        ("TCP", "HealthCheckProtocol: UDP", "HealthCheckProtocol must be one of TCP, HTTP, HTTPS"),
        (
            "HTTP",
            "HealthCheckProtocol: TCP",
            "HealthCheckProtocol must be one of HTTP, HTTPS, not 'TCP'",
        ),
        ("TCP", "HealthCheckPort: '0'", "HealthCheckPort must be from 1 to 65535, not 0"),
        ("TCP", "HealthCheckPort: any", "HealthCheckPort must be traffic-port or a port number"),
        (
            "TCP",
            "HealthCheckPath: /health",
            "HealthCheckPath is only for HTTP and HTTPS health checks, not TCP ones",
        ),
        ("HTTP", "HealthCheckPath: health", "HealthCheckPath must start with /"),
        ("TCP", "Matcher: {HttpCode: '200'}", "Matcher is only for HTTP and HTTPS health checks"),
        ("HTTP", "Matcher: {HttpCode: 2xx}", "Matcher.HttpCode '2xx' is not a list of HTTP codes"),
        ("HTTP", "Matcher: {HttpCode: '200-'}", "is not a list of HTTP codes"),
        (
            "HTTP",
            "Matcher: {HttpCode: '500'}",
            "Matcher.HttpCode 500 is outside 200-499, the codes "
            "health checks of application target groups accept",
        ),
        ("HTTP", "Matcher: {HttpCode: '299-200'}", "range 299-200 runs backwards"),
        (
            "HTTP",
            "Matcher: {GrpcCode: '12'}",
            "Matcher.GrpcCode: gRPC health checks are not supported in the lab",
        ),
        ("HTTP", "Matcher: {}", "Matcher needs HttpCode"),
        ("HTTP", "Matcher: '200'", "Matcher must be a mapping"),
    ],
)
def test_health_check_errors(fails, line_with, protocol, extra, message):
    port = 80 if protocol != "GENEVE" else 6081
    text = stack(target_group("TG", protocol, port, extra))
    fails(text, message, logical_id="TG", line=line_with(text, extra))


def test_default_timeout_must_stay_below_the_interval(fails, line_with):
    text = stack(target_group("TG", "TCP", 80, "HealthCheckIntervalSeconds: 5"))
    fails(
        text,
        "HealthCheckTimeoutSeconds 10 (the default for TCP checks of network target "
        "groups) must be smaller than HealthCheckIntervalSeconds 5",
        "set HealthCheckTimeoutSeconds below 5",
        logical_id="TG",
        line=line_with(text, "HealthCheckIntervalSeconds: 5"),
    )


def test_nlb_matcher_accepts_5xx(load):
    text = stack(
        target_group("TG", "TCP", 80, "HealthCheckProtocol: HTTP\nMatcher: {HttpCode: '200-599'}")
    )
    assert tgs(load(text))["TG"].health_check.matcher == "200-599"


# --- Protocols and ports -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "port", "extra", "message", "at"),
    [
        (
            "SCTP",
            80,
            "",
            "Protocol must be one of TCP, UDP, TCP_UDP, TLS, HTTP, HTTPS, GENEVE, not 'SCTP'",
            "Protocol:",
        ),
        ("tcp", 80, "", "did you mean TCP?", "Protocol:"),
        ("GENEVE", 6080, "", "a GENEVE target group must use port 6081, not 6080", "Port:"),
        ("TCP", 0, "", "Port must be from 1 to 65535, not 0", "Port:"),
        (
            "TCP",
            80,
            "ProtocolVersion: HTTP1",
            "ProtocolVersion is only for HTTP and HTTPS target groups",
            "ProtocolVersion",
        ),
        (
            "HTTP",
            80,
            "ProtocolVersion: GRPC",
            "ProtocolVersion GRPC is not supported in the lab",
            "ProtocolVersion",
        ),
        (
            "HTTP",
            80,
            "ProtocolVersion: HTTP3",
            "ProtocolVersion must be one of HTTP1",
            "ProtocolVersion",
        ),
        ("UDP", 80, "TargetType: alb", "TargetType alb must use Protocol TCP, not UDP", "Protocol"),
        ("TCP", 80, "TargetType: host", "TargetType must be one of instance, ip", "TargetType"),
        (
            "TCP",
            80,
            "IpAddressType: ipv6",
            "IPv6 target groups are not supported in the lab",
            "IpAddressType",
        ),
        ("TCP", 80, "Name: bad_name", "Name 'bad_name' is not a valid target group name", "Name:"),
    ],
)
def test_protocol_and_property_errors(fails, line_with, protocol, port, extra, message, at):
    text = stack(target_group("TG", protocol, port, extra))
    fails(text, message, logical_id="TG", line=line_with(text, at))


@pytest.mark.parametrize("missing", ["Protocol", "Port", "VpcId"])
def test_protocol_port_and_vpc_are_required(fails, missing):
    text = stack(target_group("TG", "TCP", 80))
    text = (
        "\n".join(line for line in text.splitlines() if not line.strip().startswith(f"{missing}:"))
        + "\n"
    )
    fails(
        text,
        f"required property {missing} is missing (instance and ip target groups need "
        "Protocol, Port and VpcId)",
        logical_id="TG",
        line=len(stack().splitlines()) + 1,
    )


def test_target_group_names_are_unique(fails):
    text = stack(
        target_group("One", "TCP", 80, "Name: web"), target_group("Two", "TCP", 81, "Name: web")
    )
    fails(text, "target group name 'web' is already used by One", logical_id="Two")


# --- Targets -------------------------------------------------------------------------------


def test_ip_targets(load):
    targets = (
        "[{Id: 10.0.2.4}, {Id: 10.0.3.200, Port: 8080}, "
        "{Id: 10.0.200.1, AvailabilityZone: us-east-1b}]"
    )
    tg = tgs(load(stack(target_group("TG", "TCP", 80, "TargetType: ip", targets))))["TG"]
    assert tg.targets == (
        Target("10.0.2.4", IPv4Address("10.0.2.4"), 80, "us-east-1a", "WebA"),
        Target("10.0.3.200", IPv4Address("10.0.3.200"), 8080, "us-east-1b", None),
        Target("10.0.200.1", IPv4Address("10.0.200.1"), 80, "us-east-1b", None),
    )


def test_instance_target_port_override_and_same_instance_twice(load):
    targets = "[{Id: !Ref WebA}, {Id: !Ref WebA, Port: 8080}]"
    tg = tgs(load(stack(target_group("TG", "TCP", 80, targets=targets))))["TG"]
    assert [(t.id, t.port) for t in tg.targets] == [("i-WebA", 80), ("i-WebA", 8080)]


def test_no_targets_is_fine(load):
    text = stack(target_group("TG", "TCP", 80, targets="[]"))
    assert tgs(load(text))["TG"].targets == ()


@pytest.mark.parametrize(
    ("target_type", "targets", "message"),
    [
        (
            "instance",
            "[{Id: !Ref OtherWeb}]",
            "Targets[0]: instance OtherWeb is in Other, not in the target group's VPC VPC",
        ),
        (
            "instance",
            "[{Id: !Ref PrivA}]",
            "Targets[0].Id refers to PrivA, which is an AWS::EC2::Subnet, not an "
            "AWS::EC2::Instance",
        ),
        ("instance", "[{Id: i-Nope}]", "Targets[0].Id 'i-Nope' is not the id of a resource"),
        (
            "instance",
            "[{Id: !Ref WebA, AvailabilityZone: us-east-1a}]",
            "Targets[0].AvailabilityZone is only for ip targets",
        ),
        (
            "instance",
            "[{Id: !Ref WebA}, {Id: !Ref WebA}]",
            "Targets[1]: target i-WebA port 80 is already Targets[0]",
        ),
        ("instance", "[{Id: !Ref WebA, Port: 70000}]", "Targets[0].Port must be from 1 to 65535"),
        ("instance", "[{Port: 80}]", "required property Targets[0].Id is missing"),
        ("instance", "[{Id: !Ref WebA, Weight: 2}]", "unknown property Targets[0].Weight"),
        ("instance", "[web]", "Targets[0] must be a mapping"),
        (
            "ip",
            "[{Id: 10.1.0.5}]",
            "Targets[0]: target address 10.1.0.5 is not inside VPC's 10.0.0.0/16",
        ),
        ("ip", "[{Id: 10.0.2.256}]", "Targets[0].Id '10.0.2.256' is not an IPv4 address"),
        (
            "ip",
            "[{Id: 10.0.200.1}]",
            "Targets[0]: no subnet of VPC holds 10.0.200.1, so its availability zone is unknown",
        ),
        (
            "ip",
            "[{Id: 10.0.2.9, AvailabilityZone: us-east-1b}]",
            "Targets[0].AvailabilityZone us-east-1b differs from the AZ of subnet PrivA "
            "(us-east-1a)",
        ),
        (
            "ip",
            "[{Id: 10.0.200.1, AvailabilityZone: eu-west-1a}]",
            "Targets[0].AvailabilityZone 'eu-west-1a' is not an availability zone of us-east-1",
        ),
        ("ip", "[{Id: 10.0.2.9}, {Id: ' 10.0.2.9'}]", "target 10.0.2.9 port 80 is already"),
    ],
)
def test_target_errors(fails, line_with, target_type, targets, message):
    text = stack(target_group("TG", "TCP", 80, f"TargetType: {target_type}", targets))
    fails(text, message, logical_id="TG", line=line_with(text, "Targets:"))


def test_geneve_targets_use_port_6081(fails, load):
    tg = tgs(load(stack(target_group("TG", "GENEVE", 6081))))["TG"]
    assert {t.port for t in tg.targets} == {6081}
    text = stack(target_group("TG", "GENEVE", 6081, targets="[{Id: !Ref WebA, Port: 80}]"))
    fails(text, "Targets[0].Port must be 6081", logical_id="TG")


# --- Attributes ----------------------------------------------------------------------------


def attrs(*pairs: tuple[str, str]) -> str:
    return (
        "TargetGroupAttributes: ["
        + ", ".join(f"{{Key: {k}, Value: '{v}'}}" for k, v in pairs)
        + "]"
    )


@pytest.mark.parametrize(
    ("target_type", "protocol", "preserve"),
    [
        ("instance", "TCP", True),
        ("instance", "UDP", True),
        ("instance", "TCP_UDP", True),
        ("ip", "TCP", False),
        ("ip", "UDP", True),
        ("ip", "TCP_UDP", True),
    ],
)
def test_preserve_client_ip_defaults(load, target_type, protocol, preserve):
    targets = "[{Id: 10.0.2.4}]" if target_type == "ip" else "[{Id: !Ref WebA}]"
    text = stack(target_group("TG", protocol, 80, f"TargetType: {target_type}", targets))
    tg = tgs(load(text))["TG"]
    assert tg.preserve_client_ip is preserve
    assert tg.attributes["preserve_client_ip.enabled"] == str(preserve).lower()


def test_preserve_client_ip_can_be_turned_on_for_ip_targets(load):
    text = stack(
        target_group(
            "TG",
            "TCP",
            80,
            "TargetType: ip\n" + attrs(("preserve_client_ip.enabled", "true")),
            "[{Id: 10.0.2.4}]",
        )
    )
    assert tgs(load(text))["TG"].preserve_client_ip is True


def test_preserve_client_ip_of_alb_and_gwlb_groups(load):
    model = load(stack(target_group("Web", "HTTP", 80), target_group("App", "GENEVE", 6081)))
    assert tgs(model)["Web"].preserve_client_ip is False  # ALB proxies
    assert tgs(model)["App"].preserve_client_ip is True  # GWLB passes packets unchanged


def test_alb_group_attributes(load):
    text = stack(
        target_group(
            "TG",
            "HTTP",
            80,
            attrs(
                ("stickiness.enabled", "true"),
                ("stickiness.lb_cookie.duration_seconds", "3600"),
                ("load_balancing.algorithm.type", "least_outstanding_requests"),
                ("deregistration_delay.timeout_seconds", "0"),
                ("load_balancing.cross_zone.enabled", "false"),
            ),
        )
    )
    tg = tgs(load(text))["TG"]
    assert (tg.stickiness_enabled, tg.stickiness_type, tg.stickiness_duration_s) == (
        True,
        "lb_cookie",
        3600,
    )
    assert (tg.algorithm, tg.deregistration_delay_s, tg.cross_zone) == (
        "least_outstanding_requests",
        0,
        "false",
    )
    assert tg.attributes["slow_start.duration_seconds"] == "0"
    assert set(tg.attributes) == set(DEFAULTS["application"].tg_attributes)


def test_app_cookie_stickiness(load):
    text = stack(
        target_group(
            "TG",
            "HTTP",
            80,
            attrs(
                ("stickiness.enabled", "true"),
                ("stickiness.type", "app_cookie"),
                ("stickiness.app_cookie.cookie_name", "SESSION"),
            ),
        )
    )
    tg = tgs(load(text))["TG"]
    assert (tg.stickiness_type, tg.stickiness_duration_s) == ("app_cookie", 86400)


def test_nlb_source_ip_stickiness(load):
    text = stack(target_group("TG", "UDP", 53, attrs(("stickiness.enabled", "true"))))
    tg = tgs(load(text))["TG"]
    assert (tg.stickiness_enabled, tg.stickiness_type, tg.stickiness_duration_s) == (
        True,
        "source_ip",
        None,
    )


@pytest.mark.parametrize("protocol", ["TCP", "TLS"])
def test_nlb_proxy_protocol_v2_on_tcp_and_tls_groups(load, protocol):
    text = stack(target_group("TG", protocol, 443, attrs(("proxy_protocol_v2.enabled", "true"))))
    assert tgs(load(text))["TG"].attributes["proxy_protocol_v2.enabled"] == "true"


def test_gwlb_group_attributes(load):
    text = stack(
        target_group(
            "TG",
            "GENEVE",
            6081,
            attrs(
                ("stickiness.enabled", "true"),
                ("stickiness.type", "source_ip_dest_ip"),
                ("target_failover.on_deregistration", "rebalance"),
                ("target_failover.on_unhealthy", "rebalance"),
            ),
        )
    )
    tg = tgs(load(text))["TG"]
    assert (tg.stickiness_type, tg.target_failover, tg.cross_zone) == (
        "source_ip_dest_ip",
        "rebalance",
        "use_load_balancer_configuration",
    )
    default = tgs(load(stack(target_group("TG", "GENEVE", 6081))))["TG"]
    assert (default.stickiness_type, default.target_failover) == (None, "no_rebalance")
    assert default.attributes["stickiness.type"] == "source_ip_dest_ip_proto"


@pytest.mark.parametrize(
    ("protocol", "pairs", "message"),
    [
        (
            "TCP",
            [("deregistration_delay.timeout_seconds", "3601")],
            "attribute deregistration_delay.timeout_seconds must be from 0 to 3600, not 3601",
        ),
        (
            "TCP",
            [("stickiness.type", "lb_cookie")],
            "stickiness.type of a TCP target group must be one of source_ip, not 'lb_cookie'",
        ),
        ("HTTP", [("stickiness.type", "source_ip")], "must be one of lb_cookie, app_cookie"),
        (
            "GENEVE",
            [("stickiness.type", "five_tuple")],
            "must be one of source_ip_dest_ip_proto, source_ip_dest_ip",
        ),
        (
            "UDP",
            [("preserve_client_ip.enabled", "false")],
            "client IP preservation cannot be turned off for UDP target groups",
        ),
        ("TCP_UDP", [("preserve_client_ip.enabled", "false")], "for TCP_UDP target groups"),
        (
            "UDP",
            [("proxy_protocol_v2.enabled", "true")],
            "proxy protocol v2 is for TCP and TLS target groups, not UDP ones",
        ),
        ("TCP_UDP", [("proxy_protocol_v2.enabled", "true")], "not TCP_UDP ones"),
        (
            "TCP",
            [("target_health_state.unhealthy.draining_interval_seconds", "30")],
            "a draining interval needs "
            "target_health_state.unhealthy.connection_termination.enabled "
            "false",
        ),
        (
            "HTTP",
            [("stickiness.enabled", "true"), ("stickiness.type", "app_cookie")],
            "app_cookie stickiness needs stickiness.app_cookie.cookie_name",
        ),
        (
            "HTTP",
            [("stickiness.app_cookie.cookie_name", "AWSALBAPP-1")],
            "cookie name 'AWSALBAPP-1' is reserved",
        ),
        (
            "HTTP",
            [("stickiness.app_cookie.cookie_name", "my cookie")],
            "has characters a cookie name cannot have",
        ),
        ("HTTP", [("stickiness.lb_cookie.duration_seconds", "604801")], "from 1 to 604800"),
        ("HTTP", [("stickiness.lb_cookie.duration_seconds", "0")], "from 1 to 604800, not 0"),
        (
            "HTTP",
            [("load_balancing.algorithm.type", "random")],
            "must be one of round_robin, least_outstanding_requests, weighted_random",
        ),
        (
            "HTTP",
            [("load_balancing.algorithm.anomaly_mitigation", "on")],
            "anomaly mitigation needs load_balancing.algorithm.type weighted_random",
        ),
        (
            "HTTP",
            [("slow_start.duration_seconds", "10")],
            "slow_start.duration_seconds must be 0 (off) or from 30 to 900, not 10",
        ),
        (
            "HTTP",
            [("load_balancing.cross_zone.enabled", "maybe")],
            "must be one of true, false, use_load_balancer_configuration",
        ),
        (
            "GENEVE",
            [("target_failover.on_unhealthy", "rebalance")],
            "target_failover.on_deregistration (no_rebalance) and target_failover.on_unhealthy "
            "(rebalance) must be the same",
        ),
        (
            "GENEVE",
            [("load_balancing.cross_zone.enabled", "true")],
            "attribute load_balancing.cross_zone.enabled does not apply to GENEVE target groups",
        ),
        (
            "TCP",
            [("load_balancing.algorithm.type", "round_robin")],
            "does not apply to TCP target groups",
        ),
        ("HTTP", [("preserve_client_ip.enabled", "true")], "network (NLB)"),
        (
            "TCP",
            [("connection_termination.enabled", "true")],
            "did you mean deregistration_delay.connection_termination.enabled?",
        ),
    ],
)
def test_attribute_errors(fails, line_with, protocol, pairs, message):
    port = 6081 if protocol == "GENEVE" else 80
    text = stack(target_group("TG", protocol, port, attrs(*pairs)))
    fails(text, message, logical_id="TG", line=line_with(text, "TargetGroupAttributes"))


def test_attribute_error_points_at_its_own_line(fails, line_with):
    text = stack(
        target_group(
            "TG",
            "TCP",
            80,
            """\
        TargetGroupAttributes:
          - {Key: stickiness.enabled, Value: 'true'}
          - {Key: deregistration_delay.timeout_seconds, Value: '-1'}
    """,
        )
    )
    fails(
        text,
        "must be a whole number from 0 to 3600, not '-1'",
        logical_id="TG",
        line=line_with(text, "Value: '-1'"),
    )


# --- Attributes for GetAtt -----------------------------------------------------------------


def test_get_att_and_ref(load):
    text = stack(NLB, target_group("TG", "TCP", 80), listener("L", "NLB", "TCP", 80))
    text += (
        "Outputs:\n  Arn: {Value: !Ref TG}\n  Name: {Value: !GetAtt TG.TargetGroupName}\n"
        "  Full: {Value: !GetAtt TG.TargetGroupFullName}\n"
        "  Lbs: {Value: !GetAtt TG.LoadBalancerArns}\n"
    )
    model = load(text)
    tg, lb = tgs(model)["TG"], elbv2_sections(model)["load_balancers"]["NLB"]
    assert re.fullmatch(
        r"arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/"
        r"default-TG/[0-9a-f]{16}",
        tg.arn,
    )
    assert model.outputs["Arn"] == tg.arn
    assert model.outputs["Name"] == "default-TG"
    assert model.outputs["Full"] == tg.arn.split(":")[-1]
    assert model.outputs["Lbs"] == [lb.arn]


def test_load_balancer_arns_read_in_a_resource_waits_for_listeners(load):
    # The client reads LoadBalancerArns; it is created after the listener that uses TG.
    text = stack(
        NLB,
        target_group("TG", "TCP", 80),
        "Reader:\n  Type: Lab::Internet::Client\n  Properties: {UserData: "
        "!Join [' ', !GetAtt TG.LoadBalancerArns]}\n",
        listener("L", "NLB", "TCP", 80),
    )
    model = load(text)
    order = model.creation_order
    assert order.index("L") < order.index("Reader")
    assert (
        model.internet_clients["Reader"].user_data
        == elbv2_sections(model)["load_balancers"]["NLB"].arn
    )
