"""The controller takes a plan that grew or shrank while the lab runs (Auto Scaling): on a
fake flow table, a launched host is reached (ARP, routing, its security groups, peer-group
membership) and once it is gone nothing is left for its port; the NLB keeps its registered
targets across the change; the controller app's reload_plan op reads the plan file again."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from testbed.controllers.flows import IN_PORT, Output
from testbed.controllers.nlb import NlbLogic, RuntimeTarget
from testbed.plan.instances import launch_host, with_host, without_host
from testbed.plan.network import NetworkPlan, SgRulePlan
from tests.asg_fixture import DB_SG, WEB_SG, base_plan, group_model, launch
from tests.fake_openflow import FakeFabric, arp_request, ip_packet
from tests.nlb_fixture import nlb_plan
from tests.security_fixture import Controller, fabric, reprogram

NODE_A_PUBLIC = "203.0.113.12"


def grown():
    model = group_model()
    plan = base_plan(model)
    return model, plan, launch(plan, model, "PrivA", 1)


def port_flows(plan: NetworkPlan, name: str, controller: Controller) -> list:
    """Flows of the host's switch that match its port or send to it."""
    host = plan.host(name)
    dpid = plan.switch(host.switch).dpid
    out = []
    for f in controller.flows_for(dpid):
        match = dict(f.match)
        sends = any(isinstance(a, Output) and a.port == host.port for a in f.actions or ())
        if match.get(IN_PORT) == host.port or match.get("in_port") == host.port or sends:
            out.append(f)
    return out


def test_a_launched_host_is_reached_and_filtered_by_its_groups():
    _model, _plan, plan = grown()
    ip = plan.host("Web-1").ip
    fab = fabric(plan)
    # Same subnet: ARP answered by the switch; its gateway too.
    res = fab.send("WebA3", arp_request(plan, "WebA3", ip))
    assert res.delivered[0][1]["arp_sha"] == plan.host("Web-1").mac
    res = fab.send("Web-1", arp_request(plan, "Web-1", "10.0.1.1"))
    assert res.hosts == ["Web-1"]
    # Routed from another AZ: port 80 is in WebSg, 22 is not.
    assert fab.send("WebB2", ip_packet(plan, "WebB2", ip, tcp_dst=80)).hosts == ["Web-1"]
    assert fab.send("WebB2", ip_packet(plan, "WebB2", ip, tcp_dst=22)).hosts == []
    # A member of WebSg reaches DbSg's port 5432 (WebA2); a non-member does not.
    db = plan.host("WebA2").ip
    pkt = ip_packet(plan, "Web-1", db, via_router=False, tcp_src=41000, tcp_dst=5432)
    assert fab.send("Web-1", pkt).hosts == ["WebA2"]
    pkt = ip_packet(plan, "WebB2", db, tcp_src=41001, tcp_dst=5432)
    assert fab.send("WebB2", pkt).hosts == []


def test_once_gone_nothing_is_programmed_for_it():
    _model, before, plan = grown()
    ip, name = plan.host("Web-1").ip, "Web-1"
    fab = fabric(plan)
    assert port_flows(plan, name, fab.logic)
    shrunk = without_host(plan, name)
    assert shrunk == before
    reprogram(fab, shrunk)
    assert port_flows(plan, name, fab.logic) == []
    assert fab.send("WebB2", ip_packet(shrunk, "WebB2", ip, tcp_dst=80)).hosts == []
    res = fab.send("WebA3", arp_request(shrunk, "WebA3", ip))
    assert res.delivered == []
    # Its address left WebSg's members: DbSg's rule (from WebSg) no longer names it.
    az1 = plan.switch(plan.host("WebA2").switch).dpid
    assert _naming(Controller(plan).security.flows_for(az1), ip)
    assert not _naming(Controller(shrunk).security.flows_for(az1), ip)


def _naming(flows: list, ip: str) -> list:
    """Flows matching on `ip` as a source address (a peer-group member)."""
    return [f for f in flows if ip in str(dict(f.match).get("ipv4_src", ""))]


def test_the_nlb_keeps_its_targets_and_tables_across_a_new_plan():
    # No security groups here: the fabric below runs forwarding and the NLB only.
    model = group_model(subnets=("PrivA",), security_groups=())
    plan = nlb_plan()
    host = launch_host(plan, model, "Web", "PrivA", "Web-1", "i-1")
    grown_plan = with_host(plan, host)
    nlb = NlbLogic(plan, table_size=61)
    target = RuntimeTarget("Web-1:80", host.ip, 80, "us-east-1a", "healthy")
    nlb.set_targets("NLB", "TgTcp", [target])
    before = (dict(nlb.targets), dict(nlb.selectors))
    nlb.set_plan(grown_plan)
    assert (nlb.targets, nlb.selectors) == before
    assert nlb.plan is grown_plan

    class Both:
        def __init__(self) -> None:
            self.forwarding = Controller(grown_plan).forwarding
            self.nlb = nlb

        def flows_for(self, dpid):
            return self.forwarding.flows_for(dpid) + self.nlb.flows_for(dpid)

    fab = FakeFabric(grown_plan, Both())
    pkt = ip_packet(grown_plan, "Client1", NODE_A_PUBLIC, tcp_src=41000, tcp_dst=80)
    res = fab.send("Client1", pkt)
    assert res.hosts == ["Web-1"]
    got = res.delivered[0][1]
    assert got["ipv4_dst"] == host.ip
    # Its answer is steered back through the NLB on its own switch, which the NLB knows
    # from the new plan only (without set_plan the reply is lost).
    back = {
        "eth_src": host.mac,
        "eth_dst": grown_plan.router_mac,
        "eth_type": 0x0800,
        "ipv4_src": host.ip,
        "ipv4_dst": got["ipv4_src"],
        "ip_proto": 6,
        "tcp_src": 80,
        "tcp_dst": got["tcp_src"],
        "tcp_flags_nxm": 0x12,
        "ttl": 64,
    }
    res = fab.send("Web-1", back)
    assert res.hosts == ["Client1"]
    assert (res.delivered[0][1]["ipv4_src"], res.delivered[0][1]["tcp_src"]) == (NODE_A_PUBLIC, 80)


def test_a_hundred_launched_hosts_program_in_well_under_two_seconds():
    """The worst common case: the instances' group lets in its own members (as a VPC's
    default group does), so every member's port has a rule per member."""
    model = group_model()
    plan = base_plan(model)
    member = SgRulePlan(-1, group="WebSg")
    web = replace(WEB_SG, ingress=(*WEB_SG.ingress, member))
    plan = replace(plan, security_groups=(web, DB_SG))
    for n in range(1, 101):
        plan = launch(plan, model, ("PrivA", "PrivB")[n % 2], n)
    start = time.perf_counter()
    controller = Controller(plan)
    flows = sum(len(controller.flows_for(s.dpid)) for s in plan.switches)
    took = time.perf_counter() - start
    print(f"100 launched hosts: {flows} flows in {took:.3f} s")
    assert flows > 100 * 100  # a rule per member on each member's port
    assert took < 2.0


def test_the_app_reloads_the_plan_file(tmp_path, monkeypatch):
    """LabApp.reload_plan without os-ken running: the logic objects it programs from."""
    from testbed.controllers.forwarding import Forwarding
    from testbed.controllers.gwlb import GwlbLogic
    from testbed.controllers.lab_app import LabApp
    from testbed.controllers.ofadapter import FlowSync
    from testbed.controllers.security import SecurityLogic

    model = group_model(subnets=("PrivA",))
    plan = nlb_plan()
    grown_plan = with_host(plan, launch_host(plan, model, "Web", "PrivA", "Web-1", "i-1"))
    path = tmp_path / "plan.json"
    path.write_text(grown_plan.to_json())
    monkeypatch.setenv("TESTBED_PLAN", str(path))
    app = LabApp.__new__(LabApp)  # no OSKenApp machinery: the plan handling only
    app.plan = plan
    app.forwarding, app.security = Forwarding(plan), SecurityLogic(plan)
    app.nlb = NlbLogic(plan, table_size=61)
    app.gwlb = GwlbLogic(plan)
    app.lock = threading.RLock()
    app.sync = FlowSync()
    app.datapaths = {}
    nlb = app.nlb
    targets = [RuntimeTarget("WebA2:80", "10.0.1.4", 80, "us-east-1a", "healthy")]
    nlb.set_targets("NLB", "TgTcp", targets)
    assert app.handle_request({"op": "reload_plan"}) == {"ok": True}
    assert app.plan == grown_plan
    assert app.forwarding.plan == grown_plan
    assert app.security.plan == grown_plan
    assert app.nlb is nlb
    assert nlb.plan == grown_plan
    assert nlb.targets[("NLB", "TgTcp")] == targets
    # reload_security takes the same path; activate (a standby taking over) too.
    path.write_text(plan.to_json())
    assert app.handle_request({"op": "reload_security"}) == {"ok": True}
    assert app.plan == plan
