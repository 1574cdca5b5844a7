"""AWS::EC2::EIP and AWS::EC2::EIPAssociation: Elastic IP addresses.

An Elastic IP is an address of the lab's public range (203.0.113.0/24), given from the top of
the range down (.254, .253, ...) while automatic public addresses (instances, internet-facing
load balancer nodes) come from the bottom up (.10, .11, ...): no address is ever given twice,
and adding an Elastic IP never moves anyone's automatic address. As on AWS, an Elastic IP is
associated with one thing at a time: an instance's primary interface, a network interface, a
NAT gateway or a network load balancer's node (SubnetMappings AllocationId); the internet
gateway translates it 1:1 to that interface's primary private address.

An Elastic IP on an instance in a private subnet is kept (AWS allows it); it is just
unreachable, which `testbed reach` reports.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from testbed.errors import BadInput
from testbed.model.resources.base import ResourceContext, ResourceType, prop, ref
from testbed.model.resources.ec2 import EIP, EIP_ASSOCIATION, INSTANCE, NETWORK_INTERFACE
from testbed.model.resources.registry import register
from testbed.model.state import BuildState, EipUse
from testbed.model.types import ElasticIp
from testbed.template.intrinsics import as_text
from testbed.template.nodes import describe

# elbv2 imports this module: nothing here may import elbv2 (its package imports it back).

ALLOCATION_PREFIX = "eipalloc-"
DOMAINS = ("vpc", "standard")


def allocation_id(ctx: ResourceContext, value: Any, where: str, line: int | None) -> str:
    """The logical id of the EIP an AllocationId value (eipalloc-...) names, or a located error."""
    state = ctx.state
    text = as_text(value)
    if text is None:
        raise ctx.fail(f"{where} must be text, not {describe(value)}", line=line)
    lid = state.physical_ids.get(text)
    is_eip = lid is not None and state.types.get(lid) == EIP
    if not text.startswith(ALLOCATION_PREFIX):
        hint = "use !GetAtt <an AWS::EC2::EIP>.AllocationId"
        if is_eip:
            hint = f"!Ref {lid} gives its address; use !GetAtt {lid}.AllocationId"
        raise ctx.fail(
            f"{where} {text!r} is not an allocation id (eipalloc-...)", line=line, hint=hint
        )
    if lid is None or not is_eip:
        raise ctx.fail(
            f"{where} {text!r} is not the allocation id of an Elastic IP of this stack",
            line=line,
            hint="use !GetAtt <an AWS::EC2::EIP>.AllocationId",
        )
    if lid not in state.built:
        raise ctx.fail(
            f"{where} names {lid} before it is created",
            line=line,
            hint=f"write !GetAtt {lid}.AllocationId so that {lid} is created first",
        )
    return lid


def associate(
    ctx: ResourceContext,
    eip_id: str,
    target: str,
    words: str,
    line: int | None,
    *,
    instance_id: str | None = None,
    interface_id: str | None = None,
    nat_gateway_id: str | None = None,
    lb_node: str | None = None,
) -> None:
    """Associate Elastic IP `eip_id` with `target` (an instance's eth0, an interface, a NAT
    gateway or an LB node name; `words` describes it); a located error if either is taken.

    The keyword given records it in the ElasticIp (instance_id=..., ...).
    """
    state = ctx.state
    eip = state.elastic_ips[eip_id]
    use = state.eip_uses.get(eip_id)
    if use is not None:
        at = f" (line {use.line})" if use.line else ""
        raise ctx.fail(
            f"Elastic IP {eip_id} ({eip.address}) is already associated with {use.target} by "
            f"{use.by}{at}; an Elastic IP is associated with one thing at a time",
            line=line,
            hint=f"give {words} an Elastic IP of its own",
        )
    other = state.eip_of.get(target)
    if other is not None:
        held = state.eip_uses[other]
        raise ctx.fail(
            f"{words} already has Elastic IP {other} ({state.elastic_ips[other].address}), "
            f"associated by {held.by}; it can have one",
            line=line,
        )
    state.eip_uses[eip_id] = EipUse(ctx.logical_id, words, line)
    state.eip_of[target] = eip_id
    state.elastic_ips[eip_id] = replace(
        eip,
        instance_id=instance_id,
        interface_id=interface_id,
        nat_gateway_id=nat_gateway_id,
        lb_node=lb_node,
    )


def instance_target(state: BuildState, instance_id: str) -> str:
    """What an EIP associated with an instance is really on: its eth0 (a standalone
    interface when one was attached as eth0)."""
    return state.instances[instance_id].primary_interface or instance_id


# --- AWS::EC2::EIP -------------------------------------------------------------------------


def _build_eip(ctx: ResourceContext) -> None:
    state, lid = ctx.state, ctx.logical_id
    domain = ctx.props.get("Domain", "vpc")
    if domain not in DOMAINS:
        raise ctx.fail(f"Domain must be vpc or standard, not {domain!r}", prop="Domain")
    try:
        address = state.addresses.public.allocate(lid, highest=True)
    except BadInput as err:
        raise ctx.relocate(err) from None
    allocation = state.physical(ALLOCATION_PREFIX, lid)
    state.elastic_ips[lid] = ElasticIp(lid, address, allocation, source=ctx.source)
    state.physical_ids[allocation] = lid
    if "InstanceId" in ctx.props:
        instance = ctx.props["InstanceId"]
        associate(
            ctx,
            lid,
            instance_target(state, instance),
            f"instance {instance}",
            ctx.line("InstanceId"),
            instance_id=instance,
        )


register(
    ResourceType(
        EIP,
        _build_eip,
        ref_value=lambda s, lid: str(s.elastic_ips[lid].address),
        properties={"Domain": prop("string"), "InstanceId": ref(INSTANCE)},
        ignored=frozenset({"PublicIpv4Pool", "NetworkBorderGroup"}),
        unsupported={
            "TransferAddress": "transferring an address from another account is not "
            "supported in the lab",
            "Address": "choosing the address is not supported in the lab; the Elastic IP gets "
            "the next free address of 203.0.113.0/24",
            "IpamPoolId": "IPAM pools are not supported in the lab",
        },
        attributes={
            "AllocationId": lambda s, lid: s.elastic_ips[lid].allocation_id,
            "PublicIp": lambda s, lid: str(s.elastic_ips[lid].address),
        },
    )
)


# --- AWS::EC2::EIPAssociation -------------------------------------------------------------


def _which_eip(ctx: ResourceContext) -> str:
    props = ctx.props
    by_allocation = (
        allocation_id(ctx, props["AllocationId"], "AllocationId", ctx.line("AllocationId"))
        if "AllocationId" in props
        else None
    )
    by_address: str | None = props.get("EIP")
    if by_allocation is None and by_address is None:
        raise ctx.fail(
            "the association names no Elastic IP",
            hint="add AllocationId: !GetAtt <an AWS::EC2::EIP>.AllocationId",
        )
    if by_allocation and by_address and by_allocation != by_address:
        raise ctx.fail(
            f"AllocationId names {by_allocation} but EIP names {by_address}",
            prop="EIP",
            hint="give AllocationId only",
        )
    chosen = by_allocation or by_address
    assert chosen is not None  # one of them is given (checked above)
    return chosen


def _check_private_ip(
    ctx: ResourceContext, words: str, primary: Any, secondary: tuple[Any, ...]
) -> None:
    wanted = ctx.props.get("PrivateIpAddress")
    if wanted is None or wanted == primary:
        return
    if wanted in secondary:
        raise ctx.fail(
            f"PrivateIpAddress {wanted} is a secondary address of {words}; the lab maps an "
            f"Elastic IP to an interface's primary address ({primary}) only",
            prop="PrivateIpAddress",
            hint="leave PrivateIpAddress out",
        )
    raise ctx.fail(
        f"PrivateIpAddress {wanted} is not an address of {words} (its primary address is "
        f"{primary})",
        prop="PrivateIpAddress",
    )


def _build_association(ctx: ResourceContext) -> None:
    state, props = ctx.state, ctx.props
    eip = _which_eip(ctx)
    targets = [key for key in ("InstanceId", "NetworkInterfaceId") if key in props]
    if len(targets) != 1:
        raise ctx.fail(
            "associate the Elastic IP with an InstanceId or a NetworkInterfaceId"
            + (", not both" if targets else ""),
            prop=targets[-1] if targets else None,
        )
    line = ctx.line(targets[0])
    if targets[0] == "InstanceId":
        instance_id = props["InstanceId"]
        draft = state.instances[instance_id]
        words = f"instance {instance_id}"
        _check_private_ip(ctx, words, draft.private_ip, draft.secondary_ips)
        associate(
            ctx, eip, instance_target(state, instance_id), words, line, instance_id=instance_id
        )
        return
    interface_id = props["NetworkInterfaceId"]
    interface = state.interfaces[interface_id]
    words = f"network interface {interface_id}"
    _check_private_ip(ctx, words, interface.private_ip, interface.secondary_ips)
    associate(ctx, eip, interface_id, words, line, interface_id=interface_id)


register(
    ResourceType(
        EIP_ASSOCIATION,
        _build_association,
        ref_prefix="eipassoc-",
        properties={
            "AllocationId": prop("string"),
            "EIP": ref(EIP),
            "InstanceId": ref(INSTANCE),
            "NetworkInterfaceId": ref(NETWORK_INTERFACE),
            "PrivateIpAddress": prop("ip"),
        },
        attributes={"Id": lambda s, lid: s.physical("eipassoc-", lid)},
    )
)


def association_errors(state: BuildState) -> list[BadInput]:
    """Elastic IPs associated by InstanceId with an instance that has several interfaces
    (AWS: "the instance must have exactly one attached network interface")."""
    errors = []
    for eip_id, eip in state.elastic_ips.items():
        if eip.instance_id is None:
            continue
        extra = [i for i in state.interfaces.values() if i.instance_id == eip.instance_id]
        extra = [i for i in extra if i.device_index]
        if extra:
            use = state.eip_uses[eip_id]
            errors.append(
                BadInput(
                    f"instance {eip.instance_id} has {len(extra) + 1} network interfaces, so "
                    f"Elastic IP {eip_id} must be associated with one of them "
                    "(NetworkInterfaceId), not with the instance",
                    line=use.line,
                    logical_id=use.by,
                    hint="make eth0 an AWS::EC2::NetworkInterface, attach it with "
                    "NetworkInterfaces [{NetworkInterfaceId: ..., DeviceIndex: 0}] and "
                    "associate the Elastic IP with it",
                )
            )
    return errors
