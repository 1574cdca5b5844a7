"""Security groups and network ACLs of a lab as flow entries: pure logic, like Forwarding.

Security groups are stateful and enforced per switch port (per interface, as AWS tracks per
ENI), with ONE conntrack zone per port (HostPlan.sg_zone), so that a connection a port let in
is known when its replies leave through the same port, and the other way round:

  egress, at the sending port, before anything rewrites addresses:
    0 (source check) -> 2: ct(zone of the port) -> 3: tracked replies and established
    packets go on to STEER; a new connection an egress rule of one of the port's groups
    allows is committed, then STEER; anything else is dropped (one drop entry per port).
  ingress, at the receiving port, after every translation (IGW, NLB):
    50 (output to a local port with groups) -> 55: ct(zone of the port) -> 56: the same
    decision with the ingress rules, then output to the port; else dropped (one per port).

An NLB's listener traffic never reaches its nodes' ports (the fabric steers it to a target
where it enters): the groups of an NLB node check it in table 24, between the route and the
listeners, in the node's zone (see _nlb_node).

An established packet takes exactly one conntrack lookup per direction per filtered port
(the ct() of table 2 or 55); only the first packet of a connection is committed. The lab
tracks every connection: AWS's "untracked flows" (both directions open to 0.0.0.0/0) are not
emulated, so removing a rule never cuts an established connection here. ARP and non-IP frames
are never filtered; neither is traffic to or from the lab's resolver (AWS exempts the
Route 53 Resolver at VPC+2 from groups and ACLs).

Network ACLs are stateless, per subnet, and only see routed traffic that crosses the subnet's
edge (AWS: "not as it is routed within a subnet"): outbound in table 15 (the source subnet,
by the realm metadata of table 0, eth_dst = router MAC), inbound in table 35 (the
destination subnet, by ipv4_dst, after L3_DELIVER). Entries are tried by rule number (priority
NACL_TOP - rule number: lowest number first), the first match decides, an implicit deny at
the lowest priority ends each subnet's list. Subnets on the default ACL get no entries.

Two VPCs may use the same addresses (issue 14: each VPC has an address space, and VPCs of one
space never overlap). Then every entry that finds its subnet or NLB node by a destination
address alone also matches the VPC bits of the metadata, which after routing name the VPC the
destination address is in (testbed.controllers.forwarding). A lab whose VPCs do not overlap
keeps exactly the entries it always had.

`drop_owner` names the group port or the ACL behind a drop entry's flow statistics, so the
metrics can count dropped packets per port / group and per ACL.
"""

from __future__ import annotations

from functools import lru_cache
from ipaddress import IPv4Network
from typing import Any

from testbed.controllers.flows import (
    CT_EST,
    CT_INV,
    CT_NEW,
    CT_REL,
    CT_TRK,
    ETH_TYPE_IP,
    IPPROTO_ICMP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    TABLE_LB,
    TABLE_NACL_IN,
    TABLE_NACL_OUT,
    TABLE_OUTPUT,
    TABLE_ROUTE,
    TABLE_SG_IN,
    TABLE_SG_IN_RULES,
    TABLE_SG_LB,
    TABLE_SG_OUT,
    TABLE_SG_OUT_RULES,
    TABLE_STEER,
    Action,
    Ct,
    Flow,
    Output,
    flow,
)
from testbed.plan.network import HostPlan, NaclEntryPlan, NetworkPlan, SgRulePlan

# Packet metadata layout written by table 0 (testbed.controllers.forwarding): the VPC index in
# bits 32-47, the subnet index in bits 0-15. Repeated here to keep forwarding independent.
VPC_MASK = 0xFFFF << 32
SUBNET_MASK = VPC_MASK | 0xFFFF

# Priorities in the security group tables.
PRIO_EST = 65000  # a packet of a tracked connection (either direction)
PRIO_REL = 64990  # related to a tracked connection (ICMP errors, ...)
PRIO_RESOLVER = 200  # to / from the lab's resolver: never filtered
PRIO_TRACK = 100  # table 2 / 55: every IP packet of the port through its zone
PRIO_RULE = 1000  # + i: the i-th distinct rule match of a port (distinct: no overlaps)
MAX_RULE_ENTRIES = 60000  # PRIO_RULE + i stays below PRIO_REL
PRIO_PASS = 10  # table 55: non-IP frames go straight to the port
PRIO_DENY = 10  # tables 3 / 24 / 56: what no rule allowed, one entry per port (counted)
PRIO_LB_TRACK = 5  # table 24: first pass (below every entry of the second pass)
# Priorities in the network ACL tables.
NACL_TOP = 40000  # entry with rule number n: NACL_TOP - n (1..32766 -> above PRIO_NACL_DENY)
PRIO_NACL_EXEMPT = 65000  # the resolver; traffic that stays inside the subnet
PRIO_NACL_DENY = 1  # the implicit final deny of a subnet (counted)

# The tables whose flow statistics hold the drop entries drop_owner names.
STAT_TABLES = (
    TABLE_SG_OUT_RULES,
    TABLE_NACL_OUT,
    TABLE_SG_LB,
    TABLE_NACL_IN,
    TABLE_SG_IN_RULES,
)

# ct_state (value, mask) pairs: established or related, never invalid; a new connection.
EST = (CT_TRK | CT_EST, CT_TRK | CT_EST | CT_INV)
REL = (CT_TRK | CT_REL, CT_TRK | CT_REL | CT_INV)
NEW = (CT_TRK | CT_NEW, CT_TRK | CT_NEW | CT_INV)

PORT_FIELDS = {IPPROTO_TCP: "tcp_dst", IPPROTO_UDP: "udp_dst"}


def address_space(vpc: Any) -> int:
    """The VPC's address space (VpcPlan.space; 0 for a plan made before address spaces)."""
    return int(getattr(vpc, "space", 0) or 0)


def vpcs_share_addresses(plan: NetworkPlan) -> bool:
    """Whether an address may belong to two VPCs of the plan (a VPC in an address space
    above 0, or two overlapping CIDRs), or a route leads into another VPC (VPC peering):
    then address matches also match the VPC bits, so that a packet is delivered only in the
    realm its route led it to (peering is not transitive)."""
    if any(address_space(v) for v in plan.vpcs):
        return True
    if any(r.kind == "pcx" for s in plan.subnets for r in s.routes):
        return True
    nets = [IPv4Network(v.cidr) for v in plan.vpcs]
    return any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])


def in_vpc(vpc_index: int) -> dict[str, Any]:
    """The match on the metadata's VPC bits (the destination realm, after routing)."""
    return {"metadata": (vpc_index << 32, VPC_MASK)}


def filtered(h: HostPlan) -> bool:
    """Whether security groups filter this port (groups None: no filtering at all)."""
    return h.groups is not None


def egress_table(h: HostPlan) -> int:
    """Where table 0's source check sends a port's packets: through its groups or not."""
    return TABLE_SG_OUT if filtered(h) else TABLE_STEER


def deliver(h: HostPlan) -> tuple[list[Action], int | None]:
    """(actions, goto) of TABLE_OUTPUT's entry for a port on its own switch: through the
    port's groups, or straight out."""
    if filtered(h):
        return [], TABLE_SG_IN
    return [Output(h.port)], None


def port_masks(low: int, high: int) -> list[tuple[int, int]]:
    """The fewest (value, mask) pairs that match exactly the ports low..high (16 bits)."""
    out = []
    while low <= high:
        size = (low & -low) if low else 1 << 16
        while size > high - low + 1:
            size >>= 1
        out.append((low, 0xFFFF & ~(size - 1)))
        low += size
    return out


def _port_matches(field: str, low: int | None, high: int | None) -> list[dict[str, Any]]:
    if low is None or low < 0:
        return [{}]
    high = low if high is None or high < 0 else high
    out: list[dict[str, Any]] = []
    for value, mask in port_masks(max(low, 0), min(high, 0xFFFF)):
        if mask == 0:
            out.append({})  # every port
        elif mask == 0xFFFF:
            out.append({field: value})
        else:
            out.append({field: (value, mask)})
    return out


def proto_matches(
    protocol: int,
    ports: tuple[int | None, int | None] | None,
    icmp: tuple[int | None, int | None] | None,
) -> list[dict[str, Any]]:
    """Match dicts for a protocol (-1: any IP) with a destination port range (tcp/udp) or an
    ICMP type and code (-1 or None: any)."""
    if protocol < 0:
        return [{}]
    base: dict[str, Any] = {"ip_proto": protocol}
    if protocol in PORT_FIELDS:
        low, high = ports or (None, None)
        return [{**base, **m} for m in _port_matches(PORT_FIELDS[protocol], low, high)]
    if protocol == IPPROTO_ICMP and icmp is not None:
        kind, code = icmp
        if kind is not None and kind >= 0:
            base["icmpv4_type"] = kind
            if code is not None and code >= 0:
                base["icmpv4_code"] = code
    return [base]


def _addr(field: str, cidr: str) -> dict[str, Any]:
    address, netmask, prefixlen = _parsed(cidr)
    if prefixlen == 0:
        return {}
    if prefixlen == 32:
        return {field: address}
    return {field: (address, netmask)}


@lru_cache(maxsize=65536)
def _parsed(cidr: str) -> tuple[str, str, int]:
    """Network address, netmask and prefix length of `cidr`. A group referencing itself
    gives every member's port a rule per member (N² matches for N members): parsing each
    address once keeps reprogramming a lab that Auto Scaling grows cheap."""
    net = IPv4Network(cidr, strict=False)
    return str(net.network_address), str(net.netmask), net.prefixlen


def _key(match: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(match.items()))


class SecurityLogic:
    """Flows of tables 2, 3, 15, 35, 55 and 56 for every switch of one lab."""

    def __init__(self, plan: NetworkPlan) -> None:
        self.plan = plan
        self.ports = [a for a in plan.attachments() if filtered(a)]
        for a in self.ports:
            if a.sg_zone is None:
                raise ValueError(f"{a.name} has security groups but no conntrack zone")
        self._switch = {s.dpid: s.name for s in plan.switches}
        self._vpc_index = {v.name: v.index for v in plan.vpcs}
        self._subnets = {s.name: s for s in plan.subnets}
        self._separate = vpcs_share_addresses(plan)
        self._groups = {g.name: g for g in plan.security_groups}
        self._nacls = {n.name: n for n in plan.network_acls}
        self._nlb_nodes = {
            n.host for lb in plan.load_balancers if lb.type == "network" for n in lb.nodes
        }
        self.resolver_ips = sorted(
            {ip for h in plan.hosts if h.kind == "dns" for ip in (h.ip, *h.extra_ips)}
        )

    # ---- groups -----------------------------------------------------------------------
    def members(self, group: str) -> list[str]:
        """The private addresses of every port carrying `group` (a peer-group rule)."""
        ips: set[str] = set()
        for a in self.plan.attachments():
            if a.groups and group in a.groups:
                ips.update((a.ip, *a.extra_ips))
        return sorted(ips)

    def rule_matches(self, rule: SgRulePlan, peer_field: str) -> list[dict[str, Any]]:
        """Match dicts (without the port) for one rule; peer_field: ipv4_src (ingress) or
        ipv4_dst (egress). A peer group without members matches nothing."""
        if rule.group is not None:
            peers = [f"{ip}/32" for ip in self.members(rule.group)]
        elif rule.cidr is not None:
            peers = [rule.cidr]
        else:
            peers = []
        protos = proto_matches(
            rule.protocol, (rule.from_port, rule.to_port), (rule.from_port, rule.to_port)
        )
        return [
            {"eth_type": ETH_TYPE_IP, **_addr(peer_field, peer), **p}
            for peer in peers
            for p in protos
        ]

    def port_rules(self, port: HostPlan, ingress: bool) -> list[dict[str, Any]]:
        """Distinct matches of every rule of the port's groups in one direction (the union
        of its groups, as AWS aggregates them), in a stable order."""
        seen: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}
        for name in port.groups or ():
            group = self._groups.get(name)
            if group is None:
                continue  # a group the plan does not describe grants nothing
            for rule in group.ingress if ingress else group.egress:
                for m in self.rule_matches(rule, "ipv4_src" if ingress else "ipv4_dst"):
                    seen.setdefault(_key(m), m)
        if len(seen) > MAX_RULE_ENTRIES:
            direction = "ingress" if ingress else "egress"
            raise ValueError(
                f"{port.name}: its groups' {direction} rules make {len(seen)} flow entries; "
                f"the lab gives a port at most {MAX_RULE_ENTRIES}"
            )
        return list(seen.values())

    def _egress(self, port: HostPlan) -> list[Flow]:
        zone = port.sg_zone
        assert zone is not None
        on_port = {"in_port": port.port}
        flows = [
            flow(
                TABLE_SG_OUT,
                PRIO_TRACK,
                {**on_port, "eth_type": ETH_TYPE_IP},
                [Ct(zone, TABLE_SG_OUT_RULES)],
            )
        ]
        flows += [
            flow(
                TABLE_SG_OUT,
                PRIO_RESOLVER,
                {**on_port, "eth_type": ETH_TYPE_IP, "ipv4_dst": ip},
                goto=TABLE_STEER,
            )
            for ip in self.resolver_ips
        ]
        flows.append(
            flow(TABLE_SG_OUT_RULES, PRIO_EST, {**on_port, "ct_state": EST}, goto=TABLE_STEER)
        )
        flows.append(
            flow(TABLE_SG_OUT_RULES, PRIO_REL, {**on_port, "ct_state": REL}, goto=TABLE_STEER)
        )
        for i, m in enumerate(self.port_rules(port, ingress=False)):
            flows.append(
                flow(
                    TABLE_SG_OUT_RULES,
                    PRIO_RULE + i,
                    {**on_port, "ct_state": NEW, **m},
                    [Ct(zone, None, commit=True)],
                    goto=TABLE_STEER,
                )
            )
        flows.append(flow(TABLE_SG_OUT_RULES, PRIO_DENY, on_port))  # counted: sg-egress
        return flows

    def _ingress(self, port: HostPlan) -> list[Flow]:
        zone = port.sg_zone
        assert zone is not None
        to_port = {"eth_dst": port.mac}
        out = [Output(port.port)]
        flows = [
            flow(
                TABLE_SG_IN,
                PRIO_TRACK,
                {**to_port, "eth_type": ETH_TYPE_IP},
                [Ct(zone, TABLE_SG_IN_RULES)],
            ),
            flow(TABLE_SG_IN, PRIO_PASS, to_port, out),  # ARP and other non-IP frames
        ]
        flows += [
            flow(
                TABLE_SG_IN,
                PRIO_RESOLVER,
                {**to_port, "eth_type": ETH_TYPE_IP, "ipv4_src": ip},
                out,
            )
            for ip in self.resolver_ips
        ]
        flows.append(flow(TABLE_SG_IN_RULES, PRIO_EST, {**to_port, "ct_state": EST}, out))
        flows.append(flow(TABLE_SG_IN_RULES, PRIO_REL, {**to_port, "ct_state": REL}, out))
        for i, m in enumerate(self.port_rules(port, ingress=True)):
            flows.append(
                flow(
                    TABLE_SG_IN_RULES,
                    PRIO_RULE + i,
                    {**to_port, "ct_state": NEW, **m},
                    [Ct(zone, None, commit=True), *out],
                )
            )
        flows.append(flow(TABLE_SG_IN_RULES, PRIO_DENY, to_port))  # counted: sg-ingress
        return flows

    def _nlb_node(self, node: HostPlan) -> list[Flow]:
        """Table 24, on every switch: an NLB's listener traffic is steered to its targets
        where it enters the fabric and never reaches the node's port, so the node's groups
        check it there (inbound rules, the node's zone) before the listeners (table 25).
        One table, two passes: ct(zone) recirculates into table 24 itself, and the second
        pass is told apart by ct_zone (set by that ct)."""
        zone = node.sg_zone
        assert zone is not None
        to_node = {"eth_type": ETH_TYPE_IP, "ipv4_dst": node.ip, **self._vpc_of(node)}
        tracked = {**to_node, "ct_zone": zone}
        flows = [
            flow(TABLE_SG_LB, PRIO_LB_TRACK, to_node, [Ct(zone, TABLE_SG_LB)]),
            flow(TABLE_SG_LB, PRIO_EST, {**tracked, "ct_state": EST}, goto=TABLE_LB),
            flow(TABLE_SG_LB, PRIO_REL, {**tracked, "ct_state": REL}, goto=TABLE_LB),
        ]
        for i, m in enumerate(self.port_rules(node, ingress=True)):
            flows.append(
                flow(
                    TABLE_SG_LB,
                    PRIO_RULE + i,
                    {**tracked, "ct_state": NEW, **m},
                    [Ct(zone, None, commit=True)],
                    goto=TABLE_LB,
                )
            )
        flows.append(flow(TABLE_SG_LB, PRIO_DENY, tracked))  # counted: sg-ingress
        return flows

    def _vpc_of(self, port: HostPlan) -> dict[str, Any]:
        """The match on the port's VPC when VPCs share addresses, else nothing."""
        if not self._separate or port.subnet not in self._subnets:
            return {}
        return in_vpc(self._vpc_index[self._subnets[port.subnet].vpc])

    # ---- network ACLs -----------------------------------------------------------------
    def _subnet_tag(self, subnet: Any) -> int:
        return (self._vpc_index[subnet.vpc] << 32) | subnet.index

    def _entry_matches(self, e: NaclEntryPlan, peer_field: str) -> list[dict[str, Any]]:
        return [
            {"eth_type": ETH_TYPE_IP, **_addr(peer_field, e.cidr), **p}
            for p in proto_matches(e.protocol, e.ports, e.icmp)
        ]

    def _nacl(self) -> list[Flow]:
        """Tables 15 and 35: the same on every switch (routing happens where a packet
        enters, so each packet meets them once)."""
        flows: list[Flow] = []  # (their priority-0 pass entries are Forwarding's)
        rm = self.plan.router_mac
        for subnet in self.plan.subnets:
            nacl = self._nacls.get(subnet.nacl) if subnet.nacl else None
            if nacl is None:
                continue  # the default ACL allows everything: nothing to program
            routed = {"metadata": (self._subnet_tag(subnet), SUBNET_MASK), "eth_dst": rm}
            inside = _addr("ipv4_dst", subnet.cidr)
            # Inbound, the subnet is found by the destination address: in its VPC.
            vpc = in_vpc(self._vpc_index[subnet.vpc]) if self._separate else {}
            into = {"eth_type": ETH_TYPE_IP, **inside, **vpc}
            # Not crossing the edge: to another address of the subnet (a load balancer node
            # is routed even from its own subnet), and the resolver either way.
            flows.append(
                flow(
                    TABLE_NACL_OUT,
                    PRIO_NACL_EXEMPT,
                    {**routed, "eth_type": ETH_TYPE_IP, **inside},
                    goto=TABLE_ROUTE,
                )
            )
            flows.append(
                flow(
                    TABLE_NACL_IN,
                    PRIO_NACL_EXEMPT,
                    {**into, **_addr("ipv4_src", subnet.cidr)},
                    goto=TABLE_OUTPUT,
                )
            )
            for ip in self.resolver_ips:
                flows.append(
                    flow(
                        TABLE_NACL_OUT,
                        PRIO_NACL_EXEMPT + 1,
                        {**routed, "eth_type": ETH_TYPE_IP, "ipv4_dst": ip},
                        goto=TABLE_ROUTE,
                    )
                )
                flows.append(
                    flow(
                        TABLE_NACL_IN,
                        PRIO_NACL_EXEMPT + 1,
                        {**into, "ipv4_src": ip},
                        goto=TABLE_OUTPUT,
                    )
                )
                if IPv4Network(subnet.cidr).supernet_of(IPv4Network(f"{ip}/32")):
                    flows.append(
                        flow(
                            TABLE_NACL_IN,
                            PRIO_NACL_EXEMPT + 2,
                            {"eth_type": ETH_TYPE_IP, "ipv4_dst": ip, **vpc},
                            goto=TABLE_OUTPUT,
                        )
                    )
            for e in nacl.entries:
                prio = NACL_TOP - e.rule_number
                if e.egress:
                    for m in self._entry_matches(e, "ipv4_dst"):
                        flows.append(
                            flow(
                                TABLE_NACL_OUT,
                                prio,
                                {**routed, **m},
                                goto=TABLE_ROUTE if e.allow else None,
                            )
                        )
                else:
                    for m in self._entry_matches(e, "ipv4_src"):
                        flows.append(
                            flow(
                                TABLE_NACL_IN,
                                prio,
                                {**m, **inside, **vpc},
                                goto=TABLE_OUTPUT if e.allow else None,
                            )
                        )
            flows.append(flow(TABLE_NACL_OUT, PRIO_NACL_DENY, routed))  # counted: nacl-out
            flows.append(flow(TABLE_NACL_IN, PRIO_NACL_DENY, into))  # counted: nacl-in
        return _unique(flows)

    # ---- all --------------------------------------------------------------------------
    def flows_for(self, dpid: int) -> list[Flow]:
        """Every security group and network ACL flow of switch `dpid`."""
        switch = self._switch[dpid]
        flows = [
            flow(TABLE_SG_OUT, 0),
            flow(TABLE_SG_OUT_RULES, 0),
            flow(TABLE_SG_IN, 0),
            flow(TABLE_SG_IN_RULES, 0),
        ]
        for port in self.ports:
            if port.switch == switch:
                flows += self._egress(port)
                flows += self._ingress(port)
        if any(h.switch == switch for h in self.plan.hosts):
            # Routing (and NLB steering) happens where a packet enters: at a host's switch.
            for node in self.ports:
                if node.name in self._nlb_nodes:
                    flows += self._nlb_node(node)
        flows += self._nacl()
        return flows

    # ---- counters ---------------------------------------------------------------------
    def drop_owner(
        self, dpid: int, table: int, priority: int, match: dict[str, Any]
    ) -> tuple[str, str] | None:
        """(kind, name) of a drop entry from its flow statistics: ('sg-egress' |
        'sg-ingress', port name) or ('nacl-out' | 'nacl-in', ACL name); None for an entry
        that does not drop for a group or an ACL."""
        switch = self._switch.get(int(dpid))
        if table == TABLE_SG_OUT_RULES and priority == PRIO_DENY:
            port = next(
                (p for p in self.ports if p.switch == switch and p.port == match.get("in_port")),
                None,
            )
            return ("sg-egress", port.name) if port else None
        if table == TABLE_SG_LB and priority == PRIO_DENY:
            node = next(
                (
                    p
                    for p in self.ports
                    if p.ip == match.get("ipv4_dst")
                    and self._vpc_of(p).get("metadata", match.get("metadata"))
                    == match.get("metadata")
                ),
                None,
            )
            return ("sg-ingress", node.name) if node else None
        if table == TABLE_SG_IN_RULES and priority == PRIO_DENY:
            port = next((p for p in self.ports if p.mac == match.get("eth_dst")), None)
            return ("sg-ingress", port.name) if port else None
        if table not in (TABLE_NACL_OUT, TABLE_NACL_IN):
            return None
        egress = table == TABLE_NACL_OUT
        subnet = self._nacl_subnet(match, egress)
        if subnet is None or subnet.nacl is None:
            return None
        nacl = self._nacls.get(subnet.nacl)
        if nacl is None:
            return None
        kind = "nacl-out" if egress else "nacl-in"
        if priority == PRIO_NACL_DENY:
            return kind, nacl.name
        for e in nacl.entries:
            if e.egress == egress and NACL_TOP - e.rule_number == priority and not e.allow:
                return kind, nacl.name
        return None

    def _nacl_subnet(self, match: dict[str, Any], egress: bool) -> Any:
        if egress:
            value = _unmask(match.get("metadata"))
            return next(
                (
                    s
                    for s in self.plan.subnets
                    if value is not None and self._subnet_tag(s) == value & SUBNET_MASK
                ),
                None,
            )
        dst = match.get("ipv4_dst")
        if not isinstance(dst, list | tuple):
            return None
        net = IPv4Network(f"{dst[0]}/{dst[1]}")
        vpc = _unmask(match.get("metadata"))
        return next(
            (
                s
                for s in self.plan.subnets
                if IPv4Network(s.cidr) == net
                and (vpc is None or vpc >> 32 == self._vpc_index[s.vpc])
            ),
            None,
        )


def _unmask(value: Any) -> int | None:
    if isinstance(value, list | tuple):
        value = value[0]
    return None if value is None else int(value)


def _unique(flows: list[Flow]) -> list[Flow]:
    """Flows without repeats (the resolver's exemption appears once per subnet)."""
    return list(dict.fromkeys(flows))
