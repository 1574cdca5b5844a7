"""A listener certificate for other names through the real CLI (issue 16, "Done when": a
certificate for another name is bad input): `testbed validate` and `testbed up` exit 2 naming
the listener's file:line, the certificates and the names that lead to the load balancer, and
`up` leaves nothing behind. A certificate that misses only some of the names validates with a
warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed import naming
from testbed.lab.api import random_name
from tests.assertions import assert_nothing_left, run_cli
from tests.unit.conftest import line_with

pytestmark = pytest.mark.integration

ALB = (Path(__file__).resolve().parents[2] / "templates" / "alb-https.yaml").read_text()
OTHER_WWW = ("DomainName: www.example.test, Valid", "DomainName: shop.example.test, Valid")
OTHER_API = ("DomainName: api.example.test\n", "DomainName: api.other.test\n")
OTHER_API_SAN = ('["*.api.example.test"]', '["*.other.test"]')


def written(tmp_path: Path, name: str, *changes: tuple[str, str]) -> str:
    text = ALB
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def assert_names_the_mistake(stderr: str, path: str) -> None:
    assert "Traceback" not in stderr, stderr
    where = f"{path}:{line_with(ALB, 'HttpsListener:')}: HttpsListener: "
    assert where in stderr, stderr
    for words in (
        "WwwCertificate (shop.example.test)",
        "ApiCertificate (api.other.test, *.other.test)",
        "cover none of the names that lead to load balancer Alb (www.example.test, "
        "api.example.test)",
    ):
        assert words in stderr, stderr


def test_validate_and_up_exit_2_on_a_certificate_for_other_names(tmp_path):
    bad = written(tmp_path, "other-names.yaml", OTHER_WWW, OTHER_API, OTHER_API_SAN)
    proc = run_cli("validate", bad, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert_names_the_mistake(proc.stderr, bad)
    name = random_name("cn")
    proc = run_cli("up", bad, "--name", name, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert_names_the_mistake(proc.stderr, bad)
    assert_nothing_left(name)
    assert not naming.lab_dir(name).exists()


def test_a_certificate_missing_some_names_validates_with_a_warning(tmp_path):
    partial = written(tmp_path, "some-names.yaml", OTHER_WWW)
    proc = run_cli("validate", partial, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warning: listener HttpsListener" in proc.stdout, proc.stdout
    assert "do not cover www.example.test" in proc.stdout, proc.stdout
