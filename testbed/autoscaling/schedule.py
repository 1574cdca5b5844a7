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

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from testbed.model.autoscaling_types import ScheduledAction

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")

# (name, lowest, highest, names) of the five fields.
FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day-of-month", 1, 31, ()),
    ("month", 1, 12, MONTHS),
    ("day-of-week", 0, 7, DAYS),
)

# How far ahead next_run looks for a match (a 29 February needs up to 8 years).
SEARCH_DAYS = 366 * 8 + 2


def _value(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> int:
    upper = text.upper()
    if names and upper in names:
        # Month names count from 1, day names from 0 (SUN).
        return names.index(upper) + (1 if names is MONTHS else 0)
    if not text.isdigit():
        raise ValueError(f"cron {name} field: {text!r} is not a number or a name")
    number = int(text)
    if not low <= number <= high:
        raise ValueError(f"cron {name} field: {number} is outside {low}-{high}")
    return number


def _field(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise ValueError(f"cron {name} field: empty list item in {text!r}")
        body, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"cron {name} field: bad step {step_text!r} in {part!r}")
            step = int(step_text)
        if body == "*":
            first, last = low, high
        elif "-" in body:
            a, _, b = body.partition("-")
            first = _value(a, name, low, high, names)
            last = _value(b, name, low, high, names)
            if first > last:
                raise ValueError(f"cron {name} field: range {part!r} runs backwards")
        else:
            first = _value(body, name, low, high, names)
            # "5/15" means from 5 to the end in steps of 15.
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    """A parsed five-field Unix cron expression."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday (7 folded into 0)
    any_day: bool  # day-of-month is "*"
    any_weekday: bool  # day-of-week is "*"

    def matches_day(self, day: date) -> bool:
        """Whether cron runs on this date (Vixie cron: when both day fields are restricted,
        either one matching is enough)."""
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = (day.isoweekday() % 7) in self.weekdays
        if self.any_day and self.any_weekday:
            return True
        if self.any_day:
            return dow
        if self.any_weekday:
            return dom
        return dom or dow


def parse_cron(text: str) -> Cron:
    """Parse a Unix cron expression (lists, ranges, steps, JAN-DEC / SUN-SAT names, "*");
    ValueError saying what is wrong."""
    parts = text.split()
    if len(parts) != 5:
        raise ValueError(
            f"cron {text!r} has {len(parts)} fields: expected 5 "
            "(minute hour day-of-month month day-of-week)"
        )
    sets = [
        _field(part, name, low, high, names)
        for part, (name, low, high, names) in zip(parts, FIELDS, strict=True)
    ]
    weekdays = frozenset(d % 7 for d in sets[4])
    return Cron(
        text=text,
        minutes=sets[0],
        hours=sets[1],
        days=sets[2],
        months=sets[3],
        weekdays=weekdays,
        any_day=parts[2] == "*",
        any_weekday=parts[4] == "*",
    )


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def cron_next(cron: Cron, after: float, zone: ZoneInfo) -> float | None:
    """The first time strictly after `after` (epoch seconds) cron runs, in zone; None when none
    within SEARCH_DAYS. A local time the clock skips (DST spring forward) does not run; one it
    passes twice runs the first time."""
    start = datetime.fromtimestamp(after, tz=UTC).astimezone(zone)
    day = start.date()
    hours = sorted(cron.hours)
    minutes = sorted(cron.minutes)
    for _ in range(SEARCH_DAYS):
        if cron.matches_day(day):
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
            if t is None:
                return None
            return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

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
