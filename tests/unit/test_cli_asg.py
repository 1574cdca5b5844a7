"""`testbed asg | scale | alarms`: parsing and rendering, without a lab."""

from __future__ import annotations

import pytest

from testbed.cli import build_parser, main
from testbed.cli.asg import activities_text, alarms_text, groups_text, launch_text

GROUP = {
    "AutoScalingGroupName": "web-WebGroup-1A2B",
    "LogicalId": "WebGroup",
    "MinSize": 1,
    "DesiredCapacity": 2,
    "MaxSize": 4,
    "TimeScale": 10.0,
    "Instances": [
        {
            "InstanceId": "i-0123456789abcdef0",
            "Host": "WebGroup-1",
            "AvailabilityZone": "us-east-1a",
            "LifecycleState": "InService",
            "HealthStatus": "Healthy",
            "LaunchTemplate": {"LaunchTemplateName": "WebLaunchTemplate", "Version": "1"},
        },
        {
            "InstanceId": "i-0fedcba9876543210",
            "Host": "WebGroup-2",
            "AvailabilityZone": "us-east-1b",
            "LifecycleState": "Pending",
            "HealthStatus": "Healthy",
            "LaunchConfigurationName": "OldConfig",
        },
    ],
}


def test_groups_text_shows_capacity_then_instances():
    text = groups_text([GROUP])
    first, header, *rows = text.splitlines()
    assert first == (
        "WebGroup (web-WebGroup-1A2B): min 1, desired 2, max 4; 1 InService; time scale 10"
    )
    assert header.split() == ["INSTANCE", "HOST", "AZ", "LIFECYCLE", "HEALTH", "LAUNCHED", "FROM"]
    assert rows[0].split() == [
        "i-0123456789abcdef0",
        "WebGroup-1",
        "us-east-1a",
        "InService",
        "Healthy",
        "WebLaunchTemplate",
        "v1",
    ]
    assert "OldConfig" in rows[1]
    assert groups_text([]) == "no Auto Scaling groups"


def test_launch_text():
    assert launch_text({"LaunchTemplate": {"LaunchTemplateName": "Lt", "Version": "3"}}) == "Lt v3"
    assert launch_text({}) == "-"


def test_activities_and_alarms_text():
    acts = [
        {
            "StartTime": "2026-12-06T10:00:00.000Z",
            "EndTime": "2026-12-06T10:00:05.000Z",
            "StatusCode": "Successful",
            "Description": "Launching a new EC2 instance: i-1",
            "Cause": "At 2026-12-06T10:00:00Z a user request ...",
        }
    ]
    text = activities_text(acts)
    assert "Successful" in text
    assert "cause: At 2026-12-06T10:00:00Z" in text
    assert activities_text([]) == "no activities"
    alarm = {
        "AlarmName": "High",
        "StateValue": "ALARM",
        "StateReason": "Threshold Crossed: 3 datapoints ...",
        "Namespace": "AWS/EC2",
        "MetricName": "CPUUtilization",
        "ComparisonOperator": "GreaterThanThreshold",
        "Threshold": 50.0,
        "RecentDatapoints": [{"Value": 61.5}, {"Value": None}],
    }
    text = alarms_text([alarm])
    assert "> 50" in text
    assert "61.5 -" in text
    assert "High: Threshold Crossed" in text
    assert alarms_text([]) == "no alarms"


def test_parser_takes_the_documented_forms():
    p = build_parser()
    a = p.parse_args(["asg", "web", "WebGroup", "activities", "--limit", "5", "--json"])
    assert (a.name, a.group, a.action, a.limit, a.json) == (
        "web",
        "WebGroup",
        "activities",
        5,
        True,
    )
    a = p.parse_args(["asg", "web", "G", "complete-lifecycle", "--hook", "H", "--instance", "G-1"])
    assert (a.action, a.hook, a.instance, a.result) == (
        "complete-lifecycle",
        "H",
        "G-1",
        "CONTINUE",
    )
    a = p.parse_args(["scale", "web", "G", "--desired", "4", "--max", "8"])
    assert (a.desired, a.min, a.max, a.honor_cooldown) == (4, None, 8, False)
    a = p.parse_args(["alarms", "web", "--watch", "0.5"])
    assert a.watch == 0.5
    assert p.parse_args(["alarms", "web", "--watch"]).watch == 2.0
    assert p.parse_args(["asg", "web", "--watch"]).watch == 2.0


def test_scale_without_a_change_is_bad_input(capsys):
    assert main(["scale", "nolab", "G"]) == 2
    assert "nothing to change" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["asg", "nolab1"], ["alarms", "nolab1"]])
def test_unknown_lab_exits_2(argv, capsys):
    assert main(argv) == 2
    assert "nolab1" in capsys.readouterr().err
