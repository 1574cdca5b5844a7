"""The package installs like any other: a wheel, built from the checkout, installed into a
fresh virtual environment, gives a working `testbed` from any directory, with the
controllers, topologies, experiments and templates inside the testbed namespace."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from testbed.lab.hosttools import TOOL_NAMES

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def run(argv: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        cwd=out,
    )
    (path,) = out.glob("elb_testbed-*.whl")
    return path


def test_wheel_holds_the_namespace_and_the_templates(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for module in (
        "testbed/controllers/run.py",
        "testbed/controllers/lab_app.py",
        "testbed/topologies/vpc.py",
        "testbed/experiments/gwlb.py",
        "testbed/lab/api.py",
        "testbed/gwlb/node.py",
        "testbed/gwlb/fastpath/appliance_fastpath.c",
        "testbed/stack/holder.py",
        "testbed/templates/default.yaml",
    ):
        assert module in names, f"{module} is not in {wheel.name}"
    stray = sorted(
        {n.split("/")[0] for n in names}
        - {"testbed"}
        - {n.split("/")[0] for n in names if ".dist-info/" in n}
    )
    assert not stray, f"top-level packages besides testbed: {stray}"


def test_wheel_holds_the_host_tools_executable(wheel):
    # cfn-signal, cfn-init and the shims run as programs in lab hosts (testbed.lab.hosttools).
    entries = {i.filename: i for i in zipfile.ZipFile(wheel).infolist()}
    for tool in TOOL_NAMES:
        entry = entries.get(f"testbed/lab/hosttools/bin/{tool}")
        assert entry is not None, f"{tool} is not in {wheel.name}"
        assert (entry.external_attr >> 16) & 0o111, f"{tool} is not executable in the wheel"


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv (seeing the distribution's Mininet, as scripts/provision makes it) with
    the wheel and its pinned dependencies installed; its bin directory."""
    venv = tmp_path_factory.mktemp("venv") / "v"
    run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)], cwd=venv.parent)
    run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            str(wheel),
        ],
        cwd=venv.parent,
        timeout=900,
    )
    return venv / "bin"


def test_installed_testbed_works_from_another_directory(installed, tmp_path):
    where = run(
        [
            str(installed / "python"),
            "-c",
            "import testbed, testbed.controllers.run, testbed.topologies.vpc, "
            "testbed.experiments.gwlb; print(testbed.__file__)",
        ],
        cwd=tmp_path,
    ).stdout
    assert str(REPO) not in where, where
    assert "site-packages" in where, where
    tools = run(
        [
            str(installed / "python"),
            "-c",
            "import os, testbed.lab.hosttools as t; "
            "print(all(os.access(t.TOOLS_DIR / n, os.X_OK) for n in t.TOOL_NAMES))",
        ],
        cwd=tmp_path,
    ).stdout
    assert tools.strip() == "True", "the installed host tools are not executable"
    # The appliance's compiled data paths build from the installed sources, into the venv:
    # the userspace binary on the first line, the BPF object and its loader on the second
    # (where clang and libbpf-dev are: the header they share must be installed too).
    built = run([str(installed / "python"), "-m", "testbed.gwlb.build_fastpath"], cwd=tmp_path)
    lines = built.stdout.split("\n")
    binary = Path(lines[0].strip())
    assert binary.is_relative_to(installed.parent), binary
    assert os.access(binary, os.X_OK), binary
    if shutil.which("clang-14") and Path("/usr/include/bpf/libbpf.h").exists():
        obj, loader = map(Path, lines[1].split())
        assert obj.is_relative_to(installed.parent), obj
        assert obj.suffix == ".o", obj
        assert os.access(loader, os.X_OK), loader
    out = run([str(installed / "testbed"), "validate", "default"], cwd=tmp_path).stdout
    assert "valid" in out, out
    assert "site-packages" in out, out
    listed = run([str(installed / "testbed"), "run", "--list"], cwd=tmp_path).stdout
    assert "gwlb" in listed, listed
    assert "stacks" not in listed, listed
    doctor = subprocess.run(
        [str(installed / "testbed"), "doctor"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # doctor exits 1 where no lab can run (e.g. without root): it still reports.
    assert doctor.returncode in (0, 1), doctor.stderr
    assert "Open vSwitch" in doctor.stdout
    assert "Traceback" not in doctor.stderr
