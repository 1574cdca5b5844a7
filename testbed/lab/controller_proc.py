"""The lab's os-ken controller as a separate, recorded process, and how to talk to it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from testbed import rpc
from testbed.errors import LabError
from testbed.lab.procs import ProcessJournal
from testbed.naming import CONTROLLER_SOCK

CONTROLLER_LOG = "controller.log"


def free_port() -> int:
    """A TCP port nobody listens on right now (the controller binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


class ControllerProcess:
    """Starts `python -m testbed.controllers.run` for a lab and waits until it answers."""

    def __init__(self, lab_dir: Path, journal: ProcessJournal, plan_path: Path) -> None:
        self.lab_dir = Path(lab_dir)
        self.journal = journal
        self.plan_path = plan_path
        self.sock = str(self.lab_dir / CONTROLLER_SOCK)
        self.log = self.lab_dir / CONTROLLER_LOG
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Start the controller on a free port; raise LabError if it does not come up."""
        for _attempt in range(3):  # the free port may be taken between probe and bind
            self.port = free_port()
            env = dict(
                os.environ,
                TESTBED_PLAN=str(self.plan_path),
                TESTBED_CONTROL_SOCK=self.sock,
                PYTHONUNBUFFERED="1",
            )
            self.proc = self.journal.start(
                [sys.executable, "-m", "testbed.controllers.run", "--port", str(self.port)],
                what="controller",
                log=self.log,
                env=env,
            )
            if self._wait_answering(timeout):
                return
            if "Address already in use" not in log_tail(self.log, 40):
                break
        raise LabError(
            f"the controller did not start; its log ({self.log}) ends with:\n{log_tail(self.log)}"
        )

    def _wait_answering(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return False
            try:
                if rpc.call(self.sock, {"op": "status"}, timeout=2).get("ok"):
                    return self._listening()
            except (rpc.RpcUnavailable, OSError):
                pass
            time.sleep(0.05)
        return False

    def _listening(self) -> bool:
        # The control socket comes up in the app's constructor, a moment before os-ken opens
        # its OpenFlow port: wait for the port too so switches connect on the first try.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return True
            if not self.alive():
                return False
            time.sleep(0.05)
        return False

    def status(self, timeout: float = 5.0) -> dict[str, Any]:
        return rpc.call(self.sock, {"op": "status"}, timeout=timeout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_programmed(self, timeout: float = 30.0) -> dict[str, Any]:
        """Block until every switch of the plan is connected and its flows acknowledged."""
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if not self.alive():
                raise LabError(
                    f"the controller exited (code {self.proc and self.proc.returncode}); its log "
                    f"({self.log}) ends with:\n{log_tail(self.log)}"
                )
            status = self.status()
            if status.get("errors"):
                raise LabError(
                    f"OpenFlow errors while programming switches: "
                    f"{status['errors'][:3]} (see {self.log})"
                )
            if set(status.get("expected", [])) <= set(status.get("ready", [])):
                return status
            time.sleep(0.05)
        missing = sorted(set(status.get("expected", [])) - set(status.get("ready", [])))
        raise LabError(
            f"switches {', '.join(hex(d) for d in missing)} did not connect to the "
            f"controller within {timeout:.0f} s (see {self.log})"
        )
