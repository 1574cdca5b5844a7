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

A Classic Load Balancer's HTTPS and SSL listeners use the same bind options (classic=True):
their one certificate (SSLCertificateId), their SSL negotiation policy (a predefined one, or a
custom one of Protocol-* and cipher attributes, testbed.model.resources.classic_policies,
`prefer-client-ciphers` when it leaves Server-Defined-Cipher-Order off), at most TLS 1.2 (AWS's
classic policies stop there), no ALPN (a CLB speaks HTTP/1.1).

Targets of an HTTPS target group are reached over TLS without checking their certificate
(`ssl verify none`), as AWS's load balancers do (server_options).
"""

from __future__ import annotations

from pathlib import Path

from testbed.alb.servers import backend_name
from testbed.lab.certs import pem_path
from testbed.model.resources.classic_policies import parse_custom_policy
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


def policy_options(name: str | None, classic: bool = False) -> list[str]:
    """ssl-min-ver, ssl-max-ver, ciphers and ciphersuites of a policy: a predefined one, or
    (classic) a CLB's custom one, capped at TLS 1.2 without ciphersuites."""
    text = name or DEFAULT_POLICY
    custom = parse_custom_policy(text) if classic else None
    if custom is not None:
        low, high, ciphers = custom.min_tls, custom.max_tls, custom.ciphers
        suites: tuple[str, ...] = ()
        server_order = custom.server_order
    else:
        p = policy(text)
        low, high, ciphers, suites, server_order = (
            p.min_tls,
            p.max_tls,
            p.ciphers,
            p.ciphersuites,
            True,
        )
    if classic:
        high = min(high, "TLSv1.2", key=TLS_VERSIONS.index)
        suites = ()
    out = [f"ssl-min-ver {low}", f"ssl-max-ver {high}"]
    if ciphers:
        cipher_list = ":".join(ciphers)
        if TLS_VERSIONS.index(low) < TLS_VERSIONS.index("TLSv1.2"):
            cipher_list += ":@SECLEVEL=0"
        out.append(f"ciphers {cipher_list}")
    if suites:
        out.append(f"ciphersuites {':'.join(suites)}")
    if not server_order:
        out.append("prefer-client-ciphers")
    return out


def bind_options(
    listener: ListenerPlan,
    lab_dir: Path,
    http2: bool = False,
    classic: bool = False,
    alpn: bool = True,
) -> str:
    """What follows `bind ip:port` for a TLS listener: ssl, its certificates, its policy and
    ALPN, h2 first when http2 (none for a CLB; alpn=False: the caller says it, as an NLB's
    AlpnPolicy does)."""
    parts = ["ssl"]
    for arn in listener.certificates:
        parts.append(f"crt {pem_path(lab_dir, arn)}")
    parts += policy_options(listener.ssl_policy, classic)
    if alpn and not classic:
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
