"""Packet probes on real NLB labs: bounded captures, the client address a target sees (with
and without client IP preservation) and the handshake RTT via the NLB and directly."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, TCP
from scapy.utils import rdpcap

from testbed import naming
from testbed.cli import main
from testbed.errors import BadInput
from testbed.lab import system
from testbed.lab.api import Lab
from testbed.paths import TEMPLATES
from testbed.probes.capture import capture, start_capture
from testbed.probes.clientip import client_ip_probe
from testbed.probes.rtt import rtt_probe

pytestmark = pytest.mark.integration

NLB = TEMPLATES / "nlb.yaml"
# Generous: the lab's NLB is conntrack NAT in the switch, a few tenths of a ms here; a
# ratio this large would mean every connection took a slow path.
MAX_VIA_OVER_DIRECT_P50 = 5.0


@pytest.fixture(scope="module")
def nlb_lab():
    """templates/nlb.yaml: instance targets, client IP preserved; every target healthy
    (while some are still `initial`, the NLB sends only to the others, and a probe could find
    no connection at its target)."""
    with Lab.up(str(NLB)) as lab:
        lab.wait_healthy(timeout=60)
        yield lab


def ip_target_template(tmp_path: Path, lab: Lab) -> Path:
    """nlb.yaml with the web target group as IP targets and preservation off."""
    text = NLB.read_text()
    swaps = [
        (
            "      TargetType: instance\n",
            "      TargetType: ip\n      TargetGroupAttributes:\n"
            '        - {Key: preserve_client_ip.enabled, Value: "false"}\n',
        ),
        (
            "      Targets:\n"
            + "".join(f"        - {{Id: !Ref {h}}}\n" for h in ("WebA1", "WebA2", "WebB1", "WebB2"))
            + "  WebListener:",
            "      Targets:\n"
            + "".join(
                f"        - {{Id: {lab.host(h).ip}}}\n"
                for h in ("WebA1", "WebA2", "WebB1", "WebB2")
            )
            + "  WebListener:",
        ),
    ]
    for old, new in swaps:
        assert text.count(old) == 1, f"nlb.yaml changed: cannot find {old!r}"
        text = text.replace(old, new)
    path = tmp_path / "nlb-ip-targets.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 0
    return path


def processes_in(lab: Lab, host: str) -> list[str]:
    """Command names of the processes in a host's namespace."""
    names = []
    for pid in system.netns_pids(naming.netns_name(lab.name, host)):
        try:
            names.append(Path(f"/proc/{pid}/comm").read_text().strip())
        except FileNotFoundError:
            continue
    return names


def public_node_ip(lab: Lab) -> str:
    return lab.outputs["NlbNodePublicIps"].split(",")[0]


def test_a_capture_stops_at_its_packet_count_and_leaves_nothing_running(nlb_lab):
    web = nlb_lab.host("WebA1")
    pinger = nlb_lab.host("WebA2").popen(["ping", "-c", "50", "-i", "0.05", web.ip])
    try:
        pcap = capture(web, "icmp", seconds=20, max_packets=6, label="bounded")
    finally:
        pinger.kill()
        pinger.wait()
    pkts = rdpcap(str(pcap))
    assert len(pkts) == 6
    assert all(ICMP in p for p in pkts)
    assert pcap.is_relative_to(nlb_lab.dir)
    assert pcap.suffix == ".pcap"
    assert not {"tcpdump", "timeout"} & set(processes_in(nlb_lab, "WebA1"))
    with pytest.raises(BadInput, match="filter"):
        start_capture(web, "tcp and (", label="bad")
    assert not {"tcpdump", "timeout"} & set(processes_in(nlb_lab, "WebA1"))


def test_an_exception_inside_a_capture_still_ends_it(nlb_lab):
    cap = start_capture(nlb_lab.host("WebB2"), "tcp", label="interrupted")

    def probe_that_fails() -> None:
        with cap:
            assert "tcpdump" in processes_in(nlb_lab, "WebB2")
            raise RuntimeError("the probe failed half-way")

    with pytest.raises(RuntimeError, match="half-way"):
        probe_that_fails()
    assert cap.proc is not None
    assert cap.proc.poll() is not None
    assert not {"tcpdump", "timeout"} & set(processes_in(nlb_lab, "WebB2"))


def test_instance_targets_see_the_internet_clients_real_address(nlb_lab):
    client = nlb_lab.host("Client1")
    assert client.ip.startswith("198.51.100.")
    res = client_ip_probe(
        nlb_lab, "Client1", f"http://{public_node_ip(nlb_lab)}/", "WebA1", count=20
    )
    assert not res.errors
    assert res.capture_complete
    # Cross-zone is off: node 1a sends to WebA1 and WebA2 only; 20 flows all missing
    # WebA1 has a chance of 2**-20.
    assert res.seen
    assert len(res.seen) + sum(res.elsewhere.values()) == 20
    assert set(res.elsewhere) <= {"WebA2"}
    assert res.sources == {client.ip: len(res.seen)}
    assert res.preserved is True
    assert {(s.kind, s.who, s.dst, s.dport) for s in res.seen} == {
        ("client", "Client1", nlb_lab.host("WebA1").ip, 80)
    }
    # Only the destination was translated: the target sees the client's own ports too.
    ports = {c["seq"]: c["local_port"] for c in res.connections}
    assert all(s.sport == ports[s.seq] for s in res.seen)
    syns = [p for p in rdpcap(str(res.pcap)) if TCP in p and p[TCP].flags == "S"]
    assert sum(1 for p in syns if p["IP"].src == client.ip) == len(res.seen)


def test_the_cli_prints_the_sources_and_the_pcap(nlb_lab, capsys):
    code = main(
        [
            "probe",
            "client-ip",
            nlb_lab.name,
            "--from",
            "Client2",
            "--to",
            public_node_ip(nlb_lab),
            "--on",
            "WebA2",
            "-n",
            "20",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "client (Client2)" in out
    assert nlb_lab.host("Client2").ip in out
    assert "client IP preserved" in out
    pcap = Path(out.split("pcap: ")[1].split()[0])
    assert pcap.exists()
    assert pcap.is_relative_to(nlb_lab.dir)


def test_ip_targets_without_preservation_see_the_nodes_address(nlb_lab, tmp_path):
    template = ip_target_template(tmp_path, nlb_lab)
    with Lab.up(str(template)) as lab:
        lab.wait_healthy(timeout=60)
        node = next(
            n for lb in lab.state["load_balancers"] for n in lb["nodes"] if n["az"] == "us-east-1a"
        )
        res = client_ip_probe(lab, "Client1", f"http://{node['public_ip']}/", "WebA1", count=20)
        assert not res.errors
        assert res.seen
        assert res.sources == {node["ip"]: len(res.seen)}
        assert res.preserved is False
        assert {(s.kind, s.who) for s in res.seen} == {("lb-node", node["host"])}
        assert lab.host("Client1").ip not in res.sources
        assert res.pcap.exists()


def test_rtt_via_the_nlb_and_direct(nlb_lab, tmp_path, record_property):
    # WebB1 is a client here, in the other AZ: node 1a (cross-zone off) sends only to
    # WebA1/WebA2, never back to WebB1 itself; direct goes to WebA1, the same distance.
    node_ip = nlb_lab.outputs["NlbNodePrivateIps"].split(",")[0]
    direct = nlb_lab.host("WebA1").ip
    out = tmp_path / "rtt.csv"
    res = rtt_probe(nlb_lab, "WebB1", f"{node_ip}:80", f"{direct}:80", samples=60, out=out)
    for s in (res.via, res.direct):
        assert s.n >= 50
        assert s.failed == 0
        assert 0 < s.min_ms <= s.p50_ms <= s.p90_ms <= s.p99_ms <= s.max_ms < 1000
    ratio = res.added["p50"]["ratio"]
    summary = (
        f"via p50/p90/p99 {res.via.p50_ms:.3f}/{res.via.p90_ms:.3f}/"
        f"{res.via.p99_ms:.3f} ms, direct {res.direct.p50_ms:.3f}/"
        f"{res.direct.p90_ms:.3f}/{res.direct.p99_ms:.3f} ms, p50 ratio {ratio:.2f}"
    )
    print(summary)
    record_property("rtt", summary)
    assert ratio < MAX_VIA_OVER_DIRECT_P50, summary
    # The wire RTT lies inside the connect() call that made it: the pairing is right.
    timed = [r for r in res.rows if r["rtt_ms"] is not None]
    assert all(r["rtt_ms"] <= r["connect_ms"] + 0.01 for r in timed)
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 120
    assert {r["path"] for r in rows} == {"via", "direct"}
    assert res.csv.exists()
    assert res.pcap.exists()
