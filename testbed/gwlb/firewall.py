"""The appliance's firewall: an nftables table around the template's rules, and its counters.

Decapsulated packets are forwarded by the kernel: with the userspace data paths they come in
through tun-in and leave through tun-out; with the BPF one they come in and leave through
eth0, marked (MARK) by the ingress program, and tun-in's few (the slow path's) are given the
same mark before routing. The forward hook runs the template's rules on them (the "rules"
chain, so a rule's accept or drop decides as it would in any forward chain). Named counters,
visible in `nft list ruleset`:
  inspected  every tunnelled packet that came in
  dropped    packets a rule dropped or rejected (inserted in front of that verdict)
  passed     tunnelled packets that left (back to the GWLB)
A postrouting rule clamps the TCP MSS of flows through the appliance: the GENEVE header and
outer IP/UDP headers (68 bytes) must fit in the appliance's link, as appliances behind
AWS's GWLB clamp it for their own tunnel MTU. `mss_for_mtu` says how much room the link leaves:
on a 1500-byte link (the node datapath) 1392; on the switch datapath's 9001-byte appliance
links (AWS's VPC MTU; Open vSwitch's GENEVE also carries the 14-byte inner Ethernet header
and sets DF) more than any MSS the lab's 1500-byte hosts offer, so nothing is clamped.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence

TABLE = "gwlb_appliance"
FAMILY = "ip"
COUNTERS = ("inspected", "dropped", "passed")
VERDICTS = ("drop", "reject")
TUNNEL_OVERHEAD = 20 + 8 + 40  # outer IPv4, UDP, GENEVE with the GWLB options
INNER_ETHERNET = 14  # GENEVE protocol 0x6558 (Open vSwitch) carries the inner frame's header
DEFAULT_MSS = 1500 - TUNNEL_OVERHEAD - 40  # minus the inner IPv4 + TCP headers
MARK = 0x6081  # the BPF data path's mark of decapsulated packets (appliance_bpf.h)


def mss_for_mtu(mtu: int) -> int:
    """The largest TCP MSS whose packets still fit the appliance's link in GENEVE: AWS's
    format (inner IPv4 right after the options) on a standard 1500-byte link, Open vSwitch's
    (inner Ethernet too) on a larger one, where the switch datapath sends it."""
    if mtu <= 1500:
        return mtu - TUNNEL_OVERHEAD - 40
    return mtu - TUNNEL_OVERHEAD - INNER_ETHERNET - 40


def counted(rule: str) -> str:
    """The rule with the `dropped` counter in front of its last drop/reject verdict."""
    tokens = rule.split()
    for i in range(len(tokens) - 1, -1, -1):
        if tokens[i] in VERDICTS:
            return " ".join([*tokens[:i], 'counter name "dropped"', *tokens[i:]])
    return " ".join(tokens)


def ruleset(
    rules: Sequence[str],
    tun_in: str = "tun-in",
    tun_out: str = "tun-out",
    mss: int = DEFAULT_MSS,
    mark: int | None = None,
) -> str:
    """The nft script that (re)creates the appliance's table with `rules`. Tunnelled traffic
    is what comes in through tun_in and leaves through tun_out; with `mark` (the BPF data
    path), what carries the mark, which tun_in's packets get before routing."""
    for rule in rules:
        if not isinstance(rule, str) or not rule.strip() or any(c in rule for c in "\n;{}"):
            raise ValueError(
                f"appliance rule {rule!r}: one nft rule per entry, without "
                "newlines, ';' or braces (e.g. \"tcp dport 23 drop\")"
            )
    lines = [
        f"table {FAMILY} {TABLE}",
        f"delete table {FAMILY} {TABLE}",
        f"table {FAMILY} {TABLE} {{",
    ]
    lines += [f"\tcounter {name} {{ }}" for name in COUNTERS]
    if mark is None:
        inbound, outbound = f'iifname != "{tun_in}"', f'oifname "{tun_out}"'
    else:
        inbound, outbound = f"meta mark != {mark:#x}", f"meta mark {mark:#x}"
        lines += [
            "\tchain marked {",
            "\t\ttype filter hook prerouting priority filter; policy accept;",
            f'\t\tiifname "{tun_in}" meta mark set {mark:#x} '
            'comment "the slow path\'s packets: routed and inspected as the others"',
            "\t}",
        ]
    lines += [
        "\tchain forward {",
        "\t\ttype filter hook forward priority filter; policy accept;",
        f'\t\t{inbound} accept comment "only tunnelled traffic is inspected"',
        '\t\tcounter name "inspected"',
        "\t\tjump rules",
        "\t}",
        "\tchain rules {",
    ]
    lines += [f"\t\t{counted(rule)}" for rule in rules]
    lines += [
        "\t}",
        "\tchain returned {",
        "\t\ttype filter hook postrouting priority filter; policy accept;",
        f'\t\t{outbound} counter name "passed"',
        f"\t\t{outbound} tcp flags & (syn | rst) == syn "
        f"tcp option maxseg size > {mss} tcp option maxseg size set {mss} "
        'comment "room for the GENEVE tunnel"',
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def install(
    rules: Sequence[str],
    tun_in: str = "tun-in",
    tun_out: str = "tun-out",
    mss: int = DEFAULT_MSS,
    mark: int | None = None,
) -> None:
    """Load the table into this network namespace's nftables (RuntimeError if nft refuses)."""
    script = ruleset(rules, tun_in, tun_out, mss, mark)
    proc = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"nft refused the appliance rules:\n{proc.stderr.strip()}\n--- script ---\n{script}"
        )


def read_counters() -> dict[str, dict[str, int]]:
    """{counter name: {"packets", "bytes"}} of the appliance's table."""
    proc = subprocess.run(
        ["nft", "-j", "list", "counters", "table", FAMILY, TABLE], capture_output=True, text=True
    )
    if proc.returncode != 0:
        return {}
    return parse_counters(proc.stdout)


def parse_counters(text: str) -> dict[str, dict[str, int]]:
    """Named counters from `nft -j list counters` output."""
    out = {}
    for item in json.loads(text).get("nftables", []):
        counter = item.get("counter")
        if counter and counter.get("table") == TABLE:
            out[counter["name"]] = {
                "packets": int(counter.get("packets", 0)),
                "bytes": int(counter.get("bytes", 0)),
            }
    return out
