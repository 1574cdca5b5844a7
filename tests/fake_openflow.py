"""A fake OpenFlow 1.3 fabric: applies the controller's Flow values to packets, no switch needed.

`FakeFabric.send(host, packet)` walks a packet through the lab's switches exactly as the
flow tables say (tables, priorities, masks, set-field, goto, patch links) and returns where
it was delivered. Two matching flows at the same priority raise: OpenFlow leaves that case
undefined, so the logic must never produce it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from controllers.flows import DecTtl, Flow, Group, Output, SetField, ToController
from testbed.lab.plan import NetworkPlan


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


class FakeSwitch:
    def __init__(self, dpid: int, flows: list[Flow]) -> None:
        self.dpid = dpid
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
            raise AmbiguousMatch(f"switch {self.dpid:#x} table {table}: {len(top)} flows "
                                 f"match at priority {best}: {top}")
        return top[0]

    def process(self, in_port: int, pkt: dict[str, Any], result: Result) \
            -> list[tuple[int, dict[str, Any]]]:
        """Run the pipeline; return (out_port, packet) pairs."""
        pkt = dict(pkt, in_port=in_port, metadata=0)
        table: int | None = 0
        outputs = []
        while table is not None:
            result.hops.append((self.dpid, table))
            f = self.lookup(table, pkt)
            if f is None:
                return outputs  # table miss: drop
            for a in f.actions:
                if isinstance(a, SetField):
                    pkt[a.field] = a.value
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
            if f.metadata is not None:
                value, mask = f.metadata
                pkt["metadata"] = (pkt["metadata"] & ~mask) | (value & mask)
            table = f.goto
        return outputs

    def apply_group(self, group_id: int, pkt: dict[str, Any], result: Result) \
            -> list[tuple[int, dict[str, Any]]]:
        raise NotImplementedError("groups are added by the load-balancer logic")


class FakeFabric:
    """Every switch of a plan, programmed with the given logic's flows."""

    def __init__(self, plan: NetworkPlan, logic: Any) -> None:
        self.plan = plan
        self.switches = {s.dpid: FakeSwitch(s.dpid, logic.flows_for(s.dpid))
                         for s in plan.switches}
        self.by_name = {s.name: s.dpid for s in plan.switches}
        self.peer: dict[tuple[str, int], tuple[str, int]] = {}
        for link in plan.links:
            self.peer[(link.a, link.a_port)] = (link.b, link.b_port)
            self.peer[(link.b, link.b_port)] = (link.a, link.a_port)
        self.host_at = {(h.switch, h.port): h.name for h in plan.hosts}

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
                if out_port == port:
                    continue  # OpenFlow drops output to the in_port
                if (switch, out_port) in self.host_at:
                    result.delivered.append((self.host_at[(switch, out_port)], out))
                elif (switch, out_port) in self.peer:
                    nxt, nxt_port = self.peer[(switch, out_port)]
                    work.append((nxt, nxt_port, out))
        return result


def ip_packet(plan: NetworkPlan, src: str, dst_ip: str, via_router: bool = True,
              proto: int = 6, **extra: Any) -> dict[str, Any]:
    """An IPv4 packet as host `src` would send it to dst_ip (to its gateway's MAC)."""
    h = plan.host(src)
    dst_mac = plan.router_mac
    if not via_router:
        dst_mac = next(x.mac for x in plan.hosts if x.ip == dst_ip)
    pkt = {"eth_src": h.mac, "eth_dst": dst_mac, "eth_type": 0x0800, "ipv4_src": h.ip,
           "ipv4_dst": dst_ip, "ip_proto": proto, "ttl": 64}
    if proto == 6:
        pkt.update(tcp_src=40000, tcp_dst=80)
    elif proto == 17:
        pkt.update(udp_src=40000, udp_dst=53)
    pkt.update(extra)
    return pkt
