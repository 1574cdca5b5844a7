"""AWS::EC2::VPCPeeringConnection and routes to it (issue 14, W5): in one stack, across two
stacks of a lab (the route back added to the other stack's route table), refusals."""

from __future__ import annotations

import textwrap

import pytest

from testbed.errors import BadInput, TemplateErrors
from testbed.model.build import build_model
from testbed.model.catalog import is_inert
from testbed.model.lab_view import FOREIGN_TABLES, LabStackModel, LabView
from testbed.model.resources.peering import EXTRAS_KEY
from testbed.plan import merge
from testbed.plan.network import build_plan
from testbed.template.yaml_loader import load_text


def build(text: str, **kwargs):
    doc = load_text(textwrap.dedent(text), "t.yaml")
    return build_model(doc, file="t.yaml", **kwargs)


def vpc(name: str, cidr: str, az: str = "us-east-1a") -> str:
    subnet = cidr.replace("0.0/16", "1.0/24")
    return f"""
  {name}:
    Type: AWS::EC2::VPC
    Properties: {{CidrBlock: {cidr}}}
  {name}Subnet:
    Type: AWS::EC2::Subnet
    Properties: {{VpcId: !Ref {name}, CidrBlock: {subnet}, AvailabilityZone: {az}}}
  {name}Table:
    Type: AWS::EC2::RouteTable
    Properties: {{VpcId: !Ref {name}}}
  {name}Assoc:
    Type: AWS::EC2::SubnetRouteTableAssociation
    Properties: {{SubnetId: !Ref {name}Subnet, RouteTableId: !Ref {name}Table}}
  {name}Web:
    Type: AWS::EC2::Instance
    Properties: {{SubnetId: !Ref {name}Subnet}}
"""


def route(name: str, table: str, cidr: str, pcx: str = "Pcx") -> str:
    return f"""
  {name}:
    Type: AWS::EC2::Route
    Properties:
      RouteTableId: {table}
      DestinationCidrBlock: {cidr}
      VpcPeeringConnectionId: !Ref {pcx}
"""


def peering(a: str, b: str, extra: str = "", name: str = "Pcx") -> str:
    return f"""
  {name}:
    Type: AWS::EC2::VPCPeeringConnection
    Properties: {{VpcId: {a}, PeerVpcId: {b}{extra}}}
"""


ONE_STACK = (
    "Resources:"
    + vpc("A", "10.0.0.0/16")
    + vpc("B", "10.1.0.0/16")
    + peering("!Ref A", "!Ref B")
    + route("AToB", "!Ref ATable", "10.1.0.0/16")
    + route("BToA", "!Ref BTable", "10.0.0.0/16")
    + "Outputs:\n  Pcx: {Value: !Ref Pcx}\n  PcxId: {Value: !GetAtt Pcx.Id}\n"
)


def test_peering_in_one_stack():
    model = build(ONE_STACK)
    pcx = model.extras[EXTRAS_KEY]["Pcx"]
    assert (pcx.vpc_id, pcx.peer_vpc_id) == ("A", "B")
    assert model.outputs["Pcx"] == "pcx-Pcx" == model.outputs["PcxId"]
    routes = {r.logical_id: r for t in model.route_tables.values() for r in t.routes}
    assert (routes["AToB"].target_kind, routes["AToB"].target_id) == ("pcx", "Pcx")


def test_peering_is_emulated_not_inert():
    model = build(ONE_STACK)
    assert "Pcx" not in model.inert
    assert "AToB" not in model.inert
    assert not is_inert("AWS::EC2::VPCPeeringConnection")


def test_plan_routes_a_pcx_route_into_the_peer_vpc():
    plan = build_plan(build(ONE_STACK), "t", 100)
    routes = {s.name: s.routes for s in plan.subnets}
    assert ("10.1.0.0/16", "pcx", "B") in [
        (r.destination, r.kind, r.target) for r in routes["ASubnet"]
    ]
    assert ("10.0.0.0/16", "pcx", "A") in [
        (r.destination, r.kind, r.target) for r in routes["BSubnet"]
    ]


def test_qualified_plan_names_the_peer_vpc_qualified():
    plan = build_plan(build(ONE_STACK, qualifier="b."), "t", 100, qualifier="b.")
    a = next(s for s in plan.subnets if s.name == "b.ASubnet")
    assert ("pcx", "b.B") in [(r.kind, r.target) for r in a.routes]


def refused(text: str, **kwargs) -> str:
    with pytest.raises((BadInput, TemplateErrors)) as err:
        build(text, **kwargs)
    return str(err.value)


def test_overlapping_vpcs_are_not_peered():
    text = "Resources:" + vpc("A", "10.0.0.0/16") + vpc("B", "10.0.0.0/16")
    message = refused(text + peering("!Ref A", "!Ref B"))
    assert "VpcPeeringConnection failed to stabilize" in message
    assert "overlap" in message


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (", PeerOwnerId: '210987654321'", "PeerOwnerId 210987654321 is another account"),
        (", PeerRegion: eu-west-1", "PeerRegion eu-west-1 is not the lab's region"),
    ],
)
def test_a_peer_of_another_account_or_region_is_refused(extra, words):
    text = "Resources:" + vpc("A", "10.0.0.0/16") + vpc("B", "10.1.0.0/16")
    assert words in refused(text + peering("!Ref A", "!Ref B", extra))


def test_this_account_and_region_may_be_named():
    text = "Resources:" + vpc("A", "10.0.0.0/16") + vpc("B", "10.1.0.0/16")
    extra = ", PeerOwnerId: !Ref 'AWS::AccountId', PeerRegion: !Ref 'AWS::Region'"
    build(text + peering("!Ref A", "!Ref B", extra))


def test_a_route_in_a_third_vpcs_table_is_refused():
    text = (
        "Resources:"
        + vpc("A", "10.0.0.0/16")
        + vpc("B", "10.1.0.0/16")
        + vpc("C", "10.2.0.0/16")
        + peering("!Ref A", "!Ref B")
        + route("CToB", "!Ref CTable", "10.1.0.0/16")
    )
    assert "but route table CTable belongs to C" in refused(text)


def test_a_peer_that_is_no_vpc_of_the_lab():
    text = "Resources:" + vpc("A", "10.0.0.0/16") + peering("!Ref A", "vpc-Nowhere")
    assert "is not the id of a resource of this" in refused(text)


# Across stacks: the first stack is "net" (bare names) with VPC Hub; the second, "spoke."
# (qualified), peers its VPC with Hub and adds the route back to Hub's exported table.
NET = (
    "Resources:"
    + vpc("Hub", "10.0.0.0/16")
    + """
Outputs:
  VpcId: {Value: !Ref Hub, Export: {Name: net-VpcId}}
  TableId: {Value: !Ref HubTable, Export: {Name: net-TableId}}
"""
)


def spoke(cidr: str = "10.1.0.0/16") -> str:
    return (
        "Resources:"
        + vpc("Spoke", cidr)
        + peering("!Ref Spoke", "!ImportValue net-VpcId")
        + route("ToHub", "!Ref SpokeTable", "10.0.0.0/16")
        + route("FromHub", "!ImportValue net-TableId", cidr)
    )


@pytest.fixture(scope="module")
def lab() -> LabView:
    return LabView.of([LabStackModel("net", "", build(NET, stack_name="net"))])


def test_peering_with_another_stacks_vpc(lab):
    model = build(spoke(), stack_name="spoke", qualifier="spoke.", lab=lab)
    pcx = model.extras[EXTRAS_KEY]["Pcx"]
    assert (pcx.vpc_id, pcx.peer_vpc_id) == ("Spoke", "net.Hub")
    assert pcx.physical_id == "pcx-spoke.Pcx"
    assert model.foreign["net.Hub"] == "net"
    assert model.foreign["net.HubTable"] == "net"
    assert model.plan_name("net.Hub") == "Hub"


def test_the_route_back_goes_into_the_other_stacks_table(lab):
    model = build(spoke(), stack_name="spoke", qualifier="spoke.", lab=lab)
    mirrored = model.extras[FOREIGN_TABLES]["net.HubTable"]
    assert mirrored.subnets == ("HubSubnet",)
    assert mirrored.copied == 1
    added = model.route_tables["net.HubTable"].routes[mirrored.copied :]
    assert [(r.logical_id, str(r.destination), r.target_kind) for r in added] == [
        ("FromHub", "10.1.0.0/16", "pcx")
    ]


def test_overlapping_vpcs_of_two_stacks_are_not_peered(lab):
    message = refused(spoke("10.0.0.0/16"), stack_name="spoke", qualifier="spoke.", lab=lab)
    assert "VpcPeeringConnection failed to stabilize" in message


def test_the_route_back_joins_the_other_stacks_subnet_in_the_lab_plan(lab):
    first = build(NET, stack_name="net")
    plan = merge.add_stack(None, first, "t", 100, "")
    model = build(spoke(), stack_name="spoke", qualifier="spoke.", lab=lab)
    both = merge.add_stack(plan, model, "t", 100, "spoke.")
    hub = next(s for s in both.subnets if s.name == "HubSubnet")
    assert (hub.routes[-1].destination, hub.routes[-1].kind) == ("10.1.0.0/16", "pcx")
    assert hub.routes[-1].target == "spoke.Spoke"
    # and it leaves with the stack
    assert merge.remove_stack(both, "spoke.").subnets == plan.subnets


def test_a_stack_may_reuse_the_first_stacks_logical_ids():
    """peering-b's own `VPC`, `Subnet`, `RouteTable` next to peering-a's (the lab's first
    stack, whose plan names are the bare logical ids): the foreign ones are keyed by stack."""
    from testbed.model import load_model
    from testbed.paths import TEMPLATES

    a = load_model(str(TEMPLATES / "peering-a.yaml"), stack_name="peer")
    view = LabView.of([LabStackModel("peer", "", a)])
    b = load_model(
        str(TEMPLATES / "peering-b.yaml"),
        {"PeerStack": "peer"},
        stack_name="b",
        qualifier="b.",
        lab=view,
    )
    assert {"VPC", "peer.VPC"} <= set(b.vpcs)
    assert (b.plan_name("VPC"), b.plan_name("peer.VPC")) == ("b.VPC", "VPC")
    assert b.outputs["PeeringConnectionId"] == "pcx-b.Peering"
    plan = merge.add_stack(merge.add_stack(None, a, "t", 100, ""), b, "t", 100, "b.")
    routes = {s.name: [(r.destination, r.kind, r.target) for r in s.routes] for s in plan.subnets}
    assert routes["Subnet"][-1] == ("10.1.0.0/16", "pcx", "b.VPC")
    assert routes["b.Subnet"][-1] == ("10.0.0.0/16", "pcx", "VPC")
