"""A second network interface (eth1) is a port like any other, on a fake flow table.

The plan (tests/ports_fixture.py with_interfaces) is the hand-made two-AZ one plus two extra
interfaces: WebA1 (eth0 in PubA) has eth1 in PrivA with a secondary address; WebA2 (eth0 in
PrivA) has eth1 in PubA with an Elastic IP.
"""

from __future__ import annotations

import pytest

from testbed.controllers.forwarding import Forwarding
from testbed.controllers.nlb import NlbLogic, RuntimeTarget
from testbed.plan.network import ROUTER_MAC, build_plan, host_mac
from tests.fake_openflow import FakeFabric, arp_request, attachment, ip_packet
from tests.handmade import two_az_model
from tests.nlb_fixture import nlb_plan
from tests.ports_fixture import (
    ETH1,
    ETH1_IP,
    ETH1_SECONDARY,
    PUB_ETH1,
    PUB_ETH1_EIP,
    PUB_ETH1_IP,
    nat_plan,
    with_interfaces,
)


@pytest.fixture(scope="module")
def plan():
    return with_interfaces(build_plan(two_az_model(), "t"))


@pytest.fixture(scope="module")
def fabric(plan):
    return FakeFabric(plan, Forwarding(plan))


def test_the_interfaces_are_ports_of_their_own(plan):
    ports = {(a.switch, a.port) for a in plan.attachments()}
    assert len(ports) == len(plan.attachments()) == len(plan.hosts) + 2


@pytest.mark.parametrize("ip", [ETH1_IP, ETH1_SECONDARY])
def test_interface_is_reached_on_its_subnet_without_the_router(plan, fabric, ip):
    res = fabric.send("WebA3", ip_packet(plan, "WebA3", ip, via_router=False))
    assert res.hosts == [ETH1]
    assert res.delivered[0][1]["ttl"] == 64  # bridged, not routed


@pytest.mark.parametrize("ip", [ETH1_IP, ETH1_SECONDARY])
@pytest.mark.parametrize("sender", ["WebB2", "WebB1", "WebA2"])
def test_interface_is_routed_to_from_other_subnets(plan, fabric, sender, ip):
    res = fabric.send(sender, ip_packet(plan, sender, ip))
    assert res.hosts == [ETH1]
    pkt = res.delivered[0][1]
    assert (pkt["eth_src"], pkt["eth_dst"], pkt["ttl"]) == (ROUTER_MAC, host_mac(ETH1_IP), 63)


@pytest.mark.parametrize("src", [ETH1_IP, ETH1_SECONDARY])
def test_interface_sends_from_its_addresses_with_its_subnet_routes(plan, fabric, src):
    res = fabric.send(ETH1, ip_packet(plan, ETH1, "10.0.3.4", ipv4_src=src))
    assert res.hosts == ["WebB2"]
    assert res.delivered[0][1]["ipv4_src"] == src
    # PrivA has no internet route: eth1 does not get out, although eth0's subnet would.
    assert fabric.send(ETH1, ip_packet(plan, ETH1, "198.51.100.10")).hosts == []
    assert fabric.send("WebA1", ip_packet(plan, "WebA1", "198.51.100.10")).hosts == ["Client1"]


def test_each_port_sends_only_from_its_own_addresses(plan, fabric):
    # eth0's address on eth1's port, and the other way round: the source check drops both.
    assert fabric.send(ETH1, ip_packet(plan, ETH1, "10.0.3.4", ipv4_src="10.0.0.4")).hosts == []
    assert fabric.send("WebA1", ip_packet(plan, "WebA1", "10.0.3.4", ipv4_src=ETH1_IP)).hosts == []
    # eth1's MAC on eth0's port.
    wrong_mac = ip_packet(plan, "WebA1", "10.0.3.4", eth_src=host_mac(ETH1_IP))
    assert fabric.send("WebA1", wrong_mac).hosts == []


def test_interface_with_an_elastic_ip_is_reached_from_the_internet(plan, fabric):
    res = fabric.send("Client1", ip_packet(plan, "Client1", PUB_ETH1_EIP))
    assert res.hosts == [PUB_ETH1]
    assert res.delivered[0][1]["ipv4_dst"] == PUB_ETH1_IP
    out = fabric.send(PUB_ETH1, ip_packet(plan, PUB_ETH1, "198.51.100.10"))
    assert out.hosts == ["Client1"]
    assert out.delivered[0][1]["ipv4_src"] == PUB_ETH1_EIP
    # The same host's eth0 is in a private subnet, without a public address.
    assert fabric.send("WebA2", ip_packet(plan, "WebA2", "198.51.100.10")).hosts == []


def answer(fabric, plan, asker: str, target: str, src_ip: str | None = None) -> str | None:
    """The MAC the switches answer port `asker`'s ARP request for `target` with (None:
    silence); checks that the reply goes back to the asking port alone."""
    res = fabric.send(asker, arp_request(plan, asker, target, src_ip))
    assert res.to_controller == []
    if not res.delivered:
        return None
    port = attachment(plan, asker)
    assert res.hosts == [asker]
    reply = res.delivered[0][1]
    assert (reply["arp_op"], reply["arp_spa"]) == (2, target)
    assert (reply["eth_dst"], reply["arp_tpa"]) == (port.mac, src_ip or port.ip)
    return reply["arp_sha"]


def test_arp_for_and_from_the_interface(plan, fabric):
    assert answer(fabric, plan, "WebA3", ETH1_IP) == host_mac(ETH1_IP)
    assert answer(fabric, plan, "WebA3", ETH1_SECONDARY) == host_mac(ETH1_IP)
    assert answer(fabric, plan, ETH1, "10.0.1.1") == ROUTER_MAC
    assert answer(fabric, plan, ETH1, "10.0.1.5") == plan.host("WebA3").mac
    assert answer(fabric, plan, ETH1, "10.0.1.1", src_ip=ETH1_SECONDARY) == ROUTER_MAC
    assert answer(fabric, plan, "WebA1", ETH1_IP) is None  # another subnet: routed
    assert answer(fabric, plan, ETH1, "10.0.1.1", src_ip="10.0.0.4") is None  # eth0's address


@pytest.mark.parametrize("name", ["interfaces", "nat", "nat+interfaces"])
def test_arp_responder_flows_answer_as_arp_answer_on_every_port(name):
    """Every (port, source address, target): the flows answer what arp_answer says."""
    plan = {
        "interfaces": lambda: with_interfaces(build_plan(two_az_model(), "t")),
        "nat": nat_plan,
        "nat+interfaces": lambda: with_interfaces(nat_plan()),
    }[name]()
    logic = Forwarding(plan)
    fabric = FakeFabric(plan, logic)
    ports = plan.attachments()
    targets = {ip for a in ports for ip in (a.ip, *a.extra_ips)}
    targets |= {a.public_ip for a in ports if a.public_ip}
    targets |= {s.router_ip for s in plan.subnets} | {plan.internet_gateway_ip, "10.0.9.9"}
    answered = 0
    for asker in ports:
        for src_ip in (asker.ip, *asker.extra_ips):
            for target in sorted(targets):
                want = None if target == src_ip else logic.arp_answer(asker, target)
                got = answer(fabric, plan, asker.name, target, src_ip)
                assert got == want, (asker.name, src_ip, target)
                answered += got is not None
    assert answered > len(ports)


@pytest.mark.parametrize("ip", [ETH1_IP, ETH1_SECONDARY])
def test_nlb_ip_target_on_a_second_interface_gets_traffic_and_answers_through_the_node(ip):
    plan = with_interfaces(nlb_plan())

    class Both:
        def __init__(self) -> None:
            self.forwarding, self.nlb = Forwarding(plan), NlbLogic(plan, table_size=61)

        def flows_for(self, dpid):
            return self.forwarding.flows_for(dpid) + self.nlb.flows_for(dpid)

    logic = Both()
    target = RuntimeTarget(f"{ip}:80", ip, 80, "us-east-1a", "healthy")
    logic.nlb.set_targets("NLB", "TgTcp", [target])
    fabric = FakeFabric(plan, logic)
    res = fabric.send("Client1", ip_packet(plan, "Client1", "203.0.113.12", tcp_src=41000))
    assert res.hosts == [ETH1]
    pkt = res.delivered[0][1]
    assert (pkt["ipv4_dst"], pkt["ipv4_src"]) == (ip, "198.51.100.10")
    reply = ip_packet(
        plan, ETH1, "198.51.100.10", ipv4_src=ip, tcp_src=80, tcp_dst=41000, tcp_flags_nxm=0x12
    )
    back = fabric.send(ETH1, reply)
    assert back.hosts == ["Client1"]
    assert back.delivered[0][1]["ipv4_src"] == "203.0.113.12"
