"""A GWLB node whose traffic the switch steers (the switch datapath, issue 15).

The controller programs the node's work into Open vSwitch: conntrack, a Maglev slot table,
GENEVE encapsulation from the node's address to the appliance and back. The node process
opens no packet socket and no UDP 6081 socket; what it still does:
- runs the health checker from its address and polls the holder for the appliances' states
  (the same Steering object keeps states, candidates and events);
- reads the switch (testbed.gwlb.switch_view): the GWLB tables' counters (packets in per
  endpoint; per appliance new flows, rehashed in/out, tx/rx packets and bytes, summed across
  flow replacement) when /status asks (at most POLL_S old) and every IDLE_S; the flows
  themselves (conntrack entries of the GWLB's zones: labels name the appliance and the
  cookie; with 2-/3-tuple stickiness the learned pair table) when /flows asks, and every
  POLL_S for WARM_S after (ages count from the node's first sight). Reads cost ovs-vswitchd's
  main thread, which also forwards: a node nobody asks reads little;
- serves the same /status, /flows and status file as the node datapath ("datapath": "switch";
  per-flow fwd/rev packet counts are None: the userspace conntrack keeps none, rows say
  whether the flow is `established` instead).
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

from testbed.gwlb.flowkey import FIVE_TUPLE, endpoint_bytes
from testbed.gwlb.node import NodeConfig, _mtime, changed_endpoints, status_header
from testbed.gwlb.steering import REMOVED, Steering, TargetState
from testbed.gwlb.switch_view import (
    COUNTER_TABLES,
    TABLE_GWLB_STICKY,
    Accumulator,
    CtEntry,
    LearnedPair,
    SwitchCounters,
    SwitchRead,
    learned_pairs,
    read_switch,
    switch_counters,
)

POLL_S = 0.5  # an answer's counters or flows are at most this old
IDLE_S = 2.0  # counters read this often when nobody asks (the status file, events)
WARM_S = 30.0  # flows are read every POLL_S for this long after someone asked for them
DUTY = 0.1  # at most this share of the time spent reading conntrack (a big table is slow)
MAX_EVENTS = 200


def switch_zones(config: NodeConfig, lb_zones: tuple[int, int]) -> tuple[int, ...]:
    """conntrack zones of the node's served endpoints: the GWLB's zone_dnat for endpoints in
    address space 0, zone_snat for the others (common.md)."""
    zone_dnat, zone_snat = lb_zones
    zones = {zone_snat if e.mac[1] else zone_dnat for e in config.endpoints if e.served}
    return tuple(sorted(zones))


def _end(ip: str, port: int | None) -> tuple[bytes, str]:
    raw = endpoint_bytes(ip if port is None else f"{ip}:{port}")
    return raw, (ip if port is None else f"{ip}:{port}")


def ct_row(entry: CtEntry, stickiness: str) -> dict[str, Any]:
    """A conntrack entry as a flow row's ends, in the node's key order (the smaller end first,
    ports only for 5-tuple keys of port protocols)."""
    ports = stickiness == FIVE_TUPLE and entry.sport is not None
    a = _end(entry.src, entry.sport if ports else None)
    b = _end(entry.dst, entry.dport if ports else None)
    first, second = (a, b) if a[0] <= b[0] else (b, a)
    return {"proto": entry.proto, "a": first[1], "b": second[1]}


def pair_row(pair: LearnedPair) -> dict[str, Any]:
    a, b = _end(pair.src, None), _end(pair.dst, None)
    first, second = (a, b) if a[0] <= b[0] else (b, a)
    return {"proto": pair.proto, "a": first[1], "b": second[1]}


class SwitchNode:
    """The node's view of the switch that does its work, and its appliance states."""

    datapath = "switch"

    def __init__(
        self,
        host: str,
        ip: str,
        az: str,
        config: NodeConfig,
        bridge: str,
        tunnel_port: int,
        plan: Path | None = None,
        reader: Any = read_switch,
    ) -> None:
        self.host, self.ip, self.az, self.config = host, ip, az, config
        self.bridge, self.tunnel_port = bridge, tunnel_port
        self.plan, self.plan_seen = plan, _mtime(plan)
        self.reader = reader  # (bridge, tables, zones) -> SwitchRead: tests give their own
        lb = config.lb
        self.lb_zones = (lb.zone_dnat, lb.zone_snat)
        self.zones = switch_zones(config, self.lb_zones)
        self.steering = Steering(
            on_unhealthy=config.on_unhealthy,
            on_deregistration=config.on_deregistration,
            az=az,
            cross_zone=config.cross_zone,
            idle_tcp_s=lb.idle_tcp_s,
            idle_other_s=lb.idle_udp_s,
        )
        self.sticky = config.stickiness != FIVE_TUPLE
        self.pending: list[TargetState] | None = None
        self.events: list[str] = []
        self.keys_by_ip: dict[str, str] = {}  # every appliance ever known: rows of removed ones
        self.accumulator = Accumulator()
        self.counters = SwitchCounters()
        self.rehashed_seen: dict[str, int] = {}
        self.rows: list[dict[str, Any]] = []  # the flows at the last read, oldest first
        self.first_seen: dict[tuple, float] = {}  # flow -> when the node first saw it
        self.established: set[tuple] = set()
        self.flows_read_at = 0.0  # monotonic
        self.flows_read_took = 0.0
        self.flows_wanted_at = -WARM_S
        self.expired = 0
        self.read_errors: list[str] = []
        self.counters_read_at = 0.0  # wall clock
        self.lock = threading.Lock()  # one reader of the switch at a time
        self.stopping = False
        self.started = time.time()

    # ---- appliance states --------------------------------------------------------------
    def apply_targets(self) -> None:
        """Take the poller's latest appliance states."""
        states, self.pending = self.pending, None
        if states is None:
            return
        self.steering.set_targets(states)
        for a in self.steering.appliances.values():
            self.keys_by_ip[a.ip] = a.key
        self._log(self.steering.events)
        self.steering.events.clear()

    def _log(self, events: list[str]) -> None:
        if not events:
            return
        stamp = time.strftime("%H:%M:%S")
        for event in events:
            print(f"{stamp} {event}", flush=True)
        self.events = (self.events + [f"{time.time():.3f} {e}" for e in events])[-MAX_EVENTS:]

    def reload_endpoints(self) -> bool:
        """The endpoints of the plan file as it is now, if it changed: their zones are read from
        then on. True when they changed."""
        self.plan_seen, config = changed_endpoints(
            self.plan, self.plan_seen, self.host, self.config
        )
        if config is None:
            return False
        self.config = config
        self.zones = switch_zones(self.config, self.lb_zones)
        served = ", ".join(f"{e.name} ({e.ip})" for e in config.endpoints if e.served) or "none"
        print(f"{time.strftime('%H:%M:%S')} endpoints now {served}", flush=True)
        return True

    # ---- reading the switch --------------------------------------------------------------
    def read_counters(self, max_stale_s: float = 0.0) -> None:
        """One read of the GWLB tables' counters (none if the last is recent enough)."""
        with self.lock:
            if time.time() - self.counters_read_at < max_stale_s:
                return
            read = self.reader(self.bridge, COUNTER_TABLES, ())
            self.take_counters(read)

    def take_counters(self, read: SwitchRead) -> None:
        """Counters from a read of the GWLB tables (events for flows the switch rehashed)."""
        self.read_errors = list(read.errors)
        self.accumulator.update(read.flows, read.tables)
        self.counters = switch_counters(self.accumulator.totals())
        self.counters_read_at = read.time
        moved = []
        for ip, c in self.counters.appliances.items():
            before = self.rehashed_seen.get(ip, 0)
            if c.rehashed_out > before:
                key = self.keys_by_ip.get(ip, ip)
                moved.append(f"rebalance: {c.rehashed_out - before} flows of {key} rehashed")
            self.rehashed_seen[ip] = c.rehashed_out
        self._log(moved)

    def read_flows(self, max_stale_s: float = POLL_S) -> None:
        """Read the flows (conntrack, learned pairs) unless the last read is recent enough."""
        with self.lock:
            if time.monotonic() - self.flows_read_at < max_stale_s:
                return
            tables = (TABLE_GWLB_STICKY,) if self.sticky else ()
            read = self.reader(self.bridge, tables, () if self.sticky else self.zones)
            self.take_flows(read, time.monotonic())

    def take_flows(self, read: SwitchRead, now: float) -> None:
        """The node's flow rows from a read of conntrack (5-tuple) or of the learned pairs."""
        self.flows_read_at, self.flows_read_took = now, read.took_s
        if read.errors:
            self.read_errors = list(read.errors)
        served = {e.number: e for e in self.config.endpoints if e.served}
        found: list[tuple[tuple, dict[str, Any]]] = []
        if self.sticky:
            seen_pairs = set()
            for pair in learned_pairs(read.flows):
                row = pair_row(pair)
                ident = (row["proto"], row["a"], row["b"])
                ep = served.get((pair.cookie >> 16) & 0x7FFF)
                if ident in seen_pairs or ep is None:
                    continue
                seen_pairs.add(ident)
                self.first_seen.setdefault(ident, now - pair.duration_s)
                found.append((ident, self._row(row, pair.appliance_ip, pair.cookie, ep.name, None)))
        else:
            for entry in read.conntrack:
                ep = served.get(entry.endpoint_number or 0)
                if ep is None:
                    continue
                ident = entry.ident
                reply = entry.reply_seen()
                if reply:
                    self.established.add(ident)
                self.first_seen.setdefault(ident, now)
                row = ct_row(entry, self.config.stickiness)
                if entry.state:
                    row["state"] = entry.state
                found.append(
                    (
                        ident,
                        self._row(
                            row,
                            entry.appliance_ip,
                            entry.cookie,
                            ep.name,
                            ident in self.established,
                        ),
                    )
                )
        current = {ident for ident, _ in found}
        gone = [i for i in self.first_seen if i not in current]
        for ident in gone:
            del self.first_seen[ident]
            self.established.discard(ident)
        self.expired += len(gone)
        found.sort(key=lambda x: self.first_seen[x[0]])
        for ident, row in found:
            row["created"] = self.first_seen[ident]
        self.rows = [row for _, row in found]

    def _row(
        self, row: dict[str, Any], ip: str, cookie: int, endpoint: str, established: bool | None
    ) -> dict[str, Any]:
        return {
            **row,
            "appliance": self.keys_by_ip.get(ip, ip),
            "appliance_ip": ip,
            "cookie": cookie,
            "endpoint": endpoint,
            "established": established,
            "fwd_packets": None,  # the userspace datapath's conntrack counts nothing
            "rev_packets": None,
            "bytes": None,
        }

    def run(self) -> None:
        """Poll the switch until stopping is set."""
        next_flows = 0.0
        while not self.stopping:
            if self.pending is not None:
                self.apply_targets()
            self.reload_endpoints()
            try:
                self.read_counters(max_stale_s=IDLE_S - POLL_S / 2)
                now = time.monotonic()
                if now - self.flows_wanted_at < WARM_S and now >= next_flows:
                    self.read_flows()
                    # a big conntrack table: read it less often
                    next_flows = now + max(POLL_S, self.flows_read_took / DUTY)
            except Exception as exc:  # the view matters less than staying up
                print(f"node: switch not read: {exc}", file=sys.stderr, flush=True)
            time.sleep(POLL_S)

    # ---- views -------------------------------------------------------------------------
    def status(self, fresh: bool = False) -> dict[str, Any]:
        """Counters of the node (from the switch) and of each appliance; fresh: read at most
        POLL_S ago (else as last read)."""
        if fresh:
            self.read_counters(max_stale_s=POLL_S)
        s = self.steering
        c = self.counters
        served = {e.number for e in self.config.endpoints if e.served}
        on: dict[str, int] = {}
        for row in self.rows:
            on[row["appliance_ip"]] = on.get(row["appliance_ip"], 0) + 1
        appliances = []
        listed = set()
        for a in list(s.appliances.values()):
            appliances.append(self._appliance(a.as_dict(), a.ip, on))
            listed.add(a.ip)
        for ip, key in self.keys_by_ip.items():  # removed, with flows still on them
            if ip not in listed and on.get(ip):
                appliances.append(self._appliance({"key": key, "ip": ip, "state": REMOVED}, ip, on))
        return {
            **status_header(
                self.host, self.az, self.ip, self.datapath, self.config, s, self.started
            ),
            "bridge": self.bridge,
            "tunnel_port": self.tunnel_port,
            "zones": list(self.zones),
            "endpoints": [
                {
                    "name": e.name,
                    "ip": e.ip,
                    "served": e.served,
                    "id": f"{e.id:#018x}",
                    "number": e.number,
                }
                for e in self.config.endpoints
            ],
            "flows": len(self.rows),
            "flows_read_s_ago": (
                round(time.monotonic() - self.flows_read_at, 3) if self.flows_read_at else None
            ),
            "expired_flows": self.expired,
            "new_flows": sum(a["new_flows"] for a in appliances),
            "packets_in": sum(v for n, v in c.packets_in.items() if n in served),
            "bytes_in": sum(v for n, v in c.bytes_in.items() if n in served),
            "packets_back": sum(a["rx_packets"] for a in appliances),
            "bytes_back": sum(a["rx_bytes"] for a in appliances),
            "conntrack_states": dict(c.states),
            # the node process's own data path: none (no packet or GENEVE socket)
            "process_packets": 0,
            "ignored": 0,
            "no_appliance": 0,
            "unknown_endpoint": 0,
            "bad_geneve": 0,
            "send_errors": 0,
            "reopened_flows": 0,
            "candidates": [a.key for a in s.candidates],
            "appliances": appliances,
            "counters_read_at": self.counters_read_at,
            "flows_replaced": self.accumulator.replaced,
            "read_errors": self.read_errors[-5:],
            "events": self.events[-50:],
        }

    def _appliance(self, base: dict[str, Any], ip: str, on: dict[str, int]) -> dict[str, Any]:
        c = self.counters.appliances.get(ip)
        counted = {
            name: getattr(c, name) if c else 0
            for name in (
                "new_flows",
                "rehashed_in",
                "rehashed_out",
                "tx_packets",
                "tx_bytes",
                "rx_packets",
                "rx_bytes",
            )
        }
        return {
            **base,
            **counted,
            "flows": on.get(ip, 0),
            "fwd_packets": None,
            "rev_packets": None,
        }

    def flow_rows(
        self, limit: int = 10000, end: str | None = None, max_age_s: float | None = None
    ) -> list[dict[str, Any]]:
        """The flows as the switch holds them, one row per flow, oldest first (as
        Node.flow_rows; ages from the node's first sight of each flow)."""
        want = endpoint_bytes(end) if end else None  # ValueError: the admin answers 400
        self.flows_wanted_at = time.monotonic()
        self.read_flows()
        now = time.monotonic()
        rows = []
        for r in self.rows:
            age = now - r["created"]
            if max_age_s is not None and age > max_age_s:
                continue
            if want is not None and not any(
                endpoint_bytes(e)[: len(want)] == want for e in (r["a"], r["b"])
            ):
                continue
            rows.append(
                {
                    **{k: v for k, v in r.items() if k != "created"},
                    "age_s": round(age, 3),
                    "idle_s": None,
                }
            )
        return rows[-limit:] if limit > 0 else []
