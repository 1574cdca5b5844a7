"""Deleting a lab's stacks (issue 14): which resources `down` reports deleting for the lab's
first stack (live_resources, from its events), and the first stack's delete while others run
(refused "not yet", nothing changed). An added stack's resource signals and cfn-init
metadata, kept apart from the first stack's and removed with it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.errors import BadInput, LabError
from testbed.lab.builder import STACK_TYPE
from testbed.lab.events import Event, EventLog, read_events
from testbed.lab.hosttools import cfn_signal
from testbed.lab.hosttools.context import HostContext, ToolError
from testbed.lab.signals import (
    Signal,
    SignalFailure,
    init_file,
    read_expected,
    read_signals,
    resource_key,
    write_expected,
    write_signal,
)
from testbed.model import load_model
from testbed.model.types import ResourceSignalPolicy
from testbed.paths import TEMPLATES
from testbed.plan.network import build_plan
from testbed.stack.lab_stacks_ops import StackOps, live_resources
from testbed.stack.stack_signals import StackSignals
from testbed.stack.stacks import LabStacks, StackRecord

EXPORT = str(TEMPLATES / "two-stacks-export.yaml")


def ev(lid: str, status: str, stack: str = "", rtype: str = "AWS::EC2::VPC") -> Event:
    return Event(0.0, lid, rtype, status, "", stack)


def test_live_resources_in_creation_order_from_the_events():
    events = [
        ev("net", "CREATE_IN_PROGRESS", rtype=STACK_TYPE),
        ev("Controller", "CREATE_IN_PROGRESS", rtype="Lab::Controller"),
        ev("Controller", "CREATE_COMPLETE", rtype="Lab::Controller"),
        ev("VPC", "CREATE_IN_PROGRESS"),
        ev("Web", "CREATE_IN_PROGRESS", rtype="AWS::EC2::Instance"),
        ev("VPC", "CREATE_COMPLETE"),  # completes after Web started: its COMPLETE counts
        ev("Web", "CREATE_COMPLETE", rtype="AWS::EC2::Instance"),
        ev("App", "CREATE_COMPLETE", stack="app"),  # another stack's
        ev("Old", "CREATE_COMPLETE"),
        ev("Old", "DELETE_COMPLETE"),  # an update deleted it
        ev("Failed", "CREATE_FAILED"),
        ev("net", "CREATE_COMPLETE", rtype=STACK_TYPE),
    ]
    assert live_resources(events, "") == [
        ("Controller", "Lab::Controller"),
        ("VPC", "AWS::EC2::VPC"),
        ("Web", "AWS::EC2::Instance"),
    ]
    assert live_resources(events, "app") == [("App", "AWS::EC2::VPC")]
    # Created again (replaced by an update): it goes at its new place.
    again = [*events, ev("VPC", "CREATE_COMPLETE")]
    assert [lid for lid, _ in live_resources(again, "")] == ["Controller", "Web", "VPC"]


def test_the_first_stack_is_not_deleted_while_others_run(tmp_path):
    stacks = LabStacks()
    for name, qualifier in (("net", ""), ("other", "other.")):
        model = load_model(EXPORT, {}, stack_name=name, qualifier=qualifier)
        stacks.add(StackRecord(name, qualifier, EXPORT, {}, model, "CREATE_COMPLETE", created=0.0))
    published: list[object] = []
    ops = StackOps(
        "net",
        "us-east-1",
        stacks,
        EventLog(tmp_path),
        get_plan=lambda: pytest.fail("no plan is read"),
        publish=published.append,
        launcher=lambda: pytest.fail("no launcher is used"),
        save=lambda: pytest.fail("nothing is saved"),
    )
    with pytest.raises(BadInput, match="not yet: stack net is the lab's first stack"):
        ops.delete("net")
    assert (stacks.names(), published, read_events(tmp_path)) == (["net", "other"], [], [])


# ---- an added stack's resource signals and cfn-init metadata (testbed.stack.stack_signals) --

SIGNALS = str(Path(__file__).parents[1] / "integration" / "templates" / "signals.yaml")


def test_an_added_stacks_signals_and_metadata_are_its_own(tmp_path):
    write_expected(tmp_path, "net", {"Web": ResourceSignalPolicy(1, 60)})
    init_file(tmp_path, "Web").parent.mkdir(parents=True, exist_ok=True)
    init_file(tmp_path, "Web").write_text('{"config": {}}')  # the first stack's Web
    model = load_model(SIGNALS, {"Outcome": "failure"}, stack_name="bad", qualifier="bad.")
    signals = StackSignals(tmp_path, "bad", "bad.", model)
    signals.prepare()
    ctx = HostContext("net", "bad.Web", tmp_path)
    assert (ctx.check_stack("net"), ctx.check_stack("bad"), ctx.check_stack(None)) == (
        "",
        "bad.",
        "",
    )
    arn = "arn:aws:cloudformation:us-east-1:123456789012:stack/bad/0a1b"
    assert ctx.check_stack(arn) == "bad."
    # The same logical id in two stacks: two folders, two metadata files.
    assert cfn_signal.main(["-e", "1", "-r", "no", "--stack", "bad", "--resource", "Web"], ctx) == 0
    assert cfn_signal.main(["-e", "0", "--stack", "net", "--resource", "Web"], ctx) == 0
    assert [s.success for s in read_signals(tmp_path, resource_key("bad.Web"))] == [False]
    assert [s.success for s in read_signals(tmp_path, resource_key("Web"))] == [True]
    assert json.loads(init_file(tmp_path, "bad.Web").read_text()) == model.cfn_init["Web"]
    # The waiter reports the stack's own logical ids.
    seen: list[tuple[str, str]] = []
    waiter = signals.waiter(lambda lid, status, reason: seen.append((lid, status)))
    waiter.begin("bad.Web", model.signal_policies["Web"])
    with pytest.raises(SignalFailure, match=r"bad\.Web: received a failure signal"):
        waiter.wait()
    assert seen == [("Web", "CREATE_IN_PROGRESS"), ("Web", "CREATE_FAILED")]
    # Gone with the stack: its entry, signals and metadata; the first stack's stay.
    signals.remove()
    with pytest.raises(ToolError, match="Stack bad does not exist"):
        ctx.check_stack("bad")
    assert read_signals(tmp_path, resource_key("bad.Web")) == []
    assert not init_file(tmp_path, "bad.Web").exists()
    assert init_file(tmp_path, "Web").exists()
    assert [s.success for s in read_signals(tmp_path, resource_key("Web"))] == [True]


class Launcher:
    """Launches nothing; remembers what it was asked (the holder's InstanceLauncher)."""

    def __init__(self) -> None:
        self.launched: list[str] = []
        self.terminated: list[str] = []

    def launch_many(self, hosts):
        self.launched += [h.name for h in hosts]
        return list(hosts)

    def terminate_many(self, names):
        self.terminated += names

    def role_ready(self, name):
        return True


def test_a_failure_signal_rolls_an_added_stack_back_and_its_delete_is_the_stacks_only(tmp_path):
    stacks = LabStacks()
    model = load_model(EXPORT, {}, stack_name="net")
    stacks.add(StackRecord("net", "", EXPORT, {}, model, "CREATE_COMPLETE", created=0.0))
    write_expected(tmp_path, "net", {})
    plans = [build_plan(model, "net", zone_base=100)]
    launcher = Launcher()
    ops = StackOps(
        "net",
        "us-east-1",
        stacks,
        EventLog(tmp_path),
        get_plan=lambda: plans[-1],
        publish=plans.append,
        launcher=lambda: launcher,
        save=lambda: None,
        add_switches=lambda bridges: None,  # its default VPC's AZs: bridges the lab lacks
    )
    # What the instance's UserData sends (cfn-signal -e 1 --stack bad --resource Web).
    write_signal(tmp_path, resource_key("bad.Web"), Signal("bad.Web", False, "setup failed"))
    with pytest.raises(LabError, match=r"stack bad was rolled back: .*failure signal"):
        ops.create("bad", SIGNALS, {"Outcome": "failure"})
    assert (launcher.launched, launcher.terminated) == (["bad.Web"], ["bad.Web"])
    assert plans[-1] == plans[0]
    assert stacks.get("bad").status == "ROLLBACK_COMPLETE"
    events = [(e.logical_id, e.status) for e in read_events(tmp_path) if e.stack == "bad"]
    assert ("Web", "CREATE_FAILED") in events
    assert ("Web", "CREATE_COMPLETE") not in events
    # As AWS reports a rollback: what was begun is deleted, newest first.
    rollback = events[events.index(("bad", "ROLLBACK_IN_PROGRESS")) :]
    begun = [lid for lid, status in events if status == "CREATE_IN_PROGRESS" and lid != "bad"]
    begun = list(dict.fromkeys(begun))  # Web has two (created, then waiting for its signal)
    assert rollback == [
        ("bad", "ROLLBACK_IN_PROGRESS"),
        *[(lid, "DELETE_IN_PROGRESS") for lid in reversed(begun)],
        *[(lid, "DELETE_COMPLETE") for lid in reversed(begun)],
        ("bad", "ROLLBACK_COMPLETE"),
    ]
    assert begun[-1] == "Internet1"  # created after Web, before the wait for its signal
    assert "bad" not in (read_expected(tmp_path) or {}).get("stacks", {})
    assert read_signals(tmp_path, resource_key("bad.Web")) == []
    # Its resources went with the rollback: the delete reports the stack's own events only.
    ops.delete("bad")
    deleted = [(e.logical_id, e.status) for e in read_events(tmp_path) if e.stack == "bad"]
    assert deleted[len(events) :] == [("bad", "DELETE_IN_PROGRESS"), ("bad", "DELETE_COMPLETE")]
    assert (stacks.names(), launcher.terminated) == (["net"], ["bad.Web"])
