"""Bridges a stack added to a running lab brings (issue 14): AWS's distributed GWLB design,
where the appliance stack (the lab's first) has no internet segment and its spoke does.
testbed.stack.live_switches and StackOps.create against fakes: no processes, no network."""

from __future__ import annotations

import pytest

from testbed.errors import BadInput, LabError
from testbed.lab.events import EventLog
from testbed.model import load_model
from testbed.paths import TEMPLATES
from testbed.plan.network import build_plan
from testbed.stack import live_switches
from testbed.stack.lab_stacks_ops import StackOps
from testbed.stack.stacks import LabStacks, StackRecord

APPLIANCE = str(TEMPLATES / "gwlb-appliance.yaml")
SPOKE = str(TEMPLATES / "gwlb-spoke.yaml")


class FakeLauncher:
    def __init__(self) -> None:
        self.launched: list[str] = []

    def launch_many(self, hosts):
        self.launched += [h.name for h in hosts]
        return list(hosts)

    def terminate_many(self, names):
        pass

    def role_ready(self, name):
        return True


def ops_for(tmp_path, add_switches=None):
    stacks = LabStacks()
    model = load_model(APPLIANCE, stack_name="dist")
    stacks.add(StackRecord("dist", "", APPLIANCE, {}, model, "CREATE_COMPLETE", 1.0))
    plans = [build_plan(model, "dist", zone_base=100)]
    steps: list[str] = []
    launcher = FakeLauncher()

    def publish(plan):
        steps.append("publish " + ",".join(s.name for s in plan.switches))
        plans.append(plan)

    ops = StackOps(
        "dist",
        "us-east-1",
        stacks,
        EventLog(tmp_path),
        get_plan=lambda: plans[-1],
        publish=publish,
        launcher=lambda: launcher,
        save=lambda: None,
        add_switches=add_switches,
    )
    return ops, plans, steps, launcher


def test_the_spokes_internet_bridge_is_made_after_the_plan_has_it(tmp_path):
    made: list = []
    ops, plans, steps, launcher = ops_for(tmp_path)
    ops.add_switches = lambda bridges: (made.extend(bridges), steps.append("bridges"))
    rec = ops.create("spoke", SPOKE, {"ApplianceStack": "dist"})
    assert rec.status == "CREATE_COMPLETE"
    ((sw, uplink),) = made
    assert (sw.name, sw.role) == ("tb-dist-inet", "internet")
    assert (uplink.a, uplink.b, uplink.kind) == ("tb-dist-inet", "tb-dist-core", "patch")
    # The controller knows the bridge before it connects; hosts come after it is programmed.
    assert steps[:2] == [f"publish {','.join(s.name for s in plans[-1].switches)}", "bridges"]
    assert "tb-dist-inet" in steps[0]
    assert {"spoke.Client1", "spoke.Client2", "spoke.WebA"} <= set(launcher.launched)
    # The appliance stack's hosts keep their ports and MACs.
    before = {h.name: (h.switch, h.port, h.mac) for h in plans[0].hosts}
    after = {h.name: (h.switch, h.port, h.mac) for h in plans[-1].hosts if h.name in before}
    assert after == before


def test_without_a_way_to_make_bridges_the_stack_is_refused(tmp_path):
    ops, _, steps, _ = ops_for(tmp_path)
    with pytest.raises(BadInput, match=r"not yet: stack spoke needs a new bridge \(tb-dist-inet\)"):
        ops.create("spoke", SPOKE, {"ApplianceStack": "dist"})
    assert steps == []
    assert "spoke" not in ops.stacks


def test_new_switches_names_each_with_its_link_to_the_core(tmp_path):
    ops, plans, _, _ = ops_for(tmp_path, add_switches=lambda bridges: None)
    ops.create("spoke", SPOKE, {"ApplianceStack": "dist"})
    assert [sw.name for sw, _ in live_switches.new_switches(plans[0], plans[-1])] == [
        "tb-dist-inet"
    ]
    assert live_switches.new_switches(plans[-1], plans[-1]) == []


def test_bridges_not_programmed_in_time_say_which(monkeypatch):
    class Net:
        def __init__(self) -> None:
            self.made: list[str] = []

        def add_switch(self, sw, uplink):
            self.made.append(sw.name)

    ops_plan = build_plan(load_model(APPLIANCE, stack_name="dist"), "dist", zone_base=100)
    sw = ops_plan.switches[0]
    link = ops_plan.links[0]
    monkeypatch.setattr(
        live_switches.asks, "controller_status", lambda sock: {"ready": [1], "errors": []}
    )
    net = Net()
    fake = sw.__class__("tb-dist-inet", 2, "internet")
    with pytest.raises(LabError, match=r"tb-dist-inet were not programmed .* \(programmed: 0x1\)"):
        live_switches.add_switches(net, "sock", [(fake, link)], timeout=0.05)
    assert net.made == ["tb-dist-inet"]
    live_switches.add_switches(net, "sock", [(sw, link)], timeout=0.05)  # dpid 1 is ready
