"""What a template update changes in a running lab, and whether it can be applied live.

A running lab takes, without down/up, the changes an ALB applies in place on AWS: listener
rules and default actions, target groups (targets, health checks, attributes) and load
balancer attributes of application load balancers; the same of a Classic Load Balancer
(its instances, HealthCheck, ConnectionDrainingPolicy, ConnectionSettings, CrossZone) and
its listeners' InstancePort, InstanceProtocol and policies (stickiness, proxy protocol, SSL
negotiation): its nodes' HAProxy reloads seamlessly, as an ALB's; the certificates of HTTPS
and SSL listeners (a certificate added, removed or reissued for other names: the nodes that
serve it reload with the new file); an NLB's TLS listeners' certificates, SslPolicy and
AlpnPolicy (HAProxy on its nodes reloads the same way); and security groups and network ACLs
(rules, entries, which groups a port carries, which ACL a subnet has: the controller
reprograms their flows; established flows stay, as on AWS).
Everything else (hosts, subnets, routes, other load balancer types, listener ports, a
listener added to or removed from a CLB, ...) is built into namespaces, links and flows (or
into the ports a node is ready on) and needs `testbed down` and `testbed up`.

    live, other, reload = plan_changes(old_plan, new_plan)
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from testbed.plan.balancers import PROXY_TYPES
from testbed.plan.network import NetworkPlan

# Parts of an ALB's plan that a running lab can change (HAProxy reload, runtime API).
# `nodes`: a subnet added to or removed from the load balancer (testbed.stack.update_apply
# launches or removes the node's host).
ALB_LIVE_FIELDS = ("target_groups", "attributes", "idle_tcp_s", "idle_udp_s", "nodes")
# ssl_policy, certificates: the nodes reload with the new bind line (the load balancer
# service issues a certificate the new plan names before the nodes reload:
# testbed.lab.certs.issue_all).
ALB_LIVE_LISTENER_FIELDS = (
    "default_actions",
    "rules",
    "target_group",
    "ssl_policy",
    "certificates",
)
# A CLB's: the same, its CrossZone, and what its listeners do behind their port.
CLASSIC_LIVE_FIELDS = (*ALB_LIVE_FIELDS, "cross_zone")
CLASSIC_LIVE_LISTENER_FIELDS = (
    "default_actions",
    "target_group",
    "instance_port",
    "instance_protocol",
    "proxy_protocol",
    "sticky",
    "sticky_cookie",
    "sticky_expiration_s",
    "idle_timeout_s",
    "ssl_policy",
    "certificates",
)
# An NLB's target groups (targets, health checks, attributes): the registry and the
# controller take them live (no node process to reload).
NLB_LIVE_FIELDS = ("target_groups", "nodes")
# An NLB's node listeners (HAProxy on its nodes: TLS, TCP to proxy protocol v2 groups):
# certificates and policies reload its HAProxy, as does a change of their groups' attributes
# (proxy_protocol_v2.enabled of a group that only TLS listeners use: `send-proxy-v2`). A
# change that moves a TCP listener between the switches and the node (proxy protocol v2 of
# its group turned on or off) needs down/up: node_listener_moves.
NLB_TLS_LIVE_LISTENER_FIELDS = ("certificates", "ssl_policy", "alpn_policy")
MAX_SHOWN = 15
# Live changes of security groups and ACL entries start with these (see security_changes).
SECURITY_PREFIXES = ("security_groups.", "network_acls.", "memberships.", "acl_of_subnet.")
# Live changes of route tables (the controller reprograms forwarding from the plan).
ROUTE_PREFIXES = ("routes.", "igw_routes")


def _named(items: list[Any]) -> dict[str, Any] | None:
    """A list of dicts that all have a distinct "name" -> {name: item}, else None."""
    if items and all(isinstance(i, dict) and "name" in i for i in items):
        names = [i["name"] for i in items]
        if len(set(names)) == len(names):
            return {i["name"]: i for i in items}
    return None


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Readable differences between two plan fragments ("hosts.WebC1: added", ...)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in a:
                out.append(f"{where}: added")
            elif key not in b:
                out.append(f"{where}: removed")
            else:
                out += differences(a[key], b[key], where)
        return out
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        na, nb = _named(list(a)), _named(list(b))
        if na is not None and nb is not None:
            return differences(na, nb, path)
        if len(a) == len(b):
            out = []
            for i, (x, y) in enumerate(zip(a, b)):
                out += differences(x, y, f"{path}[{i}]")
            return out
    if a != b:
        return [f"{path}: {_short(a)} -> {_short(b)}"]
    return []


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _split_alb(lb: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the fixed part, the live part) of an ALB's or a CLB's plan dict."""
    classic = lb["type"] == "classic"
    fields = CLASSIC_LIVE_FIELDS if classic else ALB_LIVE_FIELDS
    listener_fields = CLASSIC_LIVE_LISTENER_FIELDS if classic else ALB_LIVE_LISTENER_FIELDS
    fixed = {k: v for k, v in lb.items() if k not in fields}
    live = {k: lb[k] for k in fields if k in lb}
    fixed["listeners"] = [
        {k: v for k, v in lis.items() if k not in listener_fields} for lis in lb["listeners"]
    ]
    live["listeners"] = [
        {"name": lis["name"], **{k: lis[k] for k in listener_fields if k in lis}}
        for lis in lb["listeners"]
    ]
    return fixed, live


def _without_targets(live: dict[str, Any]) -> dict[str, Any]:
    return dict(
        live,
        target_groups=[
            {k: v for k, v in tg.items() if k != "targets"} for tg in live.get("target_groups", [])
        ],
    )


def _split_security(d: dict[str, Any]) -> dict[str, Any]:
    """Take the live part of security out of a plan dict: every group (rules), each ACL's
    entries and subnets, which groups each port carries (hosts and their extra interfaces)
    and which ACL each subnet has. A port's conntrack zone stays in the plan: a change that
    moves zones (a port that had no groups getting some) needs down/up."""
    acls = d.get("network_acls", [])
    d["network_acls"] = [n["name"] for n in acls]
    memberships: dict[str, Any] = {}
    for h in d.get("hosts", []):
        memberships[h["name"]] = {"groups": h.pop("groups", None)}
        for i in h.get("interfaces", []):
            memberships[f"{h['name']}/{i['name']}"] = {"groups": i.pop("groups", None)}
    acl_of_subnet = {s["name"]: s.pop("nacl", None) for s in d.get("subnets", [])}
    return {
        "security_groups": d.pop("security_groups", []),
        "network_acls": [
            {"name": n["name"], "entries": n.get("entries", []), "subnets": n.get("subnets", [])}
            for n in acls
        ],
        "memberships": memberships,
        "acl_of_subnet": acl_of_subnet,
    }


def _split_routes(d: dict[str, Any]) -> dict[str, Any]:
    """Take the route tables out of a plan dict: each subnet's routes and the internet
    gateway's ingress routes (the controller reprograms them live from the plan)."""
    return {
        "routes": {s["name"]: s.pop("routes", []) for s in d.get("subnets", [])},
        "igw_routes": d.pop("igw_routes", []),
    }


def route_changes(live: list[str]) -> list[str]:
    """The live changes that are routes."""
    return [c for c in live if c.startswith(ROUTE_PREFIXES)]


def security_changes(live: list[str]) -> list[str]:
    """The live changes that are security group rules or ACL entries."""
    return [c for c in live if c.startswith(SECURITY_PREFIXES)]


def plan_changes(old: NetworkPlan, new: NetworkPlan) -> tuple[list[str], list[str], list[str]]:
    """(live changes, changes that need down/up, ALBs and CLBs whose HAProxy must reload).

    Target list changes alone need no reload: the runtime API adds and removes servers."""
    a, b = asdict(old), asdict(new)
    live: list[str] = []
    reload: list[str] = []
    for d, source in ((a, old), (b, new)):
        on_node = {lb.name: bool(lb.node_listeners) for lb in source.load_balancers}
        lbs = []
        for lb in d["load_balancers"]:
            if lb["type"] in PROXY_TYPES:
                fixed, part = _split_alb(lb)
                lbs.append(fixed)
                d.setdefault("_alb_live", {})[lb["name"]] = part
            elif lb["type"] == "network":
                part = {k: lb[k] for k in NLB_LIVE_FIELDS if k in lb}
                fixed = {k: v for k, v in lb.items() if k not in NLB_LIVE_FIELDS}
                if on_node[lb["name"]]:
                    fields = NLB_TLS_LIVE_LISTENER_FIELDS
                    fixed["listeners"] = [
                        {k: v for k, v in lis.items() if k not in fields} for lis in lb["listeners"]
                    ]
                    part["listeners"] = [
                        {"name": lis["name"], **{k: lis[k] for k in fields if k in lis}}
                        for lis in lb["listeners"]
                    ]
                lbs.append(fixed)
                d.setdefault("_alb_live", {})[lb["name"]] = part
            else:
                lbs.append(lb)
        d["load_balancers"] = lbs
    old_live, new_live = a.pop("_alb_live", {}), b.pop("_alb_live", {})
    old_certs, new_certs = _certificates(a), _certificates(b)
    live += differences(old_certs, new_certs, "certificates")
    old_sec, new_sec = _split_security(a), _split_security(b)
    old_routes, new_routes = _split_routes(a), _split_routes(b)
    other = node_listener_moves(old, new) + differences(a, b)
    live += differences(old_sec, new_sec)
    live += differences(old_routes, new_routes)
    for name in sorted(set(old_live) & set(new_live)):
        found = differences(old_live[name], new_live[name], f"load_balancers.{name}")
        live += found
        proxied = "listeners" in new_live[name]
        if proxied and differences(
            _without_targets(old_live[name]), _without_targets(new_live[name])
        ):
            reload.append(name)
    # A certificate issued anew for other names under the same ARN: the load balancers that
    # serve it (ALB, CLB, an NLB's TLS listeners) reload to read the new file (their
    # listeners did not change).
    reissued = {arn for arn, c in new_certs.items() if arn in old_certs and old_certs[arn] != c}
    for lb in new.load_balancers:
        if not lb.runs_haproxy or lb.name not in old_live:
            continue
        arns = sorted(reissued & {arn for lis in lb.listeners for arn in lis.certificates})
        for arn in arns:
            live.append(f"load_balancers.{lb.name}.certificates: {arn} reissued")
        if arns and lb.name not in reload:
            reload.append(lb.name)
    return live, other, reload


def node_listener_moves(old: NetworkPlan, new: NetworkPlan) -> list[str]:
    """An NLB's TCP listeners that move between the switches and the node's HAProxy (their
    group's proxy_protocol_v2.enabled turned on or off): the node's ports and the switches'
    flows are built at `testbed up`, so these need down/up."""
    out = []
    before = {lb.name: lb for lb in old.load_balancers}
    for lb in new.load_balancers:
        if lb.name not in before:
            continue
        was = {lis.name for lis in before[lb.name].node_listeners}
        now = {lis.name for lis in lb.node_listeners}
        names = {lis.name for lis in before[lb.name].listeners} & {lis.name for lis in lb.listeners}
        for name in sorted((was ^ now) & names):
            where = "the node's HAProxy" if name in now else "the switches"
            out.append(
                f"load_balancers.{lb.name}.listeners.{name}: moves to {where} (proxy protocol "
                "v2 of its target group turned " + ("on" if name in now else "off") + ")"
            )
    return out


def _certificates(d: dict[str, Any]) -> dict[str, Any]:
    """Take the plan's certificates out of a plan dict (ARN -> the rest): the lab issues a
    new or changed one when it takes the new plan, live."""
    return {c["arn"]: {k: v for k, v in c.items() if k != "arn"} for c in d.pop("certificates", [])}


def describe(changes: list[str]) -> str:
    """One line per change, at most MAX_SHOWN of them."""
    shown = changes[:MAX_SHOWN]
    more = len(changes) - len(shown)
    return "\n".join(f"  {c}" for c in shown) + (f"\n  ... and {more} more" if more else "")
