"""GENEVE in captures: scapy's decoder (scapy.contrib.geneve) made to name the GWLB's options.

    rows = decode_pcap("hosts/Fw1/tmp/fw1.pcap")   # one dict per GENEVE packet
    pandas.DataFrame(rows).groupby(["outer_src", "src", "dst"]).size()

A row: time, outer_src, outer_dst, sport, dport, vni, protocol (inner EtherType: 0x0800 IPv4
as AWS sends, 0x6558 Ethernet as Open vSwitch sends), options (list of {class, type, length,
data (hex)}), endpoint_id (hex), endpoint_ip (the lab's endpoint ids carry it),
attachment_id, flow_cookie, eth_src and eth_dst (the inner Ethernet header's, None for
0x0800), and the inner IPv4 packet's proto, src, dst, src_port, dst_port (None without
ports) and length.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from testbed.packets import geneve


def _scapy() -> tuple[Any, ...]:
    from scapy.contrib import geneve as sgeneve
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import PcapReader

    # scapy names the option classes it knows; AWS's GWLB class is not among them.
    sgeneve.CLASS_IDS.setdefault(geneve.AWS_CLASS, "Amazon GWLB")
    return sgeneve.GENEVE, IP, TCP, UDP, Ether, PcapReader


def decode_packet(pkt: Any) -> dict[str, Any] | None:
    """The row of one scapy packet, or None if it carries no GENEVE."""
    GENEVE, IP, TCP, UDP, Ether, _ = _scapy()
    if IP not in pkt or UDP not in pkt:
        return None
    udp = pkt[UDP]
    if geneve.UDP_PORT not in (udp.dport, udp.sport):
        return None
    g = udp[GENEVE] if GENEVE in udp else GENEVE(bytes(udp.payload))
    options = [
        {
            "class": int(o.classid),
            "type": int(o.type),
            "length": int(o.length),
            "data": bytes(o.data).hex(),
        }
        for o in g.options
    ]
    fields = {(int(o.classid), int(o.type) & 0x7F): bytes(o.data) for o in g.options}
    endpoint = fields.get((geneve.AWS_CLASS, geneve.TYPE_ENDPOINT_ID))
    attachment = fields.get((geneve.AWS_CLASS, geneve.TYPE_ATTACHMENT_ID))
    cookie = fields.get((geneve.AWS_CLASS, geneve.TYPE_FLOW_COOKIE))
    row: dict[str, Any] = {
        "time": float(pkt.time),
        "outer_src": pkt[IP].src,
        "outer_dst": pkt[IP].dst,
        "sport": int(udp.sport),
        "dport": int(udp.dport),
        "vni": int(g.vni),
        "protocol": int(g.proto),
        "options": options,
        "endpoint_id": endpoint.hex() if endpoint else None,
        "endpoint_ip": geneve.endpoint_ip(int.from_bytes(endpoint, "big"))
        if endpoint and len(endpoint) == 8
        else None,
        "attachment_id": int.from_bytes(attachment, "big") if attachment else None,
        "flow_cookie": int.from_bytes(cookie, "big") if cookie else None,
        "eth_src": None,
        "eth_dst": None,
        "proto": None,
        "src": None,
        "dst": None,
        "src_port": None,
        "dst_port": None,
        "length": None,
    }
    inner = g.payload
    if isinstance(inner, Ether):  # protocol 0x6558 (Open vSwitch): a frame around the packet
        row.update(eth_src=inner.src, eth_dst=inner.dst)
        inner = inner.payload
    if isinstance(inner, IP):
        row.update(proto=int(inner.proto), src=inner.src, dst=inner.dst, length=int(inner.len))
        l4 = inner.payload
        if isinstance(l4, (TCP, UDP)) and not inner.frag and not (inner.flags & 1):
            row.update(src_port=int(l4.sport), dst_port=int(l4.dport))
    return row


def decode_pcap(path: str | Path) -> list[dict[str, Any]]:
    """Rows of every GENEVE packet in a pcap file (other packets are skipped)."""
    *_, PcapReader = _scapy()
    rows = []
    with PcapReader(str(path)) as reader:
        for pkt in reader:
            row = decode_packet(pkt)
            if row is not None:
                rows.append(row)
    return rows
