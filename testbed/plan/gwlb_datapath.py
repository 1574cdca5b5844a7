"""Which datapath carries a lab's GWLB traffic, and what the switch datapath needs (pure).

Two GWLB datapaths (issue 15): "node", the Python GWLB node on its host (packet socket, UDP
6081), and "switch", Open vSwitch itself: conntrack and a hash pick the appliance, a GENEVE
port per GWLB node pushes and pops the header (docs: /work/notes/i15/spike.md §1, §9).

The switch datapath needs, per GWLB node k with address A on its host's switch:
- A/plen (noprefixroute) and the node's MAC on the node host's root-side veth (its OVS port),
  so that ovs-vswitchd has a local source for the tunnel and pops GENEVE sent to A;
- a GENEVE port `tb-LAB-gk` (remote_ip=flow, key=flow, local_ip=A) at OpenFlow port
  GENEVE_OFPORT_BASE + k on that switch (NodePlan.tunnel_port);
and per VPC holding appliances an `ovs/route` through the first node's veth to its subnet's
router, whose MAC is set as a tunnel neighbour; links of appliances carry MTU 9001 (AWS's VPC
MTU: GENEVE adds 82 bytes and OVS sets DF).

`decide` says switch or node from what the machine reports (MachineFacts, gathered by
testbed.lab.gwlb_switch); `for_datapath` gives the plan of the decision; `plumbing` lists what
the lab makes for a switch plan. The node plan is the plan as built: plan.json unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network, ip_network

from testbed import naming
from testbed.plan.balancers import GENEVE_OFPORT_BASE, NodePlan
from testbed.plan.network import HostPlan, NetworkPlan

SWITCH, NODE, AUTO = "switch", "node", "auto"
WANTED = (AUTO, SWITCH, NODE)
DEFAULT = AUTO  # what `testbed up` without --gwlb-datapath asks for
APPLIANCE_ROLE = "appliance"
APPLIANCE_MTU = 9001  # AWS's VPC MTU (jumbo frames): room for GENEVE's 82 bytes and more


@dataclass(frozen=True)
class OvsRoute:
    """One entry of `ovs-appctl ovs/route/show`: user (ovs/route/add) or cached (the kernel's)."""

    prefix: str  # "10.0.0.0/16"
    dev: str
    user: bool
    local: bool = False
    gateway: str | None = None


@dataclass(frozen=True)
class MachineFacts:
    """What decide() needs to know about the machine."""

    capable: bool  # OVS has geneve, a flow-based port can be made, a TLV map is accepted
    capability_note: str  # what the probe found (why not, or "OVS 3.1.0 userspace, ...")
    datapath: str  # the lab's OVS datapath: "user" | "kernel"
    root_addresses: dict[str, str] = field(default_factory=dict)  # IPv4 -> root interface
    routes: tuple[OvsRoute, ...] = ()


@dataclass(frozen=True)
class Decision:
    datapath: str  # SWITCH | NODE
    reason: str  # why NODE although SWITCH was possible to want ("" otherwise)
    wanted: str  # AUTO | SWITCH | NODE

    @property
    def refused(self) -> bool:
        """SWITCH was asked for explicitly and cannot be (reason): `testbed up` fails, exit 2.
        A lab without GWLB is not refused: there is nothing to steer."""
        return self.wanted == SWITCH and self.datapath != SWITCH and bool(self.reason)


@dataclass(frozen=True)
class TunnelPort:
    """The GENEVE port of one GWLB node and the node's address on its root-side veth."""

    lb: str
    host: str  # the node's host
    port: str  # tb-LAB-gk
    ofport: int
    bridge: str  # the node host's switch
    veth: str  # the node host's root-side veth (its OVS port)
    ip: str
    prefixlen: int
    mac: str  # the node host's eth0 MAC: the root-side veth takes it too


@dataclass(frozen=True)
class TunnelRoute:
    """ovs/route/add CIDR DEV GATEWAY, and tnl/neigh/set BRIDGE GATEWAY MAC."""

    cidr: str
    dev: str
    gateway: str
    bridge: str
    mac: str


@dataclass(frozen=True)
class SwitchPlumbing:
    tunnels: tuple[TunnelPort, ...] = ()
    routes: tuple[TunnelRoute, ...] = ()
    # Root-side veths and (netns, interface) host ends that take APPLIANCE_MTU.
    mtu_veths: tuple[str, ...] = ()
    mtu_host_ends: tuple[tuple[str, str], ...] = ()


def gwlb_nodes(plan: NetworkPlan) -> list[tuple[str, NodePlan]]:
    """(GWLB name, node) of every GWLB node of the lab, in plan order: k is the position."""
    return [(lb.name, n) for lb in plan.load_balancers if lb.type == "gateway" for n in lb.nodes]


def appliance_addresses(plan: NetworkPlan) -> list[str]:
    """Addresses of the GWLBs' registered appliances (every target group of every GWLB)."""
    out: list[str] = []
    for lb in plan.load_balancers:
        if lb.type != "gateway":
            continue
        for tg in lb.target_groups:
            out += [t.ip for t in tg.targets if t.ip not in out]
    return out


def appliance_cidrs(plan: NetworkPlan) -> tuple[list[str], list[str]]:
    """The VPC CIDRs holding the GWLBs' appliances, and the appliance addresses in no VPC
    of the plan (what the switch datapath cannot route)."""
    cidrs: list[str] = []
    outside: list[str] = []
    for ip in appliance_addresses(plan):
        vpc = next((v for v in plan.vpcs if IPv4Address(ip) in IPv4Network(v.cidr)), None)
        if vpc is None:
            outside.append(ip)
        elif vpc.cidr not in cidrs:
            cidrs.append(vpc.cidr)
    return cidrs, outside


def decide(plan: NetworkPlan, wanted: str, facts: MachineFacts) -> Decision:
    """SWITCH when wanted (auto or switch), the machine can and nothing of another lab is in
    the way; else NODE with the reason. A lab without GWLB: NODE, no reason."""
    if wanted not in WANTED:
        raise ValueError(f"unknown GWLB datapath {wanted!r}: use {', '.join(WANTED)}")
    if not gwlb_nodes(plan):
        return Decision(NODE, "", wanted)
    if wanted == NODE:
        return Decision(NODE, "", wanted)
    reasons = blockers(plan, facts)
    if reasons:
        return Decision(NODE, "; ".join(reasons), wanted)
    return Decision(SWITCH, "", wanted)


def blockers(plan: NetworkPlan, facts: MachineFacts) -> list[str]:
    """Why OVS cannot steer this lab's GWLB traffic here (empty: it can)."""
    if not facts.capable:
        return [f"Open vSwitch cannot steer GWLB traffic here: {facts.capability_note}"]
    if facts.datapath != "user":
        # With the kernel datapath the kernel routes and pops tunnels (spike §8): not built.
        return [f"built for OVS's userspace datapath, this lab has the {facts.datapath} one"]
    own = naming.prefix(plan.lab)
    out = []
    for lb, node in gwlb_nodes(plan):
        where = facts.root_addresses.get(node.ip)
        if where is not None and not where.startswith(own):
            out.append(
                f"{lb} node address {node.ip} is already on {where} in the root namespace"
                + _owner_note(where)
            )
    cidrs, outside = appliance_cidrs(plan)
    if outside:
        out.append(f"appliance addresses outside the lab's VPCs: {', '.join(outside)}")
    for i, a in enumerate(cidrs):
        for b in cidrs[i + 1 :]:
            if IPv4Network(a).overlaps(IPv4Network(b)):
                out.append(f"the appliances' VPCs {a} and {b} overlap (one OVS route table)")
    appliances = [IPv4Address(ip) for ip in appliance_addresses(plan)]
    for cidr in cidrs:
        net = IPv4Network(cidr)
        for r in facts.routes:
            if r.dev.startswith(own):
                continue  # the lab's own (a rerun of its plumbing)
            other = ip_network(r.prefix, strict=False)
            if other.version != 4 or not net.overlaps(other):
                continue
            # Another lab's route overlapping ours: one of the two would take the other's
            # tunnels. A kernel route more specific than ours to an appliance would take ours.
            if r.user or (other.prefixlen > net.prefixlen and any(a in other for a in appliances)):
                kind = "ovs/route" if r.user else "the kernel's routes (ovs/route cache)"
                out.append(
                    f"{cidr} (the appliances' VPC) meets {r.prefix} dev {r.dev} in {kind}"
                    + _owner_note(r.dev)
                )
    return list(dict.fromkeys(out))  # a claimed route may also be in OVS already


def _owner_note(ifname: str) -> str:
    lab = naming.owner_of(ifname)
    return f" (lab {lab})" if lab else ""


def for_datapath(plan: NetworkPlan, decision: Decision) -> NetworkPlan:
    """The plan of the decision: SWITCH gives every GWLB node its tunnel port; NODE keeps the
    plan as built (plan.json as it always was), with the reason when switch was wanted."""
    if decision.datapath == NODE:
        return replace(plan, gwlb_datapath=NODE, gwlb_datapath_reason=decision.reason)
    k = 0
    lbs = []
    for lb in plan.load_balancers:
        if lb.type == "gateway":
            nodes = []
            for n in lb.nodes:
                nodes.append(replace(n, tunnel_port=GENEVE_OFPORT_BASE + k))
                k += 1
            lb = replace(lb, nodes=tuple(nodes))
        lbs.append(lb)
    return replace(plan, load_balancers=tuple(lbs), gwlb_datapath=SWITCH, gwlb_datapath_reason="")


def carried(running: NetworkPlan, new: NetworkPlan) -> NetworkPlan:
    """`new` (a template update's plan, built afresh) with the running lab's GWLB datapath:
    a GWLB node the lab runs keeps its tunnel port; a node the update adds has none (no
    GENEVE port was made for it: the node process carries its traffic)."""
    ports = {(lb.name, n.host): n.tunnel_port for lb in running.load_balancers for n in lb.nodes}
    lbs = tuple(
        replace(
            lb,
            nodes=tuple(replace(n, tunnel_port=ports.get((lb.name, n.host))) for n in lb.nodes),
        )
        if lb.type == "gateway"
        else lb
        for lb in new.load_balancers
    )
    return replace(
        new,
        load_balancers=lbs,
        gwlb_datapath=running.gwlb_datapath,
        gwlb_datapath_reason=running.gwlb_datapath_reason,
    )


def plumbing(plan: NetworkPlan) -> SwitchPlumbing:
    """What the lab makes on the machine for a plan of the switch datapath (empty for one of
    the node datapath)."""
    if plan.gwlb_datapath != SWITCH:
        return SwitchPlumbing()
    tunnels = []
    for k, (lb, node) in enumerate(gwlb_nodes(plan)):
        if node.tunnel_port is None:
            continue
        h = plan.host(node.host)
        tunnels.append(
            TunnelPort(
                lb,
                h.name,
                naming.geneve_port_name(plan.lab, k),
                node.tunnel_port,
                h.switch,
                h.veth,
                h.ip,
                h.prefixlen,
                h.mac,
            )
        )
    routes = []
    if tunnels:
        first = tunnels[0]
        gateway = plan.host(first.host).gateway
        cidrs, _ = appliance_cidrs(plan)
        routes = [
            TunnelRoute(cidr, first.veth, gateway, first.bridge, plan.router_mac) for cidr in cidrs
        ]
    veths: list[str] = []
    ends: list[tuple[str, str]] = []
    for h in plan.hosts:
        more_veths, more_ends = appliance_links(plan, h)
        veths += more_veths
        ends += more_ends
    # A veth between switches (inter-AZ delay or bandwidth) carries tunnels across AZs.
    for link in plan.links:
        if link.kind == "veth":
            veths += [link.a_intf, link.b_intf]
    return SwitchPlumbing(tuple(tunnels), tuple(routes), tuple(veths), tuple(ends))


def appliance_links(plan: NetworkPlan, h: HostPlan) -> tuple[list[str], list[tuple[str, str]]]:
    """The root-side veths and (netns, interface) ends of host h's links that take
    APPLIANCE_MTU: those of an appliance in a lab of the switch datapath (also one that an
    update or Auto Scaling launches while the lab runs)."""
    if plan.gwlb_datapath != SWITCH or h.role != APPLIANCE_ROLE:
        return [], []
    veths = [h.veth, *(i.veth for i in h.interfaces)]
    ends = [(h.netns, "eth0"), *((h.netns, i.name) for i in h.interfaces)]
    return veths, ends


def parse_routes(text: str) -> tuple[OvsRoute, ...]:
    """The IPv4 entries of `ovs-appctl ovs/route/show`, e.g.
    "User: 10.0.0.0/16 dev tb-x-v5 GW 10.0.0.1 SRC 10.0.0.5" or
    "Cached: 10.0.0.5/32 dev tb-x-v5 SRC 10.0.0.5 local" (MARK n may follow the prefix)."""
    out = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 2 or words[0] not in ("User:", "Cached:"):
            continue
        try:
            net = ip_network(words[1], strict=False)
        except ValueError:
            continue
        if net.version != 4:
            continue
        dev = _after(words, "dev")
        if dev is None:
            continue
        out.append(
            OvsRoute(
                str(net),
                dev,
                user=words[0] == "User:",
                local=words[-1] == "local",
                gateway=_after(words, "GW"),
            )
        )
    return tuple(out)


def _after(words: list[str], key: str) -> str | None:
    return words[words.index(key) + 1] if key in words[:-1] else None
