"""An ALB as the target of an NLB (issue 17, TargetType alb): the model's checks, the plan's
expansion into one target per ALB node, the switches' path (the client's SYN reaches an ALB
node with the client's address; the node's reply returns through the NLB's zones), and the
holder's register/deregister by the ALB's name. templates/nlb-to-alb.yaml."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from testbed.errors import BadInput
from testbed.lb.registry import TargetRegistry
from testbed.lb.service import LbService
from testbed.model import load_model_text
from testbed.model.elbv2_types import elbv2_sections
from testbed.plan.network import NetworkPlan, build_plan
from tests.fake_openflow import FakeFabric, ip_packet
from tests.unit.test_nlb_tls import Fabric

TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "nlb-to-alb.yaml"
# The alb group's health check lines (WebTargets has the same ones before its Targets).
HC_ALB = (
    "      HealthCheckPath: /health\n      HealthCheckIntervalSeconds: 5\n"
    "      HealthCheckTimeoutSeconds: 4\n      HealthyThresholdCount: 2\n"
    "      TargetGroupAttributes"
)
DEREG = "        - {Key: deregistration_delay"
GROUP_PORT = "      Port: 80\n      VpcId: !Ref Vpc\n      # Health"


def model(text: str | None = None):
    return load_model_text(text or TEMPLATE.read_text(), filename="n2a.yaml", stack_name="t")


def plan() -> NetworkPlan:
    return build_plan(model(), "t")


def fails(text: str, *fragments: str) -> BadInput:
    with pytest.raises(BadInput) as info:
        model(text)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)
    return info.value


def changed(old: str, new: str) -> str:
    text = TEMPLATE.read_text()
    assert old in text, old
    return text.replace(old, new)


# ---- model ---------------------------------------------------------------------------------
def test_alb_group_in_the_model():
    elb = elbv2_sections(model())
    tg = elb["target_groups"]["AlbTargets"]
    alb = elb["load_balancers"]["Alb"]
    assert (tg.target_type, tg.protocol, tg.port, tg.lb_type) == ("alb", "TCP", 80, "network")
    (target,) = tg.targets
    assert (target.id, target.load_balancer, target.port, target.az) == (alb.arn, "Alb", 80, None)
    # Health checks of an alb group: HTTP to the ALB (AWS's NLB HTTP defaults otherwise).
    assert (tg.health_check.protocol, tg.health_check.path) == ("HTTP", "/health")
    assert tg.health_check.matcher == "200-399"
    assert tg.preserve_client_ip  # always: the ALB sees the client
    assert tg.attributes["preserve_client_ip.enabled"] == "true"


def test_default_health_check_is_http_slash():
    text = changed(
        HC_ALB + ":",
        "      TargetGroupAttributes:",
    )
    tg = elbv2_sections(model(text))["target_groups"]["AlbTargets"]
    assert (tg.health_check.protocol, tg.health_check.path, tg.health_check.port) == (
        "HTTP",
        "/",
        None,
    )


ALB2 = """\
  Alb2:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties: {Type: application, Scheme: internal, Subnets: [!Ref SubnetA, !Ref SubnetB],
                 SecurityGroups: [!Ref AlbSg]}
  Alb2Http:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref Alb2
      Protocol: HTTP
      Port: 80
      DefaultActions: [{Type: fixed-response, FixedResponseConfig: {StatusCode: "200"}}]
"""
OTHER_VPC = """\
  Vpc2:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.24.0.0/16}
  Vpc2A:
    Type: AWS::EC2::Subnet
    Properties:
      {VpcId: !Ref Vpc2, CidrBlock: 10.24.1.0/24, AvailabilityZone: !Select [0, !GetAZs ""]}
  Vpc2B:
    Type: AWS::EC2::Subnet
    Properties:
      {VpcId: !Ref Vpc2, CidrBlock: 10.24.2.0/24, AvailabilityZone: !Select [1, !GetAZs ""]}
  Far:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties: {Type: application, Scheme: internal, Subnets: [!Ref Vpc2A, !Ref Vpc2B]}
"""
TARGETS = "      Targets: [{Id: !Ref Alb}]"


@pytest.mark.parametrize(
    ("old", "new", "fragments"),
    [
        (
            TARGETS,
            "      Targets: [{Id: !Ref Alb}, {Id: !Ref Alb2}]",
            ("one Application Load Balancer only", "Targets[1]"),
        ),
        (
            TARGETS,
            "      Targets: [{Id: !Ref Far}]",
            ("ALB Far is in Vpc2, not in the target group's VPC Vpc",),
        ),
        (TARGETS, "      Targets: [{Id: !Ref Nlb}]", ("Nlb is a network load balancer",)),
        (
            TARGETS,
            "      Targets: [{Id: !Ref Alb, Port: 81}]",
            ("Port 81 differs from the target group's Port 80",),
        ),
        (
            TARGETS,
            "      Targets: [{Id: !Ref Alb, AvailabilityZone: us-east-1a}]",
            ("AvailabilityZone is only for ip targets",),
        ),
        (
            GROUP_PORT,
            GROUP_PORT.replace("80", "8080"),
            ("ALB Alb has no listener on port 8080", "its listeners' ports: 80"),
        ),
        (
            "      TargetType: alb\n      Protocol: TCP",
            "      TargetType: alb\n      Protocol: TLS",
            ("must use Protocol TCP, not TLS",),
        ),
        (
            "      TargetType: alb\n      Protocol: TCP",
            "      TargetType: alb\n      Protocol: UDP",
            ("must use Protocol TCP, not UDP",),
        ),
        (
            DEREG,
            '        - {Key: proxy_protocol_v2.enabled, Value: "true"}\n' + DEREG,
            ("proxy protocol v2 is not for alb target groups",),
        ),
        (
            DEREG,
            '        - {Key: preserve_client_ip.enabled, Value: "false"}\n' + DEREG,
            ("cannot be turned off for alb target groups",),
        ),
        (
            HC_ALB,
            HC_ALB.replace("HealthCheckPath: /health", "HealthCheckProtocol: TCP"),
            ("HealthCheckProtocol",),
        ),
    ],
)
def test_bad_alb_groups(old, new, fragments):
    text = changed(old, new).replace("  Nlb:\n", ALB2 + OTHER_VPC + "  Nlb:\n")
    err = fails(text, *fragments)
    # file:line: resource: message, the only problem of the template
    assert re.match(r"n2a\.yaml:\d+: AlbTargets: ", str(err)), str(err)
    assert str(err).count("n2a.yaml:") == 1, str(err)


TLS_LISTENER = """\
  Cert:
    Type: AWS::CertificateManager::Certificate
    Properties: {DomainName: www.example.test, ValidationMethod: DNS}
  NlbTls:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref Nlb
      Protocol: TLS
      Port: 443
      Certificates: [{CertificateArn: !Ref Cert}]
      DefaultActions: [{Type: forward, TargetGroupArn: !Ref AlbTargets}]
"""


def test_alb_group_used_by_an_alb_or_a_tls_listener():
    # An ALB's listener: the group is TCP, not of the ALB's kind.
    text = changed(
        "DefaultActions: [{Type: forward, TargetGroupArn: !Ref WebTargets}]",
        "DefaultActions: [{Type: forward, TargetGroupArn: !Ref AlbTargets}]",
    ).replace("    DependsOn: AlbHttp", "")
    fails(text, "AlbHttp: Alb is an application load balancer", "AlbTargets is TCP")
    # An NLB's TLS listener: only TCP listeners forward to an ALB.
    text = TEMPLATE.read_text().replace("  Client1:\n", TLS_LISTENER + "  Client1:\n")
    fails(text, "listener NlbTls (TLS) forwards to this alb target group")


def test_errors_are_all_reported_with_file_and_line():
    text = changed(TARGETS, "      Targets: [{Id: !Ref Alb, Port: 81}]").replace(
        "      HealthyThresholdCount: 2\n      Targets: [{Id: !Ref Web1}]",
        "      HealthyThresholdCount: 2\n      Targets: [{Id: !Ref Nope}]",
    )
    with pytest.raises(BadInput) as info:
        model(text)
    assert "n2a.yaml:" in str(info.value)


# ---- plan ------------------------------------------------------------------------------------
def test_plan_makes_one_target_per_alb_node():
    p = plan()
    nlb = next(lb for lb in p.load_balancers if lb.name == "Nlb")
    alb = next(lb for lb in p.load_balancers if lb.name == "Alb")
    tg = nlb.target_group("AlbTargets")
    assert tg.target_type == "alb"
    assert [(t.key, t.id, t.ip, t.port, t.az, t.host) for t in tg.targets] == [
        (f"{n.host}:80", "Alb", n.ip, 80, n.az, n.host) for n in alb.nodes
    ]
    assert tg.preserve_client_ip
    assert tg.health.protocol == "HTTP"
    # The NLB's nodes check the ALB node of their own AZ (cross-zone off).
    registry = TargetRegistry(list(p.load_balancers))
    for node in nlb.nodes:
        checks = registry.checks_for(node.az, "Nlb")
        assert [(c["ip"], c["protocol"], c["path"]) for c in checks] == [
            (alb.node_in(node.az).ip, "HTTP", "/health")
        ]


# ---- switches ------------------------------------------------------------------------------
@pytest.mark.parametrize("index", [0, 1])
def test_client_reaches_an_alb_node_with_its_address_and_the_reply_returns(index):
    p = plan()
    fabric = FakeFabric(p, Fabric(p))
    nlb = next(lb for lb in p.load_balancers if lb.name == "Nlb")
    alb = next(lb for lb in p.load_balancers if lb.name == "Alb")
    node = nlb.nodes[index]
    alb_node = alb.node_in(node.az)
    client = p.host("Client1")
    syn = ip_packet(p, "Client1", node.public_ip)
    syn["tcp_src"], syn["tcp_dst"], syn["tcp_flags_nxm"] = 40111, 80, 0x02
    res = fabric.send("Client1", syn)
    assert res.hosts == [alb_node.host], res
    got = res.delivered[0][1]
    assert (got["ipv4_src"], got["tcp_src"]) == (client.ip, 40111)  # the client, kept
    assert (got["ipv4_dst"], got["tcp_dst"]) == (alb_node.ip, 80)  # the ALB's listener
    # The ALB node's answer, addressed to the client, goes back through the NLB's zones.
    back = ip_packet(p, alb_node.host, client.ip)
    back["tcp_src"], back["tcp_dst"], back["tcp_flags_nxm"] = 80, 40111, 0x12
    res = fabric.send(alb_node.host, back)
    assert res.hosts == ["Client1"], res
    got = res.delivered[0][1]
    assert (got["ipv4_src"], got["tcp_src"]) == (node.public_ip, 80)
    assert (got["ipv4_dst"], got["tcp_dst"]) == (client.ip, 40111)
    # The ALB node's own connection to its instance is untouched by the NLB.
    web = p.host("Web1")
    out = ip_packet(p, alb_node.host, web.ip)
    out["tcp_src"], out["tcp_dst"], out["tcp_flags_nxm"] = 50123, 80, 0x02
    res = fabric.send(alb_node.host, out)
    assert res.hosts == ["Web1"], res
    assert res.delivered[0][1]["ipv4_src"] == alb_node.ip


# ---- holder --------------------------------------------------------------------------------
def test_register_and_deregister_by_the_alb_name():
    p = plan()
    nlb = next(lb for lb in p.load_balancers if lb.name == "Nlb")
    service = SimpleNamespace(
        lbs=list(p.load_balancers), registry=TargetRegistry(list(p.load_balancers))
    )
    keys = [
        t.key for t in LbService._alb_targets(service, nlb, "AlbTargets", "Alb", None, "deregister")
    ]  # type: ignore[arg-type]
    assert keys == ["Alb-1a:80", "Alb-1b:80"]
    with pytest.raises(BadInput, match="no ALB of this lab"):
        LbService._alb_targets(service, nlb, "AlbTargets", "Web1", None, "register")  # type: ignore[arg-type]
    with pytest.raises(BadInput, match="on port 80"):
        LbService._alb_targets(service, nlb, "AlbTargets", "Alb", 81, "register")  # type: ignore[arg-type]
    rows = service.registry.describe("Nlb", "AlbTargets")
    assert [(r["Target"]["Id"], r.get("AlbNode")) for r in rows] == [
        ("Alb", "Alb-1a"),
        ("Alb", "Alb-1b"),
    ]
