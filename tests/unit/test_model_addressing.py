"""Address allocation: private addresses, public addresses, internet clients."""

from __future__ import annotations

import textwrap
from ipaddress import IPv4Address, IPv4Network

import pytest

from testbed.model.addressing import reserved_reason

# A public subnet (10.0.0.0/24, maps public IPs), a private one (10.0.1.0/24) and a small
# public one without MapPublicIpOnLaunch (10.0.2.0/28). Tests append hosts below.
BASE = textwrap.dedent("""\
    Resources:
      VPC:
        Type: AWS::EC2::VPC
        Properties: {CidrBlock: 10.0.0.0/16}
      Gateway: {Type: AWS::EC2::InternetGateway}
      Attach:
        Type: AWS::EC2::VPCGatewayAttachment
        Properties: {VpcId: !Ref VPC, InternetGatewayId: !Ref Gateway}
      Public:
        Type: AWS::EC2::RouteTable
        Properties: {VpcId: !Ref VPC}
      Default:
        Type: AWS::EC2::Route
        DependsOn: Attach
        Properties: {RouteTableId: !Ref Public, DestinationCidrBlock: 0.0.0.0/0,
                     GatewayId: !Ref Gateway}
      PubNet:
        Type: AWS::EC2::Subnet
        Properties: {VpcId: !Ref VPC, CidrBlock: 10.0.0.0/24, MapPublicIpOnLaunch: true}
      PubAssoc:
        Type: AWS::EC2::SubnetRouteTableAssociation
        Properties: {SubnetId: !Ref PubNet, RouteTableId: !Ref Public}
      PrivNet:
        Type: AWS::EC2::Subnet
        Properties: {VpcId: !Ref VPC, CidrBlock: 10.0.1.0/24, MapPublicIpOnLaunch: true}
      Small:
        Type: AWS::EC2::Subnet
        Properties: {VpcId: !Ref VPC, CidrBlock: 10.0.2.0/28}
      SmallAssoc:
        Type: AWS::EC2::SubnetRouteTableAssociation
        Properties: {SubnetId: !Ref Small, RouteTableId: !Ref Public}
""")
BASE_LINES = len(BASE.splitlines())


def hosts(*lines: str) -> str:
    """BASE plus one resource per line ('Name: {Type: ..., Properties: ...}')."""
    return BASE + "".join(f"  {line}\n" for line in lines)


def instance(name: str, subnet: str, extra: str = "") -> str:
    return (
        f"{name}: {{Type: AWS::EC2::Instance, Properties: {{SubnetId: !Ref {subnet}"
        f"{', ' + extra if extra else ''}}}}}"
    )


def test_first_address_is_network_plus_four_in_creation_order(load):
    model = load(hosts(instance("A", "PubNet"), instance("B", "PubNet"), instance("C", "PrivNet")))
    ips = {k: str(v.private_ip) for k, v in model.instances.items()}
    assert ips == {"A": "10.0.0.4", "B": "10.0.0.5", "C": "10.0.1.4"}


def test_explicit_address_is_honoured_and_set_aside(load):
    # A is created first but must not take .4, which B asks for literally.
    model = load(
        hosts(instance("A", "PubNet"), instance("B", "PubNet", "PrivateIpAddress: 10.0.0.4"))
    )
    assert str(model.instances["A"].private_ip) == "10.0.0.5"
    assert str(model.instances["B"].private_ip) == "10.0.0.4"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.0.0.0", "the network address"),
        ("10.0.0.1", "VPC router"),
        ("10.0.0.2", "DNS server"),
        ("10.0.0.3", "future use"),
        ("10.0.0.255", "broadcast"),
    ],
)
def test_reserved_addresses_are_rejected(fails, address, reason):
    text = hosts(instance("A", "PubNet", f"PrivateIpAddress: {address}"))
    fails(
        text,
        f"address {address} is",
        reason,
        "first usable address is 10.0.0.4",
        logical_id="A",
        line=BASE_LINES + 1,
    )


def test_address_outside_the_subnet_is_rejected(fails):
    fails(
        hosts(instance("A", "PubNet", "PrivateIpAddress: 10.0.1.10")),
        "address 10.0.1.10 is not inside subnet PubNet (10.0.0.0/24)",
        logical_id="A",
    )


def test_bad_address_text(fails):
    fails(
        hosts(instance("A", "PubNet", "PrivateIpAddress: 10.0.0.300")),
        "PrivateIpAddress '10.0.0.300' is not an IPv4 address",
        logical_id="A",
    )


def test_duplicate_address_names_both_instances(fails):
    text = hosts(
        instance("A", "PubNet", "PrivateIpAddress: 10.0.0.9"),
        instance("B", "PubNet", "PrivateIpAddress: 10.0.0.9"),
    )
    fails(
        text,
        "address 10.0.0.9 is already used by A",
        "give B and A different addresses",
        logical_id="B",
        line=BASE_LINES + 2,
    )


def test_computed_address_clashing_with_an_automatic_one(fails):
    text = hosts(
        instance("A", "PubNet"),
        instance("B", "PubNet", "PrivateIpAddress: !Join ['.', [10, 0, 0, 4]]"),
    )
    fails(text, "address 10.0.0.4 is already used by A", logical_id="B")


def test_running_out_of_addresses_names_the_subnet(fails, load):
    # A /28 has 16 addresses: 5 reserved by AWS, 11 for instances.
    eleven = [instance(f"I{i}", "Small") for i in range(11)]
    model = load(hosts(*eleven))
    assert str(model.instances["I10"].private_ip) == "10.0.2.14"
    fails(
        hosts(*eleven, instance("I11", "Small")),
        "no free address left in subnet Small (10.0.2.0/28",
        logical_id="I11",
    )


def test_public_addresses_only_in_public_subnets_in_creation_order(load):
    model = load(
        hosts(
            instance("A", "PubNet"),
            instance("P", "PrivNet"),
            instance("S", "Small"),
            instance("B", "PubNet"),
        )
    )
    public = {k: v.public_ip and str(v.public_ip) for k, v in model.instances.items()}
    # PrivNet maps public IPs but has no route to the internet; Small has the route but
    # does not map them.
    assert public == {"A": "203.0.113.10", "P": None, "S": None, "B": "203.0.113.11"}


def test_associate_public_ip_address_overrides_the_subnet(load, fails):
    nic = (
        "{Type: AWS::EC2::Instance, Properties: {NetworkInterfaces: [{DeviceIndex: 0, "
        "SubnetId: !Ref %s, AssociatePublicIpAddress: %s}]}}"
    )
    model = load(hosts("A: " + nic % ("Small", "true"), "B: " + nic % ("PubNet", "false")))
    assert str(model.instances["A"].public_ip) == "203.0.113.10"
    assert model.instances["B"].public_ip is None
    fails(
        hosts("C: " + nic % ("PrivNet", "true")),
        "AssociatePublicIpAddress is true but subnet PrivNet has no route table",
        logical_id="C",
        line=BASE_LINES + 1,
    )


def test_public_pool_runs_out(fails):
    many = [instance(f"I{i}", "PubNet") for i in range(246)]  # .10 to .254 is 245
    fails(hosts(*many), "no free address left in the public address pool", logical_id="I245")


def test_attributes_of_addresses(load):
    model = load(
        hosts(
            instance("A", "PubNet"),
            instance("B", "PrivNet"),
            "C: {Type: Lab::Internet::Client, Properties: {UserData: !Sub "
            "'${A.PrivateIp} ${A.PublicIp} ${A.PrivateDnsName} ${A.PublicDnsName} "
            "${B.AvailabilityZone}'}}",
        )
    )
    assert model.internet_clients["C"].user_data == (
        "10.0.0.4 203.0.113.10 ip-10-0-0-4.ec2.internal "
        "ec2-203-0-113-10.compute-1.amazonaws.com us-east-1a"
    )


def test_dns_names_outside_us_east_1(load):
    text = hosts(instance("A", "PubNet"))
    text += "Outputs:\n  D: {Value: !Sub '${A.PrivateDnsName} ${A.PublicDnsName}'}\n"
    model = load(text, region="eu-west-1")
    assert model.outputs["D"] == (
        "ip-10-0-0-4.eu-west-1.compute.internal ec2-203-0-113-10.eu-west-1.compute.amazonaws.com"
    )


def test_public_ip_of_a_private_instance_is_an_error(fails):
    text = hosts(instance("B", "PrivNet"))
    text += "Outputs:\n  Ip:\n    Value: !GetAtt B.PublicIp\n"
    fails(text, "B has no public IP address", "PrivNet", logical_id="Ip", line=BASE_LINES + 4)
    text = hosts(instance("S", "Small")) + "Outputs:\n  Ip: {Value: !GetAtt S.PublicIp}\n"
    fails(text, "S has no public IP address", "MapPublicIpOnLaunch")


def test_internet_clients_from_ten_with_explicit_ones_honoured(load):
    model = load(
        hosts(
            "C1: {Type: Lab::Internet::Client}",
            "C2: {Type: Lab::Internet::Client, Properties: {IpAddress: 198.51.100.11}}",
            "C3: {Type: Lab::Internet::Client, Properties: {}}",
            "C4: {Type: Lab::Internet::Client, Properties: {IpAddress: 198.51.100.2}}",
        )
    )
    ips = {k: str(v.ip) for k, v in model.internet_clients.items()}
    assert ips == {
        "C1": "198.51.100.10",
        "C2": "198.51.100.11",
        "C3": "198.51.100.12",
        "C4": "198.51.100.2",
    }


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("198.51.100.1", "is the internet gateway's"),
        ("198.51.100.0", "network or broadcast"),
        ("198.51.100.255", "network or broadcast"),
        ("10.0.0.9", "not on the internet segment 198.51.100.0/24"),
        ("nope", "is not an IPv4 address"),
    ],
)
def test_client_address_errors(fails, address, message):
    text = hosts(f"C1: {{Type: Lab::Internet::Client, Properties: {{IpAddress: {address}}}}}")
    fails(text, message, logical_id="C1", line=BASE_LINES + 1)


def test_duplicate_client_addresses(fails):
    text = hosts(
        "C1: {Type: Lab::Internet::Client, Properties: {IpAddress: 198.51.100.20}}",
        "C2: {Type: Lab::Internet::Client, Properties: {IpAddress: 198.51.100.20}}",
    )
    fails(text, "address 198.51.100.20 is already used by C1", logical_id="C2")


@pytest.mark.parametrize(
    ("nic", "message"),
    [
        (
            "[{DeviceIndex: 0, SubnetId: !Ref PubNet}, {DeviceIndex: 0, SubnetId: !Ref PubNet}]",
            "NetworkInterfaces[1].DeviceIndex 0 is also the DeviceIndex of NetworkInterfaces[0]",
        ),
        (
            "[{DeviceIndex: 1, SubnetId: !Ref PubNet}]",
            "NetworkInterfaces has no entry with DeviceIndex 0",
        ),
        ("[{SubnetId: !Ref PubNet}]", "required property NetworkInterfaces[0].DeviceIndex"),
        (
            "[{DeviceIndex: 0, SubnetID: !Ref PubNet}]",
            "unknown property NetworkInterfaces[0].SubnetID",
        ),
        (
            "[{DeviceIndex: 0, NetworkInterfaceId: eni-1}]",
            "NetworkInterfaces[0].NetworkInterfaceId 'eni-1' is not the id of a resource",
        ),
        ("[x]", "NetworkInterfaces[0] must be a mapping"),
        ("x", "NetworkInterfaces must be a list"),
    ],
)
def test_network_interface_errors(fails, nic, message):
    text = hosts(f"A: {{Type: AWS::EC2::Instance, Properties: {{NetworkInterfaces: {nic}}}}}")
    fails(text, message, logical_id="A", line=BASE_LINES + 1)


def test_network_interfaces_and_top_level_subnet_conflict(fails):
    text = hosts(
        "A: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref PubNet, "
        "NetworkInterfaces: [{DeviceIndex: 0, SubnetId: !Ref PubNet}]}}"
    )
    fails(text, "give SubnetId either at the top or in NetworkInterfaces", logical_id="A")


def test_network_interface_ignored_properties_are_listed(load):
    model = load(
        hosts(
            "A: {Type: AWS::EC2::Instance, Properties: {NetworkInterfaces: "
            "[{DeviceIndex: '0', SubnetId: !Ref PubNet, Description: web, "
            "PrivateIpAddress: 10.0.0.50}]}}"
        )
    )
    assert str(model.instances["A"].private_ip) == "10.0.0.50"
    assert ("A", "NetworkInterfaces[0].Description") in [
        (i.logical_id, i.property) for i in model.ignored
    ]


def test_instance_az_must_match_its_subnet(fails, load):
    assert load(hosts(instance("A", "PubNet", "AvailabilityZone: us-east-1a")))
    fails(
        hosts(instance("A", "PubNet", "AvailabilityZone: us-east-1b")),
        "differs from the AZ of subnet PubNet (us-east-1a)",
        logical_id="A",
    )


def test_reserved_reason_helper():
    net = IPv4Network("10.0.0.0/28")
    assert reserved_reason(net, IPv4Address("10.0.0.4")) is None
    assert reserved_reason(net, IPv4Address("10.0.0.14")) is None
    assert "broadcast" in reserved_reason(net, IPv4Address("10.0.0.15"))
