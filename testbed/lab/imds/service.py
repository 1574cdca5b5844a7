"""The lab's metadata service: which instances it serves, from the lab's model and plan.

The builder starts it for the template's instances before their UserData runs; the instance
launcher (testbed.lab.instances) adds each instance Auto Scaling launches before its UserData
and removes each terminated one before its namespace goes; the holder closes it before the
lab is taken down.

A lab across servers (issue 18): the instances on another server are served by a process on
that server (testbed.lab.imds.remote), one per server, started with the template's instances
and ended by close() (its local ssh client is journaled: the teardown ends it too). An
instance launched on another server while the lab runs is added to that server's process
(one is started for it if the server had none yet), and removed from it when terminated.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from testbed.lab.events import EventLog
from testbed.lab.imds.metadata import InstanceMetadata, instance_metadata
from testbed.lab.imds.remote import RemoteMetadataServer
from testbed.lab.imds.server import ADDRESS, MetadataServer
from testbed.lab.procs import ProcessJournal, record
from testbed.model.types import StackModel
from testbed.plan.network import HostPlan, NetworkPlan
from testbed.topologies.cluster import ServerAccess

EVENT_ID = "LabInstanceMetadata"
EVENT_TYPE = "Lab::InstanceMetadata"


def serves(host: HostPlan) -> bool:
    """EC2 instances have an IMDS; load balancer nodes, clients, the resolver do not."""
    return host.kind == "instance"


class MetadataService:
    def __init__(
        self,
        lab: str,
        model: StackModel,
        events: EventLog | None = None,
        journal: ProcessJournal | None = None,
        lab_dir: Path | None = None,
    ) -> None:
        self.lab, self.model, self.events = lab, model, events
        self.journal, self.lab_dir = journal, lab_dir
        self.server = MetadataServer()
        self.remote: dict[str, RemoteMetadataServer] = {}  # server name -> its process
        self.placed: dict[str, str] = {}  # instance launched on another server -> server
        self.lock = threading.Lock()

    def start(
        self,
        plan: NetworkPlan,
        skip: Collection[str] = (),
        remote: Mapping[str, ServerAccess] | None = None,
    ) -> None:
        """Serve every instance of `plan` (the template's) but those in `skip`: here, or on
        the server `remote` gives for it (a lab across servers). LabError when a socket or a
        server's process cannot be made."""
        started = time.monotonic()
        remote = remote or {}
        hosts = [h for h in plan.hosts if serves(h) and h.name not in skip]
        here = [h for h in hosts if h.name not in remote]
        for h in here:
            self.add(plan, h)
        elsewhere: dict[str, list[tuple[str, InstanceMetadata]]] = {}
        accesses: dict[str, ServerAccess] = {}
        for h in hosts:
            if h.name in remote:
                access = accesses.setdefault(remote[h.name].name, remote[h.name])
                md = instance_metadata(self.model, plan, h)
                elsewhere.setdefault(access.name, []).append((h.netns, md))
        for name, served in sorted(elsewhere.items()):
            self.remote[name] = RemoteMetadataServer.start(
                self.lab, accesses[name], served, self._log(name), on_start=self._journal(name)
            )
        if self.events is not None and hosts:
            where = [f"{len(here)} instances (one server in the holder, pid {os.getpid()})"]
            where = where if here else []
            where += [
                f"{len(r.hosts)} on server {name} (its own server, local ssh pid {r.pid})"
                for name, r in sorted(self.remote.items())
            ]
            self.events.emit(
                EVENT_ID,
                EVENT_TYPE,
                "CREATE_COMPLETE",
                f"http://{ADDRESS}/ in {', '.join(where)}; IMDSv1 and IMDSv2; in "
                f"{time.monotonic() - started:.2f} s",
            )

    def _log(self, server: str) -> Path:
        base = self.lab_dir if self.lab_dir is not None else Path(".")
        return base / f"imds-{server}.log"

    def _journal(self, server: str) -> Callable[[int], None]:
        journal = self.journal

        def add(pid: int) -> None:
            if journal is not None:
                with contextlib.suppress(LookupError):  # ended at once: start() says why
                    journal.add(record(pid, f"imds:{server}"))

        return add

    def add(
        self,
        plan: NetworkPlan,
        host: HostPlan,
        launched: float | None = None,
        access: ServerAccess | None = None,
    ) -> None:
        """Serve instance `host` (LabError when its socket cannot be made): here, or by the
        process on server `access` (a host launched on another server)."""
        if not serves(host):
            return
        metadata = instance_metadata(self.model, plan, host, launched)
        if access is None:
            self.server.add(host.netns, metadata)
            return
        with self.lock:
            if access.name not in self.remote:
                # The server had no instance of the template: its process starts now.
                self.remote[access.name] = RemoteMetadataServer.start(
                    self.lab, access, [], self._log(access.name), self._journal(access.name)
                )
            serving = self.remote[access.name]
        serving.add(host.netns, metadata)
        self.placed[host.name] = access.name

    def remove(self, name: str) -> None:
        """Stop serving instance `name`, wherever it is served."""
        server = self.placed.pop(name, None)
        if server is None:  # a template instance on another server (an update removes it)
            server = next((k for k, r in self.remote.items() if name in r.hosts), None)
        serving = self.remote.get(server) if server is not None else None
        if serving is not None:
            serving.remove(name)
            return
        self.server.remove(name)

    def close(self) -> None:
        try:
            for name in list(self.remote):
                self.remote.pop(name).stop()
        finally:
            self.server.close()
