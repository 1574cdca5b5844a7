"""Traffic from lab hosts, for experiments and tests: the load client, iperf3 and wrk.

Every function runs its tools inside lab hosts (never the root namespace), bounded in count
and time, and returns parsed numbers:

    df = run_load(lab, "Client1", "http://203.0.113.10/", requests=500, concurrency=20)
    bps = iperf3(lab, server="WebB2", client="WebA2", seconds=3)["bits_per_second"]
    rps = wrk(lab, "Client1", "http://203.0.113.10/", seconds=3)["requests_per_second"]
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testbed.errors import BadInput, LabError
from testbed.lab.api import Lab, LabHost
from testbed.lab.hostexec import host_tmp
from testbed.waiting import wait_for

if TYPE_CHECKING:  # pandas is imported by run_load (the CLI starts faster)
    import pandas as pd


def load_argv(
    target: str,
    requests: int = 100,
    proto: str | None = None,
    rate: float | None = None,
    concurrency: int = 10,
    duration: float | None = None,
    timeout: float = 5.0,
    keepalive: bool = False,
    hold: float = 0.0,
    headers: list[str] | None = None,
    out: str | None = None,
    summary: str | None = None,
    client: str | None = None,
) -> list[str]:
    """Command line of the load client with these settings."""
    argv = [
        sys.executable,
        "-m",
        "testbed.roles.load_client",
        "--target",
        target,
        "-n",
        str(requests),
        "-c",
        str(concurrency),
        "--timeout",
        str(timeout),
    ]
    for flag, value in (
        ("--proto", proto),
        ("--rate", rate),
        ("--duration", duration),
        ("--out", out),
        ("--summary", summary),
        ("--client", client),
    ):
        if value is not None:
            argv += [flag, str(value)]
    if keepalive:
        argv.append("--keepalive")
    if hold:
        argv += ["--hold", str(hold)]
    for h in headers or []:
        argv += ["--header", h]
    return argv


def run_load(
    lab: Lab, client: str, target: str, out: str | Path | None = None, **settings: Any
) -> pd.DataFrame:
    """Run the load client in host `client` and return its rows as a pandas DataFrame.

    settings: requests, proto, rate, concurrency, duration, timeout, keepalive, hold, headers.
    With `out` the CSV is also copied there."""
    import pandas as pd

    host = lab.host(client)
    stamp = f"{time.time():.6f}"
    csv_path = host_tmp(lab.name, client) / f"load-{stamp}.csv"
    summary_path = host_tmp(lab.name, client) / f"load-{stamp}.json"
    argv = load_argv(
        target, out=str(csv_path), summary=str(summary_path), client=client, **settings
    )
    limit = settings.get("duration") or 600
    proc = host.run(argv, timeout=float(limit) + 120)
    if proc.returncode != 0:
        raise LabError(
            f"load client on {client} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}"
        )
    df = pd.read_csv(csv_path, keep_default_na=False, na_values=[""])
    df.attrs["summary"] = json.loads(summary_path.read_text())
    if out is not None:
        Path(out).write_bytes(csv_path.read_bytes())
    csv_path.unlink(missing_ok=True)
    summary_path.unlink(missing_ok=True)
    return df


def iperf3_result(proc: subprocess.CompletedProcess[str], what: str) -> dict[str, Any]:
    """An iperf3 client's `-J` run: bits_per_second (received), bytes, retransmits and the
    raw JSON; LabError naming `what` if iperf3 failed."""
    try:
        data = json.loads(proc.stdout)
    except ValueError as exc:
        raise LabError(f"{what}: {proc.stderr.strip()}") from exc
    if "error" in data:
        raise LabError(f"{what}: {data['error']}")
    end = data["end"]
    received = end.get("sum_received") or end.get("sum", {})
    return {
        "bits_per_second": received.get("bits_per_second", 0.0),
        "bytes": received.get("bytes", 0),
        "retransmits": end.get("sum_sent", {}).get("retransmits"),
        "raw": data,
    }


def iperf3(
    lab: Lab,
    server: str,
    client: str,
    target_ip: str | None = None,
    seconds: float = 3.0,
    parallel: int = 1,
    udp: bool = False,
    bitrate: str | None = None,
    reverse: bool = False,
    port: int = 5201,
) -> dict[str, Any]:
    """Throughput from `client` to `server` (or to target_ip, e.g. a VIP in front of it).

    Returns bits_per_second (received), bytes, retransmits and the raw iperf3 JSON."""
    srv = lab.host(server)
    cli = lab.host(client)
    listener = srv.popen(
        ["iperf3", "-s", "-1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(srv, port)
        argv = [
            "iperf3",
            "-c",
            target_ip or srv.ip,
            "-p",
            str(port),
            "-t",
            f"{seconds:g}",
            "-P",
            str(parallel),
            "-J",
        ]
        if udp:
            argv += ["-u", "-b", bitrate or "1G"]
        elif bitrate:
            argv += ["-b", bitrate]
        if reverse:
            argv.append("-R")
        proc = cli.run(argv, timeout=seconds + 30)
        return iperf3_result(proc, f"iperf3 {client} -> {server}")
    finally:
        if listener.poll() is None:
            listener.kill()
        listener.wait()


def wait_listening(host: LabHost, port: int, timeout: float = 5.0) -> None:
    """WaitTimeout (a LabError) if nothing listens on TCP `port` in `host` within `timeout` s
    (a server started with popen is not serving yet)."""
    wait_for(
        lambda: f":{port} " in host.cmd(f"ss -ltnH 'sport = :{port}'"),
        timeout,
        f"a listener on port {port} in {host.name}",
    )


def established_from(hosts: Iterable[LabHost], port: int, client_ip: str) -> int:
    """How many TCP connections from `client_ip` the servers on `port` of `hosts` hold
    established, as their own sockets say: what a held-flow load has really set up."""
    count = 0
    for host in hosts:
        lines = host.cmd(f"ss -Htn state established 'sport = :{port}'").splitlines()
        count += sum(f" {client_ip}:" in line for line in lines)
    return count


_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _WRK_UNITS[m.group(2)]


def parse_wrk(text: str) -> dict[str, Any]:
    """Numbers from wrk's output (requests/s, latency percentiles, errors)."""
    out: dict[str, Any] = {"errors": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not m:
        raise ValueError("no Requests/sec in wrk output")
    out["requests_per_second"] = float(m.group(1))
    m = re.search(r"(\d+) requests in ([\d.]+\w+)", text)
    if m:
        out["requests"] = int(m.group(1))
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}(?:\.0+)?%\s+(\S+)", text, re.M)
        if m:
            out[f"p{pct}_ms"] = _ms(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["errors"] += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        out["non_2xx"] = int(m.group(1))
    return out


def wrk(
    lab: Lab,
    client: str,
    url: str,
    seconds: float = 3.0,
    connections: int = 20,
    threads: int = 1,
    keepalive: bool = True,
) -> dict[str, Any]:
    """HTTP requests/s and latency from host `client` with wrk (bounded by `seconds`)."""
    if connections < threads:
        raise BadInput("wrk needs at least as many connections as threads")
    # wrk takes whole seconds only ("-d 1.5s" makes it print its usage): round up.
    seconds = float(max(1, math.ceil(seconds)))
    argv = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{seconds:g}s",
        "--latency",
        url,
    ]
    if not keepalive:
        argv[1:1] = ["-H", "Connection: close"]
    # wrk can outlive its -d when its connections stall; SIGINT makes it stop and report.
    argv = ["timeout", "-s", "INT", "-k", "5", f"{seconds + 10:g}", *argv]
    proc = lab.host(client).run(argv, timeout=seconds + 30)
    if proc.returncode != 0:
        raise LabError(f"wrk on {client} failed: {proc.stderr.strip() or proc.stdout}")
    result = parse_wrk(proc.stdout)
    result["raw"] = proc.stdout
    return result
