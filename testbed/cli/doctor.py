"""testbed doctor: what this machine supports."""

from __future__ import annotations

import json
from typing import Any

from testbed.cli.common import subcommand, table
from testbed.lab.capabilities import detect


def register(sub: Any) -> None:
    p = subcommand(
        sub,
        "doctor",
        run,
        "what this machine supports (exit 1 if no lab can run)",
        epilog="Checks Open vSwitch (and which datapath: kernel module or userspace "
        "netdev),\nnetem, HTB, GENEVE and TUN in the kernel, and the tools labs use.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def run(args: Any) -> int:
    caps = detect()
    if args.json:
        print(json.dumps(caps.to_dict(), indent=1))
        return 0 if caps.can_run_lab else 1
    dp = caps.default_datapath()
    rows = [
        ("root", _yes(caps.root), ""),
        (
            "Open vSwitch",
            caps.ovs_version or "missing",
            "running" if caps.ovs_running else "not running",
        ),
        (
            "OVS datapath",
            dp,
            "kernel module loaded"
            if dp == "kernel"
            else "userspace (netdev): no openvswitch kernel module here",
        ),
        (
            "netem (delay)",
            _yes(caps.netem),
            "" if caps.netem else "InterAzDelayMs cannot be applied on this kernel",
        ),
        ("HTB (bandwidth)", _yes(caps.htb), ""),
        (
            "kernel GENEVE",
            _yes(caps.geneve),
            "" if caps.geneve else "appliances decapsulate GENEVE in userspace (TUN)",
        ),
        ("TUN", _yes(caps.tun), ""),
        ("kernel", caps.kernel, ""),
    ]
    rows += [(name, version or "missing", "") for name, version in caps.tools.items()]
    rows += [(f"python: {name}", version or "missing", "") for name, version in caps.python.items()]
    print(table(rows, ["CHECK", "RESULT", "NOTE"]))
    if caps.problems:
        print("\nNo lab can run here:")
        for p in caps.problems:
            print(f"  - {p}")
        return 1
    print(f"\nLabs can run here ({dp} datapath).")
    return 0
