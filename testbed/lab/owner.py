"""The process a lab belongs to, and how its holder notices that it has ended.

A lab made by an experiment, by `Lab.up()` or by `testbed up --cli` belongs to the process
that asked for it (its owner). The holder opens a pidfd on the owner and tears the lab down
when the owner ends, however it ends: a normal exit, an exception, a signal, kill -9. Labs of
a plain `testbed up` have no owner and stay until `testbed down`.

The owner is recorded as PID + kernel start time: a PID that was reused by another process is
never mistaken for the owner (the pidfd is trusted only once the start time matched).

In the owner, `unwind_on_termination` turns SIGTERM and SIGHUP into Terminated (a
KeyboardInterrupt, like Ctrl-C) so that `finally` blocks tear the lab down in view of the user;
the holder's watch does not depend on it.
"""

from __future__ import annotations

import math
import os
import select
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.errors import Terminated
from testbed.lab.procs import ProcessRecord, is_alive, start_time
from testbed.messages import OwnerInfo
from testbed.waiting import wait_for

TERMINATING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
COMMAND_CHARS = 80  # the short command line shown in events and `testbed status`
CMDLINE_CHARS = 1000
POLL_INTERVAL = 0.2  # only where the kernel has no pidfd_open (Linux < 5.3)


@dataclass(frozen=True)
class Owner:
    """The process a lab belongs to."""

    pid: int
    start_time: int  # clock ticks since boot (/proc/PID/stat field 22)
    cmdline: str  # its full command line
    command: str  # the same, short: "testbed run alb", "owner.py --wait"

    def alive(self) -> bool:
        """True while the process that was recorded runs (a reused PID is not it)."""
        return is_alive(ProcessRecord(self.pid, self.start_time, "owner"))

    def describe(self) -> str:
        return f"owner process {self.pid} ({self.command})"

    def to_dict(self) -> OwnerInfo:
        return OwnerInfo(
            pid=self.pid, start_time=self.start_time, cmdline=self.cmdline, command=self.command
        )

    @classmethod
    def from_dict(cls, data: OwnerInfo | None) -> Owner | None:
        if not data:
            return None
        return cls(int(data["pid"]), int(data["start_time"]), data["cmdline"], data["command"])


def this_process() -> Owner:
    """The calling process as a lab's owner."""
    pid = os.getpid()
    ticks = start_time(pid)
    if ticks is None:  # /proc is not mounted: nothing could be watched
        raise RuntimeError("/proc/self/stat is not readable: a lab's owner cannot be recorded")
    argv = _cmdline(pid)
    return Owner(pid, ticks, " ".join(argv)[:CMDLINE_CHARS], short_command(argv))


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def short_command(argv: Sequence[str]) -> str:
    """A command line as a person would type it: `python3 /usr/local/bin/testbed run alb` and
    `python -m testbed.cli run alb` are "testbed run alb", `python3 x/owner.py` is "owner.py"."""
    args = list(argv)
    if not args:
        return "?"
    if Path(args[0]).name.startswith("python"):
        rest = args[1:]
        while rest and rest[0].startswith("-") and rest[0] not in ("-m", "-c"):
            rest = rest[1:]  # interpreter options (-u, -B, ...)
        if rest[:1] == ["-m"] and len(rest) > 1:
            module = rest[1]
            head = ["testbed"] if module in ("testbed", "testbed.cli") else ["python", "-m", module]
            args = head + rest[2:]
        elif rest[:1] == ["-c"]:
            args = ["python", "-c", "..."]
        elif rest:
            args = [Path(rest[0]).name, *rest[1:]]
    else:
        args = [Path(args[0]).name, *args[1:]]
    text = " ".join(args)
    return text if len(text) <= COMMAND_CHARS else text[: COMMAND_CHARS - 3] + "..."


class OwnerWatch:
    """Calls `on_exit()` once, from a thread of its own, when the owner has ended (at once if
    it had already ended, or its PID now belongs to another process)."""

    def __init__(self, owner: Owner, on_exit: Callable[[], None]) -> None:
        self.owner = owner
        self.on_exit = on_exit
        self.thread = threading.Thread(target=self._watch, daemon=True, name="owner-watch")

    def start(self) -> None:
        self.thread.start()

    def _watch(self) -> None:
        try:
            self._wait_on_pidfd()
        except OSError:  # no pidfd_open here (Linux < 5.3), or poll refused it
            self._wait_polling()
        self.on_exit()

    def _wait_on_pidfd(self) -> None:
        try:
            fd = os.pidfd_open(self.owner.pid)
        except ProcessLookupError:
            return  # already gone
        try:
            # The pidfd is the owner only if the process behind the PID is still the recorded
            # one now that the pidfd is open (a reused PID has another start time).
            if not self.owner.alive():
                return
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            while not poller.poll():  # readable once the process has exited
                pass
        finally:
            os.close(fd)

    def _wait_polling(self) -> None:
        wait_for(lambda: not self.owner.alive(), math.inf, "the owner to exit", POLL_INTERVAL)


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(signum)


@contextmanager
def unwind_on_termination() -> Iterator[None]:
    """For the duration of the block, SIGTERM and SIGHUP raise Terminated in the main thread
    (the process then ends like on Ctrl-C, running its `finally` blocks). Handlers that the
    program installed itself (or SIG_IGN, e.g. under nohup) are left alone; outside the main
    thread nothing changes (Python runs signal handlers there only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    replaced = {}
    for sig in TERMINATING_SIGNALS:
        if signal.getsignal(sig) is signal.SIG_DFL:
            replaced[sig] = signal.signal(sig, _raise_terminated)
    try:
        yield
    finally:
        for sig, previous in replaced.items():
            with suppress(ValueError, TypeError):
                if signal.getsignal(sig) is _raise_terminated:
                    signal.signal(sig, previous)
