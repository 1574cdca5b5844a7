"""A firewall appliance behind the GWLB: GENEVE in, nftables, GENEVE back.

GENEVE datagrams arrive on UDP 6081 at the appliance's address. The program strips the
GENEVE header (remembering it, and the GWLB node that sent it, per direction of each flow),
writes the inner IPv4 packet into tun-in; the kernel forwards it through the nftables forward
chain (the template's rules, counted) to tun-out; the program reads what passed, puts the
same GENEVE header back on (endpoint id, flow cookie: AWS requires them unchanged) and sends
it to UDP 6081 of the GWLB node it came from. The kernel's forwarding decrements the inner
TTL, as any routing appliance does. What rules drop never comes back.

Also: health checks answered on HealthPort (80, GWLB's default: TCP connects or HTTP GETs of
any path); an admin port on 127.0.0.1 (GET /stats, GET|POST /faults: refuse = stop answering
health checks, hang = drop all tunnelled traffic while health checks still pass, clear);
a status file (JSON) written every second. In the VM a kernel geneve device could replace the
TUN pair; the program keeps TUN everywhere so both machines run the same data path.

    python -m testbed.gwlb.appliance --id Fw1 --ip 10.0.2.4 --rule "tcp dport 23 drop" \
        --status hosts/Fw1/appliance-status.json
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from testbed.gwlb import admin, firewall, tun
from testbed.gwlb.flowkey import PORT_PROTOCOLS
from testbed.packets.geneve import UDP_PORT, gwlb_fields

BATCH = 256  # packets taken from one socket before looking at the other
IDLE_S = 400.0  # longer than the GWLB's own idle timeouts: the GWLB decides
SWEEP_S = 10.0
STATUS_S = 1.0
MAX_FLOWS_SHOWN = 2000
SOCK_BUFFER = 8 << 20
SO_RCVBUFFORCE, SO_SNDBUFFORCE = 33, 32
IP_MTU_DISCOVER, IP_PMTUDISC_DONT = 10, 0
MIN_GENEVE = 8 + 20  # fixed header and an IPv4 header


def packet_key(p: bytes) -> bytes:
    """Direction-specific key of an IPv4 packet: protocol, source, destination (and ports)."""
    if p[9] in PORT_PROTOCOLS and not (p[6] & 0x3F or p[7]):
        l4 = (p[0] & 0x0F) * 4
        return p[9:10] + p[12:20] + p[l4 : l4 + 4]
    return p[9:10] + p[12:20]


class Appliance:
    """The appliance's data path and counters."""

    def __init__(
        self, name: str, ip: str, rules: list[str], tun_in: str = "tun-in", tun_out: str = "tun-out"
    ) -> None:
        self.name, self.ip, self.rules = name, ip, rules
        self.tun_in_name, self.tun_out_name = tun_in, tun_out
        # directional key -> [GENEVE header, GWLB node address, packets, bytes, last seen]
        self.flows: dict[bytes, list[Any]] = {}
        self.geneve_in = self.geneve_out = self.bytes_in = self.bytes_out = 0
        self.bad = self.orphans = self.hung = self.tun_errors = 0
        self.hang = False
        self.stopping = False
        self.started = time.time()

    def open(self) -> None:
        """TUN pair, routing, firewall and the GENEVE socket."""
        self.tun_in = tun.open_tun(self.tun_in_name)
        self.tun_out = tun.open_tun(self.tun_out_name)
        tun.bump_in_the_wire(self.tun_in_name, self.tun_out_name)
        firewall.install(self.rules, self.tun_in_name, self.tun_out_name)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, SOCK_BUFFER)
        s.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, SOCK_BUFFER)
        # Inner packets near 1500 bytes do not fit with the tunnel headers: fragment the
        # outer datagram rather than drop it (TCP is clamped below that; UDP may not be).
        s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT)
        s.bind((self.ip, UDP_PORT))
        s.setblocking(False)
        self.sock = s

    def close(self) -> None:
        """Close the TUN devices (they vanish) and the socket."""
        for fd in (self.tun_in, self.tun_out):
            os.close(fd)
        self.sock.close()

    # ---- data path ---------------------------------------------------------------------
    def from_gwlb(self, now: float) -> None:
        """Decapsulate what the GWLB sent into tun-in."""
        recvfrom, write, tun_in, flows = self.sock.recvfrom, os.write, self.tun_in, self.flows
        for _ in range(BATCH):
            try:
                data, addr = recvfrom(65535)
            except BlockingIOError:
                return
            n = len(data)
            hl = 8 + (data[0] & 0x3F) * 4
            if n < MIN_GENEVE or data[0] & 0xC0 or data[2:4] != b"\x08\x00" or n < hl + 20:
                self.bad += 1  # not GENEVE version 0 carrying IPv4
                continue
            inner = data[hl:]
            key = packet_key(inner)
            entry = flows.get(key)
            if entry is None:
                flows[key] = [data[:hl], (addr[0], UDP_PORT), 1, n - hl, now]
            else:
                if not data.startswith(entry[0]):
                    entry[0] = data[:hl]  # a new cookie: the GWLB forgot and re-created it
                entry[1] = (addr[0], UDP_PORT)
                entry[2] += 1
                entry[3] += n - hl
                entry[4] = now
            self.geneve_in += 1
            self.bytes_in += n
            if self.hang:
                self.hung += 1
                continue
            try:
                write(tun_in, inner)
            except OSError:
                self.tun_errors += 1

    def from_tun(self) -> None:
        """Encapsulate what the firewall let through back to the GWLB it came from."""
        read, fd, sendto, flows = os.read, self.tun_out, self.sock.sendto, self.flows
        for _ in range(BATCH):
            try:
                p = read(fd, 65535)
            except BlockingIOError:
                return
            entry = flows.get(packet_key(p))
            if entry is None:
                self.orphans += 1  # not from the tunnel (nothing to send it back with)
                continue
            data = entry[0] + p
            try:
                sendto(data, entry[1])
            except OSError:
                self.tun_errors += 1
                continue
            self.geneve_out += 1
            self.bytes_out += len(data)

    def sweep(self, now: float) -> None:
        """Forget flows idle for longer than IDLE_S."""
        for key in [k for k, e in self.flows.items() if now - e[4] > IDLE_S]:
            del self.flows[key]

    def run(self) -> None:
        """The data path loop, until stopping is set."""
        poller = select.epoll()
        sock_fd = self.sock.fileno()
        poller.register(sock_fd, select.EPOLLIN)
        poller.register(self.tun_out, select.EPOLLIN)
        next_sweep = time.monotonic() + SWEEP_S
        while not self.stopping:
            events = poller.poll(0.2)
            now = time.monotonic()
            for fd, _ in events:
                if fd == sock_fd:
                    self.from_gwlb(now)
                else:
                    self.from_tun()
            if now >= next_sweep:
                self.sweep(now)
                next_sweep = now + SWEEP_S
        poller.close()

    # ---- status ------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Counters, the firewall's counters and the flows seen (both directions merged)."""
        return {
            "host": self.name,
            "ip": self.ip,
            "time": time.time(),
            "uptime_s": round(time.time() - self.started, 3),
            "geneve_in": self.geneve_in,
            "geneve_out": self.geneve_out,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "bad": self.bad,
            "orphans": self.orphans,
            "hung": self.hung,
            "tun_errors": self.tun_errors,
            "faults": {"hang": self.hang},
            "rules": self.rules,
            "firewall": firewall.read_counters(),
            "flows": flow_rows(self.flows),
        }


def flow_rows(flows: dict[bytes, list[Any]]) -> list[dict[str, Any]]:
    """The flows seen, each once with packets of both directions ("a" sent first)."""
    rows: dict[bytes, dict[str, Any]] = {}
    for key, entry in list(flows.items())[-MAX_FLOWS_SHOWN:]:
        src, dst = key[1:5], key[5:9]
        ports = (
            (int.from_bytes(key[9:11], "big"), int.from_bytes(key[11:13], "big"))
            if len(key) == 13
            else (None, None)
        )
        reverse = key[:1] + dst + src + (key[11:13] + key[9:11] if len(key) == 13 else b"")
        row = rows.get(reverse)
        if row is not None:
            row["packets_ba"] += entry[2]
            continue
        rows[key] = {
            "proto": key[0],
            "a": _ip(src),
            "a_port": ports[0],
            "b": _ip(dst),
            "b_port": ports[1],
            "packets_ab": entry[2],
            "packets_ba": 0,
            "cookie": (gwlb_fields(entry[0]) or (None, None))[1],
            "gwlb": entry[1][0],
        }
    return list(rows.values())


def _ip(raw: bytes) -> str:
    return ".".join(str(x) for x in raw)


class Control:
    """Health and admin listeners of a running appliance, and its status file."""

    def __init__(
        self, app: Appliance, health_port: int, admin_port: int, status_path: str | None
    ) -> None:
        self.app, self.health_port, self.admin_port = app, health_port, admin_port
        self.status_path = Path(status_path) if status_path else None
        self.health: ThreadingHTTPServer | None = None
        self.refuse = False

    def start(self) -> None:
        """Open the health and admin listeners and start the status file writer."""
        self.set_refuse(False)
        admin.serve(
            "127.0.0.1",
            self.admin_port,
            {
                ("GET", "/stats"): lambda q: self.app.status(),
                ("GET", "/faults"): lambda q: self.faults(),
                ("POST", "/faults"): self.set_faults,
            },
        )
        if self.status_path:
            threading.Thread(target=self._write_status, daemon=True, name="status").start()

    def faults(self) -> dict[str, Any]:
        """The faults in force."""
        return {"refuse": self.refuse, "hang": self.app.hang}

    def set_faults(self, query: dict[str, str]) -> dict[str, Any]:
        """Apply POST /faults?refuse=1|hang=1|clear."""
        unknown = set(query) - {"refuse", "hang", "clear"}
        if unknown:
            raise ValueError(f"appliance faults: refuse, hang, clear (not {sorted(unknown)})")
        if "clear" in query:
            self.set_refuse(False)
            self.app.hang = False
        if "refuse" in query:
            self.set_refuse(query["refuse"] not in ("0", "false"))
        if "hang" in query:
            self.app.hang = query["hang"] not in ("0", "false")
        return self.faults()

    def set_refuse(self, refuse: bool) -> None:
        """Stop (or resume) answering health checks: the GWLB then sees the appliance fail."""
        self.refuse = refuse
        if refuse:
            admin.stop(self.health)
            self.health = None
        elif self.health is None and self.health_port:
            self.health = admin.serve(
                "0.0.0.0",
                self.health_port,
                {},
                fallback=lambda path: {"status": "healthy", "appliance": self.app.name},
            )

    def _write_status(self) -> None:
        assert self.status_path is not None
        tmp = self.status_path.with_suffix(".tmp")
        while True:
            try:
                tmp.write_text(json.dumps(self.app.status()))
                os.replace(tmp, self.status_path)
            except Exception as exc:  # a status file is no reason to stop filtering
                print(f"appliance: status not written: {exc}", file=sys.stderr, flush=True)
            time.sleep(STATUS_S)


def main(argv: list[str] | None = None) -> int:
    """Run the appliance until SIGTERM."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--id", required=True, help="the appliance's name (its logical id)")
    ap.add_argument("--ip", required=True, help="the address GENEVE arrives at")
    ap.add_argument("--rule", action="append", default=[], help="an nft rule (repeatable)")
    ap.add_argument("--health-port", type=int, default=80, help="0: no health listener")
    ap.add_argument("--admin-port", type=int, default=8081)
    ap.add_argument("--status", default=None, help="JSON status file, rewritten every second")
    a = ap.parse_args(argv)
    app = Appliance(a.id, a.ip, a.rule)
    app.open()
    Control(app, a.health_port, a.admin_port, a.status).start()

    def stop(*_: Any) -> None:
        app.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        f"appliance {a.id}: GENEVE on {a.ip}:{UDP_PORT}, {len(a.rule)} rules, health on "
        f"port {a.health_port}",
        flush=True,
    )
    try:
        app.run()
    finally:
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
