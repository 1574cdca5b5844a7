"""A lab of several stacks (issue 14): testbed.plan.merge adds a stack's plan to the lab's and
takes it out again without renumbering anything that runs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from testbed.errors import BadInput, LabError
from testbed.model import load_model
from testbed.plan.merge import Allocations, add_stack, address_space, remove_stack
from testbed.plan.network import NetworkPlan, VpcPlan, host_mac
from testbed.plan.zone_layout import MAX_LOAD_BALANCERS
from tests.unit.plan_golden import ROOT, ZONE_BASE

LAB = "lab"

# A stack that refers to nothing of the first one: a private VPC (no internet gateway, so no
# public address) in us-east-1a and in us-east-1c, an AZ the default stack does not use.
PRIVATE = """
Parameters:
  VpcCidr: {Type: String, Default: 10.0.0.0/16}
Resources:
  VPC:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: !Ref VpcCidr}
  Group:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: web
      VpcId: !Ref VPC
      SecurityGroupIngress: [{IpProtocol: tcp, FromPort: 80, ToPort: 80, CidrIp: !Ref VpcCidr}]
  SubA:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref VPC, CidrBlock: !Select [0, !Cidr [!Ref VpcCidr, 4, 8]],
                 AvailabilityZone: us-east-1a}
  SubC:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref VPC, CidrBlock: !Select [1, !Cidr [!Ref VpcCidr, 4, 8]],
                 AvailabilityZone: us-east-1c}
  WebA:
    Type: AWS::EC2::Instance
    Properties: {SubnetId: !Ref SubA, SecurityGroupIds: [!Ref Group]}
  WebC:
    Type: AWS::EC2::Instance
    Properties: {SubnetId: !Ref SubC, SecurityGroupIds: [!Ref Group]}
"""


def first() -> NetworkPlan:
    model = load_model(str(ROOT / "templates/default.yaml"), {}, stack_name=LAB)
    return add_stack(None, model, LAB, ZONE_BASE, "")


def private_model(tmp_path: Path, name: str = "b", cidr: str = "10.0.0.0/16"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(PRIVATE)
    return load_model(str(path), {"VpcCidr": cidr}, stack_name=name, qualifier=f"{name}.")


@pytest.fixture
def lab() -> NetworkPlan:
    return first()


@pytest.fixture
def two(lab: NetworkPlan, tmp_path: Path) -> NetworkPlan:
    return add_stack(lab, private_model(tmp_path), LAB, ZONE_BASE, "b.")


def test_a_single_stack_lab_is_build_plans_plan(lab: NetworkPlan):
    from tests.unit.plan_golden import plan_of

    assert lab.to_json() == plan_of("templates/default.yaml").to_json()
    assert '"space"' not in lab.to_json()  # plan.json of a one-stack lab as it always was
    assert {v.space for v in lab.vpcs} == {0}


def test_add_then_remove_gives_back_the_same_plan(lab: NetworkPlan, two: NetworkPlan):
    assert two != lab
    assert remove_stack(two, "b.") == lab
    assert NetworkPlan.from_json(two.to_json()) == two  # space survives plan.json


def test_existing_hosts_keep_port_mac_veth_and_zone(lab: NetworkPlan, two: NetworkPlan):
    for h in lab.hosts:
        after = two.host(h.name)
        if h.kind == "dns":
            assert (after.port, after.mac, after.veth) == (h.port, h.mac, h.veth)
            continue
        assert after == h
    assert two.switches[: len(lab.switches)] == lab.switches
    assert two.links[: len(lab.links)] == lab.links


def test_the_new_stack_continues_every_number(lab: NetworkPlan, two: NetworkPlan):
    new = [h for h in two.hosts if h.name.startswith("b.")]
    assert {h.name for h in new} == {"b.WebA", "b.WebC"}
    ports = [(a.switch, a.port) for a in two.attachments()] + [
        (s, p) for link in two.links for s, p in ((link.a, link.a_port), (link.b, link.b_port))
    ]
    assert len(ports) == len(set(ports))
    veths = [a.veth for a in two.attachments()]
    assert len(veths) == len(set(veths))
    zones = [a.sg_zone for a in two.attachments() if a.sg_zone is not None]
    assert len(zones) == len(set(zones))
    assert min(h.sg_zone or 0 for h in new) > max(h.sg_zone or 0 for h in lab.hosts)
    assert [v.index for v in two.vpcs] == [1, 2]
    assert [s.index for s in two.subnets] == list(range(1, len(two.subnets) + 1))


def test_a_new_az_gets_its_own_switch_joined_to_the_core(lab: NetworkPlan, two: NetworkPlan):
    (new,) = [s for s in two.switches if s not in lab.switches]
    assert (new.az, new.role) == ("us-east-1c", "az")
    assert two.host("b.WebC").switch == new.name
    assert two.subnet("b.SubC").switch == new.name
    (uplink,) = [link for link in two.links if new.name in (link.a, link.b)]
    core_ports = [link.b_port for link in lab.links] + [lab.host("LabDNS").port]
    assert uplink.b_port == max(core_ports) + 1
    assert len(
        {link.a_intf for link in two.links} | {link.b_intf for link in two.links}
    ) == 2 * len(two.links)


def test_an_overlapping_vpc_gets_space_1_and_its_macs(two: NetworkPlan):
    a, b = two.vpcs
    assert (a.cidr, a.space) == (b.cidr, 0)
    assert b.space == 1
    web = two.host("b.WebA")
    assert web.mac == "02:01:" + host_mac(web.ip)[6:] == host_mac(web.ip, 1)
    assert web.ip in {h.ip for h in two.hosts if not h.name.startswith("b.")}
    macs = [a.mac for a in two.attachments()]
    assert len(macs) == len(set(macs))


def test_one_resolver_per_address_space(lab: NetworkPlan, two: NetworkPlan):
    resolvers = {h.name: h for h in two.hosts if h.kind == "dns"}
    assert set(resolvers) == {"LabDNS", "LabDNS-1"}
    assert resolvers["LabDNS"] == lab.host("LabDNS")
    second = resolvers["LabDNS-1"]
    assert (second.ip, second.extra_ips, second.mac) == ("10.0.0.2", (), host_mac("10.0.0.2", 1))
    assert second.switch == lab.host("LabDNS").switch


def test_a_vpc_that_overlaps_nothing_stays_in_space_0(lab: NetworkPlan, tmp_path: Path):
    two = add_stack(lab, private_model(tmp_path, cidr="10.1.0.0/16"), LAB, ZONE_BASE, "b.")
    assert [v.space for v in two.vpcs] == [0, 0]
    assert two.host("b.WebA").mac == host_mac(two.host("b.WebA").ip)
    dns = two.host("LabDNS")
    assert "10.1.0.2" in dns.extra_ips
    assert not any(h.name == "LabDNS-1" for h in two.hosts)
    assert remove_stack(two, "b.") == lab


def test_a_third_stack_overlapping_both_gets_space_2(two: NetworkPlan, tmp_path: Path):
    three = add_stack(two, private_model(tmp_path, "c"), LAB, ZONE_BASE, "c.")
    assert [v.space for v in three.vpcs] == [0, 1, 2]
    assert three.host("c.WebA").mac.startswith("02:02:")
    assert remove_stack(three, "c.") == two
    # Removing the middle stack frees space 1; what runs keeps its numbers.
    without_b = remove_stack(three, "b.")
    assert without_b.host("c.WebA") == three.host("c.WebA")
    assert {h.name for h in without_b.hosts if h.kind == "dns"} == {"LabDNS", "LabDNS-2"}


def test_address_space_is_the_lowest_free():
    vpcs = [VpcPlan("A", "10.0.0.0/16", 1, 0), VpcPlan("B", "10.0.0.0/16", 2, 2)]
    assert address_space(vpcs, "10.0.1.0/24") == 1
    assert address_space(vpcs, "10.9.0.0/16") == 0


def test_a_name_the_lab_has_is_refused(lab: NetworkPlan, tmp_path: Path):
    b = private_model(tmp_path)
    two = add_stack(lab, b, LAB, ZONE_BASE, "b.")
    with pytest.raises(BadInput, match=r"already has a host named b\.WebA"):
        add_stack(two, b, LAB, ZONE_BASE, "b.")


def test_a_public_address_the_lab_holds_is_refused(lab: NetworkPlan):
    # Until the model takes public addresses from a lab-wide book (W2), the merge refuses.
    again = load_model(str(ROOT / "templates/default.yaml"), {}, stack_name="b", qualifier="b.")
    with pytest.raises(BadInput, match=r"already .*'s in this lab"):
        add_stack(lab, again, LAB, ZONE_BASE, "b.")


def test_the_lab_limit_of_load_balancers(lab: NetworkPlan):
    full = Allocations.of(lab)
    full.lb_indexes = set(range(1, MAX_LOAD_BALANCERS + 1))
    with pytest.raises(BadInput, match=f"at most {MAX_LOAD_BALANCERS}"):
        full.take_lb_index("b.NLB")


def test_the_lab_limits_of_host_links_and_group_ports(lab: NetworkPlan):
    alloc = Allocations.of(lab)
    alloc.veths = {f"tb-{LAB}-v{i}" for i in range(1, 1000)}
    with pytest.raises(LabError, match="999 host interfaces"):
        alloc.take_veth("b.Web")
    alloc.zones = set(range(ZONE_BASE + 64, ZONE_BASE + 1024))
    with pytest.raises(LabError, match="at most 960"):
        alloc.take_zone()


def test_load_balancer_indexes_fill_the_lowest_free():
    nlb = load_model(str(ROOT / "templates/nlb.yaml"), {}, stack_name=LAB)
    lab = add_stack(None, nlb, LAB, ZONE_BASE, "")
    # A lab's plan with its LB moved to index 2 stands in for one whose first index is free.
    moved = replace(lab, load_balancers=(replace(lab.load_balancers[0], index=2),))
    alloc = Allocations.of(moved)
    assert alloc.take_lb_index("x") == 1
    assert alloc.take_lb_index("y") == 3


def test_an_auto_scaling_launch_takes_from_the_same_allocations():
    from testbed.plan.instances import launch_host

    model = load_model(str(ROOT / "templates/autoscaling.yaml"), {}, stack_name=LAB)
    asg_lab = add_stack(None, model, LAB, ZONE_BASE, "")
    group = next(iter(model.auto_scaling_groups))
    subnet = model.auto_scaling_groups[group].subnets[0]
    host = launch_host(asg_lab, model, group, subnet, "Web-1", "i-1")
    alloc = Allocations.of(asg_lab)
    assert host.port == alloc.take_port(host.switch)
    assert host.veth == alloc.take_veth("x")
    if host.sg_zone is not None:
        assert host.sg_zone == alloc.take_zone()


def test_a_launch_in_an_overlapping_vpc_gets_its_spaces_mac(two: NetworkPlan):
    from testbed.plan import instances

    where = two.subnet("b.SubA")
    alloc = Allocations.of(two)
    host = instances.subnet_host(
        LAB,
        "b.Extra",
        "instance",
        where,
        "10.0.0.9",
        alloc.take_port(where.switch),
        alloc.take_veth("b.Extra"),
        space=1,
    )
    assert host.mac == host_mac("10.0.0.9", 1)
