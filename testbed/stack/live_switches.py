"""Bridges a stack added to a running lab brings (issue 14, docs/design/stacks.md §3.2 4.1):
the internet segment when the lab's first stack had none (AWS's distributed GWLB design: the
appliance stack has no internet gateway, its spokes do), or an AZ the lab has no bridge for.

The plan with the bridge is published first, so that the controller knows its datapath id
when it connects; then the bridge is made (testbed.topologies.network.VpcNetwork.add_switch)
and this waits until the controller has programmed it (its flows acknowledged), before any
host is put on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from testbed import asks
from testbed.errors import LabError
from testbed.plan.network import LinkPlan, NetworkPlan, SwitchPlan
from testbed.waiting import WaitTimeout, wait_for

# How long a new bridge may take to connect and be programmed (the userspace datapath on a
# busy machine: the lab's own start waits 30 s for all of its bridges).
PROGRAMMED_TIMEOUT = 30.0


class Network(Protocol):
    """What this needs of testbed.topologies.network.VpcNetwork."""

    def add_switch(self, sw: SwitchPlan, uplink: LinkPlan) -> None: ...


def new_switches(before: NetworkPlan, after: NetworkPlan) -> list[tuple[SwitchPlan, LinkPlan]]:
    """The bridges `after` has and `before` has not, each with its link to the core."""
    have = {s.name for s in before.switches}
    out = []
    for sw in after.switches:
        if sw.name in have:
            continue
        uplink = next((link for link in after.links if sw.name in (link.a, link.b)), None)
        if uplink is None:
            raise LabError(f"bridge {sw.name} of the plan has no link to the core")
        out.append((sw, uplink))
    return out


def add_switches(
    network: Network,
    controller_sock: str,
    switches: Sequence[tuple[SwitchPlan, LinkPlan]],
    timeout: float = PROGRAMMED_TIMEOUT,
) -> None:
    """Make each bridge, then wait until the controller has programmed all of them."""
    for sw, uplink in switches:
        network.add_switch(sw, uplink)
    wanted = {sw.dpid for sw, _ in switches}
    last: dict[str, list[int]] = {}

    def programmed() -> bool:
        status = asks.controller_status(controller_sock)
        last["ready"] = list(status["ready"])
        return wanted <= set(status["ready"])

    names = ", ".join(sw.name for sw, _ in switches)
    try:
        wait_for(programmed, timeout, f"the controller to program bridge(s) {names}")
    except WaitTimeout:
        raise LabError(
            f"bridge(s) {names} were not programmed by the controller within {timeout:.0f} s "
            f"(programmed: {', '.join(hex(d) for d in last.get('ready', []))})"
        ) from None
