"""Rates per second from cumulative SNMP counters in tidy rows (SNMP_COLUMNS).

A counter only grows, modulo its width: Counter32 wraps at 2**32, Counter64 at 2**64. Between
two consecutive samples of one counter (same host, object and index) the increase is
`new - old`; when that is negative it is either a wrap (add 2**32 or 2**64) or a
discontinuity such as an agent restart (the counter began again at 0). Without
ifCounterDiscontinuityTime we cannot tell them apart for sure, so a negative step counts as a
wrap only when the wrapped increase is below `wrap_limit` of the counter's range (by default
half of it, i.e. the counter did not go more than half way round between two polls);
otherwise it is a reset and that interval has no rate.

Arithmetic is done on Python ints: a Counter64 near 2**64 is not exact in a float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

COUNTER_MODULUS = {"counter32": 2**32, "counter64": 2**64}
RATE_COLUMNS = ("time", "interval_s", "delta", "rate", "note")


def counter_modulus(snmp_type: Any) -> int | None:
    """2**32 for Counter32, 2**64 for Counter64 (any case), None for other types."""
    if not isinstance(snmp_type, str):
        return None
    return COUNTER_MODULUS.get(snmp_type.strip().lower())


def counter_increase(old: int, new: int, modulus: int, wrap_limit: float = 0.5) -> int | None:
    """Increase of a counter from `old` to `new`, across one wrap; None for a reset."""
    delta = new - old
    if delta >= 0:
        return delta
    wrapped = delta + modulus
    if 0 <= wrapped < wrap_limit * modulus:
        return wrapped
    return None


def counter_rates(
    samples: pd.DataFrame,
    keys: Sequence[str] = ("host", "object", "index"),
    wrap_limit: float = 0.5,
) -> pd.DataFrame:
    """Per-second rate between consecutive samples of each Counter32/Counter64.

    Returns [keys..., time, t (if the input has it), interval_s, delta, rate, note] with one
    row per pair of samples, at the later sample's time. note is "" (plain), "wrap" (the
    counter wrapped once), "reset" (negative step that is not a wrap: delta and rate NaN) or
    "time" (the time did not advance: delta and rate NaN). Rows with an `error`, without a
    value, or of other types (gauges, strings) are ignored.
    """
    keys = list(keys)
    modulus = samples["type"].map(counter_modulus)
    usable = modulus.notna() & samples["value"].notna() & samples["time"].notna()
    if "error" in samples:
        error = samples["error"]
        usable &= error.isna() | (error.astype(str).str.strip() == "")
    rows = samples[usable].assign(wrap_modulus=modulus[usable])
    has_t = "t" in rows
    out: list[dict[str, Any]] = []
    for key, group in rows.sort_values("time", kind="stable").groupby(
        keys, sort=True, dropna=False
    ):
        key = key if isinstance(key, tuple) else (key,)
        t_values = group["t"] if has_t else [None] * len(group)
        previous = None
        # Lists of Python ints: numpy int64/uint64 would overflow or round near 2**64.
        values = [int(v) for v in group["value"]]
        moduli = [int(m) for m in group["wrap_modulus"]]
        for sample in zip(group["time"].astype(float), values, moduli, t_values):
            if previous is not None:
                out.append(_rate_row(dict(zip(keys, key)), previous, sample, wrap_limit, has_t))
            previous = sample
    columns = keys + ["time"] + (["t"] if has_t else []) + list(RATE_COLUMNS[1:])
    return pd.DataFrame(out, columns=columns)


def _rate_row(
    key: dict[str, Any], previous: tuple, sample: tuple, wrap_limit: float, has_t: bool
) -> dict[str, Any]:
    time0, value0, _, _ = previous
    time1, value1, modulus, t1 = sample
    row = dict(key, time=time1, interval_s=time1 - time0)
    if has_t:
        row["t"] = t1
    increase = counter_increase(value0, value1, modulus, wrap_limit)
    if time1 <= time0:
        note, increase = "time", None
    elif increase is None:
        note = "reset"
    else:
        note = "wrap" if value1 < value0 else ""
    row["delta"] = float("nan") if increase is None else float(increase)
    row["rate"] = float("nan") if increase is None else increase / (time1 - time0)
    row["note"] = note
    return row


def rate_summary(
    rates: pd.DataFrame, keys: Sequence[str] = ("host", "object", "index")
) -> pd.DataFrame:
    """Mean and max `rate` per counter, intervals, those without a rate, wraps (if noted)."""
    keys = list(keys)
    grouped = rates.groupby(keys, dropna=False)
    table = grouped.agg(
        mean_rate=("rate", "mean"), max_rate=("rate", "max"), intervals=("rate", "size")
    )
    table["no_rate"] = grouped["rate"].apply(lambda r: int(r.isna().sum()))
    if "note" in rates:
        table["wraps"] = grouped["note"].apply(lambda n: int((n == "wrap").sum()))
    return table.reset_index()
