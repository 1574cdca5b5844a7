"""Waiting for resource signals (testbed.lab.signals) and the cfn-signal host tool, without a
lab: signals are files in a temporary lab folder, time is a FakeClock."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from testbed.lab.hosttools import SHIMMED, TOOL_NAMES, TOOLS_DIR, cfn_signal, lab_paths
from testbed.lab.hosttools.context import HostContext
from testbed.lab.signals import (
    Signal,
    SignalFailure,
    SignalWaiter,
    handle_key,
    read_signals,
    resource_key,
    verdict,
    write_expected,
    write_signal,
)
from testbed.model.types import ResourceSignalPolicy
from testbed.waiting import WaitTimeout
from tests.fakeclock import FakeClock

URL = "https://cloudformation-waitcondition-us-east-1.s3.amazonaws.com/arn/Handle?sig=1"
POLICIES = {
    "Web": ResourceSignalPolicy(1, 300),
    "Pair": ResourceSignalPolicy(2, 600),
    "Wait": ResourceSignalPolicy(1, 60, handle=URL),
}


@pytest.fixture
def lab_dir(tmp_path):
    write_expected(tmp_path, "lab7", POLICIES)
    return tmp_path


@pytest.fixture
def ctx(lab_dir):
    return HostContext("lab7", "Web", lab_dir)


def ok(uid: str, sent: float = 1.0) -> Signal:
    return Signal(uid, True, sent=sent)


# ---- the verdict, pure ----------------------------------------------------------------------


def test_verdict_counts_successes_by_unique_id():
    policy = ResourceSignalPolicy(2, 300)
    assert verdict(policy, [ok("a")], 10) is None
    assert verdict(policy, [ok("a"), ok("b")], 10) == (True, "received 2 success signal(s)")


def test_verdict_fails_on_a_failure_signal_with_its_reason():
    failed = Signal("i-1", False, "httpd did not start")
    assert verdict(ResourceSignalPolicy(2, 300), [ok("a"), failed], 10) == (
        False,
        "received a failure signal with UniqueId i-1: httpd did not start",
    )


def test_verdict_times_out_saying_what_came():
    policy = ResourceSignalPolicy(3, 300)
    assert verdict(policy, [ok("a")], 299.9) is None
    assert verdict(policy, [ok("a")], 300) == (
        False,
        "timed out after 5 min waiting for 3 signal(s), received 1",
    )


def test_verdict_of_a_group_tolerates_failures_down_to_its_percentage():
    policy = ResourceSignalPolicy(4, 300, min_successful_percent=50)
    signals = [ok("a"), Signal("b", False), Signal("c", False)]
    assert verdict(policy, signals, 1) is None
    assert verdict(policy, [*signals, ok("d")], 1) == (True, "received 2 success signal(s)")
    assert verdict(policy, [*signals, Signal("d", False)], 1) is not None


# ---- signal files ---------------------------------------------------------------------------


def test_a_signal_with_the_same_unique_id_replaces_the_first(lab_dir):
    key = resource_key("Pair")
    write_signal(lab_dir, key, Signal("i-1", False, sent=1.0))
    write_signal(lab_dir, key, Signal("i-1", True, sent=2.0))
    write_signal(lab_dir, key, Signal("i/2 x", True, sent=3.0))
    assert [(s.unique_id, s.success) for s in read_signals(lab_dir, key)] == [
        ("i-1", True),
        ("i/2 x", True),
    ]
    assert read_signals(lab_dir, resource_key("Nobody")) == []


# ---- the waiter -----------------------------------------------------------------------------


class Events(list):
    def __call__(self, lid: str, status: str, reason: str) -> None:
        self.append((lid, status, reason))


def test_waiter_completes_resources_once_their_signals_are_there(lab_dir):
    events, clock = Events(), FakeClock()
    waiter = SignalWaiter(lab_dir, events, clock)
    assert waiter.begin("Web", POLICIES["Web"]) == "waiting for 1 signal(s) within 5 min"
    waiter.begin("Wait", POLICIES["Wait"])
    write_signal(lab_dir, resource_key("Web"), ok("Web"))
    write_signal(lab_dir, handle_key(URL), ok("setup-done"))
    waiter.wait()
    assert events == [
        ("Web", "CREATE_IN_PROGRESS", "received SUCCESS signal with UniqueId Web"),
        ("Web", "CREATE_COMPLETE", "received 1 success signal(s)"),
        ("Wait", "CREATE_IN_PROGRESS", "received SUCCESS signal with UniqueId setup-done"),
        ("Wait", "CREATE_COMPLETE", "received 1 success signal(s)"),
    ]
    assert not waiter.pending


def test_waiter_times_out_by_its_clock_and_cancels_the_others(lab_dir):
    events, clock = Events(), FakeClock()
    waiter = SignalWaiter(lab_dir, events, clock)
    waiter.begin("Wait", POLICIES["Wait"])  # 60 s
    waiter.begin("Web", POLICIES["Web"])  # 300 s
    with pytest.raises(SignalFailure, match="Wait: timed out after 1 min waiting for 1"):
        waiter.wait()
    assert 60 <= clock.slept < 61
    assert events == [
        ("Wait", "CREATE_FAILED", "timed out after 1 min waiting for 1 signal(s), received 0"),
        (
            "Web",
            "CREATE_FAILED",
            "resource creation cancelled: Wait: timed out after 1 min "
            "waiting for 1 signal(s), received 0",
        ),
    ]


def test_waiter_fails_at_a_failure_signal(lab_dir):
    events, clock = Events(), FakeClock()
    waiter = SignalWaiter(lab_dir, events, clock)
    waiter.begin("Web", POLICIES["Web"])
    write_signal(lab_dir, resource_key("Web"), Signal("Web", False, "exit 1"))
    with pytest.raises(SignalFailure, match="UniqueId Web: exit 1"):
        waiter.wait()
    assert clock.slept == 0
    assert events[-1] == (
        "Web",
        "CREATE_FAILED",
        "received a failure signal with UniqueId Web: exit 1",
    )


class Stop(BaseException):
    """What the holder raises in the main thread to stop a build."""


def test_a_stop_while_waiting_fails_the_waiting_resources(lab_dir):
    events = Events()

    class StoppingClock(FakeClock):
        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            if self.slept > 5:
                raise Stop("stopped by testbed down")

    waiter = SignalWaiter(lab_dir, events, StoppingClock())
    waiter.begin("Web", POLICIES["Web"])
    with pytest.raises(Stop):
        waiter.wait()
    assert events == [
        ("Web", "CREATE_FAILED", "resource creation cancelled: stopped by testbed down")
    ]


def test_waiter_without_resources_returns_at_once(lab_dir):
    clock = FakeClock()
    SignalWaiter(lab_dir, Events(), clock).wait()
    assert clock.sleeps == []


def test_waiter_backstop_is_a_wait_timeout_never_reached_by_a_fair_clock(lab_dir):
    # _all_done sees each deadline itself: wait_for's own timeout is one second later.
    waiter = SignalWaiter(lab_dir, Events(), FakeClock())
    waiter.begin("Web", POLICIES["Web"])
    with pytest.raises(SignalFailure) as info:
        waiter.wait()
    assert not isinstance(info.value, WaitTimeout)


# ---- cfn-signal ---------------------------------------------------------------------------


def sent(lab_dir, key):
    return [(s.unique_id, s.success, s.reason) for s in read_signals(lab_dir, key)]


def test_cfn_signal_resource_signal_with_exit_code(ctx, lab_dir):
    assert (
        cfn_signal.main(
            ["-e", "0", "--stack", "lab7", "--resource", "Web", "--region", "us-east-1"], ctx
        )
        == 0
    )
    assert sent(lab_dir, resource_key("Web")) == [("Web", True, "")]
    # -e decides; --success is then ignored (AWS).
    assert (
        cfn_signal.main(
            [
                "-e",
                "3",
                "-s",
                "true",
                "-r",
                "boom",
                "-i",
                "x",
                "--stack",
                "lab7",
                "--resource",
                "Pair",
            ],
            ctx,
        )
        == 0
    )
    assert sent(lab_dir, resource_key("Pair")) == [("x", False, "boom")]


def test_cfn_signal_success_flag_and_stack_id(ctx, lab_dir):
    stack_id = "arn:aws:cloudformation:us-east-1:123456789012:stack/lab7/0a1b"
    argv = [
        "--success",
        "false",
        "--stack",
        stack_id,
        "--resource",
        "Web",
        "--role",
        "r",
        "--http-proxy",
        "http://p:3128",
        "--url",
        "https://cloudformation.amazonaws.com",
    ]
    assert cfn_signal.main(argv, ctx) == 0
    assert sent(lab_dir, resource_key("Web")) == [("Web", False, "")]


def test_cfn_signal_to_a_wait_condition_handle(ctx, lab_dir):
    assert cfn_signal.main(["-e", "0", "-d", "ready", "-i", "n1", URL], ctx) == 0
    (signal,) = read_signals(lab_dir, handle_key(URL))
    assert (signal.unique_id, signal.success, signal.data) == ("n1", True, "ready")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--stack", "other", "--resource", "Web"], "Stack other does not exist"),
        (["--stack", "lab7", "--resource", "Db"], "resource Db of stack lab7 does not wait"),
        (["--resource", "Web"], "needs both --stack and --resource"),
        (["https://elsewhere/handle"], "no wait condition of stack lab7 uses the handle"),
        ([], "give --stack and --resource, or a wait condition handle URL"),
        (["-s", "maybe", "--stack", "lab7", "--resource", "Web"], "true or false"),
    ],
)
def test_cfn_signal_refusals(ctx, lab_dir, capsys, argv, message):
    assert cfn_signal.main(argv, ctx) == 1
    assert message in capsys.readouterr().err
    assert not (lab_dir / "signals" / resource_key("Web")).exists()


def test_cfn_signal_outside_a_lab_says_so(capsys, monkeypatch):
    monkeypatch.delenv("TESTBED_LAB", raising=False)
    assert cfn_signal.main(["--stack", "s", "--resource", "Web"]) == 1
    assert "not inside a lab host" in capsys.readouterr().err


# ---- the tools as programs ----------------------------------------------------------------


def tool_env(tmp_path, lab: str = "lab7") -> dict[str, str]:
    env = dict(os.environ, TESTBED_STATE_DIR=str(tmp_path), TESTBED_LAB=lab)
    env.update(TESTBED_HOST="Web", TESTBED_PYTHON=sys.executable)
    return env


def test_every_tool_is_an_executable_in_the_tools_dir():
    for name in TOOL_NAMES:
        path = TOOLS_DIR / name
        assert os.access(path, os.X_OK), path


def test_cfn_signal_program_writes_the_signal(tmp_path):
    lab_dir = tmp_path / "lab7"
    write_expected(lab_dir, "lab7", POLICIES)
    argv = [str(TOOLS_DIR / "cfn-signal"), "-e", "0", "--stack", "lab7", "--resource", "Web"]
    proc = subprocess.run(argv, env=tool_env(tmp_path), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert sent(lab_dir, resource_key("Web")) == [("Web", True, "")]


@pytest.mark.parametrize("tool", SHIMMED)
def test_package_and_service_managers_do_nothing_and_say_so(tmp_path, tool):
    proc = subprocess.run(
        [str(TOOLS_DIR / tool), "install", "-y", "httpd"],
        env=tool_env(tmp_path),
        capture_output=True,
        text=True,
    )
    # Installing and starting succeed doing nothing (the role stands in, UserData goes on to
    # its cfn-signal as on AWS); a query (rpm -q) answers "not installed".
    assert proc.returncode == (1 if tool == "rpm" else 0)
    assert proc.stderr.startswith(f"lab: {tool} is not emulated in the lab")


def test_user_data_paths_of_the_helpers_name_the_lab_tools():
    text = "/opt/aws/bin/cfn-init -v -s S -r Web\n/opt/aws/bin/cfn-signal -e $? x\n/opt/aws/x"
    assert lab_paths(text) == (
        f"{TOOLS_DIR}/cfn-init -v -s S -r Web\n{TOOLS_DIR}/cfn-signal -e $? x\n/opt/aws/x"
    )
    assert lab_paths("/opt/aws/bin/cfn-init-x; /opt/aws/bin/cfn-hup") == (
        f"/opt/aws/bin/cfn-init-x; {TOOLS_DIR}/cfn-hup"
    )


def test_a_timeout_says_what_may_explain_it(lab_dir):
    events = Events()
    hints = {"Web": "its UserData exited with code 1"}
    waiter = SignalWaiter(lab_dir, events, FakeClock(), hint=lambda lid: hints.get(lid, ""))
    waiter.begin("Web", POLICIES["Web"])
    with pytest.raises(SignalFailure, match=r"received 0 \(its UserData exited with code 1\)"):
        waiter.wait()
    # A failure signal explains itself: no hint.
    waiter.begin("Pair", POLICIES["Pair"])
    hints["Pair"] = "never shown"
    write_signal(lab_dir, resource_key("Pair"), Signal("p", False))
    with pytest.raises(SignalFailure) as info:
        waiter.wait()
    assert "never shown" not in str(info.value)
