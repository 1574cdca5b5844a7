"""The GWLB on a real lab (templates/gwlb.yaml): inspection of ingress and egress through the
appliances in GENEVE, symmetric flows, appliance health, target failover, scaling.

Every test runs on the lab's default GWLB datapath (the switch steers where the machine can,
issue 15); the core ones (inspection, symmetry in captures, a failover) run again on the
node datapath (the Python GWLB node: the fallback), in a second lab after the first is down.
Per-flow progress is read from the appliances' own counters: the switch's conntrack counts
no packets per flow."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest

from testbed import rpc
from testbed.gwlb.observe import (
    NODE_SEES_S,
    appliance_status,
    firewall_packets,
    flows_in_captures,
    node_flows,
    node_status_since,
    tcp_flows_by_client_port,
    wait_appliances_healthy,
    wait_node_sees,
)
from testbed.lab.api import Lab, random_name
from testbed.packets.capture import decode_pcap
from testbed.paths import TEMPLATES
from testbed.probes.capture import start_capture
from testbed.traffic import iperf3, run_load

pytestmark = pytest.mark.integration
GWLB = str(TEMPLATES / "gwlb.yaml")
INTERVAL_S, THRESHOLD = 5, 2  # gwlb.yaml's health checks
DETECT_S = INTERVAL_S * THRESHOLD + 8  # + check timeout and scheduling margins
AZ_A = ["FwA1", "FwA2"]
CLIENT1 = "198.51.100.10"


@pytest.fixture(scope="module", params=["auto", "node"])
def datapath(request) -> str:
    """The GWLB datapath asked for: the default (auto: the switch where the machine can), then
    the node (pytest runs every test of one before the other: one lab at a time)."""
    return request.param


@pytest.fixture(scope="module")
def gwlb_lab(datapath):
    with Lab.up(GWLB, gwlb_datapath=datapath, name=random_name("gw")) as lab:
        wait_all_healthy(lab)
        print(f"\nGWLB datapath: {lab.plan.gwlb_datapath} {lab.plan.gwlb_datapath_reason}")
        yield lab


def default_datapath_only(datapath: str) -> None:
    """The node datapath runs the core tests only."""
    if datapath == "node":
        pytest.skip("the node datapath (fallback) runs the core tests only")


# ---- helpers ---------------------------------------------------------------------------


def wait_state(lab, target: str, state: str, timeout: float) -> float:
    return lab.wait_target_state("Appliances", target, state, timeout)


def wait_all_healthy(lab, timeout: float = 40) -> None:
    by_node = {"GWLB-1a": AZ_A, "GWLB-1b": ["FwB1", "FwB2"]}
    wait_appliances_healthy(lab, "Appliances", by_node, timeout)


def web(lab, name: str) -> str:
    return lab.outputs[f"{name}PublicIp"]


def holder(lab, **request) -> dict:
    reply = rpc.call(str(lab.dir / "holder.sock"), request)
    assert reply.get("ok"), reply
    return reply


def held_flows(lab, target: str, n: int, hold: float, timeout: float) -> tuple:
    """Start n long-lived TCP flows (a line echoed every second) from Client1; a thread and
    the dict its DataFrame lands in."""
    result: dict = {}

    def go() -> None:
        result["df"] = run_load(
            lab, "Client1", target, requests=n, concurrency=n, hold=hold, timeout=timeout
        )

    t = threading.Thread(target=go)
    t.start()
    return t, result


# ---- inspection --------------------------------------------------------------------------


def test_allowed_traffic_passes_with_the_client_address(gwlb_lab):
    for name, az in (("WebA", "us-east-1a"), ("WebB", "us-east-1b")):
        df = run_load(
            gwlb_lab, "Client1", f"http://{web(gwlb_lab, name)}/", requests=40, concurrency=4
        )
        assert df["error"].isna().all(), df["error"].value_counts()
        assert set(df["seen_ip"]) == {"198.51.100.10"}  # a bump in the wire: no NAT
        assert set(df["backend_az"]) == {az}
    status = node_status_since(gwlb_lab, "GWLB-1a", time.time())
    assert status["packets_in"] > 0
    assert status["packets_back"] > 0
    assert {e["name"] for e in status["endpoints"] if e["served"]} == {"EndpointA"}
    used = {a["key"] for a in status["appliances"] if a["new_flows"]}
    assert used <= {"i-FwA1:6081", "i-FwA2:6081"}  # cross-zone off: this AZ's appliances


def test_denied_traffic_is_dropped_and_counted_by_an_appliance(gwlb_lab, datapath):
    default_datapath_only(datapath)
    before = firewall_packets(gwlb_lab, AZ_A, "dropped")
    web_a = web(gwlb_lab, "WebA")
    telnet = run_load(gwlb_lab, "Client1", f"tcp://{web_a}:23", requests=3, timeout=1.5)
    banned = run_load(gwlb_lab, "Client2", f"http://{web_a}/", requests=3, timeout=1.5)
    assert set(telnet["error"]) == {"timeout"}  # dropped, not refused by WebA
    assert set(banned["error"]) == {"timeout"}
    direct = run_load(
        gwlb_lab, "WebB", f"tcp://{gwlb_lab.host('WebA').ip}:23", requests=1, timeout=1.5
    )
    assert set(direct["error"]) == {"refused"}  # inside the VPC, no appliance: WebA says no
    baseline = run_load(gwlb_lab, "Client2", f"http://{web(gwlb_lab, 'Baseline')}/", requests=3)
    assert baseline["error"].isna().all()  # Client2 is refused only on inspected paths
    # The appliances rewrite their status files every second: wait for the count to show.
    gwlb_lab.wait_for(
        lambda: firewall_packets(gwlb_lab, AZ_A, "dropped") - before >= 6,
        5,
        "the appliances to count 6 dropped packets",
    )


def test_egress_goes_through_the_appliances_too(gwlb_lab, datapath):
    default_datapath_only(datapath)
    before = node_status_since(gwlb_lab, "GWLB-1a", time.time())["packets_in"]
    df = run_load(gwlb_lab, "WebA", "http://198.51.100.10/", requests=10)
    assert df["error"].isna().all()
    assert set(df["backend"]) == {"Client1"}
    # the internet gateway's 1:1 NAT, after inspection
    assert set(df["seen_ip"]) == {web(gwlb_lab, "WebA")}
    after = node_status_since(gwlb_lab, "GWLB-1a", time.time())["packets_in"]
    assert after - before >= 40
    # Replies from Client2's address are dropped on the way back in.
    df = run_load(gwlb_lab, "WebA", "tcp://198.51.100.11:9000", requests=2, timeout=1.5)
    assert set(df["error"]) == {"timeout"}


def test_both_directions_of_every_flow_meet_one_appliance(gwlb_lab):
    caps = {
        fw: start_capture(gwlb_lab.host(fw), "udp port 6081", label=f"geneve-{fw}") for fw in AZ_A
    }
    try:
        df = run_load(
            gwlb_lab, "Client1", f"http://{web(gwlb_lab, 'WebA')}/", requests=60, concurrency=6
        )
        assert df["error"].isna().all()
    finally:
        for cap in caps.values():
            cap.stop()
    rows = {fw: decode_pcap(cap.path) for fw, cap in caps.items()}
    node_ip = gwlb_lab.host("GWLB-1a").ip
    for fw_rows in rows.values():
        for row in fw_rows:
            assert node_ip in (row["outer_src"], row["outer_dst"])
            assert row["vni"] == 0
            assert row["endpoint_ip"] == "10.0.2.4"
            assert row["attachment_id"] == 0
    web_a = (gwlb_lab.host("WebA").ip, 80)
    flows = {k: v for k, v in flows_in_captures(rows).items() if web_a in k[1:]}
    assert len(flows) >= 60
    assert all(len(f["appliances"]) == 1 for f in flows.values())  # one appliance per flow
    assert all(len(f["directions"]) == 2 for f in flows.values())  # it saw both directions
    assert all(len(f["cookies"]) == 1 for f in flows.values())  # one flow cookie each
    assert set().union(*(f["appliances"] for f in flows.values())) == set(AZ_A)


# ---- health, failover, scaling ---------------------------------------------------------------


def held_on_node(lab, server: str, since: float) -> dict[int, dict]:
    """GWLB-1a's rows of the flows from Client1 to `server` ("ip:port") created since
    `since` (wall clock), by client port: the full 5-tuple, never older flows that reuse a
    client port."""
    rows = node_flows(lab, "GWLB-1a", end=server, max_age_s=time.time() - since)
    return tcp_flows_by_client_port(rows, CLIENT1, server)


def appliance_flow_packets(lab, fw: str, server: str, after: float) -> dict[int, int]:
    """Packets (both directions) the appliance itself counted per held flow (client port), from
    a status file written after `after`. Its rows start with the side it saw first."""
    ip, _, port = server.partition(":")
    status = lab.wait_for(
        lambda: (s := appliance_status(lab, fw))["time"] > after and s,
        5,
        f"{fw}'s status file to be rewritten",
    )
    counted = {}
    for f in status["flows"]:
        ends = {(f["a"], f["a_port"]), (f["b"], f["b_port"])}
        client = [p for a, p in ends if a == CLIENT1]
        if (ip, int(port)) in ends and client:
            counted[client[0]] = f["packets_ab"] + f["packets_ba"]
    return counted


def failover_with_held_flows(
    lab,
    victim: str,
    survivor: str,
    *,
    hold: float,
    timeout: float,
    per_appliance: int = 2,
    batch: int = 10,
) -> dict:
    """Hold flows from Client1 to WebA:9000 until both appliances carry `per_appliance` or
    more, stop `victim`, wait until the holder and the node have it unhealthy and the held
    flows are over (victim restarted after). The facts per flow and the node's counters."""
    server = f"{lab.host('WebA').ip}:9000"
    target = f"tcp://{web(lab, 'WebA')}:9000"
    since = time.time()
    holds, stopped = [], False
    try:
        for count in range(batch, 4 * batch + 1, batch):  # Maglev may put a batch on one
            holds.append(held_flows(lab, target, batch, hold=hold, timeout=timeout))
            before = lab.wait_for(
                lambda n=count: (
                    len(
                        f := {
                            p: r
                            for p, r in held_on_node(lab, server, since).items()
                            if r["established"]
                        }
                    )
                    >= n
                    and f
                ),
                20,
                f"{count} held flows established through GWLB-1a",
            )
            on = {
                fw: [p for p, r in before.items() if r["appliance"] == f"i-{fw}:6081"]
                for fw in (victim, survivor)
            }
            if min(len(v) for v in on.values()) >= per_appliance:
                break
        assert min(len(v) for v in on.values()) >= per_appliance, on
        counters = {
            a["key"]: a for a in node_status_since(lab, "GWLB-1a", time.time())["appliances"]
        }
        fw_before = appliance_flow_packets(lab, survivor, server, time.time())
        lab.host(victim).fault("stop")
        stopped = True
        detection = wait_state(lab, victim, "unhealthy", DETECT_S)
        wait_node_sees(lab, "GWLB-1a", victim, "unhealthy", NODE_SEES_S)
        # new connections meanwhile: they must all go to the healthy appliance
        new_before = new_flows_by_appliance(lab, time.time())
        new = run_load(lab, "Client1", f"http://{web(lab, 'WebA')}/", requests=40, concurrency=4)
        new_after = new_flows_by_appliance(lab, time.time())
    finally:
        for thread, _ in holds:
            thread.join()
        if stopped:
            lab.host(victim).fault("start")
    df = pd.concat([result["df"] for _, result in holds], ignore_index=True)
    outcome = {
        int(r["seen_port"]): r["error"] if isinstance(r["error"], str) else None
        for _, r in df.iterrows()
    }
    return {
        "on": on,
        "before": before,
        "after": held_on_node(lab, server, since),
        "outcome": outcome,
        "detection": detection,
        "counters_before": counters,
        "counters_after": {
            a["key"]: a for a in node_status_since(lab, "GWLB-1a", time.time())["appliances"]
        },
        "survivor_packets_before": fw_before,
        "survivor_packets_after": appliance_flow_packets(lab, survivor, server, time.time()),
        "new_errors": int(new["error"].notna().sum()),
        "new_flows": {k: new_after[k] - new_before[k] for k in new_after},
    }


def new_flows_by_appliance(lab, since: float) -> dict[str, int]:
    """GWLB-1a's new flows per appliance, counted up to `since` at least."""
    return {
        a["key"]: a["new_flows"] for a in node_status_since(lab, "GWLB-1a", since)["appliances"]
    }


def assert_survivor_flows_untouched(facts: dict, survivor: str) -> None:
    """Every flow held on the surviving appliance lived to the end, never left it (node
    table, node counters) and went on through it (the appliance's own counters)."""
    key = f"i-{survivor}:6081"
    for port in facts["on"][survivor]:
        assert facts["outcome"][port] is None, (port, facts["outcome"][port])  # not broken
        assert facts["after"][port]["appliance"] == key, facts["after"][port]  # not moved
        # packets after the fault went on through the survivor (its own count per flow)
        assert facts["survivor_packets_after"][port] > facts["survivor_packets_before"][port]
        if facts["after"][port]["fwd_packets"] is not None:  # the node datapath counts too
            assert facts["after"][port]["fwd_packets"] > facts["before"][port]["fwd_packets"]
            assert facts["after"][port]["rev_packets"] > facts["before"][port]["rev_packets"]
    assert (
        facts["counters_after"][key]["rehashed_out"]
        == facts["counters_before"][key]["rehashed_out"]
    )  # the node moved none of them
    # new connections during the failover: all answered, none sent to the dead appliance
    victim = next(f"i-{fw}:6081" for fw in facts["on"] if fw != survivor)
    assert facts["new_errors"] == 0
    assert facts["new_flows"][victim] == 0
    assert facts["new_flows"][key] >= 40


def test_no_rebalance_dead_appliance_loses_its_flows_others_live_new_flows_go_elsewhere(gwlb_lab):
    wait_all_healthy(gwlb_lab)
    victim, survivor = AZ_A
    facts = failover_with_held_flows(gwlb_lab, victim, survivor, hold=25, timeout=4)
    try:
        assert_survivor_flows_untouched(facts, survivor)
        for port in facts["on"][victim]:  # no_rebalance: they stay on the dead one, lost
            assert facts["outcome"][port] == "timeout", (port, facts["outcome"][port])
            assert facts["after"][port]["appliance"] == f"i-{victim}:6081"
        assert (
            facts["counters_after"][f"i-{victim}:6081"]["rehashed_out"]
            == facts["counters_before"][f"i-{victim}:6081"]["rehashed_out"]
        )
    finally:
        wait_state(gwlb_lab, victim, "healthy", DETECT_S)
        wait_node_sees(gwlb_lab, "GWLB-1a", victim, "healthy", NODE_SEES_S)


def test_scale_in_drains_and_scale_out_takes_new_flows(gwlb_lab, datapath):
    default_datapath_only(datapath)
    wait_all_healthy(gwlb_lab)
    web_a = web(gwlb_lab, "WebA")

    def new_flows() -> dict[str, int]:
        return new_flows_by_appliance(gwlb_lab, time.time())

    holder(gwlb_lab, op="deregister", tg="Appliances", target="FwA2")
    try:
        wait_state(gwlb_lab, "FwA2", "draining", 3)
        wait_node_sees(gwlb_lab, "GWLB-1a", "FwA2", "draining", NODE_SEES_S)
        before = new_flows()
        df = run_load(gwlb_lab, "Client1", f"http://{web_a}/", requests=40, concurrency=4)
        assert df["error"].isna().all()
        after = new_flows()
        assert after["i-FwA2:6081"] == before["i-FwA2:6081"]  # draining: no new flows
        assert after["i-FwA1:6081"] - before["i-FwA1:6081"] >= 40
        wait_state(gwlb_lab, "FwA2", "removed", 10 + 5)  # gwlb.yaml's deregistration delay
    finally:
        holder(gwlb_lab, op="register", tg="Appliances", target="FwA2")
    wait_state(gwlb_lab, "FwA2", "healthy", DETECT_S)
    wait_node_sees(gwlb_lab, "GWLB-1a", "FwA2", "healthy", NODE_SEES_S)
    before = new_flows()
    df = run_load(gwlb_lab, "Client1", f"http://{web_a}/", requests=60, concurrency=6)
    assert df["error"].isna().all()
    assert new_flows()["i-FwA2:6081"] > before["i-FwA2:6081"]  # back in service: new flows


@pytest.mark.slow
def test_rebalance_moves_only_the_dead_appliances_flows_and_they_resume():
    with Lab.up(GWLB, params={"TargetFailover": "rebalance"}, name=random_name("gw")) as lab:
        wait_all_healthy(lab)
        victim, survivor = AZ_A
        # An echo waits out the detection time: a rehashed flow resumes on the survivor.
        facts = failover_with_held_flows(lab, victim, survivor, hold=30, timeout=25)
        assert_survivor_flows_untouched(facts, survivor)
        for port in facts["on"][victim]:
            assert facts["outcome"][port] is None, (port, facts["outcome"][port])
            assert facts["after"][port]["appliance"] == f"i-{survivor}:6081"
            assert facts["survivor_packets_after"][port] > 0  # it went on through FwA2
        moved = (
            facts["counters_after"][f"i-{victim}:6081"]["rehashed_out"]
            - facts["counters_before"][f"i-{victim}:6081"]["rehashed_out"]
        )
        assert moved >= len(facts["on"][victim])
        print(
            f"\nrebalance: {victim} unhealthy after {facts['detection']:.1f} s, "
            f"{len(facts['on'][victim])} flows resumed on {survivor}, "
            f"{len(facts['on'][survivor])} untouched"
        )


@pytest.mark.slow
def test_rebalance_resumes_flows_on_another_appliance_with_2_tuple_stickiness():
    with Lab.up(
        GWLB,
        params={"TargetFailover": "rebalance", "Stickiness": "source_ip_dest_ip"},
        name=random_name("gw"),
    ) as lab:
        wait_all_healthy(lab)
        # An echo may wait out the detection time: the flow resumes when it is rehashed.
        thread, result = held_flows(lab, f"tcp://{web(lab, 'WebA')}:9000", 6, hold=30, timeout=25)
        pair = {lab.host("WebA").ip, "198.51.100.10"}

        def pair_flows() -> list[dict]:
            return [f for f in node_flows(lab, "GWLB-1a") if {f["a"], f["b"]} == pair]

        lab.wait_for(pair_flows, 10, "GWLB-1a's flow of Client1 <-> WebA")
        flows = pair_flows()
        assert len(flows) == 1  # 2-tuple: all of Client1 <-> WebA is one flow
        victim_key = flows[0]["appliance"]
        victim = victim_key.split(":")[0].removeprefix("i-")
        lab.host(victim).fault("stop")
        try:
            took = wait_state(lab, victim, "unhealthy", DETECT_S)
            thread.join()
            df = result["df"]
            assert df["error"].isna().all(), df[["error", "latency_ms"]]  # all resumed
            status = node_status_since(lab, "GWLB-1a", time.time())
            moved = {a["key"]: a["rehashed_out"] for a in status["appliances"]}
            assert moved[victim_key] >= 1
            assert any("rebalance" in e for e in status["events"])
            print(f"\nrebalance: {victim} unhealthy after {took:.1f} s, 6 flows resumed")
        finally:
            lab.host(victim).fault("start")


@pytest.mark.slow
def test_throughput_through_the_gwlb_and_without_it(gwlb_lab, datapath):
    default_datapath_only(datapath)
    via = iperf3(gwlb_lab, "WebA", "Client1", target_ip=web(gwlb_lab, "WebA"), seconds=5)
    direct = iperf3(gwlb_lab, "Baseline", "Client1", target_ip=web(gwlb_lab, "Baseline"), seconds=5)
    print(
        f"\nTCP Client1 -> WebA via the GWLB {via['bits_per_second'] / 1e6:.0f} Mbit/s, "
        f"-> Baseline without it {direct['bits_per_second'] / 1e6:.0f} Mbit/s"
    )
    assert via["bits_per_second"] > 20e6
