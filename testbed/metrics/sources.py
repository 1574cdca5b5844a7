"""Metric sources: each returns a snapshot of (namespace, metric, dimensions, value, kind).

kind "counter": a cumulative count; the collector reports its increase per second.
kind "gauge": a level (e.g. HealthyHostCount); reported as sampled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from testbed.lab import rpc
from testbed.lab.controller_proc import CONTROLLER_SOCK
from testbed.lab.plan import NetworkPlan


@dataclass(frozen=True)
class Sample:
    namespace: str
    metric: str
    load_balancer: str
    target_group: str
    target: str
    value: float
    unit: str
    kind: str  # counter | gauge

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.namespace, self.metric, self.load_balancer, self.target_group,
                self.target)


class Source(Protocol):
    name: str

    def snapshot(self) -> list[Sample]: ...


def controller_stats(lab: Any, flows: bool = True) -> dict[str, Any]:
    """Port and flow counters of the lab's switches, from its controller."""
    reply = rpc.call(str(lab.dir / CONTROLLER_SOCK), {"op": "stats", "flows": flows},
                     timeout=10)
    if not reply.get("ok"):
        raise RuntimeError(reply.get("error", "controller stats failed"))
    return reply


class HostPortSource:
    """Bytes and packets on every host's switch port, from OpenFlow port statistics.

    Seen from the switch: its rx is what the host sent. Namespace Lab/Host, target = host."""

    name = "ports"

    def __init__(self, lab: Any, plan: NetworkPlan) -> None:
        self.lab = lab
        self.port_host = {(next(s.dpid for s in plan.switches if s.name == h.switch), h.port):
                          h.name for h in plan.hosts}

    def snapshot(self) -> list[Sample]:
        stats = controller_stats(self.lab, flows=False)
        out = []
        for dpid, data in stats["switches"].items():
            for p in data["ports"]:
                host = self.port_host.get((int(dpid), p["port"]))
                if host is None:
                    continue
                for metric, field, unit in (("SentBytes", "rx_bytes", "Bytes"),
                                            ("ReceivedBytes", "tx_bytes", "Bytes"),
                                            ("SentPackets", "rx_packets", "Count"),
                                            ("ReceivedPackets", "tx_packets", "Count"),
                                            ("DroppedPackets", "tx_dropped", "Count")):
                    out.append(Sample("Lab/Host", metric, "", "", host, float(p[field]),
                                      unit, "counter"))
        return out


class FabricDropSource:
    """Packets the fabric dropped on purpose (no route, blocked by AWS rules, spoofed),
    from the packet counters of the priority-0 drop entries. Namespace Lab/Fabric."""

    name = "fabric"

    def __init__(self, lab: Any, plan: NetworkPlan) -> None:
        self.lab = lab
        self.switch_name = {s.dpid: s.name for s in plan.switches}

    def snapshot(self) -> list[Sample]:
        stats = controller_stats(self.lab, flows=True)
        out = []
        for dpid, data in stats["switches"].items():
            dropped = sum(f["packets"] for f in data["flows"] if f["priority"] in (0, 1)
                          and f["table"] not in (10,))
            out.append(Sample("Lab/Fabric", "DroppedByPolicy", "", "",
                              self.switch_name.get(int(dpid), dpid), float(dropped), "Count",
                              "counter"))
        return out


# name -> class taking (lab, plan); load balancer issues add theirs here.
SOURCES: dict[str, Any] = {"ports": HostPortSource, "fabric": FabricDropSource}
