"""Network plans with NAT gateways and second network interfaces, for unit tests.

Built directly from the plan types over the hand-made two-AZ plan (tests/handmade.py), as the
plan builder gives them: the controller logic is tested without the model or the builder.
- nat_plan(): NAT gateway host NatA in PubA (10.0.0.9, EIP 203.0.113.20, no source/dest
  check), and a 0.0.0.0/0 route to it in PrivA and PrivB.
- with_interfaces(plan): WebA1 (eth0 in PubA) gets eth1 in PrivA (10.0.1.20, secondary
  10.0.1.21); WebA2 (eth0 in PrivA) gets eth1 in PubA (10.0.0.20, EIP 203.0.113.21).
"""

from __future__ import annotations

from dataclasses import replace

from testbed.plan.network import (
    HostPlan,
    InterfacePlan,
    NetworkPlan,
    RoutePlan,
    build_plan,
    host_mac,
)
from tests.handmade import two_az_model

NAT, NAT_IP, NAT_EIP = "NatA", "10.0.0.9", "203.0.113.20"
ETH1, ETH1_IP, ETH1_SECONDARY = "WebA1/eth1", "10.0.1.20", "10.0.1.21"
PUB_ETH1, PUB_ETH1_IP, PUB_ETH1_EIP = "WebA2/eth1", "10.0.0.20", "203.0.113.21"


def free_port(plan: NetworkPlan, switch: str) -> int:
    """The next port number after every port in use on `switch`."""
    return max(a.port for a in plan.attachments() if a.switch == switch) + 1


def nat_plan(public: bool = True, target: str = NAT) -> NetworkPlan:
    """two_az_model's plan with NAT gateway NatA in PubA (its EIP only when `public`); PrivA
    and PrivB route 0/0 to `target` (a NAT gateway host name)."""
    base = build_plan(two_az_model(), "t")
    subnet = base.subnet("PubA")
    nat = HostPlan(
        name=NAT,
        netns="tb-t-NatA",
        kind="natgw",
        ip=NAT_IP,
        prefixlen=24,
        gateway=subnet.router_ip,
        mac=host_mac(NAT_IP),
        switch=subnet.switch,
        port=free_port(base, subnet.switch),
        veth="tb-t-v90",
        az=subnet.az,
        subnet=subnet.name,
        vpc=subnet.vpc,
        public_ip=NAT_EIP if public else None,
        source_dest_check=False,
    )
    to_nat = RoutePlan("0.0.0.0/0", "nat", target)
    subnets = tuple(
        replace(s, routes=(*s.routes, to_nat)) if s.name in ("PrivA", "PrivB") else s
        for s in base.subnets
    )
    return replace(base, hosts=(*base.hosts, nat), subnets=subnets)


def with_interfaces(base: NetworkPlan) -> NetworkPlan:
    """`base` with WebA1's eth1 (PrivA, + a secondary address) and WebA2's eth1 (PubA, EIP)."""
    port = free_port(base, base.subnet("PrivA").switch)

    def interface(subnet_name: str, ip: str, offset: int, **kw) -> InterfacePlan:
        subnet = base.subnet(subnet_name)
        return InterfacePlan(
            name="eth1",
            ip=ip,
            prefixlen=24,
            gateway=subnet.router_ip,
            mac=host_mac(ip),
            switch=subnet.switch,
            port=port + offset,
            veth=f"tb-t-v9{offset + 1}",
            az=subnet.az,
            subnet=subnet.name,
            vpc=subnet.vpc,
            **kw,
        )

    extra = {
        "WebA1": interface("PrivA", ETH1_IP, 0, extra_ips=(ETH1_SECONDARY,)),
        "WebA2": interface("PubA", PUB_ETH1_IP, 1, public_ip=PUB_ETH1_EIP),
    }
    hosts = tuple(
        replace(h, interfaces=(extra[h.name],)) if h.name in extra else h for h in base.hosts
    )
    return replace(base, hosts=hosts)
