"""GWLB steering done by Open vSwitch, as pure logic: the plan and the appliances' states in,
flow entries per switch out (issue 15; the node datapath, testbed.gwlb.node, is the fallback).

On the switch of a GWLB node that has a GENEVE port (NodePlan.tunnel_port), a packet routed
to one of the node's endpoints (TABLE_OUTPUT, testbed.controllers.forwarding: reg6 = the
endpoint's number, its 1-based index in plan.endpoints) goes through:

  60 GWLB_CT      conntrack in the GWLB's zone (zone_dnat; zone_snat for an endpoint of
                  another address space, issue 14), recirculating to 61.
  61 GWLB_STATE   a tracked flow with a choice (ct_label: appliance IPv4 in bits 0-31, flow
                  cookie in bits 32-63; the cookie's top bit is always set) keeps it: label
                  -> reg1, reg2, on to 63 (its learned pair, if any, is looked up on the way:
                  that keeps it from going idle while the pair's packets flow). Its appliance
                  failed and the target group rebalances: reg7 = 2 (rehash), pick again. New:
                  reg7 = 1, pick. Anything else (+inv without a label): reg7 = 0, picked by
                  the hash, never committed, never dropped.
  62 GWLB_PICK    a symmetric hash of the stickiness tuple into reg0 = a Maglev slot:
                  5-tuple TCP: the switch's select group (GWLB_SELECT_GROUP, 256 buckets,
                  bucket i -> slot i mod the table size, then 64), which OVS picks by
                  dp_hash: the datapath hashes addresses and ports itself (symmetric for
                  TCP), so a new connection is no upcall (multipath's hash un-wildcards the
                  5-tuple: one upcall per connection); other 5-tuple traffic: multipath
                  symmetric_l3l4+udp (dp_hash leaves UDP ports out); 2-tuple symmetric_l3;
                  3-tuple symmetric_l3 with the protocol as basis. 2-/3-tuple first look up
                  the learned pair (65).
  64 GWLB_SLOT    a learned pair (reg5 = 1) wins, unless its appliance failed and the group
                  rebalances (then the slot decides and the pair is learned again); slot ->
                  reg1 = appliance, reg2 = cookie (0x80000000 | endpoint << 16 | slot), and
                  2-/3-tuple learn the pair both ways into 65 (idle timeout of the GWLB:
                  TCP / other), cookie GWLB_LEARN_COOKIE_TAG << 48 | appliance number.
                  Slots hold the healthy in-scope appliances (the node's AZ, every AZ with
                  cross-zone), all registered in scope when none is healthy (fail open),
                  none (drop) when nothing is registered. Draining appliances take no new
                  flow.
  66 GWLB_COMMIT  per appliance and zone: reg7 = 1 (new) or 2 (rehashed): ct commit with
                  exec(reg1 -> ct_label[0..31], reg2 -> ct_label[32..63]). Their packet
                  counters are the appliance's new flows and rehashed-in flows. On to 63 by
                  resubmit (goto_table only moves forward).
  63 GWLB_ENCAP   per endpoint: VNI 0, tun_metadata0 = endpoint id, tun_metadata1 = 0
                  (attachment, from reg4 that nothing sets), tun_metadata2 = cookie, tun_dst =
                  appliance, counted in 67 (per appliance), out of the node's tunnel port.
                  OVS sends it from the node's address (ovs/route), it enters the bridge again
                  on the node's port and is routed to the appliance like anything the node
                  sends.
  68 GWLB_RX      per appliance (tun_src): packets back from it; the return flow on the
                  tunnel port (forwarding) counts them here, then routes the packet with the
                  endpoint subnet's route table from the endpoint's MAC.

Target failover as AWS (and testbed.gwlb.steering): no_rebalance keeps an unhealthy or
deregistered appliance's flows on it; rebalance moves them once it is unhealthy (on_unhealthy)
or gone from the group (on_deregistration: the holder stops listing it when its
deregistration delay is over), as long as some appliance in scope is healthy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from testbed import maglev
from testbed.controllers.flows import (
    CT_NEW,
    CT_TRK,
    ETH_TYPE_IP,
    GWLB_LEARN_COOKIE_TAG,
    IPPROTO_ICMP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    LEARN_TAG_SHIFT,
    TABLE_GWLB_COMMIT,
    TABLE_GWLB_CT,
    TABLE_GWLB_ENCAP,
    TABLE_GWLB_PICK,
    TABLE_GWLB_RX,
    TABLE_GWLB_SLOT,
    TABLE_GWLB_STATE,
    TABLE_GWLB_STICKY,
    TABLE_GWLB_TX,
    Action,
    Ct,
    Flow,
    Group,
    Learn,
    LearnLoad,
    LearnMatch,
    Move,
    Multipath,
    Output,
    Resubmit,
    SelectGroup,
    SetField,
    flow,
)
from testbed.controllers.nlb import RuntimeTarget
from testbed.packets import geneve
from testbed.plan.balancers import LoadBalancerPlan, NodePlan, TargetGroupPlan
from testbed.plan.network import EndpointPlan, NetworkPlan

TABLE_SIZE = 251  # Maglev slots per endpoint (prime)
# The select group of 5-tuple TCP: one per switch (reg6 tells the endpoints apart in 64).
# 256 buckets: OVS's dp_hash selection spreads 256 hash values over the buckets, one each.
GWLB_SELECT_GROUP = 0x6200
SELECT_BUCKETS = 256
COOKIE_FLAG = 0x8000_0000  # set in every flow cookie: a ct_label with it names a choice
LABEL_CHOSEN = COOKIE_FLAG << 32  # that bit in the ct_label
IP_BITS = 0xFFFF_FFFF
# Registers (reg0 slot, reg1 appliance, reg2 cookie, reg5 learned, reg6 endpoint, reg7 kind).
REG_SLOT, REG_APPLIANCE, REG_COOKIE = "reg0", "reg1", "reg2"
REG_LEARNED, REG_ENDPOINT, REG_KIND = "reg5", "reg6", "reg7"
REG_ZERO = "reg4"  # no flow of the lab sets it: 0
KIND_NONE, KIND_NEW, KIND_REHASH = 0, 1, 2
FIVE_TUPLE = "5-tuple"
THREE_TUPLE = "source_ip_dest_ip_proto"
TWO_TUPLE = "source_ip_dest_ip"
NO_REBALANCE, REBALANCE = "no_rebalance", "rebalance"
REMOVED = "removed"  # no longer registered (the holder does not list it any more)
# Registered and taking new flows when healthy (draining and unused ones take none).
REGISTERED = ("healthy", "initial", "unhealthy")
STICKY_PROTOCOLS = (IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP)  # 3-tuple: a hash basis each
IP = {"eth_type": ETH_TYPE_IP}


def endpoint_space(ep: EndpointPlan) -> int:
    """The address space of an endpoint, from its MAC (02:ss:ip)."""
    return int(ep.mac.split(":")[1], 16)


def endpoint_id(ep: EndpointPlan) -> int:
    """The GENEVE endpoint id option of an endpoint, as the node datapath sends it
    (testbed.gwlb.node.endpoint_realm: the space in bits 32-39 of the id's tag)."""
    return geneve.endpoint_id(ep.ip) ^ (endpoint_space(ep) << 32)


def endpoint_number(plan: NetworkPlan, ep: EndpointPlan) -> int:
    """reg6 of an endpoint's packets: its 1-based index in plan.endpoints."""
    return next(i for i, e in enumerate(plan.endpoints, 1) if e.name == ep.name)


def endpoint_zone(lb: LoadBalancerPlan, ep: EndpointPlan) -> int:
    """The conntrack zone of an endpoint's flows: the GWLB's zone_dnat for address space 0,
    its zone_snat for the others (two spokes with the same addresses never share a flow)."""
    return lb.zone_dnat if endpoint_space(ep) == 0 else lb.zone_snat


def flow_cookie(number: int, slot: int) -> int:
    """The GENEVE flow cookie of a slot of an endpoint (derived from the slot: one datapath
    flow per slot rather than per connection)."""
    return COOKIE_FLAG | number << 16 | slot


def tunnel_nodes(plan: NetworkPlan) -> dict[str, tuple[LoadBalancerPlan, NodePlan]]:
    """node host -> (GWLB, node) of every GWLB node the switch steers for (tunnel_port set)."""
    return {
        node.host: (lb, node)
        for lb in plan.load_balancers
        if lb.type == "gateway"
        for node in lb.nodes
        if node.tunnel_port is not None
    }


def _ip(value: str) -> int:
    return int(IPv4Address(value))


@dataclass(frozen=True)
class _Served:
    """One endpoint a node with a tunnel port serves, with what its flows need."""

    ep: EndpointPlan
    number: int
    id: int
    zone: int


class GwlbLogic:
    """Flows of every GWLB whose nodes have tunnel ports, for the current appliance states."""

    def __init__(self, plan: NetworkPlan, table_size: int = TABLE_SIZE) -> None:
        self.size = table_size
        self.targets: dict[tuple[str, str], list[RuntimeTarget]] = {}
        # Appliances that left a group (deregistration delay over): their flows may still be
        # on them, so on_deregistration rebalance needs their addresses.
        self.gone: dict[tuple[str, str], dict[str, RuntimeTarget]] = {}
        self.numbers: dict[tuple[str, str], int] = {}  # (lb, appliance key) -> its number
        self._tables: dict[tuple[str, ...], list[int]] = {}
        self.set_plan(plan)

    def set_plan(self, plan: NetworkPlan) -> None:
        """Take a new plan of the same lab. Appliance states, the appliances that left and
        their numbers stay (runtime state the plan has not)."""
        self.plan = plan
        self.gwlbs = [lb for lb in plan.load_balancers if lb.type == "gateway"]
        self._dpid_switch = {s.dpid: s.name for s in plan.switches}
        self._host_switch = {h.name: h.switch for h in plan.hosts}
        for lb in self.gwlbs:
            tg = self._target_group(lb)
            if tg is not None and (lb.name, tg.name) not in self.targets:
                # Until the holder reports health, every template target is "initial".
                self.set_targets(
                    lb.name,
                    tg.name,
                    [RuntimeTarget(t.key, t.ip, t.port, t.az, "initial") for t in tg.targets],
                )

    @staticmethod
    def _target_group(lb: LoadBalancerPlan) -> TargetGroupPlan | None:
        name = next((lis.target_group for lis in lb.listeners if lis.target_group), None)
        return lb.target_group(name) if name else None

    def set_targets(self, lb: str, tg: str, targets: Iterable[RuntimeTarget]) -> None:
        """Replace the registered appliances (and states) of one GWLB target group; those
        no longer listed are remembered as removed."""
        targets = list(targets)
        before = self.targets.get((lb, tg), [])
        gone = self.gone.setdefault((lb, tg), {})
        listed = {t.key for t in targets}
        for t in before:
            if t.key not in listed:
                gone[t.key] = RuntimeTarget(t.key, t.ip, t.port, t.az, REMOVED)
        ips = {t.ip for t in targets}
        for key in [k for k, t in gone.items() if k in listed or t.ip in ips]:
            del gone[key]  # registered again (or its address now someone else's)
        self.targets[(lb, tg)] = targets
        for t in targets:
            self.numbers.setdefault((lb, t.key), len(self.numbers) + 1)

    def has_tunnel(self, dpid: int) -> bool:
        """Whether switch `dpid` holds a GWLB node's GENEVE port (it needs the TLV map)."""
        switch = self._dpid_switch.get(dpid)
        return any(self._host_switch.get(host) == switch for host in tunnel_nodes(self.plan))

    def maglev_table(self, keys: list[str]) -> list[int]:
        key = tuple(keys)
        if key not in self._tables:
            self._tables[key] = maglev.build_table(keys, self.size)
        return self._tables[key]

    # ---- appliance choice ---------------------------------------------------------------
    def candidates(
        self, lb: LoadBalancerPlan, tg: TargetGroupPlan, node: NodePlan
    ) -> tuple[list[RuntimeTarget], bool]:
        """(appliances a node gives new flows to, fail open): the healthy ones in scope (its
        AZ, every AZ with cross-zone); all registered ones in scope when none is healthy."""
        cross = lb.cross_zone_for(tg)
        scope = [
            t
            for t in self.targets.get((lb.name, tg.name), [])
            if t.state in REGISTERED and (cross or t.az in (node.az, "all"))
        ]
        healthy = [t for t in scope if t.state == "healthy"]
        return sorted(healthy or scope, key=lambda t: t.key), not healthy and bool(scope)

    def failed(self, lb: LoadBalancerPlan, tg: TargetGroupPlan) -> list[RuntimeTarget]:
        """Appliances whose flows target failover moves away (rebalance modes only)."""
        on_unhealthy = tg.attributes.get("target_failover.on_unhealthy", NO_REBALANCE)
        on_dereg = tg.attributes.get("target_failover.on_deregistration", NO_REBALANCE)
        out = []
        if on_unhealthy == REBALANCE:
            out += [t for t in self.targets.get((lb.name, tg.name), []) if t.state == "unhealthy"]
        if on_dereg == REBALANCE:
            out += list(self.gone.get((lb.name, tg.name), {}).values())
        return sorted(out, key=lambda t: t.key)

    def known(self, lb: LoadBalancerPlan, tg: TargetGroupPlan) -> list[RuntimeTarget]:
        """Every appliance a flow may be on: registered ones and those that left."""
        gone = self.gone.get((lb.name, tg.name), {})
        return sorted(
            [*self.targets.get((lb.name, tg.name), []), *gone.values()], key=lambda t: t.key
        )

    def learn_cookie(self, lb: LoadBalancerPlan, key: str) -> int:
        return (
            GWLB_LEARN_COOKIE_TAG << LEARN_TAG_SHIFT | lb.index << 16 | self.numbers[(lb.name, key)]
        )

    # ---- flows ----------------------------------------------------------------------------
    def flows_for(self, dpid: int) -> list[Flow]:
        switch = self._dpid_switch.get(dpid)
        nodes = [
            (lb, node)
            for host, (lb, node) in tunnel_nodes(self.plan).items()
            if self._host_switch.get(host) == switch
        ]
        if not nodes:
            return []
        flows = self._common()
        appliances: dict[str, None] = {}  # addresses, in order
        for lb, node in nodes:
            tg = self._target_group(lb)
            served = [
                _Served(ep, endpoint_number(self.plan, ep), endpoint_id(ep), endpoint_zone(lb, ep))
                for ep in self.plan.endpoints
                if ep.gwlb == lb.name and ep.node_host == node.host
            ]
            if tg is None:
                continue
            known = self.known(lb, tg)
            appliances.update((t.ip, None) for t in known)
            for s in served:
                flows += self._endpoint(lb, tg, node, s)
            for zone in sorted({s.zone for s in served}):
                flows += self._commit(known, zone)
        for ip in appliances:
            flows.append(flow(TABLE_GWLB_TX, 100, {REG_APPLIANCE: _ip(ip)}))
            flows.append(flow(TABLE_GWLB_RX, 100, {"tun_ipv4_src": ip}))
        return flows

    def groups_for(self, dpid: int) -> list[SelectGroup]:
        """The select group of switch `dpid` (5-tuple TCP of a GWLB node it steers for),
        the same whatever the appliances' states: slot -> appliance is table 64's."""
        switch = self._dpid_switch.get(dpid)
        five = any(
            self._host_switch.get(host) == switch
            and (tg := self._target_group(lb)) is not None
            and tg.stickiness not in (TWO_TUPLE, THREE_TUPLE)
            for host, (lb, _node) in tunnel_nodes(self.plan).items()
        )
        if not five:
            return []
        buckets = tuple(
            (SetField(REG_SLOT, i % self.size), Resubmit(TABLE_GWLB_SLOT))
            for i in range(SELECT_BUCKETS)
        )
        return [SelectGroup(GWLB_SELECT_GROUP, buckets)]

    def _common(self) -> list[Flow]:
        """The tables' defaults and the state flows every endpoint shares."""
        tracked = (CT_TRK, CT_TRK)
        return [
            *(flow(t, 0) for t in (TABLE_GWLB_CT, TABLE_GWLB_STATE, TABLE_GWLB_PICK)),
            *(flow(t, 0) for t in (TABLE_GWLB_ENCAP, TABLE_GWLB_SLOT)),
            # Resubmitted-to tables: a miss does nothing.
            *(flow(t, 0) for t in (TABLE_GWLB_STICKY, TABLE_GWLB_TX, TABLE_GWLB_RX)),
            # Not committed (+inv, an appliance 66 does not know): encapsulated all the same.
            # (63 is before 66: a resubmit, as goto only moves forward.)
            flow(TABLE_GWLB_COMMIT, 0, {}, [Resubmit(TABLE_GWLB_ENCAP)]),
            # A flow conntrack knows with a choice (established, related, a retransmitted
            # first packet, even +inv): its appliance and cookie from the label. Its pair's
            # learned flow (2-/3-tuple) is looked at too: a pair's flow is idle only when no
            # packet of it passes, not when it opens no new connection (AWS's idle timeout).
            flow(
                TABLE_GWLB_STATE,
                200,
                {"ct_state": tracked, "ct_label": (LABEL_CHOSEN, LABEL_CHOSEN)},
                [
                    Resubmit(TABLE_GWLB_STICKY),
                    Move("ct_label", REG_APPLIANCE, 32),
                    Move("ct_label", REG_COOKIE, 32, src_ofs=32),
                ],
                goto=TABLE_GWLB_ENCAP,
            ),
            flow(
                TABLE_GWLB_STATE,
                100,
                {"ct_state": (CT_TRK | CT_NEW, CT_TRK | CT_NEW)},
                [SetField(REG_KIND, KIND_NEW)],
                goto=TABLE_GWLB_PICK,
            ),
            flow(TABLE_GWLB_STATE, 50, {}, [SetField(REG_KIND, KIND_NONE)], goto=TABLE_GWLB_PICK),
            # A learned pair (2-/3-tuple stickiness) decides.
            flow(TABLE_GWLB_SLOT, 200, {REG_LEARNED: 1}, goto=TABLE_GWLB_COMMIT),
        ]

    def _endpoint(
        self, lb: LoadBalancerPlan, tg: TargetGroupPlan, node: NodePlan, s: _Served
    ) -> list[Flow]:
        n = {REG_ENDPOINT: s.number}
        assert node.tunnel_port is not None
        flows = [
            # (OVS takes ct only in a flow that matches IP.)
            flow(TABLE_GWLB_CT, 100, {**n, **IP}, [Ct(s.zone, TABLE_GWLB_STATE)]),
            flow(
                TABLE_GWLB_ENCAP,
                100,
                n,
                [
                    SetField("tunnel_id", 0),
                    SetField("tun_metadata0", s.id),
                    # Attachment id 0, moved from a register nothing sets: OVS reports a
                    # set-field of 0 into a tunnel metadata field with a zero-length header in
                    # its flow statistics, which os-ken cannot parse (the controller's takeover
                    # would miss that part of the table).
                    Move(REG_ZERO, "tun_metadata1", 32),
                    Move(REG_COOKIE, "tun_metadata2", 32),
                    Move(REG_APPLIANCE, "tun_ipv4_dst", 32),
                    Resubmit(TABLE_GWLB_TX),
                    Output(node.tunnel_port),
                ],
            ),
        ]
        sticky = tg.stickiness in (TWO_TUPLE, THREE_TUPLE)
        flows += self._pick(lb, tg, s)
        candidates, fail_open = self.candidates(lb, tg, node)
        failed = [] if fail_open or not candidates else self.failed(lb, tg)
        for t in failed:
            # Its flows are rehashed over the healthy appliances (and committed again).
            flows.append(
                flow(
                    TABLE_GWLB_STATE,
                    300,
                    {**n, "ct_state": (CT_TRK, CT_TRK), "ct_label": (_ip(t.ip), IP_BITS)},
                    [SetField(REG_KIND, KIND_REHASH)],
                    goto=TABLE_GWLB_PICK,
                )
            )
            if sticky:
                # A pair learned onto it: the slot decides again (and the pair is relearned).
                flows.append(
                    flow(
                        TABLE_GWLB_SLOT,
                        300,
                        {**n, REG_LEARNED: 1, REG_APPLIANCE: _ip(t.ip)},
                        [SetField(REG_LEARNED, 0), Resubmit(TABLE_GWLB_SLOT)],
                    )
                )
        if not candidates:
            return flows  # nothing registered: dropped in 64
        table = self.maglev_table([t.key for t in candidates])
        for slot, index in enumerate(table):
            t = candidates[index]
            chosen: list[Action] = [
                SetField(REG_APPLIANCE, _ip(t.ip)),
                SetField(REG_COOKIE, flow_cookie(s.number, slot)),
            ]
            match = {**n, REG_SLOT: slot, **IP}  # (learn reads IP fields: OVS wants IP)
            if not sticky:
                flows.append(flow(TABLE_GWLB_SLOT, 100, match, chosen, goto=TABLE_GWLB_COMMIT))
                continue
            for proto, idle in ((IPPROTO_TCP, lb.idle_tcp_s), (None, lb.idle_udp_s)):
                learn = self._learn(lb, tg, t, idle)
                flows.append(
                    flow(
                        TABLE_GWLB_SLOT,
                        110 if proto else 100,
                        {**match, "ip_proto": proto} if proto else match,
                        [*chosen, *learn],
                        goto=TABLE_GWLB_COMMIT,
                    )
                )
        return flows

    def _pick(self, lb: LoadBalancerPlan, tg: TargetGroupPlan, s: _Served) -> list[Flow]:
        """Table 62: the stickiness tuple's symmetric hash into a slot."""
        n = {REG_ENDPOINT: s.number}
        slot = (TABLE_GWLB_SLOT,)
        hashes: list[tuple[int, dict[str, Any], Multipath]]
        if tg.stickiness == TWO_TUPLE:
            hashes = [(100, {}, Multipath("symmetric_l3", lb.index, self.size, REG_SLOT))]
        elif tg.stickiness == THREE_TUPLE:
            hashes = [
                (
                    110,
                    {"eth_type": ETH_TYPE_IP, "ip_proto": proto},
                    Multipath("symmetric_l3", proto, self.size, REG_SLOT),
                )
                for proto in STICKY_PROTOCOLS
            ]
            hashes.append((100, {}, Multipath("symmetric_l3", 0, self.size, REG_SLOT)))
        else:
            return [
                # TCP: the select group (its bucket runs 64: no goto).
                flow(
                    TABLE_GWLB_PICK,
                    110,
                    {**n, **IP, "ip_proto": IPPROTO_TCP},
                    [Group(GWLB_SELECT_GROUP)],
                ),
                flow(
                    TABLE_GWLB_PICK,
                    100,
                    n,
                    [Multipath("symmetric_l3l4+udp", lb.index, self.size, REG_SLOT)],
                    goto=slot[0],
                ),
            ]
        return [
            flow(TABLE_GWLB_PICK, prio, {**n, **m}, [mp, Resubmit(TABLE_GWLB_STICKY)], goto=slot[0])
            for prio, m, mp in hashes
        ]

    def _learn(
        self, lb: LoadBalancerPlan, tg: TargetGroupPlan, t: RuntimeTarget, idle: int
    ) -> list[Learn]:
        """Learn the packet's pair (and protocol, 3-tuple) both ways into 65: later flows of
        the pair take this appliance and cookie."""
        proto = [LearnMatch("ip_proto", 8, src="ip_proto")] if tg.stickiness == THREE_TUPLE else []
        loads = [
            LearnLoad(REG_APPLIANCE, 32, src=REG_APPLIANCE),
            LearnLoad(REG_COOKIE, 32, src=REG_COOKIE),
            LearnLoad(REG_LEARNED, 32, value=1),
        ]
        out = []
        for src, dst in (("ipv4_src", "ipv4_dst"), ("ipv4_dst", "ipv4_src")):
            specs: list[Any] = [
                LearnMatch("eth_type", 16, value=ETH_TYPE_IP),
                LearnMatch(REG_ENDPOINT, 32, src=REG_ENDPOINT),
                *proto,
                LearnMatch("ipv4_src", 32, src=src),
                LearnMatch("ipv4_dst", 32, src=dst),
                *loads,
            ]
            out.append(
                Learn(TABLE_GWLB_STICKY, 100, int(idle), self.learn_cookie(lb, t.key), tuple(specs))
            )
        return out

    def _commit(self, known: list[RuntimeTarget], zone: int) -> list[Flow]:
        """Table 66: per appliance, a new or rehashed flow's choice goes into its ct_label."""
        commit = Ct(
            zone,
            None,
            commit=True,
            actions=(
                Move(REG_APPLIANCE, "ct_label", 32),
                Move(REG_COOKIE, "ct_label", 32, dst_ofs=32),
            ),
        )
        return [
            flow(
                TABLE_GWLB_COMMIT,
                100,
                {REG_KIND: kind, REG_APPLIANCE: _ip(t.ip), "ct_zone": zone, **IP},
                [commit, Resubmit(TABLE_GWLB_ENCAP)],
            )
            for t in known
            for kind in (KIND_NEW, KIND_REHASH)
        ]
