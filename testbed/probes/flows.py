"""Which flow went where, read from where the lab keeps it: NLB flows -> target, GWLB flows ->
appliance. One row per flow, the same for `testbed flows --json` and the console.

    rows = lab_flows(lab)                          # every NLB and GWLB flow of the lab
    rows = lab_flows(lab, client="198.51.100.10")  # one client's

The sources (nothing is sampled or inferred):
- NLB: the conntrack entries of the load balancer's client-side zone (LoadBalancerPlan
  .zone_dnat) in Open vSwitch's datapath (`ovs-appctl dpctl/dump-conntrack -s`): the original
  direction is client -> node (listener), the entry's ct_label the target the controller chose
  (its address in bits 16-47, its port below: testbed.controllers.nlb.endpoint_label). The
  target side zone (zone_snat) adds the connections a node's HAProxy opens from clients'
  addresses for TLS listeners (label: a flag in bit 96 and the node's address): the client's
  port there is HAProxy's, not the client's, and the listener port is not known.
  Closed TCP connections stay listed while conntrack keeps them (TIME_WAIT: state says so).
  The userspace datapath counts no packets per entry and records no start time: packets,
  bytes and age_s are None there (the kernel datapath gives packets/bytes when conntrack
  accounting is on).
- GWLB: each node's flow table (`/flows` on 127.0.0.1:8081 inside the node host,
  testbed.gwlb.observe.node_flows): the appliance, age, and packets/bytes where the node
  datapath counts them (None on the switch datapath). GWLB keys are symmetric: the client is
  the end matching `client`, else the end with the higher port (the ephemeral one). state is
  the switch's conntrack state (switch datapath), else established/new (both directions
  seen or not: node datapath).

destination is the listener address the client used (an NLB node's public address for
clients from the internet). Row keys (every row has all of them; None where the source does
not say):
    lb, type ("network" | "gateway"), node, az, client, client_port, destination,
    destination_port, protocol ("tcp" | "udp" | "icmp" | a number), target, target_ip,
    target_port, appliance, appliance_ip, state, packets, bytes, age_s, expires_s
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from testbed.errors import BadInput
from testbed.gwlb.observe import node_flows
from testbed.lab.api import Lab
from testbed.lab.system import run
from testbed.plan.balancers import LoadBalancerPlan
from testbed.plan.network import NetworkPlan

ROW_KEYS = (
    "lb",
    "type",
    "node",
    "az",
    "client",
    "client_port",
    "destination",
    "destination_port",
    "protocol",
    "target",
    "target_ip",
    "target_port",
    "appliance",
    "appliance_ip",
    "state",
    "packets",
    "bytes",
    "age_s",
    "expires_s",
)
PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp"}
# The NLB's ct_label layout (testbed.controllers.nlb): endpoint in the low 48 bits, bit 96
# flags a node's transparent (TLS listener, client address kept) connection.
TRANSPARENT_FLAG = 1 << 96
# ovs-appctl names the datapaths <type>@<name>; the lab's datapath kind -> its name.
DATAPATHS = {"user": "netdev@ovs-netdev", "kernel": "system@ovs-system"}

_TUPLE = re.compile(r"(orig|reply)=\(([^)]*)\)")
_FIELD = re.compile(r"(?:^|,)(zone|timeout|labels|mark)=([^,()]+)")
_STATE = re.compile(r"protoinfo=\((?:[^)]*?)\bstate(?:_orig)?=([A-Z_0-9]+)")


def parse_conntrack(text: str) -> list[dict[str, Any]]:
    """Entries of `ovs-appctl dpctl/dump-conntrack [-s]` output: {proto, orig, reply, zone,
    labels, timeout, state}; orig/reply are {src, dst, sport, dport, packets, bytes}
    (ports and counters None when absent)."""
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line or "orig=(" not in line:
            continue
        proto = line.split(",", 1)[0]
        tuples: dict[str, dict[str, Any]] = {}
        for which, body in _TUPLE.findall(line):
            fields = dict(part.split("=", 1) for part in body.split(",") if "=" in part)
            tuples[which] = {
                "src": fields.get("src"),
                "dst": fields.get("dst"),
                "sport": _int(fields.get("sport")),
                "dport": _int(fields.get("dport")),
                "packets": _int(fields.get("packets")),
                "bytes": _int(fields.get("bytes")),
            }
        outside = _TUPLE.sub("", line)
        fields = dict(_FIELD.findall(outside))
        state = _STATE.search(line)
        entries.append(
            {
                "proto": proto,
                "orig": tuples.get("orig", {}),
                "reply": tuples.get("reply", {}),
                "zone": _int(fields.get("zone")),
                "labels": int(fields["labels"], 16) if "labels" in fields else 0,
                "timeout": _int(fields.get("timeout")),
                "state": state.group(1) if state else None,
            }
        )
    return entries


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _label_endpoint(label: int) -> tuple[str, int]:
    return str(ipaddress.IPv4Address((label >> 16) & 0xFFFF_FFFF)), label & 0xFFFF


def _sum(*values: int | None) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _row(**fields: Any) -> dict[str, Any]:
    return {key: fields.get(key) for key in ROW_KEYS}


def host_names(plan: NetworkPlan) -> dict[str, str]:
    """{address: host name} of every host's addresses (public ones included)."""
    names: dict[str, str] = {}
    for h in plan.hosts:
        for ip in (h.ip, h.public_ip, *(i.ip for i in h.interfaces)):
            if ip:
                names.setdefault(ip, h.name)
    return names


def vpc_addresses(plan: NetworkPlan) -> set[str]:
    """Private addresses of the hosts in a VPC: a client with one reaches an NLB node at its
    private address, any other (the internet's) at its public one."""
    return {ip for h in plan.hosts if h.vpc for ip in (h.ip, *(i.ip for i in h.interfaces))}


def nlb_rows(
    lb: LoadBalancerPlan,
    client_side: Iterable[dict[str, Any]],
    target_side: Iterable[dict[str, Any]],
    names: Mapping[str, str],
    inside: Collection[str] = (),
) -> list[dict[str, Any]]:
    """Rows of one NLB from its zones' conntrack entries (parse_conntrack): client_side from
    zone_dnat, target_side from zone_snat (only its transparent connections are used).
    destination is the node's address the client used: its public one unless the client's
    address is in `inside` (vpc_addresses); conntrack sees the private one (the internet
    gateway translated it)."""
    nodes = {n.ip: n for n in lb.nodes}
    nodes.update({n.public_ip: n for n in lb.nodes if n.public_ip})
    rows = []
    for e in client_side:
        label = e["labels"]
        if not label or label & TRANSPARENT_FLAG:
            continue  # not (yet) sent to a target
        target_ip, target_port = _label_endpoint(label)
        orig, reply = e["orig"], e["reply"]
        node = nodes.get(orig.get("dst") or "")
        destination = orig.get("dst")
        if node is not None and node.public_ip and orig.get("src") not in inside:
            destination = node.public_ip
        rows.append(
            _row(
                lb=lb.name,
                type=lb.type,
                node=node.host if node else None,
                az=node.az if node else None,
                client=orig.get("src"),
                client_port=orig.get("sport"),
                destination=destination,
                destination_port=orig.get("dport"),
                protocol=e["proto"],
                target=names.get(target_ip, target_ip),
                target_ip=target_ip,
                target_port=target_port,
                state=e["state"],
                packets=_sum(orig.get("packets"), reply.get("packets")),
                bytes=_sum(orig.get("bytes"), reply.get("bytes")),
                expires_s=e["timeout"],
            )
        )
    for e in target_side:
        label = e["labels"]
        if not label & TRANSPARENT_FLAG:
            continue  # the target side of a listener flow: already a client-side row
        node_ip, _ = _label_endpoint(label)
        orig, reply = e["orig"], e["reply"]
        node = nodes.get(node_ip)
        if node is not None and node.public_ip and orig.get("src") not in inside:
            node_ip = node.public_ip
        target_ip = orig.get("dst") or ""
        rows.append(
            _row(
                lb=lb.name,
                type=lb.type,
                node=node.host if node else None,
                az=node.az if node else None,
                client=orig.get("src"),
                client_port=orig.get("sport"),
                destination=node_ip,
                protocol=e["proto"],
                target=names.get(target_ip, target_ip),
                target_ip=target_ip,
                target_port=orig.get("dport"),
                state=e["state"],
                packets=_sum(orig.get("packets"), reply.get("packets")),
                bytes=_sum(orig.get("bytes"), reply.get("bytes")),
                expires_s=e["timeout"],
            )
        )
    return rows


def _split(endpoint: str) -> tuple[str, int | None]:
    ip, sep, port = endpoint.partition(":")
    return ip, (int(port) if sep else None)


def gwlb_rows(
    lb: LoadBalancerPlan,
    node_host: str,
    flows: Iterable[dict[str, Any]],
    names: Mapping[str, str],
    client: str | None = None,
) -> list[dict[str, Any]]:
    """Rows of one GWLB node from its /flows rows (testbed.gwlb.observe.node_flows)."""
    node = next((n for n in lb.nodes if n.host == node_host), None)
    rows = []
    for f in flows:
        a, b = _split(f["a"]), _split(f["b"])
        if client is not None:
            if client not in (a[0], b[0]):
                continue
            first, second = (a, b) if a[0] == client else (b, a)
        else:
            first, second = (a, b) if (a[1] or 0) >= (b[1] or 0) else (b, a)
        proto = f.get("proto")
        fwd, rev = f.get("fwd_packets"), f.get("rev_packets")
        appliance_ip = f.get("appliance_ip")
        established = f.get("established")
        rows.append(
            _row(
                lb=lb.name,
                type=lb.type,
                node=node_host,
                az=node.az if node else None,
                client=first[0],
                client_port=first[1],
                destination=second[0],
                destination_port=second[1],
                protocol=PROTOCOLS.get(proto, str(proto)) if proto is not None else None,
                appliance=names.get(appliance_ip or "", appliance_ip or f.get("appliance")),
                appliance_ip=appliance_ip,
                state=f.get("state") or _established(established),
                packets=_sum(fwd, rev),
                bytes=f.get("bytes"),
                age_s=f.get("age_s"),
            )
        )
    return rows


def _established(established: bool | None) -> str | None:
    if established is None:
        return None
    return "established" if established else "new"


def _dump_zone(datapath: str, zone: int) -> list[dict[str, Any]]:
    argv = ["ovs-appctl", "dpctl/dump-conntrack", "-s"]
    if datapath in DATAPATHS:
        argv.append(DATAPATHS[datapath])
    proc = run([*argv, f"zone={zone}"], check=False, timeout=30)
    return parse_conntrack(proc.stdout) if proc.returncode == 0 else []


def check_client(client: str) -> str:
    """client as an IPv4 address (BadInput if it is not one)."""
    try:
        return str(ipaddress.IPv4Address(client))
    except ValueError:
        raise BadInput(f"--client {client!r} is not an IPv4 address") from None


def lab_flows(lab: Lab, client: str | None = None) -> list[dict[str, Any]]:
    """The lab's NLB and GWLB flows (module docstring), those of `client` (an address) only
    when given; sorted by load balancer, client, client port."""
    if client is not None:
        client = check_client(client)
    plan = lab.plan
    names = host_names(plan)
    inside = vpc_addresses(plan)
    rows: list[dict[str, Any]] = []
    for lb in plan.load_balancers:
        if lb.type == "network":
            rows += nlb_rows(
                lb,
                _dump_zone(lab.datapath, lb.zone_dnat),
                _dump_zone(lab.datapath, lb.zone_snat) if lb.transparent_groups else [],
                names,
                inside,
            )
        elif lb.type == "gateway":
            for node in lb.nodes:
                rows += gwlb_rows(lb, node.host, node_flows(lab, node.host, end=client), names)
    if client is not None:
        rows = [r for r in rows if r["client"] == client]
    rows.sort(key=lambda r: (r["lb"], r["client"] or "", r["client_port"] or 0))
    return rows
