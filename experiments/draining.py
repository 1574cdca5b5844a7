"""Connection draining of an NLB target: held TCP flows and new flows around a deregistration.

A client opens `held` long-lived TCP connections through the NLB's TCP:9000 listener (the
http-backend's raw TCP service: an identity line, then an echo of a line a second) and,
meanwhile, a steady stream of short new connections. After `deregister_after` seconds the
victim is deregistered. AWS: it drains for the deregistration delay (established flows keep
working, no new flow is sent to it), then leaves the group. The lab then forgets the
victim's flows (it flushes their conntrack entries): what their clients see next, a RST from
the NLB for the unknown flow or silence until their `timeout`, is recorded per flow, and
established.csv shows whether the target itself ever learns that they ended.

Writes requests.csv (REQUEST_COLUMNS plus flow = held | new), target_events.csv,
established.csv (ESTABLISHED sockets on the victim's port 9000 over time), summary.csv (per
group of flows), draining_timeline.png (one line per held connection), new_flows.png and
victim_connections.png; meta.json holds the deregistration and removal times.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from testbed.analysis import error_kind, failed, requests_per_second
from testbed.analysis.plots import connection_spans, rate_lines
from testbed.errors import BadInput
from testbed.experiments._nlb import event_time, node_addresses, write_events_csv
from testbed.experiments.stacks import TARGET_GROUP, nlb_stack, target_names, write_stack
from testbed.lab.api import Lab, random_name
from testbed.results import ResultsDir
from testbed.traffic import run_load

if TYPE_CHECKING:  # pandas is imported where the data is (the CLI starts faster)
    import pandas as pd

TEMPLATE = "stack.yaml (generated into the results directory)"
PARAMS = {
    "targets_per_az": (2, "http-backend targets in each of the two AZs (cross-zone on)"),
    "delay": (20, "deregistration delay (deregistration_delay.timeout_seconds), seconds"),
    "connection_termination": ("false", "deregistration_delay.connection_termination.enabled"),
    "held": (40, "long-lived connections opened at the start"),
    "hold": (0.0, "how long each is held, seconds (0: until well after the delay)"),
    "deregister_after": (5.0, "seconds after the start of the load"),
    "victim": ("WebA1", "the target deregistered"),
    "new_rate": (20.0, "new short connections per second during the run"),
    "timeout": (3.0, "load client timeout: a stalled flow fails this long after its line"),
    "seed": (None, "recorded for re-runs"),
}
PORT = 9000
PING_S = 1.0  # the load client sends a line a second on a held connection
SAMPLE_S = 0.5
EPSILON_S = 0.05  # clock reads of two processes on one machine


def hold_for(params: dict[str, Any]) -> float:
    """The hold time: given, or long enough to see the victim's flows end after the delay."""
    if params["hold"] > 0:
        return float(params["hold"])
    return params["deregister_after"] + params["delay"] + params["timeout"] + PING_S + 5.0


def run(params: dict[str, Any], results: ResultsDir) -> dict[str, Any]:
    """Hold flows, deregister the victim, watch old and new flows; the summary for meta.json."""
    import pandas as pd

    if params["connection_termination"] not in ("true", "false"):
        raise BadInput("connection_termination must be true or false")
    per_az = (params["targets_per_az"], params["targets_per_az"])
    everyone = [t for ts in target_names(per_az).values() for t in ts]
    if params["victim"] not in everyone:
        raise BadInput(f"victim {params['victim']!r} is not one of {', '.join(everyone)}")
    template = write_stack(results, _stack(per_az, params))
    key = f"{params['victim']}:{PORT}"
    with Lab.up(template, params={"CrossZone": "true"}, name=random_name("dr")) as lab:
        healthy_s = lab.wait_healthy(TARGET_GROUP, everyone)
        print(f"lab {lab.name}: targets healthy after {healthy_s:.1f} s", flush=True)
        times, requests, established = _drain(lab, params, key)
        events = lab.target_events()
        lab_name = lab.name
    requests.to_csv(results.file("requests.csv"), index=False)
    events_df = write_events_csv(events, results.file("target_events.csv"))
    established.to_csv(results.file("established.csv"), index=False)
    results.write_meta(
        template=template,
        lab=lab_name,
        target=key,
        hold_s=hold_for(params),
        deregister_time=times["asked"],
        deregister_returned=times["returned"],
        draining_time=times["draining"],
        removed_time=times["removed"],
    )
    summary, groups = _analyse(requests, events_df, established, times, params, results)
    print("\nflows:")
    print(groups.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print("\ndraining:")
    print(pd.DataFrame([summary]).T.to_string(header=False))
    return summary


def _stack(per_az: tuple[int, int], params: dict[str, Any]) -> str:
    """The generated stack: TCP:9000 listener and target group with the drain settings."""
    return nlb_stack(
        per_az,
        clients=1,
        port=PORT,
        health={
            "HealthCheckProtocol": "TCP",
            "HealthCheckIntervalSeconds": 5,
            "HealthCheckTimeoutSeconds": 4,
            "HealthyThresholdCount": 2,
            "UnhealthyThresholdCount": 2,
        },
        tg_attributes={
            "deregistration_delay.timeout_seconds": str(params["delay"]),
            "deregistration_delay.connection_termination.enabled": params["connection_termination"],
        },
        description=f"draining experiment: NLB TCP:{PORT}, deregistration delay "
        f"{params['delay']} s",
    )


def _drain(
    lab: Lab, params: dict[str, Any], key: str
) -> tuple[dict[str, float | None], pd.DataFrame, pd.DataFrame]:
    """Held and new flows, the deregistration in between: times, request rows, samples."""
    import pandas as pd

    victim = lab.host(params["victim"])
    nodes = node_addresses(lab)
    url = f"tcp://{nodes[min(nodes)]}:{PORT}"  # cross-zone is on: any node reaches the victim
    hold = hold_for(params)
    out: dict[str, Any] = {}
    done = threading.Event()
    samples: list[dict[str, float]] = []

    def held() -> None:
        out["held"] = run_load(
            lab,
            "Client1",
            url,
            requests=params["held"],
            concurrency=params["held"],
            hold=hold,
            timeout=params["timeout"],
        )

    def new() -> None:
        seconds = hold + 2.0
        out["new"] = run_load(
            lab,
            "Client1",
            url,
            requests=int(params["new_rate"] * seconds) + 1,
            rate=params["new_rate"],
            duration=seconds,
            concurrency=50,
            timeout=params["timeout"],
        )

    def sample() -> None:
        while not done.is_set():
            proc = victim.run(
                ["ss", "-tnH", "state", "established", f"( sport = :{PORT} )"], timeout=10
            )
            samples.append(
                {"time": time.time(), "established": len(proc.stdout.strip().splitlines())}
            )
            done.wait(SAMPLE_S)

    workers = [threading.Thread(target=_catching(f, out), name=f.__name__) for f in (held, new)]
    sampler = threading.Thread(target=sample, name="sampler")
    print(
        f"{params['held']} held connections to {url} for {hold:.0f} s, "
        f"{params['new_rate']:g} new/s; deregister {params['victim']} after "
        f"{params['deregister_after']:g} s, delay {params['delay']} s",
        flush=True,
    )
    for w in [*workers, sampler]:
        w.start()
    times: dict[str, float | None] = {}
    try:
        time.sleep(params["deregister_after"])
        asked = times["asked"] = time.time()
        lab.deregister(TARGET_GROUP, params["victim"])
        # The holder stamps "draining" before it hands the new target set to the controller;
        # the reply comes once the controller has sent its flow changes to the switches.
        times["returned"] = time.time()
        times["draining"] = event_time(lab, key, "draining", asked - 1.0, 10.0)
        times["removed"] = event_time(lab, key, "", asked, params["delay"] + 10.0)
        print(
            f"  draining from +{params['deregister_after']:g} s, removed "
            f"{_gap(times['removed'], times['draining'])} s later",
            flush=True,
        )
    finally:
        for w in workers:
            w.join()
        done.set()
        sampler.join()
    for name in ("held", "new"):
        if isinstance(out.get(name), BaseException):
            raise out[name]
    requests = pd.concat(
        [out["held"].assign(flow="held"), out["new"].assign(flow="new")], ignore_index=True
    )
    return times, requests, pd.DataFrame(samples, columns=["time", "established"])


def _catching(fn: Callable[[], None], out: dict[str, Any]) -> Callable[[], None]:
    """fn, with any exception kept in out[fn name] for the main thread to raise."""

    def wrapper() -> None:
        try:
            fn()
        except Exception as exc:
            out[fn.__name__] = exc

    wrapper.__name__ = fn.__name__
    return wrapper


def _gap(later: float | None, earlier: float | None) -> str:
    return "-" if later is None or earlier is None else f"{later - earlier:.2f}"


def flow_ends(requests: pd.DataFrame, timeout: float) -> pd.DataFrame:
    """Per request: `end` (start + latency) and, for a failed one, `broke`: when its trouble
    began (a timed-out flow sent its unanswered line `timeout` before it gave up; other
    errors are seen at once). NaN for flows that worked to the end."""
    end = requests["start"] + requests["latency_ms"] / 1000.0
    stalled = requests["error"].fillna("").astype(str) == "timeout"
    broke = (end - stalled * timeout).where(failed(requests))
    return requests.assign(end=end, broke=broke)


def _analyse(
    requests: pd.DataFrame,
    events: pd.DataFrame,
    established: pd.DataFrame,
    times: dict[str, float | None],
    params: dict[str, Any],
    results: ResultsDir,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """summary.csv and the figures; the summary dict and the per-group table."""
    import pandas as pd

    start = float(results.meta["start"])
    victim = params["victim"]
    drained, removed = times["draining"] or math.nan, times["removed"] or math.nan
    returned = times["returned"] or math.nan
    rows = flow_ends(requests, params["timeout"])
    held, new = rows[rows["flow"] == "held"], rows[rows["flow"] == "new"]
    on_victim = held["backend"] == victim
    groups = []
    for name, frame in (
        (f"held on {victim}", held[on_victim]),
        ("held on the others", held[~on_victim]),
        ("new before deregistration", new[new["start"] < drained]),
        ("new while draining", new[(new["start"] >= drained) & (new["start"] < removed)]),
        ("new after the delay", new[new["start"] >= removed]),
    ):
        kinds = error_kind(frame).value_counts()
        groups.append(
            {
                "flows": name,
                "connections": len(frame),
                "failed": int(failed(frame).sum()),
                "errors": ", ".join(f"{k} {v}" for k, v in kinds.items()) or "-",
                f"to_{victim}": int((frame["backend"] == victim).sum()),
                "first_end_s": frame["end"].min() - drained if len(frame) else math.nan,
                "last_end_s": frame["end"].max() - drained if len(frame) else math.nan,
            }
        )
    table = pd.DataFrame(groups)
    table.to_csv(results.file("summary_flows.csv"), index=False)
    victim_held = held[on_victim]
    after = new[new["start"] >= drained]
    to_victim = new[new["backend"] == victim]
    summary = {
        "target": f"{victim}:{PORT}",
        "delay_s": params["delay"],
        "removed_after_s": removed - drained,
        "held_on_victim": len(victim_held),
        "held_total": len(held),
        # Kept working until the delay ended: it never broke, or its trouble began (its
        # first unanswered line) only once the target had been removed.
        "held_on_victim_survived_delay": int(
            ((victim_held["broke"] >= removed - EPSILON_S) | victim_held["broke"].isna()).sum()
        ),
        "held_on_victim_failed": int(failed(victim_held).sum()),
        "victim_flows_broke_after_removal_min_s": victim_held["broke"].min() - removed,
        "victim_flows_broke_after_removal_max_s": victim_held["broke"].max() - removed,
        "held_elsewhere_failed": int(failed(held[~on_victim]).sum()),
        "new_flows_after_deregistration": len(after),
        "new_flows_to_victim_after_deregistration": int((after["backend"] == victim).sum()),
        "deregistration_call_s": returned - drained,
        "new_flows_to_victim_after_call_returned": int((to_victim["start"] >= returned).sum()),
        "last_new_flow_to_victim_s": float(to_victim["start"].max() - drained)
        if len(to_victim)
        else math.nan,
        "new_flows_failed": int(failed(new).sum()),
        "victim_established_at_end": int(established["established"].iloc[-1])
        if len(established)
        else -1,
    }
    pd.DataFrame([summary]).to_csv(results.file("summary.csv"), index=False)
    marks = {"deregistered": drained - start, "delay ends": removed - start}
    # The victim's changes while the held flows lived (not its start-up health checks).
    victim_events = events[
        (events["target"] == f"{victim}:{PORT}") & (events["time"] >= held["start"].min())
    ]
    connection_spans(
        held.assign(t=held["start"] - start, stalled_t=held["broke"] - start),
        results.file("draining_timeline.png"),
        marks=marks,
        stalled="stalled_t",
        events=victim_events.assign(t=victim_events["time"] - start),
        title=f"held connections (dotted: no answers any more); {victim} "
        f"deregistered, delay {params['delay']} s",
    )
    rate = requests_per_second(new.assign(t=new["start"] - start), by="backend")
    rate_lines(
        rate,
        results.file("new_flows.png"),
        y="rps",
        by="backend",
        ylabel="new connections per second",
        title=f"new connections per target ({victim} deregistered at "
        f"{marks['deregistered']:.1f} s, removed at {marks['delay ends']:.1f} s)",
    )
    rate_lines(
        established.assign(t=established["time"] - start),
        results.file("victim_connections.png"),
        y="established",
        ylabel="ESTABLISHED sockets",
        title=f"connections the victim {victim} holds on port {PORT} (as the target sees them)",
    )
    return summary, table
