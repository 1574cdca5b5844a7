"""Metric sources: each returns a snapshot of (namespace, metric, dimensions, value, kind).

kind "counter": a cumulative count; the collector reports its increase per second.
kind "gauge": a level (e.g. HealthyHostCount); reported as sampled.
kind "rate": a cumulative count whose increase per second is the unit itself (CPU seconds x 100
  -> percent of one CPU).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from testbed import asks
from testbed.alb import stats
from testbed.alb.config import node_files
from testbed.alb.patterns import server_name
from testbed.lab import cgroups
from testbed.lab.api import Lab
from testbed.lab.port_counters import host_ports, port_hosts
from testbed.messages import StatsReply, TargetDescription
from testbed.naming import CONTROLLER_SOCK, HOLDER_SOCK
from testbed.plan.network import NetworkPlan


@dataclass(frozen=True)
class Sample:
    namespace: str
    metric: str
    load_balancer: str
    target_group: str
    target: str
    value: float
    unit: str
    kind: str  # counter | gauge | rate

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.namespace, self.metric, self.load_balancer, self.target_group, self.target)


class Source(Protocol):
    name: str

    def snapshot(self) -> list[Sample]: ...


def controller_stats(
    lab: Lab, flows: bool = True, tables: tuple[int, ...] | None = None
) -> StatsReply:
    """Port and flow counters of the lab's switches (flows of `tables` only, if given)."""
    return asks.controller_stats(str(lab.dir / CONTROLLER_SOCK), flows, tables)


def target_rows(lab: Lab) -> list[TargetDescription]:
    """Every target's health (describe-target-health rows) from the lab's holder."""
    return asks.holder_targets(str(lab.dir / HOLDER_SOCK))["targets"]


class HostPortSource:
    """Bytes and packets on every host's switch port, from OpenFlow port statistics.

    Seen from the switch: its rx is what the host sent. Namespace Lab/Host, target = host
    (an extra interface: "HOST/eth1", its own port)."""

    name = "ports"

    def __init__(self, lab: Lab, plan: NetworkPlan) -> None:
        self.lab = lab
        self.port_host = port_hosts(plan)

    def snapshot(self) -> list[Sample]:
        stats = controller_stats(self.lab, flows=False)
        out = []
        for host, p in host_ports(stats, self.port_host).items():
            for metric, value, unit in (
                ("SentBytes", p["rx_bytes"], "Bytes"),
                ("ReceivedBytes", p["tx_bytes"], "Bytes"),
                ("SentPackets", p["rx_packets"], "Count"),
                ("ReceivedPackets", p["tx_packets"], "Count"),
                ("DroppedPackets", p["tx_dropped"], "Count"),
            ):
                out.append(Sample("Lab/Host", metric, "", "", host, float(value), unit, "counter"))
        return out


# (table, priority) of the entries that drop what the VPC rules do not allow (see
# testbed.controllers.forwarding): no route, blocked realm, spoofed source, unknown destination.
DROP_ENTRIES = {(0, 0), (20, 1), (21, 0), (22, 0), (30, 0), (40, 0), (50, 0)}
DROP_TABLES = tuple(sorted({t for t, _p in DROP_ENTRIES}))


class FabricDropSource:
    """Packets the fabric dropped on purpose (no route, blocked by AWS rules, spoofed),
    from the packet counters of the priority-0 drop entries. Namespace Lab/Fabric."""

    name = "fabric"

    def __init__(self, lab: Lab, plan: NetworkPlan) -> None:
        self.lab = lab
        self.switch_name = {s.dpid: s.name for s in plan.switches}

    def snapshot(self) -> list[Sample]:
        stats = controller_stats(self.lab, flows=True, tables=DROP_TABLES)
        out = []
        for dpid, data in stats["switches"].items():
            dropped = sum(
                f["packets"] for f in data["flows"] if (f["table"], f["priority"]) in DROP_ENTRIES
            )
            out.append(
                Sample(
                    "Lab/Fabric",
                    "DroppedByPolicy",
                    "",
                    "",
                    self.switch_name.get(int(dpid), dpid),
                    float(dropped),
                    "Count",
                    "counter",
                )
            )
        return out


class SecurityDropSource:
    """Packets dropped by security groups and network ACLs, from the packet counters of their
    drop entries (testbed.controllers.security.SecurityLogic.drop_owner names each entry's
    port or ACL). Namespace Lab/Security:

    - PortDrops, per port (host or "HOST/ethN"), target_group = direction (ingress|egress);
    - SecurityGroupDrops, per group: a port's drops count for EACH of its groups (a packet
      none of the port's groups allowed was refused by every one of them), so the sum over
      groups exceeds the packets dropped when ports carry several groups;
    - NetworkAclDrops, per ACL, target_group = direction (in|out): its deny entries and its
      implicit final deny.
    """

    name = "security"
    NAMESPACE = "Lab/Security"

    def __init__(self, lab: Lab, plan: NetworkPlan) -> None:
        from testbed.controllers.security import STAT_TABLES, SecurityLogic

        self.lab = lab
        self.logic = SecurityLogic(plan)
        self.tables = STAT_TABLES
        self.groups_of = {p.name: tuple(p.groups or ()) for p in self.logic.ports}
        self.acls = [n.name for n in plan.network_acls]

    def snapshot(self) -> list[Sample]:
        if not self.groups_of and not self.acls:
            return []  # nothing filters: no need to ask the switches
        return self.samples(controller_stats(self.lab, flows=True, tables=self.tables))

    def samples(self, stats: StatsReply) -> list[Sample]:
        """The samples of one round of flow statistics (every port, group and ACL, 0 when
        nothing was dropped, so that rates start at the first round)."""
        ports = {(p, d): 0 for p in self.groups_of for d in ("ingress", "egress")}
        acls = {(a, d): 0 for a in self.acls for d in ("in", "out")}
        for dpid, data in stats["switches"].items():
            for f in data["flows"]:
                owner = self.logic.drop_owner(int(dpid), f["table"], f["priority"], f["match"])
                if owner is None:
                    continue
                kind, name = owner
                if kind.startswith("sg-"):
                    ports[(name, kind.removeprefix("sg-"))] += f["packets"]
                else:
                    acls[(name, kind.removeprefix("nacl-"))] += f["packets"]
        groups: dict[tuple[str, str], int] = {}
        for (port, direction), n in ports.items():
            for g in self.groups_of[port]:
                groups[(g, direction)] = groups.get((g, direction), 0) + n
        out = []
        for metric, counts in (
            ("PortDrops", ports),
            ("SecurityGroupDrops", groups),
            ("NetworkAclDrops", acls),
        ):
            for (name, direction), n in sorted(counts.items()):
                out.append(
                    Sample(
                        self.NAMESPACE, metric, "", direction, name, float(n), "Count", "counter"
                    )
                )
        return out


class NlbSource:
    """AWS/NetworkELB metrics: NewFlowCount, ProcessedBytes, ActiveFlowCount per load
    balancer, target group and target, and Healthy/UnHealthyHostCount per target group.

    TLS listeners end in HAProxy on the nodes, out of the switches' sight: their metrics
    (NewFlowCount_TLS, ..., testbed.alb.stats.nlb_tls_metrics) come from the nodes' `show
    stat`, and the load balancer's NewFlowCount, ActiveFlowCount and ProcessedBytes include
    them, as AWS's do."""

    name = "nlb"
    NAMESPACE = "AWS/NetworkELB"

    def __init__(self, lab: Lab, plan: NetworkPlan) -> None:
        self.lab = lab
        self.lbs = [lb.name for lb in plan.load_balancers if lb.type == "network"]
        self.tls = {
            lb.name: (
                [node_files(lab.dir, n.host).stats_socket for n in lb.nodes],
                [lis.name for lis in lb.tls_listeners],
            )
            for lb in plan.load_balancers
            if lb.type == "network" and lb.tls_listeners
        }

    def tls_samples(self) -> list[Sample]:
        """The TLS listeners' metrics of every NLB that has some (per load balancer)."""
        out = []
        for lb, (sockets, frontends) in self.tls.items():
            nodes = stats.read_nodes(sockets)
            for metric, _tg, _target, value, unit, kind in stats.nlb_tls_metrics(nodes, frontends):
                out.append(Sample(self.NAMESPACE, metric, lb, "", "", value, unit, kind))
        return out

    def snapshot(self) -> list[Sample]:
        if not self.lbs:
            return []

        stats = asks.controller_nlb_stats(str(self.lab.dir / CONTROLLER_SOCK))
        rows = target_rows(self.lab)
        ns = self.NAMESPACE
        out = self.tls_samples()
        tls = {(s.load_balancer, s.metric): s.value for s in out}
        per_lb: dict[str, float] = {}
        per_tg: dict[tuple[str, str], float] = {}
        for nf in stats["new_flows"]:
            out.append(
                Sample(
                    ns,
                    "NewFlowCount",
                    nf["lb"],
                    nf["tg"],
                    nf["target"],
                    float(nf["count"]),
                    "Count",
                    "counter",
                )
            )
            per_lb[nf["lb"]] = per_lb.get(nf["lb"], 0) + nf["count"]
            per_tg[(nf["lb"], nf["tg"])] = per_tg.get((nf["lb"], nf["tg"]), 0) + nf["count"]
        for lb in self.lbs:
            new_flows = per_lb.get(lb, 0) + tls.get((lb, "NewFlowCount_TLS"), 0.0)
            out.append(Sample(ns, "NewFlowCount", lb, "", "", float(new_flows), "Count", "counter"))
            processed = stats["processed_bytes"].get(lb, 0) + tls.get(
                (lb, "ProcessedBytes_TLS"), 0.0
            )
            out.append(
                Sample(ns, "ProcessedBytes", lb, "", "", float(processed), "Bytes", "counter")
            )
        for (lb, tg), n in per_tg.items():
            out.append(Sample(ns, "NewFlowCount", lb, tg, "", float(n), "Count", "counter"))
        key_of = {
            (r["LoadBalancer"], _ip_port(r)): f"{r['Target']['Id']}:{r['Target']['Port']}"
            for r in rows
        }
        totals: dict[str, int] = {}
        for a in stats["active_flows"]:
            target = key_of.get((a["lb"], f"{a['ip']}:{a['port']}"), f"{a['ip']}:{a['port']}")
            out.append(
                Sample(
                    ns, "ActiveFlowCount", a["lb"], "", target, float(a["count"]), "Count", "gauge"
                )
            )
            totals[a["lb"]] = totals.get(a["lb"], 0) + a["count"]
        for lb in self.lbs:
            active = totals.get(lb, 0) + tls.get((lb, "ActiveFlowCount_TLS"), 0.0)
            out.append(Sample(ns, "ActiveFlowCount", lb, "", "", float(active), "Count", "gauge"))
        health: dict[tuple[str, str], list[int]] = {}
        for r in rows:
            counts = health.setdefault((r["LoadBalancer"], r["TargetGroup"]), [0, 0])
            state = r["TargetHealth"]["State"]
            counts[0] += state == "healthy"
            counts[1] += state == "unhealthy"
        for (lb, tg), (ok, bad) in health.items():
            out.append(Sample(ns, "HealthyHostCount", lb, tg, "", float(ok), "Count", "gauge"))
            out.append(Sample(ns, "UnHealthyHostCount", lb, tg, "", float(bad), "Count", "gauge"))
        return out


class AlbSource:
    """AWS/ApplicationELB metrics of every ALB: HAProxy's `show stat` on each node (its
    stats socket, reached from here through the file system) and target health from the
    holder (see testbed.alb.stats for what each metric is made of)."""

    name = "alb"

    def __init__(self, lab: Lab, plan: NetworkPlan) -> None:
        self.lab = lab
        self.lbs = {
            lb.name: [node_files(lab.dir, n.host).stats_socket for n in lb.nodes]
            for lb in plan.load_balancers
            if lb.type == "application"
        }

    def snapshot(self) -> list[Sample]:
        if not self.lbs:
            return []

        rows = target_rows(self.lab)
        out = []
        for lb, sockets in self.lbs.items():
            nodes = stats.read_nodes(sockets)
            keys = {
                server_name(_target_key(r)): _target_key(r) for r in rows if r["LoadBalancer"] == lb
            }
            for metric, tg, target, value, unit, kind in stats.metrics(lb, nodes):
                out.append(
                    Sample(
                        stats.NAMESPACE, metric, lb, tg, keys.get(target, target), value, unit, kind
                    )
                )
            for tg, (ok, bad) in sorted(stats.health_counts(rows, lb).items()):
                out.append(
                    Sample(
                        stats.NAMESPACE, "HealthyHostCount", lb, tg, "", float(ok), "Count", "gauge"
                    )
                )
                out.append(
                    Sample(
                        stats.NAMESPACE,
                        "UnHealthyHostCount",
                        lb,
                        tg,
                        "",
                        float(bad),
                        "Count",
                        "gauge",
                    )
                )
        return out


class ClbSource:
    """AWS/ELB metrics of every Classic Load Balancer (load_balancer = its logical id, AWS's
    LoadBalancerName dimension): HAProxy's `show stat` on each node and instance health from
    the holder (see testbed.alb.stats.classic_metrics for what each metric is made of)."""

    name = "clb"

    def __init__(self, lab: Lab, plan: NetworkPlan) -> None:
        self.lab = lab
        self.lbs = {
            lb.name: (
                [node_files(lab.dir, n.host).stats_socket for n in lb.nodes],
                {lis.name: lis.protocol or "TCP" for lis in lb.listeners},
            )
            for lb in plan.load_balancers
            if lb.type == "classic"
        }

    def snapshot(self) -> list[Sample]:
        if not self.lbs:
            return []
        rows = target_rows(self.lab)
        ns = stats.CLASSIC_NAMESPACE
        out = []
        for lb, (sockets, protocols) in self.lbs.items():
            nodes = stats.read_nodes(sockets)
            for metric, _tg, _target, value, unit, kind in stats.classic_metrics(nodes, protocols):
                out.append(Sample(ns, metric, lb, "", "", value, unit, kind))
            ok = bad = 0
            for counts in stats.health_counts(rows, lb).values():
                ok, bad = ok + counts[0], bad + counts[1]
            out.append(Sample(ns, "HealthyHostCount", lb, "", "", float(ok), "Count", "gauge"))
            out.append(Sample(ns, "UnHealthyHostCount", lb, "", "", float(bad), "Count", "gauge"))
        return out


class InstanceSource:
    """AWS/EC2 per instance (target = its host): CPUUtilization from the host's own cgroup
    (percent of one CPU; testbed.lab.cgroups), NetworkIn / NetworkOut (bytes) from its switch
    port. Instances Auto Scaling launches are included as they come (the plan is read each
    time); target_group is the instance's Auto Scaling group (logical id), if any."""

    name = "instances"
    NAMESPACE = "AWS/EC2"

    def __init__(self, lab: Lab, plan: NetworkPlan) -> None:
        self.lab = lab

    def snapshot(self) -> list[Sample]:
        plan = self.lab.plan
        instances = [h for h in plan.hosts if h.kind == "instance"]
        if not instances:
            return []
        ports = host_ports(controller_stats(self.lab, flows=False), port_hosts(plan))
        out = []
        for h in instances:
            group = h.asg or ""
            used = cgroups.cpu_usage_s(self.lab.name, h.name)
            if used is not None:
                # A counter of CPU seconds x 100: its rate is the percent of one CPU.
                out.append(
                    Sample(
                        self.NAMESPACE,
                        "CPUUtilization",
                        "",
                        group,
                        h.name,
                        used * 100,
                        "Percent",
                        "rate",
                    )
                )
            port = ports.get(h.name)
            if port is not None:
                for metric, value in (
                    ("NetworkIn", port["tx_bytes"]),
                    ("NetworkOut", port["rx_bytes"]),
                ):
                    out.append(
                        Sample(
                            self.NAMESPACE,
                            metric,
                            "",
                            group,
                            h.name,
                            float(value),
                            "Bytes",
                            "counter",
                        )
                    )
        return out


class AutoScalingSource:
    """AWS/AutoScaling group metrics from the lab's holder (target = the group's logical id):
    GroupMinSize, GroupMaxSize, GroupDesiredCapacity, GroupInServiceInstances,
    GroupPendingInstances, GroupTerminatingInstances, GroupTotalInstances (gauges)."""

    name = "autoscaling"
    NAMESPACE = "AWS/AutoScaling"

    def __init__(self, lab: Lab, plan: NetworkPlan) -> None:
        self.lab = lab
        self.enabled = bool(self.lab.state.get("auto_scaling_groups"))

    def snapshot(self) -> list[Sample]:
        if not self.enabled:
            return []
        out = []
        for g in asks.holder_asg_describe(str(self.lab.dir / HOLDER_SOCK))["groups"]:
            for metric, value in group_metrics(g).items():
                out.append(
                    Sample(
                        self.NAMESPACE,
                        metric,
                        "",
                        "",
                        g.get("LogicalId") or g["AutoScalingGroupName"],
                        float(value),
                        "Count",
                        "gauge",
                    )
                )
        return out


def group_metrics(group: dict) -> dict[str, int]:
    """The AWS/AutoScaling metrics of a describe-auto-scaling-groups entry."""
    states = [i.get("LifecycleState", "") for i in group.get("Instances", [])]
    live = [s for s in states if s != "Terminated"]
    return {
        "GroupMinSize": group["MinSize"],
        "GroupMaxSize": group["MaxSize"],
        "GroupDesiredCapacity": group["DesiredCapacity"],
        "GroupInServiceInstances": live.count("InService"),
        "GroupPendingInstances": sum(1 for s in live if s.startswith("Pending")),
        "GroupTerminatingInstances": sum(1 for s in live if s.startswith("Terminating")),
        "GroupTotalInstances": len(live),
    }


def _target_key(row: TargetDescription) -> str:
    """A describe-target-health row's target as the registry keys it ("WebA1:80")."""
    if row.get("Key"):
        return row["Key"]
    return f"{row['Target']['Id'].removeprefix('i-')}:{row['Target']['Port']}"


def _ip_port(row: TargetDescription) -> str:
    return f"{row['Ip']}:{row['Target']['Port']}"


# name -> class taking (lab, plan); load balancer issues add theirs here.
SOURCES: dict[str, Callable[[Lab, NetworkPlan], Source]] = {
    "ports": HostPortSource,
    "fabric": FabricDropSource,
    "security": SecurityDropSource,
    "nlb": NlbSource,
    "alb": AlbSource,
    "clb": ClbSource,
    "instances": InstanceSource,
    "autoscaling": AutoScalingSource,
}
