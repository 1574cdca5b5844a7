"""The GWLB appliance alone on a real lab: GENEVE in, nftables, GENEVE back, counted.

A host next to the appliance plays the GWLB node (testbed.gwlb.peer): it sends inner packets
in GENEVE with the AWS options (protocol 0x0800, as AWS and the lab's node send, or 0x6558
with an inner Ethernet header, as Open vSwitch sends) and checks what comes back. The
appliance role runs the BPF data path (built first); Fw2 runs the compiled userspace and the
Python data paths, started by the test, which remain the fallbacks."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time

import pytest

from testbed.gwlb import build_fastpath
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
  Fw2:
    Type: AWS::EC2::Instance
    Properties: {SubnetId: !Ref Net}
"""
ALLOWED = "tcp:198.51.100.10:40000:10.0.1.10:80"
TELNET = "tcp:198.51.100.10:40001:10.0.1.10:23"
BANNED = "udp:198.51.100.11:5000:10.0.1.10:53"
PING = "icmp:10.0.1.10:7:198.51.100.10:0"


@pytest.fixture(scope="module")
def fw_lab(tmp_path_factory):
    build_fastpath.build()  # what scripts/provision does: the appliance role then runs it
    if build_fastpath.bpf_tools()[0] is not None:
        build_fastpath.build_bpf()
    path = tmp_path_factory.mktemp("gwlb-appliance") / "appliance.yaml"
    path.write_text(TEMPLATE)
    with Lab.up(str(path)) as lab:
        yield lab


def peer(lab, *args: str, timeout: float = 60, to: str = "Fw1") -> object:
    fw = lab.host(to)
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


def test_the_role_runs_the_bpf_data_path(fw_lab):
    missing = build_fastpath.bpf_tools()[1]
    if missing and os.environ.get("CI") != "true":  # CI's machine is provisioned: no excuse
        pytest.skip(f"the BPF data path cannot be built here: {missing}")
    st = status(fw_lab)
    assert st["datapath"] == "bpf"
    fw = fw_lab.host("Fw1")
    cmdline = fw.run(["cat", f"/proc/{st['fastpath_pid']}/cmdline"]).stdout
    assert build_fastpath.bpf_paths()[1].name in cmdline  # its loader, recorded by PID
    for hook, program in (("ingress", "from_gwlb"), ("egress", "to_gwlb")):
        assert program in fw.run(["tc", "filter", "show", "dev", "eth0", hook]).stdout


@pytest.mark.parametrize("inner_ethernet", [False, True], ids=["0x0800", "0x6558"])
def test_allowed_packets_come_back_with_their_options(fw_lab, inner_ethernet):
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
        *(["--ethernet"] if inner_ethernet else []),
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
    assert after["bad"] == before["bad"]
    rows = {(r["a"], r["a_port"], r["b"], r["b_port"]): r for r in after["flows"]}
    row = rows[("198.51.100.10", 40000, "10.0.1.10", 80)]
    assert row["cookie"] == 1
    assert row["gwlb"] == fw_lab.host("Peer").ip


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


def test_capture_of_inner_ethernet_decodes_to_the_same_rows(fw_lab):
    flow = "udp:198.51.100.10:41002:10.0.1.10:9000"
    with start_capture(fw_lab.host("Peer"), "udp port 6081", label="geneve-eth") as cap:
        (r,) = peer(fw_lab, "--flow", flow, "--count", "2", "--ethernet")
    assert r["returned"] == 2
    assert r["header_unchanged"]  # the inner Ethernet header too
    rows = decode_pcap(cap.path)
    assert len(rows) == 4
    assert {
        (x["protocol"], x["eth_src"], x["proto"], x["src_port"], x["dst_port"]) for x in rows
    } == {(0x6558, "02:00:00:0a:00:02", 17, 41002, 9000)}
    assert sorted(x["outer_src"] for x in rows) == sorted(
        [fw_lab.host("Peer").ip] * 2 + [fw_lab.host("Fw1").ip] * 2
    )


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


@pytest.mark.parametrize("datapath", ["c", "python"])
def test_fallback_data_paths_still_work(fw_lab, tmp_path, datapath):
    """The fallbacks (no BPF data path; nor a compiled one): the same exchange through Fw2."""
    fw2 = fw_lab.host("Fw2")
    status_file = tmp_path / "appliance-status.json"
    argv = [sys.executable, "-m", "testbed.gwlb.appliance", "--id", "Fw2", "--ip", fw2.ip]
    argv += ["--rule", "tcp dport 23 drop", "--datapath", datapath, "--health-port", "0"]
    proc = fw2.popen([*argv, "--status", str(status_file)])
    try:
        st = fw_lab.wait_for(
            lambda: status_file.exists() and json.loads(status_file.read_text()),
            30,
            f"the {datapath} appliance's status file",
        )
        assert st["datapath"] == datapath
        assert (st["fastpath_pid"] is None) == (datapath == "python")
        for extra in ([], ["--ethernet"]):
            allowed, telnet = peer(
                fw_lab, "--flow", ALLOWED, "--flow", TELNET, "--count", "3", *extra, to="Fw2"
            )
            assert (allowed["returned"], allowed["ttl"], telnet["returned"]) == (3, 63, 0)
            assert allowed["header_unchanged"]
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


@contextlib.contextmanager
def fw2_on(lab, tmp_path, datapath: str):
    """Fw2 running an appliance on `datapath` (no health listener) while inside."""
    fw2 = lab.host("Fw2")
    status_file = tmp_path / f"appliance-status-{datapath}.json"
    argv = [sys.executable, "-m", "testbed.gwlb.appliance", "--id", "Fw2", "--ip", fw2.ip]
    argv += ["--datapath", datapath, "--health-port", "0", "--status", str(status_file)]
    proc = fw2.popen(argv)
    try:
        lab.wait_for(
            lambda: status_file.exists() and json.loads(status_file.read_text()),
            30,
            f"the {datapath} appliance's status file",
        )
        yield
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


@pytest.mark.slow
def test_appliance_throughput(fw_lab, tmp_path):
    """Packets/s through the appliance alone: Fw1's role (bpf), then Fw2 on c."""
    bench = ("--bench", "5", "--flows", "64", "--size", "1000")
    out = {"bpf": peer(fw_lab, *bench, timeout=60)}
    with fw2_on(fw_lab, tmp_path, "c"):
        out["c"] = peer(fw_lab, *bench, timeout=60, to="Fw2")
    print(f"\nappliance alone, 1000-byte packets: {out}")
    assert all(r["returned_packets"] > 1000 for r in out.values())


@pytest.mark.slow
def test_round_trip_through_each_data_path(fw_lab, tmp_path):
    """What each data path adds to one packet's round trip, on one lab at one time: Fw1's
    role (bpf) and Fw2 on c, alternating, so a busy machine weighs on both alike."""
    with fw2_on(fw_lab, tmp_path, "c"):
        p50: dict[str, list[float]] = {"bpf": [], "c": []}
        for _ in range(3):
            for datapath, to in (("bpf", "Fw1"), ("c", "Fw2")):
                r = peer(fw_lab, "--rtt", "2000", to=to)
                assert r["lost"] == 0
                p50[datapath].append(r["p50_us"])
    print(f"\nround trip p50 (us), peer -> appliance -> peer, 3 alternating runs: {p50}")
