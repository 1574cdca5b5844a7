"""SNMP SET: the template's write user, the agent's write view, the ifAdminStatus helper
and the values the manager sends (the real SETs: tests/integration/test_snmp_set.py)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from testbed.lab.services import snmp_ifadmin
from testbed.lab.services.snmpd import IFADMIN, config_text
from testbed.plan.network import build_plan
from testbed.snmp.client import set_value
from tests.unit.test_snmp_model import V3, template

WRITE = "{User: ops, AuthPassword: wauthpass1, PrivPassword: wprivpass1, AuthProtocol: SHA-256}"


def test_write_user_reaches_the_plan_only_when_given(load):
    plan = build_plan(load(template(f"{{V3: {V3}, Write: {WRITE}}}")), "t")
    assert plan.host("Web1").snmp["write"] == {
        "user": "ops",
        "auth_password": "wauthpass1",
        "priv_password": "wprivpass1",
        "auth_protocol": "SHA-256",
        "priv_protocol": "AES",
    }
    # Without a writer the plan has no key for it (plans of other templates stay as they were).
    assert "write" not in build_plan(load(template(f"{{V3: {V3}}}")), "t").host("Web1").snmp


def test_a_host_may_switch_the_writer_off(load):
    text = template(f"{{Write: {WRITE}}}").replace(
        "Snmp: {Community: other-ro}", "Snmp: {Community: other-ro, Write: false}"
    )
    plan = build_plan(load(text), "t")
    assert "write" not in plan.host("Web3").snmp
    assert plan.host("Web1").snmp["write"]["user"] == "ops"


@pytest.mark.parametrize(
    ("snmp", "message"),
    [
        (
            "{Write: {User: ops, AuthPassword: wauthpass1}}",
            "Write needs PrivPassword (authPriv: both passwords are required: a writer may "
            "not SET without authentication and privacy)",
        ),
        ("{Write: {User: ops}}", "Write needs AuthPassword"),
        ("{Write: elblab-rw}", "Write must be a mapping"),
        (f"{{V3: {V3}, Write: {V3}}}", "Write.User 'mon' is also the read-only V3 user"),
        ("{Write: {User: ops, AuthPassword: short, PrivPassword: wprivpass1}}", "8-64"),
    ],
)
def test_write_user_errors(fails, snmp, message):
    fails(template(snmp), message, line=3)


def test_snmpd_conf_of_a_writer(load):
    plan = build_plan(load(template(f"{{V3: {V3}, Write: {WRITE}}}")), "t")
    lines = config_text("t", plan.host("Web1"), "setupsecret", Path("/state")).splitlines()
    assert 'createUser ops SHA-256 "wauthpass1" AES "wprivpass1"' in lines
    assert "rwuser ops priv -V elblabWrite" in lines
    assert "view elblabWrite included .1.3.6.1.2.1.1" in lines
    assert "view elblabWrite included .1.3.6.1.2.1.2.2.1.7" in lines
    assert any(
        line.startswith("pass .1.3.6.1.2.1.2.2.1.7 ") and line.endswith(f"{IFADMIN} /state")
        for line in lines
    )
    # net-snmp refuses a SET of what snmpd.conf fixes: the sys* values are SET at start.
    assert not [line for line in lines if line.split()[0] in ("sysName", "sysContact")]
    # No community may write anything but the setup's cache timeouts and sys* values.
    assert [line for line in lines if line.startswith("rwcommunity")] == [
        f"rwcommunity setupsecret {plan.host('Web1').ip}/32 -V elblabCacheTimeouts"
    ]


def test_snmpd_conf_without_a_writer_is_read_only(load):
    plan = build_plan(load(template(f"{{V3: {V3}}}")), "t")
    conf = config_text("t", plan.host("Web1"), "setupsecret")
    assert "rwuser" not in conf
    assert "pass " not in conf
    assert "sysName Web1" in conf.splitlines()


@pytest.mark.parametrize(
    ("kind", "text", "shown"),
    [
        ("i", "2", "2"),
        ("s", "ops on call", "ops on call"),
        ("x", "0a0b", "0x0a0b"),
        ("t", "500", "500"),
        ("a", "10.0.0.1", "10.0.0.1"),
        ("o", "1.3.6.1", "1.3.6.1"),
    ],
)
def test_set_values(kind, text, shown):
    value = set_value(kind, text)
    if kind == "x":
        assert "0x" + bytes(value).hex() == shown
    else:
        assert value.prettyPrint() == shown


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [("i", "up", "not a Integer32"), ("q", "1", "unknown type"), ("u", "-1", "not a Unsigned32")],
)
def test_bad_set_values(kind, text, message):
    with pytest.raises(ValueError, match=message):
        set_value(kind, text)


def test_ifadmin_walks_only_its_column(monkeypatch):
    monkeypatch.setattr(snmp_ifadmin, "interfaces", lambda: {1: "lo", 2: "eth0"})
    monkeypatch.setattr(snmp_ifadmin, "admin_status", lambda name: 2 if name == "eth0" else 1)
    col = snmp_ifadmin.COLUMN
    assert snmp_ifadmin.get_next(col) == ".1.3.6.1.2.1.2.2.1.7.1\ninteger\n1"
    assert snmp_ifadmin.get_next((*col, 1)) == ".1.3.6.1.2.1.2.2.1.7.2\ninteger\n2"
    assert snmp_ifadmin.get_next((*col, 2)) == ""  # the agent goes on to the next column
    assert snmp_ifadmin.get((*col, 2)) == ".1.3.6.1.2.1.2.2.1.7.2\ninteger\n2"
    assert snmp_ifadmin.get((*col, 3)) == ""


@pytest.mark.parametrize(
    ("oid", "kind", "value", "answer"),
    [
        ((2,), "string", "1", "wrong-type"),
        ((2,), "integer", "3", "wrong-value"),
        ((1,), "integer", "2", "not-writable"),  # lo: the agent answers over it
        ((9,), "integer", "2", "not-writable"),
    ],
)
def test_ifadmin_refusals(monkeypatch, tmp_path, oid, kind, value, answer):
    monkeypatch.setattr(snmp_ifadmin, "interfaces", lambda: {1: "lo", 2: "eth0"})
    assert snmp_ifadmin.set_status(tmp_path, (*snmp_ifadmin.COLUMN, *oid), kind, value) == answer


def test_ifadmin_help_names_the_protocol():
    assert "pass" in textwrap.dedent(snmp_ifadmin.__doc__ or "")
