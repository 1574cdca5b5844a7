"""The shipped templates load to the model their text describes."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from testbed.errors import BadInput
from testbed.model import load_model, load_model_text
from testbed.model.types import IgnoredProperty, LabOptions, RoleSpec
from testbed.template.yaml_loader import load_text

REPO = Path(__file__).resolve().parents[2]
DEFAULT = str(REPO / "templates" / "default.yaml")
THREE_AZ = str(REPO / "templates" / "three-az.yaml")


def addresses(model):
    return {
        lid: (str(i.private_ip), i.public_ip and str(i.public_ip), i.subnet_id, i.az)
        for lid, i in model.instances.items()
    }


def test_default_template():
    model = load_model(DEFAULT)
    # VPC 10.0.0.0/16 cut into /24s by !Cidr [.., 4, 8]: public a, private a, public b, ...
    assert model.vpcs["VPC"].cidr == IPv4Network("10.0.0.0/16")
    assert {
        k: (str(s.cidr), s.az, s.public, s.route_table_id) for k, s in model.subnets.items()
    } == {
        "PublicSubnetA": ("10.0.0.0/24", "us-east-1a", True, "PublicRouteTable"),
        "PrivateSubnetA": ("10.0.1.0/24", "us-east-1a", False, "PrivateRouteTable"),
        "PublicSubnetB": ("10.0.2.0/24", "us-east-1b", True, "PublicRouteTable"),
        "PrivateSubnetB": ("10.0.3.0/24", "us-east-1b", False, "PrivateRouteTable"),
    }
    assert addresses(model) == {
        "WebA1": ("10.0.0.4", "203.0.113.10", "PublicSubnetA", "us-east-1a"),
        "WebA2": ("10.0.1.4", None, "PrivateSubnetA", "us-east-1a"),
        "WebB1": ("10.0.2.4", "203.0.113.11", "PublicSubnetB", "us-east-1b"),
        "WebB2": ("10.0.3.4", None, "PrivateSubnetB", "us-east-1b"),
    }
    assert all(i.role == RoleSpec("http-backend") for i in model.instances.values())
    assert model.instances["WebB2"].user_data.startswith("#!/bin/sh\n")
    assert 'echo "hello from default in $(hostname -I)"' in model.instances["WebB2"].user_data
    assert model.internet_clients["Client1"].ip == IPv4Address("198.51.100.10")
    assert model.internet_gateways["InternetGateway"].vpc_id == "VPC"
    assert dict(model.outputs) == {
        "VpcId": "vpc-VPC",
        "WebA1PublicIp": "203.0.113.10",
        "WebA2PrivateIp": "10.0.1.4",
        "ClientIp": "198.51.100.10",
    }
    assert model.azs == ("us-east-1a", "us-east-1b")
    assert model.lab == LabOptions(inter_az_delay_ms=0.0)
    assert dict(model.parameters) == {
        "VpcCidr": "10.0.0.0/16",
        "InterAzDelayMs": "0",
        "WebRole": "http-backend",
    }
    assert model.description.startswith("ELB Lab default stack")
    assert IgnoredProperty("WebA1", "ImageId") in model.ignored
    assert IgnoredProperty("WebB2", "InstanceType") in model.ignored
    order = model.creation_order
    assert order[0] == "VPC"
    assert len(order) == len(model.resource_types) == 20
    assert order.index("GatewayAttachment") < order.index("DefaultPublicRoute")
    assert model.host_ids() == ("WebA1", "WebA2", "WebB1", "WebB2", "Client1")
    assert model.instances["WebA1"].source.line == 118


def test_default_template_with_parameters():
    model = load_model(
        DEFAULT,
        {"VpcCidr": "10.20.0.0/16", "InterAzDelayMs": "5", "WebRole": "none"},
        stack_name="demo",
        region="eu-west-1",
    )
    assert str(model.instances["WebB1"].private_ip) == "10.20.2.4"
    assert model.subnets["PublicSubnetB"].az == "eu-west-1b"
    assert model.lab.inter_az_delay_ms == 5.0
    assert model.instances["WebA1"].role.name == "none"
    assert "hello from demo" in model.instances["WebB2"].user_data


def test_default_template_as_json_with_tabs_gives_the_same_model():
    text = Path(DEFAULT).read_text()
    as_json = json.dumps(load_text(text, "default.yaml"), indent="\t")
    from_json = load_model_text(as_json, filename="default.json")
    from_yaml = load_model_text(text, filename="default.yaml")
    assert addresses(from_json) == addresses(from_yaml)
    assert from_json.outputs == from_yaml.outputs
    assert from_json.creation_order == from_yaml.creation_order
    assert from_json.instances["WebA1"].source.line is not None


def test_three_az_template():
    model = load_model(THREE_AZ)
    assert model.azs == ("us-east-1a", "us-east-1b", "us-east-1c")
    public = {k for k, s in model.subnets.items() if s.public}
    assert public == {"PublicSubnetA", "PublicSubnetB", "PublicSubnetC"}
    # Mappings put public subnets on /24s 0-2 and private ones on 3-5 of 10.10.0.0/16.
    assert addresses(model) == {
        "WebPublicA": ("10.10.0.4", "203.0.113.10", "PublicSubnetA", "us-east-1a"),
        "WebPrivateA": ("10.10.3.4", None, "PrivateSubnetA", "us-east-1a"),
        "WebPublicB": ("10.10.1.4", "203.0.113.11", "PublicSubnetB", "us-east-1b"),
        "WebPrivateB": ("10.10.4.4", None, "PrivateSubnetB", "us-east-1b"),
        "WebPublicC": ("10.10.2.4", "203.0.113.12", "PublicSubnetC", "us-east-1c"),
        "WebPrivateC": ("10.10.5.4", None, "PrivateSubnetC", "us-east-1c"),
    }
    assert {k: str(c.ip) for k, c in model.internet_clients.items()} == {
        "Client1": "198.51.100.10",
        "Client2": "198.51.100.20",
    }
    assert all(i.role.name == "http-backend" for i in model.instances.values())
    assert model.outputs["PublicWebIps"] == "203.0.113.10,203.0.113.11,203.0.113.12"
    assert model.outputs["PrivateWebIps"] == "10.10.3.4,10.10.4.4,10.10.5.4"
    assert model.outputs["AvailabilityZones"] == "us-east-1a,us-east-1b,us-east-1c"
    assert "${HOSTNAME}" in model.instances["WebPrivateC"].user_data
    assert "public peer 10.10.0.4" in model.instances["WebPrivateC"].user_data


@pytest.mark.parametrize("path", [DEFAULT, THREE_AZ])
def test_templates_load_under_every_role(path):
    for role in ("http-backend", "none"):
        model = load_model(path, {"WebRole": role})
        assert {i.role.name for i in model.instances.values()} == {role}


def test_missing_file_is_bad_input(tmp_path):
    with pytest.raises(BadInput) as info:
        load_model(str(tmp_path / "nope.yaml"))
    assert "cannot read the template" in str(info.value)
    assert str(info.value).startswith(str(tmp_path / "nope.yaml"))


def test_non_utf8_file_is_bad_input(tmp_path):
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"Resources: \xff\xfe\n")
    with pytest.raises(BadInput) as info:
        load_model(str(path))
    assert "not UTF-8" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stack_name": "1bad"}, "bad stack name"),
        ({"stack_name": "has space"}, "bad stack name"),
        ({"region": "mars"}, "bad region"),
    ],
)
def test_bad_stack_name_and_region(kwargs, message):
    with pytest.raises(BadInput) as info:
        load_model(DEFAULT, **kwargs)
    assert message in str(info.value)
