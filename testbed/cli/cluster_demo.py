"""`testbed cluster demo`: a two-AZ NLB lab across two servers made on this machine."""

from __future__ import annotations

from typing import Any

from testbed.cli.common import subcommand

EPILOG = """\
examples:
  testbed cluster demo                 the whole demo (about a minute)
  testbed cluster demo --json          its numbers as JSON
  testbed cluster demo --no-measure    without the RTT / iperf3 comparison

Makes two servers on this machine (network, mount, PID namespaces, each with its own Open
vSwitch and sshd: testbed cluster harness), brings templates/nlb.yaml up with cross-zone
balancing on, us-east-1a on the first server and us-east-1b on the second (testbed up
--servers), the core, the internet segment, the clients and the controller on this machine;
the AZs' uplinks are VXLAN tunnels over the servers' underlay. It then sends HTTP requests
from the internet client to the us-east-1a node and shows who answered (targets on both
servers: cross-zone balancing across the tunnel) and which client address they saw (the
client's own: client IP preservation), measures RTT and TCP throughput between two instances
of one server and across the tunnel, takes the lab down, checks that nothing of it is left
on any server, and removes the servers.

Exit 0 when cross-zone balancing and client IP preservation were seen and nothing was left;
1 otherwise. Needs sshd and unshare (testbed doctor: cluster server harness)."""


def register(actions: Any) -> None:
    p = subcommand(
        actions,
        "demo",
        cmd_demo,
        "a two-AZ NLB lab across two servers on this machine: cross-zone, client IP",
        epilog=EPILOG,
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON at the end")
    p.add_argument("--requests", type=int, default=24, help="HTTP requests to send (24)")
    p.add_argument(
        "--no-measure", action="store_true", help="skip the RTT and throughput comparison"
    )


def cmd_demo(args: Any) -> int:
    from testbed.cluster.demo import run_demo

    result = run_demo(requests=args.requests, measure=not args.no_measure)
    if args.json:
        print(result.to_json())
    ok = result.cross_zone and result.client_ip_preserved and not result.left_over
    print(f"\ndemo {'passed' if ok else 'FAILED'}")
    return 0 if ok else 1
