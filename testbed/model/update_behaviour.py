"""What a property change does to a resource on AWS: the RequiresRecreation of a change set.

    requires_recreation("AWS::EC2::Instance", "SubnetId")       # "Always"
    requires_recreation("AWS::EC2::Instance", "UserData")       # "Conditionally"
    requires_recreation("AWS::ElasticLoadBalancingV2::TargetGroup", "HealthCheckPath")  # "Never"

The source is AWS's resource provider schemas (testbed.model.schemas, as cfn-lint ships them):
`createOnlyProperties` -> Always, `conditionalCreateOnlyProperties` -> Conditionally, any other
property -> Never. That is what describe-change-set itself reports. OVERRIDES holds the few
properties of the types the lab emulates where the schema and the CloudFormation template
reference ("Update requires: ..." per property) disagree; the reference wins there.

"Conditionally" means "see the property's documentation". `conditional_outcome` says what the
documentation's condition gives in the lab's case (VPC instances on EBS-backed AMIs, load
balancers that keep at least one zone), so that `testbed update` knows whether it replaces.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from testbed.model import schemas

ALWAYS = "Always"
CONDITIONALLY = "Conditionally"
NEVER = "Never"

# What the lab does for a Conditionally change (the documented outcome in the lab's case).
REPLACEMENT = "Replacement"
SOME_INTERRUPTIONS = "SomeInterruptions"
NO_INTERRUPTION = "NoInterruption"

DOCS = "https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/"

# (type, property) -> RequiresRecreation, where the template reference says otherwise than the
# schema. Each line names the page whose "Update requires" line it follows.
OVERRIDES: dict[tuple[str, str], str] = {
    # aws-resource-route53-recordset.html: Name "Update requires: Replacement"; the schema lists
    # only HostedZoneId/HostedZoneName as create-only (a record is keyed by its name and type).
    ("AWS::Route53::RecordSet", "Name"): ALWAYS,
    # aws-resource-ec2-eip.html: Domain and PublicIpv4Pool "Update requires: Replacement" (an
    # address cannot move between pools or domains); the schema leaves them updatable.
    ("AWS::EC2::EIP", "Domain"): ALWAYS,
    ("AWS::EC2::EIP", "PublicIpv4Pool"): ALWAYS,
}

# Types whose every property change replaces the resource.
# aws-resource-autoscaling-launchconfiguration.html: every property "Update requires:
# Replacement" (a launch configuration cannot be modified). Today's schema agrees property by
# property; the type-wide rule keeps it so for properties a later schema adds.
ALWAYS_REPLACED = frozenset({"AWS::AutoScaling::LaunchConfiguration"})


def requires_recreation(type_name: str, prop: str) -> str:
    """Always, Conditionally or Never, as describe-change-set says for a change of `prop`."""
    if type_name in ALWAYS_REPLACED:
        return ALWAYS
    found = OVERRIDES.get((type_name, prop))
    if found is not None:
        return found
    if prop in schemas.create_only(type_name):
        return ALWAYS
    if prop in _conditional(type_name):
        return CONDITIONALLY
    return NEVER


def _conditional(type_name: str) -> tuple[str, ...]:
    found = schemas.schema(type_name) or {}
    pointers = found.get("conditionalCreateOnlyProperties", ())
    names = [
        p[len("/properties/") :].split("/")[0]
        for p in pointers
        if isinstance(p, str) and p.startswith("/properties/")
    ]
    return tuple(dict.fromkeys(names))


Decide = Callable[[Any, Any, Mapping[str, Any]], str]


def _present_absent(old: Any, new: Any, resource: Mapping[str, Any]) -> str:
    # aws-resource-elasticloadbalancing-loadbalancer.html (AvailabilityZones, Subnets,
    # HealthCheck): "Replacement if you did not have one specified and you are adding one or
    # if you are removing all of them. Otherwise, update requires no interruption."
    if old in (None, [], {}) or new in (None, [], {}):
        return REPLACEMENT
    return NO_INTERRUPTION


def _asg_update_policy(old: Any, new: Any, resource: Mapping[str, Any]) -> str:
    # aws-resource-autoscaling-autoscalinggroup.html and aws-attribute-updatepolicy.html: a new
    # launch template/configuration or zone list replaces the group only under
    # AutoScalingReplacingUpdate WillReplace: true; otherwise the group is updated in place
    # (its instances by AutoScalingRollingUpdate, if any).
    policy = resource.get("UpdatePolicy")
    replacing = policy.get("AutoScalingReplacingUpdate") if isinstance(policy, Mapping) else None
    will = replacing.get("WillReplace") if isinstance(replacing, Mapping) else None
    return REPLACEMENT if str(will).lower() == "true" else NO_INTERRUPTION


def _some(old: Any, new: Any, resource: Mapping[str, Any]) -> str:
    return SOME_INTERRUPTIONS


def _none(old: Any, new: Any, resource: Mapping[str, Any]) -> str:
    return NO_INTERRUPTION


# (type, property) -> the documented outcome of a Conditionally change in the lab's case.
CONDITIONAL_OUTCOMES: dict[tuple[str, str], Decide] = {
    # aws-resource-ec2-instance.html: InstanceType, UserData, EbsOptimized, KernelId, RamdiskId
    # "Update requires: Some interruptions" for EBS-backed instances (stop, change, start).
    ("AWS::EC2::Instance", "InstanceType"): _some,
    ("AWS::EC2::Instance", "UserData"): _some,
    ("AWS::EC2::Instance", "EbsOptimized"): _some,
    ("AWS::EC2::Instance", "KernelId"): _some,
    ("AWS::EC2::Instance", "RamdiskId"): _some,
    # aws-resource-ec2-instance.html: SecurityGroupIds "Update requires: No interruption" for
    # an instance in a VPC (the lab's instances all are).
    ("AWS::EC2::Instance", "SecurityGroupIds"): _none,
    ("AWS::ElasticLoadBalancing::LoadBalancer", "AvailabilityZones"): _present_absent,
    ("AWS::ElasticLoadBalancing::LoadBalancer", "Subnets"): _present_absent,
    ("AWS::ElasticLoadBalancing::LoadBalancer", "HealthCheck"): _present_absent,
    ("AWS::AutoScaling::AutoScalingGroup", "LaunchConfigurationName"): _asg_update_policy,
    ("AWS::AutoScaling::AutoScalingGroup", "LaunchTemplate"): _asg_update_policy,
    ("AWS::AutoScaling::AutoScalingGroup", "MixedInstancesPolicy"): _asg_update_policy,
    ("AWS::AutoScaling::AutoScalingGroup", "VPCZoneIdentifier"): _asg_update_policy,
}


def conditional_outcome(
    type_name: str, prop: str, old: Any, new: Any, resource: Mapping[str, Any]
) -> str:
    """What a Conditionally change does in the lab: Replacement, SomeInterruptions or
    NoInterruption. `resource` is the new declaration (its UpdatePolicy may decide).

    Unlisted conditional properties are taken as replacing: the safe reading of "may be
    replaced" when the documentation's condition is not modelled."""
    decide = CONDITIONAL_OUTCOMES.get((type_name, prop))
    return decide(old, new, resource) if decide is not None else REPLACEMENT
