"""The lab's os-ken controller as a separate, recorded process, and how to talk to it."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from testbed import asks, rpc
from testbed.errors import LabError
from testbed.lab.procs import ProcessJournal, terminate
from testbed.messages import ControllerStatusReply, StatusRequest
from testbed.naming import CONTROLLER_SOCK, NLB_COUNTERS_FILE, SERVERS_FILE, STANDBY_SOCK
from testbed.waiting import WaitTimeout, wait_for

CONTROLLER_LOG = "controller.log"
RECONNECT_MS = 1000  # a switch that lost its controller tries again every second (Mininet's)


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
    """Starts `python -m testbed.controllers.run` for a lab and waits until it answers.

    The lab's controller answers on CONTROLLER_SOCK; a standby (see `standby`) runs beside
    it on STANDBY_SOCK, attached to no switch, until `activate` makes it the controller."""

    def __init__(
        self,
        lab_dir: Path,
        journal: ProcessJournal,
        plan_path: Path,
        sock: str | None = None,
        what: str = "controller",
    ) -> None:
        self.lab_dir = Path(lab_dir)
        self.journal = journal
        self.plan_path = plan_path
        self.sock = sock or str(self.lab_dir / CONTROLLER_SOCK)
        self.what = what
        self.log = self.lab_dir / CONTROLLER_LOG
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.host = listen_host(self.lab_dir)

    def replacement(self) -> ControllerProcess:
        """A new controller for the same lab, not started yet, in this one's place."""
        return ControllerProcess(self.lab_dir, self.journal, self.plan_path)

    def standby(self) -> ControllerProcess:
        """A second controller for the same lab, not started yet: it will wait, ready, on
        its own socket and port, so that replacing this one costs no process start."""
        return ControllerProcess(
            self.lab_dir,
            self.journal,
            self.plan_path,
            sock=str(self.lab_dir / STANDBY_SOCK),
            what="controller-standby",
        )

    def activate(self, await_targets: bool) -> None:
        """Make this standby the lab's controller: it reloads the NLB counters the last one
        saved, and from now on answers on the lab's controller socket (the listening socket
        itself moves there). LabError if it does not answer."""
        try:
            asks.controller_activate(self.sock, await_targets)
        except (rpc.RpcUnavailable, OSError) as exc:
            raise LabError(f"the standby controller does not answer: {exc}") from exc
        except rpc.RpcRefused as exc:
            raise LabError(f"the standby controller refused to take over: {exc}") from exc
        main = str(self.lab_dir / CONTROLLER_SOCK)
        os.replace(self.sock, main)
        self.sock = main

    def start(self, timeout: float = 30.0, await_targets: bool = False) -> None:
        """Start the controller on a free port; raise LabError if it does not come up.

        await_targets: it programs no switch before the holder has sent the target states
        (a restarted controller of a lab with load balancers)."""
        for _attempt in range(3):  # the free port may be taken between probe and bind
            self.port = free_port()
            env = dict(
                os.environ,
                TESTBED_PLAN=str(self.plan_path),
                TESTBED_CONTROL_SOCK=self.sock,
                TESTBED_NLB_COUNTERS=str(self.lab_dir / NLB_COUNTERS_FILE),
                PYTHONUNBUFFERED="1",
            )
            if await_targets:
                env["TESTBED_AWAIT_TARGETS"] = "1"
            self.proc = self.journal.start(
                [
                    sys.executable,
                    "-m",
                    "testbed.controllers.run",
                    "--port",
                    str(self.port),
                    "--host",
                    self.host,
                ],
                what=self.what,
                log=self.log,
                env=env,
            )
            if self._wait_answering(timeout):
                return
            self.stop()  # it may run without answering: never leave one behind
            if "Address already in use" not in log_tail(self.log, 40):
                break
        raise LabError(
            f"the controller did not start; its log ({self.log}) ends with:\n{log_tail(self.log)}"
        )

    def _wait_answering(self, timeout: float) -> bool:
        """Whether the controller answers on its control socket and OpenFlow port within
        `timeout` s (False, at once, if it exits)."""

        def answering() -> bool:
            if not self.alive():
                raise _Exited
            try:
                return bool(rpc.call(self.sock, StatusRequest(op="status"), timeout=2).get("ok"))
            except (rpc.RpcUnavailable, OSError):
                return False

        def listening() -> bool:
            if not self.alive():
                raise _Exited
            with socket.socket() as s:
                return s.connect_ex((self.host, self.port)) == 0

        try:
            wait_for(answering, timeout, "the controller's control socket")
            # The control socket comes up in the app's constructor, a moment before os-ken
            # opens its OpenFlow port: wait for the port too so switches connect at once.
            wait_for(listening, 10, f"the controller's OpenFlow port {self.port}")
        except (_Exited, WaitTimeout):
            return False
        return True

    def status(self, timeout: float = 5.0) -> ControllerStatusReply:
        return asks.controller_status(self.sock, timeout=timeout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """End the controller process (if it still runs) and reap it."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            terminate([proc.pid])
            proc.wait(timeout=10)

    def wait_programmed(self, timeout: float = 30.0) -> ControllerStatusReply:
        """Block until every switch of the plan is connected and its flows acknowledged."""
        status: ControllerStatusReply | None = None

        def programmed() -> ControllerStatusReply | None:
            nonlocal status
            if not self.alive():
                raise LabError(
                    f"the controller exited (code {self.proc and self.proc.returncode}); its log "
                    f"({self.log}) ends with:\n{log_tail(self.log)}"
                )
            try:
                status = self.status()
            except TimeoutError:
                # Busy sending a large lab's flows (400 instances: over 5 s without an
                # answer): not programmed yet, which the overall timeout bounds.
                return None
            if status["errors"]:
                raise LabError(
                    f"OpenFlow errors while programming switches: "
                    f"{status['errors'][:3]} (see {self.log})"
                )
            if set(status["expected"]) <= set(status["ready"]):
                return status
            return None

        try:
            return wait_for(programmed, timeout, "the switches to be programmed")
        except WaitTimeout:
            missing = sorted(set(status["expected"]) - set(status["ready"])) if status else []
            raise LabError(
                f"switches {', '.join(hex(d) for d in missing)} did not connect to the "
                f"controller within {timeout:.0f} s (see {self.log})"
            ) from None


def listen_host(lab_dir: Path) -> str:
    """Where a lab's controller listens: 127.0.0.1, or for a lab across servers (issue 18)
    the front end's underlay address, which the switches on the other servers reach."""
    if not (lab_dir / SERVERS_FILE).exists():
        return "127.0.0.1"
    from testbed.topologies.cluster import LabServers

    return LabServers.from_json((lab_dir / SERVERS_FILE).read_text()).front_end_address


class _Exited(Exception):
    """The controller process ended while we waited for it."""


def attach_switches(bridges: Sequence[str], port: int, lab_dir: Path | None = None) -> None:
    """Point the lab's bridges at the controller on `port`, in one ovs-vsctl transaction
    per server: each connects at once (instead of at its next retry) and keeps every flow
    it has (fail-mode secure). lab_dir: the lab's folder; a lab across servers (issue 18)
    has its controller on the front end's underlay address and bridges on other servers
    (pointed there over ssh)."""
    host = listen_host(lab_dir) if lab_dir is not None else "127.0.0.1"
    groups: dict[str, list[str]] = {}
    remote: dict[str, Any] = {}
    if lab_dir is not None and (lab_dir / SERVERS_FILE).exists():
        from testbed.topologies.cluster import LabServers

        servers = LabServers.from_json((lab_dir / SERVERS_FILE).read_text())
        for bridge in bridges:
            access = servers.server_of(bridge)
            key = access.name if access is not None else ""
            groups.setdefault(key, []).append(bridge)
            if access is not None:
                remote[key] = access
    else:
        groups[""] = list(bridges)
    for key, names in groups.items():
        argv = ["ovs-vsctl"]
        for i, bridge in enumerate(names):
            argv += [
                "--",
                f"--id=@c{i}",
                "create",
                "Controller",
                f'target="tcp:{host}:{port}"',
                f"max_backoff={RECONNECT_MS}",
                "--",
                "set",
                "Bridge",
                bridge,
                f"controller=@c{i}",
            ]
        if key:
            argv = remote[key].argv(shlex.join(argv))
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise LabError(f"could not point the switches at port {port}: {proc.stderr.strip()}")
