"""Fault injection on a running lab's http-backend hosts (and GWLB appliances: refuse, hang,
clear, stop, start, show).

Kinds (what the backend then does):
  500 | status CODE   answer every request, health checks included, with CODE
  delay MS          answer every request MS milliseconds late
  hang              read requests, never answer (clients and health checks time out)
  refuse            stop listening: new TCP connections get a RST, UDP gets port unreachable
  stop              end the backend process: established connections are reset too (a
                    host on another server: ended there, by the PID it recorded there)
  start             start it again (after stop)
  clear             undo status/delay/hang/refuse
  show              print the current faults and counters
Every change is recorded as a lab event (FAULT_INJECTED / FAULT_CLEARED) with its time, so
experiments can measure detection time from it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from testbed import naming
from testbed.errors import BadInput, LabError
from testbed.lab.events import EventLog
from testbed.lab.launch import HTTP_BACKEND_DEFAULTS
from testbed.lab.procs import ProcessJournal, terminate
from testbed.lab.programs import role_what, running_role, start_role, wait_roles_ready

if TYPE_CHECKING:  # the Lab API calls this module: no import cycle at run time
    from testbed.lab.api import Lab, LabHost
    from testbed.plan.network import HostPlan
    from testbed.topologies.cluster import ServerAccess

ADMIN_KINDS = {
    "500": ("status", "500"),
    "status": ("status", None),
    "delay": ("delay_ms", None),
    "hang": ("hang", "1"),
    "refuse": ("refuse", "1"),
    "clear": ("clear", ""),
}
KINDS = ("500", "status", "delay", "hang", "refuse", "stop", "start", "clear", "show")
FAULT_TYPE = "Lab::Fault"
# Roles with the admin port's fault API (appliances: refuse, hang, clear, stop, start).
FAULT_ROLES = ("http-backend", "appliance")


def apply_fault(lab: Lab, host: str, kind: str, value: str | None = None) -> dict[str, Any]:
    """Apply a fault to `host` of the running lab `lab`; returns the new state."""
    if kind not in KINDS:
        raise BadInput(f"unknown fault {kind!r}", hint=f"kinds: {', '.join(KINDS)}")
    h = lab.host(host)  # BadInput for an unknown host
    hp = lab.plan.host(host)
    if hp.role not in FAULT_ROLES:
        raise BadInput(
            f"host {host} runs role {hp.role or 'none'!r}: faults apply to "
            f"{' and '.join(FAULT_ROLES)} hosts"
        )
    events = EventLog(lab.dir)
    journal = ProcessJournal(lab.dir)
    if kind in ("stop", "start") and (lab.dir / naming.SERVERS_FILE).exists():
        from testbed.lab.servers import host_server

        access = host_server(lab.name, host)
        if access is not None:  # on another server: its processes are ended there, by PID
            return _remote_stop_start(lab, hp, kind, access, journal, events)
    if kind == "stop":
        recs = running_role(journal, hp)
        if not recs:
            raise LabError(f"the backend of {host} is not running")
        terminate(recs)
        events.emit(host, FAULT_TYPE, "FAULT_INJECTED", "stop: backend process ended")
        return {"running": False}
    if kind == "start":
        if running_role(journal, hp):
            raise BadInput(f"the backend of {host} is already running")
        proc = start_role(lab.name, journal, events, hp)
        assert proc is not None  # http-backend always has a program
        wait_roles_ready(lab.name, [(hp, proc)])
        events.emit(host, FAULT_TYPE, "FAULT_CLEARED", f"start: backend pid {proc.pid}")
        return {"running": True, "pid": proc.pid}
    admin = int(hp.role_args.get("AdminPort", HTTP_BACKEND_DEFAULTS["AdminPort"]))
    if kind == "show":
        return _admin(h, admin, "GET", "/stats")
    param, fixed = ADMIN_KINDS[kind]
    arg = fixed if fixed is not None else value
    if arg is None:
        raise BadInput(
            f"fault {kind} needs a value",
            hint=f"testbed fault LAB HOST {kind} " + ("503" if kind == "status" else "200"),
        )
    try:
        if param in ("status", "delay_ms"):
            float(arg)
    except ValueError as exc:
        raise BadInput(f"fault {kind}: {arg!r} is not a number") from exc
    state = _admin(h, admin, "POST", f"/faults?{param}={arg}")
    status = "FAULT_CLEARED" if kind == "clear" else "FAULT_INJECTED"
    detail = f" {arg}" if kind in ("status", "delay") else ""
    events.emit(host, FAULT_TYPE, status, kind + detail)
    return state


def _remote_stop_start(
    lab: Lab,
    hp: HostPlan,
    kind: str,
    access: ServerAccess,
    journal: ProcessJournal,
    events: EventLog,
) -> dict[str, Any]:
    """stop/start of the role of a host on another server. Its process recorded itself there
    (PID and start time, testbed.topologies.cluster.record_self_prefix): stop ends it there
    by that PID (SIGTERM to its process group, SIGKILL after a grace), start starts the role
    again over ssh and reads its new PID there."""
    from testbed.topologies.cluster import end_remote_processes, remote_processes

    what = role_what(hp)
    if kind == "stop":
        ended = end_remote_processes(lab.name, access, hp.name, what)
        if not ended:
            raise LabError(f"the backend of {hp.name} is not running (on server {access.name})")
        # The ssh clients here that started it end with it; any still there go too.
        terminate(running_role(journal, hp), grace=0.5)
        pids = [int(line.split()[1]) for line in ended]
        events.emit(
            hp.name,
            FAULT_TYPE,
            "FAULT_INJECTED",
            f"stop: backend process ended on server {access.name} "
            f"(pid {', '.join(map(str, pids))} there)",
        )
        return {"running": False, "server": access.name, "ended_pids": pids}
    if [r for r in remote_processes(lab.name, access, hp.name) if r.label == what]:
        raise BadInput(f"the backend of {hp.name} is already running (on server {access.name})")
    proc = start_role(lab.name, journal, events, hp)
    assert proc is not None  # http-backend always has a program
    wait_roles_ready(lab.name, [(hp, proc)])
    mine = [r for r in remote_processes(lab.name, access, hp.name) if r.label == what]
    if not mine:
        raise LabError(f"the backend of {hp.name} on server {access.name} did not record its PID")
    events.emit(
        hp.name,
        FAULT_TYPE,
        "FAULT_CLEARED",
        f"start: backend pid {mine[0].pid} on server {access.name}",
    )
    return {"running": True, "pid": mine[0].pid, "server": access.name}


def _admin(host: LabHost, port: int, method: str, path: str) -> dict[str, Any]:
    proc = host.run(
        ["curl", "-s", "-m", "3", "-X", method, f"http://127.0.0.1:{port}{path}"], timeout=10
    )
    if proc.returncode != 0:
        raise LabError(
            f"the backend of {host.name} does not answer on its admin port {port} "
            f"(curl exit {proc.returncode}); is it stopped? (testbed fault ... start)"
        )
    try:
        return json.loads(proc.stdout)
    except ValueError as exc:
        raise LabError(
            f"unexpected answer from {host.name}'s admin port: {proc.stdout[:200]!r}"
        ) from exc
