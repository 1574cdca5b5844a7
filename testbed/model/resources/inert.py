"""Inert resources: AWS types with no packets of their own (IAM, logs, queues, buckets, ...).

The catalog (testbed.model.catalog) says which types are inert; this module makes one generic
ResourceType for each, on first lookup, from AWS's schema of the type:
- properties: the schema's (unknown ones get a did-you-mean, required ones must be there);
  values are not checked deeply (`testbed validate --lint` runs cfn-lint for that);
- Ref and every GetAtt (the schema's readOnlyProperties) give AWS-shaped values: names like
  CloudFormation generates them ({stack}-{LogicalId}-{13 characters}) when the template gives
  none, ARNs with the stack's region and the lab's account id.
The built resource is an InertResource in state.inert.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from testbed.model import catalog, schemas
from testbed.model.metadata import plain
from testbed.model.resources.base import Prop, ResourceContext, ResourceType
from testbed.model.resources.registry import add_fallback
from testbed.model.state import BuildState
from testbed.model.types import InertResource, frozen_map
from testbed.template.intrinsics import ACCOUNT_ID

_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _digest(state: BuildState, logical_id: str, purpose: str) -> bytes:
    return hashlib.sha256(f"{state.stack_name}/{logical_id}/{purpose}".encode()).digest()


def token(state: BuildState, logical_id: str, purpose: str, length: int = 13) -> str:
    """Upper-case letters and digits standing in for AWS's random part, deterministic."""
    number = int.from_bytes(_digest(state, logical_id, purpose), "big")
    chars = []
    for _ in range(length):
        number, index = divmod(number, len(_ALNUM))
        chars.append(_ALNUM[index])
    return "".join(chars)


def hex_id(state: BuildState, logical_id: str, purpose: str, length: int = 17) -> str:
    """Lower-case hex digits, as in vpce-0123456789abcdef0."""
    return _digest(state, logical_id, purpose).hex()[:length]


def uuid_of(state: BuildState, logical_id: str, purpose: str = "uuid") -> str:
    """A UUID (KMS key ids, certificate ids, ...), deterministic."""
    return str(uuid.UUID(bytes=_digest(state, logical_id, purpose)[:16], version=4))


def generated_name(state: BuildState, logical_id: str, limit: int = 255) -> str:
    """The name CloudFormation gives a resource whose template names none:
    {stack}-{LogicalId}-{13 characters}, the first two parts shortened to fit `limit`."""
    suffix = token(state, logical_id, "name")
    room = max(limit - len(suffix) - 2, 2)
    stack, lid = state.stack_name, logical_id
    if len(stack) + len(lid) > room:
        stack = stack[: max(room // 2, 1)]
        lid = lid[: max(room - len(stack), 1)]
    return f"{stack}-{lid}-{suffix}"


# --- AWS's shapes for the common types ---------------------------------------------------------


@dataclass
class _Facts:
    """What a shape needs: the resource's name (given or generated), its properties."""

    state: BuildState
    logical_id: str
    name: str
    props: dict[str, Any]

    def arn(self, service: str, resource: str, *, regional: bool = True) -> str:
        region = self.state.region if regional else ""
        account = ACCOUNT_ID if service != "s3" else ""
        return f"arn:aws:{service}:{region}:{account}:{resource}"

    @property
    def region(self) -> str:
        return self.state.region

    def uuid(self) -> str:
        return uuid_of(self.state, self.logical_id)

    def hex(self, length: int = 17) -> str:
        return hex_id(self.state, self.logical_id, "id", length)


@dataclass(frozen=True)
class Shape:
    """How AWS shapes one type's values: the property that names it (generated when absent),
    Ref, and the attributes whose shape is documented (the others: see _generic_attribute)."""

    name_prop: str | None
    ref: Callable[[_Facts], str]
    attributes: dict[str, Callable[[_Facts], Any]]
    lower_case: bool = False  # S3 bucket names


def _iam(kind: str) -> Callable[[_Facts], str]:
    def arn(f: _Facts) -> str:
        path = f.props.get("Path", "/") if isinstance(f.props.get("Path"), str) else "/"
        return f.arn("iam", f"{kind}{path}{f.name}", regional=False)

    return arn


def _name(f: _Facts) -> str:
    return f.name


def _physical(f: _Facts) -> str:
    return generated_name(f.state, f.logical_id)


def _sqs_url(f: _Facts) -> str:
    return f"https://sqs.{f.region}.amazonaws.com/{ACCOUNT_ID}/{f.name}"


def _kms_arn(f: _Facts) -> str:
    return f.arn("kms", f"key/{f.uuid()}")


def _cert_arn(f: _Facts) -> str:
    return f.arn("acm", f"certificate/{f.uuid()}")


def _topic_arn(f: _Facts) -> str:
    return f.arn("sns", f.name)


def _secret_arn(f: _Facts) -> str:
    return f.arn("secretsmanager", f"secret:{f.name}-{token(f.state, f.logical_id, 'secret', 6)}")


def _uuid(f: _Facts) -> str:
    return f.uuid()


def _wait_handle_url(f: _Facts) -> str:
    """A presigned S3 URL as AWS gives for a wait condition handle; its path ends with the
    handle's logical id, which is how the lab's cfn-signal finds the handle."""
    stack_arn = (
        f"arn%3Aaws%3Acloudformation%3A{f.region}%3A{ACCOUNT_ID}%3Astack/"
        f"{f.state.stack_name}/{uuid_of(f.state, '', 'stack')}"
    )
    return (
        f"https://cloudformation-waitcondition-{f.region}.s3.amazonaws.com/"
        f"{stack_arn}/{f.logical_id}?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        f"&X-Amz-Expires=86399&X-Amz-Signature={f.hex(64)}"
    )


SHAPES: dict[str, Shape] = {
    "AWS::IAM::Role": Shape(
        "RoleName",
        _name,
        {"Arn": _iam("role"), "RoleId": lambda f: "AROA" + token(f.state, f.logical_id, "id", 17)},
    ),
    "AWS::IAM::InstanceProfile": Shape(
        "InstanceProfileName", _name, {"Arn": _iam("instance-profile")}
    ),
    "AWS::IAM::User": Shape("UserName", _name, {"Arn": _iam("user")}),
    "AWS::IAM::Group": Shape("GroupName", _name, {"Arn": _iam("group")}),
    "AWS::IAM::ManagedPolicy": Shape(
        "ManagedPolicyName", _iam("policy"), {"PolicyArn": _iam("policy")}
    ),
    "AWS::IAM::Policy": Shape(None, _physical, {"Id": _physical}),
    "AWS::IAM::AccessKey": Shape(
        None,
        lambda f: "AKIA" + token(f.state, f.logical_id, "key", 16),
        {"SecretAccessKey": lambda f: token(f.state, f.logical_id, "secret", 40)},
    ),
    "AWS::SNS::Topic": Shape("TopicName", _topic_arn, {"TopicArn": _topic_arn, "TopicName": _name}),
    "AWS::SNS::Subscription": Shape(
        None, lambda f: f.arn("sns", f"{generated_name(f.state, 'Topic')}:{f.uuid()}"), {}
    ),
    "AWS::SQS::Queue": Shape(
        "QueueName",
        _sqs_url,
        {"Arn": lambda f: f.arn("sqs", f.name), "QueueUrl": _sqs_url, "QueueName": _name},
    ),
    "AWS::S3::Bucket": Shape(
        "BucketName",
        _name,
        {
            "Arn": lambda f: f"arn:aws:s3:::{f.name}",
            "DomainName": lambda f: f"{f.name}.s3.amazonaws.com",
            "RegionalDomainName": lambda f: f"{f.name}.s3.{f.region}.amazonaws.com",
            "DualStackDomainName": lambda f: f"{f.name}.s3.dualstack.{f.region}.amazonaws.com",
            "WebsiteURL": lambda f: f"http://{f.name}.s3-website-{f.region}.amazonaws.com",
        },
        lower_case=True,
    ),
    "AWS::Logs::LogGroup": Shape(
        "LogGroupName", _name, {"Arn": lambda f: f.arn("logs", f"log-group:{f.name}:*")}
    ),
    "AWS::Logs::LogStream": Shape("LogStreamName", _name, {}),
    "AWS::KMS::Key": Shape(None, _uuid, {"Arn": _kms_arn, "KeyId": _uuid}),
    "AWS::KMS::Alias": Shape("AliasName", _name, {}),
    "AWS::CertificateManager::Certificate": Shape(None, _cert_arn, {"CertificateArn": _cert_arn}),
    "AWS::SSM::Parameter": Shape(
        "Name",
        _name,
        {"Arn": lambda f: f.arn("ssm", "parameter/" + f.name.lstrip("/"))},
    ),
    "AWS::SecretsManager::Secret": Shape("Name", _secret_arn, {"Id": _secret_arn}),
    "AWS::EC2::KeyPair": Shape(
        "KeyName",
        _name,
        {
            "KeyPairId": lambda f: "key-" + f.hex(),
            "KeyFingerprint": lambda f: ":".join(f.hex(40)[i : i + 2] for i in range(0, 40, 2)),
        },
    ),
    "AWS::Events::Rule": Shape("Name", _name, {"Arn": lambda f: f.arn("events", f"rule/{f.name}")}),
    "AWS::CloudWatch::Alarm": Shape(
        "AlarmName", _name, {"Arn": lambda f: f.arn("cloudwatch", f"alarm:{f.name}")}
    ),
    "AWS::CloudWatch::Dashboard": Shape("DashboardName", _name, {}),
    "AWS::Lambda::Function": Shape(
        "FunctionName", _name, {"Arn": lambda f: f.arn("lambda", f"function:{f.name}")}
    ),
    "AWS::Lambda::Permission": Shape(None, _physical, {}),
    "AWS::CloudFormation::WaitConditionHandle": Shape(None, _wait_handle_url, {}),
    "AWS::CloudFormation::WaitCondition": Shape(
        None,
        lambda f: f.arn("cloudformation", f"stack/{f.state.stack_name}/{f.logical_id}"),
        {"Data": lambda f: "{}"},
    ),
    "AWS::EC2::VPCEndpoint": Shape(
        None,
        lambda f: f.state.physical(
            "vpce-", f.logical_id
        ),  # as the emulated (GatewayLoadBalancer) endpoints
        {
            "Id": lambda f: f.state.physical("vpce-", f.logical_id),
            "NetworkInterfaceIds": lambda f: [],
        },
    ),
    "AWS::EC2::FlowLog": Shape(None, lambda f: "fl-" + f.hex(), {}),
    "AWS::EC2::LaunchTemplate": Shape(
        "LaunchTemplateName",
        lambda f: "lt-" + f.hex(),
        {
            "LaunchTemplateId": lambda f: "lt-" + f.hex(),
            "LatestVersionNumber": lambda f: "1",
            "DefaultVersionNumber": lambda f: "1",
        },
    ),
    "AWS::EC2::DHCPOptions": Shape(None, lambda f: "dopt-" + f.hex(), {}),
    "AWS::ECR::Repository": Shape(
        "RepositoryName",
        _name,
        {
            "Arn": lambda f: f.arn("ecr", f"repository/{f.name}"),
            "RepositoryUri": lambda f: f"{ACCOUNT_ID}.dkr.ecr.{f.region}.amazonaws.com/{f.name}",
        },
        lower_case=True,
    ),
}


def _generic_name_prop(type_name: str, props: dict[str, Any]) -> str | None:
    """The property that names a resource of a type without a Shape: <Kind>Name, or Name."""
    kind = type_name.rsplit("::", 1)[-1]
    for candidate in (f"{kind}Name", "Name"):
        if candidate in props:
            return candidate
    return None


def _generic_attribute(type_name: str, name: str, f: _Facts, ref: str) -> Any:
    """An attribute without a documented shape: a property's value (given, else the schema's
    default, else empty), an ARN for *Arn, the Ref value for *Id, the name for *Name, else a
    generated id."""
    if name in f.props:
        return plain(f.props[name])
    declared = schemas.properties(type_name, f.state.region)
    if name in declared:
        found = declared[name]
        return found.get("default", "") if isinstance(found, dict) else ""
    leaf = name.rsplit(".", 1)[-1]
    if leaf.endswith("Arn"):
        _, service, kind = type_name.split("::")
        return f.arn(service.lower(), f"{kind[:1].lower()}{kind[1:]}/{f.name}")
    if leaf.endswith("Id"):
        return ref
    if leaf.endswith("Name"):
        return f.name
    return generated_name(f.state, f.logical_id) + "-" + leaf


def _limit(type_name: str, prop: str | None, region: str) -> int:
    found = schemas.properties(type_name, region).get(prop or "", {})
    limit = found.get("maxLength") if isinstance(found, dict) else None
    return limit if isinstance(limit, int) and limit > 20 else 255


def record(
    ctx: ResourceContext, note: str, ref: str | None = None, kind: str = "inert"
) -> InertResource:
    """Build the InertResource of ctx's resource into ctx.state.inert (also used by gwlbe.py
    for Interface and Gateway endpoints, whose Ref is fixed there)."""
    state, lid, type_name = ctx.state, ctx.logical_id, ctx.type.name
    shape = SHAPES.get(type_name)
    name_prop = shape.name_prop if shape else _generic_name_prop(type_name, ctx.props)
    given = ctx.props.get(name_prop) if name_prop else None
    if isinstance(given, str) and given:
        name = given
    else:
        name = generated_name(state, lid, _limit(type_name, name_prop, state.region))
        if shape is not None and shape.lower_case:
            name = name.lower()
    facts = _Facts(state, lid, name, ctx.props)
    if ref is None:
        ref = shape.ref(facts) if shape else (name if name_prop else _physical(facts))
    attributes: dict[str, Any] = {}
    for attribute in schemas.getatt_names(type_name, state.region):
        make = shape.attributes.get(attribute) if shape else None
        attributes[attribute] = (
            make(facts) if make else _generic_attribute(type_name, attribute, facts, ref)
        )
    resource = InertResource(
        lid,
        type_name,
        ref,
        frozen_map(attributes),
        kind,
        note,
        source=ctx.source,
        properties=frozen_map(plain(ctx.props)),
    )
    state.inert[lid] = resource
    return resource


def _attribute(name: str) -> Callable[[BuildState, str], Any]:
    return lambda state, lid: state.inert[lid].attributes[name]


def make_type(type_name: str) -> ResourceType | None:
    """The generic ResourceType of an inert AWS type (None for any other type)."""
    found = catalog.support(type_name)
    if found is None or found.support not in catalog.ACCEPTED:
        return None
    required = set(schemas.required(type_name))
    properties = {
        name: Prop("any", required=name in required) for name in schemas.properties(type_name)
    }
    kind = "inert" if found.support == catalog.INERT else "not-emulated"
    note = f"not emulated: {found.note}"

    def build(ctx: ResourceContext) -> None:
        record(ctx, note, kind=kind)

    return ResourceType(
        type_name,
        build,
        properties=properties,
        attributes={name: _attribute(name) for name in schemas.getatt_names(type_name)},
        ref_value=lambda state, lid: state.inert[lid].ref,
    )


add_fallback(make_type)
