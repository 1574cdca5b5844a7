"""The lab's own settings carried in Metadata: a host's role, and lab-wide options.

Resource:  Metadata: {Lab: {Role: http-backend, RoleArgs: {...}, Snmp: false}}
Template:  Metadata: {Lab: {InterAzDelayMs: 5, LinkBandwidthMbps: 100, Datapath: auto,
                            Snmp: {...}, TimeScale: 10}}
TimeScale runs Auto Scaling's and CloudWatch's clocks that many times faster (LabOptions).
Snmp (the hosts' SNMP agents) is read by testbed.model.snmp.
Other Metadata keys (cfn-lint settings, ...) are accepted and listed as ignored, so templates
written for AWS keep working; AWS::CloudFormation::Init is cfn-init's (testbed.model.signals).
"""

from __future__ import annotations

import math
from typing import Any

from testbed.errors import BadInput
from testbed.model.roles import ROLE_NAMES
from testbed.model.snmp import host_override, snmp_options
from testbed.model.types import IgnoredProperty, LabOptions, RoleSpec, frozen_map
from testbed.template.intrinsics import as_text
from testbed.template.nodes import describe, did_you_mean, line_of

ROLE_KEYS = ("Role", "RoleArgs", "Snmp", "Unfiltered")
# Metadata.Lab.Unfiltered: true on an instance: the lab programs no security-group check on
# its ports (a benchmark baseline, e.g. experiments/bench_sg; AWS has no such thing).
UNFILTERED_KEY = "lab_unfiltered"
# Metadata.Lab of a custom resource (Custom::*): the values its function would return.
CUSTOM_KEYS = ("Attributes", "PhysicalId")
CUSTOM_RESOURCE = "AWS::CloudFormation::CustomResource"
LAB_KEYS = ("InterAzDelayMs", "LinkBandwidthMbps", "Datapath", "Snmp", "TimeScale")
# A TimeScale beyond this would make AWS's 10 s alarm periods shorter than the lab's sampling
# can follow (10 ms); below 1 is allowed (slower than AWS, for watching by hand).
MAX_TIME_SCALE = 1000.0
DATAPATHS = ("auto", "kernel", "user")


def plain(value: Any) -> Any:
    """A resolved value without line-tracking types: plain dict, list and str."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def resource_role(
    metadata: Any,
    owner: str,
    *,
    accepts_role: bool,
    type_name: str,
    line: int | None,
    ignored: list[IgnoredProperty],
) -> RoleSpec | None:
    """The RoleSpec in a resource's resolved Metadata (None without Metadata.Lab)."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise BadInput(
            f"Metadata must be a mapping, not {describe(metadata)}", line=line, logical_id=owner
        )
    for key in metadata:
        if key not in ("Lab", "AWS::CloudFormation::Init"):  # Init: cfn-init runs it
            ignored.append(IgnoredProperty(owner, f"Metadata.{key}"))
    if "Lab" not in metadata:
        return None
    lab = metadata["Lab"]
    at = line_of(metadata, "Lab", line)
    if type_name.startswith("Custom::") or type_name == CUSTOM_RESOURCE:
        _custom_keys(lab, owner, at)
        return None
    if not accepts_role:
        raise BadInput(
            f"Metadata.Lab is only for hosts (AWS::EC2::Instance, Lab::Internet::Client, "
            f"and the launch templates / configurations of Auto Scaling groups), not {type_name}",
            line=at,
            logical_id=owner,
        )
    _check_lab_keys(lab, ROLE_KEYS, owner, at, "", "the keys are Role, RoleArgs and Snmp")
    if "Role" not in lab and ("Snmp" in lab or "Unfiltered" in lab) and "RoleArgs" not in lab:
        return None  # only the SNMP agent / filtering is set here (read by their functions)
    if "Role" not in lab:
        raise BadInput(
            "Metadata.Lab needs a Role",
            line=at,
            logical_id=owner,
            hint=f"roles: {', '.join(ROLE_NAMES)}",
        )
    name = lab["Role"]
    if not isinstance(name, str) or name not in ROLE_NAMES:
        shown = name if isinstance(name, str) else describe(name)
        raise BadInput(
            f"unknown role {shown!r}; the roles are: {', '.join(ROLE_NAMES)}",
            line=line_of(lab, "Role", at),
            logical_id=owner,
            hint=did_you_mean(name, ROLE_NAMES) if isinstance(name, str) else None,
        )
    args = lab.get("RoleArgs", {})
    if not isinstance(args, dict):
        raise BadInput(
            f"Metadata.Lab.RoleArgs must be a mapping, not {describe(args)}",
            line=line_of(lab, "RoleArgs", at),
            logical_id=owner,
        )
    return RoleSpec(name, frozen_map(plain(args)))


def _custom_keys(lab: Any, owner: str, at: int | None) -> None:
    # A custom resource's Metadata.Lab gives what its function would return (custom.py).
    _check_lab_keys(
        lab,
        CUSTOM_KEYS,
        owner,
        at,
        " of a custom resource",
        "the keys are Attributes and PhysicalId",
    )


def _check_lab_keys(lab: Any, keys: Any, owner: str, at: int | None, of: str, listed: str) -> None:
    """Metadata.Lab is a mapping whose keys are among `keys` (`of` says whose, in messages)."""
    if not isinstance(lab, dict):
        raise BadInput(
            f"Metadata.Lab must be a mapping, not {describe(lab)}", line=at, logical_id=owner
        )
    for key in lab:
        if key not in keys:
            raise BadInput(
                f"unknown key Metadata.Lab.{key}{of}",
                line=line_of(lab, key, at),
                logical_id=owner,
                hint=did_you_mean(key, keys) or listed,
            )


def resource_unfiltered(metadata: Any, owner: str, line: int | None) -> bool:
    """Metadata.Lab.Unfiltered of a host (False when absent). Call after resource_role."""
    if not isinstance(metadata, dict) or not isinstance(metadata.get("Lab"), dict):
        return False
    value = metadata["Lab"].get("Unfiltered", False)
    if not isinstance(value, bool):
        raise BadInput(
            f"Metadata.Lab.Unfiltered must be true or false, not {describe(value)}",
            line=line_of(metadata["Lab"], "Unfiltered", line),
            logical_id=owner,
        )
    return value


def resource_snmp(metadata: Any, owner: str, line: int | None) -> Any:
    """The host's own Metadata.Lab.Snmp fields, or None when it has none.

    Call after resource_role, which checks the shape of Metadata.Lab."""
    if not isinstance(metadata, dict) or not isinstance(metadata.get("Lab"), dict):
        return None
    lab = metadata["Lab"]
    if "Snmp" not in lab:
        return None
    return host_override(lab["Snmp"], owner, line_of(lab, "Snmp", line_of(metadata, "Lab", line)))


def _number(value: Any, key: str, line: int | None, *, positive: bool) -> float:
    text = as_text(value)
    try:
        number = float(text) if text is not None and not isinstance(value, bool) else math.nan
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        rule = "more than 0" if positive else "0 or more"
        raise BadInput(f"Metadata.Lab.{key} must be a number {rule}, not {value!r}", line=line)
    return number


def lab_options(metadata: Any, line: int | None) -> LabOptions:
    """LabOptions from the template's resolved Metadata (defaults without Metadata.Lab)."""
    if not isinstance(metadata, dict) or "Lab" not in metadata:
        return LabOptions()
    lab = metadata["Lab"]
    at = line_of(metadata, "Lab", line)
    if not isinstance(lab, dict):
        raise BadInput(f"Metadata.Lab must be a mapping, not {describe(lab)}", line=at)
    for key in lab:
        if key not in LAB_KEYS:
            raise BadInput(
                f"unknown key Metadata.Lab.{key}",
                line=line_of(lab, key, at),
                hint=did_you_mean(key, LAB_KEYS) or f"the keys are: {', '.join(LAB_KEYS)}",
            )
    options: dict[str, Any] = {}
    if "InterAzDelayMs" in lab:
        options["inter_az_delay_ms"] = _number(
            lab["InterAzDelayMs"],
            "InterAzDelayMs",
            line_of(lab, "InterAzDelayMs", at),
            positive=False,
        )
    if "LinkBandwidthMbps" in lab:
        options["link_bandwidth_mbps"] = _number(
            lab["LinkBandwidthMbps"],
            "LinkBandwidthMbps",
            line_of(lab, "LinkBandwidthMbps", at),
            positive=True,
        )
    if "Datapath" in lab:
        datapath = lab["Datapath"]
        if datapath not in DATAPATHS:
            raise BadInput(
                f"Metadata.Lab.Datapath must be one of {', '.join(DATAPATHS)}, not {datapath!r}",
                line=line_of(lab, "Datapath", at),
            )
        options["datapath"] = datapath
    if "Snmp" in lab:
        options["snmp"] = snmp_options(lab["Snmp"], line_of(lab, "Snmp", at))
    if "TimeScale" in lab:
        scale_at = line_of(lab, "TimeScale", at)
        scale = _number(lab["TimeScale"], "TimeScale", scale_at, positive=True)
        if scale > MAX_TIME_SCALE:
            raise BadInput(
                f"Metadata.Lab.TimeScale must be at most {MAX_TIME_SCALE:g}, not {scale:g}",
                line=scale_at,
                hint="10 runs a 5 minute cooldown in 30 s",
            )
        options["time_scale"] = scale
    return LabOptions(**options)
