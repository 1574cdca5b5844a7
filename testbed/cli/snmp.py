"""testbed snmp get | walk | names, testbed monitor: the SNMP manager on a running lab."""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from testbed.cli.common import subcommand, table
from testbed.errors import BadInput
from testbed.snmp.client import SET_TYPES
from testbed.snmp.manager import REFUSALS, monitor, query, set_object
from testbed.snmp.mibs import DEFAULT_MONITOR_OBJECTS, MODULES, OBJECTS, oid_text

VANTAGE_HELP = """\
where the manager runs:
  Lab hosts are reachable only over the lab network, not from this machine's own
  namespace. So the manager runs inside a lab host of the same realm as each agent:
  another instance of the agent's VPC (agents answer only their VPC), or another
  internet client for clients. A host that is not itself polled is preferred; a
  realm whose every host is polled gets a second vantage for the first. Each
  vantage runs one poller process (journaled by the lab, like all its processes).
  --vantage HOST picks it yourself (it must be in the agents' realm)."""

SNMP_TRAP_ENTERPRISE = "1.3.6.1.6.3.1.1.4.3.0"  # snmpTrapEnterprise: not worth a column
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def seconds(text: str) -> float:
    """argparse type for durations: 1s, 500ms, 2m, or a plain number of seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*", text)
    if not match:
        import argparse

        raise argparse.ArgumentTypeError(f"expected a duration like 1s, 500ms or 2m, not {text!r}")
    return float(match[1]) * UNITS[match[2] or "s"]


def _listing(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _agent_options(p: Any) -> None:
    p.add_argument(
        "--v3",
        action="store_true",
        help="use the template's SNMPv3 user (authPriv) instead of the community",
    )
    p.add_argument(
        "--timeout",
        type=seconds,
        default=None,
        metavar="DURATION",
        help="wait this long for each answer",
    )
    p.add_argument("--retries", type=int, default=1, help="retries after a timeout (default 1)")
    p.add_argument("--vantage", metavar="HOST", help="run the manager in this lab host")


def register(sub: Any) -> None:
    p = subcommand(
        sub,
        "snmp",
        lambda args: args.snmp_parser.print_help() or 2,
        "ask a lab host's SNMP agent (get, walk) or list the object names",
        epilog="examples:\n"
        "  testbed snmp get default WebA1 SNMPv2-MIB::sysUpTime.0 sysName.0\n"
        "  testbed snmp walk default WebA1 IF-MIB::ifHCInOctets\n"
        "  testbed snmp walk default WebA1 ifTable\n"
        "  testbed snmp get default Client1 1.3.6.1.2.1.1.5.0 --v3\n"
        "  testbed snmp set default WebA1 SNMPv2-MIB::sysContact 'ops on call'\n"
        "  testbed snmp names IF-MIB\n\n" + VANTAGE_HELP,
    )
    p.set_defaults(snmp_parser=p)
    actions = p.add_subparsers(dest="snmp_command", metavar="ACTION")
    g = subcommand(
        actions,
        "get",
        cmd_get,
        "GET instances (a scalar without index gets .0)",
        epilog="examples:\n  testbed snmp get default WebA1 sysUpTime sysName.0\n"
        "  testbed snmp get default WebA1 IF-MIB::ifHCInOctets.2 --json\n\n"
        "Exit 0 when the agent answered, 1 when it did not (timeout, wrong "
        "credentials),\n2 for a bad lab, host or object name.",
    )
    w = subcommand(
        actions,
        "walk",
        cmd_walk,
        "every instance under an object (GETBULK)",
        epilog="examples:\n  testbed snmp walk default WebB2 IF-MIB::ifDescr\n"
        "  testbed snmp walk default WebB2 HOST-RESOURCES-MIB::hrStorageTable\n"
        "  testbed snmp walk default WebB2 1.3.6.1.2.1.2",
    )
    for q in (g, w):
        q.add_argument("name", help="lab name")
        q.add_argument("host", help="host whose agent to ask (template logical id)")
        q.add_argument(
            "objects",
            nargs="+",
            metavar="OID",
            help="MODULE::name[.index], name[.index] or a numeric OID",
        )
        _agent_options(q)
        q.add_argument("--json", action="store_true", help="one JSON row per line")
    s = subcommand(
        actions,
        "set",
        cmd_set,
        "SET one instance (as the template's SNMPv3 write user)",
        epilog="examples:\n"
        "  testbed snmp set default WebA1 SNMPv2-MIB::sysLocation 'rack 4'\n"
        "  testbed snmp set default WebA1 IF-MIB::ifAdminStatus.2 2      # eth0 down\n"
        "  testbed snmp set default WebA1 IF-MIB::ifAdminStatus.2 1 --vantage WebA1\n\n"
        "Writable with the template's Metadata.Lab.Snmp.Write user (SNMPv3 authPriv; no\n"
        "community can write): sysContact, sysName, sysLocation and ifAdminStatus.N\n"
        "(up(1)/down(2) takes the host's interface up/down; its routes come back with it).\n"
        "An instance whose interface is down can only be asked from itself: --vantage HOST.\n"
        "Every SET is a lab event (testbed events LAB): SNMP_SET or SNMP_SET_FAILED.\n\n"
        "Exit 0 when the agent took the value, 2 when it refused it (notWritable: a\n"
        "read-only object; noAccess / authorizationError: credentials that may not write)\n"
        "or for a bad name, 1 when it did not answer (timeout, unknown credentials).",
    )
    s.add_argument("name", help="lab name")
    s.add_argument("host", help="host whose agent to ask (template logical id)")
    s.add_argument("object", metavar="OID", help="MODULE::name[.index] or a numeric OID")
    s.add_argument("value", help="the new value")
    s.add_argument(
        "--type",
        "-t",
        choices=sorted(SET_TYPES),
        default=None,
        help="snmpset's type letter: i INTEGER, u Unsigned32, t TimeTicks, a IpAddress, "
        "o OID, s string, x hex string, c Counter32, g Gauge32 (default: i for a number, "
        "s otherwise)",
    )
    who = s.add_mutually_exclusive_group()
    who.add_argument(
        "--read-user",
        action="store_true",
        help="ask as the read-only SNMPv3 user (to see a refusal)",
    )
    who.add_argument(
        "--community",
        nargs="?",
        const="",
        metavar="TEXT",
        help="ask with a v2c community (default: the template's read-only one)",
    )
    s.add_argument(
        "--timeout", type=seconds, default=None, metavar="DURATION", help="wait for the answer"
    )
    s.add_argument("--retries", type=int, default=1, help="retries after a timeout (default 1)")
    s.add_argument("--vantage", metavar="HOST", help="run the manager in this lab host")
    s.add_argument("--json", action="store_true", help="the answer as one JSON row")
    n = subcommand(
        actions,
        "names",
        cmd_names,
        "the object names the manager knows",
        epilog="example:\n  testbed snmp names HOST-RESOURCES-MIB",
    )
    n.add_argument("module", nargs="?", help="only this MIB module")

    t = subcommand(
        sub,
        "traps",
        cmd_traps,
        "the SNMP notifications the lab's receiver got (coldStart, linkDown, ...)",
        epilog="examples:\n"
        "  testbed traps default\n"
        "  testbed traps default --watch            # and the ones still to come (Ctrl-C)\n"
        "  testbed traps default --json | jq .\n\n"
        "Every agent sends its notifications as INFORMs (retransmitted every second until\n"
        "acknowledged) to the receiver on the lab's resolver host (LabDNS, UDP 162), with\n"
        "SNMPv2c and, when the template has a V3 user, SNMPv3: coldStart, linkUp/linkDown\n"
        "(the agent looks every second), authenticationFailure (a wrong community or user).\n"
        "A linkDown about an instance's only interface arrives once the link is back:\n"
        "SENT is when the agent made it (its sysUpTime in the PDU), RECEIVED when it got\n"
        "here. The holder's own notifications (target health, scaling) come under\n"
        "ELB-LAB-MIB (testbed/snmp/mibs/ELB-LAB-MIB.txt). Each is also a lab event.",
    )
    t.add_argument("name", help="lab name")
    t.add_argument("--watch", "-w", action="store_true", help="keep printing new ones")
    t.add_argument("--json", action="store_true", help="one JSON object per notification")
    m = subcommand(
        sub,
        "monitor",
        cmd_monitor,
        "poll SNMP agents of a running lab concurrently, write tidy rows (CSV)",
        epilog="examples:\n"
        "  testbed monitor default --interval 1s --duration 30s --out ifs.csv\n"
        "  testbed monitor default --hosts WebA1,WebB1 --objects "
        "sysUpTime,ifHCInOctets,ifHCOutOctets \\\n"
        "      --interval 500ms --duration 1m --out ab.csv --rates\n"
        "  testbed monitor default --objects HOST-RESOURCES-MIB::hrProcessorLoad "
        "--duration 10s --out cpu.csv\n\n"
        "Rows: time, host, object, index, value, type, error (testbed.schemas.SNMP_COLUMNS),\n"
        "one per object instance per poll; an agent that does not answer gives rows with\n"
        "error 'timeout', and polling goes on. FILE.polls.csv gets one row per poll of an\n"
        "agent (latency). --rates writes per-second rates of every counter (Counter32 wrap,\n"
        "64-bit HC counters preferred, none across an agent restart) to FILE.rates.csv.\n"
        + textwrap.fill(
            "Default objects: " + ", ".join(_default_objects()) + ".", 84, break_on_hyphens=False
        )
        + "\n\n"
        + VANTAGE_HELP,
    )
    m.add_argument("name", help="lab name")
    m.add_argument(
        "--hosts",
        type=_listing,
        metavar="H1,H2",
        help="hosts to poll (default: every host with an agent)",
    )
    m.add_argument(
        "--objects",
        type=_listing,
        metavar="O1,O2",
        help="objects to poll (scalars, columns, tables or numeric OIDs)",
    )
    m.add_argument(
        "--interval",
        type=seconds,
        default=1.0,
        metavar="DURATION",
        help="time between polls of each agent (default 1s; 0: back to back)",
    )
    m.add_argument(
        "--duration",
        type=seconds,
        default=30.0,
        metavar="DURATION",
        help="how long to poll (default 30s)",
    )
    m.add_argument("--out", required=True, type=Path, metavar="FILE.csv", help="rows go here")
    m.add_argument(
        "--rates",
        nargs="?",
        const="",
        default=None,
        metavar="FILE",
        help="also write counter rates (default FILE: OUT with .rates.csv)",
    )
    m.add_argument("--quiet", "-q", action="store_true", help="no progress, only the summary")
    _agent_options(m)


def _default_objects() -> list[str]:
    return list(DEFAULT_MONITOR_OBJECTS)


def _print_rows(rows: list[dict], as_json: bool) -> int:
    import json

    answered = False
    for row in rows:
        if as_json:
            print(json.dumps(row))
        else:
            name = f"{row['object']}.{row['index']}" if row["index"] != "" else row["object"]
            shown = f"{row['type']}: {row['value']}" if not row["error"] else row["error"]
            print(f"{name} = {shown}")
        if not row["error"] or row["error"] in ("noSuchObject", "noSuchInstance", "endOfMibView"):
            answered = True
    if not answered:
        error = rows[0]["error"] if rows else "no answer"
        print(f"error: the agent did not answer ({error})", file=sys.stderr)
    return 0 if answered else 1


def _query(args: Any, mode: str) -> int:
    rows = query(
        args.name,
        args.host,
        mode,
        args.objects,
        use_v3=args.v3,
        timeout=args.timeout or 2.0,
        retries=args.retries,
        vantage_host=args.vantage,
    )
    return _print_rows(rows, args.json)


def cmd_get(args: Any) -> int:
    return _query(args, "get")


def cmd_walk(args: Any) -> int:
    return _query(args, "walk")


def cmd_set(args: Any) -> int:
    import json

    kind = args.type or ("i" if re.fullmatch(r"-?\d+", args.value) else "s")
    if args.read_user:
        as_ = "v3"
    elif args.community is not None:
        as_ = f"community={args.community}" if args.community else "community"
    else:
        as_ = "write"
    done = set_object(
        args.name,
        args.host,
        args.object,
        args.value,
        kind,
        as_=as_,
        timeout=args.timeout or 2.0,
        retries=args.retries,
        vantage_host=args.vantage,
    )
    row = done.row
    name = f"{row['object']}.{row['index']}" if row["index"] != "" else row["object"]
    if args.json:
        print(json.dumps(dict(row, credentials=done.credentials, vantage=done.vantage)))
    if done.refused:
        raise BadInput(
            f"{args.host} refused SET {name} = {args.value!r} as {done.credentials}: "
            f"{done.refused} ({REFUSALS[done.refused]})"
        )
    if row["error"].startswith("badValue"):
        raise BadInput(f"SET {name}: {row['error']}")
    if row["error"]:
        print(
            f"error: {args.host} did not answer the SET of {name} as {done.credentials} from "
            f"{done.vantage} ({row['error']}); an interface that is down is reached only from "
            "the host itself (--vantage HOST)",
            file=sys.stderr,
        )
        return 1
    if not args.json:
        print(f"{name} = {row['type']}: {row['value']}  (set as {done.credentials})")
    return 0


def _trap_line(trap: dict[str, Any]) -> str:
    import time

    def clock(when: float) -> str:
        return time.strftime("%H:%M:%S", time.localtime(when)) + f".{int(when % 1 * 1000):03d}"

    delay = max(0.0, trap["received"] - trap["sent"])
    binds = " ".join(f"{k}={v}" for k, v in trap["varbinds"].items() if k != SNMP_TRAP_ENTERPRISE)
    return (
        f"{clock(trap['received'])}  {clock(trap['sent'])}  {delay:7.3f}  {trap['agent']:<12} "
        f"{trap['version']:<3} {trap['pdu']:<6} {trap['trap']:<22} {binds}"
    )


def cmd_traps(args: Any) -> int:
    import json
    import time

    from testbed.lab.api import Lab
    from testbed.lab.services.trapd import read_traps

    lab = Lab.attach(args.name)
    rows, offset = read_traps(lab.dir)
    header = (
        "RECEIVED      SENT          DELAY s  AGENT        VER PDU    TRAP"
        "                   VARBINDS"
    )
    if not args.json:
        print(header)
    while True:
        for trap in rows:
            print(json.dumps(trap) if args.json else _trap_line(trap), flush=True)
        if not args.watch:
            return 0
        try:
            time.sleep(0.2)
        except KeyboardInterrupt:
            return 0
        rows, offset = read_traps(lab.dir, offset)


def cmd_names(args: Any) -> int:
    if args.module and args.module not in MODULES:
        raise BadInput(
            f"unknown MIB module {args.module!r}", hint=f"modules: {', '.join(sorted(MODULES))}"
        )
    rows = [
        (o.full_name, oid_text(o.oid), o.kind)
        for o in OBJECTS
        if not args.module or o.module == args.module
    ]
    print(table(rows, ["NAME", "OID", "KIND"]))
    return 0


def cmd_monitor(args: Any) -> int:
    rates = None
    if args.rates is not None:
        rates = Path(args.rates) if args.rates else args.out.with_name(args.out.stem + ".rates.csv")
    progress = None if args.quiet else _progress_printer(args.duration)
    summary = monitor(
        args.name,
        args.out,
        hosts=args.hosts,
        objects=args.objects,
        interval=args.interval,
        duration=args.duration,
        timeout=args.timeout,
        retries=args.retries,
        use_v3=args.v3,
        rates_out=rates,
        vantage_host=args.vantage,
        on_progress=progress,
    )
    if progress is not None and sys.stdout.isatty():
        print()
    vantages = "; ".join(f"{v} polls {', '.join(a)}" for v, a in summary.vantages.items())
    lat = summary.latency_ms
    print(
        f"{'interrupted: ' if summary.interrupted else ''}{summary.rows} rows from "
        f"{summary.agents} agents in {summary.seconds:.1f} s: {summary.values} values, "
        f"{summary.timeouts} timeouts, {summary.errors} other errors; "
        f"{summary.objects_per_s:.0f} objects/s; poll latency p50 {lat.get('p50', 0):.1f} "
        f"ms, p95 {lat.get('p95', 0):.1f} ms\n  from: {vantages}\n  rows: {summary.out}"
        + (f"\n  rates: {summary.rates_out}" if summary.rates_out else "")
    )
    return 130 if summary.interrupted else 0


def _progress_printer(duration: float) -> Callable[[dict[str, Any]], None]:
    import time

    started = time.monotonic()
    last = [0.0]
    tty = sys.stdout.isatty()

    def show(total: dict[str, Any]) -> None:
        now = time.monotonic()
        if not tty and now - last[0] < 5:
            return
        last[0] = now
        text = (
            f"  {min(now - started, duration):5.1f}/{duration:.0f} s  rows {total['rows']}"
            f"  answering {total['answering']}/{total['agents']}"
            f"  timeouts {total['timeouts']}"
        )
        print(("\r" + text) if tty else text, end="" if tty else "\n", flush=True)

    return show
