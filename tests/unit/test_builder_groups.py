"""The builder and Auto Scaling groups, without Mininet: a group without a signal policy
stays CREATE_IN_PROGRESS (the service completes it), one with a policy waits for signals as
any resource does, and the holder's after_programs hook runs before the wait for signals."""

from __future__ import annotations

import dataclasses

import pytest

from testbed.lab.builder import LabBuilder
from testbed.lab.events import EventLog, read_events
from testbed.lab.procs import ProcessJournal
from testbed.model.types import ResourceSignalPolicy, frozen_map
from testbed.plan.network import build_plan
from tests.asg_fixture import group_model

GROUP_TYPE = "AWS::AutoScaling::AutoScalingGroup"


@pytest.fixture
def builder(tmp_path, monkeypatch):
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path))
    model = group_model(desired=3, min_size=1)
    model = dataclasses.replace(
        model,
        resource_types=frozen_map({**model.resource_types, "Web": GROUP_TYPE}),
        creation_order=(*model.creation_order, "Web"),
    )
    lab_dir = tmp_path / "lab8"
    lab_dir.mkdir()
    return LabBuilder(
        "lab8", model, build_plan(model, "lab8"), "user", EventLog(lab_dir), ProcessJournal(lab_dir)
    )


def events(builder):
    return [(e.logical_id, e.status, e.reason) for e in read_events(builder.lab_dir)]


def test_a_group_without_signals_is_left_in_progress(builder):
    created = []
    builder._create_one("Web", lambda: created.append("Web"))
    assert events(builder) == [("Web", "CREATE_IN_PROGRESS", "launching 3 instances")]
    assert created == []  # no nodes: its instances come from Auto Scaling


def test_a_group_with_a_signal_policy_waits_for_its_signals(builder):
    policy = ResourceSignalPolicy(count=3, timeout_s=300.0)
    builder.model = dataclasses.replace(builder.model, signal_policies=frozen_map({"Web": policy}))
    builder._create_one("Web", lambda: None)
    statuses = [status for _, status, _ in events(builder)]
    assert statuses == ["CREATE_IN_PROGRESS", "CREATE_IN_PROGRESS"]
    assert "waiting for 3 signal(s)" in events(builder)[-1][2]


def test_after_programs_runs_between_programs_and_the_signal_wait(builder, monkeypatch):
    order = []
    for step in ("_report_lab_values", "_write_host_data", "_start_controller"):
        monkeypatch.setattr(builder, step, lambda step=step: order.append(step))
    monkeypatch.setattr(builder, "_create_resources", lambda: order.append("resources"))
    monkeypatch.setattr(builder, "_start_network", lambda: order.append("network"))
    monkeypatch.setattr(builder, "_start_programs", lambda: order.append("programs"))
    monkeypatch.setattr(builder.signals, "wait", lambda: order.append("signals"))
    builder.after_programs = lambda: order.append("autoscaling")
    builder.build()
    assert order[-3:] == ["programs", "autoscaling", "signals"]
