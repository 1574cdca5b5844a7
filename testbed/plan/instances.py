"""Instances that come and go while a lab runs (Auto Scaling): the plan with one more or one
less host. Pure: the holder writes the result to the plan file and the controller programs it.

A launched instance gets what a template instance gets (testbed.plan.network): the lowest
free address of its subnet (AWS's reserved addresses and every address a host, interface,
load balancer node, endpoint or NAT gateway of the plan holds are skipped), the next free
port on its AZ switch, the lowest free host-link name, its own security-group conntrack zone
(the lowest free one of the lab's block), all from the lab's Allocations (testbed.plan.merge)
that a stack added to the lab takes from too, a MAC of its VPC's address space, the launch
spec's role, UserData and security groups, a public address when its subnet maps them (or
the launch spec asks), and an SNMP agent as every instance has. It carries `asg` (the
group's logical id) and `instance_id`.

Everything else the controller derives from hosts follows by itself: security-group members
are the addresses of the ports carrying a group (testbed.controllers.security), and the load
balancers' targets are runtime registrations (the holder's registry), not plan entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network

from testbed.errors import BadInput, LabError
from testbed.model.addressing import FIRST_AUTOMATIC, Pool
from testbed.model.autoscaling_types import AutoScalingGroup
from testbed.model.metadata import UNFILTERED_KEY
from testbed.model.types import PUBLIC_POOL, RoleSpec, StackModel
from testbed.plan.merge import Allocations
from testbed.plan.network import (
    HostPlan,
    NetworkPlan,
    SubnetPlan,
    snmp_plan,
    subnet_host,
)


def launch_host(
    plan: NetworkPlan, model: StackModel, group: str, subnet: str, name: str, instance_id: str
) -> HostPlan:
    """The HostPlan of a new instance of Auto Scaling group `group` in `subnet` (logical
    ids), named `name` (the lab host) with EC2 id `instance_id`.

    Raises LabError naming the subnet when it has no free address (AWS's
    InsufficientFreeAddressesInSubnet) or the lab no free host link / conntrack zone."""
    asg = model.auto_scaling_groups[group]
    where = plan.subnet(subnet)
    if any(h.name == name for h in plan.hosts):
        raise LabError(f"lab {plan.lab} already has a host named {name}")
    groups = asg.security_groups or None
    if model.extras.get(UNFILTERED_KEY, {}).get(group):
        groups = None  # Metadata.Lab.Unfiltered on the group: a benchmark baseline
    role, why = _role(model, asg)
    alloc = Allocations.of(plan)
    host = subnet_host(
        plan.lab,
        name,
        "instance",
        where,
        _private_ip(plan, model, where),
        alloc.take_port(where.switch),
        alloc.take_veth(name),
        space=next((v.space for v in plan.vpcs if v.name == where.vpc), 0),
        public_ip=_public_ip(plan, model, asg, where),
        role=role.name if role else None,
        role_args=dict(role.args) if role else {},
        user_data=asg.launch.user_data,
        snmp=snmp_plan(model, group, where.vpc),
        groups=groups,
        source_dest_check=True,
        default_role=why,
        asg=group,
        instance_id=instance_id,
    )
    if groups is not None:
        host = replace(host, sg_zone=alloc.take_zone())
    return host


def with_host(plan: NetworkPlan, host: HostPlan) -> NetworkPlan:
    """The plan with `host` added (after every other host)."""
    if any(h.name == host.name for h in plan.hosts):
        raise LabError(f"lab {plan.lab} already has a host named {host.name}")
    return replace(plan, hosts=(*plan.hosts, host))


def without_host(plan: NetworkPlan, name: str) -> NetworkPlan:
    """The plan without host `name` (an instance that was terminated)."""
    hosts = tuple(h for h in plan.hosts if h.name != name)
    if len(hosts) == len(plan.hosts):
        raise LabError(f"lab {plan.lab} has no host named {name}")
    return replace(plan, hosts=hosts)


def launched(plan: NetworkPlan) -> tuple[HostPlan, ...]:
    """The hosts Auto Scaling added to the plan (asg set), in launch order."""
    return tuple(h for h in plan.hosts if h.asg is not None)


# ---- what the new host gets ------------------------------------------------------------
def _role(model: StackModel, asg: AutoScalingGroup) -> tuple[RoleSpec | None, str | None]:
    """The launch spec's role, and why the lab gave it when the template did not (a group
    behind a load balancer launches http-backend instances: testbed.model.lab_defaults)."""
    return asg.launch.role, model.default_roles.get(asg.logical_id)


def _private_ip(plan: NetworkPlan, model: StackModel, subnet: SubnetPlan) -> str:
    """The lowest address of the subnet that neither AWS reserves nor anything holds."""
    cidr = IPv4Network(subnet.cidr)
    pool = Pool(f"subnet {subnet.name}", cidr, 4, cidr.num_addresses - 2)
    for ip in map(IPv4Address, _held_private(plan, model)):
        if ip in cidr:  # the pool's message counts what is in use in the subnet
            pool.owners[ip] = "held"
    try:
        return str(pool.allocate("launch"))
    except BadInput as exc:
        raise LabError(
            f"InsufficientFreeAddressesInSubnet: {exc.message}; the instance is not launched"
        ) from None


def _held_private(plan: NetworkPlan, model: StackModel) -> Iterator[str]:
    """Every private address the lab's hosts, interfaces, nodes, endpoints and NAT gateways
    hold, in the plan and in the model (a template address not given to a host yet)."""
    for a in plan.attachments():
        yield from (a.ip, *a.extra_ips)
    for lb in plan.load_balancers:
        yield from (n.ip for n in lb.nodes)
    yield from (e.ip for e in plan.endpoints)
    for inst in model.instances.values():
        yield from (str(ip) for ip in (inst.private_ip, *inst.secondary_ips))
        for eni in inst.extra_interfaces:
            yield from (str(ip) for ip in (eni.private_ip, *eni.secondary_ips))
    for eni in model.network_interfaces.values():
        yield from (str(ip) for ip in (eni.private_ip, *eni.secondary_ips))
    yield from (str(ng.private_ip) for ng in model.nat_gateways.values())


def _public_ip(
    plan: NetworkPlan, model: StackModel, asg: AutoScalingGroup, subnet: SubnetPlan
) -> str | None:
    """A public address as EC2 gives one at launch: when the launch spec asks for it, else
    when the subnet maps them (MapPublicIpOnLaunch); only a subnet routed to an attached
    internet gateway can use it (the model refuses the launch spec's request elsewhere)."""
    wanted = asg.launch.associate_public_ip
    if wanted is None:
        wanted = model.subnets[subnet.name].map_public_ip
    if not wanted or not subnet.public:
        return None
    pool = Pool(
        "the public address pool", PUBLIC_POOL, FIRST_AUTOMATIC, PUBLIC_POOL.num_addresses - 2
    )
    for ip in map(IPv4Address, _held_public(plan, model)):
        if ip in PUBLIC_POOL:
            pool.owners[ip] = "held"
    try:
        return str(pool.allocate("launch"))
    except BadInput as exc:
        raise LabError(f"{exc.message}; the instance is not launched") from None


def _held_public(plan: NetworkPlan, model: StackModel) -> Iterator[str]:
    """Every public address in use or allocated (an Elastic IP holds its address even when
    associated with nothing)."""
    for a in plan.attachments():
        if a.public_ip:
            yield a.public_ip
    for lb in plan.load_balancers:
        yield from (n.public_ip for n in lb.nodes if n.public_ip)
    yield from _present(inst.public_ip for inst in model.instances.values())
    yield from _present(eni.public_ip for eni in model.network_interfaces.values())
    yield from _present(ng.public_ip for ng in model.nat_gateways.values())
    yield from (str(eip.address) for eip in model.elastic_ips.values())


def _present(ips: Iterable[IPv4Address | None]) -> Iterator[str]:
    return (str(ip) for ip in ips if ip is not None)
