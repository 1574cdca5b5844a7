"""The ALB's runtime side: HAProxy's CLI answers, state sync and reloads (on a loopback
HAProxy), template update diffs, metrics from `show stat`, the registry across updates."""

from __future__ import annotations

import http.client
import json
from dataclasses import replace

import pytest

from testbed.accesslog import parse_line
from testbed.alb import stats
from testbed.alb.runtime import (
    NodeRuntime,
    cli,
    cli_retrying,
    parse_servers_state,
    parse_show_proc,
)
from testbed.lb.registry import TargetRegistry
from testbed.model import load_model
from testbed.paths import TEMPLATES
from testbed.plan.balancers import TargetPlan
from testbed.plan.changes import plan_changes
from testbed.plan.network import build_plan
from testbed.waiting import wait_for
from tests.haproxy_local import HAVE_HAPROXY, LocalAlb
from tests.unit.test_alb_config import alb_plan

needs_haproxy = pytest.mark.skipif(not HAVE_HAPROXY, reason="haproxy is not installed")

SERVERS_STATE = """1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight \
srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state \
srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl \
srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 tg_Web 1 WebA1_80 10.0.1.4 2 0 1 1 14 1 0 0 0 0 0 0 - 80 - 0 0 - - 0
3 tg_Web 2 WebB1_80 10.0.3.4 0 5 1 1 19 1 0 2 0 0 0 0 - 8080 - 0 0 - - 0
3 tg_Web 3 WebC1_80 10.0.3.5 2 4 1 1 19 1 0 2 0 0 0 0 - 80 - 0 0 - - 0

"""
SHOW_PROC = """#<PID>          <type>          <reloads>       <uptime>        <version>
4608            master          2 [failed: 1]   0d00h02m07s     2.6.12
# workers
5001            worker          0               0d00h00m01s     2.6.12
# old workers
4615            worker          1               0d00h00m43s     2.6.12
# programs

"""


def test_parse_servers_state():
    assert parse_servers_state(SERVERS_STATE) == {
        ("tg_Web", "WebA1_80"): ("10.0.1.4", 80, "ready"),
        ("tg_Web", "WebB1_80"): ("10.0.3.4", 8080, "maint"),  # disabled in the file
        ("tg_Web", "WebC1_80"): ("10.0.3.5", 80, "ready"),
    }  # enabled after that


def test_parse_show_proc():
    procs = parse_show_proc(SHOW_PROC)
    assert (procs.reloads, procs.failed, procs.workers, procs.old_workers) == (
        2,
        1,
        (5001,),
        (4615,),
    )


# ---- updates -------------------------------------------------------------------------------
def alb_yaml_plan(**params):
    model = load_model(str(TEMPLATES / "alb.yaml"), params, stack_name="alb")
    return build_plan(model, "alb", zone_base=100)


def test_update_of_rules_and_weights_reloads():
    live, other, reload = plan_changes(
        alb_yaml_plan(), alb_yaml_plan(WebWeight="90", CanaryWeight="10")
    )
    assert other == []
    assert reload == ["MyALB"]
    assert any("default_actions" in c for c in live)


def test_update_of_target_lists_alone_needs_no_reload():
    old = alb_yaml_plan()
    lb = old.load_balancers[0]
    web = lb.target_group("WebTargets")
    fewer = replace(web, targets=web.targets[:1])
    new = replace(
        old,
        load_balancers=(
            replace(
                lb,
                target_groups=tuple(
                    fewer if tg.name == "WebTargets" else tg for tg in lb.target_groups
                ),
            ),
        ),
    )
    live, other, reload = plan_changes(old, new)
    assert other == []
    assert reload == []
    assert len(live) == 1
    assert live[0].startswith("load_balancers.MyALB.target_groups.WebTargets.targets")


def test_update_of_attributes_reloads():
    live, other, reload = plan_changes(alb_yaml_plan(), alb_yaml_plan(XffMode="remove"))
    assert other == []
    assert reload == ["MyALB"]
    assert any("xff" in c for c in live)


def test_other_changes_need_down_and_up():
    _live, other, _reload = plan_changes(alb_yaml_plan(), alb_yaml_plan(VpcCidr="10.9.0.0/16"))
    assert other
    assert any(c.startswith("hosts.") for c in other)
    assert any(c.startswith(("subnets", "vpcs")) for c in other)


def test_registry_takes_new_plans():
    old = alb_yaml_plan()
    reg = TargetRegistry(list(old.load_balancers), clock=lambda: 100.0)
    lb = old.load_balancers[0]
    reg.report("MyALB", "WebTargets", "WebA1:80", True, "200")
    web = lb.target_group("WebTargets")
    slower = replace(web, health=replace(web.health, interval_s=10))
    kept = tuple(
        slower if tg.name == "WebTargets" else tg
        for tg in lb.target_groups
        if tg.name != "StaticTargets"
    )
    done = reg.set_plans([replace(lb, target_groups=kept)])
    assert done == ["StaticTargets: no longer used by MyALB"]
    assert reg.group("MyALB", "WebTargets").tg.health.interval_s == 10
    assert reg.group("MyALB", "WebTargets").targets["WebA1:80"].passes == 1  # state kept
    assert reg.events[-1].target == "StaticA1:80"
    assert reg.events[-1].new == ""


# ---- metrics -------------------------------------------------------------------------------
STAT_HEADER = (
    "pxname,svname,scur,bin,bout,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,req_tot,"
    "rtime,conn_tot,connect,used_conn_cur,idle_conn_cur,safe_conn_cur,"
)


def stat(*rows: str) -> str:
    return "# " + STAT_HEADER + "\n" + "\n".join(rows) + "\n"


def test_metrics_from_show_stat():
    node_a = stats.parse_stat(
        stat(
            "Http,FRONTEND,3,100,900,8,1,2,1,12,,10,,,,,",
            "tg_Web,WebA1_80,0,0,0,5,0,0,1,,4,,2,1,1,0,",
            "tg_Web,BACKEND,0,0,0,5,0,0,2,7,4,,,,,,",
            "fixed_Http_Teapot,BACKEND,0,0,0,0,0,2,0,2,0,,,,,,",
            "redirect_Http_Old,BACKEND,0,0,0,0,1,0,0,1,0,,,,,,",
        )
    )
    node_b = stats.parse_stat(
        stat(
            "Http,FRONTEND,1,10,90,3,0,0,0,3,,2,,,,,",
            "tg_Web,WebB1_80,0,0,0,3,0,0,0,,8,,1,0,0,1,",
            "tg_Web,BACKEND,0,0,0,3,0,0,0,3,8,,,,,,",
        )
    )
    got = {(m, tg, t): v for m, tg, t, v, _u, _k in stats.metrics("ALB", [node_a, node_b])}
    assert got[("RequestCount", "", "")] == 15
    assert got[("RequestCount", "Web", "")] == 10
    assert got[("HTTPCode_Target_2XX_Count", "", "")] == 8
    assert got[("HTTPCode_Target_5XX_Count", "Web", "WebA1_80")] == 1
    # The LB's own: the frontends' answers minus the targets' (a 503, the 418s, the 301).
    assert got[("HTTPCode_ELB_5XX_Count", "", "")] == 0
    assert got[("HTTPCode_ELB_4XX_Count", "", "")] == 2
    assert got[("HTTPCode_ELB_3XX_Count", "", "")] == 1
    assert got[("HTTP_Fixed_Response_Count", "", "")] == 2
    assert got[("HTTP_Redirect_Count", "", "")] == 1
    assert got[("ActiveConnectionCount", "", "")] == 3 + 1 + 2 + 1
    assert got[("NewConnectionCount", "", "")] == 12 + 3
    assert got[("ProcessedBytes", "", "")] == 1100
    assert got[("TargetResponseTime", "Web", "")] == pytest.approx((4 * 7 + 8 * 3) / 10 / 1000)


# ---- a real HAProxy ------------------------------------------------------------------------
def rows(alb, tg_name: str, states: dict[str, str], extra: list[TargetPlan] = ()):
    tg = alb.lb.target_group(tg_name)
    return [
        {
            "key": t.key,
            "ip": t.ip,
            "port": t.port,
            "az": t.az,
            "state": states.get(t.key, "healthy"),
        }
        for t in (*tg.targets, *extra)
    ]


@needs_haproxy
def test_states_added_and_removed_servers_reach_haproxy(tmp_path):
    with LocalAlb(alb_plan(), tmp_path) as alb:
        node = NodeRuntime(alb.lb, alb.node, alb.files)
        snapshot = {alb.lb.name: {"TgLor": rows(alb, "TgLor", {"LorB1:80": "unhealthy"})}}
        sent = node.sync(node.desired(snapshot))
        assert sent == ["tg_TgLor/LorB1_80 maint"]
        assert {alb.instance("/lor/x") for _ in range(10)} == {"LorA1"}
        # A target registered at run time: a dynamic server, no reload.
        path_a1 = alb.backends["PathA1"].port
        new = TargetPlan("PathA1:80", "PathA1", "127.0.0.1", path_a1, "us-east-1a", "PathA1")
        snapshot = {alb.lb.name: {"TgLor": rows(alb, "TgLor", {"LorB1:80": "unhealthy"}, [new])}}
        assert node.sync(node.desired(snapshot)) == ["add tg_TgLor/PathA1_80 (ready)"]
        assert {alb.instance("/lor/x") for _ in range(10)} == {"LorA1", "PathA1"}
        # Drained and gone: removed from HAProxy.
        snapshot = {alb.lb.name: {"TgLor": rows(alb, "TgLor", {"LorB1:80": "unhealthy"})}}
        assert node.sync(node.desired(snapshot)) == ["del tg_TgLor/PathA1_80"]
        assert ("tg_TgLor", "PathA1_80") not in parse_servers_state(
            cli(alb.files.stats_socket, "show servers state")
        )
        assert node.in_sync(node.desired(snapshot))


@needs_haproxy
def test_a_target_back_at_another_address_moves_its_server(tmp_path):
    """An instance replaced by an update keeps its id (so its server's name) but not its
    address. Registered again while HAProxy still has its predecessor's server (idle
    connections kept `del server` from succeeding), the server follows the new address:
    no request goes to the old one, which is gone."""
    with LocalAlb(alb_plan(), tmp_path) as alb:
        node = NodeRuntime(alb.lb, alb.node, alb.files)
        states = {"LorB1:80": "unhealthy"}
        old = TargetPlan(
            "PathA1:80", "PathA1", "127.0.0.1", alb.backends["PathA1"].port, "us-east-1a", "PathA1"
        )
        snapshot = {alb.lb.name: {"TgLor": rows(alb, "TgLor", states, [old])}}
        assert node.sync(node.desired(snapshot)) == [
            "tg_TgLor/LorB1_80 maint",
            "add tg_TgLor/PathA1_80 (ready)",
        ]
        # Kept-alive requests: HAProxy keeps idle connections to the old address.
        assert {alb.instance("/lor/x") for _ in range(10)} == {"LorA1", "PathA1"}
        other = next(n for n in alb.backends if n not in ("LorA1", "LorB1", "PathA1"))
        new_port = alb.backends[other].port
        alb.backends["PathA1"].close()  # the old instance is gone
        new = replace(old, port=new_port)
        snapshot = {alb.lb.name: {"TgLor": rows(alb, "TgLor", states, [new])}}
        assert node.sync(node.desired(snapshot)) == [
            f"tg_TgLor/PathA1_80 -> 127.0.0.1:{new_port} (ready)"
        ]
        assert {alb.instance("/lor/x") for _ in range(20)} == {"LorA1", other}
        state = parse_servers_state(cli(alb.files.stats_socket, "show servers state"))
        assert state[("tg_TgLor", "PathA1_80")] == ("127.0.0.1", new_port, "ready")
        assert node.in_sync(node.desired(snapshot))


@needs_haproxy
def test_reload_keeps_an_established_connection(tmp_path):
    with LocalAlb(alb_plan(), tmp_path) as alb:
        node = NodeRuntime(alb.lb, alb.node, alb.files)
        conn = http.client.HTTPConnection("127.0.0.1", alb.port, timeout=10)
        assert alb.request("/teapot", conn=conn)[0] == 418
        # A new plan: the fixed response rule now forwards to TgPath.
        listener = alb.lb.listeners[0]
        fixed = next(r for r in listener.rules if r.name == "FixedRule")
        forward = {
            "type": "forward",
            "order": None,
            "target_groups": [["TgPath", 1]],
            "group_stickiness_s": None,
            "redirect": None,
            "fixed_response": None,
        }
        node.lb = replace(
            alb.lb,
            listeners=(
                replace(
                    listener,
                    rules=tuple(
                        replace(r, actions=(forward,)) if r is fixed else r for r in listener.rules
                    ),
                ),
            ),
        )
        before = parse_show_proc(cli_retrying(alb.files.master_socket, "show proc"))
        after = node.reload({})
        assert after.reloads == before.reloads + 1
        assert after.workers != before.workers
        assert before.workers[0] in after.old_workers  # still serving our connection
        status, _h, _body = alb.request("/teapot", conn=conn)  # same connection, old worker
        assert status == 418
        assert json.loads(alb.request("/teapot")[2])["instance"] == "PathB1"  # new one
        conn.close()
        # The old worker ends once its last connection has: its stop notices are logged.
        wait_for(
            lambda: not parse_show_proc(cli(alb.files.master_socket, "show proc")).old_workers,
            10,
            "the old HAProxy worker to exit",
        )
    # The old worker's "Proxy Http stopped" notices are not request lines: filtered out.
    lines = alb.files.access_log.read_text().splitlines()
    assert len(lines) == 3, lines
    assert all(parse_line(line) for line in lines), lines


def test_registry_rezones_when_the_load_balancer_gains_or_loses_an_az():
    plan = alb_yaml_plan()
    lb = plan.load_balancers[0]
    reg = TargetRegistry([lb], clock=lambda: 100.0)
    one_az = replace(lb, nodes=lb.nodes[:1])
    done = reg.set_plans([one_az])
    gone = {n.az for n in lb.nodes[1:]}
    states = {k: h.state for k, h in reg.group("MyALB", "WebTargets").targets.items()}
    for key, health in reg.group("MyALB", "WebTargets").targets.items():
        expected = "unused" if health.target.az in gone else "initial"
        assert states[key] == expected, (key, health.target.az)
    assert any("unused" in d for d in done)
    done = reg.set_plans([lb])  # the AZ comes back: its targets are checked again
    assert {h.state for h in reg.group("MyALB", "WebTargets").targets.values()} == {"initial"}
    assert any("in use" in d for d in done)


def test_registry_forgets_a_target_at_once():
    plan = alb_yaml_plan()
    reg = TargetRegistry(list(plan.load_balancers), clock=lambda: 100.0)
    reg.forget("MyALB", "WebTargets", "WebA1:80", "rolled back")
    assert "WebA1:80" not in reg.group("MyALB", "WebTargets").targets
    assert reg.events[-1].new == ""
    assert reg.events[-1].reason == "rolled back"
    reg.forget("MyALB", "WebTargets", "WebA1:80", "again")  # nothing left: nothing happens
    assert reg.events[-1].reason == "rolled back"
