"""The GWLB's switch datapath on a real lab (templates/gwlb.yaml, issue 15): Open vSwitch steers
the endpoints' traffic through the appliances and the GWLB node is out of the path; the
node reads its flows from the switch (conntrack labels name the appliance and the cookie the
appliance sees), `testbed exec` on it shows them, a restarted controller keeps them, and the
2-tuple and 3-tuple stickiness types keep a pair's flows on one appliance.

One lab at a time: the module's lab is made once per stickiness type (5-tuple first)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from testbed import rpc
from testbed.gwlb.observe import (
    appliance_status,
    node_flows,
    node_status,
    node_status_since,
    tcp_flows_by_client_port,
    wait_appliances_healthy,
)
from testbed.lab.api import Lab, random_name
from testbed.naming import CONTROLLER_SOCK
from testbed.paths import TEMPLATES
from testbed.traffic import run_load
from tests.assertions import run_cli

pytestmark = pytest.mark.integration
GWLB = str(TEMPLATES / "gwlb.yaml")
AZ_A = ["FwA1", "FwA2"]
CLIENT1 = "198.51.100.10"
FIVE, THREE, TWO = "5-tuple", "source_ip_dest_ip_proto", "source_ip_dest_ip"


@pytest.fixture(scope="module", params=[FIVE, TWO, THREE])
def stickiness(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def lab(stickiness):
    with Lab.up(GWLB, params={"Stickiness": stickiness}, name=random_name("gs")) as lab:
        if lab.plan.gwlb_datapath != "switch":
            pytest.skip(f"the switch datapath is not here: {lab.plan.gwlb_datapath_reason}")
        wait_appliances_healthy(
            lab, "Appliances", {"GWLB-1a": AZ_A, "GWLB-1b": ["FwB1", "FwB2"]}, 60
        )
        yield lab


def five_tuple_only(stickiness: str) -> None:
    if stickiness != FIVE:
        pytest.skip("runs with 5-tuple stickiness")


def web(lab: Lab, name: str) -> str:
    return lab.outputs[f"{name}PublicIp"]


def eth0_rx_packets(lab: Lab, host: str) -> int:
    out = lab.host(host).run(["cat", "/sys/class/net/eth0/statistics/rx_packets"], check=True)
    return int(out.stdout)


def hold(lab: Lab, n: int, seconds: float, timeout: float = 5) -> tuple[threading.Thread, dict]:
    """n long-lived TCP flows Client1 -> WebA:9000 (a line echoed every second) in a thread."""
    result: dict = {}

    def go() -> None:
        result["df"] = run_load(
            lab,
            "Client1",
            f"tcp://{web(lab, 'WebA')}:9000",
            requests=n,
            concurrency=n,
            hold=seconds,
            timeout=timeout,
        )

    thread = threading.Thread(target=go)
    thread.start()
    return thread, result


def held_rows(lab: Lab, since: float) -> dict[int, dict]:
    """GWLB-1a's rows of Client1's flows to WebA:9000 first seen since `since`, by client
    port."""
    server = f"{lab.host('WebA').ip}:9000"
    flows = node_flows(lab, "GWLB-1a", end=server, max_age_s=time.time() - since + 1)
    return tcp_flows_by_client_port(flows, CLIENT1, server)


def established_held(lab: Lab, n: int, since: float) -> dict[int, dict]:
    """GWLB-1a's rows of n held flows once all are established, by client port."""

    def rows() -> dict[int, dict] | None:
        held = {p: r for p, r in held_rows(lab, since).items() if r["established"]}
        return held if len(held) >= n else None

    return lab.wait_for(rows, 20, f"{n} held flows established, read from the switch")


def appliance_rows(lab: Lab, fw: str, since: float) -> dict[int, dict]:
    """The appliance's own rows of Client1's flows to WebA:9000, by client port, from a
    status file written after `since`."""
    status = lab.wait_for(
        lambda: (s := appliance_status(lab, fw))["time"] > since and s,
        5,
        f"{fw}'s status file to be rewritten",
    )
    web_a = lab.host("WebA").ip
    out = {}
    for f in status["flows"]:
        ends = {(f["a"], f["a_port"]), (f["b"], f["b_port"])}
        client = [p for a, p in ends if a == CLIENT1]
        if (web_a, 9000) in ends and client:
            out[client[0]] = f
    return out


# ---- 5-tuple: the switch steers, the node reads ------------------------------------------------


def test_the_switch_steers_and_the_node_process_is_not_in_the_path(lab, stickiness):
    five_tuple_only(stickiness)
    status = node_status(lab, "GWLB-1a")
    assert status["datapath"] == "switch"
    assert status["tunnel_port"] == 64000  # GENEVE_OFPORT_BASE + 0
    node = lab.host("GWLB-1a")
    # no GENEVE socket and no packet socket in the node's namespace
    assert ":6081 " not in node.run(["ss", "-uanH"], check=True).stdout
    assert node.run(["ss", "-0anH"], check=True).stdout.strip() == ""
    rx_before = eth0_rx_packets(lab, "GWLB-1a")
    before = node_status_since(lab, "GWLB-1a", time.time())
    df = run_load(lab, "Client1", f"http://{web(lab, 'WebA')}/", requests=100, concurrency=5)
    assert df["error"].isna().all()
    after = node_status_since(lab, "GWLB-1a", time.time())
    rx = eth0_rx_packets(lab, "GWLB-1a") - rx_before
    steered = after["packets_in"] - before["packets_in"]
    back = after["packets_back"] - before["packets_back"]
    print(f"\nswitch steered {steered} packets, {back} back; node eth0 received {rx}")
    assert steered >= 500  # 100 connections: SYN .. FIN both ways, all through the switch
    assert back >= steered * 0.9  # and back from the appliances (the inspection drops none)
    assert rx < 100  # the node's own traffic only: health checks of two appliances
    assert after["process_packets"] == 0
    new = sum(a["new_flows"] for a in after["appliances"]) - sum(
        a["new_flows"] for a in before["appliances"]
    )
    assert 95 <= new <= 100  # one conntrack commit per connection (a reused port: one less)


def test_flow_rows_from_conntrack_name_the_appliance_that_carries_the_flow(lab, stickiness):
    five_tuple_only(stickiness)
    since = time.time()
    thread, result = hold(lab, 8, seconds=6)
    try:
        rows = established_held(lab, 8, since)
        for row in rows.values():
            assert row["endpoint"] == "EndpointA"
            assert row["appliance"] in {f"i-{fw}:6081" for fw in AZ_A}
            assert row["cookie"] & 0x80000000
            assert row["fwd_packets"] is None  # the userspace conntrack counts nothing
        seen = {fw: appliance_rows(lab, fw, time.time()) for fw in AZ_A}
    finally:
        thread.join()
    assert result["df"]["error"].isna().all()
    for port, row in rows.items():
        carriers = [fw for fw in AZ_A if port in seen[fw]]
        assert [f"i-{fw}:6081" for fw in carriers] == [row["appliance"]], (port, row, carriers)
        # the cookie the switch put in the GENEVE header is the label's
        assert seen[carriers[0]][port]["cookie"] == row["cookie"]


def test_testbed_exec_on_the_node_shows_the_flows_read_from_the_switch(lab, stickiness):
    five_tuple_only(stickiness)
    since = time.time()
    thread, _ = hold(lab, 2, seconds=4)
    try:
        established_held(lab, 2, since)
        server = f"{lab.host('WebA').ip}:9000"
        out = run_cli(
            "exec",
            lab.name,
            "GWLB-1a",
            "--",
            "curl",
            "-s",
            f"http://127.0.0.1:8081/flows?end={server}",
            timeout=30,
        )
        status = run_cli(
            "exec", lab.name, "GWLB-1a", "--", "curl", "-s", "http://127.0.0.1:8081/status"
        )
    finally:
        thread.join()
    assert out.returncode == 0, out.stderr
    rows = tcp_flows_by_client_port(json.loads(out.stdout), CLIENT1, server)
    assert len([r for r in rows.values() if r["established"]]) >= 2
    assert json.loads(status.stdout)["datapath"] == "switch"


def test_a_restarted_controller_keeps_the_flows_and_their_appliances(lab, stickiness):
    five_tuple_only(stickiness)
    since = time.time()
    thread, result = hold(lab, 6, seconds=12)
    try:
        before = established_held(lab, 6, since)
        pid = lab.state["controller"]["pid"]
        killed_at = time.time()
        os.kill(pid, signal.SIGKILL)
        lab.wait_for(
            lambda: next(
                (
                    e
                    for e in lab.events()
                    if e.status == "CONTROLLER_RESTARTED" and e.time >= killed_at
                ),
                None,
            ),
            30,
            "a new controller",
        )
        lab.wait_for(
            lambda: lab.state["state"] == "CREATE_COMPLETE",
            10,
            "the lab to be CREATE_COMPLETE again",
            last=lambda: lab.state["state"],
        )
    finally:
        thread.join()
    df = result["df"]
    assert df["error"].isna().all(), df[df["error"].notna()]  # every held flow lived
    after = held_rows(lab, since)
    for port, row in before.items():
        if port in after:  # (a flow that just closed may be gone from conntrack)
            assert after[port]["appliance"] == row["appliance"]
    status = rpc.call(str(lab.dir / CONTROLLER_SOCK), {"op": "status"}, timeout=15)
    assert status["errors"] == []
    # the new controller found the GWLB's flows as they were: nothing re-added or deleted
    assert all(t["added"] == t["deleted"] == 0 for t in status["takeovers"].values()), status[
        "takeovers"
    ]
    # new flows go on through the switch
    df = run_load(lab, "Client1", f"http://{web(lab, 'WebA')}/", requests=20, concurrency=4)
    assert df["error"].isna().all()


# ---- 2-tuple and 3-tuple stickiness -------------------------------------------------------------


def test_a_pairs_flows_stay_on_one_appliance_with_2_and_3_tuple_stickiness(lab, stickiness):
    if stickiness == FIVE:
        pytest.skip("runs with 2-tuple and 3-tuple stickiness")
    web_a = web(lab, "WebA")
    http = run_load(lab, "Client1", f"http://{web_a}/", requests=30, concurrency=6)
    udp = run_load(lab, "Client1", f"udp://{web_a}:9000", requests=30, concurrency=6)
    assert http["error"].isna().all()
    assert udp["error"].isna().all()
    carriers: dict[int, set[str]] = {6: set(), 17: set()}
    done = time.time()
    for fw in AZ_A:
        status = lab.wait_for(
            lambda fw=fw: (s := appliance_status(lab, fw))["time"] > done and s,
            5,
            f"{fw}'s status file written after the loads",
        )
        for f in status["flows"]:
            if {f["a"], f["b"]} == {CLIENT1, lab.host("WebA").ip} and f["proto"] in carriers:
                carriers[f["proto"]].add(fw)
    print(f"\n{stickiness}: TCP on {carriers[6]}, UDP on {carriers[17]}")
    assert len(carriers[6]) == 1  # 30 TCP connections, one pair: one appliance
    assert len(carriers[17]) == 1
    if stickiness == TWO:
        assert carriers[6] == carriers[17]  # the 2-tuple ignores the protocol
    pair = {CLIENT1, lab.host("WebA").ip}
    # (a pair learned before this test is the same row: no age filter)
    rows = [r for r in node_flows(lab, "GWLB-1a") if {r["a"], r["b"]} == pair]
    # the learned pairs: one per pair (2-tuple), one per pair and protocol (3-tuple)
    assert sorted(r["proto"] or 0 for r in rows) == ([0] if stickiness == TWO else [6, 17])
    for r in rows:
        proto = r["proto"] or 6
        assert {r["appliance"]} == {f"i-{fw}:6081" for fw in carriers[proto]}
