"""A lab's owner: how it is recorded, how its end is noticed, and how a stop is held off while a
process is being journaled (no root, no lab)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from testbed.errors import Terminated
from testbed.lab.events import EventFollower, EventLog
from testbed.lab.owner import Owner, OwnerWatch, short_command, this_process
from testbed.lab.procs import LAB_LABEL, StopShield, labelled_pids, start_time
from testbed.waiting import wait_for


@pytest.mark.parametrize(
    ("argv", "short"),
    [
        (["/usr/bin/python3", "/usr/local/bin/testbed", "run", "alb"], "testbed run alb"),
        (
            ["/w/.venv/bin/python", "-m", "testbed.cli", "up", "x.yaml", "--cli"],
            "testbed up x.yaml --cli",
        ),
        (["python3", "-u", "/tmp/t/owner.py", "--wait"], "owner.py --wait"),
        (["/usr/bin/python3", "-m", "pytest", "-q"], "python -m pytest -q"),
        (["python3", "-c", "import x; x.main()"], "python -c ..."),
        (["/usr/bin/bash", "./run.sh"], "bash ./run.sh"),
        ([], "?"),
    ],
)
def test_short_command_is_what_a_person_typed(argv, short):
    assert short_command(argv) == short


def test_short_command_is_cut_to_a_line():
    text = short_command(["testbed", "run", "x", *["-p", "a=b"] * 40])
    assert len(text) == 80
    assert text.endswith("...")


def test_this_process_round_trips_through_json():
    me = this_process()
    assert me.pid == os.getpid()
    assert me.start_time == start_time(os.getpid())
    assert me.alive()
    again = Owner.from_dict(json.loads(json.dumps(me.to_dict())))
    assert again == me
    assert Owner.from_dict(None) is None
    assert me.describe().startswith(f"owner process {me.pid} (")


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def _owner_of(proc: subprocess.Popen, ticks: int | None = None) -> Owner:
    st = start_time(proc.pid) if ticks is None else ticks
    assert st is not None
    return Owner(proc.pid, st, "sleeper", "sleeper")


def _watch(owner: Owner) -> threading.Event:
    ended = threading.Event()
    OwnerWatch(owner, ended.set).start()
    return ended


def test_watch_fires_when_the_owner_exits_even_unreaped():
    proc = _sleeper()
    try:
        ended = _watch(_owner_of(proc))
        assert not ended.is_set()
        proc.kill()  # not waited for yet: a zombie has ended too
        wait_for(ended.is_set, 10, "the watch to see the owner's end")
    finally:
        proc.kill()
        proc.wait()


def test_watch_fires_at_once_for_a_reused_pid():
    # Same PID, other start time: that process is not the owner, whose end is long past.
    proc = _sleeper()
    try:
        recorded = _owner_of(proc, ticks=start_time(proc.pid) - 1)
        assert not recorded.alive()
        ended = _watch(recorded)
        wait_for(ended.is_set, 10, "the watch to see that the PID is someone else's")
        assert proc.poll() is None  # and the other process was not touched
    finally:
        proc.kill()
        proc.wait()


def test_watch_fires_at_once_for_a_gone_pid():
    proc = _sleeper()
    owner = _owner_of(proc)
    proc.kill()
    proc.wait()
    ended = _watch(owner)
    wait_for(ended.is_set, 10, "the watch to see that the owner is gone")


def test_stop_shield_holds_a_stop_until_the_outermost_section_ends():
    shield = StopShield()
    ran: list[str] = []

    def stop() -> None:
        ran.append("stop")
        raise RuntimeError("stopped")

    assert shield.defer(stop) is False  # nothing held: the handler acts at once

    def held_work() -> None:
        with shield.hold():
            with shield.hold():
                assert shield.defer(stop) is True
                ran.append("inner done")
            ran.append("outer done")

    with pytest.raises(RuntimeError, match="stopped"):
        held_work()
    assert ran == ["inner done", "outer done", "stop"]
    with shield.hold():  # nothing pending any more
        pass


def test_stop_shield_holds_only_the_main_thread():
    shield = StopShield()
    depths = []

    def other() -> None:
        with shield.hold():
            depths.append(shield.depth)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert depths == [0]


def test_labelled_pids_find_the_label_exactly():
    env = dict(os.environ, **{LAB_LABEL: "owlab1"})
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)
    try:
        wait_for(lambda: proc.pid in labelled_pids("owlab1"), 10, "the label to be readable")
        assert proc.pid not in labelled_pids("owlab")
        assert proc.pid not in labelled_pids("owlab12")
    finally:
        proc.kill()
        proc.wait()


def test_follower_reads_the_last_events_of_a_removed_folder(tmp_path):
    log = EventLog(tmp_path)
    log.emit("lab", "AWS::CloudFormation::Stack", "CREATE_IN_PROGRESS")
    follower = EventFollower(tmp_path)
    assert [e.status for e in follower.new()] == ["CREATE_IN_PROGRESS"]
    log.emit("lab", "AWS::CloudFormation::Stack", "ROLLBACK_COMPLETE")
    (tmp_path / "events.jsonl").unlink()  # the holder removes the lab folder at the end
    assert [e.status for e in follower.new()] == ["ROLLBACK_COMPLETE"]
    follower.close()


def _run_script(body: str, sig: str) -> subprocess.CompletedProcess:
    """Run `body` in a fresh Python that signals itself with `sig` where it says SIGNAL."""
    script = textwrap.dedent(body).replace("SIGNAL", f"os.kill(os.getpid(), signal.{sig})")
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_termination_unwinds_through_finally(sig):
    proc = _run_script(
        """
        import os, signal, threading
        from testbed.errors import Terminated
        from testbed.lab.owner import unwind_on_termination
        with unwind_on_termination():
            try:
                try:
                    SIGNAL
                    threading.Event().wait(30)
                finally:
                    print("finally ran")
            except Terminated as exc:
                print("caught", exc, exc.exit_code)
        print("restored", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
        """,
        sig,
    )
    assert proc.returncode == 0, proc.stderr
    number = 15 if sig == "SIGTERM" else 1
    assert proc.stdout.split("\n")[:3] == [
        "finally ran",
        f"caught {sig} {128 + number}",
        "restored True",
    ]


def test_termination_leaves_the_programs_own_handler_alone():
    proc = _run_script(
        """
        import os, signal
        from testbed.lab.owner import unwind_on_termination
        signal.signal(signal.SIGTERM, lambda *a: print("own handler"))
        with unwind_on_termination():
            SIGNAL
        print("still here")
        """,
        "SIGTERM",
    )
    assert proc.stdout.split() == ["own", "handler", "still", "here"], proc.stderr


def test_terminated_is_a_keyboard_interrupt_with_the_shell_exit_code():
    exc = Terminated(15)
    assert isinstance(exc, KeyboardInterrupt)
    assert str(exc) == "SIGTERM"
    assert exc.exit_code == 143


# ---- the holder's side: what a stop does while building and once running ---------------
def _holder(tmp_path, owner: Owner | None = None):
    from testbed.stack.holder import Holder

    request = {"name": "owunit", "template": "t.yaml", "owner": owner and owner.to_dict()}
    (tmp_path / "request.json").write_text(json.dumps(request))
    return Holder(tmp_path)


def test_a_signal_while_building_stops_the_build_once(tmp_path):
    from testbed.stack.holder import Stop

    holder = _holder(tmp_path)
    with pytest.raises(Stop, match="stopped by SIGTERM"):
        holder.signalled(15)
    holder.signalled(15)  # a second signal must not escape the rollback
    assert holder.stop_reason == "stopped by SIGTERM"


def test_a_signal_while_a_process_is_journaled_waits_for_its_entry(tmp_path):
    from testbed.lab.procs import STOP_SHIELD
    from testbed.stack.holder import Stop

    holder = _holder(tmp_path)
    entries = []

    def start_and_journal() -> None:
        with STOP_SHIELD.hold():
            holder.signalled(15)  # arrives between the start and the journal entry
            entries.append("journaled")

    with pytest.raises(Stop):
        start_and_journal()
    assert entries == ["journaled"]


def test_a_signal_once_running_only_asks_for_the_teardown(tmp_path):
    holder = _holder(tmp_path)
    holder.building = False
    holder.signalled(15)
    assert holder.stop_reason == "stopped by SIGTERM"


def test_the_owners_end_names_the_owner_and_asks_for_the_teardown(tmp_path):
    owner = Owner(4242, 1, "/usr/bin/python3 /usr/local/bin/testbed run alb", "testbed run alb")
    holder = _holder(tmp_path, owner)
    assert holder.state["owner"]["pid"] == 4242
    holder.building = False
    holder.owner_exited()
    assert holder.down_requested.is_set()
    assert holder.stop_reason == "owner process 4242 (testbed run alb) exited"


def test_down_carries_its_reason(tmp_path):
    holder = _holder(tmp_path)
    holder.building = False
    assert holder.handle({"op": "down", "reason": "owner process 7 (x.py) left Lab.up"})["ok"]
    assert holder.down_requested.is_set()
    assert holder.stop_reason == "owner process 7 (x.py) left Lab.up"


def test_down_during_the_build_stops_it_as_sigterm_does(tmp_path):
    # A build may wait hours for resource signals: `testbed down` stops it (rollback).
    from testbed.stack.holder import Stop

    holder = _holder(tmp_path)
    previous = signal.signal(signal.SIGTERM, holder.signalled)
    try:
        with pytest.raises(Stop, match="User Initiated"):
            holder.handle({"op": "down"})
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert holder.down_requested.is_set()
