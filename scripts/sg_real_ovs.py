"""Check the security group / network ACL flows on a real Open vSwitch (userspace datapath).

Builds one bridge of its own (i10d-<pid>) holding the AZ-1 switch of the hand-made plan
(tests/security_fixture.py): WebA1 (PubA), WebA2 and WebA3 (PrivA) as network namespaces on
their plan ports, programs every flow the controller would (forwarding + security) through
`ovs-ofctl add-flows`, then checks with real packets that:
  - TCP 80 to WebA2 (group: ingress tcp 80 only, NO egress rule) connects and data comes back
    (the replies pass by state);
  - TCP 81 and ping to WebA2 are dropped, and counted by WebA2's sg-ingress drop entry;
  - WebA2 cannot open a connection of its own (no egress rule: sg-egress drop entry);
  - PubA's ACL (in: tcp 22 denied from PrivA, everything else allowed; out: all) drops
    TCP 22 from WebA2 to WebA1 and lets TCP 80 through.
Everything it creates is removed at the end (bridge, namespaces, conntrack zones).
Run as root from the worktree: .venv/bin/python scripts/sg_real_ovs.py [--controller] [--bench]
(--controller: the lab's os-ken application programs the bridge over OpenFlow instead of
ovs-ofctl, so os-ken's encoding of every flow meets the real switch. --bench: throughput and
new connections/s to WebA2 (a 50-rule group) vs WebA3 (no groups), alternating, one run;
--rounds=N: how many alternations, default 3; --conns=N connections per measurement.)
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from testbed.controllers.flows import (
    IN_PORT,
    Ct,
    DecTtl,
    Flow,
    Move,
    Output,
    SetField,
)
from testbed.controllers.security import PRIO_DENY, SecurityLogic
from testbed.plan.network import SgRulePlan
from tests.security_fixture import (
    Controller,
    acl,
    entry,
    group,
    secured,
    tcp,
)

PID = os.getpid()
BRIDGE = f"i10d-{PID}"
CONNS = next((int(a.split("=")[1]) for a in sys.argv if a.startswith("--conns=")), 200)
LISTEN_S = 600 if "--bench" in sys.argv else 20  # how long the echo listeners live
ZONE_BASE = 0xE000  # far from the labs' blocks (0x4000 + 32 per lab)

FIELD = {
    "eth_type": "dl_type",
    "eth_src": "dl_src",
    "eth_dst": "dl_dst",
    "ip_proto": "nw_proto",
    "ipv4_src": "nw_src",
    "ipv4_dst": "nw_dst",
    "icmpv4_type": "icmp_type",
    "icmpv4_code": "icmp_code",
}


def sh(cmd: str, check: bool = True) -> str:
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if check and r.returncode:
        raise RuntimeError(f"{cmd}: {r.stderr.strip()}")
    return r.stdout


def text(f: Flow) -> str:
    """One flow in ovs-ofctl's syntax."""
    parts = [f"table={f.table}", f"priority={f.priority}"]
    for k, v in f.match:
        name = FIELD.get(k, k)
        if isinstance(v, tuple):
            a, m = v
            parts.append(f"{name}={a}/{m}" if isinstance(a, str) else f"{name}={a:#x}/{m:#x}")
        else:
            parts.append(f"{name}={v:#x}" if k == "eth_type" else f"{name}={v}")
    acts = []
    for a in f.actions:
        if isinstance(a, Output):
            acts.append("in_port" if a.port == IN_PORT else f"output:{a.port}")
        elif isinstance(a, SetField):
            acts.append(f"set_field:{a.value}->{FIELD.get(a.field, a.field)}")
        elif isinstance(a, DecTtl):
            acts.append("dec_ttl")
        elif isinstance(a, Move):
            src = f"{a.src}[{a.src_ofs}..{a.src_ofs + a.n_bits - 1}]"
            dst = f"{a.dst}[{a.dst_ofs}..{a.dst_ofs + a.n_bits - 1}]"
            acts.append(f"move:{_nxm(src)}->{_nxm(dst)}")
        elif isinstance(a, Ct):
            inner = ["commit"] if a.commit else []
            inner.append(f"zone={a.zone}")
            if a.table is not None:
                inner.append(f"table={a.table}")
            acts.append(f"ct({','.join(inner)})")
        else:
            raise TypeError(a)
    if f.metadata is not None:
        acts.append(f"write_metadata:{f.metadata[0]:#x}/{f.metadata[1]:#x}")
    if f.goto is not None:
        acts.append(f"goto_table:{f.goto}")
    return ",".join(parts) + " actions=" + (",".join(acts) or "drop")


def _nxm(ref: str) -> str:
    names = {
        "eth_src": "NXM_OF_ETH_SRC",
        "eth_dst": "NXM_OF_ETH_DST",
        "arp_sha": "NXM_NX_ARP_SHA",
        "arp_tha": "NXM_NX_ARP_THA",
        "arp_spa": "NXM_OF_ARP_SPA",
        "arp_tpa": "NXM_OF_ARP_TPA",
        "reg3": "NXM_NX_REG3",
    }
    field, bits = ref.split("[")
    return f"{names[field]}[{bits}"


def ns(host: str) -> str:
    return f"i10d-{PID}-{host}"


def in_ns(host: str, cmd: str, check: bool = True) -> str:
    return sh(f"ip netns exec {ns(host)} {cmd}", check)


def build_plan() -> Any:
    web = group(
        "Web",
        ingress=(
            tcp(80),
            tcp(8000, 8100, cidr="10.0.0.0/24"),  # masked port matches
            SgRulePlan(1, 8, -1, cidr="10.0.1.5/32"),  # echo requests from WebA3 only
            tcp(5201),  # iperf3 (--bench)
            # Rules that match nothing here, so that the group has 50 (the benchmark).
            *(tcp(10000 + i, cidr=f"192.0.2.{i}/32") for i in range(45)),
        ),
        egress=(),  # no outbound rule at all
    )
    pub = acl(
        "PubAcl",
        ("PubA",),
        entry(100, False, 6, "10.0.1.0/24", allow=False, ports=(22, 22)),
        entry(200, False),
        entry(100, True),
    )
    plan = secured((web,), {"WebA2": ("Web",)}, (pub,))
    # Conntrack zones of our own, far from the labs'.
    from dataclasses import replace

    hosts = tuple(
        replace(h, sg_zone=ZONE_BASE + (h.sg_zone - 0x4000)) if h.sg_zone else h for h in plan.hosts
    )
    return replace(plan, hosts=hosts)


def setup(plan: Any, names: list[str]) -> None:
    sh(
        f"ovs-vsctl add-br {BRIDGE} -- set bridge {BRIDGE} datapath_type=netdev "
        f"fail_mode=secure protocols=OpenFlow13"
    )
    for i, name in enumerate(names):
        h = plan.host(name)
        outside, inside = f"i10d{PID % 100000}o{i}", f"i10d{PID % 100000}i{i}"
        sh(f"ip netns add {ns(name)}")
        sh(f"ip link add {outside} type veth peer name {inside}")
        sh(f"ip link set {inside} netns {ns(name)}")
        in_ns(name, f"ip link set {inside} name eth0")
        in_ns(name, f"ip link set eth0 address {h.mac}")
        in_ns(name, f"ip addr add {h.ip}/{h.prefixlen} dev eth0")
        in_ns(name, "ip link set eth0 up")
        in_ns(name, "ip link set lo up")
        in_ns(name, f"ip route add default via {h.gateway}")
        in_ns(name, "ethtool -K eth0 tx off", check=False)
        sh(f"ip link set {outside} up")
        sh(f"ethtool -K {outside} tx off", check=False)
        port = f"set interface {outside} ofport_request={h.port}"
        sh(f"ovs-vsctl add-port {BRIDGE} {outside} -- {port}")


def teardown(plan: Any, names: list[str]) -> None:
    sh(f"ovs-vsctl --if-exists del-br {BRIDGE}", check=False)
    for i, name in enumerate(names):
        sh(f"ip netns del {ns(name)}", check=False)
        sh(f"ip link del i10d{PID % 100000}o{i}", check=False)
    for h in plan.hosts:
        if h.sg_zone:
            sh(f"ovs-appctl dpctl/flush-conntrack zone={h.sg_zone}", check=False)


def tcp_try(src: str, dst_ip: str, port: int) -> bool:
    """A bounded TCP exchange: connect, send, read the echo back (2 s at most)."""
    code = (
        "import socket,sys\n"
        f"s=socket.create_connection(('{dst_ip}',{port}),timeout=2)\n"
        "s.sendall(b'ping');d=s.recv(4);sys.exit(0 if d==b'ping' else 1)\n"
    )
    r = subprocess.run(
        ["ip", "netns", "exec", ns(src), sys.executable, "-c", code], capture_output=True
    )
    return r.returncode == 0


def held_connection(dst_ip: str, port: int) -> subprocess.Popen:
    """A connection from WebA1 that stays open: it echoes "ping" once at once, then once
    per line on its stdin, and prints "ok" or "lost" after each exchange."""
    code = (
        "import socket,sys\n"
        f"s=socket.create_connection(('{dst_ip}',{port}),timeout=3)\n"
        "def once():\n"
        "  try:\n"
        "    s.sendall(b'ping');print('ok' if s.recv(4)==b'ping' else 'lost',flush=True)\n"
        "  except OSError: print('lost',flush=True)\n"
        "once()\n"
        "for _ in sys.stdin: once()\n"
    )
    return subprocess.Popen(
        ["ip", "netns", "exec", ns("WebA1"), sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def live_rule_removal(plan: Any) -> list[str]:
    """With a connection to WebA2:8050 established (rule tcp 8000-8100), the rule goes (a
    live update: the plan file changes, the controller's reload_security): the connection
    goes on, a new one to 8050 is dropped, port 80 still opens."""
    from dataclasses import replace

    from testbed import asks

    failures = []
    server = listen("WebA2", 8050, persistent=True)
    wait_listening("WebA2", 8050)
    conn = held_connection("10.0.1.4", 8050)
    assert conn.stdin is not None
    assert conn.stdout is not None
    first = conn.stdout.readline().strip()
    web = plan.security_group("Web")
    kept = tuple(r for r in web.ingress if r.from_port != 8000)
    fewer = replace(plan, security_groups=(replace(web, ingress=kept),))
    with open(f"/tmp/i10d-{PID}.plan.json", "w") as fh:
        fh.write(fewer.to_json())
    asks.controller_reload_security(f"/tmp/i10d-{PID}.sock")
    conn.stdin.write("again\n")
    conn.stdin.flush()
    second = conn.stdout.readline().strip()
    checks = [
        ("held connection before the rule goes", first == "ok", True),
        ("held connection after the rule went (tracked)", second == "ok", True),
        ("new connection to 8050 after the rule went", tcp_try("WebA1", "10.0.1.4", 8050), False),
        ("new connection to 80 (its rule stays)", tcp_try("WebA1", "10.0.1.4", 80), True),
    ]
    conn.stdin.close()
    conn.wait(timeout=10)
    server.terminate()
    server.wait()
    for name, got, want in checks:
        print(f"{'ok  ' if got == want else 'FAIL'} live update: {name}: {got}")
        if got != want:
            failures.append(name)
    return failures


def listen(host: str, port: int, persistent: bool = False) -> subprocess.Popen:
    """A bounded echo listener (exits after LISTEN_S): one exchange per connection, or
    every exchange until the client closes (persistent)."""
    code = (
        (
            "import socket,select,time\n"
            "s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
            f"s.bind(('0.0.0.0',{port}));s.listen(64);end=time.time()+{LISTEN_S}\n"
            "while time.time()<end:\n"
            "  r,_,_=select.select([s],[],[],0.2)\n"
            "  if r:\n"
            "    c,_=s.accept();c.settimeout(LIFE)\n"
            "    try:\n"
            "      d=c.recv(4)\n"
            "      while d:\n"
            "        c.sendall(d);d=c.recv(4) if MORE else b''\n"
            "    except OSError: pass\n"
            "    c.close()\n"
        )
        .replace("LIFE", str(LISTEN_S if persistent else 2))
        .replace("MORE", str(persistent))
    )
    p = subprocess.Popen(["ip", "netns", "exec", ns(host), sys.executable, "-c", code])
    return p


def wait_listening(host: str, port: int, timeout_s: float = 10.0) -> None:
    """Until `host` has a socket listening on TCP `port` (the listener is up)."""
    deadline = time.monotonic() + timeout_s
    while f":{port} " not in in_ns(host, f"ss -Hltn sport = :{port}", check=False) + " ":
        if time.monotonic() > deadline:
            raise RuntimeError(f"{host} does not listen on {port}")
        time.sleep(0.05)


def drops(plan: Any, logic: SecurityLogic, dpid: int) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for line in sh(f"ovs-ofctl -O OpenFlow13 dump-flows {BRIDGE}").splitlines():
        if "n_packets" not in line or "actions=drop" not in line:
            continue
        table = int(line.split("table=")[1].split(",")[0])
        prio = int(line.split("priority=")[1].split(",")[0].split(" ")[0])
        packets = int(line.split("n_packets=")[1].split(",")[0])
        match: dict[str, Any] = {}
        if "in_port=" in line:
            match["in_port"] = int(line.split("in_port=")[1].split(",")[0].split(" ")[0])
        if "dl_dst=" in line:
            match["eth_dst"] = line.split("dl_dst=")[1].split(",")[0].split(" ")[0]
        if "metadata=" in line:
            v, m = line.split("metadata=")[1].split(",")[0].split(" ")[0].split("/")
            match["metadata"] = [int(v, 16), int(m, 16)]
        if "nw_dst=" in line:
            v = line.split("nw_dst=")[1].split(",")[0].split(" ")[0]
            if "/" in v:
                from ipaddress import IPv4Network

                n = IPv4Network(v)
                match["ipv4_dst"] = [str(n.network_address), str(n.netmask)]
        owner = logic.drop_owner(dpid, table, prio, match)
        if owner:
            out[owner] = out.get(owner, 0) + packets
    return out


def add_flows(flows: list[Flow]) -> bool:
    """Program the bridge with ovs-ofctl (OVS parses the flows' text itself)."""
    path = f"/tmp/i10d-{PID}.flows"
    with open(path, "w") as fh:
        fh.write("\n".join(text(f) for f in flows) + "\n")
    r = subprocess.run(
        f"ovs-ofctl -O OpenFlow13 add-flows {BRIDGE} {path}",
        shell=True,
        capture_output=True,
        text=True,
    )
    print(f"add-flows: {len(flows)} flows, rc={r.returncode} {r.stderr.strip()}")
    return r.returncode == 0


def start_controller(plan: Any, dpid: int, expected: int) -> subprocess.Popen:
    """The lab's own os-ken application programs the bridge (os-ken's encoding of every
    flow, sent over OpenFlow): returns once the bridge holds every desired flow."""
    with open(f"/tmp/i10d-{PID}.plan.json", "w") as fh:
        fh.write(plan.to_json())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "TESTBED_PLAN": f"/tmp/i10d-{PID}.plan.json"}
    env["TESTBED_CONTROL_SOCK"] = f"/tmp/i10d-{PID}.sock"
    with open(f"/tmp/i10d-{PID}.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "testbed.controllers.run", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    sh(f"ovs-vsctl set bridge {BRIDGE} other-config:datapath-id={dpid:016x}")
    sh(f"ovs-vsctl set-controller {BRIDGE} tcp:127.0.0.1:{port}")
    deadline = time.monotonic() + 60
    held = 0
    while held < expected:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"the controller installed {held} of {expected} flows")
        time.sleep(0.2)
        held = len(sh(f"ovs-ofctl -O OpenFlow13 dump-flows {BRIDGE}").splitlines()) - 1
    print(f"controller on port {port}: {held} flows installed over OpenFlow")
    return proc


def iperf(dst_host: str, dst_ip: str) -> float:
    """TCP throughput (Gbit/s) from WebA1 to dst_ip for 2 s (a bounded iperf3 pair)."""
    server = subprocess.Popen(
        ["ip", "netns", "exec", ns(dst_host), "iperf3", "-s", "-1", "-p", "5201"],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_listening(dst_host, 5201)
        out = in_ns("WebA1", f"iperf3 -c {dst_ip} -p 5201 -t 2 -J")
        return float(json.loads(out)["end"]["sum_received"]["bits_per_second"]) / 1e9
    finally:
        server.wait(timeout=10)


def connection_rate(dst_ip: str, count: int = 200) -> float:
    """New TCP connections per second from WebA1 to dst_ip:80 (each: connect, echo, close)."""
    code = (
        "import socket,time\n"
        "t=time.monotonic()\n"
        f"for _ in range({count}):\n"
        f"  s=socket.create_connection(('{dst_ip}',80),timeout=2);s.sendall(b'ping')\n"
        "  s.recv(4);s.close()\n"
        f"print({count}/(time.monotonic()-t))\n"
    )
    r = subprocess.run(
        ["ip", "netns", "exec", ns("WebA1"), sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(r.stdout)


def bench(rounds: int = 3) -> None:
    """WebA1 -> WebA2 (a 50-rule group, one conntrack lookup per direction on its port)
    against WebA1 -> WebA3 (no groups), alternating in one run; prints the ratios."""
    grouped: dict[str, list[float]] = {"gbps": [], "conn/s": []}
    plain: dict[str, list[float]] = {"gbps": [], "conn/s": []}
    for _ in range(rounds):
        grouped["gbps"].append(iperf("WebA2", "10.0.1.4"))
        plain["gbps"].append(iperf("WebA3", "10.0.1.5"))
        grouped["conn/s"].append(connection_rate("10.0.1.4", CONNS))
        plain["conn/s"].append(connection_rate("10.0.1.5", CONNS))
    for key in ("gbps", "conn/s"):
        g, p = statistics.median(grouped[key]), statistics.median(plain[key])
        paired = statistics.median(a / b for a, b in zip(grouped[key], plain[key]))
        print(
            f"bench {key}: grouped {g:.2f} / ungrouped {p:.2f} = ratio {g / p:.2f} "
            f"(median of the rounds' ratios {paired:.2f})"
        )
        print(f"  rounds grouped {grouped[key]} ungrouped {plain[key]}")


def main() -> int:
    plan = build_plan()
    names = ["WebA1", "WebA2", "WebA3"]
    az1 = plan.host("WebA2").switch
    dpid = plan.switch(az1).dpid
    ctl = Controller(plan)
    flows = ctl.flows_for(dpid)
    logic = ctl.security
    failures = []
    controller = None
    try:
        setup(plan, names)
        if "--controller" in sys.argv:
            controller = start_controller(plan, dpid, len(flows))
        elif not add_flows(flows):
            return 1
        held = len(sh(f"ovs-ofctl -O OpenFlow13 dump-flows {BRIDGE}").splitlines()) - 1
        print(f"the bridge holds {held} flows")
        ports = [("WebA2", p) for p in (80, 81, 7999, 8000, 8080, 8100, 8101)]
        ports += [("WebA1", 22), ("WebA1", 80), ("WebA3", 80)]
        listeners = [listen(host, port) for host, port in ports]  # (20 s each)
        for host, port in ports:
            wait_listening(host, port)
        checks = [
            (
                "WebA1 -> WebA2 tcp/80 (ingress rule; reply by state)",
                tcp_try("WebA1", "10.0.1.4", 80),
                True,
            ),
            ("WebA3 -> WebA2 tcp/80 same subnet", tcp_try("WebA3", "10.0.1.4", 80), True),
            ("WebA1 -> WebA2 tcp/81 (no rule)", tcp_try("WebA1", "10.0.1.4", 81), False),
            ("WebA2 -> WebA3 tcp/80 (no egress rule)", tcp_try("WebA2", "10.0.1.5", 80), False),
            (
                "WebA3 -> WebA1 tcp/22 (PubAcl denies 22 from PrivA)",
                tcp_try("WebA3", "10.0.0.4", 22),
                False,
            ),
            ("WebA3 -> WebA1 tcp/80 (PubAcl allows)", tcp_try("WebA3", "10.0.0.4", 80), True),
        ]
        for port, want in ((7999, False), (8000, True), (8080, True), (8100, True), (8101, False)):
            got = tcp_try("WebA1", "10.0.1.4", port)
            checks.append((f"WebA1 -> WebA2 tcp/{port} (rule 8000-8100)", got, want))
        ping = in_ns("WebA3", "ping -c 1 -W 1 10.0.1.4", check=False)
        checks.append(("WebA3 -> WebA2 ping (icmp type 8 from WebA3)", "1 received" in ping, True))
        ping = in_ns("WebA1", "ping -c 1 -W 1 10.0.1.4", check=False)
        checks.append(("WebA1 -> WebA2 ping (no rule)", "1 received" in ping, False))
        ping = in_ns("WebA3", "ping -c 1 -W 1 10.0.0.4", check=False)
        checks.append(
            ("WebA3 -> WebA1 ping (PubAcl allows all but 22)", "1 received" in ping, True)
        )
        for name, got, want in checks:
            print(f"{'ok  ' if got == want else 'FAIL'} {name}: {'passes' if got else 'dropped'}")
            if got != want:
                failures.append(name)
        if "--bench" in sys.argv:
            rounds = [int(a.split("=")[1]) for a in sys.argv if a.startswith("--rounds=")]
            bench(rounds[0] if rounds else 3)
        if controller is not None:
            failures += live_rule_removal(plan)
        counted = drops(plan, logic, dpid)
        print(f"drop counters: {counted}")
        for key in (("sg-ingress", "WebA2"), ("sg-egress", "WebA2"), ("nacl-in", "PubAcl")):
            if not counted.get(key):
                failures.append(f"no drops counted for {key}")
        ct = sh("ovs-appctl dpctl/dump-conntrack", check=False)
        zone = plan.host("WebA2").sg_zone
        print(f"conntrack entries in WebA2's zone {zone}: {ct.count(f'zone={zone}')}")
        for p in listeners:
            p.terminate()
            p.wait()
    finally:
        if controller is not None:
            controller.terminate()
            controller.wait()
            with open(f"/tmp/i10d-{PID}.log") as fh:
                log = fh.read()
            errors = [line for line in log.splitlines() if "rror" in line]
            print(f"controller log: {len(log.splitlines())} lines, {len(errors)} with errors")
            for line in errors[:5]:
                print("  " + line)
            if errors:
                failures.append("the controller logged errors")
        teardown(plan, names)
        for suffix in ("flows", "plan.json", "log", "sock"):
            if os.path.exists(f"/tmp/i10d-{PID}.{suffix}"):
                os.remove(f"/tmp/i10d-{PID}.{suffix}")
    print("FAILED: " + "; ".join(failures) if failures else "all checks passed")
    assert PRIO_DENY
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
