"""The typed, frozen model of a stack: the only thing the lab and the controller read.

Built from a template by testbed.model.build; every object is immutable so that nothing
downstream can drift from what was validated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the Auto Scaling types import RoleSpec and Source from here
    from testbed.model.autoscaling_types import (
        Alarm,
        AutoScalingGroup,
        ScalingPolicy,
        ScheduledAction,
    )

# Addresses outside the VPC. Documentation ranges (RFC 5737) so nothing in the lab can ever
# collide with a real network: clients live in TEST-NET-2, public addresses come from TEST-NET-3.
INTERNET_CIDR = IPv4Network("198.51.100.0/24")
INTERNET_GATEWAY_IP = IPv4Address("198.51.100.1")
PUBLIC_POOL = IPv4Network("203.0.113.0/24")


def frozen_map(d: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """A read-only view of a dict, so frozen dataclasses stay frozen all the way down."""
    return MappingProxyType(dict(d or {}))


@dataclass(frozen=True)
class Source:
    """Where a resource was declared: file and 1-based line."""

    file: str
    line: int | None = None


@dataclass(frozen=True)
class RoleSpec:
    """A built-in program the lab starts on a host (Metadata: {Lab: {Role: ..., RoleArgs: ...}})."""

    name: str
    args: Mapping[str, Any] = field(default_factory=frozen_map)


@dataclass(frozen=True)
class Vpc:
    logical_id: str
    cidr: IPv4Network
    source: Source | None = None
    # The region's default VPC (172.31.0.0/16), made by the lab for a template that names none.
    is_default: bool = False


@dataclass(frozen=True)
class Subnet:
    """One L2 segment in one AZ. `public` is derived: its route table sends 0.0.0.0/0 to an IGW."""

    logical_id: str
    vpc_id: str
    az: str
    cidr: IPv4Network
    map_public_ip: bool
    route_table_id: str | None
    public: bool
    source: Source | None = None

    @property
    def router_ip(self) -> IPv4Address:
        """AWS reserves the first host address of a subnet for the VPC router."""
        return self.cidr.network_address + 1


@dataclass(frozen=True)
class InternetGateway:
    logical_id: str
    vpc_id: str | None  # None until a VPCGatewayAttachment attaches it
    source: Source | None = None


@dataclass(frozen=True)
class Route:
    """One route. target_kind: 'local' | 'igw' | 'vpce' | 'nat' (target: a NatGateway)."""

    logical_id: str
    route_table_id: str
    destination: IPv4Network
    target_kind: str
    target_id: str | None
    source: Source | None = None


@dataclass(frozen=True)
class RouteTable:
    logical_id: str
    vpc_id: str
    routes: tuple[Route, ...] = ()
    source: Source | None = None

    def default_route(self) -> Route | None:
        """The 0.0.0.0/0 route, if any."""
        for route in self.routes:
            if route.destination.prefixlen == 0:
                return route
        return None


@dataclass(frozen=True)
class NetworkInterface:
    """An elastic network interface (ENI): a standalone AWS::EC2::NetworkInterface or one of an
    instance's NetworkInterfaces beyond its primary one (DeviceIndex >= 1).

    logical_id: the resource's logical id, or f"{instance}.eth{device_index}" when inline.
    security_groups: logical ids of SecurityGroups (never empty once built: an interface
    without groups gets its VPC's default group).
    """

    logical_id: str
    subnet_id: str
    private_ip: IPv4Address
    secondary_ips: tuple[IPv4Address, ...] = ()
    security_groups: tuple[str, ...] = ()
    source_dest_check: bool = True
    public_ip: IPv4Address | None = None  # an EIP associated with this interface
    instance_id: str | None = None  # attached to (NetworkInterfaceAttachment or inline)
    device_index: int | None = None
    source: Source | None = None


@dataclass(frozen=True)
class Instance:
    """An EC2 instance: one lab host in one subnet.

    subnet_id / private_ip / public_ip / security_groups / secondary_ips / source_dest_check
    describe the primary interface (eth0); extra_interfaces are eth1, eth2, ... in DeviceIndex
    order. security_groups are logical ids of SecurityGroups (the VPC's default group when the
    template gives none).
    """

    logical_id: str
    subnet_id: str
    az: str
    private_ip: IPv4Address
    public_ip: IPv4Address | None
    role: RoleSpec | None
    user_data: str | None
    source: Source | None = None
    security_groups: tuple[str, ...] = ()
    secondary_ips: tuple[IPv4Address, ...] = ()
    source_dest_check: bool = True
    extra_interfaces: tuple[NetworkInterface, ...] = ()
    # ImageId and InstanceType as given (no meaning for the packets; the instance metadata
    # service tells them); None: not given.
    image_id: str | None = None
    instance_type: str | None = None


ALL_PROTOCOLS = -1  # IpProtocol "-1": every protocol, every port


@dataclass(frozen=True)
class SecurityGroupRule:
    """One rule of a security group, normalised.

    protocol: IANA number (6 tcp, 17 udp, 1 icmp, ...) or ALL_PROTOCOLS.
    from_port / to_port: tcp/udp: the port range (inclusive); icmp: type / code (-1 = all);
    None for protocols without ports (and for -1, whose ports AWS ignores).
    Exactly one peer: cidr, or group (logical id of a SecurityGroup: its members' addresses).
    emulated=False: an IPv6 or prefix-list rule, accepted and reported, matching nothing here.
    """

    protocol: int
    from_port: int | None
    to_port: int | None
    cidr: IPv4Network | None = None
    group: str | None = None
    description: str = ""
    emulated: bool = True
    defined_by: str | None = None  # logical id of a standalone SecurityGroupIngress/Egress
    source: Source | None = None


@dataclass(frozen=True)
class SecurityGroup:
    """An AWS::EC2::SecurityGroup with every rule that applies to it (embedded and standalone).

    egress is the allow-all rule when the template gives no embedded egress rule (AWS adds it).
    is_default: the VPC's default group (GetAtt VPC.DefaultSecurityGroup, and the group of
    interfaces given none): ingress from its own members, all egress.
    """

    logical_id: str
    group_id: str  # the physical id, sg-...
    vpc_id: str
    name: str
    description: str
    ingress: tuple[SecurityGroupRule, ...] = ()
    egress: tuple[SecurityGroupRule, ...] = ()
    is_default: bool = False
    source: Source | None = None


@dataclass(frozen=True)
class NetworkAclEntry:
    """One numbered entry of a network ACL. protocol: IANA number or ALL_PROTOCOLS.

    ports: (from, to) for tcp/udp (None = all ports); icmp: (type, code), -1 = all.
    """

    logical_id: str
    rule_number: int
    egress: bool
    protocol: int
    cidr: IPv4Network
    allow: bool
    ports: tuple[int, int] | None = None
    icmp: tuple[int, int] | None = None
    source: Source | None = None


@dataclass(frozen=True)
class NetworkAcl:
    """An AWS::EC2::NetworkAcl with its entries (both directions, sorted by rule number) and
    the subnets associated with it. Subnets with no association use the VPC's default NACL,
    which allows everything (the lab programs nothing for them)."""

    logical_id: str
    vpc_id: str
    entries: tuple[NetworkAclEntry, ...] = ()
    subnets: tuple[str, ...] = ()
    source: Source | None = None


@dataclass(frozen=True)
class ElasticIp:
    """An AWS::EC2::EIP: an address of the lab's public range, and what it is associated with
    (at most one of instance, interface, nat_gateway, load balancer node)."""

    logical_id: str
    address: IPv4Address
    allocation_id: str  # eipalloc-...
    instance_id: str | None = None
    interface_id: str | None = None
    nat_gateway_id: str | None = None
    lb_node: str | None = None  # LbNode.name of an NLB SubnetMapping
    source: Source | None = None


@dataclass(frozen=True)
class NatGateway:
    """An AWS::EC2::NatGateway: a lab host in its subnet (zonal, as on AWS).

    public: ConnectivityType public (source translated to public_ip, its EIP, via the internet
    gateway) or private (source translated to its private address only).
    """

    logical_id: str
    subnet_id: str
    az: str
    private_ip: IPv4Address
    public_ip: IPv4Address | None
    public: bool = True
    allocation_id: str | None = None
    source: Source | None = None


@dataclass(frozen=True)
class InternetClient:
    """A host on the internet segment, outside every VPC (type Lab::Internet::Client)."""

    logical_id: str
    ip: IPv4Address
    role: RoleSpec | None
    user_data: str | None
    source: Source | None = None


@dataclass(frozen=True)
class SnmpV3User:
    """An SNMPv3 user with authentication and privacy (authPriv): read-only, or the writer."""

    user: str
    auth_password: str
    priv_password: str
    auth_protocol: str = "SHA"
    priv_protocol: str = "AES"


@dataclass(frozen=True)
class SnmpOptions:
    """The SNMP agent (net-snmp snmpd) of hosts, from Metadata.Lab.Snmp.

    Template-wide in the template's Metadata.Lab.Snmp; a host's own Metadata.Lab.Snmp
    overrides it (testbed.model.snmp.host_snmp gives the result for one host).
    """

    enabled: bool = True
    # Deliberately not "public": the well-known default is what scanners try first.
    community: str = "elblab-ro"
    v3: SnmpV3User | None = None
    # The SNMPv3 user (authPriv) that may SET sysContact/sysName/sysLocation/ifAdminStatus.
    write: SnmpV3User | None = None


@dataclass(frozen=True)
class LabOptions:
    """Lab-wide knobs from the template's Metadata.Lab (overridable from the CLI).

    inter_az_delay_ms / link_bandwidth_mbps: applied with netem / HTB where the kernel has them.
    datapath: 'auto' | 'kernel' | 'user'.
    snmp: the SNMP agents of hosts (per-host overrides are in StackModel.extras["snmp"]).
    """

    inter_az_delay_ms: float = 0.0
    link_bandwidth_mbps: float | None = None
    datapath: str = "auto"
    snmp: SnmpOptions = field(default_factory=SnmpOptions)
    # Metadata.Lab.TimeScale: 10 runs Auto Scaling, alarms and health checks ten times faster
    # (every period, cooldown, warm-up, grace period, hook timeout, health-check interval and
    # deregistration delay divided by it). 1: AWS's time.
    time_scale: float = 1.0


@dataclass(frozen=True)
class IgnoredProperty:
    """An AWS-only property accepted but without meaning in the lab (e.g. InstanceType)."""

    logical_id: str
    property: str


@dataclass(frozen=True)
class InertResource:
    """A resource with no packets (IAM, logs, SNS, S3, ...) or a custom resource whose
    attributes the template gives: created with a "not emulated" event, resolvable.

    kind: "inert" (an AWS type the lab accepts without meaning) or "custom" (Custom::* or
    AWS::CloudFormation::CustomResource with Metadata.Lab.Attributes).
    ref: the Ref value; attributes: every GetAtt value, AWS-shaped (ARNs with the region and
    the lab account id)."""

    logical_id: str
    type: str
    ref: str
    attributes: Mapping[str, Any]
    kind: str = "inert"
    note: str = "not emulated"
    source: Source | None = None
    # The resource's resolved properties, plain data (a WaitCondition's Handle, Count, ...).
    properties: Mapping[str, Any] = field(default_factory=frozen_map)


@dataclass(frozen=True)
class DnsRecord:
    """A Route53 record the lab's resolver serves (AWS::Route53::RecordSet / RecordSetGroup).

    name: fully qualified, lower case, no trailing dot. type: "A" (values are IPv4 addresses)
    or "CNAME" (one value: the target name; an alias record to a load balancer or another
    record is a CNAME to the target's name here)."""

    logical_id: str
    name: str
    type: str
    values: tuple[str, ...]
    source: Source | None = None


@dataclass(frozen=True)
class ResourceSignalPolicy:
    """CreationPolicy.ResourceSignal of a resource: it is complete after `count` success
    signals (cfn-signal) within `timeout_s`; a failure signal or the timeout fails it."""

    count: int
    timeout_s: float
    # AutoScalingCreationPolicy.MinSuccessfulInstancesPercent (Auto Scaling groups; later).
    min_successful_percent: int = 100
    # A WaitCondition's Handle (the WaitConditionHandle's Ref, a URL): signals sent to that
    # URL count for it; None: signals name the resource (cfn-signal --resource).
    handle: str | None = None


@dataclass(frozen=True)
class LabValue:
    """A parameter value the lab replaced or could not give a meaning (reported at `up`):
    a key pair name, an AMI id, an SSM parameter path."""

    parameter: str
    value: str  # what the template or --param gave
    lab_value: str  # what Ref gives in the lab
    note: str  # why, in words


@dataclass(frozen=True)
class StackModel:
    """Everything the lab needs, validated. Mappings are keyed by logical id."""

    template_path: str
    description: str
    parameters: Mapping[str, Any]
    vpcs: Mapping[str, Vpc]
    subnets: Mapping[str, Subnet]
    internet_gateways: Mapping[str, InternetGateway]
    route_tables: Mapping[str, RouteTable]
    instances: Mapping[str, Instance]
    internet_clients: Mapping[str, InternetClient]
    outputs: Mapping[str, Any]
    resource_types: Mapping[str, str]
    # Logical ids in the order the stack creates them (dependencies first).
    creation_order: tuple[str, ...]
    ignored: tuple[IgnoredProperty, ...] = ()
    lab: LabOptions = field(default_factory=LabOptions)
    # Later issues add load balancers, target groups, listeners, endpoints here.
    extras: Mapping[str, Mapping[str, Any]] = field(default_factory=frozen_map)
    security_groups: Mapping[str, SecurityGroup] = field(default_factory=frozen_map)
    network_acls: Mapping[str, NetworkAcl] = field(default_factory=frozen_map)
    elastic_ips: Mapping[str, ElasticIp] = field(default_factory=frozen_map)
    nat_gateways: Mapping[str, NatGateway] = field(default_factory=frozen_map)
    # Standalone AWS::EC2::NetworkInterface resources (attached ones also appear in their
    # instance's extra_interfaces, or are its primary interface with DeviceIndex 0).
    network_interfaces: Mapping[str, NetworkInterface] = field(default_factory=frozen_map)
    # Resources with no packets, and custom resources with lab-given attributes.
    inert: Mapping[str, InertResource] = field(default_factory=frozen_map)
    # Route53 records the lab's resolver serves, in declaration order.
    dns_records: tuple[DnsRecord, ...] = ()
    # Resources that wait for cfn-signal (CreationPolicy.ResourceSignal), by logical id.
    signal_policies: Mapping[str, ResourceSignalPolicy] = field(default_factory=frozen_map)
    # Metadata AWS::CloudFormation::Init of a resource (plain data), for cfn-init.
    cfn_init: Mapping[str, Any] = field(default_factory=frozen_map)
    # Parameter values the lab replaced (key pairs, AMI ids, SSM paths).
    lab_values: tuple[LabValue, ...] = ()
    # Outputs' Export names -> their values (Fn::ImportValue of another stack reads them).
    exports: Mapping[str, Any] = field(default_factory=frozen_map)
    # Instances given the http-backend role because a load balancer targets them and the
    # template gives no lab role: logical id -> why, in words (shown in their events).
    default_roles: Mapping[str, str] = field(default_factory=frozen_map)
    # Hosts the lab added (the default internet client), logical id -> why.
    lab_made: Mapping[str, str] = field(default_factory=frozen_map)
    # The template's transforms, in the order applied (AWS::Serverless-2016-10-31, ...).
    transforms: tuple[str, ...] = ()
    # Auto Scaling (testbed.model.autoscaling_types), by logical id.
    auto_scaling_groups: Mapping[str, AutoScalingGroup] = field(default_factory=frozen_map)
    scaling_policies: Mapping[str, ScalingPolicy] = field(default_factory=frozen_map)
    alarms: Mapping[str, Alarm] = field(default_factory=frozen_map)
    scheduled_actions: Mapping[str, ScheduledAction] = field(default_factory=frozen_map)
    # Issue 14: the export names Fn::ImportValue read; other stacks' resources this stack
    # uses (key "Stack.LogicalId" -> their stack; also in vpcs, subnets, ...) and their names
    # in the lab plan (key -> plan name); the stack's qualifier ("" for a lab's first stack,
    # "S." for stack S added to it).
    imported: frozenset[str] = frozenset()
    foreign: Mapping[str, str] = field(default_factory=frozen_map)
    foreign_names: Mapping[str, str] = field(default_factory=frozen_map)
    qualifier: str = ""

    def plan_name(self, key: str) -> str:
        """The name of resource `key` in the lab plan: qualifier + logical id, or a foreign
        resource's name there."""
        if key in self.foreign:
            return self.foreign_names.get(key, key)
        return self.qualifier + key

    @property
    def azs(self) -> tuple[str, ...]:
        """AZ names in sorted order (us-east-1a, us-east-1b, ...); other stacks' subnets
        are not counted."""
        return tuple(sorted({s.az for lid, s in self.subnets.items() if lid not in self.foreign}))

    def subnet_of(self, instance_id: str) -> Subnet:
        return self.subnets[self.instances[instance_id].subnet_id]

    def host_ids(self) -> tuple[str, ...]:
        """Every lab host: instances then internet clients, in creation order."""
        order = {lid: i for i, lid in enumerate(self.creation_order)}
        ids = list(self.instances) + list(self.internet_clients)
        return tuple(sorted(ids, key=lambda lid: order.get(lid, len(order))))
