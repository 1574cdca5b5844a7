"""Route53 in the model (records, aliases, zones) and in the lab's resolver (dnsmasq data)."""

from __future__ import annotations

import re

import pytest

from testbed.lab.services.dns import cnames, records
from testbed.plan.network import NetworkPlan, build_plan
from tests.unit.elbv2_data import ALB, listener, stack, target_group

ZONE = """\
Zone:
  Type: AWS::Route53::HostedZone
  Properties: {Name: example.com.}
"""


def record(name: str, body: str) -> str:
    return f"{name}:\n  Type: AWS::Route53::RecordSet\n  Properties: {body}\n"


ALIAS = record(
    "Www",
    "{HostedZoneId: !Ref Zone, Name: www.example.com., Type: A, "
    "AliasTarget: {DNSName: !GetAtt ALB.DNSName, HostedZoneId: !GetAtt ALB.CanonicalHostedZoneID}}",
)


def alb_stack(*parts: str) -> str:
    return stack(ALB, target_group("TG", "HTTP", 80), listener("L", "ALB", "HTTP", 80), *parts)


def test_hosted_zone_is_inert_with_an_aws_shaped_id(load):
    model = load(stack(ZONE))
    zone = model.inert["Zone"]
    assert zone.type == "AWS::Route53::HostedZone"
    assert re.fullmatch(r"Z[0-9A-Z]{13}", zone.ref)
    assert zone.attributes["Id"] == zone.ref
    assert len(zone.attributes["NameServers"]) == 4
    assert zone.note.startswith("not emulated")
    # The same stack and logical id give the same id; another stack another.
    assert load(stack(ZONE)).inert["Zone"].ref == zone.ref
    assert load(stack(ZONE), stack_name="other").inert["Zone"].ref != zone.ref


def test_alias_to_a_load_balancer_is_a_cname_to_its_name(load):
    model = load(alb_stack(ZONE, ALIAS))
    lb = model.extras["elbv2"]["load_balancers"]["ALB"]
    (rec,) = model.dns_records
    assert (rec.logical_id, rec.name, rec.type) == ("Www", "www.example.com", "CNAME")
    assert rec.values == (lb.dns_name.lower(),)
    plan = build_plan(model, "r53")
    assert cnames(plan) == ([("www.example.com", lb.dns_name.lower())], [])


def test_dualstack_prefix_and_case_of_an_alias_are_the_load_balancers_name(load):
    alias = record(
        "Www",
        "{HostedZoneName: example.com., Name: WWW.Example.com, Type: A, AliasTarget: "
        '{DNSName: !Sub "dualstack.${ALB.DNSName}", HostedZoneId: Z35SXDOTRQ7X7K}}',
    )
    model = load(alb_stack(alias))
    lb = model.extras["elbv2"]["load_balancers"]["ALB"]
    assert model.dns_records[0].name == "www.example.com"
    assert model.dns_records[0].values == (lb.dns_name.lower(),)


def test_a_records_go_to_the_hosts_file_and_cnames_to_local_names_only(load):
    parts = [
        ZONE,
        record(
            "Api",
            "{HostedZoneId: !Ref Zone, Name: api.example.com, Type: A, TTL: 60, "
            "ResourceRecords: [!GetAtt WebA.PrivateIp, 10.0.3.9]}",
        ),
        record(
            "Alias",
            "{HostedZoneId: !Ref Zone, Name: web.example.com, Type: CNAME, TTL: 300, "
            "ResourceRecords: [api.example.com.]}",
        ),
        record(
            "Outside",
            "{HostedZoneId: !Ref Zone, Name: cdn.example.com, Type: CNAME, TTL: 300, "
            "ResourceRecords: [d111111abcdef8.cloudfront.net]}",
        ),
    ]
    model = load(stack(*parts))
    plan = build_plan(model, "r53")
    web_a = str(model.instances["WebA"].private_ip)
    assert (web_a, "api.example.com") in records(plan)
    assert ("10.0.3.9", "api.example.com") in records(plan)
    served, notes = cnames(plan)
    assert served == [("web.example.com", "api.example.com")]
    assert len(notes) == 1
    assert "cdn.example.com" in notes[0]
    assert "Outside" in notes[0]
    # The plan keeps the records through its JSON form (the controller and services read it).
    assert NetworkPlan.from_json(plan.to_json()).dns_records == plan.dns_records


def test_other_types_and_routing_policies_are_accepted_and_reported(load):
    parts = [
        ZONE,
        record(
            "Txt",
            "{HostedZoneId: !Ref Zone, Name: example.com, Type: TXT, TTL: 60, "
            'ResourceRecords: ["\\"v=spf1 -all\\""]}',
        ),
        record(
            "Blue",
            "{HostedZoneId: !Ref Zone, Name: app.example.com, Type: A, TTL: 60, "
            "SetIdentifier: blue, Weight: 90, ResourceRecords: [10.0.2.10]}",
        ),
        record(
            "Green",
            "{HostedZoneId: !Ref Zone, Name: app.example.com, Type: A, TTL: 60, "
            "SetIdentifier: green, Weight: 10, ResourceRecords: [10.0.3.10]}",
        ),
    ]
    model = load(stack(*parts))
    assert [r.logical_id for r in model.dns_records] == ["Blue", "Green"]
    ignored = {(i.logical_id, i.property) for i in model.ignored}
    assert ("Blue", "Weight") in ignored
    assert any(lid == "Txt" and "TXT" in prop for lid, prop in ignored)


def test_record_set_group(load):
    group = """\
    Group:
      Type: AWS::Route53::RecordSetGroup
      Properties:
        HostedZoneName: example.com.
        RecordSets:
          - {Name: a.example.com, Type: A, TTL: 60, ResourceRecords: [10.0.2.20]}
          - {Name: b.example.com, Type: CNAME, TTL: 60, ResourceRecords: [a.example.com]}
    """
    model = load(stack(group))
    assert [(r.name, r.type, r.values) for r in model.dns_records] == [
        ("a.example.com", "A", ("10.0.2.20",)),
        ("b.example.com", "CNAME", ("a.example.com",)),
    ]
    assert all(r.logical_id == "Group" for r in model.dns_records)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "{HostedZoneId: !Ref Zone, Name: www.example.org, Type: A, TTL: 60, "
            "ResourceRecords: [10.0.2.1]}",
            "Name www.example.org is not in hosted zone Zone (example.com)",
        ),
        (
            "{HostedZoneId: !Ref Zone, HostedZoneName: example.com., Name: www.example.com, "
            "Type: A, TTL: 60, ResourceRecords: [10.0.2.1]}",
            "either HostedZoneId or HostedZoneName, not both",
        ),
        (
            "{Name: www.example.com, Type: A, TTL: 60, ResourceRecords: [10.0.2.1]}",
            "HostedZoneId or HostedZoneName is required",
        ),
        (
            "{HostedZoneId: !Ref Zone, Name: www.example.com, Type: A, TTL: 60, "
            "ResourceRecords: [web.example.com]}",
            "is not an IPv4 address",
        ),
        (
            "{HostedZoneId: !Ref Zone, Name: www.example.com, Type: A, "
            "ResourceRecords: [10.0.2.1]}",
            "TTL is required",
        ),
        (
            "{HostedZoneId: !Ref Zone, Name: www.example.com, Type: CNAME, TTL: 60, "
            "ResourceRecords: [a.example.com, b.example.com]}",
            "exactly one value",
        ),
        (
            "{HostedZoneId: !Ref Zone, Name: www.example.com, Type: A, TTL: 60, "
            "AliasTarget: {DNSName: x.example.com, HostedZoneId: Z1}}",
            "an alias record (AliasTarget) has no TTL",
        ),
        (
            "{HostedZoneId: !Ref Zone, Name: www.example.com, Type: AA, TTL: 60, "
            "ResourceRecords: [10.0.2.1]}",
            "Type must be one of",
        ),
    ],
)
def test_bad_records_are_located_errors(fails, line_with, body, message):
    text = stack(ZONE, record("Bad", body))
    # At the property at fault: all of them are on the Properties line here; a missing
    # zone is the resource's own fault.
    offset = 0 if "required" in message and "TTL" not in message else 2
    fails(text, message, logical_id="Bad", line=line_with(text, "Bad:") + offset)


def test_two_records_of_one_name_and_type_clash(fails):
    text = stack(
        ZONE,
        record(
            "One",
            "{HostedZoneId: !Ref Zone, Name: www.example.com, Type: A, TTL: 60, "
            "ResourceRecords: [10.0.2.1]}",
        ),
        record(
            "Two",
            "{HostedZoneId: !Ref Zone, Name: www.example.com, Type: CNAME, TTL: 60, "
            "ResourceRecords: [a.example.com]}",
        ),
    )
    fails(text, "already has an A record (One)", logical_id="Two")


def test_a_public_and_a_private_zone_may_share_a_name(load):
    private = """\
    Inside:
      Type: AWS::Route53::HostedZone
      Properties: {Name: example.com, VPCs: [{VPCId: !Ref VPC, VPCRegion: us-east-1}]}
    """
    body = "{{HostedZoneId: !Ref {zone}, Name: www.example.com, Type: A, TTL: 60, "
    body += "ResourceRecords: [{ip}]}}"
    model = load(
        stack(
            ZONE,
            private,
            record("Public", body.format(zone="Zone", ip="203.0.113.9")),
            record("Private", body.format(zone="Inside", ip="10.0.2.9")),
        )
    )
    assert [r.values for r in model.dns_records] == [("203.0.113.9",), ("10.0.2.9",)]
    assert "private zone" in model.inert["Inside"].note
