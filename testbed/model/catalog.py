"""What the lab does with each resource type: the one table.

- emulated: the lab builds it (every type a family module registers: VPCs, subnets, instances,
  load balancers, ...); its packets are real in the lab.
- inert: an AWS type with no packets of its own (IAM, logs, queues, buckets, ...): accepted,
  created with a "not emulated" event, and Ref / GetAtt give AWS-shaped values (inert.py).
- not emulated: an AWS type whose packets the lab does not make (warm pools, containers,
  databases, ...): accepted like an inert type so the rest of a real template
  comes up, and reported — the note says what is missing from the lab's traffic.
- refused: what cannot run here at all (nested stacks, Lambda-backed custom resources, macros):
  an error naming the resource.

Whether a name is an AWS type at all comes from AWS's schemas (schemas.py), never from here;
this table only says what the lab does with a type. An entry ending in "::" covers every type
of that service (AWS::IAM:: covers AWS::IAM::Role, ...); an exact entry wins over a family.
"""

from __future__ import annotations

from dataclasses import dataclass

from testbed.model import schemas
from testbed.model.resources.registry import registered

EMULATED = "emulated"
INERT = "inert"
NOT_EMULATED = "not emulated"
REFUSED = "refused"
# Built as InertResource (Ref / GetAtt resolve): inert and not-emulated types.
ACCEPTED = (INERT, NOT_EMULATED)

CUSTOM_RESOURCE = "AWS::CloudFormation::CustomResource"
LAMBDA_CUSTOM = "Lambda-backed custom resources cannot run in the lab"

_NO_PACKETS = "no packets of its own in the lab"
_EMPTY_TARGETS = "target groups its services would fill stay empty"
_NOTHING_ANSWERS = "nothing in the lab answers at its address"

# type or service family ("AWS::IAM::") -> (support, note)
TABLE: dict[str, tuple[str, str]] = {
    # Identity, secrets, keys, parameters: read by programs the lab does not run.
    "AWS::IAM::": (INERT, "identities and permissions; " + _NO_PACKETS),
    "AWS::KMS::": (INERT, "encryption keys; " + _NO_PACKETS),
    "AWS::SecretsManager::": (INERT, "secrets; " + _NO_PACKETS),
    "AWS::SSM::": (INERT, "Systems Manager parameters and documents; " + _NO_PACKETS),
    # Certificates are emulated (acm.py: the lab's CA issues them); the service's account
    # settings (expiry events) have nothing to act on.
    "AWS::CertificateManager::": (INERT, "ACM account settings; " + _NO_PACKETS),
    "AWS::EC2::KeyPair": (INERT, "key pairs; the lab's hosts are reached with testbed exec"),
    # Logs, metrics, notifications, queues, storage.
    "AWS::Logs::": (INERT, "log groups and streams; the lab keeps its own logs"),
    # Alarms are emulated (cloudwatch.py); dashboards, composite alarms, ... only show things.
    "AWS::CloudWatch::": (
        INERT,
        "dashboards, composite alarms, metric streams: nothing in the lab acts on them",
    ),
    "AWS::SNS::": (INERT, "notification topics; " + _NO_PACKETS),
    "AWS::SQS::": (INERT, "message queues; " + _NO_PACKETS),
    "AWS::S3::Bucket": (INERT, "storage buckets; " + _NO_PACKETS),
    "AWS::S3::BucketPolicy": (INERT, "bucket policies; " + _NO_PACKETS),
    "AWS::Events::": (INERT, "EventBridge rules; nothing in the lab sends them events"),
    "AWS::CloudTrail::": (INERT, "API audit trails; " + _NO_PACKETS),
    "AWS::Config::": (INERT, "configuration recording; " + _NO_PACKETS),
    "AWS::Backup::": (INERT, "backups; " + _NO_PACKETS),
    "AWS::EC2::FlowLog": (INERT, "flow logs; the lab's own counters show the flows"),
    "AWS::WAFv2::": (INERT, "web ACLs; the lab's load balancers do not filter by them"),
    "AWS::DynamoDB::": (INERT, "tables behind AWS's API, which the lab does not have"),
    "AWS::ECR::": (INERT, "container registries; " + _NO_PACKETS),
    "AWS::CodeBuild::": (INERT, "build projects; " + _NO_PACKETS),
    "AWS::CodePipeline::": (INERT, "pipelines; " + _NO_PACKETS),
    "AWS::KinesisFirehose::": (INERT, "delivery streams; " + _NO_PACKETS),
    "AWS::ApplicationAutoScaling::": (INERT, "scaling of services the lab does not run"),
    "AWS::CloudFront::": (INERT, "the CDN is not emulated; test its origin directly"),
    # Endpoints to AWS services (Interface, Gateway): the services are not in the lab.
    "AWS::EC2::VPCEndpoint": (
        INERT,
        "Interface and Gateway endpoints reach AWS services, which are not in the lab "
        "(GatewayLoadBalancer endpoints are emulated)",
    ),
    "AWS::EC2::VPCEndpointServicePermissions": (INERT, "who may connect; the lab has one account"),
    "AWS::EC2::DHCPOptions": (INERT, "the lab's resolver serves every VPC"),
    "AWS::EC2::VPCDHCPOptionsAssociation": (INERT, "the lab's resolver serves every VPC"),
    "AWS::CloudFormation::WaitConditionHandle": (INERT, "a presigned URL for cfn-signal"),
    "AWS::CloudFormation::WaitCondition": (INERT, "waits for the handle's signals"),
    # Functions are emulated as the targets of ALBs (lambda_function.py, issue 17); their
    # permissions, versions, aliases and event sources have nothing to act on.
    "AWS::Lambda::": (
        INERT,
        "permissions, versions, aliases, event sources: the lab runs a function only as "
        "an ALB's target",
    ),
    # Not emulated: AWS types whose packets the lab does not make. Accepted so that the rest of
    # a real template comes up, and reported (validate's table, an event at up) with what is
    # missing from the lab's traffic because of them.
    # Groups, launch configurations, policies, scheduled actions and lifecycle hooks are
    # emulated (autoscaling.py, ...); the rest of the service is not.
    "AWS::AutoScaling::": (
        NOT_EMULATED,
        "warm pools are not emulated: scale-out launches new instances instead",
    ),
    "AWS::ECS::": (NOT_EMULATED, "containers do not run in the lab; " + _EMPTY_TARGETS),
    "AWS::EKS::": (NOT_EMULATED, "containers do not run in the lab; " + _EMPTY_TARGETS),
    "AWS::EFS::": (NOT_EMULATED, "file systems: " + _NOTHING_ANSWERS),
    "AWS::FSx::": (NOT_EMULATED, "file systems: " + _NOTHING_ANSWERS),
    "AWS::RDS::": (NOT_EMULATED, "databases: " + _NOTHING_ANSWERS),
    "AWS::DocDB::": (NOT_EMULATED, "databases: " + _NOTHING_ANSWERS),
    "AWS::ElastiCache::": (NOT_EMULATED, "caches: " + _NOTHING_ANSWERS),
    "AWS::OpenSearchService::": (NOT_EMULATED, "search clusters: " + _NOTHING_ANSWERS),
    "AWS::Elasticsearch::": (NOT_EMULATED, "search clusters: " + _NOTHING_ANSWERS),
    "AWS::EC2::VPCCidrBlock": (
        NOT_EMULATED,
        "extra address ranges of a VPC (IPv6 ones included) are not added",
    ),
    "AWS::EC2::EgressOnlyInternetGateway": (NOT_EMULATED, "IPv6 is not emulated by the lab"),
    "AWS::EC2::TransitGateway": (NOT_EMULATED, "transit gateways carry no packets in the lab"),
    "AWS::EC2::TransitGatewayAttachment": (NOT_EMULATED, "transit gateways carry no packets"),
    "AWS::EC2::TransitGatewayRoute": (NOT_EMULATED, "transit gateways carry no packets"),
    "AWS::EC2::TransitGatewayRouteTable": (NOT_EMULATED, "transit gateways carry no packets"),
    "AWS::EC2::VPNGateway": (NOT_EMULATED, "VPN connections carry no packets in the lab"),
    "AWS::EC2::VPNGatewayRoutePropagation": (NOT_EMULATED, "VPN connections carry no packets"),
    "AWS::EC2::CustomerGateway": (NOT_EMULATED, "VPN connections carry no packets in the lab"),
    "AWS::EC2::VPNConnection": (NOT_EMULATED, "VPN connections carry no packets in the lab"),
    "AWS::Route53Resolver::": (NOT_EMULATED, "resolver endpoints and rules are not emulated"),
    "AWS::Route53::": (
        NOT_EMULATED,
        "only hosted zones and records are in the lab's resolver (health checks, ... are not)",
    ),
    "AWS::GlobalAccelerator::": (NOT_EMULATED, "Global Accelerator carries no packets"),
    # Refused: what cannot run here at all, and would leave references without meaning.
    "AWS::CloudFormation::Stack": (
        REFUSED,
        "nested stacks are not supported; bring up each template as its own stack and join "
        "them with Outputs Export / Fn::ImportValue",
    ),
    CUSTOM_RESOURCE: (REFUSED, LAMBDA_CUSTOM),
    "AWS::CloudFormation::Macro": (REFUSED, "macros run Lambda functions in AWS"),
    "AWS::Serverless::": (
        REFUSED,
        "a SAM type: add Transform: AWS::Serverless-2016-10-31 to the template",
    ),
}

_UNLISTED = "the lab has no model of this type yet; whatever it does on AWS is missing here"


@dataclass(frozen=True)
class Support:
    """What the lab does with one resource type."""

    type_name: str
    support: str  # EMULATED, INERT or REFUSED
    note: str


def is_custom(type_name: str) -> bool:
    """Custom::* and AWS::CloudFormation::CustomResource (custom.py handles them)."""
    return type_name.startswith("Custom::") or type_name == CUSTOM_RESOURCE


def _table_entry(type_name: str) -> tuple[str, str] | None:
    if type_name in TABLE:
        return TABLE[type_name]
    service = type_name.rsplit("::", 1)[0] + "::"
    return TABLE.get(service)


def support(type_name: str, region: str = schemas.DEFAULT_REGION) -> Support | None:
    """What the lab does with `type_name`; None when it is no known type at all (a typo)."""
    if type_name in registered():
        return Support(type_name, EMULATED, "emulated")
    if is_custom(type_name):
        return Support(type_name, REFUSED, LAMBDA_CUSTOM + " (unless Metadata.Lab.Attributes)")
    if not schemas.is_aws_type(type_name, region):
        return None
    found = _table_entry(type_name)
    if found is None:
        return Support(type_name, NOT_EMULATED, _UNLISTED)
    return Support(type_name, *found)


def is_inert(type_name: str, region: str = schemas.DEFAULT_REGION) -> bool:
    """True for an AWS type the lab accepts without emulating it (inert or not emulated)."""
    found = support(type_name, region)
    return found is not None and found.support in ACCEPTED
