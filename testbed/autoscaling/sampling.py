"""What Auto Scaling measures in a running lab, as CloudWatch datapoints.

One round (Sampler.sample) gives, for the time since the previous round:
  AWS/EC2 CPUUtilization       per instance: its cgroup's CPU time / wall time, in percent of
                               one CPU (testbed.lab.cgroups); {InstanceId} and
                               {AutoScalingGroupName} (each instance one observation)
  AWS/EC2 NetworkIn/NetworkOut bytes the instance received / sent on its switch port
  AWS/ApplicationELB RequestCount            requests a target group's backend took
                                             {TargetGroup, LoadBalancer} and {LoadBalancer}
  AWS/ApplicationELB RequestCountPerTarget   those / the group's healthy targets
                                             {TargetGroup} and {TargetGroup, LoadBalancer}
  AWS/ApplicationELB, AWS/NetworkELB HealthyHostCount / UnHealthyHostCount (gauges)
  AWS/ELB (a Classic Load Balancer) by {LoadBalancerName}: HealthyHostCount /
                               UnHealthyHostCount (InService / OutOfService instances; gauges),
                               RequestCount (HTTP requests, TCP connections; testbed.alb.stats.
                               classic_metrics) and Latency (seconds) while requests flow
Counters become "since the previous round" here; the metric store sums them per period as
CloudWatch's Sum does. The readers (cgroups, controller stats, HAProxy) are injected, so the
arithmetic is tested without a lab.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from testbed.alb.stats import classic_metrics
from testbed.messages import PortStats

EC2 = "AWS/EC2"
ALB = "AWS/ApplicationELB"
NLB = "AWS/NetworkELB"
CLB = "AWS/ELB"
T = TypeVar("T")


@dataclass(frozen=True)
class Datapoint:
    namespace: str
    metric: str
    dimensions: Mapping[str, str]
    value: float
    source: str | None = None  # the instance a group-wide series' value is of


@dataclass(frozen=True)
class InstanceRef:
    """An instance to sample: its lab host, EC2 id and group name."""

    host: str
    instance_id: str
    group_name: str
    # In its warm-up with the group's DefaultInstanceWarmup set: AWS leaves its usage out of
    # the group's aggregated metrics (its own InstanceId series still has it).
    warming: bool = False


@dataclass(frozen=True)
class LbRef:
    """A load balancer's CloudWatch names: LoadBalancer dimension ("app/NAME/ID") and its
    target groups' TargetGroup dimensions ("targetgroup/NAME/ID") by logical id; a Classic
    Load Balancer's LoadBalancerName (its name), its one group (named after its logical id)
    and its listeners' protocols."""

    name: str  # logical id (the registry's and HAProxy's name)
    type: str  # application | network | gateway | classic
    dimension: str
    target_groups: Mapping[str, str]
    listeners: Mapping[str, str] = field(default_factory=dict)  # classic: name -> HTTP | TCP


@dataclass
class Readers:
    """Where the numbers come from (each may fail: that source is then missing this round)."""

    cpu_seconds: Callable[[str], float | None]  # host -> CPU seconds used so far
    ports: Callable[[], Mapping[str, PortStats]]  # host -> its port counters
    alb_rows: Callable[[str], list[list[dict[str, str]]]]  # ALB, CLB -> each node's show stat
    target_states: Callable[[], Mapping[tuple[str, str], list[str]]]  # (lb, tg) -> states


@dataclass
class Sampler:
    readers: Readers
    lbs: list[LbRef]
    # Cumulative readings of the previous round: (kind, key) -> (time, value).
    last: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)

    def _delta(self, kind: str, key: str, now: float, value: float) -> tuple[float, float] | None:
        """(increase, seconds) since the previous reading of the same counter; None the
        first time or after a reset (a counter that went down started again)."""
        before = self.last.get((kind, key))
        self.last[(kind, key)] = (now, value)
        if before is None or value < before[1] or now <= before[0]:
            return None
        return value - before[1], now - before[0]

    def sample(self, now: float, instances: Iterable[InstanceRef]) -> list[Datapoint]:
        out: list[Datapoint] = []
        instances = list(instances)
        out += self._instances(now, instances)
        states: Mapping[tuple[str, str], list[str]] = _safe(self.readers.target_states, {})
        for lb in self.lbs:
            if lb.type == "classic":
                out += self._classic(now, lb, states)
                continue
            out += self._health(lb, states)
            if lb.type == "application":
                out += self._requests(now, lb, states)
        return out

    def forget(self, host: str) -> None:
        """Drop a terminated instance's readings (a new host of the same name never
        happens in one lab, but its memory should not grow)."""
        for key in [k for k in self.last if k[1] == host]:
            del self.last[key]

    def _instances(self, now: float, instances: list[InstanceRef]) -> list[Datapoint]:
        out = []
        ports: Mapping[str, PortStats] = _safe(self.readers.ports, {}) if instances else {}
        for ref in instances:
            dims: tuple[dict[str, str], ...] = ({"InstanceId": ref.instance_id},)
            if not ref.warming:
                dims += ({"AutoScalingGroupName": ref.group_name},)
            src = ref.instance_id
            used = _safe(functools.partial(self.readers.cpu_seconds, ref.host), None)
            if used is not None:
                d = self._delta("cpu", ref.host, now, used)
                if d is not None:
                    percent = min(100.0, 100.0 * d[0] / d[1])
                    out += [Datapoint(EC2, "CPUUtilization", x, percent, src) for x in dims]
            port = ports.get(ref.host)
            if port is not None:
                # The switch's tx is what the instance received.
                for metric, value in (
                    ("NetworkIn", port["tx_bytes"]),
                    ("NetworkOut", port["rx_bytes"]),
                ):
                    d = self._delta(metric, ref.host, now, float(value))
                    if d is not None:
                        out += [Datapoint(EC2, metric, x, d[0], src) for x in dims]
        return out

    def _health(self, lb: LbRef, states: Mapping[tuple[str, str], list[str]]) -> list[Datapoint]:
        namespace = ALB if lb.type == "application" else NLB
        out = []
        for tg, tg_dim in lb.target_groups.items():
            found = states.get((lb.name, tg), [])
            dims = {"LoadBalancer": lb.dimension, "TargetGroup": tg_dim}
            out.append(
                Datapoint(namespace, "HealthyHostCount", dims, float(found.count("healthy")))
            )
            out.append(
                Datapoint(namespace, "UnHealthyHostCount", dims, float(found.count("unhealthy")))
            )
        return out

    def _requests(
        self, now: float, lb: LbRef, states: Mapping[tuple[str, str], list[str]]
    ) -> list[Datapoint]:
        nodes: list[list[dict[str, str]]] = _safe(
            functools.partial(self.readers.alb_rows, lb.name), []
        )
        if not nodes:
            return []  # no node answered: no data (not zero requests)
        totals: dict[str, float] = {}
        for rows in nodes:
            for row in rows:
                px = row.get("pxname", "")
                if px.startswith("tg_") and row.get("svname") == "BACKEND":
                    totals[px[3:]] = totals.get(px[3:], 0.0) + _number(row.get("req_tot"))
        out = []
        lb_total = 0.0
        for tg, tg_dim in lb.target_groups.items():
            d = self._delta("requests", f"{lb.name}/{tg}", now, totals.get(tg, 0.0))
            if d is None or d[0] <= 0:
                # As on AWS, a load balancer reports request metrics only while requests
                # flow: an idle minute has no datapoint (not 0), so target tracking does not
                # scale an idle group in (its alarms see missing data).
                continue
            lb_total += d[0]
            both = {"LoadBalancer": lb.dimension, "TargetGroup": tg_dim}
            out.append(Datapoint(ALB, "RequestCount", both, d[0]))
            # AWS divides by the healthy targets (all registered ones when none is healthy).
            found = states.get((lb.name, tg), [])
            healthy = found.count("healthy") or len([s for s in found if s != "draining"])
            if healthy:
                per = d[0] / healthy
                out.append(Datapoint(ALB, "RequestCountPerTarget", {"TargetGroup": tg_dim}, per))
                out.append(Datapoint(ALB, "RequestCountPerTarget", both, per))
        if out:
            out.append(Datapoint(ALB, "RequestCount", {"LoadBalancer": lb.dimension}, lb_total))
        return out

    def _classic(
        self, now: float, lb: LbRef, states: Mapping[tuple[str, str], list[str]]
    ) -> list[Datapoint]:
        """AWS/ELB of a Classic Load Balancer: its instances (the group named after it) in
        and out of service, and its requests while they flow (no datapoint when idle, as on
        AWS)."""
        dims = {"LoadBalancerName": lb.dimension}
        found = states.get((lb.name, lb.name), [])
        # describe-instance-health's words: a draining instance is still InService.
        healthy = float(sum(1 for s in found if s in ("healthy", "draining")))
        out = [
            Datapoint(CLB, "HealthyHostCount", dims, healthy),
            Datapoint(CLB, "UnHealthyHostCount", dims, float(len(found)) - healthy),
        ]
        nodes: list[list[dict[str, str]]] = _safe(
            functools.partial(self.readers.alb_rows, lb.name), []
        )
        if not nodes:
            return out  # no node answered: no request data (not zero requests)
        metrics = {m[0]: m[3] for m in classic_metrics(nodes, dict(lb.listeners))}
        d = self._delta("requests", lb.name, now, metrics.get("RequestCount", 0.0))
        if d is not None and d[0] > 0:
            out.append(Datapoint(CLB, "RequestCount", dims, d[0]))
            out.append(Datapoint(CLB, "Latency", dims, metrics.get("Latency", 0.0)))
        return out


def _number(text: str | None) -> float:
    try:
        return float(text or 0)
    except ValueError:
        return 0.0


def _safe(fn: Callable[[], T], default: T) -> T:
    """fn(), or `default` when the source it reads is unavailable right now."""
    try:
        return fn()
    except Exception:  # a source down this round (controller restarting, node reloading)
        return default
