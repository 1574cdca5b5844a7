"""A fake OpenFlow 1.3 fabric: applies the controller's Flow values to packets, no switch needed.

`FakeFabric.send(host, packet)` walks a packet through the lab's switches exactly as the
flow tables say (tables, priorities, masks, set-field, goto, resubmit, learn, patch links) and
returns where it was delivered. Two matching flows at the same priority raise: OpenFlow leaves
that case undefined, so the logic must never produce it.

GWLB steering in the switch (issue 15): an output to a GWLB node's GENEVE port
(NodePlan.tunnel_port) is delivered to "tunnel:<tun_ipv4_dst>" (the packet keeps its
tun_metadata0..2 and tunnel_id); `FakeFabric.send_tunnel(node, packet, tun_src, ...)` is a
decapsulated packet entering on that port. Tunnel fields do not cross patch links.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from testbed.controllers.flows import (
    CT_EST,
    CT_NEW,
    CT_REL,
    CT_RPL,
    CT_TRK,
    IN_PORT,
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    Ct,
    DecTtl,
    Flow,
    Group,
    Learn,
    LearnMatch,
    Move,
    Multipath,
    Nat,
    Output,
    Resubmit,
    SelectGroup,
    SetField,
    ToController,
)
from testbed.controllers.gwlb import tunnel_nodes
from testbed.plan.network import HostPlan, NetworkPlan


class AmbiguousMatch(AssertionError):
    pass


def _is_address(name: str) -> bool:
    """IPv4 address fields (ipv4_src, tun_ipv4_dst, ...): dotted text or their number."""
    return "ipv4" in name


def _field_matches(name: str, want: Any, have: Any) -> bool:
    if have is None:
        return False
    if isinstance(want, tuple):
        value, mask = want
        if _is_address(name):
            v, m, h = (int(IPv4Address(x)) for x in (value, mask, have))
            return (h & m) == (v & m)
        return (int(have) & mask) == (value & mask)
    if _is_address(name):
        return IPv4Address(want) == IPv4Address(have)
    return want == have


def matches(f: Flow, pkt: dict[str, Any]) -> bool:
    return all(_field_matches(k, v, pkt.get(k)) for k, v in f.match)


@dataclass
class Result:
    delivered: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    to_controller: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    hops: list[tuple[int, int]] = field(default_factory=list)  # (dpid, table) visited

    @property
    def hosts(self) -> list[str]:
        return [h for h, _ in self.delivered]


PORTS = {6: ("tcp_src", "tcp_dst"), 17: ("udp_src", "udp_dst")}


def five_tuple(pkt: dict[str, Any]) -> tuple:
    proto = pkt.get("ip_proto")
    sp, dp = PORTS.get(proto, (None, None))
    return (
        proto,
        pkt.get("ipv4_src"),
        pkt.get(sp) if sp else None,
        pkt.get("ipv4_dst"),
        pkt.get(dp) if dp else None,
    )


def _set_tuple(pkt: dict[str, Any], t: tuple) -> None:
    proto, src, sport, dst, dport = t
    pkt["ipv4_src"], pkt["ipv4_dst"] = src, dst
    sp, dp = PORTS.get(proto, (None, None))
    if sp:
        pkt[sp], pkt[dp] = sport, dport


def _reverse(t: tuple) -> tuple:
    proto, src, sport, dst, dport = t
    return (proto, dst, dport, src, sport)


@dataclass
class FakeConn:
    zone: int
    orig: tuple  # the 5-tuple of the first packet
    xlated: tuple  # orig after NAT: its reverse is what replies look like
    label: int = 0
    fins: set[str] = field(default_factory=set)  # directions that sent a FIN
    reset: bool = False

    @property
    def nat(self) -> bool:
        return self.xlated != self.orig

    @property
    def closed(self) -> bool:
        return self.reset or self.fins == {"orig", "reply"}


class FakeConntrack:
    """Connection tracking as OVS 3.1's userspace datapath does it, shared by every switch.

    Zones keep connections apart (a lab's load balancers and each security-group port have
    their own). An ICMP error packet names the packet it quotes in "icmp_error_of" (that
    packet's 5-tuple, see five_tuple): it is +rel when the quoted packet belongs to a
    connection of the zone.

    What the NLB depends on is modelled: a pure SYN for a closed TCP connection replaces it;
    a NAT'ed connection's reply tuple must be unique, and the reply tuple of a replaced NAT'ed
    connection stays reserved (OVS 3.1 keeps its un-NAT entry until the conntrack sweeper
    runs, seconds later): a NAT commit that finds its reply tuple taken changes the source
    port, as OVS does."""

    def __init__(self) -> None:
        self.conns: list[FakeConn] = []
        self.reserved: set[tuple[int, tuple]] = set()  # (zone, reply tuple) of replaced conns
        self._next_port = 20000

    def lookup(self, zone: int, t: tuple) -> tuple[str, FakeConn] | None:
        for c in self.conns:
            if c.zone != zone:
                continue
            if t == c.orig:
                return "orig", c
            if t == _reverse(c.xlated):
                return "reply", c
        return None

    def apply(self, action: Ct, pkt: dict[str, Any]) -> None:
        t = five_tuple(pkt)
        inner = pkt.get("icmp_error_of")  # an ICMP error quoting a packet (its 5-tuple)
        if inner is not None and self.lookup(action.zone, tuple(inner)) is not None:
            # Related to a tracked connection, as conntrack finds from the quoted packet.
            pkt["ct_state"], pkt["ct_label"] = CT_TRK | CT_REL, 0
            return
        flags = pkt.get("tcp_flags_nxm", 0) if pkt.get("ip_proto") == 6 else 0
        found = self.lookup(action.zone, t)
        if found and found[1].closed and flags & (TCP_SYN | TCP_ACK) == TCP_SYN:
            old = found[1]  # a new connection reusing the 4-tuple of a closed one
            self.conns.remove(old)
            if old.nat:
                self.reserved.add((old.zone, _reverse(old.xlated)))
            found = None
        if found is None:
            pkt["ct_state"], pkt["ct_label"] = CT_TRK | CT_NEW, 0
            if action.commit:
                xlated = self._unique(action.zone, t, self._translate(t, action.nat))
                label = _exec_label(action, pkt, action.label or 0)
                conn = FakeConn(action.zone, t, xlated, label=label)
                self.conns.append(conn)
                pkt["ct_label"] = conn.label
                if action.nat is not None and action.nat.kind:
                    _set_tuple(pkt, xlated)
            return
        direction, conn = found
        if action.commit and action.label is not None:
            conn.label = action.label
        if action.commit:
            conn.label = _exec_label(action, pkt, conn.label)
        if flags & TCP_FIN:
            conn.fins.add(direction)
        if flags & TCP_RST:
            conn.reset = True
        pkt["ct_state"] = CT_TRK | CT_EST | (CT_RPL if direction == "reply" else 0)
        pkt["ct_label"] = conn.label
        if action.nat is not None:
            _set_tuple(pkt, conn.xlated if direction == "orig" else _reverse(conn.orig))

    def _taken(self, zone: int, reply: tuple) -> bool:
        return (zone, reply) in self.reserved or any(
            c.zone == zone and reply in (c.orig, _reverse(c.xlated)) for c in self.conns
        )

    def _unique(self, zone: int, orig: tuple, xlated: tuple) -> tuple:
        """OVS checks only NAT'ed connections: their reply tuple must be free; if it is not,
        the source port moves on (for a destination NAT to one port, too)."""
        if xlated == orig:
            return xlated
        proto, src, sport, dst, dport = xlated
        while self._taken(zone, _reverse((proto, src, sport, dst, dport))):
            sport = 1024 if sport == 65535 else sport + 1
        return (proto, src, sport, dst, dport)

    def _translate(self, t: tuple, nat: Nat | None) -> tuple:
        if nat is None or nat.kind is None:
            return t
        proto, src, sport, dst, dport = t
        if nat.kind == "dst":
            return (
                proto,
                src,
                sport,
                nat.ip or dst,
                nat.port_min if nat.port_min is not None else dport,
            )
        port = sport
        if nat.port_min is not None and not (nat.port_min <= sport <= nat.port_max):
            self._next_port += 1
            port = nat.port_min + self._next_port % (nat.port_max - nat.port_min + 1)
        return (proto, nat.ip or src, port, dst, dport)

    def flush(self, zone: int, reply_src: str | None = None, label: int | None = None) -> int:
        """Forget connections of a zone (only those answered from reply_src, or with that
        ct_label, if given)."""

        def gone(c: FakeConn) -> bool:
            return (
                c.zone == zone
                and (reply_src is None or c.xlated[3] == reply_src)
                and (label is None or c.label == label)
            )

        before = len(self.conns)
        self.conns = [c for c in self.conns if not gone(c)]
        return before - len(self.conns)


def _exec_label(action: Ct, pkt: dict[str, Any], label: int) -> int:
    """The ct_label a commit leaves: `label`, then the ct action's exec moves and set-fields
    into ct_label (from the packet's fields as they are)."""
    for a in action.actions:
        if isinstance(a, SetField) and a.field == "ct_label":
            label = int(a.value)
        elif isinstance(a, Move) and a.dst == "ct_label":
            bits = (_as_int(a.src, pkt.get(a.src)) >> a.src_ofs) & ((1 << a.n_bits) - 1)
            mask = ((1 << a.n_bits) - 1) << a.dst_ofs
            label = (label & ~mask) | (bits << a.dst_ofs)
    return label


def multipath_hash(fields: str, basis: int, pkt: dict[str, Any]) -> int:
    """A stand-in for OVS's hash: deterministic, symmetric where OVS's is."""
    proto, src, sport, dst, dport = five_tuple(pkt)
    if fields == "nw_src":
        key = f"{src}"
    elif fields == "symmetric_l3":
        key = "|".join(sorted([str(src), str(dst)]))
    else:
        ends = sorted([(str(src), str(sport)), (str(dst), str(dport))])
        key = f"{proto}|{ends}"
    return int.from_bytes(hashlib.sha256(f"{basis}:{key}".encode()).digest()[:4], "big")


def _as_int(name: str, value: Any) -> int:
    if value is None:
        return 0
    return int(IPv4Address(value)) if _is_address(name) else int(value)


def _move(a: Move, pkt: dict[str, Any]) -> None:
    """Bit copy between fields; addresses travel as their 32-bit values. A whole field
    copied from bit 0 to bit 0 between fields of one kind (MACs and ARP fields, kept as text
    here; addresses; numbers) is copied as is."""
    whole = a.src_ofs == a.dst_ofs == 0 and "ct_label" not in (a.src, a.dst)
    if whole and _is_address(a.src) == _is_address(a.dst):
        # (A register nothing wrote holds 0.)
        pkt[a.dst] = pkt.get(a.src, 0 if a.src.startswith("reg") else None)
        return
    bits = (_as_int(a.src, pkt.get(a.src)) >> a.src_ofs) & ((1 << a.n_bits) - 1)
    old = _as_int(a.dst, pkt.get(a.dst))
    mask = ((1 << a.n_bits) - 1) << a.dst_ofs
    value = (old & ~mask) | (bits << a.dst_ofs)
    pkt[a.dst] = str(IPv4Address(value)) if _is_address(a.dst) else value


_IP_FIELDS = ("ipv4", "ip_proto", "tcp", "udp", "icmpv4")


def check_prerequisites(f: Flow) -> None:
    """What OVS refuses with OFPBAC_MATCH_INCONSISTENT: a ct action, a learn that reads IP
    fields, or a set-field / move into IP fields, in a flow that does not match IP."""
    ip = dict(f.match).get("eth_type") in (0x0800, 0x86DD)
    for a in f.actions:
        needs = isinstance(a, Ct)
        if isinstance(a, Learn):
            needs = any(spec.src and spec.src.startswith(_IP_FIELDS) for spec in a.specs)
        if isinstance(a, SetField):
            needs = a.field.startswith(_IP_FIELDS)
        if isinstance(a, Move):
            needs = a.dst.startswith(_IP_FIELDS) or a.src.startswith(_IP_FIELDS)
        if needs and not ip:
            raise AssertionError(f"OVS would refuse {a} in a flow that does not match IP: {f}")


class _Dropped(Exception):
    """The packet is gone (its TTL ran out): nothing more happens to it."""


class FakeSwitch:
    def __init__(
        self,
        dpid: int,
        flows: list[Flow],
        conntrack: FakeConntrack | None = None,
        groups: list[SelectGroup] | None = None,
    ) -> None:
        self.dpid = dpid
        self.conntrack = conntrack or FakeConntrack()
        self.groups = {g.group_id: g for g in groups or []}
        self.tables: dict[int, list[Flow]] = {}
        for f in flows:
            check_prerequisites(f)
            for a in f.actions:
                if isinstance(a, Group) and a.group_id not in self.groups:
                    # OVS refuses a flow naming a group it does not hold.
                    raise AssertionError(f"switch {dpid:#x}: no group {a.group_id}: {f}")
            self.tables.setdefault(f.table, []).append(f)
        # Packets per bucket of each group: (group id, bucket) -> packets.
        self.bucket_packets: dict[tuple[int, int], int] = {}
        # What learn actions installed: (table, priority, match) -> (flow, cookie).
        self.learned: dict[tuple[int, int, tuple], tuple[Flow, int]] = {}

    def lookup(self, table: int, pkt: dict[str, Any]) -> Flow | None:
        candidates = self.tables.get(table, []) + [
            f for (t, _p, _m), (f, _c) in self.learned.items() if t == table
        ]
        hits = [f for f in candidates if matches(f, pkt)]
        if not hits:
            return None
        best = max(f.priority for f in hits)
        top = [f for f in hits if f.priority == best]
        if len(top) > 1:
            raise AmbiguousMatch(
                f"switch {self.dpid:#x} table {table}: {len(top)} flows "
                f"match at priority {best}: {top}"
            )
        return top[0]

    def learned_flows(self, table: int | None = None) -> list[tuple[Flow, int]]:
        """(flow, cookie) of every flow learn actions installed (in `table`)."""
        return [v for (t, _p, _m), v in self.learned.items() if table is None or t == table]

    def learn(self, a: Learn, pkt: dict[str, Any]) -> None:
        """Install (or replace) the flow a learn action makes from this packet."""
        match: dict[str, Any] = {}
        actions = []
        for spec in a.specs:
            value = pkt.get(spec.src) if spec.src else spec.value
            if isinstance(spec, LearnMatch):
                match[spec.dst] = value
            else:
                actions.append(SetField(spec.dst, value))
        learned = Flow(a.table, a.priority, tuple(sorted(match.items())), tuple(actions))
        self.learned[(a.table, a.priority, learned.match)] = (learned, a.cookie)

    def process(
        self, in_port: int, pkt: dict[str, Any], result: Result
    ) -> list[tuple[int, dict[str, Any]]]:
        """Run the pipeline; return (out_port, packet) pairs."""
        # Crossing into a switch clears registers and conntrack state, as OVS patch ports do.
        pkt = {
            k: v
            for k, v in pkt.items()
            if not k.startswith("reg") and k not in ("ct_state", "ct_label", "ct_zone")
        }
        pkt.update(in_port=in_port, metadata=0)
        outputs: list[tuple[int, dict[str, Any]]] = []
        with contextlib.suppress(_Dropped):
            self._run(0, pkt, result, outputs, 0)
        return outputs

    def _run(
        self,
        table: int | None,
        pkt: dict[str, Any],
        result: Result,
        outputs: list[tuple[int, dict[str, Any]]],
        depth: int,
    ) -> None:
        """Tables from `table` on, following gotos; a resubmit runs here nested (the flow it
        finds, with its goto), then the resubmitting flow goes on with its next action."""
        steps = 0
        while table is not None:
            steps += 1
            if steps > 64 or depth > 16:
                raise AssertionError(f"pipeline loop on switch {self.dpid:#x}: {result.hops}")
            result.hops.append((self.dpid, table))
            f = self.lookup(table, pkt)
            if f is None:
                return  # table miss: drop (a resubmit's miss: nothing happens)
            if f.goto is not None and f.goto <= table:
                # OpenFlow: goto_table only moves forward (OVS rejects the flow otherwise).
                raise AssertionError(
                    f"switch {self.dpid:#x}: table {table} flow goes to table {f.goto}: {f}"
                )
            next_table = f.goto
            for a in f.actions:
                if isinstance(a, SetField):
                    pkt[a.field] = a.value
                elif isinstance(a, DecTtl):
                    pkt["ttl"] = pkt.get("ttl", 64) - 1
                    if pkt["ttl"] <= 0:
                        raise _Dropped
                elif isinstance(a, Output):
                    out = dict(pkt)
                    out.pop("in_port")
                    outputs.append((a.port, out))
                elif isinstance(a, ToController):
                    result.to_controller.append((self.dpid, dict(pkt)))
                elif isinstance(a, Group):
                    self.apply_group(a.group_id, pkt, result, outputs, depth)
                elif isinstance(a, Multipath):
                    pkt[a.dst] = multipath_hash(a.fields, a.basis, pkt) % a.n_links
                elif isinstance(a, Move):
                    _move(a, pkt)
                elif isinstance(a, Resubmit):
                    self._run(a.table, pkt, result, outputs, depth + 1)
                elif isinstance(a, Learn):
                    self.learn(a, pkt)
                elif isinstance(a, Ct):
                    self.conntrack.apply(a, pkt)
                    if a.table is None:
                        # No recirculation: the packet goes on, its ct fields hidden.
                        pkt["ct_state"], pkt["ct_label"] = 0, 0
                        continue
                    pkt["ct_zone"] = a.zone  # matchable after the recirculation
                    next_table = a.table  # ct recirculates: the rest runs in a.table
                    break
            if f.metadata is not None:
                value, mask = f.metadata
                pkt["metadata"] = (pkt["metadata"] & ~mask) | (value & mask)
            table = next_table

    def apply_group(
        self,
        group_id: int,
        pkt: dict[str, Any],
        result: Result,
        outputs: list[tuple[int, dict[str, Any]]],
        depth: int,
    ) -> None:
        """A select group: one bucket by a symmetric hash of the 5-tuple (OVS's dp_hash is
        symmetric for TCP), its actions run on the packet itself (set-field, move, resubmit,
        output)."""
        g = self.groups[group_id]
        bucket = multipath_hash("symmetric_l3l4", 0, pkt) % len(g.buckets)
        key = (group_id, bucket)
        self.bucket_packets[key] = self.bucket_packets.get(key, 0) + 1
        for a in g.buckets[bucket]:
            if isinstance(a, SetField):
                pkt[a.field] = a.value
            elif isinstance(a, Move):
                _move(a, pkt)
            elif isinstance(a, Resubmit):
                self._run(a.table, pkt, result, outputs, depth + 1)
            elif isinstance(a, Output):
                out = dict(pkt)
                out.pop("in_port")
                outputs.append((a.port, out))
            else:
                raise NotImplementedError(f"bucket action {a!r}")


class FakeFabric:
    """Every switch of a plan, programmed with the given logic's flows."""

    def __init__(self, plan: NetworkPlan, logic: Any) -> None:
        self.plan = plan
        self.logic = logic
        self.conntrack = FakeConntrack()
        self.switches: dict[int, FakeSwitch] = {}
        self.reprogram()
        self.by_name = {s.name: s.dpid for s in plan.switches}
        self.peer: dict[tuple[str, int], tuple[str, int]] = {}
        for link in plan.links:
            self.peer[(link.a, link.a_port)] = (link.b, link.b_port)
            self.peer[(link.b, link.b_port)] = (link.a, link.a_port)
        # Every port holding a host interface: "HOST" (eth0) or "HOST/ethN".
        self.host_at = {(h.switch, h.port): h.name for h in plan.attachments()}
        # GENEVE ports of GWLB nodes the switch steers for: node host -> (switch, port).
        switch_of = {h.name: h.switch for h in plan.hosts}
        self.tunnel_at = {
            host: (switch_of[host], node.tunnel_port)
            for host, (_lb, node) in tunnel_nodes(plan).items()
        }
        self._tunnels = set(self.tunnel_at.values())

    def reprogram(self) -> None:
        """Reload every switch's flows from the logic (after a change of state). Flows the
        switches learned stay: they are the switch's, not the controller's."""
        before = getattr(self, "switches", {})
        groups_for = getattr(self.logic, "groups_for", lambda dpid: [])
        self.switches = {
            s.dpid: FakeSwitch(
                s.dpid, self.logic.flows_for(s.dpid), self.conntrack, groups_for(s.dpid)
            )
            for s in self.plan.switches
        }
        for dpid, switch in self.switches.items():
            if dpid in before:
                switch.learned = before[dpid].learned

    def send(self, host: str, pkt: dict[str, Any], max_hops: int = 16) -> Result:
        """Inject `pkt` as sent by `host` ("HOST", or "HOST/ethN" for another interface);
        follow it to wherever the flows deliver it."""
        h = attachment(self.plan, host)
        return self._walk(h.switch, h.port, pkt, max_hops)

    def send_tunnel(
        self,
        node: str,
        pkt: dict[str, Any],
        tun_src: str,
        tun_metadata0: int,
        tun_metadata2: int = 0,
        max_hops: int = 16,
    ) -> Result:
        """`pkt` (its inner Ethernet frame) coming back decapsulated on GWLB node `node`'s
        GENEVE port from appliance `tun_src`, with those options."""
        switch, port = self.tunnel_at[node]
        tunnel = {
            "tun_ipv4_src": tun_src,
            "tunnel_id": 0,
            "tun_metadata0": tun_metadata0,
            "tun_metadata1": 0,
            "tun_metadata2": tun_metadata2,
        }
        return self._walk(switch, port, {**pkt, **tunnel}, max_hops)

    def _walk(self, switch: str, port: int, pkt: dict[str, Any], max_hops: int) -> Result:
        result = Result()
        work = [(switch, port, pkt)]
        hops = 0
        while work:
            hops += 1
            if hops > max_hops:
                raise AssertionError(f"forwarding loop: {result.hops}")
            switch, port, p = work.pop()
            for out_port, out in self.switches[self.by_name[switch]].process(port, p, result):
                if out_port == IN_PORT:
                    out_port = port  # sent back where it came from, on purpose
                elif out_port == port:
                    continue  # OpenFlow drops output to the in_port
                if (switch, out_port) in self.host_at:
                    result.delivered.append((self.host_at[(switch, out_port)], out))
                elif (switch, out_port) in self._tunnels:
                    # Encapsulated to the appliance (OVS then routes it from the node).
                    result.delivered.append((f"tunnel:{out.get('tun_ipv4_dst')}", out))
                elif (switch, out_port) in self.peer:
                    nxt, nxt_port = self.peer[(switch, out_port)]
                    # Tunnel metadata does not cross a patch port.
                    out = {k: v for k, v in out.items() if not k.startswith("tun")}
                    work.append((nxt, nxt_port, out))
        return result


def ip_packet(
    plan: NetworkPlan, src: str, dst_ip: str, via_router: bool = True, proto: int = 6, **extra: Any
) -> dict[str, Any]:
    """An IPv4 packet as host `src` (or interface "HOST/ethN") would send it to dst_ip (to its
    gateway's MAC, or straight to the port holding dst_ip)."""
    h = attachment(plan, src)
    dst_mac = plan.router_mac
    if not via_router:
        dst_mac = next(x.mac for x in plan.attachments() if dst_ip in (x.ip, *x.extra_ips))
    pkt = {
        "eth_src": h.mac,
        "eth_dst": dst_mac,
        "eth_type": 0x0800,
        "ipv4_src": h.ip,
        "ipv4_dst": dst_ip,
        "ip_proto": proto,
        "ttl": 64,
    }
    if proto == 6:
        pkt.update(tcp_src=40000, tcp_dst=80, tcp_flags_nxm=0x02)
    elif proto == 17:
        pkt.update(udp_src=40000, udp_dst=53)
    elif proto == 1:
        pkt.update(icmpv4_type=8, icmpv4_code=0)  # an echo request
    pkt.update(extra)
    return pkt


def arp_request(
    plan: NetworkPlan, src: str, target_ip: str, src_ip: str | None = None
) -> dict[str, Any]:
    """A broadcast ARP request of host `src` for target_ip (from src_ip, default its address)."""
    h = attachment(plan, src)
    return {
        "eth_src": h.mac,
        "eth_dst": "ff:ff:ff:ff:ff:ff",
        "eth_type": 0x0806,
        "arp_op": 1,
        "arp_sha": h.mac,
        "arp_spa": src_ip or h.ip,
        "arp_tha": "00:00:00:00:00:00",
        "arp_tpa": target_ip,
    }


def attachment(plan: NetworkPlan, name: str) -> HostPlan:
    """The port named `name` in plan.attachments(): a host's eth0 ("HOST") or "HOST/ethN"."""
    return next(a for a in plan.attachments() if a.name == name)
