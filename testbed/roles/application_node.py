"""Internal role of an ALB node: HAProxy and the node's health checker (testbed.alb.node)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def argv(host: Any, args: dict[str, Any], host_dir: Path) -> list[str]:
    """The node program; the lab's folder is two levels above hosts/<node>."""
    lab_dir = Path(host_dir).parent.parent
    return [sys.executable, "-m", "testbed.alb.node", "--lab-dir", str(lab_dir),
            "--lb", str(args["lb"]), "--node", host.name]


def tcp_ports(args: dict[str, Any]) -> list[int]:
    """The listener ports: the lab is ready when HAProxy listens on every one."""
    return [int(p) for p in args.get("ports", [])]
