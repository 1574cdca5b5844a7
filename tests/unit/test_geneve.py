"""GENEVE codec and capture decoder, against bytes built by hand."""

from __future__ import annotations

import pytest

from testbed.packets import geneve
from testbed.packets.capture import decode_packet, decode_pcap
from testbed.packets.geneve import AWS_CLASS, Geneve, GeneveError, Option

# The header the lab's GWLB node writes for endpoint 10.0.1.4, flow cookie 0x12345678.
GWLB_BYTES = bytes(
    [
        0x08,
        0x00,
        0x08,
        0x00,  # version 0, 8 words of options | O=0 C=0 | protocol IPv4
        0x00,
        0x00,
        0x00,
        0x00,  # VNI 0 | reserved
        0x01,
        0x08,
        0x01,
        0x02,  # class 0x0108 (AWS), type 1 (endpoint id), 2 words
        0x76,
        0x70,
        0x63,
        0x65,
        0x0A,
        0x00,
        0x01,
        0x04,  # "vpce" 10.0.1.4
        0x01,
        0x08,
        0x02,
        0x02,  # type 2 (attachment id), 2 words
        0x00,
        0x00,
        0x00,
        0x00,
        0x00,
        0x00,
        0x00,
        0x00,
        0x01,
        0x08,
        0x03,
        0x01,  # type 3 (flow cookie), 1 word
        0x12,
        0x34,
        0x56,
        0x78,
    ]
)
# An IPv4 TCP SYN 198.51.100.10:40000 -> 10.0.1.10:80 (checksums left zero: not checked).
INNER = bytes(
    [
        0x45,
        0x00,
        0x00,
        0x28,
        0x00,
        0x01,
        0x40,
        0x00,
        0x40,
        0x06,
        0x00,
        0x00,
        198,
        51,
        100,
        10,
        10,
        0,
        1,
        10,
        0x9C,
        0x40,
        0x00,
        0x50,
        0,
        0,
        0,
        1,
        0,
        0,
        0,
        0,
        0x50,
        0x02,
        0x20,
        0x00,
        0,
        0,
        0,
        0,
    ]
)


def test_serialize_gwlb_header_matches_hand_built_bytes():
    header = geneve.gwlb_header(geneve.endpoint_id("10.0.1.4"), 0x12345678)
    assert header.serialize() == GWLB_BYTES
    assert len(GWLB_BYTES) == geneve.GWLB_HEADER_LEN == 40


def test_parse_hand_built_bytes():
    header, inner = geneve.parse(GWLB_BYTES + INNER)
    assert inner == INNER
    assert (header.vni, header.protocol, header.oam, header.critical) == (0, 0x0800, False, False)
    assert [(o.cls, o.type, len(o.data)) for o in header.options] == [
        (AWS_CLASS, 1, 8),
        (AWS_CLASS, 2, 8),
        (AWS_CLASS, 3, 4),
    ]
    assert geneve.endpoint_ip(header.endpoint_id) == "10.0.1.4"
    assert header.attachment_id == 0
    assert header.flow_cookie == 0x12345678
    assert Geneve.parser(GWLB_BYTES + INNER) == (header, inner)
    assert header.serialize() == GWLB_BYTES  # round trip


def test_flags_vni_critical_and_foreign_options():
    raw = bytes(
        [
            0x03,
            0xC0,
            0x65,
            0x58,  # 3 words of options | O=1 C=1 | protocol 0x6558 (Ethernet)
            0xAB,
            0xCD,
            0xEF,
            0x00,  # VNI 0xABCDEF
            0xFF,
            0xFF,
            0x85,
            0x02,  # class 0xFFFF (experimental), type 5 critical, 2 words
            1,
            2,
            3,
            4,
            5,
            6,
            7,
            8,
        ]
    )
    header, inner = geneve.parse(raw + b"payload")
    assert inner == b"payload"
    assert (header.vni, header.protocol, header.oam, header.critical) == (
        0xABCDEF,
        0x6558,
        True,
        True,
    )
    (opt,) = header.options
    assert opt == Option(0xFFFF, 0x85, bytes(range(1, 9)))
    assert opt.critical
    assert header.option(0xFFFF, 5) is opt  # found with or without the critical bit
    assert header.endpoint_id is None
    assert header.flow_cookie is None
    assert header.serialize() == raw


def test_empty_option_data_and_no_options():
    raw = bytes([0x01, 0x00, 0x08, 0x00, 0, 0, 1, 0, 0x01, 0x08, 0x07, 0x00])
    header, inner = geneve.parse(raw)
    assert header.vni == 1
    assert header.options == (Option(AWS_CLASS, 7, b""),)
    assert inner == b""
    assert Geneve().serialize() == bytes([0, 0, 0x08, 0x00, 0, 0, 0, 0])


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x00\x00\x08", "too short"),
        (bytes([0x40, 0, 8, 0, 0, 0, 0, 0]), "version 1"),
        (bytes([0x02, 0, 8, 0, 0, 0, 0, 0, 1, 8, 1, 0]), "past the end"),
        (bytes([0x01, 0, 8, 0, 0, 0, 0, 0, 1, 8, 1, 2]), "past the options"),
    ],
)
def test_malformed_headers_are_refused(raw, message):
    with pytest.raises(GeneveError, match=message):
        geneve.parse(raw)


def test_serialize_refuses_what_does_not_fit():
    with pytest.raises(GeneveError, match="4-byte"):
        Option(1, 1, b"abc").serialize()
    with pytest.raises(GeneveError, match="24 bits"):
        Geneve(vni=1 << 24).serialize()
    with pytest.raises(GeneveError, match="at most 252"):
        Geneve(options=(Option(1, 1, bytes(124)),) * 3).serialize()


def test_gwlb_fields_fast_path():
    assert geneve.gwlb_fields(GWLB_BYTES) == (geneve.endpoint_id("10.0.1.4"), 0x12345678)
    reordered = Geneve(options=tuple(reversed(geneve.parse(GWLB_BYTES)[0].options)))
    assert geneve.gwlb_fields(reordered.serialize()) is None  # parse() handles that
    assert geneve.endpoint_ip(0x1122334455667788) is None


def _captured():
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    return (
        Ether()
        / IP(src="10.0.0.5", dst="10.0.2.4")
        / UDP(sport=6081, dport=6081)
        / (GWLB_BYTES + INNER)
    )


def test_scapy_decodes_the_options(tmp_path):
    from scapy.utils import wrpcap

    row = decode_packet(_captured())
    assert row is not None
    assert (row["outer_src"], row["outer_dst"], row["vni"], row["protocol"]) == (
        "10.0.0.5",
        "10.0.2.4",
        0,
        0x0800,
    )
    assert [(o["class"], o["type"], o["length"]) for o in row["options"]] == [
        (0x0108, 1, 2),
        (0x0108, 2, 2),
        (0x0108, 3, 1),
    ]
    assert row["endpoint_id"] == "767063650a000104"
    assert row["endpoint_ip"] == "10.0.1.4"
    assert (row["attachment_id"], row["flow_cookie"]) == (0, 0x12345678)
    assert (row["proto"], row["src"], row["dst"], row["src_port"], row["dst_port"]) == (
        6,
        "198.51.100.10",
        "10.0.1.10",
        40000,
        80,
    )
    path = tmp_path / "g.pcap"
    from scapy.layers.inet import IP

    wrpcap(str(path), [_captured(), IP(dst="10.0.0.1") / b"not geneve"])
    assert [r["flow_cookie"] for r in decode_pcap(path)] == [0x12345678]


# Open vSwitch's format: protocol 0x6558, an Ethernet header (dst, src, IPv4) before INNER.
ETHERNET = bytes.fromhex("0200000a00010200000a00020800")
OVS_BYTES = GWLB_BYTES[:2] + b"\x65\x58" + GWLB_BYTES[4:]


def test_inner_ipv4_of_both_protocols():
    assert geneve.inner_ipv4(geneve.PROTO_IPV4, INNER) == (b"", INNER)
    assert geneve.inner_ipv4(geneve.PROTO_ETHERNET, ETHERNET + INNER) == (ETHERNET, INNER)
    with pytest.raises(GeneveError, match="does not carry IPv4"):
        geneve.inner_ipv4(geneve.PROTO_ETHERNET, ETHERNET[:12] + b"\x86\xdd" + INNER)
    with pytest.raises(GeneveError, match="0x86dd"):
        geneve.inner_ipv4(geneve.PROTO_IPV6, INNER)
    header, payload = geneve.parse(OVS_BYTES + ETHERNET + INNER)
    assert geneve.inner_ipv4(header.protocol, payload) == (ETHERNET, INNER)
    assert geneve.gwlb_fields(OVS_BYTES) == geneve.gwlb_fields(GWLB_BYTES)


def test_scapy_decodes_inner_ethernet_to_the_same_row():
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    ovs = Ether() / IP(src="10.0.0.5", dst="10.0.2.4") / UDP(sport=51234, dport=6081)
    row = decode_packet(ovs / (OVS_BYTES + ETHERNET + INNER))
    aws = decode_packet(_captured())
    assert row is not None
    assert aws is not None
    assert (row["protocol"], row["eth_dst"], row["eth_src"]) == (
        0x6558,
        "02:00:00:0a:00:01",
        "02:00:00:0a:00:02",
    )
    assert (aws["eth_dst"], aws["eth_src"]) == (None, None)
    same = ("endpoint_ip", "flow_cookie", "proto", "src", "dst", "src_port", "dst_port", "length")
    assert {k: row[k] for k in same} == {k: aws[k] for k in same}
