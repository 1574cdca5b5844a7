"""`testbed update` resource by resource on a real lab (issue 14): an instance added in the
middle of a template (the others keep their addresses and ports), one replaced for a
property AWS replaces it for (ImageId: drained, then its successor), one removed (drained in
the cleanup), a saved plan applied and a stale one refused, and a failing update (an added
instance whose role cannot start) rolled back to an identical lab."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from testbed import naming
from testbed.cli import main
from testbed.errors import BadInput
from testbed.errors import TestbedError as Failed
from testbed.lab import system
from testbed.lab.api import Lab
from testbed.lab.events import Event
from testbed.paths import TEMPLATES

pytestmark = pytest.mark.integration

ALB = (TEMPLATES / "alb.yaml").read_text()
PARAMS = {"DeregistrationDelay": "2"}
STACK = "AWS::CloudFormation::Stack"
CFN_STATUS = re.compile(r"(CREATE|UPDATE|DELETE|ROLLBACK)_")
VOLATILE = re.compile(r"(duration|n_packets|n_bytes|idle_age|hard_age)=[^,]*, ?")

WEB_A2 = """  WebA2:
    Type: AWS::EC2::Instance
    Metadata: {Lab: {Role: http-backend}}
    Properties:
      SecurityGroupIds: [!Ref InstanceSecurityGroup]
      SubnetId: !Ref PrivateSubnetA
      InstanceType: t3.micro
"""
BROKEN = """  Broken:
    Type: AWS::EC2::Instance
    Metadata: {Lab: {Role: http-backend, RoleArgs: {Port: 70000}}}
    Properties:
      SecurityGroupIds: [!Ref InstanceSecurityGroup]
      SubnetId: !Ref PrivateSubnetA
      InstanceType: t3.micro
"""


def with_web_a2(text: str) -> str:
    """WebA2 right after WebA1 (before ApiA1 and StaticA1 of the same subnet) and in
    WebTargets."""
    text = text.replace("  WebB1:\n", WEB_A2 + "  WebB1:\n", 1)
    return text.replace(
        "        - {Id: !Ref WebA1}\n",
        "        - {Id: !Ref WebA1}\n        - {Id: !Ref WebA2}\n",
        1,
    )


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def hosts_by_name(lab: Lab) -> dict[str, dict]:
    return {h["name"]: h for h in lab.state["hosts"]}


def lab_flows(lab: Lab) -> dict[str, list[str]]:
    out = {}
    for br in system.run(["ovs-vsctl", "list-br"]).stdout.split():
        if br.startswith(naming.prefix(lab.name)):
            for what in ("dump-flows", "dump-groups"):
                text = system.run(["ovs-ofctl", "-O", "OpenFlow13", what, br]).stdout
                out[f"{br} {what}"] = sorted(
                    VOLATILE.sub("", line).strip() for line in text.splitlines()[1:]
                )
    return out


def registered(lab: Lab) -> list[tuple[str, str, str]]:
    return sorted(
        (r["TargetGroup"], str(r["Target"]["Id"]), r["TargetHealth"]["State"])
        for r in lab.targets()
    )


def ports(lab: Lab) -> dict[str, tuple[str, int]]:
    return {h.name: (h.ip, h.port) for h in lab.plan.hosts}


def netns_pids(lab: Lab, host: str) -> set[str]:
    return set(system.run(["ip", "netns", "pids", lab.host(host).info["netns"]]).stdout.split())


def statuses(events: list[Event], lid: str, since: float) -> list[str]:
    """The CloudFormation statuses of `lid` since `since` (not the lab's own events: roles,
    SNMP agents, target health)."""
    return [
        e.status
        for e in events
        if e.logical_id == lid and e.time >= since and CFN_STATUS.match(e.status)
    ]


def served_by(lab: Lab, url: str, tries: int = 30) -> set[str]:
    seen = set()
    for _ in range(tries):
        proc = lab.host("Client1").run(["curl", "-s", "-m", "3", url], timeout=10)
        if proc.returncode == 0 and proc.stdout.startswith("{"):
            seen.add(json.loads(proc.stdout)["instance"])
    return seen


def test_add_replace_remove_and_roll_back(tmp_path):
    with Lab.up(str(TEMPLATES / "alb.yaml"), PARAMS) as lab:
        lab.wait_healthy("WebTargets", timeout=60)
        url = f"http://{lab.state['load_balancers'][0]['nodes'][0]['public_ip']}/"
        before = ports(lab)

        # 1. Add WebA2 in the middle of the template: the others keep address and port.
        t0 = lab.events()[-1].time
        added = with_web_a2(ALB)
        reply = lab.update(write(tmp_path, "added.yaml", added), PARAMS)
        assert "hosts.WebA2: added" in reply["changes"]
        assert statuses(lab.events(), "WebA2", t0) == ["CREATE_IN_PROGRESS", "CREATE_COMPLETE"]
        assert statuses(lab.events(), lab.name, t0)[-1] == "UPDATE_COMPLETE"
        after = ports(lab)
        for name, where in before.items():
            assert after[name] == where, name
        assert lab.state["state"] == "UPDATE_COMPLETE"
        lab.wait_healthy("WebTargets", targets=["WebA1", "WebA2", "WebB1"], timeout=60)
        assert "WebA2" in served_by(lab, url)

        # 2. A saved plan: applied once; the same plan again is stale (exit 2).
        replaced = added.replace(
            "SubnetId: !Ref PrivateSubnetB, InstanceType: t3.micro}\n  ApiA1:",
            "SubnetId: !Ref PrivateSubnetB, InstanceType: t3.micro, ImageId: ami-0abc1234}\n"
            "  ApiA1:",
            1,
        )
        assert replaced != added
        new_path = write(tmp_path, "replaced.yaml", replaced)
        plan_file = str(tmp_path / "plan.json")
        params = [f"-p{k}={v}" for k, v in PARAMS.items()]
        assert main(["plan", lab.name, new_path, *params, "--out", plan_file]) == 0
        doc = json.loads(Path(plan_file).read_text())
        change = next(
            c["ResourceChange"]
            for c in doc["ChangeSet"]["Changes"]
            if c["ResourceChange"]["LogicalResourceId"] == "WebB1"
        )
        assert change["Replacement"] == "True"
        old_pids = netns_pids(lab, "WebB1")
        t1 = lab.events()[-1].time
        assert main(["update", lab.name, "--plan", plan_file]) == 0
        web_b1 = statuses(lab.events(), "WebB1", t1)
        assert web_b1[:2] == ["UPDATE_IN_PROGRESS", "UPDATE_COMPLETE"], web_b1
        assert web_b1[-1] == "DELETE_COMPLETE"  # the old one, in the cleanup
        stack = statuses(lab.events(), lab.name, t1)
        assert stack[-2:] == ["UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_COMPLETE"], stack
        assert ports(lab)["WebB1"] == before["WebB1"]  # its successor, on its port
        assert not netns_pids(lab, "WebB1") & old_pids
        lab.wait_healthy("WebTargets", targets=["WebA1", "WebA2", "WebB1"], timeout=60)
        assert main(["update", lab.name, "--plan", plan_file]) == 2  # the lab changed since

        # 3. Remove ApiB1 (and from ApiTargets): drained, then gone in the cleanup.
        removed = replaced.replace("        - {Id: !Ref ApiB1}\n", "", 1)
        start = removed.index("  ApiB1:\n")
        end = removed.index("  StaticA1:\n")
        removed = removed[:start] + removed[end:]
        t2 = lab.events()[-1].time
        lab.update(write(tmp_path, "removed.yaml", removed), PARAMS)
        assert statuses(lab.events(), "ApiB1", t2) == ["DELETE_IN_PROGRESS", "DELETE_COMPLETE"]
        assert "ApiB1" not in hosts_by_name(lab)
        assert "ApiB1" not in lab.target_states("ApiTargets")

        # 4. A failing update: an instance whose role cannot start -> rolled back, identical.
        lab.wait_healthy("WebTargets", timeout=60)
        snapshot = (hosts_by_name(lab), lab_flows(lab), registered(lab))
        broken = removed.replace("  WebB1:\n", BROKEN + "  WebB1:\n", 1)
        t3 = lab.events()[-1].time
        with pytest.raises(Failed) as failed:
            lab.update(write(tmp_path, "broken.yaml", broken), PARAMS)
        assert not isinstance(failed.value, BadInput)
        assert "rolled back" in str(failed.value)
        assert statuses(lab.events(), "Broken", t3) == ["CREATE_IN_PROGRESS", "CREATE_FAILED"]
        assert statuses(lab.events(), lab.name, t3)[-3:] == [
            "UPDATE_ROLLBACK_IN_PROGRESS",
            "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
            "UPDATE_ROLLBACK_COMPLETE",
        ]
        assert lab.state["state"] == "UPDATE_ROLLBACK_COMPLETE"
        assert (hosts_by_name(lab), lab_flows(lab), registered(lab)) == snapshot
        assert "Broken" not in {h.name for h in lab.hosts}


# ---- a load balancer gains and loses an Availability Zone ----------------------------------
LB_PARAMS = """  ThreeAzs:
    Type: String
    Default: "false"
    AllowedValues: ["true", "false"]
    Description: Whether the load balancers use the third AZ's public subnet.

Conditions:
  UseThree: !Equals [!Ref ThreeAzs, "true"]

Mappings:"""
LB_RESOURCES = """
  Alb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties:
      Type: application
      SecurityGroups: [!Ref InstanceSecurityGroup]
      Subnets: !If [UseThree, [!Ref PublicSubnetA, !Ref PublicSubnetB, !Ref PublicSubnetC],
                    [!Ref PublicSubnetA, !Ref PublicSubnetB]]
  Nlb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties:
      Type: network
      Subnets: !If [UseThree, [!Ref PublicSubnetA, !Ref PublicSubnetB, !Ref PublicSubnetC],
                    [!Ref PublicSubnetA, !Ref PublicSubnetB]]
  AlbTargets:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      Protocol: HTTP
      Port: 80
      VpcId: !Ref VPC
      HealthCheckIntervalSeconds: 5
      HealthCheckTimeoutSeconds: 4
      HealthyThresholdCount: 2
      TargetGroupAttributes: [{Key: deregistration_delay.timeout_seconds, Value: "2"}]
      Targets: [{Id: !Ref WebPrivateA}, {Id: !Ref WebPrivateB}, {Id: !Ref WebPrivateC}]
  NlbTargets:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      Protocol: TCP
      Port: 80
      VpcId: !Ref VPC
      HealthCheckIntervalSeconds: 5
      HealthCheckTimeoutSeconds: 4
      HealthyThresholdCount: 2
      TargetGroupAttributes: [{Key: deregistration_delay.timeout_seconds, Value: "2"}]
      Targets: [{Id: !Ref WebPrivateA}, {Id: !Ref WebPrivateB}, {Id: !Ref WebPrivateC}]
  AlbListener:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref Alb
      Protocol: HTTP
      Port: 80
      DefaultActions: [{Type: forward, TargetGroupArn: !Ref AlbTargets}]
  NlbListener:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref Nlb
      Protocol: TCP
      Port: 80
      DefaultActions: [{Type: forward, TargetGroupArn: !Ref NlbTargets}]

Outputs:"""


def lb_template() -> str:
    """templates/three-az.yaml with an ALB and an NLB over two of its AZs, or all three
    (parameter ThreeAzs), each forwarding to the three private web instances."""
    text = (TEMPLATES / "three-az.yaml").read_text()
    assert text.count("\nMappings:") == 1
    assert text.count("\nOutputs:") == 1
    text = text.replace("\nMappings:", "\n" + LB_PARAMS, 1)
    return text.replace("\nOutputs:", LB_RESOURCES, 1)


def node_ips(lab: Lab, lb: str) -> dict[str, str]:
    """{AZ: public address} of a load balancer's nodes."""
    nodes = next(x for x in lab.state["load_balancers"] if x["name"] == lb)["nodes"]
    return {n["az"]: n["public_ip"] for n in nodes}


def answers(lab: Lab, ip: str) -> str | None:
    proc = lab.host("Client1").run(["curl", "-s", "-m", "3", f"http://{ip}/"], timeout=10)
    if proc.returncode != 0 or not proc.stdout.startswith("{"):
        return None
    return json.loads(proc.stdout)["instance"]


def test_a_load_balancer_gains_and_loses_an_az(tmp_path):
    path = write(tmp_path, "lbs.yaml", lb_template())
    with Lab.up(path, {"ThreeAzs": "false"}) as lab:
        assert len(node_ips(lab, "Alb")) == len(node_ips(lab, "Nlb")) == 2
        lab.wait_healthy("AlbTargets", targets=["WebPrivateA", "WebPrivateB"], timeout=60)
        assert lab.target_state("AlbTargets", "WebPrivateC") == "unused"
        assert lab.target_state("NlbTargets", "WebPrivateC") == "unused"

        t0 = lab.events()[-1].time
        reply = lab.update(path, {"ThreeAzs": "true"})
        assert any("node launched" in d for d in reply["done"]), reply
        assert statuses(lab.events(), "Alb", t0) == ["UPDATE_IN_PROGRESS", "UPDATE_COMPLETE"]
        alb, nlb = node_ips(lab, "Alb"), node_ips(lab, "Nlb")
        assert len(alb) == len(nlb) == 3
        new_az = next(az for az in alb if az.endswith("c"))
        # The third AZ's target leaves `unused` and turns healthy; the new nodes serve.
        lab.wait_healthy("AlbTargets", timeout=60)
        lab.wait_healthy("NlbTargets", timeout=60)
        assert answers(lab, alb[new_az]) is not None
        assert answers(lab, nlb[new_az]) is not None

        t1 = lab.events()[-1].time
        lab.update(path, {"ThreeAzs": "false"})
        assert len(node_ips(lab, "Alb")) == 2
        assert lab.target_state("AlbTargets", "WebPrivateC") == "unused"
        assert answers(lab, alb[new_az]) is None  # its node is gone
        stack = statuses(lab.events(), lab.name, t1)
        assert stack[-1] == "UPDATE_COMPLETE"
        assert not {h.name for h in lab.hosts} - {h["name"] for h in lab.state["hosts"]}


# ---- an Auto Scaling group's capacity -------------------------------------------------------
def test_a_groups_capacity_changes_live():
    """DesiredCapacity 2 -> 3 in the template: applied as update-auto-scaling-group (the
    group launches the third instance itself); a policy's change is still refused."""
    path = str(TEMPLATES / "autoscaling.yaml")
    with Lab.up(path, {"DesiredCapacity": "2"}) as lab:
        lab.wait_asg("WebGroup", 2)
        reply = lab.update(path, {"DesiredCapacity": "3"})
        assert reply["changes"] == ["auto_scaling_groups.WebGroup: desired 2 -> 3"]
        group = lab.wait_asg("WebGroup", 3)
        assert group["DesiredCapacity"] == 3
        with pytest.raises(BadInput, match="Auto Scaling"):
            lab.update(path, {"DesiredCapacity": "3", "TargetRequests": "50"})


# ---- several stacks: updating the first and an added one -----------------------------------
APP2 = """  App2:
    Type: AWS::EC2::Instance
    Metadata: {Lab: {Role: http-backend}}
    Properties:
      InstanceType: t3.micro
      SubnetId: {"Fn::ImportValue": !Sub "${NetworkStack}-PublicSubnet"}
      SecurityGroupIds:
        - {"Fn::ImportValue": !Sub "${NetworkStack}-WebSecurityGroup"}

Outputs:"""


def test_updates_of_two_stacks(tmp_path):
    with Lab.up(str(TEMPLATES / "two-stacks-export.yaml")) as lab:
        net = lab.name
        params = {"NetworkStack": net, "VpcId": lab.outputs["VpcId"]}
        lab.create_stack(str(TEMPLATES / "two-stacks-import.yaml"), params, name="app")
        before = ports(lab)

        # The added stack gains an instance in the imported subnet (plan --stack, update).
        text = (TEMPLATES / "two-stacks-import.yaml").read_text().replace("\nOutputs:", "\n" + APP2)
        path = write(tmp_path, "app2.yaml", text)
        plan_args = ["plan", net, path, "--stack", "app", "--json"]
        plan_args += [f"-p{k}={v}" for k, v in params.items()]
        assert main(plan_args) == 0
        t0 = lab.events()[-1].time
        reply = lab.update(path, params, stack="app")
        assert "hosts.app.App2: added" in reply["changes"]
        app_events = [e for e in lab.events() if e.time >= t0 and e.stack == "app"]
        assert [e.status for e in app_events if e.logical_id == "App2"][:1] == [
            "CREATE_IN_PROGRESS"
        ]
        assert app_events[-1].status == "UPDATE_COMPLETE"
        assert app_events[-1].logical_id == "app"
        stacks = {s["name"]: s for s in lab.stacks()}
        assert stacks["app"]["status"] == "UPDATE_COMPLETE"
        assert "app.App2" in {h.name for h in lab.hosts}
        record = next(r for r in lab.state["stacks"] if r["name"] == "app")
        assert "app.App2" in record["hosts"]
        assert {n: w for n, w in ports(lab).items() if n in before} == before
        app2 = lab.host("app.App2").ip
        proc = lab.host("Web").run(["curl", "-s", "-m", "3", f"http://{app2}/"], timeout=10)
        assert json.loads(proc.stdout)["instance"] == "app.App2"

        # An export app imports may not change: refused, nothing changed.
        exported = (TEMPLATES / "two-stacks-export.yaml").read_text()
        with pytest.raises(BadInput, match=f"Export {net}-PublicSubnet cannot be updated"):
            lab.update(write(tmp_path, "noexport.yaml", drop_export(exported)))
        assert {s["name"]: s["status"] for s in lab.stacks()}[net] == "CREATE_COMPLETE"

        # The updated stack deletes with what the update added.
        lab.delete_stack("app")
        assert not {h.name for h in lab.hosts} & {"app.App", "app.App2"}


def drop_export(text: str) -> str:
    """The export template without its PublicSubnet export (app imports it)."""
    lines = text.splitlines(keepends=True)
    out, skip = [], False
    for line in lines:
        if line.startswith("  PublicSubnet:") and out and "Outputs:" in "".join(out):
            skip = True
            continue
        if skip and line.startswith("    "):
            continue
        skip = False
        out.append(line)
    assert len(out) < len(lines)
    return "".join(out)


# ---- resource signals in an update ---------------------------------------------------------
SIGNALS = Path(__file__).with_name("templates") / "signals.yaml"


def test_a_failure_signal_rolls_the_update_back():
    """Outcome success -> failure changes Web's UserData: the lab replaces it and waits for
    its CreationPolicy's signal; the failure signal is Web's UPDATE_FAILED and the update
    rolls back (Web back as it was, its hosts and flows unchanged)."""
    with Lab.up(str(SIGNALS), {"Outcome": "success"}) as lab:
        snapshot = (ports(lab), lab_flows(lab))
        t0 = lab.events()[-1].time
        with pytest.raises(Failed, match="rolled back"):
            lab.update(str(SIGNALS), {"Outcome": "failure"})
        web = statuses(lab.events(), "Web", t0)
        assert web[0] == "UPDATE_IN_PROGRESS"
        assert "UPDATE_FAILED" in web, web
        failed = next(e for e in lab.events() if e.time >= t0 and e.status == "UPDATE_FAILED")
        assert "setup failed on purpose" in failed.reason
        assert lab.state["state"] == "UPDATE_ROLLBACK_COMPLETE"
        assert (ports(lab), lab_flows(lab)) == snapshot
