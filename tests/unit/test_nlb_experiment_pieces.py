"""Pieces of the NLB experiments that need no lab: the goodness-of-fit statistics, the
per-phase report, the connection timeline, the generated stacks and the time bookkeeping."""

from __future__ import annotations

import json
import math
import socket
import threading

import pandas as pd
import pytest

from testbed.analysis import chi2_sf, goodness_of_fit, target_share
from testbed.analysis.plots import connection_spans
from testbed.analysis.report import report
from testbed.experiments import cross_zone, draining, failover
from testbed.experiments.stacks import nlb_stack, target_names
from testbed.model import load_model_text
from testbed.model.elbv2_types import elbv2_sections
from testbed.results import parse_params
from testbed.schemas import REQUEST_COLUMNS
from tests.unit.analysis_data import (
    AZ_A,
    AZ_B,
    START,
    assert_png,
    cross_zone_requests,
    request,
    write_csv,
    write_meta,
)

OFF = dict.fromkeys(AZ_A, 0.25) | dict.fromkeys(AZ_B, 0.0625)
ON = dict.fromkeys(AZ_A + AZ_B, 0.1)


@pytest.mark.parametrize(
    ("x", "dof", "p"),
    [
        (3.841458820694124, 1, 0.05),  # the textbook 5 % critical values
        (18.307038053275146, 10, 0.05),
        (2.0, 2, math.exp(-1.0)),  # dof 2: exp(-x/2) exactly
        (9.0, 9, 0.43727418891386),  # near the mean: the series branch
        (100.0, 9, 1.5735176303753e-17),  # far tail: the continued fraction
    ],
)
def test_chi2_sf_matches_known_values(x, dof, p):
    assert chi2_sf(x, dof) == pytest.approx(p, rel=1e-9)


def test_chi2_sf_edges():
    assert chi2_sf(0.0, 3) == 1.0
    assert chi2_sf(math.inf, 3) == 0.0
    with pytest.raises(ValueError, match="dof must be at least 1"):
        chi2_sf(1.0, 0)


def test_fit_of_exact_shares_is_perfect():
    fit = goodness_of_fit(
        target_share(pd.DataFrame(cross_zone_requests(), columns=list(REQUEST_COLUMNS))), OFF
    )
    assert fit["chi2"] == 0.0
    assert fit["p_value"] == 1.0
    assert fit["dof"] == 9
    assert fit["max_abs_dev"] == pytest.approx(0.0)
    assert fit["connections"] == 1600


def test_fit_rejects_cross_zone_on_when_it_was_off():
    shares = target_share(pd.DataFrame(cross_zone_requests(), columns=list(REQUEST_COLUMNS)))
    fit = goodness_of_fit(shares, ON)
    # 400 observed where 160 were expected, twice; 100 against 160, eight times.
    assert fit["chi2"] == pytest.approx(2 * 240**2 / 160 + 8 * 60**2 / 160)
    assert fit["p_value"] < 1e-100
    assert fit["max_abs_dev"] == pytest.approx(0.15)
    assert fit["worst_target"] == "WebA1"


def test_fit_counts_requests_where_none_were_expected():
    shares = pd.DataFrame({"backend": ["A", "B"], "count": [10, 1]})
    fit = goodness_of_fit(shares, {"A": 1.0, "B": 0.0})
    assert fit["chi2"] == math.inf
    assert fit["p_value"] == 0.0
    assert fit["dof"] == 1


def phase_rows() -> list[list]:
    """Cross-zone off (the canonical split), then on (even), tagged with a phase column."""
    rows = [[*r, "off"] for r in cross_zone_requests()]
    targets = AZ_A + AZ_B
    rows += [
        [
            *request(
                "ClientA",
                1000 + i,
                20 + i * 0.01,
                targets[i % 10],
                "us-east-1a" if i % 10 < 2 else "us-east-1b",
            ),
            "on",
        ]
        for i in range(1000)
    ]
    return rows


def test_report_has_a_share_table_per_phase(tmp_path):
    write_meta(tmp_path, share_by="cross_zone", expected_share={"off": OFF, "on": ON})
    write_csv(tmp_path / "requests.csv", [*REQUEST_COLUMNS, "cross_zone"], phase_rows())
    rep = report(tmp_path)
    off = rep.tables["share per target (cross_zone=off)"].set_index("backend")
    on = rep.tables["share per target (cross_zone=on)"].set_index("backend")
    assert off.loc["WebA1", "share"] == pytest.approx(0.25)
    assert off.loc["WebA1", "expected"] == 0.25
    assert on.loc["WebB8", "share"] == pytest.approx(0.1)
    assert on.loc["WebB8", "expected"] == 0.1
    assert rep.tables["balance (cross_zone=on)"].iloc[0]["cov"] == pytest.approx(0.0)
    names = {p.name for p in rep.figures}
    assert {"share_cross_zone_off.png", "share_cross_zone_on.png"} <= names
    assert "share per target" not in rep.tables


def test_report_ignores_per_phase_expectations_without_share_by(tmp_path):
    write_meta(tmp_path, expected_share={"off": OFF, "on": ON})
    write_csv(tmp_path / "requests.csv", REQUEST_COLUMNS, cross_zone_requests())
    shares = report(tmp_path).tables["share per target"]
    assert "expected" not in shares  # a nested mapping is no per-target expectation


def test_connection_spans_draws_stalls_and_marks(tmp_path):
    rows = [
        request(
            "C",
            i,
            1.0,
            "WebA1" if i < 3 else "WebB1",
            "a",
            latency_ms=20_000.0,
            status=0,
            error="timeout" if i < 3 else "",
        )
        for i in range(8)
    ]
    frame = pd.DataFrame(rows, columns=list(REQUEST_COLUMNS))
    frame["t"] = frame["start"] - START
    frame["stalled_t"] = [15.0] * 3 + [math.nan] * 5
    events = pd.DataFrame(
        {"t": [5.0, 14.0], "target": ["WebA1:9000"] * 2, "new": ["draining", math.nan]}
    )
    path = connection_spans(
        frame,
        tmp_path / "spans.png",
        events=events,
        stalled="stalled_t",
        marks={"deregistered": 5.0, "delay ends": 14.0},
    )
    assert_png(path)


def elb(text: str, **params: str) -> dict:
    return elbv2_sections(load_model_text(text, filename="stack.yaml", params=params))


def test_generated_stacks_validate_with_the_right_settings():
    text = nlb_stack((2, 8), clients=2, port=80, health=cross_zone.HEALTH)
    assert elb(text)["load_balancers"]["MyNLB"].cross_zone is False  # AWS's NLB default
    sections = elb(text, CrossZone="true")
    assert sections["load_balancers"]["MyNLB"].cross_zone is True
    tg = sections["target_groups"]["WebTargets"]
    assert [(t.instance, t.az) for t in tg.targets][1:3] == [
        ("WebA2", "us-east-1a"),
        ("WebB1", "us-east-1b"),
    ]
    assert len(tg.targets) == 10
    assert tg.health_check.interval_s == 5
    params = parse_params(draining, {"delay": "7", "connection_termination": "true"})
    tg = elb(draining._stack((2, 2), params))["target_groups"]["WebTargets"]
    assert tg.deregistration_delay_s == 7
    assert tg.port == 9000
    assert tg.attributes["deregistration_delay.connection_termination.enabled"] == "true"
    params = parse_params(failover, {"check": "HTTP", "interval": "6", "check_timeout": "5"})
    assert failover.bounds(params)["detection_s"] == 12.0
    assert failover.bounds(parse_params(failover, {"fault": "hang"}))["detection_s"] == 14.0


def test_target_names_per_az():
    assert target_names((2, 3)) == {"A": ["WebA1", "WebA2"], "B": ["WebB1", "WebB2", "WebB3"]}


def test_failover_phases_follow_the_times():
    times = {"fault": 10.0, "unhealthy": 17.0, "repair": 22.0, "healthy": 30.0}
    assert [failover._phase_of(t, times) for t in (5, 10, 18, 25, 31)] == [
        "before fault",
        "fault undetected",
        "unhealthy",
        "repaired",
        "healthy again",
    ]
    undetected = dict(times, unhealthy=None, healthy=None)
    assert failover._phase_of(18, undetected) == "fault undetected"
    # Started before the fault, still running when it came (reset by a stop): the fault's.
    assert failover._phase_of(9.998, times, 0.009) == "fault undetected"
    assert failover._phase_of(9.990, times, 0.009) == "before fault"


def test_flow_ends_date_a_stall_from_the_unanswered_line():
    rows = pd.DataFrame(
        [
            request("C", 0, 0.0, "A", "a", latency_ms=12_000.0, status=0, error="timeout"),
            request("C", 1, 0.0, "A", "a", latency_ms=12_000.0, status=0, error="reset"),
            request("C", 2, 0.0, "A", "a", latency_ms=30_000.0, status=0),
        ],
        columns=list(REQUEST_COLUMNS),
    )
    ends = draining.flow_ends(rows, timeout=3.0)
    assert ends["end"].tolist() == pytest.approx([START + 12, START + 12, START + 30])
    assert ends["broke"].iloc[0] == pytest.approx(START + 9)  # its line went 3 s before
    assert ends["broke"].iloc[1] == pytest.approx(START + 12)
    assert math.isnan(ends["broke"].iloc[2])


def test_a_held_flow_that_breaks_still_names_its_backend(tmp_path):
    from testbed.roles import load_client

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    lines: list[bytes] = []

    def serve_once() -> None:
        # Identity, one echo, then the connection ends at the client's second line while
        # the client still holds the flow.
        conn, _ = server.accept()
        with conn, conn.makefile("rb") as reader:
            conn.sendall(
                json.dumps(
                    {
                        "instance": "WebZ9",
                        "ip": "10.9.9.9",
                        "az": "z",
                        "client": {"ip": "127.0.0.1", "port": 1},
                    }
                ).encode()
                + b"\n"
            )
            lines.append(reader.readline())
            conn.sendall(b"ping\n")
            lines.append(reader.readline())  # the second line: closed without an echo

    thread = threading.Thread(target=serve_once)
    thread.start()
    out = tmp_path / "rows.csv"
    try:
        load_client.main(
            [
                "--target",
                f"tcp://127.0.0.1:{port}",
                "-n",
                "1",
                "--hold",
                "30",
                "--timeout",
                "20",
                "--out",
                str(out),
            ]
        )
    finally:
        thread.join()
        server.close()
    row = pd.read_csv(out).iloc[0]
    # "reset": it broke on the closed connection; a flow held to the end has no error and
    # one that stalled would say "timeout".
    assert row["error"] == "reset"
    assert lines == [b"ping\n", b"ping\n"]  # it broke at the second line
    assert row["backend"] == "WebZ9"
    assert row["backend_az"] == "z"
