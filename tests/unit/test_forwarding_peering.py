"""VPC peering and a GWLB endpoint in another VPC on the fake fabric (issue 14, W5).

The lab: one stack with VPCs A (10.0/16), B (10.1/16) and C (10.2/16), peered A-B and B-C,
whose route tables also send the third VPC's block through their peering connection (the
no-transit check); and a second stack "o." whose VPC overlaps A (10.0/16, address space 1),
peered with nobody. Every flow goes through os-ken's OFPFlowMod first (OnTheWire), and the
fabric raises on two equal-priority matches.
"""

from __future__ import annotations

import textwrap
from dataclasses import replace

import pytest

from testbed.model.build import build_model
from testbed.plan import merge
from testbed.plan.network import EndpointPlan, NetworkPlan, RoutePlan, host_mac
from testbed.template.yaml_loader import load_text
from tests.fake_openflow import FakeFabric, ip_packet
from tests.unit.test_forwarding_overlap import OnTheWire


def vpc(name: str, second: int) -> str:
    return f"""
  {name}:
    Type: AWS::EC2::VPC
    Properties: {{CidrBlock: 10.{second}.0.0/16}}
  {name}Subnet:
    Type: AWS::EC2::Subnet
    Properties: {{VpcId: !Ref {name}, CidrBlock: 10.{second}.1.0/24, AvailabilityZone: us-east-1a}}
  {name}Table:
    Type: AWS::EC2::RouteTable
    Properties: {{VpcId: !Ref {name}}}
  {name}Assoc:
    Type: AWS::EC2::SubnetRouteTableAssociation
    Properties: {{SubnetId: !Ref {name}Subnet, RouteTableId: !Ref {name}Table}}
  {name}Group:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: anything from 10/8 (the peers)
      VpcId: !Ref {name}
      SecurityGroupIngress: [{{IpProtocol: "-1", CidrIp: 10.0.0.0/8}}]
  {name}Web:
    Type: AWS::EC2::Instance
    Properties: {{SubnetId: !Ref {name}Subnet, SecurityGroupIds: [!Ref {name}Group]}}
"""


def route(name: str, table: str, second: int, pcx: str) -> str:
    return f"""
  {name}:
    Type: AWS::EC2::Route
    Properties:
      RouteTableId: !Ref {table}Table
      DestinationCidrBlock: 10.{second}.0.0/16
      VpcPeeringConnectionId: !Ref {pcx}
"""


def peering(name: str, a: str, b: str) -> str:
    return f"""
  {name}:
    Type: AWS::EC2::VPCPeeringConnection
    Properties: {{VpcId: !Ref {a}, PeerVpcId: !Ref {b}}}
"""


PEERED = (
    "Resources:"
    + vpc("A", 0)
    + vpc("B", 1)
    + vpc("C", 2)
    + peering("AB", "A", "B")
    + peering("BC", "B", "C")
    + route("AToB", "A", 1, "AB")
    + route("AToC", "A", 2, "AB")  # through B: not transitive, dropped
    + route("BToA", "B", 0, "AB")
    + route("BToC", "B", 2, "BC")
    + route("CToB", "C", 1, "BC")
    + route("CToA", "C", 0, "BC")  # through B: dropped
)
OVERLAPPING = "Resources:" + vpc("A", 0)


def model(text: str, qualifier: str = ""):
    doc = load_text(textwrap.dedent(text), "t.yaml")
    return build_model(doc, file="t.yaml", qualifier=qualifier)


@pytest.fixture(scope="module")
def plan() -> NetworkPlan:
    first = merge.add_stack(None, model(PEERED), "t", 100, "")
    return merge.add_stack(first, model(OVERLAPPING, "o."), "t", 100, "o.")


@pytest.fixture
def fabric(plan) -> FakeFabric:
    return FakeFabric(plan, OnTheWire(plan))


def ip(plan: NetworkPlan, host: str) -> str:
    return plan.host(host).ip


def test_the_fixture(plan):
    assert ip(plan, "AWeb") == ip(plan, "o.AWeb")
    assert plan.host("o.AWeb").mac != plan.host("AWeb").mac
    routes = {s.name: {(r.destination, r.kind, r.target) for r in s.routes} for s in plan.subnets}
    assert ("10.1.0.0/16", "pcx", "B") in routes["ASubnet"]


@pytest.mark.parametrize(("src", "dst"), [("AWeb", "BWeb"), ("BWeb", "AWeb"), ("BWeb", "CWeb")])
def test_peered_vpcs_reach_each_other(plan, fabric, src, dst):
    res = fabric.send(src, ip_packet(plan, src, ip(plan, dst)))
    assert res.hosts == [dst]
    assert res.delivered[0][1]["eth_dst"] == plan.host(dst).mac


@pytest.mark.parametrize(("src", "dst"), [("AWeb", "CWeb"), ("CWeb", "AWeb")])
def test_peering_is_not_transitive(plan, fabric, src, dst):
    # Both route tables send the third VPC's block to their peering connection with B.
    assert fabric.send(src, ip_packet(plan, src, ip(plan, dst))).hosts == []


def test_b_reaches_its_peer_not_the_overlapping_copy(plan, fabric):
    res = fabric.send("BWeb", ip_packet(plan, "BWeb", ip(plan, "AWeb")))
    assert res.hosts == ["AWeb"]


def test_an_overlapping_vpc_stays_isolated(plan, fabric):
    for dst in ("BWeb", "CWeb"):
        assert fabric.send("o.AWeb", ip_packet(plan, "o.AWeb", ip(plan, dst))).hosts == []
    # and its own address stays its own: A's twin is not reached from it or from A
    assert fabric.send("CWeb", ip_packet(plan, "CWeb", ip(plan, "o.AWeb"))).hosts == []


def test_replies_come_back_over_the_peering(plan, fabric):
    back = ip_packet(plan, "BWeb", ip(plan, "AWeb"), tcp_src=80, tcp_dst=40000, tcp_flags_nxm=0x12)
    assert fabric.send("BWeb", back).hosts == ["AWeb"]


# A GWLB endpoint in VPC B (or in the overlapping VPC o.A) served by a GWLB node in VPC A
# (AWeb stands in for the node): AWS's distributed GWLB design.
def with_endpoint(plan: NetworkPlan, subnet: str, ep_ip: str) -> tuple[NetworkPlan, EndpointPlan]:
    sub = next(s for s in plan.subnets if s.name == subnet)
    space = next(v.space for v in plan.vpcs if v.name == sub.vpc)
    ep = EndpointPlan(
        "Ep", "GWLB", sub.vpc, subnet, "us-east-1a", ep_ip, host_mac(ep_ip, space), "AWeb"
    )
    subnets = tuple(
        replace(s, routes=(*s.routes, RoutePlan("0.0.0.0/0", "vpce", "Ep")))
        if s.name == subnet
        else s
        for s in plan.subnets
    )
    return replace(plan, subnets=subnets, endpoints=(ep,)), ep


def from_node(plan: NetworkPlan, ep: EndpointPlan, src: str, dst: str) -> dict:
    """A packet the GWLB node hands back for endpoint `ep`."""
    return {
        "eth_src": ep.mac,
        "eth_dst": plan.router_mac,
        "eth_type": 0x0800,
        "ipv4_src": src,
        "ipv4_dst": dst,
        "ip_proto": 6,
        "tcp_src": 80,
        "tcp_dst": 40000,
        "tcp_flags_nxm": 0x12,
        "ttl": 63,
    }


@pytest.mark.parametrize(
    ("subnet", "ep_ip", "sender"),
    [("BSubnet", "10.1.1.20", "BWeb"), ("o.ASubnet", "10.0.1.20", "o.AWeb")],
)
def test_an_endpoint_in_another_vpc_is_served_by_the_node_in_a(plan, subnet, ep_ip, sender):
    spoke, ep = with_endpoint(plan, subnet, ep_ip)
    fabric = FakeFabric(spoke, OnTheWire(spoke))
    out = fabric.send(sender, ip_packet(spoke, sender, "198.51.100.10"))
    assert out.hosts == ["AWeb"]  # the node, in VPC A
    assert out.delivered[0][1]["eth_dst"] == ep.mac
    assert out.delivered[0][1]["ipv4_src"] == ip(spoke, sender)  # the spoke's address
    # Back from the node, the endpoint's subnet's route table takes it (local: the sender),
    # in the spoke's VPC even where it shares addresses with A.
    back = fabric.send("AWeb", from_node(spoke, ep, "198.51.100.10", ip(spoke, sender)))
    assert back.hosts == [sender]
    assert back.delivered[0][1]["eth_dst"] == spoke.host(sender).mac
