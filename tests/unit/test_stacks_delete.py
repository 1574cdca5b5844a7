"""Deleting a lab's stacks (issue 14): which resources `down` reports deleting for the lab's
first stack (live_resources, from its events), and the first stack's delete while others run
(refused "not yet", nothing changed)."""

from __future__ import annotations

import pytest

from testbed.errors import BadInput
from testbed.lab.builder import STACK_TYPE
from testbed.lab.events import Event, EventLog, read_events
from testbed.model import load_model
from testbed.paths import TEMPLATES
from testbed.stack.lab_stacks_ops import StackOps, live_resources
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
