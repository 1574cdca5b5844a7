"""A fake OpenFlow 1.3 fabric: applies the controller's Flow values to packets, no switch needed.

`FakeFabric.send(host, packet)` walks a packet through the lab's switches exactly as the
flow tables say (tables, priorities, masks, set-field, goto, patch links) and returns where
it was delivered. Two matching flows at the same priority raise: OpenFlow leaves that case
undefined, so the logic must never produce it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from testbed.controllers.flows import (
    CT_EST,
    CT_NEW,
    CT_RPL,
    CT_TRK,
    IN_PORT,
    Ct,
    DecTtl,
    Flow,
    Group,
    Multipath,
    Nat,
    Output,
    RegMove,
    SetField,
    ToController,
)
from testbed.plan.network import NetworkPlan


class AmbiguousMatch(AssertionError):
    pass


def _field_matches(name: str, want: Any, have: Any) -> bool:
    if have is None:
        return False
    if isinstance(want, tuple):
        value, mask = want
        if name.startswith("ipv4"):
            v, m, h = (int(IPv4Address(x)) for x in (value, mask, have))
            return (h & m) == (v & m)
        return (int(have) & mask) == (value & mask)
    if name.startswith("ipv4"):
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


class FakeConntrack:
    """Connection tracking as OVS does it, shared by every switch (one datapath)."""

    def __init__(self) -> None:
        self.conns: list[tuple[int, tuple, tuple]] = []  # (zone, orig, translated orig)
        self._next_port = 20000

    def lookup(self, zone: int, t: tuple) -> tuple[str, tuple, tuple] | None:
        for z, orig, xlated in self.conns:
            if z != zone:
                continue
            if t == orig:
                return "orig", orig, xlated
            if t == _reverse(xlated):
                return "reply", orig, xlated
        return None

    def apply(self, action: Ct, pkt: dict[str, Any]) -> None:
        t = five_tuple(pkt)
        found = self.lookup(action.zone, t)
        if found is None:
            pkt["ct_state"] = CT_TRK | CT_NEW
            if action.commit:
                xlated = self._translate(t, action.nat)
                self.conns.append((action.zone, t, xlated))
                if action.nat is not None and action.nat.kind:
                    _set_tuple(pkt, xlated)
            return
        direction, orig, xlated = found
        pkt["ct_state"] = CT_TRK | CT_EST | (CT_RPL if direction == "reply" else 0)
        if action.nat is not None:
            _set_tuple(pkt, xlated if direction == "orig" else _reverse(orig))

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

    def flush(self, zone: int, reply_src: str | None = None) -> int:
        """Forget connections of a zone (only those translated to reply_src if given)."""
        keep = [
            c
            for c in self.conns
            if c[0] != zone or (reply_src is not None and c[2][3] != reply_src)
        ]
        gone = len(self.conns) - len(keep)
        self.conns = keep
        return gone


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


class FakeSwitch:
    def __init__(
        self, dpid: int, flows: list[Flow], conntrack: FakeConntrack | None = None
    ) -> None:
        self.dpid = dpid
        self.conntrack = conntrack or FakeConntrack()
        self.tables: dict[int, list[Flow]] = {}
        for f in flows:
            self.tables.setdefault(f.table, []).append(f)
        self.groups: dict[int, Any] = {}

    def lookup(self, table: int, pkt: dict[str, Any]) -> Flow | None:
        hits = [f for f in self.tables.get(table, []) if matches(f, pkt)]
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

    def process(
        self, in_port: int, pkt: dict[str, Any], result: Result
    ) -> list[tuple[int, dict[str, Any]]]:
        """Run the pipeline; return (out_port, packet) pairs."""
        # Crossing into a switch clears registers and conntrack state, as OVS patch ports do.
        pkt = {k: v for k, v in pkt.items() if not k.startswith("reg") and k != "ct_state"}
        pkt.update(in_port=in_port, metadata=0)
        table: int | None = 0
        outputs = []
        steps = 0
        while table is not None:
            steps += 1
            if steps > 64:
                raise AssertionError(f"pipeline loop on switch {self.dpid:#x}: {result.hops}")
            result.hops.append((self.dpid, table))
            f = self.lookup(table, pkt)
            if f is None:
                return outputs  # table miss: drop
            if f.goto is not None and f.goto <= table:
                # OpenFlow: goto_table only moves forward (OVS rejects the flow otherwise).
                raise AssertionError(
                    f"switch {self.dpid:#x}: table {table} flow goes to table {f.goto}: {f}"
                )
            next_table = f.goto
            for a in f.actions:
                if isinstance(a, SetField):
                    pkt[a.field] = a.value
                elif isinstance(a, RegMove):
                    pkt[a.dst] = pkt.get(a.src)  # whole fields only, as the logic moves them
                elif isinstance(a, DecTtl):
                    pkt["ttl"] = pkt.get("ttl", 64) - 1
                    if pkt["ttl"] <= 0:
                        return outputs
                elif isinstance(a, Output):
                    out = dict(pkt)
                    out.pop("in_port")
                    outputs.append((a.port, out))
                elif isinstance(a, ToController):
                    result.to_controller.append((self.dpid, dict(pkt)))
                elif isinstance(a, Group):
                    outputs.extend(self.apply_group(a.group_id, pkt, result))
                elif isinstance(a, Multipath):
                    pkt[a.dst] = multipath_hash(a.fields, a.basis, pkt) % a.n_links
                elif isinstance(a, Ct):
                    self.conntrack.apply(a, pkt)
                    next_table = a.table  # ct recirculates: the rest runs in a.table
                    break
            if f.metadata is not None:
                value, mask = f.metadata
                pkt["metadata"] = (pkt["metadata"] & ~mask) | (value & mask)
            table = next_table
        return outputs

    def apply_group(
        self, group_id: int, pkt: dict[str, Any], result: Result
    ) -> list[tuple[int, dict[str, Any]]]:
        raise NotImplementedError("groups are added by the load-balancer logic")


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
        self.host_at = {(h.switch, h.port): h.name for h in plan.hosts}

    def reprogram(self) -> None:
        """Reload every switch's flows from the logic (after a change of state)."""
        self.switches = {
            s.dpid: FakeSwitch(s.dpid, self.logic.flows_for(s.dpid), self.conntrack)
            for s in self.plan.switches
        }

    def send(self, host: str, pkt: dict[str, Any], max_hops: int = 16) -> Result:
        """Inject `pkt` as sent by `host`; follow it to wherever the flows deliver it."""
        h = self.plan.host(host)
        result = Result()
        work = [(h.switch, h.port, pkt)]
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
                elif (switch, out_port) in self.peer:
                    nxt, nxt_port = self.peer[(switch, out_port)]
                    work.append((nxt, nxt_port, out))
        return result


def ip_packet(
    plan: NetworkPlan, src: str, dst_ip: str, via_router: bool = True, proto: int = 6, **extra: Any
) -> dict[str, Any]:
    """An IPv4 packet as host `src` would send it to dst_ip (to its gateway's MAC)."""
    h = plan.host(src)
    dst_mac = plan.router_mac
    if not via_router:
        dst_mac = next(x.mac for x in plan.hosts if x.ip == dst_ip)
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
    pkt.update(extra)
    return pkt


def arp_request(
    plan: NetworkPlan, src: str, target_ip: str, src_ip: str | None = None
) -> dict[str, Any]:
    """A broadcast ARP request of host `src` for target_ip (from src_ip, default its address)."""
    h = plan.host(src)
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
