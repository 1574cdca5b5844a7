"""experiments/bench_sg: its generated stack and its group's rules (pure pieces; the
experiment itself runs on a real lab in tests/integration/test_bench_sg.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from testbed.experiments import bench_sg
from testbed.plan import reach
from testbed.plan.network import SecurityGroupPlan, SgRulePlan, build_plan
from testbed.template.yaml_loader import load_text
from tests.handmade import two_az_model

NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1}


def as_plan_rules(rules):
    return tuple(
        SgRulePlan(NUMBERS[r["IpProtocol"]], r["FromPort"], r["ToPort"], cidr=r["CidrIp"])
        for r in rules
    )


def verdict_with(rules, port: int):
    """The client (10.0.0.10 in 10.0.0.0/24) to a target whose group has `rules`."""
    plan = build_plan(two_az_model(), "t")
    group = SecurityGroupPlan("Sg50", "sg-50", "VPC", ingress=as_plan_rules(rules))
    hosts = tuple(
        replace(h, ip=bench_sg.CLIENT_IP)
        if h.name == "WebA1"
        else replace(h, groups=("Sg50",), sg_zone=64)
        if h.name == "WebB1"
        else h
        for h in plan.hosts
    )
    plan = replace(plan, hosts=hosts, security_groups=(group,))
    return reach.verdict(plan, plan.host("WebA1"), "10.0.2.4", "tcp", port)


def test_group_has_the_rules_and_only_the_last_allows_the_client():
    rules = bench_sg.group_rules(50)
    assert len(rules) == 50
    assert len({tuple(sorted(r.items())) for r in rules}) == 50  # no duplicates
    assert {r["IpProtocol"] for r in rules} == {"tcp", "udp", "icmp"}
    for port in (80, 5201):  # wrk's and iperf3's
        assert verdict_with(rules, port).passes
        assert verdict_with(rules[:-1], port).layer == reach.SG_INGRESS


def test_group_needs_the_allowing_rule():
    assert len(bench_sg.group_rules(1)) == 1
    with pytest.raises(ValueError, match="at least"):
        bench_sg.group_rules(0)


def test_stack_yaml_is_a_template_of_three_instances_and_the_group():
    doc = load_text(bench_sg.stack_yaml(50), "bench_sg.yaml")
    resources = doc["Resources"]
    assert set(resources) == {"VPC", "Sub", "Sg50", "Client", "Filtered", "Open"}
    assert len(resources["Sg50"]["Properties"]["SecurityGroupIngress"]) == 50
    lab = {n: resources[n]["Metadata"]["Lab"] for n in ("Client", "Filtered", "Open")}
    assert lab["Open"].get("Unfiltered") is True
    assert lab["Client"].get("Unfiltered") is True
    assert "Unfiltered" not in lab["Filtered"]
    props = {n: resources[n]["Properties"] for n in ("Client", "Filtered", "Open")}
    assert {n: p["PrivateIpAddress"] for n, p in props.items()} == bench_sg.ADDRESSES
    assert "SecurityGroupIds" in props["Filtered"]
    assert "SecurityGroupIds" not in props["Open"]


def test_alternate_takes_medians_and_alternates():
    order = []

    def measure(target: str, rep: int) -> float:
        order.append(target)
        return {"Open": 10.0, "Filtered": 9.0}[target] + rep

    assert bench_sg.alternate(3, measure) == (10.0, 11.0)
    assert order == ["Open", "Filtered"] * 3
