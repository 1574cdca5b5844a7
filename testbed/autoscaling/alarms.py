"""CloudWatch metric alarm evaluation: M out of N datapoints, missing data, state reasons.

An alarm's datapoints are its metric's statistic over consecutive periods (Period divided by the
lab's time scale) aligned on multiples of the period, the newest being the last complete one
before now. CloudWatch's rules (Amazon CloudWatch User Guide, "Alarm evaluation" and "Configuring
how CloudWatch alarms treat missing data"):

- ALARM when at least DatapointsToAlarm (M) of the last EvaluationPeriods (N) datapoints breach
  the threshold; OK otherwise.
- CloudWatch looks at more periods than N (the evaluation range; here N + 2, the range the
  user guide's examples show). When at least N datapoints of the range exist, the N newest real
  ones are evaluated and TreatMissingData plays no part.
- When fewer than N exist, the missing ones are filled as TreatMissingData says:
  breaching / notBreaching fill as breaching / not breaching; missing: only the real ones are
  evaluated (ALARM when every one of them, up to M, breaches); ignore: like missing, but a
  result the missing datapoints could have changed keeps the current state.
- No datapoint at all in the range: missing -> INSUFFICIENT_DATA, ignore -> current state,
  breaching -> ALARM, notBreaching -> OK.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from testbed.autoscaling.activities import iso
from testbed.autoscaling.metricstore import MetricStore
from testbed.autoscaling.timescale import TimeScale
from testbed.model.autoscaling_types import Alarm

OK = "OK"
ALARM = "ALARM"
INSUFFICIENT_DATA = "INSUFFICIENT_DATA"

# Periods looked at beyond EvaluationPeriods when data is missing (see the module docstring).
EXTRA_PERIODS = 2

# How many recent datapoints describe() shows.
RECENT = 10

COMPARISON_WORDS = {
    "GreaterThanOrEqualToThreshold": "greater than or equal to",
    "GreaterThanThreshold": "greater than",
    "LessThanThreshold": "less than",
    "LessThanOrEqualToThreshold": "less than or equal to",
}


def breaches(comparison: str, value: float, threshold: float) -> bool:
    """Whether value is on the alarm side of threshold."""
    if comparison == "GreaterThanOrEqualToThreshold":
        return value >= threshold
    if comparison == "GreaterThanThreshold":
        return value > threshold
    if comparison == "LessThanThreshold":
        return value < threshold
    if comparison == "LessThanOrEqualToThreshold":
        return value <= threshold
    raise ValueError(f"unknown ComparisonOperator {comparison!r}")


def _reason_time(t: float) -> str:
    # CloudWatch's state reasons write datapoint times as dd/mm/yy HH:MM:SS (UTC).
    return datetime.fromtimestamp(t, tz=UTC).strftime("%d/%m/%y %H:%M:%S")


def _number(value: float) -> str:
    # CloudWatch prints Java doubles: always a decimal point ("50.0").
    return repr(round(float(value), 4))


def _datapoints_text(points: list[tuple[float, float]]) -> str:
    return ", ".join(f"{_number(v)} ({_reason_time(t)})" for t, v in points)


@dataclass
class AlarmState:
    """One alarm's state as CloudWatch keeps it (evaluate() moves it on)."""

    model: Alarm
    state: str = INSUFFICIENT_DATA
    reason: str = "Unchecked: Initial alarm creation"
    since: float = 0.0
    # The alarm's datapoints at its last evaluation: (period start, value or None), newest last.
    datapoints: list[tuple[float, float | None]] = field(default_factory=list)
    evaluated_at: float | None = None

    @property
    def name(self) -> str:
        return self.model.name

    def period(self, scale: TimeScale) -> float:
        """The alarm's period in the lab's seconds."""
        return scale.s(self.model.period_s)

    def collect(
        self, store: MetricStore, now: float, scale: TimeScale, count: int
    ) -> list[tuple[float, float | None]]:
        """The count complete periods before now: (period start, statistic or None), newest
        last."""
        period = self.period(scale)
        last_end = math.floor(now / period + 1e-9) * period
        points: list[tuple[float, float | None]] = []
        for i in range(count, 0, -1):
            end = last_end - (i - 1) * period
            start = end - period
            points.append((start, store.statistic(self.model.metric, start, end)))
        return points

    def evaluate(self, store: MetricStore, now: float, scale: TimeScale) -> str | None:
        """Evaluate at now; the new state when it changed (reason set as CloudWatch words it),
        else None. Evaluating twice at the same now changes nothing."""
        m = self.model
        n = max(1, m.evaluation_periods)
        need = max(1, min(m.datapoints_to_alarm or n, n))
        points = self.collect(store, now, scale, n + EXTRA_PERIODS)
        self.datapoints = points
        self.evaluated_at = now
        real = [(t, v) for t, v in reversed(points) if v is not None]  # newest first
        new_state, reason = self._decide(real, n, need)
        if new_state is None or new_state == self.state:
            return None
        old = self.state
        self.state = new_state
        self.since = now
        self.reason = reason.replace("{old}", old)
        return new_state

    def _decide(self, real: list[tuple[float, float]], n: int, need: int) -> tuple[str | None, str]:
        m = self.model
        treat = m.treat_missing
        if not real:
            if treat == "breaching":
                return ALARM, self._missing_reason(n, ALARM)
            if treat == "notBreaching":
                return OK, self._missing_reason(n, OK)
            if treat == "ignore":
                return None, ""
            return INSUFFICIENT_DATA, self._insufficient_reason(n)
        if len(real) >= n:
            return self._verdict(real[:n], n, need, filled_breaching=0, filled=0)
        missing = n - len(real)
        if treat == "breaching":
            return self._verdict(real, n, need, filled_breaching=missing, filled=missing)
        if treat == "notBreaching":
            return self._verdict(real, n, need, filled_breaching=0, filled=missing)
        # missing / ignore: only the real datapoints count, each one weighing as much as it can.
        shrunk = min(need, len(real))
        state, reason = self._verdict(real, len(real), shrunk, filled_breaching=0, filled=0)
        if treat == "ignore":
            could_alarm = self._count_breaching(real) + missing >= need
            could_ok = self._count_breaching(real) < need
            if could_alarm and could_ok:
                return None, ""
        return state, reason

    def _count_breaching(self, points: list[tuple[float, float]]) -> int:
        m = self.model
        return sum(1 for _, v in points if breaches(m.comparison, v, m.threshold))

    def _verdict(
        self,
        points: list[tuple[float, float]],
        n: int,
        need: int,
        *,
        filled_breaching: int,
        filled: int,
    ) -> tuple[str, str]:
        m = self.model
        words = COMPARISON_WORDS.get(m.comparison, m.comparison)
        breaching = [(t, v) for t, v in points if breaches(m.comparison, v, m.threshold)]
        count = len(breaching) + filled_breaching
        if count >= need:
            shown, verb, state = breaching, words, ALARM
            shown_count, minimum = count, need
        else:
            shown = [(t, v) for t, v in points if not breaches(m.comparison, v, m.threshold)]
            verb, state = f"not {words}", OK
            shown_count = len(shown) + (filled - filled_breaching)
            # OK needs enough non-breaching datapoints that M breaching ones cannot fit.
            minimum = n - need + 1
        was = "was" if shown_count == 1 else "were"
        plural = "datapoint" if minimum == 1 else "datapoints"
        extra = ""
        if filled:
            kind = "breaching" if filled_breaching else "not breaching"
            extra = f" ({filled} missing treated as {kind})"
        reason = (
            f"Threshold Crossed: {shown_count} out of the last {n} datapoints "
            f"[{_datapoints_text(shown)}]{extra} {was} {verb} the threshold "
            f"({_number(m.threshold)}) (minimum {minimum} {plural} for {{old}} -> {state} "
            "transition)."
        )
        return state, reason

    def _missing_reason(self, n: int, state: str) -> str:
        kind = "Breaching" if state == ALARM else "NonBreaching"
        periods = "1 period" if n == 1 else f"{n} periods"
        treated = "datapoint was" if n == 1 else "datapoints were"
        return (
            f"Threshold Crossed: no datapoints were received for {periods} and {n} missing "
            f"{treated} treated as [{kind}]."
        )

    def _insufficient_reason(self, n: int) -> str:
        word = "datapoint was" if n == 1 else "datapoints were"
        return f"Insufficient Data: {n} {word} unknown."

    def describe(self) -> dict:
        """The alarm as describe-alarms shows it (plus the lab's recent datapoints)."""
        m = self.model
        metric = m.metric
        out: dict = {
            "AlarmName": m.name,
            "LogicalResourceId": m.logical_id,
            "StateValue": self.state,
            "StateReason": self.reason,
            "StateUpdatedTimestamp": iso(self.since),
            "MetricName": metric.metric_name,
            "Namespace": metric.namespace,
            "Dimensions": [{"Name": k, "Value": v} for k, v in metric.dimensions],
            "Threshold": float(m.threshold),
            "ComparisonOperator": m.comparison,
            "EvaluationPeriods": m.evaluation_periods,
            "DatapointsToAlarm": m.datapoints_to_alarm,
            "Period": int(m.period_s) if float(m.period_s).is_integer() else m.period_s,
            "TreatMissingData": m.treat_missing,
            "ActionsEnabled": m.actions_enabled,
            "AlarmActions": list(m.alarm_actions) + list(m.other_actions),
            "OKActions": list(m.ok_actions),
            "InsufficientDataActions": list(m.insufficient_actions),
            "RecentDatapoints": [
                {"Timestamp": iso(t), "Value": v} for t, v in self.datapoints[-RECENT:]
            ],
        }
        if metric.statistic.startswith("p"):
            out["ExtendedStatistic"] = metric.statistic
        else:
            out["Statistic"] = metric.statistic
        return out
