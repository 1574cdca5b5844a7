"""CreationPolicy.ResourceSignal, wait conditions and Metadata AWS::CloudFormation::Init.

A resource with a CreationPolicy is complete only after its cfn-signal success signals arrive
(Count, default 1) within its Timeout (ISO 8601 duration such as PT15M, default PT5M, at most
12 hours); the lab's builder waits for them (testbed.lab.signals). AWS honours a
CreationPolicy only on EC2 instances, Auto Scaling groups and wait conditions; on any other
type it is listed as ignored, as AWS ignores it.

An Auto Scaling group's signals come from its instances (cfn-signal --resource GROUP in their
UserData). Its AutoScalingCreationPolicy.MinSuccessfulInstancesPercent is kept in the policy:
the lab's builder then waits for ceil(Count x percent / 100) success signals (all Count when
the percent is 100 or absent), and AWS's rule that a group tolerates failed instances up to
that share holds (testbed.lab.signals.required_successes).

An AWS::CloudFormation::WaitCondition without a CreationPolicy waits for `Count` signals sent
to its `Handle` (the URL a WaitConditionHandle's Ref gives) within `Timeout` seconds.

cfn-init reads the Init metadata kept here (plain data, intrinsics resolved); its shape is
checked now so that a typo is a template error, not a silent no-op on the host.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from testbed.errors import BadInput, TemplateErrors
from testbed.model.metadata import plain
from testbed.model.state import BuildState
from testbed.model.types import IgnoredProperty, ResourceSignalPolicy
from testbed.template.intrinsics import NO_VALUE, Scope, as_text, resolve
from testbed.template.nodes import LDict, describe, did_you_mean, line_of

INIT_KEY = "AWS::CloudFormation::Init"
WAIT_CONDITION = "AWS::CloudFormation::WaitCondition"
# The resource types whose CreationPolicy AWS honours.
SIGNALLED_TYPES = ("AWS::EC2::Instance", "AWS::AutoScaling::AutoScalingGroup", WAIT_CONDITION)
AUTO_SCALING_GROUP = "AWS::AutoScaling::AutoScalingGroup"
DEFAULT_COUNT = 1
DEFAULT_TIMEOUT = "PT5M"
MAX_TIMEOUT_S = 12 * 3600  # AWS: "The maximum time that you can specify is 12 hours"
ISO_DURATION = re.compile(r"^PT(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?$")

# The sections of one cfn-init config, in the order cfn-init processes them.
CONFIG_SECTIONS = ("packages", "groups", "users", "sources", "files", "commands", "services")
FILE_KEYS = ("content", "source", "encoding", "group", "owner", "mode", "authentication", "context")
COMMAND_KEYS = ("command", "env", "cwd", "test", "ignoreErrors", "waitAfterCompletion")


def parse_duration(text: str) -> int | None:
    """Seconds of an ISO 8601 duration in CloudFormation's PT#H#M#S form, else None."""
    m = ISO_DURATION.match(text)
    if m is None:
        return None
    hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    return hours * 3600 + minutes * 60 + seconds


def format_duration(seconds: float) -> str:
    """A duration for people: 300 -> "5 min", 90 -> "1 min 30 s", 7200 -> "2 h"."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h"] if hours else []
    parts += [f"{minutes} min"] if minutes else []
    parts += [f"{secs} s"] if secs or not parts else []
    return " ".join(parts)


# ---- CreationPolicy ----------------------------------------------------------------------


def read_creation_policy(raw: LDict, logical_id: str, state: BuildState, scope: Scope) -> None:
    """Record raw["CreationPolicy"] in state.signal_policies; BadInput when it is malformed."""
    type_name = state.types.get(logical_id, "")
    if type_name not in SIGNALLED_TYPES:
        # AWS ignores a creation policy on other types: so does the lab, and says so.
        state.ignored.append(IgnoredProperty(logical_id, "CreationPolicy"))
        return
    at = raw.line_of("CreationPolicy")
    policy = resolve(raw["CreationPolicy"], scope, owner=logical_id, line=at)
    if policy is NO_VALUE:
        return
    errors = _Errors(logical_id, at)
    if not isinstance(policy, dict):
        errors.add(f"CreationPolicy must be a mapping, not {describe(policy)}", at)
        errors.raise_if_any()
        return
    for key in policy:
        if key not in ("ResourceSignal", "AutoScalingCreationPolicy"):
            errors.add(
                f"unknown key CreationPolicy.{key}: use ResourceSignal or "
                "AutoScalingCreationPolicy",
                line_of(policy, key, at),
                did_you_mean(str(key), ("ResourceSignal", "AutoScalingCreationPolicy")),
            )
    signal = policy.get("ResourceSignal", {})
    signal_at = line_of(policy, "ResourceSignal", at)
    count, timeout_s = DEFAULT_COUNT, parse_duration(DEFAULT_TIMEOUT) or 0
    if not isinstance(signal, dict):
        errors.add(
            f"CreationPolicy.ResourceSignal must be a mapping, not {describe(signal)}", signal_at
        )
    else:
        for key in signal:
            if key not in ("Count", "Timeout"):
                errors.add(
                    f"unknown key CreationPolicy.ResourceSignal.{key}: use Count or Timeout",
                    line_of(signal, key, signal_at),
                    did_you_mean(str(key), ("Count", "Timeout")),
                )
        if "Count" in signal:
            count = _count(
                signal["Count"],
                "CreationPolicy.ResourceSignal.Count",
                errors,
                line_of(signal, "Count", signal_at),
            )
        if "Timeout" in signal:
            timeout_s = _iso_timeout(
                signal["Timeout"], errors, line_of(signal, "Timeout", signal_at)
            )
    percent = 100
    if "AutoScalingCreationPolicy" in policy:
        percent = _auto_scaling(policy, logical_id, type_name, state, errors, at)
    errors.raise_if_any()
    state.signal_policies[logical_id] = ResourceSignalPolicy(count, timeout_s, percent)


def _auto_scaling(
    policy: dict, logical_id: str, type_name: str, state: BuildState, errors: _Errors, at: Any
) -> int:
    """MinSuccessfulInstancesPercent (0-100) of an Auto Scaling group; 100 when absent."""
    section = policy["AutoScalingCreationPolicy"]
    section_at = line_of(policy, "AutoScalingCreationPolicy", at)
    if type_name != AUTO_SCALING_GROUP:
        state.ignored.append(
            IgnoredProperty(logical_id, "CreationPolicy.AutoScalingCreationPolicy")
        )
        return 100
    if not isinstance(section, dict):
        errors.add(
            f"CreationPolicy.AutoScalingCreationPolicy must be a mapping, not {describe(section)}",
            section_at,
        )
        return 100
    for key in section:
        if key != "MinSuccessfulInstancesPercent":
            errors.add(
                f"unknown key CreationPolicy.AutoScalingCreationPolicy.{key}: use "
                "MinSuccessfulInstancesPercent",
                line_of(section, key, section_at),
            )
    if "MinSuccessfulInstancesPercent" not in section:
        return 100
    value = section["MinSuccessfulInstancesPercent"]
    text = as_text(value)
    if isinstance(value, bool) or text is None or not text.isdigit() or int(text) > 100:
        errors.add(
            "CreationPolicy.AutoScalingCreationPolicy.MinSuccessfulInstancesPercent must be an "
            f"integer from 0 to 100, not {_shown(value)}",
            line_of(section, "MinSuccessfulInstancesPercent", section_at),
        )
        return 100
    return int(text)


def _count(value: Any, name: str, errors: _Errors, at: int | None) -> int:
    text = as_text(value)
    if isinstance(value, bool) or text is None or not text.isdigit() or int(text) < 1:
        errors.add(f"{name} must be an integer of at least 1, not {_shown(value)}", at)
        return DEFAULT_COUNT
    return int(text)


def _iso_timeout(value: Any, errors: _Errors, at: int | None) -> int:
    seconds = parse_duration(value) if isinstance(value, str) else None
    if seconds is None:
        errors.add(
            f"CreationPolicy.ResourceSignal.Timeout must be an ISO 8601 duration such as "
            f"PT15M or PT1H30M (PT#H#M#S), not {_shown(value)}",
            at,
        )
        return 0
    if seconds > MAX_TIMEOUT_S:
        errors.add(
            f"CreationPolicy.ResourceSignal.Timeout {value} is longer than 12 hours, "
            "the most AWS allows",
            at,
        )
    return seconds


# ---- AWS::CloudFormation::WaitCondition ---------------------------------------------------


def read_wait_condition(props: LDict, logical_id: str, state: BuildState) -> None:
    """A wait condition's Handle/Count/Timeout (resolved properties) as a signal policy.

    With a CreationPolicy (already read) the wait condition is signalled like an instance
    (cfn-signal --resource) and AWS ignores these properties."""
    if logical_id in state.signal_policies:
        return
    errors = _Errors(logical_id, props.line)
    handle = props.get("Handle")
    if not isinstance(handle, str) or not handle:
        errors.add(
            "a WaitCondition without a CreationPolicy needs Handle (Ref of an "
            "AWS::CloudFormation::WaitConditionHandle)"
            + ("" if handle is None else f", not {_shown(handle)}"),
            props.line_of("Handle") or props.line,
        )
    count = DEFAULT_COUNT
    if "Count" in props:
        count = _count(props["Count"], "Count", errors, props.line_of("Count"))
    timeout = props.get("Timeout")
    text = as_text(timeout)
    timeout_s = 0
    if timeout is None:
        errors.add("a WaitCondition without a CreationPolicy needs Timeout (seconds)", props.line)
    elif isinstance(timeout, bool) or text is None or not text.isdigit():
        errors.add(
            f"Timeout must be a number of seconds, not {_shown(timeout)}",
            props.line_of("Timeout"),
        )
    elif int(text) > MAX_TIMEOUT_S:
        errors.add(
            f"Timeout {text} is longer than 43200 seconds (12 hours), the most AWS allows",
            props.line_of("Timeout"),
        )
    else:
        timeout_s = int(text)
    errors.raise_if_any()
    state.signal_policies[logical_id] = ResourceSignalPolicy(count, timeout_s, handle=str(handle))


# ---- Metadata AWS::CloudFormation::Init ---------------------------------------------------


def read_cfn_init(metadata: Any, logical_id: str, state: BuildState, scope: Scope) -> None:
    """Keep Metadata["AWS::CloudFormation::Init"] (resolved, plain) in state.cfn_init."""
    if not isinstance(metadata, dict) or INIT_KEY not in metadata:
        return  # a Metadata that is not a mapping is the metadata reader's error
    at = line_of(metadata, INIT_KEY, getattr(metadata, "line", None))
    init = resolve(metadata[INIT_KEY], scope, owner=logical_id, line=at)
    if init is NO_VALUE:
        return
    errors = _Errors(logical_id, at)
    check_init(init, errors.add, at)
    errors.raise_if_any()
    state.cfn_init[logical_id] = plain(init)


Report = Callable[[str, Any], None]


def check_init(init: Any, report: Report, at: int | None) -> None:
    """Report (message, line) for each shape problem of an AWS::CloudFormation::Init value."""
    where = f"Metadata.{INIT_KEY}"
    if not isinstance(init, dict):
        report(f"{where} must be a mapping of configs, not {describe(init)}", at)
        return
    configs = [k for k in init if k != "configSets"]
    if "configSets" in init:
        _check_config_sets(init, configs, report, line_of(init, "configSets", at))
    for name in configs:
        _check_config(init[name], f"{where}.{name}", report, line_of(init, name, at))


def _check_config_sets(init: dict, configs: list[str], report: Report, at: int | None) -> None:
    sets = init["configSets"]
    where = f"Metadata.{INIT_KEY}.configSets"
    if not isinstance(sets, dict):
        report(
            f"{where} must be a mapping of set name -> list of configs, not {describe(sets)}", at
        )
        return
    for set_name, members in sets.items():
        member_at = line_of(sets, set_name, at)
        items = members if isinstance(members, list) else [members]
        for item in items:
            if isinstance(item, str):
                if item not in configs:
                    report(
                        f"{where}.{set_name} names config {item!r}, which the Init metadata "
                        f"does not define (configs: {', '.join(configs) or 'none'})",
                        member_at,
                    )
            elif isinstance(item, dict) and list(item) == ["ConfigSet"]:
                if item["ConfigSet"] not in sets:
                    report(
                        f"{where}.{set_name} includes unknown configSet {item['ConfigSet']!r}",
                        member_at,
                    )
            else:
                report(
                    f"{where}.{set_name} lists {describe(item)}: use config names or "
                    "{ConfigSet: name}",
                    member_at,
                )


def _check_config(config: Any, where: str, report: Report, at: int | None) -> None:
    if not isinstance(config, dict):
        report(
            f"{where} must be a mapping of sections ({', '.join(CONFIG_SECTIONS)}), "
            f"not {describe(config)}",
            at,
        )
        return
    for section, body in config.items():
        section_at = line_of(config, section, at)
        if section not in CONFIG_SECTIONS:
            hint = did_you_mean(str(section), CONFIG_SECTIONS)
            report(
                f"unknown cfn-init section {where}.{section}"
                + (f" ({hint})" if hint else "")
                + f": use {', '.join(CONFIG_SECTIONS)}",
                section_at,
            )
            continue
        if not isinstance(body, dict):
            report(f"{where}.{section} must be a mapping, not {describe(body)}", section_at)
            continue
        check = _SECTION_CHECKS.get(section)
        for name, entry in body.items():
            entry_at = line_of(body, name, section_at)
            if check is not None:
                check(entry, f"{where}.{section}.{name}", report, entry_at)
            elif section in ("packages", "services", "groups", "users") and not isinstance(
                entry, dict
            ):
                report(
                    f"{where}.{section}.{name} must be a mapping, not {describe(entry)}", entry_at
                )


def _check_file(entry: Any, where: str, report: Report, at: int | None) -> None:
    if not isinstance(entry, dict):
        report(
            f"{where} must be a mapping (content, source, mode, owner, group, ...), "
            f"not {describe(entry)}",
            at,
        )
        return
    _check_keys(entry, FILE_KEYS, where, report, at)
    if "content" in entry and not isinstance(entry["content"], (str, dict, list)):
        report(
            f"{where}.content must be text or a JSON mapping, not {describe(entry['content'])}",
            line_of(entry, "content", at),
        )
    if "encoding" in entry and entry["encoding"] not in ("plain", "base64"):
        report(
            f"{where}.encoding must be plain or base64, not {_shown(entry['encoding'])}",
            line_of(entry, "encoding", at),
        )
    if "mode" in entry:
        mode = as_text(entry["mode"])
        if mode is None or not re.fullmatch(r"[0-7]{3,6}", mode):
            shown = _shown(entry["mode"])
            report(
                f"{where}.mode must be octal digits such as '000644', not {shown}",
                line_of(entry, "mode", at),
            )


def _check_command(entry: Any, where: str, report: Report, at: int | None) -> None:
    if not isinstance(entry, dict):
        report(f"{where} must be a mapping with a command, not {describe(entry)}", at)
        return
    _check_keys(entry, COMMAND_KEYS, where, report, at)
    command = entry.get("command")
    if not isinstance(command, (str, list)) or not command:
        report(
            f"{where}.command must be a shell command or a list of arguments, not "
            f"{describe(command)}",
            line_of(entry, "command", at),
        )
    if "env" in entry and not isinstance(entry["env"], dict):
        report(
            f"{where}.env must be a mapping, not {describe(entry['env'])}",
            line_of(entry, "env", at),
        )
    for key in ("cwd", "test"):
        if key in entry and not isinstance(entry[key], str):
            report(
                f"{where}.{key} must be text, not {describe(entry[key])}", line_of(entry, key, at)
            )


def _check_source(entry: Any, where: str, report: Report, at: int | None) -> None:
    if not isinstance(entry, str):
        report(f"{where} must be a URL, not {describe(entry)}", at)


def _check_keys(entry: dict, known: tuple[str, ...], where: str, report: Report, at: Any) -> None:
    for key in entry:
        if key not in known:
            hint = did_you_mean(str(key), known)
            report(
                f"unknown key {where}.{key}"
                + (f" ({hint})" if hint else "")
                + f": use {', '.join(known)}",
                line_of(entry, key, at),
            )


_SECTION_CHECKS: dict[str, Callable[[Any, str, Report, int | None], None]] = {
    "files": _check_file,
    "commands": _check_command,
    "sources": _check_source,
}


def _shown(value: Any) -> str:
    """A scalar as written (so the author finds it), else its kind."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return describe(value)


class _Errors:
    """Every problem of one resource's policy or metadata, raised together."""

    def __init__(self, logical_id: str, line: int | None) -> None:
        self.logical_id = logical_id
        self.line = line
        self.found: list[BadInput] = []

    def add(self, message: str, line: Any = None, hint: str | None = None) -> None:
        at = line if isinstance(line, int) else self.line
        self.found.append(BadInput(message, line=at, logical_id=self.logical_id, hint=hint))

    def raise_if_any(self) -> None:
        if len(self.found) == 1:
            raise self.found[0]
        if self.found:
            raise TemplateErrors(list(self.found))
