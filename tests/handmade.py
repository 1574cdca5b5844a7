"""A stack model built by hand (no template parser): two AZs, public + private subnet each,
an internet gateway, one instance per subnet and one internet client."""

from __future__ import annotations

from ipaddress import IPv4Address as A
from ipaddress import IPv4Network as N

from testbed.model.types import (
    Instance,
    InternetClient,
    InternetGateway,
    Route,
    RouteTable,
    StackModel,
    Subnet,
    Vpc,
    frozen_map,
)


def two_az_model(with_igw: bool = True) -> StackModel:
    vpc = Vpc("VPC", N("10.0.0.0/16"))
    subnets = {
        "PubA": Subnet("PubA", "VPC", "us-east-1a", N("10.0.0.0/24"), True, "RtPub", with_igw),
        "PrivA": Subnet("PrivA", "VPC", "us-east-1a", N("10.0.1.0/24"), False, "RtPriv", False),
        "PubB": Subnet("PubB", "VPC", "us-east-1b", N("10.0.2.0/24"), True, "RtPub", with_igw),
        "PrivB": Subnet("PrivB", "VPC", "us-east-1b", N("10.0.3.0/24"), False, "RtPriv", False),
    }
    # Every route table has the VPC's local route, as the model builder gives it.
    local = Route("Rt.local", "Rt", N("10.0.0.0/16"), "local", "VPC")
    routes = (
        (local, Route("Default", "RtPub", N("0.0.0.0/0"), "igw", "IGW")) if with_igw else (local,)
    )
    tables = {
        "RtPub": RouteTable("RtPub", "VPC", routes),
        "RtPriv": RouteTable("RtPriv", "VPC", (local,)),
    }
    inst = {
        "WebA1": Instance(
            "WebA1",
            "PubA",
            "us-east-1a",
            A("10.0.0.4"),
            A("203.0.113.10") if with_igw else None,
            None,
            None,
        ),
        "WebA2": Instance("WebA2", "PrivA", "us-east-1a", A("10.0.1.4"), None, None, None),
        "WebA3": Instance("WebA3", "PrivA", "us-east-1a", A("10.0.1.5"), None, None, None),
        "WebB1": Instance(
            "WebB1",
            "PubB",
            "us-east-1b",
            A("10.0.2.4"),
            A("203.0.113.11") if with_igw else None,
            None,
            None,
        ),
        "WebB2": Instance("WebB2", "PrivB", "us-east-1b", A("10.0.3.4"), None, None, None),
    }
    clients = {
        "Client1": InternetClient("Client1", A("198.51.100.10"), None, None),
        "Client2": InternetClient("Client2", A("198.51.100.11"), None, None),
    }
    igws = {"IGW": InternetGateway("IGW", "VPC" if with_igw else None)}
    order = ("VPC", "IGW", "RtPub", "RtPriv", "Default", *subnets, *inst, *clients)
    types = {
        "VPC": "AWS::EC2::VPC",
        "IGW": "AWS::EC2::InternetGateway",
        "RtPub": "AWS::EC2::RouteTable",
        "RtPriv": "AWS::EC2::RouteTable",
        "Default": "AWS::EC2::Route",
        **dict.fromkeys(subnets, "AWS::EC2::Subnet"),
        **dict.fromkeys(inst, "AWS::EC2::Instance"),
        **dict.fromkeys(clients, "Lab::Internet::Client"),
    }
    return StackModel(
        template_path="handmade",
        description="",
        parameters=frozen_map(),
        vpcs=frozen_map({"VPC": vpc}),
        subnets=frozen_map(subnets),
        internet_gateways=frozen_map(igws),
        route_tables=frozen_map(tables),
        instances=frozen_map(inst),
        internet_clients=frozen_map(clients),
        outputs=frozen_map(),
        resource_types=frozen_map(types),
        creation_order=order,
    )
