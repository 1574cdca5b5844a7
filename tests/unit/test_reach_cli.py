"""`testbed reach`: its parser, its choices of protocol, sources and destinations, and the
listing it prints (--expected-only on a lab directory written by hand: no root, no packets)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from testbed.cli import build_parser, main
from testbed.cli import reach as reach_cli
from testbed.errors import BadInput
from testbed.lab import reachability
from testbed.plan.network import SecurityGroupPlan, SgRulePlan, build_plan
from tests.handmade import two_az_model


def parse(*argv: str):
    return build_parser().parse_args(["reach", *argv])


def test_parser_defaults_and_flags():
    args = parse("web")
    assert (args.name, args.proto, args.port, args.source, args.target) == (
        "web",
        None,
        None,
        None,
        None,
    )
    assert not args.expected_only
    args = parse("web", "--port", "80", "--proto", "udp", "--from", "Client1", "--to", "WebA1")
    assert (args.proto, args.port, args.source, args.target) == ("udp", 80, "Client1", "WebA1")
    assert parse("web", "--expected-only").expected_only


@pytest.mark.parametrize("bad", [["--port", "0"], ["--port", "70000"], ["--port", "x"]])
def test_parser_refuses_bad_ports(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        parse("web", *bad)
    assert exc.value.code == 2
    assert "port" in capsys.readouterr().err


def test_parser_refuses_unknown_protocol():
    with pytest.raises(SystemExit):
        parse("web", "--proto", "sctp")


def test_protocol_and_port_defaults():
    assert reach_cli.protocol_and_port(None, None) == ("icmp", None)
    assert reach_cli.protocol_and_port(None, 22) == ("tcp", 22)
    assert reach_cli.protocol_and_port("tcp", None) == ("tcp", 80)
    assert reach_cli.protocol_and_port("udp", None) == ("udp", 9000)
    with pytest.raises(BadInput, match="does not apply to icmp"):
        reach_cli.protocol_and_port("icmp", 80)


def test_help_teaches_with_examples(capsys):
    with pytest.raises(SystemExit):
        main(["reach", "--help"])
    out = capsys.readouterr().out
    assert "testbed reach web --port 80" in out
    assert "reply:nacl" in out
    assert "exit status" in out


def plan_with_groups():
    plan = build_plan(two_az_model(), "t")
    web = SecurityGroupPlan(
        "WebSG", "sg-web", "VPC", ingress=(SgRulePlan(6, 80, 80, cidr="0.0.0.0/0"),)
    )
    hosts = tuple(
        replace(h, groups=("WebSG",), sg_zone=64) if h.name == "WebA1" else h for h in plan.hosts
    )
    return replace(plan, hosts=hosts, security_groups=(web,))


def test_sources_and_targets_selection():
    plan = plan_with_groups()
    assert [h.name for h in reach_cli.sources(plan, "Client1")] == ["Client1"]
    with pytest.raises(BadInput, match="not a source host"):
        reach_cli.sources(plan, "LabDNS")
    assert {a.ip for a in reach_cli.targets(plan, "WebA1")} == {"10.0.0.4", "203.0.113.10"}
    assert [a.owner for a in reach_cli.targets(plan, "203.0.113.10")] == ["WebA1"]
    assert [a.ip for a in reach_cli.targets(plan, "10.0.0.2")] == ["10.0.0.2"]  # any address
    with pytest.raises(BadInput, match="neither an address nor a host"):
        reach_cli.targets(plan, "Nope")


def test_listing_marks_differences():
    plan = plan_with_groups()
    dsts = reach_cli.targets(plan, "WebA1")
    want = reachability.verdicts(plan, "tcp", 22, reach_cli.sources(plan, "Client1"), dsts)
    got = dict.fromkeys(want, True)
    text = reach_cli.format_listing(dsts, want, got, 22)
    lines = text.splitlines()
    assert lines[0].split() == ["FROM", "TO", "AWS", "LAB", "WHY"]
    public = next(line for line in lines if "203.0.113.10:22" in line)
    assert "dropped: sg-ingress" in public
    assert "passes !" in public
    assert "security group ingress (WebSG)" in public
    private = next(line for line in lines if "10.0.0.4:22" in line)
    assert "dropped: route" in private
    assert "private address" in private


def test_expected_only_on_a_lab_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path))
    lab = tmp_path / "t"
    lab.mkdir()
    (lab / "lab.json").write_text(json.dumps({"name": "t", "hosts": []}))
    (lab / "plan.json").write_text(plan_with_groups().to_json())
    assert main(["reach", "t", "--port", "80", "--from", "Client1", "--expected-only"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "203.0.113.10:80" in x)
    assert line.split()[4] == "passes"  # Client1, WebA1, (public), address, verdict
    assert "LAB" not in out.splitlines()[0]
    assert main(["reach", "nolab", "--expected-only"]) == 2
    assert "no lab named" in capsys.readouterr().err
