"""CreationPolicy, cfn-init and cfn-signal on real labs: an instance whose UserData configures
it with cfn-init and signals the result is complete only after its signal; a failure signal
fails it and rolls the stack back, leaving nothing."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from testbed import naming
from testbed.lab.api import Lab, random_name
from testbed.lab.events import read_events
from testbed.model import load_model
from testbed.model.types import InertResource, ResourceSignalPolicy, frozen_map
from testbed.waiting import wait_for
from tests.assertions import assert_nothing_left, run_cli
from tests.model_lab import lab_from_model

pytestmark = pytest.mark.integration
TEMPLATE = str(Path(__file__).parent / "templates" / "signals.yaml")


def test_instance_is_complete_after_its_signal():
    with Lab.up(TEMPLATE, name=random_name("sig")) as lab:
        events = lab.events()
        web = [
            (e.status, e.reason)
            for e in events
            if e.logical_id == "Web" and e.resource_type == "AWS::EC2::Instance"
        ]
        assert web[0] == ("CREATE_IN_PROGRESS", "")
        assert web[1][0] == "CREATE_IN_PROGRESS"
        assert web[1][1].endswith("waiting for 1 signal(s) within 2 min"), web
        assert (
            "CREATE_IN_PROGRESS",
            "received SUCCESS signal with UniqueId Web: configured",
        ) in web
        assert web[-1] == ("CREATE_COMPLETE", "received 1 success signal(s)")
        order = [(e.logical_id, e.status) for e in events]
        # The stack completes after the signal; UserData started before it came.
        assert order.index(("Web", "CREATE_COMPLETE")) < order.index((lab.name, "CREATE_COMPLETE"))
        assert order.index(("Web", "USERDATA_STARTED")) < order.index(("Web", "CREATE_COMPLETE"))
        host = lab.dir / "hosts" / "Web"
        # cfn-init: the file under the host's own root, then the command that reads it.
        page = host / "root" / "var" / "www" / "html" / "index.html"
        assert page.read_text() == f"hello from {lab.name}\n"
        assert (host / "configured.txt").read_text() == "configured\n"
        log = (host / "user-data.log").read_text()
        assert "lab: yum is not emulated in the lab" in log
        assert "site: packages not emulated in the lab" in log
        assert "site: services not emulated in the lab" in log


def test_failure_signal_fails_the_instance_and_rolls_the_stack_back():
    name = random_name("sgf")
    proc = run_cli("up", TEMPLATE, "--name", name, "-p", "Outcome=failure")
    assert proc.returncode == 1, proc.stderr
    assert "received a failure signal with UniqueId Web: setup failed on purpose" in proc.stdout
    assert "CREATE_FAILED" in proc.stdout
    assert "ROLLBACK_COMPLETE" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert_nothing_left(name)


HANDLE_URL = (
    "https://cloudformation-waitcondition-us-east-1.s3.amazonaws.com/"
    "arn%3Aaws%3Acloudformation%3Aus-east-1%3A123456789012%3Astack/x/Handle?sig=lab"
)


def test_wait_condition_completes_on_a_signal_to_its_handle():
    # Wait condition resources are inert (no packets): made here in Python, as the resource
    # catalog registers them. UserData signals the handle URL with the cfn-signal in PATH.
    model = load_model(TEMPLATE)
    web = dataclasses.replace(
        model.instances["Web"],
        user_data=f"#!/bin/sh\ncfn-signal -e 0 -i setup -d done '{HANDLE_URL}'\n",
    )
    handle = InertResource("Handle", "AWS::CloudFormation::WaitConditionHandle", HANDLE_URL, {})
    wait = InertResource("Wait", "AWS::CloudFormation::WaitCondition", "Wait", {"Data": "{}"})
    model = dataclasses.replace(
        model,
        instances=frozen_map({"Web": web}),
        inert=frozen_map({"Handle": handle, "Wait": wait}),
        resource_types=frozen_map(
            {**model.resource_types, "Handle": handle.type, "Wait": wait.type}
        ),
        creation_order=(*model.creation_order, "Handle", "Wait"),
        signal_policies=frozen_map({"Wait": ResourceSignalPolicy(1, 60, handle=HANDLE_URL)}),
    )
    with lab_from_model(model, "sgw") as lab:
        seen = [(e.logical_id, e.status, e.reason) for e in lab.events()]
    assert ("Handle", "CREATE_COMPLETE", "not emulated") in seen
    wait_events = [(status, reason) for lid, status, reason in seen if lid == "Wait"]
    assert wait_events[1][1] == "waiting for 1 signal(s) within 1 min (wait condition handle)"
    assert wait_events[-2:] == [
        ("CREATE_IN_PROGRESS", "received SUCCESS signal with UniqueId setup"),
        ("CREATE_COMPLETE", "received 1 success signal(s)"),
    ]
    assert ("Web", "CREATE_COMPLETE", "received 1 success signal(s)") not in seen


def test_down_while_waiting_for_a_signal_rolls_back_at_once():
    name = random_name("sgd")
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "testbed.cli",
            "up",
            TEMPLATE,
            "--name",
            name,
            "-p",
            "Outcome=silence",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def silent_user_data_done() -> bool:
            seen = read_events(naming.lab_dir(name)) if naming.lab_dir(name).exists() else []
            return any(e.logical_id == "Web" and e.status == "USERDATA_COMPLETE" for e in seen)

        wait_for(silent_user_data_done, 90, f"the UserData of lab {name} to end")
        run_cli("down", name, check=True, timeout=30)
        out, err = up.communicate(timeout=60)
    finally:
        if up.poll() is None:
            up.kill()
            up.communicate()
    assert up.returncode == 1, err
    assert "resource creation cancelled: User Initiated" in out
    assert "ROLLBACK_COMPLETE" in out
    assert_nothing_left(name)
