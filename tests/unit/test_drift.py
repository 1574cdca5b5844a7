"""testbed drift's comparison (testbed.lab.drift) against fakes of what a lab runs: AWS's
shapes (StackDriftStatus, StackResourceDriftStatus, PropertyDifferences), and the reading of
HAProxy's answers and of the haproxy.cfg the ALB nodes write."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from testbed.alb.config import node_files, render
from testbed.lab import drift
from testbed.lab.drift import (
    ADD,
    DELETED,
    DRIFTED,
    IN_SYNC,
    INSTANCE,
    LISTENER_RULE,
    MODIFIED,
    NOT_CHECKED,
    NOT_EQUAL,
    REMOVE,
    TARGET_GROUP,
    Actual,
    Expected,
    ExpectedCondition,
    ExpectedGroup,
    ExpectedInstance,
    ExpectedRule,
    HostState,
    NodeAcls,
    Resource,
)
from testbed.lab.drift_live import _own, declared_targets, stats_socket
from testbed.model import load_model
from testbed.plan.balancers import ConditionPlan
from testbed.plan.network import build_plan

REPO = Path(__file__).resolve().parents[2]
PATH = ExpectedCondition("path-pattern", ("/api/*", "/v2/*"))
STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/alb/x"


def expected(**kw: Any) -> Expected:
    resources = (
        Resource("VPC", "AWS::EC2::VPC", "vpc-VPC"),
        Resource("WebA1", INSTANCE, "i-WebA1"),
        Resource("WebTargets", TARGET_GROUP, "arn:tg"),
        Resource("ApiRule", LISTENER_RULE, "arn:rule"),
    )
    base: dict[str, Any] = {
        "stack_name": "alb",
        "stack_id": STACK_ID,
        "resources": resources,
        "groups": {"WebTargets": ExpectedGroup("WebTargets", (("i-WebA1", 80), ("i-WebB1", 80)))},
        "instances": {"WebA1": ExpectedInstance("WebA1", "http-backend", (80, 8081))},
        "rules": {"ApiRule": ExpectedRule("ApiRule", "MyALB", (PATH,))},
    }
    base.update(kw)
    return Expected(**base)


FILE = {"ApiRule_c0": ("^/api/.*$", "^/v2/.*$")}


def actual(**kw: Any) -> Actual:
    base: dict[str, Any] = {
        "targets": {"WebTargets": [("i-WebA1", 80, "healthy"), ("i-WebB1", 80, "healthy")]},
        "hosts": {"WebA1": HostState(True)},
        "acls": {
            "MyALB": {
                "MyALB-1a": NodeAcls(FILE, dict(FILE)),
                "MyALB-1b": NodeAcls(FILE, dict(FILE)),
            }
        },
    }
    base.update(kw)
    return Actual(**base)


def by_id(report: dict) -> dict[str, dict]:
    return {r["LogicalResourceId"]: r for r in report["StackResourceDrifts"]}


def test_in_sync_stack_and_not_checked_types():
    report = drift.compare(expected(), actual(), now=0.0)
    assert report["StackDriftStatus"] == IN_SYNC
    assert report["DriftedStackResourceCount"] == 0
    assert report["DetectionStatus"] == "DETECTION_COMPLETE"
    assert report["Timestamp"] == "1970-01-01T00:00:00.000Z"
    rows = by_id(report)
    assert [r["StackResourceDriftStatus"] for r in rows.values()] == [
        NOT_CHECKED,
        IN_SYNC,
        IN_SYNC,
        IN_SYNC,
    ]
    assert rows["VPC"]["PhysicalResourceId"] == "vpc-VPC"
    assert "ExpectedProperties" not in rows["VPC"]
    tg = rows["WebTargets"]
    assert json.loads(tg["ExpectedProperties"]) == json.loads(tg["ActualProperties"])
    assert all(r["StackId"] == STACK_ID and r["PropertyDifferences"] == [] for r in rows.values())


def test_deregistered_and_added_targets():
    targets = {"WebTargets": [("i-WebA1", 80, "healthy"), ("10.0.1.9", 8080, "initial")]}
    report = drift.compare(expected(), actual(targets=targets))
    assert report["StackDriftStatus"] == DRIFTED
    assert report["DriftedStackResourceCount"] == 1
    tg = by_id(report)["WebTargets"]
    assert tg["StackResourceDriftStatus"] == MODIFIED
    assert tg["PropertyDifferences"] == [
        {
            "PropertyPath": "/Targets/1",
            "ExpectedValue": '{"Id":"i-WebB1","Port":80}',
            "ActualValue": "null",
            "DifferenceType": REMOVE,
        },
        {
            "PropertyPath": "/Targets/2",
            "ExpectedValue": "null",
            "ActualValue": '{"Id":"10.0.1.9","Port":8080}',
            "DifferenceType": ADD,
        },
    ]
    assert json.loads(tg["ActualProperties"])["Targets"] == [
        {"Id": "i-WebA1", "Port": 80},
        {"Id": "10.0.1.9", "Port": 8080},
    ]


def test_a_draining_target_is_leaving_and_a_reregistered_one_is_back():
    draining = {"WebTargets": [("i-WebA1", 80, "healthy"), ("i-WebB1", 80, "draining")]}
    rows = by_id(drift.compare(expected(), actual(targets=draining)))
    assert [d["PropertyPath"] for d in rows["WebTargets"]["PropertyDifferences"]] == ["/Targets/1"]
    back = {"WebTargets": [("i-WebB1", 80, "initial"), ("i-WebA1", 80, "healthy")]}
    rows = by_id(drift.compare(expected(), actual(targets=back)))
    assert rows["WebTargets"]["StackResourceDriftStatus"] == IN_SYNC


def test_a_port_change_is_a_remove_and_an_add():
    moved = {"WebTargets": [("i-WebA1", 80, "healthy"), ("i-WebB1", 8080, "healthy")]}
    diffs = by_id(drift.compare(expected(), actual(targets=moved)))["WebTargets"][
        "PropertyDifferences"
    ]
    assert [(d["PropertyPath"], d["DifferenceType"]) for d in diffs] == [
        ("/Targets/1", REMOVE),
        ("/Targets/2", ADD),
    ]


def test_group_without_template_targets_is_not_compared():
    groups = {"WebTargets": ExpectedGroup("WebTargets", None)}
    targets = {"WebTargets": [("i-Asg1", 80, "healthy")]}
    row = by_id(drift.compare(expected(groups=groups), actual(targets=targets)))["WebTargets"]
    assert row["StackResourceDriftStatus"] == IN_SYNC
    assert "Targets" in row["Reason"]


def test_classic_load_balancer_instances():
    resources = (Resource("MyCLB", drift.CLASSIC_LB, "MyCLB"),)
    groups = {"MyCLB": ExpectedGroup("MyCLB", (("i-WebA1", 80), ("i-WebA2", 80)), "Instances")}
    targets = {"MyCLB": [("i-WebA1", 80, "healthy"), ("i-WebA2", 80, "draining")]}
    report = drift.compare(expected(resources=resources, groups=groups), actual(targets=targets))
    row = by_id(report)["MyCLB"]
    assert row["StackResourceDriftStatus"] == MODIFIED
    assert row["PropertyDifferences"] == [
        {
            "PropertyPath": "/Instances/1",
            "ExpectedValue": "i-WebA2",
            "ActualValue": "null",
            "DifferenceType": REMOVE,
        }
    ]
    assert json.loads(row["ExpectedProperties"]) == {"Instances": ["i-WebA1", "i-WebA2"]}


def test_not_checked_types_say_why():
    resources = (
        Resource("Sg", "AWS::EC2::SecurityGroup", "sg-Sg"),
        Resource("Listener", "AWS::ElasticLoadBalancingV2::Listener", "arn:l"),
        Resource("Client1", "Lab::Internet::Client", "client-Client1"),
        Resource("Gone", INSTANCE, "i-Gone"),  # an instance the plan does not have
    )
    rows = by_id(drift.compare(expected(resources=resources), actual()))
    assert {r["StackResourceDriftStatus"] for r in rows.values()} == {NOT_CHECKED}
    assert "does not report the rules" in rows["Sg"]["Reason"]
    assert "default actions" in rows["Listener"]["Reason"]
    assert rows["Client1"]["Reason"] == drift.NOT_READ
    assert rows["Gone"]["Reason"] == "not in the lab's plan"


def test_unreadable_registry_is_not_checked_not_drift():
    report = drift.compare(expected(), actual(targets={}, targets_error="holder gone"))
    row = by_id(report)["WebTargets"]
    assert row["StackResourceDriftStatus"] == NOT_CHECKED
    assert row["Reason"] == "holder gone"
    assert report["StackDriftStatus"] == IN_SYNC


@pytest.mark.parametrize(
    ("state", "status", "actual_value"),
    [
        (HostState(True, drift.STOPPED), MODIFIED, "stopped"),
        (HostState(True, "not listening on 80"), MODIFIED, "not listening on 80"),
        (HostState(False), DELETED, None),
    ],
)
def test_instance_role_stopped_or_host_gone(state, status, actual_value):
    report = drift.compare(expected(), actual(hosts={"WebA1": state}))
    row = by_id(report)["WebA1"]
    assert row["StackResourceDriftStatus"] == status
    assert report["StackDriftStatus"] == DRIFTED
    if status == DELETED:
        assert row["PropertyDifferences"] == []
        assert "ExpectedProperties" not in row  # AWS leaves them out for DELETED
    else:
        assert row["PropertyDifferences"] == [
            {
                "PropertyPath": "/Metadata/Lab/Role/State",
                "ExpectedValue": "listening",
                "ActualValue": actual_value,
                "DifferenceType": NOT_EQUAL,
            }
        ]


def test_instance_missing_from_the_actual_state_is_deleted():
    row = by_id(drift.compare(expected(), actual(hosts={})))["WebA1"]
    assert row["StackResourceDriftStatus"] == DELETED


def test_rule_pattern_added_on_one_node_and_removed_on_both():
    running_a = {"ApiRule_c0": ("^/api/.*$", "^/admin/.*$")}
    running_b = {"ApiRule_c0": ("^/api/.*$",)}
    acls = {
        "MyALB": {
            "MyALB-1a": NodeAcls(FILE, running_a),
            "MyALB-1b": NodeAcls(FILE, running_b),
        }
    }
    row = by_id(drift.compare(expected(), actual(acls=acls)))["ApiRule"]
    assert row["StackResourceDriftStatus"] == MODIFIED
    assert row["PropertyDifferences"] == [
        {
            "PropertyPath": "/Conditions/0/PathPatternConfig/Values/1",
            "ExpectedValue": "/v2/*",
            "ActualValue": "null",
            "DifferenceType": REMOVE,
            "Nodes": ["MyALB-1a", "MyALB-1b"],
        },
        {
            "PropertyPath": "/Conditions/0/PathPatternConfig/Values/2",
            "ExpectedValue": "null",
            "ActualValue": "^/admin/.*$",
            "DifferenceType": ADD,
            "Nodes": ["MyALB-1a"],
        },
    ]
    assert json.loads(row["ExpectedProperties"]) == {
        "Conditions": [
            {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*", "/v2/*"]}}
        ]
    }
    assert json.loads(row["ActualProperties"])["Conditions"][0]["PathPatternConfig"] == {
        "Values": ["/api/*", "^/admin/.*$"]
    }


def test_rule_cleared_and_rule_missing_from_the_running_config():
    cleared = {"MyALB": {"MyALB-1a": NodeAcls(FILE, {"ApiRule_c0": ()})}}
    diffs = by_id(drift.compare(expected(), actual(acls=cleared)))["ApiRule"]["PropertyDifferences"]
    assert [(d["PropertyPath"], d["DifferenceType"]) for d in diffs] == [
        ("/Conditions/0/PathPatternConfig/Values/0", REMOVE),
        ("/Conditions/0/PathPatternConfig/Values/1", REMOVE),
    ]
    edited = {"MyALB": {"MyALB-1a": NodeAcls({}, {})}}  # haproxy.cfg edited, rule gone
    row = by_id(drift.compare(expected(), actual(acls=edited)))["ApiRule"]
    assert row["StackResourceDriftStatus"] == MODIFIED
    assert row["PropertyDifferences"][0]["PropertyPath"] == "/Conditions/0"
    assert row["PropertyDifferences"][0]["DifferenceType"] == REMOVE


def test_rule_unreadable_node_is_not_checked():
    acls = {"MyALB": {"MyALB-1a": NodeAcls(error="HAProxy does not answer")}}
    row = by_id(drift.compare(expected(), actual(acls=acls)))["ApiRule"]
    assert row["StackResourceDriftStatus"] == NOT_CHECKED
    assert "MyALB-1a: HAProxy does not answer" in row["Reason"]


def test_query_string_and_header_conditions_in_aws_form():
    query = ExpectedCondition("query-string", ("a=1",), pairs=(("a", "1"),))
    header = ExpectedCondition("http-header", ("x*",), key="X-Env")
    rules = {"ApiRule": ExpectedRule("ApiRule", "MyALB", (query, header))}
    file = {"ApiRule_c0": ("(^|&)a=1(&|$)",), "ApiRule_c1": ("^x.*$",)}
    acls = {"MyALB": {"MyALB-1a": NodeAcls(file, {"ApiRule_c0": (), "ApiRule_c1": ("^x.*$",)})}}
    row = by_id(drift.compare(expected(rules=rules), actual(acls=acls)))["ApiRule"]
    assert row["PropertyDifferences"][0]["PropertyPath"] == (
        "/Conditions/0/QueryStringConfig/Values/0"
    )
    assert row["PropertyDifferences"][0]["ExpectedValue"] == '{"Key":"a","Value":"1"}'
    props = json.loads(row["ExpectedProperties"])["Conditions"]
    assert props[1] == {
        "Field": "http-header",
        "HttpHeaderConfig": {"HttpHeaderName": "X-Env", "Values": ["x*"]},
    }


# ---- HAProxy's answers and the node's haproxy.cfg -------------------------------------------
CFG = "/run/elb-testbed/a/hosts/MyALB-1a/haproxy.cfg"
SHOW_ACL = f"""\
# id (file) description
0 () acl 'status' file '{CFG}' line 29. curr_ver=0 next_ver=0 entry_cnt=1
4 () acl 'path' file '{CFG}' line 32. curr_ver=0 next_ver=0 entry_cnt=1
5 () acl 'var' file 'httpclient' line 0. curr_ver=0 next_ver=0 entry_cnt=1

"""


def test_parse_show_acl_and_entries():
    # Measured with HAProxy 2.6.12 (Debian 12).
    assert drift.parse_show_acl(SHOW_ACL) == [(0, 29), (4, 32), (5, 0)]
    entries = "0x56410cd25940 ^/api/.*$\n0x56410cefe1c0 ^a b$\n\n"
    assert drift.parse_acl_entries(entries) == ("^/api/.*$", "^a b$")
    assert drift.parse_acl_entries("\n") == ()


def test_config_acls_quoting():
    config = (
        "frontend L\n"
        """    acl R_c0 "req.fhdr(x-a)" -m reg -i 'a b' 'it'\\''s' c\\ d  # note\n"""
        "    acl R_c1 method GET\n"
        "    http-request set-var(txn.rule) str(R) if R_c0\n"
    )
    assert drift.config_acls(config) == {2: ("R_c0", ("a b", "it's", "c d")), 3: ("R_c1", ("GET",))}


def alb_plan():
    return build_plan(load_model(str(REPO / "templates/alb.yaml"), {}, stack_name="alb"), "alb")


def test_config_acls_read_every_condition_kind_as_the_alb_writes_it(tmp_path):
    lb = alb_plan().load_balancers[0]
    listener = lb.listeners[0]
    conditions = (
        ConditionPlan("path-pattern", ("/api/*", "/it's/?")),
        ConditionPlan("host-header", ("*.example.com",)),
        ConditionPlan("http-header", ("a b", "x*"), key="X-Env"),
        ConditionPlan("http-request-method", ("GET", "POST")),
        ConditionPlan("query-string", ("a=1", "b"), pairs=(("a", "1"), (None, "b"))),
        ConditionPlan("source-ip", ("10.0.0.0/8", "192.168.1.1/32")),
    )
    rule = dataclasses.replace(listener.rules[0], conditions=conditions)
    listener = dataclasses.replace(listener, rules=(rule, *listener.rules[1:]))
    lb = dataclasses.replace(lb, listeners=(listener,))
    files = node_files(tmp_path, lb.nodes[0].host)
    config = render(lb, lb.nodes[0], files)
    acls = dict(drift.config_acls(config).values())
    for n, cond in enumerate(conditions):
        patterns = acls[f"{rule.name}_c{n}"]
        assert len(patterns) == len(cond.values), (cond, patterns)
    assert acls[f"{rule.name}_c3"] == ("GET", "POST")
    assert acls[f"{rule.name}_c5"] == ("10.0.0.0/8", "192.168.1.1/32")
    assert acls[f"{rule.name}_c0"][0] == "^/api/.*$"
    assert acls[f"{rule.name}_c2"][0] == "^a\\x20b$"
    # The runtime API socket the reader asks is the one the node's files name.
    assert stats_socket(config) == str(files.stats_socket)


def test_config_acls_lines_match_show_acl_lines(tmp_path):
    lb = alb_plan().load_balancers[0]
    config = render(lb, lb.nodes[0], node_files(tmp_path, lb.nodes[0].host))
    by_line = drift.config_acls(config)
    lines = config.splitlines()
    for number, (name, _patterns) in by_line.items():
        assert lines[number - 1].split()[:2] == ["acl", name]
    assert {name for name, _p in by_line.values()} == {
        "ApiRule_c0",
        "StaticRule_c0",
        "OldPathRule_c0",
        "LbHealthRule_c0",
    }


def test_template_targets_and_plan_names():
    text = (REPO / "templates/alb.yaml").read_text()
    assert declared_targets(text, "alb.yaml") == {
        "WebTargets",
        "CanaryTargets",
        "ApiTargets",
        "StaticTargets",
    }
    assert declared_targets((REPO / "templates/autoscaling.yaml").read_text(), "a.yaml") == set()
    assert declared_targets((REPO / "templates/classic.yaml").read_text(), "c.yaml") == {"MyCLB"}
    assert _own("WebA1", "") == "WebA1"
    assert _own("extra.WebA1", "") is None
    assert _own("extra.WebA1", "extra.") == "WebA1"
    assert _own("WebA1", "extra.") is None
