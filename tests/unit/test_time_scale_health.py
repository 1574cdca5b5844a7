"""Metadata.Lab.TimeScale on load balancers: health-check intervals and deregistration delays
run faster, but a check's timeout keeps a floor (an answer takes what it takes)."""

from __future__ import annotations

from testbed.model import load_model_text
from testbed.plan.balancers import TIMEOUT_FLOOR_S, build_lb_plans, scaled_timeout

TEMPLATE = """
Metadata: {Lab: {TimeScale: %s}}
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  SubA: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24,
         AvailabilityZone: us-east-1a}}
  SubB: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.2.0/24,
         AvailabilityZone: us-east-1b}}
  Lb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties: {Type: network, Scheme: internal, Subnets: [!Ref SubA, !Ref SubB]}
  Tg:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties: {VpcId: !Ref Vpc, Port: 80, Protocol: TCP, HealthCheckIntervalSeconds: 30,
                 HealthCheckTimeoutSeconds: 10,
                 TargetGroupAttributes: [{Key: deregistration_delay.timeout_seconds,
                                          Value: "300"}]}
  Listener:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties: {LoadBalancerArn: !Ref Lb, Port: 80, Protocol: TCP,
                 DefaultActions: [{Type: forward, TargetGroupArn: !Ref Tg}]}
"""


def tg_plan(scale: str):
    model = load_model_text(TEMPLATE % scale, filename="scale.yaml")
    (lb,) = build_lb_plans(model, zone_base=0)
    return lb.target_groups[0]


def test_aws_time_is_kept_without_a_scale():
    tg = tg_plan("1")
    assert (tg.health.interval_s, tg.health.timeout_s) == (30, 10)
    assert tg.deregistration_delay_s == 300


def test_a_scale_divides_intervals_and_delays_but_not_timeouts_below_the_floor():
    tg = tg_plan("10")
    assert tg.health.interval_s == 3
    assert tg.health.timeout_s == TIMEOUT_FLOOR_S  # 10 s / 10 = 1 s would be too short
    assert tg.deregistration_delay_s == 30


def test_scaled_timeout():
    assert scaled_timeout(10, 2) == 5
    assert scaled_timeout(5, 10) == TIMEOUT_FLOOR_S
    assert scaled_timeout(1, 10) == 1  # never above the template's own
