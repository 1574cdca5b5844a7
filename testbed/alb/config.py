"""haproxy.cfg of one ALB or CLB node, from the load balancer's plan: pure, no HAProxy needed.

A Classic Load Balancer's frontends and backends are testbed.alb.classic's; the global and
defaults sections are the same for both. What follows is the ALB's.

One frontend per listener, bound to the node's private address (internet clients arrive
there through the gateway's 1:1 NAT). Rules are evaluated as AWS does: in priority order,
lowest first, the listener's default actions last. The frontend first decides which rule
matches (`txn.rule`, first match wins), then that rule's action picks a backend
(`txn.be`), then `use_backend %[var(txn.be)]` sends the request there:

  forward        the target group's backend `tg_<TargetGroup>`; weighted groups by one random
                 draw per request (`txn.draw`), group stickiness through the AWSALBTG cookie
  redirect       an internal backend `redirect_<Listener>_<Rule>` answering the redirect
  fixed-response an internal backend `fixed_<Listener>_<Rule>` with the fixed response

Doing redirects and fixed responses in backends (not with `http-request redirect|return` in
the frontend, which would run before any use_backend) keeps AWS's priority order exact and
gives each action its own counters in `show stat`.

Target group backends hold one server per registered target in the node's scope (every
enabled AZ with cross-zone, else the node's own AZ), named after the target's key
(testbed.alb.patterns.server_name). Which servers take requests follows the holder's target
states (testbed.alb.servers.server_states); HAProxy's own health checks stay off.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.alb import classic, nlb_tls, tls
from testbed.alb.logformat import HTTP_LOG_FORMAT, log_format_line
from testbed.alb.patterns import (
    anchored,
    double_quoted,
    query_regex,
    single_quoted,
)
from testbed.alb.servers import (
    MAINT,
    backend_name,
    cookie_key,
    server_states,
    template_targets,
)
from testbed.messages import RuntimeTargetInfo
from testbed.model.elb_defaults import CLASSIC, NETWORK
from testbed.model.resources.elbv2.lambda_group import LAMBDA_GROUP_HEADER
from testbed.plan.balancers import (
    ConditionPlan,
    ListenerPlan,
    LoadBalancerPlan,
    NodePlan,
    TargetGroupPlan,
)

DEFAULT_RULE = "_default"  # txn.rule of the default actions (logical ids have no '_')
NO_TARGET = "elb_no_target"  # answers 503 when an action has nowhere to go
DRAW_RANGE = 1_000_000  # weighted forward: one draw in [0, DRAW_RANGE) per request
ALGORITHMS = {
    "round_robin": "roundrobin",
    "least_outstanding_requests": "leastconn",
    "weighted_random": "random",
}
GROUP_COOKIE = "AWSALBTG"
INVALID_HEADER_NAME = "[^A-Za-z0-9-]"  # a header name with any other character
LB_COOKIE = "AWSALB"


@dataclass(frozen=True)
class NodeFiles:
    """Where a node's HAProxy keeps its files (all in the node host's directory)."""

    dir: Path
    config: Path
    stats_socket: Path  # runtime API of the current worker (level admin)
    master_socket: Path  # master CLI: reload, show proc, @!<pid> for old workers
    access_log: Path
    haproxy_log: Path


SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes


def node_files(lab_dir: Path, host: str) -> NodeFiles:
    """The files of node `host` of the lab in `lab_dir`."""
    d = Path(lab_dir) / "hosts" / host
    sockets = d
    if len(str(d / "haproxy-master.sock")) > SOCKET_PATH_MAX:
        # Long logical ids: Unix socket paths are limited; keep sockets in a short folder.
        sockets = Path(lab_dir) / "alb" / hashlib.sha256(host.encode()).hexdigest()[:12]
    return NodeFiles(
        d,
        d / "haproxy.cfg",
        sockets / "haproxy.sock",
        sockets / "haproxy-master.sock",
        d / "access.log",
        d / "haproxy.log",
    )


ACTION_PREFIX = {"redirect": "redirect_", "fixed-response": "fixed_"}


def action_backend(kind: str, listener: str, rule: str) -> str:
    """The internal backend of a redirect or fixed-response action."""
    return f"{ACTION_PREFIX[kind]}{listener}_{rule.lstrip('_')}"


def render(
    lb: LoadBalancerPlan,
    node: NodePlan,
    files: NodeFiles,
    targets: Mapping[str, list[RuntimeTargetInfo]] | None = None,
) -> str:
    """The whole haproxy.cfg of `node` (an ALB's; a CLB's: testbed.alb.classic; an NLB's TLS
    listeners: testbed.alb.nlb_tls).

    targets: {target group: registry snapshot rows}; a group missing there (and every group
    at node start, targets=None) has the template's targets, all `initial` (so all take
    requests on an ALB, AWS fails open; none on a CLB until health checks pass)."""
    if lb.type == CLASSIC:
        head = _head("CLB", lb, node, files, classic.idle_timeout(lb), classic.HARD_STOP_AFTER_S)
        return "\n".join(head + classic.sections(lb, node, targets, files.dir.parent.parent)) + "\n"
    if lb.type == NETWORK:  # only its node listeners (testbed.alb.nlb_tls)
        head = _head("NLB", lb, node, files, lb.idle_tcp_s, lb.idle_tcp_s)
        return "\n".join(head + nlb_tls.sections(lb, node, lab_dir_of(files), targets)) + "\n"
    idle = int(lb.attributes.get("idle_timeout.timeout_seconds", "60"))
    keep_alive = int(lb.attributes.get("client_keep_alive.seconds", "3600"))
    out = _head("ALB", lb, node, files, idle, keep_alive)
    for listener in lb.listeners:
        out += _frontend(lb, node, listener, files)
    for tg in lb.target_groups:
        rows = list(targets[tg.name]) if targets and tg.name in targets else template_targets(tg)
        out += _backend(lb, node, tg, rows)
    for listener in lb.listeners:
        for rule, actions in _rules_in_order(listener):
            out += _action_backend(listener, rule, actions[0])
    out += [
        f"backend {NO_TARGET}",
        "    http-request return status 503 content-type text/plain "
        'string "503 Service Temporarily Unavailable"',
        "",
    ]
    return "\n".join(out) + "\n"


def _head(
    kind: str, lb: LoadBalancerPlan, node: NodePlan, files: NodeFiles, idle: int, keep_alive: int
) -> list[str]:
    """The comment, global and defaults sections (kind: ALB | CLB; idle: the load
    balancer's idle timeout; keep_alive: how long an old worker may serve after a reload)."""
    return [
        f"# haproxy.cfg of {kind} node {node.host} ({lb.name}, {node.az}, {node.ip}).",
        "# Written by testbed.alb.config from the lab's plan; the holder rewrites it on",
        "# `testbed update` and reloads HAProxy (established connections stay).",
        "global",
        # One thread: the node shares the machine's few CPUs with clients and targets.
        "    nbthread 1",
        # 2 x maxconn file descriptors must fit the machine's limit (20000 here).
        "    maxconn 8000",
        f"    stats socket {files.stats_socket} mode 600 level admin expose-fd listeners",
        # After a reload the old worker serves its connections at most this long
        # (AWS closes an ALB's client connections after client_keep_alive.seconds).
        f"    hard-stop-after {keep_alive}s",
        # A reload leaves client connections alone (no "Connection: close", idle ones
        # are not closed): they end by their own timeouts, as on AWS.
        "    close-spread-time infinite",
        "",
        "defaults",
        "    mode http",
        "    no log",
        "    option dontlognull",
        # AWS: 10 s to connect to a target; the idle timeout on both sides otherwise.
        "    timeout connect 10s",
        f"    timeout client {idle}s",
        f"    timeout server {idle}s",
        f"    timeout http-keep-alive {idle}s",
        f"    timeout http-request {idle}s",
        # AWS does not retry a request on another target; idle connections to targets
        # are shared between clients, as AWS reuses them.
        "    retries 0",
        "    http-reuse always",
        "",
    ]


def _rules_in_order(listener: ListenerPlan) -> list[tuple[str, tuple[dict[str, Any], ...]]]:
    rules = [(r.name, r.actions) for r in sorted(listener.rules, key=lambda r: r.priority)]
    return [*rules, (DEFAULT_RULE, listener.default_actions)]


def lab_dir_of(files: NodeFiles) -> Path:
    """The lab's directory (node files live in <lab>/hosts/<host>)."""
    return files.dir.parent.parent


def _frontend(
    lb: LoadBalancerPlan, node: NodePlan, listener: ListenerPlan, files: NodeFiles
) -> list[str]:
    port = listener.port
    bind = f"    bind {node.ip}:{port}"
    if tls.is_tls(listener):
        # HTTPS: the listener's certificates (SNI), SslPolicy and ALPN (testbed.alb.tls).
        bind += " " + tls.bind_options(listener, lab_dir_of(files), tls.http2_enabled(lb))
    out = [
        f"frontend {listener.name}",
        bind,
        "    log stdout format raw local0",
        log_format_line(HTTP_LOG_FORMAT, node.host),
        # As the client sent them, for the access log (before any rewriting).
        "    http-request set-var(txn.xff) req.fhdr(x-forwarded-for)",
        "    http-request set-var(txn.ua) req.fhdr(user-agent)",
        # AWS answers 502 when a target refuses or drops the connection; HAProxy says 503
        # (the page's text stays HAProxy's). 503 with no server chosen: no target at all.
        "    http-after-response set-status 502 if { status 503 } { srv_id -m found }",
        "    http-after-response set-var(txn.st) status",
        # Answers of the load balancer itself carry its name, as AWS's do.
        "    http-after-response set-header Server awselb/2.0 "
        "if { var(txn.be) -m beg redirect_ fixed_ } or !{ var(txn.be) -m found }",
    ]
    rules = sorted(listener.rules, key=lambda r: r.priority)
    # 1. Which rule matches: the first in priority order whose conditions all hold.
    for rule in rules:
        names = []
        for i, cond in enumerate(rule.conditions):
            name = f"{rule.name}_c{i}"
            out.append(f"    acl {name} {_acl(cond)}")
            names.append(name)
        out.append(
            f"    http-request set-var(txn.rule) str({rule.name}) if "
            f"!{{ var(txn.rule) -m found }} {' '.join(names)}"
        )
    out.append(
        f"    http-request set-var(txn.rule) str({DEFAULT_RULE}) if !{{ var(txn.rule) -m found }}"
    )
    # 2. Where the matching rule's action sends the request.
    cookies = []
    for rule_name, actions in _rules_in_order(listener):
        lines, cookie = _choose_backend(listener, rule_name, actions[0])
        out += lines
        if cookie:
            cookies.append(cookie)
    # 3. Headers for the targets.
    out += _forwarded_headers(lb, port, "https" if tls.is_tls(listener) else "http")
    out += cookies
    out += [
        "    use_backend %[var(txn.be)] if { var(txn.be) -m found }",
        f"    default_backend {NO_TARGET}",
        "",
    ]
    return out


def _acl(cond: ConditionPlan) -> str:
    """The ACL (fetch, flags, patterns) of one condition: any of its values may match."""
    if cond.field == "path-pattern":  # the path only, case-sensitive
        return "path -m reg " + " ".join(single_quoted(anchored(v)) for v in cond.values)
    if cond.field == "host-header":  # without a port, case-insensitive
        return "req.hdr(host),field(1,:) -m reg -i " + " ".join(
            single_quoted(anchored(v)) for v in cond.values
        )
    if cond.field == "http-header":  # name and values case-insensitive; every occurrence
        fetch = double_quoted(f"req.fhdr({(cond.key or '').lower()})")
        return f"{fetch} -m reg -i " + " ".join(single_quoted(anchored(v)) for v in cond.values)
    if cond.field == "http-request-method":  # exact, case-sensitive
        return "method " + " ".join(cond.values)
    if cond.field == "query-string":  # the raw query; any pair; case-insensitive
        pairs = cond.pairs or tuple((None, v) for v in cond.values)
        return "query -m reg -i " + " ".join(single_quoted(query_regex(k, v)) for k, v in pairs)
    if cond.field == "source-ip":  # the client's own address
        return "src " + " ".join(cond.values)
    raise ValueError(f"unknown condition field {cond.field!r}")


def _when(rule: str) -> str:
    return f"{{ var(txn.rule) -m str {rule} }}"


def _choose_backend(
    listener: ListenerPlan, rule: str, action: dict[str, Any]
) -> tuple[list[str], str | None]:
    """http-request lines that set txn.be for `rule`, and the response line that sets its
    group stickiness cookie (or None)."""
    when = _when(rule)
    if action["type"] != "forward":
        backend = action_backend(action["type"], listener.name, rule)
        return [f"    http-request set-var(txn.be) str({backend}) if {when}"], None
    groups = [(tg, int(w)) for tg, w in action["target_groups"] if int(w) > 0]
    if not groups:
        return [], None  # every weight is 0: nowhere to go (503)
    if len(groups) == 1:
        return [
            f"    http-request set-var(txn.be) str({backend_name(groups[0][0])}) if {when}"
        ], None
    out = []
    sticky = action.get("group_stickiness_s")
    if sticky:
        # A client that holds the group cookie stays with that group (while it has weight).
        for tg, _w in groups:
            out.append(
                f"    http-request set-var(txn.be) str({backend_name(tg)}) if {when} "
                f"{{ req.cook({GROUP_COOKIE}) -m str {backend_name(tg)} }}"
            )
    pending = "!{ var(txn.be) -m found }"
    out.append(f"    http-request set-var(txn.draw) rand({DRAW_RANGE}) if {when} {pending}")
    total = sum(w for _tg, w in groups)
    cumulative = 0
    for i, (tg, w) in enumerate(groups):
        cumulative += w
        if i == len(groups) - 1:
            out.append(
                f"    http-request set-var(txn.be) str({backend_name(tg)}) if {when} {pending}"
            )
        else:
            limit = round(cumulative * DRAW_RANGE / total)
            out.append(
                f"    http-request set-var(txn.be) str({backend_name(tg)}) if {when} "
                f"{pending} {{ var(txn.draw) -m int lt {limit} }}"
            )
    cookie = None
    if sticky:
        cookie = (
            f'    http-response add-header Set-Cookie "{GROUP_COOKIE}=%[var(txn.be)]; '
            f'Max-Age={int(sticky)}; Path=/" if {when}'
        )
    return out, cookie


def _forwarded_headers(lb: LoadBalancerPlan, port: int | None, proto: str) -> list[str]:
    mode = lb.attributes.get("routing.http.xff_header_processing.mode", "append")
    client = "%[src]"
    if lb.attributes.get("routing.http.xff_client_port.enabled", "false") == "true":
        client = "%[src]:%[src_port]"
    out = []
    if lb.attributes.get("routing.http.drop_invalid_header_fields.enabled", "false") == "true":
        # AWS drops headers whose names are not letters, digits and hyphens.
        out.append(f"    http-request del-header {INVALID_HEADER_NAME} -m reg")
    out += [
        f"    http-request set-header X-Forwarded-Proto {proto}",
        f"    http-request set-header X-Forwarded-Port {port}",
    ]
    tls_headers = "routing.http.x_amzn_tls_version_and_cipher_suite.enabled"
    if proto == "https" and lb.attributes.get(tls_headers, "false") == "true":
        # What the client negotiated, as AWS tells targets (OpenSSL's names, as AWS's).
        out += [
            "    http-request set-header X-Amzn-Tls-Version %[ssl_fc_protocol]",
            "    http-request set-header X-Amzn-Tls-Cipher-Suite %[ssl_fc_cipher]",
        ]
    if mode == "append":
        # One header, the client's address appended to what it sent (as AWS does; HAProxy's
        # `option forwardfor` would add a second header line instead).
        out += [
            f'    http-request set-header X-Forwarded-For "%[req.fhdr(x-forwarded-for)], '
            f'{client}" if {{ req.fhdr(x-forwarded-for) -m found }}',
            f'    http-request set-header X-Forwarded-For "{client}" '
            "unless { req.fhdr(x-forwarded-for) -m found }",
        ]
    elif mode == "remove":
        out.append("    http-request del-header X-Forwarded-For")
    # preserve: sent on unchanged (and none added).
    return out


def _backend(
    lb: LoadBalancerPlan, node: NodePlan, tg: TargetGroupPlan, targets: list[RuntimeTargetInfo]
) -> list[str]:
    attrs = tg.attributes
    algorithm = attrs.get("load_balancing.algorithm.type", "round_robin")
    out = [
        f"backend {backend_name(tg.name)}",
        # least_outstanding_requests -> leastconn: HAProxy counts the requests being
        # served by each server (idle kept-alive connections do not count).
        f"    balance {ALGORITHMS.get(algorithm, 'roundrobin')}",
    ]
    if attrs.get("stickiness.enabled", "false") == "true":
        kind = attrs.get("stickiness.type", "lb_cookie")
        if kind == "lb_cookie":
            life = int(attrs.get("stickiness.lb_cookie.duration_seconds", "86400"))
            # Dynamic cookies: derived from the server's address and a per-LB key, so they
            # work for targets registered at run time and on every node alike.
            out += [
                f'    cookie {LB_COOKIE} insert maxlife {life}s dynamic attr "Max-Age={life}"',
                f"    dynamic-cookie-key {cookie_key(lb)}",
            ]
        elif kind == "app_cookie":
            name = attrs.get("stickiness.app_cookie.cookie_name", "")
            life = int(attrs.get("stickiness.app_cookie.duration_seconds", "86400"))
            # The application's cookie value -> the target that set it (per node).
            out += [
                f"    stick-table type string len 128 size 100k expire {life}s",
                f"    stick on req.cook({name})",
                f"    stick store-response res.cook({name})",
            ]
    if tg.target_type == "lambda":
        # The function's host runs one runtime for every group that invokes it: this says
        # which group invokes it (its ARN goes into the event, its multi-value setting
        # shapes event and response); the runtime takes the header off.
        out.append(f"    http-request set-header {LAMBDA_GROUP_HEADER} {tg.name}")
    options = tls.server_options(tg)  # HTTPS targets: TLS, certificate not checked
    for name, (ip, port, state) in server_states(lb, node, tg, targets).items():
        out.append(
            f"    server {name} {ip}:{port}{options}" + (" disabled" if state == MAINT else "")
        )
    out.append("")
    return out


def _action_backend(listener: ListenerPlan, rule: str, action: dict[str, Any]) -> list[str]:
    if action["type"] == "forward":
        return []
    out = [f"backend {action_backend(action['type'], listener.name, rule)}"]
    if action["type"] == "redirect":
        r = action["redirect"]
        code = int(r["StatusCode"].removeprefix("HTTP_"))
        url = _redirect_url(listener, r)
        query = _placeholders(listener, r.get("Query", ""))
        if query:
            # "?" only when there is a query: #{query} alone may be empty.
            only_query = r.get("Query", "").strip() == "#{query}"
            cond = " if { query -m len gt 0 }" if only_query else ""
            out.append(
                f"    http-request redirect location "
                f"{double_quoted(url + '?' + query)} code {code}{cond}"
            )
        if not query or r.get("Query", "").strip() == "#{query}":
            out.append(f"    http-request redirect location {double_quoted(url)} code {code}")
    else:
        f = action["fixed_response"]
        status = int(f["StatusCode"])
        body = f.get("MessageBody", "")
        line = f"    http-request return status {status}"
        if body:
            line += (
                f" content-type {double_quoted(f.get('ContentType', 'text/plain'))} "
                f"string {double_quoted(body)}"
            )
        out.append(line)
    out.append("")
    return out


# Redirect templates: AWS placeholders -> HAProxy log-format expressions.
_HOST = "%[req.hdr(host),field(1,:)]"
_PATH = "%[path,regsub(^/,)]"  # AWS's #{path} has no leading slash ("/#{path}" is the default)
_QUERY = "%[query]"


def _placeholders(listener: ListenerPlan, text: str) -> str:
    """A log-format string for a redirect template part (literal text %-escaped)."""
    proto = (listener.protocol or "HTTP").lower()
    parts = {
        "#{host}": _HOST,
        "#{path}": _PATH,
        "#{query}": _QUERY,
        "#{port}": str(listener.port),
        "#{protocol}": proto,
    }
    out, i = [], 0
    while i < len(text):
        for placeholder, value in parts.items():
            if text.startswith(placeholder, i):
                out.append(value)
                i += len(placeholder)
                break
        else:
            out.append("%%" if text[i] == "%" else text[i])
            i += 1
    return "".join(out)


def _redirect_url(listener: ListenerPlan, r: dict[str, Any]) -> str:
    scheme = _placeholders(listener, r.get("Protocol", "#{protocol}")).lower()
    return (
        f"{scheme}://{_placeholders(listener, r.get('Host', '#{host}'))}:"
        f"{_placeholders(listener, r.get('Port', '#{port}'))}"
        f"{_placeholders(listener, r.get('Path', '/#{path}'))}"
    )
