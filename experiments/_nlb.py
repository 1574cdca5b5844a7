"""Shared pieces of the NLB experiments: the generated stack, target health, lab event logs.

Each experiment writes its own stack (from `nlb_stack`) into its results directory so that a
run can be repeated from the files alone; the helpers here wait for target health and turn a
lab's target-events.jsonl and fault events into TARGET_EVENT_COLUMNS rows.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from experiments._stacks import AZ_LETTERS, ref, two_az_vpc
from testbed.errors import LabError
from testbed.schemas import TARGET_EVENT_COLUMNS

LB = "MyNLB"
TARGET_GROUP = "WebTargets"
FAULT_STATES = {"FAULT_INJECTED": "fault-injected", "FAULT_CLEARED": "fault-cleared"}


def target_names(per_az: tuple[int, int]) -> dict[str, list[str]]:
    """Instance names per AZ letter: {"A": ["WebA1", ...], "B": ["WebB1", ...]}."""
    return {letter: [f"Web{letter}{i}" for i in range(1, count + 1)]
            for letter, count in zip(AZ_LETTERS, per_az)}


def nlb_stack(per_az: tuple[int, int], clients: int = 2, port: int = 80,
              health: dict[str, Any] | None = None,
              tg_attributes: dict[str, str] | None = None,
              description: str = "NLB experiment stack") -> str:
    """A CloudFormation template (YAML): VPC over two AZs, internet-facing NLB with one TCP
    listener on `port`, per_az[i] http-backend instances in AZ i's private subnet, clients.

    The template has a CrossZone parameter ("false" by default, as on AWS); `health` holds
    TargetGroup HealthCheck* properties and thresholds, `tg_attributes` its
    TargetGroupAttributes (e.g. deregistration_delay.timeout_seconds).
    """
    import yaml

    res = two_az_vpc()
    names = target_names(per_az)
    for letter, hosts in names.items():
        for host in hosts:
            res[host] = {"Type": "AWS::EC2::Instance",
                         "Metadata": {"Lab": {"Role": "http-backend"}},
                         "Properties": {"SubnetId": ref(f"PrivateSubnet{letter}"),
                                        "InstanceType": "t3.micro"}}
    res[LB] = {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "Properties": {
        "Type": "network", "Scheme": "internet-facing",
        "Subnets": [ref(f"PublicSubnet{letter}") for letter in AZ_LETTERS],
        "LoadBalancerAttributes": [{"Key": "load_balancing.cross_zone.enabled",
                                    "Value": ref("CrossZone")}]}}
    tg: dict[str, Any] = {"Protocol": "TCP", "Port": port, "VpcId": ref("VPC"),
                          "TargetType": "instance", **(health or {}),
                          "Targets": [{"Id": ref(h)} for hs in names.values() for h in hs]}
    if tg_attributes:
        tg["TargetGroupAttributes"] = [{"Key": k, "Value": str(v)}
                                       for k, v in tg_attributes.items()]
    res[TARGET_GROUP] = {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup", "Properties": tg}
    res["WebListener"] = {"Type": "AWS::ElasticLoadBalancingV2::Listener", "Properties": {
        "LoadBalancerArn": ref(LB), "Protocol": "TCP", "Port": port,
        "DefaultActions": [{"Type": "forward", "TargetGroupArn": ref(TARGET_GROUP)}]}}
    for k in range(1, clients + 1):
        res[f"Client{k}"] = {"Type": "Lab::Internet::Client"}
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": description,
        "Parameters": {"CrossZone": {"Type": "String", "Default": "false",
                                     "AllowedValues": ["true", "false"],
                                     "Description": "Cross-zone load balancing of the NLB"}},
        "Resources": res,
        "Outputs": {"NlbDnsName": {"Value": {"Fn::GetAtt": [LB, "DNSName"]}}},
    }
    return yaml.safe_dump(template, sort_keys=False, width=100, default_flow_style=None)


def write_stack(results: Any, text: str, name: str = "stack.yaml") -> str:
    """Write a generated template into the results directory; its path as a string."""
    path = Path(results.file(name))
    path.write_text(text)
    return str(path)


def node_addresses(lab: Any, lb: str = LB) -> dict[str, str]:
    """Public address of each node of `lb`, by AZ (where internet clients connect)."""
    for entry in lab.state.get("load_balancers", []):
        if entry["name"] == lb:
            return {n["az"]: n["public_ip"] for n in entry["nodes"]}
    raise LabError(f"lab {lab.name} has no load balancer {lb}")


def target_health(lab: Any, tg: str = TARGET_GROUP) -> dict[str, str]:
    """{instance: state} of the target group's registered targets."""
    from testbed.cli.targets import describe

    return {row["Target"]["Id"].removeprefix("i-"): row["TargetHealth"]["State"]
            for row in describe(lab.name, tg)}


def wait_healthy(lab: Any, expected: list[str], timeout: float = 60.0,
                 tg: str = TARGET_GROUP) -> float:
    """Wait until every expected target is healthy; the seconds it took.

    Measurements must wait for this: the NLB sends new flows to healthy targets only when
    some are healthy, so a half-checked group would skew every share.
    """
    t0 = time.monotonic()
    states: dict[str, str] = {}
    while time.monotonic() - t0 < timeout:
        states = target_health(lab, tg)
        if all(states.get(t) == "healthy" for t in expected):
            return time.monotonic() - t0
        time.sleep(0.2)
    raise LabError(f"targets not healthy after {timeout:.0f} s: {states}")


def target_events(lab: Any, since: float = 0.0) -> list[dict[str, Any]]:
    """The lab's target health transitions (TARGET_EVENT_COLUMNS) at or after `since`."""
    path = lab.dir / "target-events.jsonl"
    rows = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line being written right now
        if event["time"] >= since:
            rows.append({c: event.get(c, "") for c in TARGET_EVENT_COLUMNS})
    return rows


def fault_events(lab: Any, port: int, tg: str = TARGET_GROUP, lb: str = LB
                 ) -> list[dict[str, Any]]:
    """The lab's fault injections and repairs as target events ("fault-injected" /
    "fault-cleared"), keyed like the target's health events so testbed.analysis pairs them."""
    rows = []
    for ev in lab.events():
        state = FAULT_STATES.get(ev.status)
        if ev.resource_type == "Lab::Fault" and state:
            rows.append({"time": ev.time, "load_balancer": lb, "target_group": tg,
                         "target": f"{ev.logical_id}:{port}", "old": "", "new": state,
                         "reason": ev.reason})
    return rows


def wait_event(lab: Any, target: str, state: str, since: float, timeout: float,
               poll: float = 0.05) -> float | None:
    """Time of `target`'s first transition to `state` at or after `since`, or None."""
    deadline = time.monotonic() + timeout
    while True:
        for row in target_events(lab, since):
            if row["target"] == target and row["new"] == state:
                return float(row["time"])
        if time.monotonic() >= deadline:
            return None
        time.sleep(poll)


def write_events_csv(rows: list[dict[str, Any]], path: Path) -> Any:
    """target_events.csv (TARGET_EVENT_COLUMNS, by time); the DataFrame written."""
    import pandas as pd

    df = pd.DataFrame(rows, columns=list(TARGET_EVENT_COLUMNS))
    df = df.sort_values("time", kind="stable", ignore_index=True)
    df.to_csv(path, index=False)
    return df


def deregister(lab: Any, target: str, tg: str = TARGET_GROUP) -> dict[str, Any]:
    """Deregister an instance from a target group through the lab's holder (as the CLI does)."""
    from testbed.lab import rpc
    from testbed.lab.holder import HOLDER_SOCK

    reply = rpc.call(str(lab.dir / HOLDER_SOCK), {"op": "deregister", "tg": tg, "lb": None,
                                                  "target": target, "port": None}, timeout=15)
    if not reply.get("ok"):
        raise LabError(f"deregister {target} from {tg}: {reply.get('error')}")
    return reply
