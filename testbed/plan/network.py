"""The network plan: which switches, ports, links and addresses a stack model becomes.

Pure and deterministic (no root, no Mininet): the topology builds exactly this plan and the
controller programs exactly this plan, so both agree on every port number and MAC address.

Shape: one OVS bridge per AZ (all subnets of that AZ are segments on it), a core bridge that
joins the AZs (the VPC fabric and router), and an internet bridge for hosts outside the VPC,
joined to the core through the internet gateway. Switch-to-switch links are OVS patch ports
unless the lab asks for delay/bandwidth on them, which needs a real (veth) link for tc.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from testbed import naming
from testbed.errors import BadInput
from testbed.model.elbv2_types import elbv2_sections
from testbed.model.lab_view import FOREIGN_GWLB_NODES
from testbed.model.metadata import UNFILTERED_KEY
from testbed.model.resources.elbv2.lambda_group import (
    LAMBDA_PORT,
)
from testbed.model.resources.elbv2.lambda_group import (
    MULTI_VALUE as LAMBDA_MULTI_VALUE,
)
from testbed.model.resources.lambda_function import functions
from testbed.model.resources.peering import EXTRAS_KEY as PEERING_KEY
from testbed.model.snmp import host_snmp
from testbed.model.types import (
    INTERNET_CIDR,
    INTERNET_GATEWAY_IP,
    NetworkInterface,
    StackModel,
)
from testbed.plan.balancers import LoadBalancerPlan, build_lb_plans, drop_listener_defaults
from testbed.plan.certificates import CertificatePlan, build_certificates
from testbed.plan.zone_layout import check_load_balancers, sg_zone

ROUTER_MAC = "02:00:00:00:00:fe"
CORE_DPID = 1
INTERNET_DPID = 2
AZ_DPID_BASE = 0x10
UPLINK_PORT = 1  # on AZ and internet bridges, port 1 leads to the core
FIRST_HOST_PORT = 10


def host_mac(ip: IPv4Address | str, space: int = 0) -> str:
    """Locally administered MAC derived from the IPv4 address and its VPC's address space
    (VpcPlan.space): 02:ss: and the four address bytes, unique within a lab."""
    if not 0 <= space <= 0xFF:
        raise BadInput(f"address space {space} is beyond the 256 a lab can tell apart")
    b = IPv4Address(str(ip)).packed
    return f"02:{space:02x}:" + ":".join(f"{x:02x}" for x in b)


def subnet_host(
    lab: str,
    name: str,
    kind: str,
    subnet: SubnetPlan,
    ip: str,
    port: int,
    veth: str,
    space: int = 0,
    **more: Any,
) -> HostPlan:
    """A host whose eth0 is in `subnet`: on its AZ switch at `port`, its router the gateway,
    the MAC derived from `ip` in address space `space` (its VPC's); `more`: the other
    HostPlan fields (role, groups, ...)."""
    return HostPlan(
        name=name,
        netns=naming.netns_name(lab, name),
        kind=kind,
        ip=ip,
        prefixlen=IPv4Network(subnet.cidr).prefixlen,
        gateway=subnet.router_ip,
        mac=host_mac(ip, space),
        switch=subnet.switch,
        port=port,
        veth=veth,
        az=subnet.az,
        subnet=subnet.name,
        vpc=subnet.vpc,
        **more,
    )


@dataclass(frozen=True)
class SwitchPlan:
    name: str
    dpid: int
    role: str  # 'core' | 'az' | 'internet'
    az: str | None = None


@dataclass(frozen=True)
class InterfacePlan:
    """A host's interface beyond eth0 (an instance's second ENI): its own port, address,
    subnet and security groups; the fields mean what HostPlan's eth0 fields mean."""

    name: str  # 'eth1', 'eth2', ...
    ip: str
    prefixlen: int
    gateway: str
    mac: str
    switch: str
    port: int
    veth: str
    az: str
    subnet: str
    vpc: str
    public_ip: str | None = None
    extra_ips: tuple[str, ...] = ()
    groups: tuple[str, ...] | None = None
    source_dest_check: bool = True
    sg_zone: int | None = None


@dataclass(frozen=True)
class HostPlan:
    name: str
    netns: str
    kind: str  # 'instance' | 'client' | 'lb-node' | 'dns' | 'natgw' | 'lambda'
    ip: str
    prefixlen: int
    gateway: str
    mac: str
    switch: str
    port: int
    veth: str
    az: str | None = None
    subnet: str | None = None
    vpc: str | None = None
    public_ip: str | None = None
    role: str | None = None
    role_args: dict[str, Any] = field(default_factory=dict)
    user_data: str | None = None
    extra_ips: tuple[str, ...] = ()  # more /32 addresses on eth0 (the lab's DNS resolver)
    # The host's SNMP agent (testbed.lab.services.snmpd), None without one: community,
    # v3 (user, passwords, protocols) and sources (the CIDRs allowed to ask it).
    snmp: dict[str, Any] | None = None
    # Security groups enforced on eth0's switch port (SecurityGroupPlan names); None: no
    # security group filtering at all (internet clients, the resolver, NAT gateways, an NLB
    # created without groups). An empty tuple would drop everything.
    groups: tuple[str, ...] | None = None
    # False: the port may send packets whose source is not its own (NAT gateway, an instance
    # with SourceDestCheck false) and receive packets for addresses routed to it.
    source_dest_check: bool = True
    sg_zone: int | None = None  # conntrack zone of eth0's security-group tracking
    interfaces: tuple[InterfacePlan, ...] = ()  # eth1, eth2, ...
    # Set only on the per-interface views of NetworkPlan.attachments(): the interface's name
    # and the host whose namespace holds it.
    interface: str = "eth0"
    owner: str | None = None
    # Why the lab added this host (the default internet client), or gave it its role (a load
    # balancer's target without a lab role gets http-backend); None: the template said so.
    lab_made: str | None = None
    default_role: str | None = None
    # An instance an Auto Scaling group launched while the lab runs: the group's logical id
    # (testbed.plan.instances adds and removes such hosts; the template has none of them).
    asg: str | None = None
    instance_id: str | None = None  # its EC2-shaped id (i-...); None: "i-" + name


@dataclass(frozen=True)
class LinkPlan:
    kind: str  # 'patch' | 'veth'
    a: str
    a_intf: str
    a_port: int
    b: str
    b_intf: str
    b_port: int
    delay_ms: float = 0.0
    bandwidth_mbps: float | None = None


@dataclass(frozen=True)
class RoutePlan:
    """One route: destination CIDR -> 'local' | 'igw' | 'vpce' (target: endpoint name) |
    'nat' (target: the NAT gateway's host name)."""

    destination: str
    kind: str
    target: str | None = None


@dataclass(frozen=True)
class SubnetPlan:
    name: str
    vpc: str
    az: str
    cidr: str
    router_ip: str
    public: bool
    switch: str
    index: int  # small integer the controller writes into packet metadata
    routes: tuple[RoutePlan, ...] = ()  # its route table (the VPC's main one: local only)
    nacl: str | None = None  # its NaclPlan's name; None: the default NACL (allows all)


@dataclass(frozen=True)
class SgRulePlan:
    """One security group rule: protocol (IANA number, -1 all); from/to port (tcp/udp range,
    icmp type/code with -1 = all; None = all); exactly one peer: cidr, or group (a
    SecurityGroupPlan name: the addresses of every attachment carrying it)."""

    protocol: int
    from_port: int | None = None
    to_port: int | None = None
    cidr: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class SecurityGroupPlan:
    name: str  # logical id
    group_id: str  # sg-...
    vpc: str
    ingress: tuple[SgRulePlan, ...] = ()
    egress: tuple[SgRulePlan, ...] = ()


@dataclass(frozen=True)
class NaclEntryPlan:
    """One NACL entry; ports: (from, to) for tcp/udp, None = all; icmp: (type, code), -1 = all."""

    rule_number: int
    egress: bool
    protocol: int
    cidr: str
    allow: bool
    ports: tuple[int, int] | None = None
    icmp: tuple[int, int] | None = None


@dataclass(frozen=True)
class NaclPlan:
    """A network ACL: entries in rule-number order (both directions); the implicit final deny
    is not listed. Applies at the edge of each of its subnets, for routed traffic only."""

    name: str
    vpc: str
    subnets: tuple[str, ...] = ()
    entries: tuple[NaclEntryPlan, ...] = ()


@dataclass(frozen=True)
class EndpointPlan:
    """A GWLB endpoint: routes send traffic to it; the GWLB node in its AZ carries it."""

    name: str
    gwlb: str
    vpc: str
    subnet: str
    az: str
    ip: str
    mac: str  # frames steered to the endpoint carry it; the node sends them back from it
    node_host: str


@dataclass(frozen=True)
class DnsRecordPlan:
    """A Route53 record the lab's resolver serves: name (fqdn, lower case), type "A" (values:
    addresses) or "CNAME" (one value: the target name); record: the logical id defining it."""

    name: str
    type: str
    values: tuple[str, ...]
    record: str


@dataclass(frozen=True)
class VpcPlan:
    name: str
    cidr: str
    index: int
    # Its address space (testbed.plan.merge): VPCs of one space never overlap; the MACs of
    # its hosts are host_mac(ip, space). A lab of one stack has only space 0.
    space: int = 0


@dataclass(frozen=True)
class NetworkPlan:
    lab: str
    prefix: str
    router_mac: str
    switches: tuple[SwitchPlan, ...]
    hosts: tuple[HostPlan, ...]
    links: tuple[LinkPlan, ...]
    subnets: tuple[SubnetPlan, ...]
    vpcs: tuple[VpcPlan, ...]
    internet_cidr: str = str(INTERNET_CIDR)
    internet_gateway_ip: str = str(INTERNET_GATEWAY_IP)
    has_internet_gateway: bool = False
    host_bandwidth_mbps: float | None = None  # HTB on every host link, when set
    load_balancers: tuple[LoadBalancerPlan, ...] = ()
    zone_base: int = 0  # first conntrack zone of the lab's block
    endpoints: tuple[EndpointPlan, ...] = ()
    igw_routes: tuple[RoutePlan, ...] = ()  # the internet gateway's ingress route table
    security_groups: tuple[SecurityGroupPlan, ...] = ()
    network_acls: tuple[NaclPlan, ...] = ()
    dns_records: tuple[DnsRecordPlan, ...] = ()  # Route53 records, in declaration order
    # Who carries the GWLBs' traffic to the appliances: "node" (the Python GWLB node on its
    # host) or "switch" (OVS: GENEVE ports, conntrack; testbed.plan.gwlb_datapath), and why
    # "node" when the switch was wanted. Left out of plan.json at their defaults.
    gwlb_datapath: str = "node"
    gwlb_datapath_reason: str = ""
    # The certificates the lab's CA issues (testbed.plan.certificates); left out of plan.json
    # when there are none.
    certificates: tuple[CertificatePlan, ...] = ()

    def switch(self, name: str) -> SwitchPlan:
        return next(s for s in self.switches if s.name == name)

    def host(self, name: str) -> HostPlan:
        return next(h for h in self.hosts if h.name == name)

    def attachments(self) -> tuple[HostPlan, ...]:
        """Every switch port that holds a host interface: each host (eth0), then a view per
        extra interface named "HOST/ethN" (interface=ethN, owner=HOST) with that interface's
        port, addresses, subnet and groups: what the controller programs per port."""
        views: list[HostPlan] = list(self.hosts)
        for h in self.hosts:
            for i in h.interfaces:
                views.append(
                    replace(
                        h,
                        name=f"{h.name}/{i.name}",
                        interface=i.name,
                        owner=h.name,
                        interfaces=(),
                        **{f.name: getattr(i, f.name) for f in fields(i) if f.name != "name"},
                    )
                )
        return tuple(views)

    def security_group(self, name: str) -> SecurityGroupPlan:
        return next(g for g in self.security_groups if g.name == name)

    def subnet(self, name: str) -> SubnetPlan:
        return next(s for s in self.subnets if s.name == name)

    def to_json(self) -> str:
        d = asdict(self)
        # Space 0 is left out, so a lab of one stack writes the plan.json it always wrote.
        d["vpcs"] = [
            {k: v for k, v in vpc.items() if not (k == "space" and v == 0)} for vpc in d["vpcs"]
        ]
        # Likewise the GWLB datapath at its defaults: a lab whose GWLB runs in its node (or
        # that has none) writes the plan.json it always wrote.
        for key, default in (("gwlb_datapath", "node"), ("gwlb_datapath_reason", "")):
            if d[key] == default:
                del d[key]
        if not d["certificates"]:
            del d["certificates"]
        for lb in d["load_balancers"]:
            for node in lb["nodes"]:
                if node["tunnel_port"] is None:
                    del node["tunnel_port"]
            for listener in lb["listeners"]:
                drop_listener_defaults(listener)
        return json.dumps(d, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> NetworkPlan:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetworkPlan:
        kinds = {"switches": SwitchPlan, "links": LinkPlan, "vpcs": VpcPlan}
        args: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in d:
                continue  # a field with a default, written by an older version
            value = d[f.name]
            if f.name in kinds:
                value = tuple(kinds[f.name](**item) for item in value)
            elif f.name == "hosts":
                value = tuple(_host_from_dict(h) for h in value)
            elif f.name == "load_balancers":
                value = tuple(LoadBalancerPlan.from_dict(lb) for lb in value)
            elif f.name == "endpoints":
                value = tuple(EndpointPlan(**e) for e in value)
            elif f.name == "igw_routes":
                value = tuple(RoutePlan(**r) for r in value)
            elif f.name == "subnets":
                value = tuple(
                    SubnetPlan(
                        **{**x, "routes": tuple(RoutePlan(**r) for r in x.get("routes", ()))}
                    )
                    for x in value
                )
            elif f.name == "security_groups":
                value = tuple(_group_from_dict(g) for g in value)
            elif f.name == "network_acls":
                value = tuple(_nacl_from_dict(n) for n in value)
            elif f.name == "dns_records":
                value = tuple(DnsRecordPlan(**{**r, "values": tuple(r["values"])}) for r in value)
            elif f.name == "certificates":
                value = tuple(CertificatePlan.from_dict(c) for c in value)
            args[f.name] = value
        return cls(**args)


def _tuple_or_none(value: Any) -> tuple[Any, ...] | None:
    return None if value is None else tuple(value)


def _interface_from_dict(d: dict[str, Any]) -> InterfacePlan:
    return InterfacePlan(
        **{
            **d,
            "extra_ips": tuple(d.get("extra_ips", ())),
            "groups": _tuple_or_none(d.get("groups")),
        }
    )


def _host_from_dict(d: dict[str, Any]) -> HostPlan:
    return HostPlan(
        **{
            **d,
            "extra_ips": tuple(d.get("extra_ips", ())),
            "groups": _tuple_or_none(d.get("groups")),
            "interfaces": tuple(_interface_from_dict(i) for i in d.get("interfaces", ())),
        }
    )


def _group_from_dict(d: dict[str, Any]) -> SecurityGroupPlan:
    return SecurityGroupPlan(
        **{
            **d,
            "ingress": tuple(SgRulePlan(**r) for r in d.get("ingress", ())),
            "egress": tuple(SgRulePlan(**r) for r in d.get("egress", ())),
        }
    )


def _nacl_from_dict(d: dict[str, Any]) -> NaclPlan:
    entries = tuple(
        NaclEntryPlan(
            **{**e, "ports": _tuple_or_none(e.get("ports")), "icmp": _tuple_or_none(e.get("icmp"))}
        )
        for e in d.get("entries", ())
    )
    return NaclPlan(**{**d, "subnets": tuple(d.get("subnets", ())), "entries": entries})


def build_plan(
    model: StackModel, lab: str, zone_base: int = 0, *, qualifier: str = ""
) -> NetworkPlan:
    """Lay out the stack model as switches, ports and links for lab `lab`.

    zone_base: first conntrack zone of the lab's block (testbed.plan.zone_layout: load
    balancers' zones, then one per port with security groups). qualifier: "" for a lab's
    first stack, "S." for stack S added to it: the names of its resources in the plan
    (hosts and their netns, subnets, VPCs, groups, ...) become "S.LogicalId"
    (testbed.plan.names)."""
    naming.validate_lab_name(lab)
    _check_vpcs_do_not_overlap(model)
    # Another stack's VPCs, subnets, groups and route tables this stack uses (a stack added
    # to a lab, testbed.model.lab_view) are the lab plan's already: not laid out again. A
    # foreign subnet's AZ gets a bridge here only for this stack's hosts in it (the merge
    # puts them on the lab's bridge of that AZ).
    foreign = model.foreign
    azs = (*model.azs, *_foreign_azs(model))
    core = SwitchPlan(naming.bridge_name(lab, "core"), CORE_DPID, "core")
    switches = [core]
    links: list[LinkPlan] = []
    az_switch: dict[str, SwitchPlan] = {}
    core_port = 1
    delay = model.lab.inter_az_delay_ms
    bandwidth = model.lab.link_bandwidth_mbps
    # Inter-AZ effects need a real link to hang a qdisc on; otherwise patch ports are cheaper.
    uplink_kind = "veth" if (delay or bandwidth) else "patch"
    for i, az in enumerate(azs, start=1):
        sw = SwitchPlan(naming.bridge_name(lab, f"az{i}"), AZ_DPID_BASE + i, "az", az)
        az_switch[az] = sw
        switches.append(sw)
        links.append(
            _trunk(
                lab, len(links), sw, UPLINK_PORT, core, core_port, uplink_kind, delay / 2, bandwidth
            )
        )
        core_port += 1
    has_igw = any(g.vpc_id for g in model.internet_gateways.values())
    internet = None
    if has_igw or model.internet_clients:
        internet = SwitchPlan(naming.bridge_name(lab, "inet"), INTERNET_DPID, "internet")
        switches.append(internet)
        links.append(
            _trunk(lab, len(links), internet, UPLINK_PORT, core, core_port, "patch", 0.0, None)
        )
        core_port += 1

    vpcs = tuple(
        VpcPlan(v.logical_id, str(v.cidr), i)
        for i, v in enumerate(
            sorted(
                (v for v in model.vpcs.values() if v.logical_id not in foreign),
                key=lambda v: v.logical_id,
            ),
            start=1,
        )
    )
    # The plan's data types are defined in this module; the conversion of groups and ACLs
    # lives next to it and imports them, hence the import here.
    from testbed.plan.security import nacl_plans, security_group_plans, subnet_nacls

    nacls = subnet_nacls(model)
    all_subnets = tuple(
        SubnetPlan(
            s.logical_id,
            s.vpc_id,
            s.az,
            str(s.cidr),
            str(s.router_ip),
            s.public,
            az_switch[s.az].name,
            i,
            _routes_of(model, s),
            nacls.get(s.logical_id),
        )
        for i, s in enumerate(_subnets_own_first(model), start=1)
    )
    # Foreign subnets are looked up (their hosts' AZ, gateway) but are not this plan's.
    subnet_plans = {s.name: s for s in all_subnets}
    subnets = tuple(s for s in all_subnets if s.name not in foreign)
    ports = _PortAllocator(lab)
    hosts: list[HostPlan] = []
    host_az: str | None  # clients are in no AZ, subnet or VPC
    subnet_id: str | None
    vpc_id: str | None
    for host_id in model.host_ids():
        groups: tuple[str, ...] | None = None
        extra_ips: tuple[str, ...] = ()
        source_dest_check = True
        interfaces: tuple[InterfacePlan, ...] = ()
        if host_id in model.instances:
            inst = model.instances[host_id]
            subnet = model.subnets[inst.subnet_id]
            sw = az_switch[subnet.az]
            ip, prefixlen, gateway = inst.private_ip, subnet.cidr.prefixlen, subnet.router_ip
            kind, host_az, subnet_id = "instance", subnet.az, subnet.logical_id
            vpc_id = subnet.vpc_id
            public_ip = str(inst.public_ip) if inst.public_ip else None
            role, user_data = inst.role, inst.user_data
            # A built model always gives an instance groups (its VPC's default group when the
            # template names none); none at all means a hand-made model: no filtering.
            groups = inst.security_groups or None
            if model.extras.get(UNFILTERED_KEY, {}).get(host_id):
                groups = None  # Metadata.Lab.Unfiltered: a benchmark baseline
            extra_ips = tuple(str(a) for a in inst.secondary_ips)
            source_dest_check = inst.source_dest_check
        else:
            client = model.internet_clients[host_id]
            assert internet is not None  # internet clients make the internet segment
            sw = internet
            ip, prefixlen, gateway = client.ip, INTERNET_CIDR.prefixlen, INTERNET_GATEWAY_IP
            kind, host_az, subnet_id, vpc_id, public_ip = "client", None, None, None, None
            role, user_data = client.role, client.user_data
        port, veth = ports.take(sw, host_id)
        if host_id in model.instances:
            interfaces = tuple(
                _interface_plan(model, i, position, az_switch, ports, host_id)
                for position, i in enumerate(model.instances[host_id].extra_interfaces, start=1)
            )
        hosts.append(
            HostPlan(
                name=host_id,
                netns=naming.netns_name(lab, host_id),
                ip=str(ip),
                prefixlen=prefixlen,
                gateway=str(gateway),
                mac=host_mac(ip),
                switch=sw.name,
                port=port,
                veth=veth,
                role=role.name if role else None,
                role_args=dict(role.args) if role else {},
                user_data=user_data,
                snmp=snmp_plan(model, host_id),
                kind=kind,
                az=host_az,
                subnet=subnet_id,
                vpc=vpc_id,
                public_ip=public_ip,
                extra_ips=extra_ips,
                groups=groups,
                source_dest_check=source_dest_check,
                interfaces=interfaces,
                lab_made=model.lab_made.get(host_id),
                default_role=model.default_roles.get(host_id),
            )
        )
    check_load_balancers(len(elbv2_sections(model)["load_balancers"]))
    lbs = build_lb_plans(model, zone_base)
    lb_models = elbv2_sections(model)["load_balancers"]
    for lb in lbs:
        # ALB, CLB and NLB nodes carry their load balancer's groups (the model gives an ALB
        # or a CLB its VPC's default group when none is named; an NLB without groups stays
        # open).
        # Gateway load balancer nodes are never filtered: the appliances behind them are.
        lb_groups = lb_models[lb.name].security_groups if lb.type != "gateway" else None
        for node in lb.nodes:
            # Each node is a host of its own in its subnet: it owns the node's address
            # (health checks come from it) while the fabric steers listener traffic.
            node_subnet = subnet_plans[node.subnet]
            port, veth = ports.take(az_switch[node_subnet.az], node.host)
            hosts.append(
                subnet_host(
                    lab,
                    node.host,
                    "lb-node",
                    node_subnet,
                    node.ip,
                    port,
                    veth,
                    public_ip=node.public_ip,
                    role=f"{lb.type}-node",
                    role_args={"lb": lb.name, "az": node.az, **_node_ports(lb)},
                    snmp=snmp_plan(model, node.host) if node.host in model.instances else None,
                    groups=tuple(lb_groups) if lb_groups is not None else None,
                    # Transparent proxying sends from the clients' addresses: AWS's NLB is
                    # not an ENI of the user's with a source check either.
                    source_dest_check=not lb.transparent_groups,
                )
            )
    hosts += _nat_gateway_hosts(model, lab, subnet_plans, az_switch, ports)
    hosts += _function_hosts(model, lab, subnet_plans, az_switch, ports)
    endpoints = _endpoints(model, lbs)
    if any(lid not in foreign for lid in model.vpcs) or model.internet_clients:
        veth = ports.veth(DNS_HOST)
        hosts.append(
            _dns_host(lab, model, core, core_port, veth, has_internet=internet is not None)
        )
        core_port += 1
    plan = NetworkPlan(
        lab=lab,
        prefix=naming.prefix(lab),
        router_mac=ROUTER_MAC,
        switches=tuple(switches),
        hosts=_with_sg_zones(hosts, zone_base),
        links=tuple(links),
        subnets=subnets,
        vpcs=vpcs,
        has_internet_gateway=has_igw,
        host_bandwidth_mbps=bandwidth,
        load_balancers=lbs,
        zone_base=zone_base,
        endpoints=endpoints,
        igw_routes=_igw_routes(model),
        security_groups=tuple(g for g in security_group_plans(model) if g.name not in foreign),
        network_acls=nacl_plans(model),
        dns_records=tuple(
            DnsRecordPlan(r.name, r.type, tuple(r.values), r.logical_id) for r in model.dns_records
        ),
        certificates=build_certificates(model),
    )
    # Names are qualified after the layout, so a lab's first stack (qualifier "") gets exactly
    # the plan it always had; testbed.plan.names imports this module's types.
    from testbed.plan.names import qualify_plan

    return qualify_plan(plan, qualifier, foreign={k: model.plan_name(k) for k in foreign})


def _foreign_azs(model: StackModel) -> tuple[str, ...]:
    """The AZs of the foreign subnets not among the stack's own (model.azs)."""
    own = set(model.azs)
    return tuple(sorted({s.az for lid, s in model.subnets.items() if lid in model.foreign} - own))


def _subnets_own_first(model: StackModel) -> list[Any]:
    """The stack's subnets by logical id (the plan's order and indexes), then the foreign
    ones it uses (looked up only)."""
    ordered = sorted(model.subnets.values(), key=lambda s: s.logical_id)
    return [s for s in ordered if s.logical_id not in model.foreign] + [
        s for s in ordered if s.logical_id in model.foreign
    ]


class _PortAllocator:
    """Switch ports and host-link (veth) names, handed out in plan order."""

    def __init__(self, lab: str) -> None:
        self.lab = lab
        self.next_port: dict[str, int] = {}
        self.links = 0

    def veth(self, owner: str) -> str:
        """The switch-side name of the next host link (owner: for the error message)."""
        self.links += 1
        if self.links > naming.MAX_LINKS:
            raise BadInput(
                f"a lab holds at most {naming.MAX_LINKS} host interfaces", logical_id=owner
            )
        return naming.veth_name(self.lab, self.links)

    def take(self, sw: SwitchPlan, owner: str) -> tuple[int, str]:
        """The next free host port on `sw` and the name of the link's switch side."""
        port = self.next_port.get(sw.name, FIRST_HOST_PORT)
        self.next_port[sw.name] = port + 1
        return port, self.veth(owner)


def _interface_plan(
    model: StackModel,
    eni: NetworkInterface,
    position: int,
    az_switch: dict[str, SwitchPlan],
    ports: _PortAllocator,
    owner: str,
) -> InterfacePlan:
    """An instance's extra interface: its own port on the switch of its subnet's AZ."""
    subnet = model.subnets[eni.subnet_id]
    sw = az_switch[subnet.az]
    port, veth = ports.take(sw, owner)
    # ethN follows the device index, as on an EC2 instance (DeviceIndex 1 is eth1).
    index = eni.device_index if eni.device_index else position
    return InterfacePlan(
        name=f"eth{index}",
        ip=str(eni.private_ip),
        prefixlen=subnet.cidr.prefixlen,
        gateway=str(subnet.router_ip),
        mac=host_mac(eni.private_ip),
        switch=sw.name,
        port=port,
        veth=veth,
        az=subnet.az,
        subnet=subnet.logical_id,
        vpc=subnet.vpc_id,
        public_ip=str(eni.public_ip) if eni.public_ip else None,
        extra_ips=tuple(str(a) for a in eni.secondary_ips),
        groups=eni.security_groups or None,
        source_dest_check=eni.source_dest_check,
    )


def _nat_gateway_hosts(
    model: StackModel,
    lab: str,
    subnets: dict[str, SubnetPlan],
    az_switch: dict[str, SwitchPlan],
    ports: _PortAllocator,
) -> list[HostPlan]:
    """A NAT gateway is a host of its own in its subnet (zonal, as on AWS); it forwards other
    hosts' packets (no source/destination check) and has neither groups, role nor agent."""
    order = {lid: i for i, lid in enumerate(model.creation_order)}
    out = []
    for ng in sorted(
        model.nat_gateways.values(), key=lambda n: (order.get(n.logical_id, 0), n.logical_id)
    ):
        subnet = subnets[ng.subnet_id]
        port, veth = ports.take(az_switch[subnet.az], ng.logical_id)
        out.append(
            subnet_host(
                lab,
                ng.logical_id,
                "natgw",
                subnet,
                str(ng.private_ip),
                port,
                veth,
                # A private NAT gateway translates to its private address only.
                public_ip=str(ng.public_ip) if ng.public and ng.public_ip else None,
                role=None,
                source_dest_check=False,
            )
        )
    return out


def _function_hosts(
    model: StackModel,
    lab: str,
    subnet_plans: dict[str, SubnetPlan],
    az_switch: dict[str, SwitchPlan],
    ports: _PortAllocator,
) -> list[HostPlan]:
    """A host for each Lambda function an ALB invokes (testbed.model.lambda_targets placed
    it): kind "lambda", the lambda-runtime role with the function (code, handler, timeout,
    environment) and the target groups that invoke it (ARN, multi-value headers) as its
    RoleArgs. No security groups: on AWS the load balancer invokes the function directly."""
    hosts = []
    elb = elbv2_sections(model)
    for fn in sorted(functions(model).values(), key=lambda f: f.logical_id):
        if fn.subnet_id is None or fn.private_ip is None:
            continue
        subnet = subnet_plans[fn.subnet_id]
        port, veth = ports.take(az_switch[subnet.az], fn.logical_id)
        groups = {
            tg_id: {
                "arn": elb["target_groups"][tg_id].arn,
                "multi_value": elb["target_groups"][tg_id].attributes.get(LAMBDA_MULTI_VALUE)
                == "true",
            }
            for tg_id in fn.target_groups
        }
        hosts.append(
            subnet_host(
                lab,
                fn.logical_id,
                "lambda",
                subnet,
                str(fn.private_ip),
                port,
                veth,
                role="lambda-runtime",
                role_args={
                    "function": fn.name,
                    "arn": fn.arn,
                    "runtime": fn.runtime,
                    "handler": fn.handler,
                    "code": fn.code,
                    "timeout": fn.timeout_s,
                    "memory": fn.memory_mb,
                    "environment": dict(fn.environment),
                    "port": LAMBDA_PORT,
                    "groups": groups,
                },
            )
        )
    return hosts


def _with_sg_zones(hosts: list[HostPlan], zone_base: int) -> tuple[HostPlan, ...]:
    """Give every port with security groups its own conntrack zone, in attachments() order
    (each host's eth0, then the extra interfaces host by host)."""
    k = 0
    eth0: list[HostPlan] = []
    for h in hosts:
        if h.groups is not None:
            h = replace(h, sg_zone=sg_zone(zone_base, k))
            k += 1
        eth0.append(h)
    out = []
    for h in eth0:
        interfaces = []
        for i in h.interfaces:
            if i.groups is not None:
                i = replace(i, sg_zone=sg_zone(zone_base, k))
                k += 1
            interfaces.append(i)
        out.append(replace(h, interfaces=tuple(interfaces)))
    return tuple(out)


def _route_plan(route: Any, model: StackModel | None = None) -> RoutePlan:
    # vpce: the endpoint's name; nat: the NAT gateway's logical id, which is its host's name;
    # pcx: the VPC at the other end of the peering connection from the route's table.
    if route.target_kind == "pcx" and model is not None:
        connection = model.extras.get(PEERING_KEY, {}).get(route.target_id)
        table = model.route_tables[route.route_table_id]
        peer = connection.other(table.vpc_id) if connection is not None else None
        return RoutePlan(str(route.destination), "pcx", peer)
    return RoutePlan(
        str(route.destination),
        route.target_kind,
        route.target_id if route.target_kind in ("vpce", "nat") else None,
    )


def _routes_of(model: StackModel, subnet: Any) -> tuple[RoutePlan, ...]:
    """A subnet's routes: its associated route table, else the VPC's main one (local only)."""
    table = model.route_tables.get(subnet.route_table_id) if subnet.route_table_id else None
    if table is None:
        return (RoutePlan(str(model.vpcs[subnet.vpc_id].cidr), "local"),)
    return tuple(_route_plan(r, model) for r in table.routes)


def _igw_routes(model: StackModel) -> tuple[RoutePlan, ...]:
    """The internet gateway's ingress route table (edge association), without its local
    route: traffic to an address it does not name goes straight to that address."""
    tables = elbv2_sections(model)["gateway_route_tables"]
    routes = []
    for _igw, table_id in sorted(tables.items()):
        routes += [
            _route_plan(r) for r in model.route_tables[table_id].routes if r.target_kind != "local"
        ]
    return tuple(routes)


def _endpoints(model: StackModel, lbs: tuple[LoadBalancerPlan, ...]) -> tuple[EndpointPlan, ...]:
    """GWLB endpoints, each served by its GWLB's node in the same AZ (else the first); the
    GWLB may be another stack's (AWS's distributed design: the endpoint in this stack's VPC,
    the GWLB and its appliances in the other's)."""
    foreign_nodes = model.extras.get(FOREIGN_GWLB_NODES, {})
    out = []
    for ep in sorted(elbv2_sections(model)["endpoints"].values(), key=lambda e: e.logical_id):
        lb = next((x for x in lbs if x.name == ep.gwlb_id), None)
        if lb is not None:
            node_host = (lb.node_in(ep.az) or lb.nodes[0]).host
        else:
            nodes = dict(foreign_nodes[ep.gwlb_id])
            node_host = nodes.get(ep.az) or next(iter(nodes.values()))
        out.append(
            EndpointPlan(
                ep.logical_id,
                ep.gwlb_id,
                ep.vpc_id,
                ep.subnet_id,
                ep.az,
                str(ep.ip),
                host_mac(ep.ip),
                node_host,
            )
        )
    return tuple(out)


def _node_ports(lb: LoadBalancerPlan) -> dict[str, Any]:
    """ALB and CLB nodes listen themselves (HAProxy): their listener ports tell when they are
    ready. An NLB's nodes listen only on its node listeners' ports (TLS, TCP to a proxy
    protocol v2 group: LoadBalancerPlan.node_listeners; the switches carry the others)."""
    if lb.proxied:
        return {"ports": sorted({lis.port for lis in lb.listeners if lis.port})}
    if lb.node_listeners:
        return {"ports": sorted({lis.port for lis in lb.node_listeners if lis.port})}
    return {}


DNS_HOST = "LabDNS"


def dns_addresses(model: StackModel, has_internet: bool) -> list[str]:
    """Where the lab's resolver answers: VPC base + 2 of each VPC (AWS's AmazonProvidedDNS)
    and, when there is an internet segment, its .2."""
    ips = [
        str(v.cidr.network_address + 2)
        for v in sorted(model.vpcs.values(), key=lambda v: v.logical_id)
        if v.logical_id not in model.foreign  # another stack's: the lab's resolver has it
    ]
    if has_internet:
        ips.append(str(INTERNET_CIDR.network_address + 2))
    return ips


def _dns_host(
    lab: str, model: StackModel, core: SwitchPlan, port: int, veth: str, has_internet: bool
) -> HostPlan:
    """The lab's DNS resolver: one host on the core switch with an address in every realm.

    It sits outside every subnet (/32 addresses, everything reached through the router), like
    the AWS resolver that every subnet reaches at its VPC's base + 2."""
    ips = dns_addresses(model, has_internet)
    return HostPlan(
        name=DNS_HOST,
        netns=naming.netns_name(lab, DNS_HOST),
        kind="dns",
        ip=ips[0],
        prefixlen=32,
        gateway="",
        mac=host_mac(ips[0]),
        switch=core.name,
        port=port,
        veth=veth,
        extra_ips=tuple(ips[1:]),
        role=None,
    )


def snmp_plan(model: StackModel, host_id: str, vpc_id: str | None = None) -> dict[str, Any] | None:
    """The SNMP agent of host `host_id` (its per-host overrides are under that logical id:
    an instance's, or an Auto Scaling group's for the instances it launches) in VPC `vpc_id`
    (None: the instance's own VPC, or the internet segment for anything else)."""
    options = host_snmp(model, host_id)
    if options is None:
        return None
    if vpc_id is None and host_id in model.instances:
        vpc_id = model.subnet_of(host_id).vpc_id
    # Managers poll from the host's own realm (testbed.snmp.vantage): its VPC, or the
    # internet segment for clients. Nobody else may ask, as a security group would have it.
    sources = [str(model.vpcs[vpc_id].cidr) if vpc_id is not None else str(INTERNET_CIDR)]
    out = {
        "community": options.community,
        "v3": asdict(options.v3) if options.v3 else None,
        "sources": sources,
    }
    if options.write:  # only then: plans of templates without a writer stay as they were
        out["write"] = asdict(options.write)
    return out


def _trunk(
    lab: str,
    index: int,
    a: SwitchPlan,
    a_port: int,
    b: SwitchPlan,
    b_port: int,
    kind: str,
    delay_ms: float,
    bandwidth: float | None,
) -> LinkPlan:
    # Each direction gets half the one-way delay so a round trip between two AZs adds
    # 2 x delay: AZ1 -> core -> AZ2 crosses two uplinks.
    return LinkPlan(
        kind,
        a.name,
        naming.patch_name(lab, 2 * index + 1),
        a_port,
        b.name,
        naming.patch_name(lab, 2 * index + 2),
        b_port,
        delay_ms,
        bandwidth,
    )


def _check_vpcs_do_not_overlap(model: StackModel) -> None:
    # Another stack's VPC may overlap this stack's: the lab puts them in address spaces.
    vpcs = sorted(
        (v for v in model.vpcs.values() if v.logical_id not in model.foreign),
        key=lambda v: v.logical_id,
    )
    for i, a in enumerate(vpcs):
        for b in vpcs[i + 1 :]:
            if a.cidr.overlaps(b.cidr):
                raise BadInput(
                    f"VPC CIDR {a.cidr} overlaps {b.logical_id}'s {b.cidr}; the lab routes all "
                    "VPCs of a stack on one fabric, so their ranges must be distinct",
                    logical_id=a.logical_id,
                )
        if a.cidr.overlaps(INTERNET_CIDR) or a.cidr.overlaps(IPv4Network("203.0.113.0/24")):
            raise BadInput(
                f"VPC CIDR {a.cidr} overlaps the lab's internet ranges "
                f"{INTERNET_CIDR} / 203.0.113.0/24",
                logical_id=a.logical_id,
            )
