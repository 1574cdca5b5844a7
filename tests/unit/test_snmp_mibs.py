"""MIB names both ways, numeric OIDs, and clear errors for unknown names."""

from __future__ import annotations

import pytest

from testbed.errors import BadInput
from testbed.snmp import mibs

# OIDs from the RFCs, written out by hand rather than taken from the table under test.
KNOWN = {
    "SNMPv2-MIB::sysDescr": "1.3.6.1.2.1.1.1",
    "SNMPv2-MIB::sysUpTime": "1.3.6.1.2.1.1.3",
    "SNMPv2-MIB::sysName": "1.3.6.1.2.1.1.5",
    "IF-MIB::ifDescr": "1.3.6.1.2.1.2.2.1.2",
    "IF-MIB::ifOperStatus": "1.3.6.1.2.1.2.2.1.8",
    "IF-MIB::ifInOctets": "1.3.6.1.2.1.2.2.1.10",
    "IF-MIB::ifOutOctets": "1.3.6.1.2.1.2.2.1.16",
    "IF-MIB::ifInErrors": "1.3.6.1.2.1.2.2.1.14",
    "IF-MIB::ifName": "1.3.6.1.2.1.31.1.1.1.1",
    "IF-MIB::ifHCInOctets": "1.3.6.1.2.1.31.1.1.1.6",
    "IF-MIB::ifHCOutOctets": "1.3.6.1.2.1.31.1.1.1.10",
    "IF-MIB::ifHighSpeed": "1.3.6.1.2.1.31.1.1.1.15",
    "HOST-RESOURCES-MIB::hrSystemUptime": "1.3.6.1.2.1.25.1.1",
    "HOST-RESOURCES-MIB::hrProcessorLoad": "1.3.6.1.2.1.25.3.3.1.2",
    "HOST-RESOURCES-MIB::hrStorageUsed": "1.3.6.1.2.1.25.2.3.1.6",
    "HOST-RESOURCES-MIB::hrSWRunName": "1.3.6.1.2.1.25.4.2.1.2",
}


@pytest.mark.parametrize(("name", "oid"), sorted(KNOWN.items()))
def test_names_resolve_to_the_rfc_oids(name, oid):
    target = mibs.resolve(name)
    assert mibs.oid_text(target.oid) == oid
    assert target.label == name
    bare = name.split("::")[1]
    assert mibs.resolve(bare).oid == target.oid  # the module is optional


@pytest.mark.parametrize(("name", "oid"), sorted(KNOWN.items()))
def test_oids_turn_back_into_names_with_their_index(name, oid):
    assert mibs.describe(mibs.parse_oid(oid + ".2")) == (name, "2")
    assert mibs.display(mibs.parse_oid(oid + ".0")) == f"{name}.0"


def test_an_index_goes_with_the_name():
    target = mibs.resolve("IF-MIB::ifHCInOctets.2")
    assert mibs.oid_text(target.oid) == "1.3.6.1.2.1.31.1.1.1.6.2"
    assert target.index == (2,)
    assert target.request == "get"
    assert mibs.describe((1, 3, 6, 1, 2, 1, 25, 3, 3, 1, 2, 196608)) == (
        "HOST-RESOURCES-MIB::hrProcessorLoad",
        "196608",
    )


def test_how_each_kind_is_asked_for():
    assert mibs.resolve("sysUpTime").request == "scalar"
    assert mibs.resolve("sysUpTime.0").request == "get"
    assert mibs.resolve("ifHCInOctets").request == "walk"
    assert mibs.resolve("IF-MIB::ifTable").request == "walk"
    assert mibs.resolve("1.3.6.1.4.1.8072").request == "walk"


def test_numeric_oids_pass_through_named_or_not():
    assert mibs.resolve("1.3.6.1.2.1.1.5.0").label == "SNMPv2-MIB::sysName"
    assert mibs.resolve(".1.3.6.1.2.1.1.5.0").oid == (1, 3, 6, 1, 2, 1, 1, 5, 0)
    unknown = mibs.resolve("1.3.6.1.4.1.8072.1.5.1.0")
    assert unknown.obj is None
    assert unknown.label == "1.3.6.1.4.1.8072.1.5.1.0"
    assert mibs.describe((1, 3, 6, 1, 4, 1, 8072, 1)) == ("1.3.6.1.4.1.8072.1", "")


def test_an_instance_under_a_table_node_is_not_named_after_the_table():
    # 1.3.6.1.2.1.2.2.1 is ifEntry: only a column gives an instance its name.
    assert mibs.describe((1, 3, 6, 1, 2, 1, 2, 2, 1)) == ("1.3.6.1.2.1.2.2.1", "")


def test_every_table_entry_is_unique_both_ways():
    names = [o.name for o in mibs.OBJECTS]
    oids = [o.oid for o in mibs.OBJECTS]
    assert len(set(names)) == len(names)
    assert len(set(oids)) == len(oids)
    for obj in mibs.OBJECTS:
        assert mibs.resolve(obj.full_name).oid == obj.oid


def test_unknown_names_list_close_matches():
    with pytest.raises(BadInput) as info:
        mibs.resolve("IF-MIB::ifHCInOctet")
    assert "unknown object 'IF-MIB::ifHCInOctet'" in str(info.value)
    assert "IF-MIB::ifHCInOctets" in str(info.value)
    with pytest.raises(BadInput) as info:
        mibs.resolve("hrProcessorLoads")
    assert "HOST-RESOURCES-MIB::hrProcessorLoad" in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("IF-MIB::sysName", "sysName is in SNMPv2-MIB, not IF-MIB"),
        ("IF-MIB::ifTable.3", "is a table"),
        ("if HC", "cannot read 'if HC' as an object"),
        ("NOPE-MIB::zzzz", "known modules"),
    ],
)
def test_bad_names_are_bad_input(text, message):
    with pytest.raises(BadInput) as info:
        mibs.resolve(text)
    assert message in str(info.value)


def test_hc_twins_are_known_counters():
    for small, large in mibs.HC_TWIN.items():
        assert mibs.resolve(small).obj.kind == mibs.resolve(large).obj.kind == "column"
    for name in mibs.DEFAULT_MONITOR_OBJECTS:
        mibs.resolve(name)
