"""testbed flows on a real NLB lab: the flows a client made, each with the target that
answered it (the backend names itself in every answer, and sees the client's own port:
nlb.yaml's groups keep client addresses)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from testbed.lab.api import Lab
from testbed.paths import TEMPLATES
from testbed.probes.flows import ROW_KEYS, lab_flows
from testbed.traffic import run_load

pytestmark = pytest.mark.integration
INTERVAL_S, THRESHOLD = 5, 2  # nlb.yaml's health checks


@pytest.fixture(scope="module")
def nlb_lab():
    with Lab.up(str(TEMPLATES / "nlb.yaml")) as lab:
        lab.wait_healthy(timeout=INTERVAL_S * THRESHOLD + 30)
        yield lab


def node_of(lab: Lab, az: str) -> dict:
    lb = lab.state["load_balancers"][0]
    return next(n for n in lb["nodes"] if n["az"] == az)


def by_port(rows: list[dict], proto: str) -> dict[tuple[int, str], dict]:
    """Rows by (client port, destination): with the client's address and the listener port,
    they name the flow (a port alone may have served an earlier connection to the other
    node, still in conntrack)."""
    return {(r["client_port"], r["destination"]): r for r in rows if r["protocol"] == proto}


def test_tcp_flows_name_the_target_that_answered(nlb_lab):
    client = nlb_lab.host("Client1").ip
    dns = nlb_lab.state["load_balancers"][0]["dns_name"]
    df = run_load(nlb_lab, "Client1", f"http://{dns}/", requests=12, concurrency=3)
    assert df["error"].isna().all()
    rows = lab_flows(nlb_lab, client=client)
    assert all(tuple(r) == ROW_KEYS for r in rows)
    flows = by_port(rows, "tcp")
    for answer in df.itertuples():
        node = node_of(nlb_lab, answer.backend_az)  # cross-zone is off: the node's own AZ
        flow = flows[(int(answer.seen_port), node["public_ip"])]  # closed: TIME_WAIT
        assert flow["target"] == answer.backend
        assert flow["target_ip"] == answer.backend_ip
        assert flow["az"] == answer.backend_az
        assert flow["lb"] == "MyNLB"
        assert flow["type"] == "network"
        assert flow["client"] == client
        assert flow["node"] == node["host"]
        assert flow["destination_port"] == 80
    assert {r["client"] for r in lab_flows(nlb_lab, client="198.51.100.99")} == set()


def test_udp_flows_and_a_held_connection(nlb_lab):
    client = nlb_lab.host("Client2").ip
    node = node_of(nlb_lab, "us-east-1a")
    df = run_load(nlb_lab, "Client2", f"udp://{node['public_ip']}:9000", requests=6)
    assert df["error"].isna().all()
    flows = by_port(lab_flows(nlb_lab, client=client), "udp")
    for answer in df.itertuples():
        flow = flows[(int(answer.seen_port), node["public_ip"])]
        assert flow["target"] == answer.backend
        assert flow["target_port"] == 9000

    # A long-lived TCP flow is ESTABLISHED while it lasts.
    result: dict = {}
    load = threading.Thread(
        target=lambda: result.update(
            df=run_load(nlb_lab, "Client2", f"tcp://{node['public_ip']}:9000", requests=1, hold=4)
        )
    )
    load.start()
    try:
        held = nlb_lab.wait_for(
            lambda: [
                r
                for r in lab_flows(nlb_lab, client=client)
                if r["protocol"] == "tcp" and r["state"] == "ESTABLISHED"
            ],
            10,
            "an established flow of Client2",
        )
    finally:
        load.join()
    answer = result["df"].iloc[0]
    assert len(held) == 1
    assert held[0]["client_port"] == int(answer["seen_port"])
    assert held[0]["target"] == answer["backend"]
    assert held[0]["expires_s"] > 60  # the NLB's idle timeout (350 s), not a closing one


def test_the_command(nlb_lab):
    def flows(*args: str) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "testbed.cli", "flows", nlb_lab.name, *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)

    df = run_load(nlb_lab, "Client1", "http://203.0.113.11/", requests=2)
    table = flows("--client", "Client1")
    assert table.returncode == 0, table.stderr
    for answer in df.itertuples():
        assert f"198.51.100.10:{answer.seen_port}" in table.stdout
    assert "flows: " in table.stdout.splitlines()[-1]
    shown = flows("--client", "198.51.100.10", "--json")
    rows = json.loads(shown.stdout)
    ports = {(r["client_port"], r["destination"]): r["target"] for r in rows}
    for answer in df.itertuples():
        assert ports[(int(answer.seen_port), "203.0.113.11")] == answer.backend
    bad = flows("--client", "NoSuchHost")
    assert bad.returncode == 2
    assert "neither an IPv4 address nor a host" in bad.stderr
    assert flows("--lb", "Nope").returncode == 2
