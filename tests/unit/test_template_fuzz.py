"""Property-based tests: whatever the input, the engine answers with a model or BadInput.

A traceback is a bug: the user must always get a message naming the file.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testbed.errors import BadInput
from testbed.model import load_model_text
from testbed.model.types import StackModel
from testbed.template.yaml_loader import load_text

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TEXT = (REPO / "templates" / "default.yaml").read_text()
THREE_AZ_TEXT = (REPO / "templates" / "three-az.yaml").read_text()
NLB_TEXT = (REPO / "templates" / "nlb.yaml").read_text()


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


DEFAULT_DOC = _plain(load_text(DEFAULT_TEXT, "default.yaml"))
THREE_AZ_DOC = _plain(load_text(THREE_AZ_TEXT, "three-az.yaml"))
NLB_DOC = _plain(load_text(NLB_TEXT, "nlb.yaml"))
# FUZZ_EXAMPLES=5000 runs a deeper search than the quick default of the unit suite.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Names that mean something to the engine, so random data reaches deep code paths.
WORDS = [
    "Ref",
    "Fn::GetAtt",
    "Fn::Sub",
    "Fn::Join",
    "Fn::Select",
    "Fn::Split",
    "Fn::If",
    "Fn::Base64",
    "Fn::GetAZs",
    "Fn::Cidr",
    "Fn::FindInMap",
    "Fn::Equals",
    "Fn::And",
    "Fn::Or",
    "Fn::Not",
    "Condition",
    "AWS::NoValue",
    "AWS::Region",
    "VPC",
    "WebA1",
    "PublicSubnetA",
    "InternetGateway",
    "PublicRouteTable",
    "Client1",
    "VpcCidr",
    "WebRole",
    "CidrBlock",
    "SubnetId",
    "PrivateIp",
    "PublicIp",
    "Type",
    "Properties",
    "DependsOn",
    "Metadata",
    "Lab",
    "Role",
    "AWS::EC2::Instance",
    "AWS::EC2::Subnet",
    "10.0.0.0/16",
    "10.0.0.4",
    "0.0.0.0/0",
    "",
    "${VPC}",
    "${WebA1.PrivateIp}",
    "${AWS::Region}",
    "us-east-1a",
    # ELB words
    "MyNLB",
    "WebTargets",
    "WebListener",
    "network",
    "application",
    "gateway",
    "internal",
    "TCP",
    "UDP",
    "TCP_UDP",
    "HTTP",
    "GENEVE",
    "forward",
    "redirect",
    "fixed-response",
    "Key",
    "Value",
    "Field",
    "Values",
    "TargetGroupArn",
    "LoadBalancerArn",
    "ListenerArn",
    "ForwardConfig",
    "TargetGroups",
    "Weight",
    "Targets",
    "Id",
    "Port",
    "Protocol",
    "traffic-port",
    "HealthCheckPort",
    "Matcher",
    "HttpCode",
    "200-399",
    "path-pattern",
    "SubnetMappings",
    "PrivateIPv4Address",
    "stickiness.enabled",
    "DNSName",
    "NodePublicIps",
    "preserve_client_ip.enabled",
    "load_balancing.cross_zone.enabled",
    "PublicSubnetA",
    "PrivateSubnetA",
    "VpcEndpointId",
    "GatewayLoadBalancer",
    "6081",
    "80",
]
scalars = st.one_of(
    st.sampled_from(WORDS),
    st.text(max_size=12),
    st.integers(-5, 300),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(WORDS) | st.text(max_size=8), inner, max_size=4),
    ),
    max_leaves=12,
)


def check(text: str, filename: str = "fuzz.yaml", **kwargs: Any) -> None:
    """The whole contract: a StackModel, or a BadInput whose message names the file."""
    try:
        model = load_model_text(text, filename=filename, **kwargs)
    except BadInput as err:
        message = str(err)
    else:
        assert isinstance(model, StackModel)
        return
    assert message.startswith(filename), message


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (sequence of keys/indexes) into a nested value."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def parent_of(doc: Any, path: tuple) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


@FUZZ
@given(values)
def test_random_structures_as_templates(value):
    check(json.dumps(value, allow_nan=True))
    check(json.dumps({"Resources": value}, allow_nan=True))


@FUZZ
@given(
    values,
    st.sampled_from(
        [
            "AWS::EC2::VPC",
            "AWS::EC2::Subnet",
            "AWS::EC2::Instance",
            "AWS::EC2::Route",
            "Lab::Internet::Client",
            "AWS::EC2::SubnetRouteTableAssociation",
        ]
    ),
)
def test_random_properties_in_the_default_stack(value, type_name):
    doc = copy.deepcopy(DEFAULT_DOC)
    doc["Resources"]["Fuzz"] = {"Type": type_name, "Properties": value}
    check(json.dumps(doc))
    doc["Resources"]["Fuzz"] = {
        "Type": type_name,
        "Properties": {"CidrBlock": value, "SubnetId": value},
    }
    check(json.dumps(doc))


@FUZZ
@given(st.data(), st.sampled_from([DEFAULT_DOC, THREE_AZ_DOC, NLB_DOC]))
def test_mutations_of_the_shipped_templates(data, original):
    doc = copy.deepcopy(original)
    for _ in range(data.draw(st.integers(1, 3))):
        all_paths = [p for p in paths(doc) if p]
        if not all_paths:
            break
        path = data.draw(st.sampled_from(all_paths))
        parent = parent_of(doc, path)
        action = data.draw(st.sampled_from(["delete", "replace", "bad-ref", "swap"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "replace":
            parent[path[-1]] = data.draw(values)
        elif action == "bad-ref":
            parent[path[-1]] = {"Ref": data.draw(st.sampled_from(WORDS) | st.text(max_size=6))}
        else:  # swap types: a scalar becomes a list of itself, a container its first item
            item = parent[path[-1]]
            if isinstance(item, dict):
                parent[path[-1]] = list(item.values())[:1]
            elif isinstance(item, list):
                parent[path[-1]] = item[0] if item else {}
            else:
                parent[path[-1]] = [item]
    check(json.dumps(doc, allow_nan=True))


@FUZZ
@given(st.data())
def test_line_edits_of_the_default_yaml(data):
    lines = DEFAULT_TEXT.splitlines()
    for _ in range(data.draw(st.integers(1, 3))):
        index = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(
            st.sampled_from(["delete", "duplicate", "indent", "dedent", "insert", "truncate"])
        )
        if action == "delete":
            del lines[index]
        elif action == "duplicate":
            lines.insert(index, lines[index])
        elif action == "indent":
            lines[index] = "  " + lines[index]
        elif action == "dedent":
            lines[index] = lines[index][2:]
        elif action == "insert":
            lines.insert(index, data.draw(st.text(max_size=20)))
        else:
            cut = data.draw(st.integers(0, max(len(lines[index]) - 1, 0)))
            lines[index] = lines[index][:cut]
        if not lines:
            break
    check("\n".join(lines) + "\n")


@FUZZ
@given(st.text(alphabet=list("{}[]:,-!&*|>'\"#% \n\tabAB01.$"), max_size=60) | st.text(max_size=60))
def test_random_yaml_text(text):
    check(text)
    check(text, filename="fuzz.json")
    check("Resources:\n  X: " + text)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["VpcCidr", "InterAzDelayMs", "WebRole", "Other"]),
        st.text(max_size=20),
        max_size=3,
    ),
    st.text(max_size=10),
    st.text(max_size=12),
)
def test_random_parameters_stack_names_and_regions(params, stack_name, region):
    check(DEFAULT_TEXT, params=params)
    check(DEFAULT_TEXT, stack_name=stack_name or "default", region=region or "us-east-1")


ELB_RESOURCES = [
    lid
    for lid, r in NLB_DOC["Resources"].items()
    if r["Type"].startswith("AWS::ElasticLoadBalancingV2::")
]


@FUZZ
@given(st.data())
def test_mutations_of_the_nlb_resources(data):
    # Mutations aimed at the load balancer, target groups and listeners, deep inside them.
    doc = copy.deepcopy(NLB_DOC)
    for _ in range(data.draw(st.integers(1, 3))):
        lid = data.draw(st.sampled_from(ELB_RESOURCES))
        inside = [p for p in paths(doc["Resources"][lid]) if p]
        path = ("Resources", lid, *data.draw(st.sampled_from(inside)))
        parent = parent_of(doc, path)
        parent[path[-1]] = data.draw(values | st.sampled_from(WORDS))
    check(json.dumps(doc, allow_nan=True))


def _ref(name: str) -> dict:
    return {"Ref": name}


# Well-formed examples of every ELB-related type, added to the NLB stack: the fuzzer changes
# one property at a time, so that random data reaches the checks deep inside each type.
ELB_EXAMPLES: dict[str, tuple[str, dict]] = {
    "Alb": (
        "AWS::ElasticLoadBalancingV2::LoadBalancer",
        {
            "Subnets": [_ref("PublicSubnetA"), _ref("PublicSubnetB")],
            "LoadBalancerAttributes": [{"Key": "idle_timeout.timeout_seconds", "Value": "30"}],
        },
    ),
    "AlbTargets": (
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        {
            "Protocol": "HTTP",
            "Port": 8080,
            "VpcId": _ref("VPC"),
            "TargetType": "ip",
            "Targets": [{"Id": "10.0.1.4"}],
            "Matcher": {"HttpCode": "200-299"},
            "HealthCheckPath": "/health",
            "TargetGroupAttributes": [{"Key": "stickiness.enabled", "Value": "true"}],
        },
    ),
    "AlbListener": (
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "LoadBalancerArn": _ref("Alb"),
            "Protocol": "HTTP",
            "Port": 80,
            "DefaultActions": [
                {
                    "Type": "forward",
                    "ForwardConfig": {
                        "TargetGroups": [{"TargetGroupArn": _ref("AlbTargets"), "Weight": 5}],
                        "TargetGroupStickinessConfig": {"Enabled": True, "DurationSeconds": 60},
                    },
                }
            ],
        },
    ),
    "AlbRule": (
        "AWS::ElasticLoadBalancingV2::ListenerRule",
        {
            "ListenerArn": _ref("AlbListener"),
            "Priority": 10,
            "Conditions": [
                {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}},
                {
                    "Field": "query-string",
                    "QueryStringConfig": {"Values": [{"Key": "a", "Value": "b"}]},
                },
            ],
            "Actions": [
                {
                    "Type": "redirect",
                    "RedirectConfig": {"Path": "/v2/#{path}", "StatusCode": "HTTP_301"},
                }
            ],
        },
    ),
    "Gwlb": (
        "AWS::ElasticLoadBalancingV2::LoadBalancer",
        {"Type": "gateway", "SubnetMappings": [{"SubnetId": _ref("PrivateSubnetA")}]},
    ),
    "Appliances": (
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        {
            "Protocol": "GENEVE",
            "Port": 6081,
            "VpcId": _ref("VPC"),
            "Targets": [{"Id": _ref("WebA1")}],
        },
    ),
    "GwlbListener": (
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "LoadBalancerArn": _ref("Gwlb"),
            "DefaultActions": [{"Type": "forward", "TargetGroupArn": _ref("Appliances")}],
        },
    ),
    "Service": ("AWS::EC2::VPCEndpointService", {"GatewayLoadBalancerArns": [_ref("Gwlb")]}),
    "Endpoint": (
        "AWS::EC2::VPCEndpoint",
        {
            "VpcEndpointType": "GatewayLoadBalancer",
            "VpcId": _ref("VPC"),
            "ServiceName": {"Fn::Sub": "com.amazonaws.vpce.${AWS::Region}.${Service}"},
            "SubnetIds": [_ref("PublicSubnetA")],
        },
    ),
    "EndpointRoute": (
        "AWS::EC2::Route",
        {
            "RouteTableId": _ref("PrivateRouteTable"),
            "DestinationCidrBlock": "0.0.0.0/0",
            "VpcEndpointId": _ref("Endpoint"),
        },
    ),
    "Ingress": ("AWS::EC2::RouteTable", {"VpcId": _ref("VPC")}),
    "IngressRoute": (
        "AWS::EC2::Route",
        {
            "RouteTableId": _ref("Ingress"),
            "DestinationCidrBlock": "10.0.1.0/24",
            "VpcEndpointId": _ref("Endpoint"),
        },
    ),
    "IngressAssoc": (
        "AWS::EC2::GatewayRouteTableAssociation",
        {"GatewayId": _ref("InternetGateway"), "RouteTableId": _ref("Ingress")},
    ),
}
ELB_DOC = copy.deepcopy(NLB_DOC)
for _lid, (_type, _props) in ELB_EXAMPLES.items():
    ELB_DOC["Resources"][_lid] = {"Type": _type, "Properties": _props}


def test_the_elb_examples_are_valid():
    model = load_model_text(json.dumps(ELB_DOC), filename="elb.json")
    assert set(ELB_EXAMPLES) <= set(model.resource_types)


@FUZZ
@given(st.data(), values)
def test_random_property_values_in_every_elb_type(data, value):
    doc = copy.deepcopy(ELB_DOC)
    lid = data.draw(st.sampled_from(sorted(ELB_EXAMPLES)))
    props = doc["Resources"][lid]["Properties"]
    inside = [p for p in paths(props) if p]
    path = data.draw(st.sampled_from(inside))
    action = data.draw(st.sampled_from(["replace", "delete", "word"]))
    parent = parent_of(props, path)
    if action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = value if action == "replace" else data.draw(st.sampled_from(WORDS))
    check(json.dumps(doc, allow_nan=True))


# Well-formed security groups and network ACLs added to the NLB stack, fuzzed the same way.
SECURITY_EXAMPLES: dict[str, tuple[str, dict]] = {
    "LbGroup": (
        "AWS::EC2::SecurityGroup",
        {
            "GroupDescription": "lb",
            "VpcId": _ref("VPC"),
            "SecurityGroupIngress": [
                {"IpProtocol": "tcp", "FromPort": 80, "ToPort": "80", "CidrIp": "0.0.0.0/0"},
                {"IpProtocol": "ICMP", "FromPort": -1, "ToPort": -1, "CidrIp": "10.0.0.0/16"},
            ],
        },
    ),
    "WebGroup": (
        "AWS::EC2::SecurityGroup",
        {
            "GroupDescription": "web",
            "GroupName": "web",
            "VpcId": _ref("VPC"),
            "SecurityGroupIngress": [
                {"IpProtocol": -1, "SourceSecurityGroupId": {"Fn::GetAtt": ["LbGroup", "GroupId"]}}
            ],
            "SecurityGroupEgress": [{"IpProtocol": "-1", "CidrIp": "0.0.0.0/0"}],
        },
    ),
    "WebPeers": (
        "AWS::EC2::SecurityGroupIngress",
        {
            "GroupId": _ref("WebGroup"),
            "IpProtocol": "udp",
            "FromPort": 9000,
            "ToPort": 9001,
            "SourceSecurityGroupId": _ref("WebGroup"),
        },
    ),
    "LbToWeb": (
        "AWS::EC2::SecurityGroupEgress",
        {
            "GroupId": {"Fn::GetAtt": ["VPC", "DefaultSecurityGroup"]},
            "IpProtocol": "tcp",
            "FromPort": 80,
            "ToPort": 80,
            "DestinationSecurityGroupId": _ref("WebGroup"),
        },
    ),
    "Grouped": (
        "AWS::EC2::Instance",
        {"SubnetId": _ref("PrivateSubnetA"), "SecurityGroupIds": [_ref("WebGroup")]},
    ),
    "PrivateAcl": ("AWS::EC2::NetworkAcl", {"VpcId": _ref("VPC")}),
    "AclIn": (
        "AWS::EC2::NetworkAclEntry",
        {
            "NetworkAclId": _ref("PrivateAcl"),
            "RuleNumber": "100",
            "Protocol": "6",
            "RuleAction": "allow",
            "CidrBlock": "0.0.0.0/0",
            "PortRange": {"From": 80, "To": "80"},
        },
    ),
    "AclPing": (
        "AWS::EC2::NetworkAclEntry",
        {
            "NetworkAclId": _ref("PrivateAcl"),
            "RuleNumber": 110,
            "Protocol": 1,
            "RuleAction": "deny",
            "Egress": True,
            "CidrBlock": "10.0.0.0/16",
            "Icmp": {"Type": 8, "Code": -1},
        },
    ),
    "AclAssoc": (
        "AWS::EC2::SubnetNetworkAclAssociation",
        {"SubnetId": _ref("PrivateSubnetB"), "NetworkAclId": {"Fn::GetAtt": ["PrivateAcl", "Id"]}},
    ),
}
SECURITY_DOC = copy.deepcopy(NLB_DOC)
for _lid, (_type, _props) in SECURITY_EXAMPLES.items():
    SECURITY_DOC["Resources"][_lid] = {"Type": _type, "Properties": _props}
SECURITY_DOC["Resources"]["MyNLB"]["Properties"]["SecurityGroups"] = [_ref("LbGroup")]
SECURITY_WORDS = ["tcp", "ICMP", "-1", "6", "65536", "sg-LbGroup", "acl-PrivateAcl", "allow"]


def test_the_security_examples_are_valid():
    model = load_model_text(json.dumps(SECURITY_DOC), filename="security.json")
    assert set(model.security_groups) >= {"LbGroup", "WebGroup", "VPC.default"}
    assert model.network_acls["PrivateAcl"].subnets == ("PrivateSubnetB",)


@FUZZ
@given(st.data(), values)
def test_random_property_values_in_security_groups_and_nacls(data, value):
    doc = copy.deepcopy(SECURITY_DOC)
    lid = data.draw(st.sampled_from(sorted(SECURITY_EXAMPLES)))
    props = doc["Resources"][lid]["Properties"]
    inside = [p for p in paths(props) if p]
    path = data.draw(st.sampled_from(inside))
    action = data.draw(st.sampled_from(["replace", "delete", "word"]))
    parent = parent_of(props, path)
    if action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = (
            value if action == "replace" else data.draw(st.sampled_from(WORDS + SECURITY_WORDS))
        )
    check(json.dumps(doc, allow_nan=True))
