"""What a running lab holds on the machine: the memory (RSS) of its long-lived processes,
the conntrack entries in its zones and the OpenFlow flows in its bridges.

Long runs (testbed.experiments.soak) sample these to show that nothing accumulates:

    rss = process_rss(lab)         # [{"process": "controller", "pid": 123, "rss_kib": 81234}, ...]
    entries = conntrack_entries(lab)   # {zone: entries}
    flows = bridge_flows(lab)          # {bridge: Counter of flow cookies}

ovs-vswitchd is the machine's, not the lab's: its RSS includes what every other lab on the
machine makes it hold. Conntrack entries and flows are counted in this lab's zones and
bridges only.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from testbed.lab.procs import labelled_pids
from testbed.lab.system import run
from testbed.lab.zones import lb_zones

OVS_PIDFILE = Path("/var/run/openvswitch/ovs-vswitchd.pid")
_TOTAL = re.compile(r"Total:\s*(\d+)")


def rss_kib(pid: int) -> int | None:
    """Resident memory of a process in KiB (VmRSS), None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None  # a zombie has no VmRSS


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _ppid(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def _haproxy_node(pid: int) -> str:
    """The ALB node an HAProxy process serves: its config is hosts/<node>/haproxy.cfg."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    for arg in argv:
        if arg.endswith(b"/haproxy.cfg"):
            return Path(arg.decode()).parent.name
    return "?"


def haproxy_processes(lab: str) -> list[tuple[str, int]]:
    """("haproxy-master <node>" | "haproxy-worker <node>", pid) of the lab's HAProxies."""
    out = []
    for pid in labelled_pids(lab):
        if _comm(pid) != "haproxy":
            continue
        role = "worker" if _comm(_ppid(pid)) == "haproxy" else "master"
        out.append((f"haproxy-{role} {_haproxy_node(pid)}", pid))
    return sorted(out)


def ovs_vswitchd_pid() -> int | None:
    try:
        return int(OVS_PIDFILE.read_text().strip())
    except (OSError, ValueError):
        return None


def lab_process_pids(lab: Any) -> list[tuple[str, int]]:
    """(name, pid) of the processes whose memory a soak watches: the holder, the controller
    and its standby, each HAProxy (master and worker per ALB node) and ovs-vswitchd."""
    state = lab.state
    found: list[tuple[str, int]] = [("holder", int(state["pid"]))]
    controller = state.get("controller") or {}
    if controller.get("pid"):
        found.append(("controller", int(controller["pid"])))
    if controller.get("standby_pid"):
        found.append(("controller-standby", int(controller["standby_pid"])))
    found += haproxy_processes(lab.name)
    ovs = ovs_vswitchd_pid()
    if ovs is not None:
        found.append(("ovs-vswitchd", ovs))
    return found


def process_rss(lab: Any) -> list[dict[str, Any]]:
    """One row per watched process (lab_process_pids): process, pid, rss_kib."""
    rows = []
    for name, pid in lab_process_pids(lab):
        kib = rss_kib(pid)
        if kib is not None:
            rows.append({"process": name, "pid": pid, "rss_kib": kib})
    return rows


def conntrack_entries(lab: Any) -> dict[int, int]:
    """{zone: conntrack entries} for the zones of the lab's load balancers (security-group
    zones keep a connection as long as AWS's tracking does, not the NLB's idle timeout)."""
    out = {}
    for zone in lb_zones(lab.name):
        proc = run(["ovs-appctl", "dpctl/ct-stats-show", f"zone={zone}"], check=False)
        m = _TOTAL.search(proc.stdout)
        out[zone] = int(m.group(1)) if m else 0
    return out


def lab_bridges(lab: Any) -> list[str]:
    return [s["name"] for s in lab.state.get("switches", [])]


def bridge_flows(lab: Any) -> dict[str, Counter[str]]:
    """{bridge: Counter of its flows (each as dump-flows prints it without statistics)} of
    the lab's bridges: equal counters mean equal flow tables."""
    out = {}
    for bridge in lab_bridges(lab):
        proc = run(
            ["ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows", bridge], check=False
        )
        lines = proc.stdout.splitlines()
        out[bridge] = Counter(line.strip() for line in lines if line.startswith(" "))
    return out


def flow_difference(before: dict[str, Counter[str]], after: dict[str, Counter[str]]) -> int:
    """How many flows differ between two bridge_flows() readings (added plus removed)."""
    changed = 0
    for bridge in set(before) | set(after):
        a, b = before.get(bridge, Counter()), after.get(bridge, Counter())
        changed += sum(((a - b) + (b - a)).values())
    return changed
