"""testbed.waiting.wait_for on a fake clock: when it asks, when it gives up, what it says."""

from __future__ import annotations

import pytest

from testbed.waiting import WaitTimeout, wait_for
from tests.fakeclock import FakeClock


def test_returns_the_first_true_value_without_sleeping_when_the_fact_holds():
    clock = FakeClock()
    assert wait_for(lambda: {"ready": 1}, 5, "x", clock=clock) == {"ready": 1}
    assert clock.sleeps == []


def test_asks_every_interval_until_the_fact_holds():
    clock = FakeClock()
    answers = iter([None, 0, "", "done"])
    assert wait_for(lambda: next(answers), 5, "x", interval=0.5, clock=clock) == "done"
    assert clock.sleeps == [0.5, 0.5, 0.5]


def test_gives_up_at_the_timeout_after_a_last_look_at_the_deadline():
    clock = FakeClock()
    asked = []

    def never() -> None:
        asked.append(clock.now())

    with pytest.raises(WaitTimeout) as info:
        wait_for(never, 1.0, "the switches", interval=0.3, clock=clock)
    assert clock.slept == pytest.approx(1.0)  # the last sleep is cut at the deadline
    assert clock.sleeps[-1] == pytest.approx(0.1)
    assert asked[-1] == pytest.approx(1001.0)  # asked once more at the deadline itself
    assert len(asked) == 5
    assert "timed out after 1 s waiting for the switches" in str(info.value)
    assert info.value.last is None


def test_the_error_shows_what_was_seen_last():
    clock = FakeClock()
    with pytest.raises(WaitTimeout, match=r"last seen: \{'ready': \[\]\}"):
        wait_for(list, 1, "x", last=lambda: {"ready": []}, clock=clock)
    with pytest.raises(WaitTimeout, match=r"last seen: 0"):
        wait_for(lambda: 0, 1, "x", clock=clock)


def test_a_condition_that_raises_ends_the_wait_at_once():
    clock = FakeClock()

    def died() -> bool:
        raise RuntimeError("the process exited")

    with pytest.raises(RuntimeError, match="exited"):
        wait_for(died, 10, "x", clock=clock)
    assert clock.sleeps == []
