"""Where the manager asks from: lab hosts are reachable only over the lab network.

Hosts live in their own network namespaces, so the root namespace (where `testbed` runs) has
no route to them. A poller therefore runs inside a lab host, a "vantage", in the same realm
as the agents it polls: for an instance another host of its VPC (the VPC's local route
reaches every subnet, and agents answer only sources inside their VPC), for an internet
client another client. The first host of a realm that is not itself polled is preferred, so
the measured hosts carry no manager; a realm whose every host is polled gets a second
vantage to poll the first one. A host alone in its realm is polled from itself (its own
address, over lo instead of eth0).
"""

from __future__ import annotations

from testbed.errors import BadInput
from testbed.plan.network import HostPlan, NetworkPlan


def realm(host: HostPlan) -> str:
    """The part of the lab a host can reach agents in: 'vpc:<id>' or 'internet'."""
    return f"vpc:{host.vpc}" if host.vpc else "internet"


def agents_of(plan: NetworkPlan) -> list[str]:
    """Every host that runs an SNMP agent, in plan order."""
    return [h.name for h in plan.hosts if h.snmp]


def check_agents(plan: NetworkPlan, names: list[str]) -> list[HostPlan]:
    """The hosts `names`, each with an agent; BadInput naming the first that is not."""
    by_name = {h.name: h for h in plan.hosts}
    hosts = []
    for name in names:
        host = by_name.get(name)
        if host is None:
            raise BadInput(f"lab {plan.lab} has no host {name!r} (hosts: {', '.join(by_name)})")
        if not host.snmp:
            raise BadInput(
                f"host {name} runs no SNMP agent",
                hint="its template sets Metadata.Lab.Snmp to false (for the host "
                "or the whole template); agents: " + (", ".join(agents_of(plan)) or "none"),
            )
        hosts.append(host)
    return hosts


def assign(
    plan: NetworkPlan, agents: list[str], vantage: str | None = None
) -> dict[str, list[str]]:
    """Vantage host -> the agents it polls (plan order)."""
    hosts = check_agents(plan, agents)
    if vantage is not None:
        chosen = {h.name: h for h in plan.hosts}.get(vantage)
        if chosen is None:
            raise BadInput(f"lab {plan.lab} has no host {vantage!r} to poll from")
        for h in hosts:
            if realm(h) != realm(chosen):
                raise BadInput(
                    f"{vantage} cannot poll {h.name}: it is in "
                    f"{realm(chosen)}, {h.name} in {realm(h)}",
                    hint="leave --vantage out to let the lab choose per realm",
                )
        return {vantage: [h.name for h in hosts]}
    polled = {h.name for h in hosts}
    out: dict[str, list[str]] = {}
    for host in hosts:
        # Managers run in instances and clients, not in the lab's own machinery (the
        # resolver, load balancer nodes), whose addresses the agents do not accept.
        members = [
            h.name
            for h in plan.hosts
            if realm(h) == realm(host) and h.kind in ("instance", "client")
        ]
        quiet = [m for m in members if m not in polled]
        primary = (quiet or members)[0]
        if host.name != primary:
            out.setdefault(primary, []).append(host.name)
            continue
        others = [m for m in members if m != primary]
        out.setdefault(others[0] if others else primary, []).append(host.name)
    return out
