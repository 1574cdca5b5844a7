"""What a host's namespace is told beyond Mininet's eth0 setup (pure: text only, no root).

- extra interfaces (an instance's ENIs, eth1...): address, secondary addresses, up, and a
  routing table per interface for its own addresses (what Amazon Linux's ec2-net-utils sets
  up), so a reply from eth1's address leaves through eth1 and passes its port's source check;
- secondary private addresses: /32 on the interface that holds them;
- an instance: the metadata service's address (169.254.169.254) on its loopback, its
  port 80 redirected to the lab's metadata server (nftables table `imds`);
- a NAT gateway: forwarding on, no ICMP redirects, and an nftables ruleset that masquerades
  forwarded traffic to its own address and lets nothing from outside open a connection in.
"""

from __future__ import annotations

from ipaddress import IPv4Network

from testbed.plan.network import HostPlan, NetworkPlan

NAT_TABLE = "natgw"  # nftables table of a NAT gateway host: `nft list table ip natgw`
FIRST_ROUTE_TABLE = 100
IMDS_ADDRESS = "169.254.169.254"
# Where the lab's metadata server listens in each instance (port 80 is redirected to it).
IMDS_PORT = 16925
IMDS_TABLE = "imds"  # nftables table of an instance: `nft list table ip imds`
IMDS_FAILED = "IMDS_FAILED"  # eth0's own routing table; eth1's is 101, eth2's 102, ...


def tuning(hp: HostPlan | None, userspace: bool) -> tuple[str, list[str]]:
    """Shell commands every lab host runs once its links exist, and its interfaces (eth0,
    eth1, ...): sysctls, TX offload off (userspace datapath), addresses beyond eth0's first,
    extra interfaces, a NAT gateway's forwarding. Template hosts and launched ones alike."""
    # IPv6 autoconfiguration chatter is not part of the model: keep hosts IPv4-only.
    # Load clients open tens of thousands of connections a minute: a wide port range
    # and TIME_WAIT reuse keep them from stalling on their own closed sockets.
    cmd = (
        "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
        "net.ipv6.conf.default.disable_ipv6=1 net.ipv4.tcp_tw_reuse=1 "
        "net.ipv4.ip_local_port_range='1024 65535'; ip link set lo up"
    )
    intfs = ["eth0", *(i.name for i in hp.interfaces)] if hp is not None else ["eth0"]
    if userspace:
        # With the userspace datapath a host must compute TX checksums itself, or
        # TCP through OVS fails while ping works (partial checksums reach the wire).
        cmd += "".join(f"; {tx_off(i)}" for i in intfs)
    if hp is not None and hp.kind == "dns":
        # /32 addresses, one per realm; everything else is on-link behind the router.
        cmd += "; ip addr flush dev eth0" + "".join(
            f"; ip addr add {ip}/32 dev eth0" for ip in (hp.ip, *hp.extra_ips)
        )
        cmd += "; ip route replace default dev eth0"
    if hp is not None and hp.kind == "lb-node":
        # The node's own connections (health checks) use ports that no listener and
        # no SNAT'ed flow of the fabric can use (testbed's NLB keeps 1024-60999).
        cmd += "; sysctl -qw net.ipv4.ip_local_port_range='61000 65535'"
    if hp is not None and hp.kind != "dns":
        cmd += secondary_addresses("eth0", hp.extra_ips)
        if hp.interfaces:
            cmd += "; " + interface_commands(hp)
    if hp is not None and hp.kind == "natgw":
        cmd += "; " + nat_gateway_commands()
    if hp is not None and hp.kind == "instance":
        cmd += "; " + imds_commands()
    return cmd, intfs


def imds_commands() -> str:
    """The instance metadata service's address on the instance's loopback, and its port 80
    sent to the port the lab's one server listens on inside this namespace
    (testbed.lab.imds): a web server of the instance binding 0.0.0.0:80 would conflict with a
    listener on 169.254.169.254:80 (Linux refuses a wildcard and a specific listener on one
    port). Prints IMDS_FAILED when the redirection cannot be set."""
    rules = (
        f"add table ip {IMDS_TABLE}; "
        f"add chain ip {IMDS_TABLE} out {{ type nat hook output priority -100; }}; "
        f"add rule ip {IMDS_TABLE} out ip daddr {IMDS_ADDRESS} tcp dport 80 "
        f"dnat to {IMDS_ADDRESS}:{IMDS_PORT}"
    )
    return f"ip addr add {IMDS_ADDRESS}/32 dev lo; nft '{rules}' || echo {IMDS_FAILED}"


def eth0_commands(hp: HostPlan) -> str:
    """eth0's address, state and default route, as Mininet sets them on a template host
    (for a host added while the lab runs). Ends with "; "."""
    route = f"via {hp.gateway}" if hp.gateway else "dev eth0"
    return (
        f"ip addr add {hp.ip}/{hp.prefixlen} dev eth0; ip link set eth0 up; "
        f"ip route replace default {route}; "
    )


def tx_off(intf: str) -> str:
    """Turn TX checksum offload off (userspace datapath) and print the result to check."""
    return f"ethtool -K {intf} tx off >/dev/null 2>&1; ethtool -k {intf}"


def secondary_addresses(intf: str, ips: tuple[str, ...]) -> str:
    return "".join(f"; ip addr add {ip}/32 dev {intf}" for ip in ips)


def interface_commands(host: HostPlan) -> str:
    """Shell commands that configure a host's extra interfaces (empty without any)."""
    if not host.interfaces:
        return ""
    # Several interfaces in one namespace: each answers ARP only for its own addresses and
    # picks its own address as the ARP source (no "ARP flux" between eth0 and eth1).
    cmd = "sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2"
    for i in host.interfaces:
        table = FIRST_ROUTE_TABLE + int(i.name.removeprefix("eth"))
        subnet = IPv4Network(f"{i.ip}/{i.prefixlen}", strict=False)
        cmd += f"; ip link set {i.name} up; ip addr add {i.ip}/{i.prefixlen} dev {i.name}"
        cmd += secondary_addresses(i.name, i.extra_ips)
        cmd += f"; ip route add {subnet} dev {i.name} src {i.ip} table {table}"
        cmd += f"; ip route add default via {i.gateway} dev {i.name} table {table}"
        for ip in (i.ip, *i.extra_ips):
            cmd += f"; ip rule add from {ip} table {table}"
    # eth0's own addresses too: an answer from eth0's address to a host of eth1's subnet
    # must leave by eth0 (the main table's connected route would take eth1, whose port's
    # source check drops it), as Amazon Linux's per-interface routing does.
    subnet = IPv4Network(f"{host.ip}/{host.prefixlen}", strict=False)
    cmd += f"; ip route add {subnet} dev eth0 src {host.ip} table {FIRST_ROUTE_TABLE}"
    cmd += f"; ip route add default via {host.gateway} dev eth0 table {FIRST_ROUTE_TABLE}"
    for ip in (host.ip, *host.extra_ips):
        cmd += f"; ip rule add from {ip} table {FIRST_ROUTE_TABLE}"
    return cmd


def nat_gateway_commands() -> str:
    """Sysctls of a NAT gateway host: it routes for others, out of the interface the packets
    came in on (one-armed), which must not draw ICMP redirects."""
    return (
        "sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 "
        "net.ipv4.conf.eth0.send_redirects=0"
    )


def nat_ruleset(plan: NetworkPlan, host: HostPlan) -> str:
    """The NAT gateway's nftables ruleset (for `nft -f -` in its namespace).

    New connections are forwarded only from its own VPC; replies of tracked ones pass back.
    Forwarded packets leave with its own private address as the source (the internet
    gateway's 1:1 NAT then makes that its EIP, the two steps of AWS's NAT gateway). Nothing
    translates a destination: nobody outside can open a connection to an instance behind it,
    and the gateway itself answers nothing from outside its VPC (AWS's drops silently; a
    Linux host would send a RST or a port unreachable).
    Every rule counts its packets: `nft list ruleset` in the host shows the translation."""
    vpc = next(v.cidr for v in plan.vpcs if v.name == host.vpc)
    return f"""table ip {NAT_TABLE} {{
  chain input {{
    type filter hook input priority filter; policy accept;
    ct state established,related accept
    ip saddr != {vpc} counter drop
  }}
  chain forward {{
    type filter hook forward priority filter; policy drop;
    ct state established,related counter accept
    ct state new ip saddr {vpc} counter accept
    counter drop
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname "eth0" ip saddr != {host.ip} counter masquerade
  }}
}}
"""
