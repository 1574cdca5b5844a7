"""Facts that follow from the routing: public subnets, public addresses, route sanity.

A subnet is public when the route table associated with it sends 0.0.0.0/0 to an internet
gateway attached to the subnet's VPC. A subnet without an association uses the VPC's main
route table, which in the lab (as in a fresh VPC) only has the local route: private.
A default route to a GWLB endpoint leads out the way the endpoint's own subnet does; a
default route to a NAT gateway keeps a subnet private (connections go out, none come in).

A route table associated with an internet gateway (its ingress route table) may only send
the traffic for a subnet of the VPC to a GWLB endpoint, as AWS allows.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

from testbed.errors import BadInput
from testbed.model import lab_view
from testbed.model.elbv2_types import EXTRAS_KEY
from testbed.model.state import BuildState


def why_private(
    state: BuildState, subnet_id: str, _seen: frozenset[str] = frozenset()
) -> str | None:
    """Why a subnet is private (for messages), or None when it is public.

    A default route to a GWLB endpoint counts as the endpoint's way out: the subnet is public
    when the endpoint's subnet is (the inspection design: app subnet -> endpoint -> IGW).
    """
    foreign = lab_view.foreign_public(state, subnet_id)
    if foreign is not None:  # its own stack decided, with its route tables
        owner = state.foreign[subnet_id]
        return None if foreign else f"subnet {subnet_id} of stack {owner} is private"
    subnet = state.subnets[subnet_id]
    link = state.associations.get(subnet_id)
    if link is None:
        return (
            f"subnet {subnet_id} has no route table association, so it uses the VPC's "
            "main route table, which has no route to the internet"
        )
    table = state.route_tables[link.to]
    default = next((r for r in table.routes if r.destination.prefixlen == 0), None)
    if default is not None and default.target_kind == "vpce" and default.target_id:
        endpoint = _endpoint(state, default.target_id)
        if endpoint is None or endpoint.subnet_id in _seen | {subnet_id}:
            return (
                f"route table {table.logical_id} of subnet {subnet_id} sends 0.0.0.0/0 "
                "round in a loop of GWLB endpoints"
            )
        reason = why_private(state, endpoint.subnet_id, _seen | {subnet_id})
        if reason is None:
            return None
        return (
            f"route table {table.logical_id} of subnet {subnet_id} sends 0.0.0.0/0 to "
            f"GWLB endpoint {default.target_id}, and {reason}"
        )
    if default is not None and default.target_kind == "nat":
        return (
            f"route table {table.logical_id} of subnet {subnet_id} sends 0.0.0.0/0 to NAT "
            f"gateway {default.target_id}, which only lets connections out"
        )
    if default is None or default.target_kind != "igw":
        return (
            f"route table {table.logical_id} of subnet {subnet_id} has no 0.0.0.0/0 route "
            "to an internet gateway"
        )
    attached = state.attachments.get(default.target_id or "")
    if attached is None or attached.to != subnet.vpc_id:
        return f"internet gateway {default.target_id} is not attached to {subnet.vpc_id}"
    return None


def _endpoint(state: BuildState, endpoint_id: str) -> Any:
    return state.extras.get(EXTRAS_KEY, {}).get("endpoints", {}).get(endpoint_id)


def is_public(state: BuildState, subnet_id: str) -> bool:
    """Whether the subnet's traffic to 0.0.0.0/0 reaches an IGW attached to its VPC."""
    return why_private(state, subnet_id) is None


def assign_public_ips(state: BuildState, until: str | None = None) -> None:
    """Give public addresses to every claimant in creation order (up to `until`).

    Called when an attribute needs one (routing is complete by then: the reader waits for
    every routing resource) and once at the end; both give the same answer.
    """
    for logical_id, claim in state.public_claims.items():
        if logical_id not in state.public_done:
            claim(state, logical_id)
            state.public_done.add(logical_id)
        if logical_id == until:
            return


def claim_instance_public_ip(state: BuildState, logical_id: str) -> None:
    """An instance's public address: its eth0's Elastic IP (wherever the subnet is: AWS
    associates it, it is just unreachable from a private subnet), else an automatic one in a
    public subnet that maps them (only for an instance launched with one interface), or when
    asked for."""
    draft = state.instances[logical_id]
    eip = state.eip_of.get(draft.primary_interface or logical_id)
    if eip is not None:
        state.public_ips[logical_id] = state.elastic_ips[eip].address
        return
    subnet = state.subnets[draft.subnet_id]
    public = is_public(state, draft.subnet_id)
    mapped = subnet.map_public_ip and draft.launched_interfaces == 1
    wanted = draft.associate_public_ip if draft.associate_public_ip is not None else mapped
    if draft.associate_public_ip and not public:
        raise BadInput(
            f"AssociatePublicIpAddress is true but {why_private(state, draft.subnet_id)}",
            line=draft.associate_line,
            logical_id=logical_id,
            hint="put the instance in a public subnet or drop AssociatePublicIpAddress",
        )
    address: IPv4Address | None = None
    if public and wanted:
        try:
            address = state.addresses.public.allocate(logical_id)
        except BadInput as err:
            raise BadInput(
                err.message, line=draft.source.line, logical_id=logical_id, hint=err.hint
            ) from None
    state.public_ips[logical_id] = address


def public_ip(state: BuildState, instance_id: str) -> IPv4Address:
    """The public address of an instance; BadInput explaining why it has none."""
    assign_public_ips(state, until=instance_id)
    address = state.public_ips.get(instance_id)
    if address is not None:
        return address
    draft = state.instances[instance_id]
    reason = why_private(state, draft.subnet_id)
    if reason is None:
        reason = (
            f"its subnet {draft.subnet_id} does not map public addresses on launch "
            "(MapPublicIpOnLaunch)"
            if draft.launched_interfaces == 1
            else f"it was launched with {draft.launched_interfaces} network interfaces, and AWS "
            "auto-assigns a public address only to an instance launched with one"
        )
    raise BadInput(
        f"{instance_id} has no public IP address: {reason}",
        hint="use PrivateIp, associate an Elastic IP, or give the subnet "
        "MapPublicIpOnLaunch: true and a route to an attached internet gateway",
    )


def check_routes(state: BuildState) -> list[BadInput]:
    """Routes whose internet gateway is not attached to their route table's VPC, and
    gateway route tables with routes AWS does not allow there."""
    errors = _gateway_table_errors(state)
    for table in state.route_tables.values():
        for route in table.routes:
            if route.target_kind != "igw" or route.target_id is None:
                continue
            attached = state.attachments.get(route.target_id)
            if attached is None or attached.to != table.vpc_id:
                where = f"to {attached.to}" if attached else "to no VPC"
                errors.append(
                    BadInput(
                        f"route to {route.destination} uses internet gateway {route.target_id}, "
                        f"which is attached {where}, but route table {table.logical_id} belongs "
                        f"to {table.vpc_id}",
                        line=state.route_lines.get(route.logical_id),
                        logical_id=route.logical_id,
                        hint=f"attach {route.target_id} to {table.vpc_id} with an "
                        "AWS::EC2::VPCGatewayAttachment",
                    )
                )
    return errors


_TARGET_WORDS = {"igw": "an internet gateway", "nat": "a NAT gateway"}


def _gateway_table_errors(state: BuildState) -> list[BadInput]:
    errors: list[BadInput] = []
    for igw_id, link in state.gateway_associations.items():
        table = state.route_tables[link.to]
        attached = state.attachments.get(igw_id)
        if attached is None or attached.to != table.vpc_id:
            where = f"attached to {attached.to}" if attached else "not attached to any VPC"
            errors.append(
                BadInput(
                    f"internet gateway {igw_id} is {where}, but route table {table.logical_id} "
                    f"belongs to {table.vpc_id}",
                    line=link.line,
                    logical_id=link.by,
                    hint="associate a route table of the VPC the gateway is attached to",
                )
            )
            continue
        subnets = {s.cidr: lid for lid, s in state.subnets.items() if s.vpc_id == table.vpc_id}
        owner = (
            f"route table {table.logical_id} is the ingress route table of internet "
            f"gateway {igw_id} (associated by {link.by})"
        )
        for route in table.routes:
            if route.target_kind == "local":
                continue
            line = state.route_lines.get(route.logical_id)
            if route.target_kind != "vpce":
                errors.append(
                    BadInput(
                        f"{owner}: its routes may only lead to GWLB endpoints, not to "
                        f"{_TARGET_WORDS.get(route.target_kind, route.target_kind)} "
                        f"({route.destination} -> {route.target_id})",
                        line=line,
                        logical_id=route.logical_id,
                        hint="route each protected subnet's CIDR to a GWLB endpoint",
                    )
                )
            elif route.destination not in subnets:
                cidrs = ", ".join(str(c) for c in sorted(subnets)) or "none"
                errors.append(
                    BadInput(
                        f"{owner}: a route there must have the exact CIDR block of a subnet of "
                        f"{table.vpc_id} as destination, not {route.destination}",
                        line=line,
                        logical_id=route.logical_id,
                        hint=f"the subnets' blocks: {cidrs}",
                    )
                )
    return errors
