"""Putting a module's lab back the way a test found it, so that tests pass in any order.

    with restoring(lab):            # target registrations and states as they are now
        lab.host("WebA1").fault("refuse")
        lab.deregister("WebTargets", "WebB2")
        ...                        # assertions
    # here: faults cleared, WebB2 registered again, every target back in its state

A test that changes its lab does it inside `restoring`; the block's exception, if any, is
what the test reports (a failed restore is chained to it).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from testbed.lab.api import REMOVED, Lab
from testbed.lab.events import EventLog
from testbed.lab.procs import ProcessJournal
from testbed.lab.programs import host_env, running_role
from testbed.lab.services import ServiceContext, snmpd

RESTORE_TIMEOUT = 90.0  # a drain (the tests' delays are short) plus health checks


@dataclass(frozen=True)
class TargetKey:
    lb: str
    tg: str
    target: str  # instance name (without "i-") or IP address
    port: int


def target_states(lab: Lab) -> dict[TargetKey, str]:
    """Every registered target of every group, with its state."""
    if not lab.plan.load_balancers:
        return {}  # (the holder of a lab without load balancers has no target requests)
    return {
        TargetKey(
            row["LoadBalancer"],
            row["TargetGroup"],
            row["Target"]["Id"].removeprefix("i-"),
            row["Target"]["Port"],
        ): row["TargetHealth"]["State"]
        for row in lab.targets()
    }


def restore_targets(
    lab: Lab, before: dict[TargetKey, str], timeout: float = RESTORE_TIMEOUT
) -> None:
    """Register again what left, deregister what was added, and wait until every target is
    in its state of `before` and nothing else is registered."""
    now = target_states(lab)
    for key in now.keys() - before.keys():
        if now[key] != "draining":
            lab.deregister(key.tg, key.target, key.port, key.lb)
    # A target that is draining leaves once its delay is over; then it can come back.
    draining = [k for k in before if now.get(k) == "draining"]
    lab.wait_for(
        lambda: all(k not in target_states(lab) for k in draining),
        timeout,
        "deregistered targets to finish draining",
        interval=0.2,
        last=lambda: {f"{k.tg}/{k.target}": target_states(lab).get(k, REMOVED) for k in draining},
    )
    now = target_states(lab)
    for key in before.keys() - now.keys():
        lab.register(key.tg, key.target, key.port, key.lb)

    def differences() -> dict[str, str]:
        got = target_states(lab)
        keys = before.keys() | got.keys()
        return {
            f"{k.lb}/{k.tg}/{k.target}:{k.port}": f"{got.get(k, REMOVED)}, wanted "
            f"{before.get(k, REMOVED)}"
            for k in keys
            if got.get(k, REMOVED) != before.get(k, REMOVED)
        }

    lab.wait_for(
        lambda: not differences(),
        timeout,
        "the targets to be back in their states",
        interval=0.2,
        last=differences,
    )


@contextmanager
def restoring(
    lab: Lab, faulted: Iterable[str] = (), timeout: float = RESTORE_TIMEOUT
) -> Iterator[None]:
    """Run the block, then clear the faults of the `faulted` hosts (starting a stopped
    backend again) and restore the targets as they were before the block."""
    before = target_states(lab)
    try:
        yield
    finally:
        for host in faulted:
            clear_fault(lab, host)
        restore_targets(lab, before, timeout)


def clear_fault(lab: Lab, host: str) -> None:
    """Undo any fault of `host`'s backend (a stopped one is started again)."""
    h = lab.host(host)
    if not running_role(ProcessJournal(lab.dir), lab.plan.host(host)):
        h.fault("start")
    h.fault("clear")


def restart_snmpd(lab: Lab, host: str, timeout: float = 30.0) -> None:
    """Start `host`'s SNMP agent again (after a test killed it) as the lab started it, and
    wait until it reports ready."""
    since = time.time()
    ctx = ServiceContext(
        lab.name, lab.dir, lab.plan, ProcessJournal(lab.dir), EventLog(lab.dir), host_env()
    )
    snmpd.start(ctx, lab.plan.host(host))
    lab.wait_for(
        lambda: (
            [
                e.status
                for e in lab.events()
                if e.logical_id == host and e.resource_type == snmpd.EVENT_TYPE and e.time >= since
                if e.status in ("SNMPD_READY", "SNMPD_FAILED")
            ]
            == ["SNMPD_READY"]
        ),
        timeout,
        f"the SNMP agent of {host} to be ready again",
    )
