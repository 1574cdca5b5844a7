"""testbed exec | cli: commands in a lab's hosts, and the Mininet CLI on a running lab."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from testbed.cli.common import subcommand
from testbed.errors import BadInput, LabError


def register(sub: Any) -> None:
    p = subcommand(
        sub, "exec", cmd_exec, "run a command in a lab host (output and exit code pass through)",
        epilog="examples:\n"
        "  testbed exec default WebA1 -- ip -brief addr\n"
        "  testbed exec default Client1 -- curl -s http://203.0.113.10/\n"
        "  testbed exec default WebA2 -- sh -c 'ping -c1 10.0.2.4 && echo reachable'\n\n"
        "The command runs in the host's network namespace, with TMPDIR set to the\n"
        "host's own temporary directory in the lab folder.")
    p.add_argument("name", help="lab name")
    p.add_argument("host", help="host (template logical id, e.g. WebA1)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")

    p = subcommand(
        sub, "cli", cmd_cli, "the Mininet CLI on a running lab",
        epilog="examples:\n  testbed cli default\n      mininet commands work on the lab: "
        "pingall, nodes, WebA1 ip route,\n      WebA2 ping -c1 WebB2, dpctl dump-flows -O "
        "OpenFlow13, exit\n  testbed cli default --script cmds.txt     run commands from a "
        "file\n\nLeaving the CLI leaves the lab running (testbed down NAME ends it).")
    p.add_argument("name", help="lab name")
    p.add_argument("--script", help="file of CLI commands to run instead of a prompt")


def cmd_exec(args: Any) -> int:
    from testbed.lab.api import Lab

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise BadInput("no command given", hint=f"testbed exec {args.name} {args.host} -- CMD")
    host = Lab.attach(args.name).host(args.host)
    argv = host.argv(command)
    sys.stdout.flush()
    os.execvp(argv[0], argv)  # replaces this process: stdin, output, exit code pass through
    return 0  # pragma: no cover


def cmd_cli(args: Any) -> int:
    open_cli(args.name, script=args.script)
    return 0


def open_cli(name: str, script: str | None = None) -> None:
    """Run Mininet's CLI on the running lab `name` (shells attached to its namespaces)."""
    from mininet.cli import CLI
    from mininet.link import Intf
    from mininet.log import setLogLevel
    from mininet.net import Mininet
    from mininet.node import Host, OVSSwitch

    from testbed.lab.api import Lab
    from testbed.lab.plan import NetworkPlan
    from testbed.lab.procs import ProcessJournal, is_alive

    lab = Lab.attach(name)
    plan = NetworkPlan.from_json((lab.dir / "plan.json").read_text())
    anchors = {r.host: r.pid for r in ProcessJournal(lab.dir).records()
               if r.what == "mininet-host-shell" and is_alive(r)}

    class AttachedHost(Host):
        """A Mininet host whose shell joins an existing lab namespace (mnexec -a PID)."""

        def __init__(self, hname: str, anchor: int, **params: Any) -> None:
            self.anchor = anchor
            super().__init__(hname, inNamespace=False, **params)

        def startShell(self, mnopts: str | None = None) -> None:
            super().startShell(mnopts=f"-cda{self.anchor}")

    class LabCLI(CLI):
        prompt = f"testbed:{name}> "

    setLogLevel("info")
    net = Mininet(topo=None, build=False, controller=None)
    nodes = []
    try:
        for h in plan.hosts:
            if h.name not in anchors:
                raise LabError(f"host {h.name} of lab {name} has no live shell to attach to")
            node = net.addHost(h.name, cls=AttachedHost, anchor=anchors[h.name])
            nodes.append(node)
            intf = Intf("eth0", node=node, port=0)
            # Describe the existing interface without reconfiguring it.
            intf.ip, intf.prefixLen, intf.mac = h.ip, h.prefixlen, h.mac
        for s in plan.switches:
            nodes.append(net.addSwitch(s.name, cls=OVSSwitch, dpid=f"{s.dpid:016x}"))
        net.built = True
        print(f"*** Mininet CLI on lab {name}: {len(plan.hosts)} hosts, "
              f"{len(plan.switches)} switches. 'help' lists commands, 'exit' leaves "
              "(the lab keeps running).")
        LabCLI(net, script=script)
    finally:
        for node in nodes:
            node.terminate()  # our attached shells only; the lab is untouched
