"""Service `snmpd`: a net-snmp agent in each host's namespace, bound to the host's address.

Because the agent runs in the host's network namespace, IF-MIB shows that host's own
interfaces (lo and eth0) and counters. HOST-RESOURCES-MIB reads /proc of the whole machine
(hosts share its processes, CPUs and disks): hrProcessorLoad and hrSWRun are the machine's.

Every file of the agent lives in the host's directory of the lab: snmpd.conf, snmpd.log and
the persistent state (SNMP_PERSISTENT_DIR), never /var/lib/snmp. `-C` keeps the machine's
own /etc/snmp configuration out; `-I -smux` leaves out SMUX, which would listen on TCP 199 of
every address.

net-snmp keeps interface counters in a cache that it reloads only every 3 s, so a manager
polling every second would see steps instead of rates. Once the agent is up, its ifTable
cache timeout (NET-SNMP-AGENT-MIB::nsCacheTimeout) is set to 0 (reload on every request)
with snmpset, through a write community that only the host itself may use and that can
write nothing but cache timeouts.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import threading
from pathlib import Path

from testbed.lab.hostexec import host_dir, netns_argv
from testbed.lab.services import ServiceContext
from testbed.lab.services.dns import resolver_for
from testbed.plan.network import HostPlan
from testbed.waiting import WaitTimeout, wait_for

SNMPD = "/usr/sbin/snmpd"
SNMPSET = "/usr/bin/snmpset"
WHAT = "snmpd"  # journal label of the agent process
PORT = 161
CONF = "snmpd.conf"
LOG = "snmpd.log"
STATE_DIR = "snmp"
EVENT_TYPE = "Lab::Snmp"
READY_TEXT = "NET-SNMP version"  # snmpd logs this once its port is open
READY_TIMEOUT = 10.0
# Template protocol names -> net-snmp createUser names (AES-192/256: Blumenthal key
# extension, which pysnmp calls usmAesBlumenthalCfb192/256Protocol).
NETSNMP_PRIV = {"DES": "DES", "AES": "AES", "AES-192": "AES192", "AES-256": "AES256"}
# What the template's write user may SET (and read): SNMPv2-MIB::sysContact, sysName,
# sysLocation and IF-MIB::ifAdminStatus.
SYS_CONTACT, SYS_NAME, SYS_LOCATION = "1.3.6.1.2.1.1.4", "1.3.6.1.2.1.1.5", "1.3.6.1.2.1.1.6"
IF_ADMIN_STATUS = "1.3.6.1.2.1.2.2.1.7"
WRITABLE = (SYS_CONTACT, SYS_NAME, SYS_LOCATION, IF_ADMIN_STATUS)
# The write user's view: the whole system group (so that a SET of sysUpTime or sysDescr is
# refused as notWritable, the object's own answer, not noAccess) and ifAdminStatus.
SYSTEM = "1.3.6.1.2.1.1"
WRITE_VIEW = (SYSTEM, IF_ADMIN_STATUS)
IFADMIN = Path(__file__).with_name("snmp_ifadmin.py")  # snmpd `pass` for ifAdminStatus
# pysnmp's names of the same protocols (the manager and the trap receiver use them).
PYSNMP_AUTH = {
    "MD5": "USM_AUTH_HMAC96_MD5",
    "SHA": "USM_AUTH_HMAC96_SHA",
    "SHA-224": "USM_AUTH_HMAC128_SHA224",
    "SHA-256": "USM_AUTH_HMAC192_SHA256",
    "SHA-384": "USM_AUTH_HMAC256_SHA384",
    "SHA-512": "USM_AUTH_HMAC384_SHA512",
}
# AES-192/256 as net-snmp does them (Blumenthal key extension).
PYSNMP_PRIV = {
    "DES": "USM_PRIV_CBC56_DES",
    "AES": "USM_PRIV_CFB128_AES",
    "AES-192": "USM_PRIV_CFB192_AES_BLUMENTHAL",
    "AES-256": "USM_PRIV_CFB256_AES_BLUMENTHAL",
}
# Notifications: INFORMs to the lab's receiver (testbed.lab.services.trapd), retransmitted
# every INFORM_TIMEOUT s up to INFORM_RETRIES times: a linkDown sent while the host's only
# interface is down gets through once it is back (within INFORM_TIMEOUT).
TRAP_PORT = 162
INFORM_TIMEOUT = 1
INFORM_RETRIES = 120
LINK_UP, LINK_DOWN = "1.3.6.1.6.3.1.1.5.4", "1.3.6.1.6.3.1.1.5.3"
IF_INDEX, IF_OPER_STATUS = "1.3.6.1.2.1.2.2.1.1", "1.3.6.1.2.1.2.2.1.8"
LINK_CHECK_S = 1  # how often the agent looks at ifOperStatus (net-snmp's default: 60 s)
NS_CACHE_TIMEOUT = "1.3.6.1.4.1.8072.1.5.3.1.2"  # NET-SNMP-AGENT-MIB::nsCacheTimeout
# Its (IMPLIED) index: the cached table. ifXTable reads the same cache.
IF_TABLE = "1.3.6.1.2.1.2.2"
SYS_FIXED = (("sysName", SYS_NAME), ("sysLocation", SYS_LOCATION), ("sysContact", SYS_CONTACT))


def sys_values(lab: str, host: HostPlan) -> dict[str, str]:
    """sysName, sysLocation and sysContact of a host's agent, by OID."""
    where = f"{host.az}, subnet {host.subnet}" if host.kind == "instance" else "internet"
    return {
        SYS_NAME: host.name,
        SYS_LOCATION: f"lab {lab}, {where}",
        SYS_CONTACT: "ELB Lab (testbed)",
    }


def notification_lines(snmp: dict, sink: str, internal_user: str) -> list[str]:
    """snmpd.conf lines that send coldStart, linkUp/linkDown and authenticationFailure to
    `sink` as INFORMs, with v2c (the community) and v3 (the V3 user) when there is one."""
    at = f"-Ci -r {INFORM_RETRIES} -t {INFORM_TIMEOUT}"
    lines = [
        "authtrapenable 1",
        f"trapsess {at} -v 2c -c {snmp['community']} {sink}:{TRAP_PORT}",
    ]
    v3 = snmp.get("v3")
    if v3:
        lines.append(
            f"trapsess {at} -v 3 -u {v3['user']} -l authPriv -a {v3['auth_protocol']} "
            f"-A {v3['auth_password']} -x {NETSNMP_PRIV[v3['priv_protocol']]} "
            f"-X {v3['priv_password']} {sink}:{TRAP_PORT}"
        )
    # linkUp/linkDown as net-snmp's `linkUpDownNotifications yes` makes them, but looking
    # every LINK_CHECK_S instead of every 60 s; the agent asks itself as `internal_user`.
    objects = f".{IF_INDEX} .{IF_ADMIN_STATUS} .{IF_OPER_STATUS}"
    lines += [
        f"createUser {internal_user}",
        f"rouser {internal_user} noauth .{IF_TABLE}",
        f"iquerySecName {internal_user}",
        f"notificationEvent elblabLinkUp .{LINK_UP} {objects}",
        f"notificationEvent elblabLinkDown .{LINK_DOWN} {objects}",
        f"monitor -S -r {LINK_CHECK_S} -e elblabLinkUp linkUp .{IF_OPER_STATUS} != 2",
        f"monitor -S -r {LINK_CHECK_S} -e elblabLinkDown linkDown .{IF_OPER_STATUS} == 2",
    ]
    return lines


def config_text(
    lab: str,
    host: HostPlan,
    setup_community: str,
    state: Path | None = None,
    sink: str | None = None,
    internal_user: str = "elblabInternal",
) -> str:
    """The snmpd.conf of one host (its plan must have `snmp`).

    With a write user, sysName/sysLocation/sysContact are not fixed here (net-snmp refuses
    a SET of what its configuration fixes: notWritable) but SET once the agent is up, and
    ifAdminStatus is handed to snmp_ifadmin.py (`pass`), which keeps the host's routes."""
    snmp = host.snmp or {}
    where = f"{host.az}, subnet {host.subnet}" if host.kind == "instance" else "internet"
    lines = [
        f"# snmpd of host {host.name} in lab {lab} (written by testbed.lab.services.snmpd)",
        f"agentAddress udp:{host.ip}:{PORT}",
    ]
    for source in snmp.get("sources", []):
        lines.append(f"rocommunity {snmp['community']} {source}")
    v3 = snmp.get("v3")
    if v3:
        lines.append(
            f'createUser {v3["user"]} {v3["auth_protocol"]} "{v3["auth_password"]}" '
            f'{NETSNMP_PRIV[v3["priv_protocol"]]} "{v3["priv_password"]}"'
        )
        lines.append(f"rouser {v3['user']} priv")
    write = snmp.get("write")
    lines.append(f"view elblabCacheTimeouts included .{NS_CACHE_TIMEOUT}")
    if write:
        lines.append(
            f'createUser {write["user"]} {write["auth_protocol"]} "{write["auth_password"]}" '
            f'{NETSNMP_PRIV[write["priv_protocol"]]} "{write["priv_password"]}"'
        )
        lines += [f"view elblabWrite included .{oid}" for oid in WRITE_VIEW]
        lines.append(f"rwuser {write['user']} priv -V elblabWrite")
        # The setup community also writes the sys* values once the agent is up.
        lines += [f"view elblabCacheTimeouts included .{oid}" for oid in WRITABLE[:3]]
        lines.append(
            f"pass .{IF_ADMIN_STATUS} {sys.executable} {IFADMIN} {state}"
            + (f" {sink}" if sink else "")
        )
    lines.append(f"rwcommunity {setup_community} {host.ip}/32 -V elblabCacheTimeouts")
    if not write:
        lines += [f"{name} {sys_values(lab, host)[oid]}" for name, oid in SYS_FIXED]
    if sink:
        lines += notification_lines(snmp, sink, internal_user)
    lines += [
        f"sysDescr ELB Lab {host.kind} {host.name} ({host.ip}, {where}) in lab {lab}",
        "sysServices 72",
    ]
    return "\n".join(lines) + "\n"


def _sink(ctx: ServiceContext, host: HostPlan) -> str | None:
    """Where the host's agent sends notifications: the lab's receiver on the resolver, at
    the resolver address of the host's realm (None: the lab has no resolver)."""
    return resolver_for(ctx.plan, host)


def agent_argv(conf: Path) -> list[str]:
    """The snmpd command line (foreground, log to stdout, only our config file)."""
    return [SNMPD, "-f", "-Lo", "-C", "-I", "-smux", "-c", str(conf)]


def start(ctx: ServiceContext, host: HostPlan) -> subprocess.Popen | None:
    """Start the host's agent if its plan asks for one; readiness is reported as an event."""
    if not host.snmp:
        return None
    hdir = host_dir(ctx.lab, host.name)
    state = hdir / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    conf = hdir / CONF
    setup_community = secrets.token_hex(12)
    sink = _sink(ctx, host)
    internal = "elblab" + secrets.token_hex(6)
    conf.write_text(config_text(ctx.lab, host, setup_community, state, sink, internal))
    conf.chmod(0o600)  # it holds the community and the v3 pass phrases
    log = hdir / LOG
    # An empty MIB path: the agent needs no MIB files, and without them it would complain
    # about every one it cannot find.
    env = dict(ctx.env, SNMP_PERSISTENT_DIR=str(state), MIBS="", MIBDIRS=str(state))
    # The log is appended to: an agent started again (after a crash) must not be taken for
    # ready on its predecessor's lines.
    log_start = _size(log)
    proc = ctx.journal.start(
        netns_argv(ctx.lab, host.name, agent_argv(conf), record=WHAT),
        what=WHAT,
        host=host.name,
        log=log,
        env=env,
    )
    ctx.events.emit(
        host.name, EVENT_TYPE, "SNMPD_STARTED", f"pid {proc.pid}, udp {host.ip}:{PORT}, log {log}"
    )
    # Waiting here would add ~30 ms per host to every lab's start: report readiness from
    # a thread instead, as UserData does (managers retry the first requests anyway).
    threading.Thread(
        target=_when_ready,
        args=(ctx, host, proc, log, log_start, env, setup_community),
        daemon=True,
        name=f"snmpd:{host.name}",
    ).start()
    return proc


def _when_ready(
    ctx: ServiceContext,
    host: HostPlan,
    proc: subprocess.Popen,
    log: Path,
    log_start: int,
    env: dict[str, str],
    setup_community: str,
) -> None:
    """Wait for the agent, turn its interface cache off, report READY or FAILED."""
    if not _wait_ready(ctx, host, proc, log, log_start):
        return
    argv = [
        SNMPSET,
        "-v2c",
        "-c",
        setup_community,
        "-t",
        "1",
        "-r",
        "2",
        "-Oq",
        f"{host.ip}:{PORT}",
        f"{NS_CACHE_TIMEOUT}.{IF_TABLE}",
        "i",
        "0",
    ]
    if (host.snmp or {}).get("write"):
        for oid, value in sys_values(ctx.lab, host).items():
            argv += [f"{oid}.0", "s", value]
    setup = ctx.journal.start(
        netns_argv(ctx.lab, host.name, argv, record="snmpd-setup"),
        what="snmpd-setup",
        host=host.name,
        log=log.with_name("snmpd-setup.log"),
        env=env,
    )
    try:
        code = setup.wait(timeout=15)
    except subprocess.TimeoutExpired:
        setup.kill()
        code = setup.wait()
    counters = (
        "interface counters live"
        if code == 0
        else "interface counters cached for 3 s (could not turn the cache off: snmpd-setup.log)"
    )
    ctx.events.emit(host.name, EVENT_TYPE, "SNMPD_READY", f"udp {host.ip}:{PORT}, {counters}")


def _wait_ready(
    ctx: ServiceContext, host: HostPlan, proc: subprocess.Popen, log: Path, log_start: int
) -> bool:
    def log_text() -> str:  # what this agent wrote
        if not log.exists():
            return ""
        with open(log, "rb") as handle:
            handle.seek(log_start)
            return handle.read().decode(errors="replace")

    def ready() -> bool:
        if proc.poll() is not None:
            raise _AgentExited
        return READY_TEXT in log_text()

    try:
        wait_for(ready, READY_TIMEOUT, f"snmpd of {host.name}", interval=0.02)
        return True
    except _AgentExited:
        reason = f"exit code {proc.returncode}: {log_text().strip()[-500:]}"
    except WaitTimeout:
        reason = f"not ready after {READY_TIMEOUT:.0f} s (log {log})"
    ctx.events.emit(host.name, EVENT_TYPE, "SNMPD_FAILED", reason)
    return False


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


class _AgentExited(Exception):
    """snmpd ended before it was ready."""
