"""Shared assertions and snapshots for tests on real labs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from testbed import naming
from testbed.lab import reachability, system
from testbed.lab.teardown import leftovers
from testbed.plan.network import NetworkPlan

# Command-line fragments of every process a lab starts.
LAB_PROCESS_MARKERS = (
    "testbed.controllers.run",
    "testbed.roles.",
    "testbed.stack.holder",
    "testbed.gwlb.",
    "testbed.alb.node",
    "testbed.lb.health_checker",
    "mininet:",
    "snmpd -f -Lo -C",
    "testbed.snmp.",
)


def plan_of(lab) -> NetworkPlan:
    return NetworkPlan.from_json((lab.dir / "plan.json").read_text())


def assert_reachability_is_aws(lab) -> dict:
    """Ping every address from every host; fail with the differing cells if any."""
    plan = plan_of(lab)
    got = reachability.measure(lab, plan)
    want = reachability.expected(plan)
    diffs = reachability.differences(got, want)
    assert not diffs, (
        "reachability differs from AWS:\n"
        + "\n".join(diffs)
        + "\n"
        + reachability.format_matrix(plan, got, want)
        + "\n"
        + dump_flows(lab)
    )
    return got


def dump_flows(lab) -> str:
    """Every flow of the lab's switches (attached to failure messages)."""
    out = []
    for br in system.list_bridges():
        if br.startswith(naming.prefix(lab.name)):
            flows = system.run(
                ["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", br], check=False
            ).stdout
            out.append(f"--- {br}\n{flows}")
    return "\n".join(out)


def lab_processes() -> list[str]:
    """Command lines of running processes that look like a lab's."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(m in cmd for m in LAB_PROCESS_MARKERS) and "pytest" not in cmd:
            found.append(f"{proc.name}: {cmd.strip()}")
    return found


def machine_snapshot() -> dict:
    """Namespaces, links, bridges, /tmp and lab state files: to compare before/after."""
    root = naming.state_root()
    return {
        "netns": sorted(system.list_netns()),
        "links": sorted(system.list_links()),
        "bridges": sorted(system.list_bridges()),
        "tmp": sorted(p.name for p in Path("/tmp").iterdir()),
        "labs": sorted(p.name for p in root.iterdir()) if root.exists() else [],
        "etc_netns": sorted(p.name for p in Path("/etc/netns").iterdir())
        if Path("/etc/netns").exists()
        else [],
    }


def assert_nothing_left(name: str) -> None:
    left = leftovers(name)
    assert not any(left.values()), f"lab {name} left: {json.dumps(left)}"


def run_cli(
    *args: str, timeout: float = 300, check: bool = False, **kwargs
) -> subprocess.CompletedProcess:
    """Run the `testbed` CLI as a user would (same Python as the tests)."""
    import sys

    return subprocess.run(
        [sys.executable, "-m", "testbed.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
        **kwargs,
    )


def host_diagnostics(lab, *hosts: str) -> str:
    """What a failing network test wants to know about some hosts (attached to the failure)."""
    out = []
    for name in hosts:
        h = lab.host(name)
        out.append(
            f"--- {name}\n"
            + h.cmd(
                "ip -brief addr; ip route; ip neigh; ss -ltnp; "
                "ethtool -k eth0 | grep -E '^(tx-checksumming|rx-checksumming)'"
            )
        )
        log = lab.dir / "hosts" / name / "role.log"
        if log.exists():
            out.append(f"role.log: {log.read_text()[-2000:]}")
    return "\n".join(out) + "\n" + dump_flows(lab)


def without_labs(snapshot: dict) -> dict:
    """A machine snapshot without the resources and folders of any lab."""
    out = {}
    for key, names in snapshot.items():
        if key == "labs":
            out[key] = [n for n in names if not naming.NAME_RE.match(n)]
        else:
            out[key] = [n for n in names if naming.owner_of(n) is None]
    return out
