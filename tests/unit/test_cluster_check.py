"""`testbed cluster check`: --servers parsing, the probe's facts and the verdict (no ssh, no
root: the facts are given as a server would print them)."""

from __future__ import annotations

import pytest

from testbed.cli import main
from testbed.cli.common import table
from testbed.cluster.check import (
    PROBE_SCRIPT,
    ServerResult,
    common_tunnel,
    parse_facts,
    report_text,
    summarize,
)
from testbed.cluster.servers import ServerSpec, parse_servers
from testbed.errors import BadInput

# What the probe prints on one of this machine's harness servers.
GOOD = """\
user=root
hostname=srv1
kernel=6.1.0
root=root
mnexec=2.3.0-1
ovs=3.1.0
ovs_running=yes
haproxy=2.6.12-1+deb12u4
snmpd=5.9.3
tunnel_vxlan=ok
tunnel_gretap=Error: Unknown device type.
reach=ok
done=yes
"""


def server(zone: str = "us-east-1a", facts: str = GOOD, ssh: str = "ok", **changes: str):
    f = parse_facts(facts)
    f.update(changes)
    return ServerResult(zone, "srv1", address="198.19.1.11", front_end="198.19.1.1:6653",
                        ssh=ssh, facts=f)  # fmt: skip


# -- --servers ----------------------------------------------------------------------------
def test_servers_in_order_with_users_and_aliases():
    specs = parse_servers("us-east-1a=srv1, us-east-1b=admin@10.0.0.12,eu-west-3c=host.example")
    assert specs == [
        ServerSpec("us-east-1a", "srv1"),
        ServerSpec("us-east-1b", "admin@10.0.0.12"),
        ServerSpec("eu-west-3c", "host.example"),
    ]
    assert specs[1].user == "admin"
    assert specs[0].user is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("  ", "empty"),
        ("us-east-1a", "no '='"),
        ("us-east-1a=srv1,us-east-1b", "no '='"),
        ("us-east-1a=srv1,,us-east-1b=srv2", "empty entry"),
        ("=srv1", "needs a zone and a host"),
        ("us-east-1a=", "needs a zone and a host"),
        ("US-East-1a=srv1", "bad availability zone"),
        ("us east=srv1", "bad availability zone"),
        ("us-east-1a=-oProxyCommand=sh", "not starting with '-'"),
        ("us-east-1a=srv1;reboot", "bad host"),
        ("us-east-1a=a b", "bad host"),
        ("us-east-1a=srv1,us-east-1a=srv2", "given twice"),
    ],
)
def test_malformed_servers_say_what_is_wrong(text, says):
    with pytest.raises(BadInput) as e:
        parse_servers(text)
    assert says in str(e.value)
    assert "ZONE=HOST" in str(e.value)  # the hint shows the form


def test_two_zones_may_share_a_server():
    assert [s.host for s in parse_servers("us-east-1a=srv1,us-east-1b=srv1")] == ["srv1"] * 2


@pytest.mark.parametrize("value", ["us-east-1a=srv1,us-east-1b", "", "a=srv1,a=srv2"])
def test_cli_exit_code_2_on_malformed_servers(value, capsys):
    assert main(["cluster", "check", "--servers", value]) == 2
    assert "--servers" in capsys.readouterr().err


def test_cli_exit_code_2_on_other_bad_input(tmp_path, capsys):
    assert main(["cluster", "check", "--servers", "a=h", "--ssh-config", str(tmp_path / "x")]) == 2
    assert main(["cluster", "check", "--servers", "a=h", "--port", "70000"]) == 2
    assert main(["cluster", "check", "--servers", "a=h", "--front-end", "srv1"]) == 2
    assert main(["cluster", "check", "--servers", "a=h", "--front-end", "192.0.2.254"]) == 2
    assert "not an address of this machine" in capsys.readouterr().err
    assert main(["cluster", "clean", "Bad_Name"]) == 2


def test_help_teaches(capsys):
    with pytest.raises(SystemExit) as e:
        main(["cluster", "check", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for words in ("--servers us-east-1a=", "exit codes", "gretap", "BatchMode", "sudo"):
        assert words in out


# -- the probe's facts ---------------------------------------------------------------------
def test_facts_ignore_banners_and_keep_values_with_equals():
    facts = parse_facts("Welcome!\n\nuser=root\nreach=bash: connect: x=1 refused\nnot a fact\n")
    assert facts == {"user": "root", "reach": "bash: connect: x=1 refused"}


def test_probe_script_checks_every_fact_the_verdict_reads():
    for key in ("user", "root", "mnexec", "ovs", "ovs_running", "haproxy", "snmpd",
                "tunnel_$kind", "reach", "done"):  # fmt: skip
        assert f"say {key} " in PROBE_SCRIPT or f'say "{key}" ' in PROBE_SCRIPT
    # The test devices are created and deleted, under the lab-style prefix given ($1).
    assert 'ip link add "$dev"' in PROBE_SCRIPT
    assert 'ip link del "$dev"' in PROBE_SCRIPT
    assert '"${pre}vx" type vxlan' in PROBE_SCRIPT
    assert '"${pre}gt" type gretap' in PROBE_SCRIPT


# -- verdicts -------------------------------------------------------------------------------
def test_a_good_server_without_gretap_is_ok_with_a_note():
    r = server()
    report = summarize([r])
    assert r.ok
    assert report.ok
    assert r.notes == ["gretap: Error: Unknown device type."]
    assert report.tunnel == "vxlan"


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"root": "none", "user": "bob"}, "user bob is not root and cannot sudo"),
        ({"mnexec": "missing"}, "mnexec missing"),
        ({"ovs": "missing"}, "ovs missing"),
        ({"ovs_running": "no"}, "Open vSwitch does not answer"),
        ({"haproxy": "missing"}, "haproxy missing"),
        ({"snmpd": "missing"}, "snmpd missing"),
        ({"tunnel_vxlan": "RTNETLINK answers: Operation not permitted"}, "no tunnel device"),
        ({"reach": "bash: connect: Connection refused"}, "cannot reach the front end"),
        ({"done": ""}, "did not run to its end"),
    ],
)
def test_each_failed_check_fails_the_server(changes, problem):
    r = server(**changes)
    report = summarize([r])
    assert not r.ok
    assert not report.ok
    assert any(problem in p for p in r.problems), r.problems


def test_sudo_without_password_is_enough():
    assert server(root="sudo", user="bob").ok


def test_an_ssh_failure_is_one_problem_and_nothing_else_judged():
    r = server(facts="", ssh="connect to host 10.0.0.9 port 22: No route to host")
    summarize([r])
    assert r.problems == ["ssh: connect to host 10.0.0.9 port 22: No route to host"]


def test_gretap_is_preferred_when_every_server_has_it():
    both = [server(tunnel_gretap="ok"), server("us-east-1b", tunnel_gretap="ok")]
    assert common_tunnel(both) == "gretap"
    mixed = [server(tunnel_gretap="ok"), server("us-east-1b")]
    assert common_tunnel(mixed) == "vxlan"


def test_servers_without_a_common_tunnel_fail_together():
    a = server(tunnel_gretap="ok", tunnel_vxlan="Error: Unknown device type.")
    b = server("us-east-1b")  # vxlan only
    report = summarize([a, b])
    assert a.ok
    assert b.ok
    assert not report.ok
    assert report.tunnel is None
    assert "no tunnel type" in report.problems[0]


def test_an_unreachable_server_does_not_blame_the_tunnels_of_the_others():
    report = summarize([server(), server("us-east-1b", facts="", ssh="Connection refused")])
    assert report.tunnel == "vxlan"
    assert report.problems == []
    assert not report.ok


def test_report_text_gives_a_verdict_per_server_and_overall():
    good, bad = server(), server("us-east-1b", snmpd="missing")
    text = report_text(summarize([good, bad]), table)
    lines = text.splitlines()
    assert lines[0].split()[0] == "ZONE"
    assert lines[0].split()[-1] == "VERDICT"
    assert lines[1].split()[-1] == "OK"
    assert lines[2].split()[-1] == "FAIL"
    assert "us-east-1b (srv1): FAIL: snmpd missing" in text
    assert "note: gretap: Error: Unknown device type." in text
    assert lines[-1] == "verdict: FAIL (us-east-1b cannot carry a zone)"
    assert report_text(summarize([good]), table).splitlines()[-1].startswith("verdict: OK")


def test_json_has_versions_tunnels_and_verdicts():
    d = summarize([server()]).as_dict()
    assert d["ok"] is True
    assert d["tunnel"] == "vxlan"
    s = d["servers"][0]
    assert s["versions"] == {"mnexec": "2.3.0-1", "ovs": "3.1.0",
                             "haproxy": "2.6.12-1+deb12u4", "snmpd": "5.9.3"}  # fmt: skip
    assert s["tunnels"] == {"gretap": "Error: Unknown device type.", "vxlan": "ok"}
    assert s["ok"] is True
