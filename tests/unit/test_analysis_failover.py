"""testbed.analysis.failover on a constructed timeline (see analysis_data.failover_*)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from testbed.analysis.failover import failover_times, find_fault
from testbed.analysis.load import load_results
from testbed.errors import BadInput
from testbed.schemas import REQUEST_COLUMNS, TARGET_EVENT_COLUMNS
from tests.unit.analysis_data import (
    FAULT_T,
    HEALTHY_T,
    REPAIR_T,
    START,
    UNHEALTHY_T,
    failover_events,
    failover_requests,
    full_results,
    write_csv,
    write_meta,
)


@pytest.fixture
def results(tmp_path):
    return load_results(full_results(tmp_path))


def test_times_from_the_fault_event(results):
    fo = failover_times(results.target_events, results.requests)
    assert fo.target == "WebA2"  # from the fault event, not WebB1 that went down at 13 s
    assert fo.fault_time == START + FAULT_T
    assert fo.detection_s == UNHEALTHY_T - FAULT_T == 6.0
    assert fo.repair_time == START + REPAIR_T
    assert fo.recovery_s == HEALTHY_T - REPAIR_T == 6.0
    # WebA2's requests at 10.5, 11.5, ... 15.5 s timed out.
    assert fo.failed_requests == 6
    assert fo.first_error_time == START + 10.5
    assert fo.last_error_time == START + 15.5
    assert fo.error_window_s == 5.0
    assert fo.errors_until_s == 5.5
    assert fo.to_dict()["detection_s"] == 6.0


def test_given_fault_time_and_target_override_the_log(results):
    fo = failover_times(
        results.target_events, results.requests, fault_time=START + 12.0, target="WebB1"
    )
    assert fo.detection_s == 1.0  # WebB1 turned unhealthy at 13 s
    assert fo.repair_time is None
    assert math.isnan(fo.recovery_s)
    assert fo.failed_requests == 4  # 12.5 ... 15.5


def test_fault_time_from_meta_and_first_unhealthy_target(tmp_path):
    events = [e for e in failover_events() if e[5] not in ("fault-injected", "fault-cleared")]
    write_meta(tmp_path, fault_time=START + 12.0, repair_time=START + 20.0)
    write_csv(tmp_path / "events.csv", TARGET_EVENT_COLUMNS, events)
    write_csv(tmp_path / "requests.csv", REQUEST_COLUMNS, failover_requests())
    loaded = load_results(tmp_path)
    assert find_fault(loaded.target_events, loaded.meta) == (START + 12.0, None)
    fo = failover_times(loaded.target_events, loaded.requests, meta=loaded.meta)
    assert fo.target == "WebB1"
    assert fo.detection_s == 1.0
    assert math.isnan(fo.recovery_s)  # WebB1 never became healthy again


def test_recovery_waits_for_detection_and_repair(results):
    events = results.target_events
    # Repaired at 11 s, before the LB noticed (16 s): a "healthy" at 13 s is the old state
    # still reported, not a recovery; recovery is the healthy transition at 26 s.
    stale = events.iloc[[0]].assign(time=START + 13.0, target="WebA2", new="healthy")
    fo = failover_times(
        pd.concat([events, stale], ignore_index=True), results.requests, repair_time=START + 11.0
    )
    assert fo.recovered_time == START + HEALTHY_T
    assert fo.recovery_s == HEALTHY_T - 11.0


def test_no_fault_and_no_errors(tmp_path):
    events = [e for e in failover_events() if e[5] != "fault-injected"]
    write_meta(tmp_path)
    write_csv(tmp_path / "events.csv", TARGET_EVENT_COLUMNS, events)
    loaded = load_results(tmp_path)
    assert find_fault(loaded.target_events, loaded.meta) is None
    with pytest.raises(BadInput, match="no fault time"):
        failover_times(loaded.target_events, None, meta=loaded.meta)
    fo = failover_times(loaded.target_events, None, fault_time=START + 30.0)
    assert fo.target is None
    assert math.isnan(fo.detection_s)
    assert fo.failed_requests == 0
    assert math.isnan(fo.error_window_s)


def test_bad_meta_fault_time(results):
    with pytest.raises(BadInput, match="fault_time"):
        failover_times(results.target_events.iloc[:2], None, meta={"fault_time": "soon"})
