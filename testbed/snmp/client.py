"""Asking one agent: GET and GETBULK walks with pysnmp (asyncio), answers as tidy rows.

Rows follow testbed.schemas.SNMP_COLUMNS. Nothing here raises for what an agent does or
fails to do: a timeout, a wrong pass phrase or a broken answer becomes rows with `error` set.
Requests carry numeric OIDs only and answers are not looked up in MIBs (lookupMib=False):
names come from testbed.snmp.mibs, which is much faster than pysnmp's MIB browser.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from testbed.lab.services.snmpd import PYSNMP_AUTH, PYSNMP_PRIV
from testbed.snmp import mibs
from testbed.snmp.mibs import OID, Target

MAX_REPETITIONS = 24
MAX_WALK_ROUNDS = 200  # a walk of a big table stops here instead of running away
INTEGER_TYPES = {
    "Integer": "Integer",
    "Integer32": "Integer",
    "Counter32": "Counter32",
    "Counter64": "Counter64",
    "Gauge32": "Gauge32",
    "Unsigned32": "Unsigned32",
    "TimeTicks": "TimeTicks",
}
EXCEPTIONS = {
    "NoSuchObject": "noSuchObject",
    "NoSuchInstance": "noSuchInstance",
    "EndOfMibView": "endOfMibView",
}


@dataclass(frozen=True)
class Credentials:
    """How to talk to an agent: a v2c community, or a v3 user (authPriv)."""

    community: str | None = None
    v3: dict[str, str] | None = None  # user, auth_password, priv_password, *_protocol

    @classmethod
    def from_plan(cls, snmp: dict[str, Any], use_v3: bool = False) -> Credentials:
        """From a HostPlan's `snmp`: the community, or the v3 user if use_v3."""
        if use_v3:
            if not snmp.get("v3"):
                raise ValueError("no SNMPv3 user is configured for this host")
            return cls(v3=dict(snmp["v3"]))
        return cls(community=snmp["community"])

    def auth_data(self) -> Any:
        """pysnmp's CommunityData or UsmUserData."""
        from pysnmp.hlapi.v3arch.asyncio import CommunityData, UsmUserData

        if self.v3 is None:
            return CommunityData(self.community, mpModel=1)  # mpModel 1: SNMPv2c
        return UsmUserData(
            self.v3["user"],
            self.v3["auth_password"],
            self.v3["priv_password"],
            authProtocol=_protocol(AUTH, self.v3["auth_protocol"]),
            privProtocol=_protocol(PRIV, self.v3["priv_protocol"]),
        )


# pysnmp's names of the template's protocols (shared with the lab's trap receiver).
AUTH = PYSNMP_AUTH
PRIV = PYSNMP_PRIV


def _protocol(table: dict[str, str], name: str) -> Any:
    from pysnmp.hlapi.v3arch import asyncio as hlapi

    return getattr(hlapi, table[name])


_CONFIGURATOR: Any = None


async def _request(
    engine: Any,
    auth: Any,
    target: Any,
    command: str,
    oids: list[OID],
    non_repeaters: int,
    max_repetitions: int,
    set_values: list | None = None,
) -> tuple[Any, Any, list]:
    """One GET, GETBULK or SET (set_values: [(ObjectName, value)]) through pysnmp's command
    generators: (indication, status, varbinds).

    The hlapi get_cmd/bulk_cmd would look every requested OID up in pysnmp's MIB tree first
    (~0.4 ms per OID); numeric OIDs need none of that."""
    global _CONFIGURATOR
    from pysnmp.entity.rfc3413 import cmdgen
    from pysnmp.hlapi.v3arch.asyncio.lcd import CommandGeneratorLcdConfigurator
    from pysnmp.proto.rfc1902 import Null, ObjectName

    if _CONFIGURATOR is None:
        _CONFIGURATOR = CommandGeneratorLcdConfigurator()
    address, _params = _CONFIGURATOR.configure(engine, auth, target, b"")
    future = asyncio.get_running_loop().create_future()

    def done(
        _engine: Any,
        _handle: Any,
        indication: Any,
        status: Any,
        _index: Any,
        varbinds: Any,
        _context: Any,
    ) -> None:
        if not future.done():
            future.set_result((indication, status, list(varbinds)))

    varbinds = [(ObjectName(oid), Null("")) for oid in oids]
    if command == "set":
        cmdgen.SetCommandGenerator().send_varbinds(engine, address, None, b"", set_values, done)
    elif command == "get":
        cmdgen.GetCommandGenerator().send_varbinds(engine, address, None, b"", varbinds, done)
    else:
        cmdgen.BulkCommandGenerator().send_varbinds(
            engine, address, None, b"", non_repeaters, max_repetitions, varbinds, done
        )
    return await future


# snmpset's type letters -> pysnmp types.
SET_TYPES = {
    "i": "Integer32",
    "u": "Unsigned32",
    "t": "TimeTicks",
    "a": "IpAddress",
    "o": "ObjectIdentifier",
    "s": "OctetString",
    "x": "OctetString",
    "c": "Counter32",
    "g": "Gauge32",
}


def set_value(kind: str, value: str) -> Any:
    """The pysnmp value of `value` as snmpset type letter `kind` (ValueError if it is not)."""
    from pysnmp.proto import rfc1902

    if kind not in SET_TYPES:
        raise ValueError(f"unknown type {kind!r} (types: {', '.join(SET_TYPES)})")
    cls = getattr(rfc1902, SET_TYPES[kind])
    if kind == "x":
        return cls(hexValue=value.replace(" ", "").removeprefix("0x"))
    if kind == "s":
        return cls(value.encode())
    if kind == "o":
        return cls(mibs.parse_oid(value))
    if kind == "a":
        return cls(value)
    try:
        return cls(int(value))
    except Exception as exc:  # pyasn1 range errors
        raise ValueError(f"{value!r} is not a {SET_TYPES[kind]}") from exc


def convert(value: Any) -> tuple[Any, str, str]:
    """(value, type, error) of one answered value, as rows hold them."""
    kind = type(value).__name__
    if kind in EXCEPTIONS:
        return "", "", EXCEPTIONS[kind]
    if kind in INTEGER_TYPES:
        return int(value), INTEGER_TYPES[kind], ""
    if kind == "OctetString":
        raw = bytes(value)
        try:
            text = raw.decode()
            if text.isprintable():
                return text, kind, ""
        except UnicodeDecodeError:
            pass
        return "0x" + raw.hex(), kind, ""
    if kind in ("ObjectIdentifier", "ObjectName"):
        return str(value), "ObjectIdentifier", ""
    if kind == "IpAddress":
        return ".".join(str(b) for b in bytes(value)), kind, ""
    return value.prettyPrint(), kind, ""


def error_name(indication: Any) -> str:
    """A short name for a pysnmp error indication: timeout, wrongDigest, ..."""
    kind = type(indication).__name__
    if kind == "RequestTimedOut":
        return "timeout"
    return kind[:1].lower() + kind[1:] if kind else str(indication)


def row(
    host: str, when: float, obj: str, index: str, value: Any = "", kind: str = "", error: str = ""
) -> dict[str, Any]:
    """One row in SNMP_COLUMNS layout."""
    return {
        "time": round(when, 6),
        "host": host,
        "object": obj,
        "index": index,
        "value": value,
        "type": kind,
        "error": error,
    }


def answer_row(host: str, when: float, oid: OID, value: Any) -> dict[str, Any]:
    """The row of one answered variable."""
    obj, index = mibs.describe(oid)
    converted, kind, error = convert(value)
    return row(host, when, obj, index, converted, kind, error)


@dataclass
class PollResult:
    """The rows of one poll of one agent, how long it took and whether it failed outright."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    latency: float = 0.0
    error: str = ""


class Agent:
    """One agent (a lab host's snmpd) and the requests the manager sends it."""

    def __init__(
        self,
        engine: Any,
        host: str,
        ip: str,
        credentials: Credentials,
        timeout: float = 1.0,
        retries: int = 1,
        port: int = 161,
    ) -> None:
        self.engine = engine
        self.host = host
        self.ip = ip
        self.port = port
        self.credentials = credentials
        self.timeout = timeout
        self.retries = retries
        self._auth = credentials.auth_data()
        self._target: Any = None
        # Rows per walked column in the last poll. Decoding dominates the manager's cost
        # (pyasn1), so each GETBULK asks for one row more than last time instead of a fixed
        # large number, most of which would fall outside the columns and be thrown away.
        self._rows_hint: int | None = None

    async def _transport(self) -> Any:
        if self._target is None:
            from pysnmp.hlapi.v3arch.asyncio import UdpTransportTarget

            self._target = await UdpTransportTarget.create(
                (self.ip, self.port), timeout=self.timeout, retries=self.retries
            )
        return self._target

    async def _send(
        self,
        command: str,
        oids: list[OID],
        non_repeaters: int = 0,
        max_repetitions: int = MAX_REPETITIONS,
    ) -> tuple[float, str, list]:
        """(answer time, error, [(oid, value)]) of one request; never raises."""
        try:
            target = await self._transport()
            indication, status, answer = await _request(
                self.engine, self._auth, target, command, oids, non_repeaters, max_repetitions
            )
        except Exception as exc:  # an agent must never crash the manager
            return time.time(), f"error: {type(exc).__name__}: {exc}"[:200], []
        now = time.time()
        if indication:
            return now, error_name(indication), []
        if status:
            return now, str(status.prettyPrint()), []
        return now, "", [(tuple(name), value) for name, value in answer]

    async def set(self, oid: OID, kind: str, value: str) -> dict[str, Any]:
        """SET one instance to `value` of SNMP type `kind` (SET_TYPES); the answer's row,
        its error the agent's (notWritable, noAccess, authorizationError, ...) if refused."""
        try:
            typed = set_value(kind, value)
        except ValueError as exc:
            return row(self.host, time.time(), *mibs.describe(oid), error=f"badValue: {exc}")
        try:
            target = await self._transport()
            from pysnmp.proto.rfc1902 import ObjectName

            indication, status, answer = await _request(
                self.engine, self._auth, target, "set", [], 0, 0, [(ObjectName(oid), typed)]
            )
        except Exception as exc:
            return row(self.host, time.time(), *mibs.describe(oid), error=f"error: {exc}"[:200])
        now = time.time()
        if indication:
            return row(self.host, now, *mibs.describe(oid), error=error_name(indication))
        if status:
            return row(self.host, now, *mibs.describe(oid), error=str(status.prettyPrint()))
        return answer_row(self.host, now, tuple(answer[0][0]), answer[0][1])

    async def get(self, targets: list[Target]) -> list[dict[str, Any]]:
        """GET exact instances (scalars get their .0)."""
        oids = [t.oid + ((0,) if t.request == "scalar" else ()) for t in targets]
        when, error, answer = await self._send("get", oids)
        if error:
            return [
                row(self.host, when, t.label, mibs.oid_text(t.index), error=error) for t in targets
            ]
        return [answer_row(self.host, when, oid, value) for oid, value in answer]

    async def poll(self, targets: list[Target]) -> PollResult:
        """Every instance of `targets`: scalars and walks in GETBULKs, instances in one GET."""
        started = time.monotonic()
        result = PollResult()
        gets = [t for t in targets if t.request == "get"]
        scalars = [t for t in targets if t.request == "scalar"]
        walks = [t for t in targets if t.request == "walk"]
        requests = []
        if gets:
            requests.append(self.get(gets))
        if scalars or walks:
            repetitions = MAX_REPETITIONS if self._rows_hint is None else self._rows_hint + 1
            requests.append(self._bulk_walk(scalars, walks, repetitions))
        for rows in await asyncio.gather(*requests):
            result.rows += rows
        result.latency = time.monotonic() - started
        errors = {r["error"] for r in result.rows}
        if (
            result.rows
            and len(errors) == 1
            and errors != {""}
            and errors.isdisjoint(EXCEPTIONS.values())
        ):
            result.error = errors.pop()
        return result

    async def walk(self, target: Target) -> list[dict[str, Any]]:
        """Every instance under one OID."""
        return await self._bulk_walk([], [target], MAX_REPETITIONS)

    async def _bulk_walk(
        self, scalars: list[Target], walks: list[Target], repetitions: int
    ) -> list[dict]:
        rows: list[dict[str, Any]] = []
        # Scalars ride along as non-repeaters: GETNEXT of sysUpTime is sysUpTime.0.
        when, error, answer = await self._send(
            "bulk", [t.oid for t in scalars] + [t.oid for t in walks], len(scalars), repetitions
        )
        if error:
            return [row(self.host, when, t.label, "", error=error) for t in scalars + walks]
        for t, (oid, value) in zip(scalars, answer[: len(scalars)], strict=False):
            if oid == (*t.oid, 0):
                rows.append(answer_row(self.host, when, oid, value))
            else:
                rows.append(row(self.host, when, t.label, "0", error="noSuchObject"))
        found = dict.fromkeys(range(len(walks)), 0)
        pending = self._take(
            walks, answer[len(scalars) :], when, rows, found, list(range(len(walks)))
        )
        rounds = 1
        while pending and rounds < MAX_WALK_ROUNDS:
            rounds += 1
            when, error, answer = await self._send(
                "bulk", [last for _, last in pending], 0, MAX_REPETITIONS
            )
            if error:
                rows += [row(self.host, when, walks[i].label, "", error=error) for i, _ in pending]
                break
            pending = self._take(
                walks,
                answer,
                when,
                rows,
                found,
                [i for i, _ in pending],
                [last for _, last in pending],
            )
        if walks and not error:
            self._rows_hint = min(max(found.values()), MAX_REPETITIONS)
        for i, count in found.items():
            if count == 0 and not any(r["error"] and r["object"] == walks[i].label for r in rows):
                rows.append(row(self.host, when, walks[i].label, "", error="noSuchObject"))
        return rows

    def _take(
        self,
        walks: list[Target],
        answer: list,
        when: float,
        rows: list[dict],
        found: dict[int, int],
        columns: list[int],
        starts: list[OID] | None = None,
    ) -> list[tuple[int, OID]]:
        """Rows from one GETBULK answer; the columns still to continue, with their last OID."""
        width = len(columns)
        if width == 0:
            return []
        last = {c: (starts[k] if starts else walks[c].oid) for k, c in enumerate(columns)}
        done: set[int] = set()
        for position, (oid, value) in enumerate(answer):
            column = columns[position % width]
            if column in done:
                continue
            prefix = walks[column].oid
            ended = type(value).__name__ == "EndOfMibView"
            # Answers must move forward, or a faulty agent would keep a walk going forever.
            if ended or oid[: len(prefix)] != prefix or oid <= last[column]:
                done.add(column)
                continue
            rows.append(answer_row(self.host, when, oid, value))
            found[column] += 1
            last[column] = oid
        # A column whose answers all stayed in its subtree may have more rows.
        return [(c, last[c]) for c in columns if c not in done and answer]
