"""A lab belongs to the process that made it (an experiment, a script's Lab.up, testbed up
--cli): however that process ends, nothing of the lab remains within 15 s, and things with
names close to the lab's are untouched.

Owners are real processes (tests/integration/owner_program.py, the `testbed` command); each
test waits on facts (state files, events, processes), never on time.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testbed import naming
from testbed.lab import system
from testbed.lab.api import random_name, stop_lab
from testbed.lab.events import Event, EventFollower, read_events
from testbed.lab.owner import Owner
from testbed.lab.procs import LAB_LABEL, ProcessJournal, ProcessRecord, is_alive, start_time
from testbed.lab.state import list_labs, read_state
from testbed.lab.teardown import leftovers
from testbed.paths import TEMPLATES
from testbed.waiting import wait_for
from tests.assertions import lab_processes, run_cli

pytestmark = pytest.mark.integration
DEFAULT = str(TEMPLATES / "default.yaml")
OWNER_PROGRAM = Path(__file__).with_name("owner_program.py")
GONE_WITHIN = 15.0  # seconds from the owner's end to nothing of the lab left
BUILD_TIMEOUT = 120.0


class NearDecoys:
    """What a careless cleanup of lab NAME would catch: a namespace, a veth pair, an OVS
    bridge, a file in the state root and one in /etc/netns, and a process labelled
    TESTBED_LAB, all named for lab NAME+"d" (tb-NAMEd-..., /run/elb-testbed/NAMEd); none
    is the lab's. (Names of a valid lab keep them out of other tests' machine snapshots on
    a shared machine; the state-root decoy is a file, which no `testbed clean` takes for a
    lab.)"""

    def __init__(self, name: str) -> None:
        near = f"{name}d"
        self.netns = f"tb-{near}-WebA1"
        self.veth = (f"tb-{near}-v1", f"tb-{near}-v2")
        self.bridge = f"tb-{near}-az1"
        self.files = [naming.state_root() / near, Path(f"/etc/netns/tb-{near}-WebA1")]
        self.label = near
        self.proc: subprocess.Popen | None = None

    def create(self) -> None:
        system.run(["ip", "netns", "add", self.netns])
        system.run(
            ["ip", "link", "add", self.veth[0], "type", "veth", "peer", "name", self.veth[1]]
        )
        netdev = "datapath_type=netdev"
        system.run(["ovs-vsctl", "add-br", self.bridge, "--", "set", "bridge", self.bridge, netdev])
        for path in self.files:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("not the lab's")
        self.proc = subprocess.Popen(
            ["bash", "-c", f"exec -a mininet:{self.netns} sleep 600"],
            env=dict(os.environ, **{LAB_LABEL: self.label}),
        )

    def missing(self) -> list[str]:
        links = system.list_links()
        gone = [n for n in self.veth if n not in links]
        gone += [] if self.netns in system.list_netns() else [self.netns]
        gone += [] if self.bridge in system.list_bridges() else [self.bridge]
        gone += [str(p) for p in self.files if not p.exists()]
        if self.proc is None or self.proc.poll() is not None:
            gone.append("the decoy process")
        return gone

    def remove(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        system.delete_bridges([self.bridge])
        system.delete_links([self.veth[0]])
        system.delete_netns([self.netns])
        for path in self.files:
            path.unlink(missing_ok=True)


@pytest.fixture
def lab_name():
    """A fresh lab name (ow...) with decoys next to it; whatever the test did, nothing of
    either is left afterwards."""
    name = random_name("ow")
    decoys = NearDecoys(name)
    decoys.create()
    try:
        yield name
        assert decoys.missing() == [], "a lab's teardown removed things that were not its own"
    finally:
        decoys.remove()
        with contextlib.suppress(Exception):
            stop_lab(name)


# ---- helpers ---------------------------------------------------------------------------
def footprint(name: str) -> list[ProcessRecord]:
    """The lab's processes as recorded now: its holder and its journal."""
    lab_dir = naming.lab_dir(name)
    state = read_state(lab_dir)
    assert state is not None
    holder = ProcessRecord(state["pid"], state["pid_start"], "holder")
    return [holder, *ProcessJournal(lab_dir).records()]


def remains(name: str, records: list[ProcessRecord]) -> dict[str, list]:
    """What of lab `name` still exists (nothing: an empty dict)."""
    left: dict[str, list] = {k: v for k, v in leftovers(name).items() if v}
    alive = [f"{r.pid} {r.what}" for r in records if is_alive(r)]
    if alive:
        left["recorded processes"] = alive
    named = [p for p in lab_processes() if f"/{name}/" in p or naming.prefix(name) in p]
    if named:
        left["processes naming the lab"] = named
    return left


def assert_gone_after(name: str, records: list[ProcessRecord], ended_at: float) -> None:
    """Nothing of the lab remains GONE_WITHIN seconds after `ended_at` (monotonic)."""
    wait_for(
        lambda: not remains(name, records),
        max(0.0, ended_at + GONE_WITHIN - time.monotonic()),
        f"nothing of lab {name} to remain",
        interval=0.2,
        last=lambda: remains(name, records),
    )


def assert_deleted_as_aws_says(events: list[Event], name: str, reason: str) -> None:
    """AWS's order for the delete of stack `name` (the lab's first): its DELETE_IN_PROGRESS
    with the reason, then each resource it created gets DELETE_IN_PROGRESS and DELETE_COMPLETE
    (COMPLETEs in reverse creation order), then its DELETE_COMPLETE, the last event."""
    start = next(
        i for i, e in enumerate(events) if e.logical_id == name and e.status == "DELETE_IN_PROGRESS"
    )
    assert events[start].reason == reason
    created = [
        e.logical_id
        for e in events[:start]
        if e.status == "CREATE_COMPLETE" and e.logical_id != name
    ]
    assert created
    # CloudFormation's statuses only: not the lab's own events about the same resources
    # (an agent's nsNotifyShutdown notification as its host stops, for one).
    deleting = [
        e for e in events[start + 1 :] if re.match(r"(CREATE|UPDATE|DELETE|ROLLBACK)_", e.status)
    ]
    assert (deleting[-1].logical_id, deleting[-1].status) == (name, "DELETE_COMPLETE")
    completed = [e.logical_id for e in deleting[:-1] if e.status == "DELETE_COMPLETE"]
    assert completed == created[::-1]
    for lid in created:
        assert [e.status for e in deleting if e.logical_id == lid] == [
            "DELETE_IN_PROGRESS",
            "DELETE_COMPLETE",
        ], lid


def stack_events(follower: EventFollower, name: str) -> list[Event]:
    """The stack's own events read so far and now (the file may be removed already)."""
    return [e for e in follower.new() if e.logical_id == name]


def start_owner(mode: str, name: str, tmp_path: Path, **env: str) -> subprocess.Popen:
    out = open(tmp_path / "owner.out", "w")  # noqa: SIM115 - the child writes it
    return subprocess.Popen(
        [sys.executable, str(OWNER_PROGRAM), mode, name, str(tmp_path / "ready")],
        stdin=subprocess.PIPE,
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, **env),
    )


def wait_owner_ready(owner: subprocess.Popen, tmp_path: Path) -> None:
    def ready() -> bool:
        if owner.poll() is not None:
            raise AssertionError(f"the owner exited: {(tmp_path / 'owner.out').read_text()}")
        return (tmp_path / "ready").exists()

    wait_for(ready, BUILD_TIMEOUT, "the owner's lab to be up")


def owner_output(tmp_path: Path) -> str:
    return (tmp_path / "owner.out").read_text()


def status_of(name: str) -> dict:
    return json.loads(run_cli("status", name, "--json", check=True).stdout)


# ---- a script's lab, whatever ends the script --------------------------------------------
ENDINGS = {
    # ending: (owner_program mode, how the test ends it, unwinds through `finally`)
    "exit": ("exit", "line", True),
    "exception": ("raise", "line", True),
    "SIGINT": ("hold", signal.SIGINT, True),
    "SIGTERM": ("hold", signal.SIGTERM, True),
    "SIGHUP": ("hold", signal.SIGHUP, True),
    "SIGKILL": ("hold", signal.SIGKILL, False),
}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_a_scripts_lab_goes_when_the_script_ends(ending, lab_name, tmp_path):
    mode, how, unwinds = ENDINGS[ending]
    owner = start_owner(mode, lab_name, tmp_path)
    try:
        wait_owner_ready(owner, tmp_path)
        status = status_of(lab_name)
        assert status["owner"]["pid"] == owner.pid
        assert status["owner"]["alive"] is True
        assert status["owner"]["command"].startswith(f"owner_program.py {mode} {lab_name}")
        records = footprint(lab_name)
        follower = EventFollower(naming.lab_dir(lab_name))
        stack_events(follower, lab_name)
        if how == "line":
            owner.stdin.write("go\n")
            owner.stdin.flush()
        else:
            owner.send_signal(how)
        ended_at = time.monotonic()
        owner.wait(timeout=GONE_WITHIN)
        assert_gone_after(lab_name, records, ended_at)
        events = stack_events(follower, lab_name)
        follower.close()
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
    assert [e.status for e in events][-2:] == ["DELETE_IN_PROGRESS", "DELETE_COMPLETE"]
    reason = events[-2].reason
    assert reason.startswith(f"owner process {owner.pid} (owner_program.py {mode} {lab_name}")
    if mode == "exit" or how == signal.SIGKILL:
        assert reason.endswith(") exited")  # the holder saw its owner go
    else:
        assert "left Lab.up" in reason  # the owner unwound and took its lab down itself
    assert ("finally" in owner_output(tmp_path)) is unwinds


def test_owner_killed_while_the_stack_is_created(lab_name, tmp_path):
    owner = start_owner("hold", lab_name, tmp_path)
    lab_dir = naming.lab_dir(lab_name)
    follower = EventFollower(lab_dir)
    seen: list[Event] = []

    def building_instances() -> bool:
        seen.extend(follower.new())
        return any(e.resource_type == "AWS::EC2::Instance" for e in seen)

    try:
        wait_for(building_instances, BUILD_TIMEOUT, f"lab {lab_name} to create its instances")
        records = footprint(lab_name)
        assert read_state(lab_dir)["state"] == "CREATE_IN_PROGRESS"
        owner.kill()
        ended_at = time.monotonic()
        owner.wait(timeout=GONE_WITHIN)
        assert_gone_after(lab_name, records, ended_at)
        seen.extend(follower.new())
        follower.close()
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
    stack = [e for e in seen if e.logical_id == lab_name]
    statuses = [e.status for e in stack]
    assert "CREATE_COMPLETE" not in statuses, "the owner was killed too late to test this"
    assert statuses[-2:] == ["ROLLBACK_IN_PROGRESS", "ROLLBACK_COMPLETE"], seen
    assert stack[-2].reason.startswith(f"owner process {owner.pid} (owner_program.py hold")
    assert stack[-2].reason.endswith(") exited")


@pytest.mark.parametrize("case", ["gone", "pid reused"])
def test_holder_of_an_owner_gone_before_it_started_rolls_back_at_once(case, lab_name):
    # The request names an owner that has ended (its PID free, or now another process's):
    # the holder rolls back at once and touches nothing but its lab.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    ticks = start_time(other.pid)
    assert ticks is not None
    if case == "gone":
        other.kill()
        other.wait()
    owner = Owner(other.pid, ticks - (case == "pid reused"), "x", "owner.py")
    lab_dir = naming.lab_dir(lab_name)
    lab_dir.mkdir(parents=True)
    request = {"name": lab_name, "template": DEFAULT, "owner": owner.to_dict()}
    (lab_dir / "request.json").write_text(json.dumps(request))
    (lab_dir / "events.jsonl").touch()
    follower = EventFollower(lab_dir)
    follower.new()
    try:
        holder = subprocess.run(
            [sys.executable, "-m", "testbed.stack.holder", str(lab_dir)],
            env=dict(os.environ, **{LAB_LABEL: lab_name}),
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
        )
        assert holder.returncode == 1, holder.stderr
        events = stack_events(follower, lab_name)
        follower.close()
        assert [e.status for e in events] == [
            "CREATE_IN_PROGRESS",
            "ROLLBACK_IN_PROGRESS",
            "ROLLBACK_COMPLETE",
        ]
        assert events[1].reason == f"owner process {other.pid} (owner.py) exited"
        assert remains(lab_name, []) == {}
        assert (other.poll() is None) is (case == "pid reused")
    finally:
        other.kill()
        other.wait()


def test_a_kept_folder_tells_how_the_lab_ended(lab_name, tmp_path):
    owner = start_owner("exit", lab_name, tmp_path, TESTBED_KEEP_LAB_DIR="1")
    try:
        wait_owner_ready(owner, tmp_path)
        records = footprint(lab_name)
        owner.stdin.write("go\n")
        owner.stdin.flush()
        owner.wait(timeout=GONE_WITHIN)
        wait_for(
            lambda: status_of(lab_name)["state"] == "DELETE_COMPLETE",
            GONE_WITHIN,
            "the holder to finish its teardown",
        )
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
    status = status_of(lab_name)
    assert status["alive"] is False
    assert status["owner"]["alive"] is False
    assert status["reason"].startswith(f"owner process {owner.pid} (owner_program.py exit")
    events = run_cli("events", lab_name, check=True).stdout
    assert "DELETE_COMPLETE" in events
    assert_deleted_as_aws_says(read_events(naming.lab_dir(lab_name)), lab_name, status["reason"])
    # Everything but the folder is gone; `testbed clean` removes the folder.
    left = remains(lab_name, records)
    assert list(left) == ["files"]
    assert left["files"] == [str(naming.lab_dir(lab_name))]
    assert f"cleaned lab {lab_name}" in run_cli("clean", lab_name, check=True).stdout
    assert remains(lab_name, records) == {}


# ---- the testbed command as owner -----------------------------------------------------------
def cli_owner(tmp_path: Path, *args: str) -> subprocess.Popen:
    out = open(tmp_path / "cli.out", "w")  # noqa: SIM115 - the child writes it
    return subprocess.Popen(
        [sys.executable, "-m", "testbed.cli", *args],
        stdin=subprocess.PIPE,
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
    )


def lab_owned_by(pid: int) -> str | None:
    """The name of the running lab whose owner is `pid`, once it is created."""
    for name, state in list_labs():
        owner = (state or {}).get("owner") or {}
        if owner.get("pid") == pid and state["state"] == "CREATE_COMPLETE":
            return name
    return None


def processes_in(name: str, host: str, command: str) -> list[int]:
    """PIDs running `command` in the lab host's namespace."""
    found = []
    for pid in system.netns_pids(naming.netns_name(name, host)):
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if cmdline.strip() == command:
                found.append(pid)
    return found


def test_up_cli_lab_goes_when_the_terminal_hangs_up(lab_name, tmp_path):
    cli = cli_owner(tmp_path, "up", DEFAULT, "--name", lab_name, "--cli", "--quiet")
    try:
        wait_for(lambda: lab_owned_by(cli.pid), BUILD_TIMEOUT, "testbed up --cli's lab")
        records = footprint(lab_name)
        # A CLI command that blocks, as a person's `WebA1 sleep 600` would.
        cli.stdin.write("WebA1 sleep 600\n")
        cli.stdin.flush()
        wait_for(
            lambda: processes_in(lab_name, "WebA1", "sleep 600"),
            30,
            "the CLI's command to run in WebA1",
        )
        cli.send_signal(signal.SIGHUP)
        ended_at = time.monotonic()
        assert cli.wait(timeout=GONE_WITHIN) == 128 + signal.SIGHUP
        assert_gone_after(lab_name, records, ended_at)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    out = (tmp_path / "cli.out").read_text()
    assert f"lab {lab_name} is down" in out
    assert "terminated by SIGHUP" in out


def test_experiment_labs_go_when_testbed_run_is_terminated(tmp_path):
    run = cli_owner(
        tmp_path, "run", "bench_backend", "-p", "seconds=30", "--out", str(tmp_path / "results")
    )
    name = None
    try:
        name = wait_for(lambda: lab_owned_by(run.pid), BUILD_TIMEOUT, "the experiment's lab")
        assert name is not None
        records = footprint(name)
        decoys = NearDecoys(name)
        decoys.create()
        try:
            # In the middle of a measurement: wrk runs in the lab.
            wait_for(
                lambda: any(p.split()[:1] == ["wrk"] for p in commands_in_lab(name)),
                60,
                "the experiment to measure (wrk running in the lab)",
            )
            run.send_signal(signal.SIGTERM)
            ended_at = time.monotonic()
            assert run.wait(timeout=GONE_WITHIN) == 128 + signal.SIGTERM
            assert_gone_after(name, records, ended_at)
            assert decoys.missing() == []
        finally:
            decoys.remove()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        if name:
            with contextlib.suppress(Exception):
                stop_lab(name)
    assert "terminated by SIGTERM" in (tmp_path / "cli.out").read_text()


def commands_in_lab(name: str) -> list[str]:
    """Command lines of the processes in the lab's namespaces."""
    found = []
    for ns in system.list_netns():
        if not ns.startswith(naming.prefix(name)):
            continue
        for pid in system.netns_pids(ns):
            with contextlib.suppress(OSError):
                found.append(
                    Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                )
    return found
