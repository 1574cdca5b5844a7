"""The holder's watch over its lab's controller: a controller that dies is replaced at once.

The data plane does not wait for it: every flow stays in the switches (fail-mode secure)
and answers ARP, routes, translates and balances on its own. The supervisor reports the
failure (CONTROLLER_FAILED) and puts a new controller in its place: the standby it keeps
running beside the controller (started, idle, attached to no switch: taking over costs no
process start), or a freshly started one if there is no standby. The new controller gets
every target state, the switches are pointed at it, and it takes each of them over (it reads
their flow tables and sends only what differs: nothing, when nothing changed meanwhile);
then the lab is back in the state it had (CONTROLLER_RESTARTED, with the new pid) and a new
standby is started. Restarts can be paused (`controller_restarts` request), e.g. to watch
the data plane run without a controller.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from testbed.errors import LabError
from testbed.lab.builder import CONTROLLER_ID, CONTROLLER_TYPE
from testbed.lab.controller_proc import ControllerProcess, attach_switches
from testbed.lab.events import EventLog
from testbed.messages import ControllerInfo, ControllerRestartsReply

RETRY_S = (1.0, 2.0, 5.0, 10.0, 30.0)  # waits between failed restarts
STANDBY_RETRY_S = 30.0  # wait after a standby that would not start


class ControllerSupervisor:
    """Replaces the controller of a running lab when it dies. The holder's main loop calls
    `step()` often; `running_states` are the lab states in which a death is a failure (any
    other state belongs to whoever set it), and the lab returns to the one it had."""

    def __init__(
        self,
        controller: ControllerProcess,
        bridges: Sequence[str],
        events: EventLog,
        state: Callable[[], str],
        save: Callable[..., None],
        push_targets: Callable[[], bool] | None,
        running_states: Sequence[str],
    ) -> None:
        self.controller = controller
        self.bridges = list(bridges)
        self.events = events
        self.state = state
        self.save = save
        self.push_targets = push_targets
        self.running_states = tuple(running_states)
        self.enabled = True
        self.resume_state: str | None = None  # set while the lab has no controller
        self.failed_at = 0.0
        self.attempts = 0
        self.next_try = 0.0
        self.restarts = 0
        self.lock = threading.Lock()
        self.standby: ControllerProcess | None = None
        self.starting: threading.Thread | None = None
        self.standby_next_try = 0.0
        self.closed = False

    def set_enabled(self, enabled: bool) -> ControllerRestartsReply:
        """Allow (the default) or pause restarts; a dead controller is replaced as soon as
        they are allowed again."""
        self.enabled = enabled
        return ControllerRestartsReply(
            ok=True, enabled=enabled, controller_running=self.controller.alive()
        )

    def step(self) -> None:
        if self.resume_state is None:
            if self.controller.alive():
                self._keep_standby()
                return
            if self.state() not in self.running_states:
                return
            self._failed()
        if self.enabled and time.monotonic() >= self.next_try:
            self._restart()

    def close(self) -> None:
        """The lab is going down: start no more controllers, end the standby."""
        with self.lock:
            self.closed = True
            starting = self.starting
        if starting is not None:
            starting.join(60)
        with self.lock:
            standby, self.standby = self.standby, None
        if standby is not None:
            standby.stop()

    # ---- failure and replacement ------------------------------------------------------
    def _failed(self) -> None:
        code = self.controller.proc.returncode if self.controller.proc else None
        self.resume_state = self.state()
        self.failed_at = time.monotonic()
        self.attempts = 0
        self.next_try = 0.0
        plan = "replacing it" if self.enabled else "restarts are paused"
        # The event first: whoever sees the new state finds its event too.
        self.events.emit(
            CONTROLLER_ID,
            CONTROLLER_TYPE,
            "CONTROLLER_FAILED",
            f"exited with code {code}; the switches keep forwarding with the flows they "
            f"have, nothing new is programmed; {plan} (see {self.controller.log})",
        )
        self.save(state="CONTROLLER_FAILED", reason=f"controller exited with code {code}")

    def _restart(self) -> None:
        started = time.monotonic()
        with self.lock:
            standby, self.standby = self.standby, None
        how = "standby" if standby is not None and standby.alive() else "new process"
        await_targets = self.push_targets is not None
        if standby is not None and how == "standby":
            self.controller = standby
        else:
            if standby is not None:
                standby.stop()
            self.controller = self.controller.replacement()
        try:
            if how == "standby":
                self.controller.activate(await_targets)
            else:
                self.controller.start(await_targets=await_targets)
            # Target states before any switch: it takes them over with the holder's view.
            if self.push_targets is not None and not self.push_targets():
                raise LabError("the new controller did not take the target states")
            proc, port = self.controller.proc, self.controller.port
            assert proc is not None  # started, or activate() raised
            assert port is not None
            attach_switches(self.bridges, port, getattr(self.controller, "lab_dir", None))
            status = self.controller.wait_programmed()
        except LabError as exc:
            self.controller.stop()
            wait = RETRY_S[min(self.attempts, len(RETRY_S) - 1)]
            self.attempts += 1
            self.next_try = time.monotonic() + wait
            self.events.emit(
                CONTROLLER_ID,
                CONTROLLER_TYPE,
                "CONTROLLER_RESTART_FAILED",
                f"attempt {self.attempts} ({how}): {exc}; next attempt in {wait:g} s",
            )
            return
        takeovers = status["takeovers"].values()
        found = sum(t["found"] for t in takeovers)
        added = sum(t.get("added", 0) for t in takeovers)
        deleted = sum(t.get("deleted", 0) for t in takeovers)
        self.restarts += 1
        now = time.monotonic()
        self.events.emit(
            CONTROLLER_ID,
            CONTROLLER_TYPE,
            "CONTROLLER_RESTARTED",
            f"os-ken pid {proc.pid} ({how}), OpenFlow port {port}: took over "
            f"{len(self.bridges)} switches in {now - started:.2f} s ({now - self.failed_at:.2f} "
            f"s after the failure was seen); {found} flows found, {added} added, "
            f"{deleted} deleted",
        )
        resume, self.resume_state = self.resume_state, None
        self._save_controller(state=resume, reason=None)

    # ---- the standby ------------------------------------------------------------------
    def _keep_standby(self) -> None:
        """Start a standby in the background if there is none (and none is starting)."""
        with self.lock:
            if (
                self.closed
                or not self.enabled
                or (self.standby is not None and self.standby.alive())
                or (self.starting is not None and self.starting.is_alive())
                or time.monotonic() < self.standby_next_try
            ):
                return
            self.starting = threading.Thread(
                target=self._start_standby, daemon=True, name="controller-standby"
            )
            self.starting.start()

    def _start_standby(self) -> None:
        standby = self.controller.standby()
        try:
            standby.start(await_targets=True)  # told otherwise when it is activated
        except LabError as exc:
            self.standby_next_try = time.monotonic() + STANDBY_RETRY_S
            self.events.emit(
                CONTROLLER_ID,
                CONTROLLER_TYPE,
                "CONTROLLER_STANDBY_FAILED",
                f"{exc}; a failed controller will be replaced by a new process",
            )
            return
        with self.lock:
            if self.closed:
                standby.stop()
                return
            self.standby = standby
        self._save_controller()

    def _save_controller(self, **changes: Any) -> None:
        """Save the lab state's `controller` entry (and `changes`) as it is now."""
        with self.lock:  # the standby's thread saves too: never an older view after a newer
            c, standby = self.controller, self.standby
            self.save(
                controller=ControllerInfo(
                    pid=c.proc.pid if c.proc else None,
                    port=c.port,
                    log=str(c.log),
                    restarts=self.restarts,
                    standby_pid=standby.proc.pid if standby and standby.proc else None,
                ),
                **changes,
            )
