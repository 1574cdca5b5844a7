"""The process that holds a running lab: `python -m testbed.stack.holder LAB_DIR`.

`testbed up` writes LAB_DIR/request.json and starts this process in its own session. It
builds the lab (reporting events), then stays in the background: it answers requests on
LAB_DIR/holder.sock (status, down, update, the load balancers' requests), restarts the
controller when it dies (testbed.stack.supervisor), and on `down`, SIGTERM or a failed
build removes everything the lab created. Its PID is the lab's `pid` in status.

A lab with an owner (testbed.lab.owner) is also removed when its owner process ends: during
the build the owner's watch stops the build as SIGTERM does (rollback), afterwards it takes
the lab down as `testbed down` does, with the owner in the events' reason. Whatever ends it,
the holder leaves nothing behind, its lab directory included, unless the request asked to
keep that directory (events, logs) for a post-mortem.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import fields, is_dataclass, replace
from pathlib import Path
from typing import Any, cast

from testbed import asks, naming
from testbed.autoscaling.service import AutoScalingService, autoscaling_service
from testbed.errors import BadInput, LabError, TestbedError
from testbed.lab import certs, gwlb_switch, zones
from testbed.lab import servers as lab_servers
from testbed.lab.builder import NETWORK_ID, NETWORK_TYPE, STACK_TYPE, LabBuilder
from testbed.lab.capabilities import Capabilities, detect
from testbed.lab.controller_proc import ControllerProcess
from testbed.lab.events import EventLog, read_events
from testbed.lab.instances import InstanceLauncher
from testbed.lab.owner import Owner, OwnerWatch
from testbed.lab.procs import LAB_LABEL, STOP_SHIELD, ProcessJournal, start_time
from testbed.lab.signals import set_expected_policies
from testbed.lab.state import write_state
from testbed.lab.teardown import remove_lab_dir, teardown
from testbed.lb.service import LbService
from testbed.messages import (
    HOLDER_OPS,
    ControllerInfo,
    CreateStackRequest,
    HolderRequest,
    HolderStatusReply,
    LabRequest,
    Reply,
    StacksReply,
    UpdateReply,
    UpdateRequest,
)
from testbed.model import StackModel, load_model, load_model_text
from testbed.model.autoscaling_types import AutoScalingGroup
from testbed.model.changeset import MODIFY, ChangeSet, ResourceChange, template_digest
from testbed.model.changeset_diff import StackTemplate, compute_change_set
from testbed.naming import CONTROLLER_SOCK, HOLDER_SOCK, PLAN_FILE, REQUEST_FILE
from testbed.plan import gwlb_datapath, merge
from testbed.plan.changes import describe, plan_changes, route_changes, security_changes
from testbed.plan.instances import launched, with_host
from testbed.plan.network import LinkPlan, NetworkPlan, SwitchPlan, build_plan
from testbed.plan.placement import Placement
from testbed.plan.placement import describe as describe_placement
from testbed.plan.update_hosts import rebase_hosts, replace_also, running_addresses
from testbed.rpc import RpcServer
from testbed.stack import live_switches
from testbed.stack.lab_stacks_ops import StackOps, live_resources
from testbed.stack.stacks import LabStacks, StackRecord
from testbed.stack.supervisor import ControllerSupervisor
from testbed.stack.update_apply import UpdateEngine, UpdateFailed, UpdateWork
from testbed.topologies.cluster import LabServers

# States in which the lab runs as built (or as last updated).
RUNNING_STATES = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stop(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT (or the owner's end) during the build:
    stop building, roll back. A BaseException, as KeyboardInterrupt is: it may be raised
    anywhere in the build, and no `except Exception` on its way (a probe that ignores its
    own failures, say) may swallow it."""


class Holder:
    def __init__(self, lab_dir: Path) -> None:
        self.lab_dir = lab_dir
        # Written by start_lab (testbed.lab.api) just before it started this process.
        self.request: LabRequest = json.loads((lab_dir / REQUEST_FILE).read_text())
        self.name = self.request["name"]
        self.owner = Owner.from_dict(self.request.get("owner"))
        self.keep_dir = bool(self.request.get("keep_dir"))
        self.events = EventLog(lab_dir)
        self.journal = ProcessJournal(lab_dir)
        self.state: dict[str, Any] = {
            "name": self.name,
            "pid": os.getpid(),
            "pid_start": start_time(os.getpid()),
            "prefix": naming.prefix(self.name),
            "state": "CREATE_IN_PROGRESS",
            "template": self.request["template"],
            # The text itself: the file may be edited while the lab runs, and `testbed plan`
            # compares a new template with what the lab was built from.
            "template_text": _template_text(self.request["template"]),
            "params": self.request.get("params", {}),
            "region": self.request.get("region") or "us-east-1",
            "created": time.time(),
            "lab_dir": str(lab_dir),
            "owner": self.owner.to_dict() if self.owner else None,
            "keep_dir": self.keep_dir,
        }
        self.builder: LabBuilder | None = None
        self.lb_service: LbService | None = None
        self.autoscaling: AutoScalingService | None = None
        # The current plan is the holder's: Auto Scaling adds and removes hosts (publish_plan).
        self.plan_lock = threading.RLock()
        self.supervisor: ControllerSupervisor | None = None
        self.server: RpcServer | None = None
        self.down_requested = threading.Event()
        self.lock = threading.Lock()
        self.update_lock = threading.Lock()
        self.caps: Capabilities | None = None
        # True until the lab is built: a stop then raises Stop (rollback); afterwards it only
        # records why (stop_reason) and serve() takes the lab down.
        self.building = True
        self.stop_reason: str | None = None
        self.stop_raised = False
        # The lab's stacks (issue 14): the first is the one built here, named after the lab.
        self.stacks = LabStacks()
        self.stack_lock = threading.Lock()
        self.stack_launcher: InstanceLauncher | None = None
        # The switch GWLB datapath's tunnel neighbours, set again while the lab runs.
        self.neighbours: gwlb_switch.TunnelNeighbours | None = None

    # ---- stopping -----------------------------------------------------------------------
    def signalled(self, signum: int, frame: Any = None) -> None:
        """SIGTERM/SIGINT handler (main thread)."""
        if self.stop_reason is None:
            self.stop_reason = f"stopped by {signal.Signals(signum).name}"
        if not self.building or self.stop_raised:
            return  # serve() sees stop_reason; nothing is raised into a running lab
        self.stop_raised = True  # once: a second Stop would escape the rollback
        reason = self.stop_reason

        def stop() -> None:
            raise Stop(reason)

        if not STOP_SHIELD.defer(stop):
            stop()

    def watch_owner(self) -> None:
        """Tear the lab down when its owner ends (nothing to do for a lab without owner)."""
        if self.owner is not None:
            OwnerWatch(self.owner, self.owner_exited).start()

    def owner_exited(self) -> None:
        """From the owner's watch thread: stop the build, or take the running lab down."""
        assert self.owner is not None
        if self.stop_reason is None:
            self.stop_reason = f"{self.owner.describe()} exited"
        self.down_requested.set()
        if self.building:
            # Python runs handlers in the main thread; a thread-directed signal also wakes
            # it from a blocking call.
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)

    def _ignore_stops(self) -> None:
        """From here the teardown runs to its end whatever arrives."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)

    def _finish(self) -> None:
        """Last step of every ending: the lab directory goes too, unless asked to stay."""
        if not self.keep_dir:
            remove_lab_dir(self.name)

    def run(self) -> int:
        """Build, then hold the lab until it is taken down; the process's exit code."""
        if not self.build():
            return 1
        self.serve()
        return 0

    def save(self, **changes: Any) -> None:
        with self.lock:
            self.state.update(changes)
            write_state(self.lab_dir, self.state)

    # ---- build ------------------------------------------------------------------------
    def build(self) -> bool:
        try:
            self.save()
            self.events.emit(self.name, STACK_TYPE, "CREATE_IN_PROGRESS", "User Initiated")
            # Signals were blocked since the start (main): one that came early is raised here.
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            self.watch_owner()
            model = load_model(
                self.request["template"],
                self.request.get("params") or {},
                stack_name=self.name,
                region=self.request.get("region") or "us-east-1",
            )
            if model.lab.time_scale != 1.0:
                factor = f"{model.lab.time_scale:g}"
                self.events.emit(
                    self.name,
                    STACK_TYPE,
                    "CREATE_IN_PROGRESS",
                    f"time scale {factor}: Auto Scaling, alarms and health checks run "
                    f"{factor}x faster than AWS",
                )
            caps = self.caps = detect()
            datapath = self._datapath(self.request.get("datapath") or model.lab.datapath, caps)
            limitations = []
            asked_delay_ms = model.lab.inter_az_delay_ms  # before what cannot be is dropped
            if model.lab.inter_az_delay_ms and not caps.netem:
                limitations.append(
                    f"InterAzDelayMs={model.lab.inter_az_delay_ms:g} not "
                    "applied: this kernel has no sch_netem"
                )
            if model.lab.link_bandwidth_mbps and not caps.htb:
                limitations.append("LinkBandwidthMbps not applied: this kernel has no HTB")
            if limitations:
                # Drop what cannot be applied rather than fail: the run's metadata says so.
                model = _without_tc(model, caps)
                for text in limitations:
                    self.events.emit(
                        self.name, STACK_TYPE, "CREATE_IN_PROGRESS", f"warning: {text}"
                    )
            plan = build_plan(model, self.name, zone_base=zones.reserve(self.name))
            plan = self._gwlb_datapath(plan, datapath)
            if plan.load_balancers:
                # Health checkers talk to the holder while the lab is still being built.
                self.lb_service = LbService(self.lab_dir, plan, self.events)
            self.server = RpcServer(str(self.lab_dir / HOLDER_SOCK), self.handle)
            self.server.start()
            self.save(
                datapath=datapath,
                limitations=limitations,
                capabilities=caps.to_dict(),
                azs=list(model.azs),
                ignored=[f"{i.logical_id}.{i.property}" for i in model.ignored],
            )
            cluster = self._servers(plan, asked_delay_ms)
            self.builder = LabBuilder(
                self.name, model, plan, datapath, self.events, self.journal, cluster=cluster
            )
            if model.auto_scaling_groups or model.alarms:
                # Alarms are evaluated by the same service, with or without groups.
                builder = self.builder
                self.builder.after_programs = lambda: self._start_autoscaling(builder, model)
            self.builder.build()
            self.building = False  # from here on a stop takes the built lab down (serve)
        except (Exception, Stop) as exc:
            reason = str(exc) if isinstance(exc, (TestbedError, Stop)) else _brief(exc)
            if not isinstance(exc, (TestbedError, Stop)):
                (self.lab_dir / "holder.log").open("a").write(traceback.format_exc())
            self.rollback(reason)
            return False
        controller = self.builder.controller
        assert controller is not None  # the build started it
        self.stacks.add(
            StackRecord(
                name=self.name,
                qualifier="",
                template=self.request["template"],
                params=dict(self.request.get("params") or {}),
                model=model,
                status="CREATE_COMPLETE",
                created=self.state["created"],
                outputs=dict(model.outputs),
                template_text=self.state.get("template_text"),
                hosts=tuple(h.name for h in self.builder.plan.hosts),
            )
        )
        plan = self.builder.plan  # with the instances Auto Scaling launched
        self.save(
            state="CREATE_COMPLETE",
            stacks=self.stacks.to_state(),  # the same from the start as once stacks change
            ready=time.time(),
            controller=_controller_info(controller),
            outputs=dict(model.outputs),
            hosts=host_listing(plan, self._cluster()),
            # Status asks the holder about these (their instances change while the lab runs).
            auto_scaling_groups=list(model.auto_scaling_groups),
            time_scale=model.lab.time_scale,
            load_balancers=_load_balancers(plan),
            switches=[
                {"name": s.name, "dpid": s.dpid, "role": s.role, "az": s.az} for s in plan.switches
            ],
        )
        if self.lb_service:
            self.lb_service.start()
        routes = gwlb_datapath.plumbing(plan).routes
        if routes:
            self.neighbours = gwlb_switch.TunnelNeighbours(routes, self._neighbour_failed)
        self.supervisor = ControllerSupervisor(
            controller,
            [s.name for s in plan.switches],
            self.events,
            state=lambda: self.state["state"],
            save=self.save,
            push_targets=self.lb_service.push_all if self.lb_service else None,
            running_states=RUNNING_STATES,
        )
        self.events.emit(
            self.name,
            STACK_TYPE,
            "CREATE_COMPLETE",
            f"ready in {time.time() - self.state['created']:.1f} s",
        )
        return True

    def _cluster(self) -> LabServers | None:
        """The lab's servers when it spans several (None: this machine only)."""
        return getattr(self.builder, "cluster", None)

    def _servers(self, plan: NetworkPlan, delay_ms: float = 0.0) -> LabServers | None:
        """A lab across servers (issue 18): reach them, choose the tunnel, place the plan,
        keep it in the lab's folder (servers.json) before anything is made on a server."""
        wanted = self.request.get("servers")
        if not wanted:
            return None
        cluster = lab_servers.prepare(
            self.name,
            plan,
            wanted,
            self.request.get("ssh_config"),
            tunnel_rate=self.request.get("tunnel_rate"),
            delay_ms=delay_ms,
        )
        cluster.save(self.lab_dir)
        for line in describe_placement(cluster.placement):
            self.events.emit(self.name, STACK_TYPE, "CREATE_IN_PROGRESS", f"servers: {line}")
        self.events.emit(
            self.name, STACK_TYPE, "CREATE_IN_PROGRESS", f"tunnel: {cluster.tunnel_reason}"
        )
        self.save(
            servers={h: cluster.placement.nodes[h] for h in cluster.placement.nodes},
            tunnel=cluster.placement.tunnel,
            tunnel_reason=cluster.tunnel_reason,
            mtu=cluster.placement.mtu.note,
            tunnel_shaping=cluster.shaping,
        )
        self.events.emit(self.name, STACK_TYPE, "CREATE_IN_PROGRESS", f"tunnels: {cluster.shaping}")
        return cluster

    def _gwlb_datapath(self, plan: NetworkPlan, datapath: str) -> NetworkPlan:
        """Switch or node for the lab's GWLBs (testbed.plan.gwlb_datapath): the request's
        choice, auto by default; "switch" that cannot be fails the build."""
        if not gwlb_datapath.gwlb_nodes(plan):
            return plan
        wanted = self.request.get("gwlb_datapath") or gwlb_datapath.DEFAULT
        decision, facts = gwlb_switch.decide_and_claim(plan, wanted, datapath)
        if decision.refused:
            raise TestbedError(
                f"--gwlb-datapath switch: Open vSwitch cannot steer this lab's GWLB traffic: "
                f"{decision.reason}"
            )
        if decision.datapath == gwlb_datapath.SWITCH:
            text = f"GWLB datapath: switch (Open vSwitch steers: {facts.capability_note})"
        elif decision.reason:
            text = f"GWLB datapath: node, not switch: {decision.reason}"
        else:
            text = "GWLB datapath: node (asked for)"
        self.events.emit(self.name, STACK_TYPE, "CREATE_IN_PROGRESS", text)
        self.save(gwlb_datapath=decision.datapath, gwlb_datapath_reason=decision.reason)
        return gwlb_datapath.for_datapath(plan, decision)

    def _datapath(self, wanted: str | None, caps: Capabilities) -> str:
        if wanted in (None, "", "auto"):
            return caps.default_datapath()
        if wanted == "kernel" and not caps.kernel_datapath:
            raise TestbedError(
                "datapath 'kernel' asked for, but the Open vSwitch kernel module "
                "is not loaded here; use --datapath user (or auto)"
            )
        return wanted

    def _neighbour_failed(self, text: str) -> None:
        self.events.emit(NETWORK_ID, NETWORK_TYPE, "TUNNEL_NEIGHBOUR_FAILED", text)

    def rollback(self, reason: str) -> None:
        self._ignore_stops()
        self.events.emit(self.name, STACK_TYPE, "ROLLBACK_IN_PROGRESS", reason)
        if self.autoscaling:
            self.autoscaling.close()
        if self.lb_service:
            self.lb_service.close()
        if self.server:
            self.server.stop()
        if self.builder is not None:
            self.builder.metadata.close()  # its sockets hold the instances' namespaces
        report = teardown(self.name, keep_dir=True, exclude_pids=(os.getpid(),))
        self.save(state="ROLLBACK_COMPLETE", reason=reason)
        # `testbed up` has this file open: it reads the last events even once it is removed.
        self.events.emit(self.name, STACK_TYPE, "ROLLBACK_COMPLETE", report.summary())
        self._finish()

    # ---- running ----------------------------------------------------------------------
    def handle(self, request: dict[str, Any]) -> Reply:
        if request.get("op") not in HOLDER_OPS:
            return Reply(ok=False, error=f"unknown request {request.get('op')!r}")
        if self.lb_service is not None:
            reply = self.lb_service.handle(request)
            if reply is not None:
                return reply
        # JSON from the socket, read as the holder's requests (testbed.messages): a field
        # missing is a KeyError, which the caller gets as the error.
        req = cast(HolderRequest, request)
        if req["op"] == "status":
            with self.lock:
                return HolderStatusReply(ok=True, state=dict(self.state))
        if req["op"] == "stacks":
            with self.lock:
                return StacksReply(ok=True, stacks=self.stacks.to_state())
        if req["op"] in ("create_stack", "delete_stack"):
            return self.stack_request(req)
        if req["op"] == "down":
            if self.stop_reason is None:
                self.stop_reason = req.get("reason") or "User Initiated"
            self.down_requested.set()
            if self.building:
                # A build may wait long (resource signals, up to 12 h): stop it now, as
                # SIGTERM does (rollback), rather than after it.
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)
            return Reply(ok=True)
        if req["op"].startswith(("asg_", "alarms_")):
            if self.autoscaling is None:
                return Reply(
                    ok=False, error=f"lab {self.name} has no Auto Scaling group", bad_input=True
                )
            return self.autoscaling.handle(request)
        if req["op"] == "controller_restarts":
            if self.supervisor is None:
                return Reply(ok=False, error="controller_restarts: the lab is not built yet")
            return self.supervisor.set_enabled(bool(req["enabled"]))
        if req["op"] == "update":
            try:
                with self.update_lock:
                    return self.update(req)
            except BadInput as exc:
                return Reply(ok=False, error=exc.format(), bad_input=True)
            except TestbedError as exc:
                return Reply(ok=False, error=str(exc))
        return Reply(ok=False, error=f"{req['op']}: this lab has no load balancer")

    # ---- stacks (issue 14) -----------------------------------------------------------------
    def stack_ops(self) -> StackOps:
        """create_stack / delete_stack on this lab (testbed.stack.lab_stacks_ops)."""
        return StackOps(
            self.name,
            self.request.get("region") or "us-east-1",
            self.stacks,
            self.events,
            get_plan=self.current_plan,
            publish=self.publish_plan,
            launcher=self._stack_launcher,
            save=self._save_stacks,
            add_switches=self._add_switches,
            placement=self._placement,
        )

    def _placement(self) -> Placement | None:
        """Where the lab's nodes run when it spans servers (None: this machine only)."""
        cluster = self._cluster()
        return cluster.placement if cluster is not None else None

    def _add_switches(self, bridges: list[tuple[SwitchPlan, LinkPlan]]) -> None:
        """New bridges an added stack needs, programmed (testbed.stack.live_switches)."""
        builder = self.builder
        if builder is None or builder.network is None:
            raise LabError("stacks are added once the lab's network exists")
        live_switches.add_switches(builder.network, str(self.lab_dir / CONTROLLER_SOCK), bridges)

    def _stack_launcher(self) -> InstanceLauncher:
        """The one launcher of added stacks' hosts (it remembers them for their delete)."""
        builder = self.builder
        if builder is None or builder.network is None:
            raise LabError("stacks are added once the lab's network exists")
        if self.stack_launcher is None:
            self.stack_launcher = self._new_launcher(builder)
        return self.stack_launcher

    def _new_launcher(self, builder: LabBuilder) -> InstanceLauncher:
        """A launcher of hosts into the running lab (Auto Scaling has its own; added stacks
        and template updates share one, which remembers what it launched)."""
        if builder.network is None:
            raise LabError("hosts are launched once the lab's network exists")
        return InstanceLauncher(
            self.name,
            builder.network,
            self.journal,
            self.events,
            builder.datapath,
            get_plan=self.current_plan,
            publish=self.publish_plan,
            metadata=builder.metadata,
        )

    def _save_stacks(self) -> None:
        self.save(stacks=self.stacks.to_state())

    def stack_request(self, req: HolderRequest) -> Reply:
        """The ops create_stack and delete_stack, one at a time and not during an update."""
        if self.state["state"] not in RUNNING_STATES or self.builder is None:
            return Reply(
                ok=False,
                bad_input=True,
                error=f"lab {self.name} is {self.state['state']}; stacks are added once it runs",
            )
        try:
            with self.stack_lock, self.update_lock:
                ops = self.stack_ops()
                if req["op"] == "create_stack":
                    create: CreateStackRequest = req
                    ops.create(create["name"], create["template"], create.get("params") or {})
                else:
                    name = cast(Any, req)["name"]
                    self.stacks.get(name)  # BadInput if the lab has no such stack
                    if len(self.stacks) == 1:
                        self._delete_last_stack()
                    else:
                        ops.delete(name)
            return Reply(ok=True)
        except BadInput as exc:
            return Reply(ok=False, error=exc.format(), bad_input=True)
        except TestbedError as exc:
            return Reply(ok=False, error=str(exc))

    def _delete_last_stack(self) -> None:
        """Deleting the lab's last stack is the lab's down (docs/design/stacks.md §3.3): the
        reply says yes at once, serve() then deletes the stack's resources (their events)
        and ends the holder. The folder stays (state DELETE_COMPLETE, the events), as AWS
        keeps a deleted stack's events: the caller reads them once the holder has ended;
        the next `up` of that name, `testbed clean` or Lab.up's exit removes it."""
        if self.stop_reason is None:
            self.stop_reason = "User Initiated"
        self.keep_dir = True
        self.down_requested.set()

    def _delete_added_stacks(self, reason: str) -> None:
        """`down`: the stacks added to the lab, newest first, each with its DELETE events
        (the first stack goes with the lab's teardown)."""
        ops = self.stack_ops()
        for rec in self.stacks.newest_first():
            if not rec.qualifier:
                continue
            try:
                ops.delete(rec.name, reason)
            except Exception as exc:  # the teardown removes what is left
                self.events.emit(
                    rec.name, STACK_TYPE, "DELETE_FAILED", _brief(exc), stack=rec.event_key
                )

    # ---- Auto Scaling ---------------------------------------------------------------------
    def current_plan(self) -> NetworkPlan:
        builder = self.builder
        if builder is None:
            raise LabError("the lab has no plan before its build starts")
        return builder.plan

    def publish_plan(self, plan: NetworkPlan) -> None:
        """Make `plan` the lab's (hosts launched or terminated): plan.json, the builder's and
        the load balancers' plan, the controller (returns once every switch has it), and the
        hosts status and exec see."""
        with self.plan_lock:
            self._write_plan(plan)
            if self.builder is not None:
                self.builder.plan = plan
            if self.lb_service is not None:
                self.lb_service.set_plan(plan)
            try:
                asks.controller_reload_plan(str(self.lab_dir / CONTROLLER_SOCK), timeout=30.0)
            except Exception as exc:
                raise LabError(f"the controller did not take the new plan: {_brief(exc)}") from exc
            self.save(hosts=host_listing(plan, self._cluster()))

    def _start_autoscaling(self, builder: LabBuilder, model: StackModel) -> None:
        """The builder's hook once the template's programs run (before resource signals are
        waited for): launch every group's initial instances and wait until they are
        InService; a group that cannot launch them fails the stack (rollback)."""
        launcher = self._new_launcher(builder)
        service = self.autoscaling = autoscaling_service(
            self.name,
            self.lab_dir,
            model,
            launcher,
            self.lb_service,
            self.events,
            get_plan=self.current_plan,
        )
        service.start()
        service.wait_created(
            [lid for lid in model.auto_scaling_groups if lid not in model.signal_policies]
        )

    # ---- template updates ---------------------------------------------------------------
    def _write_plan(self, plan: NetworkPlan) -> None:
        # Certificates a new plan names (an update, an added stack) exist before it is read.
        certs.issue_all(self.lab_dir, plan)
        (self.lab_dir / (PLAN_FILE + ".tmp")).write_text(plan.to_json())
        os.replace(self.lab_dir / (PLAN_FILE + ".tmp"), self.lab_dir / PLAN_FILE)

    def update(self, request: UpdateRequest) -> UpdateReply:
        """Apply a new template (and parameters) to one stack of the running lab (the lab's
        first unless request["stack"] names another): what changes live (testbed.plan.changes,
        testbed.plan.update_hosts) through testbed.stack.update_apply, resource by resource,
        rolled back on failure; BadInput naming every change a running lab cannot take
        (nothing changed then)."""
        if self.state["state"] not in RUNNING_STATES or self.builder is None:
            raise BadInput(
                f"lab {self.name} is {self.state['state']}; it can be updated once it runs"
            )
        stack = request.get("stack") or self.name
        rec = self.stacks.get(stack) if stack in self.stacks else None
        if rec is None and stack != self.name:
            self.stacks.get(stack)  # BadInput: "Stack with id S does not exist"
        first = rec is None or not rec.qualifier
        qualifier = rec.qualifier if rec is not None else ""
        old_model = self.builder.model if first or rec is None else rec.model
        if first:
            old_text = self.state.get("template_text")
            old_params = self.state.get("params") or {}
            old_path = str(self.state.get("template"))
        else:
            assert rec is not None
            old_text, old_params, old_path = rec.template_text, rec.params, rec.template
        template = request["template"]
        params = request.get("params") or {}
        region = self.request.get("region") or "us-east-1"
        given_text = request.get("template_text")
        template_text = given_text if given_text is not None else _template_text(template)
        base = request.get("base_digest")
        if base is not None and base != template_digest(old_text or "", old_params):
            raise BadInput(
                f"stack {stack} of lab {self.name} changed since this plan was made (its "
                "template or parameters differ)",
                hint=f"make the plan again: testbed plan {self.name} TEMPLATE --out FILE",
            )
        several = len(self.stacks) > 1
        view = (
            self.stacks.view(
                excluding=stack, vpc_spaces={v.name: v.space for v in self.builder.plan.vpcs}
            )
            if several
            else None
        )
        # Unchanged instances keep their addresses wherever the new template puts them.
        kept_ips = running_addresses(self.builder.plan, qualifier)
        options: dict[str, Any] = {
            "stack_name": stack,
            "region": region,
            "qualifier": qualifier,
            "lab": view,
            "keep_addresses": kept_ips,
        }
        if given_text is not None:
            model = load_model_text(given_text, filename=template, params=params, **options)
        else:
            model = load_model(template, params, **options)
        if self.state.get("limitations"):
            model = _without_tc(model, self.caps)
        if not first:
            self.stack_ops().refuse_not_yet(model, stack)
        refusal = self.stacks.update_refusal(stack, model.exports)
        if refusal is not None:
            raise BadInput(refusal, hint=f"testbed stacks {self.name} lists who imports what")
        running = self.builder.plan
        # Instances Auto Scaling launched are not the template's: compare without them, then
        # carry them into the new plan.
        kept = launched(running)
        old = replace(running, hosts=tuple(h for h in running.hosts if h.asg is None))
        if several:
            # The others' parts stay as they run; this stack's are laid out again.
            fresh = merge.add_stack(
                merge.remove_stack(old, qualifier), model, self.name, old.zone_base, qualifier
            )
        else:
            fresh = build_plan(model, self.name, zone_base=old.zone_base)
        # The GWLBs keep the datapath they run on (switch: their GENEVE ports stay).
        fresh = gwlb_datapath.carried(old, fresh)
        diff = rebase_hosts(old, fresh, held=kept)
        plan = diff.plan
        # Host differences are the engine's (diff); compare the rest with the new hosts on
        # both sides, each kept host with its old security groups (a live change).
        old_groups = {h.name: h for h in old.hosts}
        compare = replace(
            old,
            hosts=tuple(
                replace(
                    h, groups=old_groups[h.name].groups, interfaces=old_groups[h.name].interfaces
                )
                if h.name in diff.regrouped
                else h
                for h in plan.hosts
            ),
        )
        live, other, reload = plan_changes(compare, plan)
        for host in kept:
            plan = with_host(plan, host)
        diff.plan = plan
        capacity = capacity_changes(old_model, model)
        scaling = [c for c in autoscaling_changes(old_model, model) if c not in capacity]
        if scaling:
            # The groups run from the model they started with: say so rather than ignore it.
            raise BadInput(
                f"this update changes Auto Scaling resources, which a running lab does not "
                f"take yet: {', '.join(scaling)}",
                hint=f"testbed scale {self.name} GROUP --desired N --min M --max X changes a "
                "group's capacity live; other changes need testbed down and testbed up",
            )
        refused = other + diff.refused
        if refused:
            raise BadInput(
                f"this update changes more than what a running lab can take (instances and "
                f"internet clients added, removed or replaced; ALB rules, target groups, "
                f"targets and attributes; NLB target groups; a Classic Load Balancer's "
                f"instances, health check, draining, idle timeout, cross-zone and listener "
                f"policies; the certificates and SSL policies of HTTPS, TLS and SSL listeners "
                f"(ALB, NLB, CLB) and an NLB TLS listener's ALPN policy; security group "
                f"rules, network ACL entries, routes):\n"
                f"{describe(refused)}",
                hint=f"testbed down {self.name}, then testbed up with the new template",
            )
        outputs = dict(model.outputs)
        host_changes = [f"hosts.{h.name}: added" for h in diff.added]
        host_changes += [f"hosts.{n.name}: replaced" for _, n in diff.replaced]
        host_changes += [f"hosts.{h.name}: removed" for h in diff.removed]
        live += [f"auto_scaling_groups.{lid}: {text}" for lid, (_, text) in capacity.items()]
        changes = host_changes + live
        change_set = None
        if isinstance(old_text, str) and template_text is not None:
            change_set = compute_change_set(
                StackTemplate(old_text, old_path, old_params),
                StackTemplate(template_text, template, params),
                stack_name=stack,
                region=region,
                imports=self.stacks.exports(excluding=stack),
                lab=view,
                qualifier=qualifier,
            )
        if change_set is None:
            change_set = _fallback_change_set(stack, live, plan)
        else:
            # What AWS replaces an instance for but the plan does not carry (ImageId, ...).
            replace_also(
                diff,
                [
                    c.logical_id
                    for c in change_set.changes
                    if c.lab_replacement and c.resource_type == "AWS::EC2::Instance"
                ],
            )
            host_changes += [
                f"hosts.{n.name}: replaced"
                for _, n in diff.replaced
                if f"hosts.{n.name}: replaced" not in host_changes
            ]
            changes = host_changes + live
        old_outputs = self.state.get("outputs") if first or rec is None else rec.outputs
        if not changes and not change_set.changes and outputs == old_outputs:
            return UpdateReply(ok=True, changes=[], done=[])
        key = rec.event_key if rec is not None else ""
        self.events.emit(stack, STACK_TYPE, "UPDATE_IN_PROGRESS", "User Initiated", stack=key)
        if first:
            self.save(state="UPDATE_IN_PROGRESS")
        if rec is not None:
            rec.status = "UPDATE_IN_PROGRESS"
            self._save_stacks()
        by_lb = sorted({c.split(".")[1] for c in live if c.startswith("load_balancers.")})
        network = bool(security_changes(live) or route_changes(live))
        work = UpdateWork(
            old=running,
            new=plan,
            hosts=diff,
            lb_changes=bool(by_lb),
            reload=reload,
            network_changes=network,
            change_set=change_set,
            qualifier=qualifier,
            signal_policies=dict(model.signal_policies),
            cfn_init=dict(model.cfn_init),
        )
        engine = UpdateEngine(
            self.name,
            self.events,
            self._stack_launcher,
            self.lb_service,
            self.publish_plan,
            self.current_plan,
            stack_key=key,
            stage=self._stage_plan,
            stack_name=stack,
            lab_dir=self.lab_dir,
        )
        # cfn-signal accepts what the new template waits for (the old one's after a rollback).
        set_expected_policies(self.lab_dir, stack, qualifier, model.signal_policies)
        try:
            with self.plan_lock:  # not while Auto Scaling publishes a plan of its own
                done = engine.run(work)
            done += self._apply_capacity(capacity)
        except UpdateFailed as exc:
            set_expected_policies(self.lab_dir, stack, qualifier, old_model.signal_policies)
            status = "UPDATE_ROLLBACK_COMPLETE" if exc.rolled_back else "UPDATE_ROLLBACK_FAILED"
            if first:
                self.save(state=status, reason=str(exc))
            if rec is not None:
                rec.status, rec.reason = status, str(exc)
            self.save(
                hosts=host_listing(self.builder.plan, self._cluster()),
                stacks=self.stacks.to_state(),
            )
            raise
        if first:
            self.save(
                state="UPDATE_COMPLETE",
                updated=time.time(),
                template=template,
                template_text=template_text,
                params=params,
                outputs=outputs,
            )
        if rec is not None:
            names = {h.name for h in self.builder.plan.hosts}
            gone = {h.name for h in diff.removed}
            rec.hosts = tuple(
                [n for n in rec.hosts if n not in gone]
                + [h.name for h in diff.added if h.name in names and h.name not in rec.hosts]
            )
        self.stacks.updated(stack, template, template_text, params, outputs, model)
        self.save(
            load_balancers=_load_balancers(self.builder.plan),
            hosts=host_listing(self.builder.plan, self._cluster()),
            stacks=self.stacks.to_state(),
        )
        self.events.emit(
            stack,
            STACK_TYPE,
            "UPDATE_COMPLETE",
            f"{len(changes)} change(s) applied live",
            stack=key,
        )
        return UpdateReply(ok=True, changes=changes, done=done)

    def _apply_capacity(self, capacity: dict[str, tuple[AutoScalingGroup, str]]) -> list[str]:
        """Min, max and desired capacity of groups, as update-auto-scaling-group sets them
        (the group launches or terminates toward its new desired capacity on its own)."""
        done = []
        for lid, (group, text) in capacity.items():
            if self.autoscaling is None:
                break
            reply = self.autoscaling.handle(
                {
                    "op": "asg_set_capacity",
                    "group": lid,
                    # No DesiredCapacity in the template (it follows MinSize): the group's
                    # current one stays, clamped into the new bounds, as AWS does.
                    "desired": None if group.desired == group.min_size else group.desired,
                    "min": group.min_size,
                    "max": group.max_size,
                }
            )
            if not reply.get("ok"):
                raise TestbedError(f"{lid}: {reply.get('error')}")
            done.append(f"{lid}: {text}")
        return done

    def _stage_plan(self, plan: NetworkPlan) -> None:
        """The lab's plan in memory, published by the next launch (an update's new node)."""
        if self.builder is not None:
            self.builder.plan = plan

    def serve(self) -> None:
        """Hold the running lab until `down`, a signal or the owner's end; then remove it."""
        server, supervisor = self.server, self.supervisor
        if server is None or supervisor is None:
            raise TestbedError("the holder serves a lab once it is built")
        # stop_reason is how a signal handler says it (setting an Event from a handler can
        # deadlock on the Event's own lock); the wait wakes at once for `down` and the owner.
        # Checked often: a dead controller is seen (and replaced) within a tick.
        while self.stop_reason is None and not self.down_requested.wait(0.05):
            supervisor.step()
            if self.neighbours is not None:
                self.neighbours.step()
        self._ignore_stops()
        reason = self.stop_reason or "User Initiated"
        with self.stack_lock:
            if len(self.stacks) > 1:
                self._delete_added_stacks(reason)
            # The lab's first stack: its events as AWS gives a stack's delete. Its resources
            # go all at once (the lab's teardown: processes, namespaces, links, bridges, its
            # controller), not one by one: each gets DELETE_IN_PROGRESS in reverse creation
            # order before the teardown, and DELETE_COMPLETE in the same order once the
            # teardown has removed them all (AWS deletes independent resources in parallel
            # too). Which resources, in which order: its CREATE_COMPLETE events.
            first = next(iter(self.stacks), None)
            resources = live_resources(read_events(self.lab_dir), "")[::-1]
            self.events.emit(self.name, STACK_TYPE, "DELETE_IN_PROGRESS", reason)
            self._set_first_stack_status(first, "DELETE_IN_PROGRESS")
            self.save(state="DELETE_IN_PROGRESS", reason=reason)
            for lid, rtype in resources:
                self.events.emit(lid, rtype, "DELETE_IN_PROGRESS")
        if self.autoscaling:
            self.autoscaling.close()
        supervisor.close()
        if self.lb_service:
            self.lb_service.close()
        server.stop()
        if self.builder is not None:
            self.builder.metadata.close()  # its sockets hold the instances' namespaces
        report = teardown(self.name, keep_dir=True, exclude_pids=(os.getpid(),))
        for lid, rtype in resources:
            self.events.emit(lid, rtype, "DELETE_COMPLETE")
        self._set_first_stack_status(first, "DELETE_COMPLETE")
        self.save(state="DELETE_COMPLETE", reason=reason, deleted=time.time())
        self.events.emit(self.name, STACK_TYPE, "DELETE_COMPLETE", report.summary())
        self._finish()

    def _set_first_stack_status(self, first: StackRecord | None, status: str) -> None:
        """The first stack's status in state.json's stacks (testbed stacks of a kept folder)."""
        if first is not None:
            first.status = status
            self._save_stacks()


AUTOSCALING_SECTIONS = ("auto_scaling_groups", "scaling_policies", "alarms", "scheduled_actions")


def autoscaling_changes(old: StackModel, new: StackModel) -> list[str]:
    """Logical ids of the Auto Scaling groups, policies, alarms and scheduled actions that
    differ between two models (where they are in the template does not count)."""
    changed = []
    for section in AUTOSCALING_SECTIONS:
        before, after = getattr(old, section), getattr(new, section)
        for lid in sorted(set(before) | set(after)):
            if _plain(before.get(lid)) != _plain(after.get(lid)):
                changed.append(lid)
    return changed


CAPACITY_FIELDS = ("min_size", "max_size", "desired")


def capacity_changes(old: StackModel, new: StackModel) -> dict[str, tuple[AutoScalingGroup, str]]:
    """Auto Scaling groups whose update changes only MinSize, MaxSize or DesiredCapacity:
    logical id -> (the new group, what changes), applied live as update-auto-scaling-group."""
    out = {}
    for lid, after in new.auto_scaling_groups.items():
        before = old.auto_scaling_groups.get(lid)
        if before is None or _plain(before) == _plain(after):
            continue
        same = replace(after, **{f: getattr(before, f) for f in CAPACITY_FIELDS})
        if _plain(same) != _plain(before):
            continue
        text = ", ".join(
            f"{f} {getattr(before, f)} -> {getattr(after, f)}"
            for f in CAPACITY_FIELDS
            if getattr(before, f) != getattr(after, f)
        )
        out[lid] = (after, text)
    return out


def _template_text(path: str) -> str | None:
    """A template file's text (None if unreadable: load_model reports why)."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _plain(value: Any) -> Any:
    """A model object as plain data without its template positions (`source`)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value) if f.name != "source"}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# What a live change (testbed.plan.changes) is about, when the running template's text is
# not kept (a lab built before labs kept it): its first path part -> the resource type.
_CHANGE_TYPES = {
    "security_groups": "AWS::EC2::SecurityGroup",
    "network_acls": "AWS::EC2::NetworkAcl",
    "memberships": "AWS::EC2::Instance",
    "acl_of_subnet": "AWS::EC2::Subnet",
    "routes": "AWS::EC2::Subnet",
}


def _fallback_change_set(name: str, live: list[str], plan: NetworkPlan) -> ChangeSet:
    """A change set naming the resources of the live changes (Modify, in the order seen),
    for per-resource events when the change set of the two templates cannot be made."""
    seen: dict[str, str] = {}
    for change in live:
        parts = change.split(".")
        kind, what = parts[0], parts[1].split(":")[0] if len(parts) > 1 else ""
        if kind == "load_balancers":
            seen.setdefault(what, _lb_resource_type(plan, what))
        elif kind in _CHANGE_TYPES and what:
            seen.setdefault(what.split("/")[0], _CHANGE_TYPES[kind])
    return ChangeSet(name, {}, tuple(ResourceChange(MODIFY, lid, t) for lid, t in seen.items()))


def _controller_info(controller: ControllerProcess) -> ControllerInfo:
    """The controller in the lab's state once built (the supervisor keeps it up to date)."""
    return ControllerInfo(
        pid=controller.proc.pid if controller.proc else None,
        port=controller.port,
        log=str(controller.log),
        restarts=0,
        standby_pid=None,
    )


def host_listing(plan: NetworkPlan, cluster: LabServers | None = None) -> list[dict[str, Any]]:
    """The hosts as the lab's state lists them (testbed status, Lab.hosts); a lab across
    servers lists each host's server too."""
    listing = _host_listing(plan)
    if cluster is not None:
        for h in listing:
            h["server"] = cluster.placement.nodes.get(h["name"])
    return listing


def _host_listing(plan: NetworkPlan) -> list[dict[str, Any]]:
    return [
        {
            "name": h.name,
            "ip": h.ip,
            "public_ip": h.public_ip,
            "az": h.az,
            "subnet": h.subnet,
            "role": h.role,
            "kind": h.kind,
            "netns": h.netns,
            "mac": h.mac,
            "gateway": h.gateway,
            "prefixlen": h.prefixlen,
            "extra_ips": list(h.extra_ips),
            "groups": list(h.groups) if h.groups is not None else None,
            "source_dest_check": h.source_dest_check,
            "asg": h.asg,
            "instance_id": h.instance_id,
            "lab_made": h.lab_made,
            "default_role": h.default_role,
            "interfaces": [
                {
                    "name": i.name,
                    "ip": i.ip,
                    "public_ip": i.public_ip,
                    "az": i.az,
                    "subnet": i.subnet,
                    "mac": i.mac,
                    "extra_ips": list(i.extra_ips),
                    "groups": list(i.groups) if i.groups is not None else None,
                }
                for i in h.interfaces
            ],
        }
        for h in plan.hosts
    ]


def _load_balancers(plan: NetworkPlan) -> list[dict[str, Any]]:
    return [
        {
            "name": lb.name,
            "type": lb.type,
            "scheme": lb.scheme,
            "dns_name": lb.dns_name,
            "nodes": [
                {"az": n.az, "ip": n.ip, "public_ip": n.public_ip, "host": n.host} for n in lb.nodes
            ],
            "listeners": [
                {"port": x.port, "protocol": x.protocol, "target_group": x.target_group}
                for x in lb.listeners
            ],
        }
        for lb in plan.load_balancers
    ]


def _without_tc(model: StackModel, caps: Capabilities | None) -> StackModel:
    lab = model.lab
    return replace(
        model,
        lab=replace(
            lab,
            inter_az_delay_ms=lab.inter_az_delay_ms if caps and caps.netem else 0.0,
            link_bandwidth_mbps=lab.link_bandwidth_mbps if caps and caps.htb else None,
        ),
    )


def _brief(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    lab_dir = Path(args[0])
    # A stop that arrives before the build has begun waits, blocked, until build() can roll
    # back (no other thread exists yet, so none can take the signal meanwhile).
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    holder = Holder(lab_dir)
    # Every process of the lab inherits the label: teardown finds even unjournaled ones.
    os.environ[LAB_LABEL] = holder.name
    for sig in STOP_SIGNALS:
        signal.signal(sig, holder.signalled)
    return holder.run()


def _lb_resource_type(plan: NetworkPlan, name: str) -> str:
    """The CloudFormation type of load balancer `name`, for its update events."""
    lb = next((x for x in plan.load_balancers if x.name == name), None)
    if lb is not None and lb.type == "classic":
        return "AWS::ElasticLoadBalancing::LoadBalancer"
    return "AWS::ElasticLoadBalancingV2::LoadBalancer"


if __name__ == "__main__":
    sys.exit(main())
