"""Does a packet get there and its answer back? Run inside a lab host, all addresses at once.

    python -m testbed.lab.reach_probe --proto tcp --port 80 10.0.1.4 10.0.3.4
    python -m testbed.lab.reach_probe --proto udp --port 9000 --wait 1 --tries 2 10.0.1.4

Prints one line per address: "ADDR ok" or "ADDR no". What counts as an answer is what proves
that the packet crossed every filter and its reply came back:
  tcp  the handshake completes, or a RST comes back (nothing listens: the SYN still arrived
       and its reply passed);
  udp  a datagram comes back (the http-backend's echo on 9000 answers every datagram), or an
       ICMP port unreachable (reported by the kernel as a refused connection);
  icmp use ping (testbed.lab.reachability does).
Bounded: every address is tried `tries` times for at most `wait` seconds each. Standard library
only, so that it starts fast in a host.
"""

from __future__ import annotations

import argparse
import errno
import socket
import sys
from concurrent.futures import ThreadPoolExecutor

MAX_ADDRESSES = 1024


def tcp_answers(ip: str, port: int, wait_s: float, tries: int) -> bool:
    # The kernel retransmits the SYN within one connect; `tries` bounds the whole wait.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(wait_s * tries)
        code = s.connect_ex((ip, port))
    return code in (0, errno.ECONNREFUSED)


def udp_answers(ip: str, port: int, wait_s: float, tries: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(wait_s)
        s.connect((ip, port))
        for _ in range(tries):
            try:
                s.send(b"reach\n")
                s.recv(2048)
                return True
            except ConnectionRefusedError:
                return True  # ICMP port unreachable came back: the datagram got there
            except OSError:
                continue  # timeout (or a transient error): try again
    return False


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m testbed.lab.reach_probe", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--proto", choices=("tcp", "udp"), required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--wait", type=float, default=1.0, help="seconds per try")
    p.add_argument("--tries", type=int, default=2)
    p.add_argument("addresses", nargs="+")
    args = p.parse_args(argv)
    if len(args.addresses) > MAX_ADDRESSES or not 0 < args.tries <= 10:
        p.error(f"at most {MAX_ADDRESSES} addresses and 1-10 tries")
    probe = tcp_answers if args.proto == "tcp" else udp_answers

    def one(ip: str) -> str:
        return f"{ip} {'ok' if probe(ip, args.port, args.wait, args.tries) else 'no'}"

    with ThreadPoolExecutor(max_workers=min(64, len(args.addresses))) as pool:
        for line in pool.map(one, args.addresses):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
