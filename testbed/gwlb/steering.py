"""GWLB steering as pure logic: appliances and their health, new flows hashed with Maglev, the
flow table with idle timeouts, and target failover. No sockets: the node feeds it target
states, packets' keys and the time.

As on AWS:
- a new flow goes to a healthy appliance in the node's AZ (all AZs with cross-zone on); when
  none is healthy, to any registered one (fail open); draining appliances get no new flows;
- an existing flow keeps its appliance until it is idle for the timeout (TCP 350 s, other
  protocols 120 s); with 5-tuple stickiness the node starts a new flow when a TCP SYN reuses
  the 5-tuple of an old one (that connection is over);
- target_failover (on_unhealthy, on_deregistration): no_rebalance (default) keeps a failed or
  deregistered appliance's flows on it (they are lost if it is dead); rebalance rehashes them
  over the healthy appliances once it is unhealthy, or once its deregistration delay is over
  (the registry then removes it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from testbed import maglev
from testbed.gwlb.flowkey import flow_hash
from testbed.lb.registry import DRAINING, HEALTHY, UNHEALTHY, UNUSED

REMOVED = "removed"  # no longer registered (deregistration delay over)
NO_REBALANCE, REBALANCE = "no_rebalance", "rebalance"
FAILOVER_MODES = (NO_REBALANCE, REBALANCE)
IDLE_TCP_S, IDLE_OTHER_S = 350.0, 120.0
TCP = 6
COOKIE_SPACE = 1 << 32


@dataclass(frozen=True)
class TargetState:
    """One appliance as the holder describes it: registry key, address, AZ and state."""

    key: str
    ip: str
    az: str | None
    state: str
    port: int = 6081  # where GENEVE goes


class Appliance:
    """An appliance the node knows, with its counters (per direction of the tunnel and of the
    flows it carries)."""

    __slots__ = (
        "addr",
        "az",
        "flows",
        "fwd_packets",
        "in_scope",
        "ip",
        "key",
        "new_flows",
        "rehashed_in",
        "rehashed_out",
        "rev_packets",
        "rx_bytes",
        "rx_packets",
        "state",
        "tx_bytes",
        "tx_packets",
    )

    def __init__(self, key: str, ip: str, az: str | None, port: int) -> None:
        self.key, self.ip, self.az = key, ip, az
        self.addr = (ip, port)
        self.state = ""
        self.in_scope = True
        self.flows = 0  # flows assigned now
        self.new_flows = 0  # flows ever hashed onto it
        self.tx_packets = self.tx_bytes = 0  # node -> appliance (GENEVE out)
        self.rx_packets = self.rx_bytes = 0  # appliance -> node (GENEVE back)
        self.fwd_packets = self.rev_packets = 0  # initiator -> responder, and the replies
        self.rehashed_in = self.rehashed_out = 0

    def as_dict(self) -> dict[str, Any]:
        """Counters and state as JSON-able values."""
        return {name: getattr(self, name) for name in self.__slots__ if name != "addr"}


class Flow:
    """One flow (both directions): its appliance, the endpoint it came through, its cookie."""

    __slots__ = (
        "appliance",
        "bytes",
        "cookie",
        "created",
        "endpoint",
        "forward",
        "fwd_packets",
        "header",
        "idle",
        "key",
        "last",
        "rev_packets",
    )

    def __init__(
        self,
        key: bytes,
        cookie: int,
        appliance: Appliance,
        endpoint: Any,
        idle: float,
        now: float,
        forward: bool,
    ) -> None:
        self.key, self.cookie, self.appliance, self.endpoint = key, cookie, appliance, endpoint
        self.header = b""  # the node's GENEVE header for this flow
        self.idle, self.created, self.last = idle, now, now
        self.forward = forward  # the `forward` of the first packet: the initiator's side
        self.fwd_packets = self.rev_packets = self.bytes = 0


class Steering:
    """Flow table and appliance choice of one GWLB node."""

    def __init__(
        self,
        *,
        on_unhealthy: str = NO_REBALANCE,
        on_deregistration: str = NO_REBALANCE,
        az: str | None = None,
        cross_zone: bool = False,
        idle_tcp_s: float = IDLE_TCP_S,
        idle_other_s: float = IDLE_OTHER_S,
        table_size: int = maglev.DEFAULT_SIZE,
    ) -> None:
        for mode in (on_unhealthy, on_deregistration):
            if mode not in FAILOVER_MODES:
                raise ValueError(
                    f"unknown target_failover mode {mode!r} (known: {', '.join(FAILOVER_MODES)})"
                )
        self.on_unhealthy, self.on_deregistration = on_unhealthy, on_deregistration
        self.az, self.cross_zone = az, cross_zone
        self.idle_tcp_s, self.idle_other_s = idle_tcp_s, idle_other_s
        self.table_size = table_size
        self.appliances: dict[str, Appliance] = {}
        self.flows: dict[bytes, Flow] = {}
        self.cookies: dict[int, Flow] = {}
        self.candidates: list[Appliance] = []
        self.table: list[int] = []
        self.fail_open = False
        self.next_cookie = 1
        self.expired = 0
        self.events: list[str] = []  # what changed, for the node's log

    # ---- appliances ------------------------------------------------------------------
    def set_targets(self, targets: Iterable[TargetState]) -> bool:
        """Take the registry's view of the target group; True if anything changed."""
        changed = False
        seen = set()
        for t in targets:
            seen.add(t.key)
            a = self.appliances.get(t.key)
            if a is None:
                a = self.appliances[t.key] = Appliance(t.key, t.ip, t.az, t.port)
            in_scope = self.cross_zone or self.az is None or t.az in (self.az, "all")
            if a.state != t.state or a.in_scope != in_scope:
                self.events.append(
                    f"appliance {t.key}: {a.state or '-'} -> {t.state}"
                    + ("" if in_scope else " (other AZ)")
                )
                a.state, a.in_scope = t.state, in_scope
                changed = True
        for key, a in list(self.appliances.items()):
            if key not in seen and a.state != REMOVED:
                self.events.append(f"appliance {key}: {a.state} -> {REMOVED}")
                a.state = REMOVED
                changed = True
        if changed:
            self._rebuild()
            self._failover()
        self._forget_unused()
        return changed

    def _rebuild(self) -> None:
        registered = [
            a
            for a in self.appliances.values()
            if a.in_scope and a.state not in (REMOVED, DRAINING, UNUSED)
        ]
        healthy = [a for a in registered if a.state == HEALTHY]
        self.fail_open = not healthy and bool(registered)
        chosen = sorted(healthy or registered, key=lambda a: a.key)
        if [a.key for a in chosen] != [a.key for a in self.candidates]:
            self.candidates = chosen
            self.table = maglev.build_table([a.key for a in chosen], self.table_size)

    def _failed(self, a: Appliance) -> bool:
        """Whether target failover moves `a`'s flows away (rebalance mode only)."""
        if a.state == UNHEALTHY:
            return self.on_unhealthy == REBALANCE
        if a.state == REMOVED:
            return self.on_deregistration == REBALANCE
        return False

    def _failover(self) -> None:
        if self.fail_open or not self.candidates:
            return  # nothing healthy to move flows to
        failed = {a.key for a in self.appliances.values() if a.flows and self._failed(a)}
        if not failed:
            return
        moved = 0
        for flow in self.flows.values():
            if flow.appliance.key in failed:
                target = self.pick(flow.key)
                if target is not None and target is not flow.appliance:
                    flow.appliance.flows -= 1
                    flow.appliance.rehashed_out += 1
                    target.flows += 1
                    target.rehashed_in += 1
                    flow.appliance = target
                    moved += 1
        self.events.append(f"rebalance: {moved} flows of {', '.join(sorted(failed))} rehashed")

    def _forget_unused(self) -> None:
        for key, a in list(self.appliances.items()):
            if a.state == REMOVED and a.flows == 0:
                del self.appliances[key]

    def pick(self, key: bytes) -> Appliance | None:
        """The appliance Maglev gives a new flow with this key (None: there is none)."""
        if not self.candidates:
            return None
        return self.candidates[maglev.lookup(self.table, flow_hash(key))]

    # ---- flows -----------------------------------------------------------------------
    def open(self, key: bytes, forward: bool, proto: int, endpoint: Any, now: float) -> Flow | None:
        """A new flow for `key` (its first packet goes `forward`), or None: no appliance."""
        appliance = self.pick(key)
        if appliance is None:
            return None
        cookie = self._cookie()
        idle = self.idle_tcp_s if proto == TCP else self.idle_other_s
        flow = Flow(key, cookie, appliance, endpoint, idle, now, forward)
        self.flows[key] = flow
        self.cookies[cookie] = flow
        appliance.flows += 1
        appliance.new_flows += 1
        return flow

    def _cookie(self) -> int:
        cookie = self.next_cookie
        while cookie in self.cookies or cookie == 0:
            cookie = (cookie + 1) % COOKIE_SPACE
        self.next_cookie = (cookie + 1) % COOKIE_SPACE
        return cookie

    def expire(self, now: float) -> int:
        """Forget flows idle for longer than their timeout; how many were forgotten."""
        gone = [f for f in self.flows.values() if now - f.last > f.idle]
        for flow in gone:
            del self.flows[flow.key]
            del self.cookies[flow.cookie]
            flow.appliance.flows -= 1
        self.expired += len(gone)
        if gone:
            self._forget_unused()
        return len(gone)

    def close(self, key: bytes) -> None:
        """Forget one flow now."""
        flow = self.flows.pop(key, None)
        if flow is not None:
            del self.cookies[flow.cookie]
            flow.appliance.flows -= 1
