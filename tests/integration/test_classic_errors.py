"""Bad Classic Load Balancers through the real CLI: `testbed validate` and `testbed up` exit 2
with every mistake in one run, each as FILE:LINE: RESOURCE: message, and `up` leaves nothing
behind (issue 13, "Done when": bad input → file:line errors, exit 2).

tests/classic_data.py's ERRORS_TEMPLATE: one good CLB and six bad ones (an InstancePort of
70000 and one of 0, a duplicate LoadBalancerPort, a HealthCheck Target that does not parse,
Subnets and AvailabilityZones both given, an HTTPS listener without SSLCertificateId).
"""

from __future__ import annotations

import re

import pytest

from testbed import naming
from testbed.lab.api import random_name
from tests.assertions import assert_nothing_left, machine_snapshot, run_cli, without_labs
from tests.classic_data import ERRORS, ERRORS_TEMPLATE, error_lines

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("clb") / "bad-clb.yaml"
    path.write_text(ERRORS_TEMPLATE)
    return str(path)


def error_messages(stderr: str, path: str) -> list[tuple[int, str, str]]:
    """(line, resource, message) of every `PATH:LINE: RESOURCE: message` line."""
    found = []
    for line in stderr.splitlines():
        m = re.match(rf"^(?:error: )?{re.escape(path)}:(\d+): (\w+): (.*)$", line)
        if m:
            found.append((int(m[1]), m[2], m[3]))
    return found


def assert_every_error(stderr: str, path: str) -> None:
    assert "Traceback" not in stderr, stderr
    got = error_messages(stderr, path)
    by_resource: dict[str, list[tuple[int, str]]] = {}
    for line, resource, message in got:
        by_resource.setdefault(resource, []).append((line, message))
    for resource, texts, words in ERRORS:
        assert resource in by_resource, f"no error for {resource}:\n{stderr}"
        lines = error_lines(resource, texts)
        hits = [
            (line, message)
            for line, message in by_resource[resource]
            if line in lines and all(w in message for w in words)
        ]
        assert hits, f"{resource}: wanted line {sorted(lines)} saying {words}:\n{stderr}"
    # The good CLB is not blamed for its neighbours' mistakes.
    assert "GoodCLB" not in by_resource, stderr


def test_validate_reports_every_mistake_with_its_line(bad):
    proc = run_cli("validate", bad, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert_every_error(proc.stderr, bad)


def test_up_exits_2_with_every_mistake_and_builds_nothing(bad):
    name = random_name("ce")
    before = without_labs(machine_snapshot())["bridges"]
    proc = run_cli("up", bad, "--name", name, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert_every_error(proc.stderr, bad)
    assert without_labs(machine_snapshot())["bridges"] == before
    assert_nothing_left(name)
    assert not naming.lab_dir(name).exists()


def test_the_good_clb_alone_validates(bad, tmp_path):
    """The bad CLBs removed, the rest of the template is valid: the errors above came from
    the mistakes only."""
    text = ERRORS_TEMPLATE
    start = text.index("  PortCLB:\n")
    good = tmp_path / "good-clb.yaml"
    good.write_text(text[:start])
    proc = run_cli("validate", str(good), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "AWS::ElasticLoadBalancing::LoadBalancer" in proc.stdout
