"""The MIB objects the lab names, both ways: `IF-MIB::ifHCInOctets.2` <-> 1.3.6.1.2.1.31.1.1.1.6.2.

A table written from the MIB modules (RFC 3418 SNMPv2-MIB, RFC 2863 IF-MIB, RFC 2790
HOST-RESOURCES-MIB, RFC 4022 TCP-MIB, RFC 4113 UDP-MIB) instead of a MIB compiler: pysnmp
ships neither IF-MIB nor HOST-RESOURCES-MIB compiled, and compiling them would need the MIB
sources from the internet. Numeric OIDs always work, named or not.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from testbed.errors import BadInput

OID = tuple[int, ...]


@dataclass(frozen=True)
class MibObject:
    """One named node: a scalar, a table column, or a table/group to walk."""

    module: str
    name: str
    oid: OID
    kind: str  # scalar | column | table | group

    @property
    def full_name(self) -> str:
        return f"{self.module}::{self.name}"


def _objects() -> list[MibObject]:
    out: list[MibObject] = []

    def add(module: str, kind: str, base: str, names: dict[int, str]) -> None:
        prefix = tuple(int(x) for x in base.split("."))
        out.extend(MibObject(module, name, (*prefix, sub), kind) for sub, name in names.items())

    def node(module: str, kind: str, name: str, oid: str) -> None:
        out.append(MibObject(module, name, tuple(int(x) for x in oid.split(".")), kind))

    v2 = "SNMPv2-MIB"
    node(v2, "group", "system", "1.3.6.1.2.1.1")
    add(
        v2,
        "scalar",
        "1.3.6.1.2.1.1",
        {
            1: "sysDescr",
            2: "sysObjectID",
            3: "sysUpTime",
            4: "sysContact",
            5: "sysName",
            6: "sysLocation",
            7: "sysServices",
            8: "sysORLastChange",
        },
    )
    node(v2, "group", "snmp", "1.3.6.1.2.1.11")
    add(
        v2,
        "scalar",
        "1.3.6.1.2.1.11",
        {
            1: "snmpInPkts",
            2: "snmpOutPkts",
            3: "snmpInBadVersions",
            4: "snmpInBadCommunityNames",
            5: "snmpInBadCommunityUses",
        },
    )

    ifm = "IF-MIB"
    node(ifm, "group", "interfaces", "1.3.6.1.2.1.2")
    node(ifm, "scalar", "ifNumber", "1.3.6.1.2.1.2.1")
    node(ifm, "table", "ifTable", "1.3.6.1.2.1.2.2")
    node(ifm, "table", "ifEntry", "1.3.6.1.2.1.2.2.1")
    add(
        ifm,
        "column",
        "1.3.6.1.2.1.2.2.1",
        {
            1: "ifIndex",
            2: "ifDescr",
            3: "ifType",
            4: "ifMtu",
            5: "ifSpeed",
            6: "ifPhysAddress",
            7: "ifAdminStatus",
            8: "ifOperStatus",
            9: "ifLastChange",
            10: "ifInOctets",
            11: "ifInUcastPkts",
            12: "ifInNUcastPkts",
            13: "ifInDiscards",
            14: "ifInErrors",
            15: "ifInUnknownProtos",
            16: "ifOutOctets",
            17: "ifOutUcastPkts",
            18: "ifOutNUcastPkts",
            19: "ifOutDiscards",
            20: "ifOutErrors",
            21: "ifOutQLen",
        },
    )
    node(ifm, "group", "ifMIBObjects", "1.3.6.1.2.1.31.1")
    node(ifm, "table", "ifXTable", "1.3.6.1.2.1.31.1.1")
    node(ifm, "table", "ifXEntry", "1.3.6.1.2.1.31.1.1.1")
    add(
        ifm,
        "column",
        "1.3.6.1.2.1.31.1.1.1",
        {
            1: "ifName",
            2: "ifInMulticastPkts",
            3: "ifInBroadcastPkts",
            4: "ifOutMulticastPkts",
            5: "ifOutBroadcastPkts",
            6: "ifHCInOctets",
            7: "ifHCInUcastPkts",
            8: "ifHCInMulticastPkts",
            9: "ifHCInBroadcastPkts",
            10: "ifHCOutOctets",
            11: "ifHCOutUcastPkts",
            12: "ifHCOutMulticastPkts",
            13: "ifHCOutBroadcastPkts",
            14: "ifLinkUpDownTrapEnable",
            15: "ifHighSpeed",
            16: "ifPromiscuousMode",
            17: "ifConnectorPresent",
            18: "ifAlias",
            19: "ifCounterDiscontinuityTime",
        },
    )

    hr = "HOST-RESOURCES-MIB"
    node(hr, "group", "host", "1.3.6.1.2.1.25")
    node(hr, "group", "hrSystem", "1.3.6.1.2.1.25.1")
    add(
        hr,
        "scalar",
        "1.3.6.1.2.1.25.1",
        {
            1: "hrSystemUptime",
            2: "hrSystemDate",
            5: "hrSystemNumUsers",
            6: "hrSystemProcesses",
            7: "hrSystemMaxProcesses",
        },
    )
    node(hr, "scalar", "hrMemorySize", "1.3.6.1.2.1.25.2.2")
    node(hr, "table", "hrStorageTable", "1.3.6.1.2.1.25.2.3")
    add(
        hr,
        "column",
        "1.3.6.1.2.1.25.2.3.1",
        {
            1: "hrStorageIndex",
            2: "hrStorageType",
            3: "hrStorageDescr",
            4: "hrStorageAllocationUnits",
            5: "hrStorageSize",
            6: "hrStorageUsed",
            7: "hrStorageAllocationFailures",
        },
    )
    node(hr, "table", "hrProcessorTable", "1.3.6.1.2.1.25.3.3")
    add(hr, "column", "1.3.6.1.2.1.25.3.3.1", {1: "hrProcessorFrwID", 2: "hrProcessorLoad"})
    node(hr, "table", "hrSWRunTable", "1.3.6.1.2.1.25.4.2")
    add(
        hr,
        "column",
        "1.3.6.1.2.1.25.4.2.1",
        {
            1: "hrSWRunIndex",
            2: "hrSWRunName",
            3: "hrSWRunID",
            4: "hrSWRunPath",
            5: "hrSWRunParameters",
            6: "hrSWRunType",
            7: "hrSWRunStatus",
        },
    )
    node(hr, "table", "hrSWRunPerfTable", "1.3.6.1.2.1.25.5.1")
    add(hr, "column", "1.3.6.1.2.1.25.5.1.1", {1: "hrSWRunPerfCPU", 2: "hrSWRunPerfMem"})

    node("TCP-MIB", "group", "tcp", "1.3.6.1.2.1.6")
    add(
        "TCP-MIB",
        "scalar",
        "1.3.6.1.2.1.6",
        {
            5: "tcpActiveOpens",
            6: "tcpPassiveOpens",
            7: "tcpAttemptFails",
            8: "tcpEstabResets",
            9: "tcpCurrEstab",
            10: "tcpInSegs",
            11: "tcpOutSegs",
            12: "tcpRetransSegs",
            14: "tcpInErrs",
            15: "tcpOutRsts",
        },
    )
    node("UDP-MIB", "group", "udp", "1.3.6.1.2.1.7")
    add(
        "UDP-MIB",
        "scalar",
        "1.3.6.1.2.1.7",
        {1: "udpInDatagrams", 2: "udpNoPorts", 3: "udpInErrors", 4: "udpOutDatagrams"},
    )
    return out


OBJECTS: tuple[MibObject, ...] = tuple(_objects())
BY_NAME: dict[str, MibObject] = {o.name: o for o in OBJECTS}
BY_OID: dict[OID, MibObject] = {o.oid: o for o in OBJECTS}
MODULES = frozenset(o.module for o in OBJECTS)

# 32-bit counters and their 64-bit (HC) twins: rates use the HC one where the agent has it.
HC_TWIN = {
    "IF-MIB::ifInOctets": "IF-MIB::ifHCInOctets",
    "IF-MIB::ifOutOctets": "IF-MIB::ifHCOutOctets",
    "IF-MIB::ifInUcastPkts": "IF-MIB::ifHCInUcastPkts",
    "IF-MIB::ifOutUcastPkts": "IF-MIB::ifHCOutUcastPkts",
}
SYS_UPTIME = "SNMPv2-MIB::sysUpTime"

_NAME_RE = re.compile(
    r"^(?:(?P<module>[A-Za-z][-A-Za-z0-9]*)::)?(?P<name>[A-Za-z][A-Za-z0-9]*)"
    r"(?P<index>(?:\.\d+)*)$"
)
_NUMERIC_RE = re.compile(r"^\.?\d+(?:\.\d+)*$")


@dataclass(frozen=True)
class Target:
    """What a user named: an OID, the object it belongs to (if known) and the index given."""

    oid: OID
    obj: MibObject | None
    index: OID = ()

    @property
    def request(self) -> str:
        """How to ask for it: 'get' one instance, 'scalar' (instance .0), or 'walk' a subtree."""
        if self.obj is None or self.obj.kind in ("table", "group"):
            return "walk"
        if self.index:
            return "get"
        return "scalar" if self.obj.kind == "scalar" else "walk"

    @property
    def label(self) -> str:
        """The name as rows show it: MODULE::name, or the numeric OID."""
        return self.obj.full_name if self.obj else oid_text(self.oid)


def oid_text(oid: OID) -> str:
    """1.3.6.1... for a tuple of ints."""
    return ".".join(str(x) for x in oid)


def parse_oid(text: str) -> OID:
    """A numeric OID from text like 1.3.6.1.2.1 or .1.3.6.1.2.1."""
    return tuple(int(x) for x in text.strip().lstrip(".").split("."))


def resolve(text: str) -> Target:
    """The OID named by `text`: MODULE::name[.index], name[.index] or a numeric OID."""
    text = text.strip()
    if _NUMERIC_RE.match(text):
        oid = parse_oid(text)
        known = object_of(oid)
        if known is not None:
            return Target(oid, known[0], known[1])
        return Target(oid, None)
    match = _NAME_RE.match(text)
    if not match:
        raise BadInput(
            f"cannot read {text!r} as an object: write MODULE::name[.index] "
            "(IF-MIB::ifHCInOctets.2), name[.index] or a numeric OID (1.3.6.1.2.1.1)"
        )
    module, name, index = match["module"], match["name"], match["index"]
    obj = BY_NAME.get(name)
    if obj is None:
        raise BadInput(f"unknown object {text!r}", hint=_close_matches(name, module))
    if module and module != obj.module:
        raise BadInput(
            f"{name} is in {obj.module}, not {module}", hint=f"write {obj.full_name}{index}"
        )
    idx = parse_oid(index) if index else ()
    if idx and obj.kind in ("table", "group"):
        raise BadInput(f"{obj.full_name} is a {obj.kind}: an index goes on one of its columns")
    return Target(obj.oid + idx, obj, idx)


def _close_matches(name: str, module: str | None) -> str:
    names = [o.name for o in OBJECTS if module is None or o.module == module]
    close = difflib.get_close_matches(name, names, n=4, cutoff=0.5)
    if not close:
        lowered = name.lower()
        close = [n for n in names if lowered in n.lower()][:4]
    if close:
        return "close: " + ", ".join(BY_NAME[n].full_name for n in close)
    if module and module not in MODULES:
        return f"known modules: {', '.join(sorted(MODULES))}; numeric OIDs always work"
    return "numeric OIDs always work; `testbed snmp names` lists the named objects"


def object_of(oid: OID) -> tuple[MibObject, OID] | None:
    """The scalar or column an instance OID belongs to, and its index; None if unknown."""
    for cut in range(len(oid), 0, -1):
        obj = BY_OID.get(oid[:cut])
        if obj is not None:
            if obj.kind in ("scalar", "column"):
                return obj, oid[cut:]
            return None
    return None


def describe(oid: OID) -> tuple[str, str]:
    """(object, index) as rows show them: ("IF-MIB::ifHCInOctets", "2"), or (numeric OID, "")."""
    known = object_of(oid)
    if known is None:
        return oid_text(oid), ""
    obj, index = known
    return obj.full_name, oid_text(index)


def display(oid: OID) -> str:
    """One name for an instance: IF-MIB::ifHCInOctets.2, or the numeric OID."""
    name, index = describe(oid)
    return f"{name}.{index}" if index else name


# What `testbed monitor` polls unless told otherwise: traffic and errors of every
# interface (both counter widths, so rates work on agents without ifXTable), and uptime for
# spotting agent restarts.
DEFAULT_MONITOR_OBJECTS = (
    "SNMPv2-MIB::sysUpTime",
    "IF-MIB::ifHCInOctets",
    "IF-MIB::ifHCOutOctets",
    "IF-MIB::ifInOctets",
    "IF-MIB::ifOutOctets",
    "IF-MIB::ifHCInUcastPkts",
    "IF-MIB::ifHCOutUcastPkts",
    "IF-MIB::ifInErrors",
    "IF-MIB::ifOutErrors",
    "IF-MIB::ifInDiscards",
)
