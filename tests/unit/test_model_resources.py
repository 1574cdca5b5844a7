"""Resource types: properties, references between types, roles, metadata, UserData."""

from __future__ import annotations

import base64
import textwrap

import pytest

from testbed.errors import TemplateErrors
from testbed.model.types import IgnoredProperty, LabOptions, RoleSpec

# A public subnet in AZ a; tests append resources below it (two-space indentation).
BASE = textwrap.dedent("""\
    Resources:
      VPC:
        Type: AWS::EC2::VPC
        Properties: {CidrBlock: 10.0.0.0/16, InstanceTenancy: default}
      Gateway: {Type: AWS::EC2::InternetGateway}
      Attach:
        Type: AWS::EC2::VPCGatewayAttachment
        Properties: {VpcId: !Ref VPC, InternetGatewayId: !Ref Gateway}
      Table:
        Type: AWS::EC2::RouteTable
        Properties: {VpcId: !Ref VPC}
      Default:
        Type: AWS::EC2::Route
        DependsOn: Attach
        Properties: {RouteTableId: !Ref Table, DestinationCidrBlock: 0.0.0.0/0,
                     GatewayId: !Ref Gateway}
      Subnet:
        Type: AWS::EC2::Subnet
        Properties: {VpcId: !Ref VPC, CidrBlock: 10.0.0.0/24, AvailabilityZone: us-east-1a,
                     MapPublicIpOnLaunch: true}
      Assoc:
        Type: AWS::EC2::SubnetRouteTableAssociation
        Properties: {SubnetId: !Ref Subnet, RouteTableId: !Ref Table}
""")
BASE_LINES = len(BASE.splitlines())


def with_resources(extra: str) -> str:
    return BASE + textwrap.indent(textwrap.dedent(extra), "  ")


def test_base_template_is_valid(load):
    model = load(BASE)
    assert model.subnets["Subnet"].public
    assert IgnoredProperty("VPC", "InstanceTenancy") in model.ignored


def test_unknown_resource_type_suggests_the_right_one(fails):
    text = with_resources("Web:\n  Type: AWS::EC2::Instanse\n")
    fails(
        text,
        "unknown resource type AWS::EC2::Instanse",
        "did you mean AWS::EC2::Instance?",
        logical_id="Web",
        line=BASE_LINES + 2,
    )


def test_unknown_resource_type_without_close_match_says_what_types_are(fails):
    text = with_resources("Queue:\n  Type: AWS::Nothing::Here\n")
    fails(text, "unknown resource type AWS::Nothing::Here", "AWS::Service::Type")


@pytest.mark.parametrize(
    ("prop", "hint"),
    [
        ("SubnetID: !Ref Subnet", "did you mean SubnetId?"),
        ("subnetid: !Ref Subnet", "did you mean SubnetId?"),
        ("PrivateIpAdress: 10.0.0.9", "did you mean PrivateIpAddress?"),
    ],
)
def test_unknown_property_suggests_the_right_one(fails, prop, hint):
    text = with_resources(f"Web:\n  Type: AWS::EC2::Instance\n  Properties:\n    {prop}\n")
    fails(text, "unknown property", hint, logical_id="Web", line=BASE_LINES + 4)


def test_several_property_errors_are_reported_together(fails):
    text = with_resources("""\
        Web:
          Type: AWS::EC2::Instance
          Properties: {SubnetId: !Ref Subnet, Foo: 1, Bar: 2}
    """)
    err = fails(text, "unknown property Foo", "unknown property Bar")
    assert isinstance(err, TemplateErrors)
    assert len(err.errors) == 2


def test_missing_required_property(fails):
    text = with_resources("Sub2:\n  Type: AWS::EC2::Subnet\n  Properties: {VpcId: !Ref VPC}\n")
    fails(text, "required property CidrBlock is missing", logical_id="Sub2", line=BASE_LINES + 3)


def test_unknown_resource_attribute(fails):
    text = with_resources("GW2:\n  Type: AWS::EC2::InternetGateway\n  Propertes: {}\n")
    fails(
        text,
        "unknown resource attribute 'Propertes'",
        "did you mean Properties?",
        logical_id="GW2",
        line=BASE_LINES + 3,
    )


def test_unknown_top_level_section(fails):
    fails(
        BASE + "Output:\n  X: {Value: 1}\n",
        "unknown template section 'Output'",
        "did you mean Outputs?",
        line=BASE_LINES + 1,
    )


def test_transforms_other_than_sam_and_language_extensions_are_refused(fails):
    fails("Transform: AWS::Include\n" + BASE, "transform AWS::Include cannot run", line=1)


def test_missing_resources_section(fails):
    fails("Description: nothing\n", "no Resources section")


@pytest.mark.parametrize(
    ("prop", "message"),
    [
        (
            "SubnetId: !Ref VPC",
            "SubnetId refers to VPC, which is an AWS::EC2::VPC, not an AWS::EC2::Subnet",
        ),
        ("SubnetId: subnet-Nope", "SubnetId 'subnet-Nope' is not the id of a resource"),
        ("SubnetId: Subnet", "write !Ref Subnet"),
        ("SubnetId: [a]", "SubnetId must be a resource id (write !Ref <LogicalId>), not a list"),
    ],
)
def test_reference_properties_check_the_target(fails, prop, message):
    text = with_resources(f"Web:\n  Type: AWS::EC2::Instance\n  Properties:\n    {prop}\n")
    fails(text, message, logical_id="Web", line=BASE_LINES + 4)


def test_reference_property_accepts_the_physical_id_of_a_created_resource(load):
    text = with_resources("""\
        Web:
          Type: AWS::EC2::Instance
          DependsOn: Subnet
          Properties: {SubnetId: subnet-Subnet}
    """)
    assert load(text).instances["Web"].subnet_id == "Subnet"


@pytest.mark.parametrize(
    ("props", "message"),
    [
        (
            "{CidrBlock: 10.0.0.0/16, EnableDnsSupport: maybe}",
            "EnableDnsSupport must be true or false",
        ),
        ("{CidrBlock: 10.0.0.1/16}", "has host bits set"),
        ("{CidrBlock: 10.0.0.0/33}", "is not an IPv4 CIDR block"),
        ("{CidrBlock: 'fd00::/48'}", "IPv6 is not supported"),
        ("{CidrBlock: true}", "CidrBlock must be a CIDR block, not a boolean"),
        ("{CidrBlock: ~}", "CidrBlock has no value"),
        ("[CidrBlock]", "Properties must be a mapping"),
    ],
)
def test_property_kinds_are_checked(fails, props, message):
    text = with_resources(f"VPC2:\n  Type: AWS::EC2::VPC\n  Properties: {props}\n")
    fails(text, message, logical_id="VPC2", line=BASE_LINES + 3)


def test_boolean_text_is_accepted(load):
    text = with_resources("""\
        VPC2:
          Type: AWS::EC2::VPC
          Properties: {CidrBlock: 10.1.0.0/16, EnableDnsSupport: "True"}
    """)
    assert "VPC2" in load(text).vpcs


def test_ignored_properties_are_listed(load):
    text = with_resources("""\
        Web:
          Type: AWS::EC2::Instance
          DeletionPolicy: Retain
          Metadata: {'AWS::CloudFormation::Init': {config: {}}}
          Properties:
            SubnetId: !Ref Subnet
            InstanceType: t3.micro
            KeyName: mykey
            Tags: [{Key: Name, Value: web}]
    """)
    ignored = load(text).ignored
    for prop in ("InstanceType", "KeyName", "DeletionPolicy"):
        assert IgnoredProperty("Web", prop) in ignored
    assert IgnoredProperty("Web", "Tags") not in ignored
    # cfn-init runs the Init metadata in the host (testbed.lab.hosttools.cfn_init).
    assert IgnoredProperty("Web", "Metadata.AWS::CloudFormation::Init") not in ignored


def test_unsupported_route_targets_are_explained(fails):
    text = with_resources("""\
        Peer:
          Type: AWS::EC2::Route
          Properties: {RouteTableId: !Ref Table, DestinationCidrBlock: 10.1.0.0/16,
                       InstanceId: i-1}
    """)
    fails(text, "InstanceId: instance targets is not supported by the lab yet", logical_id="Peer")


def test_route_needs_a_target(fails):
    text = with_resources("""\
        R2:
          Type: AWS::EC2::Route
          Properties: {RouteTableId: !Ref Table, DestinationCidrBlock: 10.1.0.0/16}
    """)
    fails(text, "the route has no target", logical_id="R2")


def test_roles_and_role_args(load):
    text = with_resources("""\
        Web:
          Type: AWS::EC2::Instance
          Metadata: {Lab: {Role: http-backend, RoleArgs: {port: 8080, body: !Ref AWS::Region}}}
          Properties: {SubnetId: !Ref Subnet}
        Client:
          Type: Lab::Internet::Client
          Metadata: {Lab: {Role: none}}
    """)
    model = load(text)
    assert model.instances["Web"].role == RoleSpec(
        "http-backend", {"port": 8080, "body": "us-east-1"}
    )
    assert model.internet_clients["Client"].role.name == "none"


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        (
            "{Lab: {Role: webserver}}",
            "unknown role 'webserver'; the roles are: appliance, http-backend, load-client, none",
        ),
        ("{Lab: {Role: http-backnd}}", "did you mean http-backend?"),
        ("{Lab: {RoleArgs: {}}}", "Metadata.Lab needs a Role"),
        ("{Lab: {Role: none, Args: {}}}", "unknown key Metadata.Lab.Args"),
        ("{Lab: {Role: none, RoleArgs: [1]}}", "RoleArgs must be a mapping"),
        ("{Lab: [Role]}", "Metadata.Lab must be a mapping"),
        ("[Lab]", "Metadata must be a mapping"),
    ],
)
def test_role_errors(fails, metadata, message):
    text = with_resources(f"""\
        Web:
          Type: AWS::EC2::Instance
          Metadata: {metadata}
          Properties: {{SubnetId: !Ref Subnet}}
    """)
    fails(text, message, logical_id="Web", line=BASE_LINES + 3)


def test_role_only_on_hosts(fails):
    text = BASE.replace(
        "Gateway: {Type: AWS::EC2::InternetGateway}",
        "Gateway: {Type: AWS::EC2::InternetGateway, Metadata: {Lab: {Role: none}}}",
    )
    fails(text, "Metadata.Lab is only for hosts", logical_id="Gateway", line=5)


def test_user_data_forms(load):
    script = "#!/bin/sh\necho hi\n"
    encoded = base64.b64encode(script.encode()).decode()
    text = with_resources(f"""\
        A:
          Type: AWS::EC2::Instance
          Properties:
            SubnetId: !Ref Subnet
            UserData: !Base64 "echo from-base64"
        B:
          Type: AWS::EC2::Instance
          Properties: {{SubnetId: !Ref Subnet, UserData: {encoded}}}
        C:
          Type: AWS::EC2::Instance
          Properties: {{SubnetId: !Ref Subnet, UserData: "echo plain"}}
        D:
          Type: Lab::Internet::Client
          Properties: {{UserData: {{'Fn::Base64': !Sub "echo ${{AWS::Region}}"}}}}
    """)
    model = load(text)
    assert model.instances["A"].user_data == "echo from-base64"
    assert model.instances["B"].user_data == script
    assert model.instances["C"].user_data == "echo plain"
    assert model.internet_clients["D"].user_data == "echo us-east-1"


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ("", LabOptions()),
        ("Metadata: {Lab: {InterAzDelayMs: 5}}", LabOptions(inter_az_delay_ms=5.0)),
        (
            "Metadata: {Lab: {LinkBandwidthMbps: '100', Datapath: user}}",
            LabOptions(link_bandwidth_mbps=100.0, datapath="user"),
        ),
        ("Metadata: {Lab: {InterAzDelayMs: !Ref Delay}}", LabOptions(inter_az_delay_ms=2.5)),
        ("Metadata: {Other: {x: 1}}", LabOptions()),
    ],
)
def test_lab_options(load, metadata, expected):
    text = f"{metadata}\nParameters:\n  Delay: {{Type: Number, Default: 2.5}}\n" + BASE
    assert load(text).lab == expected


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ("{Lab: {InterAzDelayMs: -1}}", "InterAzDelayMs must be a number 0 or more"),
        ("{Lab: {LinkBandwidthMbps: 0}}", "LinkBandwidthMbps must be a number more than 0"),
        ("{Lab: {Datapath: fast}}", "Datapath must be one of auto, kernel, user"),
        ("{Lab: {InterAzDelay: 1}}", "did you mean InterAzDelayMs?"),
        ("{Lab: {InterAzDelayMs: !Ref Nope}}", "'Nope'"),
    ],
)
def test_lab_option_errors(fails, metadata, message):
    fails(f"Metadata: {metadata}\n" + BASE, message, line=1)
