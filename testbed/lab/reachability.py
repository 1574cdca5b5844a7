"""Reachability: what AWS allows between a stack's hosts, and what the lab really does.

`verdicts()` / `expected()` apply AWS's rules to the network plan (pure: testbed.plan.reach
says passes, or which layer drops it: security group, network ACL, route); `measure()` sends
real packets from every host of a running lab to every address, all at once: ping (icmp),
a TCP connection, or a UDP datagram to a port. `testbed reach` and the demo print both; the
integration tests require them to be equal.
"""

from __future__ import annotations

import concurrent.futures
import shlex
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from testbed.plan import reach
from testbed.plan.balancers import PROXY_TYPES
from testbed.plan.network import HostPlan, NetworkPlan
from testbed.plan.reach import Verdict

Pair = tuple[str, str]  # (source host, destination address)


@dataclass(frozen=True)
class Address:
    """An address a host can be reached at: its private (or client) IP, a secondary or second
    interface's address, or its public IP. owner: the attachment ("HOST" or "HOST/eth1")."""

    owner: str
    ip: str
    public: bool

    @property
    def host(self) -> str:
        """The host whose namespace answers (the owner of a "HOST/ethN" interface)."""
        return self.owner.split("/", 1)[0]

    @property
    def label(self) -> str:
        return f"{self.owner}{' (public)' if self.public else ''}"


# Lab machinery, not instances: load balancer nodes, the resolver and NAT gateways have tests
# of their own. (ALB and CLB nodes can be destinations: see addresses(lb_nodes=True).)
SERVICE_KINDS = reach.SERVICE_KINDS
# The roles of load balancer nodes that answer on their own addresses (HAProxy).
PROXY_NODE_ROLES = tuple(f"{t}-node" for t in PROXY_TYPES)


def hosts(plan: NetworkPlan) -> list[HostPlan]:
    """The hosts the matrix is about (its sources): instances and internet clients."""
    return [h for h in plan.hosts if h.kind not in SERVICE_KINDS]


def addresses(plan: NetworkPlan, lb_nodes: bool = False) -> list[Address]:
    """Every address of the matrix's hosts: each interface's private address and secondary
    addresses, public addresses (EIPs); with lb_nodes, also the application and classic load
    balancers' nodes (HAProxy answers there itself; NLB and GWLB nodes pass traffic on to
    targets)."""
    out = []
    for a in plan.attachments():
        node = a.kind == "lb-node" and a.role in PROXY_NODE_ROLES
        if a.kind in SERVICE_KINDS and not (lb_nodes and node):
            continue
        out += [Address(a.name, ip, False) for ip in (a.ip, *a.extra_ips)]
        if a.public_ip:
            out.append(Address(a.name, a.public_ip, True))
    return out


def allowed(plan: NetworkPlan, src: HostPlan, dst: Address) -> bool:
    """Would AWS deliver a ping from `src` to `dst` (and its reply)?"""
    return judge(plan, src, dst.ip, "icmp", None).passes


def judge(plan: NetworkPlan, src: HostPlan, ip: str, proto: str, port: int | None) -> Verdict:
    """The verdict from host `src` (from the interface it would send on) to `ip`."""
    return reach.verdict(plan, reach.source_attachment(plan, src, ip), ip, proto, port)


def verdicts(
    plan: NetworkPlan,
    proto: str = "icmp",
    port: int | None = None,
    sources: Iterable[HostPlan] | None = None,
    targets: Iterable[Address] | None = None,
) -> dict[Pair, Verdict]:
    """(source host, destination IP) -> AWS's verdict, for every pair but a host to itself."""
    targets = list(addresses(plan) if targets is None else targets)
    return {
        (src.name, a.ip): judge(plan, src, a.ip, proto, port)
        for src in (hosts(plan) if sources is None else sources)
        for a in targets
        if a.host != src.name
    }


def expected(plan: NetworkPlan, proto: str = "icmp", port: int | None = None) -> dict[Pair, bool]:
    """(source host, destination IP) -> allowed, for every pair except a host to itself."""
    return {k: v.passes for k, v in verdicts(plan, proto, port).items()}


def measure(
    lab,
    plan: NetworkPlan,
    wait_s: float = 1.0,
    tries: int = 2,
    proto: str = "icmp",
    port: int | None = None,
    pairs: Iterable[Pair] | None = None,
) -> dict[Pair, bool]:
    """Send `proto` from every host of a running lab (`lab` is an api.Lab) to every other
    address (or only `pairs`), all at once: True where the packet's answer came back."""
    if pairs is None:
        pairs = [
            (src.name, a.ip) for src in hosts(plan) for a in addresses(plan) if a.host != src.name
        ]
    by_source: dict[str, list[str]] = {}
    for src, ip in pairs:
        by_source.setdefault(src, []).append(ip)

    def from_host(item: tuple[str, list[str]]) -> dict[Pair, bool]:
        src, ips = item
        host = lab.host(src)
        limit = 30 + wait_s * tries * 2
        if proto == "icmp":
            # One shell per source, all pings in parallel: a few seconds for the whole matrix.
            script = (
                " ".join(
                    f"(ping -n -q -c {tries} -i 0.2 -W {wait_s:g} {shlex.quote(ip)} "
                    f">/dev/null 2>&1 && echo {ip} ok || echo {ip} no) &"
                    for ip in ips
                )
                + " wait"
            )
            out = host.cmd(script, timeout=limit)
        else:
            argv = [sys.executable, "-m", "testbed.lab.reach_probe", "--proto", proto]
            argv += ["--port", str(port), "--wait", f"{wait_s:g}", "--tries", str(tries), *ips]
            out = host.run(argv, timeout=limit).stdout
        seen = dict(line.split() for line in out.splitlines() if len(line.split()) == 2)
        return {(src, ip): seen.get(ip) == "ok" for ip in ips}

    result: dict[Pair, bool] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        for part in pool.map(from_host, by_source.items()):
            result.update(part)
    return result


def format_matrix(
    plan: NetworkPlan,
    measured: dict[Pair, bool],
    want: dict[Pair, bool] | None = None,
) -> str:
    """A table: one row per source host, one column per destination address.

    'ok' reachable, '--' not reachable; a '!' marks a cell that differs from AWS's rules."""
    cols = addresses(plan)
    src_w = max(max(len(h.name) for h in hosts(plan)), len("from \\ to")) + 2
    widths = [max(len(a.owner), len(a.ip)) + 1 for a in cols]
    head1 = " " * src_w + "".join(a.owner.ljust(w) for a, w in zip(cols, widths))
    head2 = "from \\ to".ljust(src_w) + "".join(a.ip.ljust(w) for a, w in zip(cols, widths))
    lines = [head1.rstrip(), head2.rstrip()]
    for src in hosts(plan):
        cells = []
        for a, w in zip(cols, widths):
            key = (src.name, a.ip)
            if a.host == src.name:
                cell = "."
            else:
                cell = "ok" if measured.get(key) else "--"
                if want is not None and want.get(key) != measured.get(key):
                    cell += "!"
            cells.append(cell.ljust(w))
        lines.append((src.name.ljust(src_w) + "".join(cells)).rstrip())
    return "\n".join(lines)


def differences(
    measured: dict[Pair, bool],
    want: dict[Pair, bool],
    why: dict[Pair, Verdict] | None = None,
) -> list[str]:
    """Human-readable list of the cells where the lab and AWS's rules disagree (with AWS's
    reason when `why` has the verdicts)."""
    out = []
    for key in sorted(want):
        if measured.get(key) != want[key]:
            src, ip = key
            reason = f" ({why[key].text})" if why and key in why and not want[key] else ""
            out.append(
                f"{src} -> {ip}: AWS {'allows' if want[key] else 'blocks'} it{reason}, "
                f"the lab {'delivers' if measured.get(key) else 'does not'}"
            )
    return out
