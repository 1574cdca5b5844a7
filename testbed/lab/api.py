"""Python API for experiments and tests.

    with Lab.up("templates/default.yaml", params={"InterAzDelayMs": "2"}) as lab:
        print(lab.host("WebA1").cmd("ip -brief addr"))

`Lab.up` goes through the same holder process as `testbed up`, and its `with` block always
ends with the lab torn down. The lab belongs to the calling process (testbed.lab.owner): its
holder also tears it down if this process ends without leaving the block (kill -9).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from testbed import asks, naming, rpc
from testbed.errors import BadInput, LabError
from testbed.lab import gwlb_switch, run_servers
from testbed.lab.classic_health import IN_SERVICE
from testbed.lab.classic_health import instance_health as clb_instance_health
from testbed.lab.controller_proc import log_tail
from testbed.lab.drift_live import detect as detect_drift
from testbed.lab.events import EVENTS, Event, EventFollower, read_events
from testbed.lab.faults import apply_fault
from testbed.lab.hostexec import netns_argv
from testbed.lab.owner import this_process, unwind_on_termination
from testbed.lab.procs import LAB_LABEL
from testbed.lab.stack_source import running_template
from testbed.lab.state import holder_alive, read_state
from testbed.lab.teardown import TeardownReport, leftovers, teardown
from testbed.messages import (
    AlarmsDescribeRequest,
    AlarmsReply,
    AsgActivitiesReply,
    AsgActivitiesRequest,
    AsgCompleteLifecycleRequest,
    AsgDescribeReply,
    AsgDescribeRequest,
    AsgGroupReply,
    AsgSetCapacityRequest,
    ControllerRestartsReply,
    ControllerRestartsRequest,
    CreateStackRequest,
    DeleteStackRequest,
    DownRequest,
    HolderRequest,
    LabRequest,
    RegisterReply,
    RegisterRequest,
    Reply,
    TargetDescription,
    TargetEvent,
    TargetsReply,
    TargetsRequest,
    UpdateReply,
    UpdateRequest,
)
from testbed.model import load_model, load_model_text
from testbed.model.changeset import check_plan_base
from testbed.naming import HOLDER_SOCK, PLAN_FILE, REQUEST_FILE
from testbed.plan.gwlb_datapath import SWITCH as GWLB_SWITCH
from testbed.plan.gwlb_datapath import WANTED as GWLB_WANTED
from testbed.plan.gwlb_datapath import decide as gwlb_decide
from testbed.plan.network import NetworkPlan, build_plan
from testbed.plan.placement import FRONT_END, LOCAL, parse_rate, parse_servers, place
from testbed.waiting import wait_for

T = TypeVar("T")
R = TypeVar("R", bound=Reply)
HOLDER_MODULE = "testbed.stack.holder"  # started as a process (a higher layer: not imported)
TARGET_EVENTS_FILE = "target-events.jsonl"
REMOVED = "removed"  # target_state() of a target no longer registered

UP_TIMEOUT = 300.0
CREATE_ENDS = ("CREATE_COMPLETE", "ROLLBACK_COMPLETE")
KEEP_DIR_ENV = "TESTBED_KEEP_LAB_DIR"
NAME_PREFIX_ENV = "TESTBED_NAME_PREFIX"


def random_name(stem: str = "x") -> str:
    """A fresh lab name for experiments and tests: $TESTBED_NAME_PREFIX and the stem, cut to
    3 characters, + 4 hex digits. On a shared machine, the prefix tells whose labs are whose
    (e.g. TESTBED_NAME_PREFIX=tt: ttn1a2b for a test's nlb.yaml)."""
    start = (os.environ.get(NAME_PREFIX_ENV, "") + stem)[:3]
    return naming.validate_lab_name(start + secrets.token_hex(2))


def start_lab(
    template: str,
    params: dict[str, str] | None = None,
    name: str | None = None,
    datapath: str | None = None,
    region: str | None = None,
    on_event: Callable[[Event], None] | None = None,
    timeout: float = UP_TIMEOUT,
    owned: bool = True,
    keep_dir: bool | None = None,
    gwlb_datapath: str | None = None,
    servers: dict[str, str] | str | None = None,
    ssh_config: str | None = None,
    tunnel_rate: str | int | None = None,
) -> dict[str, Any]:
    """Create a lab and return its state once ready. BadInput for bad input (nothing built),
    LabError if building failed (everything rolled back).

    owned: the lab belongs to the calling process, and its holder tears it down when this
    process ends, however it ends (kill -9 included; testbed.lab.owner). False: the lab
    stays until `testbed down` (what a plain `testbed up` makes).
    keep_dir: when the holder tears the lab down by itself (its owner ended, a signal, a
    failed build), keep the lab's directory (events, logs, lab.json) for a post-mortem;
    `testbed clean` removes it. Default: the environment variable TESTBED_KEEP_LAB_DIR=1.
    gwlb_datapath: who steers the GWLBs' traffic: "switch" (Open vSwitch), "node" (the
    Python GWLB node), "auto" or None (switch where the machine can, else node with the
    reason in the state; testbed.plan.gwlb_datapath). "switch" that cannot be: BadInput.
    servers: a lab across servers (issue 18): AZ -> server (ssh host name or address; the
    front end is this machine), or the text of --servers; ssh_config: the ssh config that
    reaches them (testbed.lab.servers); tunnel_rate: what each tunnel between servers
    carries each way ("100mbit", or bits/s; tbf on both ends), None: the underlay's."""
    params = {k: str(v) for k, v in (params or {}).items()}
    # A run across servers (`testbed run EXP --servers`): its labs go there unless the
    # caller gave servers of its own (testbed.lab.run_servers).
    run = run_servers.current() if servers is None else None
    if run is not None:
        servers = dict(run.servers)
        ssh_config = ssh_config or run.ssh_config
    if isinstance(servers, str):
        servers = parse_servers(servers)
    if isinstance(tunnel_rate, str):
        tunnel_rate = parse_rate(tunnel_rate)
    if tunnel_rate is not None and not servers:
        raise BadInput(
            "--tunnel-rate is for a lab across servers (its tunnels): give --servers too",
            hint="on one machine, Metadata.Lab.LinkBandwidthMbps shapes every link (HTB)",
        )
    if ssh_config is not None:
        ssh_config = str(Path(ssh_config).resolve())
        if not Path(ssh_config).is_file():
            raise BadInput(f"--ssh-config {ssh_config}: no such file")
    name = naming.validate_lab_name(name or naming.name_from_template(template))
    if datapath not in (None, "auto", "user", "kernel"):
        raise BadInput(f"unknown datapath {datapath!r}: use auto, user or kernel")
    if gwlb_datapath not in (None, *GWLB_WANTED):
        raise BadInput(f"unknown GWLB datapath {gwlb_datapath!r}: use {', '.join(GWLB_WANTED)}")
    # Validate before anything exists: template errors exit 2 with nothing created.
    model = load_model(template, params, stack_name=name, region=region or "us-east-1")
    # Resources that wait for cfn-signal may take their whole Timeout (up to 12 hours).
    timeout += max((p.timeout_s for p in model.signal_policies.values()), default=0)
    lab_dir = naming.lab_dir(name)
    state = read_state(lab_dir)
    if holder_alive(state):
        raise BadInput(
            f"a lab named {name!r} is already running",
            hint=f"testbed down {name}, or choose another name with --name",
        )
    if lab_dir.exists() or leftovers_exist(name):
        teardown(name)  # what a dead lab of the same name left
    if servers:
        # The mapping fits the template (every AZ a server, none too many): BadInput now.
        plan = build_plan(model, name)
        place(plan, servers)
        switch = run_servers.switch_gwlb_refusal(plan, gwlb_datapath)
        if switch:
            raise BadInput(
                f"--gwlb-datapath switch with --servers: {switch}",
                hint="--gwlb-datapath node (or leave it out: auto is node across servers); "
                f"what works across servers: {run_servers.NOT_YET}",
            )
    if gwlb_datapath == GWLB_SWITCH:
        _check_gwlb_switch(model, name, datapath)
    if servers:
        if run is not None:
            run_servers.check(run, model, plan, gwlb_datapath, template)
        gwlb_datapath = run_servers.gwlb_datapath_for(plan, gwlb_datapath)
        front = servers.get(FRONT_END, LOCAL)
        if front != LOCAL:
            raise BadInput(
                f"--servers {FRONT_END}={front}: the front end is the machine `testbed up` "
                f"runs on (leave it out, or give {LOCAL})"
            )
    if keep_dir is None:
        keep_dir = os.environ.get(KEEP_DIR_ENV, "") not in ("", "0")
    request = LabRequest(
        name=name,
        template=str(Path(template).resolve()),
        params=params,
        datapath=datapath,
        region=region,
        owner=this_process().to_dict() if owned else None,
        keep_dir=keep_dir,
        gwlb_datapath=gwlb_datapath,
        servers=dict(servers) if servers else None,
        ssh_config=ssh_config,
        tunnel_rate=tunnel_rate,
    )
    follower = EventFollower(lab_dir)
    proc: subprocess.Popen | None = None
    try:
        proc = _launch_holder(lab_dir, request, follower)
        seen = _follow_creation(proc, follower, name, on_event, timeout)
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM) or timed out: the holder rolls back on SIGTERM. One
        # started a moment before `proc` was set carries the lab's label: teardown ends it.
        if proc is not None:
            _stop_holder(proc)
        teardown(name, keep_dir=keep_dir)
        raise
    finally:
        follower.close()
    final = next((e for e in seen if e.logical_id == name and e.status in CREATE_ENDS), None)
    if final is not None and final.status == "CREATE_COMPLETE":
        state = read_state(lab_dir) or {}
        if run is not None:
            run.note_lab(name, state)
        return state
    proc.wait(timeout=60)
    reasons = [e.reason for e in seen if e.status.endswith("FAILED") and e.reason]
    reasons += [e.reason for e in seen if e.status == "ROLLBACK_IN_PROGRESS" and e.reason]
    detail = (
        reasons[0]
        if reasons
        else (
            f"the holder exited with code {proc.returncode}; holder.log ends with:\n"
            + log_tail(lab_dir / "holder.log", 25)
        )
    )
    teardown(name, keep_dir=keep_dir)
    raise LabError(f"lab {name} could not be created, everything was rolled back: {detail}")


def _check_gwlb_switch(model: Any, name: str, datapath: str | None) -> None:
    """BadInput (nothing built) when the switch GWLB datapath, asked for, cannot be: the
    holder decides again as it builds (auto falls back to the node there)."""
    wanted = datapath or model.lab.datapath
    if wanted in (None, "", "auto"):
        wanted = "kernel" if Path("/sys/module/openvswitch").exists() else "user"
    plan = build_plan(model, name)
    facts = gwlb_switch.with_claims(gwlb_switch.machine_facts(name, wanted), name)
    decision = gwlb_decide(plan, GWLB_SWITCH, facts)
    if decision.refused:
        raise BadInput(
            f"--gwlb-datapath switch: Open vSwitch cannot steer this lab's GWLB traffic: "
            f"{decision.reason}",
            hint="--gwlb-datapath auto uses the node datapath then; node asks for it",
        )


def _launch_holder(lab_dir: Path, request: LabRequest, follower: EventFollower) -> subprocess.Popen:
    """Write the request and start the holder in its own session (a Ctrl-C in the terminal
    is the owner's to handle, not the holder's)."""
    lab_dir.mkdir(parents=True)
    (lab_dir / REQUEST_FILE).write_text(json.dumps(request))
    (lab_dir / EVENTS).touch()
    follower.new()  # opened now: its events stay readable if the holder removes the folder
    with open(lab_dir / "holder.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", HOLDER_MODULE, str(lab_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(os.environ, **{LAB_LABEL: request["name"]}),
        )


def _follow_creation(
    proc: subprocess.Popen,
    follower: EventFollower,
    name: str,
    on_event: Callable[[Event], None] | None,
    timeout: float,
) -> list[Event]:
    """Every event until the stack is created or rolled back (or the holder dies)."""
    seen: list[Event] = []

    def read() -> None:
        for ev in follower.new():
            seen.append(ev)
            if on_event:
                on_event(ev)

    def finished() -> bool:
        read()
        if any(e.logical_id == name and e.status in CREATE_ENDS for e in seen):
            return True
        if proc.poll() is not None:  # the holder died before saying how it ended
            read()
            return True
        return False

    wait_for(finished, timeout, f"lab {name} to be created")
    return seen


def update_lab(
    name: str,
    template: str | None,
    params: dict[str, Any] | None = None,
    timeout: float = 900.0,
    plan: dict[str, Any] | None = None,
    stack: str | None = None,
) -> UpdateReply:
    """Apply a new template to a running lab (`testbed update`), resource by resource
    (testbed.stack.update_apply): instances added, removed or replaced, load balancer rules,
    target groups and attributes, security groups, ACLs and routes; a failure rolls back.
    BadInput lists anything that needs down/up (nothing changed then).

    plan: a saved plan (`testbed plan --out`): its template text and parameters are applied,
    refused (BadInput) when the lab changed since the plan was made.
    stack: another stack of the lab than its first (`testbed update LAB T --stack S`).
    Returns the holder's reply: `changes` (what differs) and `done` (what was applied)."""
    naming.validate_lab_name(name)
    lab_dir = naming.lab_dir(name)
    state = read_state(lab_dir)
    if not holder_alive(state):
        raise BadInput(f"lab {name!r} is not running", hint="testbed status lists the labs")
    if stack is not None:
        naming.validate_stack_name(stack)
    extra: dict[str, str] = {"stack": stack} if stack else {}
    if plan is not None:
        stack = stack or plan.get("Stack") or None
        extra = {"stack": stack} if stack else {}
        check_plan_base(plan, lab=name, current_digest=running_template(name, stack).digest)
        text = str(plan.get("TemplateBody") or "")
        path = str(plan.get("Template") or "plan")
        params = {k: str(v) for k, v in (plan.get("TemplateParameters") or {}).items()}
        load_model_text(text, filename=path, params=params, stack_name=name)
        request = UpdateRequest(
            op="update",
            template=path,
            params=params,
            template_text=text,
            base_digest=str(plan["BaseDigest"]),
            **extra,  # type: ignore[typeddict-item]
        )
        return ask_holder(name, request, UpdateReply, timeout)
    if template is None:
        raise BadInput("testbed update needs a template or --plan FILE")
    params = {k: str(v) for k, v in (params or {}).items()}
    # Template errors exit 2 with file:line before the lab is asked anything.
    if not stack:  # an added stack's imports resolve in the holder only (its errors too)
        load_model(template, params, stack_name=name)
    request = UpdateRequest(
        op="update",
        template=str(Path(template).resolve()),
        params=params,
        **extra,  # type: ignore[typeddict-item]
    )
    return ask_holder(name, request, UpdateReply, timeout)


def _running_state(name: str) -> dict[str, Any]:
    """State of the running lab `name`; BadInput if there is none."""
    naming.validate_lab_name(name)
    state = read_state(naming.lab_dir(name))
    if not holder_alive(state):
        raise BadInput(f"lab {name!r} is not running", hint="testbed status lists the labs")
    assert state is not None
    return state


def stacks_of(name: str, state: dict[str, Any]) -> list[dict[str, Any]]:
    """The stacks of lab `name` in creation order, as `testbed stacks` shows them: name,
    status, created, updated, template, params, outputs, and exports (export name ->
    {value, imported_by: [stack, ...]}). From state.json's "stacks"; a lab whose state has
    none (made before issue 14) has one stack, named after the lab, mirrored from its
    top-level fields."""
    records = state.get("stacks")
    if not records:
        records = [
            {
                "name": name,
                "status": state.get("state", "UNKNOWN"),
                "created": state.get("created"),
                "updated": state.get("updated"),
                "template": state.get("template"),
                "params": state.get("params", {}),
                "outputs": state.get("outputs", {}),
                "exports": state.get("exports", {}),
                "imports": [],
            }
        ]
    rows = []
    for rec in records:
        exports = rec.get("exports") or {}
        rows.append(
            {
                "name": rec["name"],
                "status": rec.get("status", "UNKNOWN"),
                "created": rec.get("created"),
                "updated": rec.get("updated"),
                "template": rec.get("template"),
                "params": rec.get("params") or {},
                "outputs": rec.get("outputs") or {},
                "exports": {
                    export: {
                        "value": value,
                        "imported_by": [
                            other["name"]
                            for other in records
                            if other is not rec and export in (other.get("imports") or ())
                        ],
                    }
                    for export, value in exports.items()
                },
            }
        )
    return rows


def create_stack(
    lab: str,
    template: str,
    params: dict[str, Any] | None = None,
    name: str | None = None,
    on_event: Callable[[Event], None] | None = None,
    timeout: float = UP_TIMEOUT,
) -> dict[str, Any]:
    """Add a stack made from `template` to the running lab `lab` (`testbed up T --into LAB`)
    and return it as stacks_of shows it once CREATE_COMPLETE. BadInput (exit 2, nothing
    built) for bad input: a bad or taken stack name, template errors, an import of an export
    nobody has, a duplicate export name; LabError (exit 1) if the stack rolled back
    (ROLLBACK_COMPLETE, the stack stays listed as on AWS). `on_event` gets the stack's
    events once the holder answered."""
    stack = naming.validate_stack_name(name or naming.stack_name_from_template(template))
    state = _running_state(lab)
    if any(s["name"] == stack for s in stacks_of(lab, state)):
        raise BadInput(
            f"Stack [{stack}] already exists",
            hint=f"testbed stacks {lab} lists the lab's stacks; choose another --stack-name",
        )
    request = CreateStackRequest(
        op="create_stack",
        name=stack,
        template=str(Path(template).resolve()),
        params={k: str(v) for k, v in (params or {}).items()},
    )
    _ask_with_events(lab, stack, request, on_event, timeout)
    return next(s for s in stacks_of(lab, _running_state(lab)) if s["name"] == stack)


def delete_stack(
    lab: str,
    stack: str,
    on_event: Callable[[Event], None] | None = None,
    timeout: float = 120.0,
) -> None:
    """Delete one stack of the running lab `lab` (`testbed down LAB --stack S`): its
    resources in reverse creation order, each with DELETE_IN_PROGRESS and DELETE_COMPLETE.
    Refused while another stack imports one of its exports, with AWS's text "Export {name}
    cannot be deleted as it is in use by {stack}" (BadInput, exit 2; the stack keeps its
    status, as on AWS).

    Deleting the lab's last stack is the lab's down: this returns once the holder has ended,
    the lab DELETE_COMPLETE; its folder stays with its events (state, `testbed events`), as
    AWS keeps a deleted stack's events, until `testbed clean`, the next `testbed up` of that
    name or Lab.up's exit removes it."""
    naming.validate_stack_name(stack)
    state = _running_state(lab)
    names = [s["name"] for s in stacks_of(lab, state)]
    if stack not in names:
        raise BadInput(
            f"Stack with id {stack} does not exist",
            hint=f"the stacks of lab {lab}: {', '.join(names)}",
        )
    request = DeleteStackRequest(op="delete_stack", name=stack)
    then = None
    if names == [stack]:

        def then() -> None:
            _wait_lab_ended(lab, state, timeout)

    _ask_with_events(lab, stack, request, on_event, timeout, then)


def _wait_lab_ended(lab: str, state: dict[str, Any], timeout: float) -> None:
    """Until the holder of `lab` (as `state` tells it) has ended; LabError unless it ended
    with the lab DELETE_COMPLETE."""
    wait_for(
        lambda: not holder_alive(state),
        timeout,
        f"the holder of lab {lab} (pid {state['pid']}) to delete the lab's last stack and end",
    )
    ended = read_state(naming.lab_dir(lab)) or {}
    if ended.get("state") != "DELETE_COMPLETE":
        raise LabError(
            f"the holder of lab {lab} ended with the lab {ended.get('state', 'gone')}, not "
            f"DELETE_COMPLETE (testbed clean {lab} removes what it left); holder.log ends "
            "with:\n" + log_tail(naming.lab_dir(lab) / "holder.log", 25)
        )


def _ask_with_events(
    lab: str,
    stack: str,
    request: HolderRequest,
    on_event: Callable[[Event], None] | None,
    timeout: float,
    then: Callable[[], None] | None = None,
) -> None:
    """Ask the holder (then call `then`, which waits for what the reply does not cover);
    then hand `on_event` the stack's events the op made (also when it failed: they say how
    far it got). The events file stays open from before the op: its events are read even
    if the folder is removed meanwhile."""
    key = "" if stack == lab else stack
    follower = EventFollower(naming.lab_dir(lab))
    follower.new()  # what happened before this op
    try:
        ask_holder(lab, request, Reply, timeout)
        if then is not None:
            then()
    finally:
        events = [e for e in follower.new() if e.stack == key]
        follower.close()
        if on_event is not None:
            for event in events:
                on_event(event)


def ask_holder(name: str, request: HolderRequest, reply_type: type[R], timeout: float = 15.0) -> R:
    """One request to lab `name`'s holder; its reply, typed as the op's (testbed.messages).
    The holder's own refusals of bad input come back as BadInput (exit 2), anything else
    that fails as LabError."""
    try:
        return asks.ask(str(naming.lab_dir(name) / HOLDER_SOCK), request, reply_type, timeout)
    except (rpc.RpcUnavailable, OSError) as exc:
        raise LabError(f"the holder of lab {name} does not answer: {exc}") from exc
    except rpc.RpcRefused as exc:
        error = exc.reply.get("error") or f"{request['op']} failed"
        raise (BadInput(error) if exc.bad_input else LabError(error)) from None


def _stop_holder(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def leftovers_exist(name: str) -> bool:
    return any(leftovers(name).values())


def stop_lab(name: str, timeout: float = 60.0, reason: str | None = None) -> TeardownReport | None:
    """Tear a lab down: through its holder if alive, else directly. Raises BadInput if no
    such lab exists. `reason` goes into the DELETE_IN_PROGRESS event (default "User
    Initiated")."""
    naming.validate_lab_name(name)
    lab_dir = naming.lab_dir(name)
    state = read_state(lab_dir)
    if state is None and not lab_dir.exists() and not leftovers_exist(name):
        raise BadInput(f"no lab named {name!r}", hint="testbed status lists the labs")
    keep_dir = False
    if holder_alive(state):
        assert state is not None
        # A lab asked to keep its folder keeps it when it goes down; a dead one's goes.
        keep_dir = bool(state.get("keep_dir"))
        try:
            request = DownRequest(op="down", reason=reason)
            rpc.call(str(lab_dir / HOLDER_SOCK), request, timeout=10)
        except (rpc.RpcUnavailable, OSError):
            os.kill(state["pid"], signal.SIGTERM)
        wait_for(
            lambda: not holder_alive(state),
            timeout,
            f"the holder of lab {name} (pid {state['pid']}) to stop",
        )
    # The holder removed everything; this catches what a dead holder left.
    return teardown(name, keep_dir=keep_dir)


class LabHost:
    """A host of a running lab: run commands in its namespace."""

    def __init__(self, lab: str, info: dict[str, Any]) -> None:
        self.lab = lab
        self.info = info
        self.name = info["name"]
        self.ip = info["ip"]
        self.public_ip = info.get("public_ip")

    def argv(self, argv: Sequence[str]) -> list[str]:
        return netns_argv(self.lab, self.name, argv, record=None)

    def run(
        self, argv: Sequence[str] | str, timeout: float = 60.0, check: bool = False, **kwargs: Any
    ) -> subprocess.CompletedProcess:
        """Run a command (argv list, or a shell string) and wait for it."""
        if isinstance(argv, str):
            argv = ["sh", "-c", argv]
        return subprocess.run(
            self.argv(argv), capture_output=True, text=True, timeout=timeout, check=check, **kwargs
        )

    def cmd(self, command: str, timeout: float = 60.0) -> str:
        """Run a shell command and return its output (stdout then stderr), like Mininet."""
        proc = self.run(command, timeout=timeout)
        return proc.stdout + proc.stderr

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen:
        """Start a command in the host; the caller ends it (teardown kills it otherwise)."""
        # On another server it records itself there (its PID: the teardown ends it by it).
        return subprocess.Popen(netns_argv(self.lab, self.name, argv, record="popen"), **kwargs)

    def fault(self, kind: str, value: str | None = None) -> dict[str, Any]:
        """Inject a fault into this host's http-backend or appliance (testbed.lab.faults)."""
        return apply_fault(Lab(self.lab), self.name, kind, value)

    def __repr__(self) -> str:
        return f"<LabHost {self.lab}/{self.name} {self.ip}>"


def _target_name(row: TargetDescription) -> str:
    """A target as target_states names it: its instance's host (a launched instance's Id is
    its EC2 id), else the address of an IP target."""
    host = row.get("Host")
    if host and not row["Target"]["Id"][:1].isdigit():
        return host
    return row["Target"]["Id"].removeprefix("i-")


class Lab:
    """A running lab: its state, hosts and outputs."""

    def __init__(self, name: str) -> None:
        self.name = naming.validate_lab_name(name)
        self.dir = naming.lab_dir(name)

    @property
    def state(self) -> dict[str, Any]:
        state = read_state(self.dir)
        if state is None:
            raise BadInput(f"no lab named {self.name!r}")
        return state

    @property
    def hosts(self) -> list[LabHost]:
        return [LabHost(self.name, h) for h in self.state.get("hosts", [])]

    @property
    def outputs(self) -> dict[str, Any]:
        return self.state.get("outputs", {})

    @property
    def datapath(self) -> str:
        return self.state.get("datapath", "")

    def host(self, name: str) -> LabHost:
        for h in self.state.get("hosts", []):
            if h["name"] == name:
                return LabHost(self.name, h)
        known = ", ".join(h["name"] for h in self.state.get("hosts", []))
        raise BadInput(f"lab {self.name} has no host {name!r} (hosts: {known})")

    def events(self) -> list[Event]:
        return read_events(self.dir)

    @property
    def plan(self) -> NetworkPlan:
        """The lab's network plan (as last updated)."""
        return NetworkPlan.from_json((self.dir / PLAN_FILE).read_text())

    def ask(self, request: HolderRequest, reply_type: type[R], timeout: float = 15.0) -> R:
        """One request to the lab's holder, its reply as `reply_type` (see ask_holder)."""
        return ask_holder(self.name, request, reply_type, timeout)

    # ---- waiting ----------------------------------------------------------------------
    def wait_for(
        self,
        condition: Callable[[], T | None],
        timeout: float,
        what: str,
        interval: float = 0.05,
        last: Callable[[], Any] | None = None,
    ) -> T:
        """Poll `condition` until it returns a true value (returned); WaitTimeout naming
        `what` and this lab otherwise (testbed.waiting.wait_for)."""
        return wait_for(condition, timeout, f"{what} (lab {self.name})", interval, last)

    # ---- load balancer targets ----------------------------------------------------------
    def targets(self, tg: str | None = None, lb: str | None = None) -> list[TargetDescription]:
        """Target health rows, like `aws elbv2 describe-target-health` (all groups by
        default)."""
        request = TargetsRequest(op="targets", tg=tg, lb=lb)
        return self.ask(request, TargetsReply)["targets"]

    def target_states(self, tg: str | None = None, lb: str | None = None) -> dict[str, str]:
        """{target: state} of a target group (of every group when tg is None: a target in
        several groups shows a state other than healthy if it has one); instance targets by
        instance name (without AWS's "i-"), IP targets by address."""
        states: dict[str, str] = {}
        for row in self.targets(tg, lb):
            name = _target_name(row)
            if states.get(name, "healthy") == "healthy":
                states[name] = row["TargetHealth"]["State"]
        return states

    def target_state(self, tg: str, target: str, lb: str | None = None) -> str:
        """One target's state ("removed" once it has left the group)."""
        return self.target_states(tg, lb).get(target, REMOVED)

    def wait_target_state(
        self, tg: str, target: str, state: str, timeout: float = 60.0, lb: str | None = None
    ) -> float:
        """Wait until `target` of `tg` is in `state`; the seconds it took."""
        started = time.monotonic()
        self.wait_for(
            lambda: self.target_state(tg, target, lb) == state,
            timeout,
            f"{target} of {tg} to be {state}",
            interval=0.1,
            last=lambda: self.target_state(tg, target, lb),
        )
        return time.monotonic() - started

    def wait_healthy(
        self,
        tg: str | None = None,
        targets: Iterable[str] | None = None,
        timeout: float = 60.0,
        lb: str | None = None,
    ) -> float:
        """Wait until `targets` (default: every registered target) of `tg` (default: of every
        group) are healthy; the seconds it took. Measurements wait for this: a half-checked
        group skews every share."""
        wanted = list(targets) if targets is not None else None
        started = time.monotonic()

        def all_healthy() -> bool:
            states = self.target_states(tg, lb)
            names = wanted if wanted is not None else list(states)
            return bool(names) and all(states.get(t) == "healthy" for t in names)

        self.wait_for(
            all_healthy,
            timeout,
            f"the targets of {tg or 'every group'} to be healthy",
            interval=0.1,
            last=lambda: self.target_states(tg, lb),
        )
        return time.monotonic() - started

    def register(
        self, tg: str, target: str, port: int | None = None, lb: str | None = None
    ) -> RegisterReply:
        """Register an instance (by name) or an IP target, as `testbed register` does."""
        request = RegisterRequest(op="register", tg=tg, lb=lb, target=target, port=port)
        return self.ask(request, RegisterReply)

    def deregister(
        self, tg: str, target: str, port: int | None = None, lb: str | None = None
    ) -> RegisterReply:
        """Deregister a target: it drains for the group's deregistration delay."""
        request = RegisterRequest(op="deregister", tg=tg, lb=lb, target=target, port=port)
        return self.ask(request, RegisterReply)

    # ---- classic load balancers -----------------------------------------------------------
    def classic_load_balancers(self) -> list[str]:
        """The lab's classic load balancers (logical ids)."""
        return [
            lb["name"] for lb in self.state.get("load_balancers", []) if lb.get("type") == "classic"
        ]

    def instance_health(self, lb: str) -> list[dict[str, Any]]:
        """Classic load balancer `lb`'s InstanceStates, as `aws elb describe-instance-health`
        gives them (InstanceId, State InService/OutOfService, ReasonCode, Description), plus
        the lab's Host, AvailabilityZone and LastCheck (testbed.lab.classic_health)."""
        classic = self.classic_load_balancers()
        if lb not in classic:
            raise BadInput(
                f"{lb!r} is not a classic load balancer of lab {self.name}",
                hint=f"classic load balancers: {', '.join(classic) or 'none'}",
            )
        return clb_instance_health(self.targets(lb, lb), lb)

    def wait_in_service(self, lb: str, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Wait until exactly `count` instances of classic load balancer `lb` are InService
        (as describe-instance-health counts them: a deregistered instance still is while its
        connections drain); its InstanceStates then. The timeout's error lists the states."""

        def reached() -> list[dict[str, Any]] | None:
            states = self.instance_health(lb)
            in_service = [s for s in states if s["State"] == IN_SERVICE]
            return states if len(in_service) == count else None

        def last() -> list[tuple[str, str, str, str]]:
            return [
                (s["InstanceId"], s["Host"] or "-", s["State"], s["ReasonCode"])
                for s in self.instance_health(lb)
            ]

        return self.wait_for(
            reached,
            timeout,
            f"{count} instances of {lb} to be InService",
            interval=0.1,
            last=last,
        )

    def target_events(self, since: float = 0.0) -> list[TargetEvent]:
        """Target health transitions at or after `since` (epoch s), oldest first."""
        path = self.dir / TARGET_EVENTS_FILE
        rows: list[TargetEvent] = []
        for line in path.read_text().splitlines() if path.exists() else []:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line being written right now
            if event["time"] >= since:
                rows.append(event)
        return rows

    def wait_target_event(
        self, target: str, state: str, since: float, timeout: float
    ) -> TargetEvent:
        """The first transition of `target` (registry key, e.g. "WebA1:80") to `state` at or
        after `since`, once it has happened."""

        def found() -> TargetEvent | None:
            return next(
                (
                    e
                    for e in self.target_events(since)
                    if e["target"] == target and e["new"] == state
                ),
                None,
            )

        return self.wait_for(found, timeout, f"{target} to turn {state}")

    # ---- Auto Scaling ---------------------------------------------------------------------
    def asg(self, group: str | None = None) -> list[dict[str, Any]]:
        """Auto Scaling groups (one if `group`: logical id or name), like
        describe-auto-scaling-groups' AutoScalingGroups: MinSize, MaxSize, DesiredCapacity,
        Instances [{InstanceId, Host, AvailabilityZone, LifecycleState, HealthStatus, ...}]."""
        request = AsgDescribeRequest(op="asg_describe", group=group)
        return self.ask(request, AsgDescribeReply)["groups"]

    def asg_group(self, group: str) -> dict[str, Any]:
        """One group's description (see asg)."""
        return self.asg(group)[0]

    def activities(self, group: str, limit: int | None = None) -> list[dict[str, Any]]:
        """A group's scaling activities, newest first (describe-scaling-activities)."""
        request = AsgActivitiesRequest(op="asg_activities", group=group, limit=limit)
        return self.ask(request, AsgActivitiesReply)["activities"]

    def scale(
        self,
        group: str,
        desired: int | None = None,
        min: int | None = None,
        max: int | None = None,
        honour_cooldown: bool = False,
    ) -> dict[str, Any]:
        """set-desired-capacity (and MinSize / MaxSize): the group after the change. BadInput
        with AWS's message when desired is outside min/max."""
        request = AsgSetCapacityRequest(
            op="asg_set_capacity",
            group=group,
            desired=desired,
            min=min,
            max=max,
            honour_cooldown=honour_cooldown,
        )
        return self.ask(request, AsgGroupReply)["group"]

    def complete_lifecycle(
        self, group: str, hook: str, instance: str, result: str = "CONTINUE"
    ) -> None:
        """complete-lifecycle-action: the instance (id or host) waiting in `hook` goes on
        (CONTINUE) or is abandoned (ABANDON)."""
        request = AsgCompleteLifecycleRequest(
            op="asg_complete_lifecycle", group=group, hook=hook, instance=instance, result=result
        )
        self.ask(request, Reply)

    def alarms(self) -> list[dict[str, Any]]:
        """CloudWatch alarms (the template's and target tracking's), like describe-alarms'
        MetricAlarms plus RecentDatapoints."""
        return self.ask(AlarmsDescribeRequest(op="alarms_describe"), AlarmsReply)["alarms"]

    def asg_instances(self, group: str, state: str | None = "InService") -> list[dict[str, Any]]:
        """The group's instances (in lifecycle `state` only, unless None)."""
        return [
            i
            for i in self.asg_group(group).get("Instances", [])
            if state is None or i.get("LifecycleState") == state
        ]

    def wait_asg(
        self, group: str, count: int, timeout: float = 120.0, targets_healthy: bool = True
    ) -> dict[str, Any]:
        """Wait until `group` has exactly `count` instances, all InService and Healthy (none
        Pending or Terminating any more) and, if `targets_healthy`, each one healthy in every
        target group it is registered in (InService in every classic load balancer); the
        group's description then."""

        def settled() -> dict[str, Any] | None:
            described = self.asg_group(group)
            instances = described.get("Instances", [])
            if len(instances) != count or any(
                i.get("LifecycleState") != "InService" or i.get("HealthStatus") != "Healthy"
                for i in instances
            ):
                return None
            # Its target groups and classic load balancers (whose group is named after them).
            if targets_healthy and (
                described.get("TargetGroupARNs") or described.get("LoadBalancerNames")
            ):
                hosts = {i["Host"] for i in instances}
                rows = [r for r in self.targets() if r.get("Host") in hosts]
                seen = {r.get("Host") for r in rows}
                if seen != hosts or any(r["TargetHealth"]["State"] != "healthy" for r in rows):
                    return None
            return described

        def last() -> Any:
            return [
                (i.get("Host"), i.get("LifecycleState"), i.get("HealthStatus"))
                for i in self.asg_group(group).get("Instances", [])
            ]

        return self.wait_for(
            settled,
            timeout,
            f"group {group} to have {count} instances InService and healthy",
            interval=0.2,
            last=last,
        )

    def controller_restarts(self, enabled: bool) -> ControllerRestartsReply:
        """Allow (the default) or pause the holder's restarts of a dead controller, e.g. to
        watch the data plane run without one; allowed again, a dead one is restarted."""
        request = ControllerRestartsRequest(op="controller_restarts", enabled=enabled)
        return self.ask(request, ControllerRestartsReply)

    def drift(self, stack: str | None = None) -> dict[str, Any]:
        """How `stack` (default: the lab's first) differs from its template, like AWS's
        detect-stack-drift: StackDriftStatus IN_SYNC | DRIFTED and StackResourceDrifts as
        describe-stack-resource-drifts gives them (testbed.lab.drift says what is compared).
        BadInput for a stack the lab does not have."""
        return detect_drift(self, stack)

    def down(self) -> TeardownReport | None:
        return stop_lab(self.name)

    def update(
        self, template: str, params: dict[str, Any] | None = None, stack: str | None = None
    ) -> UpdateReply:
        """Apply a new template to this running lab, or to its stack `stack` (update_lab)."""
        return update_lab(self.name, template, params, stack=stack)

    # ---- stacks (issue 14) --------------------------------------------------------------
    def create_stack(
        self,
        template: str,
        params: dict[str, Any] | None = None,
        name: str | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> dict[str, Any]:
        """Add a stack to this lab (see create_stack); the stack as stacks() shows it."""
        return create_stack(self.name, template, params, name, on_event)

    def stacks(self) -> list[dict[str, Any]]:
        """This lab's stacks in creation order (see stacks_of)."""
        return stacks_of(self.name, self.state)

    def stack(self, name: str) -> dict[str, Any]:
        """One stack of this lab by name (BadInput if it has none of that name)."""
        stacks = self.stacks()
        for s in stacks:
            if s["name"] == name:
                return s
        known = ", ".join(s["name"] for s in stacks)
        raise BadInput(f"Stack with id {name} does not exist (stacks of lab {self.name}: {known})")

    def delete_stack(self, name: str, on_event: Callable[[Event], None] | None = None) -> None:
        """Delete one stack of this lab (see delete_stack)."""
        delete_stack(self.name, name, on_event)

    @classmethod
    def attach(cls, name: str) -> Lab:
        """The running lab `name` (BadInput if there is none)."""
        lab = cls(name)
        if not holder_alive(read_state(lab.dir)):
            raise BadInput(f"lab {name!r} is not running", hint="testbed status lists the labs")
        return lab

    @classmethod
    @contextmanager
    def up(
        cls,
        template: str,
        params: dict[str, Any] | None = None,
        name: str | None = None,
        datapath: str | None = None,
        on_event: Callable[[Event], None] | None = None,
        keep_dir: bool | None = None,
        gwlb_datapath: str | None = None,
        servers: dict[str, str] | str | None = None,
        ssh_config: str | None = None,
        tunnel_rate: str | int | None = None,
    ) -> Iterator[Lab]:
        """Bring a lab up for the duration of a `with` block; always torn down after.

        The lab belongs to this process (start_lab's `owned`): if the process ends without
        leaving the block (kill -9, os._exit), the lab's holder tears it down. Inside the
        block SIGTERM and SIGHUP raise Terminated (a KeyboardInterrupt) unless the program
        handles them itself, so the block is left and the teardown runs as on Ctrl-C."""
        name = name or random_name(naming.name_from_template(template))
        owner = this_process().describe()
        with unwind_on_termination():
            # start_lab removes what it made when it fails (a kept folder stays kept).
            start_lab(
                template,
                params,
                name=name,
                datapath=datapath,
                on_event=on_event,
                keep_dir=keep_dir,
                gwlb_datapath=gwlb_datapath,
                servers=servers,
                ssh_config=ssh_config,
                tunnel_rate=tunnel_rate,
            )
            ending = f"{owner} left Lab.up"
            try:
                yield cls(name)
            except BaseException as exc:
                ending = f"{owner} left Lab.up on {type(exc).__name__}: {exc}"[:300]
                raise
            finally:
                with suppress(BadInput):
                    stop_lab(name, reason=ending)
