"""Issue 14, W1: a stack added to a lab gets qualified physical ids and plan names; a lab's
first stack (qualifier "") keeps exactly the plans it always had."""

from __future__ import annotations

import json

import pytest

from testbed import naming
from testbed.model import load_model_text
from testbed.model.state import BuildState
from testbed.plan.network import NetworkPlan
from tests.unit.plan_golden import GOLDEN, ROOT, digest, plan_of, plan_text, template_paths

GOOD = [rel for rel in template_paths() if not plan_text(rel).startswith("ERROR")]


@pytest.mark.parametrize("rel", template_paths())
def test_first_stack_plan_is_unchanged(rel: str) -> None:
    assert digest(plan_text(rel)) == json.loads(GOLDEN.read_text())[rel], (
        f"{rel}: its plan differs from the golden one (python -m tests.unit.plan_golden)"
    )


def test_every_example_template_has_a_golden_plan() -> None:
    assert sorted(json.loads(GOLDEN.read_text())) == template_paths()


def _unqualified(plan: NetworkPlan) -> str:
    """The plan's JSON with the qualifier "b." taken out of every name and id."""
    text = plan.to_json()
    for prefix in ("", "sg-", "i-", "tb-lab-"):
        text = text.replace(f'"{prefix}b.', f'"{prefix}')
    return text


@pytest.mark.parametrize("rel", GOOD)
def test_qualified_plan_differs_only_in_names(rel: str) -> None:
    # Ports, MACs, veths, zones and addresses stay; only the stack's names gain "b.".
    assert _unqualified(plan_of(rel, "b.")) == plan_of(rel).to_json()


@pytest.mark.parametrize("rel", GOOD)
def test_every_stack_name_is_qualified(rel: str) -> None:
    plan = plan_of(rel, "b.")
    for h in plan.hosts:
        if h.kind == "dns":  # the lab's resolver belongs to no stack
            assert not h.name.startswith("b.")
            continue
        assert h.name.startswith("b."), h.name
        assert h.netns == f"tb-lab-{h.name}"
        assert h.vpc is None or h.vpc.startswith("b.")
        assert h.subnet is None or h.subnet.startswith("b.")
        assert all(g.startswith("b.") for g in h.groups or ())
        for i in h.interfaces:
            assert i.subnet.startswith("b.")
            assert i.vpc.startswith("b.")
    for name in (
        [v.name for v in plan.vpcs]
        + [s.name for s in plan.subnets]
        + [s.vpc for s in plan.subnets]
        + [g.name for g in plan.security_groups]
        + [n.name for n in plan.network_acls]
        + [e.name for e in plan.endpoints]
        + [e.node_host for e in plan.endpoints]
        + [r.record for r in plan.dns_records]
        + [lb.name for lb in plan.load_balancers]
        + [n.host for lb in plan.load_balancers for n in lb.nodes]
        + [tg.name for lb in plan.load_balancers for tg in lb.target_groups]
        + [lis.name for lb in plan.load_balancers for lis in lb.listeners]
    ):
        assert name.startswith("b."), (rel, name)
    for g in plan.security_groups:
        assert g.group_id.startswith("sg-b."), g.group_id
    for s in plan.subnets:
        for r in s.routes:
            assert r.kind not in ("vpce", "nat") or (r.target or "").startswith("b.")
    hosts = {h.name for h in plan.hosts}
    for lb in plan.load_balancers:
        for tg in lb.target_groups:
            for t in tg.targets:
                assert t.host is None or (t.host in hosts and t.key == f"{t.host}:{t.port}")
                # An instance target's id is the instance's; an ip target's its address; an
                # alb target's (an ALB node) the ALB's name.
                albs = {x.name for x in plan.load_balancers if x.type == "application"}
                ids = albs if tg.target_type == "alb" else {f"i-{t.host}", t.ip}
                assert t.host is None or t.id in ids


@pytest.mark.parametrize("rel", GOOD)
def test_linux_names_stay_within_limits(rel: str) -> None:
    # Interface and bridge names are lab-numbered, never made from a host name; a netns name
    # is a file name (255 bytes, "." allowed: measured with `ip netns add tb-x-b.Web`).
    plan = plan_of(rel, "b.")
    for h in plan.hosts:
        assert len(h.veth) <= naming.IFNAMSIZ
        assert len(h.netns.encode()) <= 255
        assert naming.owner_of(h.netns) == "lab"
    for link in plan.links:
        assert len(link.a_intf) <= naming.IFNAMSIZ
        assert len(link.b_intf) <= naming.IFNAMSIZ
    assert all(len(s.name) <= naming.IFNAMSIZ for s in plan.switches)


TEMPLATE = """
Resources:
  VPC:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.0.0.0/16}
  Subnet:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref VPC, CidrBlock: 10.0.1.0/24, AvailabilityZone: us-east-1a}
  Group:
    Type: AWS::EC2::SecurityGroup
    Properties: {GroupDescription: web, VpcId: !Ref VPC}
  Web:
    Type: AWS::EC2::Instance
    Properties: {SubnetId: !Ref Subnet, SecurityGroupIds: [!GetAtt Group.GroupId]}
Outputs:
  VpcId: {Value: !Ref VPC}
  SubnetVpc: {Value: !GetAtt Subnet.VpcId}
  SubnetId: {Value: !GetAtt Subnet.SubnetId}
  GroupId: {Value: !Ref Group}
  DefaultGroup: {Value: !GetAtt VPC.DefaultSecurityGroup}
  DefaultAcl: {Value: !GetAtt VPC.DefaultNetworkAcl}
  Instance: {Value: !Ref Web}
  InstanceId: {Value: !GetAtt Web.InstanceId}
"""


def _outputs(qualifier: str) -> dict[str, str]:
    model = load_model_text(TEMPLATE, filename="t.yaml", stack_name="b", qualifier=qualifier)
    return {k: str(v) for k, v in model.outputs.items()}


def test_physical_ids_are_qualified() -> None:
    assert _outputs("b.") == {
        "VpcId": "vpc-b.VPC",
        "SubnetVpc": "vpc-b.VPC",
        "SubnetId": "subnet-b.Subnet",
        "GroupId": "sg-b.Group",
        "DefaultGroup": "sg-b.VPC.default",
        "DefaultAcl": "acl-b.VPC.default",
        "Instance": "i-b.Web",
        "InstanceId": "i-b.Web",
    }


def test_first_stack_physical_ids_are_bare() -> None:
    assert _outputs("")["VpcId"] == "vpc-VPC"
    assert _outputs("")["DefaultGroup"] == "sg-VPC.default"


def test_foreign_keys_keep_their_lab_name() -> None:
    state = BuildState("t.yaml", "us-east-1", "b", qualifier="b.", foreign={"VPC": "a"})
    assert state.physical("vpc-", "VPC") == "vpc-VPC"
    assert state.physical("subnet-", "Subnet") == "subnet-b.Subnet"


def test_goldens_are_read_from_the_repository() -> None:
    assert (ROOT / "templates" / "default.yaml").exists()
