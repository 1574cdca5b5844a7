"""Issue 10's topology on a real lab, built from a model made in Python (tests/model_lab.py):
an instance's second interface (eth1) and secondary addresses, a NAT gateway host
(forwarding, nftables masquerade), the resolver's names for them, the lab's conntrack zones."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace
from ipaddress import IPv4Address as A
from ipaddress import IPv4Network as N

import pytest

from testbed.lab import zones
from testbed.metrics.sources import HostPortSource
from testbed.model.types import (
    ALL_PROTOCOLS,
    LabOptions,
    NatGateway,
    NetworkInterface,
    Route,
    RouteTable,
    SecurityGroup,
    SecurityGroupRule,
    SnmpOptions,
    StackModel,
    frozen_map,
)
from testbed.plan.zone_layout import SG_ZONE_OFFSET
from testbed.topologies.host_config import NAT_TABLE
from testbed.waiting import WaitTimeout, wait_for
from tests.handmade import two_az_model
from tests.model_lab import lab_from_model

pytestmark = pytest.mark.integration


ETH1_IP, ETH1_SECONDARY, ETH0_SECONDARY = "10.0.0.20", "10.0.0.21", "10.0.1.40"
NAT_IP, NAT_EIP = "10.0.0.9", "203.0.113.60"
UDP_PORT = 9999


def interfaces_model() -> StackModel:
    """two_az_model: WebA2 (PrivA) with a secondary address and eth1 in PubA (same AZ);
    NAT gateway NatA in PubA with an EIP, the private subnets' default route; WebB2 in an
    all-open group (its port gets a conntrack zone). No SNMP agents: faster to build."""
    m = two_az_model()
    everything = (SecurityGroupRule(ALL_PROTOCOLS, None, None, cidr=N("0.0.0.0/0")),)
    open_group = SecurityGroup("OpenSg", "sg-open", "VPC", "open", "", everything, everything)
    eth1 = NetworkInterface(
        "WebA2Eni",
        "PubA",
        A(ETH1_IP),
        secondary_ips=(A(ETH1_SECONDARY),),
        instance_id="WebA2",
        device_index=1,
    )
    instances = dict(m.instances)
    instances["WebA2"] = replace(
        instances["WebA2"], secondary_ips=(A(ETH0_SECONDARY),), extra_interfaces=(eth1,)
    )
    instances["WebB2"] = replace(instances["WebB2"], security_groups=("OpenSg",))
    local = Route("Rt.local", "RtPriv", N("10.0.0.0/16"), "local", "VPC")
    to_nat = Route("ToNat", "RtPriv", N("0.0.0.0/0"), "nat", "NatA")
    tables = dict(m.route_tables, RtPriv=RouteTable("RtPriv", "VPC", (local, to_nat)))
    nat = NatGateway("NatA", "PubA", "us-east-1a", A(NAT_IP), A(NAT_EIP))
    order = list(m.creation_order)
    order.insert(order.index("WebA1"), "NatA")  # after its subnet, before the instances
    return replace(
        m,
        instances=frozen_map(instances),
        route_tables=frozen_map(tables),
        security_groups=frozen_map({"OpenSg": open_group}),
        nat_gateways=frozen_map({"NatA": nat}),
        creation_order=tuple(order),
        resource_types=frozen_map(dict(m.resource_types, NatA="AWS::EC2::NatGateway")),
        lab=LabOptions(snmp=SnmpOptions(enabled=False)),
    )


@pytest.fixture(scope="module")
def lab():
    with lab_from_model(interfaces_model(), "ifc") as built:
        yield built


def sh(lab, host: str, command: str) -> str:
    proc = lab.host(host).run(command)
    assert proc.returncode == 0, f"{host}: {command}: {proc.stderr}"
    return proc.stdout


def root(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


def udp_source_seen(lab, sender: str, receiver: str, dst: str) -> str:
    """Send UDP datagrams from `sender` to dst:UDP_PORT until `receiver` gets one; return
    the source address it saw (the datagram's first hop ARP may swallow the first one)."""
    listen = (
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
        f"s.bind(('0.0.0.0', {UDP_PORT})); print('bound', flush=True); s.settimeout(20); "
        "data, addr = s.recvfrom(100); print(addr[0], flush=True)"
    )
    proc = lab.host(receiver).popen(
        [sys.executable, "-c", listen], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "bound"
        send = (
            "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            f"s.sendto(b'hello', ('{dst}', {UDP_PORT}))"
        )
        for _attempt in range(10):
            lab.host(sender).run([sys.executable, "-c", send], check=True)
            try:
                wait_for(lambda: proc.poll() is not None, 1.0, "the datagram", interval=0.02)
                break
            except WaitTimeout:
                continue
        out, err = proc.communicate(timeout=25)
        assert proc.returncode == 0, f"{receiver} got nothing: {err.strip()[-300:]}"
        return out.strip()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---- the second interface -----------------------------------------------------------------


def test_eth1_is_in_the_owners_namespace_with_its_addresses(lab):
    eth1 = lab.plan.host("WebA2").interfaces[0]
    addrs = sh(lab, "WebA2", "ip -o -4 addr show dev eth1")
    assert f"inet {ETH1_IP}/24" in addrs
    assert f"inet {ETH1_SECONDARY}/32" in addrs
    assert sh(lab, "WebA2", "cat /sys/class/net/eth1/address").strip() == eth1.mac
    assert f"inet {ETH0_SECONDARY}/32" in sh(lab, "WebA2", "ip -o -4 addr show dev eth0")
    # Its addresses answer through eth1: their own routing table.
    rules = sh(lab, "WebA2", "ip rule")
    assert f"from {ETH1_IP} lookup 101" in rules
    assert f"from {ETH1_SECONDARY} lookup 101" in rules
    assert "default via 10.0.0.1 dev eth1" in sh(lab, "WebA2", "ip route show table 101")


def test_eth1_is_linked_to_its_planned_switch_port(lab):
    eth1 = lab.plan.host("WebA2").interfaces[0]
    assert root(["ovs-vsctl", "port-to-br", eth1.veth]) == eth1.switch
    assert root(["ovs-vsctl", "get", "Interface", eth1.veth, "ofport"]) == str(eth1.port)
    # The namespace's eth1 is the other end of that veth (eth1@ifN, N its index).
    peer = re.search(r"eth1@if(\d+)", sh(lab, "WebA2", "ip -o link show eth1"))
    assert peer is not None
    assert root(["cat", f"/sys/class/net/{eth1.veth}/ifindex"]) == peer.group(1)


def test_eth1_has_tx_checksum_offload_off(lab):
    if lab.datapath != "user":
        pytest.skip("only the userspace datapath needs it")
    eth1 = lab.plan.host("WebA2").interfaces[0]
    assert "tx-checksumming: off" in sh(lab, "WebA2", "ethtool -k eth1")
    assert "tx-checksumming: off" in root(["ethtool", "-k", eth1.veth])


def test_secondary_address_of_eth0_answers_routed_traffic(lab):
    out = sh(lab, "WebB2", f"ping -c 3 -i 0.2 -W 2 {ETH0_SECONDARY}")
    assert " 0% packet loss" in out


def test_eth1_answers_on_its_addresses(lab):
    for src, ip in (("WebA1", ETH1_IP), ("WebB2", ETH1_IP), ("WebB2", ETH1_SECONDARY)):
        proc = lab.host(src).run(f"ping -c 2 -i 0.2 -W 2 {ip}")
        assert proc.returncode == 0, f"{src} -> {ip}: {proc.stdout}"


# ---- the NAT gateway host -----------------------------------------------------------------


def test_nat_gateway_host_forwards_and_masquerades(lab):
    nat = lab.host("NatA")
    assert nat.info["kind"] == "natgw"
    assert nat.public_ip == NAT_EIP
    assert sh(lab, "NatA", "sysctl -n net.ipv4.ip_forward").strip() == "1"
    rules = sh(lab, "NatA", f"nft list table ip {NAT_TABLE}")
    assert f'oifname "eth0" ip saddr != {NAT_IP} counter' in rules
    assert "masquerade" in rules
    assert "dnat" not in rules  # nothing from outside opens a connection in


def test_nat_gateway_translates_the_source_of_forwarded_traffic(lab):
    """WebA1 (same subnet) sends to WebB2 through NatA: WebB2 sees NatA's address, and the
    gateway's masquerade rule counted it (the fabric's own NAT route is not needed)."""
    web = "WebA1"
    sh(lab, web, f"ip route add 10.0.3.4/32 via {NAT_IP}")
    try:
        assert udp_source_seen(lab, web, "WebB2", "10.0.3.4") == NAT_IP
    finally:
        sh(lab, web, "ip route del 10.0.3.4/32")
    chain = sh(lab, "NatA", f"nft list chain ip {NAT_TABLE} postrouting")
    packets = re.search(r"counter packets (\d+) bytes \d+ masquerade", chain)
    assert packets is not None
    assert int(packets.group(1)) >= 1


def test_private_subnet_reaches_the_internet_as_the_gateways_eip(lab):
    assert udp_source_seen(lab, "WebA2", "Client1", "198.51.100.10") == NAT_EIP


# ---- names and zones ----------------------------------------------------------------------


def test_resolver_names_the_nat_gateway_and_eth1(lab):
    assert NAT_IP in sh(lab, "WebA1", "getent ahostsv4 nata.lab")
    assert ETH1_IP in sh(lab, "WebA1", "getent ahostsv4 ip-10-0-0-20.ec2.internal")


def test_ports_with_groups_have_zones_the_lab_releases(lab):
    zone = lab.plan.host("WebB2").sg_zone
    assert zone == lab.plan.zone_base + SG_ZONE_OFFSET
    assert zone in zones.used_zones(lab.name)


def test_switch_port_metrics_count_eth1_as_its_own_port(lab):
    # What eth1 sends (ARP for its gateway, pings that may go unanswered) counts on its port.
    lab.host("WebA2").run(f"ping -c 1 -W 1 -I {ETH1_IP} 10.0.0.1")
    samples = HostPortSource(lab, lab.plan).snapshot()
    sent = [s for s in samples if s.target == "WebA2/eth1" and s.metric == "SentPackets"]
    assert len(sent) == 1
    assert sent[0].value >= 1
