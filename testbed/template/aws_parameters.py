"""AWS's own parameter types (AWS::EC2::VPC::Id, AWS::SSM::Parameter::Value<...>, ...) and what
the lab gives for the values it cannot have.

The list of types is AWS's, taken from cfn-lint (maintained by AWS) rather than re-typed: a
type outside it fails on AWS too. A value that names an AWS thing the lab has no meaning for
(a key pair, an AMI) is kept and reported; an SSM parameter path has no parameter store to read
from, so a public AMI path stands for a placeholder AMI id.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass

SSM_VALUE_PREFIX = "AWS::SSM::Parameter::Value<"
AZ_TYPE = "AWS::EC2::AvailabilityZone::Name"
IMAGE_TYPE = "AWS::EC2::Image::Id"
KEY_PAIR_TYPE = "AWS::EC2::KeyPair::KeyName"

# Families of public parameters AWS publishes (their values are AMI ids): the lab stands a
# placeholder AMI id in for each path.
PUBLIC_AMI_FAMILIES = (
    "/aws/service/ami-",
    "/aws/service/ecs/optimized-ami/",
    "/aws/service/canonical/",
    "/aws/service/debian/",
    "/aws/service/bottlerocket/",
)


@dataclass(frozen=True)
class IdKind:
    """An AWS id parameter type: the id prefix, the thing in words, the resource type."""

    prefix: str
    what: str
    resource_type: str | None  # None: the lab checks the format only


ID_KINDS: dict[str, IdKind] = {
    "AWS::EC2::VPC::Id": IdKind("vpc-", "VPC", "AWS::EC2::VPC"),
    "AWS::EC2::Subnet::Id": IdKind("subnet-", "subnet", "AWS::EC2::Subnet"),
    "AWS::EC2::SecurityGroup::Id": IdKind("sg-", "security group", "AWS::EC2::SecurityGroup"),
    "AWS::EC2::Instance::Id": IdKind("i-", "instance", "AWS::EC2::Instance"),
    "AWS::EC2::Volume::Id": IdKind("vol-", "volume", None),
    IMAGE_TYPE: IdKind("ami-", "AMI", None),
}
# What AWS's ids look like: the prefix and 8 or 17 hex digits.
AWS_ID_DIGITS = re.compile(r"^[0-9a-f]{8}([0-9a-f]{9})?$")


@functools.cache
def known_types() -> frozenset[str]:
    """Every parameter type CloudFormation accepts (cfn-lint's list, loaded once)."""
    # cfn-lint ships no type information; imported here because it takes a moment to load.
    from cfnlint.helpers import (
        VALID_PARAMETER_TYPES_LIST,
        VALID_PARAMETER_TYPES_SINGLE,
    )

    return frozenset(VALID_PARAMETER_TYPES_SINGLE | VALID_PARAMETER_TYPES_LIST)


def value_type(type_name: str) -> tuple[bool, str]:
    """(is an SSM Value<...> type, the type of the value): Value<List<String>> ->
    (True, List<String>)."""
    if type_name.startswith(SSM_VALUE_PREFIX) and type_name.endswith(">"):
        return True, type_name[len(SSM_VALUE_PREFIX) : -1]
    return False, type_name


def element_type(type_name: str) -> str:
    """The type of one item: List<AWS::EC2::Subnet::Id> -> AWS::EC2::Subnet::Id."""
    if type_name == "CommaDelimitedList":
        return "String"
    if type_name.startswith("List<") and type_name.endswith(">"):
        return type_name[5:-1]
    return type_name


def is_public_ami_path(path: str) -> bool:
    """Whether an SSM parameter name is one of AWS's public AMI parameters."""
    return path.startswith(PUBLIC_AMI_FAMILIES)


def placeholder_ami(path: str) -> str:
    """A deterministic AMI id (ami- and 17 hex digits) standing in for an SSM path's value."""
    return "ami-0" + hashlib.sha256(path.encode()).hexdigest()[:16]


def az_problem(value: str, region: str) -> str | None:
    """Why `value` is not an AZ of `region` (region + a letter a-f), or None."""
    if re.fullmatch(re.escape(region) + "[a-f]", value):
        return None
    if re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d+[a-z]", value):
        return (
            f"{value!r} is not an availability zone of the stack's region {region} "
            f"({region}a to {region}f)"
        )
    return f"{value!r} is not an availability zone name such as {region}a"


def id_problem(value: str, element: str) -> str | None:
    """Why `value` cannot be an id of the AWS type `element`, or None (the prefix only: the
    lab's own ids are the prefix and a logical id)."""
    kind = ID_KINDS.get(element)
    if kind is None or (value.startswith(kind.prefix) and len(value) > len(kind.prefix)):
        return None
    return f"{value!r} is not {_article(kind.what)} {kind.what} id such as {kind.prefix}0abc1234"


def _article(word: str) -> str:
    return "an" if word[0].lower() in "aeiou" else "a"
