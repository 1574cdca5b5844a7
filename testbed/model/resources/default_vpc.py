"""The region's default VPC, made by the lab when a template uses it.

AWS gives every region a default VPC: 172.31.0.0/16, one /20 default subnet per AZ (public,
MapPublicIpOnLaunch true), an attached internet gateway and a main route table sending
0.0.0.0/0 to it. Templates use it without naming it: an instance without a subnet, a security
group without VpcId, a load balancer without subnets. The lab makes it the first time
something needs it (before anything else when the template shows that need up front), with the
logical ids below, and lists it first in the creation order so the stack's events show it.

AWS does not document which /20 goes to which AZ; the lab gives them in AZ order
(172.31.0.0/20 to the first AZ, 172.31.16.0/20 to the second, ...), the AZs of Fn::GetAZs.
An instance that names no AZ goes to the first one (AWS picks one "based on load balancing
criteria": unspecified).
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Network
from typing import Any

from testbed.errors import BadInput
from testbed.model.state import BuildState, Link, RouteTableDraft, SubnetDraft
from testbed.model.types import Route, Source, Vpc
from testbed.template.intrinsics import region_azs

DEFAULT_VPC = "DefaultVpc"
DEFAULT_IGW = "DefaultInternetGateway"
DEFAULT_ROUTE_TABLE = "DefaultRouteTable"
DEFAULT_CIDR = IPv4Network("172.31.0.0/16")
SUBNET_PREFIX = 20

_TYPES = {
    "vpc": ("AWS::EC2::VPC", "vpc-"),
    "igw": ("AWS::EC2::InternetGateway", "igw-"),
    "subnet": ("AWS::EC2::Subnet", "subnet-"),
    "table": ("AWS::EC2::RouteTable", "rtb-"),
}


def subnet_id(az: str) -> str:
    """Logical id of the default subnet of an AZ: DefaultSubnet1a for us-east-1a."""
    return f"DefaultSubnet{az[-2:]}"


def default_ids(region: str) -> list[str]:
    """Every logical id of the default VPC's resources, in creation order."""
    subnets = [subnet_id(az) for az in region_azs(region)]
    return [DEFAULT_VPC, DEFAULT_IGW, *subnets, DEFAULT_ROUTE_TABLE]


def _register(state: BuildState, lid: str, kind: str) -> None:
    type_name, prefix = _TYPES[kind]
    state.types[lid] = type_name
    state.physical_ids[state.physical(prefix, lid)] = lid
    state.built.append(lid)
    state.default_vpc_ids.append(lid)


def ensure(state: BuildState, needed_by: str) -> str:
    """The default VPC's logical id, made now if nothing made it yet; BadInput (without a
    location) when the template's own resources use one of its logical ids."""
    if state.default_vpc_ids:
        return DEFAULT_VPC
    taken = [lid for lid in default_ids(state.region) if lid in state.types]
    if taken:
        raise BadInput(
            f"{needed_by} uses the default VPC, which the lab makes with the logical ids "
            f"{', '.join(default_ids(state.region))}; the template already uses "
            f"{', '.join(taken)}",
            hint=f"rename {taken[0]} in the template",
        )
    source = Source(state.file, None)
    state.default_vpc_for = needed_by
    state.vpcs[DEFAULT_VPC] = Vpc(DEFAULT_VPC, DEFAULT_CIDR, source, is_default=True)
    _register(state, DEFAULT_VPC, "vpc")
    state.internet_gateways[DEFAULT_IGW] = source
    state.attachments[DEFAULT_IGW] = Link(DEFAULT_VPC, DEFAULT_VPC, None)
    _register(state, DEFAULT_IGW, "igw")
    blocks = DEFAULT_CIDR.subnets(new_prefix=SUBNET_PREFIX)
    for az, cidr in zip(region_azs(state.region), blocks, strict=False):
        lid = subnet_id(az)
        state.subnets[lid] = SubnetDraft(lid, DEFAULT_VPC, az, cidr, True, source)
        state.addresses.add_subnet(lid, cidr)
        if state.az_region is None:
            state.az_region = (state.region, lid)
        _register(state, lid, "subnet")
    local = Route(
        f"{DEFAULT_ROUTE_TABLE}.local", DEFAULT_ROUTE_TABLE, DEFAULT_CIDR, "local", DEFAULT_VPC
    )
    internet = Route(
        f"{DEFAULT_ROUTE_TABLE}.internet",
        DEFAULT_ROUTE_TABLE,
        IPv4Network("0.0.0.0/0"),
        "igw",
        DEFAULT_IGW,
        source,
    )
    state.route_tables[DEFAULT_ROUTE_TABLE] = RouteTableDraft(
        DEFAULT_ROUTE_TABLE, DEFAULT_VPC, source, [local, internet]
    )
    _register(state, DEFAULT_ROUTE_TABLE, "table")
    # The main route table of the default VPC: every default subnet uses it.
    for az in region_azs(state.region):
        state.associations[subnet_id(az)] = Link(DEFAULT_ROUTE_TABLE, DEFAULT_ROUTE_TABLE, None)
    return DEFAULT_VPC


def default_subnet(state: BuildState, needed_by: str, az: str | None) -> str:
    """The default subnet of `az` (the first AZ when None); BadInput for an AZ without one."""
    ensure(state, needed_by)
    azs = region_azs(state.region)
    chosen = az or azs[0]
    if chosen not in azs:
        raise BadInput(
            f"the default VPC has no subnet in {chosen}: its default subnets are in "
            f"{', '.join(azs)}",
            hint="use one of those AZs, or give a SubnetId",
        )
    return subnet_id(chosen)


def default_subnets(state: BuildState, needed_by: str, azs: list[str] | None) -> list[str]:
    """The default subnets of the AZs listed (every AZ when None), in that order."""
    if azs is None:
        ensure(state, needed_by)
        return [subnet_id(az) for az in region_azs(state.region)]
    return [default_subnet(state, needed_by, az) for az in azs]


# --- Seeing the need up front ------------------------------------------------------------


def _has(raw: Any, key: str) -> bool:
    return isinstance(raw, dict) and key in raw


def _instance_wants(raw: Any) -> bool:
    if _has(raw, "SubnetId"):
        return False
    nics = raw.get("NetworkInterfaces") if isinstance(raw, dict) else None
    if isinstance(nics, list) and any(
        _has(n, "SubnetId") or _has(n, "NetworkInterfaceId") for n in nics
    ):
        return False
    return not isinstance(nics, dict)  # an intrinsic (Fn::If ...): decided once resolved


def _lb_wants(raw: Any) -> bool:
    return not (_has(raw, "Subnets") or _has(raw, "SubnetMappings"))


# What, in a resource's raw properties, shows it will need the default VPC. A value hidden
# behind a condition (Fn::If with AWS::NoValue) is caught when the resource is built.
WANTS: dict[str, Any] = {
    "AWS::EC2::Instance": _instance_wants,
    "AWS::EC2::SecurityGroup": lambda raw: not _has(raw, "VpcId"),
    "AWS::ElasticLoadBalancingV2::LoadBalancer": _lb_wants,
}


def make_if_wanted(state: BuildState, resources: Iterable[tuple[str, str, Any]]) -> None:
    """Make the default VPC before anything is built when a resource (logical id, type name,
    raw properties) clearly needs it, so that it comes first and exists for every builder."""
    for lid, type_name, raw in resources:
        wants = WANTS.get(type_name)
        if wants is not None and wants(raw):
            try:
                ensure(state, lid)
            except BadInput as err:
                raise BadInput(err.message, logical_id=lid, hint=err.hint) from None
            return


def overlap_errors(state: BuildState) -> list[BadInput]:
    """VPCs of the template that overlap the default VPC (the lab routes VPCs by address)."""
    if not state.default_vpc_ids:
        return []
    errors = []
    for vpc in state.vpcs.values():
        if vpc.logical_id != DEFAULT_VPC and vpc.cidr.overlaps(DEFAULT_CIDR):
            errors.append(
                BadInput(
                    f"VPC CIDR block {vpc.cidr} overlaps the default VPC's {DEFAULT_CIDR}, "
                    f"which the lab makes because {state.default_vpc_for} uses it; the lab "
                    "routes between VPCs by address",
                    line=vpc.source.line if vpc.source else None,
                    logical_id=vpc.logical_id,
                    hint="give this VPC another block, such as 10.0.0.0/16",
                )
            )
    return errors
