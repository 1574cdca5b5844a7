"""`testbed cluster demo`: a two-AZ NLB lab across two servers of a harness on this machine.

Issue 18. Makes two servers (testbed.cluster.harness), brings templates/nlb.yaml up with
cross-zone balancing on, one AZ per server (testbed.lab.servers), and shows:
- cross-zone balancing across the tunnel: requests from an internet client to the node of
  us-east-1a answered by targets of both AZs, i.e. both servers;
- client IP preservation: every target saw the client's own address;
- RTT and TCP throughput between two instances of one server, and across the tunnel;
then takes the lab down and checks that nothing of it is left on any server, and removes the
servers. Each step is reported through `say`.

The lab's folder must be at the same path on the servers; each harness server has its own
/run, so the demo keeps its labs and harness under DEMO_STATE_DIR when the state root is in
/run (testbed clean / testbed cluster clean with TESTBED_STATE_DIR set to it after a kill -9).
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from testbed import naming
from testbed.errors import LabError
from testbed.lab.api import Lab, LabHost
from testbed.lab.servers import remote_leftovers
from testbed.lab.teardown import leftovers
from testbed.waiting import wait_for

DEMO_STATE_DIR = "/var/tmp/elb-testbed"
TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "nlb.yaml"


@dataclass
class DemoResult:
    """What the demo measured."""

    lab: str = ""
    servers: dict[str, str] = field(default_factory=dict)  # AZ -> server
    bring_up_s: float = 0.0
    healthy_s: float = 0.0
    requests: int = 0
    answered_by: dict[str, int] = field(default_factory=dict)  # target -> requests
    answered_by_server: dict[str, int] = field(default_factory=dict)
    client_ips: list[str] = field(default_factory=list)  # what the targets saw
    client_ip: str = ""
    rtt_ms: dict[str, float] = field(default_factory=dict)  # "same server" / "across"
    throughput_mbps: dict[str, float] = field(default_factory=dict)
    tunnel: str = ""
    mtu: str = ""
    teardown_s: float = 0.0
    left_over: list[str] = field(default_factory=list)

    @property
    def cross_zone(self) -> bool:
        return len(self.answered_by_server) >= 2

    @property
    def client_ip_preserved(self) -> bool:
        return bool(self.client_ips) and set(self.client_ips) == {self.client_ip}

    def to_json(self) -> str:
        d = asdict(self)
        d["cross_zone"] = self.cross_zone
        d["client_ip_preserved"] = self.client_ip_preserved
        return json.dumps(d, indent=1)


def state_dir_for_servers() -> str | None:
    """The state directory the demo needs (None: the current one will do)."""
    root = str(naming.state_root())
    return DEMO_STATE_DIR if root == "/run" or root.startswith("/run/") else None


def run_demo(
    say: Callable[[str], None] = print,
    requests: int = 24,
    measure: bool = True,
    prefix: str | None = None,
) -> DemoResult:
    """Run the demo (see the module's doc); LabError when a step fails (everything made is
    removed first)."""
    from testbed.cluster.harness import ServerHarness

    moved = state_dir_for_servers()
    if moved:
        os.environ["TESTBED_STATE_DIR"] = moved
        say(f"state directory {moved} (harness servers have their own /run)")
    prefix = (prefix or os.environ.get("TESTBED_NAME_PREFIX") or "c").lower()[:1]
    if not prefix.isalpha():
        prefix = "c"
    result = DemoResult()
    with ServerHarness(prefix, count=2) as harness:
        s1, s2 = harness.servers[:2]
        say(
            f"servers: {s1.name} ({s1.address}), {s2.name} ({s2.address}); front end "
            f"{harness.front_end_address}"
        )
        result.servers = {"us-east-1a": s1.name, "us-east-1b": s2.name}
        name = f"{prefix}d{os.getpid() % 10000}"
        result.lab = name
        started = time.monotonic()
        with Lab.up(
            str(TEMPLATE),
            {"CrossZone": "true"},
            name=name,
            servers=result.servers,
            ssh_config=str(harness.ssh_config),
        ) as lab:
            result.bring_up_s = time.monotonic() - started
            state = lab.state
            result.tunnel = f"{state.get('tunnel')} ({state.get('tunnel_reason')})"
            result.mtu = str(state.get("mtu"))
            say(f"lab {name} up in {result.bring_up_s:.1f} s: tunnel {result.tunnel}")
            say(f"mtu: {result.mtu}")
            for h in lab.hosts:
                say(f"  {h.name:10} {h.ip:15} on {h.info.get('server')}")
            result.healthy_s = lab.wait_healthy("WebTargets", timeout=90)
            say(f"every target healthy {result.healthy_s:.1f} s later")
            _traffic(lab, result, requests, say)
            if measure:
                _measure(lab, result, say)
            stopping = time.monotonic()
        result.teardown_s = time.monotonic() - stopping
        left = [f"this machine: {k} {v}" for k, v in leftovers(name).items() if v]
        servers_left = []
        for server in (s1, s2):
            out = server.run(
                "ip netns list; ovs-vsctl --timeout=10 list-br; ip -o link show", timeout=30
            ).stdout
            servers_left += [
                f"{server.name}: {line.split()[0]}"
                for line in out.splitlines()
                if naming.prefix(name) in line
            ]
        result.left_over = left + servers_left
        say(
            f"lab down in {result.teardown_s:.1f} s; left on the servers and here: "
            f"{', '.join(result.left_over) or 'nothing'}"
        )
    say("servers removed")
    return result


def _traffic(lab: Lab, result: DemoResult, requests: int, say: Callable[[str], None]) -> None:
    """HTTP from the internet client to the us-east-1a node: who answers, what it saw."""
    client = lab.host("Client1")
    node = next(h for h in lab.hosts if h.name.endswith("-1a"))
    result.client_ip = client.ip
    servers = {h.name: str(h.info.get("server")) for h in lab.hosts}
    by: Counter[str] = Counter()
    seen = []
    for _ in range(requests):
        out = client.run(["curl", "-s", "-m", "5", f"http://{node.public_ip}/"], timeout=20)
        try:
            answer: dict[str, Any] = json.loads(out.stdout)
        except ValueError:
            raise LabError(f"no answer through {node.public_ip}: {out.stderr.strip()}") from None
        by[answer["instance"]] += 1
        seen.append(answer["client"]["ip"])
    result.requests = requests
    result.answered_by = dict(sorted(by.items()))
    per_server: Counter[str] = Counter()
    for target, n in by.items():
        per_server[servers.get(target, "?")] += n
    result.answered_by_server = dict(sorted(per_server.items()))
    result.client_ips = sorted(set(seen))
    say(
        f"{requests} requests to {node.name} ({node.public_ip}): answered by "
        + ", ".join(f"{t} ({servers.get(t)}) {n}" for t, n in result.answered_by.items())
    )
    say(
        f"cross-zone across the tunnel: {'yes' if result.cross_zone else 'NO'}; targets saw "
        f"client {', '.join(result.client_ips)} (the client is {client.ip}): client IP "
        f"{'preserved' if result.client_ip_preserved else 'NOT preserved'}"
    )


def _measure(lab: Lab, result: DemoResult, say: Callable[[str], None]) -> None:
    """RTT (ping) and TCP throughput (iperf3, 3 s) between two instances of one server and
    between instances of the two servers."""
    a1, a2, b1 = lab.host("WebA1"), lab.host("WebA2"), lab.host("WebB1")
    for label, src, dst in (("same server", a1, a2), ("across servers", a1, b1)):
        out = src.cmd(f"ping -c 20 -i 0.05 -q {dst.ip}", timeout=30)
        m = re.search(r"= [\d.]+/([\d.]+)/", out)
        if m:
            result.rtt_ms[label] = float(m.group(1))
        server = dst.popen(
            ["iperf3", "-s", "-1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            listening = functools.partial(_listens, dst, 5201)
            wait_for(listening, 20, f"iperf3 listening in {dst.name}")
            run = src.run(["iperf3", "-c", dst.ip, "-t", "3", "-J"], timeout=30)
            try:
                end = json.loads(run.stdout)["end"]["sum_received"]
                result.throughput_mbps[label] = end["bits_per_second"] / 1e6
            except (ValueError, KeyError):
                pass
        finally:
            server.kill()
            server.wait()
        say(
            f"{label}: {src.name} -> {dst.name} RTT {result.rtt_ms.get(label, float('nan')):.2f}"
            f" ms, TCP {result.throughput_mbps.get(label, float('nan')):.0f} Mbit/s"
        )


def _listens(host: LabHost, port: int) -> bool:
    return f":{port}" in host.cmd(f"ss -ltnH sport = :{port}", timeout=20)


__all__ = ["DemoResult", "remote_leftovers", "run_demo"]
