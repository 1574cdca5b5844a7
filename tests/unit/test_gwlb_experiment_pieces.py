"""Pieces of the gwlb experiment that need no lab: CPU time from /proc, the closing cost
table and its parameters (issue 15)."""

from __future__ import annotations

import os
import time

import pandas as pd

from testbed.experiments import gwlb
from testbed.results import parse_params


def test_cpu_seconds_of_processes_grow_with_their_work():
    before = gwlb._cpu_seconds([os.getpid()])
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    grown = gwlb._cpu_seconds([os.getpid()]) - before
    assert 0.1 <= grown <= 1.0
    assert gwlb._cpu_seconds([2**22 + 1]) == 0.0  # no such process: nothing


def test_cost_table_gives_the_ratios_the_rtt_added_and_cpu_per_packet():
    rows = [
        gwlb._row("tcp_throughput", 1500.0, "Mbit/s", "", 2000.0),
        gwlb._row("new_connections", 900.0, "conn/s", "", 1500.0),
        gwlb._row("udp_64B_pps", 40000.0, "packets/s", "", 50000.0),
        gwlb._row("rtt_added", 0.21, "ms", ""),
        gwlb._row("ovs_vswitchd_cpu_per_packet", 9.5, "us/packet", "", 4.0),
        gwlb._row("appliance_cpu_per_packet", 2.25, "us/packet", ""),
        gwlb._row("softirq_cpu_per_packet", 3.5, "us/packet", "", 1.25),
    ]
    table = gwlb._cost_table(pd.DataFrame(rows), {"datapath": "switch", "reason": ""})
    lines = table.splitlines()
    assert lines[0] == "cost of the GWLB (datapath: switch)"
    assert "ratio 0.75 (issue 15: >= 0.60)" in lines[1]
    assert "ratio 0.60 (issue 15: >= 0.50)" in lines[2]
    assert "ratio 0.80" in lines[3]
    assert "0.210 ms" in lines[4]
    assert lines[5].endswith("9.50 us/packet (baseline path 4.00)")
    assert lines[6].endswith("2.25 us/packet")
    assert lines[7].endswith("3.50 us/packet (baseline path 1.25)")


def test_softirq_seconds_of_the_machine_only_grow():
    first = gwlb._softirq_seconds()
    assert first > 0.0  # a machine that has run a network has spent softirq time
    assert gwlb._softirq_seconds() >= first


def test_quick_parameters():
    params = parse_params(gwlb, {"failover_modes": "none", "gwlb_datapath": "node"})
    assert params["failover_modes"] == ["none"]
    assert params["gwlb_datapath"] == "node"
    assert parse_params(gwlb, {})["failover_modes"] == ["no_rebalance", "rebalance"]
