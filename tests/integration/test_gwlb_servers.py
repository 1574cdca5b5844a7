"""A gateway load balancer across servers (issue 18): templates/gwlb.yaml with cross-zone on,
the node datapath, each AZ on its own harness server. GENEVE from the GWLB node of one server
reaches the appliances of the other through the VXLAN tunnel; a full-size packet of a
1368-byte-MTU host crosses as one GENEVE packet (the GENEVE ends have the path MTU, 1450:
nothing fragmented, nothing lost) and one byte more is refused where it is sent, naming the
MTU; an appliance on the other server that fails its health checks stops getting new flows and
gets them again once healthy. The tunnels are held to 20 Mbit/s each way (--tunnel-rate: tbf
on both ends): TCP across one gets that, within one server it does not apply; the inter-AZ
delay is reported as not applied (no sch_netem here)."""

from __future__ import annotations

import os
import time

import pytest

from testbed.cluster.demo import state_dir_for_servers
from testbed.cluster.harness import ServerHarness
from testbed.gwlb.observe import (
    appliance_status,
    node_flows,
    node_status_since,
    wait_appliances_healthy,
    wait_node_sees,
)
from testbed.lab.api import Lab, random_name
from testbed.paths import TEMPLATES
from testbed.traffic import iperf3, run_load
from tests.harness_support import require_harness

# serial: a bound on failover detection (DETECT_S) and a measured tunnel rate, with two
# harness servers' own switches: measured with the machine to itself (scripts/test's pass 2).
pytestmark = [pytest.mark.integration, pytest.mark.serial]
GWLB = str(TEMPLATES / "gwlb.yaml")
PREFIX = (os.environ.get("TESTBED_NAME_PREFIX") or "g").lower()[:1]
AZ_A, AZ_B = ["FwA1", "FwA2"], ["FwB1", "FwB2"]
GENEVE_ENDS = ["GWLB-1a", "GWLB-1b", *AZ_A, *AZ_B]
CLIENT1 = "198.51.100.10"
TUNNEL_RATE = 20_000_000  # bits/s each way
DETECT_S = 5 * 2 + 8  # gwlb.yaml's health checks (interval 5 s, threshold 2) and margins


@pytest.fixture(scope="module")
def lab():
    require_harness()
    with pytest.MonkeyPatch.context() as mp:
        moved = state_dir_for_servers()  # harness servers have their own /run
        if moved:
            mp.setenv("TESTBED_STATE_DIR", moved)
        with ServerHarness(PREFIX, count=2) as h:
            s1, s2 = h.servers[:2]
            with Lab.up(
                GWLB,
                name=random_name("gs"),
                params={"CrossZone": "true"},
                gwlb_datapath="node",
                tunnel_rate="20mbit",
                servers={"us-east-1a": s1.name, "us-east-1b": s2.name},
                ssh_config=str(h.ssh_config),
            ) as lab:
                wait_appliances_healthy(
                    lab, "Appliances", {"GWLB-1a": AZ_A + AZ_B, "GWLB-1b": AZ_A + AZ_B}, 40
                )
                yield lab


def web_a(lab: Lab) -> str:
    return lab.outputs["WebAPublicIp"]


def new_flows(lab: Lab) -> dict[str, int]:
    """GWLB-1a's new flows per appliance so far."""
    return {
        a["key"]: a["new_flows"]
        for a in node_status_since(lab, "GWLB-1a", time.time())["appliances"]
    }


def ip_counters(lab: Lab, host: str) -> dict[str, int]:
    """The host's IP counters (/proc/net/snmp): fragments made, reassemblies asked, ..."""
    lines = lab.host(host).run(["cat", "/proc/net/snmp"]).stdout.splitlines()
    names, values = (x.split()[1:] for x in lines if x.startswith("Ip:"))
    return dict(zip(names, map(int, values), strict=True))


def mtu(lab: Lab, host: str) -> int:
    out = lab.host(host).run(["cat", "/sys/class/net/eth0/mtu"]).stdout
    return int(out)


def test_geneve_crosses_the_tunnel_to_the_appliances_of_the_other_server(lab):
    placed = {h.name: h.info.get("server") for h in lab.hosts}
    assert placed["GWLB-1a"] != placed["FwB1"] == placed["FwB2"]
    assert placed["GWLB-1a"] == placed["WebA"]
    inspected = {fw: appliance_status(lab, fw)["firewall"]["inspected"]["packets"] for fw in AZ_B}
    before = new_flows(lab)
    df = run_load(lab, "Client1", f"http://{web_a(lab)}/", requests=40, concurrency=4, timeout=15)
    after = new_flows(lab)
    assert df["error"].isna().all(), df["error"].value_counts()
    assert set(df["seen_ip"]) == {CLIENT1}  # a bump in the wire: no NAT
    crossed = {fw: after[f"i-{fw}:6081"] - before[f"i-{fw}:6081"] for fw in AZ_B}
    assert sum(crossed.values()) > 0, crossed  # cross-zone: srv2's appliances got flows
    # ... and inspected them (their own counters, rewritten every second)
    lab.wait_for(
        lambda: all(
            appliance_status(lab, fw)["firewall"]["inspected"]["packets"] > inspected[fw]
            for fw in AZ_B
            if crossed[fw]
        ),
        15,
        "the other server's appliances to count the flows they got",
    )


def test_full_size_packets_cross_whole_and_one_byte_more_is_refused(lab):
    host_mtu = mtu(lab, "Client1")
    assert host_mtu == mtu(lab, "WebA") == 1368  # 1450 - GENEVE's 82
    assert {mtu(lab, h) for h in GENEVE_ENDS} == {1450}  # the tunnel's path MTU
    before = {h: ip_counters(lab, h) for h in GENEVE_ENDS}
    # Full-size TCP segments (MSS 1316: 1368 less IP, TCP and timestamps) until a flow
    # goes through an appliance of the other server.
    for _ in range(4):
        result = iperf3(lab, "WebA", "Client1", target_ip=web_a(lab), seconds=1, parallel=4)
        assert result["bytes"] > 0
        assert result["raw"]["start"]["tcp_mss_default"] == host_mtu - 52
        flows = node_flows(lab, "GWLB-1a", end=f"{lab.host('WebA').ip}:5201", max_age_s=10)
        if {f["appliance"] for f in flows} & {f"i-{fw}:6081" for fw in AZ_B}:
            break
    else:
        pytest.fail("no iperf3 flow went to the other server's appliances in 4 tries")
    # The largest DF ping, fresh ICMP flows, none lost.
    for _ in range(2):
        ping = lab.host("Client1").run(
            [
                "ping",
                "-M",
                "do",
                "-c",
                "3",
                "-i",
                "0.2",
                "-W",
                "2",
                "-s",
                str(host_mtu - 28),
                web_a(lab),
            ],
            timeout=20,
        )
        assert ping.returncode == 0, ping.stdout
        assert " 0% packet loss" in ping.stdout, ping.stdout
    after = {h: ip_counters(lab, h) for h in GENEVE_ENDS}
    for h in GENEVE_ENDS:  # GENEVE of full-size packets left whole: no fragment made or met
        assert after[h]["FragCreates"] == before[h]["FragCreates"], h
        assert after[h]["ReasmReqds"] == before[h]["ReasmReqds"], h
    # One byte more with DF: refused at once where it is sent, naming the MTU.
    bigger = lab.host("Client1").run(
        ["ping", "-M", "do", "-c", "1", "-W", "1", "-s", str(host_mtu - 27), web_a(lab)],
        timeout=20,
    )
    assert bigger.returncode != 0
    assert f"message too long, mtu={host_mtu}" in bigger.stdout + bigger.stderr


def test_an_appliance_on_the_other_server_fails_over_and_comes_back(lab):
    victim = "FwB1"
    lab.host(victim).fault("refuse")  # its health checks fail (the admin port works anywhere)
    try:
        lab.wait_target_state("Appliances", victim, "unhealthy", DETECT_S)
        wait_node_sees(lab, "GWLB-1a", victim, "unhealthy", 5)
        before = new_flows(lab)
        df = run_load(
            lab, "Client1", f"http://{web_a(lab)}/", requests=40, concurrency=4, timeout=15
        )
        after = new_flows(lab)
        assert df["error"].isna().all(), df["error"].value_counts()
        moved = {k: after[k] - before[k] for k in after}
        assert moved[f"i-{victim}:6081"] == 0, moved
        assert sum(moved.values()) >= 40, moved
    finally:
        lab.host(victim).fault("clear")
    lab.wait_target_state("Appliances", victim, "healthy", DETECT_S)
    wait_node_sees(lab, "GWLB-1a", victim, "healthy", 5)
    before = new_flows(lab)
    for _ in range(4):  # new flows reach it again (the hash spreads them over four)
        df = run_load(
            lab, "Client1", f"http://{web_a(lab)}/", requests=20, concurrency=4, timeout=15
        )
        assert df["error"].isna().all(), df["error"].value_counts()
        if new_flows(lab)[f"i-{victim}:6081"] > before[f"i-{victim}:6081"]:
            break
    else:
        pytest.fail(f"{victim} got no new flow once healthy again")


def test_the_tunnels_carry_the_rate_set_and_say_what_is_not_applied(lab):
    assert lab.state["tunnel_shaping"].startswith("rate 20mbit each way (tbf")
    public = lab.outputs["BaselinePublicIp"]
    across = iperf3(lab, "Baseline", "Client1", target_ip=public, seconds=2)
    back = iperf3(lab, "Client1", "Baseline", seconds=2)  # srv1 -> the front end
    for got in (across["bits_per_second"], back["bits_per_second"]):
        # TCP payload of 1368-byte packets in VXLAN frames: ~0.95 of the rate at best
        assert 0.5 * TUNNEL_RATE < got < 1.02 * TUNNEL_RATE, got
    print(
        f"\ntunnel rate 20mbit: front end -> srv1 {across['bits_per_second'] / 1e6:.1f} "
        f"Mbit/s, srv1 -> front end {back['bits_per_second'] / 1e6:.1f} Mbit/s"
    )
