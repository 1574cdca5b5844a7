"""Creates a lab, resource by resource: controller, Mininet switches/hosts/links, programs.

Runs inside the holder process. Every step is reported as a stack event; every process is
journaled before anything depends on it, so a failure at any point can be rolled back by
testbed.lab.teardown.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
from typing import Any

from mininet.link import Link, OVSLink, TCLink
from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.node import Host, OVSSwitch, RemoteController

from testbed.errors import LabError
from testbed.lab import naming, system, zones
from testbed.lab.controller_proc import ControllerProcess
from testbed.lab.events import EventLog
from testbed.lab.hostexec import host_dir, netns_argv
from testbed.lab.plan import HostPlan, NetworkPlan
from testbed.lab.procs import ProcessJournal, record
from testbed.lab.programs import host_env, start_role, wait_roles_ready
from testbed.lab.services import ServiceContext, start_services
from testbed.model.types import StackModel
from topologies.vpc import VpcTopo

STACK_TYPE = "AWS::CloudFormation::Stack"
CONTROLLER_ID = "LabController"
CONTROLLER_TYPE = "Lab::OpenFlow::Controller"
NETWORK_ID = "LabNetwork"
NETWORK_TYPE = "Lab::OpenVSwitch::Fabric"


class QuietRemoteController(RemoteController):
    """RemoteController without Mininet's telnet probe (we ask the controller directly)."""

    def checkListening(self) -> None:
        pass


def switch_resources(model: StackModel, plan: NetworkPlan) -> dict[str, str]:
    """Which template resource "owns" each switch, for progress events."""
    order = list(model.creation_order)
    owners: dict[str, str] = {}
    for sw in plan.switches:
        if sw.role == "core":
            candidates = list(model.vpcs)
        elif sw.role == "az":
            candidates = [s.logical_id for s in model.subnets.values() if s.az == sw.az]
        else:
            candidates = [lid for lid, t in model.resource_types.items()
                          if t == "AWS::EC2::VPCGatewayAttachment"] + \
                list(model.internet_gateways) + list(model.internet_clients)
        candidates = [c for c in candidates if c in order]
        if candidates:
            owners[sw.name] = min(candidates, key=order.index)
    return owners


class LabBuilder:
    """Builds one lab from its model and plan. `net` and `controller` stay alive afterwards."""

    def __init__(self, name: str, model: StackModel, plan: NetworkPlan, datapath: str,
                 events: EventLog, journal: ProcessJournal) -> None:
        self.name = name
        self.model = model
        self.plan = plan
        self.datapath = datapath
        self.events = events
        self.journal = journal
        self.lab_dir = naming.lab_dir(name)
        self.net: Mininet | None = None
        self.controller: ControllerProcess | None = None
        self.programs: dict[str, subprocess.Popen] = {}
        self.userdata_exit: dict[str, int] = {}

    # ---- the whole sequence ----------------------------------------------------------
    def build(self) -> None:
        """Create everything; raise on the first failure (the caller rolls back)."""
        setLogLevel("warning")
        self._start_controller()
        self._create_resources()
        self._start_network()
        self._start_programs()

    def _step(self, logical_id: str, rtype: str, fn: Any, reason: Any = "") -> Any:
        """Run fn as the creation of one resource, with IN_PROGRESS/COMPLETE/FAILED events.

        reason: text for the COMPLETE event, or a callable giving it once fn has run."""
        self.events.emit(logical_id, rtype, "CREATE_IN_PROGRESS")
        try:
            result = fn()
        except Exception as exc:
            self.events.emit(logical_id, rtype, "CREATE_FAILED", _reason(exc))
            raise
        self.events.emit(logical_id, rtype, "CREATE_COMPLETE",
                         reason() if callable(reason) else reason)
        return result

    # ---- controller --------------------------------------------------------------------
    def _start_controller(self) -> None:
        plan_path = self.lab_dir / "plan.json"
        plan_path.write_text(self.plan.to_json())

        def start() -> None:
            # Leftovers of an earlier lab in our zones would capture our flows.
            zones.release(self.name, self.datapath)
            for lb in self.plan.load_balancers:
                try:
                    for zone in (lb.zone_dnat, lb.zone_snat):
                        zones.set_idle_timeouts(self.datapath, zone, lb.idle_tcp_s,
                                                lb.idle_udp_s)
                except RuntimeError as exc:
                    # Some kernels lack conntrack timeout policies: flows then keep the
                    # datapath's own idle timeouts. Say so; the lab still works.
                    self.events.emit(lb.name, "Lab::Conntrack", "CREATE_IN_PROGRESS",
                                     f"warning: idle timeouts of {lb.name} not applied: "
                                     f"{exc}")
            self.controller = ControllerProcess(self.lab_dir, self.journal, plan_path)
            self.controller.start()

        self._step(CONTROLLER_ID, CONTROLLER_TYPE, start,
                   lambda: f"os-ken pid {self.controller.proc.pid}, OpenFlow port "
                           f"{self.controller.port}, log {self.controller.log}")

    # ---- Mininet nodes, resource by resource -------------------------------------------
    def _create_resources(self) -> None:
        topo = VpcTopo(self.plan, switch_resources(self.model, self.plan))
        self.net = Mininet(topo=None, build=False, controller=None, autoSetMacs=False,
                           waitConnected=False)
        ctl = self.net.addController("c0", controller=QuietRemoteController,
                                     ip="127.0.0.1", port=self.controller.port)
        self._journal_node(ctl, "mininet-shell")
        nodes_by_resource: dict[str | None, list[str]] = {}
        for n in topo.nodes():
            nodes_by_resource.setdefault(topo.nodeInfo(n).get("resource"), []).append(n)
        pending_links = list(topo.links(sort=True, withKeys=True, withInfo=True))

        inject = os.environ.get("TESTBED_INJECT_FAILURE")

        def materialize(node_names: list[str], lid: str | None = None) -> None:
            if inject and lid == inject:
                # Fault injection for rollback tests (documented in the README).
                raise LabError(f"injected failure at {lid} (TESTBED_INJECT_FAILURE)")
            for n in node_names:
                self._add_node(topo, n)
            still = []
            for src, dst, key, info in pending_links:
                if src in self.net.nameToNode and dst in self.net.nameToNode:
                    self._add_link(info)
                else:
                    still.append((src, dst, key, info))
            pending_links[:] = still

        for lid in self.model.creation_order:
            rtype = self.model.resource_types.get(lid, "")
            self._step(lid, rtype, lambda lid=lid: materialize(nodes_by_resource.get(lid, []), lid),
                       self._describe(lid))
        # Lab machinery that no template resource owns (the resolver): created last.
        leftover = [n for rid, names in nodes_by_resource.items()
                    if rid not in self.model.creation_order for n in names]
        if leftover or pending_links:
            materialize(leftover)
        if pending_links:
            raise LabError(f"links left unbuilt: {[(s, d) for s, d, _, _ in pending_links]}")

    def _describe(self, lid: str) -> str:
        if lid in self.model.instances:
            h = self.plan.host(lid)
            pub = f", public {h.public_ip}" if h.public_ip else ""
            return f"{h.ip}{pub} in {h.subnet} ({h.az})"
        if lid in self.model.internet_clients:
            return f"{self.plan.host(lid).ip} on the internet segment"
        lb = next((x for x in self.plan.load_balancers if x.name == lid), None)
        if lb is not None:
            nodes = ", ".join(f"{n.az} {n.ip}" + (f" ({n.public_ip})" if n.public_ip else "")
                              for n in lb.nodes)
            return f"{lb.type} {lb.scheme or ''} {lb.dns_name}: nodes {nodes}".replace("  ", " ")
        if lid in self.model.subnets:
            s = self.model.subnets[lid]
            return f"{s.cidr} in {s.az}, {'public' if s.public else 'private'}"
        return ""

    def _add_node(self, topo: VpcTopo, n: str) -> None:
        info = dict(topo.nodeInfo(n))
        info.pop("resource", None)
        if topo.isSwitch(n):
            info.pop("role", None)
            info.pop("az", None)
            sw = self.net.addSwitch(n, cls=OVSSwitch, failMode="secure", protocols="OpenFlow13",
                                    datapath="user" if self.datapath == "user" else "kernel",
                                    batch=True, **info)
            self._journal_node(sw, "mininet-shell")
            return
        host = self.net.addHost(n, cls=Host, **info)
        ns = naming.netns_name(self.name, n)
        # Name the host's namespace so that `ip netns`, `testbed exec` and cleanup find it.
        system.run(["ip", "netns", "attach", ns, str(host.pid)])
        self._journal_node(host, "mininet-host-shell", host=n)
        host_dir(self.name, n).mkdir(parents=True, exist_ok=True)

    def _journal_node(self, node: Any, what: str, host: str | None = None) -> None:
        try:
            self.journal.add(record(node.pid, what, host))
        except LookupError as exc:
            raise LabError(f"Mininet node {node.name} died at start: {exc}") from exc

    def _add_link(self, info: dict[str, Any]) -> None:
        info = dict(info)
        kind = info.pop("kind")
        info.pop("resource", None)
        node1, node2 = info.pop("node1"), info.pop("node2")
        if kind == "patch":
            cls = OVSLink
        elif "delay" in info or "bw" in info:
            cls = TCLink
        else:
            cls = Link
        if node1 in self.model.instances or node1 in self.model.internet_clients:
            info["addr1"] = self.plan.host(node1).mac
        self.net.addLink(node1, node2, cls=cls, **info)

    # ---- switches on, flows in ---------------------------------------------------------
    def _start_network(self) -> None:
        def start() -> None:
            self.net.build()  # configures host addresses, MACs and default routes
            self._tune_hosts()
            self.net.start()
            self._fix_offloads()
            self.controller.wait_programmed()

        self._step(NETWORK_ID, NETWORK_TYPE, start,
                   f"{len(self.plan.switches)} switches ({self.datapath} datapath), "
                   f"{len(self.plan.links) + len(self.plan.hosts)} links")

    def _tune_hosts(self) -> None:
        user = self.datapath == "user"
        for h in self.net.hosts:
            # IPv6 autoconfiguration chatter is not part of the model: keep hosts IPv4-only.
            # Load clients open tens of thousands of connections a minute: a wide port range
            # and TIME_WAIT reuse keep them from stalling on their own closed sockets.
            cmd = ("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
                   "net.ipv6.conf.default.disable_ipv6=1 net.ipv4.tcp_tw_reuse=1 "
                   "net.ipv4.ip_local_port_range='1024 65535'; ip link set lo up")
            if user:
                # With the userspace datapath a host must compute TX checksums itself, or
                # TCP through OVS fails while ping works (partial checksums reach the wire).
                cmd += "; ethtool -K eth0 tx off >/dev/null 2>&1; ethtool -k eth0"
            hp = next((x for x in self.plan.hosts if x.name == h.name), None)
            if hp is not None and hp.kind == "dns":
                # /32 addresses, one per realm; everything else is on-link behind the router.
                cmd += "; ip addr flush dev eth0" + "".join(
                    f"; ip addr add {ip}/32 dev eth0" for ip in (hp.ip, *hp.extra_ips))
                cmd += "; ip route replace default dev eth0"
            if self._kind(h.name) == "lb-node":
                # The node's own connections (health checks) use ports that no listener and
                # no SNAT'ed flow of the fabric can use (testbed's NLB keeps 1024-60999).
                cmd += "; sysctl -qw net.ipv4.ip_local_port_range='61000 65535'"
            out = h.cmd(cmd)
            if user and "tx-checksumming: off" not in out:
                raise LabError(f"could not turn off TX checksum offload on {h.name}'s eth0: "
                               f"{out.strip()[:300]}")

    def _kind(self, host: str) -> str:
        return next((h.kind for h in self.plan.hosts if h.name == host), "")

    def _fix_offloads(self) -> None:
        if self.datapath != "user":
            return
        names = [h.veth for h in self.plan.hosts]
        names += [i for link in self.plan.links if link.kind == "veth"
                  for i in (link.a_intf, link.b_intf)]
        script = "".join(f"ethtool -K {shlex.quote(n)} tx off >/dev/null 2>&1 || "
                         f"echo {shlex.quote(n)}\n" for n in names)
        failed = subprocess.run(["sh", "-s"], input=script, text=True, capture_output=True,
                                check=False).stdout.split()
        if failed:
            raise LabError(f"could not turn off TX checksum offload on {', '.join(failed)}")

    # ---- roles and UserData ------------------------------------------------------------
    def _start_programs(self) -> None:
        ctx = ServiceContext(self.name, self.lab_dir, self.plan, self.journal, self.events,
                             host_env())
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
                self._start_user_data(h)

    def _start_user_data(self, h: HostPlan) -> None:
        hdir = host_dir(self.name, h.name)
        script = hdir / "user-data"
        script.write_text(h.user_data)
        script.chmod(0o755)
        argv = [str(script)] if h.user_data.startswith("#!") else ["sh", str(script)]
        log = hdir / "user-data.log"
        proc = self.journal.start(netns_argv(self.name, h.name, argv), what="user-data",
                                  host=h.name, log=log, env=host_env(), cwd=hdir)
        self.programs[f"{h.name}:user-data"] = proc
        self.events.emit(h.name, "Lab::UserData", "USERDATA_STARTED",
                         f"pid {proc.pid}, log {log}")

        def wait() -> None:
            code = proc.wait()
            self.userdata_exit[h.name] = code
            status = "USERDATA_COMPLETE" if code == 0 else "USERDATA_FAILED"
            self.events.emit(h.name, "Lab::UserData", status, f"exit code {code}")

        threading.Thread(target=wait, daemon=True, name=f"userdata:{h.name}").start()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) < 2000 else text[:2000] + "..."
