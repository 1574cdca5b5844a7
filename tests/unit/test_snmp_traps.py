"""SNMP notifications: the agents' snmpd.conf lines, the receiver's records and events, and
reading them back (the real ones: tests/integration/test_snmp_set_traps.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from pysnmp.proto import rfc1902

from testbed.lab.events import read_events
from testbed.lab.services import trapd
from testbed.lab.services.snmpd import config_text
from testbed.plan.network import build_plan
from tests.unit.test_snmp_model import V3, template


def test_agents_send_informs_with_v2c_and_v3_and_watch_their_links(load):
    plan = build_plan(load(template(f"{{V3: {V3}}}")), "t")
    lines = config_text("t", plan.host("Web1"), "s", sink="10.8.0.2", internal_user="in1").split(
        "\n"
    )
    assert "authtrapenable 1" in lines
    assert "trapsess -Ci -r 120 -t 1 -v 2c -c elblab-ro 10.8.0.2:162" in lines
    assert (
        "trapsess -Ci -r 120 -t 1 -v 3 -u mon -l authPriv -a SHA -A authpass1 -x AES "
        "-X privpass1 10.8.0.2:162"
    ) in lines
    assert "iquerySecName in1" in lines
    assert "rouser in1 noauth .1.3.6.1.2.1.2.2" in lines
    assert "monitor -S -r 1 -e elblabLinkDown linkDown .1.3.6.1.2.1.2.2.1.8 == 2" in lines
    # Without a receiver (no resolver in the lab): no notifications at all.
    assert "trapsess" not in config_text("t", plan.host("Web1"), "s")


def test_receiver_records_both_times_and_writes_an_event(tmp_path):
    spec = {"lab_dir": str(tmp_path), "hosts": {"10.8.1.4": "Web1"}}
    receiver = trapd.Receiver(spec)
    receiver.last_message = {"address": ("10.8.1.4", 4000), "model": 2, "pdu": "InformRequestPDU"}
    cold = [
        (trapd.SYS_UPTIME, rfc1902.TimeTicks(20)),
        (trapd.SNMP_TRAP_OID, rfc1902.ObjectIdentifier("1.3.6.1.6.3.1.1.5.1")),
    ]
    receiver.record(cold, 1000.2)  # boot: 1000.0
    down = [
        (trapd.SYS_UPTIME, rfc1902.TimeTicks(520)),
        (trapd.SNMP_TRAP_OID, rfc1902.ObjectIdentifier("1.3.6.1.6.3.1.1.5.3")),
        ("1.3.6.1.2.1.2.2.1.1.2", rfc1902.Integer(2)),
        ("1.3.6.1.2.1.2.2.1.8.2", rfc1902.Integer(2)),
    ]
    entry = receiver.record(down, 1012.0)  # made at 1005.2, received 6.8 s later
    assert entry["sent"] == 1005.2
    assert entry["trap"] == "linkDown"
    assert entry["pdu"] == "inform"
    assert entry["version"] == "v2c"
    assert entry["varbinds"] == {"ifIndex.2": 2, "ifOperStatus.2": 2}
    rows, offset = trapd.read_traps(tmp_path)
    assert [r["trap"] for r in rows] == ["coldStart", "linkDown"]
    assert trapd.read_traps(tmp_path, offset) == ([], offset)
    event = read_events(tmp_path)[-1]
    assert (event.logical_id, event.status) == ("Web1", "TRAP_LINKDOWN")
    assert "(+6.800 s)" in event.reason
    assert json.loads((tmp_path / trapd.TRAPS).read_text().splitlines()[0])["agent"] == "Web1"


def test_holder_events_become_lab_mib_notifications():
    event = {
        "time": 100.25,
        "logical_id": "Web1:80",
        "resource_type": "Lab::TargetHealth",
        "status": "TARGET_UNHEALTHY",
        "reason": "NLB/TG: healthy -> unhealthy (2 consecutive health checks failed (timeout))",
    }
    oid, binds = trapd.lab_notification(event)
    assert oid == "1.3.6.1.4.1.32473.1.0.1"
    named = {trapd.LAB_OBJECTS[o]: v for o, v in binds}
    assert named == {
        "elbLabResource": "Web1:80",
        "elbLabGroup": "NLB/TG",
        "elbLabOldState": "healthy",
        "elbLabNewState": "unhealthy",
        "elbLabReason": "2 consecutive health checks failed (timeout)",
        "elbLabEventTime": "100.250",
    }
    scaling = dict(event, resource_type=trapd.SCALING_TYPE, status="SCALING_ACTIVITY")
    scaling["reason"] = "Launching a new EC2 instance: Successful"
    assert trapd.lab_notification(scaling)[0] == "1.3.6.1.4.1.32473.1.0.2"
    assert trapd.lab_notification(dict(event, status="FLOWS_TERMINATED")) is None


@pytest.mark.skipif(not shutil.which("snmptranslate"), reason="net-snmp's snmptranslate is missing")
def test_net_snmp_loads_the_lab_mib():
    mib_dir = Path(trapd.__file__).parents[2] / "snmp" / "mib"
    for args in (["-m", "+ELB-LAB-MIB"], ["-m", "ELB-LAB-MIB"]):
        done = subprocess.run(
            [
                "snmptranslate",
                *args,
                "-M",
                f"+{mib_dir}",
                "-On",
                "ELB-LAB-MIB::elbLabScalingActivity",
            ],
            capture_output=True,
            text=True,
            env=dict(os.environ, MIBS=""),
            check=False,
        )
        assert done.stdout.strip() == ".1.3.6.1.4.1.32473.1.0.2", done.stderr[-2000:]
    for oid, name in {**trapd.LAB_NOTIFICATIONS, **trapd.LAB_OBJECTS}.items():
        done = subprocess.run(
            ["snmptranslate", "-m", "ELB-LAB-MIB", "-M", f"+{mib_dir}", oid],
            capture_output=True,
            text=True,
            env=dict(os.environ, MIBS=""),
            check=False,
        )
        instance = ".0" if oid in trapd.LAB_OBJECTS else ""  # scalars' instance
        assert done.stdout.strip() == f"ELB-LAB-MIB::{name}{instance}", (oid, done.stderr[-500:])


def test_receiver_learns_hosts_added_since_it_started(load, tmp_path):
    plan = build_plan(load(template()), "t")
    (tmp_path / "plan.json").write_text(plan.to_json())
    receiver = trapd.Receiver({"lab_dir": str(tmp_path), "hosts": {}})
    web1 = plan.host("Web1")
    receiver.last_message = {"address": (web1.ip, 4000), "model": 2, "pdu": "SNMPv2TrapPDU"}
    entry = receiver.record([(trapd.SYS_UPTIME, rfc1902.TimeTicks(5))], 10.0)
    assert entry["agent"] == "Web1"
    assert entry["pdu"] == "trap"
