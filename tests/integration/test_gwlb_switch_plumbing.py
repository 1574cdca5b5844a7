"""What a lab makes on the machine for GWLB steering in the switch (issue 15), and removes:
GENEVE ports, node addresses on root-side veths, OVS routes and tunnel neighbours, appliance
MTUs (testbed.lab.gwlb_switch); `testbed doctor` and `testbed status` say so; a second lab of
the same template falls back to the node datapath; down and clean leave nothing of it."""

from __future__ import annotations

import json
import os
import signal
from contextlib import suppress

import pytest

from testbed.lab import system
from testbed.lab.api import Lab, random_name, start_lab
from testbed.lab.gwlb_switch import lab_routes, ovs_routes, root_addresses
from testbed.lab.state import read_state
from testbed.paths import TEMPLATES
from testbed.plan.gwlb_datapath import APPLIANCE_MTU, SwitchPlumbing, plumbing
from testbed.waiting import wait_for
from tests.assertions import assert_nothing_left, plan_of, run_cli

pytestmark = pytest.mark.integration
GWLB = str(TEMPLATES / "gwlb.yaml")
# Another VPC range than gwlb.yaml's 10.0.0.0/16: its own node addresses and OVS route, so
# that a lab of it runs in the switch datapath next to the module's lab.
ELSEWHERE = {"VpcCidr": "10.77.0.0/16"}


@pytest.fixture(scope="module")
def lab():
    with Lab.up(GWLB, name=random_name("bsw"), gwlb_datapath="switch") as lab:
        yield lab


@pytest.fixture(scope="module")
def made(lab) -> SwitchPlumbing:
    made = plumbing(plan_of(lab))
    assert len(made.tunnels) == 2, made
    assert len(made.routes) == 1, made
    return made


def vsctl(*args: str) -> str:
    return system.run(["ovs-vsctl", "--timeout=10", *args]).stdout.strip()


def addresses(dev: str, netns: str | None = None) -> list[dict]:
    argv = ["ip", "-j", "addr", "show", "dev", dev]
    if netns:
        argv[1:1] = ["-n", netns]
    return json.loads(system.run(argv).stdout)


def mtu(dev: str, netns: str | None = None) -> int:
    return int(addresses(dev, netns)[0]["mtu"])


def test_geneve_port_per_node_with_its_ofport_and_local_ip(lab, made):
    for t in made.tunnels:
        assert vsctl("port-to-br", t.port) == t.bridge
        assert vsctl("get", "Interface", t.port, "type") == "geneve"
        assert vsctl("get", "Interface", t.port, "ofport") == str(t.ofport)
        options = vsctl("get", "Interface", t.port, "options")
        assert f'local_ip="{t.ip}"' in options
        assert "remote_ip=flow" in options
        assert "key=flow" in options
    assert [t.ofport for t in made.tunnels] == [64000, 64001]


def test_node_address_and_mac_on_its_root_side_veth(lab, made):
    for t in made.tunnels:
        info = addresses(t.veth)[0]
        assert info["address"] == t.mac == plan_of(lab).host(t.host).mac
        v4 = [a for a in info["addr_info"] if a["family"] == "inet"]
        assert [(a["local"], a["prefixlen"]) for a in v4] == [(t.ip, t.prefixlen)]
        assert v4[0].get("noprefixroute"), v4
        # noprefixroute: the root namespace routes nothing new but the address itself.
        assert system.run(["ip", "-4", "route", "show", "dev", t.veth]).stdout.strip() == ""
        assert root_addresses()[t.ip] == t.veth


def test_ovs_route_and_tunnel_neighbour_of_the_appliances_vpc(lab, made):
    (route,) = made.routes
    first = made.tunnels[0]
    assert (route.cidr, route.dev, route.gateway) == ("10.0.0.0/16", first.veth, "10.0.0.1")
    mine = lab_routes(lab.name)
    assert [(r.prefix, r.dev, r.gateway) for r in mine] == [("10.0.0.0/16", first.veth, "10.0.0.1")]
    # ovs-vswitchd sees each node address as its own (the source of its tunnels).
    local = {r.prefix: r.dev for r in ovs_routes() if r.local}
    assert all(local.get(f"{t.ip}/32") == t.veth for t in made.tunnels), local
    neighbours = system.run(["ovs-appctl", "tnl/neigh/show"]).stdout
    assert any(
        line.split() == [route.gateway, route.mac, route.bridge] for line in neighbours.splitlines()
    ), neighbours


def test_appliance_links_take_aws_vpc_mtu(lab, made):
    assert len(made.mtu_veths) == 4
    for veth in made.mtu_veths:
        assert mtu(veth) == APPLIANCE_MTU
    for netns, intf in made.mtu_host_ends:
        assert mtu(intf, netns) == APPLIANCE_MTU
    # Hosts that are not appliances keep the usual 1500.
    assert mtu("eth0", plan_of(lab).host("WebA").netns) == 1500


def test_doctor_and_status_say_switch(lab):
    doctor = run_cli("doctor")
    line = next(x for x in doctor.stdout.splitlines() if x.startswith("GWLB steering"))
    assert line.split()[5] == "yes", doctor.stdout
    assert "geneve + TLV class 0x0108" in line
    status = json.loads(run_cli("status", lab.name, "--json", check=True).stdout)
    assert (status["gwlb_datapath"], status["gwlb_datapath_reason"]) == ("switch", "")
    text = run_cli("status", lab.name, check=True).stdout
    assert "GWLB datapath: switch" in text


def test_second_lab_of_the_template_falls_back_to_node(lab, made):
    other = random_name("bsn")
    refused = run_cli("up", GWLB, "--name", other, "--gwlb-datapath", "switch", "-q")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"already on {made.tunnels[0].veth}" in refused.stderr
    assert_nothing_left(other)
    with Lab.up(GWLB, name=other, gwlb_datapath="auto") as second:
        state = read_state(second.dir) or {}
        assert state["gwlb_datapath"] == "node"
        reason = state["gwlb_datapath_reason"]
        assert f"10.0.0.6 is already on {made.tunnels[0].veth} in the root namespace" in reason
        assert f"(lab {lab.name})" in reason
        plan = plan_of(second)
        assert plan.gwlb_datapath == "node"
        assert all(n.tunnel_port is None for lb in plan.load_balancers for n in lb.nodes)
        assert plumbing(plan) == SwitchPlumbing()
        assert not lab_routes(other)
    assert_nothing_left(other)
    # The first lab's plumbing is as it was.
    assert [r.dev for r in lab_routes(lab.name)] == [made.tunnels[0].veth]
    assert root_addresses()[made.tunnels[1].ip] == made.tunnels[1].veth


def gone(made: SwitchPlumbing, name: str) -> None:
    """Nothing of the lab's switch datapath is left on the machine."""
    assert not lab_routes(name)
    assert not [r for r in ovs_routes() if r.prefix in [x.cidr for x in made.routes]]
    ports = system.run(
        ["ovs-vsctl", "--timeout=10", "list-ports", made.tunnels[0].bridge], check=False
    )
    assert ports.returncode != 0  # the bridge is gone, and its GENEVE port with it
    for t in made.tunnels:
        assert (
            system.run(
                ["ovs-vsctl", "--timeout=10", "get", "Interface", t.port, "ofport"], check=False
            ).returncode
            != 0
        )
        assert t.ip not in root_addresses()
    assert_nothing_left(name)


def test_down_leaves_nothing_of_it():
    name = random_name("bdn")
    with Lab.up(GWLB, params=ELSEWHERE, name=name, gwlb_datapath="switch") as lab:
        made = plumbing(plan_of(lab))
        assert [r.cidr for r in made.routes] == ["10.77.0.0/16"]
        assert lab_routes(name)
    gone(made, name)


def test_clean_after_kill_removes_the_routes():
    name = random_name("bkl")
    try:
        state = start_lab(GWLB, ELSEWHERE, name=name, gwlb_datapath="switch", owned=False)
        made = plumbing(plan_of(Lab(name)))
        pid = state["pid"]
        os.kill(pid, signal.SIGKILL)
        with suppress(ChildProcessError):
            os.waitpid(pid, 0)  # this process started the holder: it is reaped here
        wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 10, f"holder {pid} to end")
        # ovs-vswitchd keeps the route of a lab whose holder died (and of gone devices).
        assert [r.prefix for r in lab_routes(name)] == ["10.77.0.0/16"]
        cleaned = run_cli("clean", name, check=True)
        assert "1 OVS routes" in cleaned.stdout, cleaned.stdout
        gone(made, name)
    finally:
        run_cli("clean", name)
