"""Service `trapd`: the lab's SNMP notification receiver (pysnmp), on UDP 162 of the resolver.

Where: on LabDNS, the lab's resolver host. It is the one lab-made host with an address in
every realm (each VPC's base + 2, the internet segment's .2: AWS's AmazonProvidedDNS), so
every agent reaches it at the same address it uses for DNS, whatever its VPC, through the
lab's router and without a route of its own; no instance or client of the template is
taken for it. (The holder lives in the machine's own namespace, which no lab host reaches.)

Agents send their notifications to it as INFORMs (snmpd `trapsess -Ci`: retransmitted until
acknowledged), with SNMPv2c (the agent's community) and, when the template has a V3 user,
SNMPv3 too (that user, authPriv; the receiver is the authoritative engine of an inform).
The holder's own notifications (a target's health transition, an Auto Scaling activity) are
INFORMs under the lab's ELB-LAB-MIB (testbed/snmp/mib/ELB-LAB-MIB.txt), sent by the holder's
notifier, a second process on the same host that follows the holder's events (the holder
runs in the machine's namespace, which has no route into the lab).
Each notification becomes a line of the lab's traps.jsonl and a lab event
(Lab::Snmp::Trap): the agent (host), the version, the trap OID and name, sysUpTime in the
PDU, the time the agent sent it (its boot time, learnt from the notifications it sent,
plus that sysUpTime) and the time received, and every varbind.

    python -m testbed.lab.services.trapd SPEC.json     (run in the resolver's namespace)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from testbed.lab.events import EventLog
from testbed.lab.hostexec import host_dir, netns_argv
from testbed.lab.services import ServiceContext
from testbed.naming import PLAN_FILE
from testbed.plan.network import HostPlan

PORT = 162
WHAT = "trapd"
NOTIFIER = "trapd-notifier"
NOTIFIER_LOG = "trapd-notifier.log"
EVENT_TYPE = "Lab::Snmp::Trap"
TRAPS = "traps.jsonl"  # in the lab directory
SPEC = "trapd.json"
LOG = "trapd.log"
READY_TEXT = "trapd listening"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
# The notifications this lab names (SNMPv2-MIB, IF-MIB, and the lab's own ELB-LAB-MIB).
NAMES = {
    "1.3.6.1.6.3.1.1.5.1": "coldStart",
    "1.3.6.1.6.3.1.1.5.2": "warmStart",
    "1.3.6.1.6.3.1.1.5.3": "linkDown",
    "1.3.6.1.6.3.1.1.5.4": "linkUp",
    "1.3.6.1.6.3.1.1.5.5": "authenticationFailure",
    "1.3.6.1.4.1.8072.4.0.2": "nsNotifyShutdown",
    "1.3.6.1.4.1.8072.4.0.3": "nsNotifyRestart",
}
VARBIND_NAMES = {
    "1.3.6.1.2.1.2.2.1.1": "ifIndex",
    "1.3.6.1.2.1.2.2.1.7": "ifAdminStatus",
    "1.3.6.1.2.1.2.2.1.8": "ifOperStatus",
    "1.3.6.1.2.1.2.2.1.2": "ifDescr",
}


def receiver_host(plan: Any) -> HostPlan | None:
    """The host the receiver runs in (the lab's first resolver), None without one."""
    return next((h for h in plan.hosts if h.kind == "dns"), None)


def spec_for(ctx: ServiceContext, host: HostPlan) -> dict[str, Any]:
    """What the receiver accepts: every agent's community and v3 user, and who is who."""
    communities = sorted({h.snmp["community"] for h in ctx.plan.hosts if h.snmp})
    users = {
        h.snmp["v3"]["user"]: h.snmp["v3"] for h in ctx.plan.hosts if h.snmp and h.snmp.get("v3")
    }
    return {
        "lab_dir": str(ctx.lab_dir),
        "addresses": [host.ip, *host.extra_ips],
        "port": PORT,
        "communities": communities,
        "users": list(users.values()),
        "hosts": {ip: h.name for h in ctx.plan.hosts for ip in (h.ip, *h.extra_ips)},
    }


def start(ctx: ServiceContext, host: HostPlan) -> subprocess.Popen | None:
    """Start the receiver on the resolver host (if any host of the lab runs an agent)."""
    if host.kind != "dns" or not any(h.snmp for h in ctx.plan.hosts):
        return None
    hdir = host_dir(ctx.lab, host.name)
    hdir.mkdir(parents=True, exist_ok=True)
    spec = hdir / SPEC
    spec.write_text(json.dumps(spec_for(ctx, host)))
    spec.chmod(0o600)  # communities and pass phrases
    argv = [sys.executable, "-m", "testbed.lab.services.trapd", str(spec)]
    proc = ctx.journal.start(
        netns_argv(ctx.lab, host.name, argv, record=WHAT),
        what=WHAT,
        host=host.name,
        log=hdir / LOG,
        env=ctx.env,
    )
    notifier = ctx.journal.start(
        netns_argv(ctx.lab, host.name, [*argv[:-1], "--notifier", str(spec)], record=NOTIFIER),
        what=NOTIFIER,
        host=host.name,
        log=hdir / NOTIFIER_LOG,
        env=ctx.env,
    )
    ctx.events.emit(
        host.name,
        EVENT_TYPE,
        "TRAPD_STARTED",
        f"pid {proc.pid} (holder's notifier: pid {notifier.pid}), udp "
        + ", ".join(f"{a}:{PORT}" for a in spec_for(ctx, host)["addresses"]),
    )
    return proc


def _value(value: Any) -> Any:
    kind = type(value).__name__
    if kind in ("Integer", "Integer32", "Counter32", "Counter64", "Gauge32", "Unsigned32"):
        return int(value)
    if kind == "TimeTicks":
        return int(value)
    if kind == "OctetString":
        raw = bytes(value)
        try:
            text = raw.decode()
            if text.isprintable():
                return text
        except UnicodeDecodeError:
            pass
        return "0x" + raw.hex()
    if kind in ("ObjectIdentifier", "ObjectName"):
        return str(value)
    if kind == "IpAddress":
        return ".".join(str(b) for b in bytes(value))
    return value.prettyPrint()


def _name(oid: str) -> str:
    if oid in LAB_OBJECTS:
        return LAB_OBJECTS[oid]
    for prefix, name in VARBIND_NAMES.items():
        if oid.startswith(prefix + "."):
            return name + oid[len(prefix) :]
    return oid


class Receiver:
    """Turns each notification into a traps.jsonl line and a lab event."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.lab_dir = Path(spec["lab_dir"])
        self.events = EventLog(self.lab_dir)
        self.boot: dict[str, float] = {}  # agent -> estimated boot time (earliest seen)
        self.last_message: dict[str, Any] = {}

    def _reload_hosts(self) -> None:
        """Who is who again, from the lab's current network plan."""
        try:
            plan = json.loads((self.lab_dir / PLAN_FILE).read_text())
            self.spec["hosts"] = {
                ip: h["name"]
                for h in plan.get("hosts", [])
                for ip in (h["ip"], *h.get("extra_ips", []))
            }
        except (OSError, ValueError, KeyError, TypeError):
            pass

    def observe(self, _engine: Any, _point: str, variables: dict, _ctx: Any) -> None:
        self.last_message = {
            "address": variables.get("transportAddress"),
            "model": variables.get("securityModel"),
            "user": variables.get("securityName"),
            "pdu": type(variables.get("pdu")).__name__,
        }

    def record(self, varbinds: list[tuple[str, Any]], received: float) -> dict[str, Any]:
        message = self.last_message
        address = message.get("address")
        ip = address[0] if address else ""
        if ip not in self.spec["hosts"]:
            self._reload_hosts()  # a host launched, or a stack added, since the start
        agent = self.spec["hosts"].get(ip, ip)
        values = {oid: _value(v) for oid, v in varbinds}
        uptime = int(values.get(SYS_UPTIME, 0))
        trap_oid = str(values.get(SNMP_TRAP_OID, ""))
        if trap_oid in LAB_NOTIFICATIONS:
            agent = HOLDER
        boot = min(self.boot.get(agent, received), received - uptime / 100)
        self.boot[agent] = boot
        version = "v3" if message.get("model") == 3 else "v2c"
        kind = "inform" if "Inform" in str(message.get("pdu")) else "trap"
        extra = {_name(o): v for o, v in values.items() if o not in (SYS_UPTIME, SNMP_TRAP_OID)}
        name = NAMES.get(trap_oid) or _lab_name(trap_oid) or trap_oid
        entry = {
            "received": round(received, 6),
            "sent": round(boot + uptime / 100, 3),
            "agent": agent,
            "address": ip,
            "version": version,
            "pdu": kind,
            "security_name": str(message.get("user") or ""),
            "trap_oid": trap_oid,
            "trap": name,
            "sys_uptime": uptime,
            "varbinds": extra,
        }
        with open(self.lab_dir / TRAPS, "a") as handle:
            handle.write(json.dumps(entry) + "\n")
        delay = max(0.0, received - entry["sent"])
        shown = " ".join(f"{k}={v}" for k, v in extra.items())
        about = str(extra.get("elbLabResource", agent))
        self.events.emit(
            about if agent == HOLDER else agent,
            EVENT_TYPE,
            f"TRAP_{name.upper()}" if name in NAMES.values() or _lab_name(trap_oid) else "TRAP",
            f"{name} ({trap_oid}) {version} {kind} from {ip}: sent {_clock(entry['sent'])} "
            f"(sysUpTime {uptime}), received {_clock(received)} (+{delay:.3f} s)"
            + (f"; {shown}" if shown else ""),
        )
        return entry


def _clock(when: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(when)) + f".{int(when % 1 * 1000):03d}"


# ELB-LAB-MIB (testbed/snmp/mib/ELB-LAB-MIB.txt): enterprises.32473 is RFC 5612's number
# for documentation use (the lab has no number of its own); the lab is its branch 1.
LAB_MIB = "1.3.6.1.4.1.32473.1"
TARGET_HEALTH_CHANGE = f"{LAB_MIB}.0.1"
SCALING_ACTIVITY = f"{LAB_MIB}.0.2"
LAB_NOTIFICATIONS = {
    TARGET_HEALTH_CHANGE: "elbLabTargetHealthChange",
    SCALING_ACTIVITY: "elbLabScalingActivity",
}
LAB_OBJECTS = {
    f"{LAB_MIB}.1.{i}.0": name
    for i, name in enumerate(
        (
            "elbLabResource",
            "elbLabGroup",
            "elbLabOldState",
            "elbLabNewState",
            "elbLabReason",
            "elbLabEventTime",
        ),
        start=1,
    )
}
HOLDER = "holder"  # the agent name of the holder's notifications
# The holder's events that become notifications: (resource type, status prefix).
TARGET_HEALTH_TYPE = "Lab::TargetHealth"
SCALING_TYPE = "AWS::AutoScaling::AutoScalingGroup"


def _lab_name(oid: str) -> str | None:
    return LAB_NOTIFICATIONS.get(oid)


async def serve(spec: dict[str, Any]) -> None:
    from pysnmp.carrier.asyncio.dgram import udp
    from pysnmp.entity import config, engine
    from pysnmp.entity.rfc3413 import ntfrcv
    from pysnmp.hlapi.v3arch import asyncio as hlapi

    from testbed.lab.services.snmpd import PYSNMP_AUTH as AUTH
    from testbed.lab.services.snmpd import PYSNMP_PRIV as PRIV

    snmp_engine = engine.SnmpEngine()
    for i, address in enumerate(spec["addresses"]):
        config.add_transport(
            snmp_engine,
            (*udp.DOMAIN_NAME, i + 1),
            udp.UdpTransport().open_server_mode((address, int(spec["port"]))),
        )
    for i, community in enumerate(spec["communities"]):
        config.add_v1_system(snmp_engine, f"lab-area-{i}", community)
    for user in spec["users"]:
        config.add_v3_user(
            snmp_engine,
            user["user"],
            getattr(hlapi, AUTH[user["auth_protocol"]]),
            user["auth_password"],
            getattr(hlapi, PRIV[user["priv_protocol"]]),
            user["priv_password"],
        )
    receiver = Receiver(spec)
    snmp_engine.observer.register_observer(receiver.observe, "rfc3412.receiveMessage:request")

    def callback(_e: Any, _ref: Any, _ceid: Any, _cname: Any, varbinds: Any, _ctx: Any) -> None:
        received = time.time()
        receiver.record([(str(o), v) for o, v in varbinds], received)

    ntfrcv.NotificationReceiver(snmp_engine, callback)
    print(f"{READY_TEXT} on {', '.join(spec['addresses'])} udp {spec['port']}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    snmp_engine.transport_dispatcher.job_started(1)
    try:
        await stop.wait()
    finally:
        snmp_engine.transport_dispatcher.close_dispatcher()


def lab_notification(event: dict[str, Any]) -> tuple[str, list[tuple[str, str]]] | None:
    """The ELB-LAB-MIB notification (OID, [(object OID, text)]) for one of the holder's
    events, or None for an event that is none: a target's health transition
    (Lab::TargetHealth TARGET_*), an Auto Scaling activity (SCALING_ACTIVITY)."""
    objects = {name: oid for oid, name in LAB_OBJECTS.items()}
    when = f"{event['time']:.3f}"
    if event["resource_type"] == TARGET_HEALTH_TYPE and event["status"].startswith("TARGET_"):
        # "NLB/TG: healthy -> unhealthy (why)"
        group, _, change = event["reason"].partition(": ")
        old, _, rest = change.partition(" -> ")
        new, _, why = rest.partition(" (")
        fields = {
            "elbLabResource": event["logical_id"],
            "elbLabGroup": group,
            "elbLabOldState": old,
            "elbLabNewState": new,
            "elbLabReason": why[:-1] if why.endswith(")") else why,
            "elbLabEventTime": when,
        }
        return TARGET_HEALTH_CHANGE, [(objects[k], v) for k, v in fields.items()]
    if event["resource_type"] == SCALING_TYPE and event["status"] == "SCALING_ACTIVITY":
        fields = {
            "elbLabResource": event["logical_id"],
            "elbLabReason": event["reason"],
            "elbLabEventTime": when,
        }
        return SCALING_ACTIVITY, [(objects[k], v) for k, v in fields.items()]
    return None


async def notify(spec: dict[str, Any]) -> None:
    """The holder's notifier: its events (events.jsonl) as ELB-LAB-MIB INFORMs (v2c) to the
    receiver. It runs next to the receiver, because the holder's own namespace has no route
    into the lab."""
    from pysnmp.hlapi.v3arch.asyncio import (
        CommunityData,
        ContextData,
        NotificationType,
        ObjectIdentity,
        SnmpEngine,
        UdpTransportTarget,
        send_notification,
    )
    from pysnmp.proto.rfc1902 import OctetString

    engine = SnmpEngine()
    target = await UdpTransportTarget.create(
        (spec["addresses"][0], int(spec["port"])), timeout=1, retries=5
    )
    auth = CommunityData(spec["communities"][0], mpModel=1)
    path = Path(spec["lab_dir"]) / "events.jsonl"
    offset = 0
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("notifier following " + str(path), flush=True)
    while not stop.is_set():
        data = b""
        if path.exists():
            with open(path, "rb") as handle:
                handle.seek(offset)
                data = handle.read()
        end = data.rfind(b"\n") + 1
        offset += end
        for line in data[:end].decode(errors="replace").splitlines():
            try:
                found = lab_notification(json.loads(line))
            except (ValueError, KeyError):
                continue
            if found is None:
                continue
            oid, binds = found
            notification = NotificationType(ObjectIdentity(oid)).add_varbinds(
                *[(ObjectIdentity(o), OctetString(v.encode())) for o, v in binds]
            )
            error, *_ = await send_notification(
                engine, auth, target, ContextData(), "inform", notification
            )
            if error:
                print(f"inform {oid} not acknowledged: {error}", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.2)
    engine.close_dispatcher()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "--notifier":
        asyncio.run(notify(json.loads(Path(args[1]).read_text())))
        return 0
    if len(args) != 1:
        print(
            "usage: python -m testbed.lab.services.trapd [--notifier] SPEC.json",
            file=sys.stderr,
        )
        return 2
    asyncio.run(serve(json.loads(Path(args[0]).read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())


def read_traps(lab_dir: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The notifications received so far (from byte `offset` of traps.jsonl on), and the
    offset after the last whole line (for following the file)."""
    path = Path(lab_dir) / TRAPS
    if not path.exists():
        return [], offset
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read()
    end = data.rfind(b"\n") + 1
    rows = []
    for line in data[:end].decode(errors="replace").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows, offset + end
