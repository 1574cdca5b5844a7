"""A template with no lab metadata serves on a real lab: its load balancer's targets get the
http-backend role, the lab adds the internet client Internet1, and a Route53 alias to the
load balancer resolves in the lab's resolver (templates/lab_defaults.yaml here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.lab.api import Lab
from tests.assertions import run_cli

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent / "templates"
TARGETS = {"WebA", "WebB"}
REQUESTS = 12


@pytest.fixture(scope="module")
def lab():
    with Lab.up(str(HERE / "lab_defaults.yaml")) as lab:
        # The group's health checks hit "/" (AWS's default path): http-backend answers 200.
        lab.wait_healthy(timeout=40)
        yield lab


def curl_from_internet1(lab, url: str) -> set[str]:
    """The instances that answered REQUESTS requests to `url` from Internet1 (each must be a
    200 from an http-backend: its JSON names the instance)."""
    script = (
        f"for i in $(seq {REQUESTS}); do "
        f"curl -s -m 5 -o - -w ' %{{http_code}}\\n' {url} || echo ' 000'; done"
    )
    proc = run_cli("exec", lab.name, "Internet1", "--", "sh", "-c", script, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == REQUESTS, proc.stdout
    seen = set()
    for line in lines:
        body, _, code = line.rpartition(" ")
        assert code == "200", line
        seen.add(json.loads(body)["instance"])
    return seen


def test_status_shows_the_default_role_and_the_lab_made_client(lab):
    status = json.loads(run_cli("status", lab.name, "--json", check=True).stdout)
    hosts = {h["name"]: h for h in status["hosts"]}
    assert all(h["kind"] for h in hosts.values())
    for name in TARGETS:
        assert hosts[name]["kind"] == "instance"
        assert not hosts[name]["machinery"]
        assert hosts[name]["role"] == "http-backend"
        assert "WebTargets (HTTP 80)" in hosts[name]["default_role"]
    client = hosts["Internet1"]
    assert (client["kind"], client["ip"]) == ("client", "198.51.100.10")
    assert "internet gateway" in client["lab_made"]
    kinds = {h["kind"] for h in hosts.values() if h["machinery"]}
    assert {"dns", "lb-node"} <= kinds
    text = run_cli("status", lab.name, check=True).stdout
    assert "client (lab-made)" in text
    assert "http-backend (default)" in text


def test_internet1_reaches_both_targets_through_the_load_balancer_name(lab):
    url = lab.state["outputs"]["URL"]
    assert curl_from_internet1(lab, url) == TARGETS


def test_the_route53_alias_resolves_to_the_load_balancer(lab):
    answer = lab.host("Internet1").cmd("getent hosts www.example.com")
    assert answer.strip(), "www.example.com does not resolve"
    assert curl_from_internet1(lab, "http://www.example.com/") == TARGETS
