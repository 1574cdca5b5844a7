"""Stack updates under load: what each update costs the requests running through an ALB and
an NLB (AWS: nothing, for every update it performs without interruption).

Brings up a generated stack (testbed.experiments._update_stack: an ALB and an NLB in front of
http-backend instances), sends an open-loop HTTP load of `rate` requests/s through each load
balancer in `lbs` (Client1 -> the ALB's AZ-a node, Client2 -> the NLB's AZ-a node), and,
`settle` seconds in, applies the updates in `steps` one per `phase` seconds with `testbed
update`: add targets (ALB, NLB), a listener rule, health-check changes, a security group
rule, a new AZ (NLB, ALB), replacing an instance (the old one drains first), and two failing
updates that AWS rolls back (an added firewall instance whose nft rule has a typo, so its
role never starts; an added instance whose UserData sends a failure signal to its
CreationPolicy). Each step's template is the last applied one with that step's change; an
update the lab refuses (it cannot take that change live yet) is recorded as skipped with the
lab's words, and the next step builds on what the lab runs. After a failing update the
experiment checks that the lab is as before (its state and registered targets).

Every failed request is counted against the update it was in flight during (or up to
`grace` s after); AWS performs each of these updates without interruption, so the expected
count is 0 everywhere, and an update's row says whether its outcome is AWS's.

    testbed run update                                   # every step, ~3 min of load
    testbed run update -p steps=alb_rule,replace,failing -p lbs=alb -p phase=10

Writes stack.yaml and step_NN_<step>.yaml (each update's template), requests.csv
(REQUEST_COLUMNS plus lb), timeline.csv (per second and load balancer: ok, failed, total),
events.csv (each update's stack and resource events), target_events.csv, summary.csv (per
update: outcome, expected outcome, duration, requests in flight during it and up to `grace`
s after, failed ones per load balancer and by kind, the refusal or failure text) and
update.png (requests/s and errors over time per load balancer, each update's span marked).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testbed.analysis import failed
from testbed.analysis import update as analysis
from testbed.errors import BadInput, TestbedError
from testbed.experiments import _update_stack as stack
from testbed.experiments._nlb import node_addresses, write_events_csv
from testbed.lab.api import Lab, random_name
from testbed.lab.events import Event
from testbed.results import ResultsDir
from testbed.traffic import run_load

if TYPE_CHECKING:  # pandas is imported where the data is (the CLI starts faster)
    import pandas as pd

TEMPLATE = "stack.yaml and step_NN_<step>.yaml (generated into the results directory)"
PARAMS = {
    "steps": (
        [s.name for s in stack.STEPS],
        "the updates, in order: " + ", ".join(s.name for s in stack.STEPS),
    ),
    "lbs": (["alb", "nlb"], "the load balancers the load runs through: alb, nlb"),
    "phase": (15.0, "seconds from one update's start to the next's"),
    "settle": (5.0, "seconds of load before the first update"),
    "tail": (5.0, "seconds of load after the last update's slot"),
    "rate": (20.0, "requests per second through each load balancer"),
    "timeout": (3.0, "load client timeout per request, seconds"),
    "grace": (2.0, "seconds after an update's end whose failed requests it is blamed for"),
    "seed": (None, "recorded for re-runs"),
}
LB_NAMES = {"alb": stack.ALB, "nlb": stack.NLB}
GROUPS = {stack.ALB: stack.ALB_GROUP, stack.NLB: stack.NLB_GROUP}
# state.json keys (and keys of its stacks) that every update stamps, whatever it does: when,
# the status and its reason
VOLATILE_STATE = ("updated", "state", "status", "reason")


def run(params: dict[str, Any], results: ResultsDir) -> dict[str, Any]:
    """Load through the load balancers while the updates run; the summary for meta.json."""
    import pandas as pd

    steps, lbs = _checked(params)
    template = stack.base_template()
    path = _write(results, "stack.yaml", template)
    with Lab.up(path, name=random_name("upd")) as lab:
        for lb in lbs:
            seconds = lab.wait_healthy(GROUPS[lb], stack.SERVING_AT_START[lb], timeout=120, lb=lb)
            print(f"lab {lab.name}: {lb} targets healthy after {seconds:.1f} s", flush=True)
        t0, requests, rows, events = _under_load(lab, params, steps, lbs, template, results)
        target_events = lab.target_events()
        lab_name = lab.name
    requests.to_csv(results.file("requests.csv"), index=False)
    line = analysis.timeline(requests, t0)
    line.to_csv(results.file("timeline.csv"), index=False)
    pd.DataFrame(events).to_csv(results.file("events.csv"), index=False)
    health = write_events_csv(target_events, results.file("target_events.csv"))
    table = analysis.step_summary(pd.DataFrame(rows), requests, params["grace"], lbs, health)
    table.to_csv(results.file("summary.csv"), index=False)
    analysis.update_figure(line, table, results.file("update.png"), t0, lbs)
    results.write_meta(lab=lab_name, load_start=t0)
    shown = ["step", "outcome", "expected", "duration_s", "requests", "failed", "errors", "drained"]
    print("\nupdates:")
    print(table[shown].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return {
        "requests": len(requests),
        "failed": int(failed(requests).sum()),
        "updates": len(table),
        "applied": int((table["outcome"] == "UPDATE_COMPLETE").sum()),
        "rolled_back": int((table["outcome"] == "UPDATE_ROLLBACK_COMPLETE").sum()),
        "skipped": int((table["outcome"] == analysis.SKIPPED).sum()),
        "as_expected": int(table["ok"].sum()),
    }


def _checked(params: dict[str, Any]) -> tuple[list[stack.Step], list[str]]:
    """The steps and load balancers asked for; BadInput for unknown names or bad numbers."""
    unknown = [s for s in params["steps"] if s not in stack.BY_NAME]
    if unknown or not params["steps"]:
        raise BadInput(
            f"unknown or no steps: {', '.join(unknown) or '(none)'}",
            hint="steps: " + ", ".join(stack.BY_NAME),
        )
    bad = [lb for lb in params["lbs"] if lb not in LB_NAMES]
    if bad or not params["lbs"]:
        raise BadInput(f"lbs must be alb and/or nlb, not {', '.join(bad) or '(none)'}")
    for key in ("phase", "rate", "timeout"):
        if params[key] <= 0:
            raise BadInput(f"{key} must be positive")
    if params["rate"] * _duration(params, len(params["steps"])) > 100_000:
        raise BadInput("rate x duration is over 100000 requests per load balancer")
    return [stack.BY_NAME[s] for s in params["steps"]], [LB_NAMES[lb] for lb in params["lbs"]]


def _duration(params: dict[str, Any], count: int) -> float:
    return float(params["settle"] + count * params["phase"] + params["tail"])


def _write(results: ResultsDir, name: str, template: dict[str, Any]) -> str:
    path = results.file(name)
    path.write_text(stack.dump(template))
    return str(path)


def _under_load(
    lab: Lab,
    params: dict[str, Any],
    steps: list[stack.Step],
    lbs: list[str],
    template: dict[str, Any],
    results: ResultsDir,
) -> tuple[float, pd.DataFrame, list[dict[str, Any]], list[dict[str, Any]]]:
    """Run the load and the updates: (load start, request rows, one row per update, their
    events)."""
    import pandas as pd

    seconds = _duration(params, len(steps))
    out: dict[str, Any] = {}

    def load(lb: str) -> None:
        node = node_addresses(lab, lb)
        url = f"http://{node[min(node)]}{stack.LOAD_PATH}"
        try:
            out[lb] = run_load(
                lab,
                stack.CLIENTS[lb],
                url,
                requests=int(params["rate"] * seconds) + 1,
                rate=params["rate"],
                duration=seconds,
                concurrency=max(20, int(params["rate"] * params["timeout"]) + 5),
                timeout=params["timeout"],
            ).assign(lb=lb)
        except Exception as exc:
            out[lb] = exc

    workers = [threading.Thread(target=load, args=(lb,), name=f"load-{lb}") for lb in lbs]
    print(
        f"{params['rate']:g} requests/s through {', '.join(lbs)} for {seconds:.0f} s; "
        f"{len(steps)} updates, one every {params['phase']:g} s",
        flush=True,
    )
    t0 = time.time()
    for w in workers:
        w.start()
    rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    try:
        for i, step in enumerate(steps):
            _sleep_until(t0 + params["settle"] + i * params["phase"])
            row, template = _apply(lab, i + 1, step, template, results)
            rows.append(row)
            print(
                f"  +{row['start'] - t0:5.1f} s {step.name}: {row['outcome']} in "
                f"{row['end'] - row['start']:.1f} s{_brief(row['reason'])}",
                flush=True,
            )
    finally:
        for w in workers:
            w.join()
    for lb in lbs:
        if isinstance(out.get(lb), BaseException):
            raise out[lb]
    happened = lab.events()
    for row in rows:
        events += _events_of(happened, row, params["grace"], t0)
    requests = pd.concat([out[lb] for lb in lbs], ignore_index=True)
    return t0, requests, rows, events


def _sleep_until(when: float) -> None:
    delay = when - time.time()
    if delay > 0:
        time.sleep(delay)  # the schedule's pace, not a wait for a state


def _brief(reason: str) -> str:
    first = reason.strip().splitlines()[0] if reason.strip() else ""
    return f" ({first[:120]})" if first else ""


def _apply(
    lab: Lab, number: int, step: stack.Step, template: dict[str, Any], results: ResultsDir
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Apply one step; its row and the template the lab runs afterwards."""
    changed = step.apply(template)
    path = _write(results, f"step_{number:02d}_{step.name}.yaml", changed)
    before = _comparable(lab) if step.expect != "UPDATE_COMPLETE" else None
    start = time.time()
    reason, done = "", ""
    try:
        reply = lab.update(path)
        outcome = lab.state["state"] if reply["changes"] else "no change"
        done = "; ".join(reply["done"])
        template = changed
    except BadInput as exc:  # refused: nothing changed
        outcome, reason = analysis.SKIPPED, str(exc)
    except TestbedError as exc:  # failed: the lab rolled it back (or did not)
        outcome, reason = str(lab.state.get("state")), str(exc)
    end = time.time()
    row = {
        "step": step.name,
        "lb": step.lb,
        "what": step.what,
        "template": Path(path).name,
        "start": start,
        "end": end,
        "outcome": outcome,
        "expected": step.expect,
        "reason": reason,
        "done": done,
        "lab_identical": "",
    }
    if before is not None and outcome != analysis.SKIPPED:
        row["lab_identical"] = _identical(lab, before)
    return row, template


def _comparable(lab: Lab) -> dict[str, Any]:
    """What a rolled-back update must leave as it was: state.json without what every update
    stamps, and the registered targets (without their health, which moves on its own)."""
    state = {k: v for k, v in lab.state.items() if k not in VOLATILE_STATE}
    state["stacks"] = [
        {k: v for k, v in entry.items() if k not in VOLATILE_STATE}
        for entry in state.get("stacks", [])
    ]
    targets = sorted(
        (t["LoadBalancer"], t["TargetGroup"], t["Target"]["Id"], str(t["Target"].get("Port")))
        for t in lab.targets()
    )
    return {"state": state, "targets": targets}


def _identical(lab: Lab, before: dict[str, Any]) -> str:
    """ "yes", or what differs from `before`."""
    after = _comparable(lab)
    differ = [k for k in before["state"].keys() | after["state"].keys()
              if before["state"].get(k) != after["state"].get(k)]  # fmt: skip
    if before["targets"] != after["targets"]:
        differ.append("registered targets")
    return "yes" if not differ else "differs: " + ", ".join(sorted(differ))


def _events_of(
    happened: list[Event], row: dict[str, Any], grace: float, t0: float
) -> list[dict[str, Any]]:
    """The stack and resource events from the update's start to `grace` s after its end
    (target health is in target_events.csv)."""
    return [
        {
            "step": row["step"],
            "t": e.time - t0,
            "time": e.time,
            "logical_id": e.logical_id,
            "resource_type": e.resource_type,
            "status": e.status,
            "reason": e.reason,
        }
        for e in happened
        if row["start"] - 0.5 <= e.time <= row["end"] + grace
    ]
