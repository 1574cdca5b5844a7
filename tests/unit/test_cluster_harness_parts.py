"""The server harness's pure parts: underlay choice, ssh argv, OVS paths, sshd settings."""

from __future__ import annotations

import ipaddress
import shlex
from pathlib import Path

from testbed.cluster.harness import SSHD_CONFIG, UNDERLAY, Server, pick_subnet

NET = ipaddress.IPv4Network


def test_underlay_is_outside_every_lab_and_machine_range_here():
    # Lab templates use 10/8, 172.31/16, 198.51.100/24, 203.0.113/24; this machine 192.0.2/24;
    # the capability probe 198.18/16.
    for used in ("10.0.0.0/8", "172.16.0.0/12", "198.51.100.0/24", "203.0.113.0/24",
                 "192.0.2.0/24", "198.18.0.0/16", "169.254.0.0/16"):  # fmt: skip
        assert not UNDERLAY.overlaps(NET(used))


def test_pick_subnet_skips_taken_and_overlapping_ones():
    assert pick_subnet(set(), []) == NET("198.19.1.0/24")
    assert pick_subnet({"198.19.1.0/24", None}, []) == NET("198.19.2.0/24")
    used = [NET("198.19.1.7/32"), NET("198.19.2.0/23")]  # an address, a route over 2 and 3
    assert pick_subnet(set(), used) == NET("198.19.4.0/24")
    assert pick_subnet(set(), [NET("198.16.0.0/12")]) is None  # a route covering it all


def test_ssh_argv_quotes_a_list_for_the_remote_shell():
    s = Server("srv1", "198.19.1.11", "tb-sh0001-srv1", Path("/x/srv1"), Path("/x/ssh_config"))
    argv = s.ssh_argv(["sh", "-c", "echo 'a b'; true"])
    assert argv[:4] == ["ssh", "-F", "/x/ssh_config", "srv1"]
    assert shlex.split(argv[4]) == ["sh", "-c", "echo 'a b'; true"]
    assert s.ssh_argv("ovs-vsctl show")[-1] == "ovs-vsctl show"


def test_ovs_of_a_server_is_reached_through_its_own_run_directory():
    s = Server("srv2", "198.19.1.12", "tb-sh0001-srv2", Path("/h/srv2"), Path("/h/ssh_config"))
    assert s.ovs_db == "unix:/h/srv2/run/openvswitch/db.sock"
    assert s.ovs_env["OVS_RUNDIR"] == "/h/srv2/run/openvswitch"
    assert "/run/openvswitch" not in set(s.ovs_env.values())


def test_sshd_takes_the_harness_key_only_and_allows_tunnels():
    text = SSHD_CONFIG.format(name="srv1", address="198.19.1.11")
    settings = dict(line.split(None, 1) for line in text.splitlines() if line[:1].isalpha())
    assert settings["ListenAddress"] == "198.19.1.11"
    assert settings["PasswordAuthentication"] == "no"
    assert settings["KbdInteractiveAuthentication"] == "no"
    assert settings["PermitRootLogin"] == "prohibit-password"
    assert settings["PermitTunnel"] == "yes"  # Cluster Edition's ssh Ethernet tunnels
    assert int(settings["MaxStartups"].split(":")[0]) >= 100  # one ssh per remote node


def test_doctor_says_whether_the_harness_can_run(monkeypatch):
    from testbed.cli import doctor

    monkeypatch.setattr(doctor, "missing_tools", list)
    assert doctor._harness_row()[1] == "yes"
    monkeypatch.setattr(doctor, "missing_tools", lambda: ["/usr/sbin/sshd (openssh-server)"])
    _name, result, note = doctor._harness_row()
    assert result == "no"
    assert "openssh-server" in note


def test_testbed_clean_also_removes_abandoned_harnesses(monkeypatch, capsys):
    from testbed.cli import lifecycle, main
    from testbed.cluster.harness import HarnessReport

    removed = HarnessReport(processes=[1, 2], namespaces=["tb-sh0001-srv1"], files=["/x"])
    monkeypatch.setattr(lifecycle, "list_labs", list)
    monkeypatch.setattr(lifecycle, "clean_abandoned", lambda: {"sh0001": removed})
    assert main(["clean"]) == 0
    assert (
        "cleaned server harness sh0001: removed 2 processes, 1 namespaces"
        in capsys.readouterr().out
    )
    monkeypatch.setattr(lifecycle, "clean_abandoned", dict)
    assert main(["clean"]) == 0
    assert capsys.readouterr().out == "nothing to clean\n"
