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
killed). While it serves, the holder tells it about instances launched on that server and
terminated there while the lab runs (Auto Scaling, `testbed update`, `up --into`), one JSON
line each (`add_line`, `remove_line`); it answers each with one line: `added HOST`,
`removed HOST` or `error HOST: why` (`read_answer`). Its PID is in the server's /run
(imds_pidfile): the remote teardown ends it there too (testbed.topologies.cluster.clean_script).

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
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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


def add_line(netns: str, metadata: InstanceMetadata) -> str:
    """A request to serve one more instance (namespace `netns`) from now on."""
    data = {"op": "add", "netns": netns, "metadata": to_dict(metadata)}
    return json.dumps(data, separators=(",", ":")) + "\n"


def remove_line(host: str) -> str:
    """A request to stop serving instance `host` (its listener and connections closed)."""
    return json.dumps({"op": "remove", "host": host}, separators=(",", ":")) + "\n"


def parse_request(line: str) -> tuple[str, str, InstanceMetadata | None]:
    """add_line / remove_line back: ("add", netns, metadata) or ("remove", host, None).
    ValueError when the line is neither."""
    data: Any = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError("not a request")
    if data.get("op") == "add":
        return "add", str(data["netns"]), from_dict(data["metadata"])
    if data.get("op") == "remove" and isinstance(data.get("host"), str):
        return "remove", data["host"], None
    raise ValueError(f"unknown request {str(data.get('op'))[:40]!r}")


def answer(op: str, host: str, error: str | None = None) -> str:
    """The server's one-line answer to a request."""
    if error is not None:
        return f"error {host}: {error}"
    return f"{'added' if op == 'add' else 'removed'} {host}"


def read_answer(line: str, host: str) -> str | None:
    """None when `line` says the request for `host` was done; else why it was not."""
    word, _, rest = line.strip().partition(" ")
    if word in ("added", "removed") and rest == host:
        return None
    if word == "error":
        return rest.split(": ", 1)[1] if rest.startswith(f"{host}: ") else rest
    return f"unexpected answer {line.strip()[:120]!r}"


def handle(server: Any, line: str) -> str:
    """Do one request line on MetadataServer `server`; the answer line."""
    try:
        op, name, md = parse_request(line)
    except (ValueError, KeyError, TypeError) as exc:
        return f"error ?: bad request: {exc}"
    try:
        if md is not None:
            server.add(name, md)
            return answer(op, md.host)
        server.remove(name)
        return answer(op, name)
    except LabError as exc:
        return answer(op, md.host if md is not None else name, str(exc))


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
        while True:  # until the holder closes it or the session goes
            line = sys.stdin.readline()
            if not line:
                return 0
            if line.strip():
                print(handle(server, line), flush=True)
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
    lock: threading.Lock = field(default_factory=threading.Lock)

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

    def request(self, line: str, host: str) -> None:
        """Send one request (add_line / remove_line) and wait for its answer; LabError when
        it is not done (the process gone, an error, no answer in time)."""
        with self.lock:
            try:
                assert self.proc.stdin is not None
                assert self.proc.stdout is not None
                self.proc.stdin.write(line.encode())
                self.proc.stdin.flush()
                answers = ("added", "removed", "error")
                lines = _read_until(self.proc.stdout, answers, READY_TIMEOUT_S)
            except (OSError, TimeoutError, ValueError) as exc:
                raise LabError(
                    f"the metadata service on server {self.access.name} does not answer: {exc}"
                ) from None
        why = read_answer(lines[-1], host)
        if why is not None:
            raise LabError(f"the metadata service on server {self.access.name}: {host}: {why}")
        if line.startswith('{"op":"add"'):
            self.hosts = (*(h for h in self.hosts if h != host), host)
        else:
            self.hosts = tuple(h for h in self.hosts if h != host)

    def add(self, netns: str, metadata: InstanceMetadata) -> None:
        """Serve one more instance on that server (launched there while the lab runs)."""
        self.request(add_line(netns, metadata), metadata.host)

    def remove(self, host: str) -> None:
        """Stop serving instance `host` there (it is terminated)."""
        self.request(remove_line(host), host)

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
