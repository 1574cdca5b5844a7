"""GWLB: inspection, flow symmetry, failover in both modes, and what the bump in the wire costs.

templates/gwlb.yaml (a second lab with TargetFailover=rebalance for that mode):
- filtering: Client1's HTTP passes, TCP 23 and everything from Client2 is dropped, counted by
  the appliances (nftables counters); GENEVE captures on AZ a's appliances, decoded, show
  which appliance saw each flow, in which directions;
- cost, against Baseline (the same web server in the same AZ, outside the inspection path):
  TCP throughput (iperf3), RTT of an established flow (echo), new connections/s (wrk with
  Connection: close), small-packet rate (64-byte UDP at increasing offered rates);
- failover: long-lived flows over both of AZ a's appliances (at least
  min_held_per_appliance on each), one appliance stopped, new connections started all along:
  no_rebalance (its flows break, new flows fail until it is detected unhealthy) and
  rebalance (its flows resume on the other appliance); flows on the other appliance must
  neither break nor move. Each held flow is followed by its full 5-tuple: its appliance in
  the node's table before the fault and after, the appliances whose GENEVE captures saw it
  after the fault, and the load client's outcome.
Writes summary.csv (one row per metric), runs.csv, failover.csv, failover_flows.csv (one
row per held flow), flows.csv (from the captures) and gwlb.png.

Which GWLB datapath steered (issue 15: "switch", Open vSwitch programmed by the controller,
or "node", the Python GWLB node) is in summary.csv (gwlb_datapath_switch, the reason in its
note), meta.json and the printed cost table: via-GWLB / baseline ratios of TCP throughput,
new connections/s and 64-byte UDP packets/s, the RTT the GWLB adds, and the CPU time per
packet of ovs-vswitchd and of AZ a's appliances (every process in their namespaces) during
the best UDP run, from /proc/<pid>/stat.

A quick run: testbed run gwlb -p seconds=3 -p repeats=1 -p rtt_samples=100 -p udp_rates=20,60
-p failover_modes=none
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testbed.errors import LabError
from testbed.gwlb.observe import (
    firewall_packets,
    flows_in_captures,
    node_flows,
    node_status,
    node_status_since,
    tcp_flows_by_client_port,
    wait_appliances_healthy,
    wait_status_after,
)
from testbed.lab.api import Lab, random_name
from testbed.packets.capture import decode_pcap
from testbed.paths import TEMPLATES
from testbed.probes.capture import Capture, start_capture
from testbed.probes.echo import echo_rtt
from testbed.results import ResultsDir
from testbed.traffic import iperf3, run_load, wait_listening, wrk

if TYPE_CHECKING:  # pandas is imported where the data is (the CLI starts faster)
    import pandas as pd

TEMPLATE = str(TEMPLATES / "gwlb.yaml")
PARAMS = {
    "seconds": (5.0, "length of each iperf3 / wrk run"),
    "repeats": (3, "runs per throughput / connection-rate case (alternating)"),
    "rtt_samples": (300, "echo round trips per RTT measurement"),
    "requests": (200, "HTTP requests of the filtering and symmetry run"),
    "udp_rates": ([10, 20, 40], "offered Mbit/s of 64-byte UDP (small-packet rate)"),
    "held_flows": (12, "long-lived flows opened at a time during each failover"),
    "min_held_per_appliance": (3, "held flows each of AZ a's appliances must carry"),
    "hold_s": (30.0, "how long each held flow lasts (it must outlive the detection)"),
    "gwlb_datapath": ("auto", "who steers: auto (the switch where the machine can), switch, node"),
    "failover_modes": (
        ["no_rebalance", "rebalance"],
        "target failover modes measured (rebalance in a lab of its own); none: no failover",
    ),
    "seed": (None, "recorded for re-runs"),
}
IPERF_PORT = 5201  # the port gwlb.yaml's security group admits iperf3 on (TCP and UDP)
VSWITCHD_PIDFILE = "/var/run/openvswitch/ovs-vswitchd.pid"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
AZ_A = ["FwA1", "FwA2"]
NODES = {"GWLB-1a": AZ_A, "GWLB-1b": ["FwB1", "FwB2"]}
DETECT_TIMEOUT_S = 30.0
HELD_BATCHES = 4  # batches of held_flows opened at most to place enough on each appliance


def run(params: dict[str, Any], results: ResultsDir) -> dict[str, Any]:
    """Both labs, every measurement; summary rows for the report."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    raw: list[dict[str, Any]] = []
    failover: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    modes = [m for m in params["failover_modes"] if m != "none"]
    wanted = params["gwlb_datapath"]
    with Lab.up(TEMPLATE, name=random_name("gw"), gwlb_datapath=wanted) as lab:
        datapath = _datapath(lab, rows)
        _wait_healthy(lab)
        _filtering(lab, params, rows, results)
        _throughput(lab, params, rows, raw)
        _rtt(lab, params, rows, raw)
        _connections(lab, params, rows, raw)
        _small_packets(lab, params, rows, raw)
        if "no_rebalance" in modes:
            _failover(lab, "no_rebalance", params, failover, held)
    if "rebalance" in modes:
        with Lab.up(
            TEMPLATE,
            params={"TargetFailover": "rebalance"},
            name=random_name("gw"),
            gwlb_datapath=wanted,
        ) as lab:
            _wait_healthy(lab)
            _failover(lab, "rebalance", params, failover, held)
    for f in failover:
        rows.append(
            _row(
                f"failover_{f['mode']}_flows_broken_on_surviving",
                f["other_flows_broken"],
                "flows",
                f"of {f['other_flows']} held on the healthy appliance; 0 on AWS",
            )
        )
        rows.append(
            _row(
                f"failover_{f['mode']}_flows_moved_on_surviving",
                f["other_flows_moved"],
                "flows",
                f"of {f['other_flows']} held on the healthy appliance; 0 on AWS",
            )
        )
        rows.append(
            _row(
                f"failover_{f['mode']}_victim_flows_kept",
                f["victim_flows_ok"] / f["victim_flows"],
                "fraction",
                f"of {f['victim_flows']}; no_rebalance: 0 (lost); rebalance: 1 (resumed)",
            )
        )
        rows.append(
            _row(
                f"failover_{f['mode']}_detection",
                f["detection_s"],
                "s",
                "about interval x unhealthy threshold",
            )
        )
        rows.append(
            _row(
                f"failover_{f['mode']}_new_flow_outage",
                f["new_flow_outage_s"],
                "s",
                "new flows fail until the appliance is detected unhealthy",
            )
        )
    pd.DataFrame(raw).to_csv(results.file("runs.csv"), index=False)
    pd.DataFrame(failover).to_csv(results.file("failover.csv"), index=False)
    pd.DataFrame(held).to_csv(results.file("failover_flows.csv"), index=False)
    summary = pd.DataFrame(rows)
    summary.to_csv(results.file("summary.csv"), index=False)
    print("\n" + summary.to_string(index=False))
    print("\n" + _cost_table(summary, datapath))
    _plot(summary, failover, results.file("gwlb.png"))
    results.write_meta(gwlb_datapath=datapath)
    return {"summary": summary.to_dict(orient="records"), "failover": failover}


def _row(
    metric: str,
    value: float,
    unit: str,
    note: str,
    baseline: float | None = None,
) -> dict[str, Any]:
    return {
        "metric": metric,
        "via_gwlb": round(value, 4),
        "baseline": None if baseline is None else round(baseline, 4),
        "ratio": None if not baseline else round(value / baseline, 4),
        "unit": unit,
        "note": note,
    }


def _datapath(lab: Lab, rows: list[dict[str, Any]]) -> dict[str, str]:
    """Which datapath steers the lab's GWLB (a summary row; its reason in the note)."""
    plan = lab.plan
    used = {"datapath": plan.gwlb_datapath, "reason": plan.gwlb_datapath_reason}
    note = plan.gwlb_datapath + (
        f": {plan.gwlb_datapath_reason}" if plan.gwlb_datapath_reason else ""
    )
    rows.append(_row("gwlb_datapath_switch", float(plan.gwlb_datapath == "switch"), "bool", note))
    print(f"  GWLB datapath: {note}", flush=True)
    return used


COST_METRICS = (
    ("tcp_throughput", "TCP throughput", ">= 0.60"),
    ("new_connections", "new connections/s", ">= 0.50"),
    ("udp_64B_pps", "UDP 64-byte packets/s", ">= 0.50"),
)


def _cost_table(summary: pd.DataFrame, datapath: dict[str, str]) -> str:
    """The closing table: via-GWLB / baseline ratios, RTT added, CPU per packet."""
    by = {r["metric"]: r for r in summary.to_dict(orient="records")}
    lines = [f"cost of the GWLB (datapath: {datapath['datapath']}) {datapath['reason']}".rstrip()]
    for metric, label, wanted in COST_METRICS:
        r = by.get(metric)
        if r:
            lines.append(
                f"  {label:24s} {r['via_gwlb']:>10} / {r['baseline']:>10} {r['unit']:9s} "
                f"ratio {r['ratio']:.2f} (issue 15: {wanted})"
            )
    if "rtt_added" in by:
        lines.append(
            f"  {'RTT added':24s} {by['rtt_added']['via_gwlb']:.3f} ms (issue 15: <= 0.30)"
        )
    for metric, label in (
        ("ovs_vswitchd_cpu_per_packet", "ovs-vswitchd CPU"),
        ("appliance_cpu_per_packet", "appliances' CPU"),
        ("softirq_cpu_per_packet", "softirq CPU (machine)"),
    ):
        if metric in by:
            r = by[metric]
            known = r["baseline"] is not None and r["baseline"] == r["baseline"]  # not NaN
            base = f" (baseline path {r['baseline']:.2f})" if known else ""
            lines.append(f"  {label:24s} {r['via_gwlb']:.2f} us/packet{base}")
    return "\n".join(lines)


def _url(lab: Lab, name: str, path: str = "/", scheme: str = "http", port: int = 80) -> str:
    return f"{scheme}://{lab.outputs[f'{name}PublicIp']}:{port}{path if scheme == 'http' else ''}"


def _wait_healthy(lab: Lab) -> None:
    wait_appliances_healthy(lab, "Appliances", NODES)


def _filtering(
    lab: Lab, params: dict[str, Any], rows: list[dict[str, Any]], results: ResultsDir
) -> None:
    """Allowed and denied flows, who dropped them, and each flow's appliance(s)."""
    import pandas as pd

    before = {c: firewall_packets(lab, AZ_A, c) for c in ("inspected", "dropped")}
    caps = {
        fw: start_capture(lab.host(fw), "udp port 6081", label=f"geneve-{fw}", max_seconds=120)
        for fw in AZ_A
    }
    try:
        ok = run_load(lab, "Client1", _url(lab, "WebA"), requests=params["requests"], concurrency=8)
        telnet = run_load(
            lab,
            "Client1",
            _url(lab, "WebA", scheme="tcp", port=23),
            requests=5,
            timeout=1.0,
            concurrency=5,
        )
        banned = run_load(lab, "Client2", _url(lab, "WebA"), requests=5, timeout=1.0, concurrency=5)
    finally:
        for cap in caps.values():
            cap.stop()
    wait_status_after(lab, AZ_A, time.time())
    grew = {c: firewall_packets(lab, AZ_A, c) - before[c] for c in before}
    seen = flows_in_captures({fw: decode_pcap(cap.path) for fw, cap in caps.items()})
    flows = pd.DataFrame(
        [
            {
                "flow": str(k),
                "appliances": ",".join(sorted(v["appliances"])),
                "directions": len(v["directions"]),
                "cookies": len(v["cookies"]),
            }
            for k, v in seen.items()
        ]
    )
    flows.to_csv(results.file("flows.csv"), index=False)
    both = flows[flows["directions"] == 2] if len(flows) else flows
    one = both[~both["appliances"].str.contains(",")] if len(both) else both
    print(
        f"  filtering: {ok['error'].isna().sum()}/{len(ok)} allowed requests answered, "
        f"{telnet['error'].notna().sum()}/5 telnet and {banned['error'].notna().sum()}/5 "
        f"Client2 connections dropped; firewalls: {grew}",
        flush=True,
    )
    print(
        f"  symmetry: {len(one)} of {len(both)} two-way flows seen by exactly one appliance",
        flush=True,
    )
    rows.append(_row("allowed_answered", ok["error"].isna().mean(), "fraction", "1"))
    rows.append(
        _row(
            "denied_dropped",
            (telnet["error"].notna().sum() + banned["error"].notna().sum()) / 10,
            "fraction",
            "1",
        )
    )
    rows.append(
        _row(
            "firewall_dropped_packets",
            grew["dropped"],
            "packets",
            "SYNs and retransmissions of the 10 denied connections",
        )
    )
    rows.append(
        _row(
            "two_way_flows_on_one_appliance",
            len(one) / max(1, len(both)),
            "fraction",
            "1 (symmetry)",
        )
    )


def _throughput(
    lab: Lab, params: dict[str, Any], rows: list[dict[str, Any]], raw: list[dict[str, Any]]
) -> None:
    via: list[float] = []
    base: list[float] = []
    for rep in range(params["repeats"]):
        for kind, server, out in (("baseline", "Baseline", base), ("gwlb", "WebA", via)):
            res = iperf3(
                lab,
                server,
                "Client1",
                target_ip=lab.outputs[f"{server}PublicIp"],
                seconds=params["seconds"],
            )
            out.append(res["bits_per_second"] / 1e6)
            raw.append(
                {
                    "test": "iperf3",
                    "path": kind,
                    "repeat": rep,
                    "value": out[-1],
                    "retransmits": res["retransmits"],
                }
            )
            print(f"  iperf3 {kind:8s} {out[-1]:7.1f} Mbit/s", flush=True)
    rows.append(
        _row(
            "tcp_throughput",
            statistics.median(via),
            "Mbit/s",
            "median of repeats",
            statistics.median(base),
        )
    )


def _rtt(
    lab: Lab, params: dict[str, Any], rows: list[dict[str, Any]], raw: list[dict[str, Any]]
) -> None:
    p50: dict[str, float] = {}
    for kind, server in (("baseline", "Baseline"), ("gwlb", "WebA")):
        res = echo_rtt(
            lab,
            "Client1",
            f"{lab.outputs[f'{server}PublicIp']}:9000",
            samples=params["rtt_samples"],
        )
        samples = sorted(res["rtt_us"])
        p50[kind] = statistics.median(samples) / 1000
        raw.append(
            {
                "test": "established-rtt",
                "path": kind,
                "repeat": 0,
                "value": p50[kind],
                "p99": samples[int(0.99 * len(samples))] / 1000,
            }
        )
        print(f"  echo rtt {kind:8s} p50 {p50[kind]:.3f} ms", flush=True)
    rows.append(
        _row(
            "rtt_p50",
            p50["gwlb"],
            "ms",
            f"added {p50['gwlb'] - p50['baseline']:.3f} ms",
            p50["baseline"],
        )
    )
    rows.append(
        _row(
            "rtt_added",
            p50["gwlb"] - p50["baseline"],
            "ms",
            "p50 via the GWLB minus p50 to Baseline (issue 15: <= 0.30 ms)",
        )
    )


def _connections(
    lab: Lab, params: dict[str, Any], rows: list[dict[str, Any]], raw: list[dict[str, Any]]
) -> None:
    via: list[float] = []
    base: list[float] = []
    new_flows: list[float] = []
    for rep in range(params["repeats"]):
        for kind, server, out in (("baseline", "Baseline", base), ("gwlb", "WebA", via)):
            before = node_status_since(lab, "GWLB-1a", time.time())["new_flows"]
            res = wrk(
                lab,
                "Client1",
                _url(lab, server),
                seconds=params["seconds"],
                connections=20,
                keepalive=False,
            )
            out.append(res["requests_per_second"])
            if kind == "gwlb":
                after = node_status_since(lab, "GWLB-1a", time.time())["new_flows"]
                new_flows.append((after - before) / params["seconds"])
            raw.append(
                {
                    "test": "wrk-new-connections",
                    "path": kind,
                    "repeat": rep,
                    "value": out[-1],
                    "errors": res["errors"],
                }
            )
            print(f"  new connections {kind:8s} {out[-1]:7.0f}/s", flush=True)
    rows.append(
        _row(
            "new_connections",
            statistics.median(via),
            "conn/s",
            f"GWLB node saw {statistics.median(new_flows):.0f} new flows/s",
            statistics.median(base),
        )
    )


def _small_packets(
    lab: Lab, params: dict[str, Any], rows: list[dict[str, Any]], raw: list[dict[str, Any]]
) -> None:
    """64-byte UDP from Client1: packets/s received at the server, via the GWLB or not, and
    the CPU time per received packet of ovs-vswitchd and of AZ a's appliances in the best
    run of each path."""
    best: dict[str, dict[str, float]] = {
        "baseline": {"received_pps": 0.0},
        "gwlb": {"received_pps": 0.0},
    }
    appliance_pids = [pid for fw in AZ_A for pid in _netns_pids(lab, fw)]
    for rate in params["udp_rates"]:
        for kind, server in (("baseline", "Baseline"), ("gwlb", "WebA")):
            switch_pid = _vswitchd_pid()
            cpu_before = (_cpu_seconds([switch_pid]), _cpu_seconds(appliance_pids))
            softirq_before = _softirq_seconds()
            pps = _udp_pps(lab, server, f"{rate}M", params["seconds"])
            received = max(1.0, pps["received_pps"] * params["seconds"])
            # The appliance's bpf data path and its kernel forwarding run in softirq, charged
            # to no appliance process: the machine's softirq time is where they show.
            pps["softirq_us_per_packet"] = (_softirq_seconds() - softirq_before) / received * 1e6
            pps["vswitchd_us_per_packet"] = (
                (_cpu_seconds([switch_pid]) - cpu_before[0]) / received * 1e6
            )
            pps["appliances_us_per_packet"] = (
                (_cpu_seconds(appliance_pids) - cpu_before[1]) / received * 1e6
            )
            if pps["received_pps"] > best[kind]["received_pps"]:
                best[kind] = pps
            raw.append({"test": "udp-64", "path": kind, "repeat": rate, **pps})
            print(
                f"  udp 64 B {kind:8s} offered {pps['sent_pps']:7.0f} pps, received "
                f"{pps['received_pps']:7.0f} pps; CPU per packet: ovs-vswitchd "
                f"{pps['vswitchd_us_per_packet']:.2f} us, appliances "
                f"{pps['appliances_us_per_packet']:.2f} us, softirq (machine) "
                f"{pps['softirq_us_per_packet']:.2f} us",
                flush=True,
            )
    via, base = best["gwlb"], best["baseline"]
    rows.append(
        _row(
            "udp_64B_pps",
            via["received_pps"],
            "packets/s",
            "best received over the rates",
            base["received_pps"],
        )
    )
    if "vswitchd_us_per_packet" in via:
        rows.append(
            _row(
                "ovs_vswitchd_cpu_per_packet",
                via["vswitchd_us_per_packet"],
                "us/packet",
                "ovs-vswitchd user+system time per UDP packet received, best run of each path",
                base.get("vswitchd_us_per_packet"),
            )
        )
        rows.append(
            _row(
                "appliance_cpu_per_packet",
                via["appliances_us_per_packet"],
                "us/packet",
                f"every process in {', '.join(AZ_A)}'s namespaces, per packet received "
                "(their kernel forwarding, and the bpf data path, is softirq time: below)",
            )
        )
        rows.append(
            _row(
                "softirq_cpu_per_packet",
                via["softirq_us_per_packet"],
                "us/packet",
                "the machine's softirq time per UDP packet received (kernel forwarding, "
                "nftables, the appliances' bpf data path), best run of each path; softirq "
                "run in a process's system call (ovs-vswitchd's sends) is its time too",
                base.get("softirq_us_per_packet"),
            )
        )


def _vswitchd_pid() -> int:
    return int(Path(VSWITCHD_PIDFILE).read_text().strip())


def _netns_pids(lab: Lab, host: str) -> list[int]:
    """Processes in a host's network namespace (the appliance and its data path)."""
    proc = subprocess.run(
        ["ip", "netns", "pids", lab.plan.host(host).netns],
        capture_output=True,
        text=True,
        check=False,
    )
    return [int(p) for p in proc.stdout.split()]


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of processes (all their threads) from /proc/<pid>/stat; a
    process gone counts nothing."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / CLOCK_TICKS


def _softirq_seconds() -> float:
    """The machine's softirq CPU seconds so far, all CPUs (/proc/stat)."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu "):
            return int(line.split()[7]) / CLOCK_TICKS  # user nice system idle iowait irq softirq
    return 0.0


def _udp_pps(lab: Lab, server: str, rate: str, seconds: float) -> dict[str, float]:
    srv = lab.host(server)
    listener = srv.popen(
        ["iperf3", "-s", "-1", "-p", str(IPERF_PORT)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(srv, IPERF_PORT)
        proc = lab.host("Client1").run(
            [
                "iperf3",
                "-c",
                lab.outputs[f"{server}PublicIp"],
                "-p",
                str(IPERF_PORT),
                "-u",
                "-b",
                rate,
                "-l",
                "64",
                "-t",
                f"{seconds:g}",
                "-J",
            ],
            timeout=seconds + 30,
        )
        end = json.loads(proc.stdout)["end"]["sum"]
    finally:
        if listener.poll() is None:
            listener.kill()
        listener.wait()
    received = end["packets"] - end["lost_packets"]
    return {"sent_pps": end["packets"] / seconds, "received_pps": received / seconds}


def _failover(
    lab: Lab,
    mode: str,
    params: dict[str, Any],
    results: list[dict[str, Any]],
    flows_out: list[dict[str, Any]],
) -> None:
    """Hold flows over both of AZ a's appliances, stop one, keep opening new connections;
    one row per mode in `results`, one per held flow in `flows_out`."""
    import pandas as pd

    victim = AZ_A[0]
    client_ip, server = lab.host("Client1").ip, f"{lab.host('WebA').ip}:9000"
    since = time.time()  # the flows of this phase: those the node created from now on
    out: dict[str, Any] = {}

    def fresh() -> None:
        out["new"] = run_load(
            lab, "Client1", _url(lab, "WebA"), requests=250, rate=10, concurrency=20, timeout=1.0
        )

    caps = {
        fw: start_capture(
            lab.host(fw), "udp port 6081", label=f"failover-{fw}", max_seconds=300, max_packets=None
        )
        for fw in AZ_A
    }
    holders: list[tuple[threading.Thread, dict[str, Any]]] = []
    try:
        before = _place_held_flows(lab, params, client_ip, server, since, holders)
        new_before = node_status(lab, "GWLB-1a")["new_flows"]
        prober = threading.Thread(target=fresh)
        prober.start()
        lab.wait_for(
            lambda: node_status(lab, "GWLB-1a")["new_flows"] >= new_before + 10,
            15,
            "the new-connection prober to reach the node",
        )
        try:
            lab.host(victim).fault("stop")
            fault_at = time.time()
            detection = lab.wait_target_state("Appliances", victim, "unhealthy", DETECT_TIMEOUT_S)
            for thread, _ in holders:
                thread.join()
            prober.join()
        finally:
            lab.host(victim).fault("start")
    finally:
        for cap in caps.values():
            cap.stop()
    after = _held_flows(lab, client_ip, server, since)
    seen = _seen_after(caps, server, fault_at)
    df = pd.concat([result["df"] for _, result in holders], ignore_index=True)
    rows = _held_flow_rows(mode, victim, df, before, after, seen, client_ip, server)
    flows_out.extend(rows)
    new = out["new"]
    failed = new[new["error"].notna() & (new["start"] >= fault_at)]
    outage = float(failed["start"].max() - fault_at) if len(failed) else 0.0
    events = [
        e.split(" ", 1)[1]
        for e in node_status(lab, "GWLB-1a")["events"]
        if float(e.split(" ", 1)[0]) >= since
    ]  # appliance states, rebalances
    on_victim = [r for r in rows if r["on_victim"]]
    others = [r for r in rows if not r["on_victim"]]
    if not on_victim or not others:  # what was kept or broken would be 0 of 0: no result
        raise LabError(
            f"failover {mode}: {len(on_victim)} held flows on {victim}, "
            f"{len(others)} on the other appliance: nothing to measure"
        )
    result = {
        "mode": mode,
        "victim": victim,
        "held_flows": len(rows),
        "victim_flows": len(on_victim),
        "victim_flows_ok": sum(r["outcome"] == "ok" for r in on_victim),
        "other_flows": len(others),
        "other_flows_ok": sum(r["outcome"] == "ok" for r in others),
        "other_flows_broken": sum(r["outcome"] != "ok" for r in others),
        "other_flows_moved": sum(bool(r["moved"]) for r in others),
        "detection_s": round(detection, 2),
        "new_flows_after_fault": int((new["start"] >= fault_at).sum()),
        "new_flows_failed": len(failed),
        "new_flow_outage_s": round(outage, 2),
        "node_events": "; ".join(events),
    }
    print(f"  failover {mode}: {result}", flush=True)
    results.append(result)
    lab.wait_target_state("Appliances", victim, "healthy", DETECT_TIMEOUT_S)


def _held_flows(lab: Lab, client_ip: str, server: str, since: float) -> dict[int, dict[str, Any]]:
    """The node's rows of this phase's held flows, by client port (full 5-tuple: one client
    address, one server address and port)."""
    rows = node_flows(lab, "GWLB-1a", end=server, max_age_s=time.time() - since)
    return tcp_flows_by_client_port(rows, client_ip, server)


def _place_held_flows(
    lab: Lab,
    params: dict[str, Any],
    client_ip: str,
    server: str,
    since: float,
    holders: list[tuple[threading.Thread, dict[str, Any]]],
) -> dict[int, dict[str, Any]]:
    """Open batches of held flows until each of AZ a's appliances carries at least
    min_held_per_appliance established ones (Maglev may put a batch on one appliance);
    their node rows by client port. LabError when HELD_BATCHES do not make it."""
    n, k = params["held_flows"], params["min_held_per_appliance"]
    target = _url(lab, "WebA", scheme="tcp", port=9000)
    for batch in range(1, HELD_BATCHES + 1):
        result: dict[str, Any] = {}

        def hold(result: dict[str, Any] = result) -> None:
            # An echo waits out the detection time (rebalance resumes it).
            result["df"] = run_load(
                lab, "Client1", target, requests=n, concurrency=n, hold=params["hold_s"], timeout=25
            )

        thread = threading.Thread(target=hold)
        thread.start()
        holders.append((thread, result))

        def established(want: int = n * batch) -> dict[int, dict[str, Any]] | None:
            # SYN-ACK and the server's first line came back through an appliance
            flows = {
                p: f
                for p, f in _held_flows(lab, client_ip, server, since).items()
                if f["established"]
            }
            return flows if len(flows) >= want else None

        flows = lab.wait_for(established, 30, f"{n * batch} held flows through GWLB-1a")
        per = {fw: sum(f["appliance"] == f"i-{fw}:6081" for f in flows.values()) for fw in AZ_A}
        print(f"  held flows after batch {batch}: {per}", flush=True)
        if min(per.values()) >= k:
            return flows
    raise LabError(
        f"{HELD_BATCHES} batches of {n} held flows did not put {k} on each of {', '.join(AZ_A)}"
    )


def _seen_after(caps: dict[str, Capture], server: str, fault_at: float) -> dict[int, set[str]]:
    """Client port -> the appliances whose GENEVE capture holds a packet of that held flow
    after the fault (what really went where, whatever the node's table says)."""
    ip, _, port = server.partition(":")
    seen: dict[int, set[str]] = {}
    for fw, cap in caps.items():
        for row in decode_pcap(cap.path):
            if row["proto"] != 6 or row["time"] < fault_at:
                continue
            if (row["dst"], row["dst_port"]) == (ip, int(port)):
                seen.setdefault(row["src_port"], set()).add(fw)
            elif (row["src"], row["src_port"]) == (ip, int(port)):
                seen.setdefault(row["dst_port"], set()).add(fw)
    return seen


def _held_flow_rows(
    mode: str,
    victim: str,
    df: pd.DataFrame,
    before: dict[int, dict[str, Any]],
    after: dict[int, dict[str, Any]],
    seen: dict[int, set[str]],
    client_ip: str,
    server: str,
) -> list[dict[str, Any]]:
    """One row per held flow: 5-tuple, appliance before and after, outcome."""
    rows: list[dict[str, Any]] = []
    for _, r in df.iterrows():
        if r["seen_port"] == "" or r["seen_port"] != r["seen_port"]:  # empty or NaN
            raise LabError(
                f"failover {mode}: a held flow has no client port ({r['error']}): "
                "it cannot be followed"
            )
        port = int(r["seen_port"])
        if port not in before:
            raise LabError(
                f"failover {mode}: held flow from port {port} is not in the "
                "node's table before the fault"
            )
        was = before[port]["appliance"]
        now = after.get(port, {}).get("appliance", "")
        elsewhere = sorted(fw for fw in seen.get(port, ()) if f"i-{fw}:6081" != was)
        error = r["error"] if isinstance(r["error"], str) and r["error"] else ""
        rows.append(
            {
                "mode": mode,
                "flow": f"tcp {client_ip}:{port} -> {server}",
                "client_port": port,
                "appliance_before": was,
                "appliance_after": now if now != was else "",
                "captured_after_fault": ",".join(sorted(seen.get(port, ()))),
                "on_victim": was == f"i-{victim}:6081",
                "moved": bool(now and now != was) or bool(elsewhere),
                "outcome": "broken" if error else "ok",
                "error": error,
                "latency_ms": r["latency_ms"],
            }
        )
    return rows


def _plot(summary: pd.DataFrame, failover: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = summary.dropna(subset=["baseline"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.bar(pairs["metric"], pairs["via_gwlb"] / pairs["baseline"], color="tab:blue")
    ax1.axhline(1.0, color="black", linewidth=0.8)
    ax1.set_ylabel("via GWLB / baseline")
    ax1.set_title("cost of the bump in the wire")
    ax1.tick_params(axis="x", rotation=30)
    modes = [f["mode"] for f in failover]
    kept = [f["victim_flows_ok"] / f["victim_flows"] for f in failover]
    others = [f["other_flows_ok"] / f["other_flows"] for f in failover]
    x = range(len(modes))
    ax2.bar([i - 0.2 for i in x], kept, width=0.4, label="flows of the stopped appliance")
    ax2.bar([i + 0.2 for i in x], others, width=0.4, label="flows of the other one")
    ax2.set_xticks(list(x), modes)
    ax2.set_ylabel("fraction of held flows that survived")
    ax2.set_title("target failover")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
