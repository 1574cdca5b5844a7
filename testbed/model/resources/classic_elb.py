"""AWS::ElasticLoadBalancing::LoadBalancer: the Classic Load Balancer (CLB).

A CLB lives in the ELBv2 sections of the model so that plans, DNS, security groups, Route53
aliases and public addresses treat it like an ALB:

- load_balancers[lid]: a LoadBalancer of type "classic", one node per AZ, attributes
  CLASSIC_ATTRIBUTES with the template's values;
- target_groups[lid]: its registered instances (Instances, Auto Scaling LoadBalancerNames),
  its HealthCheck, connection draining as the deregistration delay;
- listeners[f"{lid}-{LoadBalancerPort}"]: one per Listeners item, forwarding to that group,
  with the instance port and protocol, PROXY protocol and stickiness of its policies; an
  HTTPS or SSL listener also has its certificate (SSLCertificateId: certificates) and its SSL
  negotiation policy (ssl_policy: a predefined policy's name or a custom policy's text,
  classic_policies.py). HTTPS reaches its instances over HTTP or HTTPS, SSL over TCP or SSL
  (InstanceProtocol left out: HTTP, TCP), as AWS allows.

A CLB in the default VPC given no SecurityGroups gets ELB's own group, as on AWS: one group
per stack (AWS: per account) named default_elb_<id>, shared by every such CLB, inbound TCP
from anywhere on each of their listener ports, all outbound; the lab lists it as lab-made.
Elsewhere a CLB without SecurityGroups gets its VPC's default group.

Every problem of one CLB is reported in one pass (Problems). Policies are read in
classic_policies.py.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from ipaddress import IPv4Network
from typing import Any, TypeVar

from testbed.errors import BadInput
from testbed.model.elb_defaults import (
    APPLICATION,
    CLASSIC,
    CLASSIC_ATTRIBUTES,
    CLASSIC_HC_HEALTHY,
    CLASSIC_HC_INTERVAL_S,
    CLASSIC_HC_TIMEOUT_S,
    CLASSIC_HC_UNHEALTHY,
    CLASSIC_LISTENER_PROTOCOLS,
    CLASSIC_TLS_PROTOCOLS,
)
from testbed.model.elbv2_types import (
    Action,
    HealthCheck,
    Listener,
    LoadBalancer,
    Target,
    TargetGroup,
)
from testbed.model.resources.acm import certificate_arn_problem
from testbed.model.resources.base import (
    Prop,
    ResourceContext,
    ResourceType,
    find_built,
    prop,
)
from testbed.model.resources.classic_policies import ListenerItem, read_policies
from testbed.model.resources.ec2 import INSTANCE
from testbed.model.resources.elbv2.common import (
    MAX_NAME,
    NAME_RE,
    arn,
    default_name,
    digest,
    family,
    items,
    nested,
)
from testbed.model.resources.elbv2.load_balancer import (
    HOSTED_ZONES,
    _check_subnets,
    _claim_public_ips,
    _dns_name,
    _nodes,
    _Place,
    _security_groups,
    _subnets,
)
from testbed.model.resources.group_refs import (
    SECURITY_GROUP,
    ensure_default_group,
    group_physical_id,
)
from testbed.model.resources.registry import register
from testbed.model.resources.scaling_common import Problems, whole
from testbed.model.state import BuildState, SecurityGroupDraft
from testbed.model.types import SecurityGroupRule, Source, frozen_map
from testbed.template.intrinsics import ACCOUNT_ID, as_text
from testbed.template.nodes import describe, did_you_mean, line_of

CLASSIC_LB = "AWS::ElasticLoadBalancing::LoadBalancer"
CLASSIC_PROTOCOLS = CLASSIC_LISTENER_PROTOCOLS + CLASSIC_TLS_PROTOCOLS
SCHEMES = ("internet-facing", "internal")
# The OSI layer of each protocol: a listener's two sides must be at the same one (AWS's rule).
LAYER = {"HTTP": 7, "HTTPS": 7, "TCP": 4, "SSL": 4}
# A listener's back-end protocol when InstanceProtocol is left out (TLS ends at the node).
PLAIN = {"HTTP": "HTTP", "HTTPS": "HTTP", "TCP": "TCP", "SSL": "TCP"}
MAX_PATH = 1024
TARGET_FORMS = "TCP:PORT, SSL:PORT, HTTP:PORT/PATH or HTTPS:PORT/PATH (e.g. HTTP:80/health)"
# ELB's group for CLBs of the default VPC given no SecurityGroups (name, description: AWS's).
ELB_GROUP_PREFIX = "default_elb_"
ELB_GROUP_DESCRIPTION = (
    "ELB created security group used when no security group is specified during ELB "
    "creation - modifications could impact traffic to future ELBs"
)
ELB_GROUP_REASON = (
    "ELB's security group {name} for classic load balancers of the default VPC given no "
    "SecurityGroups (one per account on AWS, shared by them): TCP in from anywhere on their "
    "listener ports"
)
TCP = 6
ANYWHERE = IPv4Network("0.0.0.0/0")

LISTENER_PROPERTIES = {
    "LoadBalancerPort": Prop("any", True),
    "InstancePort": Prop("any", True),
    "Protocol": Prop("string", True),
    "InstanceProtocol": prop("string"),
    "PolicyNames": prop("list"),
    "SSLCertificateId": prop("string"),
}
HEALTH_CHECK_KEYS = ("Target", "Interval", "Timeout", "HealthyThreshold", "UnhealthyThreshold")
HEALTH_CHECK_PROPERTIES = {key: Prop("any") for key in HEALTH_CHECK_KEYS}
DRAINING_PROPERTIES = {"Enabled": Prop("boolean", True), "Timeout": prop("any")}
SETTINGS_PROPERTIES = {"IdleTimeout": Prop("any", True)}
ACCESS_LOG_PROPERTIES = {
    "Enabled": Prop("boolean", True),
    "S3BucketName": Prop("string", True),
    "EmitInterval": prop("any"),
    "S3BucketPrefix": prop("string"),
}

T = TypeVar("T")


def _attempt(problems: Problems, line: int | None, step: Callable[[], T]) -> T | None:
    """step(), or None with its error(s) added to problems."""
    try:
        return step()
    except BadInput as err:
        problems.add_error(err, line)
        return None


# --- Listeners ------------------------------------------------------------------------------


def _port(problems: Problems, value: Any, where: str, line: int | None) -> int | None:
    return whole(problems, value, where, line, low=1, high=65535)


def _protocol(problems: Problems, value: Any, where: str, line: int | None) -> str | None:
    """HTTP, HTTPS, TCP or SSL (any case), or None with a problem."""
    text = (as_text(value) or "").strip().upper()
    if text in CLASSIC_PROTOCOLS:
        return text
    problems.add(
        f"{where} must be one of {', '.join(CLASSIC_PROTOCOLS)}, not {describe(value)}",
        line,
        did_you_mean(text, CLASSIC_PROTOCOLS),
    )
    return None


def _certificate(
    problems: Problems,
    values: dict[str, Any],
    protocol: str | None,
    where: str,
    line: int | None,
    given_line: int | None,
    region: str,
) -> tuple[str, ...]:
    """SSLCertificateId: required on HTTPS and SSL listeners (an ACM certificate of the
    load balancer's region or an IAM server certificate: acm.certificate_arn_problem),
    refused on HTTP and TCP ones (line: the listener's, given_line: SSLCertificateId's)."""
    given = "SSLCertificateId" in values
    if protocol is None:
        return ()
    if protocol not in CLASSIC_TLS_PROTOCOLS:
        if given:
            problems.add(
                f"{where}.SSLCertificateId is only for HTTPS and SSL listeners, and this one "
                f"is {protocol}",
                given_line,
                "leave SSLCertificateId out",
            )
        return ()
    if not given:
        problems.add(
            f"{where}: an {protocol} listener needs SSLCertificateId (the ARN of its server "
            "certificate: an AWS::CertificateManager::Certificate's !Ref, or an ACM / IAM "
            "certificate ARN)",
            line,
            "add SSLCertificateId: !Ref <a certificate of the template>",
        )
        return ()
    text = (as_text(values["SSLCertificateId"]) or "").strip()
    if not text:
        problems.add(
            f"{where}.SSLCertificateId must be a certificate ARN, not "
            f"{describe(values['SSLCertificateId'])}",
            given_line,
        )
        return ()
    problem = certificate_arn_problem(text, region)
    if problem:
        problems.add(
            f"{where}.SSLCertificateId: {problem}",
            given_line,
            "use !Ref of an AWS::CertificateManager::Certificate of the template",
        )
        return ()
    return (text,)


def _listener(
    ctx: ResourceContext, problems: Problems, item: Any, where: str, line: int | None
) -> tuple[int | None, ListenerItem | None]:
    """(its LoadBalancerPort, the listener): the port alone when something else is wrong,
    so that a second listener on that port is reported in the same pass."""
    values, lines = nested(ctx, item, where, line, LISTENER_PROPERTIES)
    before = len(problems.found)

    def at(key: str) -> int | None:
        return lines.get(key, line)

    port = _port(
        problems, values["LoadBalancerPort"], f"{where}.LoadBalancerPort", at("LoadBalancerPort")
    )
    instance_port = _port(
        problems, values["InstancePort"], f"{where}.InstancePort", at("InstancePort")
    )
    raw_front = (as_text(values["Protocol"]) or "").strip().upper()
    protocol = _protocol(problems, values["Protocol"], f"{where}.Protocol", at("Protocol"))
    if "InstanceProtocol" in values:
        raw_back = (as_text(values["InstanceProtocol"]) or "").strip().upper()
        if raw_front in LAYER and raw_back in LAYER and LAYER[raw_front] != LAYER[raw_back]:
            sides = "HTTP or HTTPS" if LAYER[raw_front] == 7 else "TCP or SSL"
            problems.add(
                f"{where}: InstanceProtocol {raw_back} does not go with Protocol {raw_front}: "
                f"a {raw_front} listener's instances must be reached over {sides} (AWS "
                "keeps both sides of a listener at the same layer)",
                at("InstanceProtocol"),
                f"use InstanceProtocol: {PLAIN.get(raw_front, raw_front)}",
            )
            instance_protocol = None
        else:
            instance_protocol = _protocol(
                problems,
                values["InstanceProtocol"],
                f"{where}.InstanceProtocol",
                at("InstanceProtocol"),
            )
    else:
        # HTTP -> HTTP, TCP -> TCP; HTTPS -> HTTP and SSL -> TCP (TLS ends at the node).
        instance_protocol = None if protocol is None else PLAIN[protocol]
    certificates = _certificate(
        problems, values, protocol, where, line, at("SSLCertificateId"), ctx.state.region
    )
    names: list[tuple[str, int | None]] = []
    if "PolicyNames" in values:
        listed = values["PolicyNames"]
        for index, name in enumerate(listed):
            text = as_text(name)
            name_line = line_of(listed, index, at("PolicyNames"))
            if text is None:
                problems.add(
                    f"{where}.PolicyNames[{index}] must be a policy name, not {describe(name)}",
                    name_line,
                )
                continue
            names.append((text, name_line))
    if len(problems.found) > before:
        return port, None
    assert port is not None
    assert instance_port is not None
    assert protocol is not None
    assert instance_protocol is not None
    return port, ListenerItem(
        where, line, port, protocol, instance_port, instance_protocol, tuple(names), certificates
    )


def _listeners(ctx: ResourceContext, problems: Problems) -> list[ListenerItem]:
    """Every Listeners item (each checked), one per LoadBalancerPort."""
    found: list[ListenerItem] = []
    if not ctx.props["Listeners"]:
        problems.add("Listeners is empty: a load balancer needs a listener", ctx.line("Listeners"))
        return found
    by_port: dict[int, str] = {}  # LoadBalancerPort -> the first item that uses it
    for item, line, where in items(ctx, "Listeners"):
        try:
            port, read = _listener(ctx, problems, item, where, line)
        except BadInput as err:
            problems.add_error(err, line)
            continue
        if port is not None and port in by_port:
            problems.add(
                f"{by_port[port]} and {where} both use LoadBalancerPort {port}: a classic "
                "load balancer has at most one listener per port",
                line,
                f"give {where} another LoadBalancerPort",
            )
            continue
        if port is not None:
            by_port[port] = where
        if read is not None:
            found.append(read)
    _secure_ports(problems, found)
    return found


def _secure_ports(problems: Problems, found: list[ListenerItem]) -> None:
    """AWS: listeners sending to one InstancePort all reach it over TLS (HTTPS, SSL) or
    all in the clear (HTTP, TCP)."""
    first: dict[int, ListenerItem] = {}
    for item in found:
        other = first.setdefault(item.instance_port, item)
        secure = item.instance_protocol in CLASSIC_TLS_PROTOCOLS
        if (other.instance_protocol in CLASSIC_TLS_PROTOCOLS) != secure:
            problems.add(
                f"{item.where}: InstanceProtocol {item.instance_protocol} to InstancePort "
                f"{item.instance_port}, which {other.where} reaches with "
                f"{other.instance_protocol}: listeners sending to one instance port must all "
                "use TLS (HTTPS, SSL) or all not (HTTP, TCP), as AWS requires",
                item.line,
                "a listener without InstanceProtocol reaches its instances in the clear "
                "(HTTPS -> HTTP, SSL -> TCP)",
            )


# --- Health check ---------------------------------------------------------------------------

TARGET_RE = re.compile(r"^(?P<protocol>[A-Za-z]+):(?P<port>\d{1,5})(?P<path>/.*)?$")


def _target(problems: Problems, value: Any, line: int | None) -> tuple[str, int, str] | None:
    """(protocol, port, path) of a health check Target such as HTTP:80/health."""
    text = (as_text(value) or "").strip()
    match = TARGET_RE.match(text)
    protocol = match.group("protocol").upper() if match else ""
    if match is None or protocol not in LAYER:
        problems.add(
            f"HealthCheck.Target {describe(value) if not text else repr(text)} does not "
            f"parse: write {TARGET_FORMS}",
            line,
        )
        return None
    port, path = int(match.group("port")), match.group("path")
    if not 1 <= port <= 65535:
        problems.add(f"HealthCheck.Target {text!r}: port {port} is not from 1 to 65535", line)
        return None
    if protocol in ("HTTP", "HTTPS"):
        if path is None:
            problems.add(
                f"HealthCheck.Target {text!r}: an {protocol} check needs a path after the "
                f"port, starting with /",
                line,
                f"for example {protocol}:{port}/",
            )
            return None
        if len(path) > MAX_PATH:
            problems.add(f"HealthCheck.Target's path has more than {MAX_PATH} characters", line)
            return None
        return protocol, port, path
    if path is not None:
        problems.add(
            f"HealthCheck.Target {text!r}: a {protocol} check takes no path",
            line,
            f"write {protocol}:{port}",
        )
        return None
    return protocol, port, "/"


def _health_check(
    ctx: ResourceContext, problems: Problems, first: ListenerItem | None
) -> HealthCheck | None:
    """HealthCheck (all five keys, AWS requires them), or the defaults: TCP to the first
    listener's instance port, 30 s / 5 s / 10 / 2."""
    if "HealthCheck" not in ctx.props:
        if first is None:
            return None
        return HealthCheck(
            True,
            "TCP",
            first.instance_port,
            "/",
            CLASSIC_HC_INTERVAL_S,
            CLASSIC_HC_TIMEOUT_S,
            CLASSIC_HC_HEALTHY,
            CLASSIC_HC_UNHEALTHY,
            "200",
        )
    line = ctx.line("HealthCheck")
    values, lines = nested(
        ctx, ctx.props["HealthCheck"], "HealthCheck", line, HEALTH_CHECK_PROPERTIES
    )
    missing = [key for key in HEALTH_CHECK_KEYS if key not in values]
    if missing:
        problems.add(
            f"HealthCheck needs {', '.join(missing)} (CloudFormation requires all of "
            f"{', '.join(HEALTH_CHECK_KEYS)})",
            line,
            "or leave HealthCheck out for AWS's defaults: TCP to the first listener's "
            "instance port every 30 s, timeout 5 s, thresholds 10 and 2",
        )

    def number(key: str, low: int, high: int) -> int | None:
        if key not in values:
            return None
        return whole(
            problems, values[key], f"HealthCheck.{key}", lines.get(key, line), low=low, high=high
        )

    target = (
        _target(problems, values["Target"], lines.get("Target", line))
        if "Target" in values
        else None
    )
    interval = number("Interval", 5, 300)
    timeout = number("Timeout", 2, 60)
    healthy = number("HealthyThreshold", 2, 10)
    unhealthy = number("UnhealthyThreshold", 2, 10)
    if interval is not None and timeout is not None and timeout >= interval:
        problems.add(
            f"HealthCheck.Timeout {timeout} must be smaller than HealthCheck.Interval {interval}",
            lines.get("Timeout", line),
            f"set Timeout below {interval}",
        )
        return None
    if None in (target, interval, timeout, healthy, unhealthy):
        return None
    assert target is not None
    assert interval is not None
    assert timeout is not None
    assert healthy is not None
    assert unhealthy is not None
    protocol, port, path = target
    return HealthCheck(True, protocol, port, path, interval, timeout, healthy, unhealthy, "200")


# --- Where it runs: subnets, scheme, groups, instances -----------------------------------


def _places(ctx: ResourceContext, problems: Problems) -> tuple[list[_Place], str] | None:
    """The nodes' subnets (Subnets, or the default VPC's of AvailabilityZones) and the VPC."""
    props = ctx.props
    if "Subnets" in props and "AvailabilityZones" in props:
        problems.add(
            "give a classic load balancer Subnets (a VPC's subnets) or AvailabilityZones "
            "(the default VPC's subnets of those AZs), not both",
            ctx.line("AvailabilityZones"),
            "keep Subnets for a VPC of the template",
        )
        return None
    if "Subnets" not in props and "AvailabilityZones" not in props:
        problems.add(
            "either AvailabilityZones or Subnets must be specified (AWS): Subnets puts the "
            "load balancer in their VPC, AvailabilityZones in the default VPC",
            ctx.line(),
        )
        return None
    try:
        places = _subnets(ctx)
        return places, _check_subnets(ctx, CLASSIC, places)
    except BadInput as err:
        problems.add_error(err, ctx.line("Subnets") or ctx.line("AvailabilityZones"))
        return None


def _name(ctx: ResourceContext, problems: Problems) -> str:
    """LoadBalancerName checked against AWS's rules, or the one CloudFormation would make;
    unique among the stack's load balancers."""
    lines = ctx.line("LoadBalancerName")
    name = ctx.props.get("LoadBalancerName")
    if name is None:
        name = default_name(ctx.state, ctx.logical_id)
    elif not NAME_RE.match(name):
        problems.add(
            f"LoadBalancerName {name!r} is not a valid load balancer name: use 1-{MAX_NAME} "
            "letters, digits and hyphens, not starting or ending with a hyphen",
            lines,
        )
    for other in family(ctx.state)["load_balancers"].values():
        if other.name.lower() == name.lower():
            problems.add(
                f"load balancer name {name!r} is already used by {other.logical_id}",
                lines,
                "give each one its own LoadBalancerName, or leave LoadBalancerName out",
            )
    return name


def _scheme(problems: Problems, ctx: ResourceContext) -> str:
    scheme = ctx.props.get("Scheme", "internet-facing")
    if scheme not in SCHEMES:
        problems.add(
            f"Scheme must be one of {', '.join(SCHEMES)}, not {scheme!r}",
            ctx.line("Scheme"),
            did_you_mean(scheme, SCHEMES),
        )
    return scheme


def _instances(
    ctx: ResourceContext, problems: Problems, vpc_id: str | None, port: int | None
) -> tuple[Target, ...]:
    """Instances: instances of this stack in the load balancer's VPC (each once)."""
    if "Instances" not in ctx.props:
        return ()
    state = ctx.state
    value, line = ctx.props["Instances"], ctx.line("Instances")
    targets: dict[str, Target] = {}
    for index, item in enumerate(value):
        where, at = f"Instances[{index}]", line_of(value, index, line)
        text = as_text(item)
        try:
            if text is None:
                raise ctx.fail(f"{where} must be an instance id, not {describe(item)}", line=at)
            lid = find_built(
                ctx,
                text,
                INSTANCE,
                "instance",
                state.instances,
                where,
                at,
                "use !Ref <an instance of this template>",
            )
        except BadInput as err:
            problems.add_error(err, at)
            continue
        draft = state.instances[lid]
        subnet = state.subnets[draft.subnet_id]
        if vpc_id is not None and subnet.vpc_id != vpc_id:
            problems.add(
                f"{where}: instance {lid} is in {subnet.vpc_id}, but the load balancer is in "
                f"{vpc_id}; a classic load balancer's instances must be in its VPC",
                at,
            )
            continue
        if port is not None and lid not in targets:
            targets[lid] = Target(text, draft.private_ip, port, subnet.az, lid)
    return tuple(targets.values())


# --- Attributes -----------------------------------------------------------------------------


def _attributes(ctx: ResourceContext, problems: Problems) -> dict[str, str]:
    """CLASSIC_ATTRIBUTES with CrossZone, ConnectionDrainingPolicy, ConnectionSettings and
    AccessLoggingPolicy filled in."""
    props, attrs = ctx.props, dict(CLASSIC_ATTRIBUTES)
    attrs["cross_zone_load_balancing.enabled"] = str(bool(props.get("CrossZone", False))).lower()

    def read(key: str, properties: dict[str, Prop]) -> tuple[dict[str, Any], dict[str, int | None]]:
        if key not in props:
            return {}, {}
        found = _attempt(
            problems,
            ctx.line(key),
            lambda: nested(ctx, props[key], key, ctx.line(key), properties),
        )
        return found if found is not None else ({}, {})

    def number(
        values: dict[str, Any],
        lines: dict[str, int | None],
        key: str,
        name: str,
        low: int,
        high: int,
    ) -> str | None:
        if name not in values:
            return None
        found = whole(
            problems,
            values[name],
            f"{key}.{name}",
            lines.get(name, ctx.line(key)),
            low=low,
            high=high,
        )
        return None if found is None else str(found)

    values, lines = read("ConnectionDrainingPolicy", DRAINING_PROPERTIES)
    if values:
        attrs["connection_draining.enabled"] = str(values["Enabled"]).lower()
        timeout = number(values, lines, "ConnectionDrainingPolicy", "Timeout", 1, 3600)
        attrs["connection_draining.timeout"] = timeout or attrs["connection_draining.timeout"]
    values, lines = read("ConnectionSettings", SETTINGS_PROPERTIES)
    if values:
        idle = number(values, lines, "ConnectionSettings", "IdleTimeout", 1, 4000)
        attrs["connection_settings.idle_timeout"] = (
            idle or attrs["connection_settings.idle_timeout"]
        )
    values, lines = read("AccessLoggingPolicy", ACCESS_LOG_PROPERTIES)
    if values:
        attrs["access_log.enabled"] = str(values["Enabled"]).lower()
        attrs["access_log.s3_bucket_name"] = values["S3BucketName"]
        attrs["access_log.s3_bucket_prefix"] = values.get("S3BucketPrefix", "")
        if "EmitInterval" in values:
            key = "AccessLoggingPolicy.EmitInterval"
            interval = whole(problems, values["EmitInterval"], key, lines.get("EmitInterval"))
            if interval is not None and interval not in (5, 60):
                problems.add(
                    f"{key} must be 5 or 60 (minutes), not {interval}",
                    lines.get("EmitInterval"),
                )
            elif interval is not None:
                attrs["access_log.emit_interval"] = str(interval)
    return attrs


# --- Its security groups when none are given ------------------------------------------------


def elb_group_id(vpc_id: str) -> str:
    """Logical id of ELB's group in the default VPC (a dot: no template id can clash)."""
    return f"{vpc_id}.default_elb"


def _elb_group_name(state: BuildState, lid: str) -> str:
    """default_elb_ and a UUID-like id, the same for the same stack."""
    h = digest(state, lid, "group")
    return f"{ELB_GROUP_PREFIX}{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _elb_group(ctx: ResourceContext, vpc_id: str, listeners: list[ListenerItem]) -> str:
    """ELB's group of the default VPC, made by the first CLB that needs it; every CLB that
    uses it adds TCP from 0.0.0.0/0 on its listener ports (each port once)."""
    state, lid = ctx.state, elb_group_id(vpc_id)
    draft = state.security_groups.get(lid)
    if draft is None:
        physical = group_physical_id(state, lid)
        name = _elb_group_name(state, lid)
        draft = SecurityGroupDraft(
            lid, physical, vpc_id, name, ELB_GROUP_DESCRIPTION, source=ctx.source
        )
        state.security_groups[lid] = draft
        state.types[lid] = SECURITY_GROUP
        state.physical_ids[physical] = lid
        state.lab_made[lid] = ELB_GROUP_REASON.format(name=name)
    open_ports = {rule.from_port for rule in draft.ingress}
    for item in listeners:
        if item.port not in open_ports:
            open_ports.add(item.port)
            draft.ingress.append(
                SecurityGroupRule(
                    TCP,
                    item.port,
                    item.port,
                    cidr=ANYWHERE,
                    source=Source(ctx.source.file, item.line),
                )
            )
    return lid


def _default_groups(
    ctx: ResourceContext, vpc_id: str, listeners: list[ListenerItem]
) -> tuple[str, ...]:
    """The groups of a CLB given none: ELB's group in the default VPC (AWS: "you can't
    choose an existing security group"), the VPC's default group elsewhere."""
    if ctx.state.vpcs[vpc_id].is_default:
        return (_elb_group(ctx, vpc_id, listeners),)
    return (ensure_default_group(ctx.state, vpc_id).logical_id,)


# --- The load balancer ----------------------------------------------------------------------


def _build(ctx: ResourceContext) -> None:
    state, lid, props = ctx.state, ctx.logical_id, ctx.props
    problems = Problems(ctx)
    name = _name(ctx, problems)
    scheme = _scheme(problems, ctx)
    listeners = _listeners(ctx, problems)
    first = listeners[0] if listeners else None
    bound = read_policies(ctx, problems, listeners)
    check = _attempt(problems, ctx.line("HealthCheck"), lambda: _health_check(ctx, problems, first))
    attrs = _attributes(ctx, problems)
    located = _places(ctx, problems)
    vpc_id = located[1] if located else None
    given: tuple[str, ...] | None = None
    if vpc_id is not None:
        # CLASSIC: None when none are given (the default is chosen below, once all is valid).
        given = _attempt(
            problems, ctx.line("SecurityGroups"), lambda: _security_groups(ctx, CLASSIC, vpc_id)
        )
    targets = _instances(ctx, problems, vpc_id, first.instance_port if first else None)
    problems.raise_if_any()
    assert located is not None
    assert first is not None
    assert check is not None
    places, vpc = located
    groups = given or _default_groups(ctx, vpc, listeners)
    nodes = _nodes(ctx, CLASSIC, scheme, places)  # its errors carry their lines
    lb_arn = arn(state, f"loadbalancer/{name}")
    idle = int(attrs["connection_settings.idle_timeout"])
    sections = family(state)
    sections["load_balancers"][lid] = LoadBalancer(
        lid,
        name,
        CLASSIC,
        scheme,
        vpc,
        tuple(place.subnet_id for place in places),
        nodes,
        frozen_map(attrs),
        attrs["cross_zone_load_balancing.enabled"] == "true",
        _dns_name(state, lid, name, APPLICATION, scheme),
        lb_arn,
        ctx.source,
        groups,
    )
    draining = attrs["connection_draining.enabled"] == "true"
    sections["target_groups"][lid] = TargetGroup(
        logical_id=lid,
        name=name,
        protocol=first.instance_protocol,
        port=first.instance_port,
        target_type="instance",
        vpc_id=vpc,
        targets=targets,
        health_check=check,
        attributes=frozen_map(),
        deregistration_delay_s=int(attrs["connection_draining.timeout"]) if draining else 0,
        preserve_client_ip=False,
        stickiness_enabled=False,
        stickiness_type=None,
        cross_zone="use_load_balancer_configuration",
        algorithm=None,
        arn=lb_arn,
        source=ctx.source,
        lb_type=CLASSIC,
    )
    forward = (Action("forward", None, ((lid, 1),)),)
    for item in listeners:
        policies = bound[item.port]
        key = f"{lid}-{item.port}"
        sections["listeners"][key] = Listener(
            key,
            lid,
            item.port,
            item.protocol,
            forward,
            "",
            tcp_idle_timeout_s=idle,
            source=Source(ctx.source.file, item.line),
            instance_port=item.instance_port,
            instance_protocol=item.instance_protocol,
            proxy_protocol=policies.proxy_protocol,
            sticky=policies.sticky,
            sticky_cookie=policies.sticky_cookie,
            sticky_expiration_s=policies.sticky_expiration_s,
            policy_names=tuple(name for name, _ in item.policy_names),
            certificates=item.certificates,
            ssl_policy=policies.ssl_policy,
        )
    if scheme == "internet-facing":
        where = "Subnets" if "Subnets" in props else "AvailabilityZones"
        state.public_claims[lid] = functools.partial(_claim_public_ips, line=ctx.line(where))


def _lb(state: BuildState, lid: str) -> LoadBalancer:
    return family(state)["load_balancers"][lid]


def _hosted_zone(state: BuildState, lid: str) -> str:
    """AWS gives classic load balancers the zone of its application load balancers."""
    made_up = "Z" + digest(state, f"{state.region}/{APPLICATION}", "zone")[:13].upper()
    return HOSTED_ZONES[APPLICATION].get(state.region, made_up)


def _source_group(state: BuildState, lid: str) -> str:
    """The name of the load balancer's first security group (default_elb_... for ELB's,
    "default" for its VPC's)."""
    groups = _lb(state, lid).security_groups or ()
    return state.security_groups[groups[0]].name if groups else ""


register(
    ResourceType(
        CLASSIC_LB,
        _build,
        properties={
            "LoadBalancerName": prop("string"),
            "Listeners": prop("list", required=True),
            "Subnets": prop("list"),
            "AvailabilityZones": prop("list"),
            "Scheme": prop("string"),
            "Instances": prop("list"),
            "SecurityGroups": prop("list"),
            "HealthCheck": prop("map"),
            "CrossZone": prop("boolean"),
            "ConnectionDrainingPolicy": prop("map"),
            "ConnectionSettings": prop("map"),
            "AccessLoggingPolicy": prop("map"),
            "LBCookieStickinessPolicy": prop("list"),
            "AppCookieStickinessPolicy": prop("list"),
            "Policies": prop("list"),
        },
        ref_value=lambda s, lid: _lb(s, lid).name,
        attributes={
            "DNSName": lambda s, lid: _lb(s, lid).dns_name,
            "CanonicalHostedZoneName": lambda s, lid: _lb(s, lid).dns_name,
            "CanonicalHostedZoneNameID": _hosted_zone,
            "SourceSecurityGroup.GroupName": _source_group,
            "SourceSecurityGroup.OwnerAlias": lambda s, lid: ACCOUNT_ID,
        },
    )
)
