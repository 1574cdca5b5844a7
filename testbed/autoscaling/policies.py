"""Dynamic scaling policies: target tracking, step and simple scaling -> a new desired capacity.

As Amazon EC2 Auto Scaling documents them (user guide: "Target tracking scaling policies",
"Step and simple scaling policies", "Scaling adjustment types", "Set the default instance
warmup"):

- An alarm in the state a policy is an action of invokes the policy when it enters the state and
  again every period while it stays there (CloudWatch repeats Auto Scaling actions).
- Target tracking makes two alarms of its own: AlarmHigh (metric > target for 3 of 3 one-minute
  datapoints) and AlarmLow (metric < 90% of target for 15 of 15; none with DisableScaleIn).
  AlarmHigh: desired = ceil(current capacity * metric / target), scale out only. AlarmLow: scale
  in conservatively: to the proportional capacity, but by at most 10% of the group (at least one
  instance) per invocation, so capacity goes down gradually as AWS describes.
- Step scaling: breach = metric - threshold picks the step (metric: the alarm's newest
  datapoint, already the alarm's statistic over its period); a step's lower bound is inclusive
  and its upper bound exclusive above the threshold, the other way round below it; a null bound
  is infinite. Simple scaling: one adjustment; the group's cooldown (or the policy's Cooldown)
  holds the next one back (honour_cooldown).
- Warm-up (target tracking and step): instances still warming up are not part of the current
  capacity the adjustment starts from, but the desired capacity they already make up is kept, so
  repeated breaches in one step give one scaling activity; scale in waits until no instance is
  warming up. (AWS also leaves warming instances out of the group's aggregated metrics: the
  sampler should not add their values to the {AutoScalingGroupName} series.)
- PercentChangeInCapacity: results above 1 round down, between 0 and 1 become 1, between -1 and
  0 become -1, below -1 round up (toward zero); MinAdjustmentMagnitude is the least change.
- Desired capacity stays within [MinSize, MaxSize].
- PredictiveScaling is not emulated: such a policy never acts.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from testbed.autoscaling.activities import iso
from testbed.autoscaling.alarms import ALARM, INSUFFICIENT_DATA, OK, AlarmState
from testbed.autoscaling.metricstore import MetricStore
from testbed.autoscaling.timescale import TimeScale
from testbed.model.autoscaling_types import Alarm, MetricSpec, ScalingPolicy

# Target tracking's own alarms, as AWS creates them.
TT_PERIOD_S = 60.0
TT_HIGH_PERIODS = 3
TT_LOW_PERIODS = 15
TT_LOW_RATIO = 0.9
# At most this share of the group goes per target-tracking scale in (at least one instance).
TT_SCALE_IN_SHARE = 0.10

UUID_NAMESPACE = uuid.UUID("6f1c1f1e-12a5-4c3b-9a57-2c2d3b5e7a10")


@dataclass(frozen=True)
class GroupView:
    """What a policy needs to know of its group at one moment.

    name: the group's logical id; group_name: its AutoScalingGroupName.
    in_service: InService instances (warming-up ones included).
    capacity_in_warmup: counted instances (Pending or InService) still in their warm-up.
    instances: ids of the counted instances (Pending and InService, not terminating).
    """

    name: str
    group_name: str
    min: int
    max: int
    desired: int
    in_service: int
    capacity_in_warmup: int
    instances: tuple[str, ...]

    @property
    def warmed(self) -> int:
        """The current capacity for scale out: counted instances past their warm-up."""
        return max(0, len(self.instances) - self.capacity_in_warmup)

    def clamp(self, desired: int) -> int:
        return min(max(desired, self.min), self.max)


@dataclass(frozen=True)
class DesiredChange:
    """A policy's decision: set the group's desired capacity (cause in AWS's words).

    cooldown_s: a simple scaling policy's own Cooldown in AWS seconds (None: the group's)."""

    group: str
    desired: int
    cause: str
    policy: str | None
    honour_cooldown: bool
    cooldown_s: float | None = None


def largest(changes: list[DesiredChange]) -> list[DesiredChange]:
    """One change per group when several policies act at once: AWS runs the one giving the
    largest capacity, for scale out and scale in alike (the first of equals)."""
    best: dict[str, DesiredChange] = {}
    for change in changes:
        kept = best.get(change.group)
        if kept is None or change.desired > kept.desired:
            best[change.group] = change
    return list(best.values())


def percent_change(capacity: int, percent: float, min_magnitude: int | None = None) -> int:
    """The change PercentChangeInCapacity makes to capacity, rounded as AWS rounds it."""
    raw = capacity * percent / 100.0
    if raw > 1:
        change = math.floor(raw)
    elif raw > 0:
        change = 1
    elif raw == 0:
        change = 0
    elif raw > -1:
        change = -1
    else:
        change = math.ceil(raw)
    if min_magnitude and percent != 0 and abs(change) < min_magnitude:
        change = min_magnitude if percent > 0 else -min_magnitude
    return change


def find_step(policy: ScalingPolicy, breach: float) -> float | None:
    """The adjustment of the step holding breach (metric - threshold), None when none does."""
    for step in policy.step_adjustments:
        lower = -math.inf if step.lower is None else step.lower
        upper = math.inf if step.upper is None else step.upper
        # Above the threshold the lower bound is inclusive, below it the upper one.
        inside = lower <= breach < upper if breach >= 0 else lower < breach <= upper
        if inside:
            return step.adjustment
    return None


def predefined_metric(
    policy: ScalingPolicy, group_name: str, dims: Mapping[str, str]
) -> MetricSpec:
    """The CloudWatch metric a target-tracking policy tracks.

    dims: lab names of resources by logical id, for ALBRequestCountPerTarget the target group's
    full name ("targetgroup/NAME/ID") under its logical id (the runtime gives it)."""
    if policy.customized_metric is not None:
        return policy.customized_metric
    kind = policy.predefined_metric
    by_group = (("AutoScalingGroupName", group_name),)
    if kind == "ASGAverageCPUUtilization":
        return MetricSpec("AWS/EC2", "CPUUtilization", by_group, "Average", "Percent")
    if kind == "ASGAverageNetworkIn":
        return MetricSpec("AWS/EC2", "NetworkIn", by_group, "Average", "Bytes")
    if kind == "ASGAverageNetworkOut":
        return MetricSpec("AWS/EC2", "NetworkOut", by_group, "Average", "Bytes")
    if kind == "ALBRequestCountPerTarget":
        if policy.resource_target is None:
            raise ValueError(f"{policy.logical_id}: ALBRequestCountPerTarget needs ResourceLabel")
        tg = policy.resource_target[1]
        name = dims.get(tg, tg)
        return MetricSpec(
            "AWS/ApplicationELB", "RequestCountPerTarget", (("TargetGroup", name),), "Sum", "Count"
        )
    raise ValueError(f"{policy.logical_id}: predefined metric {kind!r} is not emulated")


def _tt_alarm(policy: ScalingPolicy, group_name: str, metric: MetricSpec, high: bool) -> AlarmState:
    target = float(policy.target_value or 0.0)
    which = "AlarmHigh" if high else "AlarmLow"
    # Stable per policy and group, uuid-shaped like AWS's.
    suffix = uuid.uuid5(UUID_NAMESPACE, f"{group_name}/{policy.logical_id}/{which}")
    periods = TT_HIGH_PERIODS if high else TT_LOW_PERIODS
    model = Alarm(
        logical_id=policy.logical_id,
        name=f"TargetTracking-{group_name}-{which}-{suffix}",
        metric=metric,
        period_s=TT_PERIOD_S,
        evaluation_periods=periods,
        datapoints_to_alarm=periods,
        threshold=target if high else round(target * TT_LOW_RATIO, 6),
        comparison="GreaterThanThreshold" if high else "LessThanThreshold",
        alarm_actions=(policy.logical_id,),
    )
    return AlarmState(model)


def _newest_value(alarm: AlarmState) -> float | None:
    for _, value in reversed(alarm.datapoints):
        if value is not None:
            return value
    return None


class PolicyRuntime:
    """One ScalingPolicy of a running group.

    group_name: the group's AutoScalingGroupName (target tracking's alarms carry it);
    dims: lab names by logical id (see predefined_metric); name: the policy's PolicyName in
    causes (default: its logical id)."""

    def __init__(
        self,
        model: ScalingPolicy,
        group_name: str,
        dims: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> None:
        self.model = model
        self.group_name = group_name
        self.name = name or model.logical_id
        self._own: list[AlarmState] = []
        # Per alarm name: (the alarm's `since` when it last invoked us, when).
        self._invoked: dict[str, tuple[float, float]] = {}
        if model.policy_type == "TargetTrackingScaling" and model.emulated:
            metric = predefined_metric(model, group_name, dims or {})
            self._own.append(_tt_alarm(model, group_name, metric, high=True))
            if not model.disable_scale_in:
                self._own.append(_tt_alarm(model, group_name, metric, high=False))

    def alarms(self) -> list[AlarmState]:
        """The alarms the policy made (target tracking's AlarmHigh and AlarmLow), for listings;
        the service evaluates them each tick like the template's (decide does too, a no-op
        when already done at that time)."""
        return list(self._own)

    def decide(
        self,
        group: GroupView,
        store: MetricStore,
        alarms: Mapping[str, AlarmState],
        now: float,
        scale: TimeScale,
    ) -> DesiredChange | None:
        """The desired capacity the policy asks for now, or None.

        alarms: the template's alarms by logical id (those naming this policy in their actions
        invoke it; a target-tracking policy uses its own)."""
        kind = self.model.policy_type
        if not self.model.emulated or kind == "PredictiveScaling":
            return None
        if kind == "TargetTrackingScaling":
            return self._target_tracking(group, store, now, scale)
        for alarm in self._invoking(alarms):
            if not self._due(alarm, now, scale):
                continue
            change = self._from_alarm(group, alarm, now)
            if change is not None:
                return change
        return None

    # --- invocation ---------------------------------------------------------------------------

    def _invoking(self, alarms: Mapping[str, AlarmState]) -> list[AlarmState]:
        lid = self.model.logical_id
        found = []
        for alarm in alarms.values():
            m = alarm.model
            if not m.actions_enabled:
                continue
            wanted = (
                (alarm.state == ALARM and lid in m.alarm_actions)
                or (alarm.state == OK and lid in m.ok_actions)
                or (alarm.state == INSUFFICIENT_DATA and lid in m.insufficient_actions)
            )
            if wanted:
                found.append(alarm)
        return sorted(found, key=lambda a: a.name)

    def _due(self, alarm: AlarmState, now: float, scale: TimeScale) -> bool:
        """Invoked on entering the state and once a period while it stays (marks it done)."""
        last = self._invoked.get(alarm.name)
        if last is None or last[0] != alarm.since or now - last[1] >= alarm.period(scale) - 1e-6:
            self._invoked[alarm.name] = (alarm.since, now)
            return True
        return False

    def _cause(self, alarm: AlarmState, group: GroupView, desired: int, now: float) -> str:
        return (
            f"At {iso(now)} a monitor alarm {alarm.name} in state {alarm.state} triggered "
            f"policy {self.name} changing the desired capacity from {group.desired} to "
            f"{desired}."
        )

    def _change(
        self, alarm: AlarmState, group: GroupView, desired: int, now: float, simple: bool
    ) -> DesiredChange | None:
        if desired == group.desired:
            return None
        return DesiredChange(
            group=group.name,
            desired=desired,
            cause=self._cause(alarm, group, desired, now),
            policy=self.model.logical_id,
            honour_cooldown=simple,
            cooldown_s=self.model.cooldown_s if simple else None,
        )

    # --- step and simple scaling ---------------------------------------------------------------

    def _from_alarm(self, group: GroupView, alarm: AlarmState, now: float) -> DesiredChange | None:
        m = self.model
        if m.policy_type == "SimpleScaling":
            adjustment: float | None = m.scaling_adjustment
        else:
            value = _newest_value(alarm)
            if value is None:
                return None
            adjustment = find_step(m, value - alarm.model.threshold)
        if adjustment is None:
            return None
        simple = m.policy_type == "SimpleScaling"
        if simple:
            desired = group.clamp(self._apply(group.desired, adjustment))
            return self._change(alarm, group, desired, now, simple=True)
        return self._change(alarm, group, self._dynamic(group, adjustment), now, simple=False)

    def _apply(self, base: int, adjustment: float) -> int:
        m = self.model
        if m.adjustment_type == "ExactCapacity":
            return int(adjustment)
        if m.adjustment_type == "PercentChangeInCapacity":
            return base + percent_change(base, adjustment, m.min_adjustment_magnitude)
        return base + int(adjustment)

    def _dynamic(self, group: GroupView, adjustment: float) -> int:
        """Step scaling's new desired capacity with warm-up (see the module docstring)."""
        if self.model.adjustment_type == "ExactCapacity":
            wanted = group.clamp(int(adjustment))
        elif adjustment > 0:
            wanted = group.clamp(self._apply(group.warmed, adjustment))
        else:
            wanted = group.clamp(self._apply(group.desired, adjustment))
        if wanted > group.desired:
            return wanted
        if wanted < group.desired and group.capacity_in_warmup == 0:
            return wanted
        return group.desired

    # --- target tracking -----------------------------------------------------------------------

    def _target_tracking(
        self, group: GroupView, store: MetricStore, now: float, scale: TimeScale
    ) -> DesiredChange | None:
        target = float(self.model.target_value or 0.0)
        if target <= 0:
            return None
        for alarm in self._own:
            alarm.evaluate(store, now, scale)
        high = self._own[0]
        if high.state == ALARM and self._due(high, now, scale):
            value = _newest_value(high)
            if value is None or group.warmed == 0:
                return None
            proportional = math.ceil(group.warmed * value / target - 1e-9)
            desired = group.clamp(max(group.desired, proportional))
            return self._change(high, group, desired, now, simple=False)
        low = self._own[1] if len(self._own) > 1 else None
        if low is not None and low.state == ALARM and self._due(low, now, scale):
            value = _newest_value(low)
            if value is None or group.capacity_in_warmup > 0:
                return None
            current = group.desired
            proportional = math.ceil(current * value / target - 1e-9)
            at_most = max(1, math.floor(current * TT_SCALE_IN_SHARE))
            desired = group.clamp(min(current, max(proportional, current - at_most)))
            return self._change(low, group, desired, now, simple=False)
        return None
