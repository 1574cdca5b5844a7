"""testbed.plan.reach: AWS's verdict for a packet and its reply, on hand-built plans.

The plan is tests/handmade.py's two-AZ VPC (PubA/PubB public with WebA1/WebB1, PrivA with
WebA2/WebA3, PrivB with WebB2, two internet clients) with security groups, a network ACL, a
NAT gateway and a second interface added through the plan contract's types."""

from __future__ import annotations

from dataclasses import replace

import pytest

from testbed.plan import reach
from testbed.plan.network import (
    HostPlan,
    InterfacePlan,
    NaclEntryPlan,
    NaclPlan,
    NetworkPlan,
    RoutePlan,
    SecurityGroupPlan,
    SgRulePlan,
    build_plan,
)
from tests.handmade import two_az_model

ALL_OUT = (SgRulePlan(-1, cidr="0.0.0.0/0"),)
TCP, UDP, ICMP = 6, 17, 1

ALB_SG = SecurityGroupPlan(
    "AlbSG", "sg-alb", "VPC", ingress=(SgRulePlan(TCP, 80, 80, cidr="0.0.0.0/0"),), egress=ALL_OUT
)
WEB_SG = SecurityGroupPlan(
    "WebSG", "sg-web", "VPC", ingress=(SgRulePlan(TCP, 80, 80, group="AlbSG"),), egress=ALL_OUT
)
DEFAULT_SG = SecurityGroupPlan(
    "VPC.default",
    "sg-default",
    "VPC",
    ingress=(SgRulePlan(-1, group="VPC.default"),),
    egress=ALL_OUT,
)
PRIVATE_NACL = NaclPlan(
    "PrivNacl",
    "VPC",
    ("PrivA", "PrivB"),
    (
        NaclEntryPlan(100, False, TCP, "10.0.0.0/16", True, ports=(80, 80)),
        NaclEntryPlan(110, False, TCP, "0.0.0.0/0", True, ports=(1024, 65535)),
        NaclEntryPlan(100, True, -1, "0.0.0.0/0", True),
    ),
)


def base() -> NetworkPlan:
    return build_plan(two_az_model(), "t")


def with_hosts(plan: NetworkPlan, **changes: dict) -> NetworkPlan:
    hosts = tuple(replace(h, **changes[h.name]) if h.name in changes else h for h in plan.hosts)
    return replace(plan, hosts=hosts)


def with_subnets(plan: NetworkPlan, **changes: dict) -> NetworkPlan:
    subnets = tuple(replace(s, **changes[s.name]) if s.name in changes else s for s in plan.subnets)
    return replace(plan, subnets=subnets)


def nat_gateway(plan: NetworkPlan, public_ip: str | None = "203.0.113.20") -> NetworkPlan:
    """NatA in PubA; PrivA and PrivB send 0.0.0.0/0 to it."""
    web = plan.host("WebA1")
    gw = replace(
        web,
        name="NatA",
        kind="natgw",
        ip="10.0.0.9",
        mac="02:00:0a:00:00:09",
        port=web.port + 20,
        public_ip=public_ip,
        role=None,
        groups=None,
        source_dest_check=False,
    )
    plan = replace(plan, hosts=(*plan.hosts, gw))
    routes = (RoutePlan("10.0.0.0/16", "local"), RoutePlan("0.0.0.0/0", "nat", "NatA"))
    return with_subnets(plan, PrivA={"routes": routes}, PrivB={"routes": routes})


@pytest.fixture
def web() -> NetworkPlan:
    """WebA1 stands for an ALB node (AlbSG); WebA2/WebB2 web servers (WebSG) behind the
    private subnets' ACL; WebB1 in the default group; WebA3 and the clients ungrouped."""
    plan = replace(
        base(), security_groups=(ALB_SG, WEB_SG, DEFAULT_SG), network_acls=(PRIVATE_NACL,)
    )
    plan = with_hosts(
        plan,
        WebA1={"groups": ("AlbSG",), "sg_zone": 64},
        WebA2={"groups": ("WebSG",), "sg_zone": 65},
        WebB2={"groups": ("WebSG",), "sg_zone": 66},
        WebB1={"groups": ("VPC.default",), "sg_zone": 67},
    )
    plan = with_subnets(plan, PrivA={"nacl": "PrivNacl"}, PrivB={"nacl": "PrivNacl"})
    return nat_gateway(plan)


def without_acls(plan: NetworkPlan) -> NetworkPlan:
    return with_subnets(plan, PrivA={"nacl": None}, PrivB={"nacl": None})


def judge(plan: NetworkPlan, src: str, dst: str, proto: str = "tcp", port: int | None = 80):
    return reach.verdict(plan, plan.host(src), dst, proto, port)


# --- without groups or ACLs: the route layer alone (what the lab measured before) ---------


def test_internet_client_reaches_public_address_only():
    plan = base()
    assert judge(plan, "Client1", "203.0.113.10", "icmp").passes
    v = judge(plan, "Client1", "10.0.0.4", "icmp")
    assert (v.passes, v.layer) == (False, reach.ROUTE)
    assert "private address" in v.detail


def test_private_instance_without_public_address_has_no_internet():
    v = judge(base(), "WebA2", "198.51.100.10", "icmp")
    assert (v.passes, v.layer) == (False, reach.ROUTE)
    assert "no route" in v.detail  # PrivA's table has only the local route
    v = judge(base(), "WebA1", "198.51.100.10", "icmp")
    assert v.passes
    assert any("source becomes 203.0.113.10" in n for n in v.notes)


def test_local_route_reaches_every_subnet_of_the_vpc():
    plan = base()
    assert judge(plan, "WebA2", "10.0.3.4", "udp", 9000).passes
    v = judge(plan, "WebA2", "10.0.3.99", "icmp")
    assert (v.passes, v.layer, v.detail) == (False, reach.ROUTE, "nothing at 10.0.3.99")


# --- security groups ---------------------------------------------------------------------


def test_ingress_rule_naming_a_group_admits_its_members_only(web):
    assert judge(web, "WebA1", "10.0.1.4").passes  # AlbSG member -> WebSG:80
    v = judge(web, "WebB1", "10.0.1.4")  # default group: not a member of AlbSG
    assert (v.passes, v.layer, v.name, v.reply) == (False, reach.SG_INGRESS, "WebSG", False)
    assert "10.0.2.4" in v.detail
    assert v.text.startswith("dropped by security group ingress (WebSG)")


def test_ingress_rule_port_and_protocol_must_match(web):
    web = without_acls(web)
    assert judge(web, "WebA1", "10.0.1.4", "tcp", 22).layer == reach.SG_INGRESS
    assert judge(web, "WebA1", "10.0.1.4", "udp", 80).layer == reach.SG_INGRESS
    assert judge(web, "WebA1", "10.0.1.4", "icmp", None).layer == reach.SG_INGRESS


def test_default_group_members_talk_to_each_other_but_not_the_internet(web):
    plan = with_hosts(without_acls(web), WebA3={"groups": ("VPC.default",), "sg_zone": 68})
    assert judge(plan, "WebA3", "10.0.2.4", "udp", 9000).passes
    v = judge(plan, "Client1", "203.0.113.11", "icmp")  # WebB1's public address
    assert (v.layer, v.name) == (reach.SG_INGRESS, "VPC.default")
    assert "198.51.100.10" in v.detail  # the client's own address: the IGW keeps it


def test_several_groups_are_a_union(web):
    plan = with_hosts(web, WebB1={"groups": ("VPC.default", "AlbSG"), "sg_zone": 67})
    assert judge(plan, "WebB1", "10.0.1.4").passes  # now a member of AlbSG
    assert judge(plan, "Client1", "203.0.113.11").passes  # AlbSG: 80 from anywhere
    v = judge(plan, "Client1", "203.0.113.11", "tcp", 81)
    assert v.name == "VPC.default, AlbSG"


def test_egress_rules_of_the_source_drop_first(web):
    only_https = SecurityGroupPlan(
        "Https", "sg-https", "VPC", egress=(SgRulePlan(TCP, 443, 443, cidr="0.0.0.0/0"),)
    )
    plan = replace(web, security_groups=(*web.security_groups, only_https))
    plan = with_hosts(plan, WebA3={"groups": ("Https",), "sg_zone": 68})
    assert judge(plan, "WebA3", "198.51.100.10", "tcp", 443).passes
    v = judge(plan, "WebA3", "10.0.3.99", "tcp", 80)  # nothing there: egress decides first
    assert (v.layer, v.name) == (reach.SG_EGRESS, "Https")
    assert "egress to 10.0.3.99 tcp/80" in v.detail


def test_a_group_without_egress_rules_sends_nothing(web):
    closed = SecurityGroupPlan("Closed", "sg-closed", "VPC")
    plan = replace(web, security_groups=(*web.security_groups, closed))
    plan = with_hosts(plan, WebA3={"groups": ("Closed",), "sg_zone": 68})
    assert judge(plan, "WebA3", "10.0.1.4", "icmp").layer == reach.SG_EGRESS


def test_icmp_rules_match_type_and_code(web):
    def allowing(icmp_type: int, code: int) -> NetworkPlan:
        g = SecurityGroupPlan(
            "Ping",
            "sg-ping",
            "VPC",
            ingress=(SgRulePlan(ICMP, icmp_type, code, cidr="10.0.0.0/8"),),
        )
        plan = replace(web, security_groups=(*web.security_groups, g))
        return with_hosts(plan, WebA3={"groups": ("Ping",), "sg_zone": 68})

    assert judge(allowing(-1, -1), "WebA2", "10.0.1.5", "icmp").passes
    assert judge(allowing(8, -1), "WebA2", "10.0.1.5", "icmp").passes
    assert judge(allowing(8, 0), "WebA2", "10.0.1.5", "icmp").passes
    assert judge(allowing(0, -1), "WebA2", "10.0.1.5", "icmp").layer == reach.SG_INGRESS


def test_the_resolver_is_never_filtered(web):
    closed = SecurityGroupPlan("Closed", "sg-closed", "VPC")
    plan = replace(web, security_groups=(*web.security_groups, closed))
    plan = with_hosts(plan, WebA2={"groups": ("Closed",), "sg_zone": 65})
    v = judge(plan, "WebA2", "10.0.0.2", "udp", 53)
    assert v.passes
    assert any("resolver" in n for n in v.notes)


# --- network ACLs: stateless, routed traffic only ------------------------------------------


def test_stateful_groups_need_no_rule_for_replies_but_the_acl_does(web):
    # WebSG has no ingress rule for the client's answers; PrivNacl's rule 110 lets them in.
    v = judge(web, "WebA2", "198.51.100.10", "tcp", 80)
    assert v.passes, v.text
    assert any("NAT gateway NatA" in n for n in v.notes)
    entries = tuple(e for e in PRIVATE_NACL.entries if e.rule_number != 110)
    plan = replace(web, network_acls=(replace(PRIVATE_NACL, entries=entries),))
    v = judge(plan, "WebA2", "198.51.100.10", "tcp", 80)
    assert (v.passes, v.reply, v.layer, v.name) == (False, True, reach.NACL_IN, "PrivNacl")
    assert v.text.startswith("reply dropped by NACL PrivNacl inbound")
    assert "from 198.51.100.10 tcp/32768-60999" in v.detail
    assert v.short == "reply:nacl-in"


def test_ping_reply_needs_an_icmp_entry(web):
    v = judge(web, "WebA2", "198.51.100.10", "icmp")
    assert (v.reply, v.layer, v.name) == (True, reach.NACL_IN, "PrivNacl")
    assert "echo-reply" in v.detail
    icmp = NaclEntryPlan(120, False, ICMP, "0.0.0.0/0", True, icmp=(0, -1))
    plan = replace(
        web, network_acls=(replace(PRIVATE_NACL, entries=(*PRIVATE_NACL.entries, icmp)),)
    )
    assert judge(plan, "WebA2", "198.51.100.10", "icmp").passes


def test_request_denied_inbound_by_rule_number_order(web):
    deny = NaclEntryPlan(50, False, TCP, "10.0.0.0/24", False, ports=(0, 65535))
    plan = replace(
        web, network_acls=(replace(PRIVATE_NACL, entries=(deny, *PRIVATE_NACL.entries)),)
    )
    v = judge(plan, "WebA1", "10.0.1.4")
    assert (v.passes, v.reply, v.layer, v.name) == (False, False, reach.NACL_IN, "PrivNacl")
    assert v.detail.startswith("rule 50 denies from 10.0.0.4 tcp/80")
    assert judge(plan, "WebB1", "10.0.3.4", "tcp", 80).layer == reach.SG_INGRESS  # 10.0.2.x


def test_implicit_final_deny(web):
    v = judge(web, "WebA1", "10.0.1.4", "udp", 80)  # no udp entry inbound
    assert (v.layer, v.name) == (reach.NACL_IN, "PrivNacl")
    assert "no rule allows it (rule *)" in v.detail


def test_outbound_acl_of_the_source_subnet(web):
    out = NaclPlan(
        "PubNacl",
        "VPC",
        ("PubB",),
        (NaclEntryPlan(100, True, UDP, "0.0.0.0/0", True, ports=(0, 65535)),),
    )
    plan = replace(web, network_acls=(PRIVATE_NACL, out))
    plan = with_subnets(plan, PubB={"nacl": "PubNacl"})
    v = judge(plan, "WebB1", "10.0.0.4", "tcp", 80)
    assert (v.layer, v.name, v.reply) == (reach.NACL_OUT, "PubNacl", False)


def test_same_subnet_traffic_never_meets_an_acl(web):
    deny_all = replace(PRIVATE_NACL, entries=())
    plan = with_hosts(replace(web, network_acls=(deny_all,)), WebA2={"groups": None})
    assert judge(plan, "WebA3", "10.0.1.4", "udp", 9000).passes  # both in PrivA
    v = judge(plan, "WebB2", "10.0.1.4", "udp", 9000)
    assert (v.layer, v.name) == (reach.NACL_OUT, "PrivNacl")  # PrivB's outbound first


def test_partial_ephemeral_rule_drops_replies_to_the_ports_it_misses(web):
    entries = tuple(
        replace(e, ports=(49152, 65535)) if e.rule_number == 110 and not e.egress else e
        for e in PRIVATE_NACL.entries
    )
    plan = replace(web, network_acls=(replace(PRIVATE_NACL, entries=entries),))
    v = judge(plan, "WebA2", "198.51.100.10", "tcp", 443)
    assert (v.reply, v.layer) == (True, reach.NACL_IN)
    assert "ports 32768-49151" in v.detail


# --- NAT gateways, internet gateway, extra interfaces --------------------------------------


def test_private_nat_gateway_cannot_reach_the_internet(web):
    plan = with_hosts(web, NatA={"public_ip": None})
    v = judge(plan, "WebA2", "198.51.100.10")
    assert (v.layer, v.reply) == (reach.ROUTE, False)
    assert "NatA has no public address" in v.detail


def test_nothing_from_the_internet_opens_a_connection_through_a_nat_gateway(web):
    v = judge(web, "Client1", "203.0.113.20")
    assert v.layer == reach.ROUTE
    assert "NAT gateway" in v.detail


def test_reply_needs_a_route_back_through_the_internet_gateway(web):
    # WebA2 has a public address (an EIP), but PrivA sends 0.0.0.0/0 to the NAT gateway.
    plan = with_hosts(without_acls(web), WebA2={"public_ip": "203.0.113.30", "groups": None})
    v = judge(plan, "Client1", "203.0.113.30")
    assert (v.passes, v.layer, v.reply) == (False, reach.ROUTE, True)
    assert "no way back to 198.51.100.10" in v.detail


def test_public_address_of_a_vpc_host_is_seen_with_the_senders_public_address(web):
    allow_public = SecurityGroupPlan(
        "FromA1", "sg-a1", "VPC", ingress=(SgRulePlan(TCP, 80, 80, cidr="203.0.113.10/32"),)
    )
    plan = replace(web, security_groups=(*web.security_groups, allow_public))
    plan = with_hosts(plan, WebB1={"groups": ("FromA1",), "sg_zone": 67})
    assert judge(plan, "WebA1", "203.0.113.11").passes  # hairpin: source 203.0.113.10
    assert judge(plan, "WebA1", "10.0.2.4").layer == reach.SG_INGRESS  # source 10.0.0.4


def test_extra_interface_has_its_own_subnet_groups_and_source_choice(web):
    eth1 = InterfacePlan(
        "eth1",
        "10.0.3.10",
        24,
        "10.0.3.1",
        "02:00:0a:00:03:0a",
        "tb-t-az2",
        40,
        "v-eth1",
        "us-east-1b",
        "PrivB",
        "VPC",
        groups=("AlbSG",),
        sg_zone=70,
    )
    plan = with_hosts(web, WebA3={"interfaces": (eth1,)})
    host = plan.host("WebA3")
    src = reach.source_attachment(plan, host, "10.0.3.4")
    assert (src.name, src.ip) == ("WebA3/eth1", "10.0.3.10")
    assert reach.source_attachment(plan, host, "10.0.2.4").name == "WebA3"
    # From eth1 (AlbSG, same subnet as WebB2: no ACL) WebB2's WebSG lets port 80 in.
    assert reach.verdict(plan, src, "10.0.3.4", "tcp", 80).passes
    # To eth1's address: its own groups (AlbSG: tcp/80 from anywhere), PrivB's ACL.
    assert judge(plan, "WebA1", "10.0.3.10").passes
    assert judge(plan, "WebA1", "10.0.3.10", "tcp", 22).layer == reach.NACL_IN


def test_tcp_and_udp_need_a_port(web):
    with pytest.raises(ValueError, match="needs a port"):
        reach.verdict(web, web.host("WebA1"), "10.0.1.4", "tcp", None)


def test_host_plan_type_is_the_contracts():
    assert reach.source_attachment(base(), base().host("WebA1"), "10.0.0.9").name == "WebA1"
    assert isinstance(base().host("WebA1"), HostPlan)


def test_multi_homed_host_answers_from_each_interface_by_that_interface(web):
    eth1 = InterfacePlan(
        "eth1",
        "10.0.3.10",
        24,
        "10.0.3.1",
        "02:00:0a:00:03:0a",
        "tb-t-az2",
        40,
        "v-eth1",
        "us-east-1b",
        "PrivB",
        "VPC",
    )
    plan = with_hosts(without_acls(web), WebA3={"interfaces": (eth1,)})
    # WebB2 (10.0.3.4) shares eth1's subnet; its connection to eth0's address is answered
    # by eth0 all the same (per-interface policy routing, as Amazon Linux sets it up).
    assert judge(plan, "WebB2", "10.0.1.5", "tcp", 22).passes
    assert judge(plan, "WebB1", "10.0.3.10", "tcp", 22).passes
