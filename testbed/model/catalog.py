"""What the lab does with each resource type: the one table.

- emulated: the lab builds it (every type a family module registers: VPCs, subnets, instances,
  load balancers, ...); its packets are real in the lab.
- inert: an AWS type with no packets of its own (IAM, logs, queues, buckets, ...): accepted,
  created with a "not emulated" event, and Ref / GetAtt give AWS-shaped values (inert.py).
- refused: an AWS type the lab cannot stand in for; the note says why and what would bring it.

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
REFUSED = "refused"

CUSTOM_RESOURCE = "AWS::CloudFormation::CustomResource"
LAMBDA_CUSTOM = "Lambda-backed custom resources cannot run in the lab"

_NO_PACKETS = "no packets of its own in the lab"
_SERVERS = "not emulated (no packets of its own in the lab)"

# type or service family ("AWS::IAM::") -> (support, note)
TABLE: dict[str, tuple[str, str]] = {
    # Identity, secrets, keys, parameters: read by programs the lab does not run.
    "AWS::IAM::": (INERT, "identities and permissions; " + _NO_PACKETS),
    "AWS::KMS::": (INERT, "encryption keys; " + _NO_PACKETS),
    "AWS::SecretsManager::": (INERT, "secrets; " + _NO_PACKETS),
    "AWS::SSM::": (INERT, "Systems Manager parameters and documents; " + _NO_PACKETS),
    "AWS::CertificateManager::": (
        INERT,
        "certificates; an HTTPS listener's certificate is not checked by the lab",
    ),
    "AWS::EC2::KeyPair": (INERT, "key pairs; the lab's hosts are reached with testbed exec"),
    # Logs, metrics, notifications, queues, storage.
    "AWS::Logs::": (INERT, "log groups and streams; the lab keeps its own logs"),
    "AWS::CloudWatch::": (INERT, "alarms and dashboards; they act with Auto Scaling (issue 12)"),
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
    "AWS::EC2::LaunchTemplate": (INERT, "instance settings used by Auto Scaling (issue 12)"),
    "AWS::EC2::DHCPOptions": (INERT, "the lab's resolver serves every VPC"),
    "AWS::EC2::VPCDHCPOptionsAssociation": (INERT, "the lab's resolver serves every VPC"),
    "AWS::CloudFormation::WaitConditionHandle": (INERT, "a presigned URL for cfn-signal"),
    "AWS::CloudFormation::WaitCondition": (INERT, "waits for the handle's signals"),
    # A function nothing in the lab can invoke has no packets (issue 17 brings Lambda targets).
    "AWS::Lambda::": (INERT, "functions do not run in the lab (Lambda targets: issue 17)"),
    # Refused: they would change packets, or run what the lab does not have.
    "AWS::AutoScaling::": (REFUSED, "Auto Scaling arrives with issue 12"),
    "AWS::ElasticLoadBalancing::LoadBalancer": (
        REFUSED,
        "Classic Load Balancers arrive with issue 13",
    ),
    "AWS::CloudFormation::Stack": (
        REFUSED,
        "nested stacks are not supported; bring up each template as its own stack and join "
        "them with Outputs Export / Fn::ImportValue",
    ),
    CUSTOM_RESOURCE: (REFUSED, LAMBDA_CUSTOM),
    "AWS::CloudFormation::Macro": (REFUSED, "macros run Lambda functions in AWS"),
    "AWS::ECS::": (REFUSED, "runs containers: " + _SERVERS),
    "AWS::EKS::": (REFUSED, "runs containers: " + _SERVERS),
    "AWS::EFS::": (REFUSED, "runs file systems: " + _SERVERS),
    "AWS::FSx::": (REFUSED, "runs file systems: " + _SERVERS),
    "AWS::RDS::": (REFUSED, "runs databases: " + _SERVERS),
    "AWS::DocDB::": (REFUSED, "runs databases: " + _SERVERS),
    "AWS::ElastiCache::": (REFUSED, "runs caches: " + _SERVERS),
    "AWS::OpenSearchService::": (REFUSED, "runs search clusters: " + _SERVERS),
    "AWS::Elasticsearch::": (REFUSED, "runs search clusters: " + _SERVERS),
    "AWS::EC2::VPCCidrBlock": (REFUSED, "adds address ranges to a VPC: not emulated"),
    "AWS::EC2::EgressOnlyInternetGateway": (REFUSED, "IPv6 is not supported by the lab"),
    "AWS::EC2::TransitGateway": (REFUSED, "transit gateways are not emulated"),
    "AWS::EC2::TransitGatewayAttachment": (REFUSED, "transit gateways are not emulated"),
    "AWS::EC2::TransitGatewayRoute": (REFUSED, "transit gateways are not emulated"),
    "AWS::EC2::TransitGatewayRouteTable": (REFUSED, "transit gateways are not emulated"),
    "AWS::EC2::VPCPeeringConnection": (REFUSED, "VPC peering is not emulated"),
    "AWS::EC2::VPNGateway": (REFUSED, "VPN connections are not emulated"),
    "AWS::EC2::VPNGatewayRoutePropagation": (REFUSED, "VPN connections are not emulated"),
    "AWS::EC2::CustomerGateway": (REFUSED, "VPN connections are not emulated"),
    "AWS::EC2::VPNConnection": (REFUSED, "VPN connections are not emulated"),
    "AWS::Route53Resolver::": (REFUSED, "resolver endpoints and rules are not emulated"),
    "AWS::GlobalAccelerator::": (REFUSED, "Global Accelerator is not emulated"),
    # Route53 records and zones land in the lab's resolver (registered by their module, which
    # issue 11's DNS work adds; until then these entries say so).
    "AWS::Route53::RecordSet": (REFUSED, "records in the lab's resolver: being added (issue 11)"),
    "AWS::Route53::RecordSetGroup": (
        REFUSED,
        "records in the lab's resolver: being added (issue 11)",
    ),
    "AWS::Route53::HostedZone": (REFUSED, "hosted zones are being added (issue 11)"),
    "AWS::Route53::": (REFUSED, "only Route53 records and hosted zones are in the lab"),
    "AWS::Serverless::": (
        REFUSED,
        "a SAM type: add Transform: AWS::Serverless-2016-10-31 to the template",
    ),
}

_UNLISTED = "the lab has no model of this type yet"


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
        return Support(type_name, REFUSED, _UNLISTED)
    return Support(type_name, *found)


def is_inert(type_name: str, region: str = schemas.DEFAULT_REGION) -> bool:
    """True for an AWS type the lab accepts without emulating it."""
    found = support(type_name, region)
    return found is not None and found.support == INERT
