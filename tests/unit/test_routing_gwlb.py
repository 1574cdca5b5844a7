"""Route tables as the controller applies them: longest prefix, internet gateway, GWLB
endpoints (steering to the GWLB node and back), the gateway's ingress route table."""

from __future__ import annotations

from dataclasses import replace

import pytest

from testbed.controllers.forwarding import Forwarding
from testbed.plan.network import EndpointPlan, RoutePlan, build_plan, host_mac
from tests.fake_openflow import FakeFabric, ip_packet
from tests.handmade import two_az_model

EP_IP = "10.0.0.20"


@pytest.fixture(scope="module")
def plan():
    """WebB1 (PubB, public 203.0.113.11) sends everything through endpoint Ep (in PubA, whose
    table goes to the IGW); inbound traffic for PubB goes through Ep too. WebA2 stands in for
    the GWLB node that serves Ep."""
    base = build_plan(two_az_model(), "t")
    ep = EndpointPlan("Ep", "GWLB", "VPC", "PubA", "us-east-1a", EP_IP, host_mac(EP_IP), "WebA2")
    subnets = []
    for s in base.subnets:
        if s.name == "PubB":
            s = replace(
                s, routes=(RoutePlan("10.0.0.0/16", "local"), RoutePlan("0.0.0.0/0", "vpce", "Ep"))
            )
        subnets.append(s)
    return replace(
        base,
        subnets=tuple(subnets),
        endpoints=(ep,),
        igw_routes=(RoutePlan("10.0.2.0/24", "vpce", "Ep"),),
    )


@pytest.fixture
def fabric(plan):
    return FakeFabric(plan, Forwarding(plan))


def from_node(plan, src, dst, **extra):
    """A packet the GWLB node hands back for endpoint Ep."""
    return {
        "eth_src": host_mac(EP_IP),
        "eth_dst": plan.router_mac,
        "eth_type": 0x0800,
        "ipv4_src": src,
        "ipv4_dst": dst,
        "ip_proto": 6,
        "tcp_src": 80,
        "tcp_dst": 41000,
        "tcp_flags_nxm": 0x12,
        "ttl": 63,
        **extra,
    }


def test_default_route_to_an_endpoint_steers_the_packet_unchanged(plan, fabric):
    res = fabric.send("WebB1", ip_packet(plan, "WebB1", "198.51.100.10"))
    assert res.hosts == ["WebA2"]
    pkt = res.delivered[0][1]
    assert pkt["eth_dst"] == host_mac(EP_IP)
    assert (pkt["ipv4_src"], pkt["ipv4_dst"], pkt["ttl"]) == ("10.0.2.4", "198.51.100.10", 64)


def test_the_local_route_still_wins_inside_the_vpc(plan, fabric):
    assert fabric.send("WebB1", ip_packet(plan, "WebB1", "10.0.3.4")).hosts == ["WebB2"]


def test_back_from_the_gwlb_it_takes_the_endpoint_subnets_table_to_the_igw(plan, fabric):
    res = fabric.send("WebA2", from_node(plan, "10.0.2.4", "198.51.100.10"))
    assert res.hosts == ["Client1"]
    assert res.delivered[0][1]["ipv4_src"] == "203.0.113.11"  # the gateway's NAT


def test_inbound_goes_through_the_endpoint_then_to_the_instance(plan, fabric):
    res = fabric.send("Client1", ip_packet(plan, "Client1", "203.0.113.11"))
    assert res.hosts == ["WebA2"]  # the node, before the instance
    pkt = res.delivered[0][1]
    assert pkt["eth_dst"] == host_mac(EP_IP)
    assert pkt["ipv4_dst"] == "10.0.2.4"
    back = fabric.send(
        "WebA2", from_node(plan, "198.51.100.10", "10.0.2.4", tcp_src=41000, tcp_dst=80)
    )
    assert back.hosts == ["WebB1"]
    assert back.delivered[0][1]["ipv4_src"] == "198.51.100.10"


def test_inbound_to_a_subnet_without_an_igw_route_goes_straight_in(plan, fabric):
    res = fabric.send("Client1", ip_packet(plan, "Client1", "203.0.113.10"))
    assert res.hosts == ["WebA1"]


def test_only_the_node_may_speak_for_the_endpoint(plan, fabric):
    spoof = from_node(plan, "10.0.2.4", "198.51.100.10")
    assert fabric.send("WebA1", spoof).hosts == []


def test_longest_prefix_wins():
    base = build_plan(two_az_model(), "t")
    ep = EndpointPlan("Ep", "GWLB", "VPC", "PubA", "us-east-1a", EP_IP, host_mac(EP_IP), "WebA2")
    subnets = tuple(
        replace(
            s, routes=(RoutePlan("10.0.0.0/16", "local"), RoutePlan("10.0.3.0/24", "vpce", "Ep"))
        )
        if s.name == "PubB"
        else s
        for s in base.subnets
    )
    plan = replace(base, subnets=subnets, endpoints=(ep,))
    fabric = FakeFabric(plan, Forwarding(plan))
    via_endpoint = fabric.send("WebB1", ip_packet(plan, "WebB1", "10.0.3.4"))
    assert via_endpoint.hosts == ["WebA2"]  # /24 to the endpoint beats the /16 local route
    assert via_endpoint.delivered[0][1]["eth_dst"] == host_mac(EP_IP)
    direct = fabric.send("WebB1", ip_packet(plan, "WebB1", "10.0.1.4"))
    assert direct.hosts == ["WebA2"]  # the local route: to WebA2 itself, not the endpoint
    assert direct.delivered[0][1]["eth_dst"] == plan.host("WebA2").mac
