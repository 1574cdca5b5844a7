"""A run's labs across servers (issue 18: "experiments work unchanged").

An experiment makes its own labs (Lab.up, start_lab). `testbed run EXP --servers ...` puts
them across servers without touching the experiment: the runner holds a RunServers for the
whole run (`across_servers`), and start_lab reads it when it is given no servers of its own.
The setting says which experiment it serves (for the messages) and collects, lab by lab,
where each one ran: its tunnel and MTU, which the runner writes into the results' meta.json.

What does not work across servers yet (docs/scaling.md, "Not yet") is refused before
anything is built (`refusals`): the switch GWLB datapath on a remote bridge
(`switch_gwlb_refusal`, also for `testbed up --servers`). (Auto Scaling groups work: an
instance launched while the lab runs is made on its AZ's server, testbed.lab.instances;
UserData that asks the instance metadata service works: each server runs its own,
testbed.lab.imds.remote, told about launched instances.) A gateway load balancer's
datapath left to "auto" is the node's across servers (`gwlb_datapath_for`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.errors import BadInput
from testbed.model import load_model
from testbed.plan.network import NetworkPlan, build_plan
from testbed.plan.placement import FRONT_END, LOCAL, place

PRECHECK_NAME = "chk0"  # the lab name a template is checked under (nothing is built)
NOT_YET = "docs/scaling.md, 'What works across servers, and what does not yet'"


@dataclass
class RunServers:
    """The servers a run's labs go across: AZ -> server (front end: this machine), the ssh
    config that reaches them, the experiment they serve; `labs` fills as labs come up."""

    servers: Mapping[str, str]
    ssh_config: str | None = None
    experiment: str = "the run"
    labs: list[dict[str, Any]] = field(default_factory=list)

    def note_lab(self, name: str, state: Mapping[str, Any]) -> None:
        """Keep where lab `name` ran (its state once CREATE_COMPLETE)."""
        placed = state.get("servers") or {}
        self.labs.append(
            {
                "lab": name,
                "tunnel": state.get("tunnel"),
                "tunnel_reason": state.get("tunnel_reason"),
                "mtu": state.get("mtu"),
                "nodes_by_server": _by_server(placed),
            }
        )

    def to_meta(self) -> dict[str, Any]:
        """For meta.json: the servers, the ssh config, each lab's tunnel and placement."""
        return {
            "servers": dict(self.servers),
            "front_end": self.servers.get(FRONT_END, LOCAL),
            "ssh_config": self.ssh_config,
            "tunnel": sorted({str(lab["tunnel"]) for lab in self.labs if lab.get("tunnel")}),
            "labs": list(self.labs),
        }


def _by_server(nodes: Mapping[str, str]) -> dict[str, int]:
    """How many nodes (switches and hosts) ran on each server."""
    out: dict[str, int] = {}
    for server in nodes.values():
        out[server] = out.get(server, 0) + 1
    return dict(sorted(out.items()))


_lock = threading.Lock()
_current: RunServers | None = None


def current() -> RunServers | None:
    """The run's servers (None: labs on this machine, the default)."""
    return _current


@contextmanager
def across_servers(setting: RunServers | None) -> Iterator[RunServers | None]:
    """Within the block, labs started without servers of their own go across `setting`'s
    (None: nothing changes). One run at a time in a process."""
    global _current
    if setting is None:
        yield None
        return
    with _lock:
        if _current is not None:
            raise RuntimeError(f"already running across servers for {_current.experiment}")
        _current = setting
    try:
        yield setting
    finally:
        with _lock:
            _current = None


def _gateways(plan: NetworkPlan) -> bool:
    return any(lb.type == "gateway" for lb in plan.load_balancers)


def refusals(model: Any, plan: NetworkPlan, gwlb_datapath: str | None) -> list[str]:
    """Why a lab of `model` (its network `plan`) cannot run across servers yet (empty: it
    can)."""
    reasons = []
    switch = switch_gwlb_refusal(plan, gwlb_datapath)
    if switch:
        reasons.append(switch)
    return reasons


def switch_gwlb_refusal(plan: NetworkPlan, gwlb_datapath: str | None) -> str | None:
    """Why the switch GWLB datapath cannot steer a lab across servers (None: it is not
    asked for, or the lab has no gateway load balancer). What it needs is made on this
    machine's Open vSwitch only (testbed.lab.gwlb_switch): each GWLB node's address on its
    host's root-side veth, the GENEVE port, the ovs/route and tunnel neighbour of one
    ovs-vswitchd, the capability probe, their removal at teardown; a node on another server
    needs them from that server's ovs-vswitchd, over ssh, which nothing does yet."""
    if gwlb_datapath != "switch" or not _gateways(plan):
        return None
    return (
        "the switch GWLB datapath is not there yet across servers: what it needs (each GWLB "
        "node's address on its root-side veth, its GENEVE port, the ovs/route and tunnel "
        "neighbour of the appliances' VPC, the geneve capability probe, their removal) is "
        "made on this machine's Open vSwitch only, not on another server's ovs-vswitchd "
        "(--gwlb-datapath node works across servers, GENEVE crossing the tunnels whole)"
    )


def check(
    setting: RunServers, model: Any, plan: NetworkPlan, gwlb_datapath: str | None, template: str
) -> None:
    """BadInput (exit 2, nothing built) naming the experiment and the reasons when a lab of
    `model` cannot run across the run's servers."""
    reasons = refusals(model, plan, gwlb_datapath)
    if reasons:
        raise BadInput(
            f"experiment {setting.experiment} cannot run across servers: its template "
            f"{template} uses " + "; ".join(reasons),
            hint=f"run it without --servers; what works across servers: {NOT_YET}",
        )


def precheck(setting: RunServers, template: str | None) -> None:
    """Before a run: an experiment whose TEMPLATE is a file (most generate theirs) is
    checked with its defaults against the run's servers (the AZs, `refusals`); BadInput
    naming the experiment. Generated templates are checked as each lab starts."""
    if not template or not Path(template).is_file():
        return
    model = load_model(template, {}, stack_name=PRECHECK_NAME)
    plan = build_plan(model, PRECHECK_NAME)
    try:
        place(plan, dict(setting.servers))
    except BadInput as exc:
        raise BadInput(f"experiment {setting.experiment}: {exc}", hint=exc.hint) from None
    check(setting, model, plan, None, template)


def gwlb_datapath_for(plan: NetworkPlan, gwlb_datapath: str | None) -> str | None:
    """A lab across servers with gateway load balancers and no datapath chosen ("auto"):
    the node's (the switch's is not there yet across servers)."""
    if _gateways(plan) and gwlb_datapath in (None, "auto"):
        return "node"
    return gwlb_datapath
