"""The metadata service of the hosts on another server (a lab across servers, issue 18).

The lab's metadata server makes its sockets inside the instances' namespaces (setns), so it
can only serve namespaces of its own machine. A server's hosts get the same server run on
that server: one process per server and lab, `python -m testbed.lab.imds.remote LAB`,
started over ssh in the server's root namespace by the holder (the same Python and package
as the front end: the lab already runs its roles and UserData there that way). It reads
what it serves as one JSON line on its standard input (each host's namespace and metadata,
built on the front end from the lab's model and plan: nothing is read from the lab's folder),
makes every socket, says `ready N` (or `error ...` lines and `failed`) on its standard
output, then serves until its standard input ends: the holder closing it (the metadata
service closed before the teardown), or its ssh session going (the holder or its ssh client
killed). Its PID is in the server's /run (imds_pidfile): the remote teardown ends it there
too (testbed.topologies.cluster.clean_script).

Why not the front end's server over the underlay: a remote host's namespace reaches only the
lab's bridges, so its requests would need a path out to the server's root namespace and a
forwarder there that still tells which instance asks, i.e. a process per server anyway, plus
the lab's metadata crossing the underlay on every request. Serving on the server needs only
this process and the data once.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from testbed.errors import LabError
from testbed.lab.imds.metadata import InstanceMetadata, from_dict, to_dict
from testbed.topologies.cluster import IMDS_MODULE, ServerAccess, imds_pidfile

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


def spec_line(lab: str, hosts: Sequence[tuple[str, InstanceMetadata]]) -> str:
    """What the server's process reads: lab `lab`'s hosts there, (namespace, metadata) each."""
    data = {"lab": lab, "hosts": [{"netns": ns, "metadata": to_dict(md)} for ns, md in hosts]}
    return json.dumps(data, separators=(",", ":")) + "\n"


def parse_spec(line: str) -> tuple[str, list[tuple[str, InstanceMetadata]]]:
    """spec_line's lab and hosts back (ValueError when it is not one)."""
    data: Any = json.loads(line)
    if not isinstance(data, dict) or not isinstance(data.get("hosts"), list):
        raise ValueError("not a metadata service spec")
    return str(data["lab"]), [(str(h["netns"]), from_dict(h["metadata"])) for h in data["hosts"]]


def read_status(lines: Sequence[str]) -> tuple[int | None, list[str]]:
    """What the server's process said: (hosts served when it said `ready N`, error lines)."""
    errors: list[str] = []
    for line in lines:
        word, _, rest = line.strip().partition(" ")
        if word == "ready":
            return int(rest or 0), errors
        if word == "error":
            errors.append(rest)
    return None, errors


# ---- on the server ------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """The process on a server (see the module's doc)."""
    from testbed.lab.imds.server import MetadataServer

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print(f"usage: python -m {IMDS_MODULE} LAB  (the hosts as one JSON line on stdin)")
        return 2
    lab = args[0]
    try:
        spec_lab, hosts = parse_spec(sys.stdin.readline())
    except ValueError as exc:
        print(f"error bad spec: {exc}", flush=True)
        print("failed", flush=True)
        return 2
    if spec_lab != lab:
        print(f"error the spec is lab {spec_lab}'s, not {lab}'s", flush=True)
        print("failed", flush=True)
        return 2
    pidfile = Path(imds_pidfile(lab))
    pidfile.write_text(f"{os.getpid()}\n")
    server = MetadataServer()
    try:
        failed = False
        for netns, md in hosts:
            try:
                server.add(netns, md)
            except LabError as exc:
                print(f"error {md.host}: {exc}", flush=True)
                failed = True
        if failed:
            print("failed", flush=True)
            return 1
        print(f"ready {len(hosts)}", flush=True)
        while sys.stdin.readline():  # until the holder closes it or the session goes
            pass
        return 0
    finally:
        server.close()
        pidfile.unlink(missing_ok=True)


# ---- on the front end ---------------------------------------------------------------------


@dataclass
class RemoteMetadataServer:
    """The metadata service's process on one server, seen from the holder."""

    access: ServerAccess
    proc: subprocess.Popen
    hosts: tuple[str, ...]
    log: Path

    @classmethod
    def start(
        cls,
        lab: str,
        access: ServerAccess,
        hosts: Sequence[tuple[str, InstanceMetadata]],
        log: Path,
        on_start: Callable[[int], None] | None = None,
    ) -> RemoteMetadataServer:
        """Start it on server `access` for `hosts` and wait until it serves them all.
        on_start(pid): told the local ssh client's PID at once (to journal it). LabError when
        it does not come up (it is ended first)."""
        command = shlex.join([sys.executable, "-m", IMDS_MODULE, lab])
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as err:
            proc = subprocess.Popen(
                access.argv(command),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,
            )
        if on_start is not None:
            on_start(proc.pid)
        server = cls(access, proc, tuple(md.host for _, md in hosts), log)
        try:
            assert proc.stdin is not None
            assert proc.stdout is not None
            proc.stdin.write(spec_line(lab, hosts).encode())
            proc.stdin.flush()
            lines = _read_until(proc.stdout, ("ready", "failed"), READY_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            server.stop()
            raise LabError(
                f"the metadata service on server {access.name} did not start: {exc}; {_tail(log)}"
            ) from None
        served, errors = read_status(lines)
        if served is None:
            server.stop()
            raise LabError(
                f"the metadata service on server {access.name} did not start: "
                + ("; ".join(errors) or f"it said {' / '.join(lines) or 'nothing'}; {_tail(log)}")
            )
        return server

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        """Close its standard input (it closes its sockets and ends), kill it if it does not."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT_S)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _read_until(out: IO[bytes], last: tuple[str, ...], timeout: float) -> list[str]:
    """Lines of `out` up to one starting with a word of `last` (included); TimeoutError after
    `timeout` s, OSError when it ends first."""
    deadline = time.monotonic() + timeout
    fd = out.fileno()
    buf = b""
    lines: list[str] = []
    while True:
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            text = line.decode(errors="replace").strip()
            lines.append(text)
            if text.split(" ", 1)[0] in last:
                return lines
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no answer in {timeout:.0f} s (said: {' / '.join(lines)})")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                raise OSError(f"it ended (said: {' / '.join(lines) or 'nothing'})")
            buf += chunk


def _tail(log: Path, lines: int = 5) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return f"log {log}"
    return f"log {log}: " + " | ".join(text) if text else f"log {log}"


if __name__ == "__main__":
    sys.exit(main())
