"""Security groups on a fake flow table: stateful per port, with AWS's semantics (allow rules
only, union of groups, replies pass whatever the rules say, a removed rule does not cut an
established flow, peer groups are their members' addresses, the resolver is never filtered)."""

from __future__ import annotations

import random
from ipaddress import IPv4Network

import pytest

from testbed.controllers.flows import (
    TABLE_SG_IN,
    TABLE_SG_IN_RULES,
    TABLE_SG_OUT,
    TABLE_SG_OUT_RULES,
    Ct,
)
from testbed.controllers.security import (
    PRIO_DENY,
    SecurityLogic,
    port_masks,
)
from testbed.plan.network import SgRulePlan
from tests.fake_openflow import arp_request, ip_packet
from tests.security_fixture import (
    ALL,
    fabric,
    group,
    reply_to,
    reprogram,
    secured,
    tcp,
)

WEB = group("Web", ingress=(tcp(80),))
WEB_A2 = "10.0.1.4"
WEB_B2 = "10.0.3.4"


def last_table(res) -> int:
    return res.hops[-1][1]


def test_an_ingress_rule_lets_its_port_in_and_nothing_else():
    plan = secured((WEB,), {"WebA2": ("Web",)})
    fab = fabric(plan)
    assert fab.send("WebB2", ip_packet(plan, "WebB2", WEB_A2, tcp_dst=80)).hosts == ["WebA2"]
    res = fab.send("WebB2", ip_packet(plan, "WebB2", WEB_A2, tcp_dst=22))
    assert res.hosts == []
    assert last_table(res) == TABLE_SG_IN_RULES  # dropped by the group, not the fabric
    # Ungrouped hosts are not filtered at all.
    assert fab.send("WebA2", ip_packet(plan, "WebA2", WEB_B2, tcp_dst=22)).hosts == ["WebB2"]


def test_ingress_is_checked_on_the_receiving_switch_after_the_internet_gateway_nat():
    plan = secured((WEB,), {"WebA1": ("Web",)})
    fab = fabric(plan)
    res = fab.send("Client1", ip_packet(plan, "Client1", "203.0.113.10", tcp_dst=80))
    assert res.hosts == ["WebA1"]
    assert res.delivered[0][1]["ipv4_dst"] == "10.0.0.4"
    res = fab.send("Client1", ip_packet(plan, "Client1", "203.0.113.10", tcp_dst=443))
    assert res.hosts == []
    assert last_table(res) == TABLE_SG_IN_RULES


def test_replies_of_an_allowed_inbound_flow_leave_without_any_egress_rule():
    closed = group("Web", ingress=(tcp(80),), egress=())  # no outbound rule at all
    plan = secured((closed,), {"WebA2": ("Web",)})
    fab = fabric(plan)
    syn = ip_packet(plan, "WebB2", WEB_A2, tcp_dst=80)
    res = fab.send("WebB2", syn)
    assert res.hosts == ["WebA2"]
    back = reply_to(syn, res.delivered[0][1], plan)
    assert fab.send("WebA2", back).hosts == ["WebB2"]
    # A connection of its own is not a reply: no egress rule, dropped at its port.
    res = fab.send("WebA2", ip_packet(plan, "WebA2", WEB_B2, tcp_src=41000, tcp_dst=80))
    assert res.hosts == []
    assert last_table(res) == TABLE_SG_OUT_RULES


def test_replies_of_an_allowed_outbound_flow_come_in_without_any_ingress_rule():
    plan = secured((group("Web"),), {"WebA2": ("Web",)})  # egress all, ingress none
    fab = fabric(plan)
    syn = ip_packet(plan, "WebA2", WEB_B2, tcp_dst=80)
    res = fab.send("WebA2", syn)
    assert res.hosts == ["WebB2"]
    assert fab.send("WebB2", reply_to(syn, res.delivered[0][1], plan)).hosts == ["WebA2"]
    # Not a reply (another port pair): no ingress rule.
    stray = ip_packet(plan, "WebB2", WEB_A2, tcp_src=80, tcp_dst=40001)
    assert fab.send("WebB2", stray).hosts == []


def test_between_two_grouped_ports_both_checks_apply_and_replies_pass_both():
    client = group("Client", ingress=())  # all egress
    server = group("Server", ingress=(tcp(8080, cidr="10.0.1.4/32"),), egress=())
    plan = secured((client, server), {"WebA2": ("Client",), "WebB2": ("Server",)})
    fab = fabric(plan)
    syn = ip_packet(plan, "WebA2", WEB_B2, tcp_dst=8080)
    res = fab.send("WebA2", syn)
    assert res.hosts == ["WebB2"]
    assert fab.send("WebB2", reply_to(syn, res.delivered[0][1], plan)).hosts == ["WebA2"]
    # WebA3 (not 10.0.1.4/32, no groups) may not.
    assert fab.send("WebA3", ip_packet(plan, "WebA3", WEB_B2, tcp_dst=8080)).hosts == []


def test_an_established_packet_takes_one_conntrack_lookup_per_grouped_port():
    client = group("Client")
    server = group("Server", ingress=(tcp(8080),))
    plan = secured((client, server), {"WebA2": ("Client",), "WebB2": ("Server",)})
    fab = fabric(plan)
    syn = ip_packet(plan, "WebA2", WEB_B2, tcp_dst=8080)
    fab.send("WebA2", syn)
    calls: list[Ct] = []
    apply = fab.conntrack.apply

    def counting(action, pkt):
        calls.append(action)
        apply(action, pkt)

    fab.conntrack.apply = counting  # type: ignore[method-assign]
    res = fab.send("WebA2", {**syn, "tcp_flags_nxm": 0x10})  # an ACK of the same flow
    assert res.hosts == ["WebB2"]
    zones = [plan.host("WebA2").sg_zone, plan.host("WebB2").sg_zone]
    assert [(c.zone, c.commit) for c in calls] == [(z, False) for z in zones]


def test_a_removed_rule_does_not_cut_an_established_flow_but_stops_new_ones():
    plan = secured((WEB,), {"WebA2": ("Web",)})
    fab = fabric(plan)
    syn = ip_packet(plan, "WebB2", WEB_A2, tcp_dst=80)
    res = fab.send("WebB2", syn)
    assert res.hosts == ["WebA2"]
    reprogram(fab, secured((group("Web"),), {"WebA2": ("Web",)}))  # ingress rule gone
    plan = fab.plan
    assert fab.send("WebB2", {**syn, "tcp_flags_nxm": 0x10}).hosts == ["WebA2"]
    assert fab.send("WebA2", reply_to(syn, res.delivered[0][1], plan)).hosts == ["WebB2"]
    other = ip_packet(plan, "WebB2", WEB_A2, tcp_src=40002, tcp_dst=80)
    assert fab.send("WebB2", other).hosts == []


def test_several_groups_on_a_port_are_a_union():
    web = group("Web", ingress=(tcp(80),))
    ssh = group("Ssh", ingress=(tcp(22, cidr="10.0.3.0/24"),))
    plan = secured((web, ssh), {"WebA2": ("Web", "Ssh")})
    fab = fabric(plan)
    for port, sender, ok in ((80, "WebB2", True), (22, "WebB2", True), (22, "WebB1", False)):
        pkt = ip_packet(plan, sender, WEB_A2, tcp_dst=port)
        assert fab.send(sender, pkt).hosts == (["WebA2"] if ok else []), (port, sender)


def test_a_peer_group_rule_is_its_members_addresses_and_follows_membership():
    web = group("Web")
    app = group("App", ingress=(SgRulePlan(6, 8080, 8080, group="Web"),))
    members = {"WebA2": ("App",), "WebB1": ("Web",)}
    plan = secured((web, app), members, WebB1={"extra_ips": ("10.0.2.9",)})
    fab = fabric(plan)
    assert fab.send("WebB1", ip_packet(plan, "WebB1", WEB_A2, tcp_dst=8080)).hosts == ["WebA2"]
    second = ip_packet(plan, "WebB1", WEB_A2, tcp_dst=8080, ipv4_src="10.0.2.9")
    assert fab.send("WebB1", second).hosts == ["WebA2"]  # a secondary address is a member's
    assert fab.send("WebB2", ip_packet(plan, "WebB2", WEB_A2, tcp_dst=8080)).hosts == []
    # WebB2 joins Web: its address is now allowed.
    reprogram(fab, secured((web, app), {**members, "WebB2": ("Web",)}))
    plan = fab.plan
    assert fab.send("WebB2", ip_packet(plan, "WebB2", WEB_A2, tcp_dst=8080)).hosts == ["WebA2"]
    assert SecurityLogic(plan).members("Web") == ["10.0.2.4", "10.0.3.4"]


def test_the_default_group_lets_its_members_talk_and_nobody_else_in():
    default = group("VPC.default", ingress=(SgRulePlan(-1, group="VPC.default"),))
    members = {"WebA2": ("VPC.default",), "WebB2": ("VPC.default",)}
    plan = secured((default,), members)
    fab = fabric(plan)
    for proto in (6, 17, 1):
        pkt = ip_packet(plan, "WebA2", WEB_B2, proto=proto)
        assert fab.send("WebA2", pkt).hosts == ["WebB2"], proto
    assert fab.send("WebB1", ip_packet(plan, "WebB1", WEB_B2, proto=17)).hosts == []
    # All egress: a member reaches anyone.
    assert fab.send("WebB2", ip_packet(plan, "WebB2", "10.0.2.4")).hosts == ["WebB1"]


@pytest.mark.parametrize(
    ("rule", "packet", "allowed"),
    [
        (SgRulePlan(17, 53, 53, cidr="0.0.0.0/0"), {"proto": 17, "udp_dst": 53}, True),
        (SgRulePlan(17, 53, 53, cidr="0.0.0.0/0"), {"proto": 17, "udp_dst": 54}, False),
        (SgRulePlan(17, 53, 53, cidr="0.0.0.0/0"), {"proto": 6, "tcp_dst": 53}, False),
        (SgRulePlan(1, 8, -1, cidr="0.0.0.0/0"), {"proto": 1}, True),  # echo, any code
        (SgRulePlan(1, 8, 0, cidr="0.0.0.0/0"), {"proto": 1}, True),
        (SgRulePlan(1, 8, 1, cidr="0.0.0.0/0"), {"proto": 1}, False),
        (SgRulePlan(1, 0, -1, cidr="0.0.0.0/0"), {"proto": 1}, False),  # echo reply only
        (SgRulePlan(1, -1, -1, cidr="0.0.0.0/0"), {"proto": 1}, True),
        (SgRulePlan(-1, cidr="10.0.3.4/32"), {"proto": 17}, True),
        (SgRulePlan(-1, cidr="10.0.3.5/32"), {"proto": 17}, False),
        (SgRulePlan(47, cidr="0.0.0.0/0"), {"proto": 47}, True),  # GRE: no ports
        (SgRulePlan(47, cidr="0.0.0.0/0"), {"proto": 6}, False),
        (tcp(8000, 8100), {"tcp_dst": 7999}, False),
        (tcp(8000, 8100), {"tcp_dst": 8000}, True),
        (tcp(8000, 8100), {"tcp_dst": 8100}, True),
        (tcp(8000, 8100), {"tcp_dst": 8101}, False),
        (tcp(0, 65535), {"tcp_dst": 1}, True),
        (SgRulePlan(6, -1, -1, cidr="0.0.0.0/0"), {"tcp_dst": 9}, True),
    ],
)
def test_protocols_ports_and_icmp_types(rule, packet, allowed):
    plan = secured((group("G", ingress=(rule,)),), {"WebA2": ("G",)})
    fab = fabric(plan)
    assert fab.send("WebB2", ip_packet(plan, "WebB2", WEB_A2, **packet)).hosts == (
        ["WebA2"] if allowed else []
    )


def test_port_ranges_become_the_fewest_masked_matches():
    assert port_masks(80, 80) == [(80, 0xFFFF)]
    assert port_masks(0, 65535) == [(0, 0)]
    assert port_masks(1024, 65535) == [
        (1024, 0xFC00),
        (2048, 0xF800),
        (4096, 0xF000),
        (8192, 0xE000),
        (16384, 0xC000),
        (32768, 0x8000),
    ]
    rnd = random.Random(10)
    for _ in range(300):
        low = rnd.randrange(0, 65536)
        high = rnd.randrange(low, 65536)
        pairs = port_masks(low, high)
        covered = [p for v, m in pairs for p in range(v, v + (0xFFFF & ~m) + 1)]
        assert covered == list(range(low, high + 1))
        assert all(v & ~m & 0xFFFF == 0 for v, m in pairs)
        assert len(pairs) <= 30


def test_arp_and_the_resolver_are_never_filtered():
    plan = secured((), {"WebA2": ()})  # a port whose groups allow nothing at all
    fab = fabric(plan)
    res = fab.send("WebA2", arp_request(plan, "WebA2", "10.0.1.5"))
    assert res.hosts == ["WebA2"]  # answered
    query = ip_packet(plan, "WebA2", "10.0.0.2", proto=17)
    res = fab.send("WebA2", query)
    assert res.hosts == ["LabDNS"]
    answer = reply_to(query, res.delivered[0][1], plan)
    assert fab.send("LabDNS", answer).hosts == ["WebA2"]
    assert fab.send("WebA2", ip_packet(plan, "WebA2", WEB_B2)).hosts == []
    assert fab.send("WebB2", ip_packet(plan, "WebB2", WEB_A2)).hosts == []


def test_related_icmp_errors_of_a_tracked_flow_pass():
    plan = secured((group("Web"),), {"WebA2": ("Web",)})  # no ingress rule
    fab = fabric(plan)
    udp = ip_packet(plan, "WebA2", WEB_B2, proto=17, udp_dst=5000)
    assert fab.send("WebA2", udp).hosts == ["WebB2"]
    quoted = (17, WEB_A2, 40000, WEB_B2, 5000)
    error = ip_packet(plan, "WebB2", WEB_A2, proto=1, icmpv4_type=3, icmpv4_code=3)
    assert fab.send("WebB2", {**error, "icmp_error_of": quoted}).hosts == ["WebA2"]
    unrelated = (17, WEB_A2, 40000, WEB_B2, 5001)
    assert fab.send("WebB2", {**error, "icmp_error_of": unrelated}).hosts == []


def test_a_second_interface_has_its_own_port_zone_and_groups():
    from dataclasses import replace

    from testbed.plan.network import InterfacePlan, host_mac

    base = secured((WEB, group("Mgmt", ingress=(tcp(22),))), {"WebA2": ("Web",)})
    eth1 = InterfacePlan(
        "eth1",
        "10.0.3.20",
        24,
        "10.0.3.1",
        host_mac("10.0.3.20"),
        base.host("WebB2").switch,
        40,
        "t-veth-x",
        "us-east-1b",
        "PrivB",
        "VPC",
        groups=("Mgmt",),
        sg_zone=0x4000 + 64 + 9,
    )
    hosts = tuple(replace(h, interfaces=(eth1,)) if h.name == "WebA2" else h for h in base.hosts)
    plan = replace(base, hosts=hosts)
    logic = SecurityLogic(plan)
    assert {p.name for p in logic.ports} == {"WebA2", "WebA2/eth1"}
    dpid = plan.switch(eth1.switch).dpid
    flows = logic.flows_for(dpid)
    rules = [f for f in flows if f.table == TABLE_SG_IN_RULES and dict(f.match).get("tcp_dst")]
    assert [dict(f.match)["tcp_dst"] for f in rules] == [22]
    assert {dict(f.match)["eth_dst"] for f in rules} == {eth1.mac}
    assert any(f.table == TABLE_SG_OUT and dict(f.match).get("in_port") == 40 for f in flows)


def test_drop_entries_name_their_port_for_the_counters():
    plan = secured((WEB,), {"WebA2": ("Web",), "WebB1": ("Web",)})
    logic = SecurityLogic(plan)
    found = {}
    for s in plan.switches:
        for f in logic.flows_for(s.dpid):
            owner = logic.drop_owner(s.dpid, f.table, f.priority, dict(f.match))
            if owner:
                found.setdefault(owner, []).append((f.table, f.priority))
                assert f.goto is None
                assert not f.actions
    assert set(found) == {
        ("sg-egress", "WebA2"),
        ("sg-ingress", "WebA2"),
        ("sg-egress", "WebB1"),
        ("sg-ingress", "WebB1"),
    }
    assert all(
        v in ([(TABLE_SG_OUT_RULES, PRIO_DENY)], [(TABLE_SG_IN_RULES, PRIO_DENY)])
        for v in found.values()
    )
    # As the flow statistics spell a match: by the port on that switch, and by MAC.
    a2 = plan.host("WebA2")
    dpid = plan.switch(a2.switch).dpid
    stats = {"in_port": a2.port}
    assert logic.drop_owner(dpid, TABLE_SG_OUT_RULES, PRIO_DENY, stats) == ("sg-egress", "WebA2")
    other = next(s.dpid for s in plan.switches if s.dpid != dpid)
    assert logic.drop_owner(other, TABLE_SG_OUT_RULES, PRIO_DENY, stats) is None
    ingress = {"eth_dst": a2.mac}
    assert logic.drop_owner(dpid, TABLE_SG_IN_RULES, PRIO_DENY, ingress) == ("sg-ingress", "WebA2")
    assert logic.drop_owner(dpid, TABLE_SG_IN, 0, {}) is None


def test_every_filtered_port_needs_a_zone():
    plan = secured((WEB,), {"WebA2": ("Web",)})
    from dataclasses import replace

    broken = replace(
        plan,
        hosts=tuple(replace(h, sg_zone=None) if h.name == "WebA2" else h for h in plan.hosts),
    )
    with pytest.raises(ValueError, match="WebA2"):
        SecurityLogic(broken)


def test_no_groups_no_security_group_flows_beyond_the_table_defaults():
    plan = secured()
    logic = SecurityLogic(plan)
    for s in plan.switches:
        flows = logic.flows_for(s.dpid)
        assert {(f.table, f.priority) for f in flows} == {
            (TABLE_SG_OUT, 0),
            (TABLE_SG_OUT_RULES, 0),
            (TABLE_SG_IN, 0),
            (TABLE_SG_IN_RULES, 0),
        }


def test_rule_matches_use_whole_networks():
    logic = SecurityLogic(secured((WEB,), {"WebA2": ("Web",)}))
    (m,) = logic.rule_matches(tcp(80, cidr="10.1.0.0/16"), "ipv4_src")
    assert m["ipv4_src"] == ("10.1.0.0", str(IPv4Network("10.1.0.0/16").netmask))
    (m,) = logic.rule_matches(ALL, "ipv4_dst")
    assert "ipv4_dst" not in m
    assert "ip_proto" not in m


def nlb_with_groups(nlb_group):
    from tests.nlb_fixture import nlb_plan

    return secured((nlb_group,), {"NLB-1a": ("Nlb",), "NLB-1b": ("Nlb",)}, plan=nlb_plan())


def test_an_nlb_with_groups_checks_listener_traffic_where_the_fabric_steers_it():
    from testbed.controllers.flows import TABLE_SG_LB

    plan = nlb_with_groups(group("Nlb", ingress=(tcp(80, cidr="198.51.100.10/32"),)))
    fab = fabric(plan)
    first = ip_packet(plan, "Client1", "203.0.113.12", tcp_src=42000, tcp_dst=80)
    res = fab.send("Client1", first)
    assert len(res.hosts) == 1  # a target got it, through the node's group
    target = res.hosts[0]
    assert (fab.by_name[plan.host("Client1").switch], TABLE_SG_LB) in res.hops
    again = fab.send("Client1", {**first, "tcp_flags_nxm": 0x10})
    assert again.hosts == [target]  # established: the same target
    res = fab.send("Client2", ip_packet(plan, "Client2", "203.0.113.12", tcp_dst=80))
    assert res.hosts == []
    assert last_table(res) == TABLE_SG_LB
    udp = ip_packet(plan, "Client1", "203.0.113.12", proto=17, udp_dst=9000)
    assert fab.send("Client1", udp).hosts == []  # no rule for the UDP listener
    inside = ip_packet(plan, "WebB1", "10.0.2.5", tcp_dst=80)
    assert fab.send("WebB1", inside).hosts == []  # the private address: the same group
    logic = SecurityLogic(plan)
    dpid = fab.by_name[plan.host("Client1").switch]
    deny = {"eth_type": 0x0800, "ipv4_dst": "10.0.0.5", "ct_zone": plan.host("NLB-1a").sg_zone}
    assert logic.drop_owner(dpid, TABLE_SG_LB, PRIO_DENY, deny) == ("sg-ingress", "NLB-1a")


def test_an_nlb_without_groups_stays_open():
    from testbed.controllers.flows import TABLE_SG_LB
    from tests.nlb_fixture import nlb_plan

    plan = secured(plan=nlb_plan())
    fab = fabric(plan)
    res = fab.send("Client2", ip_packet(plan, "Client2", "203.0.113.12", tcp_dst=80))
    assert len(res.hosts) == 1
    assert all(
        f.priority == 0
        for s in plan.switches
        for f in SecurityLogic(plan).flows_for(s.dpid)
        if f.table == TABLE_SG_LB
    )


def test_a_port_whose_rules_outgrow_the_priorities_is_refused():
    many = group(
        "Many",
        ingress=tuple(tcp(1, 65534, cidr=f"10.{i // 250}.{i % 250}.0/24") for i in range(2100)),
    )
    plan = secured((many,), {"WebA2": ("Many",)})
    logic = SecurityLogic(plan)
    dpid = plan.switch(plan.host("WebA2").switch).dpid
    with pytest.raises(ValueError, match="WebA2: its groups' ingress rules make"):
        logic.flows_for(dpid)
