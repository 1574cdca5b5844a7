"""Elastic IPs, NAT gateways, a second network interface, EIP subnet mappings of an NLB and
the default VPC on real packets (templates/addresses.yaml and default_vpc.yaml here)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from testbed import naming
from testbed.lab.api import Lab, random_name
from testbed.traffic import run_load
from tests.assertions import assert_nothing_left, machine_snapshot, run_cli, without_labs

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent / "templates"
DROPPED = 1.5  # s: how long a connection attempt may wait before it counts as dropped


@pytest.fixture(scope="module")
def addr_lab():
    with Lab.up(str(HERE / "addresses.yaml")) as lab:
        lab.wait_healthy(timeout=40)
        yield lab


def outputs(lab) -> dict:
    return lab.state["outputs"]


def one(lab, src: str, target: str, timeout: float = 3.0):
    """The load client's row for one request from `src`."""
    return run_load(lab, src, target, requests=1, timeout=timeout).iloc[0]


def ok(row) -> bool:
    return not isinstance(row["error"], str) or not row["error"]


def test_an_elastic_ip_makes_an_instance_reachable_from_the_internet(addr_lab):
    front = outputs(addr_lab)["FrontPublicIp"]
    assert IPv4Address(front) in IPv4Network("203.0.113.0/24")
    row = one(addr_lab, "Client1", f"http://{front}/")
    assert ok(row), row.to_dict()
    assert row["backend"] == "Front", row.to_dict()
    assert row["seen_ip"] == addr_lab.host("Client1").ip  # the IGW's 1:1 NAT keeps the source


def test_a_nat_gateway_takes_private_instances_out_under_its_elastic_ip(addr_lab):
    client = addr_lab.host("Client1").ip
    nat_ip = outputs(addr_lab)["NatPublicIp"]
    row = one(addr_lab, "Worker", f"http://{client}/")
    assert ok(row), row.to_dict()
    assert row["seen_ip"] == nat_ip  # what the internet host saw: the gateway's EIP
    udp = one(addr_lab, "Worker", f"udp://{client}:9000")
    assert ok(udp), udp.to_dict()
    assert udp["seen_ip"] == nat_ip, udp.to_dict()
    # Its translation is visible on the gateway host itself.
    rules = addr_lab.host("Nat").cmd("nft list ruleset")
    assert "masquerade" in rules, rules


def test_nothing_from_the_internet_opens_a_connection_through_a_nat_gateway(addr_lab):
    nat_ip = outputs(addr_lab)["NatPublicIp"]
    row = one(addr_lab, "Client1", f"http://{nat_ip}/", timeout=DROPPED)
    assert row["error"] == "timeout", row.to_dict()  # dropped, as AWS does: no RST
    worker = addr_lab.host("Worker").ip
    row = one(addr_lab, "Client1", f"http://{worker}/", timeout=DROPPED)
    assert row["error"] == "timeout", row.to_dict()  # a private address is not routed


def test_a_second_interface_and_its_secondary_address_answer(addr_lab):
    dual = addr_lab.host("Dual")
    eth1 = dual.cmd("ip -4 -o addr show dev eth1")
    assert "10.0.2.50/24" in eth1, eth1
    secondary = outputs(addr_lab)["SecondaryAddress"]
    assert secondary in eth1, eth1
    for address in ("10.0.2.50", secondary):
        ping = addr_lab.host("Worker").run(["ping", "-c", "1", "-W", "2", address])
        assert ping.returncode == 0, (address, ping.stdout)
    # Worker is in eth1's subnet: an answer from eth0's address leaves by eth0 (per-interface
    # routing, as Amazon Linux sets it up), not by eth1, whose port would drop it.
    ping = addr_lab.host("Worker").run(["ping", "-c", "1", "-W", "2", dual.ip])
    assert ping.returncode == 0, ping.stdout
    row = one(addr_lab, "Worker", "udp://10.0.2.50:9000")
    assert ok(row), row.to_dict()
    assert row["backend"] == "Dual", row.to_dict()


def test_an_nlb_with_an_eip_subnet_mapping_answers_on_that_address(addr_lab):
    eip = outputs(addr_lab)["NlbPublicIp"]
    dns = outputs(addr_lab)["NlbDns"]
    answer = addr_lab.host("Client1").run(["dig", "+short", dns]).stdout.split()
    assert answer == [eip]
    row = one(addr_lab, "Client1", f"http://{eip}/")
    assert ok(row), row.to_dict()
    assert row["backend"] == "Worker", row.to_dict()
    assert row["seen_ip"] == addr_lab.host("Client1").ip  # instance target: client preserved


def test_an_nlb_with_a_group_admits_only_what_the_group_allows(addr_lab):
    assert addr_lab.host("Client1").ip == "198.51.100.10"  # the address NlbGroup admits
    eip = outputs(addr_lab)["NlbPublicIp"]
    assert ok(one(addr_lab, "Client1", f"http://{eip}/"))
    row = one(addr_lab, "Client2", f"http://{eip}/", timeout=DROPPED)
    assert row["error"] == "timeout", row.to_dict()  # dropped by the NLB's group


def test_a_template_without_a_vpc_runs_in_the_default_vpc():
    with Lab.up(str(HERE / "default_vpc.yaml")) as lab:
        web, web_b = lab.host("Web"), lab.host("WebB")
        assert IPv4Address(web.ip) in IPv4Network("172.31.0.0/20")  # first AZ's subnet
        assert IPv4Address(web_b.ip) in IPv4Network("172.31.16.0/20")  # second AZ's
        public = lab.state["outputs"]["WebPublicIp"]
        assert public  # default subnets give public addresses on launch
        assert public == web.public_ip
        row = one(lab, "Client1", f"http://{public}/")
        assert ok(row), row.to_dict()
        assert row["backend"] == "Web", row.to_dict()
        # Made with the stack, and said so in its events.
        events = (lab.dir / "events.jsonl").read_text()
        assert "DefaultVpc" in events
        assert "CREATE_COMPLETE" in events


def test_every_network_mistake_is_reported_at_once_and_nothing_is_built():
    name = random_name("badnet")
    before = without_labs(machine_snapshot())["bridges"]
    proc = run_cli("up", str(HERE / "bad_network.yaml"), "--name", name)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    for where, what in (
        ("bad_network.yaml:48: ToOtherVpcsNat:", "NAT gateway Nat is in VPC"),
        ("bad_network.yaml:55: PortOutOfRange:", "70000 is not a tcp port"),
        ("bad_network.yaml:62: ProtocolRefused:", "not 'tcpp'"),
        ("bad_network.yaml:70: Web:", "security group ElsewhereGroup is in OtherVpc"),
        ("bad_network.yaml:82: AgainTwice:", "is already associated with instance Front"),
    ):
        assert f"{where} " in proc.stderr, (where, proc.stderr)
        assert what in proc.stderr, (what, proc.stderr)
    assert without_labs(machine_snapshot())["bridges"] == before
    assert_nothing_left(name)
    assert not naming.lab_dir(name).exists()
