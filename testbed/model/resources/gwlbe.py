"""Gateway Load Balancer endpoints and the routing around them: AWS::EC2::VPCEndpointService
(in front of a gateway load balancer), AWS::EC2::VPCEndpoint of type GatewayLoadBalancer, and
AWS::EC2::GatewayRouteTableAssociation (an internet gateway's ingress route table). Interface
and Gateway endpoints reach AWS services: they are inert (inert.py).

Routes reach an endpoint with VpcEndpointId (ec2.py); the rules on a gateway's ingress route
table are checked once every route exists (routing.check_routes).
"""

from __future__ import annotations

from testbed.errors import BadInput
from testbed.model import lab_view
from testbed.model.elbv2_types import EndpointService, GwlbEndpoint, LoadBalancer
from testbed.model.resources import inert
from testbed.model.resources.base import ResourceContext, ResourceType, prop, ref
from testbed.model.resources.ec2 import IGW, ROUTE_TABLE, SUBNET, VPC, VPC_ENDPOINT
from testbed.model.resources.elbv2.common import (
    LOAD_BALANCER,
    NOT_YET,
    a_load_balancer,
    convert,
    digest,
    family,
    items,
)
from testbed.model.resources.registry import register
from testbed.model.state import BuildState, Link
from testbed.template.nodes import did_you_mean

ENDPOINT_SERVICE = "AWS::EC2::VPCEndpointService"
GATEWAY_ASSOCIATION = "AWS::EC2::GatewayRouteTableAssociation"
INERT_KINDS = ("Interface", "Gateway")  # accepted as inert resources (catalog.py)


# --- Endpoint service ------------------------------------------------------------------------


def service_id(state: BuildState, logical_id: str) -> str:
    """vpce-svc-<17 hex>: AWS's form, the same for the same stack and logical id."""
    return "vpce-svc-" + digest(state, logical_id, "vpce-svc")[:17]


def service_name(state: BuildState, logical_id: str) -> str:
    """The name endpoints use to find the service: com.amazonaws.vpce.<region>.<id>."""
    return f"com.amazonaws.vpce.{state.region}.{service_id(state, logical_id)}"


def _build_service(ctx: ResourceContext) -> None:
    state, lid = ctx.state, ctx.logical_id
    if "GatewayLoadBalancerArns" not in ctx.props:
        raise ctx.fail(
            "the endpoint service needs GatewayLoadBalancerArns",
            hint="add GatewayLoadBalancerArns: [!Ref <a gateway load balancer>]",
        )
    found = items(ctx, "GatewayLoadBalancerArns")
    if len(found) != 1:
        raise ctx.fail(
            f"the lab supports exactly one gateway load balancer per endpoint "
            f"service, not {len(found)}",
            prop="GatewayLoadBalancerArns",
        )
    raw, line, where = found[0]
    lb_id = convert(ctx, ref(LOAD_BALANCER), raw, where, line)
    lb = family(state)["load_balancers"][lb_id]
    if lb.type != "gateway":
        raise ctx.fail(
            f"{where}: {lb_id} is {a_load_balancer(lb.type)}; an endpoint service "
            "here fronts a gateway load balancer",
            line=line,
        )
    family(state)["endpoint_services"][lid] = EndpointService(
        lid, lb_id, service_name(state, lid), service_id(state, lid), ctx.source
    )


register(
    ResourceType(
        ENDPOINT_SERVICE,
        _build_service,
        properties={"GatewayLoadBalancerArns": prop("list")},
        ignored=frozenset(
            {
                "AcceptanceRequired",
                "ContributorInsightsEnabled",
                "PayerResponsibility",
                "SupportedIpAddressTypes",
                "SupportedRegions",
            }
        ),
        unsupported={
            "NetworkLoadBalancerArns": f"interface endpoint services (PrivateLink) are {NOT_YET}"
        },
        ref_value=service_id,
        attributes={"ServiceId": service_id},
    )
)


# --- Endpoint --------------------------------------------------------------------------------


def _find_service(ctx: ResourceContext, name: str) -> tuple[str, str, LoadBalancer]:
    """The endpoint service called `name` (of this stack, or of another stack of the lab):
    its key, its gateway load balancer's key and facts; or an error saying why not."""
    state = ctx.state
    services = family(state)["endpoint_services"]
    for service in services.values():
        if service.service_name == name:
            lb = family(state)["load_balancers"][service.gwlb_id]
            return service.logical_id, service.gwlb_id, lb
    foreign = lab_view.foreign_service(state, name)
    if foreign is not None:  # the distributed GWLB design: the service is another stack's
        res, lb = foreign
        return res.key, lb.key, lb.facts
    declared = {
        service_name(state, lid): lid
        for lid, type_name in state.types.items()
        if type_name == ENDPOINT_SERVICE
    }
    if name in declared:
        lid = declared[name]
        raise ctx.fail(
            f"ServiceName names endpoint service {lid} before it is created",
            prop="ServiceName",
            hint=f'write ServiceName: !Sub "com.amazonaws.vpce.${{AWS::Region}}.${{{lid}}}"',
        )
    hint = did_you_mean(name, declared) or (
        'write !Sub "com.amazonaws.vpce.${AWS::Region}.${<an endpoint service>}"'
        if declared
        else "declare an AWS::EC2::VPCEndpointService for a gateway load balancer"
    )
    raise ctx.fail(
        f"ServiceName {name!r} is not the name of an endpoint service of this "
        "lab (the lab reaches no services outside it)",
        prop="ServiceName",
        hint=hint,
    )


def _build_endpoint(ctx: ResourceContext) -> None:
    state, lid, props = ctx.state, ctx.logical_id, ctx.props
    kind = props.get("VpcEndpointType", "Gateway")
    if kind in INERT_KINDS:
        # They reach AWS services (S3, SSM, ...), which are not in the lab: no packets.
        inert.record(ctx, f"not emulated: {kind} endpoints reach AWS services, not in the lab")
        return
    if kind != "GatewayLoadBalancer":
        shown = f"{kind} (the default)" if "VpcEndpointType" not in props else kind
        raise ctx.fail(
            f"VpcEndpointType {shown}: only GatewayLoadBalancer endpoints are supported by the lab",
            prop="VpcEndpointType",
            hint="write VpcEndpointType: GatewayLoadBalancer",
        )
    if "RouteTableIds" in props:
        raise ctx.fail(
            "RouteTableIds is for gateway endpoints; a GatewayLoadBalancer "
            "endpoint is reached through routes with VpcEndpointId",
            prop="RouteTableIds",
        )
    service_key, gwlb_key, lb = _find_service(ctx, props["ServiceName"])
    subnets = items(ctx, "SubnetIds") if "SubnetIds" in props else []
    if len(subnets) != 1:
        raise ctx.fail(
            f"a GatewayLoadBalancer endpoint takes exactly one subnet, not {len(subnets)}",
            prop="SubnetIds" if "SubnetIds" in props else None,
            hint="SubnetIds: [!Ref <a subnet>]",
        )
    raw, line, where = subnets[0]
    subnet = state.subnets[convert(ctx, ref(SUBNET), raw, where, line)]
    if subnet.vpc_id != props["VpcId"]:
        raise ctx.fail(
            f"subnet {subnet.logical_id} is in {subnet.vpc_id}, not in VpcId {props['VpcId']}",
            line=line,
        )
    zones = sorted(node.az for node in lb.nodes)
    if subnet.az not in zones:
        raise ctx.fail(
            f"endpoint service {service_key} is not available in {subnet.az}: "
            f"gateway load balancer {lb.logical_id} has nodes in "
            f"{', '.join(zones)}",
            line=line,
            hint=f"use a subnet in {' or '.join(zones)}, or give {lb.logical_id} a "
            f"subnet in {subnet.az}",
        )
    try:
        ip = state.addresses.private(subnet.logical_id, lid, None)
    except BadInput as err:
        raise ctx.fail(err.message, line=line, hint=err.hint) from None
    family(state)["endpoints"][lid] = GwlbEndpoint(
        lid,
        service_key,
        gwlb_key,
        subnet.vpc_id,
        subnet.logical_id,
        subnet.az,
        ip,
        state.physical("vpce-", lid),
        ctx.source,
    )


register(
    ResourceType(
        VPC_ENDPOINT,
        _build_endpoint,
        ref_prefix="vpce-",
        properties={
            "VpcEndpointType": prop("string"),
            "ServiceName": prop("string", required=True),
            "VpcId": ref(VPC, required=True),
            "SubnetIds": prop("list"),
            "RouteTableIds": prop("list"),
        },
        ignored=frozenset(
            {
                "PolicyDocument",
                "PrivateDnsEnabled",
                "SecurityGroupIds",
                "DnsOptions",
                "IpAddressType",
            }
        ),
        unsupported={
            "ServiceNetworkArn": f"VPC Lattice service networks are {NOT_YET}",
            "ResourceConfigurationArn": f"VPC Lattice resources are {NOT_YET}",
            "ServiceRegion": f"cross-region endpoints are {NOT_YET}",
        },
        attributes={
            "Id": lambda s, lid: s.physical("vpce-", lid),
            "NetworkInterfaceIds": lambda s, lid: [s.physical("eni-", lid)],
            "DnsEntries": lambda s, lid: [],
        },
    )
)


# --- Gateway route table association ---------------------------------------------------------


def _build_gateway_association(ctx: ResourceContext) -> None:
    state, lid = ctx.state, ctx.logical_id
    igw_id, table_id = ctx.props["GatewayId"], ctx.props["RouteTableId"]
    current = state.gateway_associations.get(igw_id)
    if current is not None:
        raise ctx.fail(
            f"internet gateway {igw_id} already has ingress route table "
            f"{current.to} (associated by {current.by}); a gateway has one",
            prop="GatewayId",
        )
    for gateway, link in state.gateway_associations.items():
        if link.to == table_id:
            raise ctx.fail(
                f"route table {table_id} is already the ingress route table of "
                f"{gateway} (associated by {link.by})",
                prop="RouteTableId",
            )
    state.gateway_associations[igw_id] = Link(lid, table_id, ctx.line())
    family(state)["gateway_route_tables"][igw_id] = table_id


register(
    ResourceType(
        GATEWAY_ASSOCIATION,
        _build_gateway_association,
        ref_prefix="rtbassoc-",
        properties={
            "GatewayId": ref(IGW, required=True),
            "RouteTableId": ref(ROUTE_TABLE, required=True),
        },
        attributes={"AssociationId": lambda s, lid: s.physical("rtbassoc-", lid)},
    )
)
