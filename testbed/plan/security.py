"""Security groups and network ACLs of the model, as the network plan carries them.

Pure conversion: the plan keeps only what the data plane enforces (rules the lab emulates,
addresses as strings, groups by logical id); which port carries which groups is decided in
testbed.plan.network with the hosts.
"""

from __future__ import annotations

from testbed.model.types import (
    NetworkAcl,
    NetworkAclEntry,
    SecurityGroup,
    SecurityGroupRule,
    StackModel,
)
from testbed.plan.network import (
    NaclEntryPlan,
    NaclPlan,
    SecurityGroupPlan,
    SgRulePlan,
)


def _rule_plan(rule: SecurityGroupRule) -> SgRulePlan:
    return SgRulePlan(
        protocol=rule.protocol,
        from_port=rule.from_port,
        to_port=rule.to_port,
        cidr=str(rule.cidr) if rule.cidr is not None else None,
        group=rule.group,
    )


def _group_plan(group: SecurityGroup) -> SecurityGroupPlan:
    # IPv6 and prefix-list rules are accepted by the model and reported there; they match
    # nothing in an IPv4 lab, so the data plane never sees them.
    return SecurityGroupPlan(
        name=group.logical_id,
        group_id=group.group_id,
        vpc=group.vpc_id,
        ingress=tuple(_rule_plan(r) for r in group.ingress if r.emulated),
        egress=tuple(_rule_plan(r) for r in group.egress if r.emulated),
    )


def security_group_plans(model: StackModel) -> tuple[SecurityGroupPlan, ...]:
    """Every security group of the stack (default groups included), by logical id."""
    return tuple(_group_plan(model.security_groups[k]) for k in sorted(model.security_groups))


def _entry_plan(entry: NetworkAclEntry) -> NaclEntryPlan:
    return NaclEntryPlan(
        rule_number=entry.rule_number,
        egress=entry.egress,
        protocol=entry.protocol,
        cidr=str(entry.cidr),
        allow=entry.allow,
        ports=entry.ports,
        icmp=entry.icmp,
    )


def _nacl_plan(acl: NetworkAcl) -> NaclPlan:
    # First match wins in rule-number order, per direction; rule numbers are unique per
    # direction, so (number, direction) is a total order.
    entries = sorted(acl.entries, key=lambda e: (e.rule_number, e.egress))
    return NaclPlan(
        name=acl.logical_id,
        vpc=acl.vpc_id,
        subnets=tuple(sorted(acl.subnets)),
        entries=tuple(_entry_plan(e) for e in entries),
    )


def nacl_plans(model: StackModel) -> tuple[NaclPlan, ...]:
    """Every network ACL of the stack, by logical id."""
    return tuple(_nacl_plan(model.network_acls[k]) for k in sorted(model.network_acls))


def subnet_nacls(model: StackModel) -> dict[str, str]:
    """Subnet logical id -> the NACL associated with it (absent: the VPC's default NACL)."""
    out: dict[str, str] = {}
    for name in sorted(model.network_acls):
        for subnet in model.network_acls[name].subnets:
            out.setdefault(subnet, name)
    return out
