"""Per-target share of an NLB's new TCP connections with cross-zone load balancing off and on.

AWS's canonical case: an internet-facing NLB with a node in two AZs, 2 targets in AZ-a and
8 in AZ-b, clients split evenly over the two nodes. Off, each node keeps to its own AZ's
targets (25 % each in AZ-a, 6.25 % each in AZ-b); on, every target gets 10 %.

One lab per setting, brought up from the stack generated into the results directory (its
CrossZone parameter is the only difference). Client1 opens half of the connections to the
AZ-a node's public address, Client2 the other half to the AZ-b node's (an HTTP request on a
new connection each time), concurrently. Writes requests.csv (REQUEST_COLUMNS plus
cross_zone and node_az), target_events.csv, shares.csv (per target: observed vs expected),
summary.csv (per setting: CoV, max/avg, Pearson's chi-square against AWS's shares per node,
largest deviation in percentage points, connections that left their node's AZ),
share_<setting>.png and latency_cdf.png; meta.json holds the expected shares per setting.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from testbed.analysis import (
    balance,
    chi2_sf,
    coefficient_of_variation,
    expected_share,
    failed,
    goodness_of_fit,
    latency_percentiles,
    max_avg_ratio,
    target_share,
)
from testbed.analysis.plots import latency_cdf, share_bars
from testbed.errors import BadInput
from testbed.experiments._nlb import node_addresses, write_events_csv
from testbed.experiments.stacks import TARGET_GROUP, nlb_stack, target_names, write_stack
from testbed.lab.api import Lab, random_name
from testbed.messages import TargetEvent
from testbed.results import ResultsDir
from testbed.traffic import run_load

if TYPE_CHECKING:  # pandas is imported where the data is (the CLI starts faster)
    import pandas as pd

TEMPLATE = "stack.yaml (generated into the results directory)"
PARAMS = {
    "targets_a": (2, "http-backend targets in AZ-a"),
    "targets_b": (8, "http-backend targets in AZ-b"),
    "connections": (6000, "new TCP connections per setting, split evenly over the two nodes"),
    "concurrency": (16, "connections in flight per client"),
    "settings": (["off", "on"], "cross-zone settings to measure, in order (off, on)"),
    "timeout": (5.0, "per-request timeout of the load client, seconds"),
    "seed": (None, "recorded for re-runs (flow hashing depends on the clients' ports)"),
}
# Health checks as fast as AWS allows: the run waits for every target to be healthy.
HEALTH = {
    "HealthCheckProtocol": "TCP",
    "HealthCheckIntervalSeconds": 5,
    "HealthCheckTimeoutSeconds": 4,
    "HealthyThresholdCount": 2,
    "UnhealthyThresholdCount": 2,
}
CLIENTS = ("Client1", "Client2")  # Client1 -> the AZ-a node, Client2 -> the AZ-b node


def run(params: dict[str, Any], results: ResultsDir) -> dict[str, Any]:
    """Measure every setting, write the tables and figures; the summary for meta.json."""
    import pandas as pd

    settings = [s.lower() for s in params["settings"]]
    bad = [s for s in settings if s not in ("off", "on")]
    if bad:
        raise BadInput(f"settings: {', '.join(bad)} (use off and/or on)")
    per_az = (params["targets_a"], params["targets_b"])
    names = target_names(per_az)
    template = write_stack(
        results,
        nlb_stack(
            per_az,
            clients=2,
            port=80,
            health=HEALTH,
            description=f"cross_zone experiment: NLB over 2 AZs, {per_az[0]} + {per_az[1]} targets",
        ),
    )
    requests: list[pd.DataFrame] = []
    events: list[dict[str, object]] = []
    labs: dict[str, dict[str, Any]] = {}
    expected: dict[str, dict[str, float]] = {}
    for setting in settings:
        frame, lab_events, info = _measure(template, setting, names, params)
        expected[setting] = expected_share(info["targets_by_az"], setting == "on")
        requests.append(frame)
        events += [dict(e, cross_zone=setting) for e in lab_events]
        labs[setting] = info
    df = pd.concat(requests, ignore_index=True)
    df.to_csv(results.file("requests.csv"), index=False)
    write_events_csv(events, results.file("target_events.csv"))
    results.write_meta(
        template=template, expected_share=expected, share_by="cross_zone", labs=labs, targets=names
    )
    shares, summary = _analyse(df, expected, labs, results)
    print("\nper target (share and expected, %):")
    print(
        shares.pivot_table(
            index=["az", "backend"], columns="cross_zone", values=["share_pct", "expected_pct"]
        )
        .round(2)
        .to_string()
    )
    print("\nper setting:")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return {"settings": summary.to_dict(orient="records")}


def _measure(
    template: str, setting: str, names: dict[str, list[str]], params: dict[str, Any]
) -> tuple[pd.DataFrame, list[TargetEvent], dict[str, Any]]:
    """One lab with cross-zone `setting`: the two clients' rows, target events, lab facts."""
    import pandas as pd

    everyone = [t for ts in names.values() for t in ts]
    with Lab.up(
        template,
        params={"CrossZone": "true" if setting == "on" else "false"},
        name=random_name("cz"),
    ) as lab:
        since = time.time()
        healthy_s = lab.wait_healthy(TARGET_GROUP, everyone)
        nodes = node_addresses(lab)
        azs = sorted(nodes)
        zones = {h.name: h.info.get("az") for h in lab.hosts}
        half = params["connections"] // 2
        counts = (half, params["connections"] - half)
        print(
            f"cross-zone {setting}: lab {lab.name}, targets healthy after {healthy_s:.1f} s;"
            f" {counts[0]} connections -> {nodes[azs[0]]} ({azs[0]}), {counts[1]} -> "
            f"{nodes[azs[1]]} ({azs[1]})",
            flush=True,
        )
        with ThreadPoolExecutor(max_workers=2) as pool:
            jobs = [
                pool.submit(
                    run_load,
                    lab,
                    client,
                    f"http://{nodes[az]}/",
                    requests=n,
                    concurrency=params["concurrency"],
                    timeout=params["timeout"],
                )
                for client, az, n in zip(CLIENTS, azs, counts)
            ]
            frames = [job.result().assign(node_az=az) for job, az in zip(jobs, azs)]
        lab_events = lab.target_events(0.0)
        info = {
            "lab": lab.name,
            "nodes": nodes,
            "healthy_after_s": round(healthy_s, 2),
            "measured_from": since,
            "datapath": lab.datapath,
            "targets_by_az": {az: [t for t in everyone if zones.get(t) == az] for az in azs},
        }
    frame = pd.concat(frames, ignore_index=True)
    frame["cross_zone"] = setting
    return frame, lab_events, info


def _per_node_fit(
    rows: pd.DataFrame, setting: str, targets_by_az: dict[str, list[str]]
) -> tuple[float, int, int]:
    """Chi-square summed over the nodes, its degrees of freedom, and the connections that
    reached a target outside their node's AZ.

    Each node's connections are a multinomial draw over the targets it may use (its own AZ's
    with cross-zone off, all with it on); the split between the nodes is fixed by the run,
    not random, so it is tested per node: dof = sum over nodes of (targets - 1).
    """
    chi2, dof, off_zone = 0.0, 0, 0
    for az, node_rows in rows.groupby("node_az"):
        only_here = {z: (1.0 if z == az else 0.0) for z in targets_by_az}
        wanted = expected_share(targets_by_az, setting == "on", only_here)
        wanted = {t: wanted.get(t, 0.0) for ts in targets_by_az.values() for t in ts}
        fit = goodness_of_fit(target_share(node_rows, targets=list(wanted)), wanted)
        chi2 += float(fit["chi2"])
        dof += int(fit["dof"])
        answered = node_rows["backend_az"].dropna()
        off_zone += int((answered != az).sum())
    return chi2, dof, off_zone


def _analyse(
    df: pd.DataFrame,
    expected: dict[str, dict[str, float]],
    labs: dict[str, dict[str, Any]],
    results: ResultsDir,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """shares.csv, summary.csv and the figures; returns both tables."""
    import pandas as pd

    zones = df.dropna(subset=["backend"]).groupby("backend")["backend_az"].first()
    share_rows, summary_rows = [], []
    for key, rows in df.groupby("cross_zone", sort=False):
        setting = str(key)  # "off" | "on"
        wanted = expected[setting]
        chi2, dof, off_zone = _per_node_fit(rows, setting, labs[setting]["targets_by_az"])
        shares = target_share(rows, targets=list(wanted))
        shares["cross_zone"] = setting
        shares["az"] = shares["backend"].map(zones)
        shares["expected"] = shares["backend"].map(wanted)
        shares["share_pct"] = shares["share"] * 100
        shares["expected_pct"] = shares["expected"] * 100
        shares["deviation_pp"] = shares["share_pct"] - shares["expected_pct"]
        share_rows.append(shares)
        fit = goodness_of_fit(shares, wanted)
        spread = balance(shares).iloc[0]
        latency = latency_percentiles(rows).iloc[0]
        span = rows["start"].max() - rows["start"].min()
        summary_rows.append(
            {
                "cross_zone": setting,
                "connections": len(rows),
                "failed": int(failed(rows).sum()),
                "targets": int(spread["targets"]),
                "min_share_pct": spread["min_share"] * 100,
                "max_share_pct": spread["max_share"] * 100,
                "cov": spread["cov"],
                "expected_cov": coefficient_of_variation(wanted.values()),
                "max_avg": spread["max_avg"],
                "expected_max_avg": max_avg_ratio(wanted.values()),
                "chi2": chi2,
                "dof": dof,
                "p_value": chi2_sf(chi2, dof),
                "max_dev_pp": fit["max_abs_dev"] * 100,
                "worst_target": fit["worst_target"],
                "off_zone": off_zone,
                "connections_per_s": len(rows) / span if span > 0 else float("nan"),
                "p50_ms": latency["p50"],
                "p99_ms": latency["p99"],
            }
        )
        share_bars(
            shares,
            results.file(f"share_{setting}.png"),
            expected=wanted,
            title=f"share of new connections per target, cross-zone {setting}",
        )
    shares = pd.concat(share_rows, ignore_index=True)[
        [
            "cross_zone",
            "az",
            "backend",
            "count",
            "share",
            "expected",
            "share_pct",
            "expected_pct",
            "deviation_pp",
        ]
    ]
    shares.to_csv(results.file("shares.csv"), index=False)
    summary = pd.DataFrame(summary_rows)
    summary.to_csv(results.file("summary.csv"), index=False)
    latency_cdf(
        df,
        results.file("latency_cdf.png"),
        by="cross_zone",
        title="connection + request latency by cross-zone setting",
    )
    return shares, summary
