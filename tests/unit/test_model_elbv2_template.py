"""templates/nlb.yaml loads to the NLB stack its text describes."""

from __future__ import annotations

import re
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from testbed.model import load_model
from testbed.model.elb_defaults import DEFAULTS
from testbed.model.elbv2_types import elbv2_sections
from testbed.model.resources.elbv2.attributes import LISTENER_ATTRIBUTES, RULES

REPO = Path(__file__).resolve().parents[2]
NLB_TEMPLATE = str(REPO / "templates" / "nlb.yaml")


@pytest.fixture(scope="module")
def model():
    return load_model(NLB_TEMPLATE)


def test_load_balancer(model):
    lb = elbv2_sections(model)["load_balancers"]["MyNLB"]
    assert (lb.type, lb.scheme, lb.cross_zone, lb.subnets) == (
        "network",
        "internet-facing",
        False,
        ("PublicSubnetA", "PublicSubnetB"),
    )
    assert [(n.name, n.az, str(n.private_ip), str(n.public_ip)) for n in lb.nodes] == [
        ("MyNLB-1a", "us-east-1a", "10.0.0.4", "203.0.113.10"),
        ("MyNLB-1b", "us-east-1b", "10.0.2.4", "203.0.113.11"),
    ]
    assert re.fullmatch(r"default-MyNLB-[0-9a-f]{16}\.elb\.us-east-1\.amazonaws\.com", lb.dns_name)


def test_target_groups(model):
    groups = elbv2_sections(model)["target_groups"]
    web, udp = groups["WebTargets"], groups["UdpTargets"]
    backends = {
        "WebA1": ("10.0.1.4", "us-east-1a"),
        "WebA2": ("10.0.1.5", "us-east-1a"),
        "WebB1": ("10.0.3.4", "us-east-1b"),
        "WebB2": ("10.0.3.5", "us-east-1b"),
    }
    for tg, port in ((web, 80), (udp, 9000)):
        assert {t.instance: (str(t.ip), t.az) for t in tg.targets} == backends
        assert {t.port for t in tg.targets} == {port}
        check = tg.health_check
        assert (
            check.protocol,
            check.interval_s,
            check.timeout_s,
            check.healthy_threshold,
            check.unhealthy_threshold,
        ) == ("TCP", 5, 4, 2, 2)
        assert tg.preserve_client_ip
        assert tg.deregistration_delay_s == 300
    assert (web.protocol, web.health_check.port) == ("TCP", None)
    assert (udp.protocol, udp.health_check.port) == ("TCP_UDP", 9000)


def test_listeners(model):
    found = elbv2_sections(model)["listeners"]
    assert {
        lid: (
            ls.protocol,
            ls.port,
            ls.default_actions[0].target_groups,
            ls.tcp_idle_timeout_s,
            ls.udp_idle_timeout_s,
        )
        for lid, ls in found.items()
    } == {
        "WebListener": ("TCP", 80, (("WebTargets", 1),), 350, None),
        "UdpListener": ("TCP_UDP", 9000, (("UdpTargets", 1),), 350, 120),
    }


def test_hosts_and_outputs(model):
    assert all(i.role.name == "http-backend" for i in model.instances.values())
    assert all(not model.subnet_of(i).public for i in model.instances)
    assert {k: str(c.ip) for k, c in model.internet_clients.items()} == {
        "Client1": "198.51.100.10",
        "Client2": "198.51.100.11",
    }
    lb = elbv2_sections(model)["load_balancers"]["MyNLB"]
    assert model.outputs["NlbDnsName"] == lb.dns_name
    assert model.outputs["NlbArn"] == lb.arn
    assert model.outputs["NlbNodePublicIps"] == "203.0.113.10,203.0.113.11"
    assert model.outputs["NlbNodePrivateIps"] == "10.0.0.4,10.0.2.4"


def test_cross_zone_parameter():
    model = load_model(NLB_TEMPLATE, {"CrossZone": "true"})
    assert elbv2_sections(model)["load_balancers"]["MyNLB"].cross_zone is True


def test_model_is_deterministic_and_frozen(model):
    again = load_model(NLB_TEMPLATE)
    assert elbv2_sections(again) == elbv2_sections(model)
    lbs = elbv2_sections(model)["load_balancers"]
    with pytest.raises(TypeError):
        lbs["X"] = None  # type: ignore[index]
    with pytest.raises(TypeError):
        lbs["MyNLB"].attributes["load_balancing.cross_zone.enabled"] = "true"  # type: ignore


def test_other_stack_names_change_names_not_addresses(model):
    other = load_model(NLB_TEMPLATE, stack_name="demo", region="eu-west-1")
    lb = elbv2_sections(other)["load_balancers"]["MyNLB"]
    assert lb.dns_name.startswith("demo-MyNLB-")
    assert ".eu-west-1." in lb.dns_name
    assert lb.nodes[0].private_ip == IPv4Address("10.0.0.4")


def test_stack_without_load_balancers_has_empty_sections():
    model = load_model(str(REPO / "templates" / "default.yaml"))
    assert all(len(section) == 0 for section in elbv2_sections(model).values())
    assert "elbv2" not in model.extras


def test_defaults_table_covers_every_type():
    assert set(DEFAULTS) == {"application", "network", "gateway"}
    assert DEFAULTS["network"].tcp_idle_timeout_s == 350
    assert DEFAULTS["network"].udp_idle_timeout_s == 120
    assert DEFAULTS["application"].lb_attributes["idle_timeout.timeout_seconds"] == "60"
    assert {t: d.cross_zone for t, d in DEFAULTS.items()} == {
        "application": True,
        "network": False,
        "gateway": False,
    }


def test_every_default_attribute_has_a_value_rule():
    for defaults in DEFAULTS.values():
        for key in (*defaults.lb_attributes, *defaults.tg_attributes):
            assert key in RULES, key
    for keys in LISTENER_ATTRIBUTES.values():
        assert set(keys) <= set(RULES)
