"""The appliance's compiled data path without root: built with gcc (warnings are errors),
run on stand-ins for its descriptors (a UDP socket on a loopback address, datagram socket
pairs where the TUN devices would be), and fed GENEVE built by hand.

It answers GENEVE to the sender's UDP 6081, so the GWLB node's side is a socket on 6081 of a
random 127/8 address."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from testbed.gwlb import build_fastpath
from testbed.gwlb.appliance import Appliance, flow_rows, parse_stats
from testbed.gwlb.peer import INNER_ETHERNET, inner_packet
from testbed.packets import geneve

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

TCP_80 = inner_packet(6, "198.51.100.10", 40000, "10.0.1.10", 80)
ICMP = inner_packet(1, "10.0.1.10", 7, "198.51.100.10", 0)
ENDPOINT = geneve.endpoint_id("10.0.0.100")


def header(cookie: int, protocol: int = geneve.PROTO_IPV4) -> bytes:
    return geneve.gwlb_header(ENDPOINT, cookie, protocol=protocol).serialize()


def forwarded(packet: bytes) -> bytes:
    """The packet as the kernel forwards it: TTL one less (checksum not redone: the data
    path does not read it)."""
    return packet[:8] + bytes([packet[8] - 1]) + packet[9:]


class Harness:
    """The binary running on stand-in descriptors, and their other ends."""

    def __init__(self, binary: Path, tmp: Path) -> None:
        base = f"127.{random.randrange(1, 255)}.{random.randrange(1, 255)}"
        self.appliance = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.appliance.bind((f"{base}.4", 0))
        self.node = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.node.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.node.bind((f"{base}.5", geneve.UDP_PORT))
        self.node.settimeout(5)
        self.tun_in, tun_in = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.tun_out, tun_out = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.tun_in.settimeout(5)
        tun_out.setblocking(False)  # the data path reads until EAGAIN, as from a TUN device
        self.control, control = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.control.settimeout(5)
        self.stats_path = tmp / "stats.txt"
        fds = (self.appliance.fileno(), tun_in.fileno(), tun_out.fileno(), control.fileno())
        argv = [str(binary), *map(str, fds), str(self.stats_path), str(os.getpid())]
        self.proc = subprocess.Popen(argv, pass_fds=fds)
        for end in (tun_in, tun_out, control):
            end.close()
        self.to = self.appliance.getsockname()

    def ask(self, command: bytes) -> None:
        self.control.send(command)
        assert self.control.recv(1) == command

    def stats(self) -> tuple[dict[str, int], dict[bytes, list]]:
        self.ask(b"S")
        return parse_stats(self.stats_path.read_text())

    def close(self) -> int:
        self.control.close()  # end of file: the data path ends
        code = self.proc.wait(timeout=5)
        for s in (self.appliance, self.node, self.tun_in, self.tun_out):
            s.close()
        return code


@pytest.fixture(scope="module")
def binary(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fastpath") / "appliance-fastpath"
    build_fastpath.compile_to(out, extra=("-Werror",))
    return out


@pytest.fixture
def fast(binary, tmp_path):
    h = Harness(binary, tmp_path)
    yield h
    assert h.close() == 0


@pytest.mark.parametrize("protocol", [geneve.PROTO_IPV4, geneve.PROTO_ETHERNET])
def test_inner_packet_through_the_tun_pair_and_back_with_its_header(fast, protocol):
    prefix = header(7, protocol) + (INNER_ETHERNET if protocol == geneve.PROTO_ETHERNET else b"")
    fast.node.sendto(prefix + TCP_80, fast.to)
    assert fast.tun_in.recv(65535) == TCP_80  # the inner IPv4 packet alone
    fast.tun_out.send(forwarded(TCP_80))
    data, sender = fast.node.recvfrom(65535)
    assert sender == fast.to
    assert data == prefix + forwarded(TCP_80)  # GENEVE (and the inner Ethernet) unchanged
    counters, flows = fast.stats()
    assert {k: counters[k] for k in ("geneve_in", "geneve_out", "bad", "orphans")} == {
        "geneve_in": 1,
        "geneve_out": 1,
        "bad": 0,
        "orphans": 0,
    }
    assert counters["bytes_in"] == counters["bytes_out"] == len(data)
    (row,) = flow_rows(flows)
    assert (row["proto"], row["a"], row["a_port"], row["b"], row["b_port"]) == (
        6,
        "198.51.100.10",
        40000,
        "10.0.1.10",
        80,
    )
    assert (row["packets_ab"], row["cookie"], row["gwlb"]) == (1, 7, fast.node.getsockname()[0])


def test_each_direction_goes_back_with_its_own_header(fast):
    reply = inner_packet(6, "10.0.1.10", 80, "198.51.100.10", 40000)
    fast.node.sendto(header(1) + TCP_80, fast.to)
    fast.node.sendto(header(2) + reply, fast.to)
    fast.node.sendto(header(3) + ICMP, fast.to)
    assert [fast.tun_in.recv(65535) for _ in range(3)] == [TCP_80, reply, ICMP]
    for p in (ICMP, reply, TCP_80):
        fast.tun_out.send(forwarded(p))
    back = [fast.node.recv(65535) for _ in range(3)]
    assert back == [header(c) + forwarded(p) for c, p in ((3, ICMP), (2, reply), (1, TCP_80))]
    rows = flow_rows(fast.stats()[1])
    # the TCP flow once, its two directions merged ("a" sent first); the ping apart
    assert [(r["proto"], r["a"], r["packets_ab"], r["packets_ba"]) for r in rows] == [
        (6, "198.51.100.10", 1, 1),
        (1, "10.0.1.10", 1, 0),
    ]


def test_a_new_header_for_a_known_flow_replaces_the_old_one(fast):
    for cookie in (1, 9):
        fast.node.sendto(header(cookie) + TCP_80, fast.to)
        fast.tun_in.recv(65535)
    fast.tun_out.send(forwarded(TCP_80))
    assert fast.node.recv(65535) == header(9) + forwarded(TCP_80)


def test_what_is_not_geneve_carrying_ipv4_is_counted_bad(fast):
    good = header(1) + TCP_80
    ipv6 = bytearray(good)
    ipv6[2:4] = geneve.PROTO_IPV6.to_bytes(2, "big")
    version1 = bytes([good[0] | 0x40]) + good[1:]
    arp_frame = header(1, geneve.PROTO_ETHERNET) + INNER_ETHERNET[:12] + b"\x08\x06" + TCP_80
    for bad in (bytes(ipv6), version1, good[:30], arp_frame, b"\x08\x00", header(1) + b"\x60" * 40):
        fast.node.sendto(bad, fast.to)
    fast.node.sendto(good, fast.to)  # the only one that reaches tun-in
    assert fast.tun_in.recv(65535) == TCP_80
    counters, flows = fast.stats()
    assert (counters["bad"], counters["geneve_in"], len(flows)) == (6, 1, 1)


def test_orphans_and_hang(fast):
    fast.tun_out.send(forwarded(ICMP))  # never came through the tunnel
    fast.ask(b"H")
    fast.node.sendto(header(1) + TCP_80, fast.to)
    # Loopback queues both before the command; the data path reads its sockets first.
    counters, _ = fast.stats()
    assert (counters["orphans"], counters["hung"], counters["geneve_in"]) == (1, 1, 1)
    fast.ask(b"R")
    fast.node.sendto(header(1) + TCP_80, fast.to)
    assert fast.tun_in.recv(65535) == TCP_80  # the hung one never arrived: this is the second


def test_it_ends_with_its_parent_gone(binary, tmp_path):
    h = Harness(binary, tmp_path)
    h.control.close()
    assert h.proc.wait(timeout=5) == 0
    wrong_parent = [str(binary), "0", "0", "0", "0", str(tmp_path / "s"), "1"]
    assert subprocess.run(wrong_parent).returncode == 1  # its parent is not PID 1


def test_appliance_falls_back_to_python_without_the_binary(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(build_fastpath.DIR_ENV, str(tmp_path))
    assert build_fastpath.find() is None
    assert Appliance("Fw1", "10.0.2.4", []).choose_datapath() == "python"
    out = capsys.readouterr().out
    assert "Python data path" in out
    assert "python -m testbed.gwlb.build_fastpath" in out
    with pytest.raises(RuntimeError, match="no compiled data path"):
        Appliance("Fw1", "10.0.2.4", [], datapath="c").choose_datapath()
    built = build_fastpath.build()
    assert built == build_fastpath.find() == build_fastpath.binary_path()
    assert built.name == f"appliance-fastpath-{build_fastpath.source_digest()}"
    stale = tmp_path / "appliance-fastpath-0000000000000000"
    stale.write_text("")
    assert build_fastpath.build() == built  # again: nothing to do, old builds removed
    assert sorted(p.name for p in tmp_path.iterdir()) == [built.name]
    assert Appliance("Fw1", "10.0.2.4", [], datapath="python").choose_datapath() == "python"
