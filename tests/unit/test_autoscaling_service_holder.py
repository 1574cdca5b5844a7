"""The holder's Auto Scaling ops (no lab): routed to the service, refused as bad input in a
lab without groups; publish_plan writes the plan, tells the load balancers and the
controller, and lists the hosts."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from testbed import asks
from testbed.messages import Reply
from testbed.model import load_model
from testbed.naming import CONTROLLER_SOCK, PLAN_FILE
from testbed.paths import TEMPLATES
from testbed.plan.network import build_plan
from testbed.stack import holder as holder_module
from testbed.stack.holder import Holder


def bare_holder(tmp_path) -> Holder:
    h = Holder.__new__(Holder)
    h.name, h.lab_dir = "sunit", tmp_path
    h.state = {"state": "CREATE_COMPLETE"}
    h.lb_service = None
    h.autoscaling = None
    h.builder = None
    h.plan_lock = threading.RLock()
    h.save = lambda **changes: h.state.update(changes)  # type: ignore[method-assign]
    return h


def test_asg_ops_in_a_lab_without_groups_are_bad_input(tmp_path):
    h = bare_holder(tmp_path)
    for op in ("asg_describe", "asg_activities", "asg_set_capacity", "alarms_describe"):
        reply = h.handle({"op": op, "group": "Web"})
        assert reply["ok"] is False
        assert reply.get("bad_input") is True
        assert "has no Auto Scaling group" in reply["error"]


def test_asg_ops_go_to_the_service(tmp_path):
    h = bare_holder(tmp_path)
    seen = []

    def handle(request):
        seen.append(request["op"])
        return Reply(ok=True)

    h.autoscaling = SimpleNamespace(handle=handle)  # type: ignore[assignment]
    assert h.handle({"op": "asg_describe"})["ok"]
    assert h.handle({"op": "alarms_describe"})["ok"]
    assert seen == ["asg_describe", "alarms_describe"]


def test_publish_plan_writes_reloads_and_lists_hosts(tmp_path, monkeypatch):
    h = bare_holder(tmp_path)
    plan = build_plan(load_model(str(TEMPLATES / "default.yaml"), stack_name="sunit"), "sunit")
    h.builder = SimpleNamespace(plan=None)  # type: ignore[assignment]
    taken = []
    h.lb_service = SimpleNamespace(set_plan=taken.append)  # type: ignore[assignment]
    asked = []
    monkeypatch.setattr(
        asks, "controller_reload_plan", lambda path, timeout=10.0: asked.append(path)
    )
    h.publish_plan(plan)
    assert (tmp_path / PLAN_FILE).read_text() == plan.to_json()
    assert h.builder.plan is plan
    assert taken == [plan]
    assert asked == [str(tmp_path / CONTROLLER_SOCK)]
    assert h.state["hosts"] == holder_module.host_listing(plan)


def test_an_update_that_changes_auto_scaling_is_named():
    path = str(TEMPLATES / "autoscaling.yaml")
    base = load_model(path, stack_name="sunit")
    assert holder_module.autoscaling_changes(base, load_model(path, stack_name="sunit")) == []
    bigger = load_model(path, {"DesiredCapacity": "3"}, stack_name="sunit")
    assert holder_module.autoscaling_changes(base, bigger) == ["WebGroup"]
    faster = load_model(path, {"TargetRequests": "50"}, stack_name="sunit")
    assert holder_module.autoscaling_changes(base, faster) == ["RequestsPerTarget"]


def test_a_capacity_only_change_is_live_and_the_rest_is_not():
    path = str(TEMPLATES / "autoscaling.yaml")
    base = load_model(path, stack_name="sunit")
    bigger = load_model(path, {"DesiredCapacity": "3"}, stack_name="sunit")
    live = holder_module.capacity_changes(base, bigger)
    assert list(live) == ["WebGroup"]
    group, text = live["WebGroup"]
    assert group.desired == 3
    assert text == f"desired {base.auto_scaling_groups['WebGroup'].desired} -> 3"
    faster = load_model(path, {"TargetRequests": "50"}, stack_name="sunit")
    assert holder_module.capacity_changes(base, faster) == {}  # a policy: not a capacity
    assert holder_module.capacity_changes(base, base) == {}
