"""Pure pieces of the lab runtime: names, plan, events, process records, RPC, CLI parsing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import ClassVar

import pytest

from testbed import naming, rpc
from testbed.cli import main
from testbed.errors import BadInput
from testbed.lab import reachability
from testbed.lab.events import EventFollower, EventLog, read_events
from testbed.lab.procs import (
    ProcessJournal,
    group_running,
    is_alive,
    record,
    start_time,
    terminate,
)
from testbed.plan.network import NetworkPlan, build_plan, host_mac
from testbed.results import parse_params
from testbed.waiting import wait_for
from tests.fakeclock import FakeClock
from tests.handmade import two_az_model


@pytest.mark.parametrize("name", ["a", "default", "x1y2z3a"])
def test_good_lab_names(name):
    assert naming.validate_lab_name(name) == name
    assert len(naming.veth_name(name, 999)) <= 15
    assert len(naming.bridge_name(name, "core")) <= 15


@pytest.mark.parametrize("name", ["", "Default", "1abc", "toolong8", "a-b", "a_b"])
def test_bad_lab_names(name):
    with pytest.raises(BadInput):
        naming.validate_lab_name(name)


def test_owner_and_template_names():
    assert naming.owner_of("tb-default-v12") == "default"
    assert naming.owner_of("s1-eth1") is None
    assert naming.name_from_template("templates/Three-AZ.yaml") == "threeaz"
    assert naming.name_from_template("9lives.yml") == "lives"


def test_plan_layout_of_two_az_model():
    plan = build_plan(two_az_model(), "t")
    roles = sorted(s.role for s in plan.switches)
    assert roles == ["az", "az", "core", "internet"]
    assert len({s.dpid for s in plan.switches}) == 4
    assert all(link.kind == "patch" for link in plan.links)
    web = plan.host("WebB2")
    assert web.switch == "tb-t-az2"
    assert web.gateway == "10.0.3.1"
    assert web.prefixlen == 24
    assert web.mac == host_mac("10.0.3.4") == "02:00:0a:00:03:04"
    assert plan.host("Client1").gateway == "198.51.100.1"
    assert len({(h.switch, h.port) for h in plan.hosts}) == len(plan.hosts)
    assert len({h.veth for h in plan.hosts}) == len(plan.hosts)
    assert NetworkPlan.from_json(plan.to_json()) == plan


def test_delay_makes_uplinks_real_links():
    from dataclasses import replace

    model = two_az_model()
    model = replace(model, lab=replace(model.lab, inter_az_delay_ms=4.0))
    plan = build_plan(model, "t")
    uplinks = [link for link in plan.links if "az" in link.a]
    assert all(link.kind == "veth" and link.delay_ms == 2.0 for link in uplinks)


def test_expected_reachability_by_hand():
    plan = build_plan(two_az_model(), "t")
    want = reachability.expected(plan)
    assert want[("WebA2", "10.0.3.4")] is True
    assert want[("Client1", "203.0.113.10")] is True
    assert want[("Client1", "10.0.0.4")] is False
    assert want[("WebA2", "198.51.100.10")] is False
    assert want[("WebA1", "198.51.100.10")] is True
    assert want[("WebA2", "203.0.113.11")] is False  # no route to the IGW for the hairpin
    assert want[("Client1", "198.51.100.11")] is True
    text = reachability.format_matrix(plan, want, want)
    assert "!" not in text
    assert "WebA1" in text


def test_event_log_and_follower(tmp_path):
    log = EventLog(tmp_path)
    follower = EventFollower(tmp_path)
    try:
        assert follower.new() == []
        log.emit("VPC", "AWS::EC2::VPC", "CREATE_IN_PROGRESS")
        with open(tmp_path / "events.jsonl", "a") as f:
            f.write('{"time": 1, "logical_id": "half')  # a line still being written
        got = follower.new()
        assert [e.logical_id for e in got] == ["VPC"]
        with open(tmp_path / "events.jsonl", "a") as f:
            f.write('", "resource_type": "T", "status": "S", "reason": ""}\n')
        assert [e.logical_id for e in follower.new()] == ["half"]
    finally:
        follower.close()  # it keeps the file open between reads
    assert len(read_events(tmp_path)) == 2
    assert "CREATE_IN_PROGRESS" in got[0].line()


def test_process_records_survive_pid_reuse_check(tmp_path):
    journal = ProcessJournal(tmp_path)
    # A process that runs until it is ended (its sleep is what it does, not a wait).
    proc = journal.start([sys.executable, "-c", "import time; time.sleep(30)"], what="sleeper")
    rec = journal.records()[0]
    assert rec.pid == proc.pid
    assert rec.what == "sleeper"
    assert is_alive(rec)
    forged = type(rec)(rec.pid, rec.start_time + 1, "other")
    assert not is_alive(forged)
    assert terminate([forged]) == []  # a different start time is not our process
    assert terminate([rec]) == [proc.pid]
    proc.wait(timeout=5)
    assert not is_alive(rec)
    assert start_time(proc.pid) is None


STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('r', flush=True); time.sleep(30)"
)


def test_terminate_escalates_to_sigkill_when_the_grace_is_over():
    clock = FakeClock()
    with subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE) as proc:
        assert proc.stdout.readline() == b"r\n"  # SIGTERM is ignored from here on
        assert terminate([record(proc.pid, "stubborn")], grace=0.3, clock=clock) == [proc.pid]
        assert proc.wait(timeout=10) == -signal.SIGKILL
    assert clock.slept == pytest.approx(0.3)  # it waited the grace out, by its clock


POLITE = (
    "import signal, sys, time\n"
    "def bye(*_):\n"
    "    print('bye', flush=True)\n"
    "    sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, bye)\n"
    "print('r', flush=True)\n"
    "time.sleep(30)\n"
)


def test_terminate_lets_a_process_that_ends_on_sigterm_finish():
    with subprocess.Popen([sys.executable, "-c", POLITE], stdout=subprocess.PIPE) as proc:
        assert proc.stdout.readline() == b"r\n"
        rec = record(proc.pid, "polite")
        assert terminate([rec], grace=60) == [proc.pid]  # returns once the process is gone
        assert not is_alive(rec)
        assert proc.stdout.read() == b"bye\n"  # its SIGTERM handler ran to the end


def test_group_running_lists_a_groups_live_members_until_they_are_gone():
    # A leader and its child in their own group, as a capture's `timeout` and tcpdump are.
    with subprocess.Popen(
        ["sh", "-c", "sleep 30 & echo r; wait"], stdout=subprocess.PIPE, start_new_session=True
    ) as proc:
        assert proc.stdout.readline() == b"r\n"
        members = group_running(proc.pid)
        assert proc.pid in members
        assert len(members) == 2
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        wait_for(lambda: not group_running(proc.pid), 10, "the group to be gone")
    assert group_running(os.getpgrp())  # our own group has at least us


def test_rpc_round_trip_and_errors(tmp_path):
    path = str(tmp_path / "s.sock")

    def handler(req):
        if req.get("op") == "boom":
            raise ValueError("bad")
        return {"ok": True, "echo": req}

    server = rpc.RpcServer(path, handler)
    server.start()
    try:
        assert rpc.call(path, {"op": "x", "n": 1}) == {"ok": True, "echo": {"op": "x", "n": 1}}
        err = rpc.call(path, {"op": "boom"})
        assert err["ok"] is False
        assert "ValueError: bad" in err["error"]
        threads = [threading.Thread(target=rpc.call, args=(path, {"op": "p"})) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
    finally:
        server.stop()
    with pytest.raises(rpc.RpcUnavailable):
        rpc.call(path, {"op": "x"})


def test_experiment_params_are_typed():
    class Mod:
        PARAMS: ClassVar = {
            "sizes": ([1, 2], ""),
            "n": (3, ""),
            "flag": (False, ""),
            "s": (None, ""),
        }

    assert parse_params(Mod, {}) == {"sizes": [1, 2], "n": 3, "flag": False, "s": None}
    got = parse_params(Mod, {"sizes": "5,6", "n": "7", "flag": "yes", "s": "x"})
    assert got == {"sizes": [5, 6], "n": 7, "flag": True, "s": "x"}
    with pytest.raises(BadInput):
        parse_params(Mod, {"nope": "1"})
    with pytest.raises(BadInput):
        parse_params(Mod, {"n": "seven"})


def test_cli_bad_flags_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["up", "t.yaml", "--param", "novalue"])
    assert exc.value.code == 2
    assert main(["status", "BadName"]) == 2
    assert "bad lab name" in capsys.readouterr().err


def test_cli_validate_reports_resources(capsys):
    from testbed.paths import DEFAULT_TEMPLATE

    assert main(["validate", str(DEFAULT_TEMPLATE)]) == 0
    out = capsys.readouterr().out
    assert "valid" in out
    assert "AWS::EC2::Instance" in out
    assert "WebA1.InstanceType" in out


def test_every_command_has_help(capsys):
    from testbed.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name in commands:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        assert "usage: testbed " + name in capsys.readouterr().out
