"""`testbed asg`, `testbed scale` and `testbed alarms` on a real lab, through the command line.

A small inline stack: one VPC, a public subnet in each of two AZs, an internet-facing ALB and
its target group, a launch template with the http-backend role, and a group (Min 1, Max 4,
Desired 2) registered in the target group; TimeScale 10 (health checks every second, a 2 s
deregistration delay).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from testbed import naming
from testbed.lab.api import Lab, random_name
from testbed.lab.teardown import leftovers

pytestmark = pytest.mark.integration

GROUP, TG, LB = "Web", "Tg", "Alb"
AZS = {"us-east-1a", "us-east-1b"}
READY_S = 90.0

TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Metadata:
  Lab:
    TimeScale: 10
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.9.0.0/16}
  Igw:
    Type: AWS::EC2::InternetGateway
  IgwAttach:
    Type: AWS::EC2::VPCGatewayAttachment
    Properties: {VpcId: !Ref Vpc, InternetGatewayId: !Ref Igw}
  Rt:
    Type: AWS::EC2::RouteTable
    Properties: {VpcId: !Ref Vpc}
  DefaultRoute:
    Type: AWS::EC2::Route
    DependsOn: IgwAttach
    Properties: {RouteTableId: !Ref Rt, DestinationCidrBlock: 0.0.0.0/0, GatewayId: !Ref Igw}
  SubA:
    Type: AWS::EC2::Subnet
    Properties:
      VpcId: !Ref Vpc
      CidrBlock: 10.9.1.0/24
      AvailabilityZone: !Select [0, !GetAZs ""]
      MapPublicIpOnLaunch: true
  SubB:
    Type: AWS::EC2::Subnet
    Properties:
      VpcId: !Ref Vpc
      CidrBlock: 10.9.2.0/24
      AvailabilityZone: !Select [1, !GetAZs ""]
      MapPublicIpOnLaunch: true
  SubARt:
    Type: AWS::EC2::SubnetRouteTableAssociation
    Properties: {SubnetId: !Ref SubA, RouteTableId: !Ref Rt}
  SubBRt:
    Type: AWS::EC2::SubnetRouteTableAssociation
    Properties: {SubnetId: !Ref SubB, RouteTableId: !Ref Rt}
  AlbSg:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: HTTP from anywhere
      VpcId: !Ref Vpc
      SecurityGroupIngress: [{IpProtocol: tcp, FromPort: 80, ToPort: 80, CidrIp: 0.0.0.0/0}]
  WebSg:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: HTTP from the ALB
      VpcId: !Ref Vpc
      SecurityGroupIngress:
        - {IpProtocol: tcp, FromPort: 80, ToPort: 80, SourceSecurityGroupId: !Ref AlbSg}
  Alb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties:
      Type: application
      Scheme: internet-facing
      SecurityGroups: [!Ref AlbSg]
      Subnets: [!Ref SubA, !Ref SubB]
  Tg:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      Protocol: HTTP
      Port: 80
      VpcId: !Ref Vpc
      HealthCheckPath: /health
      HealthCheckIntervalSeconds: 10
      HealthCheckTimeoutSeconds: 5
      HealthyThresholdCount: 2
      UnhealthyThresholdCount: 2
      TargetGroupAttributes:
        - {Key: deregistration_delay.timeout_seconds, Value: "20"}
  Listener:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref Alb
      Protocol: HTTP
      Port: 80
      DefaultActions: [{Type: forward, TargetGroupArn: !Ref Tg}]
  Lt:
    Type: AWS::EC2::LaunchTemplate
    Metadata:
      Lab: {Role: http-backend}
    Properties:
      LaunchTemplateData:
        ImageId: ami-12345678
        InstanceType: t3.micro
        SecurityGroupIds: [!Ref WebSg]
  Web:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      MinSize: 1
      MaxSize: 4
      DesiredCapacity: 2
      VPCZoneIdentifier: [!Ref SubA, !Ref SubB]
      LaunchTemplate:
        LaunchTemplateId: !Ref Lt
        Version: !GetAtt Lt.LatestVersionNumber
      TargetGroupARNs: [!Ref Tg]
      HealthCheckType: ELB
      HealthCheckGracePeriod: 30
  Client1:
    Type: Lab::Internet::Client
"""


def cli(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "testbed.cli", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    path = tmp_path_factory.mktemp("asgcli") / "asg.yaml"
    path.write_text(TEMPLATE)
    with Lab.up(str(path), name=random_name("sac")) as lab:
        yield lab


def url(lab: Lab) -> str:
    node = next(x for x in lab.state["load_balancers"] if x["name"] == LB)["nodes"][0]
    return f"http://{node['public_ip']}/"


def answering(lab: Lab, requests: int) -> tuple[set[str], int]:
    """(instances that answered, failed requests) of `requests` sequential requests through
    the ALB (each answer names its instance)."""
    script = (
        f"for i in $(seq {requests}); do "
        f"curl -s -m 3 -w '\\n@@%{{http_code}}\\n' {url(lab)} || echo '@@000'; done"
    )
    out = lab.host("Client1").run(script, timeout=requests * 4 + 30).stdout
    hosts, failed = set(), 0
    body: list[str] = []
    for line in out.splitlines():
        if not line.startswith("@@"):
            body.append(line)
            continue
        try:
            assert line == "@@200"
            hosts.add(json.loads("".join(body))["instance"])
        except (AssertionError, ValueError, KeyError):
            failed += 1
        body = []
    return hosts, failed


def test_up_completes_with_the_desired_instances_in_service_across_azs(lab):
    events = [e for e in lab.events() if e.logical_id == GROUP]
    assert events[-1].status == "CREATE_COMPLETE" or any(
        e.status == "CREATE_COMPLETE" for e in events
    ), [e.line() for e in events]
    assert any("time scale 10" in e.reason for e in lab.events() if e.logical_id == lab.name)
    group = lab.wait_asg(GROUP, 2, READY_S)
    assert {i["AvailabilityZone"] for i in group["Instances"]} == AZS
    proc = cli("asg", lab.name, "--json")
    assert proc.returncode == 0, proc.stderr
    [shown] = json.loads(proc.stdout)["AutoScalingGroups"]
    assert shown["LogicalId"] == GROUP
    assert (shown["MinSize"], shown["DesiredCapacity"], shown["MaxSize"]) == (1, 2, 4)
    assert shown["TimeScale"] == 10
    for i in shown["Instances"]:
        assert i["InstanceId"].startswith("i-")
        assert i["LaunchTemplate"]["LaunchTemplateName"].startswith(f"{lab.name}-Lt-")
        assert {"Host", "AvailabilityZone", "LifecycleState", "HealthStatus"} <= set(i)
    table = cli("asg", lab.name, GROUP)
    assert table.returncode == 0, table.stderr
    assert "min 1, desired 2, max 4; 2 InService" in table.stdout
    # Launched instances are lab hosts like any other: status and exec see them.
    hosts = {h.name for h in lab.hosts}
    assert {i["Host"] for i in shown["Instances"]} <= hosts


def test_scale_out_then_in_without_a_failed_request(lab):
    proc = cli("scale", lab.name, GROUP, "--desired", "4")
    assert proc.returncode == 0, proc.stderr
    four = lab.wait_asg(GROUP, 4, READY_S)["Instances"]
    assert sorted(i["AvailabilityZone"] for i in four).count("us-east-1a") == 2
    hosts, failed = answering(lab, 60)
    assert failed == 0
    assert hosts == {i["Host"] for i in four}
    # Scale in while a client keeps asking: draining keeps every request answered.
    result: dict = {}
    load = threading.Thread(
        target=lambda: result.update(zip(("hosts", "failed"), answering(lab, 120)))
    )
    load.start()
    try:
        proc = cli("scale", lab.name, GROUP, "--desired", "1")
        assert proc.returncode == 0, proc.stderr
        one = lab.wait_asg(GROUP, 1, READY_S)["Instances"]
    finally:
        load.join()
    assert result["failed"] == 0
    gone = {i["Host"] for i in four} - {i["Host"] for i in one}
    assert len(gone) == 3
    # Nothing of them is left: not in the lab's hosts, no namespace, no host link.
    assert not gone & {h.name for h in lab.hosts}
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for host in gone:
        assert naming.netns_name(lab.name, host) not in namespaces
    activities = cli("asg", lab.name, GROUP, "activities", "--json", "--limit", "3")
    assert activities.returncode == 0, activities.stderr
    rows = json.loads(activities.stdout)["Activities"]
    assert len(rows) == 3
    assert all(r["Description"].startswith("Terminating") for r in rows)
    assert all(r["StatusCode"] == "Successful" for r in rows)


def test_scale_outside_min_max_exits_2_with_aws_words(lab):
    proc = cli("scale", lab.name, GROUP, "--desired", "9")
    assert proc.returncode == 2
    assert "New SetDesiredCapacity value 9 is above max value 4" in proc.stderr
    proc = cli("asg", lab.name, "NoSuchGroup")
    assert proc.returncode == 2
    assert "no Auto Scaling group 'NoSuchGroup'" in proc.stderr


def test_alarms_lists_none_for_a_group_without_policies(lab):
    proc = cli("alarms", lab.name, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"MetricAlarms": []}


def test_down_leaves_nothing(lab):
    lab.scale(GROUP, desired=3)
    lab.wait_asg(GROUP, 3, READY_S, targets_healthy=False)
    lab.down()
    assert not any(leftovers(lab.name).values()), leftovers(lab.name)
