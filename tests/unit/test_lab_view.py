"""A stack built against the other stacks of its lab (issue 14, W2): exports, id parameters,
foreign resources mirrored, endpoint services of another stack, addresses never reused."""

from __future__ import annotations

import textwrap
from ipaddress import IPv4Address

import pytest

from testbed.errors import BadInput, TemplateErrors
from testbed.model.build import build_model
from testbed.model.lab_view import LabStackModel, LabView
from testbed.template.yaml_loader import load_text

NET = """
Resources:
  VPC:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.0.0.0/16}
  IGW: {Type: AWS::EC2::InternetGateway}
  Attach:
    Type: AWS::EC2::VPCGatewayAttachment
    Properties: {VpcId: !Ref VPC, InternetGatewayId: !Ref IGW}
  Public:
    Type: AWS::EC2::Subnet
    Properties:
      VpcId: !Ref VPC
      CidrBlock: 10.0.1.0/24
      AvailabilityZone: us-east-1a
      MapPublicIpOnLaunch: true
  Table:
    Type: AWS::EC2::RouteTable
    Properties: {VpcId: !Ref VPC}
  Default:
    Type: AWS::EC2::Route
    DependsOn: Attach
    Properties: {RouteTableId: !Ref Table, DestinationCidrBlock: 0.0.0.0/0, GatewayId: !Ref IGW}
  Assoc:
    Type: AWS::EC2::SubnetRouteTableAssociation
    Properties: {SubnetId: !Ref Public, RouteTableId: !Ref Table}
  Web:
    Type: AWS::EC2::Instance
    Properties: {SubnetId: !Ref Public}
Outputs:
  VpcId: {Value: !Ref VPC, Export: {Name: net-VpcId}}
  SubnetId: {Value: !Ref Public, Export: {Name: net-SubnetId}}
"""

APP_IMPORT = """
Resources:
  App:
    Type: AWS::EC2::Instance
    Properties: {SubnetId: !ImportValue net-SubnetId}
"""

APP_PARAM = """
Parameters:
  Subnet: {Type: 'AWS::EC2::Subnet::Id'}
Resources:
  App:
    Type: AWS::EC2::Instance
    Properties: {SubnetId: !Ref Subnet}
"""


def build(text: str, **kwargs):
    doc = load_text(textwrap.dedent(text), "t.yaml")
    return build_model(doc, file="t.yaml", **kwargs)


def lab_of(*stacks: tuple[str, str, str]) -> LabView:
    return LabView.of(
        LabStackModel(name, qualifier, build(text, stack_name=name, qualifier=qualifier))
        for name, qualifier, text in stacks
    )


@pytest.fixture(scope="module")
def net_lab() -> LabView:
    return lab_of(("net", "", NET))


def test_import_of_another_stacks_subnet_mirrors_it_as_foreign(net_lab):
    model = build(APP_IMPORT, stack_name="app", qualifier="app.", lab=net_lab)
    assert model.imported == frozenset({"net-SubnetId"})
    assert model.qualifier == "app."
    # the VPC's default group is net's too (it is in the lab plan already)
    # keyed "Stack.LogicalId" (never one of this stack's logical ids); named as in the plan
    assert dict(model.foreign) == {
        "net.Public": "net",
        "net.VPC": "net",
        "net.VPC.default": "net",
    }
    assert dict(model.foreign_names) == {
        "net.Public": "Public",
        "net.VPC": "VPC",
        "net.VPC.default": "VPC.default",
    }
    app = model.instances["App"]
    assert app.subnet_id == "net.Public"
    assert app.private_ip == IPv4Address("10.0.1.5")  # .4 is net's Web
    assert app.public_ip is not None
    assert app.public_ip != net_lab_public(net_lab)
    assert model.subnets["net.Public"].public  # as its own stack decided
    assert model.azs == ()  # the foreign subnet's AZ is not this stack's
    assert "VPC" not in model.creation_order


def net_lab_public(lab: LabView) -> IPv4Address:
    (address,) = lab.used_public
    return address


def test_id_parameter_may_name_another_stacks_subnet(net_lab):
    model = build(
        APP_PARAM,
        stack_name="app",
        qualifier="app.",
        lab=net_lab,
        params={"Subnet": "subnet-Public"},
    )
    assert model.instances["App"].subnet_id == "net.Public"
    assert model.foreign["net.Public"] == "net"


def test_id_parameter_naming_nothing_of_the_lab(net_lab):
    with pytest.raises((BadInput, TemplateErrors)) as info:
        build(
            APP_PARAM,
            stack_name="app",
            qualifier="app.",
            lab=net_lab,
            params={"Subnet": "subnet-Nope"},
        )
    assert "subnet-Nope is not a" in str(info.value)
    assert "its stacks: net" in str(info.value)


def test_literal_id_of_another_stacks_subnet(net_lab):
    text = APP_IMPORT.replace("!ImportValue net-SubnetId", "subnet-Public")
    model = build(text, stack_name="app", qualifier="app.", lab=net_lab)
    assert model.instances["App"].subnet_id == "net.Public"


def test_missing_export_has_awss_text(net_lab):
    text = APP_IMPORT.replace("net-SubnetId", "nobody-SubnetId")
    with pytest.raises((BadInput, TemplateErrors)) as info:
        build(text, stack_name="app", qualifier="app.", lab=net_lab)
    assert "No export named nobody-SubnetId found." in str(info.value)
    assert "t.yaml:" in str(info.value)


def test_duplicate_export_in_the_lab(net_lab):
    text = APP_IMPORT + "Outputs:\n  Again: {Value: x, Export: {Name: net-VpcId}}\n"
    with pytest.raises((BadInput, TemplateErrors)) as info:
        build(text, stack_name="app", qualifier="app.", lab=net_lab)
    shown = str(info.value)
    assert "Export with name net-VpcId is already exported by stack net" in shown
    assert "t.yaml:" in shown


def test_address_in_a_shared_subnet_is_not_reused(net_lab):
    literal = APP_IMPORT.replace(
        "{SubnetId: !ImportValue net-SubnetId}",
        "{SubnetId: !ImportValue net-SubnetId, PrivateIpAddress: 10.0.1.4}",
    )
    with pytest.raises((BadInput, TemplateErrors)) as info:
        build(literal, stack_name="app", qualifier="app.", lab=net_lab)
    assert "10.0.1.4 is already used by net's resources" in str(info.value)


def test_public_ip_is_not_reused():
    # Two copies of one template: alone each would take the pool's first address.
    first = build(NET)
    lab = LabView.of([LabStackModel("net", "", first)])
    second = build(NET.split("Outputs:")[0], stack_name="b", qualifier="b.", lab=lab)
    assert first.instances["Web"].public_ip != second.instances["Web"].public_ip
    assert second.foreign == {}


def test_single_stack_build_is_unchanged():
    alone = build(NET)
    empty = build(NET, lab=LabView())
    assert alone == empty
    assert alone.foreign == {}
    assert alone.imported == frozenset()
    assert alone.qualifier == ""
