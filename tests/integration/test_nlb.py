"""The NLB on a real lab: DNS, client IP, UDP, internal scheme, health, draining, RST, metrics."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from testbed import rpc
from testbed.lab.api import REMOVED, Lab
from testbed.paths import TEMPLATES
from testbed.traffic import established_from, run_load
from tests.restore import restoring

pytestmark = pytest.mark.integration
NLB = TEMPLATES / "nlb.yaml"
DRAIN_S = 6  # deregistration delay of WebTargets in these tests
INTERVAL_S, THRESHOLD = 5, 2  # nlb.yaml's health checks


def nlb_template(tmp_dir: Path) -> str:
    """nlb.yaml with a short deregistration delay and a VPC host that is not a target
    (a target reaching itself through an NLB that preserves client addresses fails, on AWS
    as here)."""
    text = NLB.read_text()
    anchor = "      Targets:\n        - {Id: !Ref WebA1}"
    assert anchor in text  # the first target group in the file is WebTargets
    text = text.replace(
        anchor,
        "      TargetGroupAttributes:\n"
        f"        - {{Key: deregistration_delay.timeout_seconds, "
        f"Value: '{DRAIN_S}'}}\n" + anchor,
        1,
    )
    marker = "  # --- The internet"
    assert marker in text
    text = text.replace(
        marker,
        "  Probe:\n    Type: AWS::EC2::Instance\n"
        "    Properties: {SubnetId: !Ref PublicSubnetB}\n" + marker,
        1,
    )
    path = tmp_dir / "nlb.yaml"
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def nlb_lab(tmp_path_factory):
    """Every target healthy before any test: while some are still `initial` the NLB sends
    new flows only to the others."""
    with Lab.up(nlb_template(tmp_path_factory.mktemp("nlb"))) as lab:
        lab.wait_healthy(timeout=INTERVAL_S * THRESHOLD + 30)
        yield lab


def lb_state(lab) -> dict:
    return lab.state["load_balancers"][0]


def controller(lab, op: str, **kw) -> dict:
    return rpc.call(str(lab.dir / "controller.sock"), {"op": op, **kw})


def test_nlb_comes_up_resolvable_and_without_openflow_errors(nlb_lab):
    lb = lb_state(nlb_lab)
    public = sorted(n["public_ip"] for n in lb["nodes"])
    for host in ("Client1", "WebA1"):
        out = nlb_lab.host(host).run(["dig", "+short", lb["dns_name"]]).stdout.split()
        assert sorted(out) == public, host  # internet-facing: the nodes' public addresses
    assert controller(nlb_lab, "status")["errors"] == []
    assert nlb_lab.target_states("WebTargets") == dict.fromkeys(
        ("WebA1", "WebA2", "WebB1", "WebB2"), "healthy"
    )


def test_client_address_is_preserved_and_each_node_keeps_to_its_az(nlb_lab):
    lb = lb_state(nlb_lab)
    for node in lb["nodes"]:
        df = run_load(
            nlb_lab, "Client1", f"http://{node['public_ip']}/", requests=80, concurrency=8
        )
        assert df["error"].isna().all()
        assert set(df["seen_ip"]) == {"198.51.100.10"}
        assert set(df["backend_az"]) == {node["az"]}  # cross-zone off
        assert len(set(df["backend"])) == 2  # both targets of that AZ take flows
    # By name: the resolver hands out both nodes, so both AZs answer.
    df = run_load(nlb_lab, "Client2", f"http://{lb['dns_name']}/", requests=120, concurrency=8)
    assert df["error"].isna().all()
    assert set(df["backend_az"]) == {"us-east-1a", "us-east-1b"}
    assert set(df["seen_ip"]) == {"198.51.100.11"}


def test_udp_through_the_nlb(nlb_lab):
    node = lb_state(nlb_lab)["nodes"][0]
    df = run_load(nlb_lab, "Client1", f"udp://{node['public_ip']}:9000", requests=60)
    assert df["error"].isna().all()
    assert len(df) == 60
    assert set(df["seen_ip"]) == {"198.51.100.10"}
    assert set(df["backend_az"]) == {node["az"]}
    assert len(set(df["backend"])) == 2


@pytest.mark.serial  # a bound on detection time (interval x threshold): measured on a quiet machine
def test_unhealthy_target_gets_no_new_flows_and_comes_back(nlb_lab):
    web = nlb_lab.host("WebA1")
    node = next(n for n in lb_state(nlb_lab)["nodes"] if n["az"] == "us-east-1a")
    with restoring(nlb_lab, faulted=["WebA1"]):
        web.fault("refuse")
        took = nlb_lab.wait_target_state(
            "WebTargets", "WebA1", "unhealthy", INTERVAL_S * THRESHOLD + 10
        )
        assert took <= INTERVAL_S * THRESHOLD + 1 + 1.5  # + the checker's scheduling margin
        df = run_load(
            nlb_lab, "Client1", f"http://{node['public_ip']}/", requests=60, concurrency=6
        )
        assert df["error"].isna().all()
        assert set(df["backend"]) == {"WebA2"}
        web.fault("clear")
        nlb_lab.wait_target_state("WebTargets", "WebA1", "healthy", INTERVAL_S * THRESHOLD + 10)
        df = run_load(
            nlb_lab, "Client1", f"http://{node['public_ip']}/", requests=60, concurrency=6
        )
        assert set(df["backend"]) == {"WebA1", "WebA2"}


@pytest.mark.serial  # a bound on the draining time: measured on a quiet machine
def test_deregistered_target_drains_then_leaves(nlb_lab):
    node = next(n for n in lb_state(nlb_lab)["nodes"] if n["az"] == "us-east-1b")
    since = time.time()
    with restoring(nlb_lab):
        nlb_lab.deregister("WebTargets", "WebB2")
        nlb_lab.wait_target_state("WebTargets", "WebB2", "draining", 3)
        df = run_load(
            nlb_lab, "Client1", f"http://{node['public_ip']}/", requests=40, concurrency=4
        )
        assert set(df["backend"]) == {"WebB1"}  # no new flow reaches a draining target
        took = nlb_lab.wait_target_state("WebTargets", "WebB2", REMOVED, DRAIN_S + 5)
        assert took <= DRAIN_S + 2
        nlb_lab.register("WebTargets", "WebB2")
        nlb_lab.wait_target_state("WebTargets", "WebB2", "healthy", INTERVAL_S * THRESHOLD + 10)
    seen = [e["new"] for e in nlb_lab.target_events(since) if e["target"] == "WebB2:80"]
    assert seen == ["draining", "", "initial", "healthy"]


def test_segments_of_a_forgotten_flow_get_a_reset(nlb_lab):
    node = next(n for n in lb_state(nlb_lab)["nodes"] if n["az"] == "us-east-1a")
    result = {}

    def hold() -> None:
        result["df"] = run_load(
            nlb_lab,
            "Client1",
            f"tcp://{node['public_ip']}:9000",
            requests=4,
            concurrency=4,
            hold=8,
            timeout=3,
        )

    lb = lb_state(nlb_lab)["name"]
    targets = ("WebA1", "WebA2")
    client_ip = nlb_lab.host("Client1").ip

    def held_flows() -> int:
        """Client1's established connections to port 9000, as the targets see them."""
        return established_from([nlb_lab.host(t) for t in targets], 9000, client_ip)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        nlb_lab.wait_for(lambda: held_flows() >= 4, 10, "the 4 held flows", last=held_flows)
        for target in targets:  # forget every flow of this node's targets
            controller(nlb_lab, "terminate", lb=lb, ip=nlb_lab.host(target).ip, port=9000)
    finally:
        holder.join()
    df = result["df"]
    assert set(df["error"]) == {"reset"}  # told at once by the NLB, not left to time out
    assert (df["latency_ms"] < 8000).all()


def new_flows_so_far(lab) -> int:
    """NewFlowCount of every target, once OVS has counted every packet seen until now.

    Packets that hit a cached datapath flow reach the counters of the OpenFlow entries
    when a revalidator goes over that flow (every ~0.5 s). `revalidator/wait` returns when
    the revalidators' current round ends; the second one, after a whole round that started
    after this call: every packet so far is counted (an earlier test's last ones too)."""
    for _ in range(2):
        subprocess.run(["ovs-appctl", "revalidator/wait"], check=True, capture_output=True)
    return sum(x["count"] for x in controller(lab, "nlb_stats")["new_flows"])


def test_new_flow_count_matches_the_connections(nlb_lab):
    node = lb_state(nlb_lab)["nodes"][0]
    before = new_flows_so_far(nlb_lab)
    df = run_load(nlb_lab, "Client2", f"http://{node['public_ip']}/", requests=150, concurrency=10)
    assert df["error"].isna().all()
    assert new_flows_so_far(nlb_lab) - before == 150


# Sequential HTTP requests, each from the next of a few fixed source ports, closed by the
# client first (FIN, TIME_WAIT on the client): ports come back as soon as the kernel lets
# TIME_WAIT be reused (tcp_tw_reuse), about a second later. Prints one JSON line per
# request: the port used, the port the backend saw, or the error.
REUSE_CLIENT = r"""
import errno, json, socket, sys
from testbed.waiting import WaitTimeout, wait_for
ip, port, first, count, rounds = sys.argv[1], int(sys.argv[2]), *map(int, sys.argv[3:6])

def more(s):
    chunk = s.recv(65536)
    if not chunk:
        raise ConnectionError("closed before the whole answer")
    return chunk

def free(local):
    # Earlier tests' connections from this host may still hold a port (ephemeral ports
    # span the whole range here): use only ports nothing holds now.
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("", local))
        return True
    except OSError:
        return False
    finally:
        s.close()

ports = [p for p in range(first, first + 1000) if free(p)][:count]

def connected(local):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.settimeout(5)
    try:
        s.bind(("", local))
        s.connect((ip, port))
        return s
    except OSError as exc:
        s.close()
        if exc.errno == errno.EADDRNOTAVAIL:
            return None  # the port's TIME_WAIT is not reusable yet: a fact the kernel tells us
        raise

for i in range(count * rounds):
    local = ports[i % count]
    try:
        s = wait_for(lambda: connected(local), 10, f"port {local} to be reusable", 0.05)
    except (OSError, WaitTimeout) as exc:
        print(json.dumps({"port": local, "error": str(exc)}), flush=True)
        continue
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: nlb\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += more(s)
        head, body = data.split(b"\r\n\r\n", 1)
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        while len(body) < length:  # the server lets the client close first
            body += more(s)
        body = json.loads(body)
        print(json.dumps({"port": local, "seen": body["client"]["port"]}), flush=True)
    except (OSError, ValueError, KeyError) as exc:
        print(json.dumps({"port": local, "error": repr(exc)}), flush=True)
    finally:
        s.close()
"""


def test_new_connections_may_reuse_the_client_ports_of_closed_ones(nlb_lab):
    # 16 ports, each reused 4 times within seconds: the NLB takes every SYN for the
    # 4-tuple of a closed connection as a new connection and keeps the client's port (AWS
    # preserves it with the address). With conntrack NAT, OVS 3.1 held a closed
    # connection's reply tuple for seconds and moved the new one to another port, or
    # dropped it once the port space was taken.
    node = next(n for n in lb_state(nlb_lab)["nodes"] if n["az"] == "us-east-1a")
    proc = nlb_lab.host("Client1").run(
        [sys.executable, "-c", REUSE_CLIENT, node["public_ip"], "80", "47000", "16", "4"],
        timeout=120,
    )
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 64, proc.stderr
    assert [r for r in rows if "error" in r] == []
    assert [r for r in rows if r["seen"] != r["port"]] == []


def test_internal_nlb_is_unreachable_from_the_internet(tmp_path):
    with Lab.up(nlb_template(tmp_path), params={"Scheme": "internal"}) as lab:
        lb = lb_state(lab)
        assert all(n["public_ip"] is None for n in lb["nodes"])
        private = sorted(n["ip"] for n in lb["nodes"])
        assert (
            sorted(lab.host("WebA1").run(["dig", "+short", lb["dns_name"]]).stdout.split())
            == private
        )
        for node in lb["nodes"]:
            df = run_load(lab, "Client1", f"http://{node['ip']}/", requests=3, timeout=1.5)
            assert df["error"].notna().all()  # not routed on the internet
        df = run_load(lab, "Probe", f"http://{lb['dns_name']}/", requests=40, concurrency=4)
        assert df["error"].isna().all()
        assert set(df["seen_ip"]) == {lab.host("Probe").ip}
        assert set(df["backend_az"]) == {"us-east-1a", "us-east-1b"}  # both nodes by name
