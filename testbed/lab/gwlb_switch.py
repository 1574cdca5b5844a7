"""The machine's side of GWLB steering in the switch (issue 15; the plan's side and the
decision: testbed.plan.gwlb_datapath).

What the lab makes for a plan of the switch datapath, and removes again:
- before the switches start (`prepare`): each GWLB node's address (noprefixroute) and MAC on
  its host's root-side veth, MTU 9001 on both ends of the appliances' links;
- with the switches (testbed.topologies.network.LabSwitch): the GENEVE port of each node;
- once they run (`finish`): the ports' OpenFlow numbers checked, `ovs/route/add` of the VPCs
  holding appliances through the first node's veth, the router's MAC as tunnel neighbour
  (`TunnelNeighbours` sets it again every 5 minutes: OVS ages entries out after 15).
The veth goes with its address, the bridge with its GENEVE port; `ovs/route` is one table for
the whole ovs-vswitchd and keeps user routes after their device is gone: `remove_routes`
deletes the routes whose device is one of the lab's (teardown, also after kill -9).
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

from testbed import naming
from testbed.errors import LabError
from testbed.lab import system
from testbed.lab.capabilities import gwlb_switch
from testbed.lab.state import holder_alive, list_labs
from testbed.plan.gwlb_datapath import (
    APPLIANCE_MTU,
    SWITCH,
    Decision,
    MachineFacts,
    OvsRoute,
    SwitchPlumbing,
    TunnelRoute,
    decide,
    for_datapath,
    parse_routes,
    plumbing,
)
from testbed.plan.network import NetworkPlan

NEIGHBOUR_REFRESH_S = 300.0  # OVS's tunnel neighbour entries expire after 15 minutes idle
# In a lab's folder: the node addresses and routes its switch datapath is about to make, so
# that a lab deciding meanwhile sees them before they exist on the machine.
CLAIM_FILE = "gwlb-switch.json"
LOCK_FILE = "gwlb-switch.lock"  # in the state root: one lab decides at a time


def root_addresses() -> dict[str, str]:
    """IPv4 address -> interface, of the root namespace (where ovs-vswitchd runs)."""
    out = system.run(["ip", "-j", "-4", "addr", "show"], check=False).stdout
    found: dict[str, str] = {}
    try:
        for link in json.loads(out or "[]"):
            for a in link.get("addr_info", []):
                if a.get("family") == "inet" and a.get("local"):
                    found.setdefault(a["local"], link["ifname"])
    except (ValueError, KeyError, TypeError):
        return {}
    return found


def ovs_routes() -> tuple[OvsRoute, ...]:
    """The IPv4 entries of ovs-vswitchd's route table (empty if OVS does not answer)."""
    proc = system.run(["ovs-appctl", "--timeout=10", "ovs/route/show"], check=False)
    return parse_routes(proc.stdout) if proc.returncode == 0 else ()


def machine_facts(lab: str, datapath: str) -> MachineFacts:
    """What testbed.plan.gwlb_datapath.decide needs: the capability (probed once per machine
    on a bridge with the lab's prefix), the root namespace's addresses, OVS's routes."""
    capability = gwlb_switch(naming.probe_bridge_name(lab))
    return MachineFacts(
        capable=capability.available,
        capability_note=capability.note,
        datapath=datapath,
        root_addresses=root_addresses() if capability.available else {},
        routes=ovs_routes() if capability.available else (),
    )


def with_claims(facts: MachineFacts, name: str) -> MachineFacts:
    """facts plus what other running labs claimed (their plumbing, made or about to be)."""
    addresses = dict(facts.root_addresses)
    routes = list(facts.routes)
    for other, state in list_labs():
        if other == name or not holder_alive(state):
            continue
        try:
            claim = json.loads((naming.lab_dir(other) / CLAIM_FILE).read_text())
        except (OSError, ValueError):
            continue
        for ip, dev in claim.get("addresses", {}).items():
            addresses.setdefault(ip, dev)
        routes += [OvsRoute(cidr, dev, user=True) for cidr, dev in claim.get("routes", [])]
    return replace(facts, root_addresses=addresses, routes=tuple(routes))


@contextmanager
def _deciding() -> Iterator[None]:
    root = naming.state_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def decide_and_claim(
    plan: NetworkPlan, wanted: str, datapath: str
) -> tuple[Decision, MachineFacts]:
    """The lab's GWLB datapath (testbed.plan.gwlb_datapath.decide) from the machine and the
    other labs' claims, one lab at a time; a switch decision claims its addresses and routes
    (CLAIM_FILE in the lab's folder, which goes with it)."""
    with _deciding():
        facts = with_claims(machine_facts(plan.lab, datapath), plan.lab)
        decision = decide(plan, wanted, facts)
        if decision.datapath == SWITCH:
            made = plumbing(for_datapath(plan, decision))
            claim = {
                "addresses": {t.ip: t.veth for t in made.tunnels},
                "routes": [[r.cidr, r.dev] for r in made.routes],
            }
            path = naming.lab_dir(plan.lab) / CLAIM_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(claim))
        return decision, facts


def prepare(made: SwitchPlumbing) -> None:
    """Addresses, MACs and MTUs, on the veths before OVS opens them; LabError on a failure."""
    lines = []
    for t in made.tunnels:
        lines.append(f"link set dev {t.veth} address {t.mac}")
        lines.append(f"addr add {t.ip}/{t.prefixlen} dev {t.veth} noprefixroute")
    lines += [f"link set dev {veth} mtu {APPLIANCE_MTU}" for veth in made.mtu_veths]
    _ip_batch(lines)
    for netns, intf in made.mtu_host_ends:
        _run(["ip", "-n", netns, "link", "set", "dev", intf, "mtu", str(APPLIANCE_MTU)])


def finish(made: SwitchPlumbing) -> None:
    """Once the switches run: each GENEVE port at its planned OpenFlow port, the routes of
    the appliances' VPCs and the router as tunnel neighbour. LabError on a failure."""
    for t in made.tunnels:
        got = _run(
            ["ovs-vsctl", "--timeout=10", "get", "Interface", t.port, "ofport", "error"]
        ).stdout.splitlines()
        if not got or got[0].strip() != str(t.ofport):
            error = got[1].strip() if len(got) > 1 else ""
            raise LabError(
                f"GENEVE port {t.port} of {t.lb} node {t.host} on {t.bridge} got OpenFlow port "
                f"{got[0].strip() if got else '?'}, not {t.ofport}: {error}"
            )
    for r in made.routes:
        _appctl("ovs/route/add", r.cidr, r.dev, r.gateway)
    set_neighbours(made.routes)


def set_neighbours(routes: tuple[TunnelRoute, ...]) -> None:
    """The routes' gateways (the subnet routers) as OVS's tunnel neighbours."""
    for r in routes:
        _appctl("tnl/neigh/set", r.bridge, r.gateway, r.mac)


class TunnelNeighbours:
    """Sets the tunnel neighbours again every NEIGHBOUR_REFRESH_S (the holder's loop calls
    step); a failure is reported (warn) and tried again at the next step."""

    def __init__(
        self,
        routes: tuple[TunnelRoute, ...],
        warn: Callable[[str], None],
        interval: float = NEIGHBOUR_REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.routes, self.warn, self.interval, self.clock = routes, warn, interval, clock
        self.due = clock() + interval

    def step(self) -> None:
        if not self.routes or self.clock() < self.due:
            return
        try:
            set_neighbours(self.routes)
            self.due = self.clock() + self.interval
        except LabError as exc:
            self.warn(f"tunnel neighbours not set again: {exc}")
            self.due = self.clock() + 5.0


def lab_routes(name: str) -> list[OvsRoute]:
    """OVS user routes whose device is one of lab `name`'s interfaces (present or gone)."""
    return [r for r in ovs_routes() if r.user and naming.owner_of(r.dev) == name]


def remove_routes(name: str) -> list[str]:
    """Delete lab `name`'s OVS user routes; the prefixes removed."""
    removed = []
    for r in lab_routes(name):
        proc = system.run(["ovs-appctl", "--timeout=10", "ovs/route/del", r.prefix], check=False)
        if proc.returncode == 0:
            removed.append(r.prefix)
    return removed


def _appctl(*args: str) -> None:
    _run(["ovs-appctl", "--timeout=10", *args])


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    try:
        return system.run(argv)
    except RuntimeError as exc:
        raise LabError(str(exc)) from exc


def _ip_batch(lines: list[str]) -> None:
    if not lines:
        return
    proc = system.run(["ip", "-batch", "-"], check=False, input="".join(f"{x}\n" for x in lines))
    if proc.returncode != 0:
        raise LabError(f"GWLB switch datapath: ip -batch failed: {proc.stderr.strip()[:300]}")
