"""TCP handshake RTT (SYN -> SYN-ACK) through a load balancer and directly to a target,
timed from a capture on the client of real connect() calls.

    res = rtt_probe(lab, "WebB1", via="10.0.0.4:80", direct="10.0.1.4:80", samples=200)
    res.via.p50_ms, res.direct.p50_ms, res.added["p50"]   # ms, and the via/direct ratio

The kernel makes the connections (no crafted SYNs it would answer with a RST); the capture
on the client's eth0 times them on the wire, so Python's scheduling is not in the numbers.
Connections to the two endpoints alternate, so both see the same conditions over time. A
handshake whose SYN was retransmitted is not a sample (which SYN was answered is ambiguous).
"""

from __future__ import annotations

import csv
import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from testbed.errors import BadInput, LabError
from testbed.lab.api import Lab
from testbed.probes import packets
from testbed.probes.capture import start_capture
from testbed.probes.connect import Endpoint, checked_endpoint, run_connections

MAX_SAMPLES = 10_000
PATHS = ("via", "direct")
CSV_COLUMNS = (
    "path",
    "seq",
    "endpoint",
    "peer",
    "port",
    "local_port",
    "syn_time",
    "rtt_ms",
    "syns",
    "connect_ms",
    "error",
)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is not in 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class RttSummary:
    """RTT statistics of one path, in milliseconds."""

    path: str
    endpoint: str
    attempts: int
    n: int  # usable samples
    failed: int  # connections that did not open
    uncaptured: int  # opened, but their handshake is not in the capture
    retransmitted: int  # SYN retransmitted: not a sample
    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float


def summarise(path: str, endpoint: str, rows: Sequence[dict[str, Any]]) -> RttSummary:
    """Statistics over the sample rows of one path (LabError if none is usable)."""
    rtts = [r["rtt_ms"] for r in rows if r["rtt_ms"] is not None]
    failed = sum(1 for r in rows if r["error"])
    retx = sum(1 for r in rows if not r["error"] and r["syns"] > 1)
    uncaptured = sum(1 for r in rows if not r["error"] and r["syns"] == 0)
    if not rtts:
        errors = sorted({r["error"] for r in rows if r["error"]})
        raise LabError(
            f"no handshake to {endpoint} could be timed ({len(rows)} attempts, "
            f"{failed} failed {errors}, {uncaptured} not captured)"
        )
    return RttSummary(
        path,
        endpoint,
        len(rows),
        len(rtts),
        failed,
        uncaptured,
        retx,
        min(rtts),
        percentile(rtts, 50),
        percentile(rtts, 90),
        percentile(rtts, 99),
        max(rtts),
        sum(rtts) / len(rtts),
    )


def added_rtt(via: RttSummary, direct: RttSummary) -> dict[str, dict[str, float]]:
    """What the load balancer adds, per percentile: difference (ms) and ratio."""
    out = {}
    for name in ("p50", "p90", "p99"):
        v, d = getattr(via, f"{name}_ms"), getattr(direct, f"{name}_ms")
        out[name] = {"diff_ms": v - d, "ratio": v / d if d > 0 else math.inf}
    return out


def sample_rows(
    conns: Sequence[dict[str, Any]], hands: Sequence[packets.Handshake]
) -> list[dict[str, Any]]:
    """One row per connection attempt, with its RTT from the capture (None if none)."""
    by_key: dict[packets.FlowKey, list[packets.Handshake]] = {}
    for hand in hands:
        by_key.setdefault(hand.key, []).append(hand)
    rows = []
    for c in conns:
        h: packets.Handshake | None = None
        if not c["error"]:
            found = by_key.get((c["local_ip"], c["local_port"], c["peer"], c["port"]), [])
            # A 4-tuple used twice in one run: take the handshake nearest to this connect().
            start = Decimal(str(c["start"]))
            h = min(found, key=lambda x: abs(x.first_syn_time - start), default=None)
        rows.append(
            {
                "path": PATHS[c["to"]],
                "seq": c["seq"],
                "endpoint": c["endpoint"],
                "peer": c["peer"],
                "port": c["port"],
                "local_port": c["local_port"],
                "syn_time": str(h.syn_time) if h else "",
                "rtt_ms": round(h.rtt_ms, 6) if h and h.rtt_ms is not None else None,
                "syns": h.syns if h else 0,
                "connect_ms": c["connect_ms"],
                "error": c["error"],
            }
        )
    return rows


def bpf_for(endpoints: Sequence[Endpoint]) -> str:
    """SYNs and SYN-ACKs to/from the endpoints (by address where it is one, else by port)."""
    parts = []
    for ep in endpoints:
        try:
            ipaddress.IPv4Address(ep.host)
            parts.append(f"(host {ep.host} and port {ep.port})")
        except ValueError:
            parts.append(f"(port {ep.port})")  # a name: resolved in the host, later
    return f"tcp[tcpflags] & tcp-syn != 0 and ({' or '.join(parts)})"


@dataclass
class RttResult:
    """Both paths' statistics, what the LB adds, the samples and where the files are."""

    client: str
    via: RttSummary
    direct: RttSummary
    added: dict[str, dict[str, float]]
    rows: list[dict[str, Any]]
    csv: Path
    pcap: Path
    capture_complete: bool


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """The samples as CSV (one row per connection attempt)."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: "" if r[k] is None else r[k] for k in CSV_COLUMNS})
    return path


def rtt_probe(
    lab: Lab,
    client: str,
    via: str,
    direct: str,
    samples: int = 200,
    gap_s: float = 0.005,
    timeout_s: float = 2.0,
    out: str | Path | None = None,
) -> RttResult:
    """`samples` handshakes from `client` to `via` (the LB) and as many to `direct`, timed
    from a capture on the client; statistics, added RTT, CSV (copied to `out` if given)."""
    if not 1 <= samples <= MAX_SAMPLES:
        raise BadInput(f"samples must be between 1 and {MAX_SAMPLES}, not {samples}")
    endpoints = [checked_endpoint(via), checked_endpoint(direct, "10.0.1.4:80")]
    host = lab.host(client)
    targets = [f"tcp://{ep.host}:{ep.port}" for ep in endpoints]  # connect only, no payload
    seconds = 2 * samples * (timeout_s + gap_s + 0.1) + 60
    with start_capture(
        host,
        bpf_for(endpoints),
        label=f"rtt-{client}",
        max_seconds=seconds,
        max_packets=8 * samples + 1000,
    ) as cap:
        conns = run_connections(host, targets, samples, gap_s=gap_s, timeout_s=timeout_s)
    rows = sample_rows(conns, packets.handshakes(packets.read_segments(cap.path)))
    summaries = [
        summarise(path, ep.text, [r for r in rows if r["path"] == path])
        for path, ep in zip(PATHS, endpoints)
    ]
    csv_path = write_csv(rows, cap.path.with_suffix(".csv"))
    if out is not None:
        Path(out).write_bytes(csv_path.read_bytes())
    return RttResult(
        client,
        summaries[0],
        summaries[1],
        added_rtt(*summaries),
        rows,
        csv_path,
        cap.path,
        not cap.hit_packet_limit,
    )
