"""How many NLB flows one machine holds: conntrack entries, switch memory per flow, opening rate.

The NLB keeps no per-flow OpenFlow rule: each flow is one entry in Open vSwitch's conntrack
(the NLB's client-side zone, its label naming the target), so the flow table a machine can
hold is the userspace datapath's conntrack: its limit (`ovs-appctl dpctl/ct-get-maxconns`),
the memory each entry costs, and how fast new entries are made.

One lab (an internet-facing NLB over two AZs, `targets_per_az` http-backend targets in each,
two internet clients, a TCP listener on 9000, cross-zone on). For each size N in `sizes`
(ascending), the two clients together open N connections, Client1 to the AZ-a node's
address and Client2 to the AZ-b node's (testbed.probes.held_flows: at most `opening`
handshakes in flight each), and hold them idle, then:
  * the NLB zone's conntrack entries (`dpctl/ct-stats-show zone=Z`) and ovs-vswitchd's RSS,
    against the readings before the step: bytes per entry;
  * one line echoed on every held flow: does the path still know each one?
  * the opening rate (connections/s, handshake + identity line through the NLB);
then the flows are closed, each finishing its closing handshake through the NLB, and the
zone's TIME_WAIT entries are flushed (this lab's zone only) so the next step counts from
zero. A step where connections fail or echoes are lost is where it
breaks: the run stops growing there and says so.

One client never talks to both nodes: with the client's address preserved, a client that
uses one source port toward two nodes whose flows land on one target looks to the target
like one socket twice, and the second connection fails. AWS documents this ("connection
limitations related to observed socket reuse on the targets"); the lab reproduces it (a
first version of this experiment lost about 1 % of 5,000 flows that way).

Each step also records how much ovs-vswitchd's conntrack_tcp_seq_chk_failed (packets
its userspace conntrack found outside the TCP window: marked invalid, dropped) and
drop_action_of_pipeline counters grew: why flows failed, when they did.

Writes steps.csv (one row per size), summary.csv (the limit, bytes per entry, memory at the
limit, largest size held) and bench_flows.png.

The machine's ovs-vswitchd serves every lab on it: its RSS moves with other labs' traffic
too; the entry count is this lab's zone only.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from testbed.errors import BadInput
from testbed.experiments._nlb import node_addresses
from testbed.experiments.stacks import TARGET_GROUP, nlb_stack, target_names, write_stack
from testbed.lab.api import Lab, random_name
from testbed.lab.system import run as run_cmd
from testbed.probes.flows import DATAPATHS
from testbed.probes.footprint import OVS_PIDFILE, rss_kib
from testbed.probes.held_flows import HeldFlows
from testbed.results import ResultsDir
from testbed.waiting import WaitTimeout

TEMPLATE = "stack.yaml (generated into the results directory)"
PARAMS = {
    "sizes": ([1000, 5000, 20000], "held flows per step, ascending (both clients together)"),
    "targets_per_az": (2, "http-backend targets in each of the two AZs"),
    "opening": (200, "handshakes in flight per client while opening"),
    "close_s": (120.0, "longest wait for a step's flows to finish closing"),
    "timeout": (30.0, "per connect / echo timeout, seconds (a loaded switch is slow, not lossy)"),
}
PORT = 9000  # http-backend's TCP port: an identity line on connect, then echoes
CLIENTS = ("Client1", "Client2")
# One source address to one node address and port: the client's ephemeral ports (32768-60999).
PORTS_PER_PAIR = 28_000
PER_HOLDER = 15_000  # flows per holder process (under a 20,000 descriptor cap)
HEALTH = {
    "HealthCheckProtocol": "TCP",
    "HealthCheckIntervalSeconds": 5,
    "HealthCheckTimeoutSeconds": 4,
    "HealthyThresholdCount": 2,
    "UnhealthyThresholdCount": 2,
}
_MAXCONNS = re.compile(r"(\d+)")
_TOTAL = re.compile(r"Total:\s*(\d+)")


def check_sizes(sizes: list[int]) -> list[int]:
    """The steps, validated: positive, ascending, within what two clients' ports allow."""
    sizes = [int(s) for s in sizes]
    if not sizes or any(s < 2 for s in sizes):
        raise BadInput(f"sizes: {sizes} (each at least 2, one per client)")
    if sizes != sorted(sizes):
        raise BadInput(f"sizes: {sizes} must be ascending (the run stops where flows fail)")
    ceiling = PORTS_PER_PAIR * len(CLIENTS)  # each client to its own node address
    if sizes[-1] > ceiling:
        raise BadInput(
            f"sizes: {sizes[-1]} flows is more than two clients' ephemeral ports allow "
            f"toward one node address each ({ceiling})"
        )
    return sizes


def holder_jobs(size: int, nodes: list[str]) -> list[tuple[str, int, str]]:
    """(client, flows, node address) per holder process: half of `size` from each client to
    its node, in processes of at most PER_HOLDER flows (a process's descriptors are capped
    by the machine: RLIMIT_NOFILE's hard limit, which root cannot raise here)."""
    jobs = []
    for client, share, node in zip(CLIENTS, (size // 2, size - size // 2), nodes):
        while share > 0:
            n = min(share, PER_HOLDER)
            jobs.append((client, n, node))
            share -= n
    return jobs


def max_conns(datapath: str) -> int | None:
    """The userspace conntrack's limit (None where ovs-appctl does not say)."""
    argv = ["ovs-appctl", "dpctl/ct-get-maxconns"]
    proc = run_cmd([*argv, DATAPATHS.get(datapath, datapath)], check=False)
    m = _MAXCONNS.search(proc.stdout)
    return int(m.group(1)) if proc.returncode == 0 and m else None


def zone_entries(datapath: str, zone: int) -> int:
    argv = ["ovs-appctl", "dpctl/ct-stats-show", DATAPATHS.get(datapath, datapath)]
    proc = run_cmd([*argv, f"zone={zone}"], check=False)
    m = _TOTAL.search(proc.stdout)
    return int(m.group(1)) if m else 0


# Switch counters that say why flows fail (machine-wide: other labs add to them too).
COUNTERS = ("conntrack_tcp_seq_chk_failed", "drop_action_of_pipeline")


def switch_counters() -> dict[str, int]:
    """ovs-vswitchd's COUNTERS now (missing ones: 0)."""
    out = {}
    for name in COUNTERS:
        proc = run_cmd(["ovs-appctl", "coverage/read-counter", name], check=False)
        out[name] = int(proc.stdout.strip()) if proc.stdout.strip().isdigit() else 0
    return out


def vswitchd_rss_kib() -> int | None:
    try:
        return rss_kib(int(OVS_PIDFILE.read_text().strip()))
    except (OSError, ValueError):
        return None


def per_entry_bytes(entries: int, rss_kib_delta: int | None) -> float | None:
    """Switch memory per conntrack entry (None when it cannot be told)."""
    if not entries or rss_kib_delta is None or rss_kib_delta <= 0:
        return None
    return rss_kib_delta * 1024 / entries


def run(params: dict[str, Any], results: ResultsDir) -> dict[str, Any]:
    import pandas as pd

    sizes = check_sizes(list(params["sizes"]))
    per_az = (int(params["targets_per_az"]), int(params["targets_per_az"]))
    names = target_names(per_az)
    template = write_stack(
        results,
        nlb_stack(
            per_az,
            clients=len(CLIENTS),
            port=PORT,
            health=HEALTH,
            description="bench_flows experiment: NLB flows held open",
        ),
    )
    everyone = [t for ts in names.values() for t in ts]
    rows: list[dict[str, Any]] = []
    with Lab.up(template, params={"CrossZone": "true"}, name=random_name("bf")) as lab:
        lab.wait_healthy(TARGET_GROUP, everyone)
        by_az = node_addresses(lab)
        nodes = [by_az[az] for az in sorted(by_az)]  # Client1 -> AZ-a's node, Client2 -> AZ-b's
        zone = lab.plan.load_balancers[0].zone_dnat
        limit = max_conns(lab.datapath)
        print(
            f"lab {lab.name}: NLB zone {zone}, nodes {', '.join(nodes)}; conntrack limit "
            f"{limit if limit is not None else 'unknown'} ({lab.datapath})",
            flush=True,
        )
        for size in sizes:
            row = _step(lab, zone, nodes, everyone, size, params)
            rows.append(row)
            print(
                f"  {size:>7} flows: opened {row['opened']} in {row['open_s']:.1f} s "
                f"({row['open_per_s']:.0f}/s), failed {row['failed']}, entries "
                f"{row['entries']}, echo lost {row['lost']}, "
                f"{_fmt(row['bytes_per_entry'])} B/entry",
                flush=True,
            )
            if row["failed"] or row["lost"]:
                why = (
                    f"; the health checks failed {row['unhealthy_targets']} meanwhile"
                    if row["unhealthy_targets"]
                    else ""
                )
                print(f"  broke at {size} flows{why}: the run stops growing here", flush=True)
                break
    steps = pd.DataFrame(rows)
    steps.to_csv(results.file("steps.csv"), index=False)
    summary = _summary(steps, limit)
    pd.DataFrame([summary]).to_csv(results.file("summary.csv"), index=False)
    _plot(steps, results)
    results.write_meta(template=template, targets=names, conntrack_limit=limit)
    print("\n" + pd.DataFrame([summary]).T.to_string(header=False))
    return summary


def _step(
    lab: Lab, zone: int, nodes: list[str], everyone: list[str], size: int, params: dict[str, Any]
) -> dict:
    step_start = time.time()
    before_entries = zone_entries(lab.datapath, zone)
    before_rss = vswitchd_rss_kib()
    before_counters = switch_counters()
    jobs = holder_jobs(size, nodes)
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        t0 = time.monotonic()
        holders = list(
            pool.map(
                lambda job: HeldFlows(
                    lab.host(job[0]),
                    [f"{job[2]}:{PORT}"],
                    job[1],
                    opening=int(params["opening"]),
                    timeout=float(params["timeout"]),
                ),
                jobs,
            )
        )
        open_s = time.monotonic() - t0
    try:
        opened = sum(h.opened["opened"] for h in holders)
        failed = sum(h.opened["failed"] for h in holders)
        errors: dict[str, int] = {}
        for h in holders:
            for kind, n in h.opened["errors"].items():
                errors[kind] = errors.get(kind, 0) + n
        entries = zone_entries(lab.datapath, zone) - before_entries
        after_rss = vswitchd_rss_kib()
        delta = None if before_rss is None or after_rss is None else after_rss - before_rss
        with ThreadPoolExecutor(max_workers=len(holders)) as pool:
            echoes = list(pool.map(lambda h: h.echo(), holders))
    finally:
        for h in holders:
            if h.proc.poll() is None:
                h.close()
    # Targets the health checks failed during the step: the NLB ends their flows
    # (target_health_state.unhealthy.connection_termination.enabled, on by default as on AWS).
    unhealthy = sorted(
        {e["target"] for e in lab.target_events(step_start) if e["new"] == "unhealthy"}
    )
    # Every connection finishes closing through the NLB before its entries go: flushing
    # them first would strand the FINs, and the sockets left closing (orphans, counted
    # machine-wide) make the kernel reset other connections ("too many orphaned sockets").
    hosts = [lab.host(n) for n in (*CLIENTS, *everyone)]
    t_close = time.monotonic()
    closed = _wait_closed(lab, hosts, float(params["close_s"]))
    close_s = time.monotonic() - t_close
    # The closed flows' entries linger (TIME_WAIT): the next step starts from an empty
    # zone, so they are flushed, in this lab's NLB zone only. (ovs-appctl 3.1 takes no
    # datapath name before zone= here: the switch has one.)
    after_counters = switch_counters()
    run_cmd(["ovs-appctl", "dpctl/flush-conntrack", f"zone={zone}"])
    left = zone_entries(lab.datapath, zone)
    return {
        "flows": size,
        "opened": opened,
        "failed": failed,
        "errors": ";".join(f"{k}={v}" for k, v in sorted(errors.items())),
        "open_s": round(open_s, 3),
        "open_per_s": round(opened / open_s, 1) if open_s > 0 else None,
        "entries": entries,
        "rss_kib_delta": delta,
        "bytes_per_entry": per_entry_bytes(entries, delta),
        "answered": sum(e["answered"] for e in echoes),
        "lost": sum(e["lost"] for e in echoes),
        "echo_s": max(e["seconds"] for e in echoes),
        "left_after_flush": left,
        "closed": closed,
        "close_s": round(close_s, 3),
        "unhealthy_targets": ";".join(unhealthy),
        **{k: after_counters[k] - before_counters[k] for k in COUNTERS},
    }


# TCP states of a connection not yet done closing (TIME_WAIT is done: the peer has its ACK).
OPEN_STATES = ("established", "fin-wait-1", "fin-wait-2", "closing", "last-ack", "close-wait")


def open_sockets(host: Any) -> int:
    """TCP sockets of `host` to or from port PORT not done closing."""
    states = [w for st in OPEN_STATES for w in ("state", st)]
    argv = ["ss", "-Htan", *states, f"( sport = :{PORT} or dport = :{PORT} )"]
    proc = host.run(argv, timeout=30)
    return len([line for line in proc.stdout.splitlines() if line.strip()])


def _wait_closed(lab: Lab, hosts: list[Any], timeout: float) -> bool:
    """Whether every held connection finished closing within `timeout` (clients and
    targets have no socket on PORT left in an open or closing state)."""
    try:
        lab.wait_for(
            lambda: all(open_sockets(h) == 0 for h in hosts),
            timeout,
            "the held flows finished closing",
            interval=0.5,
        )
    except WaitTimeout:
        return False
    return True


def _summary(steps: Any, limit: int | None) -> dict[str, Any]:
    held = steps[(steps["failed"] == 0) & (steps["lost"] == 0)]
    # The largest step's reading: ovs-vswitchd's RSS moves in chunks and with other labs,
    # so the most entries give the least noisy bytes per entry.
    measured = steps.dropna(subset=["bytes_per_entry"])
    bytes_per_entry = (
        float(measured.sort_values("entries").iloc[-1]["bytes_per_entry"])
        if len(measured)
        else None
    )
    broke = steps[(steps["failed"] > 0) | (steps["lost"] > 0)]
    return {
        "largest_held": int(held["flows"].max()) if len(held) else 0,
        "broke_at": int(broke["flows"].min()) if len(broke) else None,
        "conntrack_limit": limit,
        "bytes_per_entry": bytes_per_entry,
        "memory_at_limit_gib": (
            round(limit * bytes_per_entry / 2**30, 2) if limit and bytes_per_entry else None
        ),
        "open_per_s_median": float(steps["open_per_s"].median()),
    }


def _fmt(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f}"


def _plot(steps: Any, results: ResultsDir) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(steps["flows"], steps["entries"], marker="o", label="conntrack entries")
    left.plot(steps["flows"], steps["flows"], linestyle=":", label="one per flow")
    left.set_xlabel("flows held")
    left.set_ylabel("entries in the NLB zone")
    left.legend()
    right.plot(steps["flows"], steps["open_per_s"], marker="o")
    right.set_xlabel("flows held")
    right.set_ylabel("connections opened per second")
    fig.suptitle("NLB flows held on one machine")
    fig.tight_layout()
    fig.savefig(results.file("bench_flows.png"))
    plt.close(fig)
