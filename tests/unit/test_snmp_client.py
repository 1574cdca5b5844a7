"""The manager's pure parts: value conversion, GETBULK answers, percentiles, CLI input."""

from __future__ import annotations

import argparse

import pytest
from pysnmp.proto import rfc1902, rfc1905

from testbed.cli import main
from testbed.cli.snmp import seconds
from testbed.snmp import mibs
from testbed.snmp.client import Agent, Credentials, convert, error_name
from testbed.snmp.manager import percentile

IF_IN = mibs.resolve("IF-MIB::ifHCInOctets")
IF_DESCR = mibs.resolve("IF-MIB::ifDescr")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (rfc1902.Counter32(4294967295), (4294967295, "Counter32", "")),
        (rfc1902.Counter64(2**64 - 1), (2**64 - 1, "Counter64", "")),
        (rfc1902.Gauge32(1000), (1000, "Gauge32", "")),
        (rfc1902.Integer32(-5), (-5, "Integer", "")),
        (rfc1902.TimeTicks(12345), (12345, "TimeTicks", "")),
        (rfc1902.OctetString("eth0"), ("eth0", "OctetString", "")),
        (rfc1902.OctetString(b"\x02\x00\x0a\x00\x00\x04"), ("0x02000a000004", "OctetString", "")),
        (rfc1902.IpAddress("10.0.0.4"), ("10.0.0.4", "IpAddress", "")),
        (
            rfc1902.ObjectIdentifier("1.3.6.1.4.1.8072.3.2.10"),
            ("1.3.6.1.4.1.8072.3.2.10", "ObjectIdentifier", ""),
        ),
        (rfc1905.NoSuchObject(""), ("", "", "noSuchObject")),
        (rfc1905.NoSuchInstance(""), ("", "", "noSuchInstance")),
    ],
)
def test_values_become_row_fields(value, expected):
    assert convert(value) == expected


def test_error_names():
    from pysnmp.proto import errind

    assert error_name(errind.requestTimedOut) == "timeout"
    assert error_name(errind.wrongDigest) == "wrongDigest"


def _agent() -> Agent:
    return Agent(None, "WebA1", "10.0.0.4", Credentials(community="c"))


def _vb(oid: tuple[int, ...], value):
    return (oid, value)


def test_getbulk_answers_are_read_column_by_column():
    # Two columns, three repetitions: ifHCInOctets has rows 1 and 2, then the walk leaves it;
    # ifDescr has rows 1 and 2, then the agent's MIB ends.
    answer = [
        _vb((*IF_IN.oid, 1), rfc1902.Counter64(10)),
        _vb((*IF_DESCR.oid, 1), rfc1902.OctetString("lo")),
        _vb((*IF_IN.oid, 2), rfc1902.Counter64(20)),
        _vb((*IF_DESCR.oid, 2), rfc1902.OctetString("eth0")),
        _vb((*IF_IN.oid[:-1], 7, 1), rfc1902.Counter64(0)),
        _vb((*IF_DESCR.oid, 3), rfc1905.EndOfMibView("")),
    ]
    rows, found = [], {0: 0, 1: 0}
    pending = _agent()._take([IF_IN, IF_DESCR], answer, 5.0, rows, found, [0, 1])
    assert pending == []
    assert [(r["object"], r["index"], r["value"]) for r in rows] == [
        ("IF-MIB::ifHCInOctets", "1", 10),
        ("IF-MIB::ifDescr", "1", "lo"),
        ("IF-MIB::ifHCInOctets", "2", 20),
        ("IF-MIB::ifDescr", "2", "eth0"),
    ]
    assert found == {0: 2, 1: 2}
    assert all(r["time"] == 5.0 for r in rows)


def test_a_column_still_inside_its_subtree_is_continued_from_its_last_oid():
    answer = [
        _vb((*IF_IN.oid, 1), rfc1902.Counter64(1)),
        _vb((*IF_IN.oid, 2), rfc1902.Counter64(2)),
    ]
    rows, found = [], {0: 0}
    assert _agent()._take([IF_IN], answer, 1.0, rows, found, [0]) == [(0, (*IF_IN.oid, 2))]


def test_an_agent_that_does_not_move_forward_ends_the_walk():
    answer = [
        _vb((*IF_IN.oid, 2), rfc1902.Counter64(1)),
        _vb((*IF_IN.oid, 2), rfc1902.Counter64(1)),
    ]
    rows, found = [], {0: 0}
    pending = _agent()._take([IF_IN], answer, 1.0, rows, found, [0], [(*IF_IN.oid, 2)])
    assert pending == []
    assert rows == []


def test_v3_credentials_need_a_v3_user():
    assert Credentials.from_plan({"community": "c", "v3": None}) == Credentials(community="c")
    with pytest.raises(ValueError, match="no SNMPv3 user"):
        Credentials.from_plan({"community": "c", "v3": None}, use_v3=True)
    user = {
        "user": "m",
        "auth_password": "abcdefgh",
        "priv_password": "abcdefgh",
        "auth_protocol": "SHA-256",
        "priv_protocol": "AES-256",
    }
    data = Credentials.from_plan({"community": "c", "v3": user}, use_v3=True).auth_data()
    from pysnmp.hlapi.v3arch.asyncio import (
        USM_AUTH_HMAC192_SHA256,
        USM_PRIV_CFB256_AES_BLUMENTHAL,
    )

    assert data.userName == "m"
    assert data.authentication_protocol == USM_AUTH_HMAC192_SHA256
    assert data.privacy_protocol == USM_PRIV_CFB256_AES_BLUMENTHAL


def test_percentiles():
    assert percentile([], 50) == 0.0
    assert percentile([5.0], 95) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert percentile([0.0, 10.0], 95) == pytest.approx(9.5)


@pytest.mark.parametrize(
    ("text", "value"),
    [("1s", 1.0), ("500ms", 0.5), ("2m", 120.0), ("30", 30.0), ("0", 0.0), (".5s", 0.5)],
)
def test_durations(text, value):
    assert seconds(text) == value


def test_bad_durations():
    with pytest.raises(argparse.ArgumentTypeError):
        seconds("soon")


def test_cli_bad_input_exits_2(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path))
    assert main(["monitor", "nolab", "--out", str(tmp_path / "x.csv")]) == 2
    assert "lab 'nolab' is not running" in capsys.readouterr().err
    assert main(["snmp", "get", "nolab", "WebA1", "sysName.0"]) == 2
    assert main(["snmp", "names", "NOPE-MIB"]) == 2
    assert main(["snmp", "names", "IF-MIB"]) == 0
    assert "IF-MIB::ifHCInOctets" in capsys.readouterr().out
