"""A public NAT gateway on a real lab (tests/integration/templates/nat_gateway.yaml).

Instances of private subnets (in the gateway's AZ and in another) reach an internet host
through the gateway: their source on the internet is the gateway's Elastic IP (AWS's two
steps: the gateway translates to its private address, the internet gateway 1:1 to the EIP),
replies come back, and nothing from the internet opens a connection in.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from testbed import accesslog
from testbed.lab.api import Lab
from testbed.probes.capture import start_capture
from testbed.traffic import run_load
from tests.assertions import host_diagnostics, run_cli

pytestmark = pytest.mark.integration
TEMPLATE = Path(__file__).parent / "templates" / "nat_gateway.yaml"
NAT = "NatGatewayA"
CLIENT = "198.51.100.10"


@pytest.fixture(scope="module")
def nat_lab():
    with Lab.up(str(TEMPLATE)) as lab:
        yield lab


def eip(lab: Lab) -> str:
    return lab.outputs["NatPublicIp"]


def logged(lab: Lab, host: str, path: str) -> list[accesslog.AccessRecord]:
    """The access-log records of `host`'s backend for requests of `path`."""
    log = lab.dir / "hosts" / host / "access.log"
    if not log.exists():
        return []
    records = (accesslog.parse_line(line) for line in log.read_text().splitlines())
    return [r for r in records if r is not None and r.path == path]


def test_the_gateway_is_a_host_of_its_public_subnet_with_the_elastic_ip(nat_lab):
    address = eip(nat_lab)
    assert IPv4Address(address) in IPv4Network("203.0.113.0/24")
    assert nat_lab.outputs["NatAllocationId"].startswith("eipalloc-")
    gateway = nat_lab.host(NAT)
    assert IPv4Address(gateway.ip) in IPv4Network("10.0.0.0/24")  # PublicSubnetA
    assert gateway.public_ip == address


@pytest.mark.parametrize("sender", ["WebA2", "WebB2"])  # the gateway's AZ, and the other one
def test_private_instances_reach_the_internet_from_the_elastic_ip(nat_lab, sender):
    path = f"/through-nat-{sender}"
    df = run_load(nat_lab, sender, f"http://{CLIENT}{path}", requests=10, concurrency=2)
    if not df["error"].isna().all():
        raise AssertionError(
            f"{df['error'].value_counts()}\n{host_diagnostics(nat_lab, sender, NAT, 'Client1')}"
        )
    assert set(df["backend"]) == {"Client1"}
    assert set(df["seen_ip"]) == {eip(nat_lab)}  # neither the instance's nor the gateway's

    # Client1's access log (flushed every second) names the Elastic IP as the client.
    def all_ten() -> list[accesslog.AccessRecord] | None:
        records = logged(nat_lab, "Client1", path)
        return records if len(records) >= 10 else None

    records = nat_lab.wait_for(
        all_ten,
        10,
        "Client1 to log the 10 requests",
        last=lambda: len(logged(nat_lab, "Client1", path)),
    )
    assert {r.client.rsplit(":", 1)[0] for r in records} == {eip(nat_lab)}


def test_on_the_internet_segment_the_packets_carry_the_elastic_ip(nat_lab):
    capture = start_capture(nat_lab.host("Client1"), "tcp port 80", label="nat-egress")
    try:
        df = run_load(nat_lab, "WebB2", f"http://{CLIENT}/on-the-wire", requests=3)
    finally:
        pcap = capture.stop()
    assert df["error"].isna().all()
    from scapy.all import IP, rdpcap

    packets = [p[IP] for p in rdpcap(str(pcap)) if IP in p]
    assert len(packets) >= 3 * 5  # handshake, request, answer, close of each connection
    peers = {p.src for p in packets if p.dst == CLIENT} | {
        p.dst for p in packets if p.src == CLIENT
    }
    assert peers == {eip(nat_lab)}


def test_udp_and_icmp_go_through_the_gateway_too(nat_lab):
    udp = run_load(nat_lab, "WebB2", f"udp://{CLIENT}:9000", requests=5)
    assert udp["error"].isna().all(), udp["error"].value_counts()
    assert set(udp["backend"]) == {"Client1"}
    assert set(udp["seen_ip"]) == {eip(nat_lab)}
    out = nat_lab.host("WebA2").cmd(f"ping -c 1 -W 2 {CLIENT}")
    assert " 1 received" in out, out


def test_nothing_from_the_internet_opens_a_connection_in(nat_lab):
    path = "/from-outside"
    to_eip = run_load(nat_lab, "Client1", f"http://{eip(nat_lab)}{path}", requests=2, timeout=2)
    assert set(to_eip["error"]) <= {"refused", "timeout"}  # no port forwarding in the gateway
    for web in ("WebA2", "WebB2"):
        direct = run_load(
            nat_lab, "Client1", f"http://{nat_lab.host(web).ip}{path}", requests=1, timeout=2
        )
        assert set(direct["error"]) == {"timeout"}  # private addresses: not routed in
    # Egress worked in the same lab (see above): the instances serve, but nothing got to them.
    assert logged(nat_lab, "WebA2", path) == logged(nat_lab, "WebB2", path) == []


def test_the_translation_is_visible_in_the_gateway(nat_lab):
    proc = run_cli("exec", nat_lab.name, NAT, "--", "nft", "list", "ruleset", check=True)
    assert "masquerade" in proc.stdout
    assert nat_lab.host(NAT).cmd("cat /proc/sys/net/ipv4/ip_forward").strip() == "1"
