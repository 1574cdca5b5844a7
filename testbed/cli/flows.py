"""testbed flows: which flow went to which target (NLB) or appliance (GWLB), from where the
lab keeps it (testbed.probes.flows)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from testbed.cli.common import subcommand, table
from testbed.errors import BadInput
from testbed.lab.api import Lab
from testbed.probes.flows import check_client, lab_flows

EPILOG = """\
examples:
  testbed flows nlb                          every NLB / GWLB flow of lab nlb
  testbed flows nlb --client Client1         one client's flows (a host name or an address)
  testbed flows nlb --client 198.51.100.10 --json
  testbed exec nlb Client1 -- curl -s http://203.0.113.10/ && testbed flows nlb --client Client1

What AWS never shows: for a network load balancer, each connection (TCP) or flow (UDP) from
client:port to the listener the client used, and the target the NLB chose for it, read from
the conntrack entries the lab's switches keep (the target is in the entry's label); for a
gateway load balancer, each flow and the appliance it was steered to, read from the GWLB
nodes' flow tables. One row per flow; the last line counts flows per target or appliance.

Columns: CLIENT and DESTINATION as ip:port (the node's public address for clients from the
internet); TO the target (NLB, an instance's name or an address) or appliance (GWLB); NODE the
load balancer node (and its AZ) that took the flow; STATE the TCP state in conntrack (closed
connections stay listed while conntrack keeps them, TIME_WAIT), or established/new for GWLB;
EXPIRES how long conntrack keeps an idle entry (NLB: 350 s TCP, 120 s UDP); PACKETS, BYTES and
AGE where the source counts them (the userspace datapath's conntrack counts nothing: "-").

Not shown: ALB and CLB connections (HAProxy's; see `testbed exec LAB NODE -- ss -tn`); an
NLB's TLS listeners except when the group keeps client addresses (then the row is HAProxy's
connection to the target, with HAProxy's source port).

--json prints the rows as a JSON list (the lab console's /api/labs/LAB/flows serves the same),
every row with the keys lb, type, node, az, client, client_port, destination,
destination_port, protocol, target, target_ip, target_port, appliance, appliance_ip, state,
packets, bytes, age_s, expires_s (null where the source does not say)."""


def register(sub: Any) -> None:
    p = subcommand(
        sub,
        "flows",
        run,
        "which flow went to which target (NLB) or appliance (GWLB)",
        epilog=EPILOG,
    )
    p.add_argument("name", help="lab name")
    p.add_argument("--client", metavar="IP|HOST", help="only this client's flows")
    p.add_argument("--lb", help="only this load balancer (logical id)")
    p.add_argument("--json", action="store_true", help="the rows as JSON (see below)")


def client_address(lab: Lab, client: str) -> str:
    """An address, or a lab host's name as its address (BadInput for neither)."""
    for h in lab.state.get("hosts", []):
        if h["name"] == client:
            return str(h["ip"])
    try:
        return check_client(client)
    except BadInput:
        hosts = ", ".join(h["name"] for h in lab.state.get("hosts", []))
        raise BadInput(
            f"--client {client!r} is neither an IPv4 address nor a host of lab {lab.name}",
            hint=f"hosts: {hosts}",
        ) from None


def _end(ip: str | None, port: int | None) -> str:
    if ip is None:
        return "-"
    return f"{ip}:{port}" if port is not None else ip


def _num(value: Any) -> str:
    return "-" if value is None else str(value)


def flows_text(rows: list[dict[str, Any]]) -> str:
    """The table and a line counting flows per target or appliance."""
    if not rows:
        return "no flows (none now, or none kept: closed TCP connections leave conntrack soon)"
    lines = [
        (
            r["lb"],
            r["protocol"] or "-",
            _end(r["client"], r["client_port"]),
            _end(r["destination"], r["destination_port"]),
            r["target"] or r["appliance"] or "-",
            f"{r['node'] or '-'} ({r['az'] or '-'})",
            r["state"] or "-",
            "-" if r["expires_s"] is None else f"{r['expires_s']}s",
            _num(r["packets"]),
            _num(r["bytes"]),
            "-" if r["age_s"] is None else f"{r['age_s']:.1f}s",
        )
        for r in rows
    ]
    headers = ["LB", "PROTO", "CLIENT", "DESTINATION", "TO", "NODE", "STATE", "EXPIRES"]
    headers += ["PACKETS", "BYTES", "AGE"]
    per = Counter(r["target"] or r["appliance"] or "-" for r in rows)
    summary = ", ".join(f"{name} {n}" for name, n in sorted(per.items()))
    return f"{table(lines, headers)}\n\n{len(rows)} flows: {summary}"


def run(args: Any) -> int:
    lab = Lab.attach(args.name)
    client = client_address(lab, args.client) if args.client else None
    kinds = {lb.name: lb.type for lb in lab.plan.load_balancers}
    if args.lb is not None and args.lb not in kinds:
        raise BadInput(
            f"lab {lab.name} has no load balancer {args.lb!r}",
            hint=f"load balancers: {', '.join(sorted(kinds)) or 'none'}",
        )
    rows = lab_flows(lab, client)
    if args.lb is not None:
        rows = [r for r in rows if r["lb"] == args.lb]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not any(kind in ("network", "gateway") for kind in kinds.values()):
        print(f"lab {lab.name} has no network or gateway load balancer: no flows to show")
        return 0
    print(flows_text(rows))
    return 0
