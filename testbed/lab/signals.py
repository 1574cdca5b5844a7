"""Resource signals in a lab: what cfn-signal in a host leaves, and the builder's wait for them.

No network is involved: the host tool (testbed.lab.hosttools.cfn_signal) writes one JSON file
per signal under the lab's folder,

    signals/expected.json                     the stack name, and who waits for what
    signals/resource-<LogicalId>/<id>.json    cfn-signal --stack S --resource LogicalId
    signals/handle-<hash of the URL>/<id>.json  cfn-signal <WaitConditionHandle URL>

and the builder polls those folders (a fact on disk) until every resource with a
CreationPolicy (or a wait condition) has its success signals, a failure signal arrives, or its
Timeout, counted from the resource's creation, passes. As on AWS a signal is identified by its
UniqueId: a second signal with the same id replaces the first.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from testbed.errors import LabError
from testbed.model.signals import format_duration
from testbed.model.types import ResourceSignalPolicy
from testbed.waiting import REAL_CLOCK, Clock, wait_for

SIGNALS_DIR = "signals"
EXPECTED_FILE = "expected.json"
INIT_DIR = "cfn-init"  # cfn-init/<LogicalId>.json: a resource's AWS::CloudFormation::Init
POLL_INTERVAL = 0.1
TIMED_OUT = "timed out after"  # how a timeout's reason starts (the builder adds a hint)


def signals_dir(lab_dir: Path) -> Path:
    return lab_dir / SIGNALS_DIR


def resource_key(logical_id: str) -> str:
    """Folder of the signals sent to a resource (cfn-signal --resource)."""
    return f"resource-{logical_id}"


def handle_key(url: str) -> str:
    """Folder of the signals sent to a wait condition handle's URL (whatever its shape)."""
    return "handle-" + hashlib.sha256(url.strip().encode()).hexdigest()[:20]


def policy_key(logical_id: str, policy: ResourceSignalPolicy) -> str:
    return handle_key(policy.handle) if policy.handle else resource_key(logical_id)


def init_file(lab_dir: Path, logical_id: str) -> Path:
    """Where the builder leaves a resource's Init metadata for cfn-init and cfn-get-metadata."""
    return lab_dir / INIT_DIR / f"{logical_id}.json"


@dataclass(frozen=True)
class Signal:
    unique_id: str
    success: bool
    reason: str = ""
    data: str = ""
    sent: float = field(default=0.0, compare=False)  # time.time() when cfn-signal ran

    @property
    def status(self) -> str:
        return "SUCCESS" if self.success else "FAILURE"


def write_signal(lab_dir: Path, key: str, signal: Signal) -> Path:
    """Leave one signal for the builder (atomically: the builder never reads half a file)."""
    folder = signals_dir(lab_dir) / key
    folder.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", signal.unique_id)[:80]
    digest = hashlib.sha256(signal.unique_id.encode()).hexdigest()[:8]
    path = folder / f"{safe}-{digest}.json"
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(asdict(signal)))
    os.replace(tmp, path)
    return path


def read_signals(lab_dir: Path, key: str) -> list[Signal]:
    """The signals sent to `key`, oldest first (one per UniqueId)."""
    folder = signals_dir(lab_dir) / key
    found = []
    for path in folder.glob("*.json") if folder.is_dir() else ():
        try:
            raw = json.loads(path.read_text())
            found.append(Signal(**raw))
        except (OSError, ValueError, TypeError):
            continue  # not a signal file (the tool writes them whole, via a rename)
    return sorted(found, key=lambda s: (s.sent, s.unique_id))


def write_expected(lab_dir: Path, stack: str, policies: Mapping[str, ResourceSignalPolicy]) -> None:
    """Tell cfn-signal which stack this is and which resources and handle URLs wait."""
    folder = signals_dir(lab_dir)
    folder.mkdir(parents=True, exist_ok=True)
    expected = {
        "stack": stack,
        "resources": sorted(lid for lid, p in policies.items() if not p.handle),
        "handles": {p.handle.strip(): lid for lid, p in policies.items() if p.handle},
    }
    (folder / EXPECTED_FILE).write_text(json.dumps(expected, indent=1))


def set_expected_policies(
    lab_dir: Path, stack: str, qualifier: str, policies: Mapping[str, ResourceSignalPolicy]
) -> None:
    """A stack's resources that wait for signals after a template update: the lab's first
    stack's entry ("resources", "handles") or an added stack's (add_expected_stack); the
    other stacks' entries stay."""
    if qualifier:
        add_expected_stack(lab_dir, stack, qualifier, policies)
        return
    expected = read_expected(lab_dir) or {"stack": stack, "resources": [], "handles": {}}
    expected["stack"] = stack
    expected["resources"] = sorted(lid for lid, p in policies.items() if not p.handle)
    expected["handles"] = {p.handle.strip(): lid for lid, p in policies.items() if p.handle}
    _write_expected(lab_dir, expected)


def add_expected_stack(
    lab_dir: Path, stack: str, qualifier: str, policies: Mapping[str, ResourceSignalPolicy]
) -> None:
    """A stack added to the running lab (issue 14) that waits for signals: expected.json's
    "stacks" gets it (its resources by logical id), and cfn-signal --stack `stack` writes to
    the folders of its qualified ids (resource_key(qualifier + LogicalId))."""
    expected = read_expected(lab_dir) or {"stack": None, "resources": [], "handles": {}}
    stacks = expected.setdefault("stacks", {})
    stacks[stack] = {
        "qualifier": qualifier,
        "resources": sorted(lid for lid, p in policies.items() if not p.handle),
        "handles": {p.handle.strip(): lid for lid, p in policies.items() if p.handle},
    }
    _write_expected(lab_dir, expected)


def remove_expected_stack(lab_dir: Path, stack: str, qualifier: str) -> None:
    """The added stack is gone (deleted, rolled back): its entry and the signals it got."""
    expected = read_expected(lab_dir)
    if expected is not None and stack in expected.get("stacks", {}):
        entry = expected["stacks"].pop(stack)
        _write_expected(lab_dir, expected)
        for url in entry.get("handles", {}):
            shutil.rmtree(signals_dir(lab_dir) / handle_key(url), ignore_errors=True)
    for folder in signals_dir(lab_dir).glob(resource_key(f"{qualifier}*")):
        shutil.rmtree(folder, ignore_errors=True)


def _write_expected(lab_dir: Path, expected: dict[str, Any]) -> None:
    folder = signals_dir(lab_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{EXPECTED_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(expected, indent=1))
    os.replace(tmp, folder / EXPECTED_FILE)  # a host tool never reads half a file


def read_expected(lab_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((signals_dir(lab_dir) / EXPECTED_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def waiting_text(policy: ResourceSignalPolicy) -> str:
    """The reason of a resource's CREATE_IN_PROGRESS while it waits."""
    where = " (wait condition handle)" if policy.handle else ""
    return f"waiting for {policy.count} signal(s) within {format_duration(policy.timeout_s)}{where}"


def required_successes(policy: ResourceSignalPolicy) -> int:
    """Success signals that complete the resource: Count, or its MinSuccessfulInstancesPercent
    share (an Auto Scaling group may tolerate some failing instances)."""
    if policy.min_successful_percent >= 100:
        return policy.count
    return max(0, math.ceil(policy.count * policy.min_successful_percent / 100))


def verdict(
    policy: ResourceSignalPolicy, signals: list[Signal], waited: float
) -> tuple[bool, str] | None:
    """(True, reason) complete, (False, reason) failed, or None: still waiting."""
    needed = required_successes(policy)
    successes = [s for s in signals if s.success]
    failures = [s for s in signals if not s.success]
    if len(failures) > policy.count - needed:
        first = failures[0]
        why = f": {first.reason}" if first.reason else ""
        return False, f"received a failure signal with UniqueId {first.unique_id}{why}"
    if len(successes) >= needed:
        return True, f"received {len(successes)} success signal(s)"
    if waited >= policy.timeout_s:
        return False, (
            f"{TIMED_OUT} {format_duration(policy.timeout_s)} waiting for "
            f"{needed} signal(s), received {len(successes)}"
        )
    return None


class SignalFailure(LabError):
    """A resource's failure signal or timeout: the stack fails and rolls back."""


Emit = Callable[[str, str, str], None]  # (logical id, status, reason)
Hint = Callable[[str], str]  # logical id -> what may explain a missing signal, or ""


@dataclass
class _Awaited:
    logical_id: str
    policy: ResourceSignalPolicy
    started: float
    reported: dict[str, Signal] = field(default_factory=dict)


class SignalWaiter:
    """Resources waiting for their signals: begun at their creation, awaited together once
    the hosts' programs run. Events go through `emit`; the clock is a parameter for tests."""

    def __init__(
        self, lab_dir: Path, emit: Emit, clock: Clock = REAL_CLOCK, hint: Hint | None = None
    ) -> None:
        self.lab_dir = lab_dir
        self.emit = emit
        self.clock = clock
        self.hint = hint
        self.pending: dict[str, _Awaited] = {}

    def begin(self, logical_id: str, policy: ResourceSignalPolicy) -> str:
        """Start the resource's Timeout now (AWS counts it from the creation); the text of
        its waiting event."""
        self.pending[logical_id] = _Awaited(logical_id, policy, self.clock.now())
        return waiting_text(policy)

    def wait(self) -> None:
        """Until every begun resource completes; SignalFailure at the first that fails (the
        others are cancelled, as AWS cancels them). Any exception (the holder's stop included)
        marks the resources still waiting as failed before it propagates."""
        if not self.pending:
            return
        longest = max(a.started + a.policy.timeout_s for a in self.pending.values())
        try:
            wait_for(
                self._all_done,
                longest - self.clock.now() + 1.0,  # a backstop: _all_done sees each deadline
                "resource signals",
                interval=POLL_INTERVAL,
                last=lambda: sorted(self.pending),
                clock=self.clock,
            )
        except BaseException as exc:
            self._cancel(str(exc).strip() or type(exc).__name__)
            raise

    def _all_done(self) -> bool:
        for awaited in list(self.pending.values()):
            result = self._check(awaited)
            if result is None:
                continue
            done, reason = result
            del self.pending[awaited.logical_id]
            if done:
                self.emit(awaited.logical_id, "CREATE_COMPLETE", reason)
            else:
                timed_out = reason.startswith(TIMED_OUT)
                extra = self.hint(awaited.logical_id) if self.hint and timed_out else ""
                reason = f"{reason} ({extra})" if extra else reason
                self.emit(awaited.logical_id, "CREATE_FAILED", reason)
                raise SignalFailure(f"{awaited.logical_id}: {reason}")
        return not self.pending

    def _check(self, awaited: _Awaited) -> tuple[bool, str] | None:
        signals = read_signals(self.lab_dir, policy_key(awaited.logical_id, awaited.policy))
        for signal in signals:
            if awaited.reported.get(signal.unique_id) != signal:
                awaited.reported[signal.unique_id] = signal
                why = f": {signal.reason}" if signal.reason else ""
                self.emit(
                    awaited.logical_id,
                    "CREATE_IN_PROGRESS",
                    f"received {signal.status} signal with UniqueId {signal.unique_id}{why}",
                )
        return verdict(awaited.policy, signals, self.clock.now() - awaited.started)

    def _cancel(self, why: str) -> None:
        for lid in list(self.pending):
            del self.pending[lid]
            self.emit(lid, "CREATE_FAILED", f"resource creation cancelled: {why}")
