"""cfn-init's steps in a temporary folder: files, commands, config sets, what it reports."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from testbed.lab.hosttools import cfn_init, simple
from testbed.lab.hosttools.cfn_init import Run, config_names, run_init
from testbed.lab.hosttools.context import HostContext, ToolError
from testbed.lab.signals import init_file, write_expected
from testbed.model.types import ResourceSignalPolicy


@pytest.fixture
def run(tmp_path):
    lab = tmp_path / "lab"
    lab.mkdir()
    return Run(
        root=tmp_path / "root",
        inside=(lab,),
        log=tmp_path / "cfn-init.log",
        command_log=tmp_path / "cmd.log",
        env=dict(os.environ, MARK="outer"),
    )


def log(run: Run) -> str:
    return run.log.read_text() if run.log and run.log.exists() else ""


def test_files_are_written_under_the_hosts_root_with_their_mode(run, tmp_path):
    inside = tmp_path / "lab" / "direct.txt"
    init = {
        "config": {
            "files": {
                "/var/www/html/index.html": {"content": "hello\n", "mode": "000600"},
                "/etc/app.json": {"content": {"port": 80}},
                "/etc/blob": {
                    "content": base64.b64encode(b"\x00\x01").decode(),
                    "encoding": "base64",
                },
                str(inside): {"content": "as is"},
                "/etc/link": {"content": "/etc/app.json", "mode": "120000"},
            }
        }
    }
    assert run_init(init, None, run) == 0
    index = tmp_path / "root/var/www/html/index.html"
    assert index.read_text() == "hello\n"
    assert stat.S_IMODE(index.stat().st_mode) == 0o600
    assert json.loads((tmp_path / "root/etc/app.json").read_text()) == {"port": 80}
    assert (tmp_path / "root/etc/blob").read_bytes() == b"\x00\x01"
    assert inside.read_text() == "as is"
    assert os.readlink(tmp_path / "root/etc/link") == "/etc/app.json"
    assert f"/var/www/html/index.html: written as {index}" in log(run)


def test_a_file_from_a_url_is_reported_not_fetched(run, tmp_path):
    init = {"config": {"files": {"/tmp/x.zip": {"source": "https://example.com/x.zip"}}}}
    assert run_init(init, None, run) == 0
    assert "not emulated: no internet" in log(run)
    assert not (tmp_path / "root/tmp/x.zip").exists()


def test_unknown_owner_is_reported_and_not_fatal(run, tmp_path):
    spec = {"content": "x", "owner": "no-such-user-zz", "group": "no-such-group-zz"}
    assert run_init({"config": {"files": {"/f": spec}}}, None, run) == 0
    assert (tmp_path / "root/f").read_text() == "x"
    assert "owner/group no-such-user-zz:no-such-group-zz not applied" in log(run)


def test_commands_run_in_name_order_with_cwd_env_and_test(run, tmp_path):
    out = tmp_path / "order"
    work = tmp_path / "work"
    work.mkdir()
    commands = {
        "b": {"command": f"echo b-$MARK >> {out}"},
        "a": {"command": f"echo a-$MARK >> {out}"},
        "c_env": {"command": f"echo c-$MARK-${{ONLY:-none}} >> {out}", "env": {"ONLY": "1"}},
        "d_cwd": {"command": ["sh", "-c", f"pwd >> {out}"], "cwd": str(work)},
        "e_test": {"command": f"echo never >> {out}", "test": "false"},
    }
    assert run_init({"config": {"commands": commands}}, None, run) == 0
    # env replaces the environment (AWS): MARK is gone in c_env.
    assert out.read_text().splitlines() == ["a-outer", "b-outer", "c--1", str(work)]
    assert "command e_test: test exited 1, skipped" in log(run)


def test_a_failing_command_stops_cfn_init_unless_ignored(run, tmp_path):
    out = tmp_path / "ran"
    commands = {
        "1": {"command": "exit 4", "ignoreErrors": "true"},
        "2": {"command": "echo failing; exit 3"},
        "3": {"command": f"touch {out}"},
    }
    assert run_init({"config": {"commands": commands}}, None, run) == 1
    assert not out.exists()
    assert "command 1: exited 4, error ignored" in log(run)
    assert "error: command 2 failed with exit code 3" in log(run)
    assert "failing" in run.command_log.read_text()


def test_what_the_lab_does_not_do_is_reported_and_not_fatal(run, capsys):
    config = {
        "packages": {"yum": {"httpd": [], "php": []}},
        "services": {"sysvinit": {"httpd": {"enabled": "true"}}},
        "users": {"app": {}},
        "sources": {"/opt/app": "https://example.com/app.tgz"},
    }
    assert run_init({"config": config}, None, run) == 0
    err = capsys.readouterr().err
    assert "packages not emulated in the lab (packages are not installed: httpd, php)" in err
    assert "services not emulated" in err
    assert "httpd" in err
    assert "users not emulated" in err
    assert "sources not emulated" in err


def test_config_sets_as_aws_runs_them():
    init = {
        "configSets": {"default": ["a", {"ConfigSet": "more"}], "more": ["b"], "other": "c"},
        "a": {},
        "b": {},
        "c": {},
        "config": {},
    }
    assert config_names(init, None) == ["a", "b"]
    assert config_names(init, "other,more") == ["c", "b"]
    assert config_names({"config": {}}, None) == ["config"]
    assert config_names({"x": {}}, None) == []
    with pytest.raises(ToolError, match="configSet 'nope' does not exist"):
        config_names(init, "nope")
    with pytest.raises(ToolError, match="includes itself"):
        config_names({"configSets": {"loop": [{"ConfigSet": "loop"}]}}, "loop")


def test_configs_run_in_set_order_and_stop_at_the_first_failure(run, tmp_path):
    out = tmp_path / "out"
    init = {
        "configSets": {"all": ["one", "two", "three"]},
        "one": {"commands": {"x": {"command": f"echo one >> {out}"}}},
        "two": {"commands": {"x": {"command": "false"}}},
        "three": {"commands": {"x": {"command": f"echo three >> {out}"}}},
    }
    assert run_init(init, "all", run) == 1
    assert out.read_text() == "one\n"


def test_cfn_init_program_reads_the_resource_metadata(tmp_path, capsys):
    lab_dir = tmp_path / "lab7"
    write_expected(lab_dir, "lab7", {"Web": ResourceSignalPolicy(1, 300)})
    path = init_file(lab_dir, "Web")
    path.parent.mkdir(parents=True)
    marker = tmp_path / "ran"
    path.write_text(json.dumps({"config": {"commands": {"a": {"command": f"touch {marker}"}}}}))
    ctx = HostContext("lab7", None, lab_dir)
    assert cfn_init.main(["-v", "-s", "lab7", "-r", "Web", "--region", "us-east-1"], ctx) == 0
    assert marker.exists()
    assert cfn_init.main(["-s", "lab7", "-r", "Db"], ctx) == 1
    assert "resource Db has no AWS::CloudFormation::Init metadata" in capsys.readouterr().err
    assert cfn_init.main(["-s", "other", "-r", "Web"], ctx) == 1
    assert (
        simple.get_metadata(
            ["-s", "lab7", "-r", "Web", "-k", "AWS::CloudFormation::Init.config.commands"], ctx
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out) == {"a": {"command": f"touch {marker}"}}
