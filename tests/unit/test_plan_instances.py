"""Launched instances in the plan (testbed.plan.instances): what a new host gets (address,
port, host link, conntrack zone, role, public address, SNMP agent), what terminating one
gives back, and that the plan file carries them."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network

import pytest

from testbed import naming
from testbed.errors import LabError
from testbed.model.types import NetworkInterface, RoleSpec, Subnet, frozen_map
from testbed.plan.instances import launch_host, launched, with_host, without_host
from testbed.plan.network import NetworkPlan, build_plan, host_mac
from tests.asg_fixture import ZONE_BASE, base_plan, group_model, launch, launch_spec
from tests.nlb_fixture import nlb_plan

SG_ZONE_BASE = ZONE_BASE + 64


def test_a_launched_instance_gets_the_lowest_free_address_port_link_and_zone():
    model = group_model()
    plan = base_plan(model)
    host = launch_host(plan, model, "Web", "PrivA", "Web-1", "i-0123456789abcdef0")
    az1 = plan.subnet("PrivA").switch
    assert host.kind == "instance"
    assert host.ip == "10.0.1.6"  # .4 WebA2, .5 WebA3; .0-.3 reserved
    assert (host.prefixlen, host.gateway, host.mac) == (24, "10.0.1.1", host_mac("10.0.1.6"))
    assert (host.switch, host.az, host.subnet, host.vpc) == (az1, "us-east-1a", "PrivA", "VPC")
    assert host.port == max(h.port for h in plan.hosts if h.switch == az1) + 1
    used = {h.veth for h in plan.hosts}
    assert host.veth not in used
    assert host.veth == naming.veth_name("t", len(used) + 1)  # build_plan numbers them 1..n
    assert host.netns == naming.netns_name("t", "Web-1")
    assert host.groups == ("WebSg",)
    assert host.sg_zone == SG_ZONE_BASE  # the template's hosts have no groups but WebA2
    assert (host.asg, host.instance_id) == ("Web", "i-0123456789abcdef0")
    assert host.source_dest_check
    assert host.user_data == "#!/bin/sh\necho hi\n"
    assert host.public_ip is None  # a private subnet
    assert host.snmp is not None
    assert host.snmp["sources"] == ["10.0.0.0/16"]


def test_each_launch_takes_the_next_and_a_termination_gives_back():
    model = group_model()
    plan = base_plan(model)
    for n in (1, 2, 3):
        plan = launch(plan, model, "PrivA", n)
    ips = [plan.host(f"Web-{n}").ip for n in (1, 2, 3)]
    assert ips == ["10.0.1.6", "10.0.1.7", "10.0.1.8"]
    ports = [plan.host(f"Web-{n}").port for n in (1, 2, 3)]
    assert ports == [ports[0], ports[0] + 1, ports[0] + 2]
    zones = [plan.host(f"Web-{n}").sg_zone for n in (1, 2, 3)]
    assert zones == [SG_ZONE_BASE, SG_ZONE_BASE + 1, SG_ZONE_BASE + 2]
    assert [h.name for h in launched(plan)] == ["Web-1", "Web-2", "Web-3"]
    gone = plan.host("Web-2")
    plan = without_host(plan, "Web-2")
    assert [h.name for h in launched(plan)] == ["Web-1", "Web-3"]
    plan = launch(plan, model, "PrivA", 4)
    new = plan.host("Web-4")
    # Address, host link and zone of the terminated one are free again; its port is not
    # (Web-3 still holds a higher one), so no port is ever shared by two hosts.
    assert (new.ip, new.veth, new.sg_zone) == (gone.ip, gone.veth, gone.sg_zone)
    assert new.port == ports[2] + 1
    assert len({h.port for h in plan.hosts if h.switch == new.switch}) == len(
        [h for h in plan.hosts if h.switch == new.switch]
    )
    assert [h.name for h in plan.hosts][-3:] == ["Web-1", "Web-3", "Web-4"]  # launch order


def test_the_last_port_comes_back_once_its_host_is_gone():
    model = group_model()
    plan = launch(base_plan(model), model, "PrivB", 1)
    port = plan.host("Web-1").port
    plan = launch(without_host(plan, "Web-1"), model, "PrivB", 2)
    assert plan.host("Web-2").port == port


def test_addresses_held_outside_the_hosts_are_skipped():
    model = group_model()
    # A standalone interface of the template (attached to nothing) holds 10.0.1.6.
    eni = NetworkInterface("Spare", "PrivA", IPv4Address("10.0.1.6"))
    model = replace(model, network_interfaces=frozen_map({"Spare": eni}))
    plan = base_plan(model)
    # An extra address on a host's eth0 holds .7.
    plan = replace(
        plan,
        hosts=tuple(
            replace(h, extra_ips=("10.0.1.7",)) if h.name == "WebA3" else h for h in plan.hosts
        ),
    )
    assert launch_host(plan, model, "Web", "PrivA", "Web-1", "i-1").ip == "10.0.1.8"


def test_a_full_subnet_is_insufficient_free_addresses():
    model = two_az_model_with_tiny_subnet()
    model = group_model(subnets=("Tiny",), model=model)
    plan = base_plan(model)
    for n in range(1, 12):  # a /28 has 16 addresses: 5 reserved
        plan = launch(plan, model, "Tiny", n)
    assert plan.host("Web-11").ip == "10.0.9.14"
    with pytest.raises(
        LabError, match=r"InsufficientFreeAddressesInSubnet.*subnet Tiny \(10.0.9.0/28, 11 in use\)"
    ):
        launch(plan, model, "Tiny", 12)


def two_az_model_with_tiny_subnet():
    from tests.handmade import two_az_model

    model = two_az_model()
    tiny = Subnet("Tiny", "VPC", "us-east-1a", IPv4Network("10.0.9.0/28"), False, "RtPriv", False)
    return replace(model, subnets=frozen_map({**model.subnets, "Tiny": tiny}))


def test_a_public_subnet_that_maps_addresses_gives_a_free_public_one():
    model = group_model(subnets=("PubA",))
    plan = base_plan(model)
    # WebA1 and WebB1 hold 203.0.113.10 and .11.
    assert launch_host(plan, model, "Web", "PubA", "Web-1", "i-1").public_ip == "203.0.113.12"
    # NLB nodes hold .12 and .13 in the NLB plan.
    nlb = nlb_plan()
    assert launch_host(nlb, model, "Web", "PubA", "Web-1", "i-1").public_ip == "203.0.113.14"
    # Asked not to: none; a private subnet: none even when asked.
    no = group_model(subnets=("PubA",), launch=launch_spec(associate_public_ip=False))
    assert launch_host(plan, no, "Web", "PubA", "Web-1", "i-1").public_ip is None
    yes = group_model(launch=launch_spec(associate_public_ip=True))
    assert launch_host(plan, yes, "Web", "PrivA", "Web-1", "i-1").public_ip is None


def test_launched_public_addresses_are_held_too():
    model = group_model(subnets=("PubA", "PubB"))
    plan = launch(base_plan(model), model, "PubA", 1)
    plan = launch(plan, model, "PubB", 2)
    assert [plan.host(n).public_ip for n in ("Web-1", "Web-2")] == [
        "203.0.113.12",
        "203.0.113.13",
    ]


def test_role_and_why_from_the_model():
    role = RoleSpec("appliance", frozen_map({"Port": 6081}))
    model = group_model(launch=launch_spec(role=role))
    host = launch_host(base_plan(model), model, "Web", "PrivA", "Web-1", "i-1")
    assert (host.role, host.role_args, host.default_role) == ("appliance", {"Port": 6081}, None)
    # No role: nothing runs.
    model = group_model()
    assert launch_host(base_plan(model), model, "Web", "PrivA", "Web-1", "i-1").role is None
    # A group behind a load balancer: the model gave it http-backend and says why.
    backend = RoleSpec("http-backend", frozen_map({"Port": 8080}))
    why = "instances launched from WebLt are targets of Tg (HTTP 8080): serves with ..."
    model = group_model(launch=launch_spec(role=backend))
    model = replace(model, default_roles=frozen_map({"Web": why}))
    host = launch_host(base_plan(model), model, "Web", "PrivA", "Web-1", "i-1")
    assert (host.role, host.role_args, host.default_role) == ("http-backend", {"Port": 8080}, why)
    # Role: none on the launch template opts out.
    model = group_model(launch=launch_spec(role=RoleSpec("none")))
    assert launch_host(base_plan(model), model, "Web", "PrivA", "Web-1", "i-1").role == "none"


def test_a_real_template_group_launches_like_its_template_instances():
    from testbed.model import load_model
    from testbed.paths import TEMPLATES

    model = load_model(str(TEMPLATES / "autoscaling.yaml"))
    plan = build_plan(model, "t")
    (lid, asg), *_ = model.auto_scaling_groups.items()
    for n, subnet in enumerate(asg.subnets, start=1):
        plan = with_host(plan, launch_host(plan, model, lid, subnet, f"{lid}-{n}", f"i-{n}"))
    hosts = launched(plan)
    assert [h.subnet for h in hosts] == list(asg.subnets)
    assert len({h.ip for h in plan.hosts}) == len(plan.hosts)
    assert len({h.veth for h in plan.hosts}) == len(plan.hosts)
    zones = [a.sg_zone for a in plan.attachments() if a.sg_zone is not None]
    assert len(set(zones)) == len(zones)
    for h in hosts:
        assert h.groups == asg.security_groups
        assert h.role == (asg.launch.role.name if asg.launch.role else None)
        assert h.snmp is not None


def test_snmp_follows_the_lab_and_the_groups_override():
    model = group_model()
    model = replace(model, extras=frozen_map({"snmp": frozen_map({"Web": {"enabled": False}})}))
    assert launch_host(base_plan(model), model, "Web", "PrivA", "Web-1", "i-1").snmp is None


def test_names_are_unique_and_only_hosts_of_the_plan_can_go():
    model = group_model()
    plan = launch(base_plan(model), model, "PrivA", 1)
    with pytest.raises(LabError, match="already has a host named Web-1"):
        launch(plan, model, "PrivA", 1)
    with pytest.raises(LabError, match="already has a host named Web-1"):
        with_host(plan, plan.host("Web-1"))
    with pytest.raises(LabError, match="no host named Web-9"):
        without_host(plan, "Web-9")


def test_the_plan_file_carries_launched_instances():
    model = group_model()
    plan = launch(launch(base_plan(model), model, "PrivA", 1), model, "PrivB", 2)
    again = NetworkPlan.from_json(plan.to_json())
    assert again == plan
    assert [(h.asg, h.instance_id) for h in launched(again)] == [
        ("Web", f"i-{1:017x}"),
        ("Web", f"i-{2:017x}"),
    ]


def test_a_plan_without_launched_hosts_is_the_template_plan():
    model = group_model()
    plan = base_plan(model)
    grown = launch(launch(plan, model, "PrivA", 1), model, "PrivB", 2)
    assert without_host(without_host(grown, "Web-1"), "Web-2") == plan
    assert (
        build_plan(model, "t", zone_base=ZONE_BASE).hosts
        == build_plan(model, "t", zone_base=ZONE_BASE).hosts
    )  # deterministic
