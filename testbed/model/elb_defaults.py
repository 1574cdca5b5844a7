"""AWS's per-type defaults for ELBv2, in one table (see /work/shared/aws-elb-reference.md).

AWS's guides disagree now and then and defaults move over time: every value the lab assumes
lives here, and each one is overridable per template by the matching property or attribute
(HealthCheckIntervalSeconds, LoadBalancerAttributes, TargetGroupAttributes, ...).

Keys of DEFAULTS are load balancer types; a target group belongs to the type its protocol
serves (lb_type_of_protocol).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from testbed.model.types import frozen_map

APPLICATION, NETWORK, GATEWAY = "application", "network", "gateway"
LB_TYPES = (APPLICATION, NETWORK, GATEWAY)

# Which LB type a target group protocol serves.
PROTOCOL_LB_TYPE = frozen_map(
    {
        "HTTP": APPLICATION,
        "HTTPS": APPLICATION,
        "TCP": NETWORK,
        "UDP": NETWORK,
        "TCP_UDP": NETWORK,
        "TLS": NETWORK,
        "GENEVE": GATEWAY,
    }
)
# AlpnPolicy of an NLB TLS listener -> the protocols its handshake offers, in its order of
# preference (AWS's ALPN policies; "None", the default, offers none).
ALPN_POLICIES: Mapping[str, tuple[str, ...]] = frozen_map(
    {
        "HTTP1Only": ("http/1.1", "http/1.0"),
        "HTTP2Only": ("h2",),
        "HTTP2Optional": ("http/1.1", "http/1.0", "h2"),
        "HTTP2Preferred": ("h2", "http/1.1", "http/1.0"),
    }
)
GENEVE_PORT = 6081  # GWLB talks to appliances on this UDP port only

DEREGISTRATION_DELAY_S = 300
STICKINESS_DURATION_S = 86400  # ALB lb_cookie / app_cookie
NLB_TCP_IDLE_TIMEOUT_S = 350
NLB_UDP_IDLE_TIMEOUT_S = 120  # fixed by AWS
ALB_IDLE_TIMEOUT_S = 60
GWLB_TCP_IDLE_TIMEOUT_S = 350
GWLB_OTHER_IDLE_TIMEOUT_S = 120


@dataclass(frozen=True)
class HealthCheckDefaults:
    """A health check as AWS sets it up when the template says nothing."""

    protocol: str
    port: int | None  # None: the traffic port
    path: str
    interval_s: int
    timeout_tcp_s: int
    timeout_http_s: int
    healthy_threshold: int
    unhealthy_threshold: int
    matcher: str
    matcher_codes: tuple[int, int]  # the HTTP codes a Matcher may name


@dataclass(frozen=True)
class TypeDefaults:
    """Everything one LB type (and the target groups it uses) defaults to."""

    health_check: HealthCheckDefaults
    cross_zone: bool
    lb_attributes: Mapping[str, str]  # every attribute the type knows -> default
    tg_attributes: Mapping[str, str]
    stickiness_types: tuple[str, ...]  # allowed stickiness.type values, default first
    tcp_idle_timeout_s: int | None
    udp_idle_timeout_s: int | None


_COMMON_LB = {"deletion_protection.enabled": "false"}
_ACCESS_LOGS = {
    "access_logs.s3.enabled": "false",
    "access_logs.s3.bucket": "",
    "access_logs.s3.prefix": "",
}
_COMMON_TG = {
    "deregistration_delay.timeout_seconds": str(DEREGISTRATION_DELAY_S),
    "stickiness.enabled": "false",
}
_TG_HEALTH = {
    "load_balancing.cross_zone.enabled": "use_load_balancer_configuration",
    "target_group_health.dns_failover.minimum_healthy_targets.count": "1",
    "target_group_health.dns_failover.minimum_healthy_targets.percentage": "off",
    "target_group_health.unhealthy_state_routing.minimum_healthy_targets.count": "1",
    "target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage": "off",
}

DEFAULTS: Mapping[str, TypeDefaults] = frozen_map(
    {
        APPLICATION: TypeDefaults(
            health_check=HealthCheckDefaults("HTTP", None, "/", 30, 5, 5, 5, 2, "200", (200, 499)),
            cross_zone=True,  # and it cannot be turned off at the LB level
            lb_attributes=frozen_map(
                {
                    **_COMMON_LB,
                    **_ACCESS_LOGS,
                    "client_keep_alive.seconds": "3600",
                    "connection_logs.s3.enabled": "false",
                    "connection_logs.s3.bucket": "",
                    "connection_logs.s3.prefix": "",
                    "idle_timeout.timeout_seconds": str(ALB_IDLE_TIMEOUT_S),
                    "load_balancing.cross_zone.enabled": "true",
                    "routing.http.desync_mitigation_mode": "defensive",
                    "routing.http.drop_invalid_header_fields.enabled": "false",
                    "routing.http.preserve_host_header.enabled": "false",
                    "routing.http.x_amzn_tls_version_and_cipher_suite.enabled": "false",
                    "routing.http.xff_client_port.enabled": "false",
                    "routing.http.xff_header_processing.mode": "append",
                    "routing.http2.enabled": "true",
                    "waf.fail_open.enabled": "false",
                    "zonal_shift.config.enabled": "false",
                }
            ),
            tg_attributes=frozen_map(
                {
                    **_COMMON_TG,
                    **_TG_HEALTH,
                    "stickiness.type": "lb_cookie",
                    "stickiness.lb_cookie.duration_seconds": str(STICKINESS_DURATION_S),
                    "stickiness.app_cookie.cookie_name": "",
                    "stickiness.app_cookie.duration_seconds": str(STICKINESS_DURATION_S),
                    "load_balancing.algorithm.type": "round_robin",
                    "load_balancing.algorithm.anomaly_mitigation": "off",
                    "slow_start.duration_seconds": "0",
                }
            ),
            stickiness_types=("lb_cookie", "app_cookie"),
            tcp_idle_timeout_s=ALB_IDLE_TIMEOUT_S,
            udp_idle_timeout_s=None,
        ),
        NETWORK: TypeDefaults(
            # NLB timeouts differ by check protocol: 10 s for TCP, 6 s for HTTP(S).
            health_check=HealthCheckDefaults(
                "TCP", None, "/", 30, 10, 6, 5, 2, "200-399", (200, 599)
            ),
            cross_zone=False,
            lb_attributes=frozen_map(
                {
                    **_COMMON_LB,
                    **_ACCESS_LOGS,
                    "dns_record.client_routing_policy": "any_availability_zone",
                    "load_balancing.cross_zone.enabled": "false",
                    "zonal_shift.config.enabled": "false",
                }
            ),
            tg_attributes=frozen_map(
                {
                    **_COMMON_TG,
                    **_TG_HEALTH,
                    "stickiness.type": "source_ip",
                    "deregistration_delay.connection_termination.enabled": "false",
                    # Filled per target group by preserve_client_ip_default.
                    "preserve_client_ip.enabled": "",
                    "proxy_protocol_v2.enabled": "false",
                    "target_health_state.unhealthy.connection_termination.enabled": "true",
                    "target_health_state.unhealthy.draining_interval_seconds": "0",
                }
            ),
            stickiness_types=("source_ip",),
            tcp_idle_timeout_s=NLB_TCP_IDLE_TIMEOUT_S,
            udp_idle_timeout_s=NLB_UDP_IDLE_TIMEOUT_S,
        ),
        GATEWAY: TypeDefaults(
            # Older guides give 3/3 thresholds; current ones 5/2.
            health_check=HealthCheckDefaults("TCP", 80, "/", 10, 5, 5, 5, 2, "200-399", (200, 599)),
            cross_zone=False,
            lb_attributes=frozen_map(
                {
                    **_COMMON_LB,
                    "load_balancing.cross_zone.enabled": "false",
                }
            ),
            tg_attributes=frozen_map(
                {
                    **_COMMON_TG,
                    # Without stickiness GWLB hashes the 5-tuple; with it, 3- or 2-tuple.
                    "stickiness.type": "source_ip_dest_ip_proto",
                    "target_failover.on_deregistration": "no_rebalance",
                    "target_failover.on_unhealthy": "no_rebalance",
                }
            ),
            stickiness_types=("source_ip_dest_ip_proto", "source_ip_dest_ip"),
            tcp_idle_timeout_s=GWLB_TCP_IDLE_TIMEOUT_S,
            udp_idle_timeout_s=GWLB_OTHER_IDLE_TIMEOUT_S,
        ),
    }
)


# ---- Classic Load Balancer (AWS::ElasticLoadBalancing::LoadBalancer) ----------------------
# Not one of LB_TYPES (ELBv2's Type values): a CLB is its own resource type. In the model it
# is a LoadBalancer of type CLASSIC with one implicit target group (its registered instances,
# keyed by the CLB's logical id) and one Listener per LoadBalancerPort.
CLASSIC = "classic"
CLASSIC_LISTENER_PROTOCOLS = ("HTTP", "TCP")  # HTTPS / SSL: with TLS (issue 16)
CLASSIC_TLS_PROTOCOLS = ("HTTPS", "SSL")
CLASSIC_CHECK_PROTOCOLS = ("TCP", "HTTP", "SSL", "HTTPS")  # HealthCheck.Target "PROTO:PORT[/path]"
# HealthCheck defaults (CreateLoadBalancer without one: Target TCP:<first InstancePort>).
CLASSIC_HC_INTERVAL_S = 30  # 5-300
CLASSIC_HC_TIMEOUT_S = 5  # 2-60, below Interval
CLASSIC_HC_HEALTHY = 10  # 2-10
CLASSIC_HC_UNHEALTHY = 2  # 2-10
CLASSIC_DRAINING_TIMEOUT_S = 300  # ConnectionDrainingPolicy.Timeout when Enabled without one
CLASSIC_IDLE_TIMEOUT_S = 60  # ConnectionSettings.IdleTimeout, 1-4000
CLASSIC_LB_COOKIE = "AWSELB"
# LoadBalancer.attributes of a CLB: every key always present (as strings, like ELBv2's).
CLASSIC_ATTRIBUTES: Mapping[str, str] = frozen_map(
    {
        "cross_zone_load_balancing.enabled": "false",  # CrossZone; false via API/CloudFormation
        "connection_draining.enabled": "false",
        "connection_draining.timeout": str(CLASSIC_DRAINING_TIMEOUT_S),
        "connection_settings.idle_timeout": str(CLASSIC_IDLE_TIMEOUT_S),
        "access_log.enabled": "false",
        "access_log.emit_interval": "60",
        "access_log.s3_bucket_name": "",
        "access_log.s3_bucket_prefix": "",
    }
)


def lb_type_of_protocol(protocol: str) -> str:
    """The LB type a target group protocol serves (HTTP -> application, ...)."""
    return PROTOCOL_LB_TYPE[protocol]


def preserve_client_ip_default(protocol: str, target_type: str) -> bool:
    """NLB: on for instance targets and for UDP/TCP_UDP; off for IP targets over TCP/TLS."""
    return not (target_type == "ip" and protocol in ("TCP", "TLS"))


def health_check_timeout_default(lb_type: str, check_protocol: str) -> int:
    """The health check timeout AWS uses when the template gives none."""
    defaults = DEFAULTS[lb_type].health_check
    return defaults.timeout_tcp_s if check_protocol == "TCP" else defaults.timeout_http_s
