"""Remove exactly what one lab created: its processes, namespaces, links, bridges and files.

Everything is found by the lab's prefix (tb-NAME-), its process journal or the label its
holder's processes carry in their environment (TESTBED_LAB=NAME); nothing else on the machine
is touched. Used by `down` (through the holder), by `clean` after a holder died, and
by the rollback of a failed `up`. Safe to run twice.
"""

from __future__ import annotations

import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path

from testbed import naming
from testbed.lab import cgroups, gwlb_switch, system, zones
from testbed.lab.procs import ProcessJournal, is_alive, labelled_pids, terminate

NETNS_ETC = Path("/etc/netns")


@dataclass
class TeardownReport:
    processes: list[int] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    bridges: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)  # OVS routes (GWLB switch datapath)
    remote: list[str] = field(default_factory=list)  # "server: thing" (a lab across servers)

    def summary(self) -> str:
        missed = [x for x in self.remote if "NOT CLEANED" in x]
        done = [x for x in self.remote if x not in missed]
        return (
            f"{len(self.processes)} processes, {len(self.namespaces)} namespaces, "
            f"{len(self.links)} links, {len(self.bridges)} bridges, "
            f"{len(self.files)} file trees"
            + (f", {len(self.routes)} OVS routes" if self.routes else "")
            + (f", {len(done)} things on other servers" if done else "")
            + (f"; NOT CLEANED: {'; '.join(missed)}" if missed else "")
        )


def leftovers(name: str) -> dict[str, list[str]]:
    """What of lab `name` still exists on the machine (empty lists when nothing)."""
    pre = naming.prefix(name)
    found = {
        "namespaces": [n for n in system.list_netns() if n.startswith(pre)],
        "links": [n for n in system.list_links() if n.startswith(pre)],
        "bridges": [n for n in system.list_bridges() if n.startswith(pre)],
        "files": [str(p) for p in _files(name) if p.exists()],
        # ovs-vswitchd keeps a user route after its device is gone.
        "ovs_routes": [f"{r.prefix} dev {r.dev}" for r in gwlb_switch.lab_routes(name)],
    }
    journal = ProcessJournal(naming.lab_dir(name))
    alive = {r.pid for r in journal.records() if is_alive(r)} | set(labelled_pids(name))
    found["processes"] = [str(pid) for pid in sorted(alive)]
    found["cgroups"] = cgroups.lab_cgroup_dirs(name)
    if (naming.lab_dir(name) / naming.SERVERS_FILE).exists():
        from testbed.lab.servers import remote_leftovers

        found["remote"] = remote_leftovers(name)
    return found


def teardown(
    name: str, keep_dir: bool = False, exclude_pids: tuple[int, ...] = ()
) -> TeardownReport:
    """Remove every resource of lab `name`. keep_dir keeps its directory (events, logs)."""
    pre = naming.prefix(name)
    report = TeardownReport()
    if (naming.lab_dir(name) / naming.SERVERS_FILE).exists():
        # A lab across servers (issue 18): what it made on the other servers first (their
        # ends of the tunnels, hosts, bridges), by its prefix, through ssh.
        from testbed.lab.servers import teardown_remote

        report.remote = teardown_remote(name)
    namespaces = [n for n in system.list_netns() if n.startswith(pre)]
    journal = ProcessJournal(naming.lab_dir(name))
    # Everything running inside the lab's namespaces is the lab's (roles, UserData and what
    # they started, Mininet's host shells); the journal adds the controller and helpers.
    in_namespaces = [pid for ns in namespaces for pid in system.netns_pids(ns)]
    # The label catches what a stopped build started but had not journaled yet.
    labelled = labelled_pids(name)
    records = [r for r in journal.records() if r.pid not in exclude_pids]
    # Mininet's node shells are interactive bash, which ignores SIGTERM, and hold nothing
    # worth a graceful exit.
    shells = [r for r in records if r.what.startswith("mininet")]
    report.processes = terminate(shells, grace=0.5, first_signal=signal.SIGKILL)
    report.processes += terminate(
        [p for p in in_namespaces + labelled if p not in exclude_pids]
        + [r for r in records if r not in shells]
    )
    report.namespaces = namespaces
    system.delete_netns(namespaces)
    # Empty now: every process of the lab's hosts has ended.
    cgroups.remove_all(name)
    # The switch GWLB datapath's routes through the lab's veths (OVS's one route table).
    report.routes = gwlb_switch.remove_routes(name)
    report.bridges = [b for b in system.list_bridges() if b.startswith(pre)]
    system.delete_bridges(report.bridges)
    report.links = [link for link in system.list_links() if link.startswith(pre)]
    system.delete_links(report.links)
    # Conntrack state and zone timeout policies of the lab's load balancers.
    zones.release(name)
    for path in _files(name):
        if path == naming.lab_dir(name) and keep_dir:
            continue
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
            report.files.append(str(path))
    return report


def remove_lab_dir(name: str) -> None:
    """Remove the lab's directory (after a teardown that kept it for its last events)."""
    shutil.rmtree(naming.lab_dir(name), ignore_errors=True)


def _files(name: str) -> list[Path]:
    pre = naming.prefix(name)
    etc = sorted(NETNS_ETC.glob(f"{pre}*")) if NETNS_ETC.exists() else []
    return [naming.lab_dir(name), *etc]
