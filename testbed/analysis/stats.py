"""Load-balancing statistics on request rows (REQUEST_COLUMNS): shares, spread, latency, errors.

Definitions used throughout:
- a request *failed* when its `error` cell is not empty, or when HTTP answered 5xx;
- a target's *share* is its number of requests divided by the group's requests that name a
  backend (requests that failed before reaching a backend cannot be attributed to one);
- *coefficient of variation* (CoV) is the population standard deviation (ddof=0) of the
  per-target counts divided by their mean: 0 is a perfectly even spread;
- *max/avg* is the busiest target's count divided by the mean count: 1 is perfectly even;
- percentiles interpolate linearly between samples (numpy's default, like pandas quantile).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

DEFAULT_PERCENTILES = (50, 90, 99)


def _groups(by: str | Sequence[str] | None) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def failed(requests: pd.DataFrame) -> pd.Series:
    """True for each request that failed: an error was recorded, or HTTP answered 5xx."""
    has_error = requests["error"].notna() & (requests["error"].astype(str).str.strip() != "")
    server_error = pd.to_numeric(requests["status"], errors="coerce").ge(500)
    return (has_error | server_error).astype(bool)


def error_kind(requests: pd.DataFrame) -> pd.Series:
    """Each request's error kind: the `error` text, "http-<status>" for 5xx, or NaN if ok."""
    status = pd.to_numeric(requests["status"], errors="coerce")
    kind: pd.Series = pd.Series(np.nan, index=requests.index, dtype=object)
    http = status.ge(500)
    kind[http] = "http-" + status[http].astype(int).astype(str)
    has_error = requests["error"].notna() & (requests["error"].astype(str).str.strip() != "")
    kind[has_error] = requests.loc[has_error, "error"].astype(str).str.strip()
    return kind


def coefficient_of_variation(values: Iterable[float]) -> float:
    """Population std / mean of `values` (NaN when empty or the mean is 0)."""
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0 or arr.mean() == 0:
        return float("nan")
    return float(arr.std(ddof=0) / arr.mean())


def max_avg_ratio(values: Iterable[float]) -> float:
    """Largest value / mean of `values` (NaN when empty or the mean is 0)."""
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0 or arr.mean() == 0:
        return float("nan")
    return float(arr.max() / arr.mean())


def target_share(
    requests: pd.DataFrame,
    by: str | Sequence[str] | None = None,
    *,
    targets: Iterable[str] | None = None,
    column: str = "backend",
    only_ok: bool = False,
) -> pd.DataFrame:
    """Requests per target and their fraction within each group: [by..., column, count, share].

    `targets` lists targets that should appear even with no request (they count as 0 in the
    spread); `only_ok` leaves out failed requests (e.g. 5xx answered by a backend).
    """
    groups = _groups(by)
    rows = requests[requests[column].notna()]
    if only_ok:
        rows = rows[~failed(rows)]
    counts = rows.groupby([*groups, column], dropna=False).size().rename("count").reset_index()
    if targets is not None:
        counts = _with_missing_targets(counts, groups, column, list(targets))
    counts["count"] = counts["count"].astype(int)
    if groups:
        totals = counts.groupby(groups, dropna=False)["count"].transform("sum")
    else:
        totals = pd.Series(counts["count"].sum(), index=counts.index)
    counts["share"] = (counts["count"] / totals.where(totals > 0)).astype(float)
    return counts.sort_values([*groups, column], ignore_index=True)


def _with_missing_targets(
    counts: pd.DataFrame, groups: list[str], column: str, targets: list[str]
) -> pd.DataFrame:
    names = sorted(set(targets) | set(counts[column]))
    if not groups:
        full = pd.DataFrame({column: names})
    else:
        keys = counts[groups].drop_duplicates()
        full = keys.merge(pd.DataFrame({column: names}), how="cross")
    merged = full.merge(counts, on=[*groups, column], how="left")
    merged["count"] = merged["count"].fillna(0)
    return merged


def balance(shares: pd.DataFrame, by: str | Sequence[str] | None = None) -> pd.DataFrame:
    """Spread of a target_share table per group: targets, requests, min/max share, CoV, max/avg."""
    groups = _groups(by)

    def summarise(frame: pd.DataFrame) -> pd.Series:
        return pd.Series(
            {
                "targets": len(frame),
                "requests": int(frame["count"].sum()),
                "min_share": frame["share"].min(),
                "max_share": frame["share"].max(),
                "cov": coefficient_of_variation(frame["count"]),
                "max_avg": max_avg_ratio(frame["count"]),
            }
        )

    if not groups:
        return summarise(shares).to_frame().T.astype({"targets": int, "requests": int})
    out = [summarise(frame).rename(key) for key, frame in shares.groupby(groups, dropna=False)]
    table = pd.DataFrame(out)
    table.index = pd.MultiIndex.from_tuples(
        [k if isinstance(k, tuple) else (k,) for k in table.index], names=groups
    )
    return table.reset_index().astype({"targets": int, "requests": int})


def expected_share(
    targets_by_az: Mapping[str, Sequence[str]],
    cross_zone: bool,
    client_share_by_az: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Each target's share as AWS would spread it, clients split over the AZ nodes.

    Cross-zone on: every target gets 1/N. Off: each AZ's node gets its clients' share (even
    by default, the DNS answer rotating over the nodes) and splits it over its own AZ's
    targets. AZs without targets are left out and the client shares renormalised, as AWS
    takes a node without healthy targets out of DNS.
    """
    azs = {az: list(ts) for az, ts in targets_by_az.items() if ts}
    everyone = [t for ts in azs.values() for t in ts]
    if not everyone:
        return {}
    if cross_zone:
        return {t: 1 / len(everyone) for t in everyone}
    if client_share_by_az is None:
        weights = dict.fromkeys(azs, 1.0)
    else:
        weights = {az: float(client_share_by_az.get(az, 0.0)) for az in azs}
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("client shares of the AZs with targets add up to 0")
    return {t: weights[az] / total / len(ts) for az, ts in azs.items() for t in ts}


def latency_percentiles(
    requests: pd.DataFrame,
    by: str | Sequence[str] | None = None,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    *,
    only_ok: bool = True,
) -> pd.DataFrame:
    """Latency (ms) per group: count, mean, p<q> for each percentile, max.

    Failed requests are left out by default: their latency is the time to the error (often
    a timeout), which says nothing about the service time of the targets.
    """
    groups = _groups(by)
    rows = requests[requests["latency_ms"].notna()]
    if only_ok:
        rows = rows[~failed(rows)]

    def summarise(latency: pd.Series) -> pd.Series:
        values = {"count": len(latency), "mean": float(latency.mean())}
        for q in percentiles:
            values[f"p{q:g}"] = float(latency.quantile(q / 100)) if len(latency) else np.nan
        values["max"] = float(latency.max())
        return pd.Series(values)

    if not groups:
        table = summarise(rows["latency_ms"]).to_frame().T
    else:
        table = rows.groupby(groups, dropna=False)["latency_ms"].apply(summarise).unstack()
        table = table.reset_index()
    return table.astype({"count": int})


def error_rates(requests: pd.DataFrame, by: str | Sequence[str] | None = None) -> pd.DataFrame:
    """Failed requests per error kind and group: [by..., kind, count, rate of all requests]."""
    groups = _groups(by)
    kinds = error_kind(requests)
    errors = requests.assign(kind=kinds)[kinds.notna()]
    counts = errors.groupby([*groups, "kind"], dropna=False).size().rename("count").reset_index()
    if groups:
        totals = requests.groupby(groups, dropna=False).size().rename("requests")
        counts = counts.merge(totals.reset_index(), on=groups)
    else:
        counts["requests"] = len(requests)
    counts["rate"] = counts["count"] / counts["requests"]
    return counts.sort_values(
        [*groups, "count"], ascending=[True] * len(groups) + [False], ignore_index=True
    )


def requests_per_second(
    requests: pd.DataFrame,
    bin_s: float = 1.0,
    by: str | Sequence[str] | None = None,
    time_column: str = "t",
) -> pd.DataFrame:
    """Requests started per time bin: [by..., t, ok, failed, total, rps]; empty bins are 0.

    `t` is the bin's start (same unit as `time_column`, seconds since the run's start when
    loaded with load_results; without a `t` column, seconds since the first request);
    every group gets every bin from the first to the last.
    """
    if bin_s <= 0:
        raise ValueError("bin_s must be positive")
    groups = _groups(by)
    if time_column == "t" and "t" not in requests:
        times = requests["start"] - requests["start"].min()
    else:
        times = requests[time_column]
    bins = np.floor(times.to_numpy(dtype=float) / bin_s)
    frame = requests[groups].copy() if groups else pd.DataFrame(index=requests.index)
    frame["bin"] = bins
    frame["failed"] = failed(requests).astype(int)
    frame["ok"] = 1 - frame["failed"]
    frame = frame[np.isfinite(frame["bin"])]
    if frame.empty:
        return pd.DataFrame(columns=[*groups, "t", "ok", "failed", "total", "rps"])
    counts = frame.groupby([*groups, "bin"], dropna=False)[["ok", "failed"]].sum()
    all_bins = np.arange(frame["bin"].min(), frame["bin"].max() + 1)
    full: pd.Index
    if groups:
        keys = counts.index.droplevel("bin").unique()
        full = pd.MultiIndex.from_tuples(
            [(*(k if isinstance(k, tuple) else (k,)), b) for k in keys for b in all_bins],
            names=[*groups, "bin"],
        )
    else:
        full = pd.Index(all_bins, name="bin")
    counts = counts.reindex(full, fill_value=0).reset_index()
    counts["t"] = counts.pop("bin") * bin_s
    counts["total"] = counts["ok"] + counts["failed"]
    counts["rps"] = counts["total"] / bin_s
    return counts[[*groups, "t", "ok", "failed", "total", "rps"]]


def chi2_sf(statistic: float, dof: int) -> float:
    """P(X >= statistic) for X chi-square distributed with `dof` degrees of freedom.

    The regularized upper incomplete gamma Q(dof/2, statistic/2): a series below a+1, a
    continued fraction (modified Lentz) above, as in Numerical Recipes (no scipy needed).
    """
    if dof < 1:
        raise ValueError("dof must be at least 1")
    if statistic <= 0:
        return 1.0
    if not math.isfinite(statistic):
        return 0.0
    a, x = dof / 2.0, statistic / 2.0
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        n = a
        while abs(term) > abs(total) * 1e-15:
            n += 1
            term *= x / n
            total += term
        return float(max(0.0, 1.0 - total * math.exp(log_front)))
    tiny = 1e-300
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return float(min(1.0, math.exp(log_front) * h))


def goodness_of_fit(
    shares: pd.DataFrame, expected: Mapping[str, float], *, column: str = "backend"
) -> dict[str, float | str | int]:
    """How far a target_share table is from expected shares: Pearson's chi-square test.

    Returns chi2, dof, p_value (each connection an independent draw with the expected
    probabilities), max_abs_dev (largest |share - expected|, as a fraction) and the target
    that has it. Targets missing from `shares` count 0; a target with requests but no
    expected share makes chi2 infinite (p_value 0).
    """
    counts = shares.groupby(column)["count"].sum()
    names = sorted(set(expected) | set(counts.index.astype(str)))
    total_expected = sum(expected.values())
    if total_expected <= 0:
        raise ValueError("expected shares add up to 0")
    n = float(counts.sum())
    chi2, worst, worst_dev = 0.0, "", -1.0
    for name in names:
        observed = float(counts.get(name, 0))
        p = expected.get(name, 0.0) / total_expected
        dev = abs((observed / n if n else 0.0) - p)
        if dev > worst_dev:
            worst, worst_dev = name, dev
        if p > 0:
            chi2 += (observed - n * p) ** 2 / (n * p)
        elif observed > 0:
            chi2 = math.inf
    dof = max(1, sum(1 for v in expected.values() if v > 0) - 1)
    return {
        "chi2": chi2,
        "dof": dof,
        "p_value": chi2_sf(chi2, dof),
        "max_abs_dev": worst_dev,
        "worst_target": worst,
        "connections": int(n),
    }
