"""The instance metadata service in a lab across servers (issue 18): instances in two AZs,
each AZ on its own harness server, ask http://169.254.169.254/ (IMDSv1 and IMDSv2) and get
their own ids, from their UserData (which then cfn-signals) and from outside it; the metadata
process of each server ends with the lab, and nothing of the lab is left on any server. Their
CPU is counted in a cgroup of their own on their server. A backend on another server is
stopped and started again (`testbed fault HOST stop|start`): its process is ended there by
the PID it recorded there, the NLB's health checks see it go and come back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from testbed import naming
from testbed.cluster.demo import state_dir_for_servers
from testbed.cluster.harness import ServerHarness
from testbed.lab import cgroups
from testbed.lab.api import Lab, random_name
from testbed.topologies.cluster import (
    CGROUP_MOUNT_SH,
    IMDS_MODULE,
    imds_pidfile,
    remote_cgroup_dir,
    remote_processes,
    remote_procs_dir,
)
from tests.assertions import assert_nothing_left
from tests.harness_support import require_harness

pytestmark = pytest.mark.integration
TEMPLATE = str(Path(__file__).parent / "templates" / "imds_servers.yaml")
NLB = str(Path(__file__).parents[2] / "templates" / "nlb.yaml")
ROLE = "role:http-backend"
IMDS = "http://169.254.169.254"
PREFIX = (os.environ.get("TESTBED_NAME_PREFIX") or "c").lower()[:1]


def server_state(server, name: str) -> str:
    """What of lab `name` a harness server has: its namespaces, links, bridges, its metadata
    process and PID file."""
    out = server.run(
        f"ip netns list; ip -o link show; ovs-vsctl --timeout=10 list-br; "
        f"{CGROUP_MOUNT_SH}; ls -d {remote_cgroup_dir(name)} 2>/dev/null; "
        f"ls {imds_pidfile(name)} 2>/dev/null; ls -d {remote_procs_dir(name)} 2>/dev/null; "
        "ps -eo args",
        timeout=30,
    ).stdout
    return "\n".join(
        line
        for line in out.splitlines()
        if naming.prefix(name) in line
        or f"elb-testbed/{naming.prefix(name).rstrip('-')}" in line
        or (IMDS_MODULE in line and name in line.split())
    )


def curl(lab: Lab, host: str, path: str, *options: str) -> str:
    proc = lab.host(host).run(["curl", "-s", "-m", "5", *options, f"{IMDS}{path}"], timeout=20)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def harness():
    require_harness()
    with pytest.MonkeyPatch.context() as mp:
        moved = state_dir_for_servers()
        if moved:
            mp.setenv("TESTBED_STATE_DIR", moved)
        with ServerHarness(PREFIX, count=2) as h:
            yield h


@pytest.fixture(scope="module")
def up(harness):
    """The lab across the two servers (us-east-1a on the first, us-east-1b on the second),
    for every test of the module; the last one takes it down."""
    s1, s2 = harness.servers[:2]
    name = random_name("m")
    with Lab.up(
        TEMPLATE,
        name=name,
        servers={"us-east-1a": s1.name, "us-east-1b": s2.name},
        ssh_config=str(harness.ssh_config),
    ) as lab:
        yield {"lab": lab, "name": name, "servers": (s1, s2), "seen": {}}


def test_instances_on_both_servers_get_their_own_metadata(up):
    lab, name = up["lab"], up["name"]
    s1, s2 = up["servers"]
    # CREATE_COMPLETE: both UserData asked IMDS (v1 and v2) and signalled.
    assert lab.state["state"] == "CREATE_COMPLETE"
    placed = {h.name: h.info.get("server") for h in lab.hosts}
    assert (placed["Web1"], placed["Web2"]) == (s1.name, s2.name)
    for host, az in (("Web1", "us-east-1a"), ("Web2", "us-east-1b")):
        folder = lab.dir / "hosts" / host
        assert (folder / "instance-id.txt").read_text() == f"i-{host}"
        assert (folder / "az.txt").read_text() == az
        # Asked from outside UserData: IMDSv1, then IMDSv2 with a token of its own.
        assert curl(lab, host, "/latest/meta-data/instance-id") == f"i-{host}"
        token = curl(
            lab,
            host,
            "/latest/api/token",
            "-X",
            "PUT",
            "-H",
            "X-aws-ec2-metadata-token-ttl-seconds: 30",
        )
        assert len(token) > 20
        header = f"X-aws-ec2-metadata-token: {token}"
        assert curl(lab, host, "/latest/meta-data/instance-id", "-H", header) == f"i-{host}"
        assert curl(lab, host, "/latest/meta-data/local-ipv4", "-H", header) == lab.host(host).ip
    # Each server runs one metadata process for the lab, named by its PID file.
    for server in (s1, s2):
        state = server_state(server, name)
        assert imds_pidfile(name) in state, state
        assert IMDS_MODULE in state, state
        if cgroups.available():
            assert f"elb-testbed/{naming.prefix(name).rstrip('-')}" in state, state
    if cgroups.available():
        # Per-instance CPU on the other servers: each host's cgroup is made there and
        # what runs in the host counts (read over ssh).
        for host in ("Web1", "Web2"):
            before = cgroups.cpu_usage_s(name, host)
            assert before is not None, host
            busy = lab.host(host).run(
                ["sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"]
            )
            assert busy.returncode == 0
            after = cgroups.cpu_usage_s(name, host)
            assert after is not None
            assert after > before + 0.05, (host, before, after)
    events = "\n".join(e.reason for e in lab.events())
    assert f"1 on server {s1.name}" in events
    assert f"1 on server {s2.name}" in events


def cli(*args: str) -> subprocess.CompletedProcess:
    argv = [str(Path(sys.executable).with_name("testbed")), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def running_there(server, pid: int, start_time: int) -> bool:
    """Is process `pid` (started at `start_time`, its server's clock ticks) still running on
    harness server `server`? Its /proc there, by the PID recorded there."""
    out = server.run(f"sed 's/.*) //' /proc/{pid}/stat 2>/dev/null", timeout=30).stdout.split()
    return len(out) > 19 and out[0] != "Z" and int(out[19]) == start_time


def test_a_backend_on_another_server_stops_and_starts(up):
    """`testbed fault NAME Web1 stop` (Web1 on the first server) ends its backend there, by
    the PID it recorded there: the NLB's health checks mark it unhealthy; `start` brings it
    back, healthy again."""
    lab, name = up["lab"], up["name"]
    s1, s2 = up["servers"]
    lab.wait_healthy("WebTargets")
    there = lab_access(name, "Web1")
    assert there.name == s1.name
    (before,) = [p for p in remote_processes(name, there, "Web1") if p.label == ROLE]
    assert running_there(s1, before.pid, before.start_time)

    done = cli("fault", name, "Web1", "stop")
    assert done.returncode == 0, done.stdout + done.stderr
    # Ended on its server by the PID it recorded there; nothing of it left there.
    assert not running_there(s1, before.pid, before.start_time)
    assert [p for p in remote_processes(name, there, "Web1") if p.label == ROLE] == []
    took = lab.wait_target_state("WebTargets", "Web1", "unhealthy", timeout=30)
    assert took < 15, took  # 2 failed checks 5 s apart (+ the check's own time)
    shown = cli("targets", name)
    assert shown.returncode == 0, shown.stderr
    assert any("Web1" in line and "unhealthy" in line for line in shown.stdout.splitlines())
    assert lab.target_state("WebTargets", "Web2") == "healthy"  # the other server's goes on

    done = cli("fault", name, "Web1", "start")
    assert done.returncode == 0, done.stdout + done.stderr
    (after,) = [p for p in remote_processes(name, there, "Web1") if p.label == ROLE]
    assert after.pid != before.pid
    lab.wait_target_state("WebTargets", "Web1", "healthy", timeout=30)
    reasons = [e.reason for e in lab.events() if e.resource_type == "Lab::Fault"]
    assert any(f"on server {s1.name} (pid {before.pid} there)" in r for r in reasons), reasons
    assert any(f"pid {after.pid} on server {s1.name}" in r for r in reasons), reasons
    up["seen"] = {
        s1.name: [(p.pid, p.start_time) for p in remote_processes(name, there)],
        s2.name: [(p.pid, p.start_time) for p in remote_processes(name, lab_access(name, "Web2"))],
    }


def test_the_teardown_ends_every_recorded_process_there_and_leaves_nothing(up):
    """`down` ends what the lab recorded on each server by PID (before the namespaces go),
    its metadata processes, its cgroups: nothing of the lab is left here or there."""
    lab, name = up["lab"], up["name"]
    s1, s2 = up["servers"]
    seen = up["seen"] or {
        s.name: [(p.pid, p.start_time) for p in remote_processes(name, lab_access(name, h))]
        for s, h in ((s1, "Web1"), (s2, "Web2"))
    }
    assert seen[s1.name]
    assert seen[s2.name]
    lab.down()
    for server in (s1, s2):
        for pid, start in seen[server.name]:
            assert not running_there(server, pid, start), (server.name, pid)
    assert_nothing_left(name)
    for server in (s1, s2):
        assert server_state(server, name) == "", server_state(server, name)


def lab_access(name: str, host: str):
    from testbed.lab.servers import host_server

    access = host_server(name, host)
    assert access is not None, f"{host} is on this machine"
    return access
