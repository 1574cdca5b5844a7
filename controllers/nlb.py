"""NLB data plane as pure logic: listeners, Maglev target selection, NAT via conntrack.

Per switch, for every network load balancer of the plan:
  TABLE_LB (25)   a packet to a node address and listener port gets a selector id (reg1)
                  and goes through conntrack (DNAT zone) with `nat`: packets of a known
                  connection come out already translated to their target.
  26              established: on to delivery (through the SNAT zone when the client
                  address is not preserved); new (TCP SYN, any UDP): hash the flow
                  (multipath over the 5-tuple, or the source address with source_ip
                  stickiness) into reg0 = a Maglev bucket.
  27              bucket -> target: commit the connection with DNAT to the target.
  28              one entry per target: counts new flows (NewFlowCount).
  29              client address not preserved: commit with SNAT to the node address.
  TABLE_STEER (10) on the switch of each target: its replies go back through the zones,
  11, 12          which restores the node's address as their source; the packet then takes
                  the node's subnet for routing (so an internet-facing node's replies leave
                  through the internet gateway with its public address).
The controller never sees data packets: connections keep their target for their lifetime
because conntrack remembers it; only new connections consult the (changing) Maglev table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from testbed import maglev
from testbed.controllers.flows import (
    CT_EST,
    CT_NEW,
    CT_RPL,
    CT_TRK,
    ETH_TYPE_IP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    TABLE_L3_DELIVER,
    TABLE_LB,
    TABLE_ROUTE,
    TABLE_STEER,
    TCP_ACK,
    TCP_SYN,
    Ct,
    Flow,
    Multipath,
    Nat,
    PacketOut,
    SetField,
    ToController,
    flow,
)
from testbed.plan.balancers import LoadBalancerPlan, NodePlan, TargetGroupPlan
from testbed.plan.network import HostPlan, NetworkPlan

TABLE_REPLY_SNAT = 11
TABLE_REPLY_SOURCE = 12
TABLE_NLB_STATE = 26
TABLE_NLB_SELECT = 27
TABLE_NLB_COUNT = 28  # one entry per target and selector: its packets = the new flows
TABLE_NLB_SNAT = 29  # after COUNT: a goto may only go to a later table
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

    def __init__(self, plan: NetworkPlan, table_size: int = maglev.DEFAULT_SIZE) -> None:
        self.plan = plan
        self.size = table_size
        self.lbs = [lb for lb in plan.load_balancers if lb.type == "network"]
        self._dpid_switch = {s.dpid: s.name for s in plan.switches}
        self._hosts_by_ip = {h.ip: h for h in plan.hosts}
        self._subnets = {s.name: s for s in plan.subnets}
        self._vpc_index = {v.name: v.index for v in plan.vpcs}
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
        if not any(h.switch == switch for h in self.plan.hosts) or not self.lbs:
            return []  # no host enters the fabric here: nothing to steer
        flows = [
            flow(TABLE_REPLY_SNAT, 0, goto=TABLE_ROUTE),
            flow(TABLE_REPLY_SOURCE, 0, goto=TABLE_ROUTE),
            flow(TABLE_NLB_STATE, 0),
            flow(TABLE_NLB_SELECT, 0),
            flow(TABLE_NLB_SNAT, 0),
            flow(TABLE_NLB_COUNT, 0, goto=TABLE_L3_DELIVER),
        ]
        for lb in self.lbs:
            flows += self._replies(lb, switch)
            for node in lb.nodes:
                for lis in lb.listeners:
                    if lis.port is None:
                        continue  # a gateway listener (GWLB): not an NLB's
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
                {"eth_type": ETH_TYPE_IP, "ip_proto": proto, "ipv4_dst": node.ip, dst: port},
                [
                    SetField("reg1", sel),
                    SetField("reg2", lb.index),
                    Ct(lb.zone_dnat, TABLE_NLB_STATE, nat=Nat()),
                ],
            )
        ]
        if tg is None:
            return flows
        preserve = tg.preserve_client_ip
        base = {"reg1": sel, "eth_type": ETH_TYPE_IP, "ip_proto": proto}
        # A connection conntrack knows: already translated to its target by the ct above.
        established = [Ct(lb.zone_snat, TABLE_L3_DELIVER, nat=Nat())] if not preserve else []
        flows.append(
            flow(
                TABLE_NLB_STATE,
                50,
                {**base, "ct_state": (CT_TRK | CT_EST, CT_TRK | CT_EST | CT_RPL)},
                established,
                goto=None if established else TABLE_L3_DELIVER,
            )
        )
        new = {**base, "ct_state": (CT_TRK | CT_NEW, CT_TRK | CT_NEW)}
        if proto == IPPROTO_TCP:
            # Only a SYN opens a connection; any other packet of an unknown flow is dropped.
            new["tcp_flags_nxm"] = (TCP_SYN, TCP_SYN | TCP_ACK)
        if proto == IPPROTO_TCP:
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
        fields = "nw_src" if tg.stickiness == "source_ip" else "symmetric_l3l4+udp"
        flows.append(
            flow(
                TABLE_NLB_STATE,
                40,
                new,
                [Multipath(fields, lb.index, self.size, "reg0")],
                goto=TABLE_NLB_SELECT,
            )
        )
        targets = active_targets(lb, tg, node, self.targets.get((lb.name, tg.name), []))
        if targets:
            table = self.maglev_table([t.key for t in targets])
            self.assignments[sel] = (lb.name, tg.name, [t.key for t in targets], table)
            after = TABLE_L3_DELIVER if preserve else TABLE_NLB_SNAT
            for bucket, index in enumerate(table):
                t = targets[index]
                flows.append(
                    flow(
                        TABLE_NLB_SELECT,
                        100,
                        {**base, "reg0": bucket},
                        [
                            Ct(
                                lb.zone_dnat,
                                TABLE_NLB_COUNT,
                                commit=True,
                                nat=Nat("dst", t.ip, t.port),
                            )
                        ],
                    )
                )
            _src, dst_field = tp_fields(proto)
            for t in targets:
                # Only a flow's first packet gets here: these counters are NewFlowCount.
                flows.append(
                    flow(
                        TABLE_NLB_COUNT,
                        100,
                        {**base, "ipv4_dst": t.ip, dst_field: t.port},
                        goto=after,
                    )
                )
        if not preserve:
            flows.append(
                flow(
                    TABLE_NLB_SNAT,
                    100,
                    base,
                    [
                        Ct(
                            lb.zone_snat,
                            TABLE_L3_DELIVER,
                            commit=True,
                            nat=Nat("src", node.ip, *SNAT_PORTS),
                        )
                    ],
                )
            )
        return flows

    def _replies(self, lb: LoadBalancerPlan, switch: str) -> list[Flow]:
        """On the switch of each target: replies go back through the NAT zones."""
        flows = []
        seen: set[tuple[str, int, int]] = set()
        for tg in lb.target_groups:
            protos = PROTOS.get(tg.protocol, ())
            for t in self.targets.get((lb.name, tg.name), []):
                host = self._hosts_by_ip.get(t.ip)
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
            flows.append(
                flow(
                    TABLE_REPLY_SNAT,
                    100,
                    {"reg2": lb.index, "eth_type": ETH_TYPE_IP},
                    [Ct(lb.zone_dnat, TABLE_REPLY_SOURCE, nat=Nat())],
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
                        goto=TABLE_ROUTE,
                        metadata=(self._realm(node), 0xFFFF_0000_FFFF),
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
        node = next((n for lb in self.lbs for n in lb.nodes if n.ip == ip.dst), None)
        sender = self._host_at_port(dpid, in_port)
        if node is None or sender is None:
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
        return next((h for h in self.plan.hosts if h.switch == switch and h.port == port), None)
