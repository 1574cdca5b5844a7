"""The Auto Scaling service's wiring, without a lab: a fake launcher, fake target registry and a
fake clock drive the real group, alarm and policy logic through the service's ticks and its
holder ops."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from testbed.autoscaling import service as service_mod
from testbed.autoscaling.sampling import (
    Datapoint,
    InstanceRef,
    LbRef,
    Readers,
    Sampler,
)
from testbed.autoscaling.service import AutoScalingService
from testbed.errors import LabError
from testbed.model.autoscaling_types import AutoScalingGroup, LaunchSpec

SUBNETS = {"SubA": "us-east-1a", "SubB": "us-east-1b"}


@dataclass
class FakeHost:
    name: str
    az: str
    subnet: str
    instance_id: str
    asg: str
    ip: str = "10.0.0.9"


@dataclass
class FakeLauncher:
    ready: set[str] = field(default_factory=set)
    dead: set[str] = field(default_factory=set)
    failing: set[str] = field(default_factory=set)
    batches: list[list[str]] = field(default_factory=list)
    hosts: dict[str, FakeHost] = field(default_factory=dict)
    terminated: list[str] = field(default_factory=list)

    def launch_many(self, hosts: list[Any]) -> list[Any]:
        self.batches.append([h.name for h in hosts])
        out: list[Any] = []
        for h in hosts:
            if h.name in self.failing:
                out.append(LabError(f"{h.name}: no free address"))
            else:
                self.hosts[h.name] = h
                out.append(SimpleNamespace(host=h))
        return out

    def role_ready(self, name: str) -> bool:
        return name in self.hosts and name not in self.dead

    def alive(self, name: str) -> bool:
        return name in self.hosts and name not in self.dead

    def terminate(self, name: str) -> None:
        self.hosts.pop(name)
        self.terminated.append(name)


@dataclass
class FakeTargets:
    """One ALB "Lb" using target group "Tg"; states set by the test."""

    states: dict[str, str] = field(default_factory=dict)  # host -> state

    def lbs_using(self, tg: str) -> list[str]:
        return ["Lb"] if tg == "Tg" else []

    def register_host(self, tg: str, host: Any) -> list[str]:
        self.states[host.name] = "initial"
        return [f"{host.name}:80"]

    def deregister_host(self, tg: str, host: str) -> list[str]:
        self.states[host] = "draining"
        return [f"{host}:80"]

    def host_states(self, host: str, tg: str | None = None) -> dict[tuple[str, str], str]:
        return {("Lb", "Tg"): self.states[host]} if host in self.states else {}


def group_model(**changes: Any) -> AutoScalingGroup:
    spec = LaunchSpec("Lt", "launch-template", 1, "ami-1", "t3.micro", None)
    values: dict[str, Any] = {
        "logical_id": "Web",
        "name": "lab-Web-ABC",
        "min_size": 1,
        "max_size": 4,
        "desired": 2,
        "subnets": tuple(SUBNETS),
        "azs": tuple(SUBNETS.values()),
        "launch": spec,
        "target_groups": ("Tg",),
        "health_check_type": "ELB",
        "health_check_grace_s": 0.0,
    }
    values.update(changes)
    return AutoScalingGroup(**values)


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def rig(monkeypatch):
    """A service over one group (Min 1, Max 4, Desired 2, ELB health, target group Tg)."""

    def launch_host(plan, model, group, subnet, name, instance_id):
        return FakeHost(name, SUBNETS[subnet], subnet, instance_id, group)

    monkeypatch.setattr(service_mod, "launch_host", launch_host)
    monkeypatch.setattr(service_mod, "with_host", lambda plan, host: plan)
    events: list[tuple[str, str, str, str]] = []
    launcher, targets, clock = FakeLauncher(), FakeTargets(), Clock()

    def make(**changes: Any) -> AutoScalingService:
        model = SimpleNamespace(
            lab=SimpleNamespace(time_scale=10.0),
            subnets={k: SimpleNamespace(az=v) for k, v in SUBNETS.items()},
            auto_scaling_groups={"Web": group_model(**changes)},
            alarms={},
            scaling_policies={},
            scheduled_actions={},
            extras={},
        )
        svc = AutoScalingService(
            "lab",
            model,  # type: ignore[arg-type]
            launcher,
            targets,
            lambda *e: events.append(e),
            get_plan=lambda: SimpleNamespace(hosts=list(launcher.hosts.values())),  # type: ignore[arg-type,return-value]
            clock=clock,
        )
        return svc

    return SimpleNamespace(
        make=make, launcher=launcher, targets=targets, clock=clock, events=events
    )


def ticks(svc: AutoScalingService, clock: Clock, n: int = 3, dt: float = 0.5) -> None:
    for _ in range(n):
        clock.t += dt
        svc.tick()


def instances(svc: AutoScalingService) -> list[dict[str, Any]]:
    return svc.handle({"op": "asg_describe", "group": "Web"})["groups"][0]["Instances"]


def test_initial_capacity_launches_in_one_batch_across_azs_and_registers(rig):
    svc = rig.make()
    ticks(svc, rig.clock)
    assert rig.launcher.batches == [["Web-1", "Web-2"]]
    rows = instances(svc)
    assert sorted(r["AvailabilityZone"] for r in rows) == ["us-east-1a", "us-east-1b"]
    assert {r["LifecycleState"] for r in rows} == {"InService"}
    assert rig.targets.states == {"Web-1": "initial", "Web-2": "initial"}
    svc.wait_created(["Web"], timeout=1)
    done = [e for e in rig.events if e[2] == "CREATE_COMPLETE"]
    assert done == [
        (
            "Web",
            service_mod.GROUP_TYPE,
            "CREATE_COMPLETE",
            "2 instances InService in us-east-1a, us-east-1b",
        )
    ]
    activities = [e for e in rig.events if e[2] == "SCALING_ACTIVITY"]
    assert any("Launching a new EC2 instance" in e[3] and "Successful" in e[3] for e in activities)


def test_set_capacity_outside_the_bounds_is_bad_input_with_aws_words(rig):
    svc = rig.make()
    reply = svc.handle({"op": "asg_set_capacity", "group": "Web", "desired": 9})
    assert reply["ok"] is False
    assert reply["bad_input"] is True
    assert "New SetDesiredCapacity value 9 is above max value 4" in reply["error"]
    reply = svc.handle({"op": "asg_set_capacity", "group": "nope", "desired": 1})
    assert reply["bad_input"]
    assert "Web (lab-Web-ABC)" in reply["error"]


def test_group_found_by_name_too(rig):
    svc = rig.make()
    reply = svc.handle({"op": "asg_describe", "group": "lab-Web-ABC"})
    assert reply["groups"][0]["LogicalId"] == "Web"
    assert reply["time_scale"] == 10.0


def test_scale_in_drains_then_terminates(rig):
    svc = rig.make()
    ticks(svc, rig.clock)
    reply = svc.handle({"op": "asg_set_capacity", "group": "Web", "desired": 1})
    assert reply["ok"]
    assert reply["group"]["DesiredCapacity"] == 1
    ticks(svc, rig.clock)
    draining = [h for h, s in rig.targets.states.items() if s == "draining"]
    assert len(draining) == 1
    assert rig.launcher.terminated == []
    del rig.targets.states[draining[0]]  # the deregistration delay ended
    ticks(svc, rig.clock)
    assert rig.launcher.terminated == draining
    states = {r["Host"]: r["LifecycleState"] for r in instances(svc)}
    assert states[draining[0]] == "Terminated"


def test_elb_unhealthy_instance_is_replaced_launch_first(rig):
    svc = rig.make()
    ticks(svc, rig.clock)
    rig.targets.states["Web-1"] = "unhealthy"
    ticks(svc, rig.clock, n=1)
    assert rig.launcher.batches[-1] == ["Web-3"]
    ticks(svc, rig.clock, n=2)
    assert "Web-1" in [h for h, s in rig.targets.states.items() if s == "draining"]
    health = {r["Host"]: r["HealthStatus"] for r in instances(svc)}
    assert health["Web-1"] == "Unhealthy"


def test_dead_host_is_an_ec2_health_failure(rig):
    svc = rig.make()
    ticks(svc, rig.clock)
    rig.launcher.dead.add("Web-2")
    ticks(svc, rig.clock, n=1)
    assert "Web-3" in rig.launcher.batches[-1]


def test_a_failed_launch_fails_the_creation(rig):
    rig.launcher.failing.update({"Web-1", "Web-2"})
    svc = rig.make()
    ticks(svc, rig.clock, n=1)
    with pytest.raises(LabError, match="no free address"):
        svc.wait_created(["Web"], timeout=1)
    assert [e[2] for e in rig.events if e[0] == "Web"][-1] == "CREATE_FAILED"


def test_activities_newest_first_with_limit(rig):
    svc = rig.make()
    ticks(svc, rig.clock)
    acts = svc.handle({"op": "asg_activities", "group": "Web", "limit": 1})["activities"]
    assert len(acts) == 1
    assert acts[0]["StatusCode"] == "Successful"


def test_group_view_counts_in_service(rig):
    svc = rig.make()
    ticks(svc, rig.clock)
    view = svc.groups["Web"].view(rig.clock.t)
    assert (view.desired, view.in_service, len(view.instances)) == (2, 2, 2)


# ---- sampling ----------------------------------------------------------------------------
def test_sampler_turns_counters_into_per_tick_datapoints():
    cpu = {"Web-1": 1.0}
    ports = {"Web-1": {"port": 3, "rx_bytes": 100, "tx_bytes": 1000}}
    backend = {"req_tot": "10"}
    states = {("Lb", "Tg"): ["healthy", "healthy", "draining"]}
    readers = Readers(
        cpu_seconds=lambda host: cpu.get(host),
        ports=lambda: ports,  # type: ignore[arg-type,return-value]
        alb_rows=lambda lb: [[{"pxname": "tg_Tg", "svname": "BACKEND", **backend}]],
        target_states=lambda: states,
    )
    sampler = Sampler(readers, [LbRef("Lb", "application", "app/lb/1", {"Tg": "targetgroup/tg/2"})])
    ref = InstanceRef("Web-1", "i-1", "grp")
    first = sampler.sample(100.0, [ref])
    assert not [d for d in first if d.metric in ("CPUUtilization", "NetworkIn", "RequestCount")]
    cpu["Web-1"] = 1.5  # half a CPU second in one second
    ports["Web-1"] = {"port": 3, "rx_bytes": 300, "tx_bytes": 5000}
    backend["req_tot"] = "30"
    second = sampler.sample(101.0, [ref])

    def value(metric: str, **dims: str) -> float:
        return next(d.value for d in second if d.metric == metric and dict(d.dimensions) == dims)

    assert value("CPUUtilization", InstanceId="i-1") == pytest.approx(50.0)
    assert value("NetworkIn", AutoScalingGroupName="grp") == 4000
    assert value("NetworkOut", InstanceId="i-1") == 200
    assert value("RequestCount", LoadBalancer="app/lb/1", TargetGroup="targetgroup/tg/2") == 20
    assert value("RequestCountPerTarget", TargetGroup="targetgroup/tg/2") == 10
    assert value("HealthyHostCount", LoadBalancer="app/lb/1", TargetGroup="targetgroup/tg/2") == 2
    group_cpu = next(
        d for d in second if d.metric == "CPUUtilization" and "AutoScalingGroupName" in d.dimensions
    )
    assert group_cpu.source == "i-1"  # the store averages per instance


def test_a_warming_instance_stays_out_of_the_group_series():
    # With DefaultInstanceWarmup, AWS leaves a warming instance out of the group's metrics.
    cpu = {"Web-1": 1.0, "Web-2": 1.0}
    readers = Readers(
        cpu_seconds=lambda host: cpu.get(host),
        ports=dict,
        alb_rows=lambda lb: [],
        target_states=dict,
    )
    sampler = Sampler(readers, [])
    refs = [InstanceRef("Web-1", "i-1", "grp"), InstanceRef("Web-2", "i-2", "grp", warming=True)]
    sampler.sample(100.0, refs)
    cpu.update({"Web-1": 1.5, "Web-2": 2.0})
    points = sampler.sample(101.0, refs)
    group = [d.source for d in points if "AutoScalingGroupName" in d.dimensions]
    own = [d.source for d in points if "InstanceId" in d.dimensions]
    assert group == ["i-1"]
    assert sorted(own) == ["i-1", "i-2"]


def test_an_idle_load_balancer_reports_no_request_datapoint():
    # AWS reports request metrics only while requests flow: idle is missing data, not 0.
    backend = {"req_tot": "10"}
    readers = Readers(
        cpu_seconds=lambda host: None,
        ports=dict,
        alb_rows=lambda lb: [[{"pxname": "tg_Tg", "svname": "BACKEND", **backend}]],
        target_states=lambda: {("Lb", "Tg"): ["healthy"]},
    )
    sampler = Sampler(readers, [LbRef("Lb", "application", "app/lb/1", {"Tg": "tg"})])
    sampler.sample(100.0, [])
    idle = sampler.sample(101.0, [])
    assert not [d for d in idle if d.metric.startswith("RequestCount")]
    backend["req_tot"] = "12"
    busy = sampler.sample(102.0, [])
    assert {d.metric for d in busy if d.metric.startswith("RequestCount")} == {
        "RequestCount",
        "RequestCountPerTarget",
    }


def test_sampler_survives_a_source_that_is_down():
    def down() -> Any:
        raise OSError("controller restarting")

    readers = Readers(
        cpu_seconds=lambda host: None,
        ports=down,
        alb_rows=lambda lb: down(),
        target_states=down,
    )
    sampler = Sampler(readers, [LbRef("Lb", "application", "app/lb/1", {"Tg": "tg"})])
    points = sampler.sample(1.0, [InstanceRef("h", "i-1", "g")])
    assert all(isinstance(p, Datapoint) for p in points)
    assert {p.metric for p in points} == {"HealthyHostCount", "UnHealthyHostCount"}
