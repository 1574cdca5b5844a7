"""NLB data plane as pure logic: listeners, Maglev target selection, stateless NAT.

Every connection has two plain conntrack entries (no conntrack NAT for the client side):
the client side one (zone_dnat, keyed by client -> node address and listener port) whose
ct_label names the target (address << 16 | port), and the target side one (zone_snat, keyed
by the 4-tuple the target sees) whose ct_label names the node address and listener port. The
addresses are rewritten by set-field / move actions from those labels. Conntrack NAT in the
client side zone would make OVS 3.1's userspace conntrack reserve the reply tuple of a closed
connection until its sweeper runs (its un-NAT entry outlives the connection): a client that
reuses a source port within that time had its port changed at the target, or its SYN left
untranslated once the port space was taken (the node answered RST). Plain entries of a closed
connection are replaced by a new SYN at once.

Per switch, for every network load balancer of the plan:
  TABLE_LB (25)   a packet to a node address and listener port gets a selector id (reg1)
                  and goes through the client side zone.
  26              established: the destination becomes the target named by the entry's
                  label; through the target side zone (which applies the connection's SNAT
                  when the client address is not preserved) and on to delivery. New (TCP
                  SYN, any UDP): a connection the zone has no entry for is hashed
                  (multipath over the 5-tuple, or the source address with source_ip
                  stickiness) into reg0 = a Maglev bucket; one it knows (a retransmitted
                  SYN) keeps its target (28). Any other TCP segment of an unknown flow: to
                  the controller, which answers RST (terminating a flow forgets its entries).
  27              bucket -> target: commit the client side entry with the target's label,
                  rewrite the destination.
  28              one entry per target: counts new flows (NewFlowCount), commits the target
                  side entry with the node's label (and SNAT to the node address when the
                  client address is not preserved).
  TABLE_STEER (10) on the switch of each target: its replies go through the target side
  11, 12          zone, get the node's address and port from its label, go through the
                  client side zone and then take the node's subnet for routing (so an
                  internet-facing node's replies leave through the internet gateway with its
                  public address).
Behind a TLS listener (issue 16) the node's HAProxy ends TLS and connects to the targets
itself; to a group that preserves the client address it connects from the client's address
(transparent proxying, testbed.alb.nlb_tls), so the targets' replies are addressed to the
client, not to the node. On the node's switch (TABLE_STEER) every TCP packet the node sends
from an address not its own is committed in the target side zone with a label naming the
node (TRANSPARENT_FLAG | its address); on the target's switch the reply steering above finds
that entry, and TABLE_REPLY_SNAT sends the reply to the node's MAC, untranslated (the node's
kernel hands it to the connecting socket).
When two VPCs share addresses (issue 14), a listener also matches the VPC bits of the
metadata, which after routing name the destination's VPC (testbed.controllers.forwarding),
and a target is the port of that address in the load balancer's VPC.
A ct action whose result no flow matches on runs without a recirculation (no table).
The controller never sees data packets: connections keep their target for their lifetime
because conntrack remembers it; only new connections consult the (changing) Maglev table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address

from testbed import maglev
from testbed.controllers.flows import (
    CT_EST,
    CT_NEW,
    CT_RPL,
    CT_TRK,
    ETH_TYPE_IP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    TABLE_CLASSIFY,
    TABLE_L3_DELIVER,
    TABLE_LB,
    TABLE_NACL_OUT,
    TABLE_OUTPUT,
    TABLE_ROUTE,
    TABLE_STEER,
    TCP_ACK,
    TCP_SYN,
    Ct,
    Flow,
    Move,
    Multipath,
    Nat,
    Output,
    PacketOut,
    SetField,
    ToController,
    flow,
)
from testbed.controllers.security import in_vpc, vpcs_share_addresses
from testbed.plan.balancers import LoadBalancerPlan, NodePlan, TargetGroupPlan
from testbed.plan.network import HostPlan, NetworkPlan

TABLE_REPLY_SNAT = 11
TABLE_REPLY_SOURCE = 12
TABLE_NLB_STATE = 26
TABLE_NLB_SELECT = 27
TABLE_NLB_COUNT = 28  # one entry per target and selector: its packets = the new flows
# ct_label bit of a target side entry committed for a node's transparent connection (above
# the 48 bits of an endpoint label), and the mask that names the node in such a label.
TRANSPARENT_FLAG = 1 << 96
TRANSPARENT_NODE_MASK = TRANSPARENT_FLAG | 0xFFFF_FFFF << 16
SNAT_PORTS = (1024, 60999)  # node hosts keep 61000-65535 for their own (health check) ports
PROTOS = {"TCP": (IPPROTO_TCP,), "UDP": (IPPROTO_UDP,), "TCP_UDP": (IPPROTO_TCP, IPPROTO_UDP)}
IN_SERVICE = ("healthy", "initial", "unhealthy")  # registered and not leaving


@dataclass(frozen=True)
class RuntimeTarget:
    """A registered target as the holder reports it: where it is and its health state."""

    key: str
    ip: str
    port: int
    az: str | None
    state: str  # initial | healthy | unhealthy | draining | unused


def endpoint_label(ip: str, port: int) -> int:
    """The ct_label naming an address and port: the address in bits 16-47, the port below."""
    return int(IPv4Address(ip)) << 16 | port


def transparent_label(node_ip: str) -> int:
    """The ct_label of a node's transparent connection: the flag and the node's address."""
    return TRANSPARENT_FLAG | endpoint_label(node_ip, 0)


def reply_protocols(lb: LoadBalancerPlan, tg: TargetGroupPlan) -> tuple[int, ...]:
    """IP protocols of a group's replies the switches steer: those of its listeners the
    switches carry, and TCP when a TLS listener reaches it with the client's address."""
    protos = PROTOS.get(tg.protocol, ())
    if not protos and tg in lb.transparent_groups:
        return (IPPROTO_TCP,)
    return protos


def _label_to(port_field: str, ip_field: str) -> list[Move]:
    """Actions that set an address and port field from the packet's ct_label."""
    return [Move("ct_label", ip_field, 32, src_ofs=16), Move("ct_label", port_field, 16)]


def tp_fields(proto: int) -> tuple[str, str]:
    return ("tcp_src", "tcp_dst") if proto == IPPROTO_TCP else ("udp_src", "udp_dst")


def active_targets(
    lb: LoadBalancerPlan, tg: TargetGroupPlan, node: NodePlan, targets: Iterable[RuntimeTarget]
) -> list[RuntimeTarget]:
    """Targets a node sends new flows to: in scope (its AZ, or every enabled AZ with
    cross-zone), healthy ones; if none is healthy, all in scope (AWS fails open)."""
    enabled_azs = {n.az for n in lb.nodes}
    cross = lb.cross_zone_for(tg)
    scope = [
        t
        for t in targets
        if t.state in IN_SERVICE
        and (t.az in enabled_azs or t.az == "all")
        and (cross or t.az in (node.az, "all"))
    ]
    healthy = [t for t in scope if t.state == "healthy"]
    return sorted(healthy or scope, key=lambda t: t.key)


class NlbLogic:
    """Flows of every network load balancer in a plan, for the current target states."""

    def __init__(
        self,
        plan: NetworkPlan,
        table_size: int = maglev.DEFAULT_SIZE,
        remote: frozenset[str] = frozenset(),
    ) -> None:
        self.size = table_size
        # A lab across servers (issue 18): the switches that run on another server than
        # the front end (their conntrack is not the front end's; _across_servers).
        self.remote = remote
        self.set_plan(plan)
        # Until the holder reports health, every template target is "initial".
        self.targets: dict[tuple[str, str], list[RuntimeTarget]] = {
            (lb.name, tg.name): [
                RuntimeTarget(t.key, t.ip, t.port, t.az, "initial") for t in tg.targets
            ]
            for lb in self.lbs
            for tg in lb.target_groups
        }
        self.selectors = self._number_selectors()
        self._tables: dict[tuple, list[int]] = {}
        # selector -> (lb, tg, target keys, Maglev table) as last programmed: who owns a bucket.
        self.assignments: dict[int, tuple[str, str, list[str], list[int]]] = {}

    def set_plan(self, plan: NetworkPlan) -> None:
        """Take a new plan of the same lab (hosts launched or terminated by Auto Scaling,
        security changed): where ports and addresses are. Registered targets, their states,
        the selectors and the Maglev tables stay: they are runtime state, and a new
        connection must keep choosing what it chose before (no flow moves)."""
        self.plan = plan
        self.lbs = [lb for lb in plan.load_balancers if lb.type == "network"]
        self._dpid_switch = {s.dpid: s.name for s in plan.switches}
        # Every port (eth0 of each host and extra interfaces) by each address it holds: an IP
        # target may be a second interface's or a secondary address.
        self._ports = plan.attachments()
        self._subnets = {s.name: s for s in plan.subnets}
        self._vpc_index = {v.name: v.index for v in plan.vpcs}
        # VPCs may share addresses: then an address names a port only within its VPC.
        self._separate = vpcs_share_addresses(plan)
        self._hosts_by_ip = {
            (self._vpc_of(h.subnet), ip): h for h in self._ports for ip in (h.ip, *h.extra_ips)
        }
        if hasattr(self, "selectors"):
            # A node or listener added by a template update gets the next ids; the others
            # keep theirs (flows of established connections carry them).
            for key in self._number_selectors():
                if key not in self.selectors:
                    self.selectors[key] = max(self.selectors.values(), default=0) + 1

    def _vpc_of(self, subnet: str | None) -> str | None:
        """The VPC of a subnet when VPCs share addresses (else None: addresses are unique)."""
        if not self._separate or subnet not in self._subnets:
            return None
        return self._subnets[subnet].vpc

    def _node_vpc(self, node: NodePlan) -> dict:
        """The match on a node's VPC bits when VPCs share addresses, else nothing."""
        vpc = self._vpc_of(node.subnet)
        return {} if vpc is None else in_vpc(self._vpc_index[vpc])

    def _number_selectors(self) -> dict[tuple[str, str, str, int], int]:
        """A small id per (lb, node host, listener, protocol): the value of reg1."""
        ids: dict[tuple[str, str, str, int], int] = {}
        for lb in self.lbs:
            for node in lb.nodes:
                for lis in lb.listeners:
                    for proto in PROTOS.get(lis.protocol or "", ()):
                        ids[(lb.name, node.host, lis.name, proto)] = len(ids) + 1
        return ids

    def set_targets(self, lb: str, tg: str, targets: list[RuntimeTarget]) -> None:
        """Replace the registered targets (and states) of one target group."""
        self.targets[(lb, tg)] = list(targets)

    def maglev_table(self, backends: list[str]) -> list[int]:
        key = tuple(backends)
        if key not in self._tables:
            self._tables[key] = maglev.build_table(backends, self.size)
        return self._tables[key]

    # ---- flows ------------------------------------------------------------------------
    def flows_for(self, dpid: int) -> list[Flow]:
        switch = self._dpid_switch[dpid]
        if not any(h.switch == switch for h in self._ports) or not self.lbs:
            return []  # no host enters the fabric here: nothing to steer
        flows = [
            flow(TABLE_REPLY_SNAT, 0, goto=TABLE_ROUTE),
            flow(TABLE_REPLY_SOURCE, 0, goto=TABLE_NACL_OUT),
            flow(TABLE_NLB_STATE, 0),
            flow(TABLE_NLB_SELECT, 0),
            flow(TABLE_NLB_COUNT, 0),
        ]
        for lb in self.lbs:
            flows += self._replies(lb, switch)
            flows += self._across_servers(lb, switch)
            flows += self._transparent(lb, switch)
            for node in lb.nodes:
                for lis in lb.listeners:
                    if lis.port is None or lis in lb.node_listeners:
                        continue  # a GWLB's; one run by the node's HAProxy (TLS, PROXY v2)
                    tg = lb.target_group(lis.target_group) if lis.target_group else None
                    for proto in PROTOS.get(lis.protocol or "", ()):
                        sel = self.selectors[(lb.name, node.host, lis.name, proto)]
                        flows += self._listener(lb, node, lis.port, proto, sel, tg)
        return flows

    def _listener(
        self,
        lb: LoadBalancerPlan,
        node: NodePlan,
        port: int,
        proto: int,
        sel: int,
        tg: TargetGroupPlan | None,
    ) -> list[Flow]:
        _src, dst = tp_fields(proto)
        flows = [
            flow(
                TABLE_LB,
                100,
                {
                    "eth_type": ETH_TYPE_IP,
                    "ip_proto": proto,
                    "ipv4_dst": node.ip,
                    dst: port,
                    **self._node_vpc(node),
                },
                [
                    SetField("reg1", sel),
                    SetField("reg2", lb.index),
                    Ct(lb.zone_dnat, TABLE_NLB_STATE),
                ],
            )
        ]
        if tg is None:
            return flows
        # The target side zone translates (SNAT) only when the client address is hidden.
        snat = None if tg.preserve_client_ip else Nat("src", node.ip, *SNAT_PORTS)
        base = {"reg1": sel, "eth_type": ETH_TYPE_IP, "ip_proto": proto}
        # Established: the client side entry's label is the target. The target side entry
        # follows the connection as the target sees it (and applies its SNAT); nothing
        # matches on its result, so the packet goes on without a recirculation.
        flows.append(
            flow(
                TABLE_NLB_STATE,
                50,
                {**base, "ct_state": (CT_TRK | CT_EST, CT_TRK | CT_EST | CT_RPL)},
                [*_label_to(dst, "ipv4_dst"), Ct(lb.zone_snat, None, nat=Nat() if snat else None)],
                goto=TABLE_L3_DELIVER,
            )
        )
        new = {**base, "ct_state": (CT_TRK | CT_NEW, CT_TRK | CT_NEW)}
        if proto == IPPROTO_TCP:
            # Only a SYN opens a connection; any other packet of an unknown flow is dropped.
            new["tcp_flags_nxm"] = (TCP_SYN, TCP_SYN | TCP_ACK)
            # A segment of a connection the NLB does not know (its target failed, drained or
            # went away): the controller answers with a RST, as AWS's NLB does.
            flows.append(
                flow(
                    TABLE_NLB_STATE,
                    30,
                    {**base, "ct_state": (CT_TRK | CT_NEW, CT_TRK | CT_NEW)},
                    [ToController(128)],
                )
            )
        # A new packet of a connection the client side zone knows (a retransmitted SYN, a
        # second datagram) carries its target's label: it keeps that target. A fresh one
        # (label 0) is hashed into a Maglev bucket.
        flows.append(
            flow(TABLE_NLB_STATE, 40, new, _label_to(dst, "ipv4_dst"), goto=TABLE_NLB_COUNT)
        )
        fields = "nw_src" if tg.stickiness == "source_ip" else "symmetric_l3l4+udp"
        flows.append(
            flow(
                TABLE_NLB_STATE,
                41,
                {**new, "ct_label": 0},
                [Multipath(fields, lb.index, self.size, "reg0")],
                goto=TABLE_NLB_SELECT,
            )
        )
        registered = self.targets.get((lb.name, tg.name), [])
        targets = active_targets(lb, tg, node, registered)
        if targets:
            table = self.maglev_table([t.key for t in targets])
            self.assignments[sel] = (lb.name, tg.name, [t.key for t in targets], table)
            for bucket, index in enumerate(table):
                t = targets[index]
                flows.append(
                    flow(
                        TABLE_NLB_SELECT,
                        100,
                        {**base, "reg0": bucket},
                        [
                            Ct(lb.zone_dnat, None, commit=True, label=endpoint_label(t.ip, t.port)),
                            SetField("ipv4_dst", t.ip),
                            SetField(dst, t.port),
                        ],
                        goto=TABLE_NLB_COUNT,
                    )
                )
        node_label = endpoint_label(node.ip, port)
        for ip, tport in sorted({(t.ip, t.port) for t in registered}):
            # Only a flow's first packet (and its retransmissions) gets here: these
            # counters are NewFlowCount. Every registered target has one, so that a SYN
            # retransmitted after its target left the active set still reaches it.
            flows.append(
                flow(
                    TABLE_NLB_COUNT,
                    100,
                    {**base, "ipv4_dst": ip, dst: tport},
                    [Ct(lb.zone_snat, None, commit=True, label=node_label, nat=snat)],
                    goto=TABLE_L3_DELIVER,
                )
            )
        return flows

    def _replies(self, lb: LoadBalancerPlan, switch: str) -> list[Flow]:
        """On the switch of each target: replies go back through both zones."""
        flows = []
        seen: set[tuple[str, int, int]] = set()
        vpc = self._vpc_of(lb.nodes[0].subnet) if lb.nodes else None
        for tg in lb.target_groups:
            protos = reply_protocols(lb, tg)
            for t in self.targets.get((lb.name, tg.name), []):
                host = self._hosts_by_ip.get((vpc, t.ip))
                if host is None or host.switch != switch:
                    continue
                for proto in protos:
                    if (t.ip, t.port, proto) in seen:
                        continue
                    seen.add((t.ip, t.port, proto))
                    src, _dst = tp_fields(proto)
                    flows.append(
                        flow(
                            TABLE_STEER,
                            100,
                            {
                                "in_port": host.port,
                                "eth_type": ETH_TYPE_IP,
                                "ip_proto": proto,
                                "ipv4_src": t.ip,
                                src: t.port,
                            },
                            [
                                SetField("reg2", lb.index),
                                Ct(lb.zone_snat, TABLE_REPLY_SNAT, nat=Nat()),
                            ],
                        )
                    )
        if flows:
            flows += self._reply_tail(lb, {p for _ip, _port, p in seen})
        return flows

    def _reply_tail(self, lb: LoadBalancerPlan, protos: set[int]) -> list[Flow]:
        """Tables 11 and 12 of a switch that translates replies of `lb` back."""
        flows = []
        if protos:
            for proto in sorted(protos):
                src, _dst = tp_fields(proto)
                # A reply of a connection of this LB: its source becomes the node address
                # and listener port in the target side entry's label.
                flows.append(
                    flow(
                        TABLE_REPLY_SNAT,
                        100,
                        {
                            "reg2": lb.index,
                            "eth_type": ETH_TYPE_IP,
                            "ip_proto": proto,
                            "ct_state": (CT_TRK | CT_EST | CT_RPL, CT_TRK | CT_EST | CT_RPL),
                        },
                        [*_label_to(src, "ipv4_src"), Ct(lb.zone_dnat, TABLE_REPLY_SOURCE)],
                    )
                )
            for node in lb.nodes:
                # Translated back, the reply comes from the node: route it from its subnet.
                # A target answering a client of its own subnet addressed the client's MAC;
                # from the node, the answer is routed: address it to the router.
                flows.append(
                    Flow(
                        TABLE_REPLY_SOURCE,
                        100,
                        tuple(
                            sorted(
                                {
                                    "reg2": lb.index,
                                    "eth_type": ETH_TYPE_IP,
                                    "ct_state": (CT_TRK | CT_RPL, CT_TRK | CT_RPL),
                                    "ipv4_src": node.ip,
                                }.items()
                            )
                        ),
                        (SetField("eth_dst", self.plan.router_mac),),
                        goto=TABLE_NACL_OUT,  # leaving as the node: its subnet's ACL
                        metadata=(self._realm(node), 0xFFFF_0000_FFFF),
                    )
                )
        return flows

    def _across_servers(self, lb: LoadBalancerPlan, switch: str) -> list[Flow]:
        """A lab across servers (issue 18): each server's Open vSwitch has its own conntrack,
        so a reply can only be translated back where its connection was committed. The
        connections of internet clients are committed on the front end (the internet
        bridge); a target on another server sends a reply its switch has no entry for
        (table 11 finds none) up its uplink untranslated, and the core bridge (front end,
        the same conntrack as the internet bridge) translates it back as the target's own
        switch would. A reply the core cannot translate either (a VPC client on a third
        server committed it) is routed on to the client's switch, which translates it back.
        A connection committed on the target's server is translated there as before."""
        if not self.remote:
            return []
        flows = []
        protos: set[int] = set()
        vpc = self._vpc_of(lb.nodes[0].subnet) if lb.nodes else None
        core = next((s for s in self.plan.switches if s.role == "core"), None)
        for tg in lb.target_groups:
            for t in self.targets.get((lb.name, tg.name), []):
                host = self._hosts_by_ip.get((vpc, t.ip))
                if host is None or host.switch not in self.remote:
                    continue
                core_name = core.name if core else None
                trunk = next(
                    (x for x in self.plan.links if x.a == host.switch and x.b == core_name), None
                )
                for proto in reply_protocols(lb, tg):
                    if host.switch == switch:
                        flows.append(
                            flow(
                                TABLE_REPLY_SNAT,
                                50,
                                {"reg2": lb.index, "eth_type": ETH_TYPE_IP, "ip_proto": proto},
                                [Output(trunk.a_port if trunk else 1)],
                            )
                        )
                    elif switch in self.remote:
                        # Another remote switch: a reply the core could not translate comes
                        # down its uplink, routed to a client here whose connection this
                        # switch committed: translated back here, as on the target's switch.
                        protos.add(proto)
                        uplink = next((x for x in self.plan.links if x.a == switch), None)
                        flows += self._reply_entry(
                            lb, uplink.a_port if uplink else 1, host, t.ip, t.port, proto
                        )
                    elif core is not None and switch == core.name and trunk is not None:
                        protos.add(proto)
                        # As if it came from the target's port: its subnet for routing (a
                        # reply that was not the LB's, e.g. to a health check, is routed on).
                        flows += self._reply_entry(lb, trunk.b_port, host, t.ip, t.port, proto)
        if any(f.table == TABLE_REPLY_SNAT for f in flows):
            # Untracked replies to a host of this switch (a node's health checks) are routed
            # here, as on one machine: the core could not send them back where they came from.
            for h in self._ports:
                if h.switch != switch:
                    continue
                for ip in (h.ip, *h.extra_ips):
                    flows.append(
                        flow(
                            TABLE_REPLY_SNAT,
                            60,
                            {"reg2": lb.index, "eth_type": ETH_TYPE_IP, "ipv4_dst": ip},
                            goto=TABLE_ROUTE,
                        )
                    )
        flows += self._reply_tail(lb, protos)
        # One flow per (table, match) is enough.
        unique: dict[tuple, Flow] = {}
        for f in flows:
            unique.setdefault((f.table, f.priority, f.match), f)
        return list(unique.values())

    def _reply_entry(
        self, lb: LoadBalancerPlan, in_port: int, host: HostPlan, ip: str, port: int, proto: int
    ) -> list[Flow]:
        """A target's reply arriving on trunk port `in_port`: tagged with the target's subnet
        as if from its port, then through the target side zone (TABLE_STEER)."""
        src, _dst = tp_fields(proto)
        reply = {
            "in_port": in_port,
            "eth_type": ETH_TYPE_IP,
            "ip_proto": proto,
            "ipv4_src": ip,
            src: port,
        }
        subnet = self._subnets[host.subnet or ""]
        realm = (self._vpc_index[subnet.vpc] << 32) | subnet.index
        return [
            flow(
                TABLE_CLASSIFY,
                310,
                reply,
                goto=TABLE_STEER,
                metadata=(realm, 0xFFFF_0000_FFFF),
            ),
            flow(
                TABLE_STEER,
                100,
                reply,
                [SetField("reg2", lb.index), Ct(lb.zone_snat, TABLE_REPLY_SNAT, nat=Nat())],
            ),
        ]

    def _transparent(self, lb: LoadBalancerPlan, switch: str) -> list[Flow]:
        """Connections a node's HAProxy opens from clients' addresses (TLS listeners to
        groups that preserve them): committed where the node sends them, their replies sent
        back to the node wherever a target answers (after the reply steering's lookup)."""
        if not lb.transparent_groups:
            return []
        flows = []
        for node in lb.nodes:
            host = self.plan.host(node.host)
            label = transparent_label(node.ip)
            if host.switch == switch:
                sent = {"in_port": host.port, "eth_type": ETH_TYPE_IP, "ip_proto": IPPROTO_TCP}
                # From its own address (health checks, the TCP listeners' answers): as before.
                flows.append(
                    flow(TABLE_STEER, 95, {**sent, "ipv4_src": node.ip}, goto=TABLE_NACL_OUT)
                )
                flows.append(
                    flow(
                        TABLE_STEER,
                        90,
                        sent,
                        [Ct(lb.zone_snat, None, commit=True, label=label)],
                        goto=TABLE_NACL_OUT,
                    )
                )
            flows.append(
                flow(
                    TABLE_REPLY_SNAT,
                    110,
                    {
                        "reg2": lb.index,
                        "eth_type": ETH_TYPE_IP,
                        "ip_proto": IPPROTO_TCP,
                        "ct_state": (CT_TRK | CT_EST | CT_RPL, CT_TRK | CT_EST | CT_RPL),
                        "ct_label": (label, TRANSPARENT_NODE_MASK),
                    },
                    # Untranslated, to the node's port (over the trunks if it is elsewhere).
                    [SetField("eth_src", self.plan.router_mac), SetField("eth_dst", host.mac)],
                    goto=TABLE_OUTPUT,
                )
            )
        return flows

    def _realm(self, node: NodePlan) -> int:
        subnet = self._subnets[node.subnet]
        return (self._vpc_index[subnet.vpc] << 32) | subnet.index

    def count_owner(self, sel: int, ip: str, port: int) -> tuple[str, str, str] | None:
        """(lb, tg, target key) a NewFlowCount entry (selector, target address) belongs to."""
        entry = self.assignments.get(sel)
        if entry is None:
            return None
        lb, tg, _keys, _table = entry
        for t in self.targets.get((lb, tg), []):
            if t.ip == ip and t.port == port:
                return lb, tg, t.key
        return None

    def reset_for(self, dpid: int, in_port: int, data: bytes) -> PacketOut | None:
        """A TCP RST answering a segment of an unknown connection to a listener, sent back
        out of the port it came in on; None if the packet is not that."""
        from os_ken.lib.packet import ethernet, ipv4, packet, tcp

        pkt = packet.Packet(data)
        eth, ip, seg = (
            pkt.get_protocol(ethernet.ethernet),
            pkt.get_protocol(ipv4.ipv4),
            pkt.get_protocol(tcp.tcp),
        )
        if not (eth and ip and seg) or seg.bits & tcp.TCP_RST:
            return None
        sender = self._host_at_port(dpid, in_port)
        if sender is None:
            return None
        # The node of that address in the sender's VPC (an internet client: any, as before).
        node = next(
            (
                n
                for lb in self.lbs
                for n in lb.nodes
                if n.ip == ip.dst
                and (
                    sender.kind == "client" or self._vpc_of(n.subnet) == self._vpc_of(sender.subnet)
                )
            ),
            None,
        )
        if node is None:
            return None
        # An internet client talked to the node's public address (the gateway translated it).
        source = node.public_ip if sender.kind == "client" and node.public_ip else node.ip
        payload = len(pkt.protocols[-1]) if isinstance(pkt.protocols[-1], bytes) else 0
        if seg.bits & tcp.TCP_ACK:
            rst = tcp.tcp(
                src_port=seg.dst_port, dst_port=seg.src_port, seq=seg.ack, bits=tcp.TCP_RST
            )
        else:
            rst = tcp.tcp(
                src_port=seg.dst_port,
                dst_port=seg.src_port,
                seq=0,
                ack=(seg.seq + payload + (1 if seg.bits & tcp.TCP_FIN else 0)) & 0xFFFFFFFF,
                bits=tcp.TCP_RST | tcp.TCP_ACK,
            )
        out = packet.Packet()
        out.add_protocol(
            ethernet.ethernet(dst=eth.src, src=self.plan.router_mac, ethertype=ETH_TYPE_IP)
        )
        out.add_protocol(ipv4.ipv4(src=source, dst=ip.src, proto=IPPROTO_TCP, ttl=64))
        out.add_protocol(rst)
        out.serialize()
        return PacketOut(dpid, in_port, bytes(out.data))

    def _host_at_port(self, dpid: int, port: int) -> HostPlan | None:
        switch = self._dpid_switch.get(dpid)
        return next((h for h in self._ports if h.switch == switch and h.port == port), None)
