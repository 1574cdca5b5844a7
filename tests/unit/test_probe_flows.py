"""Flow rows from conntrack dumps (NLB) and GWLB nodes' flow tables: pure parts, no lab."""

from __future__ import annotations

import pytest

from testbed.cli.flows import flows_text
from testbed.errors import BadInput
from testbed.plan.balancers import LoadBalancerPlan, NodePlan
from testbed.probes.flows import (
    ROW_KEYS,
    TRANSPARENT_FLAG,
    check_client,
    gwlb_rows,
    nlb_rows,
    parse_conntrack,
)

# What `ovs-appctl dpctl/dump-conntrack -s zone=...` printed on a userspace-datapath lab
# (zone 16384: the NLB's client side; labels: the target 10.0.1.4:80 / 10.0.1.5:9000), and
# a kernel-datapath line with conntrack accounting (packets/bytes per direction).
DNAT = """\
tcp,orig=(src=198.51.100.10,dst=10.0.0.4,sport=19468,dport=80),reply=(src=10.0.0.4,dst=198.51.100.10,sport=80,dport=19468),zone=16384,timeout=27,labels=0xa0001040050,protoinfo=(state=TIME_WAIT)
udp,orig=(src=198.51.100.10,dst=10.0.0.4,sport=1077,dport=9000),reply=(src=10.0.0.4,dst=198.51.100.10,sport=9000,dport=1077),zone=16384,timeout=28,labels=0xa0001052328
tcp,orig=(src=10.0.3.9,dst=10.0.2.4,sport=40000,dport=80,packets=5,bytes=400),reply=(src=10.0.2.4,dst=10.0.3.9,sport=80,dport=40000,packets=4,bytes=900),zone=16384,timeout=349,labels=0xa0003040050,protoinfo=(state=ESTABLISHED)
tcp,orig=(src=198.51.100.11,dst=10.0.2.4,sport=5000,dport=80),reply=(src=10.0.2.4,dst=198.51.100.11,sport=80,dport=5000),zone=16384,timeout=5,protoinfo=(state=SYN_SENT)
"""
TRANSPARENT = (
    "tcp,orig=(src=198.51.100.10,dst=10.0.1.5,sport=33000,dport=443),"
    "reply=(src=10.0.1.5,dst=198.51.100.10,sport=443,dport=33000),zone=16385,timeout=300,"
    f"labels={TRANSPARENT_FLAG | (0x0A000004 << 16):#x},protoinfo=(state=ESTABLISHED)\n"
    # The target side of a listener flow (label: the node and listener): not a row.
    "tcp,orig=(src=198.51.100.10,dst=10.0.1.4,sport=19468,dport=80),"
    "reply=(src=10.0.1.4,dst=198.51.100.10,sport=80,dport=19468),zone=16385,"
    "labels=0xa0000040050\n"
)
NAMES = {"10.0.1.4": "WebA1", "10.0.1.5": "WebA2", "10.0.3.4": "WebB1"}


def lb(kind: str = "network") -> LoadBalancerPlan:
    nodes = (
        NodePlan("MyNLB-1a", "us-east-1a", "PublicSubnetA", "10.0.0.4", "203.0.113.10"),
        NodePlan("MyNLB-1b", "us-east-1b", "PublicSubnetB", "10.0.2.4", "203.0.113.11"),
    )
    return LoadBalancerPlan(
        name="MyNLB",
        type=kind,
        scheme="internet-facing",
        dns_name="x",
        cross_zone=False,
        nodes=nodes,
        listeners=(),
        target_groups=(),
        index=1,
        zone_dnat=16384,
        zone_snat=16385,
    )


def test_conntrack_lines_parse():
    entries = parse_conntrack("noise\n" + DNAT)
    assert len(entries) == 4
    first = entries[0]
    assert first["proto"] == "tcp"
    assert first["orig"]["src"] == "198.51.100.10"
    assert first["orig"]["sport"] == 19468
    assert first["zone"] == 16384
    assert first["timeout"] == 27
    assert first["labels"] == 0xA0001040050
    assert first["state"] == "TIME_WAIT"
    assert entries[1]["state"] is None
    assert entries[2]["orig"]["packets"] == 5
    assert entries[2]["reply"]["bytes"] == 900
    assert entries[3]["labels"] == 0


def test_nlb_rows_name_the_target_from_the_label():
    rows = nlb_rows(lb(), parse_conntrack(DNAT), [], NAMES, inside={"10.0.3.9"})
    assert [tuple(r) for r in rows] == [ROW_KEYS] * 3  # the unlabelled entry is no row
    tcp, udp, inside = rows
    assert tcp["target"] == "WebA1"
    assert tcp["target_ip"] == "10.0.1.4"
    assert tcp["target_port"] == 80
    assert tcp["node"] == "MyNLB-1a"
    assert tcp["az"] == "us-east-1a"
    # From the internet: the node's public address, the one the client used.
    assert (tcp["destination"], tcp["destination_port"]) == ("203.0.113.10", 80)
    assert (tcp["client"], tcp["client_port"], tcp["protocol"]) == ("198.51.100.10", 19468, "tcp")
    assert tcp["expires_s"] == 27
    assert tcp["packets"] is None
    assert tcp["appliance"] is None
    assert (udp["target"], udp["target_port"], udp["protocol"]) == ("WebA2", 9000, "udp")
    # From inside the VPC: the node's private address; unknown targets by address.
    assert inside["destination"] == "10.0.2.4"
    assert inside["target"] == "WebB1"
    assert (inside["packets"], inside["bytes"], inside["state"]) == (9, 1300, "ESTABLISHED")


def test_transparent_connections_of_tls_listeners_are_rows():
    rows = nlb_rows(lb(), [], parse_conntrack(TRANSPARENT), NAMES)
    assert len(rows) == 1
    assert rows[0]["target"] == "WebA2"
    assert rows[0]["target_port"] == 443
    assert rows[0]["node"] == "MyNLB-1a"
    assert rows[0]["destination"] == "203.0.113.10"
    assert rows[0]["destination_port"] is None


NODE_FLOWS = [
    {
        "a": "10.0.1.4:80",
        "b": "198.51.100.10:40001",
        "proto": 6,
        "appliance": "i-FwA1:6081",
        "appliance_ip": "10.0.5.4",
        "cookie": 7,
        "established": True,
        "fwd_packets": 3,
        "rev_packets": 2,
        "bytes": 700,
        "age_s": 1.5,
        "idle_s": 0.2,
    },
    {
        "a": "10.0.1.5",
        "b": "198.51.100.11",
        "proto": None,
        "appliance": "i-FwA2:6081",
        "appliance_ip": "10.0.5.5",
        "established": None,
        "fwd_packets": None,
        "rev_packets": None,
        "bytes": None,
        "age_s": 2.0,
    },
]


def test_gwlb_rows_name_the_appliance_and_find_the_client():
    names = {**NAMES, "10.0.5.4": "FwA1"}
    rows = gwlb_rows(lb("gateway"), "MyNLB-1a", NODE_FLOWS, names)
    first, second = rows
    assert first["type"] == "gateway"
    assert first["appliance"] == "FwA1"
    assert first["target"] is None
    assert (first["client"], first["client_port"]) == ("198.51.100.10", 40001)  # higher port
    assert (first["destination"], first["destination_port"]) == ("10.0.1.4", 80)
    assert (first["packets"], first["bytes"], first["age_s"]) == (5, 700, 1.5)
    assert first["state"] == "established"
    assert first["az"] == "us-east-1a"
    assert second["appliance"] == "10.0.5.5"  # not a host of the plan: its address
    assert second["protocol"] is None
    only = gwlb_rows(lb("gateway"), "MyNLB-1a", NODE_FLOWS, names, client="198.51.100.11")
    assert [(r["client"], r["destination"]) for r in only] == [("198.51.100.11", "10.0.1.5")]


def test_a_client_must_be_an_address():
    assert check_client("198.51.100.10") == "198.51.100.10"
    with pytest.raises(BadInput, match="not an IPv4 address"):
        check_client("Client1; rm")


def test_the_table_counts_flows_per_target():
    rows = nlb_rows(lb(), parse_conntrack(DNAT), [], NAMES)
    text = flows_text(rows)
    assert "198.51.100.10:19468" in text
    assert "203.0.113.10:80" in text
    assert "MyNLB-1a (us-east-1a)" in text
    assert text.endswith("3 flows: WebA1 1, WebA2 1, WebB1 1")
    assert flows_text([]).startswith("no flows")
