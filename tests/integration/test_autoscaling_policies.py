"""Scaling policies on a real lab: target tracking on ALBRequestCountPerTarget follows the load
out and back in, an alarm (AWS::CloudWatch::Alarm on the ALB's RequestCount) drives a step
policy, a scheduled action changes the desired capacity on the wall clock's minute; and a
template with every kind of bad Auto Scaling input fails validation, all errors in one run.

TimeScale 30 for the policies: a CloudWatch minute is 2 lab seconds, so the target-tracking
alarms (3 x 1 min high, 15 x 1 min low) fire after 6 s and 30 s.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from testbed import naming
from testbed.experiments._nlb import node_addresses
from testbed.lab.api import Lab, random_name
from testbed.traffic import run_load
from tests.asg_data import LB, activities, group, instances, variant, wait_capacity

pytestmark = pytest.mark.integration
READY_S = 60.0


def url(lab: Lab) -> str:
    return f"http://{min(node_addresses(lab, LB).values())}/"


@contextmanager
def load(lab: Lab, rate: float, seconds: float) -> Iterator[dict[str, Any]]:
    """A bounded open-loop load through the ALB while the block runs (and until its
    `seconds` are over); its rows in out["df"] afterwards."""
    out: dict[str, Any] = {}

    def send() -> None:
        try:
            out["df"] = run_load(
                lab,
                "Client1",
                url(lab),
                requests=int(rate * seconds) + 1,
                rate=rate,
                duration=seconds,
                concurrency=max(20, int(rate)),
                timeout=3.0,
            )
        except Exception as exc:  # raised in the test's thread below
            out["error"] = exc

    worker = threading.Thread(target=send, name="load")
    worker.start()
    try:
        yield out
    finally:
        worker.join()
    if "error" in out:
        raise out["error"]


@contextmanager
def load_while(lab: Lab, rate: float, seconds: float, chunk: float = 8.0) -> Iterator[None]:
    """An open-loop load through the ALB while the block runs, at most `seconds`: runs of
    `chunk` seconds one after the other, the last one ending at most `chunk` seconds after
    the block. What the block waits for (a scaling) ends the load, not a fixed duration."""
    stop = threading.Event()
    errors: list[Exception] = []

    def send() -> None:
        left = seconds
        while left > 0 and not stop.is_set():
            part = min(chunk, left)
            try:
                run_load(
                    lab,
                    "Client1",
                    url(lab),
                    requests=int(rate * part) + 1,
                    rate=rate,
                    duration=part,
                    concurrency=max(20, int(rate)),
                    timeout=3.0,
                )
            except Exception as exc:  # raised in the test's thread below
                errors.append(exc)
                return
            left -= part

    worker = threading.Thread(target=send, name="load")
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join()
    if errors:
        raise errors[0]


def in_service(lab: Lab) -> int:
    return len(instances(lab, "InService"))


def test_target_tracking_scales_out_under_load_and_in_after(tmp_path):
    # 100 requests per target per (2 s) minute: 50 requests/s per target.
    template = variant(tmp_path, "tt.yaml", time_scale=30)
    with Lab.up(template, name=random_name("tt"), params={"TargetRequests": "100"}) as lab:
        wait_capacity(lab, 2, READY_S)
        with load_while(lab, rate=200, seconds=40):
            # 100 requests/s per target, twice the target: about 4 instances.
            peak = lab.wait_for(
                lambda: (
                    group(lab)["DesiredCapacity"] > 2 and in_service(lab) > 2 and in_service(lab)
                ),
                40,
                "target tracking to scale out",
                interval=0.5,
                last=lambda: (group(lab)["DesiredCapacity"], in_service(lab)),
            )
        out = [a for a in activities(lab) if "TargetTracking" in a["Cause"]]
        assert out, activities(lab)
        assert "ALARM" in out[0]["Cause"]
        # A trickle (far below the target) for the 15 low datapoints: it scales back in.
        with load_while(lab, rate=10, seconds=60):
            lab.wait_for(
                lambda: group(lab)["DesiredCapacity"] < peak and in_service(lab) < peak,
                60,
                "target tracking to scale in",
                interval=0.5,
                last=lambda: (group(lab)["DesiredCapacity"], in_service(lab)),
            )
        alarms = {a["AlarmName"]: a for a in alarm_list(lab)}
        assert any(name.startswith("TargetTracking-") for name in alarms), alarms


STEP = """\
  HighRequests:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmName: high-requests
      Namespace: AWS/ApplicationELB
      MetricName: RequestCount
      Dimensions:
        - {Name: LoadBalancer, Value: !GetAtt WebALB.LoadBalancerFullName}
        - {Name: TargetGroup, Value: !GetAtt WebTargets.TargetGroupFullName}
      Statistic: Sum
      Period: 60
      EvaluationPeriods: 2
      DatapointsToAlarm: 2
      Threshold: 200
      ComparisonOperator: GreaterThanThreshold
      TreatMissingData: notBreaching
      AlarmActions: [!Ref StepOut]
  StepOut:
    Type: AWS::AutoScaling::ScalingPolicy
    Properties:
      AutoScalingGroupName: !Ref WebGroup
      PolicyType: StepScaling
      AdjustmentType: ChangeInCapacity
      MetricAggregationType: Average
      EstimatedInstanceWarmup: 60
      StepAdjustments:
        - {MetricIntervalLowerBound: 0, ScalingAdjustment: 2}
"""


def alarm_list(lab: Lab) -> list[dict[str, Any]]:
    return lab.alarms()


def test_an_alarm_drives_a_step_policy(tmp_path):
    template = variant(tmp_path, "step.yaml", time_scale=30, policy=False, resources=STEP)
    with Lab.up(template, name=random_name("stp")) as lab:
        wait_capacity(lab, 2, READY_S)
        state = {a["AlarmName"]: a["StateValue"] for a in alarm_list(lab)}
        assert state["high-requests"] in ("OK", "INSUFFICIENT_DATA")
        # 150 requests/s: 300 per (2 s) minute, above 200 for two periods.
        with load(lab, rate=150, seconds=30):
            lab.wait_for(
                lambda: any(
                    a["AlarmName"] == "high-requests" and a["StateValue"] == "ALARM"
                    for a in alarm_list(lab)
                ),
                20,
                "high-requests in ALARM",
                interval=0.5,
                last=lambda: alarm_list(lab),
            )
            lab.wait_for(
                lambda: group(lab)["DesiredCapacity"] >= 4 and in_service(lab) >= 4,
                READY_S,
                "the step policy to add 2 instances",
                interval=0.5,
                last=lambda: (group(lab)["DesiredCapacity"], in_service(lab)),
            )
        causes = [a["Cause"] for a in activities(lab)]
        assert any("high-requests" in c and "StepOut" in c for c in causes), causes


SCHEDULE = """\
  EveryMinute:
    Type: AWS::AutoScaling::ScheduledAction
    Properties:
      AutoScalingGroupName: !Ref WebGroup
      Recurrence: "* * * * *"
      DesiredCapacity: 3
"""


def test_a_scheduled_action_sets_the_desired_capacity(tmp_path):
    # Cron runs on the wall clock (UTC), whatever the time scale: the next minute boundary.
    template = variant(tmp_path, "sched.yaml", policy=False, resources=SCHEDULE)
    with Lab.up(template, name=random_name("sch")) as lab:
        wait_capacity(lab, 2, READY_S)
        wait_capacity(lab, 3, 60 + READY_S)
        assert group(lab)["DesiredCapacity"] == 3
        causes = [a["Cause"] for a in activities(lab)]
        assert any("EveryMinute" in c or "scheduled" in c.lower() for c in causes), causes


BAD = """\
Resources:
  VPC:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.0.0.0/16}
  OtherVPC:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.1.0.0/16}
  SubnetA:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref VPC, CidrBlock: 10.0.0.0/24, AvailabilityZone: us-east-1a}
  OtherSubnet:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref OtherVPC, CidrBlock: 10.1.0.0/24, AvailabilityZone: us-east-1b}
  OtherTargets:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties: {Protocol: HTTP, Port: 80, VpcId: !Ref OtherVPC}
  Web:
    Type: AWS::EC2::LaunchTemplate
    Metadata: {Lab: {Role: http-backend}}
    Properties:
      LaunchTemplateData: {ImageId: ami-0123456789abcdef0, InstanceType: t3.micro}
  MinAboveMax:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      MinSize: 5
      MaxSize: 2
      VPCZoneIdentifier: [!Ref SubnetA]
      LaunchTemplate: {LaunchTemplateId: !Ref Web, Version: "1"}
  DesiredOutside:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      MinSize: 1
      MaxSize: 3
      DesiredCapacity: 9
      VPCZoneIdentifier: [!Ref SubnetA]
      LaunchTemplate: {LaunchTemplateId: !Ref Web, Version: "1"}
  TwoVpcs:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      MinSize: 1
      MaxSize: 3
      VPCZoneIdentifier: [!Ref SubnetA, !Ref OtherSubnet]
      LaunchTemplate: {LaunchTemplateId: !Ref Web, Version: "1"}
  ForeignTargets:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      MinSize: 1
      MaxSize: 3
      VPCZoneIdentifier: [!Ref SubnetA]
      TargetGroupARNs: [!Ref OtherTargets]
      LaunchTemplate: {LaunchTemplateId: !Ref Web, Version: "1"}
  Fine:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      MinSize: 1
      MaxSize: 3
      VPCZoneIdentifier: [!Ref SubnetA]
      LaunchTemplate: {LaunchTemplateId: !Ref Web, Version: "1"}
  QueueDepth:
    Type: AWS::AutoScaling::ScalingPolicy
    Properties:
      AutoScalingGroupName: !Ref Fine
      PolicyType: TargetTrackingScaling
      TargetTrackingConfiguration:
        TargetValue: 10
        CustomizedMetricSpecification:
          Namespace: AWS/SQS
          MetricName: ApproximateNumberOfMessagesVisible
          Dimensions: [{Name: QueueName, Value: jobs}]
          Statistic: Average
"""
BAD_IDS = ("MinAboveMax", "DesiredOutside", "TwoVpcs", "ForeignTargets", "QueueDepth")


@pytest.mark.parametrize("command", ["validate", "up"])
def test_bad_auto_scaling_input_lists_every_error_with_its_line(tmp_path, command):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    argv = [sys.executable, "-m", "testbed.cli", command, str(path)]
    name = random_name("bad")
    if command == "up":
        argv += ["--name", name]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = BAD.splitlines()
    for lid in BAD_IDS:
        found = re.search(rf"{re.escape(str(path))}:(\d+): {lid}\b", proc.stderr)
        assert found, f"{lid} not reported with file:line in:\n{proc.stderr}"
        # The line is the resource's own (its logical id or one of its properties).
        line = int(found.group(1))
        start = lines.index(f"  {lid}:") + 1
        assert start <= line < start + 16, (lid, line)
    assert not naming.lab_dir(name).exists()
