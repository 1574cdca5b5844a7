"""`testbed targets` and the Lab API for classic load balancers, without a lab: the holder's
rows come from a real TargetRegistry over the plans of templates/classic.yaml (MyCLB) and
templates/nlb.yaml (MyNLB), which a fake lab serves."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from testbed.cli import build_parser, main
from testbed.cli import targets as targets_cli
from testbed.cli.targets import targets_json, targets_text
from testbed.errors import BadInput
from testbed.lab.api import Lab
from testbed.lab.classic_health import (
    DEREGISTERING,
    FAILED,
    NOT_IN_ZONE,
    NOT_YET_HEALTHY,
    REGISTERING,
    instance_state,
)
from testbed.lb.registry import TargetRegistry
from testbed.model import load_model
from testbed.paths import TEMPLATES
from testbed.plan.balancers import LoadBalancerPlan
from testbed.plan.network import build_plan
from testbed.waiting import WaitTimeout

CLB, NLB = "MyCLB", "MyNLB"
NOW = 1000.0


def plans(template: str) -> list[LoadBalancerPlan]:
    model = load_model(str(TEMPLATES / f"{template}.yaml"), {}, stack_name=template)
    return list(build_plan(model, template, zone_base=100).load_balancers)


@pytest.fixture(scope="module")
def lb_plans() -> list[LoadBalancerPlan]:
    return plans("classic") + plans("nlb")


@pytest.fixture
def registry(lb_plans) -> TargetRegistry:
    """MyCLB (HTTP:80/health, thresholds 3 healthy / 2 unhealthy): WebA1 healthy, WebA2
    unhealthy, WebB1 checked once (not yet healthy), WebB2 never checked; then WebA1 is
    deregistered (draining). MyNLB's groups: every target healthy."""
    clock = [NOW - 100]
    reg = TargetRegistry(lb_plans, clock=lambda: clock[0])
    for _ in range(3):
        reg.report(CLB, CLB, "WebA1:80", True, "200")
    for _ in range(2):
        reg.report(CLB, CLB, "WebA2:80", False, "status 500 not in 200")
    reg.report(CLB, CLB, "WebB1:80", True, "200")
    for tg in ("WebTargets", "UdpTargets"):
        for key in list(reg.group(NLB, tg).targets):
            for _ in range(2):
                reg.report(NLB, tg, key, True, "connected")
    clock[0] = NOW - 10
    reg.deregister(CLB, CLB, "WebA1:80")  # ConnectionDrainingPolicy: DrainingTimeout
    return reg


def by_id(states: list[dict[str, Any]]) -> dict[str, tuple[str, str, str]]:
    return {s["InstanceId"]: (s["State"], s["ReasonCode"], s["Description"]) for s in states}


def test_states_read_as_describe_instance_health(registry):
    got = by_id(targets_json(registry.describe(), [CLB], CLB)["InstanceStates"])
    assert got == {
        "i-WebA1": ("InService", "N/A", DEREGISTERING),
        "i-WebA2": ("OutOfService", "Instance", FAILED),
        "i-WebB1": ("OutOfService", "Instance", NOT_YET_HEALTHY),
        "i-WebB2": ("OutOfService", "ELB", REGISTERING),
    }
    assert instance_state("healthy", True) == ("InService", "N/A", "N/A")


def test_an_instance_in_an_az_the_clb_does_not_use(lb_plans):
    clb = next(lb for lb in lb_plans if lb.name == CLB)
    one_az = replace(clb, nodes=tuple(n for n in clb.nodes if n.az == "us-east-1a"))
    reg = TargetRegistry([one_az], clock=lambda: NOW)
    got = by_id(targets_json(reg.describe(), [CLB], CLB)["InstanceStates"])
    assert got["i-WebB1"] == ("OutOfService", "ELB", NOT_IN_ZONE)
    assert got["i-WebA1"][1] == "ELB"  # registration in progress


def test_json_of_one_clb_is_the_aws_clis(registry):
    out = targets_json(registry.describe(CLB, CLB), [CLB], CLB)
    assert list(out) == ["InstanceStates"]
    first = out["InstanceStates"][0]
    assert list(first)[:4] == ["InstanceId", "State", "ReasonCode", "Description"]
    assert (first["Host"], first["AvailabilityZone"]) == ("WebA1", "us-east-1a")


def test_json_of_a_mixed_lab_keeps_the_two_apart(registry):
    rows = registry.describe()
    out = targets_json(rows, [CLB])
    assert {r["LoadBalancer"] for r in out["TargetHealthDescriptions"]} == {NLB}
    assert len(out["TargetHealthDescriptions"]) == 8
    assert list(out["ClassicLoadBalancers"]) == [CLB]
    assert len(out["ClassicLoadBalancers"][CLB]["InstanceStates"]) == 4
    # A lab without classic load balancers prints what it always did.
    nlb_rows = registry.describe(NLB)
    assert targets_json(nlb_rows, []) == {"TargetHealthDescriptions": nlb_rows}


def test_text_shows_target_groups_then_each_clb(registry):
    text = targets_text(registry.describe(), [CLB], NOW)
    groups, clb = text.split("\n\n")
    assert groups.splitlines()[0].split()[:3] == ["LB", "TARGET", "GROUP"]
    assert all(line.startswith(NLB) for line in groups.splitlines()[1:])
    head, columns, *rows = clb.splitlines()
    assert head == "MyCLB (classic load balancer): instance health"
    assert columns.split() == [
        "INSTANCE",
        "STATE",
        "REASON",
        "CODE",
        "DESCRIPTION",
        "AZ",
        "LAST",
        "CHECK",
    ]
    lines = {r.split()[0]: r for r in rows}
    assert lines["i-WebA1"].endswith("s left")  # draining: what it has left
    assert "InService" in lines["i-WebA1"]
    assert lines["i-WebA2"].endswith("status 500 not in 200")
    assert "OutOfService  ELB" in lines["i-WebB2"]
    # Only the CLB: no target group table.
    assert targets_text(registry.describe(CLB), [CLB], NOW).startswith("MyCLB (classic")
    empty = TargetRegistry([], clock=lambda: NOW)
    assert "(no instances registered)" in targets_text(empty.describe(), [CLB], NOW)


class FakeLab(Lab):
    """A lab whose state and holder are a dict and a registry."""

    def __init__(self, registry: TargetRegistry, lbs: list[LoadBalancerPlan]) -> None:
        super().__init__("fake1")
        self.registry = registry
        self.fake_state = {
            "load_balancers": [{"name": lb.name, "type": lb.type} for lb in lbs],
        }
        self.asked: list[tuple[str | None, str | None]] = []

    @property
    def state(self) -> dict[str, Any]:
        return self.fake_state

    def targets(self, tg=None, lb=None):
        self.asked.append((tg, lb))
        return self.registry.describe(lb, tg)


@pytest.fixture
def fake_lab(registry, lb_plans, monkeypatch) -> FakeLab:
    lab = FakeLab(registry, lb_plans)
    monkeypatch.setattr(targets_cli, "_balanced_lab", lambda name: lab)
    return lab


def run(capsys, *argv: str) -> str:
    assert main(["targets", "fake1", *argv]) == 0
    return capsys.readouterr().out


def test_cli_one_clb(fake_lab, capsys):
    out = json.loads(run(capsys, CLB, "--json"))
    assert fake_lab.asked == [(CLB, CLB)]
    assert len(out["InstanceStates"]) == 4
    assert json.loads(run(capsys, "--lb", CLB, "--json")) == out
    text = run(capsys, CLB)
    assert text.startswith("MyCLB (classic load balancer)")
    assert "TARGET GROUP" not in text


def test_cli_mixed_lab_and_elbv2_only_views(fake_lab, capsys):
    out = json.loads(run(capsys, "--json"))
    assert set(out) == {"TargetHealthDescriptions", "ClassicLoadBalancers"}
    text = run(capsys)
    assert "TARGET GROUP" in text
    assert "MyCLB (classic load balancer)" in text
    # A target group or an ELBv2 load balancer asked for: no CLB section.
    for argv in (("WebTargets",), ("--lb", NLB)):
        out = json.loads(run(capsys, *argv, "--json"))
        assert list(out) == ["TargetHealthDescriptions"]
        assert {r["LoadBalancer"] for r in out["TargetHealthDescriptions"]} == {NLB}


def test_cli_errors(fake_lab, capsys):
    assert main(["targets", "fake1", "Nope"]) == 2
    err = capsys.readouterr().err
    assert "no target group 'Nope'" in err
    assert "classic load balancers: MyCLB" in err
    assert main(["targets", "fake1", "WebTargets", "--lb", CLB]) == 2
    assert "classic load balancer" in capsys.readouterr().err


def test_register_help_names_classic_load_balancers():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command" or a.choices)
    for name in ("register", "deregister"):
        text = sub.choices[name].format_help()
        assert "classic load balancer" in text
        assert "MyCLB WebA1" in text
    assert "InstanceStates" in sub.choices["targets"].format_help()


def test_lab_api_instance_health_and_wait_in_service(registry, lb_plans):
    lab = FakeLab(registry, lb_plans)
    assert by_id(lab.instance_health(CLB))["i-WebA2"][0] == "OutOfService"
    with pytest.raises(BadInput, match="not a classic load balancer"):
        lab.instance_health(NLB)
    # WebA1 (draining) is InService, as describe-instance-health counts it.
    assert len(lab.wait_in_service(CLB, 1, timeout=1)) == 4
    registry.report(CLB, CLB, "WebB1:80", True, "200")
    registry.report(CLB, CLB, "WebB1:80", True, "200")
    states = lab.wait_in_service(CLB, 2, timeout=1)
    assert by_id(states)["i-WebB1"][0] == "InService"
    with pytest.raises(WaitTimeout) as err:
        lab.wait_in_service(CLB, 4, timeout=0.3)
    assert "4 instances of MyCLB to be InService" in str(err.value)
    assert "('i-WebA2', 'WebA2', 'OutOfService', 'Instance')" in str(err.value)
