"""Two VPCs with the same CIDR in one lab (issue 14): one controller logic keeps them apart.

The plan is made by hand, as the design's spike did: the two-AZ VPC of tests/handmade.py (with
an NLB, security groups and a network ACL) and a copy of it as stack "b." (names "b.X", VPC
index 2, address space 1 so MACs 02:01:ip, its own public addresses, ports and veths after
the first). The whole controller logic runs on the fake fabric, every flow passed through
os-ken's real OFPFlowMod (serialized and parsed back) first; the fabric raises on two
equal-priority matches, so a table that matched an address alone would show here.
"""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address
from typing import Any

import pytest

from testbed.controllers.ofadapter import flow_mod
from testbed.plan.balancers import LoadBalancerPlan
from testbed.plan.network import NetworkPlan, VpcPlan
from tests.fake_openflow import FakeFabric, arp_request, ip_packet
from tests.nlb_fixture import nlb_plan
from tests.security_fixture import Controller, acl, entry, group, secured, tcp
from tests.unit.flows_golden import everything
from tests.unit.test_ofadapter import Switch, plain_flow, wire

PUBLIC_B = {f"203.0.113.{n}": f"203.0.113.{n + 10}" for n in range(10, 14)}


def spaced_mac(space: int, ip: str) -> str:
    """The design's MAC of an address in address space `space` (space 0: today's)."""
    return f"02:{space:02x}:" + ":".join(f"{x:02x}" for x in IPv4Address(ip).packed)


def q(name: str | None) -> str | None:
    return None if name is None else f"b.{name}"


def qualified_lb(lb: LoadBalancerPlan) -> LoadBalancerPlan:
    return replace(
        lb,
        name=f"b.{lb.name}",
        index=lb.index + 1,
        zone_dnat=lb.zone_dnat + 10,
        zone_snat=lb.zone_snat + 10,
        nodes=tuple(
            replace(
                n, host=f"b.{n.host}", subnet=f"b.{n.subnet}", public_ip=PUBLIC_B[n.public_ip or ""]
            )
            for n in lb.nodes
        ),
        target_groups=tuple(
            replace(tg, targets=tuple(replace(t, host=q(t.host)) for t in tg.targets))
            for tg in lb.target_groups
        ),
    )


def with_copy(a: NetworkPlan) -> NetworkPlan:
    """Plan `a` plus its VPC again as stack "b." in address space 1 (same CIDR)."""
    next_port: dict[str, int] = {}
    for h in a.attachments():
        next_port[h.switch] = max(next_port.get(h.switch, 0), h.port + 1)
    zones = [h.sg_zone for h in a.hosts if h.sg_zone is not None]
    hosts = list(a.hosts)
    for h in a.hosts:
        if h.kind in ("client", "dns"):
            continue  # one internet; a second resolver is the plan's business (design §2.2)
        port = next_port[h.switch]
        next_port[h.switch] += 1
        hosts.append(
            replace(
                h,
                name=f"b.{h.name}",
                netns=f"tb-t-b.{h.name}",
                subnet=q(h.subnet),
                vpc=q(h.vpc),
                mac=spaced_mac(1, h.ip),
                port=port,
                veth=f"tb-t-v{len(hosts) + 1}",
                public_ip=PUBLIC_B.get(h.public_ip or "", h.public_ip),
                groups=None if h.groups is None else tuple(f"b.{g}" for g in h.groups),
                sg_zone=None if h.sg_zone is None else h.sg_zone + len(zones) + 100,
            )
        )
    subnets = tuple(a.subnets) + tuple(
        replace(
            s, name=f"b.{s.name}", vpc=f"b.{s.vpc}", index=s.index + len(a.subnets), nacl=q(s.nacl)
        )
        for s in a.subnets
    )
    groups = tuple(a.security_groups) + tuple(
        replace(
            g,
            name=f"b.{g.name}",
            vpc=f"b.{g.vpc}",
            ingress=tuple(replace(r, group=q(r.group)) for r in g.ingress),
            egress=tuple(replace(r, group=q(r.group)) for r in g.egress),
        )
        for g in a.security_groups
    )
    nacls = tuple(a.network_acls) + tuple(
        replace(n, name=f"b.{n.name}", vpc=f"b.{n.vpc}", subnets=tuple(f"b.{s}" for s in n.subnets))
        for n in a.network_acls
    )
    (vpc,) = a.vpcs
    return replace(
        a,
        hosts=tuple(hosts),
        subnets=subnets,
        vpcs=(vpc, VpcPlan(f"b.{vpc.name}", vpc.cidr, vpc.index + 1)),
        security_groups=groups,
        network_acls=nacls,
        load_balancers=tuple(a.load_balancers) + tuple(qualified_lb(lb) for lb in a.load_balancers),
    )


class OnTheWire:
    """The controller logic, each flow as the switch gets it: an os-ken OFPFlowMod,
    serialized and parsed back."""

    def __init__(self, plan: NetworkPlan) -> None:
        self.logic = Controller(plan)
        self.nlb = self.logic.nlb

    def flows_for(self, dpid: int) -> list:
        switch = Switch(dpid)
        return [plain_flow(wire(flow_mod(switch, f))) for f in self.logic.flows_for(dpid)]


def overlap_plan() -> NetworkPlan:
    """Both VPCs with an NLB, a group on the NLB and on its targets, an ACL on PrivA."""
    web = group("Web", ingress=(tcp(80), tcp(9000)))
    front = group("Front", ingress=(tcp(80),))
    a = secured(
        (web, front),
        {"WebA2": ("Web",), "WebA3": ("Web",), "WebB2": ("Web",), "NLB-1a": ("Front",)},
        (acl("Acl", ("PrivB",), entry(100, False, 6, ports=(80, 80)), entry(100, True)),),
        plan=nlb_plan(),
    )
    return with_copy(a)


@pytest.fixture(scope="module")
def plan() -> NetworkPlan:
    return overlap_plan()


@pytest.fixture
def fabric(plan) -> FakeFabric:
    return FakeFabric(plan, OnTheWire(plan))


def test_the_fixture_has_same_addresses_and_unique_macs(plan):
    macs = [h.mac for h in plan.attachments()]
    assert len(set(macs)) == len(macs)
    assert plan.host("WebA1").mac == "02:00:0a:00:00:04"  # today's host_mac for space 0
    assert plan.host("b.WebA1").mac == "02:01:0a:00:00:04"
    assert plan.host("WebA1").ip == plan.host("b.WebA1").ip


# The design's spike: each VPC reaches its own copy of an address; the internet gateway keeps
# the two apart by public address, both ways; a VPC reaches the other's public address through
# the internet, with its own public address as the source (as on AWS).
@pytest.mark.parametrize(
    ("src", "dst", "want"),
    [
        ("WebA1", "10.0.3.4", "WebB2"),
        ("b.WebA1", "10.0.3.4", "b.WebB2"),
        ("WebA2", "10.0.2.4", "WebB1"),
        ("b.WebA2", "10.0.2.4", "b.WebB1"),
    ],
)
def test_each_vpc_reaches_its_own_copy_of_an_address(plan, fabric, src, dst, want):
    res = fabric.send(src, ip_packet(plan, src, dst))
    assert res.hosts == [want]
    assert res.delivered[0][1]["eth_dst"] == plan.host(want).mac


@pytest.mark.parametrize(
    ("public", "want"), [("203.0.113.10", "WebA1"), ("203.0.113.20", "b.WebA1")]
)
def test_internet_reaches_the_instance_of_a_public_address(plan, fabric, public, want):
    res = fabric.send("Client1", ip_packet(plan, "Client1", public))
    assert res.hosts == [want]
    assert res.delivered[0][1]["ipv4_dst"] == "10.0.0.4"


@pytest.mark.parametrize(
    ("src", "public"), [("WebA1", "203.0.113.10"), ("b.WebA1", "203.0.113.20")]
)
def test_each_vpc_leaves_with_its_own_public_address(plan, fabric, src, public):
    res = fabric.send(src, ip_packet(plan, src, "198.51.100.10"))
    assert res.hosts == ["Client1"]
    assert res.delivered[0][1]["ipv4_src"] == public


@pytest.mark.parametrize(
    ("src", "dst", "want", "source"),
    [
        ("WebA1", "203.0.113.20", "b.WebA1", "203.0.113.10"),
        ("b.WebA1", "203.0.113.10", "WebA1", "203.0.113.20"),
    ],
)
def test_the_other_vpcs_public_address_is_reached_through_the_internet(
    plan, fabric, src, dst, want, source
):
    res = fabric.send(src, ip_packet(plan, src, dst))
    assert res.hosts == [want]
    assert (res.delivered[0][1]["ipv4_src"], res.delivered[0][1]["ipv4_dst"]) == (
        source,
        "10.0.0.4",
    )


@pytest.mark.parametrize(("src", "want"), [("WebA2", "WebA3"), ("b.WebA2", "b.WebA3")])
def test_arp_and_the_same_subnet_stay_in_the_vpc(plan, fabric, src, want):
    res = fabric.send(src, arp_request(plan, src, "10.0.1.5"))
    mac = res.delivered[0][1]["arp_sha"]
    assert mac == plan.host(want).mac
    pkt = ip_packet(plan, src, "10.0.1.5", eth_dst=mac)
    assert fabric.send(src, pkt).hosts == [want]


@pytest.mark.parametrize("src", ["WebA1", "b.WebA1"])
def test_the_router_and_nlb_nodes_answer_arp_in_each_vpc(plan, fabric, src):
    for target in ("10.0.0.1", "10.0.0.5"):  # PubA's router; NLB-1a / b.NLB-1a
        res = fabric.send(src, arp_request(plan, src, target))
        assert [d[1]["arp_sha"] for d in res.delivered] == [plan.router_mac]


# ---- security groups, network ACLs and NLB listeners in both VPCs -----------------------------
def _tcp(plan: NetworkPlan, src: str, dst: str, port: int, **extra: Any) -> dict[str, Any]:
    return ip_packet(plan, src, dst, tcp_dst=port, **extra)


@pytest.mark.parametrize("vpc", ["", "b."])
def test_groups_let_in_what_their_rules_allow_in_each_vpc(plan, fabric, vpc):
    src, dst = f"{vpc}WebA1", f"{vpc}WebA2"
    assert fabric.send(src, _tcp(plan, src, "10.0.1.4", 80)).hosts == [dst]
    assert fabric.send(src, _tcp(plan, src, "10.0.1.4", 22)).hosts == []


@pytest.mark.parametrize("vpc", ["", "b."])
def test_the_acl_of_each_vpcs_subnet_decides_there(plan, fabric, vpc):
    src = f"{vpc}WebA1"
    assert fabric.send(src, _tcp(plan, src, "10.0.3.4", 80)).hosts == [f"{vpc}WebB2"]
    # 9000 is allowed by the group, denied by PrivB's ACL (inbound: only TCP 80).
    assert fabric.send(src, _tcp(plan, src, "10.0.3.4", 9000)).hosts == []
    # WebA2 is in PrivA: no ACL there, the group allows 9000.
    assert fabric.send(src, _tcp(plan, src, "10.0.1.4", 9000)).hosts == [f"{vpc}WebA2"]


@pytest.mark.parametrize("vpc", ["", "b."])
def test_an_nlb_listener_in_each_vpc_sends_to_its_own_targets(plan, fabric, vpc):
    src = f"{vpc}WebA1"
    targets = {f"{vpc}{n}" for n in ("WebA2", "WebA3", "WebB2")}
    seen = set()
    for sport in range(40000, 40012):
        res = fabric.send(src, _tcp(plan, src, "10.0.0.5", 80, tcp_src=sport))
        assert len(res.hosts) == 1
        assert res.hosts[0] in targets
        seen.add(res.hosts[0])
    assert seen <= targets


@pytest.mark.parametrize(("public", "vpc"), [("203.0.113.12", ""), ("203.0.113.22", "b.")])
def test_internet_reaches_the_nlb_of_a_public_address(plan, fabric, public, vpc):
    res = fabric.send("Client1", _tcp(plan, "Client1", public, 80))
    assert len(res.hosts) == 1
    assert res.hosts[0] in {f"{vpc}{n}" for n in ("WebA2", "WebA3", "WebB2")}


@pytest.mark.parametrize("vpc", ["", "b."])
def test_the_nlb_nodes_group_checks_its_listener_in_each_vpc(plan, fabric, vpc):
    # Front allows TCP 80 only; the NLB's UDP 9000 listener is refused at NLB-1a's group.
    src = f"{vpc}WebA1"
    pkt = ip_packet(plan, src, "10.0.0.5", proto=17, udp_dst=9000)
    assert fabric.send(src, pkt).hosts == []


def test_drop_owners_name_the_vpcs_own_acl_and_node(plan):
    sec = OnTheWire(plan).logic.security
    names = set()
    for s in plan.switches:
        for f in sec.flows_for(s.dpid):
            owner = sec.drop_owner(s.dpid, f.table, f.priority, dict(f.match))
            if owner:
                names.add(owner)
    assert ("nacl-in", "Acl") in names
    assert ("nacl-in", "b.Acl") in names
    assert ("sg-ingress", "NLB-1a") in names
    assert ("sg-ingress", "b.NLB-1a") in names


# ---- one address space: nothing changes ------------------------------------------------------
def test_plans_without_shared_addresses_keep_their_flows():
    import json

    from tests.unit.flows_golden import GOLDEN

    assert everything() == json.loads(GOLDEN.read_text())
