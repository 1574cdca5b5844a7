"""Pieces of the alb experiment that need no lab: its generated stack and parameters."""

from __future__ import annotations

from pathlib import Path

from testbed.alb.config import node_files, render
from testbed.experiments import alb
from testbed.model import load_model_text
from testbed.plan.network import build_plan
from testbed.results import parse_params


def test_generated_stack_builds_the_measured_lab():
    model = load_model_text(alb.stack_yaml(), filename="stack.yaml", stack_name="x")
    plan = build_plan(model, "x")
    lb = plan.load_balancers[0]
    assert [(x.port, x.default_actions[0]["target_groups"]) for x in lb.listeners] == [
        (80, [["WebTargets", 100], ["CanaryTargets", 0]]),
        (8080, [["BenchTargets", 1]]),
    ]
    assert [r.name for r in lb.listeners[0].rules] == ["ApiRule"]
    assert [t.host for t in lb.target_group("BenchTargets").targets] == ["BenchA1"]
    bench = plan.host("Bench")
    assert bench.kind == "instance"
    assert bench.az == lb.nodes[0].az
    canary = build_plan(
        load_model_text(
            alb.stack_yaml(),
            filename="stack.yaml",
            stack_name="x",
            params={"WebWeight": "90", "CanaryWeight": "10"},
        ),
        "x",
    ).load_balancers[0]
    text = render(canary, canary.nodes[0], node_files(Path("/tmp/x"), "n"))
    assert "{ var(txn.draw) -m int lt 900000 }" in text


def test_parameters_and_usage_arithmetic():
    params = parse_params(alb, {"repeats": "2", "seconds": "1.5"})
    assert params["repeats"] == 2
    assert params["seconds"] == 1.5
    before = {
        "time": 0.0,
        "busy_ticks": 0,
        "all_ticks": 0,
        "ovs_ticks": 0,
        "tx_packets": 0,
        "cpus": 2.0,
    }
    after = {
        "time": 2.0,
        "busy_ticks": 300,
        "all_ticks": 400,
        "ovs_ticks": 150,
        "tx_packets": 4000,
        "cpus": 2.0,
    }
    used = alb._usage(before, after, 1000)
    assert used["fabric_packets_per_request"] == 4.0
    assert used["machine_cpu"] == 0.75
    # 0.75 of 2 CPUs for 2 s = 3 CPU-seconds over 1000 requests.
    assert abs(used["cpu_us_per_request"] - 3000.0) < 1e-6
    assert abs(used["ovs_cpu"] - 150 / alb.os_hz() / 2.0) < 1e-9
