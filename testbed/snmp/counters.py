"""Counter maths: per-second rates from successive polls of SNMP counters.

Pure functions over rows in testbed.schemas.SNMP_COLUMNS layout (dicts), no I/O.

- A counter that went down wrapped: Counter32 at 2**32, Counter64 at 2**64 (RFC 2578 says a
  counter only ever increases, modulo its width). One wrap per interval is assumed, so a
  Counter32 on a busy link must be polled faster than it can wrap (34 s at 1 Gbit/s); that
  is why the HC (64-bit) twin of an IF-MIB counter is preferred wherever the agent has it.
- sysUpTime going backwards means the agent restarted and its counters began again at 0: no
  rate across a restart (a row with error "agent-restart" instead).
- A Counter64 going backwards cannot be a wrap in any lab's lifetime: it is a reset
  ("counter-reset"), for agents polled without sysUpTime.
- Rows with an error (timeouts) are skipped: the next good sample pairs with the last good
  one, over the longer interval.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from testbed.snmp.mibs import HC_TWIN, SYS_UPTIME

COUNTER_MODULUS = {"Counter32": 2**32, "Counter64": 2**64}
RATE_TYPE = "rate"  # the `type` of rate rows; `value` is units per second


@dataclass(frozen=True)
class Sample:
    """One good reading of a counter: when it arrived, its value, the agent's sysUpTime."""

    time: float
    value: int
    uptime: int | None = None  # sysUpTime (1/100 s) of the same poll, if polled


def counter_delta(previous: int, current: int, counter_type: str) -> int:
    """How much a counter grew from `previous` to `current`, across at most one wrap."""
    modulus = COUNTER_MODULUS[counter_type]
    for value in (previous, current):
        if not 0 <= value < modulus:
            raise ValueError(f"{value} is not a {counter_type} value")
    return (current - previous) % modulus


def agent_restarted(previous: Sample, current: Sample) -> bool:
    """True when sysUpTime went backwards between the two samples (the agent restarted)."""
    if previous.uptime is None or current.uptime is None:
        return False
    return current.uptime < previous.uptime


def rate(previous: Sample, current: Sample, counter_type: str) -> tuple[float | None, str]:
    """(units per second, "") or (None, why there is no rate)."""
    if current.time <= previous.time:
        return None, "no-interval"
    if agent_restarted(previous, current):
        return None, "agent-restart"
    if counter_type == "Counter64" and current.value < previous.value:
        return None, "counter-reset"
    delta = counter_delta(previous.value, current.value, counter_type)
    return delta / (current.time - previous.time), ""


def _number(value: object) -> int | None:
    if not isinstance(value, (int, float, str)):
        return None
    try:
        return int(value)  # CSV gives text, the poller gives ints
    except ValueError:
        return None


def hc_instances(rows: Iterable[dict]) -> set[tuple[str, str, str]]:
    """(host, 64-bit object, index) of every HC counter that was read successfully."""
    return {
        (r["host"], r["object"], str(r["index"]))
        for r in rows
        if r["object"] in HC_TWIN.values()
        and not r.get("error")
        and _number(r.get("value")) is not None
    }


class RateTracker:
    """Turns rows, fed in time order per host, into rate rows (prefers HC counters)."""

    def __init__(self, hc_seen: set[tuple[str, str, str]] | None = None) -> None:
        self.last: dict[tuple[str, str, str], tuple[Sample, str]] = {}
        self.uptime: dict[str, tuple[float, int]] = {}  # host -> (time, sysUpTime)
        self.hc_seen = hc_seen if hc_seen is not None else set()

    def feed(self, row: dict) -> dict | None:
        """The rate row for `row`, or None (first sample, not a counter, an error, ...)."""
        host, obj, index = row["host"], row["object"], str(row["index"])
        if row.get("error"):
            return None
        value = _number(row.get("value"))
        if obj == SYS_UPTIME and value is not None:
            self.uptime[host] = (float(row["time"]), value)
            return None
        if row.get("type") not in COUNTER_MODULUS or value is None:
            return None
        if obj in HC_TWIN:
            if (host, HC_TWIN[obj], index) in self.hc_seen:
                return None  # the 64-bit twin gives this rate without wrap worries
        elif obj in HC_TWIN.values():
            self.hc_seen.add((host, obj, index))
        now = float(row["time"])
        seen = self.uptime.get(host)
        # The sysUpTime of the same poll: same answer time, or read just before.
        uptime = seen[1] if seen and now - seen[0] < 0.5 else None
        current = Sample(now, value, uptime)
        key = (host, obj, index)
        before = self.last.get(key)
        self.last[key] = (current, row["type"])
        if before is None:
            return None
        previous, previous_type = before
        if previous_type != row["type"]:
            return None
        per_second, why = rate(previous, current, row["type"])
        return {
            "time": now,
            "host": host,
            "object": obj,
            "index": index,
            "value": "" if per_second is None else round(per_second, 3),
            "type": RATE_TYPE,
            "error": why,
        }


def rates(rows: Iterable[dict]) -> list[dict]:
    """Rate rows for every counter instance in `rows` (any order; sorted by time here)."""
    ordered = sorted(rows, key=lambda r: (float(r["time"]), r["object"] != SYS_UPTIME))
    tracker = RateTracker(hc_instances(ordered))
    out = []
    for row in ordered:
        produced = tracker.feed(row)
        if produced is not None:
            out.append(produced)
    return out
