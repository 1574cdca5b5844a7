"""Measure the server harness (testbed.cluster.harness) on this machine: the cost of a server
and the paths a lab across servers uses. Prints one JSON object (docs/scaling.md quotes it).

- bring-up (until sshd and OVS answer in every server) and teardown time of 1, 2, 3 servers;
- resident memory (VmRSS) of each server's processes: ovsdb-server, ovs-vswitchd, sshd;
- RTT (ping, 20 packets) and TCP throughput (iperf3, 3 s) between two hosts:
  within_server: both hosts on one server's OVS bridge (userspace datapath);
  across_vxlan:  one host on each server's OVS bridge, the bridges joined by a kernel VXLAN
                 device in each server over the underlay (the inter-AZ path of a lab);
  vxlan_only:    the two servers' VXLAN devices, no OVS (the tunnel alone);
  ssh_tunnel:    an ssh Ethernet tunnel between the servers (tap9 at both ends: what
                 Cluster Edition's RemoteLink makes), no OVS;
  underlay:      server to server on the underlay (veth + Linux bridge), no tunnel.
Hosts are network namespaces made inside the servers (over ssh, as a lab on them would).
Run as root from the worktree: .venv/bin/python scripts/harness_numbers.py [--rounds N]
Everything is removed at the end (the harness and all it holds).
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from testbed.cluster.harness import Server, ServerHarness
from testbed.lab import system

PREFIX = "s"
HOST_MTU = 1450  # room for the VXLAN header (50 bytes) in the underlay's 1500
VNI = 4300


def memory_kib(server: Server) -> dict[str, dict[str, int]]:
    """VmRSS and Pss (KiB; Pss shares shared pages among their users) of the server's
    processes, by command name (summed), and their total."""
    out: dict[str, dict[str, int]] = {}
    for pid in system.netns_pids(server.netns):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        name = status.split("Name:", 1)[1].split()[0]
        rss = re.search(r"VmRSS:\s+(\d+)", status)
        pss = re.search(r"^Pss:\s+(\d+)", rollup, re.M)
        mine = out.setdefault(name, {"rss": 0, "pss": 0})
        mine["rss"] += int(rss.group(1)) if rss else 0
        mine["pss"] += int(pss.group(1)) if pss else 0
    out["total"] = {k: sum(v[k] for v in list(out.values())) for k in ("rss", "pss")}
    return out


def bring_up_cost(counts: tuple[int, ...] = (1, 2, 3)) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for n in counts:
        started = time.monotonic()
        with ServerHarness(PREFIX, count=n) as h:
            up = time.monotonic() - started
            memory = [memory_kib(s) for s in h.servers]
            down_started = time.monotonic()
        down = time.monotonic() - down_started
        result[str(n)] = {"up_s": round(up, 2), "down_s": round(down, 2), "memory_kib": memory}
    return result


def sh(server: Server, script: str) -> str:
    out = server.run(["sh", "-c", script], timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"{server.name}: {script}\n{out.stderr}")
    return out.stdout


def add_host(server: Server, host: str, address: str, bridge: str) -> None:
    """A host namespace inside the server, on the server's OVS bridge (like a lab's)."""
    sh(
        server,
        f"""set -e
        ip netns add {host}
        ip link add {host}-p type veth peer name eth0 netns {host}
        ip link set {host}-p mtu {HOST_MTU} up
        ip -n {host} link set eth0 mtu {HOST_MTU} up
        ip -n {host} link set lo up
        ip -n {host} addr add {address}/24 dev eth0
        ip netns exec {host} ethtool -K eth0 tx off >/dev/null
        ethtool -K {host}-p tx off >/dev/null
        ovs-vsctl add-port {bridge} {host}-p
        """,
    )


def ping_rtt(server: Server, src_ns: str | None, dst: str) -> float:
    run = f"ip netns exec {src_ns} " if src_ns else ""
    out = sh(server, f"{run}ping -c 20 -i 0.05 -W 2 {dst}")
    m = re.search(r"= [\d.]+/([\d.]+)/", out)
    assert m, out
    return float(m.group(1))


def iperf(client: Server, c_ns: str | None, server: Server, s_ns: str | None, dst: str) -> float:
    s_run = f"ip netns exec {s_ns} " if s_ns else ""
    c_run = f"ip netns exec {c_ns} " if c_ns else ""
    sh(server, f"{s_run}iperf3 -s -1 -D -B {dst}")
    # Wait until the server listens (a fact, not a sleep).
    for _ in range(100):
        if f"{dst}:5201" in sh(server, f"{s_run}ss -ltn"):
            break
        time.sleep(0.05)
    out = json.loads(sh(client, f"{c_run}iperf3 -c {dst} -t 3 -J"))
    return round(out["end"]["sum_received"]["bits_per_second"] / 1e9, 2)


def paths(rounds: int) -> dict[str, Any]:
    with ServerHarness(PREFIX, count=2) as h:
        srv1, srv2 = h.servers
        for s in (srv1, srv2):
            sh(
                s,
                "ovs-vsctl add-br br0 -- set bridge br0 datapath_type=netdev && ip link set br0 up",
            )
        add_host(srv1, "h1", "10.77.0.1", "br0")
        add_host(srv1, "h2", "10.77.0.2", "br0")
        add_host(srv2, "h3", "10.77.0.3", "br0")
        for s, peer, inner in ((srv1, srv2, "10.78.0.1"), (srv2, srv1, "10.78.0.2")):
            sh(
                s,
                f"""set -e
                ip link add vx0 type vxlan id {VNI} local {s.address} remote {peer.address} \
                    dstport 4789 dev eth0
                ip link set vx0 up
                ovs-vsctl add-port br0 vx0
                ip link add vx1 type vxlan id {VNI + 1} local {s.address} \
                    remote {peer.address} dstport 4790 dev eth0
                ip addr add {inner}/24 dev vx1
                ip link set vx1 up
                """,
            )
        result: dict[str, Any] = {"memory_kib_with_bridge_and_hosts": memory_kib(srv1)}
        # Cluster Edition's RemoteLink: `ssh -o Tunnel=Ethernet -w 9:9` from srv1 to srv2.
        tunnel = subprocess.Popen(
            srv1.ssh_argv("ssh -n -o Tunnel=Ethernet -w 9:9 srv2 'sleep 600'"),
            stdin=subprocess.DEVNULL,
        )
        for _ in range(200):
            if all(s.run(["ip", "link", "show", "tap9"]).returncode == 0 for s in (srv1, srv2)):
                break
            time.sleep(0.05)
        for s, inner in ((srv1, "10.79.0.1"), (srv2, "10.79.0.2")):
            sh(s, f"ip addr add {inner}/24 dev tap9 && ip link set tap9 up")
        cases = {
            "within_server": (srv1, "h1", srv1, "h2", "10.77.0.2"),
            "across_vxlan": (srv1, "h1", srv2, "h3", "10.77.0.3"),
            "vxlan_only": (srv1, None, srv2, None, "10.78.0.2"),
            "ssh_tunnel": (srv1, None, srv2, None, "10.79.0.2"),
            "underlay": (srv1, None, srv2, None, srv2.address),
        }
        for name, (c, c_ns, s, s_ns, dst) in cases.items():
            ping_rtt(c, c_ns, dst)  # warm-up: ARP, MAC learning
            rtts = [ping_rtt(c, c_ns, dst) for _ in range(rounds)]
            gbps = [iperf(c, c_ns, s, s_ns, dst) for _ in range(rounds)]
            result[name] = {
                "rtt_ms": round(statistics.median(rtts), 3),
                "tcp_gbit_s": statistics.median(gbps),
                "runs_gbit_s": gbps,
            }
        tunnel.kill()
        tunnel.wait()
        return result


def main() -> int:
    rounds = 3
    for arg in sys.argv[1:]:
        if arg.startswith("--rounds="):
            rounds = int(arg.split("=", 1)[1])
    print(json.dumps({"bring_up": bring_up_cost(), "paths": paths(rounds)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
