"""The real-style templates of tests/integration/templates/real/ without a lab: they parse with
the project's loader, AWS's own linter (cfn-lint) finds no error in them, and they stay what
test_real_templates.py says they are: AWS-style templates with no lab-specific edit, asking
only for what AWS would ask (KeyName)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cfnlint.api import ManualArgs, lint

from testbed.template.yaml_loader import load_text

REAL = Path(__file__).resolve().parents[1] / "integration" / "templates" / "real"
TEMPLATES = sorted(REAL.glob("*.yaml"))
EXPECTED = {"alb-two-az.yaml", "nlb-eip.yaml", "route53-alias.yaml"}


def errors_of(text: str) -> list[str]:
    """cfn-lint's error-class findings (E...), as `LINE RULE message`."""
    matches = lint(text, config=ManualArgs(regions=["us-east-1"]))
    return [f"{m.linenumber} {m.rule.id} {m.message}" for m in matches if m.rule.id.startswith("E")]


def test_the_three_templates_are_there():
    assert {p.name for p in TEMPLATES} == EXPECTED


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_parses_with_the_project_loader(path: Path):
    doc = load_text(path.read_text(), str(path))
    assert doc["AWSTemplateFormatVersion"] == "2010-09-09"
    assert doc["Resources"]


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_cfn_lint_finds_no_error(path: Path):
    assert errors_of(path.read_text()) == []


def test_cfn_lint_check_can_fail():
    # The same check on a template with a misspelt property: it must report it.
    text = (REAL / "alb-two-az.yaml").read_text().replace("CidrBlock: 10.0.0.0/16", "Cidr: x", 1)
    found = errors_of(text)
    assert any("Cidr" in f for f in found), found


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_asks_only_for_a_key_pair(path: Path):
    # Every other parameter has a Default, as in AWS's samples: the integration tests pass
    # only --param KeyName=... and nothing lab-specific.
    params = load_text(path.read_text(), str(path))["Parameters"]
    assert [name for name, p in params.items() if "Default" not in p] == ["KeyName"]
    assert params["KeyName"]["Type"] == "AWS::EC2::KeyPair::KeyName"
    assert params["LatestAmiId"]["Type"] == "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"
    assert params["LatestAmiId"]["Default"].startswith("/aws/service/ami-amazon-linux-latest/")


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_nothing_lab_specific(path: Path):
    doc = load_text(path.read_text(), str(path))
    types = [r["Type"] for r in doc["Resources"].values()]
    assert not [t for t in types if not t.startswith("AWS::")], types
    for lid, resource in doc["Resources"].items():
        assert "Lab" not in resource.get("Metadata", {}), lid
    assert "Lab" not in doc.get("Metadata", {})


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_instances_install_a_web_server_with_yum(path: Path):
    # What the lab cannot run: the instances serve through the default http-backend role.
    doc = load_text(path.read_text(), str(path))
    instances = {lid: r for lid, r in doc["Resources"].items() if r["Type"] == "AWS::EC2::Instance"}
    assert len(instances) == 2
    for lid, resource in instances.items():
        props = resource["Properties"]
        assert props["ImageId"] == {"Ref": "LatestAmiId"}, lid
        assert props["KeyName"] == {"Ref": "KeyName"}, lid
        script = props["UserData"]["Fn::Base64"]["Fn::Sub"]  # as the samples write it
        assert "yum install -y httpd" in script, lid
        assert "systemctl start httpd" in script, lid
        # -e: the script stops at the first failing command (yum here), before it writes
        # anything outside the lab.
        assert script.lstrip().startswith("#!/bin/bash -xe"), lid


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_every_instance_is_a_target(path: Path):
    # The default role goes to load balancer targets only: each instance is one.
    doc = load_text(path.read_text(), str(path))
    resources = doc["Resources"]
    instances = {lid for lid, r in resources.items() if r["Type"] == "AWS::EC2::Instance"}
    targets = {
        t["Id"]["Ref"]
        for r in resources.values()
        if r["Type"] == "AWS::ElasticLoadBalancingV2::TargetGroup"
        for t in r["Properties"].get("Targets", [])
    }
    assert targets == instances
