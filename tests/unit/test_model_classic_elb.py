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


def test_a_listener_with_an_error_still_counts_for_duplicate_ports(fails):
    body = """\
    Subnets: [!Ref PubA, !Ref PubB]
    Listeners:
      - {LoadBalancerPort: 80, InstancePort: 70000, Protocol: HTTP}
      - {LoadBalancerPort: 80, InstancePort: 80, Protocol: HTTP}
    """
    text = stack(clb(body))
    shown = errors_of(fails(text, logical_id="CLB"))
    assert len(shown) == 2, shown
    line = line_with(text, "InstancePort: 80,")
    assert any(
        "Listeners[0] and Listeners[1] both use LoadBalancerPort 80" in s
        and f"{FILENAME}:{line}:" in s
        for s in shown
    ), shown


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


# --- Policies ---------------------------------------------------------------------------------

POLICIES = """\
Subnets: [!Ref PubA, !Ref PubB]
Instances: [!Ref WebA]
Listeners:
  - {LoadBalancerPort: 80, InstancePort: 80, Protocol: HTTP, PolicyNames: [Session]}
  - {LoadBalancerPort: 81, InstancePort: 80, Protocol: HTTP, PolicyNames: [App]}
  - {LoadBalancerPort: 82, InstancePort: 80, Protocol: HTTP}
  - {LoadBalancerPort: 83, InstancePort: 80, Protocol: HTTP}
  - {LoadBalancerPort: 84, InstancePort: 80, Protocol: HTTP, PolicyNames: [Timed]}
  - {LoadBalancerPort: 9000, InstancePort: 9001, Protocol: TCP}
  - {LoadBalancerPort: 9002, InstancePort: 9002, Protocol: TCP}
LBCookieStickinessPolicy:
  - {PolicyName: Session}
  - {PolicyName: Timed, CookieExpirationPeriod: "600"}
AppCookieStickinessPolicy:
  - {PolicyName: App, CookieName: JSESSIONID}
Policies:
  - PolicyName: Generic
    PolicyType: LBCookieStickinessPolicyType
    Attributes: [{Name: CookieExpirationPeriod, Value: "120"}]
    LoadBalancerPorts: ["82"]
  - PolicyName: GenericApp
    PolicyType: AppCookieStickinessPolicyType
    Attributes: [{Name: CookieName, Value: sid}]
    LoadBalancerPorts: [83]
  - PolicyName: Proxy
    PolicyType: ProxyProtocolPolicyType
    Attributes: [{Name: ProxyProtocol, Value: true}]
    InstancePorts: ["9001", 80]
  - PolicyName: Tls
    PolicyType: SSLNegotiationPolicyType
    Attributes: [{Name: Reference-Security-Policy, Value: ELBSecurityPolicy-2016-08}]
"""


def test_stickiness_and_proxy_protocol_policies(load):
    model = load(stack(clb(POLICIES)))
    found = sections(model)["listeners"]
    assert {
        k: (v.sticky, v.sticky_cookie, v.sticky_expiration_s, v.proxy_protocol)
        for k, v in found.items()
    } == {
        "CLB-80": ("lb_cookie", None, None, False),
        "CLB-81": ("app_cookie", "JSESSIONID", None, False),
        "CLB-82": ("lb_cookie", None, 120, False),
        "CLB-83": ("app_cookie", "sid", None, False),
        "CLB-84": ("lb_cookie", None, 600, False),
        "CLB-9000": (None, None, None, True),  # TCP to instance port 9001: PROXY v1
        "CLB-9002": (None, None, None, False),  # its instance port is not listed
    }
    assert found["CLB-80"].policy_names == ("Session",)
    ignored = [i.property for i in model.ignored if i.logical_id == "CLB"]
    # PROXY on instance port 80, which HTTP listeners use: AWS sends it on TCP/SSL only.
    assert any("ProxyProtocol on instance port 80" in p for p in ignored), ignored
    # An SSL negotiation policy bound to no listener (tests/unit/test_classic_tls.py: bound).
    assert not any("Policies[3]" in p for p in ignored), ignored


def test_policy_errors_all_in_one_run(fails):
    body = """\
    Subnets: [!Ref PubA]
    Listeners:
      - {LoadBalancerPort: 80, InstancePort: 80, Protocol: HTTP, PolicyNames: [Sesion]}
      - {LoadBalancerPort: 90, InstancePort: 90, Protocol: TCP, PolicyNames: [Session]}
      - {LoadBalancerPort: 91, InstancePort: 91, Protocol: HTTP, PolicyNames: [Session, App]}
    LBCookieStickinessPolicy:
      - {PolicyName: Session}
    AppCookieStickinessPolicy:
      - {PolicyName: App, CookieName: "bad cookie"}
      - {PolicyName: Session, CookieName: ok}
    Policies:
      - {PolicyName: Odd, PolicyType: MadeUpPolicyType, Attributes: []}
      - PolicyName: Proxy
        PolicyType: ProxyProtocolPolicyType
        Attributes: [{Name: ProxyProtocl, Value: "true"}]
        InstancePorts: [90]
      - PolicyName: Far
        PolicyType: LBCookieStickinessPolicyType
        Attributes: []
        LoadBalancerPorts: [8080]
    """
    text = stack(clb(body))
    shown = errors_of(fails(text, logical_id="CLB"))

    def has(fragment: str, marker: str) -> None:
        line = line_with(text, marker)
        assert any(fragment in s and f"{FILENAME}:{line}:" in s for s in shown), (fragment, shown)

    has("'Sesion' is not a policy of this load balancer", "[Sesion]")
    assert any("did you mean Session?" in s for s in shown)
    has("stickiness policy, for HTTP (and HTTPS) listeners only", "Protocol: TCP")
    has("'bad cookie' is not a cookie name", "bad cookie")
    has("policy name 'Session' is already used by LBCookieStickinessPolicy[0]", "CookieName: ok")
    has("'MadeUpPolicyType' is not a classic load balancer policy type", "MadeUpPolicyType")
    has("has no attribute 'ProxyProtocl'", "ProxyProtocl")
    has("the load balancer has no listener on port 8080", "[8080]")
    has("Listeners[2] already uses stickiness policy 'Session'", "[Session, App]")
    assert len(shown) == 8, shown


def test_a_proxy_policy_is_not_a_listener_policy(fails):
    body = """\
    Subnets: [!Ref PubA]
    Listeners:
      - {LoadBalancerPort: 90, InstancePort: 90, Protocol: TCP, PolicyNames: [Proxy]}
    Policies:
      - PolicyName: Proxy
        PolicyType: ProxyProtocolPolicyType
        Attributes: [{Name: ProxyProtocol, Value: "true"}]
        InstancePorts: [90]
    """
    text = stack(clb(body))
    fails(text, "applies to instance ports", line=line_with(text, "[Proxy]"))


# --- Names, places, instances -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["-web", "web-", "a" * 33, "web_1"])
def test_load_balancer_name_rules(fails, name):
    text = stack(clb(BASIC + f"LoadBalancerName: {name}\n"))
    fails(text, "is not a valid load balancer name", line=line_with(text, "LoadBalancerName"))


def test_load_balancer_names_are_unique_in_the_stack(fails):
    text = stack(
        "ALB:\n  Type: AWS::ElasticLoadBalancingV2::LoadBalancer\n  Properties: "
        "{Name: web, Subnets: [!Ref PubA, !Ref PubB]}\n",
        clb(BASIC + "LoadBalancerName: web\n"),
    )
    fails(text, "load balancer name 'web' is already used by ALB", logical_id="CLB")


def test_an_elbv2_target_group_may_share_the_classic_load_balancers_name(load):
    text = stack(
        clb(BASIC + "LoadBalancerName: web\n"),
        "TG:\n  Type: AWS::ElasticLoadBalancingV2::TargetGroup\n  Properties: "
        "{Name: web, Protocol: HTTP, Port: 80, VpcId: !Ref VPC}\n",
    )
    groups = sections(load(text))["target_groups"]
    assert (groups["CLB"].name, groups["TG"].name) == ("web", "web")


def test_availability_zones_put_it_in_the_default_vpc(load):
    body = """\
    AvailabilityZones: [us-east-1a, us-east-1c]
    Listeners: [{LoadBalancerPort: 80, InstancePort: 80, Protocol: HTTP}]
    """
    lb = sections(load(stack(clb(body))))["load_balancers"]["CLB"]
    assert lb.vpc_id == "DefaultVpc"
    assert [(n.az, n.subnet_id) for n in lb.nodes] == [
        ("us-east-1a", "DefaultSubnet1a"),
        ("us-east-1c", "DefaultSubnet1c"),
    ]
    assert lb.security_groups == ("DefaultVpc.default_elb",)  # ELB's group, not the VPC's


def test_internet_facing_needs_public_subnets(fails):
    body = """\
    Subnets: [!Ref PrivA]
    Listeners: [{LoadBalancerPort: 80, InstancePort: 80, Protocol: HTTP}]
    """
    text = stack(clb(body))
    fails(text, "needs public subnets", line=line_with(text, "Subnets: [!Ref PrivA]"))


def test_one_subnet_per_az_and_one_vpc(fails):
    body = """\
    Subnets: [!Ref PubA, !Ref PrivA]
    Listeners: [{LoadBalancerPort: 80, InstancePort: 80, Protocol: HTTP}]
    """
    fails(stack(clb(body)), "are both in us-east-1a")
    body = """\
    Subnets: [!Ref PubA, !Ref OtherNet]
    Listeners: [{LoadBalancerPort: 80, InstancePort: 80, Protocol: HTTP}]
    """
    fails(stack(clb(body)), "must be in one VPC")


def test_an_instance_in_an_az_without_a_node_stays_registered(load):
    body = """\
    Subnets: [!Ref PubA]
    Instances: [!Ref WebA, !Ref WebB, !Ref WebA]
    Listeners: [{LoadBalancerPort: 80, InstancePort: 80, Protocol: HTTP}]
    """
    tg = sections(load(stack(clb(body))))["target_groups"]["CLB"]
    assert [(t.instance, t.az) for t in tg.targets] == [
        ("WebA", "us-east-1a"),
        ("WebB", "us-east-1b"),
    ]


def test_instances_must_be_instances_of_the_stack(fails):
    body = """\
    Subnets: [!Ref PubA]
    Listeners: [{LoadBalancerPort: 80, InstancePort: 80, Protocol: HTTP}]
    Instances:
      - i-0123456789abcdef0
      - !Ref PubB
    """
    text = stack(clb(body))
    shown = errors_of(fails(text))
    assert any(
        "is not the id of a instance of this stack" in s or "not the id of an" in s for s in shown
    )
    assert any("PubB" in s for s in shown)


def test_security_groups_must_be_in_its_vpc(fails):
    text = stack(
        "Far:\n  Type: AWS::EC2::SecurityGroup\n  Properties: {GroupDescription: f, "
        "VpcId: !Ref Other}\n",
        clb(BASIC + "SecurityGroups: [!Ref Far]\n"),
    )
    fails(text, "security group Far is in Other", line=line_with(text, "SecurityGroups:"))


def test_attribute_ranges(fails):
    body = """\
    Subnets: [!Ref PubA]
    Listeners: [{LoadBalancerPort: 80, InstancePort: 80, Protocol: HTTP}]
    ConnectionDrainingPolicy: {Enabled: true, Timeout: 4000}
    ConnectionSettings: {IdleTimeout: 0}
    AccessLoggingPolicy: {Enabled: true, S3BucketName: b, EmitInterval: 10}
    """
    text = stack(clb(body))
    shown = errors_of(fails(text))
    assert len(shown) == 3, shown
    assert any("ConnectionDrainingPolicy.Timeout must be from 1 to 3600" in s for s in shown)
    assert any("ConnectionSettings.IdleTimeout must be from 1 to 4000" in s for s in shown)
    assert any("EmitInterval must be 5 or 60" in s for s in shown)


def test_listener_errors(fails):
    body = """\
    Subnets: [!Ref PubA]
    Listeners:
      - {LoadBalancerPort: 0, InstancePort: 80, Protocol: HTTP}
      - {LoadBalancerPort: 81, InstancePort: 80, Protocol: UDP}
      - {LoadBalancerPort: 82, InstancePort: 80, Protocol: SSL, InstanceProtocol: TCP}
      - {LoadBalancerPort: 83, InstancePort: 80, Protocol: HTTP, SSLCertificateId: x}
      - {LoadBalancerPort: 84, Protocol: HTTP}
    """
    text = stack(clb(body))
    shown = errors_of(fails(text))
    assert len(shown) == 5, shown
    assert any("LoadBalancerPort must be from 1 to 65535, not 0" in s for s in shown)
    assert any("Listeners[1].Protocol must be one of HTTP, TCP, HTTPS, SSL" in s for s in shown)
    assert any("Listeners[2]: an SSL listener needs SSLCertificateId" in s for s in shown)
    assert any("SSLCertificateId is only for HTTPS and SSL listeners" in s for s in shown)
    assert any("Listeners[4].InstancePort is missing" in s for s in shown)


# --- Around it: security groups, Route53, Auto Scaling, default roles -------------------------

DEFAULT_VPC_CLB = """\
Web:
  Type: AWS::EC2::Instance
  Properties: {AvailabilityZone: us-east-1a, SecurityGroups: [!Ref WebGroup]}
WebGroup:
  Type: AWS::EC2::SecurityGroup
  Properties:
    GroupDescription: web
    SecurityGroupIngress:
      - IpProtocol: tcp
        FromPort: 80
        ToPort: 80
        SourceSecurityGroupOwnerId: !GetAtt CLB.SourceSecurityGroup.OwnerAlias
        SourceSecurityGroupName: !GetAtt CLB.SourceSecurityGroup.GroupName
CLB:
  Type: AWS::ElasticLoadBalancing::LoadBalancer
  Properties:
    AvailabilityZones: [us-east-1a]
    Listeners: [{LoadBalancerPort: 80, InstancePort: 80, Protocol: HTTP}]
"""


def test_ingress_from_the_source_security_group_in_the_default_vpc(load):
    model = load("Resources:\n" + textwrap.indent(DEFAULT_VPC_CLB, "  "))
    rules = model.security_groups["WebGroup"].ingress
    assert [(r.from_port, r.group) for r in rules] == [(80, "DefaultVpc.default_elb")]
    assert sections(model)["load_balancers"]["CLB"].security_groups == ("DefaultVpc.default_elb",)


# ELB's group (AWS: "If you use the AWS CLI or API to create a load balancer in your default
# VPC, you can't choose an existing security group ... ELB creates only one such security
# group per AWS account, with a name of the form default_elb_id").
ELB_GROUP = "DefaultVpc.default_elb"
UUID_NAME = re.compile(r"default_elb_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TWO_DEFAULT_VPC_CLBS = stack(
    clb(
        """\
        AvailabilityZones: [us-east-1a]
        Listeners:
          - {LoadBalancerPort: 80, InstancePort: 80, Protocol: HTTP}
          - {LoadBalancerPort: 8080, InstancePort: 80, Protocol: HTTP}
        """,
        "One",
    ),
    clb(
        """\
        AvailabilityZones: [us-east-1b]
        Listeners:
          - {LoadBalancerPort: 80, InstancePort: 80, Protocol: HTTP}
          - {LoadBalancerPort: 25, InstancePort: 2525, Protocol: TCP}
        """,
        "Two",
    ),
) + textwrap.dedent("""\
    Outputs:
      One: {Value: !GetAtt One.SourceSecurityGroup.GroupName}
      Two: {Value: !GetAtt Two.SourceSecurityGroup.GroupName}
    """)


def test_default_vpc_load_balancers_without_groups_share_elbs_group(load):
    model = load(TWO_DEFAULT_VPC_CLBS)
    lbs = sections(model)["load_balancers"]
    assert lbs["One"].security_groups == lbs["Two"].security_groups == (ELB_GROUP,)
    group = model.security_groups[ELB_GROUP]
    assert UUID_NAME.fullmatch(group.name)
    assert (group.vpc_id, group.group_id, group.is_default) == (
        "DefaultVpc",
        "sg-DefaultVpc.default_elb",
        False,
    )
    assert group.description.startswith("ELB created security group")
    # TCP from anywhere on every listener port of both, each once; everything out.
    assert [(r.protocol, r.from_port, r.to_port, str(r.cidr)) for r in group.ingress] == [
        (6, 80, 80, "0.0.0.0/0"),
        (6, 8080, 8080, "0.0.0.0/0"),
        (6, 25, 25, "0.0.0.0/0"),
    ]
    assert [(r.protocol, str(r.cidr)) for r in group.egress] == [(-1, "0.0.0.0/0")]
    assert group.ingress[2].source.line == line_with(TWO_DEFAULT_VPC_CLBS, "LoadBalancerPort: 25")
    # !GetAtt X.SourceSecurityGroup.GroupName is its name.
    assert dict(model.outputs) == {"One": group.name, "Two": group.name}
    # The VPC's default group is still there, and the CLBs are not in it.
    assert model.security_groups["DefaultVpc.default"].is_default


def test_elbs_group_is_lab_made_and_its_name_stays_with_the_stack(load):
    model = load(TWO_DEFAULT_VPC_CLBS)
    name = model.security_groups[ELB_GROUP].name
    assert f"ELB's security group {name} for" in model.lab_made[ELB_GROUP]
    assert "no SecurityGroups" in model.lab_made[ELB_GROUP]
    assert model.resource_types[ELB_GROUP] == "AWS::EC2::SecurityGroup"
    assert ELB_GROUP in model.creation_order
    assert load(TWO_DEFAULT_VPC_CLBS).security_groups[ELB_GROUP].name == name
    other = load(TWO_DEFAULT_VPC_CLBS, stack_name="other")
    assert UUID_NAME.fullmatch(other.security_groups[ELB_GROUP].name)
    assert other.security_groups[ELB_GROUP].name != name


def test_given_groups_are_kept_in_the_default_vpc(load):
    body = """\
    AvailabilityZones: [us-east-1a]
    SecurityGroups: [!GetAtt Front.GroupId]
    Listeners: [{LoadBalancerPort: 80, InstancePort: 80, Protocol: HTTP}]
    """
    text = stack(
        "Front:\n  Type: AWS::EC2::SecurityGroup\n  Properties: {GroupDescription: f, "
        "GroupName: front}\n",
        clb(body),
    )
    model = load(text)
    assert sections(model)["load_balancers"]["CLB"].security_groups == ("Front",)
    assert ELB_GROUP not in model.security_groups
    assert ELB_GROUP not in model.lab_made


def test_no_elb_group_outside_the_default_vpc(load):
    model = load(stack(clb(BASIC)))
    assert sections(model)["load_balancers"]["CLB"].security_groups == ("VPC.default",)
    assert not [g for g in model.security_groups.values() if g.name.startswith("default_elb_")]
    assert not model.lab_made.keys() - {"Internet1"}


# The resources of aws-cloudformation-templates ElasticLoadBalancing/
# ELBWithLockedDownAutoScaledInstances.yaml (cfn-init metadata and UserData left out): the
# instances admit port 80 only from the load balancer's source security group.
LOCKED_DOWN = """\
Parameters:
  SSHLocation: {Type: String, Default: 0.0.0.0/0}
Resources:
  WebServerGroup:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      AvailabilityZones: !GetAZs
      LaunchConfigurationName: !Ref LaunchConfig
      MinSize: "2"
      MaxSize: "2"
      LoadBalancerNames:
        - !Ref ElasticLoadBalancer
  LaunchConfig:
    Type: AWS::AutoScaling::LaunchConfiguration
    Properties:
      ImageId: ami-12345678
      SecurityGroups:
        - !Ref InstanceSecurityGroup
      InstanceType: t2.small
  ElasticLoadBalancer:
    Type: AWS::ElasticLoadBalancing::LoadBalancer
    Properties:
      AvailabilityZones: !GetAZs
      CrossZone: "true"
      Listeners:
        - LoadBalancerPort: "80"
          InstancePort: "80"
          Protocol: HTTP
      HealthCheck:
        Target: HTTP:80/
        HealthyThreshold: "3"
        UnhealthyThreshold: "5"
        Interval: "30"
        Timeout: "5"
  InstanceSecurityGroup:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: Enable SSH access and HTTP access on the inbound port
      SecurityGroupIngress:
        - IpProtocol: tcp
          FromPort: "80"
          ToPort: "80"
          SourceSecurityGroupOwnerId: !GetAtt ElasticLoadBalancer.SourceSecurityGroup.OwnerAlias
          SourceSecurityGroupName: !GetAtt ElasticLoadBalancer.SourceSecurityGroup.GroupName
        - IpProtocol: tcp
          FromPort: "22"
          ToPort: "22"
          CidrIp: !Ref SSHLocation
Outputs:
  URL:
    Value: !Join ["", ["http://", !GetAtt ElasticLoadBalancer.DNSName]]
"""


def test_locked_down_instances_admit_the_load_balancers_nodes(load):
    model = load(LOCKED_DOWN)
    lb = sections(model)["load_balancers"]["ElasticLoadBalancer"]
    assert lb.security_groups == (ELB_GROUP,)
    elb_group = model.security_groups[ELB_GROUP]
    assert [(r.from_port, str(r.cidr)) for r in elb_group.ingress] == [(80, "0.0.0.0/0")]
    rules = model.security_groups["InstanceSecurityGroup"].ingress
    assert [(r.from_port, r.group, r.cidr and str(r.cidr)) for r in rules] == [
        (80, ELB_GROUP, None),
        (22, None, "0.0.0.0/0"),
    ]
    assert model.auto_scaling_groups["WebServerGroup"].launch.security_groups == (
        "InstanceSecurityGroup",
    )


def test_source_security_group_is_its_first_group(load):
    text = (
        stack(
            "Front:\n  Type: AWS::EC2::SecurityGroup\n  Properties: {GroupDescription: f, "
            "GroupName: front, VpcId: !Ref VPC}\n",
            clb(BASIC + "SecurityGroups: [!Ref Front]\n"),
        )
        + "Outputs:\n  Group: {Value: !GetAtt CLB.SourceSecurityGroup.GroupName}\n"
    )
    assert load(text).outputs["Group"] == "front"


def test_route53_alias_and_cname_point_at_the_load_balancer(load):
    text = stack(
        clb(BASIC),
        "Zone:\n  Type: AWS::Route53::HostedZone\n  Properties: {Name: example.com.}\n",
        "Www:\n  Type: AWS::Route53::RecordSet\n  Properties: {HostedZoneId: !Ref Zone, "
        "Name: www.example.com., Type: A, AliasTarget: {DNSName: !GetAtt CLB.DNSName, "
        "HostedZoneId: !GetAtt CLB.CanonicalHostedZoneNameID}}\n",
        "Api:\n  Type: AWS::Route53::RecordSet\n  Properties: {HostedZoneId: !Ref Zone, "
        "Name: api.example.com., Type: CNAME, TTL: 60, ResourceRecords: [!GetAtt CLB.DNSName]}\n",
    )
    model = load(text)
    lb = sections(model)["load_balancers"]["CLB"]
    found = {r.logical_id: (r.type, r.values) for r in model.dns_records}
    assert found == {
        "Www": ("CNAME", (lb.dns_name.lower(),)),
        "Api": ("CNAME", (lb.dns_name.lower(),)),
    }


ASG = """\
Lt:
  Type: AWS::EC2::LaunchTemplate
  Properties:
    LaunchTemplateData: {ImageId: ami-12345678}
Asg:
  Type: AWS::AutoScaling::AutoScalingGroup
  Properties:
    MinSize: 1
    MaxSize: 2
    VPCZoneIdentifier: [!Ref PrivA, !Ref PrivB]
    LaunchTemplate: {LaunchTemplateId: !Ref Lt, Version: !GetAtt Lt.LatestVersionNumber}
    LoadBalancerNames: [{names}]
"""


def test_auto_scaling_group_attaches_to_the_classic_load_balancer(load):
    text = stack(clb(BASIC), ASG.replace("{names}", "!Ref CLB"))
    model = load(text)
    group = model.auto_scaling_groups["Asg"]
    assert group.load_balancer_names == ("CLB",)
    assert group.attached_target_groups == ("CLB",)
    assert group.launch.role is not None
    assert (group.launch.role.name, dict(group.launch.role.args)) == (
        "http-backend",
        {"Port": 8080},
    )
    assert not [i for i in model.ignored if "LoadBalancerNames" in i.property]


@pytest.mark.parametrize(
    ("names", "fragment"),
    [
        ("some-other-elb", "'some-other-elb' is not the id of a classic load balancer of this"),
        ("!Ref WebA", "refers to WebA, which is an AWS::EC2::Instance"),
    ],
)
def test_auto_scaling_group_names_only_its_stacks_classic_load_balancers(fails, names, fragment):
    text = stack(clb(BASIC), ASG.replace("{names}", names))
    fails(text, fragment, logical_id="Asg", line=line_with(text, "LoadBalancerNames"))


def test_auto_scaling_group_and_load_balancer_in_one_vpc(fails):
    body = """\
    Subnets: [!Ref OtherNet]
    Scheme: internal
    Listeners: [{LoadBalancerPort: 80, InstancePort: 80, Protocol: HTTP}]
    """
    text = stack(clb(body), ASG.replace("{names}", "!Ref CLB"))
    fails(text, "load balancer CLB is in Other, but the group's subnets are in VPC")


def test_instances_get_the_http_backend_role_on_the_instance_port(load):
    model = load(stack(clb(BASIC)))
    role = model.instances["WebA"].role
    assert role is not None
    assert (role.name, dict(role.args)) == ("http-backend", {"Port": 8080})
