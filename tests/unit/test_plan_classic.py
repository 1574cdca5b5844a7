"""A Classic Load Balancer in the network plan: listeners, its one group, nodes, live updates.

The stack (clb_template) is also the one tests/unit/test_alb_config_classic.py renders and
runs HAProxy on: two AZs, three http-backend instances (WebA1, WebA2 in AZ a, WebB1 in AZ
b), a CLB `MyCLB` with three listeners:

  80 HTTP -> 80    LBCookieStickinessPolicy (a session cookie unless `expiration`)
  81 TCP  -> 9000  PROXY protocol (a ProxyProtocolPolicyType policy on instance port 9000)
  82 HTTP -> 80    AppCookieStickinessPolicy on SESSIONID
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from testbed.experiments.stacks import ref, two_az_vpc
from testbed.lab import reachability
from testbed.model import load_model_text
from testbed.plan.balancers import PROXY_TYPES
from testbed.plan.changes import plan_changes
from testbed.plan.network import NetworkPlan, build_plan

LB = "MyCLB"
INSTANCES = ("WebA1", "WebA2", "WebB1")
HTTP_PORT, TCP_PORT, APP_PORT = 80, 81, 82
TCP_INSTANCE_PORT = 9000  # the http-backend role's TCP echo
APP_COOKIE = "SESSIONID"
DRAIN_S = 8
IDLE_S = 30


def clb_template(
    cross_zone: bool | None = None,
    expiration: int | None = None,
    idle_s: int = IDLE_S,
    instances: tuple[str, ...] = INSTANCES,
    extra_listener: bool = False,
) -> str:
    """The stack (YAML) of this module's docstring."""
    res = two_az_vpc()
    for name in INSTANCES:
        res[name] = {
            "Type": "AWS::EC2::Instance",
            "Metadata": {"Lab": {"Role": "http-backend"}},
            "Properties": {
                "SubnetId": ref(f"PrivateSubnet{name[-2]}"),
                "SecurityGroupIds": [ref("InstanceSecurityGroup")],
            },
        }
    ports = [HTTP_PORT, TCP_PORT, APP_PORT, 83]
    res["ClbGroup"] = {
        "Type": "AWS::EC2::SecurityGroup",
        "Properties": {
            "GroupDescription": "CLB listeners from anywhere",
            "VpcId": ref("VPC"),
            "SecurityGroupIngress": [
                {"IpProtocol": "tcp", "FromPort": p, "ToPort": p, "CidrIp": "0.0.0.0/0"}
                for p in ports
            ],
        },
    }
    listeners: list[dict[str, Any]] = [
        {
            "LoadBalancerPort": str(HTTP_PORT),
            "InstancePort": "80",
            "Protocol": "HTTP",
            "PolicyNames": ["LbSticky"],
        },
        {
            "LoadBalancerPort": str(TCP_PORT),
            "InstancePort": str(TCP_INSTANCE_PORT),
            "Protocol": "TCP",
        },
        {
            "LoadBalancerPort": str(APP_PORT),
            "InstancePort": "80",
            "Protocol": "HTTP",
            "PolicyNames": ["AppSticky"],
        },
    ]
    if extra_listener:
        listeners.append({"LoadBalancerPort": "83", "InstancePort": "80", "Protocol": "HTTP"})
    lb_cookie: dict[str, Any] = {"PolicyName": "LbSticky"}
    if expiration is not None:
        lb_cookie["CookieExpirationPeriod"] = str(expiration)
    props: dict[str, Any] = {
        "Scheme": "internet-facing",
        "Subnets": [ref("PublicSubnetA"), ref("PublicSubnetB")],
        "SecurityGroups": [ref("ClbGroup")],
        "Instances": [ref(i) for i in instances],
        "Listeners": listeners,
        "HealthCheck": {
            "Target": "HTTP:80/health",
            "Interval": "5",
            "Timeout": "2",
            "HealthyThreshold": "2",
            "UnhealthyThreshold": "2",
        },
        "ConnectionDrainingPolicy": {"Enabled": True, "Timeout": DRAIN_S},
        "ConnectionSettings": {"IdleTimeout": idle_s},
        "LBCookieStickinessPolicy": [lb_cookie],
        "AppCookieStickinessPolicy": [{"PolicyName": "AppSticky", "CookieName": APP_COOKIE}],
        "Policies": [
            {
                "PolicyName": "Proxy",
                "PolicyType": "ProxyProtocolPolicyType",
                "Attributes": [{"Name": "ProxyProtocol", "Value": "true"}],
                "InstancePorts": [str(TCP_INSTANCE_PORT)],
            }
        ],
    }
    if cross_zone is not None:
        props["CrossZone"] = cross_zone
    res[LB] = {"Type": "AWS::ElasticLoadBalancing::LoadBalancer", "Properties": props}
    res["Client1"] = {"Type": "Lab::Internet::Client"}
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "CLB plan test stack (tests/unit/test_plan_classic.py)",
        "Resources": res,
        "Outputs": {"DnsName": {"Value": {"Fn::GetAtt": [LB, "DNSName"]}}},
    }
    return yaml.safe_dump(template, sort_keys=False, width=100, default_flow_style=None)


def clb_network_plan(**kw: Any) -> NetworkPlan:
    model = load_model_text(clb_template(**kw), filename="clb.yaml", stack_name="t")
    return build_plan(model, "t")


def clb_plan(**kw: Any):
    """The CLB's LoadBalancerPlan."""
    return next(lb for lb in clb_network_plan(**kw).load_balancers if lb.name == LB)


@pytest.fixture(scope="module")
def plan() -> NetworkPlan:
    return clb_network_plan()


@pytest.fixture(scope="module")
def lb(plan):
    return plan.load_balancers[0]


def test_a_clb_is_a_proxied_load_balancer_of_type_classic(lb):
    assert lb.type == "classic"
    assert lb.proxied
    assert PROXY_TYPES == ("application", "classic")
    assert lb.cross_zone is False  # CloudFormation's default
    assert clb_plan(cross_zone=True).cross_zone is True


def test_listeners_carry_what_the_data_plane_needs(lb):
    by_port = {lis.port: lis for lis in lb.listeners}
    assert sorted(by_port) == [HTTP_PORT, TCP_PORT, APP_PORT]
    http, tcp, app = by_port[HTTP_PORT], by_port[TCP_PORT], by_port[APP_PORT]
    assert http.name == f"{LB}-{HTTP_PORT}"
    assert (http.protocol, http.instance_port, http.instance_protocol) == ("HTTP", 80, "HTTP")
    assert (tcp.protocol, tcp.instance_port, tcp.instance_protocol) == (
        "TCP",
        TCP_INSTANCE_PORT,
        "TCP",
    )
    assert [lis.proxy_protocol for lis in (http, tcp, app)] == [False, True, False]
    assert (http.sticky, http.sticky_expiration_s) == ("lb_cookie", None)  # a session cookie
    assert clb_plan(expiration=600).listeners[0].sticky_expiration_s == 600
    assert (app.sticky, app.sticky_cookie) == ("app_cookie", APP_COOKIE)
    assert tcp.sticky is None
    assert {lis.idle_timeout_s for lis in lb.listeners} == {IDLE_S}
    assert {lis.target_group for lis in lb.listeners} == {LB}


def test_one_group_of_instances_keyed_at_the_first_instance_port(lb):
    (tg,) = lb.target_groups
    assert tg.name == LB
    assert [t.key for t in tg.targets] == [f"{i}:80" for i in INSTANCES]
    assert tg.deregistration_delay_s == DRAIN_S
    assert (tg.health.protocol, tg.health.port, tg.health.path) == ("HTTP", 80, "/health")
    assert lb.cross_zone_for(tg) is False  # the group follows the CLB's CrossZone


def test_nodes_are_classic_node_hosts_ready_when_every_listener_listens(plan, lb):
    nodes = [h for h in plan.hosts if h.kind == "lb-node"]
    assert [h.name for h in nodes] == [n.host for n in lb.nodes] == ["MyCLB-1a", "MyCLB-1b"]
    for h in nodes:
        assert h.role == "classic-node"
        assert h.role_args["lb"] == LB
        assert h.role_args["ports"] == [HTTP_PORT, TCP_PORT, APP_PORT]
        assert h.groups == ("ClbGroup",)


def test_the_plan_file_keeps_the_classic_fields(plan):
    again = NetworkPlan.from_json(plan.to_json())
    assert again == plan
    assert again.load_balancers[0].listeners[1].proxy_protocol is True


def test_clb_nodes_answer_on_their_own_addresses(plan, lb):
    with_nodes = {a.owner for a in reachability.addresses(plan, lb_nodes=True)}
    assert {n.host for n in lb.nodes} <= with_nodes
    assert not {n.host for n in lb.nodes} & {a.owner for a in reachability.addresses(plan)}


def test_alb_plans_have_no_classic_fields():
    from tests.unit.test_alb_config import alb_plan

    alb = alb_plan()
    assert alb.proxied
    assert alb.type == "application"
    for lis in alb.listeners:
        assert (lis.instance_port, lis.instance_protocol, lis.proxy_protocol) == (None, None, False)
        assert (lis.sticky, lis.sticky_cookie, lis.idle_timeout_s) == (None, None, None)


# ---- live updates (testbed.plan.changes) ---------------------------------------------------
def test_instances_alone_change_live_without_a_reload(plan):
    live, other, reload = plan_changes(plan, clb_network_plan(instances=("WebA1", "WebB1")))
    assert other == []
    assert reload == []
    assert any("targets" in c for c in live), live


@pytest.mark.parametrize(
    "change",
    [{"cross_zone": True}, {"expiration": 300}, {"idle_s": 120}],
    ids=["CrossZone", "LBCookieStickinessPolicy", "ConnectionSettings"],
)
def test_clb_settings_change_live_with_a_reload(plan, change):
    live, other, reload = plan_changes(plan, clb_network_plan(**change))
    assert other == []
    assert reload == [LB]
    assert live


def test_a_new_listener_needs_down_and_up(plan):
    _live, other, _reload = plan_changes(plan, clb_network_plan(extra_listener=True))
    assert any("listeners" in c for c in other), other
    assert any("ports" in c for c in other), other  # the node is ready on one port more
