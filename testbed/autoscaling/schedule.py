"""Scheduled actions: Unix cron in a time zone, within StartTime / EndTime.

As AWS::AutoScaling::ScheduledAction and the EC2 Auto Scaling user guide ("Scheduled scaling")
describe them: Recurrence is a five-field Unix cron expression (minute hour day-of-month month
day-of-week) evaluated in TimeZone (IANA name, UTC by default); with a StartTime too, the action
runs at StartTime and then on the recurrence; EndTime ends the recurrence; without a recurrence
the action runs once, at StartTime.

Times here are wall-clock epoch seconds: the lab's TimeScale does NOT apply to schedules (a cron
"0 9 * * MON-FRI" means 9:00 on the clock, whatever the time scale).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from testbed.autoscaling.activities import iso
from testbed.errors import BadInput
from testbed.model.autoscaling_types import ScheduledAction
from testbed.model.cron import Cron, parse

# How far ahead next_run looks for a match (a 29 February needs up to 8 years).
SEARCH_DAYS = 366 * 8 + 2


def parse_cron(text: str) -> Cron:
    """The cron of a Recurrence (testbed.model.cron: the model checked it already; BadInput
    saying which field is wrong)."""
    return parse(text)


def matches_day(cron: Cron, day: date) -> bool:
    """Whether cron runs on this local date (when both day fields are restricted, either one
    matching is enough, as in Unix cron)."""
    if day.month not in cron.months:
        return False
    day_ok = day.day in cron.days
    weekday_ok = (day.isoweekday() % 7) in cron.weekdays
    if cron.days_any or cron.weekdays_any:
        return day_ok and weekday_ok
    return day_ok or weekday_ok


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BadInput(
            f"unknown time zone {name!r}", hint="an IANA name, e.g. Europe/Paris"
        ) from exc


def cron_next(cron: Cron, after: float, zone: ZoneInfo) -> float | None:
    """The first time strictly after `after` (epoch seconds) cron runs, in zone; None when none
    within SEARCH_DAYS. A local time the clock skips (DST spring forward) does not run; one it
    passes twice runs the first time."""
    start = datetime.fromtimestamp(after, tz=UTC).astimezone(zone)
    day = start.date()
    hours = sorted(cron.hours)
    minutes = sorted(cron.minutes)
    for _ in range(SEARCH_DAYS):
        if matches_day(cron, day):
            for hour in hours:
                for minute in minutes:
                    local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
                    t = local.timestamp()
                    # A skipped local time maps to another wall time after the round trip.
                    back = datetime.fromtimestamp(t, tz=UTC).astimezone(zone)
                    if (back.hour, back.minute) != (hour, minute):
                        continue
                    if t > after:
                        return t
        day += timedelta(days=1)
    return None


class ScheduledRuntime:
    """One scheduled action of a running group (wall-clock times, see the module)."""

    def __init__(self, model: ScheduledAction) -> None:
        self.model = model
        self.zone = _zone(model.time_zone)
        self.cron = parse_cron(model.recurrence) if model.recurrence else None

    def next_run(self, after: float) -> float | None:
        """The first run time strictly after `after`, or None when the action runs no more."""
        m = self.model
        if self.cron is None:
            if m.start_time is not None and m.start_time > after:
                return m.start_time
            return None
        candidates = []
        if m.start_time is not None and m.start_time > after:
            candidates.append(m.start_time)
        since = after if m.start_time is None else max(after, m.start_time)
        t = cron_next(self.cron, since, self.zone)
        if t is not None:
            candidates.append(t)
        if not candidates:
            return None
        first = min(candidates)
        if m.end_time is not None and first > m.end_time:
            return None
        return first

    def due(self, last: float, now: float) -> bool:
        """Whether a run time falls in (last, now]."""
        t = self.next_run(last)
        return t is not None and t <= now

    def describe(self, now: float) -> dict:
        """The action as describe-scheduled-actions shows it, with its next run."""
        m = self.model
        nxt = self.next_run(now)

        def stamp(t: float | None) -> str | None:
            return None if t is None else iso(t)

        return {
            "ScheduledActionName": m.logical_id,
            "Recurrence": m.recurrence,
            "StartTime": stamp(m.start_time),
            "EndTime": stamp(m.end_time),
            "TimeZone": m.time_zone,
            "MinSize": m.min_size,
            "MaxSize": m.max_size,
            "DesiredCapacity": m.desired,
            "NextRun": stamp(nxt),
        }
