"""What Auto Scaling groups launch from: AWS::EC2::LaunchTemplate (version 1, the one a
template creates) and AWS::AutoScaling::LaunchConfiguration.

Each becomes a LaunchSpec in state.launch_specs[logical id][version]. The instances' lab role
is the resource's Metadata.Lab (Role, RoleArgs), as on an instance; the hardware settings
(ImageId, InstanceType, block devices, ...) have no meaning in the lab and are listed as
ignored. Security groups given by id are found now; group names (default VPC only) are left
for the group, which knows the VPC.
"""

from __future__ import annotations

from typing import Any

from testbed.errors import BadInput
from testbed.model.autoscaling_types import LaunchSpec
from testbed.model.resources import group_refs
from testbed.model.resources.base import (
    ResourceContext,
    ResourceType,
    prop,
    text_list,
    user_data_text,
)
from testbed.model.resources.inert import hex_id
from testbed.model.resources.registry import register
from testbed.model.resources.scaling_common import (
    LAUNCH_CONFIGURATION,
    LAUNCH_TEMPLATE,
    Problems,
    boolean,
    check_mapping,
    definition_keys,
    ignore,
    name_of,
)
from testbed.model.state import BuildState
from testbed.template.intrinsics import as_text
from testbed.template.nodes import describe, line_of

VERSION = 1  # the version a template creates; later versions come with updates (issue 14)
NO_MEANING = "no meaning in the lab"
SUBNET_IGNORED = "the Auto Scaling group's subnets (VPCZoneIdentifier) decide where it launches"
# Network interface settings that would give every instance of a group the same interface or
# address: AWS fails such launches.
ONE_PER_GROUP = ("NetworkInterfaceId", "PrivateIpAddress", "PrivateIpAddresses")
# What LaunchTemplateData keys the lab reads; the others are hardware, placement, ...
LT_READ = (
    "ImageId",
    "InstanceType",
    "UserData",
    "SecurityGroupIds",
    "SecurityGroups",
    "NetworkInterfaces",
    "TagSpecifications",
)


def launch_template_id(state: BuildState, logical_id: str) -> str:
    """The launch template's id (its Ref): lt- and 17 hex digits."""
    return "lt-" + hex_id(state, logical_id, "id")


def _groups(
    ctx: ResourceContext, problems: Problems, value: Any, where: str, line: int | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(logical ids of the groups given by id, names left for the group's VPC)."""
    if not isinstance(value, list):
        problems.add(f"{where} must be a list, not {describe(value)}", line)
        return (), ()
    ids: list[str] = []
    names: list[str] = []
    for index, text in enumerate(text_list(ctx, value, where, line)):
        at = line_of(value, index, line)
        if text.startswith(group_refs.GROUP_PREFIX) or text in ctx.state.types:
            try:
                ids.append(group_refs.find_group(ctx, text, f"{where}[{index}]", at))
            except BadInput as err:  # collected with the others
                problems.add_error(err, at)
        else:
            names.append(text)
    return tuple(dict.fromkeys(ids)), tuple(dict.fromkeys(names))


# --- AWS::EC2::LaunchTemplate ------------------------------------------------------------


def _build_launch_template(ctx: ResourceContext) -> None:
    problems = Problems(ctx)
    at = ctx.line("LaunchTemplateData")
    known = definition_keys(LAUNCH_TEMPLATE, "LaunchTemplateData")
    data = check_mapping(problems, ctx.props["LaunchTemplateData"], "LaunchTemplateData", at, known)
    if data is None:
        problems.raise_if_any()
        return
    for key in data:
        if key not in LT_READ and key in known:
            ignore(ctx, f"LaunchTemplateData.{key}", NO_MEANING)
    ids: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    if "SecurityGroupIds" in data:
        where = "LaunchTemplateData.SecurityGroupIds"
        ids, names = _groups(
            ctx, problems, data["SecurityGroupIds"], where, line_of(data, "SecurityGroupIds", at)
        )
        if names:
            problems.add(
                f"{where} takes group ids (sg-...), not names such as {names[0]!r}",
                line_of(data, "SecurityGroupIds", at),
                "use !Ref <a security group>, or SecurityGroups for names",
            )
    if "SecurityGroups" in data:
        more, names = _groups(
            ctx,
            problems,
            data["SecurityGroups"],
            "LaunchTemplateData.SecurityGroups",
            line_of(data, "SecurityGroups", at),
        )
        ids = tuple(dict.fromkeys(ids + more))
    public: bool | None = None
    if "NetworkInterfaces" in data:
        nic_groups, public = _network_interfaces(ctx, problems, data, at)
        for key in ("SecurityGroupIds", "SecurityGroups"):
            if key in data:
                problems.add(
                    "give the groups of a launch template with NetworkInterfaces in "
                    f"NetworkInterfaces[0].Groups, not in {key} (AWS refuses both)",
                    line_of(data, key, at),
                )
        ids = nic_groups
    tags = _instance_tags(
        ctx, problems, data.get("TagSpecifications"), line_of(data, "TagSpecifications", at)
    )
    problems.raise_if_any()
    spec = LaunchSpec(
        ctx.logical_id,
        "launch-template",
        VERSION,
        _text(data.get("ImageId")),
        _text(data.get("InstanceType")),
        user_data_text(data["UserData"]) if "UserData" in data else None,
        security_groups=ids,
        role=ctx.role,
        associate_public_ip=public,
        source=ctx.source,
        name=name_of(ctx, "LaunchTemplateName", 128),
        launch_template_id=launch_template_id(ctx.state, ctx.logical_id),
        instance_tags=tags,
        security_group_names=names,
    )
    ctx.state.launch_specs[ctx.logical_id] = {VERSION: spec}


def _network_interfaces(
    ctx: ResourceContext, problems: Problems, data: dict[str, Any], at: int | None
) -> tuple[tuple[str, ...], bool | None]:
    """(groups, AssociatePublicIpAddress) of the primary interface (DeviceIndex 0)."""
    where = "LaunchTemplateData.NetworkInterfaces"
    nics = data["NetworkInterfaces"]
    line = line_of(data, "NetworkInterfaces", at)
    if not isinstance(nics, list):
        problems.add(f"{where} must be a list, not {describe(nics)}", line)
        return (), None
    known = definition_keys(LAUNCH_TEMPLATE, "NetworkInterface")
    groups: tuple[str, ...] = ()
    public: bool | None = None
    for index, nic in enumerate(nics):
        here, nic_at = f"{where}[{index}]", line_of(nics, index, line)
        if check_mapping(problems, nic, here, nic_at, known) is None:
            continue
        device = as_text(nic.get("DeviceIndex", 0))
        if device not in ("0", None):
            ignore(ctx, here, "launched instances get one interface in the lab")
            continue
        for key in nic:
            key_at = line_of(nic, key, nic_at)
            if key in ONE_PER_GROUP:
                problems.add(
                    f"{here}.{key} would give every instance of the group the same "
                    "interface or address; AWS fails such launches",
                    key_at,
                    f"remove {key}: each instance gets an address of its subnet",
                )
            elif key == "SubnetId":
                ignore(ctx, f"{here}.SubnetId", SUBNET_IGNORED)
            elif key == "Groups":
                groups, names = _groups(ctx, problems, nic[key], f"{here}.Groups", key_at)
                if names:
                    problems.add(
                        f"{here}.Groups takes group ids (sg-...), not names such as {names[0]!r}",
                        key_at,
                    )
            elif key == "AssociatePublicIpAddress":
                public = boolean(problems, nic[key], f"{here}.{key}", key_at)
            elif key != "DeviceIndex":
                ignore(ctx, f"{here}.{key}", NO_MEANING)
    return groups, public


def _instance_tags(
    ctx: ResourceContext, problems: Problems, specs: Any, line: int | None
) -> tuple[tuple[str, str], ...]:
    """Key/value tags of the TagSpecifications for ResourceType instance."""
    if specs is None:
        return ()
    if not isinstance(specs, list):
        problems.add(
            f"LaunchTemplateData.TagSpecifications must be a list, not {describe(specs)}", line
        )
        return ()
    tags: list[tuple[str, str]] = []
    for spec in specs:
        if not isinstance(spec, dict) or spec.get("ResourceType") != "instance":
            continue  # volumes, network interfaces: nothing in the lab carries them
        for tag in spec.get("Tags") or []:
            if isinstance(tag, dict) and "Key" in tag:
                tags.append((str(tag["Key"]), str(as_text(tag.get("Value")) or "")))
    return tuple(tags)


def _text(value: Any) -> str | None:
    return None if value is None else as_text(value)


register(
    ResourceType(
        LAUNCH_TEMPLATE,
        _build_launch_template,
        accepts_role=True,
        properties={
            "LaunchTemplateData": prop("map", required=True),
            "LaunchTemplateName": prop("string"),
        },
        ignored=frozenset({"TagSpecifications", "VersionDescription"}),
        ref_value=launch_template_id,
        attributes={
            "LaunchTemplateId": launch_template_id,
            # A template creates version 1, the latest and the default.
            "LatestVersionNumber": lambda s, lid: str(VERSION),
            "DefaultVersionNumber": lambda s, lid: str(VERSION),
        },
    )
)


# --- AWS::AutoScaling::LaunchConfiguration -----------------------------------------------


def _build_launch_configuration(ctx: ResourceContext) -> None:
    problems = Problems(ctx)
    props = ctx.props
    ids: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    if "SecurityGroups" in props:
        ids, names = _groups(
            ctx, problems, props["SecurityGroups"], "SecurityGroups", ctx.line("SecurityGroups")
        )
    problems.raise_if_any()
    spec = LaunchSpec(
        ctx.logical_id,
        "launch-configuration",
        VERSION,
        _text(props.get("ImageId")),
        _text(props.get("InstanceType")),
        user_data_text(props["UserData"]) if "UserData" in props else None,
        security_groups=ids,
        role=ctx.role,
        associate_public_ip=props.get("AssociatePublicIpAddress"),
        source=ctx.source,
        name=name_of(ctx, "LaunchConfigurationName"),
        security_group_names=names,
    )
    ctx.state.launch_specs[ctx.logical_id] = {VERSION: spec}


register(
    ResourceType(
        LAUNCH_CONFIGURATION,
        _build_launch_configuration,
        accepts_role=True,
        properties={
            "ImageId": prop("string", required=True),
            "InstanceType": prop("string", required=True),
            "UserData": prop("string"),
            "SecurityGroups": prop("list"),
            "AssociatePublicIpAddress": prop("boolean"),
            "LaunchConfigurationName": prop("string"),
        },
        ignored=frozenset(
            {
                "BlockDeviceMappings",
                "ClassicLinkVPCId",
                "ClassicLinkVPCSecurityGroups",
                "EbsOptimized",
                "IamInstanceProfile",
                "InstanceMonitoring",
                "KernelId",
                "KeyName",
                "MetadataOptions",
                "PlacementTenancy",
                "RamDiskId",
                "SpotPrice",
            }
        ),
        unsupported={
            "InstanceId": "a configuration copied from a running instance is not emulated; "
            "give ImageId and InstanceType",
        },
        ref_value=lambda s, lid: s.launch_specs[lid][VERSION].name,
    )
)
