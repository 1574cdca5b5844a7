"""The program of an ALB or CLB node (role "application-node" or "classic-node"), run in the
node's namespace.

    python -m testbed.alb.node --lab-dir /run/elb-testbed/alb --lb MyALB --node MyALB-1a

It writes the node's haproxy.cfg from the lab's plan.json, runs HAProxy in master-worker mode
(master CLI and stats socket in the node's folder, for the holder) and the node's health
checker (testbed.lb.health_checker: the same checks, thresholds and events as the NLB's).

HAProxy writes one line per request (per connection on a CLB's TCP listener), in the lab's
access-log format, to its standard output; `grep` passes exactly those lines on to
access.log (HAProxy's own notices on the same stream, such as "Proxy Http stopped" on a
reload, are left out). grep, not Python: it costs next to nothing per line. When the node
is told to stop it ends HAProxy; teardown ends whatever is left in the namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from testbed.alb.config import node_files, render
from testbed.lb.health_checker import Checker
from testbed.naming import HOLDER_SOCK, PLAN_FILE
from testbed.plan.balancers import LoadBalancerPlan, NodePlan
from testbed.plan.network import NetworkPlan

PORT_RANGE = "1024 65535"  # the node connects to targets itself (see run)
TABLE_ID = "100"  # routing table of the replies to transparent connections


def load_node(lab_dir: Path, lb_name: str, host: str) -> tuple[LoadBalancerPlan, NodePlan]:
    plan = NetworkPlan.from_json((lab_dir / PLAN_FILE).read_text())
    lb = next(x for x in plan.load_balancers if x.name == lb_name)
    node = next(n for n in lb.nodes if n.host == host)
    return lb, node


def accept_replies_to_clients() -> None:
    """An NLB node whose HAProxy connects to targets from clients' addresses (`usesrc
    clientip`, testbed.alb.nlb_tls) gets the targets' replies addressed to those clients (the
    switches steer them here, testbed.controllers.nlb): every packet that arrives from the
    network is taken as local, so the kernel hands it to the transparent socket. Packets the
    node sends keep the main table. Idempotent (a restarted node finds its rule in place)."""
    rules = subprocess.run(["ip", "rule", "show"], capture_output=True, text=True, check=True)
    if f"lookup {TABLE_ID}" not in rules.stdout:
        subprocess.run(
            ["ip", "rule", "add", "not", "iif", "lo", "lookup", TABLE_ID],
            check=True,
        )
    subprocess.run(
        ["ip", "route", "replace", "local", "0.0.0.0/0", "dev", "lo", "table", TABLE_ID],
        check=True,
    )


def log_filter(node: str) -> list[str]:
    """The grep that keeps request lines: they name the node (" MyALB-1a ", after the
    time), which HAProxy's notices never do. A fixed string: the cheapest match there is."""
    return ["grep", "--line-buffered", "-F", f" {node} "]


async def run(args: argparse.Namespace) -> int:
    lab_dir = Path(args.lab_dir)
    lb, node = load_node(lab_dir, args.lb, args.node)
    files = node_files(lab_dir, args.node)
    files.dir.mkdir(parents=True, exist_ok=True)
    files.stats_socket.parent.mkdir(parents=True, exist_ok=True)
    files.config.write_text(render(lb, node, files))
    # The builder keeps lb-node hosts' own ports above 61000 for the NLB's sake; an ALB node
    # opens connections to its targets itself, so it needs the usual range.
    # An NLB node (TLS listeners) keeps the builder's range: the switches translate its
    # TCP listeners' connections to the node address with ports below it.
    if lb.type != "network":
        Path("/proc/sys/net/ipv4/ip_local_port_range").write_text(PORT_RANGE)
    if lb.transparent_groups:
        accept_replies_to_clients()
    read_end, write_end = os.pipe()
    with open(files.access_log, "ab") as access, open(files.haproxy_log, "ab") as errors:
        grep = await asyncio.create_subprocess_exec(
            *log_filter(node.host), stdin=read_end, stdout=access, stderr=errors
        )
        proc = await asyncio.create_subprocess_exec(
            "haproxy",
            "-W",
            "-db",
            "-f",
            str(files.config),
            "-S",
            str(files.master_socket),
            stdout=write_end,
            stderr=errors,
            cwd=str(files.dir),
        )
    os.close(read_end)
    os.close(write_end)
    print(
        f"haproxy master pid {proc.pid}, config {files.config}; log filter pid {grep.pid}",
        flush=True,
    )
    checker = Checker(args.lb, node.az, node.ip, str(lab_dir / HOLDER_SOCK))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    checking = loop.create_task(checker.run())
    waiter = loop.create_task(proc.wait())
    stopper = loop.create_task(stop.wait())
    await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
    checking.cancel()
    if proc.returncode is None:
        # Told to stop: end HAProxy now (a soft stop would wait for idle clients).
        proc.send_signal(signal.SIGTERM)
        await proc.wait()
        code = 0
    else:
        code = proc.returncode or 1
        tail = files.haproxy_log.read_text(errors="replace").strip().splitlines()[-8:]
        print(
            f"haproxy exited with code {proc.returncode}; {files.haproxy_log} ends with:\n"
            + "\n".join(tail),
            file=sys.stderr,
            flush=True,
        )
    try:  # HAProxy's end closes the pipe: grep writes the last lines and ends
        await asyncio.wait_for(grep.wait(), 3)
    except TimeoutError:
        grep.kill()
    return code


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--lab-dir", required=True, help="the lab's folder (holds plan.json)")
    ap.add_argument("--lb", required=True, help="load balancer logical id")
    ap.add_argument("--node", required=True, help="the node's host name (e.g. MyALB-1a)")
    args = ap.parse_args(argv)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
