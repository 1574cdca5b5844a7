"""testbed.analysis.stats on hand-computed data: shares, CoV, max/avg, percentiles, errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from testbed.analysis.load import load_results
from testbed.analysis.stats import (
    balance,
    coefficient_of_variation,
    error_kind,
    error_rates,
    expected_share,
    failed,
    latency_percentiles,
    max_avg_ratio,
    requests_per_second,
    target_share,
)
from testbed.schemas import REQUEST_COLUMNS
from tests.unit.analysis_data import (
    AZ_A,
    AZ_B,
    cross_zone_requests,
    request,
    write_csv,
    write_meta,
)


@pytest.fixture
def cross_zone(tmp_path) -> pd.DataFrame:
    write_meta(tmp_path)
    write_csv(tmp_path / "requests.csv", REQUEST_COLUMNS, cross_zone_requests())
    return load_results(tmp_path).requests


def frame(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(REQUEST_COLUMNS))


def test_cross_zone_off_gives_25_and_6_25_percent(cross_zone):
    shares = target_share(cross_zone).set_index("backend")
    assert shares.loc["WebA1", "count"] == 400
    assert shares.loc["WebB8", "count"] == 100
    for target in AZ_A:
        assert shares.loc[target, "share"] == pytest.approx(0.25)
    for target in AZ_B:
        assert shares.loc[target, "share"] == pytest.approx(0.0625)
    assert shares["share"].sum() == pytest.approx(1.0)


def test_expected_share_matches_aws_example():
    targets = {"us-east-1a": AZ_A, "us-east-1b": AZ_B}
    off = expected_share(targets, cross_zone=False)
    assert off["WebA1"] == pytest.approx(0.25)
    assert off["WebB3"] == pytest.approx(0.0625)
    on = expected_share(targets, cross_zone=True)
    assert list(on.values()) == pytest.approx([0.1] * 10)
    skewed = expected_share(targets, False, {"us-east-1a": 0.2, "us-east-1b": 0.8})
    assert skewed["WebA1"] == pytest.approx(0.1)
    assert skewed["WebB1"] == pytest.approx(0.1)
    # An AZ without targets gets no DNS answers: its clients go to the other AZ.
    assert expected_share({"a": ["X"], "b": []}, False) == {"X": 1.0}


def test_balance_of_the_cross_zone_case(cross_zone):
    # counts 400, 400, 8 x 100: mean 160, population std sqrt((2*240^2 + 8*60^2)/10) = 120
    row = balance(target_share(cross_zone)).iloc[0]
    assert row["targets"] == 10
    assert row["requests"] == 1600
    assert row["cov"] == pytest.approx(0.75)
    assert row["max_avg"] == pytest.approx(2.5)
    assert row["min_share"] == pytest.approx(0.0625)
    assert row["max_share"] == pytest.approx(0.25)


def test_share_per_group(cross_zone):
    shares = target_share(cross_zone, by="client")
    a = shares[shares["client"] == "ClientA"].set_index("backend")["share"]
    assert a.to_dict() == {"WebA1": 0.5, "WebA2": 0.5}
    per_client = balance(shares, by="client").set_index("client")
    assert per_client.loc["ClientB", "targets"] == 8
    assert per_client.loc["ClientB", "cov"] == pytest.approx(0.0)
    assert per_client.loc["ClientA", "max_avg"] == pytest.approx(1.0)


def test_targets_without_requests_count_as_zero():
    rows = frame([request("c", i, i, "A", "a") for i in range(3)] + [request("c", 3, 3, "B", "a")])
    shares = target_share(rows, targets=["A", "B", "C"]).set_index("backend")
    assert shares.loc["C", "count"] == 0
    assert shares.loc["C", "share"] == 0.0
    # counts 3, 1, 0: mean 4/3, population std sqrt(((5/3)^2 + (1/3)^2 + (4/3)^2) / 3)
    std = math.sqrt(((5 / 3) ** 2 + (1 / 3) ** 2 + (4 / 3) ** 2) / 3)
    assert balance(shares.reset_index()).iloc[0]["cov"] == pytest.approx(std / (4 / 3))


def test_cov_and_max_avg_definitions():
    assert coefficient_of_variation([1, 1, 1, 1]) == 0.0
    assert coefficient_of_variation([2, 4, 4, 4, 5, 5, 7, 9]) == pytest.approx(2 / 5)  # ddof 0
    assert math.isnan(coefficient_of_variation([]))
    assert math.isnan(coefficient_of_variation([0, 0]))
    assert max_avg_ratio([1, 2, 3]) == pytest.approx(1.5)
    assert math.isnan(max_avg_ratio([]))


def test_latency_percentiles_interpolate_linearly():
    rows = frame(
        [request("c", i, i, "A", "a", latency_ms=float(i + 1)) for i in range(100)]
        + [request("c", 100, 100, None, None, latency_ms=5000.0, status=None, error="timeout")]
    )
    table = latency_percentiles(rows).iloc[0]
    assert table["count"] == 100  # the timeout is left out
    assert table["p50"] == pytest.approx(50.5)
    assert table["p90"] == pytest.approx(90.1)
    assert table["p99"] == pytest.approx(99.01)
    assert table["max"] == 100.0
    assert table["mean"] == pytest.approx(50.5)
    with_errors = latency_percentiles(rows, only_ok=False, percentiles=(50,)).iloc[0]
    assert with_errors["max"] == 5000.0
    assert with_errors["p50"] == 51.0
    assert "p90" not in with_errors


def test_latency_percentiles_per_group():
    rows = frame(
        [request("c1", i, i, "A", "a", latency_ms=10.0) for i in range(5)]
        + [request("c2", i, i, "A", "a", latency_ms=float(i)) for i in range(5)]
    )
    table = latency_percentiles(rows, by="client").set_index("client")
    assert table.loc["c1", "p99"] == 10.0
    assert table.loc["c2", "p50"] == 2.0
    assert table.loc["c2", "count"] == 5


def test_failed_and_error_rates():
    rows = frame(
        [
            request("c", 0, 0, "A", "a"),
            request("c", 1, 1, "A", "a", status=503),
            request("c", 2, 2, None, None, status=None, error="timeout"),
            request("c", 3, 3, None, None, status=None, error="timeout"),
            request("c", 4, 4, None, None, status=None, error="reset"),
            request("d", 0, 0, "B", "b", status=404),  # a 4xx is an answer, not a failure
        ]
    )
    assert failed(rows).tolist() == [False, True, True, True, True, False]
    assert error_kind(rows).tolist()[1:5] == ["http-503", "timeout", "timeout", "reset"]
    table = error_rates(rows)
    assert table["kind"].tolist() == ["timeout", "http-503", "reset"]
    assert table["count"].tolist() == [2, 1, 1]
    assert table["rate"].tolist() == pytest.approx([2 / 6, 1 / 6, 1 / 6])
    per_client = error_rates(rows, by="client")
    assert set(per_client["client"]) == {"c"}
    assert (per_client["requests"] == 5).all()


def test_requests_per_second_fills_empty_bins():
    rows = frame(
        [
            request("c", 0, 0.1, "A", "a"),
            request("c", 1, 0.7, "A", "a"),
            request("c", 2, 3.2, None, None, status=None, error="timeout"),
        ]
    )
    rows["t"] = rows["start"] - rows["start"].min() + 0.1
    rate = requests_per_second(rows, bin_s=1.0)
    assert rate["t"].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert rate["ok"].tolist() == [2, 0, 0, 0]
    assert rate["failed"].tolist() == [0, 0, 0, 1]
    half = requests_per_second(rows, bin_s=0.5)
    assert half["rps"].iloc[0] == 2.0
    assert half["rps"].iloc[1] == 2.0
    per_client = requests_per_second(rows.assign(client=["x", "y", "x"]), by="client")
    assert len(per_client) == 8  # both clients get every bin
    assert per_client.groupby("client")["total"].sum().to_dict() == {"x": 2, "y": 1}
    with pytest.raises(ValueError, match="bin_s must be positive"):
        requests_per_second(rows, bin_s=0)
    assert np.array_equal(rate["total"], rate["ok"] + rate["failed"])
    # Without a `t` column the first request's start is time 0.
    no_t = requests_per_second(rows.drop(columns="t"), bin_s=1.0)
    assert no_t["t"].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert no_t["ok"].tolist() == [2, 0, 0, 0]
