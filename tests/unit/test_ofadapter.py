"""controllers/ofadapter.py against os-ken's real OpenFlow 1.3 library: every kind of flow the
controllers produce becomes an OFPFlowMod, is serialized to wire bytes, parsed back by the
same library, and turned back into the plain Flow it came from (match, instructions, every
action with its arguments: Nicira ct with NAT and labels, multipath, register moves).
FlowSync's use of these messages is tested in test_flow_sync.py.

No switch is needed: os-ken's ProtocolDesc(version) carries the ofproto module and the
parser (what a Datapath carries), which is all that building and serializing use.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
from os_ken.ofproto import nicira_ext, ofproto_parser, ofproto_protocol, ofproto_v1_3

from testbed.controllers.flows import (
    MULTIPATH_FIELDS,
    Ct,
    DecTtl,
    Flow,
    Group,
    Move,
    Multipath,
    Nat,
    Output,
    SetField,
    ToController,
    flow,
)
from testbed.controllers.forwarding import Forwarding
from testbed.controllers.nlb import NlbLogic, RuntimeTarget
from testbed.controllers.ofadapter import (
    ALL_COOKIE_BITS,
    NX_CT_F_COMMIT,
    NX_CT_RECIRC_NONE,
    NX_MP_ALG_MODULO_N,
    NX_NAT_F_DST,
    NX_NAT_F_SRC,
    delete_cookie,
    fingerprint,
    flow_mod,
)
from testbed.plan.network import build_plan
from tests.handmade import two_az_model
from tests.nlb_fixture import TARGETS, nlb_plan
from tests.ports_fixture import nat_plan, with_interfaces

OFP = ofproto_v1_3


class Switch(ofproto_protocol.ProtocolDesc):
    """What ofadapter needs of a datapath: ofproto, ofproto_parser (from os-ken) and an id."""

    def __init__(self, dpid: int = 1) -> None:
        super().__init__(OFP.OFP_VERSION)
        self.id = dpid


PARSER_MOD = Switch().ofproto_parser


def serialized(msg: Any) -> bytes:
    """The wire bytes of `msg`, as os-ken would send them."""
    msg.set_xid(0x1234)
    msg.serialize()
    data = bytes(msg.buf)
    version, _msg_type, msg_len, xid = ofproto_parser.header(data)
    assert (version, msg_len, xid) == (OFP.OFP_VERSION, len(data), 0x1234)
    return data


def wire(msg: Any) -> Any:
    """Serialize `msg` and parse the bytes back with os-ken."""
    data = serialized(msg)
    version, msg_type, msg_len, xid = ofproto_parser.header(data)
    back = ofproto_parser.msg(msg.datapath, version, msg_type, msg_len, xid, data)
    assert back is not None, f"os-ken could not parse its own {type(msg).__name__}"  # it logs why
    return back


# ---- from parsed os-ken objects back to plain values ------------------------------------------
FIELDS_BY_NUMBER = {v: k for k, v in MULTIPATH_FIELDS.items()}


def plain_nat(action: Any) -> Nat:
    assert isinstance(action, PARSER_MOD.NXActionNAT), action
    if action.flags == 0:
        return Nat()
    kind = {NX_NAT_F_SRC: "src", NX_NAT_F_DST: "dst"}[action.flags]
    ip = action.range_ipv4_min or None
    if ip is not None:
        assert action.range_ipv4_max == ip
    pmin = action.range_proto_min
    pmax = action.range_proto_max
    return Nat(kind, ip, pmin, pmax)


def plain_action(parser: Any, a: Any) -> Any:
    if isinstance(a, parser.OFPActionOutput):
        if a.port == OFP.OFPP_CONTROLLER:
            return ToController(a.max_len)
        assert a.max_len == 0
        return Output(a.port)
    if isinstance(a, parser.OFPActionSetField):
        return SetField(a.key, a.value)
    if isinstance(a, parser.OFPActionDecNwTtl):
        return DecTtl()
    if isinstance(a, parser.OFPActionGroup):
        return Group(a.group_id)
    if isinstance(a, parser.NXActionCT):
        assert a.flags in (0, NX_CT_F_COMMIT)
        assert (a.zone_src, a.alg) in (("", 0), (None, 0))
        inner = list(a.actions)
        label = None
        if inner and isinstance(inner[0], parser.OFPActionSetField):
            assert inner[0].key == "ct_label"
            label = inner.pop(0).value
        assert len(inner) <= 1
        nat = plain_nat(inner[0]) if inner else None
        table = None if a.recirc_table == NX_CT_RECIRC_NONE else a.recirc_table
        return Ct(a.zone_ofs_nbits, table, a.flags == NX_CT_F_COMMIT, nat, label)
    if isinstance(a, parser.NXActionRegMove):
        return Move(a.src_field, a.dst_field, a.n_bits, a.src_ofs, a.dst_ofs)
    if isinstance(a, parser.NXActionMultipath):
        assert a.algorithm == NX_MP_ALG_MODULO_N
        assert a.ofs_nbits == nicira_ext.ofs_nbits(0, 31)
        assert a.arg == 0
        return Multipath(FIELDS_BY_NUMBER[a.fields], a.basis, a.max_link + 1, a.dst)
    raise AssertionError(f"unexpected action {a!r}")


def plain_flow(mod: Any) -> Flow:
    """The Flow a parsed OFPFlowMod stands for."""
    parser = PARSER_MOD
    actions: tuple = ()
    metadata = goto = None
    for inst in mod.instructions:
        if isinstance(inst, parser.OFPInstructionActions):
            assert inst.type == OFP.OFPIT_APPLY_ACTIONS
            actions = tuple(plain_action(parser, a) for a in inst.actions)
        elif isinstance(inst, parser.OFPInstructionWriteMetadata):
            metadata = (inst.metadata, inst.metadata_mask)
        elif isinstance(inst, parser.OFPInstructionGotoTable):
            goto = inst.table_id
        else:
            raise AssertionError(f"unexpected instruction {inst!r}")
    return Flow(
        mod.table_id,
        mod.priority,
        tuple(sorted(mod.match.items())),
        actions,
        goto,
        metadata,
        mod.idle_timeout,
        mod.hard_timeout,
    )


def normal(f: Flow) -> Flow:
    """A Flow as the wire gives it back: addresses in the library's spelling."""
    return Flow(
        f.table,
        f.priority,
        tuple(sorted((k, _value(v)) for k, v in f.match)),
        tuple(_action(a) for a in f.actions),
        f.goto,
        f.metadata,
        f.idle_timeout,
        f.hard_timeout,
    )


def _action(a: Any) -> Any:
    if isinstance(a, SetField):
        return SetField(a.field, _value(a.value))
    if isinstance(a, Ct) and a.nat and a.nat.port_min is not None and a.nat.port_max is None:
        return replace(a, nat=replace(a.nat, port_max=a.nat.port_min))  # a single port
    return a


def _value(v: Any) -> Any:
    if isinstance(v, tuple):
        return tuple(_value(x) for x in v)
    return v.lower() if isinstance(v, str) else v


# ---- the flows the controllers produce -------------------------------------------------------
def controller_flows() -> dict[str, list[Flow]]:
    """Every switch's flows of the hand-made plans: the VPC router alone, and with NLBs of
    every setting (client IP preserved or not, cross-zone, source-IP stickiness, internal,
    targets in every health state)."""
    out = {}
    plain = build_plan(two_az_model(), "t")
    fw = Forwarding(plain)
    out["vpc"] = [f for s in plain.switches for f in fw.flows_for(s.dpid)]
    # With a NAT gateway (route 'nat', a port without source check) and second interfaces.
    nat = with_interfaces(nat_plan())
    fw = Forwarding(nat)
    out["nat+interfaces"] = [f for s in nat.switches for f in fw.flows_for(s.dpid)]
    variants = {
        "nlb": {},
        "nlb-snat": {"preserve": False},
        "nlb-cross-zone": {"cross_zone": True},
        "nlb-source-ip": {"stickiness": "source_ip"},
        "nlb-internal": {"scheme": "internal"},
    }
    for name, kw in variants.items():
        plan = nlb_plan(**kw)
        fw, nlb = Forwarding(plan), NlbLogic(plan, table_size=61)
        states = ("healthy", "unhealthy", "draining")
        for tg in ("TgTcp", "TgUdp"):
            nlb.set_targets(
                "NLB",
                tg,
                [
                    RuntimeTarget(f"{h}:80", ip, 80, az, state)
                    for (h, ip, az), state in zip(TARGETS, states)
                ],
            )
        out[name] = [f for s in plan.switches for f in fw.flows_for(s.dpid) + nlb.flows_for(s.dpid)]
    out["security"] = security_flows()
    return out


def security_flows() -> list[Flow]:
    """Security groups (tcp port ranges, udp, icmp type/code, any protocol, peer groups)
    and network ACLs (allow, deny, ports, icmp) on the hand-made VPC."""
    from testbed.controllers.security import SecurityLogic
    from testbed.plan.network import SgRulePlan
    from tests.security_fixture import acl, entry, group, secured, tcp

    web = group(
        "Web",
        ingress=(
            tcp(80),
            tcp(1024, 65535, cidr="10.0.0.0/16"),
            SgRulePlan(17, 53, 53, cidr="10.0.3.0/24"),
            SgRulePlan(1, 8, 0, cidr="0.0.0.0/0"),
            SgRulePlan(1, 3, -1, cidr="0.0.0.0/0"),
            SgRulePlan(-1, group="Web"),
        ),
        egress=(tcp(443), SgRulePlan(1, -1, -1, cidr="10.0.0.0/8")),
    )
    nacl = acl(
        "A",
        ("PrivA",),
        entry(100, False, 6, "10.0.0.0/16", ports=(80, 80)),
        entry(110, False, 6, "0.0.0.0/0", ports=(1024, 65535)),
        entry(120, False, 1, "0.0.0.0/0", icmp=(8, -1)),
        entry(130, False, 17, "10.0.2.0/24", allow=False, ports=(53, 53)),
        entry(100, True),
    )
    plan = secured((web,), {"WebA2": ("Web",), "WebB2": ("Web",)}, (nacl,))
    logic = SecurityLogic(plan)
    flows = [f for s in plan.switches for f in logic.flows_for(s.dpid)]
    # An NLB with groups: its nodes' check in table 24 (ct_zone tells the two passes apart).
    members = {"NLB-1a": ("Web",), "NLB-1b": ("Web",)}
    nlb = SecurityLogic(secured((web,), members, plan=nlb_plan()))
    return flows + [f for s in plan.switches for f in nlb.flows_for(s.dpid)]


FLOWS = controller_flows()
ALL = [(name, i, f) for name, flows in FLOWS.items() for i, f in enumerate(flows)]


def kinds_of(f: Flow) -> set[str]:
    kinds = {"goto" if f.goto is not None else "no-goto"}
    if f.metadata is not None:
        kinds.add("write-metadata")
    if any(isinstance(v, tuple) for _k, v in f.match):
        kinds.add("masked-match")
    kinds.update(f"match:{k}" for k, _v in f.match if k in ("metadata", "ct_state", "reg0"))
    for a in f.actions:
        kinds.add(type(a).__name__)
        if isinstance(a, Ct):
            kinds.add("ct-commit" if a.commit else "ct")
            kinds.add(f"nat-{a.nat.kind}" if a.nat else "ct-without-nat")
            if a.nat and a.nat.port_min is not None:
                kinds.add("nat-ports")
            if a.label is not None:
                kinds.add("ct-label")
            if a.table is None:
                kinds.add("ct-without-recirculation")
    return kinds


def test_the_hand_made_plans_produce_every_kind_of_flow_the_adapter_handles():
    seen: Counter[str] = Counter()
    for _name, _i, f in ALL:
        seen.update(kinds_of(f))
    wanted = {
        "Output",
        "SetField",
        "DecTtl",
        "ToController",
        "Ct",
        "Move",
        "Multipath",
        "ct",
        "ct-commit",
        "ct-label",
        "ct-without-nat",
        "ct-without-recirculation",
        "nat-src",
        "nat-None",
        "nat-ports",
        "goto",
        "no-goto",
        "write-metadata",
        "masked-match",
        "match:metadata",
        "match:ct_state",
        "match:reg0",
    }
    assert wanted <= set(seen), wanted - set(seen)


def _check_round_trip(f: Flow) -> None:
    sw = Switch()
    back = wire(flow_mod(sw, f))
    assert isinstance(back, PARSER_MOD.OFPFlowMod)
    assert back.command == OFP.OFPFC_ADD
    assert back.buffer_id == OFP.OFP_NO_BUFFER
    assert back.cookie == fingerprint(f)  # what FlowSync knows the flow by
    assert plain_flow(back) == normal(f)


@pytest.mark.parametrize("name", list(FLOWS))
def test_every_controller_flow_survives_the_wire(name):
    flows = FLOWS[name]
    assert flows
    for f in flows:
        try:
            _check_round_trip(f)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {f}: {exc}") from exc


def test_match_fields_go_on_the_wire_after_their_prerequisites():
    # OVS rejects a match whose field comes before the field it depends on.
    needs = {
        "ip_proto": "eth_type",
        "ipv4_src": "eth_type",
        "ipv4_dst": "eth_type",
        "arp_op": "eth_type",
        "arp_tpa": "eth_type",
        "tcp_src": "ip_proto",
        "tcp_dst": "ip_proto",
        "udp_src": "ip_proto",
        "udp_dst": "ip_proto",
        "tcp_flags_nxm": "ip_proto",
        "icmpv4_type": "ip_proto",
        "icmpv4_code": "ip_proto",
    }
    checked = 0
    for _name, _i, f in ALL:
        order = [field for field, _v in wire(flow_mod(Switch(), f)).match._fields2]
        for field, before in needs.items():
            if field in order:
                assert before in order
                assert order.index(before) < order.index(field), (order, f)
                checked += 1
    assert checked > 100


def test_a_delete_by_cookie_names_the_table_and_the_whole_cookie():
    f = next(f for _n, _i, f in ALL if f.actions and f.match)
    back = wire(delete_cookie(Switch(), f.table, fingerprint(f)))
    assert back.command == OFP.OFPFC_DELETE
    assert (back.table_id, back.cookie, back.cookie_mask) == (
        f.table,
        fingerprint(f),
        ALL_COOKIE_BITS,
    )
    assert (back.out_port, back.out_group) == (OFP.OFPP_ANY, OFP.OFPG_ANY)
    assert list(back.match.items()) == []
    assert back.instructions == []


def test_what_no_controller_emits_today_is_right_too():
    # The adapter supports them (groups, destination NAT to an address and port, a ct
    # without a zone register move, timeouts), so they must be right on the wire.
    f = flow(
        3,
        7,
        {"in_port": 5, "eth_dst": "02:00:0A:00:00:04", "ip_proto": 6, "eth_type": 0x0800},
        [
            Ct(9, 4, commit=True, nat=Nat("dst", "10.0.1.4", 8080, 8090), label=7),
            Group(9),
            Move("reg1", "reg2", 16, 0, 16),
            Output(2),
        ],
        idle_timeout=30,
        hard_timeout=60,
    )
    _check_round_trip(f)


def test_security_flows_use_every_match_they_need_on_the_wire():
    seen = set()
    for f in FLOWS["security"]:
        for k, v in f.match:
            seen.add(f"{k}/masked" if isinstance(v, tuple) else k)
    wanted = {
        "ct_state/masked",
        "tcp_dst",
        "tcp_dst/masked",
        "udp_dst",
        "icmpv4_type",
        "icmpv4_code",
        "ipv4_src/masked",
        "ipv4_dst/masked",
        "metadata/masked",
        "ct_zone",
        "in_port",
        "eth_dst",
    }
    assert wanted <= seen, wanted - seen
