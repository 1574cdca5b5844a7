"""Stack updates on live traffic (issue 14): an update AWS performs without interruption fails
no request of a load running through it, and a failing update is rolled back to a lab
identical to the one before, without failing a request either.

The lab is the update experiment's stack (testbed.experiments._update_stack: an ALB and an
NLB in front of http-backend instances). Client1 loads the ALB, Client2 the NLB, with a
bounded open-loop load (RATE requests/s for at most 25 to 40 s each) started before the
update and still running after it.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed import naming
from testbed.alb.config import node_files
from testbed.analysis import error_kind, failed
from testbed.errors import LabError
from testbed.experiments import _update_stack as stack
from testbed.experiments._nlb import node_addresses
from testbed.lab import system
from testbed.lab.api import Lab
from testbed.traffic import established_from, run_load

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a real lab)"),
]

RATE = 20.0  # requests per second through each load balancer
HELD = 10  # long-lived flows through the NLB while it enters a new AZ
TIMEOUT_S = 3.0
STACK_TYPE = "AWS::CloudFormation::Stack"
# Counters and ages change between two dumps of the same flow.
VOLATILE = re.compile(r"(duration|n_packets|n_bytes|idle_age|hard_age)=[^,]*, ?")
# state.json keys (and keys of its stacks) every update stamps, whatever it does: when, the
# status and its reason
STAMPED = ("updated", "state", "status", "reason", "stacks")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    path = tmp_path_factory.mktemp("update") / "stack.yaml"
    path.write_text(stack.dump(stack.base_template()))
    with Lab.up(str(path)) as lab:
        for lb, targets in stack.SERVING_AT_START.items():
            lab.wait_healthy(GROUP[lb], targets, timeout=120, lb=lb)
        yield lab


GROUP = {stack.ALB: stack.ALB_GROUP, stack.NLB: stack.NLB_GROUP}


# ---- helpers ---------------------------------------------------------------------------------
def running_template(lab: Lab) -> dict[str, Any]:
    """The template the lab runs now (the last update's, or the one it was created from)."""
    return yaml.safe_load(lab.state["template_text"])


def write(tmp_path: Path, name: str, template: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(stack.dump(template))
    return str(path)


def logs_have(lab: Lab, lb: str, text: str) -> bool:
    """Whether a request for `text` through `lb` was logged: by one of the ALB's nodes (an
    ALB), by one of the instances (an NLB passes requests on unchanged)."""
    if lb == stack.ALB:
        entry = next(x for x in lab.state["load_balancers"] if x["name"] == stack.ALB)
        logs = [node_files(lab.dir, node["host"]).access_log for node in entry["nodes"]]
    else:
        logs = [lab.dir / "hosts" / name / "access.log" for name in stack.BACKENDS]
    return any(log.exists() and text in log.read_text() for log in logs)


def under_load(lab: Lab, seconds: float, action: Callable[[], Any]) -> dict[str, Any]:
    """Run `action` while both load balancers carry a load of at most `seconds` s; the
    action's result (or the exception it raised), when it ran and each load's rows."""
    loads: dict[str, Any] = {}

    # A path of each load's own (under the rule's /api/*): its first logged request is the
    # sign that the load runs, whatever earlier loads logged.
    stamp = time.time_ns()
    markers = {lb: f"/api/load-{stamp}-{lb}" for lb in GROUP}

    def load(lb: str) -> None:
        nodes = node_addresses(lab, lb)
        url = f"http://{nodes[min(nodes)]}{markers[lb]}"
        try:
            loads[lb] = run_load(
                lab,
                stack.CLIENTS[lb],
                url,
                requests=int(RATE * seconds) + 1,
                rate=RATE,
                duration=seconds,
                concurrency=80,
                timeout=TIMEOUT_S,
            )
        except Exception as exc:  # raised in the test's thread below
            loads[lb] = exc

    workers = [threading.Thread(target=load, args=(lb,)) for lb in GROUP]
    for w in workers:
        w.start()
    out: dict[str, Any] = {}
    try:
        for lb, marker in markers.items():
            lab.wait_for(partial(logs_have, lab, lb, marker), 20, f"{lb}'s first logged request")
        out["start"] = time.time()
        try:
            out["result"] = action()
        except Exception as exc:
            out["result"] = exc
        out["end"] = time.time()
    finally:
        for w in workers:
            w.join()
    for lb in GROUP:
        if isinstance(loads[lb], BaseException):
            raise loads[lb]
    out["loads"] = loads
    return out


def assert_no_failed_request(run: dict[str, Any]) -> None:
    """Both loads ran through the whole update, and not one request failed."""
    for lb, rows in run["loads"].items():
        assert len(rows), lb
        # The load was there before the update and still there after it.
        assert rows["start"].min() < run["start"], (lb, "started after the update")
        assert rows["start"].max() > run["end"], (lb, "ended before the update did")
        bad = rows[failed(rows)]
        assert bad.empty, (lb, error_kind(bad).value_counts().to_dict(), bad.head(5))


def lab_flows(lab: Lab) -> dict[str, list[str]]:
    """Every OpenFlow flow and group of the lab's bridges, without counters."""
    out = {}
    for br in system.run(["ovs-vsctl", "list-br"]).stdout.split():
        if not br.startswith(naming.prefix(lab.name)):
            continue
        for what in ("dump-flows", "dump-groups"):
            text = system.run(["ovs-ofctl", "-O", "OpenFlow13", what, br]).stdout
            out[f"{br} {what}"] = sorted(
                VOLATILE.sub("", line).strip() for line in text.splitlines()[1:]
            )
    return out


def registered(lab: Lab) -> list[tuple[str, str, str, str]]:
    """(load balancer, group, target id, port) of every registered target (not its health,
    which moves on its own)."""
    return sorted(
        (t["LoadBalancer"], t["TargetGroup"], t["Target"]["Id"], str(t["Target"].get("Port")))
        for t in lab.targets()
    )


def snapshot(lab: Lab) -> dict[str, Any]:
    """What a rolled-back update must leave as it was: state.json without what every update
    stamps, the flows without counters, the registered targets, the hosts' processes."""
    return {
        "state": {k: v for k, v in lab.state.items() if k not in STAMPED},
        "stacks": [{k: v for k, v in x.items() if k not in STAMPED} for x in lab.stacks()],
        "flows": lab_flows(lab),
        "targets": registered(lab),
    }


def stack_statuses(lab: Lab, since: float) -> list[str]:
    return [e.status for e in lab.events() if e.resource_type == STACK_TYPE and e.time >= since]


# ---- updates that AWS performs without interruption -----------------------------------------


def test_alb_update_under_load_fails_no_request(lab, tmp_path):
    """One update adds two targets, a listener rule, a health-check change and a security
    group rule; the loads through the ALB and the NLB lose nothing."""
    template = running_template(lab)
    for name in ("alb_targets", "alb_rule", "alb_health", "sg_rule"):
        template = stack.BY_NAME[name].apply(template)
    path = write(tmp_path, "alb-update.yaml", template)

    run = under_load(lab, 25.0, lambda: lab.update(path))

    if isinstance(run["result"], Exception):
        raise run["result"]
    assert run["result"]["changes"]
    assert lab.state["state"] == "UPDATE_COMPLETE"
    assert_no_failed_request(run)
    # What the update was to do, it did.
    states = lab.target_states(stack.ALB_GROUP, lb=stack.ALB)
    assert set(states) == set(stack.FIRST_TARGETS) | set(stack.ADDED_TARGETS), states
    plan = lab.plan
    alb = next(x for x in plan.load_balancers if x.name == stack.ALB)
    assert [r.name for lst in alb.listeners for r in lst.rules] == ["ApiRule"]
    assert alb.target_group(stack.ALB_GROUP).health.interval_s == 10
    rules = plan.security_group(stack.INSTANCE_GROUP).ingress
    assert any(r.from_port == 8443 == r.to_port for r in rules), rules
    # The new targets take requests once healthy (3 checks 10 s apart now).
    lab.wait_healthy(stack.ALB_GROUP, stack.ADDED_TARGETS, timeout=60, lb=stack.ALB)
    rows = run_load(
        lab, "Client1", f"http://{min(node_addresses(lab, stack.ALB).values())}/", requests=40
    )
    assert set(stack.ADDED_TARGETS) <= set(rows["backend"]), rows["backend"].value_counts()


def test_nlb_new_az_and_targets_under_load_fail_no_request(lab, tmp_path):
    """The NLB enters AZ b (a new node) and takes two more targets: WebB1, "unused" while
    the NLB was not in its AZ, comes into use; the loads lose nothing."""
    template = running_template(lab)
    for name in ("nlb_targets", "nlb_new_az"):
        template = stack.BY_NAME[name].apply(template)
    path = write(tmp_path, "nlb-update.yaml", template)
    assert lab.target_state(stack.NLB_GROUP, "WebB1", lb=stack.NLB) == "unused"
    lab.wait_healthy(stack.NLB_ECHO_GROUP, ["WebA1"], timeout=60, lb=stack.NLB)

    # Long-lived flows through the NLB's echo listener, held across the update: AWS keeps an
    # established flow on its target whatever targets and AZs are added.
    held: dict[str, Any] = {}
    client = lab.host("Client2")
    nodes = node_addresses(lab, stack.NLB)

    def hold() -> None:
        held["rows"] = run_load(
            lab,
            "Client2",
            f"tcp://{nodes[min(nodes)]}:{stack.ECHO_PORT}",
            requests=HELD,
            concurrency=HELD,
            hold=20.0,
            timeout=TIMEOUT_S,
        )

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        backends = [lab.host(name) for name in stack.BACKENDS]
        lab.wait_for(
            lambda: established_from(backends, stack.ECHO_PORT, client.ip) >= HELD,
            15,
            f"{HELD} held flows established",
        )
        run = under_load(lab, 25.0, lambda: lab.update(path))
    finally:
        holder.join()

    if isinstance(run["result"], Exception):
        raise run["result"]
    assert lab.state["state"] == "UPDATE_COMPLETE"
    assert_no_failed_request(run)
    flows = held["rows"]
    assert len(flows) == HELD
    assert not failed(flows).any(), flows[failed(flows)].head()
    ends = flows["start"] + flows["latency_ms"] / 1000.0
    assert (flows["start"] < run["start"]).all()
    assert (ends > run["end"]).all()  # each was held across the whole update
    assert set(flows["backend"]) == {"WebA1"}  # the only target in use when they began
    assert set(node_addresses(lab, stack.NLB)) == {"us-east-1a", "us-east-1b"}
    everyone = (*stack.FIRST_TARGETS, *stack.ADDED_TARGETS)
    lab.wait_healthy(stack.NLB_GROUP, everyone, timeout=90, lb=stack.NLB)


def test_replaced_instance_drains_before_it_leaves(lab, tmp_path):
    """WebB1 gets a new PrivateIpAddress (AWS: Replacement): its targets drain for the
    groups' deregistration delay before the old instance goes; no request fails."""
    template = stack.BY_NAME["replace"].apply(running_template(lab))
    path = write(tmp_path, "replace.yaml", template)
    since = time.time()

    run = under_load(lab, 40.0, lambda: lab.update(path))

    if isinstance(run["result"], Exception):
        raise run["result"]
    assert lab.state["state"] == "UPDATE_COMPLETE"
    assert_no_failed_request(run)
    events = [e for e in lab.events() if e.time >= since]
    gone = next(
        e.time
        for e in events
        if e.logical_id == stack.REPLACED
        and e.resource_type == "AWS::EC2::Instance"
        and e.status == "DELETE_COMPLETE"
    )
    key = f"{stack.REPLACED}:{stack.PORT}"
    for group in GROUP.values():
        moves = {
            ev["new"]: ev["time"]
            for ev in lab.target_events(since)
            if ev["target"] == key and ev["target_group"] == group
        }
        assert "draining" in moves, (group, moves)
        # Removed ("" in the target events) once the delay is over, before the old one goes.
        assert moves["draining"] + stack.DRAIN_S - 0.5 <= moves[""] <= gone, (group, moves)
    assert lab.plan.host(stack.REPLACED).ip == stack.NEW_ADDRESS
    lab.wait_healthy(stack.ALB_GROUP, [stack.REPLACED], timeout=90, lb=stack.ALB)


# ---- a failing update ------------------------------------------------------------------------


@pytest.mark.parametrize("step", ["failing", "failing_signal"])
def test_failing_update_rolls_back_to_an_identical_lab(lab, tmp_path, step):
    """An added instance that fails: a firewall whose nft rule has a typo (its role never
    starts), or an instance registered in both groups whose UserData sends a failure signal
    to its CreationPolicy. CREATE_FAILED, UPDATE_ROLLBACK_COMPLETE, the lab exactly as
    before, no request lost."""
    template = stack.BY_NAME[step].apply(running_template(lab))
    path = write(tmp_path, f"{step}.yaml", template)
    before = snapshot(lab)
    since = time.time()

    run = under_load(lab, 30.0, lambda: lab.update(path))

    assert isinstance(run["result"], LabError), run["result"]
    assert "rolled back" in str(run["result"])
    assert lab.state["state"] == "UPDATE_ROLLBACK_COMPLETE"
    statuses = stack_statuses(lab, since)
    assert statuses[0] == "UPDATE_IN_PROGRESS"
    assert "UPDATE_ROLLBACK_IN_PROGRESS" in statuses
    assert statuses[-1] == "UPDATE_ROLLBACK_COMPLETE"
    failed_resources = [
        e.logical_id
        for e in lab.events()
        if e.time >= since and e.status in ("CREATE_FAILED", "UPDATE_FAILED")
    ]
    assert stack.FAILING in failed_resources
    assert stack.FAILING not in {h.name for h in lab.hosts}
    assert_no_failed_request(run)
    after = snapshot(lab)
    assert after["targets"] == before["targets"]
    assert after["state"] == before["state"]
    assert after["stacks"] == before["stacks"]
    assert after["flows"] == before["flows"]
