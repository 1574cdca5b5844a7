"""The lab's stacks (testbed.stack.stacks) and the holder's create_stack / delete_stack
(testbed.stack.lab_stacks_ops) against a fake launcher: no processes, no network."""

from __future__ import annotations

import pytest

from testbed.errors import BadInput, LabError
from testbed.lab.api import stacks_of
from testbed.lab.events import EventLog, read_events
from testbed.model import load_model
from testbed.paths import TEMPLATES
from testbed.plan.network import build_plan
from testbed.stack.lab_stacks_ops import StackOps
from testbed.stack.stacks import LabStacks, StackRecord

EXPORT = str(TEMPLATES / "two-stacks-export.yaml")
IMPORT = str(TEMPLATES / "two-stacks-import.yaml")
STACK_TYPE = "AWS::CloudFormation::Stack"


def first_stack() -> StackRecord:
    model = load_model(EXPORT, stack_name="net")
    return StackRecord("net", "", EXPORT, {}, model, "CREATE_COMPLETE", 1.0)


def lab_stacks() -> LabStacks:
    stacks = LabStacks()
    stacks.add(first_stack())
    return stacks


def importer(stacks: LabStacks, name: str = "app") -> StackRecord:
    model = load_model(
        IMPORT,
        {"NetworkStack": "net", "VpcId": "vpc-VPC"},
        stack_name=name,
        qualifier=f"{name}.",
        lab=stacks.view(),
    )
    return StackRecord(name, f"{name}.", IMPORT, {}, model, "CREATE_COMPLETE", 2.0)


def test_refusal_text_order_and_importers():
    stacks = lab_stacks()
    assert stacks.delete_refusal("net") is None
    stacks.add(importer(stacks))
    used = stacks.importers("net")
    assert used == {"net-PublicSubnet": ["app"], "net-WebSecurityGroup": ["app"]}
    assert stacks.delete_refusal("net") == (
        "Export net-PublicSubnet cannot be deleted as it is in use by app"
    )
    assert stacks.delete_refusal("app") is None
    assert stacks.names() == ["net", "app"]
    assert [r.name for r in stacks.newest_first()] == ["app", "net"]
    assert stacks.exporter("net-PublicSubnet") == "net"
    assert stacks.exporter("nothing") is None
    assert set(stacks.exports(excluding="app")) == set(stacks.exports())
    assert stacks.exports(excluding="net") == {}
    with pytest.raises(BadInput, match=r"Stack \[app\] already exists"):
        stacks.add(importer(stacks, "app"))
    with pytest.raises(BadInput, match="Stack with id x does not exist"):
        stacks.get("x")


def test_an_imported_export_may_not_change_or_go_in_an_update():
    stacks = lab_stacks()
    exports = dict(stacks.get("net").exports)
    assert stacks.update_refusal("net", {}) is None  # nobody imports yet
    stacks.add(importer(stacks))
    assert stacks.update_refusal("net", exports) is None  # the same values
    changed = dict(exports, **{"net-PublicSubnet": "subnet-other"})
    assert stacks.update_refusal("net", changed) == (
        "Export net-PublicSubnet cannot be updated as it is in use by app"
    )
    gone = {k: v for k, v in exports.items() if k != "net-WebSecurityGroup"}
    assert stacks.update_refusal("net", gone) == (
        "Export net-WebSecurityGroup cannot be updated as it is in use by app"
    )
    assert stacks.update_refusal("nobody", {}) is None


def test_persisted_as_testbed_stacks_reads_it():
    stacks = lab_stacks()
    stacks.add(importer(stacks))
    rows = stacks_of("net", {"stacks": stacks.to_state()})
    assert [r["name"] for r in rows] == ["net", "app"]
    assert rows[0]["exports"]["net-PublicSubnet"]["imported_by"] == ["app"]
    assert stacks.to_state()[1]["imports"] == ["net-PublicSubnet", "net-WebSecurityGroup"]


# ---- the holder's ops, with a fake launcher ---------------------------------------------------


class FakeLauncher:
    def __init__(self, fail: str | None = None) -> None:
        self.fail = fail
        self.launched: list[str] = []
        self.hosts: dict[str, object] = {}  # name -> HostPlan (a real launcher publishes it)
        self.terminated: list[str] = []

    def launch_many(self, hosts):
        if any(h.name == self.fail for h in hosts):
            return [LabError(f"instance {self.fail} could not be launched: role failed")]
        self.launched += [h.name for h in hosts]
        self.hosts.update({h.name: h for h in hosts})
        return list(hosts)

    def terminate_many(self, names):
        self.terminated += names

    def role_ready(self, name):
        return True


@pytest.fixture
def holder(tmp_path):
    stacks = lab_stacks()
    plans = [build_plan(stacks.get("net").model, "net", zone_base=100)]
    saved: list[list] = []
    launcher = FakeLauncher()

    def publish(plan):
        plans.append(plan)

    ops = StackOps(
        "net",
        "us-east-1",
        stacks,
        EventLog(tmp_path),
        get_plan=lambda: plans[-1],
        publish=publish,
        launcher=lambda: launcher,
        save=lambda: saved.append(stacks.to_state()),
    )
    return ops, plans, launcher, tmp_path


# A second, independent stack (the export template again: overlapping VPC, its own internet
# client, which takes the internet segment's next address) and the refusal with LabStacks.
def test_create_then_refused_then_delete(holder):
    ops, plans, launcher, lab_dir = holder
    first = plans[0]
    rec = ops.create("app", EXPORT, {})
    assert rec.status == "CREATE_COMPLETE"
    # Its VPC overlaps net's: the resolver of address space 1 first, then its hosts.
    assert launcher.launched == ["LabDNS-1", "app.Web", "app.Client1"]
    assert launcher.hosts["app.Client1"].ip == "198.51.100.11"  # the segment's next
    assert launcher.hosts["app.Web"].vpc == "app.VPC"
    # Every host of the first stack keeps its port and MAC.
    before = {h.name: (h.port, h.mac) for h in first.hosts}
    after = {h.name: (h.port, h.mac) for h in plans[-1].hosts if h.name in before}
    assert after == before
    ops.stacks.add(importer(ops.stacks, "user"))  # imports net's exports (not built)
    with pytest.raises(BadInput, match="Export net-PublicSubnet cannot be deleted"):
        ops.delete("net")
    ops.stacks.remove("user")
    ops.delete("app")
    assert sorted(launcher.terminated) == ["app.Client1", "app.Web"]
    assert ops.stacks.names() == ["net"]
    assert {h.name for h in plans[-1].hosts} == {h.name for h in first.hosts}
    events = [e for e in read_events(lab_dir) if e.stack == "app"]
    created = [e.logical_id for e in events if e.status == "CREATE_COMPLETE"]
    deleted = [e.logical_id for e in events if e.status == "DELETE_COMPLETE"]
    assert deleted[:-1] == list(reversed(created[:-1]))
    assert (created[-1], deleted[-1]) == ("app", "app")
    refused = [e for e in read_events(lab_dir) if e.reason.startswith("Export ")]
    assert [(e.logical_id, e.status, e.stack) for e in refused] == [("net", "CREATE_COMPLETE", "")]


def test_bad_import_changes_nothing(holder):
    ops, plans, launcher, _lab_dir = holder
    with pytest.raises(BadInput, match="No export named nosuch-PublicSubnet found"):
        ops.create("app", IMPORT, {"NetworkStack": "nosuch", "VpcId": "vpc-VPC"})
    assert (len(plans), ops.stacks.names(), launcher.launched) == (1, ["net"], [])


def test_failed_create_rolls_back(holder):
    ops, plans, launcher, lab_dir = holder
    launcher.fail = "app.Web"
    with pytest.raises(LabError, match="stack app was rolled back"):
        ops.create("app", EXPORT, {})
    assert plans[-1] == plans[0]
    assert ops.stacks.get("app").status == "ROLLBACK_COMPLETE"
    statuses = [e.status for e in read_events(lab_dir) if e.resource_type == STACK_TYPE]
    assert statuses[-2:] == ["ROLLBACK_IN_PROGRESS", "ROLLBACK_COMPLETE"]


def test_importer_merges_into_the_lab_plan():
    """Another stack's VPC, subnet and groups are the lab plan's: not laid out again, not
    qualified; the importer's host goes on the lab's bridge of that subnet's AZ."""
    from testbed.plan.merge import add_stack

    stacks = lab_stacks()
    lab = build_plan(stacks.get("net").model, "net", zone_base=100)
    rec = importer(stacks)
    merged = add_stack(lab, rec.model, "net", 100, "app.")
    assert (merged.vpcs, merged.subnets, merged.switches) == (lab.vpcs, lab.subnets, lab.switches)
    added = [g.name for g in merged.security_groups if g not in lab.security_groups]
    assert added == ["app.AppSecurityGroup"]
    app = next(h for h in merged.hosts if h.name == "app.App")
    web = next(h for h in lab.hosts if h.name == "Web")
    assert (app.switch, app.subnet, app.vpc) == (web.switch, "PublicSubnet", "VPC")
    assert app.groups == ("WebSecurityGroup", "app.AppSecurityGroup")
    assert [h for h in merged.hosts if h.name in {x.name for x in lab.hosts}] == list(lab.hosts)
