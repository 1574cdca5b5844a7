"""The GWLB node's packet socket: Ethernet frames addressed to its endpoints' MACs, in and out.

The controller hands the node every frame routed to one of its GWLB endpoints, with the
endpoint's MAC as destination (not the node's). The socket is promiscuous (membership ends
with the socket, nothing to undo) and carries a classic BPF filter that keeps only IPv4 frames
to those MACs, so the node's own traffic (health checks, the GENEVE it sends and receives)
never reaches Python. The kernel drops those frames itself (not its MAC, no forwarding).
"""

from __future__ import annotations

import contextlib
import ctypes
import socket
import struct
from collections.abc import Sequence

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_QDISC_BYPASS = 20
PACKET_IGNORE_OUTGOING = 23
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE, SO_SNDBUFFORCE = 33, 32
BUFFER = 8 << 20

# Classic BPF opcodes
LD_H_ABS, LD_W_ABS, JEQ_K, RET_K = 0x28, 0x20, 0x15, 0x06
ACCEPT = 0x40000  # bytes of a frame to keep: all of it
MAX_MACS = 60  # jump offsets are 8 bits


def mac_bytes(mac: str) -> bytes:
    """b'\\x02\\x00...' from '02:00:...'."""
    return bytes(int(x, 16) for x in mac.split(":"))


def mac_filter(macs: Sequence[bytes]) -> list[tuple[int, int, int, int]]:
    """BPF program (code, jt, jf, k): accept IPv4 frames whose destination is in `macs`."""
    if len(macs) > MAX_MACS:
        raise ValueError(f"a node serves at most {MAX_MACS} endpoints, not {len(macs)}")
    n = len(macs)
    drop = 2 + 4 * n
    prog = [(LD_H_ABS, 0, 0, 12), (JEQ_K, 0, drop - 2, ETH_P_IP)]
    for i, mac in enumerate(macs):
        at = 2 + 4 * i
        prog += [
            (LD_H_ABS, 0, 0, 0),
            (JEQ_K, 0, 2, int.from_bytes(mac[:2], "big")),
            (LD_W_ABS, 0, 0, 2),
            (JEQ_K, drop + 1 - (at + 3) - 1, 0, int.from_bytes(mac[2:6], "big")),
        ]
    prog += [(RET_K, 0, 0, 0), (RET_K, 0, 0, ACCEPT)]
    return prog


def attach_filter(sock: socket.socket, prog: list[tuple[int, int, int, int]]) -> None:
    """Attach a classic BPF program to a socket (the kernel copies it)."""
    code = b"".join(struct.pack("HBBI", *ins) for ins in prog)
    buf = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HL", len(prog), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def open_packet_socket(iface: str, macs: Sequence[bytes]) -> socket.socket:
    """A non-blocking packet socket on `iface` that receives frames to `macs` and sends
    whole frames."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    attach_filter(sock, mac_filter(macs))
    sock.bind((iface, 0))
    ifindex = socket.if_nametoindex(iface)
    sock.setsockopt(
        SOL_PACKET, PACKET_ADD_MEMBERSHIP, struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")
    )
    for level, option, value in (
        (socket.SOL_SOCKET, SO_RCVBUFFORCE, BUFFER),
        (socket.SOL_SOCKET, SO_SNDBUFFORCE, BUFFER),
        (SOL_PACKET, PACKET_IGNORE_OUTGOING, 1),
        (SOL_PACKET, PACKET_QDISC_BYPASS, 1),
    ):
        with contextlib.suppress(OSError):  # an older kernel: only slower
            sock.setsockopt(level, option, value)
    # Frames that arrived before the filter was attached went through unfiltered: drop them.
    sock.setblocking(False)
    while True:
        try:
            sock.recv(65535)
        except BlockingIOError:
            break
    return sock
