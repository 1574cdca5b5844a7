"""An ALB stack with one listener rule per condition type and action, for unit and lab tests.

Each rule forwards to its own target group of one instance, so the instance that answers
names the rule that matched. RULE_CASES is the table the tests go through: one row per
request, with what AWS would do with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from testbed.experiments.stacks import INSTANCE_GROUP, LB_GROUP, ref, two_az_vpc

LB = "RulesALB"
LISTENER = "Http"
# target group -> its instances; WebTargets is the listener's default.
GROUPS = {
    "WebTargets": ["WebA1", "WebB1"],
    "TgPathQ": ["PathA1"],
    "TgPath": ["PathB1"],
    "TgHost": ["HostA1"],
    "TgHeader": ["HeaderB1"],
    "TgMethod": ["MethodA1"],
    "TgQuery": ["QueryB1"],
    "TgSource": ["SourceA1"],
    "TgW90": ["WebA1"],
    "TgW10": ["WebB1"],  # weighted forward, 90/10
    "TgLor": ["LorA1", "LorB1"],  # least outstanding requests; health; draining
    "TgStrict": ["SourceA1"],
    "TgLenient": ["SourceA1"],  # matchers 200 and 200,404
    "TgFailOpen": ["LorA1", "LorB1"],  # matcher 201: every target always unhealthy
    "TgZonal": ["WebA1", "WebB1"],  # cross-zone off
}
INSTANCES = sorted({i for members in GROUPS.values() for i in members})
DRAIN_S = 8
CLIENT2_IP = "198.51.100.11"


def _path(*values: str) -> dict:
    return {"Field": "path-pattern", "PathPatternConfig": {"Values": list(values)}}


def _forward(tg: str) -> list[dict]:
    return [{"Type": "forward", "TargetGroupArn": {"Ref": tg}}]


# (name, priority, conditions, actions); lowest priority number first, as AWS tries them.
RULES = [
    ("PathWildcard", 5, [_path("/api/v?/*")], _forward("TgPathQ")),
    ("PathPrefix", 10, [_path("/api/*")], _forward("TgPath")),
    (
        "HostRule",
        15,
        [{"Field": "host-header", "HostHeaderConfig": {"Values": ["*.example.com"]}}],
        _forward("TgHost"),
    ),
    (
        "HeaderRule",
        20,
        [
            {
                "Field": "http-header",
                "HttpHeaderConfig": {"HttpHeaderName": "X-Env", "Values": ["blue", "gr?en"]},
            }
        ],
        _forward("TgHeader"),
    ),
    (
        "MethodRule",
        25,
        [
            {
                "Field": "http-request-method",
                "HttpRequestMethodConfig": {"Values": ["PUT", "DELETE"]},
            }
        ],
        _forward("TgMethod"),
    ),
    (
        "QueryRule",
        30,
        [
            {
                "Field": "query-string",
                "QueryStringConfig": {"Values": [{"Key": "v", "Value": "2*"}, {"Value": "beta"}]},
            }
        ],
        _forward("TgQuery"),
    ),
    (
        "SourceRule",
        35,
        [
            _path("/src/*"),
            {"Field": "source-ip", "SourceIpConfig": {"Values": [f"{CLIENT2_IP}/32"]}},
        ],
        _forward("TgSource"),
    ),
    (
        "BothRule",
        40,
        [
            _path("/both/*"),
            {"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["POST"]}},
        ],
        _forward("TgMethod"),
    ),
    (
        "RedirectRule",
        45,
        [_path("/moved/*")],
        [
            {
                "Type": "redirect",
                "RedirectConfig": {
                    "Host": "new.example.com",
                    "Port": "8080",
                    "Path": "/new/#{path}",
                    "Query": "from=#{host}&#{query}",
                    "StatusCode": "HTTP_302",
                },
            }
        ],
    ),
    (
        "FixedRule",
        50,
        [_path("/teapot")],
        [
            {
                "Type": "fixed-response",
                "FixedResponseConfig": {
                    "StatusCode": "418",
                    "ContentType": "application/json",
                    "MessageBody": '{"tea": "pot"}',
                },
            }
        ],
    ),
    (
        "WeightedRule",
        55,
        [_path("/weighted/*")],
        [
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [
                        {"TargetGroupArn": {"Ref": "TgW90"}, "Weight": 90},
                        {"TargetGroupArn": {"Ref": "TgW10"}, "Weight": 10},
                    ]
                },
            }
        ],
    ),
    (
        "GroupStickyRule",
        60,
        [_path("/group-sticky/*")],
        [
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [
                        {"TargetGroupArn": {"Ref": "TgW90"}, "Weight": 50},
                        {"TargetGroupArn": {"Ref": "TgW10"}, "Weight": 50},
                    ],
                    "TargetGroupStickinessConfig": {"Enabled": True, "DurationSeconds": 300},
                },
            }
        ],
    ),
    ("LorRule", 65, [_path("/lor/*")], _forward("TgLor")),
    ("StrictRule", 70, [_path("/strict/*")], _forward("TgStrict")),
    ("LenientRule", 75, [_path("/lenient/*")], _forward("TgLenient")),
    ("FailOpenRule", 80, [_path("/failopen/*")], _forward("TgFailOpen")),
    ("ZonalRule", 85, [_path("/zonal/*")], _forward("TgZonal")),
]


@dataclass(frozen=True)
class Case:
    """One request through the ALB and what AWS answers."""

    name: str
    path: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    client: str = "Client1"
    group: str | None = None  # the target group whose instance answers
    status: int = 200
    location: str | None = None  # redirects
    body: str | None = None  # fixed responses


RULE_CASES = [
    Case("path ? wildcard", "/api/v1/users", group="TgPathQ"),
    Case("path ? is one character", "/api/v10/users", group="TgPath"),
    Case("path prefix", "/api/x", group="TgPath"),
    Case("path is case-sensitive", "/API/x", group="WebTargets"),
    Case("path ignores the query", "/x?p=/api/y", group="WebTargets"),
    Case("host wildcard", "/", headers={"Host": "www.example.com"}, group="TgHost"),
    Case(
        "host case-insensitive, port ignored",
        "/",
        headers={"Host": "WWW.Example.COM:80"},
        group="TgHost",
    ),
    Case("host * needs a label", "/", headers={"Host": "example.com"}, group="WebTargets"),
    Case("header value", "/", headers={"X-Env": "blue"}, group="TgHeader"),
    Case(
        "header name and value case-insensitive", "/", headers={"x-env": "BLUE"}, group="TgHeader"
    ),
    Case("header ? wildcard", "/", headers={"X-Env": "green"}, group="TgHeader"),
    Case("header no match", "/", headers={"X-Env": "greeen"}, group="WebTargets"),
    Case("method", "/", method="PUT", group="TgMethod"),
    Case("method is case-sensitive", "/", method="put", group="WebTargets"),
    Case("query key=value*", "/?a=1&v=23", group="TgQuery"),
    Case("query case-insensitive", "/?V=2", group="TgQuery"),
    Case("query value only", "/?mode=beta", group="TgQuery"),
    Case("query no match", "/?v=3&vv=2", group="WebTargets"),
    Case("source ip and path", "/src/x", client="Client2", group="TgSource"),
    Case("source ip other client", "/src/x", client="Client1", group="WebTargets"),
    Case("path and method", "/both/x", method="POST", group="TgMethod"),
    Case("path and method, one fails", "/both/x", group="WebTargets"),
    Case(
        "redirect",
        "/moved/a?x=1",
        headers={"Host": "shop.test"},
        status=302,
        location="http://new.example.com:8080/new/moved/a?from=shop.test&x=1",
    ),
    Case("fixed response", "/teapot", status=418, body='{"tea": "pot"}'),
    Case("priority: first match wins", "/api/v2/x", method="PUT", group="TgPathQ"),
    Case("default action", "/anything", group="WebTargets"),
]


def rules_template(xff_mode: str = "append") -> str:
    """The stack (YAML): two AZs, an internet-facing ALB, RULES on its HTTP:80 listener."""
    res = two_az_vpc()
    for name in INSTANCES:
        res[name] = {
            "Type": "AWS::EC2::Instance",
            "Metadata": {"Lab": {"Role": "http-backend"}},
            "Properties": {
                "SubnetId": ref(f"PrivateSubnet{name[-2]}"),
                "SecurityGroupIds": [ref(INSTANCE_GROUP)],
            },
        }
    res[LB] = {
        "Type": "AWS::ElasticLoadBalancingV2::LoadBalancer",
        "Properties": {
            "Type": "application",
            "Scheme": "internet-facing",
            "Subnets": [ref("PublicSubnetA"), ref("PublicSubnetB")],
            "SecurityGroups": [ref(LB_GROUP)],
            "LoadBalancerAttributes": [
                {"Key": "routing.http.xff_header_processing.mode", "Value": ref("XffMode")}
            ],
        },
    }
    for tg, members in GROUPS.items():
        attrs = {"deregistration_delay.timeout_seconds": str(DRAIN_S)}
        props: dict = {
            "Protocol": "HTTP",
            "Port": 80,
            "VpcId": ref("VPC"),
            "HealthCheckPath": "/health",
            "HealthCheckIntervalSeconds": 5,
            "HealthCheckTimeoutSeconds": 4,
            "HealthyThresholdCount": 2,
            "UnhealthyThresholdCount": 2,
            "Targets": [{"Id": ref(m)} for m in members],
        }
        if tg == "WebTargets":
            attrs.update(
                {
                    "stickiness.enabled": "true",
                    "stickiness.type": "lb_cookie",
                    "stickiness.lb_cookie.duration_seconds": "600",
                }
            )
        if tg == "TgLor":
            attrs["load_balancing.algorithm.type"] = "least_outstanding_requests"
        if tg == "TgZonal":
            attrs["load_balancing.cross_zone.enabled"] = "false"
        props["Matcher"] = {
            "HttpCode": {"TgLenient": "200,404", "TgFailOpen": "201"}.get(tg, "200")
        }
        props["TargetGroupAttributes"] = [{"Key": k, "Value": v} for k, v in attrs.items()]
        res[tg] = {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup", "Properties": props}
    res[LISTENER] = {
        "Type": "AWS::ElasticLoadBalancingV2::Listener",
        "Properties": {
            "LoadBalancerArn": ref(LB),
            "Protocol": "HTTP",
            "Port": 80,
            "DefaultActions": _forward("WebTargets"),
        },
    }
    for name, priority, conditions, actions in RULES:
        res[name] = {
            "Type": "AWS::ElasticLoadBalancingV2::ListenerRule",
            "Properties": {
                "ListenerArn": ref(LISTENER),
                "Priority": priority,
                "Conditions": conditions,
                "Actions": actions,
            },
        }
    res["Client1"] = {"Type": "Lab::Internet::Client"}
    res["Client2"] = {"Type": "Lab::Internet::Client"}
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "ALB rules test stack (tests/alb_data.py)",
        "Parameters": {
            "XffMode": {
                "Type": "String",
                "Default": xff_mode,
                "AllowedValues": ["append", "preserve", "remove"],
            }
        },
        "Resources": res,
        "Outputs": {"DnsName": {"Value": {"Fn::GetAtt": [LB, "DNSName"]}}},
    }
    return yaml.safe_dump(template, sort_keys=False, width=100, default_flow_style=None)
