"""AWS::EC2::NetworkAcl, NetworkAclEntry and SubnetNetworkAclAssociation.

A NACL is stateless and per subnet: its entries are checked in rule-number order, first match
wins, anything unmatched is denied. A subnet without an association uses its VPC's default
NACL, which allows everything, so the lab builds nothing for it (associating a subnet with
!GetAtt VPC.DefaultNetworkAcl explicitly means the same). Entries with an Ipv6CidrBlock match
nothing in the IPv4 lab: they are accepted, listed as ignored and left out.
"""

from __future__ import annotations

import re

from testbed.model.resources.base import ResourceContext, ResourceType, find_built, prop, ref
from testbed.model.resources.ec2 import SUBNET, VPC
from testbed.model.resources.elbv2.common import nested
from testbed.model.resources.group_refs import ACL_PREFIX, acl_physical_id, default_acl_id
from testbed.model.resources.registry import register
from testbed.model.state import BuildState, Link, NetworkAclDraft
from testbed.model.types import ALL_PROTOCOLS, IgnoredProperty, NetworkAcl, NetworkAclEntry
from testbed.template.intrinsics import as_text
from testbed.template.nodes import describe

NETWORK_ACL = "AWS::EC2::NetworkAcl"
ENTRY = "AWS::EC2::NetworkAclEntry"
NACL_ASSOCIATION = "AWS::EC2::SubnetNetworkAclAssociation"

MIN_RULE, MAX_RULE = 1, 32766
TCP, UDP, ICMP = 6, 17, 1
PROTOCOL_NUMBERS = {"tcp": TCP, "udp": UDP, "icmp": ICMP, "icmpv6": 58, "all": ALL_PROTOCOLS}
ACTIONS = ("allow", "deny")


def _build_acl(ctx: ResourceContext) -> None:
    lid = ctx.logical_id
    ctx.state.network_acls[lid] = NetworkAclDraft(lid, ctx.props["VpcId"], ctx.source)


register(
    ResourceType(
        NETWORK_ACL,
        _build_acl,
        ref_prefix=ACL_PREFIX,
        properties={"VpcId": ref(VPC, required=True)},
        attributes={"Id": lambda s, lid: acl_physical_id(s, lid)},
    )
)


# --- Which ACL an entry or association names ------------------------------------------------


def _find_acl(ctx: ResourceContext) -> tuple[str, str]:
    """(logical id, VPC) of the NACL NetworkAclId names; a VPC's default NACL has the logical
    id default_acl_id(vpc)."""
    state, text, at = ctx.state, ctx.props["NetworkAclId"], ctx.line("NetworkAclId")
    for vpc_id in state.vpcs:
        if text == acl_physical_id(state, default_acl_id(vpc_id)):
            return default_acl_id(vpc_id), vpc_id
    hint = "use !Ref <a network ACL>"
    if state.types.get(text) == NETWORK_ACL:
        hint = f"write !Ref {text} to use that network ACL"
    target = find_built(
        ctx, text, NETWORK_ACL, "network ACL", state.network_acls, "NetworkAclId", at, hint
    )
    return target, state.network_acls[target].vpc_id


# --- Entries ---------------------------------------------------------------------------------


def _protocol(ctx: ResourceContext) -> int:
    """Protocol: a number (6, "6", -1, "-1"); names are not what AWS takes here."""
    value, at = ctx.props["Protocol"], ctx.line("Protocol")
    text = as_text(value)
    if text is None or isinstance(value, bool):
        raise ctx.fail(f"Protocol must be a protocol number, not {describe(value)}", line=at)
    word = text.strip()
    if re.fullmatch(r"-?\d{1,9}", word):
        number = int(word)
        if number == ALL_PROTOCOLS or 0 <= number <= 255:
            return number
    known = PROTOCOL_NUMBERS.get(word.lower())
    raise ctx.fail(
        f"Protocol must be a protocol number from 0 to 255 or -1 (all), not {text!r}",
        line=at,
        hint=f"write {known} for {word}" if known is not None else "6 is tcp, 17 udp, 1 icmp",
    )


def _range(ctx: ResourceContext, protocol: int) -> tuple[int, int] | None:
    """PortRange {From, To} of a tcp/udp entry (required there, ignored elsewhere)."""
    if protocol not in (TCP, UDP):
        return None
    if "PortRange" not in ctx.props:
        raise ctx.fail(
            f"a {'tcp' if protocol == TCP else 'udp'} entry needs a PortRange",
            hint="add PortRange: {From: 1024, To: 65535}",
        )
    at = ctx.line("PortRange")
    values, lines = nested(
        ctx,
        ctx.props["PortRange"],
        "PortRange",
        at,
        {"From": prop("integer", required=True), "To": prop("integer", required=True)},
    )
    for key in ("From", "To"):
        if not 0 <= values[key] <= 65535:
            raise ctx.fail(
                f"PortRange.{key} {values[key]} is not a port: use 0 to 65535",
                line=lines.get(key, at),
            )
    if values["From"] > values["To"]:
        raise ctx.fail(
            f"PortRange.From {values['From']} is greater than PortRange.To {values['To']}",
            line=lines.get("From", at),
        )
    return values["From"], values["To"]


def _icmp(ctx: ResourceContext, protocol: int) -> tuple[int, int] | None:
    """Icmp {Type, Code} of an icmp entry (required there, ignored elsewhere); -1 = all."""
    if protocol != ICMP:
        return None
    if "Icmp" not in ctx.props:
        raise ctx.fail(
            "an icmp entry (Protocol 1) needs Icmp",
            hint="add Icmp: {Type: -1, Code: -1} for every ICMP message",
        )
    at = ctx.line("Icmp")
    values, lines = nested(
        ctx, ctx.props["Icmp"], "Icmp", at, {"Type": prop("integer"), "Code": prop("integer")}
    )
    found = []
    for key in ("Type", "Code"):
        value = values.get(key, -1)
        if not -1 <= value <= 255:
            raise ctx.fail(
                f"Icmp.{key} must be -1 (all) or 0 to 255, not {value}", line=lines.get(key, at)
            )
        found.append(value)
    return found[0], found[1]


def _build_entry(ctx: ResourceContext) -> None:
    state, lid, props = ctx.state, ctx.logical_id, ctx.props
    acl_id, _vpc = _find_acl(ctx)
    if acl_id not in state.network_acls:
        raise ctx.fail(
            "entries of a VPC's default network ACL are not supported by the lab yet (it "
            "allows everything)",
            prop="NetworkAclId",
            hint="create an AWS::EC2::NetworkAcl and associate it with the subnets",
        )
    acl = state.network_acls[acl_id]
    number = props["RuleNumber"]
    if not MIN_RULE <= number <= MAX_RULE:
        raise ctx.fail(
            f"RuleNumber must be from {MIN_RULE} to {MAX_RULE}, not {number}", prop="RuleNumber"
        )
    action = props["RuleAction"]
    if action not in ACTIONS:
        raise ctx.fail(
            f"RuleAction must be allow or deny, not {action!r}",
            prop="RuleAction",
            hint=f"did you mean {action.lower()}?" if action.lower() in ACTIONS else None,
        )
    egress = props.get("Egress", False)
    direction = "egress" if egress else "ingress"
    taken = acl.entry_lines.get((egress, number))
    if taken is not None:
        other, other_line = taken
        where = f" (line {other_line})" if other_line else ""
        raise ctx.fail(
            f"{acl_id} already has {direction} rule number {number}: {other}{where}; a rule "
            "number is used once per direction",
            prop="RuleNumber",
        )
    cidrs = [key for key in ("CidrBlock", "Ipv6CidrBlock") if key in props]
    if len(cidrs) != 1:
        raise ctx.fail(
            "give the entry's addresses in CidrBlock" + (", not both" if cidrs else ""),
            prop=cidrs[-1] if cidrs else None,
            hint=None if cidrs else "add CidrBlock: 0.0.0.0/0 for every address",
        )
    protocol = _protocol(ctx)
    ports, icmp = _range(ctx, protocol), _icmp(ctx, protocol)
    acl.entry_lines[(egress, number)] = (lid, ctx.line("RuleNumber"))
    if cidrs[0] == "Ipv6CidrBlock":
        state.ignored.append(IgnoredProperty(lid, "Ipv6CidrBlock"))
        return  # matches no IPv4 packet
    acl.entries.append(
        NetworkAclEntry(
            lid,
            number,
            egress,
            protocol,
            props["CidrBlock"],
            action == "allow",
            ports,
            icmp,
            ctx.source,
        )
    )


register(
    ResourceType(
        ENTRY,
        _build_entry,
        properties={
            "NetworkAclId": prop("string", required=True),
            "RuleNumber": prop("integer", required=True),
            "Protocol": prop("any", required=True),
            "RuleAction": prop("string", required=True),
            "Egress": prop("boolean"),
            "CidrBlock": prop("cidr"),
            "Ipv6CidrBlock": prop("string"),
            "PortRange": prop("map"),
            "Icmp": prop("map"),
        },
    )
)


# --- Subnet associations ---------------------------------------------------------------------


def _build_association(ctx: ResourceContext) -> None:
    state, subnet_id = ctx.state, ctx.props["SubnetId"]
    acl_id, acl_vpc = _find_acl(ctx)
    current = state.nacl_associations.get(subnet_id)
    if current is not None:
        raise ctx.fail(
            f"subnet {subnet_id} is already associated with network ACL {current.to} by "
            f"{current.by}; a subnet has one network ACL",
            prop="SubnetId",
        )
    subnet_vpc = state.subnets[subnet_id].vpc_id
    if subnet_vpc != acl_vpc:
        raise ctx.fail(
            f"subnet {subnet_id} is in {subnet_vpc} but network ACL {acl_id} belongs to {acl_vpc}",
            prop="NetworkAclId",
            hint="associate the subnet with a network ACL of its VPC",
        )
    state.nacl_associations[subnet_id] = Link(ctx.logical_id, acl_id, ctx.line())


register(
    ResourceType(
        NACL_ASSOCIATION,
        _build_association,
        properties={
            "SubnetId": ref(SUBNET, required=True),
            "NetworkAclId": prop("string", required=True),
        },
        attributes={"AssociationId": lambda s, lid: s.physical("aclassoc-", lid)},
    )
)


# --- Freezing --------------------------------------------------------------------------------


def frozen_acls(state: BuildState) -> dict[str, NetworkAcl]:
    """Every network ACL of the stack with its entries (rule-number order, ingress first on a
    tie) and its subnets (in the order they were associated)."""
    subnets: dict[str, list[str]] = {}
    for subnet_id, link in state.nacl_associations.items():
        subnets.setdefault(link.to, []).append(subnet_id)
    return {
        lid: NetworkAcl(
            lid,
            draft.vpc_id,
            tuple(sorted(draft.entries, key=lambda e: (e.rule_number, e.egress))),
            tuple(subnets.get(lid, ())),
            draft.source,
        )
        for lid, draft in state.network_acls.items()
    }
