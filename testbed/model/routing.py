"""Facts that follow from the routing: public subnets, public addresses, route sanity.

A subnet is public when the route table associated with it sends 0.0.0.0/0 to an internet
gateway attached to the subnet's VPC. A subnet without an association uses the VPC's main
route table, which in the lab (as in a fresh VPC) only has the local route: private.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from testbed.errors import BadInput
from testbed.model.state import BuildState


def why_private(state: BuildState, subnet_id: str) -> str | None:
    """Why a subnet is private (for messages), or None when it is public."""
    subnet = state.subnets[subnet_id]
    link = state.associations.get(subnet_id)
    if link is None:
        return (f"subnet {subnet_id} has no route table association, so it uses the VPC's "
                "main route table, which has no route to the internet")
    table = state.route_tables[link.to]
    default = next((r for r in table.routes if r.destination.prefixlen == 0), None)
    if default is None or default.target_kind != "igw":
        return f"route table {table.logical_id} of subnet {subnet_id} has no 0.0.0.0/0 route " \
               "to an internet gateway"
    attached = state.attachments.get(default.target_id or "")
    if attached is None or attached.to != subnet.vpc_id:
        return f"internet gateway {default.target_id} is not attached to {subnet.vpc_id}"
    return None


def is_public(state: BuildState, subnet_id: str) -> bool:
    """Whether the subnet's route table sends 0.0.0.0/0 to an IGW attached to its VPC."""
    return why_private(state, subnet_id) is None


def assign_public_ips(state: BuildState, until: str | None = None) -> None:
    """Give public addresses to eligible instances in creation order (up to `until`).

    Called when an attribute needs one (routing is complete by then: the reader waits for
    every routing resource) and once at the end; both give the same answer.
    """
    for logical_id, draft in state.instances.items():
        if logical_id not in state.public_ips:
            subnet = state.subnets[draft.subnet_id]
            public = is_public(state, draft.subnet_id)
            wanted = (draft.associate_public_ip if draft.associate_public_ip is not None
                      else subnet.map_public_ip)
            if draft.associate_public_ip and not public:
                raise BadInput(
                    "AssociatePublicIpAddress is true but "
                    f"{why_private(state, draft.subnet_id)}", line=draft.associate_line,
                    logical_id=logical_id,
                    hint="put the instance in a public subnet or drop AssociatePublicIpAddress")
            address: IPv4Address | None = None
            if public and wanted:
                try:
                    address = state.addresses.public.allocate(logical_id)
                except BadInput as err:
                    raise BadInput(err.message, line=draft.source.line,
                                   logical_id=logical_id, hint=err.hint) from None
            state.public_ips[logical_id] = address
        if logical_id == until:
            return


def public_ip(state: BuildState, instance_id: str) -> IPv4Address:
    """The public address of an instance; BadInput explaining why it has none."""
    assign_public_ips(state, until=instance_id)
    address = state.public_ips.get(instance_id)
    if address is not None:
        return address
    draft = state.instances[instance_id]
    reason = why_private(state, draft.subnet_id)
    if reason is None:
        reason = (f"its subnet {draft.subnet_id} does not map public addresses on launch "
                  "(MapPublicIpOnLaunch)")
    raise BadInput(f"{instance_id} has no public IP address: {reason}",
                   hint="use PrivateIp, or give the subnet MapPublicIpOnLaunch: true and a "
                        "route to an attached internet gateway")


def check_routes(state: BuildState) -> list[BadInput]:
    """Routes whose internet gateway is not attached to their route table's VPC."""
    errors: list[BadInput] = []
    for table in state.route_tables.values():
        for route in table.routes:
            if route.target_kind != "igw" or route.target_id is None:
                continue
            attached = state.attachments.get(route.target_id)
            if attached is None or attached.to != table.vpc_id:
                where = f"to {attached.to}" if attached else "to no VPC"
                errors.append(BadInput(
                    f"route to {route.destination} uses internet gateway {route.target_id}, "
                    f"which is attached {where}, but route table {table.logical_id} belongs "
                    f"to {table.vpc_id}", line=state.route_lines.get(route.logical_id),
                    logical_id=route.logical_id,
                    hint=f"attach {route.target_id} to {table.vpc_id} with an "
                         "AWS::EC2::VPCGatewayAttachment"))
    return errors
