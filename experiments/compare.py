"""CLB vs ALB vs NLB on the same instances: what the backend sees, speed, zones, failover, draining.

One lab from a generated stack (stack.yaml in the results; testbed.experiments._compare_stack):
four http-backend instances, two per AZ (WebA1, WebA2, WebB1, WebB2; WebB3 waits
unregistered), behind ClassicLB (HTTP:80 -> 80 with an AWSELB cookie policy, TCP:81 -> 80,
TCP:9000 -> 9000 with the ProxyProtocolPolicyType policy, TCP:5201 -> 5201 for iperf3),
DrainCLB (the same CLB with ConnectionDrainingPolicy on), an ALB (HTTP:80) and an NLB
(TCP:80), all internet-facing with AWS's defaults (no HealthCheck*, no CrossZone, no draining
unless said); two internet clients and VpcClient in the VPC. Metadata.Lab.TimeScale
(`time_scale`) runs health checks and delays that many times faster: every duration is
reported in lab seconds and AWS-equivalent seconds (lab x scale).

  seen       one request per path from Client1 (internet) and VpcClient: the TCP peer the
             backend saw, X-Forwarded-For/-Proto/-Port, the PROXY header; cookies kept for
             six requests: does the load balancer's cookie pin the client
  bench      every backend but WebA1 deregistered (each path then ends at the backend the
             direct path uses: one Python backend is slower than the switch); wrk from
             VpcClient, direct to WebA1 and through each listener (AZ-a node), alternating,
             `repeats` times: keep-alive requests/s, p50, p99, packets through the switch
             per request; then a new connection per request (new connections/s). Ratios to
             direct, against the bound of a proxy's doubled packets on a userspace datapath
             (0.50, design notes) and the bound the measured packets give
  flow       one long TCP flow per path: curl fetching `flow_mb` MB over one keep-alive
             connection; iperf3 direct and through the CLB's and the NLB's TCP:5201 (not the
             ALB: HTTP only); then the backends are registered again
  draining   `held` long requests (delay_ms) through each load balancer and a stream of
             short ones; WebA2 deregistered meanwhile (WebB3 registered): completed or cut,
             new requests still sent to it? (ClassicLB: draining off; DrainCLB: on, 300 s;
             ALB/NLB: deregistration delay 300 s)
  zones      AZ-a now has 1 target, AZ-b 3; Client1 -> the AZ-a node, Client2 -> the AZ-b
             node, a new connection per request: per-target shares vs AWS's (CLB and NLB
             cross-zone off by default, ALB on)
  failover   steady load through the AZ-b nodes, WebB1's backend stopped: seconds until each
             load balancer takes it out of service (default checks), errors meanwhile;
             started again: seconds until it is back

Writes seen.csv, sticky.csv, bench.csv (each wrk run) + bench_summary.csv, flows.csv +
flow_summary.csv, draining.csv (+ draining_requests.csv), shares.csv + zones.csv,
failover.csv (+ failover_requests.csv), target_events.csv, summary.csv (one row per path) and
keepalive_rps.png, latency.png, new_connections.png, long_flow.png, cross_zone.png,
failover.png, draining.png; meta.json has the time scale and the phases' times.
"""

from __future__ import annotations

import subprocess
import time
from typing import TYPE_CHECKING, Any

from testbed.analysis.compare import (
    DESIGN_BOUND,
    bar_figure,
    bench_table,
    draining_table,
    failover_table,
    flow_table,
    share_panels,
    summary_table,
    zone_shares,
    zone_summary,
)
from testbed.analysis.stats import expected_share
from testbed.errors import BadInput
from testbed.experiments import _compare_phases as phases
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
    PATHS,
    SOLO,
    VICTIM_DRAIN,
    VICTIM_FAIL,
    stack_yaml,
)
from testbed.experiments._nlb import write_events_csv
from testbed.experiments.stacks import write_stack
from testbed.lab.api import Lab, random_name
from testbed.model import elb_defaults as d
from testbed.results import ResultsDir

if TYPE_CHECKING:  # pandas is imported where the data is (the CLI starts faster)
    import pandas as pd

TEMPLATE = "stack.yaml (generated into the results directory)"
PARAMS: dict[str, tuple[Any, str]] = {
    "quick": (False, "small numbers everywhere (for tests): see QUICK"),
    "name": ("", "lab name (default: a fresh cmpXXXX)"),
    "time_scale": (30, "Metadata.Lab.TimeScale: health checks and delays this many times faster"),
    "seconds": (3, "length of each wrk run, whole seconds (wrk takes no fractions)"),
    "repeats": (3, "wrk and download runs per path, alternating"),
    "connections": (16, "wrk connections"),
    "flow_mb": (128, "MB fetched over one connection for the long-flow throughput"),
    "iperf_seconds": (3.0, "length of each iperf3 run"),
    "held": (16, "long requests in flight through each load balancer when WebA2 leaves"),
    "long_ms": (4000, "their length (delay_ms), lab ms: below the scaled 300 s delay"),
    "zone_requests": (600, "new connections per node and load balancer in the zones phase"),
    "rate": (20.0, "requests/s per path during the failover"),
    "fault_after": (3.0, "seconds of load before WebB1 stops"),
    "seed": (None, "recorded for re-runs"),
}
# ConnectionDrainingPolicy / deregistration delay of each load balancer, AWS seconds.
DRAIN_CONFIGURED_S = {
    CLB: 0.0,
    DRAIN_CLB: float(d.CLASSIC_DRAINING_TIMEOUT_S),
    ALB: float(d.DEREGISTRATION_DELAY_S),
    NLB: float(d.DEREGISTRATION_DELAY_S),
}
# `quick`: every parameter still at its default takes this value instead.
QUICK = {
    "time_scale": 100,
    "seconds": 1,
    "repeats": 1,
    "connections": 8,
    "flow_mb": 32,
    "iperf_seconds": 1.0,
    "held": 8,
    "long_ms": 2000,
    "zone_requests": 150,
    "rate": 10.0,
    "fault_after": 2.0,
}


def effective(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters, with QUICK's values for those left at their defaults when quick."""
    if not params.get("quick"):
        return dict(params)
    return {k: (QUICK[k] if k in QUICK and v == PARAMS[k][0] else v) for k, v in params.items()}


def run(params: dict[str, Any], results: ResultsDir) -> dict[str, Any]:
    """Bring the lab up, measure every phase, write the tables and figures."""
    params = effective(params)
    scale = float(params["time_scale"])
    if scale <= 0:
        raise BadInput("time_scale must be positive")
    template = write_stack(results, stack_yaml(scale))
    name = params["name"] or random_name("cmp")
    out: dict[str, Any] = {}
    print(f"compare: lab {name} (TimeScale {scale:g}), {template}", flush=True)
    t0 = time.monotonic()
    with Lab.up(template, name=name) as lab:
        print(f"  lab up in {time.monotonic() - t0:.0f} s", flush=True)
        iperf = lab.host(SOLO).popen(
            ["iperf3", "-s", "-p", str(IPERF_PORT)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            phases.wait_healthy(lab, scale, list(GROUPS.values()), BACKENDS)
            nodes = {lb: phases.nodes(lab, lb) for lb in GROUPS}
            out["seen"], out["sticky"] = phases.seen(lab, nodes)
            phases.solo(lab, scale, alone=True)
            out["bench"] = phases.bench(lab, nodes, params)
            out["flows"] = phases.flows(lab, nodes, params)
            phases.solo(lab, scale, alone=False)
            out["drain_requests"], out["drain_times"] = phases.draining(lab, nodes, params, scale)
            out["zone_requests"], out["targets_by_az"] = phases.zones(lab, nodes, params, scale)
            out["fail_requests"], out["fail_times"] = phases.failover(lab, nodes, params, scale)
            out["events"] = lab.target_events()
        finally:
            iperf.kill()
            iperf.wait()
    return _report(results, params, scale, template, name, out)


# ---- results -------------------------------------------------------------------------------
def _report(
    results: ResultsDir,
    params: dict[str, Any],
    scale: float,
    template: str,
    name: str,
    out: dict[str, Any],
) -> dict[str, Any]:
    """Every table and figure from what the phases measured; the summary for meta.json."""
    import pandas as pd

    seen, sticky = out["seen"], out["sticky"]
    seen.to_csv(results.file("seen.csv"), index=False)
    sticky.to_csv(results.file("sticky.csv"), index=False)
    bounds = {p: DESIGN_BOUND["proxy"] for p in BENCH_PATHS if p.startswith(("clb", "alb"))}
    bench = bench_table(out["bench"], bounds)
    out["bench"].to_csv(results.file("bench.csv"), index=False)
    bench.to_csv(results.file("bench_summary.csv"), index=False)
    flows = flow_table(out["flows"])
    out["flows"].to_csv(results.file("flows.csv"), index=False)
    flows.to_csv(results.file("flow_summary.csv"), index=False)
    drain = draining_table(
        out["drain_requests"],
        out["drain_times"],
        victim=VICTIM_DRAIN,
        time_scale=scale,
        configured_s=DRAIN_CONFIGURED_S,
    )
    out["drain_requests"].to_csv(results.file("draining_requests.csv"), index=False)
    drain.to_csv(results.file("draining.csv"), index=False)
    expected = {
        lb: expected_share(out["targets_by_az"], cross_zone=(lb == ALB)) for lb in (CLB, ALB, NLB)
    }
    shares = zone_shares(out["zone_requests"], expected)
    zones = zone_summary(out["zone_requests"], shares, out["targets_by_az"])
    shares.to_csv(results.file("shares.csv"), index=False)
    zones.to_csv(results.file("zones.csv"), index=False)
    events = write_events_csv(out["events"], results.file("target_events.csv"))
    health = phases.health_bounds(scale)
    times = out["fail_times"]
    failover = failover_table(
        events,
        out["fail_requests"],
        groups={p: GROUPS[BY_NAME[p]["lb"]] for p in FAILOVER_PATHS},
        target=f"{VICTIM_FAIL}:{HTTP_PORT}",
        fault_time=times["fault"],
        repair_time=times["repair"],
        time_scale=scale,
        errors_from=times["fault_asked"],
        aws_detection_s={p: _range(health, p, "detection") for p in FAILOVER_PATHS},
        aws_recovery_s={p: _range(health, p, "recovery") for p in FAILOVER_PATHS},
    )
    out["fail_requests"].to_csv(results.file("failover_requests.csv"), index=False)
    failover.to_csv(results.file("failover.csv"), index=False)
    summary = summary_table(
        PATHS,
        seen,
        bench,
        flows,
        zones,
        failover,
        drain,
        sticky,
        internet_client=INTERNET_CLIENTS[0],
    )
    summary.to_csv(results.file("summary.csv"), index=False)
    _figures(results, bench, flows, shares, failover, drain, scale)
    results.write_meta(
        template=template,
        lab=name,
        time_scale=scale,
        effective_params=params,
        drain_times=out["drain_times"],
        failover_times=times,
        targets_by_az=out["targets_by_az"],
        expected_share=expected,
    )
    with pd.option_context("display.width", 200, "display.max_columns", 40):
        for title, table in (
            ("what the backend sees", seen),
            ("stickiness", sticky),
            ("bench (medians)", bench),
            ("one long flow (medians)", flows),
            ("draining", drain),
            ("cross-zone", zones),
            ("failover", failover),
            ("summary", summary),
        ):
            print(f"\n{title}:\n{table.to_string(index=False)}")
    return {"summary": summary.to_dict(orient="records")}


def _range(health: dict[str, dict[str, float]], path: str, kind: str) -> tuple[float, float]:
    """AWS's range for a detection or recovery: one interval less than interval x threshold
    (the first check after the event may come at once) up to interval x threshold."""
    bounds = health[BY_NAME[path]["lb"]]
    return bounds[kind] - bounds["interval"], bounds[kind]


def _figures(
    results: ResultsDir,
    bench: pd.DataFrame,
    flows: pd.DataFrame,
    shares: pd.DataFrame,
    failover: pd.DataFrame,
    drain: pd.DataFrame,
    scale: float,
) -> None:
    keep = bench[bench["mode"] == "keep-alive"]
    new = bench[bench["mode"] == "new-connection"]
    direct = keep.loc[keep["path"] == "direct", "requests_per_second"]
    bound = DESIGN_BOUND["proxy"]
    bar_figure(
        keep,
        results.file("keepalive_rps.png"),
        x="path",
        ys=["requests_per_second"],
        ylabel="requests/s (median of the runs)",
        title="HTTP keep-alive requests/s, same backend (labels: ratio to direct)",
        annotate="ratio_to_direct",
        hline=(bound * float(direct.iloc[0]), f"a proxy's packet bound: {bound:.2f} x direct")
        if len(direct)
        else None,
    )
    bar_figure(
        keep,
        results.file("latency.png"),
        x="path",
        ys=["p50_ms", "p99_ms"],
        labels=["p50", "p99"],
        ylabel="latency (ms)",
        title="HTTP keep-alive latency under wrk load",
    )
    bar_figure(
        new,
        results.file("new_connections.png"),
        x="path",
        ys=["requests_per_second"],
        ylabel="new connections/s (one request each)",
        title="new connections per second (labels: ratio to direct)",
        annotate="ratio_to_direct",
    )
    wide = flows.pivot_table(index="path", columns="tool", values="mbps", sort=False).reset_index()
    tools = [t for t in ("http-download", "iperf3") if t in wide]
    bar_figure(
        wide,
        results.file("long_flow.png"),
        x="path",
        ys=tools,
        ylabel="Mbit/s",
        title="one long TCP flow: curl over one connection; iperf3 where it can pass",
    )
    share_panels(
        shares,
        results.file("cross_zone.png"),
        title="cross-zone defaults: share per target, AZ-a 1 target, AZ-b 3, clients split "
        "evenly over the nodes",
    )
    bar_figure(
        failover,
        results.file("failover.png"),
        x="path",
        ys=["detection_aws_s", "aws_detection_max_s", "recovery_aws_s", "aws_recovery_max_s"],
        labels=[
            "out of service (measured)",
            "AWS: interval x unhealthy threshold",
            "back in service (measured)",
            "AWS: interval x healthy threshold",
        ],
        ylabel=f"AWS-equivalent seconds (lab s x {scale:g})",
        title="default health checks: a stopped backend leaves and returns",
    )
    bar_figure(
        drain,
        results.file("draining.png"),
        x="lb",
        ys=["held_completed_on_victim", "held_cut", "new_to_victim_after_deregistration"],
        labels=[
            "long requests completed on the deregistered target",
            "long requests cut",
            "new requests sent to it after the deregistration",
        ],
        ylabel="requests",
        title="deregistration with long requests in flight",
    )
