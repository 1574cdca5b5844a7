"""SNMP on a real lab: net-snmp agents in host namespaces, the pysnmp manager over the lab
network, counters that match real traffic, and a poller that outlives a dead agent."""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from testbed.lab.api import Lab
from testbed.lab.procs import ProcessJournal, is_alive
from testbed.lab.services.snmpd import WHAT as SNMPD
from testbed.snmp import manager
from tests.assertions import host_diagnostics, plan_of, run_cli
from tests.restore import restart_snmpd

pytestmark = pytest.mark.integration

TEMPLATE = """\
Metadata:
  Lab:
    Snmp:
      Community: it-secret-ro
      V3: {User: monitor, AuthPassword: auth-pass-1, PrivPassword: priv-pass-1,
           AuthProtocol: SHA-256, PrivProtocol: AES}
Resources:
  VPC: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.20.0.0/16}}
  SubnetA:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref VPC, CidrBlock: 10.20.1.0/24, AvailabilityZone: us-east-1a}
  SubnetB:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref VPC, CidrBlock: 10.20.2.0/24, AvailabilityZone: us-east-1b}
  WebA: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref SubnetA}}
  WebB: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref SubnetB}}
  Recv: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref SubnetA}}
  Send:
    Type: AWS::EC2::Instance
    Metadata: {Lab: {Snmp: false}}
    Properties: {SubnetId: !Ref SubnetB}
  Client1: {Type: Lab::Internet::Client}
  Client2: {Type: Lab::Internet::Client}
"""


@pytest.fixture(scope="module")
def snmp_lab(tmp_path_factory):
    path = tmp_path_factory.mktemp("snmp") / "snmp.yaml"
    path.write_text(TEMPLATE)
    before = sorted(os.listdir("/var/lib/snmp")) if os.path.isdir("/var/lib/snmp") else None
    with Lab.up(str(path)) as lab:
        yield lab
    after = sorted(os.listdir("/var/lib/snmp")) if os.path.isdir("/var/lib/snmp") else None
    assert before == after, "the lab's agents wrote into /var/lib/snmp"


def _values(rows):
    return {(r["object"], r["index"]): r["value"] for r in rows if not r["error"]}


def _eth0_index(lab, host):
    rows = manager.query(lab.name, host, "walk", ["IF-MIB::ifDescr"])
    names = {r["value"]: r["index"] for r in rows}
    assert set(names) == {"lo", "eth0"}, rows  # only this namespace's interfaces
    return names["eth0"]


def _agent_pid(lab, host):
    records = [
        r
        for r in ProcessJournal(lab.dir).records()
        if r.what == SNMPD and r.host == host and is_alive(r)
    ]
    assert len(records) == 1, records
    return records[0]


def test_agents_answer_get_and_walk_over_the_lab_network(snmp_lab):
    plan = plan_of(snmp_lab)
    for host in ("WebA", "Client1"):  # two namespaces, two realms, two vantages
        ip = plan.host(host).ip
        rows = manager.query(
            snmp_lab.name, host, "get", ["SNMPv2-MIB::sysName.0", "sysDescr.0", "sysUpTime"]
        )
        got = _values(rows)
        assert got[("SNMPv2-MIB::sysName", "0")] == host, rows
        assert f"{host} ({ip}" in got[("SNMPv2-MIB::sysDescr", "0")]
        assert got[("SNMPv2-MIB::sysUpTime", "0")] > 0
        index = _eth0_index(snmp_lab, host)
        walked = _values(manager.query(snmp_lab.name, host, "walk", ["IF-MIB::ifPhysAddress"]))
        mac = plan.host(host).mac.replace(":", "")
        assert walked[("IF-MIB::ifPhysAddress", index)] == "0x" + mac  # this host's eth0
        # Bound to the host's address only; no SMUX/TCP listener. The agent's other UDP
        # sockets are its two notification sessions (v2c, v3: client sockets on ephemeral
        # ports, where the receiver's answers to its INFORMs come back).
        sockets = snmp_lab.host(host).cmd("ss -H -lnup; ss -H -lntp")
        agent = [line for line in sockets.splitlines() if "snmpd" in line]
        served = [line for line in agent if ":161 " in line]
        assert len(served) == 1, sockets
        assert f"{ip}:161" in served[0], sockets
        assert len(agent) <= 3, sockets
        assert all(line.startswith("UNCONN") for line in agent), sockets
    # The manager ran in other hosts: the agent counted requests from elsewhere.
    assert manager.query(snmp_lab.name, "WebA", "get", ["snmpInPkts.0"])[0]["value"] > 3


def test_v3_authpriv_user_and_community_are_both_accepted(snmp_lab):
    rows = manager.query(snmp_lab.name, "WebB", "get", ["sysName.0"], use_v3=True)
    assert _values(rows) == {("SNMPv2-MIB::sysName", "0"): "WebB"}, rows
    rows = manager.query(
        snmp_lab.name, "Client2", "walk", ["HOST-RESOURCES-MIB::hrStorageDescr"], use_v3=True
    )
    assert any(r["value"] == "Physical memory" for r in rows), rows


def test_cli_get_walk_and_bad_input(snmp_lab):
    proc = run_cli("snmp", "get", snmp_lab.name, "WebB", "sysName.0")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "SNMPv2-MIB::sysName.0 = OctetString: WebB"
    proc = run_cli("snmp", "walk", snmp_lab.name, "WebB", "IF-MIB::ifName")
    assert proc.returncode == 0
    assert "IF-MIB::ifName.1 = OctetString: lo" in proc.stdout
    proc = run_cli("snmp", "get", snmp_lab.name, "WebB", "IF-MIB::ifHCInOctet")
    assert proc.returncode == 2
    assert "close: IF-MIB::ifHCInOctets" in proc.stderr
    proc = run_cli("snmp", "get", snmp_lab.name, "Send", "sysName.0")
    assert proc.returncode == 2
    assert "Send runs no SNMP agent" in proc.stderr


def test_hc_in_octets_grows_by_at_least_what_iperf3_delivered(snmp_lab):
    recv, send = snmp_lab.host("Recv"), snmp_lab.host("Send")
    journal = ProcessJournal(snmp_lab.dir)
    server = journal.start(
        recv.argv(["iperf3", "-s", "-1", "-B", recv.ip, "-p", "5201"]),
        what="iperf3-server",
        host="Recv",
        log=snmp_lab.dir / "hosts" / "Recv" / "iperf3.log",
    )
    try:
        snmp_lab.wait_for(lambda: ":5201" in recv.cmd("ss -H -ltn"), 10, "iperf3 to listen")
        index = _eth0_index(snmp_lab, "Recv")
        counter = f"IF-MIB::ifHCInOctets.{index}"
        before = manager.query(snmp_lab.name, "Recv", "get", [counter])[0]
        client = send.run(["iperf3", "-c", recv.ip, "-p", "5201", "-n", "20M", "-J"], timeout=60)
        assert client.returncode == 0, client.stdout[-2000:] + host_diagnostics(
            snmp_lab, "Recv", "Send"
        )
        delivered = json.loads(client.stdout)["end"]["sum_received"]["bytes"]
        after = manager.query(snmp_lab.name, "Recv", "get", [counter])[0]
    finally:
        if server.poll() is None:
            server.terminate()
        server.wait(timeout=10)
    assert before["type"] == after["type"] == "Counter64"
    grown = after["value"] - before["value"]
    assert delivered > 10 * 2**20  # most of the 20 MiB sent (the receiver's own count)
    # Frames carry headers on top of the payload iperf3 counts, and ACKs and SNMP go by too.
    assert delivered <= grown <= delivered * 1.2 + 2**20, (delivered, grown)


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_poller_survives_an_agent_killed_mid_poll(snmp_lab, tmp_path):
    out = tmp_path / "poll.csv"
    victim = _agent_pid(snmp_lab, "WebB")
    result: dict = {}
    all_answering = threading.Event()

    def progress(total: dict) -> None:
        if total.get("answering") == 3:
            all_answering.set()

    def poll():
        try:
            result["summary"] = manager.monitor(
                snmp_lab.name,
                out,
                hosts=["WebA", "WebB", "Recv"],
                objects=["sysUpTime", "ifHCInOctets", "ifInOctets"],
                interval=0.5,
                duration=6.0,
                rates_out=tmp_path / "rates.csv",
                on_progress=progress,
            )
        except BaseException as exc:  # reported by the assertions below
            result["error"] = exc
        finally:
            all_answering.set()  # (no wait for a poller that failed)

    thread = threading.Thread(target=poll)
    try:
        thread.start()
        # Mid-poll: once every agent has answered.
        assert all_answering.wait(timeout=30), "the pollers reported no progress"
        assert "error" not in result, result
        killed_at = time.time()
        os.kill(victim.pid, signal.SIGKILL)
        thread.join(timeout=60)
    finally:
        thread.join(timeout=60)
        restart_snmpd(snmp_lab, "WebB")
    assert not thread.is_alive()
    assert "error" not in result, result
    summary = result["summary"]
    assert summary.agents == 3
    assert summary.timeouts > 0
    assert not summary.interrupted
    rows = _rows(out)
    by_host: dict[str, list[dict]] = {}
    for r in rows:
        by_host.setdefault(r["host"], []).append(r)
    # Answers before the kill, only timeouts after it (plus a poll in flight).
    dead = by_host["WebB"]
    assert any(not r["error"] and float(r["time"]) < killed_at for r in dead)
    late = [r for r in dead if float(r["time"]) > killed_at + 1.0]
    assert late
    assert all(r["error"] == "timeout" for r in late), late[:5]
    assert {r["object"] for r in late} == {
        "SNMPv2-MIB::sysUpTime",
        "IF-MIB::ifHCInOctets",
        "IF-MIB::ifInOctets",
    }
    # The others kept answering to the end.
    for host in ("WebA", "Recv"):
        after = [r for r in by_host[host] if float(r["time"]) > killed_at + 1.0]
        assert after
        assert not any(r["error"] for r in after), after[:5]
        assert max(float(r["time"]) for r in after) > killed_at + 2.0
    rates = _rows(tmp_path / "rates.csv")
    assert {r["host"] for r in rates} >= {"WebA", "Recv"}
    # HC counters are preferred: no rate comes from the 32-bit twin.
    assert {r["object"] for r in rates} == {"IF-MIB::ifHCInOctets"}


def test_monitor_cli_writes_rows_rates_and_a_summary(snmp_lab, tmp_path):
    out = tmp_path / "mon.csv"
    proc = run_cli(
        "monitor",
        snmp_lab.name,
        "--hosts",
        "WebA,Client1",
        "--interval",
        "500ms",
        "--duration",
        "3s",
        "--out",
        str(out),
        "--rates",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "from 2 agents" in proc.stdout, proc.stdout
    assert "0 timeouts" in proc.stdout, proc.stdout
    rows = _rows(out)
    assert list(rows[0]) == ["time", "host", "object", "index", "value", "type", "error"]
    assert {r["host"] for r in rows} == {"WebA", "Client1"}
    polls = [r for r in rows if r["object"] == "SNMPv2-MIB::sysUpTime"]
    assert 8 <= len(polls) <= 14  # ~6 polls per agent in 3 s at 500 ms
    assert (tmp_path / "mon.rates.csv").exists()
    assert (tmp_path / "mon.polls.csv").exists()


def test_agents_end_with_the_lab(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TEMPLATE)
    with Lab.up(str(path)) as lab:
        agents = [r for r in ProcessJournal(lab.dir).records() if r.what == SNMPD]
        assert len(agents) == 5  # every host but Send
        assert all(is_alive(r) for r in agents)
    assert not any(is_alive(r) for r in agents)
