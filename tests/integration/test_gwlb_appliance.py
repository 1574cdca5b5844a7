"""The GWLB appliance alone on a real lab: GENEVE in, nftables, GENEVE back, counted.

A host next to the appliance plays the GWLB node (testbed.gwlb.peer): it sends inner packets
in GENEVE with the AWS options and checks what comes back."""

from __future__ import annotations

import json
import sys
import time

import pytest

from testbed.lab.api import Lab
from testbed.packets.capture import decode_pcap
from testbed.probes.capture import start_capture

pytestmark = pytest.mark.integration

TEMPLATE = """\
Resources:
  VPC:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.0.0.0/16}
  Net:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref VPC, CidrBlock: 10.0.0.0/24, AvailabilityZone: us-east-1a}
  Fw1:
    Type: AWS::EC2::Instance
    Metadata:
      Lab:
        Role: appliance
        RoleArgs: {Rules: ["tcp dport 23 drop", "ip saddr 198.51.100.11 drop"]}
    Properties: {SubnetId: !Ref Net}
  Peer:
    Type: AWS::EC2::Instance
    Properties: {SubnetId: !Ref Net}
"""
ALLOWED = "tcp:198.51.100.10:40000:10.0.1.10:80"
TELNET = "tcp:198.51.100.10:40001:10.0.1.10:23"
BANNED = "udp:198.51.100.11:5000:10.0.1.10:53"
PING = "icmp:10.0.1.10:7:198.51.100.10:0"


@pytest.fixture(scope="module")
def fw_lab(tmp_path_factory):
    path = tmp_path_factory.mktemp("gwlb-appliance") / "appliance.yaml"
    path.write_text(TEMPLATE)
    with Lab.up(str(path)) as lab:
        yield lab


def peer(lab, *args: str, timeout: float = 60) -> object:
    fw = lab.host("Fw1")
    proc = lab.host("Peer").run(
        [
            sys.executable,
            "-m",
            "testbed.gwlb.peer",
            "--bind",
            lab.host("Peer").ip,
            "--to",
            fw.ip,
            *args,
        ],
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def quiet_status(lab) -> dict:
    """The appliance's counters once it has handled every packet it got (a benchmark may
    leave a backlog): its GENEVE socket has nothing queued, and two status files in a row
    show the same counters."""

    def drained() -> bool:
        queues = lab.host("Fw1").cmd("ss -Huan sport = :6081").splitlines()
        return all(line.split()[1] == "0" for line in queues)  # Recv-Q

    def counters(st: dict) -> tuple:
        fw = st["firewall"]
        return (st["geneve_in"], st["geneve_out"], *(fw[n]["packets"] for n in sorted(fw)))

    def quiet() -> dict | None:
        if not drained():
            return None
        first = status(lab, written_after=time.time())
        second = status(lab, written_after=first["time"])
        return second if counters(first) == counters(second) else None

    return lab.wait_for(quiet, 60, "the appliance to be idle")


def status(lab, written_after: float = 0.0) -> dict:
    """The appliance's status file, once it was written after `written_after` (epoch s):
    the appliance rewrites it every second."""
    path = lab.dir / "hosts" / "Fw1" / "appliance-status.json"

    def fresh() -> dict | None:
        try:
            data = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return None  # not written yet
        return data if data["time"] > written_after else None

    return lab.wait_for(fresh, 10, "a fresh appliance status file")


def test_allowed_packets_come_back_with_their_options(fw_lab):
    before = quiet_status(fw_lab)
    allowed, ping, telnet, banned = peer(
        fw_lab,
        "--flow",
        ALLOWED,
        "--flow",
        PING,
        "--flow",
        TELNET,
        "--flow",
        BANNED,
        "--count",
        "5",
    )
    for r in (allowed, ping):
        assert r["returned"] == 5
        assert r["header_unchanged"]
        assert r["ttl"] == 63  # forwarded by the appliance's kernel
        assert r["from"] == f"{fw_lab.host('Fw1').ip}:6081"
    assert ping["same_packet_but_ttl"]  # (the SYN's MSS is clamped: see below)
    assert telnet["returned"] == 0
    assert banned["returned"] == 0
    after = quiet_status(fw_lab)  # the counters once the peer is done
    fw = after["firewall"]
    grew = {
        name: fw[name]["packets"] - before["firewall"][name]["packets"]
        for name in ("inspected", "dropped", "passed")
    }
    assert grew == {"inspected": 20, "dropped": 10, "passed": 10}
    assert after["geneve_in"] - before["geneve_in"] == 20
    assert after["geneve_out"] - before["geneve_out"] == 10
    rows = {(r["a"], r["a_port"], r["b"], r["b_port"]): r for r in after["flows"]}
    assert rows[("198.51.100.10", 40000, "10.0.1.10", 80)]["cookie"] == 1


def test_nft_ruleset_shows_the_rules_and_counters(fw_lab):
    out = fw_lab.host("Fw1").run(["nft", "list", "ruleset"]).stdout
    assert "table ip gwlb_appliance" in out
    assert 'tcp dport 23 counter name "dropped" drop' in out
    assert "counter inspected {" in out
    assert "packets" in out
    # the lab's policy routing: tunnelled traffic never leaves through eth0
    assert "lookup 6081" in fw_lab.host("Fw1").run(["ip", "rule"]).stdout


def test_mss_is_clamped_and_big_packets_still_pass(fw_lab):
    with start_capture(fw_lab.host("Peer"), "udp port 6081", label="geneve") as cap:
        (syn,) = peer(fw_lab, "--flow", "tcp:198.51.100.10:41000:10.0.1.10:80", "--count", "1")
        (big,) = peer(
            fw_lab,
            "--flow",
            "udp:198.51.100.10:41001:10.0.1.10:9000",
            "--size",
            "1500",
            "--count",
            "3",
        )
    assert syn["returned"] == 1
    assert not syn["same_packet_but_ttl"]
    assert big["returned"] == 3  # 1568 bytes outside: the outer datagram was fragmented
    rows = decode_pcap(cap.path)
    back = [r for r in rows if r["outer_src"] == fw_lab.host("Fw1").ip]
    assert {(r["proto"], r["dst_port"], r["flow_cookie"]) for r in back} >= {(6, 80, 1)}
    assert all(r["endpoint_ip"] == "10.0.0.100" and r["attachment_id"] == 0 for r in back)


def test_faults_hang_and_refuse(fw_lab):
    fw = fw_lab.host("Fw1")
    health = [sys.executable, "-m", "testbed.health.checks", fw.ip, "80", "--timeout", "2"]
    assert json.loads(fw_lab.host("Peer").run(health).stdout)["ok"] is True
    fw.fault("hang")
    try:
        (r,) = peer(fw_lab, "--flow", ALLOWED, "--count", "2")
        assert r["returned"] == 0  # a grey failure: data is lost, health checks still pass
        assert json.loads(fw_lab.host("Peer").run(health).stdout)["ok"] is True
        fw.fault("refuse")
        assert json.loads(fw_lab.host("Peer").run(health).stdout)["ok"] is False
    finally:
        fw.fault("clear")
    assert json.loads(fw_lab.host("Peer").run(health).stdout)["ok"] is True
    (r,) = peer(fw_lab, "--flow", ALLOWED, "--count", "2")
    assert r["returned"] == 2


@pytest.mark.slow
def test_appliance_throughput(fw_lab):
    out = peer(fw_lab, "--bench", "5", "--flows", "64", "--size", "1000", timeout=60)
    print(f"\nappliance alone, 1000-byte packets: {out}")
    assert out["returned_packets"] > 1000
