"""Turns plain Flow values into os-ken OpenFlow 1.3 messages and keeps switches in sync.

`FlowSync` remembers what it installed on each switch so that a change of desired state
becomes a minimal set of flow-mods (add the new, delete what is gone) instead of a wipe,
which would disturb established connections.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from testbed.controllers.flows import (
    MULTIPATH_FIELDS,
    Ct,
    DecTtl,
    Flow,
    Group,
    Multipath,
    Nat,
    Output,
    SetField,
    ToController,
)

NX_CT_F_COMMIT = 1
NX_NAT_F_SRC, NX_NAT_F_DST = 1, 2
NX_MP_ALG_MODULO_N = 0


def _key(f: Flow) -> tuple[int, int, tuple[tuple[str, Any], ...]]:
    return (f.table, f.priority, f.match)


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
            out.append(
                parser.NXActionCT(
                    flags=NX_CT_F_COMMIT if a.commit else 0,
                    zone_src="",
                    zone_ofs_nbits=a.zone,
                    recirc_table=a.table,
                    alg=0,
                    actions=[_nat(parser, a.nat)] if a.nat else [],
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
        else:  # pragma: no cover - a programming error, not user input
            raise TypeError(f"unknown action {a!r}")
    return out


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
    "arp_spa",
    "arp_tpa",
    "ip_proto",
    "ipv4_src",
    "ipv4_dst",
    "tcp_src",
    "tcp_dst",
    "udp_src",
    "udp_dst",
    "tcp_flags_nxm",
)


def _rank(name: str) -> tuple[int, str]:
    return (_FIELD_ORDER.index(name) if name in _FIELD_ORDER else len(_FIELD_ORDER), name)


def to_match(parser: Any, match: Any) -> Any:
    """An OFPMatch with prerequisite fields before the fields that need them."""
    fields = sorted(dict(match).items(), key=lambda kv: _rank(kv[0]))
    return parser.OFPMatch(_ordered_fields=fields)


def flow_mod(datapath: Any, f: Flow, delete: bool = False) -> Any:
    """OFPFlowMod adding (or strictly deleting) flow f."""
    ofp, parser = datapath.ofproto, datapath.ofproto_parser
    match = to_match(parser, f.match)
    if delete:
        return parser.OFPFlowMod(
            datapath,
            table_id=f.table,
            priority=f.priority,
            match=match,
            command=ofp.OFPFC_DELETE_STRICT,
            out_port=ofp.OFPP_ANY,
            out_group=ofp.OFPG_ANY,
        )
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
        cookie=f.cookie,
        table_id=f.table,
        priority=f.priority,
        match=match,
        instructions=inst,
        idle_timeout=f.idle_timeout,
        hard_timeout=f.hard_timeout,
        command=ofp.OFPFC_ADD,
    )


def wipe(datapath: Any) -> list[Any]:
    """Messages that delete every flow and group of a switch (used when it first connects)."""
    ofp, parser = datapath.ofproto, datapath.ofproto_parser
    return [
        parser.OFPFlowMod(
            datapath,
            table_id=ofp.OFPTT_ALL,
            command=ofp.OFPFC_DELETE,
            out_port=ofp.OFPP_ANY,
            out_group=ofp.OFPG_ANY,
            match=parser.OFPMatch(),
        ),
        parser.OFPGroupMod(datapath, command=ofp.OFPGC_DELETE, group_id=ofp.OFPG_ALL),
    ]


class FlowSync:
    """Keeps each switch's flow table equal to a desired list of flows, by difference."""

    def __init__(self) -> None:
        self.installed: dict[int, dict[tuple, Flow]] = {}

    def forget(self, dpid: int) -> None:
        self.installed.pop(dpid, None)

    def messages(self, datapath: Any, desired: Iterable[Flow]) -> list[Any]:
        """Flow-mods that turn what is installed on `datapath` into `desired`."""
        want = {_key(f): f for f in desired}
        have = self.installed.get(datapath.id)
        msgs = []
        if have is None:
            msgs += wipe(datapath)
            have = {}
        for key, f in have.items():
            if key not in want:
                msgs.append(flow_mod(datapath, f, delete=True))
        for key, f in want.items():
            if have.get(key) != f:
                # OFPFC_ADD with the same match and priority replaces the old entry in place.
                msgs.append(flow_mod(datapath, f))
        self.installed[datapath.id] = want
        return msgs
