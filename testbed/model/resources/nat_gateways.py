"""AWS::EC2::NatGateway: a lab host in its subnet that lets private subnets reach out.

A public NAT gateway needs an Elastic IP (AllocationId) and, to work, a public subnet: AWS
creates one in a private subnet but its traffic goes nowhere, so the lab refuses that with a
hint. A private NAT gateway (ConnectivityType private) has no Elastic IP: it translates
sources to its private address only. Its private address comes from its subnet like an
instance's. Routes reach it with NatGatewayId (ec2.py: Route target 'nat', same VPC only);
a subnet whose 0.0.0.0/0 goes to a NAT gateway stays private (routing.py).
"""

from __future__ import annotations

from typing import Any

from testbed.errors import BadInput
from testbed.model import routing
from testbed.model.resources.addresses import allocation_id, associate
from testbed.model.resources.base import ResourceContext, ResourceType, prop, ref
from testbed.model.resources.ec2 import NAT_GATEWAY, SUBNET
from testbed.model.resources.elbv2.common import choice
from testbed.model.resources.network_interfaces import set_aside_addresses
from testbed.model.resources.registry import register
from testbed.model.state import BuildState
from testbed.model.types import NatGateway

CONNECTIVITY = ("public", "private")
ONE_ADDRESS = "the lab's NAT gateway has one address"


def _build(ctx: ResourceContext) -> None:
    state, lid, props = ctx.state, ctx.logical_id, ctx.props
    kind = choice(
        ctx,
        props.get("ConnectivityType", "public"),
        CONNECTIVITY,
        "ConnectivityType",
        ctx.line("ConnectivityType"),
    )
    public = kind == "public"
    eip: str | None = None
    if public and "AllocationId" not in props:
        raise ctx.fail(
            "a public NAT gateway needs an Elastic IP",
            hint="add AllocationId: !GetAtt <an AWS::EC2::EIP>.AllocationId, or make it "
            "ConnectivityType: private",
        )
    if "AllocationId" in props:
        if not public:
            raise ctx.fail(
                "a private NAT gateway has no Elastic IP",
                prop="AllocationId",
                hint="leave AllocationId out, or make it ConnectivityType: public",
            )
        eip = allocation_id(ctx, props["AllocationId"], "AllocationId", ctx.line("AllocationId"))
    subnet_id = props["SubnetId"]
    subnet = state.subnets[subnet_id]
    try:
        ip = state.addresses.private(subnet_id, lid, props.get("PrivateIpAddress"))
    except BadInput as err:
        raise ctx.fail(err.message, prop="PrivateIpAddress", hint=err.hint) from None
    address = None
    if eip is not None:
        associate(ctx, eip, lid, f"NAT gateway {lid}", ctx.line("AllocationId"), nat_gateway_id=lid)
        address = state.elastic_ips[eip].address
    state.nat_gateways[lid] = NatGateway(
        lid,
        subnet_id,
        subnet.az,
        ip,
        address,
        public,
        state.elastic_ips[eip].allocation_id if eip else None,
        ctx.source,
    )


def _prepare(lid: str, raw: Any, state: BuildState) -> None:
    set_aside_addresses(raw, lid, state)


register(
    ResourceType(
        NAT_GATEWAY,
        _build,
        ref_prefix="nat-",
        properties={
            "SubnetId": ref(SUBNET, required=True),
            "AllocationId": prop("string"),
            "ConnectivityType": prop("string"),
            "PrivateIpAddress": prop("ip"),
        },
        ignored=frozenset({"MaxDrainDurationSeconds"}),
        unsupported={
            "SecondaryAllocationIds": f"{ONE_ADDRESS}; leave SecondaryAllocationIds out",
            "SecondaryPrivateIpAddressCount": f"{ONE_ADDRESS}; leave "
            "SecondaryPrivateIpAddressCount out",
            "SecondaryPrivateIpAddresses": f"{ONE_ADDRESS}; leave SecondaryPrivateIpAddresses out",
        },
        attributes={"NatGatewayId": lambda s, lid: s.physical("nat-", lid)},
        prepare=_prepare,
    )
)


def placement_errors(state: BuildState) -> list[BadInput]:
    """Public NAT gateways outside public subnets (checked once the routing is final)."""
    errors = []
    for nat in state.nat_gateways.values():
        if not nat.public:
            continue
        reason = routing.why_private(state, nat.subnet_id)
        if reason is not None:
            errors.append(
                BadInput(
                    f"a public NAT gateway must be in a public subnet, but {reason}",
                    line=nat.source.line if nat.source else None,
                    logical_id=nat.logical_id,
                    hint="put it in a subnet whose route table sends 0.0.0.0/0 to an attached "
                    "internet gateway, or make it ConnectivityType: private",
                )
            )
    return errors
