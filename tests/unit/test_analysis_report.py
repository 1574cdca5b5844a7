"""testbed.analysis.report and `testbed report`: tables printed, PNGs written, exit codes."""

from __future__ import annotations

import json

import pytest

from testbed.analysis.report import report
from testbed.cli import main
from testbed.schemas import METRIC_COLUMNS, REQUEST_COLUMNS, SNMP_COLUMNS
from tests.unit.analysis_data import (
    START,
    assert_png,
    cross_zone_requests,
    failover_requests,
    full_results,
    write_csv,
    write_meta,
)

FULL_FIGURES = {
    "share.png",
    "latency_cdf.png",
    "latency_percentiles.png",
    "request_rate.png",
    "failover.png",
    "snmp_rates.png",
}


def test_report_picks_tables_and_figures_from_the_files(tmp_path):
    run = full_results(tmp_path / "run")
    rep = report(run)
    assert rep.out == run / "report"
    assert {p.name for p in rep.figures} == FULL_FIGURES
    for figure in rep.figures:
        assert_png(figure)
    assert {
        "requests summary",
        "share per target",
        "balance",
        "errors",
        "target events",
        "SNMP counter rates (per second)",
    } <= set(rep.tables)
    failover = rep.tables["failover (s; times since start)"].iloc[0]
    assert failover["detection_s"] == 6.0
    assert failover["fault_t"] == 10.0
    assert (run / "report" / "balance.csv").is_file()


def test_report_of_requests_only_has_no_failover_or_snmp(tmp_path):
    write_meta(tmp_path, params={"cross_zone": False})
    write_csv(tmp_path / "client1.csv", REQUEST_COLUMNS, cross_zone_requests())
    rep = report(tmp_path, out=tmp_path / "figs")
    assert {p.name for p in rep.figures} == {
        "share.png",
        "latency_cdf.png",
        "latency_percentiles.png",
        "request_rate.png",
    }
    assert all(p.parent == tmp_path / "figs" for p in rep.figures)
    shares = rep.tables["share per target"].set_index("backend")
    # meta params say cross-zone off: AWS's expected shares are computed from the AZs.
    assert shares.loc["WebA1", "expected"] == pytest.approx(0.25)
    assert shares.loc["WebB1", "expected"] == pytest.approx(0.0625)
    assert "errors" not in rep.tables
    assert not any("failover" in t for t in rep.tables)


def test_report_counts_expected_targets_without_requests(tmp_path):
    write_meta(tmp_path, expected_share={"WebA1": 0.5, "WebA2": 0.25, "WebA3": 0.25})
    write_csv(tmp_path / "requests.csv", REQUEST_COLUMNS, failover_requests())
    rep = report(tmp_path)
    shares = rep.tables["share per target"].set_index("backend")
    assert shares.loc["WebA3", "count"] == 0
    assert shares.loc["WebA3", "expected"] == 0.25
    assert rep.tables["balance"].iloc[0]["targets"] == 3


def test_report_prefers_the_pollers_rate_rows(tmp_path):
    run = full_results(tmp_path)
    write_csv(
        run / "snmp_rates.csv",
        SNMP_COLUMNS,
        [
            [START + 10, "WebA1", "IF-MIB::ifHCInOctets", "2", 125.5, "rate", ""],
            [START + 20, "WebA1", "IF-MIB::ifHCInOctets", "2", None, "rate", "agent-restart"],
            [START + 30, "WebA1", "IF-MIB::ifHCInOctets", "2", 74.5, "rate", ""],
        ],
    )
    rep = report(run)
    assert "SNMP counter rates (per second)" not in rep.tables
    row = rep.tables["SNMP rates from the poller (per second)"].iloc[0]
    assert row["mean_rate"] == 100.0
    assert row["max_rate"] == 125.5
    assert row["no_rate"] == 1


def test_report_of_unknown_tables_lists_them(tmp_path):
    write_meta(tmp_path)
    write_csv(tmp_path / "bench_lab.csv", ["hosts", "up_s"], [[4, 1.0]])
    write_csv(tmp_path / "big.csv", ["n"], [[i] for i in range(50)])
    rep = report(tmp_path)
    assert rep.figures == []
    assert list(rep.tables) == ["tables", "bench_lab.csv"]
    text = rep.text()
    assert "== bench_lab.csv" in text
    assert "up_s" in text
    assert "other" in text
    assert "== big.csv" not in text  # too long to print: listed in "tables" only
    assert not (tmp_path / "report").exists()  # nothing new to write


def test_cli_report_end_to_end(tmp_path, capsys):
    run = full_results(tmp_path / "run")
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert "== share per target" in out
    assert "WebA1" in out
    assert "== failover" in out
    assert "detection_s" in out
    for name in FULL_FIGURES:
        assert f"figure: {run / 'report' / name}" in out
        assert_png(run / "report" / name)


def test_cli_report_json_and_experiment_name(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TESTBED_RESULTS", str(tmp_path))
    old = write_meta(tmp_path / "exp" / "20250101-000000")
    write_csv(
        old / "metrics.csv",
        METRIC_COLUMNS,
        [[START + i, "Lab/Host", "CPU", "", "", "WebA1", 5.0, "Percent"] for i in range(3)],
    )
    new = full_results(tmp_path / "exp" / "20250102-000000")
    assert main(["report", "exp", "--json", "--out", str(tmp_path / "out")]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["results"] == str(new)
    assert data["run"]["seed"] == 7
    failover = data["tables"]["failover (s; times since start)"][0]
    assert failover["recovery_s"] == 6.0
    assert {p.rsplit("/", 1)[1] for p in data["figures"]} == FULL_FIGURES
    assert all(p.startswith(str(tmp_path / "out")) for p in data["figures"])
    # NaN becomes null, so strict JSON parsers read it.
    assert data["tables"]["target events"][0]["reason"] is None
    assert main(["report", str(old)]) == 0
    assert "metric_cpu.png" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "exp")]) == 0  # an experiment's folder: newest run
    assert f"results: {new}" in capsys.readouterr().out


def nothing(tmp):
    pass


def dir_without_meta(tmp):
    (tmp / "x").mkdir()


def short_csv_row(tmp):
    write_meta(tmp / "r")
    (tmp / "r" / "bad.csv").write_text("a,b\n1\n")


def good_run(tmp):
    write_meta(tmp / "r")


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (nothing, ["nowhere/at/all"], "no such results directory"),
        (dir_without_meta, ["{tmp}/x"], "no meta.json"),
        (short_csv_row, ["{tmp}/r"], "bad.csv:2: 1 fields"),
        (nothing, ["noexperiment"], "no results for experiment"),
        (good_run, ["{tmp}/r", "--bin", "0"], "--bin must be positive"),
    ],
)
def test_cli_report_bad_input_exits_2(tmp_path, monkeypatch, capsys, setup, args, message):
    monkeypatch.setenv("TESTBED_RESULTS", str(tmp_path / "results"))
    setup(tmp_path)
    assert main(["report"] + [a.format(tmp=tmp_path) for a in args]) == 2
    assert message in capsys.readouterr().err


def test_cli_report_help_has_examples(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["report", "--help"])
    assert exc.value.code == 0
    assert "testbed report bench_lab --json" in capsys.readouterr().out
