"""CloudWatch datapoints of the lab's metrics: what alarms and scaling policies read.

The Auto Scaling service samples the lab every tick (per instance CPU and network bytes, per
target group request counts, healthy hosts ...) and adds each observation here. Alarms and
policies ask for a CloudWatch statistic of one metric (namespace, name, exact dimension set, as
CloudWatch matches them) over a period.

Two kinds of metric, as CloudWatch's own publishers make them:
- gauges (CPUUtilization, HealthyHostCount, ...): every observation is one sample; the period's
  statistic is taken over the samples.
- counts (NetworkIn, RequestCount, RequestCountPerTarget, ...; COUNT_METRICS): an observation is
  what happened since the previous tick. CloudWatch publishes them as one datapoint per source
  (instance) per interval, so the period's observations are first summed per source, then the
  statistic is taken across sources: Sum is the total, Average the average per source (this is
  how ASGAverageNetworkIn is "the average of each instance's NetworkIn"). The source is the
  `source` given to add() (the service passes the instance id when it adds an instance's value
  to a group's series, e.g. {AutoScalingGroupName}); without one, each dimension set is its own
  source (a target group's RequestCountPerTarget).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from testbed.model.autoscaling_types import MetricSpec

# Metrics CloudWatch publishes as counts per interval: summed per source before any statistic.
COUNT_METRICS: frozenset[tuple[str, str]] = frozenset(
    {
        ("AWS/EC2", "NetworkIn"),
        ("AWS/EC2", "NetworkOut"),
        ("AWS/EC2", "NetworkPacketsIn"),
        ("AWS/EC2", "NetworkPacketsOut"),
        ("AWS/ApplicationELB", "RequestCount"),
        ("AWS/ApplicationELB", "RequestCountPerTarget"),
        ("AWS/ApplicationELB", "HTTPCode_Target_2XX_Count"),
        ("AWS/ApplicationELB", "HTTPCode_Target_3XX_Count"),
        ("AWS/ApplicationELB", "HTTPCode_Target_4XX_Count"),
        ("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count"),
        ("AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count"),
        ("AWS/ApplicationELB", "NewConnectionCount"),
        ("AWS/NetworkELB", "NewFlowCount"),
        ("AWS/NetworkELB", "ProcessedBytes"),
        ("AWS/ELB", "RequestCount"),
    }
)

STATISTICS = ("Average", "Sum", "Minimum", "Maximum", "SampleCount")

SeriesKey = tuple[str, str, frozenset[tuple[str, str]]]


@dataclass(frozen=True)
class Observation:
    t: float
    value: float
    source: str | None


def series_key(
    namespace: str, metric: str, dimensions: Mapping[str, str] | Iterable[tuple[str, str]]
) -> SeriesKey:
    """The key of one CloudWatch series: dimensions match as a set, exactly."""
    pairs: Iterable[tuple[str, str]] = (
        dimensions.items() if isinstance(dimensions, Mapping) else dimensions
    )
    return (namespace, metric, frozenset((str(k), str(v)) for k, v in pairs))


def check_statistic(statistic: str) -> None:
    """ValueError unless statistic is one CloudWatch knows (Average ... or pNN / pNN.N)."""
    if statistic in STATISTICS:
        return
    if statistic.startswith("p"):
        try:
            p = float(statistic[1:])
        except ValueError:
            p = -1.0
        if 0.0 <= p <= 100.0:
            return
    raise ValueError(
        f"unknown statistic {statistic!r}: expected one of {', '.join(STATISTICS)} or pNN"
    )


def aggregate(statistic: str, values: list[float]) -> float | None:
    """CloudWatch's statistic of values (None: no values)."""
    check_statistic(statistic)
    if not values:
        return None
    if statistic == "Average":
        return sum(values) / len(values)
    if statistic == "Sum":
        return float(sum(values))
    if statistic == "Minimum":
        return float(min(values))
    if statistic == "Maximum":
        return float(max(values))
    if statistic == "SampleCount":
        return float(len(values))
    # Percentile by nearest rank: the smallest value with at least p% of the values at or below.
    p = float(statistic[1:])
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return float(ordered[rank - 1])


class MetricStore:
    """Observations of the lab's metrics, by (namespace, metric, dimension set)."""

    def __init__(self) -> None:
        self._series: dict[SeriesKey, list[Observation]] = {}

    def add(
        self,
        namespace: str,
        metric: str,
        dimensions: dict[str, str],
        t: float,
        value: float,
        source: str | None = None,
    ) -> None:
        """One observation at time t; source: who measured it (an instance id), see the module."""
        obs = self._series.setdefault(series_key(namespace, metric, dimensions), [])
        item = Observation(t, float(value), source)
        # Ticks arrive in time order; keep the list sorted even if one arrives late.
        if obs and obs[-1].t > t:
            obs.append(item)
            obs.sort(key=lambda o: o.t)
        else:
            obs.append(item)

    def values(self, spec: MetricSpec, start: float, end: float) -> list[float]:
        """The values the statistic of spec over [start, end) is taken of (see the module)."""
        key = series_key(spec.namespace, spec.metric_name, spec.dimensions)
        obs = self._series.get(key, [])
        # Sorted by time: alarms ask for many short periods of long series every tick.
        first = bisect.bisect_left(obs, start, key=lambda o: o.t)
        last = bisect.bisect_left(obs, end, key=lambda o: o.t)
        inside = obs[first:last]
        if (spec.namespace, spec.metric_name) not in COUNT_METRICS:
            return [o.value for o in inside]
        per_source: dict[str | None, float] = {}
        for o in inside:
            per_source[o.source] = per_source.get(o.source, 0.0) + o.value
        return list(per_source.values())

    def statistic(self, spec: MetricSpec, start: float, end: float) -> float | None:
        """CloudWatch statistic (spec.statistic) of the observations in [start, end); None: no
        data."""
        return aggregate(spec.statistic, self.values(spec, start, end))

    def latest(self, spec: MetricSpec) -> tuple[float, float] | None:
        """The newest raw observation (t, value) of spec's series, for status displays."""
        obs = self._series.get(series_key(spec.namespace, spec.metric_name, spec.dimensions))
        if not obs:
            return None
        return obs[-1].t, obs[-1].value

    def series(self) -> list[tuple[str, str, dict[str, str]]]:
        """Every series the store holds: (namespace, metric, dimensions), sorted."""
        keys = sorted(self._series, key=lambda k: (k[0], k[1], sorted(k[2])))
        return [(ns, name, dict(sorted(dims))) for ns, name, dims in keys]

    def prune(self, before: float) -> None:
        """Forget observations older than before (alarms look back a bounded number of
        periods)."""
        for key in list(self._series):
            obs = self._series[key]
            kept = obs[bisect.bisect_left(obs, before, key=lambda o: o.t) :]
            if kept:
                self._series[key] = kept
            else:
                del self._series[key]
