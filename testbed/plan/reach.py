"""Would AWS deliver it? The verdict for one packet (and its reply) over a network plan.

Pure: a NetworkPlan, a source attachment (a host's eth0 or a "HOST/ethN" view), a destination
address, a protocol and a port give `passes` or the first layer that drops it, in the order
AWS applies them on the way:

  1. the source's security groups, egress rules          (stateful: replies always pass)
  2. the source subnet's network ACL, outbound            (stateless, routed traffic only)
  3. the route (no route, no public address for the internet gateway, a private address on
     the internet, nothing at that address)
  4. the destination subnet's network ACL, inbound        (stateless, routed traffic only)
  5. the destination's security groups, ingress rules     (stateful)

then the reply: security groups and NAT gateways track the flow, network ACLs do not, so the
reply crosses every ACL of the way back by their rules (TCP/UDP replies go to the client's
ephemeral port: an ACL without an ephemeral-port rule drops the REPLY, "reply dropped by
NACL X"), and the destination's subnet needs a route back to a source on the internet.

Exemptions as on AWS: the VPC's resolver (base + 2) is never filtered; same-subnet traffic
never meets a network ACL; a subnet without an ACL of its own has the default one (allow all).

Hosts with several interfaces: a new connection leaves by the interface whose subnet holds the
destination, else eth0 (the default route); answers leave by the interface that owns the
address they come from, as Amazon Linux sets instances up (amazon-ec2-net-utils: per-interface
policy routing, "to accommodate VPC source/dest restrictions"), so no answer is lost to the
source/destination check of another interface.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network
from typing import NoReturn

from testbed.plan.network import (
    HostPlan,
    NaclPlan,
    NetworkPlan,
    RoutePlan,
    SgRulePlan,
    SubnetPlan,
)

PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1}
ICMP_ECHO_REQUEST = (8, 0)
ICMP_ECHO_REPLY = (0, 0)
# The client's source ports, where TCP/UDP replies go: Linux's default ip_local_port_range.
EPHEMERAL_PORTS = (32768, 60999)

# Layers, in the order a packet meets them.
SG_EGRESS = "sg-egress"
NACL_OUT = "nacl-out"
ROUTE = "route"
NACL_IN = "nacl-in"
SG_INGRESS = "sg-ingress"
LAYERS = (SG_EGRESS, NACL_OUT, ROUTE, NACL_IN, SG_INGRESS)

# Hosts that are lab machinery: they forward or answer, nobody measures from them.
SERVICE_KINDS = ("lb-node", "dns", "natgw")
MAX_HOPS = 4  # NAT gateway -> NAT gateway chains: AWS has none longer; a loop stops here


@dataclass(frozen=True)
class Packet:
    """What a check looks at. ports: the destination port range (one port for a request,
    the client's ephemeral range for a TCP/UDP reply); icmp: (type, code)."""

    src: str
    dst: str
    proto: int
    ports: tuple[int, int] | None = None
    icmp: tuple[int, int] | None = None

    def reversed(self) -> Packet:
        """The reply: addresses swapped, to the client's ephemeral ports, echo reply."""
        if self.proto in (6, 17):
            return Packet(self.dst, self.src, self.proto, EPHEMERAL_PORTS)
        icmp = ICMP_ECHO_REPLY if self.icmp == ICMP_ECHO_REQUEST else self.icmp
        return Packet(self.dst, self.src, self.proto, None, icmp)


@dataclass(frozen=True)
class Check:
    """One filter on the way: layer, where (attachment or subnet name), what it sees."""

    layer: str
    where: str
    packet: Packet


@dataclass(frozen=True)
class Verdict:
    """passes, or the layer that dropped it: `name` is what dropped it (the groups of the
    port, the NACL, the subnet whose routes fail), `detail` why; reply True when the request
    passed and its reply is what gets dropped."""

    passes: bool
    layer: str | None = None
    name: str | None = None
    detail: str = ""
    reply: bool = False
    notes: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        if self.passes:
            return "passes"
        what = {
            SG_EGRESS: f"security group egress ({self.name})",
            NACL_OUT: f"NACL {self.name} outbound",
            ROUTE: "route",
            NACL_IN: f"NACL {self.name} inbound",
            SG_INGRESS: f"security group ingress ({self.name})",
        }[self.layer or ROUTE]
        head = f"reply dropped by {what}" if self.reply else f"dropped by {what}"
        return f"{head}: {self.detail}" if self.detail else head

    @property
    def short(self) -> str:
        """A matrix cell: ok, or the layer (reply: prefixed)."""
        if self.passes:
            return "ok"
        return f"reply:{self.layer}" if self.reply else str(self.layer)


class _Drop(Exception):
    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.text)
        self.verdict = verdict


def verdict(
    plan: NetworkPlan, src: HostPlan, dst: str, proto: str = "icmp", port: int | None = None
) -> Verdict:
    """AWS's verdict for `proto` (tcp, udp, icmp) from attachment `src` to address `dst`
    (port: the TCP/UDP destination port; ignored for icmp)."""
    number = PROTOCOLS[proto]
    if number in (6, 17) and port is None:
        raise ValueError(f"{proto} needs a port")
    pkt = Packet(
        src.ip,
        dst,
        number,
        (port, port) if number in (6, 17) and port is not None else None,
        ICMP_ECHO_REQUEST if number == 1 else None,
    )
    walk = _Walk(plan)
    try:
        walk.send(src, pkt)
        for check in walk.checks:
            walk.apply(check, reply=False)
        for check in reversed(walk.checks):
            if check.layer in (NACL_OUT, NACL_IN):
                back = NACL_IN if check.layer == NACL_OUT else NACL_OUT
                walk.apply(Check(back, check.where, check.packet.reversed()), reply=True)
        for subnet, peer in walk.reply_routes:
            walk.route_back(subnet, peer)
    except _Drop as drop:
        return replace(drop.verdict, notes=tuple(walk.notes))
    return Verdict(True, notes=tuple(walk.notes))


def source_attachment(plan: NetworkPlan, host: HostPlan, dst: str) -> HostPlan:
    """The interface a host sends from toward `dst`: one whose subnet holds `dst` (Linux's
    connected route), else eth0 (the default route)."""
    views = [host, *(a for a in plan.attachments() if a.owner == host.name)]
    for view in views:
        if view.subnet and _in(dst, _net(plan.subnet(view.subnet).cidr)):
            return view
    return host


class _Walk:
    """Follows one packet from its source to its destination, collecting the checks it
    meets; a route failure stops it (as a _Drop) after the checks before it are applied."""

    def __init__(self, plan: NetworkPlan) -> None:
        self.plan = plan
        self.checks: list[Check] = []
        self.notes: list[str] = []
        self.reply_routes: list[tuple[str, str]] = []  # (subnet, address to route back to)
        self.views = plan.attachments()

    # --- the way there ------------------------------------------------------------------
    def send(self, src: HostPlan, pkt: Packet, hops: int = 0) -> None:
        if hops > MAX_HOPS:
            self.route_drop(f"more than {MAX_HOPS} NAT gateways on the way: a routing loop")
        if src.groups is not None:
            self.checks.append(Check(SG_EGRESS, src.name, pkt))
        if self.is_resolver(pkt.dst):
            self.notes.append("the VPC resolver is never filtered (AWS exempts it)")
            self.checks = [c for c in self.checks if c.layer != SG_EGRESS]
            return
        if src.kind == "client":
            self.from_internet(pkt)
            return
        assert src.subnet is not None  # every attachment but a client's sits in a subnet
        subnet = self.plan.subnet(src.subnet)
        if _in(pkt.dst, _net(subnet.cidr)) and self.owner(pkt.dst) is not None:
            self.deliver_private(pkt, routed=False)
            return
        self.checks.append(Check(NACL_OUT, subnet.name, pkt))
        route = _lookup(subnet, pkt.dst)
        if route is None:
            self.route_drop(f"no route to {pkt.dst} in the route table of {subnet.name}")
        if route.kind == "local":
            self.deliver_private(pkt, routed=True)
        elif route.kind == "nat":
            self.through_nat(src, subnet, route.target or "", pkt, hops)
        elif route.kind == "vpce":
            self.notes.append(
                f"{subnet.name} routes {route.destination} through GWLB endpoint "
                f"{route.target}: its appliances are not evaluated"
            )
            if self.in_vpc(pkt.dst, subnet.vpc):
                self.deliver_private(pkt, routed=True)
            else:
                self.to_internet(src, subnet, pkt)
        else:  # igw
            self.to_internet(src, subnet, pkt)

    def through_nat(
        self, src: HostPlan, subnet: SubnetPlan, nat: str, pkt: Packet, hops: int
    ) -> None:
        gw = self.plan.host(nat)
        assert gw.subnet is not None
        if gw.subnet != subnet.name:
            self.checks.append(Check(NACL_IN, gw.subnet, pkt))
        self.notes.append(f"through NAT gateway {gw.name}: source becomes {gw.ip}")
        self.send(gw, replace(pkt, src=gw.ip), hops + 1)

    def to_internet(self, src: HostPlan, subnet: SubnetPlan, pkt: Packet) -> None:
        """Through the internet gateway: 1:1 NAT of the source's public address."""
        if not self.plan.has_internet_gateway:
            self.route_drop("the VPC has no internet gateway")
        if not src.public_ip:
            what = "NAT gateway" if src.kind == "natgw" else "it"
            self.route_drop(
                f"{src.name} has no public address ({what} cannot use the internet gateway, "
                f"whose 1:1 NAT needs one)"
            )
        if self.in_any_vpc(pkt.dst):
            self.route_drop(f"{pkt.dst} is a private address: not routed on the internet")
        self.notes.append(f"through the internet gateway: source becomes {src.public_ip}")
        self.from_internet(replace(pkt, src=src.public_ip))

    def from_internet(self, pkt: Packet) -> None:
        """A packet on the internet segment: to a client, or to a public address."""
        client = next((h for h in self.plan.hosts if h.kind == "client" and h.ip == pkt.dst), None)
        if client is not None:
            return
        owner = next((a for a in self.views if a.public_ip == pkt.dst), None)
        if owner is None:
            if self.in_any_vpc(pkt.dst):
                self.route_drop(f"{pkt.dst} is a private address: not routed on the internet")
            self.route_drop(f"nothing on the internet answers at {pkt.dst}")
        if not self.plan.has_internet_gateway:
            self.route_drop("no internet gateway holds the public address")
        if owner.kind == "natgw":
            self.route_drop(
                f"{owner.name} is a NAT gateway: nothing from outside opens a connection through it"
            )
        for route in self.plan.igw_routes:
            if _in(owner.ip, _net(route.destination)) and route.kind == "vpce":
                self.notes.append(
                    f"the internet gateway's route table sends {owner.ip} through GWLB "
                    f"endpoint {route.target}: its appliances are not evaluated"
                )
        self.notes.append(f"the internet gateway translates {pkt.dst} to {owner.ip}")
        inside = replace(pkt, dst=owner.ip)
        assert owner.subnet is not None
        self.reply_routes.append((owner.subnet, pkt.src))
        self.checks.append(Check(NACL_IN, owner.subnet, inside))
        if owner.groups is not None:
            self.checks.append(Check(SG_INGRESS, owner.name, inside))

    def deliver_private(self, pkt: Packet, routed: bool) -> None:
        owner = self.owner(pkt.dst)
        if owner is None:
            self.route_drop(f"nothing at {pkt.dst}")
        assert owner.subnet is not None
        if owner.kind == "natgw":
            self.notes.append(f"{owner.name} is a NAT gateway: it answers nothing itself")
        if routed:
            self.checks.append(Check(NACL_IN, owner.subnet, pkt))
        if owner.groups is not None:
            self.checks.append(Check(SG_INGRESS, owner.name, pkt))

    def route_drop(self, detail: str) -> NoReturn:
        """A route failure: the checks met before it decide first (AWS's order)."""
        for check in self.checks:
            self.apply(check, reply=False)
        raise _Drop(Verdict(False, ROUTE, None, detail))

    def route_back(self, subnet_name: str, peer: str) -> None:
        """The reply to an internet source leaves through the destination subnet's routes."""
        subnet = self.plan.subnet(subnet_name)
        route = _lookup(subnet, peer)
        if route is None or route.kind not in ("igw", "vpce"):
            how = "no route" if route is None else f"its route goes to {route.kind} {route.target}"
            raise _Drop(
                Verdict(
                    False,
                    ROUTE,
                    subnet.name,
                    f"{subnet.name} has no way back to {peer} through the internet gateway ({how})",
                    reply=True,
                )
            )

    # --- the checks --------------------------------------------------------------------
    def apply(self, check: Check, reply: bool) -> None:
        if check.layer in (SG_EGRESS, SG_INGRESS):
            self.apply_groups(check)
        else:
            self.apply_nacl(check, reply)

    def apply_groups(self, check: Check) -> None:
        port = next(a for a in self.views if a.name == check.where)
        groups = port.groups or ()
        egress = check.layer == SG_EGRESS
        peer = check.packet.dst if egress else check.packet.src
        for name in groups:
            group = self.plan.security_group(name)
            for rule in group.egress if egress else group.ingress:
                if self.rule_matches(rule, check.packet, peer):
                    return
        names = ", ".join(groups) or "no groups"
        way = "egress to" if egress else "ingress from"
        raise _Drop(
            Verdict(
                False,
                check.layer,
                names,
                f"no {way} {peer} {_describe(check.packet)} rule on {port.name}",
            )
        )

    def rule_matches(self, rule: SgRulePlan, pkt: Packet, peer: str) -> bool:
        if rule.cidr is not None:
            if not _in(peer, _net(rule.cidr)):
                return False
        elif rule.group is not None:
            if peer not in self.members(rule.group):
                return False
        else:
            return False
        if rule.protocol == -1:
            return True
        if rule.protocol != pkt.proto:
            return False
        if pkt.proto in (6, 17) and pkt.ports is not None:
            lo = rule.from_port if rule.from_port is not None else 0
            hi = rule.to_port if rule.to_port is not None else 65535
            return lo <= pkt.ports[0] and pkt.ports[1] <= hi
        if pkt.proto == 1 and pkt.icmp is not None:
            return _icmp_matches((rule.from_port, rule.to_port), pkt.icmp)
        return True

    def members(self, group: str) -> set[str]:
        """Private addresses of every port that carries `group` (AWS: the ENIs' private IPs)."""
        return {
            ip for a in self.views if a.groups and group in a.groups for ip in (a.ip, *a.extra_ips)
        }

    def apply_nacl(self, check: Check, reply: bool) -> None:
        subnet = self.plan.subnet(check.where)
        if subnet.nacl is None:
            return  # the default network ACL: allows everything
        nacl = next(n for n in self.plan.network_acls if n.name == subnet.nacl)
        egress = check.layer == NACL_OUT
        denied = _nacl_denies(nacl, egress, check.packet)
        if denied is None:
            return
        peer = check.packet.dst if egress else check.packet.src
        way = "to" if egress else "from"
        raise _Drop(
            Verdict(
                False,
                check.layer,
                nacl.name,
                f"{denied} {way} {peer} {_describe(check.packet)} ({subnet.name})",
                reply=reply,
            )
        )

    # --- addresses ----------------------------------------------------------------------
    def owner(self, ip: str) -> HostPlan | None:
        return next(
            (
                a
                for a in self.views
                if a.kind not in ("client", "dns") and ip in (a.ip, *a.extra_ips)
            ),
            None,
        )

    def is_resolver(self, ip: str) -> bool:
        return any(h.kind == "dns" and ip in (h.ip, *h.extra_ips) for h in self.plan.hosts)

    def in_vpc(self, ip: str, vpc: str) -> bool:
        return any(v.name == vpc and _in(ip, _net(v.cidr)) for v in self.plan.vpcs)

    def in_any_vpc(self, ip: str) -> bool:
        return any(_in(ip, _net(v.cidr)) for v in self.plan.vpcs)


def _nacl_denies(nacl: NaclPlan, egress: bool, pkt: Packet) -> str | None:
    """None when the ACL allows the packet for every port of its range; else which rule
    denies it ("rule 90 denies", "no rule allows (*)"), and for which ports if not all."""
    lo, hi = pkt.ports if pkt.ports is not None else (0, 0)
    open_ranges = [(lo, hi)]  # ports no entry has decided yet
    denials: list[tuple[str, tuple[int, int]]] = []
    peer = pkt.dst if egress else pkt.src
    for entry in sorted(nacl.entries, key=lambda e: e.rule_number):
        if entry.egress != egress or not _in(peer, _net(entry.cidr)):
            continue
        if entry.protocol != -1 and entry.protocol != pkt.proto:
            continue
        if (
            entry.protocol == 1
            and entry.icmp is not None
            and pkt.icmp is not None
            and not _icmp_matches(entry.icmp, pkt.icmp)
        ):
            continue
        span = (
            entry.ports
            if entry.protocol in (6, 17) and entry.ports is not None and pkt.ports is not None
            else (lo, hi)
        )
        taken, open_ranges = _split(open_ranges, span)
        if not entry.allow:
            denials += [(f"rule {entry.rule_number} denies", r) for r in taken]
        if not open_ranges:
            break
    denials += [("no rule allows it (rule *)", r) for r in open_ranges]
    if not denials:
        return None
    why, _ = denials[0]
    if pkt.ports is None or [r for _, r in denials] == [(lo, hi)]:
        return why  # one port, or the whole range: the packet's description says which
    ports = ", ".join(f"{a}-{b}" if a != b else str(a) for _, (a, b) in denials)
    return f"{why} (ports {ports})"


def _split(
    ranges: list[tuple[int, int]], span: tuple[int, int]
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(parts of `ranges` inside span, parts outside)."""
    inside, outside = [], []
    for a, b in ranges:
        lo, hi = max(a, span[0]), min(b, span[1])
        if lo > hi:
            outside.append((a, b))
            continue
        inside.append((lo, hi))
        if a < lo:
            outside.append((a, lo - 1))
        if hi < b:
            outside.append((hi + 1, b))
    return inside, outside


def _icmp_matches(rule: tuple[int | None, int | None], icmp: tuple[int, int]) -> bool:
    """(type, code) of a rule, -1 or None = all."""
    kind, code = rule
    if kind not in (None, -1) and kind != icmp[0]:
        return False
    return code in (None, -1) or code == icmp[1]


def _lookup(subnet: SubnetPlan, ip: str) -> RoutePlan | None:
    """Longest-prefix match in the subnet's route table."""
    best = None
    for route in subnet.routes:
        net = _net(route.destination)
        if _in(ip, net) and (best is None or net.prefixlen > _net(best.destination).prefixlen):
            best = route
    return best


def _net(cidr: str) -> IPv4Network:
    return IPv4Network(cidr, strict=False)


def _in(ip: str, net: IPv4Network) -> bool:
    return IPv4Address(ip) in net


def _describe(pkt: Packet) -> str:
    if pkt.proto == 1:
        return "icmp echo-reply" if pkt.icmp == ICMP_ECHO_REPLY else "icmp"
    name = {6: "tcp", 17: "udp"}.get(pkt.proto, f"protocol {pkt.proto}")
    if pkt.ports is None:
        return name
    a, b = pkt.ports
    return f"{name}/{a}" if a == b else f"{name}/{a}-{b}"
