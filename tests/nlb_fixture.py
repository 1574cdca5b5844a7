"""A network plan with one NLB (two nodes) over the hand-made two-AZ model, for unit tests."""

from __future__ import annotations

from dataclasses import replace

from testbed.plan.balancers import (
    HealthPlan,
    ListenerPlan,
    LoadBalancerPlan,
    NodePlan,
    TargetGroupPlan,
    TargetPlan,
)
from testbed.plan.network import FIRST_HOST_PORT, HostPlan, NetworkPlan, build_plan, host_mac
from tests.handmade import two_az_model

HEALTH = HealthPlan(True, "TCP", None, "/", 5, 2, 2, 2, "200-399")
TARGETS = (
    ("WebA2", "10.0.1.4", "us-east-1a"),
    ("WebA3", "10.0.1.5", "us-east-1a"),
    ("WebB2", "10.0.3.4", "us-east-1b"),
)


def target_group(
    name: str,
    protocol: str,
    port: int,
    preserve: bool = True,
    stickiness: str = "5-tuple",
    cross_zone: str = "use_load_balancer_configuration",
    target_type: str = "instance",
) -> TargetGroupPlan:
    return TargetGroupPlan(
        name,
        protocol,
        port,
        target_type,
        tuple(TargetPlan(f"{h}:{port}", h, ip, port, az, h) for h, ip, az in TARGETS),
        HEALTH,
        preserve,
        stickiness,
        cross_zone,
        300,
    )


def nlb_plan(
    cross_zone: bool = False,
    preserve: bool = True,
    stickiness: str = "5-tuple",
    scheme: str = "internet-facing",
) -> NetworkPlan:
    base = build_plan(two_az_model(), "t")
    public = scheme == "internet-facing"
    nodes = (
        NodePlan("NLB-1a", "us-east-1a", "PubA", "10.0.0.5", "203.0.113.12" if public else None),
        NodePlan("NLB-1b", "us-east-1b", "PubB", "10.0.2.5", "203.0.113.13" if public else None),
    )
    lb = LoadBalancerPlan(
        name="NLB",
        type="network",
        scheme=scheme,
        dns_name="nlb-0123.elb.example",
        cross_zone=cross_zone,
        nodes=nodes,
        listeners=(
            ListenerPlan("Tcp80", 80, "TCP", "TgTcp"),
            ListenerPlan("Udp9000", 9000, "UDP", "TgUdp"),
        ),
        target_groups=(
            target_group("TgTcp", "TCP", 80, preserve, stickiness),
            target_group("TgUdp", "UDP", 9000, preserve, stickiness),
        ),
        index=1,
        zone_dnat=100,
        zone_snat=101,
    )
    hosts = list(base.hosts)
    for node in nodes:
        switch = next(s.name for s in base.switches if s.role == "az" and s.az == node.az)
        port = max([h.port for h in hosts if h.switch == switch] + [FIRST_HOST_PORT - 1]) + 1
        subnet = base.subnet(node.subnet)
        hosts.append(
            HostPlan(
                name=node.host,
                netns=f"tb-t-{node.host}",
                kind="lb-node",
                ip=node.ip,
                prefixlen=24,
                gateway=subnet.router_ip,
                mac=host_mac(node.ip),
                switch=switch,
                port=port,
                veth=f"tb-t-v{len(hosts) + 1}",
                az=node.az,
                subnet=node.subnet,
                vpc="VPC",
                public_ip=node.public_ip,
                role="nlb-node",
                role_args={"lb": "NLB"},
            )
        )
    return replace(base, hosts=tuple(hosts), load_balancers=(lb,))
