"""Starting a host's role program: used when the lab is built and by `testbed fault HOST start`."""

from __future__ import annotations

import importlib
import os
import subprocess
import time

from testbed.errors import LabError
from testbed.lab.controller_proc import log_tail
from testbed.lab.events import EventLog
from testbed.lab.hostexec import host_dir, netns_argv
from testbed.lab.plan import HostPlan
from testbed.lab.procs import ProcessJournal, is_alive
from testbed.roles import ROLE_MODULES, role_argv


def host_env() -> dict[str, str]:
    """Environment for programs in hosts: ours, minus the controller's private variables."""
    env = dict(os.environ)
    env.pop("TESTBED_PLAN", None)
    env.pop("TESTBED_CONTROL_SOCK", None)
    return env


def role_what(host: HostPlan) -> str:
    """Journal label of a host's role process."""
    return f"role:{host.role}"


def start_role(lab: str, journal: ProcessJournal, events: EventLog,
               host: HostPlan) -> subprocess.Popen | None:
    """Start `host`'s role in its namespace, journaled, logging to hosts/<name>/role.log.

    None when the role has nothing to run (e.g. a load-client without a Target)."""
    hdir = host_dir(lab, host.name)
    argv = role_argv(host, hdir)
    if not argv:
        return None
    log = hdir / "role.log"
    env = dict(host_env(), TESTBED_HOST=host.name)
    proc = journal.start(netns_argv(lab, host.name, argv), what=role_what(host),
                         host=host.name, log=log, env=env)
    events.emit(host.name, "Lab::Role", "ROLE_STARTED", f"{host.role} (pid {proc.pid}, log {log})")
    return proc


def listening_ports(pid: int) -> set[int]:
    """TCP ports in LISTEN state in the network namespace of process `pid`."""
    ports = set()
    try:
        lines = open(f"/proc/{pid}/net/tcp").read().splitlines()[1:]
    except OSError:
        return ports
    for line in lines:
        fields = line.split()
        if len(fields) > 3 and fields[3] == "0A":  # 0A = TCP_LISTEN
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def bound_udp_ports(pid: int) -> set[int]:
    """UDP ports bound in the network namespace of process `pid`."""
    ports = set()
    try:
        lines = open(f"/proc/{pid}/net/udp").read().splitlines()[1:]
    except OSError:
        return ports
    for line in lines:
        fields = line.split()
        if len(fields) > 1:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def wait_roles_ready(lab: str, started: list[tuple[HostPlan, subprocess.Popen]],
                     timeout: float = 20.0) -> None:
    """Block until every started role listens on the TCP ports its module declares
    (`tcp_ports(args)`). LabError naming the host and its log if one exits or never listens."""
    pending = []
    for host, proc in started:
        module = importlib.import_module(ROLE_MODULES[host.role])
        ports = set(getattr(module, "tcp_ports", lambda args: [])(dict(host.role_args)))
        if ports:
            pending.append((host, proc, ports))
    deadline = time.monotonic() + timeout
    while pending:
        still = []
        for host, proc, ports in pending:
            if proc.poll() is not None:
                log = host_dir(lab, host.name) / "role.log"
                raise LabError(f"role {host.role} of {host.name} exited with code "
                               f"{proc.returncode}; {log} ends with:\n{log_tail(log)}")
            if not ports <= listening_ports(proc.pid):
                still.append((host, proc, ports))
        pending = still
        if pending and time.monotonic() > deadline:
            names = ", ".join(h.name for h, _, _ in pending)
            raise LabError(f"roles of {names} did not start listening within {timeout:.0f} s")
        if pending:
            time.sleep(0.05)


def running_role(journal: ProcessJournal, host: HostPlan) -> list:
    """Journal records of `host`'s role processes that are still alive."""
    return [r for r in journal.records()
            if r.host == host.name and r.what == role_what(host) and is_alive(r)]
