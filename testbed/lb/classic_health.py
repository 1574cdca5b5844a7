"""A Classic Load Balancer's instance health as `aws elb describe-instance-health` shows it:
testbed.lab.classic_health (which the Lab API uses too), beside the registry it reads."""

from testbed.lab.classic_health import (
    DEREGISTERING,
    FAILED,
    IN_SERVICE,
    NOT_IN_ZONE,
    NOT_YET_HEALTHY,
    OUT_OF_SERVICE,
    REGISTERING,
    instance_health,
    instance_state,
)

__all__ = [
    "DEREGISTERING",
    "FAILED",
    "IN_SERVICE",
    "NOT_IN_ZONE",
    "NOT_YET_HEALTHY",
    "OUT_OF_SERVICE",
    "REGISTERING",
    "instance_health",
    "instance_state",
]
