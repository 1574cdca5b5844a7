"""The SNMP agent settings in Metadata.Lab.Snmp: template-wide, and per host.

Template:  Metadata: {Lab: {Snmp: {Enabled: true, Community: elblab-ro,
                                   V3: {User: mon, AuthPassword: ..., PrivPassword: ...,
                                        AuthProtocol: SHA, PrivProtocol: AES},
                                   Write: {User: ops, AuthPassword: ..., PrivPassword: ...}}}}

V3 is the read-only user. Write is the only one that may SET (sysContact, sysName,
sysLocation, ifAdminStatus): an SNMPv3 user with authentication and privacy (authPriv),
never a community, whose secrets would cross the network in clear.
Host:      Metadata: {Lab: {Snmp: false}}                 no agent on this host
           Metadata: {Lab: {Snmp: {Community: other}}}    these fields differ here

Values may come from intrinsics (!Ref a parameter, ...). Everything is checked here because
the values end up in each agent's snmpd.conf: nothing may break out of its line there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from testbed.errors import BadInput
from testbed.model.types import SnmpOptions, SnmpV3User, StackModel, frozen_map
from testbed.template.intrinsics import as_text
from testbed.template.nodes import describe, did_you_mean, line_of

SNMP_KEYS = ("Enabled", "Community", "V3", "Write")
V3_KEYS = ("User", "AuthPassword", "PrivPassword", "AuthProtocol", "PrivProtocol")
# The names net-snmp's createUser and pysnmp both support.
AUTH_PROTOCOLS = ("MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512")
PRIV_PROTOCOLS = ("DES", "AES", "AES-192", "AES-256")
COMMUNITY_RE = re.compile(r"^[A-Za-z0-9._~@%+=:/-]{1,64}$")
USER_RE = re.compile(r"^[A-Za-z0-9._-]{1,32}$")
# net-snmp refuses pass phrases shorter than 8 characters; quotes, backslashes and blanks
# would need escaping in snmpd.conf, so they are not allowed at all.
PASSWORD_RE = re.compile(r"^[!#-\[\]-~]{8,64}$")
EXTRAS_KEY = "snmp"  # StackModel.extras["snmp"][host logical id]: that host's overrides


def _flag(value: Any, where: str, line: int | None, owner: str | None) -> bool:
    text = as_text(value)
    if text is not None and text.lower() in ("true", "false"):
        return text.lower() == "true"
    raise BadInput(f"{where} must be true or false, not {value!r}", line=line, logical_id=owner)


def _check_keys(
    mapping: dict, allowed: tuple[str, ...], where: str, line: int | None, owner: str | None
) -> None:
    for key in mapping:
        if key not in allowed:
            raise BadInput(
                f"unknown key {where}.{key}",
                line=line_of(mapping, key, line),
                logical_id=owner,
                hint=did_you_mean(str(key), allowed) or f"the keys are: {', '.join(allowed)}",
            )


def _community(value: Any, where: str, line: int | None, owner: str | None) -> str:
    text = as_text(value)
    if text is None or isinstance(value, bool) or not COMMUNITY_RE.match(text):
        raise BadInput(
            f"{where}.Community must be 1-64 letters, digits or . _ ~ @ % + = : / -, not {value!r}",
            line=line,
            logical_id=owner,
        )
    return text


def _v3(value: Any, where: str, line: int | None, owner: str | None, key: str = "V3") -> SnmpV3User:
    where = f"{where}.{key}"
    writer = key == "Write"
    if not isinstance(value, dict):
        raise BadInput(
            f"{where} must be a mapping (User, AuthPassword, PrivPassword, "
            f"AuthProtocol, PrivProtocol), not {describe(value)}",
            line=line,
            logical_id=owner,
            hint="a write user is an SNMPv3 user with authentication and privacy; "
            "there is no write community"
            if writer
            else None,
        )
    _check_keys(value, V3_KEYS, where, line, owner)
    for needed in ("User", "AuthPassword", "PrivPassword"):
        if needed not in value:
            why = ": a writer may not SET without authentication and privacy" if writer else ""
            raise BadInput(
                f"{where} needs {needed} (authPriv: both passwords are required{why})",
                line=line,
                logical_id=owner,
            )
    user = as_text(value["User"])
    if user is None or not USER_RE.match(user):
        raise BadInput(
            f"{where}.User must be 1-32 letters, digits or . _ -, not {value['User']!r}",
            line=line_of(value, "User", line),
            logical_id=owner,
        )
    passwords = {}
    for key in ("AuthPassword", "PrivPassword"):
        text = as_text(value[key])
        if text is None or not PASSWORD_RE.match(text):
            shown = f"{len(text)} characters" if text is not None else describe(value[key])
            raise BadInput(
                f"{where}.{key} must be 8-64 printable characters without blanks, "
                f"quotes or backslashes (net-snmp needs at least 8); got {shown}",
                line=line_of(value, key, line),
                logical_id=owner,
            )
        passwords[key] = text
    protocols = {}
    for key, choices, default in (
        ("AuthProtocol", AUTH_PROTOCOLS, "SHA"),
        ("PrivProtocol", PRIV_PROTOCOLS, "AES"),
    ):
        text = as_text(value.get(key, default))
        if text is None or text.upper() not in choices:
            raise BadInput(
                f"{where}.{key} must be one of {', '.join(choices)}, not {value.get(key)!r}",
                line=line_of(value, key, line),
                logical_id=owner,
                hint=did_you_mean(text, choices) if text else None,
            )
        protocols[key] = text.upper()
    return SnmpV3User(
        user,
        passwords["AuthPassword"],
        passwords["PrivPassword"],
        protocols["AuthProtocol"],
        protocols["PrivProtocol"],
    )


def _fields(value: Any, where: str, line: int | None, owner: str | None) -> dict[str, Any]:
    """The SnmpOptions fields given in one Snmp value (a flag or a mapping)."""
    if not isinstance(value, dict):
        if isinstance(value, (list, type(None))):
            raise BadInput(
                f"{where} must be true, false or a mapping ({', '.join(SNMP_KEYS)})"
                f", not {describe(value)}",
                line=line,
                logical_id=owner,
            )
        return {"enabled": _flag(value, where, line, owner)}
    _check_keys(value, SNMP_KEYS, where, line, owner)
    # A mapping means "an agent, configured so" unless it says Enabled: false.
    fields: dict[str, Any] = {"enabled": True}
    if "Enabled" in value:
        fields["enabled"] = _flag(
            value["Enabled"], f"{where}.Enabled", line_of(value, "Enabled", line), owner
        )
    if "Community" in value:
        fields["community"] = _community(
            value["Community"], where, line_of(value, "Community", line), owner
        )
    for key in ("V3", "Write"):  # the read-only user and the write user: the same shape
        if key not in value:
            continue
        user = value[key]
        text = as_text(user)
        off = text is not None and text.lower() == "false"
        at = line_of(value, key, line)
        fields[key.lower()] = None if off else _v3(user, where, at, owner, key=key)
    read_user = fields["v3"].user if fields.get("v3") else None
    if fields.get("write") and read_user == fields["write"].user:
        raise BadInput(
            f"{where}.Write.User {read_user!r} is also the read-only V3 user",
            line=line_of(value, "Write", line),
            logical_id=owner,
            hint="give the write user a name of its own",
        )
    return fields


def snmp_options(value: Any, line: int | None) -> SnmpOptions:
    """SnmpOptions from the template's resolved Metadata.Lab.Snmp."""
    return replace(SnmpOptions(), **_fields(value, "Metadata.Lab.Snmp", line, None))


def host_override(value: Any, owner: str, line: int | None) -> Mapping[str, Any]:
    """The fields a host's resolved Metadata.Lab.Snmp sets (merged by host_snmp)."""
    return frozen_map(_fields(value, "Metadata.Lab.Snmp", line, owner))


def host_snmp(model: StackModel, host_id: str) -> SnmpOptions | None:
    """The agent settings of one host, or None when it runs no agent."""
    override = model.extras.get(EXTRAS_KEY, {}).get(host_id, {})
    options = replace(model.lab.snmp, **dict(override))
    return options if options.enabled else None
