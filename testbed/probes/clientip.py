"""Client IP preservation, seen on the wire: a capture on a target shows which source address
(and port) the connections a client made through a load balancer arrived with.

    res = client_ip_probe(lab, "Client1", "http://203.0.113.10/", on_host="WebA1", count=10)
    res.sources      # Counter({'198.51.100.10': 6}): the client's own address reached WebA1
    res.pcap         # the target's capture, for Wireshark

Each connection carries a marker in its first bytes, so it is recognised at the target even
after NAT changed its source; SYNs without a marker (health checks, other clients) are
counted apart.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from testbed.errors import BadInput
from testbed.lab.api import Lab
from testbed.probes import packets
from testbed.probes.capture import start_capture
from testbed.probes.connect import checked_endpoint, marker, run_connections

MAX_COUNT = 1000


@dataclass(frozen=True)
class SeenConnection:
    """One probe connection as the target saw its SYN."""

    seq: int
    src: str
    sport: int
    dst: str
    dport: int
    time: Decimal
    kind: str  # client | lb-node | other
    who: str  # the client's host name, the LB node's host name, or ""


@dataclass
class ProbeResult:
    """What reached the target, and where each source address comes from."""

    client: str
    client_addresses: tuple[str, ...]
    target: str
    on_host: str
    on_ip: str
    count: int
    seen: list[SeenConnection]
    connections: list[dict[str, Any]]  # the client's records (errors, local ports, replies)
    other_syns: Counter = field(default_factory=Counter)  # unmarked SYNs by source address
    pcap: Path | None = None
    capture_complete: bool = True  # False: the capture hit its packet limit

    @property
    def sources(self) -> Counter:
        """Source addresses of the probe's SYNs at the target."""
        return Counter(s.src for s in self.seen)

    @property
    def kinds(self) -> Counter:
        """client / lb-node / other, over the probe's SYNs at the target."""
        return Counter(s.kind for s in self.seen)

    @property
    def errors(self) -> Counter:
        """Connection failures on the client (timeout, refused, ...)."""
        return Counter(c["error"] for c in self.connections if c["error"])

    @property
    def elsewhere(self) -> Counter:
        """Connections that reached another target (by the backend that answered, if known)."""
        seen = {s.seq for s in self.seen}
        return Counter(
            backend_of(c) or "another target"
            for c in self.connections
            if not c["error"] and c["seq"] not in seen
        )

    @property
    def preserved(self) -> bool | None:
        """True: every SYN came from the client; False: none did; None: none seen, or mixed."""
        kinds = self.kinds
        if not self.seen or len(kinds) > 1:
            return None
        return "client" in kinds


def backend_of(conn: dict[str, Any]) -> str:
    """The instance the lab's http-backend says answered (the JSON identity of an HTTP body,
    or the first line on its TCP port), or "" when the reply does not say."""
    reply = conn.get("reply", "")
    _head, sep, body = reply.partition("\r\n\r\n")
    text = body if sep else reply.partition("\n")[0]
    try:
        data = json.loads(text)
    except ValueError:
        return ""
    return str(data.get("instance", "")) if isinstance(data, dict) else ""


def node_addresses(lab: Lab) -> dict[str, str]:
    """Address -> LB node host, for every load balancer node of the lab (private and
    public addresses)."""
    out = {}
    for lb in lab.state.get("load_balancers", []):
        for node in lb.get("nodes", []):
            for key in ("ip", "public_ip"):
                if node.get(key):
                    out[node[key]] = node.get("host") or lb.get("name", "")
    return out


def classify(
    src: str, client: str, client_addresses: tuple[str, ...], nodes: dict[str, str]
) -> tuple[str, str]:
    """(kind, who) of a source address seen at the target."""
    if src in client_addresses:
        return "client", client
    if src in nodes:
        return "lb-node", nodes[src]
    return "other", ""


def seen_connections(
    segs: list[packets.Segment],
    token: str,
    count: int,
    client: str,
    client_addresses: tuple[str, ...],
    nodes: dict[str, str],
) -> tuple[list[SeenConnection], Counter]:
    """The probe's connections in a target's capture, and the other SYNs by source."""
    found = packets.marked_flows(segs, {marker(token, seq): seq for seq in range(count)})
    seen, probe_syns = [], set()
    for seq, seg in sorted(found.items()):
        syn = packets.opening_syn(segs, seg.key, seg.time)
        if syn is None:
            continue  # the capture started after this connection opened
        probe_syns.add((syn.key, syn.time))
        kind, who = classify(syn.src, client, client_addresses, nodes)
        seen.append(
            SeenConnection(seq, syn.src, syn.sport, syn.dst, syn.dport, syn.time, kind, who)
        )
    others = Counter(s.src for s in packets.syns(segs) if (s.key, s.time) not in probe_syns)
    return seen, others


def client_ip_probe(
    lab: Lab, client: str, target: str, on_host: str, count: int = 10, timeout_s: float = 3.0
) -> ProbeResult:
    """Make `count` connections from `client` to `target` (URL or ADDR[:PORT]) and report
    the source address each had when it reached `on_host` (captured on its eth0)."""
    if not 1 <= count <= MAX_COUNT:
        raise BadInput(f"count must be between 1 and {MAX_COUNT}, not {count}")
    endpoint = checked_endpoint(target, "http://203.0.113.10/ or 10.0.0.4:80")
    src, dst = lab.host(client), lab.host(on_host)
    token = secrets.token_hex(4)
    # Inbound TCP only: SYNs and the marked data; health checks are few and counted apart.
    limit = 20 * count + 500
    seconds = count * (2 * timeout_s + 1) + 60
    with start_capture(
        dst,
        f"tcp and dst host {dst.ip}",
        label=f"client-ip-{client}",
        max_seconds=seconds,
        max_packets=limit,
    ) as cap:
        conns = run_connections(src, [target], count, mark=token, timeout_s=timeout_s)
    addresses = tuple(a for a in (src.ip, src.public_ip) if a)
    seen, others = seen_connections(
        packets.read_segments(cap.path), token, count, client, addresses, node_addresses(lab)
    )
    return ProbeResult(
        client,
        addresses,
        endpoint.text,
        on_host,
        dst.ip,
        count,
        seen,
        conns,
        others,
        cap.path,
        not cap.hit_packet_limit,
    )
