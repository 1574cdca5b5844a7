"""Route53: records the lab's resolver serves, and hosted zones that only hold them.

AWS::Route53::RecordSet and RecordSetGroup are emulated: A records and CNAMEs become
DnsRecords the lab's resolver (testbed.lab.services.dns) answers, and an alias record to a
load balancer (AliasTarget.DNSName: !GetAtt LB.DNSName) is a CNAME to the load balancer's
name, which the resolver knows. Other record types (AAAA, TXT, MX, ...) and routing policies
(weighted, failover, latency, geolocation) are accepted and reported: every value is served.

AWS::Route53::HostedZone has no packets of its own: an inert resource whose Ref is a zone id
("Z" and 13 characters, like AWS's) and whose Name decides which records may go in it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from testbed.model.elbv2_types import EXTRAS_KEY as ELBV2_KEY
from testbed.model.resources.base import (
    Prop,
    ResourceContext,
    ResourceType,
    check_properties,
    prop,
)
from testbed.model.resources.registry import register
from testbed.model.state import BuildState
from testbed.model.types import DnsRecord, IgnoredProperty, InertResource
from testbed.template.intrinsics import as_text
from testbed.template.nodes import LDict, describe, line_of

RECORD_SET = "AWS::Route53::RecordSet"
RECORD_SET_GROUP = "AWS::Route53::RecordSetGroup"
HOSTED_ZONE = "AWS::Route53::HostedZone"
# StackModel.extras["route53"]["zones"]: hosted zone logical id -> its name.
EXTRAS_KEY = "route53"

SERVED_TYPES = ("A", "CNAME")
# Every record type Route53 knows (the others are refused as AWS refuses them).
RECORD_TYPES = (
    "A",
    "AAAA",
    "CAA",
    "CNAME",
    "DS",
    "HTTPS",
    "MX",
    "NAPTR",
    "NS",
    "PTR",
    "SOA",
    "SPF",
    "SRV",
    "SSHFP",
    "SVCB",
    "TLSA",
    "TXT",
)
# Routing policies and health checks: accepted, every value is served (reported).
ROUTING = frozenset(
    {
        "SetIdentifier",
        "Weight",
        "Failover",
        "Region",
        "GeoLocation",
        "GeoProximityLocation",
        "CidrRoutingConfig",
        "HealthCheckId",
        "MultiValueAnswer",
    }
)
ZONE_PROPERTIES = {"HostedZoneId": prop("string"), "HostedZoneName": prop("string")}
RECORD_PROPERTIES: dict[str, Prop] = {
    "Name": prop("string", required=True),
    "Type": prop("string", required=True),
    "TTL": prop("integer"),
    "ResourceRecords": prop("list"),
    "AliasTarget": prop("map"),
    **ZONE_PROPERTIES,
}
ALIAS_PROPERTIES = {
    "DNSName": prop("string", required=True),
    "HostedZoneId": prop("string", required=True),
    "EvaluateTargetHealth": prop("boolean"),
}
NAME_SERVER_DOMAINS = ("com", "net", "org", "co.uk")
ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _digest(state: BuildState, logical_id: str, purpose: str) -> int:
    text = f"{state.stack_name}/{logical_id}/{purpose}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest(), "big")


def zone_id(state: BuildState, logical_id: str) -> str:
    """A hosted zone id as AWS shapes them ("Z" + 13 upper-case letters and digits), the
    same for the same stack and logical id."""
    return "Z" + _alnum(_digest(state, logical_id, "hosted-zone"), 13)


def _alnum(number: int, count: int) -> str:
    chars = []
    for _ in range(count):
        number, digit = divmod(number, len(ALNUM))
        chars.append(ALNUM[digit])
    return "".join(chars)


def name_servers(state: BuildState, logical_id: str) -> list[str]:
    """Four delegation-set names shaped like Route53's (ns-N.awsdns-NN.TLD)."""
    number = _digest(state, logical_id, "name-servers")
    out = []
    for tld in NAME_SERVER_DOMAINS:
        number, ns = divmod(number, 2048)
        number, group = divmod(number, 64)
        out.append(f"ns-{ns}.awsdns-{group:02d}.{tld}")
    return out


def fqdn(text: str) -> str:
    """A domain name as the lab keeps it: lower case, no trailing dot."""
    return text.strip().rstrip(".").lower()


def in_zone(name: str, zone: str) -> bool:
    return name == zone or name.endswith("." + zone)


def names_leading_to(records: Iterable[DnsRecord], targets: Iterable[str]) -> list[str]:
    """Names of the records that lead to one of `targets` (lower-case names: a load
    balancer's DNS name...): a CNAME, or an alias, which the model keeps as a CNAME, followed
    through chains of records; in the order found."""
    records = tuple(records)
    found: list[str] = []
    reached = {t.lower() for t in targets}
    changed = True
    while changed:
        changed = False
        for record in records:
            if record.type != "CNAME" or record.name in reached:
                continue
            if any(v.lower() in reached for v in record.values):
                reached.add(record.name)
                found.append(record.name)
                changed = True
    return found


def zones_family(state: BuildState, section: str) -> dict[str, str]:
    """A section of StackModel.extras["route53"]: "zones" (hosted zone logical id -> its
    name) or "names" (record set logical id -> its first record's name)."""
    family: dict[str, Any] = state.extras.setdefault(EXTRAS_KEY, {})
    found: dict[str, str] = family.setdefault(section, {})
    return found


def zones(state: BuildState) -> dict[str, str]:
    """Hosted zones of this stack: logical id -> name (fqdn)."""
    return zones_family(state, "zones")


# --- HostedZone -------------------------------------------------------------------------


def _build_zone(ctx: ResourceContext) -> None:
    state, lid = ctx.state, ctx.logical_id
    name = fqdn(ctx.props["Name"])
    if not name or "." not in name or any(not label for label in name.split(".")):
        raise ctx.fail(
            f"Name {ctx.props['Name']!r} is not a fully qualified domain name",
            prop="Name",
            hint="for example example.com",
        )
    # Two zones may share a name on AWS (a public and a private one: split horizon); the
    # lab has one resolver, which serves the records of both.
    zones(state)[lid] = name
    ref = zone_id(state, lid)
    private = "VPCs" in ctx.props
    state.inert[lid] = InertResource(
        lid,
        HOSTED_ZONE,
        ref,
        {"Id": ref, "NameServers": name_servers(state, lid)},
        note=(
            "not emulated: a hosted zone has no packets; the lab's resolver serves its "
            f"records{' to every host (private zone)' if private else ''}"
        ),
        source=ctx.source,
    )


register(
    ResourceType(
        HOSTED_ZONE,
        _build_zone,
        properties={"Name": prop("string", required=True), "VPCs": prop("list")},
        ignored=frozenset(
            {
                "HostedZoneConfig",
                "HostedZoneTags",
                "QueryLoggingConfig",
                "DelegationSetId",
                "HostedZoneFeatures",
            }
        ),
        ref_value=lambda s, lid: s.inert[lid].ref,
        attributes={
            "Id": lambda s, lid: s.inert[lid].ref,
            "NameServers": lambda s, lid: list(s.inert[lid].attributes["NameServers"]),
        },
    )
)


# --- RecordSet and RecordSetGroup -------------------------------------------------------


@dataclass(frozen=True)
class _Zone:
    """The zone a record goes in: its name when known (a zone of this stack, or given by
    HostedZoneName), and how the template named it (for messages)."""

    name: str | None
    shown: str
    key: str  # which zone: the logical id of a zone of this stack, else its name or id


def _zone(
    ctx: ResourceContext,
    values: dict[str, Any],
    lines: dict[str, int | None],
    where: str,
    inherited: _Zone | None,
    line: int | None = None,
) -> _Zone:
    """The record's zone: HostedZoneId or HostedZoneName (one, not both), or the group's."""
    given = [k for k in ZONE_PROPERTIES if k in values]
    if len(given) == 2:
        raise ctx.fail(
            f"{where}specify either HostedZoneId or HostedZoneName, not both",
            line=lines.get("HostedZoneName"),
        )
    if not given:
        if inherited is not None:
            return inherited
        raise ctx.fail(
            f"{where}HostedZoneId or HostedZoneName is required", line=line or ctx.line()
        )
    key = given[0]
    text = values[key].strip()
    if key == "HostedZoneName":
        return _Zone(fqdn(text), text, fqdn(text))
    # A zone of this stack (!Ref Zone / !GetAtt Zone.Id), or one made outside: its
    # name is then unknown and every record name is taken as it is.
    owner = ctx.state.physical_ids.get(text)
    if owner is not None and ctx.state.types.get(owner) == HOSTED_ZONE:
        name = zones(ctx.state).get(owner)
        if name is None:
            raise ctx.fail(
                f"{where}HostedZoneId names {owner} before it is created",
                line=lines.get(key),
                hint=f"write !Ref {owner} so that {owner} is created first",
            )
        return _Zone(name, f"{owner} ({name})", owner)
    return _Zone(None, text, text)


def _check_name(ctx: ResourceContext, raw: str, zone: _Zone, where: str, line: int | None) -> str:
    name = fqdn(raw)
    if not name or any(not label for label in name.split(".")):
        raise ctx.fail(f"{where}Name {raw!r} is not a domain name", line=line)
    if zone.name is not None and not in_zone(name, zone.name):
        # AWS: "RRSet with DNS name ... is not permitted in zone ..."
        raise ctx.fail(
            f"{where}Name {name} is not in hosted zone {zone.shown}",
            line=line,
            hint=f"use a name ending in .{zone.name}",
        )
    return name


def _note(ctx: ResourceContext, text: str) -> None:
    ctx.state.ignored.append(IgnoredProperty(ctx.logical_id, text))


def _alias_target(state: BuildState, dns_name: str) -> str:
    """The name an alias points at, as the lab serves it: a load balancer's DNS name (AWS
    gives it lower case, sometimes with "dualstack."), a record of this stack, or as given."""
    name = fqdn(dns_name)
    lbs = state.extras.get(ELBV2_KEY, {}).get("load_balancers", {})
    known = {lb.dns_name.lower() for lb in lbs.values()}
    if name.startswith("dualstack.") and name.removeprefix("dualstack.") in known:
        return name.removeprefix("dualstack.")
    return name


def _values(
    ctx: ResourceContext,
    values: dict[str, Any],
    lines: dict[str, int | None],
    where: str,
    rtype: str,
) -> tuple[str, ...]:
    """ResourceRecords of a record that is not an alias, checked for A and CNAME."""
    items = values["ResourceRecords"]
    at = lines.get("ResourceRecords")
    if not items:
        raise ctx.fail(f"{where}ResourceRecords must not be empty", line=at)
    out: list[str] = []
    for index, item in enumerate(items):
        text = as_text(item)
        line = line_of(items, index, at)
        if text is None:
            raise ctx.fail(
                f"{where}ResourceRecords[{index}] must be text, not {describe(item)}", line=line
            )
        text = text.strip()
        if rtype == "A":
            try:
                IPv4Address(text)
            except ValueError:
                raise ctx.fail(
                    f"{where}ResourceRecords[{index}] {text!r} is not an IPv4 address "
                    "(an A record's value)",
                    line=line,
                ) from None
        elif rtype == "CNAME":
            text = fqdn(text)
        out.append(text)
    if rtype == "CNAME" and len(out) > 1:
        raise ctx.fail(f"{where}a CNAME record has exactly one value, not {len(out)}", line=at)
    return tuple(out)


def _record(
    ctx: ResourceContext,
    item: LDict,
    where: str,
    line: int | None,
    inherited: _Zone | None,
) -> None:
    """One record set (the resource's own properties, or one of a group's RecordSets)."""
    if where:
        values, lines = check_properties(
            ctx.logical_id,
            item,
            RECORD_PROPERTIES,
            ROUTING | {"Comment"},
            {},
            ctx.state,
            path=where,
            line=line,
        )
    else:
        values, lines = ctx.props, ctx.lines
    zone = _zone(ctx, values, lines, where, inherited, line)
    name = _check_name(ctx, values["Name"], zone, where, lines.get("Name", line))
    zones_family(ctx.state, "names").setdefault(ctx.logical_id, name)
    rtype = values["Type"].strip()
    if rtype not in RECORD_TYPES:
        raise ctx.fail(
            f"{where}Type must be one of {', '.join(RECORD_TYPES)}, not {rtype!r}",
            line=lines.get("Type", line),
        )
    alias = values.get("AliasTarget")
    if alias is not None:
        for key in ("ResourceRecords", "TTL"):
            if key in values:
                raise ctx.fail(
                    f"{where}an alias record (AliasTarget) has no {key}",
                    line=lines.get(key),
                    hint=f"leave {key} out: the alias target gives the answer",
                )
        target, _ = check_properties(
            ctx.logical_id,
            alias if isinstance(alias, LDict) else LDict(alias, line=lines.get("AliasTarget")),
            ALIAS_PROPERTIES,
            frozenset(),
            {},
            ctx.state,
            path=f"{where}AliasTarget.",
            line=lines.get("AliasTarget"),
        )
        served: tuple[str, ...] = (_alias_target(ctx.state, target["DNSName"]),)
        if target.get("EvaluateTargetHealth"):
            _note(ctx, f"{where}AliasTarget.EvaluateTargetHealth")
        kind = "CNAME" if rtype in ("A", "CNAME") else rtype
    else:
        if "ResourceRecords" not in values:
            raise ctx.fail(
                f"{where}ResourceRecords or AliasTarget is required", line=lines.get("Name", line)
            )
        if "TTL" not in values:
            raise ctx.fail(
                f"{where}TTL is required for a record that is not an alias",
                line=lines.get("Name", line),
            )
        served = _values(ctx, values, lines, where, rtype)
        kind = rtype
    if kind not in SERVED_TYPES:
        _note(ctx, f"{where}Type {rtype} (accepted; the lab's resolver serves A and CNAME only)")
        return
    if name.startswith("*."):
        _note(ctx, f"{where}Name {name} (wildcard names are not served by the lab's resolver)")
        return
    if where:
        routed = any(k in item for k in ROUTING)
    else:  # the resource's own routing properties were set aside as ignored
        routed = any(
            i.logical_id == ctx.logical_id and i.property in ROUTING for i in ctx.state.ignored
        )
    _check_clash(ctx, zone, name, kind, routed, where, lines.get("Name", line))
    ctx.state.dns_records.append(DnsRecord(ctx.logical_id, name, kind, served, ctx.source))


def _article(kind: str) -> str:
    return f"an {kind}" if kind == "A" else f"a {kind}"


def _check_clash(
    ctx: ResourceContext,
    zone: _Zone,
    name: str,
    kind: str,
    routed: bool,
    where: str,
    line: int | None,
) -> None:
    """As Route53 in one zone: one record of a name and type (unless a routing policy tells
    them apart), and a CNAME alone at its name. Remembers this record for the next ones."""
    family: dict[str, Any] = ctx.state.extras.setdefault(EXTRAS_KEY, {})
    # (zone, name) -> [(type, logical id)] of the records served so far.
    taken: dict[tuple[str, str], list[tuple[str, str]]] = family.setdefault("taken", {})
    at = taken.setdefault((zone.key, name), [])
    for other_kind, other in at:
        if other_kind == "CNAME" or kind == "CNAME":
            if other_kind != kind or not routed:
                raise ctx.fail(
                    f"{where}{name} already has {_article(other_kind)} record ({other}); "
                    "a CNAME cannot share its name with another record",
                    line=line,
                )
        elif not routed:
            raise ctx.fail(
                f"{where}{name} already has {_article(kind)} record ({other})",
                line=line,
                hint="give both a SetIdentifier and a routing policy (Weight, ...), or merge "
                "their ResourceRecords",
            )
    at.append((kind, ctx.logical_id))


def _build_record_set(ctx: ResourceContext) -> None:
    _record(ctx, LDict(ctx.props, line=ctx.line()), "", ctx.line(), None)


def _build_group(ctx: ResourceContext) -> None:
    given = {k: ctx.props[k] for k in ZONE_PROPERTIES if k in ctx.props}
    group_zone = _zone(ctx, given, ctx.lines, "", None) if given else None
    sets = ctx.props.get("RecordSets")
    if not sets:
        raise ctx.fail("RecordSets must list at least one record set", prop="RecordSets")
    at = ctx.line("RecordSets")
    for index, item in enumerate(sets):
        where = f"RecordSets[{index}]."
        line = line_of(sets, index, at)
        if not isinstance(item, dict):
            raise ctx.fail(
                f"RecordSets[{index}] must be a mapping, not {describe(item)}", line=line
            )
        _record(
            ctx,
            item if isinstance(item, LDict) else LDict(item, line=line),
            where,
            line,
            group_zone,
        )


def _record_ref(state: BuildState, logical_id: str) -> str:
    # A record set's Ref is its domain name (AWS: "mysite.example.com").
    return zones_family(state, "names")[logical_id]


def _group_id(state: BuildState, logical_id: str) -> str:
    tag = _alnum(_digest(state, logical_id, "record-set-group"), 13)
    return f"{state.stack_name}-{logical_id}-{tag}"


register(
    ResourceType(
        RECORD_SET,
        _build_record_set,
        properties={**RECORD_PROPERTIES},
        ignored=ROUTING | {"Comment"},
        ref_value=_record_ref,
    )
)
register(
    ResourceType(
        RECORD_SET_GROUP,
        _build_group,
        properties={**ZONE_PROPERTIES, "RecordSets": prop("list", required=True)},
        ignored=frozenset({"Comment"}),
        ref_value=_group_id,
        attributes={"Id": _group_id},
    )
)
