"""Round-trip time on an established TCP connection: one echoed line per sample.

This is the RTT data packets of a long-lived flow see (no connection set-up in it, which the
handshake RTT of testbed.probes.rtt and the new-connection rate measure). It talks to the
http-backend role's echo service (TCP 9000: an identity line, then every line echoed), through
a load balancer or directly. Runs inside a lab host:

    python -m testbed.probes.echo --to 10.0.0.5:9000 -n 500
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from typing import TYPE_CHECKING, Any

from testbed.errors import LabError

if TYPE_CHECKING:  # this module also runs in lab hosts: no Lab API import there
    from testbed.lab.api import Lab


def measure(host: str, port: int, samples: int, timeout: float = 5.0) -> dict[str, Any]:
    """Connect, read the identity line, then time `samples` one-line echoes (microseconds)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = s.makefile("rb")
        identity = json.loads(f.readline())
        rtts = []
        for _ in range(samples + 1):  # the first round trip warms caches: not a sample
            t0 = time.perf_counter()
            s.sendall(b"x\n")
            if not f.readline():
                raise ConnectionResetError("closed during the measurement")
            rtts.append((time.perf_counter() - t0) * 1e6)
    return {"backend": identity.get("instance"), "rtt_us": [round(r, 1) for r in rtts[1:]]}


def echo_rtt(lab: Lab, client: str, endpoint: str, samples: int = 500) -> dict[str, Any]:
    """Run `measure` in host `client` against ADDR:PORT; rtt_us is the list of samples."""
    proc = lab.host(client).run(
        [sys.executable, "-m", "testbed.probes.echo", "--to", endpoint, "-n", str(samples)],
        timeout=60 + samples * 0.05,
    )
    if proc.returncode != 0:
        raise LabError(f"echo RTT from {client} to {endpoint} failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--to", required=True, help="ADDR:PORT of an echo service")
    ap.add_argument("-n", type=int, default=500, help="samples (default 500)")
    a = ap.parse_args(argv)
    addr, _, port = a.to.rpartition(":")
    print(json.dumps(measure(addr, int(port), a.n)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
