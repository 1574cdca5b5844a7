"""Template text the model tests of security groups and network ACLs build on."""

from __future__ import annotations

import textwrap

# VPC (10.0.0.0/16) with subnets A (us-east-1a) and B (us-east-1b), and a second VPC Other
# with one subnet OtherNet. Tests append resources below (two-space indentation).
TWO_VPCS = textwrap.dedent("""\
    Resources:
      VPC:
        Type: AWS::EC2::VPC
        Properties: {CidrBlock: 10.0.0.0/16}
      A:
        Type: AWS::EC2::Subnet
        Properties: {VpcId: !Ref VPC, CidrBlock: 10.0.0.0/24, AvailabilityZone: us-east-1a}
      B:
        Type: AWS::EC2::Subnet
        Properties: {VpcId: !Ref VPC, CidrBlock: 10.0.1.0/24, AvailabilityZone: us-east-1b}
      Other:
        Type: AWS::EC2::VPC
        Properties: {CidrBlock: 10.1.0.0/16}
      OtherNet:
        Type: AWS::EC2::Subnet
        Properties: {VpcId: !Ref Other, CidrBlock: 10.1.0.0/24, AvailabilityZone: us-east-1a}
""")


def appended(base: str, extra: str) -> str:
    """`base` with the resources of `extra` (YAML, any indentation) added under Resources."""
    return base + textwrap.indent(textwrap.dedent(extra), "  ")
