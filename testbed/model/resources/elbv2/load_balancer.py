"""AWS::ElasticLoadBalancingV2::LoadBalancer: type, scheme, one node per AZ, attributes.

Each node takes a private address in its subnet like an instance (lowest free, in creation
order; SubnetMappings may fix it). Internet-facing nodes also get a public address once the
routing is final, from the same pool and in the same creation order as instances, unless
their SubnetMapping gives an Elastic IP (AllocationId, internet-facing NLB only).
A load balancer without Subnets or SubnetMappings goes into the default VPC: every default
subnet, or those of the AZs listed in AvailabilityZones (a lab extension: ELBv2 has no such
property on AWS, where Subnets or SubnetMappings are needed).
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, replace
from ipaddress import IPv4Address
from typing import Any

from testbed.errors import BadInput
from testbed.model import routing
from testbed.model.elb_defaults import APPLICATION, DEFAULTS, GATEWAY, LB_TYPES, NETWORK
from testbed.model.elbv2_types import LbNode, LoadBalancer
from testbed.model.resources import default_vpc, group_refs
from testbed.model.resources.addresses import allocation_id, associate
from testbed.model.resources.base import ResourceContext, ResourceType, prop, ref
from testbed.model.resources.ec2 import ROUTING, SUBNET
from testbed.model.resources.elbv2.attributes import read_attributes
from testbed.model.resources.elbv2.common import (
    LOAD_BALANCER,
    NOT_IN_LAB,
    NOT_YET,
    a_load_balancer,
    arn,
    check_name,
    choice,
    convert,
    digest,
    family,
    items,
    nested,
    text_list,
    unique_name,
)
from testbed.model.resources.registry import register
from testbed.model.state import BuildState
from testbed.model.types import frozen_map

SCHEMES = ("internet-facing", "internal")
ARN_KIND = {APPLICATION: "app", NETWORK: "net", GATEWAY: "gwy"}
# AWS's published hosted zone ids of a few regions; elsewhere the lab makes one up.
HOSTED_ZONES = {
    APPLICATION: {
        "us-east-1": "Z35SXDOTRQ7X7K",
        "us-east-2": "Z3AADJGX6KTTL2",
        "us-west-1": "Z368ELLRRE2KJ0",
        "us-west-2": "Z1H1FL5HABSF5",
        "eu-west-1": "Z32O12XQLNTSW2",
        "eu-central-1": "Z215JYRZR1TBD5",
    },
    NETWORK: {
        "us-east-1": "Z26RNL4JYFTOTI",
        "us-east-2": "ZLMOA37VPKANP",
        "us-west-1": "Z24FKFUX50B4VW",
        "us-west-2": "Z18D5FSROUN65G",
        "eu-west-1": "Z2IFOLAFXWLO4F",
        "eu-central-1": "Z3F0SRJ5LGBH90",
    },
}
MAPPING_PROPERTIES = {
    "SubnetId": ref(SUBNET, required=True),
    "PrivateIPv4Address": prop("ip"),
    "AllocationId": prop("string"),
}
MAPPING_UNSUPPORTED = {
    "IPv6Address": f"IPv6 is {NOT_IN_LAB}",
    "SourceNatIpv6Prefix": f"IPv6 is {NOT_IN_LAB}",
}


def node_name(logical_id: str, az: str) -> str:
    """The lab host name of a node: MyNLB-1a for MyNLB in us-east-1a."""
    return f"{logical_id}-{az[-2:]}"


@dataclass(frozen=True)
class _Place:
    """Where one node goes: its subnet, and what its SubnetMapping asks for."""

    subnet_id: str
    private_ip: IPv4Address | None
    line: int | None
    eip: str | None = None  # logical id of the Elastic IP of AllocationId
    eip_line: int | None = None


def _default_vpc_subnets(ctx: ResourceContext) -> list[_Place]:
    azs = None
    if "AvailabilityZones" in ctx.props:
        azs = text_list(ctx, ctx.props["AvailabilityZones"], "AvailabilityZones", ctx.line())
        if not azs:
            raise ctx.fail("AvailabilityZones is empty", prop="AvailabilityZones")
    line = ctx.line("AvailabilityZones")
    try:
        subnets = default_vpc.default_subnets(ctx.state, ctx.logical_id, azs)
    except BadInput as err:
        raise ctx.fail(err.message, line=line, hint=err.hint) from None
    return [_Place(subnet_id, None, line) for subnet_id in subnets]


def _subnets(ctx: ResourceContext) -> list[_Place]:
    """Where the nodes go: Subnets, SubnetMappings, or the default VPC."""
    has = [key for key in ("Subnets", "SubnetMappings") if key in ctx.props]
    if len(has) > 1:
        raise ctx.fail(
            "give the load balancer's subnets in Subnets or in SubnetMappings, not both",
            prop=has[-1],
        )
    if has and "AvailabilityZones" in ctx.props:
        raise ctx.fail(
            f"AvailabilityZones picks default VPC subnets; give it or {has[0]}, not both",
            prop="AvailabilityZones",
        )
    if not has:
        return _default_vpc_subnets(ctx)
    found: list[_Place] = []
    for item, line, where in items(ctx, has[0]):
        if has[0] == "Subnets":
            found.append(_Place(convert(ctx, ref(SUBNET), item, where, line), None, line))
            continue
        values, lines = nested(
            ctx, item, where, line, MAPPING_PROPERTIES, unsupported=MAPPING_UNSUPPORTED
        )
        eip = None
        if "AllocationId" in values:
            eip = allocation_id(
                ctx, values["AllocationId"], f"{where}.AllocationId", lines["AllocationId"]
            )
        found.append(
            _Place(
                values["SubnetId"],
                values.get("PrivateIPv4Address"),
                lines.get("PrivateIPv4Address", line),
                eip,
                lines.get("AllocationId", line),
            )
        )
    if not found:
        raise ctx.fail(f"{has[0]} is empty; a load balancer needs a subnet", prop=has[0])
    return found


def _check_subnets(ctx: ResourceContext, lb_type: str, subnets: list[_Place]) -> str:
    """The VPC of the subnets, after AWS's rules: one VPC, one subnet per AZ."""
    state = ctx.state
    first = state.subnets[subnets[0].subnet_id]
    by_az: dict[str, str] = {}
    for place in subnets:
        subnet_id, line = place.subnet_id, place.line
        subnet = state.subnets[subnet_id]
        if subnet.vpc_id != first.vpc_id:
            raise ctx.fail(
                f"subnet {subnet_id} is in {subnet.vpc_id} but subnet "
                f"{first.logical_id} is in {first.vpc_id}; a load balancer's "
                "subnets must be in one VPC",
                line=line,
            )
        if subnet.az in by_az:
            other = by_az[subnet.az]
            raise ctx.fail(
                f"subnets {other} and {subnet_id} are both in {subnet.az}; a load "
                "balancer takes at most one subnet per availability zone",
                line=line,
                hint=f"keep one of {other} and {subnet_id}",
            )
        by_az[subnet.az] = subnet_id
    if lb_type == APPLICATION and len(by_az) < 2:
        raise ctx.fail(
            "an application load balancer needs subnets in at least two "
            f"availability zones, not only {', '.join(by_az)}",
            line=subnets[0].line,
            hint="add a subnet of another AZ",
        )
    return first.vpc_id


def _check_allocation(
    ctx: ResourceContext, lb_type: str, scheme: str | None, place: _Place, node: str
) -> None:
    """An Elastic IP in a SubnetMapping: internet-facing NLBs only; associated with the node."""
    if place.eip is None:
        return
    if lb_type != NETWORK or scheme != "internet-facing":
        kind = "internal" if lb_type == NETWORK else a_load_balancer(lb_type)
        raise ctx.fail(
            "AllocationId (an Elastic IP) is only for internet-facing network load balancers; "
            f"{ctx.logical_id} is {kind}",
            line=place.eip_line,
            hint="leave AllocationId out",
        )
    associate(
        ctx, place.eip, node, f"node {node} of {ctx.logical_id}", place.eip_line, lb_node=node
    )


def _nodes(
    ctx: ResourceContext, lb_type: str, scheme: str | None, subnets: list[_Place]
) -> tuple[LbNode, ...]:
    state, lid = ctx.state, ctx.logical_id
    nodes = []
    for place in subnets:
        subnet_id, requested, line = place.subnet_id, place.private_ip, place.line
        subnet = state.subnets[subnet_id]
        if requested is not None and (lb_type != NETWORK or scheme != "internal"):
            kind = "internet-facing" if lb_type == NETWORK else a_load_balancer(lb_type)
            raise ctx.fail(
                f"PrivateIPv4Address is only for internal network load balancers; {lid} is {kind}",
                line=line,
                hint="leave it out: the node gets the lowest free address",
            )
        name = node_name(lid, subnet.az)
        try:
            ip = state.addresses.private(subnet_id, name, requested)
        except BadInput as err:
            raise ctx.fail(err.message, line=line, hint=err.hint) from None
        _check_allocation(ctx, lb_type, scheme, place, name)
        nodes.append(LbNode(subnet.az, subnet_id, name, ip, None))
    return tuple(nodes)


def _dns_name(state: BuildState, lid: str, name: str, lb_type: str, scheme: str | None) -> str:
    prefix = "internal-" if scheme == "internal" else ""
    tag = digest(state, lid, "dns")
    if lb_type == APPLICATION:
        number = int(tag, 16) % 10**10
        return f"{prefix}{name}-{number:010d}.{state.region}.elb.amazonaws.com"
    return f"{prefix}{name}-{tag[:16]}.elb.{state.region}.amazonaws.com"


def _build(ctx: ResourceContext) -> None:
    state, lid, props = ctx.state, ctx.logical_id, ctx.props
    lb_type = choice(ctx, props.get("Type", APPLICATION), LB_TYPES, "Type", ctx.line("Type"))
    scheme: str | None = None
    if lb_type == GATEWAY:
        if "Scheme" in props:
            raise ctx.fail(
                "a gateway load balancer has no Scheme", prop="Scheme", hint="leave Scheme out"
            )
    else:
        scheme = choice(
            ctx, props.get("Scheme", "internet-facing"), SCHEMES, "Scheme", ctx.line("Scheme")
        )
    address_type = props.get("IpAddressType", "ipv4")
    if address_type.startswith("dualstack"):
        raise ctx.fail(
            f"IpAddressType {address_type} is not supported: the lab is IPv4 only",
            prop="IpAddressType",
            hint="use ipv4 (the default)",
        )
    choice(ctx, address_type, ("ipv4",), "IpAddressType", ctx.line("IpAddressType"))
    name = check_name(ctx, "load balancer")
    unique_name(ctx, name, "load_balancers", "load balancer")
    subnets = _subnets(ctx)
    vpc_id = _check_subnets(ctx, lb_type, subnets)
    attributes, lines = read_attributes(
        ctx,
        "LoadBalancerAttributes",
        DEFAULTS[lb_type].lb_attributes,
        f"{lb_type} load balancer",
        "lb_attributes",
    )
    cross_zone = attributes["load_balancing.cross_zone.enabled"] == "true"
    if lb_type == APPLICATION and not cross_zone:
        raise ctx.fail(
            "an application load balancer always balances across zones: "
            "load_balancing.cross_zone.enabled cannot be false",
            line=lines["load_balancing.cross_zone.enabled"],
            hint="turn it off per target group (TargetGroupAttributes)",
        )
    nodes = _nodes(ctx, lb_type, scheme, subnets)
    groups = _security_groups(ctx, lb_type, vpc_id)
    tag = digest(state, lid, "arn")[:16]
    family(state)["load_balancers"][lid] = LoadBalancer(
        lid,
        name,
        lb_type,
        scheme,
        vpc_id,
        tuple(place.subnet_id for place in subnets),
        nodes,
        frozen_map(attributes),
        cross_zone,
        _dns_name(state, lid, name, lb_type, scheme),
        arn(state, f"loadbalancer/{ARN_KIND[lb_type]}/{name}/{tag}"),
        ctx.source,
        groups,
    )
    if scheme == "internet-facing":
        where = next((k for k in ("Subnets", "SubnetMappings") if k in props), "AvailabilityZones")
        state.public_claims[lid] = functools.partial(_claim_public_ips, line=ctx.line(where))


def _security_groups(ctx: ResourceContext, lb_type: str, vpc_id: str) -> tuple[str, ...] | None:
    """SecurityGroups: an ALB without any gets its VPC's default group, an NLB without any
    stays open (None), a gateway load balancer cannot have any (AWS refuses them)."""
    given: tuple[str, ...] = ()
    if "SecurityGroups" in ctx.props:
        at = ctx.line("SecurityGroups")
        if lb_type == GATEWAY:
            raise ctx.fail(
                "a gateway load balancer has no security groups",
                prop="SecurityGroups",
                hint="leave SecurityGroups out; give the appliances' instances groups instead",
            )
        given = tuple(
            dict.fromkeys(
                group_refs.group_list(ctx, ctx.props["SecurityGroups"], "SecurityGroups", at)
            )
        )
        group_refs.check_same_vpc(ctx, given, vpc_id, f"load balancer {ctx.logical_id}", at)
    if given:
        return given
    if lb_type == APPLICATION:
        return (group_refs.ensure_default_group(ctx.state, vpc_id).logical_id,)
    return None


def _claim_public_ips(state: BuildState, lid: str, *, line: int | None) -> None:
    """Check that an internet-facing LB's subnets are public; give its nodes public IPs."""
    lbs = family(state)["load_balancers"]
    nodes = []
    for node in lbs[lid].nodes:
        reason = routing.why_private(state, node.subnet_id)
        if reason is not None:
            raise BadInput(
                f"an internet-facing load balancer needs public subnets, but {reason}",
                line=line,
                logical_id=lid,
                hint="use subnets whose route table sends 0.0.0.0/0 to an attached "
                "internet gateway, or make the load balancer internal",
            )
        eip = state.eip_of.get(node.name)
        try:
            ip = (
                state.elastic_ips[eip].address
                if eip
                else state.addresses.public.allocate(node.name)
            )
        except BadInput as err:
            raise BadInput(err.message, line=line, logical_id=lid, hint=err.hint) from None
        nodes.append(replace(node, public_ip=ip))
    lbs[lid] = replace(lbs[lid], nodes=tuple(nodes))


def _set_aside_node_ips(logical_id: str, raw: Any, state: BuildState) -> None:
    # Literal PrivateIPv4Address with a literal !Ref subnet: keep it from auto allocation.
    mappings = raw.get("SubnetMappings") if isinstance(raw, dict) else None
    for mapping in mappings if isinstance(mappings, list) else ():
        if not isinstance(mapping, dict):
            continue
        subnet, ip = mapping.get("SubnetId"), mapping.get("PrivateIPv4Address")
        if isinstance(subnet, dict) and isinstance(subnet.get("Ref"), str) and isinstance(ip, str):
            with contextlib.suppress(ValueError):  # reported when the load balancer is built
                state.addresses.set_aside_private(
                    subnet["Ref"], IPv4Address(ip.strip()), logical_id
                )


def _lb(state: BuildState, lid: str) -> LoadBalancer:
    return family(state)["load_balancers"][lid]


def _hosted_zone(state: BuildState, lid: str) -> str:
    lb_type = _lb(state, lid).type
    known = HOSTED_ZONES.get(NETWORK if lb_type == GATEWAY else lb_type, {})
    made_up = "Z" + digest(state, f"{state.region}/{lb_type}", "zone")[:13].upper()
    return known.get(state.region, made_up)


def _public_ips(state: BuildState, lid: str) -> list[str]:
    routing.assign_public_ips(state, until=lid)
    lb = _lb(state, lid)
    if lb.scheme != "internet-facing":
        raise BadInput(
            f"{lid} is {'an internal' if lb.scheme else 'a gateway'} load "
            "balancer: its nodes have no public addresses",
            hint=f"use !GetAtt {lid}.NodePrivateIps",
        )
    return [str(n.public_ip) for n in lb.nodes]


register(
    ResourceType(
        LOAD_BALANCER,
        _build,
        properties={
            "Name": prop("string"),
            "Type": prop("string"),
            "Scheme": prop("string"),
            "Subnets": prop("list"),
            "SubnetMappings": prop("list"),
            "IpAddressType": prop("string"),
            "LoadBalancerAttributes": prop("list"),
            "SecurityGroups": prop("list"),
            "AvailabilityZones": prop("list"),
        },
        ignored=frozenset(
            {
                "MinimumLoadBalancerCapacity",
                "EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic",
                "EnablePrefixForIpv6SourceNat",
            }
        ),
        unsupported={
            "CustomerOwnedIpv4Pool": f"Outposts are {NOT_IN_LAB}",
            "IpamPools": f"IPAM pools are {NOT_YET}",
        },
        ref_value=lambda s, lid: _lb(s, lid).arn,
        attributes={
            "DNSName": lambda s, lid: _lb(s, lid).dns_name,
            "LoadBalancerArn": lambda s, lid: _lb(s, lid).arn,
            "LoadBalancerName": lambda s, lid: _lb(s, lid).name,
            "LoadBalancerFullName": lambda s, lid: _lb(s, lid).arn.split(":loadbalancer/", 1)[1],
            "CanonicalHostedZoneID": _hosted_zone,
            # Lab additions: the nodes' addresses in the order of the subnets.
            "NodePrivateIps": lambda s, lid: [str(n.private_ip) for n in _lb(s, lid).nodes],
            "NodePublicIps": _public_ips,
        },
        attribute_waits_for={"NodePublicIps": ROUTING},
        prepare=_set_aside_node_ips,
    )
)
