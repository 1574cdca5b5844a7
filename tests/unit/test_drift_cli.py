"""`testbed drift`: exit codes, the text table and the JSON, with the lab's drift faked."""

from __future__ import annotations

import json

import pytest

from testbed.cli import main
from testbed.lab import drift
from testbed.lab.api import Lab
from testbed.lab.drift import (
    Actual,
    Expected,
    ExpectedGroup,
    ExpectedInstance,
    HostState,
    Resource,
)


def report(drifted: bool) -> dict:
    expected = Expected(
        stack_name="alb",
        stack_id="arn:aws:cloudformation:us-east-1:123456789012:stack/alb/x",
        resources=(
            Resource("VPC", "AWS::EC2::VPC", "vpc-VPC"),
            Resource("WebA1", drift.INSTANCE, "i-WebA1"),
            Resource("WebTargets", drift.TARGET_GROUP, "arn:tg"),
        ),
        groups={"WebTargets": ExpectedGroup("WebTargets", (("i-WebA1", 80), ("i-WebB1", 80)))},
        instances={"WebA1": ExpectedInstance("WebA1", "http-backend", (80,))},
    )
    rows = [("i-WebA1", 80, "healthy")] + ([] if drifted else [("i-WebB1", 80, "healthy")])
    actual = Actual(targets={"WebTargets": rows}, hosts={"WebA1": HostState(True)})
    return drift.compare(expected, actual, now=0.0)


@pytest.fixture
def fake_drift(monkeypatch):
    calls = []

    def use(drifted: bool) -> list:
        def fake(self, stack=None):
            calls.append((self.name, stack))
            return report(drifted)

        monkeypatch.setattr(Lab, "drift", fake)
        return calls

    return use


def test_in_sync_exits_0_with_a_table(fake_drift, capsys):
    calls = fake_drift(False)
    assert main(["drift", "alb"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("Stack alb: IN_SYNC (0 drifted")
    assert "WebTargets" in out
    assert "PROPERTY" not in out
    assert "NOT_CHECKED (1): VPC" in out
    assert calls == [("alb", None)]


def test_drifted_exits_3_and_names_the_difference(fake_drift, capsys):
    calls = fake_drift(True)
    assert main(["drift", "alb", "--stack", "extra"]) == 3
    out = capsys.readouterr().out
    assert "Stack alb: DRIFTED (1 drifted" in out
    line = next(x for x in out.splitlines() if "/Targets/1" in x)
    assert line.split()[:3] == ["WebTargets", "/Targets/1", "REMOVE"]
    assert calls == [("alb", "extra")]


def test_json_is_aws_shaped_and_status_filter(fake_drift, capsys):
    fake_drift(True)
    assert main(["drift", "alb", "--json", "--status", "modified,deleted"]) == 3
    data = json.loads(capsys.readouterr().out)
    assert data["StackDriftStatus"] == "DRIFTED"
    assert data["DriftedStackResourceCount"] == 1
    assert [r["LogicalResourceId"] for r in data["StackResourceDrifts"]] == ["WebTargets"]
    (diff,) = data["StackResourceDrifts"][0]["PropertyDifferences"]
    assert diff["DifferenceType"] == "REMOVE"
    assert json.loads(diff["ExpectedValue"]) == {"Id": "i-WebB1", "Port": 80}


def test_bad_status_and_unknown_lab_exit_2(fake_drift, capsys, tmp_path, monkeypatch):
    fake_drift(False)
    assert main(["drift", "alb", "--status", "GONE"]) == 2
    assert "unknown drift status GONE" in capsys.readouterr().err
    monkeypatch.undo()  # the real Lab.drift
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path))
    assert main(["drift", "nolab"]) == 2
    assert "no lab named 'nolab'" in capsys.readouterr().err


def test_help_says_what_is_checked(capsys):
    with pytest.raises(SystemExit):
        main(["drift", "--help"])
    out = capsys.readouterr().out
    for text in ("NOT_CHECKED", "exit status: 0 IN_SYNC, 3 DRIFTED", "add acl", "--json"):
        assert text in out
