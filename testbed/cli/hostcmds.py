"""testbed exec | cli: commands in a lab's hosts, and the Mininet CLI on a running lab."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from testbed.cli.common import subcommand
from testbed.errors import BadInput
from testbed.lab import certs
from testbed.lab.api import Lab
from testbed.lab.procs import ProcessJournal, is_alive
from testbed.topologies.attached import run_attached_cli
from testbed.topologies.network import HOST_SHELL


def register(sub: Any) -> None:
    p = subcommand(
        sub,
        "exec",
        cmd_exec,
        "run a command in a lab host (output and exit code pass through)",
        epilog="examples:\n"
        "  testbed exec default WebA1 -- ip -brief addr\n"
        "  testbed exec default Client1 -- curl -s http://203.0.113.10/\n"
        "  testbed exec default WebA2 -- sh -c 'ping -c1 10.0.2.4 && echo reachable'\n\n"
        "The command runs in the host's network namespace, with TMPDIR set to the\n"
        "host's own temporary directory in the lab folder.",
    )
    p.add_argument("name", help="lab name")
    p.add_argument("host", help="host (template logical id, e.g. WebA1)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")

    p = subcommand(
        sub,
        "cli",
        cmd_cli,
        "the Mininet CLI on a running lab",
        epilog="examples:\n  testbed cli default\n      mininet commands work on the lab: "
        "pingall, nodes, WebA1 ip route,\n      WebA2 ping -c1 WebB2, dpctl dump-flows -O "
        "OpenFlow13, exit\n  testbed cli default --script cmds.txt     run commands from a "
        "file\n\nLeaving the CLI leaves the lab running (testbed down NAME ends it).",
    )
    p.add_argument("name", help="lab name")
    p.add_argument("--script", help="file of CLI commands to run instead of a prompt")


def cmd_exec(args: Any) -> int:
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
    lab = Lab.attach(name)
    anchors = {
        r.host: r.pid
        for r in ProcessJournal(lab.dir).records()
        if r.what == HOST_SHELL and r.host and is_alive(r)
    }
    # Its shells trust the lab's CA, as `testbed exec` commands do (testbed.lab.certs).
    run_attached_cli(name, lab.plan, anchors, script, env=certs.trust_env(lab.dir))
