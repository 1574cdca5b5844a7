"""The update experiment's stack and its sequence of updates (private to
testbed.experiments.update; the integration tests of updates use it too).

The base stack: a VPC over three AZs (C only has a public subnet, for an ALB's new AZ), four
http-backend instances (WebA1, WebA2 in AZ a; WebB1, WebB2 in AZ b), an internet-facing ALB
in AZs a and b and an NLB in AZ a (cross-zone on), each with one HTTP:80 / TCP:80 listener
and a target group that holds WebA1 and WebB1; the NLB also has TCP:9000 to the backends'
echo (NlbEcho, same targets: long-lived flows). Client1 loads the ALB, Client2 the NLB.

Each step is a function that changes a copy of the current template (a dict); the
experiment applies them in order with `testbed update`. A step that is refused or rolled
back leaves the current template as it was, so the next step builds on what the lab runs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from testbed.experiments.stacks import INSTANCE_GROUP, LB_GROUP, az, ref, two_az_vpc

ALB = "MyALB"
NLB = "MyNLB"
ALB_GROUP = "AlbTargets"
NLB_GROUP = "NlbTargets"
NLB_ECHO_GROUP = "NlbEcho"  # TCP:9000, the backends' echo: long-lived flows through the NLB
ECHO_PORT = 9000
NLB_GROUPS = (NLB_GROUP, NLB_ECHO_GROUP)
ALB_LISTENER = "AlbListener"
CLIENTS = {ALB: "Client1", NLB: "Client2"}  # who loads which load balancer
BACKENDS = ("WebA1", "WebA2", "WebB1", "WebB2")
FIRST_TARGETS = ("WebA1", "WebB1")  # registered in both groups from the start
# Healthy once the lab is up: the NLB is in AZ a only, so WebB1 is "unused" there (AWS:
# a target in an AZ the load balancer is not in) until the NLB's new-AZ step.
SERVING_AT_START = {ALB: FIRST_TARGETS, NLB: ("WebA1",)}
ADDED_TARGETS = ("WebA2", "WebB2")  # registered by the add-targets steps
REPLACED = "WebB1"  # the instance the replace step replaces (a new PrivateIpAddress)
NEW_ADDRESS = "10.0.3.50"  # in PrivateSubnetB, above what the lab allocates
FAILING = "WebA3"  # the failing steps' added instance
BAD_RULE = "tcp dport 23 dorp"  # the failing step's firewall rule: nft rejects "dorp"
PORT = 80
LOAD_PATH = "/api/x"  # what the load asks for: the new rule's path
# Short health checks so that added targets are healthy within seconds; the health-check
# step doubles the interval. A short deregistration delay: replaced instances drain quickly.
HEALTH = {
    "HealthCheckIntervalSeconds": 5,
    "HealthCheckTimeoutSeconds": 4,
    "HealthyThresholdCount": 2,
    "UnhealthyThresholdCount": 2,
}
DRAIN_S = 5
IMAGE = "ami-0a1b2c3d4e5f00001"


@dataclass(frozen=True)
class Step:
    """One update: its name, the load balancer it is about ("" for both), what AWS says it
    does to traffic, and how it changes the template."""

    name: str
    lb: str
    what: str
    change: Callable[[dict[str, Any]], None]
    expect: str = "UPDATE_COMPLETE"  # the stack status AWS ends in

    def apply(self, template: dict[str, Any]) -> dict[str, Any]:
        """A changed deep copy of `template`."""
        out = copy.deepcopy(template)
        self.change(out)
        return out


def _res(t: dict[str, Any], name: str) -> dict[str, Any]:
    props: dict[str, Any] = t["Resources"][name]["Properties"]
    return props


def _add_targets(*groups: str) -> Callable[[dict[str, Any]], None]:
    def change(t: dict[str, Any]) -> None:
        for group in groups:
            port = _res(t, group)["Port"]
            _res(t, group)["Targets"] += [{"Id": ref(i), "Port": port} for i in ADDED_TARGETS]

    return change


def _alb_rule(t: dict[str, Any]) -> None:
    t["Resources"]["ApiRule"] = {
        "Type": "AWS::ElasticLoadBalancingV2::ListenerRule",
        "Properties": {
            "ListenerArn": ref(ALB_LISTENER),
            "Priority": 10,
            "Conditions": [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}}],
            "Actions": [{"Type": "forward", "TargetGroupArn": ref(ALB_GROUP)}],
        },
    }


def _health_check(group: str) -> Callable[[dict[str, Any]], None]:
    def change(t: dict[str, Any]) -> None:
        _res(t, group).update(HealthCheckIntervalSeconds=10, HealthyThresholdCount=3)

    return change


def _sg_rule(t: dict[str, Any]) -> None:
    _res(t, INSTANCE_GROUP)["SecurityGroupIngress"].append(
        {"IpProtocol": "tcp", "FromPort": 8443, "ToPort": 8443, "CidrIp": "0.0.0.0/0"}
    )


def _new_az(lb: str, subnet: str) -> Callable[[dict[str, Any]], None]:
    def change(t: dict[str, Any]) -> None:
        _res(t, lb)["Subnets"].append(ref(subnet))

    return change


def _replace(t: dict[str, Any]) -> None:
    """A new PrivateIpAddress: AWS replaces the instance (Update requires: Replacement)."""
    _res(t, REPLACED)["PrivateIpAddress"] = NEW_ADDRESS


def _failing(t: dict[str, Any]) -> None:
    """An added firewall instance whose nft rule has a typo: nft rejects it, so its role
    (appliance) never starts listening; the update fails on it and AWS rolls the stack
    back."""
    instance = _instance("A")
    instance["Metadata"]["Lab"] = {"Role": "appliance", "RoleArgs": {"Rules": [BAD_RULE]}}
    t["Resources"][FAILING] = instance


def _failing_signal(t: dict[str, Any]) -> None:
    """An added instance whose UserData sends a failure signal, with a CreationPolicy that
    waits for it (AWS: the update fails and rolls back), registered in both groups."""
    instance = _instance("A")
    instance["CreationPolicy"] = {"ResourceSignal": {"Count": 1, "Timeout": "PT2M"}}
    instance["Properties"]["UserData"] = {
        "Fn::Base64": {
            "Fn::Sub": "#!/bin/bash\n/opt/aws/bin/cfn-signal -e 1 -r 'setup failed on purpose' "
            f"--stack ${{AWS::StackName}} --resource {FAILING} --region ${{AWS::Region}}\n"
        }
    }
    t["Resources"][FAILING] = instance
    _register(t, FAILING)


def _register(t: dict[str, Any], instance: str) -> None:
    target = {"Id": ref(instance), "Port": PORT}
    for group in (ALB_GROUP, NLB_GROUP):
        if target not in _res(t, group)["Targets"]:
            _res(t, group)["Targets"].append(target)


STEPS = (
    Step("alb_targets", ALB, "add WebA2, WebB2 to the ALB's group", _add_targets(ALB_GROUP)),
    Step("nlb_targets", NLB, "add WebA2, WebB2 to the NLB's groups", _add_targets(*NLB_GROUPS)),
    Step("alb_rule", ALB, "a listener rule /api/* (the load's path)", _alb_rule),
    Step("alb_health", ALB, "the ALB group's health check: every 10 s", _health_check(ALB_GROUP)),
    Step("nlb_health", NLB, "the NLB group's health check: every 10 s", _health_check(NLB_GROUP)),
    Step("sg_rule", "", "a security group rule on the instances (tcp 8443)", _sg_rule),
    Step("nlb_new_az", NLB, "the NLB in AZ b too (a new node)", _new_az(NLB, "PublicSubnetB")),
    Step("alb_new_az", ALB, "the ALB in AZ c too (a new node)", _new_az(ALB, "PublicSubnetC")),
    Step("replace", "", f"replace {REPLACED} (new PrivateIpAddress), old drains", _replace),
    Step(
        "failing",
        "",
        f"add {FAILING}, a firewall whose nft rule has a typo",
        _failing,
        expect="UPDATE_ROLLBACK_COMPLETE",
    ),
    Step(
        "failing_signal",
        "",
        f"add {FAILING}, whose UserData signals failure (CreationPolicy)",
        _failing_signal,
        expect="UPDATE_ROLLBACK_COMPLETE",
    ),
)  # fmt: skip
BY_NAME = {s.name: s for s in STEPS}


def _instance(letter: str) -> dict[str, Any]:
    return {
        "Type": "AWS::EC2::Instance",
        "Metadata": {"Lab": {"Role": "http-backend"}},
        "Properties": {
            "SubnetId": ref(f"PrivateSubnet{letter}"),
            "SecurityGroupIds": [ref(INSTANCE_GROUP)],
            "InstanceType": "t3.micro",
            "ImageId": IMAGE,
        },
    }


def _group(protocol: str, check: str, port: int = PORT) -> dict[str, Any]:
    return {
        "Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
        "Properties": {
            "Protocol": protocol,
            "Port": port,
            "VpcId": ref("VPC"),
            "TargetType": "instance",
            "HealthCheckProtocol": check,
            **HEALTH,
            "Targets": [{"Id": ref(i), "Port": port} for i in FIRST_TARGETS],
            "TargetGroupAttributes": [
                {"Key": "deregistration_delay.timeout_seconds", "Value": str(DRAIN_S)}
            ],
        },
    }


def base_template() -> dict[str, Any]:
    """The stack before any update (module doc), as a template dict."""
    res = two_az_vpc()
    res["PublicSubnetC"] = {
        "Type": "AWS::EC2::Subnet",
        "Properties": {"VpcId": ref("VPC"), "AvailabilityZone": az(2), "CidrBlock": "10.0.4.0/24"},
    }
    res["PublicSubnetCRouteTable"] = {
        "Type": "AWS::EC2::SubnetRouteTableAssociation",
        "Properties": {"SubnetId": ref("PublicSubnetC"), "RouteTableId": ref("PublicRouteTable")},
    }
    for name in BACKENDS:
        res[name] = _instance(name[3])
    res[ALB] = {
        "Type": "AWS::ElasticLoadBalancingV2::LoadBalancer",
        "Properties": {
            "Type": "application",
            "Scheme": "internet-facing",
            "Subnets": [ref("PublicSubnetA"), ref("PublicSubnetB")],
            "SecurityGroups": [ref(LB_GROUP)],
        },
    }
    res[ALB_GROUP] = _group("HTTP", "HTTP")
    res[ALB_LISTENER] = {
        "Type": "AWS::ElasticLoadBalancingV2::Listener",
        "Properties": {
            "LoadBalancerArn": ref(ALB),
            "Protocol": "HTTP",
            "Port": PORT,
            "DefaultActions": [{"Type": "forward", "TargetGroupArn": ref(ALB_GROUP)}],
        },
    }
    res[NLB] = {
        "Type": "AWS::ElasticLoadBalancingV2::LoadBalancer",
        "Properties": {
            "Type": "network",
            "Scheme": "internet-facing",
            "Subnets": [ref("PublicSubnetA")],
            "LoadBalancerAttributes": [
                {"Key": "load_balancing.cross_zone.enabled", "Value": "true"}
            ],
        },
    }
    res[NLB_GROUP] = _group("TCP", "TCP")
    res["NlbListener"] = {
        "Type": "AWS::ElasticLoadBalancingV2::Listener",
        "Properties": {
            "LoadBalancerArn": ref(NLB),
            "Protocol": "TCP",
            "Port": PORT,
            "DefaultActions": [{"Type": "forward", "TargetGroupArn": ref(NLB_GROUP)}],
        },
    }
    res[NLB_ECHO_GROUP] = _group("TCP", "TCP", ECHO_PORT)
    res["NlbEchoListener"] = {
        "Type": "AWS::ElasticLoadBalancingV2::Listener",
        "Properties": {
            "LoadBalancerArn": ref(NLB),
            "Protocol": "TCP",
            "Port": ECHO_PORT,
            "DefaultActions": [{"Type": "forward", "TargetGroupArn": ref(NLB_ECHO_GROUP)}],
        },
    }
    for client in CLIENTS.values():
        res[client] = {"Type": "Lab::Internet::Client"}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "update experiment stack (generated by experiments/update.py): an ALB "
        "and an NLB in front of http-backend instances, changed under load",
        "Resources": res,
        "Outputs": {f"{lb}DnsName": {"Value": {"Fn::GetAtt": [lb, "DNSName"]}} for lb in CLIENTS},
    }


def dump(template: dict[str, Any]) -> str:
    """The template as YAML."""
    return yaml.safe_dump(template, sort_keys=False, width=100, default_flow_style=None)
