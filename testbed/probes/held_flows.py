"""Many TCP flows held open at once: how many a lab's path keeps, and what each costs.

A holder process runs in a lab host (`python -m testbed.probes.held_flows`): it opens N
connections to the given addresses (round robin, at most `--opening` handshakes in flight),
reads the identity line every http-backend TCP port sends on connect, and keeps every
connection open and idle (echoes and closes are paced the same way). It is driven by lines
on its stdin and answers each with one JSON line on stdout:

    (start)  -> {"event": "opened", "opened": N, "failed": F, "errors": {...}, "seconds": T,
                 "backends": {...}}
    echo     -> {"event": "echoed", "answered": A, "lost": L, "seconds": T}
    close    -> {"event": "closed", "seconds": T}   and the process exits

It always stops by itself: after `--max-seconds`, or when its stdin closes (the driver is
gone). An echo is one line sent on every held connection and its echo awaited, so a flow
the path forgot (its conntrack entry gone, a node's state lost) shows up as lost.

`HeldFlows` drives it from the front end:

    with HeldFlows(lab.host("Client1"), ["203.0.113.10:9000"], count=5000) as held:
        opened = held.opened       # the "opened" line
        echoed = held.echo()       # every held flow still answers?
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from testbed.errors import LabError

MAX_SECONDS = 900.0  # the holder's hard stop, whatever the driver does
CLOSE_PACE_S = 0.01  # between batches of closes (200 per batch by default: 20,000 FINs/s)
FD_SPARE = 1024  # descriptors beyond the held flows (stdio, the event loop, resolver)


def raise_fd_limit(count: int) -> int:
    """Allow `count` held sockets: the soft (and, as root, the hard) RLIMIT_NOFILE raised to
    count + FD_SPARE if lower. Returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + FD_SPARE
    if soft >= want:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):  # not root: as far as the hard limit goes
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"address {text!r}: expected HOST:PORT")
    return host, int(port)


def error_kind(exc: BaseException) -> str:
    """An error's class, with its errno's name when it has one (OSError:EADDRNOTAVAIL)."""
    code = getattr(exc, "errno", None)
    name = errno.errorcode.get(code, "") if isinstance(code, int) else ""
    return f"{type(exc).__name__}:{name}" if name else type(exc).__name__


def backend_of(line: bytes) -> str:
    """The backend's name from an http-backend identity line ("" if it has none)."""
    try:
        ident = json.loads(line)
    except ValueError:
        return ""
    return str(ident.get("instance") or "") if isinstance(ident, dict) else ""


class Holder:
    """The held connections of one holder process."""

    def __init__(self, addresses: Sequence[tuple[str, int]], timeout: float) -> None:
        self.addresses = list(addresses)
        self.timeout = timeout
        self.flows: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.errors: Counter[str] = Counter()
        self.backends: Counter[str] = Counter()

    async def _open_one(self, k: int, gate: asyncio.Semaphore) -> None:
        host, port = self.addresses[k % len(self.addresses)]
        async with gate:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port), self.timeout
                )
            except Exception as exc:
                self.errors[error_kind(exc)] += 1
                return
            try:
                line = await asyncio.wait_for(reader.readline(), self.timeout)
            except Exception as exc:
                self.errors[error_kind(exc)] += 1
                writer.close()
                return
            if not line:
                self.errors["closed"] += 1
                writer.close()
                return
        self.backends[backend_of(line)] += 1
        self.flows.append((reader, writer))

    async def open(self, count: int, opening: int) -> dict[str, Any]:
        t0 = time.monotonic()
        gate = asyncio.Semaphore(opening)
        await asyncio.gather(*(self._open_one(k, gate) for k in range(count)))
        return {
            "event": "opened",
            "opened": len(self.flows),
            "failed": sum(self.errors.values()),
            "errors": dict(self.errors),
            "backends": dict(self.backends),
            "seconds": round(time.monotonic() - t0, 3),
        }

    async def _echo_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        try:
            writer.write(b"held\n")
            answer = await asyncio.wait_for(reader.readline(), self.timeout)
        except Exception:
            return False
        return answer == b"held\n"

    async def echo(self, in_flight: int) -> dict[str, Any]:
        """One line on every held flow, at most `in_flight` at a time: a burst of one line on
        every flow at once overflows the switch's port queues, and the retransmissions' backoff
        measures the burst, not whether the path still knows the flows."""
        t0 = time.monotonic()
        gate = asyncio.Semaphore(in_flight)

        async def paced(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
            async with gate:
                return await self._echo_one(reader, writer)

        answers = await asyncio.gather(*(paced(r, w) for r, w in self.flows))
        return {
            "event": "echoed",
            "answered": sum(answers),
            "lost": len(answers) - sum(answers),
            "seconds": round(time.monotonic() - t0, 3),
        }

    async def close(self, in_flight: int) -> dict[str, Any]:
        """Close every held flow, `in_flight` at a time with CLOSE_PACE_S between batches:
        thousands of FINs at once overflow the switch's queues, and a lost FIN leaves both
        ends closing for minutes of retransmissions."""
        t0 = time.monotonic()
        for k in range(0, len(self.flows), in_flight):
            for _, writer in self.flows[k : k + in_flight]:
                writer.close()
            await asyncio.sleep(CLOSE_PACE_S)  # the batch's FINs go out before the next
        self.flows.clear()
        return {"event": "closed", "seconds": round(time.monotonic() - t0, 3)}


def _say(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


async def _serve(args: argparse.Namespace) -> None:
    holder = Holder([parse_address(a) for a in args.address], args.timeout)
    _say(await holder.open(args.count, args.opening))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        command = line.decode().strip()
        if command == "echo":
            _say(await holder.echo(args.opening))
        elif command == "close" or not line:  # stdin closed: the driver is gone
            _say(await holder.close(args.opening))
            return


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m testbed.probes.held_flows",
        description="Hold N TCP connections open to http-backend TCP ports; stdin drives "
        "it (echo, close); one JSON line per step on stdout.",
    )
    p.add_argument("address", nargs="+", help="HOST:PORT to connect to (round robin)")
    p.add_argument("-n", "--count", type=int, required=True, help="connections to hold")
    p.add_argument(
        "--opening", type=int, default=200, help="handshakes (and echoes) in flight at most"
    )
    p.add_argument("--timeout", type=float, default=10.0, help="per connect / read, seconds")
    p.add_argument("--max-seconds", type=float, default=MAX_SECONDS, help="hard stop")
    args = p.parse_args(argv)
    if args.count < 1 or args.opening < 1:
        p.error("--count and --opening must be at least 1")
    raise_fd_limit(args.count)
    try:
        asyncio.run(asyncio.wait_for(_serve(args), min(args.max_seconds, MAX_SECONDS)))
    except TimeoutError:
        return 1
    return 0


class HeldFlows:
    """A holder process in a lab host, driven from the front end (a context manager: the
    holder is closed, or ended, on the way out)."""

    def __init__(
        self,
        host: Any,
        addresses: Sequence[str],
        count: int,
        opening: int = 200,
        timeout: float = 10.0,
        max_seconds: float = 600.0,
    ) -> None:
        argv = [
            sys.executable,
            "-m",
            "testbed.probes.held_flows",
            *addresses,
            "-n",
            str(count),
            "--opening",
            str(opening),
            "--timeout",
            str(timeout),
            "--max-seconds",
            str(max_seconds),
        ]
        self.proc = host.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            self.opened = self._answer("opened")
        except BaseException:
            self.__exit__()
            raise

    def _answer(self, event: str) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=30)
            raise LabError(f"the flow holder ended before '{event}' ({self.proc.returncode})")
        doc = json.loads(line)
        if doc.get("event") != event:
            raise LabError(f"the flow holder said {doc!r}, expected '{event}'")
        return dict(doc)

    def _command(self, command: str, event: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._answer(event)

    def echo(self) -> dict[str, Any]:
        """One line on every held flow: how many answered."""
        return self._command("echo", "echoed")

    def close(self) -> dict[str, Any]:
        """Close every held flow and end the holder."""
        answer = self._command("close", "closed")
        self.proc.wait(timeout=30)
        return answer

    def __enter__(self) -> HeldFlows:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
