"""Scheduled actions: Unix cron in a time zone, start / end, one-time actions."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from testbed.autoscaling.schedule import ScheduledRuntime, parse_cron
from testbed.errors import BadInput
from testbed.model.autoscaling_types import ScheduledAction


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0) -> float:
    return datetime(year, month, day, hour, minute, sec, tzinfo=UTC).timestamp()


def action(recurrence: str | None, **kw: object) -> ScheduledRuntime:
    return ScheduledRuntime(
        ScheduledAction(
            logical_id="Nightly",
            group="WebGroup",
            recurrence=recurrence,
            start_time=kw.pop("start", None),  # type: ignore[arg-type]
            end_time=kw.pop("end", None),  # type: ignore[arg-type]
            desired=2,
            **kw,  # type: ignore[arg-type]
        )
    )


def test_every_five_minutes() -> None:
    run = action("*/5 * * * *")
    t = utc(2026, 12, 6, 10, 2, 30)
    assert run.next_run(t) == utc(2026, 12, 6, 10, 5)
    # Strictly after: a run time itself is not its own next run.
    assert run.next_run(utc(2026, 12, 6, 10, 5)) == utc(2026, 12, 6, 10, 10)
    assert run.due(t, utc(2026, 12, 6, 10, 5))
    assert not run.due(t, utc(2026, 12, 6, 10, 4, 59))


def test_weekdays_at_nine_in_a_time_zone() -> None:
    run = action("0 9 * * MON-FRI", time_zone="America/New_York")
    # Saturday 2026-12-05 -> Monday 2026-12-07 09:00 EST = 14:00 UTC.
    assert run.next_run(utc(2026, 12, 5, 12, 0)) == utc(2026, 12, 7, 14, 0)
    # In summer (EDT) 9:00 is 13:00 UTC.
    assert run.next_run(utc(2026, 7, 3, 14, 0)) == utc(2026, 7, 6, 13, 0)  # Fri after 9 -> Mon


def test_lists_ranges_steps_and_names() -> None:
    cron = parse_cron("0,30 8-18/2 1,15 JAN,jul-SEP sun")
    assert cron.minutes == {0, 30}
    assert cron.hours == {8, 10, 12, 14, 16, 18}
    assert cron.days == {1, 15}
    assert cron.months == {1, 7, 8, 9}
    assert cron.weekdays == {0}
    assert not cron.days_any
    assert parse_cron("0 0 * * 7").weekdays == {0}
    assert parse_cron("5/20 * * * *").minutes == {5, 25, 45}


def test_day_of_month_or_day_of_week() -> None:
    # Both restricted: either matches (Unix cron).
    run = action("0 12 13 * FRI")
    # From Monday 2026-12-07: Friday the 11th comes before the 13th.
    assert run.next_run(utc(2026, 12, 7)) == utc(2026, 12, 11, 12)
    assert run.next_run(utc(2026, 12, 11, 13)) == utc(2026, 12, 13, 12)


def test_leap_day() -> None:
    run = action("0 0 29 2 *")
    assert run.next_run(utc(2026, 12, 6)) == utc(2028, 2, 29)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("* * * *", "has 4 fields"),
        ("* * * * * *", "has 6 fields"),
        ("60 * * * *", "the minute field takes 0-59"),
        ("* 24 * * *", "the hour field takes 0-23"),
        ("* * 0 * *", "the day of month field takes 1-31"),
        ("* * * 13 *", "the month field takes 1-12 or JAN-DEC"),
        ("* * * * 8", "the day of week field takes 0-7 or SUN-SAT"),
        ("*/0 * * * *", "the step after / must be"),
        ("10-5 * * * *", "the range starts after it ends"),
        ("* * * FOO *", "'FOO' in the month field"),
        ("1,,2 * * * *", "'' in the minute field"),
        ("? * * * *", "'\\?' in the minute field"),
    ],
)
def test_invalid_cron(text: str, message: str) -> None:
    # The model checks Recurrence (testbed.model.cron); the runtime parses with the same code.
    with pytest.raises(BadInput, match=message):
        parse_cron(text)


def test_unknown_time_zone() -> None:
    with pytest.raises(BadInput, match="unknown time zone"):
        action("0 9 * * *", time_zone="Mars/Olympus_Mons")


def test_start_and_end_times() -> None:
    start = utc(2026, 12, 6, 10, 7)
    end = utc(2026, 12, 6, 10, 30)
    run = action("*/10 * * * *", start=start, end=end)
    # Runs at StartTime, then on the recurrence, and not after EndTime.
    assert run.next_run(utc(2026, 12, 6, 9, 0)) == start
    assert run.next_run(start) == utc(2026, 12, 6, 10, 10)
    assert run.next_run(utc(2026, 12, 6, 10, 20)) == utc(2026, 12, 6, 10, 30)
    assert run.next_run(utc(2026, 12, 6, 10, 30)) is None
    assert not run.due(utc(2026, 12, 6, 10, 30), utc(2026, 12, 7))


def test_one_time_action() -> None:
    at = utc(2026, 12, 6, 12)
    run = action(None, start=at)
    assert run.next_run(utc(2026, 12, 6, 11)) == at
    assert run.due(utc(2026, 12, 6, 11), at)
    assert run.next_run(at) is None
    assert not run.due(at, utc(2027, 1, 1))


def test_daylight_saving_gap_is_skipped() -> None:
    # 2027-03-14: New York clocks jump from 02:00 to 03:00; "30 2 * * *" has no 02:30 that day.
    run = action("30 2 * * *", time_zone="America/New_York")
    nxt = run.next_run(utc(2027, 3, 14, 5, 0))  # 00:00 EST
    assert nxt is not None
    local = datetime.fromtimestamp(nxt, tz=ZoneInfo("America/New_York"))
    assert (local.month, local.day, local.hour, local.minute) == (3, 15, 2, 30)


def test_describe() -> None:
    run = action("0 9 * * *", start=utc(2026, 12, 1))
    d = run.describe(utc(2026, 12, 6, 10))
    assert d["ScheduledActionName"] == "Nightly"
    assert d["Recurrence"] == "0 9 * * *"
    assert d["NextRun"] == "2026-12-07T09:00:00Z"
    assert d["StartTime"] == "2026-12-01T00:00:00Z"
    assert d["DesiredCapacity"] == 2
