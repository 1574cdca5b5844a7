"""The network plan of issue 10's resources, from hand-built models (no template parser):
security groups per port with their conntrack zones, network ACLs per subnet, NAT gateway
hosts and their routes, extra interfaces (eth1) and secondary addresses, the JSON round
trip, zone bookkeeping, and what the topology and the resolver make of it."""

from __future__ import annotations

import json
from dataclasses import replace
from ipaddress import IPv4Address as A
from ipaddress import IPv4Network as N

import pytest

from testbed import naming
from testbed.cli.common import hosts_table
from testbed.errors import BadInput
from testbed.lab import reachability, zones
from testbed.lab.services.dns import records
from testbed.model.elbv2_types import EXTRAS_KEY, LbNode, LoadBalancer
from testbed.model.types import (
    ALL_PROTOCOLS,
    NatGateway,
    NetworkAcl,
    NetworkAclEntry,
    NetworkInterface,
    Route,
    RouteTable,
    SecurityGroup,
    SecurityGroupRule,
    StackModel,
    frozen_map,
)
from testbed.plan.changes import plan_changes
from testbed.plan.network import (
    NaclEntryPlan,
    NetworkPlan,
    RoutePlan,
    SgRulePlan,
    build_plan,
    host_mac,
)
from testbed.plan.zone_layout import (
    MAX_GROUP_PORTS,
    MAX_LOAD_BALANCERS,
    SG_ZONE_OFFSET,
    ZONE_BLOCK,
    sg_zone,
)
from testbed.stack.holder import host_listing
from testbed.topologies import host_config
from tests.handmade import two_az_model

BASE = 0x4000
ALL = N("0.0.0.0/0")


def _group(lid: str, ingress=(), egress=None, default: bool = False) -> SecurityGroup:
    everything = (SecurityGroupRule(ALL_PROTOCOLS, None, None, cidr=ALL),)
    return SecurityGroup(
        lid,
        f"sg-{lid.lower()}",
        "VPC",
        lid,
        "",
        ingress=tuple(ingress),
        egress=everything if egress is None else tuple(egress),
        is_default=default,
    )


def _lb(lid: str, kind: str, groups: tuple[str, ...] | None) -> LoadBalancer:
    """A load balancer with one node in PubA (10.0.0.50 + n)."""
    ip = {"Alb": "10.0.0.50", "Nlb": "10.0.0.51", "Gwlb": "10.0.0.52"}[lid]
    return LoadBalancer(
        logical_id=lid,
        name=lid.lower(),
        type=kind,
        scheme=None if kind == "gateway" else "internet-facing",
        vpc_id="VPC",
        subnets=("PubA",),
        nodes=(LbNode("us-east-1a", "PubA", f"{lid}-1a", A(ip), None),),
        attributes=frozen_map(),
        cross_zone=False,
        dns_name=f"{lid.lower()}.elb.example",
        arn=f"arn:{lid}",
        security_groups=groups,
    )


def security_model() -> StackModel:
    """two_az_model plus: groups on instances (one without any: a hand-made model), an ALB
    with a group, an NLB and a GWLB without, a NACL on PrivA, a public NAT gateway in PubA
    (PrivA's default route) and a private one in PubB, WebA2 with a secondary address and a
    second interface in PrivB... of its own AZ: PubA."""
    m = two_az_model()
    web = SecurityGroupRule(6, 80, 80, group="AlbSg")
    ping = SecurityGroupRule(1, 8, -1, cidr=N("10.0.0.0/16"))
    v6 = SecurityGroupRule(6, 22, 22, emulated=False)  # an IPv6 rule: not in the plan
    groups = {
        "VPC.default": _group(
            "VPC.default",
            ingress=[SecurityGroupRule(ALL_PROTOCOLS, None, None, group="VPC.default")],
        ),
        "WebSg": _group("WebSg", ingress=[web, ping, v6]),
        "AlbSg": _group("AlbSg", ingress=[SecurityGroupRule(6, 80, 80, cidr=ALL)]),
        "EniSg": _group("EniSg", ingress=[ping], egress=()),
    }
    eth1 = NetworkInterface(
        "Eni1",
        "PubA",
        A("10.0.0.20"),
        secondary_ips=(A("10.0.0.21"),),
        security_groups=("EniSg",),
        source_dest_check=False,
        public_ip=A("203.0.113.50"),
        instance_id="WebA2",
        device_index=1,
    )
    instances = dict(m.instances)
    instances["WebA1"] = replace(instances["WebA1"], security_groups=("WebSg", "VPC.default"))
    instances["WebA2"] = replace(
        instances["WebA2"],
        security_groups=("WebSg",),
        secondary_ips=(A("10.0.1.40"), A("10.0.1.41")),
        extra_interfaces=(eth1,),
    )
    instances["WebB1"] = replace(instances["WebB1"], security_groups=("VPC.default",))
    entries = (
        NetworkAclEntry("E200", 200, False, 6, ALL, True, ports=(1024, 65535)),
        NetworkAclEntry("E100", 100, False, 6, N("10.0.0.0/16"), True, ports=(80, 80)),
        NetworkAclEntry("X100", 100, True, ALL_PROTOCOLS, ALL, True),
        NetworkAclEntry("I90", 90, False, 1, N("10.0.3.0/24"), False, icmp=(-1, -1)),
    )
    nacls = {"PrivNacl": NetworkAcl("PrivNacl", "VPC", entries, subnets=("PrivA",))}
    nats = {
        "NatA": NatGateway("NatA", "PubA", "us-east-1a", A("10.0.0.9"), A("203.0.113.60")),
        "NatB": NatGateway(
            "NatB", "PubB", "us-east-1b", A("10.0.2.9"), None, public=False, allocation_id=None
        ),
    }
    local = Route("Rt.local", "RtPriv", N("10.0.0.0/16"), "local", "VPC")
    tables = dict(m.route_tables)
    tables["RtPriv"] = RouteTable(
        "RtPriv", "VPC", (local, Route("ToNat", "RtPriv", ALL, "nat", "NatA"))
    )
    lbs = {
        "Alb": _lb("Alb", "application", ("AlbSg",)),
        "Nlb": _lb("Nlb", "network", None),
        "Gwlb": _lb("Gwlb", "gateway", None),
    }
    return replace(
        m,
        instances=frozen_map(instances),
        route_tables=frozen_map(tables),
        security_groups=frozen_map(groups),
        network_acls=frozen_map(nacls),
        nat_gateways=frozen_map(nats),
        creation_order=(*m.creation_order, "NatA", "NatB", "Alb", "Nlb", "Gwlb"),
        extras=frozen_map({EXTRAS_KEY: frozen_map({"load_balancers": frozen_map(lbs)})}),
    )


@pytest.fixture(scope="module")
def plan() -> NetworkPlan:
    return build_plan(security_model(), "sec", zone_base=BASE)


# ---- security groups per port -------------------------------------------------------------


def test_instances_carry_their_groups_and_hand_made_ones_none(plan):
    assert plan.host("WebA1").groups == ("WebSg", "VPC.default")
    assert plan.host("WebB1").groups == ("VPC.default",)
    # No groups in a hand-made model (a built one always has the default group): no filter.
    assert plan.host("WebA3").groups is None
    assert plan.host("WebA3").sg_zone is None


def test_machinery_has_no_groups_except_alb_and_nlb_nodes_with_theirs(plan):
    assert plan.host("Alb-1a").groups == ("AlbSg",)
    assert plan.host("Nlb-1a").groups is None  # an NLB created without groups stays open
    assert plan.host("Gwlb-1a").groups is None  # the appliances behind it are filtered
    for name in ("Client1", "Client2", "LabDNS", "NatA", "NatB"):
        assert plan.host(name).groups is None, name
        assert plan.host(name).sg_zone is None, name


def test_every_port_with_groups_has_its_own_zone_in_attachment_order(plan):
    with_groups = [a for a in plan.attachments() if a.groups is not None]
    assert [a.name for a in with_groups] == ["WebA1", "WebA2", "WebB1", "Alb-1a", "WebA2/eth1"]
    assert [a.sg_zone for a in with_groups] == [
        BASE + SG_ZONE_OFFSET + k for k in range(len(with_groups))
    ]
    lb_zones = {z for lb in plan.load_balancers for z in (lb.zone_dnat, lb.zone_snat)}
    assert max(lb_zones) < BASE + SG_ZONE_OFFSET  # load balancers' zones come first


def test_group_plans_keep_only_emulated_rules(plan):
    assert [g.name for g in plan.security_groups] == ["AlbSg", "EniSg", "VPC.default", "WebSg"]
    web = plan.security_group("WebSg")
    assert web.group_id == "sg-websg"
    assert web.vpc == "VPC"
    assert web.ingress == (
        SgRulePlan(6, 80, 80, group="AlbSg"),
        SgRulePlan(1, 8, -1, cidr="10.0.0.0/16"),
    )
    assert web.egress == (SgRulePlan(ALL_PROTOCOLS, None, None, cidr="0.0.0.0/0"),)
    assert plan.security_group("EniSg").egress == ()  # no outbound at all: nothing leaves
    assert plan.security_group("VPC.default").ingress == (
        SgRulePlan(ALL_PROTOCOLS, None, None, group="VPC.default"),
    )


# ---- network ACLs -------------------------------------------------------------------------


def test_nacl_entries_in_rule_number_order_and_subnet_association(plan):
    (acl,) = plan.network_acls
    assert acl.name == "PrivNacl"
    assert acl.vpc == "VPC"
    assert acl.subnets == ("PrivA",)
    assert [(e.rule_number, e.egress) for e in acl.entries] == [
        (90, False),
        (100, False),
        (100, True),
        (200, False),
    ]
    assert acl.entries[0] == NaclEntryPlan(90, False, 1, "10.0.3.0/24", False, icmp=(-1, -1))
    assert acl.entries[3].ports == (1024, 65535)
    assert plan.subnet("PrivA").nacl == "PrivNacl"
    assert all(plan.subnet(s).nacl is None for s in ("PubA", "PubB", "PrivB"))


# ---- NAT gateways -------------------------------------------------------------------------


def test_nat_gateways_are_hosts_in_their_subnets(plan):
    nat = plan.host("NatA")
    assert nat.kind == "natgw"
    assert (nat.ip, nat.subnet, nat.az, nat.vpc) == ("10.0.0.9", "PubA", "us-east-1a", "VPC")
    assert nat.switch == plan.subnet("PubA").switch
    assert nat.public_ip == "203.0.113.60"  # its EIP: the internet gateway's 1:1 NAT
    assert nat.mac == host_mac("10.0.0.9")
    assert nat.gateway == "10.0.0.1"
    assert not nat.source_dest_check
    assert nat.role is None
    assert nat.snmp is None
    private = plan.host("NatB")
    assert private.public_ip is None
    assert private.switch == plan.subnet("PubB").switch


def test_route_to_a_nat_gateway_names_its_host(plan):
    routes = plan.subnet("PrivA").routes
    assert RoutePlan("0.0.0.0/0", "nat", "NatA") in routes
    assert plan.host(routes[-1].target).kind == "natgw"


def test_machinery_hosts_are_not_in_the_reachability_matrix(plan):
    names = {h.name for h in reachability.hosts(plan)}
    assert "NatA" not in names
    assert "WebA2" in names


# ---- extra interfaces and secondary addresses ---------------------------------------------


def test_secondary_addresses_of_eth0(plan):
    assert plan.host("WebA2").extra_ips == ("10.0.1.40", "10.0.1.41")
    assert plan.host("WebA2").source_dest_check


def test_second_interface_has_its_own_port_and_addresses(plan):
    owner = plan.host("WebA2")
    (eth1,) = owner.interfaces
    assert eth1.name == "eth1"
    assert (eth1.ip, eth1.prefixlen, eth1.gateway) == ("10.0.0.20", 24, "10.0.0.1")
    assert (eth1.subnet, eth1.az, eth1.vpc) == ("PubA", "us-east-1a", "VPC")
    assert eth1.switch == plan.subnet("PubA").switch
    assert eth1.mac == host_mac("10.0.0.20")
    assert eth1.extra_ips == ("10.0.0.21",)
    assert eth1.public_ip == "203.0.113.50"
    assert eth1.groups == ("EniSg",)
    assert not eth1.source_dest_check
    view = next(a for a in plan.attachments() if a.name == "WebA2/eth1")
    assert (view.owner, view.interface, view.port, view.ip) == ("WebA2", "eth1", eth1.port, eth1.ip)


def test_ports_and_link_names_are_unique(plan):
    ports = [(a.switch, a.port) for a in plan.attachments()]
    assert len(ports) == len(set(ports))
    veths = [a.veth for a in plan.attachments()] + [
        x for link in plan.links for x in (link.a_intf,)
    ]
    assert len(veths) == len(set(veths))
    assert all(len(v) <= naming.IFNAMSIZ for v in veths)


def test_host_interfaces_are_limited(monkeypatch):
    monkeypatch.setattr(naming, "MAX_LINKS", 9)  # 7 hosts, eth1, 3 nodes, 2 NAT gws, DNS
    with pytest.raises(BadInput, match="at most 9 host interfaces"):
        build_plan(security_model(), "sec", zone_base=BASE)


def test_the_resolver_names_nat_gateways_and_extra_interfaces(plan):
    found = records(plan)
    assert ("10.0.0.9", "nata.lab") in found
    assert ("10.0.0.20", "ip-10-0-0-20.ec2.internal") in found
    assert ("203.0.113.50", "ec2-203-0-113-50.compute-1.amazonaws.com") in found


# ---- JSON, updates ------------------------------------------------------------------------


def test_json_round_trip_keeps_every_new_field(plan):
    again = NetworkPlan.from_json(plan.to_json())
    assert again == plan
    assert again.host("WebA2").interfaces[0].groups == ("EniSg",)
    assert again.network_acls[0].entries[0].icmp == (-1, -1)


def test_a_plan_written_before_issue_10_still_loads():
    plan = build_plan(two_az_model(), "old")
    d = json.loads(plan.to_json())
    new_host_fields = ("groups", "source_dest_check", "sg_zone", "interfaces", "interface", "owner")
    for h in d["hosts"]:
        for key in new_host_fields:
            del h[key]
    for s in d["subnets"]:
        del s["nacl"]
    del d["security_groups"], d["network_acls"]
    assert NetworkPlan.from_dict(d) == plan


def test_plan_changes_takes_the_new_fields(plan):
    """Nothing crashes on the new fields; new hosts need down/up. (Whether rule changes of
    groups and ACLs apply live is the security brief's decision: either list will do.)"""
    old = build_plan(two_az_model(), "sec", zone_base=BASE)
    live, other, reload = plan_changes(old, plan)
    assert not reload
    assert any(c.startswith("hosts.NatA") for c in other)
    assert any(c.startswith("hosts.WebA2.interfaces") for c in other)
    assert any(c.startswith("security_groups") for c in live + other)
    assert plan_changes(plan, plan) == ([], [], [])


# ---- conntrack zones ----------------------------------------------------------------------


def test_zone_layout_limits():
    assert MAX_LOAD_BALANCERS == 32
    assert MAX_GROUP_PORTS == ZONE_BLOCK - SG_ZONE_OFFSET
    assert sg_zone(BASE, 0) == BASE + 64
    assert sg_zone(BASE, MAX_GROUP_PORTS - 1) == BASE + ZONE_BLOCK - 1
    with pytest.raises(BadInput, match="at most 960"):
        sg_zone(BASE, MAX_GROUP_PORTS)


def test_more_than_32_load_balancers_do_not_fit():
    m = security_model()
    lb = _lb("Nlb", "network", None)
    many = {f"Nlb{i}": replace(lb, logical_id=f"Nlb{i}", nodes=()) for i in range(33)}
    m = replace(m, extras=frozen_map({EXTRAS_KEY: frozen_map({"load_balancers": many})}))
    with pytest.raises(BadInput, match="at most 32"):
        build_plan(m, "sec", zone_base=BASE)


def test_used_zones_lists_security_group_zones(plan, tmp_path, monkeypatch):
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path))
    (tmp_path / "sec").mkdir()
    (tmp_path / "sec" / naming.PLAN_FILE).write_text(plan.to_json())
    used = zones.used_zones("sec")
    expected = {a.sg_zone for a in plan.attachments() if a.sg_zone is not None}
    expected |= {z for lb in plan.load_balancers for z in (lb.zone_dnat, lb.zone_snat)}
    assert used == sorted(expected)
    assert BASE + SG_ZONE_OFFSET + 4 in used


def test_reserve_keeps_clear_of_other_labs_blocks(tmp_path, monkeypatch):
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path))
    # A lab of an older version holds a small block just above the first one.
    (tmp_path / "olda").mkdir()
    (tmp_path / "olda" / "zone_base").write_text(str(zones.ZONE_FIRST + 32))
    first = zones.reserve("newa")
    second = zones.reserve("newb")
    assert first == zones.ZONE_FIRST + 2 * ZONE_BLOCK  # 0x4000 and 0x4400 overlap olda
    assert second == first + ZONE_BLOCK
    assert zones.reserve("newa") == first  # a lab keeps its block
    assert second + ZONE_BLOCK <= zones.ZONE_LIMIT


# ---- the hosts' own configuration ---------------------------------------------------------


def test_extra_interface_commands(plan):
    cmd = host_config.interface_commands(plan.host("WebA2"))
    assert "ip addr add 10.0.0.20/24 dev eth1" in cmd
    assert "ip addr add 10.0.0.21/32 dev eth1" in cmd
    # Replies from eth1's addresses leave through eth1 (its own routing table).
    assert "ip route add default via 10.0.0.1 dev eth1 table 101" in cmd
    assert "ip rule add from 10.0.0.20 table 101" in cmd
    assert "ip rule add from 10.0.0.21 table 101" in cmd
    eth0 = plan.host("WebA2")
    assert f"ip rule add from {eth0.ip} table 100" in cmd  # eth0's answers leave by eth0
    assert f"ip route add default via {eth0.gateway} dev eth0 table 100" in cmd
    assert host_config.interface_commands(plan.host("WebA1")) == ""
    assert host_config.secondary_addresses("eth0", ("10.0.1.40",)) == (
        "; ip addr add 10.0.1.40/32 dev eth0"
    )


def test_nat_gateway_ruleset(plan):
    rules = host_config.nat_ruleset(plan, plan.host("NatA"))
    assert 'oifname "eth0" ip saddr != 10.0.0.9 counter masquerade' in rules
    assert "ct state new ip saddr 10.0.0.0/16 counter accept" in rules
    assert "policy drop" in rules
    assert "dnat" not in rules
    assert "ip_forward=1" in host_config.nat_gateway_commands()


# ---- what the lab shows -------------------------------------------------------------------


def test_status_lists_extra_interfaces_and_nat_gateways(plan):
    listing = host_listing(plan)
    web = next(h for h in listing if h["name"] == "WebA2")
    assert web["interfaces"][0]["ip"] == "10.0.0.20"
    assert web["extra_ips"] == ["10.0.1.40", "10.0.1.41"]
    assert web["groups"] == ["WebSg"]
    text = hosts_table(listing)
    rows = {line.split()[0]: line.split() for line in text.splitlines()[1:] if line.strip()}
    assert rows["WebA2/eth1"][1:3] == ["10.0.0.20", "203.0.113.50"]
    assert rows["NatA"][-1] == "nat-gateway"


def test_an_eip_of_an_nlb_subnet_mapping_is_its_nodes_public_address():
    m = security_model()
    nlb = _lb("Nlb", "network", None)
    node = replace(nlb.nodes[0], public_ip=A("203.0.113.70"))
    lbs = {"Nlb": replace(nlb, nodes=(node,))}
    m = replace(m, extras=frozen_map({EXTRAS_KEY: frozen_map({"load_balancers": lbs})}))
    plan = build_plan(m, "sec", zone_base=BASE)
    assert plan.load_balancers[0].nodes[0].public_ip == "203.0.113.70"
    assert plan.host("Nlb-1a").public_ip == "203.0.113.70"  # the internet gateway's 1:1 NAT
    assert ("203.0.113.70", "nlb.elb.example") in records(plan)  # DNS answers the EIP
