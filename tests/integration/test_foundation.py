"""Lab foundation on real labs: reachability as AWS allows, scoped teardown, decoys, CLI."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from testbed import naming
from testbed.lab import system
from testbed.lab.api import Lab, random_name, start_lab, stop_lab
from testbed.lab.state import holder_alive, read_state
from testbed.paths import REPO, TEMPLATES
from testbed.waiting import WaitTimeout, wait_for
from tests.assertions import (
    assert_nothing_left,
    assert_reachability_is_aws,
    host_diagnostics,
    lab_processes,
    machine_snapshot,
    plan_of,
    run_cli,
    without_labs,
)

pytestmark = pytest.mark.integration
DEFAULT = str(TEMPLATES / "default.yaml")
THREE_AZ = str(TEMPLATES / "three-az.yaml")


@pytest.mark.smoke
def test_default_template_reachability_is_exactly_what_aws_allows(default_lab):
    got = assert_reachability_is_aws(default_lab)
    # The rules spelled out by hand, independently of testbed.lab.reachability:
    ip = {h.name: h.ip for h in default_lab.hosts}
    pub = {h.name: h.public_ip for h in default_lab.hosts}
    assert got[("WebA2", ip["WebB2"])]  # private to private across AZs: local route
    assert got[("WebA1", ip["WebB2"])]
    assert got[("Client1", pub["WebA1"])]  # internet to a public instance, via the IGW
    assert got[("Client1", pub["WebB1"])]
    assert not got[("Client1", ip["WebA1"])]  # private addresses are not routed outside
    assert not got[("Client1", ip["WebA2"])]
    assert not got[("WebA2", ip["Client1"])]  # private subnet: no route to the internet
    assert got[("WebA1", ip["Client1"])]


@pytest.mark.smoke
def test_hosts_addresses_and_status_json(default_lab):
    proc = run_cli("status", default_lab.name, "--json", check=True)
    status = json.loads(proc.stdout)
    assert status["name"] == default_lab.name
    assert status["alive"]
    assert status["datapath"] in ("user", "kernel")
    assert status["pid"] == read_state(default_lab.dir)["pid"]
    hosts = {h["name"]: h for h in status["hosts"]}
    assert hosts["WebA1"]["ip"] == "10.0.0.4"
    assert hosts["WebA1"]["public_ip"] == "203.0.113.10"
    assert hosts["WebA2"]["public_ip"] is None
    assert hosts["WebA2"]["az"] == "us-east-1a"
    assert hosts["Client1"]["az"] is None  # on the internet, in no AZ
    assert hosts["Client1"]["kind"] == "client"
    assert hosts["Client1"]["lab_made"] is None  # the template declares it
    assert hosts["WebA1"]["kind"] == "instance"
    assert hosts["LabDNS"]["machinery"]
    assert hosts["Client1"]["ip"] == "198.51.100.10"
    assert status["outputs"]["WebA1PublicIp"] == "203.0.113.10"
    # The addresses are really configured in the hosts.
    addr = default_lab.host("WebB1").cmd("ip -4 -o addr show dev eth0")
    assert "10.0.2.4/24" in addr
    route = default_lab.host("WebB1").cmd("ip route show default")
    assert "via 10.0.2.1" in route


def test_public_instance_serves_http_to_the_internet_with_client_ip(default_lab):
    def answer_text() -> str | None:
        out = default_lab.host("Client1").cmd("curl -s -m 2 http://203.0.113.11/hello")
        return out if out.startswith("{") else None

    try:
        out = default_lab.wait_for(answer_text, 15, "WebB1 to answer Client1 over HTTP")
    except WaitTimeout as exc:
        raise AssertionError(
            f"{exc}\n{host_diagnostics(default_lab, 'Client1', 'WebB1')}"
        ) from None
    answer = json.loads(out)
    assert answer["instance"] == "WebB1"
    assert answer["path"] == "/hello"
    assert answer["client"]["ip"] == "198.51.100.10"


def test_user_data_ran_in_its_host_with_its_own_tmpdir(default_lab):
    log = default_lab.dir / "hosts" / "WebB2" / "user-data.log"
    ended = default_lab.wait_for(
        lambda: [
            e.status
            for e in default_lab.events()
            if e.logical_id == "WebB2" and e.resource_type == "Lab::UserData"
            if e.status in ("USERDATA_COMPLETE", "USERDATA_FAILED")
        ],
        15,
        "WebB2's UserData to end",
    )
    assert ended == ["USERDATA_COMPLETE"], log.read_text()
    assert "hello from" in log.read_text()
    assert "10.0.3.4" in log.read_text()
    made = default_lab.host("WebA1").cmd("mktemp").strip()
    assert Path(made).parent == default_lab.dir / "hosts" / "WebA1" / "tmp"
    assert Path(made).exists()


def test_exec_passes_output_and_exit_code_through(default_lab):
    proc = run_cli(
        "exec", default_lab.name, "WebA1", "--", "sh", "-c", "echo out; echo err >&2; exit 7"
    )
    assert proc.returncode == 7
    assert proc.stdout == "out\n"
    assert proc.stderr == "err\n"
    proc = run_cli("exec", default_lab.name, "NoSuchHost", "--", "true")
    assert proc.returncode == 2
    assert "has no host 'NoSuchHost'" in proc.stderr


def test_mininet_cli_attaches_to_the_running_lab(default_lab, tmp_path):
    script = tmp_path / "cmds"
    script.write_text("pingall 1\nWebA2 ping -c1 -W1 WebB2\n")
    proc = run_cli("cli", default_lab.name, "--script", str(script), timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert "WebA1 -> WebA2 WebB1 WebB2 Client1" in out
    assert "Client1 -> X X X X" in out  # only public addresses are reachable from outside
    assert "1 received" in out


def test_controller_owns_switches_in_secure_mode(default_lab):
    for sw in read_state(default_lab.dir)["switches"]:
        mode = system.run(["ovs-vsctl", "get", "bridge", sw["name"], "fail_mode"]).stdout
        assert mode.strip() == "secure"
        protocols = system.run(["ovs-vsctl", "get", "bridge", sw["name"], "protocols"]).stdout
        assert "OpenFlow13" in protocols


def test_three_az_template_reachability():
    with Lab.up(THREE_AZ) as lab:
        plan = plan_of(lab)
        assert len({h.az for h in plan.hosts if h.az}) == 3
        assert len([s for s in plan.switches if s.role == "az"]) == 3
        assert_reachability_is_aws(lab)


def test_two_labs_at_once_are_independent():
    a, b = random_name("a"), random_name("b")
    try:
        start_lab(DEFAULT, name=a)
        start_lab(DEFAULT, name=b)
        lab_a, lab_b = Lab(a), Lab(b)
        # Same template, same addresses, separate networks: each answers from its own hosts.
        assert_reachability_is_aws(lab_a)
        assert_reachability_is_aws(lab_b)
        stop_lab(a)
        assert_nothing_left(a)
        assert_reachability_is_aws(lab_b)
    finally:
        for name in (a, b):
            with contextlib.suppress(Exception):
                stop_lab(name)
    assert_nothing_left(b)


# Up/down cycles: 5 in CI (each one checks that nothing is left, and the machine is compared
# after all of them); TESTBED_LONG=1 runs the full 20 (a soak, not a CI check).
CYCLES = 20 if os.environ.get("TESTBED_LONG", "") == "1" else 5


@pytest.mark.slow
@pytest.mark.serial  # compares the whole machine before and after: no other test beside it
def test_twenty_up_down_cycles_leave_nothing_behind():
    # Other labs may come and go on a shared machine meanwhile: compare what belongs to no
    # lab, and look for anything of ours.
    before = without_labs(machine_snapshot())
    name = random_name("cyc")
    for _ in range(CYCLES):
        with Lab.up(DEFAULT, name=name) as lab:
            assert lab.host("WebA1").run(["ping", "-c1", "-W2", "10.0.3.4"]).returncode == 0
        assert_nothing_left(name)
    after = without_labs(machine_snapshot())
    noise = ("pytest-of-", "bash_", "tmp", "hsperfdata")
    after["tmp"] = [t for t in after["tmp"] if t in before["tmp"] or not t.startswith(noise)]
    before["tmp"] = [t for t in before["tmp"] if t in after["tmp"] or not t.startswith(noise)]
    assert after == before
    ours = [p for p in lab_processes() if f"/{name}/" in p or naming.prefix(name) in p]
    assert not ours


class Decoys:
    """Things the lab did not create, named the way a careless cleanup would catch them."""

    def __init__(self) -> None:
        tag = str(os.getpid())[-4:]
        self.bridge, self.port = f"s{tag}", f"s{tag}-eth1"
        self.veth_a, self.veth_b = f"h{tag}-eth0", f"tb-x{tag}"
        self.netns = f"decoy{tag}"
        self.tmpfile = Path(f"/tmp/s{tag}-ofp.log")
        self.proc: subprocess.Popen | None = None

    def create(self) -> None:
        system.run(
            [
                "ovs-vsctl",
                "add-br",
                self.bridge,
                "--",
                "set",
                "bridge",
                self.bridge,
                "datapath_type=netdev",
            ]
        )
        system.run(["ip", "link", "add", self.veth_a, "type", "veth", "peer", "name", self.veth_b])
        system.run(["ip", "netns", "add", self.netns])
        self.tmpfile.write_text("not the lab's")
        # A process that looks like a Mininet host shell, in a namespace of its own.
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, "bash", "-c", "exec -a mininet:h1 sleep 600"]
        )

    def alive(self) -> dict[str, bool]:
        return {
            "bridge": self.bridge in system.list_bridges(),
            "veth": self.veth_a in system.list_links() and self.veth_b in system.list_links(),
            "netns": self.netns in system.list_netns(),
            "tmpfile": self.tmpfile.exists(),
            "process": self.proc is not None and self.proc.poll() is None,
        }

    def remove(self) -> None:
        if self.proc:
            self.proc.kill()
            self.proc.wait()
        system.delete_bridges([self.bridge])
        system.delete_links([self.veth_a])
        system.delete_netns([self.netns])
        self.tmpfile.unlink(missing_ok=True)


def test_decoys_survive_up_down_kill9_and_clean():
    decoys = Decoys()
    decoys.create()
    name = random_name("dec")
    try:
        assert all(decoys.alive().values())
        start_lab(DEFAULT, name=name)
        stop_lab(name)
        assert decoys.alive() == dict.fromkeys(decoys.alive(), True)
        state = start_lab(DEFAULT, name=name)
        os.kill(state["pid"], signal.SIGKILL)
        wait_for(lambda: not holder_alive(state), 10, f"the holder of {name} to die")
        status = json.loads(run_cli("status", name, "--json", check=True).stdout)
        assert status["alive"] is False
        assert status["state"].startswith("DEAD")
        proc = run_cli("clean")
        assert proc.returncode == 0
        assert f"cleaned lab {name}" in proc.stdout
        assert_nothing_left(name)
        assert decoys.alive() == dict.fromkeys(decoys.alive(), True)
    finally:
        with contextlib.suppress(Exception):
            stop_lab(name)
        decoys.remove()


def test_cli_up_prints_progress_and_down_removes_everything():
    name = random_name("cli")
    try:
        proc = run_cli("up", DEFAULT, "--name", name)
        assert proc.returncode == 0, proc.stderr
        for text in (
            "CREATE_IN_PROGRESS",
            "WebA1",
            "CREATE_COMPLETE",
            "AWS::EC2::Subnet",
            f"lab {name} is up",
            "203.0.113.10",
        ):
            assert text in proc.stdout
        events = run_cli("events", name, check=True).stdout
        assert "CREATE_COMPLETE" in events
        assert "LabController" in events
        listing = run_cli("status", check=True).stdout
        assert name in listing
        assert "CREATE_COMPLETE" in listing
        # A plain `up` leaves a lab without owner: it outlives the command that made it.
        status = json.loads(run_cli("status", name, "--json", check=True).stdout)
        assert status["owner"] is None
        assert status["alive"] is True
        assert "owner: none" in run_cli("status", name, check=True).stdout
        again = run_cli("up", DEFAULT, "--name", name)
        assert again.returncode == 2
        assert "already running" in again.stderr
    finally:
        down = run_cli("down", name)
    assert down.returncode == 0, down.stderr
    assert_nothing_left(name)


def test_bad_input_exits_2_and_creates_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "Resources:\n  V:\n    Type: AWS::EC2::VPC\n    Properties:\n"
        "      CidrBlock: 10.0.0.0/16\n  S:\n    Type: AWS::EC2::Subnet\n"
        "    Properties: {VpcId: !Ref V, CidrBlock: 10.9.0.0/24, "
        "AvailabilityZone: us-east-1a}\n"
    )
    name = random_name("bad")
    # (Other labs may come and go on a shared machine meanwhile: compare what belongs to no
    # lab, and look for anything of this one.)
    before = without_labs(machine_snapshot())["bridges"]
    proc = run_cli("up", str(bad), "--name", name)
    assert proc.returncode == 2
    assert "bad.yaml:8" in proc.stderr
    assert "S:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert without_labs(machine_snapshot())["bridges"] == before
    assert_nothing_left(name)
    assert not naming.lab_dir(name).exists()
    for args in (
        ["up", DEFAULT, "--name", "Bad_Name"],
        ["down", "nolab"],
        ["exec", "nolab", "h", "--", "true"],
        ["up", DEFAULT, "-p", "NoSuch=1"],
        ["up", DEFAULT, "--datapath", "warp"],
    ):
        proc = run_cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_failure_midway_rolls_back_everything(monkeypatch):
    name = random_name("rb")
    monkeypatch.setenv("TESTBED_INJECT_FAILURE", "WebB1")
    proc = run_cli("up", DEFAULT, "--name", name)
    assert proc.returncode == 1
    assert "CREATE_FAILED" in proc.stdout
    assert "ROLLBACK_COMPLETE" in proc.stdout
    assert "injected failure" in proc.stderr
    assert_nothing_left(name)


def test_controller_crash_is_reported_then_repaired():
    with Lab.up(DEFAULT) as lab:
        lab.controller_restarts(False)  # hold the replacement back to see the failed state
        pid = lab.state["controller"]["pid"]
        os.kill(pid, signal.SIGKILL)
        lab.wait_for(lambda: lab.state["state"] == "CONTROLLER_FAILED", 10, "CONTROLLER_FAILED")
        assert any(e.status == "CONTROLLER_FAILED" for e in lab.events())
        status = json.loads(run_cli("status", lab.name, "--json", check=True).stdout)
        assert status["state"] == "CONTROLLER_FAILED"
        lab.controller_restarts(True)
        lab.wait_for(lambda: lab.state["state"] == "CREATE_COMPLETE", 30, "a new controller")
        assert lab.state["controller"]["pid"] != pid
        assert any(e.status == "CONTROLLER_RESTARTED" for e in lab.events())


@pytest.mark.serial  # a round-trip time bound: measured on a quiet machine
def test_inter_az_delay_needs_netem_and_says_so():
    from testbed.lab.capabilities import detect

    caps = detect()
    with Lab.up(DEFAULT, params={"InterAzDelayMs": "20"}) as lab:
        rtt_cmd = "ping -c3 -i0.2 -q 10.0.2.4 | tail -1"
        out = lab.host("WebA1").cmd(rtt_cmd)
        # The shortest round trip: a busy machine delays some pings, never shortens them.
        fastest = float(out.split("=")[1].split("/")[0])
        if not caps.netem:
            assert any("sch_netem" in t for t in lab.state["limitations"])
            assert fastest < 20
            pytest.skip("this kernel has no sch_netem: the delay is reported, not applied")
        assert fastest >= 40 * 0.9  # one-way 20 ms each way


def test_link_bandwidth_is_applied_with_htb(tmp_path):
    from testbed.lab.capabilities import detect

    if not detect().htb:
        pytest.skip("this kernel has no HTB qdisc")
    template = tmp_path / "bw.yaml"
    text = (
        Path(DEFAULT)
        .read_text()
        .replace(
            "    InterAzDelayMs: !Ref InterAzDelayMs",
            "    InterAzDelayMs: !Ref InterAzDelayMs\n    LinkBandwidthMbps: 20",
        )
    )
    template.write_text(text)
    with Lab.up(str(template)) as lab:
        server = lab.host("WebB2").popen(["iperf3", "-s", "-1"], stdout=subprocess.DEVNULL)
        try:
            lab.wait_for(
                lambda: ":5201 " in lab.host("WebB2").cmd("ss -ltnH 'sport = :5201'"),
                10,
                "iperf3 to listen",
            )
            out = lab.host("WebA2").run(["iperf3", "-c", "10.0.3.4", "-t", "3", "-J"], timeout=30)
            bps = json.loads(out.stdout)["end"]["sum_received"]["bits_per_second"]
        finally:
            server.kill()
        assert bps < 20e6 * 1.15, f"{bps / 1e6:.1f} Mbit/s through a 20 Mbit/s link"
        assert bps > 20e6 * 0.3


@pytest.mark.parametrize("servers", ["0", "2"])
def test_vagrantfile_validates(tmp_path, servers):
    """The one-VM form, and the cluster form (a front end and one VM per AZ)."""
    import shutil

    if not shutil.which("vagrant"):
        pytest.skip("vagrant is not installed")
    # vagrant writes a .vagrant/ folder next to the file: validate a copy.
    shutil.copy(REPO / "Vagrantfile", tmp_path / "Vagrantfile")
    # --ignore-provider: these machines have no VirtualBox or libvirt, and the file's
    # validity does not depend on one.
    proc = subprocess.run(
        ["vagrant", "validate", "--ignore-provider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ELB_LAB_SERVERS": servers},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    machines = {"elb-lab"} | {f"az{i}" for i in range(1, int(servers) + 1)}
    assert set(re.findall(r"==> ([\w-]+):", proc.stdout)) == machines
    # The cluster form made its key under .vagrant/, beside the copy, never in the repo.
    assert (tmp_path / ".vagrant" / "elb-lab-cluster-key").exists() == (servers != "0")
