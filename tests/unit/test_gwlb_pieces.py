"""GWLB pieces without root: the appliance's nftables script and flow view, the node's BPF
filter and configuration from the plan, the two roles' command lines."""

from __future__ import annotations

import json
import time

import pytest

from testbed.gwlb import firewall, rawsock
from testbed.gwlb.appliance import flow_rows, packet_key
from testbed.gwlb.flowkey import key_function
from testbed.gwlb.node import Node, node_config, target_states
from testbed.gwlb.observe import tcp_flows_by_client_port
from testbed.gwlb.steering import TargetState
from testbed.lab import launch
from testbed.model.roles import LAB_HOST_ROLES, NODE_ROLES, ROLE_NAMES
from testbed.packets import geneve
from testbed.plan.network import HostPlan
from tests.unit.packet_data import ipv4

# ---- firewall --------------------------------------------------------------------------


def test_rules_get_the_dropped_counter_before_their_verdict():
    assert firewall.counted("tcp dport 23 drop") == 'tcp dport 23 counter name "dropped" drop'
    assert (
        firewall.counted("ip saddr 1.2.3.4 reject with tcp reset")
        == 'ip saddr 1.2.3.4 counter name "dropped" reject with tcp reset'
    )
    assert firewall.counted("ct state established  accept") == "ct state established accept"


def test_ruleset_wraps_the_template_rules():
    script = firewall.ruleset(["tcp dport 23 drop", "ip saddr 198.51.100.11 drop"])
    assert script.startswith("table ip gwlb_appliance\ndelete table ip gwlb_appliance\n")
    for line in (
        "counter inspected { }",
        'iifname != "tun-in" accept',
        'counter name "inspected"',
        "jump rules",
        'tcp dport 23 counter name "dropped" drop',
        'ip saddr 198.51.100.11 counter name "dropped" drop',
        'oifname "tun-out" counter name "passed"',
        f"tcp option maxseg size set {firewall.DEFAULT_MSS}",
    ):
        assert line in script
    assert firewall.DEFAULT_MSS == 1392  # 1500 - 20 - 8 - 40 (tunnel) - 40 (inner headers)
    for bad in ["tcp dport 23 drop; flush ruleset", "", "a\nb", 5]:
        with pytest.raises(ValueError, match="one nft rule per entry"):
            firewall.ruleset([bad])


def test_counters_from_nft_json():
    text = json.dumps(
        {
            "nftables": [
                {"metainfo": {"version": "1.0.6"}},
                {
                    "counter": {
                        "family": "ip",
                        "name": "inspected",
                        "table": "gwlb_appliance",
                        "handle": 1,
                        "packets": 7,
                        "bytes": 420,
                    }
                },
                {
                    "counter": {
                        "family": "ip",
                        "name": "x",
                        "table": "other",
                        "packets": 1,
                        "bytes": 1,
                    }
                },
            ]
        }
    )
    assert firewall.parse_counters(text) == {"inspected": {"packets": 7, "bytes": 420}}


# ---- appliance flow memory -------------------------------------------------------------


def test_appliance_keys_are_per_direction_and_merged_for_display():
    out = ipv4("198.51.100.10", "10.0.1.10", 6, 40000, 80)
    back = ipv4("10.0.1.10", "198.51.100.10", 6, 80, 40000)
    assert packet_key(out) != packet_key(back)
    assert packet_key(ipv4("10.0.0.1", "10.0.0.2", 1)) == b"\x01" + bytes(
        [10, 0, 0, 1, 10, 0, 0, 2]
    )
    header = geneve.gwlb_header(geneve.endpoint_id("10.0.0.9"), 77).serialize()
    flows = {
        packet_key(out): [header, ("10.0.4.5", 6081), 3, 300, 0.0],
        packet_key(back): [header, ("10.0.4.5", 6081), 2, 200, 0.0],
    }
    assert flow_rows(flows) == [
        {
            "proto": 6,
            "a": "198.51.100.10",
            "a_port": 40000,
            "b": "10.0.1.10",
            "b_port": 80,
            "packets_ab": 3,
            "packets_ba": 2,
            "cookie": 77,
            "gwlb": "10.0.4.5",
        }
    ]


# ---- the node's BPF filter ---------------------------------------------------------------


def run_bpf(prog, frame: bytes) -> int:
    """A classic BPF interpreter for the few opcodes mac_filter uses."""
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = prog[pc]
        if code == rawsock.LD_H_ABS:
            acc = int.from_bytes(frame[k : k + 2], "big")
        elif code == rawsock.LD_W_ABS:
            acc = int.from_bytes(frame[k : k + 4], "big")
        elif code == rawsock.JEQ_K:
            pc += jt if acc == k else jf
        elif code == rawsock.RET_K:
            return k
        pc += 1


def test_bpf_filter_keeps_ipv4_frames_to_the_endpoints():
    macs = [rawsock.mac_bytes(m) for m in ("02:00:0a:00:00:04", "02:00:0a:00:01:04")]
    prog = rawsock.mac_filter(macs)
    src, ipv4_type, arp = bytes(6), b"\x08\x00", b"\x08\x06"
    for mac in macs:
        assert run_bpf(prog, mac + src + ipv4_type) == rawsock.ACCEPT
        assert run_bpf(prog, mac + src + arp) == 0
    for other in ("02:00:0a:00:00:05", "03:00:0a:00:00:04", "02:00:00:00:00:fe"):
        assert run_bpf(prog, rawsock.mac_bytes(other) + src + ipv4_type) == 0
    assert run_bpf(rawsock.mac_filter([]), macs[0] + src + ipv4_type) == 0
    many = [bytes([2, 0, 10, 0, i >> 8, i & 255]) for i in range(rawsock.MAX_MACS)]
    assert run_bpf(rawsock.mac_filter(many), many[-1] + src + ipv4_type) == rawsock.ACCEPT
    with pytest.raises(ValueError, match="at most"):
        rawsock.mac_filter([*many, bytes(6)])


# ---- the node's configuration -----------------------------------------------------------


def lb_dict(**tg_attributes: str) -> dict:
    health = {
        "enabled": True,
        "protocol": "TCP",
        "port": 80,
        "path": "/",
        "interval_s": 5,
        "timeout_s": 4,
        "healthy_threshold": 2,
        "unhealthy_threshold": 2,
        "matcher": "200-399",
    }
    tg = {
        "name": "Appliances",
        "protocol": "GENEVE",
        "port": 6081,
        "target_type": "instance",
        "targets": [],
        "health": health,
        "preserve_client_ip": True,
        "stickiness": "source_ip_dest_ip",
        "cross_zone": "use_load_balancer_configuration",
        "deregistration_delay_s": 5,
        "attributes": tg_attributes,
    }
    return {
        "name": "GWLB",
        "type": "gateway",
        "scheme": None,
        "dns_name": "gwlb",
        "cross_zone": False,
        "nodes": [
            {
                "host": "GWLB-1a",
                "az": "us-east-1a",
                "subnet": "S",
                "ip": "10.0.4.5",
                "public_ip": None,
            }
        ],
        "listeners": [{"name": "L", "port": None, "protocol": None, "target_group": "Appliances"}],
        "target_groups": [tg],
        "index": 1,
        "zone_dnat": 1,
        "zone_snat": 2,
        "idle_tcp_s": 350,
        "idle_udp_s": 120,
    }


def test_node_config_from_the_plan():
    plan = {
        "router_mac": "02:00:00:00:00:fe",
        "load_balancers": [
            lb_dict(
                **{
                    "target_failover.on_unhealthy": "rebalance",
                    "target_failover.on_deregistration": "rebalance",
                }
            )
        ],
        "endpoints": [
            {
                "name": "EndpointA",
                "gwlb": "GWLB",
                "ip": "10.0.0.4",
                "mac": "02:00:0a:00:00:04",
                "node_host": "GWLB-1a",
            },
            {"name": "EndpointB", "gwlb": "GWLB", "ip": "10.0.1.4", "node_host": "GWLB-1b"},
            {"name": "Other", "gwlb": "X", "ip": "10.0.9.4", "node_host": "GWLB-1a"},
        ],
    }
    config = node_config(plan, "GWLB-1a", "GWLB")
    assert (
        config.tg,
        config.stickiness,
        config.on_unhealthy,
        config.on_deregistration,
        config.cross_zone,
    ) == ("Appliances", "source_ip_dest_ip", "rebalance", "rebalance", False)
    a, b = config.endpoints
    assert (a.name, a.served, b.name, b.served) == ("EndpointA", True, "EndpointB", False)
    assert b.mac == bytes.fromhex("02000a000104")  # derived from the address when missing
    assert a.eth_header == bytes.fromhex("0200000000fe02000a0000040800")
    assert a.id == geneve.endpoint_id("10.0.0.4")
    older = node_config({"load_balancers": [lb_dict()]}, "GWLB-1a", "GWLB")
    assert older.endpoints == ()
    assert older.on_unhealthy == "no_rebalance"


def test_target_states_from_describe_rows():
    rows = [
        {
            "LoadBalancer": "GWLB",
            "TargetGroup": "Appliances",
            "Ip": "10.0.2.4",
            "Target": {"Id": "i-Fw1", "Port": 6081, "AvailabilityZone": "us-east-1a"},
            "TargetHealth": {"State": "healthy"},
        },
        {
            "LoadBalancer": "GWLB",
            "TargetGroup": "Else",
            "Ip": "10.0.2.9",
            "Target": {"Id": "i-X", "Port": 80, "AvailabilityZone": "us-east-1a"},
            "TargetHealth": {"State": "healthy"},
        },
    ]
    (state,) = target_states(rows, "Appliances")
    assert (state.key, state.ip, state.az, state.state, state.port) == (
        "i-Fw1:6081",
        "10.0.2.4",
        "us-east-1a",
        "healthy",
        6081,
    )


def test_node_flow_view_filters_by_endpoint_and_age_and_keeps_the_newest():
    config = node_config(
        {
            "load_balancers": [lb_dict()],
            "endpoints": [
                {"name": "EndpointA", "gwlb": "GWLB", "ip": "10.0.2.4", "node_host": "GWLB-1a"}
            ],
        },
        "GWLB-1a",
        "GWLB",
    )
    node = Node("GWLB-1a", "10.0.0.6", "us-east-1a", "eth0", config)
    node.steering.set_targets([TargetState("i-Fw1:6081", "10.0.0.4", "us-east-1a", "healthy")])
    ep = config.endpoints[0]
    five = key_function("5-tuple")
    for port, created in ((40000, 0.0), (40001, 0.0), (40000, 50.0)):
        dport = 9000 if created else 80  # an old flow to port 80, a new one to 9000
        key, forward = five(ipv4("198.51.100.10", "10.0.4.4", 6, port, dport), 0)
        node.steering.open(key, forward, 6, ep, created)
    now = time.monotonic()
    for f in node.steering.flows.values():  # created on the node's clock: ages 100 s and 1 s
        f.created = now - (100.0 if f.created == 0.0 else 1.0)
    assert len(node.flow_rows()) == 3
    (row,) = node.flow_rows(end="10.0.4.4:9000")
    assert {row["a"], row["b"]} == {"10.0.4.4:9000", "198.51.100.10:40000"}
    assert [r["b"] for r in node.flow_rows(max_age_s=10)] == [row["b"]]
    assert len(node.flow_rows(end="198.51.100.10")) == 3  # an address: any port
    assert node.flow_rows(end="198.51.100.11") == []
    (newest,) = node.flow_rows(limit=1)  # the newest, not the oldest (ages are read anew)
    assert (newest["a"], newest["b"]) == (row["a"], row["b"])
    with pytest.raises(ValueError, match="bad port"):
        node.flow_rows(end="10.0.4.4:x")


def test_held_flows_are_told_apart_by_their_whole_5_tuple():
    def row(a: str, b: str, appliance: str, proto: int = 6) -> dict:
        return {"proto": proto, "a": a, "b": b, "appliance": appliance}

    flows = [
        row("10.0.4.4:80", "198.51.100.10:40000", "i-FwA1:6081"),  # older, port 80
        row("10.0.4.4:9000", "198.51.100.10:40000", "i-FwA2:6081"),
        row("10.0.4.4:9000", "198.51.100.11:40001", "i-FwA1:6081"),  # another client
        row("10.0.4.4:9000", "198.51.100.10:40002", "i-FwA1:6081", proto=17),
        row("10.0.4.4:9000", "198.51.100.10:40003", "i-FwA1:6081"),
    ]
    by_port = tcp_flows_by_client_port(flows, "198.51.100.10", "10.0.4.4:9000")
    assert {p: f["appliance"] for p, f in by_port.items()} == {
        40000: "i-FwA2:6081",
        40003: "i-FwA1:6081",
    }


# ---- roles ---------------------------------------------------------------------------------


def host(name: str, ip: str, role: str, **role_args) -> HostPlan:
    return HostPlan(
        name=name,
        netns=f"tb-t-{name}",
        kind="instance",
        ip=ip,
        prefixlen=24,
        gateway="10.0.2.1",
        mac="02:00:00:00:00:01",
        switch="tb-t-az1",
        port=10,
        veth="tb-t-v1",
        role=role,
        role_args=role_args,
    )


def test_roles_are_registered():
    assert "appliance" in ROLE_NAMES
    assert "gateway-node" not in ROLE_NAMES
    assert "gateway-node" in NODE_ROLES
    assert set(ROLE_NAMES) - {"none"} | set(NODE_ROLES) | set(LAB_HOST_ROLES) == set(
        launch._LAUNCHERS
    )


def test_appliance_role_command(tmp_path):
    spec = launch.launch(
        host("Fw1", "10.0.2.4", "appliance", Rules=["tcp dport 23 drop"], HealthPort=8080), tmp_path
    )
    cmd = list(spec.argv)
    assert cmd[1:3] == ["-m", "testbed.gwlb.appliance"]
    assert cmd[cmd.index("--rule") + 1] == "tcp dport 23 drop"
    assert cmd[cmd.index("--status") + 1] == str(tmp_path / "appliance-status.json")
    assert spec.ready_ports == (8080, 8081)
    assert launch.launch(
        host("Fw1", "10.0.2.4", "appliance", HealthPort=0), tmp_path
    ).ready_ports == (8081,)
    with pytest.raises(ValueError, match="unknown RoleArgs"):
        launch.launch(host("Fw1", "10.0.2.4", "appliance", Rule="x"), tmp_path)
    with pytest.raises(ValueError, match="one nft rule"):
        launch.launch(host("Fw1", "10.0.2.4", "appliance", Rules=["a; b"]), tmp_path)


def test_gateway_node_role_command(tmp_path):
    host_dir = tmp_path / "hosts" / "GWLB-1a"
    spec = launch.launch(
        host("GWLB-1a", "10.0.4.5", "gateway-node", lb="GWLB", az="us-east-1a"), host_dir
    )
    cmd = list(spec.argv)
    assert cmd[cmd.index("--plan") + 1] == str(tmp_path / "plan.json")
    assert cmd[cmd.index("--holder") + 1] == str(tmp_path / "holder.sock")
    assert spec.ready_ports == (launch.GWLB_NODE_ADMIN_PORT,)


def test_node_takes_endpoints_that_come_with_a_new_plan(tmp_path, monkeypatch):
    """A spoke stack added to the lab (issue 14): its endpoints reach the running node through
    the plan file; the packet socket's filter follows them."""
    plan = {"load_balancers": [lb_dict()], "endpoints": []}
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    node = Node("GWLB-1a", "10.0.4.5", "us-east-1a", "eth0", node_config(plan, "GWLB-1a", "GWLB"))
    node.plan, node.plan_seen = path, None
    filters: list[list] = []
    monkeypatch.setattr(rawsock, "attach_filter", lambda sock, prog: filters.append(prog))
    node.raw = object()
    assert node.reload_endpoints() is False  # the same endpoints (none)
    plan["endpoints"] = [
        {
            "name": "spoke.EndpointA",
            "gwlb": "GWLB",
            "ip": "10.0.0.4",
            "mac": "02:01:0a:00:00:04",  # address space 1: the spoke overlaps the appliances
            "node_host": "GWLB-1a",
        }
    ]
    path.write_text(json.dumps(plan))
    node.plan_seen = None  # (a second write within the file system's time resolution)
    assert node.reload_endpoints() is True
    (ep,) = node.config.endpoints
    assert ep.served
    assert list(node.by_mac) == [bytes.fromhex("02010a000004")]
    assert filters == [rawsock.mac_filter([bytes.fromhex("02010a000004")])]
    assert node.reload_endpoints() is False  # not changed since


def test_the_mss_clamp_leaves_room_for_geneve_on_the_appliance_link():
    # A standard link: AWS's format (inner IPv4 after the options) must fit in 1500 bytes.
    assert firewall.mss_for_mtu(1500) == firewall.DEFAULT_MSS == 1392
    # The switch datapath's jumbo appliance links carry Open vSwitch's format (inner Ethernet
    # too): room for far more than the 1460 a 1500-byte host offers, so nothing is clamped.
    assert firewall.mss_for_mtu(9001) == 9001 - 68 - 14 - 40
    assert firewall.mss_for_mtu(9001) > 1460
    script = firewall.ruleset(["tcp dport 23 drop"], mss=firewall.mss_for_mtu(9001))
    assert "maxseg size set 8879" in script
