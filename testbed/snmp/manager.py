"""The manager side on a running lab: one-shot GET/walk and `monitor`, through pollers that
run inside vantage hosts (testbed.snmp.vantage), journaled like every lab process.

    rows = query("default", "WebA1", "get", ["sysName.0", "IF-MIB::ifHCInOctets.2"])
    summary = monitor("default", interval=1, duration=30, out=Path("ifs.csv"))
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from testbed.errors import BadInput, LabError
from testbed.lab.api import Lab
from testbed.lab.events import EventLog
from testbed.lab.hostexec import netns_argv
from testbed.lab.procs import ProcessJournal
from testbed.lab.services.snmpd import EVENT_TYPE
from testbed.plan.network import NetworkPlan
from testbed.schemas import SNMP_COLUMNS
from testbed.snmp import counters, mibs, vantage
from testbed.snmp.poller import POLL_COLUMNS
from testbed.waiting import WaitTimeout, wait_for

# Events of SETs: a type of their own (wait_ready reads the agents' last Lab::Snmp status).
SET_EVENT_TYPE = "Lab::Snmp::Set"
WHAT = "snmp-poller"  # journal label of poller processes
WORK_DIR = "snmp"  # in the lab directory: specs, per-vantage CSVs and logs
START_DELAY = 0.8  # s: pollers start together once every process has imported pysnmp
GRACE = 30.0  # s past the duration before a poller that hangs is stopped


@dataclass
class MonitorSummary:
    """What a monitor run produced (the CLI prints it; experiments keep it)."""

    out: str
    rates_out: str | None
    agents: int
    vantages: dict[str, list[str]]
    rows: int
    values: int
    timeouts: int
    errors: int
    polls: int
    seconds: float
    objects_per_s: float
    latency_ms: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def lab_plan(lab: Lab) -> NetworkPlan:
    """The running lab's network plan (hosts, addresses, SNMP settings)."""
    return lab.plan


def wait_ready(lab: Lab, hosts: list[str], timeout: float = 10.0) -> dict[str, str]:
    """Wait until the agents of `hosts` reported READY or FAILED; host -> last status."""
    if not hosts:
        return {}

    def statuses() -> dict[str, str]:
        return {
            e.logical_id: e.status
            for e in lab.events()
            if e.resource_type == EVENT_TYPE and e.logical_id in hosts
        }

    def reported() -> dict[str, str] | None:
        status = statuses()
        done = all(status.get(h) in ("SNMPD_READY", "SNMPD_FAILED") for h in hosts)
        return status if done else None

    with contextlib.suppress(WaitTimeout):  # the caller sees who is not ready
        return wait_for(reported, timeout, "the SNMP agents to report")
    return statuses()


def _credentials(plan: NetworkPlan, host: str, use_v3: bool) -> dict[str, Any]:
    snmp = plan.host(host).snmp or {}
    if use_v3 and not snmp.get("v3"):
        raise BadInput(
            f"host {host} has no SNMPv3 user",
            hint="add Metadata.Lab.Snmp.V3 to the template, or leave --v3 out",
        )
    return {"v3": snmp["v3"]} if use_v3 else {"community": snmp["community"]}


def check_objects(objects: list[str]) -> list[str]:
    """The objects, each resolvable (BadInput for the first that is not)."""
    if not objects:
        raise BadInput("no objects given", hint="e.g. SNMPv2-MIB::sysUpTime IF-MIB::ifHCInOctets")
    for name in objects:
        mibs.resolve(name)
    return list(objects)


def _work_dir(lab: Lab, kind: str) -> Path:
    path = lab.dir / WORK_DIR / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)  # specs hold communities and pass phrases
    return path


def _start(lab: Lab, host: str, spec: dict[str, Any], work: Path) -> subprocess.Popen:
    spec_path = work / f"{host}.json"
    spec_path.write_text(json.dumps(spec))
    argv = netns_argv(
        lab.name, host, [sys.executable, "-m", "testbed.snmp.poller", str(spec_path)], record=WHAT
    )
    return ProcessJournal(lab.dir).start(
        argv, what=WHAT, host=host, log=work / f"{host}.log", env=dict(os.environ)
    )


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the poller writes what it has and exits
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _log_tail(path: Path) -> str:
    return path.read_text(errors="replace").strip()[-800:] if path.exists() else ""


def _run_once(
    lab: Lab, host: str, where: str, spec: dict[str, Any], kind: str, limit: float
) -> list[dict]:
    """Run one get/walk/set poller in `where` against `host`; its rows."""
    plan = lab_plan(lab)
    work = _work_dir(lab, kind)
    out = work / "rows.jsonl"
    spec = dict(spec, out=str(out))
    spec.setdefault(
        "agents", [{"host": host, "ip": plan.host(host).ip, "credentials": spec.pop("creds")}]
    )
    proc = _start(lab, where, spec, work)
    try:
        code = proc.wait(timeout=limit + GRACE)
    except subprocess.TimeoutExpired:
        _stop([proc])
        raise LabError(f"the SNMP manager in {where} did not finish") from None
    except BaseException:
        _stop([proc])
        raise
    if code != 0 or not out.exists():
        raise LabError(
            f"the SNMP manager in {where} failed (exit {code}): {_log_tail(work / f'{where}.log')}"
        )
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def query(
    lab_name: str,
    host: str,
    mode: str,
    objects: list[str],
    use_v3: bool = False,
    timeout: float = 2.0,
    retries: int = 1,
    vantage_host: str | None = None,
) -> list[dict]:
    """GET (mode 'get') or walk (mode 'walk') objects on one host's agent; the rows."""
    if mode not in ("get", "walk"):
        raise ValueError(f"mode must be get or walk, not {mode!r}")
    lab = Lab.attach(lab_name)
    plan = lab_plan(lab)
    check_objects(objects)
    ((where, _),) = vantage.assign(plan, [host], vantage_host).items()
    wait_ready(lab, [host])
    spec = {
        "mode": mode,
        "objects": objects,
        "timeout": timeout,
        "retries": retries,
        "creds": _credentials(plan, host, use_v3),
    }
    limit = (timeout * (retries + 1)) * max(1, len(objects)) * (50 if mode == "walk" else 1)
    return _run_once(lab, host, where, spec, mode, limit)


# What an agent answers for a SET it refuses (RFC 3416 error-status names, as pysnmp
# prints them), and what each means here.
REFUSALS = {
    "notWritable": "the object cannot be written (read-only, or fixed in snmpd.conf)",
    "noAccess": "these credentials may not write this object (outside their write view)",
    "authorizationError": "these credentials may not write at all",
    "readOnly": "the object is read-only",
    "wrongType": "the agent wants another type for this object",
    "wrongValue": "the agent does not accept this value for this object",
    "wrongLength": "the value has a length the object does not take",
    "inconsistentValue": "the value is not acceptable now",
    "noCreation": "no such instance, and it cannot be created",
    "commitFailed": "the agent could not carry the change out",
    "resourceUnavailable": "the agent lacks resources for the change",
    "undoFailed": "the agent could not carry the change out nor undo it",
    "genErr": "the agent failed to carry the change out",
}


@dataclass
class SetOutcome:
    """One SET: the agent's answer row, who asked and from where."""

    row: dict[str, Any]
    credentials: str  # 'write user ops', 'community elblab-ro', 'v3 user mon'
    vantage: str
    refused: str = ""  # the agent's error status, when it refused


def _set_credentials(plan: NetworkPlan, host: str, as_: str) -> tuple[dict[str, Any], str]:
    snmp = plan.host(host).snmp or {}
    if as_ == "write":
        if not snmp.get("write"):
            raise BadInput(
                f"host {host} has no SNMP write user",
                hint="add Metadata.Lab.Snmp.Write {User, AuthPassword, PrivPassword} to the "
                "template (SNMPv3 authPriv); there is no write community",
            )
        return {"v3": snmp["write"]}, f"write user {snmp['write']['user']}"
    if as_ == "v3":
        return _credentials(plan, host, True), f"v3 user {snmp['v3']['user']}"
    if as_ == "community":
        return _credentials(plan, host, False), f"community {snmp['community']}"
    if as_.startswith("community="):
        return {"community": as_.split("=", 1)[1]}, f"community {as_.split('=', 1)[1]}"
    raise ValueError(f"unknown credentials {as_!r}")


def set_object(
    lab_name: str,
    host: str,
    obj: str,
    value: str,
    kind: str = "i",
    as_: str = "write",
    timeout: float = 2.0,
    retries: int = 1,
    vantage_host: str | None = None,
) -> SetOutcome:
    """SET one instance on a host's agent (as the template's write user unless `as_` says
    'v3', 'community' or 'community=TEXT'); every SET, answered or not, is a lab event."""
    lab = Lab.attach(lab_name)
    plan = lab_plan(lab)
    target = mibs.resolve(obj)
    if target.request == "walk":
        raise BadInput(
            f"{obj} is not one instance: name a scalar or a column with its index",
            hint="e.g. IF-MIB::ifAdminStatus.2, SNMPv2-MIB::sysContact",
        )
    ((where, _),) = vantage.assign(plan, [host], vantage_host).items()
    creds, who = _set_credentials(plan, host, as_)
    wait_ready(lab, [host])
    spec = {
        "mode": "set",
        "objects": [obj],
        "type": kind,
        "value": value,
        "timeout": timeout,
        "retries": retries,
        "creds": creds,
    }
    rows = _run_once(lab, host, where, spec, "set", timeout * (retries + 1))
    row = rows[0]
    name = f"{row['object']}.{row['index']}" if row["index"] != "" else row["object"]
    error = row["error"]
    refused = error if error in REFUSALS else ""
    outcome = "" if not error else f": {error}"
    EventLog(lab.dir).emit(
        host,
        SET_EVENT_TYPE,
        "SNMP_SET" if not error else "SNMP_SET_FAILED",
        f"{name} = {value!r} ({kind}) as {who} from {where}{outcome}",
    )
    return SetOutcome(row, who, where, refused)


def monitor(
    lab_name: str,
    out: Path,
    hosts: list[str] | None = None,
    objects: list[str] | None = None,
    interval: float = 1.0,
    duration: float = 30.0,
    timeout: float | None = None,
    retries: int = 1,
    use_v3: bool = False,
    rates_out: Path | None = None,
    vantage_host: str | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> MonitorSummary:
    """Poll agents of a running lab concurrently; rows to `out` (CSV), optional rates CSV."""
    if interval < 0 or duration <= 0:
        raise BadInput("--interval must be 0 or more and --duration more than 0")
    lab = Lab.attach(lab_name)
    plan = lab_plan(lab)
    hosts = list(hosts) if hosts else vantage.agents_of(plan)
    if not hosts:
        raise BadInput(
            f"no host of lab {lab_name} runs an SNMP agent",
            hint="Metadata.Lab.Snmp is false in its template",
        )
    objects = check_objects(list(objects or mibs.DEFAULT_MONITOR_OBJECTS))
    if timeout is None:
        # A dead agent must not hold up its own next polls: answer or give up in time.
        timeout = max(0.2, min(1.0, 0.8 * interval / (retries + 1))) if interval else 1.0
    groups = vantage.assign(plan, hosts, vantage_host)
    wait_ready(lab, hosts)  # right after `testbed up`, agents may still be starting
    work = _work_dir(lab, "monitor")
    start = time.time() + START_DELAY
    procs: dict[str, subprocess.Popen] = {}
    interrupted = False
    try:
        for where, agents in groups.items():
            spec = {
                "mode": "poll",
                "objects": objects,
                "interval": interval,
                "duration": duration,
                "timeout": timeout,
                "retries": retries,
                "start": start,
                "out": str(work / f"{where}.csv"),
                "polls_out": str(work / f"{where}.polls.csv"),
                "agents": [
                    {"host": a, "ip": plan.host(a).ip, "credentials": _credentials(plan, a, use_v3)}
                    for a in agents
                ],
            }
            procs[where] = _start(lab, where, spec, work)
        _follow(procs, work, start + duration + GRACE, on_progress)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        _stop(list(procs.values()))
    failed = [w for w, p in procs.items() if p.returncode not in (0, -signal.SIGTERM)]
    if failed and not interrupted:
        raise LabError(
            f"the SNMP poller in {failed[0]} failed: {_log_tail(work / f'{failed[0]}.log')}"
        )
    return _merge(work, groups, out, rates_out, start, interrupted)


def _follow(
    procs: dict[str, subprocess.Popen],
    work: Path,
    deadline: float,
    on_progress: Callable[[dict[str, Any]], None] | None,
) -> None:
    """Wait for the pollers, reporting their combined progress lines."""
    latest: dict[str, dict[str, Any]] = {}
    offsets = dict.fromkeys(procs, 0)

    def finished() -> bool:
        done = all(p.poll() is not None for p in procs.values())
        report()
        return done

    def report() -> None:
        changed = False
        for where in procs:
            log = work / f"{where}.log"
            if not log.exists():
                continue
            with open(log) as handle:
                handle.seek(offsets[where])
                text = handle.read()
            complete, _, _rest = text.rpartition("\n")
            offsets[where] += len(complete) + (1 if complete else 0)
            for line in complete.splitlines():
                if line.startswith("{"):
                    try:
                        latest[where] = json.loads(line)
                        changed = True
                    except ValueError:
                        pass
        if changed and on_progress:
            total = {
                k: sum(v.get(k, 0) for v in latest.values())
                for k in ("agents", "polls", "rows", "values", "timeouts", "errors", "answering")
            }
            on_progress(total)

    try:
        wait_for(finished, max(0.0, deadline - time.time()), "the SNMP pollers", interval=0.25)
    except WaitTimeout as exc:
        raise LabError(f"the SNMP pollers did not finish in time: {exc}") from None


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _write_csv(path: Path, rows: list[dict], columns: tuple[str, ...]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), interpolated between neighbours; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _merge(
    work: Path,
    groups: dict[str, list[str]],
    out: Path,
    rates_out: Path | None,
    start: float,
    interrupted: bool,
) -> MonitorSummary:
    rows = [r for where in groups for r in _read_csv(work / f"{where}.csv")]
    rows.sort(key=lambda r: (float(r["time"]), r["host"]))
    polls = [p for where in groups for p in _read_csv(work / f"{where}.polls.csv")]
    _write_csv(out, rows, SNMP_COLUMNS)
    _write_csv(
        out.with_name(out.stem + ".polls.csv"),
        sorted(polls, key=lambda p: float(p["time"])),
        POLL_COLUMNS,
    )
    if rates_out is not None:
        _write_csv(rates_out, counters.rates(rows), SNMP_COLUMNS)
    values = sum(1 for r in rows if not r["error"])
    last = max((float(r["time"]) for r in rows), default=start)
    seconds = max(last - start, 1e-9)
    latencies = [float(p["latency_ms"]) for p in polls if not p["error"]]
    return MonitorSummary(
        out=str(out),
        rates_out=str(rates_out) if rates_out else None,
        agents=sum(len(a) for a in groups.values()),
        vantages=groups,
        rows=len(rows),
        values=values,
        timeouts=sum(1 for r in rows if r["error"] == "timeout"),
        errors=sum(1 for r in rows if r["error"] and r["error"] != "timeout"),
        polls=len(polls),
        seconds=round(seconds, 3),
        objects_per_s=round(values / seconds, 1),
        latency_ms={
            q: round(percentile(latencies, v), 3)
            for q, v in (("p50", 50), ("p95", 95), ("p99", 99))
        },
        interrupted=interrupted,
    )
