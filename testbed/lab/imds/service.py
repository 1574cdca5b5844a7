"""The lab's metadata service: which instances it serves, from the lab's model and plan.

The builder starts it for the template's instances before their UserData runs; the instance
launcher (testbed.lab.instances) adds each instance Auto Scaling launches before its UserData
and removes each terminated one before its namespace goes; the holder closes it before the
lab is taken down.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection

from testbed.lab.events import EventLog
from testbed.lab.imds.metadata import instance_metadata
from testbed.lab.imds.server import ADDRESS, MetadataServer
from testbed.model.types import StackModel
from testbed.plan.network import HostPlan, NetworkPlan

EVENT_ID = "LabInstanceMetadata"
EVENT_TYPE = "Lab::InstanceMetadata"


def serves(host: HostPlan) -> bool:
    """EC2 instances have an IMDS; load balancer nodes, clients, the resolver do not."""
    return host.kind == "instance"


class MetadataService:
    def __init__(self, lab: str, model: StackModel, events: EventLog | None = None) -> None:
        self.lab, self.model, self.events = lab, model, events
        self.server = MetadataServer()

    def start(self, plan: NetworkPlan, skip: Collection[str] = ()) -> None:
        """Serve every instance of `plan` (the template's) but those in `skip` (on another
        server: the service's sockets are made in namespaces of this machine)."""
        started = time.monotonic()
        hosts = [h for h in plan.hosts if serves(h) and h.name not in skip]
        for h in hosts:
            self.add(plan, h)
        if self.events is not None and hosts:
            self.events.emit(
                EVENT_ID,
                EVENT_TYPE,
                "CREATE_COMPLETE",
                f"http://{ADDRESS}/ in {len(hosts)} instances (one server in the holder, "
                f"pid {os.getpid()}; IMDSv1 and IMDSv2) in {time.monotonic() - started:.2f} s",
            )

    def add(self, plan: NetworkPlan, host: HostPlan, launched: float | None = None) -> None:
        """Serve instance `host` (LabError when its socket cannot be made)."""
        if serves(host):
            metadata = instance_metadata(self.model, plan, host, launched)
            self.server.add(host.netns, metadata)

    def remove(self, name: str) -> None:
        self.server.remove(name)

    def close(self) -> None:
        self.server.close()
