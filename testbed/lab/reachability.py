"""Reachability: what AWS allows between a stack's hosts, and what the lab really does.

`expected()` applies AWS's rules to the network plan (pure); `measure()` pings every address
from every host of a running lab, all at once. The demo prints both; the integration tests
require them to be equal.
"""

from __future__ import annotations

import concurrent.futures
import shlex
from dataclasses import dataclass

from testbed.plan.network import HostPlan, NetworkPlan


@dataclass(frozen=True)
class Address:
    """An address a host can be reached at: its private (or client) IP, or its public IP."""

    owner: str
    ip: str
    public: bool

    @property
    def label(self) -> str:
        return f"{self.owner}{' (public)' if self.public else ''}"


# Lab machinery, not instances: load balancer nodes, the resolver and NAT gateways have
# their own tests.
SERVICE_KINDS = ("lb-node", "dns", "natgw")


def hosts(plan: NetworkPlan) -> list[HostPlan]:
    """The hosts the matrix is about: instances and internet clients."""
    return [h for h in plan.hosts if h.kind not in SERVICE_KINDS]


def addresses(plan: NetworkPlan) -> list[Address]:
    out = []
    for h in hosts(plan):
        out.append(Address(h.name, h.ip, False))
        if h.public_ip:
            out.append(Address(h.name, h.public_ip, True))
    return out


def has_internet(plan: NetworkPlan, h: HostPlan) -> bool:
    """An instance reaches the internet when its subnet routes 0.0.0.0/0 to an internet
    gateway and it has a public address for the gateway's 1:1 NAT."""
    if h.kind == "client":
        return True
    return bool(
        plan.has_internet_gateway
        and h.public_ip
        and h.subnet is not None
        and plan.subnet(h.subnet).public
    )


def allowed(plan: NetworkPlan, src: HostPlan, dst: Address) -> bool:
    """Would AWS deliver a packet from `src` to `dst` (and its reply)?"""
    owner = plan.host(dst.owner)
    if src.kind == "client":
        if dst.public:
            return plan.has_internet_gateway
        return owner.kind == "client"  # VPC-private addresses are not routed on the internet
    if dst.public:
        return has_internet(plan, src)
    if owner.kind == "client":
        return has_internet(plan, src)
    return owner.vpc == src.vpc  # the "local" route of every VPC route table


def expected(plan: NetworkPlan) -> dict[tuple[str, str], bool]:
    """(source host, destination IP) -> allowed, for every pair except a host to itself."""
    return {
        (src.name, a.ip): allowed(plan, src, a)
        for src in hosts(plan)
        for a in addresses(plan)
        if a.owner != src.name
    }


def measure(
    lab, plan: NetworkPlan, wait_s: float = 1.0, tries: int = 2
) -> dict[tuple[str, str], bool]:
    """Ping every other address from every host of a running lab (`lab` is an api.Lab)."""
    targets = addresses(plan)

    def from_host(src: HostPlan) -> dict[tuple[str, str], bool]:
        mine = [a.ip for a in targets if a.owner != src.name]
        # One shell per source, all pings in parallel: a few seconds for the whole matrix.
        script = (
            " ".join(
                f"(ping -n -q -c {tries} -i 0.2 -W {wait_s:g} {shlex.quote(ip)} >/dev/null 2>&1 "
                f"&& echo {ip} ok || echo {ip} no) &"
                for ip in mine
            )
            + " wait"
        )
        out = lab.host(src.name).cmd(script, timeout=30 + wait_s * tries)
        seen = dict(line.split() for line in out.splitlines() if len(line.split()) == 2)
        return {(src.name, ip): seen.get(ip) == "ok" for ip in mine}

    result: dict[tuple[str, str], bool] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        for part in pool.map(from_host, hosts(plan)):
            result.update(part)
    return result


def format_matrix(
    plan: NetworkPlan,
    measured: dict[tuple[str, str], bool],
    want: dict[tuple[str, str], bool] | None = None,
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
            if a.owner == src.name:
                cell = "."
            else:
                cell = "ok" if measured.get(key) else "--"
                if want is not None and want.get(key) != measured.get(key):
                    cell += "!"
            cells.append(cell.ljust(w))
        lines.append((src.name.ljust(src_w) + "".join(cells)).rstrip())
    return "\n".join(lines)


def differences(
    measured: dict[tuple[str, str], bool], want: dict[tuple[str, str], bool]
) -> list[str]:
    """Human-readable list of the cells where the lab and AWS's rules disagree."""
    out = []
    for key in sorted(want):
        if measured.get(key) != want[key]:
            src, ip = key
            out.append(
                f"{src} -> {ip}: AWS {'allows' if want[key] else 'blocks'} it, "
                f"the lab {'delivers' if measured.get(key) else 'does not'}"
            )
    return out
