"""A clock for unit tests of timeout logic (testbed.waiting.Clock): sleeping only moves its
time forward, so a test checks when code gives up by that clock, never by the wall clock."""

from __future__ import annotations


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.time = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, seconds
        self.sleeps.append(seconds)
        self.time += seconds

    @property
    def slept(self) -> float:
        return sum(self.sleeps)
