"""Internal role of a GWLB node: steering through appliances in GENEVE, and its health
checker (testbed.gwlb.node)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

STATUS_FILE = "gwlb-status.json"
ADMIN_PORT = 8081


def argv(host: Any, args: dict[str, Any], host_dir: Path) -> list[str]:
    """The node program; the lab's plan and holder are two levels above hosts/<name>."""
    lab_dir = Path(host_dir).parent.parent
    return [sys.executable, "-m", "testbed.gwlb.node", "--host", host.name,
            "--lb", str(args["lb"]), "--az", str(args["az"]), "--ip", host.ip,
            "--plan", str(lab_dir / "plan.json"), "--holder", str(lab_dir / "holder.sock"),
            "--status", str(Path(host_dir) / STATUS_FILE), "--admin-port", str(ADMIN_PORT)]


def tcp_ports(args: dict[str, Any]) -> list[int]:
    """The admin port listens once the node's sockets are open."""
    return [ADMIN_PORT]
