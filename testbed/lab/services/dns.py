"""Service `dns`: the lab's resolver (dnsmasq on the LabDNS host) and every host's resolv.conf.

The resolver answers, from the network plan: each load balancer's DNS name with its node
addresses (public ones for internet-facing load balancers, private ones for internal), each
instance's private DNS name (ip-10-0-1-4.ec2.internal) and public one
(ec2-203-0-113-10.compute-1.amazonaws.com), `<LogicalId>.lab` for every host, and the
template's Route53 records (A records from its hosts file, CNAMEs and aliases as dnsmasq
--cname). It answers nothing else (no upstream: traffic stays in the lab), so a CNAME is
served only when its target is a name the resolver knows (a load balancer, a lab name or
another record): dnsmasq answers a --cname only for a local target. Hosts use it through
/etc/netns/<namespace>/resolv.conf, which `ip netns exec` (testbed exec, roles, the load
client) mounts over /etc/resolv.conf; Mininet CLI shells keep the machine's resolver.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from testbed.errors import LabError
from testbed.lab.controller_proc import log_tail
from testbed.lab.hostexec import host_dir, netns_argv
from testbed.lab.procs import is_alive
from testbed.lab.programs import bound_udp_ports
from testbed.lab.services import ServiceContext
from testbed.plan.merge import resolver_name
from testbed.plan.network import HostPlan, NetworkPlan
from testbed.waiting import WaitTimeout, wait_for

DNSMASQ = "/usr/sbin/dnsmasq"
NETNS_ETC = Path("/etc/netns")
TTL_S = 60  # AWS's load balancer records live 60 s
DNS_PORT = 53
READY_TIMEOUT = 10.0


def records(plan: NetworkPlan) -> list[tuple[str, str]]:
    """(address, name) pairs the resolver serves, in a stable order."""
    out: list[tuple[str, str]] = []
    for lb in plan.load_balancers:
        public = lb.scheme == "internet-facing"
        for node in lb.nodes:
            out.append(((node.public_ip if public and node.public_ip else node.ip), lb.dns_name))
    for record in plan.dns_records:
        if record.type == "A":
            out += [(value, record.name) for value in record.values]
    for h in plan.hosts:
        if h.kind in ("instance", "client", "natgw"):
            out.append((h.ip, f"{h.name.lower()}.lab"))
        if h.kind in ("instance", "natgw"):
            out += _vpc_names(h.ip, h.public_ip)
        if h.kind == "instance":
            # An extra interface's address has its own names, as each ENI's on AWS.
            for i in h.interfaces:
                out += _vpc_names(i.ip, i.public_ip)
    return out


def cnames(plan: NetworkPlan) -> tuple[list[tuple[str, str]], list[str]]:
    """The CNAMEs the resolver serves, (name, target) in declaration order, and what it
    cannot serve, in words: a CNAME whose target is not a name the resolver knows (dnsmasq
    answers a CNAME only for a local target), or a second CNAME of one name (a routing
    policy: the first is served)."""
    local = {name.lower() for _, name in records(plan)}  # DNS names ignore case
    wanted: dict[str, tuple[str, str]] = {}  # name -> (target, record)
    notes = []
    for record in plan.dns_records:
        if record.type != "CNAME":
            continue
        if record.name in wanted:
            notes.append(
                f"{record.record}: {record.name} CNAME {record.values[0]} not served: "
                f"{wanted[record.name][1]} gives {record.name} its CNAME (routing policies "
                "are not emulated)"
            )
            continue
        wanted[record.name] = (record.values[0], record.record)
    served: dict[str, str] = {}
    # A CNAME may point at another CNAME: serve those whose chain ends in a local name.
    changed = True
    while changed:
        changed = False
        for name, (target, _) in wanted.items():
            if name not in served and (target.lower() in local or target in served):
                served[name] = target
                changed = True
    for name, (target, owner) in wanted.items():
        if name not in served:
            notes.append(
                f"{owner}: {name} CNAME {target} not served: the lab's resolver knows no "
                f"{target} (it answers only the lab's own names)"
            )
    return [(name, wanted[name][0]) for name in wanted if name in served], notes


def _vpc_names(ip: str, public_ip: str | None) -> list[tuple[str, str]]:
    """The resolver's names of a VPC address (and of its public address, when it has one)."""
    out = [(ip, "ip-" + ip.replace(".", "-") + ".ec2.internal")]
    if public_ip:
        out.append((public_ip, "ec2-" + public_ip.replace(".", "-") + ".compute-1.amazonaws.com"))
    return out


def resolver_for(plan: NetworkPlan, host: HostPlan) -> str | None:
    """The resolver address a host uses: its VPC's base + 2, or the internet's .2 (on the
    resolver of its VPC's address space, when VPCs of the lab share addresses)."""
    resolvers = [h for h in plan.hosts if h.kind == "dns"]
    if not resolvers:
        return None
    vpc_of = next((v for v in plan.vpcs if v.name == host.vpc), None)
    space = vpc_of.space if vpc_of is not None else 0
    mine = [h for h in resolvers if h.name == resolver_name(space)] or resolvers
    ips = [ip for dns in mine for ip in (dns.ip, *dns.extra_ips)]
    for ip in ips:
        if host.kind == "client" and IPv4Address(ip) in IPv4Network(plan.internet_cidr):
            return ip
        if host.vpc is not None:
            vpc = next(v for v in plan.vpcs if v.name == host.vpc)
            if IPv4Address(ip) in IPv4Network(vpc.cidr):
                return ip
    return None


def start(ctx: ServiceContext, host: HostPlan) -> None:
    """dnsmasq on the resolver host; a resolv.conf for every other host."""
    if host.kind == "dns":
        _start_resolver(ctx, host)
        return
    server = resolver_for(ctx.plan, host)
    if server is None:
        return
    etc = NETNS_ETC / host.netns  # removed by teardown with the lab's prefix
    etc.mkdir(parents=True, exist_ok=True)
    search = "ec2.internal" if host.kind != "client" else "lab"
    (etc / "resolv.conf").write_text(
        f"# lab {ctx.lab}: the lab's resolver\n"
        f"nameserver {server}\nsearch {search} lab\n"
        "options timeout:1 attempts:2\n"
    )


def refresh(ctx: ServiceContext) -> bool:
    """The resolvers' records again from ctx.plan (instances launched or terminated while the
    lab runs): their hosts files rewritten and dnsmasq told to read them (SIGHUP). False when
    the lab has no running resolver. When the plan gives a resolver other addresses (a VPC of
    a stack added to the lab, or deleted from it: issue 14), its netns gets them and dnsmasq,
    which listens on each address, starts again. (A lab whose VPCs share addresses has a
    resolver per address space: LabDNS, LabDNS-1, ...)"""
    done = False
    for dns in [h for h in ctx.plan.hosts if h.kind == "dns"]:
        done = _refresh_one(ctx, dns) or done
    return done


def _refresh_one(ctx: ServiceContext, dns: HostPlan) -> bool:
    running = [
        r
        for r in ctx.journal.records()
        if r.host == dns.name and r.what == "dnsmasq" and is_alive(r)
    ]
    if not running:
        return False
    if _set_addresses(ctx, dns):
        for r in running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(r.pid, signal.SIGTERM)
        wait_for(
            lambda: not any(is_alive(r) for r in running),
            READY_TIMEOUT,
            f"the old dnsmasq of {dns.name} to end",
            interval=0.02,
        )
        _start_resolver(ctx, dns)
        return True
    hosts_file = host_dir(ctx.lab, dns.name) / "hosts"
    text = "".join(f"{ip} {name}\n" for ip, name in records(ctx.plan))
    # Written whole, then renamed: dnsmasq never reads half a file.
    partial = hosts_file.with_suffix(".new")
    partial.write_text(text)
    partial.replace(hosts_file)
    for r in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(r.pid, signal.SIGHUP)
    return True


def _set_addresses(ctx: ServiceContext, dns: HostPlan) -> bool:
    """The resolver's netns with exactly the plan's addresses on eth0; True if it changed."""
    wanted = {dns.ip, *dns.extra_ips}
    shown = subprocess.run(
        netns_argv(
            ctx.lab, dns.name, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"], record=None
        ),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    have = {line.split()[3].split("/")[0] for line in shown.splitlines() if " inet " in line}
    if have == wanted:
        return False
    batch = "".join(f"addr add {ip}/32 dev eth0\n" for ip in sorted(wanted - have))
    batch += "".join(f"addr del {ip}/32 dev eth0\n" for ip in sorted(have - wanted))
    subprocess.run(
        netns_argv(ctx.lab, dns.name, ["ip", "-batch", "-"], record=None),
        input=batch,
        capture_output=True,
        text=True,
        check=True,
    )
    ctx.events.emit(
        dns.name,
        "Lab::Dns",
        "DNS_ADDRESSES",
        f"now on {', '.join((dns.ip, *dns.extra_ips))}",
    )
    return True


def forget(host: HostPlan) -> None:
    """Remove what start() wrote for a host that left the lab (its resolv.conf)."""
    shutil.rmtree(NETNS_ETC / host.netns, ignore_errors=True)


def _start_resolver(ctx: ServiceContext, host: HostPlan) -> None:
    if not shutil.which(DNSMASQ) and not Path(DNSMASQ).exists():
        ctx.events.emit(
            host.name,
            "Lab::Dns",
            "DNS_UNAVAILABLE",
            "dnsmasq is not installed (apt-get install dnsmasq-base): names of "
            "load balancers will not resolve",
        )
        return
    hdir = host_dir(ctx.lab, host.name)
    hdir.mkdir(parents=True, exist_ok=True)
    hosts_file = hdir / "hosts"
    hosts_file.write_text("".join(f"{ip} {name}\n" for ip, name in records(ctx.plan)))
    argv = [
        DNSMASQ,
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--no-poll",
        f"--addn-hosts={hosts_file}",
        "--bind-interfaces",
        "--pid-file=",
        "--user=root",
        "--group=root",
        f"--local-ttl={TTL_S}",
        "--cache-size=0",
        "--log-queries",
        f"--log-facility={hdir / 'dns-queries.log'}",
    ]
    for ip in (host.ip, *host.extra_ips):
        argv.append(f"--listen-address={ip}")
    aliases, notes = cnames(ctx.plan)
    argv += [f"--cname={name},{target}" for name, target in aliases]
    for text in notes:
        ctx.events.emit(host.name, "Lab::Dns", "DNS_RECORD_NOT_SERVED", text)
    log = hdir / "dnsmasq.log"
    proc = ctx.journal.start(
        netns_argv(ctx.lab, host.name, argv, record="dnsmasq"),
        what="dnsmasq",
        host=host.name,
        log=log,
        env=ctx.env,
    )
    with contextlib.suppress(WaitTimeout):  # reported below, with the log
        wait_for(
            lambda: proc.poll() is not None or DNS_PORT in bound_udp_ports(proc.pid),
            READY_TIMEOUT,
            f"dnsmasq of {host.name} to bind port {DNS_PORT}",
            interval=0.02,
        )
    if proc.poll() is not None or DNS_PORT not in bound_udp_ports(proc.pid):
        raise LabError(
            f"the lab's resolver (dnsmasq) did not start; {log} ends with:\n{log_tail(log)}"
        )
    ctx.events.emit(
        host.name,
        "Lab::Dns",
        "DNS_STARTED",
        f"dnsmasq pid {proc.pid} on {', '.join((host.ip, *host.extra_ips))}, "
        f"{len(records(ctx.plan)) + len(aliases)} records ({hosts_file}"
        + (f", {len(aliases)} of them CNAME" if aliases else "")
        + ")",
    )
