"""VpcNetwork: the Mininet network of a lab, built from its VpcTopo resource by resource.

The lab (testbed.lab.builder) calls `create(resource)` for each template resource in
creation order, so that progress events follow the stack; then `start()` configures the
hosts, starts the switches (fail-mode secure, OpenFlow 1.3, the chosen datapath) and turns TX
checksum offload off where the userspace datapath needs it. Every process Mininet starts (a
shell per node) is reported through `on_process` before anything depends on it, so the lab
can end it by PID; each host's namespace gets the lab's name (`ip netns attach`) so that
`ip netns`, `testbed exec` and teardown find it. Mininet's own cleanup is never used.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable
from typing import Any

from mininet.link import Link, OVSLink, TCLink
from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.node import Host, Node, OVSSwitch, RemoteController

from testbed import naming
from testbed.errors import LabError
from testbed.model.types import StackModel
from testbed.plan.network import HostPlan, NetworkPlan
from testbed.topologies import host_config
from testbed.topologies.vpc import VpcTopo

# (pid, what, host) of a process Mininet started; raises LookupError if it already exited.
ProcessCallback = Callable[[int, str, str | None], None]
NODE_SHELL = "mininet-shell"
HOST_SHELL = "mininet-host-shell"


class QuietRemoteController(RemoteController):
    """RemoteController without Mininet's telnet probe (the lab asks the controller itself)."""

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
    ) -> None:
        setLogLevel("warning")
        self.lab, self.plan, self.topo, self.datapath = lab, plan, topo, datapath
        self.on_process = on_process
        self.net = Mininet(
            topo=None, build=False, controller=None, autoSetMacs=False, waitConnected=False
        )
        ctl = self.net.addController(
            "c0", controller=QuietRemoteController, ip="127.0.0.1", port=controller_port
        )
        self._record(ctl, NODE_SHELL)
        self.by_resource: dict[str | None, list[str]] = {}
        for n in topo.nodes():
            self.by_resource.setdefault(topo.nodeInfo(n).get("resource"), []).append(n)
        self.pending_links = list(topo.links(sort=True, withKeys=True, withInfo=True))
        self.created: set[str | None] = set()

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
        if self.topo.isSwitch(n):
            info.pop("role", None)
            info.pop("az", None)
            sw = self.net.addSwitch(
                n,
                cls=OVSSwitch,
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

    def _record(self, node: Node, what: str, host: str | None = None) -> None:
        try:
            self.on_process(node.pid, what, host)
        except LookupError as exc:
            raise LabError(f"Mininet node {node.name} died at start: {exc}") from exc

    def _add_link(self, info: dict[str, Any]) -> None:
        info = dict(info)
        kind = info.pop("kind")
        info.pop("resource", None)
        node1, node2 = info.pop("node1"), info.pop("node2")
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
        self.net.build()
        self._tune_hosts()
        self.net.start()
        self._fix_offloads()

    def _tune_hosts(self) -> None:
        user = self.datapath == "user"
        kinds = {h.name: h for h in self.plan.hosts}
        for h in self.net.hosts:
            # IPv6 autoconfiguration chatter is not part of the model: keep hosts IPv4-only.
            # Load clients open tens of thousands of connections a minute: a wide port range
            # and TIME_WAIT reuse keep them from stalling on their own closed sockets.
            cmd = (
                "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
                "net.ipv6.conf.default.disable_ipv6=1 net.ipv4.tcp_tw_reuse=1 "
                "net.ipv4.ip_local_port_range='1024 65535'; ip link set lo up"
            )
            hp = kinds.get(h.name)
            intfs = ["eth0", *(i.name for i in hp.interfaces)] if hp is not None else ["eth0"]
            if user:
                # With the userspace datapath a host must compute TX checksums itself, or
                # TCP through OVS fails while ping works (partial checksums reach the wire).
                cmd += "".join(f"; {host_config.tx_off(i)}" for i in intfs)
            if hp is not None and hp.kind == "dns":
                # /32 addresses, one per realm; everything else is on-link behind the router.
                cmd += "; ip addr flush dev eth0" + "".join(
                    f"; ip addr add {ip}/32 dev eth0" for ip in (hp.ip, *hp.extra_ips)
                )
                cmd += "; ip route replace default dev eth0"
            if hp is not None and hp.kind == "lb-node":
                # The node's own connections (health checks) use ports that no listener and
                # no SNAT'ed flow of the fabric can use (testbed's NLB keeps 1024-60999).
                cmd += "; sysctl -qw net.ipv4.ip_local_port_range='61000 65535'"
            if hp is not None and hp.kind != "dns":
                cmd += host_config.secondary_addresses("eth0", hp.extra_ips)
                if hp.interfaces:
                    cmd += "; " + host_config.interface_commands(hp)
            if hp is not None and hp.kind == "natgw":
                cmd += "; " + host_config.nat_gateway_commands()
            out = h.cmd(cmd)
            if user and out.count("tx-checksumming: off") < len(intfs):
                raise LabError(
                    f"could not turn off TX checksum offload on {h.name}'s "
                    f"{', '.join(intfs)}: {out.strip()[:300]}"
                )
            if hp is not None and hp.kind == "natgw":
                self._load_nat_ruleset(h, hp)

    def _load_nat_ruleset(self, node: Host, hp: HostPlan) -> None:
        """The NAT gateway's nftables ruleset, loaded in its namespace (nft reads stdin)."""
        done = subprocess.run(
            ["mnexec", "-a", str(node.pid), "nft", "-f", "-"],
            input=host_config.nat_ruleset(self.plan, hp),
            text=True,
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            raise LabError(f"nftables ruleset of NAT gateway {hp.name}: {done.stderr.strip()}")

    def _fix_offloads(self) -> None:
        if self.datapath != "user":
            return
        names = [h.veth for h in self.plan.hosts]
        names += [i.veth for h in self.plan.hosts for i in h.interfaces]
        names += [
            i for link in self.plan.links if link.kind == "veth" for i in (link.a_intf, link.b_intf)
        ]
        script = "".join(
            f"ethtool -K {shlex.quote(n)} tx off >/dev/null 2>&1 || echo {shlex.quote(n)}\n"
            for n in names
        )
        failed = subprocess.run(
            ["sh", "-s"], input=script, text=True, capture_output=True, check=False
        ).stdout.split()
        if failed:
            raise LabError(f"could not turn off TX checksum offload on {', '.join(failed)}")
