"""Thin wrappers over ip, ovs-vsctl and friends: list and remove machine resources by name."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence


def run(
    argv: Sequence[str], check: bool = True, timeout: float = 30.0, input: str | None = None
) -> subprocess.CompletedProcess:
    """Run a command, capture its output; raise RuntimeError with its stderr if check fails."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()}"
        )
    return proc


def list_netns() -> list[str]:
    """Names of the named network namespaces (/run/netns)."""
    out = run(["ip", "-j", "netns", "list"], check=False).stdout.strip()
    if not out:
        return []
    try:
        return [entry["name"] for entry in json.loads(out)]
    except (ValueError, KeyError):
        return [line.split()[0] for line in out.splitlines() if line.strip()]


def netns_pids(ns: str) -> list[int]:
    """PIDs of every process inside namespace `ns`."""
    out = run(["ip", "netns", "pids", ns], check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def list_links() -> list[str]:
    """Names of the network interfaces in the root namespace."""
    out = run(["ip", "-j", "link", "show"], check=False).stdout
    try:
        return [entry["ifname"] for entry in json.loads(out or "[]")]
    except (ValueError, KeyError):
        return []


def list_bridges() -> list[str]:
    """Names of the Open vSwitch bridges (empty if OVS does not answer)."""
    proc = run(["ovs-vsctl", "--timeout=10", "list-br"], check=False)
    return proc.stdout.split() if proc.returncode == 0 else []


def delete_bridges(names: Sequence[str]) -> None:
    """Delete OVS bridges (with their ports) in one transaction."""
    if not names:
        return
    argv = ["ovs-vsctl", "--timeout=30"]
    for name in names:
        argv += ["--", "--if-exists", "del-br", name]
    run(argv, check=False)


def delete_links(names: Sequence[str]) -> None:
    """Delete interfaces (a veth goes with its peer) in one `ip -batch`."""
    if names:
        run(
            ["ip", "-force", "-batch", "-"],
            check=False,
            input="".join(f"link del dev {n}\n" for n in names),
        )


def delete_netns(names: Sequence[str]) -> None:
    """Remove named namespaces; the kernel frees them once no process is left inside."""
    if names:
        run(
            ["ip", "-force", "-batch", "-"],
            check=False,
            input="".join(f"netns delete {n}\n" for n in names),
        )
