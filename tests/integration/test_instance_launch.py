"""Instances added to and removed from a running lab (testbed.lab.instances), on a real lab
built in the test process with the holder's builder (no holder, no load balancer).

The lab is the hand-made two-AZ model with Auto Scaling group "Web" (tests/asg_fixture.py)
whose instances run http-backend; the plan is published as the holder does it: the plan file
written, then the controller's reload_plan.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from testbed import asks, naming
from testbed.lab import cgroups, system, zones
from testbed.lab.api import random_name
from testbed.lab.builder import LabBuilder
from testbed.lab.capabilities import detect
from testbed.lab.events import EventLog
from testbed.lab.hostexec import netns_argv
from testbed.lab.instances import InstanceLauncher
from testbed.lab.procs import ProcessJournal, is_alive
from testbed.lab.teardown import leftovers, teardown
from testbed.model.types import RoleSpec
from testbed.plan.instances import launch_host, with_host
from testbed.plan.network import HostPlan, NetworkPlan, build_plan
from testbed.waiting import wait_for
from tests.asg_fixture import WEB_SG, group_model, launch_spec

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a real lab)"),
]

GROUP = "Web"
SUBNETS = ("PrivA", "PrivB")
CLIENT = "WebA2"  # a template instance in PrivA: the launched ones are reached from it


@dataclass
class Running:
    name: str
    model: object
    launcher: InstanceLauncher
    plan: list[NetworkPlan]  # [current]: the holder's current plan
    builder: LabBuilder
    journal: ProcessJournal
    counter: list[int]

    def new_hosts(self, count: int) -> list[HostPlan]:
        """HostPlans of `count` new instances, alternating the group's subnets."""
        hosts: list[HostPlan] = []
        plan = self.plan[0]
        for _ in range(count):
            self.counter[0] += 1
            n = self.counter[0]
            h = launch_host(
                plan,
                self.model,  # type: ignore[arg-type]
                GROUP,
                SUBNETS[n % 2],
                f"{GROUP}-{n}",
                f"i-{n:017x}",
            )
            hosts.append(h)
            # The next one must see this one's address and port taken.
            plan = with_host(plan, h)
        return hosts


def _machine() -> dict[str, set[str]]:
    return {
        "netns": set(system.list_netns()),
        "links": set(system.list_links()),
        "bridges": set(system.list_bridges()),
    }


@contextmanager
def lab_with_group(bandwidth_mbps: float | None = None) -> Iterator[Running]:
    """A lab of the hand-made model with group Web, built here, torn down at the end (and
    checked to leave nothing)."""
    name = random_name("l")
    lab_dir = naming.lab_dir(name)
    lab_dir.mkdir(parents=True)
    before = _machine()
    try:
        model = group_model(launch=launch_spec(role=RoleSpec("http-backend")))
        plan = build_plan(model, name, zone_base=zones.reserve(name))
        # The group's security group (tcp 80 from anywhere), as a template would declare it.
        plan = replace(
            plan,
            security_groups=(*plan.security_groups, WEB_SG),
            host_bandwidth_mbps=bandwidth_mbps,
        )
        datapath = detect().default_datapath()
        events, journal = EventLog(lab_dir), ProcessJournal(lab_dir)
        builder = LabBuilder(name, model, plan, datapath, events, journal)
        builder.build()
        current = [plan]
        assert builder.network is not None
        assert builder.controller is not None
        sock = builder.controller.sock

        def publish(new: NetworkPlan) -> None:
            path = lab_dir / naming.PLAN_FILE
            partial = path.with_suffix(".new")
            partial.write_text(new.to_json())
            partial.replace(path)
            asks.controller_reload_plan(sock)
            current[0] = new

        launcher = InstanceLauncher(
            name, builder.network, journal, events, datapath, lambda: current[0], publish
        )
        yield Running(name, model, launcher, current, builder, journal, [0])
    finally:
        teardown(name)
        after = _machine()
        prefix = naming.prefix(name)
        # Nothing of the lab is left, whatever other labs on the machine did meanwhile.
        for kind in before:
            assert {x for x in after[kind] - before[kind] if x.startswith(prefix)} == set(), kind
        assert not any(leftovers(name).values()), leftovers(name)
        assert cgroups.lab_cgroup_dirs(name) == []


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    with lab_with_group() as r:
        yield r


def _http(lab: str, host: str, ip: str) -> str:
    done = subprocess.run(
        netns_argv(lab, host, ["curl", "-s", "--max-time", "3", f"http://{ip}/"]),
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return done.stdout


def _resolve(lab: str, host: str, name: str) -> str:
    done = subprocess.run(
        netns_argv(lab, host, ["getent", "ahostsv4", name]),
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return done.stdout.split()[0] if done.stdout.split() else ""


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _log(lab: str, host: str) -> str:
    log = naming.lab_dir(lab) / "hosts" / host / "role.log"
    return log.read_text()[-600:] if log.exists() else "(no role.log)"


def _gone(r: Running, h: HostPlan) -> None:
    """Nothing of a terminated host is left: namespace, veth, OVS port, processes, cgroup,
    Mininet's node, the plan's host."""
    assert h.netns not in system.list_netns()
    assert h.veth not in system.list_links()
    ports = system.run(["ovs-vsctl", "list-ports", h.switch], check=False).stdout.split()
    assert h.veth not in ports
    assert [rec for rec in r.journal.records() if rec.host == h.name] == []
    assert cgroups.path(r.name, h.name) is None
    assert h.name not in r.builder.network.net.nameToNode  # type: ignore[union-attr]
    assert all(x.name != h.name for x in r.plan[0].hosts)
    assert h.name not in r.launcher.names()


def test_one_instance_serves_counts_its_cpu_and_leaves_nothing(running: Running) -> None:
    r = running
    [h] = r.new_hosts(1)
    t0 = time.monotonic()
    launched = r.launcher.launch(h)
    built = time.monotonic() - t0
    wait_for(lambda: r.launcher.role_ready(h.name), 20, f"{h.name}'s http-backend to listen")
    ready = time.monotonic() - t0
    print(f"\none instance: built in {built:.2f} s, role answering after {ready:.2f} s")
    assert launched.host.name == h.name
    assert r.launcher.alive(h.name)
    # Reached through the fabric from a template instance, by HTTP (its group admits tcp 80).
    assert _http(r.name, CLIENT, h.ip)
    # The lab's resolver knows it, and it uses the resolver as every host does.
    assert _resolve(r.name, CLIENT, f"{h.name.lower()}.lab") == h.ip
    assert (Path("/etc/netns") / h.netns / "resolv.conf").exists()
    # Its role's processes are in its cgroup; a busy loop in it counts there, not elsewhere.
    mine0, other0 = cgroups.cpu_usage_s(r.name, h.name), cgroups.cpu_usage_s(r.name, CLIENT)
    assert mine0 is not None
    assert other0 is not None
    # A fixed amount of work (the machine may be busy): the cgroup counts what the busy
    # loop's own CPU time was, as the kernel tells its parent (this test) when it ends.
    spent0 = _children_cpu_s()
    subprocess.run(
        netns_argv(
            r.name, h.name, ["sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"]
        ),
        check=True,
    )
    spent = _children_cpu_s() - spent0
    mine1, other1 = cgroups.cpu_usage_s(r.name, h.name), cgroups.cpu_usage_s(r.name, CLIENT)
    assert mine1 is not None
    assert other1 is not None
    print(f"busy loop: {spent:.2f} s CPU; its cgroup counted {mine1 - mine0:.2f} s")
    assert spent > 0.1
    assert mine1 - mine0 >= 0.9 * spent
    assert other1 - other0 < 0.5 * spent
    pids = [rec for rec in r.journal.records() if rec.host == h.name]
    assert pids  # shell, snmpd, role
    r.launcher.terminate(h.name)
    assert not any(is_alive(rec) for rec in pids)
    _gone(r, h)
    assert _http(r.name, CLIENT, h.ip) == ""
    assert _resolve(r.name, CLIENT, f"{h.name.lower()}.lab") == ""
    assert not (Path("/etc/netns") / h.netns).exists()


@pytest.mark.serial  # 50 instances ready within a bound: the machine to itself
def test_many_instances_launch_together_and_all_go(running: Running) -> None:
    r = running
    count = max(6, int(os.environ.get("TESTBED_LAUNCH_COUNT", "50")))
    hosts = r.new_hosts(count)
    t0 = time.monotonic()
    results = r.launcher.launch_many(hosts)
    built = time.monotonic() - t0
    assert [x for x in results if isinstance(x, Exception)] == []
    wait_for(
        lambda: all(r.launcher.role_ready(h.name) for h in hosts),
        60,
        "every launched instance's role to listen",
        last=lambda: {
            h.name: (r.launcher.alive(h.name), _log(r.name, h.name))
            for h in hosts
            if not r.launcher.role_ready(h.name)
        },
    )
    ready = time.monotonic() - t0
    # Every one of them answers through the fabric.
    for h in (hosts[0], hosts[len(hosts) // 2], hosts[-1]):
        assert _http(r.name, CLIENT, h.ip), h.name
    # Scale-in takes them one by one; a group deleted takes them all at once.
    t1 = time.monotonic()
    for h in hosts[:5]:
        r.launcher.terminate(h.name)
    one_by_one = (time.monotonic() - t1) / 5
    t1 = time.monotonic()
    r.launcher.terminate_many([h.name for h in hosts[5:]])
    ended = time.monotonic() - t1
    print(
        f"\n{count} instances: built in {built:.2f} s, all roles answering after "
        f"{ready:.2f} s; terminated: {one_by_one:.2f} s each one by one, the other "
        f"{count - 5} together in {ended:.2f} s"
    )
    for h in hosts:
        _gone(r, h)
    assert ready <= 20.0


def test_a_failed_build_leaves_nothing(running: Running) -> None:
    r = running
    [h] = r.new_hosts(1)
    # A switch that does not exist: the link cannot be made.
    bad = replace(h, switch="tb-nope-az9")
    [result] = r.launcher.launch_many([bad])
    assert isinstance(result, Exception)
    assert h.name in str(result)
    _gone(r, bad)


def _footprint(r: Running) -> dict[str, int]:
    """What grows with every launch if a termination forgets something."""
    net = r.builder.network
    assert net is not None
    switches = [sw.name for sw in r.plan[0].switches]
    ports = system.run(
        ["ovs-vsctl", *[x for sw in switches for x in ("--", "list-ports", sw)]], check=False
    ).stdout.split()
    root = cgroups.mount()
    return {
        "fds": len(os.listdir("/proc/self/fd")),
        "threads": len(os.listdir("/proc/self/task")),
        "mininet nodes": len(net.net.nameToNode),
        "mininet links": len(net.net.links),
        "journal records": len(r.journal.records()),
        "ovs ports": len(ports),
        "namespaces": len([n for n in system.list_netns() if n.startswith(naming.prefix(r.name))]),
        "links": len([n for n in system.list_links() if n.startswith(naming.prefix(r.name))]),
        "cgroups": len(cgroups.lab_cgroup_dirs(r.name)) if root else 0,
        "plan hosts": len(r.plan[0].hosts),
    }


def test_launch_and_terminate_rounds_leave_nothing(running: Running) -> None:
    # Two rounds of 50 keep CI short; TESTBED_LAUNCH_ROUNDS=10 gives the 500
    # (the bench_asg experiment measures those too, with a whole lab around them).
    r = running
    rounds = int(os.environ.get("TESTBED_LAUNCH_ROUNDS", "2"))
    before = _footprint(r)
    t0 = time.monotonic()
    for _ in range(rounds):
        hosts = r.new_hosts(50)
        results = r.launcher.launch_many(hosts)
        assert [x for x in results if isinstance(x, Exception)] == []
        # Some go while their roles still start; some one by one, the rest at once.
        for h in hosts[:3]:
            r.launcher.terminate(h.name)
        r.launcher.terminate_many([h.name for h in hosts[3:]])
    print(f"\n{rounds * 50} launches and terminations in {time.monotonic() - t0:.1f} s")
    # The threads that report how UserData and SNMP agents ended finish on their own.
    wait_for(
        lambda: _footprint(r) == before,
        10,
        "the lab's footprint to be back where it was",
        last=lambda: {"before": before, "now": _footprint(r)},
    )


def test_a_launched_instance_gets_the_labs_host_bandwidth() -> None:
    with lab_with_group(bandwidth_mbps=50) as r:
        [h] = r.new_hosts(1)
        r.launcher.launch(h)
        wait_for(lambda: r.launcher.role_ready(h.name), 20, f"{h.name}'s role to listen")
        switch_side = system.run(["tc", "qdisc", "show", "dev", h.veth]).stdout
        host_side = subprocess.run(
            netns_argv(r.name, h.name, ["tc", "qdisc", "show", "dev", "eth0"]),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "htb" in switch_side
        assert "htb" in host_side
        if r.launcher.datapath == "user":
            offloads = system.run(["ethtool", "-k", h.veth]).stdout
            assert "tx-checksumming: off" in offloads
        # TCP through the shaped links (checksums computed by the host).
        assert _http(r.name, CLIENT, h.ip)
        r.launcher.terminate(h.name)
        _gone(r, h)
