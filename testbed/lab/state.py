"""A lab's state file (lab.json) and the list of labs on this machine."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypeGuard

from testbed import naming
from testbed.lab.procs import ProcessRecord, is_alive

STATE = "lab.json"


def write_state(lab_dir: Path, state: dict[str, Any]) -> None:
    """Atomically replace lab.json (readers never see half a file)."""
    tmp = Path(lab_dir) / (STATE + ".tmp")
    tmp.write_text(json.dumps(state, indent=1, default=str))
    os.replace(tmp, Path(lab_dir) / STATE)


def read_state(lab_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(lab_dir) / STATE).read_text())
    except (FileNotFoundError, ValueError):
        return None


def holder_alive(state: dict[str, Any] | None) -> TypeGuard[dict[str, Any]]:
    """True if the process holding the lab is still the one that wrote the state (which is
    then not None)."""
    if not state or "pid" not in state or "pid_start" not in state:
        return False
    return is_alive(ProcessRecord(state["pid"], state["pid_start"], "holder"))


def list_labs() -> list[tuple[str, dict[str, Any] | None]]:
    """(name, state) of every lab directory, sorted by name; state None if unreadable."""
    root = naming.state_root()
    if not root.is_dir():
        return []
    labs = []
    for d in sorted(root.iterdir()):
        if d.is_dir() and naming.NAME_RE.match(d.name):
            labs.append((d.name, read_state(d)))
    return labs
