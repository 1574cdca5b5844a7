"""Counter maths: Counter32/Counter64 wrap, rates, agent restarts, HC preference, gaps."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from testbed.snmp.counters import (
    Sample,
    agent_restarted,
    counter_delta,
    rate,
    rates,
)

C32 = 2**32
C64 = 2**64


def test_delta_without_wrap():
    assert counter_delta(100, 1600, "Counter32") == 1500
    assert counter_delta(7, 7, "Counter64") == 0


def test_counter32_wraps_at_2_to_the_32():
    # 4294967000 -> 704: 296 to reach 2**32, then 704 more.
    assert counter_delta(C32 - 296, 704, "Counter32") == 1000


def test_counter64_wraps_at_2_to_the_64():
    assert counter_delta(C64 - 1, 9, "Counter64") == 10


@pytest.mark.parametrize(
    ("previous", "current", "kind"),
    [(-1, 5, "Counter32"), (0, C32, "Counter32"), (C64, 0, "Counter64")],
)
def test_values_outside_the_counter_width_are_rejected(previous, current, kind):
    with pytest.raises(ValueError, match="is not a"):
        counter_delta(previous, current, kind)


@given(st.integers(0, C32 - 1), st.integers(0, C32 - 1))
def test_counter32_delta_inverts_modular_growth(start, growth):
    assert counter_delta(start, (start + growth) % C32, "Counter32") == growth


@given(st.integers(0, C64 - 1), st.integers(0, C64 - 1))
def test_counter64_delta_inverts_modular_growth(start, growth):
    assert counter_delta(start, (start + growth) % C64, "Counter64") == growth


def test_rate_is_units_per_second():
    per_second, why = rate(Sample(10.0, 1_000), Sample(12.0, 5_000), "Counter64")
    assert per_second == pytest.approx(2_000.0)
    assert why == ""


def test_rate_across_a_counter32_wrap():
    per_second, why = rate(Sample(0.0, C32 - 500), Sample(0.5, 500), "Counter32")
    assert per_second == pytest.approx(2_000.0)
    assert why == ""


def test_agent_restart_gives_no_rate():
    before, after = Sample(0.0, 9_000, uptime=50_000), Sample(1.0, 100, uptime=120)
    assert agent_restarted(before, after)
    assert rate(before, after, "Counter32") == (None, "agent-restart")


def test_counter32_going_down_with_uptime_going_up_is_a_wrap():
    before, after = Sample(0.0, C32 - 10, uptime=100), Sample(1.0, 10, uptime=200)
    assert not agent_restarted(before, after)
    assert rate(before, after, "Counter32") == (20.0, "")


def test_counter64_going_down_is_a_reset_not_a_wrap():
    assert rate(Sample(0.0, 500), Sample(1.0, 100), "Counter64") == (None, "counter-reset")


def test_no_rate_without_time_passing():
    assert rate(Sample(5.0, 1), Sample(5.0, 2), "Counter32") == (None, "no-interval")


def _row(t, obj, value, kind, host="H", index="2", error=""):
    return {
        "time": t,
        "host": host,
        "object": obj,
        "index": index,
        "value": value,
        "type": kind,
        "error": error,
    }


def _poll(t, uptime, hc=None, c32=None, host="H"):
    rows = [_row(t, "SNMPv2-MIB::sysUpTime", uptime, "TimeTicks", host, "0")]
    if hc is not None:
        rows.append(_row(t, "IF-MIB::ifHCInOctets", hc, "Counter64", host))
    if c32 is not None:
        rows.append(_row(t, "IF-MIB::ifInOctets", c32, "Counter32", host))
    return rows


def test_rates_prefer_the_hc_counter_where_the_agent_has_it():
    rows = _poll(0.0, 100, hc=1_000, c32=1_000) + _poll(1.0, 200, hc=3_000, c32=3_000)
    out = rates(rows)
    assert [(r["object"], r["value"]) for r in out] == [("IF-MIB::ifHCInOctets", 2_000.0)]
    assert out[0]["type"] == "rate"
    assert out[0]["index"] == "2"
    assert out[0]["time"] == 1.0


def test_rates_fall_back_to_counter32_without_hc_and_handle_its_wrap():
    rows = _poll(0.0, 100, c32=C32 - 1_000) + _poll(2.0, 300, c32=3_000)
    assert [(r["object"], r["value"]) for r in rates(rows)] == [("IF-MIB::ifInOctets", 2_000.0)]


def test_rates_skip_timeouts_and_pair_with_the_last_good_sample():
    rows = _poll(0.0, 100, hc=0)
    rows.append(_row(1.0, "IF-MIB::ifHCInOctets", "", "", error="timeout"))
    rows += _poll(2.0, 300, hc=4_000)
    out = rates(rows)
    assert [(r["time"], r["value"]) for r in out] == [(2.0, 2_000.0)]


def test_rates_mark_an_agent_restart_and_start_over():
    rows = (
        _poll(0.0, 5_000, hc=9_000)
        + _poll(1.0, 5_100, hc=10_000)
        + _poll(2.0, 30, hc=500)
        + _poll(3.0, 130, hc=1_500)
    )
    out = rates(rows)
    assert [(r["value"], r["error"]) for r in out] == [
        (1_000.0, ""),
        ("", "agent-restart"),
        (1_000.0, ""),
    ]


def test_rates_read_csv_text_and_keep_hosts_apart():
    rows = [
        {k: str(v) for k, v in r.items()}
        for r in _poll(0.0, 1, hc=0, host="A")
        + _poll(0.0, 1, hc=0, host="B")
        + _poll(1.0, 101, hc=10, host="A")
        + _poll(1.0, 101, hc=30, host="B")
    ]
    assert {r["host"]: r["value"] for r in rates(rows)} == {"A": 10.0, "B": 30.0}


def test_gauges_and_text_have_no_rate():
    rows = [
        _row(0.0, "IF-MIB::ifHighSpeed", 1000, "Gauge32"),
        _row(1.0, "IF-MIB::ifHighSpeed", 1000, "Gauge32"),
        _row(0.0, "IF-MIB::ifDescr", "eth0", "OctetString"),
        _row(1.0, "IF-MIB::ifDescr", "eth0", "OctetString"),
    ]
    assert rates(rows) == []
