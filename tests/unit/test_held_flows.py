"""The flow holder (testbed.probes.held_flows) against a real echo server on the loopback,
and bench_flows' pure pieces (sizes, bytes per entry, the summary)."""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import threading
from collections.abc import Iterator

import pandas as pd
import pytest

from testbed.errors import BadInput
from testbed.experiments import bench_flows
from testbed.probes import held_flows
from testbed.probes.held_flows import HeldFlows, backend_of, parse_address, raise_fd_limit


class EchoServer:
    """An http-backend-like TCP port on 127.0.0.1: an identity line, then echoes; `forget`
    closes every connection it holds (a path that lost its flows)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.writers: list[asyncio.StreamWriter] = []
        self.port = 0
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.writers.append(writer)
            writer.write(json.dumps({"instance": "Echo1"}).encode() + b"\n")
            while line := await reader.readline():
                writer.write(line)
            writer.close()

        server = self.loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    def forget(self) -> None:
        def close_all() -> None:
            for w in self.writers:
                w.transport.abort()

        self.loop.call_soon_threadsafe(close_all)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class LocalHost:
    """A lab host's popen, on this machine (the holder needs nothing of a lab)."""

    def popen(self, argv: list[str], **kwargs: object) -> subprocess.Popen:
        return subprocess.Popen(argv, **kwargs)  # type: ignore[call-overload]


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.stop()


def test_holds_every_flow_and_each_answers_an_echo(echo: EchoServer) -> None:
    with HeldFlows(LocalHost(), [f"127.0.0.1:{echo.port}"], count=50, opening=10) as held:
        assert held.opened["opened"] == 50
        assert held.opened["failed"] == 0
        assert held.opened["backends"] == {"Echo1": 50}
        echoed = held.echo()
        assert (echoed["answered"], echoed["lost"]) == (50, 0)
        closed = held.close()
    assert closed["event"] == "closed"
    assert held.proc.returncode == 0


def test_flows_the_path_forgot_are_counted_lost(echo: EchoServer) -> None:
    with HeldFlows(LocalHost(), [f"127.0.0.1:{echo.port}"], count=20, timeout=2) as held:
        echo.forget()
        echoed = held.echo()
        held.close()
    assert echoed["answered"] == 0
    assert echoed["lost"] == 20


def test_refused_connections_are_failures_not_flows() -> None:
    with HeldFlows(LocalHost(), ["127.0.0.1:1"], count=5, timeout=2) as held:
        assert held.opened["opened"] == 0
        assert held.opened["failed"] == 5
        assert held.opened["errors"] == {"ConnectionRefusedError:ECONNREFUSED": 5}
        held.close()


def test_the_holder_ends_when_its_driver_goes(echo: EchoServer) -> None:
    argv = [sys.executable, "-m", "testbed.probes.held_flows", f"127.0.0.1:{echo.port}", "-n", "3"]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdin is not None
    assert json.loads(proc.stdout.readline())["opened"] == 3
    proc.stdin.close()  # the driver is gone: the holder closes its flows and exits
    assert proc.wait(timeout=30) == 0


def test_bad_arguments_exit_2() -> None:
    with pytest.raises(SystemExit) as err:
        held_flows.main(["127.0.0.1:9", "-n", "0"])
    assert err.value.code == 2


def test_addresses_and_identity_lines() -> None:
    assert parse_address("203.0.113.10:9000") == ("203.0.113.10", 9000)
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_address("203.0.113.10")
    assert backend_of(b'{"instance": "WebA1", "ip": "10.0.1.4"}\n') == "WebA1"
    assert backend_of(b"not json\n") == ""


def test_fd_limit_is_raised_to_what_the_flows_need() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert raise_fd_limit(10) == soft  # enough already: unchanged
    assert raise_fd_limit(soft) >= min(soft + held_flows.FD_SPARE, resource.RLIM_INFINITY)


def test_sizes_are_checked() -> None:
    assert bench_flows.check_sizes([1000, 5000]) == [1000, 5000]
    with pytest.raises(BadInput, match="ascending"):
        bench_flows.check_sizes([5000, 1000])
    with pytest.raises(BadInput, match="at least 2"):
        bench_flows.check_sizes([1])
    with pytest.raises(BadInput, match="ephemeral ports"):
        bench_flows.check_sizes([10**6])


def test_holders_split_each_clients_half_under_the_descriptor_cap() -> None:
    nodes = ["203.0.113.10", "203.0.113.11"]
    assert bench_flows.holder_jobs(1001, nodes) == [
        ("Client1", 500, nodes[0]),
        ("Client2", 501, nodes[1]),
    ]
    jobs = bench_flows.holder_jobs(50_000, nodes)
    assert sum(n for _, n, _ in jobs) == 50_000
    assert max(n for _, n, _ in jobs) <= bench_flows.PER_HOLDER
    assert {(c, a) for c, _, a in jobs} == {("Client1", nodes[0]), ("Client2", nodes[1])}


def test_bytes_per_entry_and_the_summary() -> None:
    assert bench_flows.per_entry_bytes(1000, 500) == 512.0
    assert bench_flows.per_entry_bytes(0, 500) is None
    assert bench_flows.per_entry_bytes(1000, -4) is None  # RSS fell: other labs, no reading
    steps = pd.DataFrame(
        [
            {"flows": 1000, "failed": 0, "lost": 0, "entries": 1000,
             "bytes_per_entry": 900.0, "open_per_s": 1000.0},
            {"flows": 5000, "failed": 0, "lost": 0, "entries": 5000,
             "bytes_per_entry": 600.0, "open_per_s": 1200.0},
            {"flows": 20000, "failed": 3, "lost": 0, "entries": 19997,
             "bytes_per_entry": None, "open_per_s": 900.0},
        ]
    )  # fmt: skip
    summary = bench_flows._summary(steps, 3_000_000)
    assert summary["largest_held"] == 5000
    assert summary["broke_at"] == 20000
    assert summary["bytes_per_entry"] == 600.0  # the largest step that has a reading
    assert summary["memory_at_limit_gib"] == round(3_000_000 * 600 / 2**30, 2)
