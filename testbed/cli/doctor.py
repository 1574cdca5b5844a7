"""testbed doctor: what this machine supports."""

from __future__ import annotations

import json
import os
from typing import Any

from testbed.cli.common import subcommand, table
from testbed.cluster.harness import missing_tools
from testbed.lab.capabilities import Capabilities, GwlbSwitch, detect, gwlb_switch


def register(sub: Any) -> None:
    p = subcommand(
        sub,
        "doctor",
        run,
        "what this machine supports (exit 1 if no lab can run)",
        epilog="Checks Open vSwitch (and which datapath: kernel module or userspace "
        "netdev),\nnetem, HTB, GENEVE and TUN in the kernel, and the tools labs use; and whether\n"
        "Open vSwitch can steer GWLB traffic itself (testbed up --gwlb-datapath): the geneve\n"
        "port type, a flow-based GENEVE port and the TLV map of AWS's GENEVE options, probed\n"
        "once per boot on a throw-away bridge.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def gwlb_steering(caps: Capabilities) -> GwlbSwitch:
    """GWLB steering in the switch: what the (cached) probe says, on a bridge of this command's
    own (no lab's prefix: `tbprobe-PID`, removed by the probe)."""
    if not caps.ovs_running:
        return GwlbSwitch(False, "Open vSwitch is not running")
    if not caps.root:
        return GwlbSwitch(False, "not root: the probe makes a bridge")
    return gwlb_switch(f"tbprobe-{os.getpid()}")


def _harness_row() -> tuple[str, str, str]:
    """Whether `testbed cluster harness up` can make servers here (sshd, unshare, OVS)."""
    missing = missing_tools()
    if missing:
        return ("cluster server harness", "no", "missing: " + ", ".join(missing))
    return ("cluster server harness", "yes", "testbed cluster harness up makes servers here")


def run(args: Any) -> int:
    caps = detect()
    steering = gwlb_steering(caps)
    if args.json:
        d = caps.to_dict()
        d["gwlb_switch"] = {"available": steering.available, "note": steering.note}
        print(json.dumps(d, indent=1))
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
        ("GWLB steering in the switch", _yes(steering.available), steering.note),
        ("kernel", caps.kernel, ""),
        _harness_row(),
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
