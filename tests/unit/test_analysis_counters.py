"""testbed.analysis.counters: rates from cumulative counters, wraps, 64-bit and restarts."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from testbed.analysis.counters import (
    counter_increase,
    counter_modulus,
    counter_rates,
    rate_summary,
)
from testbed.analysis.load import load_results
from testbed.schemas import SNMP_COLUMNS
from tests.unit.analysis_data import full_results


def samples(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(SNMP_COLUMNS))


def one_counter(values, kind="Counter32", times=None, host="h") -> pd.DataFrame:
    times = times or [10.0 * i for i in range(len(values))]
    return samples(
        [[t, host, "IF-MIB::ifInOctets", "2", v, kind, ""] for t, v in zip(times, values)]
    )


def test_counter_increase_rules():
    assert counter_increase(100, 250, 2**32) == 150
    assert counter_increase(2**32 - 6, 4, 2**32) == 10  # one wrap
    assert counter_increase(5_000_000, 100, 2**32) is None  # restart, not a wrap
    assert counter_increase(2**64 - 1, 0, 2**64) == 1
    assert counter_increase(10**12, 50, 2**64) is None
    # A wrap is believed only below wrap_limit of the range.
    assert counter_increase(2**31, 2**30, 2**32) is None
    assert counter_increase(2**31, 2**30, 2**32, wrap_limit=0.9) == 3 * 2**30


def test_modulus_by_type():
    assert counter_modulus("Counter32") == 2**32
    assert counter_modulus("COUNTER64") == 2**64
    assert counter_modulus("Gauge32") is None
    assert counter_modulus(float("nan")) is None


def test_counter32_wrap_rate():
    rates = counter_rates(one_counter([4_294_967_000, 200, 1_200]))
    # 2**32 - 4294967000 = 296, plus 200 -> 496 in 10 s; then 1000 in 10 s
    assert rates["delta"].tolist() == [496.0, 1000.0]
    assert rates["rate"].tolist() == [49.6, 100.0]
    assert rates["note"].tolist() == ["wrap", ""]
    assert rates["time"].tolist() == [10.0, 20.0]
    assert rates["interval_s"].tolist() == [10, 10]


def test_counter64_is_exact_near_the_top():
    # float64 has 11 bits too few here: a float computation would give 0 or 2048.
    base = 2**63 + 7
    rates = counter_rates(one_counter([base, base + 100, 2**64 - 4, 96], kind="Counter64"))
    assert rates["delta"].iloc[0] == 100.0
    assert rates["delta"].iloc[2] == 100.0
    assert rates["delta"].iloc[1] == pytest.approx(2**63 - 111)
    assert rates["note"].tolist() == ["", "", "wrap"]


def test_restart_is_skipped_not_wrapped():
    rates = counter_rates(one_counter([1_000, 5_000, 30, 530]))
    assert rates["note"].tolist() == ["", "reset", ""]
    assert rates["rate"].iloc[0] == 400.0
    assert math.isnan(rates["rate"].iloc[1])
    assert rates["rate"].iloc[2] == 50.0
    summary = rate_summary(rates).iloc[0]
    assert summary["no_rate"] == 1
    assert summary["wraps"] == 0
    assert summary["intervals"] == 3
    assert summary["mean_rate"] == pytest.approx(225.0)  # the reset interval is not a rate


def test_groups_types_errors_and_time_order():
    rows = pd.concat(
        [
            one_counter([0, 100, 300], host="a"),
            one_counter([0, 1000, 2000], host="b"),
            samples(
                [
                    [5.0, "a", "IF-MIB::ifInOctets", "2", None, None, "timeout"],
                    [0.0, "a", "HOST-RESOURCES-MIB::hrProcessorLoad", "1", 50, "Integer", ""],
                    [10.0, "a", "HOST-RESOURCES-MIB::hrProcessorLoad", "1", 10, "Integer", ""],
                ]
            ),
        ]
    ).sample(frac=1, random_state=3)  # shuffled: rates must follow time, not row order
    rates = counter_rates(rows)
    assert set(rates["object"]) == {"IF-MIB::ifInOctets"}  # gauges have no rate
    assert rates[rates["host"] == "a"]["rate"].tolist() == [10.0, 20.0]
    assert rates[rates["host"] == "b"]["rate"].tolist() == [100.0, 100.0]


def test_repeated_time_has_no_rate():
    rates = counter_rates(one_counter([0, 10, 20], times=[0.0, 0.0, 1.0]))
    assert rates["note"].tolist() == ["time", ""]
    assert rates["rate"].iloc[1] == 10.0


def test_rates_from_a_loaded_results_directory(tmp_path):
    results = load_results(full_results(tmp_path))
    rates = counter_rates(results.snmp)
    by_object = rates.groupby("object")["rate"].apply(list).to_dict()
    assert by_object == {"IF-MIB::ifHCOutOctets": [1.5, 10.0], "IF-MIB::ifInOctets": [49.6, 100.0]}
    assert rates["t"].tolist() == [10.0, 20.0, 10.0, 20.0]
