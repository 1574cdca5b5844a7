"""The VPC router, internet gateway and ARP logic, on a fake flow table."""

from __future__ import annotations

import pytest
from os_ken.lib.packet import arp, ethernet, packet

from testbed.controllers.forwarding import Forwarding
from testbed.plan.network import ROUTER_MAC, build_plan
from tests.fake_openflow import FakeFabric, ip_packet
from tests.handmade import two_az_model


@pytest.fixture(scope="module")
def plan():
    return build_plan(two_az_model(), "t")


@pytest.fixture(scope="module")
def fabric(plan):
    return FakeFabric(plan, Forwarding(plan))


def test_local_route_across_azs_rewrites_macs_and_ttl(plan, fabric):
    res = fabric.send("WebA1", ip_packet(plan, "WebA1", "10.0.3.4"))
    assert res.hosts == ["WebB2"]
    pkt = res.delivered[0][1]
    assert pkt["eth_src"] == ROUTER_MAC
    assert pkt["eth_dst"] == plan.host("WebB2").mac
    assert pkt["ttl"] == 63
    assert pkt["ipv4_src"] == "10.0.0.4"  # no NAT inside the VPC


def test_private_instances_reach_each_other_inside_vpc(plan, fabric):
    assert fabric.send("WebA2", ip_packet(plan, "WebA2", "10.0.3.4")).hosts == ["WebB2"]


def test_same_subnet_is_bridged_unchanged(plan, fabric):
    pkt = ip_packet(plan, "WebA2", "10.0.1.5", via_router=False)
    res = fabric.send("WebA2", pkt)
    assert res.hosts == ["WebA3"]
    assert res.delivered[0][1]["ttl"] == 64
    assert res.delivered[0][1]["eth_src"] == plan.host("WebA2").mac


def test_l2_frame_to_another_subnet_is_dropped(plan, fabric):
    # Addressed straight to WebB2's MAC, skipping the router: AWS would not deliver it.
    pkt = ip_packet(plan, "WebA2", "10.0.3.4", eth_dst=plan.host("WebB2").mac)
    assert fabric.send("WebA2", pkt).hosts == []


def test_internet_client_reaches_public_instance_through_igw_nat(plan, fabric):
    res = fabric.send("Client1", ip_packet(plan, "Client1", "203.0.113.10"))
    assert res.hosts == ["WebA1"]
    assert res.delivered[0][1]["ipv4_dst"] == "10.0.0.4"
    assert res.delivered[0][1]["ipv4_src"] == "198.51.100.10"  # client address preserved


def test_public_instance_replies_with_its_public_address(plan, fabric):
    res = fabric.send("WebA1", ip_packet(plan, "WebA1", "198.51.100.10"))
    assert res.hosts == ["Client1"]
    assert res.delivered[0][1]["ipv4_src"] == "203.0.113.10"


@pytest.mark.parametrize("dst", ["10.0.1.4", "10.0.0.4", "10.0.3.4"])
def test_internet_cannot_reach_private_addresses(plan, fabric, dst):
    assert fabric.send("Client1", ip_packet(plan, "Client1", dst)).hosts == []


def test_private_subnet_has_no_internet(plan, fabric):
    assert fabric.send("WebA2", ip_packet(plan, "WebA2", "198.51.100.10")).hosts == []


def test_hairpin_to_public_address_of_another_instance(plan, fabric):
    res = fabric.send("WebA1", ip_packet(plan, "WebA1", "203.0.113.11"))
    assert res.hosts == ["WebB1"]
    assert res.delivered[0][1]["ipv4_src"] == "203.0.113.10"
    assert res.delivered[0][1]["ipv4_dst"] == "10.0.2.4"


def test_spoofed_source_is_dropped(plan, fabric):
    pkt = ip_packet(plan, "WebA2", "10.0.3.4", ipv4_src="10.0.1.99")
    assert fabric.send("WebA2", pkt).hosts == []


def test_unknown_vpc_address_is_dropped_not_sent_to_internet(plan, fabric):
    assert fabric.send("WebA1", ip_packet(plan, "WebA1", "10.0.9.9")).hosts == []


def test_without_igw_nothing_leaves_the_vpc():
    plan = build_plan(two_az_model(with_igw=False), "t")
    fabric = FakeFabric(plan, Forwarding(plan))
    assert fabric.send("WebA1", ip_packet(plan, "WebA1", "198.51.100.10")).hosts == []
    assert fabric.send(
        "Client1", ip_packet(plan, "Client1", "198.51.100.11", via_router=False)
    ).hosts == ["Client2"]


def test_arp_goes_to_controller(plan, fabric):
    h = plan.host("WebA1")
    res = fabric.send(
        "WebA1", {"eth_src": h.mac, "eth_dst": "ff:ff:ff:ff:ff:ff", "eth_type": 0x0806}
    )
    assert res.hosts == []
    assert len(res.to_controller) == 1


def _arp_request(src_mac: str, src_ip: str, target_ip: str) -> bytes:
    p = packet.Packet()
    p.add_protocol(ethernet.ethernet(dst="ff:ff:ff:ff:ff:ff", src=src_mac, ethertype=0x0806))
    p.add_protocol(
        arp.arp(
            opcode=arp.ARP_REQUEST,
            src_mac=src_mac,
            src_ip=src_ip,
            dst_mac="00:00:00:00:00:00",
            dst_ip=target_ip,
        )
    )
    p.serialize()
    return bytes(p.data)


def _answer(plan, host: str, target: str, src_ip: str | None = None):
    h = plan.host(host)
    dpid = plan.switch(h.switch).dpid
    out = Forwarding(plan).handle_arp(dpid, h.port, _arp_request(h.mac, src_ip or h.ip, target))
    if out is None:
        return None
    assert (out.dpid, out.port) == (dpid, h.port)
    reply = packet.Packet(out.data).get_protocol(arp.arp)
    assert reply.opcode == arp.ARP_REPLY
    assert reply.dst_ip == h.ip
    assert reply.src_ip == target
    return reply.src_mac


def test_arp_answers_router_and_same_subnet_only(plan):
    assert _answer(plan, "WebA2", "10.0.1.1") == ROUTER_MAC
    assert _answer(plan, "WebA2", "10.0.1.5") == plan.host("WebA3").mac
    assert _answer(plan, "WebA2", "10.0.3.4") is None  # other subnet: ask the router
    assert _answer(plan, "Client1", "198.51.100.1") == ROUTER_MAC
    assert _answer(plan, "Client1", "198.51.100.11") == plan.host("Client2").mac
    assert _answer(plan, "Client1", "10.0.0.4") is None


def test_arp_from_spoofed_sender_is_ignored(plan):
    assert _answer(plan, "WebA2", "10.0.1.1", src_ip="10.0.1.77") is None


def test_every_pair_follows_aws_rules(plan, fabric):
    from testbed.lab import reachability

    want = reachability.expected(plan)
    for (src, ip), allowed in want.items():
        owner = next(h for h in plan.hosts if ip in (h.ip, h.public_ip))
        same_l2 = plan.host(src).subnet == owner.subnet and ip == owner.ip
        if plan.host(src).kind == "client" and owner.kind == "client":
            same_l2 = True
        res = fabric.send(src, ip_packet(plan, src, ip, via_router=not same_l2))
        assert (res.hosts == [owner.name]) == allowed, (src, ip, res.hosts)
