"""The pieces of a lab on other servers that need no server (topologies.cluster; issue 18)."""

from __future__ import annotations

import pytest

from testbed.errors import LabError
from testbed.topologies import cluster
from testbed.topologies.cluster import ServerAccess, choose_tunnel, vxlan_commands


def test_vxlan_link_commands_have_cluster_editions_shape_with_type_vxlan():
    cmds = vxlan_commands("tb-m-p1", 4242, "10.9.0.1", "10.9.0.2", 1450)
    assert cmds[1] == (
        "ip link add tb-m-p1 type vxlan id 4242 remote 10.9.0.2 local 10.9.0.1 dstport 4789"
    )
    assert cmds[2] == "ip link set dev tb-m-p1 mtu 1450 up"


def test_gre_where_every_server_has_gretap_else_vxlan_else_ssh():
    assert choose_tunnel({"a": ("gre", "vxlan", "ssh"), "b": ("gre", "vxlan")})[0] == "gre"
    kind, why = choose_tunnel({"localhost": ("vxlan", "ssh"), "b": ("gre", "vxlan", "ssh")})
    assert kind == "vxlan"
    assert "no gretap on localhost" in why
    assert choose_tunnel({"a": ("ssh",), "b": ("vxlan", "ssh")})[0] == "ssh"
    with pytest.raises(LabError, match="no tunnel kind"):
        choose_tunnel({"a": ("gre",), "b": ("vxlan",)})


def test_a_server_is_reached_by_ssh_in_batch_mode_with_the_labs_config_and_no_sudo():
    access = ServerAccess("srv-a", "10.9.0.2", ssh_config="/x/ssh_config", ovs_env={"A": "b c"})
    argv = access.argv("ovs-vsctl show")
    assert argv[0] == "ssh"
    assert "BatchMode=yes" in argv
    assert argv[argv.index("-F") + 1] == "/x/ssh_config"
    assert argv[-2] == "srv-a"
    assert argv[-1] == "export A='b c' ; ovs-vsctl show"
    assert "sudo" not in argv
    assert "-tt" in access.ssh(tty=True)
    local = ServerAccess("localhost", "127.0.0.1")
    assert local.argv("true") == ["sh", "-c", "true"]


def test_clean_and_probe_scripts_touch_only_the_labs_prefix():
    script = cluster.clean_script("m")
    assert "grep '^'tb-m-" in script
    for never in ("mn -c", "killall", "pkill"):
        assert never not in script
    assert "tb-m-tp" in cluster.probe_script("m")
