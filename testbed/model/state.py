"""What the model builder knows so far, while it walks the resources in creation order.

Some facts (whether a subnet is public, an instance's public address) are only settled once
every route and association exists, so subnets and instances are kept as mutable drafts here
and frozen into testbed.model.types objects at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from testbed.model.addressing import AddressBook
from testbed.model.autoscaling_types import (
    Alarm,
    AutoScalingGroup,
    LaunchSpec,
    ScalingPolicy,
    ScheduledAction,
)
from testbed.model.types import (
    DnsRecord,
    ElasticIp,
    IgnoredProperty,
    InertResource,
    InternetClient,
    LabValue,
    NatGateway,
    NetworkAclEntry,
    ResourceSignalPolicy,
    RoleSpec,
    Route,
    SecurityGroupRule,
    Source,
    Vpc,
)


@dataclass
class SubnetDraft:
    logical_id: str
    vpc_id: str
    az: str
    cidr: IPv4Network
    map_public_ip: bool
    source: Source


@dataclass
class RouteTableDraft:
    logical_id: str
    vpc_id: str
    source: Source
    routes: list[Route] = field(default_factory=list)


@dataclass
class InstanceDraft:
    logical_id: str
    subnet_id: str
    private_ip: IPv4Address
    # AssociatePublicIpAddress from NetworkInterfaces; None: follow MapPublicIpOnLaunch.
    associate_public_ip: bool | None
    associate_line: int | None
    role: RoleSpec | None
    user_data: str | None
    source: Source
    # The primary interface (eth0): its secondary addresses, groups (None: none given, the
    # VPC's default group) and source/destination check.
    secondary_ips: tuple[IPv4Address, ...] = ()
    security_groups: tuple[str, ...] | None = None
    source_dest_check: bool = True
    # A standalone AWS::EC2::NetworkInterface attached as eth0 (NetworkInterfaceId, index 0).
    primary_interface: str | None = None
    # How many interfaces the instance was launched with (AWS auto-assigns a public address
    # only to an instance launched with one).
    launched_interfaces: int = 1
    image_id: str | None = None
    instance_type: str | None = None


@dataclass
class InterfaceDraft:
    """A network interface beyond an instance's inline eth0: a standalone
    AWS::EC2::NetworkInterface, or an instance's inline NetworkInterfaces entry with
    DeviceIndex >= 1 (logical id f"{instance}.eth{index}")."""

    logical_id: str
    subnet_id: str
    private_ip: IPv4Address
    secondary_ips: tuple[IPv4Address, ...]
    security_groups: tuple[str, ...] | None  # None: none given (the VPC's default group)
    source_dest_check: bool
    source: Source
    standalone: bool
    instance_id: str | None = None
    device_index: int | None = None
    attached_by: str | None = None  # logical id of the instance or attachment
    attached_line: int | None = None


@dataclass(frozen=True)
class EipUse:
    """Who associated an Elastic IP with what (for "associated twice" messages)."""

    by: str  # logical id of the associating resource
    target: str  # what it is associated with, in words ("instance Web", "node NLB-1a")
    line: int | None


@dataclass
class SecurityGroupDraft:
    """A security group while standalone SecurityGroupIngress/Egress may still add rules.

    implicit_egress: no embedded egress rule was given, so AWS's allow-all egress applies
    (and stays when standalone egress rules are added, as on EC2).
    """

    logical_id: str
    group_id: str
    vpc_id: str
    name: str
    description: str
    ingress: list[SecurityGroupRule] = field(default_factory=list)
    egress: list[SecurityGroupRule] = field(default_factory=list)
    implicit_egress: bool = True
    is_default: bool = False
    source: Source | None = None


@dataclass
class NetworkAclDraft:
    """A network ACL while its NetworkAclEntry resources are added; entry_lines remembers
    where each (egress, rule number) was taken, for duplicate errors (IPv6 entries too)."""

    logical_id: str
    vpc_id: str
    source: Source
    entries: list[NetworkAclEntry] = field(default_factory=list)
    entry_lines: dict[tuple[bool, int], tuple[str, int | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class Link:
    """One resource that connects two others (a gateway attachment, a subnet association)."""

    by: str  # the logical id of the attaching resource
    to: str
    line: int | None


@dataclass
class BuildState:
    """Everything built so far, keyed by logical id."""

    file: str
    region: str
    stack_name: str = "default"
    types: dict[str, str] = field(default_factory=dict)  # every enabled resource
    physical_ids: dict[str, str] = field(default_factory=dict)  # Ref value -> logical id
    built: list[str] = field(default_factory=list)
    vpcs: dict[str, Vpc] = field(default_factory=dict)
    subnets: dict[str, SubnetDraft] = field(default_factory=dict)
    internet_gateways: dict[str, Source] = field(default_factory=dict)
    attachments: dict[str, Link] = field(default_factory=dict)  # IGW -> VPC
    route_tables: dict[str, RouteTableDraft] = field(default_factory=dict)
    route_lines: dict[str, int | None] = field(default_factory=dict)  # route -> target line
    associations: dict[str, Link] = field(default_factory=dict)  # subnet -> route table
    # internet gateway -> its ingress route table (AWS::EC2::GatewayRouteTableAssociation)
    gateway_associations: dict[str, Link] = field(default_factory=dict)
    instances: dict[str, InstanceDraft] = field(default_factory=dict)  # in creation order
    clients: dict[str, InternetClient] = field(default_factory=dict)
    public_ips: dict[str, IPv4Address | None] = field(default_factory=dict)
    # Resources that get public addresses once routing is final (instances, internet-facing
    # load balancers), in creation order: logical id -> the function that gives them.
    # routing.assign_public_ips calls each once, in this order, so the pool is shared fairly.
    public_claims: dict[str, Callable[[BuildState, str], None]] = field(default_factory=dict)
    public_done: set[str] = field(default_factory=set)
    addresses: AddressBook = field(default_factory=AddressBook)
    ignored: list[IgnoredProperty] = field(default_factory=list)
    # Later resource families (load balancers, target groups, ...) keep their objects here:
    # extras[family][logical_id] -> object; they become StackModel.extras.
    extras: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The region of the first subnet's AZ, and that subnet: every AZ must be in it.
    az_region: tuple[str, str] | None = None
    # Security groups (the VPCs' default groups included) and network ACLs, by logical id.
    security_groups: dict[str, SecurityGroupDraft] = field(default_factory=dict)
    network_acls: dict[str, NetworkAclDraft] = field(default_factory=dict)
    nacl_associations: dict[str, Link] = field(default_factory=dict)  # subnet -> network ACL
    # Network interfaces (standalone and inline ethN), Elastic IPs, NAT gateways.
    interfaces: dict[str, InterfaceDraft] = field(default_factory=dict)
    elastic_ips: dict[str, ElasticIp] = field(default_factory=dict)
    eip_uses: dict[str, EipUse] = field(default_factory=dict)  # EIP -> its association
    # Instance (its eth0), standalone interface, NAT gateway or LB node name -> its EIP.
    eip_of: dict[str, str] = field(default_factory=dict)
    nat_gateways: dict[str, NatGateway] = field(default_factory=dict)
    # The default VPC's resources, once something needed it (created first, in this order).
    default_vpc_ids: list[str] = field(default_factory=list)
    default_vpc_for: str | None = None  # the first resource that needed it (for messages)
    # Issue 11: resources with no packets, Route53 records, signal policies, cfn-init data,
    # replaced parameter values and import values (see the StackModel fields of the same names).
    inert: dict[str, InertResource] = field(default_factory=dict)
    dns_records: list[DnsRecord] = field(default_factory=list)
    signal_policies: dict[str, ResourceSignalPolicy] = field(default_factory=dict)
    cfn_init: dict[str, Any] = field(default_factory=dict)
    lab_values: list[LabValue] = field(default_factory=list)
    # Exports of the lab's other stacks (Fn::ImportValue); empty when built alone.
    imports: dict[str, Any] = field(default_factory=dict)
    # Instances given the http-backend role by default, and hosts the lab added: id -> why.
    default_roles: dict[str, str] = field(default_factory=dict)
    lab_made: dict[str, str] = field(default_factory=dict)
    # Auto Scaling (resources/autoscaling.py, cloudwatch.py): launch templates by version
    # (a launch configuration is version 1), groups, policies, alarms, scheduled actions.
    launch_specs: dict[str, dict[int, LaunchSpec]] = field(default_factory=dict)
    auto_scaling_groups: dict[str, AutoScalingGroup] = field(default_factory=dict)
    scaling_policies: dict[str, ScalingPolicy] = field(default_factory=dict)
    alarms: dict[str, Alarm] = field(default_factory=dict)
    scheduled_actions: dict[str, ScheduledAction] = field(default_factory=dict)
    # Issue 14: "" for a lab's first stack, "S." for stack S added to a running lab: its
    # physical ids are prefix + qualifier + logical id (vpc-S.Web), so two stacks of a lab
    # never give two resources one id. Logical ids are alphanumeric: the "." cannot clash.
    qualifier: str = ""
    # Other stacks' resources mirrored into this state (issue 14, W2): key -> their stack.
    # A foreign key is "Stack.LogicalId" (testbed.model.lab_view), never a logical id of
    # this stack; foreign_names: key -> its name in the lab plan (never qualified again).
    foreign: dict[str, str] = field(default_factory=dict)
    foreign_names: dict[str, str] = field(default_factory=dict)
    # The lab's other stacks (testbed.model.lab_view.LabView; None: built alone). Typed Any:
    # lab_view builds on this module.
    lab: Any = None

    def physical(self, prefix: str, key: str) -> str:
        """The physical id of the resource `key` of this state: prefix + its name in the lab
        (the qualified logical id; a foreign resource's key as it is)."""
        return prefix + self.lab_name(key)

    def lab_name(self, key: str) -> str:
        """The name of resource `key` in the lab (its plan name): qualifier + logical id, or
        a foreign resource's name in the lab."""
        if key in self.foreign:
            return self.foreign_names.get(key, key)
        return self.qualifier + key
