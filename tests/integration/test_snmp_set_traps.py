"""SNMP SET and notifications on a real lab: the template's SNMPv3 write user changes
sysContact and takes a target's interface down and up through IF-MIB::ifAdminStatus; the
NLB's real health checks see it; read-only objects and read-only credentials are refused
(exit 2); the agents' INFORMs (coldStart, linkUp, the linkDown retransmitted once the link is
back, authenticationFailure), v2c and v3, reach the lab's receiver and its events. One lab."""

from __future__ import annotations

import json

import pytest

from testbed.lab.api import Lab
from testbed.lab.services.trapd import read_traps
from testbed.snmp import manager
from tests.assertions import run_cli

pytestmark = pytest.mark.integration

TEMPLATE = """\
Metadata:
  Lab:
    TimeScale: 5
    Snmp:
      Community: it-ro
      V3: {User: mon, AuthPassword: auth-pass-1, PrivPassword: priv-pass-1}
      Write: {User: ops, AuthPassword: wauth-pass-1, PrivPassword: wpriv-pass-1,
              AuthProtocol: SHA-256}
Resources:
  VPC: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.31.0.0/16}}
  Subnet:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref VPC, CidrBlock: 10.31.1.0/24, AvailabilityZone: us-east-1a}
  SG:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: all from the VPC
      VpcId: !Ref VPC
      SecurityGroupIngress: [{IpProtocol: "-1", CidrIp: 10.31.0.0/16}]
  Web1:
    Type: AWS::EC2::Instance
    Metadata: {Lab: {Role: http-backend}}
    Properties: {SubnetId: !Ref Subnet, SecurityGroupIds: [!Ref SG]}
  Web2:
    Type: AWS::EC2::Instance
    Metadata: {Lab: {Role: http-backend}}
    Properties: {SubnetId: !Ref Subnet, SecurityGroupIds: [!Ref SG]}
  NLB:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties: {Type: network, Scheme: internal, Subnets: [!Ref Subnet]}
  TG:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      Protocol: TCP
      Port: 80
      VpcId: !Ref VPC
      HealthCheckProtocol: TCP
      HealthCheckIntervalSeconds: 5
      HealthCheckTimeoutSeconds: 4
      HealthyThresholdCount: 2
      UnhealthyThresholdCount: 2
      Targets: [{Id: !Ref Web1}, {Id: !Ref Web2}]
  Listener:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref NLB
      Protocol: TCP
      Port: 80
      DefaultActions: [{Type: forward, TargetGroupArn: !Ref TG}]
"""
# TimeScale 5: checks every second, 2 failures -> unhealthy in ~2-3 s.
STATE_TIMEOUT = 20.0


@pytest.fixture(scope="module")
def set_lab(tmp_path_factory):
    path = tmp_path_factory.mktemp("snmpset") / "snmpset.yaml"
    path.write_text(TEMPLATE)
    with Lab.up(str(path)) as lab:
        lab.wait_target_state("TG", "Web1", "healthy", STATE_TIMEOUT)
        yield lab


def _set(lab, *args):
    return run_cli("snmp", "set", lab.name, *args, "--json", timeout=60)


def _traps(lab, **match):
    rows, _ = read_traps(lab.dir)
    return [t for t in rows if all(t.get(k) == v for k, v in match.items())]


def test_every_agent_says_cold_start_with_v2c_and_v3(set_lab):
    for host in ("Web1", "Web2"):
        set_lab.wait_for(
            lambda host=host: (
                {t["version"] for t in _traps(set_lab, agent=host, trap="coldStart")}
                == {"v2c", "v3"}
            ),
            10,
            f"coldStart from {host}",
        )
    cold = _traps(set_lab, agent="Web1", trap="coldStart")[0]
    assert cold["pdu"] == "inform"
    assert cold["sys_uptime"] < 500  # sent within 5 s of the agent's start
    listed = run_cli("traps", set_lab.name, "--json", timeout=30)
    assert listed.returncode == 0, listed.stderr
    assert any(json.loads(line)["trap"] == "coldStart" for line in listed.stdout.splitlines())


def test_write_user_sets_sys_contact_and_every_set_is_an_event(set_lab):
    done = _set(set_lab, "Web1", "SNMPv2-MIB::sysContact", "ops on call")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["value"] == "ops on call"
    rows = manager.query(set_lab.name, "Web1", "get", ["sysContact", "sysName"])
    assert {r["object"]: r["value"] for r in rows}["SNMPv2-MIB::sysContact"] == "ops on call"
    # sysName was not fixed in snmpd.conf (then it could not be SET) but set at start.
    assert {r["object"]: r["value"] for r in rows}["SNMPv2-MIB::sysName"] == "Web1"
    events = [e for e in set_lab.events() if e.resource_type == manager.SET_EVENT_TYPE]
    assert events
    assert events[-1].status == "SNMP_SET"
    assert "sysContact.0 = 'ops on call' (s) as write user ops" in events[-1].reason


@pytest.mark.parametrize(
    ("args", "refusal"),
    [
        (["SNMPv2-MIB::sysUpTime.0", "5", "--type", "t"], "notWritable"),
        (["SNMPv2-MIB::sysDescr", "x"], "notWritable"),
        (["SNMPv2-MIB::sysContact", "x", "--community"], "noAccess"),
        (["SNMPv2-MIB::sysContact", "x", "--read-user"], "noAccess"),
        (["IF-MIB::ifInOctets.2", "5", "--type", "c"], "noAccess"),
    ],
)
def test_refused_sets_exit_2_with_the_agents_answer(set_lab, args, refusal):
    done = _set(set_lab, "Web1", *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "refused SET" in done.stderr, done.stderr
    assert refusal in done.stderr, done.stderr
    assert set_lab.events()[-1].status == "SNMP_SET_FAILED"


def test_bad_set_input_exits_2(set_lab):
    done = _set(set_lab, "Web1", "IF-MIB::ifAdminStatus.2", "up", "--type", "i")
    assert done.returncode == 2, done.stderr
    assert "badValue" in done.stderr
    done = _set(set_lab, "Web1", "IF-MIB::ifTable", "1")
    assert done.returncode == 2, done.stderr
    assert "not one instance" in done.stderr


def test_if_admin_status_takes_a_target_out_of_service_and_back(set_lab):
    route = set_lab.host("Web1").cmd("ip route show default").strip()
    done = _set(set_lab, "Web1", "IF-MIB::ifAdminStatus.2", "2")
    down_at = json.loads(done.stdout)["time"]  # when the agent answered
    # The agent answers before the interface goes down (its answer leaves through it).
    assert done.returncode == 0, done.stderr
    set_lab.wait_for(
        lambda: "DOWN" in set_lab.host("Web1").cmd("ip -br link show eth0"), 2, "eth0 down"
    )
    took = set_lab.wait_target_state("TG", "Web1", "unhealthy", STATE_TIMEOUT)
    # The holder says so too, as an ELB-LAB-MIB notification (elbLabTargetHealthChange).
    set_lab.wait_for(
        lambda: [
            t
            for t in _traps(set_lab, agent="holder", trap="elbLabTargetHealthChange")
            if t["varbinds"]["elbLabResource"].startswith("Web1:")
            and t["varbinds"]["elbLabNewState"] == "unhealthy"
            and t["received"] > down_at
        ],
        5,
        "the holder's notification that Web1 is unhealthy",
    )
    # Nothing answers over eth0 now: the way back is from the host itself.
    done = _set(set_lab, "Web1", "IF-MIB::ifAdminStatus.2", "1", "--vantage", "Web1")
    assert done.returncode == 0, done.stderr
    up_at = json.loads(done.stdout)["time"]  # the link is up when the agent answers
    # linkUp, and the linkDown the agent made while the link was down (an INFORM, sent again
    # every second): both within 2 s of the link coming back, with v2c and with v3.
    for trap in ("linkUp", "linkDown"):
        set_lab.wait_for(
            lambda trap=trap: (
                {
                    t["version"]
                    for t in _traps(set_lab, agent="Web1", trap=trap)
                    if t["received"] > down_at
                }
                == {"v2c", "v3"}
            ),
            5,
            f"{trap} from Web1",
        )
    link_down = next(t for t in _traps(set_lab, agent="Web1", trap="linkDown"))
    assert -0.1 < link_down["received"] - up_at < 2.0, (link_down, up_at)
    assert link_down["sent"] < up_at - 1.0, link_down  # made while the link was down
    assert link_down["varbinds"]["ifAdminStatus.2"] == 2
    link_up = next(t for t in _traps(set_lab, agent="Web1", trap="linkUp"))
    assert -0.1 < link_up["received"] - up_at < 2.0, (link_up, up_at)
    print(
        f"linkDown made {link_down['sent'] - down_at:.2f} s after the SET down, received "
        f"{link_down['received'] - up_at:.2f} s after the SET up ("
        f"{link_down['received'] - link_down['sent']:.2f} s late); linkUp "
        f"{link_up['received'] - up_at:.2f} s after"
    )
    events = [e for e in set_lab.events() if e.status == "TRAP_LINKDOWN"]
    assert events, "no linkDown event"
    back = set_lab.wait_target_state("TG", "Web1", "healthy", STATE_TIMEOUT)
    assert set_lab.host("Web1").cmd("ip route show default").strip() == route
    assert set_lab.target_state("TG", "Web2") == "healthy"
    print(f"unhealthy {took:.1f} s after the SET, healthy {back:.1f} s after up")


def test_wrong_community_gives_an_authentication_failure_trap(set_lab):
    done = _set(set_lab, "Web2", "SNMPv2-MIB::sysContact", "x", "--community", "guess")
    assert done.returncode == 1, done.stderr  # no answer to a wrong community
    set_lab.wait_for(
        lambda: (
            {t["version"] for t in _traps(set_lab, agent="Web2", trap="authenticationFailure")}
            == {"v2c", "v3"}
        ),
        5,
        "authenticationFailure from Web2",
    )
