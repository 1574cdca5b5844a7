"""Conntrack zones of labs: a block per lab, idle timeouts per zone, cleanup.

Conntrack is machine-wide (all OVS bridges of a datapath share it), so two labs must never
use the same zone: each lab takes the lowest free block of ZONE_BLOCK zones above ZONE_FIRST,
under a lock, and records it in its state. Zone timeout policies (the NLB's idle timeouts)
need a Datapath row in OVS's database; the lab creates it when missing, marks it as its own,
and removes it again when no lab policy is left.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager

from testbed import naming
from testbed.lab import system
from testbed.lab.state import list_labs
from testbed.plan.zone_layout import ZONE_BLOCK

ZONE_FIRST = 0x4000  # well above the zones other tools (OpenStack, k8s) usually take
ZONE_LIMIT = 0x10000  # conntrack zones are 16-bit
MAX_BLOCKS = (ZONE_LIMIT - ZONE_FIRST) // ZONE_BLOCK  # 48 labs at once
MARK = "elb-testbed"
TIME_WAIT_S = 10


@contextmanager
def _locked() -> Iterator[None]:
    root = naming.state_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "zones.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def reserve(name: str) -> int:
    """The lab's zone base: reuse its own, else the lowest block no live lab holds."""
    with _locked():
        mine = naming.lab_dir(name) / "zone_base"
        if mine.exists():
            return int(mine.read_text())
        # Dead labs keep their block until cleaned: their conntrack entries may remain.
        taken = set()
        for other, _state in list_labs():
            path = naming.lab_dir(other) / "zone_base"
            if other != name and path.exists():
                taken.add(int(path.read_text()))
        for i in range(MAX_BLOCKS):
            base = ZONE_FIRST + i * ZONE_BLOCK
            # Blocks of labs made by an older version (smaller, not aligned to this size)
            # still count: any base closer than a block is taken.
            if all(abs(base - other) >= ZONE_BLOCK for other in taken):
                mine.parent.mkdir(parents=True, exist_ok=True)
                mine.write_text(str(base))
                return base
    raise RuntimeError("no free conntrack zone block")


def _dp_type(datapath: str) -> str:
    return "netdev" if datapath == "user" else "system"


def set_idle_timeouts(datapath: str, zone: int, tcp_s: int, udp_s: int) -> None:
    """Idle timeouts of one zone (TCP established, UDP) as an OVS zone timeout policy."""
    dp = _dp_type(datapath)
    exists = system.run(
        ["ovs-vsctl", "--timeout=10", "--if-exists", "get", "Open_vSwitch", ".", f"datapaths:{dp}"],
        check=False,
    ).stdout.strip()
    if not exists:
        system.run(
            [
                "ovs-vsctl",
                "--timeout=10",
                "--",
                "--id=@dp",
                "create",
                "Datapath",
                "datapath_version=0",
                f"external_ids:created-by={MARK}",
                "--",
                "set",
                "Open_vSwitch",
                ".",
                f"datapaths:{dp}=@dp",
            ]
        )
    # A short TIME_WAIT: an NLB connection's 4-tuple at the target is the client's own
    # (client address preserved), and a closed one must not capture a new direct connection
    # from the same port for long.
    system.run(
        [
            "ovs-vsctl",
            "--timeout=10",
            "add-zone-tp",
            dp,
            f"zone={zone}",
            f"tcp_established={tcp_s}",
            f"tcp_time_wait={TIME_WAIT_S}",
            f"udp_first={udp_s}",
            f"udp_single={udp_s}",
            f"udp_multiple={udp_s}",
        ]
    )


def _plan_of(name: str) -> dict:
    path = naming.lab_dir(name) / naming.PLAN_FILE
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def lb_zones(name: str) -> list[int]:
    """The zones of the lab's load balancers (their flow tables, with idle timeouts)."""
    plan = _plan_of(name)
    return sorted(
        {z for lb in plan.get("load_balancers", []) for z in (lb["zone_dnat"], lb["zone_snat"])}
    )


def used_zones(name: str) -> list[int]:
    """Zones the lab uses (from its plan.json; none without a plan): its load balancers' and
    the security-group zone of every port that has one."""
    plan = _plan_of(name)
    zones = set(lb_zones(name))
    for host in plan.get("hosts", []):
        ports = [host, *host.get("interfaces", [])]
        zones |= {p["sg_zone"] for p in ports if p.get("sg_zone") is not None}
    return sorted(zones)


def release(name: str, datapath: str | None = None) -> list[int]:
    """Flush and forget the zones of lab `name`: conntrack entries and timeout policies."""
    zones = used_zones(name)
    if not zones:
        return []
    with _locked():
        for dp in [_dp_type(datapath)] if datapath else ["netdev", "system"]:
            policies = _zone_policies(dp)
            for zone in zones:
                if zone in policies:
                    system.run(
                        ["ovs-vsctl", "--timeout=10", "del-zone-tp", dp, f"zone={zone}"],
                        check=False,
                    )
            _drop_datapath_row_if_ours(dp)
    for zone in zones:
        system.run(["ovs-appctl", "dpctl/flush-conntrack", f"zone={zone}"], check=False)
    return zones


def _zone_policies(dp: str) -> set[int]:
    out = system.run(["ovs-vsctl", "--timeout=10", "list-zone-tp", dp], check=False).stdout
    zones = set()
    for line in out.splitlines():
        if line.startswith("Zone:"):
            zones.add(int(line.split(":")[1].split(",")[0]))
    return zones


def _drop_datapath_row_if_ours(dp: str) -> None:
    """Remove the Datapath row of `dp` if a lab created it and no zone policy is left."""
    uuid = system.run(
        ["ovs-vsctl", "--timeout=10", "--if-exists", "get", "Open_vSwitch", ".", f"datapaths:{dp}"],
        check=False,
    ).stdout.strip()
    if not uuid:
        return
    mark = (
        system.run(
            [
                "ovs-vsctl",
                "--timeout=10",
                "--if-exists",
                "get",
                "Datapath",
                uuid,
                "external_ids:created-by",
            ],
            check=False,
        )
        .stdout.strip()
        .strip('"')
    )
    if mark == MARK and not _zone_policies(dp):
        system.run(
            [
                "ovs-vsctl",
                "--timeout=10",
                "--if-exists",
                "remove",
                "Open_vSwitch",
                ".",
                "datapaths",
                dp,
            ],
            check=False,
        )
