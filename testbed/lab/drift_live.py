"""Reads a running lab for drift detection: what its template says (testbed.lab.drift.Expected)
and what it runs (Actual), then compares them (testbed.lab.drift.compare).

    report = detect(Lab("alb"))                 # the lab's first stack
    report = detect(Lab("web"), stack="extra")  # a stack added with `testbed up --into`

Expected comes from the stack's template as the lab keeps it (its text, parameters and
region: testbed.lab.stack_source; a stack added to the lab: its events' resources) and from
the lab's plan (target groups, rules, hosts). Actual comes from the holder's target registry
(op "targets"), the process journal and /proc (is a role running, listening), the host
namespaces (/run/netns) and each ALB node's HAProxy runtime API (`show acl`) next to the
haproxy.cfg the node wrote.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testbed import naming
from testbed.errors import BadInput, TestbedError
from testbed.lab import drift
from testbed.lab.hostexec import host_dir
from testbed.lab.procs import ProcessJournal
from testbed.lab.programs import listening_ports, ready_ports, running_role
from testbed.lab.stack_source import running_template
from testbed.lab.state import holder_alive, read_state
from testbed.model import load_model_text
from testbed.model.elbv2_types import elbv2_sections
from testbed.model.resources.registry import REGISTRY
from testbed.plan.network import NetworkPlan
from testbed.template.intrinsics import pseudo_parameters
from testbed.template.yaml_loader import load_text

if TYPE_CHECKING:  # the Lab API calls this module: no import cycle at run time
    from testbed.lab.api import Lab

CONFIG_NAME = "haproxy.cfg"  # testbed.alb.config.node_files: hosts/<node>/haproxy.cfg
CLI_TIMEOUT = 3.0
NETNS_DIR = Path("/run/netns")
GONE = ("DELETE_COMPLETE", "DELETE_IN_PROGRESS")


def detect(lab: Lab, stack: str | None = None, now: float | None = None) -> dict[str, Any]:
    """The drift of `stack` of `lab` (default: the lab's first stack, named after it).
    BadInput (nothing read) when there is no such running lab or stack."""
    state = read_state(lab.dir)
    if state is None:
        raise BadInput(f"no lab named {lab.name!r}", hint="testbed status lists the labs")
    if not holder_alive(state):
        raise BadInput(f"lab {lab.name!r} is not running", hint="testbed status lists the labs")
    plan = lab.plan
    expected = expected_state(lab, plan, stack)
    return drift.compare(expected, actual_state(lab, plan, expected), now)


# ---- expected ---------------------------------------------------------------------------
def expected_state(lab: Lab, plan: NetworkPlan, stack: str | None = None) -> drift.Expected:
    """What the template of `stack` says, in the lab's names."""
    state = lab.state
    names = stack_names(lab.name, state)
    stack = stack or names[0][0]
    qualifier = dict(names).get(stack)
    if qualifier is None:
        raise BadInput(
            f"lab {lab.name} has no stack {stack!r}",
            hint=f"its stacks: {', '.join(n for n, _q in names)} (testbed stacks {lab.name})",
        )
    region = str(state.get("region") or "us-east-1")
    stack_id = pseudo_parameters(stack, region)["AWS::StackId"]
    if not qualifier:
        resources, declared = _first_stack(lab.name)
    else:
        resources, declared = _added_stack(lab, stack, qualifier)
    types = {r.logical_id: r.resource_type for r in resources}
    return drift.Expected(
        stack_name=stack,
        stack_id=stack_id,
        resources=tuple(resources),
        groups=_groups(plan, qualifier, types, declared),
        instances=_instances(lab.name, plan, qualifier, types),
        rules=_rules(plan, qualifier, types),
    )


def stack_names(lab: str, state: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, qualifier) of the lab's stacks in creation order (state.json's "stacks"; a lab
    without them has one stack named after it)."""
    records = state.get("stacks") or [{"name": lab, "qualifier": ""}]
    return [(r["name"], r.get("qualifier") or "") for r in records]


def _first_stack(lab: str) -> tuple[list[drift.Resource], set[str]]:
    """The lab's first stack: its resources from its model, and the target groups whose
    template lists Targets."""
    source = running_template(lab)
    model = load_model_text(
        source.text,
        filename=source.path,
        params=source.params,
        stack_name=lab,
        region=source.region,
    )
    arns = {
        lid: getattr(obj, "arn", "")
        for section in elbv2_sections(model).values()
        for lid, obj in section.items()
    }
    resources = [
        drift.Resource(
            lid,
            model.resource_types[lid],
            arns.get(lid) or _physical(model.resource_types[lid], lid, ""),
        )
        for lid in model.creation_order
        if lid in model.resource_types
    ]
    return resources, declared_targets(source.text, source.path)


def _added_stack(lab: Lab, stack: str, qualifier: str) -> tuple[list[drift.Resource], set[str]]:
    """A stack added to the lab: its resources as its events name them (not deleted)."""
    last: dict[str, tuple[str, str]] = {}
    for ev in lab.events():
        if ev.stack == stack and ev.logical_id != stack:
            last[ev.logical_id] = (ev.resource_type, ev.status)
    resources = [
        drift.Resource(lid, rtype, _physical(rtype, lid, qualifier))
        for lid, (rtype, status) in last.items()
        if status not in GONE
    ]
    return resources, set()  # added stacks have no load balancers (yet)


def _physical(resource_type: str, lid: str, qualifier: str) -> str:
    known = REGISTRY.get(resource_type)
    if known is None or known.ref_value is not None:
        return qualifier + lid
    return known.physical_id(lid, qualifier)


GROUP_PROPS = {drift.TARGET_GROUP: "Targets", drift.CLASSIC_LB: "Instances"}


def declared_targets(text: str, filename: str) -> set[str]:
    """Logical ids of target groups whose template gives Targets, and of classic load
    balancers whose template gives Instances (AWS compares only what a template sets)."""
    doc = load_text(text, filename)
    found = set()
    for lid, decl in (doc.get("Resources") or {}).items():
        if not isinstance(decl, dict):
            continue
        props = decl.get("Properties")
        prop = GROUP_PROPS.get(str(decl.get("Type")))
        if prop and isinstance(props, dict) and prop in props:
            found.add(lid)
    return found


def _groups(
    plan: NetworkPlan, qualifier: str, types: dict[str, str], declared: set[str]
) -> dict[str, drift.ExpectedGroup]:
    out = {}
    for lb in plan.load_balancers:
        for tg in lb.target_groups:
            lid = _own(tg.name, qualifier)
            prop = GROUP_PROPS.get(types.get(lid or "", ""))
            if lid is None or prop is None or lid in out:
                continue
            targets = tuple((t.id, t.port) for t in tg.targets) if lid in declared else None
            out[lid] = drift.ExpectedGroup(tg.name, targets, prop)
    return out


def _instances(
    lab: str, plan: NetworkPlan, qualifier: str, types: dict[str, str]
) -> dict[str, drift.ExpectedInstance]:
    out = {}
    for h in plan.hosts:
        lid = _own(h.name, qualifier)
        if lid is None or types.get(lid) != drift.INSTANCE:
            continue
        try:
            ports = tuple(sorted(ready_ports(lab, h)))
        except ValueError:
            ports = ()
        role = h.role if h.role not in (None, "none") else None
        out[lid] = drift.ExpectedInstance(h.name, role, ports)
    return out


def _rules(
    plan: NetworkPlan, qualifier: str, types: dict[str, str]
) -> dict[str, drift.ExpectedRule]:
    out = {}
    for lb in plan.load_balancers:
        if lb.type != "application":
            continue
        for listener in lb.listeners:
            for rule in listener.rules:
                lid = _own(rule.name, qualifier)
                if lid is None or types.get(lid) != drift.LISTENER_RULE:
                    continue
                conditions = tuple(
                    drift.ExpectedCondition(c.field, tuple(c.values), c.key, tuple(c.pairs))
                    for c in rule.conditions
                )
                out[lid] = drift.ExpectedRule(rule.name, lb.name, conditions)
    return out


def _own(plan_name: str, qualifier: str) -> str | None:
    """The logical id of a plan name of the stack with `qualifier` (None: another stack's)."""
    if qualifier:
        return plan_name[len(qualifier) :] if plan_name.startswith(qualifier) else None
    return None if "." in plan_name else plan_name


# ---- actual -----------------------------------------------------------------------------
def actual_state(lab: Lab, plan: NetworkPlan, expected: drift.Expected) -> drift.Actual:
    """What the lab runs of what `expected` names."""
    targets: dict[str, list[tuple[str, int, str]]] = {}
    error = None
    if expected.groups:
        try:
            for row in lab.targets():
                targets.setdefault(row["TargetGroup"], []).append(
                    (row["Target"]["Id"], int(row["Target"]["Port"]), row["TargetHealth"]["State"])
                )
        except TestbedError as exc:
            error = f"the holder did not answer: {exc}"
        if error is None:
            for g in expected.groups.values():
                targets.setdefault(g.plan_name, [])
    return drift.Actual(
        targets=targets,
        hosts=_hosts(lab, plan, expected),
        acls=_acls(lab, plan, expected),
        targets_error=error,
    )


def _hosts(lab: Lab, plan: NetworkPlan, expected: drift.Expected) -> dict[str, drift.HostState]:
    listed = {h["name"] for h in lab.state.get("hosts", [])}
    journal = ProcessJournal(lab.dir)
    by_name = {h.name: h for h in plan.hosts}
    out = {}
    for inst in expected.instances.values():
        hp = by_name.get(inst.host)
        exists = (
            hp is not None
            and inst.host in listed
            and (NETNS_DIR / naming.netns_name(lab.name, inst.host)).exists()
        )
        if not exists or hp is None or inst.role is None:
            out[inst.host] = drift.HostState(exists)
            continue
        running = running_role(journal, hp)
        if not running:
            out[inst.host] = drift.HostState(True, drift.STOPPED)
            continue
        missing = sorted(set(inst.ports) - listening_ports(running[0].pid))
        role = (
            drift.LISTENING
            if not missing
            else "not listening on " + ", ".join(str(p) for p in missing)
        )
        out[inst.host] = drift.HostState(True, role)
    return out


def _acls(
    lab: Lab, plan: NetworkPlan, expected: drift.Expected
) -> dict[str, dict[str, drift.NodeAcls]]:
    wanted = {r.load_balancer for r in expected.rules.values()}
    out: dict[str, dict[str, drift.NodeAcls]] = {}
    for lb in plan.load_balancers:
        if lb.name in wanted:
            out[lb.name] = {n.host: node_acls(host_dir(lab.name, n.host)) for n in lb.nodes}
    return out


def node_acls(node_dir: Path) -> drift.NodeAcls:
    """One ALB node's ACLs: in its haproxy.cfg, and in its running HAProxy."""
    config_path = node_dir / CONFIG_NAME
    try:
        config = config_path.read_text()
    except OSError as exc:
        return drift.NodeAcls(error=f"cannot read {config_path}: {exc.strerror}")
    by_line = drift.config_acls(config)
    sock = stats_socket(config)
    if sock is None:
        return drift.NodeAcls(error=f"{config_path} names no stats socket")
    try:
        running = {}
        for acl_id, line in drift.parse_show_acl(haproxy_cli(sock, "show acl")):
            if line in by_line:
                name = by_line[line][0]
                running[name] = drift.parse_acl_entries(haproxy_cli(sock, f"show acl #{acl_id}"))
    except OSError as exc:
        return drift.NodeAcls(error=f"HAProxy does not answer on {sock}: {exc}")
    return drift.NodeAcls(file=dict(by_line.values()), running=running)


def stats_socket(config: str) -> str | None:
    """The runtime API socket a haproxy.cfg names (`stats socket PATH ...`)."""
    for line in config.splitlines():
        words = line.split()
        if words[:2] == ["stats", "socket"] and len(words) > 2:
            return words[2]
    return None


def haproxy_cli(path: str, command: str, timeout: float = CLI_TIMEOUT) -> str:
    """One command on a HAProxy stats socket, its whole answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")
