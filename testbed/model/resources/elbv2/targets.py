"""The Targets of a target group: instances (by !Ref), IP addresses inside the VPC, or one
Application Load Balancer (TargetType alb, by !Ref: its ARN)."""

from __future__ import annotations

from ipaddress import IPv4Address

from testbed.model.elb_defaults import GENEVE_PORT
from testbed.model.elbv2_types import Target
from testbed.model.resources.base import ResourceContext, prop, ref
from testbed.model.resources.ec2 import AZ_NAME, INSTANCE
from testbed.model.resources.elbv2.common import (
    LOAD_BALANCER,
    convert,
    family,
    in_range,
    items,
    nested,
)

TARGET_PROPERTIES = {
    "Id": prop("string", required=True),
    "Port": prop("integer"),
    "AvailabilityZone": prop("string"),
}


def _instance_target(
    ctx: ResourceContext, text: str, vpc_id: str, where: str, lines: dict[str, int | None]
) -> tuple[IPv4Address, str, str]:
    """(address, AZ, instance logical id) of an instance target in the group's VPC."""
    state = ctx.state
    if "AvailabilityZone" in lines:
        raise ctx.fail(
            f"{where}.AvailabilityZone is only for ip targets; an instance's AZ is its subnet's",
            line=lines["AvailabilityZone"],
        )
    instance_id = convert(ctx, ref(INSTANCE), text, f"{where}.Id", lines["Id"])
    draft = state.instances[instance_id]
    subnet = state.subnets[draft.subnet_id]
    if subnet.vpc_id != vpc_id:
        raise ctx.fail(
            f"{where}: instance {instance_id} is in {subnet.vpc_id}, not in the "
            f"target group's VPC {vpc_id}",
            line=lines["Id"],
        )
    return draft.private_ip, subnet.az, instance_id


def _ip_target(
    ctx: ResourceContext,
    text: str,
    vpc_id: str,
    where: str,
    values: dict,
    lines: dict[str, int | None],
) -> tuple[IPv4Address, str, str | None]:
    """(address, AZ, instance holding it or None) of an ip target inside the VPC."""
    state = ctx.state
    ip: IPv4Address = convert(ctx, prop("ip"), text, f"{where}.Id", lines["Id"])
    vpc = state.vpcs[vpc_id]
    if ip not in vpc.cidr:
        raise ctx.fail(
            f"{where}: target address {ip} is not inside {vpc_id}'s {vpc.cidr}",
            line=lines["Id"],
            hint="ip targets must be addresses of the VPC",
        )
    subnet = next((s for s in state.subnets.values() if s.vpc_id == vpc_id and ip in s.cidr), None)
    given = values.get("AvailabilityZone")
    az_line = lines.get("AvailabilityZone", lines["Id"])
    if given is not None:
        match = AZ_NAME.match(given)
        if not match or match.group(1) != state.region:
            raise ctx.fail(
                f"{where}.AvailabilityZone {given!r} is not an availability zone of {state.region}",
                line=az_line,
            )
        if subnet is not None and given != subnet.az:
            raise ctx.fail(
                f"{where}.AvailabilityZone {given} differs from the AZ of subnet "
                f"{subnet.logical_id} ({subnet.az}), which holds {ip}",
                line=az_line,
                hint="leave AvailabilityZone out",
            )
    elif subnet is None:
        raise ctx.fail(
            f"{where}: no subnet of {vpc_id} holds {ip}, so its availability zone is unknown",
            line=lines["Id"],
            hint="add AvailabilityZone",
        )
    az = subnet.az if subnet is not None else given
    assert az is not None  # no subnet and no AvailabilityZone was refused above
    owner = next(
        (
            lid
            for lid, draft in state.instances.items()
            if draft.private_ip == ip and state.subnets[draft.subnet_id].vpc_id == vpc_id
        ),
        None,
    )
    return ip, az, owner


def _alb_target(
    ctx: ResourceContext, text: str, port: int, vpc_id: str, where: str, values: dict, lines: dict
) -> Target:
    """An alb target: one Application Load Balancer of the group's VPC, on the group's port
    (AWS: the target group's port is the ALB listener's that takes the traffic)."""
    if "AvailabilityZone" in lines:
        raise ctx.fail(
            f"{where}.AvailabilityZone is only for ip targets; an ALB's nodes are in its "
            "subnets' AZs",
            line=lines["AvailabilityZone"],
        )
    lb_id = convert(ctx, ref(LOAD_BALANCER), text, f"{where}.Id", lines["Id"])
    lb = family(ctx.state)["load_balancers"][lb_id]
    if lb.type != "application":
        raise ctx.fail(
            f"{where}: {lb_id} is a {lb.type} load balancer; a target group of TargetType alb "
            "takes one Application Load Balancer",
            line=lines["Id"],
        )
    if lb.vpc_id != vpc_id:
        raise ctx.fail(
            f"{where}: ALB {lb_id} is in {lb.vpc_id}, not in the target group's VPC {vpc_id}",
            line=lines["Id"],
            hint="an ALB target must be in the network load balancer's VPC (AWS: same VPC, "
            "same account)",
        )
    target_port = values.get("Port", port)
    if target_port != port:
        raise ctx.fail(
            f"{where}.Port {target_port} differs from the target group's Port {port}: an alb "
            "target takes the traffic on the ALB listener of the group's port",
            line=lines.get("Port", lines["Id"]),
            hint="leave Port out",
        )
    return Target(lb.arn, lb.nodes[0].private_ip, port, None, None, lb_id)


def read_targets(
    ctx: ResourceContext, target_type: str, protocol: str, port: int, vpc_id: str
) -> tuple[Target, ...]:
    """The Targets property: each target located, checked and given its address and AZ."""
    if "Targets" not in ctx.props:
        return ()
    targets: list[Target] = []
    seen: dict[tuple[str, int], str] = {}
    for index, (item, line, where) in enumerate(items(ctx, "Targets")):
        values, lines = nested(ctx, item, where, line, TARGET_PROPERTIES)
        text = values["Id"].strip()
        if target_type == "alb":
            if index > 0:
                raise ctx.fail(
                    f"{where}: a target group of TargetType alb takes one Application Load "
                    "Balancer only (AWS: one ALB per target group)",
                    line=line,
                    hint="make a target group for each ALB",
                )
            targets.append(_alb_target(ctx, text, port, vpc_id, where, values, lines))
            continue
        instance: str | None  # the instance holding an ip target's address, if any
        if target_type == "instance":
            ip, az, instance = _instance_target(ctx, text, vpc_id, where, lines)
        else:
            ip, az, instance = _ip_target(ctx, text, vpc_id, where, values, lines)
        target_port = values.get("Port", port)
        in_range(ctx, target_port, 1, 65535, f"{where}.Port", lines.get("Port", line))
        if protocol == "GENEVE" and target_port != GENEVE_PORT:
            raise ctx.fail(
                f"{where}.Port must be {GENEVE_PORT}: a gateway load balancer "
                f"reaches its appliances on GENEVE port {GENEVE_PORT}",
                line=lines.get("Port", line),
            )
        target_id = str(ip) if target_type == "ip" else text
        key = (target_id, target_port)
        if key in seen:
            raise ctx.fail(
                f"{where}: target {key[0]} port {target_port} is already {seen[key]}",
                line=line,
                hint="register each target and port once",
            )
        seen[key] = where
        targets.append(Target(target_id, ip, target_port, az, instance))
    return tuple(targets)
