"""The snmp_faults experiment's analysis on made-up signals (the real run: testbed run)."""

from __future__ import annotations

import pandas as pd

from testbed.experiments import snmp_faults


def test_each_victims_signals_are_timed_from_its_set():
    sets = {"WebA1": {"down": 100.0, "up": 110.0}}
    traps = [
        {"agent": "WebA1", "trap": "linkDown", "sent": 101.0, "received": 110.4},
        {"agent": "WebA1", "trap": "linkUp", "sent": 110.3, "received": 110.3},
        {"agent": "WebA1", "trap": "coldStart", "sent": 50.0, "received": 50.0},
    ]
    transitions = [
        {"time": 104.0, "target": "WebA1:80", "new": "unhealthy"},
        {"time": 111.0, "target": "WebA1:80", "new": "healthy"},
        {"time": 104.0, "target": "WebB1:80", "new": "unhealthy"},
    ]
    requests = pd.DataFrame({"start": [99.0, 100.5, 100.7], "error": ["timeout", "", "timeout"]})
    timeline, summary = snmp_faults._analyse(sets, traps, transitions, requests, ["WebA1"])
    row = summary.iloc[0].to_dict()
    assert row["first_error_s"] == 0.7
    assert row["unhealthy_s"] == 4.0
    assert row["linkdown_made_s"] == 1.0
    assert row["linkdown_received_s"] == 10.4
    assert row["linkdown_late_s"] == 9.4
    assert row["healthy_after_up_s"] == 1.0
    assert row["first_signal"] == "request error"
    assert list(timeline["signal"])[:2] == ["set down", "first request error (started)"]


def test_template_has_a_write_user_and_the_time_scale():
    text, write = snmp_faults._template({k: v for k, (v, _) in snmp_faults.PARAMS.items()}, (2, 2))
    assert text.startswith("Metadata:\n  Lab:\n    TimeScale: 5\n")
    assert f"Write: {{User: ops, AuthPassword: {write['AuthPassword']}" in text
