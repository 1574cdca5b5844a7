"""A firewall appliance behind the GWLB: GENEVE in, nftables, GENEVE back.

GENEVE datagrams arrive on UDP 6081 at the appliance's address. The data path strips the
GENEVE header (remembering it, and the GWLB node that sent it, per direction of each flow)
and hands the inner IPv4 packet to the kernel, which forwards it through the nftables
forward chain (the template's rules, counted); what passes gets the same GENEVE header back
(endpoint id, flow cookie: AWS requires them unchanged) and goes to UDP 6081 of the GWLB
node it came from. The kernel's forwarding decrements the inner TTL, as any routing
appliance does. What rules drop never comes back.

Also: health checks answered on HealthPort (80, GWLB's default: TCP connects or HTTP GETs of
any path); an admin port on 127.0.0.1 (GET /stats, GET|POST /faults: refuse = stop answering
health checks, hang = drop all tunnelled traffic while health checks still pass, clear);
a status file (JSON) written every second.

GENEVE protocol 0x0800 (AWS's: the IPv4 packet follows) and 0x6558 (Open vSwitch's: an
Ethernet frame around it) are both taken; the inner Ethernet header goes back unchanged.

Three data paths do the per-packet work, the same way; --datapath auto (the default, or
$TESTBED_APPLIANCE_DATAPATH) takes the first that starts and prints why it skipped others:
- bpf: in the kernel (fastpath/appliance_bpf.c, two TC-BPF programs on the appliance's link,
  attached by fastpath/appliance_bpf_loader.c, this process's child). Ingress decapsulates
  and marks the packet, the kernel forwards it by the mark (policy routing, nftables), egress
  encapsulates it again: no process wakes up per packet. GENEVE that arrived fragmented and
  inner packets too big for the link in GENEVE go through the loader (socket, tun-in /
  tun-out), as the compiled path does every packet. Needs clang and libbpf-dev to build.
- c: in a compiled process (fastpath/appliance_fastpath.c, this process's child; batches of
  datagrams), through a TUN pair: socket -> tun-in, kernel forwarding -> tun-out -> socket.
- python: this module's loop over the same TUN pair.
`python -m testbed.gwlb.build_fastpath` builds the first two. Measured with 64-byte inner
packets, the kernel's forwarding and nftables included: 4-5 us of CPU per packet at
30-140k packets/s for the compiled one (95% of it in the kernel), 11-13 us at 30-60k for
the Python loop; what the BPF one saves is the process wake-ups, i.e. latency (numbers in
docs/design/gwlb-switch.md). This process keeps the TUN pair, the routing, the nftables
table, health checks, admin and the status file either way; the child gets the descriptors
and answers commands (counters, hang) on a control socket.

    python -m testbed.gwlb.appliance --id Fw1 --ip 10.0.2.4 --rule "tcp dport 23 drop" \
        --status hosts/Fw1/appliance-status.json
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from testbed.gwlb import admin, build_fastpath, firewall, tun
from testbed.gwlb.flowkey import PORT_PROTOCOLS
from testbed.packets.geneve import ETHERNET_LEN, GWLB_HEADER_LEN, UDP_PORT, gwlb_fields

BATCH = 256  # packets taken from one socket before looking at the other
IDLE_S = 400.0  # longer than the GWLB's own idle timeouts: the GWLB decides
SWEEP_S = 10.0
STATUS_S = 1.0
MAX_FLOWS_SHOWN = 2000
SOCK_BUFFER = 8 << 20
SO_RCVBUFFORCE, SO_SNDBUFFORCE = 33, 32
IP_MTU_DISCOVER, IP_PMTUDISC_DONT = 10, 0
MIN_GENEVE = 8 + 20  # fixed header and an IPv4 header
IPV4, ETHERNET = b"\x08\x00", b"\x65\x58"  # GENEVE protocols (and the inner EtherType)
DATAPATHS = ("auto", "bpf", "c", "python")
FASTPATH_STATS_FILE = "appliance-fastpath.txt"
CONTROL_TIMEOUT_S = 5.0
DATAPATH_ENV = "TESTBED_APPLIANCE_DATAPATH"
READY_TIMEOUT_S = 30.0  # the BPF loader's first word: the verifier is slow on a busy machine
COUNTERS = ("geneve_in", "geneve_out", "bytes_in", "bytes_out", "bad", "orphans", "hung")


def link_of(ip: str) -> tuple[str | None, int]:
    """Name and MTU of the interface that has address `ip` (None and 1500 if none has)."""
    proc = subprocess.run(
        ["ip", "-j", "-4", "addr", "show", "to", f"{ip}/32"], capture_output=True, text=True
    )
    try:
        links = json.loads(proc.stdout or "[]")
    except ValueError:
        links = []
    if not links:
        return None, 1500
    return links[0].get("ifname"), int(links[0].get("mtu", 1500))


def link_mtu(ip: str) -> int:
    """MTU of the interface that has address `ip` (1500 if none has: a standard link)."""
    return link_of(ip)[1]


def packet_key(p: bytes) -> bytes:
    """Direction-specific key of an IPv4 packet: protocol, source, destination (and ports)."""
    if p[9] in PORT_PROTOCOLS and not (p[6] & 0x3F or p[7]):
        l4 = (p[0] & 0x0F) * 4
        return p[9:10] + p[12:20] + p[l4 : l4 + 4]
    return p[9:10] + p[12:20]


class Appliance:
    """The appliance's data path and counters."""

    def __init__(
        self,
        name: str,
        ip: str,
        rules: list[str],
        tun_in: str = "tun-in",
        tun_out: str = "tun-out",
        datapath: str = "auto",
        stats_path: str | None = None,
    ) -> None:
        if datapath not in DATAPATHS:
            raise ValueError(f"appliance datapath {datapath!r}: one of {', '.join(DATAPATHS)}")
        self.name, self.ip, self.rules = name, ip, rules
        self.tun_in_name, self.tun_out_name = tun_in, tun_out
        # directional key -> [GENEVE header, GWLB node address, packets, bytes, last seen]
        self.flows: dict[bytes, list[Any]] = {}
        self.geneve_in = self.geneve_out = self.bytes_in = self.bytes_out = 0
        self.bad = self.orphans = self.hung = self.tun_errors = 0
        self._hang = False
        self.stopping = False
        self.started = time.time()
        self.fastpath: FastPath | None = None
        self.requested = datapath  # one of DATAPATHS
        self.datapath = "python"  # the one running: "bpf", "c" or "python"
        self.stats_path = stats_path
        self.bpf_dev: str | None = None  # the link the BPF programs are attached to

    @property
    def hang(self) -> bool:
        """Whether tunnelled traffic is dropped (the hang fault)."""
        return self._hang

    @hang.setter
    def hang(self, value: bool) -> None:
        if self.fastpath is not None:
            self.fastpath.ask(b"H" if value else b"R")
        self._hang = value

    def choose_datapath(self) -> str:
        """ "c" with the compiled data path's binary found (or demanded), else "python";
        says which on stdout."""
        if self.requested == "python":
            return "python"
        binary = build_fastpath.find()
        if binary is None:
            where = build_fastpath.binary_path()
            if self.requested == "c":
                raise RuntimeError(
                    f"appliance {self.name}: no compiled data path at {where} "
                    "(build it: python -m testbed.gwlb.build_fastpath)"
                )
            print(
                f"appliance {self.name}: Python data path (slow): no compiled data path for "
                f"this source at {where}; build it with python -m testbed.gwlb.build_fastpath",
                flush=True,
            )
            return "python"
        self.fastpath = FastPath(binary, self.stats_path)
        return "c"

    def try_bpf(self, mss: int) -> str | None:
        """Start the BPF data path: None if it runs, else why not (everything it set up is
        undone, so the next data path starts clean)."""
        found = build_fastpath.find_bpf()
        if found is None:
            where = build_fastpath.bpf_paths()[0].parent
            return (
                f"not built for this source in {where} (python -m "
                "testbed.gwlb.build_fastpath; it needs clang and libbpf-dev)"
            )
        obj, loader = found
        dev, mtu = link_of(self.ip)
        if dev is None:
            return f"no interface has {self.ip}"
        try:
            tun.kernel_path(dev, self.tun_in_name, self.tun_out_name)
            firewall.install(self.rules, self.tun_in_name, self.tun_out_name, mss, firewall.MARK)
        except (OSError, RuntimeError) as exc:  # e.g. an nft without meta mark: fall back
            tun.forget_kernel_path(dev)
            return str(exc)
        args = (str(obj), dev, self.ip, str(mtu), self.tun_out_name)
        fastpath = FastPath(loader, self.stats_path, args, ready=True)
        self.sock.setblocking(True)
        try:
            fastpath.start(self.sock.fileno(), self.tun_in, self.tun_out)
        except (OSError, RuntimeError) as exc:
            fastpath.stop()
            tun.forget_kernel_path(dev)
            return str(exc)
        self.fastpath, self.bpf_dev = fastpath, dev
        return None

    def open(self) -> None:
        """TUN pair, the GENEVE socket, then the data path: BPF (routing by mark), else the
        compiled or Python one (tun-in -> tun-out routing), with the firewall to match."""
        self.tun_in = tun.open_tun(self.tun_in_name)
        self.tun_out = tun.open_tun(self.tun_out_name)
        mss = firewall.mss_for_mtu(link_mtu(self.ip))
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, SOCK_BUFFER)
        s.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, SOCK_BUFFER)
        # Inner packets near 1500 bytes do not fit with the tunnel headers: fragment the
        # outer datagram rather than drop it (TCP is clamped below that; UDP may not be).
        s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT)
        s.bind((self.ip, UDP_PORT))
        self.sock = s
        if self.requested in ("auto", "bpf"):
            reason = self.try_bpf(mss)
            if reason is None:
                self.datapath = "bpf"
                return
            if self.requested == "bpf":
                raise RuntimeError(f"appliance {self.name}: BPF data path: {reason}")
            print(f"appliance {self.name}: no BPF data path: {reason}", flush=True)
        tun.bump_in_the_wire(self.tun_in_name, self.tun_out_name)
        firewall.install(self.rules, self.tun_in_name, self.tun_out_name, mss)
        self.datapath = self.choose_datapath()
        if self.fastpath is not None:
            # It sends blocking (the socket buffer is the back-pressure) and receives with
            # MSG_DONTWAIT.
            s.setblocking(True)
            try:
                self.fastpath.start(s.fileno(), self.tun_in, self.tun_out)
            except (OSError, RuntimeError) as exc:  # e.g. a binary built for another machine
                if self.requested == "c":
                    raise
                print(f"appliance {self.name}: Python data path (slow): {exc}", flush=True)
                self.fastpath, self.datapath = None, "python"
        s.setblocking(self.fastpath is not None)

    def close(self) -> None:
        """End the compiled data path (the BPF one: its programs off the link), close the TUN
        devices (they vanish) and the socket."""
        if self.fastpath is not None:
            self.fastpath.stop()
        if self.bpf_dev is not None:
            tun.forget_kernel_path(self.bpf_dev)
        for fd in (self.tun_in, self.tun_out):
            os.close(fd)
        self.sock.close()

    # ---- data path ---------------------------------------------------------------------
    def from_gwlb(self, now: float) -> None:
        """Decapsulate what the GWLB sent into tun-in."""
        recvfrom, write, tun_in, flows = self.sock.recvfrom, os.write, self.tun_in, self.flows
        hang = self._hang
        for _ in range(BATCH):
            try:
                data, addr = recvfrom(65535)
            except BlockingIOError:
                return
            n = len(data)
            hl = 8 + (data[0] & 0x3F) * 4
            protocol = data[2:4]
            if protocol == ETHERNET and data[hl + 12 : hl + 14] == IPV4:
                hl += ETHERNET_LEN  # Open vSwitch's format: the Ethernet header goes back too
            elif protocol != IPV4:
                hl = n  # neither: bad below
            if n < MIN_GENEVE or data[0] & 0xC0 or n < hl + 20:
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
            if hang:
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
        """The data path, until stopping is set (RuntimeError if the compiled one ends)."""
        if self.fastpath is not None:
            self.fastpath.wait(lambda: self.stopping)
            return
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
        if self.fastpath is not None:
            counters, flows = self.fastpath.stats()
        else:
            counters = {name: getattr(self, name) for name in (*COUNTERS, "tun_errors")}
            flows = self.flows
        return {
            "host": self.name,
            "ip": self.ip,
            "time": time.time(),
            "uptime_s": round(time.time() - self.started, 3),
            **{name: counters.get(name, 0) for name in COUNTERS},
            "tun_errors": counters.get("tun_errors", 0),
            "faults": {"hang": self.hang},
            "rules": self.rules,
            "datapath": self.datapath,
            "fastpath_pid": self.fastpath.pid if self.fastpath else None,
            "firewall": firewall.read_counters(),
            "flows": flow_rows(flows),
        }


class FastPath:
    """A compiled data path, a child process: the userspace one, or the BPF programs' loader
    (which says "ready" or why not first: `ready`; `args` follow the common ones). Started
    with the appliance's descriptors, asked for counters and faults on a control socket,
    ended by its PID (and by the kernel when this process dies: it sets PR_SET_PDEATHSIG)."""

    def __init__(
        self,
        binary: Path,
        stats_path: str | None = None,
        args: tuple[str, ...] = (),
        ready: bool = False,
    ) -> None:
        self.binary, self.args, self.ready = binary, args, ready
        self.stats_path = Path(stats_path) if stats_path else None
        self.own_dir: str | None = None  # a folder of its own when not told where
        self.proc: subprocess.Popen | None = None
        self.control: socket.socket | None = None
        self.lock = threading.Lock()
        self.last: tuple[dict[str, int], dict[bytes, list[Any]]] = ({}, {})

    @property
    def pid(self) -> int | None:
        """The child's PID once started."""
        return self.proc.pid if self.proc else None

    def start(self, sock: int, tun_in: int, tun_out: int) -> None:
        """Start the child on these descriptors (it inherits them)."""
        if self.stats_path is None:
            self.own_dir = tempfile.mkdtemp(prefix="appliance-fastpath-")
            self.stats_path = Path(self.own_dir) / FASTPATH_STATS_FILE
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fds = (sock, tun_in, tun_out, theirs.fileno())
        argv = [str(self.binary), *map(str, fds), str(self.stats_path), str(os.getpid())]
        try:
            self.proc = subprocess.Popen([*argv, *self.args], pass_fds=fds)
        finally:
            theirs.close()
        self.control = mine
        if self.ready:
            mine.settimeout(READY_TIMEOUT_S)
            try:
                word = mine.recv(4096)
            except OSError as exc:
                raise RuntimeError(f"{self.binary.name} did not say it is ready: {exc}") from exc
            if word != b"ready":
                said = word.decode(errors="replace") or f"ended, status {self.proc.wait()}"
                raise RuntimeError(f"{self.binary.name}: {said}")
        mine.settimeout(CONTROL_TIMEOUT_S)
        print(
            f"appliance: compiled data path {self.binary.name} runs as PID {self.pid}", flush=True
        )

    def ask(self, command: bytes) -> None:
        """Send a one-byte command and wait for its answer (RuntimeError if none)."""
        with self.lock:
            if self.control is None:
                raise RuntimeError("the compiled data path is not running")
            try:
                self.control.send(command)
                answer = self.control.recv(1)
            except OSError as exc:
                raise RuntimeError(f"the compiled data path does not answer: {exc}") from exc
        if answer != command:
            raise RuntimeError(f"the compiled data path answered {answer!r} to {command!r}")

    def stats(self) -> tuple[dict[str, int], dict[bytes, list[Any]]]:
        """Its counters and flows (in the layout of Appliance.flows), fresh; once it was
        stopped, the last ones read."""
        if self.control is None and self.proc is not None:
            return self.last
        self.ask(b"S")
        assert self.stats_path is not None
        self.last = parse_stats(self.stats_path.read_text())
        return self.last

    def wait(self, stopping: Any) -> None:
        """Until stopping() is true; RuntimeError if the child ends before."""
        assert self.proc is not None
        pidfd = os.pidfd_open(self.proc.pid)
        try:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            while not stopping():
                if poller.poll(200):
                    code = self.proc.wait()
                    raise RuntimeError(f"the compiled data path ended (exit status {code})")
        finally:
            os.close(pidfd)

    def stop(self) -> None:
        """End the child (closing the control socket ends it; SIGTERM, then SIGKILL, by its
        PID if it does not) and remove what it wrote."""
        if self.control is not None:
            with self.lock:
                self.control.close()
                self.control = None
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        if self.own_dir:
            shutil.rmtree(self.own_dir, ignore_errors=True)
        elif self.stats_path is not None:
            self.stats_path.unlink(missing_ok=True)


def parse_stats(text: str) -> tuple[dict[str, int], dict[bytes, list[Any]]]:
    """Counters and flows from the compiled data path's stats file: "NAME VALUE" lines, and
    "flow SEQ KEY GWLB PACKETS BYTES IDLE_S HEADER" lines (hex KEY and HEADER), newest
    first; the flows come back oldest first, as the Python data path keeps them."""
    counters: dict[str, int] = {}
    rows: list[tuple[int, bytes, list[Any]]] = []
    now = time.monotonic()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 8 and parts[0] == "flow":
            _, seq, key, gwlb, packets, nbytes, idle, header = parts
            entry = [bytes.fromhex(header), (gwlb, UDP_PORT), int(packets), int(nbytes)]
            rows.append((int(seq), bytes.fromhex(key), [*entry, now - int(idle)]))
        elif len(parts) == 2 and parts[1].isdigit():
            counters[parts[0]] = int(parts[1])
    rows.sort(key=lambda r: r[0])
    return counters, {key: entry for _, key, entry in rows}


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
            "cookie": (gwlb_fields(entry[0][:GWLB_HEADER_LEN]) or (None, None))[1],
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
    ap.add_argument(
        "--datapath",
        choices=DATAPATHS,
        # The environment lets a whole lab's appliances be put on one data path (to compare
        # them, e.g. TESTBED_APPLIANCE_DATAPATH=c testbed run gwlb) without a template change.
        default=os.environ.get(DATAPATH_ENV) or "auto",
        help="bpf: the kernel data path, c: the compiled userspace one (each fails without "
        "it), python, auto (bpf, else c, else python; the first that starts); default "
        f"${DATAPATH_ENV} or auto",
    )
    a = ap.parse_args(argv)
    stats = str(Path(a.status).with_name(FASTPATH_STATS_FILE)) if a.status else None
    app = Appliance(a.id, a.ip, a.rule, datapath=a.datapath, stats_path=stats)
    app.open()
    Control(app, a.health_port, a.admin_port, a.status).start()

    def stop(*_: Any) -> None:
        app.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        f"appliance {a.id}: GENEVE on {a.ip}:{UDP_PORT}, {len(a.rule)} rules, health on "
        f"port {a.health_port}, {app.datapath} data path",
        flush=True,
    )
    try:
        app.run()
    except RuntimeError as exc:
        print(f"appliance {a.id}: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
