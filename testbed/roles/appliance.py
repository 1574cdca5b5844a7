"""Role `appliance`: a firewall behind a Gateway Load Balancer (testbed.gwlb.appliance).

RoleArgs:
  Rules       nft rules of the forward chain, one per entry ("tcp dport 23 drop",
              "ip saddr 198.51.100.11 drop"); none: everything passes (still counted)
  HealthPort  where health checks are answered (80, the GWLB default; 0: nowhere)
  AdminPort   status and faults on 127.0.0.1 (8081)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from testbed.gwlb.firewall import ruleset

DEFAULTS: dict[str, Any] = {"Rules": [], "HealthPort": 80, "AdminPort": 8081}
STATUS_FILE = "appliance-status.json"


def _options(args: dict[str, Any]) -> dict[str, Any]:
    unknown = set(args) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown RoleArgs for appliance: {sorted(unknown)} "
                         f"(known: {sorted(DEFAULTS)})")
    opts = {**DEFAULTS, **args}
    rules = opts["Rules"]
    if isinstance(rules, str):
        rules = [rules]
    if not isinstance(rules, (list, tuple)) or not all(isinstance(r, str) for r in rules):
        raise ValueError("RoleArgs.Rules of appliance: a list of nft rules (strings)")
    opts["Rules"] = list(rules)
    ruleset(opts["Rules"])  # ValueError now, at lab build, rather than a role that exits
    return opts


def argv(host: Any, args: dict[str, Any], host_dir: Path) -> list[str]:
    """The appliance program on the host's address, its status file in the host's folder."""
    opts = _options(args)
    cmd = [sys.executable, "-m", "testbed.gwlb.appliance", "--id", host.name, "--ip", host.ip,
           "--health-port", str(int(opts["HealthPort"])),
           "--admin-port", str(int(opts["AdminPort"])),
           "--status", str(Path(host_dir) / STATUS_FILE)]
    for rule in opts["Rules"]:
        cmd += ["--rule", rule]
    return cmd


def tcp_ports(args: dict[str, Any]) -> list[int]:
    """Health and admin ports: listening means the tunnel and firewall are set up."""
    opts = _options(args)
    return [p for p in (int(opts["HealthPort"]), int(opts["AdminPort"])) if p]
