"""Hand-built results directories for the testbed.analysis tests (rows of every layout)."""

from __future__ import annotations

import csv
import json
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from testbed.schemas import REQUEST_COLUMNS, SNMP_COLUMNS, TARGET_EVENT_COLUMNS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
START = 1_700_000_000.0  # meta.json "start" of every hand-built run

# AWS's canonical cross-zone case: 2 targets in AZ-a, 8 in AZ-b, clients split 50/50.
AZ_A = ["WebA1", "WebA2"]
AZ_B = [f"WebB{i}" for i in range(1, 9)]


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if v is None else v for v in row])
    return path


def write_meta(path: Path, **extra: Any) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    meta = {
        "experiment": "handmade",
        "params": {},
        "seed": 7,
        "git_commit": "abc123",
        "datapath": "user",
        "kernel": "6.1",
        "start": START,
        "end": START + 40.0,
    }
    meta.update(extra)
    (path / "meta.json").write_text(json.dumps(meta))
    return path


def request(
    client: str,
    seq: int,
    t: float,
    backend: str | None,
    az: str | None,
    latency_ms: float = 2.0,
    status: int | None = 200,
    error: str = "",
) -> list[Any]:
    """One REQUEST_COLUMNS row started t seconds after START."""
    values = {
        "client": client,
        "target": "lb:80",
        "proto": "http",
        "seq": seq,
        "start": START + t,
        "latency_ms": latency_ms,
        "status": status,
        "error": error,
        "backend": backend,
        "backend_ip": None,
        "backend_az": az,
        "seen_ip": "10.0.0.9",
        "seen_port": 40000 + seq,
        "bytes": 120 if not error else 0,
    }
    return [values[c] for c in REQUEST_COLUMNS]


def cross_zone_requests() -> list[list[Any]]:
    """1600 requests, cross-zone off: node A's 800 over 2 targets, node B's 800 over 8."""
    rows = []
    for i in range(800):
        rows.append(request("ClientA", i, i * 0.01, AZ_A[i % 2], "us-east-1a"))
        rows.append(request("ClientB", i, i * 0.01, AZ_B[i % 8], "us-east-1b"))
    return rows


# Failover timeline (t = seconds since START): one client sends every 0.5 s, alternating over
# WebA1/WebA2. WebA2 fails at t=10; its requests time out from then until the LB marks it
# unhealthy at t=16 (later requests all go to WebA1); it is repaired at t=20 and healthy at 26.
FAULT_T, UNHEALTHY_T, REPAIR_T, HEALTHY_T = 10.0, 16.0, 20.0, 26.0


def failover_requests() -> list[list[Any]]:
    rows = []
    for seq in range(80):
        t = seq * 0.5
        backend = "WebA2" if seq % 2 else "WebA1"
        if backend == "WebA2" and FAULT_T <= t < UNHEALTHY_T:
            rows.append(
                request(
                    "Client1", seq, t, None, None, latency_ms=2000.0, status=None, error="timeout"
                )
            )
            continue
        if backend == "WebA2" and UNHEALTHY_T <= t < HEALTHY_T:
            backend = "WebA1"
        rows.append(request("Client1", seq, t, backend, "us-east-1a"))
    return rows


def failover_events() -> list[list[Any]]:
    """TARGET_EVENT_COLUMNS rows of the failover timeline (plus noise on another target)."""

    def event(t: float, target: str, old: str, new: str, reason: str = "") -> list[Any]:
        return [START + t, "nlb", "tg", target, old, new, reason]

    return [
        event(0.5, "WebA1", "initial", "healthy"),
        event(0.5, "WebA2", "initial", "healthy"),
        event(FAULT_T, "WebA2", "healthy", "fault-injected", "hang"),
        event(13.0, "WebB1", "healthy", "unhealthy", "unrelated"),
        event(UNHEALTHY_T, "WebA2", "healthy", "unhealthy", "Target.Timeout"),
        event(REPAIR_T, "WebA2", "unhealthy", "fault-cleared", "clear"),
        event(HEALTHY_T, "WebA2", "unhealthy", "healthy", ""),
    ]


def snmp_rows() -> list[list[Any]]:
    """SNMP_COLUMNS rows: a Counter32 that wraps, a Counter64, a gauge and a timeout."""
    rows = []
    c32 = [4_294_967_000, 200, 1_200]
    c64 = [2**64 - 10, 5, 105]
    for i in range(3):
        time = START + 10 * i
        rows.append([time, "WebA1", "IF-MIB::ifInOctets", "2", c32[i], "Counter32", ""])
        rows.append([time, "WebA1", "IF-MIB::ifHCOutOctets", "2", c64[i], "Counter64", ""])
        rows.append(
            [time, "WebA1", "HOST-RESOURCES-MIB::hrProcessorLoad", "196608", 5 + i, "Integer", ""]
        )
    rows.append([START + 30, "WebA1", "IF-MIB::ifInOctets", "2", None, None, "timeout"])
    return rows


def full_results(path: Path, **meta: Any) -> Path:
    """A results directory with requests, target events and SNMP samples."""
    write_meta(path, **meta)
    write_csv(path / "requests.csv", REQUEST_COLUMNS, failover_requests())
    write_csv(path / "target_events.csv", TARGET_EVENT_COLUMNS, failover_events())
    write_csv(path / "snmp.csv", SNMP_COLUMNS, snmp_rows())
    return path


def assert_png(path: Path, min_width: int = 300) -> None:
    """A PNG file with a plausible size: signature, IHDR dimensions, some kilobytes."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= min_width, (width, height)
    assert height >= 200, (width, height)
    assert len(data) > 5000, f"{path} is only {len(data)} bytes"
