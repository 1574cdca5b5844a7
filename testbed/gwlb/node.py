"""A Gateway Load Balancer node: steers its endpoints' traffic through appliances in GENEVE.

Runs in the node's namespace (one per GWLB node host):
- frames the controller sends to the node's GWLB endpoints (destination MAC = the
  endpoint's) come in on a packet socket; each packet's flow key (stickiness type, symmetric)
  finds its flow, or a new flow is hashed onto an appliance (steering.Steering); the whole
  IPv4 packet goes to that appliance in GENEVE (endpoint id, attachment id 0, flow cookie)
  from the node's address to UDP 6081;
- GENEVE coming back on the node's UDP 6081 is unwrapped and the packet leaves eth0 from the
  endpoint its options name (source MAC = the endpoint's, destination = the VPC router), so
  the controller routes it on with the endpoint subnet's route table;
- the node's health checker (testbed.lb.health_checker) checks the appliances in its AZ;
  appliance states come from the holder every POLL_S;
- counters: a status file (JSON, every second) in the host's folder, and on 127.0.0.1:
  GET /status, GET /flows[?end=IP[:PORT]&max_age_s=S&limit=N];
- the plan file is looked at every PLAN_S: endpoints that come or go (a spoke stack added to
  or deleted from the lab, issue 14: AWS's distributed design) are served from then on, the
  packet socket's filter following them; flows of an endpoint that went stay until idle.

With the switch datapath (issue 15: the node's NodePlan in plan.json has a tunnel_port) the
controller programs all of the above into Open vSwitch and this process runs
testbed.gwlb.switch_node instead: no packet socket, no UDP 6081; the same health checker,
holder polling, /status ("datapath": "switch"), /flows and status file, read from the switch.

    python -m testbed.gwlb.node --host GWLB-1a --lb GWLB --az us-east-1a --ip 10.0.4.5 \
        --plan /run/elb-testbed/L/plan.json --holder /run/elb-testbed/L/holder.sock
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testbed import asks, rpc
from testbed.gwlb import admin, rawsock
from testbed.gwlb.flowkey import (
    FIVE_TUPLE,
    describe,
    endpoint_bytes,
    is_tcp_syn,
    key_ends,
    key_function,
)
from testbed.gwlb.steering import NO_REBALANCE, Steering, TargetState
from testbed.lb.health_checker import Checker
from testbed.messages import TargetDescription
from testbed.packets import geneve
from testbed.plan.balancers import LoadBalancerPlan
from testbed.plan.network import host_mac

if TYPE_CHECKING:
    from testbed.gwlb.switch_node import SwitchNode

BATCH = 256  # packets taken from one socket before looking at the other
POLL_S = 0.5  # appliance states from the holder
STATUS_S = 1.0
EXPIRE_S = 1.0
PLAN_S = 0.1  # how often the plan file's modification time is looked at
MAX_EVENTS = 200
ETH_IPV4 = b"\x08\x00"
OPT_ENDPOINT = b"\x01\x08\x01\x02"  # class 0x0108, type 1, 2 words
OPT_COOKIE = b"\x01\x08\x03\x01"  # class 0x0108, type 3, 1 word
SOCK_BUFFER = 8 << 20
SO_RCVBUFFORCE, SO_SNDBUFFORCE = 33, 32
IP_MTU_DISCOVER, IP_PMTUDISC_DONT = 10, 0


@dataclass(frozen=True)
class Endpoint:
    """A GWLB endpoint as the node sees it."""

    name: str
    ip: str
    mac: bytes
    id: int  # the GENEVE endpoint id option
    eth_header: bytes  # to the VPC router, from the endpoint
    served: bool  # the controller sends this endpoint's traffic to this node
    # Its VPC's address space (issue 14), appended to its flows' keys: two spokes with the
    # same addresses behind one GWLB never share a flow (AWS keys flows per endpoint). Empty
    # in space 0, where no addresses repeat: keys (and their hashes) are as they always were.
    realm: bytes = b""
    number: int = 0  # 1-based in the plan's endpoints: the switch datapath's reg6 and cookies


def endpoint_realm(mac: bytes) -> tuple[bytes, int]:
    """(flow-key suffix, GENEVE endpoint id offset) of an endpoint from its MAC (02:ss:ip):
    nothing for address space 0."""
    space = mac[1]
    return (bytes((0xFF, space)), space << 32) if space else (b"", 0)


@dataclass(frozen=True)
class NodeConfig:
    """What one node needs from the lab's plan."""

    lb: LoadBalancerPlan
    tg: str | None  # the target group of the GWLB's listener
    stickiness: str
    on_unhealthy: str
    on_deregistration: str
    cross_zone: bool
    endpoints: tuple[Endpoint, ...]


def node_config(plan: dict[str, Any], host: str, lb_name: str) -> NodeConfig:
    """The node's configuration from plan.json (endpoints read defensively: older plans
    have none)."""
    lb = LoadBalancerPlan.from_dict(
        next(x for x in plan.get("load_balancers", []) if x["name"] == lb_name)
    )
    tg_name = next((lis.target_group for lis in lb.listeners if lis.target_group), None)
    tg = lb.target_group(tg_name) if tg_name else None
    attrs = tg.attributes if tg else {}
    router = rawsock.mac_bytes(plan.get("router_mac", "02:00:00:00:00:fe"))
    endpoints = []
    for number, ep in enumerate(plan.get("endpoints", []), start=1):
        if ep.get("gwlb") != lb_name:
            continue
        mac = rawsock.mac_bytes(ep.get("mac") or host_mac(ep["ip"]))
        realm, id_offset = endpoint_realm(mac)
        endpoints.append(
            Endpoint(
                ep["name"],
                ep["ip"],
                mac,
                geneve.endpoint_id(ep["ip"]) ^ id_offset,
                router + mac + ETH_IPV4,
                ep.get("node_host") == host,
                realm,
                number,
            )
        )
    return NodeConfig(
        lb=lb,
        tg=tg_name,
        stickiness=tg.stickiness if tg else "5-tuple",
        on_unhealthy=attrs.get("target_failover.on_unhealthy", NO_REBALANCE),
        on_deregistration=attrs.get("target_failover.on_deregistration", NO_REBALANCE),
        cross_zone=lb.cross_zone_for(tg) if tg else False,
        endpoints=tuple(endpoints),
    )


def target_states(rows: list[TargetDescription], tg: str | None) -> list[TargetState]:
    """TargetStates of `tg` from the holder's describe-target-health rows."""
    return [
        TargetState(
            f"{r['Target']['Id']}:{r['Target']['Port']}",
            r["Ip"],
            r["Target"]["AvailabilityZone"],
            r["TargetHealth"]["State"],
            int(r["Target"]["Port"]),
        )
        for r in rows
        if r["TargetGroup"] == tg
    ]


class Node:
    """The data path of one GWLB node and its counters."""

    def __init__(
        self,
        host: str,
        ip: str,
        az: str,
        iface: str,
        config: NodeConfig,
        plan: Path | None = None,
    ) -> None:
        self.host, self.ip, self.az, self.iface, self.config = host, ip, az, iface, config
        self.plan = plan  # the lab's plan file, looked at for endpoints that come and go
        self.plan_seen = _mtime(plan)
        lb = config.lb
        self.steering = Steering(
            on_unhealthy=config.on_unhealthy,
            on_deregistration=config.on_deregistration,
            az=az,
            cross_zone=config.cross_zone,
            idle_tcp_s=lb.idle_tcp_s,
            idle_other_s=lb.idle_udp_s,
        )
        self.keyfn = key_function(config.stickiness)
        # Only a 5-tuple flow is one connection; 3- and 2-tuple flows carry many at once.
        self.reopen = config.stickiness == FIVE_TUPLE
        self.by_mac = {e.mac: e for e in config.endpoints if e.served}
        self.by_id = {e.id: e for e in config.endpoints}
        self.by_ip: dict[str, Any] = {}  # appliance address -> Appliance (return counters)
        self.pending: list[TargetState] | None = None  # the poller's latest view
        self.events: list[str] = []
        self.packets_in = self.bytes_in = self.packets_back = self.bytes_back = 0
        self.ignored = self.no_appliance = self.unknown_endpoint = self.bad_geneve = 0
        self.send_errors = self.reopened = 0
        self.stopping = False
        self.started = time.time()

    def open(self) -> None:
        """The packet socket on the endpoints' MACs and the GENEVE socket."""
        self.raw = rawsock.open_packet_socket(self.iface, list(self.by_mac))
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, SOCK_BUFFER)
        s.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, SOCK_BUFFER)
        # A full-size packet plus the tunnel headers exceeds the link MTU: let the kernel
        # fragment the outer datagram (appliances clamp TCP below that).
        s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT)
        s.bind((self.ip, geneve.UDP_PORT))
        s.setblocking(False)
        self.udp = s

    def close(self) -> None:
        """Close both sockets (promiscuous mode ends with the packet socket)."""
        self.raw.close()
        self.udp.close()

    # ---- data path ---------------------------------------------------------------------
    def from_endpoints(self, now: float) -> None:
        """Frames routed to an endpoint: to an appliance, in GENEVE."""
        recv, by_mac, keyfn, reopen = self.raw.recv, self.by_mac, self.keyfn, self.reopen
        flows, steering, sendto = self.steering.flows, self.steering, self.udp.sendto
        for _ in range(BATCH):
            try:
                frame = recv(65535)
            except BlockingIOError:
                return
            ep = by_mac.get(frame[:6])
            if ep is None or frame[12:14] != ETH_IPV4:
                self.ignored += 1
                continue
            key, forward = keyfn(frame, 14)
            key += ep.realm
            flow = flows.get(key)
            if flow is not None and reopen and is_tcp_syn(frame, 14):
                # A new connection on a 5-tuple used before: the old one is over, so this is
                # a new flow (hashed over today's healthy appliances), as conntrack sees it.
                steering.close(key)
                self.reopened += 1
                flow = None
            if flow is None:
                flow = steering.open(key, forward, frame[23], ep, now)
                if flow is None:
                    self.no_appliance += 1
                    continue
                flow.header = geneve.gwlb_header(ep.id, flow.cookie).serialize()
            flow.last = now
            size = (frame[16] << 8) | frame[17]  # IPv4 total length: frames may be padded
            header = (
                flow.header
                if ep is flow.endpoint
                else geneve.gwlb_header(ep.id, flow.cookie).serialize()
            )
            appliance = flow.appliance
            try:
                sendto(header + frame[14 : 14 + size], appliance.addr)
            except OSError:
                self.send_errors += 1
                continue
            self.packets_in += 1
            self.bytes_in += size
            appliance.tx_packets += 1
            appliance.tx_bytes += size
            if forward == flow.forward:
                flow.fwd_packets += 1
                appliance.fwd_packets += 1
            else:
                flow.rev_packets += 1
                appliance.rev_packets += 1
            flow.bytes += size

    def from_appliances(self, now: float) -> None:
        """GENEVE back from appliances: out of eth0, from the endpoint it names."""
        recvfrom, send, by_id = self.udp.recvfrom, self.raw.send, self.by_id
        cookies, by_ip = self.steering.cookies, self.by_ip
        for _ in range(BATCH):
            try:
                data, addr = recvfrom(65535)
            except BlockingIOError:
                return
            if data[0] == 0x08 and data[8:12] == OPT_ENDPOINT and data[32:36] == OPT_COOKIE:
                endpoint_id = int.from_bytes(data[12:20], "big")  # our own layout: fast path
                cookie = int.from_bytes(data[36:40], "big")
                inner = data[geneve.GWLB_HEADER_LEN :]
            else:
                try:
                    header, inner = geneve.parse(data)
                except geneve.GeneveError:
                    self.bad_geneve += 1
                    continue
                # A missing option finds nothing: no endpoint id or cookie is ever 0.
                endpoint_id, cookie = header.endpoint_id or 0, header.flow_cookie or 0
            ep = by_id.get(endpoint_id)
            if ep is None or len(inner) < 20:
                self.unknown_endpoint += 1
                continue
            try:
                send(ep.eth_header + inner)
            except OSError:
                self.send_errors += 1
                continue
            self.packets_back += 1
            self.bytes_back += len(inner)
            flow = cookies.get(cookie)
            if flow is not None:
                flow.last = now
            appliance = by_ip.get(addr[0])
            if appliance is not None:
                appliance.rx_packets += 1
                appliance.rx_bytes += len(inner)

    # ---- control -----------------------------------------------------------------------
    def apply_targets(self) -> None:
        """Take the poller's latest appliance states (in the data path's thread)."""
        states, self.pending = self.pending, None
        if states is None:
            return
        if self.steering.set_targets(states):
            self.by_ip = {a.ip: a for a in self.steering.appliances.values()}
        if self.steering.events:
            stamp = time.strftime("%H:%M:%S")
            for event in self.steering.events:
                print(f"{stamp} {event}", flush=True)
            self.events = (self.events + [f"{time.time():.3f} {e}" for e in self.steering.events])[
                -MAX_EVENTS:
            ]
            self.steering.events.clear()

    def reload_endpoints(self) -> bool:
        """The endpoints of the plan file as it is now, if it changed (in the data path's
        thread): served from now on, the packet socket's filter set to their MACs. True when
        they changed."""
        self.plan_seen, config = changed_endpoints(
            self.plan, self.plan_seen, self.host, self.config
        )
        if config is None:
            return False
        self.config = config
        self.by_mac = {e.mac: e for e in config.endpoints if e.served}
        self.by_id = {e.id: e for e in config.endpoints}
        rawsock.attach_filter(self.raw, rawsock.mac_filter(list(self.by_mac)))
        served = ", ".join(f"{e.name} ({e.ip})" for e in config.endpoints if e.served) or "none"
        print(f"{time.strftime('%H:%M:%S')} endpoints now {served}", flush=True)
        return True

    def run(self) -> None:
        """The data path loop, until stopping is set."""
        poller = select.epoll()
        raw_fd, udp_fd = self.raw.fileno(), self.udp.fileno()
        poller.register(raw_fd, select.EPOLLIN)
        poller.register(udp_fd, select.EPOLLIN)
        next_expire = time.monotonic() + EXPIRE_S
        next_plan = time.monotonic() + PLAN_S
        while not self.stopping:
            events = poller.poll(0.1)
            now = time.monotonic()
            for fd, _ in events:
                if fd == raw_fd:
                    self.from_endpoints(now)
                else:
                    self.from_appliances(now)
            if self.pending is not None:
                self.apply_targets()
            if now >= next_expire:
                self.steering.expire(now)
                next_expire = now + EXPIRE_S
            if now >= next_plan:
                self.reload_endpoints()
                next_plan = now + PLAN_S
        poller.close()

    # ---- views -------------------------------------------------------------------------
    def status(self, fresh: bool = True) -> dict[str, Any]:
        """Counters of the node and of each appliance (always fresh: counted as packets
        pass)."""
        s = self.steering
        return {
            **status_header(self.host, self.az, self.ip, "node", self.config, s, self.started),
            "endpoints": [
                {"name": e.name, "ip": e.ip, "served": e.served, "id": f"{e.id:#018x}"}
                for e in self.config.endpoints
            ],
            "flows": len(s.flows),
            "expired_flows": s.expired,
            "new_flows": sum(a.new_flows for a in list(s.appliances.values())),
            "packets_in": self.packets_in,
            "bytes_in": self.bytes_in,
            "packets_back": self.packets_back,
            "bytes_back": self.bytes_back,
            "ignored": self.ignored,
            "no_appliance": self.no_appliance,
            "unknown_endpoint": self.unknown_endpoint,
            "bad_geneve": self.bad_geneve,
            "send_errors": self.send_errors,
            "reopened_flows": self.reopened,
            "candidates": [a.key for a in s.candidates],
            "appliances": [a.as_dict() for a in list(s.appliances.values())],
            "events": self.events[-50:],
        }

    def flow_rows(
        self, limit: int = 10000, end: str | None = None, max_age_s: float | None = None
    ) -> list[dict[str, Any]]:
        """The flow table, one row per flow, oldest first. `end` keeps the flows with that
        endpoint ("ip:port", or "ip" for any port), `max_age_s` those created since; of
        more than `limit` rows, the newest are kept: a reader looks for flows it has just
        made, and after a burst of connections the table holds thousands of older ones."""
        want = endpoint_bytes(end) if end else None  # ValueError: the admin answers 400
        now = time.monotonic()
        flows = [
            f
            for f in list(self.steering.flows.values())
            if (max_age_s is None or now - f.created <= max_age_s)
            and (want is None or any(e[: len(want)] == want for e in key_ends(f.key)))
        ]
        return [
            {
                **describe(f.key),
                "appliance": f.appliance.key,
                "appliance_ip": f.appliance.ip,
                "cookie": f.cookie,
                "endpoint": f.endpoint.name,
                "established": f.fwd_packets > 0 and f.rev_packets > 0,
                "fwd_packets": f.fwd_packets,
                "rev_packets": f.rev_packets,
                "bytes": f.bytes,
                "age_s": round(now - f.created, 3),
                "idle_s": round(now - f.last, 3),
            }
            for f in (flows[-limit:] if limit > 0 else [])
        ]


def switch_datapath(plan: dict[str, Any], host: str, lb_name: str) -> tuple[str, int] | None:
    """(bridge, GENEVE port) when the switch steers for this node (its NodePlan has a
    tunnel_port), else None: the node's own data path."""
    lb: dict[str, Any] = next(
        (x for x in plan.get("load_balancers", []) if x["name"] == lb_name), {}
    )
    node: dict[str, Any] = next((n for n in lb.get("nodes", []) if n.get("host") == host), {})
    port = node.get("tunnel_port")
    if port is None:
        return None
    bridge = next(h["switch"] for h in plan.get("hosts", []) if h["name"] == host)
    return bridge, int(port)


def poll_targets(node: Node | SwitchNode, holder: str) -> None:
    """Ask the holder for the appliances' states, forever (a daemon thread)."""
    while not node.stopping:
        try:
            reply = asks.holder_targets(holder, lb=node.config.lb.name, timeout=5)
            node.pending = target_states(reply["targets"], node.config.tg)
        except (rpc.RpcUnavailable, rpc.RpcRefused, OSError, ValueError) as exc:
            print(f"node: cannot reach the holder: {exc}", file=sys.stderr, flush=True)
        time.sleep(POLL_S)


def write_status(node: Node | SwitchNode, path: Path) -> None:
    """Rewrite the status file every STATUS_S (a daemon thread)."""
    tmp = path.with_suffix(".tmp")
    while not node.stopping:
        try:
            tmp.write_text(json.dumps(node.status()))
            os.replace(tmp, path)
        except Exception as exc:  # the data path matters more than the status file
            print(f"node: status not written: {exc}", file=sys.stderr, flush=True)
        time.sleep(STATUS_S)


def run_checker(lb: str, az: str, source: str, holder: str) -> None:
    """The node's health checker (testbed.lb.health_checker), in this thread."""
    asyncio.run(Checker(lb, az, source, holder).run())


def main(argv: list[str] | None = None) -> int:
    """Run the node until SIGTERM."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--host", required=True, help="the node's lab host")
    ap.add_argument("--lb", required=True)
    ap.add_argument("--az", required=True)
    ap.add_argument("--ip", required=True, help="the node's address")
    ap.add_argument("--plan", required=True, help="the lab's plan.json")
    ap.add_argument("--holder", required=True, help="the lab holder's socket")
    ap.add_argument("--iface", default="eth0")
    ap.add_argument("--status", default=None, help="JSON status file, rewritten every second")
    ap.add_argument("--admin-port", type=int, default=8081)
    ap.add_argument("--no-health-checks", action="store_true")
    a = ap.parse_args(argv)
    plan = json.loads(Path(a.plan).read_text())
    config = node_config(plan, a.host, a.lb)
    switch = switch_datapath(plan, a.host, a.lb)
    node: Node | SwitchNode
    if switch is not None:
        from testbed.gwlb.switch_node import SwitchNode  # imports this module

        node = SwitchNode(a.host, a.ip, a.az, config, *switch, plan=Path(a.plan))
    else:
        node = Node(a.host, a.ip, a.az, a.iface, config, plan=Path(a.plan))
        node.open()
    threading.Thread(
        target=poll_targets, args=(node, a.holder), daemon=True, name="targets"
    ).start()
    if not a.no_health_checks:
        threading.Thread(
            target=run_checker, args=(a.lb, a.az, a.ip, a.holder), daemon=True, name="health"
        ).start()
    if a.status:
        threading.Thread(
            target=write_status, args=(node, Path(a.status)), daemon=True, name="status"
        ).start()
    admin.serve(
        "127.0.0.1",
        a.admin_port,
        {
            ("GET", "/status"): lambda q: node.status(fresh=True),
            ("GET", "/flows"): lambda q: node.flow_rows(
                int(q.get("limit", 10000)),
                q.get("end") or None,
                float(q["max_age_s"]) if q.get("max_age_s") else None,
            ),
        },
    )

    def stop(*_: Any) -> None:
        node.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    served = ", ".join(f"{e.name} ({e.ip})" for e in config.endpoints if e.served) or "none"
    where = (
        f"the switch {switch[0]} steers (GENEVE port {switch[1]})"
        if switch
        else f"own data path on {a.iface}"
    )
    print(
        f"gwlb node {a.host}: {where}; target group {config.tg}, stickiness "
        f"{config.stickiness}, failover {config.on_unhealthy}/{config.on_deregistration}, "
        f"endpoints {served}",
        flush=True,
    )
    if isinstance(node, Node):
        try:
            node.run()
        finally:
            node.close()
    else:
        node.run()
    return 0


def status_header(
    host: str,
    az: str,
    ip: str,
    datapath: str,
    config: NodeConfig,
    steering: Steering,
    started: float,
) -> dict[str, Any]:
    """What every GWLB node's /status begins with, whichever data path it runs: who it is,
    its load balancer's settings, and for how long it has run."""
    return {
        "host": host,
        "lb": config.lb.name,
        "az": az,
        "ip": ip,
        "datapath": datapath,
        "time": time.time(),
        "uptime_s": round(time.time() - started, 3),
        "target_group": config.tg,
        "stickiness": config.stickiness,
        "target_failover": {
            "on_unhealthy": steering.on_unhealthy,
            "on_deregistration": steering.on_deregistration,
        },
        "cross_zone": steering.cross_zone,
        "fail_open": steering.fail_open,
    }


def changed_endpoints(
    plan: Path | None, seen_before: int | None, host: str, config: NodeConfig
) -> tuple[int | None, NodeConfig | None]:
    """(the plan file's modification time, `config` with the plan's endpoints if they are not
    the ones it has, else None). A plan file being replaced or gone is read next time."""
    seen = _mtime(plan)
    if plan is None or seen == seen_before:
        return seen_before, None
    try:
        fresh = node_config(json.loads(plan.read_text()), host, config.lb.name)
    except (OSError, ValueError, KeyError, StopIteration) as exc:  # being replaced, or gone
        print(f"node: plan not read again: {exc}", file=sys.stderr, flush=True)
        return seen, None
    if fresh.endpoints == config.endpoints:
        return seen, None
    return seen, replace(config, endpoints=fresh.endpoints)


def _mtime(path: Path | None) -> int | None:
    try:
        return path.stat().st_mtime_ns if path is not None else None
    except OSError:
        return None


if __name__ == "__main__":
    sys.exit(main())
