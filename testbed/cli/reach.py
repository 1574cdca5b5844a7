"""testbed reach: who reaches which address on which port, by AWS's rules and on real packets."""

from __future__ import annotations

import argparse
from ipaddress import IPv4Address
from typing import Any

from testbed.cli.common import subcommand, table
from testbed.errors import BadInput
from testbed.lab import reachability
from testbed.lab.api import Lab
from testbed.lab.reachability import Address, Pair
from testbed.plan.network import HostPlan, NetworkPlan
from testbed.plan.reach import Verdict

DEFAULT_PORTS = {"tcp": 80, "udp": 9000}

EPILOG = """\
examples:
  testbed reach web --port 80                 TCP connections to port 80, every pair
  testbed reach web --proto icmp              ping (the default without --port)
  testbed reach web --proto udp               UDP to 9000 (the http-backend's echo)
  testbed reach web --port 80 --from Client1  one source
  testbed reach web --port 80 --to WebA1      every address of one host (or --to 10.0.1.10)
  testbed reach web --port 22 --expected-only AWS's verdict only, no packets sent

Each line: from host -> to address:port, AWS's verdict (passes, or the first layer that
drops it: sg-egress = the source's security groups, nacl-out = the source subnet's network
ACL, route = no route / no public address / a private address on the internet, nacl-in = the
destination subnet's ACL, sg-ingress = the destination's security groups; reply:nacl-...
= the request passes but the stateless ACL drops its reply), what the lab measured with
real packets, and why. A '!' marks a pair where the lab differs from AWS's verdict.

Sources: instances and internet clients. Destinations: every address of instances and
clients (second interfaces, secondary addresses, public addresses / EIPs) and the nodes
of application load balancers. TCP counts a completed handshake or a RST (the SYN got
there, its reply came back); UDP counts an answer or a port unreachable.

exit status: 0 when every measured pair matches AWS's verdict, 1 when one differs,
2 on bad input (unknown lab, host or address)."""


def register(sub: Any) -> None:
    p = subcommand(
        sub,
        "reach",
        cmd_reach,
        "reachability matrix: AWS's verdict (security groups, NACLs, routes) vs real packets",
        epilog=EPILOG,
    )
    p.add_argument("name", help="lab name")
    p.add_argument(
        "--proto",
        choices=("tcp", "udp", "icmp"),
        help="protocol (default: tcp with --port, icmp without)",
    )
    p.add_argument("--port", type=_port, help="destination port (default 80 for tcp, 9000 for udp)")
    p.add_argument("--from", dest="source", metavar="HOST", help="only this source host")
    p.add_argument(
        "--to",
        dest="target",
        metavar="HOST|ADDR",
        help="only this host's addresses, or one address",
    )
    p.add_argument(
        "--expected-only", action="store_true", help="print AWS's verdicts, send no packets"
    )
    p.add_argument(
        "--wait", type=float, default=1.0, metavar="S", help="seconds per try (default 1)"
    )


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port: {text!r}") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"port {port} is not in 1-65535")
    return port


def protocol_and_port(proto: str | None, port: int | None) -> tuple[str, int | None]:
    """--proto/--port as given, completed: tcp with a port, icmp without; icmp has none."""
    proto = proto or ("tcp" if port is not None else "icmp")
    if proto == "icmp":
        if port is not None:
            raise BadInput("--port does not apply to icmp", hint="use --proto tcp or udp")
        return proto, None
    return proto, port if port is not None else DEFAULT_PORTS[proto]


def sources(plan: NetworkPlan, name: str | None) -> list[HostPlan]:
    every = reachability.hosts(plan)
    if name is None:
        return every
    found = [h for h in every if h.name == name]
    if not found:
        known = ", ".join(h.name for h in every)
        raise BadInput(f"{name!r} is not a source host of lab {plan.lab}", hint=f"hosts: {known}")
    return found


def targets(plan: NetworkPlan, text: str | None) -> list[Address]:
    every = reachability.addresses(plan, lb_nodes=True)
    if text is None:
        return every
    try:
        ip = str(IPv4Address(text))
    except ValueError:
        found = [a for a in every if text in (a.owner, a.host)]
        if not found:
            known = ", ".join(sorted({a.host for a in every}))
            raise BadInput(
                f"{text!r} is neither an address nor a host of lab {plan.lab}",
                hint=f"hosts: {known}",
            ) from None
        return found
    return [next((a for a in every if a.ip == ip), Address(ip, ip, False))]


def cmd_reach(args: Any) -> int:
    proto, port = protocol_and_port(args.proto, args.port)
    lab = Lab(args.name) if args.expected_only else Lab.attach(args.name)
    _ = lab.state  # BadInput for a lab that does not exist
    plan = lab.plan
    srcs = sources(plan, args.source)
    dsts = targets(plan, args.target)
    want = reachability.verdicts(plan, proto, port, srcs, dsts)
    got = None
    if not args.expected_only:
        got = reachability.measure(lab, plan, wait_s=args.wait, proto=proto, port=port, pairs=want)
    print(format_listing(dsts, want, got, port))
    if got is None:
        return 0
    differ = [k for k in want if got.get(k) != want[k].passes]
    passes = sum(1 for v in want.values() if v.passes)
    print(
        f"\n{len(want)} pairs, {passes} pass by AWS's rules; "
        + (
            f"{len(differ)} measured differently (marked !)"
            if differ
            else "the lab measured every one as AWS's rules say"
        )
    )
    return 1 if differ else 0


def format_listing(
    dsts: list[Address],
    want: dict[Pair, Verdict],
    got: dict[Pair, bool] | None,
    port: int | None,
) -> str:
    """One line per pair: from, to (owner address:port), AWS's verdict, the lab's, why."""
    label = {a.ip: a.label for a in dsts}
    rows = []
    for (src, ip), v in want.items():
        to = f"{label.get(ip, ip)} {ip}" + (f":{port}" if port else "")
        aws = "passes" if v.passes else f"dropped: {v.short}"
        why = "; ".join(v.notes) if v.passes else v.text.split(" by ", 1)[1]
        row = [src, to, aws]
        if got is not None:
            seen = "passes" if got.get((src, ip)) else "dropped"
            row.append(seen + (" !" if got.get((src, ip)) != v.passes else ""))
        rows.append([*row, why])
    headers = ["FROM", "TO", "AWS", *(["LAB"] if got is not None else []), "WHY"]
    return table(rows, headers)
