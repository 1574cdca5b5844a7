"""The Classic Load Balancer on a real lab (issue 13): HTTP and TCP listeners and what the
instance sees of the client, the PROXY protocol, health-check target strings and
describe-instance-health, cross-zone off by default, no fail-open, draining on and off,
register / deregister at run time, AWSELB and application cookies, access logs, DNS.

One lab (tests/classic_data.py: four CLBs over four http-backend instances) serves the
module; every request is made by a real client on the internet segment, through a node's
public address (the gateway's 1:1 NAT, then the node's HAProxy) or the CLB's DNS name.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import threading
import time
from typing import Any

import pytest

from testbed.accesslog import is_connection, parse_line
from testbed.alb import stats
from testbed.alb.config import node_files
from testbed.alb.runtime import cli
from testbed.cli import main
from testbed.lab.api import REMOVED, Lab, random_name
from testbed.lab.classic_health import (
    DEREGISTERING,
    FAILED,
    NOT_IN_ZONE,
    NOT_YET_HEALTHY,
    REGISTERING,
)
from testbed.traffic import run_load
from tests.assertions import run_cli
from tests.classic_data import (
    APP_COOKIE,
    APP_COOKIE_PORT,
    CLIENT2_IP,
    CLIENT_IP,
    DETECT_S,
    DRAIN_S,
    HTTP_PORT,
    LB,
    LB_COOKIE_PORT,
    LB_NAME,
    MEMBERS,
    PATH_LB,
    SSL_LB,
    TCP_PORT,
    ZONE_LB,
    clb_template,
)
from tests.restore import restoring

pytestmark = pytest.mark.integration
LAB_NAME = random_name("ce")
AZ_A, AZ_B = "us-east-1a", "us-east-1b"
# An in-flight request, long enough to deregister its instance and look at it meanwhile (on
# a busy machine too), shorter than the draining timeout (DRAIN_S).
SLOW_MS = 7000
# describe-instance-health states (prefixes of State, ReasonCode, Description)
IN = ("InService", "N/A", "N/A")
DOWN = ("OutOfService", "Instance", FAILED)  # failed UnhealthyThreshold checks
NOT_HERE = ("OutOfService", "ELB", NOT_IN_ZONE)  # its AZ is not one of the CLB's


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Every instance of MyCLB and ZoneCLB InService; PathCLB's and SslCLB's OutOfService
    for good (their checks can never pass): what each test starts from and leaves behind."""
    path = tmp_path_factory.mktemp("clb") / "clb.yaml"
    path.write_text(clb_template())
    with Lab.up(str(path), name=LAB_NAME) as lab:
        for lb in (LB, ZONE_LB):
            in_service = lab.wait_in_service(lb, len(MEMBERS[lb]), DETECT_S + 20)
            assert {r["Host"] for r in in_service} == set(MEMBERS[lb])
        wait_health(lab, PATH_LB, {"WebA1": DOWN, "WebB2": NOT_HERE}, DETECT_S)
        wait_health(lab, SSL_LB, {"WebB1": DOWN}, DETECT_S)
        yield lab


# ---- helpers -------------------------------------------------------------------------------
def health(lab: Lab, lb: str) -> dict[str, dict[str, Any]]:
    """describe-instance-health's InstanceStates of `lb` (Lab API), by instance host."""
    return {row["Host"]: row for row in lab.instance_health(lb)}


def states(lab: Lab, lb: str) -> dict[str, tuple[str, str]]:
    return {h: (r["State"], r["ReasonCode"]) for h, r in health(lab, lb).items()}


def wait_health(lab: Lab, lb: str, want: dict[str, tuple[str, ...]], timeout: float) -> float:
    """Wait until `lb`'s instances are exactly those of `want`, each as its tuple says: a
    prefix of (State, ReasonCode, Description); the seconds it took."""
    started = time.monotonic()

    def reached() -> bool:
        got = health(lab, lb)
        return got.keys() == want.keys() and all(
            (r["State"], r["ReasonCode"], r["Description"])[: len(want[h])] == want[h]
            for h, r in got.items()
        )

    lab.wait_for(reached, timeout, f"{lb}'s instances {want}", 0.2, lambda: states(lab, lb))
    return time.monotonic() - started


def lb_entry(lab: Lab, lb: str) -> dict[str, Any]:
    return next(x for x in lab.state["load_balancers"] if x["name"] == lb)


def node(lab: Lab, lb: str, az: str) -> dict[str, Any]:
    """The node of `lb` in `az`: {az, ip, public_ip, host}."""
    return next(n for n in lb_entry(lab, lb)["nodes"] if n["az"] == az)


def url(lab: Lab, lb: str, az: str, port: int = HTTP_PORT, path: str = "/") -> str:
    return f"http://{node(lab, lb, az)['public_ip']}:{port}{path}"


def curl(
    lab: Lab,
    client: str,
    target: str,
    headers: dict[str, str] | None = None,
    local_port: int | None = None,
) -> tuple[int, dict[str, str], str]:
    """One request with curl in `client` (from `local_port`, if given): (status, headers
    lower-cased, body)."""
    argv = ["curl", "-s", "-i", "-m", "5"]
    for k, v in (headers or {}).items():
        argv += ["-H", f"{k}: {v}"]
    if local_port:
        argv += ["--local-port", str(local_port)]
    proc = lab.host(client).run([*argv, target], timeout=15)
    assert proc.returncode == 0, f"curl {target}: exit {proc.returncode} {proc.stderr}"
    text = proc.stdout.replace("\r\n", "\n")
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    got: dict[str, str] = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        got.setdefault(k.strip().lower(), v.strip())
    return int(lines[0].split()[1]), got, body


def fresh_port() -> int:
    """A client port no earlier connection of this run used (its lines are its own)."""
    return 40000 + time.time_ns() // 1000 % 20000


def seen(lab: Lab, client: str, target: str, **kw: Any) -> dict[str, Any]:
    """What the instance that answered saw (its JSON answer)."""
    status, _h, body = curl(lab, client, target, **kw)
    assert status == 200, body
    return json.loads(body)


def answering(lab: Lab, target: str, requests: int = 30, client: str = "Client1") -> set[str]:
    """The instances that answered `requests` requests to `target` (every one a 200)."""
    df = run_load(lab, client, target, requests=requests, concurrency=3)
    assert df["error"].isna().all(), df[df["error"].notna()].head()
    assert (df["status"] == 200).all(), df["status"].value_counts()
    return set(df["backend"])


def in_flight(lab: Lab, lb: str, az: str) -> int:
    """Requests that `lb`'s node in `az` has sent to instances and not yet finished (the
    current sessions of its servers, every listener)."""
    sock = node_files(lab.dir, node(lab, lb, az)["host"]).stats_socket
    rows = stats.parse_stat(cli(sock, "show stat"))
    return sum(int(r["scur"] or 0) for r in rows if r["svname"] not in ("FRONTEND", "BACKEND"))


def slow_requests(lab: Lab, target: str, out: dict[str, Any]) -> threading.Thread:
    """Two requests that take SLOW_MS each, from Client2, started in a thread."""

    def run() -> None:
        out["df"] = run_load(
            lab, "Client2", f"{target}?delay_ms={SLOW_MS}", requests=2, concurrency=2, timeout=15
        )

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def cli_ok(*args: str) -> str:
    proc = run_cli(*args, timeout=60)
    assert proc.returncode == 0, f"testbed {' '.join(args)}: exit {proc.returncode}\n{proc.stderr}"
    return proc.stdout


def cli_now(*args: str) -> str:
    """`testbed ARGS` in this process (its output captured): the command's own code without
    a new interpreter's start-up (seconds on a busy machine), where a window is short."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    assert code == 0, f"testbed {' '.join(args)}: exit {code}\n{err.getvalue()}"
    return out.getvalue()


# ---- DNS, listeners, what the instance sees ------------------------------------------------
def test_ref_is_the_name_and_the_dns_name_resolves_to_the_nodes(lab):
    assert lab.outputs["ClbName"] == LB_NAME
    dns = lab.outputs["DnsName"]
    assert re.fullmatch(rf"{LB_NAME}-\d{{10}}\.us-east-1\.elb\.amazonaws\.com", dns), dns
    assert lb_entry(lab, LB)["dns_name"] == dns
    public = sorted(n["public_ip"] for n in lb_entry(lab, LB)["nodes"])
    for host in ("Client1", "WebA1"):
        assert sorted(lab.host(host).run(["dig", "+short", dns]).stdout.split()) == public, host
    # The internet client reaches the CLB by its name; the name hands out both nodes.
    assert seen(lab, "Client1", f"http://{dns}/")["instance"] in MEMBERS[LB]
    df = run_load(lab, "Client1", f"http://{dns}/", requests=60, concurrency=6)
    assert df["error"].isna().all()
    assert set(df["backend_az"]) == {AZ_A, AZ_B}


def test_http_listener_sees_the_node_and_forwards_the_client(lab):
    a = node(lab, LB, AZ_A)
    got = seen(lab, "Client1", url(lab, LB, AZ_A))
    assert got["client"]["ip"] == a["ip"]  # the CLB proxies: the node's private address
    assert got["forwarded"] == {
        "x-forwarded-for": CLIENT_IP,
        "x-forwarded-proto": "http",
        "x-forwarded-port": "80",
    }
    assert got["proxy"] is None
    # Another client, another listener (81: same instance port), the other node.
    got = seen(lab, "Client2", url(lab, LB, AZ_B, LB_COOKIE_PORT))
    assert got["client"]["ip"] == node(lab, LB, AZ_B)["ip"]
    assert got["forwarded"]["x-forwarded-for"] == CLIENT2_IP
    assert got["forwarded"]["x-forwarded-port"] == str(LB_COOKIE_PORT)
    # A client's own X-Forwarded-For is kept, the client's address appended.
    got = seen(lab, "Client1", url(lab, LB, AZ_A), headers={"X-Forwarded-For": "203.0.113.9"})
    assert got["forwarded"]["x-forwarded-for"] == f"203.0.113.9, {CLIENT_IP}"


def test_tcp_listener_sees_the_node_and_adds_nothing(lab):
    for az in (AZ_A, AZ_B):
        got = seen(lab, "Client1", url(lab, LB, az, TCP_PORT))
        assert got["client"]["ip"] == node(lab, LB, az)["ip"]  # not 198.51.100.10
        # Layer 4: the request reaches the instance as the client sent it.
        assert got["forwarded"] == {}
        assert got["proxy"] is None  # no policy on MyCLB
        assert got["host"] == f"{node(lab, LB, az)['public_ip']}:{TCP_PORT}"


def test_proxy_protocol_tells_the_instance_the_real_client(lab):
    a = node(lab, ZONE_LB, AZ_A)
    port = fresh_port()
    got = seen(lab, "Client1", url(lab, ZONE_LB, AZ_A, TCP_PORT), local_port=port)
    assert got["client"]["ip"] == a["ip"]  # the connection still comes from the node
    proxy = got["proxy"]
    assert (proxy["version"], proxy["protocol"]) == (1, "TCP4")  # a CLB sends PROXY v1
    assert (proxy["source_ip"], proxy["source_port"]) == (CLIENT_IP, port)
    # Where the client connected: the node (its private address, behind the 1:1 NAT).
    assert proxy["destination_ip"] in (a["ip"], a["public_ip"])
    assert proxy["destination_port"] == TCP_PORT
    assert got["forwarded"] == {}
    got = seen(lab, "Client2", url(lab, ZONE_LB, AZ_B, TCP_PORT))
    assert got["proxy"]["source_ip"] == CLIENT2_IP
    assert got["client"]["ip"] == node(lab, ZONE_LB, AZ_B)["ip"]
    # The HTTP listener of the same CLB, same instance port: X-Forwarded-For, no header.
    got = seen(lab, "Client1", url(lab, ZONE_LB, AZ_A))
    assert got["proxy"] is None
    assert got["forwarded"]["x-forwarded-for"] == CLIENT_IP


# ---- health --------------------------------------------------------------------------------
def test_instance_health_as_describe_instance_health_shows_it(lab):
    assert states(lab, LB) == dict.fromkeys(MEMBERS[LB], ("InService", "N/A"))
    assert states(lab, ZONE_LB) == dict.fromkeys(MEMBERS[ZONE_LB], ("InService", "N/A"))  # TCP:80
    # HTTP:80/health?status=404: the target's path (its query too) answers 404.
    path = health(lab, PATH_LB)
    assert (path["WebA1"]["State"], path["WebA1"]["ReasonCode"]) == ("OutOfService", "Instance")
    assert path["WebA1"]["Description"] == FAILED
    assert "404" in path["WebA1"]["LastCheck"]
    # WebB2's AZ is not one of PathCLB's.
    assert (path["WebB2"]["State"], path["WebB2"]["ReasonCode"]) == ("OutOfService", "ELB")
    assert path["WebB2"]["Description"] == NOT_IN_ZONE
    # SSL:80: the instance answers plain HTTP on 80 (MyCLB's HTTP:80 check passes on the
    # same instance), no TLS handshake succeeds.
    ssl = health(lab, SSL_LB)["WebB1"]
    assert (ssl["State"], ssl["ReasonCode"], ssl["Description"]) == (
        "OutOfService",
        "Instance",
        FAILED,
    )
    assert ssl["InstanceId"].startswith("i-")
    # The CLI prints the same view, as `aws elb describe-instance-health` does.
    printed = json.loads(cli_ok("targets", lab.name, PATH_LB, "--json"))
    rows = {r["InstanceId"]: r for r in printed["InstanceStates"]}
    assert {r["Host"] for r in rows.values()} == {"WebA1", "WebB2"}
    for row in printed["InstanceStates"]:
        want = path[row["Host"]]
        assert (row["State"], row["ReasonCode"], row["Description"]) == (
            want["State"],
            want["ReasonCode"],
            want["Description"],
        )
    table = cli_ok("targets", lab.name, PATH_LB).splitlines()
    rows_text = {line.split()[0]: line.split()[1:3] for line in table if line.startswith("i-")}
    assert rows_text == {
        path["WebA1"]["InstanceId"]: ["OutOfService", "Instance"],
        path["WebB2"]["InstanceId"]: ["OutOfService", "ELB"],
    }


@pytest.mark.serial  # a bound on detection time (interval x threshold): measured on a quiet machine
def test_http_check_fails_an_instance_that_a_tcp_check_keeps(lab):
    """WebA1 answers every request 500: MyCLB's HTTP:80/health takes it out of service,
    ZoneCLB's TCP:80 (a connection is enough) keeps it; back InService when it is repaired."""
    with restoring(lab, faulted=["WebA1"]):
        lab.host("WebA1").fault("500")
        took = wait_health(lab, LB, {"WebA1": DOWN, "WebA2": IN, "WebB1": IN}, DETECT_S)
        assert took <= DETECT_S
        assert health(lab, LB)["WebA1"]["Description"] == FAILED
        assert answering(lab, url(lab, LB, AZ_A)) == {"WebA2"}
        assert states(lab, ZONE_LB)["WebA1"] == ("InService", "N/A")
        lab.host("WebA1").fault("clear")
        wait_health(lab, LB, dict.fromkeys(MEMBERS[LB], IN), DETECT_S)
        assert answering(lab, url(lab, LB, AZ_A)) == {"WebA1", "WebA2"}


def test_no_fail_open_when_no_instance_is_in_service(lab):
    # HTTP listener: the node answers 503 itself (an ALB would fail open).
    for _ in range(3):
        status, _h, body = curl(lab, "Client1", url(lab, PATH_LB, AZ_A))
        assert status == 503, body
        assert "instance" not in body
    # TCP listener: the connection is closed without an answer.
    proc = lab.host("Client1").run(["curl", "-s", "-m", "5", url(lab, SSL_LB, AZ_B)], timeout=15)
    assert proc.returncode in (52, 56), (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == ""


# ---- cross-zone ----------------------------------------------------------------------------
def test_cross_zone_is_off_by_default(lab):
    assert answering(lab, url(lab, LB, AZ_A)) == {"WebA1", "WebA2"}
    assert answering(lab, url(lab, LB, AZ_B)) == {"WebB1"}
    assert answering(lab, url(lab, LB, AZ_A, TCP_PORT)) == {"WebA1", "WebA2"}


def test_cross_zone_on_reaches_both_zones_from_either_node(lab):
    for az in (AZ_A, AZ_B):
        assert answering(lab, url(lab, ZONE_LB, az)) == {"WebA1", "WebB1"}, az


# ---- draining, register / deregister -------------------------------------------------------
@pytest.mark.serial  # a bound on the draining time: measured on a quiet machine
def test_draining_lets_the_in_flight_request_finish(lab):
    """ConnectionDrainingPolicy on (8 s): WebA1, deregistered (CLI) while a slow request is on
    it, is InService "deregistration in progress", gets no new request, finishes the slow
    one, leaves when the timeout is over; `testbed register` brings it back."""
    a_url = url(lab, LB, AZ_A)
    out: dict[str, Any] = {}
    with restoring(lab):
        thread = slow_requests(lab, a_url, out)
        try:
            # Least outstanding requests: one on each of the node's instances.
            lab.wait_for(
                lambda: in_flight(lab, LB, AZ_A) == 2,
                10,
                "the two slow requests in flight",
                last=lambda: in_flight(lab, LB, AZ_A),
            )
            cli_now("deregister", lab.name, LB, "WebA1")
            row = health(lab, LB)["WebA1"]
            assert (row["State"], row["Description"]) == ("InService", DEREGISTERING)
            printed = json.loads(cli_now("targets", lab.name, LB, "--json"))["InstanceStates"]
            assert {(r["Host"], r["State"], r["Description"]) for r in printed} == {
                ("WebA1", "InService", DEREGISTERING),
                ("WebA2", "InService", "N/A"),
                ("WebB1", "InService", "N/A"),
            }
            assert answering(lab, a_url, requests=20) == {"WebA2"}
        finally:
            thread.join()
        slow = out["df"]
        assert (slow["status"] == 200).all(), slow
        assert set(slow["backend"]) == {"WebA1", "WebA2"}
        took = lab.wait_target_state(LB, "WebA1", REMOVED, DRAIN_S + 5)
        assert "WebA1" not in health(lab, LB)
        assert took <= DRAIN_S + 2
        cli_ok("register", lab.name, LB, "WebA1")
        wait_health(lab, LB, dict.fromkeys(MEMBERS[LB], IN), DETECT_S)
        assert answering(lab, a_url) == {"WebA1", "WebA2"}


@pytest.mark.serial  # a bound on the draining time: measured on a quiet machine
def test_draining_off_cuts_the_in_flight_request(lab):
    """ZoneCLB has no ConnectionDrainingPolicy: WebB1, deregistered with a slow request on it,
    leaves at once and that request is cut; WebA1's finishes."""
    a_url = url(lab, ZONE_LB, AZ_A)
    out: dict[str, Any] = {}
    with restoring(lab):
        thread = slow_requests(lab, a_url, out)
        try:
            lab.wait_for(
                lambda: in_flight(lab, ZONE_LB, AZ_A) == 2,
                10,
                "the two slow requests in flight",
                last=lambda: in_flight(lab, ZONE_LB, AZ_A),
            )
            lab.deregister(ZONE_LB, "WebB1")
            took = lab.wait_target_state(ZONE_LB, "WebB1", REMOVED, 5)
            assert took < 3
            assert answering(lab, a_url, requests=20) == {"WebA1"}
        finally:
            thread.join()
        slow = out["df"].sort_values("status")
        finished = slow[slow["status"] == 200]
        cut = slow[slow["status"] != 200]
        assert list(finished["backend"]) == ["WebA1"], slow
        assert len(cut) == 1, slow
        # Cut, not answered late: an error or the node's 5xx, before SLOW_MS was over.
        row = cut.iloc[0]
        assert isinstance(row["error"], str) or row["status"] >= 500, slow
        assert row["latency_ms"] < SLOW_MS, slow


def test_register_and_deregister_at_run_time_through_the_cli(lab):
    """WebB2, in no CLB of the template but PathCLB, registered with ZoneCLB: InService after
    its checks, then it takes requests from either node; deregistered (draining off): gone."""
    with restoring(lab):
        printed = cli_ok("register", lab.name, ZONE_LB, "WebB2")
        assert "WebB2" in printed
        # OutOfService until HealthyThreshold checks (5 s apart) have passed.
        row = health(lab, ZONE_LB)["WebB2"]
        assert (row["State"], row["ReasonCode"], row["Description"]) in (
            ("OutOfService", "ELB", REGISTERING),  # no check yet
            ("OutOfService", "Instance", NOT_YET_HEALTHY),  # one passed
        )
        wait_health(lab, ZONE_LB, dict.fromkeys(("WebA1", "WebB1", "WebB2"), IN), DETECT_S)
        assert answering(lab, url(lab, ZONE_LB, AZ_A), requests=45) == {"WebA1", "WebB1", "WebB2"}
        cli_ok("deregister", lab.name, ZONE_LB, "WebB2")
        lab.wait_target_state(ZONE_LB, "WebB2", REMOVED, 5)
        assert answering(lab, url(lab, ZONE_LB, AZ_A)) == {"WebA1", "WebB1"}
    # Unknown names are refused with exit 2.
    proc = run_cli("register", lab.name, ZONE_LB, "NoSuchHost", timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr


# ---- stickiness ----------------------------------------------------------------------------
def test_lb_cookie_keeps_a_client_on_one_instance(lab):
    sticky = url(lab, LB, AZ_A, LB_COOKIE_PORT)
    _s, headers, body = curl(lab, "Client1", sticky)
    cookie = headers["set-cookie"].split(";")[0]
    assert cookie.startswith("AWSELB="), headers
    first = json.loads(body)["instance"]
    for _ in range(10):
        assert seen(lab, "Client1", sticky, headers={"Cookie": cookie})["instance"] == first
    without = {seen(lab, "Client1", sticky)["instance"] for _ in range(8)}
    assert without == {"WebA1", "WebA2"}
    # The plain listener sets no cookie.
    assert "set-cookie" not in curl(lab, "Client1", url(lab, LB, AZ_A))[1]


def test_app_cookie_stickiness_follows_the_application_cookie(lab):
    sticky = url(lab, LB, AZ_A, APP_COOKIE_PORT)
    session = f"{APP_COOKIE}=s{time.time_ns()}"  # a session no earlier run has seen
    # The application sets its cookie (the backend's set_cookie parameter): the node learns
    # which instance it belongs to.
    _s, headers, body = curl(lab, "Client1", f"{sticky}?set_cookie={session}")
    assert headers["set-cookie"] == f"{session}; Path=/", headers
    first = json.loads(body)["instance"]
    for _ in range(10):
        assert seen(lab, "Client1", sticky, headers={"Cookie": session})["instance"] == first
    # Without the cookie, requests are balanced; no AWSELB cookie on this listener.
    without = [curl(lab, "Client1", sticky) for _ in range(8)]
    assert {json.loads(body)["instance"] for _s, _h, body in without} == {"WebA1", "WebA2"}
    assert not any("set-cookie" in h for _s, h, _b in without)


# ---- access log ----------------------------------------------------------------------------
def test_access_log_has_a_line_per_http_request_and_per_tcp_connection(lab):
    a = node(lab, LB, AZ_A)
    log = node_files(lab.dir, a["host"]).access_log
    marker = f"/log-{time.time_ns()}"
    curl(lab, "Client1", url(lab, LB, AZ_A, HTTP_PORT, marker), headers={"User-Agent": "t1"})
    # A TCP connection from a port of our choosing: its line is the one with that port.
    port = fresh_port()
    proc = lab.host("Client1").run(
        ["curl", "-s", "-m", "5", "--local-port", str(port), url(lab, LB, AZ_A, TCP_PORT, marker)],
        timeout=15,
    )
    assert proc.returncode == 0, proc.stderr
    tcp_client = f"{CLIENT_IP}:{port}"
    # The node writes its log every 0.5 s: wait for both lines.
    lab.wait_for(
        lambda: marker in log.read_text() and tcp_client in log.read_text(),
        10,
        "the HTTP request's and the TCP connection's log lines",
        last=lambda: log.read_text()[-2000:],
    )
    lines = log.read_text().splitlines()
    records = [parse_line(line) for line in lines]
    assert all(records), [x for x, r in zip(lines, records) if r is None][:3]
    http = [r for r in records if r and r.path == marker]
    assert len(http) == 1, http  # the TCP connection's request is no HTTP request here
    rec = http[0]
    assert rec.server == a["host"]
    assert rec.local == f"{a['ip']}:{HTTP_PORT}"
    assert rec.client.startswith(f"{CLIENT_IP}:")
    assert rec.method == "GET"
    assert rec.status == 200
    assert rec.user_agent == "t1"
    # One line for the TCP connection: layer 4, bytes counted, no request in it.
    tcp = [r for r in records if r and r.client == tcp_client]
    assert len(tcp) == 1, tcp
    assert is_connection(tcp[0])
    assert tcp[0].server == a["host"]
    assert tcp[0].local == f"{a['ip']}:{TCP_PORT}"
    assert (tcp[0].path, tcp[0].status) == ("-", 0)
    assert tcp[0].bytes > 300  # the instance's answer, passed on
