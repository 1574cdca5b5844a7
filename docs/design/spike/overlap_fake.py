"""Spike (throwaway): two VPCs with the same CIDR 10.0.0.0/16 in ONE lab plan, one Forwarding.

Plan A = stack "a" (bare names, address space 0, MACs 02:00:ip as today);
plan B = the same template as stack "b" (names "b.X", VPC index 2, subnet indexes +4,
address space 1 -> MACs 02:01:ip, its own public IPs, ports/veths continuing A's).
1. today's Forwarding on the merged plan: what happens (ambiguity / leak)?
2. a patched Forwarding (L3_DELIVER / IGW matched on the destination VPC bits, the IGW
   writing the destination VPC into metadata): isolation + internet + hairpin.
Run: cd /work/wt/i14 && .venv/bin/python /work/notes/i14/spike/overlap_fake.py
"""
from __future__ import annotations

import sys
import time
from dataclasses import replace
from ipaddress import IPv4Address

sys.path.insert(0, "/work/wt/i14")

from testbed import naming
from testbed.controllers import forwarding as fw
from testbed.controllers.flows import ETH_TYPE_IP, TABLE_IGW, TABLE_IGW_OUT, TABLE_IGW_ROUTE, TABLE_L3_DELIVER, TABLE_NACL_IN, SetField, DecTtl, flow
from testbed.plan.network import NetworkPlan, SubnetPlan, VpcPlan, build_plan
from tests.fake_openflow import AmbiguousMatch, FakeFabric, ip_packet
from tests.handmade import two_az_model


def spaced_mac(space: int, ip: str) -> str:
    b = IPv4Address(ip).packed
    return f"02:{space:02x}:" + ":".join(f"{x:02x}" for x in b)


def merged_plan() -> NetworkPlan:
    a = build_plan(two_az_model(), "spk")
    b = build_plan(two_az_model(), "spk")
    q = lambda n: None if n is None else f"b.{n}"  # noqa: E731
    pub = {"203.0.113.10": "203.0.113.20", "203.0.113.11": "203.0.113.21"}
    next_port = {}
    for h in a.attachments():
        next_port[h.switch] = max(next_port.get(h.switch, 0), h.port + 1)
    veth = len(a.hosts)
    hosts = list(a.hosts)
    for h in b.hosts:
        if h.kind in ("client", "dns"):
            continue  # one internet; B's resolver address 10.0.0.2 clashes with A's (see design)
        veth += 1
        port = next_port[h.switch]
        next_port[h.switch] += 1
        hosts.append(replace(
            h, name=q(h.name), netns=naming.netns_name("spk", q(h.name)), subnet=q(h.subnet), vpc=q(h.vpc),
            mac=spaced_mac(1, h.ip), port=port, veth=naming.veth_name("spk", veth),
            public_ip=pub.get(h.public_ip, h.public_ip),
        ))
    subnets = list(a.subnets) + [
        replace(s, name=q(s.name), vpc=q(s.vpc), index=s.index + len(a.subnets)) for s in b.subnets
    ]
    vpcs = tuple(a.vpcs) + (VpcPlan("b.VPC", "10.0.0.0/16", 2),)
    return replace(a, hosts=tuple(hosts), subnets=tuple(subnets), vpcs=vpcs)


class VpcAwareForwarding(fw.Forwarding):
    """What the design changes: after routing, metadata's VPC bits name the VPC whose
    addresses ipv4_dst is in; delivery and the IGW's translations match/write them."""

    def _vpc_bits(self, h) -> int:
        return self.realm_tag(h) & fw.VPC_MASK

    def _l3_deliver(self):
        flows = [flow(TABLE_L3_DELIVER, 0)]
        for h in self._ports:
            realm = (self._vpc_bits(h), fw.VPC_MASK)
            for ip in (h.ip, *h.extra_ips):
                match = {"eth_type": ETH_TYPE_IP, "ipv4_dst": ip}
                if h.kind != "dns":  # (resolver: one per address space in the design)
                    match["metadata"] = realm
                flows.append(flow(TABLE_L3_DELIVER, 100, match,
                                  [SetField("eth_src", self.router_mac), SetField("eth_dst", h.mac), DecTtl()],
                                  goto=TABLE_NACL_IN))
        return flows

    def _igw_out(self):
        flows = [flow(TABLE_IGW_OUT, 0)]
        for h in self._public_ports():
            flows.append(flow(TABLE_IGW_OUT, 100,
                              {"eth_type": ETH_TYPE_IP, "ipv4_src": h.ip, "metadata": (self._vpc_bits(h), fw.VPC_MASK)},
                              [SetField("ipv4_src", h.public_ip)], goto=TABLE_IGW))
        return flows

    def _igw(self):
        flows = [flow(TABLE_IGW, 0)]
        net = fw._net(self.plan.internet_cidr)
        f = flow(TABLE_IGW, 100, {"eth_type": ETH_TYPE_IP, "ipv4_dst": net}, goto=TABLE_L3_DELIVER)
        flows.append(replace(f, metadata=(fw.vpc_tag(fw.INTERNET_REALM), fw.VPC_MASK)))
        for h in self._public_ports():
            f = flow(TABLE_IGW, 200, {"eth_type": ETH_TYPE_IP, "ipv4_dst": h.public_ip},
                     [SetField("ipv4_dst", h.ip)], goto=TABLE_IGW_ROUTE)
            flows.append(replace(f, metadata=(self._vpc_bits(h), fw.VPC_MASK)))
        return flows


def run(label, logic_cls, plan, cases):
    t0 = time.perf_counter()
    logic = logic_cls(plan)
    fabric = FakeFabric(plan, logic)
    nflows = sum(len(logic.flows_for(s.dpid)) for s in plan.switches)
    print(f"\n== {label}: {nflows} flows on {len(plan.switches)} switches, built in {1e3*(time.perf_counter()-t0):.1f} ms")
    ok = True
    for src, dst, want, what in cases:
        try:
            res = fabric.send(src, ip_packet(plan, src, dst))
            got = res.hosts
            detail = "" if not res.delivered else f" (src {res.delivered[0][1]['ipv4_src']} dst {res.delivered[0][1]['ipv4_dst']})"
        except AmbiguousMatch as exc:
            got, detail = "AMBIGUOUS", f" {str(exc)[:110]}"
        verdict = "ok " if got == want else "BAD"
        ok &= got == want
        print(f"  {verdict} {what:52s} {src:>8} -> {dst:<13} got {got}{detail}")
    return ok


if __name__ == "__main__":
    plan = merged_plan()
    macs = [h.mac for h in plan.attachments()]
    print("hosts:", len(plan.hosts), "unique MACs:", len(set(macs)) == len(macs),
          "same-IP pairs:", sorted({h.ip for h in plan.hosts if any(o.ip == h.ip and o.name != h.name for o in plan.hosts)}))
    cases = [
        ("WebA2", "10.0.3.4", ["WebB2"], "A private -> A private (local route, across AZs)"),
        ("b.WebA2", "10.0.3.4", ["b.WebB2"], "B private -> same address in B (must stay in B)"),
        ("WebA2", "10.0.1.5", ["WebA3"], "A same subnet via router"),
        ("b.WebA2", "10.0.1.5", ["b.WebA3"], "B same subnet via router"),
        ("Client1", "203.0.113.10", ["WebA1"], "internet -> A public IP"),
        ("Client1", "203.0.113.20", ["b.WebA1"], "internet -> B public IP (same private IP)"),
        ("b.WebA1", "198.51.100.10", ["Client1"], "B public instance -> internet"),
        ("WebA1", "203.0.113.20", ["b.WebA1"], "hairpin A -> B's public IP (via IGW, as AWS)"),
    ]
    ok_today = run("today's Forwarding", fw.Forwarding, plan, cases)
    ok_new = run("VPC-aware delivery (spike patch)", VpcAwareForwarding, plan, cases)
    print("\nall as wanted: today", ok_today, "| patched", ok_new)

    # ARP and same-subnet bridging (no router): answers stay in each VPC's realm.
    from tests.fake_openflow import arp_request
    for logic_cls in (fw.Forwarding, VpcAwareForwarding):
        fabric = FakeFabric(plan, logic_cls(plan))
        for src in ("WebA2", "b.WebA2"):
            res = fabric.send(src, arp_request(plan, src, "10.0.1.5"))
            mac = res.delivered[0][1]["arp_sha"] if res.delivered else None
            bridged = fabric.send(src, ip_packet(plan, src, "10.0.1.5", eth_dst=mac)).hosts
            print(f"  {logic_cls.__name__}: ARP {src} who-has 10.0.1.5 -> {mac}; L2 frame to it -> {bridged}")
