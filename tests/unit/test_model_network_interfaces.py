"""Network interfaces: standalone ENIs, attachments, an instance's NetworkInterfaces."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from tests.unit.elbv2_data import stack
from tests.unit.sg_stub import security_groups  # noqa: F401  (a fixture)


def ips(*texts: str) -> tuple[IPv4Address, ...]:
    return tuple(IPv4Address(t) for t in texts)


def last_line(text: str) -> int:
    return len(text.splitlines())


def eni(name: str, props: str) -> str:
    return f"{name}: {{Type: AWS::EC2::NetworkInterface, Properties: {props}}}\n"


def web(nics: str, extra: str = "") -> str:
    return (
        f"Web: {{Type: AWS::EC2::Instance, Properties: {{NetworkInterfaces: {nics}"
        f"{', ' + extra if extra else ''}}}}}\n"
    )


# --- AWS::EC2::NetworkInterface ----------------------------------------------------------


def test_one_primary_in_private_ip_addresses_is_valid(load):
    # A single-entry list with Primary: true was wrongly refused before.
    text = stack(
        eni(
            "Eni",
            "{SubnetId: !Ref PrivA, PrivateIpAddresses: [{PrivateIpAddress: 10.0.2.30, "
            "Primary: true}]}",
        )
    )
    interface = load(text).network_interfaces["Eni"]
    assert (interface.private_ip, interface.secondary_ips) == (IPv4Address("10.0.2.30"), ())
    assert (interface.instance_id, interface.device_index, interface.public_ip) == (
        None,
        None,
        None,
    )


def test_interface_addresses_groups_and_attributes(load):
    text = stack(
        eni(
            "Eni",
            "{SubnetId: !Ref PrivA, PrivateIpAddress: 10.0.2.30, SecondaryPrivateIpAddressCount: "
            "2, SourceDestCheck: false, Description: router, Tags: [{Key: Name, Value: r}]}",
        )
    )
    text += (
        "Outputs:\n  Id: {Value: !Ref Eni}\n  Same: {Value: !GetAtt Eni.Id}\n"
        "  Primary: {Value: !GetAtt Eni.PrimaryPrivateIpAddress}\n"
        "  Secondary: {Value: !GetAtt Eni.SecondaryPrivateIpAddresses}\n"
    )
    model = load(text)
    interface = model.network_interfaces["Eni"]
    # WebA holds 10.0.2.4: the secondary addresses are the lowest free ones after it.
    assert interface.secondary_ips == ips("10.0.2.5", "10.0.2.6")
    assert interface.source_dest_check is False
    assert interface.security_groups == ("VPC.default",)
    assert model.outputs == {
        "Id": "eni-Eni",
        "Same": "eni-Eni",
        "Primary": "10.0.2.30",
        "Secondary": ["10.0.2.5", "10.0.2.6"],
    }
    assert ("Eni", "Description") in [(i.logical_id, i.property) for i in model.ignored]


def test_listed_addresses_without_a_primary_are_secondary(load):
    text = stack(
        eni(
            "Eni",
            "{SubnetId: !Ref PrivA, PrivateIpAddresses: [{PrivateIpAddress: 10.0.2.30, "
            "Primary: false}, {PrivateIpAddress: 10.0.2.31, Primary: false}]}",
        )
    )
    interface = load(text).network_interfaces["Eni"]
    assert interface.private_ip == IPv4Address("10.0.2.5")
    assert interface.secondary_ips == ips("10.0.2.30", "10.0.2.31")


def test_literal_addresses_are_kept_from_earlier_automatic_ones(load):
    # Early takes the lowest free address, which Later names literally: it gets the next.
    text = stack(
        "Early: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref PrivA}}\n",
        eni(
            "Later",
            "{SubnetId: !Ref PrivA, PrivateIpAddresses: [{PrivateIpAddress: 10.0.2.5, "
            "Primary: true}]}",
        ),
    )
    model = load(text)
    assert model.instances["Early"].private_ip == IPv4Address("10.0.2.6")
    assert model.network_interfaces["Later"].private_ip == IPv4Address("10.0.2.5")


@pytest.mark.parametrize(
    ("props", "message"),
    [
        (
            "{SubnetId: !Ref PrivA, PrivateIpAddresses: [{PrivateIpAddress: 10.0.2.30, Primary: "
            "true}, {PrivateIpAddress: 10.0.2.31, Primary: true}]}",
            "PrivateIpAddresses marks 2 addresses Primary: true (10.0.2.30, 10.0.2.31); an "
            "interface has one primary address",
        ),
        (
            "{SubnetId: !Ref PrivA, PrivateIpAddress: 10.0.2.30, PrivateIpAddresses: "
            "[{PrivateIpAddress: 10.0.2.31, Primary: true}]}",
            "PrivateIpAddress 10.0.2.30 is the primary address, so no address of "
            "PrivateIpAddresses may be Primary: true",
        ),
        (
            "{SubnetId: !Ref PrivA, SecondaryPrivateIpAddressCount: 1, PrivateIpAddresses: "
            "[{PrivateIpAddress: 10.0.2.30, Primary: true}, {PrivateIpAddress: 10.0.2.31, "
            "Primary: false}]}",
            "SecondaryPrivateIpAddressCount cannot be combined with more than one address",
        ),
        (
            "{SubnetId: !Ref PrivA, SecondaryPrivateIpAddressCount: 50}",
            "SecondaryPrivateIpAddressCount must be from 0 to 49, not 50",
        ),
        (
            "{SubnetId: !Ref PrivA, PrivateIpAddresses: [{PrivateIpAddress: 10.0.2.30}, "
            "{PrivateIpAddress: 10.0.2.30}]}",
            "PrivateIpAddresses[1]: address 10.0.2.30 is listed twice",
        ),
        (
            "{SubnetId: !Ref PrivA, PrivateIpAddress: 10.0.3.30}",
            "address 10.0.3.30 is not inside subnet PrivA",
        ),
        (
            "{SubnetId: !Ref PrivA, PrivateIpAddress: 10.0.2.255}",
            "address 10.0.2.255 is the broadcast address (reserved by AWS)",
        ),
        (
            "{SubnetId: !Ref PrivA, PrivateIpAddresses: [{PrivateIpAddress: 10.0.2.3}]}",
            "address 10.0.2.3 is reserved by AWS for future use",
        ),
        (
            "{SubnetId: !Ref PrivA, PrivateIpAddresses: [{Primary: true}]}",
            "required property PrivateIpAddresses[0].PrivateIpAddress is missing",
        ),
        ("{PrivateIpAddress: 10.0.2.30}", "required property SubnetId is missing"),
        ("{SubnetId: !Ref PrivA, Ipv4PrefixCount: 1}", "prefix delegation is not supported"),
    ],
)
def test_interface_errors(fails, props, message):
    text = stack(eni("Eni", props))
    fails(text, message, logical_id="Eni", line=last_line(text))


# --- Security groups of interfaces ---------------------------------------------------------


@pytest.mark.usefixtures("security_groups")
def test_group_set_names_the_interface_groups(load):
    text = stack(
        "Sg: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: web, "
        "VpcId: !Ref VPC}}\n",
        "Sg2: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: admin, "
        "VpcId: !Ref VPC}}\n",
        eni("Eni", "{SubnetId: !Ref PrivA, GroupSet: [!Ref Sg2]}"),
        web(
            "[{DeviceIndex: 0, SubnetId: !Ref PubA, GroupSet: [!Ref Sg, !GetAtt Sg2.GroupId]}, "
            "{DeviceIndex: 1, SubnetId: !Ref PrivA, GroupSet: [!Ref Sg2]}]"
        ),
    )
    model = load(text)
    instance = model.instances["Web"]
    assert instance.security_groups == ("Sg", "Sg2")
    assert instance.extra_interfaces[0].security_groups == ("Sg2",)
    assert model.network_interfaces["Eni"].security_groups == ("Sg2",)


@pytest.mark.usefixtures("security_groups")
def test_group_set_must_name_groups_of_the_stack(fails):
    text = stack(web("[{DeviceIndex: 0, SubnetId: !Ref PubA, GroupSet: [sg-nope]}]"))
    fails(
        text,
        "NetworkInterfaces[0].GroupSet[0] 'sg-nope' is not the id of a security group",
        logical_id="Web",
    )


# --- An instance's NetworkInterfaces ------------------------------------------------------


def test_inline_interfaces_in_device_order(load):
    text = stack(
        web(
            "[{DeviceIndex: 2, SubnetId: !Ref PrivA, PrivateIpAddress: 10.0.2.20}, "
            "{DeviceIndex: '0', SubnetId: !Ref PubA, SecondaryPrivateIpAddressCount: 1}, "
            "{DeviceIndex: 1, SubnetId: !Ref PubA, DeleteOnTermination: true}]",
            "SourceDestCheck: false",
        )
    )
    model = load(text)
    instance = model.instances["Web"]
    assert (instance.subnet_id, instance.private_ip, instance.secondary_ips) == (
        "PubA",
        IPv4Address("10.0.0.4"),
        ips("10.0.0.5"),
    )
    assert instance.source_dest_check is False
    assert instance.security_groups == ("VPC.default",)
    assert [
        (i.logical_id, i.device_index, i.subnet_id, str(i.private_ip), i.instance_id)
        for i in instance.extra_interfaces
    ] == [
        ("Web.eth1", 1, "PubA", "10.0.0.6", "Web"),
        ("Web.eth2", 2, "PrivA", "10.0.2.20", "Web"),
    ]
    assert model.network_interfaces == {}  # inline interfaces are not standalone resources


def test_existing_interfaces_as_eth0_and_eth1(load):
    text = stack(
        eni("Main", "{SubnetId: !Ref PubA, PrivateIpAddress: 10.0.0.30, SourceDestCheck: false}"),
        eni("Side", "{SubnetId: !Ref PrivA}"),
        web(
            "[{DeviceIndex: 0, NetworkInterfaceId: !Ref Main}, "
            "{DeviceIndex: 1, NetworkInterfaceId: !Ref Side}]"
        ),
    )
    model = load(text)
    instance = model.instances["Web"]
    assert (instance.subnet_id, str(instance.private_ip), instance.source_dest_check) == (
        "PubA",
        "10.0.0.30",
        False,
    )
    assert [i.logical_id for i in instance.extra_interfaces] == ["Side"]
    main, side = model.network_interfaces["Main"], model.network_interfaces["Side"]
    assert (main.instance_id, main.device_index) == ("Web", 0)
    assert (side.instance_id, side.device_index) == ("Web", 1)


def test_eip_on_an_existing_eth0_is_the_instance_public_address(load, fails):
    text = stack(
        eni("Main", "{SubnetId: !Ref PubA}"),
        web("[{DeviceIndex: 0, NetworkInterfaceId: !Ref Main}]"),
        "Eip: {Type: AWS::EC2::EIP}\n",
        "Assoc: {Type: AWS::EC2::EIPAssociation, Properties: {AllocationId: !GetAtt "
        "Eip.AllocationId, NetworkInterfaceId: !Ref Main}}\n",
    )
    model = load(text)
    assert str(model.instances["Web"].public_ip) == "203.0.113.254"
    assert str(model.network_interfaces["Main"].public_ip) == "203.0.113.254"
    # Web's eth0 is Main: an EIP by InstanceId would go to the same interface.
    text += "  Again: {Type: AWS::EC2::EIP, Properties: {InstanceId: !Ref Web}}\n"
    fails(
        text,
        "instance Web already has Elastic IP Eip (203.0.113.254), associated by Assoc",
        logical_id="Again",
    )


def test_several_interfaces_get_no_automatic_public_address(load, fails):
    # Default subnets map public addresses, but not for an instance launched with two
    # interfaces (AWS); an instance launched with one does get one.
    text = stack(
        "Two: {Type: AWS::EC2::Instance, Properties: {NetworkInterfaces: [{DeviceIndex: 0}, "
        "{DeviceIndex: 1}]}}\n",
        "One: {Type: AWS::EC2::Instance, Properties: {NetworkInterfaces: [{DeviceIndex: 0}]}}\n",
    )
    model = load(text)
    assert model.instances["Two"].public_ip is None
    assert model.instances["Two"].extra_interfaces[0].subnet_id == "DefaultSubnet1a"
    assert str(model.instances["One"].public_ip) == "203.0.113.10"
    text += "Outputs:\n  Ip: {Value: !GetAtt Two.PublicIp}\n"
    fails(text, "it was launched with 2 network interfaces")


@pytest.mark.parametrize(
    ("nics", "message"),
    [
        (
            "[{DeviceIndex: 0, SubnetId: !Ref PubA}, {DeviceIndex: 1, SubnetId: !Ref PrivA, "
            "AssociatePublicIpAddress: false}]",
            "NetworkInterfaces[1].AssociatePublicIpAddress: a public address goes only to the "
            "primary interface (DeviceIndex 0)",
        ),
        (
            "[{DeviceIndex: 0, SubnetId: !Ref PubA, AssociatePublicIpAddress: true}, "
            "{DeviceIndex: 1, SubnetId: !Ref PrivA}]",
            "AWS assigns a public address only to an instance launched with one network "
            "interface, not 2",
        ),
        (
            "[{DeviceIndex: 0, NetworkInterfaceId: !Ref Eni, AssociatePublicIpAddress: true}]",
            "a public address goes only to a new interface, not an existing one",
        ),
        (
            "[{DeviceIndex: 0, NetworkInterfaceId: !Ref Eni, SubnetId: !Ref PrivA}]",
            "NetworkInterfaces[0].SubnetId: an entry with NetworkInterfaceId attaches an existing "
            "interface, which has its own SubnetId",
        ),
        (
            "[{DeviceIndex: 0, SubnetId: !Ref PubA}, {DeviceIndex: 1, SubnetId: !Ref PrivB}]",
            "NetworkInterfaces[1].SubnetId: subnet PrivB is in us-east-1b but the instance's "
            "primary interface is in us-east-1a; an instance's interfaces are in one AZ",
        ),
        (
            "[{DeviceIndex: 0, SubnetId: !Ref PubB}, {DeviceIndex: 1, NetworkInterfaceId: "
            "!Ref Eni}]",
            "network interface Eni is in us-east-1a (subnet PrivA) but instance Web is in "
            "us-east-1b",
        ),
        (
            "[{DeviceIndex: 0, SubnetId: !Ref PubA}, {DeviceIndex: -1, SubnetId: !Ref PubA}]",
            "NetworkInterfaces[1].DeviceIndex must be 0 or more, not -1",
        ),
        ("[]", "NetworkInterfaces is empty"),
        (
            "[{DeviceIndex: 0, SubnetId: !Ref PubA, PrivateIpAddresses: [{PrivateIpAddress: "
            "10.0.0.9, Primary: true}, {PrivateIpAddress: 10.0.0.10, Primary: true}]}]",
            "NetworkInterfaces[0].PrivateIpAddresses marks 2 addresses Primary: true",
        ),
    ],
)
def test_instance_interface_errors(fails, nics, message):
    text = stack(eni("Eni", "{SubnetId: !Ref PrivA}"), web(nics))
    fails(text, message, logical_id="Web", line=last_line(text))


def test_instance_az_must_match_its_interfaces(fails):
    text = stack(web("[{DeviceIndex: 0, SubnetId: !Ref PubA}]", "AvailabilityZone: us-east-1b"))
    fails(text, "AvailabilityZone us-east-1b differs from the AZ of subnet PubA", logical_id="Web")


def test_an_interface_is_attached_once(fails):
    text = stack(
        eni("Eni", "{SubnetId: !Ref PrivA}"),
        web("[{DeviceIndex: 0, NetworkInterfaceId: !Ref Eni}]"),
        "Web2: {Type: AWS::EC2::Instance, Properties: {NetworkInterfaces: "
        "[{DeviceIndex: 0, NetworkInterfaceId: !Ref Eni}]}}\n",
    )
    fails(
        text,
        "network interface Eni is already attached to Web (DeviceIndex 0, by Web)",
        logical_id="Web2",
        line=last_line(text),
    )


# --- AWS::EC2::NetworkInterfaceAttachment ----------------------------------------------


def attachment(name: str, eni_name: str, index: str, instance: str = "Web") -> str:
    return (
        f"{name}: {{Type: AWS::EC2::NetworkInterfaceAttachment, Properties: {{InstanceId: "
        f"!Ref {instance}, NetworkInterfaceId: !Ref {eni_name}, DeviceIndex: {index}}}}}\n"
    )


def test_attachments_join_the_instance_in_device_order(load):
    text = stack(
        web("[{DeviceIndex: 0, SubnetId: !Ref PubA}, {DeviceIndex: 1, SubnetId: !Ref PrivA}]"),
        eni("Far", "{SubnetId: !Ref PrivA}"),
        eni("Near", "{SubnetId: !Ref PubA}"),
        attachment("AttachFar", "Far", "'3'"),
        attachment("AttachNear", "Near", "2"),
    )
    text += "Outputs:\n  Att: {Value: !GetAtt AttachFar.AttachmentId}\n"
    model = load(text)
    assert [i.logical_id for i in model.instances["Web"].extra_interfaces] == [
        "Web.eth1",
        "Near",
        "Far",
    ]
    assert model.network_interfaces["Far"].device_index == 3
    assert model.outputs["Att"] == "eni-attach-AttachFar"


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        (
            attachment("Att", "Eni", "0"),
            "DeviceIndex 0: index 0 is the instance's primary interface",
        ),
        (
            attachment("Att", "Eni", "1"),
            "instance Web already has an interface at DeviceIndex 1 (Web.eth1, by Web)",
        ),
        (
            attachment("First", "Eni", "2") + attachment("Att", "Eni", "3"),
            "network interface Eni is already attached to Web (DeviceIndex 2, by First)",
        ),
        (
            attachment("Att", "Eni", "2", instance="WebB"),
            "network interface Eni is in us-east-1a (subnet PrivA) but instance WebB is in "
            "us-east-1b; an instance's interfaces are in its AZ",
        ),
    ],
)
def test_attachment_errors(fails, resources, message):
    text = stack(
        web("[{DeviceIndex: 0, SubnetId: !Ref PubA}, {DeviceIndex: 1, SubnetId: !Ref PrivA}]"),
        eni("Eni", "{SubnetId: !Ref PrivA}"),
        resources,
    )
    fails(text, message, logical_id="Att", line=last_line(text))
