"""A lab's nodes on other servers, on Mininet Cluster Edition (mininet.examples.cluster).

Issue 18. testbed.plan.placement says where each switch and host runs; this module makes the
Mininet nodes and links that run there:

- `ServerAccess`: how to reach a server (ssh with the lab's ssh config, BatchMode) and its
  underlay address; commands run as root there (no sudo: Cluster Edition would prefix sudo).
- `RemoteLabHost` / `RemoteLabSwitch`: Cluster Edition's RemoteMixin (a shell through
  `ssh -tt`, `mnexec` on the server, `rcmd` in the server's root namespace) on Mininet's Host
  and RemoteOVSSwitch (switches started per server in one ovs-vsctl batch). Their __init__
  is the lab's own: Cluster Edition's registers ClusterCleanup, which runs `mn -c` on every
  server, and that is never used here.
- `RemoteVxlanLink`: the shape of Cluster Edition's RemoteGRELink with `type vxlan` (these
  kernels have no gretap: "Unknown device type"): `ip link add NAME type vxlan id VNI remote R
  local L dstport 4789` on both servers, moved into the node's namespace, added to the OVS
  bridge as the planned port. Within one server it is a plain veth pair.
- `probe_tunnels` / `choose_tunnel`: which tunnel kinds a server's kernel can make (gretap,
  vxlan, TUN for the ssh tunnel), and the one every server of a lab can (GRE where gretap
  exists, else VXLAN, else Cluster Edition's ssh-tunnel RemoteLink).
- `clean_server`: what lab NAME left on one server, removed by its prefix (namespaces and
  the processes in them, bridges, links), through ssh: never `mn -c`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mininet.examples.cluster import RemoteLink, RemoteMixin, RemoteOVSSwitch
from mininet.link import Link
from mininet.node import Host, Node
from mininet.util import makeIntfPair

from testbed import naming
from testbed.errors import LabError
from testbed.plan.network import HostPlan
from testbed.plan.placement import LOCAL, VXLAN_PORT, Placement, place_launched, tbf_args

SSH_OPTIONS = (
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=accept-new",
    "-o",
    "ConnectTimeout=10",
    "-o",
    "LogLevel=ERROR",
)


@dataclass(frozen=True)
class ServerAccess:
    """One server of a lab: its name as given (--servers), the ssh config that reaches it,
    its underlay address, the environment its OVS tools need (own run directory)."""

    name: str
    address: str
    ssh_config: str | None = None
    ovs_env: dict[str, str] = field(default_factory=dict)

    @property
    def local(self) -> bool:
        return self.name == LOCAL

    def ssh(self, tty: bool = False) -> list[str]:
        """ssh argv up to (and including) the destination."""
        argv = ["ssh", "-q", *SSH_OPTIONS]
        if self.ssh_config:
            argv += ["-F", self.ssh_config]
        if tty:
            argv.append("-tt")
        return [*argv, self.name]

    def argv(self, command: str) -> list[str]:
        """argv that runs the shell command `command` as root in the server's root namespace
        (with its OVS environment)."""
        env = "".join(f"{k}={shlex.quote(v)} " for k, v in sorted(self.ovs_env.items()))
        if self.local:
            return ["sh", "-c", command]
        return [*self.ssh(), f"{'export ' + env + '; ' if env else ''}{command}"]

    def run(self, command: str, check: bool = True, timeout: float = 60) -> str:
        """Run `command` on the server; its stdout. LabError when it fails and check."""
        done = subprocess.run(
            self.argv(command), capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise LabError(
                f"on server {self.name}: {command[:120]} failed ({done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[:400]}"
            )
        return done.stdout


@dataclass(frozen=True)
class LabServers:
    """A lab's placement and how to reach each of its servers. front_end_address: this
    machine's underlay address (the controller listens there, tunnels start there)."""

    placement: Placement
    access: dict[str, ServerAccess]
    front_end_address: str
    tunnel_reason: str
    ssh_config: str | None = None
    shaping: str = ""  # what the tunnels apply: rate, delay (placement.shaping_note)

    def server_of(self, node: str) -> ServerAccess | None:
        """The server of a host or switch; None: this machine (the front end)."""
        server = self.placement.nodes.get(node)
        if server is None or server == self.placement.front_end:
            return None
        return self.access[server]

    def place_hosts(self, hosts: Sequence[HostPlan]) -> dict[str, ServerAccess | None]:
        """Hosts added while the lab runs go on their switch's server (placement.nodes gets
        them: status, `testbed exec` and the lab's programs find them there once the caller
        saves it); the server of each (None: this machine). BadInput when one cannot be
        placed (testbed.plan.placement.place_launched), nothing placed then."""
        where = place_launched(self.placement, hosts)
        self.placement.nodes.update(where)
        return {h: self.server_of(h) for h in where}

    def unplace_hosts(self, names: Sequence[str]) -> None:
        """Hosts removed while the lab runs leave the placement."""
        for n in names:
            self.placement.nodes.pop(n, None)

    def remote(self) -> list[ServerAccess]:
        return [self.access[s] for s in self.placement.remote_servers()]

    def to_json(self) -> str:
        return json.dumps(
            {
                "placement": json.loads(self.placement.to_json()),
                "access": {
                    k: {"address": a.address, "ovs_env": a.ovs_env} for k, a in self.access.items()
                },
                "front_end_address": self.front_end_address,
                "tunnel_reason": self.tunnel_reason,
                "ssh_config": self.ssh_config,
                "shaping": self.shaping,
            },
            indent=1,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> LabServers:
        d: dict[str, Any] = json.loads(text)
        ssh_config = d.get("ssh_config")
        return cls(
            placement=Placement.from_json(json.dumps(d["placement"])),
            access={
                k: ServerAccess(k, a["address"], ssh_config, dict(a.get("ovs_env") or {}))
                for k, a in d["access"].items()
            },
            front_end_address=d["front_end_address"],
            tunnel_reason=d.get("tunnel_reason", ""),
            ssh_config=ssh_config,
            shaping=d.get("shaping", ""),
        )

    def save(self, lab_dir: Path) -> None:
        """Into the lab's folder, atomically (readers see the old or the new file)."""
        tmp = lab_dir / (naming.SERVERS_FILE + ".tmp")
        tmp.write_text(self.to_json())
        os.replace(tmp, lab_dir / naming.SERVERS_FILE)


def resolve_address(server: str, ssh_config: str | None) -> str:
    """The underlay address of `server` (a host alias of the ssh config, a name or an
    address): what `ssh -G` says its HostName is."""
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", server):
        return server
    argv = ["ssh", "-G", *(["-F", ssh_config] if ssh_config else []), server]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
    hostname = server
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key == "hostname":
            hostname = value.strip()
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", hostname):
        return hostname
    try:
        return socket.gethostbyname(hostname)
    except OSError as exc:
        raise LabError(
            f"cannot tell the address of server {server} (host name {hostname}): {exc}"
        ) from None


def local_address_towards(remote: str) -> str:
    """This machine's source address towards `remote` (`ip route get`)."""
    out = subprocess.run(
        ["ip", "-o", "route", "get", remote], capture_output=True, text=True, check=False
    ).stdout
    m = re.search(r"\bsrc (\S+)", out)
    if not m:
        raise LabError(f"no route from this machine to server {remote}")
    return m.group(1)


class RemoteLabNode(RemoteMixin):
    """Cluster Edition's remote node, reached through ServerAccess, without sudo and without
    ClusterCleanup. server: the ServerAccess (LOCAL: this machine, a plain node)."""

    def __init__(self, name: str, access: ServerAccess | None = None, **params: Any) -> None:
        access = access or ServerAccess(LOCAL, "127.0.0.1")
        self.access = access
        self.server = access.name
        self.serverIP = access.address
        self.user = "root"
        self.controlPath = None
        self.splitInit = False
        self.isRemote = not access.local
        self.dest = access.name if self.isRemote else None
        self.sshcmd = access.ssh(tty=True) if self.isRemote else []
        self.shell, self.pid = None, None
        # Mininet's Node/Host/OVSSwitch __init__ (RemoteMixin's own is skipped: see above).
        super(RemoteMixin, self).__init__(name, **params)

    def startShell(self, *args: Any, **kwargs: Any) -> None:
        super().startShell(*args, **kwargs)
        if self.isRemote and self.access.ovs_env:
            self.cmd(
                "export "
                + " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self.access.ovs_env.items()))
            )

    def _popen(self, cmd: Any, sudo: bool = True, tt: bool = True, **params: Any) -> Any:
        """A process on the node's server: through ssh (-tt for the node's shell)."""
        if isinstance(cmd, str):
            cmd = cmd.split()
        if self.isRemote:
            cmd = [*self.access.ssh(tty=tt), *map(str, cmd)]
        params.update(preexec_fn=os.setpgrp)
        return Node._popen(self, cmd, **params)


class RemoteLabHost(RemoteLabNode, Host):
    """A lab host on another server."""


class RemoteLabSwitch(RemoteLabNode, RemoteOVSSwitch):
    """A lab bridge on another server: Mininet's OVSSwitch, started in one ovs-vsctl batch
    per server (RemoteOVSSwitch.batchStartup), through the server's shell."""

    def __init__(self, name: str, access: ServerAccess | None = None, **params: Any) -> None:
        params.pop("tunnels", None)  # GENEVE ports of the switch GWLB datapath: not remote
        params["batch"] = True
        super().__init__(name, access=access, **params)

    def isOldOVS(self) -> bool:
        return False


def _root_cmd(node: Any, command: str) -> str:
    """Run a command in the root namespace of the node's server; its output."""
    if getattr(node, "isRemote", False):
        out: str = node.rcmd(command)
        return out
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False)
    return done.stdout + done.stderr


def vxlan_commands(name: str, vni: int, local: str, remote: str, mtu: int) -> list[str]:
    """The commands that make one end of a VXLAN link (run in the server's root namespace)."""
    return [
        f"ip link del {name} 2>/dev/null; true",
        f"ip link add {name} type vxlan id {vni} remote {remote} local {local} "
        f"dstport {VXLAN_PORT}",
        f"ip link set dev {name} mtu {mtu} up",
    ]


class RemoteVxlanLink(RemoteLink):
    """Cluster Edition's RemoteGRELink with a VXLAN device: the link between two nodes on
    different servers. params: vni (the link's VXLAN network identifier), mtu (the devices'
    MTU), local1/local2 (each end's underlay source address: a server's own address, or the
    front end's address towards the other server), rate (bits/s: a tbf qdisc on both ends,
    so each direction carries at most that; None: the underlay's)."""

    def __init__(
        self,
        node1: Any,
        node2: Any,
        vni: int = 0,
        mtu: int = 1450,
        rate: int | None = None,
        **params: Any,
    ) -> None:
        self.vni, self.mtu, self.rate = vni, mtu, rate
        self.underlay: tuple[str, str] = (params.pop("local1", ""), params.pop("local2", ""))
        RemoteLink.__init__(self, node1, node2, **params)

    def makeIntfPair(
        self,
        intfname1: str,
        intfname2: str,
        addr1: str | None = None,
        addr2: str | None = None,
        node1: Any = None,
        node2: Any = None,
        deleteIntfs: bool = True,
    ) -> Any:
        node1 = self.node1 if node1 is None else node1
        node2 = self.node2 if node2 is None else node2
        if getattr(node1, "server", LOCAL) == getattr(node2, "server", LOCAL):
            return makeIntfPair(
                intfname1, intfname2, addr1, addr2, node1, node2, deleteIntfs=deleteIntfs
            )
        local1, local2 = self.underlay
        local1 = local1 or node1.serverIP
        local2 = local2 or node2.serverIP
        for node, name, local, remote, addr in (
            (node1, intfname1, local1, local2, addr1),
            (node2, intfname2, local2, local1, addr2),
        ):
            script = " && ".join(vxlan_commands(name, self.vni, local, remote, self.mtu))
            if addr:
                script += f" && ip link set dev {name} address {addr}"
            script += f" && ip link set {name} netns {node.pid} && echo made"
            out = _root_cmd(node, script)
            if "made" not in out:
                raise LabError(f"VXLAN {name} (vni {self.vni}) on {node.server}: {out.strip()}")
        self.tunnel = 1
        return None

    def shape(self) -> None:
        """Hold both ends to self.rate (tbf), checked; once the switches run: Open vSwitch
        puts its default qdisc back on a port it adds, which drops one set before."""
        if not self.rate or not self.tunnel:
            return
        for node, intf in ((self.node1, self.intf1), (self.node2, self.intf2)):
            tc = ["tc", "qdisc", "replace", "dev", intf.name, "root", *tbf_args(self.rate)]
            show = ["tc", "qdisc", "show", "dev", intf.name]
            out = _root_cmd(
                node,
                f"mnexec -a {node.pid} {shlex.join(tc)} && mnexec -a {node.pid} {shlex.join(show)}",
            )
            if "tbf" not in out:
                raise LabError(
                    f"tunnel {intf.name} on {node.server}: tbf rate {self.rate} bit/s not "
                    f"applied: {out.strip()[:300]}"
                )

    def stop(self) -> None:
        if self.tunnel:
            for node, intf in ((self.node1, self.intf1), (self.node2, self.intf2)):
                _root_cmd(node, f"ip link del {intf.name} 2>/dev/null; true")
        else:
            Link.stop(self)
        self.tunnel = None  # type: ignore[assignment]


# ---- which tunnel a server can make ----------------------------------------------------
TUNNEL_PREFERENCE = ("gre", "vxlan", "ssh")


def probe_script(lab: str) -> str:
    """A shell script that tells which tunnel devices the kernel makes: one line per kind
    that works ("gre", "vxlan", "ssh" for TUN/TAP), each probe device (the lab's prefix)
    removed again."""
    name = naming._ifname(f"{naming.prefix(lab)}tp")
    return (
        f"ip link add {name} type gretap remote 127.0.0.2 local 127.0.0.1 2>/dev/null"
        f" && echo gre; ip link del {name} 2>/dev/null;"
        f" ip link add {name} type vxlan id 1 remote 127.0.0.2 local 127.0.0.1"
        f" dstport {VXLAN_PORT} 2>/dev/null && echo vxlan; ip link del {name} 2>/dev/null;"
        " test -c /dev/net/tun && echo ssh; true"
    )


def probe_tunnels(lab: str, access: ServerAccess) -> tuple[str, ...]:
    """The tunnel kinds server `access` can make."""
    out = access.run(probe_script(lab), check=False)
    return tuple(k for k in TUNNEL_PREFERENCE if k in out.split())


def probe_shaping(lab: str, access: ServerAccess) -> tuple[str, ...]:
    """The qdiscs server `access` can put on a tunnel device: "tbf" (a rate), "netem" (a
    delay), tried on a VXLAN probe device named with the lab's prefix, removed again."""
    name = naming._ifname(f"{naming.prefix(lab)}tq")
    script = (
        f"ip link add {name} type vxlan id 1 remote 127.0.0.2 local 127.0.0.1 "
        f"dstport {VXLAN_PORT} 2>/dev/null || exit 0; "
        f"tc qdisc add dev {name} root tbf rate 1mbit burst 32k latency 50ms 2>/dev/null "
        f"&& echo tbf; tc qdisc del dev {name} root 2>/dev/null; "
        f"tc qdisc add dev {name} root netem delay 1ms 2>/dev/null && echo netem; "
        f"ip link del {name} 2>/dev/null; true"
    )
    out = access.run(script, check=False).split()
    return tuple(k for k in ("tbf", "netem") if k in out)


def choose_tunnel(found: dict[str, tuple[str, ...]]) -> tuple[str, str]:
    """The tunnel kind every server can make (GRE, else VXLAN, else the ssh tunnel), and why
    (the machines without gretap named). LabError when there is none."""
    for kind in TUNNEL_PREFERENCE:
        if all(kind in kinds for kinds in found.values()):
            no_gre = sorted(s for s, kinds in found.items() if "gre" not in kinds)
            why = f"{kind}: every server can make it"
            if no_gre and kind != "gre":
                why += f"; no gretap on {', '.join(no_gre)} (Unknown device type)"
            return kind, why
    raise LabError(
        "no tunnel kind every server can make: "
        + "; ".join(f"{s}: {', '.join(k) or 'none'}" for s, k in sorted(found.items()))
    )


# ---- what a lab left on a server -------------------------------------------------------
IMDS_MODULE = "testbed.lab.imds.remote"  # the metadata service of a server's hosts


def imds_pidfile(lab: str) -> str:
    """Where the metadata service of lab `lab` on a server keeps its PID (the server's own
    /run: one per server and lab)."""
    return f"/run/{naming.prefix(lab)}imds.pid"


def _end_imds_script(lab: str) -> str:
    """Shell: end the lab's metadata service on a server (by its PID file, checked against
    the process's command line), remove the file; one line per thing removed."""
    pidfile = shlex.quote(imds_pidfile(lab))
    return (
        f"if [ -f {pidfile} ]; then p=$(cat {pidfile}); "
        f"if tr '\\0' ' ' < /proc/$p/cmdline 2>/dev/null | grep -q {IMDS_MODULE}; then "
        '  kill -9 "$p" 2>/dev/null && echo "process $p (metadata service)"; fi; '
        f"rm -f {pidfile} && echo 'file {imds_pidfile(lab)}'; fi; "
    )


# The cgroup2 mount of a server, in $m (empty: none); a lab's cgroups are in
# $m/elb-testbed/tb-LAB/HOST there (testbed.lab.cgroups; its servers' are made over ssh).
CGROUP_MOUNT_SH = "m=$(awk '$3==\"cgroup2\"{print $2; exit}' /proc/self/mounts)"


def remote_cgroup_dir(lab: str) -> str:
    """Shell: the directory of lab `lab`'s cgroups on a server (after CGROUP_MOUNT_SH)."""
    return f'"$m"/{naming.CGROUP_TOP}/{shlex.quote(naming.prefix(lab).rstrip("-"))}'


def _remove_cgroups_script(lab: str) -> str:
    """Shell: remove the lab's cgroups on a server once their processes are gone (retried a
    little: a process just killed leaves its cgroup within milliseconds)."""
    d = remote_cgroup_dir(lab)
    return (
        f'{CGROUP_MOUNT_SH}; if [ -n "$m" ] && [ -d {d} ]; then '
        "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do "
        f'  for c in {d}/*/; do [ -d "$c" ] && rmdir "$c" 2>/dev/null; done; '
        f"  rmdir {d} 2>/dev/null && {{ echo cgroup {d}; break; }}; sleep 0.1; "
        f'done; rmdir "$m"/{naming.CGROUP_TOP} 2>/dev/null; fi; '
    )


# ---- the processes a lab starts in a host on another server -----------------------------
# Each one records itself on its server before it becomes the program (same PID, same kernel
# start time): a file PROCS/HOST/PID holding "START_TIME LABEL", in the server's own /run
# (its PID namespace: the PID means nothing on this machine). The lab ends them there by that
# PID (checked against the start time), never by name.
_LABEL_OK = re.compile(r"[A-Za-z0-9:._+-]{1,64}")
# "STATE START_TIME PGRP" of process $p (empty when it is gone): /proc/PID/stat after the
# command name (which may hold spaces and ')').
_STAT_SH = "s=$(sed 's/.*) //' /proc/$p/stat 2>/dev/null | awk '{print $1, $20, $3}')"


def remote_procs_dir(lab: str) -> str:
    """The folder, on each server, of the records of lab `lab`'s processes there."""
    return f"/run/{naming.prefix(lab)}procs"


def record_self_prefix(lab: str, host: str, label: str) -> str:
    """Shell put before a command run in host `host` on its server: the shell records its
    own PID and kernel start time as PROCS/HOST/PID ("START LABEL") before it execs the
    command. A record that cannot be written does not keep the command from running (the
    teardown still ends what runs in the host's namespace)."""
    if not _LABEL_OK.fullmatch(label):
        raise ValueError(f"process label {label!r}: letters, digits, ':._+-' only")
    d = shlex.quote(f"{remote_procs_dir(lab)}/{host}")
    return (
        f"{{ mkdir -p {d} && "
        f"echo \"$(sed 's/.*) //' /proc/$$/stat | cut -d' ' -f20) {label}\" > {d}/$$; }} "
        "2>/dev/null; "
    )


@dataclass(frozen=True)
class RemoteProcess:
    """A live process a lab recorded on a server: its PID and start time there, its host
    and label (e.g. role:http-backend)."""

    server: str
    host: str
    pid: int
    start_time: int
    label: str


def _records_loop(lab: str, host: str | None, body: str) -> str:
    """Shell: for each record of `host` (None: every host) whose process is still the same
    (start time) and not a zombie, run `body` with $f, $h, $p, $st, $label, $pg set."""
    where = shlex.quote(remote_procs_dir(lab))
    hosts = shlex.quote(host) if host is not None else "*"
    return (
        f"for f in {where}/{hosts}/*; do "
        '  [ -f "$f" ] || continue; p=${f##*/}; h=${f%/*}; h=${h##*/}; '
        '  read st label < "$f" || continue; '
        f"  {_STAT_SH}; set -- $s; "
        '  [ -n "$s" ] && [ "$1" != Z ] && [ "$2" = "$st" ] || continue; pg=$3; '
        f"  {body}; "
        "done; "
    )


def list_records_script(lab: str, host: str | None = None) -> str:
    """Shell: one line "HOST PID START LABEL" per live recorded process of `host` (None:
    every host) of lab `lab` on a server."""
    return _records_loop(lab, host, 'echo "$h $p $st $label"') + "true"


def parse_records(server: str, text: str) -> list[RemoteProcess]:
    """The RemoteProcesses of list_records_script's output (lines cut short are skipped)."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[1].isdigit() and parts[2].isdigit():
            out.append(RemoteProcess(server, parts[0], int(parts[1]), int(parts[2]), parts[3]))
    return out


def end_records_script(
    lab: str, host: str | None = None, label: str | None = None, grace: float = 1.5
) -> str:
    """Shell: end the live recorded processes of `host` (None: every host; `label`: only
    those) of lab `lab` on a server, by PID: SIGTERM (to its process group when it leads
    one: what it started goes too), up to `grace` s for them to go, then SIGKILL; their
    records removed. One line "process PID (HOST LABEL)" per process ended."""
    want = f'[ "$label" = {shlex.quote(label)} ] || continue; ' if label else ""
    signal_it = (
        want + 'if [ "$pg" = "$p" ]; then kill -TERM "-$p" 2>/dev/null; '
        'else kill -TERM "$p" 2>/dev/null; fi; '
        'ended="$ended $p:$st:$pg"; echo "process $p ($h $label)"; rm -f "$f"'
    )
    tries = max(1, int(grace / 0.05))
    still = (
        'left=""; for e in $ended; do p=${e%%:*}; r=${e#*:}; st=${r%%:*}; '
        f'{_STAT_SH}; set -- $s; [ -n "$s" ] && [ "$1" != Z ] && [ "$2" = "$st" ] '
        '&& left="$left $e"; done'
    )
    return (
        'set +e; ended=""; '
        + _records_loop(lab, host, signal_it)
        + f'i=0; while [ -n "$ended" ] && [ $i -lt {tries} ]; do {still}; '
        '[ -z "$left" ] && break; sleep 0.05; i=$((i+1)); done; '
        # Still there after the grace: SIGKILL (its group too, when it led one).
        f'[ -n "$ended" ] && {{ {still}; for e in $left; do p=${{e%%:*}}; pg=${{e##*:}}; '
        '[ "$pg" = "$p" ] && kill -KILL "-$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; '
        "done; }; true"
    )


def end_remote_processes(
    lab: str, access: ServerAccess, host: str | None = None, label: str | None = None
) -> list[str]:
    """End lab `lab`'s recorded processes of `host` (None: all) on server `access`; one
    line per process ended."""
    out = access.run(end_records_script(lab, host, label), timeout=60)
    return [line.strip() for line in out.splitlines() if line.strip()]


def remote_processes(
    lab: str, access: ServerAccess, host: str | None = None
) -> list[RemoteProcess]:
    """Lab `lab`'s live recorded processes of `host` (None: all) on server `access`."""
    return parse_records(access.name, access.run(list_records_script(lab, host), timeout=30))


def remove_hosts_script(lab: str, hosts: Sequence[tuple[str, str, Sequence[str]]]) -> str:
    """Shell, run on a server: remove hosts added there while the lab runs, exactly, given
    (host, its namespace, its root-side veths) each: the processes in its namespace, its
    veths, the namespace's name, its cgroup (once its processes are gone). One line per thing
    removed."""
    script = "set +e; "
    for _host, netns, veths in hosts:
        ns = shlex.quote(netns)
        script += (
            f'for p in $(ip netns pids {ns} 2>/dev/null); do kill -9 "$p" 2>/dev/null '
            '&& echo "process $p"; done; '
        )
        script += "".join(
            f"ip link del dev {shlex.quote(v)} 2>/dev/null && echo 'link {v}'; " for v in veths
        )
        script += f"ip netns delete {ns} 2>/dev/null && echo 'namespace {netns}'; "
    for host, _netns, _veths in hosts:  # its process records (their processes are gone)
        script += f"rm -rf {shlex.quote(f'{remote_procs_dir(lab)}/{host}')}; "
    d = remote_cgroup_dir(lab)
    for host, _netns, _veths in hosts:
        c = f"{d}/{shlex.quote(host)}"
        script += (
            f'{CGROUP_MOUNT_SH}; if [ -n "$m" ] && [ -d {c} ]; then '
            "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do "
            f"rmdir {c} 2>/dev/null && {{ echo cgroup {host}; break; }}; sleep 0.1; done; fi; "
        )
    return script + "true"


def clean_script(lab: str) -> str:
    """A shell script that removes what lab `lab` made on a server, found by its prefix:
    the processes in its named namespaces, the namespaces, its OVS bridges, its links; it
    prints one line per thing removed. Nothing else is touched (never `mn -c`)."""
    pre = shlex.quote(naming.prefix(lab))
    return (
        "set +e; "
        + _end_imds_script(lab)
        # The processes it recorded there, by PID (SIGTERM first), before the sweep below.
        + end_records_script(lab)
        + f"; [ -d {shlex.quote(remote_procs_dir(lab))} ] && "
        f"rm -rf {shlex.quote(remote_procs_dir(lab))} && echo 'file {remote_procs_dir(lab)}'; "
        + f"for ns in $(ip netns list | awk '{{print $1}}' | grep '^'{pre}); do "
        '  for p in $(ip netns pids "$ns"); do'
        '    kill -9 "$p" 2>/dev/null && echo "process $p"; done; '
        '  ip netns delete "$ns" && echo "namespace $ns"; '
        "done; "
        "for b in $(ovs-vsctl --timeout=10 list-br 2>/dev/null | grep '^'"
        f"{pre}); do "
        '  ovs-vsctl --timeout=30 del-br "$b" && echo "bridge $b"; '
        "done; "
        "for l in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^'"
        f"{pre}); do "
        '  ip link del "$l" 2>/dev/null && echo "link $l"; '
        "done; " + _remove_cgroups_script(lab) + "true"
    )


def clean_server(lab: str, access: ServerAccess) -> list[str]:
    """Remove what lab `lab` left on server `access`; what was removed (one line each).
    LabError when the server does not answer."""
    out = access.run(clean_script(lab), check=True, timeout=120)
    return [line.strip() for line in out.splitlines() if line.strip()]


def leftovers_script(lab: str) -> str:
    """A shell script that lists what of lab `lab` exists on a server (one line each)."""
    pre = shlex.quote(naming.prefix(lab))
    return (
        f"test -f {shlex.quote(imds_pidfile(lab))} && echo 'file {imds_pidfile(lab)}'; "
        f"test -d {shlex.quote(remote_procs_dir(lab))} && echo 'file {remote_procs_dir(lab)}'; "
        f'{CGROUP_MOUNT_SH}; [ -n "$m" ] && [ -d {remote_cgroup_dir(lab)} ] && '
        f"echo cgroup {remote_cgroup_dir(lab)}; "
        f"ip netns list | awk '{{print \"namespace \" $1}}' | grep ' '{pre}; "
        f"ovs-vsctl --timeout=10 list-br 2>/dev/null | sed 's/^/bridge /' | grep ' '{pre}; "
        "ip -o link show | awk -F': ' '{print \"link \" $2}' | cut -d@ -f1 | grep ' '"
        f"{pre}; true"
    )


def server_leftovers(lab: str, access: ServerAccess) -> list[str]:
    """What of lab `lab` still exists on server `access`."""
    out = access.run(leftovers_script(lab), check=False)
    return [line.strip() for line in out.splitlines() if line.strip()]
