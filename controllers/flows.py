"""OpenFlow 1.3 flow entries as plain values.

The decision logic returns these; the os-ken adapter (testbed.controllers.ofadapter) turns them into
OFPFlowMod messages and the unit tests apply them to a fake flow table. Match field names are
os-ken's OXM names (in_port, eth_type, eth_dst, ipv4_dst, ip_proto, tcp_dst, metadata, ...);
a masked field is a (value, mask) tuple.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

ETH_TYPE_IP = 0x0800
ETH_TYPE_ARP = 0x0806
ETH_TYPE_IPV6 = 0x86DD
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17

# Table layout of every lab switch. Later capabilities insert their logic into STEER.
TABLE_CLASSIFY = 0  # where did the packet enter: host port (tag metadata) or trunk
TABLE_SG_OUT = 2  # security groups, egress of the sending port: its conntrack zone
TABLE_SG_OUT_RULES = 3  # tracked replies pass; new flows need an egress rule of its groups
TABLE_ARP = 5  # ARP requests of a host, by its ARP class: the switch answers them itself
TABLE_STEER = 10  # before routing: load balancer replies are translated back (NLB, GWLB)
TABLE_NACL_OUT = 15  # network ACL of the source subnet, outbound (routed traffic only)
TABLE_ROUTE = 20  # VPC router: local route, internet gateway NAT
TABLE_IGW_OUT = 21  # leaving through the internet gateway: its 1:1 NAT of the source
TABLE_IGW = 22  # the internet gateway: to the internet, or its 1:1 NAT of the destination
TABLE_IGW_ROUTE = 23  # the gateway's ingress route table (e.g. through a GWLB endpoint)
TABLE_SG_LB = 24  # security groups of an NLB node, for the traffic the fabric steers
TABLE_LB = 25  # routed packets to a load balancer node: listeners pick a target
TABLE_L3_DELIVER = 30  # routed packets: rewrite MACs toward the destination host
TABLE_NACL_IN = 35  # network ACL of the destination subnet, inbound (routed traffic only)
TABLE_BRIDGE = 40  # same-subnet (L2) traffic: only to hosts of the packet's own subnet
TABLE_OUTPUT = 50  # every switch: destination MAC -> port toward that host
TABLE_SG_IN = 55  # security groups, ingress of the receiving port: its conntrack zone
TABLE_SG_IN_RULES = 56  # tracked replies pass; new flows need an ingress rule of its groups


# OpenFlow's reserved port "the port the packet came in on" (OFPP_IN_PORT): an output to
# the in_port itself is dropped, this one is not (the ARP responder answers through it).
IN_PORT = 0xFFFFFFF8
ARP_REQUEST, ARP_REPLY = 1, 2


@dataclass(frozen=True)
class Output:
    port: int


@dataclass(frozen=True)
class SetField:
    field: str
    value: Any


@dataclass(frozen=True)
class DecTtl:
    pass


@dataclass(frozen=True)
class ToController:
    max_len: int = 0xFFFF


@dataclass(frozen=True)
class Group:
    group_id: int


@dataclass(frozen=True)
class Nat:
    """NAT inside a ct action. kind None: apply the connection's existing translation."""

    kind: str | None = None  # 'src' | 'dst' | None
    ip: str | None = None
    port_min: int | None = None
    port_max: int | None = None


@dataclass(frozen=True)
class Ct:
    """Send the packet through the connection tracker (zone), then on to `table` (None: no
    recirculation; the packet goes on with the next action, as untracked)."""

    zone: int
    table: int | None
    commit: bool = False
    nat: Nat | None = None
    label: int | None = None  # with commit: the connection's ct_label becomes this


@dataclass(frozen=True)
class Move:
    """Copy n_bits of field `src` (from its bit src_ofs) into `dst` (from its bit dst_ofs):
    Nicira's move, e.g. how a switch turns an ARP request into its reply from the request's
    own fields, or reads a target's address from a conntrack label."""

    src: str
    dst: str
    n_bits: int
    src_ofs: int = 0
    dst_ofs: int = 0


@dataclass(frozen=True)
class Multipath:
    """Hash the flow's fields into register `dst` as a value in [0, n_links)."""

    fields: str  # one of MULTIPATH_FIELDS
    basis: int
    n_links: int
    dst: str = "reg0"


Action = Output | SetField | DecTtl | ToController | Group | Ct | Multipath | Move

# OVS hash field sets for multipath (NX_HASH_FIELDS_*): symmetric ones hash a flow and its
# reverse to the same value, which the GWLB needs and the NLB does not mind.
MULTIPATH_FIELDS = {
    "eth_src": 0,
    "symmetric_l4": 1,
    "symmetric_l3l4": 2,
    "symmetric_l3l4+udp": 3,
    "nw_src": 4,
    "nw_dst": 5,
    "symmetric_l3": 6,
}

# ct_state bits (match as (value, mask)).
CT_NEW, CT_EST, CT_REL, CT_RPL, CT_INV, CT_TRK = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10


@dataclass(frozen=True)
class Flow:
    """One flow entry. match is a tuple of (field, value) pairs so that Flow is hashable."""

    table: int
    priority: int
    match: tuple[tuple[str, Any], ...] = ()
    actions: tuple[Action, ...] = ()
    goto: int | None = None
    metadata: tuple[int, int] | None = None  # write_metadata (value, mask)
    idle_timeout: int = 0
    hard_timeout: int = 0


def flow(
    table: int,
    priority: int,
    match: dict[str, Any] | None = None,
    actions: Sequence[Action] = (),
    goto: int | None = None,
    **extra: Any,
) -> Flow:
    """Shorthand constructor taking the match as a dict."""
    return Flow(
        table, priority, tuple(sorted((match or {}).items())), tuple(actions), goto, **extra
    )


@dataclass(frozen=True)
class PacketOut:
    """A packet the controller sends out of a switch port (the NLB's RST)."""

    dpid: int
    port: int
    data: bytes
