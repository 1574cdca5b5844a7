"""RTT probe maths: percentiles, per-path summaries, the added RTT, joining the client's
connections to the captured handshakes, the CSV and the capture filter."""

from __future__ import annotations

import csv
import random
from decimal import Decimal

import numpy as np
import pytest

from testbed.errors import LabError
from testbed.probes.connect import parse_endpoint
from testbed.probes.packets import Handshake
from testbed.probes.rtt import (
    CSV_COLUMNS,
    added_rtt,
    bpf_for,
    percentile,
    sample_rows,
    summarise,
    write_csv,
)


def test_percentile_of_known_values():
    values = [float(v) for v in range(1, 11)]  # 1..10
    assert percentile(values, 0) == 1
    assert percentile(values, 100) == 10
    assert percentile(values, 50) == 5.5
    assert percentile(values, 90) == pytest.approx(9.1)
    assert percentile(values, 99) == pytest.approx(9.91)
    assert percentile([7.0], 99) == 7.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # unsorted input


def test_percentile_agrees_with_numpy():
    rng = random.Random(4)
    for n in (2, 3, 50, 201):
        values = [rng.lognormvariate(-0.7, 0.6) for _ in range(n)]
        for q in (0, 1, 50, 90, 99, 100):
            assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


@pytest.mark.parametrize(("values", "q"), [([], 50), ([1.0], -1), ([1.0], 101)])
def test_percentile_rejects(values, q):
    with pytest.raises(ValueError, match="percentile"):
        percentile(values, q)


def row(rtt: float | None, error: str = "", syns: int = 1, path: str = "via") -> dict:
    return {"path": path, "rtt_ms": rtt, "error": error, "syns": syns}


def test_summary_counts_what_is_not_a_sample():
    rows = [row(float(v)) for v in range(1, 101)] + [
        row(None, "timeout"),
        row(None, syns=2),
        row(None, syns=0),
    ]
    s = summarise("via", "10.0.0.4:80", rows)
    assert (s.attempts, s.n, s.failed, s.retransmitted, s.uncaptured) == (103, 100, 1, 1, 1)
    assert (s.min_ms, s.max_ms, s.mean_ms) == (1, 100, 50.5)
    assert (s.p50_ms, s.p90_ms, s.p99_ms) == pytest.approx((50.5, 90.1, 99.01))
    assert s.p50_ms <= s.p90_ms <= s.p99_ms


def test_a_path_without_samples_is_an_error():
    with pytest.raises(LabError, match="refused"):
        summarise("direct", "10.0.1.4:80", [row(None, "refused")] * 3)


def test_added_rtt_is_difference_and_ratio():
    via = summarise("via", "a", [row(1.0), row(2.0), row(3.0)])
    direct = summarise("direct", "b", [row(0.5), row(1.0), row(1.5)])
    added = added_rtt(via, direct)
    assert added["p50"] == {"diff_ms": 1.0, "ratio": 2.0}
    assert added["p99"]["ratio"] == pytest.approx(2.0)


def conn(to: int, seq: int, lport: int, start: str, peer: str, error: str = "") -> dict:
    return {
        "to": to,
        "seq": seq,
        "endpoint": f"{peer}:80",
        "peer": peer,
        "port": 80,
        "local_ip": "10.0.3.4",
        "local_port": lport,
        "start": float(start),
        "connect_ms": 0.9,
        "error": error,
    }


def hs(lport: int, peer: str, t: str, rtt: str | None, syns: int = 1) -> Handshake:
    t0 = Decimal(t)
    return Handshake("10.0.3.4", lport, peer, 80, t0, t0, t0 + Decimal(rtt) if rtt else None, syns)


def test_connections_join_their_handshakes_by_four_tuple_and_time():
    conns = [
        conn(0, 0, 5000, "100.0", "10.0.0.4"),
        conn(1, 0, 5001, "100.1", "10.0.1.4"),
        conn(0, 1, 5000, "200.0", "10.0.0.4"),  # the same port again, later
        conn(1, 1, 5003, "200.1", "10.0.1.4", error="timeout"),
        conn(0, 2, 5004, "300.0", "10.0.0.4"),
    ]  # not in the capture
    hands = [
        hs(5000, "10.0.0.4", "100.0001", "0.0006"),
        hs(5001, "10.0.1.4", "100.1001", "0.0004"),
        hs(5000, "10.0.0.4", "200.0001", "0.0009"),
        hs(5003, "10.0.1.4", "200.1", None, 3),
    ]
    rows = sample_rows(conns, hands)
    assert [(r["path"], r["seq"], r["rtt_ms"], r["syns"]) for r in rows] == [
        ("via", 0, pytest.approx(0.6), 1),
        ("direct", 0, pytest.approx(0.4), 1),
        ("via", 1, pytest.approx(0.9), 1),
        ("direct", 1, None, 0),
        ("via", 2, None, 0),
    ]
    assert rows[0]["syn_time"] == "100.0001"


def test_csv_has_one_row_per_attempt(tmp_path):
    rows = sample_rows(
        [conn(0, 0, 5000, "1.0", "10.0.0.4"), conn(1, 0, 5001, "1.1", "10.0.1.4", error="refused")],
        [hs(5000, "10.0.0.4", "1.0", "0.0005")],
    )
    path = write_csv(rows, tmp_path / "s.csv")
    with open(path) as f:
        got = list(csv.DictReader(f))
    assert tuple(got[0]) == CSV_COLUMNS
    assert [(g["path"], g["rtt_ms"], g["error"]) for g in got] == [
        ("via", "0.5", ""),
        ("direct", "", "refused"),
    ]


def test_capture_filter_names_addresses_and_ports():
    eps = [parse_endpoint("10.0.0.4:80"), parse_endpoint("tcp://lb.example:8080")]
    assert bpf_for(eps) == (
        "tcp[tcpflags] & tcp-syn != 0 and ((host 10.0.0.4 and port 80) or (port 8080))"
    )
