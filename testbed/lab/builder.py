"""Creates a lab, resource by resource: controller, Mininet switches/hosts/links, programs.

Runs inside the holder process. Every step is reported as a stack event; every process is
journaled before anything depends on it, so a failure at any point can be rolled back by
testbed.lab.teardown. The Mininet construction itself is testbed.topologies.network.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from collections.abc import Callable
from typing import TypeVar

from testbed import naming
from testbed.errors import LabError
from testbed.lab import certs, cgroups, gwlb_switch, zones
from testbed.lab.controller_proc import ControllerProcess
from testbed.lab.events import EventLog
from testbed.lab.hostexec import host_dir
from testbed.lab.hosttools.aws_cli import write_names
from testbed.lab.imds.service import MetadataService
from testbed.lab.procs import STOP_SHIELD, ProcessJournal, record
from testbed.lab.programs import host_env, start_role, wait_roles_ready
from testbed.lab.services import ServiceContext, start_services
from testbed.lab.signals import SignalWaiter, init_file, write_expected
from testbed.lab.userdata import SERVER_DIRS, sandboxed, start_user_data
from testbed.model.autoscaling_types import Alarm
from testbed.model.certificate_names import name_warnings
from testbed.model.elb_defaults import CLASSIC
from testbed.model.elbv2_types import elbv2_sections
from testbed.model.resources.acm import CERTIFICATE as CERTIFICATE_TYPE
from testbed.model.types import ResourceSignalPolicy, StackModel
from testbed.plan.certificates import INFERRED
from testbed.plan.gwlb_datapath import plumbing
from testbed.plan.network import NetworkPlan
from testbed.topologies.cluster import LabServers
from testbed.topologies.network import VpcNetwork, switch_resources
from testbed.topologies.vpc import VpcTopo

# SERVER_DIRS and sandboxed live in testbed.lab.userdata; older callers import them from here.
__all__ = ["SERVER_DIRS", "LabBuilder", "sandboxed"]

STACK_TYPE = "AWS::CloudFormation::Stack"
CONTROLLER_ID = "LabController"
CONTROLLER_TYPE = "Lab::OpenFlow::Controller"
NETWORK_ID = "LabNetwork"
NETWORK_TYPE = "Lab::OpenVSwitch::Fabric"
PARAMETER_TYPE = "Lab::Parameter"

T = TypeVar("T")


class LabBuilder:
    """Builds one lab from its model and plan. `net` and `controller` stay alive afterwards."""

    def __init__(
        self,
        name: str,
        model: StackModel,
        plan: NetworkPlan,
        datapath: str,
        events: EventLog,
        journal: ProcessJournal,
        cluster: LabServers | None = None,
    ) -> None:
        self.name = name
        # A lab across servers (issue 18; testbed.lab.servers): where each node runs.
        self.cluster = cluster
        self.model = model
        self.plan = plan
        self.datapath = datapath
        self.events = events
        self.journal = journal
        self.lab_dir = naming.lab_dir(name)
        self.network: VpcNetwork | None = None
        self.controller: ControllerProcess | None = None
        self.programs: dict[str, subprocess.Popen] = {}
        self.userdata_exit: dict[str, int] = {}
        # Resources with a CreationPolicy (or wait conditions): complete once signalled.
        self.signals = SignalWaiter(self.lab_dir, self._emit_signal_event, hint=self._no_signal)
        # Set by the holder: runs once the template's programs run, before the wait for
        # signals (Auto Scaling launches its groups' instances there; they may signal).
        self.after_programs: Callable[[], None] | None = None
        # The instances' metadata service (169.254.169.254), started before any UserData; the
        # holder hands it to the instance launcher and closes it before the teardown.
        self.metadata = MetadataService(name, model, events, journal, self.lab_dir)

    # ---- the whole sequence ----------------------------------------------------------
    def build(self) -> None:
        """Create everything; raise on the first failure (the caller rolls back)."""
        self._report_lab_values()
        self._write_host_data()
        self._issue_certificates()
        self._start_controller()
        self._create_resources()
        self._start_network()
        self._start_programs()
        if self.after_programs is not None:
            self.after_programs()
        # After UserData started: what it signals completes the resources that wait.
        self.signals.wait()

    def _step(
        self,
        logical_id: str,
        rtype: str,
        fn: Callable[[], T],
        reason: str | Callable[[T], str] = "",
        signalled: ResourceSignalPolicy | None = None,
    ) -> T:
        """Run fn as the creation of one resource, with IN_PROGRESS/COMPLETE/FAILED events.

        reason: text for the COMPLETE event, or a callable giving it from fn's result.
        signalled: the resource's signal policy; it then stays in progress (its COMPLETE or
        FAILED comes from self.signals once its signals arrive or its Timeout passes)."""
        self.events.emit(logical_id, rtype, "CREATE_IN_PROGRESS")
        try:
            result = fn()
        except BaseException as exc:  # a failure, or the holder's stop (a BaseException)
            self.events.emit(logical_id, rtype, "CREATE_FAILED", _reason(exc))
            raise
        text = reason(result) if callable(reason) else reason
        if signalled is not None:
            waiting = self.signals.begin(logical_id, signalled)
            self.events.emit(logical_id, rtype, "CREATE_IN_PROGRESS", _joined(text, waiting))
        else:
            self.events.emit(logical_id, rtype, "CREATE_COMPLETE", text)
        return result

    def _emit_signal_event(self, logical_id: str, status: str, reason: str) -> None:
        self.events.emit(logical_id, self.model.resource_types.get(logical_id, ""), status, reason)

    def _no_signal(self, logical_id: str) -> str:
        """What may explain why a host never signalled: how its UserData ended."""
        log = host_dir(self.name, logical_id) / "user-data.log"
        if logical_id in self.userdata_exit:
            return f"its UserData exited with code {self.userdata_exit[logical_id]}, log {log}"
        if f"{logical_id}:user-data" in self.programs:
            return f"its UserData is still running, log {log}"
        return ""

    # ---- what the lab tells before it builds -----------------------------------------
    def _report_lab_values(self) -> None:
        """Parameter values the lab replaced (key pairs, AMI ids, SSM paths): once, first."""
        for value in self.model.lab_values:
            given = value.value
            if value.lab_value != value.value:
                given += f" -> {value.lab_value}"
            self.events.emit(
                value.parameter, PARAMETER_TYPE, "PARAMETER_LAB_VALUE", f"{given}: {value.note}"
            )

    def _issue_certificates(self) -> None:
        """The lab's CA and the plan's certificates, before any host or load balancer
        starts; a certificate known only by its ARN is reported with the names the lab gave
        it (the template's own ones have their resource's events)."""
        certs.issue_all(self.lab_dir, self.plan)
        for c in self.plan.certificates:
            if c.source != INFERRED:
                continue
            self.events.emit(
                c.used_by[0] if c.used_by else self.name,
                CERTIFICATE_TYPE,
                "CERTIFICATE_INFERRED",
                f"{c.arn}: not in the template; the lab's CA issued it for "
                f"{', '.join(c.names) or 'no name'} (testbed cert {self.name} shows it)",
            )
        # Names clients use that a listener's certificates miss (none missed is an error).
        for resource, text in name_warnings(self.model):
            rtype = self.model.resource_types.get(resource, "")
            self.events.emit(resource, rtype, "CERTIFICATE_NAMES", text)

    def _write_host_data(self) -> None:
        """What the host tools read: who waits for signals, each resource's cfn-init
        metadata, the Classic Load Balancers' names."""
        write_expected(self.lab_dir, self.name, self.model.signal_policies)
        # The aws tool's load balancer names (what Ref gives) and logical ids.
        lbs = elbv2_sections(self.model)["load_balancers"]
        write_names(self.lab_dir, {lid: lb.name for lid, lb in lbs.items() if lb.type == CLASSIC})
        for lid, init in self.model.cfn_init.items():
            path = init_file(self.lab_dir, lid)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(init, indent=1))

    # ---- controller --------------------------------------------------------------------
    def _start_controller(self) -> None:
        plan_path = self.lab_dir / naming.PLAN_FILE
        plan_path.write_text(self.plan.to_json())

        def start() -> ControllerProcess:
            # Leftovers of an earlier lab in our zones would capture our flows.
            zones.release(self.name, self.datapath)
            for lb in self.plan.load_balancers:
                try:
                    for zone in (lb.zone_dnat, lb.zone_snat):
                        zones.set_idle_timeouts(self.datapath, zone, lb.idle_tcp_s, lb.idle_udp_s)
                except RuntimeError as exc:
                    # Some kernels lack conntrack timeout policies: flows then keep the
                    # datapath's own idle timeouts. Say so; the lab still works.
                    self.events.emit(
                        lb.name,
                        "Lab::Conntrack",
                        "CREATE_IN_PROGRESS",
                        f"warning: idle timeouts of {lb.name} not applied: {exc}",
                    )
            controller = self.controller = ControllerProcess(self.lab_dir, self.journal, plan_path)
            controller.start()
            return controller

        self._step(CONTROLLER_ID, CONTROLLER_TYPE, start, _controller_started)

    # ---- Mininet nodes, resource by resource -------------------------------------------
    def _create_resources(self) -> None:
        port = self.controller.port if self.controller else None
        if port is None:
            raise LabError("the nodes are created once the controller runs")
        topo = VpcTopo(self.plan, switch_resources(self.model, self.plan))
        # Mininet starts a node's shell and only then tells its PID: a stop is held until the
        # shells of a resource are journaled (procs.StopShield).
        with STOP_SHIELD.hold():
            network = self.network = VpcNetwork(
                self.name,
                self.plan,
                topo,
                self.datapath,
                port,
                self._journal_process,
                cluster=self.cluster,
            )
        inject = os.environ.get("TESTBED_INJECT_FAILURE")

        def create(lid: str) -> None:
            if inject and lid == inject:
                # Fault injection for rollback tests (documented in the README).
                raise LabError(f"injected failure at {lid} (TESTBED_INJECT_FAILURE)")
            with STOP_SHIELD.hold():
                network.create(lid)

        for lid in self.model.creation_order:
            self._create_one(lid, functools.partial(create, lid))
        with STOP_SHIELD.hold():
            network.create_rest()
        for h in self.plan.hosts:
            host_dir(self.name, h.name).mkdir(parents=True, exist_ok=True)
        self._make_cgroups(network)

    def _make_cgroups(self, network: VpcNetwork) -> None:
        """A cgroup per host, its shell in it, before anything starts there (its CPU)."""
        if not cgroups.available():
            self.events.emit(
                self.name,
                STACK_TYPE,
                "CREATE_IN_PROGRESS",
                "warning: no writable cgroup v2 hierarchy: per-instance CPU is not measured",
            )
            return
        elsewhere: dict[str, dict[str, int]] = {}  # server -> host -> its shell's PID there
        accesses = {}
        for h in self.plan.hosts:
            access = self.cluster.server_of(h.name) if self.cluster is not None else None
            if access is not None:
                # A host on another server: its cgroup is made there (its PID is that
                # server's), in one ssh per server.
                accesses[access.name] = access
                pid = network.net.nameToNode[h.name].pid
                elsewhere.setdefault(access.name, {})[h.name] = pid
                continue
            if cgroups.create(self.name, h.name) is not None:
                cgroups.join(self.name, h.name, network.net.nameToNode[h.name].pid)
        for server, pids in sorted(elsewhere.items()):
            out = accesses[server].run(cgroups.remote_create_script(self.name, pids))
            made = {line.split()[1] for line in out.splitlines() if line.startswith("cgroup ")}
            if set(pids) - made:
                self.events.emit(
                    self.name,
                    STACK_TYPE,
                    "CREATE_IN_PROGRESS",
                    f"warning: no cgroup on server {server} for "
                    f"{', '.join(sorted(set(pids) - made))}: their CPU is not measured",
                )

    def _create_one(self, lid: str, create: Callable[[], None]) -> None:
        """One resource's creation and its events (inert ones too: create() does nothing)."""
        rtype = self.model.resource_types.get(lid, "")
        group = self.model.auto_scaling_groups.get(lid)
        if group is not None and lid not in self.model.signal_policies:
            # Its instances come from Auto Scaling once the programs run: the group is
            # complete when they are InService (the service emits that COMPLETE).
            self.events.emit(
                lid, rtype, "CREATE_IN_PROGRESS", f"launching {group.desired} instances"
            )
            return
        self._step(
            lid, rtype, create, self._describe(lid), signalled=self.model.signal_policies.get(lid)
        )
        if lid in self.model.default_roles:
            self.events.emit(lid, rtype, "ROLE_DEFAULTED", self.model.default_roles[lid])

    def _journal_process(self, pid: int, what: str, host: str | None) -> None:
        self.journal.add(record(pid, what, host))

    def _describe(self, lid: str) -> str:
        made = self.model.lab_made.get(lid)
        where = self._where(lid)
        return _joined(where, f"added by the lab: {made}") if made else where

    def _where(self, lid: str) -> str:
        inert = self.model.inert.get(lid)
        if inert is not None and lid in self.model.signal_policies:
            return ""  # a wait condition: its wait is emulated, its events say so
        if inert is not None:
            note = inert.note
            note = note if note.startswith("not emulated") else f"not emulated: {note}"
            # Its packets are missing from the lab (Auto Scaling, containers, ...): say so.
            return f"warning: {note}" if inert.kind == "not-emulated" else note
        alarm = self.model.alarms.get(lid)
        if alarm is not None:
            return _alarm_note(alarm)
        if lid in self.model.instances:
            h = self.plan.host(lid)
            pub = f", public {h.public_ip}" if h.public_ip else ""
            more = "".join(f"; {i.name} {i.ip} in {i.subnet}" for i in h.interfaces)
            return f"{h.ip}{pub} in {h.subnet} ({h.az}){more}"
        if lid in self.model.nat_gateways:
            h = self.plan.host(lid)
            pub = f", public {h.public_ip}" if h.public_ip else ", private"
            return f"NAT gateway {h.ip}{pub} in {h.subnet} ({h.az})"
        if lid in self.model.internet_clients:
            return f"{self.plan.host(lid).ip} on the internet segment"
        lb = next((x for x in self.plan.load_balancers if x.name == lid), None)
        if lb is not None:
            nodes = ", ".join(
                f"{n.az} {n.ip}" + (f" ({n.public_ip})" if n.public_ip else "") for n in lb.nodes
            )
            return f"{lb.type} {lb.scheme or ''} {lb.dns_name}: nodes {nodes}".replace("  ", " ")
        if lid in self.model.subnets:
            s = self.model.subnets[lid]
            return f"{s.cidr} in {s.az}, {'public' if s.public else 'private'}"
        cert = next((c for c in self.plan.certificates if c.logical_id == lid), None)
        if cert is not None:
            return f"issued by the lab's CA for {', '.join(cert.names)} ({cert.arn})"
        return ""

    # ---- switches on, flows in ---------------------------------------------------------
    def _start_network(self) -> None:
        network, controller = self.network, self.controller
        if network is None or controller is None:
            raise LabError("the switches start once the controller runs and the nodes exist")

        def start() -> None:
            # GWLB steering in the switch: the nodes' addresses on their veths before OVS
            # opens them, the GENEVE ports with their bridges, routes once they run.
            tunnels = plumbing(self.plan)
            gwlb_switch.prepare(tunnels)
            network.start()
            gwlb_switch.finish(tunnels)
            # The controller's work grows with the hosts (their flows): 30 s covers 200
            # instances here with room; larger labs get more, 0.15 s per host.
            controller.wait_programmed(timeout=max(30.0, 0.15 * len(self.plan.hosts)))

        self._step(
            NETWORK_ID,
            NETWORK_TYPE,
            start,
            f"{len(self.plan.switches)} switches ({self.datapath} datapath), "
            f"{len(self.plan.links) + len(self.plan.hosts)} links",
        )

    # ---- roles and UserData ------------------------------------------------------------
    def _start_programs(self) -> None:
        # UserData asks it who it runs on: it answers before any program starts. A host on
        # another server is served by a metadata process on that server.
        remote = {}
        if self.cluster is not None:
            for h in self.plan.hosts:
                access = self.cluster.server_of(h.name)
                if access is not None:
                    remote[h.name] = access
        self.metadata.start(self.plan, remote=remote)
        ctx = ServiceContext(
            self.name, self.lab_dir, self.plan, self.journal, self.events, host_env()
        )
        started = []
        for h in self.plan.hosts:
            start_services(ctx, h)
            if h.role and h.role != "none":
                proc = start_role(self.name, self.journal, self.events, h)
                if proc is not None:
                    self.programs[f"{h.name}:role"] = proc
                    started.append((h, proc))
        # The stack is complete when its programs answer, as an instance is when it runs.
        wait_roles_ready(self.name, started)
        for h in self.plan.hosts:
            if h.user_data:
                self.programs[f"{h.name}:user-data"] = start_user_data(
                    self.name,
                    self.journal,
                    self.events,
                    h,
                    on_exit=functools.partial(self.userdata_exit.__setitem__, h.name),
                )


COMPARISONS = {
    "GreaterThanOrEqualToThreshold": ">=",
    "GreaterThanThreshold": ">",
    "LessThanThreshold": "<",
    "LessThanOrEqualToThreshold": "<=",
}


def _alarm_note(alarm: Alarm) -> str:
    """What the lab evaluates for an alarm, and which of its actions it cannot take."""
    m = alarm.metric
    text = (
        f"evaluated on the lab's {m.namespace} {m.metric_name} ({m.statistic}): "
        f"{COMPARISONS.get(alarm.comparison, alarm.comparison)} {alarm.threshold:g} for "
        f"{alarm.datapoints_to_alarm} of {alarm.evaluation_periods} periods of "
        f"{alarm.period_s:g} s"
    )
    if alarm.other_actions:
        text += "; not emulated: notifications to " + ", ".join(alarm.other_actions)
    return text


def _controller_started(controller: ControllerProcess) -> str:
    pid = controller.proc.pid if controller.proc else None
    return f"os-ken pid {pid}, OpenFlow port {controller.port}, log {controller.log}"


def _joined(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) < 2000 else text[:2000] + "..."
