"""Auto Scaling under stepped load: how fast capacity follows load (target tracking), and
what clients see while it does.

Brings up templates/autoscaling.yaml (variant=alb: ALBRequestCountPerTarget tracking) or
templates/autoscaling-nlb.yaml (variant=nlb: ASGAverageCPUUtilization tracking, each request
burning `cpu_ms` of its instance's CPU) with Metadata.Lab.TimeScale set to `time_scale`, then
sends an open-loop load that follows `schedule` (phases NAME:RATE:SECONDS; by default low ->
high -> low -> spike -> tail). Every second it samples the group (desired, InService, hosts).
`kill_after` seconds into the last phase one InService instance's backend is stopped: the
ELB health check finds it, and the group replaces it. NLB variant: `held` long-lived TCP
flows (the backend's echo on port 9000) live through the first two phases; a flow that moved
to another target during the scale-out breaks (goal 0).

Writes requests.csv (REQUEST_COLUMNS plus phase), held.csv (NLB), samples.csv (the group each
second), activities.csv (the group's scaling activities), steps.csv (per load step: time to
new capacity InService, to the new capacity answering, to scale in, failed requests),
summary.csv and autoscale.png (offered load, capacity, per-target load, p99 latency over
time, activities marked).
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from testbed.analysis import autoscale as numbers
from testbed.analysis import failed
from testbed.errors import BadInput
from testbed.experiments._nlb import node_addresses
from testbed.lab.api import Lab, random_name
from testbed.paths import REPO
from testbed.results import ResultsDir
from testbed.traffic import run_load

if TYPE_CHECKING:  # pandas is imported where the data is (the CLI starts faster)
    import pandas as pd

TEMPLATE = "templates/autoscaling.yaml or autoscaling-nlb.yaml (copied into the results)"
GROUP = "WebGroup"
LBS = {"alb": "WebALB", "nlb": "WebNLB"}
TEMPLATES = {"alb": "autoscaling.yaml", "nlb": "autoscaling-nlb.yaml"}
PARAMS = {
    "variant": ("alb", "alb (requests per target tracking) or nlb (CPU tracking)"),
    "schedule": (
        "",
        "load phases NAME:REQUESTS_PER_SECOND:SECONDS, comma-separated (default: the "
        "variant's, see DEFAULTS)",
    ),
    "time_scale": (20.0, "Metadata.Lab.TimeScale: Auto Scaling runs this many times faster"),
    "target": (
        0.0,
        "target value: requests per target per (AWS) minute (alb, default 100) "
        "or CPU percent (nlb, default 20)",
    ),
    "cpu_ms": (4.0, "nlb: CPU milliseconds each request burns on its instance"),
    "max_size": (6, "MaxSize of the group"),
    "kill_after": (5.0, "seconds into the last phase to stop one instance's backend (<0: no)"),
    "held": (20, "nlb: long-lived TCP flows held through the first two phases"),
    "timeout": (3.0, "per-request timeout of the load client, seconds"),
    "seed": (None, "recorded for re-runs"),
}
# Per variant: the schedule and target. The NLB's CPU load stays under half a CPU in all (a
# lab shares the machine's CPUs: more would measure the machine, not the policy); a low CPU
# target lets that small load ask for several instances.
DEFAULTS = {
    "alb": {"schedule": "low:15:30,high:100:60,low:15:80,spike:180:30,tail:15:40", "target": 100.0},
    "nlb": {"schedule": "low:10:30,high:60:60,low:10:80,spike:120:30,tail:10:40", "target": 20.0},
}
SAMPLE_S = 1.0
ECHO_PORT = 9000


@dataclass(frozen=True)
class Phase:
    """One step of the load: `rate` requests per second for `seconds`, from `start` (seconds
    after the load began)."""

    name: str
    rate: float
    seconds: float
    start: float

    @property
    def end(self) -> float:
        return self.start + self.seconds


def schedule(text: str) -> list[Phase]:
    """Phases from "low:15:30,high:100:60,..." (NAME:RATE:SECONDS); BadInput when malformed."""
    phases: list[Phase] = []
    start = 0.0
    for item in (part.strip() for part in text.split(",") if part.strip()):
        fields = item.split(":")
        try:
            if len(fields) != 3:
                raise ValueError
            name, rate, seconds = fields[0], float(fields[1]), float(fields[2])
        except ValueError:
            raise BadInput(
                f"schedule phase {item!r} is not NAME:RATE:SECONDS", hint="e.g. high:100:60"
            ) from None
        if not name or rate < 0 or seconds <= 0 or rate * seconds > 100_000:
            raise BadInput(
                f"schedule phase {item!r}: rate >= 0, seconds > 0, at most 100000 requests"
            )
        phases.append(Phase(name, rate, seconds, start))
        start += seconds
    if not phases:
        raise BadInput("schedule has no phase")
    return phases


def steps(phases: list[Phase]) -> list[tuple[Phase, str]]:
    """Each phase after the first with its direction: "up" or "down" (equal rates: none)."""
    out = []
    for before, phase in itertools.pairwise(phases):
        if phase.rate != before.rate:
            out.append((phase, "up" if phase.rate > before.rate else "down"))
    return out


def step_table(
    phases: list[Phase],
    samples: pd.DataFrame,
    requests: pd.DataFrame,
    t0: float,
) -> pd.DataFrame:
    """One row per load step: when, direction, rates, seconds to new capacity InService and
    to it answering (up), to scale in (down), to settle, and failed requests in the phase."""
    import pandas as pd

    rows = []
    for phase, direction in steps(phases):
        at, end = t0 + phase.start, t0 + phase.end
        rows.append(
            {
                "phase": phase.name,
                "t": phase.start,
                "direction": direction,
                "rate": phase.rate,
                "capacity_in_service_s": numbers.capacity_after_step(samples, at)
                if direction == "up"
                else math.nan,
                "taking_traffic_s": numbers.traffic_after_step(samples, requests, at)
                if direction == "up"
                else math.nan,
                "scale_in_s": numbers.scale_in_after_step(samples, at)
                if direction == "down"
                else math.nan,
                "settled_s": numbers.settled_after_step(samples, at, end),
                "requests": int(((requests["start"] >= at) & (requests["start"] < end)).sum()),
                "failed": numbers.failed_between(requests, at, end),
            }
        )
    return pd.DataFrame(rows)


def summarize(
    table: pd.DataFrame,
    replaced: dict[str, float],
    held: pd.DataFrame | None,
    requests: pd.DataFrame,
    kill_t: float | None,
    samples: pd.DataFrame,
    timeout: float,
) -> dict[str, Any]:
    """The run's headline numbers from the step table (first step up, first step down)."""
    up = table[table["direction"] == "up"]
    down = table[table["direction"] == "down"]
    # Failures caused by the killed instance are the health check's to count, not scale-in's.
    before_kill = requests if kill_t is None else requests[requests["start"] < kill_t]
    return {
        "scale_out_in_service_s": float(up["capacity_in_service_s"].iloc[0])
        if len(up)
        else math.nan,
        "scale_out_taking_traffic_s": float(up["taking_traffic_s"].iloc[0])
        if len(up)
        else math.nan,
        "scale_in_s": float(down["scale_in_s"].iloc[0]) if len(down) else math.nan,
        "failed_during_scale_in": int(down["failed"].iloc[0]) if len(down) else 0,
        "requests": len(requests),
        "failed_before_kill": int(failed(before_kill).sum()),
        "flows_moved_during_scale_out": numbers.flows_moved(held, samples, timeout)
        if held is not None
        else None,
        "held_flows_broken": int(failed(held).sum()) if held is not None else None,
        "held_flows": len(held) if held is not None else None,
        "replaced_s": replaced.get("replaced_s", math.nan),
        "victim_terminated_s": replaced.get("terminated_s", math.nan),
    }


def with_defaults(params: dict[str, Any]) -> dict[str, Any]:
    """params with the variant's schedule and target where they were left empty / 0."""
    chosen = DEFAULTS[params["variant"]]
    return dict(
        params,
        schedule=params["schedule"] or chosen["schedule"],
        target=params["target"] or chosen["target"],
    )


def stack_text(variant: str, time_scale: float) -> str:
    """The variant's template with Metadata.Lab.TimeScale set to time_scale."""
    text = (REPO / "templates" / TEMPLATES[variant]).read_text()
    if "    TimeScale: 10\n" not in text:
        raise BadInput(f"templates/{TEMPLATES[variant]} lost its 'TimeScale: 10' line")
    return text.replace("    TimeScale: 10\n", f"    TimeScale: {time_scale:g}\n", 1)


def describe_group(lab: Lab, group: str = GROUP) -> dict[str, Any]:
    """The group as describe-auto-scaling-groups shows it."""
    return lab.asg_group(group)


def sample_row(group: dict[str, Any], now: float) -> dict[str, Any]:
    """One samples.csv row from a group description."""
    instances = group.get("Instances", [])
    in_service = [i for i in instances if i.get("LifecycleState") == "InService"]
    return {
        "time": now,
        "desired": group.get("DesiredCapacity"),
        "in_service": len(in_service),
        "healthy": sum(1 for i in in_service if i.get("HealthStatus") == "Healthy"),
        "in_service_hosts": ";".join(sorted(str(i.get("Host", "")) for i in in_service)),
        "hosts": ";".join(sorted(str(i.get("Host", "")) for i in instances)),
    }


def run(params: dict[str, Any], results: ResultsDir) -> dict[str, Any]:
    """Bring the variant up, run the stepped load, analyse; the summary for meta.json."""
    import pandas as pd

    variant = params["variant"]
    if variant not in TEMPLATES:
        raise BadInput(f"variant must be alb or nlb, not {variant!r}")
    params = with_defaults(params)
    results.write_meta(params=params)
    phases = schedule(params["schedule"])
    if params["time_scale"] <= 0:
        raise BadInput("time_scale must be positive")
    template = results.file(TEMPLATES[variant])
    template.write_text(stack_text(variant, params["time_scale"]))
    stack_params = {"MaxSize": str(params["max_size"])}
    stack_params["TargetRequests" if variant == "alb" else "TargetCpu"] = f"{params['target']:g}"
    with Lab.up(str(template), params=stack_params, name=random_name("as")) as lab:
        lab.wait_asg(GROUP, 2, timeout=120)
        print(f"lab {lab.name}: {GROUP} has 2 instances InService", flush=True)
        out = _load(lab, params, phases, variant)
        lab_name = lab.name
    requests: pd.DataFrame = out["requests"]
    samples = pd.DataFrame(out["samples"])
    activities = pd.DataFrame(out["activities"], columns=["time", "description", "status", "cause"])
    t0 = out["t0"]
    requests.to_csv(results.file("requests.csv"), index=False)
    samples.to_csv(results.file("samples.csv"), index=False)
    activities.to_csv(results.file("activities.csv"), index=False)
    held = out.get("held")
    if held is not None:
        held.to_csv(results.file("held.csv"), index=False)
    table = step_table(phases, samples, requests, t0)
    table.to_csv(results.file("steps.csv"), index=False)
    kill_t, victim = out.get("kill_t"), out.get("victim")
    replaced = numbers.replacement(samples, victim, kill_t) if kill_t and victim else {}
    summary = summarize(table, replaced, held, requests, kill_t, samples, params["timeout"])
    summary.update(variant=variant, time_scale=params["time_scale"], victim=victim)
    pd.DataFrame([summary]).to_csv(results.file("summary.csv"), index=False)
    results.write_meta(
        lab=lab_name, template=str(template), load_start=t0, kill_time=kill_t, victim=victim
    )
    numbers.timeline(
        samples,
        requests,
        numbers.offered_steps([(p.name, p.rate, p.seconds) for p in phases]),
        activities,
        t0,
        results.file("autoscale.png"),
        title=f"Auto Scaling ({variant}, time scale {params['time_scale']:g}): "
        f"target {params['target']:g}",
    )
    print("\nload steps:")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print("\nsummary:")
    print(pd.DataFrame([summary]).T.to_string(header=False))
    return summary


def _load(lab: Lab, params: dict[str, Any], phases: list[Phase], variant: str) -> dict[str, Any]:
    """Run the phases (and the held flows), sample the group each second, kill one instance
    in the last phase; everything measured, in a dict."""
    import pandas as pd

    node = min(node_addresses(lab, LBS[variant]).values())
    path = f"/?cpu_ms={params['cpu_ms']:g}" if variant == "nlb" else "/"
    out: dict[str, Any] = {"samples": [], "activities": []}
    done = threading.Event()
    errors: list[BaseException] = []

    def sample() -> None:
        while not done.is_set():
            try:
                out["samples"].append(sample_row(describe_group(lab), time.time()))
            except Exception as exc:  # a slow answer: the next second tries again
                print(f"  sample failed: {exc}", flush=True)
            done.wait(SAMPLE_S)

    def held() -> None:
        seconds = phases[0].seconds + (phases[1].seconds if len(phases) > 1 else 0)
        try:
            out["held"] = run_load(
                lab,
                "Client2",
                f"tcp://{node}:{ECHO_PORT}",
                requests=params["held"],
                concurrency=params["held"],
                hold=seconds,
                timeout=params["timeout"],
            )
        except Exception as exc:
            errors.append(exc)

    sampler = threading.Thread(target=sample, name="sampler")
    holder = threading.Thread(target=held, name="held")
    sampler.start()
    out["t0"] = time.time()
    if variant == "nlb" and params["held"] > 0:
        holder.start()
    frames = []
    try:
        for i, phase in enumerate(phases):
            print(f"  {phase.name}: {phase.rate:g} requests/s for {phase.seconds:g} s", flush=True)
            last = i == len(phases) - 1
            killer = None
            if last and params["kill_after"] >= 0:
                killer = threading.Timer(params["kill_after"], _kill, args=(lab, out))
                killer.start()
            frames.append(_phase_load(lab, phase, f"http://{node}{path}", params))
            if killer is not None:
                killer.join()
    finally:
        if holder.is_alive():
            holder.join()
        done.set()
        sampler.join()
    if errors:
        raise errors[0]
    out["requests"] = pd.concat(frames, ignore_index=True)
    for act in lab.activities(GROUP):
        out["activities"].append(
            {
                "time": _epoch(act.get("StartTime")),
                "description": act.get("Description", ""),
                "status": act.get("StatusCode", ""),
                "cause": act.get("Cause", ""),
            }
        )
    return out


def _phase_load(lab: Lab, phase: Phase, url: str, params: dict[str, Any]) -> pd.DataFrame:
    """One phase of open-loop load (a new connection per request, so it spreads)."""
    import pandas as pd

    if phase.rate <= 0:
        time.sleep(phase.seconds)  # no load: the phase only lets time pass
        return pd.DataFrame()
    return run_load(
        lab,
        "Client1",
        url,
        requests=int(phase.rate * phase.seconds) + 1,
        rate=phase.rate,
        duration=phase.seconds,
        concurrency=max(50, int(phase.rate * params["timeout"]) + 10),
        timeout=params["timeout"],
    ).assign(phase=phase.name)


def _kill(lab: Lab, out: dict[str, Any]) -> None:
    """Stop the backend of the first InService instance (the ELB health check finds it)."""
    group = describe_group(lab)
    hosts = sorted(
        str(i["Host"]) for i in group.get("Instances", []) if i.get("LifecycleState") == "InService"
    )
    if not hosts:
        print("  no instance InService to kill", flush=True)
        return
    out["victim"] = hosts[0]
    out["kill_t"] = time.time()
    lab.host(hosts[0]).fault("stop")
    print(f"  stopped the backend of {hosts[0]}", flush=True)


def _epoch(value: Any) -> float:
    """An activity time (epoch seconds or ISO 8601 text) as epoch seconds (NaN: none)."""
    if value is None or value == "":
        return math.nan
    if isinstance(value, (int, float)):
        return float(value)
    from datetime import datetime

    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
