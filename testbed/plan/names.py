"""Plan names of a stack added to a running lab (issue 14): "S.LogicalId" instead of "LogicalId".

A lab's first stack keeps bare logical ids everywhere (qualifier ""); a stack S added with
`testbed up --into` gets the qualifier "S.", so its hosts, subnets, VPCs, groups, NACLs, load
balancers, target groups, listeners, rules, endpoints, route targets and DNS record owners never
share a name with another stack's. Names the lab owns (switches, links, the resolver host) and
names that are not the stack's (internet addresses, DNS names, IP targets) stay as they are.
Linux names stay short: netns names are files (up to 255 bytes, "." allowed) and interface
names are lab-numbered (naming.veth_name), never made from a host name.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from testbed import naming

if TYPE_CHECKING:
    from testbed.plan.network import NetworkPlan

LAB_HOST_KINDS = ("dns",)  # hosts of the lab, not of a stack: never qualified


def qualify_plan(
    plan: NetworkPlan, qualifier: str, foreign: Mapping[str, str] | None = None
) -> NetworkPlan:
    """`plan` with every name of its stack's resources prefixed with `qualifier`.

    foreign: another stack's resources this stack uses, by their key in the stack's model
    ("Stack.LogicalId") -> their names in the lab's plan, which they get. With qualifier ""
    the plan itself is returned."""
    if not qualifier:
        return plan
    # Only this module's sibling defines NetworkPlan; imported here as network.py imports
    # this module (the same layer).
    from testbed.plan.network import NetworkPlan

    foreign = foreign or {}

    def q(name: str | None) -> str | None:
        if name is None:
            return name
        if name in foreign:
            return foreign[name]
        return qualifier + name

    d = json.loads(plan.to_json())
    d["vpcs"] = [{**v, "name": q(v["name"])} for v in d["vpcs"]]
    d["subnets"] = [_subnet(s, q) for s in d["subnets"]]
    d["hosts"] = [_host(h, q, plan.lab) for h in d["hosts"]]
    d["load_balancers"] = [_load_balancer(lb, q) for lb in d["load_balancers"]]
    d["endpoints"] = [
        {
            **e,
            **{k: q(e[k]) for k in ("name", "gwlb", "vpc", "subnet", "node_host")},
            # another stack's GWLB: its node is that stack's host, named already
            **({"node_host": e["node_host"]} if e["gwlb"] in foreign else {}),
        }
        for e in d["endpoints"]
    ]
    d["igw_routes"] = [_route(r, q) for r in d["igw_routes"]]
    d["security_groups"] = [
        {
            **g,
            "name": q(g["name"]),
            "vpc": q(g["vpc"]),
            "ingress": [{**r, "group": q(r["group"])} for r in g["ingress"]],
            "egress": [{**r, "group": q(r["group"])} for r in g["egress"]],
        }
        for g in d["security_groups"]
    ]
    d["network_acls"] = [
        {**n, "name": q(n["name"]), "vpc": q(n["vpc"]), "subnets": [q(s) for s in n["subnets"]]}
        for n in d["network_acls"]
    ]
    d["dns_records"] = [{**r, "record": q(r["record"])} for r in d["dns_records"]]
    return NetworkPlan.from_dict(d)


_Q = Callable[[str | None], str | None]


def _route(r: dict[str, Any], q: _Q) -> dict[str, Any]:
    # vpce: an endpoint's name; nat: a NAT gateway's host name (both of the stack); pcx: the
    # peer VPC's name (this stack's, or another's kept as it is).
    kinds = ("vpce", "nat", "pcx")
    return {**r, "target": q(r["target"]) if r["kind"] in kinds else r["target"]}


def _subnet(s: dict[str, Any], q: _Q) -> dict[str, Any]:
    return {
        **s,
        "name": q(s["name"]),
        "vpc": q(s["vpc"]),
        "nacl": q(s["nacl"]),
        "routes": [_route(r, q) for r in s["routes"]],
    }


def _groups(groups: list[str] | None, q: _Q) -> list[str | None] | None:
    return None if groups is None else [q(g) for g in groups]


def _host(h: dict[str, Any], q: _Q, lab: str) -> dict[str, Any]:
    if h["kind"] in LAB_HOST_KINDS:
        return h
    name = q(h["name"])
    assert name is not None
    role_args = dict(h["role_args"])
    if h["kind"] == "lb-node" and "lb" in role_args:
        role_args["lb"] = q(role_args["lb"])
    interfaces = [
        {**i, "subnet": q(i["subnet"]), "vpc": q(i["vpc"]), "groups": _groups(i["groups"], q)}
        for i in h["interfaces"]
    ]
    return {
        **h,
        "name": name,
        "netns": naming.netns_name(lab, name),
        "subnet": q(h["subnet"]),
        "vpc": q(h["vpc"]),
        "groups": _groups(h["groups"], q),
        "owner": q(h["owner"]),
        "asg": q(h["asg"]),
        "role_args": role_args,
        "interfaces": interfaces,
    }


def _actions(actions: list[dict[str, Any]], q: _Q) -> list[dict[str, Any]]:
    return [
        {**a, "target_groups": [[q(tg), weight] for tg, weight in a.get("target_groups", [])]}
        if "target_groups" in a
        else a
        for a in actions
    ]


def _load_balancer(lb: dict[str, Any], q: _Q) -> dict[str, Any]:
    def target(t: dict[str, Any], alb: bool) -> dict[str, Any]:
        # An instance target's key is "<host>:<port>" and its id the instance's physical id
        # (already qualified by the model); an IP target's id and key are addresses; an alb
        # target's host is an ALB node and its id the ALB's logical id.
        if t["host"] is None:
            return t
        qualified = {**t, "key": q(t["key"]), "host": q(t["host"])}
        return {**qualified, "id": q(t["id"])} if alb else qualified

    return {
        **lb,
        "name": q(lb["name"]),
        "nodes": [{**n, "host": q(n["host"]), "subnet": q(n["subnet"])} for n in lb["nodes"]],
        "listeners": [
            {
                **lis,
                "name": q(lis["name"]),
                "target_group": q(lis["target_group"]),
                "default_actions": _actions(lis["default_actions"], q),
                "rules": [
                    {**r, "name": q(r["name"]), "actions": _actions(r["actions"], q)}
                    for r in lis["rules"]
                ],
            }
            for lis in lb["listeners"]
        ],
        "target_groups": [
            {
                **tg,
                "name": q(tg["name"]),
                "targets": [target(t, tg["target_type"] == "alb") for t in tg["targets"]],
            }
            for tg in lb["target_groups"]
        ],
    }
