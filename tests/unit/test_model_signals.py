"""CreationPolicy, wait conditions and AWS::CloudFormation::Init metadata in the model."""

from __future__ import annotations

import pytest

from testbed.errors import BadInput, TemplateErrors
from testbed.model.signals import format_duration, parse_duration, read_wait_condition
from testbed.model.state import BuildState
from testbed.model.types import IgnoredProperty, ResourceSignalPolicy
from testbed.template.nodes import LDict
from tests.unit.conftest import line_with
from tests.unit.test_model_resources import with_resources

WEB = """\
    Web:
      Type: AWS::EC2::Instance
      {policy}
      Properties: {{SubnetId: !Ref Subnet}}
"""


def web(policy: str) -> str:
    return with_resources(WEB.format(policy=policy))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("PT5M", 300), ("PT1H30M", 5400), ("PT45S", 45), ("PT12H", 43200), ("PT1H2M3S", 3723)],
)
def test_iso_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["PT", "15M", "P1D", "PT1.5M", "pt5m", "PT5M ", "PTM"])
def test_bad_iso_durations(text):
    assert parse_duration(text) is None


def test_durations_for_people():
    assert format_duration(300) == "5 min"
    assert format_duration(5400) == "1 h 30 min"
    assert format_duration(45) == "45 s"
    assert format_duration(0) == "0 s"


def test_creation_policy_defaults_to_one_signal_in_five_minutes(load):
    model = load(web("CreationPolicy: {ResourceSignal: {}}"))
    assert model.signal_policies["Web"] == ResourceSignalPolicy(1, 300)
    assert IgnoredProperty("Web", "CreationPolicy") not in model.ignored


def test_creation_policy_values_are_resolved(load):
    text = "Parameters:\n  Wanted: {Type: Number, Default: 3}\n" + web(
        "CreationPolicy: {ResourceSignal: {Count: !Ref Wanted, Timeout: PT1H30M}}"
    )
    assert load(text).signal_policies["Web"] == ResourceSignalPolicy(3, 5400)


def test_creation_policy_on_another_type_is_ignored_as_aws_does(load):
    text = with_resources("""\
        Other:
          Type: AWS::EC2::SecurityGroup
          CreationPolicy: {ResourceSignal: {Count: 1}}
          Properties: {GroupDescription: x, VpcId: !Ref VPC}
    """)
    model = load(text)
    assert IgnoredProperty("Other", "CreationPolicy") in model.ignored
    assert "Other" not in model.signal_policies


def test_auto_scaling_part_is_ignored_on_an_instance(load):
    text = web(
        "CreationPolicy: {ResourceSignal: {Count: 2}, "
        "AutoScalingCreationPolicy: {MinSuccessfulInstancesPercent: 50}}"
    )
    model = load(text)
    assert model.signal_policies["Web"] == ResourceSignalPolicy(2, 300)
    assert IgnoredProperty("Web", "CreationPolicy.AutoScalingCreationPolicy") in model.ignored


def test_every_creation_policy_problem_is_reported_at_once(load):
    text = web("CreationPolicy: {ResourceSignal: {Count: 0, Timeout: 15M, Timout: PT1M}}")
    with pytest.raises(TemplateErrors) as info:
        load(text)
    shown = str(info.value)
    assert "Count must be an integer of at least 1, not 0" in shown
    assert "Timeout must be an ISO 8601 duration" in shown
    assert "unknown key CreationPolicy.ResourceSignal.Timout" in shown
    assert "did you mean Timeout?" in shown
    assert f"t.yaml:{line_with(text, 'CreationPolicy')}: Web: " in shown


def test_timeout_longer_than_twelve_hours_is_refused(fails):
    fails(
        web("CreationPolicy: {ResourceSignal: {Timeout: PT12H1S}}"),
        "longer than 12 hours",
        logical_id="Web",
    )


def test_creation_policy_must_be_a_mapping(fails):
    fails(web("CreationPolicy: 3"), "CreationPolicy must be a mapping", logical_id="Web")


INIT = """\
    Web:
      Type: AWS::EC2::Instance
      Metadata:
        AWS::CloudFormation::Init:
          configSets:
            default: [setup, {ConfigSet: more}]
            more: [run]
          setup:
            packages: {yum: {httpd: []}}
            files:
              /var/www/html/index.html:
                content: !Sub "hello from ${AWS::StackName}"
                mode: "000644"
              /etc/app.json:
                content: {port: 80}
          run:
            commands:
              01_touch: {command: touch /tmp/x, ignoreErrors: true}
      Properties: {SubnetId: !Ref Subnet}
"""


def test_cfn_init_metadata_is_kept_resolved_and_plain(load):
    model = load(with_resources(INIT), stack_name="lab7")
    init = model.cfn_init["Web"]
    files = init["setup"]["files"]
    assert files["/var/www/html/index.html"]["content"] == "hello from lab7"
    assert files["/etc/app.json"]["content"] == {"port": 80}
    assert init["configSets"]["default"] == ["setup", {"ConfigSet": "more"}]
    assert type(init) is dict
    assert type(init["configSets"]["default"]) is list


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("files:", "file:"), "unknown cfn-init section"),
        (("command: touch /tmp/x", "cmd: touch /tmp/x"), "unknown key"),
        (("more: [run]", "more: [runn]"), "names config 'runn'"),
        (('mode: "000644"', "mode: rw-r--r--"), "mode must be octal digits"),
        (("{ConfigSet: more}", "{ConfigSet: other}"), "unknown configSet 'other'"),
    ],
)
def test_cfn_init_shape_problems_are_template_errors(fails, change, message):
    text = with_resources(INIT.replace(*change))
    fails(text, message, logical_id="Web")


def test_cfn_init_problems_come_together(load):
    text = with_resources(
        INIT.replace("files:", "file:").replace("command: touch /tmp/x", "cmd: touch")
    )
    with pytest.raises(TemplateErrors) as info:
        load(text)
    assert len(info.value.errors) == 3  # the unknown section, the unknown key, no command


def test_wait_condition_reads_handle_count_and_timeout():
    state = BuildState("t.yaml", "us-east-1", "lab")
    props = LDict({"Handle": "https://lab/handle/H", "Count": "2", "Timeout": "600"}, line=3)
    read_wait_condition(props, "Wait", state)
    assert state.signal_policies["Wait"] == ResourceSignalPolicy(
        2, 600, handle="https://lab/handle/H"
    )


def test_wait_condition_with_a_creation_policy_keeps_it():
    state = BuildState("t.yaml", "us-east-1", "lab")
    state.signal_policies["Wait"] = ResourceSignalPolicy(1, 300)
    read_wait_condition(LDict({}, line=3), "Wait", state)
    assert state.signal_policies["Wait"] == ResourceSignalPolicy(1, 300)


def test_wait_condition_problems():
    state = BuildState("t.yaml", "us-east-1", "lab")
    with pytest.raises(TemplateErrors) as info:
        read_wait_condition(LDict({"Count": 0, "Timeout": "43201"}, line=3), "Wait", state)
    shown = str(info.value)
    assert "needs Handle" in shown
    assert "Count must be an integer of at least 1" in shown
    assert "longer than 43200 seconds" in shown
    with pytest.raises(BadInput, match="needs Timeout"):
        read_wait_condition(LDict({"Handle": "https://h"}, line=3), "Wait", state)
    assert "Wait" not in state.signal_policies


def test_an_auto_scaling_groups_creation_policy_is_waited_for():
    # Its instances signal (cfn-signal --resource Group); MinSuccessfulInstancesPercent says
    # how many of Count must succeed.
    from testbed.model import load_model_text

    model = load_model_text(
        """
Resources:
  Config:
    Type: AWS::AutoScaling::LaunchConfiguration
    Properties: {ImageId: ami-12345678, InstanceType: t3.micro}
  Group:
    Type: AWS::AutoScaling::AutoScalingGroup
    CreationPolicy:
      ResourceSignal: {Count: 2, Timeout: PT15M}
      AutoScalingCreationPolicy: {MinSuccessfulInstancesPercent: 50}
    Properties:
      MinSize: "2"
      MaxSize: "2"
      AvailabilityZones: [us-east-1a]
      LaunchConfigurationName: !Ref Config
""",
        filename="t.yaml",
    )
    assert model.signal_policies["Group"] == ResourceSignalPolicy(2, 900, 50)
