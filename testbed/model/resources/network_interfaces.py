"""Network interfaces: AWS::EC2::NetworkInterface and AWS::EC2::NetworkInterfaceAttachment,
the addresses and groups of any interface, and the frozen interfaces of the stack (an
instance's own NetworkInterfaces are read in instance_interfaces.py).

AWS rules kept here:
- PrivateIpAddresses marks at most one address Primary: true (none: EC2 picks the primary;
  PrivateIpAddress given: none may be marked); SecondaryPrivateIpAddressCount does not go with
  more than one listed address;
- an interface is attached to one instance, in the instance's AZ, at a DeviceIndex the
  instance does not use yet (0 is the primary interface, made with the instance).
GroupSet names security groups (testbed.model.resources.group_refs); none: the VPC's default.
"""

from __future__ import annotations

import contextlib
from ipaddress import IPv4Address
from typing import Any

from testbed.errors import BadInput
from testbed.model.resources.base import ResourceContext, ResourceType, prop, ref
from testbed.model.resources.ec2 import INSTANCE, NETWORK_INTERFACE, SUBNET
from testbed.model.resources.elbv2.common import in_range, nested
from testbed.model.resources.group_refs import default_group_id, group_list
from testbed.model.resources.registry import register
from testbed.model.state import BuildState, InterfaceDraft
from testbed.model.types import NetworkInterface
from testbed.template.nodes import line_of

INTERFACE_ATTACHMENT = "AWS::EC2::NetworkInterfaceAttachment"
MAX_SECONDARY = 49  # AWS's largest instance types: 50 private addresses per interface

ADDRESS_PROPERTIES = {
    "PrivateIpAddress": prop("ip"),
    "PrivateIpAddresses": prop("list"),
    "SecondaryPrivateIpAddressCount": prop("integer"),
    "GroupSet": prop("list"),
}
IPV6_AND_MORE = frozenset(
    {
        "Description",
        "InterfaceType",
        "Ipv6AddressCount",
        "Ipv6Addresses",
        "ConnectionTrackingSpecification",
    }
)
# --- Addresses and groups of one interface ---------------------------------------------


def private_address(
    ctx: ResourceContext, subnet_id: str, owner: str, ip: IPv4Address | None, line: int | None
) -> IPv4Address:
    """`ip` (checked) or the lowest free address of the subnet for `owner`, or a located error."""
    try:
        return ctx.state.addresses.private(subnet_id, owner, ip)
    except BadInput as err:
        raise ctx.fail(err.message, line=line, hint=err.hint) from None


def _listed(
    ctx: ResourceContext, values: dict[str, Any], lines: dict[str, int | None], where: str
) -> list[tuple[IPv4Address, bool, int | None]]:
    """PrivateIpAddresses as (address, primary, line)."""
    if "PrivateIpAddresses" not in values:
        return []
    at = lines.get("PrivateIpAddresses")
    listed = values["PrivateIpAddresses"]
    found = []
    seen: dict[IPv4Address, str] = {}
    for index, item in enumerate(listed):
        name = f"{where}PrivateIpAddresses[{index}]"
        line = line_of(listed, index, at)
        entry, _ = nested(
            ctx,
            item,
            name,
            line,
            {"PrivateIpAddress": prop("ip", required=True), "Primary": prop("boolean")},
        )
        ip = entry["PrivateIpAddress"]
        if ip in seen:
            raise ctx.fail(f"{name}: address {ip} is listed twice (also {seen[ip]})", line=line)
        seen[ip] = name
        found.append((ip, entry.get("Primary", False), line))
    return found


def interface_addresses(
    ctx: ResourceContext,
    values: dict[str, Any],
    lines: dict[str, int | None],
    subnet_id: str,
    owner: str,
    where: str = "",
) -> tuple[IPv4Address, tuple[IPv4Address, ...]]:
    """(primary, secondary addresses) of an interface, taken from its subnet's pool for
    `owner`: PrivateIpAddress / PrivateIpAddresses / SecondaryPrivateIpAddressCount."""
    listed = _listed(ctx, values, lines, where)
    primaries = [entry for entry in listed if entry[1]]
    if len(primaries) > 1:
        shown = ", ".join(str(ip) for ip, _, _ in primaries)
        raise ctx.fail(
            f"{where}PrivateIpAddresses marks {len(primaries)} addresses Primary: true "
            f"({shown}); an interface has one primary address",
            line=primaries[1][2],
        )
    single = values.get("PrivateIpAddress")
    if single is not None and primaries:
        raise ctx.fail(
            f"{where}PrivateIpAddress {single} is the primary address, so no address of "
            f"PrivateIpAddresses may be Primary: true ({primaries[0][0]} is)",
            line=primaries[0][2],
            hint="give the primary address in one place",
        )
    count = values.get("SecondaryPrivateIpAddressCount")
    count_line = lines.get("SecondaryPrivateIpAddressCount")
    if count is not None:
        in_range(ctx, count, 0, MAX_SECONDARY, f"{where}SecondaryPrivateIpAddressCount", count_line)
        if len(listed) > 1:
            raise ctx.fail(
                f"{where}SecondaryPrivateIpAddressCount cannot be combined with more than one "
                "address in PrivateIpAddresses",
                line=count_line,
            )
    wanted = single if single is not None else (primaries[0][0] if primaries else None)
    wanted_line = lines.get("PrivateIpAddress") if single is not None else None
    if primaries and single is None:
        wanted_line = primaries[0][2]
    primary = private_address(ctx, subnet_id, owner, wanted, wanted_line)
    secondary = []
    for ip, is_primary, line in listed:
        if not is_primary and ip != primary:
            secondary.append(private_address(ctx, subnet_id, owner, ip, line))
        elif not is_primary:
            raise ctx.fail(f"{where}PrivateIpAddresses lists the primary address {ip}", line=line)
    for _ in range(count or 0):
        secondary.append(private_address(ctx, subnet_id, owner, None, count_line))
    return primary, tuple(secondary)


def interface_groups(
    ctx: ResourceContext, values: dict[str, Any], lines: dict[str, int | None], where: str = ""
) -> tuple[str, ...] | None:
    """GroupSet as logical ids of security groups; None when none is given."""
    if "GroupSet" not in values:
        return None
    groups = group_list(ctx, values["GroupSet"], f"{where}GroupSet", lines.get("GroupSet"))
    return groups or None


# --- AWS::EC2::NetworkInterface --------------------------------------------------------


def _build_interface(ctx: ResourceContext) -> None:
    state, lid, props = ctx.state, ctx.logical_id, ctx.props
    subnet_id = props["SubnetId"]
    primary, secondary = interface_addresses(ctx, props, ctx.lines, subnet_id, lid)
    state.interfaces[lid] = InterfaceDraft(
        lid,
        subnet_id,
        primary,
        secondary,
        interface_groups(ctx, props, ctx.lines),
        props.get("SourceDestCheck", True),
        ctx.source,
        standalone=True,
    )


def set_aside_addresses(holder: Any, owner: str, state: BuildState) -> None:
    """Literal addresses of an interface with a literal !Ref subnet: keep them from automatic
    allocation (an earlier automatic address must not take one a later resource names)."""
    if not isinstance(holder, dict):
        return
    subnet = holder.get("SubnetId")
    if not (
        isinstance(subnet, dict) and list(subnet) == ["Ref"] and isinstance(subnet["Ref"], str)
    ):
        return
    texts = [holder.get("PrivateIpAddress")]
    listed = holder.get("PrivateIpAddresses")
    for entry in listed if isinstance(listed, list) else ():
        if isinstance(entry, dict):
            texts.append(entry.get("PrivateIpAddress"))
    for text in texts:
        if isinstance(text, str):
            with contextlib.suppress(ValueError):  # reported when the resource is built
                state.addresses.set_aside_private(subnet["Ref"], IPv4Address(text.strip()), owner)


def _primary_ip(state: BuildState, lid: str) -> str:
    return str(state.interfaces[lid].private_ip)


register(
    ResourceType(
        NETWORK_INTERFACE,
        _build_interface,
        ref_prefix="eni-",
        properties={
            "SubnetId": ref(SUBNET, required=True),
            "SourceDestCheck": prop("boolean"),
            **ADDRESS_PROPERTIES,
        },
        ignored=IPV6_AND_MORE | {"EnablePrimaryIpv6", "Ipv6PrefixCount", "Ipv6Prefixes"},
        unsupported={
            "Ipv4PrefixCount": "prefix delegation is not supported in the lab",
            "Ipv4Prefixes": "prefix delegation is not supported in the lab",
        },
        attributes={
            "Id": lambda s, lid: s.physical("eni-", lid),
            "PrimaryPrivateIpAddress": _primary_ip,
            "SecondaryPrivateIpAddresses": lambda s, lid: [
                str(ip) for ip in s.interfaces[lid].secondary_ips
            ],
        },
        prepare=lambda lid, raw, state: set_aside_addresses(raw, lid, state),
    )
)


# --- Attaching interfaces to instances ---------------------------------------------------


def attach(
    ctx: ResourceContext,
    interface_id: str,
    instance_id: str,
    az: str,
    index: int,
    line: int | None,
) -> InterfaceDraft:
    """Attach a standalone interface to an instance whose eth0 is in `az`, or a located error."""
    state = ctx.state
    interface = state.interfaces[interface_id]
    if interface.instance_id is not None:
        raise ctx.fail(
            f"network interface {interface_id} is already attached to {interface.instance_id} "
            f"(DeviceIndex {interface.device_index}, by {interface.attached_by}); an interface "
            "is attached to one instance",
            line=line,
        )
    subnet = state.subnets[interface.subnet_id]
    if subnet.az != az:
        raise ctx.fail(
            f"network interface {interface_id} is in {subnet.az} (subnet {subnet.logical_id}) "
            f"but instance {instance_id} is in {az}; an instance's interfaces are in its AZ",
            line=line,
            hint=f"create the interface in a subnet of {az}",
        )
    interface.instance_id = instance_id
    interface.device_index = index
    interface.attached_by = ctx.logical_id
    interface.attached_line = line
    return interface


def _build_attachment(ctx: ResourceContext) -> None:
    state, props = ctx.state, ctx.props
    instance_id, index = props["InstanceId"], props["DeviceIndex"]
    line = ctx.line("DeviceIndex")
    if index < 1:
        raise ctx.fail(
            f"DeviceIndex {index}: index 0 is the instance's primary interface, made with the "
            "instance",
            line=line,
            hint="use DeviceIndex 1 or more, or attach the interface as eth0 in the "
            "instance's NetworkInterfaces",
        )
    for other in state.interfaces.values():
        if other.instance_id == instance_id and other.device_index == index:
            raise ctx.fail(
                f"instance {instance_id} already has an interface at DeviceIndex {index} "
                f"({other.logical_id}, by {other.attached_by})",
                line=line,
            )
    az = state.subnets[state.instances[instance_id].subnet_id].az
    attach(ctx, props["NetworkInterfaceId"], instance_id, az, index, ctx.line("NetworkInterfaceId"))


register(
    ResourceType(
        INTERFACE_ATTACHMENT,
        _build_attachment,
        properties={
            "InstanceId": ref(INSTANCE, required=True),
            "NetworkInterfaceId": ref(NETWORK_INTERFACE, required=True),
            "DeviceIndex": prop("integer", required=True),
        },
        ignored=frozenset({"DeleteOnTermination", "EnaSrdSpecification"}),
        attributes={"AttachmentId": lambda s, lid: "eni-attach-" + lid},
    )
)


# --- Freezing -------------------------------------------------------------------------------


def _groups_or_default(
    state: BuildState, groups: tuple[str, ...] | None, subnet_id: str
) -> tuple[str, ...]:
    return groups if groups else (default_group_id(state.subnets[subnet_id].vpc_id),)


def frozen_interface(state: BuildState, lid: str) -> NetworkInterface:
    draft = state.interfaces[lid]
    eip = state.eip_of.get(lid)
    return NetworkInterface(
        lid,
        draft.subnet_id,
        draft.private_ip,
        draft.secondary_ips,
        _groups_or_default(state, draft.security_groups, draft.subnet_id),
        draft.source_dest_check,
        state.elastic_ips[eip].address if eip else None,
        draft.instance_id,
        draft.device_index,
        draft.source,
    )


def standalone_interfaces(state: BuildState) -> dict[str, NetworkInterface]:
    """Every AWS::EC2::NetworkInterface of the stack, attached or not."""
    return {
        lid: frozen_interface(state, lid) for lid, d in state.interfaces.items() if d.standalone
    }


def instance_fields(state: BuildState, instance_id: str) -> dict[str, Any]:
    """The Instance fields about its interfaces (keyword arguments of types.Instance)."""
    draft = state.instances[instance_id]
    extra = sorted(
        (d for d in state.interfaces.values() if d.instance_id == instance_id and d.device_index),
        key=lambda d: d.device_index or 0,
    )
    return {
        "security_groups": _groups_or_default(state, draft.security_groups, draft.subnet_id),
        "secondary_ips": draft.secondary_ips,
        "source_dest_check": draft.source_dest_check,
        "extra_interfaces": tuple(frozen_interface(state, d.logical_id) for d in extra),
    }
