"""testbed cluster check | harness up/down/status | clean: servers for a lab across machines."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from pathlib import Path
from typing import Any

from testbed import naming
from testbed.cli import cluster_demo
from testbed.cli.common import subcommand, table
from testbed.cluster import harness as harnesses
from testbed.cluster.check import report_text, run_check
from testbed.cluster.servers import parse_servers
from testbed.errors import BadInput


def register(sub: Any) -> None:
    p = subcommand(
        sub,
        "cluster",
        None,
        "a lab across several servers: check servers, make test servers on this machine",
        description=(
            "A lab can place each availability zone on its own server (Mininet Cluster\n"
            "Edition): the controller and VPC-wide pieces stay on this machine (the front\n"
            "end); only inter-AZ links cross servers, as tunnels. These commands check that\n"
            "servers can carry a zone, and make servers on this machine to try it."
        ),
        epilog=(
            "examples:\n"
            "  testbed cluster harness up --count 2      two servers on this machine\n"
            "  testbed cluster check --servers us-east-1a=srv1,us-east-1b=srv2 \\\n"
            "      --ssh-config /run/elb-testbed/cluster-harness/NAME/ssh_config\n"
            "  testbed cluster harness down NAME\n"
            "\nEvery sub-command has --help."
        ),
    )
    actions = p.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)
    _register_check(actions)
    _register_harness(actions)
    cluster_demo.register(actions)
    q = subcommand(
        actions,
        "clean",
        cmd_clean,
        "remove server harnesses whose creator died (after a kill -9)",
        epilog=(
            "examples:\n"
            "  testbed cluster clean            every harness nobody looks after\n"
            "  testbed cluster clean shab12     that harness, whoever made it\n"
            "\nA harness made by `testbed cluster harness up` is kept on purpose: it goes with\n"
            "`testbed cluster harness down` (or when named here). Only its tb-NAME-*\n"
            "namespaces and links, its journaled processes and its folder are removed."
        ),
    )
    q.add_argument("names", nargs="*", metavar="NAME", help="only these harnesses")


def _register_check(actions: Any) -> None:
    p = subcommand(
        actions,
        "check",
        cmd_check,
        "check that servers can carry a lab's availability zones",
        description=(
            "For each server, over ssh with keys (BatchMode: no password prompt): the login\n"
            "(root, or sudo without a password), the versions of mnexec (Mininet), Open\n"
            "vSwitch (and that it answers), HAProxy and snmpd; whether a VXLAN and a gretap\n"
            "device can be created (a test device named tb-ckXXXX-..., deleted at once); and\n"
            "whether the server reaches this machine's controller port: a TCP port is opened\n"
            "here, on the address this machine uses towards that server, for the check.\n"
            "Nothing else is changed on the servers."
        ),
        epilog=(
            "examples:\n"
            "  testbed cluster check --servers us-east-1a=10.0.0.11,us-east-1b=root@10.0.0.12\n"
            "  testbed cluster check --servers us-east-1a=srv1,us-east-1b=srv2 \\\n"
            "      --ssh-config /run/elb-testbed/cluster-harness/NAME/ssh_config --json\n"
            "\n"
            "output: a table (one row per server, VERDICT OK or FAIL), then what failed and\n"
            "notes, e.g. 'gretap: Error: Unknown device type.' on kernels without it (VXLAN is\n"
            "then the tunnel for inter-AZ links).\n"
            "\n"
            "exit codes: 0 every server OK, 1 some check failed, 2 bad input (e.g. a\n"
            "malformed --servers)."
        ),
    )
    p.add_argument(
        "--servers",
        required=True,
        metavar="ZONE=HOST,...",
        help="the server of each availability zone: [user@]host, address or ssh config alias",
    )
    p.add_argument("--ssh-config", type=Path, metavar="FILE", help="ssh -F FILE for every ssh")
    p.add_argument(
        "--port",
        type=int,
        default=0,
        help="the controller port to open here and reach from each server (default: any free"
        " port; give the lab's OpenFlow port to test a firewall on it)",
    )
    p.add_argument(
        "--front-end",
        metavar="ADDRESS",
        help="this machine's address the servers must reach (default: the source address of"
        " the route to each server)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object: every fact and verdict")


def _register_harness(actions: Any) -> None:
    p = subcommand(
        actions,
        "harness",
        None,
        "servers made of namespaces on this machine, to try cluster mode here",
        description=(
            "Each server is a network, mount, PID and UTS namespace with its own Open vSwitch\n"
            "(own database and run directory; the machine's OVS is not touched) and its own\n"
            "sshd on a private underlay (a /24 of 198.19.0.0/16; this machine is .1, server K\n"
            "is .10+K). ssh -F <folder>/ssh_config srvK logs in as root with the harness's\n"
            "key. Costs here: ~0.4 s and ~26 MB RSS per idle server (docs/scaling.md)."
        ),
        epilog=(
            "examples:\n"
            "  testbed cluster harness up --count 2\n"
            "  testbed cluster harness status\n"
            "  testbed cluster harness down NAME"
        ),
    )
    acts = p.add_subparsers(dest="harness_command", metavar="ACTION", required=True)
    q = subcommand(
        acts,
        "up",
        cmd_harness_up,
        "make servers on this machine (kept until harness down)",
        epilog=(
            "examples:\n"
            "  testbed cluster harness up                 two servers, srv1 and srv2\n"
            "  testbed cluster harness up --count 3\n"
            "\nIt prints the harness name, the servers and a `testbed cluster check` line for\n"
            "them. The name starts with $TESTBED_NAME_PREFIX (or --prefix)."
        ),
    )
    q.add_argument("--count", type=int, default=2, help="number of servers (1-20, default 2)")
    q.add_argument(
        "--prefix",
        default=os.environ.get("TESTBED_NAME_PREFIX", ""),
        help="first letters of the harness name (default: $TESTBED_NAME_PREFIX)",
    )
    q.add_argument("--json", action="store_true", help="the harness as one JSON object")
    q = subcommand(
        acts,
        "down",
        cmd_harness_down,
        "remove a harness: its servers' processes, namespaces, links and folder",
        epilog="examples:\n  testbed cluster harness down shab12\n"
        "  testbed cluster harness down          the only harness there is",
    )
    q.add_argument("names", nargs="*", metavar="NAME", help="harness names (status lists them)")
    q = subcommand(
        acts,
        "status",
        cmd_harness_status,
        "list the harnesses on this machine and their servers",
        epilog="examples:\n  testbed cluster harness status\n"
        "  testbed cluster harness status --json",
    )
    q.add_argument("--json", action="store_true", help="one JSON object per harness")


def cmd_check(args: Any) -> int:
    specs = parse_servers(args.servers)
    if args.ssh_config is not None and not args.ssh_config.is_file():
        raise BadInput(f"--ssh-config {args.ssh_config}: no such file")
    if not 0 <= args.port <= 65535:
        raise BadInput(f"--port {args.port}: use 0 (any free port) or 1-65535")
    if args.front_end:
        try:
            ipaddress.IPv4Address(args.front_end)
        except ValueError as e:
            raise BadInput(f"--front-end {args.front_end!r}: not an IPv4 address") from e
        if not _is_local(args.front_end):
            raise BadInput(
                f"--front-end {args.front_end}: not an address of this machine",
                hint="the servers connect to it: give one of `ip -4 addr` here",
            )
    report = run_check(specs, args.ssh_config, args.port, args.front_end)
    if args.json:
        print(json.dumps(report.as_dict(), indent=1))
    else:
        print(report_text(report, table))
    return 0 if report.ok else 1


def _is_local(address: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((address, 0))
        except OSError:
            return False
    return True


def _harness_dict(name: str) -> dict[str, Any]:
    state = harnesses.read_state(name) or {}
    d = harnesses.harness_dir(name)
    return {
        "name": name,
        "ready": bool(state.get("ready")),
        "kept": bool(state.get("detached")),
        "abandoned": harnesses.is_abandoned(name),
        "subnet": state.get("subnet"),
        "front_end": (
            str(ipaddress.IPv4Network(state["subnet"]).network_address + 1)
            if state.get("subnet")
            else None
        ),
        "servers": state.get("servers", []),
        "ssh_config": str(d / "ssh_config"),
    }


def cmd_harness_up(args: Any) -> int:
    if not (args.prefix == "" or args.prefix.isalnum()):
        raise BadInput(f"--prefix {args.prefix!r}: letters and digits only")
    h = harnesses.ServerHarness(args.prefix, args.count, detached=True)
    h.up()
    if args.json:
        print(json.dumps(_harness_dict(h.name), indent=1))
        return 0
    print(f"harness {h.name}: {len(h.servers)} servers up in {h.timings['bring_up']:.1f} s")
    rows = [[s.name, s.address, s.netns, f"ssh -F {h.ssh_config} {s.name}"] for s in h.servers]
    print(table(rows, ["SERVER", "ADDRESS", "NETNS", "LOGIN"]))
    zones = ",".join(f"us-east-1{chr(ord('a') + i)}={s.name}" for i, s in enumerate(h.servers))
    print(f"front end (this machine) on the underlay: {h.front_end_address}")
    print(f"check them:  testbed cluster check --servers {zones} --ssh-config {h.ssh_config}")
    print(f"remove them: testbed cluster harness down {h.name}")
    return 0


def _chosen(names: list[str]) -> list[str]:
    existing = harnesses.list_harnesses()
    if not names:
        if len(existing) == 1:
            return existing
        raise BadInput(
            "no harness on this machine" if not existing else f"which harness? {existing}",
            hint="testbed cluster harness status lists them",
        )
    for n in names:
        naming.validate_lab_name(n)
        if n not in existing and not any(harnesses.leftovers(n).values()):
            raise BadInput(f"no harness named {n!r}", hint="testbed cluster harness status")
    return names


def cmd_harness_down(args: Any) -> int:
    for name in _chosen(args.names):
        report = harnesses.teardown_harness(name)
        print(f"harness {name} down: removed {report.summary()}")
    return 0


def cmd_harness_status(args: Any) -> int:
    found = [_harness_dict(n) for n in harnesses.list_harnesses()]
    if args.json:
        for h in found:
            print(json.dumps(h))
        return 0
    if not found:
        print("no server harness on this machine (testbed cluster harness up makes one)")
        return 0
    for h in found:
        state = (
            "ABANDONED (testbed cluster clean)"
            if h["abandoned"]
            else ("ready" if h["ready"] else "starting")
        )
        print(f"harness {h['name']}: {state}, underlay {h['subnet']}, ssh -F {h['ssh_config']}")
        rows = [[s["name"], s["address"], s["netns"]] for s in h["servers"]]
        if rows:
            text = table(rows, ["SERVER", "ADDRESS", "NETNS"])
            print("\n".join("  " + line for line in text.splitlines()))
    return 0


def cmd_clean(args: Any) -> int:
    existing = harnesses.list_harnesses()
    names = []
    for n in args.names:
        naming.validate_lab_name(n)
        if n in existing or any(harnesses.leftovers(n).values()):
            names.append(n)
        else:
            print(f"nothing left of harness {n}")
    if args.names and not names:
        return 0
    cleaned = harnesses.clean_abandoned(names)
    for name, report in cleaned.items():
        print(f"cleaned harness {name}: removed {report.summary()}")
    if not cleaned:
        print("nothing to clean")
    return 0
