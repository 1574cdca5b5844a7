"""haproxy.cfg sections of one Classic Load Balancer node (testbed.alb.config.render).

One frontend per listener, bound to the node's private address, and one backend per
listener (`ls_<Listener>`) whose servers are the CLB's registered instances in the node's
scope (every enabled AZ with CrossZone, else the node's own AZ) at the listener's
InstancePort:

  HTTP  `mode http`: X-Forwarded-For (the client's address appended to what it sent),
        X-Forwarded-Proto and X-Forwarded-Port to the instance; least outstanding requests
        (`balance leastconn`: HAProxy counts the requests each server is serving); sticky
        sessions by the AWSELB cookie (LBCookieStickinessPolicy: HAProxy inserts it, a
        session cookie unless CookieExpirationPeriod is set) or by the application's cookie
        (AppCookieStickinessPolicy: a stick table of its values)
  TCP   `mode tcp`: bytes passed on as they come, no headers; the instance sees the node's
        address, unless the listener's InstancePort has a ProxyProtocolPolicyType policy:
        then each connection starts with a PROXY protocol v1 line (`send-proxy`)
  HTTPS as HTTP, TLS ending at the node (X-Forwarded-Proto https)
  SSL   as TCP, TLS ending at the node (the PROXY line too, to an instance reached over TCP)

HTTPS and SSL listeners (testbed.alb.tls.bind_options, classic): the node serves the listener's
certificate (SSLCertificateId, from the lab CA: testbed.lab.certs.pem_path) with its SSL
negotiation policy's TLS versions and ciphers (a predefined one of testbed.model.ssl_policies,
or a custom one of Protocol-* and cipher attributes), the server's cipher order unless a custom
policy leaves Server-Defined-Cipher-Order off; no ALPN (a CLB speaks HTTP/1.1). Versions below
TLS 1.2 need OpenSSL's security level 0 (Debian's default, 2, refuses them). An
InstanceProtocol of HTTPS or SSL re-encrypts to the instance (`ssl verify none`: the
certificate is not checked, and no SNI is sent, as AWS's CLB without a back-end authentication
policy).

A CLB never fails open (testbed.alb.servers.server_states): only healthy (InService)
instances take new connections. With none, an HTTP listener answers 503 (empty, no Server
header, as AWS's CLB) and a TCP listener closes the connection at once. Connections idle
longer than the CLB's idle timeout (ConnectionSettings.IdleTimeout) are closed, on both sides.

Access log: the lab's line per HTTP request, and per TCP connection when it ends
(testbed.alb.logformat).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from testbed.alb.logformat import HTTP_LOG_FORMAT, TCP_LOG_FORMAT, log_format_line
from testbed.alb.servers import (
    MAINT,
    cookie_key,
    instance_port,
    listener_backend,
    listener_group,
    server_states,
    template_targets,
)
from testbed.alb.tls import bind_options
from testbed.messages import RuntimeTargetInfo
from testbed.model.elb_defaults import CLASSIC_IDLE_TIMEOUT_S, CLASSIC_LB_COOKIE
from testbed.plan.balancers import ListenerPlan, LoadBalancerPlan, NodePlan

# After a reload the old worker serves its connections at most this long (a CLB has no
# client keep-alive limit; the ALB's default).
HARD_STOP_AFTER_S = 3600
APP_COOKIE_TABLE = "stick-table type string len 128 size 100k"
TLS_FRONTS = ("HTTPS", "SSL")


def idle_timeout(lb: LoadBalancerPlan) -> int:
    """The CLB's idle timeout in seconds (its listeners carry it; else its attribute)."""
    values = [lis.idle_timeout_s for lis in lb.listeners if lis.idle_timeout_s]
    if values:
        return max(values)
    return int(lb.attributes.get("connection_settings.idle_timeout", CLASSIC_IDLE_TIMEOUT_S))


def is_http(listener: ListenerPlan) -> bool:
    """HTTP or HTTPS: `mode http` (SSL and TCP: `mode tcp`)."""
    return (listener.protocol or "").upper() in ("HTTP", "HTTPS")


def is_tls(listener: ListenerPlan) -> bool:
    """HTTPS or SSL: TLS from the client ends at the node."""
    return (listener.protocol or "").upper() in TLS_FRONTS


def tls_to_instances(listener: ListenerPlan) -> bool:
    """InstanceProtocol HTTPS or SSL: the node speaks TLS to the instance."""
    return (listener.instance_protocol or "").upper() in TLS_FRONTS


def sections(
    lb: LoadBalancerPlan,
    node: NodePlan,
    targets: Mapping[str, list[RuntimeTargetInfo]] | None = None,
    lab_dir: Path | None = None,
) -> list[str]:
    """Every frontend and backend of the node (targets: as testbed.alb.config.render's;
    lab_dir: where the lab's certificates are, for HTTPS and SSL listeners)."""
    out: list[str] = []
    for listener in lb.listeners:
        out += _frontend(node, listener, lab_dir)
    for listener in lb.listeners:
        out += _backend(lb, node, listener, targets)
    return out


def _frontend(node: NodePlan, listener: ListenerPlan, lab_dir: Path | None) -> list[str]:
    bind = f"{node.ip}:{listener.port}"
    if is_tls(listener):
        if lab_dir is None:
            raise ValueError(f"listener {listener.name} is {listener.protocol}: lab_dir needed")
        bind += " " + bind_options(listener, lab_dir, classic=True)
    out = [
        f"frontend {listener.name}",
        f"    mode {'http' if is_http(listener) else 'tcp'}",
        f"    bind {bind}",
        "    log stdout format raw local0",
    ]
    if not is_http(listener):
        return [
            *out,
            log_format_line(TCP_LOG_FORMAT, node.host),
            f"    default_backend {listener_backend(listener.name)}",
            "",
        ]
    return [
        *out,
        log_format_line(HTTP_LOG_FORMAT, node.host),
        # As the client sent them, for the access log (before any rewriting).
        "    http-request set-var(txn.xff) req.fhdr(x-forwarded-for)",
        "    http-request set-var(txn.ua) req.fhdr(user-agent)",
        # A target that refuses or drops the connection: 502, as AWS (HAProxy says 503).
        # A 503 with no server chosen is the CLB's own (no healthy instance).
        "    http-after-response set-status 502 if { status 503 } { srv_id -m found }",
        "    http-after-response set-var(txn.st) status",
        f"    http-request set-header X-Forwarded-Proto {'https' if is_tls(listener) else 'http'}",
        f"    http-request set-header X-Forwarded-Port {listener.port}",
        # One header, the client's address appended to what it sent (as AWS does).
        '    http-request set-header X-Forwarded-For "%[req.fhdr(x-forwarded-for)], %[src]" '
        "if { req.fhdr(x-forwarded-for) -m found }",
        '    http-request set-header X-Forwarded-For "%[src]" '
        "unless { req.fhdr(x-forwarded-for) -m found }",
        f"    default_backend {listener_backend(listener.name)}",
        "",
    ]


def _backend(
    lb: LoadBalancerPlan,
    node: NodePlan,
    listener: ListenerPlan,
    targets: Mapping[str, list[RuntimeTargetInfo]] | None,
) -> list[str]:
    http = is_http(listener)
    out = [
        f"backend {listener_backend(listener.name)}",
        f"    mode {'http' if http else 'tcp'}",
        # AWS: least outstanding requests on HTTP listeners, round robin on TCP ones.
        f"    balance {'leastconn' if http else 'roundrobin'}",
    ]
    if http and listener.sticky == "lb_cookie":
        # Dynamic cookies (as the ALB's AWSALB): derived from the server's address and a
        # per-LB key, so they work for instances registered at run time and on every node.
        life = listener.sticky_expiration_s
        expiry = f' maxlife {life}s dynamic attr "Max-Age={life}"' if life else " dynamic"
        out += [
            f"    cookie {CLASSIC_LB_COOKIE} insert{expiry}",
            f"    dynamic-cookie-key {cookie_key(lb)}",
        ]
    elif http and listener.sticky == "app_cookie" and listener.sticky_cookie:
        # The application's cookie value -> the instance that set it (per node).
        name = listener.sticky_cookie
        out += [
            f"    {APP_COOKIE_TABLE}",
            f"    stick on req.cook({name})",
            f"    stick store-response res.cook({name})",
        ]
    if http:
        # No healthy instance: the CLB's own empty 503 (HAProxy's would carry a page).
        out.append("    http-request return status 503 if { nbsrv lt 1 }")
    tg = listener_group(lb, listener)
    if tg is not None:
        rows = list(targets[tg.name]) if targets and tg.name in targets else template_targets(tg)
        port = instance_port(listener, tg)
        proxy = " send-proxy" if listener.proxy_protocol else ""
        tls = " ssl verify none" if tls_to_instances(listener) else ""
        for name, (ip, _port, state) in server_states(lb, node, tg, rows).items():
            disabled = " disabled" if state == MAINT else ""
            out.append(f"    server {name} {ip}:{port}{proxy}{tls}{disabled}")
    out.append("")
    return out
