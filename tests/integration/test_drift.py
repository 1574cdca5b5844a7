"""`testbed drift` on a real lab (templates/alb.yaml): in sync after up; then a target
deregistered, a role stopped and a rule condition changed by hand through HAProxy's runtime
API show as exactly those differences; undone by hand, the stack is back in sync."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from testbed.lab.api import Lab, random_name
from testbed.lab.drift_live import haproxy_cli, stats_socket
from testbed.lab.hostexec import host_dir
from testbed.paths import TEMPLATES

pytestmark = pytest.mark.integration
ADMIN = "^/admin/.*$"
CHECKED = {"AWS::EC2::Instance": 6, "AWS::ElasticLoadBalancingV2::TargetGroup": 4}
CHECKED["AWS::ElasticLoadBalancingV2::ListenerRule"] = 4


@pytest.fixture(scope="module")
def lab():
    with Lab.up(str(TEMPLATES / "alb.yaml"), name=random_name("dri")) as lab:
        yield lab


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "testbed.cli", *args], capture_output=True, text=True, timeout=120
    )


def statuses(report: dict) -> dict[str, str]:
    return {
        r["LogicalResourceId"]: r["StackResourceDriftStatus"] for r in report["StackResourceDrifts"]
    }


def rule_acl(lab: Lab, node: str, acl: str) -> tuple[str, str]:
    """(stats socket, ACL id) of ACL `acl` on ALB node `node` (HAProxy's runtime API)."""
    config = (host_dir(lab.name, node) / "haproxy.cfg").read_text()
    line = next(i for i, x in enumerate(config.splitlines(), 1) if x.split()[:2] == ["acl", acl])
    sock = stats_socket(config)
    assert sock is not None
    listing = haproxy_cli(sock, "show acl")
    acl_id = next(x.split()[0] for x in listing.splitlines() if f" line {line}." in x)
    return sock, acl_id


def test_in_sync_then_drift_by_hand_then_back(lab):
    # 1. Right after up: in sync, every instance, target group and rule checked.
    report = lab.drift()
    assert report["StackDriftStatus"] == "IN_SYNC", statuses(report)
    rows = report["StackResourceDrifts"]
    for rtype, count in CHECKED.items():
        typed = [r for r in rows if r["ResourceType"] == rtype]
        assert [r["StackResourceDriftStatus"] for r in typed] == ["IN_SYNC"] * count
    assert {r["StackResourceDriftStatus"] for r in rows if r["ResourceType"] not in CHECKED} == {
        "NOT_CHECKED"
    }
    started = time.monotonic()
    cli = run_cli("drift", lab.name)
    took = time.monotonic() - started
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.startswith(f"Stack {lab.name}: IN_SYNC"), cli.stdout
    print(f"testbed drift (in sync) took {took:.2f} s")

    # 2. By hand: deregister a target, stop a role, add a path to a rule on one ALB node.
    lab.deregister("WebTargets", "WebB1")
    lab.host("ApiA1").fault("stop")
    sock, acl_id = rule_acl(lab, "MyALB-1a", "ApiRule_c0")
    assert haproxy_cli(sock, f"add acl #{acl_id} {ADMIN}").strip() == ""
    assert ADMIN in haproxy_cli(sock, f"show acl #{acl_id}")

    report = lab.drift()
    assert report["StackDriftStatus"] == "DRIFTED"
    assert report["DriftedStackResourceCount"] == 3
    drifted = {
        r["LogicalResourceId"]: r["PropertyDifferences"]
        for r in report["StackResourceDrifts"]
        if r["StackResourceDriftStatus"] != "IN_SYNC"
        and r["StackResourceDriftStatus"] != "NOT_CHECKED"
    }
    assert drifted == {
        "ApiA1": [
            {
                "PropertyPath": "/Metadata/Lab/Role/State",
                "ExpectedValue": "listening",
                "ActualValue": "stopped",
                "DifferenceType": "NOT_EQUAL",
            }
        ],
        "WebTargets": [
            {
                "PropertyPath": "/Targets/1",
                "ExpectedValue": '{"Id":"i-WebB1","Port":80}',
                "ActualValue": "null",
                "DifferenceType": "REMOVE",
            }
        ],
        "ApiRule": [
            {
                "PropertyPath": "/Conditions/0/PathPatternConfig/Values/1",
                "ExpectedValue": "null",
                "ActualValue": ADMIN,
                "DifferenceType": "ADD",
                "Nodes": ["MyALB-1a"],
            }
        ],
    }
    assert all(
        r["StackResourceDriftStatus"] == "MODIFIED"
        for r in report["StackResourceDrifts"]
        if r["LogicalResourceId"] in drifted
    )
    cli = run_cli("drift", lab.name, "--json")
    assert cli.returncode == 3, cli.stderr
    assert json.loads(cli.stdout)["DriftedStackResourceCount"] == 3

    # 3. Undone by hand: the same resources are back in sync.
    lab.register("WebTargets", "WebB1")
    lab.host("ApiA1").fault("start")
    haproxy_cli(sock, f"del acl #{acl_id} {ADMIN}")
    report = lab.drift()
    assert report["StackDriftStatus"] == "IN_SYNC", statuses(report)
    assert {k: statuses(report)[k] for k in drifted} == dict.fromkeys(drifted, "IN_SYNC")
    assert run_cli("drift", lab.name).returncode == 0


def test_bad_input_exits_2(lab):
    cli = run_cli("drift", lab.name, "--stack", "nosuch")
    assert cli.returncode == 2
    assert "has no stack 'nosuch'" in cli.stderr
    cli = run_cli("drift", "zz" + lab.name[2:6] + "x")
    assert cli.returncode == 2
    assert "no lab named" in cli.stderr


def test_drift_of_a_stack_added_to_the_lab():
    """--stack: each stack of a lab is compared with its own template, apart."""
    export = str(TEMPLATES / "two-stacks-export.yaml")
    with Lab.up(export, name=random_name("drs")) as lab:
        net = lab.name
        vpc = lab.outputs["VpcId"]
        lab.create_stack(
            str(TEMPLATES / "two-stacks-import.yaml"),
            {"NetworkStack": net, "VpcId": vpc},
            name="app",
        )
        app = lab.drift("app")
        assert app["StackName"] == "app"
        assert app["StackDriftStatus"] == "IN_SYNC", statuses(app)
        assert statuses(app)["App"] == "IN_SYNC"
        assert "Web" not in statuses(app)  # the first stack's
        assert "App" not in statuses(lab.drift())

        lab.host("app.App").fault("stop")
        app = lab.drift("app")
        assert app["StackDriftStatus"] == "DRIFTED"
        assert {k: v for k, v in statuses(app).items() if v not in ("IN_SYNC", "NOT_CHECKED")} == {
            "App": "MODIFIED"
        }
        assert lab.drift()["StackDriftStatus"] == "IN_SYNC"  # the other stack is not touched
        assert run_cli("drift", net, "--stack", "app").returncode == 3

        lab.host("app.App").fault("start")
        assert lab.drift("app")["StackDriftStatus"] == "IN_SYNC"
