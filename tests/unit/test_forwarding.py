"""The VPC router, internet gateway and ARP logic, on a fake flow table."""

from __future__ import annotations

from dataclasses import replace

import pytest

from testbed.controllers.forwarding import Forwarding
from testbed.plan.network import ROUTER_MAC, build_plan, host_mac
from tests.fake_openflow import FakeFabric, arp_request, ip_packet
from tests.handmade import two_az_model
from tests.nlb_fixture import nlb_plan


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


def _answer(fabric, plan, host: str, target: str, src_ip: str | None = None) -> str | None:
    """The MAC the switches answer `host`'s ARP request for `target` with (None: silence);
    checks that the reply is a well-formed answer sent to the asker alone."""
    res = fabric.send(host, arp_request(plan, host, target, src_ip))
    assert res.to_controller == []  # the switch answers by itself
    if not res.delivered:
        return None
    h = plan.host(host)
    assert res.hosts == [host]
    reply = res.delivered[0][1]
    assert reply["arp_op"] == 2
    assert (reply["eth_dst"], reply["arp_tha"], reply["arp_tpa"]) == (h.mac, h.mac, src_ip or h.ip)
    assert reply["arp_spa"] == target
    assert reply["eth_src"] == reply["arp_sha"]
    return reply["arp_sha"]


def test_arp_is_answered_by_the_switch(plan, fabric):
    assert _answer(fabric, plan, "WebA2", "10.0.1.1") == ROUTER_MAC
    assert _answer(fabric, plan, "WebA2", "10.0.1.5") == plan.host("WebA3").mac
    assert _answer(fabric, plan, "WebA2", "10.0.3.4") is None  # other subnet: ask the router
    assert _answer(fabric, plan, "Client1", "198.51.100.1") == ROUTER_MAC
    assert _answer(fabric, plan, "Client1", "198.51.100.11") == plan.host("Client2").mac
    assert _answer(fabric, plan, "Client1", "10.0.0.4") is None
    assert _answer(fabric, plan, "LabDNS", "10.0.3.4", src_ip="10.0.0.2") == ROUTER_MAC


def test_load_balancer_nodes_resolve_each_other_and_others_route_to_them():
    plan = _two_nodes_in_a_subnet()
    fabric = FakeFabric(plan, Forwarding(plan))
    assert _answer(fabric, plan, "NLB-1a", "10.0.0.6") == host_mac("10.0.0.6")
    assert _answer(fabric, plan, "WebA1", "10.0.0.6") == ROUTER_MAC
    assert _answer(fabric, plan, "WebA1", "10.0.0.5") == ROUTER_MAC


def test_arp_from_spoofed_sender_or_gratuitous_is_not_answered(plan, fabric):
    assert _answer(fabric, plan, "WebA2", "10.0.1.1", src_ip="10.0.1.77") is None
    assert _answer(fabric, plan, "WebA2", "10.0.1.4") is None  # its own address
    other_mac = dict(arp_request(plan, "WebA2", "10.0.1.1"), eth_src=plan.host("WebA3").mac)
    assert fabric.send("WebA2", other_mac).delivered == []


def _two_nodes_in_a_subnet():
    """The NLB plan with a second load balancer node beside NLB-1a (as an ALB's would be):
    nodes resolve each other, other hosts of the subnet route to them."""
    plan = nlb_plan()
    node = plan.host("NLB-1a")
    port = max(h.port for h in plan.hosts if h.switch == node.switch) + 1
    other = replace(
        node, name="ALB-1a", ip="10.0.0.6", mac=host_mac("10.0.0.6"), port=port, veth="tb-t-v99"
    )
    return replace(plan, hosts=(*plan.hosts, other))


def _handmade_plans():
    return {
        "two-az": build_plan(two_az_model(), "t"),
        "no-igw": build_plan(two_az_model(with_igw=False), "t"),
        "nlb": nlb_plan(),
        "nlb-internal": nlb_plan(scheme="internal"),
        "two-nodes": _two_nodes_in_a_subnet(),
    }


@pytest.mark.parametrize("name", ["two-az", "no-igw", "nlb", "nlb-internal", "two-nodes"])
def test_arp_responder_flows_answer_as_arp_answer(name):
    """Every (asker, source address, target) of the hand-made plans: the flows answer exactly
    what Forwarding.arp_answer says (the controller's packet-in answer until now: nothing for
    a gratuitous request, else arp_answer's MAC)."""
    plan = _handmade_plans()[name]
    logic = Forwarding(plan)
    fabric = FakeFabric(plan, logic)
    targets = {ip for h in plan.hosts for ip in (h.ip, *h.extra_ips)}
    targets |= {h.public_ip for h in plan.hosts if h.public_ip}
    targets |= {s.router_ip for s in plan.subnets}
    targets |= {plan.internet_gateway_ip, "10.0.9.9", "192.0.2.1"}
    answered = 0
    for asker in plan.hosts:
        for src_ip in (asker.ip, *asker.extra_ips):
            for target in sorted(targets):
                want = None if target == src_ip else logic.arp_answer(asker, target)
                got = _answer(fabric, plan, asker.name, target, src_ip)
                assert got == want, (asker.name, src_ip, target)
                answered += got is not None
    assert answered > len(plan.hosts)  # the check compared answers, not only silences


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
