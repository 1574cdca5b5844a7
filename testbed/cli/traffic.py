"""testbed load | fault: drive traffic from a lab host; break and repair backends."""

from __future__ import annotations

import json
import sys
from typing import Any

from testbed.cli.common import subcommand, table
from testbed.lab.api import Lab
from testbed.lab.faults import apply_fault
from testbed.traffic import run_load


def register(sub: Any) -> None:
    p = subcommand(
        sub,
        "load",
        cmd_load,
        "send HTTP/TCP/UDP load from a lab host and tabulate who answered",
        epilog="examples:\n"
        "  testbed load default Client1 http://203.0.113.10/ -n 500 -c 20\n"
        "  testbed load default WebA2 tcp://10.0.3.4:9000 -n 200 --rate 50 --out tcp.csv\n"
        "  testbed load default WebA2 udp://10.0.3.4:9000 -n 100\n\n"
        "One row per request goes to --out (CSV: start, latency, status/error, backend, the\n"
        "client address the backend saw); the summary shows the share of each backend.\n"
        "Bounded: it stops after -n requests or --duration seconds.",
    )
    p.add_argument("name", help="lab name")
    p.add_argument("client", help="host that sends the load")
    p.add_argument("target", help="http://NAME[:PORT]/path, tcp://NAME:PORT or udp://NAME:PORT")
    p.add_argument("-n", "--requests", type=int, default=100)
    p.add_argument(
        "-c",
        "--concurrency",
        type=int,
        default=10,
        help="workers, or the in-flight cap with --rate",
    )
    p.add_argument("--rate", type=float, help="requests per second (open loop)")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--timeout", type=float, default=5.0, help="per request, seconds")
    p.add_argument("--keepalive", action="store_true", help="HTTP: reuse connections")
    p.add_argument(
        "--hold", type=float, default=0.0, help="TCP: hold each connection this many seconds"
    )
    p.add_argument("--header", action="append", default=[], metavar="'Name: value'")
    p.add_argument("--out", help="write the rows to this CSV file")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")

    p = subcommand(
        sub,
        "fault",
        cmd_fault,
        "inject a fault into an http-backend host (or clear it)",
        epilog="kinds:\n"
        "  500 | status CODE   answer everything (health checks too) with CODE\n"
        "  delay MS            answer MS milliseconds late\n"
        "  hang                read requests, never answer\n"
        "  refuse              stop listening (new connections get a RST)\n"
        "  stop | start        end / restart the backend process (a host on another\n"
        "                      server: ended there, by the PID it recorded there)\n"
        "  clear               undo status/delay/hang/refuse\n"
        "  show                current faults and counters\n\n"
        "examples:\n  testbed fault default WebA1 500\n  testbed fault default WebA1 delay 300\n"
        "  testbed fault default WebA1 clear\n\n"
        "The same from inside the host: testbed exec default WebA1 -- curl -s -XPOST \\\n"
        "  'http://127.0.0.1:8081/faults?status=500'",
    )
    p.add_argument("name", help="lab name")
    p.add_argument("host", help="an http-backend host")
    p.add_argument(
        "kind", help="500 | status | delay | hang | refuse | stop | start | clear | show"
    )
    p.add_argument("value", nargs="?", help="status code or milliseconds")


def cmd_load(args: Any) -> int:
    lab = Lab.attach(args.name)
    print(
        f"{args.client} -> {args.target}: {args.requests} requests ...", file=sys.stderr, flush=True
    )
    df = run_load(
        lab,
        args.client,
        args.target,
        out=args.out,
        requests=args.requests,
        concurrency=args.concurrency,
        rate=args.rate,
        duration=args.duration,
        timeout=args.timeout,
        keepalive=args.keepalive,
        hold=args.hold,
        headers=args.header,
    )
    summary = df.attrs["summary"]
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    print(
        f"{summary['requests']} requests in {summary['wall_s']} s "
        f"({summary['per_second']}/s): {summary['ok']} answered, "
        f"transport errors {summary['errors'] or 0}; "
        f"latency p50 {summary['p50_ms']} ms, p90 {summary['p90_ms']} ms, "
        f"p99 {summary['p99_ms']} ms"
    )
    ok = df[df["error"].isna()] if "error" in df else df
    if len(ok):
        counts = (
            ok.groupby(["backend", "seen_ip", "status"], dropna=False).size().reset_index(name="n")
        )
        counts["share"] = (counts["n"] / counts["n"].sum() * 100).round(1)
        print(
            table(counts.values.tolist(), ["BACKEND", "CLIENT IP SEEN", "STATUS", "N", "SHARE %"])
        )
    if args.out:
        print(f"rows: {args.out}")
    return 0


def cmd_fault(args: Any) -> int:
    state = apply_fault(Lab.attach(args.name), args.host, args.kind, args.value)
    print(json.dumps(state, indent=1))
    return 0
