"""What the lab adds to a real template: http-backend on targets without a role, Internet1."""

from __future__ import annotations

import textwrap
from ipaddress import IPv4Address

from testbed.cli.common import host_notes, hosts_table
from testbed.cli.lifecycle import _host_summary
from testbed.lab.launch import HTTP_BACKEND_DEFAULTS
from testbed.model import lab_defaults
from testbed.plan.network import build_plan
from testbed.stack.holder import host_listing
from tests.unit.elbv2_data import ALB, NLB, listener, stack, target_group


def test_targets_without_a_role_serve_with_http_backend_on_the_group_port(load):
    model = load(stack(ALB, target_group("TG", "HTTP", 8080), listener("L", "ALB", "HTTP", 80)))
    for lid in ("WebA", "WebB"):
        role = model.instances[lid].role
        assert role is not None
        assert role.name == "http-backend"
        assert dict(role.args) == {"Port": 8080}
        assert "TG (HTTP 8080)" in model.default_roles[lid]
        assert "Metadata.Lab.Role: none" in model.default_roles[lid]
    # An instance nobody targets keeps no role.
    assert model.instances["OtherWeb"].role is None
    assert "OtherWeb" not in model.default_roles


def test_a_target_port_overrides_the_group_port(load):
    targets = "[{Id: !Ref WebA, Port: 8081}, {Id: !Ref WebB}]"
    model = load(stack(ALB, target_group("TG", "HTTP", 80, targets=targets)))
    assert dict(model.instances["WebA"].role.args) == {"Port": 8081}
    assert dict(model.instances["WebB"].role.args) == {"Port": 80}


def test_an_ip_target_serves_when_an_instance_holds_its_address(load):
    targets = "[{Id: !GetAtt WebA.PrivateIp, Port: 8000}]"
    model = load(stack(ALB, target_group("TG", "HTTP", 80, "TargetType: ip", targets=targets)))
    assert dict(model.instances["WebA"].role.args) == {"Port": 8000}
    assert model.default_roles["WebA"] == (
        "target of TG (HTTP 8000): serves with the lab's http-backend role "
        "(Metadata.Lab.Role: none to opt out)"
    )
    assert model.instances["WebB"].role is None


def test_opt_out_and_own_roles_are_kept(load):
    text = stack(NLB, target_group("TG", "TCP", 80), listener("L", "NLB", "TCP", 80))
    for lid, lab in (
        ("WebA", "{Role: none}"),
        ("WebB", "{Role: http-backend, RoleArgs: {Port: 81}}"),
    ):
        head = f"  {lid}:\n    Type: AWS::EC2::Instance\n"
        assert head in text
        text = text.replace(head, f"{head}    Metadata: {{Lab: {lab}}}\n")
    model = load(text)
    assert model.instances["WebA"].role.name == "none"
    assert dict(model.instances["WebB"].role.args) == {"Port": 81}
    assert dict(model.default_roles) == {}


def test_tcp_udp_and_several_ports():
    use = lab_defaults.Use
    role, why = lab_defaults.role_for([use("A", "TCP", 9000), use("B", "UDP", 53)])
    # The HTTP server takes 9000, so the TCP identity echo (default 9000) is turned off.
    assert dict(role.args) == {"Port": 9000, "UdpPort": 53, "TcpPort": 0}
    role, why = lab_defaults.role_for([use("A", "TCP_UDP", 80), use("B", "HTTP", 8080)])
    assert dict(role.args) == {"Port": 80, "UdpPort": 80}
    assert "ports 8080 not served" in why
    assert HTTP_BACKEND_DEFAULTS["TcpPort"] == lab_defaults.BACKEND_TCP_PORT


def test_gateway_targets_are_appliances_not_web_servers(load):
    gwlb = """\
    GWLB:
      Type: AWS::ElasticLoadBalancingV2::LoadBalancer
      Properties: {Type: gateway, Subnets: [!Ref PrivA, !Ref PrivB]}
    """
    model = load(stack(gwlb, target_group("TG", "GENEVE", 6081)))
    assert model.instances["WebA"].role is None
    assert dict(model.default_roles) == {}


def test_an_attached_internet_gateway_brings_internet1(load):
    model = load(stack(ALB))
    client = model.internet_clients["Internet1"]
    assert client.ip == IPv4Address("198.51.100.10")
    assert model.resource_types["Internet1"] == "Lab::Internet::Client"
    assert model.creation_order[-1] == "Internet1"
    assert "internet gateway" in model.lab_made["Internet1"]
    plan = build_plan(model, "dflt")
    host = plan.host("Internet1")
    assert host.kind == "client"
    assert host.lab_made == model.lab_made["Internet1"]


def test_a_declared_client_means_no_default_one(load):
    client = """\
    Laptop:
      Type: Lab::Internet::Client
    """
    model = load(stack(client))
    assert list(model.internet_clients) == ["Laptop"]
    assert dict(model.lab_made) == {}


def test_the_default_client_takes_the_next_free_name(load):
    text = stack(
        """\
        Internet1:
          Type: AWS::EC2::InternetGateway
        """
    )
    model = load(text)
    assert "Internet2" in model.internet_clients


def test_no_internet_gateway_no_client(load):
    text = textwrap.dedent("""\
        Resources:
          VPC:
            Type: AWS::EC2::VPC
            Properties: {CidrBlock: 10.0.0.0/16}
          Loose: {Type: AWS::EC2::InternetGateway}
          Net:
            Type: AWS::EC2::Subnet
            Properties: {VpcId: !Ref VPC, CidrBlock: 10.0.0.0/24, AvailabilityZone: us-east-1a}
    """)
    model = load(text)  # a gateway attached to nothing reaches nothing
    assert dict(model.internet_clients) == {}


def test_status_shows_kinds_and_why(load):
    model = load(stack(ALB, target_group("TG", "HTTP", 80), listener("L", "ALB", "HTTP", 80)))
    listing = host_listing(build_plan(model, "dflt"))
    summary = {h["name"]: _host_summary(h) for h in listing}
    assert summary["WebA"]["kind"] == "instance"
    assert not summary["WebA"]["machinery"]
    assert summary["WebA"]["default_role"] == model.default_roles["WebA"]
    assert summary["Internet1"]["kind"] == "client"
    assert summary["Internet1"]["ip"] == "198.51.100.10"
    assert summary["Internet1"]["lab_made"]
    nodes = [h for h in summary.values() if h["kind"] == "lb-node"]
    assert nodes
    assert all(h["machinery"] for h in nodes)
    resolvers = [h for h in summary.values() if h["kind"] == "dns"]
    assert len(resolvers) == 1
    assert resolvers[0]["machinery"]
    assert all(h["kind"] for h in summary.values())
    text = hosts_table(listing)
    rows = {line.split()[0]: line for line in text.splitlines()[1:]}
    assert "KIND" in text.splitlines()[0]
    assert "client (lab-made)" in rows["Internet1"]
    assert rows["WebA"].rstrip().endswith("http-backend (default)")
    notes = host_notes(listing)
    assert any(n.startswith("Internet1: added by the lab") for n in notes)
    assert any(n.startswith("WebA: role http-backend by default") for n in notes)


def test_tls_back_ends_get_https():
    """A CLB's SSL back end (SSL -> SSL) and a TLS target group reach the instance over TLS:
    http-backend serves HTTPS on that port, as for an HTTPS target group."""
    use = lab_defaults.Use
    for protocol in ("HTTPS", "SSL", "TLS"):
        role, why = lab_defaults.role_for([use("CLB", protocol, 8443)])
        assert dict(role.args) == {"HttpsPort": 8443}, protocol
    role, why = lab_defaults.role_for([use("CLB", "TCP", 80), use("CLB", "SSL", 8443)])
    assert dict(role.args) == {"Port": 80, "HttpsPort": 8443}
    assert "HTTPS on 8443" in why
