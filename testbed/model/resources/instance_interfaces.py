"""An instance's network interfaces: its NetworkInterfaces property (several entries, by
DeviceIndex; new interfaces inline or existing ones by NetworkInterfaceId), or SubnetId and
PrivateIpAddress at the top; no subnet anywhere: the default VPC.

AWS rules kept here:
- DeviceIndex 0 is the primary interface (eth0), each index is used once; all interfaces of
  an instance are in one AZ (any subnets of it);
- a public address is auto-assigned only to a new eth0 of an instance launched with one
  interface: AssociatePublicIpAddress elsewhere is an error, MapPublicIpOnLaunch is not
  applied when the instance is launched with several (EC2 user guide, "Assign a public IPv4
  address at launch");
- with NetworkInterfaces, SubnetId, PrivateIpAddress and security groups belong in the
  entries;
- no SubnetId: the default VPC's subnet of the instance's AvailabilityZone (else the first AZ).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from testbed.errors import BadInput
from testbed.model.resources import default_vpc
from testbed.model.resources.base import ResourceContext, prop, ref
from testbed.model.resources.ec2 import NETWORK_INTERFACE, SUBNET
from testbed.model.resources.elbv2.common import items, nested
from testbed.model.resources.network_interfaces import (
    ADDRESS_PROPERTIES,
    IPV6_AND_MORE,
    attach,
    interface_addresses,
    interface_groups,
    private_address,
    set_aside_addresses,
)
from testbed.model.state import BuildState, InterfaceDraft

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


def set_aside_instance_ips(logical_id: str, raw: Any, state: BuildState) -> None:
    """An instance's literal addresses (top level and inline interfaces), set aside."""
    set_aside_addresses(raw, logical_id, state)
    nics = raw.get("NetworkInterfaces") if isinstance(raw, dict) else None
    for nic in nics if isinstance(nics, list) else ():
        index = nic.get("DeviceIndex") if isinstance(nic, dict) else None
        owner = logical_id if str(index).strip() in ("0", "None") else f"{logical_id}.eth{index}"
        set_aside_addresses(nic, owner, state)


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
    ip = private_address(
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
    # AWS: "If you specify a network interface, you must specify any security groups as part
    # of the network interface instead." (Instance properties the security-group family reads.)
    for key in ("SecurityGroupIds", "SecurityGroups"):
        if key in props:
            raise ctx.fail(
                f"with NetworkInterfaces, give the security groups in the interfaces (GroupSet), "
                f"not in {key}",
                prop=key,
            )
    entries = _entries(ctx)
    _check_public_request(ctx, entries)
    values, lines, where = entries[0]
    if "NetworkInterfaceId" in values:
        interface_id = values["NetworkInterfaceId"]
        interface = state.interfaces[interface_id]
        _check_az(ctx, interface.subnet_id)
        az = state.subnets[interface.subnet_id].az
        attach(ctx, interface_id, lid, az, 0, lines.get("NetworkInterfaceId"))
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
            attach(ctx, values["NetworkInterfaceId"], lid, az, index, lines["_entry"])
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
