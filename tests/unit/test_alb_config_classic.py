"""haproxy.cfg of Classic Load Balancer nodes, and HAProxy running it on the loopback.

What the file says (frontends, backends, servers at the instance port, PROXY protocol,
stickiness, cross-zone scope, no fail-open), that HAProxy takes it (`haproxy -c`), and what
HAProxy does with it (LocalClb: the node on 127.0.0.1, each instance on an address of its own
in 127.0.1.0/24 with an HTTP server and a TCP echo, as the http-backend role has them): headers,
the PROXY line, 503 / closed connections without a healthy instance, cookies, the access log,
and the runtime API (dynamic servers with send-proxy, draining). No root, no lab.
"""

from __future__ import annotations

import http.client
import http.server
import json
import re
import socket
import socketserver
import subprocess
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from testbed.accesslog import is_connection, parse_line
from testbed.alb import stats
from testbed.alb.config import NodeFiles, node_files, render
from testbed.alb.runtime import NodeRuntime, cli, parse_servers_state
from testbed.alb.servers import (
    MAINT,
    READY,
    cookie_backends,
    node_servers,
    proxy_backends,
    server_states,
)
from testbed.messages import RuntimeTargetInfo
from testbed.plan.balancers import LoadBalancerPlan
from testbed.waiting import wait_for
from tests.haproxy_local import HAVE_HAPROXY, LocalAlb, _Identity, free_port
from tests.unit.test_alb_config import alb_plan, section
from tests.unit.test_plan_classic import (
    APP_COOKIE,
    APP_PORT,
    HTTP_PORT,
    IDLE_S,
    LB,
    TCP_INSTANCE_PORT,
    TCP_PORT,
    clb_plan,
)

needs_haproxy = pytest.mark.skipif(not HAVE_HAPROXY, reason="haproxy is not installed")
HTTP_BE, TCP_BE, APP_BE = (f"ls_{LB}-{p}" for p in (HTTP_PORT, TCP_PORT, APP_PORT))
BACKENDS = (HTTP_BE, TCP_BE, APP_BE)


@pytest.fixture(scope="module")
def lb() -> LoadBalancerPlan:
    return clb_plan()


def cfg(lb: LoadBalancerPlan, node: int = 0, targets: Any = None) -> str:
    n = lb.nodes[node]
    return render(lb, n, node_files(Path("/run/elb-testbed/t"), n.host), targets)


def rows(lb: LoadBalancerPlan, states: dict[str, str], default: str = "healthy") -> list:
    """Registry snapshot rows of the CLB's group: `states` by target key, else `default`."""
    (tg,) = lb.target_groups
    return [
        RuntimeTargetInfo(
            key=t.key, ip=t.ip, port=t.port, az=t.az, state=states.get(t.key, default)
        )
        for t in tg.targets
    ]


def servers(text: str, backend: str) -> list[str]:
    return [x for x in section(text, f"backend {backend}") if x.startswith("server ")]


# ---- the file ------------------------------------------------------------------------------
def test_one_frontend_per_listener_on_the_node_address(lb):
    text = cfg(lb)
    ip = lb.nodes[0].ip
    for port, mode in ((HTTP_PORT, "http"), (TCP_PORT, "tcp"), (APP_PORT, "http")):
        front = section(text, f"frontend {LB}-{port}")
        assert f"mode {mode}" in front
        assert f"bind {ip}:{port}" in front
        assert f"default_backend ls_{LB}-{port}" in front


def test_http_listeners_add_forwarded_headers_tcp_ones_nothing(lb):
    text = cfg(lb)
    http = section(text, f"frontend {LB}-{HTTP_PORT}")
    assert "http-request set-header X-Forwarded-Proto http" in http
    assert f"http-request set-header X-Forwarded-Port {HTTP_PORT}" in http
    assert any("X-Forwarded-For" in x and "%[src]" in x for x in http)
    tcp = section(text, f"frontend {LB}-{TCP_PORT}")
    assert not any(x.startswith("http-") for x in tcp)
    assert any(" TCP " in x for x in tcp if x.startswith("log-format"))


def test_backends_per_listener_at_the_instance_port(lb):
    text = cfg(lb, targets={LB: rows(lb, {})})
    http, tcp = section(text, f"backend {HTTP_BE}"), section(text, f"backend {TCP_BE}")
    assert "balance leastconn" in http
    assert "mode http" in http
    assert "balance roundrobin" in tcp
    assert "mode tcp" in tcp
    # Cross-zone off: node 1a has the instances of its own AZ only.
    assert servers(text, HTTP_BE) == ["server WebA1_80 10.0.1.4:80", "server WebA2_80 10.0.1.5:80"]
    assert servers(text, TCP_BE) == [
        f"server WebA1_80 10.0.1.4:{TCP_INSTANCE_PORT} send-proxy",
        f"server WebA2_80 10.0.1.5:{TCP_INSTANCE_PORT} send-proxy",
    ]
    assert not any("send-proxy" in x for x in servers(text, HTTP_BE) + servers(text, APP_BE))


def test_cross_zone_puts_every_instance_behind_every_node():
    lb = clb_plan(cross_zone=True)
    for node in (0, 1):
        text = cfg(lb, node, {LB: rows(lb, {})})
        assert [s.split()[1] for s in servers(text, HTTP_BE)] == [
            "WebA1_80",
            "WebA2_80",
            "WebB1_80",
        ]
    off = clb_plan()
    assert [s.split()[1] for s in servers(cfg(off, 1, {LB: rows(off, {})}), HTTP_BE)] == [
        "WebB1_80"
    ]


def test_lb_cookie_is_a_session_cookie_unless_it_expires(lb):
    back = section(cfg(lb), f"backend {HTTP_BE}")
    assert "cookie AWSELB insert dynamic" in back
    assert not any("maxlife" in x or "Max-Age" in x for x in back)
    keys = {x for n in (0, 1) for x in section(cfg(lb, n), f"backend {HTTP_BE}") if "key" in x}
    assert len(keys) == 1  # the same key on both nodes: either honours the other's cookie
    expiring = section(cfg(clb_plan(expiration=600)), f"backend {HTTP_BE}")
    assert 'cookie AWSELB insert maxlife 600s dynamic attr "Max-Age=600"' in expiring


def test_app_cookie_sticks_on_the_applications_cookie(lb):
    back = section(cfg(lb), f"backend {APP_BE}")
    assert f"stick on req.cook({APP_COOKIE})" in back
    assert f"stick store-response res.cook({APP_COOKIE})" in back
    assert not any(x.startswith("cookie ") for x in back)
    assert not any(x.startswith(("cookie", "stick")) for x in section(cfg(lb), f"backend {TCP_BE}"))


def test_idle_timeout_from_connection_settings():
    text = cfg(clb_plan(idle_s=120))
    defaults = section(text, "defaults")
    for what in ("client", "server", "http-keep-alive"):
        assert f"timeout {what} 120s" in defaults
    assert "timeout connect 10s" in defaults  # as the ALB's


@pytest.mark.parametrize(
    ("states", "ready"),
    [
        ({}, {"WebA1_80", "WebA2_80"}),
        ({"WebA1:80": "unhealthy"}, {"WebA2_80"}),
        ({"WebA1:80": "unhealthy", "WebA2:80": "unhealthy"}, set()),  # no fail-open
        ({"WebA1:80": "initial", "WebA2:80": "initial"}, set()),  # not InService yet
        ({"WebA1:80": "draining"}, {"WebA2_80"}),
    ],
)
def test_only_healthy_instances_take_connections(lb, states, ready):
    got = server_states(lb, lb.nodes[0], lb.target_groups[0], rows(lb, states))
    assert {name for name, (_ip, _port, state) in got.items() if state == READY} == ready
    assert set(got) == {"WebA1_80", "WebA2_80"}  # draining and unhealthy ones stay, in maint


def test_an_alb_still_fails_open():
    alb = alb_plan()
    tg = alb.target_group("TgLor")
    unhealthy = [
        RuntimeTargetInfo(key=t.key, ip=t.ip, port=t.port, az=t.az, state="unhealthy")
        for t in tg.targets
    ]
    got = server_states(alb, alb.nodes[0], tg, unhealthy)
    assert got
    assert all(state == READY for _ip, _port, state in got.values())


def test_node_start_serves_nothing_until_health_checks_pass(lb):
    text = cfg(lb)  # every instance `initial`
    for be in (HTTP_BE, TCP_BE, APP_BE):
        assert all(x.endswith(" disabled") for x in servers(text, be))
    assert "http-request return status 503 if { nbsrv lt 1 }" in section(text, f"backend {HTTP_BE}")


def test_runtime_keys_are_per_listener_backend_at_the_instance_port(lb):
    want = node_servers(lb, lb.nodes[0], {LB: rows(lb, {"WebA2:80": "unhealthy"})})
    assert want == {
        (HTTP_BE, "WebA1_80"): ("10.0.1.4", 80, READY),
        (HTTP_BE, "WebA2_80"): ("10.0.1.5", 80, MAINT),
        (TCP_BE, "WebA1_80"): ("10.0.1.4", TCP_INSTANCE_PORT, READY),
        (TCP_BE, "WebA2_80"): ("10.0.1.5", TCP_INSTANCE_PORT, MAINT),
        (APP_BE, "WebA1_80"): ("10.0.1.4", 80, READY),
        (APP_BE, "WebA2_80"): ("10.0.1.5", 80, MAINT),
    }
    node = NodeRuntime(lb, lb.nodes[0], node_files(Path("/run/elb-testbed/t"), "MyCLB-1a"))
    assert node.desired({LB: {LB: rows(lb, {"WebA2:80": "unhealthy"})}}) == want
    assert cookie_backends(lb) == {HTTP_BE}
    assert proxy_backends(lb) == {TCP_BE}


@needs_haproxy
@pytest.mark.parametrize("cross_zone", [False, True])
def test_haproxy_accepts_the_files(tmp_path, cross_zone):
    lb = clb_plan(cross_zone=cross_zone, expiration=300)
    for i, node in enumerate(lb.nodes):
        for states in (None, {LB: rows(lb, {"WebA1:80": "draining", "WebB1:80": "unhealthy"})}):
            path = tmp_path / f"{i}.cfg"
            path.write_text(render(lb, node, node_files(tmp_path, node.host), states))
            proc = subprocess.run(
                ["haproxy", "-c", "-f", str(path)], capture_output=True, text=True
            )
            assert proc.returncode == 0, proc.stdout + proc.stderr
            assert "WARNING" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


# ---- HAProxy on the loopback ---------------------------------------------------------------
class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


class _CookieIdentity(_Identity):
    """_Identity that sets the application's cookie when asked (?setcookie=VALUE)."""

    def end_headers(self) -> None:
        if "setcookie=" in self.path:
            self.send_header("Set-Cookie", f"{APP_COOKIE}={self.path.split('setcookie=')[1]}")
        super().end_headers()


class _Quiet:
    """A server that says nothing when HAProxy resets a connection (a drained server's
    sessions shut down, idle connections closed when HAProxy stops)."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class _HttpServer(_Quiet, http.server.ThreadingHTTPServer):
    daemon_threads = True


class _EchoServer(_Quiet, socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class Instance:
    """An instance on its own loopback address: HTTP (_CookieIdentity) and a TCP echo."""

    def __init__(self, name: str, ip: str, http_port: int, tcp_port: int) -> None:
        self.http = _HttpServer((ip, http_port), _CookieIdentity)
        self.http.name = name  # what _Identity answers as "instance"
        self.echo = _EchoServer((ip, tcp_port), _Echo)
        for server in (self.http, self.echo):
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        for server in (self.http, self.echo):
            server.shutdown()
            server.server_close()


def _ports_free_on(ips: list[str], count: int) -> list[int]:
    """`count` ports free on every address of `ips`."""
    out: list[int] = []
    while len(out) < count:
        port = free_port()
        try:
            for ip in ips:
                with socket.socket() as s:
                    s.bind((ip, port))
        except OSError:
            continue
        if port not in out:
            out.append(port)
    return out


class LocalClb(LocalAlb):
    """One node of a CLB on 127.0.0.1; instance i on 127.0.1.(i+1), every one listening on
    the same two (free) ports as the listeners' InstancePorts: HTTP and the TCP echo."""

    def __init__(self, lb: LoadBalancerPlan, tmp: Path, node_index: int = 0) -> None:
        self.tmp = Path(tmp)
        (tg,) = lb.target_groups
        self.ips = {t.key: f"127.0.1.{i + 1}" for i, t in enumerate(tg.targets)}
        self.http_port, self.tcp_port = _ports_free_on(list(self.ips.values()), 2)
        self.backends = {
            t.host or t.id: Instance(t.host or t.id, self.ips[t.key], self.http_port, self.tcp_port)
            for t in tg.targets
        }
        self.ports = {lis.port: free_port() for lis in lb.listeners}
        self.port = self.ports[HTTP_PORT]
        local = {80: self.http_port, TCP_INSTANCE_PORT: self.tcp_port}
        self.lb = replace(
            lb,
            nodes=tuple(
                replace(n, ip="127.0.0.1") if i == node_index else n for i, n in enumerate(lb.nodes)
            ),
            listeners=tuple(
                replace(lis, port=self.ports[lis.port], instance_port=local[lis.instance_port])
                for lis in lb.listeners
            ),
            target_groups=(
                replace(
                    tg,
                    port=self.http_port,
                    targets=tuple(replace(t, ip=self.ips[t.key]) for t in tg.targets),
                ),
            ),
        )
        self.node = self.lb.nodes[node_index]
        self.files = NodeFiles(
            self.tmp,
            self.tmp / "haproxy.cfg",
            self.tmp / "haproxy.sock",
            self.tmp / "master.sock",
            self.tmp / "access.log",
            self.tmp / "haproxy.log",
        )
        self.proc = None

    def group(self, states: dict[str, str], default: str = "healthy") -> dict[str, list]:
        """{target group: rows}, as render takes them."""
        return {LB: rows(self.lb, states, default)}

    def snapshot(self, states: dict[str, str], default: str = "healthy") -> dict[str, dict]:
        """{load balancer: {target group: rows}}, as the registry's snapshot."""
        return {LB: self.group(states, default)}

    def echo(self, data: bytes, conn: socket.socket | None = None) -> bytes:
        """Send `data` on the TCP listener (on `conn` if given); what comes back (b"" when
        the node closes the connection)."""
        own = conn is None
        sock = conn or socket.create_connection(("127.0.0.1", self.ports[TCP_PORT]), timeout=5)
        try:
            sock.sendall(data)
            got = b""
            while not got.endswith(data):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got += chunk
            return got
        finally:
            if own:
                sock.close()


def running(lb: LoadBalancerPlan, tmp: Path, states: dict[str, str] | None = None) -> LocalClb:
    """A LocalClb started with its instances' states (`healthy` unless `states` says)."""
    clb = LocalClb(lb, tmp)
    clb.start(clb.group(states or {}))
    return clb


@needs_haproxy
def test_http_and_tcp_listeners_through_haproxy(tmp_path, lb):
    with running(lb, tmp_path) as clb:
        status, _headers, body = clb.request("/x?a=1", headers={"X-Forwarded-For": "192.0.2.7"})
        assert status == 200
        got = json.loads(body)
        assert got["instance"] in ("WebA1", "WebA2")  # cross-zone off: node 1a's AZ only
        assert got["headers"]["x-forwarded-for"] == "192.0.2.7, 127.0.0.1"
        assert got["headers"]["x-forwarded-proto"] == "http"
        assert got["headers"]["x-forwarded-port"] == str(clb.port)
        # TCP: the instance's echo answers, after the PROXY v1 line the node sent first.
        answer = clb.echo(b"hello\n")
        line = re.match(rb"PROXY TCP4 127\.0\.0\.1 127\.0\.0\.1 (\d+) (\d+)\r\nhello\n$", answer)
        assert line, answer
        assert int(line.group(2)) == clb.ports[TCP_PORT]
        # Round robin over both instances of the AZ, one per connection.
        instances = {clb.instance("/who") for _ in range(6)}
        assert instances == {"WebA1", "WebA2"}
    lines = [parse_line(x) for x in clb.files.access_log.read_text().splitlines()]
    assert all(lines), lines
    tcp = [r for r in lines if r and is_connection(r)]
    assert len(tcp) == 1
    assert (tcp[0].path, tcp[0].status, tcp[0].xff) == ("-", 0, "-")
    assert tcp[0].bytes == len(answer)
    assert tcp[0].local == f"127.0.0.1:{clb.ports[TCP_PORT]}"
    http_lines = [r for r in lines if r and not is_connection(r)]
    assert http_lines[0].path == "/x?a=1"
    assert http_lines[0].status == 200
    assert http_lines[0].xff == "192.0.2.7"


@needs_haproxy
def test_no_healthy_instance_503_and_closed_connections(tmp_path, lb):
    with LocalClb(lb, tmp_path) as clb:  # node start: every instance `initial`
        status, headers, body = clb.request("/")
        assert (status, body) == (503, "")
        assert "server" not in headers
        assert clb.echo(b"hello\n") == b""  # closed, nothing passed on
        # All unhealthy: still no fail-open.
        node = NodeRuntime(clb.lb, clb.node, clb.files)
        node.sync(node.desired(clb.snapshot({}, default="unhealthy")))
        assert clb.request("/")[0] == 503
        node.sync(node.desired(clb.snapshot({"WebA2:80": "healthy"}, default="unhealthy")))
        assert {clb.instance("/") for _ in range(4)} == {"WebA2"}
    lines = [parse_line(x) for x in clb.files.access_log.read_text().splitlines()]
    assert [r.status for r in lines if r and not is_connection(r)][:2] == [503, 503]


@needs_haproxy
def test_awselb_cookie_keeps_a_client_on_its_instance(tmp_path, lb):
    with running(lb, tmp_path) as clb:
        _s, headers, body = clb.request("/")
        cookie = headers["set-cookie"]
        assert cookie.startswith("AWSELB=")
        assert "max-age" not in cookie.lower()
        assert "expires" not in cookie.lower()
        first = json.loads(body)["instance"]
        value = cookie.split(";")[0]
        assert {clb.instance("/", headers={"Cookie": value}) for _ in range(6)} == {first}


@needs_haproxy
def test_app_cookie_keeps_a_client_on_the_instance_that_set_it(tmp_path, lb):
    with running(lb, tmp_path) as clb:
        app = clb.ports[APP_PORT]

        def get(path: str, cookie: str | None = None) -> tuple[str, str | None]:
            conn = http.client.HTTPConnection("127.0.0.1", app, timeout=5)
            try:
                conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
                resp = conn.getresponse()
                return json.loads(resp.read())["instance"], resp.getheader("Set-Cookie")
            finally:
                conn.close()

        owner, set_cookie = get("/?setcookie=abc")
        assert set_cookie == f"{APP_COOKIE}=abc"  # the application's, passed on untouched
        assert {get("/", f"{APP_COOKIE}=abc")[0] for _ in range(6)} == {owner}
        assert {get("/")[0] for _ in range(6)} == {"WebA1", "WebA2"}  # no cookie: spread


@needs_haproxy
def test_runtime_adds_proxy_servers_and_drains(tmp_path, lb):
    only_a1 = {"WebA2:80": "unused"}  # out of the node's scope: not a server at all
    with running(lb, tmp_path, only_a1) as clb:
        node = NodeRuntime(clb.lb, clb.node, clb.files)
        assert node.sync(node.desired(clb.snapshot(only_a1))) == []
        long = socket.create_connection(("127.0.0.1", clb.ports[TCP_PORT]), timeout=5)
        assert clb.echo(b"one\n", long).startswith(b"PROXY TCP4 ")  # on WebA1, the only one
        # WebA2 registered at run time and healthy: dynamic servers, send-proxy on TCP.
        sent = node.sync(node.desired(clb.snapshot({})))
        assert sorted(sent) == sorted(f"add {be}/WebA2_80 (ready)" for be in BACKENDS)
        assert {clb.echo(b"x\n").startswith(b"PROXY TCP4 ") for _ in range(4)} == {True}
        assert {clb.instance("/") for _ in range(6)} == {"WebA1", "WebA2"}
        cookies = {clb.request("/")[1]["set-cookie"].split(";")[0] for _ in range(4)}
        assert len(cookies) == 2  # the added server has an AWSELB value of its own
        # Draining WebA1: its established TCP connection goes on; new requests go to WebA2.
        assert node.sync(node.desired(clb.snapshot({"WebA1:80": "draining"}))) == [
            f"{be}/WebA1_80 maint" for be in BACKENDS
        ]
        assert clb.echo(b"two\n", long).endswith(b"two\n")
        assert {clb.instance("/") for _ in range(4)} == {"WebA2"}
        # Delay over, the registry drops it: its connections end, its servers go.
        gone = {LB: {LB: [r for r in rows(clb.lb, {}) if r["key"] != "WebA1:80"]}}
        sent = node.sync(node.desired(gone))
        assert sorted(sent) == sorted(f"del {be}/WebA1_80" for be in BACKENDS)
        wait_for(lambda: _closed(long), 5, "the drained connection to close")
        long.close()
        assert node.in_sync(node.desired(gone))
        assert not {
            k
            for k in parse_servers_state(cli(clb.files.stats_socket, "show servers state"))
            if k[1] == "WebA1_80"
        }


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(65536) == b""
    except OSError:
        return True


@needs_haproxy
def test_aws_elb_metrics_from_show_stat(tmp_path, lb):
    with running(lb, tmp_path) as clb:
        for _ in range(3):
            assert clb.request("/")[0] == 200
        assert clb.request("/?status=404")[0] == 404
        clb.echo(b"abc\n")
        clb.echo(b"def\n")
        node = NodeRuntime(clb.lb, clb.node, clb.files)
        node.sync(node.desired(clb.snapshot({}, default="unhealthy")))
        assert clb.request("/")[0] == 503
        protocols = {lis.name: lis.protocol or "TCP" for lis in clb.lb.listeners}
        got = {
            m: v
            for m, _tg, _t, v, _u, _k in stats.classic_metrics(
                stats.read_nodes([clb.files.stats_socket]), protocols
            )
        }
    assert got["RequestCount"] == 5 + 2  # HTTP requests + TCP connections made
    assert got["HTTPCode_Backend_2XX"] == 3
    assert got["HTTPCode_Backend_4XX"] == 1
    assert got["HTTPCode_ELB_5XX"] == 1  # no healthy instance
    assert got["BackendConnectionErrors"] == 0
    assert got["SurgeQueueLength"] == 0
    assert got["Latency"] >= 0
    assert got["EstimatedProcessedBytes"] > 0


def test_idle_timeout_default(lb):
    assert f"timeout client {IDLE_S}s" in section(cfg(lb), "defaults")
