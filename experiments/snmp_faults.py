"""SNMP fault diagnosis: targets' interfaces taken down by SET under load; which signal first.

A client sends a steady open-loop load through an NLB (cross-zone on) to http-backend
targets. After `warmup` seconds the template's SNMPv3 write user SETs IF-MIB::ifAdminStatus
down(2) on `victims` targets one after another (`gap` seconds apart); each stays down `hold`
seconds and is SET up(1) again (from the host itself: nothing reaches it over its interface).
For each victim the run times, from its SET down: the first failed request, the health
checks' unhealthy transition, the linkDown the agent made (sysUpTime in the PDU) and when the
lab's receiver got it, then from the SET up: linkUp received, healthy again.

An instance has one interface, so its linkDown can only leave once the interface is back:
the SNMP signal of the fault arrives after the health checks noticed it, however quickly the
agent made it. Writes timeline.csv (every signal, with its offset from the victim's SET),
summary.csv (one row per victim), requests.csv and traps.csv.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from testbed.errors import BadInput
from testbed.experiments._nlb import background_load, node_addresses
from testbed.experiments.stacks import TARGET_GROUP, nlb_stack, target_names, write_stack
from testbed.lab.api import Lab, random_name
from testbed.lab.services.trapd import read_traps
from testbed.results import ResultsDir
from testbed.snmp.manager import set_object

TEMPLATE = "stack.yaml (generated into the results directory)"
PARAMS = {
    "targets_per_az": (2, "http-backend targets in each of the two AZs"),
    "victims": (2, "targets whose interface is SET down, one after another"),
    "rate": (40.0, "requests per second (open loop, a new TCP connection each)"),
    "interval": (5, "HealthCheckIntervalSeconds (TCP checks)"),
    "unhealthy_threshold": (2, "UnhealthyThresholdCount"),
    "time_scale": (5.0, "Metadata.Lab.TimeScale (5: checks every second)"),
    "warmup": (4.0, "seconds of load before the first SET"),
    "gap": (3.0, "seconds between two victims' SETs down"),
    "hold": (6.0, "seconds each interface stays down"),
    "tail": (4.0, "seconds of load after the last SET up"),
    "request_timeout": (1.0, "per-request timeout of the load client, seconds"),
    "seed": (None, "recorded for re-runs"),
}
PORT = 80
IF_ADMIN = "IF-MIB::ifAdminStatus.2"  # eth0 of a lab host (lo is 1)
WRITER = "ops"


def _template(params: dict[str, Any], per_az: tuple[int, int]) -> tuple[str, dict[str, str]]:
    health = {
        "HealthCheckProtocol": "TCP",
        "HealthCheckIntervalSeconds": params["interval"],
        "HealthCheckTimeoutSeconds": max(2, int(params["interval"]) - 1),
        "HealthyThresholdCount": 2,
        "UnhealthyThresholdCount": params["unhealthy_threshold"],
    }
    body = nlb_stack(
        per_az,
        clients=1,
        port=PORT,
        health=health,
        description="snmp_faults experiment: NLB, interfaces SET down by SNMP",
    )
    write = {
        "User": WRITER,
        "AuthPassword": secrets.token_hex(8),
        "PrivPassword": secrets.token_hex(8),
    }
    head = (
        "Metadata:\n  Lab:\n"
        f"    TimeScale: {float(params['time_scale']):g}\n"
        "    Snmp:\n"
        f"      Write: {{User: {write['User']}, AuthPassword: {write['AuthPassword']}, "
        f"PrivPassword: {write['PrivPassword']}}}\n"
    )
    return head + body, write


def run(params: dict[str, Any], results: ResultsDir) -> dict[str, Any]:
    """SET victims' interfaces down and up under load; the summary for meta.json."""
    import pandas as pd

    per_az = (params["targets_per_az"], params["targets_per_az"])
    names = target_names(per_az)
    everyone = [t for ts in names.values() for t in ts]
    count = int(params["victims"])
    if not 1 <= count < len(everyone):
        raise BadInput(f"victims must be 1 to {len(everyone) - 1} (one target must stay up)")
    victims = [everyone[i] for i in range(count)]
    text, _ = _template(params, per_az)
    template = write_stack(results, text)
    with Lab.up(template, params={"CrossZone": "true"}, name=random_name("sf")) as lab:
        healthy_s = lab.wait_healthy(TARGET_GROUP, everyone)
        # The manager runs in a target that stays up (the first one of the VPC would be a
        # victim, unreachable once its interface is down).
        sets, requests = _under_load(lab, params, victims, spare=everyone[-1])
        traps, _ = read_traps(lab.dir)
        transitions = lab.target_events()
        lab_name = lab.name
    print(f"lab {lab_name}: targets healthy after {healthy_s:.1f} s", flush=True)
    requests.to_csv(results.file("requests.csv"), index=False)
    pd.DataFrame(
        [
            {k: v for k, v in t.items() if k != "varbinds"} | {"varbinds": str(t["varbinds"])}
            for t in traps
        ]
    ).to_csv(results.file("traps.csv"), index=False)
    timeline, summary = _analyse(sets, traps, transitions, requests, victims)
    timeline.to_csv(results.file("timeline.csv"), index=False)
    summary.to_csv(results.file("summary.csv"), index=False)
    results.write_meta(template=template, lab=lab_name, victims=victims, sets=sets)
    print("\ntimeline (s from each victim's SET down):")
    print(timeline.to_string(index=False))
    print("\nper victim:")
    print(summary.to_string(index=False))
    return {
        "victims": victims,
        "first_signal": summary["first_signal"].tolist(),
        "unhealthy_s": summary["unhealthy_s"].tolist(),
        "linkdown_received_s": summary["linkdown_received_s"].tolist(),
        "first_error_s": summary["first_error_s"].tolist(),
    }


def _set(lab: Lab, host: str, value: int, vantage: str | None = None) -> float:
    """SET ifAdminStatus; the time the agent answered."""
    done = set_object(lab.name, host, IF_ADMIN, str(value), "i", vantage_host=vantage)
    if done.row["error"]:
        raise BadInput(f"SET {IF_ADMIN} = {value} on {host}: {done.row['error']}")
    return float(done.row["time"])


def _under_load(
    lab: Lab, params: dict[str, Any], victims: list[str], spare: str
) -> tuple[dict[str, dict[str, float]], Any]:
    node = node_addresses(lab)["us-east-1a"]
    gap, hold = float(params["gap"]), float(params["hold"])
    # Each SET takes a few seconds of manager start-up: budget generously, the client stops
    # by itself at the end.
    duration = params["warmup"] + len(victims) * (gap + 8) + hold + 8 + params["tail"]
    print(f"load: {params['rate']:g} req/s to {node} for up to {duration:.0f} s", flush=True)
    sets: dict[str, dict[str, float]] = {v: {} for v in victims}
    with background_load(lab, f"http://{node}/", params, duration, "snmp-faults-load") as load:
        time.sleep(params["warmup"])
        for victim in victims:
            sets[victim]["down"] = _set(lab, victim, 2, vantage=spare)
            print(f"  {victim}: ifAdminStatus down(2)", flush=True)
            time.sleep(gap)
        for victim in victims:
            left = sets[victim]["down"] + hold - time.time()
            if left > 0:
                time.sleep(left)
            sets[victim]["up"] = _set(lab, victim, 1, vantage=victim)
            print(f"  {victim}: ifAdminStatus up(1)", flush=True)
        for victim in victims:
            lab.wait_target_state(TARGET_GROUP, victim, "healthy", 30)
    return sets, load["rows"]


def _analyse(
    sets: dict[str, dict[str, float]],
    traps: list[dict[str, Any]],
    transitions: list[Any],
    requests: Any,
    victims: list[str],
) -> tuple[Any, Any]:
    import pandas as pd

    rows, summary = [], []
    for victim in victims:
        down, up = sets[victim]["down"], sets[victim]["up"]
        key = f"{victim}:{PORT}"

        def first(times: list[float], after: float) -> float | None:
            later = [t for t in times if t >= after]
            return min(later) if later else None

        mine = [t for t in traps if t["agent"] == victim]
        link_down = [t for t in mine if t["trap"] == "linkDown" and t["sent"] >= down - 0.5]
        made = min((t["sent"] for t in link_down), default=None)
        received = min((t["received"] for t in link_down), default=None)
        link_up = first([t["received"] for t in mine if t["trap"] == "linkUp"], up)
        unhealthy = first(
            [e["time"] for e in transitions if e["target"] == key and e["new"] == "unhealthy"],
            down,
        )
        healthy = first(
            [e["time"] for e in transitions if e["target"] == key and e["new"] == "healthy"], up
        )
        errors = requests[(requests["error"].fillna("") != "") & (requests["start"] >= down)]
        first_error = float(errors["start"].min()) if len(errors) else None
        signals = {
            "set down": down,
            "first request error (started)": first_error,
            "linkDown made (agent)": made,
            "unhealthy (health checks)": unhealthy,
            "set up": up,
            "linkUp received": link_up,
            "linkDown received": received,
            "healthy again": healthy,
        }
        for name, when in signals.items():
            rows.append(
                {
                    "victim": victim,
                    "signal": name,
                    "time": when,
                    "after_set_s": None if when is None else round(when - down, 3),
                }
            )

        def gap(when: float | None, down: float = down) -> float | None:
            return None if when is None else round(when - down, 3)

        detected = {
            "health checks": unhealthy,
            "request error": first_error,
            "linkDown trap": received,
        }
        known = {k: v for k, v in detected.items() if v is not None}
        summary.append(
            {
                "victim": victim,
                "first_error_s": gap(first_error),
                "unhealthy_s": gap(unhealthy),
                "linkdown_made_s": gap(made),
                "linkdown_received_s": gap(received),
                "linkdown_late_s": None
                if received is None or made is None
                else round(received - made, 3),
                "linkup_after_up_s": None if link_up is None else round(link_up - up, 3),
                "healthy_after_up_s": None if healthy is None else round(healthy - up, 3),
                "first_signal": min(known, key=lambda k: known[k]) if known else "",
            }
        )
    timeline = pd.DataFrame(rows).sort_values(["victim", "time"], na_position="last")
    return timeline, pd.DataFrame(summary)
