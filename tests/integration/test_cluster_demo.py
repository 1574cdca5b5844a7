"""`testbed cluster demo` (issue 18): a two-AZ NLB lab across two harness servers on this
machine, traffic across the VXLAN tunnel, cross-zone balancing, client IP preservation, and
nothing left on any server afterwards."""

from __future__ import annotations

import pytest

from testbed.cluster.demo import DemoResult, run_demo
from tests.harness_support import require_harness

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo() -> tuple[DemoResult, list[str]]:
    require_harness()
    lines: list[str] = []
    result = run_demo(say=lines.append, requests=24, measure=True)
    return result, lines


def test_each_az_runs_on_its_own_server(demo):
    result, lines = demo
    assert result.servers == {"us-east-1a": "srv1", "us-east-1b": "srv2"}
    text = "\n".join(lines)
    for host, server in (("WebA1", "srv1"), ("WebB1", "srv2"), ("Client1", "localhost")):
        placed = [x for x in lines if x.split()[:1] == [host] and x.endswith(f"on {server}")]
        assert placed, f"{host} not on {server}:\n{text}"
    assert result.tunnel.startswith(("vxlan", "gre"))
    assert "1450" in result.mtu


def test_cross_zone_balancing_crosses_the_tunnel_and_keeps_the_client_address(demo):
    result, _ = demo
    assert result.cross_zone, result.answered_by
    assert set(result.answered_by_server) == {"srv1", "srv2"}
    assert result.client_ip_preserved, result.client_ips
    assert sum(result.answered_by.values()) == result.requests


def test_rtt_and_throughput_are_measured_both_ways(demo):
    result, _ = demo
    assert set(result.rtt_ms) == {"same server", "across servers"}
    assert result.rtt_ms["across servers"] > 0
    assert set(result.throughput_mbps) == {"same server", "across servers"}


def test_nothing_is_left_on_any_server(demo):
    result, _ = demo
    assert result.left_over == []
