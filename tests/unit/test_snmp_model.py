"""Metadata.Lab.Snmp in templates, its plan, the agent's snmpd.conf and vantage choice."""

from __future__ import annotations

import textwrap

import pytest

from testbed.errors import BadInput
from testbed.lab.services.snmpd import config_text
from testbed.model.snmp import host_snmp
from testbed.model.types import SnmpOptions, SnmpV3User
from testbed.plan.network import build_plan
from testbed.snmp import vantage

RESOURCES = textwrap.dedent("""\
    Resources:
      VPC: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.8.0.0/16}}
      Subnet:
        Type: AWS::EC2::Subnet
        Properties: {VpcId: !Ref VPC, CidrBlock: 10.8.1.0/24, AvailabilityZone: us-east-1a}
      Web1: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref Subnet}}
      Web2:
        Type: AWS::EC2::Instance
        Metadata: {Lab: {Snmp: false}}
        Properties: {SubnetId: !Ref Subnet}
      Web3:
        Type: AWS::EC2::Instance
        Metadata: {Lab: {Role: http-backend, Snmp: {Community: other-ro}}}
        Properties: {SubnetId: !Ref Subnet}
      Client: {Type: Lab::Internet::Client}
""")
V3 = "{User: mon, AuthPassword: authpass1, PrivPassword: privpass1}"


def template(snmp: str | None = None, parameters: str = "") -> str:
    head = f"Metadata:\n  Lab:\n    Snmp: {snmp}\n" if snmp is not None else ""
    return head + parameters + RESOURCES


def test_defaults_run_an_agent_everywhere_with_a_private_community(load):
    model = load(template())
    assert model.lab.snmp == SnmpOptions(enabled=True, community="elblab-ro", v3=None)
    assert model.lab.snmp.community != "public"
    assert host_snmp(model, "Web1") == model.lab.snmp
    assert host_snmp(model, "Client") == model.lab.snmp


def test_hosts_override_the_template(load):
    model = load(template())
    assert host_snmp(model, "Web2") is None
    assert host_snmp(model, "Web3").community == "other-ro"
    assert model.instances["Web3"].role.name == "http-backend"
    assert model.instances["Web2"].role is None


def test_template_options_with_intrinsics_and_v3_defaults(load):
    params = "Parameters:\n  Community: {Type: String, Default: lab-secret}\n"
    model = load(template(f"{{Community: !Ref Community, V3: {V3}}}", params))
    assert model.lab.snmp == SnmpOptions(
        True, "lab-secret", SnmpV3User("mon", "authpass1", "privpass1", "SHA", "AES")
    )
    model = load(
        template(f"{{Community: !Ref Community, V3: {V3}}}", params),
        params={"Community": "from-cli"},
    )
    assert model.lab.snmp.community == "from-cli"


def test_template_can_switch_agents_off_and_a_host_back_on(load):
    text = template("{Enabled: false}").replace(
        "Metadata: {Lab: {Snmp: false}}", "Metadata: {Lab: {Snmp: true}}"
    )
    model = load(text)
    assert host_snmp(model, "Web1") is None
    assert host_snmp(model, "Web2") is not None
    assert host_snmp(model, "Web3").community == "other-ro"  # a mapping turns it on
    assert load(template("false")).lab.snmp.enabled is False


def test_protocol_names_are_normalised(load):
    v3 = (
        "{User: m, AuthPassword: abcdefgh, PrivPassword: abcdefgh, AuthProtocol: sha-256, "
        "PrivProtocol: aes-256}"
    )
    user = load(template(f"{{V3: {v3}}}")).lab.snmp.v3
    assert (user.auth_protocol, user.priv_protocol) == ("SHA-256", "AES-256")


def test_plan_carries_credentials_and_allowed_sources(load):
    plan = build_plan(load(template(f"{{V3: {V3}}}")), "t")
    hosts = {h.name: h for h in plan.hosts}
    assert hosts["Web1"].snmp == {
        "community": "elblab-ro",
        "sources": ["10.8.0.0/16"],
        "v3": {
            "user": "mon",
            "auth_password": "authpass1",
            "priv_password": "privpass1",
            "auth_protocol": "SHA",
            "priv_protocol": "AES",
        },
    }
    assert hosts["Web2"].snmp is None
    assert hosts["Client"].snmp["sources"] == ["198.51.100.0/24"]


@pytest.mark.parametrize(
    ("snmp", "message", "line"),
    [
        ("{Community: 'has space'}", "Community must be 1-64 letters", 3),
        ("{Comunity: x}", "did you mean Community?", 3),
        ("{Enabled: maybe}", "Metadata.Lab.Snmp.Enabled must be true or false", 3),
        ("[1, 2]", "must be true, false or a mapping", 3),
        (
            "{V3: {User: mon, AuthPassword: short, PrivPassword: privpass1}}",
            "AuthPassword must be 8-64 printable characters",
            3,
        ),
        ("{V3: {User: mon, AuthPassword: authpass1}}", "V3 needs PrivPassword", 3),
        (
            "{V3: {User: mon, AuthPassword: 'auth pass1', PrivPassword: privpass1}}",
            "without blanks",
            3,
        ),
        (
            "{V3: {User: mon, AuthPassword: authpass1, PrivPassword: privpass1, "
            "AuthProtocol: SHA-1}}",
            "AuthProtocol must be one of MD5, SHA",
            3,
        ),
        (
            "{V3: {User: 'm n', AuthPassword: authpass1, PrivPassword: privpass1}}",
            "User must be 1-32 letters",
            3,
        ),
        ("{V3: [mon]}", "V3 must be a mapping", 3),
    ],
)
def test_template_errors_name_the_line(fails, snmp, message, line):
    fails(template(snmp), message, line=line)


def test_host_errors_name_the_host_and_line(fails, line_with):
    text = template().replace("Snmp: {Community: other-ro}", "Snmp: {Community: 'a\"b'}")
    fails(text, "Community must be", logical_id="Web3", line=line_with(text, "Community: 'a"))
    text = template().replace("Metadata: {Lab: {Snmp: false}}", "Metadata: {Lab: {Snmp: maybe}}")
    fails(text, "must be true or false, not 'maybe'", logical_id="Web2")


def test_snmp_on_a_non_host_is_refused(fails):
    text = template().replace(
        "VPC: {Type: AWS::EC2::VPC,", "VPC: {Type: AWS::EC2::VPC, Metadata: {Lab: {Snmp: false}},"
    )
    fails(text, "Metadata.Lab is only for hosts", logical_id="VPC")


def test_role_args_still_need_a_role(fails):
    text = template().replace("{Lab: {Snmp: false}}", "{Lab: {Snmp: false, RoleArgs: {}}}")
    fails(text, "Metadata.Lab needs a Role", logical_id="Web2")


def test_snmpd_conf_binds_the_host_address_and_allows_only_its_realm(load):
    plan = build_plan(load(template(f"{{V3: {V3}}}")), "t")
    web1 = plan.host("Web1")
    conf = config_text("t", web1, "setupsecret")
    lines = conf.splitlines()
    assert f"agentAddress udp:{web1.ip}:161" in lines
    assert "rocommunity elblab-ro 10.8.0.0/16" in lines
    assert 'createUser mon SHA "authpass1" AES "privpass1"' in lines
    assert "rouser mon priv" in lines
    assert "sysName Web1" in lines
    assert any(line.startswith("sysLocation lab t, us-east-1a") for line in lines)
    # The only write access: cache timeouts, from the host itself.
    assert f"rwcommunity setupsecret {web1.ip}/32 -V elblabCacheTimeouts" in lines
    assert "public" not in conf


def test_snmpd_conf_uses_net_snmp_names_for_aes_256(load):
    v3 = (
        "{User: m, AuthPassword: abcdefgh, PrivPassword: abcdefgh, AuthProtocol: SHA-512, "
        "PrivProtocol: AES-256}"
    )
    plan = build_plan(load(template(f"{{V3: {v3}}}")), "t")
    assert 'createUser m SHA-512 "abcdefgh" AES256 "abcdefgh"' in config_text(
        "t", plan.host("Web1"), "x"
    )


def test_vantage_is_an_unpolled_host_of_the_same_vpc(load):
    plan = build_plan(load(template()), "t")
    assert vantage.agents_of(plan) == ["Web1", "Web3", "Client"]
    # Web2 runs no agent, so it polls the VPC; the client is alone on the internet.
    assert vantage.assign(plan, ["Web1", "Web3", "Client"]) == {
        "Web2": ["Web1", "Web3"],
        "Client": ["Client"],
    }


def test_vantage_when_every_host_is_polled(default_model):
    plan = build_plan(default_model, "t")
    groups = vantage.assign(plan, ["WebA1", "WebA2", "WebB1", "WebB2"])
    assert groups == {"WebA2": ["WebA1"], "WebA1": ["WebA2", "WebB1", "WebB2"]}
    assert vantage.assign(plan, ["WebB2"], vantage="WebA1") == {"WebA1": ["WebB2"]}


@pytest.mark.parametrize(
    ("hosts", "chosen", "message"),
    [
        (["Nope"], None, "has no host 'Nope'"),
        (["Web2"], None, "Web2 runs no SNMP agent"),
        (["Web1"], "Client", "Client cannot poll Web1"),
    ],
)
def test_vantage_errors(load, hosts, chosen, message):
    plan = build_plan(load(template()), "t")
    with pytest.raises(BadInput) as info:
        vantage.assign(plan, hosts, chosen)
    assert message in str(info.value)


@pytest.fixture
def default_model(load, default_text):
    return load(default_text)
