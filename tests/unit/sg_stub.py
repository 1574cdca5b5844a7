"""A stand-in AWS::EC2::SecurityGroup for the address-model tests, used only while the
security-group family (another module) is not registered: tests of GroupSet and of the default
VPC need a group type to name. With the real type registered, the fixture does nothing."""

from __future__ import annotations

import pytest

from testbed.model.resources import REGISTRY, ResourceType, prop, ref, register
from testbed.model.resources.group_refs import SECURITY_GROUP


@pytest.fixture
def security_groups():
    """AWS::EC2::SecurityGroup registered for the test (the real one when it exists)."""
    if SECURITY_GROUP in REGISTRY:
        yield
        return
    register(
        ResourceType(
            SECURITY_GROUP,
            lambda ctx: None,
            ref_prefix="sg-",
            properties={
                "GroupDescription": prop("string", required=True),
                "VpcId": ref("AWS::EC2::VPC"),
            },
            attributes={"GroupId": lambda s, lid: "sg-" + lid},
        )
    )
    yield
    del REGISTRY[SECURITY_GROUP]
