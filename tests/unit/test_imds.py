"""The instance metadata service without a lab: what one instance's IMDS holds (from a real
template's model and plan), its listings and identity document, IMDSv1/IMDSv2 answers, and
the lab's server over a real socket on the loopback (no namespace, no root)."""

from __future__ import annotations

import http.client
import json
import socket
from dataclasses import replace

import pytest

from testbed.lab.imds.metadata import (
    DEFAULT_IMAGE_ID,
    InstanceMetadata,
    az_id,
    identity_document,
    instance_metadata,
    listing,
    lookup,
    metadata_tree,
    region_of,
)
from testbed.lab.imds.protocol import (
    MAX_TTL_S,
    Request,
    TokenStore,
    answer,
    keep_alive,
    parse_head,
)
from testbed.lab.imds.server import MetadataServer, listen_here
from testbed.plan.instances import launch_host
from testbed.plan.network import build_plan
from testbed.topologies import host_config

STACK = """\
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.0.0.0/16}
  Igw:
    Type: AWS::EC2::InternetGateway
  Attach:
    Type: AWS::EC2::VPCGatewayAttachment
    Properties: {VpcId: !Ref Vpc, InternetGatewayId: !Ref Igw}
  PublicRt:
    Type: AWS::EC2::RouteTable
    Properties: {VpcId: !Ref Vpc}
  Default:
    Type: AWS::EC2::Route
    DependsOn: Attach
    Properties: {RouteTableId: !Ref PublicRt, DestinationCidrBlock: 0.0.0.0/0, GatewayId: !Ref Igw}
  SubnetA:
    Type: AWS::EC2::Subnet
    Properties:
      VpcId: !Ref Vpc
      CidrBlock: 10.0.1.0/24
      AvailabilityZone: us-east-1a
      MapPublicIpOnLaunch: true
  AssocA:
    Type: AWS::EC2::SubnetRouteTableAssociation
    Properties: {SubnetId: !Ref SubnetA, RouteTableId: !Ref PublicRt}
  SubnetB:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.2.0/24, AvailabilityZone: us-east-1b}
  WebGroup:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupName: web
      GroupDescription: web
      VpcId: !Ref Vpc
  Web:
    Type: AWS::EC2::Instance
    Properties:
      SubnetId: !Ref SubnetA
      ImageId: ami-0aaaabbbbccccdddd
      InstanceType: t3.small
      SecurityGroupIds: [!Ref WebGroup]
      UserData: !Base64 "#!/bin/sh\\necho hello\\n"
  Private:
    Type: AWS::EC2::Instance
    Properties:
      SubnetId: !Ref SubnetB
  Launch:
    Type: AWS::EC2::LaunchTemplate
    Properties:
      LaunchTemplateData:
        ImageId: ami-0123412341234abcd
        InstanceType: c5.large
        SecurityGroupIds: [!Ref WebGroup]
  Group:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      VPCZoneIdentifier: [!Ref SubnetB]
      LaunchTemplate: {LaunchTemplateId: !Ref Launch, Version: "1"}
      MinSize: "0"
      MaxSize: "2"
"""


@pytest.fixture
def lab(load):
    model = load(STACK)
    return model, build_plan(model, "t")


@pytest.fixture
def web(lab) -> InstanceMetadata:
    model, plan = lab
    return instance_metadata(model, plan, plan.host("Web"), launched=1_700_000_000.0)


def get(tree, path: str, tokens: TokenStore | None = None, **headers: str):
    request = Request("GET", path, {k.lower().replace("_", "-"): v for k, v in headers.items()})
    return answer(request, tree, tokens or TokenStore(), now=100.0)


# ---- what an instance's IMDS holds ------------------------------------------------------------


def test_a_template_instance_is_described_from_its_template(lab, web):
    model, plan = lab
    host = plan.host("Web")
    assert web.instance_id == "i-Web"  # its Ref, and its id in the CLB's instance states
    assert (web.image_id, web.instance_type) == ("ami-0aaaabbbbccccdddd", "t3.small")
    assert (web.az, web.region, web.private_ip, web.mac) == (
        "us-east-1a",
        "us-east-1",
        host.ip,
        host.mac,
    )
    assert web.public_ip == host.public_ip is not None
    assert web.security_groups == ("web",)
    assert web.local_hostname == "ip-" + host.ip.replace(".", "-") + ".ec2.internal"
    eth0 = web.interfaces[0]
    assert (eth0.subnet_id, eth0.subnet_cidr, eth0.vpc_id, eth0.vpc_cidrs) == (
        "subnet-SubnetA",
        "10.0.1.0/24",
        "vpc-Vpc",
        ("10.0.0.0/16",),
    )
    assert eth0.security_group_ids == (model.security_groups["WebGroup"].group_id,)
    assert eth0.interface_id.startswith("eni-")
    assert len(eth0.interface_id) == 21


def test_an_instance_without_image_or_public_address(lab):
    model, plan = lab
    md = instance_metadata(model, plan, plan.host("Private"))
    assert md.image_id == DEFAULT_IMAGE_ID
    assert md.public_ip is None
    tree = metadata_tree(md)
    assert lookup(tree, "/latest/meta-data/public-ipv4") is None
    assert lookup(tree, "/latest/user-data") is None
    assert "public-ipv4" not in listing(lookup(tree, "/latest/meta-data/"), "/latest/meta-data/")


def test_a_launched_instance_is_described_from_its_launch_template(lab):
    model, plan = lab
    host = launch_host(plan, model, "Group", "SubnetB", "Group-1", "i-0123456789abcdef0")
    md = instance_metadata(model, plan, host)
    assert (md.instance_id, md.image_id, md.instance_type) == (
        "i-0123456789abcdef0",
        "ami-0123412341234abcd",
        "c5.large",
    )
    assert (md.az, md.interfaces[0].subnet_id) == ("us-east-1b", "subnet-SubnetB")
    assert md.security_groups == ("web",)


def test_zone_and_region_names():
    assert region_of("us-east-1a") == "us-east-1"
    assert region_of("eu-west-2c") == "eu-west-2"
    assert az_id("us-east-1a") == "use1-az1"
    assert az_id("eu-west-2c") == "euw2-az3"


# ---- the tree: values, listings, 404 -----------------------------------------------------------


def test_values_are_bare_text(web):
    tree = metadata_tree(web)
    assert lookup(tree, "/latest/meta-data/instance-id") == "i-Web"
    assert lookup(tree, "/latest/meta-data/placement/availability-zone") == "us-east-1a"
    assert lookup(tree, "/latest/meta-data/placement/region") == "us-east-1"
    assert lookup(tree, "/latest/meta-data/local-ipv4") == web.private_ip
    assert lookup(tree, "/latest/user-data") == b"#!/bin/sh\necho hello\n"
    # Every version answers the same; doubled slashes are skipped.
    assert lookup(tree, "/2009-04-04//meta-data/instance-id") == "i-Web"


def test_listings_name_children_one_per_line_directories_with_a_slash(web):
    tree = metadata_tree(web)
    meta = get(tree, "/latest/meta-data/").body.decode().split("\n")
    for name in ("ami-id", "instance-id", "instance-type", "local-ipv4", "mac", "public-ipv4"):
        assert name in meta
    for name in ("network/", "placement/", "block-device-mapping/", "services/"):
        assert name in meta
    assert meta == sorted(meta)
    # A directory named without its trailing slash lists too; bodies end without a newline.
    assert get(tree, "/latest/meta-data/placement").body == (
        b"availability-zone\navailability-zone-id\nregion"
    )
    # "/" and a version list bare names, as IMDS does.
    assert get(tree, "/latest/").body == b"dynamic\nmeta-data\nuser-data"
    root = get(tree, "/").body.decode().split("\n")
    assert root[0] == "1.0"
    assert root[-1] == "latest"
    assert "2009-04-04" in root


def test_network_interfaces_by_mac(web):
    tree = metadata_tree(web)
    assert get(tree, "/latest/meta-data/network/interfaces/macs/").body == f"{web.mac}/".encode()
    base = f"/latest/meta-data/network/interfaces/macs/{web.mac}/"
    names = get(tree, base).body.decode().split("\n")
    for name in (
        "device-number",
        "interface-id",
        "local-ipv4s",
        "mac",
        "security-group-ids",
        "subnet-id",
        "subnet-ipv4-cidr-block",
        "vpc-id",
        "vpc-ipv4-cidr-block",
        "vpc-ipv4-cidr-blocks",
        "public-ipv4s",
    ):
        assert name in names, name
    assert get(tree, base + "device-number").body == b"0"
    assert get(tree, base + "vpc-id").body == b"vpc-Vpc"
    assert get(tree, base + "subnet-id").body == b"subnet-SubnetA"
    assert get(tree, base + "local-ipv4s").body == web.private_ip.encode()


def test_the_identity_document(web):
    text = identity_document(web)
    doc = json.loads(text)
    assert doc["accountId"] == "123456789012"
    assert (doc["instanceId"], doc["imageId"], doc["instanceType"]) == (
        "i-Web",
        "ami-0aaaabbbbccccdddd",
        "t3.small",
    )
    assert (doc["availabilityZone"], doc["region"], doc["privateIp"]) == (
        "us-east-1a",
        "us-east-1",
        web.private_ip,
    )
    assert (doc["architecture"], doc["version"]) == ("x86_64", "2017-09-30")
    assert doc["pendingTime"] == "2023-11-14T22:13:20Z"
    assert doc["kernelId"] is None
    # Laid out as EC2 prints it.
    assert '  "accountId" : "123456789012",' in text.split("\n")
    tree = metadata_tree(web)
    assert get(tree, "/latest/dynamic/instance-identity/document").body == text.encode()


def test_what_is_not_there_is_404(web):
    tree = metadata_tree(web)
    for path in ("/latest/meta-data/nothing", "/latest/meta-data/instance-id/x", "/nope/"):
        response = get(tree, path)
        assert response.status == 404
        assert b"<title>404 - Not Found</title>" in response.body


# ---- IMDSv1 and IMDSv2 -----------------------------------------------------------------------


def put_token(tree, tokens: TokenStore, ttl: str | None, now: float = 100.0, **more: str):
    headers = {k.lower().replace("_", "-"): v for k, v in more.items()}
    if ttl is not None:
        headers["x-aws-ec2-metadata-token-ttl-seconds"] = ttl
    return answer(Request("PUT", "/latest/api/token", headers), tree, tokens, now)


def test_imdsv2_token_flow(web):
    tree, tokens = metadata_tree(web), TokenStore()
    issued = put_token(tree, tokens, "60")
    assert issued.status == 200
    assert ("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "60") in issued.headers
    token = issued.body.decode()
    ok = answer(
        Request("GET", "/latest/meta-data/instance-id", {"x-aws-ec2-metadata-token": token}),
        tree,
        tokens,
        now=130.0,
    )
    assert (ok.status, ok.body) == (200, b"i-Web")
    assert ("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "30") in ok.headers
    # Expired, or never issued to this instance: 401.
    late = Request("GET", "/latest/meta-data/instance-id", {"x-aws-ec2-metadata-token": token})
    assert answer(late, tree, tokens, now=161.0).status == 401
    other = Request("GET", "/latest/meta-data/", {"x-aws-ec2-metadata-token": "bogus"})
    assert answer(other, tree, tokens, now=101.0).status == 401
    # IMDSv1 (no token) is answered: HttpTokens optional, AWS's default.
    assert get(tree, "/latest/meta-data/instance-id", tokens).body == b"i-Web"


def test_bad_token_requests(web):
    tree, tokens = metadata_tree(web), TokenStore()
    assert put_token(tree, tokens, None).status == 400
    assert put_token(tree, tokens, "0").status == 400
    assert put_token(tree, tokens, str(MAX_TTL_S + 1)).status == 400
    assert put_token(tree, tokens, "ten").status == 400
    assert put_token(tree, tokens, str(MAX_TTL_S)).status == 200
    assert put_token(tree, tokens, "60", x_forwarded_for="10.0.0.9").status == 403
    assert answer(Request("PUT", "/latest/meta-data/", {}), tree, tokens, 100.0).status == 405
    assert answer(Request("POST", "/latest/meta-data/", {}), tree, tokens, 100.0).status == 405
    head = answer(Request("HEAD", "/latest/meta-data/instance-id", {}), tree, tokens, 100.0)
    assert (head.status, head.body) == (200, b"")


def test_tokens_do_not_pile_up():
    tokens = TokenStore()
    for i in range(3000):
        tokens.issue(60, now=float(i % 10))
    assert len(tokens.tokens) <= 1000
    tokens.issue(60, now=1000.0)  # the expired ones go
    assert len(tokens.tokens) == 1


def test_parsing_requests():
    request, version, length = parse_head(
        b"PUT /latest/api/token HTTP/1.1\r\nHost: 169.254.169.254\r\n"
        b"X-aws-ec2-metadata-token-ttl-seconds: 21600\r\nContent-Length: 0\r\n\r\n"
    )
    assert (request.method, request.path, version, length) == (
        "PUT",
        "/latest/api/token",
        "HTTP/1.1",
        0,
    )
    assert request.headers["x-aws-ec2-metadata-token-ttl-seconds"] == "21600"
    assert keep_alive("HTTP/1.1", {})
    assert not keep_alive("HTTP/1.1", {"connection": "close"})
    assert not keep_alive("HTTP/1.0", {})
    with pytest.raises(ValueError, match="not an HTTP request line"):
        parse_head(b"hello\r\n\r\n")


def test_every_instance_gets_the_address_and_its_port_80_redirected(lab):
    _, plan = lab
    cmd, _ = host_config.tuning(plan.host("Web"), userspace=False)
    assert "ip addr add 169.254.169.254/32 dev lo" in cmd
    assert f"dnat to 169.254.169.254:{host_config.IMDS_PORT}" in cmd
    dns = next(h for h in plan.hosts if h.kind == "dns")
    assert "169.254.169.254" not in host_config.tuning(dns, userspace=False)[0]


# ---- the server, over a real socket -------------------------------------------------------------


def test_the_server_answers_over_http_and_forgets_a_removed_instance(web):
    server = MetadataServer()
    sock = listen_here("127.0.0.1", 0)
    port = sock.getsockname()[1]
    try:
        server.serve_socket(web, sock)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request(
            "PUT", "/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": "5"}
        )
        token = conn.getresponse().read().decode()
        # The same connection, kept alive (as the SDKs use it).
        conn.request(
            "GET", "/latest/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": token}
        )
        reply = conn.getresponse()
        assert (reply.status, reply.read()) == (200, b"i-Web")
        assert reply.getheader("Content-Type") == "text/plain"
        conn.request("GET", "/latest/meta-data/nothing")
        reply = conn.getresponse()
        assert reply.status == 404
        reply.read()
        conn.close()
        assert server.hosts() == ["Web"]
        assert server.requests("Web") == 3
        other = replace(web, host="Other", instance_id="i-Other")
        sock2 = listen_here("127.0.0.1", 0)
        server.serve_socket(other, sock2)
        conn = http.client.HTTPConnection("127.0.0.1", sock2.getsockname()[1], timeout=5)
        conn.request("GET", "/latest/meta-data/instance-id")
        assert conn.getresponse().read() == b"i-Other"  # the socket says who asks
        conn.close()
        assert server.remove("Web")
        assert not server.remove("Web")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
    finally:
        server.close()
    assert server.hosts() == []
