"""VpcNetwork: the Mininet network of a lab, built from its VpcTopo resource by resource.

The lab (testbed.lab.builder) calls `create(resource)` for each template resource in
creation order, so that progress events follow the stack; then `start()` configures the
hosts, starts the switches (fail-mode secure, OpenFlow 1.3, the chosen datapath) and turns TX
checksum offload off where the userspace datapath needs it. Every process Mininet starts (a
shell per node) is reported through `on_process` before anything depends on it, so the lab
can end it by PID; each host's namespace gets the lab's name (`ip netns attach`) so that
`ip netns`, `testbed exec` and teardown find it. Mininet's own cleanup is never used.

While the lab runs, hosts come and go (Auto Scaling: testbed.lab.instances): prepare_host
makes one without its switch ports, attach_hosts puts several on their bridges in one OVS
transaction, remove_hosts takes them away exactly. These run in threads: Mininet's lists,
and a switch's shell (used only to put HTB back on a port), are used under a lock.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mininet.link import Link, OVSLink, TCLink
from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.node import Host, Node, OVSSwitch, RemoteController

from testbed import naming
from testbed.errors import LabError
from testbed.model.types import StackModel
from testbed.plan.gwlb_datapath import APPLIANCE_MTU, TunnelPort, appliance_links, plumbing
from testbed.plan.network import HostPlan, LinkPlan, NetworkPlan, SwitchPlan
from testbed.plan.placement import host_mtu
from testbed.topologies import host_config
from testbed.topologies.cluster import (
    LabServers,
    RemoteLabHost,
    RemoteLabSwitch,
    RemoteVxlanLink,
    ServerAccess,
    remove_hosts_script,
)
from testbed.topologies.vpc import VpcTopo

# (pid, what, host) of a process Mininet started; raises LookupError if it already exited.
ProcessCallback = Callable[[int, str, str | None], None]
NODE_SHELL = "mininet-shell"
HOST_SHELL = "mininet-host-shell"


class QuietRemoteController(RemoteController):
    """RemoteController without Mininet's telnet probe (the lab asks the controller itself)."""

    def checkListening(self) -> None:
        pass


class LabSwitch(OVSSwitch):
    """Mininet's OVS switch with the GENEVE ports of the GWLB nodes on it (switch datapath,
    testbed.plan.gwlb_datapath), created in the transaction that creates the bridge: they
    exist before the controller connects and programs flows that use them."""

    def __init__(self, name: str, tunnels: tuple[TunnelPort, ...] = (), **params: Any) -> None:
        self.tunnels = tunnels
        super().__init__(name, **params)

    def bridgeOpts(self) -> str:
        opts = super().bridgeOpts()
        for t in self.tunnels:
            opts += (
                f" -- add-port {self.name} {t.port} -- set Interface {t.port} type=geneve"
                f" options:remote_ip=flow options:key=flow options:local_ip={t.ip}"
                f" ofport_request={t.ofport}"
            )
        return opts


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
            candidates = (
                [
                    lid
                    for lid, t in model.resource_types.items()
                    if t == "AWS::EC2::VPCGatewayAttachment"
                ]
                + list(model.internet_gateways)
                + list(model.internet_clients)
            )
        candidates = [c for c in candidates if c in order]
        if candidates:
            owners[sw.name] = min(candidates, key=order.index)
    return owners


class VpcNetwork:
    """The Mininet objects of one lab; `net` stays alive as long as the lab."""

    def __init__(
        self,
        lab: str,
        plan: NetworkPlan,
        topo: VpcTopo,
        datapath: str,
        controller_port: int,
        on_process: ProcessCallback,
        cluster: LabServers | None = None,
    ) -> None:
        setLogLevel("warning")
        self.lab, self.plan, self.topo, self.datapath = lab, plan, topo, datapath
        self.on_process = on_process
        # A lab across servers (issue 18): where each node runs, how to reach the servers;
        # the controller then listens on the front end's underlay address.
        self.cluster = cluster
        self.cross = {
            (c.link.a, c.link.b): c for c in (cluster.placement.cross_links if cluster else ())
        }
        self.net = Mininet(
            topo=None, build=False, controller=None, autoSetMacs=False, waitConnected=False
        )
        ctl = self.net.addController(
            "c0",
            controller=QuietRemoteController,
            ip=cluster.front_end_address if cluster else "127.0.0.1",
            port=controller_port,
        )
        self._record(ctl, NODE_SHELL)
        self.by_resource: dict[str | None, list[str]] = {}
        for n in topo.nodes():
            self.by_resource.setdefault(topo.nodeInfo(n).get("resource"), []).append(n)
        self.pending_links = list(topo.links(sort=True, withKeys=True, withInfo=True))
        self.created: set[str | None] = set()
        # Hosts added while the lab runs (Auto Scaling), by name; their changes to Mininet's
        # lists and to the switches' port tables are made under the lock (launches run in
        # threads; a switch's own shell is never used for them).
        self.added: dict[str, HostPlan] = {}
        self.lock = threading.Lock()

    # ---- nodes and links, resource by resource -------------------------------------------
    def create(self, resource: str | None) -> None:
        """Create the nodes of one resource, then every link whose two ends now exist."""
        for n in self.by_resource.get(resource, []):
            self._add_node(n)
        self.created.add(resource)
        still = []
        for src, dst, key, info in self.pending_links:
            if src in self.net.nameToNode and dst in self.net.nameToNode:
                self._add_link(info)
            else:
                still.append((src, dst, key, info))
        self.pending_links = still

    def create_rest(self) -> None:
        """Lab machinery that no template resource owns (the resolver), and what is left."""
        for resource in [r for r in self.by_resource if r not in self.created]:
            self.create(resource)
        if self.pending_links:
            raise LabError(f"links left unbuilt: {[(s, d) for s, d, _, _ in self.pending_links]}")

    def _add_node(self, n: str) -> None:
        info = dict(self.topo.nodeInfo(n))
        info.pop("resource", None)
        remote = self.server_of(n)
        if remote is not None:
            self._add_remote_node(n, info, remote)
            return
        if self.topo.isSwitch(n):
            info.pop("role", None)
            info.pop("az", None)
            sw = self.net.addSwitch(
                n,
                cls=LabSwitch,
                tunnels=tuple(t for t in plumbing(self.plan).tunnels if t.bridge == n),
                failMode="secure",
                protocols="OpenFlow13",
                datapath="user" if self.datapath == "user" else "kernel",
                batch=True,
                **info,
            )
            self._record(sw, NODE_SHELL)
            return
        host = self.net.addHost(n, cls=Host, **info)
        ns = naming.netns_name(self.lab, n)
        # Name the host's namespace so that `ip netns`, `testbed exec` and cleanup find it.
        subprocess.run(
            ["ip", "netns", "attach", ns, str(host.pid)], check=True, capture_output=True
        )
        self._record(host, HOST_SHELL, host=n)

    def server_of(self, node: str) -> ServerAccess | None:
        """The server a node runs on; None: this machine."""
        return self.cluster.server_of(node) if self.cluster else None

    def _add_remote_node(self, n: str, info: dict[str, Any], access: ServerAccess) -> None:
        """A switch or host on another server (Cluster Edition's RemoteMixin): its shell is
        an ssh session (journaled by the local ssh client's PID: the node's own PID is the
        server's), its namespace named on that server."""
        if self.topo.isSwitch(n):
            info.pop("role", None)
            info.pop("az", None)
            sw = self.net.addSwitch(
                n,
                cls=RemoteLabSwitch,
                access=access,
                failMode="secure",
                protocols="OpenFlow13",
                datapath="user" if self.datapath == "user" else "kernel",
                **info,
            )
            self._record(sw, NODE_SHELL)
            return
        host = self.net.addHost(n, cls=RemoteLabHost, access=access, **info)
        self._record(host, HOST_SHELL, host=n)
        access.run(f"ip netns attach {shlex.quote(naming.netns_name(self.lab, n))} {host.pid}")

    def _record(self, node: Node, what: str, host: str | None = None) -> None:
        pid = node.shell.pid if getattr(node, "isRemote", False) else node.pid
        try:
            self.on_process(pid, what, host)
        except LookupError as exc:
            raise LabError(f"Mininet node {node.name} died at start: {exc}") from exc

    def _add_link(self, info: dict[str, Any]) -> None:
        info = dict(info)
        kind = info.pop("kind")
        info.pop("resource", None)
        node1, node2 = info.pop("node1"), info.pop("node2")
        crossing = self.cross.get((node1, node2))
        if crossing is not None and self.cluster is not None:
            # An inter-AZ link between two servers: a tunnel (its delay is the underlay's; its
            # bandwidth too unless --tunnel-rate gave one: placement.tunnel_rate, tbf).
            for key in ("delay", "bw"):
                info.pop(key, None)
            ends = (self.cluster.access[crossing.a_server], self.cluster.access[crossing.b_server])
            self.net.addLink(
                node1,
                node2,
                cls=RemoteVxlanLink,
                vni=crossing.vni,
                mtu=self.cluster.placement.mtu.path,
                rate=self.cluster.placement.tunnel_rate,
                local1=ends[0].address,
                local2=ends[1].address,
                **info,
            )
            return
        if kind == "patch" and self.server_of(node1) != self.server_of(node2):
            raise LabError(f"link {node1} - {node2} crosses servers but is not a tunnel")
        if kind == "patch":
            cls: type[Link] = OVSLink
        elif "delay" in info or "bw" in info:
            cls = TCLink
        else:
            cls = Link
        host = next((h for h in self.plan.hosts if h.name == node1), None)
        eth0 = info.get("intfName1") == "eth0"
        if host is not None and eth0 and host.kind in ("instance", "client"):
            info["addr1"] = host.mac
        self.net.addLink(node1, node2, cls=cls, **info)

    # ---- switches on -------------------------------------------------------------------
    def start(self) -> None:
        """Configure hosts (addresses, MACs, routes, sysctls), start the switches."""
        if self.datapath == "user":
            _quiet_root_side(self._root_veths())
            for access, names in self._remote_root_veths():
                _quiet_remote_side(access, names)
        self.net.build()
        self._tune_hosts()
        self.net.start()
        self._fix_offloads()
        for link in self.net.links:
            if isinstance(link, RemoteVxlanLink):
                link.shape()  # --tunnel-rate (after the switches: OVS resets a port's qdisc)

    def _tune_hosts(self) -> None:
        kinds = {h.name: h for h in self.plan.hosts}
        for h in self.net.hosts:
            self._tune(h, kinds.get(h.name))

    def _tune(self, node: Host, hp: HostPlan | None, first: str = "") -> None:
        """The per-host settings every lab host gets (after `first`, shell commands), checked."""
        user = self.datapath == "user"
        cmd, intfs = host_config.tuning(hp, user)
        if self.cross and self.cluster is not None:
            # Tunnels between servers: the hosts' MTU leaves room for them, GENEVE ends get
            # the path MTU (plan.placement.host_mtu).
            mtu = host_mtu(self.cluster.placement.mtu, hp.role if hp is not None else None)
            names = ["eth0", *(i.name for i in hp.interfaces)] if hp is not None else ["eth0"]
            first += "".join(f"ip link set dev {n} mtu {mtu}; " for n in names)
        out = node.cmd(first + cmd)
        if host_config.IMDS_FAILED in out:
            raise LabError(
                f"could not redirect {node.name}'s metadata service address "
                f"({host_config.IMDS_ADDRESS}:80): {out.strip()[:300]}"
            )
        if user and out.count("tx-checksumming: off") < len(intfs):
            raise LabError(
                f"could not turn off TX checksum offload on {node.name}'s "
                f"{', '.join(intfs)}: {out.strip()[:300]}"
            )
        if hp is not None and hp.kind == "natgw":
            self._load_nat_ruleset(node, hp)

    def _load_nat_ruleset(self, node: Host, hp: HostPlan) -> None:
        """The NAT gateway's nftables ruleset, loaded in its namespace (nft reads stdin)."""
        access = self.server_of(hp.name)
        argv = ["mnexec", "-a", str(node.pid), "nft", "-f", "-"]
        if access is not None:
            argv = [*access.ssh(), shlex.join(argv)]
        done = subprocess.run(
            argv,
            input=host_config.nat_ruleset(self.plan, hp),
            text=True,
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            raise LabError(f"nftables ruleset of NAT gateway {hp.name}: {done.stderr.strip()}")

    def _all_root_veths(self) -> list[tuple[str, str]]:
        """(switch, root-side name) of the lab's veths (host links, veth trunks)."""
        names = [(h.switch, h.veth) for h in self.plan.hosts]
        names += [(i.switch, i.veth) for h in self.plan.hosts for i in h.interfaces]
        for link in self.plan.links:
            if (link.a, link.b) in self.cross:
                continue  # a tunnel: its ends are VXLAN devices (_remote_root_veths)
            if link.kind == "veth":
                names += [(link.a, link.a_intf), (link.b, link.b_intf)]
        return names

    def _root_veths(self) -> list[str]:
        """The root namespace's ends of the lab's veths on this machine."""
        return [n for sw, n in self._all_root_veths() if self.server_of(sw) is None]

    def _remote_root_veths(self) -> list[tuple[ServerAccess, list[str]]]:
        """The root-side veths (and tunnel ends) on each other server (issue 18)."""
        out: dict[str, tuple[ServerAccess, list[str]]] = {}
        ends = [(sw, name) for sw, name in self._all_root_veths()]
        for c in self.cross.values():
            ends += [(c.link.a, c.link.a_intf), (c.link.b, c.link.b_intf)]
        for sw, name in ends:
            access = self.server_of(sw)
            if access is not None:
                out.setdefault(access.name, (access, []))[1].append(name)
        return list(out.values())

    def _fix_offloads(self) -> None:
        if self.datapath != "user":
            return
        names = self._root_veths()
        names += [
            i
            for c in self.cross.values()
            for sw, i in ((c.link.a, c.link.a_intf), (c.link.b, c.link.b_intf))
            if self.server_of(sw) is None
        ]
        for access, remote in self._remote_root_veths():
            out = access.run(
                "".join(
                    f"ethtool -K {shlex.quote(n)} tx off >/dev/null 2>&1 || echo {n}\n"
                    for n in remote
                ),
                check=False,
            )
            if out.split():
                raise LabError(
                    f"could not turn off TX checksum offload on {access.name}: {out.split()}"
                )
        script = "".join(
            f"ethtool -K {shlex.quote(n)} tx off >/dev/null 2>&1 || echo {shlex.quote(n)}\n"
            for n in names
        )
        failed = subprocess.run(
            ["sh", "-s"], input=script, text=True, capture_output=True, check=False
        ).stdout.split()
        if failed:
            raise LabError(f"could not turn off TX checksum offload on {', '.join(failed)}")

    # ---- bridges a stack added to the running lab needs (issue 14) -----------------------
    def add_switch(self, sw: SwitchPlan, uplink: LinkPlan) -> None:
        """A new bridge in the running network (the internet segment or an AZ a stack added
        with `testbed up --into` brings), as the lab starts its own: fail-mode secure,
        OpenFlow 1.3, the lab's datapath and controller, its patch link to the core with the
        planned OpenFlow ports (the core side added to the running core). The controller
        must already have a plan with it. A bridge the network already has is left as it is
        (a stack that brought it was deleted or rolled back, the bridge stayed)."""
        if uplink.kind != "patch":
            raise LabError(
                f"not yet: bridge {sw.name} would need a {uplink.kind} link to the core "
                "(inter-AZ delay or bandwidth) in a running lab (issue 14)"
            )
        with self.lock:
            if sw.name in self.net.nameToNode:
                return
            node = self.net.addSwitch(
                sw.name,
                cls=OVSSwitch,
                failMode="secure",
                protocols="OpenFlow13",
                datapath="user" if self.datapath == "user" else "kernel",
                batch=True,
                dpid=f"{sw.dpid:016x}",
            )
        self._record(node, NODE_SHELL)
        core = uplink.b
        with self.lock:
            self.net.addLink(
                node,
                self.net.nameToNode[core],
                cls=OVSLink,
                port1=uplink.a_port,
                port2=uplink.b_port,
                intfName1=uplink.a_intf,
                intfName2=uplink.b_intf,
            )
        # One transaction, checked (Mininet's start ignores ovs-vsctl's errors): the bridge
        # with Mininet's options and controller entry, both ends of the patch pair (the
        # core's shell is the builder's, not used here).
        ctl = self.net.controllers[0]
        a_intf = node.intfList()[-1]
        target = f'target="{ctl.protocol}:{ctl.IP()}:{ctl.port}"'  # a quoted OVSDB string
        rest = (
            f"max_backoff={node.reconnectms}"
            f" -- --if-exists del-br {sw.name} -- add-br {sw.name}"
            f" -- set bridge {sw.name} controller=[@c]{node.bridgeOpts()}"
            f" -- add-port {sw.name} {a_intf}{node.intfOpts(a_intf)}"
            f" -- add-port {core} {uplink.b_intf} -- set Interface {uplink.b_intf}"
            f" ofport_request={uplink.b_port} type=patch options:peer={uplink.a_intf}"
        )
        vsctl = ["ovs-vsctl", "--timeout=30", "--", "--id=@c", "create", "Controller", target]
        _run(vsctl + shlex.split(rest))
        check = ["ovs-vsctl", "--timeout=10"]
        for intf in (uplink.a_intf, uplink.b_intf):
            check += ["--", "get", "Interface", intf, "ofport"]
        got = _run(check).stdout.split()
        if got != [str(uplink.a_port), str(uplink.b_port)]:
            raise LabError(
                f"{sw.name}'s link to the core got OpenFlow ports {got}, not "
                f"{[uplink.a_port, uplink.b_port]}"
            )

    # ---- hosts that come and go while the lab runs ---------------------------------------
    def add_host(self, hp: HostPlan) -> Host:
        """A host for `hp` in the running network: prepare_host, then attach_hosts of it.
        On a failure whatever was made is removed again and LabError raised."""
        node = self.prepare_host(hp)
        try:
            self.attach_hosts([hp])
        except LabError:
            self.remove_host(hp.name)
            raise
        return node

    def prepare_host(self, hp: HostPlan) -> Host:
        """Everything of a new host but its switch ports: its shell (journaled first), its
        named namespace, eth0 (and any further interface) with the switch side up and TX
        offload off (userspace datapath), and the settings a template host gets. Thread-safe
        (launches run in threads); on a failure whatever was made is removed again and
        LabError raised. attach_hosts then puts it on its switches, several hosts at once."""
        with self.lock:
            if hp.name in self.net.nameToNode or hp.name in self.added:
                raise LabError(f"host {hp.name} already exists in lab {self.lab}")
            self.added[hp.name] = hp
        # A lab across servers: a host of an AZ on another server is made there (its shell
        # through ssh, its links to the AZ's bridge, which is on the same server).
        access = self.server_of(hp.name)
        try:
            node = Host(hp.name) if access is None else RemoteLabHost(hp.name, access=access)
            self._record(node, HOST_SHELL, host=hp.name)
            with self.lock:
                self.net.hosts.append(node)
                self.net.nameToNode[hp.name] = node
            if access is None:
                _run(["ip", "netns", "attach", hp.netns, str(node.pid)])
            else:
                access.run(f"ip netns attach {shlex.quote(hp.netns)} {node.pid}")
            for spec in _attachments(hp):
                self._add_late_link(node, hp, *spec)
            script = ""
            for *_, veth, _mac in _attachments(hp):
                script += f"ip link set {shlex.quote(veth)} up\n"
                if self.datapath == "user":
                    script += f"ethtool -K {shlex.quote(veth)} tx off >/dev/null\n"
            # An appliance of the switch GWLB datapath: AWS's VPC MTU on both ends.
            veths, ends = appliance_links(self.plan, hp)
            for veth in veths:
                script += f"ip link set dev {shlex.quote(veth)} mtu {APPLIANCE_MTU}\n"
            for netns, intf in ends:
                script += f"ip -n {shlex.quote(netns)} link set dev {intf} mtu {APPLIANCE_MTU}\n"
            veths = [veth for *_, veth, _mac in _attachments(hp)]
            if access is None:
                _run(["sh", "-e", "-c", script])
                if self.datapath == "user":
                    _quiet_root_side(veths)
            else:
                access.run(f"sh -e -c {shlex.quote(script)}")
                if self.datapath == "user":
                    _quiet_remote_side(access, veths)
            self._tune(node, hp, first=host_config.eth0_commands(hp))
        except Exception as exc:
            with contextlib.suppress(Exception):
                self.remove_host(hp.name)
            if isinstance(exc, LabError):
                raise
            raise LabError(f"host {hp.name} could not be added: {exc}") from exc
        return node

    def attach_hosts(self, hosts: list[HostPlan]) -> None:
        """Put prepared hosts' interfaces on their running OVS bridges with their planned
        OpenFlow ports (the controller already has a plan with them), in one transaction:
        each transaction makes ovs-vswitchd reconfigure, which takes longer the more ports
        it has. LabError (nothing attached) when it fails or a port got another number."""
        if not hosts:
            return
        try:
            for access, group in self._by_server(hosts):
                # One transaction per server (a lab across servers: each one's own OVS).
                vsctl = ["ovs-vsctl", "--timeout=60"]
                check = ["ovs-vsctl", "--timeout=10"]
                wanted = []
                for hp in group:
                    for _intf, _p1, switch, port, veth, _mac in _attachments(hp):
                        vsctl += ["--", "add-port", switch, veth]
                        vsctl += ["--", "set", "Interface", veth, f"ofport_request={port}"]
                        check += ["--", "get", "Interface", veth, "ofport"]
                        wanted.append((veth, str(port)))
                _on(access, vsctl)
                got = _on(access, check).split()
                wrong = [
                    f"{v} got {g}, not {w}"
                    for (v, w), g in zip(wanted, got, strict=False)
                    if g != w
                ]
                if wrong or len(got) != len(wanted):
                    raise LabError(f"OpenFlow ports not as planned: {'; '.join(wrong) or got}")
        except LabError:
            self.detach_hosts(hosts)
            raise
        if self.plan.host_bandwidth_mbps:
            # Adding a port makes OVS replace its root qdisc: the HTB goes on again (what
            # Mininet's TCReapply does for the switches it starts).
            with self.lock:
                for hp in hosts:
                    for *_, veth, _mac in _attachments(hp):
                        node = self.net.nameToNode.get(hp.name)
                        for link in self.net.links if node is not None else []:
                            if link.intf2.name == veth:
                                OVSSwitch.TCReapply(link.intf2)

    def detach_hosts(self, hosts: list[HostPlan]) -> None:
        """Take hosts' interfaces off their bridges (one transaction per server; missing ones
        skipped)."""
        for access, group in self._by_server(hosts):
            vsctl = ["ovs-vsctl", "--timeout=60"]
            for hp in group:
                for _intf, _p1, switch, _port, veth, _mac in _attachments(hp):
                    vsctl += ["--", "--if-exists", "del-port", switch, veth]
            if len(vsctl) > 2:
                _on(access, vsctl, check=False)

    def _by_server(self, hosts: list[HostPlan]) -> list[tuple[ServerAccess | None, list[HostPlan]]]:
        """`hosts` grouped by the server each runs on (None: this machine)."""
        groups: dict[str, tuple[ServerAccess | None, list[HostPlan]]] = {}
        for hp in hosts:
            access = self.server_of(hp.name)
            key = "" if access is None else access.name
            groups.setdefault(key, (access, []))[1].append(hp)
        return list(groups.values())

    def place_hosts(self, hosts: list[HostPlan]) -> dict[str, ServerAccess | None]:
        """A lab across servers: hosts added while it runs go on their switch's server
        (servers.json says so before anything of them exists); BadInput when one cannot (a
        bridge on no server), nothing placed then. {} for a lab on this machine."""
        if self.cluster is None:
            return {}
        with self.lock:
            where = self.cluster.place_hosts(hosts)
            self.cluster.save(naming.lab_dir(self.lab))
        return where

    def unplace_hosts(self, names: list[str]) -> None:
        """Removed hosts leave the placement (servers.json)."""
        if self.cluster is None:
            return
        with self.lock:
            self.cluster.unplace_hosts(names)
            self.cluster.save(naming.lab_dir(self.lab))

    def _add_late_link(
        self,
        node: Host,
        hp: HostPlan,
        intf: str,
        port1: int,
        switch: str,
        port2: int,
        veth: str,
        mac: str,
    ) -> None:
        params: dict[str, Any] = {}
        cls: type[Link] = Link
        if self.plan.host_bandwidth_mbps:
            cls, params = TCLink, {"bw": self.plan.host_bandwidth_mbps}
            # Mininet's TC setup turns TX checksum offload on unless told (txo): the
            # userspace datapath needs it off (as _fix_offloads makes it for the others).
            params["txo"] = self.datapath != "user"
        with self.lock:
            sw = self.net.nameToNode[switch]
            # up=None: Mininet would bring the switch side up through the switch's shell,
            # which other threads use; the commands below do it in their own processes.
            link = self.net.addLink(
                node,
                sw,
                port1=port1,
                port2=port2,
                intfName1=intf,
                intfName2=veth,
                addr1=mac,
                cls=cls,
                up=None,
                **params,
            )
        if link is None:
            raise LabError(f"link {intf} of {hp.name} to {switch} was not made")

    def remove_host(self, name: str) -> None:
        """Remove a host that add_host made, exactly: its OVS ports, its shell (by PID), its
        links, its namespace name; Mininet forgets it. Processes that were started in it
        must have been ended by the caller (the journal). Safe on a half-made host."""
        self.remove_hosts([name])

    def adopt_hosts(self, hosts: list[HostPlan]) -> None:
        """Hosts the lab's build made become removable as late ones are (a template update
        removes or replaces them): the same named namespace, veths and ports."""
        with self.lock:
            for hp in hosts:
                if hp.name in self.net.nameToNode:
                    self.added.setdefault(hp.name, hp)

    def remove_hosts(self, names: list[str]) -> None:
        """remove_host of several hosts, their ports in one OVS transaction."""
        gone: list[tuple[HostPlan, Node | None]] = []
        with self.lock:
            for name in names:
                hp = self.added.pop(name, None)
                if hp is None:
                    continue  # not one of ours (a template host goes with the lab)
                gone.append((hp, self._forget(name)))
        if not gone:
            return
        self.detach_hosts([hp for hp, _ in gone])
        batch = ""
        elsewhere: dict[str, tuple[ServerAccess, list[tuple[str, str, list[str]]]]] = {}
        for hp, node in gone:
            if node is not None:
                _end_shell(node)
            veths = [veth for *_, veth, _mac in _attachments(hp)]
            access = self.server_of(hp.name)
            if access is not None:
                # On its server: what runs in its namespace, its veths, the namespace, its
                # cgroup (the server's, made by the launcher).
                elsewhere.setdefault(access.name, (access, []))[1].append(
                    (hp.name, hp.netns, veths)
                )
                continue
            # A veth goes with its peer; the namespace once nothing runs inside.
            batch += "".join(f"link del dev {veth}\n" for veth in veths)
            batch += f"netns delete {hp.netns}\n"
        if batch:
            _run(["ip", "-force", "-batch", "-"], check=False, input=batch)
        for access, removed in elsewhere.values():
            access.run(remove_hosts_script(self.lab, removed), check=False)
        self.unplace_hosts([hp.name for hp, _ in gone])

    def _forget(self, name: str) -> Node | None:
        """Mininet's objects of host `name` dropped (under the lock): the node, its links,
        the switch side's interfaces."""
        node = self.net.nameToNode.pop(name, None)
        if node is None:
            return None
        if node in self.net.hosts:
            self.net.hosts.remove(node)
        for link in [x for x in self.net.links if node in (x.intf1.node, x.intf2.node)]:
            self.net.links.remove(link)
            for intf in (link.intf1, link.intf2):
                if intf.node is not node:
                    intf.node.delIntf(intf)
        return node


def _quiet_root_side(veths: list[str]) -> None:
    """No ARP (NOARP) and no IPv6 on the root namespace's ends of a userspace datapath's
    veths. A lab of the switch GWLB datapath puts its GWLB nodes' addresses into the root
    namespace (testbed.lab.gwlb_switch), where every lab's veths are:
    - the kernel sees every frame of such a veth too, and would answer a host's ARP for such
      an address on the host's veth with the veth's own MAC (arp_ignore 0) before the
      controller answers;
    - ovs-vswitchd pops GENEVE to a node address and MAC (its tunnel port map is one for the
      whole datapath) from any output to a port whose device has an address, an IPv6
      link-local one included: it would take another lab's GENEVE to the same address (a
      lab of the same template on the node datapath).
    Every lab does this to its veths, so that no lab disturbs another."""
    if not veths:
        return
    done = subprocess.run(
        ["ip", "-batch", "-"],
        input="".join(f"link set dev {v} arp off\n" for v in veths),
        text=True,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise LabError(f"could not turn ARP off on the lab's veths: {done.stderr.strip()}")
    for v in veths:
        try:
            Path(f"/proc/sys/net/ipv6/conf/{v}/disable_ipv6").write_text("1\n")
        except FileNotFoundError:
            pass  # a kernel without IPv6: nothing to turn off
        except OSError as exc:
            raise LabError(f"could not turn IPv6 off on {v}: {exc}") from exc


def _quiet_remote_side(access: ServerAccess, veths: list[str]) -> None:
    """_quiet_root_side on another server (its root namespace, over ssh)."""
    script = "".join(
        f"ip link set dev {v} arp off; "
        f"f=/proc/sys/net/ipv6/conf/{v}/disable_ipv6; test -e $f && echo 1 > $f; "
        for v in veths
    )
    access.run(script + "true")


def _attachments(hp: HostPlan) -> list[tuple[str, int, str, int, str, str]]:
    """(intf, host port, switch, switch port, veth, mac) of each of a host's interfaces."""
    out = [("eth0", 0, hp.switch, hp.port, hp.veth, hp.mac)]
    for number, i in enumerate(hp.interfaces, start=1):
        out.append((i.name, number, i.switch, i.port, i.veth, i.mac))
    return out


def _end_shell(node: Node) -> None:
    """End a host's Mininet shell by its PID and free what Mininet holds for it (its pty)."""
    shell = node.shell
    if shell is not None and shell.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(shell.pid, signal.SIGKILL)  # an interactive bash ignores SIGTERM
    if shell is not None:
        shell.wait()
        with contextlib.suppress(OSError):
            node.stdin.close()
        with contextlib.suppress(OSError):
            os.close(node.slave)
        for table in (Node.outToNode, Node.inToNode):
            for fd in [fd for fd, n in table.items() if n is node]:
                del table[fd]
        node.shell = None


def _on(access: ServerAccess | None, argv: list[str], check: bool = True) -> str:
    """Run `argv` on this machine (None) or server `access` (its OVS environment); stdout."""
    if access is None:
        return str(_run(argv, check=check).stdout)
    return access.run(shlex.join(argv), check=check)


def _run(
    argv: list[str], check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, input=input, check=False)
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(argv[:4])} ... failed: {(done.stderr or done.stdout).strip()}")
    return done
