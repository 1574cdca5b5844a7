"""Security groups named by other resources (instances, interfaces, load balancers).

The one place that turns a SecurityGroupIds / GroupSet / SecurityGroups value into logical
ids of AWS::EC2::SecurityGroup resources, so every resource that carries groups reads them
the same way (and the security-group family owns what a "default group" is).
"""

from __future__ import annotations

from typing import Any

from testbed.model.resources.base import ResourceContext, ref
from testbed.model.resources.elbv2.common import convert, text_list

SECURITY_GROUP = "AWS::EC2::SecurityGroup"
_GROUP_REF = ref(SECURITY_GROUP)


def default_group_id(vpc_id: str) -> str:
    """Logical id of a VPC's default security group (a dot: no template id can clash)."""
    return f"{vpc_id}.default"


def group_list(ctx: ResourceContext, value: Any, where: str, line: int | None) -> tuple[str, ...]:
    """Logical ids of the groups a list of group ids (sg-..., from !Ref/!GetAtt GroupId) names."""
    names = text_list(ctx, value, where, line)
    return tuple(
        convert(ctx, _GROUP_REF, name, f"{where}[{i}]", line) for i, name in enumerate(names)
    )
