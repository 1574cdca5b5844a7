"""Health-check failover of an NLB target: detection and recovery time, client errors around it.

A client sends a steady open-loop load (a new connection per request) through the NLB to
targets in both AZs (cross-zone on). After `fault_after` seconds one target is broken
(`fault`: stop, refuse, 500 or hang); once the health checks mark it unhealthy (or a bound
passes) it stays broken `down_for` seconds and is repaired (start or clear). AWS: detection
takes about interval x unhealthy threshold (a check that times out adds up to one timeout),
recovery about interval x healthy threshold. A TCP check only notices stop and refuse; an
HTTP check notices 500 and hang too.

Writes requests.csv (REQUEST_COLUMNS plus phase), target_events.csv (health transitions and
the fault as "fault-injected"/"fault-cleared" rows), phases.csv (requests and errors before
the fault, while it is undetected, while unhealthy, once repaired, once healthy again),
summary.csv (detection and recovery against AWS's bounds) and failover.png; meta.json holds
the fault and repair times.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from testbed.analysis import error_kind, failed, failover_times
from testbed.analysis.plots import failover_timeline
from testbed.errors import BadInput
from testbed.experiments._nlb import (
    background_load,
    event_time,
    fault_events,
    node_addresses,
    write_events_csv,
)
from testbed.experiments.stacks import TARGET_GROUP, nlb_stack, target_names, write_stack
from testbed.lab.api import Lab, random_name
from testbed.messages import TargetEvent
from testbed.results import ResultsDir

if TYPE_CHECKING:  # pandas is imported where the data is (the CLI starts faster)
    import pandas as pd

TEMPLATE = "stack.yaml (generated into the results directory)"
PARAMS = {
    "targets_per_az": (2, "http-backend targets in each of the two AZs"),
    "rate": (50.0, "requests per second (open loop, a new TCP connection each)"),
    "check": ("TCP", "health check protocol: TCP or HTTP"),
    "interval": (5, "HealthCheckIntervalSeconds (5-300)"),
    "check_timeout": (4, "HealthCheckTimeoutSeconds (below the interval)"),
    "unhealthy_threshold": (2, "UnhealthyThresholdCount (2-10)"),
    "healthy_threshold": (2, "HealthyThresholdCount (2-10)"),
    "fault": ("stop", "what breaks: stop, refuse, 500 or hang"),
    "victim": ("WebA1", "the target that breaks"),
    "fault_after": (10.0, "seconds of steady load before the fault"),
    "down_for": (5.0, "seconds the target stays broken after it is marked unhealthy"),
    "tail": (5.0, "seconds of load after the target is healthy again"),
    "request_timeout": (2.0, "per-request timeout of the load client, seconds"),
    "seed": (None, "recorded for re-runs"),
}
PORT = 80
REPAIR = {"stop": "start", "refuse": "clear", "500": "clear", "hang": "clear"}
# Faults a health check of each protocol notices: a TCP check only sees the connection.
NOTICED = {"TCP": {"stop", "refuse"}, "HTTP": {"stop", "refuse", "500", "hang"}}
MARGIN_S = 1.0  # allowance on top of AWS's interval x threshold in the verdicts
WAIT_EXTRA_S = 5.0


def bounds(params: dict[str, Any]) -> dict[str, float]:
    """AWS's detection and recovery times for these settings, and how long to wait."""
    interval, timeout = float(params["interval"]), float(params["check_timeout"])
    # A hung target fails a check only when the check times out: up to one timeout more.
    slow = timeout if params["fault"] == "hang" else 0.0
    detect = interval * params["unhealthy_threshold"] + slow
    recover = interval * params["healthy_threshold"]
    # Waits: the bound plus some seconds, to see when a late transition does come.
    return {
        "detection_s": detect,
        "recovery_s": recover,
        "detect_wait_s": detect + WAIT_EXTRA_S,
        "recover_wait_s": recover + WAIT_EXTRA_S,
    }


def run(params: dict[str, Any], results: ResultsDir) -> dict[str, Any]:
    """Break one target under load, time detection and recovery; the summary for meta.json."""
    import pandas as pd

    check = params["check"].upper()
    if check not in ("TCP", "HTTP"):
        raise BadInput(f"check {params['check']!r}: use TCP or HTTP")
    if params["fault"] not in REPAIR:
        raise BadInput(f"fault {params['fault']!r}: use {', '.join(REPAIR)}")
    per_az = (params["targets_per_az"], params["targets_per_az"])
    names = target_names(per_az)
    everyone = [t for ts in names.values() for t in ts]
    if params["victim"] not in everyone:
        raise BadInput(f"victim {params['victim']!r} is not one of {', '.join(everyone)}")
    health = {
        "HealthCheckProtocol": check,
        "HealthCheckIntervalSeconds": params["interval"],
        "HealthCheckTimeoutSeconds": params["check_timeout"],
        "HealthyThresholdCount": params["healthy_threshold"],
        "UnhealthyThresholdCount": params["unhealthy_threshold"],
    }
    if check == "HTTP":
        health["HealthCheckPath"] = "/health"
    template = write_stack(
        results,
        nlb_stack(
            per_az,
            clients=1,
            port=PORT,
            health=health,
            description=f"failover experiment: NLB, {check} health checks, "
            f"{len(everyone)} targets over 2 AZs",
        ),
    )
    limits = bounds(params)
    key = f"{params['victim']}:{PORT}"
    with Lab.up(template, params={"CrossZone": "true"}, name=random_name("fo")) as lab:
        healthy_s = lab.wait_healthy(TARGET_GROUP, everyone)
        times, requests = _under_load(lab, params, key, limits)
        events = lab.target_events() + [_at_request(e, times) for e in fault_events(lab, PORT)]
        lab_name = lab.name
    print(f"lab {lab_name}: targets healthy after {healthy_s:.1f} s", flush=True)
    events_df = write_events_csv(events, results.file("target_events.csv"))
    results.write_meta(
        template=template,
        lab=lab_name,
        target=key,
        fault_time=times["fault"],
        fault_recorded_time=times["fault_recorded"],
        repair_time=times["repair"],
        aws_detection_s=limits["detection_s"],
        aws_recovery_s=limits["recovery_s"],
    )
    summary, phases = _analyse(requests, events_df, times, key, params, limits, results)
    print("\nrequests per phase:")
    print(phases.to_string(index=False))
    print("\nfailover:")
    print(pd.DataFrame([summary]).T.to_string(header=False))
    return summary


def _under_load(
    lab: Lab, params: dict[str, Any], key: str, limits: dict[str, float]
) -> tuple[dict[str, float | None], pd.DataFrame]:
    """Steady load; fault, wait for unhealthy, repair, wait for healthy. Times and rows."""
    victim = lab.host(params["victim"])
    node = node_addresses(lab)[victim.info["az"]]
    # Long enough for the slowest allowed run: the client stops by itself at the end.
    duration = (
        params["fault_after"]
        + limits["detect_wait_s"]
        + params["down_for"]
        + limits["recover_wait_s"]
        + params["tail"]
    )
    print(
        f"load: {params['rate']:g} req/s to {node} for up to {duration:.0f} s; "
        f"{params['fault']} {params['victim']} after {params['fault_after']:g} s",
        flush=True,
    )
    times: dict[str, float | None] = {}
    with background_load(lab, f"http://{node}/", params, duration, "failover-load") as load:
        time.sleep(params["fault_after"])
        # The fault counts from the request: the lab records it only once the backend has
        # changed (tens of ms later), and the first refused requests may come before that.
        fault = times["fault"] = time.time()
        victim.fault(params["fault"])
        times["fault_recorded"] = _last_fault_event(lab, params["victim"], "FAULT_INJECTED")
        times["unhealthy"] = event_time(lab, key, "unhealthy", fault, limits["detect_wait_s"])
        print(
            f"  fault at +{params['fault_after']:g} s, unhealthy after "
            f"{_gap(times['unhealthy'], times['fault'])} s",
            flush=True,
        )
        time.sleep(params["down_for"])
        victim.fault(REPAIR[params["fault"]])
        # Repaired when the lab says so: `start` returns once the backend listens again.
        repair = times["repair"] = _last_fault_event(lab, params["victim"], "FAULT_CLEARED")
        # Never marked unhealthy (e.g. a TCP check does not see a 500): nothing to recover.
        times["healthy"] = (
            event_time(lab, key, "healthy", repair, limits["recover_wait_s"])
            if times["unhealthy"]
            else None
        )
        print(f"  repaired, healthy after {_gap(times['healthy'], times['repair'])} s", flush=True)
    return times, load["rows"]


def _at_request(row: TargetEvent, times: dict[str, float | None]) -> TargetEvent:
    """The injection row at the time it was asked for (see _under_load), noting the lab's."""
    fault = times.get("fault")
    if (
        row["new"] != "fault-injected"
        or fault is None
        or times.get("fault_recorded") != row["time"]
    ):
        return row
    lag = row["time"] - fault
    return {
        **row,
        "time": fault,
        "reason": f"{row['reason']} (asked for; the lab recorded it {lag:.3f} s later)",
    }


def _last_fault_event(lab: Lab, host: str, status: str) -> float:
    """When the lab recorded the fault change (after the backend actually changed)."""
    hits = [e.time for e in lab.events() if e.logical_id == host and e.status == status]
    return max(hits)


def _gap(later: float | None, earlier: float | None) -> str:
    return "-" if later is None or earlier is None else f"{later - earlier:.2f}"


def _phase_of(start: float, times: dict[str, float | None], seconds: float = 0.0) -> str:
    """Which part of the run a request started in; one that started before the fault and
    took `seconds` still running when it came is the fault's ("fault undetected": a stop
    resets the connections in flight, which is the fault's doing, not the healthy time's)."""
    fault = times["fault"]
    if fault is not None and start < fault < start + seconds:
        return "fault undetected"
    marks = [
        ("fault undetected", times["fault"]),
        ("unhealthy", times["unhealthy"]),
        ("repaired", times["repair"]),
        ("healthy again", times["healthy"]),
    ]
    phase = "before fault"
    for name, when in marks:
        if when is not None and start >= when:
            phase = name
    return phase


def _analyse(
    requests: pd.DataFrame,
    events: pd.DataFrame,
    times: dict[str, float | None],
    key: str,
    params: dict[str, Any],
    limits: dict[str, float],
    results: ResultsDir,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """phases.csv, summary.csv, failover.png; the summary dict and the phase table."""
    import pandas as pd

    start = float(results.meta["start"])
    requests["phase"] = [
        _phase_of(s, times, float(ms) / 1000 if pd.notna(ms) else 0.0)
        for s, ms in zip(requests["start"], requests["latency_ms"])
    ]
    requests.to_csv(results.file("requests.csv"), index=False)
    bad = failed(requests)
    kinds = error_kind(requests)
    order = ["before fault", "fault undetected", "unhealthy", "repaired", "healthy again"]
    rows = []
    for phase in order:
        mask = requests["phase"] == phase
        if not mask.any():
            continue
        counts = kinds[mask].value_counts()
        rows.append(
            {
                "phase": phase,
                "requests": int(mask.sum()),
                "failed": int(bad[mask].sum()),
                "to_victim": int((requests.loc[mask, "backend"] == params["victim"]).sum()),
                "errors": ", ".join(f"{k} {v}" for k, v in counts.items()) or "-",
            }
        )
    phases = pd.DataFrame(rows)
    phases.to_csv(results.file("phases.csv"), index=False)
    fo = failover_times(
        events, requests, fault_time=times["fault"], repair_time=times["repair"], target=key
    )
    detected = times["unhealthy"]
    late = requests[bad & (requests["start"] > detected)] if detected else requests[bad]
    back = requests[
        (requests["backend"] == params["victim"])
        & (requests["start"] >= (times["healthy"] or math.inf))
    ]
    summary = {
        "fault": params["fault"],
        "check": params["check"].upper(),
        "target": key,
        "check_notices_fault": params["fault"] in NOTICED[params["check"].upper()],
        "detection_s": fo.detection_s,
        "aws_detection_s": limits["detection_s"],
        "detected_within_aws_plus_1s": bool(fo.detection_s <= limits["detection_s"] + MARGIN_S),
        "recovery_s": fo.recovery_s,
        "aws_recovery_s": limits["recovery_s"],
        "recovered_within_aws_plus_1s": bool(fo.recovery_s <= limits["recovery_s"] + MARGIN_S),
        "failed_requests_after_fault": fo.failed_requests,
        "error_window_s": fo.error_window_s,
        "failed_after_detection": len(late),
        "last_error_after_detection_s": (
            float(late["start"].max() - detected) if detected and len(late) else math.nan
        ),
        "victim_back_after_healthy_s": (
            float(back["start"].min() - times["healthy"]) if len(back) else math.nan
        ),
        "requests": len(requests),
        "failed": int(bad.sum()),
    }
    pd.DataFrame([summary]).to_csv(results.file("summary.csv"), index=False)
    events = events.assign(t=events["time"] - start)
    failover_timeline(
        requests.assign(t=requests["start"] - start),
        events,
        results.file("failover.png"),
        bin_s=0.5,
        title=f"{params['fault']} {params['victim']} under "
        f"{params['rate']:g} req/s ({summary['check']} health checks)",
    )
    return summary, phases
