"""The Mininet CLI on a running lab: shells that join the lab's existing namespaces.

Nothing is created or reconfigured: each host node's shell enters the namespace of the lab's
own shell of that host (mnexec -a PID), interfaces are described as they are, switches are
the lab's bridges. Leaving ends these shells only; the lab keeps running. The shells get the
environment the caller gives (`testbed cli`: the lab CA's trust variables, as `testbed exec`
commands get them: testbed.lab.certs.trust_env).
"""

from __future__ import annotations

import shlex
import signal
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from mininet.cli import CLI
from mininet.link import Intf
from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.node import Host, Node, OVSSwitch

from testbed.errors import LabError, Terminated
from testbed.plan.network import NetworkPlan


class AttachedHost(Host):
    """A Mininet host whose shell joins an existing namespace (that of process `anchor`),
    with `env` exported in it."""

    def __init__(
        self, name: str, anchor: int, env: Mapping[str, str] | None = None, **params: Any
    ) -> None:
        self.anchor = anchor
        self.env = dict(env or {})
        super().__init__(name, inNamespace=False, **params)

    def startShell(self, mnopts: str | None = None) -> None:
        super().startShell(mnopts=f"-cda{self.anchor}")
        if self.env:
            self.cmd(export_line(self.env))


def export_line(env: Mapping[str, str]) -> str:
    """The shell command that exports `env` (values quoted)."""
    return "export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items()))


class _Ended(Exception):
    """SIGTERM/SIGHUP during the CLI. Mininet's CLI takes every KeyboardInterrupt (hence
    Terminated) for Ctrl-C on the running command and goes on; this is not one, so it ends
    the CLI and is turned back into Terminated outside."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _end_cli(signum: int, frame: Any) -> None:
    raise _Ended(signum)


def run_attached_cli(
    lab: str,
    plan: NetworkPlan,
    anchors: dict[str, int],
    script: str | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Mininet's CLI over lab `lab` (its plan; anchors: host -> a live process in its
    namespace; env: exported in every host's shell); returns when the user leaves (or the
    script ends). SIGTERM and SIGHUP (a closed terminal) end it with Terminated, its shells
    ended; the lab is untouched."""

    class LabCLI(CLI):
        prompt = f"testbed:{lab}> "

    setLogLevel("info")
    net = Mininet(topo=None, build=False, controller=None)
    nodes: list[Node] = []
    try:
        for h in plan.hosts:
            if h.name not in anchors:
                raise LabError(f"host {h.name} of lab {lab} has no live shell to attach to")
            node = net.addHost(h.name, cls=AttachedHost, anchor=anchors[h.name], env=env)
            nodes.append(node)
            intf = Intf("eth0", node=node, port=0)
            # Describe the existing interface without reconfiguring it.
            intf.ip, intf.prefixLen, intf.mac = h.ip, h.prefixlen, h.mac
            for number, i in enumerate(h.interfaces, start=1):
                extra = Intf(i.name, node=node, port=number)
                extra.ip, extra.prefixLen, extra.mac = i.ip, i.prefixlen, i.mac
        for s in plan.switches:
            nodes.append(net.addSwitch(s.name, cls=OVSSwitch, dpid=f"{s.dpid:016x}"))
        net.built = True
        print(
            f"*** Mininet CLI on lab {lab}: {len(plan.hosts)} hosts, "
            f"{len(plan.switches)} switches. 'help' lists commands, 'exit' leaves "
            "(the lab keeps running)."
        )
        with _ending_on_termination():
            LabCLI(net, script=script)
    finally:
        for node in nodes:
            node.terminate()  # our attached shells only; the lab is untouched


@contextmanager
def _ending_on_termination() -> Iterator[None]:
    """SIGTERM/SIGHUP raise _Ended inside the block, Terminated out of it (SIG_IGN stays)."""
    replaced = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        current = signal.getsignal(sig)
        if current is not None and current is not signal.SIG_IGN:
            replaced[sig] = signal.signal(sig, _end_cli)
    try:
        yield
    except _Ended as ended:
        raise Terminated(ended.signum) from None
    finally:
        for sig, previous in replaced.items():
            signal.signal(sig, previous)
