"""Security groups named by other resources (instances, interfaces, load balancers, rules).

The one place that turns a SecurityGroupIds / GroupSet / SecurityGroups value into logical
ids of AWS::EC2::SecurityGroup resources, so every resource that carries groups reads them
the same way (and the security-group family owns what a "default group" is).

Kept free of the resource families' modules (ec2.py imports it for the VPC's attributes and
the instance's groups), so it only needs the build state.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from testbed.model.resources.base import ResourceContext, find_built, text_list
from testbed.model.state import BuildState, SecurityGroupDraft
from testbed.model.types import ALL_PROTOCOLS, SecurityGroupRule
from testbed.template.nodes import did_you_mean, line_of

SECURITY_GROUP = "AWS::EC2::SecurityGroup"
GROUP_PREFIX = "sg-"
ACL_PREFIX = "acl-"
DEFAULT_GROUP_NAME = "default"
# The logical id of the region's default VPC, made for templates that name no VPC.
DEFAULT_VPC = "DefaultVpc"


def default_group_id(vpc_id: str) -> str:
    """Logical id of a VPC's default security group (a dot: no template id can clash)."""
    return f"{vpc_id}.default"


def default_acl_id(vpc_id: str) -> str:
    """Logical id of a VPC's default network ACL (it allows everything: nothing is built)."""
    return f"{vpc_id}.default"


def group_physical_id(state: BuildState, logical_id: str) -> str:
    """The group id (Ref, GetAtt GroupId) of a security group: sg-<its name in the lab>."""
    return state.physical(GROUP_PREFIX, logical_id)


def acl_physical_id(state: BuildState, logical_id: str) -> str:
    """The id (Ref, GetAtt Id) of a network ACL: acl-<its name in the lab>."""
    return state.physical(ACL_PREFIX, logical_id)


def default_vpc(state: BuildState) -> str | None:
    """The logical id of the stack's default VPC, if it has one."""
    return next((lid for lid, vpc in state.vpcs.items() if vpc.is_default), None)


def ensure_default_group(state: BuildState, vpc_id: str) -> SecurityGroupDraft:
    """The default group of a VPC, made on first use: named "default", all traffic in from
    its own members, all traffic out (AWS's default security group)."""
    lid = default_group_id(vpc_id)
    draft = state.security_groups.get(lid)
    if vpc_id in state.foreign:
        # Another stack's VPC: its default group is that stack's too (in the lab plan).
        state.foreign.setdefault(lid, state.foreign[vpc_id])
        state.foreign_names.setdefault(lid, default_group_id(state.lab_name(vpc_id)))
    if draft is None:
        draft = SecurityGroupDraft(
            lid,
            group_physical_id(state, lid),
            vpc_id,
            DEFAULT_GROUP_NAME,
            "default VPC security group",
            ingress=[SecurityGroupRule(ALL_PROTOCOLS, None, None, group=lid)],
            is_default=True,
            source=state.vpcs[vpc_id].source,
        )
        state.security_groups[lid] = draft
    return draft


def find_group(ctx: ResourceContext, text: str, where: str, line: int | None) -> str:
    """The logical id of the group whose id (sg-..., from !Ref or !GetAtt X.GroupId, or a
    VPC's DefaultSecurityGroup) is `text`; a located error if it is not one of this stack."""
    state = ctx.state
    for vpc_id in state.vpcs:
        if text == group_physical_id(state, default_group_id(vpc_id)):
            return ensure_default_group(state, vpc_id).logical_id
    hint = (
        "the lab knows only the groups this template creates: use !Ref <a security "
        "group> or !GetAtt <a security group>.GroupId"
    )
    if state.types.get(text) == SECURITY_GROUP:
        hint = f"write !Ref {text} to use that group"
    elif not text.startswith(GROUP_PREFIX):
        hint = (
            f"{where} takes group ids (sg-...), not names (SecurityGroups takes names, "
            "in the default VPC only); " + hint
        )
    return find_built(
        ctx, text, SECURITY_GROUP, "security group", state.security_groups, where, line, hint
    )


def find_group_by_name(
    ctx: ResourceContext, name: str, vpc_id: str, where: str, line: int | None
) -> str:
    """The logical id of the group of the default VPC `vpc_id` called `name` (its GroupName,
    the name the lab gave it, or "default"); a group id (an old-style !Ref) also works."""
    state = ctx.state
    if name == DEFAULT_GROUP_NAME:
        return ensure_default_group(state, vpc_id).logical_id
    names = {g.name: g.logical_id for g in state.security_groups.values() if g.vpc_id == vpc_id}
    if name in names:
        return names[name]
    if name.startswith(GROUP_PREFIX):
        return find_group(ctx, name, where, line)
    hint = did_you_mean(name, names) or "use !Ref <a security group>"
    if state.types.get(name) == SECURITY_GROUP:
        hint = f"write !Ref {name} to use that group"
    raise ctx.fail(
        f"{where} {name!r} is not the name of a security group of the default VPC "
        f"{vpc_id} in this stack",
        line=line,
        hint=hint,
    )


def group_list(ctx: ResourceContext, value: Any, where: str, line: int | None) -> tuple[str, ...]:
    """Logical ids of the groups a list of group ids (sg-..., from !Ref/!GetAtt GroupId) names."""
    names = text_list(ctx, value, where, line)
    return tuple(
        find_group(ctx, name, f"{where}[{i}]", line_of(value, i, line))
        for i, name in enumerate(names)
    )


def check_same_vpc(
    ctx: ResourceContext, groups: tuple[str, ...], vpc_id: str, what: str, line: int | None
) -> None:
    """Every group must be in the VPC of the resource that carries it (AWS's rule)."""
    for group in groups:
        group_vpc = ctx.state.security_groups[group].vpc_id
        if group_vpc != vpc_id:
            raise ctx.fail(
                f"security group {group} is in {group_vpc}, but {what} is in {vpc_id}; "
                "a resource's security groups must be in its VPC",
                line=line,
                hint=f"use a group whose VpcId is {vpc_id}",
            )


def instance_groups(ctx: ResourceContext, vpc_id: str) -> tuple[str, ...]:
    """An instance's groups from SecurityGroupIds (ids) or SecurityGroups (names, only in the
    default VPC), both merged as EC2 does; the VPC's default group when neither is given."""
    props, lid = ctx.props, ctx.logical_id
    given = [key for key in ("SecurityGroupIds", "SecurityGroups") if key in props]
    if "NetworkInterfaces" in props and given:
        raise ctx.fail(
            f"give the groups of an instance with NetworkInterfaces in their GroupSet, "
            f"not in {given[0]}",
            prop=given[0],
            hint=f"move them to NetworkInterfaces[0].GroupSet and remove {given[0]}",
        )
    groups: list[str] = []
    if "SecurityGroupIds" in props:
        groups.extend(
            group_list(
                ctx, props["SecurityGroupIds"], "SecurityGroupIds", ctx.line("SecurityGroupIds")
            )
        )
    if "SecurityGroups" in props:
        at = ctx.line("SecurityGroups")
        if not ctx.state.vpcs[vpc_id].is_default:
            raise ctx.fail(
                f"SecurityGroups (group names) is only for the default VPC, and {lid} is in "
                f"{vpc_id}",
                prop="SecurityGroups",
                hint="use SecurityGroupIds: [!Ref <a security group>, ...]",
            )
        names = text_list(ctx, props["SecurityGroups"], "SecurityGroups", at)
        groups.extend(
            find_group_by_name(
                ctx, name, vpc_id, f"SecurityGroups[{i}]", line_of(props["SecurityGroups"], i, at)
            )
            for i, name in enumerate(names)
        )
    return groups_or_default(
        ctx, groups, vpc_id, f"instance {lid}", ctx.line(given[0]) if given else None
    )


def groups_or_default(
    ctx: ResourceContext, groups: Iterable[str], vpc_id: str, what: str, line: int | None
) -> tuple[str, ...]:
    """The groups of an interface (each once, all in its VPC), or its VPC's default group
    when there are none: what EC2 gives an interface launched without groups."""
    unique = tuple(dict.fromkeys(groups))
    if not unique:
        return (ensure_default_group(ctx.state, vpc_id).logical_id,)
    check_same_vpc(ctx, unique, vpc_id, what, line)
    return unique
