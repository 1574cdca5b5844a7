"""How a stack being built sees the other stacks of its lab (issue 14).

A LabView is made from the other stacks' models: their exports (Fn::ImportValue), their
resources by physical id (id-typed parameters, literal ids, endpoint service names) and the
addresses they use. When a value names another stack's resource, `mirror` copies its facts into
the BuildState under the key "Stack.LogicalId" and marks it foreign: the model builder then
works as if the resource were its own ("the spoke's subnet is in VPC appl.VPC"), and the
stack's plan fragment skips it (it already exists in the lab). The key always holds a ".", so
it is never a logical id of the stack being built: a stack may have its own `VPC` and use the
lab's first stack's `VPC` (whose name in the lab plan is the bare "VPC"; the state records it,
BuildState.foreign_names).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address
from typing import Any

from testbed.errors import BadInput
from testbed.model.elbv2_types import EXTRAS_KEY, EndpointService
from testbed.model.state import BuildState, RouteTableDraft, SecurityGroupDraft, SubnetDraft
from testbed.model.types import (
    RouteTable,
    SecurityGroup,
    Source,
    StackModel,
    Subnet,
    Vpc,
    frozen_map,
)

VPC = "AWS::EC2::VPC"
SUBNET = "AWS::EC2::Subnet"
SECURITY_GROUP = "AWS::EC2::SecurityGroup"
ENDPOINT_SERVICE = "AWS::EC2::VPCEndpointService"
LOAD_BALANCER = "AWS::ElasticLoadBalancingV2::LoadBalancer"
ROUTE_TABLE = "AWS::EC2::RouteTable"
# StackModel.extras families this module fills:
# foreign route tables: key -> ForeignRouteTable (routes this stack adds are after `copied`);
FOREIGN_TABLES = "foreign_route_tables"
# another stack's GWLB serving an endpoint of this stack: its key -> ((az, node host), ...).
FOREIGN_GWLB_NODES = "foreign_gwlb_nodes"


@dataclass(frozen=True)
class ForeignRouteTable:
    """Another stack's route table this stack adds routes to (a peering route back)."""

    key: str
    stack: str
    copied: int  # its routes when mirrored: the ones after them are this stack's
    subnets: tuple[str, ...]  # plan names of the subnets associated with it


@dataclass(frozen=True)
class ForeignResource:
    """A resource of another stack of the lab."""

    physical_id: str
    stack: str
    logical_id: str
    type: str
    key: str  # its key in a stack that uses it: "Stack.LogicalId" (never a logical id)
    facts: Any  # the frozen model object (Vpc, Subnet, SecurityGroup, EndpointService, ...)
    qualifier: str = ""  # its stack's: qualifier + a logical id of that stack = a plan name
    plan_name: str = ""  # its name in the lab plan: "VPC" (a lab's first stack) or "b.VPC"


@dataclass(frozen=True)
class LabStackModel:
    """One stack of the lab as the view needs it."""

    name: str
    qualifier: str
    model: StackModel


@dataclass(frozen=True)
class LabView:
    """The lab's other stacks, as the stack being built may use them."""

    # physical id (and endpoint service name) -> resource
    resources: Mapping[str, ForeignResource] = field(default_factory=frozen_map)
    exports: Mapping[str, Any] = field(default_factory=frozen_map)  # export name -> value
    exporters: Mapping[str, str] = field(default_factory=frozen_map)  # export name -> stack
    # plan subnet name -> addresses taken in the lab; public / Elastic IPs taken in the lab
    used_private: Mapping[str, frozenset[IPv4Address]] = field(default_factory=frozen_map)
    used_public: frozenset[IPv4Address] = frozenset()
    used_internet: frozenset[IPv4Address] = frozenset()  # internet clients' addresses
    vpc_spaces: Mapping[str, int] = field(default_factory=frozen_map)  # plan VPC -> space
    by_key: Mapping[str, ForeignResource] = field(default_factory=frozen_map)
    stack_models: Mapping[str, StackModel] = field(default_factory=frozen_map)  # by stack name

    @classmethod
    def of(
        cls,
        stacks: Iterable[LabStackModel],
        *,
        vpc_spaces: Mapping[str, int] | None = None,
    ) -> LabView:
        """The view of the lab made of `stacks` (the stack being built excluded)."""
        resources: dict[str, ForeignResource] = {}
        by_key: dict[str, ForeignResource] = {}
        exports: dict[str, Any] = {}
        exporters: dict[str, str] = {}
        models: dict[str, StackModel] = {}
        private: dict[str, set[IPv4Address]] = {}
        public: set[IPv4Address] = set()
        internet: set[IPv4Address] = set()
        for stack in stacks:
            models[stack.name] = stack.model
            for name, value in stack.model.exports.items():
                if name in exporters:  # each stack was checked against the ones before it
                    raise ValueError(f"export {name} of {stack.name} is also {exporters[name]}'s")
                exports[name] = value
                exporters[name] = stack.name
            for res in _resources(stack):
                by_key[res.key] = res
                resources[res.physical_id] = res
                if isinstance(res.facts, EndpointService):
                    resources[res.facts.service_name] = res
            _addresses(stack, private, public)
            internet.update(c.ip for c in stack.model.internet_clients.values())
        return cls(
            resources=frozen_map(resources),
            exports=frozen_map(exports),
            exporters=frozen_map(exporters),
            used_private=frozen_map({k: frozenset(v) for k, v in private.items()}),
            used_public=frozenset(public),
            used_internet=frozenset(internet),
            vpc_spaces=frozen_map(dict(vpc_spaces or {})),
            by_key=frozen_map(by_key),
            stack_models=frozen_map(models),
        )


def _resources(stack: LabStackModel) -> Iterable[ForeignResource]:
    model, q = stack.model, stack.qualifier

    def make(prefix: str, lid: str, type_name: str, facts: Any, physical: str = "") -> Any:
        return ForeignResource(
            physical or prefix + q + lid,
            stack.name,
            lid,
            type_name,
            foreign_key(stack.name, lid),
            facts,
            q,
            q + lid,
        )

    def own(items: Mapping[str, Any]) -> Iterable[tuple[str, Any]]:
        # (a stack's mirrors of a third stack's resources are that stack's to offer)
        return ((lid, x) for lid, x in items.items() if lid not in model.foreign)

    for lid, vpc in own(model.vpcs):
        yield make("vpc-", lid, VPC, vpc)
    for lid, subnet in own(model.subnets):
        yield make("subnet-", lid, SUBNET, subnet)
    for lid, group in own(model.security_groups):
        yield make("", lid, SECURITY_GROUP, group, group.group_id)
    for lid, table in own(model.route_tables):
        yield make("rtb-", lid, ROUTE_TABLE, table)
    elbv2 = model.extras.get(EXTRAS_KEY, {})
    for lid, service in elbv2.get("endpoint_services", {}).items():
        yield make("", lid, ENDPOINT_SERVICE, service, service.physical_id)
    for lid, lb in elbv2.get("load_balancers", {}).items():
        yield make("", lid, LOAD_BALANCER, lb, getattr(lb, "arn", "") or f"lb:{q}{lid}")


def _addresses(
    stack: LabStackModel, private: dict[str, set[IPv4Address]], public: set[IPv4Address]
) -> None:
    model, q = stack.model, stack.qualifier

    def take(subnet: str, *ips: IPv4Address | None) -> None:
        name = model.plan_name(subnet) if subnet in model.foreign else q + subnet
        private.setdefault(name, set()).update(ip for ip in ips if ip is not None)

    for instance in model.instances.values():
        take(instance.subnet_id, instance.private_ip, *instance.secondary_ips)
        for eni in instance.extra_interfaces:
            take(eni.subnet_id, eni.private_ip, *eni.secondary_ips)
        if instance.public_ip is not None:
            public.add(instance.public_ip)
    for eni in model.network_interfaces.values():
        take(eni.subnet_id, eni.private_ip, *eni.secondary_ips)
    for nat in model.nat_gateways.values():
        take(nat.subnet_id, nat.private_ip)
        if nat.public_ip is not None:
            public.add(nat.public_ip)
    for eip in model.elastic_ips.values():
        public.add(eip.address)
    elbv2 = model.extras.get(EXTRAS_KEY, {})
    for lb in elbv2.get("load_balancers", {}).values():
        for node in getattr(lb, "nodes", ()):
            take(node.subnet_id, node.private_ip)
            if node.public_ip is not None:
                public.add(node.public_ip)
    for endpoint in elbv2.get("endpoints", {}).values():
        take(endpoint.subnet_id, endpoint.ip)


def foreign_key(stack: str, logical_id: str) -> str:
    """The key of stack `stack`'s resource `logical_id` in another stack's state and model."""
    return f"{stack}.{logical_id}"


def _ref(lab: LabView, res: ForeignResource, logical_id: str) -> ForeignResource:
    """The resource `logical_id` of `res`'s stack names (that stack's own, or one it
    mirrored from a third stack, whose key it already holds)."""
    owner = lab.stack_models.get(res.stack)
    if owner is not None and logical_id in owner.foreign:
        return lab.by_key[logical_id]
    return lab.by_key[foreign_key(res.stack, logical_id)]


def lab_of(state: BuildState) -> LabView | None:
    """The view of the lab the state's stack is built in (None: built alone)."""
    lab = state.lab
    return lab if isinstance(lab, LabView) else None


def mirror(state: BuildState, text: str, wanted: Iterable[str] | None = None) -> str | None:
    """The key of the other stack's resource whose physical id is `text`, mirrored into the
    state as foreign; None when no stack of the lab has it (or it is not of a `wanted` type)."""
    lab = lab_of(state)
    if lab is None or text not in lab.resources:
        return None
    res = lab.resources[text]
    if wanted is not None and res.type not in set(wanted):
        return None
    return _mirror(state, lab, res)


def _mirror(state: BuildState, lab: LabView, res: ForeignResource) -> str:
    key = res.key
    if key in state.foreign:
        return key
    if key in state.types:  # a stack named like a logical id, and a "." in another
        raise BadInput(
            f"{res.physical_id} is {res.logical_id} of stack {res.stack}, whose key here "
            f"({key}) is also a resource of this stack",
            hint=f"rename this stack's {key}",
        )
    facts = res.facts
    if isinstance(facts, Vpc):
        state.vpcs[key] = replace(facts, logical_id=key)
    elif isinstance(facts, Subnet):
        vpc_key = _mirror(state, lab, _ref(lab, res, facts.vpc_id))
        state.subnets[key] = SubnetDraft(
            key, vpc_key, facts.az, facts.cidr, facts.map_public_ip, facts.source or Source("")
        )
        state.addresses.add_subnet(key, facts.cidr)
        for ip in lab.used_private.get(res.plan_name, ()):
            state.addresses.subnets[key].owners[ip] = f"{res.stack}'s resources"
    elif isinstance(facts, SecurityGroup):
        vpc_key = _mirror(state, lab, _ref(lab, res, facts.vpc_id))
        # Its rules stay in the lab plan, where its own stack put them.
        state.security_groups[key] = SecurityGroupDraft(
            key,
            facts.group_id,
            vpc_key,
            facts.name,
            facts.description,
            implicit_egress=False,
            is_default=facts.is_default,
            source=facts.source,
        )
    elif isinstance(facts, RouteTable):
        vpc_key = _mirror(state, lab, _ref(lab, res, facts.vpc_id))
        routes = [replace(r, route_table_id=key) for r in facts.routes]
        state.route_tables[key] = RouteTableDraft(key, vpc_key, facts.source or Source(""), routes)
        owner = lab.stack_models.get(res.stack)
        subnets = (
            tuple(
                res.qualifier + lid
                for lid, s in owner.subnets.items()
                if s.route_table_id == facts.logical_id and lid not in owner.foreign
            )
            if owner is not None
            else ()
        )
        state.extras.setdefault(FOREIGN_TABLES, {})[key] = ForeignRouteTable(
            key, res.stack, len(routes), subnets
        )
    state.types[key] = res.type
    state.built.append(key)
    state.physical_ids[res.physical_id] = key
    state.foreign[key] = res.stack
    state.foreign_names[key] = res.plan_name
    return key


def foreign_service(state: BuildState, name: str) -> tuple[ForeignResource, ForeignResource] | None:
    """Another stack's endpoint service called `name` (service name or id) and its gateway
    load balancer, both marked foreign in the state; None when no stack has it."""
    lab = lab_of(state)
    if lab is None:
        return None
    res = lab.resources.get(name)
    if res is None or not isinstance(res.facts, EndpointService):
        return None
    lb = _ref(lab, res, res.facts.gwlb_id)
    for item in (res, lb):
        if item.key not in state.types:
            state.foreign[item.key] = item.stack
            state.foreign_names[item.key] = item.plan_name
    # Its nodes' hosts (plan names), for the endpoints it serves in this stack.
    state.extras.setdefault(FOREIGN_GWLB_NODES, {})[lb.key] = tuple(
        (node.az, lb.qualifier + node.name) for node in getattr(lb.facts, "nodes", ())
    )
    return res, lb


def foreign_public(state: BuildState, subnet_id: str) -> bool | None:
    """Whether a foreign subnet is public (its own stack decided); None when it is not foreign."""
    lab = lab_of(state)
    if lab is None or subnet_id not in state.foreign or subnet_id not in lab.by_key:
        return None
    facts = lab.by_key[subnet_id].facts
    return bool(facts.public) if isinstance(facts, Subnet) else None
