"""haproxy.cfg sections of one NLB node with node listeners (testbed.alb.config.render): pure text.

An NLB's UDP and TCP_UDP listeners, and its TCP listeners to groups without proxy protocol v2,
stay in the switches. Its node listeners (LoadBalancerPlan.node_listeners: the TLS listeners
and the TCP listeners whose group has proxy_protocol_v2.enabled) run here, in HAProxy
`mode tcp`; testbed.controllers.nlb installs no flow for their ports, so their packets reach
the node's host like any packet to its address:

  frontend  one per node listener, bound to the node's private address. A TCP listener: plain
            TCP. A TLS listener: `ssl`, its
            certificates (the default one first, the ListenerCertificate ones chosen by SNI),
            the SslPolicy's versions and ciphers (testbed.alb.tls.bind_options) and the
            AlpnPolicy's protocol list in its order (HAProxy, as AWS, picks the first of its
            own list that the client offers; None or no AlpnPolicy: no ALPN). Bytes pass on as
            they come (the NLB does not speak HTTP); one access log line per connection.
  backend   one per target group a node listener forwards to, `tg_<TargetGroup>` (the ALB's
            names, so testbed.alb.servers and testbed.alb.runtime keep its servers in step
            with the holder's target states; NLB fails open like the ALB): plain TCP to a
            TCP group, TLS without checking the target's certificate to a TLS group
            (re-encryption, as AWS). A new connection picks a target at random (the NLB
            hashes each flow; HAProxy cannot use the switches' Maglev table), or by the
            client's address with stickiness (source_ip). A group with proxy_protocol_v2.enabled:
            `send-proxy-v2` on its servers, so each connection to a target opens with a PROXY
            v2 header: PROXY command, TCP over IPv4, source = the client's address and port,
            destination = the node's address and the listener's port, no TLVs (AWS adds its
            0xEA TLV, the VPC endpoint id, only for PrivateLink traffic). Health checks are
            the holder's (testbed.lb.health_checker), without a header, as on AWS.

Client addresses as AWS documents them for TLS listeners: a group with client IP preservation
(preserve_client_ip.enabled, on by default for instance targets) sees the client's address,
as HAProxy connects from it (`source 0.0.0.0 usesrc clientip`: IP_TRANSPARENT; the node
accepts the replies, testbed.alb.node, which the switches steer back to it,
testbed.controllers.nlb); a group without it sees the node's address.
With proxy protocol v2 the header carries the client's address whatever preserve_client_ip
says.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from testbed.alb import tls
from testbed.alb.logformat import TCP_LOG_FORMAT, log_format_line
from testbed.alb.servers import MAINT, backend_name, server_states, template_targets
from testbed.messages import RuntimeTargetInfo
from testbed.model.elb_defaults import ALPN_POLICIES
from testbed.plan.balancers import ListenerPlan, LoadBalancerPlan, NodePlan, TargetGroupPlan


def alpn_option(listener: ListenerPlan) -> str | None:
    """The bind's `alpn` option of a TLS listener; None when it offers no ALPN."""
    protocols = ALPN_POLICIES.get(listener.alpn_policy or "", ())
    return f"alpn {','.join(protocols)}" if protocols else None


def tls_groups(lb: LoadBalancerPlan) -> list[TargetGroupPlan]:
    """The target groups the NLB's node listeners forward to, in plan order."""
    names = {lis.target_group for lis in lb.node_listeners if lis.target_group}
    return [tg for tg in lb.target_groups if tg.name in names]


def reencrypts(tg: TargetGroupPlan) -> bool:
    """A TLS target group: the node speaks TLS to its targets."""
    return tg.protocol.upper() == "TLS"


def server_options(tg: TargetGroupPlan) -> str:
    """Options of a group's servers (in haproxy.cfg and added at run time): TLS to a TLS
    group, unverified; a PROXY v2 header to a group with proxy protocol v2."""
    options = f" {tls.HTTPS_SERVER}" if reencrypts(tg) else ""
    if tg.proxy_protocol_v2:
        options += " send-proxy-v2"
    return options


def sections(
    lb: LoadBalancerPlan,
    node: NodePlan,
    lab_dir: Path,
    targets: Mapping[str, list[RuntimeTargetInfo]] | None = None,
) -> list[str]:
    """Every frontend and backend of the node (targets: as testbed.alb.config.render's)."""
    out: list[str] = []
    for listener in lb.node_listeners:
        out += _frontend(node, listener, lab_dir)
    for tg in tls_groups(lb):
        rows = list(targets[tg.name]) if targets and tg.name in targets else template_targets(tg)
        out += _backend(lb, node, tg, rows)
    return out


def _frontend(node: NodePlan, listener: ListenerPlan, lab_dir: Path) -> list[str]:
    bind = f"{node.ip}:{listener.port}"
    if listener.protocol == "TLS":
        bind += " " + tls.bind_options(listener, lab_dir, alpn=False)
        alpn = alpn_option(listener)
        if alpn:
            bind += f" {alpn}"
    out = [
        f"frontend {listener.name}",
        "    mode tcp",
        f"    bind {bind}",
        "    log stdout format raw local0",
        log_format_line(TCP_LOG_FORMAT, node.host),
    ]
    if listener.target_group:
        out.append(f"    default_backend {backend_name(listener.target_group)}")
    return [*out, ""]


def _backend(
    lb: LoadBalancerPlan, node: NodePlan, tg: TargetGroupPlan, rows: list[RuntimeTargetInfo]
) -> list[str]:
    sticky = tg.attributes.get("stickiness.enabled", "false") == "true"
    out = [
        f"backend {backend_name(tg.name)}",
        "    mode tcp",
        f"    balance {'source' if sticky else 'random'}",
    ]
    if tg in lb.transparent_groups:
        # The client's address, the node's own port choice (AWS's targets see the client's
        # address behind a TLS listener too); the switches bring the replies back here.
        out.append("    source 0.0.0.0 usesrc clientip")
    options = server_options(tg)
    for name, (ip, port, state) in server_states(lb, node, tg, rows).items():
        out.append(
            f"    server {name} {ip}:{port}{options}" + (" disabled" if state == MAINT else "")
        )
    return [*out, ""]
