"""Network ACLs on a fake flow table: stateless, per subnet edge, by rule number, first match
wins, implicit final deny; same-subnet traffic and the resolver are not filtered."""

from __future__ import annotations

import pytest

from testbed.controllers.flows import TABLE_NACL_IN, TABLE_NACL_OUT
from testbed.controllers.security import NACL_TOP, PRIO_NACL_DENY, SecurityLogic
from tests.fake_openflow import ip_packet
from tests.security_fixture import (
    acl,
    entry,
    fabric,
    group,
    reply_to,
    secured,
    tcp,
)

WEB_A2, WEB_A3, WEB_B1, WEB_B2 = "10.0.1.4", "10.0.1.5", "10.0.2.4", "10.0.3.4"
VPC = "10.0.0.0/16"
EPHEMERAL = (1024, 65535)


def last_table(res) -> int:
    return res.hops[-1][1]


def web_acl(reply_ports: tuple[int, int] | None) -> tuple:
    """PrivA's ACL: in, TCP 80 from the VPC; out, TCP to reply_ports (None: nothing)."""
    entries = [entry(100, False, 6, VPC, ports=(80, 80))]
    if reply_ports:
        entries.append(entry(100, True, 6, VPC, ports=reply_ports))
    return (acl("PrivAcl", ("PrivA",), *entries),)


def test_inbound_entries_and_the_implicit_deny():
    plan = secured(nacls=web_acl(EPHEMERAL))
    fab = fabric(plan)
    assert fab.send("WebB2", ip_packet(plan, "WebB2", WEB_A2, tcp_dst=80)).hosts == ["WebA2"]
    res = fab.send("WebB2", ip_packet(plan, "WebB2", WEB_A2, tcp_dst=22))
    assert res.hosts == []
    assert last_table(res) == TABLE_NACL_IN
    res = fab.send("WebB2", ip_packet(plan, "WebB2", WEB_A2, proto=17, udp_dst=80))
    assert res.hosts == []


def test_stateless_a_missing_ephemeral_rule_drops_the_reply():
    syn = None
    for reply_ports, replied in ((EPHEMERAL, True), ((80, 80), False)):
        plan = secured(nacls=web_acl(reply_ports))
        fab = fabric(plan)
        syn = ip_packet(plan, "WebB2", WEB_A2, tcp_dst=80)
        res = fab.send("WebB2", syn)
        assert res.hosts == ["WebA2"]
        back = fab.send("WebA2", reply_to(syn, res.delivered[0][1], plan))
        assert back.hosts == (["WebB2"] if replied else []), reply_ports
        if not replied:
            assert last_table(back) == TABLE_NACL_OUT


def test_a_security_group_would_let_the_same_reply_out():
    # The same flow filtered by a group instead: the reply is tracked, it passes.
    web = group("Web", ingress=(tcp(80, cidr=VPC),), egress=())
    plan = secured((web,), {"WebA2": ("Web",)})
    fab = fabric(plan)
    syn = ip_packet(plan, "WebB2", WEB_A2, tcp_dst=80)
    res = fab.send("WebB2", syn)
    assert fab.send("WebA2", reply_to(syn, res.delivered[0][1], plan)).hosts == ["WebB2"]


@pytest.mark.parametrize(
    ("entries", "sender", "port", "allowed"),
    [
        (
            (entry(100, False, 6, "10.0.2.0/24", False, (22, 22)), entry(200, False)),
            "WebB1",
            22,
            False,
        ),
        (
            (entry(100, False, 6, "10.0.2.0/24", False, (22, 22)), entry(200, False)),
            "WebB1",
            80,
            True,
        ),
        (
            (entry(100, False, 6, "10.0.2.0/24", False, (22, 22)), entry(200, False)),
            "WebB2",
            22,
            True,
        ),
        # Lowest number first: the allow-all at 50 comes before the deny at 100.
        (
            (entry(50, False), entry(100, False, 6, "10.0.2.0/24", False, (22, 22))),
            "WebB1",
            22,
            True,
        ),
        ((entry(100, False, 6, VPC, True, (1000, 2000)),), "WebB1", 1500, True),
        ((entry(100, False, 6, VPC, True, (1000, 2000)),), "WebB1", 2001, False),
    ],
)
def test_rule_number_order_first_match_wins(entries, sender, port, allowed):
    out = entry(100, True)  # all outbound
    plan = secured(nacls=(acl("A", ("PrivA",), *entries, out),))
    fab = fabric(plan)
    pkt = ip_packet(plan, sender, WEB_A2, tcp_dst=port)
    assert fab.send(sender, pkt).hosts == (["WebA2"] if allowed else [])


def test_icmp_types_in_entries():
    plan = secured(
        nacls=(acl("A", ("PrivA",), entry(10, False, 1, VPC, icmp=(8, -1)), entry(10, True)),)
    )
    fab = fabric(plan)
    ping = ip_packet(plan, "WebB2", WEB_A2, proto=1)
    assert fab.send("WebB2", ping).hosts == ["WebA2"]
    other = ip_packet(plan, "WebB2", WEB_A2, proto=1, icmpv4_type=13)
    assert fab.send("WebB2", other).hosts == []


def test_outbound_entries_of_the_source_subnet():
    plan = secured(
        nacls=(
            acl(
                "A",
                ("PrivA",),
                entry(10, True, 6, "10.0.3.0/24", ports=(443, 443)),
                entry(10, False),
            ),
        )
    )
    fab = fabric(plan)
    assert fab.send("WebA2", ip_packet(plan, "WebA2", WEB_B2, tcp_dst=443)).hosts == ["WebB2"]
    res = fab.send("WebA2", ip_packet(plan, "WebA2", WEB_B1, tcp_dst=443))
    assert res.hosts == []
    assert last_table(res) == TABLE_NACL_OUT


def test_same_subnet_traffic_and_the_resolver_pass_an_acl_that_denies_everything():
    plan = secured(nacls=(acl("Closed", ("PrivA", "PubA")),))
    fab = fabric(plan)
    l2 = ip_packet(plan, "WebA2", WEB_A3, via_router=False)
    assert fab.send("WebA2", l2).hosts == ["WebA3"]
    query = ip_packet(plan, "WebA2", "10.0.0.2", proto=17)
    res = fab.send("WebA2", query)
    assert res.hosts == ["LabDNS"]
    assert fab.send("LabDNS", reply_to(query, res.delivered[0][1], plan)).hosts == ["WebA2"]
    # Crossing the edge: denied both ways.
    assert fab.send("WebA2", ip_packet(plan, "WebA2", WEB_B2)).hosts == []
    assert fab.send("WebB2", ip_packet(plan, "WebB2", WEB_A2)).hosts == []
    # From the internet to WebA1 (PubA, public address): denied inbound.
    assert fab.send("Client1", ip_packet(plan, "Client1", "203.0.113.10")).hosts == []
    # Subnets on the default ACL are untouched.
    assert fab.send("WebB2", ip_packet(plan, "WebB2", WEB_B1)).hosts == ["WebB1"]


def test_subnets_without_an_acl_get_no_entries():
    logic = SecurityLogic(secured())
    for s in logic.plan.switches:
        assert not [
            f for f in logic.flows_for(s.dpid) if f.table in (TABLE_NACL_IN, TABLE_NACL_OUT)
        ]


def test_drop_entries_name_their_acl_for_the_counters():
    nacl = acl(
        "PrivAcl",
        ("PrivA", "PrivB"),
        entry(100, False, 6, "10.0.2.0/24", False, (22, 22)),
        entry(200, False),
        entry(100, True, 6, "0.0.0.0/0", False, (25, 25)),
        entry(110, True),
    )
    plan = secured(nacls=(nacl,))
    logic = SecurityLogic(plan)
    dpid = plan.switches[0].dpid
    owners = {}
    for f in logic.flows_for(dpid):
        owner = logic.drop_owner(dpid, f.table, f.priority, _as_stats(dict(f.match)))
        if f.goto is None and f.table in (TABLE_NACL_IN, TABLE_NACL_OUT):
            assert owner == ("nacl-in" if f.table == TABLE_NACL_IN else "nacl-out", "PrivAcl")
            owners.setdefault(owner, set()).add(f.priority)
        else:
            assert owner is None, f
    assert owners == {
        ("nacl-in", "PrivAcl"): {NACL_TOP - 100, PRIO_NACL_DENY},
        ("nacl-out", "PrivAcl"): {NACL_TOP - 100, PRIO_NACL_DENY},
    }


def _as_stats(match: dict) -> dict:
    """A match as flow statistics report it: masked values as [value, mask] lists."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in match.items()}


def test_every_pair_through_groups_and_acls_everywhere_is_unambiguous():
    # Every host grouped (the VPC's default group), every subnet with an ACL, an NLB with
    # groups: whatever is sent, no two entries of one table match at one priority (the fake
    # switch raises), and what passes is what the rules say.
    from testbed.plan.network import SgRulePlan
    from tests.nlb_fixture import nlb_plan

    default = group("VPC.default", ingress=(SgRulePlan(-1, group="VPC.default"),))
    hosts = ("WebA1", "WebA2", "WebA3", "WebB1", "WebB2", "NLB-1a", "NLB-1b")
    everywhere = acl(
        "All",
        ("PubA", "PrivA", "PubB", "PrivB"),
        entry(100, False, 6, "0.0.0.0/0", ports=(22, 22), allow=False),
        entry(200, False),
        entry(100, True),
    )
    plan = secured(
        (default,), dict.fromkeys(hosts, ("VPC.default",)), (everywhere,), plan=nlb_plan()
    )
    fab = fabric(plan)
    vpc_hosts = [h for h in plan.hosts if h.name in hosts]
    for src in [*vpc_hosts, plan.host("Client1")]:
        for dst in [*vpc_hosts, plan.host("LabDNS")]:
            if src.name == dst.name:
                continue
            for proto, extra in ((6, {"tcp_dst": 22}), (6, {}), (17, {}), (1, {})):
                pkt = ip_packet(plan, src.name, dst.ip, proto=proto, **extra)
                got = fab.send(src.name, pkt).hosts
                crossing = src.subnet != dst.subnet
                if dst.kind == "dns":
                    assert got == ["LabDNS"], (src.name, dst.name)
                elif src.kind == "client" or (proto == 6 and extra and crossing):
                    assert got == [], (src.name, dst.name, proto)  # no group / ACL rule 100
                elif dst.kind == "instance":  # members, allowed by the ACL or one subnet
                    assert got == [dst.name], (src.name, dst.name, proto, extra)
                # (To an NLB node: a target of its own would be a hairpin, AWS drops it too.)
