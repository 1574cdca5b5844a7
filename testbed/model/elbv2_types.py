"""The frozen model of Elastic Load Balancing v2 resources and Gateway Load Balancer endpoints.

Built by testbed.model.resources.elbv2 and .gwlbe; found in StackModel.extras["elbv2"], a
mapping of sections (SECTIONS) each keyed by logical id:

    lbs = elbv2_sections(model)["load_balancers"]      # logical id -> LoadBalancer

Every default AWS applies is filled in (testbed.model.elb_defaults), so readers never guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from testbed.model.types import Source, frozen_map

EXTRAS_KEY = "elbv2"
SECTIONS = (
    "load_balancers",
    "target_groups",
    "listeners",
    "listener_rules",
    "endpoint_services",
    "endpoints",
    "gateway_route_tables",
)


def elbv2_sections(model: Any) -> Mapping[str, Mapping[str, Any]]:
    """model.extras["elbv2"] with every section present (empty for a stack without ELB)."""
    found = (getattr(model, "extras", None) or {}).get(EXTRAS_KEY) or {}
    return frozen_map({name: found.get(name, frozen_map()) for name in SECTIONS})


@dataclass(frozen=True)
class LbNode:
    """One load balancer node: the LB's presence in one enabled AZ, a lab host of its own."""

    az: str
    subnet_id: str
    name: str  # f"{lb logical id}-{az[-2:]}", e.g. "MyNLB-1a"
    private_ip: IPv4Address
    public_ip: IPv4Address | None  # internet-facing LBs only


@dataclass(frozen=True)
class LoadBalancer:
    """An AWS::ElasticLoadBalancingV2::LoadBalancer."""

    logical_id: str
    name: str
    type: str  # 'network' | 'application' | 'gateway' | 'classic' (a CLB)
    scheme: str | None  # 'internet-facing' | 'internal'; None for gateway
    vpc_id: str
    subnets: tuple[str, ...]
    nodes: tuple[LbNode, ...]  # one per subnet, in the order the template lists them
    attributes: Mapping[str, str]  # every attribute of the type, defaults filled in
    cross_zone: bool
    dns_name: str
    arn: str
    source: Source | None = None
    # Logical ids of its SecurityGroups; None: none given (an NLB then stays open, as on AWS;
    # an ALB gets its VPC's default group). Gateway load balancers have none.
    security_groups: tuple[str, ...] | None = None


@dataclass(frozen=True)
class HealthCheck:
    """A target group's health check, AWS defaults for its protocol filled in."""

    enabled: bool
    protocol: str  # 'TCP' | 'HTTP'
    port: int | None  # None: the traffic port (each target's own port)
    path: str  # used by HTTP checks only (TCP checks keep the default)
    interval_s: int
    timeout_s: int
    healthy_threshold: int
    unhealthy_threshold: int
    matcher: str  # HTTP success codes: "200", "200,302", "200-399" (HTTP checks only)


@dataclass(frozen=True)
class Target:
    """One registered target: an instance, an IP address or an Application Load Balancer
    (TargetType alb: the plan makes one target of each of its nodes), and the port."""

    id: str  # as AWS shows it: "i-WebA1" (the Ref of the instance), "10.0.1.5", an ALB's ARN
    ip: IPv4Address  # an alb target: its first node's address
    port: int
    az: str | None  # None for an alb target (its nodes have theirs)
    instance: str | None  # logical id of the instance behind the target, if any
    load_balancer: str | None = None  # an alb target: the ALB's logical id


@dataclass(frozen=True)
class TargetGroup:
    """An AWS::ElasticLoadBalancingV2::TargetGroup.

    preserve_client_ip: whether targets see the client's address as the source (NLB: the
    attribute; ALB: False, it proxies; GWLB: True, packets pass unchanged).
    stickiness_type: the kind in use when stickiness_enabled, else None.
    algorithm: ALB's load_balancing.algorithm.type; None for NLB/GWLB (flow hash).
    target_failover: GWLB's target_failover.* (both are equal); None otherwise.
    """

    logical_id: str
    name: str
    protocol: str  # 'TCP' | 'UDP' | 'TCP_UDP' | 'HTTP' | 'GENEVE'
    port: int
    target_type: str  # 'instance' | 'ip' | 'lambda' | 'alb'
    vpc_id: str
    targets: tuple[Target, ...]
    health_check: HealthCheck
    attributes: Mapping[str, str]  # every attribute of the protocol, defaults filled in
    deregistration_delay_s: int
    preserve_client_ip: bool
    stickiness_enabled: bool
    stickiness_type: str | None
    cross_zone: str  # 'use_load_balancer_configuration' | 'true' | 'false'
    algorithm: str | None
    arn: str
    source: Source | None = None
    lb_type: str = "network"  # the LB type its protocol belongs to
    stickiness_duration_s: int | None = None  # ALB cookie stickiness
    target_failover: str | None = None
    function: str | None = None  # a lambda group's AWS::Lambda::Function (logical id)


@dataclass(frozen=True)
class Action:
    """One listener or rule action.

    target_groups: (target group logical id, weight) of a forward action.
    redirect: Protocol, Port, Host, Path, Query, StatusCode; #{host} #{path} #{port}
    #{protocol} #{query} are kept for the data plane to fill in.
    fixed_response: StatusCode, ContentType, MessageBody.
    """

    type: str  # 'forward' | 'redirect' | 'fixed-response'
    order: int | None
    target_groups: tuple[tuple[str, int], ...] = ()
    group_stickiness_s: int | None = None
    redirect: Mapping[str, str] | None = None
    fixed_response: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Listener:
    """An AWS::ElasticLoadBalancingV2::Listener.

    tcp_idle_timeout_s / udp_idle_timeout_s: how long an idle flow (NLB, GWLB) or client
    connection (ALB: the LB's idle_timeout.timeout_seconds) is kept; None where it has no flows
    of that kind.
    """

    logical_id: str
    lb_id: str
    port: int | None  # None for gateway LBs (all ports)
    protocol: str | None  # None for gateway LBs (all IP packets)
    default_actions: tuple[Action, ...]
    arn: str
    tcp_idle_timeout_s: int | None = None
    udp_idle_timeout_s: int | None = None
    attributes: Mapping[str, str] = field(default_factory=frozen_map)
    source: Source | None = None
    # Classic Load Balancer listeners only (None / False / () on ELBv2 listeners):
    instance_port: int | None = None  # InstancePort
    instance_protocol: str | None = None  # InstanceProtocol: HTTP | TCP
    proxy_protocol: bool = False  # a ProxyProtocolPolicyType policy covers instance_port
    sticky: str | None = None  # 'lb_cookie' (LBCookieStickinessPolicy) | 'app_cookie'
    sticky_cookie: str | None = None  # app_cookie: the application's cookie name
    sticky_expiration_s: int | None = None  # lb_cookie: CookieExpirationPeriod; None: session
    policy_names: tuple[str, ...] = ()  # PolicyNames as given
    # TLS listeners (ALB HTTPS, NLB TLS, CLB HTTPS/SSL); () / None elsewhere:
    # certificate ARNs, the first the default one (ALB/NLB: Certificates, then the
    # ListenerCertificate resources in template order; CLB: SSLCertificateId).
    certificates: tuple[str, ...] = ()
    ssl_policy: str | None = None  # a name of testbed.model.ssl_policies.POLICIES
    alpn_policy: str | None = None  # NLB TLS listeners (AlpnPolicy); None elsewhere


@dataclass(frozen=True)
class Condition:
    """One ALB rule condition; the rule matches when every condition matches.

    values: the patterns, any of which may match (for query-string "key=value" or "value",
    for display; `pairs` has them split). key: the header name of an http-header condition.
    """

    field: str  # path-pattern | host-header | http-header | http-request-method |
    #             query-string | source-ip
    values: tuple[str, ...]
    key: str | None = None
    pairs: tuple[tuple[str | None, str], ...] = ()  # query-string: (key or None, value)


@dataclass(frozen=True)
class ListenerRule:
    """An AWS::ElasticLoadBalancingV2::ListenerRule (ALB): lowest priority is tried first."""

    logical_id: str
    listener_id: str
    priority: int
    conditions: tuple[Condition, ...]
    actions: tuple[Action, ...]
    arn: str
    source: Source | None = None


@dataclass(frozen=True)
class EndpointService:
    """An AWS::EC2::VPCEndpointService in front of a gateway load balancer."""

    logical_id: str
    gwlb_id: str
    service_name: str  # com.amazonaws.vpce.<region>.vpce-svc-<17 hex>
    physical_id: str = ""  # vpce-svc-<17 hex> (Ref, ServiceId)
    source: Source | None = None


@dataclass(frozen=True)
class GwlbEndpoint:
    """An AWS::EC2::VPCEndpoint of type GatewayLoadBalancer: routes send traffic through it."""

    logical_id: str
    service_id: str  # logical id of the EndpointService
    gwlb_id: str
    vpc_id: str
    subnet_id: str
    az: str
    ip: IPv4Address
    physical_id: str = ""  # vpce-<logical id> (Ref, Id)
    source: Source | None = None
