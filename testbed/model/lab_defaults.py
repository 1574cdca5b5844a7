"""What the lab adds to a real template so it serves with no edits.

- An instance that a load balancer targets and that has no lab role gets the http-backend
  role on its target port(s) (Metadata.Lab.Role: none opts out): state.default_roles. So do
  the instances of an Auto Scaling group registered in target groups (TargetGroupARNs) or
  classic load balancers (LoadBalancerNames: on their listeners' instance ports) whose
  launch template / configuration has no Metadata.Lab role: the group's launch spec gets the
  role, and state.default_roles[group logical id] says why.
  Real templates install and start their servers in UserData (yum install httpd), which
  cannot run here; the lab's own web server answers instead.
- A template with an (attached) internet gateway and no Lab::Internet::Client gets one (Internet1,
  198.51.100.10): state.lab_made. It is somewhere to test from, as a laptop on the internet
  is for a stack on AWS.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from testbed.errors import BadInput
from testbed.model.elb_defaults import CLASSIC
from testbed.model.elbv2_types import EXTRAS_KEY as ELBV2_KEY
from testbed.model.state import BuildState
from testbed.model.types import InternetClient, RoleSpec, frozen_map

CLIENT_TYPE = "Lab::Internet::Client"
CLIENT_ID = "Internet"
CLIENT_REASON = "the template has an internet gateway and no Lab::Internet::Client"
DEFAULT_ROLE = "http-backend"
OPT_OUT = "Metadata.Lab.Role: none to opt out"
# http-backend's TCP identity port (testbed.lab.launch.HTTP_BACKEND_DEFAULTS, a higher
# layer; a unit test keeps the two equal).
BACKEND_TCP_PORT = 9000
# Target group protocols whose targets are appliances (GENEVE), not servers.
NOT_SERVED = ("GENEVE",)


def apply(state: BuildState) -> list[BadInput]:
    """Add the lab's defaults to a fully built state; the problems found (usually none)."""
    default_roles(state)
    default_client(state)
    return []


@dataclass(frozen=True)
class Use:
    """One way a load balancer reaches an instance: a target group, its protocol and the
    port the target is registered on."""

    group: str
    protocol: str
    port: int


def target_uses(state: BuildState) -> dict[str, list[Use]]:
    """Instance logical id -> how target groups reach it, in declaration order (an ip target
    counts for the instance that holds its address)."""
    groups = state.extras.get(ELBV2_KEY, {}).get("target_groups", {})
    uses: dict[str, list[Use]] = {}
    for tg in groups.values():
        if tg.protocol in NOT_SERVED:
            continue
        for target in tg.targets:
            if target.instance is None or target.instance not in state.instances:
                continue
            for use in _group_uses(state, tg, target.port):
                if use not in uses.setdefault(target.instance, []):
                    uses[target.instance].append(use)
    return uses


def _group_uses(state: BuildState, tg: Any, port: int) -> list[Use]:
    """How a target group reaches a target registered on `port`: on that port, or for a
    classic load balancer's group, on the instance port of each of its listeners."""
    if tg.lb_type != CLASSIC:
        return [Use(tg.logical_id, tg.protocol, port)]
    listeners = state.extras.get(ELBV2_KEY, {}).get("listeners", {}).values()
    return list(
        dict.fromkeys(
            Use(tg.logical_id, lis.instance_protocol, lis.instance_port)
            for lis in listeners
            if lis.lb_id == tg.logical_id
        )
    )


def role_for(uses: list[Use]) -> tuple[RoleSpec, str]:
    """The http-backend role that serves these uses, and why, in words.

    http-backend serves HTTP on Port (TCP connections on it get HTTP answers, which an NLB's
    TCP health check and TCP clients accept), and answers UDP on UdpPort. The first TCP port
    is Port, the first UDP port UdpPort; other ports are named as not served."""
    tcp = _unique(u.port for u in uses if u.protocol not in ("UDP", "HTTPS", "TLS"))
    udp = _unique(u.port for u in uses if u.protocol in ("UDP", "TCP_UDP"))
    https = _https_ports(uses)
    args: dict[str, int] = {}
    if tcp:
        args["Port"] = tcp[0]
    if udp:
        args["UdpPort"] = udp[0]
    if https:
        args["HttpsPort"] = https[0]
    if args.get("Port") == BACKEND_TCP_PORT:
        args["TcpPort"] = 0  # its identity echo would take the HTTP port: off
    groups = ", ".join(dict.fromkeys(f"{u.group} ({u.protocol} {u.port})" for u in uses))
    parts = [f"target of {groups}: serves with the lab's {DEFAULT_ROLE} role"]
    if len(uses) > 1 or udp:  # one use says it all; several say which port serves what
        if "Port" in args:
            parts.append(f"HTTP on {args['Port']}")
        if "UdpPort" in args:
            parts.append(f"UDP on {args['UdpPort']}")
        if "HttpsPort" in args:
            parts.append(f"HTTPS on {args['HttpsPort']}")
    left = tcp[1:] + udp[1:] + https[1:]
    if left:
        parts.append(f"ports {', '.join(str(p) for p in left)} not served (one HTTP port per host)")
    return RoleSpec(DEFAULT_ROLE, frozen_map(args)), "; ".join(parts) + f" ({OPT_OUT})"


def _unique(ports: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(ports))


def _https_ports(uses: list[Use]) -> list[int]:
    """The ports HTTPS target groups (and an NLB's TLS groups) reach an instance on
    (http-backend's HttpsPort)."""
    return _unique(u.port for u in uses if u.protocol in ("HTTPS", "TLS"))


def https_for_own_roles(state: BuildState, uses: dict[str, list[Use]]) -> None:
    """An http-backend the template names without HttpsPort serves HTTPS on the port an
    HTTPS target group reaches it on (the group's protocol asks for it)."""
    for lid, found in uses.items():
        draft = state.instances[lid]
        role, https = draft.role, _https_ports(found)
        if role is None or role.name != DEFAULT_ROLE or not https or "HttpsPort" in role.args:
            continue
        draft.role = RoleSpec(role.name, frozen_map({**role.args, "HttpsPort": https[0]}))


def default_roles(state: BuildState) -> None:
    """Every target instance without a lab role gets http-backend (not one whose template
    says Role: none, nor one with a role of its own)."""
    all_uses = target_uses(state)
    for lid, uses in all_uses.items():
        draft = state.instances[lid]
        if draft.role is not None:
            continue  # its own role, or "none" (opted out)
        draft.role, state.default_roles[lid] = role_for(uses)
    https_for_own_roles(state, all_uses)
    group_default_roles(state)


def group_default_roles(state: BuildState) -> None:
    """Auto Scaling groups' instances serve like targets: a group registered in target groups
    whose launch spec has no role launches http-backend instances on the groups' ports (an
    instance of a group is registered on its target group's port)."""
    tgs = state.extras.get(ELBV2_KEY, {}).get("target_groups", {})
    for lid, group in state.auto_scaling_groups.items():
        if group.launch.role is not None:
            continue
        uses = [
            use
            for tg in group.attached_target_groups
            if tg in tgs and tgs[tg].protocol not in NOT_SERVED
            for use in _group_uses(state, tgs[tg], tgs[tg].port)
        ]
        if not uses:
            continue
        role, why = role_for(uses)
        state.auto_scaling_groups[lid] = replace(group, launch=replace(group.launch, role=role))
        state.default_roles[lid] = why.replace(
            "target of", f"instances launched from {group.launch.logical_id} are targets of", 1
        )


def default_client(state: BuildState) -> None:
    """Internet1 (198.51.100.10) when an internet gateway is attached to a VPC and there is
    no internet client. A gateway attached to nothing reaches nothing, so it adds none."""
    attached = any(igw in state.attachments for igw in state.internet_gateways)
    if not attached or state.clients:
        return
    lid = _free_id(state)
    ip = state.addresses.client(lid, None)
    state.clients[lid] = InternetClient(lid, ip, None, None, None)
    state.types[lid] = CLIENT_TYPE
    state.lab_made[lid] = CLIENT_REASON


def _free_id(state: BuildState) -> str:
    number = 1
    while f"{CLIENT_ID}{number}" in state.types:
        number += 1
    return f"{CLIENT_ID}{number}"
