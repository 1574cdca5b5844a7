"""`testbed run EXP --servers` (issue 18: experiments work unchanged across servers): the
cross_zone experiment, its code as it is, with its lab across two harness servers on this
machine; its results files and numbers, meta.json naming the servers and the tunnel, and
nothing left on any server afterwards."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testbed import naming
from testbed.cluster.demo import state_dir_for_servers
from testbed.cluster.harness import ServerHarness
from testbed.lab.teardown import leftovers
from tests.harness_support import require_harness

pytestmark = pytest.mark.integration

PARAMS = ["targets_a=1", "targets_b=1", "connections=40", "concurrency=4", "settings=on"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Two harness servers; `testbed run cross_zone --servers` across them; what it wrote,
    its output, and what is left of its labs on this machine and on each server."""
    require_harness()
    saved = os.environ.get("TESTBED_STATE_DIR")
    moved = state_dir_for_servers()  # harness servers have their own /run
    if moved:
        os.environ["TESTBED_STATE_DIR"] = moved
    out = tmp_path_factory.mktemp("results")
    try:
        with ServerHarness("e", count=2) as harness:
            s1, s2 = harness.servers[:2]
            servers = f"us-east-1a={s1.name},us-east-1b={s2.name}"
            argv = [str(Path(sys.executable).with_name("testbed")), "run", "cross_zone"]
            for p in PARAMS:
                argv += ["-p", p]
            argv += ["--servers", servers, "--ssh-config", str(harness.ssh_config)]
            argv += ["--out", str(out)]
            env = dict(os.environ, TESTBED_NAME_PREFIX="e")
            done = subprocess.run(argv, capture_output=True, text=True, timeout=100, env=env)
            results = sorted(p for p in out.iterdir() if p.is_dir())
            meta = json.loads((results[-1] / "meta.json").read_text()) if results else {}
            labs = [lab["lab"] for lab in meta.get("across_servers", {}).get("labs", [])]
            here = {lab: [f"{k} {v}" for k, v in leftovers(lab).items() if v] for lab in labs}
            there = []
            for server in (s1, s2):
                text = server.run(
                    "ip netns list; ovs-vsctl --timeout=10 list-br; ip -o link show", timeout=30
                ).stdout
                there += [
                    f"{server.name}: {line.split()[0]}"
                    for line in text.splitlines()
                    for lab in labs
                    if naming.prefix(lab) in line
                ]
            yield {
                "done": done,
                "dir": results[-1] if results else None,
                "meta": meta,
                "servers": (s1.name, s2.name),
                "left_here": here,
                "left_there": there,
            }
    finally:
        if saved is None:
            os.environ.pop("TESTBED_STATE_DIR", None)
        else:
            os.environ["TESTBED_STATE_DIR"] = saved


def test_the_experiment_ran_and_wrote_its_numbers(run):
    done = run["done"]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    path: Path = run["dir"]
    for name in ("requests.csv", "shares.csv", "summary.csv", "meta.json"):
        assert (path / name).is_file(), name
    rows = list(csv.DictReader((path / "summary.csv").open()))
    assert [r["cross_zone"] for r in rows] == ["on"]
    assert int(rows[0]["connections"]) == 40
    assert int(rows[0]["failed"]) == 0, rows
    shares = list(csv.DictReader((path / "shares.csv").open()))
    # Cross-zone on, one target per AZ: both targets, i.e. both servers, answered.
    assert {r["az"] for r in shares if int(r["count"]) > 0} == {"us-east-1a", "us-east-1b"}


def test_meta_names_the_servers_and_the_tunnel(run):
    across = run["meta"]["across_servers"]
    s1, s2 = run["servers"]
    assert across["servers"] == {"us-east-1a": s1, "us-east-1b": s2}
    assert across["front_end"] == "localhost"
    assert across["tunnel"]
    assert across["tunnel"][0] in ("vxlan", "gre")
    (lab,) = across["labs"]
    assert set(lab["nodes_by_server"]) == {"localhost", s1, s2}
    assert "1450" in str(lab["mtu"])
    assert run["meta"]["end"] is not None


def test_nothing_is_left_on_any_server(run):
    assert run["meta"]["across_servers"]["labs"]
    assert all(not v for v in run["left_here"].values()), run["left_here"]
    assert run["left_there"] == []
