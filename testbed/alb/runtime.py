"""HAProxy's runtime API on the ALB and CLB nodes, driven by the lab's holder.

The holder keeps target health (testbed.lb.registry); `AlbRuntime.sync` turns each snapshot
into server states on every node (testbed.alb.servers.node_servers) and sends HAProxy only
the differences through the node's stats socket:

  set server <be>/<srv> state ready|maint     a target starts / stops taking requests;
                                              in-flight requests on it always finish
  add server <be>/<srv> <ip>:<port>           a target registered at run time (HAProxy 2.6
                                              dynamic servers: no reload, no slot limit;
                                              `send-proxy` on a CLB's proxy protocol
                                              listener, `send-proxy-v2` on an NLB group
                                              with proxy protocol v2: 2.6 takes both for
                                              dynamic servers)
  shutdown sessions server, del server        a drained target leaves (after its delay)
  set server <be>/<srv> addr <ip> port <port>  a target back at another address (an instance
                                              replaced while HAProxy still held its server)

Template updates rewrite haproxy.cfg (with the current states, so the new worker starts
right) and reload HAProxy through its master CLI: the old worker keeps serving the
connections it has, the new one takes the listening sockets over (expose-fd listeners), so
no connection is refused or dropped. Until they close, old workers also get every state
change (master CLI `@!<pid>`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from testbed.alb import tls
from testbed.alb.config import NodeFiles, node_files, render
from testbed.alb.servers import (
    MAINT,
    READY,
    Key,
    Server,
    cookie_backends,
    node_servers,
    proxy_backends,
    proxy_v2_backends,
)
from testbed.errors import LabError
from testbed.messages import TargetSnapshot
from testbed.model.elb_defaults import CLASSIC
from testbed.plan.balancers import LoadBalancerPlan, NodePlan
from testbed.waiting import WaitTimeout, wait_for

HAPROXY = "haproxy"
CLI_TIMEOUT = 3.0
RELOAD_TIMEOUT = 15.0
DEL_RETRY_S = 1.0
# srv_admin_state bits (show servers state): forced maintenance, forced drain.
ADMIN_FMAINT, ADMIN_FDRAIN = 0x01, 0x08


class CliUnavailable(Exception):
    """Nobody answers on a HAProxy socket (not started yet, or gone)."""


def cli(path: Path | str, command: str, timeout: float = CLI_TIMEOUT) -> str:
    """Send one command to a HAProxy CLI socket (stats socket or master CLI); its output."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise CliUnavailable(f"{path}: {exc}") from exc
        sock.sendall(command.encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)  # the master CLI answers once our side is closed
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")
    except (TimeoutError, ConnectionResetError, BrokenPipeError) as exc:
        raise CliUnavailable(f"{path}: {command!r}: {exc}") from exc
    finally:
        sock.close()


def cli_retrying(path: Path | str, command: str, within: float = RELOAD_TIMEOUT) -> str:
    """`cli`, tried again while nobody answers, for up to `within` seconds.

    HAProxy 2.6's master re-executes itself once its workers run (and on every reload);
    for that moment its CLI socket refuses connections, which is no failure."""
    refused: list[CliUnavailable] = []

    def answer() -> list[str] | None:  # in a list: an empty output is an answer too
        try:
            return [cli(path, command)]
        except CliUnavailable as exc:
            refused[:] = [exc]
            return None

    try:
        return wait_for(answer, within, f"HAProxy's CLI {path}")[0]
    except WaitTimeout:
        raise refused[-1] from None


def parse_servers_state(text: str) -> dict[Key, Server]:
    """`show servers state` -> {(backend, server): (ip, port, ready|drain|maint)}."""
    out: dict[Key, Server] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 19 or line.startswith("#") or not fields[0].isdigit():
            continue
        admin = int(fields[6])
        state = MAINT if admin & ADMIN_FMAINT else "drain" if admin & ADMIN_FDRAIN else READY
        out[(fields[1], fields[3])] = (fields[4], int(fields[18]), state)
    return out


@dataclass(frozen=True)
class Processes:
    """`show proc` of the master CLI."""

    reloads: int
    failed: int
    workers: tuple[int, ...]
    old_workers: tuple[int, ...]


def parse_show_proc(text: str) -> Processes:
    reloads = failed = 0
    workers: list[int] = []
    old: list[int] = []
    section = None
    for line in text.splitlines():
        if line.startswith("# workers"):
            section = workers
            continue
        if line.startswith("# old workers"):
            section = old
            continue
        if line.startswith("#"):
            section = None
            continue
        fields = line.split()
        if len(fields) >= 3 and fields[1] == "master":
            reloads = int(fields[2])
            if "[failed:" in line:
                failed = int(line.split("[failed:")[1].split("]")[0])
        elif section is not None and len(fields) >= 2 and fields[0].isdigit():
            section.append(int(fields[0]))
    return Processes(reloads, failed, tuple(workers), tuple(old))


def validate_config(path: Path) -> None:
    """`haproxy -c`: LabError with HAProxy's own words if the file is not valid."""
    proc = subprocess.run(
        [HAPROXY, "-c", "-q", "-f", str(path)], capture_output=True, text=True, timeout=30
    )
    if proc.returncode != 0:
        raise LabError(f"HAProxy rejects {path}: {(proc.stderr or proc.stdout).strip()}")


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclass
class NodeRuntime:
    """One node's HAProxy as the holder knows it."""

    lb: LoadBalancerPlan
    node: NodePlan
    files: NodeFiles
    present: dict[Key, Server] | None = None  # None: ask HAProxy first
    old_workers: set[int] = field(default_factory=set)
    del_after: dict[Key, float] = field(default_factory=dict)

    def desired(self, snapshot: TargetSnapshot) -> dict[Key, Server]:
        """{(backend, server): (ip, port, state)} the node should have (testbed.alb.servers)."""
        return node_servers(self.lb, self.node, snapshot.get(self.lb.name, {}))

    def in_sync(self, desired: dict[Key, Server]) -> bool:
        return self.present == desired

    def sync(self, desired: dict[Key, Server]) -> list[str]:
        """Send HAProxy what differs from `desired`; the commands sent. CliUnavailable or
        RuntimeError (a command HAProxy refused) leave the rest for the next call."""
        sock = self.files.stats_socket
        if self.present is None:
            self.present = parse_servers_state(cli(sock, "show servers state"))
        present = self.present
        sent: list[str] = []
        cookies, proxied = cookie_backends(self.lb), proxy_backends(self.lb)
        proxied_v2 = proxy_v2_backends(self.lb)
        https = tls.https_backends(self.lb)
        for key, (ip, port, state) in desired.items():
            be, srv = key
            have = present.get(key)
            if have is None:
                # Dynamic servers start in maintenance.
                options = " send-proxy" if be in proxied else ""  # a CLB's PROXY v1 header
                if be in proxied_v2:  # an NLB group's PROXY v2 header
                    options += " send-proxy-v2"
                if be in https:  # an HTTPS target group's server: TLS, not verified
                    options += f" {tls.HTTPS_SERVER}"
                self._run(f"add server {be}/{srv} {ip}:{port}{options}", "New server registered")
                if be in cookies:  # a dynamic server gets its AWSALB / AWSELB cookie value
                    self._run(f"enable dynamic-cookie backend {be}")
                if state == READY:
                    self._run(f"set server {be}/{srv} state {READY}")
                sent.append(f"add {be}/{srv} ({state})")
                present[key] = (ip, port, state)
            elif have[:2] != (ip, port):
                # The same target at another address: an instance replaced by an update
                # (same id, new PrivateIpAddress), registered again before its predecessor's
                # server was deleted (no sync since it drained, or HAProxy refused `del
                # server` while connections remained). The server follows the new address;
                # what still runs to the old one ends.
                self._readdress(key, ip, port, state)
                sent.append(f"{be}/{srv} -> {ip}:{port} ({state})")
                present[key] = (ip, port, state)
                self.del_after.pop(key, None)
            elif have[2] != state:
                command = f"set server {be}/{srv} state {state}"
                self._run(command)
                self._to_old_workers(command)
                sent.append(f"{be}/{srv} {state}")
                present[key] = (have[0], have[1], state)
        now = time.monotonic()
        for key in [k for k in present if k not in desired]:
            if self.del_after.get(key, 0.0) > now:
                continue
            be, srv = key
            if present[key][2] != MAINT:
                self._run(f"set server {be}/{srv} state {MAINT}")
                self._to_old_workers(f"set server {be}/{srv} state {MAINT}")
                present[key] = (present[key][0], present[key][1], MAINT)
            # The deregistration delay is over: what is still in flight ends now.
            cli(sock, f"shutdown sessions server {be}/{srv}")
            self._to_old_workers(f"shutdown sessions server {be}/{srv}")
            if "Server deleted" in cli(sock, f"del server {be}/{srv}"):
                del present[key]
                self.del_after.pop(key, None)
                sent.append(f"del {be}/{srv}")
            else:  # idle connections still open: it stays in maint, try again later
                self.del_after[key] = now + DEL_RETRY_S
        return sent

    def _readdress(self, key: Key, ip: str, port: int, state: str) -> None:
        """Point server `key` at ip:port: out of rotation first, its sessions to the old
        address shut, the address changed (HAProxy 2.6 then reuses none of its idle
        connections to the old one: test_alb_runtime), then the state wanted; old workers
        get the same."""
        server = f"{key[0]}/{key[1]}"
        # (command, what its answer must contain: "" nothing at all, None not checked)
        steps: list[tuple[str, str | None]] = [
            (f"set server {server} state {MAINT}", ""),
            (f"shutdown sessions server {server}", None),
            (f"set server {server} addr {ip} port {port}", "changed"),
        ]
        if state != MAINT:
            steps.append((f"set server {server} state {state}", ""))
        for command, expect in steps:
            if expect is None:
                cli(self.files.stats_socket, command)
            else:
                self._run(command, expect)
            self._to_old_workers(command)

    def _run(self, command: str, expect: str = "") -> None:
        out = cli(self.files.stats_socket, command).strip()
        if (expect and expect not in out) or (not expect and out):
            raise RuntimeError(f"{self.node.host}: {command!r}: {out or 'no answer'}")

    def _to_old_workers(self, command: str) -> None:
        """Old workers (after a reload) still serve their connections: keep them in step."""
        for pid in list(self.old_workers):
            try:
                out = cli(self.files.master_socket, f"@!{pid} {command}")
            except CliUnavailable:
                out = "unavailable"
            if "Can't find" in out or "unavailable" in out or "Unknown" in out:
                self.old_workers.discard(pid)

    def reload(self, snapshot: TargetSnapshot) -> Processes:
        """Rewrite haproxy.cfg for the current plan and states and reload seamlessly.

        LabError (and the old file back in place) if HAProxy rejects the file or the reload
        fails."""
        text = render(self.lb, self.node, self.files, snapshot.get(self.lb.name, {}))
        new = self.files.config.with_name(self.files.config.name + ".new")
        new.write_text(text)
        validate_config(new)
        before = parse_show_proc(cli_retrying(self.files.master_socket, "show proc"))
        old_text = self.files.config.read_text() if self.files.config.exists() else None
        os.replace(new, self.files.config)
        # The master closes the CLI connection when it reloads.
        with contextlib.suppress(CliUnavailable):
            cli(self.files.master_socket, "reload")

        def reloaded() -> Processes | None:
            """The new processes once a new worker replaced every old one."""
            try:
                now = parse_show_proc(cli(self.files.master_socket, "show proc"))
            except CliUnavailable:
                return None  # the master is re-executing itself
            if now.failed > before.failed:
                if old_text is not None:
                    write_atomically(self.files.config, old_text)
                raise LabError(
                    f"HAProxy on {self.node.host} could not reload; see {self.files.haproxy_log}"
                )
            new_workers = now.workers and not set(now.workers) & set(before.workers)
            return now if now.reloads > before.reloads and new_workers else None

        try:
            after = wait_for(reloaded, RELOAD_TIMEOUT, "HAProxy to reload", interval=0.1)
        except WaitTimeout:
            raise LabError(
                f"HAProxy on {self.node.host} did not reload within "
                f"{RELOAD_TIMEOUT:.0f} s; see {self.files.haproxy_log}"
            ) from None
        self.old_workers = set(after.old_workers)
        self.present = None  # the new worker started from the file: ask it
        self.del_after.clear()
        return after


class AlbRuntime:
    """Every HAProxy node (ALB and CLB) of a lab, kept in step with the target registry."""

    def __init__(
        self, lab_dir: Path, lbs: list[LoadBalancerPlan], log: Callable[[str], None] | None = None
    ) -> None:
        self.lab_dir = Path(lab_dir)
        self.log = log or (lambda text: print(text, file=sys.stderr, flush=True))
        self.nodes: dict[str, NodeRuntime] = {}
        self.failing: dict[str, str] = {}
        self.set_lbs(lbs)

    def set_lbs(self, lbs: list[LoadBalancerPlan]) -> None:
        """New plans (after an update): nodes keep what they know of HAProxy."""
        for lb in lbs:
            if not lb.runs_haproxy:  # ALB and CLB nodes, NLB nodes with TLS listeners
                continue
            for node in lb.nodes:
                current = self.nodes.get(node.host)
                if current is None:
                    self.nodes[node.host] = NodeRuntime(
                        lb, node, node_files(self.lab_dir, node.host)
                    )
                else:
                    current.lb, current.node = lb, node

    def sync(self, snapshot: TargetSnapshot) -> bool:
        """Push target states to every node; False if some node could not be reached (the
        next call tries again). Never raises."""
        ok = True
        for host, node in self.nodes.items():
            desired = node.desired(snapshot)
            if node.in_sync(desired):
                continue
            try:
                node.sync(desired)
                if host in self.failing:
                    self.log(f"{_kind(node.lb)} node {host}: HAProxy in step again")
                    del self.failing[host]
            except (CliUnavailable, RuntimeError, OSError) as exc:
                ok = False
                node.present = None  # re-read what HAProxy has before trying again
                if self.failing.get(host) != str(exc):
                    self.failing[host] = str(exc)
                    self.log(f"{_kind(node.lb)} node {host}: target states not applied yet: {exc}")
        return ok

    def reload(self, lb_name: str, snapshot: TargetSnapshot) -> list[str]:
        """Reload every node of one ALB or CLB with its current plan; the nodes reloaded."""
        done = []
        for host, node in self.nodes.items():
            if node.lb.name == lb_name:
                node.reload(snapshot)
                done.append(host)
        return done

    def validate(self, lb: LoadBalancerPlan, snapshot: TargetSnapshot) -> None:
        """Render and check every node's new file before anything changes (LabError)."""
        for node in lb.nodes:
            files = node_files(self.lab_dir, node.host)
            path = files.config.with_name(files.config.name + ".check")
            path.write_text(render(lb, node, files, snapshot.get(lb.name, {})))
            try:
                validate_config(path)
            finally:
                path.unlink(missing_ok=True)


def _kind(lb: LoadBalancerPlan) -> str:
    return {CLASSIC: "CLB", "network": "NLB"}.get(lb.type, "ALB")
