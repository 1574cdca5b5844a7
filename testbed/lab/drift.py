"""Drift of a running stack from its template, as AWS's detect-stack-drift words it: pure.

`compare(expected, actual)` takes what the template says (Expected: from the stack's model
and the lab's plan) and what the lab runs (Actual: read by testbed.lab.drift_live, or a
fake in the unit tests) and returns AWS's shapes: describe-stack-drift-detection-status
(StackDriftStatus IN_SYNC | DRIFTED, DriftedStackResourceCount) and
describe-stack-resource-drifts (StackResourceDrifts: StackResourceDriftStatus IN_SYNC |
MODIFIED | DELETED | NOT_CHECKED, PropertyDifferences with PropertyPath, ExpectedValue,
ActualValue, DifferenceType ADD | REMOVE | NOT_EQUAL).

What is compared (AWS: "only resource properties explicitly defined in the stack template"):
  AWS::ElasticLoadBalancingV2::TargetGroup   Targets (Id, Port), when the template lists
      them: a target deregistered by hand is REMOVE /Targets/N, one registered by hand ADD.
      A draining target counts as gone (it is leaving). Groups without Targets in the
      template (Auto Scaling fills them) are IN_SYNC whatever is registered, as on AWS.
  AWS::ElasticLoadBalancing::LoadBalancer   Instances, the same way (/Instances/N).
  AWS::EC2::Instance   DELETED when its host is gone; MODIFIED when its role (Metadata
      Lab.Role) no longer runs or no longer listens on its ports (/Metadata/Lab/Role).
  AWS::ElasticLoadBalancingV2::ListenerRule   Conditions as every ALB node's HAProxy runs
      them (its runtime API: `add acl`, `del acl`, `clear acl`), against its haproxy.cfg
      written from the template: /Conditions/N/<Field>Config/Values/M.
Everything else is NOT_CHECKED (listed, never counted as drift).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

IN_SYNC, MODIFIED, DELETED, NOT_CHECKED = "IN_SYNC", "MODIFIED", "DELETED", "NOT_CHECKED"
DRIFTED = "DRIFTED"
ADD, REMOVE, NOT_EQUAL = "ADD", "REMOVE", "NOT_EQUAL"
STATUSES = (IN_SYNC, MODIFIED, DELETED, NOT_CHECKED)

INSTANCE = "AWS::EC2::Instance"
TARGET_GROUP = "AWS::ElasticLoadBalancingV2::TargetGroup"
LISTENER_RULE = "AWS::ElasticLoadBalancingV2::ListenerRule"
CLASSIC_LB = "AWS::ElasticLoadBalancing::LoadBalancer"
CHECKED_TYPES = (INSTANCE, TARGET_GROUP, LISTENER_RULE, CLASSIC_LB)
# Why the lab does not compare a type (NOT_CHECKED's Reason), by type; others: NOT_READ.
NOT_READ = "the lab does not read this type back"
WHY_NOT = {
    "AWS::EC2::SecurityGroup": "the controller enforces its rules as flows and does not "
    "report the rules behind them",
    "AWS::EC2::SecurityGroupIngress": "the controller does not report the rules it enforces",
    "AWS::EC2::SecurityGroupEgress": "the controller does not report the rules it enforces",
    "AWS::ElasticLoadBalancingV2::Listener": "its default actions are not read back",
    "AWS::ElasticLoadBalancingV2::LoadBalancer": "its attributes are not read back",
}

# A condition's Field -> the key of its values in AWS's *Config form.
CONDITION_CONFIG = {
    "path-pattern": "PathPatternConfig",
    "host-header": "HostHeaderConfig",
    "http-header": "HttpHeaderConfig",
    "http-request-method": "HttpRequestMethodConfig",
    "query-string": "QueryStringConfig",
    "source-ip": "SourceIpConfig",
}
ROLE_PATH = "/Metadata/Lab/Role"
LISTENING = "listening"
STOPPED = "stopped"  # the role's process is gone


# ---- what the template says ---------------------------------------------------------------
@dataclass(frozen=True)
class Resource:
    """One resource of the stack: its ids and type (creation order in Expected.resources)."""

    logical_id: str
    resource_type: str
    physical_id: str = ""


@dataclass(frozen=True)
class ExpectedGroup:
    """A target group (or a classic load balancer's instances): its name in the lab plan,
    and the template's Targets as (Id, Port) (None: the template lists no Targets, so they
    are not compared). prop: the property, Targets (Id and Port) or a classic load
    balancer's Instances (instance ids)."""

    plan_name: str
    targets: tuple[tuple[str, int], ...] | None
    prop: str = "Targets"


@dataclass(frozen=True)
class ExpectedInstance:
    """An instance: its lab host, its role (None: runs none) and the TCP ports the role
    listens on once ready."""

    host: str
    role: str | None
    ports: tuple[int, ...] = ()


@dataclass(frozen=True)
class ExpectedCondition:
    """One condition of a rule: its Field and Values as the template gives them."""

    field: str
    values: tuple[str, ...]
    key: str | None = None  # http-header's name
    pairs: tuple[tuple[str | None, str], ...] = ()  # query-string (Key, Value)


@dataclass(frozen=True)
class ExpectedRule:
    """An ALB listener rule: its name in the plan (its HAProxy ACLs are <name>_c<N>), its
    load balancer and conditions."""

    plan_name: str
    load_balancer: str
    conditions: tuple[ExpectedCondition, ...]


@dataclass(frozen=True)
class Expected:
    stack_name: str
    stack_id: str
    resources: tuple[Resource, ...]
    groups: Mapping[str, ExpectedGroup] = field(default_factory=dict)  # by logical id
    instances: Mapping[str, ExpectedInstance] = field(default_factory=dict)
    rules: Mapping[str, ExpectedRule] = field(default_factory=dict)


# ---- what the lab runs ----------------------------------------------------------------------
@dataclass(frozen=True)
class HostState:
    """What runs on an instance's host: exists (its namespace is there), role: LISTENING,
    STOPPED, or "not listening on 80, 8081" (its process runs, its ports are closed)."""

    exists: bool
    role: str = LISTENING


@dataclass(frozen=True)
class NodeAcls:
    """One ALB node's ACLs by name: as written in its haproxy.cfg (`file`) and as its
    running HAProxy has them (`running`, from `show acl`). error: why they could not be read."""

    file: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    running: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class Actual:
    # plan group name -> registered (Id, Port, State); a group missing: not readable
    targets: Mapping[str, Sequence[tuple[str, int, str]]] = field(default_factory=dict)
    hosts: Mapping[str, HostState] = field(default_factory=dict)  # by host name
    # load balancer -> node -> its ACLs
    acls: Mapping[str, Mapping[str, NodeAcls]] = field(default_factory=dict)
    targets_error: str | None = None  # why the registry could not be read


# ---- the comparison -------------------------------------------------------------------------
def difference(path: str, expected: Any, actual: Any, kind: str, **lab: Any) -> dict[str, Any]:
    """One PropertyDifference (values as JSON text, as AWS gives them; lab fields after)."""
    return {
        "PropertyPath": path,
        "ExpectedValue": _text(expected),
        "ActualValue": _text(actual),
        "DifferenceType": kind,
        **lab,
    }


def _text(value: Any) -> str:
    if value is None:
        return "null"
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def compare(expected: Expected, actual: Actual, now: float | None = None) -> dict[str, Any]:
    """The stack's drift: describe-stack-drift-detection-status's fields, and
    StackResourceDrifts (every resource, NOT_CHECKED ones included) as
    describe-stack-resource-drifts gives them."""
    stamp = _iso(time.time() if now is None else now)
    drifts = []
    for res in expected.resources:
        status, diffs, exp_props, act_props, reason = _resource(expected, actual, res)
        row: dict[str, Any] = {
            "StackId": expected.stack_id,
            "LogicalResourceId": res.logical_id,
            "PhysicalResourceId": res.physical_id,
            "ResourceType": res.resource_type,
        }
        if exp_props is not None and status != DELETED:
            row["ExpectedProperties"] = json.dumps(exp_props, separators=(",", ":"))
            row["ActualProperties"] = json.dumps(act_props, separators=(",", ":"))
        row["PropertyDifferences"] = diffs
        row["StackResourceDriftStatus"] = status
        row["Timestamp"] = stamp
        if reason:
            row["Reason"] = reason  # the lab's: why NOT_CHECKED / what was not readable
        drifts.append(row)
    drifted = sum(1 for d in drifts if d["StackResourceDriftStatus"] in (MODIFIED, DELETED))
    return {
        "StackId": expected.stack_id,
        "StackName": expected.stack_name,
        "StackDriftDetectionId": str(uuid.uuid4()),
        "StackDriftStatus": DRIFTED if drifted else IN_SYNC,
        "DetectionStatus": "DETECTION_COMPLETE",
        "DriftedStackResourceCount": drifted,
        "Timestamp": stamp,
        "StackResourceDrifts": drifts,
    }


def _iso(t: float) -> str:
    ms = round((t % 1) * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{ms:03d}Z"


Checked = tuple[str, list[dict[str, Any]], Any, Any, str | None]


def _resource(expected: Expected, actual: Actual, res: Resource) -> Checked:
    lid = res.logical_id
    if res.resource_type in (TARGET_GROUP, CLASSIC_LB) and lid in expected.groups:
        return _group(expected.groups[lid], actual)
    if res.resource_type == INSTANCE and lid in expected.instances:
        return _instance(expected.instances[lid], actual)
    if res.resource_type == LISTENER_RULE and lid in expected.rules:
        return _rule(expected.rules[lid], actual)
    if res.resource_type in CHECKED_TYPES:
        return NOT_CHECKED, [], None, None, "not in the lab's plan"
    return NOT_CHECKED, [], None, None, WHY_NOT.get(res.resource_type, NOT_READ)


def _group(group: ExpectedGroup, actual: Actual) -> Checked:
    prop = group.prop
    if group.targets is None:
        return IN_SYNC, [], {}, {}, f"the template lists no {prop} (not compared, as on AWS)"
    rows = actual.targets.get(group.plan_name)
    if rows is None:
        why = actual.targets_error or f"the lab has no target group {group.plan_name}"
        return NOT_CHECKED, [], None, None, why
    want: list[Any]
    have: list[Any]
    if prop == "Instances":
        want = [i for i, _p in group.targets]
        have = [i for i, _p, state in rows if state != "draining"]
    else:
        want = [{"Id": i, "Port": p} for i, p in group.targets]
        have = [{"Id": i, "Port": p} for i, p, state in rows if state != "draining"]
    diffs = _list_diffs(f"/{prop}", want, have)
    status = MODIFIED if diffs else IN_SYNC
    return status, diffs, {prop: want}, {prop: _ordered(want, have)}, None


def _ordered(want: list[Any], have: list[Any]) -> list[Any]:
    """`have` with the expected items first, in the template's order (stable output)."""
    return [w for w in want if w in have] + [h for h in have if h not in want]


def _list_diffs(path: str, want: list[Any], have: list[Any]) -> list[dict[str, Any]]:
    """An unordered list property: REMOVE /path/N for the template's N-th item that is gone,
    ADD /path/M for an item the template does not have (M counts on after the template's)."""
    diffs = [
        difference(f"{path}/{i}", w, None, REMOVE) for i, w in enumerate(want) if w not in have
    ]
    extra = [h for h in have if h not in want]
    diffs += [difference(f"{path}/{len(want) + i}", None, h, ADD) for i, h in enumerate(extra)]
    return diffs


def _instance(inst: ExpectedInstance, actual: Actual) -> Checked:
    host = actual.hosts.get(inst.host)
    if host is None or not host.exists:
        return DELETED, [], None, None, f"host {inst.host} is gone"
    if inst.role is None:
        return IN_SYNC, [], {}, {}, None
    want = {"Role": inst.role, "State": LISTENING}
    have = {"Role": inst.role, "State": host.role}
    if host.role == LISTENING:
        return IN_SYNC, [], want, have, None
    diff = difference(f"{ROLE_PATH}/State", LISTENING, host.role, NOT_EQUAL)
    return MODIFIED, [diff], want, have, None


def _rule(rule: ExpectedRule, actual: Actual) -> Checked:
    nodes = actual.acls.get(rule.load_balancer)
    if not nodes:
        return NOT_CHECKED, [], None, None, f"no node of {rule.load_balancer} could be read"
    errors = [f"{node}: {a.error}" for node, a in nodes.items() if a.error]
    if errors:
        return NOT_CHECKED, [], None, None, "; ".join(errors)
    want = [_condition_props(c) for c in rule.conditions]
    # path -> [difference, the nodes that have it]
    found: dict[tuple[str, str, str, str], list[str]] = {}
    have_by_node: dict[str, list[dict[str, Any]]] = {}
    for node, acls in sorted(nodes.items()):
        have_by_node[node] = []
        for n, cond in enumerate(rule.conditions):
            acl = f"{rule.plan_name}_c{n}"
            diffs, values = _condition_diffs(n, cond, acls.file.get(acl), acls.running.get(acl))
            have_by_node[node].append(_condition_props(cond, values))
            for d in diffs:
                key = (d["PropertyPath"], d["ExpectedValue"], d["ActualValue"], d["DifferenceType"])
                found.setdefault(key, []).append(node)
    diffs = []
    for (path, exp, act, kind), on in found.items():
        d = {"PropertyPath": path, "ExpectedValue": exp, "ActualValue": act, "DifferenceType": kind}
        d["Nodes"] = on  # the lab's: which ALB nodes run it so
        diffs.append(d)
    first = next(iter(have_by_node.values()))
    status = MODIFIED if diffs else IN_SYNC
    return status, diffs, {"Conditions": want}, {"Conditions": first}, None


def _condition_diffs(
    n: int,
    cond: ExpectedCondition,
    file: tuple[str, ...] | None,
    running: tuple[str, ...] | None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Differences of condition `n` on one node, and the values the node runs (the
    template's value where the pattern is the file's, HAProxy's pattern otherwise).

    The node's haproxy.cfg has one pattern per template value, in the template's order, so
    the file's pattern M stands for Values/M."""
    base = f"/Conditions/{n}/{CONDITION_CONFIG.get(cond.field, 'Values')}/Values"
    values = _aws_values(cond)
    if file is None or len(file) != len(values):
        # The running config is not the template's (edited and reloaded by hand).
        written = "missing" if file is None else f"{len(file)} patterns"
        diff = difference(
            f"/Conditions/{n}", values, f"haproxy.cfg: {written}", NOT_EQUAL if file else REMOVE
        )
        return [diff], list(running or ())
    running = running if running is not None else ()
    diffs = [
        difference(f"{base}/{m}", values[m], None, REMOVE)
        for m, pattern in enumerate(file)
        if pattern not in running
    ]
    extra = [p for p in running if p not in file]
    diffs += [difference(f"{base}/{len(values) + i}", None, p, ADD) for i, p in enumerate(extra)]
    have = [values[m] for m, p in enumerate(file) if p in running] + extra
    return diffs, have


def _aws_values(cond: ExpectedCondition) -> list[Any]:
    if cond.field == "query-string":
        pairs = cond.pairs or tuple((None, v) for v in cond.values)
        return [{"Key": k, "Value": v} if k is not None else {"Value": v} for k, v in pairs]
    return list(cond.values)


def _condition_props(cond: ExpectedCondition, values: list[Any] | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"Values": _aws_values(cond) if values is None else values}
    if cond.field == "http-header":
        config = {"HttpHeaderName": cond.key, **config}
    return {"Field": cond.field, CONDITION_CONFIG.get(cond.field, "Config"): config}


# ---- reading HAProxy's answers (pure text) ----------------------------------------------
def parse_show_acl(text: str) -> list[tuple[int, int]]:
    """(acl id, line in the config file) of each ACL `show acl` lists from a file."""
    out = []
    for line in text.splitlines():
        if line.startswith("#") or " line " not in line or " file '" not in line:
            continue
        head, _, rest = line.partition(" ")
        try:
            number = int(rest.rsplit(" line ", 1)[1].split(".")[0].split()[0])
            out.append((int(head), number))
        except (ValueError, IndexError):
            continue
    return out


def parse_acl_entries(text: str) -> tuple[str, ...]:
    """The patterns `show acl #ID` lists (each line: address, space, pattern)."""
    return tuple(line.split(" ", 1)[1] for line in text.splitlines() if " " in line)


def config_acls(config: str) -> dict[int, tuple[str, tuple[str, ...]]]:
    """{line number: (acl name, patterns)} of the named ACLs of a haproxy.cfg as
    testbed.alb.config writes them (`acl NAME FETCH [-m reg] [-i] 'p1' 'p2'`)."""
    out = {}
    for number, line in enumerate(config.splitlines(), 1):
        words = _split(line)
        if len(words) >= 3 and words[0] == "acl":
            out[number] = (words[1], _patterns(words[3:]))
    return out


def _patterns(words: list[str]) -> tuple[str, ...]:
    """The patterns after an ACL's fetch: flags (-i, -m METHOD) left out."""
    out, skip = [], False
    for w in words:
        if skip:
            skip = False
        elif w == "-m":
            skip = True
        elif w == "--":
            continue
        elif not (w.startswith("-") and len(w) == 2):
            out.append(w)
    return tuple(out)


def _split(line: str) -> list[str]:
    """HAProxy's words: blanks separate, quotes keep a word whole (nothing escapes in single
    quotes; a backslash does in double quotes and outside quotes)."""
    words: list[str] = []
    cur: list[str] | None = None
    quote = ""  # the open quote: ' (nothing escapes) or " (a backslash escapes)
    i = 0
    while i < len(line):
        ch = line[i]
        if quote:
            assert cur is not None
            if ch == quote:
                quote = ""
            elif ch == "\\" and quote == '"' and i + 1 < len(line):
                cur.append(line[i + 1])
                i += 1
            else:
                cur.append(ch)
        elif ch in "'\"":
            quote = ch
            cur = cur if cur is not None else []
        elif ch == "\\" and i + 1 < len(line):
            cur = cur if cur is not None else []
            cur.append(line[i + 1])
            i += 1
        elif ch in " \t":
            if cur is not None:
                words.append("".join(cur))
                cur = None
        elif ch == "#" and cur is None:
            break
        else:
            cur = cur if cur is not None else []
            cur.append(ch)
        i += 1
    if cur is not None:
        words.append("".join(cur))
    return words
