"""The pieces of a lab on other servers that need no server (topologies.cluster; issue 18)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from testbed.errors import LabError
from testbed.lab.procs import group_running, start_time
from testbed.topologies import cluster
from testbed.topologies.cluster import ServerAccess, choose_tunnel, vxlan_commands
from testbed.waiting import wait_for


def test_vxlan_link_commands_have_cluster_editions_shape_with_type_vxlan():
    cmds = vxlan_commands("tb-m-p1", 4242, "10.9.0.1", "10.9.0.2", 1450)
    assert cmds[1] == (
        "ip link add tb-m-p1 type vxlan id 4242 remote 10.9.0.2 local 10.9.0.1 dstport 4789"
    )
    assert cmds[2] == "ip link set dev tb-m-p1 mtu 1450 up"


def test_gre_where_every_server_has_gretap_else_vxlan_else_ssh():
    assert choose_tunnel({"a": ("gre", "vxlan", "ssh"), "b": ("gre", "vxlan")})[0] == "gre"
    kind, why = choose_tunnel({"localhost": ("vxlan", "ssh"), "b": ("gre", "vxlan", "ssh")})
    assert kind == "vxlan"
    assert "no gretap on localhost" in why
    assert choose_tunnel({"a": ("ssh",), "b": ("vxlan", "ssh")})[0] == "ssh"
    with pytest.raises(LabError, match="no tunnel kind"):
        choose_tunnel({"a": ("gre",), "b": ("vxlan",)})


def test_a_server_is_reached_by_ssh_in_batch_mode_with_the_labs_config_and_no_sudo():
    access = ServerAccess("srv-a", "10.9.0.2", ssh_config="/x/ssh_config", ovs_env={"A": "b c"})
    argv = access.argv("ovs-vsctl show")
    assert argv[0] == "ssh"
    assert "BatchMode=yes" in argv
    assert argv[argv.index("-F") + 1] == "/x/ssh_config"
    assert argv[-2] == "srv-a"
    assert argv[-1] == "export A='b c' ; ovs-vsctl show"
    assert "sudo" not in argv
    assert "-tt" in access.ssh(tty=True)
    local = ServerAccess("localhost", "127.0.0.1")
    assert local.argv("true") == ["sh", "-c", "true"]


def test_clean_and_probe_scripts_touch_only_the_labs_prefix():
    script = cluster.clean_script("m")
    assert "grep '^'tb-m-" in script
    for never in ("mn -c", "killall", "pkill"):
        assert never not in script
    assert "tb-m-tp" in cluster.probe_script("m")


# ---- processes recorded on their server, ended there by PID ------------------------------
@pytest.fixture
def procs_here(tmp_path, monkeypatch):
    """The record folder in tmp_path; this machine plays the server (ServerAccess local)."""
    monkeypatch.setattr(cluster, "remote_procs_dir", lambda lab: str(tmp_path / f"{lab}-procs"))
    started: list[subprocess.Popen] = []

    def start(host: str, label: str, command: str) -> subprocess.Popen:
        # Like sshd: the command's shell leads a session (and a process group) of its own.
        proc = subprocess.Popen(
            ["sh", "-c", cluster.record_self_prefix("fu1", host, label) + command],
            start_new_session=True,
        )
        started.append(proc)
        wait_for(lambda: (tmp_path / "fu1-procs" / host / str(proc.pid)).exists(), 10, "record")
        return proc

    yield start, ServerAccess("localhost", "127.0.0.1"), tmp_path / "fu1-procs"
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_a_process_records_its_own_pid_and_start_time_before_it_becomes_the_program(procs_here):
    start, here, _folder = procs_here
    proc = start("WebA1", "role:http-backend", "exec sleep 30")
    (rec,) = cluster.remote_processes("fu1", here, "WebA1")
    assert (rec.server, rec.host, rec.pid, rec.label) == (
        "localhost",
        "WebA1",
        proc.pid,
        "role:http-backend",
    )
    assert rec.start_time == start_time(proc.pid)  # the same process after its exec
    assert cluster.remote_processes("fu1", here, "WebB1") == []
    with pytest.raises(ValueError, match="label"):
        cluster.record_self_prefix("fu1", "WebA1", "role; rm -rf /")


def test_ending_by_record_signals_only_the_recorded_live_process_and_its_group(procs_here):
    start, here, folder = procs_here
    # The role and a child of it (same process group): both go with the group's SIGTERM.
    role = start("WebA1", "role:http-backend", "sleep 30 & exec sleep 31")
    other = start("WebA1", "process", "exec sleep 32")
    kept = start("WebB1", "role:http-backend", "exec sleep 33")
    # A record whose PID is now another process (start time differs) is never signalled.
    (folder / "WebA1" / str(os.getpid())).write_text("1 role:http-backend\n")
    ended = cluster.end_remote_processes("fu1", here, "WebA1", "role:http-backend")
    assert ended == [f"process {role.pid} (WebA1 role:http-backend)"]
    assert role.wait(timeout=5) != 0
    wait_for(lambda: not group_running(role.pid), 5, "the role's process group to end")
    assert other.poll() is None
    assert kept.poll() is None
    assert not (folder / "WebA1" / str(role.pid)).exists()
    assert {r.pid for r in cluster.remote_processes("fu1", here)} == {other.pid, kept.pid}


def test_a_recorded_process_that_ignores_sigterm_gets_sigkill_after_the_grace(procs_here):
    start, here, _folder = procs_here
    stubborn = start("WebA1", "process", "trap '' TERM; while :; do sleep 0.05; done")
    t0 = time.monotonic()
    ended = here.run(cluster.end_records_script("fu1", grace=0.3))
    assert f"process {stubborn.pid} (WebA1 process)" in ended
    assert stubborn.wait(timeout=5) == -signal.SIGKILL
    assert time.monotonic() - t0 < 5


def test_the_clean_script_ends_recorded_processes_before_the_namespaces_and_removes_them():
    script = cluster.clean_script("fu1")
    assert script.index("/run/tb-fu1-procs/*/*") < script.index("ip netns pids")
    assert "rm -rf /run/tb-fu1-procs" in script
    assert "file /run/tb-fu1-procs" in cluster.leftovers_script("fu1")


def test_records_cut_short_are_skipped():
    text = "WebA1 41 900 role:http-backend\nWebA1 4\n\nWebB1 x 1 process\n"
    assert cluster.parse_records("srv1", text) == [
        cluster.RemoteProcess("srv1", "WebA1", 41, 900, "role:http-backend")
    ]
