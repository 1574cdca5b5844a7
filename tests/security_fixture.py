"""Hand-built plans with security groups and network ACLs (the plan contract's types), over
tests/handmade.py's two-AZ VPC, and a fake fabric running the whole controller logic.

Hosts of two_az_model(): WebA1 10.0.0.4 (PubA), WebA2 10.0.1.4 and WebA3 10.0.1.5 (PrivA),
WebB1 10.0.2.4 (PubB), WebB2 10.0.3.4 (PrivB), Client1/Client2 on the internet, LabDNS at
10.0.0.2 (the VPC's resolver)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from testbed.controllers.forwarding import Forwarding
from testbed.controllers.nlb import NlbLogic
from testbed.controllers.security import SecurityLogic
from testbed.plan.network import (
    NaclEntryPlan,
    NaclPlan,
    NetworkPlan,
    SecurityGroupPlan,
    SgRulePlan,
    build_plan,
)
from tests.fake_openflow import FakeFabric
from tests.handmade import two_az_model

ZONE_BASE = 0x4000
SG_ZONE_OFFSET = 64
ALL = SgRulePlan(-1, cidr="0.0.0.0/0")  # a new group's egress rule


def tcp(low: int, high: int | None = None, cidr: str = "0.0.0.0/0", **kw: Any) -> SgRulePlan:
    return SgRulePlan(6, low, low if high is None else high, cidr=cidr, **kw)


def group(
    name: str, ingress: tuple[SgRulePlan, ...] = (), egress: tuple[SgRulePlan, ...] = (ALL,)
) -> SecurityGroupPlan:
    return SecurityGroupPlan(name, f"sg-{name.lower()}", "VPC", ingress, egress)


def base_plan() -> NetworkPlan:
    return build_plan(two_az_model(), "t", zone_base=ZONE_BASE)


def secured(
    groups: tuple[SecurityGroupPlan, ...] = (),
    members: dict[str, tuple[str, ...]] | None = None,
    nacls: tuple[NaclPlan, ...] = (),
    plan: NetworkPlan | None = None,
    **host_changes: dict[str, Any],
) -> NetworkPlan:
    """The two-AZ plan with these groups (members: host -> its groups; each filtered host
    gets its own zone, as build_plan numbers them) and ACLs (associated with their subnets).
    host_changes: host name -> more fields to replace (extra_ips, ...)."""
    plan = plan or base_plan()
    members = members or {}
    hosts = []
    k = 0
    for h in plan.hosts:
        changes = dict(host_changes.get(h.name, {}))
        if h.name in members:
            changes.update(groups=members[h.name], sg_zone=ZONE_BASE + SG_ZONE_OFFSET + k)
            k += 1
        hosts.append(replace(h, **changes))
    nacl_of = {s: n.name for n in nacls for s in n.subnets}
    subnets = tuple(replace(s, nacl=nacl_of.get(s.name)) for s in plan.subnets)
    return replace(
        plan,
        hosts=tuple(hosts),
        subnets=subnets,
        security_groups=groups,
        network_acls=nacls,
    )


def acl(name: str, subnets: tuple[str, ...], *entries: NaclEntryPlan) -> NaclPlan:
    return NaclPlan(name, "VPC", subnets, tuple(sorted(entries, key=lambda e: e.rule_number)))


def entry(
    number: int,
    egress: bool,
    protocol: int = -1,
    cidr: str = "0.0.0.0/0",
    allow: bool = True,
    ports: tuple[int, int] | None = None,
    icmp: tuple[int, int] | None = None,
) -> NaclEntryPlan:
    return NaclEntryPlan(number, egress, protocol, cidr, allow, ports, icmp)


class Controller:
    """What LabApp.desired_flows programs: forwarding, NLBs, groups and ACLs."""

    def __init__(self, plan: NetworkPlan) -> None:
        self.forwarding = Forwarding(plan)
        self.nlb = NlbLogic(plan, table_size=61)
        self.security = SecurityLogic(plan)

    def flows_for(self, dpid: int) -> list:
        return (
            self.forwarding.flows_for(dpid)
            + self.nlb.flows_for(dpid)
            + self.security.flows_for(dpid)
        )


def fabric(plan: NetworkPlan) -> FakeFabric:
    return FakeFabric(plan, Controller(plan))


def reprogram(fab: FakeFabric, plan: NetworkPlan) -> None:
    """The controller now programs `plan` (a rule changed); conntrack keeps its entries."""
    fab.plan = plan
    fab.logic = Controller(plan)
    fab.reprogram()


def reply_to(pkt: dict[str, Any], delivered: dict[str, Any], plan: NetworkPlan) -> dict:
    """The answer the receiver of `delivered` sends back (ports swapped, to the router
    unless the two are on one segment), as built from what it received."""
    back = dict(delivered)
    back["ipv4_src"], back["ipv4_dst"] = delivered["ipv4_dst"], delivered["ipv4_src"]
    for a, b in (("tcp_src", "tcp_dst"), ("udp_src", "udp_dst")):
        if a in back:
            back[a], back[b] = delivered[b], delivered[a]
    if back.get("ip_proto") == 1:
        back["icmpv4_type"] = 0  # echo reply
    if back.get("ip_proto") == 6:
        back["tcp_flags_nxm"] = 0x12  # SYN+ACK
    sender = next(h for h in plan.hosts if h.mac == delivered["eth_dst"])
    back["eth_src"] = sender.mac
    routed = pkt["eth_dst"] == plan.router_mac
    back["eth_dst"] = plan.router_mac if routed else pkt["eth_src"]
    back["ttl"] = 64
    return back
