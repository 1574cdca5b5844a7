"""Auto Scaling with a Classic Load Balancer: AWS/ELB datapoints from the sampler (not the
ALB's or NLB's namespaces), its CloudWatch names from the model, and alarms on AWS/ELB
metrics by LoadBalancerName."""

from __future__ import annotations

import pytest

from testbed.autoscaling.metricstore import COUNT_METRICS
from testbed.autoscaling.sampling import CLB, Datapoint, LbRef, Readers, Sampler
from testbed.autoscaling.wiring import lb_refs
from testbed.cli.asg import groups_text
from testbed.model import load_model
from testbed.paths import TEMPLATES
from testbed.plan.network import build_plan
from tests.unit.conftest import line_with

LISTENERS = {"MyCLB-80": "HTTP", "MyCLB-9000": "TCP"}


def node_rows(http_requests: int, tcp_connections: int) -> list[dict[str, str]]:
    """One CLB node's `show stat`: an HTTP listener's backend and a TCP listener's server."""
    return [
        {"pxname": "MyCLB-80", "svname": "FRONTEND", "bin": "0", "bout": "0"},
        {
            "pxname": "ls_MyCLB-80",
            "svname": "BACKEND",
            "req_tot": str(http_requests),
            "rtime": "20",
        },
        {"pxname": "ls_MyCLB-9000", "svname": "WebA1:9000", "stot": str(tcp_connections)},
    ]


def sampler(nodes: list[list[dict[str, str]]], states: dict) -> Sampler:
    readers = Readers(
        cpu_seconds=lambda host: None,
        ports=dict,
        alb_rows=lambda lb: nodes if lb == "MyCLB" else [],
        target_states=lambda: states,
    )
    ref = LbRef("MyCLB", "classic", "classic-MyCLB-1A2B", {"MyCLB": "x"}, LISTENERS)
    return Sampler(readers, [ref])


def by_metric(points: list[Datapoint]) -> dict[str, float]:
    assert all(p.namespace == CLB for p in points)
    assert all(dict(p.dimensions) == {"LoadBalancerName": "classic-MyCLB-1A2B"} for p in points)
    return {p.metric: p.value for p in points}


def test_classic_load_balancer_datapoints_are_aws_elb():
    nodes = [node_rows(10, 3), node_rows(5, 0)]
    states = {("MyCLB", "MyCLB"): ["healthy", "draining", "unhealthy", "initial"]}
    s = sampler(nodes, states)
    first = by_metric(s.sample(100.0, []))
    # Draining is still InService; registering (initial) is OutOfService.
    assert first == {"HealthyHostCount": 2.0, "UnHealthyHostCount": 2.0}
    nodes[0][1]["req_tot"] = "30"  # 20 more HTTP requests
    nodes[1][2]["stot"] = "4"  # 4 more TCP connections
    second = by_metric(s.sample(101.0, []))
    assert second["RequestCount"] == 24
    assert "Latency" in second
    # Idle: no request datapoint (AWS reports request metrics only while requests flow).
    assert set(by_metric(s.sample(102.0, []))) == {"HealthyHostCount", "UnHealthyHostCount"}
    assert ("AWS/ELB", "RequestCount") in COUNT_METRICS


def test_no_node_answering_leaves_only_the_host_counts():
    s = sampler([], {("MyCLB", "MyCLB"): ["healthy"]})
    assert by_metric(s.sample(1.0, [])) == {"HealthyHostCount": 1.0, "UnHealthyHostCount": 0.0}


def test_lb_refs_of_a_classic_load_balancer():
    model = load_model(str(TEMPLATES / "classic.yaml"), {}, stack_name="classic")
    ref = lb_refs(model, build_plan(model, "classic", zone_base=100))[0]
    assert (ref.name, ref.type) == ("MyCLB", "classic")
    name = model.extras["elbv2"]["load_balancers"]["MyCLB"].name
    assert ref.dimension == name  # AWS's LoadBalancerName dimension
    assert dict(ref.listeners) == {"MyCLB-80": "HTTP", "MyCLB-81": "TCP", "MyCLB-9000": "TCP"}


STACK = """\
Resources:
  Group:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      AvailabilityZones: !GetAZs
      LaunchConfigurationName: !Ref LaunchConfig
      MinSize: "1"
      MaxSize: "3"
      LoadBalancerNames: [!Ref Elb]
  LaunchConfig:
    Type: AWS::AutoScaling::LaunchConfiguration
    Properties:
      ImageId: ami-12345678
      InstanceType: t2.small
  Elb:
    Type: AWS::ElasticLoadBalancing::LoadBalancer
    Properties:
      AvailabilityZones: !GetAZs
      Listeners: [{LoadBalancerPort: "80", InstancePort: "80", Protocol: HTTP}]
  ScaleUp:
    Type: AWS::AutoScaling::ScalingPolicy
    Properties:
      AdjustmentType: ChangeInCapacity
      AutoScalingGroupName: !Ref Group
      ScalingAdjustment: 1
  LatencyHigh:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Namespace: AWS/ELB
      MetricName: Latency
      Statistic: Average
      Period: 60
      EvaluationPeriods: 1
      Threshold: 0.5
      ComparisonOperator: GreaterThanThreshold
      AlarmActions: [!Ref ScaleUp]
      Dimensions:
        - Name: LoadBalancerName
          Value: VALUE
"""


def test_an_alarm_on_aws_elb_by_load_balancer_name(load):
    model = load(STACK.replace("VALUE", "!Ref Elb"))
    metric = model.alarms["LatencyHigh"].metric
    name = model.extras["elbv2"]["load_balancers"]["Elb"].name
    assert (metric.namespace, metric.metric_name) == ("AWS/ELB", "Latency")
    assert dict(metric.dimensions) == {"LoadBalancerName": name}


def test_an_alarm_on_another_load_balancer_name_is_an_error(fails):
    text = STACK.replace("VALUE", "some-other-elb")
    fails(
        text,
        "LoadBalancerName 'some-other-elb' is no classic load balancer of this stack",
        logical_id="LatencyHigh",
        line=line_with(text, "MetricName: Latency"),
    )


@pytest.mark.parametrize("metric", ["RequestCount", "HealthyHostCount", "UnHealthyHostCount"])
def test_the_lab_has_these_aws_elb_metrics(load, metric):
    model = load(
        STACK.replace("VALUE", "!Ref Elb").replace("MetricName: Latency", f"MetricName: {metric}")
    )
    assert model.alarms["LatencyHigh"].metric.metric_name == metric


def test_asg_text_names_the_groups_load_balancers():
    group = {
        "AutoScalingGroupName": "web-Group-1A2B",
        "LogicalId": "Group",
        "MinSize": 1,
        "DesiredCapacity": 1,
        "MaxSize": 3,
        "LoadBalancerNames": ["MyCLB"],
        "TargetGroupARNs": [],
        "Instances": [],
    }
    head = groups_text([group]).splitlines()[0]
    assert head.endswith("0 InService; classic load balancers MyCLB")
