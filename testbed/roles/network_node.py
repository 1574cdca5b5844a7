"""Internal role of an NLB node: its health checker (the fabric's flows carry the traffic)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def argv(host: Any, args: dict[str, Any], host_dir: Path) -> list[str]:
    """The node's health checker, reporting to the lab's holder (two levels above hosts/X)."""
    holder_sock = Path(host_dir).parent.parent / "holder.sock"
    return [sys.executable, "-m", "testbed.lb.health_checker", "--lb", str(args["lb"]),
            "--az", str(args["az"]), "--source", host.ip, "--holder", str(holder_sock)]
