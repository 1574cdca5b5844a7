"""The phases of the compare experiment, each on the running lab (private to
testbed.experiments.compare, whose module doc says what each measures). Every phase prints
progress lines and returns the rows it measured; testbed.analysis.compare turns them into
tables."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from testbed.analysis.compare import seen_row, sticky_row
from testbed.errors import LabError
from testbed.experiments._compare_stack import (
    ALB,
    BACKENDS,
    BENCH_PATHS,
    BY_NAME,
    CLB,
    DRAIN_CLB,
    FAILOVER_PATHS,
    GROUPS,
    HTTP_PORT,
    INTERNET_CLIENTS,
    IPERF_PORT,
    NLB,
    SEEN_PATHS,
    SOLO,
    SPARE,
    STICKY,
    VICTIM_DRAIN,
    VICTIM_FAIL,
    VPC_CLIENT,
)
from testbed.experiments.alb import _counters, _usage
from testbed.lab.api import Lab
from testbed.model import elb_defaults as d
from testbed.traffic import iperf3_result, run_load, wait_listening, wrk

if TYPE_CHECKING:  # pandas is imported where the data is (the CLI starts faster)
    import pandas as pd

CHUNK_MB = 32  # the long flow: flow_mb / CHUNK_MB answers of this size, one connection
# One HTTP request (or the TCP service's first line) per connection, from inside a host; with
# cookies sent back when asked. Prints one JSON list of answers.
PROBE = r"""
import json, socket, sys
a = json.loads(sys.argv[1])
out, cookies = [], {}
for _ in range(a["repeat"]):
    answer = {"status": None, "headers": {}, "body": "", "error": ""}
    try:
        s = socket.create_connection((a["ip"], a["port"]), timeout=a["timeout"])
        f = s.makefile("rb")
        if a["mode"] == "tcp":
            answer["body"] = f.readline().decode("utf-8", "replace")
        else:
            head = "GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: elb-lab-compare\r\n" % a["ip"]
            if cookies:
                head += "Cookie: " + "; ".join(k + "=" + v for k, v in cookies.items()) + "\r\n"
            s.sendall((head + "Connection: close\r\n\r\n").encode())
            answer["status"] = int(f.readline().split()[1])
            length = 0
            while True:
                line = f.readline().decode("latin-1").strip()
                if not line:
                    break
                name, _, value = line.partition(":")
                answer["headers"].setdefault(name.strip().lower(), []).append(value.strip())
                if name.strip().lower() == "content-length":
                    length = int(value)
                if name.strip().lower() == "set-cookie" and a["cookies"]:
                    k, _, v = value.strip().split(";")[0].partition("=")
                    cookies[k] = v
            answer["body"] = f.read(length).decode("utf-8", "replace")
        s.close()
    except Exception as exc:
        answer["error"] = type(exc).__name__ + ": " + str(exc)
    out.append(answer)
print(json.dumps(out))
"""


# ---- lab facts -----------------------------------------------------------------------------
def nodes(lab: Lab, lb: str) -> dict[str, dict[str, Any]]:
    """The nodes of `lb` by AZ: ip (private), public_ip, host."""
    for entry in lab.state.get("load_balancers", []):
        if entry["name"] == lb:
            return {n["az"]: n for n in entry["nodes"]}
    raise LabError(f"lab {lab.name} has no load balancer {lb}")


def node(nodes: dict[str, dict[str, dict[str, Any]]], lb: str, index: int, public: bool) -> str:
    azs = sorted(nodes[lb])
    node = nodes[lb][azs[index]]
    return str(node["public_ip"] if public else node["ip"])


def health_bounds(scale: float) -> dict[str, dict[str, float]]:
    """AWS's default detection (interval x unhealthy threshold) and recovery (interval x
    healthy threshold) per load balancer, AWS seconds."""
    alb, nlb = d.DEFAULTS[d.APPLICATION].health_check, d.DEFAULTS[d.NETWORK].health_check
    clb = (d.CLASSIC_HC_INTERVAL_S, d.CLASSIC_HC_UNHEALTHY, d.CLASSIC_HC_HEALTHY)
    out: dict[str, dict[str, float]] = {}
    for lb, (interval, down, up) in {
        CLB: clb,
        DRAIN_CLB: clb,
        ALB: (alb.interval_s, alb.unhealthy_threshold, alb.healthy_threshold),
        NLB: (nlb.interval_s, nlb.unhealthy_threshold, nlb.healthy_threshold),
    }.items():
        out[lb] = {
            "detection": float(interval * down),
            "recovery": float(interval * up),
            "interval": float(interval),
        }
    return out


def wait_healthy(lab: Lab, scale: float, groups: list[str], targets: tuple[str, ...]) -> None:
    """Every target of every group healthy (the CLB's 10 checks take longest)."""
    slowest = max(b["recovery"] for b in health_bounds(scale).values()) / scale
    t0 = time.monotonic()
    for group in groups:
        lab.wait_healthy(group, list(targets), timeout=slowest * 2 + 30)
    print(
        f"  {', '.join(targets)} healthy in {', '.join(groups)} after "
        f"{time.monotonic() - t0:.1f} s more",
        flush=True,
    )


# ---- seen ----------------------------------------------------------------------------------
def probe(
    lab: Lab, client: str, ip: str, port: int, mode: str = "http", repeat: int = 1
) -> list[dict[str, Any]]:
    args = {
        "ip": ip,
        "port": port,
        "mode": mode,
        "repeat": repeat,
        "cookies": repeat > 1,
        "timeout": 5.0,
    }
    proc = lab.host(client).run([sys.executable, "-c", PROBE, json.dumps(args)], timeout=60)
    if proc.returncode != 0:
        raise LabError(f"probe from {client} to {ip}:{port} failed: {proc.stderr.strip()}")
    return list(json.loads(proc.stdout))


def seen(lab: Lab, nodes: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    import pandas as pd

    print("seen: one request per path and client", flush=True)
    node_ips = {
        str(n[k])
        for lb in nodes.values()
        for n in lb.values()
        for k in ("ip", "public_ip")
        if n.get(k)
    }
    rows = []
    for client in (INTERNET_CLIENTS[0], VPC_CLIENT):
        host = lab.host(client)
        inside = client == VPC_CLIENT
        for name in SEEN_PATHS:
            p = BY_NAME[name]
            if name == "direct":
                if not inside:
                    continue  # the instances have no public address
                ip = lab.host(SOLO).ip
            else:
                ip = node(nodes, p["lb"], 0, public=not inside)
            for answer in probe(lab, client, ip, p["port"], p.get("mode", "http")):
                row = seen_row(
                    answer,
                    path=name,
                    listener=p["listener"],
                    client=client,
                    client_ip=host.ip,
                    node_ips=node_ips,
                )
                rows.append(row)
                print(
                    f"  {client:9s} {name:10s} backend {row['backend'] or '-':6s} saw "
                    f"{row['seen_ip'] or '-'} ({row['seen_as'] or row['error']}); XFF "
                    f"{row['x_forwarded_for'] or '-'}; PROXY {row['proxy_header'] or '-'}",
                    flush=True,
                )
    sticky = []
    for name, cookie in STICKY.items():
        ip = node(nodes, BY_NAME[name]["lb"], 0, public=True)
        answers = probe(lab, INTERNET_CLIENTS[0], ip, BY_NAME[name]["port"], repeat=6)
        row = sticky_row(answers, path=name, cookie=cookie)
        sticky.append(row)
        print(
            f"  {name}: cookies {row['cookies_set'] or '-'}, {row['backends']} backend(s) "
            f"for {row['answered']} requests sending them back",
            flush=True,
        )
    return pd.DataFrame(rows), pd.DataFrame(sticky)


# ---- one backend -----------------------------------------------------------------------
def solo(lab: Lab, scale: float, alone: bool) -> None:
    """alone: deregister every backend but SOLO from every group, so that each path of the
    benches ends at the one backend the direct path uses (a Python backend is slower than the
    switch: spreading over more backends than direct would flatter the load balancers).
    Else register them again and wait until they are healthy."""
    pairs = [(g, t) for g in GROUPS.values() for t in BACKENDS if t != SOLO]
    act = lab.deregister if alone else lab.register
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda pair: act(*pair), pairs))
    if alone:
        print(f"  only {SOLO} registered: every path ends at it", flush=True)
    else:
        wait_healthy(lab, scale, list(GROUPS.values()), BACKENDS)


# ---- bench ---------------------------------------------------------------------------------
def bench_url(lab: Lab, nodes: dict[str, Any], name: str) -> tuple[str, list[str]]:
    """The URL of a path from VpcClient and the hosts whose packets it costs."""
    p = BY_NAME[name]
    backends = [VPC_CLIENT, *BACKENDS]
    if name == "direct":
        return f"http://{lab.host(SOLO).ip}/", backends
    hosts = [str(n["host"]) for n in nodes[p["lb"]].values()]
    return f"http://{node(nodes, p['lb'], 0, public=False)}:{p['port']}/", backends + hosts


def bench(lab: Lab, nodes: dict[str, Any], params: dict[str, Any]) -> pd.DataFrame:
    import pandas as pd

    print(
        f"bench: wrk {params['seconds']:g} s x {params['repeats']} per path from {VPC_CLIENT}, "
        f"{params['connections']} connections",
        flush=True,
    )
    runs = []
    for mode, keepalive in (("keep-alive", True), ("new-connection", False)):
        for rep in range(params["repeats"]):
            for name in BENCH_PATHS:
                url, hosts = bench_url(lab, nodes, name)
                before = _counters(lab, hosts)
                res = wrk(
                    lab,
                    VPC_CLIENT,
                    url,
                    seconds=params["seconds"],
                    connections=params["connections"],
                    keepalive=keepalive,
                )
                used = _usage(before, _counters(lab, hosts), res.get("requests", 0))
                runs.append(
                    {
                        "mode": mode,
                        "path": name,
                        "repeat": rep,
                        "url": url,
                        "requests_per_second": res["requests_per_second"],
                        "p50_ms": res.get("p50_ms"),
                        "p99_ms": res.get("p99_ms"),
                        "errors": res["errors"],
                        "non_2xx": res.get("non_2xx", 0),
                        **used,
                    }
                )
                print(
                    f"  {mode:14s} {name:9s} {res['requests_per_second']:8.0f} req/s  p50 "
                    f"{res.get('p50_ms', float('nan')):6.2f} ms  p99 "
                    f"{res.get('p99_ms', float('nan')):6.2f} ms  "
                    f"{used['fabric_packets_per_request']:.1f} packets/request",
                    flush=True,
                )
    return pd.DataFrame(runs)


# ---- one long flow -------------------------------------------------------------------------
def download(lab: Lab, url: str, megabytes: int) -> dict[str, Any]:
    """curl fetching `megabytes` MB as answers of CHUNK_MB MB over one keep-alive connection:
    bits/s over the transfers' own times, and the connections it opened (1: one flow)."""
    chunks = max(1, megabytes // CHUNK_MB)
    size = CHUNK_MB * 1_000_000
    argv = ["curl", "-s", "--max-time", "120"]
    for _ in range(chunks):
        argv += ["-o", "/dev/null", "-w", "%{size_download} %{time_total} %{num_connects} "
                 "%{http_code}\\n", f"{url}?size={size}"]  # fmt: skip
    proc = lab.host(VPC_CLIENT).run(argv, timeout=180)
    lines = [x.split() for x in proc.stdout.splitlines() if x.strip()]
    if proc.returncode != 0 or len(lines) != chunks or any(x[3] != "200" for x in lines):
        raise LabError(f"curl {url}: exit {proc.returncode}, {proc.stdout!r} {proc.stderr!r}")
    size_total = sum(float(x[0]) for x in lines)
    seconds = sum(float(x[1]) for x in lines)
    return {
        "bits_per_second": size_total * 8 / seconds,
        "bytes": size_total,
        "seconds": seconds,
        "connections": sum(int(x[2]) for x in lines),
    }


def iperf(lab: Lab, ip: str, seconds: float) -> dict[str, Any]:
    argv = ["iperf3", "-c", ip, "-p", str(IPERF_PORT), "-t", f"{seconds:g}", "-J"]
    proc = lab.host(VPC_CLIENT).run(argv, timeout=seconds + 30)
    found = iperf3_result(proc, f"iperf3 to {ip}")
    found.pop("raw")
    # iperf3 opens a control connection beside the data one.
    return {**found, "seconds": seconds, "connections": 2}


def flows(lab: Lab, nodes: dict[str, Any], params: dict[str, Any]) -> pd.DataFrame:
    import pandas as pd

    print(
        f"flow: {params['flow_mb']} MB over one connection per path (curl), iperf3 "
        f"{params['iperf_seconds']:g} s direct and through the CLB (TCP:5201) and the NLB",
        flush=True,
    )
    wait_listening(lab.host(SOLO), IPERF_PORT)
    runs = []
    for rep in range(params["repeats"]):
        for name in BENCH_PATHS:
            url, _hosts = bench_url(lab, nodes, name)
            res = download(lab, url, params["flow_mb"])
            runs.append({"tool": "http-download", "path": name, "repeat": rep, **res})
            print(f"  curl   {name:9s} {res['bits_per_second'] / 1e6:8.0f} Mbit/s", flush=True)
        for name, ip in (
            ("direct", lab.host(SOLO).ip),
            ("clb-tcp", node(nodes, CLB, 0, public=False)),
            ("nlb", node(nodes, NLB, 0, public=False)),
        ):
            res = iperf(lab, ip, params["iperf_seconds"])
            runs.append({"tool": "iperf3", "path": name, "repeat": rep, **res})
            print(f"  iperf3 {name:9s} {res['bits_per_second'] / 1e6:8.0f} Mbit/s", flush=True)
    return pd.DataFrame(runs)


# ---- draining ------------------------------------------------------------------------------
def event_time(
    lab: Lab, group: str, target: str, state: str, since: float, timeout: float, old: str = ""
) -> float | None:
    """When `target` of `group` turned `state` at or after `since` (None: not within
    `timeout` s). `old` narrows it to transitions from that state."""

    def found() -> float | None:
        for e in lab.target_events(since):
            if (
                e["target_group"] == group
                and e["target"] == target
                and e["new"] == state
                and (not old or e["old"] == old)
            ):
                return float(e["time"])
        return None

    try:
        return lab.wait_for(found, timeout, f"{target} of {group} to turn {state or 'removed'}")
    except LabError:
        return None


# `n` HTTP requests held open at once (GET /?delay_ms=...), from inside a host: prints "ready"
# once every request is sent, then one JSON list of rows (REQUEST_COLUMNS' start, latency_ms,
# status, error, backend, backend_az) when they have all ended.
HELD = r"""
import json, socket, sys, threading, time
a = json.loads(sys.argv[1])
rows, sent, lock, all_sent = [], [0], threading.Lock(), threading.Event()

def one():
    row = {"start": time.time(), "latency_ms": None, "status": None, "error": "",
           "backend": None, "backend_az": None}
    t0 = time.monotonic()
    try:
        s = socket.create_connection((a["ip"], a["port"]), timeout=a["timeout"])
        s.sendall(("GET /?delay_ms=%d HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                   % (a["delay_ms"], a["ip"])).encode())
    except Exception as exc:
        row["error"] = type(exc).__name__
        s = None
    with lock:
        sent[0] += 1
        if sent[0] == a["n"]:
            all_sent.set()
    if s is not None:
        try:
            f = s.makefile("rb")
            line = f.readline()
            if not line:
                raise ConnectionResetError("closed before an answer")
            row["status"] = int(line.split()[1])
            length = 0
            while True:
                h = f.readline().decode("latin-1").strip()
                if not h:
                    break
                if h.lower().startswith("content-length:"):
                    length = int(h.split(":", 1)[1])
            body = f.read(length)
            try:
                data = json.loads(body)
                row["backend"], row["backend_az"] = data.get("instance"), data.get("az")
            except ValueError:
                pass
        except socket.timeout:
            row["error"] = "timeout"
        except Exception as exc:
            row["error"] = "reset" if isinstance(exc, OSError) else type(exc).__name__
        finally:
            s.close()
    row["latency_ms"] = (time.monotonic() - t0) * 1000
    with lock:
        rows.append(row)

threads = [threading.Thread(target=one) for _ in range(a["n"])]
for t in threads:
    t.start()
all_sent.wait(30)
print("ready", flush=True)
for t in threads:
    t.join()
print(json.dumps(rows), flush=True)
"""


def draining(
    lab: Lab, nodes: dict[str, Any], params: dict[str, Any], scale: float
) -> tuple[pd.DataFrame, dict[str, dict[str, float | None]]]:
    """Long requests in flight through each load balancer when VICTIM_DRAIN is deregistered
    (and SPARE registered for the zones phase), a stream of short ones meanwhile."""
    import pandas as pd

    lbs = [CLB, DRAIN_CLB, ALB, NLB]
    long_s = params["long_ms"] / 1000
    print(
        f"draining: {params['held']} requests of {long_s:g} s in flight through each load "
        f"balancer and 10 short ones/s; then {VICTIM_DRAIN} deregistered, {SPARE} registered",
        flush=True,
    )
    key = f"{VICTIM_DRAIN}:{HTTP_PORT}"
    client = lab.host(INTERNET_CLIENTS[0])
    frames: list[pd.DataFrame] = []
    lock = threading.Lock()

    def stream(lb: str) -> None:
        seconds = long_s + 4
        df = run_load(
            lab,
            INTERNET_CLIENTS[0],
            f"http://{node(nodes, lb, 0, public=True)}/",
            requests=int(10 * seconds),
            rate=10.0,
            duration=seconds,
            concurrency=20,
            timeout=3.0,
        )
        with lock:
            frames.append(df.assign(lb=lb, flow="new"))

    times: dict[str, dict[str, float | None]] = {lb: {} for lb in lbs}

    def deregister(lb: str) -> None:
        times[lb]["asked"] = time.time()
        lab.deregister(GROUPS[lb], VICTIM_DRAIN)
        times[lb]["deregistered"] = time.time()

    held: dict[str, subprocess.Popen] = {}
    with ThreadPoolExecutor(max_workers=2 * len(lbs)) as pool:
        streams = [pool.submit(stream, lb) for lb in lbs]
        try:
            for lb in lbs:
                args = {
                    "ip": node(nodes, lb, 0, public=True),
                    "port": HTTP_PORT,
                    "n": params["held"],
                    "delay_ms": params["long_ms"],
                    "timeout": long_s + 20,
                }
                held[lb] = client.popen(
                    [sys.executable, "-c", HELD, json.dumps(args)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            for lb, proc in held.items():
                assert proc.stdout is not None
                if proc.stdout.readline().strip() != "ready":
                    raise LabError(
                        f"held requests through {lb}: {proc.stderr.read() if proc.stderr else ''}"
                    )
            # Every request is sent: the load balancers have handed them on within ms.
            time.sleep(0.2)
            list(pool.map(deregister, lbs))
            for lb in (CLB, ALB, NLB):
                lab.register(GROUPS[lb], SPARE)
            for lb, proc in held.items():
                out, err = proc.communicate(timeout=long_s + 60)
                if proc.returncode != 0:
                    raise LabError(f"held requests through {lb} failed: {err.strip()}")
                rows = pd.DataFrame(json.loads(out.splitlines()[-1]))
                frames.append(rows.assign(lb=lb, flow="held"))
        finally:
            for proc in held.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        for job in streams:
            job.result()
    bounds = max(float(d.CLASSIC_DRAINING_TIMEOUT_S), float(d.DEREGISTRATION_DELAY_S)) / scale
    for lb in lbs:
        group, asked = GROUPS[lb], times[lb]["asked"] or 0.0
        times[lb]["draining"] = event_time(lab, group, key, "draining", asked - 1, 10)
        times[lb]["removed"] = event_time(lab, group, key, "", asked, bounds + 15, "draining")
        print(
            f"  {lb}: removed {gap(times[lb]['removed'], times[lb]['draining'])} s after "
            "the deregistration",
            flush=True,
        )
    return pd.concat(frames, ignore_index=True), times


def gap(later: float | None, earlier: float | None) -> str:
    return "-" if later is None or earlier is None else f"{later - earlier:.2f}"


# ---- zones ---------------------------------------------------------------------------------
def zones(
    lab: Lab, nodes: dict[str, Any], params: dict[str, Any], scale: float
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    import pandas as pd

    members = [t for t in (*BACKENDS, SPARE) if t != VICTIM_DRAIN]
    wait_healthy(lab, scale, [GROUPS[lb] for lb in (CLB, ALB, NLB)], (SPARE,))
    zones = {h.name: h.info.get("az") for h in lab.hosts}
    azs = sorted(nodes[CLB])
    targets_by_az = {az: [t for t in members if zones.get(t) == az] for az in azs}
    print(
        f"zones: {params['zone_requests']} new connections per node and load balancer; "
        + "; ".join(f"{az}: {', '.join(ts)}" for az, ts in targets_by_az.items()),
        flush=True,
    )
    frames = []
    for lb in (CLB, ALB, NLB):
        with ThreadPoolExecutor(max_workers=2) as pool:
            jobs = [
                pool.submit(
                    run_load,
                    lab,
                    client,
                    f"http://{node(nodes, lb, i, public=True)}/",
                    requests=params["zone_requests"],
                    concurrency=8,
                    timeout=5.0,
                )
                for i, client in enumerate(INTERNET_CLIENTS)
            ]
            for job, az in zip(jobs, azs):
                frames.append(job.result().assign(lb=lb, node_az=az))
        rows = pd.concat(frames[-2:], ignore_index=True)
        away = (
            rows["backend_az"].dropna() != rows.loc[rows["backend_az"].notna(), "node_az"]
        ).mean()
        print(f"  {lb}: {away:.0%} of the connections answered in the other AZ", flush=True)
    return pd.concat(frames, ignore_index=True), targets_by_az


# ---- failover ------------------------------------------------------------------------------
def failover(
    lab: Lab, nodes: dict[str, Any], params: dict[str, Any], scale: float
) -> tuple[pd.DataFrame, dict[str, Any]]:
    import pandas as pd

    bounds = health_bounds(scale)
    detect_wait = max(b["detection"] + b["interval"] for b in bounds.values()) / scale + 3
    recover_wait = max(b["recovery"] + b["interval"] for b in bounds.values()) / scale + 3
    duration = params["fault_after"] + detect_wait + recover_wait + 2
    key = f"{VICTIM_FAIL}:{HTTP_PORT}"
    print(
        f"failover: {params['rate']:g} req/s per path through the AZ-b nodes; {VICTIM_FAIL} "
        f"stopped after {params['fault_after']:g} s (AWS: out after "
        + ", ".join(f"{lb} {b['detection']:g} s" for lb, b in bounds.items())
        + f"; lab / {scale:g})",
        flush=True,
    )
    frames: list[pd.DataFrame] = []
    lock = threading.Lock()

    def load(name: str) -> None:
        p = BY_NAME[name]
        df = run_load(
            lab,
            INTERNET_CLIENTS[1],
            f"http://{node(nodes, p['lb'], 1, public=True)}:{p['port']}/",
            requests=int(params["rate"] * duration) + 1,
            rate=params["rate"],
            duration=duration,
            concurrency=50,
            timeout=2.0,
        )
        with lock:
            frames.append(df.assign(path=name))

    times: dict[str, Any] = {}
    victim = lab.host(VICTIM_FAIL)
    with ThreadPoolExecutor(max_workers=len(FAILOVER_PATHS)) as pool:
        jobs = [pool.submit(load, name) for name in FAILOVER_PATHS]
        time.sleep(params["fault_after"])
        asked = times["fault_asked"] = time.time()
        victim.fault("stop")
        # The backend is gone once the lab records it (its process has ended: SIGTERM, a
        # graceful exit, up to a second on a busy machine); detection counts from there.
        fault = times["fault"] = max(
            (
                e.time
                for e in lab.events()
                if e.logical_id == VICTIM_FAIL and e.status == "FAULT_INJECTED"
            ),
            default=asked,
        )
        print(f"  {VICTIM_FAIL} stopped {fault - asked:.2f} s after the request", flush=True)
        for lb in GROUPS:
            when = event_time(lab, GROUPS[lb], key, "unhealthy", fault, detect_wait)
            times[f"unhealthy_{lb}"] = when
            print(f"  {lb}: out of service after {gap(when, fault)} s (lab)", flush=True)
        victim.fault("start")  # returns once the backend listens again
        repair = times["repair"] = time.time()
        for lb in GROUPS:
            when = event_time(lab, GROUPS[lb], key, "healthy", repair, recover_wait)
            times[f"healthy_{lb}"] = when
            print(f"  {lb}: back in service after {gap(when, repair)} s (lab)", flush=True)
        for job in jobs:
            job.result()
    return pd.concat(frames, ignore_index=True), times
