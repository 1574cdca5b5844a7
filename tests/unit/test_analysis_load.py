"""testbed.analysis.load: results directories into typed DataFrames, and clear errors."""

from __future__ import annotations

import json
import math

import pytest

from testbed.analysis.load import (
    METRICS,
    OTHER,
    REQUESTS,
    SNMP,
    TARGET_EVENTS,
    latest,
    layout_of,
    load_results,
)
from testbed.errors import BadInput
from testbed.schemas import METRIC_COLUMNS, REQUEST_COLUMNS, SNMP_COLUMNS
from tests.unit.analysis_data import START, full_results, request, write_csv, write_meta


def test_loads_every_layout_with_types_and_t(tmp_path):
    run = full_results(tmp_path / "run")
    write_csv(
        run / "lb_metrics.csv",
        METRIC_COLUMNS,
        [[START + 1, "AWS/NetworkELB", "NewFlowCount", "nlb", "", "", 12, "Count"]],
    )
    write_csv(run / "bench.csv", ["hosts", "up_s", "note"], [[4, 1.5, "x"], [10, 2.25, ""]])
    results = load_results(run)

    assert results.meta["seed"] == 7
    assert results.experiment == "handmade"
    assert results.start == START
    assert results.kinds == {
        "requests": REQUESTS,
        "target_events": TARGET_EVENTS,
        "snmp": SNMP,
        "lb_metrics": METRICS,
        "bench": OTHER,
    }
    req = results.requests
    assert req["latency_ms"].dtype == "float64"
    assert req["start"].dtype == "float64"
    assert req["t"].iloc[0] == 0.0
    assert req["t"].iloc[3] == pytest.approx(1.5)
    timeouts = req[req["error"] == "timeout"]
    assert len(timeouts) == 6
    assert timeouts["status"].isna().all()
    assert timeouts["backend"].isna().all()
    assert req["error"].isna().sum() == len(req) - 6  # empty cells are NaN, not ""
    events = results.target_events
    assert events["t"].tolist()[:3] == [0.5, 0.5, 10.0]
    metrics = results.metrics
    assert metrics["value"].iloc[0] == 12.0
    assert metrics["target_group"].isna().all()
    assert metrics["t"].iloc[0] == pytest.approx(1.0)
    other = results.tables["bench"]
    assert other["up_s"].tolist() == [1.5, 2.25]
    assert "t" not in other
    assert other["note"].isna().tolist() == [False, True]


def test_snmp_values_keep_counter64_exact(tmp_path):
    run = write_meta(tmp_path / "run")
    big = 2**64 - 10
    write_csv(
        run / "snmp.csv",
        SNMP_COLUMNS,
        [
            [START, "h", "IF-MIB::ifHCInOctets", "2", big, "Counter64", ""],
            [START, "h", "SNMPv2-MIB::sysName", "0", "WebA1", "OctetString", ""],
            [START, "h", "IF-MIB::ifHCInOctets", "3", None, None, "timeout"],
            [START, "h", "SNMPv2-MIB::sysName", "0", "1", "OctetString", ""],
            [START, "h", "IF-MIB::ifHCInOctets", "2", "12.5", "rate", ""],  # the poller's rates
        ],
    )
    snmp = load_results(run).snmp
    assert snmp["value"].iloc[0] == big
    assert isinstance(snmp["value"].iloc[0], int)
    assert snmp["value"].iloc[1] == "WebA1"
    assert snmp["value"].iloc[2] is None
    assert snmp["value"].iloc[3] == "1"
    assert snmp["value"].iloc[4] == 12.5


def test_layout_recognised_by_columns_in_any_order():
    assert layout_of([*list(reversed(REQUEST_COLUMNS)), "extra"]) == REQUESTS
    assert layout_of(REQUEST_COLUMNS[:-1]) == OTHER  # one column short is not the layout
    assert layout_of(SNMP_COLUMNS) == SNMP


def test_start_falls_back_to_the_earliest_time(tmp_path):
    run = write_meta(tmp_path / "run", start=None)
    write_csv(
        run / "r.csv",
        REQUEST_COLUMNS,
        [request("c", 0, 5.0, "A", "a"), request("c", 1, 2.0, "A", "a")],
    )
    results = load_results(run)
    assert results.start == START + 2.0
    assert results.requests["t"].tolist() == [3.0, 0.0]


def test_no_meta_json_is_bad_input(tmp_path):
    write_csv(tmp_path / "r.csv", ["a"], [[1]])
    with pytest.raises(BadInput, match=r"no meta\.json") as info:
        load_results(tmp_path)
    assert str(tmp_path) in str(info.value)
    with pytest.raises(BadInput, match="not a results directory"):
        load_results(tmp_path / "missing")


def test_invalid_meta_json_names_file_and_line(tmp_path):
    (tmp_path / "meta.json").write_text('{"start": 1,\n "end": }')
    with pytest.raises(BadInput) as info:
        load_results(tmp_path)
    assert f"{tmp_path / 'meta.json'}:2:" in str(info.value)
    (tmp_path / "meta.json").write_text("[1, 2]")
    with pytest.raises(BadInput, match="JSON object"):
        load_results(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({"start": "yesterday"}))
    with pytest.raises(BadInput, match="epoch seconds"):
        load_results(tmp_path)


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("", "empty CSV", 1),
        ("a,b,a\n1,2,3\n", "duplicate column", 1),
        ("a,,b\n1,2,3\n", "no name", 1),
        ("a,b\n1,2\n3,4,5\n", "3 fields, the header has 2", 3),
        ("a,b\n1,2\n3\n", "1 fields, the header has 2", 3),
    ],
)
def test_malformed_csv_names_file_and_line(tmp_path, text, message, line):
    write_meta(tmp_path)
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(BadInput, match=message) as info:
        load_results(tmp_path)
    assert f"{tmp_path / 'bad.csv'}:{line}:" in str(info.value)


def test_non_numeric_cell_in_a_known_layout(tmp_path):
    write_meta(tmp_path)
    rows = [request("c", 0, 0.0, "A", "a"), request("c", 1, 1.0, "A", "a", latency_ms="fast")]
    write_csv(tmp_path / "requests.csv", REQUEST_COLUMNS, rows)
    with pytest.raises(BadInput, match="'latency_ms': 'fast' is not a number") as info:
        load_results(tmp_path)
    assert "requests.csv:3:" in str(info.value)
    write_csv(tmp_path / "requests.csv", REQUEST_COLUMNS, rows[:1])
    write_csv(
        tmp_path / "snmp.csv",
        SNMP_COLUMNS,
        [[START, "h", "IF-MIB::ifInOctets", "1", "lots", "Counter32", ""]],
    )
    with pytest.raises(BadInput, match="Counter32 value 'lots'"):
        load_results(tmp_path)


def test_latest_picks_the_newest_run(tmp_path, monkeypatch):
    monkeypatch.setenv("TESTBED_RESULTS", str(tmp_path))
    for name in ("20250101-120000", "20250102-090000", "20250102-090000-2", "20250102-090000-10"):
        write_meta(tmp_path / "exp" / name)
    (tmp_path / "exp" / "20991231-000000").mkdir()  # no meta.json: not a run
    assert latest("exp").name == "20250102-090000-10"
    with pytest.raises(BadInput, match="no results for experiment 'other'") as info:
        latest("other")
    assert "exp" in str(info.value)


def test_empty_table_loads(tmp_path):
    write_meta(tmp_path)
    write_csv(tmp_path / "requests.csv", REQUEST_COLUMNS, [])
    results = load_results(tmp_path)
    assert results.kinds["requests"] == REQUESTS
    assert len(results.requests) == 0
    assert math.isclose(results.start, START)
