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
# GWLB steering in the switch (testbed.controllers.gwlb), on the switch of a GWLB node that
# has a GENEVE port: packets to an endpoint's MAC come here from TABLE_OUTPUT.
TABLE_GWLB_CT = 60  # through the GWLB's conntrack zone
TABLE_GWLB_STATE = 61  # a flow it knows: its appliance and cookie from ct_label; else pick
TABLE_GWLB_PICK = 62  # symmetric hash of the stickiness tuple into a Maglev slot (reg0)
TABLE_GWLB_ENCAP = 63  # GENEVE options and destination, out of the node's tunnel port
TABLE_GWLB_SLOT = 64  # slot -> appliance and cookie (a learned 2-/3-tuple pair wins)
TABLE_GWLB_STICKY = 65  # learned 2-/3-tuple pairs (the switch's own flows)
TABLE_GWLB_COMMIT = 66  # per appliance: commit the choice into ct_label (new, rehashed)
TABLE_GWLB_TX = 67  # per appliance: packets sent to it (counters only)
TABLE_GWLB_RX = 68  # per appliance: packets back from it (counters only)
# Cookie of every flow a GWLB learn action installs: this tag in bits 48-63, the appliance's
# index below. The controller never deletes such flows as unknown (they are the switch's).
GWLB_LEARN_COOKIE_TAG = 0x1EA2
LEARN_TAG_SHIFT = 48


def is_learned_cookie(cookie: int) -> bool:
    """Whether a flow's cookie says a GWLB learn action installed it."""
    return cookie >> LEARN_TAG_SHIFT == GWLB_LEARN_COOKIE_TAG


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
class Move:
    """Copy n_bits of field `src` (from its bit src_ofs) into `dst` (from its bit dst_ofs):
    Nicira's move, e.g. how a switch turns an ARP request into its reply from the request's
    own fields, or reads a target's address from a conntrack label."""

    src: str
    dst: str
    n_bits: int
    src_ofs: int = 0
    dst_ofs: int = 0


@dataclass(frozen=True, repr=False)
class Ct:
    """Send the packet through the connection tracker (zone), then on to `table` (None: no
    recirculation; the packet goes on with the next action, as untracked). With commit,
    `actions` (Move or SetField into ct_label / ct_mark) run on the connection's entry
    (OVS's ct(exec(...)))."""

    zone: int
    table: int | None
    commit: bool = False
    nat: Nat | None = None
    label: int | None = None  # with commit: the connection's ct_label becomes this
    actions: tuple[Move | SetField, ...] = ()

    def __repr__(self) -> str:
        # The repr is part of every flow's fingerprint (its cookie) and of the golden flow
        # digests: a Ct without exec actions reads as it did before they existed.
        text = (
            f"Ct(zone={self.zone!r}, table={self.table!r}, commit={self.commit!r}, "
            f"nat={self.nat!r}, label={self.label!r}"
        )
        return text + (f", actions={self.actions!r})" if self.actions else ")")


@dataclass(frozen=True)
class Multipath:
    """Hash the flow's fields into register `dst` as a value in [0, n_links)."""

    fields: str  # one of MULTIPATH_FIELDS
    basis: int
    n_links: int
    dst: str = "reg0"


@dataclass(frozen=True)
class Resubmit:
    """Run the flow of `table` that matches the packet now (its actions, and its goto), then
    go on with the next action: Nicira's resubmit(,table)."""

    table: int


@dataclass(frozen=True)
class LearnMatch:
    """A match of the flow a Learn installs: its field `dst` equals the learning packet's
    field `src` (None: the constant `value`)."""

    dst: str
    n_bits: int
    src: str | None = None
    value: int = 0


@dataclass(frozen=True)
class LearnLoad:
    """An action of the flow a Learn installs: load the learning packet's field `src` as it
    is now (None: the constant `value`) into `dst`."""

    dst: str
    n_bits: int
    src: str | None = None
    value: int = 0


@dataclass(frozen=True)
class Learn:
    """Install (or refresh) a flow in `table` made from this packet: Nicira's learn."""

    table: int
    priority: int
    idle_timeout: int
    cookie: int
    specs: tuple[LearnMatch | LearnLoad, ...]


Action = (
    Output | SetField | DecTtl | ToController | Group | Ct | Multipath | Move | Resubmit | Learn
)


@dataclass(frozen=True)
class SelectGroup:
    """An OpenFlow select group: each packet runs the actions of one bucket (equal weights).
    OVS picks it by its default selection method: dp_hash, a hash the datapath computes
    without matching the fields it hashes (OVS 3.1: symmetric over addresses and TCP/SCTP
    ports, not UDP ports), so a flow choosing by it needs no datapath flow per connection."""

    group_id: int
    buckets: tuple[tuple[Action, ...], ...]


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
