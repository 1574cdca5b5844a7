"""`testbed up --into`, `testbed stacks`, `testbed down --stack` (issue 14): parsing, exit
codes and the stacks view, against lab folders written here (no root, no holder)."""

from __future__ import annotations

import json
import os

import pytest

from testbed import naming
from testbed.cli import build_parser, main
from testbed.cli.lifecycle import stacks_text
from testbed.lab import api
from testbed.lab.api import Lab, stacks_of
from testbed.lab.procs import start_time
from testbed.lab.state import STATE

EXPORT = "templates/two-stacks-export.yaml"
IMPORT = "templates/two-stacks-import.yaml"

# state.json "stacks" as docs/design/stacks.md §1.1 lays it out: lab net, stack app imports
# two of net's three exports.
STACKS = [
    {
        "name": "net",
        "status": "CREATE_COMPLETE",
        "created": 1700000000.0,
        "updated": None,
        "template": "/x/two-stacks-export.yaml",
        "params": {},
        "outputs": {"VpcId": "vpc-VPC", "PublicSubnet": "subnet-PublicSubnet"},
        "exports": {
            "net-VpcId": "vpc-VPC",
            "net-PublicSubnet": "subnet-PublicSubnet",
            "net-WebSecurityGroup": "sg-WebSecurityGroup",
        },
        "imports": [],
    },
    {
        "name": "app",
        "status": "CREATE_COMPLETE",
        "created": 1700000100.0,
        "updated": None,
        "template": "/x/two-stacks-import.yaml",
        "params": {"NetworkStack": "net", "VpcId": "vpc-VPC"},
        "outputs": {"AppPrivateIp": "10.0.0.5"},
        "exports": {},
        "imports": ["net-PublicSubnet", "net-WebSecurityGroup"],
    },
]


@pytest.fixture
def labs(tmp_path, monkeypatch):
    """A state root with labs written on demand; alive=True makes this process the holder."""
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path))

    def write(name: str, alive: bool = True, **fields):
        state = {"state": "CREATE_COMPLETE", "created": 1700000000.0, "outputs": {}} | fields
        if alive:
            state |= {"pid": os.getpid(), "pid_start": start_time(os.getpid())}
        d = naming.lab_dir(name)
        d.mkdir(parents=True, exist_ok=True)
        (d / STATE).write_text(json.dumps(state))
        return d

    return write


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---- parsing ------------------------------------------------------------------------------


def test_up_into_parses():
    args = build_parser().parse_args(
        ["up", IMPORT, "--into", "net", "--stack-name", "app", "-p", "NetworkStack=net"]
    )
    assert (args.into, args.stack_name, args.params) == ("net", "app", [("NetworkStack", "net")])
    assert build_parser().parse_args(["up", EXPORT]).into is None


def test_down_stack_and_stacks_parse():
    args = build_parser().parse_args(["down", "net", "--stack", "app"])
    assert (args.names, args.stack) == (["net"], "app")
    args = build_parser().parse_args(["stacks", "net", "--json"])
    assert (args.name, args.json) == ("net", True)


@pytest.mark.parametrize("command", ["up", "down", "stacks"])
def test_help_teaches_stacks(command, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert {"up": "--into net", "down": "--stack app", "stacks": "testbed stacks net"}[
        command
    ] in out


# ---- exit codes ------------------------------------------------------------------------------


def test_stack_name_without_into_is_bad_input(capsys):
    code, _, err = run(capsys, "up", EXPORT, "--stack-name", "x")
    assert code == 2
    assert "--stack-name needs --into LAB" in err


@pytest.mark.parametrize(
    "flags", [["--name", "other"], ["--datapath", "user"], ["--region", "eu-west-1"], ["--cli"]]
)
def test_into_refuses_lab_flags(flags, capsys, labs):
    labs("net")
    code, _, err = run(capsys, "up", IMPORT, "--into", "net", *flags)
    assert code == 2
    assert flags[0] in err


@pytest.mark.parametrize("bad", ["1abc", "a_b", "a" * 129, "-x"])
def test_into_refuses_bad_stack_names(bad, capsys, labs):
    labs("net")
    code, _, err = run(capsys, "up", IMPORT, "--into", "net", f"--stack-name={bad}")
    assert code == 2
    assert "bad stack name" in err


def test_into_a_lab_that_does_not_run(capsys, labs):
    labs("net", alive=False)
    code, _, err = run(capsys, "up", IMPORT, "--into", "net")
    assert code == 2
    assert "lab 'net' is not running" in err
    code, _, err = run(capsys, "up", IMPORT, "--into", "NET")
    assert code == 2
    assert "bad lab name" in err


def test_into_a_taken_stack_name(capsys, labs):
    labs("net", stacks=STACKS)
    code, _, err = run(capsys, "up", IMPORT, "--into", "net", "--stack-name", "app")
    assert code == 2
    assert "Stack [app] already exists" in err


@pytest.fixture
def holder_asks(monkeypatch):
    """The requests the Lab API sends to the holder (a fake one that refuses them all, as
    a holder refuses bad input: exit 2, message passed on)."""
    asked: list[dict] = []

    def ask_holder(name, request, reply_type, timeout=15.0):
        asked.append(dict(request))
        raise api.BadInput(f"holder says no to {request['op']}")

    monkeypatch.setattr(api, "ask_holder", ask_holder)
    return asked


def test_into_asks_the_holder(capsys, labs, holder_asks):
    labs("net", stacks=STACKS)
    code, _, err = run(capsys, "up", IMPORT, "--into", "net", "--stack-name", "app2")
    assert code == 2
    assert "holder says no to create_stack" in err
    # The default stack name is the template's stem, not cut to 7 characters.
    code, _, err = run(capsys, "up", IMPORT, "--into", "net")
    assert code == 2
    assert [(a["op"], a["name"]) for a in holder_asks] == [
        ("create_stack", "app2"),
        ("create_stack", "two-stacks-import"),
    ]
    assert os.path.isabs(holder_asks[0]["template"])


def test_down_stack_exit_codes(capsys, labs, holder_asks):
    labs("net", stacks=STACKS)
    code, _, err = run(capsys, "down", "net", "other", "--stack", "app")
    assert code == 2
    assert "2 lab names" in err
    code, _, err = run(capsys, "down", "net", "--stack", "nosuch")
    assert code == 2
    assert "Stack with id nosuch does not exist" in err
    code, _, err = run(capsys, "down", "net", "--stack", "app")
    assert code == 2
    assert "holder says no to delete_stack" in err
    assert holder_asks == [{"op": "delete_stack", "name": "app"}]
    # A lab that is not running has no stack to delete.
    labs("old", alive=False)
    code, _, err = run(capsys, "down", "old", "--stack", "old")
    assert (code, "is not running" in err) == (2, True)


def test_lab_api_asks_the_holder(labs, holder_asks):
    labs("net", stacks=STACKS)
    lab = Lab("net")
    from testbed.errors import BadInput

    with pytest.raises(BadInput, match="create_stack"):
        lab.create_stack(IMPORT, {"NetworkStack": "net"}, name="app2")
    with pytest.raises(BadInput, match="delete_stack"):
        lab.delete_stack("app")
    assert holder_asks[0]["params"] == {"NetworkStack": "net"}
    assert [s["name"] for s in lab.stacks()] == ["net", "app"]
    assert lab.stack("app")["outputs"] == {"AppPrivateIp": "10.0.0.5"}
    with pytest.raises(BadInput, match="Stack with id x does not exist"):
        lab.stack("x")


# ---- testbed stacks -------------------------------------------------------------------------


def test_stacks_json_from_state(capsys, labs):
    labs("net", stacks=STACKS)
    code, out, _ = run(capsys, "stacks", "net", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["net", "app"]
    assert rows[0]["exports"] == {
        "net-VpcId": {"value": "vpc-VPC", "imported_by": []},
        "net-PublicSubnet": {"value": "subnet-PublicSubnet", "imported_by": ["app"]},
        "net-WebSecurityGroup": {"value": "sg-WebSecurityGroup", "imported_by": ["app"]},
    }
    assert rows[1]["params"] == {"NetworkStack": "net", "VpcId": "vpc-VPC"}
    assert set(rows[1]) == {
        "name",
        "status",
        "created",
        "updated",
        "template",
        "params",
        "outputs",
        "exports",
    }


def test_stacks_of_a_lab_with_one_stack(labs):
    """A lab without "stacks" in its state (one made by testbed up) has one stack named after it."""
    state = {"state": "CREATE_COMPLETE", "created": 1.0, "outputs": {"A": "b"}, "template": "t"}
    [row] = stacks_of("web", state)
    assert row["name"] == "web"
    assert row["status"] == "CREATE_COMPLETE"
    assert row["outputs"] == {"A": "b"}
    assert row["exports"] == {}


def test_stacks_text(capsys, labs):
    labs("net", stacks=STACKS)
    code, out, _ = run(capsys, "stacks", "net")
    assert code == 0
    text = stacks_text(stacks_of("net", {"stacks": STACKS}))
    assert out.strip() == text.strip()
    lines = text.splitlines()
    assert lines[0].split() == ["STACK", "STATUS", "CREATED", "UPDATED", "OUTPUTS", "EXPORTS"]
    subnet = next(line for line in lines if line.startswith("net-PublicSubnet"))
    assert subnet.split() == ["net-PublicSubnet", "subnet-PublicSubnet", "net", "app"]
    vpc = next(line for line in lines if line.startswith("net-VpcId"))
    assert vpc.split()[-1] == "-"


def test_stacks_of_unknown_lab(capsys, labs):
    code, _, err = run(capsys, "stacks", "nolab")
    assert code == 2
    assert "no lab named 'nolab'" in err


def test_stack_name_rules():
    assert naming.validate_stack_name("a") == "a"
    assert naming.validate_stack_name("Spoke-1") == "Spoke-1"
    assert naming.validate_stack_name("a" * 128) == "a" * 128
    assert naming.stack_name_from_template("templates/two-stacks-import.yaml") == (
        "two-stacks-import"
    )
    assert naming.stack_name_from_template("x/1_my.stack.yaml") == "mystack"
    assert naming.stack_name_from_template("x/123.yaml") == "stack"
