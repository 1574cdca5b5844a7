"""The RPC messages as the servers read them: which ops each answers, how a request of an
unknown op or with a field missing is refused, typed replies over a real Unix socket (no root,
no lab)."""

from __future__ import annotations

import json

import pytest

from testbed import asks, rpc
from testbed.messages import (
    CONTROLLER_OPS,
    HOLDER_OPS,
    ControllerRestartsReply,
    ControllerRestartsRequest,
    HolderStatusReply,
    RegisterReply,
)


def test_the_ops_come_from_the_request_unions():
    holder_ops = {"status", "down", "update", "controller_restarts", "targets", "register"}
    holder_ops |= {"deregister", "health_checks", "health_report"}
    holder_ops |= {"asg_describe", "asg_activities", "asg_set_capacity"}
    holder_ops |= {"asg_complete_lifecycle", "alarms_describe"}
    holder_ops |= {"create_stack", "delete_stack", "stacks"}
    assert holder_ops == HOLDER_OPS
    controller_ops = {"status", "stats", "nlb_stats", "set_targets", "terminate", "activate"}
    controller_ops |= {"reload_security", "reload_plan"}
    assert controller_ops == CONTROLLER_OPS


@pytest.fixture
def holder(tmp_path):
    from testbed.stack.holder import Holder

    request = {"name": "msgunit", "template": "t.yaml"}
    (tmp_path / "request.json").write_text(json.dumps(request))
    return Holder(tmp_path)


@pytest.fixture
def served(holder, tmp_path):
    """The holder's handler on a Unix socket, as the lab serves it."""
    server = rpc.RpcServer(str(tmp_path / "h.sock"), holder.handle)
    server.start()
    yield str(tmp_path / "h.sock")
    server.stop()


def test_an_unknown_op_is_refused_before_anything_is_read(holder):
    reply = holder.handle({"op": "reboot"})
    assert reply == {"ok": False, "error": "unknown request 'reboot'"}
    assert not holder.handle({})["ok"]


def test_an_op_of_a_part_the_lab_lacks_is_refused(holder):
    # No load balancer (the holder has no LB service), not built (no supervisor).
    assert holder.handle({"op": "targets"}) == {
        "ok": False,
        "error": "targets: this lab has no load balancer",
    }
    request = ControllerRestartsRequest(op="controller_restarts", enabled=False)
    reply = holder.handle(dict(request))
    assert not reply["ok"]
    assert "not built" in reply["error"]


def test_typed_replies_over_the_socket(served, holder):
    reply = asks.ask(served, {"op": "status"}, HolderStatusReply, timeout=5)
    assert reply["state"]["name"] == "msgunit"
    assert reply["state"]["state"] == "CREATE_IN_PROGRESS"


class Supervisor:
    def set_enabled(self, enabled: bool) -> dict:
        return {"ok": True, "enabled": enabled, "controller_running": True}


def test_a_refusal_and_a_missing_field_come_back_as_rpc_refused(served, holder):
    with pytest.raises(rpc.RpcRefused, match="unknown request") as refused:
        asks.ask(served, {"op": "reboot"}, RegisterReply, timeout=5)
    assert not refused.value.bad_input
    with pytest.raises(rpc.RpcRefused, match="CREATE_IN_PROGRESS") as refused:
        asks.ask(served, {"op": "update", "template": "t.yaml"}, RegisterReply, timeout=5)
    assert refused.value.bad_input  # the caller's fault: `testbed update` exits 2
    # controller_restarts without "enabled": the handler's KeyError is the caller's error.
    holder.supervisor = Supervisor()
    with pytest.raises(rpc.RpcRefused, match="KeyError"):
        asks.ask(served, {"op": "controller_restarts"}, ControllerRestartsReply, timeout=5)
    reply = asks.ask(
        served,
        ControllerRestartsRequest(op="controller_restarts", enabled=False),
        ControllerRestartsReply,
        timeout=5,
    )
    assert reply["enabled"] is False
