"""The server harness on this machine: two servers, each with its own sshd and Open vSwitch in
its own namespaces; `testbed cluster check` on them; a VXLAN link between them; nothing left
after teardown, also when the harness's creator is killed."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from testbed.cli import main
from testbed.cluster.harness import ServerHarness, leftovers, missing_tools
from testbed.lab import system
from testbed.lab.procs import is_alive, record
from testbed.waiting import wait_for

pytestmark = pytest.mark.integration
PREFIX = os.environ.get("TESTBED_NAME_PREFIX", "")


def _require_tools() -> None:
    missing = missing_tools()
    if not missing:
        return
    why = f"the server harness needs {missing} (scripts/provision installs them)"
    if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        pytest.fail(f"CI: {why}")
    pytest.skip(why)


def cli(*args: str) -> subprocess.CompletedProcess:
    """`testbed ARGS` in this process (its output captured): the command's own code, without
    a new interpreter's start-up time."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(["testbed", *args], code, out.getvalue(), err.getvalue())


def machine_bridges() -> set[str]:
    return set(system.run(["ovs-vsctl", "--timeout=10", "list-br"]).stdout.split())


@pytest.fixture(scope="module")
def harness():
    _require_tools()
    before = machine_bridges()
    with ServerHarness(PREFIX, count=2) as h:
        h.machine_bridges_before = before  # type: ignore[attr-defined]
        yield h
    left = leftovers(h.name)
    assert not any(left.values()), f"harness {h.name} left {left}"


def test_two_servers_answer_over_ssh_each_in_its_own_namespaces(harness):
    assert [s.name for s in harness.servers] == ["srv1", "srv2"]
    seen = {}
    for s in harness.servers:
        # As root, named after the server, in a PID namespace of its own (the server's
        # init is PID 1: no process of this machine is visible there).
        out = s.run(["sh", "-c", "id -u; hostname; cat /proc/1/comm; ip -4 -o addr show eth0"])
        assert out.returncode == 0, out.stderr
        uid, host, init, addr = out.stdout.splitlines()
        assert (uid, host, init) == ("0", s.name, "sh")
        assert f"inet {s.address}/24" in addr
        # The same through the harness's ssh config, as a user would type it.
        argv = ["ssh", "-F", str(harness.ssh_config), s.name, "hostname"]
        seen[s.name] = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
    assert seen == {"srv1": "srv1\n", "srv2": "srv2\n"}
    # Servers reach each other with plain ssh (their own /root/.ssh), by name or address,
    # as Cluster Edition's server-to-server ssh tunnels need.
    srv1, srv2 = harness.servers
    other = srv1.run(f"ssh srv2 hostname && ssh {srv2.address} hostname")
    assert other.stdout == "srv2\nsrv2\n", other.stderr
    assert harness.front_end_address.endswith(".1")


def test_each_server_has_its_own_open_vswitch(harness):
    srv1, srv2 = harness.servers
    bridge = f"tbs{harness.name}"[:15]
    add = srv1.run(
        ["ovs-vsctl", "add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=netdev"]
    )
    assert add.returncode == 0, add.stderr
    try:
        assert bridge in srv1.run(["ovs-vsctl", "list-br"]).stdout.split()
        assert bridge not in srv2.run(["ovs-vsctl", "list-br"]).stdout.split()
        assert bridge not in machine_bridges()
        # The same database from this machine, through the server's run directory.
        assert bridge in srv1.ovs_vsctl("list-br").stdout.split()
        ids = {
            s.name: s.ovs_vsctl("get", "Open_vSwitch", ".", "_uuid").stdout for s in (srv1, srv2)
        }
        machine = system.run(["ovs-vsctl", "get", "Open_vSwitch", ".", "_uuid"]).stdout
        assert len({*ids, machine}) == 3
    finally:
        srv1.run(["ovs-vsctl", "--if-exists", "del-br", bridge])
    # The machine's own OVS: no harness bridge, and every bridge it had that is not a lab's
    # (labs of other users come and go meanwhile) is still there.
    now = machine_bridges()
    assert not [b for b in now if b.startswith(f"tb-{harness.name}-")]
    assert {b for b in harness.machine_bridges_before if not b.startswith("tb-")} <= now


def test_cluster_check_passes_and_reports_the_tunnel_types(harness):
    servers = f"us-east-1a={harness.servers[0].name},us-east-1b={harness.servers[1].name}"
    out = cli("cluster", "check", "--servers", servers, "--ssh-config", str(harness.ssh_config),
              "--json")  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["ok"] is True
    assert report["tunnel"] in ("vxlan", "gretap")
    # What this kernel can make, tried directly in the first server's network namespace.
    srv1 = harness.servers[0]
    direct = subprocess.run(
        ["ip", "netns", "exec", srv1.netns, "ip", "link", "add", "tbgtcheck", "type", "gretap",
         "remote", harness.front_end_address],
        capture_output=True, text=True,
    )  # fmt: skip
    subprocess.run(["ip", "netns", "exec", srv1.netns, "ip", "link", "del", "tbgtcheck"],
                   capture_output=True)  # fmt: skip
    for s in report["servers"]:
        assert s["tunnels"]["vxlan"] == "ok"
        assert s["facts"]["reach"] == "ok"
        assert s["seen_from"] == [s["address"]]  # the connection came from that server
        assert s["facts"]["root"] == "root"
        if direct.returncode != 0:  # these machines: no gretap in the kernel
            assert "Unknown device type" in direct.stderr
            assert "Unknown device type" in s["tunnels"]["gretap"]
            assert report["tunnel"] == "vxlan"
        else:
            assert s["tunnels"]["gretap"] == "ok"
    # No test device was left behind in any server.
    for s in harness.servers:
        assert "tb-ck" not in s.run(["ip", "-o", "link"]).stdout
    # The table: one OK row per server, the verdict at the end.
    text = cli("cluster", "check", "--servers", servers, "--ssh-config", str(harness.ssh_config))
    assert text.returncode == 0
    assert text.stdout.splitlines()[-1].startswith("verdict: OK")


def test_a_server_that_cannot_be_reached_fails_the_check(harness):
    # No sshd listens on the front end's underlay address: ssh is refused at once.
    servers = f"us-east-1a=srv1,us-east-1b=root@{harness.front_end_address}"
    out = cli("cluster", "check", "--servers", servers, "--ssh-config", str(harness.ssh_config))
    assert out.returncode == 1, out.stdout + out.stderr
    rows = out.stdout.splitlines()
    assert rows[1].split()[-1] == "OK"
    assert rows[2].split()[-1] == "FAIL"
    assert "us-east-1b" in out.stdout.splitlines()[-1]


def test_a_vxlan_link_between_two_servers_passes_ping(harness):
    srv1, srv2 = harness.servers
    script = textwrap.dedent(
        """\
        set -e
        ip link add tbvx0 type vxlan id 4200 local {me} remote {peer} dstport 4789 dev eth0
        ip addr add {inner}/30 dev tbvx0
        ip link set tbvx0 up
        """
    )
    try:
        for s, peer, inner in ((srv1, srv2, "10.250.0.1"), (srv2, srv1, "10.250.0.2")):
            made = s.run(["sh", "-c", script.format(me=s.address, peer=peer.address, inner=inner)])
            assert made.returncode == 0, made.stderr
        ping = srv1.run(["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.250.0.2"])
        assert ping.returncode == 0, ping.stdout + ping.stderr
        assert " 0% packet loss" in ping.stdout
    finally:
        for s in (srv1, srv2):
            s.run(["ip", "link", "del", "tbvx0"])


def test_teardown_removes_everything_the_harness_made():
    _require_tools()
    with ServerHarness(PREFIX, count=1) as h:
        name, server = h.name, h.servers[0]
        pids = [record(int(p), "a harness process") for p in leftovers(name)["processes"]]
        assert len(pids) >= 4  # unshare, the init, ovsdb-server, ovs-vswitchd, sshd
        assert server.netns in system.list_netns()
    left = leftovers(name)
    assert not any(left.values()), left
    # (same PID and start time, not a zombie: a PID may be reused meanwhile)
    assert not [r for r in pids if is_alive(r)]
    assert not [n for n in system.list_links() if n.startswith(f"tb-{name}-")]
    assert not h.dir.exists()


def test_a_harness_whose_creator_is_killed_is_cleaned_by_the_clean_command(tmp_path):
    _require_tools()
    ready = tmp_path / "ready"
    creator = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from testbed.cluster.harness import ServerHarness\n"
            f"h = ServerHarness({PREFIX!r}, count=1)\n"
            "h.up()\n"
            f"open({str(ready)!r}, 'w').write(h.name)\n"
            "time.sleep(120)\n",
        ]
    )
    try:
        name = wait_for(lambda: ready.exists() and ready.read_text(), 60, "the harness to be up")
        assert leftovers(name)["processes"]
    finally:
        creator.send_signal(signal.SIGKILL)
        creator.wait()
    listed = cli("cluster", "harness", "status", "--json").stdout.splitlines()
    mine = [h for h in map(json.loads, listed) if h["name"] == name]
    assert mine[0]["abandoned"] is True
    out = cli("cluster", "clean", name)
    assert out.returncode == 0, out.stderr
    assert f"cleaned harness {name}" in out.stdout
    left = leftovers(name)
    assert not any(left.values()), left
