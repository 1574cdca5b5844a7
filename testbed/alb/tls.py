"""TLS of HAProxy load balancer nodes (ALB HTTPS listeners, HTTPS target groups): pure text.

A TLS listener's bind line gets (bind_options):
  crt <pem> ...   every certificate of the listener (testbed.lab.certs.pem_path), the default
                  one first. HAProxy chooses by SNI as AWS does: a certificate naming the
                  exact host wins, then one with a matching wildcard, then the default (the
                  first `crt`: also what a client without SNI gets).
  ssl-min-ver / ssl-max-ver, ciphers (TLS <= 1.2, in the policy's order, the server's
                  order preferred), ciphersuites (TLS 1.3): the listener's SslPolicy
                  (testbed.model.ssl_policies). Policies that keep TLS 1.0 or 1.1 need
                  OpenSSL's security level 0 (Debian's default, 2, refuses those versions).
  alpn h2,http/1.1  when the ALB's routing.http2.enabled is true (AWS's default), else
                  http/1.1 only: HTTP/2 to clients, HTTP/1.1 to targets as on AWS.

Targets of an HTTPS target group are reached over TLS without checking their certificate
(`ssl verify none`), as AWS's load balancers do (server_options).
"""

from __future__ import annotations

from pathlib import Path

from testbed.alb.servers import backend_name
from testbed.lab.certs import pem_path
from testbed.model.ssl_policies import DEFAULT_POLICY, TLS_VERSIONS, policy
from testbed.plan.balancers import ListenerPlan, LoadBalancerPlan, TargetGroupPlan

HTTPS_SERVER = "ssl verify none"


def is_tls(listener: ListenerPlan) -> bool:
    """Whether the listener ends TLS at the node (HTTPS, TLS, or a CLB's SSL)."""
    return (listener.protocol or "").upper() in ("HTTPS", "TLS", "SSL")


def http2_enabled(lb: LoadBalancerPlan) -> bool:
    """routing.http2.enabled of an ALB (true unless turned off); a CLB has no HTTP/2."""
    if lb.type != "application":
        return False
    return lb.attributes.get("routing.http2.enabled", "true") == "true"


def policy_options(name: str | None) -> list[str]:
    """ssl-min-ver, ssl-max-ver, ciphers and ciphersuites of a predefined policy."""
    p = policy(name or DEFAULT_POLICY)
    out = [f"ssl-min-ver {p.min_tls}", f"ssl-max-ver {p.max_tls}"]
    if p.ciphers:
        ciphers = ":".join(p.ciphers)
        if TLS_VERSIONS.index(p.min_tls) < TLS_VERSIONS.index("TLSv1.2"):
            ciphers += ":@SECLEVEL=0"
        out.append(f"ciphers {ciphers}")
    if p.ciphersuites:
        out.append(f"ciphersuites {':'.join(p.ciphersuites)}")
    return out


def bind_options(
    listener: ListenerPlan, lab_dir: Path, http2: bool = False, alpn: bool = True
) -> str:
    """What follows `bind ip:port` for a TLS listener: ssl, its certificates, its policy and
    ALPN (h2 first when http2)."""
    parts = ["ssl"]
    for arn in listener.certificates:
        parts.append(f"crt {pem_path(lab_dir, arn)}")
    parts += policy_options(listener.ssl_policy)
    if alpn:
        parts.append("alpn h2,http/1.1" if http2 else "alpn http/1.1")
    return " ".join(parts)


def server_options(tg: TargetGroupPlan) -> str:
    """Options of a target group's HAProxy servers: TLS to HTTPS (and an NLB's TLS) targets,
    unverified."""
    return f" {HTTPS_SERVER}" if tg.protocol.upper() in ("HTTPS", "TLS") else ""


def https_backends(lb: LoadBalancerPlan) -> set[str]:
    """The backends whose servers speak TLS: a server added at run time needs the option."""
    return {
        backend_name(tg.name) for tg in lb.target_groups if tg.protocol.upper() in ("HTTPS", "TLS")
    }
