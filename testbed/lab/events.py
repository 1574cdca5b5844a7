"""The stack's event log: one JSON line per resource step (time, logical id, status, reason).

The holder appends; `testbed up` follows the file to show progress; `testbed events` prints it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

EVENTS = "events.jsonl"


@dataclass(frozen=True)
class Event:
    time: float
    logical_id: str
    resource_type: str
    status: str
    reason: str = ""
    stack: str = ""  # the stack of the lab it is about; "" for the lab's first stack

    def line(self) -> str:
        """Human-readable form, as `testbed up` and `testbed events` print it."""
        stamp = time.strftime("%H:%M:%S", time.localtime(self.time))
        ms = int((self.time % 1) * 1000)
        reason = f"  {self.reason}" if self.reason else ""
        return (
            f"{stamp}.{ms:03d}  {self.status:<20} {self.logical_id:<28} "
            f"{self.resource_type}{reason}"
        )


class EventLog:
    """Appends events to a lab's events.jsonl; optionally echoes them to a callback."""

    def __init__(self, lab_dir: Path, echo: Callable[[Event], None] | None = None) -> None:
        self.path = Path(lab_dir) / EVENTS
        self.echo = echo

    def emit(
        self, logical_id: str, resource_type: str, status: str, reason: str = "", stack: str = ""
    ) -> Event:
        ev = Event(time.time(), logical_id, resource_type, status, reason, stack)
        with open(self.path, "a") as f:
            f.write(json.dumps(asdict(ev)) + "\n")
        if self.echo:
            self.echo(ev)
        return ev


def read_events(lab_dir: Path) -> list[Event]:
    """Every event of a lab so far."""
    path = Path(lab_dir) / EVENTS
    if not path.exists():
        return []
    return list(_parse(path.read_text().splitlines()))


def _parse(lines: list[str]) -> Iterator[Event]:
    for line in lines:
        try:
            yield Event(**json.loads(line))
        except (ValueError, TypeError):
            continue


class EventFollower:
    """Reads new events from a file as they are appended (for progress display).

    The file stays open from the first read on, so that the last events can still be read
    after the holder removed the lab directory (it does when a build is rolled back)."""

    def __init__(self, lab_dir: Path) -> None:
        self.path = Path(lab_dir) / EVENTS
        self.file: IO[str] | None = None
        self.partial = ""

    def new(self) -> list[Event]:
        if self.file is None:
            try:
                self.file = open(self.path)  # noqa: SIM115 - kept open across calls
            except FileNotFoundError:
                return []
        data = self.partial + self.file.read()
        lines = data.split("\n")
        self.partial = lines.pop()  # an incomplete last line waits for the next read
        return list(_parse(lines))

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
