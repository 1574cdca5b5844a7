"""The commands every lab host runs once its links exist (testbed.topologies.host_config),
the same for template hosts and for instances launched while the lab runs."""

from __future__ import annotations

from dataclasses import replace

from testbed.plan.network import HostPlan, build_plan
from testbed.topologies import host_config
from tests.handmade import two_az_model


def host(name: str = "WebA2") -> HostPlan:
    return build_plan(two_az_model(), "t").host(name)


def test_userspace_datapath_turns_tx_offload_off_on_every_interface():
    cmd, intfs = host_config.tuning(host(), userspace=True)
    assert intfs == ["eth0"]
    assert "ethtool -K eth0 tx off" in cmd
    assert "disable_ipv6=1" in cmd
    cmd, _ = host_config.tuning(host(), userspace=False)
    assert "ethtool" not in cmd


def test_secondary_addresses_and_the_resolvers_own():
    h = replace(host(), extra_ips=("10.0.1.50",))
    cmd, _ = host_config.tuning(h, userspace=False)
    assert "ip addr add 10.0.1.50/32 dev eth0" in cmd
    dns = build_plan(two_az_model(), "t").host("LabDNS")
    cmd, _ = host_config.tuning(dns, userspace=False)
    assert "ip addr flush dev eth0" in cmd
    assert "ip route replace default dev eth0" in cmd


def test_a_launched_host_gets_eth0_as_mininet_gives_a_template_host():
    h = host()
    cmd = host_config.eth0_commands(h)
    assert cmd.startswith(f"ip addr add {h.ip}/{h.prefixlen} dev eth0; ip link set eth0 up")
    assert f"ip route replace default via {h.gateway}" in cmd
    assert cmd.endswith("; ")
