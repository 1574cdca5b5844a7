"""The holder's live update of security group rules and ACL entries, with the controller
and the template replaced by stand-ins: the plan file changes first, then the controller is
asked to reload them; events name the groups; a refused reload puts the old plan back."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from testbed import asks, errors
from testbed.naming import CONTROLLER_SOCK, PLAN_FILE
from testbed.plan.network import NetworkPlan
from testbed.stack import holder as holder_module
from testbed.stack.holder import Holder
from testbed.stack.stacks import LabStacks
from tests.security_fixture import group, secured, tcp


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, ...]] = []

    def emit(self, lid: str, rtype: str, status: str, reason: str = "", **_: object) -> None:
        self.seen.append((lid, rtype, status))


def holder_with(tmp_path, old: NetworkPlan, new: NetworkPlan, monkeypatch) -> Holder:
    h = Holder.__new__(Holder)
    h.name, h.lab_dir, h.events = "i10dt", tmp_path, Events()
    h.state = {"state": "CREATE_COMPLETE", "outputs": {}}
    h.request = {}
    # No Auto Scaling in either model: only the security changes are live.
    model = SimpleNamespace(
        outputs={},
        exports={},
        signal_policies={},
        cfn_init={},
        auto_scaling_groups={},
        scaling_policies={},
        alarms={},
        scheduled_actions={},
    )
    h.builder = SimpleNamespace(plan=old, model=model)  # type: ignore[assignment]
    h.lb_service = None
    h.plan_lock = threading.RLock()
    h.stacks = LabStacks()  # a lab without stack records
    h.save = lambda **changes: h.state.update(changes)  # type: ignore[method-assign]
    monkeypatch.setattr(holder_module, "load_model", lambda *a, **k: model)
    monkeypatch.setattr(holder_module, "build_plan", lambda *a, **k: new)
    (tmp_path / PLAN_FILE).write_text(old.to_json())
    return h


OLD = secured((group("Web", ingress=(tcp(80), tcp(22))),), {"WebA2": ("Web",)})
NEW = secured((group("Web", ingress=(tcp(80),)),), {"WebA2": ("Web",)})


def test_a_rule_change_is_written_then_reloaded_by_the_controller(tmp_path, monkeypatch):
    h = holder_with(tmp_path, OLD, NEW, monkeypatch)
    asked = []

    def reload(path, timeout=10.0):
        asked.append((path, NetworkPlan.from_json((tmp_path / PLAN_FILE).read_text())))

    monkeypatch.setattr(asks, "controller_reload_plan", reload)
    reply = h.update({"op": "update", "template": "t.yaml"})  # type: ignore[typeddict-item]
    assert reply["ok"]
    assert [p for p, _ in asked] == [str(tmp_path / CONTROLLER_SOCK)]
    assert asked[0][1].security_groups == NEW.security_groups  # the new plan was there
    assert ("Web", "AWS::EC2::SecurityGroup", "UPDATE_COMPLETE") in h.events.seen
    assert h.state["state"] == "UPDATE_COMPLETE"


def test_a_refused_reload_puts_the_old_plan_back(tmp_path, monkeypatch):
    h = holder_with(tmp_path, OLD, NEW, monkeypatch)
    calls = []

    def reload(path, timeout=10.0):
        calls.append(path)
        if len(calls) == 1:
            raise errors.TestbedError("a switch did not acknowledge within 5 s")

    monkeypatch.setattr(asks, "controller_reload_plan", reload)
    with pytest.raises(errors.TestbedError, match="rolled back"):  # UpdateFailed
        h.update({"op": "update", "template": "t.yaml"})  # type: ignore[typeddict-item]
    back = NetworkPlan.from_json((tmp_path / PLAN_FILE).read_text())
    assert back.security_groups == OLD.security_groups
    assert len(calls) == 2  # the controller reloaded the old rules
    assert h.state["state"] == "UPDATE_ROLLBACK_COMPLETE"
