"""How a lab's block of conntrack zones is shared out (pure: the plan assigns, the lab reserves).

Conntrack is machine-wide, so each lab owns one block of ZONE_BLOCK zones (testbed.lab.zones
reserves it). Inside the block: two zones per load balancer from the start (DNAT and SNAT
sides, testbed.plan.balancers), then from SG_ZONE_OFFSET one zone per switch port that has
security groups (AWS tracks connections per network interface; so does the lab).
"""

from __future__ import annotations

from testbed.errors import BadInput
from testbed.plan.balancers import ZONES_PER_LB

ZONE_BLOCK = 1024  # zones per lab
SG_ZONE_OFFSET = 64  # first security-group zone, relative to the lab's zone base
MAX_LOAD_BALANCERS = SG_ZONE_OFFSET // ZONES_PER_LB  # 32
MAX_GROUP_PORTS = ZONE_BLOCK - SG_ZONE_OFFSET  # 960 interfaces with security groups


def check_load_balancers(count: int) -> None:
    """BadInput when the lab's load balancers need more zones than their part of the block."""
    if count > MAX_LOAD_BALANCERS:
        raise BadInput(
            f"the stack has {count} load balancers; a lab holds at most {MAX_LOAD_BALANCERS} "
            f"(each takes {ZONES_PER_LB} of the lab's conntrack zones)",
            hint="split the stack over several labs",
        )


def sg_zone(zone_base: int, k: int) -> int:
    """The conntrack zone of the k-th (from 0) port with security groups."""
    if k >= MAX_GROUP_PORTS:
        raise BadInput(
            f"more than {MAX_GROUP_PORTS} network interfaces have security groups; a lab "
            f"tracks connections of at most {MAX_GROUP_PORTS} (one conntrack zone each)",
            hint="split the stack over several labs",
        )
    return zone_base + SG_ZONE_OFFSET + k
