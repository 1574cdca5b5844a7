"""tests/conftest.py itself: CI fails on a machine that cannot run a lab (elsewhere the
integration tests are skipped), and the order options reverse or shuffle each module."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.paths import REPO

# A plugin that makes the machine look unable to run a lab, whatever it really is.
NO_LAB = """
import testbed.lab.capabilities as capabilities


class _NoLab:
    problems = ["no Open vSwitch (pretend)", "not root (pretend)"]


capabilities.detect = lambda: _NoLab()
"""


def pytest_run(*args: str, ci: str | None, plugin_dir: Path | None = None):
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    if plugin_dir is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(plugin_dir), env.get("PYTHONPATH", "")])
        args = ("-p", "tt_nolab", *args)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def no_lab(tmp_path) -> Path:
    (tmp_path / "tt_nolab.py").write_text(NO_LAB)
    return tmp_path


@pytest.mark.parametrize("ci", ["true", "1", "True"])
def test_in_ci_a_machine_without_labs_fails_the_run_naming_the_problems(no_lab, ci):
    proc = pytest_run("-q", "tests/integration/test_hosts.py", ci=ci, plugin_dir=no_lab)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert "no Open vSwitch (pretend); not root (pretend)" in proc.stderr
    assert "integration tests need a lab" in proc.stderr
    assert "passed" not in proc.stdout
    assert "skipped" not in proc.stdout


@pytest.mark.parametrize("ci", [None, "false", ""])
def test_outside_ci_the_integration_tests_are_skipped_with_the_reason(no_lab, ci):
    proc = pytest_run("-q", "-rs", "tests/integration/test_hosts.py", ci=ci, plugin_dir=no_lab)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no lab can run here: no Open vSwitch (pretend)" in proc.stdout
    assert " skipped" in proc.stdout
    assert " passed" not in proc.stdout


def test_unit_tests_run_in_ci_on_a_machine_without_labs(no_lab):
    proc = pytest_run("-q", "tests/unit/test_waiting.py", ci="true", plugin_dir=no_lab)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def collected(*options: str) -> list[str]:
    proc = pytest_run(
        "--co", "-q", "tests/unit/test_waiting.py", "tests/unit/test_maglev.py", *options, ci=None
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [line for line in proc.stdout.splitlines() if "::" in line]


def test_reverse_and_shuffle_reorder_inside_each_module_only():
    plain = collected()
    modules = list(dict.fromkeys(t.split("::")[0] for t in plain))
    assert len(modules) == 2
    by_module = {m: [t for t in plain if t.startswith(m + "::")] for m in modules}
    reverse = collected("--reverse")
    assert reverse == by_module[modules[0]][::-1] + by_module[modules[1]][::-1]
    shuffled = collected("--shuffle", "7")
    assert shuffled == collected("--shuffle", "7")  # a seed gives the same order again
    assert shuffled != plain
    for m in modules:  # each module's tests stay together, all of them
        mine = [t for t in shuffled if t.startswith(m + "::")]
        assert sorted(mine) == sorted(by_module[m])
        assert shuffled.index(mine[0]) + len(mine) - 1 == shuffled.index(mine[-1])
