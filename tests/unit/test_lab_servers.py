"""A lab's servers as later commands find them (testbed.lab.servers, hostexec; issue 18)."""

from __future__ import annotations

import pytest

from testbed import naming
from testbed.errors import BadInput
from testbed.lab import cgroups
from testbed.lab import servers as lab_servers
from testbed.lab.hostexec import netns_argv
from testbed.model import load_model
from testbed.plan.network import build_plan
from testbed.plan.placement import place
from testbed.topologies.cluster import LabServers, ServerAccess, record_self_prefix


def servers_of(lab: str) -> LabServers:
    plan = build_plan(load_model("templates/nlb.yaml"), lab)
    placement = place(plan, {"us-east-1a": "srv1", "us-east-1b": "srv2"})
    access = {
        "localhost": ServerAccess("localhost", "198.19.9.1"),
        "srv1": ServerAccess("srv1", "198.19.9.11", "/h/ssh_config"),
        "srv2": ServerAccess("srv2", "198.19.9.12", "/h/ssh_config"),
    }
    return LabServers(placement, access, "198.19.9.1", "vxlan: why", "/h/ssh_config")


def test_servers_round_trip_through_their_file():
    s = servers_of("m")
    back = LabServers.from_json(s.to_json())
    assert back.placement == s.placement
    assert back.front_end_address == "198.19.9.1"
    assert back.access["srv1"].address == "198.19.9.11"
    assert back.access["srv1"].ssh_config == "/h/ssh_config"
    assert back.server_of("WebA1") == back.access["srv1"]
    assert back.server_of("Client1") is None  # the front end
    assert [a.name for a in back.remote()] == ["srv1", "srv2"]


def test_a_remote_hosts_command_runs_over_ssh_a_local_ones_here(tmp_path, monkeypatch):
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path))
    lab_dir = naming.lab_dir("m")
    lab_dir.mkdir(parents=True)
    servers_of("m").save(lab_dir)
    argv = netns_argv("m", "WebB1", ["curl", "-s", "http://x/"])
    assert argv[0] == "ssh"
    assert argv[-2] == "srv2"
    # In the host's cgroup on its server (joined by the shell that then execs the command).
    assert argv[-1].startswith(cgroups.remote_join_prefix("m", "WebB1"))
    assert "elb-testbed/tb-m/WebB1/cgroup.procs" in argv[-1]
    assert "; exec ip netns exec tb-m-WebB1 env TMPDIR=" in argv[-1]
    assert argv[-1].endswith("curl -s http://x/")
    # Recorded on its server by its PID there, before it becomes the command (ended there
    # by that PID: fault stop, teardown); a command waited for is not recorded.
    assert record_self_prefix("m", "WebB1", "process") in argv[-1]
    assert argv[-1].index("/run/tb-m-procs/WebB1") < argv[-1].index("exec ip netns exec")
    role = netns_argv("m", "WebB1", ["sleep", "1"], record="role:http-backend")
    assert record_self_prefix("m", "WebB1", "role:http-backend") in role[-1]
    assert "tb-m-procs" not in netns_argv("m", "WebB1", ["true"], record=None)[-1]
    local = netns_argv("m", "Client1", ["true"])
    assert "ssh" not in local
    assert "tb-m-procs" not in " ".join(local)
    assert lab_servers.describe_host("m", "WebA1") == "srv1"
    assert lab_servers.describe_host("m", "Client1") == "localhost"


def test_clean_servers_from_the_option_leave_the_front_end_out():
    got = lab_servers.from_option("us-east-1a=srv1,us-east-1b=srv2,front-end=localhost", None)
    assert sorted(got) == ["srv1", "srv2"]
    with pytest.raises(BadInput):
        lab_servers.from_option("us-east-1a", None)


def test_a_remote_hosts_program_gets_the_labs_environment_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path))
    lab_dir = naming.lab_dir("m")
    lab_dir.mkdir(parents=True)
    servers_of("m").save(lab_dir)
    env = {"PATH": "/tools:/usr/bin", "TESTBED_HOST": "WebB1", "HOME": "/home/x", "SECRET": "s"}
    argv = netns_argv("m", "WebB1", ["cfn-signal", "-e", "0"], env=env, cwd=lab_dir / "h b")
    command = argv[-1]
    # ssh carries no environment: the lab's part of it is given to the command there, in the
    # folder the caller asked for (quoted).
    assert command.startswith(cgroups.remote_join_prefix("m", "WebB1"))
    assert f"; cd '{lab_dir / 'h b'}' && exec ip netns exec tb-m-WebB1 env " in command
    assert "PATH=/tools:/usr/bin TESTBED_HOST=WebB1" in command
    assert "HOME=" not in command
    assert "SECRET" not in command
    assert command.endswith("cfn-signal -e 0")
    # On this machine the caller's Popen applies them: nothing added.
    local = netns_argv("m", "Client1", ["true"], env=env, cwd=lab_dir)
    assert "cd" not in local
    assert not any("TESTBED_HOST" in a for a in local)


def test_a_remote_hosts_cgroup_is_made_and_read_on_its_server():
    script = cgroups.remote_create_script("m", {"WebB1": 41, "WebB2": 42})
    # Under the server's own cgroup2 mount, the same directories as here; the shells' PIDs
    # are the server's; nothing when it has no writable cgroup2.
    assert "/proc/self/mounts" in script
    assert 'echo 41 > "$m"/elb-testbed/tb-m/WebB1/cgroup.procs && echo cgroup WebB1' in script
    assert 'echo 42 > "$m"/elb-testbed/tb-m/WebB2/cgroup.procs' in script
    assert '[ -w "$m" ] || exit 0' in script
    assert cgroups.remote_usage_script("m", "WebB1").endswith(
        'cat "$m"/elb-testbed/tb-m/WebB1/cpu.stat'
    )
    # The remote teardown removes them after the lab's processes there; leftovers see them.
    from testbed.topologies.cluster import clean_script, leftovers_script

    clean = clean_script("m")
    assert clean.index('rmdir "$m"/elb-testbed/tb-m ') > clean.index("kill -9")
    assert '"$m"/elb-testbed/tb-m ]' in leftovers_script("m")
