"""Hosts added to and removed from a running lab (Auto Scaling's instances), in the holder.

launch_many: the controller first gets the plan with every new host (their ports' flows exist
before the ports do); then each host is prepared in a thread (Mininet shell journaled first,
named namespace, links, addresses, routes and sysctls as a template instance gets them, TX
checksum offload off for the userspace datapath, its cgroup: testbed.lab.cgroups, its CPU is
its own); all their ports go on the running OVS bridges in one transaction with the planned
OpenFlow ports (a transaction costs ovs-vswitchd a reconfiguration that grows with its
ports: one per host made 50 launches take 17 s here, one for all takes 0.1 s); then each
one's services (SNMP agent, resolv.conf), role and UserData, and the resolver learns their
names. Measured on this 2-core machine: one instance built in about 0.2 s, its http-backend
answering after 0.7-1.4 s; 50 built in 7-10 s, all answering after 18 s (busy machine).
terminate: the reverse, exactly: its processes ended by PID (journaled ones and whatever else
runs in its namespace), its security-group conntrack zone flushed, its ports, links,
namespace and cgroup removed, the plan without it. Nothing is left.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from testbed import naming
from testbed.errors import LabError
from testbed.lab import cgroups, system
from testbed.lab.events import EventLog
from testbed.lab.hostexec import host_dir
from testbed.lab.imds.service import MetadataService
from testbed.lab.procs import ProcessJournal, terminate
from testbed.lab.programs import host_env, ready_ports, role_listening, start_role
from testbed.lab.services import ServiceContext, dns, start_services
from testbed.lab.userdata import start_user_data
from testbed.plan.instances import with_host, without_host
from testbed.plan.network import HostPlan, NetworkPlan
from testbed.topologies.cluster import ServerAccess
from testbed.topologies.network import VpcNetwork

# Called with the new plan; returns once the controller has programmed it (the holder writes
# the plan file and asks the controller to reload it).
PlanPublisher = Callable[[NetworkPlan], None]


@dataclass
class LaunchedHost:
    """A host launch() started: what the caller watches for health (role process alive)."""

    host: HostPlan
    started: float  # time.time() when launch() began
    ready: float | None = None  # when its role answered (None: no role, or not yet)


class InstanceLauncher:
    """Adds hosts to and removes them from a running lab (the holder's Auto Scaling runtime).

    get_plan: the lab's current plan (the holder's); publish: makes a plan current (the plan
    file and the controller's flows). Plan changes are made under one lock, so that launches
    and terminations from several threads each see the others' hosts."""

    def __init__(
        self,
        lab: str,
        network: VpcNetwork,
        journal: ProcessJournal,
        events: EventLog,
        datapath: str,
        get_plan: Callable[[], NetworkPlan],
        publish: PlanPublisher,
        workers: int = 8,
        metadata: MetadataService | None = None,
    ) -> None:
        self.lab, self.network, self.journal, self.events = lab, network, journal, events
        self.datapath = datapath
        self.get_plan, self.publish = get_plan, publish
        self.workers = workers
        self.metadata = metadata  # the lab's instance metadata service (None: none)
        self.lock = threading.Lock()
        self.launched: dict[str, LaunchedHost] = {}
        self.roles: dict[str, subprocess.Popen] = {}
        self.ready_ports: dict[str, set[int]] = {}

    # ---- launch --------------------------------------------------------------------------
    def launch_many(self, hosts: list[HostPlan]) -> list[LaunchedHost | LabError]:
        """Launch `hosts`: one plan publication with all of them (their ports' flows exist
        before the ports do), each host prepared in a thread, all put on their switches in
        one OVS transaction, then each one's services, role and UserData started. A host
        whose launch failed is removed again (nothing of it left) and its LabError is in its
        place in the list."""
        if not hosts:
            return []
        started = time.time()
        # A lab across servers: each host goes on its AZ's server (BadInput, nothing made,
        # when its bridge runs on none).
        self.network.place_hosts(hosts)
        with self.lock:
            plan = self.get_plan()
            for h in hosts:
                plan = with_host(plan, h)
            self.publish(plan)
        results: dict[str, LaunchedHost | LabError] = {}
        with ThreadPoolExecutor(min(self.workers, len(hosts)), "launch") as pool:
            prepared = list(pool.map(self._prepare, hosts))
            ready = [h for h, error in zip(hosts, prepared, strict=True) if error is None]
            results.update({h.name: e for h, e in zip(hosts, prepared, strict=True) if e})
            for h, failure in self._attach(ready):
                results[h.name] = failure
            ready = [h for h in ready if h.name not in results]
            for h, error in zip(ready, pool.map(self._start, ready), strict=True):
                results[h.name] = error if error is not None else LaunchedHost(h, started)
        failed = [h for h in hosts if isinstance(results[h.name], LabError)]
        if failed:
            self._remove(failed)
            with self.lock:
                plan = self.get_plan()
                for h in failed:
                    plan = without_host(plan, h.name)
                self.publish(plan)
        for h in hosts:
            done = results[h.name]
            if isinstance(done, LaunchedHost):
                self.launched[h.name] = done
        self._refresh_dns()
        return [results[h.name] for h in hosts]

    def launch(self, host: HostPlan) -> LaunchedHost:
        """Launch one host (launch_many of one); raises its LabError."""
        result = self.launch_many([host])[0]
        if isinstance(result, LabError):
            raise result
        return result

    def _prepare(self, h: HostPlan) -> LabError | None:
        """The host in the network (not on its switch yet), in its cgroup."""
        try:
            node = self.network.prepare_host(h)
            access = self.network.server_of(h.name)
            if access is not None:
                # On another server: its cgroup there (its shell's PID is that server's).
                if cgroups.available():
                    access.run(cgroups.remote_create_script(self.lab, {h.name: node.pid}))
            elif cgroups.create(self.lab, h.name) is not None:
                cgroups.join(self.lab, h.name, node.pid)
            host_dir(self.lab, h.name).mkdir(parents=True, exist_ok=True)
        except Exception as exc:
            return _failure(h, exc)
        return None

    def _attach(self, hosts: list[HostPlan]) -> list[tuple[HostPlan, LabError]]:
        """All on their switches at once; when that fails, one by one (to know which)."""
        if not hosts:
            return []
        try:
            self.network.attach_hosts(hosts)
            return []
        except LabError as exc:
            if len(hosts) == 1:
                return [(hosts[0], _failure(hosts[0], exc))]
        failed = []
        for h in hosts:
            try:
                self.network.attach_hosts([h])
            except LabError as exc:
                failed.append((h, _failure(h, exc)))
        return failed

    def _start(self, h: HostPlan) -> LabError | None:
        """Its services (SNMP agent, resolv.conf), its role, its UserData."""
        try:
            ctx = self._services()
            if self.metadata is not None:
                # Before its UserData, which may ask it who it is.
                self.metadata.add(ctx.plan, h, access=self.network.server_of(h.name))
            start_services(ctx, h)
            if h.role and h.role != "none":
                proc = start_role(self.lab, self.journal, self.events, h)
                if proc is not None:
                    self.roles[h.name] = proc
                    self.ready_ports[h.name] = ready_ports(self.lab, h)
            if h.user_data:
                start_user_data(self.lab, self.journal, self.events, h)
        except Exception as exc:
            return _failure(h, exc)
        return None

    # ---- state -----------------------------------------------------------------------------
    def role_ready(self, name: str) -> bool:
        """Does the host's role answer (listen on its ports)? True without a role; False
        while it starts and once it exited. Never blocks."""
        proc = self.roles.get(name)
        launched = self.launched.get(name)
        if launched is None:
            return False
        if proc is None:
            return True
        try:
            ready = role_listening(self.lab, launched.host, proc, self.ready_ports[name])
        except LabError:
            return False
        if ready and launched.ready is None:
            launched.ready = time.time()
        return ready

    def alive(self, name: str) -> bool:
        """EC2's view of the instance: its host (shell) and its role process run."""
        node = self.network.net.nameToNode.get(name)
        if name not in self.launched or node is None:
            return False
        if node.shell is None or node.shell.poll() is not None:
            return False
        proc = self.roles.get(name)
        return proc is None or proc.poll() is None

    def names(self) -> list[str]:
        """Hosts launched and not terminated, in launch order."""
        return list(self.launched)

    def adopt(self, hosts: list[HostPlan]) -> None:
        """Take hosts the lab's build made (a template update removes or replaces them): from
        now on terminate() removes them as it removes launched ones. Their processes are
        ended by what runs in their namespaces and the journal, as a launched host's."""
        self.network.adopt_hosts(hosts)
        for h in hosts:
            if h.name not in self.launched:
                self.launched[h.name] = LaunchedHost(h, started=0.0)

    # ---- terminate -------------------------------------------------------------------------
    def terminate(self, name: str) -> None:
        """Remove a launched host exactly: its processes (by PID), its security-group
        conntrack entries, its namespace, links and ports, its cgroup; then the plan
        without it."""
        self.terminate_many([name])

    def terminate_many(self, names: list[str]) -> None:
        """terminate of several hosts at once (one grace period, one OVS transaction, one
        plan publication)."""
        unknown = [n for n in names if n not in self.launched]
        if unknown:
            raise LabError(f"not instances launched in lab {self.lab}: {', '.join(unknown)}")
        hosts = [self.launched[n].host for n in names]
        self._remove(hosts)
        with self.lock:
            plan = self.get_plan()
            for n in names:
                plan = without_host(plan, n)
            self.publish(plan)
        self._refresh_dns()

    def _remove(self, hosts: list[HostPlan]) -> None:
        """Everything of `hosts` gone (the plan is the caller's)."""
        names = [h.name for h in hosts]
        for n in names:
            self.launched.pop(n, None)
            self.roles.pop(n, None)
            self.ready_ports.pop(n, None)
            if self.metadata is not None:
                # Its socket holds its namespace (and links) alive: closed first.
                self.metadata.remove(n)
        # What runs in their namespaces is theirs, journaled or not (what UserData started).
        existing = set(system.list_netns())
        inside = [pid for h in hosts if h.netns in existing for pid in system.netns_pids(h.netns)]
        self.journal.end_hosts(names)
        terminate(inside)
        for zone in sorted({h.sg_zone for h in hosts if h.sg_zone is not None}):
            # Their connections' entries would match a later instance at the same address.
            system.run(["ovs-appctl", "dpctl/flush-conntrack", f"zone={zone}"], check=False)
        remote: dict[str, tuple[ServerAccess, set[int]]] = {}
        for h in hosts:
            access = self.network.server_of(h.name)
            if access is not None and h.sg_zone is not None:
                remote.setdefault(access.name, (access, set()))[1].add(h.sg_zone)
        for access, zones in remote.values():
            # The same on a server's own Open vSwitch (its processes and cgroup go with
            # remove_hosts there).
            access.run(
                "; ".join(f"ovs-appctl dpctl/flush-conntrack zone={z}" for z in sorted(zones)),
                check=False,
            )
        self.network.remove_hosts(names)
        for h in hosts:
            cgroups.remove(self.lab, h.name)
            dns.forget(h)
            shutil.rmtree(host_dir(self.lab, h.name) / "tmp", ignore_errors=True)
        self.network.unplace_hosts(names)

    def _services(self) -> ServiceContext:
        """What the per-host services need, with the plan as it is now."""
        return ServiceContext(
            self.lab,
            naming.lab_dir(self.lab),
            self.get_plan(),
            self.journal,
            self.events,
            host_env(),
        )

    def _refresh_dns(self) -> None:
        dns.refresh(self._services())


def _failure(h: HostPlan, exc: BaseException) -> LabError:
    text = str(exc) if isinstance(exc, LabError) else f"{type(exc).__name__}: {exc}"
    return LabError(f"instance {h.name} could not be launched: {text}")
