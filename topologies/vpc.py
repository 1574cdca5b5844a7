"""VpcTopo: the Mininet topology of a stack (VPC, AZ switches, subnets, internet segment).

`build()` only declares nodes and links from the network plan (testbed.plan.network); every
item carries `resource`, the template logical id it belongs to, so the lab can create the
stack resource by resource and report progress as it goes.
"""

from __future__ import annotations

from mininet.topo import Topo

from testbed.plan.network import NetworkPlan


class VpcTopo(Topo):
    """Switches, hosts and links of one lab, exactly as its network plan lays them out."""

    def __init__(
        self, plan: NetworkPlan, switch_resources: dict[str, str] | None = None, **opts
    ) -> None:
        """plan: the lab's network plan; switch_resources: switch name -> owning resource."""
        self.plan = plan
        self.switch_resources = switch_resources or {}
        super().__init__(**opts)

    def build(self) -> None:
        """Declare every switch, host and link of the plan."""
        plan = self.plan
        for sw in plan.switches:
            self.addSwitch(
                sw.name,
                dpid=f"{sw.dpid:016x}",
                role=sw.role,
                az=sw.az,
                resource=self.switch_resources.get(sw.name),
            )
        for link in plan.links:
            params: dict[str, str | float] = {}  # Mininet's TCLink options
            if link.delay_ms:
                params["delay"] = f"{link.delay_ms:g}ms"
            if link.bandwidth_mbps:
                params["bw"] = link.bandwidth_mbps
            self.addLink(
                link.a,
                link.b,
                port1=link.a_port,
                port2=link.b_port,
                intfName1=link.a_intf,
                intfName2=link.b_intf,
                kind=link.kind,
                resource=self.switch_resources.get(link.a),
                **params,
            )
        for h in plan.hosts:
            # A load balancer node is created with its load balancer.
            owner = h.role_args.get("lb", h.name) if h.kind == "lb-node" else h.name
            # No gateway (the lab's resolver): everything is on-link, behind the router.
            route = f"via {h.gateway}" if h.gateway else "dev eth0"
            self.addHost(
                h.name, ip=f"{h.ip}/{h.prefixlen}", mac=h.mac, defaultRoute=route, resource=owner
            )
            # The host side is eth0, as on an EC2 instance; it lives only in the host's
            # namespace, so two labs can both have a WebA1 with an eth0.
            self.addLink(
                h.name,
                h.switch,
                port1=0,
                port2=h.port,
                intfName1="eth0",
                intfName2=h.veth,
                kind="veth",
                resource=owner,
                **({"bw": plan.host_bandwidth_mbps} if plan.host_bandwidth_mbps else {}),
            )
            # An instance's further interfaces (ENIs): eth1, ... into the same namespace, each
            # on the switch of its own subnet's AZ; addresses are set when hosts are tuned.
            for number, i in enumerate(h.interfaces, start=1):
                self.addLink(
                    h.name,
                    i.switch,
                    port1=number,
                    port2=i.port,
                    intfName1=i.name,
                    intfName2=i.veth,
                    kind="veth",
                    resource=owner,
                    addr1=i.mac,
                    **({"bw": plan.host_bandwidth_mbps} if plan.host_bandwidth_mbps else {}),
                )
