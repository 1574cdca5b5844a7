"""NAT gateway routes and ports without source/destination check, on a fake flow table.

The plan (tests/ports_fixture.py nat_plan) is the hand-made two-AZ one plus a NAT gateway
host in PubA (its EIP 203.0.113.20) and a 0.0.0.0/0 route to it in both private subnets.
The gateway's own translation (Linux masquerade in its namespace) is played by the tests:
they send what the gateway would send.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from testbed.controllers.forwarding import Forwarding
from testbed.plan.network import ROUTER_MAC, NetworkPlan
from tests.fake_openflow import FakeFabric, ip_packet
from tests.ports_fixture import NAT, NAT_EIP, NAT_IP, nat_plan

CLIENT = "198.51.100.10"


@pytest.fixture(scope="module")
def plan():
    return nat_plan()


@pytest.fixture(scope="module")
def fabric(plan):
    return FakeFabric(plan, Forwarding(plan))


def from_nat(plan: NetworkPlan, src: str, dst: str, proto: int = 6, **fields) -> dict:
    """A packet the NAT gateway sends to its router: any addresses (it forwards)."""
    return ip_packet(plan, NAT, dst, proto=proto, ipv4_src=src, **fields)


@pytest.mark.parametrize("proto", [6, 17, 1])
@pytest.mark.parametrize("sender", ["WebA2", "WebB2"])  # its AZ and the other one
def test_private_instance_internet_traffic_is_routed_to_the_nat_gateway(
    plan, fabric, sender, proto
):
    res = fabric.send(sender, ip_packet(plan, sender, CLIENT, proto=proto))
    assert res.hosts == [NAT]
    pkt = res.delivered[0][1]
    assert (pkt["eth_src"], pkt["eth_dst"]) == (ROUTER_MAC, plan.host(NAT).mac)
    assert pkt["ttl"] == 63  # one router hop
    # Unchanged addresses: the gateway translates, not the fabric.
    assert (pkt["ipv4_src"], pkt["ipv4_dst"]) == (plan.host(sender).ip, CLIENT)


def test_nat_gateway_leaves_through_the_igw_with_its_eip(plan, fabric):
    res = fabric.send(NAT, from_nat(plan, NAT_IP, CLIENT))
    assert res.hosts == ["Client1"]
    assert res.delivered[0][1]["ipv4_src"] == NAT_EIP


def test_internet_replies_to_the_eip_reach_the_nat_gateway(plan, fabric):
    res = fabric.send("Client1", ip_packet(plan, "Client1", NAT_EIP, tcp_flags_nxm=0x12))
    assert res.hosts == [NAT]
    assert res.delivered[0][1]["ipv4_dst"] == NAT_IP
    assert res.delivered[0][1]["ipv4_src"] == CLIENT


@pytest.mark.parametrize(("target", "ip"), [("WebA2", "10.0.1.4"), ("WebB2", "10.0.3.4")])
def test_nat_gateway_forwards_internet_sourced_replies_to_private_instances(
    plan, fabric, target, ip
):
    res = fabric.send(NAT, from_nat(plan, CLIENT, ip, tcp_flags_nxm=0x12))
    assert res.hosts == [target]
    pkt = res.delivered[0][1]
    assert (pkt["ipv4_src"], pkt["ipv4_dst"]) == (CLIENT, ip)
    assert (pkt["eth_src"], pkt["eth_dst"]) == (ROUTER_MAC, plan.host(target).mac)


def test_round_trip_through_the_gateway_shows_the_eip_on_the_internet(plan, fabric):
    """WebB2 -> NAT (masquerade to its address) -> IGW (1:1 to the EIP) -> client, and back."""
    out = fabric.send("WebB2", ip_packet(plan, "WebB2", CLIENT, tcp_src=43210))
    assert out.hosts == [NAT]
    masqueraded = dict(
        out.delivered[0][1],
        eth_src=plan.host(NAT).mac,
        eth_dst=ROUTER_MAC,
        ipv4_src=NAT_IP,
        tcp_src=61001,
    )
    seen = fabric.send(NAT, masqueraded)
    assert seen.hosts == ["Client1"]
    assert (seen.delivered[0][1]["ipv4_src"], seen.delivered[0][1]["tcp_src"]) == (NAT_EIP, 61001)
    answer = ip_packet(plan, "Client1", NAT_EIP, tcp_src=80, tcp_dst=61001, tcp_flags_nxm=0x12)
    back = fabric.send("Client1", answer)
    assert back.hosts == [NAT]
    restored = dict(
        back.delivered[0][1],
        eth_src=plan.host(NAT).mac,
        eth_dst=ROUTER_MAC,
        ipv4_dst="10.0.3.4",
        tcp_dst=43210,
    )
    res = fabric.send(NAT, restored)
    assert res.hosts == ["WebB2"]
    assert (res.delivered[0][1]["ipv4_src"], res.delivered[0][1]["tcp_dst"]) == (CLIENT, 43210)


def test_nat_route_leaves_vpc_and_resolver_traffic_alone(plan, fabric):
    assert fabric.send("WebA2", ip_packet(plan, "WebA2", "10.0.3.4")).hosts == ["WebB2"]
    assert fabric.send("WebB2", ip_packet(plan, "WebB2", "10.0.0.2", proto=17)).hosts == ["LabDNS"]


def test_public_subnet_still_uses_the_internet_gateway(plan, fabric):
    res = fabric.send("WebA1", ip_packet(plan, "WebA1", CLIENT))
    assert res.hosts == ["Client1"]
    assert res.delivered[0][1]["ipv4_src"] == "203.0.113.10"


def test_nothing_from_the_internet_reaches_private_instances_through_the_gateway(plan, fabric):
    for dst in ("10.0.1.4", "10.0.3.4", NAT_IP):
        assert fabric.send("Client1", ip_packet(plan, "Client1", dst)).hosts == []


def test_source_check_stays_on_for_other_ports(plan, fabric):
    spoofed = ip_packet(plan, "WebA1", "10.0.3.4", ipv4_src=CLIENT)
    assert fabric.send("WebA1", spoofed).hosts == []
    # The gateway may use any address, but only its own MAC.
    other_mac = from_nat(plan, CLIENT, "10.0.1.4", eth_src=plan.host("WebA1").mac)
    assert fabric.send(NAT, other_mac).hosts == []


def test_private_nat_gateway_does_not_get_through_the_internet_gateway():
    plan = nat_plan(public=False)
    fabric = FakeFabric(plan, Forwarding(plan))
    assert fabric.send("WebA2", ip_packet(plan, "WebA2", CLIENT)).hosts == [NAT]
    # Masqueraded to its private address: the IGW has no public address for it (AWS drops).
    assert fabric.send(NAT, from_nat(plan, NAT_IP, CLIENT)).hosts == []


def test_route_to_a_nat_gateway_the_lab_does_not_have_drops():
    plan = nat_plan(target="NoSuchGateway")
    fabric = FakeFabric(plan, Forwarding(plan))
    assert fabric.send("WebA2", ip_packet(plan, "WebA2", CLIENT)).hosts == []


def test_instance_with_source_dest_check_off_may_forward(plan):
    router = replace(plan.host("WebA1"), source_dest_check=False)
    changed = replace(plan, hosts=tuple(router if h.name == "WebA1" else h for h in plan.hosts))
    forwarded = ip_packet(changed, "WebA1", "10.0.3.4", ipv4_src="10.0.1.4")
    assert FakeFabric(plan, Forwarding(plan)).send("WebA1", forwarded).hosts == []
    assert FakeFabric(changed, Forwarding(changed)).send("WebA1", forwarded).hosts == ["WebB2"]
