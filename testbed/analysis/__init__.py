"""Analysis of experiment results with pandas: load, statistics, counter rates, failover, plots.

Typical use::

    from testbed.analysis import load_results, latest, target_share, balance
    results = load_results(latest("cross_zone"))
    shares = target_share(results.requests, by="client")
    print(balance(shares, by="client"))

Modules: load (results directory -> DataFrames), stats (shares, CoV, max/avg, percentiles,
errors, requests per second), counters (SNMP counter rates with wraps and resets), failover
(detection, recovery, client error window), plots (PNG figures), report (`testbed report`).
"""

from __future__ import annotations

from testbed.analysis.counters import counter_increase, counter_rates, rate_summary
from testbed.analysis.failover import Failover, failover_times, find_fault
from testbed.analysis.load import Results, latest, layout_of, load_results, newest_run
from testbed.analysis.stats import (
    balance,
    chi2_sf,
    coefficient_of_variation,
    error_kind,
    error_rates,
    expected_share,
    failed,
    goodness_of_fit,
    latency_percentiles,
    max_avg_ratio,
    requests_per_second,
    target_share,
)

__all__ = [
    "Failover",
    "Results",
    "balance",
    "chi2_sf",
    "coefficient_of_variation",
    "counter_increase",
    "counter_rates",
    "error_kind",
    "error_rates",
    "expected_share",
    "failed",
    "failover_times",
    "find_fault",
    "goodness_of_fit",
    "latency_percentiles",
    "latest",
    "layout_of",
    "load_results",
    "max_avg_ratio",
    "newest_run",
    "rate_summary",
    "requests_per_second",
    "target_share",
]
