"""Numbers and figures of the compare experiment: CLB, ALB and NLB side by side.

Every function is pure (frames in, frames out) and unit-tested on made-up data. A *path* is
one way to the instances: "direct" (no load balancer) or a load balancer's listener
("clb-http", "clb-tcp", "clb-proxy", "alb", "nlb", ...). Inputs:
- backend answers: the http-backend's JSON (its `client` is the TCP peer, `forwarded` the
  X-Forwarded-* headers, `proxy` the PROXY protocol header it read, if any);
- runs: one row per wrk / curl / iperf3 run (path, mode or tool, repeat, numbers);
- requests: the load client's rows (testbed.schemas.REQUEST_COLUMNS) with extra columns
  naming the path, the load balancer or the flow kind;
- target events: testbed.schemas.TARGET_EVENT_COLUMNS.

Times in the lab run `time_scale` times faster than AWS's (Metadata.Lab.TimeScale): a lab
duration times the scale is the AWS-equivalent duration.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from testbed.analysis.plots import _figure, _save
from testbed.analysis.stats import error_kind, failed, target_share

DIRECT = "direct"
# What the design notes bound a path's keep-alive requests/s to, as a share of the direct
# path's, on a userspace datapath: a proxy doubles the packets of a request through OVS.
DESIGN_BOUND = {"proxy": 0.50, "flows": 1.0}


# ---- what the backend sees --------------------------------------------------------------
def parse_answer(body: str) -> dict[str, Any]:
    """The backend's JSON answer (the first line for the TCP service), {} if none."""
    text = (body or "").strip()
    for candidate in (text, text.split("\n", 1)[0]):
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(data, dict):
            return data
    return {}


def proxy_text(proxy: Any) -> str:
    """The PROXY header the backend reports, as one line ("" without one): "v1 TCP4
    198.51.100.10:40000 -> 10.0.0.5:9000" from the http-backend's parsed fields
    (testbed.roles.proxy_protocol), the header text as given otherwise."""
    if not proxy:
        return ""
    if isinstance(proxy, str):
        return proxy.strip()
    if isinstance(proxy, Mapping):
        if proxy.get("header"):
            return str(proxy["header"]).strip()
        if "version" in proxy and "source_ip" in proxy:
            ends = [
                f"{proxy.get(f'{side}_ip')}:{proxy.get(f'{side}_port')}"
                for side in ("source", "destination")
            ]
            return f"v{proxy['version']} {proxy.get('protocol', '')} {ends[0]} -> {ends[1]}"
        return json.dumps(dict(proxy), sort_keys=True)
    return str(proxy)


def proxy_source(proxy: Any) -> str:
    """The client address a PROXY header carries ("" without one): from a parsed header's
    source field, else from the v1 text "PROXY TCP4 SRC DST SPORT DPORT"."""
    if not proxy:
        return ""
    if isinstance(proxy, Mapping):
        for key in ("source", "src", "src_ip", "source_ip", "client_ip"):
            value = proxy.get(key)
            if isinstance(value, Mapping):
                value = value.get("ip")
            if value:
                return str(value).rsplit(":", 1)[0] if str(value).count(":") == 1 else str(value)
        text = str(proxy.get("header") or "")
    else:
        text = str(proxy)
    parts = text.split()
    if len(parts) >= 3 and parts[0] == "PROXY" and parts[1] in ("TCP4", "TCP6"):
        return parts[2]
    return ""


def seen_as(address: str, client_ip: str, node_ips: Iterable[str]) -> str:
    """Whose address a backend saw as its TCP peer: the client's, a load balancer node's."""
    if not address:
        return ""
    if address == client_ip:
        return "client"
    if address in set(node_ips):
        return "lb node"
    return "other"


def seen_row(
    answer: Mapping[str, Any],
    *,
    path: str,
    listener: str,
    client: str,
    client_ip: str,
    node_ips: Iterable[str],
) -> dict[str, Any]:
    """One row of seen.csv from one answer of a probe (status, headers, body, error)."""
    data = parse_answer(str(answer.get("body") or ""))
    peer = data.get("client") or {}
    forwarded = {str(k).lower(): str(v) for k, v in (data.get("forwarded") or {}).items()}
    xff = forwarded.get("x-forwarded-for", "")
    proxy = data.get("proxy")
    source = proxy_source(proxy)
    peer_ip = str(peer.get("ip", "") or "")
    if peer_ip == client_ip:
        learns = "TCP peer"
    elif client_ip and client_ip in [x.strip() for x in xff.split(",")]:
        learns = "X-Forwarded-For"
    elif source and source == client_ip:
        learns = "PROXY header"
    else:
        learns = "nowhere"
    return {
        "path": path,
        "listener": listener,
        "client": client,
        "client_ip": client_ip,
        "backend": data.get("instance", ""),
        "seen_ip": peer_ip,
        "seen_port": peer.get("port", ""),
        "seen_as": seen_as(peer_ip, client_ip, node_ips),
        "x_forwarded_for": xff,
        "x_forwarded_proto": forwarded.get("x-forwarded-proto", ""),
        "x_forwarded_port": forwarded.get("x-forwarded-port", ""),
        "proxy_header": proxy_text(proxy),
        "proxy_source": source,
        "client_ip_from": learns,
        "error": str(answer.get("error") or ""),
    }


def sticky_row(answers: Sequence[Mapping[str, Any]], *, path: str, cookie: str) -> dict[str, Any]:
    """Stickiness of a path from answers of one client that sent back the cookies it got:
    the cookie the load balancer set (name), and how many backends answered."""
    names: list[str] = []
    backends: list[str] = []
    for answer in answers:
        headers = answer.get("headers") or {}
        for value in headers.get("set-cookie", []):
            name = str(value).split("=", 1)[0].strip()
            if name and name not in names:
                names.append(name)
        backend = parse_answer(str(answer.get("body") or "")).get("instance")
        if backend:
            backends.append(str(backend))
    return {
        "path": path,
        "cookie_expected": cookie,
        "cookies_set": ";".join(names),
        "requests": len(answers),
        "answered": len(backends),
        "backends": len(set(backends)),
        "sticky": bool(backends) and len(set(backends)) == 1 and cookie in names,
    }


# ---- benches -------------------------------------------------------------------------------
def bench_table(runs: pd.DataFrame, bounds: Mapping[str, float]) -> pd.DataFrame:
    """Medians per (mode, path) of wrk runs (requests_per_second, p50_ms, p99_ms,
    fabric_packets_per_request, cpu_us_per_request), errors summed, and three ratios to the
    direct path of the same mode: the measured one (ratio_to_direct), the one the packets
    allow (packet_bound: direct packets / path packets per request: what bounds a path when
    the switch is the bottleneck), the one the machine's CPU time allows (cpu_bound: direct
    CPU-us / path CPU-us per request: what bounds it when the CPUs are saturated, client,
    load balancer, switch and backend sharing them), and the design bound (`bounds` by
    path, 1 elsewhere)."""
    numbers = [
        "requests_per_second",
        "p50_ms",
        "p99_ms",
        "fabric_packets_per_request",
        "cpu_us_per_request",
    ]
    present = [c for c in numbers if c in runs]
    keys = ["mode", "path"]
    table = runs.groupby(keys, sort=False)[present].median().reset_index()
    errors = runs.groupby(keys, sort=False)["errors"].sum().reset_index()
    table = table.merge(errors, on=keys)
    table["runs"] = runs.groupby(keys, sort=False).size().to_numpy()
    direct = table[table["path"] == DIRECT].set_index("mode")
    table["ratio_to_direct"] = [
        _ratio(row.requests_per_second, direct["requests_per_second"].get(row.mode))
        for row in table.itertuples()
    ]
    for column, bound in (
        ("fabric_packets_per_request", "packet_bound"),
        ("cpu_us_per_request", "cpu_bound"),
    ):
        if column in table:
            table[bound] = [
                _ratio(direct[column].get(mode), value)
                for mode, value in zip(table["mode"], table[column])
            ]
    table["design_bound"] = table["path"].map(lambda p: bounds.get(p, 1.0))
    return table


def _ratio(a: Any, b: Any) -> float:
    try:
        a, b = float(a), float(b)
    except (TypeError, ValueError):
        return math.nan
    return a / b if b and not math.isnan(b) else math.nan


def flow_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One long TCP flow per run: median, min and max Mbit/s per (tool, path) (a busy machine
    spreads single flows widely: the range says how much), and the ratio of the medians to
    the direct path's with the same tool."""
    table = (
        runs.assign(mbps=runs["bits_per_second"] / 1e6)
        .groupby(["tool", "path"], sort=False)
        .agg(
            mbps=("mbps", "median"),
            runs=("mbps", "size"),
            min_mbps=("mbps", "min"),
            max_mbps=("mbps", "max"),
        )
        .reset_index()
    )
    direct = table[table["path"] == DIRECT].set_index("tool")["mbps"]
    table["ratio_to_direct"] = [_ratio(r.mbps, direct.get(r.tool)) for r in table.itertuples()]
    return table


# ---- cross-zone ----------------------------------------------------------------------------
def zone_shares(
    requests: pd.DataFrame, expected: Mapping[str, Mapping[str, float]]
) -> pd.DataFrame:
    """Per load balancer and target: count, observed share, expected share (by `lb`), the
    deviation in percentage points. requests: rows with `lb`, `backend`, `backend_az`."""
    frames = []
    for lb, rows in requests.groupby("lb", sort=False):
        wanted = expected.get(str(lb), {})
        shares = target_share(rows, targets=list(wanted))
        zones = rows.dropna(subset=["backend"]).groupby("backend")["backend_az"].first()
        shares.insert(0, "lb", lb)
        shares["az"] = shares["backend"].map(zones)
        shares["expected"] = shares["backend"].map(lambda t, w=wanted: w.get(t, 0.0))
        shares["share_pct"] = shares["share"] * 100
        shares["expected_pct"] = shares["expected"] * 100
        shares["deviation_pp"] = shares["share_pct"] - shares["expected_pct"]
        frames.append(shares)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def off_zone_expected(targets_by_az: Mapping[str, Sequence[str]], cross_zone: bool) -> float:
    """Share of the requests answered outside their node's AZ, clients split evenly over the
    nodes of the AZs that have targets: 0 without cross-zone, else the mean over the nodes of
    (targets elsewhere / all targets)."""
    azs = {az: len(ts) for az, ts in targets_by_az.items() if ts}
    total = sum(azs.values())
    if not cross_zone or not total:
        return 0.0
    return float(np.mean([(total - n) / total for n in azs.values()]))


def zone_summary(
    requests: pd.DataFrame,
    shares: pd.DataFrame,
    targets_by_az: Mapping[str, Sequence[str]],
) -> pd.DataFrame:
    """Per load balancer: requests, failed, the share answered outside the node's AZ
    (requests need `node_az`), what that share would be off and on, which of the two the
    load balancer behaved as, and the largest deviation from its expected shares."""
    off, on = off_zone_expected(targets_by_az, False), off_zone_expected(targets_by_az, True)
    rows = []
    for lb, frame in requests.groupby("lb", sort=False):
        answered = frame.dropna(subset=["backend_az"])
        answered = answered[answered["backend_az"].astype(str) != ""]
        away = (
            float((answered["backend_az"] != answered["node_az"]).mean())
            if len(answered)
            else math.nan
        )
        mine = shares[shares["lb"] == lb]
        rows.append(
            {
                "lb": lb,
                "requests": len(frame),
                "failed": int(failed(frame).sum()),
                "off_zone_share": away,
                "off_zone_if_off": off,
                "off_zone_if_on": on,
                "cross_zone": "on" if abs(away - on) < abs(away - off) else "off",
                "max_dev_pp": float(mine["deviation_pp"].abs().max()) if len(mine) else math.nan,
            }
        )
    return pd.DataFrame(rows)


# ---- failover ------------------------------------------------------------------------------
def first_event(
    events: pd.DataFrame, group: str, target: str, state: str, after: float | None
) -> float | None:
    """Time of the first transition of `target` in `group` to `state` at or after `after`."""
    if after is None or events.empty:
        return None
    hits = events[
        (events["target_group"] == group)
        & (events["target"] == target)
        & (events["new"].fillna("").astype(str) == state)
        & (events["time"] >= after)
    ]
    return float(hits["time"].min()) if len(hits) else None


def failover_table(
    events: pd.DataFrame,
    requests: pd.DataFrame,
    *,
    groups: Mapping[str, str],
    target: str,
    fault_time: float,
    repair_time: float | None,
    time_scale: float,
    errors_from: float | None = None,
    aws_detection_s: Mapping[str, tuple[float, float]],
    aws_recovery_s: Mapping[str, tuple[float, float]],
) -> pd.DataFrame:
    """Per path (groups: path -> its target group): seconds from the fault to `target`
    leaving service (unhealthy) and from the repair to its return (healthy), in the lab and
    AWS-equivalent (x time_scale), beside AWS's range for each (path -> (min, max)): the
    first failing check comes within an interval of the fault, the threshold'th one
    (threshold - 1) intervals later, so detection takes (threshold - 1) to threshold
    intervals; the path's requests since `errors_from` (default: the fault; the time the
    fault was asked for, when the backend took a while to go) that failed before and after
    the target left service, and their kinds."""
    rows = []
    for path, group in groups.items():
        down = first_event(events, group, target, "unhealthy", fault_time)
        up = first_event(events, group, target, "healthy", max(repair_time or 0, down or 0) or None)
        since = fault_time if errors_from is None else min(errors_from, fault_time)
        mine = requests[(requests["path"] == path) & (requests["start"] >= since)]
        bad = failed(mine)
        before = bad & (mine["start"] < (down if down is not None else math.inf))
        kinds = error_kind(mine[bad]).value_counts()
        detection = (down - fault_time) if down is not None else math.nan
        recovery = (up - repair_time) if up is not None and repair_time is not None else math.nan
        rows.append(
            {
                "path": path,
                "target_group": group,
                "detection_lab_s": detection,
                "detection_aws_s": detection * time_scale,
                "aws_detection_min_s": aws_detection_s.get(path, (math.nan, math.nan))[0],
                "aws_detection_max_s": aws_detection_s.get(path, (math.nan, math.nan))[1],
                "recovery_lab_s": recovery,
                "recovery_aws_s": recovery * time_scale,
                "aws_recovery_min_s": aws_recovery_s.get(path, (math.nan, math.nan))[0],
                "aws_recovery_max_s": aws_recovery_s.get(path, (math.nan, math.nan))[1],
                "requests_after_fault": len(mine),
                "failed_before_detection": int(before.sum()),
                "failed_after_detection": int((bad & ~before).sum()),
                "errors": ", ".join(f"{k} {v}" for k, v in kinds.items()) or "-",
            }
        )
    return pd.DataFrame(rows)


# ---- draining ------------------------------------------------------------------------------
def draining_table(
    requests: pd.DataFrame,
    times: Mapping[str, Mapping[str, float | None]],
    *,
    victim: str,
    time_scale: float,
    configured_s: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Per load balancer (requests' `lb`, `flow` = held | new): the deregistration delay
    configured (configured_s, AWS seconds) and the one it applied (draining to removed, lab
    and AWS-equivalent; a delay of 0 shows the registry's tick), the held long requests, those the
    victim completed, those that failed (only the victim was deregistered: a failure is a
    request it held, cut), the new requests started after the deregistration call returned
    and how many of them still reached the victim. times[lb]: deregistered (the call
    returned), draining and removed (events)."""
    rows = []
    for lb, frame in requests.groupby("lb", sort=False):
        t = times.get(str(lb), {})
        held = frame[frame["flow"] == "held"]
        new = frame[frame["flow"] == "new"]
        returned = t.get("deregistered")
        after = new[new["start"] >= returned] if returned is not None else new.iloc[0:0]
        drained, removed = t.get("draining"), t.get("removed")
        delay = (removed - drained) if removed is not None and drained is not None else math.nan
        cut = int(failed(held).sum())
        completed = int(((held["backend"] == victim) & ~failed(held)).sum())
        if cut:
            verdict = "cut"
        elif completed:
            verdict = "completed"
        else:
            verdict = "no request on the victim"
        rows.append(
            {
                "lb": lb,
                "configured_delay_s": (configured_s or {}).get(str(lb), math.nan),
                "delay_lab_s": delay,
                "delay_aws_s": delay * time_scale,
                "held": len(held),
                "held_completed_on_victim": completed,
                "held_cut": cut,
                "long_request": verdict,
                "new_after_deregistration": len(after),
                "new_to_victim_after_deregistration": int((after["backend"] == victim).sum()),
                "new_failed": int(failed(new).sum()),
            }
        )
    return pd.DataFrame(rows)


# ---- the summary ---------------------------------------------------------------------------
def summary_table(
    paths: Sequence[Mapping[str, Any]],
    seen: pd.DataFrame,
    bench: pd.DataFrame,
    flows: pd.DataFrame,
    zones: pd.DataFrame,
    failover: pd.DataFrame,
    draining: pd.DataFrame,
    sticky: pd.DataFrame,
    *,
    internet_client: str,
) -> pd.DataFrame:
    """One row per path (paths: dicts with path, lb, lb_type, layer, listener): every
    measurement of it that exists, NaN or "" where a measurement does not apply."""

    def cell(frame: pd.DataFrame, where: Mapping[str, Any], column: str) -> Any:
        if frame.empty or column not in frame:
            return math.nan
        mask = np.ones(len(frame), dtype=bool)
        for key, value in where.items():
            if key not in frame:
                return math.nan
            mask &= (frame[key] == value).to_numpy()
        hits = frame.loc[mask, column]
        return hits.iloc[0] if len(hits) else math.nan

    rows = []
    for p in paths:
        name, lb = p["path"], p.get("lb") or ""
        # What the backend saw of the internet client where it could reach the path.
        mine = seen[seen["path"] == name] if len(seen) else seen
        if len(mine) and (mine["client"] == internet_client).any():
            mine = mine[mine["client"] == internet_client]
        rows.append(
            {
                **{k: p.get(k, "") for k in ("path", "lb", "lb_type", "layer", "listener")},
                "backend_sees": cell(mine, {"path": name}, "seen_as"),
                "client_ip_from": cell(mine, {"path": name}, "client_ip_from"),
                "x_forwarded_for": cell(mine, {"path": name}, "x_forwarded_for"),
                "proxy_header": cell(mine, {"path": name}, "proxy_header"),
                "keepalive_rps": cell(
                    bench, {"mode": "keep-alive", "path": name}, "requests_per_second"
                ),
                "keepalive_ratio": cell(
                    bench, {"mode": "keep-alive", "path": name}, "ratio_to_direct"
                ),
                "design_bound": cell(bench, {"mode": "keep-alive", "path": name}, "design_bound"),
                "cpu_bound": cell(bench, {"mode": "keep-alive", "path": name}, "cpu_bound"),
                "p50_ms": cell(bench, {"mode": "keep-alive", "path": name}, "p50_ms"),
                "p99_ms": cell(bench, {"mode": "keep-alive", "path": name}, "p99_ms"),
                "new_conn_per_s": cell(
                    bench, {"mode": "new-connection", "path": name}, "requests_per_second"
                ),
                "new_conn_ratio": cell(
                    bench, {"mode": "new-connection", "path": name}, "ratio_to_direct"
                ),
                "flow_mbps": cell(flows, {"tool": "http-download", "path": name}, "mbps"),
                "iperf3_mbps": cell(flows, {"tool": "iperf3", "path": name}, "mbps"),
                "cross_zone": cell(zones, {"lb": lb}, "cross_zone") if p.get("zones") else "",
                "off_zone_share": cell(zones, {"lb": lb}, "off_zone_share")
                if p.get("zones")
                else math.nan,
                "detection_aws_s": cell(failover, {"path": name}, "detection_aws_s"),
                "detection_lab_s": cell(failover, {"path": name}, "detection_lab_s"),
                "recovery_aws_s": cell(failover, {"path": name}, "recovery_aws_s"),
                "failed_before_detection": cell(
                    failover, {"path": name}, "failed_before_detection"
                ),
                "draining": cell(draining, {"lb": lb}, "long_request") if p.get("draining") else "",
                "drain_configured_s": cell(draining, {"lb": lb}, "configured_delay_s")
                if p.get("draining")
                else math.nan,
                "drain_delay_aws_s": cell(draining, {"lb": lb}, "delay_aws_s")
                if p.get("draining")
                else math.nan,
                "sticky_cookie": cell(sticky, {"path": name}, "cookies_set"),
            }
        )
    return pd.DataFrame(rows)


# ---- figures -------------------------------------------------------------------------------
def bar_figure(
    table: pd.DataFrame,
    path: str | Path,
    *,
    x: str,
    ys: Sequence[str],
    ylabel: str,
    title: str,
    labels: Sequence[str] | None = None,
    hline: tuple[float, str] | None = None,
    annotate: str | None = None,
) -> Path:
    """Grouped bars: one group per row (labelled by column x), one bar per column of ys;
    `hline` (value, label) draws a reference line, `annotate` a column printed above the
    first bar of each group (e.g. the ratio to direct)."""
    fig = _figure(max(6.0, 1.1 * len(table) + 2))
    ax = fig.add_subplot()
    positions = np.arange(len(table))
    width = 0.8 / max(1, len(ys))
    for i, column in enumerate(ys):
        values = pd.to_numeric(table[column], errors="coerce").fillna(0).to_numpy(dtype=float)
        bars = ax.bar(
            positions + (i - (len(ys) - 1) / 2) * width,
            values,
            width,
            label=(labels[i] if labels else column),
        )
        if annotate and i == 0:
            for bar, note in zip(bars, table[annotate]):
                if isinstance(note, float) and math.isnan(note):
                    continue
                text = f"{note:.2f}" if isinstance(note, float) else str(note)
                ax.annotate(
                    text,
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize="small",
                )
    if hline is not None:
        ax.axhline(hline[0], color="black", linestyle="--", linewidth=1, label=hline[1])
    ax.set_xticks(positions, [str(v) for v in table[x]], rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    if len(ys) > 1 or hline is not None:
        ax.legend(fontsize="small")
    return _save(fig, path)


def share_panels(shares: pd.DataFrame, path: str | Path, *, title: str) -> Path:
    """One panel per load balancer: each target's observed share (bars) and expected share
    (black marks), from a zone_shares table."""
    lbs = list(dict.fromkeys(shares["lb"]))
    fig = _figure(4.0 * max(1, len(lbs)) + 1, 4.5)
    axes = fig.subplots(1, max(1, len(lbs)), sharey=True, squeeze=False)[0]
    for ax, lb in zip(axes, lbs):
        mine = shares[shares["lb"] == lb].sort_values(["az", "backend"], na_position="last")
        positions = np.arange(len(mine))
        colours = [f"C{i % 10}" for i in pd.factorize(mine["az"].fillna("?"))[0]]
        ax.bar(positions, mine["share_pct"], color=colours)
        ax.scatter(positions, mine["expected_pct"], marker="_", s=600, color="black", zorder=3)
        ax.set_xticks(
            positions, [f"{b}\n{str(a)[-2:]}" for b, a in zip(mine["backend"], mine["az"])]
        )
        ax.set_title(str(lb))
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("share of new connections (%); black: expected")
    fig.suptitle(title)
    return _save(fig, path)
