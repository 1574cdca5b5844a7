"""L2/L3 forwarding of a lab: the AWS VPC router, the internet gateway and ARP, as pure logic.

Given the network plan, `Forwarding` returns the flow entries of each switch; it never talks
to a switch itself (testbed.controllers.lab_app does that). Routing is done once, on the switch
where a packet enters: that switch applies the route table of the sender's subnet, the
internet gateway's 1:1 NAT, rewrites the MACs and sends the packet on; the other switches on
the path only look up the destination MAC (TABLE_OUTPUT).

ARP is answered by the switches themselves, as OVS ARP responders do, so that the data plane
needs no controller: TABLE_CLASSIFY checks that a request comes from the host on that port
(its MAC and address) and tags it with the host's ARP class; TABLE_ARP holds, per class, one
entry per address that class may resolve, which rewrites the request into its reply (set-field
and Nicira moves) and sends it back out of the port it came in on. `arp_answer` is the rule;
the entries are made from it.

Everything per port is programmed for each attachment of the plan (NetworkPlan.attachments():
every host's eth0 and a view per extra interface, "HOST/eth1"), so an instance's second network
interface is a port like any other: its own address, secondary addresses, subnet and public
address. A port whose source/destination check is off (a NAT gateway, an instance with
SourceDestCheck false) may send from any address; routes of kind 'nat' send to it.

Two VPCs may have the same addresses (issue 14): each VPC has an address space (VpcPlan.space),
VPCs of one space never overlap, and a host's MAC carries its space (02:ss:ip). When a plan's
VPCs share addresses, the metadata's VPC bits after routing (TABLE_ROUTE) name the destination
realm, the VPC whose addresses ipv4_dst is in: a local route leaves them as the sender's, the
internet gateway's inbound 1:1 NAT writes the VPC owning the public address and its way to the
internet writes INTERNET_REALM, and the resolver's answers write the VPC they go to. Every
table that finds a port by an address alone (L3_DELIVER, IGW_OUT, the IGW's public addresses,
its ingress routes, the NACL_IN / SG_LB / NLB listener entries of testbed.controllers.security
and .nlb) also matches those bits, and ARP answers of load balancer nodes and the resolver are
per VPC / space. A plan whose VPCs do not overlap gets exactly the flows it always had.

GWLB steering in the switch (issue 15): for an endpoint whose GWLB node has a GENEVE port
(NodePlan.tunnel_port), the node's switch sends IPv4 to the endpoint's MAC into the GWLB tables
(testbed.controllers.gwlb) instead of to the node, takes what comes back decapsulated on the
tunnel port with the endpoint's id as sent by the endpoint (its subnet's route table), and lets
the node's port send from any such node's address (OVS sends every node's GENEVE out of one
node's port). A plan without tunnel ports gets exactly the flows it always had.
"""

from __future__ import annotations

from collections import deque
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from testbed.controllers.flows import (
    ARP_REPLY,
    ARP_REQUEST,
    ETH_TYPE_ARP,
    ETH_TYPE_IP,
    IN_PORT,
    TABLE_ARP,
    TABLE_BRIDGE,
    TABLE_CLASSIFY,
    TABLE_GWLB_CT,
    TABLE_GWLB_RX,
    TABLE_IGW,
    TABLE_IGW_OUT,
    TABLE_IGW_ROUTE,
    TABLE_L3_DELIVER,
    TABLE_LB,
    TABLE_NACL_IN,
    TABLE_NACL_OUT,
    TABLE_OUTPUT,
    TABLE_ROUTE,
    TABLE_SG_LB,
    TABLE_STEER,
    Action,
    DecTtl,
    Flow,
    Move,
    Output,
    Resubmit,
    SetField,
    flow,
)
from testbed.controllers.gwlb import endpoint_id, endpoint_number, tunnel_nodes
from testbed.controllers.security import (
    address_space,
    deliver,
    egress_table,
    in_vpc,
    vpcs_share_addresses,
)
from testbed.plan.network import HostPlan, NetworkPlan, RoutePlan

# Packet metadata written at ingress: which VPC and subnet (or the internet) the sender is in.
# Bits 32-47: VPC index (INTERNET_REALM for hosts outside any VPC); bits 0-15: subnet index.
VPC_MASK = 0xFFFF << 32
SUBNET_MASK = VPC_MASK | 0xFFFF
INTERNET_REALM = 0xFFFF
DNS_REALM = 0xFFFE  # the lab's resolver, which answers hosts of every realm
# ARP classes (metadata of a request in TABLE_ARP): the asker's realm, and this bit for load
# balancer nodes (which resolve each other's addresses; other hosts route to them).
LB_NODE_ASKER = 1 << 16
ARP_CLASS_MASK = SUBNET_MASK | LB_NODE_ASKER
ARP_SCRATCH = "reg3"  # holds the asked address while the responder swaps the two addresses


def vpc_tag(vpc_index: int) -> int:
    return vpc_index << 32


def subnet_tag(vpc_index: int, subnet_index: int) -> int:
    return (vpc_index << 32) | subnet_index


class Forwarding:
    """Flows and ARP answers for every switch of one lab."""

    def __init__(self, plan: NetworkPlan) -> None:
        self.plan = plan
        self.router_mac = plan.router_mac
        self._dpid_to_switch = {s.dpid: s.name for s in plan.switches}
        self._vpc_index = {v.name: v.index for v in plan.vpcs}
        self._subnets = {s.name: s for s in plan.subnets}
        self._space = {v.name: address_space(v) for v in plan.vpcs}
        # VPCs share addresses: address matches also match the destination realm.
        self._separate = vpcs_share_addresses(plan)
        self._neighbours = self._build_neighbours()
        # Every switch port that holds a host interface (eth0 of each host, "HOST/ethN" views).
        self._ports = plan.attachments()
        # (VPC bits, address) of LB nodes, (address space, address) of the resolvers' addresses.
        self._lb_node_ips = {(self._vpc_key(h), h.ip) for h in self._ports if h.kind == "lb-node"}
        self._dns_ips = {
            (self._space_key(h), ip)
            for h in self._ports
            if h.kind == "dns"
            for ip in (h.ip, *h.extra_ips)
        }
        self._endpoints = {e.name: e for e in plan.endpoints}
        self._nat_hosts = {h.name: h for h in plan.hosts if h.kind == "natgw"}
        # GWLB nodes whose steering the switch does (issue 15): host -> GENEVE port, and the
        # addresses encapsulated packets may come from (OVS routes every node's out of one
        # node's port).
        self._tunnel_port = {
            host: node.tunnel_port for host, (_lb, node) in tunnel_nodes(plan).items()
        }
        self._tunnel_sources = tuple(node.ip for _lb, node in tunnel_nodes(plan).values())
        self._flows: dict[int, list[Flow]] = {}  # the plan does not change: computed once

    # ---- topology helpers -------------------------------------------------------------
    def _build_neighbours(self) -> dict[str, dict[str, int]]:
        """switch -> {neighbour switch: local port}."""
        nb: dict[str, dict[str, int]] = {s.name: {} for s in self.plan.switches}
        for link in self.plan.links:
            nb[link.a][link.b] = link.a_port
            nb[link.b][link.a] = link.b_port
        return nb

    def trunk_ports(self, switch: str) -> list[int]:
        return sorted(self._neighbours[switch].values())

    def port_toward(self, switch: str, target_switch: str) -> int | None:
        """First port on the shortest switch path from `switch` to `target_switch`."""
        if switch == target_switch:
            return None
        first_hop: dict[str, int] = {}
        queue: deque[str] = deque()
        for nb, port in self._neighbours[switch].items():
            first_hop[nb] = port
            queue.append(nb)
        seen = {switch, *first_hop}
        while queue:
            here = queue.popleft()
            if here == target_switch:
                return first_hop[here]
            for nb in self._neighbours[here]:
                if nb not in seen:
                    seen.add(nb)
                    first_hop[nb] = first_hop[here]
                    queue.append(nb)
        return None

    def realm_tag(self, host: HostPlan) -> int:
        """Metadata written for packets from `host` (its VPC and subnet, or the internet;
        a resolver's subnet bits are its address space when VPCs share addresses)."""
        if host.kind == "dns":
            return vpc_tag(DNS_REALM) | self._space_key(host)
        if host.kind == "client" or host.subnet is None:
            return vpc_tag(INTERNET_REALM)
        subnet = self._subnets[host.subnet]
        return subnet_tag(self._vpc_index[subnet.vpc], subnet.index)

    def host_space(self, host: HostPlan) -> int:
        """The address space of `host`: its VPC's; 0 on the internet; a resolver's is in its
        MAC (02:ss:...) unless the plan says."""
        if host.kind == "dns":
            space = getattr(host, "space", None)
            return int(host.mac.split(":")[1], 16) if space is None else int(space)
        if host.kind == "client" or host.subnet is None:
            return 0
        return self._space.get(self._subnets[host.subnet].vpc, 0)

    def _space_key(self, host: HostPlan) -> int:
        return self.host_space(host) if self._separate else 0

    def _vpc_key(self, host: HostPlan) -> int:
        """The VPC bits of `host`'s realm when VPCs share addresses, else 0."""
        return self.realm_tag(host) & VPC_MASK if self._separate else 0

    def _in_realm(self, host: HostPlan) -> dict[str, Any]:
        """The match on `host`'s VPC bits when VPCs share addresses, else nothing."""
        return {"metadata": (self._vpc_key(host), VPC_MASK)} if self._separate else {}

    def _resolver_realms(self, dns: HostPlan) -> list[int]:
        """VPC bits of the realms a resolver serves (VPCs share addresses): the VPCs of its
        address space, and for space 0 the internet."""
        space = self.host_space(dns)
        realms = [vpc_tag(v.index) for v in self.plan.vpcs if self._space[v.name] == space]
        return realms + ([vpc_tag(INTERNET_REALM)] if space == 0 else [])

    def arp_class(self, host: HostPlan) -> int:
        """What `host` may resolve by ARP depends only on this (see arp_answer): its realm,
        and whether it is a load balancer node."""
        return self.realm_tag(host) | (LB_NODE_ASKER if host.kind == "lb-node" else 0)

    # ---- flows ------------------------------------------------------------------------
    def flows_for(self, dpid: int) -> list[Flow]:
        """Every forwarding flow of switch `dpid`."""
        if dpid not in self._flows:
            self._flows[dpid] = self._flows_for(self._dpid_to_switch[dpid])
        return list(self._flows[dpid])

    def _flows_for(self, switch: str) -> list[Flow]:
        flows: list[Flow] = []
        flows += self._classify(switch)
        flows += self._arp_responder(switch)
        # Routed or not, packets pass the source subnet's network ACL (tables 15, 35:
        # testbed.controllers.security), which only looks at routed ones.
        flows.append(flow(TABLE_STEER, 0, goto=TABLE_NACL_OUT))
        flows.append(flow(TABLE_NACL_OUT, 0, goto=TABLE_ROUTE))  # the default ACL: pass
        flows.append(flow(TABLE_NACL_IN, 0, goto=TABLE_OUTPUT))
        flows += self._route()
        flows += self._igw_out()
        flows += self._igw()
        flows += self._igw_route()
        flows.append(flow(TABLE_SG_LB, 0, goto=TABLE_LB))  # NLB groups add theirs
        flows.append(flow(TABLE_LB, 0, goto=TABLE_L3_DELIVER))  # load balancers add theirs
        flows += self._l3_deliver()
        flows += self._bridge()
        flows += self._output(switch)
        return flows

    def _classify(self, switch: str) -> list[Flow]:
        flows = [flow(TABLE_CLASSIFY, 0)]  # anything unexpected is dropped (and counted)
        for port in self.trunk_ports(switch):
            # Packets on trunks were routed where they entered: only deliver them.
            flows.append(flow(TABLE_CLASSIFY, 300, {"in_port": port}, goto=TABLE_OUTPUT))
        for h in self._ports:
            if h.switch != switch:
                continue
            for ip in (h.ip, *h.extra_ips):
                # An ARP request from the host itself (its MAC and address): to the responder.
                request = {
                    "in_port": h.port,
                    "eth_type": ETH_TYPE_ARP,
                    "eth_src": h.mac,
                    "arp_op": ARP_REQUEST,
                    "arp_sha": h.mac,
                    "arp_spa": ip,
                }
                # Gratuitous (asks for its own address): an announcement, nothing to answer.
                # A port's other (secondary) addresses are its own too; the resolver's are
                # answered as everything it asks is (behind the router).
                own = (ip,) if h.kind == "dns" else (h.ip, *h.extra_ips)
                for asked in own:
                    flows.append(flow(TABLE_CLASSIFY, 210, {**request, "arp_tpa": asked}))
                flows.append(
                    flow(
                        TABLE_CLASSIFY,
                        200,
                        request,
                        goto=TABLE_ARP,
                        metadata=(self.arp_class(h), ARP_CLASS_MASK),
                    )
                )
            for endpoint in self.plan.endpoints:
                if endpoint.node_host != h.name:
                    continue
                # Traffic the GWLB hands back for an endpoint: any addresses (it is the
                # traffic it was given), routed on with the endpoint's subnet route table.
                subnet = self._subnets[endpoint.subnet]
                tag = (subnet_tag(self._vpc_index[subnet.vpc], subnet.index), SUBNET_MASK)
                tunnel = self._tunnel_port.get(h.name)
                if tunnel is not None:
                    # The switch steers: it comes back decapsulated on the node's GENEVE
                    # port with the endpoint's id, from the endpoint (counted per appliance).
                    match = {
                        "in_port": tunnel,
                        "eth_type": ETH_TYPE_IP,
                        "tun_metadata0": endpoint_id(endpoint),
                    }
                    flows.append(
                        flow(
                            TABLE_CLASSIFY,
                            200,
                            match,
                            [
                                Resubmit(TABLE_GWLB_RX),
                                SetField("eth_src", endpoint.mac),
                                SetField("eth_dst", self.router_mac),
                            ],
                            goto=TABLE_STEER,
                            metadata=tag,
                        )
                    )
                    continue
                flows.append(
                    Flow(
                        TABLE_CLASSIFY,
                        200,
                        tuple(
                            sorted(
                                {
                                    "in_port": h.port,
                                    "eth_type": ETH_TYPE_IP,
                                    "eth_src": endpoint.mac,
                                }.items()
                            )
                        ),
                        goto=TABLE_STEER,
                        metadata=tag,
                    )
                )
            flows += self._source_check(h)
        return flows

    def _source_check(self, h: HostPlan) -> list[Flow]:
        """Source check as AWS does: a port may only send from its own MAC and addresses;
        with the check off (NAT gateway, SourceDestCheck false) from its MAC and any address,
        tagged with its subnet all the same, so what it forwards is routed by its route table."""
        sent_by = {"in_port": h.port, "eth_type": ETH_TYPE_IP, "eth_src": h.mac}
        sources: list[dict[str, Any]] = [{}]
        if h.source_dest_check:
            own = (h.ip, *h.extra_ips)
            if h.name in self._tunnel_port:
                # GENEVE of every switch-steered GWLB node leaves through one node's port.
                own += tuple(ip for ip in self._tunnel_sources if ip not in own)
            sources = [{"ipv4_src": ip} for ip in own]
        return [
            Flow(
                TABLE_CLASSIFY,
                200,
                tuple(sorted({**sent_by, **source}.items())),
                goto=egress_table(h),  # through its security groups, if any
                metadata=(self.realm_tag(h), SUBNET_MASK),
            )
            for source in sources
        ]

    def _arp_responder(self, switch: str) -> list[Flow]:
        """TABLE_ARP: for each ARP class with a host on this switch, the answer to every
        address arp_answer resolves for it (the resolver's class: every address)."""
        flows = [flow(TABLE_ARP, 0)]  # nobody answers: dropped
        members: dict[int, list[HostPlan]] = {}
        for h in self._ports:
            members.setdefault(self.arp_class(h), []).append(h)
        for cls in sorted({self.arp_class(h) for h in self._ports if h.switch == switch}):
            match = {"metadata": (cls, ARP_CLASS_MASK), "eth_type": ETH_TYPE_ARP}
            if members[cls][0].kind == "dns":
                flows.append(flow(TABLE_ARP, 10, match, arp_reply_any(self.router_mac)))
                continue
            for ip in self._arp_addresses():
                # Answers of a class are the same for each member, except that nobody
                # resolves its own address (a gratuitous request, dropped before this table).
                asker = next((m for m in members[cls] if ip not in (m.ip, *m.extra_ips)), None)
                mac = self.arp_answer(asker, ip) if asker is not None else None
                if mac is not None:
                    flows.append(flow(TABLE_ARP, 100, {**match, "arp_tpa": ip}, arp_reply(mac, ip)))
        return flows

    def _arp_addresses(self) -> list[str]:
        """Every address that lives on a lab segment, so may be asked for by ARP."""
        ips = {ip for h in self._ports for ip in (h.ip, *h.extra_ips)}
        ips |= {s.router_ip for s in self.plan.subnets}
        if self.plan.internet_gateway_ip:
            ips.add(self.plan.internet_gateway_ip)
        return sorted(ips, key=IPv4Address)

    def _route(self) -> list[Flow]:
        rm = self.router_mac
        flows = [
            flow(TABLE_ROUTE, 0, goto=TABLE_BRIDGE),
            flow(TABLE_ROUTE, 1, {"eth_dst": rm}),
        ]  # routed but no route: drop
        for subnet in self.plan.subnets:
            tag = (subnet_tag(self._vpc_index[subnet.vpc], subnet.index), SUBNET_MASK)
            for route in subnet.routes:
                # The subnet's route table, longest prefix first.
                match = {"metadata": tag, "eth_dst": rm, "eth_type": ETH_TYPE_IP}
                net = IPv4Network(route.destination)
                if net.prefixlen:
                    match["ipv4_dst"] = _net(route.destination)
                flows.append(
                    flow(
                        TABLE_ROUTE,
                        100 + net.prefixlen,
                        match,
                        *self._route_target(route),
                        **self._route_realm(route),
                    )
                )
        for dns in self.plan.hosts:
            if dns.kind != "dns":
                continue
            # The resolver is reachable from every realm, whatever the route tables say (as
            # AWS's is), and answers anyone.
            if self._separate:
                flows += self._resolver_routes(dns)
                continue
            for ip in (dns.ip, *dns.extra_ips):
                flows.append(
                    flow(
                        TABLE_ROUTE,
                        400,
                        {"eth_dst": rm, "eth_type": ETH_TYPE_IP, "ipv4_dst": ip},
                        goto=TABLE_L3_DELIVER,
                    )
                )
            flows.append(
                flow(
                    TABLE_ROUTE,
                    390,
                    {
                        "metadata": (vpc_tag(DNS_REALM), VPC_MASK),
                        "eth_dst": rm,
                        "eth_type": ETH_TYPE_IP,
                    },
                    goto=TABLE_L3_DELIVER,
                )
            )
        # Hosts on the internet reach only what the internet gateway exposes.
        flows.append(
            flow(
                TABLE_ROUTE,
                390,
                {
                    "metadata": (vpc_tag(INTERNET_REALM), VPC_MASK),
                    "eth_dst": rm,
                    "eth_type": ETH_TYPE_IP,
                },
                goto=TABLE_IGW,
            )
        )
        return flows

    def _resolver_routes(self, dns: HostPlan) -> list[Flow]:
        """The resolver's routes when VPCs share addresses: from each realm of its space to
        it; its answers into the VPC (of its space) or the internet they are addressed to."""
        rm = self.router_mac
        routed = {"eth_dst": rm, "eth_type": ETH_TYPE_IP}
        flows = [
            flow(
                TABLE_ROUTE,
                400,
                {**routed, "metadata": (realm, VPC_MASK), "ipv4_dst": ip},
                goto=TABLE_L3_DELIVER,
            )
            for realm in self._resolver_realms(dns)
            for ip in (dns.ip, *dns.extra_ips)
        ]
        own = (self.realm_tag(dns), SUBNET_MASK)
        for v in self.plan.vpcs:
            if self._space[v.name] != self.host_space(dns):
                continue
            flows.append(
                flow(
                    TABLE_ROUTE,
                    395,
                    {**routed, "metadata": own, "ipv4_dst": _net(v.cidr)},
                    goto=TABLE_L3_DELIVER,
                    metadata=(vpc_tag(v.index), VPC_MASK),
                )
            )
        if self.host_space(dns) == 0:
            flows.append(
                flow(
                    TABLE_ROUTE,
                    390,
                    {**routed, "metadata": own},
                    goto=TABLE_L3_DELIVER,
                    metadata=(vpc_tag(INTERNET_REALM), VPC_MASK),
                )
            )
        return flows

    def _route_target(self, route: RoutePlan) -> tuple[list, int | None]:
        """(actions, goto) of a route: the local network, the internet gateway, a GWLB
        endpoint (the packet, unchanged, goes to the GWLB node serving it) or a NAT gateway
        (a router hop to the gateway's host, which translates and forwards it)."""
        if route.kind == "local":
            return [], TABLE_SG_LB  # (an NLB's groups, then its listeners)
        if route.kind == "igw":
            return [], TABLE_IGW_OUT
        if route.kind == "vpce" and route.target in self._endpoints:
            endpoint = self._endpoints[route.target]
            return [
                SetField("eth_src", self.router_mac),
                SetField("eth_dst", endpoint.mac),
            ], TABLE_OUTPUT
        if route.kind == "nat" and route.target in self._nat_hosts:
            gateway = self._nat_hosts[route.target]
            return [
                SetField("eth_src", self.router_mac),
                SetField("eth_dst", gateway.mac),
                DecTtl(),
            ], TABLE_OUTPUT
        if route.kind == "pcx" and route.target in self._vpc_index:
            # A router hop into the peer VPC's realm (its VPC bits: _route_realm), then
            # delivered there as by a local route. Not transitive: the packet is routed
            # once, by its sender's route table, so it never takes a second pcx hop.
            return [], TABLE_SG_LB
        return [], None  # a route to something the lab does not have: drop

    def _route_realm(self, route: RoutePlan) -> dict[str, Any]:
        """What a route writes into the metadata: a peering route, the peer VPC's bits (the
        destination realm); the others nothing."""
        if route.kind == "pcx" and route.target in self._vpc_index:
            return {"metadata": (vpc_tag(self._vpc_index[route.target]), VPC_MASK)}
        return {}

    def _igw_out(self) -> list[Flow]:
        """Leaving through the internet gateway: its 1:1 NAT gives a private address its
        public one; a private address without one does not get out (as on AWS)."""
        flows = [flow(TABLE_IGW_OUT, 0)]
        if not self.plan.has_internet_gateway:
            return flows
        for h in self._public_ports():
            flows.append(
                flow(
                    TABLE_IGW_OUT,
                    100,
                    {"eth_type": ETH_TYPE_IP, "ipv4_src": h.ip, **self._in_realm(h)},
                    [SetField("ipv4_src", h.public_ip)],
                    goto=TABLE_IGW,
                )
            )
        return flows

    def _public_ports(self) -> list[HostPlan]:
        """Ports the internet gateway maps 1:1 to a public address: instances' interfaces,
        load balancer nodes and NAT gateways with a public (or Elastic) IP."""
        kinds = ("instance", "lb-node", "natgw")
        return [h for h in self._ports if h.kind in kinds and h.public_ip]

    def _igw(self) -> list[Flow]:
        flows = [flow(TABLE_IGW, 0)]
        if not self.plan.has_internet_gateway:
            return flows
        flows.append(
            flow(
                TABLE_IGW,
                100,
                {"eth_type": ETH_TYPE_IP, "ipv4_dst": _net(self.plan.internet_cidr)},
                goto=TABLE_L3_DELIVER,
                # VPCs share addresses: from here on the packet is in the internet's realm.
                metadata=(vpc_tag(INTERNET_REALM), VPC_MASK) if self._separate else None,
            )
        )
        for h in self._public_ports():
            flows.append(
                flow(
                    TABLE_IGW,
                    200,
                    {"eth_type": ETH_TYPE_IP, "ipv4_dst": h.public_ip},
                    [SetField("ipv4_dst", h.ip)],
                    goto=TABLE_IGW_ROUTE,
                    # ... and in the realm of the VPC that owns the public address.
                    metadata=(self._vpc_key(h), VPC_MASK) if self._separate else None,
                )
            )
        return flows

    def _igw_route(self) -> list[Flow]:
        """The gateway's ingress route table: inbound traffic for a subnet can be sent
        through a GWLB endpoint first (edge association)."""
        flows = [flow(TABLE_IGW_ROUTE, 0, goto=TABLE_SG_LB)]
        for route in self.plan.igw_routes:
            net = IPv4Network(route.destination)
            match: dict[str, Any] = {"eth_type": ETH_TYPE_IP}
            if net.prefixlen:
                match["ipv4_dst"] = _net(route.destination)
            vpc = getattr(route, "vpc", None)  # the gateway's VPC (plans that say it)
            if self._separate and vpc in self._vpc_index:
                match.update(in_vpc(self._vpc_index[vpc]))
            actions, goto = self._route_target(route)
            flows.append(flow(TABLE_IGW_ROUTE, 100 + net.prefixlen, match, actions, goto))
        return flows

    def _l3_deliver(self) -> list[Flow]:
        flows = [flow(TABLE_L3_DELIVER, 0)]
        for h in self._ports:
            realms: list[dict[str, Any]] = [self._in_realm(h)]
            if self._separate and h.kind == "dns":
                realms = [{"metadata": (r, VPC_MASK)} for r in self._resolver_realms(h)]
            for ip, realm in ((ip, r) for ip in (h.ip, *h.extra_ips) for r in realms):
                flows.append(
                    flow(
                        TABLE_L3_DELIVER,
                        100,
                        {"eth_type": ETH_TYPE_IP, "ipv4_dst": ip, **realm},
                        [
                            SetField("eth_src", self.router_mac),
                            SetField("eth_dst", h.mac),
                            DecTtl(),
                        ],
                        goto=TABLE_NACL_IN,  # the destination subnet's network ACL
                    )
                )
        return flows

    def _bridge(self) -> list[Flow]:
        flows = [flow(TABLE_BRIDGE, 0)]
        for h in self._ports:
            flows.append(
                flow(
                    TABLE_BRIDGE,
                    100,
                    {"metadata": (self.realm_tag(h), SUBNET_MASK), "eth_dst": h.mac},
                    goto=TABLE_OUTPUT,
                )
            )
        return flows

    def _output(self, switch: str) -> list[Flow]:
        flows = [flow(TABLE_OUTPUT, 0)]
        for h in self._ports:
            if h.switch == switch:
                # Its own port: through the port's security groups, if any.
                flows.append(flow(TABLE_OUTPUT, 100, {"eth_dst": h.mac}, *deliver(h)))
                continue
            port = self.port_toward(switch, h.switch)
            if port is not None:
                flows.append(flow(TABLE_OUTPUT, 100, {"eth_dst": h.mac}, [Output(port)]))
        for endpoint in self.plan.endpoints:
            node = self.plan.host(endpoint.node_host)
            if node.switch == switch and node.name in self._tunnel_port:
                # The switch steers it (testbed.controllers.gwlb); anything but IPv4 to the
                # endpoint is dropped.
                flows.append(
                    flow(
                        TABLE_OUTPUT,
                        110,
                        {"eth_type": ETH_TYPE_IP, "eth_dst": endpoint.mac},
                        [SetField("reg6", endpoint_number(self.plan, endpoint))],
                        goto=TABLE_GWLB_CT,
                    )
                )
                flows.append(flow(TABLE_OUTPUT, 100, {"eth_dst": endpoint.mac}))
                continue
            port = node.port if node.switch == switch else self.port_toward(switch, node.switch)
            if port is not None:
                flows.append(flow(TABLE_OUTPUT, 100, {"eth_dst": endpoint.mac}, [Output(port)]))
        return flows

    # ---- ARP --------------------------------------------------------------------------
    def arp_answer(self, asker: HostPlan, target_ip: str) -> str | None:
        """MAC that answers `asker`'s ARP request for `target_ip`, or None (stay silent)."""
        if asker.kind == "dns":
            return self.router_mac  # its /32 addresses: everything is behind the router
        if (self._space_key(asker), target_ip) in self._dns_ips:
            return self.router_mac  # the resolver's address in the asker's own range
        if asker.kind == "client":
            if target_ip == self.plan.internet_gateway_ip:
                return self.router_mac
            peers = [h for h in self._ports if h.kind == "client"]
        elif asker.subnet is None:
            return None  # only clients and the resolver live outside the subnets
        else:
            subnet = self._subnets[asker.subnet]
            if target_ip == subnet.router_ip:
                return self.router_mac
            if (self._vpc_key(asker), target_ip) in self._lb_node_ips and asker.kind != "lb-node":
                # A load balancer node's address belongs to the fabric: traffic to it is
                # routed, so the listeners in TABLE_LB see it wherever the client is.
                return self.router_mac if ip_in(target_ip, subnet.cidr) else None
            # Ports of the subnet, secondary addresses included (another interface of the
            # asker's own host too: it is another port, as on AWS).
            peers = [h for h in self._ports if h.subnet == asker.subnet]
        for peer in peers:
            if target_ip in (peer.ip, *peer.extra_ips) and peer.name != asker.name:
                return peer.mac
        return None


def _reply_from(mac: str) -> list[Action]:
    """The first actions of every ARP reply flow: the frame goes back to the asker (its MAC
    from the request), as an ARP reply whose sender hardware address is `mac`."""
    return [
        Move("eth_src", "eth_dst", 48),
        SetField("eth_src", mac),
        SetField("arp_op", ARP_REPLY),
        Move("arp_sha", "arp_tha", 48),
        SetField("arp_sha", mac),
    ]


def arp_reply(mac: str, ip: str) -> list[Action]:
    """Actions that turn an ARP request for `ip` into the reply "`ip` is at `mac`", sent back
    out of the port it came in on; the asker's MAC and address come from the request."""
    return [
        *_reply_from(mac),
        Move("arp_spa", "arp_tpa", 32),
        SetField("arp_spa", ip),
        Output(IN_PORT),
    ]


def arp_reply_any(mac: str) -> list[Action]:
    """Like arp_reply, for whatever address was asked: the two addresses swap places."""
    return [
        *_reply_from(mac),
        Move("arp_tpa", ARP_SCRATCH, 32),
        Move("arp_spa", "arp_tpa", 32),
        Move(ARP_SCRATCH, "arp_spa", 32),
        Output(IN_PORT),
    ]


def _net(cidr: str) -> tuple[str, str]:
    """A CIDR as the (address, netmask) pair OpenFlow matches take."""
    net = IPv4Network(cidr)
    return (str(net.network_address), str(net.netmask))


def ip_in(ip: str, cidr: str) -> bool:
    return IPv4Address(ip) in IPv4Network(cidr)
