"""Which host each switch port carries, and its counters from the controller's port stats.

Seen from the switch: what it received on a host's port (rx) is what the host sent. Shared by
the metrics (Lab/Host) and Auto Scaling (AWS/EC2 NetworkIn/NetworkOut of an instance).
"""

from __future__ import annotations

from testbed.messages import PortStats, StatsReply
from testbed.plan.network import NetworkPlan


def port_hosts(plan: NetworkPlan) -> dict[tuple[int, int], str]:
    """{(dpid, OpenFlow port): host} for every host interface ("HOST/ethN" for extra ones)."""
    dpid = {s.name: s.dpid for s in plan.switches}
    return {(dpid[h.switch], h.port): h.name for h in plan.attachments() if h.switch in dpid}


def host_ports(stats: StatsReply, hosts: dict[tuple[int, int], str]) -> dict[str, PortStats]:
    """{host: its port's counters} of one round of port statistics (hosts not in `hosts`,
    e.g. inter-switch links, are left out)."""
    out = {}
    for dpid, data in stats["switches"].items():
        for p in data["ports"]:
            host = hosts.get((int(dpid), p["port"]))
            if host is not None:
                out[host] = p
    return out
