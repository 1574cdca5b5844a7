"""Processes a lab starts: recorded (pid + kernel start time) before anything else, ended by PID.

The start time guards against PID reuse: after a kill -9 of the holder, `testbed clean`
only signals a PID whose /proc start time still matches what the lab recorded.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from testbed.waiting import REAL_CLOCK, Clock, WaitTimeout, wait_for

JOURNAL = "pids.jsonl"
LAB_LABEL = "TESTBED_LAB"  # environment variable: every process a lab's holder starts has it


@dataclass(frozen=True)
class ProcessRecord:
    pid: int
    start_time: int  # clock ticks since boot, /proc/PID/stat field 22
    what: str
    host: str | None = None


def start_time(pid: int) -> int | None:
    """Kernel start time of `pid`, or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces or parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def is_alive(rec: ProcessRecord) -> bool:
    """True if the recorded process is still the same process (not a reused PID)."""
    st = start_time(rec.pid)
    if st is None or st != rec.start_time:
        return False
    try:  # a zombie still has /proc/PID but is already dead
        state = Path(f"/proc/{rec.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):  # ProcessLookupError: it exited between open and read
        return False
    return state != "Z"


def group_running(pgid: int) -> list[int]:
    """PIDs of the live (not zombie) processes in process group `pgid`.

    A SIGKILL to a group returns before its members are gone: a caller that wants them
    gone, not just signalled, waits until this is empty."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it exited while we looked
            continue
        # After the command name (which may hold ')'): state, ppid, pgrp, ...
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def record(pid: int, what: str, host: str | None = None) -> ProcessRecord:
    """A record of a running process (raises LookupError if it already exited)."""
    st = start_time(pid)
    if st is None:
        raise LookupError(f"process {pid} ({what}) exited before it could be recorded")
    return ProcessRecord(pid, st, what, host)


class StopShield:
    """Holds off an asynchronous stop while a process is started and journaled.

    The holder stops a build by raising an exception from its SIGTERM handler, in the main
    thread, wherever it is. Raised between the start of a process and its journal entry, it
    would leave a process that the rollback cannot find; inside `hold()` the handler hands
    its stop to `defer()` and it is raised when the outermost `hold()` ends. One shield per
    process (signal handlers are per process); only the main thread is held (Python runs
    signal handlers there only)."""

    def __init__(self) -> None:
        self.depth = 0
        self.deferred: Callable[[], None] | None = None

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if self.depth == 0 and self.deferred is not None:
                action, self.deferred = self.deferred, None
                action()

    def defer(self, action: Callable[[], None]) -> bool:
        """From a signal handler: run `action` (which raises) when the held section ends and
        return True; False if nothing is held (the handler acts at once)."""
        if self.depth == 0:
            return False
        self.deferred = action
        return True


STOP_SHIELD = StopShield()


def labelled_pids(lab: str) -> list[int]:
    """PIDs of the processes whose environment carries the lab's label (TESTBED_LAB=lab):
    the holder's descendants, including any that were never journaled."""
    label = f"{LAB_LABEL}={lab}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue  # gone, or a kernel thread
        if label in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


class ProcessJournal:
    """Append-only list of a lab's processes, in its lab directory."""

    def __init__(self, lab_dir: Path) -> None:
        self.path = Path(lab_dir) / JOURNAL

    def add(self, rec: ProcessRecord) -> ProcessRecord:
        with open(self.path, "a") as f:
            # Shared with drop_host's rewrite (other processes append too: faults, pollers).
            fcntl.flock(f, fcntl.LOCK_EX)
            f.write(json.dumps(asdict(rec)) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return rec

    def end_host(self, host: str, grace: float = 1.5) -> list[int]:
        """End every journaled process of `host` (a host that leaves a running lab) and drop
        their records. Returns the PIDs signalled."""
        return self.end_hosts([host], grace)

    def end_hosts(self, hosts: Collection[str], grace: float = 1.5) -> list[int]:
        """end_host of several hosts at once (one grace period for all)."""
        wanted = set(hosts)
        mine = [r for r in self.records() if r.host in wanted]
        # Mininet's host shell is an interactive bash: it ignores SIGTERM.
        shells = [r for r in mine if r.what.startswith("mininet")]
        ended = terminate([r for r in mine if r not in shells], grace=grace)
        ended += terminate(shells, grace=0.5, first_signal=signal.SIGKILL)
        self.drop_hosts(wanted)
        return ended

    def drop_hosts(self, hosts: Collection[str]) -> None:
        """Rewrite the journal without the records of `hosts` (their processes ended)."""
        if not self.path.exists():
            return
        with open(self.path, "r+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            kept = []
            for line in f.read().splitlines():
                try:
                    if json.loads(line).get("host") in hosts:
                        continue
                except (ValueError, AttributeError):
                    pass  # a line cut short by a crash: kept as it is
                kept.append(line + "\n")
            f.seek(0)
            f.write("".join(kept))
            f.truncate()
            f.flush()
            os.fsync(f.fileno())

    def records(self) -> list[ProcessRecord]:
        try:
            with open(self.path) as f:
                fcntl.flock(f, fcntl.LOCK_SH)  # never half of drop_hosts' rewrite
                text = f.read()
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            try:
                out.append(ProcessRecord(**json.loads(line)))
            except (ValueError, TypeError):
                continue  # a line cut short by a crash mid-write
        return out

    def start(
        self,
        argv: Sequence[str],
        what: str,
        host: str | None = None,
        log: Path | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen:
        """Start argv in its own session, record it, and return the Popen."""
        with STOP_SHIELD.hold(), contextlib.ExitStack() as files:
            out: IO[bytes] | int = subprocess.DEVNULL
            if log is not None:
                log.parent.mkdir(parents=True, exist_ok=True)
                out = files.enter_context(open(log, "ab"))  # the child keeps its own copy
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                cwd=cwd,
            )
            # Exited at once; its exit code tells the caller what happened.
            with contextlib.suppress(LookupError):
                self.add(record(proc.pid, what, host))
        return proc


def terminate(
    pids: Sequence[int | ProcessRecord],
    grace: float = 1.5,
    first_signal: int = signal.SIGTERM,
    clock: Clock = REAL_CLOCK,
) -> list[int]:
    """SIGTERM (or first_signal), wait up to `grace` s (by `clock`), then SIGKILL. Returns
    PIDs signalled.

    Plain ints are PIDs the caller knows are its own (e.g. members of the lab's namespaces);
    ProcessRecords are checked against their start time first.
    """
    targets: list[int] = []
    for p in pids:
        if isinstance(p, ProcessRecord):
            if is_alive(p):
                targets.append(p.pid)
        elif start_time(p) is not None:
            targets.append(p)
    targets = sorted({t for t in targets if t != os.getpid()})
    starts = {pid: start_time(pid) for pid in targets}
    for pid in targets:
        _signal(pid, first_signal)
    remaining = list(targets)

    def all_ended() -> bool:
        remaining[:] = [p for p in remaining if _still_same(p, starts[p])]
        return not remaining

    with contextlib.suppress(WaitTimeout):  # those still there get SIGKILL
        wait_for(all_ended, grace, "processes to end", interval=0.02, clock=clock)
    for pid in remaining:
        _signal(pid, signal.SIGKILL)
    return targets


def _still_same(pid: int, st: int | None) -> bool:
    if start_time(pid) != st:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state == "Z":
        _reap(pid)
        return False
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
