"""Instances that come and go while a lab runs (Auto Scaling): the plan with one more or one
less host. Pure: the holder writes the result to the plan file and the controller programs it.

A launched instance gets what a template instance gets (testbed.plan.network): the lowest
free address of its subnet (AWS's reserved addresses and every address a host, interface,
load balancer node, endpoint or NAT gateway of the plan holds are skipped), the next free
port on its AZ switch, the lowest free host-link name, its own security-group conntrack zone
(the lowest free one of the lab's block), the launch spec's role, UserData and security groups,
a public address when its subnet maps them (or the launch spec asks), and an SNMP agent as
every instance has. It carries `asg` (the group's logical id) and `instance_id`.
"""

from __future__ import annotations

from testbed.model.types import StackModel
from testbed.plan.network import HostPlan, NetworkPlan


def launch_host(
    plan: NetworkPlan, model: StackModel, group: str, subnet: str, name: str, instance_id: str
) -> HostPlan:
    """The HostPlan of a new instance of Auto Scaling group `group` in `subnet` (logical
    ids), named `name` (the lab host) with EC2 id `instance_id`.

    Raises LabError naming the subnet when it has no free address (AWS's
    InsufficientFreeAddressesInSubnet) or the lab no free host link / conntrack zone."""
    raise NotImplementedError


def with_host(plan: NetworkPlan, host: HostPlan) -> NetworkPlan:
    """The plan with `host` added (after every other host)."""
    raise NotImplementedError


def without_host(plan: NetworkPlan, name: str) -> NetworkPlan:
    """The plan without host `name` (an instance that was terminated)."""
    raise NotImplementedError


def launched(plan: NetworkPlan) -> tuple[HostPlan, ...]:
    """The hosts Auto Scaling added to the plan (asg set), in launch order."""
    return tuple(h for h in plan.hosts if h.asg is not None)
