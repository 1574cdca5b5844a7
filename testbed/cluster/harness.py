"""Servers on one machine: each a network, mount, PID and UTS namespace with its own Open
vSwitch and its own sshd, on a private underlay, to try and test a lab across servers here.

    with ServerHarness("S", count=2) as h:      # ready: sshd and OVS answer in every server
        for s in h.servers:
            s.run(["ovs-vsctl", "show"])          # over ssh, as root, inside the server
        h.ssh_config                              # ssh -F <that> srv1 ...
        h.front_end_address                       # this machine's address on the underlay

What one server is:

- a named network namespace ``tb-NAME-srvK`` with ``eth0``, one end of a veth whose other end
  (``tb-NAME-uK``) is a port of the underlay, a Linux bridge ``tb-NAME-ul`` in the root
  namespace. The underlay is a /24 of 198.19.0.0/16 (RFC 2544's benchmarking range, which no
  lab template and no machine address here uses): .1 is the front end (this machine), .10+K
  server K.
- a mount namespace where /etc/ssh, /etc/openvswitch and /run are the server's own
  directories (bound from the harness's folder), so the default paths of ssh, sshd,
  ovs-vsctl and Mininet work unchanged inside it and nothing reaches the machine's own Open
  vSwitch (which keeps running, untouched); /var/log/openvswitch is the server's /run/log;
  /root is the servers' shared root home, whose .ssh reaches every server (`ssh srv2` from
  srv1), as Cluster Edition's server-to-server ssh tunnels need.
- cgroup v2 at /sys/fs/cgroup (the machine's hierarchy: `ip netns exec` gives the server a
  fresh /sys without it), where a lab makes the cgroups of the hosts it places there;
- a PID namespace (its own /proc): the server's init is PID 1 there; killing it ends
  everything the server runs, including what was started over ssh.
- its own ovsdb-server and ovs-vswitchd (userspace only: make bridges with
  ``datapath_type=netdev``) and its own sshd on the underlay address, root login with the
  harness's key only (BatchMode), ``PermitTunnel yes`` for ssh Ethernet tunnels.

Everything is named ``tb-NAME-...`` (testbed.naming) with NAME a fresh name starting with the
given prefix; the folder ``state_root()/cluster-harness/NAME`` holds the keys, the ssh config,
each server's files and the journal of every process (PID + start time). Teardown removes
exactly that, also after the creating process was killed: ``teardown_harness(NAME)`` (used by
``testbed cluster clean``), which only needs the folder and the names.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed import naming
from testbed.errors import BadInput, LabError
from testbed.lab import system
from testbed.lab.procs import ProcessJournal, ProcessRecord, is_alive, record, start_time, terminate
from testbed.waiting import WaitTimeout, wait_for

HARNESS_DIR = "cluster-harness"  # under naming.state_root(); not a lab name (has a hyphen)
STATE_FILE = "harness.json"
UNDERLAY = ipaddress.IPv4Network("198.19.0.0/16")
LABEL = "TESTBED_HARNESS"  # environment variable carried by every process a harness starts
MAX_SERVERS = 20
READY_TIMEOUT = 60.0
SSHD = "/usr/sbin/sshd"
OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
REQUIRED = ("ip", "unshare", "ssh", "ssh-keygen", "ovsdb-tool", "ovsdb-server", "ovs-vswitchd")

# PID 1 of a server: its mounts, its OVS, its sshd, then it waits (reaping orphans) until
# it is killed. $1: the server's folder, $2: its host name.
INIT_SCRIPT = """\
set -eu
d=$1
hostname "$2"
mount --bind "$d/ssh" /etc/ssh
mount --bind "$d/ovs" /etc/openvswitch
mount --bind "$d/../home" /root
mount --bind "$d/run" /run
mount --bind /run/log /var/log/openvswitch
# `ip netns exec` gave the server a fresh /sys without cgroups: cgroup v2 (the machine's
# hierarchy, as a real server has its own) for the per-host cgroups a lab makes there.
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null || true
ovsdb-tool create /etc/openvswitch/conf.db {schema}
ovsdb-server --remote=punix:/run/openvswitch/db.sock \\
    --remote=db:Open_vSwitch,Open_vSwitch,manager_options \\
    --pidfile --detach --no-chdir --log-file
ovs-vsctl --no-wait init
ovs-vswitchd --pidfile --detach --no-chdir --log-file
ovs-vsctl --timeout=30 set Open_vSwitch . "external_ids:testbed-server=$2"
{sshd} -D -e -f /etc/ssh/sshd_config 2>>/run/log/sshd.log &
: > /run/ovs-ready
while :; do sleep 3600 & wait; done
"""

SSHD_CONFIG = """\
# sshd of harness server {name}: root with the harness key only.
ListenAddress {address}
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile /etc/ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PermitTunnel yes
MaxStartups 200:30:400
MaxSessions 200
PrintMotd no
Subsystem sftp internal-sftp
"""


def harness_root() -> Path:
    """Folder holding one sub-folder per harness."""
    return naming.state_root() / HARNESS_DIR


def harness_dir(name: str) -> Path:
    return harness_root() / name


def missing_tools() -> list[str]:
    """What this machine lacks to run a harness (empty: it can)."""
    missing = [t for t in REQUIRED if shutil.which(t) is None]
    if not Path(SSHD).exists():
        missing.append(f"{SSHD} (Debian package openssh-server)")
    if not Path(OVS_SCHEMA).exists():
        missing.append(OVS_SCHEMA)
    return missing


@dataclass(frozen=True)
class Server:
    """One emulated server: reach it over ssh (`ssh -F ssh_config NAME`) or its OVS directly."""

    name: str  # "srv1": its ssh host name in the harness's ssh config, and its hostname
    address: str  # its underlay address (sshd listens there)
    netns: str  # its named network namespace, tb-NAME-srvK
    dir: Path  # its folder in the harness folder
    ssh_config: Path

    def ssh_argv(self, cmd: Sequence[str] | str) -> list[str]:
        """ssh argv running cmd (a list: quoted for the remote shell; a str: as it is) as root
        in the server."""
        remote = cmd if isinstance(cmd, str) else shlex.join(cmd)
        return ["ssh", "-F", str(self.ssh_config), self.name, remote]

    def run(
        self,
        cmd: Sequence[str] | str,
        *,
        check: bool = False,
        timeout: float = 30.0,
        input: str | None = None,
    ) -> subprocess.CompletedProcess:
        """Run cmd in the server over ssh, capture its output (text)."""
        argv = self.ssh_argv(cmd)
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)
        if check and proc.returncode != 0:
            raise LabError(
                f"on {self.name}: {cmd if isinstance(cmd, str) else shlex.join(cmd)} failed "
                f"({proc.returncode}): {(proc.stderr or proc.stdout).strip()}"
            )
        return proc

    @property
    def ovs_rundir(self) -> Path:
        return self.dir / "run" / "openvswitch"

    @property
    def ovs_db(self) -> str:
        """--db= value reaching this server's ovsdb-server from this machine."""
        return f"unix:{self.ovs_rundir / 'db.sock'}"

    @property
    def ovs_env(self) -> dict[str, str]:
        """Environment for ovs-vsctl / ovs-appctl / ovs-ofctl run on this machine (outside the
        server) to reach this server's OVS: OVS_RUNDIR and friends."""
        return {
            "OVS_RUNDIR": str(self.ovs_rundir),
            "OVS_DBDIR": str(self.dir / "ovs"),
            "OVS_LOGDIR": str(self.dir / "run" / "log"),
            "OVS_SYSCONFDIR": str(self.dir / "ovs"),
        }

    def ovs_vsctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """ovs-vsctl against this server's database, from this machine (no ssh)."""
        return system.run(["ovs-vsctl", f"--db={self.ovs_db}", "--timeout=10", *args], check=check)


@dataclass
class HarnessReport:
    """What a teardown removed."""

    processes: list[int] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{len(self.processes)} processes, {len(self.namespaces)} namespaces, "
            f"{len(self.links)} links, {len(self.files)} file trees"
        )


class ServerHarness:
    """`count` servers on this machine (see the module's doc). A context manager: ready when
    entered, torn down when left. `detached` harnesses (made by `testbed cluster harness up`)
    are kept when their creator exits, until `down()` or `testbed cluster harness down`."""

    def __init__(self, name_prefix: str = "", count: int = 2, *, detached: bool = False) -> None:
        if not 1 <= count <= MAX_SERVERS:
            raise BadInput(f"--count {count}: a harness has 1 to {MAX_SERVERS} servers")
        self.name_prefix = name_prefix.lower()
        self.count = count
        self.detached = detached
        self.name = ""
        self.dir = Path()
        self.subnet: ipaddress.IPv4Network | None = None
        self.servers: list[Server] = []
        self.timings: dict[str, float] = {}  # seconds: "bring_up" (all servers ready)
        self._procs: dict[str, subprocess.Popen] = {}  # each server's init, by server name

    # -- the context manager -------------------------------------------------------------
    def __enter__(self) -> ServerHarness:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    @property
    def ssh_config(self) -> Path:
        return self.dir / "ssh_config"

    @property
    def front_end_address(self) -> str:
        """This machine's address on the underlay (a controller for the servers listens here)."""
        assert self.subnet is not None, "the harness is not up"
        return str(self.subnet.network_address + 1)

    @property
    def bridge(self) -> str:
        return naming._ifname(f"{naming.prefix(self.name)}ul")

    def up(self) -> None:
        """Make the servers and wait until each answers over ssh and its OVS is running."""
        missing = missing_tools()
        if missing:
            raise LabError(f"this machine cannot run the server harness: missing {missing}")
        started = time.monotonic()
        try:
            self._claim()
            self._underlay()
            key = self.dir / "id_ed25519"
            _keygen(key, f"harness {self.name}")
            self.servers = [self._server(k, key) for k in range(1, self.count + 1)]
            self._write_ssh_config()
            for server in self.servers:
                self._start(server)
            for server in self.servers:
                self._wait_ready(server)
            self._journal_members()
            self.timings["bring_up"] = time.monotonic() - started
            self._update_state(ready=True, detached=self.detached)
        except BaseException:
            self.down()
            raise

    def down(self) -> HarnessReport:
        """Remove everything the harness made (safe to call twice)."""
        if not self.name:
            return HarnessReport()
        report = teardown_harness(self.name)
        for proc in self._procs.values():  # reap our own children
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self._procs = {}
        return report

    # -- bring-up steps ------------------------------------------------------------------
    def _claim(self) -> None:
        """Pick a free name and underlay /24 and write the state file, under one lock so two
        harnesses started at once do not pick the same."""
        root = harness_root()
        root.mkdir(parents=True, exist_ok=True)
        with _locked(root / ".lock"):
            taken = {s.get("subnet") for s in (read_state(n) for n in list_harnesses()) if s}
            used = _root_networks()
            for _ in range(100):
                name = naming.validate_lab_name(
                    (self.name_prefix + "h")[:3] + secrets.token_hex(2)
                    if self.name_prefix[:1].isalpha()
                    else "h" + secrets.token_hex(3)
                )
                clash = harness_dir(name).exists() or naming.lab_dir(name).exists()
                if not clash and not any(_named_resources(name).values()):
                    break
            else:
                raise LabError("no free harness name (100 tries)")
            subnet = pick_subnet(taken, used)
            if subnet is None:
                raise LabError(f"no free /24 left in {UNDERLAY} for the underlay")
            self.name, self.subnet = name, subnet
            self.dir = harness_dir(name)
            self.dir.mkdir(mode=0o700)
            me = record(os.getpid(), "harness creator")
            self._write_state(
                {
                    "name": name,
                    "subnet": str(subnet),
                    "count": self.count,
                    "creator": {"pid": me.pid, "start_time": me.start_time},
                    "created": time.time(),
                    "ready": False,
                    "detached": False,
                    "servers": [],
                }
            )

    def _underlay(self) -> None:
        assert self.subnet is not None
        system.run(["ip", "link", "add", self.bridge, "type", "bridge"])
        system.run(
            ["ip", "addr", "add", f"{self.front_end_address}/{self.subnet.prefixlen}",
             "dev", self.bridge]
        )  # fmt: skip
        system.run(["ip", "link", "set", self.bridge, "up"])

    def _server(self, k: int, key: Path) -> Server:
        assert self.subnet is not None
        name = f"srv{k}"
        server = Server(
            name=name,
            address=str(self.subnet.network_address + 10 + k),
            netns=naming.netns_name(self.name, name),
            dir=self.dir / name,
            ssh_config=self.ssh_config,
        )
        d = server.dir
        for sub in ("ssh", "ovs", "run/openvswitch", "run/sshd", "run/log"):
            (d / sub).mkdir(parents=True, mode=0o755)
        os.chmod(d, 0o755)
        _keygen(d / "ssh" / "ssh_host_ed25519_key", f"{name} of harness {self.name}")
        authorized = d / "ssh" / "authorized_keys"
        authorized.write_text(key.with_suffix(".pub").read_text())
        authorized.chmod(0o600)
        (d / "ssh" / "sshd_config").write_text(
            SSHD_CONFIG.format(name=name, address=server.address)
        )
        (d / "init.sh").write_text(INIT_SCRIPT.format(schema=OVS_SCHEMA, sshd=SSHD))
        # The network: a namespace, a veth to the underlay bridge, the server's address.
        uplink = naming._ifname(f"{naming.prefix(self.name)}u{k}")
        system.run(["ip", "netns", "add", server.netns])
        system.run(
            ["ip", "link", "add", uplink, "type", "veth", "peer", "name", "eth0",
             "netns", server.netns]
        )  # fmt: skip
        system.run(["ip", "link", "set", uplink, "master", self.bridge, "up"])
        batch = (
            f"addr add {server.address}/{self.subnet.prefixlen} dev eth0\n"
            "link set eth0 up\nlink set lo up\n"
        )
        system.run(["ip", "-n", server.netns, "-batch", "-"], input=batch)
        return server

    def _write_ssh_config(self) -> None:
        """The front end's ssh config (ssh -F <harness>/ssh_config srvK) and the servers' own
        root home (/root/.ssh: the same key, config and host keys), so that the servers also
        reach each other with a plain `ssh srvK` or `ssh ADDRESS`, as Cluster Edition's ssh
        tunnels between servers need."""
        home_ssh = self.dir / "home" / ".ssh"
        home_ssh.mkdir(parents=True, mode=0o700)
        os.chmod(self.dir / "home", 0o700)
        key = self.dir / "id_ed25519"
        for suffix in ("", ".pub"):
            shutil.copy2(f"{key}{suffix}", home_ssh / f"id_ed25519{suffix}")
        entries = []
        for s in self.servers:
            host_key = (s.dir / "ssh" / "ssh_host_ed25519_key.pub").read_text().split()[:2]
            entries.append(f"{s.name},{s.address} {' '.join(host_key)}\n")
        for known in (self.dir / "known_hosts", home_ssh / "known_hosts"):
            known.write_text("".join(entries))
        self.ssh_config.write_text(
            f"# ssh config of server harness {self.name}: ssh -F {self.ssh_config} srv1\n"
            + self._ssh_hosts(key, self.dir / "known_hosts")
        )
        (home_ssh / "config").write_text(
            f"# the servers' own ssh config (harness {self.name})\n"
            + self._ssh_hosts(Path("/root/.ssh/id_ed25519"), Path("/root/.ssh/known_hosts"))
        )

    def _ssh_hosts(self, key: Path, known: Path) -> str:
        lines = []
        for s in self.servers:
            lines += [
                f"Host {s.name} {s.address}",
                f"    HostName {s.address}",
                "    User root",
                f"    IdentityFile {key}",
                "    IdentitiesOnly yes",
                "    BatchMode yes",
                "    StrictHostKeyChecking yes",
                f"    UserKnownHostsFile {known}",
                "    ConnectTimeout 5",
                "    LogLevel ERROR",
                "",
            ]
        return "\n".join(lines)

    def _start(self, server: Server) -> None:
        env = dict(os.environ, **{LABEL: self.name})
        argv = [
            "ip", "netns", "exec", server.netns,
            "unshare", "--mount", "--pid", "--uts", "--fork", "--mount-proc", "--kill-child",
            "--propagation", "private",
            "sh", str(server.dir / "init.sh"), str(server.dir), server.name,
        ]  # fmt: skip
        journal = ProcessJournal(self.dir)
        self._procs[server.name] = journal.start(
            argv, f"server-init {server.name}", server.name, log=server.dir / "init.log", env=env
        )

    def _wait_ready(self, server: Server) -> None:
        proc = self._procs[server.name]
        ready = server.dir / "run" / "ovs-ready"
        log = server.dir / "run" / "log" / "sshd.log"

        def ovs_and_sshd() -> bool:
            if proc.poll() is not None:
                raise LabError(
                    f"server {server.name} of harness {self.name} stopped while starting "
                    f"(exit {proc.returncode}): {_tail(server.dir / 'init.log')}"
                )
            return ready.exists() and "Server listening" in _read(log)

        wait_for(ovs_and_sshd, READY_TIMEOUT, f"OVS and sshd of {server.name}", interval=0.02)

        def answers() -> bool:
            return server.run(["true"], timeout=10).returncode == 0

        try:
            wait_for(answers, 20, f"ssh into {server.name}", interval=0.1)
        except WaitTimeout as e:
            raise LabError(f"{e}: {server.run(['true']).stderr.strip()}") from e

    def _journal_members(self) -> None:
        """Journal every process of every server (its init, PID 1 there; its OVS daemons; its
        sshd) by its PID in this machine's PID namespace."""
        journal = ProcessJournal(self.dir)
        known = {r.pid for r in journal.records()}
        for server in self.servers:
            for pid in system.netns_pids(server.netns):
                if pid in known:
                    continue
                with contextlib.suppress(LookupError, OSError):
                    status = Path(f"/proc/{pid}/status").read_text()
                    comm = status.split("Name:", 1)[1].split()[0]
                    ns_pid = status.split("NSpid:", 1)[1].splitlines()[0].split()[-1]
                    what = "server-pid1" if ns_pid == "1" else comm
                    journal.add(record(pid, f"{what} {server.name}", server.name))

    # -- state file ----------------------------------------------------------------------
    def _write_state(self, state: dict[str, Any]) -> None:
        tmp = self.dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.dir / STATE_FILE)

    def _update_state(self, **changes: Any) -> None:
        state = read_state(self.name) or {}
        state.update(changes)
        state["servers"] = [
            {"name": s.name, "address": s.address, "netns": s.netns} for s in self.servers
        ]
        self._write_state(state)

    @classmethod
    def attach(cls, name: str) -> ServerHarness:
        """The harness `name` (made by another process, e.g. `testbed cluster harness up`),
        to use its servers; leaving its context does not tear it down."""
        state = read_state(name)
        if not state or not state.get("ready"):
            raise BadInput(
                f"no ready server harness named {name!r}",
                hint="testbed cluster harness status lists them",
            )
        h = cls(count=max(1, int(state["count"])))
        h.name = name
        h.dir = harness_dir(name)
        h.subnet = ipaddress.IPv4Network(state["subnet"])
        h.servers = [
            Server(s["name"], s["address"], s["netns"], h.dir / s["name"], h.ssh_config)
            for s in state["servers"]
        ]
        h.down = lambda: HarnessReport()  # type: ignore[method-assign]
        return h


# -- finding and removing harnesses (also those whose creator was killed) --------------------
def pick_subnet(
    taken: set[str | None], used: Sequence[ipaddress.IPv4Network]
) -> ipaddress.IPv4Network | None:
    """The first /24 of UNDERLAY (after 198.19.0.0/24) that no other harness has taken and
    that overlaps none of this machine's addresses and routes."""
    for net in list(UNDERLAY.subnets(new_prefix=24))[1:]:
        if str(net) not in taken and not any(net.overlaps(u) for u in used):
            return net
    return None


def list_harnesses() -> list[str]:
    root = harness_root()
    if not root.is_dir():
        return []
    return sorted(d.name for d in root.iterdir() if d.is_dir() and naming.NAME_RE.match(d.name))


def read_state(name: str) -> dict[str, Any] | None:
    try:
        return json.loads((harness_dir(name) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None


def creator_alive(state: dict[str, Any] | None) -> bool:
    creator = (state or {}).get("creator") or {}
    if "pid" not in creator:
        return False
    return is_alive(ProcessRecord(creator["pid"], creator["start_time"], "harness creator"))


def is_abandoned(name: str) -> bool:
    """True if nobody looks after harness `name`: its creator died and it is not one kept on
    purpose (detached and ready)."""
    state = read_state(name)
    if state and state.get("detached") and state.get("ready"):
        return False
    return not creator_alive(state)


def members(name: str) -> list[int]:
    """PIDs of the processes of harness `name` still running: journaled (same start time),
    inside its namespaces or carrying its label."""
    journal = ProcessJournal(harness_dir(name))
    alive = {r.pid for r in journal.records() if is_alive(r)}
    for ns in _named_resources(name)["namespaces"]:
        alive.update(system.netns_pids(ns))
    alive.update(_labelled(name))
    alive.discard(os.getpid())
    return sorted(alive)


def leftovers(name: str) -> dict[str, list[str]]:
    """What of harness `name` exists on this machine (all lists empty: nothing)."""
    found = _named_resources(name)
    found["files"] = [str(harness_dir(name))] if harness_dir(name).exists() else []
    found["processes"] = [str(p) for p in members(name)]
    return found


def teardown_harness(name: str, timeout: float = 20.0) -> HarnessReport:
    """Remove every process, namespace, link and file of harness `name`; return once they are
    gone. Safe to run twice, and after its creator was killed."""
    naming.validate_lab_name(name)
    report = HarnessReport()
    journal = ProcessJournal(harness_dir(name))
    records = journal.records()
    report.processes = members(name)
    # A server's PID 1 (its init) takes every process of the server with it when killed;
    # then `unshare` (which ignores SIGTERM), which waits for it and so reaps it.
    pid1 = [r for r in records if r.what.startswith("server-pid1")]
    inits = [r for r in records if r.what.startswith("server-init")]
    terminate(pid1, grace=2.0, first_signal=signal.SIGKILL)
    terminate(inits, grace=2.0, first_signal=signal.SIGKILL)
    for r in inits:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(r.pid, os.WNOHANG)
    rest = [r for r in records if r not in inits and r not in pid1]
    terminate([*rest, *members(name)], grace=2.0)
    resources = _named_resources(name)
    report.namespaces = resources["namespaces"]
    system.delete_netns(report.namespaces)
    # A server's eth0 goes when its namespace is freed (its last process gone), and with it
    # the underlay end; the bridge and anything left are deleted here.
    report.links = resources["links"]
    system.delete_links(report.links)
    d = harness_dir(name)
    if d.exists():
        shutil.rmtree(d, ignore_errors=True)
        report.files.append(str(d))

    def gone() -> bool:
        left = leftovers(name)
        if left["links"]:
            system.delete_links(left["links"])
        return not any(left.values())

    wait_for(gone, timeout, f"harness {name} to be gone", last=lambda: leftovers(name))
    return report


def clean_abandoned(names: Sequence[str] = ()) -> dict[str, HarnessReport]:
    """Tear down harnesses nobody looks after (or exactly `names`, whoever made them).
    Returns what was removed, by harness."""
    chosen = list(names) if names else [n for n in list_harnesses() if is_abandoned(n)]
    return {n: teardown_harness(n) for n in chosen}


def _named_resources(name: str) -> dict[str, list[str]]:
    pre = naming.prefix(name)
    return {
        "namespaces": [n for n in system.list_netns() if n.startswith(pre)],
        "links": [n for n in system.list_links() if n.startswith(pre)],
    }


def _labelled(name: str) -> list[int]:
    label = f"{LABEL}={name}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if label in environ and start_time(int(entry.name)) is not None:
            found.append(int(entry.name))
    return found


def _root_networks() -> list[ipaddress.IPv4Network]:
    """IPv4 addresses (as /32) and route destinations of the root namespace: an underlay
    must overlap none of them."""
    out: list[ipaddress.IPv4Network] = []
    addrs = system.run(["ip", "-j", "-4", "addr", "show"], check=False).stdout
    for link in json.loads(addrs or "[]"):
        for a in link.get("addr_info", []):
            with contextlib.suppress(ValueError, KeyError):
                out.append(ipaddress.IPv4Network(a["local"]))
    routes = system.run(["ip", "-j", "-4", "route", "show", "table", "all"], check=False).stdout
    for r in json.loads(routes or "[]"):
        dst = r.get("dst", "default")
        if dst != "default" and r.get("type", "unicast") == "unicast":
            with contextlib.suppress(ValueError):
                out.append(ipaddress.IPv4Network(dst, strict=False))
    return out


def _keygen(path: Path, comment: str) -> None:
    system.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _tail(path: Path, lines: int = 5) -> str:
    return " | ".join(_read(path).strip().splitlines()[-lines:]) or "(no output)"
