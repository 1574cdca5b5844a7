"""The ALB on a real lab: every rule condition and action, forwarded headers, weights,
stickiness, algorithms, health checks, fail open, draining, live updates, metrics, logs.

One lab (tests/alb_data.py) serves the module; each request is made by a real client on the
internet segment through a node's public address (the gateway's 1:1 NAT, then HAProxy).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest

from testbed.accesslog import parse_line
from testbed.alb import stats
from testbed.alb.config import backend_name, node_files
from testbed.alb.runtime import cli
from testbed.errors import BadInput
from testbed.lab.api import REMOVED, Lab
from testbed.lab.hostexec import host_tmp
from testbed.metrics.sources import AlbSource
from testbed.plan.network import NetworkPlan
from testbed.traffic import run_load
from tests.alb_data import DRAIN_S, GROUPS, LB, RULE_CASES, rules_template
from tests.restore import restoring

pytestmark = pytest.mark.integration
INTERVAL_S, THRESHOLD = 5, 2
DETECT_S = INTERVAL_S * THRESHOLD + 8  # detection time plus scheduling slack


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    path = tmp_path_factory.mktemp("alb") / "rules.yaml"
    path.write_text(rules_template())
    return str(path)


@pytest.fixture(scope="module")
def lab(template):
    """Every target healthy, but TgFailOpen's (its matcher never matches): what each test
    starts from and leaves behind."""
    with Lab.up(template) as lab:
        for tg in GROUPS:
            if tg != "TgFailOpen":
                lab.wait_healthy(tg, timeout=40)
        lab.wait_for(
            lambda: set(lab.target_states("TgFailOpen").values()) == {"unhealthy"},
            DETECT_S,
            "TgFailOpen unhealthy",
            last=lambda: lab.target_states("TgFailOpen"),
        )
        yield lab


# ---- helpers -------------------------------------------------------------------------------
def state(lab, tg: str, instance: str) -> str:
    return lab.target_state(tg, instance)


def nodes(lab) -> list[dict]:
    return next(x for x in lab.state["load_balancers"] if x["name"] == LB)["nodes"]


def node_url(lab, index: int = 0) -> str:
    return f"http://{nodes(lab)[index]['public_ip']}"


def curl(
    lab, client: str, url: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], str]:
    """One request with curl in `client`: (status, headers lower-cased, body)."""
    argv = ["curl", "-s", "-i", "-m", "5", "-X", method]
    for k, v in (headers or {}).items():
        argv += ["-H", f"{k}: {v}"]
    proc = lab.host(client).run([*argv, url], timeout=15)
    assert proc.returncode == 0, f"curl {url}: exit {proc.returncode} {proc.stderr}"
    text = proc.stdout.replace("\r\n", "\n")  # text mode may or may not have done it
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    got = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        got.setdefault(k.strip().lower(), v.strip())
    return int(lines[0].split()[1]), got, body


def instance_of(body: str) -> str | None:
    try:
        return json.loads(body)["instance"]
    except (ValueError, KeyError):
        return None


def in_flight(lab, tg: str, node: int = 0) -> int:
    """Requests of `tg` that node `node`'s HAProxy has sent to targets and not yet finished
    (its servers' current sessions)."""
    host = nodes(lab)[node]["host"]
    rows = stats.parse_stat(cli(node_files(lab.dir, host).stats_socket, "show stat"))
    return sum(
        int(r["scur"] or 0)
        for r in rows
        if r["pxname"] == backend_name(tg) and r["svname"] not in ("FRONTEND", "BACKEND")
    )


# ---- routing -------------------------------------------------------------------------------
def test_alb_resolves_to_its_nodes_and_every_node_listens(lab):
    dns = lab.outputs["DnsName"]
    public = sorted(n["public_ip"] for n in nodes(lab))
    assert sorted(lab.host("Client1").run(["dig", "+short", dns]).stdout.split()) == public
    for index in range(2):
        status, headers, _ = curl(lab, "Client1", node_url(lab, index) + "/teapot")
        assert status == 418
        assert headers["server"] == "awselb/2.0"
    assert lab.target_states("TgFailOpen") == dict.fromkeys(GROUPS["TgFailOpen"], "unhealthy")


@pytest.mark.parametrize("case", RULE_CASES, ids=[c.name for c in RULE_CASES])
def test_rule_case(lab, case):
    index = RULE_CASES.index(case) % 2  # alternate the nodes
    status, headers, body = curl(
        lab, case.client, node_url(lab, index) + case.path, case.method, case.headers
    )
    assert status == case.status, body
    if case.group:
        assert instance_of(body) in GROUPS[case.group], body
    if case.location:
        assert headers["location"] == case.location
    if case.body is not None:
        assert body == case.body
        assert headers["content-type"] == "application/json"


def test_forwarded_headers_append_the_client_address(lab):
    _s, _h, body = curl(
        lab, "Client1", node_url(lab) + "/", headers={"X-Forwarded-For": "203.0.113.99"}
    )
    seen = json.loads(body)
    assert seen["forwarded"] == {
        "x-forwarded-for": "203.0.113.99, 198.51.100.10",
        "x-forwarded-proto": "http",
        "x-forwarded-port": "80",
    }
    assert seen["client"]["ip"] in {n["ip"] for n in nodes(lab)}  # the ALB proxies
    _s, _h, body = curl(lab, "Client2", node_url(lab, 1) + "/")
    assert json.loads(body)["forwarded"]["x-forwarded-for"] == "198.51.100.11"


def test_weighted_forward_splits_90_10(lab):
    df = run_load(lab, "Client1", node_url(lab) + "/weighted/x", requests=2000, concurrency=20)
    assert df["error"].isna().all()
    share = (df["backend"] == "WebA1").mean()
    assert abs(share - 0.9) < 0.03, df["backend"].value_counts()


def test_lb_cookie_keeps_a_client_on_one_target(lab):
    _s, headers, body = curl(lab, "Client1", node_url(lab) + "/")
    cookie = headers["set-cookie"].split(";")[0]
    assert cookie.startswith("AWSALB=")
    first = instance_of(body)
    seen = {
        instance_of(curl(lab, "Client1", node_url(lab, i % 2) + "/", headers={"Cookie": cookie})[2])
        for i in range(16)
    }
    assert seen == {first}  # on both nodes: they share the cookie key
    without = {instance_of(curl(lab, "Client1", node_url(lab) + "/")[2]) for _ in range(8)}
    assert without == set(GROUPS["WebTargets"])


def test_group_stickiness_keeps_a_client_on_one_group(lab):
    _s, headers, body = curl(lab, "Client1", node_url(lab) + "/group-sticky/x")
    cookie = next(c for c in [headers["set-cookie"]] if c.startswith("AWSALBTG="))
    cookie = cookie.split(";")[0]
    first = instance_of(body)
    seen = {
        instance_of(
            curl(lab, "Client1", node_url(lab) + "/group-sticky/x", headers={"Cookie": cookie})[2]
        )
        for _ in range(12)
    }
    assert seen == {first}


def test_cross_zone_off_keeps_each_node_in_its_zone(lab):
    for index, own in ((0, "WebA1"), (1, "WebB1")):
        df = run_load(lab, "Client1", node_url(lab, index) + "/zonal/x", requests=40, concurrency=4)
        assert set(df["backend"]) == {own}


def test_least_outstanding_requests_prefers_the_fast_target(lab):
    with restoring(lab, faulted=["LorA1"]):
        lab.host("LorA1").fault("delay", "300")
        df = run_load(
            lab, "Client1", node_url(lab) + "/lor/x", requests=300, concurrency=10, timeout=10
        )
    assert df["error"].isna().all()
    assert (df["backend"] == "LorB1").mean() >= 0.8, df["backend"].value_counts()


# ---- health --------------------------------------------------------------------------------
@pytest.mark.serial  # a bound on detection time (interval x threshold): measured on a quiet machine
def test_matcher_decides_health_and_a_lone_unhealthy_target_fails_open(lab):
    with restoring(lab, faulted=["SourceA1"]):
        lab.host("SourceA1").fault("status", "404")
        took = lab.wait_target_state("TgStrict", "SourceA1", "unhealthy", DETECT_S)
        row = next(r for r in lab.targets("TgStrict"))
        assert row["TargetHealth"]["Reason"] == "Target.ResponseCodeMismatch"
        assert took <= DETECT_S
        assert state(lab, "TgLenient", "SourceA1") == "healthy"  # matcher 200,404
        status, _h, body = curl(lab, "Client1", node_url(lab) + "/strict/x")
        assert (status, instance_of(body)) == (404, "SourceA1")  # fail open


def test_unhealthy_target_drops_out_and_comes_back(lab):
    with restoring(lab, faulted=["LorA1"]):
        lab.host("LorA1").fault("500")
        lab.wait_target_state("TgLor", "LorA1", "unhealthy", DETECT_S)
        df = run_load(lab, "Client1", node_url(lab, 1) + "/lor/x", requests=40, concurrency=4)
        assert set(df["backend"]) == {"LorB1"}
        assert (df["status"] == 200).all()
        lab.host("LorA1").fault("clear")
        lab.wait_target_state("TgLor", "LorA1", "healthy", DETECT_S)
        df = run_load(lab, "Client1", node_url(lab, 1) + "/lor/x", requests=40, concurrency=4)
        assert set(df["backend"]) == {"LorA1", "LorB1"}


def test_fail_open_when_every_target_is_unhealthy(lab):
    assert {state(lab, "TgFailOpen", i) for i in GROUPS["TgFailOpen"]} == {"unhealthy"}
    df = run_load(lab, "Client1", node_url(lab) + "/failopen/x", requests=40, concurrency=4)
    assert df["error"].isna().all()
    assert set(df["backend"]) == set(GROUPS["TgFailOpen"])


@pytest.mark.serial  # a bound on the draining time: measured on a quiet machine
def test_deregistration_drains_then_a_new_target_registers(lab):
    result = {}

    def slow_requests() -> None:
        result["df"] = run_load(
            lab,
            "Client2",
            node_url(lab) + "/lor/x?delay_ms=4000",
            requests=4,
            concurrency=4,
            timeout=15,
        )

    t = threading.Thread(target=slow_requests)
    with restoring(lab):
        t.start()
        try:
            # Least outstanding requests: two on each target.
            lab.wait_for(
                lambda: in_flight(lab, "TgLor") == 4,
                10,
                "the four slow requests in flight",
                last=lambda: in_flight(lab, "TgLor"),
            )
            lab.deregister("TgLor", "LorA1")
            assert state(lab, "TgLor", "LorA1") == "draining"
            df = run_load(lab, "Client1", node_url(lab) + "/lor/x", requests=30, concurrency=3)
            assert set(df["backend"]) == {"LorB1"}  # nothing new for a draining target
        finally:
            t.join()
        slow = result["df"]
        assert (slow["status"] == 200).all()  # in-flight requests finished
        assert "LorA1" in set(slow["backend"])
        took = lab.wait_target_state("TgLor", "LorA1", REMOVED, DRAIN_S + 5)
        assert took <= DRAIN_S + 2
        # Registered again (HAProxy gets a dynamic server), plus one the template never had.
        lab.register("TgLor", "LorA1")
        lab.register("TgLor", "PathA1")
        lab.wait_healthy("TgLor", ["LorA1", "PathA1"], timeout=DETECT_S)
        df = run_load(lab, "Client1", node_url(lab) + "/lor/x", requests=60, concurrency=3)
        assert set(df["backend"]) == {"LorA1", "LorB1", "PathA1"}


# ---- updates -------------------------------------------------------------------------------
KEEPALIVE_CLIENT = """
import http.client, json, sys, threading, time
stop = threading.Event()  # set when the test closes our stdin
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
conn = http.client.HTTPConnection(sys.argv[1], 80, timeout=5)
end = time.monotonic() + 120  # a bound, whatever happens to the test
while not stop.is_set() and time.monotonic() < end:
    try:
        conn.request("GET", "/api/x", headers={"X-Forwarded-For": "203.0.113.99"})
        resp = conn.getresponse()
        body = resp.read()
        out = {"status": resp.status, "port": conn.sock.getsockname()[1],
               "xff": json.loads(body)["forwarded"].get("x-forwarded-for")}
    except Exception as exc:
        out = {"error": repr(exc)}
        conn.close()
    print(json.dumps(out), flush=True)
    stop.wait(0.1)  # a steady client: a request every 0.1 s on its one connection
"""


def test_update_keeps_established_connections_and_changes_xff_mode(lab, template):
    script = host_tmp(lab.name, "Client1") / "keepalive.py"
    script.write_text(KEEPALIVE_CLIENT)
    node = nodes(lab)[0]["public_ip"]
    client = lab.host("Client1").popen(
        ["python3", str(script), node], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    answers: list[dict] = []
    reader = threading.Thread(target=lambda: answers.extend(map(json.loads, client.stdout)))
    reader.start()

    def answered(n: int) -> None:
        lab.wait_for(lambda: len(answers) >= n, 15, f"{n} answers on the kept connection")

    try:
        answered(3)
        for mode in ("preserve", "remove"):
            reply = lab.update(template, {"XffMode": mode})
            assert reply["changes"]
            assert any("reloaded" in d for d in reply["done"])
            _s, _h, body = curl(
                lab, "Client1", node_url(lab) + "/", headers={"X-Forwarded-For": "203.0.113.99"}
            )
            seen = json.loads(body)["forwarded"].get("x-forwarded-for")
            assert seen == {"preserve": "203.0.113.99", "remove": None}[mode]
            answered(len(answers) + 3)  # the old connection goes on after the reload
    finally:
        client.stdin.close()  # the client's signal to stop
        client.wait(timeout=30)
        reader.join(timeout=30)
        lab.update(template, {"XffMode": "append"})
    assert answers
    assert all(a.get("status") == 200 for a in answers), answers
    assert len({a["port"] for a in answers}) == 1  # one connection from start to end
    # It stayed with the worker that accepted it (the old rules), as HAProxy does.
    assert {a["xff"] for a in answers} == {"203.0.113.99, 198.51.100.10"}
    events = [e.status for e in lab.events() if e.logical_id in (lab.name, LB)]
    assert "UPDATE_IN_PROGRESS" in events
    assert events[-1] == "UPDATE_COMPLETE"


def test_update_that_needs_a_rebuild_is_refused(lab, tmp_path):
    """An internal ALB instead of an internet-facing one: its nodes' addresses change, which
    a running lab cannot do (down/up); nothing changes (an added client would be live)."""
    internal = tmp_path / "internal.yaml"
    text = rules_template()
    assert text.count("Scheme: internet-facing") == 1
    internal.write_text(text.replace("Scheme: internet-facing", "Scheme: internal"))
    with pytest.raises(BadInput) as info:
        lab.update(str(internal))
    assert f"load_balancers.{LB}" in str(info.value)
    assert "testbed down" in str(info.value)
    assert curl(lab, "Client1", node_url(lab) + "/teapot")[0] == 418  # untouched


# ---- metrics and logs ----------------------------------------------------------------------
def test_metrics_from_haproxy_stats(lab):
    plan = NetworkPlan.from_json((lab.dir / "plan.json").read_text())
    source = AlbSource(lab, plan)

    def values():
        return {(s.metric, s.target_group): s.value for s in source.snapshot() if not s.target}

    before = values()
    df = run_load(lab, "Client1", node_url(lab) + "/api/x", requests=100, concurrency=5)
    for _ in range(3):
        curl(lab, "Client1", node_url(lab, 1) + "/teapot")
    assert (df["status"] == 200).all()
    after = values()

    def delta(metric, tg=""):
        return after[(metric, tg)] - before.get((metric, tg), 0)

    assert delta("RequestCount") == 103
    assert delta("RequestCount", "TgPath") == 100
    assert delta("HTTPCode_Target_2XX_Count", "TgPath") == 100
    assert delta("HTTPCode_ELB_4XX_Count") == 3  # the fixed 418s are the LB's own
    assert delta("HTTP_Fixed_Response_Count") == 3
    assert delta("NewConnectionCount") >= 103
    assert after[("HealthyHostCount", "TgLor")] == 2
    assert after[("UnHealthyHostCount", "TgFailOpen")] == 2
    assert after[("TargetResponseTime", "TgPath")] >= 0


def test_access_log_lines_are_in_the_lab_format(lab):
    marker = f"/api/log-{time.time_ns()}"
    curl(
        lab,
        "Client1",
        node_url(lab) + marker,
        headers={"X-Forwarded-For": "192.0.2.7", "User-Agent": 'lab "test"'},
    )
    logs = [node_files(lab.dir, n["host"]).access_log for n in nodes(lab)]
    # The node writes its log every 0.5 s: wait for the request's line.
    lab.wait_for(
        lambda: any(marker in log.read_text() for log in logs), 10, "the request's log line"
    )
    found = []
    for log in logs:  # (a node no test has used yet has an empty log)
        lines = log.read_text().splitlines()
        records = [parse_line(line) for line in lines]
        assert all(records), [x for x, r in zip(lines, records) if r is None][:3]
        found += [r for r in records if r.path == marker]
    assert len(found) == 1
    rec = found[0]
    assert rec.server == nodes(lab)[0]["host"]
    assert rec.local == f"{nodes(lab)[0]['ip']}:80"
    assert rec.client.startswith("198.51.100.10:")
    assert rec.status == 200
    assert rec.xff == "192.0.2.7"
    assert rec.user_agent == 'lab "test"'
