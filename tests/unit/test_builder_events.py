"""The builder's events for issue 11, without Mininet: each resource's creation is a function
here (a no-op, as network.create is for resources without nodes)."""

from __future__ import annotations

import dataclasses
import json
import subprocess

import pytest

from testbed.lab.builder import PARAMETER_TYPE, LabBuilder
from testbed.lab.events import EventLog, read_events
from testbed.lab.procs import ProcessJournal
from testbed.lab.signals import init_file, read_expected
from testbed.model import load_model
from testbed.model.types import InertResource, LabValue, ResourceSignalPolicy, frozen_map
from testbed.paths import REPO
from testbed.plan.network import build_plan

TEMPLATE = str(REPO / "tests" / "integration" / "templates" / "signals.yaml")
ROLE = InertResource("AppRole", "AWS::IAM::Role", "lab-AppRole-ABC", {}, note="IAM has no packets")
GROUP = InertResource(
    "Asg",
    "AWS::ECS::Service",
    "lab-Asg-ABC",
    {},
    kind="not-emulated",
    note="not emulated: containers do not run in the lab",
)


@pytest.fixture
def builder(tmp_path, monkeypatch):
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path))
    model = load_model(TEMPLATE, stack_name="lab7")
    model = dataclasses.replace(
        model,
        inert=frozen_map({"AppRole": ROLE, "Asg": GROUP}),
        resource_types=frozen_map(
            {**model.resource_types, "AppRole": ROLE.type, "Asg": GROUP.type}
        ),
        creation_order=(*model.creation_order, "AppRole", "Asg"),
        lab_values=(
            LabValue("KeyName", "my-key", "my-key", "key pairs have no meaning in the lab"),
            LabValue("Ami", "/aws/service/x", "ami-0abcdef1234567890", "SSM AMI path"),
        ),
        default_roles=frozen_map({"Web": "a load balancer targets it: http-backend on 80"}),
        lab_made=frozen_map({"DefaultVpc": "the template names no VPC"}),
    )
    lab_dir = tmp_path / "lab7"
    lab_dir.mkdir()
    plan = build_plan(model, "lab7")
    return LabBuilder("lab7", model, plan, "user", EventLog(lab_dir), ProcessJournal(lab_dir))


def events(builder):
    return [
        (e.logical_id, e.resource_type, e.status, e.reason) for e in read_events(builder.lab_dir)
    ]


def test_lab_values_are_reported_once_at_the_start(builder):
    builder._report_lab_values()
    assert events(builder) == [
        (
            "KeyName",
            PARAMETER_TYPE,
            "PARAMETER_LAB_VALUE",
            "my-key: key pairs have no meaning in the lab",
        ),
        (
            "Ami",
            PARAMETER_TYPE,
            "PARAMETER_LAB_VALUE",
            "/aws/service/x -> ami-0abcdef1234567890: SSM AMI path",
        ),
    ]


def test_inert_resources_complete_saying_they_are_not_emulated(builder):
    builder._create_one("AppRole", lambda: None)
    assert events(builder) == [
        ("AppRole", "AWS::IAM::Role", "CREATE_IN_PROGRESS", ""),
        ("AppRole", "AWS::IAM::Role", "CREATE_COMPLETE", "not emulated: IAM has no packets"),
    ]


def test_not_emulated_resources_complete_with_a_warning(builder):
    builder._create_one("Asg", lambda: None)
    assert events(builder)[-1] == (
        "Asg",
        GROUP.type,
        "CREATE_COMPLETE",
        "warning: not emulated: containers do not run in the lab",
    )


def test_a_resource_that_waits_for_signals_stays_in_progress(builder):
    builder._create_one("Web", lambda: None)
    statuses = [(status, reason) for lid, _, status, reason in events(builder) if lid == "Web"]
    assert [s for s, _ in statuses] == [
        "CREATE_IN_PROGRESS",
        "CREATE_IN_PROGRESS",
        "ROLE_DEFAULTED",
    ]
    assert statuses[1][1].endswith("; waiting for 1 signal(s) within 2 min")
    assert statuses[2][1] == "a load balancer targets it: http-backend on 80"
    assert builder.signals.pending["Web"].policy == ResourceSignalPolicy(1, 120)


def test_a_failed_creation_is_not_awaited(builder):
    def fail() -> None:
        raise RuntimeError("no namespace")

    with pytest.raises(RuntimeError):
        builder._create_one("Web", fail)
    assert events(builder)[-1][2:] == ("CREATE_FAILED", "no namespace")
    assert not builder.signals.pending


def test_lab_made_resources_say_so_in_their_completion(builder):
    builder._create_one("DefaultVpc", lambda: None)
    assert events(builder)[-1][2:] == (
        "CREATE_COMPLETE",
        "added by the lab: the template names no VPC",
    )


def test_host_tools_get_the_waiting_resources_and_init_metadata(builder):
    builder._write_host_data()
    assert read_expected(builder.lab_dir) == {"stack": "lab7", "resources": ["Web"], "handles": {}}
    init = json.loads(init_file(builder.lab_dir, "Web").read_text())
    assert init["configSets"] == {"default": ["site", "check"]}


def test_a_missing_signal_is_explained_by_how_the_user_data_ended(builder):
    assert builder._no_signal("Web") == ""
    builder.userdata_exit["Web"] = 2
    assert builder._no_signal("Web") == (
        f"its UserData exited with code 2, log {builder.lab_dir}/hosts/Web/user-data.log"
    )


def test_user_data_runs_with_private_server_directories(tmp_path):
    # The sandbox mounts over existing server directories only, then runs the script itself.
    from testbed.lab.builder import SERVER_DIRS, sandboxed

    argv = sandboxed(["sh", "/x/user-data"])
    assert argv[:2] == ["sh", "-c"]
    split = argv.index("--")
    assert tuple(argv[4:split]) == SERVER_DIRS
    assert argv[split + 1 :] == ["sh", "/x/user-data"]
    # Without mount rights (no directory given) the wrapper still execs the script.
    script = tmp_path / "s.sh"
    script.write_text("echo ran $1\n")
    out = subprocess.run(
        ["sh", "-c", argv[2], "user-data", "--", "sh", str(script), "ok"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == "ran ok\n"
