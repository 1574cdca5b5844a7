"""CloudWatch-style NLB counters from flow statistics and conntrack, as pure logic.

NewFlowCount: a new flow's first packet, and only that one, passes table 28, which has an
entry per (selector, target): their packet counts are the new flows per target. Entries go
and come with targets (their counts restart at 0): the counter keeps running totals and
treats a count that went down as a fresh entry.
ProcessedBytes: bytes of the listener entries (client to LB) and of the reply entries of the
targets (LB to client). ActiveFlowCount: conntrack entries of the LB's target side zone.

The totals outlive the controller process: `state()` is saved after every round and a
restarted controller `restore()`s it, totals and the last count seen of each entry alike, so
its first round adds exactly what the entries counted meanwhile (no jump, nothing lost).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, TypedDict

from testbed.controllers.flows import TABLE_LB, TABLE_STEER
from testbed.controllers.nlb import TABLE_NLB_COUNT, NlbLogic
from testbed.messages import NewFlowCount, NlbCounterSnapshot, SwitchStats

# The tables whose flow statistics the counters read (asking for all would be slow: table 27
# has hundreds of Maglev entries per listener).
TABLES = (TABLE_STEER, TABLE_LB, TABLE_NLB_COUNT)

_REPLY = re.compile(r"reply=\(src=([\d.]+),dst=[\d.]+,sport=(\d+)")

# A flow entry whose count was seen: (dpid, match values...); JSON makes it a list.
EntryKey = tuple[Any, ...]


class CounterState(TypedDict):
    """What one controller leaves the next (the file $TESTBED_NLB_COUNTERS), as JSON."""

    new_flows: list[tuple[list[str], int]]  # [[lb, tg, target], total]
    bytes: dict[str, int]  # by load balancer
    last: list[tuple[list[Any], int]]  # [entry key, its last count]


class NlbCounters:
    def __init__(self, nlb: NlbLogic) -> None:
        self.nlb = nlb
        self.new_flows: dict[tuple[str, str, str], int] = defaultdict(int)
        self.bytes: dict[str, int] = defaultdict(int)
        self._last: dict[EntryKey, int] = {}

    def _delta(self, key: EntryKey, value: int) -> int:
        last = self._last.get(key)
        self._last[key] = value
        # First sight or a replaced entry (its count restarted): all of it is new.
        return value if last is None or value < last else value - last

    def update(self, switches: dict[str, SwitchStats]) -> None:
        """Fold one round of flow statistics (controller stats format) into the totals."""
        lb_of_index = {lb.index: lb.name for lb in self.nlb.lbs}
        node_lb = {n.ip: lb.name for lb in self.nlb.lbs for n in lb.nodes}
        for dpid, data in switches.items():
            for f in data["flows"]:
                m = f["match"]
                if f["table"] == TABLE_NLB_COUNT and "reg1" in m and "ipv4_dst" in m:
                    port = m.get("tcp_dst") or m.get("udp_dst")
                    if port is None:
                        continue  # not a count entry of a listener (they all match a port)
                    owner = self.nlb.count_owner(int(m["reg1"]), m["ipv4_dst"], int(port))
                    if owner is None:
                        continue
                    key: EntryKey = (dpid, m["reg1"], m["ipv4_dst"], port)
                    self.new_flows[owner] += self._delta(key, f["packets"])
                elif f["table"] == TABLE_LB and m.get("ipv4_dst") in node_lb:
                    key = (
                        dpid,
                        "lb",
                        m.get("ipv4_dst"),
                        m.get("ip_proto"),
                        m.get("tcp_dst") or m.get("udp_dst"),
                    )
                    self.bytes[node_lb[m["ipv4_dst"]]] += self._delta(key, f["bytes"])
                elif f["table"] == TABLE_STEER and f["priority"] == 100:
                    lb = self._reply_lb(m, lb_of_index)
                    if lb:
                        key = (
                            dpid,
                            "reply",
                            m.get("ipv4_src"),
                            m.get("ip_proto"),
                            m.get("tcp_src") or m.get("udp_src"),
                        )
                        self.bytes[lb] += self._delta(key, f["bytes"])

    def _reply_lb(self, match: dict[str, Any], lb_of_index: dict[int, str]) -> str | None:
        ip = match.get("ipv4_src")
        for (lb, _tg), targets in self.nlb.targets.items():
            if any(t.ip == ip for t in targets):
                return lb
        return None

    def state(self) -> CounterState:
        """Everything the counters know, as JSON-friendly values (see restore)."""
        return CounterState(
            new_flows=[(list(k), v) for k, v in self.new_flows.items()],
            bytes=dict(self.bytes),
            last=[(list(k), v) for k, v in self._last.items()],
        )

    def restore(self, state: CounterState) -> None:
        """Continue from a state() saved by an earlier controller of the same lab."""
        self.new_flows = defaultdict(int)
        for (lb, tg, target), total in state.get("new_flows", []):
            self.new_flows[(lb, tg, target)] = total
        self.bytes = defaultdict(int, state.get("bytes", {}))
        self._last = {tuple(k): v for k, v in state.get("last", [])}

    def snapshot(self) -> NlbCounterSnapshot:
        return NlbCounterSnapshot(
            new_flows=[
                NewFlowCount(lb=k[0], tg=k[1], target=k[2], count=v)
                for k, v in sorted(self.new_flows.items())
            ],
            processed_bytes=dict(self.bytes),
        )


def active_flows(conntrack_dump: Iterable[str]) -> dict[tuple[str, int], int]:
    """(target ip, port) -> established flows, from the lines of `ovs-appctl
    dpctl/dump-conntrack`."""
    out: dict[tuple[str, int], int] = defaultdict(int)
    for line in conntrack_dump:
        if line.startswith("tcp") and "state=ESTABLISHED" not in line:
            continue  # opening or closing: not an active flow
        m = _REPLY.search(line)
        if m:
            out[(m.group(1), int(m.group(2)))] += 1
    return dict(out)
