"""AWS::EC2 types: VPC, Subnet, InternetGateway, VPCGatewayAttachment, RouteTable, Route,
SubnetRouteTableAssociation and Instance (VPC endpoints are in gwlbe.py; Elastic IPs in
addresses.py; NAT gateways in nat_gateways.py; network interfaces, and an instance's
interfaces, in network_interfaces.py; the default VPC in default_vpc.py)."""

from __future__ import annotations

import re
from ipaddress import IPv4Network
from typing import Any

from testbed.model import routing
from testbed.model.elbv2_types import EXTRAS_KEY as ELBV2
from testbed.model.resources import group_refs, peering
from testbed.model.resources.base import (
    ResourceContext,
    ResourceType,
    prop,
    ref,
    user_data_text,
)
from testbed.model.resources.registry import register
from testbed.model.state import BuildState, InstanceDraft, Link, RouteTableDraft, SubnetDraft
from testbed.model.types import (
    INTERNET_CIDR,
    PUBLIC_POOL,
    IgnoredProperty,
    InertResource,
    Route,
    Vpc,
    frozen_map,
)

VPC = "AWS::EC2::VPC"
SUBNET = "AWS::EC2::Subnet"
IGW = "AWS::EC2::InternetGateway"
ATTACHMENT = "AWS::EC2::VPCGatewayAttachment"
ROUTE_TABLE = "AWS::EC2::RouteTable"
ROUTE = "AWS::EC2::Route"
ASSOCIATION = "AWS::EC2::SubnetRouteTableAssociation"
INSTANCE = "AWS::EC2::Instance"
VPC_ENDPOINT = "AWS::EC2::VPCEndpoint"  # built by gwlbe.py
NAT_GATEWAY = "AWS::EC2::NatGateway"  # built by nat_gateways.py
EIP = "AWS::EC2::EIP"  # built by addresses.py
EIP_ASSOCIATION = "AWS::EC2::EIPAssociation"  # built by addresses.py
NETWORK_INTERFACE = "AWS::EC2::NetworkInterface"  # built by network_interfaces.py
PEERING = peering.PEERING  # built by peering.py
# Reading an instance's public address waits for these: they decide whether it has one.
ROUTING = (ROUTE, ASSOCIATION, ATTACHMENT)
PUBLIC_ADDRESSING = (*ROUTING, EIP, EIP_ASSOCIATION)

AZ_NAME = re.compile(r"^([a-z]{2}(?:-[a-z]+)+-\d+)([a-z])$")
MIN_PREFIX, MAX_PREFIX = 16, 28  # what AWS allows for VPC and subnet blocks
NOT_YET = "is not supported by the lab yet"


def _check_prefix(ctx: ResourceContext, cidr: IPv4Network, what: str) -> None:
    if not MIN_PREFIX <= cidr.prefixlen <= MAX_PREFIX:
        raise ctx.fail(
            f"{what} {cidr} must be between /{MIN_PREFIX} and /{MAX_PREFIX}", prop="CidrBlock"
        )


# --- VPC -------------------------------------------------------------------------------------


def _build_vpc(ctx: ResourceContext) -> None:
    cidr: IPv4Network = ctx.props["CidrBlock"]
    _check_prefix(ctx, cidr, "VPC CIDR block")
    for outside in (INTERNET_CIDR, PUBLIC_POOL):
        if cidr.overlaps(outside):
            raise ctx.fail(
                f"VPC CIDR block {cidr} overlaps {outside}, which the lab uses for the internet",
                prop="CidrBlock",
                hint="use a private range such as 10.0.0.0/16",
            )
    ctx.state.vpcs[ctx.logical_id] = Vpc(ctx.logical_id, cidr, ctx.source)


register(
    ResourceType(
        VPC,
        _build_vpc,
        ref_prefix="vpc-",
        properties={
            "CidrBlock": prop("cidr", required=True),
            "EnableDnsSupport": prop("boolean"),
            "EnableDnsHostnames": prop("boolean"),
        },
        ignored=frozenset({"InstanceTenancy", "Ipv4IpamPoolId", "Ipv4NetmaskLength"}),
        attributes={
            "CidrBlock": lambda s, lid: str(s.vpcs[lid].cidr),
            "VpcId": lambda s, lid: s.physical("vpc-", lid),
            "DefaultSecurityGroup": lambda s, lid: group_refs.group_physical_id(
                s, group_refs.default_group_id(lid)
            ),
            "DefaultNetworkAcl": lambda s, lid: group_refs.acl_physical_id(
                s, group_refs.default_acl_id(lid)
            ),
            # The lab has no IPv6 packets; a template that adds an Amazon-provided IPv6 block
            # (AWS::EC2::VPCCidrBlock, not emulated) carves it for its subnets: a documentation
            # block (RFC 3849) per VPC keeps those expressions resolvable.
            "Ipv6CidrBlocks": lambda s, lid: [_ipv6_block(s, lid)],
            "CidrBlockAssociations": lambda s, lid: [f"vpc-cidr-assoc-{lid}"],
        },
    )
)


def _ipv6_block(state: BuildState, vpc_id: str) -> str:
    index = list(state.vpcs).index(vpc_id) if vpc_id in state.vpcs else 0
    return f"2001:db8:{index % 0x10000:x}00::/56"


# --- Subnet ----------------------------------------------------------------------------------


def _build_subnet(ctx: ResourceContext) -> None:
    state, lid = ctx.state, ctx.logical_id
    vpc = state.vpcs[ctx.props["VpcId"]]
    cidr: IPv4Network = ctx.props["CidrBlock"]
    _check_prefix(ctx, cidr, "subnet CIDR block")
    if not cidr.subnet_of(vpc.cidr):
        raise ctx.fail(
            f"subnet CIDR block {cidr} is not inside {vpc.logical_id}'s {vpc.cidr}",
            prop="CidrBlock",
        )
    for other in state.subnets.values():
        if other.vpc_id == vpc.logical_id and other.cidr.overlaps(cidr):
            raise ctx.fail(
                f"subnet CIDR block {cidr} overlaps {other.logical_id}'s "
                f"{other.cidr} in {vpc.logical_id}",
                prop="CidrBlock",
                hint="give every subnet of a VPC its own block (Fn::Cidr helps)",
            )
    az = ctx.props.get("AvailabilityZone") or state.region + "a"
    match = AZ_NAME.match(az)
    if not match:
        raise ctx.fail(
            f"AvailabilityZone {az!r} is not an availability zone name such as {state.region}a",
            prop="AvailabilityZone",
        )
    if state.az_region is None:
        state.az_region = (match.group(1), lid)
    elif state.az_region[0] != match.group(1):
        region, first = state.az_region
        raise ctx.fail(
            f"AvailabilityZone {az} is in region {match.group(1)}, but subnet "
            f"{first} is in {region}; all AZs of a stack must be in one region",
            prop="AvailabilityZone",
            hint="use !Select [N, !GetAZs ''] for AZ names",
        )
    state.subnets[lid] = SubnetDraft(
        lid, vpc.logical_id, az, cidr, ctx.props.get("MapPublicIpOnLaunch", False), ctx.source
    )
    state.addresses.add_subnet(lid, cidr)


def _subnet_attr(field: str):
    return lambda s, lid: str(getattr(s.subnets[lid], field))


register(
    ResourceType(
        SUBNET,
        _build_subnet,
        ref_prefix="subnet-",
        properties={
            "VpcId": ref(VPC, required=True),
            "CidrBlock": prop("cidr", required=True),
            "AvailabilityZone": prop("string"),
            "MapPublicIpOnLaunch": prop("boolean"),
        },
        ignored=frozenset(
            {
                "AssignIpv6AddressOnCreation",
                "EnableDns64",
                "EnableLniAtDeviceIndex",
                "Ipv6Native",
                "Ipv6CidrBlock",
                "Ipv4IpamPoolId",
                "Ipv4NetmaskLength",
                "Ipv6IpamPoolId",
                "Ipv6NetmaskLength",
                "MapCustomerOwnedIpOnLaunch",
                "OutpostArn",
                "PrivateDnsNameOptionsOnLaunch",
                "CustomerOwnedIpv4Pool",
            }
        ),
        unsupported={"AvailabilityZoneId": f"AvailabilityZoneId {NOT_YET}; use AvailabilityZone"},
        attributes={
            "AvailabilityZone": _subnet_attr("az"),
            "CidrBlock": _subnet_attr("cidr"),
            "SubnetId": lambda s, lid: s.physical("subnet-", lid),
            "VpcId": lambda s, lid: s.physical("vpc-", s.subnets[lid].vpc_id),
        },
    )
)


# --- Internet gateway and its attachment -----------------------------------------------------


def _build_igw(ctx: ResourceContext) -> None:
    ctx.state.internet_gateways[ctx.logical_id] = ctx.source


register(
    ResourceType(
        IGW,
        _build_igw,
        ref_prefix="igw-",
        attributes={"InternetGatewayId": lambda s, lid: s.physical("igw-", lid)},
    )
)


def _build_attachment(ctx: ResourceContext) -> None:
    state = ctx.state
    vpc_id, igw_id = ctx.props["VpcId"], ctx.props["InternetGatewayId"]
    current = state.attachments.get(igw_id)
    if current is not None:
        raise ctx.fail(
            f"internet gateway {igw_id} is already attached to {current.to} by "
            f"{current.by}; a gateway attaches to one VPC",
            prop="InternetGatewayId",
        )
    for gateway, link in state.attachments.items():
        if link.to == vpc_id:
            raise ctx.fail(
                f"{vpc_id} already has internet gateway {gateway} (attached by "
                f"{link.by}); a VPC has at most one",
                prop="VpcId",
            )
    state.attachments[igw_id] = Link(ctx.logical_id, vpc_id, ctx.line())


register(
    ResourceType(
        ATTACHMENT,
        _build_attachment,
        properties={"VpcId": ref(VPC, required=True), "InternetGatewayId": ref(IGW, required=True)},
        unsupported={"VpnGatewayId": f"VPN gateways are not supported; {NOT_YET}"},
    )
)


# --- Route tables, routes, associations ------------------------------------------------------


def _build_route_table(ctx: ResourceContext) -> None:
    lid = ctx.logical_id
    vpc = ctx.state.vpcs[ctx.props["VpcId"]]
    local = Route(f"{lid}.local", lid, vpc.cidr, "local", vpc.logical_id, ctx.source)
    ctx.state.route_tables[lid] = RouteTableDraft(lid, vpc.logical_id, ctx.source, [local])


register(
    ResourceType(
        ROUTE_TABLE,
        _build_route_table,
        ref_prefix="rtb-",
        properties={"VpcId": ref(VPC, required=True)},
        attributes={"RouteTableId": lambda s, lid: s.physical("rtb-", lid)},
    )
)

ROUTE_TARGETS_NOT_YET = {
    "InstanceId": f"instance targets {NOT_YET}",
    "NetworkInterfaceId": f"network interface targets {NOT_YET}",
    "DestinationPrefixListId": f"prefix list destinations {NOT_YET}",
}
# Routes the lab accepts without carrying their packets: IPv6 ones (the lab has no IPv6) and
# those to gateways that are accepted but not emulated (catalog.py). Reported like the
# not-emulated resources, with a "not emulated" event at up.
ROUTES_NOT_EMULATED = {
    "DestinationIpv6CidrBlock": "IPv6 routes (the lab has no IPv6)",
    "EgressOnlyInternetGatewayId": "routes to egress-only internet gateways (IPv6)",
    "TransitGatewayId": "routes to transit gateways",
    "CarrierGatewayId": "routes to carrier gateways",
    "LocalGatewayId": "routes to local gateways",
    "CoreNetworkArn": "routes to Cloud WAN core networks",
}


ROUTE_TARGETS = {
    "GatewayId": "igw",
    "VpcEndpointId": "vpce",
    "NatGatewayId": "nat",
    "VpcPeeringConnectionId": "pcx",
}


def _route_not_emulated(ctx: ResourceContext) -> bool:
    """A route the lab accepts without packets: recorded as not emulated; True if so."""
    why = [note for key, note in ROUTES_NOT_EMULATED.items() if key in ctx.props]
    if not why:
        return False
    if "DestinationIpv6CidrBlock" in ctx.props and "DestinationCidrBlock" in ctx.props:
        raise ctx.fail(
            "a route has one destination, not DestinationCidrBlock and DestinationIpv6CidrBlock",
            prop="DestinationIpv6CidrBlock",
        )
    _record_route_not_emulated(ctx, f"{why[0]} carry no packets in the lab")
    return True


def _record_route_not_emulated(ctx: ResourceContext, why: str) -> None:
    """The route as a not-emulated resource (its "not emulated" event at up), not in its table."""
    ctx.state.inert[ctx.logical_id] = InertResource(
        ctx.logical_id,
        ROUTE,
        ctx.logical_id,
        frozen_map({}),
        "not-emulated",
        f"not emulated: {why}",
        source=ctx.source,
    )


def _build_route(ctx: ResourceContext) -> None:
    state, lid = ctx.state, ctx.logical_id
    table = state.route_tables[ctx.props["RouteTableId"]]
    if _route_not_emulated(ctx):
        return
    if "DestinationCidrBlock" not in ctx.props:
        raise ctx.fail(
            "the route has no destination",
            hint="add DestinationCidrBlock: 0.0.0.0/0 (or another IPv4 block)",
        )
    destination: IPv4Network = ctx.props["DestinationCidrBlock"]
    targets = [key for key in ROUTE_TARGETS if key in ctx.props]
    if not targets:
        raise ctx.fail(
            "the route has no target",
            hint="add GatewayId: !Ref <an internet gateway>, NatGatewayId: !Ref <a NAT "
            "gateway>, VpcEndpointId: !Ref <a GWLB endpoint> or VpcPeeringConnectionId: "
            "!Ref <a VPC peering connection>",
        )
    if len(targets) > 1:
        raise ctx.fail(f"a route has one target, not {' and '.join(targets)}", prop=targets[1])
    for existing in table.routes:
        if existing.destination == destination:
            other = "the local route" if existing.target_kind == "local" else existing.logical_id
            raise ctx.fail(
                f"route table {table.logical_id} already has a route to {destination} ({other})",
                prop="DestinationCidrBlock",
            )
    key = targets[0]
    target_id = ctx.props[key]
    if key == "VpcEndpointId" and target_id in state.inert:
        # An Interface or Gateway endpoint reaches AWS services, which are not in the lab.
        _record_route_not_emulated(
            ctx,
            f"routes to {target_id}, an endpoint to AWS services, carry no packets in the lab",
        )
        return
    if key == "VpcEndpointId":
        endpoint = state.extras[ELBV2]["endpoints"][target_id]
        if endpoint.vpc_id != table.vpc_id:
            raise ctx.fail(
                f"GWLB endpoint {target_id} is in {endpoint.vpc_id} but route table "
                f"{table.logical_id} belongs to {table.vpc_id}",
                prop=key,
                hint="route to an endpoint in the route table's VPC",
            )
    if key == "NatGatewayId":
        nat_vpc = state.subnets[state.nat_gateways[target_id].subnet_id].vpc_id
        if nat_vpc != table.vpc_id:
            raise ctx.fail(
                f"NAT gateway {target_id} is in {nat_vpc} but route table "
                f"{table.logical_id} belongs to {table.vpc_id}",
                prop=key,
                hint="route to a NAT gateway in the route table's VPC",
            )
    if key == "VpcPeeringConnectionId":
        _check_peering_route(ctx, table, destination, target_id)
    table.routes.append(
        Route(lid, table.logical_id, destination, ROUTE_TARGETS[key], target_id, ctx.source)
    )
    state.route_lines[lid] = ctx.line(key)


register(
    ResourceType(
        ROUTE,
        _build_route,
        properties={
            "RouteTableId": ref(ROUTE_TABLE, required=True),
            "DestinationCidrBlock": prop("cidr"),
            "GatewayId": ref(IGW),
            "VpcEndpointId": ref(VPC_ENDPOINT),
            "NatGatewayId": ref(NAT_GATEWAY),
            "VpcPeeringConnectionId": ref(PEERING),
            **dict.fromkeys(ROUTES_NOT_EMULATED, prop("any")),
        },
        unsupported=ROUTE_TARGETS_NOT_YET,
    )
)


def _check_peering_route(
    ctx: ResourceContext, table: RouteTableDraft, destination: IPv4Network, pcx_id: str
) -> None:
    """A route to a peering connection: in a table of one of its VPCs, not into its own VPC."""
    connection = peering.connections(ctx.state)[pcx_id]
    peer = connection.other(table.vpc_id)
    if peer is None:
        raise ctx.fail(
            f"VPC peering connection {pcx_id} joins {connection.vpc_id} and "
            f"{connection.peer_vpc_id}, but route table {table.logical_id} belongs to "
            f"{table.vpc_id}",
            prop="VpcPeeringConnectionId",
            hint="route to a peering connection of the route table's VPC",
        )
    own = ctx.state.vpcs[table.vpc_id].cidr
    if destination.overlaps(own) and destination.prefixlen >= own.prefixlen:
        raise ctx.fail(
            f"the route to {destination} is inside {table.vpc_id}'s own block {own}; the local "
            "route keeps that traffic in the VPC",
            prop="DestinationCidrBlock",
            hint=f"route the peer's block ({ctx.state.vpcs[peer].cidr}) to {pcx_id}",
        )


def _build_association(ctx: ResourceContext) -> None:
    state = ctx.state
    subnet_id, table_id = ctx.props["SubnetId"], ctx.props["RouteTableId"]
    current = state.associations.get(subnet_id)
    if current is not None:
        raise ctx.fail(
            f"subnet {subnet_id} is already associated with route table "
            f"{current.to} by {current.by}; a subnet has one route table",
            prop="SubnetId",
        )
    subnet, table = state.subnets[subnet_id], state.route_tables[table_id]
    if subnet.vpc_id != table.vpc_id:
        raise ctx.fail(
            f"subnet {subnet_id} is in {subnet.vpc_id} but route table {table_id} "
            f"belongs to {table.vpc_id}",
            prop="RouteTableId",
        )
    state.associations[subnet_id] = Link(ctx.logical_id, table_id, ctx.line())


register(
    ResourceType(
        ASSOCIATION,
        _build_association,
        properties={
            "SubnetId": ref(SUBNET, required=True),
            "RouteTableId": ref(ROUTE_TABLE, required=True),
        },
    )
)


# --- Instance --------------------------------------------------------------------------------

INSTANCE_IGNORED = frozenset(
    {
        "KeyName",
        "IamInstanceProfile",
        "Monitoring",
        "EbsOptimized",
        "BlockDeviceMappings",
        "Tenancy",
        "CreditSpecification",
        "DisableApiTermination",
        "InstanceInitiatedShutdownBehavior",
        "LaunchTemplate",
        "MetadataOptions",
        "PlacementGroupName",
        "HibernationOptions",
        "EnclaveOptions",
        "CpuOptions",
        "Volumes",
        "KernelId",
        "RamdiskId",
        "PropagateTagsToVolumeOnCreation",
        "HostId",
        "HostResourceGroupArn",
        "Affinity",
        "ElasticGpuSpecifications",
        "ElasticInferenceAccelerators",
        "LicenseSpecifications",
        "SsmAssociations",
        "PrivateDnsNameOptions",
        "Ipv6AddressCount",
        "Ipv6Addresses",
        "AdditionalInfo",
    }
)


# Without meaning for the lab's packets (listed as ignored), but kept: the instance metadata
# service (testbed.lab.imds) tells them, as EC2's does.
DESCRIBED_ONLY = ("ImageId", "InstanceType")


def _build_instance(ctx: ResourceContext) -> None:
    # instance_interfaces imports this module (types, constants): import it here.
    from testbed.model.resources.instance_interfaces import instance_primary_interface

    state, lid, props = ctx.state, ctx.logical_id, ctx.props
    eth0 = instance_primary_interface(ctx)
    vpc_id = state.subnets[eth0.subnet_id].vpc_id
    # Top-level SecurityGroupIds / SecurityGroups (checked even with NetworkInterfaces, which
    # refuse them); with NetworkInterfaces the groups are eth0's GroupSet (None: default).
    top_groups = group_refs.instance_groups(ctx, vpc_id)
    groups = eth0.security_groups if "NetworkInterfaces" in props else top_groups
    user_data = user_data_text(props["UserData"]) if "UserData" in props else None
    state.instances[lid] = InstanceDraft(
        lid,
        eth0.subnet_id,
        eth0.private_ip,
        eth0.associate_public_ip,
        eth0.associate_line,
        ctx.role,
        user_data,
        ctx.source,
        secondary_ips=eth0.secondary_ips,
        security_groups=groups,
        source_dest_check=props.get("SourceDestCheck", eth0.source_dest_check),
        primary_interface=eth0.interface_id,
        launched_interfaces=eth0.launched,
        image_id=props.get("ImageId"),
        instance_type=props.get("InstanceType"),
    )
    for key in DESCRIBED_ONLY:
        if key in props:
            state.ignored.append(IgnoredProperty(lid, key))
    state.public_claims[lid] = routing.claim_instance_public_ip


def _set_aside_instance_ip(logical_id: str, raw: Any, state: BuildState) -> None:
    # instance_interfaces imports this module (types, constants): import it here.
    from testbed.model.resources.instance_interfaces import set_aside_instance_ips

    set_aside_instance_ips(logical_id, raw, state)


def _private_dns(state: BuildState, lid: str) -> str:
    name = "ip-" + str(state.instances[lid].private_ip).replace(".", "-")
    return (
        f"{name}.ec2.internal"
        if state.region == "us-east-1"
        else f"{name}.{state.region}.compute.internal"
    )


def _public_dns(state: BuildState, lid: str) -> str:
    name = "ec2-" + str(routing.public_ip(state, lid)).replace(".", "-")
    return (
        f"{name}.compute-1.amazonaws.com"
        if state.region == "us-east-1"
        else f"{name}.{state.region}.compute.amazonaws.com"
    )


register(
    ResourceType(
        INSTANCE,
        _build_instance,
        ref_prefix="i-",
        accepts_role=True,
        properties={
            "SubnetId": ref(SUBNET),
            "PrivateIpAddress": prop("ip"),
            "UserData": prop("string"),
            "NetworkInterfaces": prop("list"),
            "AvailabilityZone": prop("string"),
            "SecurityGroupIds": prop("list"),
            "SecurityGroups": prop("list"),
            "SourceDestCheck": prop("boolean"),
            "ImageId": prop("string"),
            "InstanceType": prop("string"),
        },
        ignored=INSTANCE_IGNORED,
        attributes={
            "PrivateIp": lambda s, lid: str(s.instances[lid].private_ip),
            "PublicIp": lambda s, lid: str(routing.public_ip(s, lid)),
            "AvailabilityZone": lambda s, lid: s.subnets[s.instances[lid].subnet_id].az,
            "PrivateDnsName": _private_dns,
            "PublicDnsName": _public_dns,
            "InstanceId": lambda s, lid: s.physical("i-", lid),
        },
        attribute_waits_for={"PublicIp": PUBLIC_ADDRESSING, "PublicDnsName": PUBLIC_ADDRESSING},
        prepare=_set_aside_instance_ip,
    )
)
