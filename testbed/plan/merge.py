"""The plan of a lab of several stacks (issue 14): a stack's plan added to, or taken out of,
the plan of the running lab. Pure: the holder publishes the result and builds the difference.

A new stack is laid out on its own (testbed.plan.network.build_plan, names qualified "S.")
and then placed after what the lab already has: its hosts get the next ports of their
switches, the next host links and conntrack zones, its VPCs, subnets and load balancers the
next indexes (`Allocations`). Nothing of the running stacks is renumbered, so they keep every
port, MAC, link and zone. Each VPC gets an address space, the lowest in which it overlaps no
VPC of the lab (a lab of one stack only has space 0); its hosts' MACs are host_mac(ip, space).
Each address space has a resolver host (LabDNS for 0, LabDNS-1, ...): two VPCs with one CIDR
cannot both have their base + 2 in one network namespace.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Network

from testbed import naming
from testbed.errors import BadInput, LabError
from testbed.model.types import StackModel
from testbed.plan.balancers import ZONES_PER_LB, LoadBalancerPlan
from testbed.plan.names import LAB_HOST_KINDS
from testbed.plan.network import (
    AZ_DPID_BASE,
    DNS_HOST,
    FIRST_HOST_PORT,
    INTERNET_DPID,
    UPLINK_PORT,
    HostPlan,
    InterfacePlan,
    LinkPlan,
    NetworkPlan,
    SwitchPlan,
    VpcPlan,
    build_plan,
    host_mac,
)
from testbed.plan.peering import with_foreign_table_routes, without_routes_into
from testbed.plan.zone_layout import MAX_LOAD_BALANCERS, sg_zone


@dataclass
class Allocations:
    """What a running lab has handed out, and the next of each: switch ports per switch,
    host links, security-group conntrack zones, VPC, subnet and load balancer indexes,
    switch-to-switch links. `take_*` hands out one and remembers it."""

    lab: str
    zone_base: int
    ports: dict[str, set[int]] = field(default_factory=dict)
    core: str | None = None
    veths: set[str] = field(default_factory=set)
    zones: set[int] = field(default_factory=set)
    vpc_indexes: set[int] = field(default_factory=set)
    subnet_indexes: set[int] = field(default_factory=set)
    lb_indexes: set[int] = field(default_factory=set)
    patches: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, plan: NetworkPlan) -> Allocations:
        """Everything `plan` uses."""
        a = cls(plan.lab, plan.zone_base)
        a.core = next((s.name for s in plan.switches if s.role == "core"), None)
        for h in plan.attachments():
            a.ports.setdefault(h.switch, set()).add(h.port)
            a.veths.add(h.veth)
            if h.sg_zone is not None:
                a.zones.add(h.sg_zone)
        for link in plan.links:
            a.ports.setdefault(link.a, set()).add(link.a_port)
            a.ports.setdefault(link.b, set()).add(link.b_port)
            a.patches |= {link.a_intf, link.b_intf}
        a.vpc_indexes = {v.index for v in plan.vpcs}
        a.subnet_indexes = {s.index for s in plan.subnets}
        a.lb_indexes = {lb.index for lb in plan.load_balancers}
        return a

    def take_port(self, switch: str) -> int:
        """One more than the highest port in use on `switch` (host ports start at
        FIRST_HOST_PORT; the core's ports are all links and resolvers, from 1)."""
        used = self.ports.setdefault(switch, set())
        floor = 0 if switch == self.core else FIRST_HOST_PORT - 1
        port = max([floor, *used]) + 1
        used.add(port)
        return port

    def take_veth(self, owner: str) -> str:
        """The lowest host-link name no host interface has."""
        for index in range(1, naming.MAX_LINKS + 1):
            name = naming.veth_name(self.lab, index)
            if name not in self.veths:
                self.veths.add(name)
                return name
        raise LabError(
            f"lab {self.lab} holds {naming.MAX_LINKS} host interfaces, the most it can; "
            f"{owner} gets none"
        )

    def take_zone(self) -> int:
        """The lowest security-group conntrack zone of the lab's block no port has."""
        k = 0
        while True:
            try:
                zone = sg_zone(self.zone_base, k)
            except BadInput as exc:
                raise LabError(exc.message) from None
            if zone not in self.zones:
                self.zones.add(zone)
                return zone
            k += 1

    def take_patch_pair(self) -> tuple[str, str]:
        """The names of both ends of a new switch-to-switch link (the lowest free pair)."""
        index = 0
        while True:
            pair = (
                naming.patch_name(self.lab, 2 * index + 1),
                naming.patch_name(self.lab, 2 * index + 2),
            )
            if not self.patches & set(pair):
                self.patches |= set(pair)
                return pair
            index += 1

    @staticmethod
    def _take(used: set[int]) -> int:
        index = min(set(range(1, len(used) + 2)) - used)
        used.add(index)
        return index

    def take_vpc_index(self) -> int:
        return self._take(self.vpc_indexes)

    def take_subnet_index(self) -> int:
        return self._take(self.subnet_indexes)

    def take_lb_index(self, owner: str) -> int:
        index = self._take(self.lb_indexes)
        if index > MAX_LOAD_BALANCERS:
            raise BadInput(
                f"the lab would hold {len(self.lb_indexes)} load balancers; a lab holds at most "
                f"{MAX_LOAD_BALANCERS} (each takes {ZONES_PER_LB} of the lab's conntrack zones)",
                logical_id=owner,
                hint="delete a stack first, or put this one in a lab of its own",
            )
        return index


def address_space(vpcs: Iterable[VpcPlan], cidr: str) -> int:
    """The lowest address space in which `cidr` overlaps none of `vpcs`."""
    net = IPv4Network(cidr)
    taken = {v.space for v in vpcs if IPv4Network(v.cidr).overlaps(net)}
    return min(set(range(len(taken) + 1)) - taken)


def resolver_name(space: int) -> str:
    """The resolver host of address space `space`."""
    return DNS_HOST if space == 0 else f"{DNS_HOST}-{space}"


def _vpc_dns_ip(vpc: VpcPlan) -> str:
    return str(IPv4Network(vpc.cidr).network_address + 2)


def add_stack(
    plan: NetworkPlan | None, model: StackModel, lab: str, zone_base: int, qualifier: str
) -> NetworkPlan:
    """The lab's plan with stack `model` (plan names qualified with `qualifier`) added.

    plan None: the lab's first stack, laid out exactly as build_plan lays it out. Raises
    BadInput when a name or an address of the stack is already the lab's, or the lab would
    go past its limits (load balancers, ports with security groups, host links)."""
    fragment = build_plan(model, lab, zone_base, qualifier=qualifier)
    if plan is None:
        return fragment
    if (plan.lab, plan.zone_base) != (lab, zone_base):
        raise LabError(f"the plan is lab {plan.lab}'s (zone base {plan.zone_base}), not {lab}'s")
    # Routes it adds to other stacks' route tables (a peering route back) join their subnets.
    return with_foreign_table_routes(_Merge(plan, fragment, model).result(), model, qualifier)


class _Merge:
    """One stack's plan (laid out alone) placed after what the lab's plan holds."""

    def __init__(self, plan: NetworkPlan, fragment: NetworkPlan, model: StackModel) -> None:
        self.plan, self.fragment, self.model = plan, fragment, model
        self.alloc = Allocations.of(plan)
        self.switches = list(plan.switches)
        self.links = list(plan.links)
        self.hosts = list(plan.hosts)
        self.switch_of: dict[str, str] = {}

    def result(self) -> NetworkPlan:
        self._check_names()
        self._check_addresses()
        self._map_switches()
        vpcs = self._vpcs()
        space = {v.name: v.space for v in (*self.plan.vpcs, *vpcs)}
        subnets = tuple(
            replace(s, switch=self.switch_of[s.switch], index=self.alloc.take_subnet_index())
            for s in self.fragment.subnets
        )
        self._place_hosts(space)
        lbs = self._load_balancers()
        self._resolvers(vpcs)
        endpoints = tuple(
            replace(e, mac=host_mac(e.ip, space[e.vpc])) for e in self.fragment.endpoints
        )
        p, f = self.plan, self.fragment
        return replace(
            p,
            switches=tuple(self.switches),
            hosts=tuple(self.hosts),
            links=tuple(self.links),
            subnets=(*p.subnets, *subnets),
            vpcs=(*p.vpcs, *vpcs),
            has_internet_gateway=p.has_internet_gateway or f.has_internet_gateway,
            load_balancers=(*p.load_balancers, *lbs),
            endpoints=(*p.endpoints, *endpoints),
            igw_routes=(*p.igw_routes, *f.igw_routes),
            security_groups=(*p.security_groups, *f.security_groups),
            network_acls=(*p.network_acls, *f.network_acls),
            dns_records=(*p.dns_records, *f.dns_records),
            # The same ARN in two stacks is one certificate (the first stack's names).
            certificates=(
                *p.certificates,
                *(c for c in f.certificates if c.arn not in {x.arn for x in p.certificates}),
            ),
        )

    # ---- checks ----------------------------------------------------------------------
    def _check_names(self) -> None:
        def clash(kind: str, ours: Iterable[str], theirs: Iterable[str]) -> None:
            taken = set(theirs)
            for name in ours:
                if name in taken:
                    raise BadInput(
                        f"the lab already has a {kind} named {name}",
                        logical_id=name,
                        hint="give the stack a name no stack of the lab has",
                    )

        p, f = self.plan, self.fragment
        clash("host", (h.name for h in self._stack_hosts()), (h.name for h in p.hosts))
        clash("VPC", (v.name for v in f.vpcs), (v.name for v in p.vpcs))
        clash("subnet", (s.name for s in f.subnets), (s.name for s in p.subnets))
        clash(
            "load balancer",
            (lb.name for lb in f.load_balancers),
            (lb.name for lb in p.load_balancers),
        )
        clash(
            "security group",
            (g.name for g in f.security_groups),
            (g.name for g in p.security_groups),
        )
        clash("network ACL", (n.name for n in f.network_acls), (n.name for n in p.network_acls))
        clash("endpoint", (e.name for e in f.endpoints), (e.name for e in p.endpoints))

    def _check_addresses(self) -> None:
        """Public and internet addresses are one space for the whole lab: a stack may not
        take one the lab has handed out (private addresses may repeat in another VPC)."""
        held: dict[str, str] = {}
        for a in self.plan.attachments():
            if a.public_ip:
                held[a.public_ip] = a.name
            if a.vpc is None and a.kind == "client":
                held[a.ip] = a.name
        for lb in self.plan.load_balancers:
            held.update({n.public_ip: n.host for n in lb.nodes if n.public_ip})
        wanted = [(a.public_ip, a.name) for a in self.fragment.attachments() if a.public_ip]
        wanted += [(h.ip, h.name) for h in self._stack_hosts() if h.kind == "client"]
        wanted += [
            (n.public_ip, n.host)
            for lb in self.fragment.load_balancers
            for n in lb.nodes
            if n.public_ip
        ]
        for ip, name in wanted:
            if ip in held:
                raise BadInput(
                    f"address {ip} of {name} is already {held[ip]}'s in this lab",
                    logical_id=name,
                    hint="public and internet addresses are shared by every stack of a lab",
                )

    # ---- placement -------------------------------------------------------------------
    def _stack_hosts(self) -> list[HostPlan]:
        """The fragment's hosts that become the lab's: not its resolver (the lab has them
        per address space), not the internet client the lab made when the lab has one."""
        has_client = any(h.kind == "client" for h in self.plan.hosts)
        return [
            h
            for h in self.fragment.hosts
            if h.kind not in LAB_HOST_KINDS
            and not (h.kind == "client" and h.lab_made and has_client)
        ]

    def _core(self) -> SwitchPlan:
        return next(s for s in self.switches if s.role == "core")

    def _map_switches(self) -> None:
        """The fragment's switches onto the lab's: the core and the internet bridge are the
        lab's; an AZ bridge is the lab's of that AZ, else a new one joined to the core."""
        by_role = {s.role: s for s in self.switches if s.role != "az"}
        by_az = {s.az: s for s in self.switches if s.role == "az"}
        uplinks = {link.a: link for link in self.fragment.links}
        for sw in self.fragment.switches:
            if sw.role == "az" and sw.az in by_az:
                self.switch_of[sw.name] = by_az[sw.az].name
            elif sw.role != "az" and sw.role in by_role:
                self.switch_of[sw.name] = by_role[sw.role].name
            elif sw.role == "core":
                raise LabError(f"lab {self.plan.lab}'s plan has no core switch")
            else:
                new = self._new_switch(sw)
                self.switch_of[sw.name] = new.name
                self._uplink(new, uplinks[sw.name])

    def _new_switch(self, sw: SwitchPlan) -> SwitchPlan:
        if sw.role == "internet":
            new = SwitchPlan(naming.bridge_name(self.plan.lab, "inet"), INTERNET_DPID, "internet")
        else:
            dpids = {s.dpid for s in self.switches}
            n = min(i for i in range(1, len(dpids) + 2) if AZ_DPID_BASE + i not in dpids)
            new = SwitchPlan(
                naming.bridge_name(self.plan.lab, f"az{n}"), AZ_DPID_BASE + n, "az", sw.az
            )
        self.switches.append(new)
        return new

    def _uplink(self, sw: SwitchPlan, like: LinkPlan) -> None:
        """A new switch's link to the core, of the kind (patch or veth, delay, bandwidth) the
        stack's own layout gave it."""
        core = self._core()
        a_intf, b_intf = self.alloc.take_patch_pair()
        self.alloc.ports.setdefault(sw.name, set()).add(UPLINK_PORT)
        self.links.append(
            replace(
                like,
                a=sw.name,
                a_intf=a_intf,
                a_port=UPLINK_PORT,
                b=core.name,
                b_intf=b_intf,
                b_port=self.alloc.take_port(core.name),
            )
        )

    def _vpcs(self) -> tuple[VpcPlan, ...]:
        vpcs: list[VpcPlan] = []
        for v in self.fragment.vpcs:
            space = address_space((*self.plan.vpcs, *vpcs), v.cidr)
            vpcs.append(replace(v, index=self.alloc.take_vpc_index(), space=space))
        return tuple(vpcs)

    def _place_hosts(self, space: dict[str, int]) -> None:
        """Ports and host links in the stack's order; conntrack zones as build_plan hands
        them out (every eth0 first, then the extra interfaces)."""

        def spaced(vpc: str | None) -> int:
            return space[vpc] if vpc is not None else 0

        placed: list[HostPlan] = []
        for h in self._stack_hosts():
            switch = self.switch_of[h.switch]
            port, veth = self.alloc.take_port(switch), self.alloc.take_veth(h.name)
            interfaces: list[InterfacePlan] = []
            for i in h.interfaces:
                i_switch = self.switch_of[i.switch]
                interfaces.append(
                    replace(
                        i,
                        switch=i_switch,
                        port=self.alloc.take_port(i_switch),
                        veth=self.alloc.take_veth(f"{h.name}/{i.name}"),
                        mac=host_mac(i.ip, spaced(i.vpc)),
                    )
                )
            placed.append(
                replace(
                    h,
                    switch=switch,
                    port=port,
                    veth=veth,
                    mac=host_mac(h.ip, spaced(h.vpc)),
                    interfaces=tuple(interfaces),
                )
            )

        def zone(z: int | None) -> int | None:
            return None if z is None else self.alloc.take_zone()

        placed = [replace(h, sg_zone=zone(h.sg_zone)) for h in placed]
        placed = [
            replace(h, interfaces=tuple(replace(i, sg_zone=zone(i.sg_zone)) for i in h.interfaces))
            for h in placed
        ]
        self.hosts += placed

    def _load_balancers(self) -> tuple[LoadBalancerPlan, ...]:
        out = []
        base = self.plan.zone_base
        for lb in self.fragment.load_balancers:
            index = self.alloc.take_lb_index(lb.name)
            zone = base + ZONES_PER_LB * (index - 1)
            out.append(replace(lb, index=index, zone_dnat=zone, zone_snat=zone + 1))
        return tuple(out)

    def _resolvers(self, vpcs: tuple[VpcPlan, ...]) -> None:
        """Each new VPC's base + 2 on its address space's resolver (a new resolver host on
        the core for a new space); the internet's .2 on LabDNS when the stack brings the
        internet segment."""
        own = next((h for h in self.fragment.hosts if h.kind == "dns"), None)
        wanted: dict[int, list[str]] = {}
        for v in vpcs:
            wanted.setdefault(v.space, []).append(_vpc_dns_ip(v))
        if own is not None:
            vpc_ips = {_vpc_dns_ip(v) for v in vpcs}
            wanted.setdefault(0, []).extend(
                ip for ip in (own.ip, *own.extra_ips) if ip not in vpc_ips
            )
        for space, ips in sorted(wanted.items()):
            name = resolver_name(space)
            current = next((h for h in self.hosts if h.name == name), None)
            if current is None:
                self.hosts.append(self._resolver(name, space, ips))
                continue
            have = (current.ip, *current.extra_ips)
            more = tuple(ip for ip in ips if ip not in have)
            if more:
                at = self.hosts.index(current)
                self.hosts[at] = replace(current, extra_ips=(*current.extra_ips, *more))

    def _resolver(self, name: str, space: int, ips: list[str]) -> HostPlan:
        core = self._core()
        return HostPlan(
            name=name,
            netns=naming.netns_name(self.plan.lab, name),
            kind="dns",
            ip=ips[0],
            prefixlen=32,
            gateway="",
            mac=host_mac(ips[0], space),
            switch=core.name,
            port=self.alloc.take_port(core.name),
            veth=self.alloc.take_veth(name),
            extra_ips=tuple(ips[1:]),
            role=None,
        )


def stack_owns(qualifier: str, name: str | None) -> bool:
    """Whether plan name `name` is of the stack with `qualifier` ("" : the lab's first stack,
    whose names are bare logical ids, which never hold a ".")."""
    if name is None:
        return False
    return name.startswith(qualifier) if qualifier else "." not in name


def remove_stack(plan: NetworkPlan, qualifier: str) -> NetworkPlan:
    """The lab's plan without the stack of `qualifier`: its hosts, subnets, VPCs, load
    balancers, endpoints, groups, ACLs, DNS records and the internet gateway routes to its
    endpoints and NAT gateways. Its VPCs' addresses leave their resolvers (a resolver left
    without any goes); an AZ bridge no host and no subnet uses any more goes with its link
    to the core. Everything else keeps what it had."""

    def owned(name: str | None) -> bool:
        return stack_owns(qualifier, name)

    gone_vpcs = [v for v in plan.vpcs if owned(v.name)]
    hosts = [h for h in plan.hosts if h.kind in LAB_HOST_KINDS or not owned(h.name)]
    hosts = _without_resolver_addresses(hosts, gone_vpcs)
    subnets = without_routes_into(plan, owned).subnets  # peering routes into its VPCs too
    subnets = tuple(s for s in subnets if not owned(s.name))
    used = {h.switch for h in hosts} | {i.switch for h in hosts for i in h.interfaces}
    used |= {s.switch for s in subnets}
    switches = tuple(s for s in plan.switches if s.role != "az" or s.name in used)
    names = {s.name for s in switches}
    return replace(
        plan,
        switches=switches,
        hosts=tuple(hosts),
        links=tuple(link for link in plan.links if link.a in names and link.b in names),
        subnets=subnets,
        vpcs=tuple(v for v in plan.vpcs if not owned(v.name)),
        load_balancers=tuple(lb for lb in plan.load_balancers if not owned(lb.name)),
        endpoints=tuple(e for e in plan.endpoints if not owned(e.name)),
        igw_routes=tuple(
            r
            for r in plan.igw_routes
            if not (r.kind in ("vpce", "nat") and owned(r.target))
            and not owned(getattr(r, "vpc", None))
        ),
        security_groups=tuple(g for g in plan.security_groups if not owned(g.name)),
        network_acls=tuple(n for n in plan.network_acls if not owned(n.name)),
        dns_records=tuple(r for r in plan.dns_records if not owned(r.record)),
    )


def _without_resolver_addresses(hosts: list[HostPlan], vpcs: list[VpcPlan]) -> list[HostPlan]:
    gone = {(resolver_name(v.space), _vpc_dns_ip(v)) for v in vpcs}
    out = []
    for h in hosts:
        if h.kind != "dns":
            out.append(h)
            continue
        ips = [ip for ip in (h.ip, *h.extra_ips) if (h.name, ip) not in gone]
        if not ips:
            continue  # the resolver of a space no VPC is in any more
        if ips[0] != h.ip:
            # Its first address went: another becomes eth0's (the MAC follows the address).
            space = int(h.mac.split(":")[1], 16)
            h = replace(h, ip=ips[0], mac=host_mac(ips[0], space))
        out.append(replace(h, extra_ips=tuple(ips[1:])))
    return out
