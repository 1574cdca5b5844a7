"""Starting a host's role program: used when the lab is built and by `testbed fault HOST start`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from testbed import naming
from testbed.errors import LabError
from testbed.lab.controller_proc import log_tail
from testbed.lab.events import EventLog
from testbed.lab.hostexec import host_dir, netns_argv
from testbed.lab.hosttools import TOOLS_DIR
from testbed.lab.launch import launch
from testbed.lab.procs import ProcessJournal, ProcessRecord, is_alive
from testbed.plan.network import HostPlan
from testbed.waiting import wait_for


def host_env() -> dict[str, str]:
    """Environment for programs in hosts: ours, minus the controller's private variables,
    with the lab's host tools (cfn-signal, cfn-init, the package manager shims) first in
    PATH and the Python that runs them."""
    env = dict(os.environ)
    env.pop("TESTBED_PLAN", None)
    env.pop("TESTBED_CONTROL_SOCK", None)
    env["PATH"] = os.pathsep.join([str(TOOLS_DIR), env.get("PATH") or os.defpath])
    env["TESTBED_PYTHON"] = sys.executable
    return env


def role_what(host: HostPlan) -> str:
    """Journal label of a host's role process."""
    return f"role:{host.role}"


def start_role(
    lab: str, journal: ProcessJournal, events: EventLog, host: HostPlan
) -> subprocess.Popen | None:
    """Start `host`'s role in its namespace, journaled, logging to hosts/<name>/role.log.

    None when the role has nothing to run (e.g. a load-client without a Target)."""
    hdir = host_dir(lab, host.name)
    spec = launch(host, hdir)
    if spec is None:
        return None
    log = hdir / "role.log"
    env = dict(host_env(), TESTBED_HOST=host.name)
    proc = journal.start(
        netns_argv(lab, host.name, spec.argv, env=env, record=role_what(host)),
        what=role_what(host),
        host=host.name,
        log=log,
        env=env,
    )
    events.emit(host.name, "Lab::Role", "ROLE_STARTED", f"{host.role} (pid {proc.pid}, log {log})")
    return proc


def listening_ports(pid: int) -> set[int]:
    """TCP ports in LISTEN state in the network namespace of process `pid`."""
    try:
        return listen_table_ports(Path(f"/proc/{pid}/net/tcp").read_text())
    except OSError:
        return set()


def listen_table_ports(text: str) -> set[int]:
    """TCP ports in LISTEN state in the text of a /proc/net/tcp."""
    ports: set[int] = set()
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[3] == "0A":  # 0A = TCP_LISTEN
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def bound_udp_ports(pid: int) -> set[int]:
    """UDP ports bound in the network namespace of process `pid`."""
    ports: set[int] = set()
    try:
        lines = Path(f"/proc/{pid}/net/udp").read_text().splitlines()[1:]
    except OSError:
        return ports
    for line in lines:
        fields = line.split()
        if len(fields) > 1:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def ready_ports(lab: str, host: HostPlan) -> set[int]:
    """TCP ports host's role must listen on to be ready (empty: ready once started)."""
    spec = launch(host, host_dir(lab, host.name))
    return set(spec.ready_ports) if spec is not None and spec.ready_ports else set()


def role_listening(lab: str, host: HostPlan, proc: subprocess.Popen, ports: set[int]) -> bool:
    """One look: does the role listen on all `ports`? LabError naming the host and its log
    when the role exited."""
    if proc.poll() is not None:
        log = host_dir(lab, host.name) / "role.log"
        raise LabError(
            f"role {host.role} of {host.name} exited with code "
            f"{proc.returncode}; {log} ends with:\n{log_tail(log)}"
        )
    if (naming.lab_dir(lab) / naming.SERVERS_FILE).exists():
        from testbed.lab.servers import host_server

        access = host_server(lab, host.name)
        if access is not None:  # on another server: its namespace's table, over ssh
            table = access.run(f"ip netns exec {host.netns} cat /proc/net/tcp", check=False)
            return ports <= listen_table_ports(table)
    return ports <= listening_ports(proc.pid)


def wait_roles_ready(
    lab: str, started: list[tuple[HostPlan, subprocess.Popen]], timeout: float = 20.0
) -> None:
    """Block until every started role listens on the TCP ports its launch declares. LabError
    naming the host and its log if one exits, WaitTimeout if one never listens."""
    pending = [(host, proc, ready_ports(lab, host)) for host, proc in started]
    pending = [(host, proc, ports) for host, proc, ports in pending if ports]

    def not_listening() -> list[str]:
        return [
            host.name for host, proc, ports in pending if not role_listening(lab, host, proc, ports)
        ]

    wait_for(
        lambda: not not_listening(),
        timeout,
        "roles to listen on their ports",
        last=lambda: {"not listening yet": not_listening()},
    )


def running_role(journal: ProcessJournal, host: HostPlan) -> list[ProcessRecord]:
    """Journal records of `host`'s role processes that are still alive."""
    return [
        r
        for r in journal.records()
        if r.host == host.name and r.what == role_what(host) and is_alive(r)
    ]
