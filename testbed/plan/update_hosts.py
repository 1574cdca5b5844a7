"""Which hosts a template update adds, removes or replaces, on the running lab's allocations.

A new template's plan is built from scratch (testbed.plan.network.build_plan): its switch
ports, host links and conntrack zones are numbered in template order, so an instance added
in the middle of a template would shift every later host's port. A running lab never
renumbers: a host the update keeps keeps its port, link, zone and MAC, exactly as it runs;
a host the update adds takes the next free ones from the lab's Allocations (as a stack added
to the lab, or an Auto Scaling launch, does); a replaced host's successor takes the old
one's (the old one is gone before it comes: the lab names hosts by logical id).

A host "changes" when anything the template decides about it differs (address, subnet,
role, UserData, SNMP, public address, source/dest check, interfaces...). A change of its
security groups alone is not a replacement: the controller moves a port between groups live
(testbed.plan.changes, "memberships") when the port already has a conntrack zone.

    diff = rebase_hosts(running, new)   # diff.plan: `new` with the running allocations
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from testbed.model.addressing import KeptAddresses
from testbed.plan.merge import Allocations
from testbed.plan.network import HostPlan, InterfacePlan, NetworkPlan

# Kinds of host an update may add, remove or replace: the template's instances and internet
# clients. A load balancer node, NAT gateway or resolver follows its resource (needs down/up).
UPDATABLE_KINDS = ("instance", "client")


@dataclass
class HostDiff:
    """The hosts of an update: `plan` is the new plan on the running allocations."""

    plan: NetworkPlan
    added: list[HostPlan] = field(default_factory=list)
    removed: list[HostPlan] = field(default_factory=list)
    replaced: list[tuple[HostPlan, HostPlan]] = field(default_factory=list)  # (old, new)
    regrouped: list[str] = field(default_factory=list)  # only their security groups change
    refused: list[str] = field(default_factory=list)  # changes this cannot take, as text

    @property
    def changes(self) -> bool:
        return bool(self.added or self.removed or self.replaced)


# Load balancers whose nodes come and go with their subnets while the lab runs.
LIVE_NODE_TYPES = ("application", "network", "classic")


def _live_node(plan: NetworkPlan, host: str) -> bool:
    """Is `host` a node of a load balancer that takes a subnet added or removed live?"""
    return any(
        lb.type in LIVE_NODE_TYPES and any(n.host == host for n in lb.nodes)
        for lb in plan.load_balancers
    )


def _bare_interface(i: InterfacePlan) -> InterfacePlan:
    return replace(i, port=0, veth="", sg_zone=None, mac="", groups=None)


def template_part(h: HostPlan) -> HostPlan:
    """`h` without what the lab allocates (port, link, zone, MAC) and without its groups."""
    return replace(
        h,
        port=0,
        veth="",
        sg_zone=None,
        mac="",
        groups=None,
        interfaces=tuple(_bare_interface(i) for i in h.interfaces),
    )


def _groups_only(old: HostPlan, new: HostPlan) -> HostPlan | None:
    """`old` with `new`'s security groups, when that is all that differs and the controller
    can move its ports live (each port that gets groups already has a zone); else None."""
    if template_part(old) != template_part(new):
        return None
    if new.groups is not None and old.sg_zone is None:
        return None
    interfaces = []
    for o, n in zip(old.interfaces, new.interfaces, strict=True):
        if n.groups is not None and o.sg_zone is None:
            return None
        interfaces.append(replace(o, groups=n.groups))
    return replace(old, groups=new.groups, interfaces=tuple(interfaces))


def _allocated(alloc: Allocations, h: HostPlan) -> HostPlan:
    """A new host on the lab's next free port, link and zone (and its interfaces')."""
    interfaces = tuple(
        replace(
            i,
            port=alloc.take_port(i.switch),
            veth=alloc.take_veth(f"{h.name}/{i.name}"),
            sg_zone=alloc.take_zone() if i.groups is not None else None,
        )
        for i in h.interfaces
    )
    return replace(
        h,
        port=alloc.take_port(h.switch),
        veth=alloc.take_veth(h.name),
        sg_zone=alloc.take_zone() if h.groups is not None else None,
        interfaces=interfaces,
    )


def _successor(old: HostPlan, new: HostPlan) -> HostPlan:
    """`new` on `old`'s port, link and zone (old goes first), when on the same switch."""
    if new.switch != old.switch or len(new.interfaces) != len(old.interfaces):
        return new
    interfaces = tuple(
        replace(n, port=o.port, veth=o.veth, sg_zone=o.sg_zone if n.groups is not None else None)
        for o, n in zip(old.interfaces, new.interfaces, strict=True)
        if n.switch == o.switch
    )
    if len(interfaces) != len(new.interfaces):
        return new
    zone = old.sg_zone if new.groups is not None else None
    return replace(new, port=old.port, veth=old.veth, sg_zone=zone, interfaces=interfaces)


def rebase_hosts(running: NetworkPlan, new: NetworkPlan, held: Sequence[HostPlan] = ()) -> HostDiff:
    """The hosts of `new` on `running`'s allocations, and what an update does to each.

    `running` holds the template's hosts only (not Auto Scaling's); `held`: the hosts Auto
    Scaling launched, which keep their ports, host links and zones (an added host gets none
    of theirs: a host link of the same name would take the instance's away). Hosts of other kinds
    than UPDATABLE_KINDS that appear, go or change land in `refused`."""
    old_by_name = {h.name: h for h in running.hosts}
    new_names = {h.name for h in new.hosts}
    switches = {s.name for s in running.switches}
    diff = HostDiff(plan=new)
    hosts: list[HostPlan] = []
    pending: list[HostPlan] = []  # added: allocated once every kept host is known
    for h in new.hosts:
        old = old_by_name.get(h.name)
        if old is not None and template_part(old) == template_part(h) and old.groups == h.groups:
            hosts.append(old)
            continue
        if old is not None:
            regrouped = _groups_only(old, h)
            if regrouped is not None:
                hosts.append(regrouped)
                diff.regrouped.append(h.name)
                continue
        node_added = old is None and h.kind == "lb-node" and _live_node(new, h.name)
        if not node_added and (
            h.kind not in UPDATABLE_KINDS or (old is not None and old.kind not in UPDATABLE_KINDS)
        ):
            what = "added" if old is None else "changed"
            diff.refused.append(f"hosts.{h.name}: a {h.kind} {what}")
            hosts.append(old or h)
            continue
        if h.switch not in switches:
            diff.refused.append(
                f"hosts.{h.name}: in {h.az}, where the lab has no switch (a new Availability "
                "Zone needs down/up)"
            )
            hosts.append(old or h)
            continue
        if old is None:
            pending.append(h)
            hosts.append(h)
        else:
            succ = _successor(old, h)
            if succ is h:
                pending.append(h)
            diff.replaced.append((old, succ))
            hosts.append(succ)
    for old in running.hosts:
        if old.name in new_names:
            continue
        if old.kind not in UPDATABLE_KINDS and not (
            old.kind == "lb-node" and _live_node(running, old.name)
        ):
            diff.refused.append(f"hosts.{old.name}: a {old.kind} removed")
            hosts.append(old)
        else:
            diff.removed.append(old)
    waiting = {h.name for h in pending}
    # Removed hosts still run while the new ones come (they go in the cleanup): their
    # ports and links are not free yet.
    holding = [h for h in hosts if h.name not in waiting] + diff.removed
    kept = replace(running, hosts=(*holding, *held))
    alloc = Allocations.of(kept)
    fresh = {h.name: _allocated(alloc, h) for h in pending}
    hosts = [fresh.get(h.name, h) for h in hosts]
    diff.added = [fresh[h.name] for h in pending if h.name not in old_by_name]
    diff.replaced = [(o, fresh.get(n.name, n)) for o, n in diff.replaced]
    diff.plan = replace(new, hosts=tuple(hosts))
    return diff


def replace_also(diff: HostDiff, names: list[str]) -> None:
    """Replace hosts `names` too (an instance property the plan does not carry, e.g. its
    ImageId, that AWS replaces it for): each successor on its predecessor's allocations."""
    taken = {h.name for h in diff.added} | {n.name for _, n in diff.replaced}
    by_name = {h.name: h for h in diff.plan.hosts}
    for name in names:
        host = by_name.get(name)
        if host is None or name in taken or host.kind not in UPDATABLE_KINDS:
            continue
        diff.replaced.append((host, host))
        if name in diff.regrouped:
            diff.regrouped.remove(name)


def running_addresses(plan: NetworkPlan, qualifier: str = "") -> KeptAddresses:
    """What a stack runs holds, by owner (logical id, or a load balancer node's name):
    private and public addresses of its hosts, load balancer nodes and endpoints
    (testbed.model.addressing keeps them through an update)."""
    private: dict[str, str] = {}
    public: dict[str, str] = {}
    owned = [(h.name, h.ip, h.public_ip) for h in plan.hosts if h.asg is None]
    owned += [(n.host, n.ip, n.public_ip) for lb in plan.load_balancers for n in lb.nodes]
    owned += [(e.name, e.ip, None) for e in plan.endpoints]
    for name, ip, public_ip in owned:
        if qualifier and not name.startswith(qualifier):
            continue
        private[name[len(qualifier) :]] = ip
        if public_ip:
            public[name[len(qualifier) :]] = public_ip
    return KeptAddresses(private, public)
