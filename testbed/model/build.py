"""Template -> StackModel: check, order, resolve and build every resource, then freeze.

Phases, each reporting all the problems it can find:
1. sections, parameters (and Rules), mappings, conditions, and the shape of resources and
   outputs;
2. references: every Ref/GetAtt/Sub/DependsOn names something that exists and is created;
3. the creation order (dependencies first, ties by declaration order), or the loop that
   prevents one;
4. resources resolved and built in that order (so GetAtt of an instance's address works in
   later resources), skipping those whose dependencies failed or that would only repeat an
   earlier problem; then every problem of phases 1 to 4 is reported together;
5. routing facts (public subnets, public addresses), outputs, lab options; then freezing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from testbed.errors import BadInput, TemplateErrors
from testbed.model import (
    certificate_names,
    lab_defaults,
    lambda_targets,
    parameter_values,
    routing,
    signals,
)
from testbed.model.addressing import AddressBook, KeptAddresses
from testbed.model.declarations import (
    Declaration,
    ResourceDeclaration,
    read_outputs,
    read_resources,
)
from testbed.model.graph import (
    Edges,
    Names,
    check_lab_metadata,
    cycle_error,
    dependencies,
    unknown_attribute,
)
from testbed.model.lab_view import LabView
from testbed.model.metadata import (
    UNFILTERED_KEY,
    lab_options,
    plain,
    resource_role,
    resource_snmp,
    resource_unfiltered,
)
from testbed.model.resources import REGISTRY, addresses, default_vpc, nat_gateways
from testbed.model.resources.base import ResourceContext, check_properties
from testbed.model.resources.elbv2.alb_targets import alb_target_errors
from testbed.model.resources.network_acls import frozen_acls
from testbed.model.resources.network_interfaces import instance_fields, standalone_interfaces
from testbed.model.resources.security_groups import frozen_groups
from testbed.model.snmp import EXTRAS_KEY as SNMP_EXTRAS
from testbed.model.state import BuildState
from testbed.model.types import (
    IgnoredProperty,
    Instance,
    InternetGateway,
    LabOptions,
    LabValue,
    RouteTable,
    Source,
    StackModel,
    Subnet,
    frozen_map,
)
from testbed.template.conditions import ConditionTable
from testbed.template.intrinsics import (
    NO_VALUE,
    POISONED,
    REGION_NAME,
    FollowUp,
    Scope,
    as_text,
    pseudo_parameters,
    resolve,
)
from testbed.template.nodes import LDict, describe, did_you_mean
from testbed.template.parameters import resolve_parameters
from testbed.template.references import (
    creation_order,
    depends_on,
    find_cycle,
    find_references,
)
from testbed.template.rules import check_rules
from testbed.template.sections import check_mappings, check_sections

STACK_NAME = re.compile(r"^[A-Za-z][-A-Za-z0-9]{0,127}$")


class _Problems:
    """Collected errors; raise_if_any() reports them all at once, each with the file."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[BadInput] = []

    def add(self, err: BadInput) -> None:
        for one in err.errors if isinstance(err, TemplateErrors) else [err]:
            if isinstance(one, FollowUp):
                continue  # echoes an error already reported (a bad parameter value)
            located = one.located(file=self.file)
            key = (located.message, located.line, located.logical_id)
            if all((e.message, e.line, e.logical_id) != key for e in self.errors):
                self.errors.append(located)

    def extend(self, errors: Iterable[BadInput]) -> None:
        for err in errors:
            self.add(err)

    def raise_if_any(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise TemplateErrors(list(self.errors))


class _Resources:
    """The ResourceView intrinsics use: Ref values and attributes of built resources."""

    def __init__(self, state: BuildState) -> None:
        self.state = state

    def ref(self, logical_id: str) -> str:
        resource_type = REGISTRY[self.state.types[logical_id]]  # built, so registered
        if resource_type.ref_value is not None:
            return resource_type.ref_value(self.state, logical_id)
        return resource_type.physical_id(logical_id, self.state.qualifier)

    def get_att(self, logical_id: str, attribute: str) -> Any:
        resource_type = REGISTRY[self.state.types[logical_id]]  # built, so registered
        if attribute not in resource_type.attributes:
            raise unknown_attribute(
                logical_id, resource_type.name, attribute, resource_type.attributes
            )
        if logical_id not in self.state.built:
            raise BadInput(f"{logical_id} is not created yet")
        return resource_type.attributes[attribute](self.state, logical_id)


def _check_inputs(stack_name: str, region: str) -> None:
    if not isinstance(stack_name, str) or not STACK_NAME.match(stack_name):
        raise BadInput(
            f"bad stack name {stack_name!r}: use letters, digits and hyphens, "
            "starting with a letter (at most 128)"
        )
    if not isinstance(region, str) or not REGION_NAME.match(region):
        raise BadInput(f"bad region {region!r}: use a region name such as us-east-1")


def _build_resource(decl: ResourceDeclaration, state: BuildState, scope: Scope) -> None:
    lid, raw, resource_type = decl.logical_id, decl.raw, decl.resource_type
    props_line = raw.line_of("Properties")
    resolved = resolve(raw.get("Properties"), scope, owner=lid, line=props_line)
    if resolved is None or resolved is NO_VALUE:
        resolved = LDict(line=decl.line)
    if not isinstance(resolved, LDict):
        raise BadInput(
            f"Properties must be a mapping, not {describe(resolved)}",
            line=props_line,
            logical_id=lid,
        )
    role = None
    metadata: Any = None
    if "Metadata" in raw:
        metadata = resolve(raw["Metadata"], scope, owner=lid, line=raw.line_of("Metadata"))
        role = resource_role(
            None if metadata is NO_VALUE else metadata,
            lid,
            accepts_role=resource_type.accepts_role,
            type_name=resource_type.name,
            line=raw.line_of("Metadata"),
            ignored=state.ignored,
        )
        snmp = resource_snmp(
            None if metadata is NO_VALUE else metadata, lid, raw.line_of("Metadata")
        )
        if snmp is not None:
            state.extras.setdefault(SNMP_EXTRAS, {})[lid] = snmp
        if resource_unfiltered(
            None if metadata is NO_VALUE else metadata, lid, raw.line_of("Metadata")
        ):
            state.extras.setdefault(UNFILTERED_KEY, {})[lid] = True
    if "Metadata" in raw:
        signals.read_cfn_init(raw["Metadata"], lid, state, scope)
    for key in raw:
        if key == "CreationPolicy":
            signals.read_creation_policy(raw, lid, state, scope)
        elif key in ("DeletionPolicy", "UpdateReplacePolicy", "UpdatePolicy"):
            state.ignored.append(IgnoredProperty(lid, key))
    if resource_type.name == signals.WAIT_CONDITION:  # signals to its Handle (issue 11)
        signals.read_wait_condition(resolved, lid, state)
    values, lines = check_properties(
        lid,
        resolved,
        resource_type.properties,
        resource_type.ignored,
        resource_type.unsupported,
        state,
        line=props_line if props_line else decl.line,
    )
    source = Source(state.file, decl.line)
    metadata = None if metadata is NO_VALUE else metadata
    resource_type.build(
        ResourceContext(lid, resource_type, source, values, lines, state, role, metadata)
    )
    if resource_type.ref_value is not None:
        state.physical_ids[resource_type.ref_value(state, lid)] = lid
    state.built.append(lid)


def _outputs(outputs: list[Declaration], scope: Scope, problems: _Problems) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for decl in outputs:
        if not decl.enabled:
            continue
        try:
            value = resolve(
                decl.raw["Value"], scope, owner=decl.logical_id, line=decl.raw.line_of("Value")
            )
            if value is NO_VALUE or value is None:
                raise BadInput(
                    "the output's Value is empty",
                    line=decl.raw.line_of("Value"),
                    logical_id=decl.logical_id,
                )
            if "Description" in decl.raw:
                description = resolve(
                    decl.raw["Description"],
                    scope,
                    owner=decl.logical_id,
                    line=decl.raw.line_of("Description"),
                )
                if not isinstance(description, str):
                    raise BadInput(
                        "Description must be text",
                        logical_id=decl.logical_id,
                        line=decl.raw.line_of("Description"),
                    )
            result[decl.logical_id] = plain(value)
        except BadInput as err:
            problems.add(err)
    return result


def _exports(
    outputs: list[Declaration],
    scope: Scope,
    problems: _Problems,
    exporters: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Export names of enabled outputs -> their values (names resolved, unique in the lab;
    exporters: the lab's other exports -> the stack that has each)."""
    exporters = exporters or {}
    result: dict[str, Any] = {}
    first: dict[str, str] = {}  # export name -> the output that exports it
    for decl in outputs:
        if not decl.enabled or "Export" not in decl.raw:
            continue
        try:
            name = _export_name(decl, scope)
            if name in first:
                raise BadInput(
                    f"export name {name!r} is already used by output {first[name]}",
                    line=decl.raw.line_of("Export"),
                    logical_id=decl.logical_id,
                    hint="export names must be unique in the stack",
                )
            if name in scope.imports:
                exporter = exporters.get(name)
                raise BadInput(
                    f"Export with name {name} is already exported by stack "
                    f"{exporter or 'another stack of this lab'}",
                    line=decl.raw.line_of("Export"),
                    logical_id=decl.logical_id,
                    hint="export names must be unique in the lab, as in an AWS region",
                )
            value = resolve(
                decl.raw["Value"], scope, owner=decl.logical_id, line=decl.raw.line_of("Value")
            )
        except BadInput as err:
            problems.add(err)
            continue
        first[name] = decl.logical_id
        result[name] = plain(value)
    return result


def _export_name(decl: Declaration, scope: Scope) -> str:
    export = decl.raw["Export"]
    line = decl.raw.line_of("Export")
    if not isinstance(export, LDict) or "Name" not in export:
        raise BadInput(
            "Export must be a mapping {Name: ...}", line=line, logical_id=decl.logical_id
        )
    for key in export:
        if key != "Name":
            raise BadInput(
                f"unknown Export key {key!r}",
                line=export.line_of(key),
                logical_id=decl.logical_id,
                hint=did_you_mean(key, ["Name"]) or "an Export has only a Name",
            )
    name = as_text(resolve(export["Name"], scope, owner=decl.logical_id, line=line))
    if not name:
        raise BadInput(
            "the export's Name must be non-empty text", line=line, logical_id=decl.logical_id
        )
    return name


def template_transforms(doc: LDict) -> tuple[str, ...]:
    """The template's Transform section as a tuple of names (a string or a list)."""
    value = doc.get("Transform")
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def _freeze(
    state: BuildState,
    doc: LDict,
    order: list[str],
    params: dict[str, Any],
    outputs: dict[str, Any],
    lab: LabOptions,
    exports: dict[str, Any],
) -> StackModel:
    subnets = {}
    for lid, draft in state.subnets.items():
        link = state.associations.get(lid)
        subnets[lid] = Subnet(
            lid,
            draft.vpc_id,
            draft.az,
            draft.cidr,
            draft.map_public_ip,
            link.to if link else None,
            routing.is_public(state, lid),
            draft.source,
        )
    gateways = {}
    for lid, source in state.internet_gateways.items():
        link = state.attachments.get(lid)
        gateways[lid] = InternetGateway(lid, link.to if link else None, source)
    tables = {
        lid: RouteTable(lid, t.vpc_id, tuple(t.routes), t.source)
        for lid, t in state.route_tables.items()
    }
    instances = {}
    for lid, instance in state.instances.items():
        instances[lid] = Instance(
            lid,
            instance.subnet_id,
            state.subnets[instance.subnet_id].az,
            instance.private_ip,
            state.public_ips.get(lid),
            instance.role,
            instance.user_data,
            instance.source,
            **instance_fields(state, lid),
            image_id=instance.image_id,
            instance_type=instance.instance_type,
        )
    description = doc.get("Description", "")
    return StackModel(
        template_path=state.file,
        description=description.strip() if isinstance(description, str) else "",
        parameters=frozen_map(
            {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
        ),
        vpcs=frozen_map(state.vpcs),
        subnets=frozen_map(subnets),
        internet_gateways=frozen_map(gateways),
        route_tables=frozen_map(tables),
        instances=frozen_map(instances),
        internet_clients=frozen_map(state.clients),
        outputs=frozen_map(outputs),
        resource_types=frozen_map(state.types),  # lab-made hosts included
        # The default VPC, when the stack uses it, is created first; hosts the lab adds last.
        creation_order=(*state.default_vpc_ids, *order, *state.lab_made),
        ignored=tuple(state.ignored),
        lab=lab,
        extras=frozen_map({k: _frozen_family(v) for k, v in state.extras.items()}),
        security_groups=frozen_map(frozen_groups(state)),
        network_acls=frozen_map(frozen_acls(state)),
        elastic_ips=frozen_map(state.elastic_ips),
        nat_gateways=frozen_map(state.nat_gateways),
        network_interfaces=frozen_map(standalone_interfaces(state)),
        inert=frozen_map(state.inert),
        dns_records=tuple(state.dns_records),
        signal_policies=frozen_map(state.signal_policies),
        cfn_init=frozen_map(state.cfn_init),
        lab_values=tuple(state.lab_values),
        exports=frozen_map(exports),
        default_roles=frozen_map(state.default_roles),
        lab_made=frozen_map(state.lab_made),
        transforms=template_transforms(doc),
        auto_scaling_groups=frozen_map(state.auto_scaling_groups),
        scaling_policies=frozen_map(state.scaling_policies),
        alarms=frozen_map(state.alarms),
        scheduled_actions=frozen_map(state.scheduled_actions),
    )


def _frozen_family(family: dict[str, Any]) -> Any:
    # A family may keep sections (elbv2: load_balancers, listeners, ...): freeze those too.
    return frozen_map({k: frozen_map(v) if isinstance(v, dict) else v for k, v in family.items()})


@dataclass
class _Template:
    """A template after phases 1 and 2: checked declarations and the names they use."""

    doc: LDict
    params: dict[str, Any]
    scope: Scope
    conditions: ConditionTable
    resources: list[ResourceDeclaration]
    outputs: list[Declaration]
    names: Names
    edges: Edges
    # Resources not to build: they have errors already, or use a resource that is malformed
    # or a condition that reads a bad parameter (building them would only echo those errors).
    skip: set[str]
    lab_values: list[LabValue]


def _read(
    doc: LDict,
    params: dict[str, Any] | None,
    stack_name: str,
    region: str,
    problems: _Problems,
    lab: LabView | None = None,
    qualifier: str = "",
) -> _Template:
    """Phases 1 and 2: everything that can be checked before resolving any resource.

    Problems are collected, not raised: a bad parameter value must not hide unknown resource
    types or properties. A parameter whose value is wrong stays a known name with a poisoned
    value, so whatever reads it is skipped instead of being told the name does not exist."""
    imports = dict(lab.exports) if lab is not None else {}
    problems.extend(check_sections(doc))
    parameters = resolve_parameters(
        doc.get("Parameters"), params, section_line=doc.line_of("Parameters"), region=region
    )
    problems.extend(parameters.errors)
    values = parameters.values
    mappings, errors = check_mappings(doc.get("Mappings"), doc.line_of("Mappings"))
    problems.extend(errors)
    section = doc.get("Resources")
    if not isinstance(section, LDict):  # check_sections reported it
        section = LDict(line=doc.line_of("Resources"))
    declared = frozenset(section)
    pseudo = pseudo_parameters(stack_name, region)
    scope = Scope(
        values,
        pseudo,
        mappings,
        region,
        resource_names=declared,
        imports=imports,
        transforms=template_transforms(doc),
    )
    try:
        conditions = ConditionTable(
            doc.get("Conditions"), scope, section_line=doc.line_of("Conditions")
        )
    except BadInput as err:
        problems.add(err)
        conditions = ConditionTable(None, scope)
    scope.conditions = conditions
    problems.extend(conditions.check_all())
    problems.extend(check_rules(doc.get("Rules"), scope, section_line=doc.line_of("Rules")))

    resources, errors = read_resources(section, conditions, doc.get("Parameters"))
    problems.extend(errors)
    for id_error in parameter_values.check_ids(
        parameters.id_checks, resources, imports, qualifier, lab
    ):
        problems.add(id_error)
        values[str(id_error.logical_id)] = POISONED  # its users are skipped, not blamed
    outputs, errors = read_outputs(doc.get("Outputs"), conditions)
    problems.extend(errors)
    # A declaration is disabled only by a (false) condition.
    scope.disabled = {d.logical_id: d.condition for d in resources if not d.enabled and d.condition}
    names = Names({d.logical_id: d for d in resources}, declared, values, pseudo)
    edges = dependencies(resources + outputs, names, conditions, problems.add)
    lab_meta = _lab_metadata(doc)
    if lab_meta is not None:
        check_lab_metadata(lab_meta, names, conditions, problems.add)
    skip = _not_to_build(resources, names, conditions, problems)
    return _Template(
        doc,
        values,
        scope,
        conditions,
        resources,
        outputs,
        names,
        edges,
        skip,
        parameter_values.lab_values(parameters.substitutes),
    )


def _not_to_build(
    resources: list[ResourceDeclaration],
    names: Names,
    conditions: ConditionTable,
    problems: _Problems,
) -> set[str]:
    """Well-formed resources whose building would only repeat errors already reported."""
    reported = {e.logical_id for e in problems.errors}
    malformed = names.declared - set(names.resources)
    skip: set[str] = set()
    for decl in resources:
        if not decl.enabled:
            continue
        lid = decl.logical_id
        if lid in reported or (malformed and _uses(decl, malformed, conditions)):
            skip.add(lid)
        elif decl.condition is not None:
            try:
                conditions.value(decl.condition)
            except BadInput:  # a FollowUp of a bad parameter (others are reported)
                skip.add(lid)
    return skip


def _uses(decl: ResourceDeclaration, targets: frozenset[str], conditions: ConditionTable) -> bool:
    """Whether a resource refers to (or depends on) one of `targets`."""
    raw = decl.raw
    try:
        refs = [
            *(
                r
                for key in ("Properties", "Metadata")
                if key in raw
                for r in find_references(raw[key], conditions)
            ),
            *(depends_on(raw["DependsOn"], None, decl.logical_id) if "DependsOn" in raw else []),
        ]
    except BadInput:
        return True  # a malformed DependsOn: reported by the dependency check
    return any(ref.target in targets for ref in refs)


def _lab_metadata(doc: LDict) -> Any:
    metadata = doc.get("Metadata")
    return metadata.get("Lab") if isinstance(metadata, dict) else None


def _order(template: _Template) -> tuple[list[str], dict[str, set[str]]]:
    """Phase 3: the creation order and each resource's dependencies, or the loop error."""
    enabled = [d.logical_id for d in template.resources if d.enabled]
    needs = {lid: set(template.edges.get(lid, {})) for lid in enabled}
    order = creation_order(enabled, needs)
    if order is None:
        cycle = find_cycle(enabled, needs)
        raise cycle_error(cycle, template.edges, template.names.resources)
    return order, needs


def _build_all(
    template: _Template,
    order: list[str],
    needs: dict[str, set[str]],
    state: BuildState,
    problems: _Problems,
) -> None:
    """Phase 4: resolve and build each resource in creation order."""
    for decl in template.resources:
        if decl.enabled:
            state.types[decl.logical_id] = decl.resource_type.name
            if decl.resource_type.ref_value is None:  # the others register once built
                ref = decl.resource_type.physical_id(decl.logical_id, state.qualifier)
                state.physical_ids[ref] = decl.logical_id
    for decl in template.resources:
        if decl.enabled and decl.resource_type.prepare is not None:
            decl.resource_type.prepare(decl.logical_id, decl.raw.get("Properties"), state)
    try:
        default_vpc.make_if_wanted(
            state,
            [
                (d.logical_id, d.resource_type.name, d.raw.get("Properties"))
                for d in template.resources
                if d.enabled
            ],
        )
    except BadInput as err:
        problems.add(err)
        problems.raise_if_any()
    template.scope.resources = _Resources(state)
    failed: set[str] = set(template.skip)
    for lid in order:
        if lid in failed or needs[lid] & failed:
            failed.add(lid)  # its own problem would only echo the dependency's
            continue
        try:
            _build_resource(template.names.resources[lid], state, template.scope)
        except BadInput as err:
            problems.add(err)
            failed.add(lid)
    problems.raise_if_any()


def _finish(
    template: _Template, order: list[str], state: BuildState, problems: _Problems
) -> StackModel:
    """Phase 5: routing checks, public addresses, outputs and lab options; then freeze."""
    problems.extend(routing.check_routes(state))
    problems.extend(default_vpc.overlap_errors(state))
    problems.extend(nat_gateways.placement_errors(state))
    problems.extend(addresses.association_errors(state))
    problems.extend(certificate_names.name_errors(state))
    problems.extend(alb_target_errors(state))
    problems.raise_if_any()
    try:
        routing.assign_public_ips(state)
    except BadInput as err:
        problems.add(err)
    # Lambda functions an ALB invokes get hosts of their own (issue 17).
    problems.extend(lambda_targets.place(state))
    # Lab defaults (issue 11): targets with no role serve with http-backend; a template with
    # an internet gateway and no internet client gets one.
    problems.extend(lab_defaults.apply(state))
    outputs = _outputs(template.outputs, template.scope, problems)
    exports = _exports(
        template.outputs, template.scope, problems, state.lab.exporters if state.lab else None
    )
    lab = LabOptions()
    lab_meta = _lab_metadata(template.doc)
    if lab_meta is not None:
        lab_line = template.doc["Metadata"].line_of("Lab")
        try:
            resolved = resolve(lab_meta, template.scope, owner="Metadata", line=lab_line)
            lab = lab_options(LDict({"Lab": resolved}, line=lab_line), lab_line)
        except BadInput as err:
            problems.add(err)
    problems.raise_if_any()
    model = _freeze(state, template.doc, order, template.params, outputs, lab, exports)
    return replace(
        model,
        imported=frozenset(template.scope.imported),
        foreign=frozen_map(dict(state.foreign)),
        foreign_names=frozen_map(dict(state.foreign_names)),
        qualifier=state.qualifier,
    )


def build_model(
    doc: LDict,
    *,
    file: str,
    params: dict[str, Any] | None = None,
    stack_name: str = "default",
    region: str = "us-east-1",
    lab: LabView | None = None,
    qualifier: str = "",
    keep_addresses: KeptAddresses | None = None,
) -> StackModel:
    """Check and build the stack model of a parsed template; BadInput/TemplateErrors if wrong.

    lab: the lab's other stacks (testbed.model.lab_view): their exports for Fn::ImportValue,
    their resources for id parameters and literal ids (mirrored as foreign), the addresses
    they use (never handed out again). qualifier: "" for a lab's first stack, "S." for
    stack S added to it (its physical ids become vpc-S.VPC, ...; BuildState.qualifier).
    keep_addresses: owner -> private address in the running lab (a template update keeps
    them: testbed.model.addressing.AddressBook)."""
    _check_inputs(stack_name, region)
    problems = _Problems(file)
    template = _read(doc, params, stack_name, region, problems, lab, qualifier)
    try:
        order, needs = _order(template)
    except BadInput as err:
        problems.add(err)  # with the problems found before it
        problems.raise_if_any()
        raise  # not reached: raise_if_any raised
    state = BuildState(
        file,
        region,
        stack_name,
        imports=dict(lab.exports) if lab is not None else {},
        qualifier=qualifier,
        lab=lab,
        addresses=AddressBook(
            lab.used_public if lab is not None else (),
            lab.used_internet if lab is not None else (),
            keep_addresses,
        ),
    )
    state.lab_values.extend(template.lab_values)
    _build_all(template, order, needs, state, problems)
    return _finish(template, order, state, problems)
