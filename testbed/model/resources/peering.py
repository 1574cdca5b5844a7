"""AWS::EC2::VPCPeeringConnection (issue 14): two VPCs of the lab, this stack's or another's.

The lab is one account in one region, so a connection to another owner or region cannot be
made; one between overlapping VPCs fails, as on AWS (its status becomes `failed` and
CloudFormation reports that it failed to stabilize). A connection is accepted at once (same
account). Routes to it (`VpcPeeringConnectionId`) have kind "pcx" and must be in a route
table of one of its two VPCs; they lead into the other one. Peering is not transitive: a
packet is routed once, by the table of the subnet it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from testbed.model.resources.base import ResourceContext, ResourceType, prop, ref
from testbed.model.resources.registry import register
from testbed.model.state import BuildState
from testbed.model.types import Source
from testbed.template.intrinsics import ACCOUNT_ID

PEERING = "AWS::EC2::VPCPeeringConnection"
VPC = "AWS::EC2::VPC"
EXTRAS_KEY = "peering_connections"  # StackModel.extras[EXTRAS_KEY][logical id]


@dataclass(frozen=True)
class PeeringConnection:
    """An active peering connection between two VPCs (their names in the lab plan)."""

    logical_id: str
    vpc_id: str  # the requester
    peer_vpc_id: str  # the accepter
    physical_id: str
    source: Source | None = None

    def other(self, vpc_id: str) -> str | None:
        """The VPC at the other end from `vpc_id`; None when `vpc_id` is not an end."""
        if vpc_id == self.vpc_id:
            return self.peer_vpc_id
        if vpc_id == self.peer_vpc_id:
            return self.vpc_id
        return None


def connections(state_or_extras: Any) -> dict[str, PeeringConnection]:
    """The peering connections of a BuildState (or of StackModel.extras)."""
    extras = getattr(state_or_extras, "extras", state_or_extras)
    found: dict[str, PeeringConnection] = extras.get(EXTRAS_KEY, {})
    return found


def overlap_refusal(
    requester: Any, accepter: Any, names: tuple[str, str] | None = None
) -> str | None:
    """AWS's refusal of a connection between the two VPCs (model Vpc objects; `names`: how
    to call them, their logical ids by default), or None."""
    if not requester.cidr.overlaps(accepter.cidr):
        return None
    a, b = names or (requester.logical_id, accepter.logical_id)
    return (
        "VpcPeeringConnection failed to stabilize: the connection's status is failed because "
        f"the CIDR blocks of {a} ({requester.cidr}) and {b} ({accepter.cidr}) overlap; the "
        "requester VPC and accepter VPC cannot have overlapping CIDR blocks"
    )


def _build_peering(ctx: ResourceContext) -> None:
    state: BuildState = ctx.state
    owner = ctx.props.get("PeerOwnerId")
    if owner is not None and str(owner) != ACCOUNT_ID:
        raise ctx.fail(
            f"PeerOwnerId {owner} is another account; the lab is one account ({ACCOUNT_ID}) "
            "and cannot peer with a VPC of another",
            prop="PeerOwnerId",
            hint="drop PeerOwnerId (and PeerRoleArn): the peer VPC is in this lab",
        )
    region = ctx.props.get("PeerRegion")
    if region is not None and str(region) != state.region:
        raise ctx.fail(
            f"PeerRegion {region} is not the lab's region ({state.region}); the lab cannot "
            "peer across regions",
            prop="PeerRegion",
            hint="drop PeerRegion: the peer VPC is in this lab's region",
        )
    vpc_id, peer_id = ctx.props["VpcId"], ctx.props["PeerVpcId"]
    if vpc_id == peer_id:
        raise ctx.fail(
            f"a VPC cannot be peered with itself ({vpc_id})",
            prop="PeerVpcId",
            hint="name the other VPC in PeerVpcId",
        )
    requester, accepter = state.vpcs[vpc_id], state.vpcs[peer_id]
    # Named by their ids in the lab (another stack's VPC is "Stack.VPC" in this state).
    refusal = overlap_refusal(
        requester, accepter, (state.physical("vpc-", vpc_id), state.physical("vpc-", peer_id))
    )
    if refusal is not None:
        raise ctx.fail(refusal, prop="PeerVpcId", hint="peer VPCs whose CIDR blocks do not overlap")
    for other in connections(state).values():
        if {other.vpc_id, other.peer_vpc_id} == {vpc_id, peer_id}:
            raise ctx.fail(
                f"{vpc_id} and {peer_id} are already peered by {other.logical_id}; two VPCs "
                "have at most one active peering connection",
                prop="PeerVpcId",
            )
    lid = ctx.logical_id
    state.extras.setdefault(EXTRAS_KEY, {})[lid] = PeeringConnection(
        lid, vpc_id, peer_id, state.physical("pcx-", lid), ctx.source
    )


register(
    ResourceType(
        PEERING,
        _build_peering,
        ref_prefix="pcx-",
        properties={
            "VpcId": ref(VPC, required=True),
            "PeerVpcId": ref(VPC, required=True),
            "PeerOwnerId": prop("string"),
            "PeerRegion": prop("string"),
            "PeerRoleArn": prop("string"),
            "Tags": prop("any"),
        },
        attributes={"Id": lambda s, lid: s.physical("pcx-", lid)},
    )
)
