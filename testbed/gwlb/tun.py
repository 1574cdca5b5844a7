"""TUN devices and the routing that makes the kernel a bump in the wire between two of them.

A packet written into tun-in is received by the kernel as if it came in on that interface;
the kernel forwards it (nftables' forward hook inspects it), and a policy rule sends
everything that came in on tun-in out of tun-out, whatever its destination, so inspected
traffic never leaves through eth0. The program reads it back from tun-out. The devices
live as long as the file descriptors (no persistent interfaces to clean up).

The BPF data path routes by mark instead (kernel_path): its ingress program marks what it
decapsulated on eth0, and the marked packets go back out of eth0 towards a next hop that
exists only as a permanent neighbour entry (never ARPed for, whatever the inner
destination); the egress program encapsulates them there before anything leaves.
"""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
from pathlib import Path

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
ROUTE_TABLE = 6081  # the policy routing table of tunnelled traffic
RULE_PRIORITY = 100
MARK = 0x6081  # the BPF data path's mark (appliance_bpf.h, firewall.MARK)
# The BPF data path's next hop: link-local, so it is nobody's address; its neighbour entry
# is permanent, so the kernel never asks for it on the wire.
NEXT_HOP = "169.254.60.81"
TX_QUEUE = 10000  # room for bursts while the program drains tun-out


def open_tun(name: str) -> int:
    """A non-blocking fd of a new layer-3 TUN device `name` (packets without extra header)."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")


def _sysctl(path: str, value: str) -> None:
    Path("/proc/sys/net", path).write_text(value)


def bump_in_the_wire(tun_in: str, tun_out: str) -> None:
    """Forwarding on, tun-in -> tun-out policy routing, no reverse-path filter on tun-in
    (its sources are anywhere: the internet, other subnets)."""
    _sysctl("ipv4/ip_forward", "1")
    for dev in ("all", "default", tun_in):
        _sysctl(f"ipv4/conf/{dev}/rp_filter", "0")
    for dev in ("all", tun_out):
        _sysctl(f"ipv4/conf/{dev}/send_redirects", "0")
    for dev in (tun_in, tun_out):
        _ip("link", "set", dev, "txqueuelen", str(TX_QUEUE), "up")
    _ip("route", "replace", "default", "dev", tun_out, "table", str(ROUTE_TABLE))
    subprocess.run(
        ["ip", "rule", "del", "iif", tun_in, "lookup", str(ROUTE_TABLE)], capture_output=True
    )  # a rule left by an earlier run of this role
    _ip("rule", "add", "iif", tun_in, "lookup", str(ROUTE_TABLE), "priority", str(RULE_PRIORITY))


def _quiet_ip(*args: str) -> None:
    subprocess.run(["ip", *args], capture_output=True)  # may not be there: fine


def kernel_path(dev: str, tun_in: str, tun_out: str) -> None:
    """Routing of the BPF data path: forwarding on, no reverse-path filter (inner sources are
    anywhere) and no redirects (packets leave through the link they came in on), marked
    packets to table 6081 whose default route leaves `dev` towards NEXT_HOP. tun_in and
    tun_out stay up for the loader's slow path (tun_in's packets are marked by nftables)."""
    _sysctl("ipv4/ip_forward", "1")
    for name in ("all", "default", dev, tun_in):
        _sysctl(f"ipv4/conf/{name}/rp_filter", "0")
    for name in ("all", dev, tun_out):
        _sysctl(f"ipv4/conf/{name}/send_redirects", "0")
    for name in (tun_in, tun_out):
        _ip("link", "set", name, "txqueuelen", str(TX_QUEUE), "up")
    mac = Path(f"/sys/class/net/{dev}/address").read_text().strip()
    _ip("neigh", "replace", NEXT_HOP, "lladdr", mac, "dev", dev, "nud", "permanent")
    _ip(
        "route",
        "replace",
        "default",
        "via",
        NEXT_HOP,
        "dev",
        dev,
        "onlink",
        "table",
        str(ROUTE_TABLE),
    )
    _quiet_ip("rule", "del", "iif", tun_in, "lookup", str(ROUTE_TABLE))  # a userspace run's
    _quiet_ip("rule", "del", "fwmark", hex(MARK), "lookup", str(ROUTE_TABLE))
    _ip(
        "rule",
        "add",
        "fwmark",
        hex(MARK),
        "lookup",
        str(ROUTE_TABLE),
        "priority",
        str(RULE_PRIORITY),
    )


def forget_kernel_path(dev: str) -> None:
    """Undo what the BPF data path left: its rule, and the clsact qdisc with its filters (a
    loader that was killed could not remove them)."""
    _quiet_ip("rule", "del", "fwmark", hex(MARK), "lookup", str(ROUTE_TABLE))
    subprocess.run(["tc", "qdisc", "del", "dev", dev, "clsact"], capture_output=True)
