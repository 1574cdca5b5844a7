"""What a lab makes on the machine for GWLB steering in the switch (issue 15), and removes:
GENEVE ports, node addresses on root-side veths, OVS routes and tunnel neighbours, appliance
MTUs (testbed.lab.gwlb_switch); `testbed doctor` and `testbed status` say so; a second lab of
the same template falls back to the node datapath; down and clean leave nothing of it."""

from __future__ import annotations

import json
import os
import signal
from contextlib import suppress
from ipaddress import ip_address, ip_network

import pytest

from testbed.controllers.flows import TABLE_GWLB_RX
from testbed.gwlb.observe import wait_appliances_healthy
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


def free_vpc(*taken: str) -> str:
    """A VPC range for gwlb.yaml (default 10.0.0.0/16) whose node addresses and route no
    other lab's switch datapath holds (other labs may run on a shared machine), nor `taken`."""
    used = set(root_addresses())
    routes = [ip_network(r.prefix) for r in ovs_routes() if r.user]
    for n in range(70, 100):
        cidr = ip_network(f"10.{n}.0.0/16")
        if str(cidr) in taken or any(cidr.overlaps(r) for r in routes):
            continue
        if not any(ip_address(a) in cidr for a in used):
            return str(cidr)
    raise AssertionError("no free 10.N.0.0/16 for a GWLB lab of the switch datapath")


BY_NODE = {"GWLB-1a": ["FwA1", "FwA2"], "GWLB-1b": ["FwB1", "FwB2"]}


def web_answers(lab) -> list[str]:
    """HTTP status of WebA and WebB (one per AZ: each through its own GWLB node) from
    Client1, through the appliances, once they are healthy."""
    wait_appliances_healthy(lab, "Appliances", BY_NODE)
    out = []
    for web in ("WebA", "WebB"):
        url = f"http://{lab.outputs[f'{web}PublicIp']}/"
        done = lab.host("Client1").run(
            ["curl", "-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", url]
        )
        out.append(done.stdout)
    return out


@pytest.fixture(scope="module")
def vpc() -> str:
    return free_vpc()


@pytest.fixture(scope="module")
def lab(vpc):
    params = {"VpcCidr": vpc}
    with Lab.up(GWLB, params, name=random_name("bsw"), gwlb_datapath="switch") as lab:
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


def at(vpc: str, host: int) -> str:
    """The address `host` of the VPC's first /24 (10.N.0.host)."""
    return str(ip_network(vpc)[host])


def test_ovs_route_and_tunnel_neighbour_of_the_appliances_vpc(lab, made, vpc):
    (route,) = made.routes
    first = made.tunnels[0]
    assert (route.cidr, route.dev, route.gateway) == (vpc, first.veth, at(vpc, 1))
    mine = lab_routes(lab.name)
    assert [(r.prefix, r.dev, r.gateway) for r in mine] == [(vpc, first.veth, at(vpc, 1))]
    # ovs-vswitchd sees each node address as its own (the source of its tunnels).
    local = {r.prefix: r.dev for r in ovs_routes() if r.local}
    assert all(local.get(f"{t.ip}/32") == t.veth for t in made.tunnels), local
    neighbours = system.run(["ovs-appctl", "tnl/neigh/show"]).stdout
    assert any(
        line.split() == [route.gateway, route.mac, route.bridge] for line in neighbours.splitlines()
    ), neighbours


def test_root_side_of_the_labs_veths_is_quiet(lab, made, vpc):
    """The root namespace holds the node addresses: its kernel must not answer a host's ARP
    for them on the host's veth (it would, with its own MAC, before the controller), and
    ovs-vswitchd must not pop GENEVE on a veth that only an IPv6 link-local address made
    "a port with an address" (another lab's node port: testbed.topologies.network)."""
    for h in plan_of(lab).hosts:
        info = addresses(h.veth)[0]
        assert "NOARP" in info["flags"], h.veth
        assert not [a for a in info["addr_info"] if a["family"] == "inet6"], info
    for name in ("FwA1", "FwA2"):
        neighbours = lab.host(name).run(["ip", "-j", "neigh", "show", at(vpc, 6)]).stdout
        macs = {n.get("lladdr") for n in json.loads(neighbours or "[]")}
        assert macs <= {plan_of(lab).router_mac}, (name, macs)


def test_traffic_goes_through_the_switch_datapath(lab, made):
    assert web_answers(lab) == ["200", "200"]
    # Both nodes' GENEVE ports carried it: the flows that count what came back through them.
    for t in made.tunnels:
        flows = system.run(
            ["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", t.bridge, f"table={TABLE_GWLB_RX}"]
        ).stdout
        counts = [
            int(x.split("n_packets=")[1].split(",")[0])
            for x in flows.splitlines()
            if "n_packets=" in x
        ]
        assert sum(counts) > 0, flows


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


def test_second_lab_of_the_template_falls_back_to_node(lab, made, vpc):
    other = random_name("bsn")
    params = {"VpcCidr": vpc}
    refused = run_cli(
        "up", GWLB, "--name", other, "--gwlb-datapath", "switch", "-q", "-p", f"VpcCidr={vpc}"
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"already on {made.tunnels[0].veth}" in refused.stderr
    assert_nothing_left(other)
    with Lab.up(GWLB, params, name=other, gwlb_datapath="auto") as second:
        state = read_state(second.dir) or {}
        assert state["gwlb_datapath"] == "node"
        reason = state["gwlb_datapath_reason"]
        assert f"{at(vpc, 6)} is already on {made.tunnels[0].veth} in the root namespace" in reason
        assert f"(lab {lab.name})" in reason
        plan = plan_of(second)
        assert plan.gwlb_datapath == "node"
        assert all(n.tunnel_port is None for lb in plan.load_balancers for n in lb.nodes)
        assert plumbing(plan) == SwitchPlumbing()
        assert not lab_routes(other)
        # Both labs carry traffic at once, on the same addresses.
        assert web_answers(second) == ["200", "200"]
        assert web_answers(lab) == ["200", "200"]
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
    elsewhere = free_vpc()
    with Lab.up(GWLB, {"VpcCidr": elsewhere}, name=name, gwlb_datapath="switch") as lab:
        made = plumbing(plan_of(lab))
        assert [r.cidr for r in made.routes] == [elsewhere]
        assert lab_routes(name)
    gone(made, name)


def test_clean_after_kill_removes_the_routes():
    name = random_name("bkl")
    elsewhere = free_vpc()
    try:
        params = {"VpcCidr": elsewhere}
        state = start_lab(GWLB, params, name=name, gwlb_datapath="switch", owned=False)
        made = plumbing(plan_of(Lab(name)))
        pid = state["pid"]
        os.kill(pid, signal.SIGKILL)
        with suppress(ChildProcessError):
            os.waitpid(pid, 0)  # this process started the holder: it is reaped here
        wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 10, f"holder {pid} to end")
        # ovs-vswitchd keeps the route of a lab whose holder died (and of gone devices).
        assert [r.prefix for r in lab_routes(name)] == [elsewhere]
        cleaned = run_cli("clean", name, check=True)
        assert "1 OVS routes" in cleaned.stdout, cleaned.stdout
        gone(made, name)
    finally:
        run_cli("clean", name)
