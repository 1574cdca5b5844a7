"""Placement of a lab on servers, one AZ per server (testbed.plan.placement; issue 18)."""

from __future__ import annotations

import pytest

from testbed.errors import BadInput
from testbed.model import load_model
from testbed.plan.network import NetworkPlan, build_plan
from testbed.plan.placement import (
    FRONT_END,
    GENEVE_OVERHEAD,
    LOCAL,
    Placement,
    describe,
    host_mtu,
    parse_rate,
    parse_servers,
    place,
    rate_text,
    shaping_note,
    tbf_args,
    vni_base,
)

SERVERS = {"us-east-1a": "10.77.0.2", "us-east-1b": "10.77.0.3"}


def plan_of(template: str, lab: str = "m") -> NetworkPlan:
    return build_plan(load_model(f"templates/{template}.yaml"), lab)


def test_parse_servers_reads_azs_and_the_front_end():
    assert parse_servers("us-east-1a=10.0.0.2, us-east-1b=root@srv-b,front-end=fe") == {
        "us-east-1a": "10.0.0.2",
        "us-east-1b": "root@srv-b",
        FRONT_END: "fe",
    }


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("us-east-1a", "is not AZ=HOST"),
        ("us-east-1a=", "is not AZ=HOST"),
        ("=host", "is not AZ=HOST"),
        ("us-east-1a=a,,us-east-1b=b", "is not AZ=HOST"),
        ("core=host", "not an availability zone"),
        ("us-east-1a=bad host", "not a host name"),
        ("us-east-1a=a,us-east-1a=b", "given twice"),
    ],
)
def test_a_malformed_mapping_is_bad_input(text, says):
    with pytest.raises(BadInput, match=says) as err:
        parse_servers(text)
    assert err.value.exit_code == 2


def test_every_node_of_an_az_is_on_its_server_the_vpc_wide_ones_on_the_front_end():
    plan = plan_of("nlb")
    p = place(plan, SERVERS)
    assert p.front_end == LOCAL
    by_az = {sw.az: sw.name for sw in plan.switches if sw.role == "az"}
    for h in plan.hosts:
        if h.az is not None:
            assert p.server_of(h.name) == SERVERS[h.az], h.name
        else:  # clients and the resolver
            assert p.server_of(h.name) == LOCAL, h.name
    for az, bridge in by_az.items():
        assert p.server_of(bridge) == SERVERS[az]
    for sw in plan.switches:
        if sw.role != "az":
            assert p.server_of(sw.name) == LOCAL
    # The load balancer nodes go with their AZ.
    lb = plan.load_balancers[0]
    assert {p.server_of(n.host) for n in lb.nodes} == set(SERVERS.values())
    assert p.remote_servers() == ("10.77.0.2", "10.77.0.3")


def test_only_the_inter_az_links_cross_servers():
    plan = plan_of("nlb")
    p = place(plan, SERVERS)
    core = next(sw.name for sw in plan.switches if sw.role == "core")
    azs = {sw.name for sw in plan.switches if sw.role == "az"}
    assert {(c.link.a, c.link.b) for c in p.cross_links} == {(az, core) for az in azs}
    assert [c.b_server for c in p.cross_links] == [LOCAL, LOCAL]
    # VNIs: distinct in the lab, in VXLAN's 24 bits, another lab gets others.
    vnis = [c.vni for c in p.cross_links]
    assert len(set(vnis)) == len(vnis)
    assert all(0 < v < 2**24 for v in vnis)
    assert vni_base("m") != vni_base("n")


def test_az_and_appliances_and_nat_gateways_follow_their_az():
    plan = plan_of("gwlb")
    p = place(plan, SERVERS)
    for h in plan.hosts:
        if h.kind in ("instance", "lb-node", "natgw", "lambda"):
            assert p.server_of(h.name) == SERVERS[h.az or ""], h.name


def test_datapath_ids_are_explicit_and_unique():
    plan = plan_of("three-az")
    servers = {"us-east-1a": "a", "us-east-1b": "b", "us-east-1c": "c", FRONT_END: "fe"}
    p = place(plan, servers)
    assert p.dpids == {sw.name: sw.dpid for sw in plan.switches}
    assert len(set(p.dpids.values())) == len(plan.switches)
    assert p.front_end == "fe"
    assert p.server_of("LabDNS") == "fe"


def test_mtu_leaves_room_for_vxlan_and_geneve():
    p = place(plan_of("nlb"), SERVERS)
    assert (p.mtu.underlay, p.mtu.tunnel_overhead, p.mtu.path, p.mtu.host) == (
        1500,
        50,
        1450,
        1450,
    )
    g = place(plan_of("gwlb"), SERVERS)
    assert g.mtu.geneve_inside
    assert g.mtu.host == 1450 - 82
    jumbo = place(plan_of("gwlb"), SERVERS, underlay_mtu=9000)
    assert jumbo.mtu.path == 8950
    with pytest.raises(BadInput, match="1280"):
        place(plan_of("gwlb"), SERVERS, underlay_mtu=1400)


def test_all_on_one_server_crosses_nothing():
    p = place(plan_of("nlb"), {"us-east-1a": LOCAL, "us-east-1b": LOCAL})
    assert p.cross_links == ()
    assert p.mtu.host == 1500
    assert p.remote_servers() == ()


def test_an_az_without_a_server_is_bad_input():
    with pytest.raises(BadInput, match="no server for availability zone us-east-1b") as err:
        place(plan_of("nlb"), {"us-east-1a": "a"})
    assert err.value.exit_code == 2
    assert "us-east-1b=HOST" in str(err.value.hint)


def test_a_server_for_an_az_the_template_does_not_use_is_bad_input():
    with pytest.raises(BadInput, match="does not use availability zone us-east-1c"):
        place(plan_of("nlb"), {**SERVERS, "us-east-1c": "c"})


def test_unknown_tunnel_type_is_bad_input():
    with pytest.raises(BadInput, match="tunnel type"):
        place(plan_of("nlb"), SERVERS, tunnel="ipip")


def test_placement_round_trips_through_json_and_describes_itself():
    p = place(plan_of("default"), SERVERS)
    assert Placement.from_json(p.to_json()) == p
    text = "\n".join(describe(p))
    assert "localhost (front-end): tb-m-core" in text
    assert "10.77.0.2 (us-east-1a): tb-m-az1" in text
    assert "tunnel vxlan vni" in text
    assert "inter-AZ path MTU 1450" in text


def test_geneve_ends_get_the_path_mtu_other_hosts_room_for_geneve():
    g = place(plan_of("gwlb"), SERVERS)
    assert host_mtu(g.mtu, "appliance") == host_mtu(g.mtu, "gateway-node") == 1450
    assert host_mtu(g.mtu, "http-backend") == host_mtu(g.mtu, None) == 1368
    assert "GWLB nodes and appliances 1450" in g.mtu.note
    # 1368 + GENEVE's 82 is what the ends send: exactly the tunnel's path MTU
    assert g.mtu.host + GENEVE_OVERHEAD == host_mtu(g.mtu, "appliance") == g.mtu.path
    # without a GWLB nothing carries GENEVE: every host gets the path MTU
    p = place(plan_of("nlb"), SERVERS)
    assert host_mtu(p.mtu, "appliance") == host_mtu(p.mtu, None) == 1450


@pytest.mark.parametrize(
    ("text", "bits"),
    [
        ("100mbit", 100_000_000),
        ("1gbit", 10**9),
        ("1.5Gbit", 1_500_000_000),
        ("500kbit", 500_000),
        ("2000000", 2_000_000),
        ("10mbps", 80_000_000),  # tc's mbps: megabytes per second
        (" 20 mbit ", 20_000_000),
    ],
)
def test_tunnel_rates_read_as_tc_reads_them(text, bits):
    assert parse_rate(text) == bits


@pytest.mark.parametrize("text", ["", "fast", "100 mb", "-5mbit", "10kbit", "200gbit", "1e6"])
def test_a_bad_tunnel_rate_is_refused_naming_the_form(text):
    with pytest.raises(BadInput, match="--tunnel-rate"):
        parse_rate(text)


def test_tbf_holds_the_rate_with_a_bucket_of_several_packets():
    assert tbf_args(20_000_000) == [
        "tbf", "rate", "20000000bit", "burst", "32768", "latency", "50ms",
    ]  # fmt: skip
    assert tbf_args(10**9)[4] == str(10**9 // 8 // 100)  # 10 ms of traffic at 1 gbit
    assert rate_text(20_000_000) == "20mbit"
    assert rate_text(1_500_000_000) == "1.5gbit"


def test_the_shaping_note_says_the_rate_and_why_the_delay_is_not_applied():
    note = shaping_note(20_000_000, 2.0, netem=False)
    assert note.startswith("rate 20mbit each way (tbf")
    assert "InterAzDelayMs=2 not applied on the tunnels (this kernel has no sch_netem)" in note
    assert "the underlay's" in shaping_note(None, 0.0, netem=False)
    assert "netem is not put on tunnels yet" in shaping_note(None, 5, netem=True)


def test_placement_keeps_the_tunnel_rate():
    p = place(plan_of("nlb"), SERVERS, tunnel_rate=50_000_000)
    assert Placement.from_json(p.to_json()).tunnel_rate == 50_000_000
    assert place(plan_of("nlb"), SERVERS).tunnel_rate is None
