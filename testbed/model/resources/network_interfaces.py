"""Network interfaces: AWS::EC2::NetworkInterface, AWS::EC2::NetworkInterfaceAttachment and
an instance's own interfaces (its NetworkInterfaces property, or SubnetId at the top).

AWS rules kept here:
- an instance's interfaces are all in one AZ (any subnets of it); DeviceIndex 0 is the primary
  interface (eth0), each index is used once; an interface is attached to one instance;
- PrivateIpAddresses marks at most one address Primary: true (none: EC2 picks the primary;
  PrivateIpAddress given: none may be marked); SecondaryPrivateIpAddressCount does not go with
  more than one listed address;
- a public address is auto-assigned only to a new eth0 of an instance launched with one
  interface: AssociatePublicIpAddress elsewhere is an error, MapPublicIpOnLaunch is not
  applied when the instance is launched with several;
- no SubnetId anywhere: the default VPC's subnet of the instance's AvailabilityZone.
GroupSet names security groups (testbed.model.resources.group_refs); none: the VPC's default.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from testbed.errors import BadInput
from testbed.model.resources import default_vpc
from testbed.model.resources.base import ResourceContext, ResourceType, prop, ref
from testbed.model.resources.ec2 import INSTANCE, NETWORK_INTERFACE, SUBNET
from testbed.model.resources.elbv2.common import in_range, items, nested
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
NIC_PROPERTIES = {
    "DeviceIndex": prop("integer", required=True),
    "NetworkInterfaceId": ref(NETWORK_INTERFACE),
    "SubnetId": ref(SUBNET),
    "AssociatePublicIpAddress": prop("boolean"),
    **ADDRESS_PROPERTIES,
}
NIC_IGNORED = IPV6_AND_MORE | {
    "DeleteOnTermination",
    "NetworkCardIndex",
    "EnaSrdSpecification",
    "AssociateCarrierIpAddress",
}
# What an entry naming an existing interface (NetworkInterfaceId) cannot set: it has them.
NEW_INTERFACE_ONLY = ("SubnetId", *ADDRESS_PROPERTIES)


@dataclass
class Eth0:
    """An instance's primary interface, as its instance draft needs it."""

    subnet_id: str
    private_ip: IPv4Address
    secondary_ips: tuple[IPv4Address, ...] = ()
    security_groups: tuple[str, ...] | None = None
    source_dest_check: bool = True
    associate_public_ip: bool | None = None
    associate_line: int | None = None
    interface_id: str | None = None  # a standalone interface attached as eth0
    launched: int = 1


# --- Addresses and groups of one interface ---------------------------------------------


def _private(
    ctx: ResourceContext, subnet_id: str, owner: str, ip: IPv4Address | None, line: int | None
) -> IPv4Address:
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
    primary = _private(ctx, subnet_id, owner, wanted, wanted_line)
    secondary = []
    for ip, is_primary, line in listed:
        if not is_primary and ip != primary:
            secondary.append(_private(ctx, subnet_id, owner, ip, line))
        elif not is_primary:
            raise ctx.fail(f"{where}PrivateIpAddresses lists the primary address {ip}", line=line)
    for _ in range(count or 0):
        secondary.append(_private(ctx, subnet_id, owner, None, count_line))
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


def set_aside_instance_ips(logical_id: str, raw: Any, state: BuildState) -> None:
    """An instance's literal addresses (top level and inline interfaces), set aside."""
    set_aside_addresses(raw, logical_id, state)
    nics = raw.get("NetworkInterfaces") if isinstance(raw, dict) else None
    for nic in nics if isinstance(nics, list) else ():
        index = nic.get("DeviceIndex") if isinstance(nic, dict) else None
        owner = logical_id if str(index).strip() in ("0", "None") else f"{logical_id}.eth{index}"
        set_aside_addresses(nic, owner, state)


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
            "Id": lambda s, lid: "eni-" + lid,
            "PrimaryPrivateIpAddress": _primary_ip,
            "SecondaryPrivateIpAddresses": lambda s, lid: [
                str(ip) for ip in s.interfaces[lid].secondary_ips
            ],
        },
        prepare=lambda lid, raw, state: set_aside_addresses(raw, lid, state),
    )
)


# --- Attaching interfaces to instances ---------------------------------------------------


def _attach(
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
    _attach(
        ctx, props["NetworkInterfaceId"], instance_id, az, index, ctx.line("NetworkInterfaceId")
    )


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


# --- An instance's interfaces -------------------------------------------------------------


def _check_az(ctx: ResourceContext, subnet_id: str) -> None:
    wanted = ctx.props.get("AvailabilityZone")
    subnet = ctx.state.subnets[subnet_id]
    if wanted is not None and wanted != subnet.az:
        raise ctx.fail(
            f"AvailabilityZone {wanted} differs from the AZ of subnet {subnet_id} ({subnet.az})",
            prop="AvailabilityZone",
            hint="leave AvailabilityZone out; the subnet decides it",
        )


def _default_subnet(ctx: ResourceContext, az: str | None, line: int | None) -> str:
    try:
        return default_vpc.default_subnet(ctx.state, ctx.logical_id, az)
    except BadInput as err:
        raise ctx.fail(err.message, line=line, hint=err.hint) from None


def _entries(ctx: ResourceContext) -> list[tuple[dict[str, Any], dict[str, int | None], str]]:
    """The NetworkInterfaces entries (values, lines, name), checked, in DeviceIndex order."""
    found: dict[int, tuple[dict[str, Any], dict[str, int | None], str]] = {}
    for item, line, where in items(ctx, "NetworkInterfaces"):
        values, lines = nested(ctx, item, where, line, NIC_PROPERTIES, ignored=NIC_IGNORED)
        lines["_entry"] = line
        index = values["DeviceIndex"]
        at = lines.get("DeviceIndex")
        if index < 0:
            raise ctx.fail(f"{where}.DeviceIndex must be 0 or more, not {index}", line=at)
        if index in found:
            raise ctx.fail(
                f"{where}.DeviceIndex {index} is also the DeviceIndex of {found[index][2]}; "
                "each interface of an instance has its own",
                line=at,
            )
        if "NetworkInterfaceId" in values:
            for key in NEW_INTERFACE_ONLY:
                if key in values:
                    raise ctx.fail(
                        f"{where}.{key}: an entry with NetworkInterfaceId attaches an existing "
                        f"interface, which has its own {key}",
                        line=lines.get(key),
                        hint=f"set {key} on {values['NetworkInterfaceId']} itself",
                    )
        found[index] = (values, lines, where)
    if not found:
        raise ctx.fail("NetworkInterfaces is empty", prop="NetworkInterfaces")
    if 0 not in found:
        raise ctx.fail(
            "NetworkInterfaces has no entry with DeviceIndex 0, the primary interface",
            prop="NetworkInterfaces",
        )
    return [found[index] for index in sorted(found)]


def _check_public_request(
    ctx: ResourceContext, entries: list[tuple[dict[str, Any], dict[str, int | None], str]]
) -> None:
    for values, lines, where in entries:
        if "AssociatePublicIpAddress" not in values:
            continue
        at = lines.get("AssociatePublicIpAddress")
        if values["DeviceIndex"] != 0:
            raise ctx.fail(
                f"{where}.AssociatePublicIpAddress: a public address goes only to the primary "
                "interface (DeviceIndex 0)",
                line=at,
            )
        if "NetworkInterfaceId" in values:
            raise ctx.fail(
                f"{where}.AssociatePublicIpAddress: a public address goes only to a new "
                "interface, not an existing one (NetworkInterfaceId)",
                line=at,
                hint="associate an Elastic IP with the interface instead",
            )
        if values["AssociatePublicIpAddress"] and len(entries) > 1:
            raise ctx.fail(
                f"{where}.AssociatePublicIpAddress: AWS assigns a public address only to an "
                f"instance launched with one network interface, not {len(entries)}",
                line=at,
                hint="associate an Elastic IP with the primary interface instead",
            )


def _top_level(ctx: ResourceContext) -> Eth0:
    props = ctx.props
    subnet_id = props.get("SubnetId")
    if subnet_id is None:
        subnet_id = _default_subnet(
            ctx, props.get("AvailabilityZone"), ctx.line("AvailabilityZone")
        )
    _check_az(ctx, subnet_id)
    ip = _private(
        ctx, subnet_id, ctx.logical_id, props.get("PrivateIpAddress"), ctx.line("PrivateIpAddress")
    )
    return Eth0(subnet_id, ip)


def instance_primary_interface(ctx: ResourceContext) -> Eth0:
    """An instance's eth0 from SubnetId/PrivateIpAddress or NetworkInterfaces; its other
    NetworkInterfaces entries are made (inline) or attached (NetworkInterfaceId) too."""
    state, lid, props = ctx.state, ctx.logical_id, ctx.props
    if "NetworkInterfaces" not in props:
        return _top_level(ctx)
    for key in ("SubnetId", "PrivateIpAddress"):
        if key in props:
            raise ctx.fail(
                f"give {key} either at the top or in NetworkInterfaces, not both", prop=key
            )
    entries = _entries(ctx)
    _check_public_request(ctx, entries)
    values, lines, where = entries[0]
    if "NetworkInterfaceId" in values:
        interface_id = values["NetworkInterfaceId"]
        interface = state.interfaces[interface_id]
        _check_az(ctx, interface.subnet_id)
        az = state.subnets[interface.subnet_id].az
        _attach(ctx, interface_id, lid, az, 0, lines.get("NetworkInterfaceId"))
        eth0 = Eth0(
            interface.subnet_id,
            interface.private_ip,
            interface.secondary_ips,
            interface.security_groups,
            interface.source_dest_check,
            interface_id=interface_id,
        )
    else:
        subnet_id = values.get("SubnetId") or _default_subnet(
            ctx, props.get("AvailabilityZone"), lines["_entry"]
        )
        _check_az(ctx, subnet_id)
        primary, secondary = interface_addresses(ctx, values, lines, subnet_id, lid, f"{where}.")
        eth0 = Eth0(
            subnet_id,
            primary,
            secondary,
            interface_groups(ctx, values, lines, f"{where}."),
            associate_public_ip=values.get("AssociatePublicIpAddress"),
            associate_line=lines.get("AssociatePublicIpAddress"),
        )
    eth0.launched = len(entries)
    az = state.subnets[eth0.subnet_id].az
    for values, lines, where in entries[1:]:
        index = values["DeviceIndex"]
        if "NetworkInterfaceId" in values:
            _attach(ctx, values["NetworkInterfaceId"], lid, az, index, lines["_entry"])
            continue
        subnet_id = values.get("SubnetId") or _default_subnet(ctx, az, lines["_entry"])
        subnet = state.subnets[subnet_id]
        if subnet.az != az:
            raise ctx.fail(
                f"{where}.SubnetId: subnet {subnet_id} is in {subnet.az} but the instance's "
                f"primary interface is in {az}; an instance's interfaces are in one AZ",
                line=lines.get("SubnetId"),
                hint=f"use a subnet of {az}",
            )
        name = f"{lid}.eth{index}"
        primary, secondary = interface_addresses(ctx, values, lines, subnet_id, name, f"{where}.")
        state.interfaces[name] = InterfaceDraft(
            name,
            subnet_id,
            primary,
            secondary,
            interface_groups(ctx, values, lines, f"{where}."),
            True,
            ctx.source,
            standalone=False,
            instance_id=lid,
            device_index=index,
            attached_by=lid,
            attached_line=lines["_entry"],
        )
    return eth0


# --- Freezing -------------------------------------------------------------------------------


def _groups_or_default(state: BuildState, groups: tuple[str, ...] | None, subnet_id: str):
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
