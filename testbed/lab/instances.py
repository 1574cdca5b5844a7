"""Hosts added to and removed from a running lab (Auto Scaling's instances), in the holder.

launch: the controller first gets the plan with the new host (its port's flows exist before
the port does), then the Mininet host, its link into the AZ switch (attached to the running
OVS bridge with the planned OpenFlow port), addresses, routes and sysctls as a template
instance gets them, TX checksum offload off (userspace datapath), its cgroup
(testbed.lab.cgroups: its CPU is its own), its services (SNMP agent), its role and its
UserData; every process journaled by PID before anything depends on it.
terminate: the reverse, exactly: its processes ended by PID, its conntrack zone flushed, its
namespace and link removed, the plan without it, its cgroup removed. Nothing is left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from testbed.plan.network import HostPlan, NetworkPlan

# Called with the new plan; returns once the controller has programmed it (the holder writes
# the plan file and asks the controller to reload it).
PlanPublisher = Callable[[NetworkPlan], None]


@dataclass
class LaunchedHost:
    """A host launch() started: what the caller watches for health (role process alive)."""

    host: HostPlan
    started: float  # time.time() when launch() began
    ready: float | None = None  # when its role answered (None: no role, or not yet)
