"""haproxy.cfg of ALB nodes from plans: rule order, conditions, actions, backends, headers.

Two kinds of checks: what the generated file says (regexes compiled and tried in Python,
weights, backend options), and what HAProxy itself does with it, run on the loopback
(tests/haproxy_local.py; no root, no lab): the same table of rule cases as the lab test.
"""

from __future__ import annotations

import collections
import re
import subprocess
from dataclasses import replace

import pytest

from testbed.accesslog import parse_line
from testbed.alb import config
from testbed.alb.config import node_files, render, server_states
from testbed.alb.patterns import anchored, double_quoted, query_regex
from testbed.model import load_model_text
from testbed.plan.network import build_plan
from testbed.waiting import wait_for
from tests.alb_data import GROUPS, RULE_CASES, RULES, rules_template
from tests.haproxy_local import HAVE_HAPROXY, LocalAlb

needs_haproxy = pytest.mark.skipif(not HAVE_HAPROXY, reason="haproxy is not installed")


def alb_plan(xff: str = "append", **params: str):
    model = load_model_text(
        rules_template(xff), filename="rules.yaml", params=params, stack_name="t"
    )
    return build_plan(model, "t").load_balancers[0]


@pytest.fixture(scope="module")
def lb():
    return alb_plan()


def cfg(lb, node: int = 0, targets=None) -> str:
    n = lb.nodes[node]
    return render(lb, n, node_files(config.Path("/run/elb-testbed/t"), n.host), targets)


def section(text: str, header: str) -> list[str]:
    """The lines of one section ("frontend Http", "backend tg_TgLor")."""
    lines = text.splitlines()
    start = lines.index(header)
    out = []
    for line in lines[start + 1 :]:
        if not line.startswith("    "):
            break
        out.append(line.strip())
    return out


# ---- the file ------------------------------------------------------------------------------
def test_rules_are_tried_by_priority_then_the_default(lb):
    front = section(cfg(lb), "frontend Http")
    chosen = [
        re.search(r"str\((\w+)\)", line).group(1)
        for line in front
        if line.startswith("http-request set-var(txn.rule)")
    ]
    by_priority = [name for name, _p, _c, _a in sorted(RULES, key=lambda r: r[1])]
    assert chosen == [*by_priority, config.DEFAULT_RULE]
    # First match wins: every rule line is guarded by "no rule yet".
    assert all(
        "!{ var(txn.rule) -m found }" in line
        for line in front
        if line.startswith("http-request set-var(txn.rule)")
    )


def test_every_rule_condition_is_anded(lb):
    front = section(cfg(lb), "frontend Http")
    line = next(x for x in front if "str(SourceRule)" in x)
    assert line.endswith("SourceRule_c0 SourceRule_c1")
    assert "acl SourceRule_c1 src 198.51.100.11/32" in front


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("/api/*", ["/api/", "/api/x/y"], ["/api", "/API/x", "/x/api/"]),
        ("/api/v?/*", ["/api/v1/x"], ["/api/v10/x", "/api/v/x"]),
        (
            "*.example.com",
            ["www.example.com", "a.b.example.com"],
            ["example.com", "wwwexample.com"],
        ),
        ("a.b$c (d)'\"", ["a.b$c (d)'\""], ["aXb$c (d)'\""]),
    ],
)
def test_wildcards_become_anchored_regexes(pattern, matches, misses):
    regex = re.compile(anchored(pattern))
    assert all(regex.search(m) for m in matches)
    assert not any(regex.search(m) for m in misses)
    assert not set("'\" $#\\") & set(anchored(pattern)[1:-1].replace("\\x", "")), (
        "only safe characters reach haproxy.cfg"
    )


def test_query_patterns_stay_within_one_parameter():
    pair = re.compile(query_regex("v", "2*"), re.I)
    assert pair.search("v=2")
    assert pair.search("a=1&V=23&b=2")
    assert pair.search("v=2x")
    assert not pair.search("vv=2")
    assert not pair.search("v=3&x=2")
    value_only = re.compile(query_regex(None, "beta"), re.I)
    assert value_only.search("mode=beta")
    assert not value_only.search("mode=betamax")
    literal = re.compile(query_regex("q", "a\\*b"))  # AWS: \* is a literal *
    assert literal.search("q=a*b")
    assert not literal.search("q=axxb")


def test_condition_fetches_and_case_rules(lb):
    front = "\n".join(section(cfg(lb), "frontend Http"))
    assert "acl PathPrefix_c0 path -m reg '^/api/.*$'" in front  # path only, case-sensitive
    assert "acl HostRule_c0 req.hdr(host),field(1,:) -m reg -i" in front
    assert 'acl HeaderRule_c0 "req.fhdr(x-env)" -m reg -i' in front
    assert "acl MethodRule_c0 method PUT DELETE" in front  # exact, case-sensitive
    assert "acl QueryRule_c0 query -m reg -i" in front


def test_weighted_forward_draws_once_per_request(lb):
    front = section(cfg(lb), "frontend Http")
    weighted = [x for x in front if "WeightedRule" in x and "txn.draw" in x]
    assert weighted[0].startswith("http-request set-var(txn.draw) rand(1000000)")
    assert "tg_TgW90" in weighted[1]
    assert "lt 900000" in weighted[1]
    last = next(x for x in front if "str(tg_TgW10)" in x and "WeightedRule" in x)
    assert "txn.draw" not in last  # the rest of the range


def test_group_stickiness_cookie(lb):
    front = section(cfg(lb), "frontend Http")
    assert any("req.cook(AWSALBTG) -m str tg_TgW90" in x and "GroupStickyRule" in x for x in front)
    cookie = next(x for x in front if x.startswith("http-response add-header Set-Cookie"))
    assert "AWSALBTG=%[var(txn.be)]; Max-Age=300" in cookie
    assert "GroupStickyRule" in cookie


def test_zero_weight_groups_never_drawn(lb):
    rule = lb.listeners[0].rules[0]
    action = {
        "type": "forward",
        "target_groups": [["TgW90", 0], ["TgW10", 3]],
        "group_stickiness_s": None,
    }
    listener = replace(lb.listeners[0], rules=(replace(rule, actions=(action,)),))
    text = cfg(replace(lb, listeners=(listener,)))
    line = next(
        x for x in section(text, "frontend Http") if "PathWildcard }" in x and "txn.be" in x
    )
    assert "tg_TgW10" in line
    assert "txn.draw" not in line


def test_algorithms_and_stickiness(lb):
    text = cfg(lb)
    assert "balance leastconn" in section(text, "backend tg_TgLor")
    web = section(text, "backend tg_WebTargets")
    assert "balance roundrobin" in web
    assert any(x.startswith("cookie AWSALB insert maxlife 600s dynamic") for x in web)
    assert any(x.startswith("dynamic-cookie-key ") for x in web)
    tg = replace(
        lb.target_group("TgPath"),
        attributes={
            **lb.target_group("TgPath").attributes,
            "stickiness.enabled": "true",
            "stickiness.type": "app_cookie",
            "stickiness.app_cookie.cookie_name": "SESSION",
            "stickiness.app_cookie.duration_seconds": "120",
            "load_balancing.algorithm.type": "weighted_random",
        },
    )
    other = cfg(
        replace(lb, target_groups=tuple(tg if g.name == "TgPath" else g for g in lb.target_groups))
    )
    backend = section(other, "backend tg_TgPath")
    assert "balance random" in backend
    assert "stick on req.cook(SESSION)" in backend
    assert "expire 120s" in backend[1]


@pytest.mark.parametrize(
    ("mode", "present", "absent"),
    [
        (
            "append",
            ['set-header X-Forwarded-For "%[req.fhdr(x-forwarded-for)], %[src]"'],
            ["del-header X-Forwarded-For"],
        ),
        ("preserve", [], ["X-Forwarded-For"]),
        ("remove", ["del-header X-Forwarded-For"], ["set-header X-Forwarded-For"]),
    ],
)
def test_x_forwarded_for_modes(mode, present, absent):
    front = "\n".join(section(cfg(alb_plan(mode)), "frontend Http"))
    for text in present:
        assert text in front
    for text in absent:
        assert text not in front
    assert "set-header X-Forwarded-Proto http" in front
    assert "set-header X-Forwarded-Port 80" in front


def test_cross_zone_scope_per_node(lb):
    for index, own in ((0, "WebA1_80"), (1, "WebB1_80")):
        text = cfg(lb, index)
        zonal = [
            x.split()[1] for x in section(text, "backend tg_TgZonal") if x.startswith("server ")
        ]
        assert zonal == [own]  # cross-zone off: the node's own AZ only
        every = [
            x.split()[1] for x in section(text, "backend tg_WebTargets") if x.startswith("server ")
        ]
        assert every == ["WebA1_80", "WebB1_80"]  # ALB default: every AZ


def test_server_states_follow_health_and_fail_open(lb):
    node, tg = lb.nodes[0], lb.target_group("TgLor")

    def rows(*states):
        return [
            {"key": t.key, "ip": t.ip, "port": t.port, "az": t.az, "state": s}
            for t, s in zip(tg.targets, states)
        ]

    def states(*s):
        return {k: v[2] for k, v in server_states(lb, node, tg, rows(*s)).items()}

    assert states("healthy", "unhealthy") == {"LorA1_80": "ready", "LorB1_80": "maint"}
    assert states("healthy", "initial") == {"LorA1_80": "ready", "LorB1_80": "maint"}
    assert states("unhealthy", "unhealthy") == {"LorA1_80": "ready", "LorB1_80": "ready"}
    assert states("initial", "initial") == {"LorA1_80": "ready", "LorB1_80": "ready"}
    assert states("draining", "unhealthy") == {"LorA1_80": "maint", "LorB1_80": "ready"}
    assert states("draining", "healthy") == {"LorA1_80": "maint", "LorB1_80": "ready"}
    text = cfg(lb, 0, {"TgLor": rows("healthy", "unhealthy")})
    assert "server LorB1_80 10.0.3.7:80 disabled" in section(text, "backend tg_TgLor") or any(
        x.startswith("server LorB1_80") and x.endswith("disabled")
        for x in section(text, "backend tg_TgLor")
    )


def test_redirect_and_fixed_response_backends(lb):
    text = cfg(lb)
    front = section(text, "frontend Http")
    assert (
        "http-request set-var(txn.be) str(redirect_Http_RedirectRule) if "
        "{ var(txn.rule) -m str RedirectRule }" in front
    )
    redirect = section(text, "backend redirect_Http_RedirectRule")
    assert any(
        x == 'http-request redirect location "http://new.example.com:8080/new/'
        '%[path,regsub(^/,)]?from=%[req.hdr(host),field(1,:)]&%[query]" code 302'
        for x in redirect
    )
    fixed = section(text, "backend fixed_Http_FixedRule")
    assert (
        'http-request return status 418 content-type "application/json" string '
        '"{\\"tea\\": \\"pot\\"}"' in fixed
    )


def test_double_quoted_escapes_what_haproxy_reads():
    assert double_quoted('a "b" \\ $HOME\n\x01é') == '"a \\"b\\" \\\\ \\$HOME\\n\\x01\\xc3\\xa9"'
    assert double_quoted("50%", log_format=True) == '"50%%"'


def test_long_node_names_keep_sockets_short():
    files = node_files(config.Path("/run/elb-testbed/lab"), "N" * 90 + "-1a")
    assert len(str(files.master_socket)) <= config.SOCKET_PATH_MAX
    assert files.config.parent.name.startswith("N")


@needs_haproxy
@pytest.mark.parametrize("variant", [{}, {"xff": "preserve"}, {"xff": "remove"}])
def test_haproxy_accepts_the_files(tmp_path, variant):
    lb = alb_plan(variant.get("xff", "append"))
    for i in range(len(lb.nodes)):
        path = tmp_path / f"node{i}.cfg"
        path.write_text(cfg(lb, i))
        proc = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "WARNING" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


@needs_haproxy
def test_haproxy_accepts_the_alb_template(tmp_path):
    from testbed.model import load_model
    from testbed.paths import TEMPLATES

    for params in (
        {},
        {
            "WebWeight": "90",
            "CanaryWeight": "10",
            "WebStickiness": "true",
            "WebAlgorithm": "least_outstanding_requests",
            "XffMode": "remove",
        },
    ):
        plan = build_plan(load_model(str(TEMPLATES / "alb.yaml"), params, stack_name="alb"), "alb")
        lb = plan.load_balancers[0]
        path = tmp_path / "alb.cfg"
        path.write_text(cfg(lb))
        proc = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


# ---- HAProxy running the file (loopback) ---------------------------------------------------
@pytest.fixture(scope="module")
def local(lb, tmp_path_factory):
    if not HAVE_HAPROXY:
        pytest.skip("haproxy is not installed")
    alb = LocalAlb(lb, tmp_path_factory.mktemp("alb"))
    with alb:
        yield alb


@needs_haproxy
@pytest.mark.parametrize("case", RULE_CASES, ids=[c.name for c in RULE_CASES])
def test_rule_case_on_haproxy(local, case):
    source = "127.0.0.2" if case.client == "Client2" else "127.0.0.1"
    status, headers, body = local.request(case.path, case.method, case.headers, source)
    assert status == case.status, body
    if case.group:
        import json

        assert json.loads(body)["instance"] in GROUPS[case.group]
    if case.location:
        expected = case.location.replace(":8080", ":8080")
        assert headers["location"] == expected
    if case.body is not None:
        assert body == case.body


@needs_haproxy
def test_weighted_split_on_haproxy(local):
    counts = collections.Counter(local.instance("/weighted/x") for _ in range(2000))
    assert abs(counts["WebA1"] / 2000 - 0.9) < 0.03, counts


@needs_haproxy
def test_forwarded_headers_on_haproxy(local):
    import json

    _s, _h, body = local.request("/", headers={"X-Forwarded-For": "203.0.113.99"})
    seen = json.loads(body)["headers"]
    assert seen["x-forwarded-for"] == "203.0.113.99, 127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-port"] == str(local.port)


@needs_haproxy
def test_lb_cookie_and_group_stickiness_on_haproxy(local):
    _s, headers, _b = local.request("/")
    cookie = headers["set-cookie"].split(";")[0]
    assert cookie.startswith("AWSALB=")
    first = local.instance("/", headers={"Cookie": cookie})
    assert {local.instance("/", headers={"Cookie": cookie}) for _ in range(20)} == {first}
    assert len({local.instance("/") for _ in range(20)}) == 2  # without it: both
    _s, headers, _body = local.request("/group-sticky/x")
    group = headers["set-cookie"].split(";")[0]
    assert group.startswith("AWSALBTG=tg_TgW")
    first = local.instance("/group-sticky/x", headers={"Cookie": group})
    assert {local.instance("/group-sticky/x", headers={"Cookie": group}) for _ in range(20)} == {
        first
    }


@needs_haproxy
def test_access_log_lines_parse(local):
    local.request(
        '/api/x?q="1"', headers={"User-Agent": 'a "quoted" ]agent', "X-Forwarded-For": "192.0.2.1"}
    )
    # HAProxy logs through the node's filter into the file: wait for the request's line.
    lines = wait_for(
        lambda: (text := local.files.access_log.read_text()) and "/api/x?q=" in text and text,
        10,
        "the request's line in the access log",
    ).splitlines()
    records = [parse_line(line) for line in lines]
    assert lines
    assert all(records), [x for x, r in zip(lines, records) if r is None]
    rec = [r for r in records if r.path.startswith("/api/x?q=")][-1]
    assert (rec.server, rec.method, rec.status) == (local.node.host, "GET", 200)
    assert rec.xff == "192.0.2.1"
    assert rec.user_agent == 'a "quoted" ]agent'
    assert rec.local == f"127.0.0.1:{local.port}"


@needs_haproxy
def test_fixed_response_body_survives_quoting(lb, tmp_path):
    body = 'He said "hi" \\ $HOME #not-a-comment %s\ttab\nline2 é'
    rule = next(r for r in lb.listeners[0].rules if r.name == "FixedRule")
    action = dict(
        rule.actions[0],
        fixed_response={"StatusCode": "503", "ContentType": "text/plain", "MessageBody": body},
    )
    listener = replace(
        lb.listeners[0],
        rules=tuple(
            replace(r, actions=(action,)) if r.name == "FixedRule" else r
            for r in lb.listeners[0].rules
        ),
    )
    with LocalAlb(replace(lb, listeners=(listener,)), tmp_path) as alb:
        status, headers, got = alb.request("/teapot")
    assert (status, got, headers["content-type"]) == (503, body, "text/plain")


@needs_haproxy
def test_refused_connection_is_502_and_no_target_is_503(lb, tmp_path):
    from testbed.alb.runtime import cli
    from tests.haproxy_local import free_port

    alb = LocalAlb(lb, tmp_path)
    closed = free_port()  # nothing listens there: the connection is refused
    alb.lb = replace(
        alb.lb,
        target_groups=tuple(
            replace(g, targets=tuple(replace(t, port=closed) for t in g.targets))
            if g.name == "TgPath"
            else g
            for g in alb.lb.target_groups
        ),
    )
    with alb.start():
        status, _h, _b = alb.request("/api/x")
        assert status == 502  # as AWS: the target refused
        for server in ("LorA1_80", "LorB1_80"):
            cli(alb.files.stats_socket, f"set server tg_TgLor/{server} state maint")
        assert alb.request("/lor/x")[0] == 503  # nowhere to send it
