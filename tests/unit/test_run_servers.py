"""`testbed run EXP --servers` (issue 18): the run-wide setting start_lab reads, what it
refuses before anything is built, and meta.json's across_servers. No lab is built here."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from testbed.cli import main
from testbed.errors import BadInput
from testbed.lab import api, run_servers
from testbed.lab.run_servers import RunServers, across_servers
from testbed.model import load_model
from testbed.paths import REPO
from testbed.plan.network import build_plan
from testbed.results import run_experiment

TEMPLATES = REPO / "templates"
IMDS = REPO / "tests" / "integration" / "templates" / "imds.yaml"
TWO = {"us-east-1a": "srv1", "us-east-1b": "srv2"}


def _model_plan(path: Path):
    model = load_model(str(path), {}, stack_name="u1")
    return model, build_plan(model, "u1")


def test_the_setting_holds_for_the_block_only():
    setting = RunServers(TWO, None, experiment="x")
    assert run_servers.current() is None
    with across_servers(setting) as held:
        assert held is setting
        assert run_servers.current() is setting
        with pytest.raises(RuntimeError), across_servers(RunServers(TWO)):
            pass
        assert run_servers.current() is setting
    assert run_servers.current() is None
    with across_servers(None) as held:
        assert held is None
        assert run_servers.current() is None


def test_the_setting_is_cleared_when_the_run_fails():
    with pytest.raises(ValueError, match="boom"), across_servers(RunServers(TWO)):
        raise ValueError("boom")
    assert run_servers.current() is None


def test_a_plain_nlb_template_is_not_refused():
    model, plan = _model_plan(TEMPLATES / "nlb.yaml")
    assert not any("metadata" in r for r in run_servers.refusals(model, plan, None))


def test_auto_scaling_is_no_longer_refused():
    # Instances launched while the lab runs are made on their AZ's server (issue 18).
    model, plan = _model_plan(TEMPLATES / "autoscaling.yaml")
    assert model.auto_scaling_groups
    assert run_servers.refusals(model, plan, None) == []
    run_servers.check(RunServers(TWO, experiment="bench_asg"), model, plan, None, "t.yaml")


def test_userdata_asking_the_metadata_service_runs_across_servers():
    # Each server runs its own metadata service (testbed.lab.imds.remote).
    model, plan = _model_plan(IMDS)
    assert any("169.254.169.254" in (i.user_data or "") for i in model.instances.values())
    assert not any("metadata" in r for r in run_servers.refusals(model, plan, None))


def test_the_switch_gwlb_datapath_is_refused_and_auto_becomes_the_node():
    model, plan = _model_plan(TEMPLATES / "gwlb.yaml")
    assert run_servers.refusals(model, plan, "node") == []
    assert any("switch GWLB datapath" in r for r in run_servers.refusals(model, plan, "switch"))
    assert run_servers.gwlb_datapath_for(plan, None) == "node"
    assert run_servers.gwlb_datapath_for(plan, "auto") == "node"
    assert run_servers.gwlb_datapath_for(plan, "switch") == "switch"
    _, nlb = _model_plan(TEMPLATES / "nlb.yaml")
    assert run_servers.gwlb_datapath_for(nlb, None) is None


def test_start_lab_reads_the_setting_and_refuses_before_building(monkeypatch, tmp_path):
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path))
    launched = []
    monkeypatch.setattr(api, "_launch_holder", lambda *a: launched.append(a))
    with across_servers(RunServers({"us-east-1a": "srv1"}, experiment="autoscale")):
        # The run's servers leave an AZ of the template without one: refused, nothing built.
        with pytest.raises(BadInput, match="no server for"):
            api.start_lab(str(TEMPLATES / "autoscaling.yaml"), name="u2")
        # An AZ of the template without a server: refused too, before anything.
        with across_servers(None), pytest.raises(BadInput, match="no server for"):
            api.start_lab(str(TEMPLATES / "nlb.yaml"), name="u3", servers={"us-east-1a": "srv1"})
    assert launched == []
    assert not any(p.is_dir() for p in tmp_path.iterdir())  # no lab folder


def test_the_lab_placement_goes_into_the_setting():
    setting = RunServers(TWO, "/tmp/ssh", experiment="cross_zone")
    setting.note_lab(
        "ecz12",
        {
            "servers": {"WebA1": "srv1", "WebB1": "srv2", "Client1": "localhost", "s1": "srv1"},
            "tunnel": "vxlan",
            "tunnel_reason": "no gretap",
            "mtu": "vxlan adds 50 bytes: inter-AZ path MTU 1450",
        },
    )
    meta = setting.to_meta()
    assert meta["servers"] == TWO
    assert meta["front_end"] == "localhost"
    assert meta["ssh_config"] == "/tmp/ssh"
    assert meta["tunnel"] == ["vxlan"]
    assert meta["labs"][0]["nodes_by_server"] == {"localhost": 1, "srv1": 2, "srv2": 1}


def _module(template: str | None, seen: list) -> types.ModuleType:
    module = types.ModuleType("fake_experiment")
    module.PARAMS = {"n": (1, "a number")}  # type: ignore[attr-defined]
    module.TEMPLATE = template  # type: ignore[attr-defined]

    def run(params, results):
        seen.append(run_servers.current())
        return {"n": params["n"]}

    module.run = run  # type: ignore[attr-defined]
    return module


def test_run_experiment_holds_the_servers_and_records_them(tmp_path):
    seen: list = []
    setting = RunServers(TWO, None)
    path = run_experiment(_module(None, seen), "fake", {}, out=str(tmp_path), servers=setting)
    assert seen == [setting]
    assert setting.experiment == "fake"
    assert run_servers.current() is None
    meta = json.loads((path / "meta.json").read_text())
    assert meta["across_servers"]["servers"] == TWO
    assert meta["end"] is not None
    assert meta["summary"] == {"n": 1}
    plain = run_experiment(_module(None, seen), "fake", {}, out=str(tmp_path))
    assert seen[-1] is None
    assert "across_servers" not in json.loads((plain / "meta.json").read_text())


def test_a_template_file_is_checked_before_the_run(tmp_path):
    seen: list = []
    wrong = RunServers({"us-east-1a": "srv1"})
    module = _module(str(TEMPLATES / "nlb.yaml"), seen)
    with pytest.raises(BadInput, match="experiment nlbx: --servers: no server for"):
        run_experiment(module, "nlbx", {}, out=str(tmp_path), servers=wrong)
    assert seen == []
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_bad_servers_with_exit_2(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert main(["run", "bench_backend", "--servers", "nonsense", "--out", out]) == 2
    assert main(["run", "bench_backend", "--ssh-config", "/nowhere", "--out", out]) == 2
    args = ["run", "bench_backend", "--servers", "us-east-1a=h1,us-east-1b=h2"]
    assert main([*args, "--ssh-config", str(tmp_path / "none"), "--out", out]) == 2
    err = capsys.readouterr().err
    assert "not AZ=HOST" in err
    assert "--ssh-config goes with --servers" in err
    assert "no such file" in err
    assert not (tmp_path / "r").exists()


def test_up_refuses_a_tunnel_rate_without_servers_or_unreadable(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path / "state"))
    nlb = str(TEMPLATES / "nlb.yaml")
    assert main(["up", nlb, "--name", "tr1", "--tunnel-rate", "10mbit"]) == 2
    servers = ["--servers", "us-east-1a=h1,us-east-1b=h2"]
    assert main(["up", nlb, "--name", "tr1", *servers, "--tunnel-rate", "fast"]) == 2
    err = capsys.readouterr().err
    assert "--tunnel-rate is for a lab across servers" in err
    assert "--tunnel-rate 'fast': a rate such as 100mbit" in err
    state = tmp_path / "state"
    assert not state.exists() or not any(p.is_dir() for p in state.iterdir())  # no lab


def test_up_refuses_the_switch_gwlb_datapath_across_servers_saying_what_is_missing(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path / "state"))
    gwlb = str(TEMPLATES / "gwlb.yaml")
    argv = ["up", gwlb, "--name", "sw1", "--servers", "us-east-1a=h1,us-east-1b=h2"]
    assert main([*argv, "--gwlb-datapath", "switch"]) == 2
    err = capsys.readouterr().err
    assert "--gwlb-datapath switch with --servers" in err
    assert "this machine's Open vSwitch only" in err
    assert "--gwlb-datapath node" in err
    _, plan = _model_plan(TEMPLATES / "gwlb.yaml")
    assert run_servers.switch_gwlb_refusal(plan, "node") is None
    assert run_servers.switch_gwlb_refusal(plan, "auto") is None
    assert run_servers.gwlb_datapath_for(plan, "auto") == "node"
    _, plan = _model_plan(TEMPLATES / "nlb.yaml")
    assert run_servers.switch_gwlb_refusal(plan, "switch") is None  # nothing to steer
    state = tmp_path / "state"
    assert not state.exists() or not any(p.is_dir() for p in state.iterdir())  # no lab
