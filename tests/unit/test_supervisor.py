"""The holder's controller supervisor with stand-in controllers: failure, replacement (standby
first), the state the lab returns to, paused restarts, failed attempts."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from testbed.errors import LabError
from testbed.lab.events import EventLog, read_events
from testbed.stack import supervisor as supervision
from testbed.stack.supervisor import ControllerSupervisor

RUNNING = ("CREATE_COMPLETE", "UPDATE_COMPLETE")
PIDS = itertools.count(1000)


class Proc:
    def __init__(self) -> None:
        self.pid = next(PIDS)
        self.returncode: int | None = None


class Controller:
    """What the supervisor uses of a ControllerProcess, and a record of what it was asked."""

    def __init__(self, calls: list[str], fail: str | None = None) -> None:
        self.calls = calls
        self.fail = fail  # the step that raises LabError: "start" | "activate" | "programmed"
        self.proc: Proc | None = None
        self.port: int | None = None
        self.log = "controller.log"
        self.running = False

    def _run(self, what: str) -> None:
        self.calls.append(f"{what} {id(self) % 1000}")
        if self.fail == what:
            raise LabError(f"{what} failed")

    def start(self, await_targets: bool = False) -> None:
        self._run("start")
        self.proc, self.port, self.running = Proc(), 6000 + len(self.calls), True
        self.calls.append(f"await {await_targets}")

    def activate(self, await_targets: bool) -> None:
        self._run("activate")
        self.calls.append(f"await {await_targets}")

    def wait_programmed(self) -> dict[str, Any]:
        self._run("programmed")
        return {"takeovers": {"1": {"found": 10, "added": 0, "deleted": 0}}}

    def alive(self) -> bool:
        return self.running

    def stop(self) -> None:
        self.calls.append("stop")
        self.running = False

    def die(self) -> None:
        self.running = False
        assert self.proc is not None
        self.proc.returncode = -9

    def replacement(self) -> Controller:
        return Controller(self.calls, self.fail)

    def standby(self) -> Controller:
        return Controller(self.calls)


class Lab:
    """The holder's side: its state and what the supervisor saved and pushed."""

    def __init__(self, tmp_path, push_ok: bool = True) -> None:
        self.events = EventLog(tmp_path)
        self.tmp_path = tmp_path
        self.state: dict[str, Any] = {"state": "CREATE_COMPLETE"}
        self.calls: list[str] = []
        self.push_ok = push_ok

    def save(self, **changes: Any) -> None:
        self.state.update(changes)

    def push(self) -> bool:
        self.calls.append("push")
        return self.push_ok

    def statuses(self) -> list[str]:
        return [e.status for e in read_events(self.tmp_path)]


@pytest.fixture
def attached(monkeypatch):
    ports: list[int] = []
    monkeypatch.setattr(
        supervision, "attach_switches", lambda bridges, port, *lab_dir: ports.append(port)
    )
    return ports


def make(lab: Lab, controller: Controller, push: bool = True) -> ControllerSupervisor:
    controller.start()
    lab.calls.clear()
    return ControllerSupervisor(
        controller,  # type: ignore[arg-type]
        ["tb-x-core"],
        lab.events,
        state=lambda: lab.state["state"],
        save=lab.save,
        push_targets=lab.push if push else None,
        running_states=RUNNING,
    )


def with_standby(sup: ControllerSupervisor) -> Controller:
    sup.step()  # a live controller: the supervisor starts a standby beside it
    assert sup.starting is not None
    sup.starting.join()
    assert sup.standby is not None
    return sup.standby  # type: ignore[return-value]


def test_a_dead_controller_is_replaced_by_the_standby(tmp_path, attached):
    lab = Lab(tmp_path)
    lab.state["state"] = "UPDATE_COMPLETE"
    first = Controller(lab.calls)
    sup = make(lab, first)
    standby = with_standby(sup)
    assert lab.state["controller"]["standby_pid"] == standby.proc.pid
    first.die()
    lab.calls.clear()
    sup.step()
    assert lab.statuses() == ["CONTROLLER_FAILED", "CONTROLLER_RESTARTED"]
    assert sup.controller is standby
    # The standby waits for the targets, gets them before any switch comes to it.
    assert [c.split()[0] for c in lab.calls] == ["activate", "await", "push", "programmed"]
    assert lab.calls[1] == "await True"
    assert attached == [standby.port]
    assert lab.state["state"] == "UPDATE_COMPLETE"  # the state it had
    assert lab.state["controller"]["pid"] == standby.proc.pid
    assert f"pid {standby.proc.pid} (standby)" in read_events(tmp_path)[-1].reason
    # Running again: a new standby is started.
    assert with_standby(sup) is not standby


def test_without_standby_a_new_process_is_started(tmp_path, attached):
    lab = Lab(tmp_path)
    first = Controller(lab.calls)
    sup = make(lab, first, push=False)
    first.die()
    sup.step()
    assert sup.controller is not first
    assert "await False" in lab.calls  # no load balancer: nothing to wait for
    assert "push" not in lab.calls
    assert lab.state["state"] == "CREATE_COMPLETE"
    assert "(new process)" in read_events(tmp_path)[-1].reason


def test_paused_restarts_leave_the_lab_without_controller_until_allowed(tmp_path, attached):
    lab = Lab(tmp_path)
    first = Controller(lab.calls)
    sup = make(lab, first)
    sup.set_enabled(False)
    first.die()
    sup.step()
    sup.step()
    assert lab.state["state"] == "CONTROLLER_FAILED"
    assert lab.statuses() == ["CONTROLLER_FAILED"]
    assert attached == []
    assert sup.set_enabled(True)["controller_running"] is False
    sup.step()
    assert lab.state["state"] == "CREATE_COMPLETE"
    assert lab.statuses()[-1] == "CONTROLLER_RESTARTED"


def test_a_death_outside_a_running_state_waits_for_it(tmp_path, attached):
    lab = Lab(tmp_path)
    first = Controller(lab.calls)
    sup = make(lab, first)
    lab.state["state"] = "UPDATE_IN_PROGRESS"
    first.die()
    sup.step()
    assert lab.statuses() == []
    lab.state["state"] = "UPDATE_COMPLETE"
    sup.step()
    assert lab.statuses() == ["CONTROLLER_FAILED", "CONTROLLER_RESTARTED"]
    assert lab.state["state"] == "UPDATE_COMPLETE"


def test_a_failed_attempt_is_reported_and_tried_again_later(tmp_path, attached):
    lab = Lab(tmp_path, push_ok=False)  # the new controller does not take the targets
    first = Controller(lab.calls)
    sup = make(lab, first)
    first.die()
    sup.step()
    assert lab.statuses() == ["CONTROLLER_FAILED", "CONTROLLER_RESTART_FAILED"]
    assert not sup.controller.alive()  # the failed one was stopped
    assert lab.state["state"] == "CONTROLLER_FAILED"
    sup.step()  # too early for the next attempt
    assert lab.statuses()[-1] == "CONTROLLER_RESTART_FAILED"
    assert len(lab.statuses()) == 2
    lab.push_ok = True
    sup.next_try = 0.0  # the wait is over
    sup.step()
    assert lab.statuses()[-1] == "CONTROLLER_RESTARTED"
    assert lab.state["state"] == "CREATE_COMPLETE"


def test_close_ends_the_standby(tmp_path, attached):
    lab = Lab(tmp_path)
    sup = make(lab, Controller(lab.calls))
    standby = with_standby(sup)
    sup.close()
    assert not standby.alive()
    sup.step()
    assert sup.starting is None or not sup.starting.is_alive()
    assert sup.standby is None
