"""testbed probe client-ip | rtt: packet probes on a running lab (captures read with scapy)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from testbed.cli.common import table
from testbed.errors import BadInput
from testbed.lab.api import Lab
from testbed.probes.clientip import MAX_COUNT, client_ip_probe
from testbed.probes.connect import checked_endpoint
from testbed.probes.rtt import MAX_SAMPLES, rtt_probe

CLIENT_IP_EPILOG = """\
examples:
  testbed probe client-ip nlb --from Client1 --to http://203.0.113.10/ --on WebA1
  testbed probe client-ip nlb --from Client1 --to 203.0.113.11:80 --on WebB2 -n 30

Starts a capture on TARGET's eth0, makes N real connections from CLIENT to URL_OR_ADDR
(each carries a marker, so it is recognised after NAT), stops the capture and lists the
source address and port of every probe SYN that reached TARGET: the client's own address
(client IP preserved: NLB instance targets) or an LB node's (IP targets with
preserve_client_ip.enabled false). Connections the LB sent to other targets are counted.
The pcap stays in the lab folder (open it in Wireshark) until `testbed down`.
Exit 1 when no probe connection reached TARGET."""

RTT_EPILOG = """\
examples:
  testbed probe rtt nlb --from WebB1 --via 10.0.0.4:80 --direct 10.0.1.4:80
  testbed probe rtt nlb --from WebB1 --via 10.0.0.4:80 --direct 10.0.1.4:80 -n 500 \\
      --out rtt.csv

Makes N TCP connections to the load balancer node (--via) and N directly to a target
(--direct), alternating, and times each handshake (SYN -> SYN-ACK) from a capture on
CLIENT's eth0. Prints p50/p90/p99 per path and what the load balancer adds (difference
and ratio). Handshakes with a retransmitted SYN are left out (ambiguous). One CSV row per
connection goes next to the pcap, and to --out if given."""


def register(sub: Any) -> None:
    """Add `testbed probe client-ip | rtt` to the CLI."""
    p = sub.add_parser(
        "probe",
        help="packet probes: client IP seen at a target, handshake RTT",
        description="Packet probes on a running lab: captures on lab hosts "
        "(tcpdump), read with scapy.",
        epilog="probes:\n  client-ip   which source address reaches a target\n"
        "  rtt         TCP handshake RTT via the LB and directly\n\n"
        "testbed probe PROBE --help shows examples.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    probes = p.add_subparsers(dest="probe", metavar="PROBE", required=True)

    text = "capture on a target: whose address do the client's connections arrive with?"
    c = probes.add_parser(
        "client-ip",
        help=text,
        description=text,
        epilog=CLIENT_IP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.set_defaults(func=cmd_client_ip)
    c.add_argument("name", help="lab name")
    c.add_argument(
        "--from", dest="client", required=True, metavar="CLIENT", help="host that connects"
    )
    c.add_argument(
        "--to",
        dest="target",
        required=True,
        metavar="URL_OR_ADDR",
        help="http://ADDR[:PORT]/, tcp://ADDR:PORT, ADDR:PORT or ADDR (port 80)",
    )
    c.add_argument(
        "--on",
        dest="on_host",
        required=True,
        metavar="TARGET",
        help="host to capture on (a target behind the LB)",
    )
    c.add_argument("-n", "--count", type=int, default=10, help="connections (default 10)")
    c.add_argument("--timeout", type=float, default=3.0, help="per connection, seconds")

    text = "TCP handshake RTT via the LB and directly: p50/p90/p99"
    r = probes.add_parser(
        "rtt",
        help=text,
        description=text,
        epilog=RTT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.set_defaults(func=cmd_rtt)
    r.add_argument("name", help="lab name")
    r.add_argument(
        "--from",
        dest="client",
        required=True,
        metavar="CLIENT",
        help="host that connects (and captures)",
    )
    r.add_argument("--via", required=True, metavar="ADDR:PORT", help="the LB node's address")
    r.add_argument("--direct", required=True, metavar="ADDR:PORT", help="a target's address")
    r.add_argument(
        "-n", "--samples", type=int, default=200, help="connections per path (default 200)"
    )
    r.add_argument("--gap", type=float, default=0.005, help="seconds between connections")
    r.add_argument("--timeout", type=float, default=2.0, help="per connection, seconds")
    r.add_argument("--out", metavar="FILE.csv", help="copy the samples CSV here")


def _in_range(value: int, low: int, high: int, flag: str) -> None:
    if not low <= value <= high:
        raise BadInput(f"{flag} must be between {low} and {high}, not {value}")


def _positive(value: float, flag: str) -> None:
    if not value > 0:
        raise BadInput(f"{flag} must be positive, not {value}")


def cmd_client_ip(args: Any) -> int:
    """testbed probe client-ip: table of the sources seen at the target, and the pcap."""
    _positive(args.timeout, "--timeout")
    checked_endpoint(args.target, "http://203.0.113.10/ or 10.0.0.4:80")
    _in_range(args.count, 1, MAX_COUNT, "-n/--count")
    lab = Lab.attach(args.name)
    for name in (args.client, args.on_host):
        lab.host(name)  # an unknown host: exit 2 before any work
    print(
        f"{args.client} -> {args.target}: {args.count} connections, capturing on "
        f"{args.on_host} ...",
        file=sys.stderr,
        flush=True,
    )
    res = client_ip_probe(
        lab, args.client, args.target, args.on_host, count=args.count, timeout_s=args.timeout
    )
    print(
        f"{len(res.seen)} of {res.count} connections reached {res.on_host} ({res.on_ip})"
        + "".join(f"; {n} went to {b}" for b, n in sorted(res.elsewhere.items()))
        + "".join(f"; {n} failed: {e}" for e, n in sorted(res.errors.items()))
    )
    if res.seen:
        print(
            table(
                [
                    (
                        s.seq,
                        f"{s.src}:{s.sport}",
                        f"{s.dst}:{s.dport}",
                        f"{s.kind} ({s.who})" if s.who else s.kind,
                    )
                    for s in res.seen
                ],
                ["SEQ", "SYN SOURCE", "SYN DESTINATION", "SOURCE IS"],
            )
        )
        sources = ", ".join(f"{ip} x{n}" for ip, n in res.sources.most_common())
        verdict = {
            True: "the client's own address: client IP preserved",
            False: "not the client's address: client IP not preserved",
            None: "mixed sources",
        }[res.preserved]
        print(f"sources at {res.on_host}: {sources} -> {verdict}")
    if res.other_syns:
        others = ", ".join(f"{ip} x{n}" for ip, n in res.other_syns.most_common())
        print(f"other SYNs in the capture (not this probe's, e.g. health checks): {others}")
    if not res.capture_complete:
        print("warning: the capture hit its packet limit; some connections may be missing")
    print(f"pcap: {res.pcap}")
    return 0 if res.seen else 1


def cmd_rtt(args: Any) -> int:
    """testbed probe rtt: percentiles per path, what the LB adds, the CSV and the pcap."""
    _positive(args.timeout, "--timeout")
    if args.gap < 0:
        raise BadInput(f"--gap must not be negative, not {args.gap}")
    checked_endpoint(args.via)
    checked_endpoint(args.direct, "10.0.1.4:80")
    _in_range(args.samples, 1, MAX_SAMPLES, "-n/--samples")
    lab = Lab.attach(args.name)
    lab.host(args.client)  # an unknown host: exit 2 before any work
    print(
        f"{args.client}: {args.samples} handshakes via {args.via} and {args.samples} direct "
        f"to {args.direct} ...",
        file=sys.stderr,
        flush=True,
    )
    res = rtt_probe(
        lab,
        args.client,
        args.via,
        args.direct,
        samples=args.samples,
        gap_s=args.gap,
        timeout_s=args.timeout,
        out=args.out,
    )
    rows = [
        (
            s.path,
            s.endpoint,
            s.n,
            s.failed + s.uncaptured,
            s.retransmitted,
            *(f"{v:.3f}" for v in (s.min_ms, s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms)),
        )
        for s in (res.via, res.direct)
    ]
    print(
        table(
            rows,
            ["PATH", "TO", "N", "LOST", "RETX", "MIN ms", "P50 ms", "P90 ms", "P99 ms", "MAX ms"],
        )
    )
    print(
        "added by the LB (via - direct): "
        + ", ".join(f"{k} {v['diff_ms']:+.3f} ms (x{v['ratio']:.2f})" for k, v in res.added.items())
    )
    if not res.capture_complete:
        print("warning: the capture hit its packet limit; some samples may be missing")
    print(f"samples: {res.csv}" + (f" (and {args.out})" if args.out else ""))
    print(f"pcap: {res.pcap}")
    return 0
