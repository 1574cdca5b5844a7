"""The one way to wait for something: poll a fact until it holds, or fail saying what was
awaited and what was seen last.

    wait_for(lambda: proc_ready(pid), timeout=10, what="snmpd of WebA1 to answer")
    wait_for(lambda: status().get("ready") or None, 30, "the switches", last=lambda: status())

A condition returns a true value when the fact holds (that value is returned), or a false
one to be asked again; it may raise to stop the wait early (e.g. the process died).

The clock is a parameter: unit tests pass a FakeClock (tests/fakeclock.py) whose sleep only
moves its time, to check timeout logic without waiting for, or asserting on, the wall clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from testbed.errors import LabError

T = TypeVar("T")
DEFAULT_INTERVAL = 0.05


class Clock(Protocol):
    """Where waits read the time and how they pause."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """The real clock: time.monotonic() and time.sleep()."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


REAL_CLOCK: Clock = MonotonicClock()


class WaitTimeout(LabError):
    """What was awaited did not happen in time."""

    def __init__(self, what: str, timeout: float, last: Any = None) -> None:
        seen = "" if last is None else f" (last seen: {_short(last)})"
        super().__init__(f"timed out after {timeout:g} s waiting for {what}{seen}")
        self.what = what
        self.timeout = timeout
        self.last = last


def wait_for(
    condition: Callable[[], T | None],
    timeout: float,
    what: str,
    interval: float = DEFAULT_INTERVAL,
    last: Callable[[], Any] | None = None,
    clock: Clock = REAL_CLOCK,
) -> T:
    """Call `condition` every `interval` s until it returns a true value and return that
    value; WaitTimeout naming `what` (and `last()` or the condition's last value) after
    `timeout` s. The condition is asked at least once, and once more at the deadline. (A
    condition returning X | None gives an X: None is never returned.)"""
    deadline = clock.now() + timeout
    while True:
        value = condition()
        if value:
            return value
        left = deadline - clock.now()
        if left <= 0:
            seen = last() if last is not None else value
            raise WaitTimeout(what, timeout, None if seen is None or seen is False else seen)
        clock.sleep(min(interval, left))


def _short(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
