"""A GWLB node's view of the switch that steers for it (the switch datapath, issue 15).

With the switch datapath the controller programs the node's work into Open vSwitch (the
tables below, numbered as in testbed.controllers.flows, which this layer does not import):
conntrack remembers each flow's appliance in its label (bits 0..31 the appliance's IPv4
address, 32..63 the flow cookie), per-appliance flows count what went where. The node reads
them back with ovs-ofctl / ovs-appctl, which this module parses:

    parse_flows(text)       ovs-ofctl -O OpenFlow13 dump-flows BRIDGE table=N
    parse_conntrack(text)   ovs-appctl dpctl/dump-conntrack -s zone=Z
    Accumulator             flow counters summed across flow replacement (a controller that
                            rewrites a flow, or removes a failed appliance's, starts it at 0)
    SwitchCounters          per-appliance and per-endpoint totals of the GWLB tables
    learned_pairs(flows)    the 2-/3-tuple stickiness table (learned pairs -> appliance)

Pure functions and small classes: the node runs the commands (read_switch below is the one
place that does).
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# Table numbers of testbed.controllers.flows (a unit test checks that they agree).
TABLE_GWLB_CT = 60  # ct(zone) per endpoint: every packet from the endpoints
TABLE_GWLB_STATE = 61  # +est/+rel/+new/+inv; prio 300 per failed appliance (rebalance)
TABLE_GWLB_STICKY = 65  # learned 2-/3-tuple pairs -> appliance
TABLE_GWLB_COMMIT = 66  # per appliance and commit kind: new flows, rehashed in
TABLE_GWLB_TX = 67  # per appliance: encapsulated towards it
TABLE_GWLB_RX = 68  # per appliance: back from it (tun_src)
COUNTER_TABLES = (TABLE_GWLB_CT, TABLE_GWLB_STATE, TABLE_GWLB_COMMIT, TABLE_GWLB_TX, TABLE_GWLB_RX)
COMMIT_NEW, COMMIT_REHASH = 1, 2  # reg7
COOKIE_FLAG = 0x80000000  # set in every flow cookie the switch makes
# conntrack of the userspace datapath: a UDP/ICMP entry that saw a reply is kept for 30 s
# after its last packet, a one-way one for 60 s (OVS's default timeouts)
REPLY_SEEN_TIMEOUT_S = 30
# TCP states that follow an established connection (TIME_WAIT and CLOSED also follow a
# refused one, so they say nothing by themselves)
AFTER_ESTABLISHED = frozenset(
    ("ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING", "LAST_ACK")
)
PROTO_NUMBERS = {"icmp": 1, "tcp": 6, "udp": 17, "sctp": 132}
STAT_KEYS = frozenset(
    (
        "cookie",
        "duration",
        "table",
        "n_packets",
        "n_bytes",
        "priority",
        "idle_timeout",
        "hard_timeout",
        "idle_age",
        "hard_age",
        "importance",
        "reset_counts",
        "send_flow_rem",
        "check_overlap",
        "no_packet_counts",
        "no_byte_counts",
        "out_port",
        "out_group",
    )
)


# ---- ovs-ofctl dump-flows --------------------------------------------------------------------


@dataclass(frozen=True)
class FlowStat:
    """One flow of a dump: where it is, its match (field -> value text, "" for flags such as
    "ip"), its actions and counters."""

    table: int
    priority: int
    match: dict[str, str]
    actions: str
    cookie: int = 0
    duration_s: float = 0.0
    packets: int = 0
    bytes: int = 0

    @property
    def identity(self) -> tuple[int, int, str]:
        """What stays the same when a controller replaces the flow: table, priority, match."""
        return (
            self.table,
            self.priority,
            ",".join(f"{k}={v}" for k, v in sorted(self.match.items())),
        )


def _split_top(text: str) -> list[str]:
    """Comma-separated parts, commas inside parentheses kept."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def parse_flows(text: str) -> list[FlowStat]:
    """The flows of `ovs-ofctl -O OpenFlow13 dump-flows` output (header lines skipped)."""
    flows = []
    for line in text.splitlines():
        line = line.strip()
        if not line or " actions=" not in f" {line}" or line.startswith(("OFPST_", "NXST_")):
            continue
        head, _, actions = line.partition("actions=")
        stats: dict[str, str] = {}
        match: dict[str, str] = {}
        for part in _split_top(head.replace(", ", ",").replace(" ", ",")):
            key, sep, value = part.partition("=")
            if key in STAT_KEYS:
                stats[key] = value
            else:
                match[key] = value if sep else ""
        flows.append(
            FlowStat(
                table=int(stats.get("table", 0)),
                priority=int(stats.get("priority", 32768)),
                match=match,
                actions=actions.strip(),
                cookie=int(stats.get("cookie", "0"), 0),
                duration_s=float(stats.get("duration", "0s").rstrip("s")),
                packets=int(stats.get("n_packets", 0)),
                bytes=int(stats.get("n_bytes", 0)),
            )
        )
    return flows


def field_value(text: str) -> tuple[int, int | None]:
    """A match value as (value, mask or None): "0xa000104", "0xa00f105/0xffffffff", "5",
    "10.0.1.4", "10.0.1.0/24"."""
    value, _, mask = text.partition("/")

    def number(s: str) -> int:
        if s.count(".") == 3:
            return int(ipaddress.IPv4Address(s))
        return int(s, 0)

    if not mask:
        return number(value), None
    if value.count(".") == 3 and mask.isdigit():  # prefix length
        return number(value), (0xFFFFFFFF << (32 - int(mask))) & 0xFFFFFFFF
    return number(value), number(mask)


def match_int(flow: FlowStat, name: str) -> int | None:
    """A match field as a number (None: not matched); a masked value keeps its value bits."""
    text = flow.match.get(name)
    if text is None or text == "":
        return None
    value, mask = field_value(text)
    return value if mask is None else value & mask


def ip_text(value: int) -> str:
    return str(ipaddress.IPv4Address(value & 0xFFFFFFFF))


_LOAD = re.compile(r"(?:load|set_field):(0x[0-9a-fA-F]+|\d+)->([A-Za-z0-9_]+)(?:\[([0-9.]*)\])?")


def loads(actions: str) -> dict[str, int]:
    """Constants an action list loads into fields: {"reg1": ..., "reg2": ...} (NXM names
    shortened: NXM_NX_REG1 -> reg1; only whole fields and [a..b] slices at bit 0)."""
    out = {}
    for value, name, bits in _LOAD.findall(actions):
        short = name.lower().removeprefix("nxm_nx_").removeprefix("nxm_of_")
        if bits and not (bits.startswith("0..") or bits == "0"):
            continue
        out[short] = int(value, 0)
    return out


# ---- counters across polls -------------------------------------------------------------


class Accumulator:
    """Counters of flows that come, go and are replaced: a flow's total is what every flow with
    its identity counted since the first poll. A flow whose counters went down was replaced
    between two polls (deleted and added: OVS keeps the counters of a flow that an add or
    modify replaces, whatever its new cookie or duration, unless reset_counts); what a replaced
    or removed flow counted after the last poll is lost (at most one poll interval)."""

    def __init__(self) -> None:
        self.banked: dict[tuple[int, int, str], tuple[int, int]] = {}
        self.present: dict[tuple[int, int, str], FlowStat] = {}  # at the last poll
        self.seen: dict[tuple[int, int, str], FlowStat] = {}  # last sight of every identity
        self.replaced = 0

    def update(self, flows: Iterable[FlowStat], tables: Iterable[int] | None = None) -> None:
        """Take one poll of the flows of `tables` (None: the tables the flows are in); flows of
        tables not polled keep their last counts."""
        flows = list(flows)
        polled = set(tables) if tables is not None else {f.table for f in flows}
        now = {}
        for f in flows:
            ident = f.identity
            now[ident] = f
            old = self.present.get(ident)
            if old is not None and (f.packets < old.packets or f.bytes < old.bytes):
                self._bank(ident, old)
                self.replaced += 1
        for ident, old in list(self.present.items()):
            if ident[0] in polled and ident not in now:
                self._bank(ident, old)
                del self.present[ident]
        self.present.update(now)
        self.seen.update(now)

    def _bank(self, ident: tuple[int, int, str], old: FlowStat) -> None:
        p, b = self.banked.get(ident, (0, 0))
        self.banked[ident] = (p + old.packets, b + old.bytes)

    def totals(self) -> list[tuple[FlowStat, int, int]]:
        """(flow as last seen, total packets, total bytes) of every identity ever seen."""
        out = []
        for ident, last in self.seen.items():
            p, b = self.banked.get(ident, (0, 0))
            f = self.present.get(ident)
            if f is not None:
                p, b = p + f.packets, b + f.bytes
            out.append((last, p, b))
        return out


# ---- what the tables say -------------------------------------------------------------------


@dataclass
class ApplianceCounters:
    """One appliance's totals on the switch (keyed by its address)."""

    new_flows: int = 0
    rehashed_in: int = 0
    rehashed_out: int = 0  # packets of its flows re-picked: one per flow moved
    tx_packets: int = 0
    tx_bytes: int = 0
    rx_packets: int = 0
    rx_bytes: int = 0


@dataclass
class SwitchCounters:
    """Totals of the GWLB tables of one switch: per endpoint number (reg6) the packets that
    came in, per appliance address what was counted for it, and the conntrack states seen."""

    packets_in: dict[int, int] = field(default_factory=dict)
    bytes_in: dict[int, int] = field(default_factory=dict)
    appliances: dict[str, ApplianceCounters] = field(default_factory=dict)
    states: dict[str, int] = field(default_factory=dict)  # packets per state_kind()

    def appliance(self, ip: str) -> ApplianceCounters:
        return self.appliances.setdefault(ip, ApplianceCounters())


def state_kind(f: FlowStat) -> str:
    """What a flow of the state table counts: "rehash" (a failed appliance's label: its ct_label
    match is the appliance's address, mask 0xffffffff), "known" (conntrack knows the flow's
    choice, or it is established/related), "new", or "other" (untracked choice: +inv)."""
    label = f.match.get("ct_label")
    if label:
        _, mask = field_value(label)
        return "rehash" if mask == 0xFFFFFFFF else "known"
    state = f.match.get("ct_state", "")
    if "+est" in state or "+rel" in state:
        return "known"
    return "new" if "+new" in state else "other"


def switch_counters(totals: Iterable[tuple[FlowStat, int, int]]) -> SwitchCounters:
    """SwitchCounters from Accumulator.totals() of the GWLB tables."""
    out = SwitchCounters()
    for f, packets, nbytes in totals:
        if f.table == TABLE_GWLB_CT:
            n = match_int(f, "reg6") or 0
            out.packets_in[n] = out.packets_in.get(n, 0) + packets
            out.bytes_in[n] = out.bytes_in.get(n, 0) + nbytes
        elif f.table == TABLE_GWLB_STATE:
            kind = state_kind(f)
            out.states[kind] = out.states.get(kind, 0) + packets
            if kind == "rehash":
                out.appliance(ip_text(match_int(f, "ct_label") or 0)).rehashed_out += packets
        elif f.table == TABLE_GWLB_COMMIT:
            ip, commit = match_int(f, "reg1"), match_int(f, "reg7")
            if ip is None:
                continue
            a = out.appliance(ip_text(ip))
            if commit == COMMIT_NEW:
                a.new_flows += packets
            elif commit == COMMIT_REHASH:
                a.rehashed_in += packets
        elif f.table == TABLE_GWLB_TX:
            ip = match_int(f, "reg1")
            if ip is not None:
                a = out.appliance(ip_text(ip))
                a.tx_packets += packets
                a.tx_bytes += nbytes
        elif f.table == TABLE_GWLB_RX:
            ip = match_int(f, "tun_src")
            if ip is not None:
                a = out.appliance(ip_text(ip))
                a.rx_packets += packets
                a.rx_bytes += nbytes
    return out


@dataclass(frozen=True)
class LearnedPair:
    """A learned 2-/3-tuple flow (one orientation of it): addresses, protocol (None for the
    2-tuple), appliance address, flow cookie, idle seconds (OVS's idle_age is not in OF1.3
    dumps: None)."""

    src: str
    dst: str
    proto: int | None
    appliance_ip: str
    cookie: int
    duration_s: float
    packets: int


def learned_pairs(flows: Iterable[FlowStat]) -> list[LearnedPair]:
    """The learned flows of the stickiness table: those that load an appliance (reg1)."""
    out = []
    for f in flows:
        if f.table != TABLE_GWLB_STICKY:
            continue
        values = loads(f.actions)
        src, dst = f.match.get("nw_src"), f.match.get("nw_dst")
        if "reg1" not in values or not src or not dst:
            continue
        proto = match_int(f, "nw_proto")
        if proto is None:
            proto = next((n for name, n in PROTO_NUMBERS.items() if name in f.match), None)
        out.append(
            LearnedPair(
                src,
                dst,
                proto,
                ip_text(values["reg1"]),
                values.get("reg2", 0),
                f.duration_s,
                f.packets,
            )
        )
    return out


# ---- ovs-appctl dpctl/dump-conntrack -------------------------------------------------------


@dataclass(frozen=True)
class CtEntry:
    """One conntrack entry: the original direction's tuple, its zone, label (appliance,
    cookie), TCP state and the seconds it has left (with -s)."""

    proto: int
    src: str
    dst: str
    sport: int | None
    dport: int | None
    zone: int
    labels: int
    state: str | None = None  # TCP: ESTABLISHED, SYN_SENT, TIME_WAIT, ...
    timeout: int | None = None
    icmp_id: int | None = None

    @property
    def appliance_ip(self) -> str:
        return ip_text(self.labels & 0xFFFFFFFF)

    @property
    def cookie(self) -> int:
        return (self.labels >> 32) & 0xFFFFFFFF

    @property
    def endpoint_number(self) -> int | None:
        """The endpoint (1-based in plan.endpoints) of a cookie the switch made, else None."""
        if not self.cookie & COOKIE_FLAG:
            return None
        return (self.cookie >> 16) & 0x7FFF

    @property
    def ident(self) -> tuple:
        return (self.zone, self.proto, self.src, self.dst, self.sport, self.dport, self.icmp_id)

    def reply_seen(self) -> bool | None:
        """Whether the flow is established: TCP in ESTABLISHED (or a state only an established
        connection reaches), UDP/ICMP with a timeout only a reply gives; None when the
        entry does not say (TCP TIME_WAIT, or no timeout in the dump)."""
        if self.proto == 6:
            if self.state in AFTER_ESTABLISHED:
                return True
            if self.state in ("SYN_SENT", "SYN_RECV", "LISTEN", "SYN_SENT2"):
                return False
            return None
        if self.timeout is None:
            return None
        return self.timeout <= REPLY_SEEN_TIMEOUT_S


def _tuple(text: str) -> dict[str, str]:
    return dict(p.split("=", 1) for p in text.split(",") if "=" in p)


_CT = re.compile(r"^(\w+),orig=\(([^)]*)\),reply=\(([^)]*)\),(.*)$")


def parse_conntrack(text: str) -> list[CtEntry]:
    """Entries of `ovs-appctl dpctl/dump-conntrack [-s] [-m]` (IPv4 only; other lines
    skipped)."""
    out = []
    for line in text.splitlines():
        m = _CT.match(line.strip())
        if not m:
            continue
        proto_name, orig_text, _reply, rest = m.groups()
        orig = _tuple(orig_text)
        if "src" not in orig or ":" in orig["src"]:
            continue
        proto = PROTO_NUMBERS.get(proto_name)
        if proto is None:
            proto = int(orig.get("proto", 0) or 0)
        info: dict[str, str] = {}
        protoinfo = ""
        if "protoinfo=(" in rest:
            rest, _, protoinfo = rest.partition("protoinfo=(")
        for part in rest.split(","):
            key, _, value = part.partition("=")
            if key:
                info[key] = value
        pinfo = _tuple(protoinfo.rstrip(")"))
        state = pinfo.get("state") or pinfo.get("state_orig")
        out.append(
            CtEntry(
                proto=proto,
                src=orig["src"],
                dst=orig["dst"],
                sport=int(orig["sport"]) if "sport" in orig else None,
                dport=int(orig["dport"]) if "dport" in orig else None,
                zone=int(info.get("zone", 0)),
                labels=int(info.get("labels", "0"), 0),
                state=state,
                timeout=int(info["timeout"]) if "timeout" in info else None,
                icmp_id=int(orig["id"]) if "id" in orig else None,
            )
        )
    return out


# ---- reading the switch ------------------------------------------------------------------------


@dataclass(frozen=True)
class SwitchRead:
    """One read of the switch: flows of the tables asked for and conntrack of the zones."""

    flows: list[FlowStat]
    tables: tuple[int, ...]
    conntrack: list[CtEntry]
    time: float
    took_s: float
    errors: tuple[str, ...] = ()


def _run(argv: Sequence[str], timeout: float) -> tuple[str, str | None]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "", f"{argv[0]} {argv[-1]}: {exc}"
    if proc.returncode != 0:
        return "", f"{' '.join(argv[:2])} ... {argv[-1]}: {proc.stderr.strip()[:200]}"
    return proc.stdout, None


def read_switch(
    bridge: str, tables: Sequence[int], zones: Sequence[int], timeout: float = 5.0
) -> SwitchRead:
    """Dump the flows of `tables` on `bridge` and the conntrack entries of `zones` (labels and
    timeouts: -s)."""
    start = time.monotonic()
    errors = []
    flows: list[FlowStat] = []
    read_tables = []
    for table in tables:
        out, err = _run(
            ["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", bridge, f"table={table}"], timeout
        )
        if err:
            errors.append(err)
            continue
        read_tables.append(table)
        flows += parse_flows(out)
    entries: list[CtEntry] = []
    for zone in zones:
        out, err = _run(["ovs-appctl", "dpctl/dump-conntrack", "-s", f"zone={zone}"], timeout)
        if err:
            errors.append(err)
            continue
        entries += parse_conntrack(out)
    return SwitchRead(
        flows, tuple(read_tables), entries, time.time(), time.monotonic() - start, tuple(errors)
    )
