"""Which server each switch and host of a lab runs on, when a lab spans servers (pure).

Issue 18: a lab across servers on Mininet Cluster Edition places one availability zone per
server. Every node of an AZ (its bridge, instances, load balancer nodes, appliances, NAT
gateways, Lambda hosts) runs on the server given for that AZ; the VPC-wide pieces (the core
router bridge, the internet segment and its clients, the lab's resolver) and the controller
run on the front end. So only the AZ bridges' uplinks to the core cross servers, as tunnels,
and cross-zone traffic really crosses one.

`parse_servers` reads the `--servers us-east-1a=HOST,us-east-1b=HOST[,front-end=HOST]`
option; `place` checks it against a NetworkPlan (every AZ has a server, no server names an AZ
the template does not use) and returns a Placement: the server of every node, the links that
cross servers with their VXLAN network identifiers, the datapath IDs (explicit, unique in the
lab: Mininet would derive them from the digits of the bridge names otherwise), and the MTUs
the tunnels leave room for.

MTU: a VXLAN tunnel over an IPv4 underlay adds 50 bytes (outer Ethernet 14, IPv4 20, UDP 8,
VXLAN 8), so over a 1500-byte underlay the inter-AZ path carries 1450-byte packets. The lab's
hosts get that MTU. A lab with a gateway load balancer carries GENEVE between its nodes and
the appliances; the node and its appliances are in one AZ unless cross-zone balancing sends
a flow to another, and then the GENEVE packet (82 bytes more: outer IPv4 20, UDP 8, GENEVE
with the GWLB options 40, the inner Ethernet header 14 that Open vSwitch's GENEVE carries)
crosses the tunnel too: the hosts then get 1450 - 82 = 1368 so that it still fits, and the
GENEVE ends (the GWLB nodes and the appliances) get the path MTU, 1450, so that a full-size
1368-byte packet's GENEVE (1450) leaves them whole instead of in two IP fragments (`host_mtu`).
A host's packet of one byte more is refused where it is sent (EMSGSIZE, "message too long,
mtu=1368"), and its TCP segments are full-size at MSS 1328: nothing is lost silently.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from testbed.errors import BadInput
from testbed.plan.network import HostPlan, LinkPlan, NetworkPlan

FRONT_END = "front-end"  # the key of --servers that names the front end (default: this host)
LOCAL = "localhost"  # Cluster Edition's name of the machine Mininet runs on
UNDERLAY_MTU = 1500
VXLAN_OVERHEAD = 14 + 20 + 8 + 8  # outer Ethernet, IPv4, UDP, VXLAN
GRE_OVERHEAD = 14 + 20 + 4 + 4 + 14  # gretap: outer Ethernet, IPv4, GRE + key, inner Ethernet
GENEVE_OVERHEAD = 20 + 8 + 40 + 14  # outer IPv4, UDP, GENEVE + GWLB options, inner Ethernet
VXLAN_PORT = 4789  # IANA's VXLAN port
OVERHEAD = {"vxlan": VXLAN_OVERHEAD, "gre": GRE_OVERHEAD, "ssh": VXLAN_OVERHEAD}
# A server is a host name or an IPv4 address, optionally user@ in front.
_HOST_RE = re.compile(r"^([A-Za-z0-9_.-]+@)?[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$")
_AZ_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d[a-z]$")


def parse_servers(text: str, option: str = "--servers") -> dict[str, str]:
    """`us-east-1a=HOST,us-east-1b=HOST[,front-end=HOST]` -> {AZ or "front-end": HOST}.
    BadInput (exit 2) on anything else: an empty item, no '=', a key that is no AZ name,
    a bad host, a key given twice."""
    out: dict[str, str] = {}
    hint = f"{option} us-east-1a=HOST,us-east-1b=HOST[,{FRONT_END}=HOST]"
    if not text or not text.strip():
        raise BadInput(f"{option} is empty", hint=hint)
    for item in text.split(","):
        item = item.strip()
        key, sep, host = item.partition("=")
        key, host = key.strip(), host.strip()
        if not sep or not key or not host:
            raise BadInput(f"{option}: {item!r} is not AZ=HOST", hint=hint)
        if key != FRONT_END and not _AZ_RE.match(key):
            raise BadInput(
                f"{option}: {key!r} is not an availability zone name (like us-east-1a) "
                f"nor {FRONT_END!r}",
                hint=hint,
            )
        if not _HOST_RE.match(host):
            raise BadInput(f"{option}: {host!r} (for {key}) is not a host name or address")
        if key in out:
            raise BadInput(f"{option}: {key} is given twice ({out[key]} and {host})", hint=hint)
        out[key] = host
    return out


@dataclass(frozen=True)
class CrossLink:
    """A link of the plan whose ends run on two servers: made as a tunnel (its VNI)."""

    link: LinkPlan
    a_server: str
    b_server: str
    vni: int


@dataclass(frozen=True)
class Mtu:
    """What the tunnels leave: the inter-AZ path MTU and the MTU the lab's hosts get."""

    underlay: int
    tunnel_overhead: int
    path: int  # underlay - tunnel overhead: the largest packet an inter-AZ link carries
    host: int  # the hosts' MTU (path, less GENEVE when a GWLB's traffic may cross)
    geneve_inside: bool
    note: str


@dataclass(frozen=True)
class Placement:
    """Where each node of a lab runs. servers: AZ -> server (front-end included);
    nodes: node (switch or host) name -> server; cross_links: the tunnels; dpids: switch
    name -> datapath ID; mtu: what the tunnels leave room for."""

    lab: str
    servers: dict[str, str]
    nodes: dict[str, str]
    cross_links: tuple[CrossLink, ...]
    dpids: dict[str, int]
    mtu: Mtu
    tunnel: str = "vxlan"
    tunnel_rate: int | None = (
        None  # bits/s each tunnel carries each way (tbf), None: the underlay's
    )

    @property
    def front_end(self) -> str:
        return self.servers[FRONT_END]

    def server_of(self, node: str) -> str:
        """The server of a switch or host (a host added later: its switch's server)."""
        return self.nodes[node]

    def remote_servers(self) -> tuple[str, ...]:
        """The servers other than the front end, in AZ order, each once."""
        seen: list[str] = []
        for key, server in sorted(self.servers.items()):
            if key != FRONT_END and server != self.front_end and server not in seen:
                seen.append(server)
        return tuple(seen)

    def on(self, server: str) -> tuple[str, ...]:
        """The nodes on `server`, in the plan's order."""
        return tuple(n for n, s in self.nodes.items() if s == server)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Placement:
        d: dict[str, Any] = json.loads(text)
        return cls(
            lab=d["lab"],
            servers=dict(d["servers"]),
            nodes=dict(d["nodes"]),
            cross_links=tuple(
                CrossLink(**{**c, "link": LinkPlan(**c["link"])}) for c in d["cross_links"]
            ),
            dpids={k: int(v) for k, v in d["dpids"].items()},
            mtu=Mtu(**d["mtu"]),
            tunnel=d.get("tunnel", "vxlan"),
            tunnel_rate=d.get("tunnel_rate"),
        )


def vni_base(lab: str) -> int:
    """The first VXLAN network identifier of lab `lab`'s tunnels: 256 per lab, from a hash of
    its name (two labs on the same servers must not share one: Linux refuses a second VXLAN
    device with the same VNI, port and local address)."""
    return (zlib.crc32(lab.encode()) % 0xFFFF + 1) << 8  # 256 .. 2**24 - 256


def place(
    plan: NetworkPlan,
    servers: dict[str, str],
    *,
    tunnel: str = "vxlan",
    underlay_mtu: int = UNDERLAY_MTU,
    tunnel_rate: int | None = None,
) -> Placement:
    """Place the plan's switches and hosts on `servers` (AZ -> server; FRONT_END -> the
    front end, default LOCAL). BadInput when an AZ of the plan has no server, a server is
    given for an AZ the plan does not use, or a host's interfaces are on two servers."""
    if tunnel not in OVERHEAD:
        raise BadInput(f"unknown tunnel type {tunnel!r} (one of {', '.join(OVERHEAD)})")
    used = [sw.az for sw in plan.switches if sw.role == "az" and sw.az]
    missing = [az for az in used if az not in servers]
    if missing:
        raise BadInput(
            f"--servers: no server for availability zone {', '.join(missing)} "
            f"(the template uses {', '.join(used)})",
            hint="give one server per AZ: --servers " + ",".join(f"{az}=HOST" for az in used),
        )
    unused = sorted(k for k in servers if k != FRONT_END and k not in used)
    if unused:
        raise BadInput(
            f"--servers: the template does not use availability zone {', '.join(unused)} "
            f"(it uses {', '.join(used) or 'none'})"
        )
    where = {**servers, FRONT_END: servers.get(FRONT_END, LOCAL)}
    nodes: dict[str, str] = {}
    for sw in plan.switches:
        nodes[sw.name] = where[sw.az] if sw.role == "az" and sw.az else where[FRONT_END]
    for h in plan.hosts:
        server = nodes[h.switch]
        for i in h.interfaces:
            if nodes[i.switch] != server:
                raise BadInput(
                    f"host {h.name}'s {i.name} is on {i.switch} ({nodes[i.switch]}), its eth0 "
                    f"on {h.switch} ({server}): a host's interfaces must be on one server"
                )
        nodes[h.name] = server
    base = vni_base(plan.lab)
    if sum(1 for x in plan.links if nodes[x.a] != nodes[x.b]) > 255:
        raise BadInput("a lab across servers has at most 255 links between servers")
    cross = tuple(
        CrossLink(link, nodes[link.a], nodes[link.b], base + k)
        for k, link in enumerate(x for x in plan.links if nodes[x.a] != nodes[x.b])
    )
    dpids = {sw.name: sw.dpid for sw in plan.switches}
    seen: dict[int, str] = {}
    for name, dpid in dpids.items():
        if dpid in seen:
            raise BadInput(f"switches {seen[dpid]} and {name} have the same datapath ID {dpid}")
        seen[dpid] = name
    return Placement(
        lab=plan.lab,
        servers=where,
        nodes=nodes,
        cross_links=cross,
        dpids=dpids,
        mtu=mtu_for(plan, tunnel, underlay_mtu, crossing=bool(cross)),
        tunnel_rate=tunnel_rate,
        tunnel=tunnel,
    )


def place_launched(p: Placement, hosts: Sequence[HostPlan]) -> dict[str, str]:
    """Where hosts added while the lab runs go (Auto Scaling launches, `testbed update`,
    `up --into`): each on its switch's server, as a template host of its AZ. BadInput when a
    host's switch has no server (a bridge the lab got while it ran: a new AZ) or its
    interfaces are on two servers."""
    out: dict[str, str] = {}
    for h in hosts:
        switches = [h.switch, *(i.switch for i in h.interfaces)]
        unplaced = [sw for sw in switches if sw not in p.nodes]
        if unplaced:
            raise BadInput(
                f"host {h.name} would be on bridge {', '.join(unplaced)}, which runs on no "
                f"server of lab {p.lab} (the lab's AZs are on "
                + ", ".join(f"{az}={s}" for az, s in sorted(p.servers.items()) if az != FRONT_END)
                + ")",
                hint="not yet: an availability zone the lab did not start with, across "
                "servers (docs/scaling.md); use the lab's AZs",
            )
        servers = {p.nodes[sw] for sw in switches}
        if len(servers) > 1:
            raise BadInput(
                f"host {h.name}'s interfaces are on {', '.join(sorted(servers))}: a host's "
                "interfaces must be on one server"
            )
        out[h.name] = p.nodes[h.switch]
    return out


def mtu_for(plan: NetworkPlan, tunnel: str, underlay_mtu: int, crossing: bool = True) -> Mtu:
    """The MTUs of a lab whose inter-AZ links are `tunnel`s over an `underlay_mtu` underlay."""
    overhead = OVERHEAD[tunnel]
    if not crossing:
        return Mtu(underlay_mtu, 0, underlay_mtu, underlay_mtu, False, "no link crosses servers")
    path = underlay_mtu - overhead
    geneve = any(lb.type == "gateway" for lb in plan.load_balancers)
    host = path - GENEVE_OVERHEAD if geneve else path
    note = f"{tunnel} adds {overhead} bytes: inter-AZ path MTU {path}"
    if geneve:
        note += (
            f"; a gateway load balancer's GENEVE ({GENEVE_OVERHEAD} bytes) may cross it "
            f"(cross-zone): hosts get MTU {host}, GWLB nodes and appliances {path} (their "
            "GENEVE unfragmented)"
        )
    else:
        note += f": hosts get MTU {host}"
    if host < 1280:
        raise BadInput(
            f"an underlay MTU of {underlay_mtu} leaves the hosts {host} bytes through {tunnel} "
            "tunnels; IPv6 and most stacks need 1280 (use a larger underlay MTU)"
        )
    return Mtu(underlay_mtu, overhead, path, host, geneve, note)


_RATE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)?$", re.I)
_RATE_UNITS = {  # bits per unit, as tc counts them
    "bit": 1,
    "kbit": 10**3,
    "mbit": 10**6,
    "gbit": 10**9,
    "bps": 8,
    "kbps": 8 * 10**3,
    "mbps": 8 * 10**6,
    "gbps": 8 * 10**9,
}
MIN_TUNNEL_RATE = 100_000  # 100 kbit/s: below, a full-size packet waits more than 0.1 s
MAX_TUNNEL_RATE = 100 * 10**9
TBF_LATENCY_MS = 50  # how long a packet may wait in a tunnel's tbf queue before it is dropped


def parse_rate(text: str, option: str = "--tunnel-rate") -> int:
    """`100mbit`, `1gbit`, `500kbit`, `2000000` (bits/s; tc's units: `mbps` = megabytes/s) ->
    bits/s. BadInput (exit 2) on anything else or outside 100kbit .. 100gbit."""
    m = _RATE_RE.match(text.strip()) if text else None
    if not m:
        raise BadInput(
            f"{option} {text!r}: a rate such as 100mbit, 1gbit or 500kbit",
            hint=f"{option} 100mbit (tc's units: kbit, mbit, gbit; kbps, mbps, gbps are bytes/s)",
        )
    unit = (m.group(2) or "bit").lower()
    rate = int(float(m.group(1)) * _RATE_UNITS[unit])
    if not MIN_TUNNEL_RATE <= rate <= MAX_TUNNEL_RATE:
        raise BadInput(f"{option} {text}: {rate} bit/s is outside 100kbit .. 100gbit")
    return rate


def rate_text(rate: int) -> str:
    """bits/s as people (and tc) write it: 100mbit, 1.5gbit, 640kbit."""
    for unit, factor in (("gbit", 10**9), ("mbit", 10**6), ("kbit", 10**3)):
        if rate >= factor:
            return f"{rate / factor:g}{unit}"
    return f"{rate}bit"


def tbf_args(rate: int) -> list[str]:
    """The `tc qdisc replace dev D root` arguments that hold a tunnel end to `rate` bits/s: a
    token bucket of 10 ms of traffic (at least 32 KiB: several full-size packets, and more
    than one kernel tick at 1000 Hz), packets queued at most TBF_LATENCY_MS."""
    burst = max(rate // 8 // 100, 32 * 1024)
    return ["tbf", "rate", f"{rate}bit", "burst", str(burst), "latency", f"{TBF_LATENCY_MS}ms"]


def shaping_note(rate: int | None, delay_ms: float, netem: bool) -> str:
    """What the lab applies on its tunnels, for `status`: the rate (tbf) or the underlay's,
    and the inter-AZ delay, which is never applied on a tunnel (named with why)."""
    note = (
        f"rate {rate_text(rate)} each way (tbf on both ends of every tunnel)"
        if rate
        else "rate: the underlay's (testbed up --tunnel-rate sets one)"
    )
    if delay_ms:
        why = "this kernel has no sch_netem" if not netem else "netem is not put on tunnels yet"
        note += f"; InterAzDelayMs={delay_ms:g} not applied on the tunnels ({why})"
    else:
        note += "; delay: the underlay's"
    return note


GENEVE_ENDS = ("gateway-node", "appliance")  # roles of the hosts GENEVE starts and ends on


def host_mtu(mtu: Mtu, role: str | None) -> int:
    """The MTU of a host of `role`: a GENEVE end (GWLB node, appliance) of a lab whose GENEVE
    may cross a tunnel gets the path MTU (its GENEVE of a full-size host packet then fits
    unfragmented); every other host gets mtu.host."""
    return mtu.path if mtu.geneve_inside and role in GENEVE_ENDS else mtu.host


def describe(p: Placement) -> list[str]:
    """Lines for people: the servers and what runs on each, the tunnels, the MTUs."""
    lines = []
    for server in (p.front_end, *p.remote_servers()):
        azs = sorted(k for k, v in p.servers.items() if v == server and k != FRONT_END)
        role = ", ".join(([FRONT_END] if server == p.front_end else []) + azs)
        lines.append(f"{server} ({role}): {' '.join(p.on(server))}")
    for c in p.cross_links:
        lines.append(
            f"tunnel {p.tunnel} vni {c.vni}: {c.link.a} ({c.a_server}) <-> "
            f"{c.link.b} ({c.b_server})"
        )
    lines.append(f"mtu: {p.mtu.note}")
    return lines
