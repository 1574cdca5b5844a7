"""Unix cron expressions as AWS::AutoScaling::ScheduledAction's Recurrence takes them.

Five fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12 or JAN-DEC), day of
week (0-7, 0 and 7 are Sunday, or SUN-SAT). Each field is `*`, a value, a range `a-b`, any of
those with a step `/n`, or a comma list of them. As in Unix cron, when both day fields are
restricted a day matches if either matches.

    fields = parse("0 9 * * MON-FRI")   # Cron(minutes={0}, hours={9}, ...)
    fields.matches(datetime)            # in the action's time zone
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from testbed.errors import BadInput

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# (name, low, high, names for low, low+1, ...)
_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)


@dataclass(frozen=True)
class Cron:
    """The values each field allows; *_any: the field was `*` (for the day-field rule)."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday (7 folded into 0)
    days_any: bool
    weekdays_any: bool

    def matches(self, when: datetime) -> bool:
        """Whether the minute of `when` (a local time of the schedule's zone) is a run time."""
        if when.minute not in self.minutes or when.hour not in self.hours:
            return False
        if when.month not in self.months:
            return False
        day_ok = when.day in self.days
        weekday_ok = (when.isoweekday() % 7) in self.weekdays
        if self.days_any or self.weekdays_any:
            return day_ok and weekday_ok
        return day_ok or weekday_ok


def parse(text: str) -> Cron:
    """The Cron of a 5-field expression; BadInput saying which field is wrong."""
    parts = text.split()
    if len(parts) != len(_FIELDS):
        raise BadInput(
            f"Recurrence {text!r} has {len(parts)} fields; a Unix cron expression has 5 "
            "(minute hour day-of-month month day-of-week)",
            hint='e.g. "0 9 * * *" for 09:00 every day (UTC unless TimeZone is given)',
        )
    values = [_field(part, *spec, text) for part, spec in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(0 if d == 7 else d for d in values[4])
    return Cron(
        frozenset(values[0]),
        frozenset(values[1]),
        frozenset(values[2]),
        frozenset(values[3]),
        weekdays,
        days_any=parts[2] == "*",
        weekdays_any=parts[4] == "*",
    )


def _field(
    part: str, name: str, low: int, high: int, names: tuple[str, ...], text: str
) -> set[int]:
    found: set[int] = set()
    for item in part.split(","):
        found |= _item(item, name, low, high, names, text)
    return found


def _item(item: str, name: str, low: int, high: int, names: tuple[str, ...], text: str) -> set[int]:
    base, _, step_text = item.partition("/")
    step = 1
    if step_text:
        if not step_text.isdigit() or int(step_text) == 0:
            raise _bad(text, name, item, "the step after / must be a whole number above 0")
        step = int(step_text)
    if base == "*":
        start, end = low, high
    elif "-" in base:
        first, _, last = base.partition("-")
        start = _value(first, name, low, high, names, text)
        end = _value(last, name, low, high, names, text)
        if start > end:
            raise _bad(text, name, item, "the range starts after it ends")
    else:
        start = _value(base, name, low, high, names, text)
        end = high if step_text else start
    return set(range(start, end + 1, step))


def _value(token: str, name: str, low: int, high: int, names: tuple[str, ...], text: str) -> int:
    if token.upper() in names:
        return low + names.index(token.upper())
    if token.isdigit() and low <= int(token) <= high:
        return int(token)
    allowed = f"{low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
    raise _bad(text, name, token, f"the {name} field takes {allowed}")


def _bad(text: str, name: str, item: str, why: str) -> BadInput:
    return BadInput(f"Recurrence {text!r}: {item!r} in the {name} field is not valid: {why}")
