"""AWS::EC2::SecurityGroup and the standalone AWS::EC2::SecurityGroupIngress / Egress.

Every rule, embedded or standalone, is normalised into one SecurityGroupRule: protocol as an
IANA number (-1 all), ports only where they mean something (tcp/udp range, icmp type/code),
exactly one peer (a CIDR or a group's logical id). IPv6 and prefix-list peers are accepted,
kept with emulated=False (they match nothing in an IPv4 lab) and listed as ignored.
A group without embedded egress rules gets AWS's allow-all egress, which standalone egress
rules do not remove (EC2 only adds rules).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from ipaddress import IPv4Network
from typing import Any

from testbed.errors import BadInput, TemplateErrors
from testbed.model.resources.base import Prop, ResourceContext, ResourceType, prop, ref
from testbed.model.resources.ec2 import VPC
from testbed.model.resources.elbv2.common import digest, items, nested
from testbed.model.resources.group_refs import (
    DEFAULT_GROUP_NAME,
    GROUP_PREFIX,
    SECURITY_GROUP,
    default_vpc,
    ensure_default_group,
    find_group,
    find_group_by_name,
    group_physical_id,
)
from testbed.model.resources.registry import register
from testbed.model.state import BuildState, SecurityGroupDraft
from testbed.model.types import (
    ALL_PROTOCOLS,
    IgnoredProperty,
    SecurityGroup,
    SecurityGroupRule,
    Source,
)
from testbed.template.intrinsics import as_text
from testbed.template.nodes import describe, did_you_mean

INGRESS = "AWS::EC2::SecurityGroupIngress"
EGRESS = "AWS::EC2::SecurityGroupEgress"

TCP, UDP, ICMP, ICMPV6 = 6, 17, 1, 58
PROTOCOL_NAMES = {"tcp": TCP, "udp": UDP, "icmp": ICMP, "icmpv6": ICMPV6}
MAX_TEXT = 255
# AWS's characters for a VPC group's name and description.
GROUP_TEXT = re.compile(r"^[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]*$")
ALLOW_ALL = IPv4Network("0.0.0.0/0")


def _masked_cidr(ctx: ResourceContext, text: str, where: str, line: int | None) -> IPv4Network:
    """A rule's CidrIp as EC2 keeps it: host bits masked off (192.168.1.0/0 is 0.0.0.0/0)."""
    try:
        return IPv4Network(text.strip(), strict=False)
    except ValueError:
        raise ctx.fail(
            f"{where} {text!r} is not an IPv4 CIDR block such as 10.0.0.0/16",
            line=line,
            hint="IPv6 blocks go in CidrIpv6" if ":" in text else None,
        ) from None


RULE = {
    "IpProtocol": Prop("any", required=True),
    "FromPort": prop("integer"),
    "ToPort": prop("integer"),
    # Text, masked here: EC2 accepts a block with host bits set (10.0.0.1/8) and keeps its
    # network (10.0.0.0/8), unlike VPC and subnet blocks.
    "CidrIp": prop("string"),
    "CidrIpv6": prop("string"),
    "Description": prop("string"),
}
# Peers of each direction: (property, kind) with kind 'cidr' | 'group' | 'name' | 'ipv6' |
# 'prefix-list'.
INGRESS_PEERS = {
    "CidrIp": "cidr",
    "CidrIpv6": "ipv6",
    "SourceSecurityGroupId": "group",
    "SourceSecurityGroupName": "name",
    "SourcePrefixListId": "prefix-list",
}
EGRESS_PEERS = {
    "CidrIp": "cidr",
    "CidrIpv6": "ipv6",
    "DestinationSecurityGroupId": "group",
    "DestinationPrefixListId": "prefix-list",
}
INGRESS_RULE = {
    **RULE,
    "SourceSecurityGroupId": prop("string"),
    "SourceSecurityGroupName": prop("string"),
    "SourcePrefixListId": prop("string"),
}
EGRESS_RULE = {
    **RULE,
    "DestinationSecurityGroupId": prop("string"),
    "DestinationPrefixListId": prop("string"),
}
# Another account's group: the lab has one account.
RULE_IGNORED = frozenset({"SourceSecurityGroupOwnerId"})


# --- One rule --------------------------------------------------------------------------------


def _key(where: str, key: str) -> str:
    """A property's name in messages: SecurityGroupIngress[0].FromPort, or FromPort."""
    return f"{where}.{key}" if where else key


def _lead(where: str) -> str:
    """The start of a message about a whole rule: "SecurityGroupIngress[0]: " or nothing."""
    return f"{where}: " if where else ""


def protocol_number(ctx: ResourceContext, value: Any, where: str, line: int | None) -> int:
    """IpProtocol as AWS reads it: tcp/udp/icmp/icmpv6 in any case, -1, or a number 0-255."""
    text = as_text(value)
    if text is None or isinstance(value, bool):
        raise ctx.fail(
            f"{where} must be a protocol name or number, not {describe(value)}", line=line
        )
    word = text.strip().lower()
    if word in PROTOCOL_NAMES:
        return PROTOCOL_NAMES[word]
    if re.fullmatch(r"-?\d{1,9}", word):
        number = int(word)
        if number == ALL_PROTOCOLS or 0 <= number <= 255:
            return number
    hint = did_you_mean(word, PROTOCOL_NAMES)
    if word in ("all", "any", "*"):
        hint = "use -1 for every protocol"
    raise ctx.fail(
        f"{where} must be tcp, udp, icmp, icmpv6, -1 (all) or a protocol number from 0 "
        f"to 255, not {text!r}",
        line=line,
        hint=hint,
    )


PORT_PROTOCOLS = {TCP: "tcp", UDP: "udp", ICMP: "icmp", ICMPV6: "icmpv6"}


def _ports(
    ctx: ResourceContext,
    protocol: int,
    values: Mapping[str, Any],
    lines: Mapping[str, int | None],
    where: str,
    line: int | None,
) -> tuple[int | None, int | None]:
    """(from, to) for tcp/udp (range) and icmp (type, code); None where AWS ignores them."""
    if protocol not in PORT_PROTOCOLS:
        return None, None  # -1 and other protocols: every port, whatever is written
    name = PORT_PROTOCOLS[protocol]
    low, high = values.get("FromPort"), values.get("ToPort")
    if low is None and high is None and protocol == ICMPV6:
        return None, None  # icmpv6 without ports: every type and code
    if low is None or high is None:
        missing = "FromPort" if low is None else "ToPort"
        example = "FromPort: 80, ToPort: 80"
        if protocol not in (TCP, UDP):
            example = "FromPort: -1, ToPort: -1 (all types and codes)"
        raise ctx.fail(
            f"{_lead(where)}{'an' if name[0] == 'i' else 'a'} {name} rule needs FromPort and "
            f"ToPort; {missing} is missing",
            line=line,
            hint=f"for example {example}",
        )
    at = (lines.get("FromPort", line), lines.get("ToPort", line))
    if protocol in (TCP, UDP):
        return _port_range(ctx, name, low, high, at, where)
    return _icmp_type_code(ctx, name, low, high, at, where)


def _port_range(
    ctx: ResourceContext, name: str, low: int, high: int, at: tuple[int | None, ...], where: str
) -> tuple[int, int]:
    for value, key, line in ((low, "FromPort", at[0]), (high, "ToPort", at[1])):
        if not 0 <= value <= 65535:
            raise ctx.fail(
                f"{_key(where, key)} {value} is not a {name} port: use 0 to 65535",
                line=line,
                hint="FromPort: 0, ToPort: 65535 covers every port" if value == -1 else None,
            )
    if low > high:
        raise ctx.fail(
            f"{_lead(where)}FromPort {low} is greater than ToPort {high}",
            line=at[0],
            hint=f"the range is FromPort: {high}, ToPort: {low}",
        )
    return low, high


def _icmp_type_code(
    ctx: ResourceContext, name: str, low: int, high: int, at: tuple[int | None, ...], where: str
) -> tuple[int, int]:
    for value, key, line, what in (
        (low, "FromPort", at[0], "type"),
        (high, "ToPort", at[1], "code"),
    ):
        if not -1 <= value <= 255:
            raise ctx.fail(
                f"{_key(where, key)} is the {name} {what}: -1 (all) or 0 to 255, not {value}",
                line=line,
            )
    if low == -1 and high != -1:
        # AWS: "if you specify all ICMP types, you must specify all codes".
        raise ctx.fail(
            f"{_lead(where)}FromPort -1 means every {name} type, so ToPort (the code) must be "
            f"-1 too, not {high}",
            line=at[1],
        )
    return low, high


def _peer(
    ctx: ResourceContext,
    group: SecurityGroupDraft,
    values: Mapping[str, Any],
    lines: Mapping[str, int | None],
    peers: Mapping[str, str],
    where: str,
    line: int | None,
) -> tuple[IPv4Network | None, str | None, str | None]:
    """(cidr, group, not-emulated property) of the rule's one peer."""
    given = [key for key in peers if key in values]
    if not given:
        side = "source" if peers is INGRESS_PEERS else "destination"
        raise ctx.fail(
            f"{_lead(where)}the rule has no {side}; give exactly one of {', '.join(peers)}",
            line=line,
            hint="CidrIp: 0.0.0.0/0 for everywhere",
        )
    if len(given) > 1:
        raise ctx.fail(
            f"{_lead(where)}a rule has exactly one peer, not {' and '.join(given)}",
            line=lines.get(given[1], line),
            hint="write one rule per peer",
        )
    key = given[0]
    kind, at = peers[key], lines.get(key, line)
    if kind == "cidr":
        return _masked_cidr(ctx, values[key], _key(where, key), at), None, None
    if kind in ("ipv6", "prefix-list"):
        return None, None, key
    if kind == "name":
        if not ctx.state.vpcs[group.vpc_id].is_default:
            raise ctx.fail(
                f"{_key(where, key)} names a group, which only works in the default VPC; "
                f"{group.logical_id} is in {group.vpc_id}",
                line=at,
                hint="use SourceSecurityGroupId: !Ref <a security group>",
            )
        peer = find_group_by_name(ctx, values[key], group.vpc_id, _key(where, key), at)
    else:
        peer = find_group(ctx, values[key], _key(where, key), at)
    peer_vpc = ctx.state.security_groups[peer].vpc_id
    if peer_vpc != group.vpc_id:
        raise ctx.fail(
            f"{_key(where, key)}: group {peer} is in {peer_vpc}, but {group.logical_id} is in "
            f"{group.vpc_id}; both groups of a rule must be in the same VPC",
            line=at,
        )
    return None, peer, None


def read_rule(
    ctx: ResourceContext,
    group: SecurityGroupDraft,
    values: Mapping[str, Any],
    lines: Mapping[str, int | None],
    *,
    egress: bool,
    where: str,
    path: str,
    line: int | None,
) -> SecurityGroupRule:
    """One checked rule of `group`; `path` prefixes property names in the ignored list."""
    protocol = protocol_number(
        ctx, values["IpProtocol"], _key(where, "IpProtocol"), lines.get("IpProtocol", line)
    )
    low, high = _ports(ctx, protocol, values, lines, where, line)
    peers = EGRESS_PEERS if egress else INGRESS_PEERS
    cidr, peer, not_emulated = _peer(ctx, group, values, lines, peers, where, line)
    if not_emulated is not None:
        ignored = IgnoredProperty(ctx.logical_id, path + not_emulated)
        if ignored not in ctx.state.ignored:
            ctx.state.ignored.append(ignored)
    defined_by = None if ctx.type.name == SECURITY_GROUP else ctx.logical_id
    return SecurityGroupRule(
        protocol,
        low,
        high,
        cidr=cidr,
        group=peer,
        description=values.get("Description", ""),
        emulated=not_emulated is None,
        defined_by=defined_by,
        source=Source(ctx.source.file, line),
    )


# --- AWS::EC2::SecurityGroup -----------------------------------------------------------------


def _text(ctx: ResourceContext, key: str, what: str) -> str:
    value = ctx.props[key]
    if len(value) > MAX_TEXT:
        raise ctx.fail(f"{key} is {len(value)} characters long; AWS allows {MAX_TEXT}", prop=key)
    bad = sorted({c for c in value if not GROUP_TEXT.match(c)})
    if bad:
        raise ctx.fail(
            f"{key} {value!r} has characters AWS refuses in a {what}: {' '.join(bad)}",
            prop=key,
            hint="use letters, digits, spaces and ._-:/()#,@[]+=&;{}!$*",
        )
    return value


def _vpc(ctx: ResourceContext) -> str:
    if "VpcId" in ctx.props:
        return ctx.props["VpcId"]
    found = default_vpc(ctx.state)
    if found is None:
        raise ctx.fail(
            "the group has no VpcId, so it belongs to the region's default VPC, which this "
            "stack does not have",
            hint="add VpcId: !Ref <a VPC>",
        )
    return found


def _name(ctx: ResourceContext, vpc_id: str) -> str:
    state, lid = ctx.state, ctx.logical_id
    if "GroupName" not in ctx.props:
        # Like CloudFormation: stack, logical id and a random-looking suffix.
        return f"{state.stack_name}-{lid}-{digest(state, lid, 'group')[:12].upper()}"
    name = _text(ctx, "GroupName", "group name")
    if not name:
        raise ctx.fail("GroupName is empty", prop="GroupName", hint="leave GroupName out")
    if name.lower().startswith(GROUP_PREFIX):
        raise ctx.fail(
            f"GroupName {name!r} must not start with {GROUP_PREFIX!r} (AWS keeps that for ids)",
            prop="GroupName",
        )
    if name.lower() == DEFAULT_GROUP_NAME:
        raise ctx.fail(
            "GroupName 'default' is the name of the VPC's default group",
            prop="GroupName",
            hint="use !GetAtt <VPC>.DefaultSecurityGroup for that group, or choose another name",
        )
    for other in state.security_groups.values():
        if other.vpc_id == vpc_id and other.name == name:
            raise ctx.fail(
                f"GroupName {name!r} is already used by {other.logical_id} in {vpc_id}; "
                "group names are unique per VPC",
                prop="GroupName",
            )
    return name


def embedded_rules(
    ctx: ResourceContext, group: SecurityGroupDraft, key: str
) -> list[SecurityGroupRule]:
    """The rules of SecurityGroupIngress / SecurityGroupEgress, every problem reported."""
    if key not in ctx.props:
        return []
    egress = key == "SecurityGroupEgress"
    rules: list[SecurityGroupRule] = []
    errors: list[BadInput] = []
    for item, line, where in items(ctx, key):
        try:
            values, lines = nested(
                ctx,
                item,
                where,
                line,
                EGRESS_RULE if egress else INGRESS_RULE,
                ignored=frozenset() if egress else RULE_IGNORED,
            )
            rules.append(
                read_rule(
                    ctx,
                    group,
                    values,
                    lines,
                    egress=egress,
                    where=where,
                    path=f"{where}.",
                    line=line,
                )
            )
        except TemplateErrors as err:
            errors.extend(err.errors)
        except BadInput as err:
            errors.append(err)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise TemplateErrors(errors)
    return rules


def _build_group(ctx: ResourceContext) -> None:
    state, lid = ctx.state, ctx.logical_id
    vpc_id = _vpc(ctx)
    description = _text(ctx, "GroupDescription", "group description")
    group = SecurityGroupDraft(
        lid,
        group_physical_id(ctx.state, lid),
        vpc_id,
        _name(ctx, vpc_id),
        description,
        source=ctx.source,
    )
    errors: list[BadInput] = []
    for key in ("SecurityGroupIngress", "SecurityGroupEgress"):
        try:
            rules = embedded_rules(ctx, group, key)
        except TemplateErrors as err:
            errors.extend(err.errors)
            continue
        except BadInput as err:
            errors.append(err)
            continue
        if key == "SecurityGroupIngress":
            group.ingress = rules
        else:
            group.egress = rules
            # Embedded egress rules replace AWS's allow-all; an empty list counts as none.
            group.implicit_egress = not rules
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise TemplateErrors(errors)
    state.security_groups[lid] = group


register(
    ResourceType(
        SECURITY_GROUP,
        _build_group,
        ref_prefix=GROUP_PREFIX,
        properties={
            "GroupDescription": prop("string", required=True),
            "GroupName": prop("string"),
            "VpcId": ref(VPC),
            "SecurityGroupIngress": prop("list"),
            "SecurityGroupEgress": prop("list"),
        },
        attributes={
            "GroupId": lambda s, lid: group_physical_id(s, lid),
            "VpcId": lambda s, lid: s.physical("vpc-", s.security_groups[lid].vpc_id),
        },
    )
)


# --- Standalone rules ------------------------------------------------------------------------


def _target_group(ctx: ResourceContext) -> SecurityGroupDraft:
    """The group a standalone rule adds to: GroupId, or GroupName in the default VPC."""
    state = ctx.state
    has = [key for key in ("GroupId", "GroupName") if key in ctx.props]
    if len(has) != 1:
        raise ctx.fail(
            "name the group the rule adds to with GroupId" + (", not both" if has else ""),
            prop=has[-1] if has else None,
            hint=None if has else "add GroupId: !Ref <a security group>",
        )
    if has[0] == "GroupId":
        return state.security_groups[
            find_group(ctx, ctx.props["GroupId"], "GroupId", ctx.line("GroupId"))
        ]
    vpc_id = default_vpc(state)
    if vpc_id is None:
        raise ctx.fail(
            "GroupName names a group of the default VPC, which this stack does not have",
            prop="GroupName",
            hint="use GroupId: !Ref <a security group>",
        )
    lid = find_group_by_name(
        ctx, ctx.props["GroupName"], vpc_id, "GroupName", ctx.line("GroupName")
    )
    return state.security_groups[lid]


def _build_standalone(ctx: ResourceContext) -> None:
    egress = ctx.type.name == EGRESS
    group = _target_group(ctx)
    rule = read_rule(
        ctx, group, ctx.props, ctx.lines, egress=egress, where="", path="", line=ctx.line()
    )
    (group.egress if egress else group.ingress).append(rule)


def _standalone(
    name: str, rule: Mapping[str, Prop], group_props: Mapping[str, Prop], ignored: frozenset[str]
) -> ResourceType:
    return ResourceType(
        name, _build_standalone, properties={**group_props, **rule}, ignored=ignored
    )


register(
    _standalone(
        INGRESS,
        INGRESS_RULE,
        {"GroupId": prop("string"), "GroupName": prop("string")},
        RULE_IGNORED,
    )
)
register(_standalone(EGRESS, EGRESS_RULE, {"GroupId": prop("string", required=True)}, frozenset()))


# --- Freezing --------------------------------------------------------------------------------


def frozen_groups(state: BuildState) -> dict[str, SecurityGroup]:
    """Every group of the stack, a default group per VPC included, frozen."""
    for vpc_id in state.vpcs:
        ensure_default_group(state, vpc_id)
    frozen = {}
    for lid, draft in state.security_groups.items():
        egress = list(draft.egress)
        if draft.implicit_egress:
            egress.insert(0, SecurityGroupRule(ALL_PROTOCOLS, None, None, cidr=ALLOW_ALL))
        frozen[lid] = SecurityGroup(
            lid,
            draft.group_id,
            draft.vpc_id,
            draft.name,
            draft.description,
            tuple(draft.ingress),
            tuple(egress),
            draft.is_default,
            draft.source,
        )
    return frozen
