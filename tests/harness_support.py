"""What the tests of labs across servers share: whether the server harness can run here.

A machine without the harness's tools, or whose kernel makes neither VXLAN nor gretap
devices, skips those tests with the reason; in CI (CI=true) that is a broken CI machine and
the test fails instead."""

from __future__ import annotations

import os

import pytest

from testbed.cluster.harness import missing_tools
from testbed.topologies.cluster import ServerAccess, probe_tunnels


def require_harness() -> None:
    """Skip (fail under CI=true) unless a server harness and its tunnels can be made here."""
    why = ""
    missing = missing_tools()
    if missing:
        why = f"the server harness needs {missing} (scripts/provision installs them)"
    elif not {"vxlan", "gre"} & set(probe_tunnels("zz9", ServerAccess("localhost", "127.0.0.1"))):
        why = "this kernel makes neither VXLAN nor gretap devices"
    if not why:
        return
    if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        pytest.fail(f"CI: {why}")
    pytest.skip(why)
