"""testbed.lab.drift_live without a lab: the expected state from a template and a plan (the
lab's first stack, a stack added to it), and the actual state from fakes of the holder, the
process journal, the host namespaces and an ALB node's HAProxy runtime API (a Unix socket
that answers `show acl` as HAProxy 2.6 does)."""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
from pathlib import Path

import pytest

from testbed.errors import BadInput, LabError
from testbed.lab import drift, drift_live
from testbed.lab.drift import INSTANCE, Expected, ExpectedInstance
from testbed.lab.events import Event
from testbed.lab.procs import ProcessJournal, ProcessRecord, start_time
from testbed.lab.state import read_state, write_state
from testbed.model import load_model
from testbed.plan.network import build_plan

REPO = Path(__file__).resolve().parents[2]
ALB = REPO / "templates/alb.yaml"


class FakeLab:
    """What drift_live reads of testbed.lab.api.Lab."""

    def __init__(self, name: str, lab_dir: Path, plan, rows=None, events=()) -> None:
        self.name = name
        self.dir = lab_dir
        self.plan = plan
        self.rows = rows
        self._events = list(events)

    @property
    def state(self):
        return read_state(self.dir)

    def events(self):
        return self._events

    def targets(self):
        if self.rows is None:
            raise LabError("no answer")
        return self.rows


@pytest.fixture
def alb(tmp_path, monkeypatch):
    """A lab 'alb' of templates/alb.yaml whose holder is this process."""
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path))
    lab_dir = tmp_path / "alb"
    lab_dir.mkdir()
    state = {
        "pid": os.getpid(),
        "pid_start": start_time(os.getpid()),
        "template": str(ALB),
        "template_text": ALB.read_text(),
        "params": {},
        "region": "us-east-1",
        "hosts": [{"name": "WebA1"}, {"name": "WebB1"}],
    }
    write_state(lab_dir, state)
    plan = build_plan(load_model(str(ALB), {}, stack_name="alb"), "alb")
    return FakeLab("alb", lab_dir, plan)


def test_expected_of_the_first_stack(alb):
    exp = drift_live.expected_state(alb, alb.plan)
    assert exp.stack_name == "alb"
    assert exp.stack_id.startswith("arn:aws:cloudformation:us-east-1:123456789012:stack/alb/")
    ids = {r.logical_id: r for r in exp.resources}
    assert len(ids) == 34
    assert ids["WebA1"].physical_id == "i-WebA1"
    assert ids["VPC"].physical_id == "vpc-VPC"
    assert ids["WebTargets"].physical_id.startswith(
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/"
    )
    assert exp.groups["WebTargets"].targets == (("i-WebA1", 80), ("i-WebB1", 80))
    assert set(exp.groups) == {"WebTargets", "CanaryTargets", "ApiTargets", "StaticTargets"}
    web = exp.instances["WebA1"]
    assert web.host == "WebA1"
    assert web.role == "http-backend"
    assert 80 in web.ports
    assert set(exp.rules) == {"ApiRule", "StaticRule", "OldPathRule", "LbHealthRule"}
    api = exp.rules["ApiRule"]
    assert api.load_balancer == "MyALB"
    assert api.conditions[0].values == ("/api/*",)


def test_expected_of_an_added_stack_from_its_events(alb):
    state = alb.state
    state["stacks"] = [{"name": "alb", "qualifier": ""}, {"name": "extra", "qualifier": "extra."}]
    write_state(alb.dir, state)
    host = dataclasses.replace(alb.plan.host("WebA1"), name="extra.Web")
    plan = dataclasses.replace(alb.plan, hosts=(*alb.plan.hosts, host))
    alb._events = [
        Event(1.0, "extra", "AWS::CloudFormation::Stack", "CREATE_COMPLETE", stack="extra"),
        Event(1.0, "Web", INSTANCE, "CREATE_COMPLETE", stack="extra"),
        Event(1.0, "Old", INSTANCE, "CREATE_COMPLETE", stack="extra"),
        Event(2.0, "Old", INSTANCE, "DELETE_COMPLETE", stack="extra"),
        Event(1.0, "WebA1", INSTANCE, "CREATE_COMPLETE"),
    ]
    exp = drift_live.expected_state(alb, plan, "extra")
    assert [(r.logical_id, r.physical_id) for r in exp.resources] == [("Web", "i-extra.Web")]
    assert exp.instances == {"Web": ExpectedInstance("extra.Web", "http-backend", host_ports(alb))}
    assert exp.groups == {}
    with pytest.raises(BadInput, match="has no stack 'nosuch'"):
        drift_live.expected_state(alb, plan, "nosuch")


def host_ports(alb) -> tuple[int, ...]:
    return drift_live.expected_state(alb, alb.plan).instances["WebA1"].ports


def test_detect_refuses_a_lab_that_is_not_running(tmp_path, monkeypatch):
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path))
    lab = FakeLab("gone", tmp_path / "gone", None)
    with pytest.raises(BadInput, match="no lab named 'gone'"):
        drift_live.detect(lab)  # type: ignore[arg-type]
    (tmp_path / "gone").mkdir()
    write_state(tmp_path / "gone", {"pid": 1, "pid_start": 0})
    with pytest.raises(BadInput, match="is not running"):
        drift_live.detect(lab)  # type: ignore[arg-type]


def test_actual_targets_and_a_holder_that_does_not_answer(alb):
    exp = drift_live.expected_state(alb, alb.plan)
    alb.rows = [
        {
            "TargetGroup": "WebTargets",
            "Target": {"Id": "i-WebA1", "Port": 80},
            "TargetHealth": {"State": "healthy"},
        }
    ]
    actual = drift_live.actual_state(alb, alb.plan, dataclasses.replace(exp, rules={}))
    assert actual.targets["WebTargets"] == [("i-WebA1", 80, "healthy")]
    assert actual.targets["ApiTargets"] == []  # a group with nothing registered
    alb.rows = None
    actual = drift_live.actual_state(alb, alb.plan, dataclasses.replace(exp, rules={}))
    assert actual.targets == {}
    assert "no answer" in (actual.targets_error or "")


def test_actual_hosts_gone_stopped_listening(alb, tmp_path, monkeypatch):
    netns = tmp_path / "netns"
    netns.mkdir()
    monkeypatch.setattr(drift_live, "NETNS_DIR", netns)
    for host in ("WebA1", "WebB1"):
        (netns / f"alb-{host}").touch()
    monkeypatch.setattr(drift_live.naming, "netns_name", lambda lab, host: f"{lab}-{host}")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    # WebA1's role: this process (it listens on `port`); WebB1 has no role process.
    ProcessJournal(alb.dir).add(
        ProcessRecord(os.getpid(), start_time(os.getpid()) or 0, "role:http-backend", "WebA1")
    )
    instances = {
        "WebA1": ExpectedInstance("WebA1", "http-backend", (port,)),
        "WebB1": ExpectedInstance("WebB1", "http-backend", (port,)),
        "ApiA1": ExpectedInstance("ApiA1", "http-backend", (port,)),  # no namespace
    }
    exp = Expected("alb", "id", (), instances=instances)
    try:
        hosts = drift_live._hosts(alb, alb.plan, exp)  # type: ignore[arg-type]
        assert hosts["WebA1"] == drift.HostState(True, drift.LISTENING)
        assert hosts["WebB1"] == drift.HostState(True, drift.STOPPED)
        assert hosts["ApiA1"] == drift.HostState(False)
    finally:
        listener.close()
    hosts = drift_live._hosts(alb, alb.plan, exp)  # type: ignore[arg-type]
    assert hosts["WebA1"] == drift.HostState(True, f"not listening on {port}")


class FakeHaproxy:
    """A stats socket answering `show acl` and `show acl #ID` from a table, as HAProxy does."""

    def __init__(self, path: Path, config_path: Path, acls: dict[int, tuple[int, list[str]]]):
        self.acls = acls  # id -> (config line, patterns)
        self.config_path = config_path
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def answer(self, command: str) -> str:
        if command == "show acl":
            lines = ["# id (file) description"] + [
                f"{i} () acl 'path' file '{self.config_path}' line {line}. curr_ver=0 "
                f"next_ver=0 entry_cnt={len(p)}"
                for i, (line, p) in self.acls.items()
            ]
            return "\n".join(lines) + "\n\n"
        acl_id = int(command.rsplit("#", 1)[1])
        return "".join(f"0x55{n:010x} {p}\n" for n, p in enumerate(self.acls[acl_id][1])) + "\n"

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                command = conn.recv(4096).decode().strip()
                conn.sendall(self.answer(command).encode())

    def close(self) -> None:
        self.server.close()


def test_node_acls_through_the_runtime_api(tmp_path):
    node = tmp_path / "MyALB-1a"
    node.mkdir()
    sock = tmp_path / "haproxy.sock"
    config = node / "haproxy.cfg"
    config.write_text(
        "global\n"
        f"    stats socket {sock} mode 600 level admin expose-fd listeners\n"
        "frontend HttpListener\n"
        "    acl ApiRule_c0 path -m reg '^/api/.*$'\n"
        "    acl StaticRule_c0 path -m reg '^/static/.*$'\n"
    )
    fake = FakeHaproxy(
        sock, config, {0: (1, ["x"]), 4: (4, ["^/api/.*$", "^/admin/.*$"]), 5: (5, [])}
    )
    try:
        acls = drift_live.node_acls(node)
    finally:
        fake.close()
    assert acls.error is None
    assert acls.file == {"ApiRule_c0": ("^/api/.*$",), "StaticRule_c0": ("^/static/.*$",)}
    assert acls.running == {"ApiRule_c0": ("^/api/.*$", "^/admin/.*$"), "StaticRule_c0": ()}
    down = drift_live.node_acls(node)  # nobody listens any more
    assert down.error is not None
    assert "does not answer" in down.error
    missing = drift_live.node_acls(tmp_path / "nosuch")
    assert missing.error is not None
    assert "cannot read" in missing.error
