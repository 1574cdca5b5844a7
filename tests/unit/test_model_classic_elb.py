"""Classic Load Balancers (AWS::ElasticLoadBalancing::LoadBalancer) in the model: a
LoadBalancer of type classic, its implicit target group and one listener per port."""

from __future__ import annotations

import re
import textwrap

import pytest

from testbed.errors import TemplateErrors
from testbed.model.elb_defaults import CLASSIC_ATTRIBUTES
from testbed.model.elbv2_types import Action, HealthCheck, elbv2_sections
from tests.unit.conftest import FILENAME, line_with
from tests.unit.elbv2_data import stack


def clb(body: str, name: str = "CLB") -> str:
    """A classic load balancer whose Properties are `body` (block YAML, column 0)."""
    props = textwrap.indent(textwrap.dedent(body), "    ")
    return f"{name}:\n  Type: AWS::ElasticLoadBalancing::LoadBalancer\n  Properties:\n{props}"


BASIC = """\
Subnets: [!Ref PubA, !Ref PubB]
Instances: [!Ref WebA, !Ref WebB]
Listeners:
  - {LoadBalancerPort: 80, InstancePort: 8080, Protocol: HTTP}
"""


def sections(model):
    return elbv2_sections(model)


def errors_of(err) -> list[str]:
    return [str(e) for e in (err.errors if isinstance(err, TemplateErrors) else [err])]


# --- What is built ----------------------------------------------------------------------------


def test_defaults_load_balancer_group_and_listener(load):
    found = sections(load(stack(clb(BASIC))))
    lb = found["load_balancers"]["CLB"]
    assert (lb.type, lb.scheme, lb.vpc_id, lb.subnets) == (
        "classic",
        "internet-facing",
        "VPC",
        ("PubA", "PubB"),
    )
    assert [(n.name, n.az, str(n.private_ip)) for n in lb.nodes] == [
        ("CLB-1a", "us-east-1a", "10.0.0.4"),
        ("CLB-1b", "us-east-1b", "10.0.1.4"),
    ]
    assert all(n.public_ip is not None for n in lb.nodes)
    assert dict(lb.attributes) == dict(CLASSIC_ATTRIBUTES)
    assert lb.cross_zone is False
    assert lb.security_groups == ("VPC.default",)
    assert lb.name == "default-CLB"
    assert re.fullmatch(r"default-CLB-\d{10}\.us-east-1\.elb\.amazonaws\.com", lb.dns_name)
    assert lb.arn == "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/default-CLB"

    tg = found["target_groups"]["CLB"]
    assert (tg.name, tg.lb_type, tg.protocol, tg.port, tg.target_type, tg.vpc_id) == (
        "default-CLB",
        "classic",
        "HTTP",
        8080,
        "instance",
        "VPC",
    )
    assert [(t.id, t.instance, t.port, t.az) for t in tg.targets] == [
        ("i-WebA", "WebA", 8080, "us-east-1a"),
        ("i-WebB", "WebB", 8080, "us-east-1b"),
    ]
    assert tg.health_check == HealthCheck(True, "TCP", 8080, "/", 30, 5, 10, 2, "200")
    assert tg.deregistration_delay_s == 0  # draining is off through CloudFormation
    assert (tg.preserve_client_ip, tg.stickiness_enabled, tg.algorithm) == (False, False, None)
    assert tg.cross_zone == "use_load_balancer_configuration"
    assert tg.arn == lb.arn

    (lis,) = found["listeners"].values()
    assert lis.logical_id == "CLB-80"
    assert (lis.lb_id, lis.port, lis.protocol, lis.instance_port, lis.instance_protocol) == (
        "CLB",
        80,
        "HTTP",
        8080,
        "HTTP",
    )
    assert lis.default_actions == (Action("forward", None, (("CLB", 1),)),)
    assert (lis.tcp_idle_timeout_s, lis.proxy_protocol, lis.sticky, lis.policy_names) == (
        60,
        False,
        None,
        (),
    )


def test_listeners_protocols_case_ports_as_text_and_instance_protocol_default(load):
    body = """\
    Subnets: [!Ref PubA]
    Listeners:
      - {LoadBalancerPort: "80", InstancePort: "80", Protocol: http}
      - {LoadBalancerPort: 25, InstancePort: 2525, Protocol: Tcp}
      - {LoadBalancerPort: 81, InstancePort: 80, Protocol: HTTP, InstanceProtocol: http}
    """
    found = sections(load(stack(clb(body))))["listeners"]
    assert {k: (v.protocol, v.instance_port, v.instance_protocol) for k, v in found.items()} == {
        "CLB-80": ("HTTP", 80, "HTTP"),
        "CLB-25": ("TCP", 2525, "TCP"),
        "CLB-81": ("HTTP", 80, "HTTP"),
    }


def test_internal_scheme_and_security_groups(load):
    text = stack(
        "Web:\n  Type: AWS::EC2::SecurityGroup\n  Properties: {GroupDescription: w, "
        "VpcId: !Ref VPC}\n",
        clb(
            """\
            Scheme: internal
            Subnets: [!Ref PrivA, !Ref PrivB]
            SecurityGroups: [!Ref Web]
            Listeners: [{LoadBalancerPort: 80, InstancePort: 80, Protocol: HTTP}]
            """
        ),
    )
    lb = sections(load(text))["load_balancers"]["CLB"]
    assert lb.scheme == "internal"
    assert all(n.public_ip is None for n in lb.nodes)
    assert lb.dns_name.startswith("internal-default-CLB-")
    assert lb.security_groups == ("Web",)


def test_health_check_target_forms(load):
    def check(target: str) -> HealthCheck:
        body = f"""\
        Subnets: [!Ref PubA]
        Listeners: [{{LoadBalancerPort: 80, InstancePort: 80, Protocol: HTTP}}]
        HealthCheck: {{Target: "{target}", Interval: "10", Timeout: "3",
                       HealthyThreshold: "4", UnhealthyThreshold: 5}}
        """
        return sections(load(stack(clb(body))))["target_groups"]["CLB"].health_check

    assert check("HTTP:8080/health?x=1") == HealthCheck(
        True, "HTTP", 8080, "/health?x=1", 10, 3, 4, 5, "200"
    )
    assert check("tcp:81") == HealthCheck(True, "TCP", 81, "/", 10, 3, 4, 5, "200")
    assert check("SSL:443").protocol == "SSL"
    assert (check("HTTPS:443/").protocol, check("HTTPS:443/").path) == ("HTTPS", "/")


def test_cross_zone_draining_idle_timeout_access_logs(load):
    body = """\
    Subnets: [!Ref PubA, !Ref PubB]
    Listeners: [{LoadBalancerPort: 80, InstancePort: 80, Protocol: HTTP}]
    CrossZone: true
    ConnectionDrainingPolicy: {Enabled: true}
    ConnectionSettings: {IdleTimeout: 400}
    AccessLoggingPolicy: {Enabled: true, S3BucketName: logs, EmitInterval: 5,
                          S3BucketPrefix: clb}
    """
    found = sections(load(stack(clb(body))))
    lb = found["load_balancers"]["CLB"]
    assert lb.cross_zone is True
    assert dict(lb.attributes) == {
        "cross_zone_load_balancing.enabled": "true",
        "connection_draining.enabled": "true",
        "connection_draining.timeout": "300",
        "connection_settings.idle_timeout": "400",
        "access_log.enabled": "true",
        "access_log.emit_interval": "5",
        "access_log.s3_bucket_name": "logs",
        "access_log.s3_bucket_prefix": "clb",
    }
    assert found["target_groups"]["CLB"].deregistration_delay_s == 300
    assert found["listeners"]["CLB-80"].tcp_idle_timeout_s == 400


def test_draining_timeout_and_disabled_draining(load):
    def delay(policy: str) -> int:
        body = f"""\
        Subnets: [!Ref PubA]
        Listeners: [{{LoadBalancerPort: 80, InstancePort: 80, Protocol: HTTP}}]
        ConnectionDrainingPolicy: {policy}
        """
        return sections(load(stack(clb(body))))["target_groups"]["CLB"].deregistration_delay_s

    assert delay("{Enabled: true, Timeout: 45}") == 45
    assert delay("{Enabled: false, Timeout: 45}") == 0


# --- Errors -----------------------------------------------------------------------------------


def test_issue_bad_inputs_all_reported_in_one_run_with_lines(fails):
    body = """\
    Subnets: [!Ref PubA, !Ref PubB]
    AvailabilityZones: [us-east-1a]
    Listeners:
      - {LoadBalancerPort: 80, InstancePort: 70000, Protocol: HTTP}
      - {LoadBalancerPort: 8080, InstancePort: 80, Protocol: TCP}
      - {LoadBalancerPort: 8080, InstancePort: 81, Protocol: TCP}
    HealthCheck: {Target: "HTTP80/health", Interval: 30, Timeout: 5,
                  HealthyThreshold: 2, UnhealthyThreshold: 2}
    """
    text = stack(clb(body))
    err = fails(text, logical_id="CLB")
    shown = errors_of(err)
    assert len(shown) == 4, shown

    def has(fragment: str, marker: str) -> None:
        line = line_with(text, marker)
        assert any(fragment in s and f"{FILENAME}:{line}:" in s for s in shown), (fragment, shown)

    has("Listeners[0].InstancePort must be from 1 to 65535, not 70000", "InstancePort: 70000")
    has("Listeners[1] and Listeners[2] both use LoadBalancerPort 8080", "InstancePort: 81")
    has("HealthCheck.Target 'HTTP80/health' does not parse", "HTTP80/health")
    has("Subnets (a VPC's subnets) or AvailabilityZones", "AvailabilityZones: [us-east-1a]")


def test_tls_listener_points_at_the_tls_issue(fails):
    body = """\
    Subnets: [!Ref PubA]
    Listeners:
      - {LoadBalancerPort: 443, InstancePort: 80, Protocol: HTTPS, SSLCertificateId: arn:x}
    """
    text = stack(clb(body))
    fails(text, "Protocol HTTPS", "issue (16)", "use HTTP or TCP", line=line_with(text, "443"))


def test_front_and_back_at_different_layers(fails):
    body = """\
    Subnets: [!Ref PubA]
    Listeners:
      - {LoadBalancerPort: 80, InstancePort: 80, Protocol: HTTP, InstanceProtocol: TCP}
    """
    text = stack(clb(body))
    fails(text, "InstanceProtocol TCP does not go with Protocol HTTP", line=line_with(text, "80,"))


def test_neither_subnets_nor_availability_zones(fails):
    body = """\
    Listeners: [{LoadBalancerPort: 80, InstancePort: 80, Protocol: HTTP}]
    """
    fails(stack(clb(body)), "either AvailabilityZones or Subnets must be specified")


@pytest.mark.parametrize(
    ("check", "fragment"),
    [
        ('{Target: "TCP:80"}', "HealthCheck needs Interval, Timeout, HealthyThreshold"),
        (
            '{Target: "HTTP:80", Interval: 30, Timeout: 5, HealthyThreshold: 2, '
            "UnhealthyThreshold: 2}",
            "an HTTP check needs a path",
        ),
        (
            '{Target: "TCP:80/x", Interval: 30, Timeout: 5, HealthyThreshold: 2, '
            "UnhealthyThreshold: 2}",
            "a TCP check takes no path",
        ),
        (
            '{Target: "UDP:80", Interval: 30, Timeout: 5, HealthyThreshold: 2, '
            "UnhealthyThreshold: 2}",
            "does not parse",
        ),
        (
            '{Target: "TCP:0", Interval: 30, Timeout: 5, HealthyThreshold: 2, '
            "UnhealthyThreshold: 2}",
            "port 0 is not from 1 to 65535",
        ),
        (
            '{Target: "TCP:80", Interval: 10, Timeout: 10, HealthyThreshold: 2, '
            "UnhealthyThreshold: 2}",
            "Timeout 10 must be smaller than HealthCheck.Interval 10",
        ),
        (
            '{Target: "TCP:80", Interval: 400, Timeout: 5, HealthyThreshold: 1, '
            "UnhealthyThreshold: 2}",
            "Interval must be from 5 to 300",
        ),
    ],
)
def test_health_check_errors(fails, check, fragment):
    body = f"""\
    Subnets: [!Ref PubA]
    Listeners: [{{LoadBalancerPort: 80, InstancePort: 80, Protocol: HTTP}}]
    HealthCheck: {check}
    """
    text = stack(clb(body))
    fails(text, fragment, line=line_with(text, "HealthCheck:"))


def test_instances_must_be_in_the_load_balancers_vpc(fails):
    body = """\
    Subnets: [!Ref PubA]
    Listeners: [{LoadBalancerPort: 80, InstancePort: 80, Protocol: HTTP}]
    Instances:
      - !Ref WebA
      - !Ref OtherWeb
    """
    text = stack(clb(body))
    fails(text, "instance OtherWeb is in Other", line=line_with(text, "- !Ref OtherWeb"))


# --- Ref / GetAtt -----------------------------------------------------------------------------


def test_ref_and_get_att(load):
    text = stack(clb(BASIC + "LoadBalancerName: web-clb\n")) + textwrap.dedent("""\
        Outputs:
          Name: {Value: !Ref CLB}
          Dns: {Value: !GetAtt CLB.DNSName}
          Zone: {Value: !GetAtt CLB.CanonicalHostedZoneName}
          ZoneId: {Value: !GetAtt CLB.CanonicalHostedZoneNameID}
          Group: {Value: !GetAtt CLB.SourceSecurityGroup.GroupName}
          Owner: {Value: !GetAtt CLB.SourceSecurityGroup.OwnerAlias}
        """)
    model = load(text)
    lb = sections(model)["load_balancers"]["CLB"]
    assert dict(model.outputs) == {
        "Name": "web-clb",
        "Dns": lb.dns_name,
        "Zone": lb.dns_name,
        "ZoneId": "Z35SXDOTRQ7X7K",
        "Group": "default",
        "Owner": "123456789012",
    }
    assert lb.dns_name.startswith("web-clb-")


def test_the_catalog_lists_it_as_emulated():
    from testbed.model import catalog

    found = catalog.support("AWS::ElasticLoadBalancing::LoadBalancer")
    assert found is not None
    assert found.support == catalog.EMULATED
