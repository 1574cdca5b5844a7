"""Turns plain Flow values into os-ken OpenFlow 1.3 messages and keeps switches in sync.

Every flow goes to a switch with a cookie that fingerprints its whole content (`fingerprint`),
so what a switch holds can be compared with what is wanted by cookie alone. `FlowSync` knows,
per switch, the cookies it holds: read from the switch itself when it connects (flow
statistics), so that a controller that (re)connects to a programmed switch takes it over as
it is; then every change of desired state becomes the difference (add what is new, delete by
cookie what is gone). Nothing is ever wiped: a flow that stays is never touched, and neither
are the connections (conntrack) that go through it.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from typing import Any

from testbed.controllers import nx_fields  # noqa: F401  (registers tun_metadata0..2)
from testbed.controllers.flows import (
    MULTIPATH_FIELDS,
    Ct,
    DecTtl,
    Flow,
    Group,
    Learn,
    LearnLoad,
    LearnMatch,
    Move,
    Multipath,
    Nat,
    Output,
    Resubmit,
    SelectGroup,
    SetField,
    ToController,
    is_learned_cookie,
)

NX_CT_F_COMMIT = 1
NX_CT_RECIRC_NONE = 0xFF
NX_NAT_F_SRC, NX_NAT_F_DST = 1, 2
NX_MP_ALG_MODULO_N = 0
NX_RESUBMIT_IN_PORT = 0xFFF8  # resubmit(,table): keep the packet's in_port
ALL_COOKIE_BITS = 0xFFFF_FFFF_FFFF_FFFF
# OVS's group-mod command "add, or modify the group of that id" (OFPGC11_ADD_OR_MOD, what
# `ovs-ofctl --may-create mod-group` sends; any OpenFlow version): a controller that takes
# over a switch need not know which groups it holds.
OFPGC_ADD_OR_MOD = 0x8000
# Learn specs name fields by their NXM headers (what OVS's learn takes).
LEARN_FIELDS = {
    "eth_type": "eth_type_nxm",
    "ip_proto": "ip_proto_nxm",
    "ipv4_src": "ipv4_src_nxm",
    "ipv4_dst": "ipv4_dst_nxm",
}


@functools.lru_cache(maxsize=1 << 16)  # every change of targets fingerprints every flow again
def fingerprint(f: Flow) -> int:
    """The cookie of flow f: a hash of everything it is (table, priority, match,
    instructions, timeouts), the same in every controller process. Never 0 (a flow nobody
    named) nor all ones (reserved by OpenFlow)."""
    digest = hashlib.blake2b(repr(f).encode(), digest_size=8).digest()
    cookie = int.from_bytes(digest, "big") % (ALL_COOKIE_BITS - 1) + 1
    if is_learned_cookie(cookie):
        # Never the tag of the switch's learned flows (which FlowSync leaves alone).
        cookie ^= 1 << 63
    return cookie


def to_actions(parser: Any, ofp: Any, actions: Iterable[Any]) -> list[Any]:
    """os-ken action objects for a sequence of plain actions."""
    out = []
    for a in actions:
        if isinstance(a, Output):
            out.append(parser.OFPActionOutput(a.port, 0))
        elif isinstance(a, SetField):
            out.append(parser.OFPActionSetField(**{a.field: a.value}))
        elif isinstance(a, DecTtl):
            out.append(parser.OFPActionDecNwTtl())
        elif isinstance(a, ToController):
            out.append(parser.OFPActionOutput(ofp.OFPP_CONTROLLER, a.max_len))
        elif isinstance(a, Group):
            out.append(parser.OFPActionGroup(a.group_id))
        elif isinstance(a, Ct):
            inner = [parser.OFPActionSetField(ct_label=a.label)] if a.label is not None else []
            inner += to_actions(parser, ofp, a.actions)  # exec(...): into ct_label, ct_mark
            if a.nat:
                inner.append(_nat(parser, a.nat))
            out.append(
                parser.NXActionCT(
                    flags=NX_CT_F_COMMIT if a.commit else 0,
                    zone_src="",
                    zone_ofs_nbits=a.zone,
                    recirc_table=NX_CT_RECIRC_NONE if a.table is None else a.table,
                    alg=0,
                    actions=inner,
                )
            )
        elif isinstance(a, Move):
            out.append(
                parser.NXActionRegMove(
                    src_field=a.src,
                    dst_field=a.dst,
                    n_bits=a.n_bits,
                    src_ofs=a.src_ofs,
                    dst_ofs=a.dst_ofs,
                )
            )
        elif isinstance(a, Multipath):
            from os_ken.ofproto import nicira_ext

            out.append(
                parser.NXActionMultipath(
                    fields=MULTIPATH_FIELDS[a.fields],
                    basis=a.basis,
                    algorithm=NX_MP_ALG_MODULO_N,
                    max_link=a.n_links - 1,
                    arg=0,
                    ofs_nbits=nicira_ext.ofs_nbits(0, 31),
                    dst=a.dst,
                )
            )
        elif isinstance(a, Resubmit):
            out.append(parser.NXActionResubmitTable(in_port=NX_RESUBMIT_IN_PORT, table_id=a.table))
        elif isinstance(a, Learn):
            out.append(
                parser.NXActionLearn(
                    table_id=a.table,
                    specs=[_learn_spec(parser, spec) for spec in a.specs],
                    idle_timeout=a.idle_timeout,
                    priority=a.priority,
                    cookie=a.cookie,
                )
            )
        else:  # pragma: no cover - a programming error, not user input
            raise TypeError(f"unknown action {a!r}")
    return out


def _learn_spec(parser: Any, spec: LearnMatch | LearnLoad) -> Any:
    """One flow spec of a learn action: the learned flow's match or load."""
    src: Any = (LEARN_FIELDS.get(spec.src, spec.src), 0) if spec.src else spec.value
    dst = (LEARN_FIELDS.get(spec.dst, spec.dst), 0)
    kind = parser.NXFlowSpecMatch if isinstance(spec, LearnMatch) else parser.NXFlowSpecLoad
    return kind(src=src, dst=dst, n_bits=spec.n_bits)


def _nat(parser: Any, nat: Nat) -> Any:
    if nat.kind is None:
        return parser.NXActionNAT(flags=0)
    kwargs: dict[str, Any] = {"flags": NX_NAT_F_SRC if nat.kind == "src" else NX_NAT_F_DST}
    if nat.ip:
        kwargs.update(range_ipv4_min=nat.ip, range_ipv4_max=nat.ip)
    if nat.port_min is not None:
        kwargs.update(
            range_proto_min=nat.port_min,
            range_proto_max=nat.port_max if nat.port_max is not None else nat.port_min,
        )
    return parser.NXActionNAT(**kwargs)


# OVS checks a match field's prerequisites against the fields before it, and os-ken would put
# Nicira fields (tcp_flags_nxm, ...) first: order the fields ourselves.
_FIELD_ORDER = (
    "in_port",
    "eth_src",
    "eth_dst",
    "eth_type",
    "arp_op",
    "arp_sha",
    "arp_tha",
    "arp_spa",
    "arp_tpa",
    "ip_proto",
    "ipv4_src",
    "ipv4_dst",
    "tcp_src",
    "tcp_dst",
    "udp_src",
    "udp_dst",
    "icmpv4_type",
    "icmpv4_code",
    "tcp_flags_nxm",
    "ct_state",
)


def _rank(name: str) -> tuple[int, str]:
    return (_FIELD_ORDER.index(name) if name in _FIELD_ORDER else len(_FIELD_ORDER), name)


def to_match(parser: Any, match: Any) -> Any:
    """An OFPMatch with prerequisite fields before the fields that need them."""
    fields = sorted(dict(match).items(), key=lambda kv: _rank(kv[0]))
    return parser.OFPMatch(_ordered_fields=fields)


def flow_mod(datapath: Any, f: Flow) -> Any:
    """OFPFlowMod adding flow f (replacing in place an entry of the same table, priority and
    match), with its fingerprint as cookie."""
    ofp, parser = datapath.ofproto, datapath.ofproto_parser
    inst = []
    if f.actions:
        inst.append(
            parser.OFPInstructionActions(
                ofp.OFPIT_APPLY_ACTIONS, to_actions(parser, ofp, f.actions)
            )
        )
    if f.metadata is not None:
        inst.append(parser.OFPInstructionWriteMetadata(*f.metadata))
    if f.goto is not None:
        inst.append(parser.OFPInstructionGotoTable(f.goto))
    return parser.OFPFlowMod(
        datapath,
        cookie=fingerprint(f),
        table_id=f.table,
        priority=f.priority,
        match=to_match(parser, f.match),
        instructions=inst,
        idle_timeout=f.idle_timeout,
        hard_timeout=f.hard_timeout,
        command=ofp.OFPFC_ADD,
    )


def delete_cookie(datapath: Any, table: int, cookie: int) -> Any:
    """OFPFlowMod deleting the entries of `table` that carry exactly `cookie`."""
    ofp, parser = datapath.ofproto, datapath.ofproto_parser
    return parser.OFPFlowMod(
        datapath,
        cookie=cookie,
        cookie_mask=ALL_COOKIE_BITS,
        table_id=table,
        command=ofp.OFPFC_DELETE,
        out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY,
        match=parser.OFPMatch(),
    )


def group_mod(datapath: Any, g: SelectGroup) -> Any:
    """OFPGroupMod adding select group g, or replacing the group of its id."""
    ofp, parser = datapath.ofproto, datapath.ofproto_parser
    buckets = [
        parser.OFPBucket(
            weight=1,
            watch_port=ofp.OFPP_ANY,
            watch_group=ofp.OFPG_ANY,
            actions=to_actions(parser, ofp, actions),
        )
        for actions in g.buckets
    ]
    return parser.OFPGroupMod(datapath, OFPGC_ADD_OR_MOD, ofp.OFPGT_SELECT, g.group_id, buckets)


def delete_group(datapath: Any, group_id: int) -> Any:
    """OFPGroupMod deleting group `group_id` (after the flows that use it are gone)."""
    ofp, parser = datapath.ofproto, datapath.ofproto_parser
    return parser.OFPGroupMod(datapath, ofp.OFPGC_DELETE, ofp.OFPGT_SELECT, group_id, [])


def group_fingerprint(g: SelectGroup) -> int:
    return int.from_bytes(hashlib.blake2b(repr(g).encode(), digest_size=8).digest(), "big")


class FlowSync:
    """Keeps each switch's flow table equal to a desired list of flows, by difference.

    A switch is known once `take_over` has been told what it holds (its flow statistics:
    cookie and table of every entry); `messages` then turns desired flows into flow-mods."""

    def __init__(self) -> None:
        self.installed: dict[int, dict[int, int]] = {}  # dpid -> {cookie: table}
        # dpid -> {group id: fingerprint} of the groups sent since the takeover (a switch's
        # groups are not read: each wanted one is sent once after a takeover, as add-or-modify).
        self.groups: dict[int, dict[int, int]] = {}

    def take_over(self, dpid: int, held: Iterable[tuple[int, int]]) -> None:
        """Start from what switch `dpid` holds: (cookie, table) of each of its entries. Flows
        the switch learned itself (GWLB stickiness, testbed.controllers.gwlb) are not the
        controller's: never compared, never deleted."""
        self.installed[dpid] = {c: t for c, t in held if not is_learned_cookie(c)}
        self.groups[dpid] = {}

    def knows(self, dpid: int) -> bool:
        return dpid in self.installed

    def forget(self, dpid: int) -> None:
        """The switch went away: what it holds must be read again when it comes back."""
        self.installed.pop(dpid, None)
        self.groups.pop(dpid, None)

    def messages(
        self, datapath: Any, desired: Iterable[Flow], groups: Iterable[SelectGroup] = ()
    ) -> list[Any]:
        """Group- and flow-mods that turn what `datapath` holds into `desired` (and `groups`):
        groups new or changed first (a flow may name them), flow additions (an entry replaced
        in place never goes missing), deletions by cookie, then groups no longer wanted.
        KeyError if the switch was not taken over."""
        have = self.installed[datapath.id]
        have_groups = self.groups[datapath.id]
        want = {fingerprint(f): f for f in desired}
        want_groups = {g.group_id: g for g in groups}
        marks = {gid: group_fingerprint(g) for gid, g in want_groups.items()}
        msgs = [
            group_mod(datapath, g)
            for gid, g in want_groups.items()
            if have_groups.get(gid) != marks[gid]
        ]
        msgs += [flow_mod(datapath, f) for cookie, f in want.items() if cookie not in have]
        msgs += [
            delete_cookie(datapath, table, cookie)
            for cookie, table in have.items()
            if cookie not in want
        ]
        msgs += [delete_group(datapath, gid) for gid in have_groups if gid not in want_groups]
        self.installed[datapath.id] = {cookie: f.table for cookie, f in want.items()}
        self.groups[datapath.id] = marks
        return msgs
